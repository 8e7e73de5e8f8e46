//! Tenant-wide role recompute, as a job kind.
//!
//! A change of a tenant's role policy queues a `role_recompute` job
//! (payload `{"policy_version": N}`, coalescing per tenant) in the same
//! transaction, and the handler brings every user's stored roles in line
//! with the policy, in batches of [`BATCH`] users, one write transaction
//! each (`super::batches`: the batch of a worker that lost its lease
//! rolls back and changes nothing). A takeover starts
//! again from the first user: a batch is idempotent, so redoing one
//! changes nothing and emits no event twice.

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, DatabaseTransaction, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::json;
use uuid::Uuid;

use super::batches::{Walk, in_batches};
use super::state::{JobProgress, JobStatus};
use super::{Job, JobContext, JobError, JobHandler, JobResult, NewJob};
use crate::db::{TxError, db};
use crate::entity::users;
use crate::events;
use crate::writer::TxFuture;
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

/// One batch: each user's roles brought in line with the policy, one
/// `user.roles_changed` event per user whose roles changed.
fn refresh_batch<'t>(
    store: &'t TenantStore,
    txn: &'t DatabaseTransaction,
    ids: &'t [String],
) -> TxFuture<'t, (u64, ())> {
    Box::pin(async move {
        let events = crate::roles::refresh(store, txn, ids).await?;
        let changed = events.len() as u64;
        events::write(store, txn, events).await?;
        Ok((changed, ()))
    })
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
        let mut done = JobProgress {
            total,
            processed: 0,
            changed: 0,
        };
        in_batches(
            &ctx,
            store,
            Walk::Users,
            BATCH,
            &mut done,
            refresh_batch,
            |()| {},
        )
        .await?;
        // An empty tenant still reports its (zero) total.
        ctx.progress(done).await?;
        Ok(JobResult {
            summary: Some(json!({ "users": done.processed, "changed": done.changed })),
        })
    }
}
