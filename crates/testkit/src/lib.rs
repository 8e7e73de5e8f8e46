//! Test support for every integration test of the workspace: a fresh, empty
//! database per test, on SQLite (a file in a new temporary directory) or
//! PostgreSQL (a new database on a shared test server), and a webhook
//! receiver ([`receiver`]) that delivery tests point targets at.
//!
//! The PostgreSQL server is the one `SCIMGATE_TEST_POSTGRES_URL` names (an
//! admin URL; `scripts/test-postgres` starts one and prints it). Without
//! it, the first test that needs PostgreSQL starts a throw-away server
//! (`initdb` + `pg_ctl`, loopback only, `fsync=off`) in a fixed directory
//! under the system temp dir, guarded by a file lock, so that concurrently
//! running test processes (nextest runs each test in its own) share one
//! server; later runs reuse it while it is up. If PostgreSQL cannot be
//! found or started, the test panics: tests never silently skip a backend.

use std::fs::{self, File};
use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use sea_orm::{ConnectionTrait, Database};
use tempfile::TempDir;

pub mod pg_private;
pub mod receiver;
pub mod redis_server;

pub use pg_private::PrivatePostgres;

/// The environment variable naming an existing PostgreSQL server to use.
pub const POSTGRES_URL_ENV: &str = "SCIMGATE_TEST_POSTGRES_URL";

/// A database engine the tests run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestDb {
    /// SQLite, a file in a temporary directory.
    Sqlite,
    /// PostgreSQL, a fresh database on the shared test server.
    Postgres,
}

/// Every engine; each test runs on all of them.
pub fn backends() -> [TestDb; 2] {
    [TestDb::Sqlite, TestDb::Postgres]
}

/// One fresh database. Dropping it removes the SQLite directory or drops
/// the PostgreSQL database.
pub struct TestDatabase {
    /// The URL to connect to (`sqlite://...?mode=rwc` or `postgres://...`).
    pub url: String,
    /// Which engine.
    pub which: TestDb,
    // Kept alive so the SQLite file outlives the test's connections.
    _dir: Option<TempDir>,
    pg_name: Option<String>,
}

impl TestDatabase {
    /// Scans every row of every table for each of `needles`
    /// (case-insensitive, as text) and names where each one is found
    /// (`"table: needle"`): how a test proves that data is gone.
    pub async fn find_text(&self, needles: &[&str]) -> Vec<String> {
        let needles: Vec<String> = needles.iter().map(|n| n.to_lowercase()).collect();
        match self.which {
            TestDb::Sqlite => {
                let path = self
                    .url
                    .trim_start_matches("sqlite://")
                    .split('?')
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                match tokio::task::spawn_blocking(move || scan_sqlite(&path, &needles)).await {
                    Ok(found) => found,
                    Err(e) => panic!("scanning the SQLite database failed: {e}"),
                }
            }
            TestDb::Postgres => scan_postgres(&self.url, &needles).await,
        }
    }
}

/// A `LIKE` pattern for text containing `needle` (lower case), quoted.
fn contains(needle: &str) -> String {
    format!("'%{}%'", needle.replace('\'', "''"))
}

