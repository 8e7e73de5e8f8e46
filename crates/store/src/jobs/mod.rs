//! Durable background jobs: one table (`jobs`), one state machine
//! ([`state::next`]), one runner, and handlers per kind.
//!
//! **Queueing.** A job is a row of some `kind` (`role_recompute`, later
//! `reconcile`, ...) with a JSON payload, written in the caller's
//! transaction when there is one (a role policy change and its recompute
//! job commit together, so no committed change is left unapplied by a
//! crash). A job may name a *coalescing key* (stored as
//! `<kind>:<tenant>[:<scope>]`, so that two tenants or two kinds never
//! share one): while a job of that key is queued, queueing another updates
//! the queued job's payload instead. A job that is already running does
//! not coalesce: a request made while it runs queues a new job, which runs
//! after it. At most one queued job per key is enforced by a partial
//! unique index, so two processes racing to queue cannot make two. Role
//! recompute uses this: two policy changes before a worker gets to them
//! make one job for the later version; a change while a job runs queues a
//! new one (the running job also picks up the new policy from its next
//! batch, but only the new job is guaranteed to have seen all of it).
//!
//! **Claiming and leases.** A worker ([`JobWorker`], one id per worker)
//! claims the oldest due job of a kind it has a handler for, taking a
//! lease: `lease_owner` = its id, `lease_expires_at` = now + lease. While
//! the handler runs, a heartbeat task extends the lease every lease/3,
//! whatever the handler is doing. Every write the holder makes (heartbeat,
//! progress, completion, and for role recompute each batch's work, in the
//! batch's own transaction) first passes [`state::next`] against the row
//! as it is now, locked: a worker that no longer holds the job is refused,
//! writes nothing, and stops. A running job whose lease ended (its process
//! died or stalled) is claimable by any worker: the takeover expires the
//! lease and claims again in one transaction. `attempts` counts claims.
//!
//! **Retries.** A handler's retryable failure puts the job back in the
//! queue with `run_after` = now + [`state::backoff`] (10 s doubling to at
//! most 10 min) until `max_attempts` claims were made; then it fails for
//! good. A takeover also counts as an attempt, so a job that kills its
//! worker each time fails after `max_attempts` too.
//!
//! **Time** comes from the store's [`Clock`] (`StoreOptions::clock`), so
//! tests move time instead of sleeping.

mod batches;
mod clock;
#[cfg(test)]
mod migration_tests;
mod reroute;
mod role;
pub(crate) mod state;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, SubsecRound, TimeDelta, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, DatabaseTransaction, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use serde_json::Value;
use uuid::Uuid;

use crate::db::{Inner, TxError, db, dbx};
use crate::entity::jobs;
use crate::{Result, Store, StoreError, TenantStore};

pub use clock::{Clock, ManualClock, SystemClock};
pub(crate) use reroute::enqueue as enqueue_reroute;
pub use reroute::{ROUTING_REROUTE, Reroute};
pub(crate) use role::enqueue as enqueue_role_recompute;
pub use role::{ROLE_RECOMPUTE, RoleJob, RoleRecompute};
pub use state::{JobProgress, JobStatus};
use state::{JobState, Outcome, Refused};

/// Attempts a job gets unless its [`NewJob`] says otherwise.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;

/// How often an idle worker looks for jobs queued by other processes (or
/// left by ones that died); jobs this process queues wake it at once.
const POLL: Duration = Duration::from_secs(1);

/// Candidates a claim looks at per round (others may take some first).
const CLAIM_CANDIDATES: u64 = 8;

/// A job, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// Time-ordered id (UUID v7).
    pub id: String,
    /// The tenant it works on, if any.
    pub tenant_id: Option<Uuid>,
    /// Which handler runs it (`role_recompute`, ...).
    pub kind: String,
    /// The kind's input.
    pub payload: Value,
    /// Where it is.
    pub status: JobStatus,
    /// Claims so far (a takeover counts as one).
    pub attempts: u32,
    /// Claims it may have before a failure is final.
    pub max_attempts: u32,
    /// When it may (next) be claimed.
    pub run_after: DateTime<Utc>,
    /// The worker that holds it (running) or held it last.
    pub lease_owner: Option<String>,
    /// While running: when the holder's lease ends unless extended.
    pub lease_expires_at: Option<DateTime<Utc>>,
    /// The holder's last sign of life.
    pub heartbeat_at: Option<DateTime<Utc>>,
    /// Counters of the current (or last) attempt.
    pub progress: JobProgress,
    /// The kind's summary of a finished job.
    pub result: Option<Value>,
    /// Why the last attempt failed.
    pub error: Option<String>,
    /// When it was queued.
    pub created_at: DateTime<Utc>,
    /// When its current (or last) attempt started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
    /// Its coalescing key, if it has one.
    pub coalesce_key: Option<String>,
}

