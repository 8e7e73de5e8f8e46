//! The Redis Streams queue against a real `redis-server` on 127.0.0.1:
//! two workers split the partitions, a crashed worker's partitions and
//! pending entries are taken over, and Redis restarted empty or down at
//! start delays delivery without losing any of it.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use cluster::Redis;
use cluster::stream::{PARTITIONS, partition_of};
use store::{Store, StoreOptions, TenantStore};
use sync_worker::metrics::Metrics;
use sync_worker::{DeliveryConfig, RedisQueue, Worker};
use testkit::backends;
use testkit::receiver::Receiver;
use testkit::redis_server::RedisServer;

use crate::support::*;

/// Test settings with a short lease (2 s), so takeovers happen quickly.
fn redis_config() -> DeliveryConfig {
    DeliveryConfig {
        timeout: Duration::from_secs(1),
        lease: Duration::from_secs(2),
        ..config()
    }
}

/// A worker on its own Redis connection (as another process would have),
/// and a handle on its queue.
fn start_redis(store: &Store, url: &str, config: DeliveryConfig) -> (RedisQueue, Running) {
    let redis = Redis::open(url).expect("redis url");
    let queue = RedisQueue::new(store.clone(), redis, &config);
    let worker = Worker::with_queue(
        store.clone(),
        queue.clone(),
        config,
        Some(secrets()),
        Metrics::unregistered().expect("metrics"),
    )
    .expect("worker");
    (queue, run(worker))
}

/// Waits (bounded) until `ok` holds; returns whether it did.
async fn eventually(within: Duration, ok: impl Fn() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if ok() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Another store handle on the same database (another process's).
async fn second_handle(store_url: &str) -> Store {
    Store::connect(store_url, StoreOptions::default())
        .await
        .expect("second handle")
}

/// `n` users, each then replaced `updates` times (so each resource has
/// several events whose order matters); returns their ids.
async fn write_users(dir: &TenantStore, prefix: &str, n: usize, updates: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let created = dir
            .create_user(user(&format!("{prefix}-{i}")))
            .await
            .expect("user");
        ids.push(created.id);
    }
    for round in 0..updates {
        for (i, id) in ids.iter().enumerate() {
            let mut doc = user(&format!("{prefix}-{i}"));
            doc["displayName"] = format!("{prefix} {i} v{round}").into();
            dir.replace_user(id, doc, None).await.expect("replace");
        }
    }
    ids
}

/// How a receiver's deliveries must be ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Order {
    /// Never back, per resource.
    Strict,
    /// A crash's replay goes back once: after the events in flight were
    /// sent again, per resource, the first arrival of each event is in
    /// order, and so is the last.
    Replayed,
}

/// Checks what a receiver got against the tenant's events: every one
/// arrived, signed, in order per resource; repeats (at-least-once) only
/// of events it should get, each time the same event.
async fn check_delivered(
    which: impl std::fmt::Debug,
    dir: &TenantStore,
    receiver: &Receiver,
    within: Duration,
    order: Order,
) -> usize {
    let ids = event_ids(dir).await;
    let got = wait_for_ids(receiver, &ids, within).await;
    let expected: BTreeSet<&String> = ids.iter().collect();
    let received: BTreeSet<&String> = got.iter().collect();
    assert_eq!(received, expected, "{which:?}: every committed event");
    let deliveries = receiver.deliveries();
    assert!(
        deliveries.iter().all(|d| d.verified),
        "{which:?}: every delivery signed"
    );
    match order {
        Order::Strict => receiver
            .check_order("data.id", "position")
            .unwrap_or_else(|e| panic!("{which:?}: {e}")),
        Order::Replayed => {
            let first = distinct(deliveries.iter());
            let mut last = distinct(deliveries.iter().rev());
            last.reverse();
            for (what, list) in [("first", first), ("last", last)] {
                testkit::receiver::check_order(&list, "data.id", "position")
                    .unwrap_or_else(|e| panic!("{which:?}: {what} arrivals: {e}"));
            }
        }
    }
    // A repeat carries the same event under the same webhook-id.
    let mut seen: HashMap<String, (serde_json::Value, serde_json::Value)> = HashMap::new();
    for d in &deliveries {
        let id = d.webhook_id.clone().expect("webhook-id");
        let what = (d.body["type"].clone(), d.body["position"].clone());
        if let Some(before) = seen.insert(id.clone(), what.clone()) {
            assert_eq!(before, what, "{which:?}: {id} repeated as another event");
        }
    }
    ids.len()
}

