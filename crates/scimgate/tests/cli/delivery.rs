//! Delivery across a crash: `scimgate serve` (worker in process) is killed
//! with SIGKILL while it delivers to a slow receiver, then started again
//! on the same data: every committed event arrives, and an event sent more
//! than once is the same event under the same `webhook-id`.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Value, json};
use testkit::receiver::Receiver;

use crate::support::*;

struct Api {
    rt: tokio::runtime::Runtime,
    client: reqwest::Client,
}

impl Api {
    fn new() -> Api {
        testkit::install_tls_provider();
        Api {
            rt: tokio::runtime::Runtime::new().expect("runtime"),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
        }
    }

    fn call(
        &self,
        method: &str,
        url: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        self.rt.block_on(async {
            let mut r = self.client.request(method.parse().expect("method"), url);
            if let Some(t) = token {
                r = r.bearer_auth(t);
            }
            if let Some(b) = body {
                r = r
                    .header("content-type", "application/json")
                    .body(b.to_string());
            }
            let resp = r.send().await.expect("request");
            let status = resp.status().as_u16();
            let text = resp.text().await.expect("body");
            (status, serde_json::from_str(&text).unwrap_or(Value::Null))
        })
    }
}

fn serve(sandbox: &Sandbox) -> Server {
    let mut cmd = sandbox.cmd(&["serve", "--listen", "127.0.0.1:0"]);
    cmd.env("SCIMGATE_DELIVERY_ALLOW_PRIVATE_TARGETS", "true");
    Server::start(cmd)
}

