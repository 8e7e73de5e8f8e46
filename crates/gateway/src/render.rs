//! Stored resources to SCIM responses: `id`, `meta`, the attributes kept in
//! tables (`members`, `groups`, the scimgate extension's effective roles),
//! projection, headers.

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse};
use roles::{Effective, Reason};
use scim::meta::{Meta, etag, location};
use scim::patch::Member;
use scim::schemas::{LIST_RESPONSE, SCIMGATE_USER};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};
use store::{GroupRef, Resource};

use crate::GatewayConfig;
use crate::error::SCIM_CONTENT_TYPE;

/// The base URL of the SCIM endpoint the request addressed: the tenant's
/// slug route or the token-resolved one, under the configured public URL
/// or, failing that, the scheme and host the request names.
pub(crate) fn base_url(req: &HttpRequest, config: &GatewayConfig, slug: &str) -> String {
    let origin = match &config.public_url {
        Some(u) => u.trim_end_matches('/').to_owned(),
        None => {
            let info = req.connection_info();
            format!("{}://{}", info.scheme(), info.host())
        }
    };
    if req.match_info().get("slug").is_some() {
        format!("{origin}/tenants/{slug}/scim/v2")
    } else {
        format!("{origin}/scim/v2")
    }
}

/// The resource types this service serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `/Users`
    User,
    /// `/Groups`
    Group,
}

// Names, endpoints and URNs come from the schema registry, the one place
// that knows them.
impl Kind {
    pub(crate) fn name(self) -> &'static str {
        &self.schema().resource_type.name
    }
    pub(crate) fn endpoint(self) -> &'static str {
        self.schema().resource_type.endpoint.trim_start_matches('/')
    }
    pub(crate) fn schema(self) -> scim::ResourceSchema<'static> {
        match self {
            Kind::User => scim::ResourceSchema::user(),
            Kind::Group => scim::ResourceSchema::group(),
        }
    }
}

/// The absolute URI of a resource.
pub(crate) fn resource_location(base: &str, kind: Kind, id: &str) -> String {
    location(base, kind.endpoint(), id)
}

/// What a resource's location is its id appended to.
pub(crate) fn location_prefix(base: &str, kind: Kind) -> String {
    let mut prefix = resource_location(base, kind, "");
    prefix.push('/');
    prefix
}

/// True for the URN of scimgate's User extension
/// ([`SCIMGATE_USER`]), which responses render from the effective-roles
/// table and stored documents never hold.
pub(crate) fn is_roles_urn(urn: &str) -> bool {
    urn.eq_ignore_ascii_case(SCIMGATE_USER)
}

/// The full representation of a stored resource (before projection):
/// `schemas`, `id`, the document, the table-backed attribute if loaded,
/// the scimgate extension if the user has effective roles, then `meta`.
///
/// The extension and its URN in `schemas` come only from `roles`: a copy
/// in the document (a client could store one under the URN before
/// scimgate defined it) is never shown.
pub(crate) fn resource(
    res: Resource,
    kind: Kind,
    extra: Option<Value>,
    roles: Option<&Effective>,
    base: &str,
) -> Value {
    let doc = match res.document {
        Value::Object(doc) => doc,
        _ => Map::new(),
    };
    let mut out = Map::with_capacity(doc.len() + 4);
    let mut schemas = match doc.get("schemas") {
        Some(s) => s.clone(),
        None => json!([kind.schema().core().id]),
    };
    if let Value::Array(urns) = &mut schemas {
        urns.retain(|u| !u.as_str().is_some_and(is_roles_urn));
        if roles.is_some() {
            urns.push(Value::String(SCIMGATE_USER.into()));
        }
    }
    out.insert("schemas".into(), schemas);
    let location = resource_location(base, kind, &res.id);
    out.insert("id".into(), Value::String(res.id));
    for (k, v) in doc {
        let rendered = matches!(k.as_str(), "schemas" | "id" | "meta" | "members" | "groups");
        if !rendered && !is_roles_urn(&k) {
            out.insert(k, v);
        }
    }
    if let Some(v) = extra {
        let key = match kind {
            Kind::User => "groups",
            Kind::Group => "members",
        };
        out.insert(key.into(), v);
    }
    if let Some(e) = roles {
        out.insert(SCIMGATE_USER.into(), effective_roles(e));
    }
    let meta = Meta {
        resource_type: kind.name().into(),
        created: res.created,
        last_modified: res.last_modified,
        location,
        version: res.version,
    };
    out.insert("meta".into(), meta.to_json());
    Value::Object(out)
}

/// A User's read-only `groups` (RFC 7643 §4.1.2): direct memberships.
pub(crate) fn groups(refs: &[GroupRef], base: &str) -> Value {
    Value::Array(
        refs.iter()
            .map(|g| {
                json!({
                    "value": g.id,
                    "$ref": resource_location(base, Kind::Group, &g.id),
                    "display": g.display,
                    "type": "direct",
                })
            })
            .collect(),
    )
}

