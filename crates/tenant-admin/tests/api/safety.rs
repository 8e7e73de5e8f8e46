//! Deletion safety over real HTTP, with the worker running in the server
//! and a webhook receiver on 127.0.0.1: the threshold holds what passes
//! it from the application until a tenant admin releases or discards it,
//! a deleted user is 404 to SCIM and restorable with its id, a protected
//! user's deactivation waits, and an erasure leaves nothing in the
//! database.

use std::time::Duration;

use serde_json::{Value, json};
use testkit::receiver::Receiver;

use crate::support::*;

/// A webhook target of tenant `slug` for `types`, answered by a new
/// receiver; returns the receiver and the target's admin API path.
async fn webhook(s: &Server, op: &str, slug: &str, types: &[&str]) -> (Receiver, String) {
    let receiver = Receiver::start().await;
    let created = s
        .api(
            "POST",
            &format!("/tenants/{slug}/targets"),
            Some(op),
            Some(
                json!({"name": "app", "kind": "webhook", "url": receiver.url(),
                        "eventTypes": types}),
            ),
        )
        .await
        .expect(201);
    receiver.set_secret(created["secret"].as_str().expect("secret"));
    let path = format!(
        "/tenants/{slug}/targets/{}",
        created["target"]["id"].as_str().expect("id")
    );
    (receiver, path)
}

/// Waits until the target has handled every event committed so far: what
/// the receiver holds then is all it will get of them.
async fn settled(s: &Server, op: &str, slug: &str, target: &str) {
    let mut after = 0;
    loop {
        let page = s
            .get(
                &format!("/tenants/{slug}/events?after={after}&limit=100"),
                op,
            )
            .await
            .expect(200);
        let next = page["next"].as_i64().expect("next");
        if next == after {
            break;
        }
        after = next;
    }
    eventually(|| async {
        let t = s.get(target, op).await.expect(200);
        (t["cursor"].as_i64() >= Some(after)).then_some(())
    })
    .await
    .expect("the target catches up");
}

/// The users whose deletion the receiver got, sorted (deliveries of
/// different users run side by side, in no set order).
fn deleted_ids(r: &Receiver) -> Vec<String> {
    let mut ids: Vec<String> = r
        .deliveries()
        .iter()
        .filter(|d| d.body["type"] == "user.deleted")
        .map(|d| d.body["data"]["id"].as_str().unwrap_or_default().to_owned())
        .collect();
    ids.sort_unstable();
    ids
}

fn sorted(ids: &[String]) -> Vec<String> {
    let mut ids = ids.to_vec();
    ids.sort_unstable();
    ids
}