/// A job to queue.
#[derive(Debug, Clone, PartialEq)]
pub struct NewJob {
    kind: String,
    payload: Value,
    scope: Option<String>,
    max_attempts: u32,
}

impl NewJob {
    /// A job of `kind` with `payload`, not coalescing, with
    /// [`DEFAULT_MAX_ATTEMPTS`].
    pub fn new(kind: impl Into<String>, payload: Value) -> NewJob {
        NewJob {
            kind: kind.into(),
            payload,
            scope: None,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
        }
    }

    /// Coalesces with a queued job of the same kind, tenant and `scope`
    /// (`""`: one queued job per kind and tenant): queueing then updates
    /// that job's payload instead of adding a job.
    pub fn coalesce(mut self, scope: impl Into<String>) -> NewJob {
        self.scope = Some(scope.into());
        self
    }

    /// How many claims the job may have (at least 1).
    pub fn max_attempts(mut self, n: u32) -> NewJob {
        self.max_attempts = n.max(1);
        self
    }

    fn coalesce_key(&self, tenant: Option<Uuid>) -> Option<String> {
        let scope = self.scope.as_deref()?;
        let tenant = tenant.map_or_else(|| "global".to_owned(), |t| t.to_string());
        Some(if scope.is_empty() {
            format!("{}:{tenant}", self.kind)
        } else {
            format!("{}:{tenant}:{scope}", self.kind)
        })
    }
}

/// What a handler returns when its job is done.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobResult {
    /// A kind-specific summary, stored as the job's `result`.
    pub summary: Option<Value>,
}

/// Why a handler stopped.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// A failure worth another attempt (after backoff).
    #[error("{0}")]
    Retryable(String),
    /// A failure no retry will fix.
    #[error("{0}")]
    Permanent(String),
    /// Another worker holds the job now; this one must stop writing.
    #[error("the job's lease was lost to another worker")]
    LeaseLost,
    /// The job was cancelled.
    #[error("the job was cancelled")]
    Cancelled,
    /// A store operation failed (retryable when the database was
    /// unavailable).
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl JobError {
    /// Whether another attempt may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            JobError::Retryable(_) | JobError::Store(StoreError::Unavailable(_))
        )
    }
}

/// Runs the jobs of one kind. Implemented by the store for its own kinds
/// (role recompute) and by other crates for theirs; register it in a
/// [`JobHandlers`] and give that to [`Store::run_jobs`].
pub trait JobHandler: Send + Sync + 'static {
    /// The kind of job it runs (the `kind` of [`NewJob::new`]).
    fn kind(&self) -> &'static str;

    /// Does the job's work. Report counters with [`JobContext::progress`];
    /// stop when a `JobContext` call returns [`JobError::LeaseLost`] or
    /// [`JobError::Cancelled`], or when [`JobContext::is_cancelled`] turns
    /// true. The runner records the outcome (done, retry, or failed).
    fn run(&self, ctx: JobContext) -> impl Future<Output = Result<JobResult, JobError>> + Send;
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// [`JobHandler`] made object-safe, so one worker can hold many kinds.
trait DynHandler: Send + Sync {
    fn run(&self, ctx: JobContext) -> BoxFuture<'_, Result<JobResult, JobError>>;
}

impl<H: JobHandler> DynHandler for H {
    fn run(&self, ctx: JobContext) -> BoxFuture<'_, Result<JobResult, JobError>> {
        Box::pin(JobHandler::run(self, ctx))
    }
}

/// The handlers a worker runs, by kind.
#[derive(Clone, Default)]
pub struct JobHandlers {
    by_kind: BTreeMap<&'static str, Arc<dyn DynHandler>>,
}

impl std::fmt::Debug for JobHandlers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.by_kind.keys()).finish()
    }
}

impl JobHandlers {
    /// No handlers.
    pub fn new() -> JobHandlers {
        JobHandlers::default()
    }

    /// The store's own kinds: role recompute and re-routing.
    pub fn builtin() -> JobHandlers {
        JobHandlers::new().with(RoleRecompute).with(Reroute)
    }

    /// Adds (or replaces) the handler of `handler.kind()`.
    pub fn with(mut self, handler: impl JobHandler) -> JobHandlers {
        self.by_kind.insert(handler.kind(), Arc::new(handler));
        self
    }

