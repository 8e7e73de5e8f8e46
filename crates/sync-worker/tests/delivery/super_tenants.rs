//! A super tenant's children each deliver to their own application: every
//! child's webhook receiver gets exactly the events of that child, across
//! a worker killed in the middle and started again.

use std::collections::BTreeSet;
use std::time::Duration;

use roles::GroupMatch;
use scim::patch::{Member, MemberChange};
use serde_json::json;
use store::TenantKind;
use store::fanout::OnUnroute;
use store::routing::RuleSpec;
use testkit::backends;
use testkit::receiver::Receiver;

use crate::support::*;

fn rule(id: &str, child: &str, group: Option<&str>, filter: Option<&str>) -> RuleSpec {
    RuleSpec {
        id: id.into(),
        child: child.into(),
        group: group.map(|g| GroupMatch::DisplayName(g.into())),
        filter: filter.map(str::to_owned),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_childs_application_hears_exactly_its_own_events() {
    const USERS: usize = 60;
    for which in backends() {
        let (_db, store) = store(which).await;
        let admin = store.admin();
        let msp = tenant(&store, "msp").await;
        admin
            .set_tenant_kind(msp.tenant().id(), TenantKind::Super, "test")
            .await
            .expect("super");
        let msp = store.tenant(
            &admin
                .tenant_by_id(msp.tenant().id())
                .await
                .expect("read")
                .expect("tenant"),
        );
        let mut children = Vec::new();
        for (slug, how) in [
            ("acme", OnUnroute::Deactivate),
            ("globex", OnUnroute::Delete),
            ("initech", OnUnroute::Deactivate),
        ] {
            let dir = tenant(&store, slug).await;
            admin
                .link_child(msp.tenant().id(), dir.tenant().id(), how, "test")
                .await
                .expect("link");
            let receiver = Receiver::start().await;
            webhook(&dir, &receiver, "app").await;
            children.push((dir, receiver));
        }
        admin
            .set_routing_policy(
                msp.tenant().id(),
                vec![
                    rule("a", "acme", None, Some("userName sw \"a-\"")),
                    rule("g", "globex", None, Some("userName sw \"g-\"")),
                    rule("both", "initech", Some("Both"), None),
                ],
                None,
                "test",
            )
            .await
            .expect("rules");
        let worker = start(&store, config());

        // Users for acme and globex by name, some of them in "Both" (and so
        // in initech as well); changes, moves and deletions on the way.
        let mut ids = Vec::new();
        for i in 0..USERS {
            let prefix = if i % 2 == 0 { "a" } else { "g" };
            let u = msp
                .create_user(user(&format!("{prefix}-{i}")))
                .await
                .expect("user");
            ids.push(u.id);
        }
        let both = msp
            .create_group(
                group("Both"),
                ids.iter()
                    .step_by(3)
                    .map(|id| Member::new(id.clone()))
                    .collect(),
            )
            .await
            .expect("group");
        for (i, id) in ids.iter().enumerate().take(USERS / 2) {
            msp.modify_user(id, None, move |c| {
                let mut d = c.document.clone();
                d["title"] = json!(format!("title {i}"));
                Ok(d)
            })
            .await
            .expect("patch");
        }
        // A crash of the worker in the middle of it all.
        worker.abort();
        for (i, id) in ids.iter().enumerate().skip(USERS / 2).step_by(5) {
            // From one child to the other: g- becomes a-, a- becomes g-.
            let name = if i % 2 == 0 {
                format!("g-{i}")
            } else {
                format!("a-{i}")
            };
            msp.modify_user(id, None, move |c| {
                let mut d = c.document.clone();
                d["userName"] = json!(name.clone());
                Ok(d)
            })
            .await
            .expect("move");
        }
        let leave: Vec<String> = ids.iter().step_by(6).cloned().collect();
        msp.modify_group(&both.id, None, move |c| {
            Ok((
                c.document.clone(),
                vec![MemberChange::Remove(leave.clone())],
            ))
        })
        .await
        .expect("leave the group");
        for id in ids.iter().skip(1).step_by(7) {
            msp.delete_user(id, None).await.expect("delete");
        }
        let worker = start(&store, config());

        let mut seen_anywhere = BTreeSet::new();
        for (dir, receiver) in &children {
            let expected = event_ids(dir).await;
            assert!(!expected.is_empty(), "{which:?}");
            let got = wait_for_ids(receiver, &expected, Duration::from_secs(60)).await;
            let got: BTreeSet<String> = got.into_iter().collect();
            let want: BTreeSet<String> = expected.into_iter().collect();
            assert_eq!(
                got,
                want,
                "{which:?}: {} got exactly its own events",
                dir.tenant().slug()
            );
            assert!(seen_anywhere.is_disjoint(&got), "{which:?}");
            seen_anywhere.extend(got);
        }
        // The super tenant has no target: none of its events went anywhere.
        let own: BTreeSet<String> = event_ids(&msp).await.into_iter().collect();
        assert!(own.is_disjoint(&seen_anywhere), "{which:?}");
        worker.stop().await;
        for (_, receiver) in &children {
            receiver.stop().await;
        }
    }
}
