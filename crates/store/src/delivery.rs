//! Delivery state: each tenant's targets (where its application receives
//! events), the deliveries that wait, every attempt, and the remote ids of
//! resources pushed over outbound SCIM.
//!
//! A target reads the event log by its own `cursor`: every event up to the
//! cursor has been delivered, is waiting in `deliveries`, or was not for
//! this target. On the happy path an event never gets a `deliveries` row:
//! the worker sends it and moves the cursor in the same transaction that
//! records the attempt. An event that fails gets a `pending` row with its
//! next attempt time, and while a resource has a pending row every later
//! event of that resource for that target is queued behind it (also as a
//! pending row), so one resource's events arrive in commit order and a
//! failing one holds back nothing else. A row whose retries are exhausted,
//! or that failed permanently, turns `dead` (the dead-letter list) and
//! stops holding its resource.
//!
//! Worker-side writes are fenced by the target's lease: a worker that lost
//! its lease (it stalled and another took over) changes nothing.

use std::collections::HashSet;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveValue::NotSet, ActiveValue::Set, ColumnTrait, Condition, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, QueryTrait,
};
use serde_json::json;
use uuid::Uuid;

use crate::db::{Inner, db, dbx, now, unique_or};
use crate::entity::{deliveries, delivery_attempts, event_log, remote_ids, targets};
use crate::events::{EventType, StoredEvent};
use crate::{Result, StoreError, TenantStore, audit};

/// Most rows one listing returns.
pub const MAX_LIST: u64 = 500;

/// The actor the worker's own changes are audited as.
pub const WORKER_ACTOR: &str = "system:delivery";

/// How a target receives events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetKind {
    /// Signed HTTP POSTs (Standard Webhooks).
    Webhook,
    /// The application's own SCIM 2.0 endpoint.
    Scim,
}

impl TargetKind {
    /// The stored and wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            TargetKind::Webhook => "webhook",
            TargetKind::Scim => "scim",
        }
    }
}

impl FromStr for TargetKind {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "webhook" => Ok(TargetKind::Webhook),
            "scim" => Ok(TargetKind::Scim),
            other => Err(StoreError::InvalidValue(format!(
                "unknown target kind {other:?} (webhook or scim)"
            ))),
        }
    }
}

/// A target as stored, without its secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Its id.
    pub id: Uuid,
    /// The tenant whose events it receives.
    pub tenant_id: Uuid,
    /// A label, unique within the tenant.
    pub name: String,
    /// Webhook or outbound SCIM.
    pub kind: TargetKind,
    /// The endpoint (the SCIM base URL for outbound SCIM).
    pub url: String,
    /// The event types it receives; empty means all.
    pub event_types: Vec<EventType>,
    /// Whether the worker delivers to it.
    pub enabled: bool,
    /// Why it was disabled (by an admin, a 410, or sustained failure).
    pub disabled_reason: Option<String>,
    /// When it was disabled.
    pub disabled_at: Option<DateTime<Utc>>,
    /// The last event-log position it has handled.
    pub cursor: i64,
    /// Since when every attempt has failed (none since the last success).
    pub failing_since: Option<DateTime<Utc>>,
    /// The last successful attempt.
    pub last_success_at: Option<DateTime<Utc>>,
    /// The last failed attempt.
    pub last_failure_at: Option<DateTime<Utc>>,
    /// What the last failure was.
    pub last_error: Option<String>,
    /// Until when the previous signing secret is still used (rotation).
    pub previous_secret_until: Option<DateTime<Utc>>,
    /// How its application's documents are shaped (`None`: as stored).
    pub mapping: Option<mapping::MappingSpec>,
    /// Grows with every change of `mapping`; `If-Match` compares against
    /// it (0: never set).
    pub mapping_version: u64,
    /// An outbound SCIM target's application profile (the defaults for
    /// webhooks and for targets that never set one).
    pub profile: OutboundProfile,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was last changed.
    pub updated_at: DateTime<Utc>,
}

impl Target {
    /// Whether an event of `event_type` is for this target.
    pub fn wants(&self, event_type: EventType) -> bool {
        self.event_types.is_empty() || self.event_types.contains(&event_type)
    }

    /// Whether this target receives `event`: of a type it wants, and not
    /// meant for another target only (a re-send, module `resend`).
    pub fn receives(&self, event: &StoredEvent) -> bool {
        self.wants(event.event_type) && event.only_for().is_none_or(|t| t == self.id)
    }
}

/// A target's sealed secrets (the webhook signing secret or the SCIM
/// bearer token), for the worker only; the store never sees them in clear.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedSecrets {
    /// The current secret, sealed.
    pub current: String,
    /// The previous secret during a rotation's overlap, sealed, and until
    /// when it is used.
    pub previous: Option<(String, DateTime<Utc>)>,
}

impl std::fmt::Debug for SealedSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealedSecrets([sealed])")
    }
}

/// How an outbound SCIM application wants its requests: its limits and
/// quirks (docs/connect-your-application.md). Every field has a default
/// that suits a conforming SCIM server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct OutboundProfile {
    /// Members added or removed per group PATCH, at most (a larger change
    /// is split into several requests).
    pub members_per_patch: u32,
    /// How a changed user is sent: `put` (the whole user) or `patch` (a
    /// `replace` of its attributes).
    pub update_method: UpdateMethod,
    /// Requests per second to the application, at most (`None`: as fast as
    /// it answers).
    pub requests_per_second: Option<u32>,
    /// Whether the application takes only users as group members: a
    /// nested group's users then become members of every group above it.
    pub flatten_groups: bool,
}

impl OutboundProfile {
    /// The largest `members_per_patch`.
    pub const MAX_MEMBERS_PER_PATCH: u32 = 1000;
    /// The largest `requests_per_second`.
    pub const MAX_REQUESTS_PER_SECOND: u32 = 10_000;

    /// Checks the bounds; the message names the field.
    pub fn check(&self) -> Result<()> {
        if !(1..=Self::MAX_MEMBERS_PER_PATCH).contains(&self.members_per_patch) {
            return Err(StoreError::InvalidValue(format!(
                "membersPerPatch must be between 1 and {}",
                Self::MAX_MEMBERS_PER_PATCH
            )));
        }
        if let Some(rate) = self.requests_per_second
            && !(1..=Self::MAX_REQUESTS_PER_SECOND).contains(&rate)
        {
            return Err(StoreError::InvalidValue(format!(
                "requestsPerSecond must be between 1 and {}",
                Self::MAX_REQUESTS_PER_SECOND
            )));
        }
        Ok(())
    }
}

impl Default for OutboundProfile {
    fn default() -> Self {
        OutboundProfile {
            members_per_patch: 100,
            update_method: UpdateMethod::Put,
            requests_per_second: None,
            flatten_groups: false,
        }
    }
}

/// How an outbound SCIM target updates a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UpdateMethod {
    /// `PUT /Users/{id}` with the whole user.
    Put,
    /// `PATCH /Users/{id}` replacing the user's attributes.
    Patch,
}

/// A new target.
#[derive(Debug, Clone)]
pub struct NewTarget {
    /// A label, unique within the tenant.
    pub name: String,
    /// Webhook or outbound SCIM.
    pub kind: TargetKind,
    /// The endpoint, already checked by the caller.
    pub url: String,
    /// The event types it receives; empty means all.
    pub event_types: Vec<EventType>,
    /// Its secret, sealed by the caller.
    pub sealed_secret: String,
}

