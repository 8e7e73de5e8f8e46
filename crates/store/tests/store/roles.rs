//! Role policies, role-locks and their scoping to one tenant.

use roles::{Effective, EffectiveRole, GroupMatch, Mapping, Mode, Policy, Reason, Role};
use scim::patch::{Member, MemberChange};
use serde_json::json;
use store::StoreError;
use testkit::backends;

use crate::common::*;

fn role(name: &str) -> Role {
    Role {
        name: name.into(),
        description: format!("the {name} role"),
    }
}

fn mapping(group: GroupMatch, role: &str, priority: i32) -> Mapping {
    Mapping {
        group,
        role: role.into(),
        priority,
    }
}

/// admin / editor / viewer, viewer by default, three mappings.
pub fn policy() -> Policy {
    Policy {
        roles: vec![role("viewer"), role("admin"), role("editor")],
        default_role: Some("viewer".into()),
        mappings: vec![
            mapping(GroupMatch::DisplayName("Admins".into()), "admin", 10),
            mapping(GroupMatch::ExternalId("ext-ed".into()), "editor", 5),
            mapping(GroupMatch::Id("g-1".into()), "editor", 1),
        ],
        mode: Mode::Single,
    }
}

#[tokio::test]
async fn policy_round_trip_and_versions() {
    for which in backends() {
        let (_db, _store, dir) = directory(which).await;
        let empty = dir.role_policy().await.unwrap();
        assert_eq!(empty.version, 0, "{which:?}");
        assert!(empty.policy.roles.is_empty());
        assert!(empty.policy.mappings.is_empty());
        assert_eq!(empty.policy.default_role, None);
        assert_eq!(empty.policy.mode, Mode::Single);
        assert!(empty.mapping_ids.is_empty());

        let stored = dir
            .set_role_policy(policy(), Some(0), "test")
            .await
            .unwrap()
            .stored;
        assert_eq!(stored.version, 1);
        assert_eq!(stored.policy, policy());
        assert_eq!(stored.mapping_ids.len(), 3);
        let read = dir.role_policy().await.unwrap();
        assert_eq!(read, stored, "{which:?}: read back as stored, in order");

        let e = dir
            .set_role_policy(policy(), Some(0), "test")
            .await
            .unwrap_err();
        assert!(
            matches!(e, StoreError::PreconditionFailed { current: 1 }),
            "{which:?} {e:?}"
        );

        // Unchanged mappings keep their ids; a new one gets a new id.
        let mut next = policy();
        next.mode = Mode::Multi;
        next.default_role = None;
        next.mappings.remove(1);
        next.mappings.push(mapping(
            GroupMatch::DisplayName("Staff".into()),
            "viewer",
            0,
        ));
        let second = dir
            .set_role_policy(next.clone(), None, "test")
            .await
            .unwrap()
            .stored;
        assert_eq!(second.version, 2);
        assert_eq!(second.mapping_ids[0], stored.mapping_ids[0]);
        assert_eq!(second.mapping_ids[1], stored.mapping_ids[2]);
        assert!(!stored.mapping_ids.contains(&second.mapping_ids[2]));
        let read = dir.role_policy().await.unwrap();
        assert_eq!(read.policy, next);
        assert_eq!(read, second);

        // Back to nothing at all.
        let cleared = Policy {
            roles: vec![],
            default_role: None,
            mappings: vec![],
            mode: Mode::Single,
        };
        let third = dir
            .set_role_policy(cleared.clone(), Some(2), "test")
            .await
            .unwrap()
            .stored;
        assert_eq!(third.version, 3);
        assert_eq!(dir.role_policy().await.unwrap().policy, cleared);
    }
}

#[tokio::test]
async fn an_invalid_policy_changes_nothing() {
    for which in backends() {
        let (_db, _store, dir) = directory(which).await;
        let stored = dir
            .set_role_policy(policy(), None, "test")
            .await
            .unwrap()
            .stored;

        let mut bad = policy();
        bad.default_role = Some("root".into());
        let e = dir.set_role_policy(bad, Some(1), "test").await.unwrap_err();
        match e {
            StoreError::InvalidValue(m) => assert!(m.contains("defaultRole"), "{m}"),
            other => panic!("{which:?}: {other:?}"),
        }
        let mut bad = policy();
        bad.mappings[2].role = "nobody".into();
        let e = dir.set_role_policy(bad, None, "test").await.unwrap_err();
        match e {
            StoreError::InvalidValue(m) => assert!(m.contains("mappings[2]"), "{m}"),
            other => panic!("{which:?}: {other:?}"),
        }
        let mut bad = policy();
        bad.roles.push(role("admin"));
        assert!(matches!(
            dir.set_role_policy(bad, None, "test").await,
            Err(StoreError::InvalidValue(_))
        ));
        assert_eq!(dir.role_policy().await.unwrap(), stored, "{which:?}");
    }
}

