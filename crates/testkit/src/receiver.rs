//! A webhook receiver for delivery tests: a real HTTP server on 127.0.0.1
//! that behaves as a customer's endpoint would.
//!
//! It checks every request's Standard Webhooks signature with the
//! `standardwebhooks` crate (the specification authors' own Rust library),
//! not with scimgate's signing code, so a test passes only if scimgate signs
//! the way an independent implementation verifies. It records what arrived
//! and answers as the test tells it to: a 2xx, a given status (with
//! `Retry-After`), failures for the next N requests, a hang, a slow answer,
//! or no listener at all for a while (stop, then restart on the same port).
//!
//! The receiver runs on the Tokio runtime that starts it; every setter takes
//! effect at once, also for requests already waiting in a hang.
//!
//! ```ignore
//! let receiver = Receiver::start().await;
//! receiver.set_secret(&secret_text);
//! receiver.fail_next(2, 500);
//! // ... point a target at receiver.url() and run the worker ...
//! let got = receiver.wait_for(3, Duration::from_secs(10)).await?;
//! assert!(got.iter().all(|d| d.verified));
//! ```

use std::collections::{BTreeMap, HashSet};
use std::convert::Infallible;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use http_body_util::{BodyExt as _, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use standardwebhooks::Webhook;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

/// The path the receiver answers on (any path is accepted and recorded).
pub const PATH: &str = "/webhook";
/// The status answered by default.
pub const DEFAULT_STATUS: u16 = 204;

/// One request the receiver got, as it arrived.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// `webhook-id`, if present.
    pub webhook_id: Option<String>,
    /// `webhook-timestamp` as integer seconds, if present and an integer.
    pub timestamp: Option<i64>,
    /// `webhook-signature`, if present.
    pub signature: Option<String>,
    /// Whether the signature verified under one of the receiver's secrets.
    pub verified: bool,
    /// Why it did not verify (`None` when it did).
    pub verify_error: Option<String>,
    /// The body parsed as JSON (`Value::Null` if it is not JSON).
    pub body: Value,
    /// The body's bytes.
    pub raw_body: Vec<u8>,
    /// The request method.
    pub method: String,
    /// The request path and query.
    pub path: String,
    /// Every header, names in lower case, in arrival order.
    pub headers: Vec<(String, String)>,
    /// When the request's body had arrived.
    pub received_at: SystemTime,
    /// The status answered, or `None` if the request was never answered
    /// (still hanging, or the client gave up first).
    pub answered: Option<u16>,
}

impl Delivery {
    /// The first value of a header (name in any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// [`Receiver::wait_for`] ran out of time.
#[derive(Debug, Clone)]
pub struct WaitTimeout {
    /// How many deliveries were awaited.
    pub wanted: usize,
    /// What had arrived by then.
    pub got: Vec<Delivery>,
}

impl fmt::Display for WaitTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "waited for {} deliveries, {} arrived:",
            self.wanted,
            self.got.len()
        )?;
        for d in &self.got {
            write!(
                f,
                "\n  id={:?} verified={} answered={:?} body={}",
                d.webhook_id, d.verified, d.answered, d.body
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for WaitTimeout {}

/// How requests are answered.
#[derive(Debug, Clone)]
struct Behaviour {
    status: StatusCode,
    retry_after: Option<String>,
    fail_next: u32,
    fail_status: StatusCode,
    hang: Hang,
    delay: Duration,
    reject_unverified: bool,
}

#[derive(Debug, Clone, Copy)]
enum Hang {
    No,
    Forever,
    Until(Instant),
}

impl Default for Behaviour {
    fn default() -> Self {
        Self {
            status: StatusCode::NO_CONTENT,
            retry_after: None,
            fail_next: 0,
            fail_status: StatusCode::INTERNAL_SERVER_ERROR,
            hang: Hang::No,
            delay: Duration::ZERO,
            reject_unverified: false,
        }
    }
}

#[derive(Default)]
struct State {
    secrets: Vec<Arc<Webhook>>,
    behaviour: Behaviour,
    deliveries: Vec<Delivery>,
}

struct Shared {
    state: Mutex<State>,
    // Bumped on every change of behaviour, so hanging requests re-read it.
    changed: watch::Sender<u64>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A test that panicked while holding the lock must not hide the
        // receiver's records from the test's own failure report.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn change(&self, f: impl FnOnce(&mut Behaviour)) {
        f(&mut self.lock().behaviour);
        self.changed.send_modify(|v| *v += 1);
    }
}

/// A webhook endpoint on 127.0.0.1 for one test.
///
/// Dropping it stops the server.
pub struct Receiver {
    shared: Arc<Shared>,
    addr: SocketAddr,
    server: Mutex<Option<JoinHandle<()>>>,
}

impl fmt::Debug for Receiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver")
            .field("addr", &self.addr)
            .field("deliveries", &self.count())
            .finish()
    }
}

