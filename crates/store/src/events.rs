//! The event log (transactional outbox): events are inserted by the same
//! transaction as the change they describe, so an event exists exactly
//! when its change was committed. It is the only source of delivery to
//! applications and of the event feed.
//!
//! **Order.** Readers page by `position`, which follows commit order and
//! is never assigned to an uncommitted row, so a reader that has passed a
//! position can never have skipped an event that commits later:
//! - on SQLite every write transaction holds the database's one write
//!   lock, so the inserting transaction numbers its own rows
//!   (`MAX(position) + 1 ...`) and they commit in that order;
//! - on PostgreSQL a row id says nothing about commit order (a transaction
//!   can take id 10 and commit after id 11), so rows are written with no
//!   position and [`sequence`] numbers committed rows afterwards, one
//!   sequencer at a time (advisory lock), in id order. Per resource, ids
//!   follow commit order already: every transaction that writes events of
//!   a resource holds that resource's row lock and inserts its events
//!   last, so the later of two commits took the larger id.
//!
//! **Payloads** (schema version [`SCHEMA_VERSION`]), by type:
//! - `*.created`: `{"version", "document"}`;
//! - `*.updated`, `user.deactivated`, `user.reactivated`: `{"version",
//!   "changed": [top-level attributes], "previous": {attribute: old value
//!   or null}, "document"}`;
//! - `*.deleted`: `{"version", "document"}` (the last stored document; a
//!   user's also lists the `"groups"` it left);
//! - `group.members_added` / `group.members_removed`: `{"version",
//!   "members": [ids]}`;
//! - `user.roles_changed`: `{"before": Effective or null, "after":
//!   Effective}` (see the `roles` crate; `null` when the user had none);
//! - `user.restored`: `{"version", "document"}`;
//! - `user.purged`: `{}` (or `{"erased": true}`): no document, by design.
//!
//! A soft-deleted user's `user.deleted` adds `"restorable_until"`.

use std::fmt;
use std::str::FromStr;

use ::roles::Effective;
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::NotSet, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction,
    EntityTrait, QueryFilter, QueryOrder, QuerySelect, Statement,
};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::db::{Inner, TxError, db, dbx, now};
use crate::entity::event_log;
use crate::{Backend, Result, StoreError, TenantStore};

/// The version of the payload format this build writes.
pub const SCHEMA_VERSION: i32 = 1;

/// The most events one read returns.
pub const MAX_READ: u64 = 1000;

/// Rows the PostgreSQL sequencer numbers per transaction.
const SEQUENCE_BATCH: i64 = 5000;

/// The advisory lock key that makes the sequencer one at a time
/// ("scimgate event log" in ASCII, truncated to 8 bytes).
const SEQUENCER_LOCK: i64 = 0x7363_696d_6576_6c67;

/// What an event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResourceKind {
    /// A SCIM User.
    User,
    /// A SCIM Group.
    Group,
}

impl ResourceKind {
    /// The SCIM resource type name (`User`, `Group`).
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceKind::User => "User",
            ResourceKind::Group => "Group",
        }
    }
}

macro_rules! event_types {
    ($( $variant:ident => $name:literal, $kind:ident, $doc:literal; )*) => {
        /// Every type of event scimgate writes: the one list.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum EventType {
            $( #[doc = $doc] $variant, )*
        }

        impl EventType {
            /// All types, in documentation order.
            pub const ALL: &'static [EventType] = &[$(EventType::$variant),*];

            /// The wire name (`user.created`, ...).
            pub fn as_str(self) -> &'static str {
                match self {
                    $( EventType::$variant => $name, )*
                }
            }

            /// The kind of resource events of this type are about.
            pub fn resource_kind(self) -> ResourceKind {
                match self {
                    $( EventType::$variant => ResourceKind::$kind, )*
                }
            }
        }

        impl FromStr for EventType {
            type Err = UnknownEventType;
            fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
                match s {
                    $( $name => Ok(EventType::$variant), )*
                    _ => Err(UnknownEventType(s.to_owned())),
                }
            }
        }
    };
}