    /// The kinds these handlers run.
    pub fn kinds(&self) -> Vec<&'static str> {
        self.by_kind.keys().copied().collect()
    }
}

/// A claimed job, as its handler sees it: the job, its tenant, and the
/// writes a holder may make (each refused once the job is no longer held).
#[derive(Clone)]
pub struct JobContext {
    shared: Arc<Held>,
}

struct Held {
    store: Store,
    job: Job,
    tenant: Option<TenantStore>,
    owner: String,
    lease: TimeDelta,
    /// Set once a write was refused: the job is cancelled or taken over.
    lost: AtomicBool,
}

impl std::fmt::Debug for JobContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobContext")
            .field("job", &self.shared.job.id)
            .field("owner", &self.shared.owner)
            .finish_non_exhaustive()
    }
}

impl JobContext {
    /// The job as it was claimed.
    pub fn job(&self) -> &Job {
        &self.shared.job
    }

    /// The job's input.
    pub fn payload(&self) -> &Value {
        &self.shared.job.payload
    }

    /// The directory of the job's tenant (`None` for a job without one).
    pub fn tenant(&self) -> Option<&TenantStore> {
        self.shared.tenant.as_ref()
    }

    /// The id of the worker holding the job.
    pub fn owner(&self) -> &str {
        &self.shared.owner
    }

    /// Whether a write was refused since the claim: the job was cancelled
    /// or another worker took it over. The heartbeat task finds out within
    /// a third of the lease.
    pub fn is_cancelled(&self) -> bool {
        self.shared.lost.load(Ordering::Relaxed)
    }

    /// Extends the lease (the runner's heartbeat task does this anyway).
    pub async fn heartbeat(&self) -> Result<(), JobError> {
        self.apply(Outcome::Heartbeat {
            owner: self.shared.owner.clone(),
            lease: self.shared.lease,
        })
        .await
        .map(|_| ())
    }

    /// Records the counters (and extends the lease).
    pub async fn progress(&self, progress: JobProgress) -> Result<(), JobError> {
        self.apply(Outcome::Progress {
            owner: self.shared.owner.clone(),
            lease: self.shared.lease,
            progress,
        })
        .await
        .map(|_| ())
    }

    /// Records the handler's outcome: done, a retry after backoff, or a
    /// final failure. The runner calls it when the handler returns.
    pub async fn finish(&self, outcome: &Result<JobResult, JobError>) -> Result<Job, JobError> {
        let owner = self.shared.owner.clone();
        let (error, retryable) = match outcome {
            Ok(done) => {
                let row = self
                    .apply(Outcome::Succeeded {
                        owner,
                        result: done.summary.clone(),
                    })
                    .await?;
                return job_of(row).map_err(JobError::Store);
            }
            Err(e) => (e.to_string(), e.is_retryable()),
        };
        let inner = &self.shared.store.inner;
        let id = self.shared.job.id.clone();
        let clock = inner.options.clock.clone();
        let result = write_txn!(inner, [], [id, owner, error, clock], txn => {
            let now = stamp(clock);
            let row = lock_row(txn, id).await?;
            // A retry would be a second queued job of its key, beside one
            // queued while this one ran; that newer job carries the newer
            // payload, so it is the retry.
            let sibling = match (&row.coalesce_key, retryable) {
                (Some(key), true) => queued_with_key(txn, key, Some(id.as_str())).await?,
                _ => None,
            };
            let outcome = match sibling {
                Some(other) => Outcome::Failed {
                    owner: owner.clone(),
                    error: format!("{error} (not retried: queued job {other} replaces it)"),
                    retryable: false,
                },
                None => Outcome::Failed {
                    owner: owner.clone(),
                    error: error.clone(),
                    retryable,
                },
            };
            transition(txn, row, |s| state::next(s, &outcome, now)).await
        })?;
        self.settle(result)
            .and_then(|row| job_of(row).map_err(JobError::Store))
    }

    async fn apply(&self, outcome: Outcome) -> Result<jobs::Model, JobError> {
        let inner = &self.shared.store.inner;
        let id = self.shared.job.id.clone();
        let clock = inner.options.clock.clone();
        let result = write_txn!(inner, [], [id, outcome, clock], txn => {
            let now = stamp(clock);
            let row = lock_row(txn, id).await?;
            transition(txn, row, |s| state::next(s, outcome, now)).await
        })?;
        self.settle(result)
    }

    /// A refused write means the job is no longer ours: remember it.
    fn settle(&self, result: Result<jobs::Model, Refused>) -> Result<jobs::Model, JobError> {
        result.map_err(|refused| {
            self.shared.lost.store(true, Ordering::Relaxed);
            refusal(refused)
        })
    }
}

