//! `scimgate admin ...`: operator and tenant administrator logins.

use testkit::backends;

use crate::seeded::{ACTOR, Db};

#[test]
fn create_operator_prints_a_password_that_logs_in() {
    for which in backends() {
        let db = Db::new(which);
        let admin = db.store.admin();

        // Generated: printed once, in the JSON too.
        let created = db.json(&["admin", "create-operator", "--email", "ops@example.test"]);
        assert_eq!(
            created["operator"]["email"], "ops@example.test",
            "{which:?}"
        );
        assert_eq!(
            created["operator"]["id"].as_str().map(str::len),
            Some(36),
            "{created}"
        );
        let password = created["password"].as_str().expect("password").to_owned();
        assert!(password.len() >= 12, "{password}");
        let principal = db
            .block_on(admin.verify_operator("ops@example.test", &password))
            .expect("verify");
        assert!(
            principal.is_some(),
            "{which:?}: the printed password is refused"
        );
        let wrong = db
            .block_on(admin.verify_operator("ops@example.test", "not-the-password"))
            .expect("verify");
        assert!(wrong.is_none());

        // Human form: the password on a labelled line.
        let human = db.run(&["admin", "create-operator", "--email", "ops2@example.test"]);
        assert!(human.status.success(), "{}", human.describe());
        let shown = human
            .stdout
            .lines()
            .find_map(|l| l.trim().strip_prefix("Password:"))
            .map(str::trim)
            .expect("a Password: line")
            .to_owned();
        let principal = db
            .block_on(admin.verify_operator("ops2@example.test", &shown))
            .expect("verify");
        assert!(principal.is_some(), "{which:?}: {}", human.describe());

        // From standard input: never echoed.
        let typed = "correct horse battery staple";
        let done = db.run_with_stdin(
            &[
                "admin",
                "create-operator",
                "--email",
                "ops3@example.test",
                "--password-stdin",
                "--json",
            ],
            &format!("{typed}\n"),
        );
        let created = done.json();
        assert!(created.get("password").is_none(), "{created}");
        assert!(!done.stdout.contains(typed));
        let principal = db
            .block_on(admin.verify_operator("ops3@example.test", typed))
            .expect("verify");
        assert!(principal.is_some(), "{which:?}");

        // Taken e-mail, short password: clean refusals.
        let taken = db.fails(&["admin", "create-operator", "--email", "OPS@example.test"]);
        assert!(taken.contains("already exists"), "{taken}");
        let short = db.run_with_stdin(
            &[
                "admin",
                "create-operator",
                "--email",
                "ops4@example.test",
                "--password-stdin",
            ],
            "short\n",
        );
        assert_eq!(short.status.code(), Some(1), "{}", short.describe());
        assert!(
            short.stderr.contains("at least 12 characters"),
            "{}",
            short.describe()
        );
        let empty = db.run_with_stdin(
            &[
                "admin",
                "create-operator",
                "--email",
                "ops4@example.test",
                "--password-stdin",
            ],
            "",
        );
        assert_eq!(empty.status.code(), Some(1), "{}", empty.describe());
        assert_eq!(db.block_on(admin.count_operators()).expect("count"), 3);

        let audit = db.json(&["audit"]);
        let created: Vec<(&str, &str)> = audit["entries"]
            .as_array()
            .expect("entries")
            .iter()
            .filter(|e| e["action"] == "operator.create")
            .map(|e| {
                assert_eq!(e["tenant"], serde_json::Value::Null, "{e}");
                (
                    e["target"].as_str().unwrap_or_default(),
                    e["actor"].as_str().unwrap_or_default(),
                )
            })
            .collect();
        assert_eq!(
            created,
            [
                ("ops3@example.test", ACTOR),
                ("ops2@example.test", ACTOR),
                ("ops@example.test", ACTOR),
            ],
            "{which:?} {audit}"
        );
    }
}

