//! Group commit for SQLite: one writer thread runs every write transaction
//! of the process.
//!
//! SQLite has one write lock per database, so writes are serial whatever
//! the pool size. What limits their rate is the time the lock is held per
//! write: `BEGIN`, the statements, `COMMIT` and its fsync. The writer takes
//! the jobs that are queued, runs them in one transaction, commits once,
//! and only then answers: an answer always means "durable". One fsync
//! serves the whole batch, and the writer runs on its own thread (its
//! connection runs statements on that thread, see `crate::sqlite`), so its
//! work never waits behind HTTP work.
//!
//! Each job stays atomic on its own: a failed job leaves nothing behind and
//! the others go on. A batch starts optimistic, its jobs run without
//! savepoints (a savepoint makes SQLite copy every page a job first
//! touches into a side journal, about a tenth of the writer's time under
//! load). A job that fails having written nothing (most failures: a
//! taken name, a missing resource) needs no undo. One that fails after
//! writing rolls the whole transaction back; the jobs before it run again
//! from the start, this time each inside a savepoint, as does the rest of
//! that batch.
//!
//! A job runs to its end even if the request that queued it is gone (a
//! client that disconnects cannot leave half a write behind). A job that
//! panics poisons only its batch: the batch rolls back and every job in it
//! gets `Internal`.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;

use futures_util::FutureExt;
use sea_orm::{ConnectionTrait, DatabaseConnection, DatabaseTransaction, TransactionTrait};
use tokio::sync::{mpsc, oneshot};

use crate::db::{MAX_ATTEMPTS, TxError, contended, db};
use crate::entity::event_log;
use crate::{Result, StoreError};

/// One attempt of a write transaction body.
pub(crate) type TxFuture<'t, T> = Pin<Box<dyn Future<Output = Result<T, TxError>> + Send + 't>>;

/// The batch the writer thread is running, seen from the jobs it runs
/// (`None` on every other thread, and between batches).
struct Batch {
    /// Numbers batches, so per-batch memos (the role policy cache) know
    /// which batch checked them.
    id: u64,
    /// Outbox rows the batch's jobs wrote, inserted in one statement before
    /// the commit: in the same transaction as the changes they describe.
    events: Vec<event_log::ActiveModel>,
}

thread_local! {
    static BATCH: RefCell<Option<Batch>> = const { RefCell::new(None) };
}

/// The number of the batch the calling writer thread is running, if any.
/// Within one batch no other process can write (the batch holds SQLite's
/// write lock from `BEGIN IMMEDIATE` to `COMMIT`), so what a job read in
/// this batch stays true for the rest of it unless a job of the batch
/// changes it.
pub(crate) fn current_batch() -> Option<u64> {
    BATCH.with(|b| b.borrow().as_ref().map(|b| b.id))
}

tokio::task_local! {
    /// Outbox rows one attempt of a PostgreSQL write transaction wrote so
    /// far (see [`with_events_deferred`]).
    static DEFERRED: RefCell<Vec<event_log::ActiveModel>>;
}

/// Queues outbox rows for the running batch (SQLite's writer) or the
/// running PostgreSQL write transaction; hands them back when the caller
/// is neither (then it inserts them itself).
pub(crate) fn defer_events(
    rows: Vec<event_log::ActiveModel>,
) -> std::result::Result<(), Vec<event_log::ActiveModel>> {
    let rows = BATCH.with(|b| match b.borrow_mut().as_mut() {
        Some(batch) => {
            batch.events.extend(rows);
            None
        }
        None => Some(rows),
    });
    let Some(rows) = rows else {
        return Ok(());
    };
    let mut rows = Some(rows);
    match DEFERRED.try_with(|d| d.borrow_mut().extend(rows.take().unwrap_or_default())) {
        Ok(()) => Ok(()),
        Err(_) => Err(rows.unwrap_or_default()),
    }
}

/// Runs `body`, one attempt of a PostgreSQL write transaction, with its
/// outbox rows queued and inserted in one statement at its end, in `txn`
/// (the SQLite writer does the same per batch): a write that records two
/// events (a user and its new roles) makes one round trip for them, not
/// two. Nothing in a transaction reads its own events back.
pub(crate) async fn with_events_deferred<T>(
    txn: &DatabaseTransaction,
    body: impl Future<Output = std::result::Result<T, TxError>>,
) -> std::result::Result<T, TxError> {
    DEFERRED
        .scope(RefCell::new(Vec::new()), async move {
            let value = body.await?;
            let rows = DEFERRED.with(|d| std::mem::take(&mut *d.borrow_mut()));
            crate::events::insert(crate::Backend::Postgres, txn, rows)
                .await
                .map_err(crate::db::dbx)?;
            Ok(value)
        })
        .await
}

