//! Webhook delivery end to end.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, SystemTime};

use scim::patch::{Member, MemberChange};
use serde_json::json;
use store::delivery::DeliveryStatus;
use sync_worker::Worker;
use sync_worker::address::AddressPolicy;
use sync_worker::metrics::Metrics;
use sync_worker::secrets::SecretBox;
use sync_worker::targets::{TargetError, TargetSpec, Targets};
use testkit::backends;
use testkit::receiver::Receiver;

use crate::support::*;

/// Ten thousand committed changes of every kind on many users and groups,
/// written by concurrent writers, with failed writes among them: every
/// committed event arrives, signed, in commit order per resource, and
/// nothing arrives that was not committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_committed_change_arrives_signed_and_in_order() {
    const USERS: usize = 2000;
    const WRITERS: usize = 8;
    const PATCHES: usize = 4;
    for which in backends() {
        let (_db, store) = store(which).await;
        let dir = tenant(&store, "acme").await;
        let receiver = Receiver::start().await;
        webhook(&dir, &receiver, "app").await;
        let worker = start(&store, config());
        let mut changes = 0usize;

        let mut tasks = tokio::task::JoinSet::new();
        for w in 0..WRITERS {
            let dir = dir.clone();
            tasks.spawn(async move {
                let mut ids = Vec::new();
                for i in (w..USERS).step_by(WRITERS) {
                    ids.push((
                        i,
                        dir.create_user(user(&format!("u{i}")))
                            .await
                            .expect("user")
                            .id,
                    ));
                    // A duplicate userName fails and must leave no event.
                    assert!(dir.create_user(user(&format!("U{i}"))).await.is_err());
                }
                for (i, id) in &ids {
                    for p in 0..PATCHES {
                        let (i, p) = (*i, p);
                        dir.modify_user(id, None, move |c| {
                            let mut d = c.document.clone();
                            d["title"] = json!(format!("title {i}.{p}"));
                            d["active"] = json!(!(p == 1 && i % 7 == 0));
                            Ok(d)
                        })
                        .await
                        .expect("patch");
                    }
                }
                ids
            });
        }
        let mut users: Vec<(usize, String)> = Vec::new();
        while let Some(done) = tasks.join_next().await {
            users.extend(done.expect("writer"));
        }
        users.sort();
        let users: Vec<String> = users.into_iter().map(|(_, id)| id).collect();
        changes += USERS * (1 + PATCHES);
        let mut groups = Vec::new();
        for g in 0..20 {
            let members: Vec<Member> = users[g * 100..g * 100 + 50]
                .iter()
                .map(|id| Member::new(id.clone()))
                .collect();
            groups.push(
                dir.create_group(group(&format!("g{g}")), members)
                    .await
                    .expect("group")
                    .id,
            );
            changes += 1;
        }
        for (g, gid) in groups.iter().enumerate() {
            let add: Vec<Member> = users[g * 100 + 50..g * 100 + 100]
                .iter()
                .map(|id| Member::new(id.clone()))
                .collect();
            let remove = vec![users[g * 100].clone()];
            dir.modify_group(gid, None, move |c| {
                Ok((
                    c.document.clone(),
                    vec![
                        MemberChange::Add(add.clone()),
                        MemberChange::Remove(remove.clone()),
                    ],
                ))
            })
            .await
            .expect("members");
            changes += 1;
        }
        for id in users.iter().step_by(9) {
            dir.delete_user(id, None).await.expect("delete");
            changes += 1;
        }
        dir.delete_group(&groups[0], None)
            .await
            .expect("delete group");
        changes += 1;
        assert!(changes >= 10_000, "{changes} changes");

        let ids = event_ids(&dir).await;
        assert!(ids.len() > changes, "{which:?}: {} events", ids.len());
        let got = wait_for_ids(&receiver, &ids, Duration::from_secs(120)).await;
        worker.stop().await;
        let expected: BTreeSet<&String> = ids.iter().collect();
        let received: BTreeSet<&String> = got.iter().collect();
        assert_eq!(
            received, expected,
            "{which:?}: exactly the committed events"
        );
        let deliveries = receiver.deliveries();
        assert!(
            deliveries.iter().all(|d| d.verified),
            "{which:?}: {:?}",
            deliveries
                .iter()
                .find(|d| !d.verified)
                .map(|d| &d.verify_error)
        );
        receiver
            .check_order("data.id", "position")
            .unwrap_or_else(|e| panic!("{which:?}: {e}"));
        // The envelope: id = webhook-id, type, tenant, data with meta.
        let first = &deliveries[0];
        let body = &first.body;
        assert_eq!(body["id"].as_str(), first.webhook_id.as_deref());
        assert_eq!(body["tenant"], json!(dir.tenant().id()));
        assert!(body["data"]["meta"]["version"].is_string());
    }
}

