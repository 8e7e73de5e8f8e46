//! The job mechanism: leases and takeover, fencing of a worker that lost
//! its job, retries with backoff, coalescing, cancellation, and kinds
//! registered from outside the store.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use chrono::TimeDelta;
use serde_json::{Value, json};
use store::{
    Clock, JobContext, JobError, JobHandler, JobHandlers, JobProgress, JobResult, JobStatus,
    ManualClock, NewJob, Store, StoreError, StoreOptions, TenantStore,
};
use testkit::{TestDatabase, TestDb, backends};

use crate::common::*;
use crate::roles::policy;

const LEASE: Duration = Duration::from_secs(30);

/// A store whose jobs read `clock`, and the directory of one tenant.
async fn setup(which: TestDb, clock: &Arc<ManualClock>) -> (TestDatabase, Store, TenantStore) {
    let options = StoreOptions {
        clock: clock.clone(),
        job_lease: LEASE,
        ..StoreOptions::default()
    };
    let (db, store) = store_with(which, options).await;
    let t = tenant(&store, "acme").await;
    let dir = store.tenant(&t);
    (db, store, dir)
}

fn lease() -> TimeDelta {
    TimeDelta::from_std(LEASE).unwrap()
}

async fn role_event_count(dir: &TenantStore) -> usize {
    let (mut after, mut n) = (0, 0);
    loop {
        let page = dir
            .events(&store::EventQuery {
                after,
                limit: 1000,
                types: vec![store::EventType::UserRolesChanged],
                tenant: None,
            })
            .await
            .unwrap();
        let Some(last) = page.last() else {
            return n;
        };
        after = last.position;
        n += page.len();
    }
}

#[tokio::test]
async fn a_worker_that_lost_its_lease_changes_nothing() {
    for which in backends() {
        let clock = Arc::new(ManualClock::starting_now());
        let (_db, store, dir) = setup(which, &clock).await;
        let mut ids = Vec::new();
        for i in 0..3 {
            ids.push(dir.create_user(user(&format!("u{i}"))).await.unwrap().id);
        }
        let change = dir.set_role_policy(policy(), None, "test").await.unwrap();
        let a = store.job_worker(JobHandlers::builtin()).with_id("worker-a");
        let b = store.job_worker(JobHandlers::builtin()).with_id("worker-b");

        let held_by_a = a.claim().await.unwrap().expect("a claims the job");
        let job = dir.job(&change.job).await.unwrap();
        assert_eq!(
            (job.status, job.attempts, job.lease_owner.as_deref()),
            (JobStatus::Running, 1, Some("worker-a")),
            "{which:?}"
        );
        assert_eq!(job.lease_expires_at, Some(clock.now() + lease()));
        // A's lease is live: there is nothing for B to take.
        assert!(b.claim().await.unwrap().is_none(), "{which:?}");

        // A stalls past its lease; B takes the job over.
        clock.advance(lease() + TimeDelta::seconds(1));
        let held_by_b = b.claim().await.unwrap().expect("b takes it over");
        assert_eq!(held_by_b.job().id, change.job);
        let taken = dir.job(&change.job).await.unwrap();
        assert_eq!(
            (taken.status, taken.attempts, taken.lease_owner.as_deref()),
            (JobStatus::Running, 2, Some("worker-b")),
            "{which:?}"
        );

        // A's heartbeat and progress are refused and change nothing.
        assert!(matches!(
            held_by_a.heartbeat().await,
            Err(JobError::LeaseLost)
        ));
        let counts = JobProgress {
            total: 3,
            processed: 3,
            changed: 3,
        };
        assert!(matches!(
            held_by_a.progress(counts).await,
            Err(JobError::LeaseLost)
        ));
        assert!(held_by_a.is_cancelled());
        // So are its completion and its failure while B holds the job.
        for outcome in [
            Ok(JobResult::default()),
            Err(JobError::Permanent("late".into())),
        ] {
            assert!(
                matches!(held_by_a.finish(&outcome).await, Err(JobError::LeaseLost)),
                "{which:?} {outcome:?}"
            );
        }
        assert_eq!(dir.job(&change.job).await.unwrap(), taken, "{which:?}");

        // A resumes its handler: its first batch is refused and rolls
        // back, so no user's roles change and no event is written.
        let after_a = a.run_claimed(held_by_a.clone()).await.unwrap();
        assert_eq!(after_a, taken, "{which:?}");
        assert!(
            dir.effective_roles(&ids).await.unwrap().is_empty(),
            "{which:?}"
        );
        assert_eq!(role_event_count(&dir).await, 0, "{which:?}");

        // B finishes; the row is B's.
        let done = b.run_claimed(held_by_b).await.unwrap();
        assert_eq!(done.status, JobStatus::Done, "{which:?} {done:?}");
        assert_eq!(done.lease_owner.as_deref(), Some("worker-b"));
        assert_eq!(done.attempts, 2);
        assert_eq!(done.progress, counts);
        assert_eq!(done.result, Some(json!({"users": 3, "changed": 3})));
        assert_eq!(dir.effective_roles(&ids).await.unwrap().len(), 3);
        assert_eq!(role_event_count(&dir).await, 3);

        // A's completion (or failure) is refused and changes nothing.
        for outcome in [
            Ok(JobResult::default()),
            Err(JobError::Retryable("late".into())),
            Err(JobError::Permanent("late".into())),
        ] {
            assert!(
                matches!(held_by_a.finish(&outcome).await, Err(JobError::LeaseLost)),
                "{which:?} {outcome:?}"
            );
        }
        assert!(matches!(
            held_by_a.heartbeat().await,
            Err(JobError::LeaseLost)
        ));
        assert_eq!(dir.job(&change.job).await.unwrap(), done, "{which:?}");
        assert_eq!(role_event_count(&dir).await, 3);
    }
}

