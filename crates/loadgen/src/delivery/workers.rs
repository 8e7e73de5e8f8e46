//! Events per second delivered by `scimgate worker` processes that share
//! the delivery through Redis (docs/delivery-scale-out.md): one worker
//! against two, each on a backlog of its own.
//!
//! The caller (`scripts/bench-delivery --redis-workers`) starts the
//! workers on an empty PostgreSQL database and a Redis database of their
//! own; this benchmark then, in order:
//! 1. waits until the workers have shared the partitions out: every
//!    partition held and each worker at its share (a second worker gets
//!    its half only when the first renews its partitions, every third of a
//!    lease, 10 s by default; timing that hand-over is not the point);
//! 2. creates the tenants, one webhook target each on the benchmark's
//!    receiver, disabled at once (no event is theirs yet). A tenant's
//!    partition follows from its random id: tenants are created until each
//!    worker's partitions hold an equal share of `tenants`, and the ones
//!    beyond a worker's share are left without a target (they cost
//!    nothing), so the figure measures the sharing, not the luck of the hash;
//! 3. commits the backlog through the store's API (the gateway's write
//!    path): per tenant, users created, then each updated;
//! 4. waits until the relay has copied the whole log to Redis, and two
//!    polls more (a worker looks up a tenant's targets when an entry names
//!    it, at most once per poll; until now they were disabled);
//! 5. starts the clock, enables every target and writes one more user per
//!    tenant, whose entry wakes the tenant's worker at once;
//! 6. waits (bounded) until the receiver holds every event after each
//!    target's cursor.
//!
//! Events/s is every event over the time from the clock's start to the
//! last arrival; per worker, the events of the tenants of its partitions
//! over the time to their last arrival.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use cluster::stream::{self, EventStreams, PARTITIONS};
use serde::Serialize;
use serde_json::json;
use store::{NewTenant, Store, StoreOptions, TenantKind, TenantStore};
use sync_worker::address::AddressPolicy;
use sync_worker::secrets::{KEY_FILE, SecretBox};
use sync_worker::targets::{TargetSpec, Targets};
use uuid::Uuid;

use super::cpu::CpuSnapshot;
use super::receiver::{Receiver, ReceiverTally};
use super::throughput::seed;
use super::{all_events, per_thread};
use crate::LoadError;

/// Bound on one Redis call of the benchmark.
const REDIS_CALL: Duration = Duration::from_secs(5);
/// The workers' poll (`DeliveryConfig::poll`'s default): how often a
/// worker looks up a tenant's targets at most, and the relay reads the
/// log of commits made in other processes.
const POLL: Duration = Duration::from_secs(1);
/// Tenants created at most per tenant wanted, looking for the partitions
/// that still need one.
const TRIES_PER_TENANT: usize = 100;

/// The benchmark's parameters.
#[derive(Debug, Clone)]
pub struct WorkersOptions {
    /// The workers' PostgreSQL database (empty but for what they made).
    pub database_url: String,
    /// The workers' data directory, holding the sealing key file.
    pub data_dir: PathBuf,
    /// The workers' Redis (`redis://127.0.0.1:PORT/DB`).
    pub redis_url: String,
    /// How many workers were started.
    pub workers: usize,
    /// Tenants with a target (shared equally among the workers).
    pub tenants: usize,
    /// Users per tenant.
    pub users: usize,
    /// Updates per user after all of the tenant's are created.
    pub updates: usize,
    /// Writes in flight while seeding.
    pub seed_concurrency: usize,
    /// Check every n-th delivery's signature and envelope.
    pub sample: u64,
    /// The longest wait for the workers to share the partitions.
    pub balance_timeout: Duration,
    /// The longest wait for the deliveries.
    pub timeout: Duration,
    /// The workers' process ids, to read their CPU from `/proc`.
    pub worker_pids: Vec<u32>,
}

/// One worker's part.
#[derive(Debug, Clone, Serialize)]
pub struct WorkerShare {
    /// The worker's name (its partition leases' value).
    pub worker: String,
    /// The partitions it held.
    pub partitions: Vec<u16>,
    /// Tenants (with a target) of those partitions.
    pub tenants: usize,
    /// Their events.
    pub events: usize,
    /// Of those, how many arrived.
    pub delivered: usize,
    /// Seconds from the clock's start to its tenants' last arrival.
    pub elapsed_secs: f64,
    /// Its events per second over `elapsed_secs`.
    pub events_per_sec: f64,
}

