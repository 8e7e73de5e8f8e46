//! One tenant's role policy, its administrators' role-locks and its users'
//! effective roles.
//!
//! The policy is stored relationally (settings, roles, mappings) so that a
//! mapping has an id finer-grained edits can name later; it is always read
//! and replaced whole, under the `role_settings` row lock, and every
//! replacement bumps `policy_version`, which is what an `If-Match` names.
//!
//! Effective roles are derived inside the SCIM write that changes their
//! inputs ([`recompute`]): a user's `active`, direct group memberships, a
//! group's identifiers, a lock. A policy replacement does not recompute
//! the tenant (a background job does); writes after it use it, through a
//! per-tenant cache of the compiled policy that costs one primary-key read
//! to validate. Group nesting is not followed: mappings match the groups
//! a user is a direct member of.
//!
//! This module is named like the `roles` crate it stores, so that crate is
//! spelled `::roles` here.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use ::roles::{
    CompiledPolicy, Effective, GroupFacts, GroupMatch, Lock, Mapping, Mode, Policy, Role,
    UserFacts, changed,
};
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, LockType, OnConflict, Query};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction, DbErr, EntityTrait,
    FromQueryResult, PaginatorTrait, QueryFilter, QueryOrder, QueryResult, QuerySelect, Select,
};
use uuid::Uuid;

use crate::db::{TxError, db, dbx, now};
use crate::directory::{CHUNK, version};
use crate::entity::{
    role_locks, role_mappings, role_settings, roles as role_defs, user_roles, users,
};
use crate::events::{self, Event};
use crate::jobs;
use crate::{
    LockInfo, PolicyChange, PreviewChange, Result, RolePreview, StoreError, StoredPolicy,
    TenantStore,
};

fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Single => "single",
        Mode::Multi => "multi",
    }
}

fn parse_mode(text: &str) -> Result<Mode> {
    match text {
        "single" => Ok(Mode::Single),
        "multi" => Ok(Mode::Multi),
        other => Err(StoreError::Internal(format!(
            "role_settings has an unknown mode {other:?}"
        ))),
    }
}

fn parse_match(attribute: &str, value: String) -> Result<GroupMatch> {
    match attribute {
        "id" => Ok(GroupMatch::Id(value)),
        "externalId" => Ok(GroupMatch::ExternalId(value)),
        "displayName" => Ok(GroupMatch::DisplayName(value)),
        other => Err(StoreError::Internal(format!(
            "role mapping has an unknown match attribute {other:?}"
        ))),
    }
}

fn position(i: usize) -> i32 {
    i32::try_from(i).unwrap_or(i32::MAX)
}

/// The policy a tenant has before anyone stores one.
fn empty_policy() -> Policy {
    Policy {
        roles: Vec::new(),
        default_role: None,
        mappings: Vec::new(),
        mode: Mode::Single,
    }
}

async fn find_settings(
    store: &TenantStore,
    conn: &impl ConnectionTrait,
    lock: bool,
) -> Result<Option<role_settings::Model>, DbErr> {
    let mut q = role_settings::Entity::find()
        .filter(role_settings::Column::TenantId.eq(store.tenant.id.to_string()));
    if lock {
        q = q.lock_exclusive();
    }
    // By primary key; no `one()`, whose bound `LIMIT` makes SQLite
    // re-prepare the statement.
    Ok(q.all(conn).await?.into_iter().next())
}

async fn find_mappings(
    store: &TenantStore,
    conn: &impl ConnectionTrait,
) -> Result<Vec<role_mappings::Model>, DbErr> {
    role_mappings::Entity::find()
        .filter(role_mappings::Column::TenantId.eq(store.tenant.id.to_string()))
        .order_by_asc(role_mappings::Column::Position)
        .all(conn)
        .await
}

async fn find_roles(
    store: &TenantStore,
    conn: &impl ConnectionTrait,
) -> Result<Vec<role_defs::Model>, DbErr> {
    role_defs::Entity::find()
        .filter(role_defs::Column::TenantId.eq(store.tenant.id.to_string()))
        .order_by_asc(role_defs::Column::Position)
        .all(conn)
        .await
}

fn assemble(
    settings: role_settings::Model,
    role_rows: Vec<role_defs::Model>,
    mapping_rows: Vec<role_mappings::Model>,
) -> Result<StoredPolicy> {
    let mut mappings = Vec::with_capacity(mapping_rows.len());
    let mut mapping_ids = Vec::with_capacity(mapping_rows.len());
    for row in mapping_rows {
        mappings.push(Mapping {
            group: parse_match(&row.match_attribute, row.match_value)?,
            role: row.role,
            priority: row.priority,
        });
        mapping_ids.push(row.id);
    }
    Ok(StoredPolicy {
        policy: Policy {
            roles: role_rows
                .into_iter()
                .map(|r| Role {
                    name: r.name,
                    description: r.description,
                })
                .collect(),
            default_role: settings.default_role,
            mappings,
            mode: parse_mode(&settings.mode)?,
        },
        version: version(settings.policy_version, "role policy")?,
        mapping_ids,
    })
}

