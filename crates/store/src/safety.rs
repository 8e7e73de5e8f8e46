//! Deletion safety (docs/deletion-safety.md): what stands between an IdP's
//! mistake and a tenant's application.
//!
//! - **Screening.** Every deletion or deactivation of a user (from SCIM,
//!   and in each child of a super tenant) passes [`screen`] inside its
//!   transaction. A protected user's change is held; so is every change
//!   once the tenant's threshold has tripped: more deletions and
//!   deactivations let through in the current window than the policy's
//!   `maxDeletions`, or than `maxPercent` of the directory. The tenant's
//!   row in `deletion_safety` is locked while it counts, so concurrent
//!   deletions count once each.
//! - **Holding.** A held change still happens in the directory (the IdP
//!   gets its normal answer); its events about the user go to
//!   `held_changes` instead of the event log, so no application hears of
//!   it. A tenant admin releases them (written to the event log then, in
//!   the order they were held) or discards them (the applications keep
//!   the user). Either clears the trip and starts a new window.
//! - **Soft delete.** With a grace period (the default, 30 days), a
//!   deleted user's last document moves to `deleted_users`: gone from
//!   SCIM (404, its userName free), restorable with the same id (groups it
//!   was in that still exist included) until the grace period ends, then
//!   purged by [`Store::purge_deleted`] with a `user.purged` event.
//! - **Erasure** ([`TenantStore::erase_user`]) removes one user's data from
//!   every table that holds it, in one transaction, and audits that it
//!   happened without saying what it removed.

use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::{Expr, LikeExpr, OnConflict, Query};
use sea_orm::{
    ActiveValue::NotSet, ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait,
    DatabaseTransaction, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::db::{TxError, db, dbx, now};
use crate::entity::{
    admin_audit, deleted_users, deletion_safety, deliveries, delivery_attempts, event_log,
    held_changes, jobs, protected_users, provisioning_log, users,
};
use crate::events::{self, Event, EventType, PreparedEvent};
use crate::{Result, Store, StoreError, TenantStore, audit};

/// A tenant's deletion-safety policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct DeletionPolicy {
    /// Deletions and deactivations let through per window before the rest
    /// are held (`None`: no count limit).
    pub max_deletions: Option<u32>,
    /// The same as a share of the directory, in percent (`None`: no
    /// share limit). With both, the lower one applies.
    pub max_percent: Option<u32>,
    /// The window's length, in minutes.
    pub window_minutes: u32,
    /// How long a deleted user stays restorable, in days (0: deletions
    /// are final at once).
    pub grace_days: u32,
}

impl Default for DeletionPolicy {
    fn default() -> Self {
        DeletionPolicy {
            max_deletions: Some(500),
            max_percent: None,
            window_minutes: 60,
            grace_days: 30,
        }
    }
}

impl DeletionPolicy {
    /// The largest `max_deletions`.
    pub const MAX_DELETIONS: u32 = 1_000_000;
    /// The longest window: a week.
    pub const MAX_WINDOW_MINUTES: u32 = 7 * 24 * 60;
    /// The longest grace period: ten years.
    pub const MAX_GRACE_DAYS: u32 = 3650;

    /// Checks the bounds; the message names the field.
    pub fn check(&self) -> Result<()> {
        let bad = |m: String| Err(StoreError::InvalidValue(m));
        if let Some(n) = self.max_deletions
            && !(1..=Self::MAX_DELETIONS).contains(&n)
        {
            return bad(format!(
                "maxDeletions must be between 1 and {} (null for no count limit)",
                Self::MAX_DELETIONS
            ));
        }
        if let Some(p) = self.max_percent
            && !(1..=100).contains(&p)
        {
            return bad("maxPercent must be between 1 and 100".into());
        }
        if !(1..=Self::MAX_WINDOW_MINUTES).contains(&self.window_minutes) {
            return bad(format!(
                "windowMinutes must be between 1 and {}",
                Self::MAX_WINDOW_MINUTES
            ));
        }
        if self.grace_days > Self::MAX_GRACE_DAYS {
            return bad(format!(
                "graceDays must be at most {}",
                Self::MAX_GRACE_DAYS
            ));
        }
        Ok(())
    }

    /// How many changes the window lets through in a directory of
    /// `size` users (`None`: no limit).
    fn limit(&self, size: u64) -> Option<u64> {
        let share = self
            .max_percent
            .map(|p| (size * u64::from(p)).div_ceil(100));
        match (self.max_deletions.map(u64::from), share) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// Why a change is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldReason {
    /// The tenant's threshold tripped.
    Threshold,
    /// The user is protected.
    Protected,
}

impl HoldReason {
    /// The stored and wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            HoldReason::Threshold => "threshold",
            HoldReason::Protected => "protected",
        }
    }
}

/// A tenant's deletion safety as it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SafetyState {
    /// The policy (the defaults until one is set).
    pub policy: DeletionPolicy,
    /// Grows with every change of the policy (0: never set).
    pub version: u64,
    /// Whether the threshold has tripped (changes are held until a tenant
    /// admin releases or discards them).
    pub tripped: bool,
    /// When the current window started.
    pub window_started_at: Option<DateTime<Utc>>,
    /// Changes let through in it.
    pub window_count: u64,
    /// Changes held now.
    pub held: u64,
}

