//! SQLite without a driver thread: sea-orm builds every statement as it
//! does for any engine, and this module runs it on a `rusqlite` connection
//! on the calling thread.
//!
//! sqlx gives each SQLite connection a thread of its own and sends every
//! statement and every row across a channel to it. For a database in the
//! same process that hand-off (a futex wake and a context switch each way)
//! cost more CPU than SQLite's own work: a `userName eq` lookup spent about
//! a fifth of the server's time waking threads and a hundredth in SQLite's
//! VM. Here a statement is a function call.
//!
//! Two kinds of connection are handed to sea-orm as proxy databases:
//! - [`Readers`], a pool for reads outside transactions. A statement takes
//!   an idle connection (opening one if none is idle), runs, and gives it
//!   back; it never waits, so the pool holds about one connection per
//!   thread that queries. It runs no transactions: on SQLite every write
//!   transaction is the writer's.
//! - [`Dedicated`], the writer's one connection, which runs its
//!   transactions (`BEGIN IMMEDIATE`, savepoints and `COMMIT` are statements
//!   the writer sends itself, so their errors reach it).
//!
//! Values are bound the way sqlx binds them (the same text for timestamps,
//! integers for booleans), so databases written by either read the same.
//! Rows reach sea-orm as typed values: the type of each result column comes
//! from the entity that declares the column it originates from (SQLite
//! reports it), else from the value's storage class.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};
use rusqlite::types::{ToSqlOutput, Value as Sql, ValueRef};
use rusqlite::{Connection, OpenFlags};
use sea_orm::sqlx::error::{DatabaseError, ErrorKind};
use sea_orm::{
    ColumnTrait, ColumnType, DbErr, EntityTrait, IdenStatic, Iterable, ProxyDatabaseTrait,
    ProxyExecResult, ProxyRow, RuntimeErr, Statement, Value,
};

use crate::{Result, StoreError};

/// How a connection is opened: the file and the settings every connection
/// of the process gets.
#[derive(Debug, Clone)]
pub(crate) struct Opener {
    path: PathBuf,
    flags: OpenFlags,
    synchronous_full: bool,
    busy_timeout: Duration,
    mmap_size: u64,
    cache_kib: i64,
}

/// Prepared statements each connection keeps: the store issues a few
/// dozen distinct statements, each prepared once per connection.
const STATEMENT_CACHE: usize = 256;

impl Opener {
    /// Reads `sqlite://PATH[?mode=rwc|rw|ro]` (the URL form sqlx accepts
    /// and the configuration documents).
    pub(crate) fn from_url(
        url: &str,
        synchronous_full: bool,
        busy_timeout: Duration,
        mmap_size: u64,
        cache_kib: i64,
    ) -> Result<Opener> {
        let rest = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .ok_or_else(|| StoreError::InvalidValue("not a sqlite: URL".into()))?;
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        if path.is_empty() || path == ":memory:" || path.starts_with(":memory:") {
            return Err(StoreError::InvalidValue(
                "an in-memory SQLite database is not supported; name a file".into(),
            ));
        }
        let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("mode", "rwc")) => {
                    flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE
                }
                Some(("mode", "rw")) => flags = OpenFlags::SQLITE_OPEN_READ_WRITE,
                Some(("mode", "ro")) => flags = OpenFlags::SQLITE_OPEN_READ_ONLY,
                _ => {
                    return Err(StoreError::InvalidValue(format!(
                        "unsupported SQLite URL parameter {pair:?} (only mode=rwc|rw|ro)"
                    )));
                }
            }
        }
        // Each connection is used by one thread at a time (behind a mutex
        // or taken out of the pool), which is what SQLite's multi-thread
        // mode requires.
        flags |= OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
        flags.remove(OpenFlags::SQLITE_OPEN_FULL_MUTEX);
        Ok(Opener {
            path: PathBuf::from(path),
            flags,
            synchronous_full,
            busy_timeout,
            mmap_size,
            cache_kib,
        })
    }

    /// Opens one connection with the process's settings.
    pub(crate) fn open(&self) -> std::result::Result<Connection, DbErr> {
        let conn = Connection::open_with_flags(&self.path, self.flags).map_err(conn_err)?;
        conn.busy_timeout(self.busy_timeout).map_err(conn_err)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        let synchronous = if self.synchronous_full {
            "FULL"
        } else {
            "NORMAL"
        };
        conn.execute_batch(&format!(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = {synchronous}; \
             PRAGMA foreign_keys = ON; PRAGMA mmap_size = {}; \
             PRAGMA cache_size = {}; PRAGMA temp_store = MEMORY;",
            self.mmap_size, self.cache_kib
        ))
        .map_err(conn_err)?;
        Ok(conn)
    }
}