/// A User's scimgate extension object from their stored effective roles:
///
/// ```json
/// {"effectiveRoles": [{"value": "admin", "reason": "mapping",
///                      "groupId": "7f3a...", "groupDisplay": "Admins"},
///                     {"value": "viewer", "reason": "default"}],
///  "disabled": false, "locked": false}
/// ```
///
/// `groupId` and `groupDisplay` name the granting group for reason
/// `mapping` only. No roles is no `effectiveRoles` (RFC 7643 §2.5: an empty
/// list is unassigned); `disabled` and `locked` are always there, `locked`
/// also for a lock that pins no role at all.
pub(crate) fn effective_roles(e: &Effective) -> Value {
    let roles: Vec<Value> = e
        .roles
        .iter()
        .map(|r| {
            let mut m = Map::new();
            m.insert("value".into(), Value::String(r.role.clone()));
            match &r.reason {
                Reason::Mapping {
                    group_id,
                    group_display_name,
                } => {
                    m.insert("reason".into(), json!("mapping"));
                    m.insert("groupId".into(), Value::String(group_id.clone()));
                    m.insert(
                        "groupDisplay".into(),
                        Value::String(group_display_name.clone()),
                    );
                }
                Reason::Default => {
                    m.insert("reason".into(), json!("default"));
                }
                Reason::Locked => {
                    m.insert("reason".into(), json!("locked"));
                }
            }
            Value::Object(m)
        })
        .collect();
    let mut out = Map::new();
    if !roles.is_empty() {
        out.insert("effectiveRoles".into(), Value::Array(roles));
    }
    out.insert("disabled".into(), Value::Bool(e.disabled));
    out.insert("locked".into(), Value::Bool(e.locked));
    Value::Object(out)
}

/// A Group's `members`, with `$ref` filled in where the member's type is
/// known and the client sent none.
pub(crate) fn members(members: Vec<Member>, base: &str) -> Value {
    Value::Array(
        members
            .into_iter()
            .map(|mut m| {
                if m.reference.is_none() {
                    let kind = match m.r#type.as_deref() {
                        Some(t) if t.eq_ignore_ascii_case("User") => Some(Kind::User),
                        Some(t) if t.eq_ignore_ascii_case("Group") => Some(Kind::Group),
                        _ => None,
                    };
                    m.reference = kind.map(|k| resource_location(base, k, &m.value));
                }
                m.into_json()
            })
            .collect(),
    )
}

/// An RFC 7644 §3.4.2 ListResponse.
pub(crate) fn list(total: u64, start_index: u64, resources: Vec<Value>) -> Value {
    json!({
        "schemas": [LIST_RESPONSE],
        "totalResults": total,
        "itemsPerPage": resources.len(),
        "startIndex": start_index,
        "Resources": resources,
    })
}

/// A group's body with its `members` array spliced in as the database
/// wrote it, where [`resource`] would have put it (before `meta`).
pub(crate) fn encode_with_members(group: &Value, members: &RawValue) -> Vec<u8> {
    /// Serializes the group's entries with `members` inserted.
    struct Spliced<'a> {
        group: &'a Map<String, Value>,
        members: &'a RawValue,
    }
    impl Serialize for Spliced<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let mut map = s.serialize_map(Some(self.group.len() + 1))?;
            let mut placed = false;
            for (k, v) in self.group {
                if !placed && k == "meta" {
                    map.serialize_entry("members", self.members)?;
                    placed = true;
                }
                if k != "members" {
                    map.serialize_entry(k, v)?;
                }
            }
            if !placed {
                map.serialize_entry("members", self.members)?;
            }
            map.end()
        }
    }
    let empty = Map::new();
    let group = group.as_object().unwrap_or(&empty);
    serde_json::to_vec(&Spliced { group, members }).unwrap_or_default()
}

/// A response body's bytes. Straight into a byte buffer: `to_string`
/// goes through `fmt::Write` a piece at a time.
pub(crate) fn encode(body: &Value) -> Vec<u8> {
    // Serializing a `Value` cannot fail: its map keys are strings.
    serde_json::to_vec(body).unwrap_or_default()
}

/// A SCIM JSON response.
pub(crate) fn json_response(status: StatusCode, body: &Value) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CONTENT_TYPE, SCIM_CONTENT_TYPE))
        .body(encode(body))
}

/// A response carrying one resource, with its `ETag` (and `Location` for
/// a create).
pub(crate) fn resource_response(
    status: StatusCode,
    body: &Value,
    version: u64,
    location: Option<String>,
) -> HttpResponse {
    encoded_resource_response(status, encode(body), version, location)
}

/// [`resource_response`] for a body already encoded.
pub(crate) fn encoded_resource_response(
    status: StatusCode,
    body: Vec<u8>,
    version: u64,
    location: Option<String>,
) -> HttpResponse {
    let mut b = HttpResponse::build(status);
    b.insert_header((header::CONTENT_TYPE, SCIM_CONTENT_TYPE))
        .insert_header((header::ETAG, etag(version)));
    if let Some(l) = location {
        b.insert_header((header::LOCATION, l));
    }
    b.body(body)
}

/// `204 No Content` after a write, with the resource's new `ETag`.
pub(crate) fn no_content(version: u64) -> HttpResponse {
    HttpResponse::NoContent()
        .insert_header((header::ETAG, etag(version)))
        .finish()
}

