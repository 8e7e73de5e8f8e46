//! The quarantine guard end to end (docs/quarantine-guard.md): failing
//! SCIM requests raise a tenant's failure ratio in `/metrics` and in the
//! admin API, with the failing requests and what to fix; other tenants
//! are untouched. On SQLite and on PostgreSQL.

use std::time::Duration;

use serde_json::{Value, json};
use testkit::TestDb;

use crate::support::*;

/// The flush (5 s) and the sweep (15 s) with room to spare.
const GUARD: Duration = Duration::from_secs(90);

fn admin_call(method: &str, url: &str, jwt: Option<&str>, body: Option<Value>) -> (u16, Value) {
    http().block_on(async {
        let client = reqwest::Client::new();
        let mut request = client.request(method.parse().expect("method"), url);
        if let Some(jwt) = jwt {
            request = request.bearer_auth(jwt);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = request.send().await.expect("admin request");
        let status = response.status().as_u16();
        let text = response.text().await.expect("admin body");
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    })
}

/// The value of the sample of `name` whose labels include every one of
/// `labels` (`key="value"`), if exported.
fn sample(metrics: &str, name: &str, labels: &[&str]) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?;
        let (set, value) = rest.strip_prefix('{')?.split_once("} ")?;
        labels
            .iter()
            .all(|l| set.split(',').any(|p| p == *l))
            .then(|| value.trim().parse().ok())?
    })
}

#[test]
fn failing_requests_flag_the_tenant_in_metrics_and_the_admin_api() {
    flags_a_failing_tenant(TestDb::Sqlite);
}

#[test]
fn failing_requests_flag_the_tenant_on_postgres() {
    flags_a_failing_tenant(TestDb::Postgres);
}

