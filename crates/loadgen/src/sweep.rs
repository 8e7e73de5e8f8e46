//! Latency against offered load: an open-loop sweep.
//!
//! For each offered rate the sweep sends requests on a fixed schedule,
//! request `k` of a step at `start + k / rate`, whatever the server is
//! doing, with at most `max_in_flight` requests outstanding (one keep-alive
//! connection each). Every latency is measured from the request's intended
//! send time, not from when it went out: a request that had to wait for a
//! free connection, or for the load tool itself, counts its wait. Without
//! that, a slow server would slow the load down and hide its own slowness
//! (coordinated omission). Requests a step could not send before the end of
//! its window (every connection busy) are counted as `not_sent`.
//!
//! A thread of its own keeps the schedule (`std::thread::sleep`, a few tens
//! of microseconds late at most); tokio's timer wheel would add up to a
//! millisecond to every request, which at a few hundred microseconds per
//! lookup is more than the request itself.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use http::Method;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::Semaphore;

use crate::client::{Conn, Endpoint};
use crate::report::{OpStats, Stats};
use crate::scenarios::{
    Sample, filter_users, first_of_list, member_patch, sample, send, user_patch,
};
use crate::{LoadError, MAX_DURATION_SECS, Target, check_loopback};

/// Highest offered rate accepted, requests per second.
pub const MAX_RATE: u32 = 100_000;
/// Most requests in flight accepted (one connection each).
pub const MAX_IN_FLIGHT: usize = 4096;

/// The request mix every step sends, as printed in reports.
pub const MIX: &str = "steady mix, one request per arrival: 60 % `userName eq` lookups, \
                       25 % user PATCHes (displayName, active), 15 % group member PATCHes \
                       (one member added, and by the next member arrival removed)";

/// A sweep's parameters.
#[derive(Debug, Clone)]
pub struct SweepOptions {
    /// Tenants to drive (at least one); each arrival picks one at random.
    pub targets: Vec<Target>,
    /// Users per tenant (`loadgen.user0000000@…` and on), created beforehand
    /// by the `initial` scenario.
    pub users: usize,
    /// Offered rates, requests per second, in the order they are run.
    pub rates: Vec<u32>,
    /// How long each rate is offered.
    pub step: Duration,
    /// Bound on requests in flight (and on connections).
    pub max_in_flight: usize,
    /// Idle time between two steps, for the server to drain and settle.
    pub pause: Duration,
}

/// When a step's requests are due: `rate` per second for `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// Requests per second (at least 1).
    pub rate: u32,
    /// How long the rate is offered.
    pub window: Duration,
}

impl Schedule {
    /// Requests due in the window: `rate × window`, rounded down.
    pub fn count(&self) -> u64 {
        (u128::from(self.rate) * self.window.as_nanos() / 1_000_000_000) as u64
    }

    /// When request `k` is due, from the step's start: `k / rate` seconds,
    /// to the nanosecond (no drift accumulates over a long step).
    pub fn offset(&self, k: u64) -> Duration {
        let nanos = u128::from(k) * 1_000_000_000 / u128::from(self.rate.max(1));
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }
}

/// What one step of the open loop measured.
#[derive(Debug, Default)]
pub(crate) struct StepStats {
    /// Every request: latency from its intended send time, and its outcome.
    pub(crate) all: OpStats,
    /// The same per operation.
    pub(crate) ops: Stats,
    /// How late requests went out (actual − intended send time): waiting
    /// for a free connection, and the load tool's own delay.
    pub(crate) send_lag: OpStats,
    /// Requests due in the window.
    pub(crate) scheduled: u64,
    /// Requests sent.
    pub(crate) sent: u64,
    /// Requests sent that had to wait for a free connection.
    pub(crate) waited_for_slot: u64,
    /// Most requests in flight at once.
    pub(crate) peak_in_flight: usize,
    /// From the step's start to its last reply.
    pub(crate) elapsed: Duration,
}

