//! A split deployment: `scimgate admin`, two `scimgate gateway` and a
//! `scimgate worker`, real processes against one PostgreSQL database, each
//! on its own 127.0.0.1 port; and a gateway whose database goes away and
//! comes back.

use std::time::{Duration, Instant};

use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use testkit::receiver::Receiver;
use testkit::{PrivatePostgres, TestDb};

use crate::support::*;

/// The admin session key every instance shares (`kid:secret`, secret of at
/// least 32 bytes).
pub(crate) const ADMIN_JWT_KEYS: &str = "split-1:0123456789abcdef0123456789abcdef-split-test";
/// The delivery secrets key every instance shares: base64 of 32 bytes.
pub(crate) const DELIVERY_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
/// The auth-revision poll of every process (and the gateway's database check).
const POLL_SECS: u64 = 1;
/// How long a request may take, at most, while the database is down.
const REQUEST_LIMIT: Duration = Duration::from_secs(15);
/// A request answered "at once" (the gateway knows the database is down).
const FAST: Duration = Duration::from_secs(1);

const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

/// One HTTP answer, with how long it took.
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Value,
    pub(crate) elapsed: Duration,
}

impl Answer {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// An HTTP client on a multi-threaded runtime (the webhook receiver runs on
/// it too), whose every request gives up after [`REQUEST_LIMIT`]: a server
/// that hangs fails the test instead of stalling it.
pub(crate) struct Client {
    pub(crate) rt: tokio::runtime::Runtime,
    client: reqwest::Client,
}

impl Client {
    pub(crate) fn new() -> Client {
        testkit::install_tls_provider();
        Client {
            rt: tokio::runtime::Runtime::new().expect("runtime"),
            client: reqwest::Client::builder()
                .timeout(REQUEST_LIMIT)
                .pool_max_idle_per_host(0)
                .build()
                .expect("client"),
        }
    }

    pub(crate) fn call(
        &self,
        method: &str,
        url: &str,
        bearer: Option<&str>,
        body: Option<&Value>,
    ) -> Answer {
        self.rt.block_on(async {
            let mut request = self.client.request(method.parse().expect("method"), url);
            if let Some(token) = bearer {
                request = request.bearer_auth(token);
            }
            if let Some(body) = body {
                request = request
                    .header("content-type", "application/scim+json")
                    .body(body.to_string());
            }
            let started = Instant::now();
            let response = request
                .send()
                .await
                .unwrap_or_else(|e| panic!("{method} {url}: no answer: {e}"));
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let text = response.text().await.expect("body");
            Answer {
                status,
                headers,
                body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
                elapsed: started.elapsed(),
            }
        })
    }

