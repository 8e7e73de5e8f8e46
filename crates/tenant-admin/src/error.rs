//! The one wire error of the admin API: `{"error": "<code>", "message": "..."}`.
//!
//! Every failure, whether raised by a handler, the store, the session check
//! or actix's own extractors (malformed JSON, query strings, oversized
//! bodies), becomes an [`AdminError`] and is rendered here, so status codes
//! and codes are decided in one place. Causes a client must not see
//! (database errors, bugs) are logged with a reference that the message
//! carries, so an operator can find them.

use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use roles::EditError;
use serde::Serialize;
use store::StoreError;
use utoipa::ToSchema;

use crate::service::ServiceError;

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// A stable machine-readable code: `invalid_request`, `unauthorized`,
    /// `forbidden`, `not_found`, `method_not_allowed`, `conflict`,
    /// `precondition_failed`, `payload_too_large`, `unsupported_media_type`,
    /// `too_many_requests`, `unavailable` or `internal`.
    pub error: String,
    /// What went wrong, for people.
    pub message: String,
}

/// Why an admin request failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// Malformed or invalid input (400).
    #[error("{0}")]
    BadRequest(String),
    /// No valid session (401); the message says which part failed, never
    /// which credential was wrong.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// A valid session that may not do this (403).
    #[error("{0}")]
    Forbidden(String),
    /// No such thing, or one the caller may not see (404).
    #[error("{0} not found")]
    NotFound(String),
    /// The path exists, the method does not (405).
    #[error("method {method} is not allowed here; allowed: {allow}")]
    MethodNotAllowed {
        /// The method used.
        method: String,
        /// The methods the path supports.
        allow: String,
    },
    /// The change conflicts with the current state (409).
    #[error("{0}")]
    Conflict(String),
    /// `If-Match` names a version that is not the current one (412).
    #[error("version mismatch: the current version is {current}")]
    PreconditionFailed {
        /// The current version.
        current: u64,
    },
    /// `If-Match` and the body's `version` name different versions, so no
    /// state can satisfy the request's precondition (412).
    #[error("{0}")]
    ContradictoryPrecondition(String),
    /// The body is over the limit (413).
    #[error("request body exceeds the limit of {limit} bytes")]
    PayloadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The body is not JSON (415).
    #[error("request body must be JSON (Content-Type: application/json)")]
    UnsupportedMediaType,
    /// A store failure, mapped per variant.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A service failure, mapped per variant.
    #[error(transparent)]
    Service(#[from] ServiceError),
    /// A bug in the admin API (500); the cause is logged only.
    #[error("internal error: {0}")]
    Internal(String),
}

impl AdminError {
    /// The machine-readable code.
    pub fn code(&self) -> &'static str {
        match self.status_code().as_u16() {
            400 => "invalid_request",
            401 => "unauthorized",
            403 => "forbidden",
            404 => "not_found",
            405 => "method_not_allowed",
            409 => "conflict",
            412 => "precondition_failed",
            413 => "payload_too_large",
            415 => "unsupported_media_type",
            429 => "too_many_requests",
            503 => "unavailable",
            _ => "internal",
        }
    }

    /// True for causes that go to the log instead of the client.
    fn is_hidden(&self) -> bool {
        matches!(
            self,
            AdminError::Store(StoreError::Internal(_) | StoreError::Unavailable(_))
                | AdminError::Service(
                    ServiceError::Store(StoreError::Internal(_) | StoreError::Unavailable(_))
                        | ServiceError::Internal(_)
                )
                | AdminError::Internal(_)
        )
    }

    /// What the caller is told: the error itself, or, for causes that go
    /// to the log (database down, bugs), a reference to the log entry.
    pub(crate) fn public_message(&self) -> String {
        let status = self.status_code();
        if self.is_hidden() {
            let reference = uuid::Uuid::new_v4();
            tracing::error!(%reference, error = %self, "admin API request failed");
            if status == StatusCode::SERVICE_UNAVAILABLE {
                format!("the database is unavailable; retry later (reference {reference})")
            } else {
                format!("internal error (reference {reference})")
            }
        } else {
            match self {
                AdminError::Store(StoreError::NotFound(what))
                | AdminError::Service(ServiceError::Store(StoreError::NotFound(what))) => {
                    format!("{what} not found")
                }
                AdminError::Service(ServiceError::Edit {
                    source: EditError::UnknownRole(name),
                    on_target: true,
                }) => format!("role {name:?} not found"),
                other => other.to_string(),
            }
        }
    }
}

