//! Re-sending resources to one target after its attribute mapping changed.
//!
//! Storing a mapping with "re-send" queues a [`MAPPING_RESEND`] job in the
//! same transaction (payload `{"target", "from": the mapping before,
//! "version": the new mapping's version}`). Its handler (in the delivery
//! worker, which knows how documents are rendered) walks the tenant's
//! users and groups in id order, renders each under the old and the new
//! mapping, and for those whose document differs calls
//! [`TenantStore::resend`]: one `user.updated` / `group.updated` event per
//! resource with the document as stored now, `"changed": []` and the
//! payload key `"target"` naming the one target it is for. The event goes
//! through the normal delivery path (its own id, so an idempotent receiver
//! takes it; in commit order with the resource's other events); other
//! targets and the event feed skip it ([`StoredEvent::only_for`]).
//!
//! A batch that a takeover redoes sends its resources again: delivery is
//! at least once, and receivers upsert.

use sea_orm::{
    ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::db::{TxError, db, dbx};
use crate::directory::{group_resource, user_resource};
use crate::entity::{groups, users};
use crate::events::{self, Event, EventType, ResourceKind, StoredEvent};
use crate::jobs::NewJob;
use crate::{Result, TenantStore};

/// The kind of a re-send job.
pub const MAPPING_RESEND: &str = "mapping_resend";

/// The payload key naming the one target an event is for.
const ONLY_FOR: &str = "target";

/// Resources one [`TenantStore::resend`] takes at most.
pub const MAX_RESEND: usize = 1_000;

/// Queues the re-send of target `target` after its mapping changed from
/// `from` (`None`: documents as stored) to version `version`, in `txn`.
pub(crate) async fn enqueue(
    clock: &std::sync::Arc<dyn crate::Clock>,
    txn: &DatabaseTransaction,
    tenant: Uuid,
    target: Uuid,
    from: Option<&mapping::MappingSpec>,
    version: i64,
) -> Result<String, TxError> {
    let job = NewJob::new(
        MAPPING_RESEND,
        json!({"target": target, "from": from, "version": version}),
    );
    crate::jobs::enqueue(clock, txn, Some(tenant), &job).await
}

impl StoredEvent {
    /// The one target this event is for (a re-send after a mapping
    /// change); `None` for events every target and the feed receive.
    pub fn only_for(&self) -> Option<Uuid> {
        self.payload
            .get(ONLY_FOR)
            .and_then(Value::as_str)
            .and_then(|t| Uuid::parse_str(t).ok())
    }
}

impl TenantStore {
    /// Up to `limit` ids of the tenant's users (or groups) after `after`,
    /// in id order: how jobs walk a directory.
    pub async fn ids_after(
        &self,
        kind: ResourceKind,
        after: &str,
        limit: u64,
    ) -> Result<Vec<String>> {
        let tenant = self.tenant.id.to_string();
        let conn = &self.inner.conn;
        let ids = match kind {
            ResourceKind::User => {
                users::Entity::find()
                    .select_only()
                    .column(users::Column::Id)
                    .filter(users::Column::TenantId.eq(tenant))
                    .filter(users::Column::Id.gt(after))
                    .order_by_asc(users::Column::Id)
                    .limit(limit)
                    .into_tuple()
                    .all(conn)
                    .await
            }
            ResourceKind::Group => {
                groups::Entity::find()
                    .select_only()
                    .column(groups::Column::Id)
                    .filter(groups::Column::TenantId.eq(tenant))
                    .filter(groups::Column::Id.gt(after))
                    .order_by_asc(groups::Column::Id)
                    .limit(limit)
                    .into_tuple()
                    .all(conn)
                    .await
            }
        };
        ids.map_err(db)
    }

    /// Sends the users (or groups) `ids` to target `target` again, as
    /// they are stored now: one event each, for that target only (module
    /// documentation). Ids that no longer exist are skipped; returns how
    /// many were queued. At most [`MAX_RESEND`] ids per call.
    pub async fn resend(&self, target: Uuid, kind: ResourceKind, ids: &[String]) -> Result<u64> {
        if ids.len() > MAX_RESEND {
            return Err(crate::StoreError::InvalidValue(format!(
                "at most {MAX_RESEND} resources are re-sent at once"
            )));
        }
        let ids = ids.to_vec();
        let store = self;
        write_txn!(self.inner, [store], [ids], txn => {
            let tenant = store.tenant.id.to_string();
            // Locked, like every write of these resources: their events
            // then take ids in commit order (module `events`).
            let docs: Vec<(String, u64, Value)> = match kind {
                ResourceKind::User => users::Entity::find()
                    .filter(users::Column::TenantId.eq(tenant))
                    .filter(users::Column::Id.is_in(ids.iter().cloned()))
                    .order_by_asc(users::Column::Id)
                    .lock_exclusive()
                    .all(txn)
                    .await
                    .map_err(dbx)?
                    .iter()
                    .map(|row| user_resource(row).map(|r| (r.id, r.version, r.document)))
                    .collect::<Result<_>>()?,
                ResourceKind::Group => groups::Entity::find()
                    .filter(groups::Column::TenantId.eq(tenant))
                    .filter(groups::Column::Id.is_in(ids.iter().cloned()))
                    .order_by_asc(groups::Column::Id)
                    .lock_exclusive()
                    .all(txn)
                    .await
                    .map_err(dbx)?
                    .iter()
                    .map(|row| group_resource(row, None).map(|r| (r.id, r.version, r.document)))
                    .collect::<Result<_>>()?,
            };
            let event_type = match kind {
                ResourceKind::User => EventType::UserUpdated,
                ResourceKind::Group => EventType::GroupUpdated,
            };
            let events: Vec<Event> = docs
                .into_iter()
                .map(|(id, version, document)| {
                    let mut payload = json!({
                        "version": version,
                        "changed": [],
                        "previous": {},
                        "document": document,
                    });
                    payload[ONLY_FOR] = json!(target);
                    Event { event_type, resource_id: id, payload }
                })
                .collect();
            let n = events.len() as u64;
            events::write(store, txn, events).await?;
            Ok(n)
        })
    }
}
