//! The handlers, one module per area, and the conversions from store types
//! to wire types they share.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use store::{LockInfo, Scope, Tenant, TenantKind, TenantStatus, TokenInfo};

use crate::error::AdminError;
use crate::wire::{LockView, ScopeWire, TenantKindWire, TenantStatusWire, TenantView, TokenView};

pub(crate) mod delivery;
pub(crate) mod directory;
pub(crate) mod health;
pub(crate) mod logs;
pub(crate) mod roles;
pub(crate) mod safety;
pub(crate) mod session;
pub(crate) mod setup_links;
pub(crate) mod super_tenants;
pub(crate) mod tenants;
pub(crate) mod tokens;

/// The `{id}` of a path (the `{tenant}` is resolved by the middleware).
#[derive(Debug, Deserialize)]
pub(crate) struct IdPath {
    pub(crate) id: String,
}

/// The `{name}` of a role path.
#[derive(Debug, Deserialize)]
pub(crate) struct NamePath {
    pub(crate) name: String,
}

impl From<scim::Error> for AdminError {
    fn from(e: scim::Error) -> Self {
        AdminError::BadRequest(e.to_string())
    }
}

pub(crate) fn tenant_view(t: &Tenant) -> TenantView {
    TenantView {
        id: t.id().to_string(),
        slug: t.slug().to_owned(),
        name: t.name().to_owned(),
        kind: match t.kind() {
            TenantKind::Standard => TenantKindWire::Standard,
            TenantKind::Super => TenantKindWire::Super,
        },
        status: match t.status() {
            TenantStatus::Active => TenantStatusWire::Active,
            TenantStatus::Suspended => TenantStatusWire::Suspended,
        },
        created_at: t.created_at(),
        scim_path: format!("/tenants/{}/scim/v2", t.slug()),
    }
}

pub(crate) fn token_view(t: TokenInfo) -> TokenView {
    TokenView {
        id: t.id.to_string(),
        name: t.name,
        scopes: t
            .scopes
            .into_iter()
            .map(|s| match s {
                Scope::ScimWrite => ScopeWire::ScimWrite,
                Scope::ScimRead => ScopeWire::ScimRead,
                Scope::EventsRead => ScopeWire::EventsRead,
            })
            .collect(),
        created_at: t.created_at,
        expires_at: t.expires_at,
        revoked_at: t.revoked_at,
    }
}

pub(crate) fn lock_view(l: LockInfo) -> LockView {
    LockView {
        user_id: l.user_id,
        roles: l.roles,
        reason: l.reason,
        locked_by: l.locked_by,
        locked_at: l.locked_at,
    }
}

/// A JSON request body that must be an object: serde would also read a
/// struct from an array (`[null, null]`), which the document forbids.
/// Size, content type and syntax errors are `web::Json`'s, mapped by the
/// scope's `JsonConfig`.
#[derive(Debug)]
pub(crate) struct JsonBody<T>(pub(crate) T);

impl<T> JsonBody<T> {
    pub(crate) fn into_inner(self) -> T {
        self.0
    }
}

impl<T> std::ops::Deref for JsonBody<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for JsonBody<T> {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let value = web::Json::<serde_json::Value>::from_request(req, payload);
        Box::pin(async move {
            let web::Json(mut value) = value.await?;
            whole_numbers(&mut value);
            if !value.is_object() {
                return Err(AdminError::BadRequest(
                    "invalid JSON body: expected a JSON object".into(),
                )
                .into());
            }
            serde_json::from_value(value)
                .map(JsonBody)
                .map_err(|e| AdminError::BadRequest(format!("invalid JSON body: {e}")).into())
        })
    }
}

