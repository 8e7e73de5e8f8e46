//! The delivery queue through Redis Streams, for several workers
//! (docs/delivery-scale-out.md).
//!
//! The database stays the source of truth: events, every target's cursor,
//! retries, dead letters, and the target leases that fence each round's
//! commit. Redis adds three things on top:
//! - **sharing**: the tenants are spread over [`PARTITIONS`] partitions;
//!   each worker heartbeats, takes its share of partition leases, and
//!   leases (in the database) the targets of its partitions' tenants;
//! - **waking**: a relay (one at a time, under a lock) copies each
//!   committed event's (position, id, tenant) from the log into its
//!   tenant's partition stream; the partition's worker reads it through
//!   the consumer group and wakes only that tenant's targets, within
//!   milliseconds even when the event was committed by another process;
//! - **recovery**: an entry stays pending until every target of its
//!   tenant has moved its cursor past it; a worker that dies leaves its
//!   entries pending, and the partition's next worker claims them.
//!
//! An entry is a wake-up, never the event: the target's loop reads the
//! database after its cursor. An entry lost, acknowledged too early or
//! read twice costs at most a wake-up (the loop also polls every
//! `DeliveryConfig::poll`), never an event; so this bookkeeping stays in
//! memory and small.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::Poll;
use std::time::Duration;

use chrono::{DateTime, Utc};
use cluster::notice::Notice;
use cluster::stream::{self, Appended, Entry, EventStreams, Lock, PARTITIONS, Relayed};
use cluster::{ClusterError, Redis};
use store::delivery::{Commit, Delivery, LeasedTarget, Target};
use store::{EventQuery, Store, StoreError, StoredEvent};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;
use uuid::Uuid;

use crate::config::DeliveryConfig;
use crate::metrics::Metrics;
use crate::queue::{Queue, SqlQueue};
use crate::runner::{Worker, WorkerError};
use crate::secrets::SecretBox;

/// Events the relay copies per Redis call.
const RELAY_BATCH: u64 = 500;
/// Entries one read takes per partition.
const READ_COUNT: usize = 500;
/// How long a read waits for new entries (on its own connection).
const BLOCK: Duration = Duration::from_secs(1);
/// Entries claimed from departed workers per partition and pass.
const CLAIM_MAX: usize = 1000;
/// Entries remembered at most; beyond, new ones wait in Redis (the
/// loops still poll the database meanwhile).
const MAX_PENDING: usize = 100_000;

/// A stream entry: its partition and stream id.
type EntryKey = (u16, String);

/// The Redis Streams queue; cheap to clone (clones share everything).
#[derive(Clone)]
pub struct RedisQueue {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for RedisQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisQueue")
            .field("streams", &self.inner.streams)
            .finish_non_exhaustive()
    }
}

struct Inner {
    store: Store,
    sql: SqlQueue,
    /// For notices (other processes' commits).
    redis: Redis,
    streams: EventStreams,
    lease: Duration,
    poll: Duration,
    state: Mutex<State>,
    /// The set of partitions held changed: the reader reads the new set.
    owned_changed: Notify,
    /// The worker should lease again now.
    relet: Notify,
    /// New entries arrived (for [`Queue::changed`]).
    changed: Notify,
    /// Another process said it committed (its events are in the log).
    committed_elsewhere: Notify,
    /// Whether the last Redis call worked (warnings only on a change).
    redis_up: AtomicBool,
    counters: Counters,
}

#[derive(Default)]
struct Counters {
    relayed: AtomicU64,
    read: AtomicU64,
    claimed: AtomicU64,
    acked: AtomicU64,
    rounds: AtomicU64,
}

/// What a queue has done since it was made (for tests and diagnostics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Events this process's relay added to the streams.
    pub relayed: u64,
    /// Entries read as new.
    pub read: u64,
    /// Entries claimed from other consumers (XAUTOCLAIM).
    pub claimed: u64,
    /// Entries acknowledged.
    pub acked: u64,
    /// Rounds committed.
    pub rounds: u64,
}

