//! The steady SCIM mix against a running `scimgate serve`, with or
//! without a webhook target, and the lag of every event the mix causes.
//!
//! With a target: the benchmark opens the server's store (a second process
//! on the same SQLite file, or the same PostgreSQL database), creates a
//! webhook target of the tenant on its receiver with the server's own
//! sealing key (`target-secrets.key` in the data directory), and writes one
//! probe user so that it starts only once the server's worker delivers to
//! the target (it finds a new target when it renews its leases). Then it
//! runs the `steady` scenario, waits (bounded) until every event the
//! tenant committed since the probe has arrived, and reports each event's
//! lag: its first arrival minus its envelope's `occurred_at`. Finally it
//! deletes the target and the probe user, so a following run starts from
//! the same data and no target piles up a backlog while delivery is off.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::json;
use store::{Store, StoreOptions, TenantStore};
use sync_worker::address::AddressPolicy;
use sync_worker::secrets::{KEY_FILE, SecretBox};
use sync_worker::targets::{TargetSpec, Targets};
use uuid::Uuid;

use super::cpu::CpuSnapshot;
use super::receiver::{Receiver, ReceiverTally};
use super::{ReceiverThread, all_events, per_thread, quantile};
use crate::{LoadError, Options, Report, Scenario, Target};

/// Where the server keeps its tenant, for the webhook target.
#[derive(Debug, Clone)]
pub struct WebhookSetup {
    /// The server's database URL.
    pub database_url: String,
    /// The server's data directory (its target sealing key).
    pub data_dir: PathBuf,
    /// The tenant's slug.
    pub tenant: String,
}

/// The mix benchmark's parameters.
#[derive(Debug, Clone)]
pub struct MixOptions {
    /// The tenant(s) to drive.
    pub targets: Vec<Target>,
    /// Users per tenant (as made by the `initial` scenario).
    pub users: usize,
    /// Requests in flight.
    pub concurrency: usize,
    /// How long the mix runs.
    pub duration: Duration,
    /// A webhook target on the benchmark's receiver, or none.
    pub webhook: Option<WebhookSetup>,
    /// The longest wait for the last events after the mix.
    pub drain: Duration,
    /// Check every n-th delivery's signature and envelope.
    pub sample: u64,
    /// The server's process id, to read its CPU from `/proc`.
    pub server_pid: Option<u32>,
    /// Without a webhook: open the server's store anyway (and do nothing
    /// with it), so a run without a target differs from one with a target
    /// only by the target.
    pub open_store: Option<String>,
}

/// What the deliveries during the mix came to.
#[derive(Debug, Clone, Serialize)]
pub struct LagReport {
    /// Seconds from the target's creation until the probe event arrived
    /// (the worker finds new targets when it renews its leases).
    pub probe_secs: f64,
    /// Events the tenant committed from the mix's start to its end (and
    /// the drain).
    pub events: usize,
    /// Of those, how many arrived.
    pub delivered: usize,
    /// Whether every one arrived before the drain ran out.
    pub complete: bool,
    /// Seconds after the mix until the last arrived.
    pub drain_secs: f64,
    /// Events per second committed during the mix.
    pub events_per_sec: f64,
    /// Lag percentiles in milliseconds (arrival minus `occurred_at`).
    pub lag_p50_ms: f64,
    /// 90th percentile.
    pub lag_p90_ms: f64,
    /// 99th percentile.
    pub lag_p99_ms: f64,
    /// The largest.
    pub lag_max_ms: f64,
    /// What the receiver saw (its fields at this level in JSON).
    #[serde(flatten)]
    pub receiver: ReceiverTally,
}

/// The mix benchmark's result.
#[derive(Debug, Clone, Serialize)]
pub struct MixReport {
    /// Whether a webhook target received the events.
    pub delivery: bool,
    /// The load tool's report of the mix.
    pub steady: Report,
    /// The deliveries, with a target.
    pub lag: Option<LagReport>,
    /// CPU cores the server used during the mix, per thread name.
    pub server_cpu_cores: std::collections::BTreeMap<String, f64>,
    /// CPU cores this process used during the mix, per thread name (the
    /// load tool on the main thread, the receiver on `bench-receiver`).
    pub bench_cpu_cores: std::collections::BTreeMap<String, f64>,
}

