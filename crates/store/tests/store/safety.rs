//! Deletion safety: the threshold, protected users, soft delete with a
//! grace period, and erasure, on both engines.

use chrono::{Duration, Utc};
use scim::patch::Member;
use serde_json::json;
use store::safety::{DeletionPolicy, HeldSelection, HoldReason};
use store::{EventType, StoreError, StoredEvent, TenantStore};
use testkit::backends;

use crate::common::*;

/// Every event of the tenant, in order.
async fn all_events(dir: &TenantStore) -> Vec<StoredEvent> {
    dir.events_after(0, 1000).await.expect("events")
}

fn count(events: &[StoredEvent], t: EventType) -> usize {
    events.iter().filter(|e| e.event_type == t).count()
}

/// Deleting 50 of 100 users with a threshold of 10: 10 deletions reach
/// the event log, 40 are held (the directory has them all deleted);
/// releasing writes the 40; after that, a new window: 10 pass again and
/// the rest, discarded, never do.
#[tokio::test]
async fn a_threshold_holds_the_rest_until_released_or_discarded() {
    for which in backends() {
        let (_db, _store, dir) = directory(which).await;
        let policy = DeletionPolicy {
            max_deletions: Some(10),
            ..DeletionPolicy::default()
        };
        let state = dir
            .set_deletion_policy(policy, Some(0), "admin")
            .await
            .expect("policy");
        assert_eq!(state.version, 1);
        let mut ids = Vec::new();
        for i in 0..100 {
            ids.push(
                dir.create_user(user(&format!("u{i:03}")))
                    .await
                    .expect("user")
                    .id,
            );
        }
        for id in &ids[..50] {
            dir.delete_user(id, None)
                .await
                .expect("the IdP's delete succeeds");
        }
        for id in &ids[..50] {
            assert!(
                matches!(dir.get_user(id).await, Err(StoreError::NotFound(_))),
                "{which:?}: deleted in the directory"
            );
        }
        let events = all_events(&dir).await;
        assert_eq!(count(&events, EventType::UserDeleted), 10, "{which:?}");
        let state = dir.deletion_safety().await.expect("state");
        assert!(state.tripped, "{which:?}");
        assert_eq!(state.held, 40);
        let held = dir.held_changes(1000).await.expect("held");
        assert_eq!(held.len(), 40);
        assert!(
            held.iter().all(
                |h| h.reason == HoldReason::Threshold && h.event_type == EventType::UserDeleted
            )
        );
        let held_users: Vec<&str> = held.iter().map(|h| h.user_id.as_str()).collect();
        let expected: Vec<&str> = ids[10..50].iter().map(String::as_str).collect();
        assert_eq!(held_users, expected, "held in the order they came");
        assert_eq!(held[0].user_name.as_deref(), Some("u010"));

        let released = dir
            .release_held(HeldSelection::All, "admin")
            .await
            .expect("release");
        assert_eq!(released, 40);
        let events = all_events(&dir).await;
        assert_eq!(count(&events, EventType::UserDeleted), 50, "{which:?}");
        let state = dir.deletion_safety().await.expect("state");
        assert!(!state.tripped);
        assert_eq!((state.held, state.window_count), (0, 0));

        // A new window: 10 pass, 10 held, and discarded.
        for id in &ids[50..70] {
            dir.delete_user(id, None).await.expect("delete");
        }
        assert_eq!(dir.held_changes(1000).await.expect("held").len(), 10);
        let discarded = dir
            .discard_held(HeldSelection::All, "admin")
            .await
            .expect("discard");
        assert_eq!(discarded, 10);
        let events = all_events(&dir).await;
        assert_eq!(count(&events, EventType::UserDeleted), 60, "{which:?}");
        assert!(!dir.deletion_safety().await.expect("state").tripped);
        // A release of ids that are not held changes nothing.
        assert!(matches!(
            dir.release_held(HeldSelection::Ids(vec![999_999]), "admin")
                .await,
            Err(StoreError::Conflict(_))
        ));
    }
}