/// Changes to a target; `None` keeps the current value.
#[derive(Debug, Clone, Default)]
pub struct TargetUpdate {
    /// A new label.
    pub name: Option<String>,
    /// A new endpoint, already checked by the caller.
    pub url: Option<String>,
    /// New event types (empty: all).
    pub event_types: Option<Vec<EventType>>,
    /// Enable or disable; enabling clears the failure record.
    pub enabled: Option<bool>,
    /// A new sealed secret (the SCIM bearer token; webhook secrets rotate
    /// through [`TenantStore::rotate_target_secret`]).
    pub sealed_secret: Option<String>,
}

/// Where a waiting delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// Waiting for its next attempt, or behind an earlier event of its
    /// resource.
    Pending,
    /// Given up on: a dead letter, until replayed.
    Dead,
}

impl DeliveryStatus {
    /// The stored and wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Dead => "dead",
        }
    }
}

/// A delivery that waits: a retry, an event held behind one, or a dead
/// letter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Its id.
    pub id: i64,
    /// The target.
    pub target_id: Uuid,
    /// The tenant.
    pub tenant_id: Uuid,
    /// The event (its log id).
    pub event_id: i64,
    /// The event's log position.
    pub position: i64,
    /// The user or group the event is about.
    pub resource_id: String,
    /// Pending or dead.
    pub status: DeliveryStatus,
    /// Attempts made so far.
    pub attempts: u32,
    /// When it may next be attempted (pending only).
    pub next_attempt_at: DateTime<Utc>,
    /// The HTTP status of the last attempt, if it got one.
    pub last_status: Option<u16>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// When the row was made.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// One recorded attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// Its id (increasing).
    pub id: i64,
    /// The target.
    pub target_id: Uuid,
    /// The tenant.
    pub tenant_id: Uuid,
    /// The event (its log id).
    pub event_id: i64,
    /// The user or group.
    pub resource_id: String,
    /// 1 for the first attempt of the event, then 2, ...
    pub attempt: u32,
    /// When it was made.
    pub at: DateTime<Utc>,
    /// The HTTP status, if a response came.
    pub status_code: Option<u16>,
    /// `delivered`, `retry`, `dead`, `held` or `disabled`.
    pub outcome: String,
    /// How long it took.
    pub latency_ms: u64,
    /// The start of the response body.
    pub response: Option<String>,
    /// Why it failed (network error, timeout, status).
    pub error: Option<String>,
}

/// An attempt to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAttempt {
    /// The event (its log id).
    pub event_id: i64,
    /// The user or group.
    pub resource_id: String,
    /// Which attempt of the event this was.
    pub attempt: u32,
    /// When it was made.
    pub at: DateTime<Utc>,
    /// The HTTP status, if a response came.
    pub status_code: Option<u16>,
    /// What came of it.
    pub outcome: String,
    /// How long it took.
    pub latency_ms: u64,
    /// The start of the response body (the caller bounds it).
    pub response: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
}

/// A waiting delivery to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDelivery {
    /// The event (its log id).
    pub event_id: i64,
    /// The event's position.
    pub position: i64,
    /// The user or group.
    pub resource_id: String,
    /// Pending or dead.
    pub status: DeliveryStatus,
    /// Attempts made so far.
    pub attempts: u32,
    /// When it may next be attempted.
    pub next_attempt_at: DateTime<Utc>,
    /// The last attempt's HTTP status.
    pub last_status: Option<u16>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
}

/// A change to a waiting delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryChange {
    /// A new row.
    Insert(NewDelivery),
    /// Delivered: the row goes.
    Delete(i64),
    /// Tried again and failed: new state.
    Update {
        /// The row.
        id: i64,
        /// Pending (another retry) or dead.
        status: DeliveryStatus,
        /// Attempts made so far.
        attempts: u32,
        /// When it may next be attempted.
        next_attempt_at: DateTime<Utc>,
        /// The last attempt's HTTP status.
        last_status: Option<u16>,
        /// Why it failed.
        last_error: Option<String>,
    },
}

/// How the target fared in a batch, for its health record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// The last attempt succeeded.
    Ok,
    /// The last attempt failed, with why.
    Failing(String),
}

/// What one round of the worker on one target wrote, committed at once.
#[derive(Debug, Clone, Default)]
pub struct Commit {
    /// The time of the round.
    pub now: DateTime<Utc>,
    /// Move the cursor to this position.
    pub cursor: Option<i64>,
    /// Attempts made.
    pub attempts: Vec<NewAttempt>,
    /// Changes to waiting deliveries.
    pub changes: Vec<DeliveryChange>,
    /// The target's health after the round, if any attempt was made.
    pub health: Option<Health>,
    /// Disable the target, with why.
    pub disable: Option<String>,
}

fn uuid_of(text: &str, what: &str) -> Result<Uuid> {
    Uuid::parse_str(text).map_err(|_| StoreError::Internal(format!("malformed {what} id {text:?}")))
}

fn types_text(types: &[EventType]) -> String {
    let mut names: Vec<&str> = types.iter().map(|t| t.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    json!(names).to_string()
}

/// Target `id` of `tenant`, locked for the rest of write transaction
/// `txn`; `NotFound` when the tenant has no such target.
async fn target_row(
    txn: &sea_orm::DatabaseTransaction,
    tenant: Uuid,
    id: Uuid,
) -> Result<targets::Model, crate::db::TxError> {
    targets::Entity::find_by_id(id.to_string())
        .filter(targets::Column::TenantId.eq(tenant.to_string()))
        .lock_exclusive()
        .one(txn)
        .await
        .map_err(dbx)?
        .ok_or_else(|| not_found(id).into())
}

fn target_from_row(r: targets::Model) -> Result<Target> {
    let names: Vec<String> = serde_json::from_str(&r.event_types)
        .map_err(|_| StoreError::Internal(format!("target {} has corrupt event types", r.id)))?;
    let event_types = names
        .iter()
        .map(|n| EventType::from_str(n))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| StoreError::Internal(format!("target {}: {e}", r.id)))?;
    let mapping = r
        .mapping
        .as_deref()
        .map(serde_json::from_str::<mapping::MappingSpec>)
        .transpose()
        .map_err(|e| StoreError::Internal(format!("target {} has a corrupt mapping: {e}", r.id)))?;
    let profile = r
        .profile
        .as_deref()
        .map(serde_json::from_str::<OutboundProfile>)
        .transpose()
        .map_err(|e| StoreError::Internal(format!("target {} has a corrupt profile: {e}", r.id)))?
        .unwrap_or_default();
    Ok(Target {
        id: uuid_of(&r.id, "target")?,
        tenant_id: uuid_of(&r.tenant_id, "tenant")?,
        name: r.name,
        kind: TargetKind::from_str(&r.kind)?,
        url: r.url,
        event_types,
        enabled: r.enabled,
        disabled_reason: r.disabled_reason,
        disabled_at: r.disabled_at,
        cursor: r.cursor,
        failing_since: r.failing_since,
        last_success_at: r.last_success_at,
        last_failure_at: r.last_failure_at,
        last_error: r.last_error,
        previous_secret_until: r.previous_secret_until,
        mapping,
        mapping_version: u64::try_from(r.mapping_version).unwrap_or(0),
        profile,
        created_at: r.created_at,
        updated_at: r.updated_at,
    })
}

fn secrets_from_row(r: &targets::Model) -> SealedSecrets {
    SealedSecrets {
        current: r.secret.clone(),
        previous: r.previous_secret.clone().zip(r.previous_secret_until),
    }
}

