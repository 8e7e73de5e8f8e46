//! `scimgate lock`, `unlock`, `locks`: role-locks by user id or userName.

use serde_json::json;
use testkit::backends;

use crate::seeded::{ACTOR, Db};

#[test]
fn lock_by_user_name_with_reason_then_unlock() {
    for which in backends() {
        let db = Db::new(which);
        let acme = db.tenant("acme");
        db.json(&["role", "add", "acme", "viewer"]);
        db.json(&["role", "add", "acme", "admin"]);
        db.json(&["role", "add", "acme", "auditor"]);
        db.json(&["role", "default", "acme", "viewer"]);
        let users = db.users(&acme, &["grace@example.test", "linus@example.test"]);
        let grace = users["grace@example.test"].clone();
        let linus = users["linus@example.test"].clone();

        // By userName (compared as SCIM compares it, ignoring case).
        let locked = db.json(&[
            "lock",
            "acme",
            "Grace@Example.test",
            "--role",
            "auditor",
            "--role",
            "admin",
            "--reason",
            "incident 42: keep access during the IdP migration",
        ]);
        assert_eq!(
            locked["lock"]["user_id"],
            grace.as_str(),
            "{which:?} {locked}"
        );
        assert_eq!(locked["lock"]["user_name"], "grace@example.test");
        assert_eq!(locked["lock"]["roles"], json!(["admin", "auditor"]));
        assert_eq!(
            locked["lock"]["reason"],
            "incident 42: keep access during the IdP migration"
        );
        assert_eq!(locked["lock"]["locked_by"], ACTOR);
        assert_eq!(locked["effective_roles"], json!(["admin", "auditor"]));
        let roles = db.roles_of(&acme, &[&grace, &linus]);
        assert_eq!(roles[&grace], ["admin", "auditor"], "{which:?}");
        assert_eq!(roles[&linus], ["viewer"]);

        // By id, to no role at all.
        let pinned = db.json(&[
            "lock",
            "acme",
            &linus,
            "--no-role",
            "--reason",
            "offboarding",
        ]);
        assert_eq!(pinned["lock"]["roles"], json!([]));
        assert_eq!(pinned["effective_roles"], json!([]));

        let listed = db.json(&["locks", "acme"]);
        let locks = listed["locks"].as_array().expect("locks");
        assert_eq!(locks.len(), 2, "{listed}");
        let of_grace = locks
            .iter()
            .find(|l| l["user_id"] == grace.as_str())
            .expect("grace's lock");
        assert_eq!(of_grace["user_name"], "grace@example.test");
        assert_eq!(of_grace["roles"], json!(["admin", "auditor"]));
        assert_eq!(of_grace["locked_by"], ACTOR);
        assert!(of_grace["locked_at"].is_string());
        let human = db.run(&["locks", "acme"]);
        assert!(
            human.stdout.contains("grace@example.test") && human.stdout.contains("incident 42"),
            "{}",
            human.describe()
        );

        // Refusals: no reason (usage), blank reason, unknown role, unknown user.
        let no_reason = db.run(&["lock", "acme", "grace@example.test", "--role", "admin"]);
        assert_eq!(no_reason.status.code(), Some(2), "{}", no_reason.describe());
        assert!(
            no_reason.stderr.contains("--reason"),
            "{}",
            no_reason.describe()
        );
        let blank = db.fails(&[
            "lock",
            "acme",
            "grace@example.test",
            "--role",
            "admin",
            "--reason",
            "   ",
        ]);
        assert!(blank.contains("reason"), "{blank}");
        let no_roles = db.run(&["lock", "acme", "grace@example.test", "--reason", "x"]);
        assert_eq!(no_roles.status.code(), Some(2), "{}", no_roles.describe());
        let unknown_role = db.fails(&[
            "lock",
            "acme",
            "grace@example.test",
            "--role",
            "root",
            "--reason",
            "x",
        ]);
        assert!(unknown_role.contains("\"root\""), "{unknown_role}");
        let nobody = db.fails(&["lock", "acme", "nobody", "--role", "admin", "--reason", "x"]);
        assert!(nobody.contains("\"nobody\""), "{nobody}");
        // The refused attempts left grace's lock alone.
        assert_eq!(db.roles_of(&acme, &[&grace])[&grace], ["admin", "auditor"]);

        // Unlock by userName: back to what the policy gives.
        let unlocked = db.json(&["unlock", "acme", "grace@example.test"]);
        assert_eq!(unlocked["unlocked"]["user_id"], grace.as_str());
        assert_eq!(unlocked["effective_roles"], json!(["viewer"]));
        assert_eq!(db.roles_of(&acme, &[&grace])[&grace], ["viewer"]);
        let again = db.fails(&["unlock", "acme", "grace@example.test"]);
        assert!(again.contains("not locked"), "{again}");
        let human = db.run(&["unlock", "acme", &linus]);
        assert!(human.status.success(), "{}", human.describe());
        let listed = db.json(&["locks", "acme"]);
        assert_eq!(listed["locks"], json!([]));

        // Audited as the CLI's user.
        let audit = db.json(&["audit", "--tenant", "acme", "--limit", "4"]);
        let actions: Vec<(&str, &str, &str)> = audit["entries"]
            .as_array()
            .expect("entries")
            .iter()
            .map(|e| {
                (
                    e["action"].as_str().unwrap_or_default(),
                    e["actor"].as_str().unwrap_or_default(),
                    e["target"].as_str().unwrap_or_default(),
                )
            })
            .collect();
        let user = |id: &str| format!("user {id}");
        assert_eq!(
            actions,
            [
                ("roles.unlock", ACTOR, user(&linus).as_str()),
                ("roles.unlock", ACTOR, user(&grace).as_str()),
                ("roles.lock", ACTOR, user(&linus).as_str()),
                ("roles.lock", ACTOR, user(&grace).as_str()),
            ],
            "{which:?} {audit}"
        );
    }
}
