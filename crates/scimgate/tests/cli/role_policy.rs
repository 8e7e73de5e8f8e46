//! `scimgate role ...`: the role policy, dry runs and recompute jobs.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value, json};
use testkit::backends;

use crate::seeded::{ACTOR, Db};
use crate::support::{Server, eventually};

/// The names of a role list in a `role show` document.
fn role_names(shown: &Value) -> Vec<&str> {
    shown["roles"]
        .as_array()
        .expect("roles")
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect()
}

#[test]
fn add_map_default_show_round_trip() {
    for which in backends() {
        let db = Db::new(which);
        let acme = db.tenant("acme");

        let empty = db.json(&["role", "show", "acme"]);
        assert_eq!(
            empty,
            json!({
                "version": 0,
                "mode": "single",
                "default_role": null,
                "roles": [],
                "mappings": [],
                "tenant": "acme",
                "latest_job": null,
            }),
            "{which:?}"
        );

        let added = db.json(&[
            "role",
            "add",
            "acme",
            "viewer",
            "--description",
            "reads everything",
        ]);
        assert_eq!(added["version"], 1, "{added}");
        assert_eq!(added["dry_run"], false);
        assert_eq!(
            added["job"]["status"], "done",
            "the CLI ran its job: {added}"
        );
        assert_eq!(
            added["policy"]["roles"][0]["description"],
            "reads everything"
        );
        db.json(&["role", "add", "acme", "admin"]);
        db.json(&["role", "default", "acme", "viewer"]);
        let mapped = db.json(&[
            "role",
            "map",
            "acme",
            "--group-name",
            "Admins",
            "--role",
            "admin",
            "--priority",
            "-5",
        ]);
        assert_eq!(
            mapped["change"],
            "map group displayName \"Admins\" to role \"admin\" (priority -5)"
        );
        db.json(&[
            "role",
            "map",
            "acme",
            "--group-external-id",
            "ext-7",
            "--role",
            "viewer",
        ]);

        let shown = db.json(&["role", "show", "acme"]);
        assert_eq!(shown["tenant"], "acme");
        assert_eq!(shown["version"], 5, "{shown}");
        assert_eq!(shown["mode"], "single");
        assert_eq!(shown["default_role"], "viewer");
        assert_eq!(role_names(&shown), ["viewer", "admin"]);
        let mappings = shown["mappings"].as_array().expect("mappings");
        assert_eq!(mappings.len(), 2, "{shown}");
        let first_id = mappings[0]["id"].as_str().expect("mapping id").to_owned();
        assert_eq!(first_id.len(), 36, "{shown}");
        assert_eq!(
            mappings[0]["group"],
            json!({"attribute": "displayName", "value": "Admins"})
        );
        assert_eq!(mappings[0]["role"], "admin");
        assert_eq!(mappings[0]["priority"], -5);
        assert_eq!(
            mappings[1]["group"],
            json!({"attribute": "externalId", "value": "ext-7"})
        );
        assert_eq!(mappings[1]["priority"], 0);
        assert_eq!(shown["latest_job"]["status"], "done", "{shown}");
        assert_eq!(shown["latest_job"]["policy_version"], 5);
        // What the store holds is what was shown.
        let stored = db.block_on(db.dir(&acme).role_policy()).expect("policy");
        assert_eq!(stored.version, 5);
        assert_eq!(stored.mapping_ids[0], first_id);

        // Refusals name the problem and change nothing.
        let in_use = db.fails(&["role", "remove", "acme", "admin"]);
        assert!(in_use.contains(&first_id), "{in_use}");
        let default = db.fails(&["role", "remove", "acme", "viewer"]);
        assert!(default.contains("default role"), "{default}");
        let twice = db.fails(&["role", "add", "acme", "admin"]);
        assert!(twice.contains("already defined"), "{twice}");
        let unknown = db.fails(&["role", "map", "acme", "--group-id", "g1", "--role", "root"]);
        assert!(unknown.contains("\"root\""), "{unknown}");
        let no_mapping = db.fails(&["role", "unmap", "acme", "nope"]);
        assert!(no_mapping.contains("nope"), "{no_mapping}");
        let blank = db.fails(&["role", "add", "acme", " spaced"]);
        assert!(blank.contains("whitespace"), "{blank}");
        assert_eq!(db.policy_version(&acme), 5);
        // Two ways to name the group is one too many (a usage error).
        let both = db.run(&[
            "role",
            "map",
            "acme",
            "--group-name",
            "A",
            "--group-id",
            "B",
            "--role",
            "admin",
        ]);
        assert_eq!(both.status.code(), Some(2), "{}", both.describe());

        // A no-op stores nothing.
        let same = db.json(&["role", "default", "acme", "viewer"]);
        assert_eq!(same["unchanged"], true, "{same}");
        assert_eq!(db.policy_version(&acme), 5);

        db.json(&["role", "unmap", "acme", &first_id]);
        db.json(&["role", "mode", "acme", "multi"]);
        db.json(&["role", "describe", "acme", "admin", "does everything"]);
        db.json(&["role", "remove", "acme", "admin"]);
        db.json(&["role", "default", "acme", "--none"]);
        let shown = db.json(&["role", "show", "acme"]);
        assert_eq!(shown["version"], 10, "{shown}");
        assert_eq!(shown["mode"], "multi");
        assert_eq!(shown["default_role"], Value::Null);
        assert_eq!(role_names(&shown), ["viewer"]);
        assert_eq!(shown["mappings"].as_array().map(Vec::len), Some(1));

        // Human forms.
        let human = db.run(&["role", "show", "acme"]);
        assert!(human.status.success(), "{}", human.describe());
        assert!(
            human
                .stdout
                .contains("version 10, mode multi, default role none")
                && human.stdout.contains("externalId \"ext-7\""),
            "{}",
            human.describe()
        );
        let jobs = db.json(&["role", "jobs", "acme", "--limit", "3"]);
        let jobs = jobs["jobs"].as_array().expect("jobs");
        assert_eq!(jobs.len(), 3);
        assert!(jobs.iter().all(|j| j["status"] == "done"), "{jobs:?}");
        assert_eq!(jobs[0]["policy_version"], 10);

        // Every change is audited as the CLI's user.
        let audit = db.json(&["audit", "--tenant", "acme", "--limit", "100"]);
        let sets: Vec<&Value> = audit["entries"]
            .as_array()
            .expect("entries")
            .iter()
            .filter(|e| e["action"] == "roles.policy.set")
            .collect();
        assert_eq!(sets.len(), 10, "{audit}");
        assert!(sets.iter().all(|e| e["actor"] == ACTOR), "{audit}");
        assert_eq!(sets[0]["detail"]["after"]["version"], 10);
    }
}