/// A held change.
#[derive(Debug, Clone, PartialEq)]
pub struct HeldChange {
    /// Its id (release or discard one by id).
    pub id: i64,
    /// The user.
    pub user_id: String,
    /// The user's userName, from the held event.
    pub user_name: Option<String>,
    /// Why it is held.
    pub reason: HoldReason,
    /// The held event (`user.deleted`, `user.deactivated`, ...).
    pub event_type: EventType,
    /// When it was held.
    pub held_at: DateTime<Utc>,
}

/// A protected user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtectedUser {
    /// The user.
    pub user_id: String,
    /// Why (required).
    pub reason: String,
    /// Who protected it.
    pub actor: String,
    /// When.
    pub since: DateTime<Utc>,
}

/// A soft-deleted user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeletedUser {
    /// Its id (the same after a restore).
    pub id: String,
    /// Its userName.
    pub user_name: String,
    /// When it was deleted.
    pub deleted_at: DateTime<Utc>,
    /// When it is purged, unless restored first.
    pub purge_after: DateTime<Utc>,
}

/// What a screened deletion or deactivation does.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Screened {
    /// Held, and why; `None`: delivered as usual.
    pub hold: Option<HoldReason>,
    /// The tenant's grace period for deleted users, in days.
    pub grace_days: u32,
}

fn policy_of(row: Option<&deletion_safety::Model>) -> Result<DeletionPolicy> {
    match row.and_then(|r| r.policy.as_deref()) {
        Some(text) => serde_json::from_str(text)
            .map_err(|e| StoreError::Internal(format!("a corrupt deletion policy: {e}"))),
        None => Ok(DeletionPolicy::default()),
    }
}

/// The tenant's `deletion_safety` row, locked; made first if missing.
async fn safety_row(
    txn: &DatabaseTransaction,
    tenant: &str,
) -> Result<deletion_safety::Model, TxError> {
    let locked = || {
        deletion_safety::Entity::find_by_id(tenant.to_owned())
            .lock_exclusive()
            .all(txn)
    };
    // By primary key, so at most one row (`all`, not `one`: a bound
    // `LIMIT` makes SQLite prepare the statement again on every call).
    if let Some(row) = locked().await.map_err(dbx)?.into_iter().next() {
        return Ok(row);
    }
    deletion_safety::Entity::insert(deletion_safety::ActiveModel {
        tenant_id: Set(tenant.to_owned()),
        policy: Set(None),
        version: Set(0),
        window_started_at: Set(None),
        window_count: Set(0),
        tripped: Set(false),
        updated_at: Set(now()),
    })
    .on_conflict(
        OnConflict::column(deletion_safety::Column::TenantId)
            .do_nothing()
            .to_owned(),
    )
    .exec_without_returning(txn)
    .await
    .map_err(dbx)?;
    locked()
        .await
        .map_err(dbx)?
        .into_iter()
        .next()
        .ok_or_else(|| StoreError::Internal("the deletion-safety row vanished".into()).into())
}

/// What [`screen`] reads before it locks anything.
struct Peek {
    /// The user is protected.
    protected: bool,
    /// The tenant's `deletion_safety` row as last committed, if any.
    row: Option<deletion_safety::Model>,
}

/// The tenant's `deletion_safety` row and whether `user_id` is protected,
/// without a lock: one statement once the tenant has the row (its first
/// counted deletion makes it), two before.
async fn peek(txn: &DatabaseTransaction, tenant: &str, user_id: &str) -> Result<Peek, TxError> {
    let protected = || {
        // The user's id when protected: text on both engines, where an
        // `EXISTS` would be a boolean on one and an integer on the other.
        let select = Query::select()
            .column(protected_users::Column::UserId)
            .from(protected_users::Entity)
            .and_where(protected_users::Column::TenantId.eq(tenant))
            .and_where(protected_users::Column::UserId.eq(user_id))
            .to_owned();
        Expr::SubQuery(None, Box::new(select.into()))
    };
    let found: Vec<(deletion_safety::Model, bool)> = deletion_safety::Entity::find()
        .filter(deletion_safety::Column::TenantId.eq(tenant))
        .column_as(protected(), "protected")
        .into_model::<SafetyRowPeek>()
        .all(txn)
        .await
        .map_err(dbx)?
        .into_iter()
        .map(|p| (p.row, p.protected.is_some()))
        .collect();
    if let Some((row, protected)) = found.into_iter().next() {
        return Ok(Peek {
            protected,
            row: Some(row),
        });
    }
    let protected = txn
        .query_one(&Query::select().expr_as(protected(), "protected").to_owned())
        .await
        .map_err(dbx)?
        .map(|r| r.try_get::<Option<String>>("", "protected"))
        .transpose()
        .map_err(dbx)?
        .flatten()
        .is_some();
    Ok(Peek {
        protected,
        row: None,
    })
}

/// A `deletion_safety` row with the protection answer beside it.
#[derive(sea_orm::FromQueryResult)]
struct SafetyRowPeek {
    #[sea_orm(nested)]
    row: deletion_safety::Model,
    protected: Option<String>,
}