/// The shared, locked part of a step's figures.
#[derive(Default)]
struct Recorder {
    all: OpStats,
    ops: Stats,
    send_lag: OpStats,
}

fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs one step: sends `schedule.count()` requests at their due times,
/// at most `max_in_flight` outstanding, each through `call(k, conn)`, which
/// returns the connection (`C`, kept in a pool and reused) with the
/// operation's name and its error, if any. Latencies are measured from the
/// due time. Requests still unsent when the window ends are dropped.
pub(crate) async fn open_loop<C, F, Fut>(
    schedule: Schedule,
    max_in_flight: usize,
    mut call: F,
) -> StepStats
where
    C: Default + Send + 'static,
    F: FnMut(u64, C) -> Fut,
    Fut: Future<Output = (C, &'static str, Option<String>)> + Send + 'static,
{
    let max_in_flight = max_in_flight.clamp(1, MAX_IN_FLIGHT);
    let count = schedule.count();
    let recorder = Arc::new(Mutex::new(Recorder::default()));
    let pool: Arc<Mutex<Vec<C>>> = Arc::new(Mutex::new(Vec::new()));
    let slots = Arc::new(Semaphore::new(max_in_flight));
    let (due_tx, mut due_rx) = tokio::sync::mpsc::unbounded_channel::<(u64, Instant)>();

    let start = Instant::now();
    let end = start + schedule.window;
    let ticker = std::thread::spawn(move || {
        for k in 0..count {
            let due = start + schedule.offset(k);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            if due_tx.send((k, due)).is_err() {
                break;
            }
        }
    });

    let mut sent = 0u64;
    let mut waited = 0u64;
    let mut peak = 0usize;
    while let Some((k, due)) = due_rx.recv().await {
        if Instant::now() >= end {
            break;
        }
        let permit = match Arc::clone(&slots).try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                waited += 1;
                match tokio::time::timeout_at(end.into(), Arc::clone(&slots).acquire_owned()).await
                {
                    Ok(Ok(permit)) => permit,
                    // The window ended with every connection busy.
                    _ => break,
                }
            }
        };
        peak = peak.max(max_in_flight - slots.available_permits());
        let conn = locked(&pool).pop().unwrap_or_default();
        let lag = due.elapsed();
        let request = call(k, conn);
        let recorder = Arc::clone(&recorder);
        let pool = Arc::clone(&pool);
        tokio::spawn(async move {
            let (conn, op, error) = request.await;
            let latency = due.elapsed();
            {
                let mut r = locked(&recorder);
                r.send_lag.record(lag, None);
                r.all.record(latency, error.clone());
                r.ops.record(op, latency, error);
            }
            locked(&pool).push(conn);
            drop(permit);
        });
        sent += 1;
    }
    // Stops the ticker at its next due time if the window ended early.
    drop(due_rx);
    // Every request in flight ends (the client bounds each exchange).
    let max = u32::try_from(max_in_flight).unwrap_or(u32::MAX);
    let _ = slots.acquire_many(max).await;
    let elapsed = start.elapsed();
    let _ = tokio::task::spawn_blocking(move || ticker.join()).await;

    let recorder = std::mem::take(&mut *locked(&recorder));
    StepStats {
        all: recorder.all,
        ops: recorder.ops,
        send_lag: recorder.send_lag,
        scheduled: count,
        sent,
        waited_for_slot: waited,
        peak_in_flight: peak,
        elapsed,
    }
}

/// One operation's figures within a step.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepOp {
    /// Operation name, e.g. `get_user_by_userName`.
    pub operation: String,
    /// Requests made.
    pub count: u64,
    /// Requests that failed.
    pub errors: u64,
    /// Median latency (from the intended send time) in milliseconds.
    pub p50_ms: f64,
    /// 99th percentile latency in milliseconds.
    pub p99_ms: f64,
    /// Largest latency in milliseconds.
    pub max_ms: f64,
}