fn scan_sqlite(path: &str, needles: &[String]) -> Vec<String> {
    let conn = rusqlite::Connection::open(path)
        .unwrap_or_else(|e| panic!("cannot open the test database: {e}"));
    let names = |sql: &str| -> Vec<String> {
        let mut stmt = conn.prepare(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
        stmt.query_map([], |r| r.get::<_, String>(0))
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .filter_map(Result::ok)
            .collect()
    };
    let mut found = Vec::new();
    for table in names("SELECT name FROM sqlite_master WHERE type = 'table'") {
        let columns = names(&format!("SELECT name FROM pragma_table_info('{table}')"));
        // Every column as text, joined: one string per row.
        let row: Vec<String> = columns
            .iter()
            .map(|c| format!("COALESCE(CAST(\"{c}\" AS TEXT), '')"))
            .collect();
        let row = row.join(" || ' ' || ");
        for needle in needles {
            let sql = format!(
                "SELECT COUNT(*) FROM \"{table}\" WHERE LOWER({row}) LIKE {}",
                contains(needle)
            );
            let n: i64 = conn
                .query_row(&sql, [], |r| r.get(0))
                .unwrap_or_else(|e| panic!("scanning {table}: {e}"));
            if n > 0 {
                found.push(format!("{table}: {needle} ({n} rows)"));
            }
        }
    }
    found
}

async fn scan_postgres(url: &str, needles: &[String]) -> Vec<String> {
    use sea_orm::{DbBackend, Statement};
    let conn = match Database::connect(url).await {
        Ok(c) => c,
        Err(e) => panic!("cannot connect to the test database: {e}"),
    };
    let query = |sql: String| Statement::from_string(DbBackend::Postgres, sql);
    let tables: Vec<String> = conn
        .query_all_raw(query(
            "SELECT table_name::text AS t FROM information_schema.tables \
             WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
                .to_owned(),
        ))
        .await
        .unwrap_or_else(|e| panic!("cannot list the tables: {e}"))
        .iter()
        .filter_map(|r| r.try_get::<String>("", "t").ok())
        .collect();
    let mut found = Vec::new();
    for table in tables {
        for needle in needles {
            // The whole row as text.
            let sql = format!(
                "SELECT COUNT(*) AS n FROM \"{table}\" AS r WHERE LOWER(r::text) LIKE {}",
                contains(needle)
            );
            let n = conn
                .query_all_raw(query(sql))
                .await
                .unwrap_or_else(|e| panic!("scanning {table}: {e}"))
                .first()
                .and_then(|r| r.try_get::<i64>("", "n").ok())
                .unwrap_or(0);
            if n > 0 {
                found.push(format!("{table}: {needle} ({n} rows)"));
            }
        }
    }
    let _ = conn.close().await;
    found
}

impl std::fmt::Debug for TestDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestDatabase")
            .field("which", &self.which)
            .field("url", &self.url)
            .finish()
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some(name) = self.pg_name.take() else {
            return;
        };
        let admin = postgres_admin_url();
        // Drop may run inside a runtime, which cannot block on itself: use
        // a thread with its own. Failure only leaves a database behind.
        let handle = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Ok(conn) = Database::connect(admin.as_str()).await {
                    let _ = conn
                        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await;
                    let _ = conn.close().await;
                }
            });
        });
        let _ = handle.join();
    }
}

/// A new, empty database on `which` (no schema: the caller migrates).
pub async fn fresh_database(which: TestDb) -> TestDatabase {
    match which {
        TestDb::Sqlite => {
            let dir = match tempfile::Builder::new().prefix("scimgate-test-").tempdir() {
                Ok(d) => d,
                Err(e) => panic!("cannot create a temporary directory: {e}"),
            };
            let url = format!("sqlite://{}/test.db?mode=rwc", dir.path().display());
            TestDatabase {
                url,
                which,
                _dir: Some(dir),
                pg_name: None,
            }
        }
        TestDb::Postgres => {
            let admin = match tokio::task::spawn_blocking(postgres_admin_url).await {
                Ok(url) => url,
                Err(e) => panic!("starting the test PostgreSQL server failed: {e}"),
            };
            let name = format!("t_{}", uuid::Uuid::new_v4().simple());
            let conn = match Database::connect(admin.as_str()).await {
                Ok(c) => c,
                Err(e) => panic!("cannot connect to the test PostgreSQL server: {e}"),
            };
            if let Err(e) = conn
                .execute_unprepared(&format!("CREATE DATABASE {name}"))
                .await
            {
                panic!("cannot create test database {name}: {e}");
            }
            let _ = conn.close().await;
            TestDatabase {
                url: with_database(&admin, &name),
                which,
                _dir: None,
                pg_name: Some(name),
            }
        }
    }
}

/// Replaces the database name in a PostgreSQL URL.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

