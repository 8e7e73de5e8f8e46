//! Two gateways behind one load balancer: separate instances (each its own
//! store handle, token cache and rate limiter) over one PostgreSQL database
//! and one Redis, every other request going to the other one. Entra's and
//! Okta's sequences must not notice.

use testkit::redis_server::RedisServer;

use crate::common::App;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entra_and_okta_replays_alternate_between_two_gateways() {
    let redis = RedisServer::start();
    let app = App::pair(&redis.url()).await;
    for legacy in [false, true] {
        let t = app
            .tenant(if legacy { "entra-legacy" } else { "entra" })
            .await;
        crate::entra::replay_into(&app, &t, legacy).await;
    }
    crate::okta::okta_sequence(&app).await;
    assert!(
        app.peer_calls() > 20,
        "the second gateway answered {} calls",
        app.peer_calls()
    );
}

/// Each gateway announces its commits through Redis, so a delivery worker
/// in another process relays their events at once rather than at its next
/// poll.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_are_announced_to_the_other_processes() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use cluster::notice::Notice;
    use serde_json::json;

    let redis = RedisServer::start();
    let app = App::pair(&redis.url()).await;
    let t = app.tenant("acme").await;

    let (heard, subscribed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let listener = cluster::Redis::open(&redis.url()).expect("redis url");
    let (h, s) = (heard.clone(), subscribed.clone());
    let listening = tokio::spawn(async move {
        listener
            .listen(
                move |notice| {
                    let counter = match notice {
                        Notice::Committed => &h,
                        Notice::Resync => &s,
                        _ => return,
                    };
                    counter.fetch_add(1, Ordering::SeqCst);
                },
                stop,
            )
            .await;
    });
    assert!(
        within(Duration::from_secs(10), &|| subscribed
            .load(Ordering::SeqCst)
            > 0)
        .await,
        "never subscribed"
    );
    // Both gateways, in turn.
    for i in 0..2 {
        let before = heard.load(Ordering::SeqCst);
        let created = app
            .call(
                "POST",
                "/Users",
                &t.token,
                Some(json!({
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                    "userName": format!("announced{i}@acme.example"),
                })),
            )
            .await;
        assert_eq!(created.status, 201, "{:?}", created.body);
        assert!(
            within(Duration::from_secs(10), &|| heard.load(Ordering::SeqCst)
                > before)
            .await,
            "no commit notice after write {i}"
        );
    }
    stop_tx.send_replace(true);
    listening.await.expect("listener ends");
}

/// Whether `check` holds within `limit` (checked every 20 ms).
async fn within(limit: std::time::Duration, check: impl Fn() -> bool) -> bool {
    let deadline = std::time::Instant::now() + limit;
    while !check() && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    check()
}
