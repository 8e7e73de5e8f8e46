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

use std::collections::HashMap;

use chrono::SecondsFormat;
use roles::Effective;
use serde_json::{Map, Value, json};
use store::{EventType, ResourceKind, StoreError, StoredEvent, TenantStore};

/// Renders envelopes, reading what events do not carry (current roles,
/// the current resource) from the tenant's store.
pub struct Renderer<'a> {
    /// The tenant's directory; `None` once the tenant is deleted (its
    /// deletion events carry everything they need).
    pub tenant: Option<&'a TenantStore>,
}

impl Renderer<'_> {
    /// The envelopes of `events` (all of this renderer's tenant), in order.
    pub async fn render(&self, events: &[StoredEvent]) -> Result<Vec<Value>, StoreError> {
        let roles = self.current_roles(events).await?;
        let mut out = Vec::with_capacity(events.len());
        for e in events {
            out.push(self.envelope(e, &roles).await?);
        }
        Ok(out)
    }

    /// Current effective roles of the users whose events carry none.
    async fn current_roles(
        &self,
        events: &[StoredEvent],
    ) -> Result<HashMap<String, Effective>, StoreError> {
        let Some(tenant) = self.tenant else {
            return Ok(HashMap::new());
        };
        let mut ids: Vec<String> = events
            .iter()
            .filter(|e| {
                e.event_type.resource_kind() == ResourceKind::User
                    && !matches!(
                        e.event_type,
                        EventType::UserDeleted | EventType::UserRolesChanged
                    )
            })
            .map(|e| e.resource_id.clone())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        tenant.effective_roles(&ids).await
    }

    async fn envelope(
        &self,
        e: &StoredEvent,
        roles: &HashMap<String, Effective>,
    ) -> Result<Value, StoreError> {
        let p = &e.payload;
        let mut out = Map::new();
        out.insert("id".into(), json!(e.public_id()));
        out.insert("type".into(), json!(e.event_type.as_str()));
        out.insert("tenant".into(), json!(e.tenant_id));
        out.insert(
            "occurred_at".into(),
            json!(e.created_at.to_rfc3339_opts(SecondsFormat::Millis, true)),
        );
        out.insert("position".into(), json!(e.position));
        out.insert("schema_version".into(), json!(e.schema_version));
        let kind = e.event_type.resource_kind();
        let mut data = match p.get("document") {
            Some(doc) => resource(doc, &e.resource_id, kind, p.get("version")),
            None => self.current(kind, &e.resource_id).await?,
        };
        if kind == ResourceKind::User {
            let effective = match e.event_type {
                EventType::UserRolesChanged => {
                    serde_json::from_value::<Effective>(p["after"].clone()).ok()
                }
                EventType::UserDeleted => None,
                _ => roles.get(&e.resource_id).cloned(),
            };
            if let Some(effective) = &effective {
                with_roles(&mut data, effective);
            }
        }
        out.insert("data".into(), data);
        match e.event_type {
            EventType::UserUpdated
            | EventType::UserDeactivated
            | EventType::UserReactivated
            | EventType::GroupUpdated => {
                out.insert("changed".into(), p["changed"].clone());
                out.insert("previous".into(), p["previous"].clone());
            }
            EventType::UserRolesChanged => {
                let before = serde_json::from_value::<Effective>(p["before"].clone()).ok();
                out.insert(
                    "previous".into(),
                    json!({"roles": before.as_ref().map(role_values).unwrap_or_default()}),
                );
            }
            EventType::GroupMembersAdded | EventType::GroupMembersRemoved => {
                out.insert("members".into(), p["members"].clone());
            }
            EventType::UserDeleted | EventType::GroupDeleted => {
                if let Some(reason) = p.get("reason") {
                    out.insert("reason".into(), reason.clone());
                }
            }
            EventType::UserCreated | EventType::GroupCreated => {}
        }
        Ok(Value::Object(out))
    }

    /// The resource as stored now, or just its id when it is gone.
    async fn current(&self, kind: ResourceKind, id: &str) -> Result<Value, StoreError> {
        let Some(tenant) = self.tenant else {
            return Ok(json!({"id": id}));
        };
        let found = match kind {
            ResourceKind::User => tenant.get_user(id).await,
            ResourceKind::Group => tenant.get_group(id, false).await,
        };
        match found {
            Ok(r) => Ok(resource(&r.document, &r.id, kind, Some(&json!(r.version)))),
            Err(StoreError::NotFound(_)) => Ok(json!({"id": id})),
            Err(e) => Err(e),
        }
    }
}

/// A stored document as a SCIM resource: `id` first, then the document,
/// then `meta` with the resource type and version.
fn resource(document: &Value, id: &str, kind: ResourceKind, version: Option<&Value>) -> Value {
    let mut out = Map::new();
    out.insert("id".into(), json!(id));
    if let Some(doc) = document.as_object() {
        for (k, v) in doc {
            if k != "id" && k != "meta" {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    let mut meta = Map::new();
    meta.insert("resourceType".into(), json!(kind.as_str()));
    if let Some(v) = version.and_then(Value::as_u64) {
        meta.insert("version".into(), json!(scim::meta::etag(v)));
    }
    out.insert("meta".into(), Value::Object(meta));
    Value::Object(out)
}

fn role_values(e: &Effective) -> Vec<Value> {
    e.roles.iter().map(|r| json!({"value": r.role})).collect()
}

/// Puts a user's effective roles into its resource: RFC 7643 `roles` (what
/// applications read) and the scimgate extension (with reasons).
fn with_roles(data: &mut Value, effective: &Effective) {
    let Some(obj) = data.as_object_mut() else {
        return;
    };
    obj.insert("roles".into(), Value::Array(role_values(effective)));
    obj.insert(
        scim::schemas::SCIMGATE_USER.into(),
        store::render::effective_roles(effective),
    );
}