/// A kind from outside the store: fails (retryably unless the payload
/// says otherwise) and counts its calls.
struct Flaky {
    calls: Arc<AtomicU32>,
}

impl JobHandler for Flaky {
    fn kind(&self) -> &'static str {
        "flaky"
    }

    async fn run(&self, ctx: JobContext) -> Result<JobResult, JobError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        ctx.progress(JobProgress {
            total: 1,
            processed: 1,
            changed: 0,
        })
        .await?;
        if ctx.payload()["permanent"] == json!(true) {
            Err(JobError::Permanent("bad credentials".into()))
        } else {
            Err(JobError::Retryable("downstream answered 503".into()))
        }
    }
}

#[tokio::test]
async fn a_failing_job_is_retried_with_backoff_then_fails() {
    for which in backends() {
        let clock = Arc::new(ManualClock::starting_now());
        let (_db, store, dir) = setup(which, &clock).await;
        let calls = Arc::new(AtomicU32::new(0));
        let worker = store.job_worker(JobHandlers::new().with(Flaky {
            calls: calls.clone(),
        }));
        let id = dir
            .enqueue_job(NewJob::new("flaky", json!({"app": "crm"})).max_attempts(3))
            .await
            .unwrap();
        // A worker without the kind's handler leaves it alone.
        let roles_only = store.job_worker(JobHandlers::builtin());
        assert!(roles_only.claim().await.unwrap().is_none(), "{which:?}");

        // Attempt 1 fails: back in the queue for 10 s.
        let job = worker.run_next().await.unwrap().expect("a due job");
        assert_eq!(job.id, id);
        assert_eq!(
            (job.status, job.attempts),
            (JobStatus::Queued, 1),
            "{which:?}"
        );
        assert_eq!(job.error.as_deref(), Some("downstream answered 503"));
        assert_eq!(job.run_after, clock.now() + TimeDelta::seconds(10));
        assert_eq!(job.lease_owner, None);
        assert!(
            worker.run_next().await.unwrap().is_none(),
            "{which:?}: backing off"
        );
        clock.advance(TimeDelta::seconds(9));
        assert!(
            worker.run_next().await.unwrap().is_none(),
            "{which:?}: backing off"
        );

        // Attempt 2, then 20 s.
        clock.advance(TimeDelta::seconds(1));
        let job = worker.run_next().await.unwrap().expect("due again");
        assert_eq!(
            (job.status, job.attempts),
            (JobStatus::Queued, 2),
            "{which:?}"
        );
        assert_eq!(job.run_after, clock.now() + TimeDelta::seconds(20));
        clock.advance(TimeDelta::seconds(19));
        assert!(worker.run_next().await.unwrap().is_none(), "{which:?}");

        // Attempt 3 is the last: failed for good.
        clock.advance(TimeDelta::seconds(1));
        let job = worker.run_next().await.unwrap().expect("due again");
        assert_eq!(
            (job.status, job.attempts),
            (JobStatus::Failed, 3),
            "{which:?}"
        );
        assert_eq!(job.error.as_deref(), Some("downstream answered 503"));
        assert_eq!(job.finished_at, Some(clock.now()));
        clock.advance(TimeDelta::hours(1));
        assert!(worker.run_next().await.unwrap().is_none(), "{which:?}");
        assert_eq!(calls.load(Ordering::SeqCst), 3);

        // A permanent error is not retried.
        let id = dir
            .enqueue_job(NewJob::new("flaky", json!({"permanent": true})))
            .await
            .unwrap();
        let job = worker.run_next().await.unwrap().expect("a due job");
        assert_eq!(job.id, id);
        assert_eq!(
            (job.status, job.attempts),
            (JobStatus::Failed, 1),
            "{which:?}"
        );
        assert_eq!(job.error.as_deref(), Some("bad credentials"));
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }
}