fn delivery_from_row(r: deliveries::Model) -> Result<Delivery> {
    Ok(Delivery {
        id: r.id,
        target_id: uuid_of(&r.target_id, "target")?,
        tenant_id: uuid_of(&r.tenant_id, "tenant")?,
        event_id: r.event_id,
        position: r.position,
        resource_id: r.resource_id,
        status: if r.status == "dead" {
            DeliveryStatus::Dead
        } else {
            DeliveryStatus::Pending
        },
        attempts: u32::try_from(r.attempts).unwrap_or(0),
        next_attempt_at: r.next_attempt_at,
        last_status: r.last_status.and_then(|s| u16::try_from(s).ok()),
        last_error: r.last_error,
        created_at: r.created_at,
        updated_at: r.updated_at,
    })
}

fn attempt_from_row(r: delivery_attempts::Model) -> Result<Attempt> {
    Ok(Attempt {
        id: r.id,
        target_id: uuid_of(&r.target_id, "target")?,
        tenant_id: uuid_of(&r.tenant_id, "tenant")?,
        event_id: r.event_id,
        resource_id: r.resource_id,
        attempt: u32::try_from(r.attempt).unwrap_or(0),
        at: r.at,
        status_code: r.status_code.and_then(|s| u16::try_from(s).ok()),
        outcome: r.outcome,
        latency_ms: u64::try_from(r.latency_ms).unwrap_or(0),
        response: r.response,
        error: r.error,
    })
}

fn not_found(id: Uuid) -> StoreError {
    StoreError::NotFound(format!("target {id}"))
}

fn name_taken(name: &str) -> String {
    format!("a target named {name:?} already exists in this tenant")
}

fn i32_of(v: u32) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

// ---------------------------------------------------------------------------
// Tenant side: what an admin does with the tenant's targets.

impl TenantStore {
    /// Creates a target that receives the events committed from now on.
    pub async fn create_target(&self, new: NewTarget, actor: &str) -> Result<Target> {
        let id = Uuid::new_v4();
        let tenant = self.tenant.id;
        let at = now();
        let start = crate::events::head(&self.inner).await?;
        let row = targets::ActiveModel {
            id: Set(id.to_string()),
            tenant_id: Set(tenant.to_string()),
            name: Set(new.name.clone()),
            kind: Set(new.kind.as_str().to_owned()),
            url: Set(new.url.clone()),
            event_types: Set(types_text(&new.event_types)),
            enabled: Set(true),
            disabled_reason: Set(None),
            disabled_at: Set(None),
            secret: Set(new.sealed_secret.clone()),
            previous_secret: Set(None),
            previous_secret_until: Set(None),
            cursor: Set(start),
            failing_since: Set(None),
            last_success_at: Set(None),
            last_failure_at: Set(None),
            last_error: Set(None),
            lease_owner: Set(None),
            lease_until: Set(None),
            created_at: Set(at),
            updated_at: Set(at),
            mapping: Set(None),
            mapping_version: Set(0),
            profile: Set(None),
        };
        let name = new.name.clone();
        let detail = json!({"id": id, "kind": new.kind.as_str(), "url": new.url,
            "event_types": types_text(&new.event_types)});
        write_txn!(self.inner, [actor], [row, name, detail], txn => {
            targets::Entity::insert(row.clone())
                .exec_without_returning(txn)
                .await
                .map_err(|e| unique_or(e, || name_taken(name)))?;
            audit::write(txn, Some(tenant), actor, "target.create", name, detail.clone()).await
        })?;
        self.target(id).await
    }

    /// The tenant's targets, by name.
    pub async fn targets(&self) -> Result<Vec<Target>> {
        targets::Entity::find()
            .filter(targets::Column::TenantId.eq(self.tenant.id.to_string()))
            .order_by_asc(targets::Column::Name)
            .all(&self.inner.conn)
            .await
            .map_err(db)?
            .into_iter()
            .map(target_from_row)
            .collect()
    }

    /// One of the tenant's targets (`NotFound` for another tenant's).
    pub async fn target(&self, id: Uuid) -> Result<Target> {
        let row = targets::Entity::find_by_id(id.to_string())
            .filter(targets::Column::TenantId.eq(self.tenant.id.to_string()))
            .one(&self.inner.conn)
            .await
            .map_err(db)?
            .ok_or_else(|| not_found(id))?;
        target_from_row(row)
    }

    /// Changes a target; enabling it clears its failure record.
    pub async fn update_target(
        &self,
        id: Uuid,
        update: TargetUpdate,
        actor: &str,
    ) -> Result<Target> {
        let tenant = self.tenant.id;
        write_txn!(self.inner, [actor], [update], txn => {
            let row = target_row(txn, tenant, id).await?;
            let at = now();
            let mut q = targets::Entity::update_many()
                .col_expr(targets::Column::UpdatedAt, Expr::value(at));
            let mut detail = serde_json::Map::new();
            if let Some(name) = &update.name {
                q = q.col_expr(targets::Column::Name, Expr::value(name.clone()));
                detail.insert("name".into(), json!(name));
            }
            if let Some(url) = &update.url {
                q = q.col_expr(targets::Column::Url, Expr::value(url.clone()));
                detail.insert("url".into(), json!(url));
            }
            if let Some(types) = &update.event_types {
                q = q.col_expr(targets::Column::EventTypes, Expr::value(types_text(types)));
                detail.insert("event_types".into(), json!(types_text(types)));
            }
            if let Some(secret) = &update.sealed_secret {
                q = q.col_expr(targets::Column::Secret, Expr::value(secret.clone()));
                detail.insert("secret".into(), json!("replaced"));
            }
            match update.enabled {
                Some(true) if !row.enabled => {
                    q = q
                        .col_expr(targets::Column::Enabled, Expr::value(true))
                        .col_expr(targets::Column::DisabledReason, Expr::value(None::<String>))
                        .col_expr(targets::Column::DisabledAt, Expr::value(None::<DateTime<Utc>>))
                        .col_expr(targets::Column::FailingSince, Expr::value(None::<DateTime<Utc>>));
                    detail.insert("enabled".into(), json!(true));
                }
                Some(false) if row.enabled => {
                    q = q
                        .col_expr(targets::Column::Enabled, Expr::value(false))
                        .col_expr(
                            targets::Column::DisabledReason,
                            Expr::value(Some(format!("disabled by {actor}"))),
                        )
                        .col_expr(targets::Column::DisabledAt, Expr::value(Some(at)));
                    detail.insert("enabled".into(), json!(false));
                }
                _ => {}
            }
            let name = update.name.clone().unwrap_or_else(|| row.name.clone());
            q.filter(targets::Column::Id.eq(id.to_string()))
                .exec(txn)
                .await
                .map_err(|e| unique_or(e, || name_taken(&name)))?;
            audit::write(txn, Some(tenant), actor, "target.update", &name,
                serde_json::Value::Object(detail)).await
        })?;
        self.target(id).await
    }

