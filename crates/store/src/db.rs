//! The connection, write transactions and error classification.
//!
//! SQLite allows one writer at a time. A deferred transaction that reads
//! and then writes can fail with `SQLITE_BUSY` when another connection
//! wrote in between, and the busy handler cannot help it; so on SQLite
//! every write transaction of this process runs on the writer thread
//! (`crate::writer`) and starts `IMMEDIATE` (taking the write lock at
//! `BEGIN`, where `busy_timeout` waits for writers of other processes, e.g.
//! the CLI). Reads take no lock and run concurrently (WAL). Both run through
//! `crate::sqlite`, on the calling thread; PostgreSQL goes through sqlx.
//!
//! On PostgreSQL write transactions run at READ COMMITTED and lock the rows
//! they read-modify-write (`SELECT ... FOR UPDATE`); deadlocks and
//! serialization failures are retried a bounded number of times.

use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use sea_orm::{
    ConnectOptions, Database, DatabaseConnection, DatabaseTransaction, DbErr, RuntimeErr,
    TransactionTrait,
};

use crate::writer::{TxFuture, Writer};
use crate::{Backend, Result, StoreError, StoreOptions};

/// How many times a write transaction is attempted before the store gives
/// up with `Unavailable`. Conflicts need a concurrent writer on the same
/// rows to lose a race each time, so 16 is far beyond what real traffic
/// produces and still bounds the work of a pathological burst.
pub(crate) const MAX_ATTEMPTS: usize = 16;

/// SQLite's `busy_timeout`: how long a statement waits for another
/// process's lock before failing.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Bytes of the database file SQLite maps into memory: none. A reader
/// whose snapshot is older than the last commit unmaps its whole mapping
/// and faults every page back in, and with a steady stream of writes that
/// happens on nearly every read: the unmapping and page faults cost more
/// than the `pread`s they replace (steady mix +11 %, lookups alone -8 %;
/// docs/benchmarks.md).
const SQLITE_MMAP_SIZE: u64 = 0;

/// Each connection's page cache, as SQLite's negative "KiB" form.
const SQLITE_CACHE_KIB: i64 = -16 * 1024;

/// The writer connection's page cache: every write reads the pages it
/// changes, so pages it kept need no read from the file.
const SQLITE_WRITER_CACHE_KIB: i64 = -256 * 1024;

/// The shared state behind [`crate::Store`] and its handles.
pub(crate) struct Inner {
    pub(crate) conn: DatabaseConnection,
    /// SQLite only: how migrations connect (`conn` runs no transactions
    /// there).
    pub(crate) migrate: Option<crate::sqlite::Opener>,
    /// What keeps migrations of other processes out while this one runs
    /// them (see `admin::migrate`). It may hold the database URL, password
    /// included: `Inner` is never formatted.
    pub(crate) migration_lock: crate::admin::MigrationLock,
    /// SQLite only: the group-commit writer, which owns the one connection
    /// every write runs on. That connection's page cache stays valid across
    /// its own commits (SQLite empties a connection's cache when *another*
    /// connection has written).
    writer: Option<Writer>,
    /// SQLite only: the read pool's counts (PostgreSQL's pool keeps its own).
    pub(crate) reader_usage: Option<std::sync::Arc<crate::sqlite::ReaderUsage>>,
    pub(crate) backend: Backend,
    pub(crate) options: StoreOptions,
    /// Each tenant's compiled role policy, keyed by tenant id, with the
    /// `(policy_version, updated_at)` it was compiled from: a write then
    /// needs one primary-key read to know its copy is current.
    pub(crate) role_policies: crate::roles::PolicyCache,
    /// Each super tenant's parsed routing rules and children, keyed by
    /// what they were built from (see `copies::FanoutCache`).
    pub(crate) fanouts: crate::copies::FanoutCache,
    /// Woken when this process queues a job, so idle workers start at
    /// once instead of at their next poll.
    pub(crate) jobs_queued: tokio::sync::Notify,
    /// Woken after every committed write of this process, so an
    /// in-process delivery worker reads new events at once instead of at
    /// its next poll.
    pub(crate) committed: tokio::sync::Notify,
}

