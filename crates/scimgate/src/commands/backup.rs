//! `scimgate backup FILE`: a consistent copy of the embedded SQLite
//! database, taken while servers use it.
//!
//! SQLite's `VACUUM INTO` reads the database in one read transaction (in
//! WAL mode, writers go on meanwhile and readers never block them) and
//! writes what that transaction sees into a new file: a copy of one
//! committed state, whatever commits around it. Copying the database file
//! itself while a server runs would not be: recent commits live in the
//! `-wal` file until a checkpoint moves them, and a checkpoint may run in
//! the middle of a copy.
//!
//! The copy is written under a temporary name in the target's directory
//! (created empty and private first: it holds every tenant's directory),
//! synced, checked with `PRAGMA quick_check`, and only then given its name
//! with a hard link, which never replaces an existing file. So `FILE` is
//! either absent or a complete, checked copy, and an existing `FILE` is
//! never touched.
//!
//! Unlike every other command, `backup` applies no migrations and creates
//! nothing: a backup taken with a new binary before an upgrade holds the
//! schema the old one used. PostgreSQL is refused without connecting:
//! `pg_dump -Fc` backs it up (docs/operations.md).

use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use serde_json::json;

use super::{CommandError, Output};
use crate::config::Config;

/// How long the copy waits for SQLite's locks (a read transaction in WAL
/// mode only waits in rare moments, such as another connection's recovery).
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// The table sea-orm records applied migrations in: present in every
/// scimgate database.
const MIGRATIONS_TABLE: &str = "seaql_migrations";

/// Why a backup was not made. In every case `FILE` is left as it was.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The configured database is PostgreSQL.
    #[error(
        "scimgate backup copies the embedded SQLite database; this deployment uses PostgreSQL \
         ({database}): back it up with `pg_dump -Fc` and restore it with `pg_restore` \
         (see \"Backups and restore\" in docs/operations.md); nothing was done"
    )]
    Postgres {
        /// The database, password redacted.
        database: String,
    },
    /// The `sqlite:` URL names no file.
    #[error("database_url {0:?} names no SQLite file to back up")]
    BadUrl(String),
    /// There is no database file to copy.
    #[error("there is no database at {0}: nothing to back up (check --data-dir or database_url)")]
    NoDatabase(PathBuf),
    /// The file is a SQLite database but not a scimgate one (or an empty one
    /// that no scimgate process has set up yet).
    #[error("{0} holds no scimgate database (no migrations were ever applied to it)")]
    NotScimgate(PathBuf),
    /// `FILE` exists already.
    #[error("{0} already exists; a backup never replaces a file: name a new one")]
    Exists(PathBuf),
    /// `FILE`'s directory does not exist.
    #[error("directory {0} does not exist")]
    NoDirectory(PathBuf),
    /// SQLite takes file names as UTF-8.
    #[error("the backup file name {0:?} is not valid UTF-8")]
    NotUtf8(PathBuf),
    /// SQLite failed reading the database or writing the copy.
    #[error("cannot copy {database} to {path}: {source}")]
    Sqlite {
        /// The database file.
        database: PathBuf,
        /// The file being written.
        path: PathBuf,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// The copy was written but does not pass SQLite's check.
    #[error("the copy made for {path} failed SQLite's quick_check ({report}); it was removed")]
    Check {
        /// The file that was written.
        path: PathBuf,
        /// What the check said.
        report: String,
    },
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The copying thread panicked or was cancelled.
    #[error("the backup did not finish: {0}")]
    Interrupted(String),
}

/// What a backup wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Written {
    /// The new file, absolute.
    path: PathBuf,
    /// Its size.
    bytes: u64,
    /// Migrations the copy has applied (the schema version).
    schema_version: u64,
}

/// `scimgate backup FILE`.
pub async fn backup(config: &Config, file: &Path) -> Result<Output, CommandError> {
    let source = sqlite_file(config)?;
    let database = config.database_display();
    let target = std::path::absolute(file).map_err(|source| BackupError::Io {
        path: file.to_owned(),
        source,
    })?;
    let written = tokio::task::spawn_blocking(move || copy(&source, &target))
        .await
        .map_err(|e| BackupError::Interrupted(e.to_string()))??;
    let path = written.path.display().to_string();
    Ok(Output {
        json: json!({
            "path": path,
            "bytes": written.bytes,
            "database": database,
            "schema_version": written.schema_version,
        }),
        text: format!(
            "Backed up {database} to {path} ({}, schema version {}).\n\
             The copy holds the database only: back up the configuration and the keys \
             (delivery_secrets_key or target-secrets.key, admin_jwt_keys or admin-jwt.key) \
             too, kept apart from it. Restoring: \"Backups and restore\" in docs/operations.md.",
            human_bytes(written.bytes),
            written.schema_version,
        ),
    })
}