/// One offered rate's results.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepReport {
    /// Requests per second offered.
    pub offered_per_sec: u32,
    /// Seconds the rate was offered.
    pub window_secs: f64,
    /// Requests due in the window.
    pub scheduled: u64,
    /// Requests sent.
    pub sent: u64,
    /// Requests due but not sent by the end of the window (every connection busy).
    pub not_sent: u64,
    /// Requests that failed (non-2xx, transport error, or a lookup not finding its one user).
    pub errors: u64,
    /// Failures by kind: the HTTP status, `transport`, or `unexpected`.
    pub errors_by_kind: BTreeMap<String, u64>,
    /// Successful replies per second, from the step's start to its last reply.
    pub achieved_per_sec: f64,
    /// Seconds from the step's start to its last reply.
    pub elapsed_secs: f64,
    /// Median latency from the intended send time, in milliseconds.
    pub p50_ms: f64,
    /// 90th percentile, milliseconds.
    pub p90_ms: f64,
    /// 99th percentile, milliseconds.
    pub p99_ms: f64,
    /// 99.9th percentile, milliseconds.
    pub p999_ms: f64,
    /// Largest latency, milliseconds.
    pub max_ms: f64,
    /// Requests that waited for a free connection before going out.
    pub waited_for_slot: u64,
    /// Most requests in flight at once.
    pub peak_in_flight: usize,
    /// 99th percentile of how late requests went out, milliseconds (the
    /// load tool's own lag plus any wait for a free connection).
    pub send_lag_p99_ms: f64,
    /// Per operation.
    pub operations: Vec<StepOp>,
}

impl StepReport {
    pub(crate) fn new(schedule: Schedule, stats: &StepStats) -> StepReport {
        let errors = stats.all.error_count();
        let ok = stats.all.count().saturating_sub(errors);
        let secs = stats.elapsed.as_secs_f64().max(1e-9);
        StepReport {
            offered_per_sec: schedule.rate,
            window_secs: schedule.window.as_secs_f64(),
            scheduled: stats.scheduled,
            sent: stats.sent,
            not_sent: stats.scheduled.saturating_sub(stats.sent),
            errors,
            errors_by_kind: stats.all.errors_by_kind().clone(),
            achieved_per_sec: ok as f64 / secs,
            elapsed_secs: stats.elapsed.as_secs_f64(),
            p50_ms: stats.all.quantile_ms(0.50),
            p90_ms: stats.all.quantile_ms(0.90),
            p99_ms: stats.all.quantile_ms(0.99),
            p999_ms: stats.all.quantile_ms(0.999),
            max_ms: stats.all.max_ms(),
            waited_for_slot: stats.waited_for_slot,
            peak_in_flight: stats.peak_in_flight,
            send_lag_p99_ms: stats.send_lag.quantile_ms(0.99),
            operations: stats
                .ops
                .iter()
                .map(|(name, op)| StepOp {
                    operation: name.to_string(),
                    count: op.count(),
                    errors: op.error_count(),
                    p50_ms: op.quantile_ms(0.50),
                    p99_ms: op.quantile_ms(0.99),
                    max_ms: op.max_ms(),
                })
                .collect(),
        }
    }
}

/// A whole sweep.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SweepReport {
    /// The request mix.
    pub mix: String,
    /// Tenants driven.
    pub targets: usize,
    /// Users per tenant looked up.
    pub users: usize,
    /// Bound on requests in flight.
    pub max_in_flight: usize,
    /// Seconds per offered rate.
    pub secs_per_rate: f64,
    /// One entry per offered rate, in the order run.
    pub steps: Vec<StepReport>,
}