/// The deliveries whose webhook-id had not been seen before, in the
/// order given.
fn distinct<'a>(
    deliveries: impl Iterator<Item = &'a testkit::receiver::Delivery>,
) -> Vec<testkit::receiver::Delivery> {
    let mut seen = BTreeSet::new();
    deliveries
        .filter(|d| seen.insert(d.webhook_id.clone()))
        .cloned()
        .collect()
}

/// Two workers (two processes' worth: their own store handles and Redis
/// connections) split the partitions; every event of several tenants is
/// delivered exactly once, in order, and both workers delivered some.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_split_the_partitions_and_deliver_everything_once() {
    for which in backends() {
        let server = RedisServer::start();
        let (db, store) = store(which).await;
        let second = second_handle(&db.url).await;
        let (qa, a) = start_redis(&store, &server.url(), redis_config());
        let (qb, b) = start_redis(&second, &server.url(), redis_config());

        // A second worker takes half: 8 partitions each, none shared.
        let split = eventually(Duration::from_secs(20), || {
            let (pa, pb) = (qa.partitions(), qb.partitions());
            pa.len() == usize::from(PARTITIONS) / 2
                && pb.len() == usize::from(PARTITIONS) / 2
                && pa.iter().all(|p| !pb.contains(p))
        })
        .await;
        assert!(
            split,
            "{which:?}: partitions {:?} / {:?}",
            qa.partitions(),
            qb.partitions()
        );

        // Tenants on both sides: three whose partition A holds, three B's
        // (others, without a target, have events nobody waits for).
        let mine_a = qa.partitions();
        let mut sides: [Vec<(TenantStore, Receiver)>; 2] = [Vec::new(), Vec::new()];
        for i in 0..200 {
            if sides.iter().all(|s| s.len() >= 3) {
                break;
            }
            let dir = tenant(&store, &format!("split-{i}")).await;
            let side = usize::from(!mine_a.contains(&partition_of(dir.tenant().id())));
            if sides[side].len() < 3 {
                let receiver = Receiver::start().await;
                webhook(&dir, &receiver, "app").await;
                sides[side].push((dir, receiver));
            } else {
                dir.create_user(user("bystander")).await.expect("user");
            }
        }
        assert!(
            sides.iter().all(|s| s.len() == 3),
            "{which:?}: tenants on both sides"
        );

        let all: Vec<&(TenantStore, Receiver)> = sides.iter().flatten().collect();
        for (n, (dir, _)) in all.iter().enumerate() {
            write_users(dir, &format!("u{n}"), 4, 3).await;
        }
        for (dir, receiver) in &all {
            let n =
                check_delivered(which, dir, receiver, Duration::from_secs(30), Order::Strict).await;
            assert_eq!(receiver.count(), n, "{which:?}: no event delivered twice");
        }
        let (sa, sb) = (qa.stats(), qb.stats());
        assert!(
            sa.rounds > 0 && sb.rounds > 0,
            "{which:?}: both delivered: {sa:?} {sb:?}"
        );
        assert!(
            sa.read > 0 && sb.read > 0,
            "{which:?}: both read entries: {sa:?} {sb:?}"
        );
        assert!(sa.relayed + sb.relayed > 0, "{which:?}: {sa:?} {sb:?}");
        a.stop().await;
        b.stop().await;
    }
}

