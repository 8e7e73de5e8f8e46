//! The shared limiter and notices against a real `redis-server` on
//! 127.0.0.1 (started here; a missing `redis-server` fails the test).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use cluster::limit::{Decision, SharedLimiter};
use cluster::notice::Notice;
use cluster::{ClusterError, Redis};
use testkit::redis_server::RedisServer;

/// Bounds every wait for a notice.
const NOTICE_WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn two_gateways_share_one_budget_per_key() {
    let server = RedisServer::start();
    let a = SharedLimiter::new(Redis::open(&server.url()).expect("url"));
    let b = SharedLimiter::new(Redis::open(&server.url()).expect("url"));
    // 2 per second, bursts of 6: six requests pass at once, wherever they
    // arrive, and the seventh waits about half a second.
    let mut allowed = 0;
    let mut refused = Vec::new();
    for i in 0..10 {
        let limiter = if i % 2 == 0 { &a } else { &b };
        match limiter.check("tenant-1", 2, 6).await.expect("check") {
            Decision::Allow => allowed += 1,
            Decision::Wait(wait) => refused.push(wait),
        }
    }
    assert_eq!(allowed, 6, "the burst is shared by both limiters");
    assert_eq!(refused.len(), 4);
    for wait in &refused {
        assert!(
            *wait > Duration::ZERO && *wait <= Duration::from_millis(500),
            "a refused request waits at most one emission interval: {wait:?}"
        );
    }
    // Another key has its own budget.
    assert_eq!(
        a.check("tenant-2", 2, 6).await.expect("check"),
        Decision::Allow
    );
    // After the advertised wait, one more request passes.
    let longest = refused.iter().max().copied().unwrap_or_default();
    tokio::time::sleep(longest + Duration::from_millis(20)).await;
    assert_eq!(
        b.check("tenant-1", 2, 6).await.expect("check"),
        Decision::Allow
    );
    assert!(matches!(
        a.check("tenant-1", 2, 6).await.expect("check"),
        Decision::Wait(_)
    ));
}

#[tokio::test]
async fn redis_down_fails_fast_and_comes_back() {
    let mut server = RedisServer::start();
    let redis = Redis::open(&server.url()).expect("url");
    let limiter = SharedLimiter::new(redis.clone());
    redis.ping().await.expect("ping");
    server.kill();
    // Each call gives up within its bound instead of hanging a request.
    let started = std::time::Instant::now();
    let failed = tokio::time::timeout(Duration::from_secs(5), limiter.check("t", 10, 10))
        .await
        .expect("a call with Redis down returns instead of hanging");
    assert!(failed.is_err(), "no answer without Redis: {failed:?}");
    assert!(redis.ping().await.is_err());
    assert!(started.elapsed() < Duration::from_secs(5));
    server.restart();
    // The connection manager reconnects on a later call.
    let mut ok = false;
    for _ in 0..50 {
        if redis.ping().await.is_ok() {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ok, "the handle reconnects once Redis is back");
    assert_eq!(
        limiter.check("t", 10, 10).await.expect("check"),
        Decision::Allow
    );
}

#[test]
fn a_malformed_url_is_refused_at_once() {
    for url in ["", "http://example.com/", "redis://[::1"] {
        assert!(
            matches!(Redis::open(url), Err(ClusterError::Url(_))),
            "{url:?}"
        );
    }
}

/// Collects what a listener hears.
#[derive(Clone, Default)]
struct Heard(Arc<Mutex<Vec<Notice>>>);

impl Heard {
    fn push(&self, notice: Notice) {
        if let Ok(mut heard) = self.0.lock() {
            heard.push(notice);
        }
    }

    fn count(&self, notice: Notice) -> usize {
        self.0
            .lock()
            .map(|h| h.iter().filter(|n| **n == notice).count())
            .unwrap_or(0)
    }

    async fn wait_for(&self, notice: Notice, times: usize) {
        let deadline = tokio::time::Instant::now() + NOTICE_WAIT;
        while self.count(notice) < times {
            assert!(
                tokio::time::Instant::now() < deadline,
                "did not hear {notice:?} x{times} in {NOTICE_WAIT:?}: {:?}",
                self.0.lock().map(|h| h.clone()).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

#[tokio::test]
async fn every_listener_hears_a_notice_and_resyncs_after_redis_restarts() {
    let mut server = RedisServer::start();
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let mut listeners = Vec::new();
    let mut heard = Vec::new();
    for _ in 0..2 {
        let redis = Redis::open(&server.url()).expect("url");
        let h = Heard::default();
        let on = h.clone();
        let stop_rx = stop_rx.clone();
        listeners.push(tokio::spawn(async move {
            redis.listen(move |n| on.push(n), stop_rx).await;
        }));
        heard.push(h);
    }
    for h in &heard {
        h.wait_for(Notice::Resync, 1).await;
    }
    let publisher = Redis::open(&server.url()).expect("url");
    let tenant = uuid::Uuid::new_v4();
    publisher.publish(Notice::Auth).await.expect("publish");
    publisher
        .publish(Notice::Policy(tenant))
        .await
        .expect("publish");
    for h in &heard {
        h.wait_for(Notice::Auth, 1).await;
        h.wait_for(Notice::Policy(tenant), 1).await;
    }

    // Whatever was published while a listener was away is lost to it, so
    // it says so once it is back.
    server.kill();
    assert!(publisher.publish(Notice::Auth).await.is_err());
    server.restart();
    for h in &heard {
        h.wait_for(Notice::Resync, 2).await;
    }
    let mut published = false;
    for _ in 0..50 {
        if publisher.publish(Notice::Auth).await.is_ok() {
            published = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(published, "publishing works again after the restart");
    for h in &heard {
        h.wait_for(Notice::Auth, 2).await;
    }

    stop.send_replace(true);
    for listener in listeners {
        tokio::time::timeout(Duration::from_secs(5), listener)
            .await
            .expect("a listener stops when asked")
            .expect("listener task");
    }
}