/// Copies the write-ahead log back into the database on a thread and
/// connection of its own, so the writer seldom does.
///
/// By default SQLite checkpoints inside the commit that pushes the log
/// past 1,000 pages: the writer thread, which holds the one write lock,
/// then also copies pages and fsyncs the database file (15 % of its time
/// in a fan-out load, docs/benchmarks.md). Here the writer's commits wake
/// this thread instead, which runs a `PASSIVE` checkpoint (it never
/// blocks the writer or readers) at most once per [`CHECKPOINT_EVERY`],
/// so a page written by many commits in between is copied once.
///
/// The log only starts over from its beginning when a write begins after
/// a checkpoint that copied all of it, which a checkpoint running beside
/// a busy writer never quite does: once the log passes [`RESTART_FRAMES`]
/// the writer is asked to checkpoint the little that is left itself,
/// between two transactions ([`Checkpointer::committed`]), so the log
/// stays bounded.
pub(crate) struct Checkpointer {
    shared: Arc<CheckpointWake>,
}

#[derive(Default)]
struct CheckpointWake {
    /// (a commit happened, stop).
    state: Mutex<(bool, bool)>,
    cond: std::sync::Condvar,
    /// The log is long: the writer should finish the checkpoint.
    catch_up: std::sync::atomic::AtomicBool,
}

/// The shortest time between two checkpoints.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);
/// Log frames (pages) past which the writer finishes a checkpoint so the
/// log can start over: 128 MiB of 4 KiB pages.
pub(crate) const RESTART_FRAMES: i64 = 32_768;
/// What the writer runs between two transactions when asked to.
pub(crate) const WRITER_CHECKPOINT: &str = "PRAGMA wal_checkpoint(PASSIVE);";

impl Checkpointer {
    /// Starts the checkpoint thread on a connection of its own; the
    /// writer is asked to finish a checkpoint past `restart_frames` log
    /// frames ([`RESTART_FRAMES`] outside tests).
    pub(crate) fn start(opener: &Opener, restart_frames: i64) -> Result<Checkpointer> {
        let conn = opener.open().map_err(crate::db::db)?;
        let shared = Arc::new(CheckpointWake::default());
        let wake = shared.clone();
        std::thread::Builder::new()
            .name("scimgate-checkpoint".into())
            .spawn(move || checkpoints(&conn, &wake, restart_frames))
            .map_err(|e| StoreError::Internal(format!("cannot start the checkpointer: {e}")))?;
        Ok(Checkpointer { shared })
    }

    /// Says a transaction has committed; true when the writer should now
    /// run [`WRITER_CHECKPOINT`] before its next transaction.
    pub(crate) fn committed(&self) -> bool {
        if let Ok(mut state) = self.shared.state.lock() {
            state.0 = true;
            self.shared.cond.notify_one();
        }
        self.shared
            .catch_up
            .swap(false, std::sync::atomic::Ordering::Relaxed)
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        if let Ok(mut state) = self.shared.state.lock() {
            state.1 = true;
            self.shared.cond.notify_one();
        }
    }
}

/// The checkpoint thread: waits for commits, checkpoints, rests.
fn checkpoints(conn: &Connection, wake: &CheckpointWake, restart_frames: i64) {
    loop {
        {
            let Ok(mut state) = wake.state.lock() else {
                return;
            };
            while !state.0 && !state.1 {
                state = match wake.cond.wait(state) {
                    Ok(s) => s,
                    Err(_) => return,
                };
            }
            if state.1 {
                return;
            }
            state.0 = false;
        }
        // (busy, frames in the log, frames copied): a busy or partial
        // checkpoint only means readers or the writer were ahead.
        let result = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
            row.get::<_, i64>(1)
        });
        match result {
            Ok(frames) if frames >= restart_frames => wake
                .catch_up
                .store(true, std::sync::atomic::Ordering::Relaxed),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "WAL checkpoint failed; retrying after the next commit");
            }
        }
        std::thread::sleep(CHECKPOINT_EVERY);
    }
}

/// The pool of connections reads run on.
#[derive(Debug)]
pub(crate) struct Readers {
    opener: Opener,
    idle: Mutex<Vec<Connection>>,
    max_idle: usize,
    usage: Arc<ReaderUsage>,
}

/// How many read connections are in use and kept idle (for metrics).
#[derive(Debug, Default)]
pub(crate) struct ReaderUsage {
    pub(crate) in_use: std::sync::atomic::AtomicUsize,
    pub(crate) idle: std::sync::atomic::AtomicUsize,
    pub(crate) max_idle: usize,
}

impl Readers {
    /// A pool keeping at most `max_idle` idle connections; one is opened
    /// now, so a bad path or permission fails here and not on first use.
    pub(crate) fn new(opener: Opener, max_idle: usize) -> Result<Readers> {
        let first = opener.open().map_err(crate::db::db)?;
        let max_idle = max_idle.max(1);
        Ok(Readers {
            opener,
            idle: Mutex::new(vec![first]),
            max_idle,
            usage: Arc::new(ReaderUsage {
                idle: std::sync::atomic::AtomicUsize::new(1),
                max_idle,
                ..ReaderUsage::default()
            }),
        })
    }