#[derive(Default)]
struct State {
    /// This worker's name (its consumer name and lease owner).
    owner: Option<String>,
    /// Partitions held, each until when: a renewal that cannot reach
    /// Redis leaves the lease to run out, and the partition with it.
    owned: BTreeMap<u16, Instant>,
    /// Partitions newly held: what a departed worker left in them is
    /// claimed first.
    fresh: BTreeSet<u16>,
    /// The enabled targets of the tenants of the partitions held.
    tenants: HashMap<Uuid, Vec<Uuid>>,
    /// When each tenant's targets were last read from the database.
    looked_up: HashMap<Uuid, Instant>,
    /// Targets whose database lease this worker holds.
    held: HashSet<Uuid>,
    /// What the last full pass leased (returned again by cheap passes).
    leased: Vec<LeasedTarget>,
    /// Each target's cursor as last seen.
    cursors: HashMap<Uuid, i64>,
    pending: Pending,
    /// One wake-up per target, so an entry wakes only its tenant's loops
    /// (and a wake-up during a round is kept for after it).
    wakers: HashMap<Uuid, Arc<Notify>>,
    /// When the database leases were last renewed.
    renewed: Option<Instant>,
    /// Lease again soon: below the share, targets still held by their
    /// previous worker, or Redis did not answer.
    early: bool,
    /// Targets of the partitions held are still leased by their previous
    /// worker: every pass leases in the database until they are taken.
    handover: bool,
    /// The next pass must lease in the database (targets were leased
    /// between passes).
    dirty: bool,
}

impl State {
    fn waker(&mut self, target: Uuid) -> Arc<Notify> {
        self.wakers.entry(target).or_default().clone()
    }
}

/// The entries this worker read and has not acknowledged yet, and which
/// targets each still waits for.
#[derive(Default)]
struct Pending {
    /// Each remembered entry, with how many targets still owe it.
    entries: HashMap<EntryKey, usize>,
    /// Each target's awaited entries, by position.
    by_target: HashMap<Uuid, BTreeMap<i64, Vec<EntryKey>>>,
}

impl Pending {
    fn len(&self) -> usize {
        self.entries.len()
    }

    /// Remembers `key` (an event at `position`) until each of `targets`
    /// has handled it (those known to be past it already are not waited
    /// for). True when none is left to wait for: acknowledge it now. An
    /// entry remembered already is left as it is.
    fn add(
        &mut self,
        key: EntryKey,
        position: i64,
        targets: &[Uuid],
        cursors: &HashMap<Uuid, i64>,
    ) -> bool {
        if self.entries.contains_key(&key) {
            return false;
        }
        let waiting: Vec<Uuid> = targets
            .iter()
            .filter(|t| cursors.get(t).is_none_or(|c| *c < position))
            .copied()
            .collect();
        if waiting.is_empty() {
            return true;
        }
        self.entries.insert(key.clone(), waiting.len());
        for t in waiting {
            self.by_target
                .entry(t)
                .or_default()
                .entry(position)
                .or_default()
                .push(key.clone());
        }
        false
    }

    /// `target` has handled the log up to `upto`: returns the entries no
    /// target owes any more.
    fn done(&mut self, target: Uuid, upto: i64) -> Vec<EntryKey> {
        let Some(waiting) = self.by_target.get_mut(&target) else {
            return Vec::new();
        };
        let passed = match upto.checked_add(1) {
            Some(next) => {
                let later = waiting.split_off(&next);
                std::mem::replace(waiting, later)
            }
            None => std::mem::take(waiting),
        };
        if waiting.is_empty() {
            self.by_target.remove(&target);
        }
        self.settle(passed.into_values().flatten())
    }

    /// `target` is gone, disabled or another worker's: nothing waits for
    /// it any more.
    fn drop_target(&mut self, target: Uuid) -> Vec<EntryKey> {
        match self.by_target.remove(&target) {
            Some(waiting) => self.settle(waiting.into_values().flatten()),
            None => Vec::new(),
        }
    }

    fn settle(&mut self, keys: impl Iterator<Item = EntryKey>) -> Vec<EntryKey> {
        let mut out = Vec::new();
        for key in keys {
            if let Some(n) = self.entries.get_mut(&key) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.entries.remove(&key);
                    out.push(key);
                }
            }
        }
        out
    }

    /// The partition went to another worker: forget its entries without
    /// acknowledging them (they stay pending for the new holder to claim).
    fn forget_partition(&mut self, partition: u16) {
        self.entries.retain(|(p, _), _| *p != partition);
        for waiting in self.by_target.values_mut() {
            for keys in waiting.values_mut() {
                keys.retain(|(p, _)| *p != partition);
            }
            waiting.retain(|_, keys| !keys.is_empty());
        }
        self.by_target.retain(|_, waiting| !waiting.is_empty());
    }

    /// The targets something waits for.
    fn targets(&self) -> Vec<Uuid> {
        self.by_target.keys().copied().collect()
    }
}