#[test]
fn dry_run_previews_then_map_recomputes() {
    for which in backends() {
        let db = Db::new(which);
        let acme = db.tenant("acme");
        db.json(&["role", "add", "acme", "viewer"]);
        db.json(&["role", "add", "acme", "admin"]);
        db.json(&["role", "default", "acme", "viewer"]);
        let users = db.users(&acme, &["ada", "grace", "linus", "ken", "barbara"]);
        let id = |name: &str| users[name].clone();
        db.group(&acme, "Admins", &[&id("ada"), &id("grace")]);
        db.group(&acme, "Staff", &[&id("linus"), &id("ada")]);
        let all: Vec<&String> = users.values().collect();
        let before = db.roles_of(&acme, &all);
        assert!(
            before.values().all(|r| r == &["viewer"]),
            "{which:?}: {before:?}"
        );
        let version = db.policy_version(&acme);

        // Matching is case-insensitive on displayName.
        let map = [
            "role",
            "map",
            "acme",
            "--group-name",
            "admins",
            "--role",
            "admin",
            "--priority",
            "10",
        ];
        let mut dry = map.to_vec();
        dry.push("--dry-run");
        let preview = db.json(&dry);
        assert_eq!(preview["dry_run"], true);
        assert_eq!(preview["version"], version);
        assert_eq!(preview["preview"]["users"], 5, "{which:?} {preview}");
        assert_eq!(preview["preview"]["changed"], 2, "{preview}");
        let sample = preview["preview"]["sample"].as_array().expect("sample");
        let names: BTreeSet<&str> = sample
            .iter()
            .filter_map(|c| c["user_name"].as_str())
            .collect();
        assert_eq!(names, BTreeSet::from(["ada", "grace"]), "{preview}");
        for change in sample {
            assert_eq!(change["before"], json!(["viewer"]), "{change}");
            assert_eq!(change["after"], json!(["admin"]), "{change}");
            assert_eq!(
                change["user_id"],
                users[change["user_name"].as_str().unwrap_or_default()]
            );
        }
        // Nothing changed: no new version, no job, same roles.
        assert_eq!(db.policy_version(&acme), version);
        assert_eq!(db.roles_of(&acme, &all), before);
        let jobs = db.json(&["role", "jobs", "acme"]);
        assert_eq!(jobs["jobs"].as_array().map(Vec::len), Some(3), "{jobs}");
        let human = db.run(&dry);
        assert!(
            human
                .stdout
                .contains("2 of the 5 users of tenant \"acme\" would get other roles")
                && human.stdout.contains("ada: viewer → admin")
                && human.stdout.contains("Nothing was stored"),
            "{}",
            human.describe()
        );

        // The real change: the CLI runs the recompute itself.
        let stored = db.json(&map);
        assert_eq!(stored["version"], version + 1, "{stored}");
        assert_eq!(stored["job"]["status"], "done", "{stored}");
        assert_eq!(stored["job"]["processed"], 5);
        assert_eq!(stored["job"]["changed"], 2);
        let after = db.roles_of(&acme, &all);
        for (name, user) in &users {
            let expected = if ["ada", "grace"].contains(&name.as_str()) {
                ["admin"]
            } else {
                ["viewer"]
            };
            assert_eq!(after[user], expected, "{which:?} {name}");
        }

        // --no-wait queues; the next waiting change runs the (coalesced) job.
        let queued = db.json(&["role", "mode", "acme", "multi", "--no-wait"]);
        assert_eq!(queued["job"]["status"], "queued", "{queued}");
        let queued_id = queued["job"]["id"].as_str().expect("job id").to_owned();
        assert_eq!(db.roles_of(&acme, &all), after, "nothing ran yet");
        let staff = db.json(&[
            "role",
            "map",
            "acme",
            "--group-name",
            "Staff",
            "--role",
            "viewer",
        ]);
        assert_eq!(
            staff["job"]["id"],
            queued_id.as_str(),
            "jobs coalesce: {staff}"
        );
        assert_eq!(staff["job"]["status"], "done");
        assert_eq!(staff["job"]["policy_version"], version + 3);
        // In multi mode ada (Admins and Staff) has both roles.
        let ada = db.roles_of(&acme, &[&id("ada")]);
        assert_eq!(ada[&id("ada")], ["admin", "viewer"], "{which:?}");

        // --dry-run and --no-wait do not go together.
        let both = db.run(&["role", "mode", "acme", "single", "--dry-run", "--no-wait"]);
        assert_eq!(both.status.code(), Some(2), "{}", both.describe());
    }
}