    /// The counts this pool keeps current.
    pub(crate) fn usage(&self) -> Arc<ReaderUsage> {
        self.usage.clone()
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&Connection) -> std::result::Result<T, DbErr>,
    ) -> std::result::Result<T, DbErr> {
        use std::sync::atomic::Ordering::Relaxed;
        let taken = self.idle.lock().ok().and_then(|mut idle| {
            let conn = idle.pop();
            self.usage.idle.store(idle.len(), Relaxed);
            conn
        });
        let conn = match taken {
            Some(conn) => conn,
            None => self.opener.open()?,
        };
        self.usage.in_use.fetch_add(1, Relaxed);
        let result = f(&conn);
        self.usage.in_use.fetch_sub(1, Relaxed);
        // A connection left inside a transaction (a statement that began
        // one) must not serve the next caller.
        if conn.is_autocommit()
            && let Ok(mut idle) = self.idle.lock()
            && idle.len() < self.max_idle
        {
            idle.push(conn);
            self.usage.idle.store(idle.len(), Relaxed);
        }
        result
    }
}

#[sea_orm::prelude::async_trait::async_trait]
impl ProxyDatabaseTrait for Readers {
    async fn query(&self, statement: Statement) -> std::result::Result<Vec<ProxyRow>, DbErr> {
        self.with(|conn| query(conn, &statement))
    }

    async fn execute(&self, statement: Statement) -> std::result::Result<ProxyExecResult, DbErr> {
        self.with(|conn| execute(conn, &statement))
    }

    async fn ping(&self) -> std::result::Result<(), DbErr> {
        self.with(ping)
    }
}

/// One connection for one user at a time: the writer's, and the one
/// migrations run on.
///
/// sea-orm's proxy `begin`/`commit`/`rollback` cannot return an error, so
/// one that fails here is kept and returned by the next statement: a
/// transaction that did not begin, or a commit that did not happen, is
/// never taken for done. (The writer also sends `COMMIT` as a statement of
/// its own, so it sees a failed commit at once.)
#[derive(Debug)]
pub(crate) struct Dedicated {
    conn: Mutex<Connection>,
    failed: Mutex<Option<DbErr>>,
}

impl Dedicated {
    /// Opens the connection.
    pub(crate) fn new(opener: &Opener) -> Result<Dedicated> {
        Ok(Dedicated {
            conn: Mutex::new(opener.open().map_err(crate::db::db)?),
            failed: Mutex::new(None),
        })
    }

    /// Opens the group-commit writer's connection: a page cache of
    /// `cache_kib`, and no checkpoints of its own (a [`Checkpointer`]
    /// runs them on another thread).
    pub(crate) fn writer(opener: &Opener, cache_kib: i64) -> Result<Dedicated> {
        let conn = opener.open().map_err(crate::db::db)?;
        conn.execute_batch(&format!(
            "PRAGMA cache_size = {cache_kib}; PRAGMA wal_autocheckpoint = 0;"
        ))
        .map_err(|e| crate::db::db(conn_err(e)))?;
        Ok(Dedicated {
            conn: Mutex::new(conn),
            failed: Mutex::new(None),
        })
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&Connection) -> std::result::Result<T, DbErr>,
    ) -> std::result::Result<T, DbErr> {
        if let Some(e) = self.failed.lock().ok().and_then(|mut f| f.take()) {
            return Err(e);
        }
        let conn = self
            .conn
            .lock()
            .map_err(|_| DbErr::Conn(RuntimeErr::Internal("the connection is poisoned".into())))?;
        f(&conn)
    }

    /// Runs a transaction-control statement, keeping its error for the
    /// next statement. `only_if_open` skips it when no transaction is open
    /// (the writer may have ended it with a statement of its own).
    fn control(&self, sql: &str, only_if_open: bool) {
        let result = self.with(|conn| {
            if !(only_if_open && conn.is_autocommit()) {
                conn.execute_batch(sql).map_err(exec_err)?;
            }
            Ok(())
        });
        if let Err(e) = result
            && let Ok(mut failed) = self.failed.lock()
        {
            *failed = Some(e);
        }
    }
}

