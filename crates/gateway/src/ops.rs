//! One function per SCIM operation: validate with `scim`, run on the
//! tenant's store. Handlers call these and nothing else touches the store
//! for writes, so super-tenant fan-out (a later issue) hooks in here.
//!
//! Passwords: `validate_resource` takes a `password` out of the document
//! (it is writeOnly and never stored). scimgate does not authenticate
//! users, so the cleartext is dropped here, never stored or logged; a later
//! issue may forward it to the tenant's application.

use scim::patch::{self, Member, PatchRequest};
use scim::validate::{Mode, validate_resource};
use serde_json::Value;
use store::{ListQuery, Page, Resource, TenantStore};

use crate::error::ApiError;
use crate::render::{self, Kind};

/// An `If-Match` header, as far as it can be understood without the
/// resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum IfMatch {
    /// No header, or `*` (any current version; a missing resource is 404).
    Any,
    /// One entity tag naming a version (`W/"3"` or `"3"`).
    Version(u64),
    /// Anything else; evaluated against the current version.
    Other(String),
}

impl IfMatch {
    pub(crate) fn parse(header: Option<&str>) -> IfMatch {
        let Some(h) = header.map(str::trim) else {
            return IfMatch::Any;
        };
        if h == "*" {
            return IfMatch::Any;
        }
        let tag = h.strip_prefix("W/").unwrap_or(h);
        let version = tag
            .strip_prefix('"')
            .and_then(|t| t.strip_suffix('"'))
            .filter(|t| {
                !t.is_empty()
                    && t.bytes().all(|b| b.is_ascii_digit())
                    && !(t.len() > 1 && t.starts_with('0'))
            })
            .and_then(|t| t.parse::<u64>().ok());
        match version {
            Some(v) => IfMatch::Version(v),
            None => IfMatch::Other(h.to_owned()),
        }
    }

    /// The version to hand the store, given the current one when the
    /// header needs it; 412 when it matches nothing.
    fn resolve(&self, current: Option<u64>) -> Result<Option<u64>, ApiError> {
        match self {
            IfMatch::Any => Ok(None),
            IfMatch::Version(v) => Ok(Some(*v)),
            IfMatch::Other(h) => match current {
                Some(c) if scim::meta::if_match(h, c) => Ok(Some(c)),
                _ => Err(scim::Error::PreconditionFailed(
                    "If-Match does not match the current version".into(),
                )
                .into()),
            },
        }
    }

    fn needs_current(&self) -> bool {
        matches!(self, IfMatch::Other(_))
    }
}

/// The stored document: no `id`, `meta` or table-backed attributes
/// (`members`, `groups`, and the scimgate extension of effective roles,
/// whose URN also leaves `schemas`). Validation already ignores the
/// extension's readOnly attributes; this also drops a URN a client listed
/// and a copy PUT carried over from a document stored before the
/// extension was defined.
fn strip(mut doc: Value) -> Value {
    if let Some(o) = doc.as_object_mut() {
        for k in ["id", "meta", "members", "groups"] {
            o.shift_remove(k);
        }
        o.retain(|k, _| !render::is_roles_urn(k));
        if let Some(Value::Array(urns)) = o.get_mut("schemas") {
            urns.retain(|u| !u.as_str().is_some_and(render::is_roles_urn));
        }
    }
    doc
}

/// The stored document with its `id`, so PATCH bodies that echo the id
/// (Okta does on group rename) compare equal instead of failing.
fn with_id(doc: &Value, id: &str) -> Value {
    let mut doc = doc.clone();
    if let Some(o) = doc.as_object_mut() {
        o.insert("id".into(), Value::String(id.to_owned()));
    }
    doc
}

/// Takes `members` out of a validated Group document.
fn take_members(doc: &mut Value) -> Result<Vec<Member>, ApiError> {
    let Some(members) = doc.as_object_mut().and_then(|o| o.shift_remove("members")) else {
        return Ok(Vec::new());
    };
    match members {
        Value::Array(items) => Ok(items
            .iter()
            .map(Member::from_json)
            .collect::<Result<Vec<_>, _>>()?),
        Value::Null => Ok(Vec::new()),
        other => Ok(vec![Member::from_json(&other)?]),
    }
}