event_types! {
    UserCreated => "user.created", User, "A user was created.";
    UserUpdated => "user.updated", User, "A user's attributes changed (other than deactivation).";
    UserDeactivated => "user.deactivated", User, "A user's `active` turned false.";
    UserReactivated => "user.reactivated", User, "A user's `active` turned true again.";
    UserDeleted => "user.deleted", User, "A user was deleted.";
    UserRolesChanged => "user.roles_changed", User, "A user's effective roles changed.";
    UserRestored => "user.restored", User, "A soft-deleted user was restored, with the same id.";
    UserPurged => "user.purged", User, "A deleted user's data was purged (grace period over, or erased).";
    GroupCreated => "group.created", Group, "A group was created.";
    GroupUpdated => "group.updated", Group, "A group's attributes (not its members) changed.";
    GroupDeleted => "group.deleted", Group, "A group was deleted.";
    GroupMembersAdded => "group.members_added", Group, "Members were added to a group.";
    GroupMembersRemoved => "group.members_removed", Group, "Members were removed from a group.";
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not an event type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown event type {0:?}")]
pub struct UnknownEventType(pub String);

/// One committed event, as read from the log.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    /// The event's id: fixed at insert, the idempotency key of every
    /// delivery of it.
    pub id: i64,
    /// Its place in commit order: the cursor readers page by.
    pub position: i64,
    /// The tenant it belongs to (which may since have been deleted).
    pub tenant_id: Uuid,
    /// What happened.
    pub event_type: EventType,
    /// The id of the user or group.
    pub resource_id: String,
    /// The payload format's version.
    pub schema_version: i32,
    /// Type-specific data (module documentation).
    pub payload: Value,
    /// When the change was committed.
    pub created_at: DateTime<Utc>,
}

impl StoredEvent {
    /// The id as the envelope and the webhook headers show it.
    pub fn public_id(&self) -> String {
        format!("evt_{}", self.id)
    }
}

/// One event to write.
#[derive(Clone, Debug)]
pub(crate) struct Event {
    pub event_type: EventType,
    pub resource_id: String,
    pub payload: Value,
}

fn created_type(kind: ResourceKind) -> EventType {
    match kind {
        ResourceKind::User => EventType::UserCreated,
        ResourceKind::Group => EventType::GroupCreated,
    }
}

impl Event {
    pub(crate) fn created(kind: ResourceKind, id: &str, version: u64, document: &Value) -> Event {
        Event {
            event_type: created_type(kind),
            resource_id: id.to_owned(),
            payload: json!({"version": version, "document": document}),
        }
    }

    /// A change of attributes from `before` to `after`. For a user, a
    /// change of `active` names the event (deactivated / reactivated).
    pub(crate) fn updated(
        kind: ResourceKind,
        id: &str,
        version: u64,
        changed: &[String],
        before: &Value,
        after: &Value,
    ) -> Event {
        let active = |d: &Value| d.get("active").and_then(Value::as_bool).unwrap_or(true);
        let event_type = match kind {
            ResourceKind::Group => EventType::GroupUpdated,
            ResourceKind::User => match (active(before), active(after)) {
                (true, false) => EventType::UserDeactivated,
                (false, true) => EventType::UserReactivated,
                _ => EventType::UserUpdated,
            },
        };
        let previous: Map<String, Value> = changed
            .iter()
            .map(|k| (k.clone(), before.get(k).cloned().unwrap_or(Value::Null)))
            .collect();
        Event {
            event_type,
            resource_id: id.to_owned(),
            payload: json!({
                "version": version,
                "changed": changed,
                "previous": previous,
                "document": after,
            }),
        }
    }

    /// A deletion; `extra` adds type-specific keys (a user's `groups`).
    pub(crate) fn deleted(
        kind: ResourceKind,
        id: &str,
        version: u64,
        document: &Value,
        extra: Value,
    ) -> Event {
        let mut payload = json!({"version": version, "document": document});
        if let (Some(p), Value::Object(extra)) = (payload.as_object_mut(), extra) {
            p.extend(extra);
        }
        Event {
            event_type: match kind {
                ResourceKind::User => EventType::UserDeleted,
                ResourceKind::Group => EventType::GroupDeleted,
            },
            resource_id: id.to_owned(),
            payload,
        }
    }

    /// The events of a net member change: added, then removed.
    pub(crate) fn members_changed(
        group_id: &str,
        version: u64,
        added: &[String],
        removed: &[String],
    ) -> Vec<Event> {
        let mut out = Vec::with_capacity(2);
        for (event_type, members) in [
            (EventType::GroupMembersAdded, added),
            (EventType::GroupMembersRemoved, removed),
        ] {
            if !members.is_empty() {
                out.push(Event {
                    event_type,
                    resource_id: group_id.to_owned(),
                    payload: json!({"version": version, "members": members}),
                });
            }
        }
        out
    }

