//! The benchmark's webhook receiver: a bare HTTP/1.1 server on 127.0.0.1
//! that answers every POST 204 at once and records, per event id, when it
//! first arrived.
//!
//! It shares the machine's cores with what it measures, so it does as
//! little as it can per request: it reads the `webhook-id` header, and the
//! body's `occurred_at` only when asked to (the lag benchmark). To stay
//! honest about what is sent, it checks a sample of the requests the way a
//! customer would: the Standard Webhooks signature with the specification
//! authors' own library (not scimgate's signing code), and that the body is
//! an envelope whose `id` is the `webhook-id`.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use standardwebhooks::Webhook;
use tokio::net::TcpListener;

use crate::LoadError;

/// The path targets are pointed at.
pub const PATH: &str = "/hook";

/// The first arrival of one event.
#[derive(Debug, Clone, Copy)]
pub struct Arrival {
    /// When it arrived (monotonic).
    pub at: Instant,
    /// Arrival minus the envelope's `occurred_at`, in milliseconds, when
    /// the receiver was asked to read it.
    pub lag_ms: Option<f64>,
}

/// What the receiver has seen.
#[derive(Debug, Default)]
struct Seen {
    /// The first arrival of each event (by the number in `evt_<n>`).
    first: HashMap<i64, Arrival>,
    /// Requests for an event that had already arrived.
    duplicates: u64,
    /// Requests that were not a well-formed delivery (no or bad
    /// `webhook-id`, unreadable body), with the first such problem.
    malformed: u64,
    first_malformed: Option<String>,
    /// Sampled requests whose signature or envelope did not check out.
    failed_checks: u64,
    first_failed_check: Option<String>,
}

struct Shared {
    seen: Mutex<Seen>,
    requests: AtomicU64,
    body_bytes: AtomicU64,
    checked: AtomicU64,
    /// Check every `sample`-th request (and the first).
    sample: u64,
    /// Read `occurred_at` from every body.
    lag: bool,
    /// The signing secrets of the targets pointed here: a sampled request
    /// must verify under one of them.
    secrets: Mutex<Vec<Arc<Webhook>>>,
}

impl Shared {
    fn seen(&self) -> MutexGuard<'_, Seen> {
        self.seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Counts a summary of what arrived.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    /// Requests answered.
    pub requests: u64,
    /// Body bytes received, all requests.
    pub body_bytes: u64,
    /// Distinct events received.
    pub distinct: usize,
    /// Repeated deliveries of an event already received.
    pub duplicates: u64,
    /// Requests that were not well-formed deliveries.
    pub malformed: u64,
    /// The first malformed request's problem.
    pub first_malformed: Option<String>,
    /// Requests whose signature and envelope were checked.
    pub checked: u64,
    /// Checked requests that failed.
    pub failed_checks: u64,
    /// The first failed check's problem.
    pub first_failed_check: Option<String>,
}

/// What the receiver saw, as every delivery benchmark reports it.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ReceiverTally {
    /// Requests the receiver answered (duplicates included).
    pub requests: u64,
    /// Mean body size in bytes.
    pub mean_body_bytes: u64,
    /// Repeated deliveries.
    pub duplicates: u64,
    /// Malformed requests.
    pub malformed: u64,
    /// Sampled requests checked (signature by the Standard Webhooks
    /// library, under one of the targets' secrets; envelope id = webhook-id).
    pub checked: u64,
    /// Sampled requests that failed their check.
    pub failed_checks: u64,
    /// The first failed check or malformed request, if any.
    pub first_problem: Option<String>,
}

impl ReceiverTally {
    /// Whether nothing arrived malformed or failed its check.
    pub fn intact(&self) -> bool {
        self.failed_checks == 0 && self.malformed == 0
    }

    /// "N requests (bodies B B on average), D duplicates, M malformed".
    pub fn counts_text(&self) -> String {
        format!(
            "{} requests (bodies {} B on average), {} duplicates, {} malformed",
            self.requests, self.mean_body_bytes, self.duplicates, self.malformed
        )
    }

    /// "C sampled checks, F failed", with the first problem if any.
    pub fn checks_text(&self) -> String {
        format!(
            "{} sampled checks, {} failed{}",
            self.checked,
            self.failed_checks,
            self.first_problem
                .as_deref()
                .map(|p| format!(" (first: {p})"))
                .unwrap_or_default()
        )
    }
}

