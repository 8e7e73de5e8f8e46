//! Tenant kinds and super tenants' children through the admin API.

use serde_json::{Value, json};

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

        // Unlinking: the fate of the copies is always said; only a child
        // of this super tenant.
        s.api("DELETE", "/tenants/msp/children/acme", Some(&op), None)
            .await
            .expect_error(400, "invalid_request", "copies");
        let done = s
            .api(
                "DELETE",
                "/tenants/msp/children/acme?copies=keep",
                Some(&op),
                None,
            )
            .await
            .expect(200);
        assert_eq!(
            done,
            json!({"copies": "keep", "kept": 0, "usersRemoved": 0, "groupsRemoved": 0})
        );
        s.api(
            "DELETE",
            "/tenants/msp/children/acme?copies=keep",
            Some(&op),
            None,
        )
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

/// Routing rules over the API: versioned with If-Match, validated, a dry
/// run that changes nothing, and a stored change whose re-route job moves
/// users as the dry run said; each user's copies show where and why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routing_rules_with_dry_run_and_reroute_job() {
    each_backend(async |s: &Server| {
        let op = s.operator().await;
        let msp = s.tenant(&op, "msp").await;
        s.tenant(&op, "acme").await;
        s.tenant(&op, "globex").await;
        // Users before the super tenant has rules: nothing is copied.
        let ann = s.scim_user("msp", &msp, "ann@acme.example").await;
        let bob = s.scim_user("msp", &msp, "bob@globex.example").await;
        let staff = s.scim_group("msp", &msp, "Staff", &[&ann, &bob]).await;

        s.api(
            "PUT",
            "/tenants/msp/kind",
            Some(&op),
            Some(json!({"kind": "super"})),
        )
        .await
        .expect(200);
        for child in ["acme", "globex"] {
            s.api(
                "PUT",
                &format!("/tenants/msp/children/{child}"),
                Some(&op),
                Some(json!({})),
            )
            .await
            .expect(200);
        }
        let empty = s.get("/tenants/msp/routing", &op).await;
        assert_eq!(empty.header("etag"), Some("\"0\""));
        let empty = empty.expect(200);
        assert_eq!(empty["version"], 0);
        assert_eq!(empty["rules"], json!([]));

        let rules = json!({"rules": [
            {"id": "acme-mail", "child": "acme", "filter": "userName ew \"@acme.example\""},
            {"id": "globex-staff", "child": "globex", "group": {"displayName": "Staff"}},
        ]});
        // Refused, naming the problem, whether a dry run or not.
        for dry in ["", "?dryRun=true"] {
            s.api(
                "PUT",
                &format!("/tenants/msp/routing{dry}"),
                Some(&op),
                Some(json!({"rules": [{"id": "x", "child": "acme", "filter": "nope eq"}]})),
            )
            .await
            .expect_error(400, "invalid_request", "rule 1 (\"x\")");
            s.api(
                "PUT",
                &format!("/tenants/msp/routing{dry}"),
                Some(&op),
                Some(json!({"rules": [{"id": "x", "child": "initech", "filter": "active eq true"}]})),
            )
            .await
            .expect_error(409, "conflict", "'initech' is not a child");
        }

        let preview = s
            .api(
                "PUT",
                "/tenants/msp/routing?dryRun=true",
                Some(&op),
                Some(rules.clone()),
            )
            .await
            .expect(200);
        assert_eq!(preview["dryRun"], true, "{preview}");
        assert_eq!((preview["users"].clone(), preview["groups"].clone()), (json!(2), json!(1)));
        assert_eq!(
            preview["children"],
            json!([
                {"child": "acme", "usersEntering": 1, "usersLeaving": 0, "groupsEntering": 0, "groupsLeaving": 0,
                 "sampleEntering": [{"id": ann, "name": "ann@acme.example"}], "sampleLeaving": []},
                {"child": "globex", "usersEntering": 2, "usersLeaving": 0, "groupsEntering": 1, "groupsLeaving": 0,
                 "sampleEntering": preview["children"][1]["sampleEntering"].clone(), "sampleLeaving": []},
            ]),
            "{preview}"
        );
        let nothing = s.get("/tenants/msp/routing", &op).await.expect(200);
        assert_eq!(nothing["version"], 0, "a dry run stores nothing");

        // Stored: a re-route job follows; a stale If-Match is refused.
        let stored = s
            .api_with(
                "PUT",
                "/tenants/msp/routing",
                Some(&op),
                &[("If-Match", "\"0\"")],
                Some(rules.clone()),
            )
            .await;
        assert_eq!(stored.header("etag"), Some("\"1\""));
        let stored = stored.expect(200);
        assert_eq!(stored["routing"]["version"], 1);
        assert_eq!(stored["routing"]["rules"], rules["rules"]);
        let job_url = stored["job"]["url"].as_str().expect("url").to_owned();
        let job_path = job_url.trim_start_matches("/admin/v1").to_owned();
        s.api_with(
            "PUT",
            "/tenants/msp/routing",
            Some(&op),
            &[("If-Match", "\"0\"")],
            Some(rules.clone()),
        )
        .await
        .expect_error(412, "precondition_failed", "1");
        let done = eventually(|| {
            let (job_path, op) = (job_path.clone(), op.clone());
            async move {
                let job = s.get(&job_path, &op).await.expect(200);
                assert_ne!(job["status"], "failed", "{job}");
                (job["status"] == "done").then_some(job)
            }
        })
        .await
        .expect("the re-route job finishes");
        let children = &done["result"]["children"];
        for (i, child) in preview["children"].as_array().expect("children").iter().enumerate() {
            for k in ["child", "usersEntering", "usersLeaving", "groupsEntering", "groupsLeaving"] {
                assert_eq!(children[i][k], child[k], "{k}: {done}");
            }
        }

        // Where each went, and why.
        let copies = s
            .get(&format!("/tenants/msp/users/{ann}/copies"), &op)
            .await
            .expect(200);
        let copies = copies["copies"].as_array().expect("copies").clone();
        let rules_of: Vec<(String, Value)> = copies
            .iter()
            .map(|c| (c["child"].as_str().unwrap_or("").to_owned(), c["rules"].clone()))
            .collect();
        assert_eq!(
            rules_of,
            [
                ("acme".to_owned(), json!(["acme-mail"])),
                ("globex".to_owned(), json!(["globex-staff"]))
            ]
        );
        let group_copies = s
            .get(&format!("/tenants/msp/groups/{staff}/copies"), &op)
            .await
            .expect(200);
        assert_eq!(group_copies["copies"][0]["child"], "globex", "{group_copies}");
        assert_eq!(group_copies["copies"][0]["resourceType"], "Group");
        assert_eq!(group_copies["copies"].as_array().map(Vec::len), Some(1));

        // Deleting the super tenant: the children's copies go only when
        // asked; here they are removed, while the children stay.
        let users_of = |slug: &'static str| {
            let op = op.clone();
            async move {
                s.get(&format!("/tenants/{slug}/users"), &op).await.expect(200)["total"]
                    .clone()
            }
        };
        assert_eq!(users_of("acme").await, json!(1));
        assert_eq!(users_of("globex").await, json!(2));
        s.api("DELETE", "/tenants/msp?confirm=msp", Some(&op), None)
            .await
            .expect_error(400, "invalid_request", "copies=remove");
        s.api("DELETE", "/tenants/msp?confirm=msp&copies=remove", Some(&op), None)
            .await
            .expect(204);
        assert_eq!(users_of("acme").await, json!(0));
        assert_eq!(users_of("globex").await, json!(0));
        let acme = s.get("/tenants/acme", &op).await.expect(200);
        assert_eq!(acme["slug"], "acme", "the children stay");
    })
    .await;
}