fn refusal(refused: Refused) -> JobError {
    match refused {
        Refused::Finished(JobStatus::Cancelled) => JobError::Cancelled,
        _ => JobError::LeaseLost,
    }
}

/// The time by the store's clock, at the precision timestamps are stored
/// with (so a value read back compares equal).
pub(crate) fn clock_now(inner: &Inner) -> DateTime<Utc> {
    stamp(&inner.options.clock)
}

/// [`clock_now`] from a clock a transaction body owns.
pub(crate) fn stamp(clock: &Arc<dyn Clock>) -> DateTime<Utc> {
    clock.now().trunc_subsecs(3)
}

fn lease_of(inner: &Inner) -> TimeDelta {
    TimeDelta::from_std(inner.options.job_lease).unwrap_or(TimeDelta::seconds(30))
}

/// One worker: an id that fences its writes, and the handlers it runs.
#[derive(Debug, Clone)]
pub struct JobWorker {
    store: Store,
    id: String,
    handlers: JobHandlers,
}

impl JobWorker {
    pub(crate) fn new(store: Store, handlers: JobHandlers) -> JobWorker {
        // The process id tells an operator which process held a job; the
        // random part keeps two workers of one process apart.
        let id = format!(
            "{}-{}",
            std::process::id(),
            &Uuid::new_v4().simple().to_string()[..12]
        );
        JobWorker {
            store,
            id,
            handlers,
        }
    }

    /// The same worker under another id (tests name their workers).
    pub fn with_id(mut self, id: impl Into<String>) -> JobWorker {
        self.id = id.into();
        self
    }

    /// The id its leases carry.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Claims the oldest due job of a kind it has a handler for: a queued
    /// one past its `run_after`, or a running one whose lease ended
    /// (takeover). `None` when there is none.
    pub async fn claim(&self) -> Result<Option<JobContext>> {
        let inner = &self.store.inner;
        let kinds = self.handlers.kinds();
        if kinds.is_empty() {
            return Ok(None);
        }
        let candidates: Vec<String> = jobs::Entity::find()
            .select_only()
            .column(jobs::Column::Id)
            .filter(jobs::Column::Kind.is_in(kinds.iter().copied()))
            .filter(due(clock_now(inner)))
            .order_by_asc(jobs::Column::Id)
            .limit(CLAIM_CANDIDATES)
            .into_tuple()
            .all(&inner.conn)
            .await
            .map_err(db)?;
        let lease = lease_of(inner);
        for id in candidates {
            let owner = self.id.clone();
            let clock = inner.options.clock.clone();
            let claimed = write_txn!(inner, [], [id, owner, clock], txn => {
                let now = stamp(clock);
                let row = lock_row(txn, id).await?;
                let claim = Outcome::Claimed { owner: owner.clone(), lease };
                let result = transition(txn, row, |s| {
                    if s.status != JobStatus::Running {
                        return state::next(s, &claim, now);
                    }
                    let expired = state::next(s, &Outcome::LeaseExpired, now)?;
                    if expired.status.is_finished() {
                        // Out of attempts: record the failure, claim nothing.
                        return Ok(expired);
                    }
                    state::next(&expired, &claim, now)
                })
                .await?;
                // Claimed by us, or (out of attempts) failed: nothing to run.
                Ok(result.ok().filter(|row| row.status == JobStatus::Running.as_str()))
            })?;
            let Some(row) = claimed else { continue };
            let job = job_of(row)?;
            let tenant = match job.tenant_id {
                Some(id) => match crate::admin::tenant_by_id(inner, id).await? {
                    Some(t) => Some(self.store.tenant(&t)),
                    // Deleted meanwhile: its jobs went with it.
                    None => continue,
                },
                None => None,
            };
            return Ok(Some(JobContext {
                shared: Arc::new(Held {
                    store: self.store.clone(),
                    job,
                    tenant,
                    owner: self.id.clone(),
                    lease,
                    lost: AtomicBool::new(false),
                }),
            }));
        }
        Ok(None)
    }

