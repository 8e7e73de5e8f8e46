//! The permission model: a tenant admin sees their own tenant only (any
//! other is "not found"), operator-only routes are 403 for them, and a
//! suspended tenant's admins can read but not write.

use serde_json::{Value, json};

use crate::support::*;

/// A valid body for every route that takes one, so that a refusal is
/// about who asks, not about what they sent.
pub fn body_for(method: &str, path: &str) -> Option<Value> {
    let body = match (method, path) {
        ("get" | "delete", _) => return None,
        ("post", "/login") => json!({"email": "x@example.test", "password": "x"}),
        ("post", "/tenants") => json!({"slug": "evil", "name": "Evil"}),
        ("patch", "/tenants/{tenant}") => json!({"name": "Hacked"}),
        ("put", "/tenants/{tenant}/kind") => json!({"kind": "super"}),
        ("put", "/tenants/{tenant}/children/{child}") => json!({}),
        ("put", "/tenants/{tenant}/routing") => json!({"rules": []}),
        ("post", "/tenants/{tenant}/admins") => {
            json!({"email": "mallory@evil.test", "password": "long enough password"})
        }
        ("post", "/tenants/{tenant}/tokens") => json!({"name": "evil", "scopes": ["scim:write"]}),
        ("post", "/tenants/{tenant}/setup-links") => json!({"name": "evil"}),
        ("put", "/tenants/{tenant}/roles") => {
            json!({"mode": "single", "roles": [{"name": "evil"}], "mappings": []})
        }
        ("post", "/tenants/{tenant}/roles/roles") => json!({"name": "evil"}),
        ("patch", "/tenants/{tenant}/roles/roles/{name}") => json!({"description": "evil"}),
        ("put", "/tenants/{tenant}/roles/default") => json!({"role": null}),
        ("put", "/tenants/{tenant}/roles/mode") => json!({"mode": "multi"}),
        ("post", "/tenants/{tenant}/roles/mappings") => {
            json!({"group": {"displayName": "Evil"}, "role": "admin", "priority": 99})
        }
        ("put", "/tenants/{tenant}/users/{id}/lock") => json!({"roles": [], "reason": "evil"}),
        ("put", "/tenants/{tenant}/deletion-safety") => json!({"maxDeletions": 1}),
        ("put", "/tenants/{tenant}/users/{id}/protection") => json!({"reason": "evil"}),
        ("post", "/tenants/{tenant}/held-changes/release")
        | ("post", "/tenants/{tenant}/held-changes/discard")
        | ("post", "/tenants/{tenant}/deleted-users/{id}/restore")
        | ("post", "/tenants/{tenant}/users/{id}/erase") => json!({}),
        ("post", "/tenants/{tenant}/targets") => {
            json!({"name": "evil", "kind": "webhook", "url": "http://127.0.0.1:9/evil"})
        }
        ("patch", "/tenants/{tenant}/targets/{id}") => json!({"enabled": false}),
        ("put", "/tenants/{tenant}/targets/{id}/mapping") => {
            json!({"mapping": {"users": {"attributes": [{"target": "x", "value": "evil"}]}}})
        }
        ("post", "/tenants/{tenant}/targets/{id}/mapping/preview") => json!({"first": 1}),
        ("put", "/tenants/{tenant}/targets/{id}/profile") => json!({"membersPerPatch": 7}),
        ("post", "/tenants/{tenant}/targets/{id}/resend") => {
            json!({"since": "2020-01-01T00:00:00Z"})
        }
        ("post", "/tenants/{tenant}/targets/{id}/rotate-secret")
        | ("post", "/tenants/{tenant}/targets/{id}/dead-letters/replay")
        | ("post", "/tenants/{tenant}/targets/{id}/reconcile")
        | ("post", "/tenants/{tenant}/targets/{id}/dead-letters/{delivery}/replay") => json!({}),
        other => panic!("add a body for {other:?} to body_for"),
    };
    Some(body)
}

/// Ids of one of each thing in a tenant, to fill `{id}` and `{name}`.
struct Ids {
    user: String,
    group: String,
    mapping: String,
    job: String,
    admin: String,
    token: String,
    target: String,
    setup_link: String,
}

impl Ids {
    fn fill(&self, tenant: &str, path: &str) -> String {
        let id = if path.contains("/targets/") {
            &self.target
        } else if path.contains("/admins/") {
            &self.admin
        } else if path.contains("/tokens/") {
            &self.token
        } else if path.contains("/setup-links/") {
            &self.setup_link
        } else if path.contains("/mappings/") {
            &self.mapping
        } else if path.contains("/jobs/") {
            &self.job
        } else if path.contains("/groups/") {
            &self.group
        } else {
            &self.user
        };
        path.replace("{tenant}", tenant)
            .replace("{id}", id)
            .replace("{name}", "admin")
            .replace("{child}", "acme")
            .replace("{delivery}", "1")
    }
}