/// Why a relay step failed.
#[derive(Debug, thiserror::Error)]
enum RelayError {
    /// The event log could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Redis did not answer.
    #[error(transparent)]
    Redis(#[from] ClusterError),
}

/// What a relay step came to.
enum Relay {
    /// Copied a whole batch (or must look again at once).
    More,
    /// Caught up with the log.
    Idle,
    /// Another worker holds the relay's lock now.
    Lost,
}

impl RedisQueue {
    /// A queue on `redis`, delivering from `store` with `config`'s lease
    /// and poll interval.
    pub fn new(store: Store, redis: Redis, config: &DeliveryConfig) -> RedisQueue {
        RedisQueue {
            inner: Arc::new(Inner {
                sql: SqlQueue::new(store.clone()),
                store,
                streams: EventStreams::new(redis.clone()),
                redis,
                lease: config.effective_lease(),
                poll: config.poll,
                state: Mutex::new(State::default()),
                owned_changed: Notify::new(),
                relet: Notify::new(),
                changed: Notify::new(),
                committed_elsewhere: Notify::new(),
                redis_up: AtomicBool::new(true),
                counters: Counters::default(),
            }),
        }
    }

    /// What it has done so far.
    pub fn stats(&self) -> QueueStats {
        let c = &self.inner.counters;
        QueueStats {
            relayed: c.relayed.load(Ordering::Relaxed),
            read: c.read.load(Ordering::Relaxed),
            claimed: c.claimed.load(Ordering::Relaxed),
            acked: c.acked.load(Ordering::Relaxed),
            rounds: c.rounds.load(Ordering::Relaxed),
        }
    }

