//! The request body extractor: size limit, content type, JSON.
//!
//! actix's own `Json` extractor answers its failures with plain-text
//! bodies; SCIM clients get RFC 7644 §3.12 bodies for everything, so the
//! payload is read here.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};
use futures_util::StreamExt;
use serde_json::Value;

use crate::Shared;
use crate::error::ApiError;

/// Most of a refused (too large) body that is read and thrown away before
/// the 413 goes out. A client still sending its body would otherwise hit a
/// reset when the connection closes, and report a broken pipe instead of
/// our answer. Past this bound (or [`DRAIN_MAX_TIME`]) the connection is
/// simply closed: an abusive upload gets no more of our time.
const DRAIN_MAX_BYTES: usize = 16 << 20;

/// How long draining a refused body may take at most.
const DRAIN_MAX_TIME: Duration = Duration::from_secs(5);

/// Reads and discards what is left of `payload`, within the drain bounds.
async fn drain(payload: &mut Payload) {
    let discard = async {
        let mut seen = 0usize;
        while let Some(Ok(chunk)) = payload.next().await {
            seen += chunk.len();
            if seen > DRAIN_MAX_BYTES {
                break;
            }
        }
    };
    // Running out of time is the intended outcome for huge bodies.
    let _ = tokio::time::timeout(DRAIN_MAX_TIME, discard).await;
}

/// A request body parsed as JSON.
#[derive(Debug, Clone)]
pub struct ScimJson(pub Value);

impl FromRequest for ScimJson {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let limit = req
            .app_data::<web::Data<Shared>>()
            .map_or(1 << 20, |s| s.config.max_body_bytes);
        let checked = check_headers(req, limit);
        let mut payload = payload.take();
        Box::pin(async move {
            if let Err(e) = checked {
                if matches!(e, ApiError::PayloadTooLarge { .. }) {
                    drain(&mut payload).await;
                }
                return Err(e);
            }
            let mut buf = web::BytesMut::new();
            while let Some(chunk) = payload.next().await {
                let chunk = chunk.map_err(|e| {
                    scim::Error::InvalidSyntax(format!("the request body could not be read: {e}"))
                })?;
                if buf.len() + chunk.len() > limit {
                    drain(&mut payload).await;
                    return Err(ApiError::PayloadTooLarge { limit });
                }
                buf.extend_from_slice(&chunk);
            }
            parse(&buf).map(ScimJson)
        })
    }
}

/// Content type and declared length, checked before reading anything.
fn check_headers(req: &HttpRequest, limit: usize) -> Result<(), ApiError> {
    if let Some(ct) = req.headers().get(header::CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or("");
        let essence = ct.split(';').next().unwrap_or("").trim();
        let ok = ["application/scim+json", "application/json"]
            .iter()
            .any(|t| essence.eq_ignore_ascii_case(t));
        if !ok {
            return Err(scim::Error::InvalidSyntax(format!(
                "unsupported Content-Type '{}'; send application/scim+json or application/json",
                ct.chars().take(100).collect::<String>()
            ))
            .into());
        }
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    Ok(())
}

/// Parses a body; invalid UTF-8 and malformed JSON are both `invalidSyntax`.
fn parse(bytes: &[u8]) -> Result<Value, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(scim::Error::InvalidSyntax("the request body is empty".into()).into());
    }
    // serde_json bounds nesting (128 levels), so deep input cannot
    // exhaust the stack.
    serde_json::from_slice(bytes).map_err(|e| {
        scim::Error::InvalidSyntax(format!("the request body is not valid JSON: {e}")).into()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_bodies_are_invalid_syntax() {
        for bad in [
            &b""[..],
            b"  ",
            b"{",
            b"{\"a\":}",
            b"\xff\xfe{}",
            b"{\"a\":\"\xc3\x28\"}",
        ] {
            let e = parse(bad).unwrap_err();
            match e {
                ApiError::Scim(scim::Error::InvalidSyntax(_)) => {}
                other => panic!("{bad:?}: {other:?}"),
            }
        }
        let deep = "[".repeat(10_000);
        assert!(parse(deep.as_bytes()).is_err());
        assert_eq!(parse(b"{\"a\":1}").unwrap()["a"], 1);
    }

    #[test]
    fn content_types() {
        let req = |ct: &str| {
            actix_web::test::TestRequest::default()
                .insert_header((header::CONTENT_TYPE, ct))
                .to_http_request()
        };
        assert!(check_headers(&req("application/scim+json"), 10).is_ok());
        assert!(check_headers(&req("application/json; charset=utf-8"), 10).is_ok());
        assert!(check_headers(&req("Application/SCIM+JSON"), 10).is_ok());
        assert!(check_headers(&req("text/plain"), 10).is_err());
        let none = actix_web::test::TestRequest::default().to_http_request();
        assert!(check_headers(&none, 10).is_ok());
        let long = actix_web::test::TestRequest::default()
            .insert_header((header::CONTENT_LENGTH, "11"))
            .to_http_request();
        assert!(matches!(
            check_headers(&long, 10),
            Err(ApiError::PayloadTooLarge { limit: 10 })
        ));
    }
}