    /// Replaces a target's attribute mapping (`None`: documents go out as
    /// stored), audited, when `if_match` is the current mapping version
    /// (or absent). A mapping that does not check out is `InvalidValue`
    /// naming the rule and attribute, and changes nothing. With `resend`,
    /// a [`crate::MAPPING_RESEND`] job queued in the same transaction
    /// sends the resources whose document changes again; its id is
    /// returned with the target.
    pub async fn set_target_mapping(
        &self,
        id: Uuid,
        spec: Option<mapping::MappingSpec>,
        if_match: Option<u64>,
        resend: bool,
        actor: &str,
    ) -> Result<(Target, Option<String>)> {
        if let Some(spec) = &spec {
            mapping::Mapping::parse(spec).map_err(|e| StoreError::InvalidValue(e.to_string()))?;
        }
        let text = spec
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| StoreError::Internal(format!("a mapping does not serialize: {e}")))?;
        let detail = json!({
            "users": spec.as_ref().and_then(|s| s.users.as_ref()).map(|s| s.attributes.len()),
            "groups": spec.as_ref().and_then(|s| s.groups.as_ref()).map(|s| s.attributes.len()),
            "raw": spec.as_ref().is_some_and(|s| s.raw),
        });
        let tenant = self.tenant.id;
        let clock = self.inner.options.clock.clone();
        let job = write_txn!(self.inner, [actor], [text, detail, clock], txn => {
            let row = target_row(txn, tenant, id).await?;
            if let Some(expected) = if_match
                && i64::try_from(expected).ok() != Some(row.mapping_version)
            {
                return Err(StoreError::PreconditionFailed {
                    current: u64::try_from(row.mapping_version).unwrap_or(0),
                }
                .into());
            }
            let version = row.mapping_version + 1;
            targets::Entity::update_many()
                .col_expr(targets::Column::Mapping, Expr::value(text.clone()))
                .col_expr(targets::Column::MappingVersion, Expr::value(version))
                .col_expr(targets::Column::UpdatedAt, Expr::value(now()))
                .filter(targets::Column::Id.eq(id.to_string()))
                .exec(txn)
                .await
                .map_err(dbx)?;
            let mut detail = detail.clone();
            detail["version"] = json!(version);
            let job = if resend {
                let from = row
                    .mapping
                    .as_deref()
                    .map(serde_json::from_str::<mapping::MappingSpec>)
                    .transpose()
                    .map_err(|e| StoreError::Internal(format!("target {id}'s stored mapping: {e}")))?;
                let job = crate::resend::enqueue(clock, txn, tenant, id, from.as_ref(), version).await?;
                detail["resendJob"] = json!(job);
                Some(job)
            } else {
                None
            };
            audit::write(txn, Some(tenant), actor, "target.mapping", &row.name, detail).await?;
            Ok(job)
        })?;
        if job.is_some() {
            self.inner.jobs_queued.notify_waiters();
        }
        Ok((self.target(id).await?, job))
    }

    /// Replaces an outbound SCIM target's application profile (audited);
    /// `InvalidValue` for a webhook target or a bound exceeded.
    pub async fn set_target_profile(
        &self,
        id: Uuid,
        profile: OutboundProfile,
        actor: &str,
    ) -> Result<Target> {
        profile.check()?;
        let text = serde_json::to_string(&profile)
            .map_err(|e| StoreError::Internal(format!("a profile does not serialize: {e}")))?;
        let detail = serde_json::to_value(profile)
            .map_err(|e| StoreError::Internal(format!("a profile does not serialize: {e}")))?;
        let tenant = self.tenant.id;
        write_txn!(self.inner, [actor], [text, detail], txn => {
            let row = target_row(txn, tenant, id).await?;
            if row.kind != TargetKind::Scim.as_str() {
                return Err(StoreError::InvalidValue(format!(
                    "target '{}' is a webhook: only outbound SCIM targets have a profile",
                    row.name
                ))
                .into());
            }
            targets::Entity::update_many()
                .col_expr(targets::Column::Profile, Expr::value(Some(text.clone())))
                .col_expr(targets::Column::UpdatedAt, Expr::value(now()))
                .filter(targets::Column::Id.eq(id.to_string()))
                .exec(txn)
                .await
                .map_err(dbx)?;
            audit::write(txn, Some(tenant), actor, "target.profile", &row.name, detail.clone()).await
        })?;
        self.target(id).await
    }

    /// Replaces a webhook target's signing secret; the old one keeps
    /// signing too (a second signature) until `overlap_until`.
    pub async fn rotate_target_secret(
        &self,
        id: Uuid,
        sealed_secret: String,
        overlap_until: DateTime<Utc>,
        actor: &str,
    ) -> Result<Target> {
        let tenant = self.tenant.id;
        write_txn!(self.inner, [actor], [sealed_secret], txn => {
            let row = target_row(txn, tenant, id).await?;
            targets::Entity::update_many()
                .col_expr(targets::Column::PreviousSecret, Expr::value(Some(row.secret.clone())))
                .col_expr(targets::Column::PreviousSecretUntil, Expr::value(Some(overlap_until)))
                .col_expr(targets::Column::Secret, Expr::value(sealed_secret.clone()))
                .col_expr(targets::Column::UpdatedAt, Expr::value(now()))
                .filter(targets::Column::Id.eq(id.to_string()))
                .exec(txn)
                .await
                .map_err(dbx)?;
            audit::write(txn, Some(tenant), actor, "target.rotate_secret", &row.name,
                json!({"id": id, "previous_until": overlap_until})).await
        })?;
        self.target(id).await
    }

    /// Deletes a target with its waiting deliveries (its attempts stay
    /// until retention removes them).
    pub async fn delete_target(&self, id: Uuid, actor: &str) -> Result<()> {
        let tenant = self.tenant.id;
        write_txn!(self.inner, [actor], [], txn => {
            let row = target_row(txn, tenant, id).await?;
            // Explicitly, so it does not depend on SQLite's foreign-key
            // enforcement being on.
            deliveries::Entity::delete_many()
                .filter(deliveries::Column::TargetId.eq(id.to_string()))
                .exec(txn)
                .await
                .map_err(dbx)?;
            remote_ids::Entity::delete_many()
                .filter(remote_ids::Column::TargetId.eq(id.to_string()))
                .exec(txn)
                .await
                .map_err(dbx)?;
            targets::Entity::delete_many()
                .filter(targets::Column::Id.eq(id.to_string()))
                .exec(txn)
                .await
                .map_err(dbx)?;
            audit::write(txn, Some(tenant), actor, "target.delete", &row.name, json!({"id": id}))
                .await
        })
    }

    /// A target's waiting deliveries of one status, oldest event first,
    /// after delivery id `after` (paging).
    pub async fn deliveries(
        &self,
        target: Uuid,
        status: DeliveryStatus,
        after: i64,
        limit: u64,
    ) -> Result<Vec<Delivery>> {
        self.target(target).await?;
        deliveries::Entity::find()
            .filter(deliveries::Column::TargetId.eq(target.to_string()))
            .filter(deliveries::Column::Status.eq(status.as_str()))
            .filter(deliveries::Column::Id.gt(after))
            .order_by_asc(deliveries::Column::Id)
            .limit(limit.clamp(1, MAX_LIST))
            .all(&self.inner.conn)
            .await
            .map_err(db)?
            .into_iter()
            .map(delivery_from_row)
            .collect()
    }

    /// Puts dead letters back in line: one (`Some(id)`) or all of the
    /// target's. Returns how many.
    pub async fn replay_dead_letters(
        &self,
        target: Uuid,
        delivery: Option<i64>,
        actor: &str,
    ) -> Result<u64> {
        let t = self.target(target).await?;
        let tenant = self.tenant.id;
        let name = t.name;
        write_txn!(self.inner, [actor], [name], txn => {
            let at = now();
            let mut q = deliveries::Entity::update_many()
                .col_expr(deliveries::Column::Status, Expr::value(DeliveryStatus::Pending.as_str()))
                .col_expr(deliveries::Column::Attempts, Expr::value(0))
                .col_expr(deliveries::Column::NextAttemptAt, Expr::value(at))
                .col_expr(deliveries::Column::UpdatedAt, Expr::value(at))
                .filter(deliveries::Column::TargetId.eq(target.to_string()))
                .filter(deliveries::Column::Status.eq(DeliveryStatus::Dead.as_str()));
            if let Some(id) = delivery {
                q = q.filter(deliveries::Column::Id.eq(id));
            }
            let n = q.exec(txn).await.map_err(dbx)?.rows_affected;
            if let (Some(id), 0) = (delivery, n) {
                return Err(StoreError::NotFound(format!("dead letter {id}")).into());
            }
            audit::write(txn, Some(tenant), actor, "target.replay", name,
                json!({"target": target, "delivery": delivery, "count": n})).await?;
            Ok(n)
        })
    }

    /// Sends again every event committed at or after `since`: the
    /// target's cursor moves back to just before the first of them.
    /// Returns the new cursor.
    pub async fn resend_since(
        &self,
        target: Uuid,
        since: DateTime<Utc>,
        actor: &str,
    ) -> Result<i64> {
        let t = self.target(target).await?;
        let tenant = self.tenant.id;
        let name = t.name;
        crate::events::sequence(&self.inner).await?;
        write_txn!(self.inner, [actor], [name], txn => {
            let first: Option<Option<i64>> = event_log::Entity::find()
                .select_only()
                .column_as(event_log::Column::Position.min(), "min")
                .filter(event_log::Column::TenantId.eq(tenant.to_string()))
                .filter(event_log::Column::CreatedAt.gte(since))
                .filter(event_log::Column::Position.is_not_null())
                .into_tuple()
                .one(txn)
                .await
                .map_err(dbx)?;
            let Some(first) = first.flatten() else {
                return Ok(t.cursor);
            };
            let cursor = std::cmp::min(first - 1, t.cursor);
            targets::Entity::update_many()
                .col_expr(targets::Column::Cursor, Expr::value(cursor))
                .col_expr(targets::Column::UpdatedAt, Expr::value(now()))
                .filter(targets::Column::Id.eq(target.to_string()))
                .exec(txn)
                .await
                .map_err(dbx)?;
            audit::write(txn, Some(tenant), actor, "target.resend", name,
                json!({"target": target, "since": since, "cursor": cursor})).await?;
            Ok(cursor)
        })
    }

    /// A target's attempts, newest first, before attempt id `before`
    /// (paging); only those of one event when `event` is given.
    pub async fn attempts(
        &self,
        target: Uuid,
        event: Option<i64>,
        before: Option<i64>,
        limit: u64,
    ) -> Result<Vec<Attempt>> {
        self.target(target).await?;
        let mut q = delivery_attempts::Entity::find()
            .filter(delivery_attempts::Column::TargetId.eq(target.to_string()))
            .filter(delivery_attempts::Column::TenantId.eq(self.tenant.id.to_string()));
        if let Some(event) = event {
            q = q.filter(delivery_attempts::Column::EventId.eq(event));
        }
        if let Some(before) = before {
            q = q.filter(delivery_attempts::Column::Id.lt(before));
        }
        q.order_by_desc(delivery_attempts::Column::Id)
            .limit(limit.clamp(1, MAX_LIST))
            .all(&self.inner.conn)
            .await
            .map_err(db)?
            .into_iter()
            .map(attempt_from_row)
            .collect()
    }

    /// Every attempt to deliver events of one user or group, oldest first
    /// (the newest [`MAX_LIST`]).
    pub async fn resource_attempts(&self, resource_id: &str) -> Result<Vec<Attempt>> {
        // Through the resource's events (see migration m0009: attempts
        // have no index by resource).
        let events = event_log::Entity::find()
            .select_only()
            .column(event_log::Column::Id)
            .filter(event_log::Column::TenantId.eq(self.tenant.id.to_string()))
            .filter(event_log::Column::ResourceId.eq(resource_id))
            .into_query();
        let mut rows = delivery_attempts::Entity::find()
            .filter(delivery_attempts::Column::TenantId.eq(self.tenant.id.to_string()))
            .filter(delivery_attempts::Column::EventId.in_subquery(events))
            .order_by_desc(delivery_attempts::Column::Id)
            .limit(MAX_LIST)
            .all(&self.inner.conn)
            .await
            .map_err(db)?;
        rows.reverse();
        rows.into_iter().map(attempt_from_row).collect()
    }
}