/// Decides, inside the transaction that deletes or deactivates `user_id`,
/// whether the change is held (module documentation); counts it in the
/// window when it is not.
pub(crate) async fn screen(
    store: &TenantStore,
    txn: &DatabaseTransaction,
    user_id: &str,
) -> Result<Screened, TxError> {
    let tenant = store.tenant.id.to_string();
    // Protection and the trip are read before the tenant's row is locked,
    // in one statement: every counted deactivation of the tenant waits for
    // that lock, so the less a transaction does while holding it, and the
    // fewer take it at all, the more of them pass per second.
    let peek = peek(txn, &tenant, user_id).await?;
    if peek.protected {
        // No lock is needed to read the grace period of the policy as it
        // stands, and a protected user is not counted in the window.
        return Ok(Screened {
            hold: Some(HoldReason::Protected),
            grace_days: policy_of(peek.row.as_ref())?.grace_days,
        });
    }
    if peek.row.as_ref().is_some_and(|r| r.tripped) {
        // A tripped row changes only when an admin releases or discards
        // the held changes. A shared lock waits for such a change in
        // flight, yet lets every held deactivation pass side by side
        // instead of queueing for the exclusive lock.
        let shared = deletion_safety::Entity::find_by_id(tenant.clone())
            .lock_shared()
            .all(txn)
            .await
            .map_err(dbx)?;
        return match shared.first() {
            Some(row) if row.tripped => Ok(Screened {
                hold: Some(HoldReason::Threshold),
                grace_days: policy_of(Some(row))?.grace_days,
            }),
            // Cleared meanwhile: counting now would upgrade the shared lock,
            // which two transactions could deadlock on. The next attempt
            // peeks a clear row and takes the exclusive lock from the start.
            _ => Err(TxError::Retry),
        };
    }
    let row = safety_row(txn, &tenant).await?;
    let policy = policy_of(Some(&row))?;
    let grace_days = policy.grace_days;
    if row.tripped {
        return Ok(Screened {
            hold: Some(HoldReason::Threshold),
            grace_days,
        });
    }
    let at = now();
    let window = Duration::minutes(i64::from(policy.window_minutes));
    let (started, count) = match row.window_started_at {
        Some(s) if at - s < window => (s, u64::try_from(row.window_count).unwrap_or(0)),
        _ => (at, 0),
    };
    let size = if policy.max_percent.is_some() {
        // The directory as it was when the window opened: who is left,
        // and who left through it.
        users::Entity::find()
            .filter(users::Column::TenantId.eq(tenant.clone()))
            .count(txn)
            .await
            .map_err(dbx)?
            + count
    } else {
        0
    };
    let tripped = policy.limit(size).is_some_and(|limit| count >= limit);
    deletion_safety::Entity::update_many()
        .col_expr(
            deletion_safety::Column::WindowStartedAt,
            Expr::value(Some(started)),
        )
        .col_expr(
            deletion_safety::Column::WindowCount,
            Expr::value(i64::try_from(count + u64::from(!tripped)).unwrap_or(i64::MAX)),
        )
        .col_expr(deletion_safety::Column::Tripped, Expr::value(tripped))
        .col_expr(deletion_safety::Column::UpdatedAt, Expr::value(at))
        .filter(deletion_safety::Column::TenantId.eq(tenant.clone()))
        .exec(txn)
        .await
        .map_err(dbx)?;
    if tripped {
        audit::write(
            txn,
            Some(store.tenant.id),
            "system:deletion-safety",
            "deletion.threshold_tripped",
            store.tenant.slug(),
            json!({
                "let_through": count,
                "window_started_at": started,
                "policy": policy,
            }),
        )
        .await?;
        tracing::warn!(tenant = %store.tenant.slug(), let_through = count,
            "deletion threshold tripped: further deletions and deactivations are held");
    }
    Ok(Screened {
        hold: tripped.then_some(HoldReason::Threshold),
        grace_days,
    })
}

/// Stores `events` (about user `user_id`) as held, instead of writing
/// them to the event log.
pub(crate) async fn hold(
    store: &TenantStore,
    txn: &DatabaseTransaction,
    user_id: &str,
    reason: HoldReason,
    events: Vec<PreparedEvent>,
) -> Result<(), TxError> {
    if events.is_empty() {
        return Ok(());
    }
    let at = now();
    let rows: Vec<held_changes::ActiveModel> = events
        .iter()
        .map(|e| held_changes::ActiveModel {
            id: NotSet,
            tenant_id: Set(store.tenant.id.to_string()),
            user_id: Set(user_id.to_owned()),
            reason: Set(reason.as_str().to_owned()),
            event_type: Set(e.event_type().as_str().to_owned()),
            payload: Set(e.payload().to_owned()),
            created_at: Set(at),
        })
        .collect();
    held_changes::Entity::insert_many(rows)
        .exec_without_returning(txn)
        .await
        .map_err(dbx)?;
    Ok(())
}