impl ResponseError for AdminError {
    fn status_code(&self) -> StatusCode {
        let code = match self {
            AdminError::BadRequest(_) => 400,
            AdminError::Unauthorized(_) => 401,
            AdminError::Forbidden(_) => 403,
            AdminError::NotFound(_) => 404,
            AdminError::MethodNotAllowed { .. } => 405,
            AdminError::Conflict(_) => 409,
            AdminError::PreconditionFailed { .. } | AdminError::ContradictoryPrecondition(_) => 412,
            AdminError::PayloadTooLarge { .. } => 413,
            AdminError::UnsupportedMediaType => 415,
            AdminError::Store(e) => store_status(e),
            AdminError::Service(e) => match e {
                ServiceError::Invalid(_) => 400,
                ServiceError::WrongCredentials => 401,
                ServiceError::Forbidden(_) => 403,
                ServiceError::NotFound(_) | ServiceError::NoSuchTenant(_) => 404,
                ServiceError::Edit { source, on_target } => match source {
                    EditError::UnknownRole(_) if *on_target => 404,
                    EditError::UnknownMapping(_) => 404,
                    EditError::UnknownRole(_) | EditError::Invalid(_) => 400,
                    EditError::RoleExists(_)
                    | EditError::RoleInUse { .. }
                    | EditError::DuplicateMapping => 409,
                },
                ServiceError::Conflict(_) | ServiceError::ConcurrentChange { .. } => 409,
                ServiceError::PreconditionFailed { .. } => 412,
                ServiceError::Throttled { .. } => 429,
                ServiceError::Store(e) => store_status(e),
                ServiceError::Internal(_) => 500,
            },
            AdminError::Internal(_) => 500,
        };
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let message = self.public_message();
        let mut response = HttpResponse::build(status);
        match self {
            AdminError::Unauthorized(_) => {
                response.insert_header((
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"scimgate admin\""),
                ));
            }
            AdminError::MethodNotAllowed { allow, .. } => {
                if let Ok(value) = HeaderValue::from_str(allow) {
                    response.insert_header((header::ALLOW, value));
                }
            }
            AdminError::Service(ServiceError::WrongCredentials) => {
                response.insert_header((
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"scimgate admin\""),
                ));
            }
            AdminError::Service(ServiceError::Throttled { retry_after }) => {
                // Whole seconds, rounded up: a client that waits exactly
                // this long is let through.
                let secs = crate::service::retry_secs(*retry_after);
                response.insert_header((header::RETRY_AFTER, secs.to_string()));
            }
            _ => {}
        }
        response.json(ErrorBody {
            error: self.code().to_owned(),
            message,
        })
    }
}

fn store_status(e: &StoreError) -> u16 {
    match e {
        StoreError::NotFound(_) => 404,
        StoreError::Uniqueness(_) | StoreError::Conflict(_) => 409,
        StoreError::PreconditionFailed { .. } => 412,
        // Protocol errors raised here are the caller's input (a bad
        // filter); none of them is a server fault.
        StoreError::InvalidValue(_) | StoreError::TooMany(_) | StoreError::Scim(_) => 400,
        StoreError::Unavailable(_) => 503,
        StoreError::Internal(_) => 500,
    }
}

/// `JsonConfig` error handler: malformed JSON, wrong types and unknown
/// fields are 400 with serde's message, oversized bodies 413.
pub(crate) fn json_error(err: JsonPayloadError, _req: &HttpRequest) -> actix_web::Error {
    let mapped = match err {
        JsonPayloadError::OverflowKnownLength { limit, .. }
        | JsonPayloadError::Overflow { limit } => AdminError::PayloadTooLarge { limit },
        JsonPayloadError::ContentType => AdminError::UnsupportedMediaType,
        JsonPayloadError::Deserialize(e) => {
            AdminError::BadRequest(format!("invalid JSON body: {e}"))
        }
        JsonPayloadError::Payload(actix_web::error::PayloadError::Overflow) => {
            AdminError::PayloadTooLarge {
                limit: crate::MAX_BODY_BYTES,
            }
        }
        other => AdminError::BadRequest(format!("cannot read the request body: {other}")),
    };
    mapped.into()
}

/// `QueryConfig` error handler.
pub(crate) fn query_error(err: QueryPayloadError, _req: &HttpRequest) -> actix_web::Error {
    let message = match err {
        QueryPayloadError::Deserialize(e) => format!("invalid query string: {e}"),
        other => format!("invalid query string: {other}"),
    };
    AdminError::BadRequest(message).into()
}

/// `PathConfig` error handler.
pub(crate) fn path_error(err: PathError, _req: &HttpRequest) -> actix_web::Error {
    let message = match err {
        PathError::Deserialize(e) => format!("invalid path: {e}"),
        other => format!("invalid path: {other}"),
    };
    AdminError::BadRequest(message).into()
}