/// The receiver is down for a while, then back: every event arrives; the
/// ones sent more than once keep their webhook-id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_outage_loses_nothing() {
    for which in backends() {
        let (_db, store) = store(which).await;
        let dir = tenant(&store, "acme").await;
        let receiver = Receiver::start().await;
        webhook(&dir, &receiver, "app").await;
        let mut cfg = config();
        cfg.retry_schedule = vec![Duration::from_millis(300); 20];
        let worker = start(&store, cfg);
        receiver.stop().await;
        for i in 0..50 {
            dir.create_user(user(&format!("u{i}"))).await.expect("user");
        }
        tokio::time::sleep(Duration::from_millis(800)).await;
        receiver.restart().await;
        for i in 50..80 {
            dir.create_user(user(&format!("u{i}"))).await.expect("user");
        }
        let ids = event_ids(&dir).await;
        let got = wait_for_ids(&receiver, &ids, Duration::from_secs(30)).await;
        worker.stop().await;
        assert_eq!(
            got.iter().collect::<BTreeSet<_>>(),
            ids.iter().collect::<BTreeSet<_>>(),
            "{which:?}"
        );
        // The target recorded the failures and then the recovery.
        let target = &dir.targets().await.expect("targets")[0];
        assert!(target.last_failure_at.is_some(), "{which:?}");
        assert!(target.failing_since.is_none(), "{which:?}: recovered");
    }
}

/// A 4xx is permanent: the event becomes a dead letter (later events of the
/// same resource go on); replaying it delivers it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permanent_failure_is_a_dead_letter_until_replayed() {
    for which in backends() {
        let (_db, store) = store(which).await;
        let dir = tenant(&store, "acme").await;
        let receiver = Receiver::start().await;
        let target = webhook(&dir, &receiver, "app").await;
        let worker = start(&store, config());
        receiver.answer(400);
        let u = dir.create_user(user("bjensen")).await.expect("user");
        let dead = wait_until(Duration::from_secs(20), || async {
            let dead = dir
                .deliveries(target.id, DeliveryStatus::Dead, 0, 100)
                .await
                .expect("dead letters");
            (!dead.is_empty()).then_some(dead)
        })
        .await
        .unwrap_or_else(|| panic!("{which:?}: no dead letter"));
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].resource_id, u.id);
        assert_eq!(dead[0].last_status, Some(400));
        let attempts = dir
            .attempts(target.id, Some(dead[0].event_id), None, 10)
            .await
            .expect("attempts");
        assert_eq!(attempts.len(), 1, "a 4xx is not retried");
        assert_eq!(attempts[0].outcome, "dead");

        // The next event of the same user is not held back by a dead one.
        receiver.answer_ok();
        dir.modify_user(&u.id, None, |c| {
            let mut d = c.document.clone();
            d["title"] = json!("Boss");
            Ok(d)
        })
        .await
        .expect("patch");
        let ids = event_ids(&dir).await;
        let got = wait_for_ids(&receiver, &ids[1..], Duration::from_secs(20)).await;
        assert!(got.contains(&ids[1]), "{which:?}");

        let replayed = dir
            .replay_dead_letters(target.id, None, "test")
            .await
            .expect("replay");
        assert_eq!(replayed, 1);
        let got = wait_for_ids(&receiver, &ids, Duration::from_secs(20)).await;
        worker.stop().await;
        assert!(got.contains(&ids[0]), "{which:?}: the dead letter arrived");
        assert!(
            dir.deliveries(target.id, DeliveryStatus::Dead, 0, 10)
                .await
                .expect("dead")
                .is_empty()
        );
    }
}

