//! Events delivered per second by one worker.
//!
//! A fresh store (the embedded default's settings unless a database URL is
//! given), one tenant, one webhook target on the benchmark's receiver;
//! `users` users created and each updated `updates` times through the
//! store's API (the same write path the gateway uses), all committed before
//! the worker starts; then one [`sync_worker::Worker`] with the default
//! delivery settings (private targets allowed) and the time until the
//! receiver holds every event id.
//!
//! Threads, so `/proc` can tell their CPU apart: the worker (and the
//! seeding before it) runs on the `bench-worker` runtime, SQLite's writer
//! is `scimgate-writer`, the receiver runs on `bench-receiver`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Value, json};
use store::{NewTenant, Store, StoreOptions, TenantKind, TenantStore};
use sync_worker::address::AddressPolicy;
use sync_worker::metrics::Metrics;
use sync_worker::secrets::SecretBox;
use sync_worker::targets::{TargetSpec, Targets};
use sync_worker::{DeliveryConfig, Worker};
use tokio::sync::watch;

use super::cpu::CpuSnapshot;
use super::receiver::{Receiver, ReceiverTally};
use super::{all_events, per_thread};
use crate::LoadError;

const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

/// The throughput benchmark's parameters.
#[derive(Debug, Clone)]
pub struct ThroughputOptions {
    /// A database URL; `None`: a new SQLite file in `dir`.
    pub database_url: Option<String>,
    /// Where the SQLite file goes (a temporary directory when `None`).
    pub dir: Option<PathBuf>,
    /// Users created.
    pub users: usize,
    /// Updates per user after all are created.
    pub updates: usize,
    /// Writes in flight while seeding.
    pub seed_concurrency: usize,
    /// Check every n-th delivery's signature and envelope.
    pub sample: u64,
    /// Give up waiting for the deliveries after this.
    pub timeout: Duration,
}

/// What the throughput benchmark measured.
#[derive(Debug, Clone, Serialize)]
pub struct ThroughputReport {
    /// `sqlite` or `postgres`.
    pub engine: String,
    /// Events committed before the worker started (all for the target).
    pub events: usize,
    /// Seconds the seeding took (users created and updated).
    pub seed_secs: f64,
    /// Distinct events the receiver got.
    pub delivered: usize,
    /// Whether every event arrived before the timeout.
    pub complete: bool,
    /// Seconds from the worker's start to the last event's arrival.
    pub elapsed_secs: f64,
    /// Events per second over `elapsed_secs`.
    pub events_per_sec: f64,
    /// Seconds from the worker's start to the first arrival.
    pub first_arrival_secs: f64,
    /// Events per second from the first arrival to the last.
    pub steady_events_per_sec: f64,
    /// What the receiver saw (its fields at this level in JSON).
    #[serde(flatten)]
    pub receiver: ReceiverTally,
    /// The target's cursor reached the log's head and nothing waits.
    pub target_caught_up: bool,
    /// CPU seconds per thread group during delivery.
    pub cpu_secs: BTreeMap<String, f64>,
    /// CPU cores per thread group during delivery (seconds / elapsed).
    pub cpu_cores: BTreeMap<String, f64>,
}

impl ThroughputReport {
    /// The report as text.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        out.push_str(&format!(
            "delivery throughput ({}): {} events committed in {:.1} s before the worker started\n",
            self.engine, self.events, self.seed_secs
        ));
        out.push_str(&format!(
            "  delivered {} of {} in {:.2} s: {:.0} events/s (first arrival after {:.3} s; \
             {:.0} events/s from first to last){}\n",
            self.delivered,
            self.events,
            self.elapsed_secs,
            self.events_per_sec,
            self.first_arrival_secs,
            self.steady_events_per_sec,
            if self.complete { "" } else { " INCOMPLETE" }
        ));
        out.push_str(&format!(
            "  receiver: {}; {}\n",
            self.receiver.counts_text(),
            self.receiver.checks_text()
        ));
        out.push_str(&format!(
            "  target caught up (cursor at head, nothing pending): {}\n",
            self.target_caught_up
        ));
        out.push_str("  CPU during delivery (cores):");
        for (name, cores) in &self.cpu_cores {
            out.push_str(&format!(" {name} {cores:.2};"));
        }
        out.push('\n');
        out
    }
}

