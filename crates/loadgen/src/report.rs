//! Latency recording per operation and the report printed at the end.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Largest latency recorded exactly, in microseconds (60 s); longer ones are clamped.
const MAX_MICROS: u64 = 60_000_000;

/// Latencies and outcomes of one kind of request.
#[derive(Debug, Clone)]
pub struct OpStats {
    histogram: Histogram<u64>,
    count: u64,
    errors: BTreeMap<String, u64>,
    max_reply_bytes: u64,
}

impl Default for OpStats {
    fn default() -> Self {
        Self {
            histogram: Histogram::new_with_bounds(1, MAX_MICROS, 3)
                .expect("valid histogram bounds"),
            count: 0,
            errors: BTreeMap::new(),
            max_reply_bytes: 0,
        }
    }
}

impl OpStats {
    /// Records one request: its latency and, for a failure, its kind (the status code).
    pub fn record(&mut self, latency: Duration, error: Option<String>) {
        let micros = u64::try_from(latency.as_micros())
            .unwrap_or(MAX_MICROS)
            .clamp(1, MAX_MICROS);
        self.histogram.saturating_record(micros);
        self.count += 1;
        if let Some(kind) = error {
            *self.errors.entry(kind).or_default() += 1;
        }
    }

    /// Notes the size of a reply's body.
    pub fn reply_bytes(&mut self, bytes: u64) {
        self.max_reply_bytes = self.max_reply_bytes.max(bytes);
    }

    /// The largest reply body seen, in bytes.
    pub fn max_reply_bytes(&self) -> u64 {
        self.max_reply_bytes
    }

    /// Counts an already recorded request as failed, e.g. a 200 with an unexpected result.
    pub fn mark_error(&mut self, kind: &str) {
        *self.errors.entry(kind.to_string()).or_default() += 1;
    }

    /// Adds another worker's statistics to these.
    pub fn merge(&mut self, other: &OpStats) {
        self.histogram
            .add(&other.histogram)
            .expect("histograms share their bounds");
        self.count += other.count;
        self.max_reply_bytes = self.max_reply_bytes.max(other.max_reply_bytes);
        for (kind, n) in &other.errors {
            *self.errors.entry(kind.clone()).or_default() += n;
        }
    }

    /// Requests recorded.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Failed requests recorded.
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Failed requests by kind: the HTTP status, `transport`, or `unexpected`.
    pub fn errors_by_kind(&self) -> &BTreeMap<String, u64> {
        &self.errors
    }

    /// The latency at `quantile` (0..=1) in milliseconds; 0 when nothing was recorded.
    pub fn quantile_ms(&self, quantile: f64) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        self.histogram.value_at_quantile(quantile) as f64 / 1000.0
    }

    /// The largest latency in milliseconds.
    pub fn max_ms(&self) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        self.histogram.max() as f64 / 1000.0
    }
}

/// Statistics of every operation one worker (or the whole run) performed.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    ops: BTreeMap<&'static str, OpStats>,
}

impl Stats {
    /// Records one request of operation `op`.
    pub fn record(&mut self, op: &'static str, latency: Duration, error: Option<String>) {
        self.ops.entry(op).or_default().record(latency, error);
    }

    /// Notes the size of a reply to `op`.
    pub fn reply_bytes(&mut self, op: &'static str, bytes: u64) {
        self.ops.entry(op).or_default().reply_bytes(bytes);
    }

    /// Counts an already recorded request of `op` as failed.
    pub fn mark_error(&mut self, op: &'static str, kind: &str) {
        self.ops.entry(op).or_default().mark_error(kind);
    }

    /// Adds another worker's statistics to these.
    pub fn merge(&mut self, other: &Stats) {
        for (op, stats) in &other.ops {
            self.ops.entry(op).or_default().merge(stats);
        }
    }

    /// The statistics of one operation, if any request of it was made.
    pub fn op(&self, op: &str) -> Option<&OpStats> {
        self.ops.get(op)
    }

    /// Every operation recorded, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &OpStats)> {
        self.ops.iter().map(|(name, stats)| (*name, stats))
    }
}

/// One line of the report: an operation's counts, rate and latency percentiles.
#[derive(Debug, Clone, Serialize)]
pub struct OpReport {
    /// Operation name, e.g. `get_user_by_userName`.
    pub operation: String,
    /// Requests made.
    pub count: u64,
    /// Requests that failed (non-2xx, transport error or unexpected result).
    pub errors: u64,
    /// Failures by kind: the HTTP status, `transport`, or `unexpected`.
    pub errors_by_status: BTreeMap<String, u64>,
    /// Requests per second over the run's wall time.
    pub requests_per_sec: f64,
    /// Median latency in milliseconds.
    pub p50_ms: f64,
    /// 90th percentile latency in milliseconds.
    pub p90_ms: f64,
    /// 99th percentile latency in milliseconds.
    pub p99_ms: f64,
    /// Largest latency in milliseconds.
    pub max_ms: f64,
    /// Largest reply body in bytes.
    pub max_reply_bytes: u64,
}

