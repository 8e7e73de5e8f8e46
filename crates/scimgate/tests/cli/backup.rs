//! Backups that are restored, as docs/operations.md ("Backups and
//! restore") tells an operator to restore them:
//!
//! - SQLite: `scimgate backup` while `serve` runs and SCIM writes go on;
//!   the copy is put in place in a fresh data directory (with the key
//!   files beside it) and served: every user acknowledged before the
//!   backup is there, the copy is one point in time, the tokens work, and
//!   a webhook target's sealed secret still signs.
//! - PostgreSQL: `pg_dump -Fc` of a live database, `pg_restore` into a new
//!   one, scimgate on the restored database.
//!
//! PostgreSQL comes from testkit; a test that cannot get it fails.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use testkit::TestDb;
use testkit::receiver::Receiver;

use crate::support::*;

/// Users written before the backup starts: enough that the copy takes a
/// moment while writes go on.
const SEEDED: usize = 200;

fn user_name(i: usize) -> String {
    format!("u{i:05}@acme.test")
}

/// A minimal admin API client (JSON bodies; `Http` sends SCIM ones).
struct Admin {
    rt: tokio::runtime::Runtime,
    client: reqwest::Client,
}

impl Admin {
    fn new() -> Admin {
        testkit::install_tls_provider();
        Admin {
            // Multi-threaded: the webhook receiver runs on it between calls.
            rt: tokio::runtime::Runtime::new().expect("runtime"),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .pool_max_idle_per_host(0)
                .build()
                .expect("client"),
        }
    }

    fn call(
        &self,
        method: &str,
        url: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        self.rt.block_on(async {
            let mut r = self.client.request(method.parse().expect("method"), url);
            if let Some(t) = token {
                r = r.bearer_auth(t);
            }
            if let Some(b) = body {
                r = r
                    .header("content-type", "application/json")
                    .body(b.to_string());
            }
            let resp = r.send().await.expect("request");
            let status = resp.status().as_u16();
            let text = resp.text().await.expect("body");
            (status, serde_json::from_str(&text).unwrap_or(Value::Null))
        })
    }

    fn login(&self, base: &str, banner: &Banner) -> String {
        let (status, body) = self.call(
            "POST",
            &format!("{base}/admin/v1/login"),
            None,
            Some(json!({"email": banner.operator_email, "password": banner.operator_password})),
        );
        assert_eq!(status, 200, "{body}");
        body["token"].as_str().expect("session").to_owned()
    }
}

/// Creates one user over SCIM; panics unless acknowledged (201).
fn create_user(scim_url: &str, token: &str, name: &str) {
    let reply = http().post(&format!("{scim_url}/Users"), token, &user(name));
    assert_eq!(reply.status, 201, "{name}: {}", reply.text);
}

/// Every userName of the tenant behind `scim_url`.
fn user_names(scim_url: &str, token: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut start = 1;
    loop {
        let url = format!("{scim_url}/Users?attributes=userName&count=500&startIndex={start}");
        let reply = http().get(&url, Some(token));
        assert_eq!(reply.status, 200, "{}", reply.text);
        let body = reply.json();
        let page = body["Resources"].as_array().cloned().unwrap_or_default();
        names.extend(
            page.iter()
                .filter_map(|u| u["userName"].as_str().map(str::to_owned)),
        );
        let total = body["totalResults"].as_u64().expect("totalResults");
        if page.is_empty() || names.len() as u64 >= total {
            return names;
        }
        start += page.len();
    }
}

fn serve(data_dir: &Path) -> Server {
    let mut cmd = scimgate(&["serve", "--listen", "127.0.0.1:0"]);
    cmd.arg("--data-dir").arg(data_dir);
    cmd.env("SCIMGATE_DELIVERY_ALLOW_PRIVATE_TARGETS", "true");
    Server::start(cmd)
}

fn backup_cmd(data_dir: &Path, file: &Path) -> Command {
    let mut cmd = scimgate(&["backup", "--json"]);
    cmd.arg(file).arg("--data-dir").arg(data_dir);
    cmd
}

