//! A target's attribute mapping over the admin API, with the worker
//! running in the server and a real webhook receiver on 127.0.0.1: an
//! invalid mapping is refused with the attribute named and changes
//! nothing, the preview shows each user's document before and after, and
//! the receiver gets exactly the previewed document.

use std::time::Duration;

use serde_json::{Value, json};
use testkit::receiver::Receiver;

use crate::support::*;

const ENT: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const CUSTOM: &str = "urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User";

fn mapping() -> Value {
    json!({"users": {"attributes": [
        {"target": "costCenter", "source": format!("{ENT}:department"),
         "map": {"Sales": "CC-100"}, "default": "CC-000"},
        {"target": format!("{ENT}:department"), "remove": true},
        {"target": "login", "source": "userName", "transform": "lower"},
        {"target": "fullName", "concat": [
            {"source": "name.givenName"}, {"text": " "}, {"source": "name.familyName"}]},
        {"target": "workEmail", "source": "emails[type eq \"work\"].value"},
        {"target": "badge", "source": format!("{CUSTOM}:badgeNumber"), "transform": "upper"}
    ]}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mapping_reaches_the_webhook_as_previewed() {
    for which in testkit::backends() {
        let s = Server::start_with(which, |c| c.delivery_enabled = true).await;
        let op = &s.operator().await;
        let scim = s.tenant(op, "acme").await;
        let receiver = Receiver::start().await;
        let created = s
            .api(
                "POST",
                "/tenants/acme/targets",
                Some(op),
                Some(json!({"name": "crm", "kind": "webhook", "url": receiver.url()})),
            )
            .await
            .expect(201);
        receiver.set_secret(created["secret"].as_str().expect("secret"));
        let t = format!(
            "/tenants/acme/targets/{}/mapping",
            created["target"]["id"].as_str().expect("id")
        );

        // Refused with the rule and attribute named; nothing stored.
        let bad = json!({"mapping": {"users": {"attributes": [
            {"target": "costCenter", "source": "emails[type eq]"}]}}});
        s.api("PUT", &t, Some(op), Some(bad)).await.expect_error(
            400,
            "invalid_request",
            "users.attributes[0] (target \"costCenter\")",
        );
        let bad =
            json!({"mapping": {"users": {"attributes": [{"target": "active", "value": "maybe"}]}}});
        s.api("PUT", &t, Some(op), Some(bad)).await.expect_error(
            400,
            "invalid_request",
            "\"active\"",
        );
        let stored = s.get(&t, op).await.expect(200);
        assert_eq!(stored, json!({"version": 0, "mapping": null}), "{which:?}");

        // Stored at version 1; a stale version is refused.
        let put = s
            .api(
                "PUT",
                &t,
                Some(op),
                Some(json!({"mapping": mapping(), "version": 0})),
            )
            .await
            .expect(200);
        assert_eq!(put["version"], 1);
        let stale = s
            .api(
                "PUT",
                &t,
                Some(op),
                Some(json!({"mapping": null, "version": 0})),
            )
            .await;
        assert_eq!(stale.status, 412, "{}", stale.body);

        let user = s
            .scim(
                "POST",
                "acme",
                "/Users",
                &scim,
                Some(json!({
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENT, CUSTOM],
                    "userName": "Ada.Lovelace@Acme.example",
                    "name": {"givenName": "Ada", "familyName": "Lovelace"},
                    "emails": [{"type": "home", "value": "ada@home.example"},
                               {"type": "work", "value": "ada@acme.example"}],
                    "title": "Countess",
                    ENT: {"department": "Sales", "employeeNumber": "7"},
                    CUSTOM: {"badgeNumber": "b-1815"}
                })),
            )
            .await
            .expect(201);
        let id = user["id"].as_str().expect("id").to_owned();
        let got = receiver
            .wait_for(1, Duration::from_secs(30))
            .await
            .expect("delivered");
        assert!(got[0].verified, "{:?}", got[0].verify_error);
        let data = &got[0].body["data"];
        assert_eq!(data["costCenter"], "CC-100", "{which:?}: {data}");
        assert_eq!(data["login"], "ada.lovelace@acme.example");
        assert_eq!(data["fullName"], "Ada Lovelace");
        assert_eq!(data["workEmail"], "ada@acme.example");
        assert_eq!(data["badge"], "B-1815");
        assert_eq!(
            data[ENT],
            json!({"employeeNumber": "7"}),
            "department moved"
        );
        assert_eq!(data["title"], "Countess", "unmapped attributes kept");
        assert!(got[0].body.get("raw").is_none(), "raw only when asked");

        // The preview of the stored mapping shows exactly what was sent;
        // of a new one, what would be.
        let preview = s
            .api(
                "POST",
                &format!("{t}/preview"),
                Some(op),
                Some(
                    json!({"users": [id], "mapping": {"users": {"keepUnmapped": false,
                    "attributes": [{"target": "login", "source": "userName"}]}}}),
                ),
            )
            .await
            .expect(200);
        let one = &preview["users"][0];
        assert_eq!(one["id"], json!(id));
        assert_eq!(
            &one["before"], data,
            "{which:?}: the receiver got what the preview shows"
        );
        let mut keys: Vec<&str> = one["after"]
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(keys, ["id", "login", "meta", "schemas"], "{}", one["after"]);
        let first = s
            .api(
                "POST",
                &format!("{t}/preview"),
                Some(op),
                Some(json!({"first": 3})),
            )
            .await
            .expect(200);
        assert_eq!(
            first["users"][0]["after"]["userName"],
            "Ada.Lovelace@Acme.example"
        );
        assert_eq!(
            first["users"][0]["before"]["login"],
            "ada.lovelace@acme.example"
        );
        s.api(
            "POST",
            &format!("{t}/preview"),
            Some(op),
            Some(json!({"mapping": {"users": {"attributes": [{"target": "id", "value": 1}]}}})),
        )
        .await
        .expect_error(400, "invalid_request", "\"id\"");

        // The audit log names the change.
        let audit = s.get("/tenants/acme/audit", op).await.expect(200);
        assert!(audit.to_string().contains("target.mapping"), "{audit}");
        s.stop().await;
    }
}

/// An outbound SCIM target's profile over the API: defaults, bounds, and
/// no profile for a webhook.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outbound_targets_profile_is_bounded_and_audited() {
    for which in testkit::backends() {
        let s = Server::start_with(which, |c| c.delivery_enabled = true).await;
        let op = &s.operator().await;
        s.tenant(op, "acme").await;
        let scim = s
            .api(
                "POST",
                "/tenants/acme/targets",
                Some(op),
                Some(json!({"name": "app", "kind": "scim",
                            "url": "http://127.0.0.1:9/scim/v2", "token": "t0ken"})),
            )
            .await
            .expect(201);
        let p = format!(
            "/tenants/acme/targets/{}/profile",
            scim["target"]["id"].as_str().expect("id")
        );
        let defaults = s.get(&p, op).await.expect(200);
        assert_eq!(
            defaults,
            json!({"membersPerPatch": 100, "updateMethod": "put", "requestsPerSecond": null,
                   "flattenGroups": false}),
            "{which:?}"
        );
        let set = s
            .api(
                "PUT",
                &p,
                Some(op),
                Some(
                    json!({"membersPerPatch": 25, "updateMethod": "patch", "flattenGroups": true}),
                ),
            )
            .await
            .expect(200);
        assert_eq!(
            set,
            json!({"membersPerPatch": 25, "updateMethod": "patch", "requestsPerSecond": null,
                   "flattenGroups": true})
        );
        assert_eq!(s.get(&p, op).await.expect(200), set);
        for bad in [
            json!({"membersPerPatch": 0}),
            json!({"membersPerPatch": 1001}),
            json!({"requestsPerSecond": 0}),
            json!({"updateMethod": "post"}),
            json!({"flattenGroups": "yes"}),
        ] {
            let r = s.api("PUT", &p, Some(op), Some(bad.clone())).await;
            assert_eq!(r.status, 400, "{bad}: {}", r.body);
        }
        assert_eq!(s.get(&p, op).await.expect(200), set, "nothing changed");
        let hook = s
            .api(
                "POST",
                "/tenants/acme/targets",
                Some(op),
                Some(json!({"name": "hook", "kind": "webhook", "url": "http://127.0.0.1:9/h"})),
            )
            .await
            .expect(201);
        let hook = format!(
            "/tenants/acme/targets/{}/profile",
            hook["target"]["id"].as_str().expect("id")
        );
        s.api("PUT", &hook, Some(op), Some(json!({})))
            .await
            .expect_error(400, "invalid_request", "only outbound SCIM targets");
        let audit = s.get("/tenants/acme/audit", op).await.expect(200);
        assert!(audit.to_string().contains("target.profile"), "{audit}");
        s.stop().await;
    }
}

/// Waits until `job` (an admin API path) is done and returns it.
async fn finished(s: &Server, op: &str, job: &str) -> Value {
    let (op, job) = (op.to_owned(), job.to_owned());
    eventually(|| {
        let (op, job) = (op.clone(), job.clone());
        async move {
            let got = s.get(&job, &op).await.expect(200);
            assert_ne!(got["status"], "failed", "{got}");
            (got["status"] == "done").then_some(got)
        }
    })
    .await
    .expect("the job finishes")
}

/// A mapping change with `"resend": true` sends again exactly the users
/// whose document it alters, to that target only: under new webhook ids
/// (so an idempotent receiver takes them), not in the event feed, and
/// nothing for the users it leaves alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mapping_change_resends_exactly_the_affected_users() {
    for which in testkit::backends() {
        let s = Server::start_with(which, |c| c.delivery_enabled = true).await;
        let op = &s.operator().await;
        let scim = s.tenant(op, "acme").await;
        let receiver = Receiver::start().await;
        let created = s
            .api(
                "POST",
                "/tenants/acme/targets",
                Some(op),
                Some(json!({"name": "crm", "kind": "webhook", "url": receiver.url()})),
            )
            .await
            .expect(201);
        receiver.set_secret(created["secret"].as_str().expect("secret"));
        let target = format!(
            "/tenants/acme/targets/{}",
            created["target"]["id"].as_str().expect("id")
        );
        let t = format!("{target}/mapping");
        let cost = |map: Value| {
            json!({"users": {"attributes": [
                {"target": "costCenter", "source": format!("{ENT}:department"),
                 "map": map, "default": "CC-000"}]}})
        };
        s.api(
            "PUT",
            &t,
            Some(op),
            Some(json!({"mapping": cost(json!({"Sales": "CC-100"}))})),
        )
        .await
        .expect(200);

        let mut sales = Vec::new();
        for (i, department) in ["Sales", "Ops", "Sales", "Ops", "Sales", "Ops"]
            .iter()
            .enumerate()
        {
            let user = s
                .scim(
                    "POST",
                    "acme",
                    "/Users",
                    &scim,
                    Some(json!({
                        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENT],
                        "userName": format!("user{i}@acme.example"),
                        ENT: {"department": department}
                    })),
                )
                .await
                .expect(201);
            if *department == "Sales" {
                sales.push(user["id"].as_str().expect("id").to_owned());
            }
        }
        s.scim(
            "POST",
            "acme",
            "/Groups",
            &scim,
            Some(json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                "displayName": "Staff"
            })),
        )
        .await
        .expect(201);
        let first = receiver
            .wait_for(7, Duration::from_secs(30))
            .await
            .expect("the first deliveries");
        let first_ids: Vec<String> = first.iter().filter_map(|d| d.webhook_id.clone()).collect();
        receiver.clear();

        // Sales moves to another cost centre: only the Sales users change.
        let put = s
            .api(
                "PUT",
                &t,
                Some(op),
                Some(json!({"mapping": cost(json!({"Sales": "CC-200"})), "resend": true})),
            )
            .await
            .expect(200);
        assert_eq!(put["version"], 2, "{put}");
        let job_url = put["resendJob"]["url"]
            .as_str()
            .expect("job url")
            .to_owned();
        let job = finished(&s, op, job_url.trim_start_matches("/admin/v1")).await;
        assert_eq!(
            job["result"]["resent"],
            json!({"users": 3, "groups": 0}),
            "{which:?}: {job}"
        );
        assert_eq!(
            (&job["total"], &job["processed"], &job["changed"]),
            (&json!(7), &json!(7), &json!(3)),
            "{job}"
        );

        // A user created after the job: once the target's cursor has
        // passed its event, everything before it has been delivered.
        s.scim(
            "POST",
            "acme",
            "/Users",
            &scim,
            Some(json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": "sentinel@acme.example"
            })),
        )
        .await
        .expect(201);
        let feed = s
            .get("/tenants/acme/events?after=0&limit=100", op)
            .await
            .expect(200);
        let events = feed["events"].as_array().expect("events");
        assert!(
            events.iter().all(|e| e["type"] != "user.updated"),
            "{which:?}: re-sends are the target's alone, not the feed's: {feed}"
        );
        let sentinel = events.last().expect("the sentinel's event")["position"]
            .as_i64()
            .expect("position");
        eventually(|| async {
            let got = s.get(&target, op).await.expect(200);
            (got["cursor"].as_i64() >= Some(sentinel)).then_some(())
        })
        .await
        .expect("the target passes the sentinel");

        let got = receiver.deliveries();
        let resent: Vec<&testkit::receiver::Delivery> = got
            .iter()
            .filter(|d| d.body["type"] == "user.updated")
            .collect();
        let mut ids: Vec<String> = resent
            .iter()
            .map(|d| d.body["data"]["id"].as_str().expect("id").to_owned())
            .collect();
        ids.sort_unstable();
        sales.sort_unstable();
        assert_eq!(ids, sales, "{which:?}: exactly the Sales users");
        assert_eq!(got.len(), 4, "{which:?}: three re-sends and the sentinel");
        for d in &resent {
            assert!(d.verified, "{:?}", d.verify_error);
            assert_eq!(d.body["data"]["costCenter"], "CC-200", "{}", d.body);
            assert_eq!(d.body["changed"], json!([]), "{}", d.body);
            let id = d.webhook_id.clone().expect("webhook-id");
            assert!(!first_ids.contains(&id), "{id} is a new message");
        }

        // The audit log names the change's job.
        let audit = s.get("/tenants/acme/audit", op).await.expect(200);
        assert!(
            audit
                .to_string()
                .contains(put["resendJob"]["id"].as_str().expect("id")),
            "{audit}"
        );
        s.stop().await;
    }
}