/// Keeps a soft-deleted user restorable: its last document and groups.
pub(crate) async fn keep_deleted(
    store: &TenantStore,
    txn: &DatabaseTransaction,
    row: &users::Model,
    groups: &[String],
    grace_days: u32,
) -> Result<DateTime<Utc>, TxError> {
    let at = now();
    let purge_after = at + Duration::days(i64::from(grace_days));
    let tenant = store.tenant.id.to_string();
    // A user deleted again after a restore replaces its old record.
    deleted_users::Entity::delete_many()
        .filter(deleted_users::Column::TenantId.eq(tenant.clone()))
        .filter(deleted_users::Column::Id.eq(row.id.clone()))
        .exec(txn)
        .await
        .map_err(dbx)?;
    deleted_users::Entity::insert(deleted_users::ActiveModel {
        tenant_id: Set(tenant),
        id: Set(row.id.clone()),
        user_name: Set(row.user_name.clone()),
        document: Set(row.document.clone()),
        version: Set(row.version),
        groups: Set(json!(groups).to_string()),
        deleted_at: Set(at),
        purge_after: Set(purge_after),
    })
    .exec_without_returning(txn)
    .await
    .map_err(dbx)?;
    Ok(purge_after)
}

fn reason_of(text: &str) -> HoldReason {
    match text {
        "protected" => HoldReason::Protected,
        _ => HoldReason::Threshold,
    }
}

/// Which held changes a release or discard takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeldSelection {
    /// Every held change of the tenant.
    All,
    /// These (by id).
    Ids(Vec<i64>),
    /// Every held change of these users.
    Users(Vec<String>),
}

impl TenantStore {
    /// The tenant's deletion safety: policy, window, trip, held count.
    pub async fn deletion_safety(&self) -> Result<SafetyState> {
        let tenant = self.tenant.id.to_string();
        let conn = &self.inner.conn;
        let row = deletion_safety::Entity::find_by_id(tenant.clone())
            .one(conn)
            .await
            .map_err(db)?;
        let held = held_changes::Entity::find()
            .filter(held_changes::Column::TenantId.eq(tenant))
            .count(conn)
            .await
            .map_err(db)?;
        Ok(SafetyState {
            policy: policy_of(row.as_ref())?,
            version: row
                .as_ref()
                .map_or(0, |r| u64::try_from(r.version).unwrap_or(0)),
            tripped: row.as_ref().is_some_and(|r| r.tripped),
            window_started_at: row.as_ref().and_then(|r| r.window_started_at),
            window_count: row
                .as_ref()
                .map_or(0, |r| u64::try_from(r.window_count).unwrap_or(0)),
            held,
        })
    }

    /// Replaces the tenant's deletion policy when `if_match` is its
    /// version (or absent); audited.
    pub async fn set_deletion_policy(
        &self,
        policy: DeletionPolicy,
        if_match: Option<u64>,
        actor: &str,
    ) -> Result<SafetyState> {
        policy.check()?;
        let text = serde_json::to_string(&policy)
            .map_err(|e| StoreError::Internal(format!("a policy does not serialize: {e}")))?;
        let tenant = self.tenant.id;
        let slug = self.tenant.slug().to_owned();
        write_txn!(self.inner, [actor], [text, slug], txn => {
            let row = safety_row(txn, &tenant.to_string()).await?;
            if let Some(expected) = if_match
                && i64::try_from(expected).ok() != Some(row.version)
            {
                return Err(StoreError::PreconditionFailed {
                    current: u64::try_from(row.version).unwrap_or(0),
                }
                .into());
            }
            deletion_safety::Entity::update_many()
                .col_expr(deletion_safety::Column::Policy, Expr::value(Some(text.clone())))
                .col_expr(deletion_safety::Column::Version, Expr::value(row.version + 1))
                .col_expr(deletion_safety::Column::UpdatedAt, Expr::value(now()))
                .filter(deletion_safety::Column::TenantId.eq(tenant.to_string()))
                .exec(txn)
                .await
                .map_err(dbx)?;
            audit::write(txn, Some(tenant), actor, "deletion.policy", slug,
                json!({"policy": policy, "version": row.version + 1})).await
        })?;
        self.deletion_safety().await
    }

    /// The held changes, oldest first (at most `limit`, ≤ 1000).
    pub async fn held_changes(&self, limit: u64) -> Result<Vec<HeldChange>> {
        held_changes::Entity::find()
            .filter(held_changes::Column::TenantId.eq(self.tenant.id.to_string()))
            .order_by_asc(held_changes::Column::Id)
            .limit(limit.clamp(1, 1000))
            .all(&self.inner.conn)
            .await
            .map_err(db)?
            .into_iter()
            .map(|r| {
                let payload: Value = serde_json::from_str(&r.payload).unwrap_or(Value::Null);
                Ok(HeldChange {
                    id: r.id,
                    user_name: payload["document"]["userName"].as_str().map(str::to_owned),
                    user_id: r.user_id,
                    reason: reason_of(&r.reason),
                    event_type: r
                        .event_type
                        .parse()
                        .map_err(|e| StoreError::Internal(format!("a held change: {e}")))?,
                    held_at: r.created_at,
                })
            })
            .collect()
    }

    /// Releases held changes: their events go to the event log now, in
    /// the order they were held, and reach the applications. Clears the
    /// trip and starts a new window when no threshold hold is left.
    /// Returns how many were released.
    pub async fn release_held(&self, which: HeldSelection, actor: &str) -> Result<u64> {
        self.settle_held(which, true, actor).await
    }