thread_local! {
    /// Rows changed so far by the dedicated connection last used on this
    /// thread (`sqlite3_total_changes`), as of its last statement.
    static CHANGES: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// How many rows the dedicated connection used on this thread has changed
/// so far: the writer compares it around a job to know whether a failed
/// job wrote anything (a statement that failed counts for nothing, since
/// SQLite undoes it whole).
pub(crate) fn changes_on_this_thread() -> u64 {
    CHANGES.with(std::cell::Cell::get)
}

/// Runs `f` and notes the connection's changed-row count after it.
fn counting<T>(conn: &Connection, f: impl FnOnce(&Connection) -> T) -> T {
    let out = f(conn);
    CHANGES.with(|c| c.set(conn.total_changes()));
    out
}

#[sea_orm::prelude::async_trait::async_trait]
impl ProxyDatabaseTrait for Dedicated {
    async fn query(&self, statement: Statement) -> std::result::Result<Vec<ProxyRow>, DbErr> {
        // A query may write too (`INSERT ... RETURNING`).
        self.with(|conn| counting(conn, |c| query(c, &statement)))
    }

    async fn execute(&self, statement: Statement) -> std::result::Result<ProxyExecResult, DbErr> {
        self.with(|conn| counting(conn, |c| execute(c, &statement)))
    }

    // IMMEDIATE takes the write lock at once (waiting up to busy_timeout
    // for another process's writer), so no statement of the transaction
    // can fail to upgrade a read lock later.
    async fn begin(&self) {
        self.control("BEGIN IMMEDIATE", false);
    }

    async fn commit(&self) {
        self.control("COMMIT", true);
    }

    async fn rollback(&self) {
        self.control("ROLLBACK", true);
    }

    fn start_rollback(&self) {
        self.control("ROLLBACK", true);
    }

    async fn ping(&self) -> std::result::Result<(), DbErr> {
        self.with(ping)
    }
}

/// Checks the connection answers.
fn ping(conn: &Connection) -> std::result::Result<(), DbErr> {
    conn.query_row("SELECT 1", [], |_| Ok(()))
        .map_err(query_err)
}

/// Runs a statement that changes rows. A statement without values may hold
/// several (`RELEASE job; SAVEPOINT job`).
fn execute(
    conn: &Connection,
    statement: &Statement,
) -> std::result::Result<ProxyExecResult, DbErr> {
    let values = statement.values.as_ref().map_or(&[][..], |v| &v.0[..]);
    if values.is_empty() && statement.sql.contains(';') {
        conn.execute_batch(&statement.sql).map_err(exec_err)?;
    } else {
        let mut stmt = conn.prepare_cached(&statement.sql).map_err(exec_err)?;
        bind_all(&mut stmt, values)?;
        stmt.raw_execute().map_err(exec_err)?;
    }
    Ok(ProxyExecResult {
        last_insert_id: u64::try_from(conn.last_insert_rowid()).unwrap_or(0),
        rows_affected: conn.changes(),
    })
}

/// Runs a query and returns its rows.
fn query(conn: &Connection, statement: &Statement) -> std::result::Result<Vec<ProxyRow>, DbErr> {
    let values = statement.values.as_ref().map_or(&[][..], |v| &v.0[..]);
    let mut stmt = conn.prepare_cached(&statement.sql).map_err(query_err)?;
    bind_all(&mut stmt, values)?;
    let columns: Vec<(String, Option<Kind>)> = stmt
        .columns_with_metadata()
        .iter()
        .map(|c| {
            let kind = match (c.table_name(), c.origin_name()) {
                (Some(table), Some(column)) => declared_kind(table, column),
                _ => None,
            };
            (c.name().to_owned(), kind)
        })
        .collect();
    // sea-orm reads a proxy row by name, or by position as the n-th entry
    // of its (sorted) map: each value is stored under its name and under a
    // key that sorts before every name, in column order.
    let positions: Vec<String> = (0..columns.len()).map(|i| format!("\u{1}{i:05}")).collect();
    let mut rows = stmt.raw_query();
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(query_err)? {
        let mut values = BTreeMap::new();
        for (i, (name, kind)) in columns.iter().enumerate() {
            let raw = row.get_ref(i).map_err(query_err)?;
            let value =
                decode(raw, *kind).map_err(|why| DbErr::Type(format!("column {name:?}: {why}")))?;
            values.insert(positions[i].clone(), value.clone());
            values.insert(name.clone(), value);
        }
        out.push(ProxyRow { values });
    }
    Ok(out)
}

fn bind_all(
    stmt: &mut rusqlite::CachedStatement<'_>,
    values: &[Value],
) -> std::result::Result<(), DbErr> {
    for (i, value) in values.iter().enumerate() {
        stmt.raw_bind_parameter(i + 1, encode(value)?)
            .map_err(query_err)?;
    }
    Ok(())
}

/// A value bound as sqlx binds it for SQLite.
fn encode(value: &Value) -> std::result::Result<ToSqlOutput<'_>, DbErr> {
    use ToSqlOutput::{Borrowed, Owned};
    fn int(v: Option<i64>) -> ToSqlOutput<'static> {
        Owned(v.map_or(Sql::Null, Sql::Integer))
    }
    Ok(match value {
        Value::Bool(v) => int(v.map(i64::from)),
        Value::TinyInt(v) => int(v.map(i64::from)),
        Value::SmallInt(v) => int(v.map(i64::from)),
        Value::Int(v) => int(v.map(i64::from)),
        Value::BigInt(v) => int(*v),
        Value::TinyUnsigned(v) => int(v.map(i64::from)),
        Value::SmallUnsigned(v) => int(v.map(i64::from)),
        Value::Unsigned(v) => int(v.map(i64::from)),
        Value::BigUnsigned(v) => match v {
            Some(v) => int(Some(i64::try_from(*v).map_err(|_| {
                DbErr::Type(format!("{v} does not fit a SQLite integer"))
            })?)),
            None => int(None),
        },
        Value::Float(v) => Owned(v.map_or(Sql::Null, |f| Sql::Real(f64::from(f)))),
        Value::Double(v) => Owned(v.map_or(Sql::Null, Sql::Real)),
        Value::String(v) => match v {
            Some(s) => Borrowed(ValueRef::Text(s.as_bytes())),
            None => Owned(Sql::Null),
        },
        Value::Char(v) => Owned(v.map_or(Sql::Null, |c| Sql::Text(c.to_string()))),
        Value::Bytes(v) => match v {
            Some(b) => Borrowed(ValueRef::Blob(b)),
            None => Owned(Sql::Null),
        },
        Value::Json(v) => Owned(v.as_ref().map_or(Sql::Null, |j| Sql::Text(j.to_string()))),
        Value::ChronoDateTimeUtc(v) => Owned(v.map_or(Sql::Null, |t| {
            Sql::Text(t.to_rfc3339_opts(SecondsFormat::AutoSi, false))
        })),
        Value::ChronoDateTimeWithTimeZone(v) => Owned(v.map_or(Sql::Null, |t| {
            Sql::Text(t.to_rfc3339_opts(SecondsFormat::AutoSi, false))
        })),
        Value::ChronoDateTime(v) => {
            Owned(v.map_or(Sql::Null, |t| Sql::Text(t.format("%F %T%.f").to_string())))
        }
        Value::Uuid(v) => Owned(v.map_or(Sql::Null, |u| Sql::Blob(u.as_bytes().to_vec()))),
        other => {
            return Err(DbErr::Type(format!(
                "a {other:?} value cannot be bound for SQLite"
            )));
        }
    })
}

