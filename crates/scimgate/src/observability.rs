//! The metrics a process exports about itself and the fleet, beyond
//! those its parts register: the database pool and Redis (every process),
//! and the quarantine guard's fleet-wide ratios (processes that run the
//! background sweeps). docs/operations.md lists every metric.

use std::time::Duration;

use gateway::{OTHER_TENANTS, TenantLabel};
use prometheus::{GaugeVec, IntGauge, IntGaugeVec, Opts, Registry};
use store::Store;
use store::health::TenantRatio;
use tokio::task::JoinHandle;

/// How often the pool and Redis are sampled.
const SAMPLE_EVERY: Duration = Duration::from_secs(5);

/// How long a Redis ping may take before Redis counts as unreachable.
const REDIS_PING_TIMEOUT: Duration = Duration::from_secs(2);

/// How often the quarantine ratios are read (and old rows pruned).
pub const QUARANTINE_EVERY: Duration = Duration::from_secs(15);

/// The database pool and Redis gauges of one process.
#[derive(Debug, Clone)]
pub struct ProcessMetrics {
    connections: IntGaugeVec,
    connections_max: IntGauge,
    redis: Option<IntGauge>,
}

impl ProcessMetrics {
    /// Registers the gauges (the Redis one only when Redis is configured)
    /// and the store's own counters on `registry`.
    pub fn register(registry: &Registry, redis: bool) -> Result<ProcessMetrics, prometheus::Error> {
        store::metrics::register(registry)?;
        let connections = IntGaugeVec::new(
            Opts::new(
                "scimgate_database_connections",
                "Database connections of this process by state (in_use, idle); on SQLite the read \
                 connections",
            ),
            &["state"],
        )?;
        let connections_max = IntGauge::new(
            "scimgate_database_connections_max",
            "The most database connections this process keeps (db_max_connections)",
        )?;
        registry.register(Box::new(connections.clone()))?;
        registry.register(Box::new(connections_max.clone()))?;
        let redis = if redis {
            let gauge = IntGauge::new(
                "scimgate_redis_reachable",
                "1 when Redis answered this process's last ping, else 0",
            )?;
            registry.register(Box::new(gauge.clone()))?;
            Some(gauge)
        } else {
            None
        };
        Ok(ProcessMetrics {
            connections,
            connections_max,
            redis,
        })
    }

    /// Samples the pool (and pings Redis) every [`SAMPLE_EVERY`].
    pub fn spawn(self, store: Store, redis: Option<cluster::Redis>) -> JoinHandle<()> {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SAMPLE_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let usage = store.pool_usage();
                let gauge = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
                self.connections
                    .with_label_values(&["in_use"])
                    .set(gauge(usage.in_use));
                self.connections
                    .with_label_values(&["idle"])
                    .set(gauge(usage.idle));
                self.connections_max.set(gauge(usage.max));
                if let (Some(redis), Some(up)) = (&redis, &self.redis) {
                    let answered = tokio::time::timeout(REDIS_PING_TIMEOUT, redis.ping())
                        .await
                        .is_ok_and(|r| r.is_ok());
                    up.set(i64::from(answered));
                }
            }
        })
    }
}

/// The quarantine guard's gauges (docs/quarantine-guard.md).
#[derive(Debug, Clone)]
pub struct QuarantineMetrics {
    ratio: GaugeVec,
    at_risk: IntGaugeVec,
}

impl QuarantineMetrics {
    /// Registers the gauges on `registry`.
    pub fn register(registry: &Registry) -> Result<QuarantineMetrics, prometheus::Error> {
        let ratio = GaugeVec::new(
            Opts::new(
                "scimgate_quarantine_failure_ratio",
                "Share of a tenant's SCIM requests that failed over the last hour, fleet-wide \
                 (the quarantine guard's ratio)",
            ),
            &["tenant"],
        )?;
        let at_risk = IntGaugeVec::new(
            Opts::new(
                "scimgate_quarantine_at_risk",
                "1 when the quarantine guard flags the tenant (ratio at or above the warning \
                 level with enough requests), else 0",
            ),
            &["tenant"],
        )?;
        registry.register(Box::new(ratio.clone()))?;
        registry.register(Box::new(at_risk.clone()))?;
        Ok(QuarantineMetrics { ratio, at_risk })
    }

