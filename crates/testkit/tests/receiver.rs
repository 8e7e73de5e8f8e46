//! The webhook receiver against hand-built requests: signatures made by
//! scimgate's signing code and checked by the receiver's independent
//! verifier, both ways, and every answering mode.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::json;
use sync_worker::address::AddressPolicy;
use sync_worker::signing::{self, WebhookSecret};
use testkit::receiver::Receiver;

fn client(timeout: Duration) -> reqwest::Client {
    let allow = AddressPolicy {
        allow_private: true,
    };
    sync_worker::http::client(&allow, timeout).expect("delivery client")
}

fn now() -> i64 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    i64::try_from(secs).expect("fits")
}

/// Posts `body` to the receiver with the three signature headers.
async fn post(
    c: &reqwest::Client,
    receiver: &Receiver,
    id: &str,
    timestamp: i64,
    signature: &str,
    body: &[u8],
) -> Result<reqwest::Response, reqwest::Error> {
    c.post(receiver.url())
        .header("content-type", "application/json")
        .header(signing::HEADER_ID, id)
        .header(signing::HEADER_TIMESTAMP, timestamp.to_string())
        .header(signing::HEADER_SIGNATURE, signature)
        .body(body.to_vec())
        .send()
        .await
}

/// Posts a correctly signed event for `data.id` = `key` at `position`.
async fn send_event(
    c: &reqwest::Client,
    receiver: &Receiver,
    secret: &WebhookSecret,
    id: &str,
    key: &str,
    position: i64,
) -> Result<reqwest::Response, reqwest::Error> {
    let body = json!({"type": "user.updated", "position": position, "data": {"id": key}});
    let body = serde_json::to_vec(&body).expect("json");
    let ts = now();
    let sig = signing::sign(id, ts, &body, &[secret]);
    post(c, receiver, id, ts, &sig, &body).await
}

#[tokio::test]
async fn signatures_verify_independently_both_ways() {
    let receiver = Receiver::start().await;
    let secret = WebhookSecret::generate();
    receiver.set_secret(&secret.expose());
    let c = client(Duration::from_secs(5));
    let body = br#"{"type":"user.created","data":{"id":"u1"},"position":1}"#;
    let ts = now();
    let good = signing::sign("msg_1", ts, body, &[&secret]);

    let r = post(&c, &receiver, "msg_1", ts, &good, body)
        .await
        .expect("sent");
    assert_eq!(r.status(), 204);
    let tampered = br#"{"type":"user.created","data":{"id":"u2"},"position":1}"#;
    let r = post(&c, &receiver, "msg_2", ts, &good, tampered)
        .await
        .expect("sent");
    assert_eq!(r.status(), 204, "recorded, not refused, by default");
    // Signed by another secret, and an old timestamp.
    let other = WebhookSecret::generate();
    let foreign = signing::sign("msg_3", ts, body, &[&other]);
    post(&c, &receiver, "msg_3", ts, &foreign, body)
        .await
        .expect("sent");
    let old = ts - 3600;
    let stale = signing::sign("msg_4", old, body, &[&secret]);
    post(&c, &receiver, "msg_4", old, &stale, body)
        .await
        .expect("sent");

    let got = receiver.deliveries();
    assert_eq!(got.len(), 4);
    let verdicts: Vec<bool> = got.iter().map(|d| d.verified).collect();
    assert_eq!(verdicts, [true, false, false, false]);
    assert_eq!(got[0].webhook_id.as_deref(), Some("msg_1"));
    assert_eq!(got[0].timestamp, Some(ts));
    assert_eq!(got[0].signature.as_deref(), Some(good.as_str()));
    assert_eq!(got[0].body["data"]["id"], "u1");
    assert_eq!(got[0].raw_body, body);
    assert_eq!(got[0].method, "POST");
    assert_eq!(got[0].path, "/webhook");
    assert_eq!(got[0].answered, Some(204));
    assert!(
        got[0]
            .header("User-Agent")
            .is_some_and(|ua| ua.starts_with("scimgate/"))
    );
    assert!(got[0].verify_error.is_none());
    assert!(got[1].verify_error.is_some());
    assert!(
        got[3]
            .verify_error
            .as_deref()
            .is_some_and(|e| e.contains("old")),
        "{:?}",
        got[3].verify_error
    );

    // A rotation: both signatures sent, either secret alone accepts.
    let newer = WebhookSecret::generate();
    let both = signing::sign("msg_5", ts, body, &[&newer, &secret]);
    receiver.set_secret(&newer.expose());
    post(&c, &receiver, "msg_5", ts, &both, body)
        .await
        .expect("sent");
    receiver.set_secrets(&[&other.expose(), &secret.expose()]);
    post(&c, &receiver, "msg_5", ts, &both, body)
        .await
        .expect("sent");
    let got = receiver.deliveries();
    assert!(got[4].verified && got[5].verified);

    // A strict endpoint refuses what does not verify.
    receiver.reject_unverified(true);
    let r = post(&c, &receiver, "msg_6", ts, &good, tampered)
        .await
        .expect("sent");
    assert_eq!(r.status(), 401);
    let r = post(&c, &receiver, "msg_1", ts, &good, body)
        .await
        .expect("sent");
    assert_eq!(r.status(), 204);
    assert_eq!(
        receiver.webhook_ids(),
        ["msg_1", "msg_2", "msg_3", "msg_4", "msg_5", "msg_6"]
    );
    assert_eq!(receiver.count(), 8);
}

