//! Where the worker finds its work: the seam between the delivery loop
//! and what claims and feeds it.
//!
//! The worker asks a [`Queue`] which targets it may deliver to (leases),
//! what each target has not yet seen (the events after its cursor, and
//! the retries that came due), and hands it back each round's results to
//! commit, fenced by the lease. [`SqlQueue`] answers all of it from the
//! database: the event log read in commit order, leases as columns of the
//! `targets` rows. The Redis Streams queue (`redis_queue`, scale-out)
//! takes over the sharing and waking (leases, `changed_for`, `relet`,
//! `background`) while the delivery state it commits stays in the
//! database; the worker's loop, policy and rendering do not change.

use std::collections::HashSet;
use std::future::Future;

use chrono::{DateTime, Utc};
use store::delivery::{Commit, Delivery, LeasedTarget, Target};
use store::{EventQuery, Store, StoreError, StoredEvent};
use tokio::sync::watch;
use uuid::Uuid;

/// The operations the delivery loop needs from its queue.
pub trait Queue: Send + Sync + 'static {
    /// Takes (or renews) leases on up to `max` enabled targets that no
    /// other live worker holds, until `until`; returns every target
    /// `owner` now holds.
    fn lease_targets(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
        max: u64,
    ) -> impl Future<Output = Result<Vec<LeasedTarget>, StoreError>> + Send;

    /// Gives up every lease `owner` holds (graceful shutdown).
    fn release(&self, owner: &str) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// A target as it is now (`None` once deleted).
    fn target(
        &self,
        id: Uuid,
    ) -> impl Future<Output = Result<Option<LeasedTarget>, StoreError>> + Send;

    /// Up to `limit` events of the target's tenant after its cursor, in
    /// commit order.
    fn next_events(
        &self,
        target: &Target,
        limit: u64,
    ) -> impl Future<Output = Result<Vec<StoredEvent>, StoreError>> + Send;

    /// The target's retries that are due, each first in line for its
    /// resource.
    fn due(
        &self,
        target: Uuid,
        now: DateTime<Utc>,
        limit: u64,
    ) -> impl Future<Output = Result<Vec<Delivery>, StoreError>> + Send;

    /// The events with these ids (for retries; pruned ones are missing).
    fn events(
        &self,
        ids: &[i64],
    ) -> impl Future<Output = Result<Vec<StoredEvent>, StoreError>> + Send;

    /// Which of `resources` have an event waiting (pending) for the target:
    /// their new events must wait behind it.
    fn held(
        &self,
        target: Uuid,
        resources: &[String],
    ) -> impl Future<Output = Result<HashSet<String>, StoreError>> + Send;

    /// Writes a round's results if `owner` still holds the target's lease
    /// (`false`, and nothing written, when it does not).
    fn commit(
        &self,
        target: Uuid,
        owner: &str,
        commit: Commit,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Resolves when new events may have been committed (it may also
    /// resolve without: the worker then finds nothing and waits again).
    fn changed(&self) -> impl Future<Output = ()> + Send;

    /// [`Queue::changed`] for one target: a queue that knows which
    /// targets new events are for wakes only those.
    fn changed_for(&self, target: Uuid) -> impl Future<Output = ()> + Send {
        let _ = target;
        self.changed()
    }

    /// Resolves when the queue wants the worker to lease again before the
    /// next renewal (its share of the work moved). Never, by default.
    fn relet(&self) -> impl Future<Output = ()> + Send {
        std::future::pending()
    }

    /// What the queue does alongside the worker's loop for `owner`
    /// (feeding itself), until `stop` turns true. It runs inside
    /// [`crate::Worker::run`], so it ends with it. Nothing, by default.
    fn background(
        &self,
        owner: &str,
        stop: watch::Receiver<bool>,
    ) -> impl Future<Output = ()> + Send {
        let _ = (owner, stop);
        std::future::ready(())
    }
}

/// The queue in the database: the event log and the `targets` leases.
#[derive(Clone)]
pub struct SqlQueue {
    store: Store,
}

impl SqlQueue {
    /// The queue of `store`.
    pub fn new(store: Store) -> SqlQueue {
        SqlQueue { store }
    }
}

impl Queue for SqlQueue {
    async fn lease_targets(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
        max: u64,
    ) -> Result<Vec<LeasedTarget>, StoreError> {
        self.store
            .delivery()
            .lease_targets(owner, now, until, max)
            .await
    }

    async fn release(&self, owner: &str) -> Result<(), StoreError> {
        self.store.delivery().release_leases(owner).await
    }

    async fn target(&self, id: Uuid) -> Result<Option<LeasedTarget>, StoreError> {
        self.store.delivery().target(id).await
    }

    async fn next_events(
        &self,
        target: &Target,
        limit: u64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        self.store
            .event_log()
            .read(&EventQuery {
                after: target.cursor,
                limit,
                tenant: Some(target.tenant_id),
                types: Vec::new(),
            })
            .await
    }

    async fn due(
        &self,
        target: Uuid,
        now: DateTime<Utc>,
        limit: u64,
    ) -> Result<Vec<Delivery>, StoreError> {
        self.store.delivery().due(target, now, limit).await
    }

    async fn events(&self, ids: &[i64]) -> Result<Vec<StoredEvent>, StoreError> {
        self.store.delivery().events(ids).await
    }

    async fn held(
        &self,
        target: Uuid,
        resources: &[String],
    ) -> Result<HashSet<String>, StoreError> {
        self.store.delivery().held(target, resources).await
    }

    async fn commit(&self, target: Uuid, owner: &str, commit: Commit) -> Result<bool, StoreError> {
        self.store.delivery().commit(target, owner, commit).await
    }

    async fn changed(&self) {
        self.store.event_log().committed().await
    }
}