/// Linking and unlinking a child change what its tokens may do; the
/// process that made the change drops its cached verifications at once
/// (and tells the others through Redis when it has it), so neither waits
/// for the auth poll, set here to its longest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_take_effect_at_once_not_at_the_next_auth_poll() {
    for which in testkit::backends() {
        let s = Server::start_with(which, |c| c.auth_poll_interval_secs = 60).await;
        let op = s.operator().await;
        s.tenant(&op, "msp").await;
        let acme = s.tenant(&op, "acme").await;
        s.api(
            "PUT",
            "/tenants/msp/kind",
            Some(&op),
            Some(json!({"kind": "super"})),
        )
        .await
        .expect(200);
        // The child-to-be's token, verified and cached by a write.
        s.scim_user("acme", &acme, "before.link@acme.example").await;

        s.api(
            "PUT",
            "/tenants/msp/children/acme",
            Some(&op),
            Some(json!({})),
        )
        .await
        .expect(200);
        let refused = s
            .scim(
                "POST",
                "acme",
                "/Users",
                &acme,
                Some(scim_user("after.link")),
            )
            .await;
        assert_eq!(refused.status, 403, "{which:?}: {}", refused.body);
        let detail = refused.body["detail"].as_str().unwrap_or_default();
        assert!(detail.contains("fed by super tenant 'msp'"), "{detail}");
        // Reads with the child's own token still work.
        s.scim("GET", "acme", "/Users", &acme, None)
            .await
            .expect(200);

        s.api(
            "DELETE",
            "/tenants/msp/children/acme?copies=keep",
            Some(&op),
            None,
        )
        .await
        .expect(200);
        s.scim(
            "POST",
            "acme",
            "/Users",
            &acme,
            Some(scim_user("after.unlink")),
        )
        .await
        .expect(201);
        s.stop().await;
    }
}

fn scim_user(user_name: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": user_name,
    })
}
