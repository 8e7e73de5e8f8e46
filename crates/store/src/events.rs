//! The transactional outbox: events are inserted by the same transaction
//! as the change they describe, so an event exists exactly when its change
//! was committed.
//!
//! Payloads:
//! - `*.created` / `*.updated`: `{"version", "changed": [top-level
//!   attributes], "document"}`;
//! - `*.deleted`: `{"version"}` (a user's also lists `"groups"` it left);
//! - `group.members_changed`: `{"version", "added": [ids], "removed": [ids]}`;
//! - `user.roles_changed`: `{"before": Effective or null, "after": Effective}`
//!   (see the `roles` crate; `null` when the user had no roles stored).

use ::roles::Effective;
use sea_orm::{
    ActiveValue::NotSet, ActiveValue::Set, ColumnTrait, DatabaseTransaction, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect,
};
use serde_json::{Value, json};

use crate::db::{Inner, TxError, db, dbx, now};
use crate::entity::outbox;
use crate::{OutboxEvent, Result, StoreError, TenantStore};

/// The most events one read returns.
const MAX_LIMIT: u64 = 1000;

/// One event to write.
#[derive(Clone)]
pub(crate) struct Event {
    pub event_type: &'static str,
    pub resource_type: &'static str,
    pub resource_id: String,
    pub payload: Value,
}

impl Event {
    pub(crate) fn created(kind: &'static str, id: &str, version: u64, document: &Value) -> Event {
        let changed: Vec<&String> = document
            .as_object()
            .map(|o| o.keys().collect())
            .unwrap_or_default();
        Event {
            event_type: if kind == "User" {
                "user.created"
            } else {
                "group.created"
            },
            resource_type: kind,
            resource_id: id.to_owned(),
            payload: json!({"version": version, "changed": changed, "document": document}),
        }
    }

    pub(crate) fn updated(
        kind: &'static str,
        id: &str,
        version: u64,
        changed: &[String],
        document: &Value,
    ) -> Event {
        Event {
            event_type: if kind == "User" {
                "user.updated"
            } else {
                "group.updated"
            },
            resource_type: kind,
            resource_id: id.to_owned(),
            payload: json!({"version": version, "changed": changed, "document": document}),
        }
    }

    pub(crate) fn deleted(kind: &'static str, id: &str, version: u64, extra: Value) -> Event {
        let mut payload = json!({"version": version});
        if let (Some(p), Value::Object(extra)) = (payload.as_object_mut(), extra) {
            p.extend(extra);
        }
        Event {
            event_type: if kind == "User" {
                "user.deleted"
            } else {
                "group.deleted"
            },
            resource_type: kind,
            resource_id: id.to_owned(),
            payload,
        }
    }

    pub(crate) fn members_changed(
        group_id: &str,
        version: u64,
        added: &[String],
        removed: &[String],
    ) -> Event {
        Event {
            event_type: "group.members_changed",
            resource_type: "Group",
            resource_id: group_id.to_owned(),
            payload: json!({"version": version, "added": added, "removed": removed}),
        }
    }
}

impl Event {
    pub(crate) fn roles_changed(
        user_id: &str,
        before: Option<&Effective>,
        after: &Effective,
    ) -> Event {
        Event {
            event_type: "user.roles_changed",
            resource_type: "User",
            resource_id: user_id.to_owned(),
            payload: json!({"before": before, "after": after}),
        }
    }
}

/// Writes events inside the caller's transaction.
pub(crate) async fn write(
    store: &TenantStore,
    txn: &DatabaseTransaction,
    events: Vec<Event>,
) -> Result<(), TxError> {
    if events.is_empty() {
        return Ok(());
    }
    let at = now();
    let tenant_id = store.tenant.id.to_string();
    let rows: Vec<outbox::ActiveModel> = events
        .into_iter()
        .map(|e| outbox::ActiveModel {
            id: NotSet,
            tenant_id: Set(tenant_id.clone()),
            event_type: Set(e.event_type.to_owned()),
            resource_type: Set(e.resource_type.to_owned()),
            resource_id: Set(e.resource_id),
            payload: Set(e.payload.to_string()),
            created_at: Set(at),
        })
        .collect();
    // On SQLite's writer the batch inserts every job's rows in one
    // statement before its commit, saving a round trip per write.
    let Err(rows) = crate::writer::defer_events(rows) else {
        return Ok(());
    };
    store.inner.outbox_order_lock(txn, store.tenant.id).await?;
    outbox::Entity::insert_many(rows)
        .exec_without_returning(txn)
        .await
        .map_err(dbx)?;
    Ok(())
}

pub(crate) async fn after(
    store: &TenantStore,
    after_id: i64,
    limit: u64,
) -> Result<Vec<OutboxEvent>> {
    let inner: &Inner = &store.inner;
    let rows = outbox::Entity::find()
        .filter(outbox::Column::TenantId.eq(store.tenant.id.to_string()))
        .filter(outbox::Column::Id.gt(after_id))
        .order_by_asc(outbox::Column::Id)
        .limit(limit.min(MAX_LIMIT))
        .all(&inner.conn)
        .await
        .map_err(db)?;
    rows.into_iter()
        .map(|r| {
            let payload = serde_json::from_str(&r.payload).map_err(|e| {
                StoreError::Internal(format!("outbox event {} has a corrupt payload: {e}", r.id))
            })?;
            Ok(OutboxEvent {
                id: r.id,
                event_type: r.event_type,
                resource_type: r.resource_type,
                resource_id: r.resource_id,
                payload,
                created_at: r.created_at,
            })
        })
        .collect()
}