/// Writes integral floats (`45.0`) as integers: JSON Schema's `integer`,
/// which the OpenAPI document promises, includes them, and serde's
/// integer fields would refuse them.
fn whole_numbers(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Number(n) if n.is_f64() => {
            let Some(f) = n.as_f64().filter(|f| f.fract() == 0.0) else {
                return;
            };
            // Exactly representable whole numbers only (|f| < 2^63).
            if f.abs() < 9.223_372_036_854_776e18 {
                *value = Value::from(f as i64);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(whole_numbers),
        Value::Object(map) => map.values_mut().for_each(whole_numbers),
        _ => {}
    }
}

/// A query parameter within the bounds the OpenAPI document declares.
pub(crate) fn bounded(
    name: &str,
    value: Option<u64>,
    min: u64,
    max: u64,
) -> Result<Option<u64>, AdminError> {
    match value {
        Some(v) if v < min || v > max => Err(AdminError::BadRequest(format!(
            "{name} must be between {min} and {max}"
        ))),
        other => Ok(other),
    }
}

/// A `beforeId` cursor: ids start at 1.
pub(crate) fn cursor(value: Option<i64>) -> Result<Option<i64>, AdminError> {
    match value {
        Some(v) if v < 1 => Err(AdminError::BadRequest("beforeId must be at least 1".into())),
        other => Ok(other),
    }
}

/// The largest offset-like value the databases take (a signed 64-bit
/// integer).
pub(crate) const MAX_INT64: u64 = i64::MAX as u64;

/// An RFC 3339 timestamp from a query parameter.
pub(crate) fn timestamp(
    name: &str,
    value: Option<&str>,
) -> Result<Option<DateTime<Utc>>, AdminError> {
    value
        .map(|v| {
            DateTime::parse_from_rfc3339(v.trim())
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| {
                    AdminError::BadRequest(format!(
                        "{name} must be an RFC 3339 timestamp such as 2026-01-31T12:00:00Z"
                    ))
                })
        })
        .transpose()
}

/// The version a versioned change expects: its `If-Match` header's or its
/// body's `version`; when both are given and differ, no state can satisfy
/// both, so the precondition fails (412) (`None`: any version).
pub(crate) fn expected_version(
    req: &HttpRequest,
    body_version: Option<u64>,
) -> Result<Option<u64>, AdminError> {
    let body_version = bounded("version", body_version, 0, MAX_INT64)?;
    match (if_match(req)?, body_version) {
        (Some(h), Some(b)) if h != b => Err(AdminError::ContradictoryPrecondition(format!(
            "If-Match names version {h} but the body's version is {b}; no version satisfies both"
        ))),
        (h, b) => Ok(h.or(b)),
    }
}

/// The version an `If-Match` header names: `"3"`, `W/"3"` or `3`; `*` and
/// no header mean any version.
pub(crate) fn if_match(req: &HttpRequest) -> Result<Option<u64>, AdminError> {
    let Some(value) = req.headers().get(header::IF_MATCH) else {
        return Ok(None);
    };
    let bad = || AdminError::BadRequest("If-Match must name a policy version, e.g. \"3\"".into());
    let text = value.to_str().map_err(|_| bad())?.trim();
    if text == "*" {
        return Ok(None);
    }
    let text = text.strip_prefix("W/").unwrap_or(text);
    let inner = text
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(text);
    inner.parse::<u64>().map(Some).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    #[test]
    fn integral_floats_become_integers_and_others_stay() {
        let mut v = serde_json::json!({"a": 45.0, "b": [1.5, -3.0], "c": {"d": 1e300}, "e": "7.0"});
        whole_numbers(&mut v);
        assert_eq!(
            v,
            serde_json::json!({"a": 45, "b": [1.5, -3], "c": {"d": 1e300}, "e": "7.0"})
        );
        assert!(v["a"].is_u64());
    }

    #[test]
    fn if_match_spellings() {
        let with = |v: &str| {
            if_match(
                &TestRequest::default()
                    .insert_header((header::IF_MATCH, v))
                    .to_http_request(),
            )
        };
        assert_eq!(
            if_match(&TestRequest::default().to_http_request()).unwrap(),
            None
        );
        assert_eq!(with("\"3\"").unwrap(), Some(3));
        assert_eq!(with("W/\"3\"").unwrap(), Some(3));
        assert_eq!(with(" 12 ").unwrap(), Some(12));
        assert_eq!(with("*").unwrap(), None);
        for bad in ["\"x\"", "", "\"-1\"", "\"1\", \"2\""] {
            assert!(matches!(with(bad), Err(AdminError::BadRequest(_))), "{bad}");
        }
    }

    #[test]
    fn timestamps() {
        let t = timestamp("since", Some("2026-01-31T12:00:00+01:00"))
            .unwrap()
            .unwrap();
        assert_eq!(t.to_rfc3339(), "2026-01-31T11:00:00+00:00");
        assert!(timestamp("since", None).unwrap().is_none());
        let e = timestamp("until", Some("yesterday")).unwrap_err();
        assert!(e.to_string().starts_with("until must be"), "{e}");
    }
}
