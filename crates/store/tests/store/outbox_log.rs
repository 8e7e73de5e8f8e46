//! Events written with their change, the log's order and what outlives a
//! tenant; provisioning log and pruning.

use chrono::{Duration, Utc};
use scim::patch::{Member, MemberChange};
use serde_json::json;
use store::{EventQuery, EventType, LogQuery, ProvisioningEntry, ResourceKind, StoreError};
use testkit::backends;

use crate::common::*;

#[tokio::test]
async fn events_follow_committed_changes_only() {
    for which in backends() {
        let (_db, _store, dir) = directory(which).await;
        let u = dir.create_user(user("bjensen")).await.unwrap();
        let ev = dir.events_after(0, 100).await.unwrap();
        // A tenant that defines no roles derives none: no role event.
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].event_type, EventType::UserCreated);
        assert_eq!(ev[0].event_type.resource_kind(), ResourceKind::User);
        assert_eq!(ev[0].resource_id, u.id);
        assert_eq!(ev[0].tenant_id, dir.tenant().id());
        assert_eq!(ev[0].schema_version, store::events::SCHEMA_VERSION);
        assert_eq!(ev[0].payload["version"], 1);
        assert_eq!(ev[0].payload["document"], u.document);
        assert_eq!(ev[0].public_id(), format!("evt_{}", ev[0].id));
        let last = ev[0].position;

        // Failures and no-ops write nothing.
        assert!(dir.create_user(user("BJENSEN")).await.is_err());
        assert!(
            dir.modify_user(&u.id, None, move |_| Err(scim::Error::InvalidValue(
                "x".into()
            )))
            .await
            .is_err()
        );
        dir.modify_user(&u.id, None, move |c| Ok(c.document.clone()))
            .await
            .unwrap();
        assert!(
            dir.events_after(last, 100).await.unwrap().is_empty(),
            "{which:?}"
        );

        let m = dir
            .modify_user(&u.id, None, move |c| {
                let mut d = c.document.clone();
                d["title"] = json!("Boss");
                Ok(d)
            })
            .await
            .unwrap();
        let ev = dir.events_after(last, 100).await.unwrap();
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].event_type, EventType::UserUpdated);
        assert_eq!(ev[0].payload["version"], 2);
        assert_eq!(ev[0].payload["changed"], json!(["title"]));
        assert_eq!(ev[0].payload["previous"], json!({"title": null}));
        assert_eq!(ev[0].payload["document"], m.document);
        let last = ev[0].position;

        // Deactivation and reactivation are named as such.
        for (active, expected) in [
            (false, EventType::UserDeactivated),
            (true, EventType::UserReactivated),
        ] {
            let before = dir.events_after(0, 1000).await.unwrap().len();
            dir.modify_user(&u.id, None, move |c| {
                let mut d = c.document.clone();
                d["active"] = json!(active);
                Ok(d)
            })
            .await
            .unwrap();
            let ev = dir.events_after(0, 1000).await.unwrap();
            assert_eq!(ev[before].event_type, expected, "{which:?}");
            assert_eq!(ev[before].payload["changed"], json!(["active"]));
        }
        let last = dir
            .events_after(last, 100)
            .await
            .unwrap()
            .last()
            .map_or(last, |e| e.position);

        let g = dir
            .create_group(group("G"), vec![Member::new(u.id.clone())])
            .await
            .unwrap();
        let ev = dir.events_after(last, 100).await.unwrap();
        let kinds: Vec<&str> = ev.iter().map(|e| e.event_type.as_str()).collect();
        assert_eq!(kinds, vec!["group.created", "group.members_added"]);
        assert_eq!(ev[1].payload["members"], json!([u.id]));
        let last = ev[1].position;

        let uid = u.id.clone();
        dir.modify_group(&g.id, None, move |c| {
            Ok((
                c.document.clone(),
                vec![MemberChange::Remove(vec![uid.clone()])],
            ))
        })
        .await
        .unwrap();
        let ev = dir.events_after(last, 100).await.unwrap();
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].event_type, EventType::GroupMembersRemoved);
        assert_eq!(ev[0].payload["members"], json!([u.id]));
        assert_eq!(ev[0].payload["version"], 2);
        let last = ev[0].position;

        let last_user = dir.get_user(&u.id).await.unwrap();
        dir.delete_user(&u.id, None).await.unwrap();
        dir.delete_group(&g.id, None).await.unwrap();
        let ev = dir.events_after(last, 100).await.unwrap();
        let kinds: Vec<&str> = ev.iter().map(|e| e.event_type.as_str()).collect();
        assert_eq!(kinds, vec!["user.deleted", "group.deleted"]);
        assert_eq!(ev[0].payload["version"], last_user.version);
        assert_eq!(ev[0].payload["document"], last_user.document);

        // Paging: positions increase by one, ids too here, limit applies.
        let all = dir.events_after(0, 100).await.unwrap();
        assert!(all.windows(2).all(|w| w[0].position + 1 == w[1].position));
        assert!(all.windows(2).all(|w| w[0].id < w[1].id));
        let two = dir.events_after(0, 2).await.unwrap();
        assert_eq!(two, all[..2].to_vec());

        // Filtering by type.
        let deletes = dir
            .events(&EventQuery {
                types: vec![EventType::UserDeleted, EventType::GroupDeleted],
                limit: 100,
                ..EventQuery::default()
            })
            .await
            .unwrap();
        assert_eq!(deletes.len(), 2);

        // One resource's history.
        let history = dir.resource_events(&u.id).await.unwrap();
        let kinds: Vec<&str> = history.iter().map(|e| e.event_type.as_str()).collect();
        assert_eq!(
            kinds,
            vec![
                "user.created",
                "user.updated",
                "user.deactivated",
                "user.reactivated",
                "user.deleted"
            ]
        );
    }
}