impl MixReport {
    /// The report as text.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        out.push_str(&format!(
            "steady mix, delivery {}: {:.0} req/s over {:.1} s ({} requests, {} errors)\n",
            if self.delivery {
                "on (webhook target)"
            } else {
                "as the server runs it, no target"
            },
            self.steady.requests_per_sec,
            self.steady.elapsed_secs,
            self.steady.total_requests,
            self.steady.total_errors
        ));
        for op in &self.steady.operations {
            out.push_str(&format!(
                "  {:<24} {:>7.0}/s  p50 {:>6.2} ms  p99 {:>6.2} ms  errors {}\n",
                op.operation, op.requests_per_sec, op.p50_ms, op.p99_ms, op.errors
            ));
        }
        if let Some(lag) = &self.lag {
            out.push_str(&format!(
                "  delivery: {} of {} events arrived ({:.0} events/s committed), drained {:.2} s after the mix{}\n",
                lag.delivered,
                lag.events,
                lag.events_per_sec,
                lag.drain_secs,
                if lag.complete { "" } else { " INCOMPLETE" }
            ));
            out.push_str(&format!(
                "  lag (arrival - occurred_at): p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms\n",
                lag.lag_p50_ms, lag.lag_p90_ms, lag.lag_p99_ms, lag.lag_max_ms
            ));
            out.push_str(&format!(
                "  receiver: {}; {}; probe arrived after {:.1} s\n",
                lag.receiver.counts_text(),
                lag.receiver.checks_text(),
                lag.probe_secs
            ));
        }
        super::push_cpu_lines(
            &mut out,
            &[
                ("server", &self.server_cpu_cores),
                ("bench", &self.bench_cpu_cores),
            ],
        );
        out
    }
}

/// The target, receiver and probe of a run with delivery.
struct Hooked {
    dir: TenantStore,
    receiver: ReceiverThread,
    target: Uuid,
    probe_user: String,
    probe_secs: f64,
    /// The log position after the probe.
    after: i64,
}