fn status(code: u16) -> StatusCode {
    match StatusCode::from_u16(code) {
        Ok(s) => s,
        Err(_) => panic!("{code} is not an HTTP status code"),
    }
}

impl Receiver {
    /// Starts listening on 127.0.0.1 on a free port.
    ///
    /// # Panics
    /// If no port can be bound.
    pub async fn start() -> Receiver {
        let listener = match TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await {
            Ok(l) => l,
            Err(e) => panic!("the test receiver cannot bind 127.0.0.1: {e}"),
        };
        let addr = match listener.local_addr() {
            Ok(a) => a,
            Err(e) => panic!("the test receiver has no local address: {e}"),
        };
        let (changed, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            changed,
        });
        let server = tokio::spawn(serve(listener, shared.clone()));
        Receiver {
            shared,
            addr,
            server: Mutex::new(Some(server)),
        }
    }

    /// The endpoint's URL (`http://127.0.0.1:<port>/webhook`).
    pub fn url(&self) -> String {
        format!("http://{}{PATH}", self.addr)
    }

    /// The address the receiver listens on (the same across restarts).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Verifies later requests with this `whsec_` secret only.
    ///
    /// # Panics
    /// If the secret is not `whsec_` + base64.
    pub fn set_secret(&self, secret: &str) {
        self.set_secrets(&[secret]);
    }

    /// Verifies later requests with any of these secrets (a rotation).
    ///
    /// # Panics
    /// If a secret is not `whsec_` + base64.
    pub fn set_secrets(&self, secrets: &[&str]) {
        let parsed = secrets
            .iter()
            .map(|s| match Webhook::new(s) {
                Ok(w) => Arc::new(w),
                Err(e) => panic!("the test receiver cannot use secret {s:?}: {e}"),
            })
            .collect();
        self.shared.lock().secrets = parsed;
    }

    /// Answers every request with `status`, at once (ends a hang).
    pub fn answer(&self, code: u16) {
        let code = status(code);
        self.shared.change(|b| {
            b.status = code;
            b.retry_after = None;
            b.hang = Hang::No;
        });
    }

    /// Answers every request with the default 204, at once (ends a hang).
    pub fn answer_ok(&self) {
        self.answer(DEFAULT_STATUS);
    }

    /// Answers every request with `status` and `Retry-After: <seconds>`.
    pub fn answer_with_retry_after(&self, code: u16, seconds: u64) {
        let code = status(code);
        self.shared.change(|b| {
            b.status = code;
            b.retry_after = Some(seconds.to_string());
            b.hang = Hang::No;
        });
    }

    /// Answers the next `n` requests with `status` (at once, even during a
    /// hang or a delay), then answers as before.
    pub fn fail_next(&self, n: u32, code: u16) {
        let code = status(code);
        self.shared.change(|b| {
            b.fail_next = n;
            b.fail_status = code;
        });
    }

    /// Holds every request, unanswered, until another setter changes the
    /// answer (or the client gives up).
    pub fn hang(&self) {
        self.shared.change(|b| b.hang = Hang::Forever);
    }

    /// Holds every request, unanswered, until `duration` from now has
    /// passed (an outage of that length); then answers as set.
    pub fn hang_for(&self, duration: Duration) {
        let until = Instant::now() + duration;
        self.shared.change(|b| b.hang = Hang::Until(until));
    }

    /// Waits `delay` before answering each request (ends a hang).
    pub fn slow(&self, delay: Duration) {
        self.shared.change(|b| {
            b.delay = delay;
            b.hang = Hang::No;
        });
    }

    /// Answers 401 to requests whose signature does not verify, as a strict
    /// customer endpoint does (off by default, so a test may set the
    /// secret after the first deliveries are already under way).
    pub fn reject_unverified(&self, reject: bool) {
        self.shared.change(|b| b.reject_unverified = reject);
    }

    /// Back to the default: 204 at once, no failures, no hang, no delay,
    /// unverified requests recorded but not refused.
    pub fn reset(&self) {
        self.shared.change(|b| *b = Behaviour::default());
    }

    /// Stops listening and drops every open connection: the port refuses
    /// connections until [`Receiver::restart`].
    pub async fn stop(&self) {
        let server = self
            .server
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(server) = server {
            server.abort();
            // Aborted: the listener and the connections are dropped by now.
            let _ = server.await;
        }
    }

    /// Listens again on the same port after [`Receiver::stop`].
    ///
    /// # Panics
    /// If the port cannot be bound again within a few seconds (another
    /// process took it).
    pub async fn restart(&self) {
        self.stop().await;
        let deadline = Instant::now() + Duration::from_secs(5);
        let listener = loop {
            match TcpListener::bind(self.addr).await {
                Ok(l) => break l,
                Err(e) if Instant::now() >= deadline => {
                    panic!(
                        "the test receiver cannot listen on {} again: {e}",
                        self.addr
                    )
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        };
        let server = tokio::spawn(serve(listener, self.shared.clone()));
        *self
            .server
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(server);
    }

    /// Every request received, in arrival order.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.shared.lock().deliveries.clone()
    }

    /// The number of requests received.
    pub fn count(&self) -> usize {
        self.shared.lock().deliveries.len()
    }

    /// The distinct `webhook-id`s, in order of first arrival.
    pub fn webhook_ids(&self) -> Vec<String> {
        let mut seen = HashSet::new();
        self.shared
            .lock()
            .deliveries
            .iter()
            .filter_map(|d| d.webhook_id.clone())
            .filter(|id| seen.insert(id.clone()))
            .collect()
    }

    /// Forgets the requests received so far.
    pub fn clear(&self) {
        self.shared.lock().deliveries.clear();
    }

    /// Waits until at least `count` requests have arrived, polling, for at
    /// most `timeout`; returns them all, or what arrived by the deadline.
    pub async fn wait_for(
        &self,
        count: usize,
        timeout: Duration,
    ) -> Result<Vec<Delivery>, WaitTimeout> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.deliveries();
            if got.len() >= count {
                return Ok(got);
            }
            if Instant::now() >= deadline {
                return Err(WaitTimeout { wanted: count, got });
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Checks that, for every value of the `key` field (e.g. `data.id`),
    /// the `seq` field (e.g. `position`) never decreased in arrival order.
    /// Repeats of one value are allowed (at-least-once redelivery).
    /// Fields are dotted paths or JSON pointers (`/data/id`); deliveries
    /// without the key field are skipped.
    pub fn check_order(&self, key: &str, seq: &str) -> Result<(), String> {
        check_order(&self.deliveries(), key, seq)
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let server = self
            .server
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(server) = server {
            server.abort();
        }
    }
}

/// [`Receiver::check_order`] over a list of deliveries.
pub fn check_order(deliveries: &[Delivery], key: &str, seq: &str) -> Result<(), String> {
    let key_ptr = pointer(key);
    let seq_ptr = pointer(seq);
    let mut last: BTreeMap<String, (Value, usize)> = BTreeMap::new();
    for (i, d) in deliveries.iter().enumerate() {
        let Some(k) = d.body.pointer(&key_ptr) else {
            continue;
        };
        let k = match k {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let Some(s) = d.body.pointer(&seq_ptr) else {
            return Err(format!("delivery {i} ({key} = {k}) has no {seq}"));
        };
        if let Some((prev, at)) = last.get(&k) {
            match compare(prev, s) {
                Some(std::cmp::Ordering::Greater) => {
                    return Err(format!(
                        "{key} = {k}: delivery {i} has {seq} = {s} after delivery {at} had {prev}"
                    ));
                }
                Some(_) => {}
                None => {
                    return Err(format!(
                        "{key} = {k}: {seq} values {prev} and {s} cannot be compared"
                    ));
                }
            }
        }
        last.insert(k, (s.clone(), i));
    }
    Ok(())
}

fn pointer(path: &str) -> String {
    if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{}", path.replace('.', "/"))
    }
}

fn compare(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => Some(x.cmp(&y)),
            _ => match (x.as_u64(), y.as_u64()) {
                (Some(x), Some(y)) => Some(x.cmp(&y)),
                _ => x.as_f64()?.partial_cmp(&y.as_f64()?),
            },
        },
        // Sortable text ids (UUIDv7, ULID, zero-padded numbers).
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    // Connection tasks live in this set, so aborting the server task drops
    // them too: a stopped receiver leaves no keep-alive connection working.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let shared = shared.clone();
                    connections.spawn(async move {
                        let service = service_fn(move |req| handle(shared.clone(), req));
                        let _ = http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
                // Out of file descriptors and the like: try again shortly.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

fn verify(secrets: &[Arc<Webhook>], body: &[u8], headers: &hyper::HeaderMap) -> Result<(), String> {
    if secrets.is_empty() {
        return Err("the receiver has no secret (set_secret)".into());
    }
    let mut errors = Vec::new();
    for secret in secrets {
        match secret.verify(body, headers) {
            Ok(()) => return Ok(()),
            Err(e) => errors.push(e.to_string()),
        }
    }
    Err(errors.join("; "))
}

async fn handle(
    shared: Arc<Shared>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = request.into_parts();
    let raw = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return Ok(respond(StatusCode::BAD_REQUEST, None)),
    };
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let secrets = shared.lock().secrets.clone();
    let verdict = verify(&secrets, &raw, &parts.headers);
    let delivery = Delivery {
        webhook_id: header("webhook-id"),
        timestamp: header("webhook-timestamp").and_then(|t| t.trim().parse().ok()),
        signature: header("webhook-signature"),
        verified: verdict.is_ok(),
        verify_error: verdict.err(),
        body: serde_json::from_slice(&raw).unwrap_or(Value::Null),
        raw_body: raw.to_vec(),
        method: parts.method.to_string(),
        path: parts
            .uri
            .path_and_query()
            .map_or_else(|| parts.uri.path().to_owned(), |p| p.to_string()),
        headers: parts
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        received_at: SystemTime::now(),
        answered: None,
    };

    // Subscribed before the behaviour is read, so no change is missed.
    let mut changes = shared.changed.subscribe();
    let (index, failure) = {
        let mut state = shared.lock();
        let verified = delivery.verified;
        state.deliveries.push(delivery);
        let index = state.deliveries.len() - 1;
        let b = &mut state.behaviour;
        let failure = if b.reject_unverified && !verified {
            Some(StatusCode::UNAUTHORIZED)
        } else if b.fail_next > 0 {
            b.fail_next -= 1;
            Some(b.fail_status)
        } else {
            None
        };
        (index, failure)
    };

    let (code, retry_after) = match failure {
        Some(code) => (code, None),
        None => {
            loop {
                let hang = shared.lock().behaviour.hang;
                match hang {
                    Hang::No => break,
                    Hang::Forever => {
                        if changes.changed().await.is_err() {
                            break;
                        }
                    }
                    Hang::Until(until) => {
                        if Instant::now() >= until {
                            break;
                        }
                        tokio::select! {
                            _ = tokio::time::sleep_until(until.into()) => {}
                            changed = changes.changed() => if changed.is_err() { break },
                        }
                    }
                }
            }
            let delay = shared.lock().behaviour.delay;
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let state = shared.lock();
            (state.behaviour.status, state.behaviour.retry_after.clone())
        }
    };
    if let Some(d) = shared.lock().deliveries.get_mut(index) {
        d.answered = Some(code.as_u16());
    }
    Ok(respond(code, retry_after))
}

fn respond(code: StatusCode, retry_after: Option<String>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = code;
    if let Some(value) = retry_after.and_then(|v| hyper::header::HeaderValue::from_str(&v).ok()) {
        response
            .headers_mut()
            .insert(hyper::header::RETRY_AFTER, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(body: Value) -> Delivery {
        Delivery {
            webhook_id: None,
            timestamp: None,
            signature: None,
            verified: true,
            verify_error: None,
            body,
            raw_body: Vec::new(),
            method: "POST".into(),
            path: PATH.into(),
            headers: Vec::new(),
            received_at: SystemTime::now(),
            answered: Some(204),
        }
    }

    #[test]
    fn order_check_per_key() {
        let list = |items: &[(&str, i64)]| -> Vec<Delivery> {
            items
                .iter()
                .map(|(id, p)| delivery(serde_json::json!({"data": {"id": id}, "position": p})))
                .collect()
        };
        let ok = list(&[("a", 1), ("b", 1), ("a", 2), ("a", 2), ("b", 5), ("a", 9)]);
        assert_eq!(check_order(&ok, "data.id", "position"), Ok(()));
        assert_eq!(check_order(&ok, "/data/id", "/position"), Ok(()));
        let bad = list(&[("a", 1), ("b", 7), ("a", 3), ("b", 6)]);
        let e = check_order(&bad, "data.id", "position").expect_err("b went back");
        assert!(
            e.contains("data.id = b") && e.contains("position = 6"),
            "{e}"
        );
        // Other kinds of body are skipped; a key without a sequence is not.
        let mut mixed = list(&[("a", 2)]);
        mixed.push(delivery(serde_json::json!({"type": "ping"})));
        assert_eq!(check_order(&mixed, "data.id", "position"), Ok(()));
        mixed.push(delivery(serde_json::json!({"data": {"id": "a"}})));
        assert!(check_order(&mixed, "data.id", "position").is_err());
        // Text sequences compare as text.
        let text = vec![
            delivery(serde_json::json!({"data": {"id": 1}, "seq": "0002"})),
            delivery(serde_json::json!({"data": {"id": 1}, "seq": "0001"})),
        ];
        assert!(check_order(&text, "data.id", "seq").is_err());
    }
}