#[tokio::test]
async fn a_job_whose_worker_keeps_dying_fails_after_its_attempts() {
    for which in backends() {
        let clock = Arc::new(ManualClock::starting_now());
        let (_db, store, dir) = setup(which, &clock).await;
        let id = dir
            .enqueue_job(NewJob::new("flaky", Value::Null).max_attempts(2))
            .await
            .unwrap();
        let handlers = || {
            JobHandlers::new().with(Flaky {
                calls: Arc::new(AtomicU32::new(0)),
            })
        };
        // Two workers claim it and die holding it.
        for n in 1..=2 {
            let w = store.job_worker(handlers()).with_id(format!("doomed-{n}"));
            let held = w.claim().await.unwrap().expect("claimable");
            assert_eq!(held.job().attempts, n, "{which:?}");
            clock.advance(lease());
        }
        // The next claim finds the lease ended on the last attempt.
        let w = store.job_worker(handlers());
        assert!(w.claim().await.unwrap().is_none(), "{which:?}");
        let job = dir.job(&id).await.unwrap();
        assert_eq!(
            (job.status, job.attempts),
            (JobStatus::Failed, 2),
            "{which:?}"
        );
        assert_eq!(
            job.error.as_deref(),
            Some("the lease of doomed-2 expired on attempt 2 of 2")
        );
    }
}

#[tokio::test]
async fn queued_jobs_of_one_key_coalesce() {
    for which in backends() {
        let clock = Arc::new(ManualClock::starting_now());
        let (_db, store, dir) = setup(which, &clock).await;
        let other = store.tenant(&tenant(&store, "globex").await);
        let reconcile =
            |app: &str, n: u32| NewJob::new("flaky", json!({"app": app, "n": n})).coalesce(app);

        let first = dir.enqueue_job(reconcile("crm", 1)).await.unwrap();
        let again = dir.enqueue_job(reconcile("crm", 2)).await.unwrap();
        assert_eq!(first, again, "{which:?}: coalesced");
        let job = dir.job(&first).await.unwrap();
        assert_eq!(job.payload, json!({"app": "crm", "n": 2}), "{which:?}");
        assert_eq!(job.status, JobStatus::Queued);
        assert_eq!(
            job.coalesce_key,
            Some(format!("flaky:{}:crm", dir.tenant().id()))
        );
        // Another scope, another tenant, or no key: jobs of their own.
        let hr = dir.enqueue_job(reconcile("hr", 1)).await.unwrap();
        let elsewhere = other.enqueue_job(reconcile("crm", 1)).await.unwrap();
        let plain = || NewJob::new("flaky", json!({}));
        let p1 = dir.enqueue_job(plain()).await.unwrap();
        let p2 = dir.enqueue_job(plain()).await.unwrap();
        let ids = [&first, &hr, &elsewhere, &p1, &p2];
        for (i, a) in ids.iter().enumerate() {
            for b in &ids[i + 1..] {
                assert_ne!(a, b, "{which:?}");
            }
        }
        assert_eq!(dir.jobs(Some("flaky"), 100).await.unwrap().len(), 4);
        assert_eq!(other.jobs(None, 100).await.unwrap().len(), 1);

        // Once claimed, the job no longer coalesces: a request made while
        // it runs queues the next one.
        let worker = store.job_worker(JobHandlers::new().with(Flaky {
            calls: Arc::new(AtomicU32::new(0)),
        }));
        let held = worker.claim().await.unwrap().expect("the oldest job");
        assert_eq!(held.job().id, first);
        let next = dir.enqueue_job(reconcile("crm", 3)).await.unwrap();
        assert_ne!(next, first, "{which:?}");
        assert_eq!(dir.enqueue_job(reconcile("crm", 4)).await.unwrap(), next);

        // The running job fails retryably, but the queued one of its key
        // (with the newer payload) is its retry.
        let failed = held
            .finish(&Err(JobError::Retryable("timeout".into())))
            .await
            .unwrap();
        assert_eq!(failed.status, JobStatus::Failed, "{which:?}");
        assert!(
            failed.error.as_deref().unwrap_or_default().contains(&next),
            "{failed:?}"
        );
        let queued = dir.job(&next).await.unwrap();
        assert_eq!(
            (queued.status, queued.payload),
            (JobStatus::Queued, json!({"app": "crm", "n": 4}))
        );
    }
}