/// A protected user's deactivation and deletion wait for confirmation,
/// with its role change; others' pass.
#[tokio::test]
async fn a_protected_users_deactivation_waits_for_confirmation() {
    for which in backends() {
        let (_db, _store, dir) = directory(which).await;
        let admin = dir.create_user(user("break-glass")).await.expect("user").id;
        let other = dir.create_user(user("someone")).await.expect("user").id;
        assert!(matches!(
            dir.protect_user(&admin, "  ", "admin").await,
            Err(StoreError::InvalidValue(_))
        ));
        let p = dir
            .protect_user(&admin, "the break-glass account", "admin")
            .await
            .expect("protect");
        assert_eq!(p.reason, "the break-glass account");
        assert_eq!(dir.protected_users().await.expect("list").len(), 1);
        for id in [&admin, &other] {
            dir.modify_user(id, None, |c| {
                let mut d = c.document.clone();
                d["active"] = json!(false);
                Ok(d)
            })
            .await
            .expect("the IdP's deactivation succeeds");
        }
        let events = all_events(&dir).await;
        let deactivated: Vec<&str> = events
            .iter()
            .filter(|e| e.event_type == EventType::UserDeactivated)
            .map(|e| e.resource_id.as_str())
            .collect();
        assert_eq!(deactivated, [other.as_str()], "{which:?}");
        let got = dir.get_user(&admin).await.expect("admin");
        assert_eq!(got.document["active"], false, "the directory has it");
        let held = dir.held_changes(10).await.expect("held");
        assert_eq!(held.len(), 1, "{which:?}: {held:?}");
        assert_eq!(held[0].reason, HoldReason::Protected);
        assert!(!dir.deletion_safety().await.expect("state").tripped);
        let n = dir
            .release_held(HeldSelection::Users(vec![admin.clone()]), "admin")
            .await
            .expect("confirm");
        assert_eq!(n, 1);
        let events = all_events(&dir).await;
        assert_eq!(count(&events, EventType::UserDeactivated), 2);
        dir.unprotect_user(&admin, "admin")
            .await
            .expect("unprotect");
        assert!(matches!(
            dir.unprotect_user(&admin, "admin").await,
            Err(StoreError::NotFound(_))
        ));
    }
}

/// A deleted user is gone from reads and its userName is free, but it is
/// restorable with the same id and its groups until the grace period ends;
/// then it is purged.
#[tokio::test]
async fn a_soft_deleted_user_is_restorable_until_purged() {
    for which in backends() {
        let (_db, store, dir) = directory(which).await;
        let ada = dir.create_user(user("ada")).await.expect("ada").id;
        let team = dir
            .create_group(group("Team"), vec![Member::new(ada.clone())])
            .await
            .expect("group")
            .id;
        dir.delete_user(&ada, None).await.expect("delete");
        assert!(matches!(
            dir.get_user(&ada).await,
            Err(StoreError::NotFound(_))
        ));
        let deleted = dir.deleted_users(10).await.expect("deleted");
        assert_eq!(deleted.len(), 1);
        assert_eq!(
            (deleted[0].id.as_str(), deleted[0].user_name.as_str()),
            (ada.as_str(), "ada")
        );
        let grace = deleted[0].purge_after - deleted[0].deleted_at;
        assert_eq!(grace, Duration::days(30), "the default grace period");
        let last = all_events(&dir).await;
        let gone = last
            .iter()
            .find(|e| e.event_type == EventType::UserDeleted)
            .expect("user.deleted");
        assert!(
            gone.payload.get("restorable_until").is_some(),
            "{}",
            gone.payload
        );

        // Its userName is free meanwhile: a restore then says who has it.
        let other = dir.create_user(user("ada")).await.expect("another ada").id;
        let refused = dir.restore_user(&ada, "admin").await;
        assert!(
            matches!(refused, Err(StoreError::Uniqueness(ref m)) if m.contains("ada")),
            "{refused:?}"
        );
        dir.delete_user(&other, None)
            .await
            .expect("delete the other");

        let back = dir.restore_user(&ada, "admin").await.expect("restore");
        assert_eq!(back.id, ada, "{which:?}: the same id");
        assert_eq!(back.document["userName"], "ada");
        let members = dir.group_members(&team).await.expect("members");
        assert!(members.iter().any(|m| m.value == ada), "back in its group");
        let events = all_events(&dir).await;
        assert_eq!(count(&events, EventType::UserRestored), 1);
        assert_eq!(
            dir.deleted_users(10).await.expect("deleted").len(),
            1,
            "only the other ada"
        );

        // After the grace period: purged, no longer restorable.
        dir.delete_user(&ada, None).await.expect("delete again");
        let purged = store
            .purge_deleted(Utc::now() + Duration::days(31), 100)
            .await
            .expect("purge");
        assert_eq!(purged, 2, "{which:?}: both adas");
        assert!(dir.deleted_users(10).await.expect("deleted").is_empty());
        assert!(matches!(
            dir.restore_user(&ada, "admin").await,
            Err(StoreError::NotFound(_))
        ));
        let events = all_events(&dir).await;
        assert_eq!(count(&events, EventType::UserPurged), 2);
        let purge = events
            .iter()
            .rfind(|e| e.event_type == EventType::UserPurged)
            .expect("purge");
        assert!(
            purge.payload.get("document").is_none(),
            "no data in a purge"
        );

        // Grace 0: deletions are final at once.
        dir.set_deletion_policy(
            DeletionPolicy {
                grace_days: 0,
                ..DeletionPolicy::default()
            },
            None,
            "admin",
        )
        .await
        .expect("policy");
        let bob = dir.create_user(user("bob")).await.expect("bob").id;
        dir.delete_user(&bob, None).await.expect("delete");
        assert!(dir.deleted_users(10).await.expect("deleted").is_empty());
        assert!(matches!(
            dir.restore_user(&bob, "admin").await,
            Err(StoreError::NotFound(_))
        ));
    }
}