#[test]
fn changes_while_a_server_runs_its_role_worker() {
    for which in backends() {
        let db = Db::new(which);
        let server = Server::start(db.cmd(&["serve", "--listen", "127.0.0.1:0"]));
        let acme = db.tenant("acme");
        let users = db.users(&acme, &["ada", "grace"]);
        db.group(&acme, "Admins", &[&users["ada"]]);
        db.json(&["role", "add", "acme", "viewer"]);
        db.json(&["role", "add", "acme", "admin"]);

        // --no-wait: the server's worker applies it.
        let queued = db.json(&["role", "default", "acme", "viewer", "--no-wait"]);
        let job = queued["job"]["id"].as_str().expect("job id").to_owned();
        let applied = eventually(Duration::from_secs(30), || {
            let jobs = db.json(&["role", "jobs", "acme", "--limit", "1"]);
            jobs["jobs"][0]["id"] == job.as_str() && jobs["jobs"][0]["status"] == "done"
        });
        assert!(
            applied,
            "{which:?}: the server did not run the job\n{}",
            server.proc.output()
        );
        let ids: Vec<&String> = users.values().collect();
        assert!(db.roles_of(&acme, &ids).values().all(|r| r == &["viewer"]));

        // Waiting: whichever process claims the job, the CLI reports it done.
        let mapped = db.json(&[
            "role",
            "map",
            "acme",
            "--group-name",
            "Admins",
            "--role",
            "admin",
        ]);
        assert_eq!(mapped["job"]["status"], "done", "{mapped}");
        assert_eq!(mapped["job"]["changed"], 1, "{mapped}");
        assert_eq!(
            db.roles_of(&acme, &[&users["ada"]])[&users["ada"]],
            ["admin"]
        );

        let (status, output) = server.terminate();
        assert_eq!(status.code(), Some(0), "{output}");
    }
}