    /// Discards held changes: the applications never hear of them (they
    /// keep the users as they were). Returns how many.
    pub async fn discard_held(&self, which: HeldSelection, actor: &str) -> Result<u64> {
        self.settle_held(which, false, actor).await
    }

    async fn settle_held(&self, which: HeldSelection, release: bool, actor: &str) -> Result<u64> {
        let store = self;
        let tenant = self.tenant.id;
        write_txn!(self.inner, [store, actor], [which], txn => {
            let key = tenant.to_string();
            safety_row(txn, &key).await?;
            let mut q = held_changes::Entity::find()
                .filter(held_changes::Column::TenantId.eq(key.clone()))
                .order_by_asc(held_changes::Column::Id);
            q = match which {
                HeldSelection::All => q,
                HeldSelection::Ids(ids) => q.filter(held_changes::Column::Id.is_in(ids.clone())),
                HeldSelection::Users(ids) => {
                    q.filter(held_changes::Column::UserId.is_in(ids.iter().cloned()))
                }
            };
            let rows = q.all(txn).await.map_err(dbx)?;
            if let HeldSelection::Ids(ids) = which
                && rows.len() < ids.len()
            {
                // Most often another operator settled them first.
                return Err(StoreError::Conflict(
                    "some of these ids name no held change (released or discarded already?)"
                        .into(),
                )
                .into());
            }
            let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
            if release {
                let mut out = Vec::with_capacity(rows.len());
                for r in &rows {
                    out.push(Event {
                        event_type: r.event_type.parse().map_err(|e| {
                            StoreError::Internal(format!("a held change: {e}"))
                        })?,
                        resource_id: r.user_id.clone(),
                        payload: serde_json::from_str(&r.payload).map_err(|e| {
                            StoreError::Internal(format!("a held change: {e}"))
                        })?,
                    });
                }
                events::write(store, txn, out).await?;
            }
            for chunk in ids.chunks(500) {
                held_changes::Entity::delete_many()
                    .filter(held_changes::Column::Id.is_in(chunk.to_vec()))
                    .exec(txn)
                    .await
                    .map_err(dbx)?;
            }
            let left = held_changes::Entity::find()
                .filter(held_changes::Column::TenantId.eq(key.clone()))
                .filter(held_changes::Column::Reason.eq(HoldReason::Threshold.as_str()))
                .count(txn)
                .await
                .map_err(dbx)?;
            if left == 0 {
                deletion_safety::Entity::update_many()
                    .col_expr(deletion_safety::Column::Tripped, Expr::value(false))
                    .col_expr(deletion_safety::Column::WindowStartedAt, Expr::value(Some(now())))
                    .col_expr(deletion_safety::Column::WindowCount, Expr::value(0))
                    .col_expr(deletion_safety::Column::UpdatedAt, Expr::value(now()))
                    .filter(deletion_safety::Column::TenantId.eq(key.clone()))
                    .exec(txn)
                    .await
                    .map_err(dbx)?;
            }
            let action = if release { "deletion.release" } else { "deletion.discard" };
            audit::write(txn, Some(tenant), actor, action, store.tenant.slug(),
                json!({"count": ids.len(), "ids": ids})).await?;
            Ok(ids.len() as u64)
        })
    }

    /// Protects a user: the IdP's deletion or deactivation of it is held
    /// for confirmation. `reason` is required. Audited.
    pub async fn protect_user(
        &self,
        user_id: &str,
        reason: &str,
        actor: &str,
    ) -> Result<ProtectedUser> {
        let reason = reason.trim().to_owned();
        if reason.is_empty() {
            return Err(StoreError::InvalidValue(
                "a protection needs a reason".into(),
            ));
        }
        self.get_user(user_id).await?;
        let tenant = self.tenant.id;
        let id = user_id.to_owned();
        let since = now();
        write_txn!(self.inner, [actor], [reason, id], txn => {
            protected_users::Entity::insert(protected_users::ActiveModel {
                tenant_id: Set(tenant.to_string()),
                user_id: Set(id.clone()),
                reason: Set(reason.clone()),
                actor: Set(actor.clone()),
                created_at: Set(since),
            })
            .on_conflict(
                OnConflict::columns([protected_users::Column::TenantId, protected_users::Column::UserId])
                    .update_columns([protected_users::Column::Reason, protected_users::Column::Actor])
                    .to_owned(),
            )
            .exec_without_returning(txn)
            .await
            .map_err(dbx)?;
            audit::write(txn, Some(tenant), actor, "user.protect", id, json!({"reason": reason})).await
        })?;
        self.protected_users()
            .await?
            .into_iter()
            .find(|p| p.user_id == user_id)
            .ok_or_else(|| StoreError::Internal("a protection vanished as it was made".into()))
    }