#[test]
fn tenant_admin_logins_lifecycle() {
    for which in backends() {
        let db = Db::new(which);
        let acme = db.tenant("acme");
        let admin = db.store.admin();

        // A short password fails cleanly and creates nothing.
        let short = db.run_with_stdin(
            &[
                "admin",
                "create-tenant-admin",
                "acme",
                "--email",
                "lead@acme.test",
                "--password-stdin",
            ],
            "tooshort\n",
        );
        assert_eq!(
            short.status.code(),
            Some(1),
            "{which:?} {}",
            short.describe()
        );
        assert_eq!(
            short.stderr.trim(),
            "scimgate: error: password must have at least 12 characters"
        );
        let listed = db.json(&["admin", "list-tenant-admins", "acme"]);
        assert_eq!(listed["tenant_admins"], serde_json::json!([]), "{listed}");

        let password = "tenant-admin-password-1";
        let done = db.run_with_stdin(
            &[
                "admin",
                "create-tenant-admin",
                "acme",
                "--email",
                "lead@acme.test",
                "--password-stdin",
                "--json",
            ],
            &format!("{password}\r\n"),
        );
        let created = done.json();
        assert_eq!(created["tenant"], "acme");
        assert_eq!(created["tenant_admin"]["email"], "lead@acme.test");
        assert!(created.get("password").is_none(), "{created}");
        let principal = db
            .block_on(admin.verify_tenant_admin(&acme, "lead@acme.test", password))
            .expect("verify")
            .expect("the password logs in");
        assert_eq!(principal.tenant.as_ref().map(|t| t.slug()), Some("acme"));

        // Generated: printed once.
        let generated = db.json(&[
            "admin",
            "create-tenant-admin",
            "acme",
            "--email",
            "second@acme.test",
        ]);
        let second = generated["password"].as_str().expect("password");
        assert!(
            db.block_on(admin.verify_tenant_admin(&acme, "second@acme.test", second))
                .expect("verify")
                .is_some()
        );

        let listed = db.json(&["admin", "list-tenant-admins", "acme"]);
        let emails: Vec<&str> = listed["tenant_admins"]
            .as_array()
            .expect("array")
            .iter()
            .filter_map(|a| a["email"].as_str())
            .collect();
        assert_eq!(emails, ["lead@acme.test", "second@acme.test"], "{listed}");
        assert!(!listed.to_string().contains(password));

        // Delete by e-mail, then by id.
        let deleted = db.json(&["admin", "delete-tenant-admin", "acme", "LEAD@acme.test"]);
        assert_eq!(deleted["deleted"]["email"], "lead@acme.test");
        let id = generated["tenant_admin"]["id"].as_str().expect("id");
        db.json(&["admin", "delete-tenant-admin", "acme", id]);
        let listed = db.json(&["admin", "list-tenant-admins", "acme"]);
        assert_eq!(listed["tenant_admins"], serde_json::json!([]));
        let gone = db.fails(&["admin", "delete-tenant-admin", "acme", id]);
        assert!(gone.contains(id), "{gone}");
        let no_tenant = db.fails(&["admin", "list-tenant-admins", "nosuch"]);
        assert!(no_tenant.contains("nosuch"), "{no_tenant}");

        // Audited as the CLI's user.
        let audit = db.json(&["audit", "--tenant", "acme"]);
        let actions: Vec<(&str, &str)> = audit["entries"]
            .as_array()
            .expect("entries")
            .iter()
            .map(|e| {
                (
                    e["action"].as_str().unwrap_or_default(),
                    e["actor"].as_str().unwrap_or_default(),
                )
            })
            .collect();
        assert_eq!(
            actions,
            [
                ("tenant_admin.delete", ACTOR),
                ("tenant_admin.delete", ACTOR),
                ("tenant_admin.create", ACTOR),
                ("tenant_admin.create", ACTOR),
                ("tenant.create", "test"),
            ],
            "{which:?} {audit}"
        );
    }
}