#[test]
fn a_killed_server_delivers_everything_after_restart() {
    let sandbox = Sandbox::new();
    let api = Api::new();
    let receiver = api.rt.block_on(Receiver::start());
    let server = serve(&sandbox);
    let banner = server.banner().expect("banner");
    let base = server.listen_url.clone();
    let login = |base: &str| {
        let (status, body) = api.call(
            "POST",
            &format!("{base}/admin/v1/login"),
            None,
            Some(json!({"email": banner.operator_email, "password": banner.operator_password})),
        );
        assert_eq!(status, 200, "{body}");
        body["token"].as_str().expect("session").to_owned()
    };
    let jwt = login(&base);
    let (status, created) = api.call(
        "POST",
        &format!("{base}/admin/v1/tenants/default/targets"),
        Some(&jwt),
        Some(json!({"name": "app", "kind": "webhook", "url": receiver.url()})),
    );
    assert_eq!(status, 201, "{created}");
    receiver.set_secret(created["secret"].as_str().expect("secret"));
    let post = |i: usize| {
        let reply = http().post(
            &format!("{}/Users", banner.scim_url),
            &banner.token,
            &user(&format!("u{i}")),
        );
        assert_eq!(reply.status, 201, "{}", reply.text);
    };
    // Half delivered and acknowledged...
    for i in 0..30 {
        post(i);
    }
    assert!(eventually(Duration::from_secs(30), || receiver
        .webhook_ids()
        .len()
        >= 30));
    // ...then the receiver stops answering, and the kill lands while
    // deliveries are in flight.
    receiver.hang();
    for i in 30..60 {
        post(i);
    }
    assert!(eventually(Duration::from_secs(30), || receiver.count() > 30));
    server.proc.signal("KILL");
    let mut proc = server.proc;
    proc.wait(STOP);

    receiver.answer_ok();
    let server = serve(&sandbox);
    let base = server.listen_url.clone();
    let jwt = login(&base);
    // Every committed event, from the feed (the same ids as the webhooks).
    let (status, feed) = api.call(
        "GET",
        &format!("{base}/admin/v1/tenants/default/events?after=0&limit=100"),
        Some(&jwt),
        None,
    );
    assert_eq!(status, 200, "{feed}");
    let ids: Vec<String> = feed["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["id"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(ids.len(), 60, "one user.created per committed POST");
    let all_arrived = eventually(Duration::from_secs(60), || {
        let got = receiver.webhook_ids();
        ids.iter().all(|id| got.contains(id))
    });
    assert!(all_arrived, "missing: {:?}", {
        let got = receiver.webhook_ids();
        ids.iter()
            .filter(|id| !got.contains(id))
            .collect::<Vec<_>>()
    });
    // A duplicate is the same event: same id, same body.
    let mut bodies: HashMap<String, Value> = HashMap::new();
    for d in receiver.deliveries() {
        assert!(d.verified, "{:?}", d.verify_error);
        let id = d.webhook_id.clone().expect("webhook-id");
        if let Some(seen) = bodies.get(&id) {
            assert_eq!(seen, &d.body, "a redelivery of {id} changed");
        }
        bodies.insert(id, d.body.clone());
    }
    let (status, output) = server.terminate();
    assert_eq!(status.code(), Some(0), "{output}");
}

/// The `target` commands on the embedded database: create (the secret
/// printed once), list, disable, dead letters, delete; an internal address
/// is refused unless the operator allows it.
#[test]
fn target_commands_manage_a_tenants_targets() {
    let sandbox = Sandbox::new();
    let created = run(sandbox.cmd(&["tenant", "create", "acme", "--json"]));
    assert!(created.status.success(), "{}", created.describe());
    let refused = run(sandbox.cmd(&[
        "target",
        "create",
        "acme",
        "app",
        "--url",
        "http://10.1.2.3/hook",
    ]));
    assert!(!refused.status.success());
    assert!(
        refused.stderr.contains("delivery_allow_private_targets"),
        "{}",
        refused.describe()
    );
    let allowed = |args: &[&str]| {
        let mut cmd = sandbox.cmd(args);
        cmd.env("SCIMGATE_DELIVERY_ALLOW_PRIVATE_TARGETS", "true");
        run(cmd)
    };
    let target = allowed(&[
        "target",
        "create",
        "acme",
        "app",
        "--url",
        "http://10.1.2.3/hook",
        "--event-type",
        "user.created,user.deleted",
        "--json",
    ])
    .json();
    let secret = target["secret"].as_str().expect("secret");
    assert!(secret.starts_with("whsec_"));
    assert_eq!(
        target["target"]["eventTypes"],
        json!(["user.created", "user.deleted"])
    );
    let id = target["target"]["id"].as_str().expect("id").to_owned();
    let list = run(sandbox.cmd(&["target", "list", "acme", "--json"])).json();
    assert_eq!(list["targets"][0]["id"], json!(id));
    assert!(
        !list.to_string().contains(secret),
        "the secret is shown once"
    );
    let disabled =
        run(sandbox.cmd(&["target", "update", "acme", &id, "--disable", "--json"])).json();
    assert_eq!(disabled["enabled"], false);
    let dead = run(sandbox.cmd(&["target", "dead-letters", "acme", &id, "--json"])).json();
    assert_eq!(dead["deadLetters"], json!([]));
    let rotated = run(sandbox.cmd(&["target", "rotate-secret", "acme", &id, "--json"])).json();
    assert_ne!(rotated["secret"].as_str(), Some(secret));

    // Its attribute mapping: refused with the attribute named, then stored
    // at version 1, shown, previewed; a stale version is refused.
    let bad = sandbox.write(
        "bad.json",
        r#"{"users": {"attributes": [{"target": "active", "value": "maybe"}]}}"#,
    );
    let bad = bad.to_str().expect("path");
    let refused = run(sandbox.cmd(&["target", "set-mapping", "acme", &id, "--file", bad]));
    assert!(!refused.status.success());
    assert!(
        refused
            .stderr
            .contains("users.attributes[0] (target \"active\")"),
        "{}",
        refused.describe()
    );
    let good = sandbox.write(
        "good.json",
        r#"{"mapping": {"users": {"attributes": [{"target": "login", "source": "userName", "transform": "lower"}]}}}"#,
    );
    let good = good.to_str().expect("path");
    let set = |if_match: &str| {
        run(sandbox.cmd(&[
            "target",
            "set-mapping",
            "acme",
            &id,
            "--file",
            good,
            "--if-match",
            if_match,
            "--json",
        ]))
    };
    let stored = set("0").json();
    assert_eq!(stored["version"], 1);
    assert_eq!(
        stored["mapping"]["users"]["attributes"][0]["target"],
        "login"
    );
    let shown = run(sandbox.cmd(&["target", "mapping", "acme", &id, "--json"])).json();
    assert_eq!(shown, stored);
    let stale = set("0");
    assert!(!stale.status.success(), "{}", stale.describe());
    // With --resend, the change queues its re-send job.
    let resent = run(sandbox.cmd(&[
        "target",
        "set-mapping",
        "acme",
        &id,
        "--file",
        good,
        "--resend",
        "--json",
    ]))
    .json();
    assert_eq!(resent["version"], 2, "{resent}");
    let job = resent["resendJob"].as_str().expect("a job id");
    assert!(!job.is_empty());
    let now = run(sandbox.cmd(&["target", "mapping", "acme", &id, "--json"])).json();
    assert_eq!(now["version"], 2, "{now}");
    let preview = run(sandbox.cmd(&[
        "target",
        "preview-mapping",
        "acme",
        &id,
        "--file",
        good,
        "--json",
    ]))
    .json();
    assert_eq!(preview["users"], json!([]), "no users yet");
    // A profile is an outbound SCIM target's: a webhook shows the
    // defaults and refuses one.
    let profile = run(sandbox.cmd(&["target", "profile", "acme", &id, "--json"])).json();
    assert_eq!(
        profile,
        json!({"membersPerPatch": 100, "updateMethod": "put", "requestsPerSecond": null,
               "flattenGroups": false})
    );
    let refused = run(sandbox.cmd(&[
        "target",
        "set-profile",
        "acme",
        &id,
        "--members-per-patch",
        "50",
    ]));
    assert!(!refused.status.success());
    assert!(
        refused
            .stderr
            .contains("only outbound SCIM targets have a profile"),
        "{}",
        refused.describe()
    );
    let deleted = run(sandbox.cmd(&["target", "delete", "acme", &id]));
    assert!(deleted.status.success(), "{}", deleted.describe());
    let empty = run(sandbox.cmd(&["target", "list", "acme", "--json"])).json();
    assert_eq!(empty["targets"], json!([]));
}

/// `user timeline` shows a user's history from the embedded database.
#[test]
fn user_timeline_lists_a_users_history() {
    let sandbox = Sandbox::new();
    let server = serve(&sandbox);
    let banner = server.banner().expect("banner");
    let reply = http().post(
        &format!("{}/Users", banner.scim_url),
        &banner.token,
        &user("ada"),
    );
    assert_eq!(reply.status, 201, "{}", reply.text);
    let id = reply.json()["id"].as_str().expect("id").to_owned();
    let (status, output) = server.terminate();
    assert_eq!(status.code(), Some(0), "{output}");
    let timeline = run(sandbox.cmd(&["user", "timeline", "default", &id, "--json"])).json();
    let kinds: Vec<&str> = timeline["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert_eq!(kinds, ["request", "event"], "{timeline}");
    let missing = run(sandbox.cmd(&["user", "timeline", "default", "nobody"]));
    assert!(!missing.status.success());
    assert!(
        missing.stderr.contains("not found"),
        "{}",
        missing.describe()
    );
}
