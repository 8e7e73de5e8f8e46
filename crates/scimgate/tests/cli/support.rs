//! Running the real `scimgate` binary and talking to it over real HTTP.
//!
//! Every wait is bounded; every child process is killed when its guard is
//! dropped, so a failing assertion never leaves a server behind.

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

/// First start applies migrations and hashes two secrets with argon2 in a
/// debug build: give it room, but not forever.
pub const STARTUP: Duration = Duration::from_secs(120);
/// Any one operator command.
pub const COMMAND: Duration = Duration::from_secs(60);
/// A graceful stop.
pub const STOP: Duration = Duration::from_secs(40);

/// The binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_scimgate")
}

/// A temporary directory for one test: data dir, config files.
pub struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    pub fn new() -> Sandbox {
        Sandbox {
            dir: tempfile::tempdir().expect("create temp dir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Writes a file in the sandbox and returns its path.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).expect("write sandbox file");
        path
    }

    /// `scimgate ARGS --data-dir <sandbox>/data` with a clean environment.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = scimgate(args);
        cmd.arg("--data-dir").arg(self.data_dir());
        cmd
    }
}

/// `scimgate ARGS` with no inherited `SCIMGATE_*` or `RUST_LOG` variables
/// (the developer's shell must not change what a test sees) and JSON logs.
pub fn scimgate(args: &[&str]) -> Command {
    let mut cmd = Command::new(bin());
    cmd.args(args);
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("SCIMGATE_") || key == "RUST_LOG" {
            cmd.env_remove(key.as_ref());
        }
    }
    cmd.env("SCIMGATE_LOG_FORMAT", "json");
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// A port that was free a moment ago (for tests that need to know the port
/// before the server starts, e.g. to put it in a config file).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    listener.local_addr().expect("local addr").port()
}

type Lines = Arc<Mutex<Vec<String>>>;

fn collect_lines(stream: impl Read + Send + 'static, lines: Lines) -> JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            lines.lock().expect("lines lock").push(line);
        }
    })
}

/// A child process, killed when dropped.
pub struct Proc {
    child: Child,
    stdout: Lines,
    stderr: Lines,
    readers: Vec<JoinHandle<()>>,
}

impl Proc {
    pub fn spawn(mut cmd: Command) -> Proc {
        let mut child = cmd.spawn().expect("spawn scimgate");
        let stdout = Lines::default();
        let stderr = Lines::default();
        let readers = vec![
            collect_lines(child.stdout.take().expect("stdout piped"), stdout.clone()),
            collect_lines(child.stderr.take().expect("stderr piped"), stderr.clone()),
        ];
        Proc {
            child,
            stdout,
            stderr,
            readers,
        }
    }

    pub fn stdout(&self) -> String {
        self.stdout.lock().expect("lock").join("\n")
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().expect("lock").join("\n")
    }

    /// Both streams, for failure messages.
    pub fn output(&self) -> String {
        format!(
            "--- stdout ---\n{}\n--- stderr ---\n{}",
            self.stdout(),
            self.stderr()
        )
    }

    /// Waits for exit, at most `limit`; kills and panics past it.
    pub fn wait(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            match self.child.try_wait().expect("try_wait") {
                Some(status) => {
                    // The pipes close at exit; let the readers drain them.
                    for reader in self.readers.drain(..) {
                        let _ = reader.join();
                    }
                    return status;
                }
                None if Instant::now() >= deadline => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    panic!("scimgate did not exit within {limit:?}\n{}", self.output());
                }
                None => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    /// Sends a signal by name (TERM, INT) with the system's `kill`.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Polls stdout until a line satisfies `find`, at most `limit`.
    pub fn wait_for_line<T>(&mut self, limit: Duration, find: impl Fn(&str) -> Option<T>) -> T {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(found) = self
                .stdout
                .lock()
                .expect("lock")
                .iter()
                .find_map(|l| find(l))
            {
                return found;
            }
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                for reader in self.readers.drain(..) {
                    let _ = reader.join();
                }
                panic!("scimgate exited early with {status}\n{}", self.output());
            }
            if Instant::now() >= deadline {
                panic!("no expected output within {limit:?}\n{}", self.output());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The result of a finished command.
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    /// Asserts success and parses stdout as JSON.
    pub fn json(&self) -> Value {
        assert!(self.status.success(), "command failed: {}", self.describe());
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.describe()))
    }