/// How many outbox rows the running batch holds (a job's starting mark).
fn events_mark() -> usize {
    BATCH.with(|b| b.borrow().as_ref().map_or(0, |b| b.events.len()))
}

/// Drops the outbox rows a rolled-back job queued, and gives the batch a
/// new number: what the job read into per-batch memos may have been its
/// own writes, now undone.
fn roll_back_to(mark: usize, id: u64) {
    BATCH.with(|b| {
        if let Some(batch) = b.borrow_mut().as_mut() {
            batch.events.truncate(mark);
            batch.id = id;
        }
    });
}

/// Inserts the batch's queued outbox rows into `txn`.
async fn flush_events(txn: &DatabaseTransaction) -> Result<(), String> {
    let rows = BATCH.with(|b| {
        b.borrow_mut()
            .as_mut()
            .map(|b| std::mem::take(&mut b.events))
            .unwrap_or_default()
    });
    crate::events::insert(crate::Backend::Sqlite, txn, rows)
        .await
        .map_err(|e| db(e).to_string())
}

/// Most jobs one transaction takes: bounds how long other processes (the
/// CLI) wait for the lock and how much work one failed commit undoes.
const MAX_BATCH: usize = 256;

/// Jobs queued ahead of the writer before callers wait for room.
const QUEUE: usize = 4096;

/// What one attempt of a job came to.
enum Attempt {
    Done,
    Retry,
    Failed,
}

/// A write job with its types erased, so one queue carries them all.
trait Job: Send {
    /// Runs the body once against `txn`.
    fn attempt<'t>(
        &'t mut self,
        txn: &'t DatabaseTransaction,
    ) -> Pin<Box<dyn Future<Output = Attempt> + Send + 't>>;
    /// Answers the caller, given whether the batch committed.
    fn answer(self: Box<Self>, committed: std::result::Result<(), String>);
    /// Records a failure that happened around the body (savepoint, panic).
    fn fail(&mut self, error: StoreError);
}

struct Typed<S, F, T> {
    state: S,
    body: F,
    attempts: usize,
    outcome: Option<Result<T>>,
    reply: oneshot::Sender<Result<T>>,
}

impl<S, F, T> Job for Typed<S, F, T>
where
    S: Send + Sync + 'static,
    T: Send + 'static,
    F: for<'t> Fn(&'t S, &'t DatabaseTransaction) -> TxFuture<'t, T> + Send + Sync + 'static,
{
    fn attempt<'t>(
        &'t mut self,
        txn: &'t DatabaseTransaction,
    ) -> Pin<Box<dyn Future<Output = Attempt> + Send + 't>> {
        Box::pin(async move {
            self.attempts += 1;
            match (self.body)(&self.state, txn).await {
                Ok(value) => {
                    self.outcome = Some(Ok(value));
                    Attempt::Done
                }
                Err(TxError::Retry) if self.attempts < MAX_ATTEMPTS => Attempt::Retry,
                Err(TxError::Retry) => {
                    self.outcome = Some(Err(contended()));
                    Attempt::Failed
                }
                Err(TxError::Fail(e)) => {
                    self.outcome = Some(Err(e));
                    Attempt::Failed
                }
            }
        })
    }

    fn answer(self: Box<Self>, committed: std::result::Result<(), String>) {
        let result = match (self.outcome, committed) {
            (Some(Ok(value)), Ok(())) => Ok(value),
            (Some(Ok(_)), Err(why)) => Err(StoreError::Unavailable(why)),
            (Some(Err(e)), _) => Err(e),
            (None, _) => Err(StoreError::Internal("a write job never ran".into())),
        };
        // The caller may be gone (client disconnected); the write stands.
        let _ = self.reply.send(result);
    }

    fn fail(&mut self, error: StoreError) {
        self.outcome = Some(Err(error));
    }
}

/// What the writer calls after each successful commit; true asks it to
/// run `crate::sqlite::WRITER_CHECKPOINT` before its next transaction.
pub(crate) type OnCommit = Box<dyn Fn() -> bool + Send>;

/// The handle the store keeps: a queue into the writer thread.
pub(crate) struct Writer {
    queue: mpsc::Sender<Box<dyn Job>>,
}

