//! The one wire error: every failure a SCIM client sees is built here, as an
//! RFC 7644 §3.12 body with the status and `scimType` of its typed cause.
//!
//! Causes the client must not see (`StoreError::Internal`, `Unavailable`)
//! are logged here with the request id, and the body only carries that id.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use scim::ScimType;
use store::StoreError;

use crate::observe;

/// `Content-Type` of every SCIM response (RFC 7644 §3.1).
pub const SCIM_CONTENT_TYPE: &str = "application/scim+json; charset=utf-8";

/// Why a SCIM request failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A protocol error (bad filter, path, value, body, ...).
    #[error(transparent)]
    Scim(#[from] scim::Error),
    /// A store error; mapped per variant.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No usable bearer token, or one that does not open this URL (401).
    #[error("{0}")]
    Unauthorized(&'static str),
    /// A valid token that may not do this, or a suspended tenant (403).
    #[error("{0}")]
    Forbidden(String),
    /// The body is larger than the configured limit (413).
    #[error("request body exceeds the limit of {limit} bytes")]
    PayloadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The tenant's request rate is over its quota (429).
    #[error("too many requests; retry after {retry_after} s")]
    RateLimited {
        /// Seconds after which a retry will be admitted.
        retry_after: u64,
    },
    /// No SCIM endpoint at this path (404).
    #[error("no SCIM endpoint at {0}")]
    NoRoute(String),
    /// An RFC 7644 endpoint scimgate does not implement (501, RFC 7644
    /// §3.12: "Service provider does not support the request operation").
    #[error("{0} is not supported by this service provider")]
    NotImplemented(&'static str),
    /// The endpoint exists but not with this method (405).
    #[error("method {method} is not supported here; allowed: {allow}")]
    MethodNotAllowed {
        /// The method used.
        method: String,
        /// The methods the endpoint supports, for the `Allow` header.
        allow: &'static str,
    },
    /// The database is known to be unreachable (503): answered at once,
    /// with `Retry-After`. The outage is logged once when it is noticed,
    /// not per request.
    #[error("the database is unreachable; retry after {retry_after} s")]
    Unavailable {
        /// Seconds after which a retry may succeed (the next check).
        retry_after: u64,
    },
    /// A failure inside the gateway (500); the cause goes to the log only.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// The `scimType` for this error, where RFC 7644 defines one.
    pub fn scim_type(&self) -> Option<ScimType> {
        match self {
            ApiError::Scim(e) | ApiError::Store(StoreError::Scim(e)) => e.scim_type(),
            ApiError::Store(StoreError::Uniqueness(_)) => Some(ScimType::Uniqueness),
            ApiError::Store(StoreError::InvalidValue(_)) => Some(ScimType::InvalidValue),
            ApiError::Store(StoreError::TooMany(_)) => Some(ScimType::TooMany),
            _ => None,
        }
    }

    /// The `detail` a client may see. Internal causes are replaced by a
    /// generic text naming the request id, so an operator can find them.
    pub fn client_detail(&self) -> String {
        match self {
            ApiError::Store(StoreError::Internal(_)) | ApiError::Internal(_) => format!(
                "internal server error; request id {}",
                observe::current_request_id()
            ),
            ApiError::Store(StoreError::Unavailable(_)) | ApiError::Unavailable { .. } => format!(
                "the directory is temporarily unavailable; retry later (request id {})",
                observe::current_request_id()
            ),
            ApiError::Store(StoreError::Scim(e)) | ApiError::Scim(e) => e.to_string(),
            other => other.to_string(),
        }
    }

    /// True for failures whose cause must be logged rather than shown.
    fn is_hidden(&self) -> bool {
        matches!(
            self,
            ApiError::Store(StoreError::Internal(_) | StoreError::Unavailable(_))
                | ApiError::Internal(_)
        )
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        let code = match self {
            ApiError::Scim(e) | ApiError::Store(StoreError::Scim(e)) => e.status(),
            ApiError::Store(e) => match e {
                StoreError::NotFound(_) => 404,
                StoreError::Uniqueness(_) | StoreError::Conflict(_) => 409,
                StoreError::PreconditionFailed { .. } => 412,
                StoreError::InvalidValue(_) | StoreError::TooMany(_) => 400,
                StoreError::Unavailable(_) => 503,
                StoreError::Scim(e) => e.status(),
                StoreError::Internal(_) => 500,
            },
            ApiError::Unauthorized(_) => 401,
            ApiError::Forbidden(_) => 403,
            ApiError::PayloadTooLarge { .. } => 413,
            ApiError::RateLimited { .. } => 429,
            ApiError::NoRoute(_) => 404,
            ApiError::MethodNotAllowed { .. } => 405,
            ApiError::NotImplemented(_) => 501,
            ApiError::Unavailable { .. } => 503,
            ApiError::Internal(_) => 500,
        };
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        if self.is_hidden() {
            // The span carries the request id and tenant.
            tracing::error!(error = %self, debug = ?self, "request failed");
        }
        let detail = self.client_detail();
        let body = scim::error::error_body(status.as_u16(), self.scim_type(), &detail);
        let mut res = HttpResponse::build(status);
        res.insert_header((header::CONTENT_TYPE, SCIM_CONTENT_TYPE));
        match self {
            ApiError::Unauthorized(_) => {
                res.insert_header((
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"scimgate\""),
                ));
            }
            ApiError::RateLimited { retry_after } | ApiError::Unavailable { retry_after } => {
                res.insert_header((header::RETRY_AFTER, retry_after.to_string()));
            }
            ApiError::MethodNotAllowed { allow, .. } => {
                res.insert_header((header::ALLOW, *allow));
            }
            ApiError::PayloadTooLarge { .. } => {
                // The body was drained only up to a bound (see `body.rs`),
                // so the connection cannot safely carry another request.
                res.force_close();
            }
            _ => {}
        }
        let mut res = res.body(crate::render::encode(&body));
        res.extensions_mut().insert(observe::FailureNote {
            scim_type: self.scim_type().map(ScimType::as_str),
            detail,
        });
        res
    }
}

#[cfg(test)]
mod tests {
    use actix_web::body::MessageBody;
    use serde_json::{Value, json};

    use super::*;

    fn parts(e: ApiError) -> (u16, Value, HttpResponse) {
        let res = e.error_response();
        let status = res.status().as_u16();
        let (res, body) = res.into_parts();
        let bytes = body.try_into_bytes().unwrap_or_default();
        let value: Value = serde_json::from_slice(&bytes).unwrap();
        (status, value, res.set_body(()).map_into_boxed_body())
    }

    #[test]
    fn store_errors_map_to_rfc7644_statuses() {
        let cases: Vec<(StoreError, u16, Option<&str>)> = vec![
            (StoreError::NotFound("User 1".into()), 404, None),
            (
                StoreError::Uniqueness("userName taken".into()),
                409,
                Some("uniqueness"),
            ),
            (
                StoreError::Conflict("held change 4 is not held".into()),
                409,
                None,
            ),
            (StoreError::PreconditionFailed { current: 3 }, 412, None),
            (
                StoreError::InvalidValue("bad member".into()),
                400,
                Some("invalidValue"),
            ),
            (StoreError::TooMany("scan".into()), 400, Some("tooMany")),
            (
                StoreError::Scim(scim::Error::InvalidPath("x".into())),
                400,
                Some("invalidPath"),
            ),
            (StoreError::Unavailable("db down".into()), 503, None),
            (StoreError::Internal("corrupt row 7".into()), 500, None),
        ];
        for (e, status, scim_type) in cases {
            let (code, body, _) = parts(ApiError::Store(e));
            assert_eq!(code, status);
            assert_eq!(body["status"], json!(status.to_string()));
            assert_eq!(body["scimType"].as_str(), scim_type);
            assert_eq!(
                body["schemas"],
                json!(["urn:ietf:params:scim:api:messages:2.0:Error"])
            );
        }
    }

    #[test]
    fn internal_causes_never_reach_the_client() {
        for e in [
            ApiError::Store(StoreError::Internal("password=hunter2 at row 7".into())),
            ApiError::Store(StoreError::Unavailable("postgres://u:secret@db".into())),
            ApiError::Internal("secret".into()),
        ] {
            let (_, body, _) = parts(e);
            let detail = body["detail"].as_str().unwrap();
            assert!(
                !detail.contains("hunter2") && !detail.contains("secret"),
                "{detail}"
            );
            assert!(detail.contains("request id"), "{detail}");
        }
    }

    #[test]
    fn unauthorized_carries_a_bearer_challenge_and_429_a_retry_after() {
        let (code, _, res) = parts(ApiError::Unauthorized("missing bearer token"));
        assert_eq!(code, 401);
        assert_eq!(
            res.headers().get(header::WWW_AUTHENTICATE).unwrap(),
            "Bearer realm=\"scimgate\""
        );
        let (code, _, res) = parts(ApiError::RateLimited { retry_after: 2 });
        assert_eq!(code, 429);
        assert_eq!(res.headers().get(header::RETRY_AFTER).unwrap(), "2");
        assert_eq!(
            res.headers().get(header::CONTENT_TYPE).unwrap(),
            SCIM_CONTENT_TYPE
        );
    }

    #[test]
    fn a_known_outage_is_503_with_retry_after_and_no_cause() {
        let (code, body, res) = parts(ApiError::Unavailable { retry_after: 2 });
        assert_eq!(code, 503);
        assert_eq!(body["status"], "503");
        assert_eq!(
            body["schemas"],
            json!(["urn:ietf:params:scim:api:messages:2.0:Error"])
        );
        assert!(body.get("scimType").is_none());
        let detail = body["detail"].as_str().unwrap();
        assert!(detail.contains("temporarily unavailable"), "{detail}");
        assert_eq!(res.headers().get(header::RETRY_AFTER).unwrap(), "2");
    }

    #[test]
    fn scim_errors_keep_their_status_and_type() {
        let (code, body, _) = parts(ApiError::Scim(scim::Error::filter(4, "bad")));
        assert_eq!(code, 400);
        assert_eq!(body["scimType"], "invalidFilter");
        let (code, body, _) = parts(ApiError::PayloadTooLarge { limit: 10 });
        assert_eq!(code, 413);
        assert!(body.get("scimType").is_none());
    }
}
