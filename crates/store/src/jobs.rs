//! Tenant-wide role recompute jobs.
//!
//! A change of a tenant's role policy queues a job in the same transaction
//! (so a committed change always has its job), and the worker
//! ([`crate::Store::run_role_worker`]) brings every user's stored roles in
//! line with it, in batches of [`BATCH`] users, one write transaction each.
//! Each batch records progress and a heartbeat; a job whose heartbeat is
//! older than [`STALE`] (its process died) is taken over by the next
//! worker, which starts it again from the first user: a batch is
//! idempotent, so redoing one changes nothing and emits no event twice.
//!
//! Jobs coalesce: a change made while the tenant already has a queued job
//! moves that job to the new policy version instead of queueing another.
//! A change made while a job runs queues a new one, and the running job
//! picks up the new policy from its next batch anyway.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, DatabaseTransaction, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect,
};
use uuid::Uuid;

use crate::db::{Inner, TxError, db, dbx, now};
use crate::entity::{role_jobs, users};
use crate::events;
use crate::{JobStatus, Result, RoleJob, Store, StoreError, TenantStore};

/// Users per batch (one write transaction each).
pub(crate) const BATCH: u64 = 2_000;

/// How long a running job may go without a heartbeat before another
/// worker takes it over.
const STALE: Duration = Duration::from_secs(60);

fn job_from_row(row: role_jobs::Model) -> Result<RoleJob> {
    let status = match row.status.as_str() {
        "queued" => JobStatus::Queued,
        "running" => JobStatus::Running,
        "done" => JobStatus::Done,
        "failed" => JobStatus::Failed,
        other => {
            return Err(StoreError::Internal(format!(
                "role job {} has an unknown status {other:?}",
                row.id
            )));
        }
    };
    let tenant_id = Uuid::parse_str(&row.tenant_id)
        .map_err(|_| StoreError::Internal(format!("role job {} has a malformed tenant", row.id)))?;
    let count = |v: i64| u64::try_from(v).unwrap_or(0);
    Ok(RoleJob {
        id: row.id,
        tenant_id,
        status,
        policy_version: count(row.policy_version),
        total: count(row.total),
        processed: count(row.processed),
        changed: count(row.changed),
        error: row.error,
        created_at: row.created_at,
        started_at: row.started_at,
        finished_at: row.finished_at,
    })
}

/// Queues a recompute of the tenant for policy `version`, or moves the
/// tenant's queued job to it; returns the job's id.
pub(crate) async fn enqueue(
    store: &TenantStore,
    txn: &DatabaseTransaction,
    version: u64,
) -> Result<String, TxError> {
    let tenant = store.tenant.id.to_string();
    let version = i64::try_from(version)
        .map_err(|_| StoreError::Internal("role policy version overflow".into()))?;
    let queued: Vec<String> = role_jobs::Entity::find()
        .select_only()
        .column(role_jobs::Column::Id)
        .filter(role_jobs::Column::TenantId.eq(tenant.clone()))
        .filter(role_jobs::Column::Status.eq(JobStatus::Queued.as_str()))
        .into_tuple()
        .all(txn)
        .await
        .map_err(dbx)?;
    if let Some(id) = queued.into_iter().next() {
        role_jobs::Entity::update_many()
            .col_expr(role_jobs::Column::PolicyVersion, Expr::value(version))
            .filter(role_jobs::Column::Id.eq(id.clone()))
            .exec(txn)
            .await
            .map_err(dbx)?;
        return Ok(id);
    }
    // v7: ids sort by creation time, which is the queue's order.
    let id = Uuid::now_v7().to_string();
    role_jobs::Entity::insert(role_jobs::ActiveModel {
        id: Set(id.clone()),
        tenant_id: Set(tenant),
        status: Set(JobStatus::Queued.as_str().to_owned()),
        policy_version: Set(version),
        total: Set(0),
        processed: Set(0),
        changed: Set(0),
        error: Set(None),
        created_at: Set(now()),
        started_at: Set(None),
        finished_at: Set(None),
        heartbeat_at: Set(None),
    })
    .exec_without_returning(txn)
    .await
    .map_err(dbx)?;
    Ok(id)
}

