//! Shared helpers: a tenant with a webhook target on a receiver, a worker
//! with test-speed settings.

use std::time::Duration;

use serde_json::{Value, json};
use store::delivery::Target;
use store::{NewTenant, Store, StoreOptions, TenantKind, TenantStore};
use sync_worker::address::AddressPolicy;
use sync_worker::metrics::Metrics;
use sync_worker::secrets::SecretBox;
use sync_worker::targets::{TargetSpec, Targets};
use sync_worker::{DeliveryConfig, Queue, Worker};
use testkit::receiver::Receiver;
use testkit::{TestDatabase, TestDb};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The key every test seals target secrets with.
pub fn secrets() -> SecretBox {
    SecretBox::new(&[7u8; 32])
}

/// Settings for tests: loopback allowed, quick polls, short leases, quick
/// retries.
pub fn config() -> DeliveryConfig {
    DeliveryConfig {
        allow_private_targets: true,
        poll: Duration::from_millis(50),
        lease: Duration::from_secs(10),
        retry_schedule: vec![Duration::from_millis(200); 6],
        jitter: 0.0,
        timeout: Duration::from_secs(5),
        ..DeliveryConfig::default()
    }
}

/// A migrated store on a fresh database.
pub async fn store(which: TestDb) -> (TestDatabase, Store) {
    let db = testkit::fresh_database(which).await;
    let store = Store::connect(&db.url, StoreOptions::default())
        .await
        .expect("connect");
    store.migrate().await.expect("migrate");
    (db, store)
}

/// A new tenant's directory.
pub async fn tenant(store: &Store, slug: &str) -> TenantStore {
    let t = store
        .admin()
        .create_tenant(
            NewTenant {
                slug: slug.into(),
                name: slug.into(),
                kind: TenantKind::Standard,
            },
            "test",
        )
        .await
        .expect("tenant");
    store.tenant(&t)
}

/// A webhook target of `dir` on `receiver`, whose secret the receiver
/// now verifies with.
pub async fn webhook(dir: &TenantStore, receiver: &Receiver, name: &str) -> Target {
    webhook_with_secret(dir, receiver, name).await.0
}

/// [`webhook`], with the secret shown at creation.
pub async fn webhook_with_secret(
    dir: &TenantStore,
    receiver: &Receiver,
    name: &str,
) -> (Target, String) {
    let box_ = secrets();
    let created = Targets {
        store: dir,
        secrets: Some(&box_),
        policy: AddressPolicy {
            allow_private: true,
        },
    }
    .create(
        TargetSpec {
            name: name.into(),
            kind: "webhook".into(),
            url: receiver.url(),
            event_types: Vec::new(),
            token: None,
        },
        "test",
    )
    .await
    .expect("create target");
    let secret = created.secret.expect("a webhook has a secret");
    assert!(secret.starts_with("whsec_"));
    receiver.set_secret(&secret);
    (created.target, secret)
}

/// A running worker; stopping it waits for its rounds to end.
pub struct Running {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Running {
    /// Kills the worker as a crash would: no round finishes, no lease is
    /// given back.
    pub fn abort(self) {
        self.task.abort();
    }

    /// Stops the worker gracefully.
    pub async fn stop(self) {
        self.stop.send_replace(true);
        let _ = self.task.await;
    }
}

/// Starts a worker on `store` with `config`.
pub fn start(store: &Store, config: DeliveryConfig) -> Running {
    let worker = Worker::new(
        store.clone(),
        config,
        Some(secrets()),
        Metrics::unregistered().expect("metrics"),
    )
    .expect("worker");
    run(worker)
}

/// Runs `worker` (on any queue) until stopped or aborted.
pub fn run<Q: Queue>(worker: Worker<Q>) -> Running {
    // The worker reports trouble as warnings: show them with the test's
    // output (captured, printed when it fails).
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_max_level(tracing::Level::INFO)
        .try_init();
    let (stop, rx) = watch::channel(false);
    Running {
        stop,
        task: tokio::spawn(worker.run(rx)),
    }
}

/// A minimal User.
pub fn user(name: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": name,
        "active": true,
    })
}

/// A minimal Group.
pub fn group(name: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "displayName": name,
    })
}

/// Every event id of the tenant, in commit order.
pub async fn event_ids(dir: &TenantStore) -> Vec<String> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let page = dir.events_after(after, 1000).await.expect("events");
        let Some(last) = page.last() else {
            return out;
        };
        after = last.position;
        out.extend(page.iter().map(|e| e.public_id()));
    }
}

/// Waits until the receiver holds every id in `ids` (bounded), and
/// returns the distinct ids it got.
pub async fn wait_for_ids(receiver: &Receiver, ids: &[String], within: Duration) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let got = receiver.webhook_ids();
        if ids.iter().all(|id| got.contains(id)) || tokio::time::Instant::now() >= deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