async fn hook(setup: &WebhookSetup, sample: u64) -> Result<Hooked, LoadError> {
    let key_file = setup.data_dir.join(KEY_FILE);
    if !key_file.is_file() {
        return Err(LoadError(format!(
            "{} does not exist: start the server (it makes the key) first",
            key_file.display()
        )));
    }
    let (key, _) = SecretBox::load_or_create(&setup.data_dir)
        .map_err(|e| LoadError(format!("cannot load the sealing key: {e}")))?;
    let store = Store::connect(&setup.database_url, StoreOptions::default())
        .await
        .map_err(|e| LoadError(format!("cannot open the server's store: {e}")))?;
    let tenant = store
        .admin()
        .tenant_by_slug(&setup.tenant)
        .await
        .map_err(|e| LoadError(format!("cannot read tenant {}: {e}", setup.tenant)))?
        .ok_or_else(|| LoadError(format!("no tenant {}", setup.tenant)))?;
    let dir = store.tenant(&tenant);
    let receiver = ReceiverThread::start(sample, true)?;
    let suffix = Uuid::new_v4().simple().to_string();
    let created = Targets {
        store: &dir,
        secrets: Some(&key),
        policy: AddressPolicy {
            allow_private: true,
        },
    }
    .create(
        TargetSpec {
            name: format!("bench-delivery-{}", &suffix[..8]),
            kind: "webhook".into(),
            url: receiver.receiver.url(),
            event_types: Vec::new(),
            token: None,
        },
        "bench",
    )
    .await
    .map_err(|e| LoadError(format!("cannot create the target: {e}")))?;
    if let Some(secret) = &created.secret {
        receiver.receiver.set_secret(secret)?;
    }
    let made = Instant::now();
    let name = format!("bench.probe.{suffix}@example.test");
    let probe = dir
        .create_user(json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": name,
            "active": true,
        }))
        .await
        .map_err(|e| LoadError(format!("cannot write the probe user: {e}")))?;
    let (ids, after) = all_events(&dir, created.target.cursor).await?;
    let hooked = Hooked {
        dir,
        receiver,
        target: created.target.id,
        probe_user: probe.id,
        probe_secs: 0.0,
        after,
    };
    // The worker renews its leases every 10 s by default.
    let deadline = made + Duration::from_secs(45);
    while !hooked.receiver.receiver.has_all(&ids) {
        if Instant::now() >= deadline {
            unhook(&hooked).await;
            return Err(LoadError(
                "the probe event did not arrive within 45 s: is the server's worker on \
                 (SCIMGATE_DELIVERY_ENABLED) and are private targets allowed \
                 (SCIMGATE_DELIVERY_ALLOW_PRIVATE_TARGETS=true)?"
                    .into(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(Hooked {
        probe_secs: made.elapsed().as_secs_f64(),
        ..hooked
    })
}

/// Deletes the target, then the probe user (whose deletion no target
/// receives then).
async fn unhook(h: &Hooked) {
    if let Err(e) = h.dir.delete_target(h.target, "bench").await {
        eprintln!("bench-delivery: cannot delete the benchmark's target: {e}");
    }
    if let Err(e) = h.dir.delete_user(&h.probe_user, None).await {
        eprintln!("bench-delivery: cannot delete the probe user: {e}");
    }
}

/// Runs the mix (on the calling task's runtime).
pub async fn run(opts: MixOptions) -> Result<MixReport, LoadError> {
    let hooked = match &opts.webhook {
        Some(setup) => Some(hook(setup, opts.sample).await?),
        None => None,
    };
    let _idle = match (&opts.webhook, &opts.open_store) {
        (None, Some(url)) => Some(
            Store::connect(url, StoreOptions::default())
                .await
                .map_err(|e| LoadError(format!("cannot open the server's store: {e}")))?,
        ),
        _ => None,
    };
    let result = measure(&opts, hooked.as_ref()).await;
    if let Some(h) = &hooked {
        unhook(h).await;
    }
    result
}

async fn measure(opts: &MixOptions, hooked: Option<&Hooked>) -> Result<MixReport, LoadError> {
    let server_before = CpuSnapshot::of(opts.server_pid);
    let bench_before = CpuSnapshot::now();
    let started = Instant::now();
    let steady = crate::run(Options {
        targets: opts.targets.clone(),
        concurrency: opts.concurrency,
        scenario: Scenario::Steady,
        users: opts.users,
        groups: 0,
        duration: opts.duration,
        gateways: Vec::new(),
    })
    .await?;
    let mix_time = started.elapsed();
    let server_cpu = match opts.server_pid {
        Some(_) => CpuSnapshot::of(opts.server_pid).since(&server_before),
        None => Default::default(),
    };
    let bench_cpu = CpuSnapshot::now().since(&bench_before);
    let lag = match hooked {
        Some(h) => Some(lag(h, opts, mix_time).await?),
        None => None,
    };
    Ok(MixReport {
        delivery: hooked.is_some(),
        steady,
        lag,
        server_cpu_cores: per_thread(server_cpu, mix_time).1,
        bench_cpu_cores: per_thread(bench_cpu, mix_time).1,
    })
}

async fn lag(h: &Hooked, opts: &MixOptions, mix_time: Duration) -> Result<LagReport, LoadError> {
    let mix_end = Instant::now();
    let (ids, _) = all_events(&h.dir, h.after).await?;
    let receiver: &Receiver = &h.receiver.receiver;
    let deadline = mix_end + opts.drain;
    let complete = loop {
        if receiver.has_all(&ids) {
            break true;
        }
        if Instant::now() >= deadline {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let arrivals: Vec<_> = receiver.arrivals(&ids).into_iter().flatten().collect();
    let drain = arrivals
        .iter()
        .map(|a| a.at)
        .max()
        .map_or(Duration::ZERO, |last| {
            last.saturating_duration_since(mix_end)
        });
    let mut lags: Vec<f64> = arrivals.iter().filter_map(|a| a.lag_ms).collect();
    lags.sort_by(f64::total_cmp);
    let tally = receiver.tally();
    Ok(LagReport {
        probe_secs: h.probe_secs,
        events: ids.len(),
        delivered: arrivals.len(),
        complete,
        drain_secs: drain.as_secs_f64(),
        events_per_sec: ids.len() as f64 / mix_time.as_secs_f64().max(1e-9),
        lag_p50_ms: quantile(&lags, 0.50),
        lag_p90_ms: quantile(&lags, 0.90),
        lag_p99_ms: quantile(&lags, 0.99),
        lag_max_ms: lags.last().copied().unwrap_or(0.0),
        receiver: tally.into(),
    })
}