/// An entry wakes its tenant's targets: with polls far apart, events
/// still go out within moments, for a target created after the worker
/// started (leased when its first entry arrives) and for one idle since.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_wake_their_targets_between_polls() {
    for which in backends() {
        let server = RedisServer::start();
        let (_db, store) = store(which).await;
        let config = DeliveryConfig {
            poll: Duration::from_secs(20),
            ..redis_config()
        };
        let (qa, a) = start_redis(&store, &server.url(), config);
        let whole = eventually(Duration::from_secs(20), || {
            qa.partitions().len() == usize::from(PARTITIONS)
        })
        .await;
        assert!(whole, "{which:?}");
        let dir = tenant(&store, "wake").await;
        let receiver = Receiver::start().await;
        webhook(&dir, &receiver, "app").await;
        for round in 0..2 {
            let started = tokio::time::Instant::now();
            write_users(&dir, &format!("w{round}"), 1, 0).await;
            let ids = event_ids(&dir).await;
            let got = wait_for_ids(&receiver, &ids, Duration::from_secs(10)).await;
            assert_eq!(got.len(), ids.len(), "{which:?}: round {round}");
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "{which:?}: round {round} took {:?} (not woken)",
                started.elapsed()
            );
            // Idle again (the loop waits for its next wake-up).
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        a.stop().await;
    }
}

/// Events another process commits (its own store handle: nothing wakes
/// this process) are relayed when that process announces its commit
/// through Redis, as every gateway does, not at the relay's next poll.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_processs_commits_are_relayed_when_announced() {
    for which in backends() {
        let server = RedisServer::start();
        let (db, store) = store(which).await;
        // Long enough that no lease renewal of the worker's own (a
        // commit in this process) wakes the relay during a round.
        let config = DeliveryConfig {
            poll: Duration::from_secs(60),
            lease: Duration::from_secs(90),
            ..redis_config()
        };
        let (qa, a) = start_redis(&store, &server.url(), config);
        let whole = eventually(Duration::from_secs(20), || {
            qa.partitions().len() == usize::from(PARTITIONS)
        })
        .await;
        assert!(whole, "{which:?}");
        let dir = tenant(&store, "elsewhere").await;
        let receiver = Receiver::start().await;
        webhook(&dir, &receiver, "app").await;
        // Whatever the set-up committed is relayed first.
        tokio::time::sleep(Duration::from_millis(500)).await;

        let other = second_handle(&db.url).await;
        let other_dir = other.tenant(dir.tenant());
        let announcer = Redis::open(&server.url()).expect("redis url");
        for round in 0..2 {
            write_users(&other_dir, &format!("e{round}"), 1, 0).await;
            announcer
                .publish(cluster::notice::Notice::Committed)
                .await
                .expect("publish");
            let ids = event_ids(&dir).await;
            let got = wait_for_ids(&receiver, &ids, Duration::from_secs(10)).await;
            assert_eq!(got.len(), ids.len(), "{which:?}: round {round}");
        }
        a.stop().await;
    }
}

/// A worker dies mid-delivery (its task aborted: no lease given back, no
/// entry acknowledged). The other takes its partitions once their leases
/// run out, claims the entries it left pending, and delivers every event;
/// an event caught in flight arrives again under the same webhook-id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_workers_partitions_and_entries_are_taken_over() {
    for which in backends() {
        let server = RedisServer::start();
        let (db, store) = store(which).await;
        let (qa, a) = start_redis(&store, &server.url(), redis_config());
        let whole = eventually(Duration::from_secs(20), || {
            qa.partitions().len() == usize::from(PARTITIONS)
        })
        .await;
        assert!(whole, "{which:?}: one worker holds every partition");

        let mut tenants = Vec::new();
        for i in 0..3 {
            let dir = tenant(&store, &format!("crash-{i}")).await;
            let receiver = Receiver::start().await;
            webhook(&dir, &receiver, "app").await;
            receiver.slow(Duration::from_millis(150));
            tenants.push((dir, receiver));
        }
        // One user per tenant changed many times: its events go out one
        // after the other, slowly.
        for (n, (dir, _)) in tenants.iter().enumerate() {
            write_users(dir, &format!("c{n}"), 1, 12).await;
        }
        let started = eventually(Duration::from_secs(20), || {
            tenants.iter().all(|(_, r)| r.count() >= 2)
        })
        .await;
        assert!(started, "{which:?}: A is delivering");
        assert!(qa.stats().read > 0, "{which:?}: A read entries");
        a.abort();

        // Committed while no worker runs, then B comes.
        for (n, (dir, _)) in tenants.iter().enumerate() {
            write_users(dir, &format!("d{n}"), 1, 2).await;
        }
        let second = second_handle(&db.url).await;
        let (qb, b) = start_redis(&second, &server.url(), redis_config());
        for (dir, receiver) in &tenants {
            check_delivered(
                which,
                dir,
                receiver,
                Duration::from_secs(60),
                Order::Replayed,
            )
            .await;
        }
        let claimed = eventually(Duration::from_secs(20), || qb.stats().claimed > 0).await;
        assert!(
            claimed,
            "{which:?}: B claimed what A left pending: {:?}",
            qb.stats()
        );
        assert_eq!(qb.partitions().len(), usize::from(PARTITIONS), "{which:?}");
        b.stop().await;
    }
}