pub(crate) async fn role_policy(store: &TenantStore) -> Result<StoredPolicy> {
    stored_policy(store, &store.inner.conn).await
}

pub(crate) async fn set_role_policy(
    store: &TenantStore,
    policy: Policy,
    expected_version: Option<u64>,
    actor: &str,
) -> Result<PolicyChange> {
    policy
        .validate()
        .map_err(|e| StoreError::InvalidValue(e.to_string()))?;
    let change = write_txn!(store.inner, [store, actor], [policy], txn => {
        let before = stored_policy(store, txn).await.map_err(TxError::Fail)?;
        let stored = replace_policy(store, txn, policy, expected_version).await?;
        if policy.roles.is_empty() {
            let locked = count_locks(store, txn).await?;
            if locked > 0 {
                return Err(StoreError::InvalidValue(format!(
                    "{locked} users are locked to roles; unlock them before removing every role"
                ))
                .into());
            }
        }
        let job = jobs::enqueue_role_recompute(store, txn, stored.version).await?;
        let detail = serde_json::json!({
            "before": {"version": before.version, "policy": before.policy},
            "after": {"version": stored.version, "policy": stored.policy},
            "job": job,
        });
        crate::audit::write(
            txn,
            Some(store.tenant.id),
            actor,
            "roles.policy.set",
            "role policy",
            detail,
        )
        .await?;
        Ok(PolicyChange { stored, job })
    })?;
    store.inner.jobs_queued.notify_waiters();
    Ok(change)
}

/// The stored policy as seen inside a transaction.
async fn stored_policy(store: &TenantStore, conn: &impl ConnectionTrait) -> Result<StoredPolicy> {
    let Some(settings) = find_settings(store, conn, false).await.map_err(db)? else {
        return Ok(StoredPolicy {
            policy: empty_policy(),
            version: 0,
            mapping_ids: Vec::new(),
        });
    };
    let role_rows = find_roles(store, conn).await.map_err(db)?;
    let mapping_rows = find_mappings(store, conn).await.map_err(db)?;
    assemble(settings, role_rows, mapping_rows)
}

async fn count_locks(store: &TenantStore, txn: &DatabaseTransaction) -> Result<u64, TxError> {
    role_locks::Entity::find()
        .filter(role_locks::Column::TenantId.eq(store.tenant.id.to_string()))
        .count(txn)
        .await
        .map_err(dbx)
}

async fn replace_policy(
    store: &TenantStore,
    txn: &DatabaseTransaction,
    policy: &Policy,
    expected_version: Option<u64>,
) -> Result<StoredPolicy, TxError> {
    // Later jobs of this writer batch must read the new policy (and, if
    // this job rolls back, the old one again).
    store.inner.role_policies.forget(store.tenant.id);
    forget_noted(store.tenant.id);
    let tenant = store.tenant.id.to_string();
    let settings = find_settings(store, txn, true).await.map_err(dbx)?;
    let current = match &settings {
        Some(s) => version(s.policy_version, "role policy")?,
        None => 0,
    };
    if let Some(expected) = expected_version
        && expected != current
    {
        return Err(StoreError::PreconditionFailed { current }.into());
    }
    let new_version = current + 1;
    let stored_version = i64::try_from(new_version)
        .map_err(|_| StoreError::Internal("role policy version overflow".into()))?;
    let at = now();
    match &settings {
        Some(s) => {
            let updated = role_settings::Entity::update_many()
                .col_expr(
                    role_settings::Column::DefaultRole,
                    Expr::value(policy.default_role.clone()),
                )
                .col_expr(
                    role_settings::Column::Mode,
                    Expr::value(mode_name(policy.mode)),
                )
                .col_expr(
                    role_settings::Column::PolicyVersion,
                    Expr::value(stored_version),
                )
                .col_expr(role_settings::Column::UpdatedAt, Expr::value(at))
                .filter(role_settings::Column::TenantId.eq(tenant.clone()))
                .filter(role_settings::Column::PolicyVersion.eq(s.policy_version))
                .exec(txn)
                .await
                .map_err(dbx)?;
            if updated.rows_affected == 0 {
                return Err(TxError::Retry);
            }
        }
        None => {
            let row = role_settings::ActiveModel {
                tenant_id: Set(tenant.clone()),
                default_role: Set(policy.default_role.clone()),
                mode: Set(mode_name(policy.mode).to_owned()),
                policy_version: Set(stored_version),
                updated_at: Set(at),
            };
            // Two first writes of one tenant's policy race to insert the
            // row; the loser runs again and finds (and locks) it.
            role_settings::Entity::insert(row)
                .exec_without_returning(txn)
                .await
                .map_err(|e| {
                    if matches!(
                        crate::db::sql_err(&e),
                        Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
                    ) {
                        TxError::Retry
                    } else {
                        dbx(e)
                    }
                })?;
        }
    }

    // A mapping that is kept unchanged keeps its id, so ids stay useful
    // to callers that edit one mapping at a time.
    let old = find_mappings(store, txn).await.map_err(dbx)?;
    let mut reusable: HashMap<(String, String, String, i32), Vec<String>> = HashMap::new();
    for row in old.into_iter().rev() {
        reusable
            .entry((row.match_attribute, row.match_value, row.role, row.priority))
            .or_default()
            .push(row.id);
    }
    role_mappings::Entity::delete_many()
        .filter(role_mappings::Column::TenantId.eq(tenant.clone()))
        .exec(txn)
        .await
        .map_err(dbx)?;
    role_defs::Entity::delete_many()
        .filter(role_defs::Column::TenantId.eq(tenant.clone()))
        .exec(txn)
        .await
        .map_err(dbx)?;

    let role_rows: Vec<role_defs::ActiveModel> = policy
        .roles
        .iter()
        .enumerate()
        .map(|(i, r)| role_defs::ActiveModel {
            tenant_id: Set(tenant.clone()),
            name: Set(r.name.clone()),
            description: Set(r.description.clone()),
            position: Set(position(i)),
        })
        .collect();
    for chunk in role_rows.chunks(CHUNK) {
        role_defs::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(txn)
            .await
            .map_err(dbx)?;
    }

    let mut mapping_ids = Vec::with_capacity(policy.mappings.len());
    let mut mapping_rows = Vec::with_capacity(policy.mappings.len());
    for (i, m) in policy.mappings.iter().enumerate() {
        let key = (
            m.group.attribute().to_owned(),
            m.group.value().to_owned(),
            m.role.clone(),
            m.priority,
        );
        let id = reusable
            .get_mut(&key)
            .and_then(Vec::pop)
            .unwrap_or_else(|| Uuid::new_v4().to_string());
        mapping_rows.push(role_mappings::ActiveModel {
            tenant_id: Set(tenant.clone()),
            id: Set(id.clone()),
            match_attribute: Set(key.0),
            match_value: Set(key.1),
            role: Set(key.2),
            priority: Set(m.priority),
            position: Set(position(i)),
            created_at: Set(at),
        });
        mapping_ids.push(id);
    }
    for chunk in mapping_rows.chunks(CHUNK) {
        role_mappings::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(txn)
            .await
            .map_err(dbx)?;
    }
    Ok(StoredPolicy {
        policy: policy.clone(),
        version: new_version,
        mapping_ids,
    })
}

