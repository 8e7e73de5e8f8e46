//! Delivery through the admin API, with the worker running in the server
//! and a real webhook receiver on 127.0.0.1: targets (the secret shown
//! once), health, attempts, dead letters and replay, the event feed with a
//! session and with an `events:read` token, and a user's timeline.

use std::time::Duration;

use serde_json::{Value, json};
use testkit::receiver::Receiver;

use crate::support::*;

async fn eventually<F, Fut>(what: &str, mut check: F) -> Value
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<Value>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn targets_deliveries_feed_and_timeline_over_the_api() {
    for which in testkit::backends() {
        let s = Server::start_with(which, |c| c.delivery_enabled = true).await;
        let op = &s.operator().await;
        let scim = s.tenant(op, "acme").await;
        let receiver = Receiver::start().await;

        // A metadata address is refused whatever the operator allows.
        let refused = s
            .api(
                "POST",
                "/tenants/acme/targets",
                Some(op),
                Some(json!({"name": "x", "kind": "webhook", "url": "http://169.254.169.254/x"})),
            )
            .await;
        refused.expect_error(400, "invalid_request", "169.254.169.254");

        let created = s
            .api(
                "POST",
                "/tenants/acme/targets",
                Some(op),
                Some(json!({"name": "crm", "kind": "webhook", "url": receiver.url()})),
            )
            .await
            .expect(201);
        let secret = created["secret"].as_str().expect("secret").to_owned();
        assert!(secret.starts_with("whsec_"));
        receiver.set_secret(&secret);
        let id = created["target"]["id"].as_str().expect("id").to_owned();
        let listed = s.get("/tenants/acme/targets", op).await.expect(200);
        assert!(
            !listed.to_string().contains(&secret),
            "the secret is never shown again"
        );
        let dup = s
            .api(
                "POST",
                "/tenants/acme/targets",
                Some(op),
                Some(json!({"name": "crm", "kind": "webhook", "url": receiver.url()})),
            )
            .await;
        assert_eq!(dup.status, 409, "{}", dup.body);

        // A SCIM write reaches the receiver, signed.
        let user = s.scim_user("acme", &scim, "ada@acme.example").await;
        let got = receiver
            .wait_for(1, Duration::from_secs(30))
            .await
            .expect("delivered");
        assert!(got[0].verified, "{:?}", got[0].verify_error);
        assert_eq!(got[0].body["type"], "user.created");
        assert_eq!(got[0].body["data"]["id"], json!(user));

        let health = eventually("last success recorded", || async {
            let t = s
                .get(&format!("/tenants/acme/targets/{id}"), op)
                .await
                .expect(200);
            t["lastSuccessAt"].is_string().then_some(t)
        })
        .await;
        assert_eq!(health["enabled"], true);
        let attempts = s
            .get(&format!("/tenants/acme/targets/{id}/attempts"), op)
            .await
            .expect(200);
        assert_eq!(attempts["attempts"][0]["outcome"], "delivered");
        assert_eq!(attempts["attempts"][0]["statusCode"], 204);

        // A 4xx: a dead letter, replayed once the endpoint is fixed.
        receiver.answer(422);
        let bob = s.scim_user("acme", &scim, "bob@acme.example").await;
        let dead = eventually("a dead letter", || async {
            let d = s
                .get(
                    &format!("/tenants/acme/targets/{id}/deliveries?status=dead"),
                    op,
                )
                .await
                .expect(200);
            (!d["deliveries"].as_array()?.is_empty()).then_some(d)
        })
        .await;
        assert_eq!(dead["deliveries"][0]["resourceId"], json!(bob));
        assert_eq!(dead["deliveries"][0]["lastStatus"], 422);
        receiver.answer_ok();
        let replay = s
            .api(
                "POST",
                &format!("/tenants/acme/targets/{id}/dead-letters/replay"),
                Some(op),
                None,
            )
            .await
            .expect(200);
        assert_eq!(replay["replayed"], 1);
        eventually("the replay delivered", || async {
            receiver
                .deliveries()
                .iter()
                .any(|d| d.body["data"]["id"] == json!(bob) && d.answered == Some(204))
                .then_some(Value::Null)
        })
        .await;

        // The feed: a session, an events:read token, not a scim:write one.
        let feed = s.get("/tenants/acme/events?after=0", op).await.expect(200);
        let events = feed["events"].as_array().expect("events");
        assert!(events.len() >= 2, "{feed}");
        assert_eq!(feed["next"], events.last().expect("last")["position"]);
        let ids: Vec<&Value> = events.iter().map(|e| &e["id"]).collect();
        let webhook_ids = receiver.webhook_ids();
        assert!(
            webhook_ids.iter().all(|w| ids.iter().any(|i| *i == w)),
            "the feed has the webhooks' ids"
        );
        let issued = s
            .api(
                "POST",
                "/tenants/acme/tokens",
                Some(op),
                Some(json!({"name": "poller", "scopes": ["events:read"]})),
            )
            .await
            .expect(201);
        let poller = issued["secret"].as_str().expect("secret").to_owned();
        let polled = s
            .get("/tenants/acme/events?after=0&type=user.created", &poller)
            .await
            .expect(200);
        assert!(
            polled["events"]
                .as_array()
                .expect("events")
                .iter()
                .all(|e| e["type"] == "user.created")
        );
        // The token reads the feed and nothing else.
        let other = s.get("/tenants/acme/targets", &poller).await;
        assert_eq!(other.status, 401, "{}", other.body);
        let writer = s.get("/tenants/acme/events", &scim).await;
        assert_eq!(writer.status, 403, "{}", writer.body);
        let next = feed["next"].as_i64().expect("next");
        let empty = s
            .get(&format!("/tenants/acme/events?after={next}"), &poller)
            .await
            .expect(200);
        assert_eq!(empty["events"], json!([]));
        assert_eq!(empty["next"], next);

        // The timeline: request, role-less user (no role events), event,
        // attempts.
        let timeline = eventually("the request in the timeline", || async {
            let t = s
                .get(&format!("/tenants/acme/users/{user}/timeline"), op)
                .await
                .expect(200);
            let kinds: Vec<String> = t["entries"]
                .as_array()?
                .iter()
                .filter_map(|e| e["kind"].as_str().map(str::to_owned))
                .collect();
            (kinds.first().map(String::as_str) == Some("request")
                && kinds.iter().any(|k| k == "attempt"))
            .then_some(t)
        })
        .await;
        let kinds: Vec<&str> = timeline["entries"]
            .as_array()
            .expect("entries")
            .iter()
            .filter_map(|e| e["kind"].as_str())
            .collect();
        assert_eq!(kinds, ["request", "event", "attempt"], "{timeline}");
        let missing = s.get("/tenants/acme/users/nobody/timeline", op).await;
        assert_eq!(missing.status, 404);
        s.stop().await;
    }
}
