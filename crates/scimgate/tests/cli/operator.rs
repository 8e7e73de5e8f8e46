//! Operator commands against the database a running server uses.

use std::time::Duration;

use serde_json::Value;

use crate::support::*;

/// A sandbox whose config file pins the port, so operator commands print
/// the same URLs the server serves (as a shared config file does in a real
/// deployment).
fn with_config(sandbox: &Sandbox) -> (String, impl Fn(&[&str]) -> std::process::Command + '_) {
    let port = free_port();
    let config = sandbox.write(
        "scimgate.toml",
        &format!("listen = \"127.0.0.1:{port}\"\ntoken_cache_ttl_secs = 300\n"),
    );
    let cmd = move |args: &[&str]| {
        let mut cmd = sandbox.cmd(args);
        cmd.arg("--config").arg(&config);
        cmd
    };
    (format!("http://127.0.0.1:{port}"), cmd)
}

#[test]
fn tenant_create_while_serving_then_token_lifecycle() {
    let sandbox = Sandbox::new();
    let (base, cmd) = with_config(&sandbox);
    let server = Server::start(cmd(&["serve"]));
    assert_eq!(server.listen_url, base);
    let h = http();

    // tenant create --json: exactly the documented document.
    let created = run(cmd(&[
        "tenant",
        "create",
        "acme",
        "--name",
        "Acme Corp",
        "--json",
    ]))
    .json();
    let keys: Vec<&str> = created
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["tenant", "scim_url", "token"], "{created}");
    let tenant = &created["tenant"];
    assert_eq!(tenant["slug"], "acme");
    assert_eq!(tenant["name"], "Acme Corp");
    assert_eq!(tenant["kind"], "standard");
    assert_eq!(tenant["status"], "active");
    assert!(
        tenant["id"].as_str().is_some_and(|id| id.len() == 36),
        "{tenant}"
    );
    let scim_url = created["scim_url"].as_str().expect("scim_url");
    assert_eq!(scim_url, format!("{base}/tenants/acme/scim/v2"));
    let token = created["token"].as_str().expect("token").to_owned();

    // It works at once against the running server.
    assert_list_response(&h.get(&format!("{scim_url}/Users"), Some(&token)));
    let post = h.post(
        &format!("{scim_url}/Users"),
        &token,
        &user("grace@acme.test"),
    );
    assert_eq!(post.status, 201, "{}", post.text);
    // And only for its own tenant.
    let other = h.get(
        &format!("{base}/tenants/default/scim/v2/Users"),
        Some(&token),
    );
    assert_ne!(other.status, 200, "acme's token read the default tenant");

    // A read-only token reads but cannot write.
    let issued = run(cmd(&[
        "token",
        "issue",
        "acme",
        "--name",
        "app-read",
        "--scope",
        "scim:read",
        "--expires-in-days",
        "7",
        "--json",
    ]))
    .json();
    assert_eq!(issued["tenant"], "acme");
    assert_eq!(issued["scim_url"], scim_url);
    assert_eq!(
        issued["token_info"]["scopes"],
        serde_json::json!(["scim:read"])
    );
    assert!(issued["token_info"]["expires_at"].is_string(), "{issued}");
    let read_token = issued["token"].as_str().expect("token").to_owned();
    assert_list_response(&h.get(&format!("{scim_url}/Users"), Some(&read_token)));
    let denied = h.post(
        &format!("{scim_url}/Users"),
        &read_token,
        &user("x@acme.test"),
    );
    assert_eq!(denied.status, 403, "{}", denied.text);

    // token list shows both tokens and no secret.
    let listed = run(cmd(&["token", "list", "acme", "--json"]));
    let list = listed.json();
    assert!(!listed.stdout.contains(&token) && !listed.stdout.contains(&read_token));
    let tokens = list["tokens"].as_array().expect("tokens");
    assert_eq!(tokens.len(), 2, "{list}");
    for t in tokens {
        assert!(t.get("token").is_none() && t.get("secret").is_none(), "{t}");
        assert_eq!(t["status"], "active");
    }
    let human = run(cmd(&["token", "list", "acme"]));
    assert!(human.status.success(), "{}", human.describe());
    assert!(human.stdout.contains("app-read") && !human.stdout.contains(&token));

    // Revoking the first token stops it within seconds on the running
    // server, although the server had it cached (token_cache_ttl_secs = 300).
    let first_id = tokens
        .iter()
        .find(|t| t["name"] != "app-read")
        .and_then(|t| t["id"].as_str())
        .expect("first token id")
        .to_owned();
    let revoked = run(cmd(&["token", "revoke", "acme", &first_id, "--json"])).json();
    assert_eq!(revoked["revoked"]["id"], first_id.as_str());
    assert_eq!(revoked["revoked"]["status"], "revoked");
    let refused = eventually(Duration::from_secs(10), || {
        h.get(&format!("{scim_url}/Users"), Some(&token)).status == 401
    });
    assert!(
        refused,
        "revoked token still accepted after 10 s\n{}",
        server.proc.output()
    );
    assert_list_response(&h.get(&format!("{scim_url}/Users"), Some(&read_token)));

    // tenant list knows both tenants.
    let tenants = run(cmd(&["tenant", "list", "--json"])).json();
    let slugs: Vec<&str> = tenants["tenants"]
        .as_array()
        .expect("tenants")
        .iter()
        .filter_map(|t| t["slug"].as_str())
        .collect();
    assert_eq!(slugs, ["acme", "default"]);
    let human = run(cmd(&["tenant", "list"]));
    assert!(
        human.stdout.contains("SLUG") && human.stdout.contains("acme"),
        "{}",
        human.describe()
    );

    let (status, output) = server.terminate();
    assert_eq!(status.code(), Some(0), "{output}");
}

#[test]
fn human_output_and_errors() {
    let sandbox = Sandbox::new();
    let created = run(sandbox.cmd(&["tenant", "create", "msp", "--kind", "super"]));
    assert!(created.status.success(), "{}", created.describe());
    let out = &created.stdout;
    assert!(
        out.contains("SCIM URL:") && out.contains("/tenants/msp/scim/v2"),
        "{out}"
    );
    assert!(
        out.contains("Secret token:") && out.contains("super"),
        "{out}"
    );

    let again = run(sandbox.cmd(&["tenant", "create", "msp"]));
    assert_eq!(again.status.code(), Some(1), "{}", again.describe());
    assert!(
        again.stderr.contains("scimgate: error:"),
        "{}",
        again.describe()
    );

    let missing = run(sandbox.cmd(&["token", "list", "nosuch", "--json"]));
    assert_eq!(missing.status.code(), Some(1));
    let error: Value = serde_json::from_str(missing.stderr.trim()).expect("JSON error");
    assert!(
        error["error"]
            .as_str()
            .is_some_and(|e| e.contains("nosuch")),
        "{error}"
    );

    let bad_slug = run(sandbox.cmd(&["tenant", "create", "Not A Slug!"]));
    assert_eq!(bad_slug.status.code(), Some(1), "{}", bad_slug.describe());

    let bad_id = run(sandbox.cmd(&["token", "revoke", "msp", "not-a-uuid"]));
    assert_eq!(bad_id.status.code(), Some(2), "{}", bad_id.describe());

    let unknown_id = run(sandbox.cmd(&[
        "token",
        "revoke",
        "msp",
        "00000000-0000-0000-0000-000000000000",
    ]));
    assert_eq!(
        unknown_id.status.code(),
        Some(1),
        "{}",
        unknown_id.describe()
    );
}