// ---------------------------------------------------------------------------
// Locks

fn lock_info(row: role_locks::Model) -> Result<LockInfo> {
    let roles: Vec<String> = serde_json::from_str(&row.roles).map_err(|e| {
        StoreError::Internal(format!("role lock of user {} is corrupt: {e}", row.user_id))
    })?;
    Ok(LockInfo {
        user_id: row.user_id,
        roles,
        reason: row.reason,
        locked_by: row.locked_by,
        locked_at: row.locked_at,
    })
}

pub(crate) async fn lock_user(
    store: &TenantStore,
    user_id: &str,
    mut lock_roles: Vec<String>,
    reason: &str,
    locked_by: &str,
) -> Result<LockInfo> {
    if reason.trim().is_empty() {
        return Err(StoreError::InvalidValue(
            "a role lock needs a reason".into(),
        ));
    }
    // Stored as evaluation sees them, so a listing shows what applies.
    lock_roles.sort_unstable();
    lock_roles.dedup();
    let at = now();
    let info = LockInfo {
        user_id: user_id.to_owned(),
        roles: lock_roles,
        reason: reason.to_owned(),
        locked_by: locked_by.to_owned(),
        locked_at: at,
    };
    write_txn!(store.inner, [store], [info], txn => {
        let tenant = store.tenant.id.to_string();
        let found = lock_user_row(store, txn, &info.user_id).await?;
        if !found {
            return Err(StoreError::NotFound(format!("User {}", info.user_id)).into());
        }
        check_lock_roles(store, txn, &info.roles).await?;
        role_locks::Entity::delete_many()
            .filter(role_locks::Column::TenantId.eq(tenant.clone()))
            .filter(role_locks::Column::UserId.eq(info.user_id.clone()))
            .exec(txn)
            .await
            .map_err(dbx)?;
        let roles_json = serde_json::to_string(&info.roles)
            .map_err(|e| StoreError::Internal(e.to_string()))?;
        role_locks::Entity::insert(role_locks::ActiveModel {
            tenant_id: Set(tenant),
            user_id: Set(info.user_id.clone()),
            roles: Set(roles_json),
            reason: Set(info.reason.clone()),
            locked_by: Set(info.locked_by.clone()),
            locked_at: Set(info.locked_at),
        })
        .exec_without_returning(txn)
        .await
        .map_err(dbx)?;
        let events = recompute(store, txn, std::slice::from_ref(&info.user_id)).await?;
        events::write(store, txn, events).await?;
        let detail = serde_json::json!({"roles": info.roles, "reason": info.reason});
        crate::audit::write(
            txn,
            Some(store.tenant.id),
            &info.locked_by,
            "roles.lock",
            &format!("user {}", info.user_id),
            detail,
        )
        .await?;
        Ok(info.clone())
    })
}