/// Deleting 50 of 100 users with a threshold of 10: the IdP gets 204 for
/// each and SCIM reads say 404, the application hears of 10; releasing
/// delivers the other 40. In the next window, 10 pass again and the
/// discarded rest never reach the application.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_threshold_holds_mass_deletions_until_an_admin_decides() {
    for which in testkit::backends() {
        let s = Server::start_with(which, |c| c.delivery_enabled = true).await;
        let op = &s.operator().await;
        let scim = s.tenant(op, "acme").await;
        let (receiver, target) = webhook(&s, op, "acme", &["user.deleted"]).await;
        let policy = s
            .api(
                "PUT",
                "/tenants/acme/deletion-safety",
                Some(op),
                Some(json!({"maxDeletions": 10, "version": 0})),
            )
            .await
            .expect(200);
        assert_eq!(
            (
                &policy["maxDeletions"],
                &policy["graceDays"],
                &policy["version"]
            ),
            (&json!(10), &json!(30), &json!(1)),
            "{policy}"
        );
        s.api(
            "PUT",
            "/tenants/acme/deletion-safety",
            Some(op),
            Some(json!({"maxPercent": 0})),
        )
        .await
        .expect_error(400, "invalid_request", "maxPercent");
        // An If-Match the body's version contradicts can never hold: 412,
        // and the policy stays as it was.
        s.api_with(
            "PUT",
            "/tenants/acme/deletion-safety",
            Some(op),
            &[("If-Match", "\"1\"")],
            Some(json!({"maxDeletions": 99, "version": 7})),
        )
        .await
        .expect_error(412, "precondition_failed", "no version satisfies both");
        let unchanged = s.get("/tenants/acme/deletion-safety", op).await.expect(200);
        assert_eq!(
            (&unchanged["maxDeletions"], &unchanged["version"]),
            (&json!(10), &json!(1)),
            "{unchanged}"
        );

        let mut ids = Vec::new();
        for i in 0..100 {
            ids.push(
                s.scim_user("acme", &scim, &format!("u{i:03}@acme.example"))
                    .await,
            );
        }
        for id in &ids[..50] {
            s.scim("DELETE", "acme", &format!("/Users/{id}"), &scim, None)
                .await
                .expect(204);
        }
        for id in &ids[..50] {
            let r = s
                .scim("GET", "acme", &format!("/Users/{id}"), &scim, None)
                .await;
            assert_eq!(r.status, 404, "{which:?}: {}", r.body);
        }
        settled(&s, op, "acme", &target).await;
        assert_eq!(
            deleted_ids(&receiver),
            sorted(&ids[..10]),
            "{which:?}: the app hears 10"
        );
        let state = s.get("/tenants/acme/deletion-safety", op).await.expect(200);
        assert_eq!(
            (&state["tripped"], &state["held"]),
            (&json!(true), &json!(40)),
            "{state}"
        );
        let held = s
            .get("/tenants/acme/held-changes?limit=1000", op)
            .await
            .expect(200);
        let held = held["changes"].as_array().expect("changes").clone();
        assert_eq!(held.len(), 40);
        assert_eq!(held[0]["userName"], "u010@acme.example");
        assert_eq!(held[0]["reason"], "threshold");

        let released = s
            .api(
                "POST",
                "/tenants/acme/held-changes/release",
                Some(op),
                Some(json!({})),
            )
            .await
            .expect(200);
        assert_eq!(released["count"], 40);
        receiver
            .wait_for(50, Duration::from_secs(30))
            .await
            .expect("the released 40 arrive");
        settled(&s, op, "acme", &target).await;
        assert_eq!(
            deleted_ids(&receiver),
            sorted(&ids[..50]),
            "{which:?}: all 50"
        );

        // The next window: 10 pass, 10 held and discarded.
        for id in &ids[50..70] {
            s.scim("DELETE", "acme", &format!("/Users/{id}"), &scim, None)
                .await
                .expect(204);
        }
        let discarded = s
            .api(
                "POST",
                "/tenants/acme/held-changes/discard",
                Some(op),
                Some(json!({})),
            )
            .await
            .expect(200);
        assert_eq!(discarded["count"], 10);
        settled(&s, op, "acme", &target).await;
        assert_eq!(
            deleted_ids(&receiver),
            sorted(&ids[..60]),
            "{which:?}: none discarded"
        );
        let state = s.get("/tenants/acme/deletion-safety", op).await.expect(200);
        assert_eq!(
            (&state["tripped"], &state["held"]),
            (&json!(false), &json!(0))
        );
        s.api(
            "POST",
            "/tenants/acme/held-changes/release",
            Some(op),
            Some(json!({"ids": [1], "users": ["x"]})),
        )
        .await
        .expect_error(400, "invalid_request", "not both");
        // Ids settled already (or never held) are a conflict with the
        // current state; nothing else moves.
        let settled_id = held[0]["id"].clone();
        for action in ["release", "discard"] {
            s.api(
                "POST",
                &format!("/tenants/acme/held-changes/{action}"),
                Some(op),
                Some(json!({"ids": [settled_id]})),
            )
            .await
            .expect_error(409, "conflict", "no held change");
        }
        let audit = s
            .get("/tenants/acme/audit?limit=1000", op)
            .await
            .expect(200)
            .to_string();
        for action in [
            "deletion.policy",
            "deletion.threshold_tripped",
            "deletion.release",
            "deletion.discard",
        ] {
            assert!(audit.contains(action), "{which:?}: {action} audited");
        }
        s.stop().await;
    }
}