/// Jobs a worker may take: queued ones, and running ones whose process
/// stopped sending heartbeats.
fn claimable(cutoff: DateTime<Utc>) -> Condition {
    Condition::any()
        .add(role_jobs::Column::Status.eq(JobStatus::Queued.as_str()))
        .add(
            Condition::all()
                .add(role_jobs::Column::Status.eq(JobStatus::Running.as_str()))
                .add(role_jobs::Column::HeartbeatAt.lt(cutoff)),
        )
}

fn stale_cutoff() -> DateTime<Utc> {
    let stale = chrono::Duration::from_std(STALE).unwrap_or(chrono::Duration::seconds(60));
    now() - stale
}

/// Claims the oldest claimable job, if any.
async fn claim(inner: &Inner) -> Result<Option<role_jobs::Model>> {
    let candidates = role_jobs::Entity::find()
        .filter(claimable(stale_cutoff()))
        .order_by_asc(role_jobs::Column::Id)
        .limit(8)
        .all(&inner.conn)
        .await
        .map_err(db)?;
    for candidate in candidates {
        let id = candidate.id.clone();
        let claimed = write_txn!(inner, [], [id], txn => {
            let at = now();
            let updated = role_jobs::Entity::update_many()
                .col_expr(role_jobs::Column::Status, Expr::value(JobStatus::Running.as_str()))
                .col_expr(role_jobs::Column::StartedAt, Expr::value(at))
                .col_expr(role_jobs::Column::HeartbeatAt, Expr::value(at))
                .col_expr(role_jobs::Column::Processed, Expr::value(0i64))
                .col_expr(role_jobs::Column::Changed, Expr::value(0i64))
                .filter(role_jobs::Column::Id.eq(id.clone()))
                .filter(claimable(stale_cutoff()))
                .exec(txn)
                .await
                .map_err(dbx)?;
            Ok(updated.rows_affected == 1)
        })?;
        if claimed {
            return Ok(Some(candidate));
        }
    }
    Ok(None)
}

/// Runs the oldest claimable job to its end; `None` when there was none.
pub(crate) async fn run_next(store: &Store) -> Result<Option<RoleJob>> {
    let inner = &store.inner;
    let Some(row) = claim(inner).await? else {
        return Ok(None);
    };
    let id = row.id.clone();
    let outcome = match crate::admin::tenant_by_id(inner, parse_tenant(&row)?).await? {
        // Deleted meanwhile: its jobs went with it.
        None => return Ok(None),
        Some(tenant) => run(&store.tenant(&tenant), &id).await,
    };
    let (status, error) = match &outcome {
        Ok(()) => (JobStatus::Done, None),
        Err(e) => {
            tracing::warn!(job = %id, error = %e, "role recompute job failed");
            (JobStatus::Failed, Some(e.to_string()))
        }
    };
    let finished = id.clone();
    write_txn!(inner, [], [finished, error], txn => {
        role_jobs::Entity::update_many()
            .col_expr(role_jobs::Column::Status, Expr::value(status.as_str()))
            .col_expr(role_jobs::Column::Error, Expr::value(error.clone()))
            .col_expr(role_jobs::Column::FinishedAt, Expr::value(now()))
            .filter(role_jobs::Column::Id.eq(finished.clone()))
            .exec(txn)
            .await
            .map_err(dbx)?;
        Ok(())
    })?;
    job(inner, &id).await.map(Some)
}

fn parse_tenant(row: &role_jobs::Model) -> Result<Uuid> {
    Uuid::parse_str(&row.tenant_id)
        .map_err(|_| StoreError::Internal(format!("role job {} has a malformed tenant", row.id)))
}

