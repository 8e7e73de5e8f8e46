//! The worker's Prometheus metrics (registered on the process's one
//! registry, served at `/metrics`).

use chrono::{DateTime, Utc};
use prometheus::{Gauge, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry};
use store::Store;

/// The delivery metrics.
#[derive(Clone)]
pub struct Metrics {
    attempts: IntCounterVec,
    latency: HistogramVec,
    disabled_total: IntCounterVec,
    backlog: IntGauge,
    oldest_age: Gauge,
    dead_letters: IntGauge,
    disabled_targets: IntGauge,
    failing_targets: IntGauge,
    longest_failure: Gauge,
}

impl Metrics {
    /// Creates the metrics and registers them on `registry`.
    pub fn register(registry: &Registry) -> Result<Metrics, prometheus::Error> {
        let m = Metrics::unregistered()?;
        registry.register(Box::new(m.attempts.clone()))?;
        registry.register(Box::new(m.latency.clone()))?;
        registry.register(Box::new(m.disabled_total.clone()))?;
        registry.register(Box::new(m.backlog.clone()))?;
        registry.register(Box::new(m.oldest_age.clone()))?;
        registry.register(Box::new(m.dead_letters.clone()))?;
        registry.register(Box::new(m.disabled_targets.clone()))?;
        registry.register(Box::new(m.failing_targets.clone()))?;
        registry.register(Box::new(m.longest_failure.clone()))?;
        Ok(m)
    }

    /// Metrics that no registry exports (tools and tests).
    pub fn unregistered() -> Result<Metrics, prometheus::Error> {
        Ok(Metrics {
            attempts: IntCounterVec::new(
                Opts::new(
                    "scimgate_delivery_attempts_total",
                    "Delivery attempts by target kind and outcome (delivered, retry, dead, disabled)",
                ),
                &["kind", "outcome"],
            )?,
            latency: HistogramVec::new(
                HistogramOpts::new(
                    "scimgate_delivery_attempt_duration_seconds",
                    "Time from sending a delivery to its answer",
                )
                .buckets(vec![
                    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0,
                ]),
                &["kind"],
            )?,
            disabled_total: IntCounterVec::new(
                Opts::new(
                    "scimgate_delivery_targets_disabled_total",
                    "Targets the worker disabled (410 Gone or sustained failure)",
                ),
                &["kind"],
            )?,
            backlog: IntGauge::new(
                "scimgate_delivery_backlog_events",
                "Events committed after the slowest enabled target's cursor",
            )?,
            oldest_age: Gauge::new(
                "scimgate_delivery_oldest_undelivered_age_seconds",
                "Age of the oldest event some enabled target has not handled yet",
            )?,
            dead_letters: IntGauge::new(
                "scimgate_delivery_dead_letters",
                "Deliveries given up on and waiting for a replay",
            )?,
            disabled_targets: IntGauge::new(
                "scimgate_delivery_targets_disabled",
                "Targets currently disabled",
            )?,
            failing_targets: IntGauge::new(
                "scimgate_delivery_targets_failing",
                "Enabled targets whose last delivery attempt failed",
            )?,
            longest_failure: Gauge::new(
                "scimgate_delivery_longest_failure_seconds",
                "How long the longest-failing enabled target has been failing (0 when none is)",
            )?,
        })
    }

    /// Counts one attempt.
    pub fn attempt(&self, kind: &str, outcome: &str, latency_ms: u64) {
        self.attempts.with_label_values(&[kind, outcome]).inc();
        self.latency
            .with_label_values(&[kind])
            .observe(latency_ms as f64 / 1000.0);
    }

    /// Counts a target the worker disabled.
    pub fn disabled(&self, kind: &str) {
        self.disabled_total.with_label_values(&[kind]).inc();
    }

    /// Sets the gauges that need a query.
    pub async fn observe_store(&self, store: &Store, now: DateTime<Utc>) {
        let delivery = store.delivery();
        match delivery.backlog(now).await {
            Ok((depth, age)) => {
                self.backlog.set(depth);
                self.oldest_age.set(age.unwrap_or(0.0));
            }
            Err(e) => tracing::warn!(error = %e, "delivery metrics: cannot read the backlog"),
        }
        match delivery.counts().await {
            Ok(c) => {
                self.dead_letters.set(c.dead_letters);
                self.disabled_targets.set(c.disabled_targets);
                self.failing_targets.set(c.failing_targets);
                self.longest_failure.set(c.longest_failure_seconds);
            }
            Err(e) => tracing::warn!(error = %e, "delivery metrics: cannot count"),
        }
    }
}