/// 410 Gone disables the target, with the reason and an audit entry; the
/// event waits for the target to be enabled again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gone_disables_the_target_and_keeps_the_event() {
    for which in backends() {
        let (_db, store) = store(which).await;
        let dir = tenant(&store, "acme").await;
        let receiver = Receiver::start().await;
        let target = webhook(&dir, &receiver, "app").await;
        let worker = start(&store, config());
        receiver.answer(410);
        dir.create_user(user("bjensen")).await.expect("user");
        let disabled = wait_until(Duration::from_secs(20), || async {
            let t = dir.target(target.id).await.expect("target");
            (!t.enabled).then_some(t)
        })
        .await
        .unwrap_or_else(|| panic!("{which:?}: not disabled"));
        assert!(
            disabled
                .disabled_reason
                .as_deref()
                .is_some_and(|r| r.contains("410")),
            "{disabled:?}"
        );
        let audit = store
            .admin()
            .audit_log(&store::AuditQuery {
                tenant: Some(dir.tenant().id()),
                action: Some("target.disable".into()),
                limit: 10,
                ..store::AuditQuery::default()
            })
            .await
            .expect("audit");
        assert_eq!(audit.len(), 1, "{which:?}");

        // Enabled again (the endpoint is back): the event arrives.
        receiver.answer_ok();
        let count = receiver.count();
        dir.update_target(
            target.id,
            store::delivery::TargetUpdate {
                enabled: Some(true),
                ..Default::default()
            },
            "test",
        )
        .await
        .expect("enable");
        let again = wait_until(Duration::from_secs(20), || async {
            let d = receiver.deliveries();
            (d.len() > count).then(|| d[count].clone())
        })
        .await;
        worker.stop().await;
        let again = again.unwrap_or_else(|| panic!("{which:?}: not sent again"));
        let ids = event_ids(&dir).await;
        assert_eq!(again.webhook_id.as_ref(), Some(&ids[0]), "{which:?}");
        assert_eq!(again.answered, Some(204));
    }
}

/// One tenant's receiver hangs; another tenant's events still arrive at
/// once. Both lags are printed (the benchmark measures them properly).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_target_does_not_delay_another_tenant() {
    for which in backends() {
        let (_db, store) = store(which).await;
        let stuck = tenant(&store, "stuck").await;
        let healthy = tenant(&store, "healthy").await;
        let bad = Receiver::start().await;
        let good = Receiver::start().await;
        webhook(&stuck, &bad, "app").await;
        webhook(&healthy, &good, "app").await;
        bad.hang();
        let mut cfg = config();
        // Longer than the whole check below: a shared queue would stall.
        cfg.timeout = Duration::from_secs(30);
        let worker = start(&store, cfg);
        let mut sent_at = HashMap::new();
        for i in 0..40 {
            stuck
                .create_user(user(&format!("s{i}")))
                .await
                .expect("user");
            healthy
                .create_user(user(&format!("h{i}")))
                .await
                .expect("user");
            for id in event_ids(&healthy).await {
                sent_at.entry(id).or_insert_with(SystemTime::now);
            }
        }
        let ids = event_ids(&healthy).await;
        let got = wait_for_ids(&good, &ids, Duration::from_secs(15)).await;
        assert_eq!(
            got.len(),
            ids.len(),
            "{which:?}: the healthy tenant got everything"
        );
        let lags: Vec<Duration> = good
            .deliveries()
            .iter()
            .filter_map(|d| {
                let id = d.webhook_id.as_ref()?;
                d.received_at.duration_since(*sent_at.get(id)?).ok()
            })
            .collect();
        let worst = lags.iter().max().copied().unwrap_or_default();
        println!(
            "{which:?}: healthy tenant lag max {worst:?} over {} events; stuck tenant got {} \
             requests, none answered",
            lags.len(),
            bad.count()
        );
        assert!(bad.count() > 0, "the stuck target was tried");
        bad.answer_ok();
        worker.stop().await;
    }
}

