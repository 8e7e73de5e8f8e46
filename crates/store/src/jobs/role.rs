//! Tenant-wide role recompute, as a job kind.
//!
//! A change of a tenant's role policy queues a `role_recompute` job
//! (payload `{"policy_version": N}`, coalescing per tenant) in the same
//! transaction, and the handler brings every user's stored roles in line
//! with the policy, in batches of [`BATCH`] users, one write transaction
//! each. Each batch first proves, in its own transaction, that this worker
//! still holds the job (locking the job's row), so the batch of a worker
//! that lost its lease rolls back and changes nothing. A takeover starts
//! again from the first user: a batch is idempotent, so redoing one
//! changes nothing and emits no event twice.

use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, DatabaseTransaction, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use serde_json::json;
use uuid::Uuid;

use super::state::{JobProgress, JobStatus, Outcome};
use super::{Job, JobContext, JobError, JobHandler, JobResult, NewJob, fence};
use crate::db::{TxError, db, dbx};
use crate::entity::users;
use crate::events;
use crate::{Result, StoreError, TenantStore};

/// The kind of a role recompute job.
pub const ROLE_RECOMPUTE: &str = "role_recompute";

/// Users per batch (one write transaction each).
pub(crate) const BATCH: u64 = 2_000;

/// A role recompute job: the role-specific view of a job of kind
/// [`ROLE_RECOMPUTE`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleJob {
    /// The job's id (time-ordered).
    pub id: String,
    /// Its tenant.
    pub tenant_id: Uuid,
    /// Where it is.
    pub status: JobStatus,
    /// The policy version it was queued for.
    pub policy_version: u64,
    /// Users in the tenant when it started.
    pub total: u64,
    /// Users done so far.
    pub processed: u64,
    /// Users whose roles changed (one `user.roles_changed` event each).
    pub changed: u64,
    /// Why it failed (or why its last attempt failed, when retrying).
    pub error: Option<String>,
    /// When it was queued.
    pub created_at: DateTime<Utc>,
    /// When a worker (last) started it.
    pub started_at: Option<DateTime<Utc>>,
    /// When it finished.
    pub finished_at: Option<DateTime<Utc>>,
}

impl TryFrom<Job> for RoleJob {
    type Error = StoreError;

    fn try_from(job: Job) -> Result<RoleJob> {
        let malformed = |what: &str| {
            StoreError::Internal(format!("role job {} has a malformed {what}", job.id))
        };
        if job.kind != ROLE_RECOMPUTE {
            return Err(StoreError::Internal(format!(
                "job {} is not a role recompute job",
                job.id
            )));
        }
        let tenant_id = job.tenant_id.ok_or_else(|| malformed("tenant"))?;
        let policy_version = policy_version(&job.payload).ok_or_else(|| malformed("payload"))?;
        Ok(RoleJob {
            tenant_id,
            status: job.status,
            policy_version,
            total: job.progress.total,
            processed: job.progress.processed,
            changed: job.progress.changed,
            error: job.error,
            created_at: job.created_at,
            started_at: job.started_at,
            finished_at: job.finished_at,
            id: job.id,
        })
    }
}

fn policy_version(payload: &serde_json::Value) -> Option<u64> {
    payload.get("policy_version")?.as_u64()
}

/// Queues a recompute of the tenant for policy `version` in `txn`, or moves
/// the tenant's queued one to it; returns the job's id.
pub(crate) async fn enqueue(
    store: &TenantStore,
    txn: &DatabaseTransaction,
    version: u64,
) -> Result<String, TxError> {
    let job = NewJob::new(ROLE_RECOMPUTE, json!({ "policy_version": version })).coalesce("");
    super::enqueue(&store.inner.options.clock, txn, Some(store.tenant.id), &job).await
}

/// The handler of [`ROLE_RECOMPUTE`] jobs (part of
/// [`super::JobHandlers::builtin`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct RoleRecompute;

/// What one batch transaction did.
enum Step {
    /// Users up to and including this id are done; the counters so far.
    Next(String, JobProgress),
    /// No users left.
    End,
    /// The job is no longer ours; nothing was written.
    Refused(JobError),
}

impl JobHandler for RoleRecompute {
    fn kind(&self) -> &'static str {
        ROLE_RECOMPUTE
    }

    async fn run(&self, ctx: JobContext) -> Result<JobResult, JobError> {
        let Some(store) = ctx.tenant() else {
            return Err(JobError::Permanent(
                "a role recompute job needs a tenant".into(),
            ));
        };
        let tenant = store.tenant.id.to_string();
        let total = users::Entity::find()
            .filter(users::Column::TenantId.eq(tenant.clone()))
            .count(&store.inner.conn)
            .await
            .map_err(db)?;
        let job_id = ctx.job().id.clone();
        let owner = ctx.owner().to_owned();
        let lease = ctx.shared.lease;
        let clock = store.inner.options.clock.clone();
        let mut done = JobProgress {
            total,
            processed: 0,
            changed: 0,
        };
        let mut last = String::new();
        loop {
            // Moved into the transaction, which may run on the writer thread.
            let (tenant, job_id, owner, clock) =
                (tenant.clone(), job_id.clone(), owner.clone(), clock.clone());
            let step = write_txn!(store.inner, [store], [last, tenant, job_id, owner, clock], txn => {
                // First, and holding the job's row until commit: is the job
                // still ours? A takeover or cancel waits for this batch or
                // wins before it; never both.
                let alive = Outcome::Heartbeat { owner: owner.clone(), lease };
                if let Err(refused) = fence(txn, job_id, &alive, clock).await? {
                    return Ok(Step::Refused(refused));
                }
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
                let Some(next) = ids.last().cloned() else {
                    return Ok(Step::End);
                };
                let events = crate::roles::refresh(store, txn, &ids).await?;
                let progress = JobProgress {
                    total: done.total,
                    processed: done.processed + ids.len() as u64,
                    changed: done.changed + events.len() as u64,
                };
                events::write(store, txn, events).await?;
                let report = Outcome::Progress { owner: owner.clone(), lease, progress };
                if let Err(refused) = fence(txn, job_id, &report, clock).await? {
                    // Cannot happen with the row locked; if it did, the
                    // error rolls the batch back.
                    return Err(TxError::Fail(StoreError::Internal(format!(
                        "job {job_id}: progress refused after the batch: {refused}"
                    ))));
                }
                Ok(Step::Next(next, progress))
            })?;
            match step {
                Step::Next(next, progress) => {
                    last = next;
                    done = progress;
                }
                Step::End => break,
                Step::Refused(e) => {
                    ctx.shared
                        .lost
                        .store(true, std::sync::atomic::Ordering::Relaxed);
                    return Err(e);
                }
            }
        }
        // An empty tenant still reports its (zero) total.
        ctx.progress(done).await?;
        Ok(JobResult {
            summary: Some(json!({ "users": done.processed, "changed": done.changed })),
        })
    }
}