    /// The partitions this worker holds now.
    pub fn partitions(&self) -> Vec<u16> {
        self.valid_partitions().into_iter().collect()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The partitions held whose lease has not run out; forgets the
    /// others.
    fn valid_partitions(&self) -> BTreeSet<u16> {
        self.prune_partitions().0
    }

    /// [`RedisQueue::valid_partitions`], and whether some just ran out.
    fn prune_partitions(&self) -> (BTreeSet<u16>, bool) {
        let now = Instant::now();
        let mut st = self.state();
        let lapsed: Vec<u16> = st
            .owned
            .iter()
            .filter(|(_, until)| **until <= now)
            .map(|(p, _)| *p)
            .collect();
        if !lapsed.is_empty() {
            tracing::warn!(
                partitions = ?lapsed,
                "delivery: partition leases ran out without a renewal (redis unreachable); \
                 their targets pause until it answers"
            );
        }
        let any = !lapsed.is_empty();
        for p in lapsed {
            st.owned.remove(&p);
            st.fresh.remove(&p);
            st.pending.forget_partition(p);
        }
        (st.owned.keys().copied().collect(), any)
    }

    /// How soon an early pass comes.
    fn early_delay(&self) -> Duration {
        self.inner.poll.clamp(
            Duration::from_millis(100),
            (self.inner.lease / 3).max(Duration::from_millis(100)),
        )
    }

    /// Heartbeat and partition leases; returns the partitions held and
    /// the share.
    async fn balance(&self, owner: &str) -> Result<(Vec<u16>, u16), ClusterError> {
        let i = &self.inner;
        let live = i.streams.heartbeat(owner, i.lease).await?;
        let share = stream::share(PARTITIONS, live);
        let held = i.streams.balance(owner, i.lease, share).await?;
        Ok((held, share))
    }

    /// `target` has handled the log up to `upto`.
    async fn done(&self, target: Uuid, upto: i64) {
        let acks = {
            let mut st = self.state();
            let known = st.cursors.entry(target).or_insert(upto);
            *known = (*known).max(upto);
            st.pending.done(target, upto)
        };
        self.ack(acks).await;
    }

    /// `target` is no longer this worker's to deliver to.
    async fn forget_target(&self, target: Uuid) {
        let acks = {
            let mut st = self.state();
            st.cursors.remove(&target);
            st.wakers.remove(&target);
            st.held.remove(&target);
            st.pending.drop_target(target)
        };
        self.ack(acks).await;
    }

    async fn ack(&self, keys: Vec<EntryKey>) {
        if keys.is_empty() {
            return;
        }
        let i = &self.inner;
        let mut by_partition: BTreeMap<u16, Vec<String>> = BTreeMap::new();
        for (p, id) in keys {
            by_partition.entry(p).or_default().push(id);
        }
        for (p, ids) in by_partition {
            match i.streams.ack(p, &ids).await {
                Ok(()) => {
                    i.up();
                    i.counters
                        .acked
                        .fetch_add(ids.len() as u64, Ordering::Relaxed);
                }
                // They stay pending; this worker claims them again after
                // a lease, finds their targets past them, and acknowledges.
                Err(e) => i.down("cannot acknowledge stream entries", &e),
            }
        }
    }

    /// Takes in entries read or claimed: wakes their tenants' targets and
    /// remembers them until those targets are past them.
    async fn on_entries(&self, owner: &str, entries: Vec<Entry>) {
        if entries.is_empty() {
            return;
        }
        let i = &self.inner;
        // Each tenant's targets are read again at most once per poll (a
        // target may have been created since), in one query per batch.
        let stale: Vec<Uuid> = {
            let st = self.state();
            let mut u: Vec<Uuid> = entries
                .iter()
                .map(|e| e.tenant)
                .filter(|t| st.looked_up.get(t).is_none_or(|at| at.elapsed() >= i.poll))
                .collect();
            u.sort_unstable();
            u.dedup();
            u
        };
        let mut skip: HashSet<Uuid> = HashSet::new();
        if !stale.is_empty() {
            match i.store.delivery().enabled_targets_of(&stale).await {
                Ok(found) => {
                    let now = Instant::now();
                    let mut fresh: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
                    for (target, tenant) in found {
                        fresh.entry(tenant).or_default().push(target);
                    }
                    let mut st = self.state();
                    for tenant in &stale {
                        st.looked_up.insert(*tenant, now);
                        match fresh.remove(tenant) {
                            Some(targets) => st.tenants.insert(*tenant, targets),
                            None => st.tenants.remove(tenant),
                        };
                    }
                }
                Err(e) => {
                    // Left pending: claimed again after a lease.
                    tracing::warn!(error = %e, "delivery: cannot look up the targets of new events");
                    // Known tenants keep the targets known; the others'
                    // entries stay pending (claimed again after a lease).
                    let st = self.state();
                    skip.extend(stale.iter().filter(|t| !st.tenants.contains_key(t)));
                }
            }
        }
        // Targets of these tenants this worker does not hold yet (created
        // since the last pass, or just let go by their previous worker):
        // lease them now, and have the worker start their loops.
        let missing: Vec<Uuid> = {
            let st = self.state();
            let mut m: Vec<Uuid> = entries
                .iter()
                .filter(|e| st.owned.contains_key(&e.partition))
                .filter_map(|e| st.tenants.get(&e.tenant))
                .flatten()
                .filter(|t| !st.held.contains(t))
                .copied()
                .collect();
            m.sort_unstable();
            m.dedup();
            m
        };
        if !missing.is_empty() {
            let now = Utc::now();
            let until = now + chrono::Duration::from_std(i.lease).unwrap_or_default();
            let mut got = false;
            for target in missing {
                match i
                    .store
                    .delivery()
                    .lease_target(target, owner, now, until)
                    .await
                {
                    Ok(Some(_)) => {
                        self.state().held.insert(target);
                        got = true;
                    }
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(target_id = %target, error = %e, "delivery: cannot lease a target");
                    }
                }
            }
            if got {
                self.state().dirty = true;
                i.relet.notify_one();
            }
        }
        let mut acks = Vec::new();
        {
            let mut guard = self.state();
            let st = &mut *guard;
            for e in entries {
                if skip.contains(&e.tenant) || !st.owned.contains_key(&e.partition) {
                    continue;
                }
                let targets = st.tenants.get(&e.tenant).cloned().unwrap_or_default();
                let key = (e.partition, e.id);
                if st
                    .pending
                    .add(key.clone(), e.position, &targets, &st.cursors)
                {
                    acks.push(key);
                }
                for t in targets {
                    st.waker(t).notify_one();
                }
            }
        }
        i.changed.notify_waiters();
        self.ack(acks).await;
    }