/// An erasure leaves no trace of the person in any table: the live user,
/// its events' payloads, audit details and a soft-deleted record alike.
#[tokio::test]
async fn an_erasure_leaves_no_trace_in_any_table() {
    for which in backends() {
        let (db, _store, dir) = directory(which).await;
        let doc = json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": "zelda.quixote@erase.example",
            "name": {"givenName": "Zelda", "familyName": "Quixotic"},
            "emails": [{"value": "zq-home@erase.example", "type": "home"}]
        });
        let zelda = dir.create_user(doc).await.expect("zelda").id;
        dir.create_group(group("Readers"), vec![Member::new(zelda.clone())])
            .await
            .expect("group");
        dir.modify_user(&zelda, None, |c| {
            let mut d = c.document.clone();
            d["title"] = json!("Princess");
            Ok(d)
        })
        .await
        .expect("update");
        dir.protect_user(&zelda, "Zelda Quixotic is the owner", "admin")
            .await
            .expect("protect");
        let keep = dir
            .create_user(user("kept@erase.example"))
            .await
            .expect("kept")
            .id;
        let needles = ["zelda.quixote", "Zelda", "Quixotic", "zq-home"];
        assert!(
            !db.find_text(&needles).await.is_empty(),
            "{which:?}: the scan finds the data before"
        );
        let rows = dir.erase_user(&zelda, "operator").await.expect("erase");
        assert_eq!(rows["users"], 1, "{rows}");
        let found = db.find_text(&needles).await;
        assert!(found.is_empty(), "{which:?}: left behind: {found:?}");
        assert!(matches!(
            dir.get_user(&zelda).await,
            Err(StoreError::NotFound(_))
        ));
        assert!(dir.get_user(&keep).await.is_ok(), "others stay");
        let events = all_events(&dir).await;
        assert_eq!(count(&events, EventType::UserPurged), 1);
        let audit = dir
            .audit_log(&store::AuditQuery::default())
            .await
            .expect("audit");
        assert!(
            audit
                .iter()
                .any(|a| a.action == "user.erase" && a.target == zelda),
            "{audit:?}"
        );

        // A soft-deleted user is erased as well.
        let yann = dir
            .create_user(json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": "yann.erasable@erase.example"
            }))
            .await
            .expect("yann")
            .id;
        dir.delete_user(&yann, None).await.expect("delete");
        assert!(!db.find_text(&["yann.erasable"]).await.is_empty());
        dir.erase_user(&yann, "operator")
            .await
            .expect("erase the deleted");
        assert_eq!(
            db.find_text(&["yann.erasable"]).await,
            Vec::<String>::new(),
            "{which:?}"
        );
        assert!(matches!(
            dir.erase_user(&yann, "operator").await,
            Err(StoreError::NotFound(_))
        ));
    }
}