#[tokio::test]
async fn policies_and_locks_are_scoped_to_their_tenant() {
    for which in backends() {
        let (_db, store) = store(which).await;
        let a = store.tenant(&tenant(&store, "a").await);
        let b = store.tenant(&tenant(&store, "b").await);
        let u = a.create_user(user("bjensen")).await.unwrap();
        a.set_role_policy(policy(), None, "test").await.unwrap();
        a.lock_user(&u.id, vec!["admin".into()], "vip", "ops")
            .await
            .unwrap();

        assert_eq!(b.role_policy().await.unwrap().version, 0, "{which:?}");
        assert!(b.locks().await.unwrap().is_empty());
        assert!(
            b.effective_roles(std::slice::from_ref(&u.id))
                .await
                .unwrap()
                .is_empty()
        );
        b.set_role_policy(policy(), None, "test").await.unwrap();
        let e = b
            .lock_user(&u.id, vec!["admin".into()], "mine", "ops")
            .await
            .unwrap_err();
        assert!(matches!(e, StoreError::NotFound(_)), "{which:?} {e:?}");
        let e = b.unlock_user(&u.id, "test").await.unwrap_err();
        assert!(matches!(e, StoreError::NotFound(_)), "{which:?} {e:?}");

        // B's writes left A's policy and lock alone.
        let mut other = policy();
        other.mode = Mode::Multi;
        b.set_role_policy(other, Some(1), "test").await.unwrap();
        let pa = a.role_policy().await.unwrap();
        assert_eq!((pa.version, pa.policy), (1, policy()));
        let locks = a.locks().await.unwrap();
        assert_eq!(locks.len(), 1);
        assert_eq!(locks[0].user_id, u.id);
    }
}

#[tokio::test]
async fn lock_unlock_and_list() {
    for which in backends() {
        let (_db, _store, dir) = directory(which).await;
        let u1 = dir.create_user(user("alice")).await.unwrap();
        let u2 = dir.create_user(user("bob")).await.unwrap();
        dir.set_role_policy(policy(), None, "test").await.unwrap();

        let info = dir
            .lock_user(
                &u1.id,
                vec!["viewer".into(), "admin".into(), "admin".into()],
                "break-glass",
                "ops@example.com",
            )
            .await
            .unwrap();
        assert_eq!(info.user_id, u1.id);
        assert_eq!(info.roles, ["admin", "viewer"], "{which:?}");
        assert_eq!(info.reason, "break-glass");
        assert_eq!(info.locked_by, "ops@example.com");
        // A lock with no roles pins the user to none.
        dir.lock_user(&u2.id, vec![], "offboarding", "hr")
            .await
            .unwrap();

        let mut expected = [u1.id.clone(), u2.id.clone()];
        expected.sort();
        let locks = dir.locks().await.unwrap();
        let ids: Vec<&String> = locks.iter().map(|l| &l.user_id).collect();
        assert_eq!(ids, expected.iter().collect::<Vec<_>>(), "{which:?}");
        let first = locks.iter().find(|l| l.user_id == u1.id).unwrap();
        assert_eq!(first, &info, "{which:?}: read back as written");

        // Refusals change nothing.
        for reason in ["", "   "] {
            let e = dir
                .lock_user(&u1.id, vec!["admin".into()], reason, "ops")
                .await
                .unwrap_err();
            assert!(matches!(e, StoreError::InvalidValue(_)), "{e:?}");
        }
        let e = dir
            .lock_user(&u1.id, vec!["root".into()], "typo", "ops")
            .await
            .unwrap_err();
        assert!(matches!(e, StoreError::InvalidValue(_)), "{e:?}");
        let e = dir
            .lock_user("no-such-user", vec!["admin".into()], "x", "ops")
            .await
            .unwrap_err();
        assert!(matches!(e, StoreError::NotFound(_)), "{e:?}");
        assert_eq!(dir.locks().await.unwrap(), locks);

        // Locking again replaces the lock.
        let again = dir
            .lock_user(&u1.id, vec!["editor".into()], "project", "lead")
            .await
            .unwrap();
        let locks = dir.locks().await.unwrap();
        assert_eq!(locks.len(), 2);
        assert!(locks.contains(&again));

        dir.unlock_user(&u1.id, "test").await.unwrap();
        let locks = dir.locks().await.unwrap();
        assert_eq!(locks.len(), 1);
        assert_eq!(locks[0].user_id, u2.id);
        let e = dir.unlock_user(&u1.id, "test").await.unwrap_err();
        assert!(matches!(e, StoreError::NotFound(_)), "{which:?} {e:?}");
    }
}

