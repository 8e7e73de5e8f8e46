//! User CRUD, uniqueness, versions and preconditions.

use serde_json::json;
use store::{ListQuery, StoreError};
use testkit::backends;

use crate::common::*;

fn by_filter(f: &str) -> ListQuery {
    ListQuery {
        filter: Some(scim::filter::parse(f).unwrap()),
        sort_by: None,
        descending: false,
        start_index: 1,
        count: 100,
        with_members: false,
        user_extras: Default::default(),
    }
}

#[tokio::test]
async fn create_get_replace_delete() {
    for which in backends() {
        let (_db, _store, dir) = directory(which).await;
        let doc = json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": "bjensen",
            "name": {"givenName": "Barbara", "familyName": "Jensen"},
            "emails": [{"value": "bjensen@example.com", "type": "work", "primary": true}],
            "active": true,
            "urn:acme:custom:2.0:User": {"badge": 7}
        });
        let u = dir.create_user(doc.clone()).await.unwrap();
        assert_eq!(u.version, 1);
        assert_eq!(u.document, doc, "stored as given");
        assert_eq!(u.created, u.last_modified);
        assert!(u.members.is_none());
        let got = dir.get_user(&u.id).await.unwrap();
        assert_eq!(got, u);
        // Attribute order survives the round trip.
        let keys: Vec<&String> = got.document.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            vec![
                "schemas",
                "userName",
                "name",
                "emails",
                "active",
                "urn:acme:custom:2.0:User"
            ]
        );

        let mut doc2 = doc.clone();
        doc2["displayName"] = json!("Babs");
        let r = dir
            .replace_user(&u.id, doc2.clone(), Some(1))
            .await
            .unwrap();
        assert_eq!(r.version, 2);
        assert_eq!(r.document, doc2);
        assert!(r.last_modified >= u.last_modified);
        assert_eq!(r.created, u.created);
        assert_eq!(dir.get_user(&u.id).await.unwrap(), r);

        // Replacing with the same document changes nothing.
        let same = dir.replace_user(&u.id, doc2.clone(), None).await.unwrap();
        assert_eq!(same.version, 2);

        // If-Match.
        let e = dir
            .replace_user(&u.id, doc.clone(), Some(1))
            .await
            .unwrap_err();
        assert!(
            matches!(e, StoreError::PreconditionFailed { current: 2 }),
            "{which:?} {e:?}"
        );
        let e = dir.delete_user(&u.id, Some(7)).await.unwrap_err();
        assert!(matches!(e, StoreError::PreconditionFailed { current: 2 }));

        dir.delete_user(&u.id, Some(2)).await.unwrap();
        assert!(matches!(
            dir.get_user(&u.id).await,
            Err(StoreError::NotFound(_))
        ));
        assert!(matches!(
            dir.delete_user(&u.id, None).await,
            Err(StoreError::NotFound(_))
        ));
        assert!(matches!(
            dir.replace_user(&u.id, doc.clone(), None).await,
            Err(StoreError::NotFound(_))
        ));
        // The e-mail index went with the user.
        let page = dir
            .list_users(&by_filter("emails.value eq \"bjensen@example.com\""))
            .await
            .unwrap();
        assert_eq!(page.total, 0);
    }
}

#[tokio::test]
async fn modify_is_read_modify_write_and_no_op_keeps_version() {
    for which in backends() {
        let (_db, _store, dir) = directory(which).await;
        let u = dir.create_user(user("bjensen")).await.unwrap();
        let m = dir
            .modify_user(&u.id, Some(1), move |cur| {
                assert_eq!(cur.version, 1);
                let mut d = cur.document.clone();
                d["title"] = json!("Tour Guide");
                Ok(d)
            })
            .await
            .unwrap();
        assert_eq!(m.version, 2);
        assert_eq!(m.document["title"], "Tour Guide");

        let same = dir
            .modify_user(&u.id, None, move |cur| Ok(cur.document.clone()))
            .await
            .unwrap();
        assert_eq!(same.version, 2);
        assert_eq!(same.last_modified, m.last_modified);

        let e = dir
            .modify_user(&u.id, Some(1), move |cur| Ok(cur.document.clone()))
            .await
            .unwrap_err();
        assert!(matches!(e, StoreError::PreconditionFailed { current: 2 }));

        let e = dir
            .modify_user(&u.id, None, move |_| {
                Err(scim::Error::InvalidValue("nope".into()))
            })
            .await
            .unwrap_err();
        assert!(
            matches!(e, StoreError::Scim(scim::Error::InvalidValue(_))),
            "{e:?}"
        );
        assert_eq!(dir.get_user(&u.id).await.unwrap().version, 2);

        // A modification producing an invalid document is refused.
        let e = dir
            .modify_user(&u.id, None, move |cur| {
                let mut d = cur.document.clone();
                d["userName"] = json!(42);
                Ok(d)
            })
            .await
            .unwrap_err();
        assert!(matches!(e, StoreError::InvalidValue(_)), "{e:?}");

        let e = dir
            .modify_user("no-such-id", None, move |cur| Ok(cur.document.clone()))
            .await
            .unwrap_err();
        assert!(matches!(e, StoreError::NotFound(_)));
    }
}