impl Writer {
    /// Starts the writer thread on `conn`; `on_commit` runs after each
    /// commit that succeeded. Only a [`crate::sqlite::Dedicated`]
    /// connection will do: it counts the rows each job changes.
    pub(crate) async fn start(
        conn: crate::sqlite::Dedicated,
        on_commit: Option<OnCommit>,
    ) -> Result<Writer> {
        let conn = crate::sqlite::connection(conn).await?;
        let (queue, jobs) = mpsc::channel(QUEUE);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| StoreError::Internal(format!("cannot start the writer: {e}")))?;
        std::thread::Builder::new()
            .name("scimgate-writer".into())
            .spawn(move || runtime.block_on(run(conn, jobs, on_commit)))
            .map_err(|e| StoreError::Internal(format!("cannot start the writer: {e}")))?;
        Ok(Writer { queue })
    }

    /// Runs `body` with `state` in a write transaction on the writer thread
    /// and returns its result once the transaction has committed.
    pub(crate) async fn write<S, F, T>(&self, state: S, body: F) -> Result<T>
    where
        S: Send + Sync + 'static,
        T: Send + 'static,
        F: for<'t> Fn(&'t S, &'t DatabaseTransaction) -> TxFuture<'t, T> + Send + Sync + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = Box::new(Typed {
            state,
            body,
            attempts: 0,
            outcome: None,
            reply,
        });
        let gone = || StoreError::Unavailable("the database writer has stopped".into());
        self.queue.send(job).await.map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

/// Opens the batch's transaction (`BEGIN IMMEDIATE`: see
/// [`crate::sqlite::Dedicated`]); a `BEGIN` that failed fails the first
/// statement of the batch.
async fn begin(conn: &DatabaseConnection) -> Result<DatabaseTransaction> {
    conn.begin().await.map_err(db)
}

/// Commits the batch; `Err` carries why it did not. `COMMIT` is sent as a
/// statement, whose error the proxy connection can return.
async fn commit(txn: DatabaseTransaction) -> std::result::Result<(), String> {
    txn.execute_unprepared("COMMIT")
        .await
        .map_err(|e| db(e).to_string())?;
    // Only ends sea-orm's view of the transaction: SQLite's has ended.
    txn.commit().await.map_err(|e| db(e).to_string())
}

/// The savepoint around each job. Between two jobs one round trip both
/// releases the last job's savepoint and opens the next job's.
const SAVEPOINT: &str = "SAVEPOINT job";
const NEXT_SAVEPOINT: &str = "RELEASE job; SAVEPOINT job";
const ROLLBACK_TO: &str = "ROLLBACK TO job";
/// Undoes an optimistic batch and opens its transaction again.
const START_OVER: &str = "ROLLBACK; BEGIN IMMEDIATE";

/// How the jobs of a batch are kept apart.
#[derive(Clone, Copy, PartialEq)]
enum Isolation {
    /// No savepoints (see the module's documentation).
    Optimistic,
    /// No savepoint open yet in this transaction.
    None,
    /// Open, and nothing has been written since it was set (or rolled
    /// back to): the next job can run inside it as it is.
    Fresh,
    /// Open around a job that succeeded: release it and open another.
    Used,
}

/// What running one job came to.
enum Ran {
    /// It succeeded: it commits with the batch.
    Done,
    /// It failed and left nothing behind: its answer does not depend on
    /// the commit.
    Failed,
    /// It failed after writing, outside a savepoint: the transaction has
    /// been rolled back and begun again; the batch's earlier jobs must
    /// run again, and then this one.
    StartOver,
}