/// Walks the tenant's users in id order, one batch per transaction.
async fn run(store: &TenantStore, job_id: &str) -> Result<()> {
    let tenant = store.tenant.id.to_string();
    let total = users::Entity::find()
        .filter(users::Column::TenantId.eq(tenant.clone()))
        .count(&store.inner.conn)
        .await
        .map_err(db)?;
    let total = i64::try_from(total).unwrap_or(i64::MAX);
    let mut last = String::new();
    loop {
        let tenant = tenant.clone();
        let step = write_txn!(store.inner, [store, job_id], [last, tenant], txn => {
            let ids: Vec<String> = users::Entity::find()
                .select_only()
                .column(users::Column::Id)
                .filter(users::Column::TenantId.eq(tenant.clone()))
                .filter(users::Column::Id.gt(last.clone()))
                .order_by_asc(users::Column::Id)
                .limit(BATCH)
                .into_tuple()
                .all(txn)
                .await
                .map_err(dbx)?;
            let events = crate::roles::refresh(store, txn, &ids).await?;
            let changed = i64::try_from(events.len()).unwrap_or(i64::MAX);
            let processed = i64::try_from(ids.len()).unwrap_or(i64::MAX);
            events::write(store, txn, events).await?;
            role_jobs::Entity::update_many()
                .col_expr(role_jobs::Column::Total, Expr::value(total))
                .col_expr(
                    role_jobs::Column::Processed,
                    Expr::col(role_jobs::Column::Processed).add(processed),
                )
                .col_expr(
                    role_jobs::Column::Changed,
                    Expr::col(role_jobs::Column::Changed).add(changed),
                )
                .col_expr(role_jobs::Column::HeartbeatAt, Expr::value(now()))
                .filter(role_jobs::Column::Id.eq(job_id.clone()))
                .exec(txn)
                .await
                .map_err(dbx)?;
            Ok(ids.last().cloned())
        })?;
        match step {
            Some(next) => last = next,
            None => return Ok(()),
        }
    }
}

async fn job(inner: &Inner, id: &str) -> Result<RoleJob> {
    let row = role_jobs::Entity::find_by_id(id.to_owned())
        .one(&inner.conn)
        .await
        .map_err(db)?
        .ok_or_else(|| StoreError::NotFound(format!("role job {id}")))?;
    job_from_row(row)
}

pub(crate) async fn tenant_job(store: &TenantStore, id: &str) -> Result<RoleJob> {
    let row = role_jobs::Entity::find_by_id(id.to_owned())
        .filter(role_jobs::Column::TenantId.eq(store.tenant.id.to_string()))
        .one(&store.inner.conn)
        .await
        .map_err(db)?
        .ok_or_else(|| StoreError::NotFound(format!("role job {id}")))?;
    job_from_row(row)
}

pub(crate) async fn tenant_jobs(store: &TenantStore, limit: u64) -> Result<Vec<RoleJob>> {
    role_jobs::Entity::find()
        .filter(role_jobs::Column::TenantId.eq(store.tenant.id.to_string()))
        .order_by_desc(role_jobs::Column::Id)
        .limit(limit.clamp(1, 100))
        .all(&store.inner.conn)
        .await
        .map_err(db)?
        .into_iter()
        .map(job_from_row)
        .collect()
}

/// Runs jobs until `stop` turns true: at once when this process queued
/// one, else at the next poll (jobs queued by another process, or left by
/// one that died).
pub(crate) async fn worker(store: Store, mut stop: tokio::sync::watch::Receiver<bool>) {
    const POLL: Duration = Duration::from_secs(1);
    loop {
        if *stop.borrow() {
            return;
        }
        let idle = match run_next(&store).await {
            Ok(Some(job)) => {
                tracing::info!(
                    job = %job.id,
                    tenant = %job.tenant_id,
                    users = job.processed,
                    changed = job.changed,
                    "role recompute job finished"
                );
                false
            }
            Ok(None) => true,
            Err(e) => {
                tracing::warn!(error = %e, "role recompute worker: cannot run jobs");
                true
            }
        };
        if idle {
            tokio::select! {
                _ = store.inner.role_jobs.notified() => {}
                _ = tokio::time::sleep(POLL) => {}
                changed = stop.changed() => {
                    // The sender is gone: nobody can stop us any more, so
                    // this is shutdown too.
                    if changed.is_err() {
                        return;
                    }
                }
            }
        }
    }
}