impl Inner {
    pub(crate) async fn connect(url: &str, options: StoreOptions) -> Result<Inner> {
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            // The URL itself may hold a password: never echo it.
            return Err(StoreError::InvalidValue(
                "database URL must start with sqlite:// or postgres://".into(),
            ));
        };
        if backend == Backend::Sqlite {
            let opener = crate::sqlite::Opener::from_url(
                url,
                options.sqlite_synchronous_full,
                SQLITE_BUSY_TIMEOUT,
                SQLITE_MMAP_SIZE,
                SQLITE_CACHE_KIB,
            )?;
            let checkpointer =
                crate::sqlite::Checkpointer::start(&opener, crate::sqlite::RESTART_FRAMES)?;
            let writer = Writer::start(
                crate::sqlite::Dedicated::writer(&opener, SQLITE_WRITER_CACHE_KIB)?,
                Some(Box::new(move || checkpointer.committed())),
            )
            .await?;
            let readers = crate::sqlite::Readers::new(
                opener.clone(),
                options.max_connections.max(1) as usize,
            )?;
            let reader_usage = Some(readers.usage());
            return Ok(Inner {
                reader_usage,
                conn: crate::sqlite::connection(readers).await?,
                migrate: Some(opener),
                migration_lock: crate::admin::MigrationLock::beside_sqlite(url),
                writer: Some(writer),
                backend,
                options,
                role_policies: crate::roles::PolicyCache::default(),
                fanouts: crate::copies::FanoutCache::default(),
                jobs_queued: tokio::sync::Notify::new(),
                committed: tokio::sync::Notify::new(),
            });
        }
        let mut opts = ConnectOptions::new(url.to_owned());
        opts.max_connections(options.max_connections.max(1))
            .min_connections(0)
            // A request waits at most this long for a connection: with
            // the database down, sqlx retries refused connections until
            // then, and the request answers 503 after it (the gateway's
            // database check answers at once after the first failure).
            .connect_timeout(Duration::from_secs(5))
            .acquire_timeout(Duration::from_secs(5))
            // A ping on every checkout is a round trip (and a backend
            // wake-up) per statement outside a transaction; only a
            // connection idle long enough to have been dropped (a restarted
            // server, a proxy's timeout) is pinged first.
            .test_before_acquire_if_idle_for(Duration::from_secs(1))
            // Statement logging would put SQL (and in debug builds, values)
            // into the logs; the gateway logs what matters with request ids.
            .sqlx_logging(false);
        let conn = Database::connect(opts).await.map_err(connect_error)?;
        Ok(Inner {
            reader_usage: None,
            conn,
            migrate: None,
            migration_lock: crate::admin::MigrationLock::Advisory {
                url: url.to_owned(),
            },
            writer: None,
            backend,
            options,
            role_policies: crate::roles::PolicyCache::default(),
            fanouts: crate::copies::FanoutCache::default(),
            jobs_queued: tokio::sync::Notify::new(),
            committed: tokio::sync::Notify::new(),
        })
    }

    /// Runs `body` (given `state`) in a write transaction and returns its
    /// result once committed: on SQLite through the group-commit writer, on
    /// PostgreSQL on this task, with the pool's concurrency. `body` may run
    /// more than once (a transient conflict retries it), so it must not
    /// have effects outside the transaction.
    pub(crate) async fn write<S, F, T>(&self, state: S, body: F) -> Result<T>
    where
        S: Send + Sync + 'static,
        T: Send + 'static,
        F: for<'t> Fn(&'t S, &'t DatabaseTransaction) -> TxFuture<'t, T> + Send + Sync + 'static,
    {
        let done = self.write_once(state, body).await;
        if done.is_ok() {
            self.committed.notify_waiters();
        }
        done
    }

    async fn write_once<S, F, T>(&self, state: S, body: F) -> Result<T>
    where
        S: Send + Sync + 'static,
        T: Send + 'static,
        F: for<'t> Fn(&'t S, &'t DatabaseTransaction) -> TxFuture<'t, T> + Send + Sync + 'static,
    {
        if let Some(writer) = &self.writer {
            return writer.write(state, body).await;
        }
        let mut attempts = 0usize;
        loop {
            attempts += 1;
            let txn = self.conn.begin().await.map_err(db)?;
            let result = crate::roles::noting_policy_stamps(crate::writer::with_events_deferred(
                &txn,
                body(&state, &txn),
            ))
            .await;
            if let Some(done) = self.finish(txn, result, attempts).await {
                return done;
            }
        }
    }

    /// Ends one attempt of a write transaction: commits on `Ok`, rolls back
    /// otherwise. `None` means "run the transaction again".
    async fn finish<T>(
        &self,
        txn: DatabaseTransaction,
        result: Result<T, TxError>,
        attempts: usize,
    ) -> Option<Result<T>> {
        match result {
            Ok(value) => match txn.commit().await {
                Ok(()) => Some(Ok(value)),
                Err(e) if is_transient(&e) => (attempts >= MAX_ATTEMPTS).then(|| Err(contended())),
                Err(e) => Some(Err(db(e))),
            },
            Err(TxError::Retry) => {
                // A failed rollback changes nothing: the pool discards or
                // resets the connection.
                let _ = txn.rollback().await;
                (attempts >= MAX_ATTEMPTS).then(|| Err(contended()))
            }
            Err(TxError::Fail(e)) => {
                let _ = txn.rollback().await;
                Some(Err(e))
            }
        }
    }
}