/// `1234` as `1,234`.
fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `1234.5` as `1,235`; small values keep their decimals.
fn figure(v: f64) -> String {
    if v >= 100.0 {
        count(v.round() as u64)
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

impl SweepReport {
    /// The figures as a Markdown table, one row per offered rate.
    pub fn to_markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "| offered req/s | achieved req/s | sent | not sent | errors | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | peak in flight | send lag p99 ms |"
        );
        let _ = writeln!(
            out,
            "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        );
        for s in &self.steps {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                count(u64::from(s.offered_per_sec)),
                figure(s.achieved_per_sec),
                count(s.sent),
                count(s.not_sent),
                s.errors,
                figure(s.p50_ms),
                figure(s.p90_ms),
                figure(s.p99_ms),
                figure(s.p999_ms),
                figure(s.max_ms),
                s.peak_in_flight,
                figure(s.send_lag_p99_ms)
            );
        }
        out
    }

    /// The figures as CSV (a header line, then one line per offered rate).
    pub fn to_csv(&self) -> String {
        let mut out = String::from(
            "offered_per_sec,achieved_per_sec,scheduled,sent,not_sent,errors,p50_ms,p90_ms,p99_ms,p999_ms,max_ms,peak_in_flight,waited_for_slot,send_lag_p99_ms,window_secs\n",
        );
        for s in &self.steps {
            let _ = writeln!(
                out,
                "{},{:.1},{},{},{},{},{:.3},{:.3},{:.3},{:.3},{:.3},{},{},{:.3},{:.1}",
                s.offered_per_sec,
                s.achieved_per_sec,
                s.scheduled,
                s.sent,
                s.not_sent,
                s.errors,
                s.p50_ms,
                s.p90_ms,
                s.p99_ms,
                s.p999_ms,
                s.max_ms,
                s.peak_in_flight,
                s.waited_for_slot,
                s.send_lag_p99_ms,
                s.window_secs
            );
        }
        out
    }
}

/// One arrival of the mix, drawn by the dispatcher.
#[derive(Debug, Clone, Copy)]
enum Plan {
    /// `userName eq` lookup of user `user` of tenant `t`.
    Lookup { t: usize, user: usize },
    /// PATCH of sampled user `user` of tenant `t`.
    PatchUser {
        t: usize,
        user: usize,
        name: u32,
        active: bool,
    },
    /// Sampled user `user` added to (or removed from) sampled group `group`.
    Member {
        t: usize,
        group: usize,
        user: usize,
        add: bool,
    },
}

/// Draws the mix's arrivals: the same sequence for the same seed.
struct Mixer {
    rng: StdRng,
    tenants: usize,
    users: usize,
    /// The member the last member arrival added, removed by the next one.
    pending: Option<(usize, usize, usize)>,
}

impl Mixer {
    fn next(&mut self, samples: &[Sample]) -> Plan {
        let t = self.rng.random_range(0..self.tenants);
        let roll = self.rng.random_range(0..100);
        let sample = &samples[t];
        if roll < 60 {
            Plan::Lookup {
                t,
                user: self.rng.random_range(0..self.users),
            }
        } else if roll < 85 || sample.groups.is_empty() {
            Plan::PatchUser {
                t,
                user: self.rng.random_range(0..sample.users.len()),
                name: self.rng.random(),
                active: self.rng.random(),
            }
        } else if let Some((t, group, user)) = self.pending.take() {
            Plan::Member {
                t,
                group,
                user,
                add: false,
            }
        } else {
            let group = self.rng.random_range(0..sample.groups.len());
            let user = self.rng.random_range(0..sample.users.len());
            self.pending = Some((t, group, user));
            Plan::Member {
                t,
                group,
                user,
                add: true,
            }
        }
    }
}

