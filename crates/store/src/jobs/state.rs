//! The job state machine: one status enum, one state record, and the one
//! function [`next`] that every write to a job goes through.
//!
//! ```text
//!            Claimed                    Succeeded
//!  queued ───────────▶ running ───────────────────▶ done
//!    ▲                  │ │ │  Failed (permanent, or attempts used up),
//!    │  Failed          │ │ │  LeaseExpired (attempts used up)
//!    │  (retryable),    │ │ └──────────────────────▶ failed
//!    │  LeaseExpired    │ │
//!    └──────────────────┘ │ Cancelled
//!  queued ─────────────────┴──────────────────────▶ cancelled
//!            Cancelled
//! ```
//!
//! Heartbeat and Progress keep a running job running (and extend its
//! lease). Everything else is refused with the reason ([`Refused`]), and a
//! refused write changes nothing: that is how a worker that lost its lease
//! learns it and stops. The function is pure (time is its `now` argument),
//! so the table test at the bottom walks every edge.

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::Value;

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobStatus {
    /// Waiting for a worker (or for `run_after`, when retrying).
    Queued,
    /// Held by a worker under a lease.
    Running,
    /// Finished successfully.
    Done,
    /// Stopped on an error that is not retried, or out of attempts (see
    /// `error`).
    Failed,
    /// Cancelled before it finished.
    Cancelled,
}

impl JobStatus {
    /// The wire spelling: `queued`, `running`, `done`, `failed`,
    /// `cancelled`.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Done => "done",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
        }
    }

    /// Parses [`JobStatus::as_str`]'s spelling.
    pub fn parse(s: &str) -> Option<JobStatus> {
        Some(match s {
            "queued" => JobStatus::Queued,
            "running" => JobStatus::Running,
            "done" => JobStatus::Done,
            "failed" => JobStatus::Failed,
            "cancelled" => JobStatus::Cancelled,
            _ => return None,
        })
    }

    /// Whether the job has ended (nothing moves it any more).
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            JobStatus::Done | JobStatus::Failed | JobStatus::Cancelled
        )
    }
}

impl std::fmt::Display for JobStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A job's counters, as its handler last reported them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JobProgress {
    /// Items the job has to go through (0 until known).
    pub total: u64,
    /// Items done so far in this attempt.
    pub processed: u64,
    /// Items the job changed so far in this attempt.
    pub changed: u64,
}

/// Everything about a job that a transition may change.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct JobState {
    pub status: JobStatus,
    /// Claims so far (a takeover counts as one).
    pub attempts: u32,
    pub max_attempts: u32,
    /// The earliest time a queued job may be claimed.
    pub run_after: DateTime<Utc>,
    /// The worker holding (or that last held) the job.
    pub lease_owner: Option<String>,
    /// While running: when the holder's lease ends unless extended.
    pub lease_expires_at: Option<DateTime<Utc>>,
    pub heartbeat_at: Option<DateTime<Utc>>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub progress: JobProgress,
    pub result: Option<Value>,
    pub error: Option<String>,
}

/// What happened to a job.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Outcome {
    /// `owner` takes the queued job for `lease`.
    Claimed { owner: String, lease: TimeDelta },
    /// The holder is alive: extend its lease.
    Heartbeat { owner: String, lease: TimeDelta },
    /// The holder reports its counters (and is alive).
    Progress {
        owner: String,
        lease: TimeDelta,
        progress: JobProgress,
    },
    /// The holder finished the work.
    Succeeded {
        owner: String,
        result: Option<Value>,
    },
    /// The holder's attempt failed.
    Failed {
        owner: String,
        error: String,
        retryable: bool,
    },
    /// Another worker found the holder's lease ended.
    LeaseExpired,
    /// An administrator (or the system) cancelled the job.
    Cancelled,
}

/// Why [`next`] refused a transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Refused {
    /// The job has ended.
    #[error("the job is already {0}")]
    Finished(JobStatus),
    /// The writer does not hold the job (never did, or lost it).
    #[error("the job is not held by this worker")]
    NotHolder,
    /// Not yet: a queued job before its `run_after`, or a running job
    /// whose lease has not ended.
    #[error("the job is not due")]
    NotDue,
    /// Only a running job has a lease to expire.
    #[error("the job is not running")]
    NotRunning,
}

/// The first retry's delay; each later one doubles it, up to
/// [`BACKOFF_CAP`].
pub(crate) const BACKOFF_BASE: TimeDelta = TimeDelta::seconds(10);

/// The longest delay between two attempts.
pub(crate) const BACKOFF_CAP: TimeDelta = TimeDelta::minutes(10);