/// A handler that reports progress in steps until told it lost the job.
struct Steps {
    started: Arc<tokio::sync::Notify>,
    go: Arc<tokio::sync::Notify>,
}

impl JobHandler for Steps {
    fn kind(&self) -> &'static str {
        "steps"
    }

    async fn run(&self, ctx: JobContext) -> Result<JobResult, JobError> {
        self.started.notify_one();
        self.go.notified().await;
        for processed in 1..=3 {
            ctx.progress(JobProgress {
                total: 3,
                processed,
                changed: 0,
            })
            .await?;
        }
        Ok(JobResult {
            summary: Some(json!({"steps": 3})),
        })
    }
}

#[tokio::test]
async fn a_cancelled_job_stops() {
    for which in backends() {
        let clock = Arc::new(ManualClock::starting_now());
        let (_db, store, dir) = setup(which, &clock).await;
        let started = Arc::new(tokio::sync::Notify::new());
        let go = Arc::new(tokio::sync::Notify::new());
        let worker = store.job_worker(JobHandlers::new().with(Steps {
            started: started.clone(),
            go: go.clone(),
        }));

        // Queued: cancelled before any worker sees it.
        let id = dir
            .enqueue_job(NewJob::new("steps", Value::Null))
            .await
            .unwrap();
        let job = dir.cancel_job(&id).await.unwrap();
        assert_eq!(job.status, JobStatus::Cancelled, "{which:?}");
        assert!(worker.claim().await.unwrap().is_none(), "{which:?}");
        assert!(matches!(
            dir.cancel_job(&id).await,
            Err(StoreError::InvalidValue(_))
        ));

        // Running: the handler's next write is refused and it stops.
        let id = dir
            .enqueue_job(NewJob::new("steps", Value::Null))
            .await
            .unwrap();
        let held = worker.claim().await.unwrap().expect("claimable");
        let run = {
            let (worker, held) = (worker.clone(), held.clone());
            tokio::spawn(async move { worker.run_claimed(held).await })
        };
        started.notified().await;
        let cancelled = dir.cancel_job(&id).await.unwrap();
        assert_eq!(cancelled.status, JobStatus::Cancelled);
        go.notify_one();
        let job = run.await.unwrap().unwrap();
        assert_eq!(
            job, cancelled,
            "{which:?}: nothing written after the cancel"
        );
        assert_eq!(job.progress, JobProgress::default());
        assert_eq!(job.lease_owner.as_deref(), Some(worker.id()));
        assert!(held.is_cancelled());
        assert!(matches!(held.heartbeat().await, Err(JobError::Cancelled)));

        // Another tenant cannot see or cancel it.
        let other = store.tenant(&tenant(&store, "globex").await);
        assert!(matches!(
            other.cancel_job(&id).await,
            Err(StoreError::NotFound(_))
        ));
        assert!(matches!(other.job(&id).await, Err(StoreError::NotFound(_))));
    }
}