    /// The relay: while this worker holds the relay's lock, copies the
    /// event log into the streams.
    async fn relay(&self, owner: &str, mut stop: watch::Receiver<bool>) {
        let i = &self.inner;
        let log = i.store.event_log();
        let mut holding = false;
        let mut locked_at: Option<Instant> = None;
        // The relay position as this relay left it (`None`: read it).
        let mut position: Option<i64> = None;
        loop {
            if *stop.borrow() {
                break;
            }
            // Listen for commits before reading the log, so one that lands
            // in between still wakes the relay.
            let mut committed = std::pin::pin!(log.committed());
            let woken =
                std::future::poll_fn(|cx| Poll::Ready(committed.as_mut().poll(cx).is_ready()))
                    .await;
            if locked_at.is_none_or(|t| t.elapsed() >= i.lease / 3) {
                match i.streams.relay_lock(owner, i.lease).await {
                    Ok(lock) => {
                        i.up();
                        locked_at = Some(Instant::now());
                        match lock {
                            Lock::Taken => {
                                tracing::info!(
                                    owner,
                                    "delivery: this worker relays the event log to redis"
                                );
                                holding = true;
                                position = None;
                            }
                            Lock::Renewed => holding = true,
                            Lock::Busy => {
                                holding = false;
                                position = None;
                            }
                        }
                    }
                    Err(e) => {
                        i.down("cannot take the relay lock", &e);
                        holding = false;
                        locked_at = None;
                        position = None;
                    }
                }
            }
            if holding {
                match self.relay_batch(owner, &mut position).await {
                    Ok(Relay::More) => continue,
                    Ok(Relay::Idle) => {}
                    Ok(Relay::Lost) => {
                        tracing::info!(owner, "delivery: another worker relays now");
                        holding = false;
                        locked_at = None;
                    }
                    Err(RelayError::Store(e)) => {
                        tracing::warn!(error = %e, "delivery: the relay cannot read the event log");
                    }
                    Err(RelayError::Redis(e)) => {
                        i.down("the relay cannot write to redis", &e);
                        position = None;
                    }
                }
            }
            // The holder looks again at every commit and every poll; a
            // standby only checks the lock (which lives a lease).
            let wait = if holding {
                // Renewed before it lapses, whatever the poll.
                i.poll.min(i.lease / 3)
            } else if locked_at.is_none() {
                i.poll
            } else {
                i.lease / 3
            };
            tokio::select! {
                () = committed.as_mut(), if holding && !woken => {}
                () = i.committed_elsewhere.notified(), if holding => {}
                () = tokio::time::sleep(wait) => {}
                _ = stop.wait_for(|s| *s) => break,
            }
        }
    }

    /// Copies the next batch of the log into the streams, with the new
    /// relay position in the same atomic step.
    async fn relay_batch(
        &self,
        owner: &str,
        position: &mut Option<i64>,
    ) -> Result<Relay, RelayError> {
        let i = &self.inner;
        let expected = match *position {
            Some(p) => Some(p),
            None => i.streams.relay_position().await?,
        };
        let from = match expected {
            Some(p) => p,
            // A first start, or Redis lost its data: from the lowest
            // cursor of any enabled target (every event before it is
            // handled everywhere). Entries for events some targets have
            // handled already cost those targets an empty round.
            None => match i.store.delivery().min_cursor().await? {
                Some(c) => c,
                None => i.store.event_log().head().await?,
            },
        };
        let events = i
            .store
            .event_log()
            .read(&EventQuery {
                after: from,
                limit: RELAY_BATCH,
                tenant: None,
                types: Vec::new(),
            })
            .await?;
        if events.is_empty() && expected.is_some() {
            *position = expected;
            return Ok(Relay::Idle);
        }
        let to = events.last().map_or(from, |e| e.position);
        let entries: Vec<Relayed> = events
            .iter()
            .map(|e| Relayed {
                position: e.position,
                event_id: e.id,
                tenant: e.tenant_id,
            })
            .collect();
        match i.streams.append(owner, expected, &entries, to).await? {
            Appended::Done => {
                i.up();
                *position = Some(to);
                i.counters
                    .relayed
                    .fetch_add(entries.len() as u64, Ordering::Relaxed);
                Ok(if entries.len() as u64 >= RELAY_BATCH {
                    Relay::More
                } else {
                    Relay::Idle
                })
            }
            Appended::Moved => {
                *position = None;
                Ok(Relay::More)
            }
            Appended::NotHolder => {
                *position = None;
                Ok(Relay::Lost)
            }
        }
    }