/// What the benchmark measured.
#[derive(Debug, Clone, Serialize)]
pub struct WorkersReport {
    /// Workers sharing the delivery.
    pub workers: usize,
    /// Tenants with a target.
    pub tenants: usize,
    /// Tenants created beyond those (in partitions already served by
    /// enough tenants; no target, no events).
    pub spare_tenants: usize,
    /// Events to deliver: the backlog and one wake-up user per tenant.
    pub events: usize,
    /// Seconds the backlog took to commit.
    pub seed_secs: f64,
    /// Seconds from the start until the workers had shared the partitions.
    pub balance_secs: f64,
    /// Distinct events the receiver got.
    pub delivered: usize,
    /// Whether every event arrived before the timeout.
    pub complete: bool,
    /// Seconds from the clock's start to the last arrival.
    pub elapsed_secs: f64,
    /// Events per second over `elapsed_secs`: the figure.
    pub events_per_sec: f64,
    /// Seconds from the clock's start to the first arrival.
    pub first_arrival_secs: f64,
    /// Events per second from the first arrival to the last.
    pub steady_events_per_sec: f64,
    /// Per worker.
    pub per_worker: Vec<WorkerShare>,
    /// Whether the partitions were held by the same workers after the run.
    pub partitions_kept: bool,
    /// Events that arrived before the clock started (0, or the run is void).
    pub arrived_early: usize,
    /// What the receiver saw (its fields at this level in JSON).
    #[serde(flatten)]
    pub receiver: ReceiverTally,
    /// CPU cores each worker process used from the clock's start to the
    /// last arrival, by process id.
    pub worker_cpu_cores: BTreeMap<String, f64>,
    /// CPU cores of this process's threads over the same time (the
    /// receiver is `bench-receiver`).
    pub bench_cpu_cores: BTreeMap<String, f64>,
}

impl WorkersReport {
    /// Whether every event arrived once, intact, after the clock started,
    /// with the partitions where they were.
    pub fn honest(&self) -> bool {
        self.complete && self.receiver.intact() && self.arrived_early == 0 && self.partitions_kept
    }

    /// The report as text.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        out.push_str(&format!(
            "delivery through redis, {} worker(s): {} tenants ({} spare); a backlog of {} events \
             committed in {:.1} s, and one wake-up user per tenant; partitions shared after {:.1} s\n",
            self.workers,
            self.tenants,
            self.spare_tenants,
            self.events.saturating_sub(self.tenants),
            self.seed_secs,
            self.balance_secs
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
        for w in &self.per_worker {
            out.push_str(&format!(
                "  worker {}: {} partitions, {} tenants, {} of {} events in {:.2} s: {:.0} events/s\n",
                w.worker,
                w.partitions.len(),
                w.tenants,
                w.delivered,
                w.events,
                w.elapsed_secs,
                w.events_per_sec
            ));
        }
        out.push_str(&format!(
            "  receiver: {}, {} before the start; {}\n",
            self.receiver.counts_text(),
            self.arrived_early,
            self.receiver.checks_text()
        ));
        if !self.partitions_kept {
            out.push_str("  the partitions moved between workers during the run\n");
        }
        super::push_cpu_lines(
            &mut out,
            &[
                ("workers", &self.worker_cpu_cores),
                ("bench", &self.bench_cpu_cores),
            ],
        );
        out
    }
}

/// Runs the benchmark; blocks the calling thread.
pub fn run(opts: WorkersOptions) -> Result<WorkersReport, LoadError> {
    if !(1..=usize::from(PARTITIONS)).contains(&opts.workers) {
        return Err(LoadError(format!(
            "--workers must be between 1 and {PARTITIONS} (the partitions)"
        )));
    }
    if !(8..=1000).contains(&opts.tenants) {
        return Err(LoadError("--tenants must be between 8 and 1000".into()));
    }
    if opts.users == 0 {
        return Err(LoadError("--users must be at least 1".into()));
    }
    super::with_receiver(opts.sample, "bench-seed", |receiver| {
        measure(opts, receiver)
    })
}