/// Each child of a super tenant screens its own copies: a super tenant's
/// deletion reaches a child's application only when the child lets it.
#[tokio::test]
async fn a_childs_protected_copy_waits_when_its_super_tenant_deletes() {
    use store::TenantKind;
    use store::fanout::OnUnroute;
    use store::routing::RuleSpec;
    for which in backends() {
        let (_db, store) = store(which).await;
        let admin = store.admin();
        let msp = tenant(&store, "msp").await;
        let msp = admin
            .set_tenant_kind(msp.id(), TenantKind::Super, "op")
            .await
            .expect("super");
        let acme = tenant(&store, "acme").await;
        admin
            .link_child(msp.id(), acme.id(), OnUnroute::Delete, "op")
            .await
            .expect("link");
        admin
            .set_routing_policy(
                msp.id(),
                vec![RuleSpec {
                    id: "all".into(),
                    child: "acme".into(),
                    group: None,
                    filter: Some("userName ew \"@acme.example\"".into()),
                }],
                Some(0),
                "op",
            )
            .await
            .expect("rules");
        let (msp, acme) = (store.tenant(&msp), store.tenant(&acme));
        let ann = msp
            .create_user(user("ann@acme.example"))
            .await
            .expect("ann")
            .id;
        let copies = acme
            .list_users(&store::ListQuery {
                filter: None,
                sort_by: None,
                descending: false,
                start_index: 1,
                count: 10,
                with_members: false,
                user_extras: Default::default(),
            })
            .await
            .expect("copies")
            .resources;
        assert_eq!(copies.len(), 1, "{which:?}");
        let copy = copies[0].id.clone();
        acme.protect_user(&copy, "the owner", "admin")
            .await
            .expect("protect");

        msp.delete_user(&ann, None).await.expect("delete");
        assert_eq!(count(&all_events(&msp).await, EventType::UserDeleted), 1);
        assert_eq!(
            count(&all_events(&acme).await, EventType::UserDeleted),
            0,
            "{which:?}: the child's deletion is held"
        );
        let held = acme.held_changes(10).await.expect("held");
        assert_eq!((held.len(), held[0].user_id.as_str()), (1, copy.as_str()));
        assert!(msp.held_changes(10).await.expect("held").is_empty());
        acme.release_held(HeldSelection::All, "admin")
            .await
            .expect("release");
        assert_eq!(count(&all_events(&acme).await, EventType::UserDeleted), 1);
    }
}

/// Once the threshold has tripped, deletions running at once are each
/// held (they share the tenant's row instead of queueing for it), none is
/// lost or let through, and a release afterwards delivers every one.
#[tokio::test]
async fn concurrent_deletions_after_a_trip_are_all_held() {
    for which in backends() {
        let (_db, _store, dir) = directory(which).await;
        let policy = DeletionPolicy {
            max_deletions: Some(2),
            ..DeletionPolicy::default()
        };
        dir.set_deletion_policy(policy, Some(0), "admin")
            .await
            .expect("policy");
        let mut ids = Vec::new();
        for i in 0..24 {
            ids.push(
                dir.create_user(user(&format!("c{i:02}")))
                    .await
                    .expect("user")
                    .id,
            );
        }
        // Two pass, the third trips the threshold.
        for id in &ids[..3] {
            dir.delete_user(id, None).await.expect("delete");
        }
        let tasks: Vec<_> = ids[3..]
            .iter()
            .map(|id| {
                let (dir, id) = (dir.clone(), id.clone());
                tokio::spawn(async move { dir.delete_user(&id, None).await })
            })
            .collect();
        for t in tasks {
            t.await.expect("join").expect("the IdP's delete succeeds");
        }
        let events = all_events(&dir).await;
        assert_eq!(count(&events, EventType::UserDeleted), 2, "{which:?}");
        let held = dir.held_changes(1000).await.expect("held");
        let mut held_users: Vec<String> = held.iter().map(|h| h.user_id.clone()).collect();
        held_users.sort();
        held_users.dedup();
        let mut expected: Vec<String> = ids[2..].to_vec();
        expected.sort();
        assert_eq!(held_users, expected, "{which:?}: every later deletion held");
        assert!(
            held.iter().all(|h| h.reason == HoldReason::Threshold),
            "{which:?}"
        );
        dir.release_held(HeldSelection::All, "admin")
            .await
            .expect("release");
        let events = all_events(&dir).await;
        assert_eq!(count(&events, EventType::UserDeleted), 24, "{which:?}");
    }
}