/// The SQLite file the configuration names; PostgreSQL is refused.
fn sqlite_file(config: &Config) -> Result<PathBuf, BackupError> {
    if !config.is_sqlite() {
        return Err(BackupError::Postgres {
            database: config.database_display(),
        });
    }
    match &config.database_url {
        None => Ok(config.sqlite_path()),
        Some(url) => sqlite_url_path(url.expose())
            .ok_or_else(|| BackupError::BadUrl(crate::config::redact_url(url.expose()))),
    }
}

/// The file of a `sqlite://PATH[?...]` (or `sqlite:PATH`) URL, read as the
/// store reads it.
fn sqlite_url_path(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split_once('?').map_or(rest, |(path, _)| path);
    (!path.is_empty() && !path.starts_with(":memory:")).then(|| PathBuf::from(path))
}

/// Copies `source` to `target` (absolute); blocking.
fn copy(source: &Path, target: &Path) -> Result<Written, BackupError> {
    match std::fs::metadata(source) {
        Ok(meta) if meta.is_file() => {}
        Ok(_) => return Err(BackupError::NoDatabase(source.to_owned())),
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return Err(BackupError::NoDatabase(source.to_owned()));
        }
        Err(e) => {
            return Err(BackupError::Io {
                path: source.to_owned(),
                source: e,
            });
        }
    }
    if std::fs::symlink_metadata(target).is_ok() {
        return Err(BackupError::Exists(target.to_owned()));
    }
    let dir = target.parent().unwrap_or(Path::new("/"));
    if !dir.is_dir() {
        return Err(BackupError::NoDirectory(dir.to_owned()));
    }
    let name = target
        .file_name()
        .ok_or_else(|| BackupError::Exists(target.to_owned()))?;
    let partial = dir.join(format!(
        ".{}.{}.partial",
        name.to_string_lossy(),
        uuid::Uuid::new_v4().simple()
    ));
    let partial_text = partial
        .to_str()
        .ok_or_else(|| BackupError::NotUtf8(target.to_owned()))?
        .to_owned();

    let sqlite = |error| BackupError::Sqlite {
        database: source.to_owned(),
        path: target.to_owned(),
        source: error,
    };
    let conn =
        Connection::open_with_flags(source, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(sqlite)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(sqlite)?;
    if !has_migrations(&conn).map_err(sqlite)? {
        return Err(BackupError::NotScimgate(source.to_owned()));
    }

    // Private from the start; VACUUM INTO accepts an empty file.
    let guard = Partial::create(&partial)?;
    conn.execute("VACUUM INTO ?1", [partial_text.as_str()])
        .map_err(sqlite)?;
    drop(conn);
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| BackupError::Io { path, source }
    };
    File::open(&partial)
        .and_then(|f| f.sync_all())
        .map_err(io(&partial))?;

    let schema_version = check(&partial).map_err(|report| BackupError::Check {
        path: target.to_owned(),
        report,
    })?;

    guard.publish(target)?;
    let bytes = std::fs::metadata(target).map_err(io(target))?.len();
    Ok(Written {
        path: target.to_owned(),
        bytes,
        schema_version,
    })
}

/// Whether the database has sea-orm's migrations table.
fn has_migrations(conn: &Connection) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
        [MIGRATIONS_TABLE],
        |row| row.get::<_, i64>(0),
    )
    .map(|n| n > 0)
}

/// Runs `PRAGMA quick_check` on the copy and returns its schema version;
/// an error is the check's report (or why it could not run).
fn check(path: &Path) -> Result<u64, String> {
    let run = || -> rusqlite::Result<Result<u64, String>> {
        let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        let report: Vec<String> = conn
            .prepare("PRAGMA quick_check")?
            .query_map([], |row| row.get::<_, String>(0))?
            .collect::<rusqlite::Result<_>>()?;
        if report != ["ok"] {
            return Ok(Err(report.join("; ")));
        }
        if !has_migrations(&conn)? {
            return Ok(Err(format!("no {MIGRATIONS_TABLE} table")));
        }
        let version: i64 = conn.query_row(
            &format!("SELECT COUNT(*) FROM {MIGRATIONS_TABLE}"),
            [],
            |row| row.get(0),
        )?;
        Ok(Ok(u64::try_from(version).unwrap_or_default()))
    };
    run().map_err(|e| e.to_string())?
}

/// The copy under its temporary name, removed unless published.
struct Partial {
    path: PathBuf,
    published: bool,
}

