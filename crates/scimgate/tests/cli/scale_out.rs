//! A scale-out deployment with Redis: `scimgate admin`, two `scimgate
//! gateway` and two `scimgate worker` processes against one PostgreSQL
//! database and one `redis-server`, all real, on 127.0.0.1.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use testkit::TestDb;
use testkit::receiver::Receiver;
use testkit::redis_server::RedisServer;

use crate::split::{Client, acme, new_user, start_with};
use crate::support::*;

/// The auth poll is set to its longest, so only Redis can spread a
/// revocation within a second.
const SLOW_POLL: &str = "60";
/// How soon a revocation must take effect on every gateway.
const REVOCATION: Duration = Duration::from_secs(1);

/// The settings every process of the deployment shares.
fn shared_env(redis: &RedisServer) -> Vec<(&'static str, String)> {
    vec![
        ("SCIMGATE_REDIS_URL", redis.url()),
        ("SCIMGATE_AUTH_POLL_INTERVAL_SECS", SLOW_POLL.to_owned()),
        ("SCIMGATE_RATE_LIMIT_PER_SECOND", "2".to_owned()),
        ("SCIMGATE_RATE_LIMIT_BURST", "12".to_owned()),
    ]
}

fn start(sandbox: &Sandbox, process: &str, db: &str, env: &[(&'static str, String)]) -> Server {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    start_with(sandbox, process, db, &env)
}

/// The operator's session, tenant `acme`'s token and its id.
fn tenant(client: &Client, admin: &Server) -> (String, String, String) {
    let banner = admin
        .banner()
        .unwrap_or_else(|| panic!("no first-start banner\n{}", admin.proc.output()));
    acme(client, &admin.listen_url, &banner)
}

#[test]
fn gateways_share_revocations_and_the_rate_limit_through_redis() {
    let client = Client::new();
    let db = client
        .rt
        .block_on(testkit::fresh_database(TestDb::Postgres));
    let mut redis = RedisServer::start();
    let sandbox = Sandbox::new();
    let env = shared_env(&redis);
    let admin = start(&sandbox, "admin", &db.url, &env);
    let gateway_a = start(&sandbox, "gateway", &db.url, &env);
    let gateway_b = start(&sandbox, "gateway", &db.url, &env);
    let (a, b, adm) = (
        gateway_a.listen_url.clone(),
        gateway_b.listen_url.clone(),
        admin.listen_url.clone(),
    );
    for base in [&a, &b, &adm] {
        let r = client.get(&format!("{base}/readyz"), None);
        assert_eq!(
            (r.status, r.body),
            (
                200,
                json!({"status": "ready", "checks": {"database": "ok", "redis": "ok"}})
            ),
            "{base}"
        );
    }
    let (jwt, token, _) = tenant(&client, &admin);

    // A token both gateways have verified and cached is refused by both
    // within a second of its revocation, though neither polls for a minute.
    let gateways = [&a, &b];
    let (doomed, doomed_id) = accepted_token(&client, &adm, &jwt, "doomed", gateways);
    let revoked = client.call(
        "DELETE",
        &format!("{adm}/admin/v1/tenants/acme/tokens/{doomed_id}"),
        Some(&jwt),
        None,
    );
    assert!(revoked.status < 300, "{} {}", revoked.status, revoked.body);
    refused_soon(&client, &doomed, gateways, "the admin API");

    // The same through the CLI, which runs against the database beside the
    // servers: it tells them through Redis too.
    let (doomed, doomed_id) = accepted_token(&client, &adm, &jwt, "doomed-by-cli", gateways);
    let mut revoke = sandbox.cmd(&["token", "revoke", "acme", &doomed_id, "--json"]);
    revoke
        .env("SCIMGATE_DATABASE_URL", &db.url)
        .env("SCIMGATE_REDIS_URL", redis.url());
    let revoked = run(revoke).json();
    assert_eq!(revoked["revoked"]["id"], doomed_id.as_str());
    refused_soon(&client, &doomed, gateways, "the CLI");

    // The tenant's limit (2/s, bursts of 12) holds across both gateways:
    // alternating between them gets no more through than one would.
    let started = Instant::now();
    let mut passed = 0u32;
    let mut refused_by = HashSet::new();
    for i in 0..40 {
        let gateway = if i % 2 == 0 { &a } else { &b };
        let r = client.get(&format!("{gateway}/scim/v2/Users?count=1"), Some(&token));
        match r.status {
            200 => passed += 1,
            429 => {
                assert!(r.header("retry-after").is_some(), "429 without Retry-After");
                refused_by.insert(gateway.clone());
            }
            other => panic!("unexpected {other}: {}", r.body),
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    // The burst, what the rate refilled meanwhile, and the two requests
    // the revocation check above made with another token of the tenant.
    let allowed = 12.0 + (2.0 * elapsed).ceil() + 1.0;
    assert!(
        f64::from(passed) <= allowed,
        "{passed} requests passed in {elapsed:.1}s; a shared limit allows at most {allowed}"
    );
    assert_eq!(
        refused_by.len(),
        2,
        "both gateways refused requests once the shared budget was spent"
    );

    // Redis gone: the gateways keep serving (each limiting on its own) and
    // say they are degraded; once it is back they are ready again.
    redis.kill();
    for gateway in [&a, &b] {
        let r = client.get(&format!("{gateway}/readyz"), None);
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(
            r.body,
            json!({"status": "degraded", "checks": {"database": "ok", "redis": "unavailable"}})
        );
        let served = client.get(&format!("{gateway}/scim/v2/Users?count=1"), Some(&token));
        assert!(
            [200, 429].contains(&served.status),
            "{}: {}",
            served.status,
            served.body
        );
    }
    redis.restart();
    for gateway in [&a, &b] {
        let back = eventually(Duration::from_secs(20), || {
            client.get(&format!("{gateway}/readyz"), None).body["status"] == "ready"
        });
        assert!(back, "{gateway} did not see Redis come back");
    }
}

/// Issues a read token named `name` through the admin API and checks that
/// every gateway accepts it (and so has it cached); returns its secret and id.
fn accepted_token(
    client: &Client,
    adm: &str,
    jwt: &str,
    name: &str,
    gateways: [&String; 2],
) -> (String, String) {
    let issued = client.call(
        "POST",
        &format!("{adm}/admin/v1/tenants/acme/tokens"),
        Some(jwt),
        Some(&json!({"name": name, "scopes": ["scim:read"]})),
    );
    assert_eq!(issued.status, 201, "{}", issued.body);
    let secret = issued.body["secret"].as_str().expect("secret").to_owned();
    let id = issued.body["id"].as_str().expect("id").to_owned();
    for gateway in gateways {
        let r = client.get(&format!("{gateway}/scim/v2/Users"), Some(&secret));
        assert_eq!(r.status, 200, "{}", r.body);
    }
    (secret, id)
}

/// Asserts that every gateway refuses `secret` within [`REVOCATION`] of
/// its revocation through `by`.
fn refused_soon(client: &Client, secret: &str, gateways: [&String; 2], by: &str) {
    let revoked_at = Instant::now();
    for gateway in gateways {
        let refused = eventually(REVOCATION, || {
            client
                .get(&format!("{gateway}/scim/v2/Users"), Some(secret))
                .status
                == 401
        });
        assert!(
            refused,
            "{gateway} still accepts a token revoked by {by} {:?} ago",
            revoked_at.elapsed()
        );
    }
}

/// Whether the worker's latest "partitions held" log line names `partition`.
fn holds(worker: &Server, partition: u16) -> bool {
    let stderr = worker.proc.stderr();
    let Some(line) = stderr
        .lines()
        .rev()
        .find(|l| l.contains("partitions held changed"))
    else {
        return false;
    };
    let Ok(entry) = serde_json::from_str::<Value>(line) else {
        return false;
    };
    // Logged as a debug set: "{0, 1, 2}".
    let held = entry["partitions"].as_str().unwrap_or_default();
    held.trim_matches(['{', '}'])
        .split(',')
        .filter_map(|p| p.trim().parse::<u16>().ok())
        .any(|p| p == partition)
}

#[test]
fn a_worker_killed_mid_delivery_loses_nothing() {
    let client = Client::new();
    let db = client
        .rt
        .block_on(testkit::fresh_database(TestDb::Postgres));
    let redis = RedisServer::start();
    let sandbox = Sandbox::new();
    let mut env = shared_env(&redis);
    env.push(("SCIMGATE_RATE_LIMIT_PER_SECOND", "0".to_owned()));
    // A short request timeout keeps the delivery lease (twice it) short,
    // so the survivor takes over within the test's patience.
    env.push(("SCIMGATE_DELIVERY_TIMEOUT_SECS", "5".to_owned()));
    // Two at a time, 300 ms each: thirty users take seconds to deliver.
    env.push(("SCIMGATE_DELIVERY_CONCURRENCY_PER_TARGET", "2".to_owned()));
    let admin = start(&sandbox, "admin", &db.url, &env);
    let gateway = start(&sandbox, "gateway", &db.url, &env);
    let mut workers = vec![
        start(&sandbox, "worker", &db.url, &env),
        start(&sandbox, "worker", &db.url, &env),
    ];
    let (jwt, token, tenant_id) = tenant(&client, &admin);
    let partition = cluster::stream::partition_of(
        uuid::Uuid::parse_str(&tenant_id).expect("tenant id is a UUID"),
    );
    let adm = &admin.listen_url;
    let gw = &gateway.listen_url;

    let receiver = client.rt.block_on(Receiver::start());
    // Slow enough that deliveries are in flight when the worker dies.
    receiver.slow(Duration::from_millis(300));
    let target = client.call(
        "POST",
        &format!("{adm}/admin/v1/tenants/acme/targets"),
        Some(&jwt),
        Some(&json!({"name": "app", "kind": "webhook", "url": receiver.url()})),
    );
    assert_eq!(target.status, 201, "{}", target.body);
    receiver.set_secret(target.body["secret"].as_str().expect("secret"));

    let mut names = Vec::new();
    for i in 0..30 {
        let name = format!("user{i:02}@acme.test");
        let r = client.call(
            "POST",
            &format!("{gw}/scim/v2/Users"),
            Some(&token),
            Some(&new_user(&name)),
        );
        assert_eq!(r.status, 201, "{}", r.body);
        names.push(name);
    }
    // Kill -9 the worker that holds the tenant's partition (each logs the
    // partitions it holds) once deliveries have started arriving.
    let started = eventually(Duration::from_secs(60), || receiver.count() > 0);
    assert!(started, "nothing was delivered");
    let holder = workers
        .iter()
        .position(|w| holds(w, partition))
        .unwrap_or_else(|| {
            panic!(
                "no worker says it holds partition {partition}:\n{}\n{}",
                workers[0].proc.stderr(),
                workers[1].proc.stderr()
            )
        });
    let victim = workers.remove(holder);
    victim.proc.signal("KILL");
    let before_kill = receiver.count();
    assert!(
        before_kill < names.len(),
        "the worker was to die mid-delivery, but {before_kill} deliveries had arrived"
    );

    // Every user committed reaches the application: the survivor takes
    // the partition once the dead worker's lease lapses and claims what
    // it had read but not finished.
    let all = eventually(Duration::from_secs(120), || {
        let seen: HashSet<String> = receiver
            .deliveries()
            .iter()
            .filter(|d| d.verified)
            .filter_map(|d| {
                names
                    .iter()
                    .find(|n| d.body.to_string().contains(n.as_str()))
                    .cloned()
            })
            .collect();
        seen.len() == names.len()
    });
    assert!(
        all,
        "not every user was delivered after the kill ({} deliveries, {before_kill} before it)\n{}",
        receiver.count(),
        workers[0].proc.output()
    );
    // A repeat is the same event under the same webhook-id.
    let mut bodies: HashMap<String, Value> = HashMap::new();
    for d in receiver.deliveries() {
        let id = d.webhook_id.clone().expect("webhook-id");
        if let Some(earlier) = bodies.get(&id) {
            assert_eq!(earlier, &d.body, "webhook-id {id} carried two events");
        } else {
            bodies.insert(id, d.body.clone());
        }
    }
    assert!(bodies.len() >= names.len());
}
