//! `scimgate serve`: first start, restart, HTTP surface, shutdown, migrate.

use crate::support::*;

#[test]
fn first_start_prints_a_url_and_token_that_work_and_restart_keeps_them() {
    let sandbox = Sandbox::new();
    let server = Server::start(sandbox.cmd(&["serve", "--listen", "127.0.0.1:0"]));
    let banner = server
        .banner()
        .unwrap_or_else(|| panic!("no first-start banner\n{}", server.proc.output()));
    let base = &server.listen_url;
    assert_eq!(banner.scim_url, format!("{base}/tenants/default/scim/v2"));
    assert_eq!(banner.token_routed_url, format!("{base}/scim/v2"));
    assert_eq!(banner.operator_email, "admin@localhost");
    assert!(banner.operator_password.len() >= 20);
    let stdout = server.proc.stdout();
    assert!(stdout.contains("scimgate tenant create NAME"), "{stdout}");
    assert!(stdout.contains("scimgate token issue TENANT"), "{stdout}");
    // The secrets are printed for the user, never logged.
    let logs = server.proc.stderr();
    assert!(!logs.contains(&banner.token), "token in logs: {logs}");
    assert!(
        !logs.contains(&banner.operator_password),
        "password in logs"
    );
    assert!(sandbox.data_dir().join("scimgate.db").is_file());

    // The token works at both URLs the banner gave, over real HTTP.
    let h = http();
    for url in [&banner.scim_url, &banner.token_routed_url] {
        assert_list_response(&h.get(&format!("{url}/Users"), Some(&banner.token)));
    }
    let created = h.post(
        &format!("{}/Users", banner.scim_url),
        &banner.token,
        &user("ada@example.com"),
    );
    assert_eq!(created.status, 201, "{}", created.text);
    let id = created.json()["id"].as_str().expect("id").to_owned();
    let no_token = h.get(&format!("{}/Users", banner.scim_url), None);
    assert_eq!(no_token.status, 401, "{}", no_token.text);

    let (status, output) = server.terminate();
    assert_eq!(status.code(), Some(0), "{output}");

    // Second start on the same data directory: no new secrets, same token.
    let server = Server::start(sandbox.cmd(&["serve", "--listen", "127.0.0.1:0"]));
    let stdout = server.proc.stdout();
    assert!(server.banner().is_none(), "second banner:\n{stdout}");
    assert!(!stdout.contains("Secret token"), "{stdout}");
    assert_eq!(stdout.lines().count(), 1, "only the listen line:\n{stdout}");
    let base = &server.listen_url;
    let url = format!("{base}/tenants/default/scim/v2/Users/{id}");
    let reply = h.get(&url, Some(&banner.token));
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json()["userName"], "ada@example.com");
    let (status, output) = server.terminate();
    assert_eq!(status.code(), Some(0), "{output}");
}

#[test]
fn a_failed_first_start_does_not_swallow_the_secrets() {
    let sandbox = Sandbox::new();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let failed = run(sandbox.cmd(&["serve", "--listen", &format!("127.0.0.1:{port}")]));
    assert_eq!(failed.status.code(), Some(1), "{}", failed.describe());
    assert!(
        failed.stderr.contains("cannot listen"),
        "{}",
        failed.describe()
    );
    assert!(
        !failed.stdout.contains("Secret token"),
        "{}",
        failed.describe()
    );
    drop(taken);

    // The next start is still the first start, and says so.
    let server = Server::start(sandbox.cmd(&["serve", "--listen", "127.0.0.1:0"]));
    assert!(server.banner().is_some(), "{}", server.proc.output());
}