    /// Runs a claimed job's handler to its end, heartbeating meanwhile,
    /// and records the outcome; returns the job as it is then. A handler
    /// that lost the job records nothing.
    pub async fn run_claimed(&self, ctx: JobContext) -> Result<Job> {
        let id = ctx.job().id.clone();
        let Some(handler) = self.handlers.by_kind.get(ctx.job().kind.as_str()).cloned() else {
            // `claim` only takes kinds this worker has handlers for.
            return Err(StoreError::Internal(format!(
                "job {id}: no handler for kind {:?}",
                ctx.job().kind
            )));
        };
        let started = std::time::Instant::now();
        let heartbeat = tokio::spawn(heartbeats(ctx.clone()));
        let run = {
            let ctx = ctx.clone();
            tokio::spawn(async move { handler.run(ctx).await })
        };
        let outcome = match run.await {
            Ok(outcome) => outcome,
            // A panicking handler would panic again on a retry.
            Err(e) => Err(JobError::Permanent(format!("the handler panicked: {e}"))),
        };
        heartbeat.abort();
        let kind = ctx.job().kind.as_str();
        let took = started.elapsed().as_secs_f64();
        match &outcome {
            // The job is someone else's (or nobody's) now: nothing to record.
            Err(e @ (JobError::LeaseLost | JobError::Cancelled)) => {
                let label = match e {
                    JobError::Cancelled => "cancelled",
                    _ => "lost",
                };
                crate::metrics::job_ended(kind, label, took);
                tracing::info!(job = %id, worker = %self.id, reason = %e, "job stopped");
            }
            _ => {
                if let Err(e) = &outcome {
                    tracing::warn!(job = %id, %kind, error = %e, "job attempt failed");
                }
                match ctx.finish(&outcome).await {
                    Ok(job) => {
                        let label = match job.status {
                            JobStatus::Done => "done",
                            JobStatus::Queued => "retry",
                            JobStatus::Failed => "failed",
                            JobStatus::Cancelled => "cancelled",
                            JobStatus::Running => "running",
                        };
                        crate::metrics::job_ended(kind, label, took);
                        return Ok(job);
                    }
                    Err(JobError::Store(e)) => return Err(e),
                    Err(e) => {
                        tracing::info!(job = %id, worker = %self.id, reason = %e, "job outcome not recorded");
                    }
                }
            }
        }
        find(&self.store.inner, &id).await
    }

    /// Claims and runs one job; `None` when none was due.
    pub async fn run_next(&self) -> Result<Option<Job>> {
        match self.claim().await? {
            Some(ctx) => self.run_claimed(ctx).await.map(Some),
            None => Ok(None),
        }
    }

    /// Runs jobs until `stop` turns true or its sender is dropped: at once
    /// when this process queued one, else at the next poll.
    pub async fn run(self, mut stop: tokio::sync::watch::Receiver<bool>) {
        let inner = self.store.inner.clone();
        loop {
            if *stop.borrow() {
                return;
            }
            // Registered before looking, so a job queued meanwhile is not
            // missed until the next poll.
            let queued = inner.jobs_queued.notified();
            tokio::pin!(queued);
            queued.as_mut().enable();
            let idle = match self.run_next().await {
                Ok(Some(job)) => {
                    tracing::info!(
                        job = %job.id,
                        kind = %job.kind,
                        status = %job.status,
                        processed = job.progress.processed,
                        changed = job.progress.changed,
                        "job attempt ended"
                    );
                    false
                }
                Ok(None) => true,
                Err(e) => {
                    tracing::warn!(error = %e, "job worker: cannot run jobs");
                    true
                }
            };
            if idle {
                tokio::select! {
                    _ = &mut queued => {}
                    _ = tokio::time::sleep(POLL) => {}
                    changed = stop.changed() => {
                        // The sender is gone: nobody can stop us any more,
                        // so this is shutdown too.
                        if changed.is_err() {
                            return;
                        }
                    }
                }
            }
        }
    }
}

/// Extends the lease every third of it while the handler runs, however
/// long its steps take; stops once refused (the handler sees
/// `is_cancelled`).
async fn heartbeats(ctx: JobContext) {
    let every = ctx
        .shared
        .lease
        .to_std()
        .map_or(Duration::from_secs(10), |l| l / 3)
        .max(Duration::from_millis(10));
    loop {
        tokio::time::sleep(every).await;
        match ctx.heartbeat().await {
            Ok(()) => {}
            Err(JobError::Store(e)) => {
                tracing::warn!(job = %ctx.job().id, error = %e, "job heartbeat failed");
            }
            Err(_) => return,
        }
    }
}

/// Jobs a worker may claim at `now`.
fn due(now: DateTime<Utc>) -> Condition {
    Condition::any()
        .add(
            Condition::all()
                .add(jobs::Column::Status.eq(JobStatus::Queued.as_str()))
                .add(jobs::Column::RunAfter.lte(now)),
        )
        .add(
            Condition::all()
                .add(jobs::Column::Status.eq(JobStatus::Running.as_str()))
                .add(jobs::Column::LeaseExpiresAt.lte(now)),
        )
}