// ---------------------------------------------------------------------------
// Worker side: across tenants, fenced by leases.

/// The delivery worker's view of every target. Cross-tenant by nature:
/// only the worker uses it, never a request.
#[derive(Clone)]
pub struct DeliveryStore {
    pub(crate) inner: std::sync::Arc<Inner>,
}

/// Targets whose lease is free, expired, or already `owner`'s.
/// Gives `owner` the lease, until `until`, of the enabled targets among
/// `ids` that are `free` (see [`free_lease`]).
async fn take_leases(
    txn: &sea_orm::DatabaseTransaction,
    ids: impl IntoIterator<Item = String>,
    owner: &str,
    until: DateTime<Utc>,
    free: Condition,
) -> std::result::Result<(), crate::db::TxError> {
    targets::Entity::update_many()
        .col_expr(
            targets::Column::LeaseOwner,
            Expr::value(Some(owner.to_owned())),
        )
        .col_expr(targets::Column::LeaseUntil, Expr::value(Some(until)))
        .filter(targets::Column::Id.is_in(ids))
        .filter(targets::Column::Enabled.eq(true))
        .filter(free)
        .exec(txn)
        .await
        .map_err(dbx)?;
    Ok(())
}

fn free_lease(now: DateTime<Utc>, owner: &str) -> Condition {
    Condition::any()
        .add(targets::Column::LeaseOwner.is_null())
        .add(targets::Column::LeaseUntil.lt(now))
        .add(targets::Column::LeaseOwner.eq(owner.to_owned()))
}

/// Counts for the delivery metrics.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Counts {
    /// Dead letters waiting for a replay.
    pub dead_letters: i64,
    /// Disabled targets.
    pub disabled_targets: i64,
    /// Enabled targets whose last attempt failed.
    pub failing_targets: i64,
    /// How long the longest-failing enabled target has been failing
    /// (0 when none is).
    pub longest_failure_seconds: f64,
}

/// A leased target with what the worker needs to deliver to it.
#[derive(Debug, Clone)]
pub struct LeasedTarget {
    /// The target.
    pub target: Target,
    /// Its sealed secrets.
    pub secrets: SealedSecrets,
    /// Who holds its lease, and until when.
    pub lease: Option<(String, DateTime<Utc>)>,
}

impl LeasedTarget {
    fn from_row(r: targets::Model) -> Result<LeasedTarget> {
        let secrets = secrets_from_row(&r);
        let lease = r.lease_owner.clone().zip(r.lease_until);
        Ok(LeasedTarget {
            target: target_from_row(r)?,
            secrets,
            lease,
        })
    }

    /// Whether `owner` holds the lease past `at`.
    pub fn held_by(&self, owner: &str, at: DateTime<Utc>) -> bool {
        self.lease
            .as_ref()
            .is_some_and(|(o, until)| o == owner && *until > at)
    }
}

impl DeliveryStore {
    /// Takes (or renews) the lease of up to `limit` enabled targets that
    /// no other live worker holds, until `until`; returns the ones this
    /// owner holds now.
    pub async fn lease_targets(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: u64,
    ) -> Result<Vec<LeasedTarget>> {
        let free = free_lease(now, owner);
        let candidates: Vec<String> = targets::Entity::find()
            .select_only()
            .column(targets::Column::Id)
            .filter(targets::Column::Enabled.eq(true))
            .filter(free.clone())
            .order_by_asc(targets::Column::Id)
            .limit(limit)
            .into_tuple()
            .all(&self.inner.conn)
            .await
            .map_err(db)?;
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        write_txn!(self.inner, [owner], [candidates, free], txn => {
            take_leases(txn, candidates.iter().cloned(), owner, until, free.clone()).await
        })?;
        targets::Entity::find()
            .filter(targets::Column::LeaseOwner.eq(owner))
            .filter(targets::Column::Enabled.eq(true))
            .order_by_asc(targets::Column::Id)
            .all(&self.inner.conn)
            .await
            .map_err(db)?
            .into_iter()
            .map(LeasedTarget::from_row)
            .collect()
    }

