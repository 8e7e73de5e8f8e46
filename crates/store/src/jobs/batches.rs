//! The batch loop of jobs that walk a tenant's users or groups: one place
//! for how a batch proves the job is still this worker's, reports its
//! progress, and stops when the job was lost.
//!
//! Each batch is one write transaction. It first fences the job's row
//! with a heartbeat (is the job still ours? a takeover or a cancel waits
//! for this batch or wins before it, never both), then reads the next ids
//! after the last batch's, runs the kind's body over them, and records
//! the progress in the same transaction, so a batch and its progress
//! commit together or not at all.

use sea_orm::{
    ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};

use super::state::{JobProgress, Outcome};
use super::{JobContext, JobError, fence};
use crate::StoreError;
use crate::TenantStore;
use crate::db::{TxError, dbx};
use crate::entity::{groups, users};
use crate::writer::TxFuture;

/// Which of a tenant's resources a batch walks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Walk {
    Users,
    Groups,
}

/// The work of one batch over `ids` (in id order) in the batch's
/// transaction: how many of them changed, and what the caller collects.
pub(crate) type BatchBody<T> =
    for<'t> fn(&'t TenantStore, &'t DatabaseTransaction, &'t [String]) -> TxFuture<'t, (u64, T)>;

/// What one batch transaction did.
enum Step<T> {
    /// Ids up to and including this one are done; the counters so far.
    Next(String, JobProgress, T),
    /// No ids left.
    End,
    /// The job is no longer ours; nothing was written.
    Refused(JobError),
}

/// Runs `body` over all of the job's tenant's `walk`, `size` ids per
/// batch, adding to `done` and handing each committed batch's output to
/// `collect`. A lost job ends with its refusal (and marks the context
/// lost, so the runner records nothing more).
pub(crate) async fn in_batches<T: Send + 'static>(
    ctx: &JobContext,
    store: &TenantStore,
    walk: Walk,
    size: u64,
    done: &mut JobProgress,
    body: BatchBody<T>,
    mut collect: impl FnMut(T),
) -> Result<(), JobError> {
    let tenant = store.tenant.id.to_string();
    let job_id = ctx.job().id.clone();
    let owner = ctx.owner().to_owned();
    let lease = ctx.shared.lease;
    let clock = store.inner.options.clock.clone();
    let mut last = String::new();
    loop {
        let so_far = *done;
        // Moved into the transaction, which may run on the writer thread.
        let (tenant, job_id, owner, clock) =
            (tenant.clone(), job_id.clone(), owner.clone(), clock.clone());
        let step = write_txn!(store.inner, [store], [last, tenant, job_id, owner, clock], txn => {
            let alive = Outcome::Heartbeat { owner: owner.clone(), lease };
            if let Err(refused) = fence(txn, job_id, &alive, clock).await? {
                return Ok(Step::Refused(refused));
            }
            let ids = next_ids(txn, walk, tenant, last, size).await?;
            let Some(next) = ids.last().cloned() else {
                return Ok(Step::End);
            };
            let (changed, out) = body(store, txn, &ids).await?;
            let progress = JobProgress {
                total: so_far.total,
                processed: so_far.processed + ids.len() as u64,
                changed: so_far.changed + changed,
            };
            let report = Outcome::Progress { owner: owner.clone(), lease, progress };
            if let Err(refused) = fence(txn, job_id, &report, clock).await? {
                // Cannot happen with the row locked; if it did, the error
                // rolls the batch back.
                return Err(TxError::Fail(StoreError::Internal(format!(
                    "job {job_id}: progress refused after the batch: {refused}"
                ))));
            }
            Ok(Step::Next(next, progress, out))
        })?;
        match step {
            Step::Next(next, progress, out) => {
                last = next;
                *done = progress;
                collect(out);
            }
            Step::End => return Ok(()),
            Step::Refused(e) => {
                ctx.shared
                    .lost
                    .store(true, std::sync::atomic::Ordering::Relaxed);
                return Err(e);
            }
        }
    }
}

/// The ids of the next batch: up to `size` of `walk` after `last`.
async fn next_ids(
    txn: &DatabaseTransaction,
    walk: Walk,
    tenant: &str,
    last: &str,
    size: u64,
) -> Result<Vec<String>, TxError> {
    let ids = match walk {
        Walk::Users => {
            users::Entity::find()
                .select_only()
                .column(users::Column::Id)
                .filter(users::Column::TenantId.eq(tenant))
                .filter(users::Column::Id.gt(last))
                .order_by_asc(users::Column::Id)
                .limit(size)
                .into_tuple()
                .all(txn)
                .await
        }
        Walk::Groups => {
            groups::Entity::find()
                .select_only()
                .column(groups::Column::Id)
                .filter(groups::Column::TenantId.eq(tenant))
                .filter(groups::Column::Id.gt(last))
                .order_by_asc(groups::Column::Id)
                .limit(size)
                .into_tuple()
                .all(txn)
                .await
        }
    };
    ids.map_err(dbx)
}