/// Deleting a tenant writes a deletion event for each of its users and
/// groups, and neither those nor its earlier events go with it; other
/// tenants' events are untouched.
#[tokio::test]
async fn a_deleted_tenant_leaves_its_events_behind() {
    for which in backends() {
        let (_db, store, dir) = directory(which).await;
        let other = tenant(&store, "other").await;
        let od = store.tenant(&other);
        od.create_user(user("stays")).await.unwrap();
        let u = dir.create_user(user("leaves")).await.unwrap();
        let g = dir
            .create_group(group("G"), vec![Member::new(u.id.clone())])
            .await
            .unwrap();
        let before = dir.events_after(0, 100).await.unwrap();
        store
            .admin()
            .delete_tenant(dir.tenant().id(), "test")
            .await
            .unwrap();
        let log = store.event_log();
        let all = log
            .read(&EventQuery {
                limit: 100,
                ..EventQuery::default()
            })
            .await
            .unwrap();
        let mine: Vec<&store::StoredEvent> = all
            .iter()
            .filter(|e| e.tenant_id == dir.tenant().id())
            .collect();
        assert_eq!(mine.len(), before.len() + 2, "{which:?}");
        assert!(before.iter().all(|b| mine.contains(&b)));
        let tail = &mine[before.len()..];
        assert_eq!(tail[0].event_type, EventType::GroupDeleted);
        assert_eq!(tail[0].resource_id, g.id);
        assert_eq!(tail[1].event_type, EventType::UserDeleted);
        assert_eq!(tail[1].resource_id, u.id);
        assert_eq!(tail[1].payload["reason"], "tenant_deleted");
        assert_eq!(tail[1].payload["document"], u.document);
        assert_eq!(all.iter().filter(|e| e.tenant_id == other.id()).count(), 1);
        assert_eq!(log.head().await.unwrap(), all.last().unwrap().position);
    }
}

