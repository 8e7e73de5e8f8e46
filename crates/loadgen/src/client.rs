//! A minimal HTTP/1.1 client: each worker owns one keep-alive connection.
//!
//! The load tool shares the machine's two cores with the server it measures,
//! so every microsecond it spends per request is taken from the server. A
//! pooled general-purpose client parses the URL, looks up a pool and builds
//! a header map for every request; here the target's address, path prefix
//! and `Authorization` value are worked out once, and a worker sends its
//! requests one after another on its own connection (as an IdP's worker does).

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HOST, HeaderValue};
use http::{Method, Uri};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::LoadError;

const SCIM_JSON: HeaderValue = HeaderValue::from_static("application/scim+json");
/// Below the server's 5 s keep-alive: a connection idle longer may be closed
/// by the server just as it is reused, which would show up as a transport
/// error that says nothing about the server.
const MAX_IDLE: Duration = Duration::from_secs(4);
/// Bound on one exchange, connect included.
const TIMEOUT: Duration = Duration::from_secs(30);

/// One tenant's SCIM endpoint, parsed once.
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    /// The SCIM base URL as given, for messages.
    pub(crate) url: String,
    /// `host:port` to connect to and to send as `Host`.
    authority: String,
    host: HeaderValue,
    /// The URL's path, without a trailing slash.
    base_path: String,
    /// `Bearer <token>`.
    bearer: HeaderValue,
}

impl Endpoint {
    /// Parses a `http://host[:port]/path` SCIM base URL and its token.
    pub(crate) fn new(url: &str, token: &str) -> Result<Endpoint, LoadError> {
        let uri: Uri = url
            .parse()
            .map_err(|e| LoadError(format!("invalid URL {url:?}: {e}")))?;
        if uri.scheme_str() != Some("http") {
            return Err(LoadError(format!("{url:?}: only http URLs are supported")));
        }
        let authority = uri
            .authority()
            .ok_or_else(|| LoadError(format!("{url:?}: no host")))?;
        let port = authority.port_u16().unwrap_or(80);
        let authority = format!("{}:{port}", authority.host());
        let host =
            HeaderValue::from_str(&authority).map_err(|e| LoadError(format!("{url:?}: {e}")))?;
        let bearer = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| LoadError(format!("{url:?}: the token is not a valid header value")))?;
        Ok(Endpoint {
            url: url.to_string(),
            authority,
            host,
            base_path: uri.path().trim_end_matches('/').to_string(),
            bearer,
        })
    }

    /// A GET of `path` (with its query) under the base URL.
    pub(crate) fn get(&self, path: &str) -> Request<'_> {
        Request {
            endpoint: self,
            method: Method::GET,
            path: format!("{}{path}", self.base_path),
            body: None,
        }
    }

    /// A request with a JSON body.
    pub(crate) fn send(&self, method: Method, path: &str, body: Vec<u8>) -> Request<'_> {
        Request {
            endpoint: self,
            method,
            path: format!("{}{path}", self.base_path),
            body: Some(Bytes::from(body)),
        }
    }
}

/// A request ready to send.
pub(crate) struct Request<'a> {
    endpoint: &'a Endpoint,
    method: Method,
    path: String,
    body: Option<Bytes>,
}

/// Why an exchange failed before a status arrived.
#[derive(Debug)]
pub(crate) struct Transport;

/// A worker's connection, opened on first use and again after an error or a
/// long idle.
#[derive(Default)]
pub(crate) struct Conn {
    open: Option<Open>,
}

struct Open {
    authority: String,
    sender: SendRequest<Full<Bytes>>,
    last_used: Instant,
}

impl Conn {
    /// Sends `request` and returns the status and the whole body.
    pub(crate) async fn exchange(
        &mut self,
        request: Request<'_>,
    ) -> Result<(u16, Bytes), Transport> {
        match tokio::time::timeout(TIMEOUT, self.exchange_inner(request)).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(Transport)) | Err(_) => {
                // The connection's state is unknown after a failure.
                self.open = None;
                Err(Transport)
            }
        }
    }

    async fn exchange_inner(&mut self, request: Request<'_>) -> Result<(u16, Bytes), Transport> {
        let endpoint = request.endpoint;
        let reusable = self.open.as_ref().is_some_and(|open| {
            open.authority == endpoint.authority
                && open.last_used.elapsed() < MAX_IDLE
                && !open.sender.is_closed()
        });
        if !reusable {
            self.open = Some(connect(&endpoint.authority).await?);
        }
        let open = self.open.as_mut().ok_or(Transport)?;
        open.sender.ready().await.map_err(|_| Transport)?;
        let mut builder = http::Request::builder()
            .method(request.method)
            .uri(request.path)
            .header(HOST, endpoint.host.clone())
            .header(AUTHORIZATION, endpoint.bearer.clone())
            .header(ACCEPT, SCIM_JSON);
        let body = match request.body {
            Some(body) => {
                builder = builder.header(CONTENT_TYPE, SCIM_JSON);
                body
            }
            None => Bytes::new(),
        };
        let http_request = builder.body(Full::new(body)).map_err(|_| Transport)?;
        let reply = open
            .sender
            .send_request(http_request)
            .await
            .map_err(|_| Transport)?;
        let status = reply.status().as_u16();
        let body = reply
            .into_body()
            .collect()
            .await
            .map_err(|_| Transport)?
            .to_bytes();
        open.last_used = Instant::now();
        Ok((status, body))
    }
}

async fn connect(authority: &str) -> Result<Open, Transport> {
    let stream = TcpStream::connect(authority).await.map_err(|_| Transport)?;
    // Requests are written whole; waiting for an ACK before the next small
    // write would only add latency.
    stream.set_nodelay(true).map_err(|_| Transport)?;
    let (sender, connection) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|_| Transport)?;
    tokio::spawn(async move {
        // Ends when the sender is dropped or the server closes; either way
        // the next exchange notices and reconnects.
        let _ = connection.await;
    });
    Ok(Open {
        authority: authority.to_string(),
        sender,
        last_used: Instant::now(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_parsed_once() {
        let e = Endpoint::new("http://127.0.0.1:8080/tenants/a/scim/v2/", "t0k").expect("valid");
        assert_eq!(e.authority, "127.0.0.1:8080");
        assert_eq!(e.base_path, "/tenants/a/scim/v2");
        assert_eq!(e.bearer, "Bearer t0k");
        assert_eq!(
            e.get("/Users?count=1").path,
            "/tenants/a/scim/v2/Users?count=1"
        );
        let e = Endpoint::new("http://localhost/scim/v2", "t").expect("valid");
        assert_eq!(e.authority, "localhost:80");
        assert!(Endpoint::new("https://127.0.0.1/scim/v2", "t").is_err());
        assert!(Endpoint::new("http://127.0.0.1/scim/v2", "bad\ntoken").is_err());
    }
}