#[tokio::test]
async fn locks_and_policy_go_with_their_user_and_tenant() {
    for which in backends() {
        let (_db, store) = store(which).await;
        let t = tenant(&store, "gone").await;
        let dir = store.tenant(&t);
        let u1 = dir.create_user(user("alice")).await.unwrap();
        let u2 = dir.create_user(user("bob")).await.unwrap();
        dir.set_role_policy(policy(), None, "test").await.unwrap();
        for u in [&u1, &u2] {
            dir.lock_user(&u.id, vec!["admin".into()], "vip", "ops")
                .await
                .unwrap();
        }

        dir.delete_user(&u1.id, None).await.unwrap();
        let locks = dir.locks().await.unwrap();
        assert_eq!(locks.len(), 1, "{which:?}");
        assert_eq!(locks[0].user_id, u2.id);
        assert!(
            dir.effective_roles(std::slice::from_ref(&u1.id))
                .await
                .unwrap()
                .is_empty()
        );

        store.admin().delete_tenant(t.id(), "test").await.unwrap();
        assert!(dir.locks().await.unwrap().is_empty(), "{which:?}");
        assert_eq!(dir.role_policy().await.unwrap().version, 0);
        assert!(
            dir.effective_roles(std::slice::from_ref(&u2.id))
                .await
                .unwrap()
                .is_empty()
        );
        // The slug is free again, and its new tenant starts empty.
        let fresh = store.tenant(&tenant(&store, "gone").await);
        assert_eq!(fresh.role_policy().await.unwrap().version, 0);
    }
}

/// The `user.roles_changed` events after position `after_id`, and the last position.
async fn role_events(dir: &store::TenantStore, after_id: i64) -> (Vec<serde_json::Value>, i64) {
    let all = dir.events_after(after_id, 1000).await.unwrap();
    let last = all.last().map_or(after_id, |e| e.position);
    let changes = all
        .into_iter()
        .filter(|e| e.event_type.as_str() == "user.roles_changed")
        .map(|e| {
            assert_eq!(e.event_type.resource_kind(), store::ResourceKind::User);
            json!({"user": e.resource_id, "payload": e.payload})
        })
        .collect();
    (changes, last)
}

fn effective(roles: &[(&str, Reason)], disabled: bool) -> Effective {
    Effective {
        roles: roles
            .iter()
            .map(|(role, reason)| EffectiveRole {
                role: (*role).into(),
                reason: reason.clone(),
            })
            .collect(),
        disabled,
        // As evaluation marks them: a lock's roles all have reason Locked.
        locked: roles.iter().any(|(_, reason)| *reason == Reason::Locked),
    }
}

fn set_active(active: bool) -> impl Fn(&store::Resource) -> Result<serde_json::Value, scim::Error> {
    move |c| {
        let mut d = c.document.clone();
        d["active"] = json!(active);
        Ok(d)
    }
}