#[tokio::test]
async fn user_name_is_unique_per_tenant_ignoring_case() {
    for which in backends() {
        let (_db, store, dir) = directory(which).await;
        let a = dir.create_user(user("BJensen")).await.unwrap();
        let e = dir.create_user(user("bjensen")).await.unwrap_err();
        match &e {
            StoreError::Uniqueness(m) => assert!(m.contains("bjensen"), "{m}"),
            other => panic!("{which:?}: {other:?}"),
        }
        // Unicode case folding as the evaluator does it.
        dir.create_user(user("ÅSA")).await.unwrap();
        assert!(matches!(
            dir.create_user(user("åsa")).await,
            Err(StoreError::Uniqueness(_))
        ));

        // The same userName in another tenant is fine.
        let other = tenant(&store, "other").await;
        store
            .tenant(&other)
            .create_user(user("bjensen"))
            .await
            .unwrap();

        // Renaming onto a taken name fails; changing only the case of
        // one's own name does not.
        let b = dir.create_user(user("other")).await.unwrap();
        let e = dir
            .replace_user(&b.id, user("BJENSEN"), None)
            .await
            .unwrap_err();
        assert!(matches!(e, StoreError::Uniqueness(_)), "{e:?}");
        assert_eq!(dir.get_user(&b.id).await.unwrap().version, 1);
        let renamed = dir
            .replace_user(&a.id, user("bjensen"), None)
            .await
            .unwrap();
        assert_eq!(renamed.document["userName"], "bjensen");
    }
}

/// An update names only the indexed columns that change; every column that
/// does change still reaches its index: filters find the new values and no
/// longer the old ones, and a freed userName can be taken again.
#[tokio::test]
async fn indexed_columns_follow_each_kind_of_change() {
    for which in backends() {
        let (_db, _store, dir) = directory(which).await;
        let u = dir.create_user(user("first")).await.unwrap();
        let found = |filter: &'static str| {
            let dir = dir.clone();
            async move {
                dir.list_users(&by_filter(filter))
                    .await
                    .unwrap()
                    .resources
                    .len()
            }
        };
        // Only displayName changes.
        let mut doc = user("first");
        doc["displayName"] = json!("Shown Name");
        dir.replace_user(&u.id, doc.clone(), None).await.unwrap();
        assert_eq!(found("displayName eq \"Shown Name\"").await, 1, "{which:?}");
        assert_eq!(found("userName eq \"first\"").await, 1, "{which:?}");
        // Only externalId changes.
        doc["externalId"] = json!("ext-9");
        dir.replace_user(&u.id, doc.clone(), None).await.unwrap();
        assert_eq!(found("externalId eq \"ext-9\"").await, 1, "{which:?}");
        assert_eq!(found("displayName eq \"Shown Name\"").await, 1, "{which:?}");
        // Only userName changes: the old name is free again.
        doc["userName"] = json!("second");
        dir.replace_user(&u.id, doc.clone(), None).await.unwrap();
        assert_eq!(found("userName eq \"second\"").await, 1, "{which:?}");
        assert_eq!(found("userName eq \"first\"").await, 0, "{which:?}");
        assert_eq!(found("externalId eq \"ext-9\"").await, 1, "{which:?}");
        dir.create_user(user("first")).await.unwrap();
        assert!(matches!(
            dir.create_user(user("SECOND")).await,
            Err(StoreError::Uniqueness(_))
        ));
        // Only active changes.
        doc["active"] = json!(false);
        dir.replace_user(&u.id, doc.clone(), None).await.unwrap();
        assert_eq!(found("active eq false").await, 1, "{which:?}");
        assert_eq!(found("userName eq \"second\"").await, 1, "{which:?}");
    }
}

#[tokio::test]
async fn external_id_lookups_are_case_exact() {
    for which in backends() {
        let (_db, _store, dir) = directory(which).await;
        let mut d = user("a");
        d["externalId"] = json!("Ext-1");
        let a = dir.create_user(d).await.unwrap();
        let mut d = user("b");
        d["externalId"] = json!("ext-1");
        let b = dir.create_user(d).await.unwrap();
        let page = dir
            .list_users(&by_filter("externalId eq \"Ext-1\""))
            .await
            .unwrap();
        assert_eq!(page.total, 1, "{which:?}");
        assert_eq!(page.resources[0].id, a.id);
        let page = dir
            .list_users(&by_filter("externalId eq \"ext-1\""))
            .await
            .unwrap();
        assert_eq!(page.resources.len(), 1);
        assert_eq!(page.resources[0].id, b.id);
        let page = dir
            .list_users(&by_filter("externalId sw \"E\""))
            .await
            .unwrap();
        assert_eq!(page.total, 1, "{which:?}: sw is case-exact for externalId");
        let page = dir
            .list_users(&by_filter(&format!("id eq \"{}\"", a.id)))
            .await
            .unwrap();
        assert_eq!(page.resources[0].id, a.id);
    }
}

#[tokio::test]
async fn invalid_documents_are_refused() {
    for which in backends() {
        let (_db, _store, dir) = directory(which).await;
        for bad in [
            json!({"displayName": "no userName"}),
            json!({"userName": ""}),
            json!({"userName": "x", "active": "yes"}),
            json!({"userName": "x", "emails": "a@b"}),
        ] {
            let e = dir.create_user(bad.clone()).await.unwrap_err();
            assert!(matches!(e, StoreError::InvalidValue(_)), "{bad} {e:?}");
        }
        let e = dir
            .create_group(json!({"members": []}), vec![])
            .await
            .unwrap_err();
        assert!(matches!(e, StoreError::InvalidValue(_)));
    }
}