fn entry(at_offset_secs: i64, outcome: &str, rt: &str, id: Option<&str>) -> ProvisioningEntry {
    ProvisioningEntry {
        at: Utc::now() + Duration::seconds(at_offset_secs),
        method: "PATCH".into(),
        resource_type: rt.into(),
        resource_id: id.map(Into::into),
        identifier: Some("bjensen".into()),
        outcome: outcome.into(),
        status: if outcome == "success" { 200 } else { 400 },
        duration_ms: 12,
        request_id: "req-1".into(),
        detail: (outcome != "success").then(|| "invalidValue".into()),
        routed: None,
    }
}

#[tokio::test]
async fn provisioning_log_reads_filters_pages_and_prunes() {
    for which in backends() {
        let (_db, store, dir) = directory(which).await;
        let e1 = entry(-3600, "success", "User", Some("u1"));
        dir.record(e1.clone()).await.unwrap();
        dir.record(entry(-60, "failure", "User", Some("u2")))
            .await
            .unwrap();
        dir.record(entry(-30, "success", "Group", Some("g1")))
            .await
            .unwrap();
        dir.record(entry(-10, "success", "User", Some("u1")))
            .await
            .unwrap();

        let all = dir.provisioning_log(&LogQuery::default()).await.unwrap();
        assert_eq!(all.len(), 4);
        assert!(all.windows(2).all(|w| w[0].0 > w[1].0), "newest first");
        assert_eq!(all[3].1.request_id, e1.request_id);
        assert_eq!(all[3].1.status, 200);
        assert_eq!(all[2].1.detail.as_deref(), Some("invalidValue"));

        let q = |f: fn(&mut LogQuery)| {
            let mut q = LogQuery::default();
            f(&mut q);
            q
        };
        let failures = dir
            .provisioning_log(&q(|q| q.outcome = Some("failure".into())))
            .await
            .unwrap();
        assert_eq!(failures.len(), 1);
        assert_eq!(failures[0].1.resource_id.as_deref(), Some("u2"));
        let groups = dir
            .provisioning_log(&q(|q| q.resource_type = Some("Group".into())))
            .await
            .unwrap();
        assert_eq!(groups.len(), 1);
        let u1 = dir
            .provisioning_log(&q(|q| q.resource_id = Some("u1".into())))
            .await
            .unwrap();
        assert_eq!(u1.len(), 2);
        let recent = dir
            .provisioning_log(&q(|q| q.since = Some(Utc::now() - Duration::seconds(45))))
            .await
            .unwrap();
        assert_eq!(recent.len(), 2, "{which:?}");
        let older = dir
            .provisioning_log(&q(|q| q.until = Some(Utc::now() - Duration::seconds(45))))
            .await
            .unwrap();
        assert_eq!(older.len(), 2);

        // Paging by id.
        let first = dir.provisioning_log(&q(|q| q.limit = 3)).await.unwrap();
        assert_eq!(first.len(), 3);
        let mut next = LogQuery {
            limit: 3,
            ..LogQuery::default()
        };
        next.before_id = Some(first[2].0);
        let second = dir.provisioning_log(&next).await.unwrap();
        assert_eq!(second.len(), 1);
        assert_eq!(second[0].0, all[3].0);

        // Retention across tenants.
        let other = tenant(&store, "other").await;
        let od = store.tenant(&other);
        od.record(entry(-7200, "success", "User", None))
            .await
            .unwrap();
        od.record(entry(0, "success", "User", None)).await.unwrap();
        let pruned = store
            .admin()
            .prune_provisioning_log(Utc::now() - Duration::seconds(120))
            .await
            .unwrap();
        assert_eq!(pruned, 2, "{which:?}");
        assert_eq!(
            dir.provisioning_log(&LogQuery::default())
                .await
                .unwrap()
                .len(),
            3
        );
        assert_eq!(
            od.provisioning_log(&LogQuery::default())
                .await
                .unwrap()
                .len(),
            1
        );

        // Logging a failure works even when nothing else was written.
        let e = dir.get_user("missing").await.unwrap_err();
        assert!(matches!(e, StoreError::NotFound(_)));
    }
}

