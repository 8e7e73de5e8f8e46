//! Stored resources as the SCIM JSON a client sees: `schemas`, `id`, the
//! document, the attributes kept in tables (a Group's `members`, a User's
//! `groups`, the scimgate extension of effective roles) and `meta`.
//!
//! It lives here, next to [`Resource`], rather than in the gateway, because
//! more than the HTTP service renders resources: the sync worker sends the
//! same JSON in webhooks and outbound SCIM, with no request at hand. So
//! everything here is a pure function of the stored data and a base URL
//! string; what needs HTTP (deriving the base URL from a request,
//! projection of `attributes`, responses and headers, splicing the
//! database's member JSON into a reply) stays in the gateway.

use ::roles::{Effective, Reason};
use scim::meta::{Meta, location};
use scim::patch::Member;
use scim::schemas::SCIMGATE_USER;
use serde_json::{Map, Value, json};

use crate::{GroupRef, Resource};

/// The resource types scimgate stores and serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `/Users`
    User,
    /// `/Groups`
    Group,
}

// Names, endpoints and URNs come from the schema registry, the one place
// that knows them.
impl Kind {
    /// The resource type's name (`User`, `Group`), as `meta.resourceType`.
    pub fn name(self) -> &'static str {
        &self.schema().resource_type.name
    }
    /// The endpoint without its leading `/` (`Users`, `Groups`).
    pub fn endpoint(self) -> &'static str {
        self.schema().resource_type.endpoint.trim_start_matches('/')
    }
    /// The resource type's schemas.
    pub fn schema(self) -> scim::ResourceSchema<'static> {
        match self {
            Kind::User => scim::ResourceSchema::user(),
            Kind::Group => scim::ResourceSchema::group(),
        }
    }
}

/// The absolute URI of a resource under `base` (the SCIM base URL).
pub fn resource_location(base: &str, kind: Kind, id: &str) -> String {
    location(base, kind.endpoint(), id)
}

/// What a resource's location is its id appended to (ends with `/`).
pub fn location_prefix(base: &str, kind: Kind) -> String {
    let mut prefix = resource_location(base, kind, "");
    prefix.push('/');
    prefix
}

/// True for the URN of scimgate's User extension ([`SCIMGATE_USER`]),
/// which is rendered from the effective-roles table and never stored in
/// documents.
pub fn is_roles_urn(urn: &str) -> bool {
    urn.eq_ignore_ascii_case(SCIMGATE_USER)
}

/// A User: the document, `groups` when given (its direct memberships; `None`
/// leaves the attribute out), and the scimgate extension when the user has
/// stored effective roles.
pub fn user(
    res: Resource,
    groups: Option<&[GroupRef]>,
    roles: Option<&Effective>,
    base: &str,
) -> Value {
    let extra = groups.map(|g| self::groups(g, base));
    resource(res, Kind::User, extra, roles, base)
}

/// A Group with its `members` when they were loaded (`None` leaves the
/// attribute out).
pub fn group(mut res: Resource, base: &str) -> Value {
    let extra = res.members.take().map(|m| members(m, base));
    resource(res, Kind::Group, extra, None, base)
}

