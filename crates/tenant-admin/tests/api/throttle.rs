//! Login throttling over real HTTP: the admin API on its own listener
//! with a test clock, so a test walks through lockouts without sleeping.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::{App, HttpServer};
use serde_json::{Value, json};
use store::{Store, StoreOptions};
use tenant_admin::service::login::Throttle;
use tenant_admin::service::throttle::{Limit, ManualClock, MemoryThrottle, ThrottleSettings};
use tenant_admin::{Admin, AdminConfig, LoginOptions, SigningKey};
use testkit::{TestDatabase, TestDb};

const OPERATOR: &str = "root@example.test";
const PASSWORD: &str = "the operator's long password";
const ALICE: &str = "alice@acme.example";
const ALICE_PASSWORD: &str = "alice's long password";

/// Small limits, so a test reaches them with few argon2 runs.
fn settings() -> ThrottleSettings {
    let limit = Limit {
        max_failures: 3,
        window: Duration::from_secs(600),
        lockout: Duration::from_secs(60),
        max_lockout: Duration::from_secs(600),
    };
    ThrottleSettings {
        account: limit,
        address: Limit {
            max_failures: 6,
            ..limit
        },
    }
}

struct Answer {
    status: u16,
    retry_after: Option<String>,
    body: Value,
    took: Duration,
}

struct Api {
    origin: String,
    client: reqwest::Client,
    clock: ManualClock,
    server: actix_web::dev::ServerHandle,
}

impl Api {
    /// The admin API over `store`, trusting `proxies`' X-Forwarded-For.
    async fn start(store: &Store, proxies: Vec<IpAddr>) -> Api {
        let clock = ManualClock::new(chrono::Utc::now());
        let options = LoginOptions {
            throttle: Throttle::new(
                Arc::new(MemoryThrottle::new(settings())),
                Arc::new(clock.clone()),
            ),
            trusted_proxies: proxies.into_iter().map(ipnet::IpNet::from).collect(),
        };
        let config = AdminConfig {
            keys: vec![SigningKey::new("k", vec![7u8; 32]).unwrap()],
            token_ttl: Duration::from_secs(600),
        };
        let admin = Admin::with_login_options(store.clone(), config, options).unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let origin = format!("http://{}", listener.local_addr().unwrap());
        let server = HttpServer::new(move || {
            let admin = admin.clone();
            App::new().configure(move |cfg| admin.configure(cfg))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .unwrap()
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Api {
            origin,
            client: {
                testkit::install_tls_provider();
                // A new connection per login: forty concurrent ones leave
                // forty idle in a pool, and reusing one just as the server's
                // keep-alive timeout closes it fails the request.
                reqwest::Client::builder()
                    .pool_max_idle_per_host(0)
                    .build()
                    .unwrap()
            },
            clock,
            server: handle,
        }
    }

    async fn login(&self, email: &str, password: &str, tenant: Option<&str>, from: &str) -> Answer {
        let mut body = json!({"email": email, "password": password});
        if let Some(t) = tenant {
            body["tenant"] = json!(t);
        }
        let started = Instant::now();
        let response = self
            .client
            .post(format!("{}/admin/v1/login", self.origin))
            .header("Content-Type", "application/json")
            .header("X-Forwarded-For", from)
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_owned());
        let bytes = response.bytes().await.unwrap();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Answer {
            status,
            retry_after,
            body,
            took: started.elapsed(),
        }
    }

    async fn get(&self, path: &str, token: &str) -> Value {
        let response = self
            .client
            .get(format!("{}/admin/v1{path}", self.origin))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200);
        serde_json::from_slice(&response.bytes().await.unwrap()).unwrap()
    }
}

#[track_caller]
fn refused(answer: &Answer, retry_after: &str) {
    assert_eq!(answer.status, 429, "{}", answer.body);
    assert_eq!(answer.body["error"], "too_many_requests");
    let message = answer.body["message"].as_str().unwrap_or_default();
    assert!(message.contains("too many failed logins"), "{message}");
    assert_eq!(answer.retry_after.as_deref(), Some(retry_after));
}