/// Writers on several tenants commit while a reader tails the whole log by
/// position: the reader ends with every event exactly once, positions
/// dense and increasing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tailing_reader_sees_every_event_once() {
    use std::collections::BTreeSet;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    const WRITERS: usize = 6;
    const EACH: usize = 40;
    for which in backends() {
        let (_db, store, _dir) = directory(which).await;
        let done = Arc::new(AtomicBool::new(false));
        let log = store.event_log();
        let reader = {
            let done = done.clone();
            tokio::spawn(async move {
                let mut seen = Vec::new();
                let mut after = 0;
                loop {
                    let finished = done.load(Ordering::SeqCst);
                    let page = log
                        .read(&EventQuery {
                            after,
                            limit: 7,
                            ..EventQuery::default()
                        })
                        .await
                        .unwrap();
                    if page.is_empty() && finished {
                        return seen;
                    }
                    for e in page {
                        assert_eq!(e.position, after + 1, "no gap, no repeat");
                        after = e.position;
                        seen.push(e.id);
                    }
                    tokio::task::yield_now().await;
                }
            })
        };
        let mut writers = tokio::task::JoinSet::new();
        for w in 0..WRITERS {
            let t = tenant(&store, &format!("t{w}")).await;
            let dir = store.tenant(&t);
            writers.spawn(async move {
                for i in 0..EACH {
                    dir.create_user(user(&format!("u{i}"))).await.unwrap();
                }
            });
        }
        while let Some(r) = writers.join_next().await {
            r.unwrap();
        }
        done.store(true, Ordering::SeqCst);
        let seen = reader.await.unwrap();
        let all: BTreeSet<i64> = store
            .event_log()
            .read(&EventQuery {
                limit: 1000,
                ..EventQuery::default()
            })
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.id)
            .collect();
        assert_eq!(all.len(), WRITERS * EACH, "{which:?}");
        assert_eq!(seen.len(), all.len(), "{which:?}: each event once");
        assert_eq!(seen.iter().copied().collect::<BTreeSet<_>>(), all);
    }
}

/// PostgreSQL hands out row ids before commit, so a transaction can hold
/// a smaller id than rows that commit before it. A reader that has passed
/// those rows must still get the late one: it is numbered when it commits.
#[tokio::test]
async fn a_late_commit_with_a_smaller_id_is_not_skipped() {
    use sea_orm::{ConnectionTrait, Database, Statement, TransactionTrait};
    let (db, store, dir) = directory(testkit::TestDb::Postgres).await;
    let raw = Database::connect(db.url.as_str()).await.unwrap();
    let slow = raw.begin().await.unwrap();
    slow.execute_raw(Statement::from_string(
        sea_orm::DbBackend::Postgres,
        format!(
            "INSERT INTO event_log (tenant_id, event_type, resource_type, resource_id, \
             schema_version, payload, created_at) VALUES ('{}', 'user.updated', 'User', \
             'late', 1, '{{}}', now())",
            dir.tenant().id()
        ),
    ))
    .await
    .unwrap();
    // Rows that take larger ids and commit first.
    for i in 0..3 {
        dir.create_user(user(&format!("early{i}"))).await.unwrap();
    }
    let first = dir.events_after(0, 100).await.unwrap();
    assert_eq!(first.len(), 3);
    let cursor = first.last().unwrap().position;
    slow.commit().await.unwrap();
    let next = dir.events_after(cursor, 100).await.unwrap();
    assert_eq!(next.len(), 1, "the late row is read after the cursor");
    assert_eq!(next[0].resource_id, "late");
    assert!(
        next[0].id < first[0].id,
        "it did take a smaller id than the rows read before it"
    );
    assert_eq!(next[0].position, cursor + 1);
    let _ = store;
}