/// Locks the user's row (whether it exists): lock, unlock and
/// [`recompute`] of one user then run one at a time, so a lock's delete and
/// insert never race another's. NO KEY UPDATE, the lock [`recompute`]
/// takes, so that it is no upgrade.
async fn lock_user_row(
    store: &TenantStore,
    txn: &DatabaseTransaction,
    user_id: &str,
) -> Result<bool, TxError> {
    let found: Vec<String> = users::Entity::find()
        .select_only()
        .column(users::Column::Id)
        .filter(users::Column::TenantId.eq(store.tenant.id.to_string()))
        .filter(users::Column::Id.eq(user_id))
        .lock(LockType::NoKeyUpdate)
        .into_tuple()
        .all(txn)
        .await
        .map_err(dbx)?;
    Ok(!found.is_empty())
}

/// A lock may only pin roles the policy defines at the time: a typo would
/// otherwise pin the user to a role the application does not know. (A
/// role removed from the policy later stays on the lock: see `roles`.)
async fn check_lock_roles(
    store: &TenantStore,
    txn: &DatabaseTransaction,
    lock_roles: &[String],
) -> Result<(), TxError> {
    if lock_roles.is_empty() {
        return Ok(());
    }
    let defined: Vec<String> = role_defs::Entity::find()
        .select_only()
        .column(role_defs::Column::Name)
        .filter(role_defs::Column::TenantId.eq(store.tenant.id.to_string()))
        .into_tuple()
        .all(txn)
        .await
        .map_err(dbx)?;
    if let Some(unknown) = lock_roles.iter().find(|r| !defined.contains(r)) {
        return Err(StoreError::InvalidValue(format!(
            "role {unknown:?} is not one of the defined roles"
        ))
        .into());
    }
    Ok(())
}

pub(crate) async fn unlock_user(store: &TenantStore, user_id: &str, actor: &str) -> Result<()> {
    write_txn!(store.inner, [store, user_id, actor], [], txn => {
        lock_user_row(store, txn, user_id).await?;
        let deleted = role_locks::Entity::delete_many()
            .filter(role_locks::Column::TenantId.eq(store.tenant.id.to_string()))
            .filter(role_locks::Column::UserId.eq(user_id.clone()))
            .exec(txn)
            .await
            .map_err(dbx)?;
        if deleted.rows_affected == 0 {
            return Err(StoreError::NotFound(format!("role lock of user {user_id}")).into());
        }
        let events = recompute(store, txn, std::slice::from_ref(user_id)).await?;
        events::write(store, txn, events).await?;
        crate::audit::write(
            txn,
            Some(store.tenant.id),
            actor,
            "roles.unlock",
            &format!("user {user_id}"),
            serde_json::Value::Null,
        )
        .await
    })
}

pub(crate) async fn locks(store: &TenantStore) -> Result<Vec<LockInfo>> {
    role_locks::Entity::find()
        .filter(role_locks::Column::TenantId.eq(store.tenant.id.to_string()))
        .order_by_asc(role_locks::Column::UserId)
        .all(&store.inner.conn)
        .await
        .map_err(db)?
        .into_iter()
        .map(lock_info)
        .collect()
}

// ---------------------------------------------------------------------------
// Effective roles

pub(crate) fn parse_effective(text: &str, user_id: &str) -> Result<Effective> {
    serde_json::from_str(text).map_err(|e| {
        StoreError::Internal(format!(
            "effective roles of user {user_id} are corrupt: {e}"
        ))
    })
}