/// The job's row, locked until the transaction ends (PostgreSQL; SQLite's
/// writes are serial anyway).
async fn lock_row(txn: &DatabaseTransaction, id: &str) -> Result<jobs::Model, TxError> {
    jobs::Entity::find()
        .filter(jobs::Column::Id.eq(id))
        .lock_exclusive()
        .all(txn)
        .await
        .map_err(dbx)?
        .into_iter()
        .next()
        .ok_or_else(|| TxError::Fail(StoreError::NotFound(format!("job {id}"))))
}

/// Moves `row` to the state `step` computes from it, or reports why not
/// (writing nothing). Every write to a job goes through here.
async fn transition(
    txn: &DatabaseTransaction,
    row: jobs::Model,
    step: impl FnOnce(&JobState) -> Result<JobState, Refused>,
) -> Result<Result<jobs::Model, Refused>, TxError> {
    let old = state_of(&row)?;
    let new = match step(&old) {
        Ok(s) => s,
        Err(refused) => return Ok(Err(refused)),
    };
    let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    let json = |v: &Option<Value>| v.as_ref().map(Value::to_string);
    // The row is locked, so the guard cannot fail on PostgreSQL; it keeps
    // the write exact should a caller ever skip the lock.
    let mut guard = Condition::all()
        .add(jobs::Column::Id.eq(row.id.clone()))
        .add(jobs::Column::Status.eq(old.status.as_str()))
        .add(jobs::Column::Attempts.eq(i64::from(old.attempts)));
    guard = match &old.lease_owner {
        Some(o) => guard.add(jobs::Column::LeaseOwner.eq(o.clone())),
        None => guard.add(jobs::Column::LeaseOwner.is_null()),
    };
    let updated = jobs::Entity::update_many()
        .col_expr(jobs::Column::Status, Expr::value(new.status.as_str()))
        .col_expr(jobs::Column::Attempts, Expr::value(i64::from(new.attempts)))
        .col_expr(jobs::Column::RunAfter, Expr::value(new.run_after))
        .col_expr(
            jobs::Column::LeaseOwner,
            Expr::value(new.lease_owner.clone()),
        )
        .col_expr(
            jobs::Column::LeaseExpiresAt,
            Expr::value(new.lease_expires_at),
        )
        .col_expr(jobs::Column::HeartbeatAt, Expr::value(new.heartbeat_at))
        .col_expr(jobs::Column::StartedAt, Expr::value(new.started_at))
        .col_expr(jobs::Column::FinishedAt, Expr::value(new.finished_at))
        .col_expr(jobs::Column::Total, Expr::value(count(new.progress.total)))
        .col_expr(
            jobs::Column::Processed,
            Expr::value(count(new.progress.processed)),
        )
        .col_expr(
            jobs::Column::Changed,
            Expr::value(count(new.progress.changed)),
        )
        .col_expr(jobs::Column::Result, Expr::value(json(&new.result)))
        .col_expr(jobs::Column::Error, Expr::value(new.error.clone()))
        .filter(guard)
        .exec(txn)
        .await
        .map_err(dbx)?;
    if updated.rows_affected != 1 {
        return Err(TxError::Retry);
    }
    Ok(Ok(jobs::Model {
        status: new.status.as_str().to_owned(),
        attempts: i64::from(new.attempts),
        run_after: new.run_after,
        lease_owner: new.lease_owner,
        lease_expires_at: new.lease_expires_at,
        heartbeat_at: new.heartbeat_at,
        started_at: new.started_at,
        finished_at: new.finished_at,
        total: count(new.progress.total),
        processed: count(new.progress.processed),
        changed: count(new.progress.changed),
        result: json(&new.result),
        error: new.error,
        ..row
    }))
}

fn corrupt(row: &jobs::Model, what: &str) -> StoreError {
    StoreError::Internal(format!("job {} has a malformed {what}", row.id))
}

fn state_of(row: &jobs::Model) -> Result<JobState> {
    let count = |v: i64| u64::try_from(v).unwrap_or(0);
    let small = |v: i64| u32::try_from(v).unwrap_or(if v < 0 { 0 } else { u32::MAX });
    let result = match &row.result {
        Some(text) => Some(serde_json::from_str(text).map_err(|_| corrupt(row, "result"))?),
        None => None,
    };
    Ok(JobState {
        status: JobStatus::parse(&row.status).ok_or_else(|| corrupt(row, "status"))?,
        attempts: small(row.attempts),
        max_attempts: small(row.max_attempts),
        run_after: row.run_after,
        lease_owner: row.lease_owner.clone(),
        lease_expires_at: row.lease_expires_at,
        heartbeat_at: row.heartbeat_at,
        started_at: row.started_at,
        finished_at: row.finished_at,
        progress: JobProgress {
            total: count(row.total),
            processed: count(row.processed),
            changed: count(row.changed),
        },
        result,
        error: row.error.clone(),
    })
}

