//! Re-routing a super tenant's directory after its routing rules change,
//! as a job kind.
//!
//! Storing new rules queues a `routing_reroute` job (payload
//! `{"routing_version": N}`, coalescing per tenant) in the same
//! transaction. The handler walks the super tenant's users, then its
//! groups, in id order and in batches, one write transaction each, making
//! the same decisions a SCIM write makes (`copies`): copies created,
//! reactivated, deactivated or deleted, group copies made or removed and
//! their members set to those routed there. Batches are fenced by the
//! job's lease as the role recompute's are (`super::batches`); a batch
//! is idempotent, so a takeover that redoes one changes nothing twice. The
//! summary counts, per child, what entered and left, as a dry run does.

use std::collections::BTreeMap;

use sea_orm::{ColumnTrait, DatabaseTransaction, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::json;

use super::batches::{BatchBody, Walk, in_batches};
use super::state::JobProgress;
use super::{JobContext, JobError, JobHandler, JobResult, NewJob};
use crate::copies::{self, ChildMoves};
use crate::db::{TxError, db};
use crate::entity::{groups, users};
use crate::writer::TxFuture;
use crate::{Result, TenantStore};

/// The kind of a re-route job.
pub const ROUTING_REROUTE: &str = "routing_reroute";

/// Users per batch. On SQLite a batch holds the one writer, so SCIM
/// writes wait for it (about 0.4 s at 1,000 users). Larger batches once
/// paid off by committing and checkpointing less often (a 20,000-user
/// re-route to 50 children took 17.4 s in batches of 500, 13.0 s of 1,000
/// and 11.4 s of 2,000), but with checkpoints off the writer's thread
/// 2,000 no longer gains (7.05 s against 6.8-7.3 s; docs/benchmarks.md).
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

/// A batch of users: each routed under the current rules.
fn users_batch<'t>(
    store: &'t TenantStore,
    txn: &'t DatabaseTransaction,
    ids: &'t [String],
) -> TxFuture<'t, (u64, Vec<copies::Routed>)> {
    Box::pin(async move {
        let routed = copies::reroute(store, txn, ids, &[]).await?;
        Ok((routed.len() as u64, routed))
    })
}

/// A batch of groups: each copied where its rules route it, with the
/// members routed there.
fn groups_batch<'t>(
    store: &'t TenantStore,
    txn: &'t DatabaseTransaction,
    ids: &'t [String],
) -> TxFuture<'t, (u64, Vec<copies::Routed>)> {
    Box::pin(async move {
        let routed = copies::reroute(store, txn, &[], ids).await?;
        Ok((routed.len() as u64, routed))
    })
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
        let mut done = JobProgress {
            total: user_count + group_count,
            processed: 0,
            changed: 0,
        };
        let mut moves: BTreeMap<String, ChildMoves> = BTreeMap::new();
        for (walk, size, body) in [
            (Walk::Users, USER_BATCH, users_batch as BatchBody<_>),
            (Walk::Groups, GROUP_BATCH, groups_batch),
        ] {
            in_batches(&ctx, store, walk, size, &mut done, body, |routed| {
                copies::tally(&routed, &mut moves)
            })
            .await?;
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
