//! The `safety` commands on the embedded database: the deletion policy,
//! protected users, held deletions, soft-deleted users, restore and
//! erasure.

use serde_json::{Value, json};

use crate::support::*;

fn serve(sandbox: &Sandbox) -> Server {
    Server::start(sandbox.cmd(&["serve", "--listen", "127.0.0.1:0"]))
}

fn stop(server: Server) {
    let (status, output) = server.terminate();
    assert_eq!(status.code(), Some(0), "{output}");
}

/// `key` of every entry of `list[field]`, sorted.
fn ids(list: &Value, field: &str, key: &str) -> Vec<String> {
    let mut out: Vec<String> = list[field]
        .as_array()
        .unwrap_or_else(|| panic!("no {field} in {list}"))
        .iter()
        .filter_map(|e| e[key].as_str().map(str::to_owned))
        .collect();
    out.sort();
    out
}

#[test]
fn safety_commands_manage_a_tenants_deletion_safety() {
    let sandbox = Sandbox::new();
    let safety = |args: &[&str]| {
        let mut all = vec!["safety"];
        all.extend_from_slice(args);
        run(sandbox.cmd(&all))
    };

    // Three users over SCIM.
    let server = serve(&sandbox);
    let banner = server.banner().expect("banner");
    let scim_path = banner
        .scim_url
        .strip_prefix(&server.listen_url)
        .unwrap_or_else(|| panic!("{} is not under {}", banner.scim_url, server.listen_url))
        .to_owned();
    assert!(scim_path.contains("/default/"), "{scim_path}");
    let mut users = Vec::new();
    for name in ["ada", "bob", "cy"] {
        let reply = http().post(
            &format!("{}/Users", banner.scim_url),
            &banner.token,
            &user(name),
        );
        assert_eq!(reply.status, 201, "{}", reply.text);
        users.push(reply.json()["id"].as_str().expect("id").to_owned());
    }
    let (ada, bob, cy) = (users[0].clone(), users[1].clone(), users[2].clone());
    stop(server);

    // The defaults until a policy is set.
    let shown = safety(&["show", "default", "--json"]).json();
    assert_eq!(shown["version"], 0, "{shown}");
    assert_eq!(shown["maxDeletions"], 500, "{shown}");

    // A policy: one deletion per window; the rest take their defaults.
    let set = safety(&["set", "default", "--max-deletions", "1", "--json"]).json();
    let shown = safety(&["show", "default", "--json"]).json();
    assert_eq!(set, shown);
    assert_eq!(shown["maxDeletions"], 1, "{shown}");
    assert_eq!(shown["version"], 1, "{shown}");
    assert_eq!(shown["maxPercent"], Value::Null, "{shown}");
    assert_eq!(shown["windowMinutes"], 60, "{shown}");
    assert_eq!(shown["graceDays"], 30, "{shown}");
    assert_eq!(shown["tripped"], false, "{shown}");
    assert_eq!(shown["held"], 0, "{shown}");
    let text = safety(&["show", "default"]);
    assert!(text.status.success(), "{}", text.describe());
    assert!(text.stdout.contains("version 1"), "{}", text.describe());

    // Out of bounds, or a stale version: refused, nothing changed.
    for bad in ["0", "101"] {
        let refused = safety(&["set", "default", "--max-percent", bad]);
        assert_eq!(refused.status.code(), Some(1), "{}", refused.describe());
        assert!(
            refused.stderr.contains("maxPercent"),
            "{}",
            refused.describe()
        );
    }
    let stale = safety(&["set", "default", "--max-deletions", "7", "--if-match", "0"]);
    assert_eq!(stale.status.code(), Some(1), "{}", stale.describe());
    assert!(
        stale.stderr.contains("current version is 1"),
        "{}",
        stale.describe()
    );
    assert_eq!(safety(&["show", "default", "--json"]).json(), shown);

    // Protection: with a reason, listed, removed.
    let protected = safety(&[
        "protect",
        "default",
        &cy,
        "--reason",
        "break-glass admin",
        "--json",
    ])
    .json();
    assert_eq!(protected["userId"], json!(cy), "{protected}");
    let list = safety(&["protected", "default", "--json"]).json();
    assert_eq!(ids(&list, "users", "userId"), [cy.as_str()], "{list}");
    assert_eq!(list["users"][0]["reason"], "break-glass admin", "{list}");
    assert!(
        list["users"][0]["protectedBy"]
            .as_str()
            .is_some_and(|a| a.starts_with("cli:")),
        "{list}"
    );
    let unprotected = safety(&["unprotect", "default", &cy]);
    assert!(unprotected.status.success(), "{}", unprotected.describe());
    let list = safety(&["protected", "default", "--json"]).json();
    assert_eq!(list["users"], json!([]), "{list}");
    let again = safety(&["unprotect", "default", &cy]);
    assert_eq!(again.status.code(), Some(1), "{}", again.describe());

    // Two deletions over SCIM: the first passes, the second is held; both
    // users are soft-deleted.
    let server = serve(&sandbox);
    for id in [&ada, &bob] {
        let reply = http().delete(
            &format!("{}{scim_path}/Users/{id}", server.listen_url),
            &banner.token,
        );
        assert_eq!(reply.status, 204, "{}", reply.text);
    }
    stop(server);
    let held = safety(&["held", "default", "--json"]).json();
    assert_eq!(ids(&held, "changes", "userId"), [bob.as_str()], "{held}");
    assert_eq!(held["changes"][0]["reason"], "threshold", "{held}");
    assert_eq!(held["changes"][0]["eventType"], "user.deleted", "{held}");
    assert_eq!(held["changes"][0]["userName"], "bob", "{held}");
    let shown = safety(&["show", "default", "--json"]).json();
    assert_eq!(shown["tripped"], true, "{shown}");
    assert_eq!(shown["held"], 1, "{shown}");
    let mut both = vec![ada.clone(), bob.clone()];
    both.sort();
    let deleted = safety(&["deleted", "default", "--json"]).json();
    assert_eq!(ids(&deleted, "users", "id"), both, "{deleted}");

    // Release and discard: an unknown id is refused; all are released.
    let unknown = safety(&["discard", "default", "--id", "999999"]);
    assert_eq!(unknown.status.code(), Some(1), "{}", unknown.describe());
    let released = safety(&["release", "default", "--json"]).json();
    assert_eq!(released["count"], 1, "{released}");
    let held = safety(&["held", "default", "--json"]).json();
    assert_eq!(held["changes"], json!([]), "{held}");
    let shown = safety(&["show", "default", "--json"]).json();
    assert_eq!(shown["tripped"], false, "{shown}");
    assert_eq!(shown["held"], 0, "{shown}");

    // Restore one with its id; once only.
    let restored = safety(&["restore", "default", &ada, "--json"]).json();
    assert_eq!(restored, json!({"id": ada, "userName": "ada"}));
    let deleted = safety(&["deleted", "default", "--json"]).json();
    assert_eq!(ids(&deleted, "users", "id"), [bob.as_str()], "{deleted}");
    let twice = safety(&["restore", "default", &ada]);
    assert_eq!(twice.status.code(), Some(1), "{}", twice.describe());

    // Erase the other: only with --confirm repeating its id.
    let unconfirmed = safety(&["erase", "default", &bob]);
    assert_eq!(
        unconfirmed.status.code(),
        Some(1),
        "{}",
        unconfirmed.describe()
    );
    assert!(
        unconfirmed.stderr.contains("--confirm"),
        "{}",
        unconfirmed.describe()
    );
    let mismatched = safety(&["erase", "default", &bob, "--confirm", &ada]);
    assert_eq!(
        mismatched.status.code(),
        Some(1),
        "{}",
        mismatched.describe()
    );
    let deleted = safety(&["deleted", "default", "--json"]).json();
    assert_eq!(ids(&deleted, "users", "id"), [bob.as_str()], "{deleted}");
    let erased = safety(&["erase", "default", &bob, "--confirm", &bob, "--json"]).json();
    assert_eq!(erased["id"], json!(bob), "{erased}");
    assert_eq!(erased["rows"]["deleted_users"], 1, "{erased}");
    let deleted = safety(&["deleted", "default", "--json"]).json();
    assert_eq!(deleted["users"], json!([]), "{deleted}");
}
