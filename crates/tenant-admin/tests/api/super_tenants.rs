//! Tenant kinds and super tenants' children through the admin API.

use serde_json::json;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_make_super_tenants_and_link_children() {
    each_backend(async |s: &Server| {
        let op = s.operator().await;
        for slug in ["msp", "acme", "globex"] {
            s.api(
                "POST",
                "/tenants",
                Some(&op),
                Some(json!({"slug": slug, "name": slug})),
            )
            .await
            .expect(201);
        }

        // A standard tenant feeds nobody.
        s.api(
            "PUT",
            "/tenants/msp/children/acme",
            Some(&op),
            Some(json!({})),
        )
        .await
        .expect_error(409, "conflict", "'msp' is not a super tenant");
        let msp = s
            .api(
                "PUT",
                "/tenants/msp/kind",
                Some(&op),
                Some(json!({"kind": "super"})),
            )
            .await
            .expect(200);
        assert_eq!(msp["kind"], "super");

        let acme = s
            .api(
                "PUT",
                "/tenants/msp/children/acme",
                Some(&op),
                Some(json!({})),
            )
            .await
            .expect(200);
        assert_eq!(acme["tenant"]["slug"], "acme");
        assert_eq!(acme["onUnroute"], "deactivate");
        let globex = s
            .api(
                "PUT",
                "/tenants/msp/children/globex",
                Some(&op),
                Some(json!({"onUnroute": "delete"})),
            )
            .await
            .expect(200);
        assert_eq!(globex["onUnroute"], "delete");
        let list = s.get("/tenants/msp/children", &op).await.expect(200);
        let slugs: Vec<&str> = list["children"]
            .as_array()
            .expect("children")
            .iter()
            .filter_map(|c| c["tenant"]["slug"].as_str())
            .collect();
        assert_eq!(slugs, ["acme", "globex"], "{list}");

        // The rules, as conflicts with a clear message.
        s.api(
            "PUT",
            "/tenants/acme/kind",
            Some(&op),
            Some(json!({"kind": "super"})),
        )
        .await
        .expect_error(409, "conflict", "unlink it");
        s.api(
            "PUT",
            "/tenants/msp/kind",
            Some(&op),
            Some(json!({"kind": "standard"})),
        )
        .await
        .expect_error(409, "conflict", "still feeds");
        s.api(
            "PUT",
            "/tenants/msp/children/msp",
            Some(&op),
            Some(json!({})),
        )
        .await
        .expect_error(409, "conflict", "its own child");
        s.api(
            "PUT",
            "/tenants/msp/children/nobody",
            Some(&op),
            Some(json!({})),
        )
        .await
        .expect_error(404, "not_found", "nobody");
        s.api(
            "PUT",
            "/tenants/msp/kind",
            Some(&op),
            Some(json!({"kind": "giant"})),
        )
        .await
        .expect(400);
        s.api(
            "PUT",
            "/tenants/msp/children/acme",
            Some(&op),
            Some(json!({"onUnroute": "vanish"})),
        )
        .await
        .expect(400);

        // Tenant admins may not touch kinds or links, not even their own
        // tenant's.
        let ta = s.tenant_admin(&op, "acme", "it@acme.test").await;
        s.api(
            "PUT",
            "/tenants/acme/kind",
            Some(&ta),
            Some(json!({"kind": "super"})),
        )
        .await
        .expect_error(403, "forbidden", "operators");
        s.api("GET", "/tenants/acme/children", Some(&ta), None)
            .await
            .expect_error(403, "forbidden", "operators");
        // Another tenant does not exist for a tenant admin.
        s.api("DELETE", "/tenants/msp/children/acme", Some(&ta), None)
            .await
            .expect_error(404, "not_found", "tenant 'msp' not found");

        // Unlinking: only a child of this super tenant.
        s.api("DELETE", "/tenants/msp/children/acme", Some(&op), None)
            .await
            .expect(204);
        s.api("DELETE", "/tenants/msp/children/acme", Some(&op), None)
            .await
            .expect_error(404, "not_found", "acme");
        let list = s.get("/tenants/msp/children", &op).await.expect(200);
        assert_eq!(list["children"].as_array().map(Vec::len), Some(1), "{list}");

        let audit = s
            .get("/tenants/globex/audit?action=tenant.link", &op)
            .await
            .expect(200);
        assert_eq!(
            audit["entries"].as_array().map(Vec::len),
            Some(1),
            "{audit}"
        );
    })
    .await;
}