/// Sends one planned request on `conn` and classifies the reply.
async fn perform(
    endpoints: &[Endpoint],
    samples: &[Sample],
    conn: &mut Conn,
    plan: Plan,
) -> (&'static str, Option<String>) {
    let (op, request) = match plan {
        Plan::Lookup { t, user } => ("get_user_by_userName", filter_users(&endpoints[t], user)),
        Plan::PatchUser {
            t,
            user,
            name,
            active,
        } => {
            let id = &samples[t].users[user];
            let body = user_patch(&format!("Load User {name}"), active);
            (
                "patch_user",
                send(&endpoints[t], Method::PATCH, &format!("/Users/{id}"), &body),
            )
        }
        Plan::Member {
            t,
            group,
            user,
            add,
        } => {
            let sample = &samples[t];
            let body = member_patch(
                if add { "Add" } else { "Remove" },
                &[sample.users[user].as_str()],
            );
            let path = format!("/Groups/{}", sample.groups[group]);
            (
                "patch_group_members",
                send(&endpoints[t], Method::PATCH, &path, &body),
            )
        }
    };
    let lookup = matches!(plan, Plan::Lookup { .. });
    let error = match conn.exchange(request).await {
        Ok((status, body)) if (200..300).contains(&status) => {
            if lookup {
                let list: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                (first_of_list(&list).0 != 1).then(|| "unexpected".to_string())
            } else {
                None
            }
        }
        Ok((status, _)) => Some(status.to_string()),
        Err(_) => Some("transport".to_string()),
    };
    (op, error)
}