    /// Removes a user's protection; `NotFound` when it has none. Audited.
    pub async fn unprotect_user(&self, user_id: &str, actor: &str) -> Result<()> {
        let tenant = self.tenant.id;
        let id = user_id.to_owned();
        write_txn!(self.inner, [actor], [id], txn => {
            let n = protected_users::Entity::delete_many()
                .filter(protected_users::Column::TenantId.eq(tenant.to_string()))
                .filter(protected_users::Column::UserId.eq(id.clone()))
                .exec(txn)
                .await
                .map_err(dbx)?
                .rows_affected;
            if n == 0 {
                return Err(StoreError::NotFound(format!("protection of user {id}")).into());
            }
            audit::write(txn, Some(tenant), actor, "user.unprotect", id, json!({})).await
        })
    }

    /// The tenant's protected users.
    pub async fn protected_users(&self) -> Result<Vec<ProtectedUser>> {
        Ok(protected_users::Entity::find()
            .filter(protected_users::Column::TenantId.eq(self.tenant.id.to_string()))
            .order_by_asc(protected_users::Column::UserId)
            .all(&self.inner.conn)
            .await
            .map_err(db)?
            .into_iter()
            .map(|r| ProtectedUser {
                user_id: r.user_id,
                reason: r.reason,
                actor: r.actor,
                since: r.created_at,
            })
            .collect())
    }

    /// The tenant's soft-deleted users, most recently deleted first (at
    /// most `limit`, ≤ 1000).
    pub async fn deleted_users(&self, limit: u64) -> Result<Vec<DeletedUser>> {
        Ok(deleted_users::Entity::find()
            .filter(deleted_users::Column::TenantId.eq(self.tenant.id.to_string()))
            .order_by_desc(deleted_users::Column::DeletedAt)
            .limit(limit.clamp(1, 1000))
            .all(&self.inner.conn)
            .await
            .map_err(db)?
            .into_iter()
            .map(|r| DeletedUser {
                id: r.id,
                user_name: r.user_name,
                deleted_at: r.deleted_at,
                purge_after: r.purge_after,
            })
            .collect())
    }

    /// Restores a soft-deleted user with its id, last document and the
    /// groups it was in that still exist; a `user.restored` event tells
    /// the applications (outbound SCIM reactivates the user it kept).
    /// Held changes of the user are dropped. `Uniqueness` when another user
    /// has taken its userName since. Audited.
    pub async fn restore_user(&self, id: &str, actor: &str) -> Result<crate::Resource> {
        let store = self;
        let tenant = self.tenant.id;
        let user = write_txn!(self.inner, [store, id, actor], [], txn => {
            let key = tenant.to_string();
            let row = deleted_users::Entity::find_by_id((key.clone(), id.clone()))
                .lock_exclusive()
                .one(txn)
                .await
                .map_err(dbx)?
                .ok_or_else(|| StoreError::NotFound(format!("deleted user {id}")))?;
            let document = crate::directory::parse_document(&row.document, "a deleted user")?;
            let new = crate::directory::NewUser::restored(id.clone(), document)?;
            let mut user = crate::directory::create_user_in(store, txn, &new, now())
                .await
                .map_err(|e| match e {
                    TxError::Fail(StoreError::Uniqueness(_)) => TxError::Fail(StoreError::Uniqueness(format!(
                        "userName '{}' has been taken by another user since; rename or delete that one first",
                        row.user_name
                    ))),
                    other => other,
                })?;
            let groups: Vec<String> = serde_json::from_str(&row.groups).unwrap_or_default();
            for gid in groups {
                let exists = crate::directory::find_group(store, txn, &gid, false)
                    .await
                    .map_err(dbx)?
                    .is_some();
                if exists {
                    let member = id.clone();
                    let add = move |c: &crate::Resource| {
                        Ok((c.document.clone(), vec![scim::patch::MemberChange::Add(vec![
                            scim::patch::Member::new(member.clone()),
                        ])]))
                    };
                    crate::directory::modify_group_in(store, txn, &gid, None, &add).await?;
                }
            }
            // A super tenant routes it again, as it routes a new user.
            let touched = crate::copies::Touched::User {
                id: &user.id,
                document: Some(&user.document),
                new: true,
            };
            user.routed = crate::copies::follow(store, txn, touched).await?;
            deleted_users::Entity::delete_many()
                .filter(deleted_users::Column::TenantId.eq(key.clone()))
                .filter(deleted_users::Column::Id.eq(id.clone()))
                .exec(txn)
                .await
                .map_err(dbx)?;
            held_changes::Entity::delete_many()
                .filter(held_changes::Column::TenantId.eq(key.clone()))
                .filter(held_changes::Column::UserId.eq(id.clone()))
                .exec(txn)
                .await
                .map_err(dbx)?;
            audit::write(txn, Some(tenant), actor, "user.restore", id, json!({})).await?;
            Ok(user)
        })?;
        self.get_user(&user.id).await
    }

