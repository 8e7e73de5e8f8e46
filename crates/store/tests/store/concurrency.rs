//! Concurrent writers: no lost updates, uniqueness under races.

use std::collections::BTreeSet;

use scim::patch::{Member, MemberChange};
use serde_json::json;
use store::StoreError;
use testkit::backends;
use tokio::task::JoinSet;

use crate::common::*;

const N: usize = 32;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_member_adds_on_one_group_all_land() {
    for which in backends() {
        let (_db, _store, dir) = directory(which).await;
        let mut users = Vec::new();
        for i in 0..N {
            users.push(dir.create_user(user(&format!("u{i}"))).await.unwrap().id);
        }
        let g = dir.create_group(group("Big"), vec![]).await.unwrap();
        let mut tasks = JoinSet::new();
        for id in users.clone() {
            let dir = dir.clone();
            let gid = g.id.clone();
            tasks.spawn(async move {
                dir.modify_group(&gid, None, move |cur| {
                    Ok((
                        cur.document.clone(),
                        vec![MemberChange::Add(vec![Member::new(id.clone())])],
                    ))
                })
                .await
            });
        }
        while let Some(r) = tasks.join_next().await {
            r.unwrap().unwrap();
        }
        let members: BTreeSet<String> = dir
            .group_members(&g.id)
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.value)
            .collect();
        assert_eq!(members, users.iter().cloned().collect(), "{which:?}");
        let after = dir.get_group(&g.id, false).await.unwrap();
        assert_eq!(
            after.version,
            1 + N as u64,
            "{which:?}: one version per change"
        );
        // One members_changed event per PATCH, each with its own version.
        let versions: BTreeSet<u64> = dir
            .outbox_after(0, 1000)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.event_type == "group.members_changed")
            .map(|e| e.payload["version"].as_u64().unwrap())
            .collect();
        assert_eq!(versions, (2..=1 + N as u64).collect());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creates_of_one_user_name_admit_exactly_one() {
    for which in backends() {
        let (_db, _store, dir) = directory(which).await;
        let mut tasks = JoinSet::new();
        for i in 0..N {
            let dir = dir.clone();
            // Different case each time: still the same userName.
            let name = if i % 2 == 0 { "BJensen" } else { "bjensen" };
            tasks.spawn(async move { dir.create_user(user(name)).await });
        }
        let (mut ok, mut taken) = (0, 0);
        while let Some(r) = tasks.join_next().await {
            match r.unwrap() {
                Ok(_) => ok += 1,
                Err(StoreError::Uniqueness(_)) => taken += 1,
                Err(other) => panic!("{which:?}: {other:?}"),
            }
        }
        assert_eq!((ok, taken), (1, N - 1), "{which:?}");
        let events = dir.outbox_after(0, 1000).await.unwrap();
        let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
        assert_eq!(
            types,
            ["user.created"],
            "{which:?}: failed creates write no event"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_document_patches_lose_no_update() {
    for which in backends() {
        let (_db, _store, dir) = directory(which).await;
        let u = dir.create_user(user("bjensen")).await.unwrap();
        let mut tasks = JoinSet::new();
        for i in 0..N {
            let dir = dir.clone();
            let id = u.id.clone();
            tasks.spawn(async move {
                dir.modify_user(&id, None, move |cur| {
                    let mut d = cur.document.clone();
                    d[format!("x{i}")] = json!(i);
                    Ok(d)
                })
                .await
            });
        }
        while let Some(r) = tasks.join_next().await {
            r.unwrap().unwrap();
        }
        let got = dir.get_user(&u.id).await.unwrap();
        assert_eq!(got.version, 1 + N as u64, "{which:?}");
        for i in 0..N {
            assert_eq!(
                got.document[format!("x{i}")],
                json!(i),
                "{which:?}: x{i} lost"
            );
        }
    }
}

/// The public futures are `Send`, so the gateway can spawn them.
#[test]
fn futures_are_send() {
    fn assert_send<T: Send>(_: &T) {}
    let _ = |dir: store::TenantStore, s: store::Store| {
        assert_send(&dir.create_user(user("x")));
        assert_send(&dir.modify_user("x", None, move |c| Ok(c.document.clone())));
        assert_send(&dir.modify_group("x", None, move |c| Ok((c.document.clone(), vec![]))));
        assert_send(&dir.list_users(&store::ListQuery {
            filter: None,
            sort_by: None,
            descending: false,
            start_index: 1,
            count: 1,
            with_members: false,
        }));
        assert_send(&s.admin().authenticate("x"));
        assert_send(&s.migrate());
    };
}