pub(crate) async fn effective_roles(
    store: &TenantStore,
    user_ids: &[String],
) -> Result<HashMap<String, Effective>> {
    let mut out = HashMap::with_capacity(user_ids.len());
    for chunk in user_ids.chunks(CHUNK) {
        let rows = user_roles::Entity::find()
            .filter(user_roles::Column::TenantId.eq(store.tenant.id.to_string()))
            .filter(user_roles::Column::UserId.is_in(chunk.iter().cloned()))
            .all(&store.inner.conn)
            .await
            .map_err(db)?;
        for row in rows {
            let effective = parse_effective(&row.effective, &row.user_id)?;
            out.insert(row.user_id, effective);
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// Recompute inside SCIM writes

/// What a cached compiled policy was built from: a policy replaced after a
/// rolled-back one (SQLite's group commit can roll a batch back) gets the
/// same version but not the same `updated_at`.
type PolicyStamp = (i64, DateTime<Utc>);

/// Compiled role policies by tenant; see [`crate::db::Inner`].
#[derive(Default)]
pub(crate) struct PolicyCache(Mutex<HashMap<Uuid, CachedPolicy>>);

/// One tenant's entry of [`PolicyCache`].
struct CachedPolicy {
    /// What `policy` was compiled from; `None`: the tenant had no policy.
    stamp: Option<PolicyStamp>,
    policy: Managed,
    /// The SQLite writer batch that last read the stamp (see
    /// [`crate::writer::current_batch`]): later jobs of that batch trust
    /// the entry without reading it again.
    batch: Option<u64>,
}

/// A tenant's compiled policy, or `None` when the tenant defines no roles
/// (then no user has stored roles and SCIM writes derive nothing).
pub(crate) type Managed = Option<Arc<CompiledPolicy>>;

tokio::task_local! {
    /// The role-policy stamps one attempt of a PostgreSQL write
    /// transaction read beside its locked rows ([`locked_read`]), by
    /// tenant; `None`: the tenant had no policy.
    static SEEN: RefCell<HashMap<Uuid, Option<PolicyStamp>>>;
}

/// Runs one attempt of a PostgreSQL write transaction with room for the
/// policy stamps its locked reads note ([`locked_read`]).
pub(crate) async fn noting_policy_stamps<T>(body: impl Future<Output = T>) -> T {
    SEEN.scope(RefCell::new(HashMap::new()), body).await
}

/// A row read by [`locked_read`], with the tenant's policy stamp beside it.
struct Stamped<M> {
    row: M,
    version: Option<i64>,
    updated_at: Option<DateTime<Utc>>,
}

impl<M: FromQueryResult> FromQueryResult for Stamped<M> {
    fn from_query_result(res: &QueryResult, pre: &str) -> std::result::Result<Self, DbErr> {
        Ok(Stamped {
            row: M::from_query_result(res, pre)?,
            version: res.try_get(pre, "policy_version_seen")?,
            updated_at: res.try_get(pre, "policy_updated_seen")?,
        })
    }
}

/// Runs `select`, a locked read of rows of `store`'s tenant. Inside a
/// PostgreSQL write transaction the same statement reads the tenant's
/// role-policy stamp and notes it, so the policy check of the write that
/// follows ([`compiled_policy`]) needs no statement of its own when its
/// compiled policy is cached: a round trip fewer per SCIM write. (SQLite's
/// writer batches already share that read.)
pub(crate) async fn locked_read<E>(
    store: &TenantStore,
    conn: &impl ConnectionTrait,
    select: Select<E>,
) -> std::result::Result<Vec<E::Model>, DbErr>
where
    E: EntityTrait,
    E::Model: FromQueryResult + Send + Sync,
{
    if SEEN.try_with(|_| ()).is_err() {
        return select.all(conn).await;
    }
    let tenant = store.tenant.id.to_string();
    let stamp_part = |column: role_settings::Column| {
        let q = Query::select()
            .column(column)
            .from(role_settings::Entity)
            .and_where(role_settings::Column::TenantId.eq(tenant.as_str()))
            .to_owned();
        Expr::SubQuery(None, Box::new(q.into()))
    };
    let rows = select
        .column_as(
            stamp_part(role_settings::Column::PolicyVersion),
            "policy_version_seen",
        )
        .column_as(
            stamp_part(role_settings::Column::UpdatedAt),
            "policy_updated_seen",
        )
        .into_model::<Stamped<E::Model>>()
        .all(conn)
        .await?;
    if let Some(first) = rows.first() {
        let stamp = first.version.zip(first.updated_at);
        SEEN.with(|seen| seen.borrow_mut().insert(store.tenant.id, stamp));
    }
    Ok(rows.into_iter().map(|r| r.row).collect())
}

/// The stamp a locked read of this attempt noted for `tenant`: `Some(None)`
/// when the tenant had no policy then, `None` when nothing was noted.
fn noted_stamp(tenant: Uuid) -> Option<Option<PolicyStamp>> {
    SEEN.try_with(|seen| seen.borrow().get(&tenant).copied())
        .ok()
        .flatten()
}

/// Forgets what this attempt noted for `tenant`: its policy is being
/// changed.
fn forget_noted(tenant: Uuid) {
    let _ = SEEN.try_with(|seen| seen.borrow_mut().remove(&tenant));
}

impl PolicyCache {
    // A panic elsewhere cannot leave the map half-updated: changes are
    // single calls. So a poisoned lock is still safe to use.
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, CachedPolicy>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The policy compiled from `stamp`, noting that `batch` read it.
    fn get(&self, tenant: Uuid, stamp: PolicyStamp, batch: Option<u64>) -> Option<Managed> {
        let mut map = self.map();
        let entry = map.get_mut(&tenant).filter(|e| e.stamp == Some(stamp))?;
        if batch.is_some() {
            entry.batch = batch;
        }
        Some(entry.policy.clone())
    }

    /// The policy an earlier job of writer batch `batch` read.
    fn checked_in(&self, tenant: Uuid, batch: u64) -> Option<Managed> {
        self.map()
            .get(&tenant)
            .filter(|e| e.batch == Some(batch))
            .map(|e| e.policy.clone())
    }

    fn put(&self, tenant: Uuid, stamp: Option<PolicyStamp>, policy: Managed, batch: Option<u64>) {
        self.map().insert(
            tenant,
            CachedPolicy {
                stamp,
                policy,
                batch,
            },
        );
    }

    /// Drops a tenant's entry: its policy is being changed.
    fn forget(&self, tenant: Uuid) {
        self.map().remove(&tenant);
    }
}

/// The tenant's current policy, compiled (`None` when it defines no
/// roles): one primary-key read when the cached copy is current, and none
/// for the later writes of the tenant in one SQLite writer batch.
async fn compiled_policy(
    store: &TenantStore,
    txn: &DatabaseTransaction,
) -> Result<Managed, TxError> {
    let tenant = store.tenant.id;
    let cache = &store.inner.role_policies;
    let batch = crate::writer::current_batch();
    if let Some(policy) = batch.and_then(|b| cache.checked_in(tenant, b)) {
        return Ok(policy);
    }
    match noted_stamp(tenant) {
        Some(None) => return Ok(None),
        Some(Some(stamp)) => {
            if let Some(policy) = cache.get(tenant, stamp, None) {
                return Ok(policy);
            }
        }
        None => {}
    }
    let Some(settings) = find_settings(store, txn, false).await.map_err(dbx)? else {
        if batch.is_some() {
            cache.put(tenant, None, None, batch);
        }
        return Ok(None);
    };
    let stamp = (settings.policy_version, settings.updated_at);
    if let Some(policy) = cache.get(tenant, stamp, batch) {
        return Ok(policy);
    }
    let role_rows = find_roles(store, txn).await.map_err(dbx)?;
    let mapping_rows = find_mappings(store, txn).await.map_err(dbx)?;
    // At READ COMMITTED (PostgreSQL) each statement may see a later
    // policy than the one before it; only a consistent read is compiled.
    let again = find_settings(store, txn, false).await.map_err(dbx)?;
    if again.map(|s| (s.policy_version, s.updated_at)) != Some(stamp) {
        return Err(TxError::Retry);
    }
    let stored = assemble(settings, role_rows, mapping_rows)?;
    let compiled = if stored.policy.roles.is_empty() {
        None
    } else {
        Some(Arc::new(stored.policy.compile().map_err(|e| {
            StoreError::Internal(format!("stored role policy is invalid: {e}"))
        })?))
    };
    cache.put(tenant, Some(stamp), compiled.clone(), batch);
    Ok(compiled)
}

/// Whether a user's access differs between two derivations, `None` being
/// "no roles stored" (a user of a tenant without roles, or not yet
/// derived): then only having roles counts, not `disabled`, which the
/// application learns from the user's own events. This one rule decides
/// both the `user.roles_changed` events and what a dry run counts, so the
/// two always agree.
fn differs(before: Option<&Effective>, after: Option<&Effective>) -> bool {
    match (before, after) {
        (Some(b), Some(a)) => changed(b, a),
        (None, Some(e)) | (Some(e), None) => !e.roles.is_empty(),
        (None, None) => false,
    }
}

/// Derives and stores the roles of a user created by this transaction:
/// no groups, no lock and no earlier row can exist yet, so only the policy
/// is read. Returns the user's first `user.roles_changed` event when the
/// user gets a role (see [`differs`]).
pub(crate) async fn derive_new_user(
    store: &TenantStore,
    txn: &DatabaseTransaction,
    user_id: &str,
    active: Option<bool>,
) -> Result<Option<Event>, TxError> {
    let Some(policy) = compiled_policy(store, txn).await? else {
        return Ok(None);
    };
    let after = policy.evaluate(&UserFacts {
        active: active.unwrap_or(true),
        groups: Vec::new(),
        lock: None,
    });
    let text = serde_json::to_string(&after).map_err(|e| StoreError::Internal(e.to_string()))?;
    user_roles::Entity::insert(user_roles::ActiveModel {
        tenant_id: Set(store.tenant.id.to_string()),
        user_id: Set(user_id.to_owned()),
        effective: Set(text),
        updated_at: Set(now()),
    })
    .exec_without_returning(txn)
    .await
    .map_err(dbx)?;
    Ok(differs(None, Some(&after)).then(|| Event::roles_changed(user_id, None, &after)))
}

/// Re-derives the effective roles of `ids` (users of this tenant; other
/// ids, such as nested groups, are ignored) inside `txn`, stores the ones
/// that differ and returns a `user.roles_changed` event for each change
/// [`differs`] counts. Costs a fixed number of
/// queries per 500 users, whatever the size of the tenant; nothing but the
/// policy read when the tenant defines no roles.
pub(crate) async fn recompute(
    store: &TenantStore,
    txn: &DatabaseTransaction,
    ids: &[String],
) -> Result<Vec<Event>, TxError> {
    let mut ids: Vec<&String> = ids.iter().collect();
    ids.sort_unstable();
    ids.dedup();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let Some(policy) = compiled_policy(store, txn).await? else {
        return Ok(Vec::new());
    };
    derive(store, txn, &policy, ids).await
}

/// [`recompute`] with the policy given.
async fn derive(
    store: &TenantStore,
    txn: &DatabaseTransaction,
    policy: &CompiledPolicy,
    ids: Vec<&String>,
) -> Result<Vec<Event>, TxError> {
    let tenant = store.tenant.id.to_string();
    let at = now();
    let mut events = Vec::new();
    for chunk in ids.chunks(CHUNK) {
        let chunk: Vec<String> = chunk.iter().map(|s| (*s).clone()).collect();
        // Locked, so that two writes changing one user's groups at once
        // (say, adds to two different groups) derive in turn, the second
        // seeing the first's membership, instead of the last overwriting.
        // NO KEY UPDATE, not UPDATE: it must not conflict with the KEY
        // SHARE lock a member add already holds on the user (see
        // `resolve_members`), or two such adds would deadlock upgrading.
        let active: Vec<(String, Option<bool>)> = users::Entity::find()
            .select_only()
            .column(users::Column::Id)
            .column(users::Column::Active)
            .filter(users::Column::TenantId.eq(tenant.clone()))
            .filter(users::Column::Id.is_in(chunk.iter().cloned()))
            .lock(LockType::NoKeyUpdate)
            .into_tuple()
            .all(txn)
            .await
            .map_err(dbx)?;
        if active.is_empty() {
            continue;
        }
        let user_ids: Vec<String> = active.iter().map(|(id, _)| id.clone()).collect();
        let Inputs {
            mut groups,
            mut locks,
            current,
        } = load_inputs(store, txn, &user_ids).await?;

        let mut upserts = Vec::new();
        let mut sorted = active;
        sorted.sort_unstable();
        for (user_id, active) in sorted {
            let facts = UserFacts {
                // SCIM leaves `active` optional; a user without it is not
                // deactivated.
                active: active.unwrap_or(true),
                groups: groups.remove(&user_id).unwrap_or_default(),
                lock: locks.remove(&user_id).map(|roles| Lock { roles }),
            };
            let after = policy.evaluate(&facts);
            let before = current.get(&user_id);
            if before == Some(&after) {
                continue;
            }
            // A new reason alone is stored (it is what the admin console
            // shows) but is not an event: the user's access is the same.
            if differs(before, Some(&after)) {
                events.push(Event::roles_changed(&user_id, before, &after));
            }
            let text =
                serde_json::to_string(&after).map_err(|e| StoreError::Internal(e.to_string()))?;
            upserts.push(user_roles::ActiveModel {
                tenant_id: Set(tenant.clone()),
                user_id: Set(user_id),
                effective: Set(text),
                updated_at: Set(at),
            });
        }
        if !upserts.is_empty() {
            user_roles::Entity::insert_many(upserts)
                .on_conflict(
                    OnConflict::columns([user_roles::Column::TenantId, user_roles::Column::UserId])
                        .update_columns([
                            user_roles::Column::Effective,
                            user_roles::Column::UpdatedAt,
                        ])
                        .to_owned(),
                )
                .exec_without_returning(txn)
                .await
                .map_err(dbx)?;
        }
    }
    Ok(events)
}

/// What derivation reads about a set of users besides their `active`.
pub(crate) struct Inputs {
    /// Direct groups by user.
    pub(crate) groups: HashMap<String, Vec<GroupFacts>>,
    /// Locked roles by user.
    pub(crate) locks: HashMap<String, Vec<String>>,
    /// Stored effective roles by user.
    pub(crate) current: HashMap<String, Effective>,
}

/// Reads derivation's inputs for `user_ids` (at most a [`CHUNK`]): three
/// queries.
pub(crate) async fn load_inputs(
    store: &TenantStore,
    conn: &impl ConnectionTrait,
    user_ids: &[String],
) -> Result<Inputs, TxError> {
    let tenant = store.tenant.id.to_string();
    let groups = groups_of(store, conn, user_ids).await?;
    let mut locks: HashMap<String, Vec<String>> = HashMap::new();
    let lock_rows = role_locks::Entity::find()
        .filter(role_locks::Column::TenantId.eq(tenant.clone()))
        .filter(role_locks::Column::UserId.is_in(user_ids.iter().cloned()))
        .all(conn)
        .await
        .map_err(dbx)?;
    for row in lock_rows {
        let info = lock_info(row)?;
        locks.insert(info.user_id, info.roles);
    }
    let mut current: HashMap<String, Effective> = HashMap::new();
    let rows = user_roles::Entity::find()
        .filter(user_roles::Column::TenantId.eq(tenant))
        .filter(user_roles::Column::UserId.is_in(user_ids.iter().cloned()))
        .all(conn)
        .await
        .map_err(dbx)?;
    for row in rows {
        let effective = parse_effective(&row.effective, &row.user_id)?;
        current.insert(row.user_id, effective);
    }
    Ok(Inputs {
        groups,
        locks,
        current,
    })
}

/// The groups each of `user_ids` is a direct member of, as evaluation
/// needs them: one query (the member-first covering index).
pub(crate) async fn groups_of(
    store: &TenantStore,
    txn: &impl ConnectionTrait,
    user_ids: &[String],
) -> Result<HashMap<String, Vec<GroupFacts>>, TxError> {
    let tenant = store.tenant.id.to_string();
    let q = crate::directory::groups_of_members(&tenant, user_ids);
    let rows = txn.query_all(&q).await.map_err(dbx)?;
    let mut out: HashMap<String, Vec<GroupFacts>> = HashMap::new();
    for row in rows {
        let member: String = row.try_get("", "member_id").map_err(dbx)?;
        out.entry(member).or_default().push(GroupFacts {
            id: row.try_get("", "id").map_err(dbx)?,
            external_id: row.try_get("", "external_id").map_err(dbx)?,
            display_name: row.try_get("", "display_name").map_err(dbx)?,
        });
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// Tenant-wide work: the recompute job's batches, and dry runs

/// Brings the stored roles of `ids` in line with the current policy: a
/// [`recompute`], or, when the tenant now defines no roles, the removal of
/// their rows (with an event for each user who had a role).
pub(crate) async fn refresh(
    store: &TenantStore,
    txn: &DatabaseTransaction,
    ids: &[String],
) -> Result<Vec<Event>, TxError> {
    match compiled_policy(store, txn).await? {
        Some(policy) => derive(store, txn, &policy, ids.iter().collect()).await,
        None => clear(store, txn, ids).await,
    }
}

async fn clear(
    store: &TenantStore,
    txn: &DatabaseTransaction,
    ids: &[String],
) -> Result<Vec<Event>, TxError> {
    let tenant = store.tenant.id.to_string();
    let mut events = Vec::new();
    for chunk in ids.chunks(CHUNK) {
        let rows = user_roles::Entity::find()
            .filter(user_roles::Column::TenantId.eq(tenant.clone()))
            .filter(user_roles::Column::UserId.is_in(chunk.iter().cloned()))
            .all(txn)
            .await
            .map_err(dbx)?;
        if rows.is_empty() {
            continue;
        }
        for row in &rows {
            let before = parse_effective(&row.effective, &row.user_id)?;
            if differs(Some(&before), None) {
                let after = Effective {
                    roles: Vec::new(),
                    disabled: before.disabled,
                    locked: false,
                };
                events.push(Event::roles_changed(&row.user_id, Some(&before), &after));
            }
        }
        user_roles::Entity::delete_many()
            .filter(user_roles::Column::TenantId.eq(tenant.clone()))
            .filter(user_roles::Column::UserId.is_in(rows.into_iter().map(|r| r.user_id)))
            .exec(txn)
            .await
            .map_err(dbx)?;
    }
    Ok(events)
}

/// Users read per step of a dry run.
const PREVIEW_BATCH: u64 = CHUNK as u64;

pub(crate) async fn preview_role_policy(
    store: &TenantStore,
    policy: Policy,
    sample: usize,
) -> Result<RolePreview> {
    policy
        .validate()
        .map_err(|e| StoreError::InvalidValue(e.to_string()))?;
    let compiled = if policy.roles.is_empty() {
        None
    } else {
        Some(
            policy
                .compile()
                .map_err(|e| StoreError::InvalidValue(e.to_string()))?,
        )
    };
    let conn = &store.inner.conn;
    let tenant = store.tenant.id.to_string();
    let mut preview = RolePreview {
        users: 0,
        changed: 0,
        sample: Vec::new(),
    };
    let mut last = String::new();
    loop {
        let batch: Vec<(String, String, Option<bool>)> = users::Entity::find()
            .select_only()
            .column(users::Column::Id)
            .column(users::Column::UserName)
            .column(users::Column::Active)
            .filter(users::Column::TenantId.eq(tenant.clone()))
            .filter(users::Column::Id.gt(last.clone()))
            .order_by_asc(users::Column::Id)
            .limit(PREVIEW_BATCH)
            .into_tuple()
            .all(conn)
            .await
            .map_err(db)?;
        let Some((id, _, _)) = batch.last() else {
            break;
        };
        last = id.clone();
        let ids: Vec<String> = batch.iter().map(|(id, _, _)| id.clone()).collect();
        let Inputs {
            mut groups,
            mut locks,
            mut current,
        } = load_inputs(store, conn, &ids)
            .await
            .map_err(TxError::into_error)?;
        for (user_id, user_name, active) in batch {
            preview.users += 1;
            let before = current.remove(&user_id);
            let after = compiled.as_ref().map(|p| {
                p.evaluate(&UserFacts {
                    active: active.unwrap_or(true),
                    groups: groups.remove(&user_id).unwrap_or_default(),
                    lock: locks.remove(&user_id).map(|roles| Lock { roles }),
                })
            });
            if differs(before.as_ref(), after.as_ref()) {
                preview.changed += 1;
                if preview.sample.len() < sample {
                    preview.sample.push(PreviewChange {
                        user_id,
                        user_name,
                        before,
                        after,
                    });
                }
            }
        }
    }
    Ok(preview)
}