fn flags_a_failing_tenant(which: TestDb) {
    let sandbox = Sandbox::new();
    let mut cmd = sandbox.cmd(&["serve", "--listen", "127.0.0.1:0"]);
    let db = (which == TestDb::Postgres)
        .then(|| http().block_on(testkit::fresh_database(TestDb::Postgres)));
    if let Some(db) = &db {
        cmd.env("SCIMGATE_DATABASE_URL", &db.url);
    }
    let server = Server::start(cmd);
    let banner = server.banner().expect("banner");
    let base = server.listen_url.clone();
    let users = format!("{}/Users", banner.scim_url);

    // Five requests that succeed, one 404 that is not a failure...
    let reply = http().post(&users, &banner.token, &user("ada"));
    assert_eq!(reply.status, 201, "{}", reply.text);
    for _ in 0..4 {
        let reply = http().get(
            &format!("{users}?filter=userName%20eq%20%22ada%22"),
            Some(&banner.token),
        );
        assert_eq!(reply.status, 200, "{}", reply.text);
    }
    let reply = http().get(&format!("{users}/no-such-id"), Some(&banner.token));
    assert_eq!(reply.status, 404, "{}", reply.text);
    // ...then 25 refused filters and 2 duplicates: 27 of 33 fail.
    for _ in 0..25 {
        let reply = http().get(
            &format!("{users}?filter=userName%20sounds%20like%20%22ada%22"),
            Some(&banner.token),
        );
        assert_eq!(reply.status, 400, "{}", reply.text);
    }
    for _ in 0..2 {
        let reply = http().post(&users, &banner.token, &user("ada"));
        assert_eq!(reply.status, 409, "{}", reply.text);
    }

    // The gateway's counters at once.
    let metrics = http().get(&format!("{base}/metrics"), None).text;
    let failures = "scimgate_scim_request_failures_total";
    assert_eq!(
        sample(
            &metrics,
            failures,
            &["tenant=\"default\"", "cause=\"validation\""]
        ),
        Some(25.0),
        "{metrics}"
    );
    assert_eq!(
        sample(
            &metrics,
            failures,
            &["tenant=\"default\"", "cause=\"conflict\""]
        ),
        Some(2.0),
        "{metrics}"
    );
    assert_eq!(
        sample(
            &metrics,
            "scimgate_scim_requests_total",
            &[
                "tenant=\"default\"",
                "resource=\"User\"",
                "method=\"GET\"",
                "status=\"400\""
            ]
        ),
        Some(25.0),
        "{metrics}"
    );

    // The fleet-wide gauges once the counts are flushed and read.
    let mut last = String::new();
    let flagged = eventually(GUARD, || {
        last = http().get(&format!("{base}/metrics"), None).text;
        sample(
            &last,
            "scimgate_quarantine_at_risk",
            &["tenant=\"default\""],
        ) == Some(1.0)
    });
    assert!(flagged, "never flagged: {last}");
    let ratio = sample(
        &last,
        "scimgate_quarantine_failure_ratio",
        &["tenant=\"default\""],
    )
    .expect("ratio exported");
    assert!((ratio - 27.0 / 33.0).abs() < 1e-9, "ratio {ratio}");

    // The admin API says the same, with the failing requests and advice.
    let (status, session) = admin_call(
        "POST",
        &format!("{base}/admin/v1/login"),
        None,
        Some(json!({"email": banner.operator_email, "password": banner.operator_password})),
    );
    assert_eq!(status, 200, "{session}");
    let jwt = session["token"].as_str().expect("session token");
    let (status, risk) = admin_call(
        "GET",
        &format!("{base}/admin/v1/tenants/default/quarantine-risk"),
        Some(jwt),
        None,
    );
    assert_eq!(status, 200, "{risk}");
    assert_eq!(risk["requests"], 33, "{risk}");
    assert_eq!(risk["failures"], 27, "{risk}");
    assert_eq!(risk["atRisk"], true, "{risk}");
    assert_eq!(risk["level"], "critical", "{risk}");
    assert_eq!(risk["byCause"]["validation"], 25, "{risk}");
    assert_eq!(risk["byCause"]["conflict"], 2, "{risk}");
    assert_eq!(risk["byCause"]["auth"], 0, "{risk}");
    let top = risk["topFailures"].as_array().expect("topFailures");
    assert_eq!(top.len(), 2, "{risk}");
    assert_eq!(top[0]["method"], "GET", "{risk}");
    assert_eq!(top[0]["route"], "/tenants/{slug}/scim/v2/Users", "{risk}");
    assert_eq!(top[0]["status"], 400, "{risk}");
    assert_eq!(top[0]["scimType"], "invalidFilter", "{risk}");
    assert_eq!(top[0]["count"], 25, "{risk}");
    assert!(
        top[0]["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "{risk}"
    );
    assert!(
        top[0]["advice"]
            .as_str()
            .is_some_and(|a| a.contains("filter")),
        "{risk}"
    );
    assert_eq!(top[1]["status"], 409, "{risk}");
    assert_eq!(top[1]["cause"], "conflict", "{risk}");

    // Another tenant's view is its own: nothing counted, nothing flagged.
    let (status, created) = admin_call(
        "POST",
        &format!("{base}/admin/v1/tenants"),
        Some(jwt),
        Some(json!({"slug": "quiet", "name": "Quiet"})),
    );
    assert_eq!(status, 201, "{created}");
    let (status, quiet) = admin_call(
        "GET",
        &format!("{base}/admin/v1/tenants/quiet/quarantine-risk"),
        Some(jwt),
        None,
    );
    assert_eq!(status, 200, "{quiet}");
    assert_eq!(quiet["requests"], 0, "{quiet}");
    assert_eq!(quiet["atRisk"], false, "{quiet}");
    assert_eq!(quiet["topFailures"], json!([]), "{quiet}");
    let (status, missing) = admin_call(
        "GET",
        &format!("{base}/admin/v1/tenants/nobody/quarantine-risk"),
        Some(jwt),
        None,
    );
    assert_eq!(status, 404, "{missing}");

    let (status, output) = server.terminate();
    assert_eq!(status.code(), Some(0), "{output}");
}
