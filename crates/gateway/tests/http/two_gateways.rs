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