/// The holder of each partition (`None`: not held).
async fn holders(
    redis: &mut redis::aio::MultiplexedConnection,
) -> Result<Vec<Option<String>>, LoadError> {
    let keys: Vec<String> = (0..PARTITIONS)
        .map(|p| format!("scimgate:partition:{p}"))
        .collect();
    let mut mget = redis::cmd("MGET");
    mget.arg(&keys);
    match tokio::time::timeout(REDIS_CALL, mget.query_async(redis)).await {
        Ok(Ok(held)) => Ok(held),
        Ok(Err(e)) => Err(LoadError(format!(
            "redis: cannot read the partition leases: {e}"
        ))),
        Err(_) => Err(LoadError("redis did not answer within 5 s".into())),
    }
}

/// Each worker's partitions, when every partition is held and `workers`
/// workers hold them, none above its share.
fn shared_out(held: &[Option<String>], workers: usize) -> Option<BTreeMap<String, Vec<u16>>> {
    let mut by_worker: BTreeMap<String, Vec<u16>> = BTreeMap::new();
    for (p, holder) in (0..PARTITIONS).zip(held) {
        by_worker.entry(holder.clone()?).or_default().push(p);
    }
    let share = usize::from(stream::share(PARTITIONS, workers as u64));
    (by_worker.len() == workers && by_worker.values().all(|ps| ps.len() <= share))
        .then_some(by_worker)
}