#[tokio::test]
async fn derived_roles_follow_groups_activity_and_locks() {
    for which in backends() {
        let (_db, _store, dir) = directory(which).await;
        dir.set_role_policy(policy(), None, "test").await.unwrap();
        let current = |id: String| {
            let dir = dir.clone();
            async move {
                dir.effective_roles(std::slice::from_ref(&id))
                    .await
                    .unwrap()
                    .remove(&id)
                    .unwrap()
            }
        };
        let viewer = effective(&[("viewer", Reason::Default)], false);

        // A new user gets the default role, and an event with no "before".
        let u = dir.create_user(user("bjensen")).await.unwrap();
        assert_eq!(current(u.id.clone()).await, viewer, "{which:?}");
        let (ev, last) = role_events(&dir, 0).await;
        assert_eq!(
            ev,
            [json!({"user": u.id, "payload": {"before": null, "after": viewer}})]
        );

        // Joining the mapped group makes them admin.
        let g = dir
            .create_group(group("Admins"), vec![Member::new(u.id.clone())])
            .await
            .unwrap();
        let mapped = Reason::Mapping {
            group_id: g.id.clone(),
            group_display_name: "Admins".into(),
        };
        let admin = effective(&[("admin", mapped.clone())], false);
        assert_eq!(current(u.id.clone()).await, admin, "{which:?}");
        assert_eq!(admin.roles[0].reason.to_string(), "mapping: Admins");
        let (ev, last) = role_events(&dir, last).await;
        assert_eq!(
            ev,
            [json!({"user": u.id, "payload": {"before": viewer, "after": admin}})]
        );

        // Leaving it falls back to the default role.
        let uid = u.id.clone();
        dir.modify_group(&g.id, None, move |c| {
            Ok((
                c.document.clone(),
                vec![MemberChange::Remove(vec![uid.clone()])],
            ))
        })
        .await
        .unwrap();
        assert_eq!(current(u.id.clone()).await, viewer, "{which:?}");
        let (ev, last) = role_events(&dir, last).await;
        assert_eq!(
            ev,
            [json!({"user": u.id, "payload": {"before": admin, "after": viewer}})]
        );
        let uid = u.id.clone();
        dir.modify_group(&g.id, None, move |c| {
            Ok((
                c.document.clone(),
                vec![MemberChange::Add(vec![Member::new(uid.clone())])],
            ))
        })
        .await
        .unwrap();
        assert_eq!(current(u.id.clone()).await, admin);
        let (_, last) = role_events(&dir, last).await;

        // Deactivation marks the user disabled and keeps the roles.
        dir.modify_user(&u.id, None, set_active(false))
            .await
            .unwrap();
        let disabled = effective(&[("admin", mapped.clone())], true);
        assert_eq!(current(u.id.clone()).await, disabled, "{which:?}");
        let (ev, last) = role_events(&dir, last).await;
        assert_eq!(
            ev,
            [json!({"user": u.id, "payload": {"before": admin, "after": disabled}})]
        );
        dir.modify_user(&u.id, None, set_active(true))
            .await
            .unwrap();
        assert_eq!(current(u.id.clone()).await, admin);
        let (ev, last) = role_events(&dir, last).await;
        assert_eq!(ev.len(), 1);

        // Locked as admin: the same roles, so no event, but the reason is
        // now the lock.
        dir.lock_user(&u.id, vec!["admin".into()], "break-glass", "ops")
            .await
            .unwrap();
        let locked = effective(&[("admin", Reason::Locked)], false);
        assert_eq!(current(u.id.clone()).await, locked, "{which:?}");
        let (ev, last) = role_events(&dir, last).await;
        assert!(ev.is_empty(), "{which:?}: {ev:?}");

        // The lock holds through a group change...
        let uid = u.id.clone();
        dir.modify_group(&g.id, None, move |c| {
            Ok((
                c.document.clone(),
                vec![MemberChange::Remove(vec![uid.clone()])],
            ))
        })
        .await
        .unwrap();
        assert_eq!(current(u.id.clone()).await, locked);
        // ...and a policy change that drops the admin role, then a write.
        let mut next = policy();
        next.roles.retain(|r| r.name != "admin");
        next.mappings.retain(|m| m.role != "admin");
        dir.set_role_policy(next, None, "test").await.unwrap();
        dir.modify_user(&u.id, None, set_active(false))
            .await
            .unwrap();
        let locked_off = effective(&[("admin", Reason::Locked)], true);
        assert_eq!(current(u.id.clone()).await, locked_off, "{which:?}");
        dir.modify_user(&u.id, None, set_active(true))
            .await
            .unwrap();
        let (ev, last) = role_events(&dir, last).await;
        assert_eq!(ev.len(), 2, "only the two activity changes: {ev:?}");

        // Unlocked: the roles derived from the new policy.
        dir.unlock_user(&u.id, "test").await.unwrap();
        assert_eq!(current(u.id.clone()).await, viewer, "{which:?}");
        let (ev, _) = role_events(&dir, last).await;
        assert_eq!(
            ev,
            [json!({"user": u.id, "payload": {"before": locked, "after": viewer}})]
        );
    }
}

