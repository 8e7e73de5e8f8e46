//! The worker draws its work through the `Queue` seam only: a queue that
//! withholds events holds back delivery, and every round's results go back
//! through it.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use store::delivery::{Commit, Delivery, LeasedTarget, Target};
use store::{StoreError, StoredEvent};
use sync_worker::metrics::Metrics;
use sync_worker::{Queue, SqlQueue, Worker};
use testkit::backends;
use testkit::receiver::Receiver;
use tokio::sync::watch;
use uuid::Uuid;

use crate::support::*;

/// The database's queue behind a gate: while closed it feeds no new
/// events. Counts the rounds committed through it.
#[derive(Clone)]
struct Gated {
    inner: SqlQueue,
    open: Arc<AtomicBool>,
    commits: Arc<AtomicUsize>,
}

impl Queue for Gated {
    async fn lease_targets(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
        max: u64,
    ) -> Result<Vec<LeasedTarget>, StoreError> {
        self.inner.lease_targets(owner, now, until, max).await
    }

    async fn release(&self, owner: &str) -> Result<(), StoreError> {
        self.inner.release(owner).await
    }

    async fn target(&self, id: Uuid) -> Result<Option<LeasedTarget>, StoreError> {
        self.inner.target(id).await
    }

    async fn next_events(
        &self,
        target: &Target,
        limit: u64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        if !self.open.load(Ordering::SeqCst) {
            return Ok(Vec::new());
        }
        self.inner.next_events(target, limit).await
    }

    async fn due(
        &self,
        target: Uuid,
        now: DateTime<Utc>,
        limit: u64,
    ) -> Result<Vec<Delivery>, StoreError> {
        self.inner.due(target, now, limit).await
    }

    async fn events(&self, ids: &[i64]) -> Result<Vec<StoredEvent>, StoreError> {
        self.inner.events(ids).await
    }

    async fn held(
        &self,
        target: Uuid,
        resources: &[String],
    ) -> Result<HashSet<String>, StoreError> {
        self.inner.held(target, resources).await
    }

    async fn commit(&self, target: Uuid, owner: &str, commit: Commit) -> Result<bool, StoreError> {
        self.commits.fetch_add(1, Ordering::SeqCst);
        self.inner.commit(target, owner, commit).await
    }

    async fn changed(&self) {
        self.inner.changed().await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_takes_its_work_from_its_queue() {
    for which in backends() {
        let (_db, store) = store(which).await;
        let dir = tenant(&store, "acme").await;
        let receiver = Receiver::start().await;
        webhook(&dir, &receiver, "app").await;
        let gated = Gated {
            inner: SqlQueue::new(store.clone()),
            open: Arc::new(AtomicBool::new(false)),
            commits: Arc::new(AtomicUsize::new(0)),
        };
        let worker = Worker::with_queue(
            store.clone(),
            gated.clone(),
            config(),
            Some(secrets()),
            Metrics::unregistered().expect("metrics"),
        )
        .expect("worker");
        let (stop, rx) = watch::channel(false);
        let task = tokio::spawn(worker.run(rx));

        for i in 0..20 {
            dir.create_user(user(&format!("q{i}"))).await.expect("user");
        }
        let ids = event_ids(&dir).await;
        assert_eq!(ids.len(), 20, "{which:?}");
        // Closed: the events are committed, but the queue feeds none.
        tokio::time::sleep(Duration::from_millis(800)).await;
        assert_eq!(
            receiver.count(),
            0,
            "{which:?}: nothing passes a closed queue"
        );
        assert_eq!(gated.commits.load(Ordering::SeqCst), 0, "{which:?}");

        gated.open.store(true, Ordering::SeqCst);
        let got = wait_for_ids(&receiver, &ids, Duration::from_secs(20)).await;
        assert!(ids.iter().all(|id| got.contains(id)), "{which:?}: {got:?}");
        // The round commits after its sends, so the receiver may see them
        // a moment before the commit goes through the queue.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while gated.commits.load(Ordering::SeqCst) == 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            gated.commits.load(Ordering::SeqCst) >= 1,
            "{which:?}: no round committed"
        );

        stop.send_replace(true);
        task.await.expect("worker ends");
        // Its lease went back through the queue on the way out.
        let target = store
            .delivery()
            .lease_targets("other", Utc::now(), Utc::now(), 10)
            .await;
        assert_eq!(target.expect("lease").len(), 1, "{which:?}: released");
    }
}