/// Waits until the workers have shared the partitions out, the same two
/// readings in a row half a second apart.
async fn wait_for_shares(
    redis: &mut redis::aio::MultiplexedConnection,
    opts: &WorkersOptions,
) -> Result<BTreeMap<String, Vec<u16>>, LoadError> {
    let deadline = Instant::now() + opts.balance_timeout;
    let mut last: Option<BTreeMap<String, Vec<u16>>> = None;
    loop {
        let held = holders(redis).await?;
        let now = shared_out(&held, opts.workers);
        if now.is_some() && now == last {
            return now.ok_or_else(|| LoadError("no partitions".into()));
        }
        if Instant::now() >= deadline {
            return Err(LoadError(format!(
                "the {} worker(s) did not share the {PARTITIONS} partitions within {} s \
                 (holders: {held:?}): are they running, on this Redis?",
                opts.workers,
                opts.balance_timeout.as_secs()
            )));
        }
        last = now;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// One tenant of the run.
struct Bench {
    dir: TenantStore,
    target: Uuid,
    cursor: i64,
    /// The worker holding its partition.
    worker: String,
}

/// Creates `opts.tenants` tenants spread equally over the workers'
/// partitions, each with a disabled webhook target on the receiver;
/// returns them and how many spare tenants were made on the way.
async fn tenants(
    store: &Store,
    key: &SecretBox,
    receiver: &Receiver,
    shares: &BTreeMap<String, Vec<u16>>,
    opts: &WorkersOptions,
) -> Result<(Vec<Bench>, usize), LoadError> {
    let owner: BTreeMap<u16, &String> = shares
        .iter()
        .flat_map(|(w, ps)| ps.iter().map(move |p| (*p, w)))
        .collect();
    // Worker k of n gets tenants / n, the first tenants % n one more.
    let mut wanted: BTreeMap<&String, usize> = shares
        .keys()
        .enumerate()
        .map(|(k, w)| {
            let extra = usize::from(k < opts.tenants % shares.len());
            (w, opts.tenants / shares.len() + extra)
        })
        .collect();
    let run = &Uuid::new_v4().simple().to_string()[..8];
    let mut made = Vec::new();
    let mut spare = 0;
    for k in 0..opts.tenants * TRIES_PER_TENANT {
        if made.len() == opts.tenants {
            break;
        }
        let tenant = store
            .admin()
            .create_tenant(
                NewTenant {
                    slug: format!("wbench-{run}-{k:04}"),
                    name: format!("redis workers bench {k}"),
                    kind: TenantKind::Standard,
                },
                "bench",
            )
            .await
            .map_err(|e| LoadError(format!("cannot create a tenant: {e}")))?;
        let Some(worker) = owner.get(&stream::partition_of(tenant.id())).copied() else {
            return Err(LoadError("a partition has no worker".into()));
        };
        match wanted.get_mut(worker) {
            Some(n) if *n > 0 => *n -= 1,
            _ => {
                spare += 1;
                continue;
            }
        }
        let dir = store.tenant(&tenant);
        let targets = Targets {
            store: &dir,
            secrets: Some(key),
            policy: AddressPolicy {
                allow_private: true,
            },
        };
        let created = targets
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
            .map_err(|e| LoadError(format!("cannot create a target: {e}")))?;
        // Disabled before the tenant has any event: no worker delivers
        // the backlog before the clock starts.
        targets
            .update(created.target.id, None, None, None, Some(false), "bench")
            .await
            .map_err(|e| LoadError(format!("cannot disable a target: {e}")))?;
        if let Some(secret) = &created.secret {
            receiver.add_secret(secret)?;
        }
        made.push(Bench {
            dir,
            target: created.target.id,
            cursor: created.target.cursor,
            worker: worker.clone(),
        });
    }
    if made.len() < opts.tenants {
        return Err(LoadError(format!(
            "found partitions for only {} of {} tenants",
            made.len(),
            opts.tenants
        )));
    }
    Ok((made, spare))
}

/// Waits until the relay has copied the whole log to Redis.
async fn wait_for_relay(store: &Store, streams: &EventStreams) -> Result<(), LoadError> {
    let head = store
        .event_log()
        .head()
        .await
        .map_err(|e| LoadError(format!("cannot read the log's head: {e}")))?;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let at = streams
            .relay_position()
            .await
            .map_err(|e| LoadError(format!("redis: cannot read the relay position: {e}")))?;
        if at.is_some_and(|p| p >= head) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(LoadError(format!(
                "the relay did not reach the log's head ({head}) within 120 s (at {at:?})"
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn measure(opts: WorkersOptions, receiver: Receiver) -> Result<WorkersReport, LoadError> {
    let started = Instant::now();
    let key_file = opts.data_dir.join(KEY_FILE);
    if !key_file.is_file() {
        return Err(LoadError(format!(
            "{} does not exist: give the workers' data directory, with their key",
            key_file.display()
        )));
    }
    let (key, _) = SecretBox::load_or_create(&opts.data_dir)
        .map_err(|e| LoadError(format!("cannot load the sealing key: {e}")))?;
    let store = Store::connect(&opts.database_url, StoreOptions::default())
        .await
        .map_err(|e| LoadError(format!("cannot open the store: {e}")))?;
    store
        .migrate()
        .await
        .map_err(|e| LoadError(format!("cannot migrate the store: {e}")))?;
    let client = redis::Client::open(opts.redis_url.as_str())
        .map_err(|e| LoadError(format!("redis URL: {e}")))?;
    let mut redis = tokio::time::timeout(REDIS_CALL, client.get_multiplexed_async_connection())
        .await
        .map_err(|_| LoadError("redis did not answer within 5 s".into()))?
        .map_err(|e| LoadError(format!("cannot connect to redis: {e}")))?;
    let streams = EventStreams::new(
        cluster::Redis::open(&opts.redis_url).map_err(|e| LoadError(format!("redis: {e}")))?,
    );

    let shares = wait_for_shares(&mut redis, &opts).await?;
    let balance_secs = started.elapsed().as_secs_f64();
    let (benches, spare) = tenants(&store, &key, &receiver, &shares, &opts).await?;

    let seeding = Instant::now();
    for b in &benches {
        seed(&b.dir, opts.users, opts.updates, opts.seed_concurrency).await?;
    }
    let seed_secs = seeding.elapsed().as_secs_f64();
    wait_for_relay(&store, &streams).await?;
    tokio::time::sleep(2 * POLL).await;
    let arrived_early = receiver.distinct();

    let worker_before: Vec<(u32, CpuSnapshot)> = opts
        .worker_pids
        .iter()
        .map(|pid| (*pid, CpuSnapshot::of(Some(*pid))))
        .collect();
    let bench_before = CpuSnapshot::now();
    let clock = Instant::now();
    for b in &benches {
        Targets {
            store: &b.dir,
            secrets: Some(&key),
            policy: AddressPolicy {
                allow_private: true,
            },
        }
        .update(b.target, None, None, None, Some(true), "bench")
        .await
        .map_err(|e| LoadError(format!("cannot enable a target: {e}")))?;
    }
    for (k, b) in benches.iter().enumerate() {
        b.dir
            .create_user(json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": format!("bench.wake{k}@example.test"),
                "active": true,
            }))
            .await
            .map_err(|e| LoadError(format!("cannot write a wake-up user: {e}")))?;
    }
    let mut ids_of = Vec::with_capacity(benches.len());
    for b in &benches {
        ids_of.push(all_events(&b.dir, b.cursor).await?.0);
    }
    let ids: Vec<i64> = ids_of.iter().flatten().copied().collect();
    let deadline = clock + opts.timeout;
    let complete = loop {
        if receiver.has_all(&ids) {
            break true;
        }
        if Instant::now() >= deadline {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let waited = clock.elapsed();
    let bench_cpu = CpuSnapshot::now().since(&bench_before);
    let worker_cpu: Vec<(u32, f64)> = worker_before
        .iter()
        .map(|(pid, before)| {
            let used: f64 = CpuSnapshot::of(Some(*pid)).since(before).values().sum();
            (*pid, used)
        })
        .collect();
    let kept =
        shared_out(&holders(&mut redis).await?, opts.workers).is_some_and(|now| now == shares);

    let arrivals: Vec<_> = receiver.arrivals(&ids).into_iter().flatten().collect();
    let first = arrivals.iter().map(|a| a.at).min();
    let last = arrivals.iter().map(|a| a.at).max();
    let elapsed = last.map_or(waited, |l| l.saturating_duration_since(clock));
    let span = match (first, last) {
        (Some(f), Some(l)) => l.duration_since(f),
        _ => Duration::ZERO,
    };
    let per_worker = shares
        .iter()
        .map(|(worker, partitions)| {
            let mine: Vec<i64> = benches
                .iter()
                .zip(&ids_of)
                .filter(|(b, _)| &b.worker == worker)
                .flat_map(|(_, ids)| ids.iter().copied())
                .collect();
            let got: Vec<Instant> = receiver
                .arrivals(&mine)
                .into_iter()
                .flatten()
                .map(|a| a.at)
                .collect();
            let took = got
                .iter()
                .max()
                .map_or(Duration::ZERO, |l| l.saturating_duration_since(clock));
            WorkerShare {
                worker: worker.clone(),
                partitions: partitions.clone(),
                tenants: benches.iter().filter(|b| &b.worker == worker).count(),
                events: mine.len(),
                delivered: got.len(),
                elapsed_secs: took.as_secs_f64(),
                events_per_sec: got.len() as f64 / took.as_secs_f64().max(1e-9),
            }
        })
        .collect();
    let tally = receiver.tally();
    let wall = elapsed.as_secs_f64().max(1e-9);
    Ok(WorkersReport {
        workers: opts.workers,
        tenants: benches.len(),
        spare_tenants: spare,
        events: ids.len(),
        seed_secs,
        balance_secs,
        delivered: arrivals.len(),
        complete,
        elapsed_secs: elapsed.as_secs_f64(),
        events_per_sec: arrivals.len() as f64 / wall,
        first_arrival_secs: first.map_or(0.0, |f| f.saturating_duration_since(clock).as_secs_f64()),
        steady_events_per_sec: arrivals.len().saturating_sub(1) as f64
            / span.as_secs_f64().max(1e-9),
        per_worker,
        partitions_kept: kept,
        arrived_early,
        receiver: tally.into(),
        worker_cpu_cores: worker_cpu
            .into_iter()
            .map(|(pid, secs)| (format!("pid {pid}"), secs / wall))
            .collect(),
        bench_cpu_cores: per_thread(bench_cpu, elapsed).1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(names: &[&str]) -> Vec<Option<String>> {
        names
            .iter()
            .map(|n| (!n.is_empty()).then(|| (*n).to_owned()))
            .collect()
    }

    #[test]
    fn partitions_are_shared_out_when_each_worker_holds_its_share() {
        let one = held(&["a"; 16]);
        let shares = shared_out(&one, 1).unwrap_or_default();
        assert_eq!(shares.get("a").map(Vec::len), Some(16));
        // The first worker still holds them all: not shared out for two.
        assert!(shared_out(&one, 2).is_none());
        let mut two = held(&["a"; 16]);
        for p in two.iter_mut().skip(8) {
            *p = Some("b".into());
        }
        let shares = shared_out(&two, 2).unwrap_or_default();
        assert_eq!(shares.get("b"), Some(&(8..16).collect::<Vec<u16>>()));
        // A partition not held yet.
        two[3] = None;
        assert!(shared_out(&two, 2).is_none());
    }
}