/// The value type sea-orm expects for a column.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Bool,
    Int,
    BigInt,
    Text,
    Timestamp,
    Real,
    Bytes,
}

/// The kind of `table.column` as its entity declares it. Looked up for
/// every result column of every query, so by borrowed names.
fn declared_kind(table: &str, column: &str) -> Option<Kind> {
    static KINDS: OnceLock<HashMap<String, HashMap<String, Kind>>> = OnceLock::new();
    KINDS
        .get_or_init(|| {
            use crate::entity::*;
            let mut kinds = HashMap::new();
            add::<tenants::Entity>(&mut kinds);
            add::<tokens::Entity>(&mut kinds);
            add::<auth_revision::Entity>(&mut kinds);
            add::<operators::Entity>(&mut kinds);
            add::<users::Entity>(&mut kinds);
            add::<user_emails::Entity>(&mut kinds);
            add::<groups::Entity>(&mut kinds);
            add::<memberships::Entity>(&mut kinds);
            add::<provisioning_log::Entity>(&mut kinds);
            add::<event_log::Entity>(&mut kinds);
            add::<targets::Entity>(&mut kinds);
            add::<deliveries::Entity>(&mut kinds);
            add::<delivery_attempts::Entity>(&mut kinds);
            add::<remote_ids::Entity>(&mut kinds);
            add::<role_settings::Entity>(&mut kinds);
            add::<roles::Entity>(&mut kinds);
            add::<role_mappings::Entity>(&mut kinds);
            add::<role_locks::Entity>(&mut kinds);
            add::<user_roles::Entity>(&mut kinds);
            add::<tenant_admins::Entity>(&mut kinds);
            add::<admin_audit::Entity>(&mut kinds);
            add::<jobs::Entity>(&mut kinds);
            add::<super_links::Entity>(&mut kinds);
            add::<routing_policies::Entity>(&mut kinds);
            add::<copies::Entity>(&mut kinds);
            add::<deletion_safety::Entity>(&mut kinds);
            add::<held_changes::Entity>(&mut kinds);
            add::<protected_users::Entity>(&mut kinds);
            add::<deleted_users::Entity>(&mut kinds);
            add::<setup_links::Entity>(&mut kinds);
            kinds
        })
        .get(table)?
        .get(column)
        .copied()
}