impl Partial {
    /// Creates the empty temporary file, readable by this user only.
    fn create(path: &Path) -> Result<Partial, BackupError> {
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        options.open(path).map_err(|source| BackupError::Io {
            path: path.to_owned(),
            source,
        })?;
        Ok(Partial {
            path: path.to_owned(),
            published: false,
        })
    }

    /// Gives the copy its name, never replacing a file: a hard link (which
    /// fails if the name exists), else, on a file system without hard
    /// links, a rename after checking the name is free.
    fn publish(mut self, target: &Path) -> Result<(), BackupError> {
        let io = |source| BackupError::Io {
            path: target.to_owned(),
            source,
        };
        match std::fs::hard_link(&self.path, target) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                return Err(BackupError::Exists(target.to_owned()));
            }
            Err(_) => {
                if std::fs::symlink_metadata(target).is_ok() {
                    return Err(BackupError::Exists(target.to_owned()));
                }
                std::fs::rename(&self.path, target).map_err(io)?;
                self.published = true;
            }
        }
        if !self.published {
            // The name is in place; the temporary one goes (Drop).
            let _ = std::fs::remove_file(&self.path);
            self.published = true;
        }
        // Make the new name durable; a file system that cannot sync a
        // directory still has the file.
        if let Some(dir) = target.parent()
            && let Ok(dir) = File::open(dir)
        {
            let _ = dir.sync_all();
        }
        Ok(())
    }
}

impl Drop for Partial {
    fn drop(&mut self) {
        if !self.published {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// `1536` → `1.5 KiB`.
fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} bytes");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = UNITS[0];
    for next in &UNITS[1..] {
        if value < 1024.0 {
            break;
        }
        value /= 1024.0;
        unit = next;
    }
    format!("{value:.1} {unit}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls() {
        assert_eq!(
            sqlite_url_path("sqlite:///srv/db/x.db?mode=rwc"),
            Some(PathBuf::from("/srv/db/x.db"))
        );
        assert_eq!(
            sqlite_url_path("sqlite:rel/x.db"),
            Some(PathBuf::from("rel/x.db"))
        );
        assert_eq!(sqlite_url_path("sqlite://?mode=rwc"), None);
        assert_eq!(sqlite_url_path("sqlite::memory:"), None);
        assert_eq!(sqlite_url_path("postgres://h/db"), None);
    }

    #[test]
    fn sizes() {
        assert_eq!(human_bytes(0), "0 bytes");
        assert_eq!(human_bytes(1023), "1023 bytes");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(5 * 1024 * 1024), "5.0 MiB");
        assert_eq!(human_bytes(3 * 1024 * 1024 * 1024), "3.0 GiB");
    }

    #[test]
    fn copies_refuses_to_overwrite_and_checks() {
        let dir = tempfile::tempdir().expect("temp dir");
        let source = dir.path().join("src.db");
        {
            let conn = Connection::open(&source).expect("open");
            conn.execute_batch(
                "PRAGMA journal_mode = WAL; \
                 CREATE TABLE seaql_migrations (version TEXT PRIMARY KEY, applied_at INTEGER); \
                 INSERT INTO seaql_migrations VALUES ('m0001', 0), ('m0002', 0); \
                 CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (42);",
            )
            .expect("set up");
        }
        let target = dir.path().join("copy.db");
        let written = copy(&source, &target).expect("backup");
        assert_eq!(written.schema_version, 2);
        assert_eq!(written.path, target);
        let copy_conn = Connection::open(&target).expect("open copy");
        let x: i64 = copy_conn
            .query_row("SELECT x FROM t", [], |r| r.get(0))
            .expect("row");
        assert_eq!(x, 42);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&target)
                .expect("meta")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }

        let before = std::fs::read(&target).expect("read");
        assert!(matches!(
            copy(&source, &target),
            Err(BackupError::Exists(_))
        ));
        assert_eq!(std::fs::read(&target).expect("read"), before);
        // No temporary file is left behind.
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .expect("list")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".partial"))
            .collect();
        assert!(names.is_empty(), "{names:?}");

        // Not a scimgate database; no database at all.
        let plain = dir.path().join("plain.db");
        Connection::open(&plain)
            .and_then(|c| c.execute_batch("CREATE TABLE t (x INTEGER);"))
            .expect("plain");
        assert!(matches!(
            copy(&plain, &dir.path().join("p.db")),
            Err(BackupError::NotScimgate(_))
        ));
        assert!(matches!(
            copy(&dir.path().join("none.db"), &dir.path().join("n.db")),
            Err(BackupError::NoDatabase(_))
        ));
        assert!(!dir.path().join("p.db").exists());
        assert!(matches!(
            copy(&source, &dir.path().join("no-such-dir").join("x.db")),
            Err(BackupError::NoDirectory(_))
        ));
    }
}
