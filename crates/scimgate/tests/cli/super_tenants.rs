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

        let unlinked = db.json(&["tenant", "unlink", "msp", "acme"]);
        assert_eq!(unlinked["unlinked"]["child"], "acme", "{unlinked}");
        let children = db.json(&["tenant", "children", "msp"]);
        assert_eq!(children["children"], serde_json::json!([]), "{which:?}");
        let refused = db.fails(&["tenant", "unlink", "msp", "acme"]);
        assert!(refused.contains("not found"), "{which:?}: {refused}");
        let back = db.json(&["tenant", "kind", "msp", "standard"]);
        assert_eq!(back["tenant"]["kind"], "standard", "{which:?}");
    }
}