fn job_of(row: jobs::Model) -> Result<Job> {
    let state = state_of(&row)?;
    let tenant_id = match &row.tenant_id {
        Some(t) => Some(Uuid::parse_str(t).map_err(|_| corrupt(&row, "tenant"))?),
        None => None,
    };
    let payload = serde_json::from_str(&row.payload).map_err(|_| corrupt(&row, "payload"))?;
    Ok(Job {
        id: row.id,
        tenant_id,
        kind: row.kind,
        payload,
        status: state.status,
        attempts: state.attempts,
        max_attempts: state.max_attempts,
        run_after: state.run_after,
        lease_owner: state.lease_owner,
        lease_expires_at: state.lease_expires_at,
        heartbeat_at: state.heartbeat_at,
        progress: state.progress,
        result: state.result,
        error: state.error,
        created_at: row.created_at,
        started_at: state.started_at,
        finished_at: state.finished_at,
        coalesce_key: row.coalesce_key,
    })
}

/// The queued job with coalescing key `key` (other than `except`), locked.
async fn queued_with_key(
    txn: &DatabaseTransaction,
    key: &str,
    except: Option<&str>,
) -> Result<Option<String>, TxError> {
    let mut q = jobs::Entity::find()
        .select_only()
        .column(jobs::Column::Id)
        .filter(jobs::Column::CoalesceKey.eq(key))
        .filter(jobs::Column::Status.eq(JobStatus::Queued.as_str()));
    if let Some(id) = except {
        q = q.filter(jobs::Column::Id.ne(id));
    }
    let ids: Vec<String> = q
        .lock_exclusive()
        .into_tuple()
        .all(txn)
        .await
        .map_err(dbx)?;
    Ok(ids.into_iter().next())
}

/// Queues `new` for `tenant` in `txn` (or moves the queued job of its
/// coalescing key to `new`'s payload); returns the job's id. The caller
/// wakes this process's workers after the commit
/// ([`crate::db::Inner::jobs_queued`]).
pub(crate) async fn enqueue(
    clock: &Arc<dyn Clock>,
    txn: &DatabaseTransaction,
    tenant: Option<Uuid>,
    new: &NewJob,
) -> Result<String, TxError> {
    let key = new.coalesce_key(tenant);
    let payload = new.payload.to_string();
    if let Some(key) = &key
        && let Some(id) = queued_with_key(txn, key, None).await?
    {
        jobs::Entity::update_many()
            .col_expr(jobs::Column::Payload, Expr::value(payload))
            .filter(jobs::Column::Id.eq(id.clone()))
            .exec(txn)
            .await
            .map_err(dbx)?;
        return Ok(id);
    }
    let now = stamp(clock);
    // v7: ids sort by creation time, which is the queue's order.
    let id = Uuid::now_v7().to_string();
    let inserted = jobs::Entity::insert(jobs::ActiveModel {
        id: Set(id.clone()),
        tenant_id: Set(tenant.map(|t| t.to_string())),
        kind: Set(new.kind.clone()),
        payload: Set(payload),
        status: Set(JobStatus::Queued.as_str().to_owned()),
        attempts: Set(0),
        max_attempts: Set(i64::from(new.max_attempts)),
        run_after: Set(now),
        lease_owner: Set(None),
        lease_expires_at: Set(None),
        heartbeat_at: Set(None),
        total: Set(0),
        processed: Set(0),
        changed: Set(0),
        result: Set(None),
        error: Set(None),
        created_at: Set(now),
        started_at: Set(None),
        finished_at: Set(None),
        coalesce_key: Set(key),
    })
    .exec_without_returning(txn)
    .await;
    match inserted {
        Ok(_) => Ok(id),
        // Another process queued a job of this key since we looked: run
        // the transaction again, which then finds and updates it.
        Err(e)
            if matches!(
                crate::db::sql_err(&e),
                Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
            ) =>
        {
            Err(TxError::Retry)
        }
        Err(e) => Err(dbx(e)),
    }
}

/// Queues a job in its own transaction and wakes this process's workers.
pub(crate) async fn enqueue_now(
    inner: &Inner,
    tenant: Option<Uuid>,
    new: NewJob,
) -> Result<String> {
    if new.kind.trim().is_empty() {
        return Err(StoreError::InvalidValue("a job needs a kind".into()));
    }
    let clock = inner.options.clock.clone();
    let id = write_txn!(inner, [], [new, clock], txn => {
        enqueue(clock, txn, tenant, new).await
    })?;
    inner.jobs_queued.notify_waiters();
    Ok(id)
}

