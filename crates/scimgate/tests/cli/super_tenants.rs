//! `scimgate tenant kind|link|unlink|children`.

use testkit::backends;

use crate::seeded::Db;

#[test]
fn kinds_and_children_from_the_cli() {
    for which in backends() {
        let db = Db::new(which);
        db.tenant("msp");
        db.tenant("acme");

        let refused = db.fails(&["tenant", "link", "msp", "acme"]);
        assert!(
            refused.contains("'msp' is not a super tenant"),
            "{which:?}: {refused}"
        );
        let made = db.json(&["tenant", "kind", "msp", "super"]);
        assert_eq!(made["tenant"]["kind"], "super", "{which:?} {made}");

        let linked = db.json(&["tenant", "link", "msp", "acme", "--on-unroute", "delete"]);
        assert_eq!(linked["child"]["tenant"]["slug"], "acme", "{linked}");
        assert_eq!(linked["child"]["on_unroute"], "delete", "{linked}");
        let text = db.run(&["tenant", "children", "msp"]);
        assert!(text.status.success(), "{}", text.describe());
        assert!(
            text.stdout.contains("acme") && text.stdout.contains("delete"),
            "{}",
            text.stdout
        );

        let refused = db.fails(&["tenant", "kind", "msp", "standard"]);
        assert!(refused.contains("still feeds"), "{which:?}: {refused}");

        let refused = db.fails(&["tenant", "unlink", "msp", "acme"]);
        assert!(refused.contains("copies=keep"), "{which:?}: {refused}");
        let unlinked = db.json(&["tenant", "unlink", "msp", "acme", "--copies", "keep"]);
        assert_eq!(unlinked["unlinked"]["child"], "acme", "{unlinked}");
        let children = db.json(&["tenant", "children", "msp"]);
        assert_eq!(children["children"], serde_json::json!([]), "{which:?}");
        let refused = db.fails(&["tenant", "unlink", "msp", "acme", "--copies", "remove"]);
        assert!(refused.contains("not found"), "{which:?}: {refused}");
        let back = db.json(&["tenant", "kind", "msp", "standard"]);
        assert_eq!(back["tenant"]["kind"], "standard", "{which:?}");
    }
}

#[test]
fn routing_rules_from_the_cli_with_dry_run_and_reroute() {
    for which in backends() {
        let db = Db::new(which);
        let msp = db.tenant("msp");
        db.tenant("acme");
        let ids = db.users(&msp, &["ann@acme.example", "bob@other.example"]);
        db.json(&["tenant", "kind", "msp", "super"]);
        db.json(&["tenant", "link", "msp", "acme"]);
        let rules = r#"{"rules": [{"id": "acme-mail", "child": "acme", "filter": "userName ew \"@acme.example\""}]}"#;

        let shown = db.json(&["routing", "show", "msp"]);
        assert_eq!(shown["version"], 0, "{which:?} {shown}");

        // A dry run from standard input: who would enter; nothing stored.
        let mut args = vec![
            "routing",
            "set",
            "msp",
            "--file",
            "-",
            "--dry-run",
            "--json",
        ];
        let dry = db.run_with_stdin(&args, rules).json();
        assert_eq!(dry["dryRun"], true, "{dry}");
        assert_eq!(dry["children"][0]["child"], "acme", "{dry}");
        assert_eq!(dry["children"][0]["usersEntering"], 1, "{dry}");
        assert_eq!(
            dry["children"][0]["sampleEntering"][0]["name"], "ann@acme.example",
            "{dry}"
        );
        assert_eq!(db.json(&["routing", "show", "msp"])["version"], 0);

        // Stored, and the re-route job run to its end by the command.
        args.retain(|a| *a != "--dry-run");
        let stored = db.run_with_stdin(&args, rules).json();
        assert_eq!(stored["version"], 1, "{which:?} {stored}");
        assert_eq!(stored["job"]["status"], "done", "{stored}");
        assert_eq!(
            stored["job"]["result"]["children"][0]["usersEntering"], 1,
            "{stored}"
        );
        let copies = db.json(&["routing", "copies", "msp", &ids["ann@acme.example"]]);
        assert_eq!(copies["copies"][0]["child"], "acme", "{copies}");
        assert_eq!(
            copies["copies"][0]["rules"],
            serde_json::json!(["acme-mail"])
        );
        let none = db.json(&["routing", "copies", "msp", &ids["bob@other.example"]]);
        assert_eq!(none["copies"], serde_json::json!([]), "{none}");

        // A stale version, a bad rule and a bad file are refused cleanly.
        let stale = db.run_with_stdin(
            &["routing", "set", "msp", "--file", "-", "--if-match", "0"],
            rules,
        );
        assert_eq!(stale.status.code(), Some(1), "{}", stale.describe());
        assert!(stale.stderr.contains("version 1"), "{}", stale.stderr);
        let bad = db.run_with_stdin(
            &["routing", "set", "msp", "--file", "-"],
            r#"[{"id": "x", "child": "nobody", "filter": "active eq true"}]"#,
        );
        assert!(
            bad.stderr.contains("'nobody' is not a child"),
            "{}",
            bad.describe()
        );
        let refused = db.fails(&["routing", "set", "msp", "--file", "/nonexistent/rules.json"]);
        assert!(refused.contains("cannot read"), "{refused}");
    }
}