/// Addresses in internal ranges are refused unless the operator allows
/// them, with a message that says why.
#[tokio::test]
async fn internal_addresses_are_refused() {
    let (_db, store) = store(testkit::TestDb::Sqlite).await;
    let dir = tenant(&store, "acme").await;
    let box_ = secrets();
    let targets = Targets {
        store: &dir,
        secrets: Some(&box_),
        policy: AddressPolicy::default(),
    };
    for url in [
        "http://127.0.0.1:9/hook",
        "http://10.0.0.5/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hook",
        "http://localhost:8080/hook",
        "ftp://example.com/hook",
        "http://user:pw@example.com/hook",
    ] {
        let err = targets
            .create(
                TargetSpec {
                    name: "x".into(),
                    kind: "webhook".into(),
                    url: url.into(),
                    event_types: Vec::new(),
                    token: None,
                },
                "test",
            )
            .await
            .expect_err(url);
        assert!(matches!(err, TargetError::Address(_)), "{url}: {err:?}");
    }
    let err = targets
        .create(
            TargetSpec {
                name: "x".into(),
                kind: "webhook".into(),
                url: "http://10.0.0.5/hook".into(),
                event_types: Vec::new(),
                token: None,
            },
            "test",
        )
        .await
        .expect_err("private");
    assert!(
        err.to_string().contains("delivery_allow_private_targets"),
        "{err}"
    );
    assert!(
        dir.targets().await.expect("targets").is_empty(),
        "nothing stored"
    );
}

/// After a rotation both secrets sign until the overlap ends: a receiver
/// that knows only the old one, or only the new one, verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_secret_signs_alongside_the_old_one() {
    let (_db, store) = store(testkit::TestDb::Sqlite).await;
    let dir = tenant(&store, "acme").await;
    let receiver = Receiver::start().await;
    let target = webhook(&dir, &receiver, "app").await;
    let box_ = secrets();
    let targets = Targets {
        store: &dir,
        secrets: Some(&box_),
        policy: AddressPolicy {
            allow_private: true,
        },
    };
    let (_, new_secret) = targets
        .rotate(
            target.id,
            Duration::from_secs(3600),
            chrono::Utc::now(),
            "test",
        )
        .await
        .expect("rotate");
    let worker = start(&store, config());
    dir.create_user(user("old")).await.expect("user");
    // The receiver still has only the old secret.
    let first = receiver
        .wait_for(1, Duration::from_secs(20))
        .await
        .expect("first");
    assert!(first[0].verified, "{:?}", first[0].verify_error);
    assert_eq!(
        first[0].signature.as_deref().map(|s| s.split(' ').count()),
        Some(2),
        "two signatures during the overlap"
    );
    receiver.set_secret(&new_secret);
    dir.create_user(user("new")).await.expect("user");
    let both = receiver
        .wait_for(2, Duration::from_secs(20))
        .await
        .expect("second");
    worker.stop().await;
    assert!(both[1].verified, "{:?}", both[1].verify_error);
}