/// The delay before the next attempt of a job whose attempt number
/// `attempts` (1-based) failed: 10 s, 20 s, 40 s, ... at most 10 min.
pub(crate) fn backoff(attempts: u32) -> TimeDelta {
    // 2^6 × 10 s already exceeds the cap; stopping the doubling there keeps
    // the arithmetic far from overflow.
    let doublings = attempts.saturating_sub(1).min(6);
    (BACKOFF_BASE * (1i32 << doublings)).min(BACKOFF_CAP)
}

/// The state after `outcome`, at `now`; or why it cannot happen.
pub(crate) fn next(
    state: &JobState,
    outcome: &Outcome,
    now: DateTime<Utc>,
) -> Result<JobState, Refused> {
    if state.status.is_finished() {
        return Err(Refused::Finished(state.status));
    }
    let running = state.status == JobStatus::Running;
    let holds = |owner: &str| running && state.lease_owner.as_deref() == Some(owner);
    let mut s = state.clone();
    match outcome {
        Outcome::Claimed { owner, lease } => {
            // A running job is taken over only once its lease has been
            // expired (LeaseExpired, then Claimed), so that the decision
            // "retry or give up" lives in one edge.
            if running || state.run_after > now {
                return Err(Refused::NotDue);
            }
            s.status = JobStatus::Running;
            s.attempts = state.attempts.saturating_add(1);
            s.lease_owner = Some(owner.clone());
            s.lease_expires_at = Some(now + *lease);
            s.heartbeat_at = Some(now);
            s.started_at = Some(now);
            // Each attempt starts from the beginning.
            s.progress = JobProgress::default();
        }
        Outcome::Heartbeat { owner, lease } => {
            // A holder whose lease ran out but that nobody took over yet
            // still holds the job: the fence is the owner, not the clock.
            if !holds(owner) {
                return Err(Refused::NotHolder);
            }
            s.lease_expires_at = Some(now + *lease);
            s.heartbeat_at = Some(now);
        }
        Outcome::Progress {
            owner,
            lease,
            progress,
        } => {
            if !holds(owner) {
                return Err(Refused::NotHolder);
            }
            s.lease_expires_at = Some(now + *lease);
            s.heartbeat_at = Some(now);
            s.progress = *progress;
        }
        Outcome::Succeeded { owner, result } => {
            if !holds(owner) {
                return Err(Refused::NotHolder);
            }
            s.status = JobStatus::Done;
            s.lease_expires_at = None;
            s.finished_at = Some(now);
            s.result = result.clone();
            s.error = None;
        }
        Outcome::Failed {
            owner,
            error,
            retryable,
        } => {
            if !holds(owner) {
                return Err(Refused::NotHolder);
            }
            s.error = Some(error.clone());
            if *retryable && state.attempts < state.max_attempts {
                s.status = JobStatus::Queued;
                s.run_after = now + backoff(state.attempts);
                s.lease_owner = None;
                s.lease_expires_at = None;
            } else {
                s.status = JobStatus::Failed;
                s.lease_expires_at = None;
                s.finished_at = Some(now);
            }
        }
        Outcome::LeaseExpired => {
            if !running {
                return Err(Refused::NotRunning);
            }
            if state.lease_expires_at.is_some_and(|t| t > now) {
                return Err(Refused::NotDue);
            }
            let holder = state.lease_owner.as_deref().unwrap_or("an earlier worker");
            s.lease_owner = None;
            s.lease_expires_at = None;
            if state.attempts < state.max_attempts {
                s.status = JobStatus::Queued;
                s.run_after = now;
            } else {
                s.status = JobStatus::Failed;
                s.finished_at = Some(now);
                s.error = Some(format!(
                    "the lease of {holder} expired on attempt {} of {}",
                    state.attempts, state.max_attempts
                ));
            }
        }
        Outcome::Cancelled => {
            s.status = JobStatus::Cancelled;
            s.lease_expires_at = None;
            s.finished_at = Some(now);
        }
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap_or_default()
    }

    const LEASE: TimeDelta = TimeDelta::seconds(30);
    const NOW: i64 = 100;

    fn queued(attempts: u32, run_after: i64) -> JobState {
        JobState {
            status: JobStatus::Queued,
            attempts,
            max_attempts: 3,
            run_after: t(run_after),
            lease_owner: None,
            lease_expires_at: None,
            heartbeat_at: None,
            started_at: None,
            finished_at: None,
            progress: JobProgress::default(),
            result: None,
            error: None,
        }
    }

    /// Running, held by `a` since t(90), lease ending at `expires`.
    fn running(attempts: u32, expires: i64) -> JobState {
        JobState {
            status: JobStatus::Running,
            attempts,
            lease_owner: Some("a".into()),
            lease_expires_at: Some(t(expires)),
            heartbeat_at: Some(t(90)),
            started_at: Some(t(90)),
            progress: JobProgress {
                total: 10,
                processed: 4,
                changed: 1,
            },
            ..queued(attempts, 0)
        }
    }

    fn ended(status: JobStatus) -> JobState {
        JobState {
            status,
            lease_expires_at: None,
            finished_at: Some(t(95)),
            ..running(1, 120)
        }
    }

    fn claimed(owner: &str) -> Outcome {
        Outcome::Claimed {
            owner: owner.into(),
            lease: LEASE,
        }
    }
    fn heartbeat(owner: &str) -> Outcome {
        Outcome::Heartbeat {
            owner: owner.into(),
            lease: LEASE,
        }
    }
    const COUNTS: JobProgress = JobProgress {
        total: 10,
        processed: 7,
        changed: 2,
    };
    fn progress(owner: &str) -> Outcome {
        Outcome::Progress {
            owner: owner.into(),
            lease: LEASE,
            progress: COUNTS,
        }
    }
    fn succeeded(owner: &str) -> Outcome {
        Outcome::Succeeded {
            owner: owner.into(),
            result: Some(serde_json::json!({"ok": true})),
        }
    }
    fn failed(owner: &str, retryable: bool) -> Outcome {
        Outcome::Failed {
            owner: owner.into(),
            error: "boom".into(),
            retryable,
        }
    }

    /// The expected state: `from` with `edit` applied.
    fn with(from: JobState, edit: impl FnOnce(&mut JobState)) -> Result<JobState, Refused> {
        let mut s = from;
        edit(&mut s);
        Ok(s)
    }

    #[test]
    fn every_edge() {
        use JobStatus::*;
        let now = t(NOW);
        // (what, from, outcome, expected)
        let table: Vec<(&str, JobState, Outcome, Result<JobState, Refused>)> = vec![
            // ── queued ──
            (
                "queued+claimed when due",
                queued(0, NOW),
                claimed("b"),
                with(queued(0, NOW), |s| {
                    s.status = Running;
                    s.attempts = 1;
                    s.lease_owner = Some("b".into());
                    s.lease_expires_at = Some(now + LEASE);
                    s.heartbeat_at = Some(now);
                    s.started_at = Some(now);
                }),
            ),
            (
                "queued+claimed in backoff",
                queued(1, NOW + 1),
                claimed("b"),
                Err(Refused::NotDue),
            ),
            (
                "queued+heartbeat",
                queued(0, 0),
                heartbeat("a"),
                Err(Refused::NotHolder),
            ),
            (
                "queued+progress",
                queued(0, 0),
                progress("a"),
                Err(Refused::NotHolder),
            ),
            (
                "queued+succeeded",
                queued(0, 0),
                succeeded("a"),
                Err(Refused::NotHolder),
            ),
            (
                "queued+failed",
                queued(0, 0),
                failed("a", true),
                Err(Refused::NotHolder),
            ),
            (
                "queued+lease expired",
                queued(0, 0),
                Outcome::LeaseExpired,
                Err(Refused::NotRunning),
            ),
            (
                "queued+cancelled",
                queued(0, 0),
                Outcome::Cancelled,
                with(queued(0, 0), |s| {
                    s.status = Cancelled;
                    s.finished_at = Some(now);
                }),
            ),
            // ── running ──
            (
                "running+claimed (lease live)",
                running(1, 120),
                claimed("b"),
                Err(Refused::NotDue),
            ),
            (
                "running+claimed (lease over)",
                running(1, 50),
                claimed("b"),
                Err(Refused::NotDue),
            ),
            (
                "running+heartbeat by holder",
                running(1, 120),
                heartbeat("a"),
                with(running(1, 120), |s| {
                    s.lease_expires_at = Some(now + LEASE);
                    s.heartbeat_at = Some(now);
                }),
            ),
            (
                "running+heartbeat by holder past its lease",
                running(1, 50),
                heartbeat("a"),
                with(running(1, 50), |s| {
                    s.lease_expires_at = Some(now + LEASE);
                    s.heartbeat_at = Some(now);
                }),
            ),
            (
                "running+heartbeat by another",
                running(1, 120),
                heartbeat("b"),
                Err(Refused::NotHolder),
            ),
            (
                "running+progress by holder",
                running(1, 120),
                progress("a"),
                with(running(1, 120), |s| {
                    s.lease_expires_at = Some(now + LEASE);
                    s.heartbeat_at = Some(now);
                    s.progress = COUNTS;
                }),
            ),
            (
                "running+progress by another",
                running(1, 120),
                progress("b"),
                Err(Refused::NotHolder),
            ),
            (
                "running+succeeded by holder",
                running(1, 120),
                succeeded("a"),
                with(running(1, 120), |s| {
                    s.status = Done;
                    s.lease_expires_at = None;
                    s.finished_at = Some(now);
                    s.result = Some(serde_json::json!({"ok": true}));
                }),
            ),
            (
                "running+succeeded by another",
                running(1, 120),
                succeeded("b"),
                Err(Refused::NotHolder),
            ),
            (
                "running+retryable failure, attempts left",
                running(2, 120),
                failed("a", true),
                with(running(2, 120), |s| {
                    s.status = Queued;
                    s.run_after = now + TimeDelta::seconds(20);
                    s.lease_owner = None;
                    s.lease_expires_at = None;
                    s.error = Some("boom".into());
                }),
            ),
            (
                "running+retryable failure, last attempt",
                running(3, 120),
                failed("a", true),
                with(running(3, 120), |s| {
                    s.status = Failed;
                    s.lease_expires_at = None;
                    s.finished_at = Some(now);
                    s.error = Some("boom".into());
                }),
            ),
            (
                "running+permanent failure",
                running(1, 120),
                failed("a", false),
                with(running(1, 120), |s| {
                    s.status = Failed;
                    s.lease_expires_at = None;
                    s.finished_at = Some(now);
                    s.error = Some("boom".into());
                }),
            ),
            (
                "running+failure by another",
                running(1, 120),
                failed("b", true),
                Err(Refused::NotHolder),
            ),
            (
                "running+lease expired, live",
                running(1, NOW + 1),
                Outcome::LeaseExpired,
                Err(Refused::NotDue),
            ),
            (
                "running+lease expired, attempts left",
                running(1, NOW),
                Outcome::LeaseExpired,
                with(running(1, NOW), |s| {
                    s.status = Queued;
                    s.run_after = now;
                    s.lease_owner = None;
                    s.lease_expires_at = None;
                }),
            ),
            (
                "running+lease expired, last attempt",
                running(3, 50),
                Outcome::LeaseExpired,
                with(running(3, 50), |s| {
                    s.status = Failed;
                    s.lease_owner = None;
                    s.lease_expires_at = None;
                    s.finished_at = Some(now);
                    s.error = Some("the lease of a expired on attempt 3 of 3".into());
                }),
            ),
            (
                "running+cancelled",
                running(1, 120),
                Outcome::Cancelled,
                with(running(1, 120), |s| {
                    s.status = Cancelled;
                    s.lease_expires_at = None;
                    s.finished_at = Some(now);
                }),
            ),
        ];
        let mut rows = table;
        // ── every outcome on every ended job ──
        for status in [Done, Failed, Cancelled] {
            for outcome in [
                claimed("a"),
                heartbeat("a"),
                progress("a"),
                succeeded("a"),
                failed("a", true),
                Outcome::LeaseExpired,
                Outcome::Cancelled,
            ] {
                rows.push((
                    "ended",
                    ended(status),
                    outcome,
                    Err(Refused::Finished(status)),
                ));
            }
        }
        // Every (status, outcome kind) pair appears at least once.
        let kinds = |o: &Outcome| std::mem::discriminant(o);
        for status in [Queued, Running, Done, Failed, Cancelled] {
            for o in [
                claimed("a"),
                heartbeat("a"),
                progress("a"),
                succeeded("a"),
                failed("a", true),
                Outcome::LeaseExpired,
                Outcome::Cancelled,
            ] {
                assert!(
                    rows.iter()
                        .any(|(_, s, out, _)| s.status == status && kinds(out) == kinds(&o)),
                    "no row for {status:?} + {o:?}"
                );
            }
        }
        for (what, from, outcome, want) in rows {
            assert_eq!(next(&from, &outcome, now), want, "{what}");
        }
    }

    #[test]
    fn a_takeover_is_an_expiry_then_a_claim() {
        let now = t(NOW);
        let expired = next(&running(1, 50), &Outcome::LeaseExpired, now).unwrap();
        let taken = next(&expired, &claimed("b"), now).unwrap();
        assert_eq!(taken.status, JobStatus::Running);
        assert_eq!(taken.attempts, 2);
        assert_eq!(taken.lease_owner.as_deref(), Some("b"));
        assert_eq!(taken.progress, JobProgress::default());
        // The old holder is fenced out of every write.
        for o in [
            heartbeat("a"),
            progress("a"),
            succeeded("a"),
            failed("a", false),
        ] {
            assert_eq!(next(&taken, &o, now), Err(Refused::NotHolder), "{o:?}");
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let secs: Vec<i64> = (1..=9).map(|a| backoff(a).num_seconds()).collect();
        assert_eq!(secs, [10, 20, 40, 80, 160, 320, 600, 600, 600]);
        assert_eq!(backoff(0), BACKOFF_BASE);
        assert_eq!(backoff(u32::MAX), BACKOFF_CAP);
    }

    #[test]
    fn statuses_round_trip() {
        for s in [
            JobStatus::Queued,
            JobStatus::Running,
            JobStatus::Done,
            JobStatus::Failed,
            JobStatus::Cancelled,
        ] {
            assert_eq!(JobStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(JobStatus::parse("paused"), None);
    }
}