#[test]
fn health_readiness_and_prometheus_metrics() {
    let sandbox = Sandbox::new();
    let server = Server::start(sandbox.cmd(&["serve", "--listen", "127.0.0.1:0"]));
    let banner = server.banner().expect("banner");
    let h = http();
    let base = &server.listen_url;
    assert_eq!(h.get(&format!("{base}/healthz"), None).status, 200);
    assert_eq!(h.get(&format!("{base}/readyz"), None).status, 200);
    // Some traffic so request metrics have samples.
    assert_list_response(&h.get(&format!("{}/Users", banner.scim_url), Some(&banner.token)));

    let metrics = h.get(&format!("{base}/metrics"), None);
    assert_eq!(metrics.status, 200);
    assert!(
        metrics.content_type.starts_with("text/plain"),
        "{}",
        metrics.content_type
    );
    assert!(
        metrics.text.contains("# TYPE scimgate_"),
        "{}",
        metrics.text
    );
    assert!(
        metrics.text.contains("scimgate_build_info{version=\""),
        "{}",
        metrics.text
    );
    // Gateway metrics come from the same registry.
    let families: std::collections::BTreeSet<&str> = metrics
        .text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(
        families
            .iter()
            .filter(|f| f.starts_with("scimgate_"))
            .count()
            >= 3,
        "{families:?}"
    );
    let (status, output) = server.terminate();
    assert_eq!(status.code(), Some(0), "{output}");
}

#[test]
fn sigint_and_sigterm_stop_gracefully_with_exit_0() {
    let sandbox = Sandbox::new();
    for signal in ["INT", "TERM"] {
        let mut server = Server::start(sandbox.cmd(&["serve", "--listen", "127.0.0.1:0"]));
        let addr = server.addr();
        server.proc.signal(signal);
        let status = server.proc.wait(STOP);
        assert_eq!(
            status.code(),
            Some(0),
            "SIG{signal}\n{}",
            server.proc.output()
        );
        let logs = server.proc.stderr();
        assert!(logs.contains("shutting down"), "{logs}");
        // The port is released: nothing listens there any more.
        assert!(std::net::TcpStream::connect(addr).is_err());
    }
}

#[test]
fn sigterm_lets_an_in_flight_request_finish() {
    use std::io::{Read, Write};

    let sandbox = Sandbox::new();
    let server = Server::start(sandbox.cmd(&["serve", "--listen", "127.0.0.1:0"]));
    let banner = server.banner().expect("banner");
    let path = banner
        .scim_url
        .strip_prefix(&server.listen_url)
        .expect("URL on the listen address")
        .to_owned();
    // Warm the token cache so the request below does not wait on argon2.
    assert_list_response(&http().get(&format!("{}/Users", banner.scim_url), Some(&banner.token)));

    // Half a request: headers and part of the body, then SIGTERM. The
    // request asks for `100 Continue`, which the server sends once a worker
    // has parsed the head: only then is the request surely in flight (a
    // connection still waiting in the listen queue is rightly dropped).
    let body = user("inflight@example.com").to_string();
    let (head, tail) = body.split_at(body.len() / 2);
    let mut stream = std::net::TcpStream::connect(server.addr()).expect("connect");
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .expect("timeout");
    write!(
        stream,
        "POST {path}/Users HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/scim+json\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\
         Connection: close\r\n\r\n",
        server.addr(),
        banner.token,
        body.len()
    )
    .expect("write head");
    stream.flush().expect("flush");
    let mut interim = [0u8; 25];
    stream.read_exact(&mut interim).expect("read 100 Continue");
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    stream.write_all(head.as_bytes()).expect("write first half");
    stream.flush().expect("flush");
    server.proc.signal("TERM");
    // The stop waits for this request: it is in flight (counted from when
    // the service was called, which is before `100 Continue` is sent).
    assert!(
        eventually(STOP, || server
            .proc
            .stderr()
            .contains("shutting down: finishing in-flight requests")),
        "{}",
        server.proc.output()
    );

    // The server is stopping but still finishes this request.
    stream.write_all(tail.as_bytes()).expect("write tail");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read response");
    assert!(
        response.starts_with("HTTP/1.1 201"),
        "{response}\n{}",
        server.proc.output()
    );
    let (status, output) = server.terminate_signalled();
    assert_eq!(status.code(), Some(0), "{output}");
}

