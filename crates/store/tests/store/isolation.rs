//! Tenant B's handle never sees or changes tenant A's rows, whatever it
//! is asked.

use chrono::Utc;
use scim::patch::{Member, MemberChange};
use store::{ListQuery, LogQuery, NewToken, ProvisioningEntry, Scope, StoreError};
use testkit::backends;

use crate::common::*;

fn all() -> ListQuery {
    ListQuery {
        filter: None,
        sort_by: None,
        descending: false,
        start_index: 1,
        count: 100,
        with_members: true,
        user_extras: Default::default(),
    }
}

fn entry() -> ProvisioningEntry {
    ProvisioningEntry {
        at: Utc::now(),
        method: "POST".into(),
        resource_type: "User".into(),
        resource_id: None,
        identifier: Some("bjensen".into()),
        outcome: "success".into(),
        status: 201,
        duration_ms: 3,
        request_id: "r1".into(),
        detail: None,
        routed: None,
    }
}

#[tokio::test]
async fn every_method_is_scoped_to_its_tenant() {
    for which in backends() {
        let (_db, store) = store(which).await;
        let ta = tenant(&store, "a").await;
        let tb = tenant(&store, "b").await;
        let a = store.tenant(&ta);
        let b = store.tenant(&tb);
        assert_eq!(b.tenant(), &tb);

        let u = a.create_user(user("bjensen")).await.unwrap();
        let g = a
            .create_group(group("Staff"), vec![Member::new(u.id.clone())])
            .await
            .unwrap();
        a.record(entry()).await.unwrap();

        let nf = |r: Result<_, StoreError>, what: &str| match r {
            Err(StoreError::NotFound(_)) => {}
            other => panic!("{which:?}: {what}: {other:?}"),
        };
        nf(b.get_user(&u.id).await.map(|_| ()), "get_user");
        nf(
            b.replace_user(&u.id, user("x"), None).await.map(|_| ()),
            "replace_user",
        );
        nf(
            b.modify_user(&u.id, None, move |c| Ok(c.document.clone()))
                .await
                .map(|_| ()),
            "modify_user",
        );
        nf(b.delete_user(&u.id, None).await.map(drop), "delete_user");
        nf(b.get_group(&g.id, true).await.map(|_| ()), "get_group");
        nf(b.group_members(&g.id).await.map(|_| ()), "group_members");
        nf(
            b.replace_group(&g.id, group("x"), vec![], None)
                .await
                .map(|_| ()),
            "replace_group",
        );
        nf(
            b.modify_group(&g.id, None, move |c| {
                Ok((c.document.clone(), vec![MemberChange::RemoveAll]))
            })
            .await
            .map(|_| ()),
            "modify_group",
        );
        nf(b.delete_group(&g.id, None).await.map(drop), "delete_group");

        // A's ids are not members B can add, with the same words as for an
        // id that exists nowhere.
        let foreign = b
            .create_group(group("Mine"), vec![Member::new(u.id.clone())])
            .await
            .unwrap_err();
        let ghost = b
            .create_group(group("Mine"), vec![Member::new("ghost")])
            .await
            .unwrap_err();
        match (&foreign, &ghost) {
            (StoreError::InvalidValue(f), StoreError::InvalidValue(h)) => {
                assert_eq!(f.replace(&u.id, "ID"), h.replace("ghost", "ID"));
            }
            other => panic!("{which:?}: {other:?}"),
        }

        assert_eq!(b.list_users(&all()).await.unwrap().total, 0);
        assert_eq!(b.list_groups(&all()).await.unwrap().total, 0);
        let mut q = all();
        q.filter = Some(scim::filter::parse(&format!("id eq \"{}\"", u.id)).unwrap());
        assert_eq!(b.list_users(&q).await.unwrap().total, 0);
        assert!(b.user_groups(std::slice::from_ref(&u.id)).await.unwrap()[&u.id].is_empty());
        assert!(b.events_after(0, 100).await.unwrap().is_empty());
        assert!(
            b.provisioning_log(&LogQuery::default())
                .await
                .unwrap()
                .is_empty()
        );

        // B may use the same names.
        b.create_user(user("bjensen")).await.unwrap();
        b.create_group(group("Staff"), vec![]).await.unwrap();

        // Tokens: B's admin view does not list or revoke A's.
        let admin = store.admin();
        let t = admin
            .issue_token(
                &ta,
                NewToken {
                    name: "t".into(),
                    scopes: vec![Scope::ScimWrite],
                    expires_at: None,
                },
                "test",
            )
            .await
            .unwrap();
        assert!(admin.list_tokens(&tb).await.unwrap().is_empty());
        assert!(matches!(
            admin.revoke_token(&tb, t.info.id, "test").await,
            Err(StoreError::NotFound(_))
        ));
        let auth = admin.authenticate(&t.secret).await.unwrap().unwrap();
        assert_eq!(auth.tenant, ta);

        // A is untouched by everything B did.
        let got = a.get_group(&g.id, true).await.unwrap();
        assert_eq!(got, g);
        assert_eq!(a.get_user(&u.id).await.unwrap(), u);
        assert_eq!(a.list_users(&all()).await.unwrap().total, 1);
        assert_eq!(
            a.provisioning_log(&LogQuery::default())
                .await
                .unwrap()
                .len(),
            1
        );
        // user.created, group.created, group.members_added (A defines
        // no roles, so none are derived).
        assert_eq!(a.events_after(0, 100).await.unwrap().len(), 3);
    }
}