/// Runs one job in `txn`, retrying transient conflicts; `batch` numbers
/// the batch again after a rollback. `Err` means the transaction itself
/// is broken and must roll back.
async fn run_job(
    txn: &DatabaseTransaction,
    job: &mut Box<dyn Job>,
    isolation: &mut Isolation,
    batch: &mut u64,
) -> Result<Ran, String> {
    let open = match *isolation {
        Isolation::None => Some(SAVEPOINT),
        Isolation::Used => Some(NEXT_SAVEPOINT),
        Isolation::Fresh | Isolation::Optimistic => None,
    };
    if let Some(sql) = open {
        txn.execute_unprepared(sql)
            .await
            .map_err(|e| db(e).to_string())?;
        *isolation = Isolation::Fresh;
    }
    let mark = events_mark();
    loop {
        let changes = crate::sqlite::changes_on_this_thread();
        let attempt = AssertUnwindSafe(job.attempt(txn)).catch_unwind().await;
        let failed = match attempt {
            Ok(Attempt::Done) => {
                if *isolation == Isolation::Fresh {
                    *isolation = Isolation::Used;
                }
                return Ok(Ran::Done);
            }
            Ok(Attempt::Failed) => true,
            Ok(Attempt::Retry) => false,
            Err(_) => {
                job.fail(StoreError::Internal("a write failed unexpectedly".into()));
                // The batch rolls back, savepoint and all.
                return Err("a write in the same batch failed unexpectedly".into());
            }
        };
        let wrote = crate::sqlite::changes_on_this_thread() != changes;
        *batch += 1;
        if !wrote {
            // Nothing to undo but what it queued.
            roll_back_to(mark, *batch);
        } else if *isolation == Isolation::Optimistic {
            txn.execute_unprepared(START_OVER)
                .await
                .map_err(|e| db(e).to_string())?;
            roll_back_to(0, *batch);
            *isolation = Isolation::None;
            return Ok(Ran::StartOver);
        } else {
            // `ROLLBACK TO` keeps the savepoint open, as it was when set:
            // the retry (or the next job) runs inside it again.
            txn.execute_unprepared(ROLLBACK_TO)
                .await
                .map_err(|e| db(e).to_string())?;
            roll_back_to(mark, *batch);
        }
        if failed {
            return Ok(Ran::Failed);
        }
    }
}