#[test]
fn migrate_on_a_fresh_database_and_again() {
    let sandbox = Sandbox::new();
    assert!(!sandbox.data_dir().exists());
    let first = run(sandbox.cmd(&["migrate"]));
    assert!(first.status.success(), "{}", first.describe());
    assert!(sandbox.data_dir().join("scimgate.db").is_file());
    let again = run(sandbox.cmd(&["migrate", "--json"])).json();
    assert_eq!(again["migrated"], true);
    // A migrated database still gets its first-start setup from serve.
    let server = Server::start(sandbox.cmd(&["serve", "--listen", "127.0.0.1:0"]));
    assert!(server.banner().is_some(), "{}", server.proc.output());
}

#[test]
fn help_and_version() {
    let help = run(scimgate(&["--help"]));
    assert!(help.status.success());
    for word in [
        "serve",
        "migrate",
        "tenant",
        "token",
        "--config",
        "--database-url",
        "--data-dir",
        "--json",
    ] {
        assert!(
            help.stdout.contains(word),
            "{word} missing:\n{}",
            help.stdout
        );
    }
    let version = run(scimgate(&["--version"]));
    assert!(
        version.stdout.starts_with("scimgate "),
        "{}",
        version.stdout
    );
    let bad = run(scimgate(&["frobnicate"]));
    assert_eq!(bad.status.code(), Some(2));
}

fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// Only this account can read what `serve` creates: the data directory,
/// the database with its WAL and shared-memory files, the admin key.
#[test]
fn a_fresh_data_directory_is_private() {
    let sandbox = Sandbox::new();
    let server = Server::start(sandbox.cmd(&["serve", "--listen", "127.0.0.1:0"]));
    let data = sandbox.data_dir();
    assert_eq!(mode(&data), 0o700, "{}", data.display());
    let files = [
        "scimgate.db",
        "scimgate.db-wal",
        "scimgate.db-shm",
        "admin-jwt.key",
    ];
    for name in files {
        assert_eq!(mode(&data.join(name)), 0o600, "{name}");
    }
    let (status, output) = server.terminate();
    assert_eq!(status.code(), Some(0), "{output}");
    assert!(
        !output.contains("accessible to other local accounts"),
        "{output}"
    );
}

/// An existing data directory or database that others can read is kept
/// (changing modes behind an operator's back is not ours to do) but named
/// in a warning on every start.
#[test]
fn a_readable_data_directory_is_warned_about() {
    use std::os::unix::fs::PermissionsExt as _;
    let sandbox = Sandbox::new();
    let data = sandbox.data_dir();
    std::fs::create_dir(&data).expect("mkdir");
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let first = run(sandbox.cmd(&["migrate"]));
    assert!(first.status.success(), "{}", first.describe());
    let warned = |stderr: &str, path: &std::path::Path, shown: &str| {
        stderr.lines().any(|l| {
            let line: serde_json::Value = serde_json::from_str(l).unwrap_or_default();
            line["level"] == "WARN"
                && line["message"].as_str().is_some_and(|m| {
                    m.contains(&path.display().to_string())
                        && m.contains("accessible to other local accounts")
                        && m.contains(shown)
                })
        })
    };
    assert!(warned(&first.stderr, &data, "0755"), "{}", first.describe());
    assert_eq!(mode(&data), 0o755, "left as it was");
    // The database was created private all the same.
    let db = data.join("scimgate.db");
    assert_eq!(mode(&db), 0o600);
    assert!(!warned(&first.stderr, &db, ""), "{}", first.describe());

    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let server = Server::start(sandbox.cmd(&["serve", "--listen", "127.0.0.1:0"]));
    let (status, output) = server.terminate();
    assert_eq!(status.code(), Some(0), "{output}");
    // (Both streams; only the log's JSON lines can match.)
    assert!(warned(&output, &data, "0755"), "{output}");
    assert!(warned(&output, &db, "0644"), "{output}");
}