    /// The reader: claims what departed workers left pending in the
    /// partitions held, reads their new entries, and takes them in.
    async fn read(&self, owner: &str, mut stop: watch::Receiver<bool>) {
        let i = &self.inner;
        let mut reader = i.streams.reader();
        let mut claimed_at: HashMap<u16, Instant> = HashMap::new();
        loop {
            if *stop.borrow() {
                break;
            }
            let owned = self.valid_partitions();
            if owned.is_empty() {
                tokio::select! {
                    () = i.owned_changed.notified() => {}
                    () = tokio::time::sleep(i.poll) => {}
                    _ = stop.wait_for(|s| *s) => break,
                }
                continue;
            }
            if self.state().pending.len() >= MAX_PENDING {
                tokio::select! {
                    () = tokio::time::sleep(i.poll) => {}
                    _ = stop.wait_for(|s| *s) => break,
                }
                continue;
            }
            // What a departed worker (dead, or that gave the partition
            // up) read and never acknowledged: first when a partition is
            // taken, then every lease/3 (entries become claimable once
            // they have waited a whole lease).
            let fresh = std::mem::take(&mut self.state().fresh);
            for p in &owned {
                let due = fresh.contains(p)
                    || claimed_at.get(p).is_none_or(|t| t.elapsed() >= i.lease / 3);
                if !due {
                    continue;
                }
                match i.streams.claim(*p, owner, i.lease, CLAIM_MAX).await {
                    Ok(entries) => {
                        i.up();
                        claimed_at.insert(*p, Instant::now());
                        if !entries.is_empty() {
                            tracing::debug!(
                                partition = p,
                                count = entries.len(),
                                "delivery: claimed entries left pending"
                            );
                        }
                        i.counters
                            .claimed
                            .fetch_add(entries.len() as u64, Ordering::Relaxed);
                        self.on_entries(owner, entries).await;
                        if let Err(e) = i.streams.prune_consumers(*p, owner, i.lease * 2).await {
                            i.down("cannot list the stream's consumers", &e);
                        }
                    }
                    Err(e) => i.down("cannot claim pending stream entries", &e),
                }
            }
            let partitions: Vec<u16> = owned.into_iter().collect();
            let read = tokio::select! {
                r = reader.read(owner, &partitions, READ_COUNT, BLOCK) => r,
                _ = stop.wait_for(|s| *s) => break,
            };
            match read {
                Ok(entries) => {
                    i.up();
                    i.counters
                        .read
                        .fetch_add(entries.len() as u64, Ordering::Relaxed);
                    self.on_entries(owner, entries).await;
                }
                Err(e) => {
                    i.down("cannot read the delivery streams", &e);
                    tokio::select! {
                        () = tokio::time::sleep(self.early_delay()) => {}
                        _ = stop.wait_for(|s| *s) => break,
                    }
                }
            }
        }
    }
}

impl Inner {
    /// Logs a Redis failure once until Redis answers again.
    fn down(&self, what: &str, e: &ClusterError) {
        if self.redis_up.swap(false, Ordering::Relaxed) {
            tracing::warn!(
                error = %e,
                "delivery: {what}; until redis answers, partition leases lapse and delivery pauses"
            );
        } else {
            tracing::debug!(error = %e, "delivery: {what}");
        }
    }

    /// Notes that Redis answered.
    fn up(&self) {
        if !self.redis_up.swap(true, Ordering::Relaxed) {
            tracing::info!("delivery: redis answers again");
        }
    }
}

impl Queue for RedisQueue {
    /// Heartbeat, partition leases, then the database leases of the
    /// targets of the partitions held (every enabled target of their
    /// tenants: an idle one costs a poll now and then). Between renewals
    /// an early pass only renews the partitions and returns what the last
    /// full pass leased.
    async fn lease_targets(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
        max: u64,
    ) -> Result<Vec<LeasedTarget>, StoreError> {
        let i = &self.inner;
        self.state().owner = Some(owner.to_owned());
        let started = Instant::now();
        let mut moved = false;
        let mut early = false;
        match self.balance(owner).await {
            Ok((held, share)) => {
                i.up();
                let held: BTreeSet<u16> = held.into_iter().collect();
                let mut st = self.state();
                let lost: Vec<u16> = st
                    .owned
                    .keys()
                    .filter(|p| !held.contains(p))
                    .copied()
                    .collect();
                for p in lost {
                    st.owned.remove(&p);
                    st.fresh.remove(&p);
                    st.pending.forget_partition(p);
                    moved = true;
                }
                for p in &held {
                    if st.owned.insert(*p, started + i.lease).is_none() {
                        st.fresh.insert(*p);
                        moved = true;
                    }
                }
                early |= held.len() < usize::from(share);
                if moved {
                    tracing::info!(owner, partitions = ?held, share, "delivery: partitions held changed");
                }
            }
            Err(e) => {
                i.down("cannot renew the partition leases", &e);
                early = true;
            }
        }
        if moved {
            i.owned_changed.notify_one();
        }
        let (valid, lapsed) = self.prune_partitions();
        {
            let mut st = self.state();
            let full = moved
                || lapsed
                || st.dirty
                || st.handover
                || st.renewed.is_none_or(|t| t.elapsed() >= i.lease / 4);
            st.dirty = false;
            if !full {
                st.early = early;
                // Not those let go since (their loops ended for good).
                let held = &st.held;
                return Ok(st
                    .leased
                    .iter()
                    .filter(|lt| held.contains(&lt.target.id))
                    .cloned()
                    .collect());
            }
        }
        let all = i.store.delivery().enabled_targets().await?;
        let mut tenants: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
        let mut mine: Vec<Uuid> = Vec::new();
        for (target, tenant) in all {
            if valid.contains(&stream::partition_of(tenant)) {
                tenants.entry(tenant).or_default().push(target);
                mine.push(target);
            }
        }
        mine.truncate(usize::try_from(max).unwrap_or(usize::MAX));
        let leased = i
            .store
            .delivery()
            .lease_listed(owner, &mine, now, until)
            .await?;
        let acks = {
            let mut st = self.state();
            let mine: HashSet<Uuid> = mine.iter().copied().collect();
            let mut acks = Vec::new();
            // Targets deleted, disabled or out of the partitions held:
            // nothing waits for them any more.
            for t in st.pending.targets() {
                if !mine.contains(&t) {
                    acks.extend(st.pending.drop_target(t));
                }
            }
            st.cursors.retain(|t, _| mine.contains(t));
            st.wakers.retain(|t, _| mine.contains(t));
            st.looked_up = tenants.keys().map(|t| (*t, started)).collect();
            st.tenants = tenants;
            st.held = leased.iter().map(|lt| lt.target.id).collect();
            // Some targets of the partitions held are still leased by
            // their previous worker (it lets each go between two rounds):
            // look again soon.
            st.handover = leased.len() < mine.len();
            st.early = early || st.handover;
            st.renewed = Some(started);
            st.leased = leased.clone();
            acks
        };
        self.ack(acks).await;
        Ok(leased)
    }