    /// Gives up this owner's leases (graceful shutdown), so another worker
    /// can take the targets at once.
    pub async fn release_leases(&self, owner: &str) -> Result<()> {
        write_txn!(self.inner, [owner], [], txn => {
            targets::Entity::update_many()
                .col_expr(targets::Column::LeaseOwner, Expr::value(None::<String>))
                .col_expr(targets::Column::LeaseUntil, Expr::value(None::<DateTime<Utc>>))
                .filter(targets::Column::LeaseOwner.eq(owner))
                .exec(txn)
                .await
                .map_err(dbx)?;
            Ok(())
        })
    }

    /// Takes (or renews) the lease of one enabled target until `until` if
    /// it is free, expired or already `owner`'s; `None` when another live
    /// worker holds it, or it is gone or disabled.
    pub async fn lease_target(
        &self,
        id: Uuid,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Option<LeasedTarget>> {
        Ok(self
            .lease_listed(owner, &[id], now, until)
            .await?
            .into_iter()
            .next())
    }

    /// [`DeliveryStore::lease_target`] for each of `ids`, a few hundred
    /// per transaction (for a queue that decides itself which targets a
    /// worker delivers to); returns those `owner` holds now, by id.
    pub async fn lease_listed(
        &self,
        owner: &str,
        ids: &[Uuid],
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<LeasedTarget>> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(500) {
            let free = free_lease(now, owner);
            let chunk: Vec<String> = chunk.iter().map(Uuid::to_string).collect();
            write_txn!(self.inner, [owner, chunk], [free], txn => {
                take_leases(txn, chunk.iter().cloned(), owner, until, free.clone()).await
            })?;
            let rows = targets::Entity::find()
                .filter(targets::Column::Id.is_in(chunk))
                .filter(targets::Column::LeaseOwner.eq(owner))
                .filter(targets::Column::Enabled.eq(true))
                .order_by_asc(targets::Column::Id)
                .all(&self.inner.conn)
                .await
                .map_err(db)?;
            for row in rows {
                out.push(LeasedTarget::from_row(row)?);
            }
        }
        out.sort_by_key(|lt| lt.target.id);
        Ok(out)
    }

    /// Gives up `owner`'s lease of one target (its work moved to another
    /// worker), so the other can take it at once.
    pub async fn release_target(&self, id: Uuid, owner: &str) -> Result<()> {
        let id = id.to_string();
        write_txn!(self.inner, [owner, id], [], txn => {
            targets::Entity::update_many()
                .col_expr(targets::Column::LeaseOwner, Expr::value(None::<String>))
                .col_expr(targets::Column::LeaseUntil, Expr::value(None::<DateTime<Utc>>))
                .filter(targets::Column::Id.eq(id.clone()))
                .filter(targets::Column::LeaseOwner.eq(owner.clone()))
                .exec(txn)
                .await
                .map_err(dbx)?;
            Ok(())
        })
    }

    /// Every enabled target, as (target, tenant), by target id.
    pub async fn enabled_targets(&self) -> Result<Vec<(Uuid, Uuid)>> {
        self.enabled_targets_where(None).await
    }

    /// The enabled targets of these tenants, as (target, tenant), by
    /// target id.
    pub async fn enabled_targets_of(&self, tenants: &[Uuid]) -> Result<Vec<(Uuid, Uuid)>> {
        if tenants.is_empty() {
            return Ok(Vec::new());
        }
        self.enabled_targets_where(Some(tenants)).await
    }

    async fn enabled_targets_where(&self, tenants: Option<&[Uuid]>) -> Result<Vec<(Uuid, Uuid)>> {
        let chunks: Vec<Option<Vec<String>>> = match tenants {
            None => vec![None],
            Some(t) => t
                .chunks(500)
                .map(|c| Some(c.iter().map(Uuid::to_string).collect()))
                .collect(),
        };
        let mut out = Vec::new();
        for chunk in chunks {
            let mut q = targets::Entity::find()
                .select_only()
                .column(targets::Column::Id)
                .column(targets::Column::TenantId)
                .filter(targets::Column::Enabled.eq(true));
            if let Some(chunk) = chunk {
                q = q.filter(targets::Column::TenantId.is_in(chunk));
            }
            let rows: Vec<(String, String)> = q
                .order_by_asc(targets::Column::Id)
                .into_tuple()
                .all(&self.inner.conn)
                .await
                .map_err(db)?;
            for (id, tenant) in rows {
                out.push((uuid_of(&id, "target")?, uuid_of(&tenant, "tenant")?));
            }
        }
        out.sort_unstable();
        Ok(out)
    }

    /// The smallest cursor of any enabled target (`None` without one):
    /// every event up to it has been handled by every target.
    pub async fn min_cursor(&self) -> Result<Option<i64>> {
        let min: Option<Option<i64>> = targets::Entity::find()
            .select_only()
            .column_as(targets::Column::Cursor.min(), "min")
            .filter(targets::Column::Enabled.eq(true))
            .into_tuple()
            .one(&self.inner.conn)
            .await
            .map_err(db)?;
        Ok(min.flatten())
    }

    /// The target as stored now (it may have been changed or disabled).
    pub async fn target(&self, id: Uuid) -> Result<Option<LeasedTarget>> {
        let row = targets::Entity::find_by_id(id.to_string())
            .one(&self.inner.conn)
            .await
            .map_err(db)?;
        row.map(LeasedTarget::from_row).transpose()
    }

    /// Which of `resources` have a pending delivery for the target (their
    /// later events must queue behind it).
    pub async fn held(&self, target: Uuid, resources: &[String]) -> Result<HashSet<String>> {
        let mut out = HashSet::new();
        for chunk in resources.chunks(500) {
            let rows: Vec<String> = deliveries::Entity::find()
                .select_only()
                .column(deliveries::Column::ResourceId)
                .distinct()
                .filter(deliveries::Column::TargetId.eq(target.to_string()))
                .filter(deliveries::Column::Status.eq(DeliveryStatus::Pending.as_str()))
                .filter(deliveries::Column::ResourceId.is_in(chunk.iter().cloned()))
                .into_tuple()
                .all(&self.inner.conn)
                .await
                .map_err(db)?;
            out.extend(rows);
        }
        Ok(out)
    }

    /// Pending deliveries of the target that are due and first in line
    /// for their resource, oldest event first.
    pub async fn due(&self, target: Uuid, now: DateTime<Utc>, limit: u64) -> Result<Vec<Delivery>> {
        let rows = deliveries::Entity::find()
            .filter(deliveries::Column::TargetId.eq(target.to_string()))
            .filter(deliveries::Column::Status.eq(DeliveryStatus::Pending.as_str()))
            .filter(deliveries::Column::NextAttemptAt.lte(now))
            .order_by_asc(deliveries::Column::Position)
            .limit(limit.clamp(1, MAX_LIST))
            .all(&self.inner.conn)
            .await
            .map_err(db)?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let earlier: Option<i64> = deliveries::Entity::find()
                .select_only()
                .column(deliveries::Column::Id)
                .filter(deliveries::Column::TargetId.eq(target.to_string()))
                .filter(deliveries::Column::ResourceId.eq(row.resource_id.clone()))
                .filter(deliveries::Column::Status.eq(DeliveryStatus::Pending.as_str()))
                .filter(deliveries::Column::Position.lt(row.position))
                .limit(1)
                .into_tuple()
                .one(&self.inner.conn)
                .await
                .map_err(db)?;
            if earlier.is_none() {
                out.push(delivery_from_row(row)?);
            }
        }
        Ok(out)
    }