/// A canonical Entra-shaped user.
fn user(i: usize) -> Value {
    let name = format!("bench.user{i:07}@example.test");
    json!({
        "schemas": [USER_SCHEMA, ENTERPRISE],
        "externalId": format!("00000000-0000-4000-8000-{i:012x}"),
        "userName": name,
        "active": true,
        "displayName": format!("Bench User{i}"),
        "emails": [{"primary": true, "type": "work", "value": name}],
        "name": {"formatted": format!("Bench User{i}"), "familyName": format!("User{i}"), "givenName": "Bench"},
        ENTERPRISE: {"employeeNumber": i.to_string(), "department": format!("Dept {}", i % 20)}
    })
}

/// Runs `work(i)` for `i` in `0..n`, `concurrency` at a time.
async fn each<F, Fut>(n: usize, concurrency: usize, work: F) -> Result<(), LoadError>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(), LoadError>> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let work = Arc::new(work);
    let tasks: Vec<_> = (0..concurrency.max(1))
        .map(|_| {
            let next = next.clone();
            let work = work.clone();
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        return Ok(());
                    }
                    work(i).await?;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await
            .map_err(|e| LoadError(format!("seeding task failed: {e}")))??;
    }
    Ok(())
}

/// Creates `users` users, then updates each `updates` times, `concurrency`
/// writes in flight (one event per write).
pub(super) async fn seed(
    dir: &TenantStore,
    users: usize,
    updates: usize,
    concurrency: usize,
) -> Result<(), LoadError> {
    let ids: Arc<Vec<std::sync::OnceLock<String>>> =
        Arc::new((0..users).map(|_| std::sync::OnceLock::new()).collect());
    {
        let dir = dir.clone();
        let ids = ids.clone();
        each(users, concurrency, move |i| {
            let dir = dir.clone();
            let ids = ids.clone();
            async move {
                let r = dir
                    .create_user(user(i))
                    .await
                    .map_err(|e| LoadError(format!("create user {i}: {e}")))?;
                let _ = ids[i].set(r.id);
                Ok(())
            }
        })
        .await?;
    }
    for round in 0..updates {
        let dir = dir.clone();
        let ids = ids.clone();
        each(users, concurrency, move |i| {
            let dir = dir.clone();
            let ids = ids.clone();
            async move {
                let Some(id) = ids[i].get() else {
                    return Err(LoadError(format!("user {i} was not created")));
                };
                dir.modify_user(id, None, move |current| {
                    let mut d = current.document.clone();
                    d["displayName"] = json!(format!("Bench User{i} (update {round})"));
                    d["title"] = json!(format!("Title {round}"));
                    Ok(d)
                })
                .await
                .map_err(|e| LoadError(format!("update user {i}: {e}")))?;
                Ok(())
            }
        })
        .await?;
    }
    Ok(())
}

/// Runs the benchmark; blocks the calling thread.
pub fn run(opts: ThroughputOptions) -> Result<ThroughputReport, LoadError> {
    super::with_receiver(opts.sample, "bench-worker", |receiver| {
        measure(opts, receiver)
    })
}