fn add<E: EntityTrait>(kinds: &mut HashMap<String, HashMap<String, Kind>>) {
    let columns = kinds
        .entry(E::default().table_name().to_owned())
        .or_default();
    for column in E::Column::iter() {
        let kind = match column.def().get_column_type() {
            ColumnType::Boolean => Kind::Bool,
            ColumnType::TinyInteger | ColumnType::SmallInteger | ColumnType::Integer => Kind::Int,
            ColumnType::BigInteger => Kind::BigInt,
            ColumnType::TimestampWithTimeZone | ColumnType::Timestamp | ColumnType::DateTime => {
                Kind::Timestamp
            }
            ColumnType::Float | ColumnType::Double => Kind::Real,
            ColumnType::Binary(_) | ColumnType::VarBinary(_) | ColumnType::Blob => Kind::Bytes,
            _ => Kind::Text,
        };
        columns.insert(column.as_str().to_owned(), kind);
    }
}

/// A SQLite value as the sea-orm value of `kind` (or, for a computed
/// column, of its storage class).
fn decode(raw: ValueRef<'_>, kind: Option<Kind>) -> std::result::Result<Value, String> {
    let text = |b: &[u8]| {
        std::str::from_utf8(b)
            .map(str::to_owned)
            .map_err(|_| "text that is not UTF-8".to_owned())
    };
    Ok(match (kind, raw) {
        (Some(Kind::Bool), ValueRef::Null) => Value::Bool(None),
        (Some(Kind::Int), ValueRef::Null) => Value::Int(None),
        (Some(Kind::BigInt), ValueRef::Null) => Value::BigInt(None),
        (Some(Kind::Timestamp), ValueRef::Null) => Value::ChronoDateTimeUtc(None),
        (Some(Kind::Real), ValueRef::Null) => Value::Double(None),
        (Some(Kind::Bytes), ValueRef::Null) => Value::Bytes(None),
        (Some(Kind::Text) | None, ValueRef::Null) => Value::String(None),
        (Some(Kind::Bool), ValueRef::Integer(i)) => Value::Bool(Some(i != 0)),
        (Some(Kind::Int), ValueRef::Integer(i)) => Value::Int(Some(
            i32::try_from(i).map_err(|_| format!("{i} does not fit a 32-bit integer"))?,
        )),
        (Some(Kind::BigInt) | None, ValueRef::Integer(i)) => Value::BigInt(Some(i)),
        (Some(Kind::Timestamp), ValueRef::Text(t)) => {
            Value::ChronoDateTimeUtc(Some(timestamp(&text(t)?)?))
        }
        (Some(Kind::Timestamp), ValueRef::Integer(secs)) => Value::ChronoDateTimeUtc(Some(
            DateTime::from_timestamp(secs, 0).ok_or_else(|| format!("bad timestamp {secs}"))?,
        )),
        (Some(Kind::Real) | None, ValueRef::Real(f)) => Value::Double(Some(f)),
        (Some(Kind::Real), ValueRef::Integer(i)) => Value::Double(Some(i as f64)),
        (Some(Kind::Text) | None, ValueRef::Text(t)) => Value::String(Some(text(t)?)),
        (Some(Kind::Text), ValueRef::Integer(i)) => Value::String(Some(i.to_string())),
        (Some(Kind::Bytes) | None, ValueRef::Blob(b)) => Value::Bytes(Some(b.to_vec())),
        (kind, raw) => {
            return Err(format!(
                "a {:?} value where {kind:?} was expected",
                raw.data_type()
            ));
        }
    })
}

/// Parses a stored timestamp: RFC 3339 as sqlx writes it, or the
/// `YYYY-MM-DD HH:MM:SS[.fff]` form SQLite's own functions produce.
fn timestamp(s: &str) -> std::result::Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    for format in ["%F %T%.f%:z", "%F %T%.f%#z"] {
        if let Ok(t) = DateTime::parse_from_str(s, format) {
            return Ok(t.with_timezone(&Utc));
        }
    }
    for format in ["%F %T%.f", "%FT%T%.f"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, format) {
            return Ok(t.and_utc());
        }
    }
    Err(format!("unreadable timestamp {s:?}"))
}

/// A SQLite error as sea-orm carries driver errors, so one classification
/// (`db::db`, `db::sql_err`) serves both drivers.
#[derive(Debug)]
pub(crate) struct SqliteError {
    /// SQLite's extended result code.
    code: i32,
    message: String,
}

impl std::fmt::Display for SqliteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "(code: {}) {}", self.code, self.message)
    }
}

impl std::error::Error for SqliteError {}

impl DatabaseError for SqliteError {
    fn message(&self) -> &str {
        &self.message
    }

    fn code(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Owned(self.code.to_string()))
    }

    fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        self
    }

    fn kind(&self) -> ErrorKind {
        match self.code {
            // SQLITE_CONSTRAINT_UNIQUE, _PRIMARYKEY
            2067 | 1555 => ErrorKind::UniqueViolation,
            // SQLITE_CONSTRAINT_FOREIGNKEY
            787 => ErrorKind::ForeignKeyViolation,
            // SQLITE_CONSTRAINT_NOTNULL
            1299 => ErrorKind::NotNullViolation,
            // SQLITE_CONSTRAINT_CHECK
            275 => ErrorKind::CheckViolation,
            _ => ErrorKind::Other,
        }
    }
}

