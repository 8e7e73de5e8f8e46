//! The one protocol error type and its RFC 7644 §3.12 wire form.
//!
//! Every parse, validation and PATCH failure in this crate is an [`Error`].
//! Each variant knows its HTTP status and `scimType`; the gateway maps it to
//! a response in one place and never invents its own status codes for
//! protocol failures.

use serde_json::{Value, json};

use crate::schemas::ERROR;

/// The `scimType` values of RFC 7644 §3.12, Table 9.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScimType {
    /// The filter syntax was invalid or the filter is not supported.
    InvalidFilter,
    /// The filter yields too many results for the server to process.
    TooMany,
    /// One or more unique attribute values are already in use.
    Uniqueness,
    /// The attempted modification is not compatible with the attribute's mutability.
    Mutability,
    /// The request body structure was invalid or did not conform to the schema.
    InvalidSyntax,
    /// The "path" attribute was invalid or malformed.
    InvalidPath,
    /// The specified "path" did not yield an attribute that could be operated on.
    NoTarget,
    /// A required value was missing, or the value was not compatible.
    InvalidValue,
    /// The specified SCIM protocol version is not supported.
    InvalidVers,
    /// The request cannot be completed because of sensitive information in the URI.
    Sensitive,
}

impl ScimType {
    /// The wire spelling, exactly as RFC 7644 writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            ScimType::InvalidFilter => "invalidFilter",
            ScimType::TooMany => "tooMany",
            ScimType::Uniqueness => "uniqueness",
            ScimType::Mutability => "mutability",
            ScimType::InvalidSyntax => "invalidSyntax",
            ScimType::InvalidPath => "invalidPath",
            ScimType::NoTarget => "noTarget",
            ScimType::InvalidValue => "invalidValue",
            ScimType::InvalidVers => "invalidVers",
            ScimType::Sensitive => "sensitive",
        }
    }
}

impl std::fmt::Display for ScimType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A protocol-level failure, safe to show to the SCIM client.
///
/// Messages name the client's own input (an attribute, a path, an offset)
/// and never internal state, so `detail` can go on the wire as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A filter did not parse or exceeds the complexity budget.
    #[error("invalid filter at offset {offset}: {message}")]
    InvalidFilter {
        /// Byte offset into the filter string where the problem was found.
        offset: usize,
        /// What was wrong there.
        message: String,
    },
    /// A PATCH path or attribute path was malformed or names no attribute.
    #[error("invalid path: {0}")]
    InvalidPath(String),
    /// A PATCH path matched nothing that can be operated on.
    #[error("no target: {0}")]
    NoTarget(String),
    /// A value has the wrong type, is missing, or is otherwise unacceptable.
    #[error("invalid value: {0}")]
    InvalidValue(String),
    /// The request body is not valid JSON or not shaped like a SCIM message.
    #[error("invalid syntax: {0}")]
    InvalidSyntax(String),
    /// A write touched an attribute whose mutability forbids it.
    #[error("mutability: {0}")]
    Mutability(String),
    /// A unique attribute value is already taken.
    #[error("uniqueness: {0}")]
    Uniqueness(String),
    /// The request asks for more than the server will process.
    #[error("too many: {0}")]
    TooMany(String),
    /// An If-Match / version precondition failed (HTTP 412, no scimType).
    #[error("precondition failed: {0}")]
    PreconditionFailed(String),
    /// The resource does not exist (HTTP 404, no scimType).
    #[error("not found: {0}")]
    NotFound(String),
}

impl Error {
    /// Shorthand for an [`Error::InvalidFilter`].
    pub fn filter(offset: usize, message: impl Into<String>) -> Self {
        Error::InvalidFilter {
            offset,
            message: message.into(),
        }
    }

    /// The HTTP status code RFC 7644 assigns to this failure.
    pub fn status(&self) -> u16 {
        match self {
            Error::Uniqueness(_) => 409,
            Error::PreconditionFailed(_) => 412,
            Error::NotFound(_) => 404,
            Error::InvalidFilter { .. }
            | Error::InvalidPath(_)
            | Error::NoTarget(_)
            | Error::InvalidValue(_)
            | Error::InvalidSyntax(_)
            | Error::Mutability(_)
            | Error::TooMany(_) => 400,
        }
    }

    /// The `scimType` detail code, where RFC 7644 defines one for this failure.
    pub fn scim_type(&self) -> Option<ScimType> {
        match self {
            Error::InvalidFilter { .. } => Some(ScimType::InvalidFilter),
            Error::InvalidPath(_) => Some(ScimType::InvalidPath),
            Error::NoTarget(_) => Some(ScimType::NoTarget),
            Error::InvalidValue(_) => Some(ScimType::InvalidValue),
            Error::InvalidSyntax(_) => Some(ScimType::InvalidSyntax),
            Error::Mutability(_) => Some(ScimType::Mutability),
            Error::Uniqueness(_) => Some(ScimType::Uniqueness),
            Error::TooMany(_) => Some(ScimType::TooMany),
            Error::PreconditionFailed(_) | Error::NotFound(_) => None,
        }
    }

    /// The RFC 7644 §3.12 error body for this failure.
    pub fn to_body(&self) -> Value {
        error_body(self.status(), self.scim_type(), &self.to_string())
    }
}

/// Builds an RFC 7644 §3.12 error body; `status` is written as a string as
/// the RFC's examples do (Entra and Okta both parse it that way).
pub fn error_body(status: u16, scim_type: Option<ScimType>, detail: &str) -> Value {
    let mut body = json!({
        "schemas": [ERROR],
        "status": status.to_string(),
    });
    if let (Some(t), Some(obj)) = (scim_type, body.as_object_mut()) {
        obj.insert("scimType".into(), Value::String(t.as_str().into()));
    }
    if let Some(obj) = body.as_object_mut() {
        obj.insert("detail".into(), Value::String(detail.into()));
    }
    body
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_matches_rfc7644_example_shape() {
        let e = Error::Mutability("Attribute 'id' is readOnly".into());
        assert_eq!(
            e.to_body(),
            json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
                "status": "400",
                "scimType": "mutability",
                "detail": "mutability: Attribute 'id' is readOnly"
            })
        );
    }

    #[test]
    fn documented_filter_error_example_is_what_the_parser_says() {
        // docs/scim-protocol.md quotes this body; keep them in step.
        let e = crate::filter::parse("userName equals \"x\"").unwrap_err();
        assert_eq!(
            e.to_body()["detail"],
            "invalid filter at offset 9: expected compareOp (eq, ne, co, sw, ew, gt, ge, lt, \
             le) or 'pr' after attribute path 'userName', found 'equals'"
        );
        assert_eq!(e.to_body()["scimType"], "invalidFilter");
    }

    #[test]
    fn not_found_has_no_scim_type() {
        let e = Error::NotFound("Resource 2819c223 not found".into());
        let body = e.to_body();
        assert_eq!(body["status"], "404");
        assert!(body.get("scimType").is_none());
    }

    #[test]
    fn each_variant_maps_to_a_distinct_documented_status() {
        assert_eq!(Error::Uniqueness(String::new()).status(), 409);
        assert_eq!(Error::PreconditionFailed(String::new()).status(), 412);
        assert_eq!(Error::filter(3, "x").status(), 400);
        assert_eq!(
            Error::filter(3, "x").scim_type(),
            Some(ScimType::InvalidFilter)
        );
    }
}
