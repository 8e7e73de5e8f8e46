//! Outbox events written with their change; provisioning log and pruning.

use chrono::{Duration, Utc};
use scim::patch::{Member, MemberChange};
use serde_json::json;
use store::{LogQuery, ProvisioningEntry, StoreError};
use testkit::backends;

use crate::common::*;

#[tokio::test]
async fn events_follow_committed_changes_only() {
    for which in backends() {
        let (_db, _store, dir) = directory(which).await;
        let u = dir.create_user(user("bjensen")).await.unwrap();
        let ev = dir.outbox_after(0, 100).await.unwrap();
        // A tenant that defines no roles derives none: no role event.
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].event_type, "user.created");
        assert_eq!(ev[0].resource_type, "User");
        assert_eq!(ev[0].resource_id, u.id);
        assert_eq!(ev[0].payload["version"], 1);
        assert_eq!(ev[0].payload["document"], u.document);
        let last = ev[0].id;

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
            dir.outbox_after(last, 100).await.unwrap().is_empty(),
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
        let ev = dir.outbox_after(last, 100).await.unwrap();
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].event_type, "user.updated");
        assert_eq!(ev[0].payload["version"], 2);
        assert_eq!(ev[0].payload["changed"], json!(["title"]));
        assert_eq!(ev[0].payload["document"], m.document);
        let last = ev[0].id;

        let g = dir
            .create_group(group("G"), vec![Member::new(u.id.clone())])
            .await
            .unwrap();
        let ev = dir.outbox_after(last, 100).await.unwrap();
        let kinds: Vec<&str> = ev.iter().map(|e| e.event_type.as_str()).collect();
        assert_eq!(kinds, vec!["group.created", "group.members_changed"]);
        assert_eq!(ev[1].payload["added"], json!([u.id]));
        assert_eq!(ev[1].payload["removed"], json!([]));
        let last = ev[1].id;

        let uid = u.id.clone();
        dir.modify_group(&g.id, None, move |c| {
            Ok((
                c.document.clone(),
                vec![MemberChange::Remove(vec![uid.clone()])],
            ))
        })
        .await
        .unwrap();
        let ev = dir.outbox_after(last, 100).await.unwrap();
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].event_type, "group.members_changed");
        assert_eq!(ev[0].payload["removed"], json!([u.id]));
        assert_eq!(ev[0].payload["version"], 2);
        let last = ev[0].id;

        dir.delete_user(&u.id, None).await.unwrap();
        dir.delete_group(&g.id, None).await.unwrap();
        let ev = dir.outbox_after(last, 100).await.unwrap();
        let kinds: Vec<&str> = ev.iter().map(|e| e.event_type.as_str()).collect();
        assert_eq!(kinds, vec!["user.deleted", "group.deleted"]);
        assert_eq!(ev[0].payload["version"], 2);

        // Paging: ids increase, limit applies.
        let all = dir.outbox_after(0, 100).await.unwrap();
        assert!(all.windows(2).all(|w| w[0].id < w[1].id));
        let two = dir.outbox_after(0, 2).await.unwrap();
        assert_eq!(two, all[..2].to_vec());
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