fn driver_error(e: rusqlite::Error) -> Arc<sea_orm::sqlx::Error> {
    let error = match e {
        rusqlite::Error::SqliteFailure(code, message) => SqliteError {
            code: code.extended_code,
            message: message.unwrap_or_else(|| code.to_string()),
        },
        // Misuse of the API (a type, a column index): not SQLite's.
        other => return Arc::new(sea_orm::sqlx::Error::Protocol(other.to_string())),
    };
    Arc::new(sea_orm::sqlx::Error::Database(Box::new(error)))
}

fn query_err(e: rusqlite::Error) -> DbErr {
    DbErr::Query(RuntimeErr::SqlxError(driver_error(e)))
}

fn exec_err(e: rusqlite::Error) -> DbErr {
    DbErr::Exec(RuntimeErr::SqlxError(driver_error(e)))
}

fn conn_err(e: rusqlite::Error) -> DbErr {
    DbErr::Conn(RuntimeErr::SqlxError(driver_error(e)))
}

/// Wraps a proxy as the connection sea-orm runs statements on.
pub(crate) async fn connection(
    proxy: impl ProxyDatabaseTrait + 'static,
) -> Result<sea_orm::DatabaseConnection> {
    sea_orm::Database::connect_proxy(sea_orm::DbBackend::Sqlite, Arc::new(Box::new(proxy)))
        .await
        .map_err(crate::db::db)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_read_back_as_written() {
        let t = crate::db::now();
        let Value::ChronoDateTimeUtc(Some(back)) = decode(
            ValueRef::Text(t.to_rfc3339_opts(SecondsFormat::AutoSi, false).as_bytes()),
            Some(Kind::Timestamp),
        )
        .expect("decodes") else {
            panic!("not a timestamp");
        };
        assert_eq!(back, t);
        assert_eq!(
            timestamp("2026-11-23 03:04:05.678").expect("parses"),
            DateTime::parse_from_rfc3339("2026-11-23T03:04:05.678Z").expect("valid")
        );
        assert!(timestamp("yesterday").is_err());
    }

    #[test]
    fn integers_take_the_width_their_entity_declares() {
        assert_eq!(declared_kind("users", "version"), Some(Kind::BigInt));
        assert_eq!(declared_kind("user_emails", "position"), Some(Kind::Int));
        assert_eq!(declared_kind("users", "active"), Some(Kind::Bool));
        assert_eq!(declared_kind("users", "created_at"), Some(Kind::Timestamp));
        assert_eq!(declared_kind("users", "nope"), None);
        assert!(decode(ValueRef::Integer(1 << 40), Some(Kind::Int)).is_err());
        assert_eq!(
            decode(ValueRef::Null, Some(Kind::Bool)).expect("null"),
            Value::Bool(None)
        );
    }

    #[test]
    fn values_are_bound_as_sqlx_bound_them() {
        let t = DateTime::parse_from_rfc3339("2026-11-23T03:04:05.678Z")
            .expect("valid")
            .with_timezone(&Utc);
        let text = |v: &Value| match encode(v).expect("encodes") {
            ToSqlOutput::Owned(Sql::Text(s)) => s,
            other => panic!("not text: {other:?}"),
        };
        assert_eq!(
            text(&Value::ChronoDateTimeUtc(Some(t))),
            "2026-11-23T03:04:05.678+00:00"
        );
        assert!(matches!(
            encode(&Value::Bool(Some(true))).expect("encodes"),
            ToSqlOutput::Owned(Sql::Integer(1))
        ));
        assert!(matches!(
            encode(&Value::BigUnsigned(Some(u64::MAX))),
            Err(DbErr::Type(_))
        ));
    }

    fn opener(dir: &tempfile::TempDir, busy_ms: u64) -> Opener {
        let url = format!("sqlite://{}/t.db?mode=rwc", dir.path().display());
        Opener::from_url(&url, true, Duration::from_millis(busy_ms), 0, -1024).expect("valid")
    }

    #[tokio::test]
    async fn a_begin_that_failed_fails_the_next_statement() {
        use sea_orm::{ConnectionTrait, TransactionTrait};
        let dir = tempfile::tempdir().expect("temp dir");
        let open = opener(&dir, 50);
        let conn = connection(Dedicated::new(&open).expect("opens"))
            .await
            .expect("connects");
        conn.execute_unprepared("CREATE TABLE t (x INTEGER)")
            .await
            .expect("creates");
        // Another connection holds the write lock past the busy timeout.
        let other = open.open().expect("opens");
        other.execute_batch("BEGIN IMMEDIATE").expect("locks");
        let txn = conn
            .begin()
            .await
            .expect("sea-orm's begin cannot fail here");
        // A read would succeed outside a transaction (WAL readers do not
        // wait for the writer): only the kept error makes it fail.
        let err = txn
            .query_all_raw(Statement::from_string(
                sea_orm::DbBackend::Sqlite,
                "SELECT x FROM t",
            ))
            .await
            .expect_err("the transaction never began");
        assert!(
            matches!(crate::db::db(err), StoreError::Unavailable(_)),
            "BUSY is reported as unavailable"
        );
        drop(txn);
        other.execute_batch("ROLLBACK").expect("unlocks");
        // The error was reported once; the connection works again.
        let txn = conn.begin().await.expect("begins");
        txn.execute_unprepared("INSERT INTO t VALUES (2)")
            .await
            .expect("inserts");
        txn.commit().await.expect("commits");
        let n: i64 = other
            .query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
            .expect("counts");
        assert_eq!(n, 1);
    }

    #[tokio::test]
    async fn a_reader_left_in_a_transaction_is_not_reused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let readers = Readers::new(opener(&dir, 50), 4).expect("opens");
        let stmt = |sql: &str| Statement::from_string(sea_orm::DbBackend::Sqlite, sql);
        readers
            .execute(stmt("CREATE TABLE t (x INTEGER)"))
            .await
            .expect("creates");
        readers.execute(stmt("BEGIN")).await.expect("begins");
        assert_eq!(readers.idle.lock().expect("lock").len(), 0);
        readers
            .execute(stmt("INSERT INTO t VALUES (1)"))
            .await
            .expect("inserts outside any transaction");
        assert_eq!(readers.idle.lock().expect("lock").len(), 1);
        let rows = readers.query(stmt("SELECT x FROM t")).await.expect("reads");
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].try_get::<i64, _>("x").expect("x"), 1);
    }

    /// With the writer never checkpointing by itself, the checkpoint
    /// thread copies the log back into the database; once the log passes
    /// its bound the writer is asked to finish a checkpoint, which then
    /// copies all of it, and the next commit starts the log over. (Every
    /// wait is bounded and none depends on how fast either thread runs.)
    #[test]
    fn the_log_is_checkpointed_off_the_writer_and_starts_over() {
        let dir = tempfile::tempdir().expect("temp dir");
        let open = opener(&dir, 1_000);
        let writer = open.open().expect("opens");
        writer
            .execute_batch("PRAGMA wal_autocheckpoint = 0; CREATE TABLE t (x BLOB)")
            .expect("creates");
        // 256 frames: 1 MiB of 4 KiB pages; a commit below writes 8.
        let checkpointer = Checkpointer::start(&open, 256).expect("starts");
        let commit = || {
            writer
                .execute_batch("BEGIN IMMEDIATE; INSERT INTO t VALUES (randomblob(30000)); COMMIT")
                .expect("writes");
        };
        // (frames in the log, frames copied), after the writer's own
        // checkpoint.
        let checkpoint = || {
            writer
                .query_row(WRITER_CHECKPOINT, [], |r| {
                    Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
                })
                .expect("checkpoints")
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let mut asked = false;
        while !asked && std::time::Instant::now() < deadline {
            commit();
            asked = checkpointer.committed();
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(asked, "the writer was never asked to finish a checkpoint");
        // The thread saw a log of 256 frames or more; a writer mid-commit
        // may hold back its last frames, so ask for a quarter of them in
        // the database file (an empty table is two pages).
        let copied = std::fs::metadata(dir.path().join("t.db")).map_or(0, |m| m.len());
        assert!(
            copied > 1 << 18,
            "the checkpoint thread copied nothing back ({copied} bytes)"
        );
        let caught_up = (0..100).any(|_| {
            let (log, done) = checkpoint();
            std::thread::sleep(Duration::from_millis(10));
            // The thread may have copied it all already, and a commit
            // since started the log over: also caught up.
            done == log
        });
        assert!(
            caught_up,
            "the writer's checkpoint did not copy the whole log"
        );
        let started_over = (0..100).any(|_| {
            commit();
            let (log, _) = checkpoint();
            log < 64
        });
        assert!(started_over, "the log did not start over");
    }

    #[test]
    fn urls_name_a_file_and_a_mode() {
        let open = |url| Opener::from_url(url, true, Duration::from_secs(1), 0, -1024);
        assert_eq!(
            open("sqlite:///tmp/x.db?mode=rwc").expect("valid").path,
            PathBuf::from("/tmp/x.db")
        );
        assert_eq!(
            open("sqlite://./x.db").expect("valid").path,
            PathBuf::from("./x.db")
        );
        assert!(open("sqlite::memory:").is_err());
        assert!(open("sqlite:///x.db?cache=shared").is_err());
    }
}