/// `304 Not Modified` for a matching `If-None-Match`.
pub(crate) fn not_modified(version: u64) -> HttpResponse {
    HttpResponse::NotModified()
        .insert_header((header::ETAG, etag(version)))
        .finish()
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use roles::EffectiveRole;

    use super::*;

    fn sample() -> Resource {
        let t = Utc.with_ymd_and_hms(2024, 1, 2, 3, 4, 5).unwrap();
        Resource {
            id: "u1".into(),
            document: json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": "bjensen",
                "active": false
            }),
            version: 3,
            created: t,
            last_modified: t,
            members: None,
        }
    }

    #[test]
    fn renders_id_meta_and_groups() {
        let refs = [GroupRef {
            id: "g1".into(),
            display: "Admins".into(),
        }];
        let v = resource(
            sample(),
            Kind::User,
            Some(groups(&refs, "https://h/scim/v2")),
            None,
            "https://h/scim/v2",
        );
        assert_eq!(
            v,
            json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "id": "u1",
                "userName": "bjensen",
                "active": false,
                "groups": [{
                    "value": "g1",
                    "$ref": "https://h/scim/v2/Groups/g1",
                    "display": "Admins",
                    "type": "direct"
                }],
                "meta": {
                    "resourceType": "User",
                    "created": "2024-01-02T03:04:05.000Z",
                    "lastModified": "2024-01-02T03:04:05.000Z",
                    "location": "https://h/scim/v2/Users/u1",
                    "version": "W/\"3\""
                }
            })
        );
    }

    #[test]
    fn renders_the_roles_extension_from_effective_roles_only() {
        let mut stored = sample();
        // A client's copy under the URN, stored before scimgate defined it.
        stored.document = json!({
            "schemas": [
                "urn:ietf:params:scim:schemas:core:2.0:User",
                "urn:ietf:params:scim:schemas:extension:SCIMGATE:2.0:User"
            ],
            "userName": "bjensen",
            "urn:ietf:params:scim:schemas:extension:scimgate:2.0:User": {"locked": true}
        });
        let without = resource(stored.clone(), Kind::User, None, None, "https://h/v2");
        assert_eq!(
            without["schemas"],
            json!(["urn:ietf:params:scim:schemas:core:2.0:User"])
        );
        assert!(without.get(SCIMGATE_USER).is_none());

        let effective = Effective {
            roles: vec![
                EffectiveRole {
                    role: "admin".into(),
                    reason: Reason::Mapping {
                        group_id: "g1".into(),
                        group_display_name: "Admins".into(),
                    },
                },
                EffectiveRole {
                    role: "viewer".into(),
                    reason: Reason::Default,
                },
            ],
            disabled: true,
            locked: false,
        };
        let with = resource(stored, Kind::User, None, Some(&effective), "https://h/v2");
        assert_eq!(
            with["schemas"],
            json!(["urn:ietf:params:scim:schemas:core:2.0:User", SCIMGATE_USER])
        );
        assert_eq!(
            with[SCIMGATE_USER],
            json!({
                "effectiveRoles": [
                    {"value": "admin", "reason": "mapping", "groupId": "g1", "groupDisplay": "Admins"},
                    {"value": "viewer", "reason": "default"}
                ],
                "disabled": true,
                "locked": false
            })
        );
        // The extension sits before `meta`.
        let keys: Vec<&String> = with
            .as_object()
            .map(|o| o.keys().collect())
            .unwrap_or_default();
        assert_eq!(keys[keys.len() - 2], SCIMGATE_USER);

        let locked = Effective {
            roles: vec![EffectiveRole {
                role: "admin".into(),
                reason: Reason::Locked,
            }],
            disabled: false,
            locked: true,
        };
        assert_eq!(
            effective_roles(&locked),
            json!({
                "effectiveRoles": [{"value": "admin", "reason": "locked"}],
                "disabled": false,
                "locked": true
            })
        );
        let none = Effective {
            roles: vec![],
            disabled: false,
            locked: false,
        };
        assert_eq!(
            effective_roles(&none),
            json!({"disabled": false, "locked": false})
        );
        // A lock to no role at all still shows as a lock.
        let pinned = Effective {
            locked: true,
            ..none
        };
        assert_eq!(
            effective_roles(&pinned),
            json!({"disabled": false, "locked": true})
        );
    }

    #[test]
    fn member_refs_are_filled_only_when_the_type_is_known() {
        let mut typed = Member::new("u9");
        typed.r#type = Some("User".into());
        let v = members(vec![typed, Member::new("x")], "https://h/v2");
        assert_eq!(
            v,
            json!([
                {"value": "u9", "type": "User", "$ref": "https://h/v2/Users/u9"},
                {"value": "x"}
            ])
        );
    }

    #[test]
    fn list_response_counts_its_page() {
        let v = list(5, 3, vec![json!({"id": "a"})]);
        assert_eq!(v["totalResults"], 5);
        assert_eq!(v["itemsPerPage"], 1);
        assert_eq!(v["startIndex"], 3);
    }
}
