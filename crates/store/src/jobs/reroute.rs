//! Re-routing a super tenant's directory after its routing rules change,
//! as a job kind.
//!
//! Storing new rules queues a `routing_reroute` job (payload
//! `{"routing_version": N}`, coalescing per tenant) in the same
//! transaction. The handler walks the super tenant's users, then its
//! groups, in id order and in batches, one write transaction each, making
//! the same decisions a SCIM write makes (`copies`): copies created,
//! reactivated, deactivated or deleted, group copies made or removed and
//! their members set to those routed there. Each batch first proves that
//! this worker still holds the job, as the role recompute does; a batch
//! is idempotent, so a takeover that redoes one changes nothing twice. The
//! summary counts, per child, what entered and left, as a dry run does.

use std::collections::BTreeMap;

use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect};
use serde_json::json;

use super::state::{JobProgress, Outcome};
use super::{JobContext, JobError, JobHandler, JobResult, NewJob, fence};
use crate::copies::{self, ChildMoves};
use crate::db::{TxError, db, dbx};
use crate::entity::{groups, users};
use crate::{Result, StoreError};

/// The kind of a re-route job.
pub const ROUTING_REROUTE: &str = "routing_reroute";

/// Users per batch. Larger batches commit (and checkpoint) less often: a
/// re-route of 20,000 users to 50 children took 17.4 s in batches of
/// 500, 13.0 s of 1,000 and 11.4 s of 2,000 (docs/benchmarks.md); but on
/// SQLite a batch holds the one writer, so SCIM writes wait for it (about
/// half a second at 1,000).
const USER_BATCH: u64 = 1_000;
/// Groups per batch (each may carry many members).
const GROUP_BATCH: u64 = 20;

/// Queues a re-route of super tenant `store` for routing `version` in
/// `txn`, or moves its queued one to it; returns the job's id.
pub(crate) async fn enqueue(
    clock: &std::sync::Arc<dyn super::Clock>,
    txn: &sea_orm::DatabaseTransaction,
    tenant: uuid::Uuid,
    version: u64,
) -> Result<String, TxError> {
    let job = NewJob::new(ROUTING_REROUTE, json!({ "routing_version": version })).coalesce("");
    super::enqueue(clock, txn, Some(tenant), &job).await
}

/// The handler of [`ROUTING_REROUTE`] jobs (part of
/// [`super::JobHandlers::builtin`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct Reroute;

/// Which resources a batch walks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Users,
    Groups,
}

enum Step {
    Next(String, JobProgress, Vec<copies::Routed>),
    End,
    Refused(JobError),
}

impl JobHandler for Reroute {
    fn kind(&self) -> &'static str {
        ROUTING_REROUTE
    }

    async fn run(&self, ctx: JobContext) -> Result<JobResult, JobError> {
        let Some(store) = ctx.tenant() else {
            return Err(JobError::Permanent("a re-route job needs a tenant".into()));
        };
        let tenant = store.tenant.id.to_string();
        let conn = &store.inner.conn;
        let user_count = users::Entity::find()
            .filter(users::Column::TenantId.eq(tenant.clone()))
            .count(conn)
            .await
            .map_err(db)?;
        let group_count = groups::Entity::find()
            .filter(groups::Column::TenantId.eq(tenant.clone()))
            .count(conn)
            .await
            .map_err(db)?;
        let job_id = ctx.job().id.clone();
        let owner = ctx.owner().to_owned();
        let lease = ctx.shared.lease;
        let clock = store.inner.options.clock.clone();
        let mut done = JobProgress {
            total: user_count + group_count,
            processed: 0,
            changed: 0,
        };
        let mut moves: BTreeMap<String, ChildMoves> = BTreeMap::new();
        for phase in [Phase::Users, Phase::Groups] {
            let mut last = String::new();
            loop {
                let (tenant, job_id, owner, clock) =
                    (tenant.clone(), job_id.clone(), owner.clone(), clock.clone());
                let step = write_txn!(store.inner, [store], [last, tenant, job_id, owner, clock], txn => {
                    let alive = Outcome::Heartbeat { owner: owner.clone(), lease };
                    if let Err(refused) = fence(txn, job_id, &alive, clock).await? {
                        return Ok(Step::Refused(refused));
                    }
                    let ids: Vec<String> = match phase {
                        Phase::Users => users::Entity::find()
                            .select_only()
                            .column(users::Column::Id)
                            .filter(users::Column::TenantId.eq(tenant.clone()))
                            .filter(users::Column::Id.gt(last.clone()))
                            .order_by_asc(users::Column::Id)
                            .limit(USER_BATCH)
                            .into_tuple()
                            .all(txn)
                            .await
                            .map_err(dbx)?,
                        Phase::Groups => groups::Entity::find()
                            .select_only()
                            .column(groups::Column::Id)
                            .filter(groups::Column::TenantId.eq(tenant.clone()))
                            .filter(groups::Column::Id.gt(last.clone()))
                            .order_by_asc(groups::Column::Id)
                            .limit(GROUP_BATCH)
                            .into_tuple()
                            .all(txn)
                            .await
                            .map_err(dbx)?,
                    };
                    let Some(next) = ids.last().cloned() else {
                        return Ok(Step::End);
                    };
                    let routed = match phase {
                        Phase::Users => copies::reroute(store, txn, &ids, &[]).await?,
                        Phase::Groups => copies::reroute(store, txn, &[], &ids).await?,
                    };
                    let progress = JobProgress {
                        total: done.total,
                        processed: done.processed + ids.len() as u64,
                        changed: done.changed + routed.len() as u64,
                    };
                    let report = Outcome::Progress { owner: owner.clone(), lease, progress };
                    if let Err(refused) = fence(txn, job_id, &report, clock).await? {
                        return Err(TxError::Fail(StoreError::Internal(format!(
                            "job {job_id}: progress refused after the batch: {refused}"
                        ))));
                    }
                    Ok(Step::Next(next, progress, routed))
                })?;
                match step {
                    Step::Next(next, progress, routed) => {
                        last = next;
                        done = progress;
                        copies::tally(&routed, &mut moves);
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
        }
        ctx.progress(done).await?;
        let children: Vec<serde_json::Value> = moves
            .into_values()
            .map(|m| {
                json!({
                    "child": m.child,
                    "usersEntering": m.users_entering,
                    "usersLeaving": m.users_leaving,
                    "groupsEntering": m.groups_entering,
                    "groupsLeaving": m.groups_leaving,
                })
            })
            .collect();
        Ok(JobResult {
            summary: Some(json!({
                "users": user_count,
                "groups": group_count,
                "changed": done.changed,
                "children": children,
            })),
        })
    }
}