/// A deleted user is 404 to SCIM and its userName free, restorable with
/// its id and groups (the application hears `user.restored`); a protected
/// user's deactivation reaches the application only once confirmed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soft_deletes_restore_and_protected_users_wait() {
    for which in testkit::backends() {
        let s = Server::start_with(which, |c| c.delivery_enabled = true).await;
        let op = &s.operator().await;
        let scim = s.tenant(op, "acme").await;
        let admin = s.tenant_admin(op, "acme", "tina@acme.example").await;
        let (receiver, target) = webhook(
            &s,
            op,
            "acme",
            &["user.deleted", "user.restored", "user.deactivated"],
        )
        .await;
        let grace = s.scim_user("acme", &scim, "grace@acme.example").await;
        let team = s.scim_group("acme", &scim, "Team", &[&grace]).await;
        s.scim("DELETE", "acme", &format!("/Users/{grace}"), &scim, None)
            .await
            .expect(204);
        let gone = s
            .scim("GET", "acme", &format!("/Users/{grace}"), &scim, None)
            .await;
        assert_eq!(gone.status, 404, "{which:?}: {}", gone.body);
        let found = s
            .scim(
                "GET",
                "acme",
                "/Users?filter=userName%20eq%20%22grace%40acme.example%22",
                &scim,
                None,
            )
            .await
            .expect(200);
        assert_eq!(found["totalResults"], 0, "{which:?}");
        let deleted = s
            .get("/tenants/acme/deleted-users", &admin)
            .await
            .expect(200);
        assert_eq!(deleted["users"][0]["id"], json!(grace), "{deleted}");

        let back = s
            .api(
                "POST",
                &format!("/tenants/acme/deleted-users/{grace}/restore"),
                Some(&admin),
                None,
            )
            .await
            .expect(200);
        assert_eq!(back["id"], json!(grace), "{which:?}: the same id");
        let user = s
            .scim("GET", "acme", &format!("/Users/{grace}"), &scim, None)
            .await
            .expect(200);
        assert_eq!(user["userName"], "grace@acme.example");
        let group = s
            .scim("GET", "acme", &format!("/Groups/{team}"), &scim, None)
            .await
            .expect(200);
        assert!(
            group["members"].to_string().contains(&grace),
            "back in Team: {group}"
        );
        s.api(
            "POST",
            &format!("/tenants/acme/deleted-users/{grace}/restore"),
            Some(&admin),
            None,
        )
        .await
        .expect_error(404, "not_found", "deleted user");

        // Protected: the IdP's deactivation waits for confirmation.
        let keeper = s.scim_user("acme", &scim, "keeper@acme.example").await;
        s.api(
            "PUT",
            &format!("/tenants/acme/users/{keeper}/protection"),
            Some(&admin),
            Some(json!({"reason": " "})),
        )
        .await
        .expect_error(400, "invalid_request", "reason");
        let p = s
            .api(
                "PUT",
                &format!("/tenants/acme/users/{keeper}/protection"),
                Some(&admin),
                Some(json!({"reason": "break-glass admin"})),
            )
            .await
            .expect(200);
        assert_eq!(p["protectedBy"], "tenant-admin:tina@acme.example", "{p}");
        s.scim_patch(
            "acme",
            &scim,
            &format!("/Users/{keeper}"),
            json!([{"op": "Replace", "path": "active", "value": "False"}]),
        )
        .await;
        settled(&s, op, "acme", &target).await;
        let types = |r: &Receiver| -> Vec<String> {
            r.deliveries()
                .iter()
                .map(|d| d.body["type"].as_str().unwrap_or_default().to_owned())
                .collect()
        };
        assert_eq!(
            types(&receiver),
            ["user.deleted", "user.restored"],
            "{which:?}: not yet"
        );
        let held = s
            .get("/tenants/acme/held-changes", &admin)
            .await
            .expect(200);
        assert_eq!(held["changes"][0]["reason"], "protected", "{held}");
        assert_eq!(held["changes"][0]["eventType"], "user.deactivated");
        let n = s
            .api(
                "POST",
                "/tenants/acme/held-changes/release",
                Some(&admin),
                Some(json!({"users": [keeper]})),
            )
            .await
            .expect(200);
        assert_eq!(n["count"], 1);
        receiver
            .wait_for(3, Duration::from_secs(30))
            .await
            .expect("confirmed");
        assert_eq!(types(&receiver)[2], "user.deactivated");
        let restored = receiver.deliveries()[1].body.clone();
        assert_eq!(restored["data"]["id"], json!(grace), "{restored}");
        s.stop().await;
    }
}

