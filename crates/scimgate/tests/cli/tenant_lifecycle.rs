//! `scimgate tenant suspend|resume|rename|delete` and `audit`.

use store::TenantStatus;
use testkit::backends;

use crate::seeded::{ACTOR, Db};

#[test]
fn suspend_resume_rename_and_guarded_delete() {
    for which in backends() {
        let db = Db::new(which);
        let acme = db.tenant("acme");
        let admin = db.store.admin();
        let status = |slug: &str| {
            db.block_on(admin.tenant_by_slug(slug))
                .expect("read tenant")
                .map(|t| (t.name().to_owned(), t.status()))
        };

        let suspended = db.json(&["tenant", "suspend", "acme"]);
        assert_eq!(
            suspended["tenant"]["status"], "suspended",
            "{which:?} {suspended}"
        );
        assert_eq!(
            status("acme"),
            Some(("Tenant acme".into(), TenantStatus::Suspended))
        );
        let resumed = db.json(&["tenant", "resume", "acme"]);
        assert_eq!(resumed["tenant"]["status"], "active");
        let renamed = db.json(&["tenant", "rename", "acme", "Acme Corp"]);
        assert_eq!(renamed["tenant"]["name"], "Acme Corp");
        assert_eq!(renamed["tenant"]["slug"], "acme");
        assert_eq!(
            status("acme"),
            Some(("Acme Corp".into(), TenantStatus::Active))
        );
        let blank = db.fails(&["tenant", "rename", "acme", " "]);
        assert!(blank.contains("empty"), "{blank}");
        db.fails(&["tenant", "suspend", "nosuch"]);

        // Deleting needs --yes.
        let refused = db.fails(&["tenant", "delete", "acme"]);
        assert!(refused.contains("--yes"), "{refused}");
        assert!(status("acme").is_some(), "{which:?}: deleted without --yes");
        let json_refused = db.run(&["tenant", "delete", "acme", "--json"]);
        assert_eq!(json_refused.status.code(), Some(1));
        let error: serde_json::Value =
            serde_json::from_str(json_refused.stderr.trim()).expect("JSON error");
        assert!(error["error"].as_str().is_some_and(|e| e.contains("--yes")));

        let deleted = db.json(&["tenant", "delete", "acme", "--yes"]);
        assert_eq!(deleted["deleted"]["slug"], "acme");
        assert!(status("acme").is_none());
        let gone = db.fails(&["tenant", "delete", "acme", "--yes"]);
        assert!(gone.contains("acme"), "{gone}");

        // The audit log outlives the tenant; ask for it by id.
        let id = acme.id().to_string();
        let audit = db.json(&["audit", "--tenant", &id]);
        let entries = audit["entries"].as_array().expect("entries");
        let actions: Vec<(&str, &str)> = entries
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
                ("tenant.delete", ACTOR),
                ("tenant.update", ACTOR),
                ("tenant.update", ACTOR),
                ("tenant.update", ACTOR),
                ("tenant.create", "test"),
            ],
            "{which:?} {audit}"
        );
        assert!(entries.iter().all(|e| e["tenant_id"] == id.as_str()));
        assert_eq!(entries[0]["tenant"], serde_json::Value::Null, "slug gone");
        assert_eq!(entries[1]["detail"]["after"]["name"], "Acme Corp");
        let limited = db.json(&["audit", "--limit", "1"]);
        assert_eq!(limited["entries"].as_array().map(Vec::len), Some(1));
        assert_eq!(limited["entries"][0]["action"], "tenant.delete");
        let human = db.run(&["audit"]);
        assert!(
            human.stdout.contains("tenant.delete") && human.stdout.contains(ACTOR),
            "{}",
            human.describe()
        );
        db.fails(&["audit", "--tenant", "acme"]);
    }
}