async fn run(
    conn: DatabaseConnection,
    mut jobs: mpsc::Receiver<Box<dyn Job>>,
    on_commit: Option<OnCommit>,
) {
    let mut pending: VecDeque<Box<dyn Job>> = VecDeque::new();
    let mut batches: u64 = 0;
    loop {
        if pending.is_empty() {
            match jobs.recv().await {
                Some(job) => pending.push_back(job),
                None => return,
            }
        }
        batches += 1;
        let txn = match begin(&conn).await {
            Ok(txn) => txn,
            Err(e) => {
                let why = e.to_string();
                for job in pending.drain(..) {
                    job.answer(Err(why.clone()));
                }
                continue;
            }
        };
        BATCH.with(|b| {
            *b.borrow_mut() = Some(Batch {
                id: batches,
                events: Vec::new(),
            })
        });
        let mut isolation = Isolation::Optimistic;
        let mut done: Vec<Box<dyn Job>> = Vec::new();
        let mut broken: Option<String> = None;
        while done.len() < MAX_BATCH {
            if pending.is_empty() {
                match jobs.try_recv() {
                    Ok(job) => pending.push_back(job),
                    Err(_) => break,
                }
            }
            let Some(mut job) = pending.pop_front() else {
                break;
            };
            match run_job(&txn, &mut job, &mut isolation, &mut batches).await {
                Ok(Ran::Done) => done.push(job),
                // Its answer does not depend on the commit.
                Ok(Ran::Failed) => job.answer(Ok(())),
                Ok(Ran::StartOver) => {
                    // In the order they came, each in a savepoint now.
                    pending.push_front(job);
                    for earlier in done.drain(..).rev() {
                        pending.push_front(earlier);
                    }
                }
                Err(why) => {
                    done.push(job);
                    broken = Some(why);
                    break;
                }
            }
        }
        if broken.is_none() {
            broken = flush_events(&txn).await.err();
        }
        BATCH.with(|b| b.borrow_mut().take());
        let committed = match broken {
            Some(why) => {
                let _ = txn.rollback().await;
                Err(why)
            }
            // `COMMIT` also ends the savepoint still open.
            None => commit(txn).await,
        };
        for job in done {
            job.answer(committed.clone());
        }
        // After the answers: the jobs committed need not wait for it.
        if let (Ok(()), Some(hook)) = (&committed, &on_commit)
            && hook()
            && let Err(e) = conn
                .execute_unprepared(crate::sqlite::WRITER_CHECKPOINT)
                .await
        {
            tracing::warn!(error = %db(e), "WAL checkpoint failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use sea_orm::{ConnectionTrait, DatabaseTransaction, Statement};
    use tokio::sync::{oneshot, watch};

    use super::{Job, TxFuture, Typed, Writer};
    use crate::db::TxError;
    use crate::{Result, StoreError};

    /// What a test job does: insert `row` (if any), then end as `end`
    /// says; `gate` holds it until opened.
    struct Spec {
        row: Option<i64>,
        end: End,
        runs: AtomicUsize,
        gate: Option<watch::Receiver<bool>>,
    }

    #[derive(Clone, Copy, PartialEq)]
    enum End {
        Ok,
        Fail,
        /// Asks for a retry the first time only.
        RetryOnce,
    }

    fn body<'t>(spec: &'t Arc<Spec>, txn: &'t DatabaseTransaction) -> TxFuture<'t, ()> {
        Box::pin(async move {
            let run = spec.runs.fetch_add(1, Ordering::SeqCst) + 1;
            if let Some(gate) = &spec.gate {
                let mut gate = gate.clone();
                gate.wait_for(|open| *open)
                    .await
                    .map_err(|_| StoreError::Internal("gate dropped".into()))?;
            }
            if let Some(x) = spec.row {
                txn.execute_raw(Statement::from_sql_and_values(
                    sea_orm::DbBackend::Sqlite,
                    "INSERT INTO t (x) VALUES (?)",
                    [x.into()],
                ))
                .await
                .map_err(crate::db::dbx)?;
            }
            match spec.end {
                End::Ok => Ok(()),
                End::Fail => Err(TxError::Fail(StoreError::Uniqueness("taken".into()))),
                End::RetryOnce if run == 1 => Err(TxError::Retry),
                End::RetryOnce => Ok(()),
            }
        })
    }

    /// Queues a job on `writer` and waits until it is queued (not run).
    async fn queue(
        writer: &Writer,
        row: Option<i64>,
        end: End,
        gate: Option<watch::Receiver<bool>>,
    ) -> (Arc<Spec>, oneshot::Receiver<Result<()>>) {
        let spec = Arc::new(Spec {
            row,
            end,
            runs: AtomicUsize::new(0),
            gate,
        });
        let (reply, answer) = oneshot::channel();
        let job: Box<dyn Job> = Box::new(Typed {
            state: spec.clone(),
            body,
            attempts: 0,
            outcome: None,
            reply,
        });
        assert!(writer.queue.send(job).await.is_ok(), "the writer runs");
        (spec, answer)
    }

    /// Jobs sharing a batch stay atomic one by one: one that fails having
    /// written nothing costs the others nothing; one that fails after
    /// writing (with no savepoint around it) rolls the batch back, and the
    /// jobs before it run again, each in a savepoint, as do the ones after.
    #[tokio::test]
    async fn a_job_that_fails_after_writing_undoes_only_itself() {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}/t.db?mode=rwc", dir.path().display());
        let open = crate::sqlite::Opener::from_url(&url, true, Duration::from_secs(1), 0, -1024)
            .expect("valid");
        let writer = Writer::start(crate::sqlite::Dedicated::new(&open).expect("opens"), None)
            .await
            .expect("starts");
        let check = open.open().expect("opens");
        check
            .execute_batch("CREATE TABLE t (x INTEGER PRIMARY KEY)")
            .expect("creates");
        // The first job holds the batch open until all the others are
        // queued behind it, so they run in its transaction.
        let (open_gate, gate) = watch::channel(false);
        let jobs = [
            queue(&writer, Some(0), End::Ok, Some(gate)).await,
            queue(&writer, Some(1), End::Ok, None).await,
            queue(&writer, None, End::Fail, None).await,
            queue(&writer, Some(2), End::Fail, None).await,
            queue(&writer, Some(3), End::Ok, None).await,
            queue(&writer, Some(4), End::RetryOnce, None).await,
        ];
        open_gate.send(true).expect("the first job waits");
        let mut answers = Vec::new();
        let mut runs = Vec::new();
        for (spec, answer) in jobs {
            answers.push(answer.await.expect("answered").is_ok());
            runs.push(spec.runs.load(Ordering::SeqCst));
        }
        assert_eq!(answers, [true, true, false, false, true, true]);
        // The failure that wrote nothing changed no plan; the one that
        // wrote made the two jobs before it run again, and itself once
        // more in a savepoint; the retry after it stayed in its savepoint.
        assert_eq!(runs, [2, 2, 1, 2, 1, 2]);
        let mut stmt = check
            .prepare("SELECT x FROM t ORDER BY x")
            .expect("prepares");
        let rows: Vec<i64> = stmt
            .query_map([], |r| r.get(0))
            .expect("reads")
            .collect::<std::result::Result<_, _>>()
            .expect("rows");
        assert_eq!(rows, [0, 1, 3, 4], "the failed job left no row");
    }
}