    async fn release(&self, owner: &str) -> Result<(), StoreError> {
        if let Err(e) = self.inner.streams.leave(owner).await {
            self.inner.down("cannot give up the partition leases", &e);
        }
        {
            let mut st = self.state();
            st.owned.clear();
            st.fresh.clear();
            // Unacknowledged entries stay pending: the partitions' next
            // workers claim them.
            st.pending = Pending::default();
            st.held.clear();
            st.leased.clear();
        }
        self.inner.sql.release(owner).await
    }

    /// The target as stored; shown as not held (so its loop stops, between
    /// two rounds) once its partition is no longer this worker's, and its
    /// lease then given up at once for the partition's new worker.
    async fn target(&self, id: Uuid) -> Result<Option<LeasedTarget>, StoreError> {
        let found = self.inner.sql.target(id).await?;
        let owner = self.state().owner.clone();
        let Some(owner) = owner else {
            return Ok(found);
        };
        let Some(mut lt) = found else {
            self.forget_target(id).await;
            return Ok(None);
        };
        if !(lt.target.enabled && lt.held_by(&owner, Utc::now())) {
            self.forget_target(id).await;
            return Ok(Some(lt));
        }
        let partition = stream::partition_of(lt.target.tenant_id);
        if !self.valid_partitions().contains(&partition) {
            tracing::debug!(target_id = %id, partition, "delivery: target handed over with its partition");
            self.inner
                .store
                .delivery()
                .release_target(id, &owner)
                .await?;
            self.forget_target(id).await;
            lt.lease = None;
        }
        Ok(Some(lt))
    }

    async fn next_events(
        &self,
        target: &Target,
        limit: u64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        // Every entry up to the committed cursor is handled for this
        // target (a round that finds nothing commits nothing).
        self.done(target.id, target.cursor).await;
        self.inner.sql.next_events(target, limit).await
    }

    async fn due(
        &self,
        target: Uuid,
        now: DateTime<Utc>,
        limit: u64,
    ) -> Result<Vec<Delivery>, StoreError> {
        self.inner.sql.due(target, now, limit).await
    }

    async fn events(&self, ids: &[i64]) -> Result<Vec<StoredEvent>, StoreError> {
        self.inner.sql.events(ids).await
    }

    async fn held(
        &self,
        target: Uuid,
        resources: &[String],
    ) -> Result<HashSet<String>, StoreError> {
        self.inner.sql.held(target, resources).await
    }

    async fn commit(&self, target: Uuid, owner: &str, commit: Commit) -> Result<bool, StoreError> {
        let cursor = commit.cursor;
        let disabling = commit.disable.is_some();
        let ok = self.inner.sql.commit(target, owner, commit).await?;
        if ok {
            self.inner.counters.rounds.fetch_add(1, Ordering::Relaxed);
        }
        if !ok || disabling {
            self.forget_target(target).await;
        } else if let Some(cursor) = cursor {
            self.done(target, cursor).await;
        }
        Ok(ok)
    }