/// The full representation of a stored resource: `schemas`, `id`, the
/// document, the table-backed attribute (`groups` of a User, `members` of
/// a Group) if given, the scimgate extension if `roles` is, then `meta`.
///
/// The extension and its URN in `schemas` come only from `roles`: a copy
/// in the document (a client could store one under the URN before
/// scimgate defined it) is never shown.
pub fn resource(
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
pub fn groups(refs: &[GroupRef], base: &str) -> Value {
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
pub fn effective_roles(e: &Effective) -> Value {
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
pub fn members(members: Vec<Member>, base: &str) -> Value {
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

#[cfg(test)]
mod tests {
    use ::roles::EffectiveRole;
    use chrono::{TimeZone, Utc};

    use super::*;

    const BASE: &str = "https://scim.example.test/tenants/acme/scim/v2";

    fn at() -> chrono::DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 1, 2, 3, 4, 5).unwrap()
    }

    fn stored_user() -> Resource {
        Resource {
            id: "u1".into(),
            document: json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": "bjensen",
                "active": false
            }),
            version: 3,
            created: at(),
            last_modified: at(),
            members: None,
            routed: Vec::new(),
        }
    }

    #[test]
    fn a_user_with_groups_and_effective_roles() {
        let mut stored = stored_user();
        // Attributes rendered from tables, and a client's copy of the
        // extension stored before scimgate defined it: none of them shows.
        stored.document = json!({
            "schemas": [
                "urn:ietf:params:scim:schemas:core:2.0:User",
                "urn:ietf:params:scim:schemas:extension:SCIMGATE:2.0:User"
            ],
            "id": "stale",
            "meta": {"version": "W/\"1\""},
            "groups": [{"value": "stale"}],
            "userName": "bjensen",
            "active": false,
            "urn:ietf:params:scim:schemas:extension:scimgate:2.0:User": {"locked": true}
        });
        let refs = [
            GroupRef {
                id: "g1".into(),
                display: "Admins".into(),
            },
            GroupRef {
                id: "g2".into(),
                display: "Staff".into(),
            },
        ];
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
        let v = user(stored, Some(&refs), Some(&effective), BASE);
        assert_eq!(
            serde_json::to_string(&v).unwrap(),
            serde_json::to_string(&json!({
                "schemas": [
                    "urn:ietf:params:scim:schemas:core:2.0:User",
                    "urn:ietf:params:scim:schemas:extension:scimgate:2.0:User"
                ],
                "id": "u1",
                "userName": "bjensen",
                "active": false,
                "groups": [
                    {
                        "value": "g1",
                        "$ref": "https://scim.example.test/tenants/acme/scim/v2/Groups/g1",
                        "display": "Admins",
                        "type": "direct"
                    },
                    {
                        "value": "g2",
                        "$ref": "https://scim.example.test/tenants/acme/scim/v2/Groups/g2",
                        "display": "Staff",
                        "type": "direct"
                    }
                ],
                "urn:ietf:params:scim:schemas:extension:scimgate:2.0:User": {
                    "effectiveRoles": [
                        {"value": "admin", "reason": "mapping", "groupId": "g1", "groupDisplay": "Admins"},
                        {"value": "viewer", "reason": "default"}
                    ],
                    "disabled": true,
                    "locked": false
                },
                "meta": {
                    "resourceType": "User",
                    "created": "2024-01-02T03:04:05.000Z",
                    "lastModified": "2024-01-02T03:04:05.000Z",
                    "location": "https://scim.example.test/tenants/acme/scim/v2/Users/u1",
                    "version": "W/\"3\""
                }
            }))
            .unwrap(),
            "the whole document, key order included"
        );
    }

    #[test]
    fn a_user_without_loaded_groups_or_roles() {
        let v = user(stored_user(), None, None, BASE);
        assert_eq!(
            v,
            json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "id": "u1",
                "userName": "bjensen",
                "active": false,
                "meta": {
                    "resourceType": "User",
                    "created": "2024-01-02T03:04:05.000Z",
                    "lastModified": "2024-01-02T03:04:05.000Z",
                    "location": "https://scim.example.test/tenants/acme/scim/v2/Users/u1",
                    "version": "W/\"3\""
                }
            })
        );
        let none: &[GroupRef] = &[];
        assert_eq!(
            user(stored_user(), Some(none), None, BASE)["groups"],
            json!([])
        );
    }

    #[test]
    fn a_group_with_members() {
        let mut typed = Member::new("u9");
        typed.r#type = Some("User".into());
        typed.display = Some("Babs".into());
        let mut nested = Member::new("g7");
        nested.r#type = Some("Group".into());
        let mut sent = Member::new("u8");
        sent.r#type = Some("User".into());
        sent.reference = Some("https://elsewhere.test/Users/u8".into());
        let stored = Resource {
            id: "g1".into(),
            document: json!({"displayName": "Admins", "externalId": "x-1"}),
            version: 7,
            created: at(),
            last_modified: at(),
            members: Some(vec![typed, nested, sent, Member::new("x")]),
            routed: Vec::new(),
        };
        let v = group(stored, BASE);
        assert_eq!(
            serde_json::to_string(&v).unwrap(),
            serde_json::to_string(&json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                "id": "g1",
                "displayName": "Admins",
                "externalId": "x-1",
                "members": [
                    {
                        "value": "u9",
                        "display": "Babs",
                        "type": "User",
                        "$ref": "https://scim.example.test/tenants/acme/scim/v2/Users/u9"
                    },
                    {
                        "value": "g7",
                        "type": "Group",
                        "$ref": "https://scim.example.test/tenants/acme/scim/v2/Groups/g7"
                    },
                    {"value": "u8", "type": "User", "$ref": "https://elsewhere.test/Users/u8"},
                    {"value": "x"}
                ],
                "meta": {
                    "resourceType": "Group",
                    "created": "2024-01-02T03:04:05.000Z",
                    "lastModified": "2024-01-02T03:04:05.000Z",
                    "location": "https://scim.example.test/tenants/acme/scim/v2/Groups/g1",
                    "version": "W/\"7\""
                }
            }))
            .unwrap(),
            "the whole document, key order included"
        );
    }

    #[test]
    fn a_group_without_loaded_members_has_no_members_attribute() {
        let stored = Resource {
            id: "g1".into(),
            document: json!({"displayName": "Admins"}),
            version: 1,
            created: at(),
            last_modified: at(),
            members: None,
            routed: Vec::new(),
        };
        assert!(group(stored, BASE).get("members").is_none());
    }

    #[test]
    fn the_roles_extension_shows_locks_and_omits_empty_role_lists() {
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
    fn locations() {
        assert_eq!(
            resource_location("https://h/v2/", Kind::Group, "g1"),
            "https://h/v2/Groups/g1"
        );
        assert_eq!(
            location_prefix("https://h/v2", Kind::User),
            "https://h/v2/Users/"
        );
        assert!(is_roles_urn(
            "urn:ietf:params:scim:schemas:extension:SCIMGATE:2.0:User"
        ));
        assert!(!is_roles_urn("urn:ietf:params:scim:schemas:core:2.0:User"));
    }
}