/// One PostgreSQL session of its own, for migrations: a pool of exactly
/// one connection that is never replaced behind the caller's back (no idle
/// timeout, no maximum lifetime, no ping-and-reconnect on acquire), so the
/// session-level advisory lock taken on it and every migration statement
/// run on it share one server session. A connection that dies fails the
/// next statement rather than being swapped for a new one.
pub(crate) async fn postgres_session(url: &str) -> Result<DatabaseConnection> {
    let mut opts = ConnectOptions::new(url.to_owned());
    opts.max_connections(1)
        .min_connections(1)
        .idle_timeout(None)
        .max_lifetime(None)
        .test_before_acquire(false)
        .connect_timeout(Duration::from_secs(5))
        .acquire_timeout(Duration::from_secs(10))
        .sqlx_logging(false);
    Database::connect(opts).await.map_err(connect_error)
}

/// The error of a write that kept losing races.
pub(crate) fn contended() -> StoreError {
    StoreError::Unavailable("the resource is being changed concurrently; retry the request".into())
}

/// The outcome of one attempt at a write transaction.
pub(crate) enum TxError {
    /// A transient conflict: roll back and run the transaction again.
    Retry,
    /// A real failure: roll back and report it.
    Fail(StoreError),
}

impl TxError {
    /// The error of a read outside any write transaction, where there is
    /// nothing to retry: a transient conflict is reported as contention.
    pub(crate) fn into_error(self) -> StoreError {
        match self {
            TxError::Retry => contended(),
            TxError::Fail(e) => e,
        }
    }
}

impl From<StoreError> for TxError {
    fn from(e: StoreError) -> Self {
        TxError::Fail(e)
    }
}

impl From<scim::Error> for TxError {
    fn from(e: scim::Error) -> Self {
        TxError::Fail(StoreError::Scim(e))
    }
}

/// Maps a database error to the store's error: connection trouble is
/// `Unavailable`, anything else `Internal` (with the driver's message for
/// the log; no values are bound into it).
pub(crate) fn db(e: DbErr) -> StoreError {
    if is_unavailable(&e) || is_transient(&e) {
        StoreError::Unavailable(redact(&e))
    } else {
        StoreError::Internal(redact(&e))
    }
}