/// POST /Users
pub(crate) async fn create_user(dir: &TenantStore, body: &Value) -> Result<Resource, ApiError> {
    let v = validate_resource(body, Kind::User.schema(), Mode::Create)?;
    Ok(dir.create_user(strip(v.document)).await?)
}

/// GET /Users/{id}
pub(crate) async fn get_user(dir: &TenantStore, id: &str) -> Result<Resource, ApiError> {
    Ok(dir.get_user(id).await?)
}

/// PUT /Users/{id}
pub(crate) async fn replace_user(
    dir: &TenantStore,
    id: &str,
    body: &Value,
    if_match: &IfMatch,
) -> Result<Resource, ApiError> {
    let current = dir.get_user(id).await?;
    let expected = if_match.resolve(Some(current.version))?;
    let existing = with_id(&current.document, &current.id);
    let v = validate_resource(
        body,
        Kind::User.schema(),
        Mode::Replace {
            existing: &existing,
        },
    )?;
    Ok(dir.replace_user(id, strip(v.document), expected).await?)
}

/// PATCH /Users/{id}
pub(crate) async fn patch_user(
    dir: &TenantStore,
    id: &str,
    body: &Value,
    if_match: &IfMatch,
) -> Result<Resource, ApiError> {
    let req = PatchRequest::from_json(body)?;
    let current = match if_match.needs_current() {
        true => Some(dir.get_user(id).await?.version),
        false => None,
    };
    let expected = if_match.resolve(current)?;
    let schema = Kind::User.schema();
    let res = dir
        .modify_user(id, expected, move |current| {
            let doc = with_id(&current.document, &current.id);
            let out = patch::apply(&doc, &req, schema)?;
            if !out.modified() {
                return Ok(current.document.clone());
            }
            let v = validate_resource(&out.document, schema, Mode::Replace { existing: &doc })?;
            Ok(strip(v.document))
        })
        .await?;
    Ok(res)
}

/// DELETE /Users/{id}
pub(crate) async fn delete_user(
    dir: &TenantStore,
    id: &str,
    if_match: &IfMatch,
) -> Result<Vec<store::copies::Routed>, ApiError> {
    let current = match if_match.needs_current() {
        true => Some(dir.get_user(id).await?.version),
        false => None,
    };
    Ok(dir.delete_user(id, if_match.resolve(current)?).await?)
}

/// GET /Users, POST /Users/.search
pub(crate) async fn list_users(dir: &TenantStore, query: &ListQuery) -> Result<Page, ApiError> {
    Ok(dir.list_users(query).await?)
}

/// POST /Groups; returns the group and the members it was created with.
pub(crate) async fn create_group(
    dir: &TenantStore,
    body: &Value,
) -> Result<(Resource, Vec<Member>), ApiError> {
    let v = validate_resource(body, Kind::Group.schema(), Mode::Create)?;
    let mut doc = v.document;
    let members = take_members(&mut doc)?;
    let res = dir.create_group(strip(doc), members.clone()).await?;
    Ok((res, members))
}

/// GET /Groups/{id}
pub(crate) async fn get_group(
    dir: &TenantStore,
    id: &str,
    with_members: bool,
) -> Result<Resource, ApiError> {
    Ok(dir.get_group(id, with_members).await?)
}

/// PUT /Groups/{id}; returns the group and its new member set.
pub(crate) async fn replace_group(
    dir: &TenantStore,
    id: &str,
    body: &Value,
    if_match: &IfMatch,
) -> Result<(Resource, Vec<Member>), ApiError> {
    let current = dir.get_group(id, false).await?;
    let expected = if_match.resolve(Some(current.version))?;
    let existing = with_id(&current.document, &current.id);
    let v = validate_resource(
        body,
        Kind::Group.schema(),
        Mode::Replace {
            existing: &existing,
        },
    )?;
    let mut doc = v.document;
    let members = take_members(&mut doc)?;
    let res = dir
        .replace_group(id, strip(doc), members.clone(), expected)
        .await?;
    Ok((res, members))
}

