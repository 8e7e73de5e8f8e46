//! The same binary on PostgreSQL: `--database-url`, `SCIMGATE_DATABASE_URL_FILE`.
//! Needs the test PostgreSQL server; testkit fails the test if it cannot
//! provide one (never a silent skip).

use testkit::TestDb;

use crate::support::*;

/// The password part of a URL's user-info, if any.
fn password(url: &str) -> Option<&str> {
    let authority = url.split_once("://")?.1.split('/').next()?;
    let userinfo = authority.rsplit_once('@')?.0;
    userinfo
        .split_once(':')
        .map(|(_, p)| p)
        .filter(|p| !p.is_empty())
}

#[test]
fn postgres_end_to_end() {
    let db = http().block_on(testkit::fresh_database(TestDb::Postgres));
    let mut url = db.url.clone();
    assert!(url.starts_with("postgres"), "{url}");
    // testkit's own server trusts loopback and ignores passwords: give the
    // URL one anyway, so the test can prove it is never logged.
    if password(&url).is_none() && std::env::var_os(testkit::POSTGRES_URL_ENV).is_none() {
        url = url.replacen("postgres@", "postgres:never-logged-7f3a@", 1);
    }
    let sandbox = Sandbox::new();

    // The secret comes from a file, as with container secrets.
    let secret = sandbox.write("database-url", &format!("{url}\n"));
    let mut cmd = sandbox.cmd(&["serve", "--listen", "127.0.0.1:0"]);
    cmd.env("SCIMGATE_DATABASE_URL_FILE", &secret);
    let server = Server::start(cmd);
    let banner = server
        .banner()
        .unwrap_or_else(|| panic!("no banner\n{}", server.proc.output()));
    // Nothing went to the embedded SQLite file.
    assert!(!sandbox.data_dir().exists());

    let h = http();
    assert_list_response(&h.get(&format!("{}/Users", banner.scim_url), Some(&banner.token)));
    let created = h.post(
        &format!("{}/Users", banner.scim_url),
        &banner.token,
        &user("pg@example.com"),
    );
    assert_eq!(created.status, 201, "{}", created.text);

    // An operator command with --database-url on the same database, while serving.
    let mut cmd = sandbox.cmd(&[
        "tenant",
        "create",
        "pgacme",
        "--json",
        "--database-url",
        &url,
    ]);
    cmd.arg("--config").arg(sandbox.write(
        "c.toml",
        &format!("public_url = \"{}\"\n", server.listen_url),
    ));
    let tenant = run(cmd).json();
    let scim_url = tenant["scim_url"].as_str().expect("scim_url");
    assert_eq!(
        scim_url,
        format!("{}/tenants/pgacme/scim/v2", server.listen_url)
    );
    let token = tenant["token"].as_str().expect("token");
    assert_list_response(&h.get(&format!("{scim_url}/Users"), Some(token)));

    let (status, output) = server.terminate();
    assert_eq!(status.code(), Some(0), "{output}");
    // The database password never reaches the logs.
    if let Some(password) = password(&url) {
        assert!(
            !output.contains(password),
            "database password in output:\n{output}"
        );
        assert!(
            output.contains(":***@"),
            "redacted URL not logged:\n{output}"
        );
    }

    // Restart: PostgreSQL kept everything; no second banner.
    let server = Server::start(scimgate(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--database-url",
        &url,
    ]));
    assert!(server.banner().is_none(), "{}", server.proc.output());
    let url = format!("{}/tenants/default/scim/v2/Users", server.listen_url);
    let body = h.get(&url, Some(&banner.token)).json();
    assert_eq!(body["totalResults"], 1, "{body}");
    let (status, output) = server.terminate();
    assert_eq!(status.code(), Some(0), "{output}");
}
