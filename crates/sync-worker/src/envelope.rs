//! The JSON an application receives for one event: the same envelope in a
//! webhook body and in the pull feed (docs/events.md).
//!
//! ```json
//! {"id": "evt_42", "type": "user.updated", "tenant": "<uuid>",
//!  "occurred_at": "2026-12-06T07:00:00.000Z", "position": 42,
//!  "schema_version": 1,
//!  "data": {"id": "...", "userName": "...", "roles": [{"value": "admin"}], ...},
//!  "changed": ["title"], "previous": {"title": null}}
//! ```
//!
//! `data` is the whole resource: the document the event recorded at its
//! commit (for events that record none — role and member changes — the
//! resource as stored now), with `id`, `meta.version`, and for users their
//! effective roles (RFC 7643 `roles`, one `{"value": name}` each, and the
//! scimgate extension with the reason for each). A receiver upserts by
//! `data.id` and can skip an event whose `meta.version` is older than what
//! it holds.
//!
//! An envelope is serialized straight from the stored event (borrowed, not
//! copied into a new JSON tree): the worker renders every event it sends,
//! so this is on its hot path.

use std::collections::HashMap;

use chrono::SecondsFormat;
use mapping::{Mapping, Side};
use roles::Effective;
use serde::Serialize;
use serde::ser::SerializeMap;
use serde_json::{Value, json};
use store::{EventType, ResourceKind, StoreError, StoredEvent, TenantStore};

/// Renders envelopes, reading what events do not carry (current roles,
/// the current resource) from the tenant's store.
pub struct Renderer<'a> {
    /// The tenant's directory; `None` once the tenant is deleted (its
    /// deletion events carry everything they need).
    pub tenant: Option<&'a TenantStore>,
    /// The target's attribute mapping, which shapes `data` (docs/mappings.md);
    /// `None` for documents as stored (the pull feed).
    pub mapping: Option<&'a Mapping>,
}

/// What a batch of events needs from the store, read once per batch.
struct Lookups {
    /// Current effective roles of the users whose events carry none.
    roles: HashMap<String, Effective>,
    /// Resources as stored now (document and version), for events that
    /// recorded no document; `None` when the resource is gone.
    current: HashMap<(ResourceKind, String), Option<(Value, u64)>>,
}

impl Renderer<'_> {
    /// The envelopes of `events` (all of this renderer's tenant), in order,
    /// as JSON values (the pull feed).
    pub async fn render(&self, events: &[StoredEvent]) -> Result<Vec<Value>, StoreError> {
        let refs: Vec<&StoredEvent> = events.iter().collect();
        let lookups = self.lookups(&refs).await?;
        Ok(refs
            .iter()
            .map(|e| serde_json::to_value(lookups.envelope(e, self.mapping)).unwrap_or(Value::Null))
            .collect())
    }

    /// The envelopes of `events`, in order, as request bodies; `None` for
    /// one that cannot be serialized.
    pub async fn bodies(
        &self,
        events: &[&StoredEvent],
    ) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let lookups = self.lookups(events).await?;
        Ok(events
            .iter()
            .map(|e| serde_json::to_vec(&lookups.envelope(e, self.mapping)).ok())
            .collect())
    }

    /// The `data` an application would receive now for each of the users
    /// (or groups) `ids`: as stored now, a user with its effective roles,
    /// shaped by this renderer's mapping (the admin API's mapping preview,
    /// and the re-send after a mapping change). Those that do not exist
    /// are left out.
    pub async fn now(
        &self,
        kind: ResourceKind,
        ids: &[String],
    ) -> Result<Vec<(String, Value)>, StoreError> {
        let now = chrono::Utc::now();
        // Events that record no document: rendering reads each resource
        // as stored now, as it does for role and member changes.
        let event_type = match kind {
            ResourceKind::User => EventType::UserUpdated,
            ResourceKind::Group => EventType::GroupUpdated,
        };
        let probes: Vec<StoredEvent> = ids
            .iter()
            .map(|id| StoredEvent {
                id: 0,
                position: 0,
                tenant_id: uuid::Uuid::nil(),
                event_type,
                resource_id: id.clone(),
                schema_version: 1,
                payload: json!({}),
                created_at: now,
            })
            .collect();
        let refs: Vec<&StoredEvent> = probes.iter().collect();
        let lookups = self.lookups(&refs).await?;
        let mut out = Vec::new();
        for e in &probes {
            let found = lookups
                .current
                .get(&(kind, e.resource_id.clone()))
                .is_some_and(Option::is_some);
            if !found {
                continue;
            }
            let envelope = serde_json::to_value(lookups.envelope(e, self.mapping))
                .map_err(|err| StoreError::Internal(format!("a preview does not render: {err}")))?;
            out.push((e.resource_id.clone(), envelope["data"].clone()));
        }
        Ok(out)
    }

    /// Reads, once each, the roles and resources `events` need.
    async fn lookups(&self, events: &[&StoredEvent]) -> Result<Lookups, StoreError> {
        let mut out = Lookups {
            roles: HashMap::new(),
            current: HashMap::new(),
        };
        let Some(tenant) = self.tenant else {
            return Ok(out);
        };
        let mut ids: Vec<String> = events
            .iter()
            .filter(|e| {
                e.event_type.resource_kind() == ResourceKind::User
                    && !matches!(
                        e.event_type,
                        EventType::UserDeleted
                            | EventType::UserRolesChanged
                            | EventType::UserPurged
                    )
            })
            .map(|e| e.resource_id.clone())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        if !ids.is_empty() {
            out.roles = tenant.effective_roles(&ids).await?;
        }
        for e in events
            .iter()
            .filter(|e| e.payload.get("document").is_none())
        {
            let kind = e.event_type.resource_kind();
            let key = (kind, e.resource_id.clone());
            if out.current.contains_key(&key) {
                continue;
            }
            let found = match kind {
                ResourceKind::User => tenant.get_user(&e.resource_id).await,
                ResourceKind::Group => tenant.get_group(&e.resource_id, false).await,
            };
            let value = match found {
                Ok(r) => Some((r.document, r.version)),
                Err(StoreError::NotFound(_)) => None,
                Err(e) => return Err(e),
            };
            out.current.insert(key, value);
        }
        Ok(out)
    }
}

