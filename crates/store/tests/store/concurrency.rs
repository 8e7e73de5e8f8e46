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
        // One members_added event per PATCH, each with its own version.
        let versions: BTreeSet<u64> = dir
            .events_after(0, 1000)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.event_type == store::EventType::GroupMembersAdded)
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
        let events = dir.events_after(0, 1000).await.unwrap();
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
            user_extras: Default::default(),
        }));
        assert_send(&s.admin().authenticate("x"));
        assert_send(&s.migrate());
    };
}

/// On SQLite one commit carries many writes, and their outbox rows are
/// inserted together before it: a tenant deleted among them must not take
/// the batch down, failed writes must leave no event, and every write that
/// succeeded keeps exactly its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_sharing_a_commit_with_a_tenant_delete_keep_exactly_their_events() {
    for which in backends() {
        let (_db, store) = store(which).await;
        let kept = store.tenant(&tenant(&store, "kept").await);
        let doomed_tenant = tenant(&store, "doomed").await;
        let doomed = store.tenant(&doomed_tenant);
        let mut creates = JoinSet::new();
        let mut others = JoinSet::new();
        for i in 0..N {
            let dir = kept.clone();
            // Every odd one is the same userName: all but one of them fail.
            let name = if i % 2 == 0 {
                format!("u{i}")
            } else {
                "twin".to_owned()
            };
            creates.spawn(async move { dir.create_user(user(&name)).await });
            let dir = doomed.clone();
            others.spawn(async move { dir.create_user(user(&format!("d{i}"))).await.is_ok() });
        }
        let admin = store.admin();
        let id = doomed_tenant.id();
        let deleted = tokio::spawn(async move { admin.delete_tenant(id, "test").await });
        let mut created = BTreeSet::new();
        let mut taken = 0;
        while let Some(r) = creates.join_next().await {
            match r.unwrap() {
                Ok(u) => {
                    created.insert(u.id);
                }
                Err(StoreError::Uniqueness(_)) => taken += 1,
                Err(other) => panic!("{which:?}: {other:?}"),
            }
        }
        deleted.await.unwrap().unwrap();
        while others.join_next().await.is_some() {}
        assert_eq!((created.len(), taken), (N / 2 + 1, N / 2 - 1), "{which:?}");
        let events = kept.events_after(0, 1000).await.unwrap();
        let ids: Vec<&str> = events.iter().map(|e| e.resource_id.as_str()).collect();
        assert!(
            events
                .iter()
                .all(|e| e.event_type.as_str() == "user.created"),
            "{which:?}: {events:?}"
        );
        assert_eq!(ids.len(), created.len(), "{which:?}: one event per create");
        assert_eq!(
            ids.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>(),
            created,
            "{which:?}"
        );
        assert!(
            store.admin().tenant_by_id(id).await.unwrap().is_none(),
            "{which:?}: the tenant is gone"
        );
    }
}