/// Any job by id (no tenant check: the caller's responsibility).
pub(crate) async fn find(inner: &Inner, id: &str) -> Result<Job> {
    let row = jobs::Entity::find_by_id(id.to_owned())
        .one(&inner.conn)
        .await
        .map_err(db)?
        .ok_or_else(|| StoreError::NotFound(format!("job {id}")))?;
    job_of(row)
}

/// One of the tenant's jobs.
pub(crate) async fn tenant_job(store: &TenantStore, id: &str) -> Result<Job> {
    let row = jobs::Entity::find_by_id(id.to_owned())
        .filter(jobs::Column::TenantId.eq(store.tenant.id.to_string()))
        .one(&store.inner.conn)
        .await
        .map_err(db)?
        .ok_or_else(|| StoreError::NotFound(format!("job {id}")))?;
    job_of(row)
}

/// The tenant's jobs (of `kind`, if given), newest first.
pub(crate) async fn tenant_jobs(
    store: &TenantStore,
    kind: Option<&str>,
    limit: u64,
) -> Result<Vec<Job>> {
    let mut q = jobs::Entity::find().filter(jobs::Column::TenantId.eq(store.tenant.id.to_string()));
    if let Some(kind) = kind {
        q = q.filter(jobs::Column::Kind.eq(kind));
    }
    q.order_by_desc(jobs::Column::Id)
        .limit(limit.clamp(1, 100))
        .all(&store.inner.conn)
        .await
        .map_err(db)?
        .into_iter()
        .map(job_of)
        .collect()
}

/// Cancels one of the tenant's jobs that has not ended; its holder, if
/// any, is refused from then on and stops.
pub(crate) async fn cancel(store: &TenantStore, id: &str) -> Result<Job> {
    // Scoped first, so another tenant's id is "not found" like any other.
    tenant_job(store, id).await?;
    let inner = &store.inner;
    let clock = inner.options.clock.clone();
    let result = write_txn!(inner, [id], [clock], txn => {
        let now = stamp(clock);
        let row = lock_row(txn, id).await?;
        transition(txn, row, |s| state::next(s, &Outcome::Cancelled, now)).await
    })?;
    match result {
        Ok(row) => job_of(row),
        Err(refused) => Err(StoreError::InvalidValue(format!("job {id}: {refused}"))),
    }
}

impl Store {
    /// Runs jobs of the kinds `handlers` handle (of every tenant, queued by
    /// any process) until `stop` turns true or its sender is dropped.
    pub async fn run_jobs(&self, handlers: JobHandlers, stop: tokio::sync::watch::Receiver<bool>) {
        self.job_worker(handlers).run(stop).await
    }

    /// A worker with its own id, for running jobs step by step.
    pub fn job_worker(&self, handlers: JobHandlers) -> JobWorker {
        JobWorker::new(self.clone(), handlers)
    }

    /// Runs the oldest due role recompute job to its end (one attempt);
    /// `None` when none is due. (Tools and tests call it directly.)
    pub async fn run_next_role_job(&self) -> Result<Option<RoleJob>> {
        let worker = self.job_worker(JobHandlers::new().with(RoleRecompute));
        match worker.run_next().await? {
            Some(job) => RoleJob::try_from(job).map(Some),
            None => Ok(None),
        }
    }
}

/// Applies a holder's `outcome` to the job in `txn`; the refusal (as the
/// handler's error) when the job is no longer held.
pub(crate) async fn fence(
    txn: &DatabaseTransaction,
    id: &str,
    outcome: &Outcome,
    clock: &std::sync::Arc<dyn Clock>,
) -> Result<Result<(), JobError>, TxError> {
    let now = stamp(clock);
    let row = lock_row(txn, id).await?;
    Ok(transition(txn, row, |s| state::next(s, outcome, now))
        .await?
        .map(|_| ())
        .map_err(refusal))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coalescing_keys_name_kind_and_tenant() {
        let t = Uuid::nil();
        let job = NewJob::new("reconcile", Value::Null);
        assert_eq!(job.coalesce_key(Some(t)), None);
        assert_eq!(
            job.clone().coalesce("").coalesce_key(Some(t)).as_deref(),
            Some("reconcile:00000000-0000-0000-0000-000000000000")
        );
        assert_eq!(
            job.coalesce("app-1").coalesce_key(None).as_deref(),
            Some("reconcile:global:app-1")
        );
    }
}
