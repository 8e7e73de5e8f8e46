//! Tenants and tokens through the admin API, checked through SCIM on the
//! same server.

use serde_json::json;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_create_list_rename_suspend_reactivate_and_delete() {
    each_backend(async |s: &Server| {
        let op = s.operator().await;
        let created = s
            .api(
                "POST",
                "/tenants",
                Some(&op),
                Some(json!({"slug": "acme", "name": "Acme", "issueToken": true})),
            )
            .await;
        assert_eq!(created.header("location"), Some("/admin/v1/tenants/acme"));
        let created = created.expect(201);
        assert_eq!(created["tenant"]["slug"], "acme");
        assert_eq!(created["tenant"]["kind"], "standard");
        assert_eq!(created["tenant"]["status"], "active");
        assert_eq!(created["tenant"]["scimPath"], "/tenants/acme/scim/v2");
        assert_eq!(created["token"]["scopes"], json!(["scim:write"]));
        let token = created["token"]["secret"]
            .as_str()
            .expect("secret")
            .to_owned();
        s.scim("GET", "acme", "/Users", &token, None)
            .await
            .expect(200);

        let super_tenant = s
            .api(
                "POST",
                "/tenants",
                Some(&op),
                Some(json!({"slug": "msp", "name": "MSP", "kind": "super"})),
            )
            .await
            .expect(201);
        assert_eq!(super_tenant["tenant"]["kind"], "super");
        assert!(super_tenant.get("token").is_none(), "{super_tenant}");
        s.api(
            "POST",
            "/tenants",
            Some(&op),
            Some(json!({"slug": "acme", "name": "Again"})),
        )
        .await
        .expect_error(409, "conflict", "acme");

        let page = s.get("/tenants?offset=1&limit=1", &op).await.expect(200);
        assert_eq!(page["total"], 3, "default, acme, msp: {page}");
        assert_eq!(page["tenants"].as_array().expect("tenants").len(), 1);
        assert_eq!(page["tenants"][0]["slug"], "default", "by slug: {page}");

        let renamed = s
            .api(
                "PATCH",
                "/tenants/acme",
                Some(&op),
                Some(json!({"name": "Acme Corp"})),
            )
            .await
            .expect(200);
        assert_eq!(renamed["name"], "Acme Corp");
        assert_eq!(
            s.get("/tenants/acme", &op).await.expect(200)["name"],
            "Acme Corp"
        );

        // Suspended: SCIM refuses at once (this process's token cache is
        // told; other instances notice at their next poll), the admin API
        // still shows it.
        let suspended = s
            .api(
                "PATCH",
                "/tenants/acme",
                Some(&op),
                Some(json!({"status": "suspended"})),
            )
            .await
            .expect(200);
        assert_eq!(suspended["status"], "suspended");
        let token = token.as_str();
        let refused = s.scim("GET", "acme", "/Users", token, None).await;
        assert_eq!(refused.status, 403, "SCIM refused for a suspended tenant");
        assert!(
            refused.body["detail"]
                .as_str()
                .unwrap_or_default()
                .contains("suspended"),
            "{}",
            refused.body
        );

        s.api(
            "PATCH",
            "/tenants/acme",
            Some(&op),
            Some(json!({"status": "active"})),
        )
        .await
        .expect(200);
        let r = s.scim("GET", "acme", "/Users", token, None).await;
        assert_eq!(r.status, 200, "SCIM serves again after reactivation");

        // Deleting needs the slug repeated.
        for query in ["", "?confirm=", "?confirm=ACME", "?confirm=default"] {
            s.api("DELETE", &format!("/tenants/acme{query}"), Some(&op), None)
                .await
                .expect_error(400, "invalid_request", "?confirm=acme");
        }
        s.get("/tenants/acme", &op).await.expect(200);
        s.api("DELETE", "/tenants/acme?confirm=acme", Some(&op), None)
            .await
            .expect(204);
        s.get("/tenants/acme", &op)
            .await
            .expect_error(404, "not_found", "tenant 'acme' not found");
        let r = s.scim("GET", "acme", "/Users", token, None).await;
        assert_eq!(r.status, 401, "the deleted tenant's token stops working");
        let audit = s.get("/audit?action=tenant.delete", &op).await.expect(200);
        assert_eq!(audit["entries"][0]["target"], "acme", "{audit}");
        assert_eq!(
            audit["entries"][0]["actor"],
            format!("operator:{}", s.operator_email)
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_issued_shown_once_listed_and_revoked() {
    each_backend(async |s: &Server| {
        let op = s.operator().await;
        s.tenant(&op, "acme").await;
        let ta = s.tenant_admin(&op, "acme", "alice@acme.test").await;

        let issued = s
            .api(
                "POST",
                "/tenants/acme/tokens",
                Some(&ta),
                Some(json!({"name": "app-read", "scopes": ["scim:read"],
                            "expiresAt": "2999-01-01T00:00:00Z"})),
            )
            .await
            .expect(201);
        let secret = issued["secret"].as_str().expect("secret").to_owned();
        let id = issued["id"].as_str().expect("id").to_owned();
        assert_eq!(issued["scopes"], json!(["scim:read"]));
        assert_eq!(issued["expiresAt"], "2999-01-01T00:00:00Z");
        assert!(issued["revokedAt"].is_null());

        let list = s.get("/tenants/acme/tokens", &ta).await.expect(200);
        let text = list.to_string();
        assert!(!text.contains(&secret), "a listing shows a secret: {text}");
        assert!(!text.contains("secret"), "{text}");
        let tokens = list["tokens"].as_array().expect("tokens");
        assert_eq!(tokens.len(), 2, "the initial token and this one: {list}");
        assert!(tokens.iter().any(|t| t["id"] == id && t["name"] == "app-read"));

        // The read token reads, and may not write.
        s.scim("GET", "acme", "/Users", &secret, None).await.expect(200);
        let write = s
            .scim(
                "POST",
                "acme",
                "/Users",
                &secret,
                Some(json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "x"})),
            )
            .await;
        assert_eq!(write.status, 403, "{}", write.body);

        let revoked = s
            .api("DELETE", &format!("/tenants/acme/tokens/{id}"), Some(&ta), None)
            .await
            .expect(200);
        assert!(revoked["revokedAt"].is_string(), "{revoked}");
        let secret = secret.as_str();
        let r = s.scim("GET", "acme", "/Users", secret, None).await;
        assert_eq!(r.status, 401, "a revoked token stops working at once");
        let list = s.get("/tenants/acme/tokens", &ta).await.expect(200);
        let listed = list["tokens"]
            .as_array()
            .expect("tokens")
            .iter()
            .find(|t| t["id"] == id)
            .cloned()
            .expect("still listed");
        assert!(listed["revokedAt"].is_string(), "{listed}");

        s.api("DELETE", "/tenants/acme/tokens/not-a-uuid", Some(&ta), None)
            .await
            .expect_error(404, "not_found", "token not-a-uuid");
        s.api(
            "DELETE",
            &format!("/tenants/acme/tokens/{}", uuid::Uuid::new_v4()),
            Some(&ta),
            None,
        )
        .await
        .expect_error(404, "not_found", "not found");

        let audit = s.get("/tenants/acme/audit?action=token.revoke", &op).await.expect(200);
        assert_eq!(audit["entries"][0]["actor"], "tenant-admin:alice@acme.test", "{audit}");
    })
    .await;
}