    pub(crate) fn roles_changed(
        user_id: &str,
        before: Option<&Effective>,
        after: &Effective,
    ) -> Event {
        crate::metrics::role_changed(after);
        Event {
            event_type: EventType::UserRolesChanged,
            resource_id: user_id.to_owned(),
            payload: json!({"before": before, "after": after}),
        }
    }
}

/// An event with its payload serialized already: made where that work
/// can run off SQLite's writer thread (a request's handler, a batch's
/// planning threads), written later, and more than once if the
/// transaction runs again.
#[derive(Debug, Clone)]
pub(crate) struct PreparedEvent {
    event_type: EventType,
    resource_id: String,
    payload: String,
}

impl PreparedEvent {
    /// What happened.
    pub(crate) fn event_type(&self) -> EventType {
        self.event_type
    }

    /// The payload, serialized.
    pub(crate) fn payload(&self) -> &str {
        &self.payload
    }
}

impl From<Event> for PreparedEvent {
    fn from(e: Event) -> PreparedEvent {
        PreparedEvent {
            event_type: e.event_type,
            resource_id: e.resource_id,
            payload: e.payload.to_string(),
        }
    }
}

/// The rows of `events` for `tenant`, without positions.
fn rows(
    tenant: Uuid,
    events: impl IntoIterator<Item = PreparedEvent>,
) -> Vec<event_log::ActiveModel> {
    let at = now();
    let tenant_id = tenant.to_string();
    events
        .into_iter()
        .map(|e| event_log::ActiveModel {
            id: NotSet,
            position: Set(None),
            tenant_id: Set(tenant_id.clone()),
            event_type: Set(e.event_type.as_str().to_owned()),
            resource_type: Set(e.event_type.resource_kind().as_str().to_owned()),
            resource_id: Set(e.resource_id),
            schema_version: Set(SCHEMA_VERSION),
            payload: Set(e.payload),
            created_at: Set(at),
        })
        .collect()
}

/// Writes events inside the caller's transaction.
pub(crate) async fn write(
    store: &TenantStore,
    txn: &DatabaseTransaction,
    events: Vec<Event>,
) -> Result<(), TxError> {
    write_for(store.inner.backend, txn, store.tenant.id, events).await
}

/// [`write`] for a tenant known by id only (its deletion).
pub(crate) async fn write_for(
    backend: Backend,
    txn: &DatabaseTransaction,
    tenant: Uuid,
    events: Vec<Event>,
) -> Result<(), TxError> {
    if events.is_empty() {
        return Ok(());
    }
    let events = events.into_iter().map(PreparedEvent::from);
    insert_rows(backend, txn, rows(tenant, events)).await
}

/// [`write`] for events prepared beforehand.
pub(crate) async fn write_prepared(
    store: &TenantStore,
    txn: &DatabaseTransaction,
    events: Vec<PreparedEvent>,
) -> Result<(), TxError> {
    insert_rows(store.inner.backend, txn, rows(store.tenant.id, events)).await
}

async fn insert_rows(
    backend: Backend,
    txn: &DatabaseTransaction,
    rows: Vec<event_log::ActiveModel>,
) -> Result<(), TxError> {
    if rows.is_empty() {
        return Ok(());
    }
    // On SQLite's writer the batch inserts every job's rows in one
    // statement before its commit, saving a round trip per write.
    let Err(rows) = crate::writer::defer_events(rows) else {
        return Ok(());
    };
    insert(backend, txn, rows).await.map_err(dbx)
}

/// Rows per `INSERT`: 9 columns each stays far below SQLite's
/// bound-parameter limit.
const INSERT_CHUNK: usize = 500;

/// Inserts rows in the caller's write transaction; on SQLite numbers them
/// first (the transaction holds the write lock, so nobody else can take
/// the same numbers, and they commit in this order).
pub(crate) async fn insert(
    backend: Backend,
    txn: &DatabaseTransaction,
    mut rows: Vec<event_log::ActiveModel>,
) -> std::result::Result<(), sea_orm::DbErr> {
    if rows.is_empty() {
        return Ok(());
    }
    if backend == Backend::Sqlite {
        let last: Option<Option<i64>> = event_log::Entity::find()
            .select_only()
            .column_as(event_log::Column::Position.max(), "max")
            .into_tuple()
            .one(txn)
            .await?;
        let mut next = last.flatten().unwrap_or(0);
        for row in &mut rows {
            next += 1;
            row.position = Set(Some(next));
        }
    }
    for chunk in rows.chunks(INSERT_CHUNK) {
        event_log::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(txn)
            .await?;
    }
    Ok(())
}

