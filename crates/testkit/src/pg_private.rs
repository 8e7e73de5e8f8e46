//! A private PostgreSQL server for one test: its own data directory (a new
//! temporary directory) and its own loopback port, so the test can stop and
//! start it to see what clients do while the database is down, without
//! disturbing the shared test server other tests use. Stopped and removed
//! when dropped.
//!
//! Found and run like the shared server (see the crate documentation): the
//! binaries on `PATH` or under `/usr/lib/postgresql/*/bin`, run as the
//! `postgres` OS user when the test runs as root. Unlike the shared server
//! it keeps PostgreSQL's durable defaults (`fsync` on): it holds little data,
//! and a restart must find everything committed before the stop.

use std::fs;
use std::path::{Path, PathBuf};

use tempfile::TempDir;

use crate::{Pg, free_port, path_str, reachable};

/// How long `pg_ctl` may take to start or stop the server, in seconds.
const PG_CTL_WAIT_SECS: &str = "60";

/// A PostgreSQL server of one test's own, stoppable and restartable.
pub struct PrivatePostgres {
    // Declared before `dir`: nothing here needs the directory at drop,
    // but the server is stopped (in `Drop`) before the directory goes.
    pg: Pg,
    port: u16,
    running: bool,
    dir: TempDir,
}

impl std::fmt::Debug for PrivatePostgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrivatePostgres")
            .field("port", &self.port)
            .field("running", &self.running)
            .field("dir", &self.dir.path())
            .finish()
    }
}

impl PrivatePostgres {
    /// Creates a cluster (`initdb`) in a new temporary directory and starts
    /// it on a free 127.0.0.1 port. Panics if it cannot: tests never skip.
    pub fn new() -> PrivatePostgres {
        match PrivatePostgres::try_new() {
            Ok(pg) => pg,
            Err(e) => panic!(
                "a private PostgreSQL server is needed for this test and could not be \
                 started: {e}\nInstall PostgreSQL (initdb, pg_ctl, postgres)."
            ),
        }
    }

    fn try_new() -> Result<PrivatePostgres, String> {
        let pg = Pg::find()?;
        let dir = tempfile::Builder::new()
            .prefix("scimgate-private-pg-")
            .tempdir()
            .map_err(|e| format!("cannot create a temporary directory: {e}"))?;
        let data = dir.path().join("data");
        let run = dir.path().join("run");
        for d in [&data, &run] {
            fs::create_dir_all(d).map_err(|e| format!("cannot create {}: {e}", d.display()))?;
        }
        // The top directory too: `postgres` must reach its two directories.
        pg.own(dir.path())?;
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
                // Only initdb's own files skip fsync; the server keeps it.
                "--no-sync",
            ],
        )?;
        let mut server = PrivatePostgres {
            pg,
            port: free_port()?,
            running: false,
            dir,
        };
        server.try_start()?;
        Ok(server)
    }

    /// The admin URL (`postgres://postgres@127.0.0.1:<port>/postgres`);
    /// the server trusts loopback connections.
    pub fn url(&self) -> String {
        crate::admin_url(self.port)
    }

    /// The port it listens on (the same across restarts).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether it was last started (not stopped).
    pub fn is_running(&self) -> bool {
        self.running
    }

    /// Stops the server the way an operator would (`pg_ctl -m fast stop`:
    /// sessions are ended, committed data stays). Panics if it cannot.
    pub fn stop(&mut self) {
        if !self.running {
            return;
        }
        if let Err(e) = self.pg_ctl_stop("fast") {
            panic!("cannot stop the private PostgreSQL server: {e}");
        }
        self.running = false;
    }

    /// Starts it again (same data, same port) and waits until it accepts
    /// connections. Panics if it cannot.
    pub fn start(&mut self) {
        if let Err(e) = self.try_start() {
            panic!("cannot start the private PostgreSQL server: {e}");
        }
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn run_dir(&self) -> PathBuf {
        self.dir.path().join("run")
    }

    fn log(&self) -> PathBuf {
        self.run_dir().join("postgres.log")
    }

    fn try_start(&mut self) -> Result<(), String> {
        if self.running {
            return Ok(());
        }
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -c unix_socket_directories={} \
             -c max_connections=100 -c shared_buffers=32MB",
            self.port,
            path_str(&self.run_dir())?
        );
        let (data, log) = (self.data(), self.log());
        self.pg
            .run(
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
                    PG_CTL_WAIT_SECS,
                    "start",
                ],
            )
            .map_err(|e| format!("{e}\n{}", tail(&log)))?;
        self.running = true;
        if !reachable(self.port) {
            return Err(format!(
                "the server started but does not answer on 127.0.0.1:{}\n{}",
                self.port,
                tail(&log)
            ));
        }
        Ok(())
    }

    fn pg_ctl_stop(&self, mode: &str) -> Result<(), String> {
        let data = self.data();
        self.pg.run(
            "pg_ctl",
            &[
                "-D",
                path_str(&data)?,
                "-m",
                mode,
                "-w",
                "-t",
                PG_CTL_WAIT_SECS,
                "stop",
            ],
        )
    }
}

/// [`PrivatePostgres::new`]: a started server.
impl Default for PrivatePostgres {
    fn default() -> Self {
        PrivatePostgres::new()
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        // Nothing is kept, so no shutdown checkpoint is needed; the
        // directory is removed by `TempDir` afterwards.
        if self.running {
            let _ = self.pg_ctl_stop("immediate");
            self.running = false;
        }
    }
}

/// The end of the server's log, for a failure message.
fn tail(log: &Path) -> String {
    let text = fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(20);
    format!(
        "--- {} (last lines) ---\n{}",
        log.display(),
        lines[start..].join("\n")
    )
}