#[test]
fn sqlite_backup_taken_while_serving_restores_into_a_fresh_data_dir() {
    let sandbox = Sandbox::new();
    let data = sandbox.data_dir();
    let admin = Admin::new();
    let receiver = admin.rt.block_on(Receiver::start());

    let server = serve(&data);
    let banner = server.banner().expect("first-start banner");
    let base = server.listen_url.clone();

    // A tenant, made with the CLI while the server runs, and its users over SCIM.
    let created = run(sandbox.cmd(&["tenant", "create", "acme", "--json"])).json();
    let token = created["token"].as_str().expect("token").to_owned();
    let scim_url = format!("{base}/tenants/acme/scim/v2");
    // A webhook target: its secret is sealed with the key in the data directory.
    let jwt = admin.login(&base, &banner);
    let (status, target) = admin.call(
        "POST",
        &format!("{base}/admin/v1/tenants/acme/targets"),
        Some(&jwt),
        Some(json!({"name": "app", "kind": "webhook", "url": receiver.url()})),
    );
    assert_eq!(status, 201, "{target}");
    receiver.set_secret(target["secret"].as_str().expect("secret"));
    receiver.reject_unverified(true);
    for i in 0..SEEDED {
        create_user(&scim_url, &token, &user_name(i));
    }

    // The backup runs in its own process while this thread keeps writing.
    let file = sandbox.path().join("backups").join("scimgate-backup.db");
    std::fs::create_dir(file.parent().expect("dir")).expect("backups dir");
    let acknowledged_before = SEEDED;
    let backup = {
        let cmd = backup_cmd(&data, &file);
        std::thread::spawn(move || run(cmd))
    };
    let mut next = SEEDED;
    loop {
        create_user(&scim_url, &token, &user_name(next));
        next += 1;
        if backup.is_finished() {
            break;
        }
    }
    // Every user from here on was written after the backup had finished.
    let started_before_backup_ended = next;
    let during = next - SEEDED;
    let backup = backup.join().expect("backup thread");
    let out = backup.json();
    for i in next..next + 5 {
        create_user(&scim_url, &token, &user_name(i));
    }
    let written = next + 5;

    // What it printed is what it wrote: a private file.
    let meta = std::fs::metadata(&file).expect("backup file");
    assert_eq!(out["path"], file.display().to_string(), "{out}");
    assert_eq!(out["bytes"].as_u64(), Some(meta.len()), "{out}");
    assert!(
        out["schema_version"].as_u64().is_some_and(|v| v > 0),
        "{out}"
    );
    assert!(
        out["database"]
            .as_str()
            .is_some_and(|d| d.starts_with("sqlite ")),
        "{out}"
    );
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(meta.permissions().mode() & 0o777, 0o600, "backup mode");
    }
    let leftovers: Vec<_> = std::fs::read_dir(file.parent().expect("dir"))
        .expect("list")
        .filter_map(Result::ok)
        .map(|e| e.file_name())
        .filter(|n| n != "scimgate-backup.db")
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");

    // A second backup to the same file is refused and changes nothing.
    let before = std::fs::read(&file).expect("read backup");
    let mtime = meta.modified().expect("mtime");
    let again = run(backup_cmd(&data, &file));
    assert_eq!(again.status.code(), Some(1), "{}", again.describe());
    let error: Value = serde_json::from_str(again.stderr.trim()).expect("JSON error");
    assert!(
        error["error"]
            .as_str()
            .is_some_and(|e| e.contains("already exists")),
        "{}",
        again.describe()
    );
    assert_eq!(std::fs::read(&file).expect("read backup"), before);
    assert_eq!(
        std::fs::metadata(&file)
            .and_then(|m| m.modified())
            .expect("mtime"),
        mtime
    );

    let (status, output) = server.terminate();
    assert_eq!(status.code(), Some(0), "{output}");

    // Restore, as documented: with the server stopped, the copy becomes the
    // database file of a data directory, with the key files beside it.
    let restored = sandbox.path().join("restored");
    std::fs::create_dir(&restored).expect("restored dir");
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&restored, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    }
    std::fs::copy(&file, restored.join("scimgate.db")).expect("copy the backup");
    for key in ["target-secrets.key", "admin-jwt.key"] {
        assert!(
            data.join(key).is_file(),
            "{key} missing from the data directory"
        );
        std::fs::copy(data.join(key), restored.join(key)).expect("copy a key file");
    }
    receiver.clear();
    let server = serve(&restored);
    assert!(
        server.banner().is_none(),
        "the restored database was set up again:\n{}",
        server.proc.output()
    );
    let base = server.listen_url.clone();
    let scim_url = format!("{base}/tenants/acme/scim/v2");

    // Every user acknowledged before the backup began is there; the copy
    // is one point in time (the users written one after another form an
    // unbroken prefix), and nothing written after it ended is in it.
    let names = user_names(&scim_url, &token);
    let kept = names.len();
    let expected: BTreeSet<String> = (0..kept).map(user_name).collect();
    assert_eq!(
        names, expected,
        "the restored users are not a prefix of the writes"
    );
    assert!(
        kept >= acknowledged_before,
        "{kept} users restored, {acknowledged_before} acknowledged before the backup"
    );
    assert!(
        kept <= started_before_backup_ended,
        "{kept} users restored, only {started_before_backup_ended} written before the backup ended"
    );
    eprintln!(
        "backup: {during} users written while it ran; the copy has {kept} of {written}; {} bytes",
        meta.len()
    );

    // The tokens work: the tenant's, and the first start's.
    assert_list_response(&http().get(
        &format!("{base}/tenants/default/scim/v2/Users"),
        Some(&banner.token),
    ));
    create_user(&scim_url, &token, "after-restore@acme.test");
    // The admin session key came along: a session from before still works.
    let (status, tenants) =
        admin.call("GET", &format!("{base}/admin/v1/tenants"), Some(&jwt), None);
    assert_eq!(status, 200, "{tenants}");
    // So did the key that seals target secrets: the webhook is still signed
    // with the secret it was given (the receiver refuses anything else).
    let signed = eventually(Duration::from_secs(60), || {
        receiver.deliveries().iter().any(|d| {
            d.verified && String::from_utf8_lossy(&d.raw_body).contains("after-restore@acme.test")
        })
    });
    assert!(
        signed,
        "no signed delivery of the new user: {:?}",
        receiver
            .deliveries()
            .iter()
            .map(|d| (d.verified, d.verify_error.clone()))
            .collect::<Vec<_>>()
    );
    let (status, output) = server.terminate();
    assert_eq!(status.code(), Some(0), "{output}");
}

