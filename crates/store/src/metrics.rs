//! Counters of what the store decides inside its transactions: role
//! changes and background jobs. They are process-wide (one set however
//! many `Store` handles a process opens); each process adds them to the
//! registry it serves at `/metrics` with [`register`].

use std::sync::LazyLock;

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};
use roles::{Effective, Reason};

/// `scimgate_role_changes_total{reason}`: `user.roles_changed` events.
static ROLE_CHANGES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    IntCounterVec::new(
        Opts::new(
            "scimgate_role_changes_total",
            "Changes of a user's effective roles, by the reason of the roles the user has after it \
             (mapping, default, locked, none)",
        ),
        &["reason"],
    )
    .unwrap_or_else(|e| unreachable!("a constant metric definition is valid: {e}"))
});

/// `scimgate_jobs_total{kind,outcome}`: runs of background jobs.
static JOBS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    IntCounterVec::new(
        Opts::new(
            "scimgate_jobs_total",
            "Background job runs (role recompute, re-route, reconciliation) by kind and outcome \
             (done, retry, failed, cancelled, lost)",
        ),
        &["kind", "outcome"],
    )
    .unwrap_or_else(|e| unreachable!("a constant metric definition is valid: {e}"))
});

/// `scimgate_job_duration_seconds{kind}`: how long a job run took.
static JOB_DURATION: LazyLock<HistogramVec> = LazyLock::new(|| {
    HistogramVec::new(
        HistogramOpts::new(
            "scimgate_job_duration_seconds",
            "Duration of one run of a background job, from claim to its end",
        )
        .buckets(vec![
            0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
        ]),
        &["kind"],
    )
    .unwrap_or_else(|e| unreachable!("a constant metric definition is valid: {e}"))
});

/// Adds the store's metrics to `registry` (once per registry).
pub fn register(registry: &Registry) -> Result<(), prometheus::Error> {
    registry.register(Box::new(ROLE_CHANGES.clone()))?;
    registry.register(Box::new(JOBS.clone()))?;
    registry.register(Box::new(JOB_DURATION.clone()))?;
    Ok(())
}

/// The label of a role change: why the user has the roles it has after
/// it. A lock wins over the roles' own reasons; no role at all is `none`.
pub(crate) fn role_change_reason(after: &Effective) -> &'static str {
    if after.locked {
        return "locked";
    }
    match after.roles.first().map(|r| &r.reason) {
        Some(Reason::Mapping { .. }) => "mapping",
        Some(Reason::Default) => "default",
        Some(Reason::Locked) => "locked",
        None => "none",
    }
}

/// Counts one `user.roles_changed` event as it is derived. A transaction
/// retried after a conflict derives its events again, so under contention
/// this can count a change twice: it measures activity, not an audit.
pub(crate) fn role_changed(after: &Effective) {
    ROLE_CHANGES
        .with_label_values(&[role_change_reason(after)])
        .inc();
}

/// Counts one job run that ended with `outcome` after `seconds`.
pub(crate) fn job_ended(kind: &str, outcome: &str, seconds: f64) {
    JOBS.with_label_values(&[kind, outcome]).inc();
    JOB_DURATION.with_label_values(&[kind]).observe(seconds);
}

#[cfg(test)]
mod tests {
    use roles::EffectiveRole;

    use super::*;

    fn effective(reason: Option<Reason>, locked: bool) -> Effective {
        Effective {
            roles: reason
                .into_iter()
                .map(|reason| EffectiveRole {
                    role: "admin".into(),
                    reason,
                })
                .collect(),
            disabled: false,
            locked,
        }
    }

    #[test]
    fn a_change_is_labelled_by_why_the_user_has_its_roles_after_it() {
        let mapping = Reason::Mapping {
            group_id: "g".into(),
            group_display_name: "G".into(),
        };
        assert_eq!(
            role_change_reason(&effective(Some(mapping.clone()), false)),
            "mapping"
        );
        assert_eq!(
            role_change_reason(&effective(Some(mapping), true)),
            "locked"
        );
        assert_eq!(
            role_change_reason(&effective(Some(Reason::Default), false)),
            "default"
        );
        assert_eq!(role_change_reason(&effective(None, false)), "none");
        assert_eq!(role_change_reason(&effective(None, true)), "locked");
    }

    #[test]
    fn the_metrics_register_once_per_registry() {
        let r = Registry::new();
        assert!(register(&r).is_ok());
        assert!(register(&r).is_err());
        assert!(register(&Registry::new()).is_ok());
    }
}