/// After the delivery secrets key is replaced and a secret rotated under
/// the new key, the previous secret (sealed under the old key) cannot be
/// opened: the new one signs alone instead of every attempt failing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_previous_secret_sealed_under_a_replaced_key_is_left_out() {
    let (_db, store) = store(testkit::TestDb::Sqlite).await;
    let dir = tenant(&store, "acme").await;
    let receiver = Receiver::start().await;
    let target = webhook(&dir, &receiver, "app").await;
    let replaced = SecretBox::new(&[9u8; 32]);
    let targets = Targets {
        store: &dir,
        secrets: Some(&replaced),
        policy: AddressPolicy {
            allow_private: true,
        },
    };
    let (_, new_secret) = targets
        .rotate(
            target.id,
            Duration::from_secs(3600),
            chrono::Utc::now(),
            "test",
        )
        .await
        .expect("rotate");
    receiver.set_secret(&new_secret);
    let worker = run(Worker::new(
        store.clone(),
        config(),
        Some(SecretBox::new(&[9u8; 32])),
        Metrics::unregistered().expect("metrics"),
    )
    .expect("worker"));
    dir.create_user(user("ada")).await.expect("user");
    let got = receiver
        .wait_for(1, Duration::from_secs(20))
        .await
        .expect("delivered");
    worker.stop().await;
    assert!(got[0].verified, "{:?}", got[0].verify_error);
    assert_eq!(
        got[0].signature.as_deref().map(|s| s.split(' ').count()),
        Some(1),
        "the current secret alone"
    );
}

/// Polls `check` until it gives a value or `within` passes.
pub async fn wait_until<T, F, Fut>(within: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(v) = check().await {
            return Some(v);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A user's timeline: the request that changed it, its role change with
/// the reason, its events and the attempts to deliver them, in time order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_timeline_shows_request_roles_events_and_attempts() {
    for which in backends() {
        let (_db, store) = store(which).await;
        let dir = tenant(&store, "acme").await;
        dir.set_role_policy(
            roles::Policy {
                roles: vec![roles::Role {
                    name: "viewer".into(),
                    description: String::new(),
                }],
                default_role: Some("viewer".into()),
                mappings: vec![],
                mode: roles::Mode::Single,
            },
            None,
            "test",
        )
        .await
        .expect("policy");
        let receiver = Receiver::start().await;
        webhook(&dir, &receiver, "app").await;
        receiver.fail_next(1, 503);
        let worker = start(&store, config());
        let arrived = chrono::Utc::now();
        let u = dir.create_user(user("bjensen")).await.expect("user");
        // What the gateway logs for the request that created it (stamped
        // with the request's arrival).
        dir.record(store::ProvisioningEntry {
            at: arrived,
            method: "POST".into(),
            resource_type: "User".into(),
            resource_id: Some(u.id.clone()),
            identifier: Some("bjensen".into()),
            outcome: "success".into(),
            status: 201,
            duration_ms: 3,
            request_id: "req-1".into(),
            detail: None,
            routed: None,
        })
        .await
        .expect("log");
        let ids = event_ids(&dir).await;
        wait_for_ids(&receiver, &ids, Duration::from_secs(20)).await;
        worker.stop().await;
        let t = sync_worker::timeline::timeline(&dir, &u.id)
            .await
            .expect("timeline");
        let kinds: Vec<&str> = t.iter().map(|e| e.kind).collect();
        assert_eq!(kinds.first(), Some(&"request"), "{which:?}: {kinds:?}");
        // In time order, to the millisecond the store keeps.
        assert!(t.windows(2).all(|w| {
            use chrono::SubsecRound;
            w[0].at.trunc_subsecs(3) <= w[1].at.trunc_subsecs(3)
        }));
        let roles = t.iter().find(|e| e.kind == "roles").expect("a role change");
        assert_eq!(roles.detail["after"]["roles"][0]["role"], "viewer");
        assert_eq!(
            roles.detail["after"]["roles"][0]["reason"]["kind"],
            "default"
        );
        assert!(
            t.iter()
                .any(|e| e.kind == "event" && e.summary == "user.created")
        );
        let attempts: Vec<&str> = t
            .iter()
            .filter(|e| e.kind == "attempt")
            .map(|e| e.detail["outcome"].as_str().unwrap_or_default())
            .collect();
        // The first try of the first event met the 503, then it went through.
        assert!(attempts.contains(&"retry"), "{which:?}: {attempts:?}");
        assert_eq!(
            attempts.iter().filter(|o| **o == "delivered").count(),
            ids.len(),
            "{which:?}: every event delivered once"
        );
    }
}

/// Two workers (two processes' worth: separate store handles) on one
/// database: each event is delivered exactly once. Then one dies without a
/// word (its task aborted, its lease left behind); the other takes its
/// targets over when the lease runs out and nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_share_targets_without_duplicates_and_take_over() {
    for which in backends() {
        let (db, store) = store(which).await;
        let second = store::Store::connect(&db.url, store::StoreOptions::default())
            .await
            .expect("second handle");
        let mut receivers = Vec::new();
        let mut dirs = Vec::new();
        for i in 0..4 {
            let dir = tenant(&store, &format!("t{i}")).await;
            let r = Receiver::start().await;
            webhook(&dir, &r, "app").await;
            receivers.push(r);
            dirs.push(dir);
        }
        let a = start(&store, config());
        let b = start(&second, config());
        for round in 0..30 {
            for dir in &dirs {
                dir.create_user(user(&format!("u{round}")))
                    .await
                    .expect("user");
            }
        }
        for (dir, r) in dirs.iter().zip(&receivers) {
            let ids = event_ids(dir).await;
            let got = wait_for_ids(r, &ids, Duration::from_secs(30)).await;
            assert_eq!(got.len(), ids.len(), "{which:?}");
            assert_eq!(r.count(), ids.len(), "{which:?}: no event delivered twice");
        }
        // A dies: no graceful stop, its leases stay until they expire.
        a.abort();
        for round in 30..40 {
            for dir in &dirs {
                dir.create_user(user(&format!("u{round}")))
                    .await
                    .expect("user");
            }
        }
        for (dir, r) in dirs.iter().zip(&receivers) {
            let ids = event_ids(dir).await;
            let got = wait_for_ids(r, &ids, Duration::from_secs(30)).await;
            assert_eq!(got.len(), ids.len(), "{which:?}: taken over, nothing lost");
        }
        b.stop().await;
    }
}