/// An operator's erasure leaves no trace of the person's userName, e-mail
/// or name in any table, after the person went through SCIM writes, the
/// provisioning log, events, deliveries and a soft delete; a tenant admin
/// may not erase.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erasure_leaves_nothing_in_the_database() {
    for which in testkit::backends() {
        let s = Server::start_with(which, |c| c.delivery_enabled = true).await;
        let op = &s.operator().await;
        let scim = s.tenant(op, "acme").await;
        let admin = s.tenant_admin(op, "acme", "tina@acme.example").await;
        let (receiver, target) = webhook(&s, op, "acme", &[]).await;
        let created = s
            .scim(
                "POST",
                "acme",
                "/Users",
                &scim,
                Some(json!({
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                    "userName": "zelda.quixotic@erase.example",
                    "name": {"givenName": "Zelda", "familyName": "Quixotic"},
                    "emails": [{"value": "zq-home@erase.example", "type": "home"}]
                })),
            )
            .await
            .expect(201);
        let zelda = created["id"].as_str().expect("id").to_owned();
        s.scim_group("acme", &scim, "Readers", &[&zelda]).await;
        s.scim_patch(
            "acme",
            &scim,
            &format!("/Users/{zelda}"),
            json!([{"op": "replace", "path": "title", "value": "Princess"}]),
        )
        .await;
        s.scim("DELETE", "acme", &format!("/Users/{zelda}"), &scim, None)
            .await
            .expect(204);
        settled(&s, op, "acme", &target).await;
        assert!(receiver.count() >= 4, "delivered: {}", receiver.count());
        let needles = ["zelda.quixotic", "Zelda", "Quixotic", "zq-home"];
        let before = s.database().find_text(&needles).await;
        assert!(!before.is_empty(), "{which:?}: the data is there to find");

        let erase = format!("/tenants/acme/users/{zelda}/erase");
        s.api(
            "POST",
            &format!("{erase}?confirm={zelda}"),
            Some(&admin),
            None,
        )
        .await
        .expect_error(403, "forbidden", "");
        s.api(
            "POST",
            &format!("{erase}?confirm=someone-else"),
            Some(op),
            None,
        )
        .await
        .expect_error(400, "invalid_request", "confirm");
        let done = s
            .api("POST", &format!("{erase}?confirm={zelda}"), Some(op), None)
            .await
            .expect(200);
        assert_eq!(done["rows"]["deleted_users"], 1, "{done}");
        let left: Vec<String> = s.database().find_text(&needles).await;
        assert!(left.is_empty(), "{which:?}: left behind: {left:?}");
        let audit: Value = s
            .get("/tenants/acme/audit?limit=1000", op)
            .await
            .expect(200);
        assert!(audit.to_string().contains("user.erase"), "{audit}");
        s.api("POST", &format!("{erase}?confirm={zelda}"), Some(op), None)
            .await
            .expect_error(404, "not_found", "");
        s.stop().await;
    }
}
