//! Role policy, dry runs, recompute jobs and role-locks, end to end with
//! SCIM writes on the same server.

use serde_json::{Value, json};

use crate::support::*;

/// One role of a user, as `GET /tenants/{t}/users/{id}` shows it.
async fn user(s: &Server, jwt: &str, id: &str) -> Value {
    s.get(&format!("/tenants/acme/users/{id}"), jwt)
        .await
        .expect(200)
}

fn remove_member(user: &str) -> Value {
    json!([{"op": "remove", "path": format!("members[value eq \"{user}\"]")}])
}

fn add_member(user: &str) -> Value {
    json!([{"op": "add", "path": "members", "value": [{"value": user}]}])
}

/// The Reftab-style lifecycle: roles admin/viewer, default viewer, group
/// Admins maps to admin; membership, deactivation, a lock that survives
/// group and mapping changes, and unlocking.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reftab_lifecycle_through_the_admin_api_and_scim() {
    each_backend(async |s: &Server| {
        let op = s.operator().await;
        let token = s.tenant(&op, "acme").await;
        let ta = s.tenant_admin(&op, "acme", "alice@acme.test").await;
        let ta = ta.as_str();

        for (name, description) in [("admin", "Full access"), ("viewer", "Read only")] {
            s.api(
                "POST",
                "/tenants/acme/roles/roles",
                Some(ta),
                Some(json!({"name": name, "description": description})),
            )
            .await
            .expect(200);
        }
        s.api(
            "PUT",
            "/tenants/acme/roles/default",
            Some(ta),
            Some(json!({"role": "viewer"})),
        )
        .await
        .expect(200);
        let change = s
            .api(
                "POST",
                "/tenants/acme/roles/mappings",
                Some(ta),
                Some(json!({"group": {"displayName": "Admins"}, "role": "admin", "priority": 10})),
            )
            .await;
        assert_eq!(change.header("etag"), Some("\"4\""));
        let change = change.expect(200);
        assert_eq!(change["version"], 4, "{change}");
        assert_eq!(change["defaultRole"], "viewer");
        assert_eq!(change["mode"], "single");
        assert_eq!(
            change["roles"],
            json!([{"name": "admin", "description": "Full access"},
                   {"name": "viewer", "description": "Read only"}])
        );
        assert_eq!(
            change["mappings"][0]["group"],
            json!({"displayName": "Admins"})
        );
        assert_eq!(change["mappings"][0]["role"], "admin");
        assert_eq!(change["mappings"][0]["priority"], 10);
        let mapping_id = change["mappings"][0]["id"].as_str().expect("id").to_owned();
        assert_eq!(change["job"]["status"], "queued");
        s.job_done(ta, "acme", &change["job"]).await;
        let policy = s.get("/tenants/acme/roles", ta).await.expect(200);
        assert_eq!(policy["version"], 4);
        assert_eq!(policy["mappings"][0]["id"], mapping_id.as_str());

        // A new user gets the default role, derived in the SCIM write.
        let ada = s.scim_user("acme", &token, "ada@acme.test").await;
        let body = user(s, ta, &ada).await;
        assert_eq!(body["userName"], "ada@acme.test");
        assert_eq!(body["displayName"], "User ada@acme.test");
        assert_eq!(body["active"], true);
        assert_eq!(
            body["roles"],
            json!({"effective": [{"role": "viewer", "reason": "default"}],
                   "disabled": false, "locked": null})
        );

        // Member of Admins: admin, by mapping, naming the group.
        let admins = s.scim_group("acme", &token, "Admins", &[&ada]).await;
        let body = user(s, ta, &ada).await;
        assert_eq!(
            body["roles"]["effective"],
            json!([{"role": "admin", "reason": "mapping",
                    "group": {"id": admins, "display": "Admins"}}])
        );
        assert_eq!(body["groups"], json!([{"id": admins, "display": "Admins"}]));
        let group = s
            .get(&format!("/tenants/acme/groups/{admins}"), ta)
            .await
            .expect(200);
        assert_eq!(group["displayName"], "Admins");
        assert_eq!(group["memberCount"], 1);
        assert_eq!(group["members"][0]["value"], ada.as_str());

        // Removed from the group: back to the default.
        s.scim_patch(
            "acme",
            &token,
            &format!("/Groups/{admins}"),
            remove_member(&ada),
        )
        .await;
        assert_eq!(s.role_names(ta, "acme", &ada).await, ["viewer"]);
        let body = user(s, ta, &ada).await;
        assert_eq!(body["roles"]["effective"][0]["reason"], "default");

        // Deactivated: disabled, roles kept; reactivated.
        let active = |value: bool| json!([{"op": "replace", "path": "active", "value": value}]);
        s.scim_patch("acme", &token, &format!("/Users/{ada}"), active(false))
            .await;
        let body = user(s, ta, &ada).await;
        assert_eq!(body["active"], false);
        assert_eq!(body["roles"]["disabled"], true);
        assert_eq!(body["roles"]["effective"][0]["role"], "viewer");
        s.scim_patch("acme", &token, &format!("/Users/{ada}"), active(true))
            .await;
        assert_eq!(user(s, ta, &ada).await["roles"]["disabled"], false);

        // Locked as admin, with a reason.
        let lock = s
            .api(
                "PUT",
                &format!("/tenants/acme/users/{ada}/lock"),
                Some(ta),
                Some(json!({"roles": ["admin"], "reason": "on-call this week"})),
            )
            .await
            .expect(200);
        assert_eq!(lock["userId"], ada.as_str());
        assert_eq!(lock["roles"], json!(["admin"]));
        assert_eq!(lock["lockedBy"], "tenant-admin:alice@acme.test");
        let body = user(s, ta, &ada).await;
        assert_eq!(
            body["roles"]["effective"],
            json!([{"role": "admin", "reason": "locked"}])
        );
        assert_eq!(body["roles"]["locked"]["reason"], "on-call this week");
        assert_eq!(
            body["roles"]["locked"]["lockedBy"],
            "tenant-admin:alice@acme.test"
        );
        let locks = s.get("/tenants/acme/locks", ta).await.expect(200);
        assert_eq!(locks["locks"][0]["userId"], ada.as_str());

        // The lock holds through group changes and the mapping's removal.
        s.scim_patch(
            "acme",
            &token,
            &format!("/Groups/{admins}"),
            add_member(&ada),
        )
        .await;
        s.scim_patch(
            "acme",
            &token,
            &format!("/Groups/{admins}"),
            remove_member(&ada),
        )
        .await;
        assert_eq!(s.role_names(ta, "acme", &ada).await, ["admin"]);
        let change = s
            .api(
                "DELETE",
                &format!("/tenants/acme/roles/mappings/{mapping_id}"),
                Some(ta),
                None,
            )
            .await
            .expect(200);
        assert_eq!(change["mappings"], json!([]));
        s.job_done(ta, "acme", &change["job"]).await;
        assert_eq!(
            user(s, ta, &ada).await["roles"]["effective"],
            json!([{"role": "admin", "reason": "locked"}])
        );

        // The audit log says who locked and why.
        let audit = s
            .get("/tenants/acme/audit?action=roles.lock", ta)
            .await
            .expect(200);
        let entry = &audit["entries"][0];
        assert_eq!(entry["actor"], "tenant-admin:alice@acme.test", "{audit}");
        assert_eq!(entry["target"], format!("user {ada}"));
        assert_eq!(entry["detail"]["reason"], "on-call this week");
        assert_eq!(entry["detail"]["roles"], json!(["admin"]));

        // Unlocked: the derived role is back at once.
        s.api(
            "DELETE",
            &format!("/tenants/acme/users/{ada}/lock"),
            Some(ta),
            None,
        )
        .await
        .expect(204);
        let body = user(s, ta, &ada).await;
        assert_eq!(
            body["roles"],
            json!({"effective": [{"role": "viewer", "reason": "default"}],
                   "disabled": false, "locked": null})
        );
        s.api(
            "DELETE",
            &format!("/tenants/acme/users/{ada}/lock"),
            Some(ta),
            None,
        )
        .await
        .expect_error(404, "not_found", "role lock");

        // The provisioning log saw the SCIM side of all this.
        let log = s
            .get(
                "/tenants/acme/provisioning-log?resourceType=Group&limit=2",
                ta,
            )
            .await
            .expect(200);
        let entries = log["entries"].as_array().expect("entries");
        assert_eq!(entries.len(), 2, "{log}");
        assert!(
            entries[0]["id"].as_i64() > entries[1]["id"].as_i64(),
            "newest first"
        );
        assert_eq!(entries[0]["method"], "PATCH");
        assert_eq!(entries[0]["outcome"], "success");
        let before = log["nextBeforeId"]
            .as_i64()
            .expect("a full page has a cursor");
        let older = s
            .get(
                &format!("/tenants/acme/provisioning-log?resourceType=Group&beforeId={before}"),
                ta,
            )
            .await
            .expect(200);
        assert!(
            older["entries"]
                .as_array()
                .expect("entries")
                .iter()
                .all(|e| e["id"].as_i64() < Some(before))
        );
        assert!(older.get("nextBeforeId").is_none(), "{older}");

        // Directory search with a SCIM filter.
        let found = s
            .get("/tenants/acme/users?filter=userName%20sw%20%22ada%22", ta)
            .await
            .expect(200);
        assert_eq!(found["total"], 1);
        assert_eq!(found["users"][0]["id"], ada.as_str());
        assert_eq!(found["users"][0]["roles"]["effective"][0]["role"], "viewer");
        let none = s
            .get(
                "/tenants/acme/users?filter=userName%20eq%20%22nobody%22",
                ta,
            )
            .await
            .expect(200);
        assert_eq!(none["total"], 0);
        let groups = s
            .get(
                "/tenants/acme/groups?filter=displayName%20eq%20%22admins%22",
                ta,
            )
            .await
            .expect(200);
        assert_eq!(groups["total"], 1);
        assert!(
            groups["groups"][0].get("members").is_none(),
            "lists omit members"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_reports_the_change_and_changes_nothing_and_the_real_one_runs_a_job() {
    each_backend(async |s: &Server| {
        let op = s.operator().await;
        let token = s.tenant(&op, "acme").await;
        let op = op.as_str();
        let change = s
            .api(
                "PUT",
                "/tenants/acme/roles",
                Some(op),
                Some(json!({
                    "mode": "single",
                    "defaultRole": "viewer",
                    "roles": [{"name": "admin"}, {"name": "viewer"}],
                })),
            )
            .await
            .expect(200);
        s.job_done(op, "acme", &change["job"]).await;
        let mut users = Vec::new();
        for name in ["a@acme.test", "b@acme.test", "c@acme.test"] {
            users.push(s.scim_user("acme", &token, name).await);
        }
        s.scim_group("acme", &token, "Admins", &[&users[0], &users[2]])
            .await;
        let mapping = json!({"group": {"displayName": "Admins"}, "role": "admin", "priority": 5});

        for query in ["?dry_run=true", "?dryRun=true"] {
            let preview = s
                .api(
                    "POST",
                    &format!("/tenants/acme/roles/mappings{query}"),
                    Some(op),
                    Some(mapping.clone()),
                )
                .await
                .expect(200);
            assert_eq!(preview["dryRun"], true, "{preview}");
            assert_eq!(preview["users"], 3);
            assert_eq!(preview["changed"], 2);
            let sample = preview["sample"].as_array().expect("sample");
            assert_eq!(sample.len(), 2);
            let mut expected = vec![users[0].clone(), users[2].clone()];
            expected.sort();
            let ids: Vec<&str> = sample
                .iter()
                .map(|c| c["userId"].as_str().expect("id"))
                .collect();
            assert_eq!(ids, expected, "by user id");
            for change in sample {
                assert_eq!(change["before"], json!(["viewer"]));
                assert_eq!(change["after"], json!(["admin"]));
                assert!(
                    change["userName"]
                        .as_str()
                        .expect("userName")
                        .ends_with("@acme.test")
                );
            }
            assert!(preview.get("job").is_none());
        }
        // Nothing changed: policy version, mappings, anyone's roles, jobs.
        let policy = s.get("/tenants/acme/roles", op).await.expect(200);
        assert_eq!(policy["version"], 1);
        assert_eq!(policy["mappings"], json!([]));
        for u in &users {
            assert_eq!(s.role_names(op, "acme", u).await, ["viewer"]);
        }
        let jobs = s.get("/tenants/acme/roles/jobs", op).await.expect(200);
        assert_eq!(jobs["jobs"].as_array().expect("jobs").len(), 1);

        // A dry run of a whole policy, too.
        let preview = s
            .api(
                "PUT",
                "/tenants/acme/roles?dryRun=true",
                Some(op),
                Some(
                    json!({"mode": "single", "roles": [{"name": "admin"}, {"name": "viewer"}],
                            "defaultRole": "admin"}),
                ),
            )
            .await
            .expect(200);
        assert_eq!(
            (preview["users"].as_u64(), preview["changed"].as_u64()),
            (Some(3), Some(3))
        );

        // The real change: a job that reaches done and changed two users.
        let change = s
            .api(
                "POST",
                "/tenants/acme/roles/mappings",
                Some(op),
                Some(mapping),
            )
            .await
            .expect(200);
        assert_eq!(change["version"], 2);
        let job = s.job_done(op, "acme", &change["job"]).await;
        assert_eq!(job["policyVersion"], 2, "{job}");
        assert_eq!(job["total"], 3, "{job}");
        assert_eq!(job["processed"], 3, "{job}");
        assert!(job["finishedAt"].is_string(), "{job}");
        assert!(job["error"].is_null(), "{job}");
        assert_eq!(s.role_names(op, "acme", &users[0]).await, ["admin"]);
        assert_eq!(s.role_names(op, "acme", &users[1]).await, ["viewer"]);
        assert_eq!(s.role_names(op, "acme", &users[2]).await, ["admin"]);
        let jobs = s
            .get("/tenants/acme/roles/jobs?limit=1", op)
            .await
            .expect(200);
        assert_eq!(jobs["jobs"][0]["id"], change["job"]["id"], "newest first");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_versions_if_match_and_fine_grained_edits() {
    each_backend(async |s: &Server| {
        let op = s.operator().await;
        s.tenant(&op, "acme").await;
        let op = op.as_str();
        let empty = s.get("/tenants/acme/roles", op).await;
        assert_eq!(empty.header("etag"), Some("\"0\""));
        assert_eq!(
            empty.expect(200),
            json!({"version": 0, "mode": "single", "defaultRole": null, "roles": [], "mappings": []})
        );

        let policy = json!({
            "mode": "multi",
            "defaultRole": "viewer",
            "roles": [{"name": "admin"}, {"name": "viewer"}, {"name": "editor"}],
            "mappings": [
                {"group": {"externalId": "ext-1"}, "role": "editor", "priority": 1},
                {"group": {"id": "g-2"}, "role": "admin"},
            ],
        });
        let url = format!("{}/admin/v1/tenants/acme/roles", s.origin);
        let put = |if_match: &'static str, body: Value| {
            let url = url.clone();
            async move {
                s.raw(
                    "PUT",
                    &url,
                    Some(op),
                    &[("Content-Type", "application/json"), ("If-Match", if_match)],
                    Some(body.to_string().into_bytes()),
                )
                .await
            }
        };
        put("\"3\"", policy.clone())
            .await
            .expect_error(412, "precondition_failed", "current version is 0");
        put("nonsense", policy.clone())
            .await
            .expect_error(400, "invalid_request", "If-Match");
        let stored = put("\"0\"", policy.clone()).await.expect(200);
        assert_eq!(stored["version"], 1);
        assert_eq!(stored["mode"], "multi");
        assert_eq!(stored["mappings"][1]["priority"], 0, "priority defaults to 0");
        // A policy read with GET can be sent back as is (ids and version
        // included); the version then works like If-Match.
        let read = s.get("/tenants/acme/roles", op).await.expect(200);
        let again = s
            .api("PUT", "/tenants/acme/roles", Some(op), Some(read.clone()))
            .await
            .expect(200);
        assert_eq!(again["version"], 2);
        assert_eq!(again["mappings"], read["mappings"], "unchanged mappings keep their ids");
        s.api("PUT", "/tenants/acme/roles", Some(op), Some(read))
            .await
            .expect_error(412, "precondition_failed", "current version is 2");
        put("W/\"2\"", policy.clone()).await.expect(200);

        // Fine-grained edits, each with its own refusals.
        let edit = |method: &'static str, path: &'static str, body: Option<Value>| async move {
            s.api(method, &format!("/tenants/acme/roles{path}"), Some(op), body)
                .await
        };
        edit("POST", "/roles", Some(json!({"name": "admin"})))
            .await
            .expect_error(409, "conflict", "already defined");
        edit("DELETE", "/roles/viewer", None)
            .await
            .expect_error(409, "conflict", "the default role");
        edit("DELETE", "/roles/editor", None)
            .await
            .expect_error(409, "conflict", "mappings[0]");
        edit("DELETE", "/roles/nope", None)
            .await
            .expect_error(404, "not_found", "role \"nope\"");
        edit("PATCH", "/roles/nope", Some(json!({"description": "x"})))
            .await
            .expect_error(404, "not_found", "role \"nope\"");
        edit("DELETE", "/mappings/no-such-id", None)
            .await
            .expect_error(404, "not_found", "mapping no-such-id");
        edit("PUT", "/default", Some(json!({"role": "nope"})))
            .await
            .expect_error(400, "invalid_request", "\"nope\" is not defined");
        edit("PUT", "/default", Some(json!({})))
            .await
            .expect_error(400, "invalid_request", "role is required");
        let changed = edit("PATCH", "/roles/editor", Some(json!({"description": "Edits"})))
            .await
            .expect(200);
        assert_eq!(changed["roles"][2], json!({"name": "editor", "description": "Edits"}));
        let changed = edit("PUT", "/default", Some(json!({"role": null}))).await.expect(200);
        assert!(changed["defaultRole"].is_null());
        let changed = edit("PUT", "/mode", Some(json!({"mode": "single"}))).await.expect(200);
        assert_eq!(changed["mode"], "single");
        let changed = edit("DELETE", "/roles/viewer", None).await.expect(200);
        assert_eq!(changed["roles"].as_array().expect("roles").len(), 2);
        let version = changed["version"].as_u64().expect("version");
        assert_eq!(version, 7);

        let audit = s
            .get("/tenants/acme/audit?action=roles.policy.set&limit=2", op)
            .await
            .expect(200);
        assert_eq!(audit["entries"].as_array().expect("entries").len(), 2);
        assert_eq!(audit["entries"][0]["detail"]["after"]["version"], 7, "{audit}");
        assert!(audit["nextBeforeId"].is_i64(), "{audit}");
    })
    .await;
}