async fn measure(
    opts: ThroughputOptions,
    receiver: Receiver,
) -> Result<ThroughputReport, LoadError> {
    let temp;
    let (url, engine) = match &opts.database_url {
        Some(url) => (url.clone(), engine_of(url)),
        None => {
            let dir = match &opts.dir {
                Some(d) => d.clone(),
                None => {
                    temp = tempfile::tempdir()
                        .map_err(|e| LoadError(format!("cannot make a temp dir: {e}")))?;
                    temp.path().to_path_buf()
                }
            };
            let file = dir.join("delivery-bench.db");
            if file.exists() {
                return Err(LoadError(format!(
                    "{} exists: give a fresh directory",
                    file.display()
                )));
            }
            (
                format!("sqlite://{}?mode=rwc", file.display()),
                "sqlite".to_owned(),
            )
        }
    };
    let store = Store::connect(&url, StoreOptions::default())
        .await
        .map_err(|e| LoadError(format!("cannot open the store: {e}")))?;
    store
        .migrate()
        .await
        .map_err(|e| LoadError(format!("cannot migrate the store: {e}")))?;
    let tenant = store
        .admin()
        .create_tenant(
            NewTenant {
                slug: "delivery-bench".into(),
                name: "delivery bench".into(),
                kind: TenantKind::Standard,
            },
            "bench",
        )
        .await
        .map_err(|e| LoadError(format!("cannot create the tenant: {e}")))?;
    let dir = store.tenant(&tenant);
    let key = SecretBox::new(&rand::random::<[u8; 32]>());
    let created = Targets {
        store: &dir,
        secrets: Some(&key),
        policy: AddressPolicy {
            allow_private: true,
        },
    }
    .create(
        TargetSpec {
            name: "bench".into(),
            kind: "webhook".into(),
            url: receiver.url(),
            event_types: Vec::new(),
            token: None,
        },
        "bench",
    )
    .await
    .map_err(|e| LoadError(format!("cannot create the target: {e}")))?;
    if let Some(secret) = &created.secret {
        receiver.set_secret(secret)?;
    }

    let seeding = Instant::now();
    seed(&dir, opts.users, opts.updates, opts.seed_concurrency).await?;
    let seed_secs = seeding.elapsed().as_secs_f64();
    let (ids, _) = all_events(&dir, created.target.cursor).await?;

    let config = DeliveryConfig {
        allow_private_targets: true,
        ..DeliveryConfig::default()
    };
    let metrics =
        Metrics::unregistered().map_err(|e| LoadError(format!("cannot make metrics: {e}")))?;
    let worker = Worker::new(store.clone(), config, Some(key.clone()), metrics)
        .map_err(|e| LoadError(format!("cannot start the worker: {e}")))?;
    let (stop, stopped) = watch::channel(false);
    let cpu_before = CpuSnapshot::now();
    let started = Instant::now();
    let task = tokio::spawn(worker.run(stopped));
    let deadline = started + opts.timeout;
    let complete = loop {
        if receiver.has_all(&ids) {
            break true;
        }
        if Instant::now() >= deadline {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let waited = started.elapsed();
    let cpu = CpuSnapshot::now().since(&cpu_before);
    stop.send_replace(true);
    if tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .is_err()
    {
        eprintln!("bench-delivery: the worker did not stop within 30 s");
    }

    let arrivals: Vec<_> = receiver.arrivals(&ids).into_iter().flatten().collect();
    let first = arrivals.iter().map(|a| a.at).min();
    let last = arrivals.iter().map(|a| a.at).max();
    let elapsed = last.map_or(waited, |l| l.duration_since(started));
    let span = match (first, last) {
        (Some(f), Some(l)) => l.duration_since(f),
        _ => Duration::ZERO,
    };
    let tally = receiver.tally();
    let head = store
        .event_log()
        .head()
        .await
        .map_err(|e| LoadError(format!("cannot read the log's head: {e}")))?;
    let target = dir
        .target(created.target.id)
        .await
        .map_err(|e| LoadError(format!("cannot read the target: {e}")))?;
    let pending = dir
        .deliveries(
            created.target.id,
            store::delivery::DeliveryStatus::Pending,
            0,
            10,
        )
        .await
        .map_err(|e| LoadError(format!("cannot read deliveries: {e}")))?;
    let (cpu_secs, cpu_cores) = per_thread(cpu, elapsed);
    Ok(ThroughputReport {
        engine,
        events: ids.len(),
        seed_secs,
        delivered: arrivals.len(),
        complete,
        elapsed_secs: elapsed.as_secs_f64(),
        events_per_sec: arrivals.len() as f64 / elapsed.as_secs_f64().max(1e-9),
        first_arrival_secs: first.map_or(0.0, |f| f.duration_since(started).as_secs_f64()),
        steady_events_per_sec: arrivals.len().saturating_sub(1) as f64
            / span.as_secs_f64().max(1e-9),
        receiver: tally.into(),
        target_caught_up: target.cursor >= head && pending.is_empty(),
        cpu_secs,
        cpu_cores,
    })
}

fn engine_of(url: &str) -> String {
    if url.starts_with("postgres") {
        "postgres".into()
    } else {
        "sqlite".into()
    }
}
