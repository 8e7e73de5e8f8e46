//! Every route refuses query parameters it does not document, before it
//! does anything: the whole route table, each with a body that would make
//! the change were the parameter ignored.

use serde_json::{Value, json};

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_refuses_unknown_query_parameters_and_changes_nothing() {
    each_backend(async |s: &Server| {
        let op = &s.operator().await;
        let scim = s.tenant(op, "acme").await;
        let user = s.scim_user("acme", &scim, "ada@acme.example").await;
        let locked = s.scim_user("acme", &scim, "bob@acme.example").await;
        let group = s.scim_group("acme", &scim, "Admins", &[&user]).await;
        let policy = json!({
            "roles": [{"name": "admin"}, {"name": "viewer"}, {"name": "spare"}],
            "mappings": [{"group": {"displayName": "Admins"}, "role": "admin"}],
        });
        let stored = s
            .api("PUT", "/tenants/acme/roles", Some(op), Some(policy))
            .await
            .expect(200);
        let mapping = stored["mappings"][0]["id"].as_str().unwrap().to_owned();
        let job = stored["job"]["id"].as_str().unwrap().to_owned();
        s.api(
            "PUT",
            &format!("/tenants/acme/users/{locked}/lock"),
            Some(op),
            Some(json!({"roles": ["viewer"], "reason": "test"})),
        )
        .await
        .expect(200);
        let token = s.get("/tenants/acme/tokens", op).await.expect(200)["tokens"][0]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let link = s
            .api(
                "POST",
                "/tenants/acme/setup-links",
                Some(op),
                Some(json!({"name": "IT"})),
            )
            .await
            .expect(201)["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let admin = s
            .api(
                "POST",
                "/tenants/acme/admins",
                Some(op),
                Some(json!({"email": "alice@acme.example", "password": "a long passphrase"})),
            )
            .await
            .expect(201)["id"]
            .as_str()
            .unwrap()
            .to_owned();

        let target = s
            .api(
                "POST",
                "/tenants/acme/targets",
                Some(op),
                Some(json!({"name": "app", "kind": "webhook", "url": "http://127.0.0.1:9/hook"})),
            )
            .await
            .expect(201)["target"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let t = format!("/tenants/acme/targets/{target}");

        let before = s.get("/audit?limit=1000", op).await.expect(200)["entries"].clone();
        let version = s.get("/tenants/acme/roles", op).await.expect(200)["version"].clone();

        for route in tenant_admin::routes() {
            let bogus = "bogusParam=1";
            // A request that would change something if the parameter were
            // ignored (a valid body, the route's own parameters).
            let (path, query, body): (String, &str, Option<Value>) =
                match (route.method, route.path) {
                    ("post", "/login") => (
                        "/login".into(),
                        bogus,
                        Some(json!({"email": s.operator_email, "password": s.operator_password})),
                    ),
                    ("get", "/openapi.json") => ("/openapi.json".into(), bogus, None),
                    ("get", "/me") => ("/me".into(), bogus, None),
                    ("get", "/audit") => ("/audit".into(), bogus, None),
                    ("get", "/tenants") => ("/tenants".into(), bogus, None),
                    ("post", "/tenants") => (
                        "/tenants".into(),
                        bogus,
                        Some(json!({"slug": "other", "name": "Other"})),
                    ),
                    ("get", "/tenants/{tenant}") => ("/tenants/acme".into(), bogus, None),
                    ("patch", "/tenants/{tenant}") => (
                        "/tenants/acme".into(),
                        bogus,
                        Some(json!({"name": "Renamed"})),
                    ),
                    ("delete", "/tenants/{tenant}") => {
                        ("/tenants/acme".into(), "confirm=acme&bogusParam=1", None)
                    }
                    ("put", "/tenants/{tenant}/kind") => (
                        "/tenants/acme/kind".into(),
                        bogus,
                        Some(json!({"kind": "super"})),
                    ),
                    ("get", "/tenants/{tenant}/children") => {
                        ("/tenants/acme/children".into(), bogus, None)
                    }
                    ("put", "/tenants/{tenant}/children/{child}") => (
                        "/tenants/acme/children/default".into(),
                        bogus,
                        Some(json!({"onUnroute": "delete"})),
                    ),
                    ("delete", "/tenants/{tenant}/children/{child}") => {
                        ("/tenants/acme/children/default".into(), bogus, None)
                    }
                    ("get", "/tenants/{tenant}/routing") => {
                        ("/tenants/acme/routing".into(), bogus, None)
                    }
                    ("put", "/tenants/{tenant}/routing") => (
                        "/tenants/acme/routing".into(),
                        bogus,
                        Some(json!({"rules": []})),
                    ),
                    ("get", "/tenants/{tenant}/users/{id}/copies") => {
                        (format!("/tenants/acme/users/{user}/copies"), bogus, None)
                    }
                    ("get", "/tenants/{tenant}/groups/{id}/copies") => {
                        (format!("/tenants/acme/groups/{group}/copies"), bogus, None)
                    }
                    ("get", "/tenants/{tenant}/admins") => {
                        ("/tenants/acme/admins".into(), bogus, None)
                    }
                    ("post", "/tenants/{tenant}/admins") => (
                        "/tenants/acme/admins".into(),
                        bogus,
                        Some(
                            json!({"email": "carol@acme.example", "password": "a long passphrase"}),
                        ),
                    ),
                    ("delete", "/tenants/{tenant}/admins/{id}") => {
                        (format!("/tenants/acme/admins/{admin}"), bogus, None)
                    }
                    ("get", "/tenants/{tenant}/tokens") => {
                        ("/tenants/acme/tokens".into(), bogus, None)
                    }
                    ("post", "/tenants/{tenant}/tokens") => (
                        "/tenants/acme/tokens".into(),
                        bogus,
                        Some(json!({"name": "t", "scopes": ["scim:read"]})),
                    ),
                    ("delete", "/tenants/{tenant}/tokens/{id}") => {
                        (format!("/tenants/acme/tokens/{token}"), bogus, None)
                    }
                    ("get", "/tenants/{tenant}/setup-links") => {
                        ("/tenants/acme/setup-links".into(), bogus, None)
                    }
                    ("post", "/tenants/{tenant}/setup-links") => (
                        "/tenants/acme/setup-links".into(),
                        bogus,
                        Some(json!({"name": "IT 2"})),
                    ),
                    ("delete", "/tenants/{tenant}/setup-links/{id}") => {
                        (format!("/tenants/acme/setup-links/{link}"), bogus, None)
                    }
                    ("get", "/tenants/{tenant}/roles") => {
                        ("/tenants/acme/roles".into(), bogus, None)
                    }
                    ("put", "/tenants/{tenant}/roles") => (
                        "/tenants/acme/roles".into(),
                        bogus,
                        Some(json!({"roles": [{"name": "admin"}]})),
                    ),
                    ("post", "/tenants/{tenant}/roles/roles") => (
                        "/tenants/acme/roles/roles".into(),
                        bogus,
                        Some(json!({"name": "editor"})),
                    ),
                    ("patch", "/tenants/{tenant}/roles/roles/{name}") => (
                        "/tenants/acme/roles/roles/admin".into(),
                        bogus,
                        Some(json!({"description": "changed"})),
                    ),
                    ("delete", "/tenants/{tenant}/roles/roles/{name}") => {
                        ("/tenants/acme/roles/roles/spare".into(), bogus, None)
                    }
                    ("put", "/tenants/{tenant}/roles/default") => (
                        "/tenants/acme/roles/default".into(),
                        bogus,
                        Some(json!({"role": "viewer"})),
                    ),
                    ("put", "/tenants/{tenant}/roles/mode") => (
                        "/tenants/acme/roles/mode".into(),
                        bogus,
                        Some(json!({"mode": "multi"})),
                    ),
                    ("post", "/tenants/{tenant}/roles/mappings") => (
                        "/tenants/acme/roles/mappings".into(),
                        bogus,
                        Some(json!({"group": {"displayName": "Other"}, "role": "admin"})),
                    ),
                    ("delete", "/tenants/{tenant}/roles/mappings/{id}") => (
                        format!("/tenants/acme/roles/mappings/{mapping}"),
                        bogus,
                        None,
                    ),
                    ("get", "/tenants/{tenant}/roles/jobs") => {
                        ("/tenants/acme/roles/jobs".into(), bogus, None)
                    }
                    ("get", "/tenants/{tenant}/roles/jobs/{id}") => {
                        (format!("/tenants/acme/roles/jobs/{job}"), bogus, None)
                    }
                    ("get", "/tenants/{tenant}/locks") => {
                        ("/tenants/acme/locks".into(), bogus, None)
                    }
                    // The finding: a dry run asked of a route without one.
                    ("put", "/tenants/{tenant}/users/{id}/lock") => (
                        format!("/tenants/acme/users/{user}/lock"),
                        "dryRun=true",
                        Some(json!({"roles": ["admin"], "reason": "dry run?"})),
                    ),
                    ("delete", "/tenants/{tenant}/users/{id}/lock") => (
                        format!("/tenants/acme/users/{locked}/lock"),
                        "dry_run=true",
                        None,
                    ),
                    ("get", "/tenants/{tenant}/users") => {
                        ("/tenants/acme/users".into(), bogus, None)
                    }
                    ("get", "/tenants/{tenant}/quarantine-risk") => {
                        ("/tenants/acme/quarantine-risk".into(), bogus, None)
                    }
                    ("get", "/tenants/{tenant}/deletion-safety") => {
                        ("/tenants/acme/deletion-safety".into(), bogus, None)
                    }
                    ("put", "/tenants/{tenant}/deletion-safety") => (
                        "/tenants/acme/deletion-safety".into(),
                        bogus,
                        Some(json!({"maxDeletions": 3})),
                    ),
                    ("get", "/tenants/{tenant}/held-changes") => (
                        "/tenants/acme/held-changes".into(),
                        "limit=5&bogusParam=1",
                        None,
                    ),
                    ("post", "/tenants/{tenant}/held-changes/release") => (
                        "/tenants/acme/held-changes/release".into(),
                        bogus,
                        Some(json!({})),
                    ),
                    ("post", "/tenants/{tenant}/held-changes/discard") => (
                        "/tenants/acme/held-changes/discard".into(),
                        bogus,
                        Some(json!({})),
                    ),
                    ("get", "/tenants/{tenant}/protected-users") => {
                        ("/tenants/acme/protected-users".into(), bogus, None)
                    }
                    ("put", "/tenants/{tenant}/users/{id}/protection") => (
                        format!("/tenants/acme/users/{user}/protection"),
                        bogus,
                        Some(json!({"reason": "break-glass"})),
                    ),
                    ("delete", "/tenants/{tenant}/users/{id}/protection") => (
                        format!("/tenants/acme/users/{user}/protection"),
                        bogus,
                        None,
                    ),
                    ("get", "/tenants/{tenant}/deleted-users") => {
                        ("/tenants/acme/deleted-users".into(), bogus, None)
                    }
                    ("post", "/tenants/{tenant}/deleted-users/{id}/restore") => (
                        format!("/tenants/acme/deleted-users/{user}/restore"),
                        bogus,
                        None,
                    ),
                    ("post", "/tenants/{tenant}/users/{id}/erase") => (
                        format!("/tenants/acme/users/{user}/erase"),
                        "confirm=x&bogusParam=1",
                        None,
                    ),
                    ("get", "/tenants/{tenant}/users/{id}") => {
                        (format!("/tenants/acme/users/{user}"), bogus, None)
                    }
                    ("get", "/tenants/{tenant}/groups") => {
                        ("/tenants/acme/groups".into(), bogus, None)
                    }
                    ("get", "/tenants/{tenant}/groups/{id}") => {
                        (format!("/tenants/acme/groups/{group}"), bogus, None)
                    }
                    ("get", "/tenants/{tenant}/provisioning-log") => {
                        ("/tenants/acme/provisioning-log".into(), bogus, None)
                    }
                    ("get", "/tenants/{tenant}/audit") => {
                        ("/tenants/acme/audit".into(), bogus, None)
                    }
                    ("get", "/tenants/{tenant}/targets") => {
                        ("/tenants/acme/targets".into(), bogus, None)
                    }
                    ("post", "/tenants/{tenant}/targets") => (
                        "/tenants/acme/targets".into(),
                        bogus,
                        Some(
                            json!({"name": "b", "kind": "webhook", "url": "http://127.0.0.1:9/b"}),
                        ),
                    ),
                    ("get", "/tenants/{tenant}/targets/{id}") => (t.clone(), bogus, None),
                    ("patch", "/tenants/{tenant}/targets/{id}") => {
                        (t.clone(), bogus, Some(json!({"enabled": false})))
                    }
                    ("delete", "/tenants/{tenant}/targets/{id}") => (t.clone(), bogus, None),
                    ("post", "/tenants/{tenant}/targets/{id}/rotate-secret") => {
                        (format!("{t}/rotate-secret"), bogus, None)
                    }
                    ("get", "/tenants/{tenant}/targets/{id}/mapping") => {
                        (format!("{t}/mapping"), bogus, None)
                    }
                    ("put", "/tenants/{tenant}/targets/{id}/mapping") => (
                        format!("{t}/mapping"),
                        bogus,
                        Some(json!({"mapping": null})),
                    ),
                    ("post", "/tenants/{tenant}/targets/{id}/mapping/preview") => {
                        (format!("{t}/mapping/preview"), bogus, Some(json!({})))
                    }
                    ("get", "/tenants/{tenant}/targets/{id}/profile") => {
                        (format!("{t}/profile"), bogus, None)
                    }
                    ("put", "/tenants/{tenant}/targets/{id}/profile") => {
                        (format!("{t}/profile"), bogus, Some(json!({})))
                    }
                    ("get", "/tenants/{tenant}/targets/{id}/attempts") => {
                        (format!("{t}/attempts"), bogus, None)
                    }
                    ("get", "/tenants/{tenant}/targets/{id}/deliveries") => {
                        (format!("{t}/deliveries"), bogus, None)
                    }
                    ("post", "/tenants/{tenant}/targets/{id}/dead-letters/replay") => {
                        (format!("{t}/dead-letters/replay"), bogus, None)
                    }
                    ("post", "/tenants/{tenant}/targets/{id}/dead-letters/{delivery}/replay") => {
                        (format!("{t}/dead-letters/1/replay"), bogus, None)
                    }
                    ("post", "/tenants/{tenant}/targets/{id}/resend") => (
                        format!("{t}/resend"),
                        bogus,
                        Some(json!({"since": "2020-01-01T00:00:00Z"})),
                    ),
                    ("post", "/tenants/{tenant}/targets/{id}/reconcile") => {
                        (format!("{t}/reconcile"), "dry_run=false", None)
                    }
                    ("get", "/tenants/{tenant}/jobs/{id}") => {
                        (format!("/tenants/acme/jobs/{job}"), bogus, None)
                    }
                    ("get", "/tenants/{tenant}/events") => {
                        ("/tenants/acme/events".into(), "types=user.created", None)
                    }
                    ("get", "/tenants/{tenant}/users/{id}/timeline") => {
                        (format!("/tenants/acme/users/{user}/timeline"), bogus, None)
                    }
                    ("get", "/tenants/{tenant}/groups/{id}/timeline") => (
                        format!("/tenants/acme/groups/{group}/timeline"),
                        bogus,
                        None,
                    ),
                    other => panic!("no case for route {other:?}: add one"),
                };
            let name = query.rsplit('&').next().unwrap().split('=').next().unwrap();
            let resp = s
                .api(
                    &route.method.to_uppercase(),
                    &format!("{path}?{query}"),
                    (!route.public).then_some(op.as_str()),
                    body,
                )
                .await;
            assert_eq!(resp.status, 400, "{route:?}: {}", resp.body);
            resp.expect_error(400, "invalid_request", &format!("unknown field `{name}`"));
        }

        // Nothing changed: every change is audited, and there is none.
        let after = s.get("/audit?limit=1000", op).await.expect(200)["entries"].clone();
        assert_eq!(before, after);
        let now = s.get("/tenants/acme/roles", op).await.expect(200)["version"].clone();
        assert_eq!(version, now);
        let locks = s.get("/tenants/acme/locks", op).await.expect(200);
        assert_eq!(locks["locks"].as_array().unwrap().len(), 1, "{locks}");
        assert_eq!(locks["locks"][0]["userId"], locked.as_str());

        // Documented parameters still work, the alias included.
        s.get("/tenants?offset=0&limit=5", op).await.expect(200);
        s.api(
            "PUT",
            "/tenants/acme/roles/mode?dry_run=true",
            Some(op),
            Some(json!({"mode": "multi"})),
        )
        .await
        .expect(200);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_is_named_by_slug_or_id_and_another_tenants_id_is_not_found() {
    each_backend(async |s: &Server| {
        let op = &s.operator().await;
        s.tenant(op, "acme").await;
        s.tenant(op, "globex").await;
        let acme = s.get("/tenants/acme", op).await.expect(200);
        let globex = s.get("/tenants/globex", op).await.expect(200);
        let acme_id = acme["id"].as_str().unwrap();
        let globex_id = globex["id"].as_str().unwrap();
        let by_id = s.get(&format!("/tenants/{acme_id}"), op).await.expect(200);
        assert_eq!(by_id, acme);
        let alice = &s.tenant_admin(op, "acme", "alice@acme.example").await;
        s.get(&format!("/tenants/{acme_id}/roles"), alice)
            .await
            .expect(200);
        s.get(&format!("/tenants/{globex_id}/roles"), alice)
            .await
            .expect_error(404, "not_found", &format!("tenant '{globex_id}' not found"));
        s.get("/tenants/00000000-0000-0000-0000-000000000000", op)
            .await
            .expect_error(404, "not_found", "not found");
    })
    .await;
}