    /// Erases one user's personal data everywhere scimgate keeps it: the
    /// directory (or the soft-deleted record), held changes, protection,
    /// the provisioning log, the event log (events keep their place, their
    /// payload becomes `{"erased": true}`), waiting deliveries and
    /// attempts, audit details and job results
    /// that name it. A `user.purged` event (no data) tells the
    /// applications to delete it. The audit entry records the erasure and
    /// the user's id, nothing else. Returns the rows touched per table.
    pub async fn erase_user(&self, id: &str, actor: &str) -> Result<Value> {
        let store = self;
        let tenant = self.tenant.id;
        write_txn!(self.inner, [store, id, actor], [], txn => {
            let key = tenant.to_string();
            let live = crate::directory::find_user(store, txn, id, true).await.map_err(dbx)?;
            let gone = deleted_users::Entity::find_by_id((key.clone(), id.clone()))
                .one(txn)
                .await
                .map_err(dbx)?;
            let document = match (&live, &gone) {
                (Some(u), _) => u.document.clone(),
                (None, Some(d)) => d.document.clone(),
                (None, None) => {
                    return Err(StoreError::NotFound(format!("User {id}")).into());
                }
            };
            let names = identifiers(&document);
            let mut touched = serde_json::Map::new();
            let mut count = |table: &str, n: u64| {
                touched.insert(table.to_owned(), json!(n));
            };
            if live.is_some() {
                // Leaving groups writes member events of ids only.
                crate::directory::erase_live_user(store, txn, id).await?;
                count("users", 1);
            }
            macro_rules! gone {
                ($table:literal, $q:expr) => {{
                    let n = $q.exec(txn).await.map_err(dbx)?.rows_affected;
                    count($table, n);
                }};
            }
            gone!("deleted_users", deleted_users::Entity::delete_many()
                .filter(deleted_users::Column::TenantId.eq(key.clone()))
                .filter(deleted_users::Column::Id.eq(id.clone())));
            gone!("held_changes", held_changes::Entity::delete_many()
                .filter(held_changes::Column::TenantId.eq(key.clone()))
                .filter(held_changes::Column::UserId.eq(id.clone())));
            gone!("protected_users", protected_users::Entity::delete_many()
                .filter(protected_users::Column::TenantId.eq(key.clone()))
                .filter(protected_users::Column::UserId.eq(id.clone())));
            gone!("deliveries", deliveries::Entity::delete_many()
                .filter(deliveries::Column::TenantId.eq(key.clone()))
                .filter(deliveries::Column::ResourceId.eq(id.clone())));
            gone!("delivery_attempts", delivery_attempts::Entity::delete_many()
                .filter(delivery_attempts::Column::TenantId.eq(key.clone()))
                .filter(delivery_attempts::Column::ResourceId.eq(id.clone())));
            // Links to applications (ids only) stay until the purge event
            // has deleted the user there.
            let mut log = Condition::any().add(provisioning_log::Column::ResourceId.eq(id.clone()));
            for name in &names {
                log = log
                    .add(provisioning_log::Column::Identifier.eq(name.clone()))
                    .add(provisioning_log::Column::Detail.like(like(name)));
            }
            gone!("provisioning_log", provisioning_log::Entity::delete_many()
                .filter(provisioning_log::Column::TenantId.eq(key.clone()))
                .filter(log));
            let erased = json!({"erased": true}).to_string();
            gone!("event_log", event_log::Entity::update_many()
                .col_expr(event_log::Column::Payload, Expr::value(erased.clone()))
                .filter(event_log::Column::TenantId.eq(key.clone()))
                .filter(event_log::Column::ResourceId.eq(id.clone())));
            let mut named = Condition::any().add(admin_audit::Column::Target.eq(id.clone()));
            let mut in_jobs = Condition::any();
            for name in &names {
                named = named
                    .add(admin_audit::Column::Target.eq(name.clone()))
                    .add(admin_audit::Column::Detail.like(like(name)));
                in_jobs = in_jobs
                    .add(jobs::Column::Result.like(like(name)))
                    .add(jobs::Column::Payload.like(like(name)));
            }
            gone!("admin_audit", admin_audit::Entity::update_many()
                .col_expr(admin_audit::Column::Detail, Expr::value(erased.clone()))
                .filter(admin_audit::Column::TenantId.eq(key.clone()))
                .filter(named));
            if !names.is_empty() {
                gone!("jobs", jobs::Entity::update_many()
                    .col_expr(jobs::Column::Result, Expr::value(Some(erased.clone())))
                    .col_expr(jobs::Column::Payload, Expr::value(erased.clone()))
                    .filter(jobs::Column::TenantId.eq(key.clone()))
                    .filter(in_jobs));
            }
            events::write(store, txn, vec![Event {
                event_type: EventType::UserPurged,
                resource_id: id.clone(),
                payload: json!({"erased": true}),
            }]).await?;
            let touched = Value::Object(touched);
            audit::write(txn, Some(tenant), actor, "user.erase", id,
                json!({"rows": touched.clone()})).await?;
            Ok(touched)
        })
    }
}

/// A `LIKE` pattern matching text that contains `needle` (its own `%`
/// and `_` taken literally).
fn like(needle: &str) -> LikeExpr {
    LikeExpr::new(pattern(needle)).escape('\\')
}

