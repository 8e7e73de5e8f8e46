//! One webhook request: the envelope as the body, signed by the Standard
//! Webhooks scheme (`webhook-id` = the event id, the same on every retry;
//! `webhook-timestamp`; `webhook-signature` with one `v1,` entry per
//! secret in use).

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use reqwest::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use url::Url;

use crate::address::AddressPolicy;
use crate::policy::Outcome;
use crate::signing::{self, WebhookSecret};

/// What one request came to, with what is recorded about it.
#[derive(Debug, Clone)]
pub struct Sent {
    /// The outcome the state machine reads.
    pub outcome: Outcome,
    /// The HTTP status, if a response came.
    pub status: Option<u16>,
    /// How long it took.
    pub latency: Duration,
    /// The start of the response body.
    pub response: Option<String>,
    /// Why it failed, if it did.
    pub error: Option<String>,
}

impl Sent {
    /// A request that was never made.
    pub fn refused(why: String) -> Sent {
        Sent {
            outcome: Outcome::Refused(why.clone()),
            status: None,
            latency: Duration::ZERO,
            response: None,
            error: Some(why),
        }
    }
}

/// A webhook target ready to send to: its address and opened secrets.
pub struct Webhook {
    /// The endpoint.
    pub url: Url,
    /// The current secret, then the previous one during a rotation.
    pub secrets: Vec<WebhookSecret>,
}

impl Webhook {
    /// POSTs `body` (an envelope) as event `event_id`.
    pub async fn send(
        &self,
        client: &reqwest::Client,
        policy: &AddressPolicy,
        event_id: &str,
        body: Vec<u8>,
        now: DateTime<Utc>,
        excerpt: usize,
    ) -> Sent {
        // A literal IP never reaches the guarded resolver.
        if let Err(e) = crate::http::check_request_url(policy, &self.url) {
            return Sent::refused(e.to_string());
        }
        let timestamp = now.timestamp();
        let secrets: Vec<&WebhookSecret> = self.secrets.iter().collect();
        let signature = signing::sign(event_id, timestamp, &body, &secrets);
        let started = Instant::now();
        let result = client
            .post(self.url.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .header("webhook-id", event_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body)
            .send()
            .await;
        let response = match result {
            Ok(r) => r,
            Err(e) => {
                let latency = started.elapsed();
                let (outcome, error) = if e.is_timeout() {
                    (Outcome::Timeout, "timed out".to_owned())
                } else {
                    let why = error_chain(&e);
                    (Outcome::Network(why.clone()), why)
                };
                return Sent {
                    outcome,
                    status: None,
                    latency,
                    response: None,
                    error: Some(error),
                };
            }
        };
        let code = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, now));
        let (text, body_error) = read_excerpt(response, excerpt).await;
        let latency = started.elapsed();
        let ok = (200..300).contains(&code);
        // The status is the answer: a body that breaks off after a 2xx does
        // not undo the delivery, it is only noted.
        let error = match (ok, body_error) {
            (true, None) => None,
            (true, Some(e)) => {
                tracing::debug!(error = %e, "webhook response body not read to the end");
                None
            }
            (false, None) => Some(format!("HTTP {code}")),
            (false, Some(e)) => Some(format!("HTTP {code}; {e}")),
        };
        Sent {
            outcome: Outcome::Status { code, retry_after },
            status: Some(code),
            latency,
            response: text,
            error,
        }
    }
}

/// `Retry-After` as delay-seconds or an HTTP date.
pub(crate) fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = DateTime::parse_from_rfc2822(value).ok()?;
    let wait = at.with_timezone(&Utc).signed_duration_since(now);
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

/// Reads at most `limit` bytes of the body, as lossy UTF-8.
pub(crate) async fn read_excerpt(
    mut response: reqwest::Response,
    limit: usize,
) -> (Option<String>, Option<String>) {
    let mut buf: Vec<u8> = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = limit.saturating_sub(buf.len());
                buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
                if buf.len() >= limit {
                    break;
                }
            }
            Ok(None) => break,
            Err(e) => {
                let text = (!buf.is_empty()).then(|| String::from_utf8_lossy(&buf).into_owned());
                return (text, Some(error_chain(&e)));
            }
        }
    }
    let text = (!buf.is_empty()).then(|| String::from_utf8_lossy(&buf).into_owned());
    (text, None)
}

/// An error with its causes, on one line (reqwest's own message names
/// only the outermost).
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now = DateTime::parse_from_rfc3339("2026-12-06T10:00:00Z")
            .map(|d| d.with_timezone(&Utc))
            .unwrap_or_default();
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Dec 2026 10:01:30 GMT", now),
            Some(Duration::from_secs(90))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Dec 2026 09:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