async fn store(which: TestDb) -> (TestDatabase, Store) {
    let db = testkit::fresh_database(which).await;
    let store = Store::connect(&db.url, StoreOptions::default())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let admin = store.admin();
    admin
        .create_operator(OPERATOR, PASSWORD, "test")
        .await
        .unwrap();
    let acme = admin
        .create_tenant(
            store::NewTenant {
                slug: "acme".into(),
                name: "Acme".into(),
                kind: store::TenantKind::Standard,
            },
            "test",
        )
        .await
        .unwrap();
    admin
        .create_tenant_admin(&acme, ALICE, ALICE_PASSWORD, "test")
        .await
        .unwrap();
    (db, store)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_lock_the_account_before_argon2_and_the_lockout_is_audited() {
    for which in testkit::backends() {
        let (_db, store) = store(which).await;
        let api = Api::start(&store, vec!["127.0.0.1".parse().unwrap()]).await;
        let from = "198.51.100.2";
        let op = api.login(OPERATOR, PASSWORD, None, "198.51.100.1").await;
        assert_eq!(op.status, 200, "{}", op.body);
        let op = op.body["token"].as_str().unwrap().to_owned();

        // Three failures are answered 401, each after an argon2 check...
        let mut checked = Duration::MAX;
        for _ in 0..3 {
            let wrong = api.login(ALICE, "wrong", Some("acme"), from).await;
            assert_eq!(wrong.status, 401, "{}", wrong.body);
            checked = checked.min(wrong.took);
        }
        // ...then the account is locked: even the right password is
        // refused, and faster than any password check.
        refused(&api.login(ALICE, "wrong", Some("acme"), from).await, "60");
        let right = api.login(ALICE, ALICE_PASSWORD, Some("acme"), from).await;
        refused(&right, "60");
        assert!(right.took < checked, "{:?} vs {checked:?}", right.took);
        // Spelled otherwise, it is the same account.
        refused(
            &api.login(" Alice@ACME.example", "x", Some("ACME "), from)
                .await,
            "60",
        );

        // The lockout is in the audit log, under the tenant.
        let audit = api.get("/audit?action=admin.login.locked_out", &op).await;
        let entries = audit["entries"].as_array().unwrap();
        assert_eq!(entries.len(), 1, "{audit}");
        assert_eq!(entries[0]["target"], format!("tenant-admin:{ALICE}"));
        assert_eq!(entries[0]["actor"], "system:login-throttle");
        assert_eq!(entries[0]["detail"]["client"], from);
        assert_eq!(entries[0]["detail"]["lockedForSecs"], 60);
        let acme = api.get("/tenants/acme", &op).await;
        assert_eq!(entries[0]["tenantId"], acme["id"]);

        // Guessing on after the lockout earns one twice as long; then the
        // right password works and resets the account, so the next
        // lockout is short again. (From another address: this one has
        // nearly used its own allowance.)
        let from = "198.51.100.7";
        api.clock.advance(Duration::from_secs(59));
        refused(
            &api.login(ALICE, ALICE_PASSWORD, Some("acme"), from).await,
            "1",
        );
        api.clock.advance(Duration::from_secs(1));
        for _ in 0..3 {
            assert_eq!(
                api.login(ALICE, "wrong", Some("acme"), from).await.status,
                401
            );
        }
        refused(
            &api.login(ALICE, ALICE_PASSWORD, Some("acme"), from).await,
            "120",
        );
        api.clock.advance(Duration::from_secs(120));
        assert_eq!(
            api.login(ALICE, ALICE_PASSWORD, Some("acme"), from)
                .await
                .status,
            200
        );
        for _ in 0..2 {
            assert_eq!(
                api.login(ALICE, "wrong", Some("acme"), from).await.status,
                401
            );
        }
        let from = "198.51.100.8";
        assert_eq!(
            api.login(ALICE, ALICE_PASSWORD, Some("acme"), from)
                .await
                .status,
            200
        );
        for _ in 0..3 {
            assert_eq!(
                api.login(ALICE, "wrong", Some("acme"), from).await.status,
                401
            );
        }
        refused(
            &api.login(ALICE, ALICE_PASSWORD, Some("acme"), from).await,
            "60",
        );
        api.server.stop(true).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_from_one_address_is_cut_off_and_forwarded_addresses_count_only_from_trusted_proxies()
 {
    for which in testkit::backends() {
        let (_db, store) = store(which).await;
        let api = Api::start(&store, vec!["127.0.0.1".parse().unwrap()]).await;

        // One address guessing at many accounts: six failures, then
        // nothing from there, not even a right password; other addresses
        // are not affected.
        for i in 0..6 {
            let wrong = api
                .login(&format!("guess{i}@x.test"), "wrong", None, "198.51.100.3")
                .await;
            assert_eq!(wrong.status, 401, "{}", wrong.body);
        }
        refused(
            &api.login(OPERATOR, PASSWORD, None, "198.51.100.3").await,
            "60",
        );
        assert_eq!(
            api.login(OPERATOR, PASSWORD, None, "198.51.100.4")
                .await
                .status,
            200
        );

        // Forty concurrent guesses (the finding): only the account's
        // allowance reaches argon2, the rest are 429, and the right
        // password right after is refused too.
        let guesses = (0..40).map(|_| api.login(OPERATOR, "wrong", None, "198.51.100.5"));
        let answers = futures_util::future::join_all(guesses).await;
        let statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
        assert_eq!(
            statuses.iter().filter(|s| **s == 401).count(),
            3,
            "{statuses:?}"
        );
        assert_eq!(
            statuses.iter().filter(|s| **s == 429).count(),
            37,
            "{statuses:?}"
        );
        refused(
            &api.login(OPERATOR, PASSWORD, None, "198.51.100.6").await,
            "60",
        );

        // Without trusted proxies X-Forwarded-For is ignored: changing it
        // does not escape the peer address's count.
        let untrusting = Api::start(&store, Vec::new()).await;
        for i in 0..6 {
            let wrong = untrusting
                .login(
                    &format!("other{i}@x.test"),
                    "wrong",
                    None,
                    &format!("203.0.113.{i}"),
                )
                .await;
            assert_eq!(wrong.status, 401, "{}", wrong.body);
        }
        refused(
            &untrusting
                .login(OPERATOR, PASSWORD, None, "203.0.113.99")
                .await,
            "60",
        );
        // Stopped only now: a server's runtime ends with it, and pooled
        // PostgreSQL connections it opened would fail the other's requests.
        untrusting.server.stop(true).await;
        api.server.stop(true).await;
    }
}