impl Lookups {
    /// The envelope of one event, borrowing from the event and from these
    /// lookups.
    fn envelope<'s>(&'s self, e: &'s StoredEvent, mapping: Option<&'s Mapping>) -> Envelope<'s> {
        let p = &e.payload;
        let kind = e.event_type.resource_kind();
        let data = match p.get("document") {
            Some(doc) => Data::Resource {
                document: doc,
                version: p.get("version").and_then(Value::as_u64),
            },
            None => match self.current.get(&(kind, e.resource_id.clone())) {
                Some(Some((document, version))) => Data::Resource {
                    document,
                    version: Some(*version),
                },
                _ => Data::Gone,
            },
        };
        let roles = match (kind, e.event_type) {
            (ResourceKind::User, EventType::UserRolesChanged) => {
                serde_json::from_value::<Effective>(p["after"].clone())
                    .ok()
                    .map(Roles::Owned)
            }
            (ResourceKind::User, EventType::UserDeleted | EventType::UserPurged)
            | (ResourceKind::Group, _) => None,
            (ResourceKind::User, _) => self.roles.get(&e.resource_id).map(Roles::Borrowed),
        };
        let side = match kind {
            ResourceKind::User => Side::Users,
            ResourceKind::Group => Side::Groups,
        };
        Envelope {
            event: e,
            data,
            roles,
            mapping: mapping.filter(|m| !m.is_identity(side)).map(|m| (m, side)),
        }
    }
}

/// One event's envelope, serialized on demand.
struct Envelope<'s> {
    event: &'s StoredEvent,
    data: Data<'s>,
    roles: Option<Roles<'s>>,
    /// The mapping that shapes `data`, when it changes this resource type.
    mapping: Option<(&'s Mapping, Side)>,
}

/// What `data` is made of.
enum Data<'s> {
    /// A document and its version.
    Resource {
        document: &'s Value,
        version: Option<u64>,
    },
    /// The resource is gone and the event recorded no document: just its id.
    Gone,
}

/// A user's effective roles, from the lookups or from the event itself.
enum Roles<'s> {
    Borrowed(&'s Effective),
    Owned(Effective),
}

impl Roles<'_> {
    fn get(&self) -> &Effective {
        match self {
            Roles::Borrowed(e) => e,
            Roles::Owned(e) => e,
        }
    }
}