/// The admin URL of the test PostgreSQL server (database `postgres`),
/// starting the shared server if needed. Panics if it cannot.
pub fn postgres_admin_url() -> String {
    if let Ok(url) = std::env::var(POSTGRES_URL_ENV)
        && !url.trim().is_empty()
    {
        return url;
    }
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| match shared_server() {
        Ok(url) => url,
        Err(e) => panic!(
            "PostgreSQL is needed for these tests and could not be started: {e}\n\
             Install PostgreSQL (initdb, pg_ctl, postgres on PATH) or set {POSTGRES_URL_ENV} \
             to an admin URL of a running server (scripts/test-postgres prints one)."
        ),
    })
    .clone()
}

fn current_uid() -> u32 {
    fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(0)
}

/// The directory of this user's shared test server.
fn server_dir() -> PathBuf {
    std::env::temp_dir().join(format!("scimgate-test-pg-{}", current_uid()))
}

/// Starts (or finds running) the shared server; returns its admin URL.
fn shared_server() -> Result<String, String> {
    let dir = server_dir();
    fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let lock = File::create(dir.join("lock"))
        .map_err(|e| format!("cannot create the lock file in {}: {e}", dir.display()))?;
    // Fully qualified: std's inherent `File::lock` is newer than our MSRV.
    fs4::FileExt::lock(&lock).map_err(|e| format!("cannot lock {}: {e}", dir.display()))?;
    let result = ensure_running(&dir);
    let _ = fs4::FileExt::unlock(&lock);
    result
}

fn admin_url(port: u16) -> String {
    format!("postgres://postgres@127.0.0.1:{port}/postgres")
}

fn ensure_running(dir: &Path) -> Result<String, String> {
    let data = dir.join("data");
    let run = dir.join("run");
    let port_file = dir.join("port");
    let pg = Pg::find()?;

    if let Some(port) = fs::read_to_string(&port_file)
        .ok()
        .and_then(|s| s.trim().parse::<u16>().ok())
        && pg.status(&data)
        && reachable(port)
    {
        return Ok(admin_url(port));
    }

    if !data.join("PG_VERSION").exists() {
        let _ = fs::remove_dir_all(&data);
        fs::create_dir_all(&data).map_err(|e| format!("cannot create {}: {e}", data.display()))?;
        pg.own(&data)?;
        pg.run(
            "initdb",
            &[
                "-D",
                path_str(&data)?,
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
        )?;
    }
    fs::create_dir_all(&run).map_err(|e| format!("cannot create {}: {e}", run.display()))?;
    pg.own(&run)?;

    let port = free_port()?;
    let options = format!(
        "-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={} \
         -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
         -c max_connections=500 -c shared_buffers=64MB",
        path_str(&run)?
    );
    let log = run.join("postgres.log");
    // A server left half-running (stale pid file) is stopped first.
    let _ = pg.run_quiet(
        "pg_ctl",
        &["-D", path_str(&data)?, "-m", "immediate", "stop"],
    );
    pg.run(
        "pg_ctl",
        &[
            "-D",
            path_str(&data)?,
            "-l",
            path_str(&log)?,
            "-o",
            &options,
            "-w",
            "-t",
            "60",
            "start",
        ],
    )?;
    let mut f = File::create(&port_file).map_err(|e| format!("cannot write port file: {e}"))?;
    writeln!(f, "{port}").map_err(|e| format!("cannot write port file: {e}"))?;
    if !reachable(port) {
        return Err(format!(
            "the server started but does not answer on 127.0.0.1:{port}; see {}",
            log.display()
        ));
    }
    Ok(admin_url(port))
}

fn path_str(p: &Path) -> Result<&str, String> {
    p.to_str()
        .ok_or_else(|| format!("path is not UTF-8: {}", p.display()))
}

fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(|e| format!("cannot find a free port: {e}"))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("cannot find a free port: {e}"))
}

fn reachable(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok()
}