    async fn changed(&self) {
        self.inner.changed.notified().await;
    }

    async fn changed_for(&self, target: Uuid) {
        let waker = self.state().waker(target);
        waker.notified().await;
    }

    async fn relet(&self) {
        let (early, dirty) = {
            let st = self.state();
            (st.early, st.dirty)
        };
        if dirty {
            return;
        }
        if early {
            tokio::time::sleep(self.early_delay()).await;
        } else {
            self.inner.relet.notified().await;
        }
    }

    async fn background(&self, owner: &str, stop: watch::Receiver<bool>) {
        self.state().owner = Some(owner.to_owned());
        let inner = self.inner.clone();
        let heard = self.inner.redis.listen(
            move |notice| {
                // After a reconnection commits may have gone unheard.
                if matches!(notice, Notice::Committed | Notice::Resync) {
                    // A permit, not a wake-up of current waiters only: one
                    // heard while the relay copies is not lost.
                    inner.committed_elsewhere.notify_one();
                }
            },
            stop.clone(),
        );
        tokio::join!(
            self.relay(owner, stop.clone()),
            self.read(owner, stop),
            heard
        );
    }
}

impl Worker<RedisQueue> {
    /// A worker fed through Redis Streams on `redis` (several workers
    /// share the delivery), reading tenants, resources and delivery state
    /// from `store`.
    pub fn with_redis(
        store: Store,
        redis: Redis,
        config: DeliveryConfig,
        secrets: Option<SecretBox>,
        metrics: Metrics,
    ) -> Result<Worker<RedisQueue>, WorkerError> {
        let queue = RedisQueue::new(store.clone(), redis, &config);
        Worker::with_queue(store, queue, config, secrets, metrics)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(p: u16, id: &str) -> EntryKey {
        (p, id.to_owned())
    }

    #[test]
    fn an_entry_is_acknowledged_once_every_target_is_past_it() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let mut pending = Pending::default();
        let cursors = HashMap::new();
        assert!(!pending.add(key(1, "1-0"), 10, &[a, b], &cursors));
        assert!(!pending.add(key(1, "2-0"), 12, &[a, b], &cursors));
        assert_eq!(pending.len(), 2);
        // Read twice (claimed again): remembered once.
        assert!(!pending.add(key(1, "1-0"), 10, &[a, b], &cursors));
        assert_eq!(pending.len(), 2);
        assert!(pending.done(a, 11).is_empty(), "b still owes both");
        assert_eq!(pending.done(b, 10), vec![key(1, "1-0")]);
        assert!(pending.done(b, 11).is_empty());
        assert_eq!(pending.done(a, 12), Vec::<EntryKey>::new());
        assert_eq!(pending.done(b, 12), vec![key(1, "2-0")]);
        assert_eq!(pending.len(), 0);
        assert!(pending.targets().is_empty());
    }

    #[test]
    fn targets_known_past_an_entry_or_none_at_all_ack_it_at_once() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let mut pending = Pending::default();
        let cursors = HashMap::from([(a, 20), (b, 5)]);
        assert!(pending.add(key(0, "1-0"), 20, &[a], &cursors));
        assert!(pending.add(key(0, "2-0"), 7, &[], &cursors), "no target");
        assert!(!pending.add(key(0, "3-0"), 7, &[a, b], &cursors));
        assert_eq!(pending.done(b, 7), vec![key(0, "3-0")], "a was past it");
    }

    #[test]
    fn a_target_gone_stops_holding_entries_and_a_partition_lost_forgets_them() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let mut pending = Pending::default();
        let cursors = HashMap::new();
        assert!(!pending.add(key(2, "1-0"), 1, &[a, b], &cursors));
        assert!(!pending.add(key(3, "1-0"), 2, &[a], &cursors));
        assert!(pending.drop_target(b).is_empty(), "a still owes it");
        assert_eq!(pending.drop_target(a), {
            let mut v = vec![key(2, "1-0"), key(3, "1-0")];
            v.sort();
            v
        });
        assert!(!pending.add(key(2, "5-0"), 5, &[a], &cursors));
        assert!(!pending.add(key(4, "5-0"), 6, &[a], &cursors));
        pending.forget_partition(2);
        assert_eq!(pending.len(), 1);
        // Forgotten, not acknowledged: only partition 4's entry comes back.
        assert_eq!(pending.done(a, 100), vec![key(4, "5-0")]);
        assert!(pending.targets().is_empty());
    }
}