#[tokio::test]
async fn a_cancelled_role_recompute_changes_nothing() {
    for which in backends() {
        let clock = Arc::new(ManualClock::starting_now());
        let (_db, store, dir) = setup(which, &clock).await;
        let u = dir.create_user(user("alice")).await.unwrap();
        let change = dir.set_role_policy(policy(), None, "test").await.unwrap();
        let worker = store.job_worker(JobHandlers::builtin());
        let held = worker.claim().await.unwrap().expect("claimable");
        dir.cancel_job(&change.job).await.unwrap();
        let job = worker.run_claimed(held).await.unwrap();
        assert_eq!(job.status, JobStatus::Cancelled, "{which:?}");
        let role_job = dir.role_job(&change.job).await.unwrap();
        assert_eq!(role_job.status, JobStatus::Cancelled);
        assert!(
            dir.effective_roles(std::slice::from_ref(&u.id))
                .await
                .unwrap()
                .is_empty(),
            "{which:?}"
        );
        assert_eq!(role_event_count(&dir).await, 0);
    }
}

/// A handler slower than its lease: sleeps (real time) for `for_`.
struct Slow {
    for_: Duration,
}

impl JobHandler for Slow {
    fn kind(&self) -> &'static str {
        "slow"
    }

    async fn run(&self, _ctx: JobContext) -> Result<JobResult, JobError> {
        tokio::time::sleep(self.for_).await;
        Ok(JobResult::default())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_keep_a_slow_handlers_lease() {
    for which in backends() {
        // The system clock: the heartbeat task runs on real time.
        let lease = Duration::from_millis(600);
        let options = StoreOptions {
            job_lease: lease,
            ..StoreOptions::default()
        };
        let (_db, store) = store_with(which, options).await;
        let dir = store.tenant(&tenant(&store, "acme").await);
        let id = dir
            .enqueue_job(NewJob::new("slow", Value::Null))
            .await
            .unwrap();
        let slow = || Slow { for_: lease * 3 };
        let a = store.job_worker(JobHandlers::new().with(slow()));
        let b = store.job_worker(JobHandlers::new().with(slow()));
        let held = a.claim().await.unwrap().expect("claimable");
        let run = tokio::spawn(async move { a.run_claimed(held).await });
        // Three leases long, B never finds it claimable.
        while !run.is_finished() {
            assert!(
                b.claim().await.unwrap().is_none(),
                "{which:?}: lease lapsed"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let job = run.await.unwrap().unwrap();
        assert_eq!(
            (job.status, job.attempts),
            (JobStatus::Done, 1),
            "{which:?}"
        );
        assert_eq!(dir.job(&id).await.unwrap(), job);
    }
}

/// Counts its runs.
struct Counter {
    runs: Arc<AtomicU32>,
}

impl JobHandler for Counter {
    fn kind(&self) -> &'static str {
        "count"
    }

    async fn run(&self, _ctx: JobContext) -> Result<JobResult, JobError> {
        let n = self.runs.fetch_add(1, Ordering::SeqCst) + 1;
        Ok(JobResult {
            summary: Some(json!({ "run": n })),
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn competing_workers_run_each_job_once() {
    const JOBS: usize = 20;
    for which in backends() {
        let (_db, store, dir) = directory(which).await;
        dir.create_user(user("alice")).await.unwrap();
        let runs = Arc::new(AtomicU32::new(0));
        let (stop, rx) = tokio::sync::watch::channel(false);
        let workers: Vec<_> = (0..3)
            .map(|_| {
                let handlers = JobHandlers::builtin().with(Counter { runs: runs.clone() });
                let (store, rx) = (store.clone(), rx.clone());
                tokio::spawn(async move { store.run_jobs(handlers, rx).await })
            })
            .collect();
        let mut ids = Vec::new();
        for i in 0..JOBS {
            ids.push(
                dir.enqueue_job(NewJob::new("count", json!({ "i": i })))
                    .await
                    .unwrap(),
            );
        }
        let change = dir.set_role_policy(policy(), None, "test").await.unwrap();
        ids.push(change.job);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let jobs = dir.jobs(None, 100).await.unwrap();
            if jobs.len() == ids.len() && jobs.iter().all(|j| j.status == JobStatus::Done) {
                for job in &jobs {
                    assert_eq!(job.attempts, 1, "{which:?} {job:?}");
                }
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{which:?}: not all done: {jobs:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(runs.load(Ordering::SeqCst) as usize, JOBS, "{which:?}");
        stop.send(true).unwrap();
        for w in workers {
            w.await.unwrap();
        }
    }
}