impl Serialize for Envelope<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let e = self.event;
        let p = &e.payload;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("id", &e.public_id())?;
        m.serialize_entry("type", e.event_type.as_str())?;
        m.serialize_entry("tenant", &e.tenant_id)?;
        m.serialize_entry(
            "occurred_at",
            &e.created_at.to_rfc3339_opts(SecondsFormat::Millis, true),
        )?;
        m.serialize_entry("position", &e.position)?;
        m.serialize_entry("schema_version", &e.schema_version)?;
        let view = DataView {
            id: &e.resource_id,
            kind: e.event_type.resource_kind(),
            data: &self.data,
            roles: self.roles.as_ref().map(Roles::get),
        };
        // A gone resource's `data` is its id alone: nothing to map.
        let mapped = self
            .mapping
            .filter(|_| matches!(self.data, Data::Resource { .. }));
        match mapped {
            Some((mapping, side)) => {
                let raw = serde_json::to_value(&view).map_err(serde::ser::Error::custom)?;
                m.serialize_entry("data", &mapping.apply(side, &raw))?;
                if mapping.raw() {
                    m.serialize_entry("raw", &raw)?;
                }
            }
            None => m.serialize_entry("data", &view)?,
        }
        // `previous` holds source attributes, which a mapping that sends
        // only what it maps must not leak.
        let shows_previous = mapped.is_none_or(|(mapping, side)| mapping.keeps_unmapped(side));
        let field = |name: &str| p.get(name).unwrap_or(&Value::Null);
        match e.event_type {
            EventType::UserUpdated
            | EventType::UserDeactivated
            | EventType::UserReactivated
            | EventType::GroupUpdated => {
                m.serialize_entry("changed", field("changed"))?;
                if shows_previous {
                    m.serialize_entry("previous", field("previous"))?;
                }
            }
            EventType::UserRolesChanged => {
                let before = serde_json::from_value::<Effective>(p["before"].clone()).ok();
                let roles: Vec<RoleValue<'_>> =
                    before.as_ref().map(role_values).unwrap_or_default();
                m.serialize_entry("previous", &json!({ "roles": roles }))?;
            }
            EventType::GroupMembersAdded | EventType::GroupMembersRemoved => {
                m.serialize_entry("members", field("members"))?;
            }
            EventType::UserDeleted | EventType::GroupDeleted => {
                if let Some(reason) = p.get("reason") {
                    m.serialize_entry("reason", reason)?;
                }
                if let Some(until) = p.get("restorable_until") {
                    m.serialize_entry("restorable_until", until)?;
                }
            }
            EventType::UserPurged => {
                if let Some(erased) = p.get("erased") {
                    m.serialize_entry("erased", erased)?;
                }
            }
            EventType::UserCreated | EventType::GroupCreated | EventType::UserRestored => {}
        }
        m.end()
    }
}

/// `data`: `id` first, then the document, then `meta` with the resource
/// type and version, then (users) the effective roles.
struct DataView<'s> {
    id: &'s str,
    kind: ResourceKind,
    data: &'s Data<'s>,
    roles: Option<&'s Effective>,
}

impl Serialize for DataView<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("id", self.id)?;
        let Data::Resource { document, version } = self.data else {
            return m.end();
        };
        if let Some(doc) = document.as_object() {
            for (k, v) in doc {
                let replaced = self.roles.is_some()
                    && (k == "roles" || k.as_str() == scim::schemas::SCIMGATE_USER);
                if k != "id" && k != "meta" && !replaced {
                    m.serialize_entry(k, v)?;
                }
            }
        }
        m.serialize_entry(
            "meta",
            &Meta {
                resource_type: self.kind.as_str(),
                version: version.map(scim::meta::etag),
            },
        )?;
        if let Some(effective) = self.roles {
            m.serialize_entry("roles", &role_values(effective))?;
            m.serialize_entry(
                scim::schemas::SCIMGATE_USER,
                &store::render::effective_roles(effective),
            )?;
        }
        m.end()
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Meta<'s> {
    resource_type: &'s str,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<String>,
}

/// One RFC 7643 `roles` entry.
#[derive(Serialize)]
struct RoleValue<'s> {
    value: &'s str,
}