    /// Sets the gauges to `ratios`, labelled under `mode`: tenants without
    /// a label of their own fold into `other`, which shows the worst of
    /// them (a ratio does not add up; an alert must still fire).
    pub fn show(&self, ratios: &[TenantRatio], mode: TenantLabel) {
        self.ratio.reset();
        self.at_risk.reset();
        let mut sorted: Vec<&TenantRatio> = ratios.iter().collect();
        sorted.sort_by(|a, b| {
            b.requests
                .cmp(&a.requests)
                .then_with(|| a.slug.cmp(&b.slug))
        });
        let own = match mode {
            TenantLabel::All => sorted.len(),
            TenantLabel::Off => 0,
            TenantLabel::Top(n) => n.min(sorted.len()),
        };
        let (named, rest) = sorted.split_at(own);
        for r in named {
            self.ratio.with_label_values(&[&r.slug]).set(r.ratio());
            self.at_risk
                .with_label_values(&[&r.slug])
                .set(i64::from(r.at_risk()));
        }
        if !rest.is_empty() {
            let worst = rest.iter().map(|r| r.ratio()).fold(0.0, f64::max);
            let any = rest.iter().any(|r| r.at_risk());
            self.ratio.with_label_values(&[OTHER_TENANTS]).set(worst);
            self.at_risk
                .with_label_values(&[OTHER_TENANTS])
                .set(i64::from(any));
        }
    }

    /// Reads the ratios every [`QUARANTINE_EVERY`] and prunes rows past
    /// their retention. Idempotent: any number of processes may run it.
    pub fn spawn(self, store: Store, mode: TenantLabel) -> JoinHandle<()> {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(QUARANTINE_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let admin = store.admin();
                let now = chrono::Utc::now();
                match admin.request_ratios(now).await {
                    Ok(ratios) => self.show(&ratios, mode),
                    Err(e) => tracing::warn!(error = %e, "quarantine guard: cannot read ratios"),
                }
                if let Err(e) = admin.prune_request_health(now).await {
                    tracing::warn!(error = %e, "quarantine guard: cannot prune old counts");
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ratio(slug: &str, requests: u64, failures: u64) -> TenantRatio {
        TenantRatio {
            tenant_id: uuid::Uuid::new_v4(),
            slug: slug.to_owned(),
            requests,
            failures,
        }
    }

    fn exported(registry: &Registry) -> String {
        use prometheus::Encoder;
        let mut out = Vec::new();
        prometheus::TextEncoder::new()
            .encode(&registry.gather(), &mut out)
            .expect("encode");
        String::from_utf8(out).expect("utf-8")
    }

    #[test]
    fn tenants_beyond_the_top_fold_into_other_with_the_worst_ratio() {
        let registry = Registry::new();
        let m = QuarantineMetrics::register(&registry).expect("register");
        let ratios = [
            ratio("busy", 1000, 10),
            ratio("medium", 500, 400),
            ratio("quiet", 30, 15),
            ratio("tiny", 5, 5),
        ];
        m.show(&ratios, TenantLabel::Top(1));
        let text = exported(&registry);
        assert!(
            text.contains("scimgate_quarantine_failure_ratio{tenant=\"busy\"} 0.01"),
            "{text}"
        );
        assert!(
            text.contains("scimgate_quarantine_failure_ratio{tenant=\"other\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("scimgate_quarantine_at_risk{tenant=\"other\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("scimgate_quarantine_at_risk{tenant=\"busy\"} 0"),
            "{text}"
        );
        assert!(!text.contains("medium"), "{text}");

        m.show(&ratios, TenantLabel::All);
        let text = exported(&registry);
        for slug in ["busy", "medium", "quiet", "tiny"] {
            assert!(
                text.contains(&format!("tenant=\"{slug}\"")),
                "{slug}: {text}"
            );
        }
        // Too few requests for a flag, however bad.
        assert!(
            text.contains("scimgate_quarantine_at_risk{tenant=\"tiny\"} 0"),
            "{text}"
        );
        assert!(!text.contains("other"), "{text}");

        m.show(&ratios, TenantLabel::Off);
        let text = exported(&registry);
        assert!(!text.contains("busy"), "{text}");
        assert!(
            text.contains("scimgate_quarantine_at_risk{tenant=\"other\"} 1"),
            "{text}"
        );
    }
}