#[tokio::test]
async fn group_renames_and_deletes_rederive_their_members() {
    for which in backends() {
        let (_db, _store, dir) = directory(which).await;
        dir.set_role_policy(policy(), None, "test").await.unwrap();
        let u1 = dir.create_user(user("alice")).await.unwrap();
        let u2 = dir.create_user(user("bob")).await.unwrap();
        let members = vec![Member::new(u1.id.clone()), Member::new(u2.id.clone())];
        let g = dir
            .create_group(group("Staff"), members.clone())
            .await
            .unwrap();
        let roles_of = |ids: Vec<String>| {
            let dir = dir.clone();
            async move {
                let map = dir.effective_roles(&ids).await.unwrap();
                ids.iter()
                    .map(|id| map[id].role_names().join(","))
                    .collect::<Vec<_>>()
            }
        };
        let both = vec![u1.id.clone(), u2.id.clone()];
        assert_eq!(roles_of(both.clone()).await, ["viewer", "viewer"]);
        let (_, last) = role_events(&dir, 0).await;

        // Renamed to a mapped name (case does not matter): both are admin.
        dir.replace_group(&g.id, group("ADMINS"), members.clone(), None)
            .await
            .unwrap();
        assert_eq!(
            roles_of(both.clone()).await,
            ["admin", "admin"],
            "{which:?}"
        );
        let (ev, last) = role_events(&dir, last).await;
        assert_eq!(ev.len(), 2);

        // A case-only rename changes the reason, not the roles: no event.
        dir.replace_group(&g.id, group("Admins"), members, None)
            .await
            .unwrap();
        let map = dir.effective_roles(&both).await.unwrap();
        assert_eq!(map[&u1.id].roles[0].reason.to_string(), "mapping: Admins");
        let (ev, last) = role_events(&dir, last).await;
        assert!(ev.is_empty(), "{which:?}: {ev:?}");

        // Deleting the group takes the role away.
        dir.delete_group(&g.id, None).await.unwrap();
        assert_eq!(roles_of(both).await, ["viewer", "viewer"], "{which:?}");
        let (ev, _) = role_events(&dir, last).await;
        assert_eq!(ev.len(), 2);
    }
}

#[tokio::test]
async fn writes_that_change_no_roles_write_no_role_event() {
    for which in backends() {
        let (_db, _store, dir) = directory(which).await;
        dir.set_role_policy(policy(), None, "test").await.unwrap();
        let u = dir.create_user(user("bjensen")).await.unwrap();
        let (_, last) = role_events(&dir, 0).await;

        let g = dir
            .create_group(group("Readers"), vec![Member::new(u.id.clone())])
            .await
            .unwrap();
        dir.modify_user(&u.id, None, |c| {
            let mut d = c.document.clone();
            d["title"] = json!("Guide");
            Ok(d)
        })
        .await
        .unwrap();
        let mut doc = group("Readers");
        doc["externalId"] = json!("ext-other");
        dir.replace_group(&g.id, doc, vec![Member::new(u.id.clone())], None)
            .await
            .unwrap();
        dir.set_role_policy(policy(), None, "test").await.unwrap();
        let (ev, _) = role_events(&dir, last).await;
        assert!(ev.is_empty(), "{which:?}: {ev:?}");
        let map = dir
            .effective_roles(std::slice::from_ref(&u.id))
            .await
            .unwrap();
        assert_eq!(map[&u.id].role_names(), ["viewer"]);
    }
}