/// PostgreSQL: numbers committed rows that have no position yet, in id
/// order, continuing after the largest position. One sequencer runs at a
/// time; a caller that finds another running waits for it (a few
/// milliseconds) and then numbers what is still left, so every event
/// committed before the call has its position when the call returns (a
/// caller that returned at once could read the log without an event it
/// had just seen committed). Returns how many rows it numbered.
pub(crate) async fn sequence(inner: &Inner) -> Result<u64> {
    if inner.backend != Backend::Postgres {
        return Ok(0);
    }
    use sea_orm::TransactionTrait;
    let mut total = 0u64;
    loop {
        let txn = inner.conn.begin().await.map_err(db)?;
        txn.execute_raw(Statement::from_sql_and_values(
            sea_orm::DbBackend::Postgres,
            "SELECT pg_advisory_xact_lock($1)",
            [SEQUENCER_LOCK.into()],
        ))
        .await
        .map_err(db)?;
        // Each statement of a READ COMMITTED transaction sees every commit
        // made before it started, so the previous sequencer's numbers
        // (committed before this one got the lock) are in MAX(position).
        let numbered = txn
            .execute_raw(Statement::from_sql_and_values(
                sea_orm::DbBackend::Postgres,
                "WITH base AS (SELECT COALESCE(MAX(position), 0) AS b FROM event_log), \
                 todo AS (SELECT id, row_number() OVER (ORDER BY id) AS rn FROM \
                   (SELECT id FROM event_log WHERE position IS NULL ORDER BY id LIMIT $1) t) \
                 UPDATE event_log e SET position = base.b + todo.rn \
                 FROM todo, base WHERE e.id = todo.id",
                [SEQUENCE_BATCH.into()],
            ))
            .await
            .map_err(db)?
            .rows_affected();
        txn.commit().await.map_err(db)?;
        total += numbered;
        if numbered < u64::try_from(SEQUENCE_BATCH).unwrap_or(u64::MAX) {
            return Ok(total);
        }
    }
}

pub(crate) fn from_row(r: event_log::Model) -> Result<StoredEvent> {
    let corrupt = |what: &str| StoreError::Internal(format!("event {} has {what}", r.id));
    let payload = serde_json::from_str(&r.payload).map_err(|_| corrupt("a corrupt payload"))?;
    let event_type = EventType::from_str(&r.event_type).map_err(|_| corrupt("an unknown type"))?;
    let tenant_id = Uuid::parse_str(&r.tenant_id).map_err(|_| corrupt("a malformed tenant"))?;
    let position = r.position.ok_or_else(|| corrupt("no position"))?;
    Ok(StoredEvent {
        id: r.id,
        position,
        tenant_id,
        event_type,
        resource_id: r.resource_id,
        schema_version: r.schema_version,
        payload,
        created_at: r.created_at,
    })
}

/// What to read from the log.
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    /// Only events after this position (0: from the start).
    pub after: i64,
    /// At most this many (capped at [`MAX_READ`]).
    pub limit: u64,
    /// Only these types (empty: all).
    pub types: Vec<EventType>,
    /// Only this tenant.
    pub tenant: Option<Uuid>,
}

/// Reads numbered events in position order.
pub(crate) async fn read(inner: &Inner, query: &EventQuery) -> Result<Vec<StoredEvent>> {
    sequence(inner).await?;
    let mut select = event_log::Entity::find()
        .filter(event_log::Column::Position.gt(query.after))
        .order_by_asc(event_log::Column::Position)
        .limit(query.limit.clamp(1, MAX_READ));
    if let Some(tenant) = query.tenant {
        select = select.filter(event_log::Column::TenantId.eq(tenant.to_string()));
    }
    if !query.types.is_empty() {
        select = select
            .filter(event_log::Column::EventType.is_in(query.types.iter().map(|t| t.as_str())));
    }
    select
        .all(&inner.conn)
        .await
        .map_err(db)?
        .into_iter()
        .map(from_row)
        .collect()
}