#[test]
fn backup_refuses_postgres_and_a_missing_database_without_touching_anything() {
    let sandbox = Sandbox::new();
    let file = sandbox.path().join("backup.db");

    // PostgreSQL: refused before any connection (nothing listens on port 1).
    let mut cmd = sandbox.cmd(&["backup", "--json"]);
    cmd.arg(&file).args([
        "--database-url",
        "postgres://scimgate:s3cret@127.0.0.1:1/scimgate",
    ]);
    let refused = run(cmd);
    assert_eq!(refused.status.code(), Some(1), "{}", refused.describe());
    let error: Value = serde_json::from_str(refused.stderr.trim()).expect("JSON error");
    let message = error["error"].as_str().expect("error message");
    assert!(message.contains("pg_dump -Fc"), "{message}");
    assert!(
        !message.contains("s3cret"),
        "password in the message: {message}"
    );
    assert!(refused.stdout.is_empty(), "{}", refused.describe());
    assert!(!file.exists());
    assert!(!sandbox.data_dir().exists());
    // The human form says the same.
    let mut cmd = sandbox.cmd(&["backup"]);
    cmd.arg(&file);
    cmd.env("SCIMGATE_DATABASE_URL", "postgresql://127.0.0.1:1/scimgate");
    let refused = run(cmd);
    assert_eq!(refused.status.code(), Some(1), "{}", refused.describe());
    assert!(
        refused.stderr.starts_with("scimgate: error: ") && refused.stderr.contains("pg_dump -Fc"),
        "{}",
        refused.describe()
    );

    // No database yet: refused, and no database or data directory is created.
    let mut cmd = sandbox.cmd(&["backup"]);
    cmd.arg(&file);
    let missing = run(cmd);
    assert_eq!(missing.status.code(), Some(1), "{}", missing.describe());
    assert!(
        missing.stderr.contains("no database"),
        "{}",
        missing.describe()
    );
    assert!(!file.exists());
    assert!(!sandbox.data_dir().exists());
}