impl From<Tally> for ReceiverTally {
    fn from(t: Tally) -> ReceiverTally {
        ReceiverTally {
            requests: t.requests,
            mean_body_bytes: t.body_bytes / t.requests.max(1),
            duplicates: t.duplicates,
            malformed: t.malformed,
            checked: t.checked,
            failed_checks: t.failed_checks,
            first_problem: t.first_failed_check.or(t.first_malformed),
        }
    }
}

/// A running receiver. It stops when the runtime that started it ends.
#[derive(Clone)]
pub struct Receiver {
    shared: Arc<Shared>,
    addr: SocketAddr,
}

/// The part of an envelope the receiver reads.
#[derive(Deserialize)]
struct Head<'a> {
    #[serde(borrow)]
    occurred_at: &'a str,
}

/// The part of an envelope a sampled check reads.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    id: &'a str,
    #[serde(borrow, rename = "type")]
    event_type: &'a str,
    data: Data<'a>,
}

#[derive(Deserialize)]
struct Data<'a> {
    #[serde(borrow)]
    id: &'a str,
}

impl Receiver {
    /// Listens on a free 127.0.0.1 port on the current Tokio runtime.
    /// `sample`: check every n-th request (0: none); `lag`: read each
    /// body's `occurred_at`.
    pub async fn start(sample: u64, lag: bool) -> Result<Receiver, LoadError> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .map_err(|e| LoadError(format!("the receiver cannot bind 127.0.0.1: {e}")))?;
        let addr = listener
            .local_addr()
            .map_err(|e| LoadError(format!("the receiver has no address: {e}")))?;
        let shared = Arc::new(Shared {
            seen: Mutex::new(Seen::default()),
            requests: AtomicU64::new(0),
            body_bytes: AtomicU64::new(0),
            checked: AtomicU64::new(0),
            sample,
            lag,
            secrets: Mutex::new(Vec::new()),
        });
        tokio::spawn(serve(listener, shared.clone()));
        Ok(Receiver { shared, addr })
    }

    /// The URL to point a target at.
    pub fn url(&self) -> String {
        format!("http://{}{PATH}", self.addr)
    }

    /// Sets the signing secret (`whsec_...`) sampled requests are checked
    /// against.
    pub fn set_secret(&self, secret: &str) -> Result<(), LoadError> {
        let webhook = Webhook::new(secret)
            .map_err(|e| LoadError(format!("the receiver cannot use the secret: {e}")))?;
        *self.secrets() = vec![Arc::new(webhook)];
        Ok(())
    }

    /// Adds the signing secret of one more target pointed at this receiver
    /// (a sampled request must verify under one of them).
    pub fn add_secret(&self, secret: &str) -> Result<(), LoadError> {
        let webhook = Webhook::new(secret)
            .map_err(|e| LoadError(format!("the receiver cannot use the secret: {e}")))?;
        self.secrets().push(Arc::new(webhook));
        Ok(())
    }

    fn secrets(&self) -> MutexGuard<'_, Vec<Arc<Webhook>>> {
        self.shared
            .secrets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Distinct events received so far.
    pub fn distinct(&self) -> usize {
        self.shared.seen().first.len()
    }

    /// The first arrival of each of `ids`, `None` for those not (yet)
    /// received.
    pub fn arrivals(&self, ids: &[i64]) -> Vec<Option<Arrival>> {
        let seen = self.shared.seen();
        ids.iter().map(|id| seen.first.get(id).copied()).collect()
    }

    /// Whether every one of `ids` has arrived.
    pub fn has_all(&self, ids: &[i64]) -> bool {
        let seen = self.shared.seen();
        seen.first.len() >= ids.len() && ids.iter().all(|id| seen.first.contains_key(id))
    }

    /// The counts so far.
    pub fn tally(&self) -> Tally {
        let seen = self.shared.seen();
        Tally {
            requests: self.shared.requests.load(Ordering::Relaxed),
            body_bytes: self.shared.body_bytes.load(Ordering::Relaxed),
            distinct: seen.first.len(),
            duplicates: seen.duplicates,
            malformed: seen.malformed,
            first_malformed: seen.first_malformed.clone(),
            checked: self.shared.checked.load(Ordering::Relaxed),
            failed_checks: seen.failed_checks,
            first_failed_check: seen.first_failed_check.clone(),
        }
    }
}