fn pattern(needle: &str) -> String {
    let escaped = needle
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

/// The values of a user's document that identify the person: userName,
/// externalId, displayName, name parts, e-mail addresses (at least 3
/// characters each, so that erasing matches nothing by accident).
fn identifiers(document_text: &str) -> Vec<String> {
    let doc: Value = serde_json::from_str(document_text).unwrap_or(Value::Null);
    let mut out = Vec::new();
    let mut take = |v: &Value| {
        if let Some(s) = v.as_str()
            && s.chars().count() >= 3
            && !out.iter().any(|o: &String| o == s)
        {
            out.push(s.to_owned());
        }
    };
    for key in ["userName", "externalId", "displayName", "nickName"] {
        take(&doc[key]);
    }
    for key in ["formatted", "givenName", "familyName", "middleName"] {
        take(&doc["name"][key]);
    }
    for e in doc["emails"].as_array().into_iter().flatten() {
        take(&e["value"]);
    }
    out
}

impl Store {
    /// Purges soft-deleted users whose grace period ended before `now`
    /// (at most `limit` per call): their record goes, and a `user.purged`
    /// event tells each tenant's applications. Returns how many.
    pub async fn purge_deleted(&self, now: DateTime<Utc>, limit: u64) -> Result<u64> {
        let due = deleted_users::Entity::find()
            .filter(deleted_users::Column::PurgeAfter.lte(now))
            .order_by_asc(deleted_users::Column::PurgeAfter)
            .limit(limit.max(1))
            .all(&self.inner.conn)
            .await
            .map_err(db)?;
        let mut n = 0;
        for row in due {
            let backend = self.inner.backend;
            let purged = write_txn!(self.inner, [], [row, backend], txn => {
                let gone = deleted_users::Entity::delete_many()
                    .filter(deleted_users::Column::TenantId.eq(row.tenant_id.clone()))
                    .filter(deleted_users::Column::Id.eq(row.id.clone()))
                    .filter(deleted_users::Column::PurgeAfter.lte(now))
                    .exec(txn)
                    .await
                    .map_err(dbx)?
                    .rows_affected;
                if gone == 0 {
                    // Restored (or purged) meanwhile.
                    return Ok(false);
                }
                protected_users::Entity::delete_many()
                    .filter(protected_users::Column::TenantId.eq(row.tenant_id.clone()))
                    .filter(protected_users::Column::UserId.eq(row.id.clone()))
                    .exec(txn)
                    .await
                    .map_err(dbx)?;
                let tenant = Uuid::parse_str(&row.tenant_id)
                    .map_err(|_| StoreError::Internal("a deleted user's tenant id".into()))?;
                events::write_for(*backend, txn, tenant, vec![Event {
                    event_type: EventType::UserPurged,
                    resource_id: row.id.clone(),
                    payload: json!({}),
                }]).await?;
                Ok(true)
            })?;
            n += u64::from(purged);
        }
        Ok(n)
    }

    /// Changes held across all tenants, and tenants whose threshold has
    /// tripped (for the alert metrics).
    pub async fn held_totals(&self) -> Result<(u64, u64)> {
        let held = held_changes::Entity::find()
            .count(&self.inner.conn)
            .await
            .map_err(db)?;
        let tripped = deletion_safety::Entity::find()
            .filter(deletion_safety::Column::Tripped.eq(true))
            .count(&self.inner.conn)
            .await
            .map_err(db)?;
        Ok((held, tripped))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lower_limit_applies() {
        let p = DeletionPolicy {
            max_deletions: Some(10),
            max_percent: Some(5),
            ..DeletionPolicy::default()
        };
        assert_eq!(p.limit(100), Some(5));
        assert_eq!(p.limit(1000), Some(10));
        let only_share = DeletionPolicy {
            max_deletions: None,
            max_percent: Some(25),
            ..DeletionPolicy::default()
        };
        // A share rounds up: 25 % of 10 users lets 3 through.
        assert_eq!(only_share.limit(10), Some(3));
        let none = DeletionPolicy {
            max_deletions: None,
            ..DeletionPolicy::default()
        };
        assert_eq!(none.limit(100), None);
    }

    #[test]
    fn bounds_name_the_field() {
        for (p, field) in [
            (
                DeletionPolicy {
                    max_deletions: Some(0),
                    ..DeletionPolicy::default()
                },
                "maxDeletions",
            ),
            (
                DeletionPolicy {
                    max_percent: Some(101),
                    ..DeletionPolicy::default()
                },
                "maxPercent",
            ),
            (
                DeletionPolicy {
                    window_minutes: 0,
                    ..DeletionPolicy::default()
                },
                "windowMinutes",
            ),
            (
                DeletionPolicy {
                    grace_days: 4000,
                    ..DeletionPolicy::default()
                },
                "graceDays",
            ),
        ] {
            let e = p.check().expect_err("refused");
            assert!(e.to_string().contains(field), "{e}");
        }
        DeletionPolicy::default()
            .check()
            .expect("the defaults check out");
    }

    #[test]
    fn identifiers_are_what_names_the_person() {
        let doc = json!({"userName": "zq@x.example", "name": {"givenName": "Zelda", "familyName": "Quixote"},
            "emails": [{"value": "zelda@home.example"}], "title": "Boss", "externalId": "ab"});
        let ids = identifiers(&doc.to_string());
        assert_eq!(
            ids,
            ["zq@x.example", "Zelda", "Quixote", "zelda@home.example"]
        );
        assert_eq!(pattern("50%_a\\"), "%50\\%\\_a\\\\%");
    }
}
