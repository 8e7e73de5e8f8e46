//! Groups, members as deltas, cascades.

use scim::patch::{Member, MemberChange};
use serde_json::json;
use store::StoreError;
use testkit::backends;

use crate::common::*;

fn ids(members: &[Member]) -> Vec<String> {
    let mut v: Vec<String> = members.iter().map(|m| m.value.clone()).collect();
    v.sort();
    v
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[tokio::test]
async fn create_with_members_and_read_back() {
    for which in backends() {
        let (_db, _store, dir) = directory(which).await;
        let u1 = dir.create_user(user("u1")).await.unwrap();
        let u2 = dir.create_user(user("u2")).await.unwrap();
        let inner = dir.create_group(group("Inner"), vec![]).await.unwrap();
        let g = dir
            .create_group(
                group("Staff"),
                vec![
                    Member {
                        display: Some("User One".into()),
                        ..Member::new(u1.id.clone())
                    },
                    Member::new(u2.id.clone()),
                    Member::new(u1.id.clone()),
                    Member::new(inner.id.clone()),
                ],
            )
            .await
            .unwrap();
        assert_eq!(g.version, 1);
        let members = g.members.clone().unwrap();
        assert_eq!(members.len(), 3, "{which:?}: duplicates collapse");
        let one = members.iter().find(|m| m.value == u1.id).unwrap();
        assert_eq!(one.r#type.as_deref(), Some("User"));
        assert_eq!(one.display.as_deref(), Some("User One"));
        let grp = members.iter().find(|m| m.value == inner.id).unwrap();
        assert_eq!(grp.r#type.as_deref(), Some("Group"));

        let got = dir.get_group(&g.id, true).await.unwrap();
        assert_eq!(got, g);
        let bare = dir.get_group(&g.id, false).await.unwrap();
        assert!(bare.members.is_none());
        assert_eq!(bare.document, group("Staff"));
        assert_eq!(ids(&dir.group_members(&g.id).await.unwrap()), ids(&members));

        let groups = dir
            .user_groups(&[u1.id.clone(), u2.id.clone(), "nobody".into()])
            .await
            .unwrap();
        assert_eq!(groups[&u1.id].len(), 1);
        assert_eq!(groups[&u1.id][0].id, g.id);
        assert_eq!(groups[&u1.id][0].display, "Staff");
        assert!(groups["nobody"].is_empty());
        let inner_groups = dir
            .user_groups(std::slice::from_ref(&inner.id))
            .await
            .unwrap();
        assert_eq!(inner_groups[&inner.id][0].id, g.id);

        assert!(matches!(
            dir.get_group("missing", true).await,
            Err(StoreError::NotFound(_))
        ));
        assert!(matches!(
            dir.group_members("missing").await,
            Err(StoreError::NotFound(_))
        ));
    }
}

/// Members come back from the database as one JSON array per group: every
/// display survives the trip (quotes, backslashes, control characters,
/// non-ASCII, none at all), in member-id order, for one group and for a
/// page of groups, an empty group included.
#[tokio::test]
async fn members_read_back_in_order_whatever_their_display() {
    for which in backends() {
        let (_db, _store, dir) = directory(which).await;
        let displays = [
            Some("Quote \" and back\\slash"),
            Some("tab\tnew\nline \u{1}"),
            Some("Zoë Åström 山田"),
            None,
        ];
        let mut added = Vec::new();
        for (i, display) in displays.iter().enumerate() {
            let u = dir.create_user(user(&format!("m{i}"))).await.unwrap();
            added.push(Member {
                display: display.map(str::to_owned),
                ..Member::new(u.id.clone())
            });
        }
        let g = dir
            .create_group(group("Displays"), added.clone())
            .await
            .unwrap();
        let empty = dir.create_group(group("Empty"), vec![]).await.unwrap();

        let members = dir.group_members(&g.id).await.unwrap();
        let mut expected = added.clone();
        expected.sort_by(|a, b| a.value.cmp(&b.value));
        assert_eq!(ids(&members), ids(&expected), "{which:?}");
        let in_order: Vec<&str> = members.iter().map(|m| m.value.as_str()).collect();
        let sorted_ids: Vec<&str> = expected.iter().map(|m| m.value.as_str()).collect();
        assert_eq!(in_order, sorted_ids, "{which:?}: member-id order");
        for m in &members {
            let sent = added.iter().find(|a| a.value == m.value).unwrap();
            assert_eq!(m.display, sent.display, "{which:?}");
            assert_eq!(m.r#type.as_deref(), Some("User"), "{which:?}");
        }

        let page = dir
            .list_groups(&store::ListQuery {
                filter: None,
                sort_by: None,
                descending: false,
                start_index: 1,
                count: 10,
                with_members: true,
                user_extras: Default::default(),
            })
            .await
            .unwrap();
        let listed = |id: &str| {
            page.resources
                .iter()
                .find(|r| r.id == id)
                .and_then(|r| r.members.clone())
        };
        assert_eq!(listed(&g.id), Some(members.clone()), "{which:?}");
        assert_eq!(listed(&empty.id), Some(vec![]), "{which:?}");
    }
}

#[tokio::test]
async fn unknown_members_and_names_are_refused_atomically() {
    for which in backends() {
        let (_db, _store, dir) = directory(which).await;
        let u = dir.create_user(user("u")).await.unwrap();
        let e = dir
            .create_group(
                group("G"),
                vec![Member::new(u.id.clone()), Member::new("ghost")],
            )
            .await
            .unwrap_err();
        assert!(matches!(e, StoreError::InvalidValue(_)), "{which:?} {e:?}");
        // Nothing of the failed create remains: the name is free.
        let g = dir.create_group(group("G"), vec![]).await.unwrap();
        let e = dir.create_group(group("g"), vec![]).await.unwrap_err();
        assert!(matches!(e, StoreError::Uniqueness(_)), "{e:?}");

        let e = dir
            .modify_group(&g.id, None, move |cur| {
                Ok((
                    cur.document.clone(),
                    vec![MemberChange::Add(vec![Member::new(cur.id.clone())])],
                ))
            })
            .await
            .unwrap_err();
        assert!(
            matches!(e, StoreError::InvalidValue(_)),
            "self-membership: {e:?}"
        );

        let e = dir
            .modify_group(&g.id, None, move |cur| {
                let mut d = cur.document.clone();
                d["externalId"] = json!("changed");
                Ok((
                    d,
                    vec![
                        MemberChange::Add(vec![Member::new(u.id.clone())]),
                        MemberChange::Add(vec![Member::new("ghost")]),
                    ],
                ))
            })
            .await
            .unwrap_err();
        assert!(matches!(e, StoreError::InvalidValue(_)));
        let after = dir.get_group(&g.id, true).await.unwrap();
        assert_eq!(
            after.version, 1,
            "{which:?}: a failed PATCH changes nothing"
        );
        assert!(after.members.unwrap().is_empty());
        assert!(after.document.get("externalId").is_none());
    }
}

#[tokio::test]
async fn member_deltas() {
    for which in backends() {
        let (_db, _store, dir) = directory(which).await;
        let mut users = Vec::new();
        for i in 0..5 {
            users.push(dir.create_user(user(&format!("u{i}"))).await.unwrap().id);
        }
        let g = dir
            .create_group(group("G"), vec![Member::new(users[0].clone())])
            .await
            .unwrap();

        // Add two (one already present).
        let us = users.clone();
        let r = dir
            .modify_group(&g.id, Some(1), move |cur| {
                Ok((
                    cur.document.clone(),
                    vec![MemberChange::Add(vec![
                        Member::new(us[0].clone()),
                        Member::new(us[1].clone()),
                        Member::new(us[2].clone()),
                    ])],
                ))
            })
            .await
            .unwrap();
        assert_eq!(r.version, 2);
        assert_eq!(
            ids(&dir.group_members(&g.id).await.unwrap()),
            sorted(users[..3].to_vec())
        );

        // Adding only existing members is a no-op: same version.
        let us = users.clone();
        let r = dir
            .modify_group(&g.id, None, move |cur| {
                Ok((
                    cur.document.clone(),
                    vec![MemberChange::Add(vec![Member::new(us[1].clone())])],
                ))
            })
            .await
            .unwrap();
        assert_eq!(r.version, 2, "{which:?}");

        // Remove one, and an absent one.
        let us = users.clone();
        let r = dir
            .modify_group(&g.id, None, move |cur| {
                Ok((
                    cur.document.clone(),
                    vec![MemberChange::Remove(vec![us[0].clone(), us[4].clone()])],
                ))
            })
            .await
            .unwrap();
        assert_eq!(r.version, 3);
        assert_eq!(
            ids(&dir.group_members(&g.id).await.unwrap()),
            sorted(users[1..3].to_vec())
        );

        // Remove by a filter the store evaluates.
        let filter =
            scim::filter::parse(&format!("value eq \"{}\" and type eq \"User\"", users[1]))
                .unwrap();
        let r = dir
            .modify_group(&g.id, None, move |cur| {
                Ok((
                    cur.document.clone(),
                    vec![MemberChange::RemoveWhere(filter.clone())],
                ))
            })
            .await
            .unwrap();
        assert_eq!(r.version, 4);
        assert_eq!(
            ids(&dir.group_members(&g.id).await.unwrap()),
            vec![users[2].clone()]
        );

        // Replace the set, with a rename in the same PATCH.
        let us = users.clone();
        let r = dir
            .modify_group(&g.id, None, move |cur| {
                let mut d = cur.document.clone();
                d["displayName"] = json!("G2");
                Ok((
                    d,
                    vec![MemberChange::Replace(vec![
                        Member::new(us[3].clone()),
                        Member::new(us[4].clone()),
                    ])],
                ))
            })
            .await
            .unwrap();
        assert_eq!(r.version, 5);
        assert_eq!(r.document["displayName"], "G2");
        assert_eq!(
            ids(&dir.group_members(&g.id).await.unwrap()),
            sorted(users[3..5].to_vec())
        );

        // Remove all.
        let r = dir
            .modify_group(&g.id, None, move |cur| {
                Ok((cur.document.clone(), vec![MemberChange::RemoveAll]))
            })
            .await
            .unwrap();
        assert_eq!(r.version, 6);
        assert!(dir.group_members(&g.id).await.unwrap().is_empty());

        // PUT replaces document and members.
        let r = dir
            .replace_group(
                &g.id,
                group("G3"),
                vec![Member::new(users[0].clone())],
                Some(6),
            )
            .await
            .unwrap();
        assert_eq!(r.version, 7);
        assert_eq!(ids(r.members.as_ref().unwrap()), vec![users[0].clone()]);
        let e = dir
            .replace_group(&g.id, group("G3"), vec![], Some(6))
            .await
            .unwrap_err();
        assert!(matches!(e, StoreError::PreconditionFailed { current: 7 }));
        // The same PUT again is a no-op.
        let r = dir
            .replace_group(
                &g.id,
                group("G3"),
                vec![Member::new(users[0].clone())],
                None,
            )
            .await
            .unwrap();
        assert_eq!(r.version, 7);
    }
}

#[tokio::test]
async fn deletes_cascade_to_memberships() {
    for which in backends() {
        let (_db, _store, dir) = directory(which).await;
        let u = dir.create_user(user("u")).await.unwrap();
        let v = dir.create_user(user("v")).await.unwrap();
        let child = dir
            .create_group(group("Child"), vec![Member::new(u.id.clone())])
            .await
            .unwrap();
        let parent = dir
            .create_group(
                group("Parent"),
                vec![
                    Member::new(child.id.clone()),
                    Member::new(u.id.clone()),
                    Member::new(v.id.clone()),
                ],
            )
            .await
            .unwrap();

        dir.delete_user(&u.id, None).await.unwrap();
        assert!(dir.group_members(&child.id).await.unwrap().is_empty());
        assert_eq!(
            ids(&dir.group_members(&parent.id).await.unwrap()),
            sorted(vec![child.id.clone(), v.id.clone()])
        );
        // The groups' representations changed, so did their versions.
        assert_eq!(dir.get_group(&child.id, false).await.unwrap().version, 2);
        assert_eq!(dir.get_group(&parent.id, false).await.unwrap().version, 2);

        let e = dir.delete_group(&child.id, Some(1)).await.unwrap_err();
        assert!(matches!(e, StoreError::PreconditionFailed { current: 2 }));
        dir.delete_group(&child.id, Some(2)).await.unwrap();
        assert_eq!(
            ids(&dir.group_members(&parent.id).await.unwrap()),
            vec![v.id.clone()]
        );
        assert!(
            dir.user_groups(std::slice::from_ref(&child.id))
                .await
                .unwrap()[&child.id]
                .is_empty()
        );

        dir.delete_group(&parent.id, None).await.unwrap();
        assert!(dir.user_groups(std::slice::from_ref(&v.id)).await.unwrap()[&v.id].is_empty());
        // A deleted group's id can no longer be added anywhere.
        let e = dir
            .create_group(group("X"), vec![Member::new(parent.id.clone())])
            .await
            .unwrap_err();
        assert!(matches!(e, StoreError::InvalidValue(_)), "{which:?}");
    }
}