/// Checks the options, then offers each rate in turn and reports every step.
pub async fn run_sweep(options: SweepOptions) -> Result<SweepReport, LoadError> {
    if options.targets.is_empty() {
        return Err(LoadError(
            "no target: give --url and --token, or --targets FILE".into(),
        ));
    }
    for target in &options.targets {
        check_loopback(&target.scim_url)?;
    }
    if options.rates.is_empty() || options.rates.iter().any(|&r| r == 0 || r > MAX_RATE) {
        return Err(LoadError(format!(
            "--rates: give one or more rates between 1 and {MAX_RATE} requests/s"
        )));
    }
    if options.max_in_flight == 0 || options.max_in_flight > MAX_IN_FLIGHT {
        return Err(LoadError(format!(
            "--max-in-flight must be between 1 and {MAX_IN_FLIGHT}"
        )));
    }
    if options.users == 0 || options.users > 10_000_000 {
        return Err(LoadError("--users must be between 1 and 10000000".into()));
    }
    let total = options.step * u32::try_from(options.rates.len()).unwrap_or(u32::MAX);
    if options.step.is_zero() || total > Duration::from_secs(MAX_DURATION_SECS) {
        return Err(LoadError(format!(
            "--secs-per-rate must be at least 1, and all rates together at most {MAX_DURATION_SECS} seconds"
        )));
    }
    let endpoints: Vec<Endpoint> = options
        .targets
        .iter()
        .map(|t| Endpoint::new(&t.scim_url, &t.token))
        .collect::<Result<_, _>>()?;
    let mut samples = Vec::with_capacity(endpoints.len());
    for endpoint in &endpoints {
        samples.push(sample(endpoint, true).await?);
    }
    let endpoints = Arc::new(endpoints);
    let samples = Arc::new(samples);
    let mut mixer = Mixer {
        rng: StdRng::seed_from_u64(0x5c17_1a7e),
        tenants: endpoints.len(),
        users: options.users,
        pending: None,
    };

    let mut steps = Vec::with_capacity(options.rates.len());
    for (i, &rate) in options.rates.iter().enumerate() {
        if i > 0 && !options.pause.is_zero() {
            tokio::time::sleep(options.pause).await;
        }
        let schedule = Schedule {
            rate,
            window: options.step,
        };
        let stats = open_loop(schedule, options.max_in_flight, |_, mut conn: Conn| {
            let plan = mixer.next(&samples);
            let endpoints = Arc::clone(&endpoints);
            let samples = Arc::clone(&samples);
            async move {
                let (op, error) = perform(&endpoints, &samples, &mut conn, plan).await;
                (conn, op, error)
            }
        })
        .await;
        let step = StepReport::new(schedule, &stats);
        eprintln!(
            "scimgate-loadgen: {rate} req/s offered: {:.0} achieved, p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, {} not sent, {} errors",
            step.achieved_per_sec,
            step.p50_ms,
            step.p99_ms,
            step.p999_ms,
            step.not_sent,
            step.errors
        );
        steps.push(step);
    }
    Ok(SweepReport {
        mix: MIX.to_string(),
        targets: endpoints.len(),
        users: options.users,
        max_in_flight: options.max_in_flight,
        secs_per_rate: options.step.as_secs_f64(),
        steps,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_is_exact_and_does_not_drift() {
        let s = Schedule {
            rate: 1000,
            window: Duration::from_secs(10),
        };
        assert_eq!(s.count(), 10_000);
        assert_eq!(s.offset(0), Duration::ZERO);
        assert_eq!(s.offset(1), Duration::from_millis(1));
        assert_eq!(s.offset(9_999), Duration::from_millis(9_999));
        // A rate that does not divide a second: no rounding error builds up.
        let s = Schedule {
            rate: 3,
            window: Duration::from_millis(2_500),
        };
        assert_eq!(s.count(), 7);
        assert_eq!(s.offset(1), Duration::from_nanos(333_333_333));
        assert_eq!(s.offset(3), Duration::from_secs(1));
        assert_eq!(s.offset(300), Duration::from_secs(100));
        let s = Schedule {
            rate: 250,
            window: Duration::from_millis(999),
        };
        assert_eq!(s.count(), 249);
    }

    /// A server that takes 20 ms per request, one request at a time (one
    /// connection), offered 200 requests/s: it keeps up with 50/s. Measured
    /// from when each request actually went out, every latency would be
    /// 20 ms; measured from when it was due, request `k` (due at 5k ms, sent
    /// at 20k ms, done at 20k + 20 ms) waited 15k + 20 ms.
    #[tokio::test(flavor = "current_thread")]
    async fn latency_counts_the_wait_from_the_intended_send_time() {
        let schedule = Schedule {
            rate: 200,
            window: Duration::from_secs(1),
        };
        let stats = open_loop(schedule, 1, |_, conn: ()| async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            (conn, "slow", None)
        })
        .await;
        let report = StepReport::new(schedule, &stats);
        assert_eq!(report.scheduled, 200);
        assert_eq!(report.sent + report.not_sent, 200);
        // About 50 sent (a loaded machine sends fewer, never more).
        assert!((20..=55).contains(&report.sent), "{report:?}");
        assert_eq!(report.peak_in_flight, 1);
        assert!(report.waited_for_slot >= report.sent - 1, "{report:?}");
        // The median request waited for about half the window.
        assert!(report.p50_ms > 200.0, "{report:?}");
        assert!(report.max_ms > 400.0, "{report:?}");
        assert!(report.p999_ms <= report.max_ms * 1.001);
        assert!(report.p50_ms <= report.p90_ms && report.p90_ms <= report.p99_ms);
        assert!(report.achieved_per_sec < 60.0, "{report:?}");
        assert_eq!(report.errors, 0);
        assert_eq!(report.operations[0].operation, "slow");
    }

    /// The same server with room to spare: everything goes out on time and
    /// the latency is the service time.
    #[tokio::test(flavor = "current_thread")]
    async fn below_capacity_latency_is_the_service_time() {
        let schedule = Schedule {
            rate: 100,
            window: Duration::from_millis(500),
        };
        let stats = open_loop(schedule, 8, |k, conn: ()| async move {
            tokio::time::sleep(Duration::from_millis(2)).await;
            let error = (k % 10 == 0).then(|| "500".to_string());
            (conn, "fast", error)
        })
        .await;
        let report = StepReport::new(schedule, &stats);
        assert_eq!(
            (report.scheduled, report.sent, report.not_sent),
            (50, 50, 0)
        );
        assert_eq!(report.errors, 5);
        assert_eq!(report.errors_by_kind.get("500"), Some(&5));
        assert!(report.p50_ms >= 2.0 && report.p50_ms < 100.0, "{report:?}");
        assert!(report.peak_in_flight <= 8);
        // 45 successes over a little less than half a second (the last reply).
        assert!(
            report.achieved_per_sec > 40.0 && report.achieved_per_sec <= 100.0,
            "{report:?}"
        );
    }

    #[test]
    fn percentiles_and_tables_from_known_latencies() {
        let mut stats = StepStats {
            scheduled: 1000,
            sent: 1000,
            elapsed: Duration::from_secs(1),
            ..StepStats::default()
        };
        for ms in 1..=1000 {
            let latency = Duration::from_millis(ms);
            stats.all.record(latency, None);
            stats.ops.record("get", latency, None);
        }
        let schedule = Schedule {
            rate: 1000,
            window: Duration::from_secs(1),
        };
        let step = StepReport::new(schedule, &stats);
        let close = |got: f64, want: f64| (got - want).abs() <= want * 0.01;
        assert!(close(step.p50_ms, 500.0), "{}", step.p50_ms);
        assert!(close(step.p90_ms, 900.0), "{}", step.p90_ms);
        assert!(close(step.p99_ms, 990.0), "{}", step.p99_ms);
        assert!(close(step.p999_ms, 999.0), "{}", step.p999_ms);
        assert!(close(step.max_ms, 1000.0), "{}", step.max_ms);
        assert!(close(step.achieved_per_sec, 1000.0));
        let report = SweepReport {
            mix: MIX.into(),
            targets: 1,
            users: 10,
            max_in_flight: 4,
            secs_per_rate: 1.0,
            steps: vec![step],
        };
        let md = report.to_markdown();
        assert!(
            md.contains("| 1,000 | 1,000 | 1,000 | 0 | 0 | 500 |"),
            "{md}"
        );
        let csv = report.to_csv();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[1].starts_with("1000,1000.0,1000,1000,0,0,"), "{csv}");
        let json = serde_json::to_string(&report).expect("serializes");
        let back: SweepReport = serde_json::from_str(&json).expect("parses");
        assert_eq!(back.steps[0].sent, 1000);
    }

    #[test]
    fn figures_read_well() {
        assert_eq!(figure(4000.0), "4,000");
        assert_eq!(figure(1234567.4), "1,234,567");
        assert_eq!(figure(250.0), "250");
        assert_eq!(figure(12.34), "12.3");
        assert_eq!(figure(0.456), "0.46");
        assert_eq!(
            (count(80), count(0), count(12_345)),
            ("80".into(), "0".into(), "12,345".into())
        );
    }

    #[test]
    fn member_arrivals_add_then_remove_the_same_member() {
        let samples = vec![Sample {
            users: (0..5).map(|i| format!("u{i}")).collect(),
            groups: (0..3).map(|i| format!("g{i}")).collect(),
        }];
        let mut mixer = Mixer {
            rng: StdRng::seed_from_u64(7),
            tenants: 1,
            users: 5,
            pending: None,
        };
        let mut last_add = None;
        let (mut lookups, mut members) = (0, 0);
        for _ in 0..2_000 {
            match mixer.next(&samples) {
                Plan::Lookup { .. } => lookups += 1,
                Plan::PatchUser { .. } => {}
                Plan::Member {
                    group, user, add, ..
                } => {
                    members += 1;
                    if add {
                        assert!(last_add.is_none());
                        last_add = Some((group, user));
                    } else {
                        assert_eq!(last_add.take(), Some((group, user)));
                    }
                }
            }
        }
        assert!((1_050..1_350).contains(&lookups), "{lookups}");
        assert!((200..400).contains(&members), "{members}");
    }
}