/// How to run the PostgreSQL binaries: directly, or (as root, which
/// `initdb` and `pg_ctl` refuse) as the `postgres` OS user.
struct Pg {
    bin_dir: Option<PathBuf>,
    as_postgres: bool,
}

impl Pg {
    fn find() -> Result<Pg, String> {
        let on_path = Command::new("initdb").arg("--version").output().is_ok();
        let bin_dir = if on_path {
            None
        } else {
            // Debian keeps the server binaries off PATH.
            let mut found: Vec<PathBuf> = fs::read_dir("/usr/lib/postgresql")
                .map(|rd| {
                    rd.filter_map(|e| e.ok().map(|e| e.path().join("bin")))
                        .filter(|p| p.join("initdb").exists())
                        .collect()
                })
                .unwrap_or_default();
            found.sort();
            match found.pop() {
                Some(p) => Some(p),
                None => return Err("initdb was not found on PATH".into()),
            }
        };
        Ok(Pg {
            bin_dir,
            as_postgres: current_uid() == 0,
        })
    }

    fn command(&self, program: &str, args: &[&str]) -> Command {
        let program = match &self.bin_dir {
            Some(d) => d.join(program).to_string_lossy().into_owned(),
            None => program.to_owned(),
        };
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--", &program]).args(args);
            c
        } else {
            let mut c = Command::new(program);
            c.args(args);
            c
        }
    }

    fn run(&self, program: &str, args: &[&str]) -> Result<(), String> {
        let out = self
            .command(program, args)
            .output()
            .map_err(|e| format!("cannot run {program}: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{program} failed ({}): {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    fn run_quiet(&self, program: &str, args: &[&str]) -> bool {
        self.command(program, args)
            .output()
            .is_ok_and(|o| o.status.success())
    }

    fn status(&self, data: &Path) -> bool {
        data.to_str()
            .is_some_and(|d| self.run_quiet("pg_ctl", &["-D", d, "status"]))
    }

    /// Hands a directory to the `postgres` user when running as root.
    fn own(&self, dir: &Path) -> Result<(), String> {
        if !self.as_postgres {
            return Ok(());
        }
        let out = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(dir)
            .output()
            .map_err(|e| format!("cannot run chown: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "chown of {} failed (is there a 'postgres' user?): {}",
                dir.display(),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }
}

/// Installs rustls' ring provider as the process default, once. reqwest is
/// built without a provider of its own (the delivery client brings its
/// configuration), so a test that builds a plain `reqwest::Client` calls
/// this first; a provider already installed is kept.
pub fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_database_in_a_url() {
        assert_eq!(
            with_database("postgres://u:p@h:5432/postgres", "t_1"),
            "postgres://u:p@h:5432/t_1"
        );
        assert_eq!(
            with_database("postgres://u@h/postgres?sslmode=disable", "t_1"),
            "postgres://u@h/t_1?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h:1", "x"), "postgres://h:1/x");
    }

    /// Creates a table in the database at `url`: through sea-orm's sqlx
    /// driver on PostgreSQL, through rusqlite on SQLite (the store's own
    /// SQLite driver, which sqlx no longer provides).
    async fn create_probe_table(url: &str) {
        match url.strip_prefix("sqlite://") {
            Some(rest) => {
                let path = rest.split_once('?').map_or(rest, |(path, _)| path);
                let conn = rusqlite::Connection::open(path).unwrap();
                conn.execute_batch("CREATE TABLE probe (x INTEGER)")
                    .unwrap();
            }
            None => {
                let conn = Database::connect(url).await.unwrap();
                conn.execute_unprepared("CREATE TABLE probe (x INTEGER)")
                    .await
                    .unwrap();
                conn.close().await.unwrap();
            }
        }
    }

    #[tokio::test]
    async fn both_backends_give_a_usable_empty_database() {
        for which in backends() {
            let db = fresh_database(which).await;
            create_probe_table(db.url.as_str()).await;
            // A second fresh database does not see the first one's table.
            let other = fresh_database(which).await;
            create_probe_table(other.url.as_str()).await;
        }
    }
}
