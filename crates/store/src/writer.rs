//! Group commit for SQLite: one writer thread runs every write transaction
//! of the process.
//!
//! SQLite has one write lock per database, so writes are serial whatever
//! the pool size. What limits their rate is the time the lock is held per
//! write: `BEGIN`, the statements, `COMMIT` and its fsync, each a round trip
//! to the driver's connection thread. The writer takes the jobs that are
//! queued, runs each inside a savepoint of one transaction (so each job
//! stays atomic on its own: a failed job rolls back to its savepoint and
//! the others go on), commits once, and only then answers: an answer
//! always means "durable". One fsync serves the whole batch, and the writer
//! runs on its own thread, so its round trips never wait behind HTTP work.
//!
//! A job runs to its end even if the request that queued it is gone (a
//! client that disconnects cannot leave half a write behind). A job that
//! panics poisons only its batch: the batch rolls back and every job in it
//! gets `Internal`.

use std::collections::VecDeque;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;

use futures_util::FutureExt;
use sea_orm::{
    DatabaseConnection, DatabaseTransaction, SqliteTransactionMode, TransactionOptions,
    TransactionTrait,
};
use tokio::sync::{mpsc, oneshot};

use crate::db::{MAX_ATTEMPTS, TxError, contended, db};
use crate::{Result, StoreError};

/// One attempt of a write transaction body.
pub(crate) type TxFuture<'t, T> = Pin<Box<dyn Future<Output = Result<T, TxError>> + Send + 't>>;

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

/// The handle the store keeps: a queue into the writer thread.
pub(crate) struct Writer {
    queue: mpsc::Sender<Box<dyn Job>>,
}

impl Writer {
    /// Starts the writer thread on `conn` (a pool of one connection).
    pub(crate) fn start(conn: DatabaseConnection) -> Result<Writer> {
        let (queue, jobs) = mpsc::channel(QUEUE);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| StoreError::Internal(format!("cannot start the writer: {e}")))?;
        std::thread::Builder::new()
            .name("scimgate-writer".into())
            .spawn(move || runtime.block_on(run(conn, jobs)))
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

async fn begin(conn: &DatabaseConnection) -> Result<DatabaseTransaction> {
    let options = TransactionOptions {
        sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
        ..TransactionOptions::default()
    };
    conn.begin_with_options(options).await.map_err(db)
}

/// Runs one job in a savepoint of `txn`, retrying transient conflicts.
/// `Err` means the transaction itself is broken and must roll back.
async fn run_job(txn: &DatabaseTransaction, job: &mut Box<dyn Job>) -> Result<bool, String> {
    loop {
        let savepoint = txn.begin().await.map_err(|e| db(e).to_string())?;
        let attempt = AssertUnwindSafe(job.attempt(&savepoint))
            .catch_unwind()
            .await;
        match attempt {
            Ok(Attempt::Done) => {
                savepoint.commit().await.map_err(|e| db(e).to_string())?;
                return Ok(true);
            }
            Ok(Attempt::Retry) => {
                savepoint.rollback().await.map_err(|e| db(e).to_string())?;
            }
            Ok(Attempt::Failed) => {
                savepoint.rollback().await.map_err(|e| db(e).to_string())?;
                return Ok(false);
            }
            Err(_) => {
                job.fail(StoreError::Internal("a write failed unexpectedly".into()));
                // The savepoint is dropped (rolled back) with the batch.
                return Err("a write in the same batch failed unexpectedly".into());
            }
        }
    }
}

async fn run(conn: DatabaseConnection, mut jobs: mpsc::Receiver<Box<dyn Job>>) {
    let mut pending: VecDeque<Box<dyn Job>> = VecDeque::new();
    loop {
        if pending.is_empty() {
            match jobs.recv().await {
                Some(job) => pending.push_back(job),
                None => return,
            }
        }
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
            match run_job(&txn, &mut job).await {
                Ok(true) => done.push(job),
                // Its answer does not depend on the commit.
                Ok(false) => job.answer(Ok(())),
                Err(why) => {
                    done.push(job);
                    broken = Some(why);
                    break;
                }
            }
        }
        let committed = match broken {
            Some(why) => {
                let _ = txn.rollback().await;
                Err(why)
            }
            None => txn.commit().await.map_err(|e| db(e).to_string()),
        };
        for job in done {
            job.answer(committed.clone());
        }
    }
}