/// Runs a PostgreSQL client tool; panics unless it succeeds.
fn pg_tool(program: &str, args: &[&str]) {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program} (PostgreSQL client tools needed): {e}"));
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn postgres_pg_dump_and_pg_restore_into_a_new_database() {
    let source = http().block_on(testkit::fresh_database(TestDb::Postgres));
    let sandbox = Sandbox::new();
    let serve_on = |url: &str| {
        let mut cmd = scimgate(&["serve", "--listen", "127.0.0.1:0"]);
        cmd.env("SCIMGATE_DATABASE_URL", url);
        Server::start(cmd)
    };

    let server = serve_on(&source.url);
    let banner = server.banner().expect("first-start banner");
    let base = server.listen_url.clone();
    let mut cmd = sandbox.cmd(&["tenant", "create", "acme", "--json"]);
    cmd.env("SCIMGATE_DATABASE_URL", &source.url);
    let token = run(cmd).json()["token"].as_str().expect("token").to_owned();
    let scim_url = format!("{base}/tenants/acme/scim/v2");
    let count = 25;
    for i in 0..count {
        create_user(&scim_url, &token, &user_name(i));
    }

    // `scimgate backup` points at pg_dump.
    let mut cmd = sandbox.cmd(&["backup"]);
    cmd.arg(sandbox.path().join("nope.db"));
    cmd.env("SCIMGATE_DATABASE_URL", &source.url);
    let refused = run(cmd);
    assert_eq!(refused.status.code(), Some(1), "{}", refused.describe());
    assert!(
        refused.stderr.contains("pg_dump -Fc"),
        "{}",
        refused.describe()
    );

    // The documented procedure: a dump of the live database...
    let dump = sandbox.path().join("scimgate.dump");
    let dump_arg = dump.to_str().expect("UTF-8 path");
    pg_tool(
        "pg_dump",
        &["-Fc", "--file", dump_arg, "--dbname", &source.url],
    );
    let (status, output) = server.terminate();
    assert_eq!(status.code(), Some(0), "{output}");

    // ...restored into a new, empty database...
    let target = http().block_on(testkit::fresh_database(TestDb::Postgres));
    pg_tool(
        "pg_restore",
        &[
            "--no-owner",
            "--exit-on-error",
            "--dbname",
            &target.url,
            dump_arg,
        ],
    );
    // ...which scimgate serves as it was.
    let server = serve_on(&target.url);
    assert!(
        server.banner().is_none(),
        "the restored database was set up again:\n{}",
        server.proc.output()
    );
    let base = server.listen_url.clone();
    let scim_url = format!("{base}/tenants/acme/scim/v2");
    let expected: BTreeSet<String> = (0..count).map(user_name).collect();
    assert_eq!(user_names(&scim_url, &token), expected);
    assert_list_response(&http().get(
        &format!("{base}/tenants/default/scim/v2/Users"),
        Some(&banner.token),
    ));
    // Writes go on (the sequences came along too).
    create_user(&scim_url, &token, "after-restore@acme.test");
    assert_eq!(user_names(&scim_url, &token).len(), count + 1);
    let (status, output) = server.terminate();
    assert_eq!(status.code(), Some(0), "{output}");
}