/// A target whose every attempt fails for longer than `disable_after` is
/// disabled, with the reason, an audit entry, and its events kept waiting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_failing_too_long_is_disabled() {
    for which in backends() {
        let (_db, store) = store(which).await;
        let dir = tenant(&store, "acme").await;
        let receiver = Receiver::start().await;
        let target = webhook(&dir, &receiver, "app").await;
        receiver.answer(500);
        let mut cfg = config();
        cfg.disable_after = Duration::from_secs(1);
        cfg.retry_schedule = vec![Duration::from_millis(150); 50];
        let worker = start(&store, cfg);
        dir.create_user(user("bjensen")).await.expect("user");
        let disabled = wait_until(Duration::from_secs(30), || async {
            let t = dir.target(target.id).await.expect("target");
            (!t.enabled).then_some(t)
        })
        .await
        .unwrap_or_else(|| panic!("{which:?}: not disabled"));
        worker.stop().await;
        let reason = disabled.disabled_reason.clone().unwrap_or_default();
        assert!(
            reason.contains("every attempt has failed since"),
            "{reason}"
        );
        let since = disabled.failing_since.expect("failing since");
        let at = disabled.disabled_at.expect("disabled at");
        assert!(
            at - since >= chrono::Duration::seconds(1),
            "{which:?}: disabled only after the configured time"
        );
        assert!(receiver.count() >= 2, "retried before giving up");
        let pending = dir
            .deliveries(target.id, DeliveryStatus::Pending, 0, 10)
            .await
            .expect("pending");
        assert_eq!(pending.len(), 1, "{which:?}: the event still waits");
        let audit = store
            .admin()
            .audit_log(&store::AuditQuery {
                tenant: Some(dir.tenant().id()),
                action: Some("target.disable".into()),
                limit: 10,
                ..store::AuditQuery::default()
            })
            .await
            .expect("audit");
        assert_eq!(audit.len(), 1, "{which:?}");
    }
}