    pub fn describe(&self) -> String {
        format!(
            "{}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// Runs a command to completion (bounded by [`COMMAND`]).
pub fn run(cmd: Command) -> Finished {
    let mut proc = Proc::spawn(cmd);
    let status = proc.wait(COMMAND);
    Finished {
        status,
        stdout: proc.stdout(),
        stderr: proc.stderr(),
    }
}

/// What the first-start banner told the user.
#[derive(Debug, Clone)]
pub struct Banner {
    pub scim_url: String,
    pub token_routed_url: String,
    pub token: String,
    pub operator_email: String,
    pub operator_password: String,
}

fn field(text: &str, label: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let rest = l.trim_start().strip_prefix(label)?;
        rest.split_whitespace().next().map(str::to_owned)
    })
}

/// A running `scimgate serve`.
pub struct Server {
    pub proc: Proc,
    /// `http://ADDR` the server says it listens on.
    pub listen_url: String,
}

impl Server {
    /// Spawns `serve` and waits until it says it is listening.
    pub fn start(cmd: Command) -> Server {
        let mut proc = Proc::spawn(cmd);
        let listen_url = proc.wait_for_line(STARTUP, |l| {
            let rest = l.split_once(" listening on ")?.1;
            rest.split_whitespace().next().map(str::to_owned)
        });
        Server { proc, listen_url }
    }

    pub fn addr(&self) -> SocketAddr {
        self.listen_url
            .trim_start_matches("http://")
            .parse()
            .expect("listen address")
    }

    /// The first-start banner, if this start printed one.
    pub fn banner(&self) -> Option<Banner> {
        let out = self.proc.stdout();
        Some(Banner {
            scim_url: field(&out, "SCIM URL:")?,
            token_routed_url: field(&out, "Token-routed:")?,
            token: field(&out, "Secret token:")?,
            operator_email: field(&out, "Email:")?,
            operator_password: field(&out, "Password:")?,
        })
    }

    /// SIGTERM, then the exit status (bounded by [`STOP`]).
    pub fn terminate(self) -> (ExitStatus, String) {
        self.proc.signal("TERM");
        self.terminate_signalled()
    }

    /// The exit status after a signal already sent (bounded by [`STOP`]).
    pub fn terminate_signalled(mut self) -> (ExitStatus, String) {
        let status = self.proc.wait(STOP);
        (status, self.proc.output())
    }
}

/// A minimal blocking HTTP client over reqwest on one shared runtime.
pub struct Http {
    runtime: tokio::runtime::Runtime,
    client: reqwest::Client,
}

/// One response.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub text: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.text))
    }
}

pub fn http() -> &'static Http {
    static HTTP: OnceLock<Http> = OnceLock::new();
    HTTP.get_or_init(|| Http {
        runtime: tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime"),
        client: {
            testkit::install_tls_provider();
            reqwest::Client::builder()
        }
        .timeout(Duration::from_secs(30))
        // A fresh connection per request: a test that pauses longer than
        // the server's keep-alive would otherwise reuse a closed one.
        .pool_max_idle_per_host(0)
        .build()
        .expect("http client"),
    })
}

impl Http {
    /// Runs a future on the client's runtime (for async test helpers).
    pub fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    fn send(&self, request: reqwest::RequestBuilder) -> Reply {
        self.runtime.block_on(async {
            let response = request.send().await.expect("HTTP request");
            let status = response.status().as_u16();
            let content_type = response
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            let text = response.text().await.expect("HTTP body");
            Reply {
                status,
                content_type,
                text,
            }
        })
    }

    pub fn get(&self, url: &str, token: Option<&str>) -> Reply {
        let mut request = self.client.get(url);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        self.send(request)
    }

    pub fn delete(&self, url: &str, token: &str) -> Reply {
        self.send(self.client.delete(url).bearer_auth(token))
    }

    pub fn post(&self, url: &str, token: &str, body: &Value) -> Reply {
        let request = self
            .client
            .post(url)
            .bearer_auth(token)
            .header("content-type", "application/scim+json")
            .body(body.to_string());
        self.send(request)
    }
}

/// A minimal valid SCIM user.
pub fn user(user_name: &str) -> Value {
    serde_json::json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": user_name,
        "active": true,
        "name": { "givenName": "Test", "familyName": "User" },
    })
}

/// Asserts a `GET .../Users` reply is a SCIM ListResponse.
pub fn assert_list_response(reply: &Reply) {
    assert_eq!(reply.status, 200, "{}", reply.text);
    let body = reply.json();
    assert_eq!(
        body["schemas"][0], "urn:ietf:params:scim:api:messages:2.0:ListResponse",
        "{body}"
    );
    assert!(body["totalResults"].is_u64(), "{body}");
}

/// Polls `check` every 200 ms until it returns true, at most `limit`.
pub fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
