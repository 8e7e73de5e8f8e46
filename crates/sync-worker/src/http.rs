//! The outbound HTTP client every delivery goes through.
//!
//! The SSRF rules of [`crate::address`] are built in: the client resolves
//! host names through [`GuardedResolver`], uses no proxy (a proxy would
//! resolve, and connect to, the target itself) and follows no redirect (a
//! redirect to an internal address would bypass every check). A literal IP
//! address in a URL never reaches a resolver, so callers also run
//! [`check_request_url`] before each request.
//!
//! TLS is rustls on the ring provider, chosen explicitly rather than
//! through a process-wide default, and server certificates are verified by
//! the platform's verifier (the operating system's trust store).

use std::sync::Arc;
use std::time::Duration;

use url::Url;

use crate::address::{AddressError, AddressPolicy, GuardedResolver};

/// The `User-Agent` of every delivery request.
pub const USER_AGENT: &str = concat!("scimgate/", env!("CARGO_PKG_VERSION"));

/// The longest a TCP (and TLS) connection may take to open, whatever the
/// total timeout: a target that does not accept within this is down.
pub const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The TLS configuration (provider or platform verifier) failed.
    #[error("TLS setup for delivery failed: {0}")]
    Tls(#[from] rustls::Error),
    /// reqwest refused the configuration.
    #[error("building the delivery HTTP client failed: {0}")]
    Build(#[from] reqwest::Error),
}

/// The delivery client: guarded resolver, no proxy, no redirects, rustls
/// on ring with the platform verifier, `timeout` for a whole request and
/// at most [`MAX_CONNECT_TIMEOUT`] to connect.
pub fn client(policy: &AddressPolicy, timeout: Duration) -> Result<reqwest::Client, HttpError> {
    build(Arc::new(GuardedResolver::new(*policy)), timeout)
}

/// The client around a given resolver (tests substitute a fixed lookup
/// that still goes through the guard's filter).
fn build(
    resolver: Arc<dyn reqwest::dns::Resolve>,
    timeout: Duration,
) -> Result<reqwest::Client, HttpError> {
    let tls = tls_config()?;
    let client = reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .dns_resolver(resolver)
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .connect_timeout(timeout.min(MAX_CONNECT_TIMEOUT))
        .user_agent(USER_AGENT)
        // reqwest's default retry policy stays: it only repeats a request
        // an HTTP/2 server refused unprocessed; every other failure goes
        // back to the runner, which records it and backs off.
        .build()?;
    Ok(client)
}

/// The checks a request URL must pass before it is sent: scheme, no
/// credentials and, for a literal IP address (which no resolver sees), the
/// address policy.
pub fn check_request_url(policy: &AddressPolicy, url: &Url) -> Result<(), AddressError> {
    policy.check_parsed(url)
}

fn tls_config() -> Result<rustls::ClientConfig, HttpError> {
    use rustls_platform_verifier::BuilderVerifierExt as _;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_platform_verifier()?
        .with_no_client_auth();
    // reqwest sets ALPN only on configurations it builds itself; without
    // this a preconfigured one would never negotiate HTTP/2.
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    /// A one-answer-per-connection HTTP server on 127.0.0.1 that records
    /// the request heads it saw.
    async fn tiny_server() -> (u16, tokio::sync::mpsc::UnboundedReceiver<String>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let tx = tx.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let n = stream.read(&mut buf).await.unwrap_or(0);
                    let _ = tx.send(String::from_utf8_lossy(&buf[..n]).into_owned());
                    let _ = stream
                        .write_all(
                            b"HTTP/1.1 302 Found\r\nLocation: http://10.0.0.1/\r\n\
                              content-length: 2\r\nconnection: close\r\n\r\nok",
                        )
                        .await;
                });
            }
        });
        (port, rx)
    }

    fn chain(e: &reqwest::Error) -> String {
        let mut text = e.to_string();
        let mut source = e.source();
        while let Some(s) = source {
            text.push_str(": ");
            text.push_str(&s.to_string());
            source = s.source();
        }
        text
    }

    #[tokio::test]
    async fn refuses_loopback_unless_allowed_and_reaches_it_when_allowed() {
        let (port, mut seen) = tiny_server().await;
        let strict = AddressPolicy::default();
        let open = AddressPolicy {
            allow_private: true,
        };
        let timeout = Duration::from_secs(5);

        // A literal IP is caught by the URL check callers run first.
        let literal = Url::parse(&format!("http://127.0.0.1:{port}/")).expect("url");
        let e = check_request_url(&strict, &literal).expect_err("loopback literal");
        assert!(e.to_string().contains("loopback"), "{e}");
        check_request_url(&open, &literal).expect("allowed");

        // A name resolving to loopback is refused by the resolver, at
        // connect time, and nothing reaches the server.
        let refusing = client(&strict, timeout).expect("client");
        let e = refusing
            .get(format!("http://localhost:{port}/"))
            .send()
            .await
            .expect_err("localhost refused");
        let text = chain(&e);
        assert!(e.is_connect() || e.is_request(), "{text}");
        assert!(text.contains("always names this machine"), "{text}");
        assert!(seen.try_recv().is_err(), "nothing was sent");

        // Allowed: the request arrives with our User-Agent, and the
        // redirect is handed back, not followed.
        let allowing = client(&open, timeout).expect("client");
        for url in [
            format!("http://localhost:{port}/hook"),
            format!("http://127.0.0.1:{port}/hook"),
        ] {
            let response = allowing.get(&url).send().await.expect("reached");
            assert_eq!(response.status(), 302, "{url}: not followed");
            let head = seen.recv().await.expect("request seen");
            assert!(head.starts_with("GET /hook HTTP/1.1"), "{head}");
            assert!(
                head.to_ascii_lowercase()
                    .contains(&format!("user-agent: {USER_AGENT}")),
                "{head}"
            );
        }
        assert!(seen.try_recv().is_err(), "the redirect was not followed");
        assert!(USER_AGENT.starts_with("scimgate/"));
    }

    /// A name server's answer, fixed, passed through the guard's filter as
    /// a real lookup's is.
    struct FixedAnswer {
        guard: GuardedResolver,
        answer: Vec<std::net::SocketAddr>,
    }

    impl reqwest::dns::Resolve for FixedAnswer {
        fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
            let result = self.guard.filter(name.as_str(), self.answer.clone());
            Box::pin(async move {
                let addrs = result?;
                Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
            })
        }
    }

    #[tokio::test]
    async fn a_name_resolving_to_loopback_is_refused_at_connect_time() {
        let (port, mut seen) = tiny_server().await;
        // An ordinary-looking name an attacker points (or re-points) at
        // 127.0.0.1: the URL check passes, the connection does not.
        let url = Url::parse(&format!("http://hooks.example.com:{port}/x")).expect("url");
        let answer = vec!["127.0.0.1:0".parse().expect("addr")];
        let strict = AddressPolicy::default();
        check_request_url(&strict, &url).expect("a public-looking name passes the URL check");
        let c = build(
            Arc::new(FixedAnswer {
                guard: GuardedResolver::new(strict),
                answer: answer.clone(),
            }),
            Duration::from_secs(5),
        )
        .expect("client");
        let e = c.get(url.clone()).send().await.expect_err("refused");
        let text = chain(&e);
        assert!(
            text.contains(
                "resolves only to refused addresses: target address 127.0.0.1 is a loopback address"
            ),
            "{text}"
        );
        assert!(seen.try_recv().is_err(), "nothing was sent");

        let open = AddressPolicy {
            allow_private: true,
        };
        let c = build(
            Arc::new(FixedAnswer {
                guard: GuardedResolver::new(open),
                answer,
            }),
            Duration::from_secs(5),
        )
        .expect("client");
        let response = c.get(url).send().await.expect("reached");
        assert_eq!(response.status(), 302);
        let head = seen.recv().await.expect("request seen");
        assert!(head.contains("hooks.example.com"), "{head}");
    }

    #[tokio::test]
    async fn a_silent_server_times_out() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        // Accept and never answer.
        let holder = tokio::spawn(async move {
            let mut kept = Vec::new();
            while let Ok((s, _)) = listener.accept().await {
                kept.push(s);
            }
        });
        let open = AddressPolicy {
            allow_private: true,
        };
        let c = client(&open, Duration::from_millis(300)).expect("client");
        let started = std::time::Instant::now();
        let e = c
            .get(format!("http://127.0.0.1:{port}/"))
            .send()
            .await
            .expect_err("timeout");
        assert!(e.is_timeout(), "{}", chain(&e));
        assert!(started.elapsed() < Duration::from_secs(3));
        holder.abort();
    }

    #[test]
    fn tls_uses_ring_and_offers_h2() {
        let config = tls_config().expect("tls config");
        assert_eq!(
            config.alpn_protocols,
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        );
        // The ring provider's suites, whatever the process default is.
        let ring = rustls::crypto::ring::default_provider();
        assert_eq!(
            config.crypto_provider().cipher_suites.len(),
            ring.cipher_suites.len()
        );
    }
}