/// A patched group, and whether every operation touched only `members`.
pub(crate) struct PatchedGroup {
    /// The group as written (without members).
    pub(crate) group: Resource,
    /// No operation touched anything but `members`.
    pub(crate) members_only: bool,
}

/// PATCH /Groups/{id}: member operations become a delta the store applies
/// in O(change); the rest is applied to the member-less document.
pub(crate) async fn patch_group(
    dir: &TenantStore,
    id: &str,
    body: &Value,
    if_match: &IfMatch,
) -> Result<PatchedGroup, ApiError> {
    let schema = Kind::Group.schema();
    let req = PatchRequest::from_json(body)?;
    let (rest, changes) = patch::split_member_changes(&req, schema)?;
    let members_only = rest.operations.is_empty() && !changes.is_empty();
    let current = match if_match.needs_current() {
        true => Some(dir.get_group(id, false).await?.version),
        false => None,
    };
    let expected = if_match.resolve(current)?;
    let res = dir
        .modify_group(id, expected, move |current| {
            if rest.operations.is_empty() {
                return Ok((current.document.clone(), changes.clone()));
            }
            let doc = with_id(&current.document, &current.id);
            let out = patch::apply(&doc, &rest, schema)?;
            if !out.modified() {
                return Ok((current.document.clone(), changes.clone()));
            }
            let v = validate_resource(&out.document, schema, Mode::Replace { existing: &doc })?;
            Ok((strip(v.document), changes.clone()))
        })
        .await?;
    Ok(PatchedGroup {
        group: res,
        members_only,
    })
}

/// DELETE /Groups/{id}
pub(crate) async fn delete_group(
    dir: &TenantStore,
    id: &str,
    if_match: &IfMatch,
) -> Result<Vec<store::copies::Routed>, ApiError> {
    let current = match if_match.needs_current() {
        true => Some(dir.get_group(id, false).await?.version),
        false => None,
    };
    Ok(dir.delete_group(id, if_match.resolve(current)?).await?)
}

/// GET /Groups, POST /Groups/.search
pub(crate) async fn list_groups(dir: &TenantStore, query: &ListQuery) -> Result<Page, ApiError> {
    Ok(dir.list_groups(query).await?)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn if_match_forms() {
        assert_eq!(IfMatch::parse(None), IfMatch::Any);
        assert_eq!(IfMatch::parse(Some(" * ")), IfMatch::Any);
        assert_eq!(IfMatch::parse(Some("W/\"3\"")), IfMatch::Version(3));
        assert_eq!(IfMatch::parse(Some("\"12\"")), IfMatch::Version(12));
        assert!(matches!(
            IfMatch::parse(Some("W/\"03\"")),
            IfMatch::Other(_)
        ));
        assert!(matches!(
            IfMatch::parse(Some("W/\"1\", W/\"2\"")),
            IfMatch::Other(_)
        ));
        assert!(matches!(IfMatch::parse(Some("garbage")), IfMatch::Other(_)));
        assert!(matches!(
            IfMatch::parse(Some("\"99999999999999999999999\"")),
            IfMatch::Other(_)
        ));
        let list = IfMatch::parse(Some("W/\"1\", W/\"2\""));
        assert_eq!(list.resolve(Some(2)).unwrap(), Some(2));
        assert!(list.resolve(Some(5)).is_err());
        assert!(IfMatch::parse(Some("garbage")).resolve(Some(1)).is_err());
    }

    #[test]
    fn documents_are_stored_without_rendered_attributes() {
        let doc = json!({"schemas": [], "id": "x", "meta": {}, "members": [], "displayName": "a"});
        assert_eq!(strip(doc), json!({"schemas": [], "displayName": "a"}));
        let roles = scim::schemas::SCIMGATE_USER;
        let user = json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", roles.to_uppercase()],
            "userName": "u",
            roles: {"locked": true}
        });
        assert_eq!(
            strip(user),
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "u"})
        );
        let mut g = json!({"displayName": "g", "members": [{"value": "u1", "display": "U"}]});
        let m = take_members(&mut g).unwrap();
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].value, "u1");
        assert_eq!(g, json!({"displayName": "g"}));
    }
}