/// What the initial cycle created.
#[derive(Debug, Clone, Default, Serialize)]
pub struct InitialSummary {
    /// Users created by POST.
    pub users_created: u64,
    /// Users the lookup found already present (not created again).
    pub users_existing: u64,
    /// Groups created by POST.
    pub groups_created: u64,
    /// Group members added by PATCH.
    pub members_added: u64,
    /// Wall time of the user phase in seconds.
    pub users_phase_secs: f64,
    /// Wall time of the group phase in seconds.
    pub groups_phase_secs: f64,
    /// Users provisioned (created or found) per second of the whole cycle.
    pub users_per_sec: f64,
    /// Requests per second of the group phase.
    pub groups_phase_requests_per_sec: f64,
}

/// The result of one run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Scenario run: `initial`, `steady` or `lookup`.
    pub scenario: String,
    /// Number of tenants (SCIM base URLs) driven.
    pub targets: usize,
    /// Server processes the connections were spread over (1: the URLs as given).
    pub gateways: usize,
    /// Concurrent workers.
    pub concurrency: usize,
    /// Wall time in seconds.
    pub elapsed_secs: f64,
    /// False when the time limit stopped the run before its work was done (initial).
    pub completed: bool,
    /// Requests made, all operations.
    pub total_requests: u64,
    /// Failed requests, all operations.
    pub total_errors: u64,
    /// Requests per second, all operations.
    pub requests_per_sec: f64,
    /// Largest reply body in bytes, all operations.
    pub max_reply_bytes: u64,
    /// The initial cycle's summary (initial scenario only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub initial: Option<InitialSummary>,
    /// Per-operation lines.
    pub operations: Vec<OpReport>,
}

impl Report {
    /// Builds the report from merged statistics and the run's wall time.
    pub fn new(
        scenario: &str,
        targets: usize,
        concurrency: usize,
        elapsed: Duration,
        completed: bool,
        stats: &Stats,
    ) -> Report {
        let secs = elapsed.as_secs_f64().max(1e-9);
        let operations: Vec<OpReport> = stats
            .ops
            .iter()
            .map(|(name, op)| OpReport {
                operation: (*name).to_string(),
                count: op.count(),
                errors: op.error_count(),
                errors_by_status: op.errors.clone(),
                requests_per_sec: op.count() as f64 / secs,
                p50_ms: op.quantile_ms(0.50),
                p90_ms: op.quantile_ms(0.90),
                p99_ms: op.quantile_ms(0.99),
                max_ms: op.max_ms(),
                max_reply_bytes: op.max_reply_bytes(),
            })
            .collect();
        let total_requests = operations.iter().map(|o| o.count).sum();
        let total_errors = operations.iter().map(|o| o.errors).sum();
        let max_reply_bytes = operations
            .iter()
            .map(|o| o.max_reply_bytes)
            .max()
            .unwrap_or(0);
        Report {
            scenario: scenario.to_string(),
            targets,
            gateways: 1,
            concurrency,
            elapsed_secs: secs,
            completed,
            total_requests,
            total_errors,
            requests_per_sec: total_requests as f64 / secs,
            max_reply_bytes,
            initial: None,
            operations,
        }
    }