/// Redis is killed mid-run and comes back empty: events committed before,
/// during and after the outage are all delivered (the relay starts again
/// from the lowest target cursor).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarted_empty_loses_nothing() {
    for which in backends() {
        let mut server = RedisServer::start();
        let (db, store) = store(which).await;
        let second = second_handle(&db.url).await;
        let (qa, a) = start_redis(&store, &server.url(), redis_config());
        let (qb, b) = start_redis(&second, &server.url(), redis_config());
        let mut tenants = Vec::new();
        for i in 0..3 {
            let dir = tenant(&store, &format!("restart-{i}")).await;
            let receiver = Receiver::start().await;
            webhook(&dir, &receiver, "app").await;
            tenants.push((dir, receiver));
        }
        for (n, (dir, _)) in tenants.iter().enumerate() {
            write_users(dir, &format!("before{n}"), 3, 1).await;
        }
        for (dir, receiver) in &tenants {
            check_delivered(which, dir, receiver, Duration::from_secs(30), Order::Strict).await;
        }
        let relayed = qa.stats().relayed + qb.stats().relayed;

        for (n, (dir, _)) in tenants.iter().enumerate() {
            write_users(dir, &format!("mid{n}"), 3, 1).await;
        }
        server.kill();
        for (n, (dir, _)) in tenants.iter().enumerate() {
            write_users(dir, &format!("down{n}"), 3, 1).await;
        }
        // Longer than a lease: the partitions lapse while it is down.
        tokio::time::sleep(Duration::from_secs(3)).await;
        server.restart();
        for (n, (dir, _)) in tenants.iter().enumerate() {
            write_users(dir, &format!("after{n}"), 3, 1).await;
        }
        for (dir, receiver) in &tenants {
            check_delivered(which, dir, receiver, Duration::from_secs(60), Order::Strict).await;
        }
        let again = eventually(Duration::from_secs(10), || {
            qa.stats().relayed + qb.stats().relayed > relayed
        })
        .await;
        assert!(again, "{which:?}: the relay wrote to the new Redis");
        a.stop().await;
        b.stop().await;
    }
}

/// Redis is down when the workers start: they start, deliver nothing while
/// it is down (no partition is anyone's), and everything once it is up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_at_start_delays_delivery() {
    for which in backends() {
        let mut server = RedisServer::start();
        server.kill();
        let (db, store) = store(which).await;
        let second = second_handle(&db.url).await;
        let mut workers = Vec::new();
        for s in [&store, &second] {
            let redis = Redis::open(&server.url()).expect("redis url");
            let worker = Worker::with_redis(
                s.clone(),
                redis,
                redis_config(),
                Some(secrets()),
                Metrics::unregistered().expect("metrics"),
            )
            .expect("a worker starts without redis");
            workers.push(run(worker));
        }
        let mut tenants = Vec::new();
        for i in 0..2 {
            let dir = tenant(&store, &format!("down-{i}")).await;
            let receiver = Receiver::start().await;
            webhook(&dir, &receiver, "app").await;
            write_users(&dir, &format!("w{i}"), 3, 1).await;
            tenants.push((dir, receiver));
        }
        tokio::time::sleep(Duration::from_millis(1500)).await;
        for (_, receiver) in &tenants {
            assert_eq!(receiver.count(), 0, "{which:?}: nothing without redis");
        }
        server.restart();
        for (dir, receiver) in &tenants {
            check_delivered(which, dir, receiver, Duration::from_secs(30), Order::Strict).await;
        }
        for w in workers {
            w.stop().await;
        }
    }
}