/// A tenant's newest numbered events, newest first (at most
/// [`MAX_READ`]).
pub(crate) async fn latest(store: &TenantStore, limit: u64) -> Result<Vec<StoredEvent>> {
    sequence(&store.inner).await?;
    event_log::Entity::find()
        .filter(event_log::Column::TenantId.eq(store.tenant.id.to_string()))
        .filter(event_log::Column::Position.is_not_null())
        .order_by_desc(event_log::Column::Position)
        .limit(limit.clamp(1, MAX_READ))
        .all(&store.inner.conn)
        .await
        .map_err(db)?
        .into_iter()
        .map(from_row)
        .collect()
}

/// One resource's events in commit order (at most [`MAX_READ`], newest).
pub(crate) async fn of_resource(
    store: &TenantStore,
    resource_id: &str,
) -> Result<Vec<StoredEvent>> {
    sequence(&store.inner).await?;
    let mut rows = event_log::Entity::find()
        .filter(event_log::Column::TenantId.eq(store.tenant.id.to_string()))
        .filter(event_log::Column::ResourceId.eq(resource_id))
        .filter(event_log::Column::Position.is_not_null())
        .order_by_desc(event_log::Column::Id)
        .limit(MAX_READ)
        .all(&store.inner.conn)
        .await
        .map_err(db)?;
    rows.reverse();
    rows.into_iter().map(from_row).collect()
}

/// The largest position readers can see (0 for an empty log).
pub(crate) async fn head(inner: &Inner) -> Result<i64> {
    sequence(inner).await?;
    let last: Option<Option<i64>> = event_log::Entity::find()
        .select_only()
        .column_as(event_log::Column::Position.max(), "max")
        .into_tuple()
        .one(&inner.conn)
        .await
        .map_err(db)?;
    Ok(last.flatten().unwrap_or(0))
}

/// Deletes numbered events created before `before` whose position is at
/// most `up_to` (what every consumer has finished with); returns how many.
pub(crate) async fn prune(inner: &Inner, before: DateTime<Utc>, up_to: i64) -> Result<u64> {
    let deleted = write_txn!(inner, [], [], txn => {
        let res = event_log::Entity::delete_many()
            .filter(event_log::Column::CreatedAt.lt(before))
            .filter(event_log::Column::Position.lte(up_to))
            .exec(txn)
            .await
            .map_err(dbx)?;
        Ok(res.rows_affected)
    })?;
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_round_trips_its_name() {
        assert_eq!(EventType::ALL.len(), 13);
        for t in EventType::ALL {
            assert_eq!(t.as_str().parse::<EventType>(), Ok(*t));
            let prefix = t.as_str().split('.').next().unwrap_or_default();
            assert_eq!(prefix, t.resource_kind().as_str().to_lowercase());
        }
        assert!("group.members_changed".parse::<EventType>().is_err());
    }

    #[test]
    fn an_update_is_named_by_active() {
        let on = json!({"userName": "a", "active": true});
        let off = json!({"userName": "a", "active": false});
        let changed = vec!["active".to_owned()];
        let t = |b: &Value, a: &Value| {
            Event::updated(ResourceKind::User, "u", 2, &changed, b, a).event_type
        };
        assert_eq!(t(&on, &off), EventType::UserDeactivated);
        assert_eq!(t(&off, &on), EventType::UserReactivated);
        assert_eq!(t(&on, &on), EventType::UserUpdated);
        // No `active` at all means active.
        assert_eq!(t(&json!({}), &off), EventType::UserDeactivated);
        let e = Event::updated(ResourceKind::User, "u", 2, &changed, &on, &off);
        assert_eq!(e.payload["previous"], json!({"active": true}));
        assert_eq!(e.payload["document"], off);
    }

    #[test]
    fn a_member_change_splits_into_added_and_removed() {
        let both = Event::members_changed("g", 3, &["a".into()], &["b".into()]);
        let types: Vec<EventType> = both.iter().map(|e| e.event_type).collect();
        assert_eq!(
            types,
            [EventType::GroupMembersAdded, EventType::GroupMembersRemoved]
        );
        assert_eq!(both[1].payload, json!({"version": 3, "members": ["b"]}));
        assert!(Event::members_changed("g", 3, &[], &[]).is_empty());
    }
}