    /// The report as an aligned text table.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "scenario {}: {} target(s){}, concurrency {}, {:.2} s{}",
            self.scenario,
            self.targets,
            if self.gateways > 1 {
                format!(" over {} gateways", self.gateways)
            } else {
                String::new()
            },
            self.concurrency,
            self.elapsed_secs,
            if self.completed {
                ""
            } else {
                " (stopped by the time limit before finishing)"
            }
        );
        if let Some(initial) = &self.initial {
            let _ = writeln!(
                out,
                "{}: {} users created ({} existing), {} groups, {} members added; \
                 users phase {:.2} s, groups phase {:.2} s ({:.1} req/s); {:.1} users/s",
                self.scenario,
                initial.users_created,
                initial.users_existing,
                initial.groups_created,
                initial.members_added,
                initial.users_phase_secs,
                initial.groups_phase_secs,
                initial.groups_phase_requests_per_sec,
                initial.users_per_sec
            );
        }
        let _ = writeln!(
            out,
            "{:<28} {:>9} {:>7} {:>10} {:>9} {:>9} {:>9} {:>9} {:>11}  errors by status",
            "operation",
            "count",
            "errors",
            "req/s",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "max ms",
            "max reply B"
        );
        for op in &self.operations {
            let by_status = op
                .errors_by_status
                .iter()
                .map(|(k, v)| format!("{k}:{v}"))
                .collect::<Vec<_>>()
                .join(" ");
            let _ = writeln!(
                out,
                "{:<28} {:>9} {:>7} {:>10.1} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>11}  {}",
                op.operation,
                op.count,
                op.errors,
                op.requests_per_sec,
                op.p50_ms,
                op.p90_ms,
                op.p99_ms,
                op.max_ms,
                op.max_reply_bytes,
                by_status
            );
        }
        let _ = writeln!(
            out,
            "{:<28} {:>9} {:>7} {:>10.1} {:>9} {:>9} {:>9} {:>9} {:>11}",
            "total",
            self.total_requests,
            self.total_errors,
            self.requests_per_sec,
            "",
            "",
            "",
            "",
            self.max_reply_bytes
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn percentiles_of_a_known_distribution() {
        let mut op = OpStats::default();
        for i in 1..=100 {
            op.record(ms(i), None);
        }
        let close = |got: f64, want: f64| (got - want).abs() <= want * 0.01;
        assert!(close(op.quantile_ms(0.5), 50.0), "{}", op.quantile_ms(0.5));
        assert!(close(op.quantile_ms(0.9), 90.0), "{}", op.quantile_ms(0.9));
        assert!(
            close(op.quantile_ms(0.99), 99.0),
            "{}",
            op.quantile_ms(0.99)
        );
        assert!(close(op.max_ms(), 100.0), "{}", op.max_ms());
        assert_eq!(op.count(), 100);
        assert_eq!(op.error_count(), 0);
    }

    #[test]
    fn empty_and_extreme_latencies() {
        let mut op = OpStats::default();
        assert_eq!(op.quantile_ms(0.99), 0.0);
        assert_eq!(op.max_ms(), 0.0);
        op.record(Duration::ZERO, None);
        op.record(Duration::from_secs(3600), Some("transport".into()));
        assert_eq!(op.count(), 2);
        assert!(op.max_ms() <= 60_100.0 && op.max_ms() >= 59_900.0);
        assert!(op.quantile_ms(0.0) <= 0.002);
    }

    #[test]
    fn merge_adds_counts_errors_and_latencies() {
        let mut a = Stats::default();
        let mut b = Stats::default();
        a.record("get", ms(1), None);
        a.record("get", ms(2), Some("500".into()));
        b.record("get", ms(3), Some("500".into()));
        b.record("post", ms(4), Some("409".into()));
        a.merge(&b);
        let get = a.op("get").expect("get recorded");
        assert_eq!(get.count(), 3);
        assert_eq!(get.error_count(), 2);
        assert!((get.max_ms() - 3.0).abs() < 0.01);
        assert_eq!(a.op("post").expect("post recorded").error_count(), 1);
    }

    #[test]
    fn report_rates_totals_and_rendering() {
        let mut stats = Stats::default();
        for _ in 0..10 {
            stats.record("get", ms(2), None);
        }
        for _ in 0..10 {
            stats.record("patch", ms(4), None);
        }
        stats.record("patch", ms(4), Some("429".into()));
        stats.reply_bytes("get", 1_500);
        stats.reply_bytes("get", 700);
        stats.reply_bytes("patch", 0);
        let report = Report::new("steady", 1, 4, Duration::from_secs(2), true, &stats);
        assert_eq!(report.total_requests, 21);
        assert_eq!(report.total_errors, 1);
        assert!((report.requests_per_sec - 10.5).abs() < 1e-9);
        let patch = &report.operations[1];
        assert_eq!(patch.operation, "patch");
        assert_eq!(patch.errors_by_status.get("429"), Some(&1));
        assert!((patch.requests_per_sec - 5.5).abs() < 1e-9);
        let text = report.to_text();
        assert!(text.contains("patch") && text.contains("429:1") && text.contains("total"));
        assert_eq!(report.operations[0].max_reply_bytes, 1_500);
        assert_eq!(report.max_reply_bytes, 1_500);
        let mut other = Stats::default();
        other.reply_bytes("patch", 9_000);
        stats.merge(&other);
        let merged = Report::new("steady", 1, 4, Duration::from_secs(2), true, &stats);
        assert_eq!(merged.max_reply_bytes, 9_000);
        let json = serde_json::to_value(&report).expect("serializes");
        assert_eq!(json["operations"][0]["count"], 10);
        assert!(json.get("initial").is_none());
    }
}