#[tokio::test]
async fn statuses_failures_and_retry_after() {
    let receiver = Receiver::start().await;
    let secret = WebhookSecret::generate();
    receiver.set_secret(&secret.expose());
    let c = client(Duration::from_secs(5));
    let status = |r: Result<reqwest::Response, reqwest::Error>| r.expect("sent").status().as_u16();

    receiver.answer(500);
    assert_eq!(
        status(send_event(&c, &receiver, &secret, "m1", "a", 1).await),
        500
    );
    receiver.answer(410);
    assert_eq!(
        status(send_event(&c, &receiver, &secret, "m1", "a", 1).await),
        410
    );
    receiver.answer_with_retry_after(429, 7);
    let r = send_event(&c, &receiver, &secret, "m1", "a", 1)
        .await
        .expect("sent");
    assert_eq!(r.status(), 429);
    assert_eq!(
        r.headers().get("retry-after").and_then(|v| v.to_str().ok()),
        Some("7")
    );
    receiver.answer(200);
    let r = send_event(&c, &receiver, &secret, "m1", "a", 1)
        .await
        .expect("sent");
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("retry-after").is_none());

    receiver.answer_ok();
    receiver.fail_next(2, 503);
    let mut seen = Vec::new();
    for i in 0..4 {
        seen.push(status(
            send_event(&c, &receiver, &secret, "m2", "a", 2 + i).await,
        ));
    }
    assert_eq!(seen, [503, 503, 204, 204]);
    let answered: Vec<Option<u16>> = receiver.deliveries().iter().map(|d| d.answered).collect();
    assert_eq!(answered, [500, 410, 429, 200, 503, 503, 204, 204].map(Some));
    assert!(receiver.deliveries().iter().all(|d| d.verified));
}

#[tokio::test]
async fn hang_slow_and_down_then_up() {
    let receiver = Receiver::start().await;
    let secret = WebhookSecret::generate();
    receiver.set_secret(&secret.expose());
    let impatient = client(Duration::from_millis(300));
    let patient = client(Duration::from_secs(10));

    // Hang: the client times out; the request arrived but was not answered.
    receiver.hang();
    let e = send_event(&impatient, &receiver, &secret, "h1", "a", 1)
        .await
        .expect_err("hangs");
    assert!(e.is_timeout(), "{e}");
    let got = receiver
        .wait_for(1, Duration::from_secs(5))
        .await
        .expect("arrived");
    assert_eq!(got[0].answered, None);

    // A hanging request is answered as soon as the test changes the mode.
    let started = Instant::now();
    let (response, ()) = tokio::join!(
        send_event(&patient, &receiver, &secret, "h2", "a", 2),
        async {
            receiver
                .wait_for(2, Duration::from_secs(5))
                .await
                .expect("second request arrived");
            tokio::time::sleep(Duration::from_millis(100)).await;
            assert_eq!(receiver.deliveries()[1].answered, None, "still hanging");
            receiver.answer(202);
        }
    );
    let elapsed = started.elapsed();
    assert_eq!(response.expect("answered").status(), 202);
    assert!(elapsed >= Duration::from_millis(100), "{elapsed:?}");

    // Hang for a while: answered once the window has passed.
    receiver.answer_ok();
    receiver.hang_for(Duration::from_millis(400));
    let started = Instant::now();
    let r = send_event(&patient, &receiver, &secret, "h3", "a", 3)
        .await
        .expect("answered after the window");
    assert_eq!(r.status(), 204);
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );

    // Slow: every answer waits.
    receiver.slow(Duration::from_millis(300));
    let started = Instant::now();
    let r = send_event(&patient, &receiver, &secret, "s1", "a", 4)
        .await
        .expect("slow answer");
    assert_eq!(r.status(), 204);
    assert!(started.elapsed() >= Duration::from_millis(300));
    receiver.reset();

    // Down: connections are refused, nothing is recorded; up again on the
    // same port, and the same URL works.
    let before = receiver.count();
    let url = receiver.url();
    receiver.stop().await;
    let e = send_event(&patient, &receiver, &secret, "d1", "a", 5)
        .await
        .expect_err("down");
    assert!(e.is_connect(), "{e}");
    assert_eq!(receiver.count(), before);
    receiver.restart().await;
    assert_eq!(receiver.url(), url);
    let r = send_event(&patient, &receiver, &secret, "d1", "a", 5)
        .await
        .expect("up again");
    assert_eq!(r.status(), 204);
    assert_eq!(receiver.count(), before + 1);
    assert_eq!(receiver.check_order("data.id", "position"), Ok(()));
}

#[tokio::test]
async fn waiting_counting_and_order() {
    let receiver = Receiver::start().await;
    let secret = WebhookSecret::generate();
    receiver.set_secret(&secret.expose());
    let c = client(Duration::from_secs(5));

    let e = receiver
        .wait_for(1, Duration::from_millis(50))
        .await
        .expect_err("nothing sent");
    assert_eq!((e.wanted, e.got.len()), (1, 0));

    // Two keys interleaved, one redelivery: in order per key.
    for (id, key, pos) in [
        ("e1", "a", 1),
        ("e2", "b", 2),
        ("e1", "a", 1),
        ("e3", "a", 3),
    ] {
        send_event(&c, &receiver, &secret, id, key, pos)
            .await
            .expect("sent");
    }
    let got = receiver
        .wait_for(4, Duration::from_secs(5))
        .await
        .expect("all four");
    assert_eq!(got.len(), 4);
    assert_eq!(receiver.webhook_ids(), ["e1", "e2", "e3"]);
    assert_eq!(receiver.check_order("data.id", "position"), Ok(()));

    // An older event of key b after a newer one is caught.
    send_event(&c, &receiver, &secret, "e0", "b", 1)
        .await
        .expect("sent");
    let e = receiver
        .check_order("data.id", "position")
        .expect_err("out of order");
    assert!(e.contains("data.id = b"), "{e}");

    receiver.clear();
    assert_eq!(receiver.count(), 0);
}