/// [`db`] inside a write transaction: transient conflicts become a retry.
pub(crate) fn dbx(e: DbErr) -> TxError {
    if is_transient(&e) {
        TxError::Retry
    } else {
        TxError::Fail(db(e))
    }
}

/// A unique-constraint violation becomes `Uniqueness` with `message`;
/// anything else as [`dbx`].
pub(crate) fn unique_or(e: DbErr, message: impl FnOnce() -> String) -> TxError {
    if matches!(
        sql_err(&e),
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
    ) {
        TxError::Fail(StoreError::Uniqueness(message()))
    } else {
        dbx(e)
    }
}

/// The constraint a statement violated, whichever driver ran it (sea-orm's
/// own `DbErr::sql_err` only knows sqlx's SQLite errors, not those of
/// [`crate::sqlite`]).
pub(crate) fn sql_err(e: &DbErr) -> Option<sea_orm::SqlErr> {
    use sea_orm::sqlx::error::ErrorKind;
    match sqlx_error(e) {
        Some(sea_orm::sqlx::Error::Database(d)) => match d.kind() {
            ErrorKind::UniqueViolation => Some(sea_orm::SqlErr::UniqueConstraintViolation(
                d.message().to_owned(),
            )),
            ErrorKind::ForeignKeyViolation => Some(sea_orm::SqlErr::ForeignKeyConstraintViolation(
                d.message().to_owned(),
            )),
            _ => None,
        },
        _ => None,
    }
}

fn connect_error(e: DbErr) -> StoreError {
    match e {
        DbErr::Conn(_) | DbErr::ConnectionAcquire(_) => {
            StoreError::Unavailable(format!("cannot connect: {}", redact(&e)))
        }
        other => db(other),
    }
}

fn redact(e: &DbErr) -> String {
    // sqlx's messages name the failing operation and the server's reason;
    // they do not contain bound values or the connection password.
    e.to_string()
}

fn sqlx_error(e: &DbErr) -> Option<&sea_orm::sqlx::Error> {
    match e {
        DbErr::Conn(RuntimeErr::SqlxError(e))
        | DbErr::Exec(RuntimeErr::SqlxError(e))
        | DbErr::Query(RuntimeErr::SqlxError(e)) => Some(e),
        _ => None,
    }
}

fn is_unavailable(e: &DbErr) -> bool {
    use sea_orm::sqlx::Error as X;
    if matches!(e, DbErr::Conn(_) | DbErr::ConnectionAcquire(_)) {
        return true;
    }
    match sqlx_error(e) {
        Some(X::Io(_) | X::Tls(_) | X::PoolTimedOut | X::PoolClosed | X::WorkerCrashed) => true,
        Some(X::Database(d)) => {
            let code = d.code().unwrap_or_default();
            if d.try_downcast_ref::<crate::sqlite::SqliteError>().is_some() {
                // BUSY (5) / LOCKED (6) after busy_timeout; the code is the
                // extended one, whose low byte is the primary code.
                code.parse::<i64>().is_ok_and(|c| matches!(c & 0xff, 5 | 6))
            } else {
                // PostgreSQL: connection exceptions (08...), shutdown
                // (57P0x), too many connections (53300).
                code.starts_with("08") || code.starts_with("57P") || code == "53300"
            }
        }
        _ => false,
    }
}

/// Deadlocks and serialization failures (PostgreSQL): safe to retry.
fn is_transient(e: &DbErr) -> bool {
    match sqlx_error(e) {
        Some(sea_orm::sqlx::Error::Database(d)) => {
            matches!(d.code().as_deref(), Some("40001" | "40P01"))
        }
        _ => false,
    }
}

/// The current time at the precision every timestamp is stored and shown
/// with (milliseconds, as `meta` renders them), so a value read back
/// compares equal to the one a filter names.
pub(crate) fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(3)
}