    pub(crate) fn get(&self, url: &str, bearer: Option<&str>) -> Answer {
        self.call("GET", url, bearer, None)
    }
}

/// Starts `scimgate <process>` on a free port against `database_url`, with
/// the settings every instance of a deployment shares.
fn start(sandbox: &Sandbox, process: &str, database_url: &str) -> Server {
    start_with(sandbox, process, database_url, &[])
}

/// As [`start`], with more environment (later settings win).
pub(crate) fn start_with(
    sandbox: &Sandbox,
    process: &str,
    database_url: &str,
    env: &[(&str, &str)],
) -> Server {
    let mut cmd = sandbox.cmd(&[process, "--listen", "127.0.0.1:0"]);
    cmd.env("SCIMGATE_DATABASE_URL", database_url)
        .env("SCIMGATE_ADMIN_JWT_KEYS", ADMIN_JWT_KEYS)
        .env("SCIMGATE_DELIVERY_SECRETS_KEY", DELIVERY_KEY)
        .env("SCIMGATE_AUTH_POLL_INTERVAL_SECS", POLL_SECS.to_string())
        // The test's webhook receiver listens on 127.0.0.1.
        .env("SCIMGATE_DELIVERY_ALLOW_PRIVATE_TARGETS", "true");
    for (key, value) in env {
        cmd.env(key, value);
    }
    Server::start(cmd)
}

/// `/readyz` answers 200 with the database check passed.
fn assert_ready(client: &Client, base: &str, what: &str) {
    let r = client.get(&format!("{base}/readyz"), None);
    assert_eq!(r.status, 200, "{what} /readyz: {}", r.body);
    assert_eq!(
        r.body,
        json!({"status": "ready", "checks": {"database": "ok"}}),
        "{what}"
    );
    assert_eq!(
        client.get(&format!("{base}/healthz"), None).status,
        200,
        "{what}"
    );
    let metrics = client.get(&format!("{base}/metrics"), None);
    assert_eq!(metrics.status, 200, "{what}");
    let text = metrics.body.as_str().unwrap_or_default();
    assert!(text.contains("scimgate_build_info"), "{what}: {text}");
}

/// Asserts a SCIM error body (RFC 7644 §3.12) with `status`.
fn assert_scim_error(r: &Answer, status: u16, what: &str) {
    assert_eq!(r.status, status, "{what}: {}", r.body);
    assert_eq!(
        r.body["schemas"],
        json!([ERROR_SCHEMA]),
        "{what}: {}",
        r.body
    );
    assert_eq!(r.body["status"], json!(status.to_string()), "{what}");
    assert!(r.body["detail"].is_string(), "{what}: {}", r.body);
    assert!(
        r.header("content-type")
            .is_some_and(|c| c.starts_with("application/scim+json")),
        "{what}: {:?}",
        r.header("content-type")
    );
}

/// Logs in with the first-start operator of `banner` on the admin process
/// at `adm` and creates tenant `acme` with a token; returns (session,
/// token, tenant id).
pub(crate) fn acme(client: &Client, adm: &str, banner: &Banner) -> (String, String, String) {
    let login = client.call(
        "POST",
        &format!("{adm}/admin/v1/login"),
        None,
        Some(&json!({"email": banner.operator_email, "password": banner.operator_password})),
    );
    assert_eq!(login.status, 200, "{}", login.body);
    let jwt = login.body["token"].as_str().expect("session").to_owned();
    let created = client.call(
        "POST",
        &format!("{adm}/admin/v1/tenants"),
        Some(&jwt),
        Some(&json!({"slug": "acme", "name": "Acme", "issueToken": true})),
    );
    assert_eq!(created.status, 201, "{}", created.body);
    let token = created.body["token"]["secret"]
        .as_str()
        .expect("token secret")
        .to_owned();
    let id = created.body["tenant"]["id"]
        .as_str()
        .expect("tenant id")
        .to_owned();
    (jwt, token, id)
}

pub(crate) fn new_user(user_name: &str) -> Value {
    json!({
        "schemas": [USER_SCHEMA],
        "userName": user_name,
        "active": true,
        "name": {"givenName": "Split", "familyName": "Test"},
    })
}

/// Whether `reply` is a ListResponse holding exactly `user_name`.
fn lists(reply: &Answer, user_name: &str) -> bool {
    reply.status == 200
        && reply.body["totalResults"] == 1
        && reply.body["Resources"][0]["userName"] == user_name
}

#[test]
fn split_processes_share_one_database() {
    let client = Client::new();
    let db = client
        .rt
        .block_on(testkit::fresh_database(TestDb::Postgres));
    let sandbox = Sandbox::new();

    // A gateway first, on the empty database: it migrates but creates
    // nothing (no operator, no tenant, nothing printed)...
    let gateway_a = start(&sandbox, "gateway", &db.url);
    assert!(
        gateway_a.banner().is_none() && !gateway_a.proc.stdout().contains("Password:"),
        "a gateway printed secrets:\n{}",
        gateway_a.proc.output()
    );
    // (Logged before the listening line, but on the other pipe.)
    let warned = eventually(Duration::from_secs(5), || {
        gateway_a
            .proc
            .stderr()
            .contains("a gateway does not create them")
    });
    assert!(warned, "{}", gateway_a.proc.output());
    // ...so the admin process's first start still does, and shows them.
    let admin = start(&sandbox, "admin", &db.url);
    let banner = admin
        .banner()
        .unwrap_or_else(|| panic!("no first-start banner\n{}", admin.proc.output()));
    let gateway_b = start(&sandbox, "gateway", &db.url);
    let worker = start(&sandbox, "worker", &db.url);
    assert!(gateway_b.banner().is_none() && worker.banner().is_none());
    let (a, b) = (gateway_a.listen_url.clone(), gateway_b.listen_url.clone());
    let (adm, wrk) = (admin.listen_url.clone(), worker.listen_url.clone());

    // Every process is ready, and says so for its database.
    for (base, what) in [
        (&a, "gateway A"),
        (&b, "gateway B"),
        (&adm, "admin"),
        (&wrk, "worker"),
    ] {
        assert_ready(&client, base, what);
    }

    // Operator login and a tenant, through the admin process.
    let (jwt, token, _) = acme(&client, &adm, &banner);

    // Each process serves only its own part.
    for (url, what) in [
        (format!("{a}/admin/v1/tenants"), "admin API on a gateway"),
        (format!("{b}/console"), "console on a gateway"),
        (format!("{wrk}/admin/v1/tenants"), "admin API on the worker"),
    ] {
        assert_eq!(client.get(&url, Some(&jwt)).status, 404, "{what}");
    }
    for (url, what) in [
        (format!("{adm}/scim/v2/Users"), "SCIM on the admin process"),
        (
            format!("{adm}/tenants/acme/scim/v2/Users"),
            "SCIM on the admin process",
        ),
        (format!("{wrk}/scim/v2/Users"), "SCIM on the worker"),
    ] {
        assert_eq!(client.get(&url, Some(&token)).status, 404, "{what}");
    }

    // Users written through one gateway are read through the other.
    let gateways = [&a, &b];
    for i in 0..4 {
        let (writer, reader) = (gateways[i % 2], gateways[(i + 1) % 2]);
        let user_name = format!("split{i}@acme.test");
        let created = client.call(
            "POST",
            &format!("{writer}/tenants/acme/scim/v2/Users"),
            Some(&token),
            Some(&new_user(&user_name)),
        );
        assert_eq!(created.status, 201, "{}", created.body);
        let id = created.body["id"].as_str().expect("id");
        let read = client.get(&format!("{reader}/scim/v2/Users/{id}"), Some(&token));
        assert_eq!(read.status, 200, "{}", read.body);
        assert_eq!(read.body["userName"], user_name.as_str());
        let filter = format!("{reader}/scim/v2/Users?filter=userName%20eq%20%22{user_name}%22");
        assert!(lists(&client.get(&filter, Some(&token)), &user_name));
    }
    let all = client.get(&format!("{a}/scim/v2/Users"), Some(&token));
    assert_eq!(all.body["totalResults"], 4, "{}", all.body);

    // The admin process verifies SCIM tokens itself (the event feed).
    let reader = client.call(
        "POST",
        &format!("{adm}/admin/v1/tenants/acme/tokens"),
        Some(&jwt),
        Some(&json!({"name": "feed", "scopes": ["events:read"]})),
    );
    assert_eq!(reader.status, 201, "{}", reader.body);
    let feed_token = reader.body["secret"].as_str().expect("secret");
    let feed = client.get(
        &format!("{adm}/admin/v1/tenants/acme/events?after=0&limit=100"),
        Some(feed_token),
    );
    assert_eq!(feed.status, 200, "{}", feed.body);
    assert!(
        feed.body["events"].as_array().is_some_and(|e| e.len() >= 4),
        "{}",
        feed.body
    );

    // A token revoked through the admin API stops working on both
    // gateways within the poll interval, though both had it cached.
    let issued = client.call(
        "POST",
        &format!("{adm}/admin/v1/tenants/acme/tokens"),
        Some(&jwt),
        Some(&json!({"name": "rotating", "scopes": ["scim:write"]})),
    );
    assert_eq!(issued.status, 201, "{}", issued.body);
    let doomed = issued.body["secret"].as_str().expect("secret").to_owned();
    let doomed_id = issued.body["id"].as_str().expect("id").to_owned();
    for gateway in gateways {
        let r = client.get(&format!("{gateway}/scim/v2/Users"), Some(&doomed));
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let revoked = client.call(
        "DELETE",
        &format!("{adm}/admin/v1/tenants/acme/tokens/{doomed_id}"),
        Some(&jwt),
        None,
    );
    assert!(revoked.status < 300, "{} {}", revoked.status, revoked.body);
    let revoked_at = Instant::now();
    // The poll interval, plus a poll in flight and the request itself.
    let limit = Duration::from_secs(POLL_SECS * 3 + 2);
    for gateway in gateways {
        let refused = eventually(limit, || {
            client
                .get(&format!("{gateway}/scim/v2/Users"), Some(&doomed))
                .status
                == 401
        });
        assert!(
            refused,
            "{gateway} still accepts a token revoked {:?} ago",
            revoked_at.elapsed()
        );
        let still = client.get(&format!("{gateway}/scim/v2/Users"), Some(&token));
        assert_eq!(still.status, 200, "the other token is unaffected");
    }

    // The worker delivers what a gateway commits to the tenant's webhook.
    let receiver = client.rt.block_on(Receiver::start());
    let target = client.call(
        "POST",
        &format!("{adm}/admin/v1/tenants/acme/targets"),
        Some(&jwt),
        Some(&json!({"name": "app", "kind": "webhook", "url": receiver.url()})),
    );
    assert_eq!(target.status, 201, "{}", target.body);
    receiver.set_secret(target.body["secret"].as_str().expect("secret"));
    let created = client.call(
        "POST",
        &format!("{b}/scim/v2/Users"),
        Some(&token),
        Some(&new_user("delivered@acme.test")),
    );
    assert_eq!(created.status, 201, "{}", created.body);
    let delivered = eventually(Duration::from_secs(60), || {
        receiver
            .deliveries()
            .iter()
            .any(|d| d.verified && d.body.to_string().contains("delivered@acme.test"))
    });
    assert!(
        delivered,
        "no verified delivery of the new user: {:?}\n{}",
        receiver
            .deliveries()
            .iter()
            .map(|d| &d.body)
            .collect::<Vec<_>>(),
        worker.proc.output()
    );

    for server in [gateway_a, gateway_b, admin, worker] {
        let (status, output) = server.terminate();
        assert_eq!(status.code(), Some(0), "{output}");
    }
}

#[test]
fn a_gateway_answers_503_while_its_database_is_down_and_recovers() {
    let client = Client::new();
    let mut pg = PrivatePostgres::new();
    let url = pg.url();
    let sandbox = Sandbox::new();

    let tenant =
        run(sandbox.cmd(&["tenant", "create", "acme", "--json", "--database-url", &url])).json();
    let token = tenant["token"].as_str().expect("token").to_owned();
    let gateway = start(&sandbox, "gateway", &url);
    let base = gateway.listen_url.clone();
    let users = format!("{base}/scim/v2/Users");
    let created = client.call(
        "POST",
        &users,
        Some(&token),
        Some(&new_user("before@acme.test")),
    );
    assert_eq!(created.status, 201, "{}", created.body);
    assert_ready(&client, &base, "gateway");

    pg.stop();
    let stopped = Instant::now();

    // Every request is answered within the client's limit (a panic in
    // `call` otherwise), with 503 and a SCIM error body: the token is
    // cached, but the data is not there to read or write.
    let r = client.get(&users, Some(&token));
    assert_scim_error(&r, 503, "GET /Users, database down");
    let r = client.call(
        "POST",
        &users,
        Some(&token),
        Some(&new_user("during@acme.test")),
    );
    assert_scim_error(&r, 503, "POST /Users, database down");
    let ready = client.get(&format!("{base}/readyz"), None);
    assert_eq!(ready.status, 503, "{}", ready.body);
    assert_eq!(
        ready.body,
        json!({"status": "unavailable", "checks": {"database": "unavailable"}})
    );
    assert_eq!(client.get(&format!("{base}/healthz"), None).status, 200);

    // Once the gateway's own check has seen the outage, requests are
    // refused at once, telling the client when to retry; a token it has
    // never seen gets the same answer (it cannot be checked), not 401.
    let mut last = None;
    let fast = eventually(Duration::from_secs(15), || {
        let r = client.get(&users, Some(&token));
        let fast = r.status == 503 && r.elapsed < FAST;
        last = Some(r);
        fast
    });
    let last = last.expect("an answer");
    assert!(
        fast,
        "still slow {:?} after the stop: {} in {:?}",
        stopped.elapsed(),
        last.status,
        last.elapsed
    );
    assert_scim_error(&last, 503, "GET /Users, outage known");
    assert!(last.header("retry-after").is_some(), "{:?}", last.headers);
    let stranger = client.get(&users, Some("sgt_never-issued-token"));
    assert_scim_error(&stranger, 503, "unknown token, outage known");
    assert!(stranger.elapsed < FAST, "{:?}", stranger.elapsed);
    let metrics = client.get(&format!("{base}/metrics"), None);
    let text = metrics.body.as_str().unwrap_or_default();
    assert!(text.contains("scimgate_database_reachable 0"), "{text}");

    // The database comes back: the gateway serves again by itself, and
    // what was committed before the stop is there.
    pg.start();
    let back = eventually(Duration::from_secs(30), || {
        client.get(&users, Some(&token)).status == 200
    });
    assert!(
        back,
        "not serving 30 s after the database came back\n{}",
        gateway.proc.output()
    );
    let filter = format!("{users}?filter=userName%20eq%20%22before@acme.test%22");
    assert!(lists(
        &client.get(&filter, Some(&token)),
        "before@acme.test"
    ));
    let during = format!("{users}?filter=userName%20eq%20%22during@acme.test%22");
    assert_eq!(client.get(&during, Some(&token)).body["totalResults"], 0);
    let created = client.call(
        "POST",
        &users,
        Some(&token),
        Some(&new_user("after@acme.test")),
    );
    assert_eq!(created.status, 201, "{}", created.body);
    assert_ready(&client, &base, "gateway after the outage");
    let (status, output) = gateway.terminate();
    assert_eq!(status.code(), Some(0), "{output}");
}