    /// The events with these log ids (missing ones were pruned).
    pub async fn events(&self, ids: &[i64]) -> Result<Vec<StoredEvent>> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(500) {
            let rows = event_log::Entity::find()
                .filter(event_log::Column::Id.is_in(chunk.iter().copied()))
                .filter(event_log::Column::Position.is_not_null())
                .all(&self.inner.conn)
                .await
                .map_err(db)?;
            for r in rows {
                out.push(crate::events::from_row(r)?);
            }
        }
        Ok(out)
    }

    /// Writes one round's results, if `owner` still holds the target's
    /// lease (`false`, and nothing written, when it does not).
    pub async fn commit(&self, target: Uuid, owner: &str, commit: Commit) -> Result<bool> {
        write_txn!(self.inner, [owner], [commit], txn => {
            let Some(row) = targets::Entity::find_by_id(target.to_string())
                .filter(targets::Column::LeaseOwner.eq(owner))
                .one(txn)
                .await
                .map_err(dbx)?
            else {
                return Ok(false);
            };
            // The cursor only moves forward (a replayed round cannot move
            // it back), and is always set, so the statement always has one.
            let cursor = std::cmp::max(commit.cursor.unwrap_or(row.cursor), row.cursor);
            let mut q = targets::Entity::update_many()
                .col_expr(targets::Column::Cursor, Expr::value(cursor));
            match &commit.health {
                Some(Health::Ok) => {
                    q = q
                        .col_expr(targets::Column::LastSuccessAt, Expr::value(Some(commit.now)))
                        .col_expr(targets::Column::FailingSince, Expr::value(None::<DateTime<Utc>>));
                }
                Some(Health::Failing(why)) => {
                    q = q
                        .col_expr(targets::Column::LastFailureAt, Expr::value(Some(commit.now)))
                        .col_expr(targets::Column::LastError, Expr::value(Some(why.clone())))
                        .col_expr(
                            targets::Column::FailingSince,
                            Expr::value(Some(row.failing_since.unwrap_or(commit.now))),
                        );
                }
                None => {}
            }
            if let Some(reason) = &commit.disable {
                q = q
                    .col_expr(targets::Column::Enabled, Expr::value(false))
                    .col_expr(targets::Column::DisabledReason, Expr::value(Some(reason.clone())))
                    .col_expr(targets::Column::DisabledAt, Expr::value(Some(commit.now)))
                    .col_expr(targets::Column::LeaseOwner, Expr::value(None::<String>))
                    .col_expr(targets::Column::LeaseUntil, Expr::value(None::<DateTime<Utc>>));
            }
            q.filter(targets::Column::Id.eq(target.to_string()))
                .filter(targets::Column::LeaseOwner.eq(owner))
                .exec(txn)
                .await
                .map_err(dbx)?;
            let tenant = row.tenant_id.clone();
            let attempts: Vec<delivery_attempts::ActiveModel> = commit
                .attempts
                .iter()
                .map(|a| delivery_attempts::ActiveModel {
                    id: NotSet,
                    target_id: Set(target.to_string()),
                    tenant_id: Set(tenant.clone()),
                    event_id: Set(a.event_id),
                    resource_id: Set(a.resource_id.clone()),
                    attempt: Set(i32_of(a.attempt)),
                    at: Set(a.at),
                    status_code: Set(a.status_code.map(i32::from)),
                    outcome: Set(a.outcome.clone()),
                    latency_ms: Set(i64::try_from(a.latency_ms).unwrap_or(i64::MAX)),
                    response: Set(a.response.clone()),
                    error: Set(a.error.clone()),
                })
                .collect();
            for chunk in attempts.chunks(500) {
                delivery_attempts::Entity::insert_many(chunk.to_vec())
                    .exec_without_returning(txn)
                    .await
                    .map_err(dbx)?;
            }
            let mut inserts = Vec::new();
            for change in &commit.changes {
                match change {
                    DeliveryChange::Insert(d) => inserts.push(deliveries::ActiveModel {
                        id: NotSet,
                        target_id: Set(target.to_string()),
                        tenant_id: Set(tenant.clone()),
                        event_id: Set(d.event_id),
                        position: Set(d.position),
                        resource_id: Set(d.resource_id.clone()),
                        status: Set(d.status.as_str().to_owned()),
                        attempts: Set(i32_of(d.attempts)),
                        next_attempt_at: Set(d.next_attempt_at),
                        last_status: Set(d.last_status.map(i32::from)),
                        last_error: Set(d.last_error.clone()),
                        created_at: Set(commit.now),
                        updated_at: Set(commit.now),
                    }),
                    DeliveryChange::Delete(id) => {
                        deliveries::Entity::delete_many()
                            .filter(deliveries::Column::Id.eq(*id))
                            .filter(deliveries::Column::TargetId.eq(target.to_string()))
                            .exec(txn)
                            .await
                            .map_err(dbx)?;
                    }
                    DeliveryChange::Update { id, status, attempts, next_attempt_at, last_status, last_error } => {
                        deliveries::Entity::update_many()
                            .col_expr(deliveries::Column::Status, Expr::value(status.as_str()))
                            .col_expr(deliveries::Column::Attempts, Expr::value(i32_of(*attempts)))
                            .col_expr(deliveries::Column::NextAttemptAt, Expr::value(*next_attempt_at))
                            .col_expr(deliveries::Column::LastStatus, Expr::value(last_status.map(i32::from)))
                            .col_expr(deliveries::Column::LastError, Expr::value(last_error.clone()))
                            .col_expr(deliveries::Column::UpdatedAt, Expr::value(commit.now))
                            .filter(deliveries::Column::Id.eq(*id))
                            .filter(deliveries::Column::TargetId.eq(target.to_string()))
                            .exec(txn)
                            .await
                            .map_err(dbx)?;
                    }
                }
            }
            for chunk in inserts.chunks(500) {
                // A replayed round (after a crash) may meet its own rows.
                deliveries::Entity::insert_many(chunk.to_vec())
                    .on_conflict(
                        sea_orm::sea_query::OnConflict::columns([
                            deliveries::Column::TargetId,
                            deliveries::Column::EventId,
                        ])
                        .update_columns([deliveries::Column::UpdatedAt])
                        .to_owned(),
                    )
                    .exec_without_returning(txn)
                    .await
                    .map_err(dbx)?;
            }
            if let Some(reason) = &commit.disable {
                let tenant_id = uuid_of(&tenant, "tenant")?;
                audit::write(txn, Some(tenant_id), WORKER_ACTOR, "target.disable", &row.name,
                    json!({"id": target, "reason": reason})).await?;
            }
            Ok(true)
        })
    }

    /// The remote id of a resource pushed to an outbound SCIM target.
    pub async fn remote_id(
        &self,
        target: Uuid,
        resource_type: &str,
        local_id: &str,
    ) -> Result<Option<String>> {
        let row = remote_ids::Entity::find_by_id((
            target.to_string(),
            resource_type.to_owned(),
            local_id.to_owned(),
        ))
        .one(&self.inner.conn)
        .await
        .map_err(db)?;
        Ok(row.map(|r| r.remote_id))
    }

    /// Every remote id of one resource type pushed to a target, as
    /// (local id, remote id), by local id.
    pub async fn remote_ids(
        &self,
        target: Uuid,
        resource_type: &str,
    ) -> Result<Vec<(String, String)>> {
        Ok(remote_ids::Entity::find()
            .filter(remote_ids::Column::TargetId.eq(target.to_string()))
            .filter(remote_ids::Column::ResourceType.eq(resource_type))
            .order_by_asc(remote_ids::Column::LocalId)
            .all(&self.inner.conn)
            .await
            .map_err(db)?
            .into_iter()
            .map(|r| (r.local_id, r.remote_id))
            .collect())
    }

    /// Records (or, with `None`, forgets) the remote id of a resource.
    pub async fn set_remote_id(
        &self,
        target: Uuid,
        resource_type: &str,
        local_id: &str,
        remote_id: Option<&str>,
    ) -> Result<()> {
        let key = (
            target.to_string(),
            resource_type.to_owned(),
            local_id.to_owned(),
        );
        let remote = remote_id.map(str::to_owned);
        write_txn!(self.inner, [], [key, remote], txn => {
            let Some(remote) = remote else {
                remote_ids::Entity::delete_many()
                    .filter(remote_ids::Column::TargetId.eq(key.0.clone()))
                    .filter(remote_ids::Column::ResourceType.eq(key.1.clone()))
                    .filter(remote_ids::Column::LocalId.eq(key.2.clone()))
                    .exec(txn)
                    .await
                    .map_err(dbx)?;
                return Ok(());
            };
            // An upsert: two requests of one round may link the same
            // resource at once (a member pushed for its group while its
            // own event is sent), and must not fail on each other.
            remote_ids::Entity::insert(remote_ids::ActiveModel {
                target_id: Set(key.0.clone()),
                resource_type: Set(key.1.clone()),
                local_id: Set(key.2.clone()),
                remote_id: Set(remote.clone()),
            })
            .on_conflict(
                sea_orm::sea_query::OnConflict::columns([
                    remote_ids::Column::TargetId,
                    remote_ids::Column::ResourceType,
                    remote_ids::Column::LocalId,
                ])
                .update_column(remote_ids::Column::RemoteId)
                .to_owned(),
            )
            .exec_without_returning(txn)
            .await
            .map_err(dbx)?;
            Ok(())
        })
    }

    /// Outbox depth for the metrics: events no enabled target has handled
    /// yet (from the smallest cursor), and the age of the oldest of them.
    pub async fn backlog(&self, now: DateTime<Utc>) -> Result<(i64, Option<f64>)> {
        let min: Option<Option<i64>> = targets::Entity::find()
            .select_only()
            .column_as(targets::Column::Cursor.min(), "min")
            .filter(targets::Column::Enabled.eq(true))
            .into_tuple()
            .one(&self.inner.conn)
            .await
            .map_err(db)?;
        let Some(min) = min.flatten() else {
            return Ok((0, None));
        };
        let head = crate::events::head(&self.inner).await?;
        let oldest = event_log::Entity::find()
            .filter(event_log::Column::Position.gt(min))
            .order_by_asc(event_log::Column::Position)
            .one(&self.inner.conn)
            .await
            .map_err(db)?;
        let age = oldest.map(|e| (now - e.created_at).num_milliseconds() as f64 / 1000.0);
        Ok((std::cmp::max(head - min, 0), age))
    }

    /// The largest position the event log may be pruned up to: what every
    /// enabled target has handled, below every event a delivery still
    /// waits with (a dead letter can be replayed).
    pub async fn prune_horizon(&self) -> Result<i64> {
        let head = crate::events::head(&self.inner).await?;
        let cursor: Option<Option<i64>> = targets::Entity::find()
            .select_only()
            .column_as(targets::Column::Cursor.min(), "min")
            .filter(targets::Column::Enabled.eq(true))
            .into_tuple()
            .one(&self.inner.conn)
            .await
            .map_err(db)?;
        let waiting: Option<Option<i64>> = deliveries::Entity::find()
            .select_only()
            .column_as(deliveries::Column::Position.min(), "min")
            .into_tuple()
            .one(&self.inner.conn)
            .await
            .map_err(db)?;
        let mut horizon = head;
        if let Some(c) = cursor.flatten() {
            horizon = std::cmp::min(horizon, c);
        }
        if let Some(w) = waiting.flatten() {
            horizon = std::cmp::min(horizon, w - 1);
        }
        Ok(horizon)
    }

    /// Dead letters and disabled targets, across tenants (for metrics).
    pub async fn counts(&self) -> Result<Counts> {
        use sea_orm::PaginatorTrait;
        let dead = deliveries::Entity::find()
            .filter(deliveries::Column::Status.eq(DeliveryStatus::Dead.as_str()))
            .count(&self.inner.conn)
            .await
            .map_err(db)?;
        let disabled = targets::Entity::find()
            .filter(targets::Column::Enabled.eq(false))
            .count(&self.inner.conn)
            .await
            .map_err(db)?;
        // Enabled targets whose last attempt failed: `failing_since` is
        // set by a failure and cleared by the next success.
        let failing: Vec<Option<DateTime<Utc>>> = targets::Entity::find()
            .select_only()
            .column(targets::Column::FailingSince)
            .filter(targets::Column::Enabled.eq(true))
            .filter(targets::Column::FailingSince.is_not_null())
            .into_tuple()
            .all(&self.inner.conn)
            .await
            .map_err(db)?;
        let now = crate::db::now();
        let longest = failing
            .iter()
            .flatten()
            .map(|since| Ord::max((now - *since).num_milliseconds(), 0) as f64 / 1000.0)
            .fold(0.0, f64::max);
        Ok(Counts {
            dead_letters: i64::try_from(dead).unwrap_or(i64::MAX),
            disabled_targets: i64::try_from(disabled).unwrap_or(i64::MAX),
            failing_targets: i64::try_from(failing.len()).unwrap_or(i64::MAX),
            longest_failure_seconds: longest,
        })
    }

    /// Deletes attempts made before `before`; returns how many.
    pub async fn prune_attempts(&self, before: DateTime<Utc>) -> Result<u64> {
        write_txn!(self.inner, [], [], txn => {
            Ok(delivery_attempts::Entity::delete_many()
                .filter(delivery_attempts::Column::At.lt(before))
                .exec(txn)
                .await
                .map_err(dbx)?
                .rows_affected)
        })
    }

    /// Removes the targets of deleted tenants that have nothing left to
    /// send (cursor at the log's head, no pending delivery).
    pub async fn drop_orphans(&self) -> Result<u64> {
        let head = crate::events::head(&self.inner).await?;
        write_txn!(self.inner, [], [], txn => {
            let orphans: Vec<String> = targets::Entity::find()
                .select_only()
                .column(targets::Column::Id)
                .filter(targets::Column::Cursor.gte(head))
                .filter(
                    Expr::col((targets::Entity, targets::Column::TenantId)).not_in_subquery(
                        sea_orm::sea_query::Query::select()
                            .column(crate::entity::tenants::Column::Id)
                            .from(crate::entity::tenants::Entity)
                            .to_owned(),
                    ),
                )
                .into_tuple()
                .all(txn)
                .await
                .map_err(dbx)?;
            let mut n = 0;
            for id in orphans {
                let pending = deliveries::Entity::find()
                    .filter(deliveries::Column::TargetId.eq(id.clone()))
                    .filter(deliveries::Column::Status.eq(DeliveryStatus::Pending.as_str()))
                    .one(txn)
                    .await
                    .map_err(dbx)?;
                if pending.is_some() {
                    continue;
                }
                deliveries::Entity::delete_many()
                    .filter(deliveries::Column::TargetId.eq(id.clone()))
                    .exec(txn)
                    .await
                    .map_err(dbx)?;
                remote_ids::Entity::delete_many()
                    .filter(remote_ids::Column::TargetId.eq(id.clone()))
                    .exec(txn)
                    .await
                    .map_err(dbx)?;
                n += targets::Entity::delete_many()
                    .filter(targets::Column::Id.eq(id))
                    .exec(txn)
                    .await
                    .map_err(dbx)?
                    .rows_affected;
            }
            Ok(n)
        })
    }
}
