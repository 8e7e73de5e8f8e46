//! Layered configuration as the binary sees it.

use crate::support::*;

fn path(p: &std::path::Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}

#[test]
fn file_then_env_then_flag_decide_the_listen_port() {
    let sandbox = Sandbox::new();
    let (file_port, env_port, flag_port) = (free_port(), free_port(), free_port());
    let config = sandbox.write(
        "scimgate.toml",
        &format!("listen = \"127.0.0.1:{file_port}\"\nmax_count = 2\n"),
    );
    let serve = |env: bool, flag: bool| {
        let mut cmd = sandbox.cmd(&["serve", "--config", path(&config)]);
        if env {
            cmd.env("SCIMGATE_LISTEN", format!("127.0.0.1:{env_port}"));
        }
        if flag {
            cmd.arg("--listen").arg(format!("127.0.0.1:{flag_port}"));
        }
        Server::start(cmd)
    };

    let server = serve(true, true);
    assert_eq!(server.addr().port(), flag_port, "flag beats env and file");
    let banner = server.banner().expect("first start");
    // max_count from the file caps a list request's page.
    let h = http();
    for name in ["a@x.test", "b@x.test", "c@x.test"] {
        let reply = h.post(
            &format!("{}/Users", banner.scim_url),
            &banner.token,
            &user(name),
        );
        assert_eq!(reply.status, 201, "{}", reply.text);
    }
    let page = h.get(
        &format!("{}/Users?count=100", banner.scim_url),
        Some(&banner.token),
    );
    let body = page.json();
    assert_eq!(body["totalResults"], 3, "{body}");
    assert_eq!(
        body["Resources"].as_array().map(Vec::len),
        Some(2),
        "{body}"
    );
    drop(server.terminate());

    let server = serve(true, false);
    assert_eq!(server.addr().port(), env_port, "env beats file");
    drop(server.terminate());

    // SCIMGATE_CONFIG names the file when --config is absent.
    let mut cmd = sandbox.cmd(&["serve"]);
    cmd.env("SCIMGATE_CONFIG", &config);
    let server = Server::start(cmd);
    assert_eq!(server.addr().port(), file_port, "file beats default");
    drop(server.terminate());
}

#[test]
fn unknown_keys_warn_and_bad_values_fail() {
    let sandbox = Sandbox::new();
    let config = sandbox.write("c.toml", "lisen = \"127.0.0.1:1\"\n");
    let mut cmd = sandbox.cmd(&["migrate", "--config", path(&config)]);
    cmd.env("SCIMGATE_MAX_CONUT", "5");
    let done = run(cmd);
    assert!(done.status.success(), "{}", done.describe());
    assert!(
        done.stderr.contains("unknown configuration key `lisen`"),
        "{}",
        done.describe()
    );
    assert!(
        done.stderr.contains("SCIMGATE_MAX_CONUT"),
        "{}",
        done.describe()
    );
    assert!(
        done.stderr.contains("\"level\":\"WARN\""),
        "{}",
        done.describe()
    );

    let mut cmd = sandbox.cmd(&["migrate"]);
    cmd.env("SCIMGATE_MAX_COUNT", "lots");
    let failed = run(cmd);
    assert_eq!(failed.status.code(), Some(1));
    assert!(
        failed.stderr.contains("SCIMGATE_MAX_COUNT"),
        "{}",
        failed.describe()
    );

    let failed = run(sandbox.cmd(&["migrate", "--config", "/nonexistent/scimgate.toml"]));
    assert_eq!(failed.status.code(), Some(1));
    assert!(
        failed.stderr.contains("does not exist"),
        "{}",
        failed.describe()
    );

    let mut cmd = sandbox.cmd(&["migrate"]);
    cmd.env("SCIMGATE_LOG_LEVEL", "info,[[[");
    let failed = run(cmd);
    assert_eq!(failed.status.code(), Some(1), "{}", failed.describe());
    assert!(failed.stderr.contains("log_level"), "{}", failed.describe());
}

#[test]
fn data_dir_from_environment_and_sqlite_url() {
    let sandbox = Sandbox::new();
    let dir = sandbox.path().join("from-env");
    let mut cmd = scimgate(&["migrate"]);
    cmd.env("SCIMGATE_DATA_DIR", &dir);
    let done = run(cmd);
    assert!(done.status.success(), "{}", done.describe());
    assert!(dir.join("scimgate.db").is_file());

    // An explicit sqlite: URL replaces the data directory altogether.
    let file = sandbox.path().join("elsewhere.db");
    let url = format!("sqlite://{}?mode=rwc", file.display());
    let done = run(sandbox.cmd(&["migrate", "--database-url", &url]));
    assert!(done.status.success(), "{}", done.describe());
    assert!(file.is_file());
    assert!(!sandbox.data_dir().exists());
}