/// A tenant with something in every table the admin API touches.
async fn populated(s: &Server, op: &str, slug: &str) -> Ids {
    let token = s.tenant(op, slug).await;
    let user = s.scim_user(slug, &token, "ada@globex.test").await;
    let group = s.scim_group(slug, &token, "Admins", &[&user]).await;
    let change = s
        .api(
            "PUT",
            &format!("/tenants/{slug}/roles"),
            Some(op),
            Some(json!({
                "mode": "single",
                "defaultRole": "viewer",
                "roles": [{"name": "admin"}, {"name": "viewer"}],
                "mappings": [{"group": {"displayName": "Admins"}, "role": "admin", "priority": 10}],
            })),
        )
        .await
        .expect(200);
    s.api(
        "PUT",
        &format!("/tenants/{slug}/users/{user}/lock"),
        Some(op),
        Some(json!({"roles": ["viewer"], "reason": "audit"})),
    )
    .await
    .expect(200);
    s.tenant_admin(op, slug, "gina@globex.test").await;
    let admins = s
        .get(&format!("/tenants/{slug}/admins"), op)
        .await
        .expect(200);
    let tokens = s
        .get(&format!("/tenants/{slug}/tokens"), op)
        .await
        .expect(200);
    let target = s
        .api(
            "POST",
            &format!("/tenants/{slug}/targets"),
            Some(op),
            Some(json!({"name": "app", "kind": "webhook", "url": "http://127.0.0.1:9/hook"})),
        )
        .await
        .expect(201);
    let link = s
        .api(
            "POST",
            &format!("/tenants/{slug}/setup-links"),
            Some(op),
            Some(json!({"name": "Globex IT"})),
        )
        .await
        .expect(201);
    Ids {
        setup_link: link["id"].as_str().expect("link").to_owned(),
        user,
        group,
        mapping: change["mappings"][0]["id"]
            .as_str()
            .expect("mapping")
            .to_owned(),
        job: change["job"]["id"].as_str().expect("job").to_owned(),
        admin: admins["admins"][0]["id"]
            .as_str()
            .expect("admin")
            .to_owned(),
        token: tokens["tokens"][0]["id"]
            .as_str()
            .expect("token")
            .to_owned(),
        target: target["target"]["id"].as_str().expect("target").to_owned(),
    }
}