async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| handle(req, shared.clone()));
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn answer(status: StatusCode) -> Response<Empty<Bytes>> {
    let mut response = Response::new(Empty::new());
    *response.status_mut() = status;
    response
}

async fn handle(
    req: Request<Incoming>,
    shared: Arc<Shared>,
) -> Result<Response<Empty<Bytes>>, Infallible> {
    let n = shared.requests.fetch_add(1, Ordering::Relaxed);
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            malformed(&shared, format!("body not read: {e}"));
            return Ok(answer(StatusCode::BAD_REQUEST));
        }
    };
    let at = Instant::now();
    let wall = SystemTime::now();
    shared
        .body_bytes
        .fetch_add(body.len() as u64, Ordering::Relaxed);
    let id = parts
        .headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("evt_"))
        .and_then(|v| v.parse::<i64>().ok());
    let Some(id) = id else {
        malformed(&shared, "no webhook-id of the form evt_<n>".into());
        return Ok(answer(StatusCode::BAD_REQUEST));
    };
    if shared.sample > 0 && n.is_multiple_of(shared.sample) {
        shared.checked.fetch_add(1, Ordering::Relaxed);
        if let Err(why) = check(&shared, id, &body, &parts.headers) {
            let mut seen = shared.seen();
            seen.failed_checks += 1;
            seen.first_failed_check.get_or_insert(why);
        }
    }
    let lag_ms = if shared.lag {
        match lag_ms(&body, wall) {
            Ok(lag) => Some(lag),
            Err(why) => {
                malformed(&shared, why);
                None
            }
        }
    } else {
        None
    };
    let mut seen = shared.seen();
    match seen.first.entry(id) {
        Entry::Occupied(_) => seen.duplicates += 1,
        Entry::Vacant(slot) => {
            slot.insert(Arrival { at, lag_ms });
        }
    }
    drop(seen);
    Ok(answer(StatusCode::NO_CONTENT))
}

fn malformed(shared: &Shared, why: String) {
    let mut seen = shared.seen();
    seen.malformed += 1;
    seen.first_malformed.get_or_insert(why);
}

/// Arrival minus the envelope's `occurred_at`.
fn lag_ms(body: &[u8], arrived: SystemTime) -> Result<f64, String> {
    let head: Head<'_> =
        serde_json::from_slice(body).map_err(|e| format!("body is not an envelope: {e}"))?;
    let occurred = chrono::DateTime::parse_from_rfc3339(head.occurred_at)
        .map_err(|e| format!("occurred_at {:?}: {e}", head.occurred_at))?;
    let arrived: chrono::DateTime<chrono::Utc> = arrived.into();
    let lag = arrived.signed_duration_since(occurred);
    Ok(lag.num_microseconds().unwrap_or(i64::MAX) as f64 / 1000.0)
}

/// The signature (by the Standard Webhooks library) and the envelope.
fn check(shared: &Shared, id: i64, body: &[u8], headers: &http::HeaderMap) -> Result<(), String> {
    let secrets = shared
        .secrets
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let mut verified = Err(String::from("no secret to check the signature with"));
    for secret in &secrets {
        verified = secret
            .verify(body, headers)
            .map_err(|e| format!("evt_{id}: signature: {e}"));
        if verified.is_ok() {
            break;
        }
    }
    verified?;
    let envelope: Envelope<'_> =
        serde_json::from_slice(body).map_err(|e| format!("evt_{id}: envelope: {e}"))?;
    if envelope.id != format!("evt_{id}") {
        return Err(format!("evt_{id}: the envelope's id is {:?}", envelope.id));
    }
    if envelope.event_type.is_empty() || envelope.data.id.is_empty() {
        return Err(format!("evt_{id}: empty type or data.id"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_is_arrival_minus_occurred_at() {
        let body = br#"{"id":"evt_1","occurred_at":"2026-12-06T08:00:00.000Z","data":{}}"#;
        let arrived: SystemTime = chrono::DateTime::parse_from_rfc3339("2026-12-06T08:00:00.250Z")
            .map(|d| d.with_timezone(&chrono::Utc))
            .unwrap_or_default()
            .into();
        let lag = lag_ms(body, arrived).unwrap_or(f64::NAN);
        assert!((lag - 250.0).abs() < 1e-6, "{lag}");
        assert!(lag_ms(b"{}", arrived).is_err());
    }
}