#[tokio::test]
async fn a_policy_changed_elsewhere_applies_to_the_next_write() {
    for which in backends() {
        let (db, store) = store(which).await;
        let t = tenant(&store, "acme").await;
        let dir = store.tenant(&t);
        dir.set_role_policy(policy(), None, "test").await.unwrap();
        let u1 = dir.create_user(user("alice")).await.unwrap();
        // Inactive from the start: disabled, with the default role.
        let mut doc = user("bob");
        doc["active"] = json!(false);
        let u2 = dir.create_user(doc).await.unwrap();

        // Another process (its own pool and cache) changes the policy.
        let other = store::Store::connect(&db.url, store::StoreOptions::default())
            .await
            .unwrap();
        let mut next = policy();
        next.default_role = Some("editor".into());
        other
            .tenant(&t)
            .set_role_policy(next, Some(1), "test")
            .await
            .unwrap();

        let u3 = dir.create_user(user("carol")).await.unwrap();
        let ids = [u1.id.clone(), u2.id.clone(), u3.id.clone()];
        let map = dir.effective_roles(&ids).await.unwrap();
        // Not recomputed by the policy change itself...
        assert_eq!(map[&u1.id].role_names(), ["viewer"], "{which:?}");
        assert_eq!(map[&u2.id].role_names(), ["viewer"]);
        assert!(map[&u2.id].disabled);
        // ...but every write after it uses it.
        assert_eq!(map[&u3.id].role_names(), ["editor"], "{which:?}");
        dir.lock_user(&u1.id, vec![], "none", "ops").await.unwrap();
        dir.unlock_user(&u1.id, "test").await.unwrap();
        let map = dir.effective_roles(&ids).await.unwrap();
        assert_eq!(map[&u1.id].role_names(), ["editor"], "{which:?}");

        // The recompute job the change queued brings the rest in line.
        let job = store.run_next_role_job().await.unwrap().unwrap();
        assert_eq!(job.status, store::JobStatus::Done, "{which:?}");
        let map = dir.effective_roles(&ids).await.unwrap();
        assert_eq!(map[&u2.id].role_names(), ["editor"], "{which:?}");
        assert!(map[&u2.id].disabled);

        // A replace reads the user's row under lock and, on PostgreSQL, the
        // policy's stamp in the same statement: a change made elsewhere
        // meanwhile still applies, and so does the cached policy after it.
        let mut back = policy();
        back.default_role = Some("viewer".into());
        other
            .tenant(&t)
            .set_role_policy(back, Some(2), "test")
            .await
            .unwrap();
        for name in ["bob", "bobby"] {
            let mut doc = user(name);
            doc["active"] = json!(true);
            dir.replace_user(&u2.id, doc, None).await.unwrap();
            let map = dir.effective_roles(&ids).await.unwrap();
            assert_eq!(map[&u2.id].role_names(), ["viewer"], "{which:?} {name}");
            assert!(!map[&u2.id].disabled, "{which:?} {name}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_joins_of_one_user_all_count() {
    const N: usize = 8;
    for which in backends() {
        let (_db, _store, dir) = directory(which).await;
        let names: Vec<String> = (0..N).map(|i| format!("role-{i}")).collect();
        let multi = Policy {
            roles: names.iter().map(|n| role(n)).collect(),
            default_role: None,
            mappings: names
                .iter()
                .map(|n| mapping(GroupMatch::DisplayName(format!("group {n}")), n, 0))
                .collect(),
            mode: Mode::Multi,
        };
        dir.set_role_policy(multi, None, "test").await.unwrap();
        let u = dir.create_user(user("bjensen")).await.unwrap();
        let mut tasks = tokio::task::JoinSet::new();
        for n in &names {
            let (dir, id, n) = (dir.clone(), u.id.clone(), n.clone());
            tasks.spawn(async move {
                dir.create_group(group(&format!("group {n}")), vec![Member::new(id)])
                    .await
            });
        }
        while let Some(r) = tasks.join_next().await {
            r.unwrap().unwrap();
        }
        let map = dir
            .effective_roles(std::slice::from_ref(&u.id))
            .await
            .unwrap();
        assert_eq!(map[&u.id].role_names(), names, "{which:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_locks_of_one_user_all_succeed() {
    const N: usize = 8;
    for which in backends() {
        let (_db, _store, dir) = directory(which).await;
        dir.set_role_policy(policy(), None, "test").await.unwrap();
        let u = dir.create_user(user("bjensen")).await.unwrap();
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..N {
            let (dir, id) = (dir.clone(), u.id.clone());
            let role = ["admin", "editor"][i % 2];
            tasks.spawn(async move { dir.lock_user(&id, vec![role.into()], "race", "ops").await });
        }
        while let Some(r) = tasks.join_next().await {
            r.unwrap().unwrap();
        }
        // Whichever lock landed last is what the user has.
        let locks = dir.locks().await.unwrap();
        assert_eq!(locks.len(), 1);
        let map = dir
            .effective_roles(std::slice::from_ref(&u.id))
            .await
            .unwrap();
        assert_eq!(map[&u.id].role_names(), locks[0].roles, "{which:?}");
    }
}