/// Everything an operator can read about a tenant.
async fn snapshot(s: &Server, op: &str, slug: &str, ids: &Ids) -> Vec<Value> {
    let mut out = Vec::new();
    for path in [
        format!("/tenants/{slug}"),
        format!("/tenants/{slug}/roles"),
        format!("/tenants/{slug}/tokens"),
        format!("/tenants/{slug}/setup-links"),
        format!("/tenants/{slug}/admins"),
        format!("/tenants/{slug}/locks"),
        format!("/tenants/{slug}/users/{}", ids.user),
        format!("/tenants/{slug}/groups/{}", ids.group),
        format!("/tenants/{slug}/audit?limit=1000"),
        format!("/tenants/{slug}/targets"),
        format!("/tenants/{slug}/deletion-safety"),
        format!("/tenants/{slug}/protected-users"),
    ] {
        out.push(s.get(&path, op).await.expect(200));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_admin_gets_404_on_every_route_of_another_tenant_and_changes_nothing() {
    each_backend(async |s: &Server| {
        let op = s.operator().await;
        s.tenant(&op, "acme").await;
        let ta = s.tenant_admin(&op, "acme", "alice@acme.test").await;
        let ids = populated(s, &op, "globex").await;
        let before = snapshot(s, &op, "globex", &ids).await;

        let mut checked = 0;
        for route in tenant_admin::routes() {
            if !route.path.contains("{tenant}") {
                continue;
            }
            let method = route.method.to_ascii_uppercase();
            let body = body_for(route.method, route.path);
            let mut path = ids.fill("globex", route.path);
            if route.method == "delete" && route.path == "/tenants/{tenant}" {
                path.push_str("?confirm=globex");
            }
            let resp = s.api(&method, &path, Some(&ta), body.clone()).await;
            resp.expect_error(404, "not_found", "tenant 'globex' not found");

            // Exactly what a tenant that does not exist answers.
            let missing = ids
                .fill("no-such-tenant", route.path)
                .replace("confirm=globex", "confirm=no-such-tenant");
            let other = s.api(&method, &missing, Some(&op), body).await;
            assert_eq!(other.status, 404, "{method} {missing}: {}", other.body);
            assert_eq!(
                other.body["message"], "tenant 'no-such-tenant' not found",
                "{method} {missing}"
            );
            assert_eq!(other.body["error"], resp.body["error"]);
            checked += 1;
        }
        assert!(checked > 25, "only {checked} tenant routes were tried");

        let after = snapshot(s, &op, "globex", &ids).await;
        assert_eq!(before, after, "a refused request changed something");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_only_routes_are_403_for_tenant_admins() {
    each_backend(async |s: &Server| {
        let op = s.operator().await;
        s.tenant(&op, "acme").await;
        let ta = s.tenant_admin(&op, "acme", "alice@acme.test").await;

        let refused = [
            ("GET", "/tenants", None),
            ("POST", "/tenants", body_for("post", "/tenants")),
            ("GET", "/audit", None),
            ("GET", "/audit?tenant=acme", None),
            ("DELETE", "/tenants/acme?confirm=acme", None),
            (
                "PATCH",
                "/tenants/acme",
                Some(json!({"status": "suspended"})),
            ),
            ("PUT", "/tenants/acme/kind", Some(json!({"kind": "super"}))),
            ("GET", "/tenants/acme/children", None),
            ("PUT", "/tenants/acme/children/acme", Some(json!({}))),
            ("DELETE", "/tenants/acme/children/acme", None),
            ("GET", "/tenants/acme/routing", None),
            ("PUT", "/tenants/acme/routing", Some(json!({"rules": []}))),
            (
                "PUT",
                "/tenants/acme/routing?dryRun=true",
                Some(json!({"rules": []})),
            ),
            ("GET", "/tenants/acme/users/x/copies", None),
            ("GET", "/tenants/acme/groups/x/copies", None),
        ];
        for (method, path, body) in refused {
            let resp = s.api(method, path, Some(&ta), body).await;
            resp.expect_error(403, "forbidden", "operators");
        }
        // Nothing happened.
        let tenants = s.get("/tenants", &op).await.expect(200);
        assert_eq!(tenants["total"], 2, "{tenants}");
        let acme = s.get("/tenants/acme", &op).await.expect(200);
        assert_eq!(acme["status"], "active");

        // What a tenant admin may do to their own tenant.
        let renamed = s
            .api(
                "PATCH",
                "/tenants/acme",
                Some(&ta),
                Some(json!({"name": "Acme Corp"})),
            )
            .await
            .expect(200);
        assert_eq!(renamed["name"], "Acme Corp");
        for path in [
            "/tenants/acme",
            "/tenants/acme/admins",
            "/tenants/acme/tokens",
            "/tenants/acme/roles",
            "/tenants/acme/roles/jobs",
            "/tenants/acme/locks",
            "/tenants/acme/users",
            "/tenants/acme/groups",
            "/tenants/acme/provisioning-log",
            "/tenants/acme/audit",
        ] {
            s.get(path, &ta).await.expect(200);
        }
        let audit = s.get("/tenants/acme/audit", &ta).await.expect(200);
        assert!(
            audit["entries"]
                .as_array()
                .expect("entries")
                .iter()
                .any(|e| e["action"] == "tenant.update"
                    && e["actor"] == "tenant-admin:alice@acme.test"),
            "{audit}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspended_tenants_admins_can_log_in_and_read_but_not_write() {
    each_backend(async |s: &Server| {
        let op = s.operator().await;
        s.tenant(&op, "acme").await;
        s.tenant_admin(&op, "acme", "alice@acme.test").await;
        s.api(
            "PATCH",
            "/tenants/acme",
            Some(&op),
            Some(json!({"status": "suspended"})),
        )
        .await
        .expect(200);

        let body = s
            .login(
                "alice@acme.test",
                "correct horse battery staple",
                Some("acme"),
            )
            .await
            .expect(200);
        let ta = body["token"].as_str().expect("token").to_owned();
        let acme = s.get("/tenants/acme", &ta).await.expect(200);
        assert_eq!(acme["status"], "suspended");
        s.get("/tenants/acme/users", &ta).await.expect(200);
        s.get("/tenants/acme/roles", &ta).await.expect(200);

        let resp = s
            .api(
                "POST",
                "/tenants/acme/tokens",
                Some(&ta),
                body_for("post", "/tenants/{tenant}/tokens"),
            )
            .await;
        resp.expect_error(403, "forbidden", "suspended");
        let resp = s
            .api(
                "POST",
                "/tenants/acme/roles/roles",
                Some(&ta),
                Some(json!({"name": "admin"})),
            )
            .await;
        resp.expect_error(403, "forbidden", "suspended");

        // Operators still can, and reactivating lifts the freeze.
        s.api(
            "POST",
            "/tenants/acme/roles/roles",
            Some(&op),
            Some(json!({"name": "admin"})),
        )
        .await
        .expect(200);
        s.api(
            "PATCH",
            "/tenants/acme",
            Some(&op),
            Some(json!({"status": "active"})),
        )
        .await
        .expect(200);
        s.api(
            "POST",
            "/tenants/acme/roles/roles",
            Some(&ta),
            Some(json!({"name": "viewer"})),
        )
        .await
        .expect(200);
    })
    .await;
}