fn role_values(e: &Effective) -> Vec<RoleValue<'_>> {
    e.roles
        .iter()
        .map(|r| RoleValue { value: &r.role })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use uuid::Uuid;

    fn event(event_type: EventType, payload: Value) -> StoredEvent {
        StoredEvent {
            id: 7,
            position: 9,
            tenant_id: Uuid::nil(),
            event_type,
            resource_id: "u1".into(),
            schema_version: 1,
            payload,
            created_at: Utc::now(),
        }
    }

    #[test]
    fn data_is_the_document_with_id_first_and_meta_after() {
        let e = event(
            EventType::UserUpdated,
            json!({
                "document": {"userName": "a@x", "id": "spoofed", "meta": {"x": 1}, "title": "t"},
                "version": 3,
                "changed": ["title"],
                "previous": {"title": null}
            }),
        );
        let lookups = Lookups {
            roles: HashMap::new(),
            current: HashMap::new(),
        };
        let text = serde_json::to_string(&lookups.envelope(&e, None)).unwrap_or_default();
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        assert_eq!(v["id"], "evt_7");
        assert_eq!(v["type"], "user.updated");
        assert_eq!(v["position"], 9);
        assert_eq!(v["changed"], json!(["title"]));
        assert_eq!(v["previous"], json!({"title": null}));
        let data = v["data"].as_object().cloned().unwrap_or_default();
        let keys: Vec<&str> = data.keys().map(String::as_str).collect();
        assert_eq!(keys, ["id", "userName", "title", "meta"]);
        assert_eq!(data["id"], "u1");
        assert_eq!(
            data["meta"],
            json!({"resourceType": "User", "version": "W/\"3\""})
        );
    }

    #[test]
    fn a_mapping_shapes_data_and_withholds_what_it_does_not_send() {
        let e = event(
            EventType::UserUpdated,
            json!({
                "document": {"userName": "Ann@X", "title": "t", "nickName": "secret"},
                "version": 2,
                "changed": ["nickName"],
                "previous": {"nickName": "old secret"}
            }),
        );
        let lookups = Lookups {
            roles: HashMap::new(),
            current: HashMap::new(),
        };
        let render = |spec: Value| {
            let mapping = Mapping::from_json(&spec).expect("valid");
            serde_json::to_value(lookups.envelope(&e, Some(&mapping))).unwrap_or(Value::Null)
        };
        let v = render(json!({"users": {"keepUnmapped": false, "attributes": [
            {"target": "login", "source": "userName", "transform": "lower"}]}}));
        let data = v["data"].as_object().cloned().unwrap_or_default();
        let mut keys: Vec<&str> = data.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["id", "login", "meta", "schemas"]);
        assert_eq!(data["login"], "ann@x");
        assert_eq!(v["changed"], json!(["nickName"]));
        assert!(v.get("previous").is_none(), "withheld: {v}");
        assert!(v.get("raw").is_none(), "not asked for");

        let v = render(json!({"raw": true, "users": {"attributes": [
            {"target": "title", "remove": true}]}}));
        assert!(v["data"].get("title").is_none());
        assert_eq!(v["data"]["nickName"], "secret", "kept unmapped");
        assert_eq!(v["previous"], json!({"nickName": "old secret"}));
        assert_eq!(v["raw"]["title"], "t", "the unmapped document, as asked");

        let v = render(json!({"groups": {"attributes": [{"target": "x", "value": 1}]}}));
        assert_eq!(
            v["data"]["title"], "t",
            "a mapping of groups leaves users alone"
        );
        assert!(v["data"].get("schemas").is_none());
    }

    #[test]
    fn a_users_roles_replace_what_the_document_says() {
        let e = event(
            EventType::UserCreated,
            json!({"document": {"userName": "a@x", "roles": [{"value": "forged"}]}, "version": 1}),
        );
        let effective = Effective {
            roles: vec![roles::EffectiveRole {
                role: "admin".into(),
                reason: roles::Reason::Default,
            }],
            disabled: false,
            locked: false,
        };
        let lookups = Lookups {
            roles: HashMap::from([("u1".to_owned(), effective)]),
            current: HashMap::new(),
        };
        let v = serde_json::to_value(lookups.envelope(&e, None)).unwrap_or(Value::Null);
        assert_eq!(v["data"]["roles"], json!([{"value": "admin"}]));
        assert_eq!(
            v["data"][scim::schemas::SCIMGATE_USER]["effectiveRoles"][0]["reason"],
            "default"
        );
    }

    #[test]
    fn a_gone_resource_without_a_document_is_its_id() {
        let e = event(EventType::GroupMembersAdded, json!({"members": ["u2"]}));
        let lookups = Lookups {
            roles: HashMap::new(),
            current: HashMap::new(),
        };
        let v = serde_json::to_value(lookups.envelope(&e, None)).unwrap_or(Value::Null);
        assert_eq!(v["data"], json!({"id": "u1"}));
        assert_eq!(v["members"], json!(["u2"]));
    }
}
