//! Tenants, tokens, operators, auth revision, migrations.

use chrono::{Duration, Utc};
use store::{
    Backend, NewTenant, NewToken, Scope, Store, StoreError, StoreOptions, TenantKind, TenantStatus,
    TenantUpdate,
};
use testkit::{TestDb, backends};

use crate::common::*;

fn token(name: &str, scopes: &[Scope]) -> NewToken {
    NewToken {
        name: name.into(),
        scopes: scopes.to_vec(),
        expires_at: None,
    }
}

#[tokio::test]
async fn migrate_is_idempotent_and_backend_is_reported() {
    for which in backends() {
        let (db, store) = store(which).await;
        store.migrate().await.unwrap();
        store.migrate().await.unwrap();
        store.ping().await.unwrap();
        let expected = match which {
            TestDb::Sqlite => Backend::Sqlite,
            TestDb::Postgres => Backend::Postgres,
        };
        assert_eq!(store.backend(), expected);
        // A second process-level handle sees the same schema.
        let again = Store::connect(&db.url, StoreOptions::default())
            .await
            .unwrap();
        again.migrate().await.unwrap();
        assert_eq!(again.admin().count_operators().await.unwrap(), 0);
    }
}

#[tokio::test]
async fn connect_failures_are_unavailable_or_invalid() {
    let err = Store::connect("mysql://x", StoreOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidValue(_)), "{err:?}");
    // Nothing listens on port 1.
    let err = Store::connect(
        "postgres://nobody:secretpw@127.0.0.1:1/none",
        StoreOptions::default(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(!err.to_string().contains("secretpw"), "{err}");
}

#[tokio::test]
async fn tenants_create_find_list_status_delete() {
    for which in backends() {
        let (_db, store) = store(which).await;
        let admin = store.admin();
        let acme = tenant(&store, "acme").await;
        assert_eq!(acme.slug(), "acme");
        assert_eq!(acme.kind(), TenantKind::Standard);
        assert_eq!(acme.status(), TenantStatus::Active);
        let msp = admin
            .create_tenant(
                NewTenant {
                    slug: "msp".into(),
                    name: "MSP".into(),
                    kind: TenantKind::Super,
                },
                "test",
            )
            .await
            .unwrap();
        assert_eq!(msp.kind(), TenantKind::Super);

        let dup = admin
            .create_tenant(
                NewTenant {
                    slug: "acme".into(),
                    name: "Other".into(),
                    kind: TenantKind::Standard,
                },
                "test",
            )
            .await
            .unwrap_err();
        assert!(
            matches!(dup, StoreError::Uniqueness(_)),
            "{which:?} {dup:?}"
        );
        for bad in ["Acme", "-a", "a-", "", "a_b"] {
            let e = admin
                .create_tenant(
                    NewTenant {
                        slug: bad.into(),
                        name: "x".into(),
                        kind: TenantKind::Standard,
                    },
                    "test",
                )
                .await
                .unwrap_err();
            assert!(matches!(e, StoreError::InvalidValue(_)), "{bad} {e:?}");
        }

        assert_eq!(
            admin.tenant_by_slug("acme").await.unwrap(),
            Some(acme.clone())
        );
        assert_eq!(
            admin.tenant_by_id(msp.id()).await.unwrap(),
            Some(msp.clone())
        );
        assert_eq!(admin.tenant_by_slug("nope").await.unwrap(), None);

        tenant(&store, "beta").await;
        let (total, page) = admin.list_tenants(0, 2).await.unwrap();
        assert_eq!(total, 3);
        let slugs: Vec<&str> = page.iter().map(|t| t.slug()).collect();
        assert_eq!(slugs, vec!["acme", "beta"]);
        let (_, rest) = admin.list_tenants(2, 10).await.unwrap();
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].slug(), "msp");

        let rev0 = admin.auth_revision().await.unwrap();
        let suspended = admin
            .update_tenant(
                acme.id(),
                TenantUpdate {
                    status: Some(TenantStatus::Suspended),
                    ..Default::default()
                },
                "test",
            )
            .await
            .unwrap();
        assert_eq!(suspended.status(), TenantStatus::Suspended);
        let rev1 = admin.auth_revision().await.unwrap();
        assert!(rev1 > rev0, "{which:?}: suspending moves the auth revision");
        assert_eq!(
            admin
                .tenant_by_id(acme.id())
                .await
                .unwrap()
                .unwrap()
                .status(),
            TenantStatus::Suspended
        );

        // Deleting takes the tenant's directory with it.
        let dir = store.tenant(&acme);
        let u = dir.create_user(user("bjensen")).await.unwrap();
        admin.delete_tenant(acme.id(), "test").await.unwrap();
        assert!(admin.auth_revision().await.unwrap() > rev1);
        assert_eq!(admin.tenant_by_id(acme.id()).await.unwrap(), None);
        assert!(matches!(
            dir.get_user(&u.id).await,
            Err(StoreError::NotFound(_))
        ));
        assert!(matches!(
            admin.delete_tenant(acme.id(), "test").await,
            Err(StoreError::NotFound(_))
        ));
        assert!(matches!(
            admin
                .update_tenant(
                    acme.id(),
                    TenantUpdate {
                        status: Some(TenantStatus::Active),
                        ..Default::default()
                    },
                    "test"
                )
                .await,
            Err(StoreError::NotFound(_))
        ));
    }
}

#[tokio::test]
async fn tokens_issue_authenticate_expire_revoke() {
    for which in backends() {
        let (_db, store) = store(which).await;
        let admin = store.admin();
        let acme = tenant(&store, "acme").await;
        let other = tenant(&store, "other").await;

        let rev0 = admin.auth_revision().await.unwrap();
        let issued = admin
            .issue_token(
                &acme,
                token("entra", &[Scope::ScimWrite, Scope::ScimRead]),
                "test",
            )
            .await
            .unwrap();
        assert!(issued.secret.starts_with("sgt_"));
        assert_eq!(issued.info.tenant_id, acme.id());
        assert_eq!(issued.info.scopes, vec![Scope::ScimWrite, Scope::ScimRead]);
        assert_eq!(
            admin.auth_revision().await.unwrap(),
            rev0,
            "issuing changes no cache"
        );

        let auth = admin.authenticate(&issued.secret).await.unwrap().unwrap();
        assert_eq!(auth.tenant, acme);
        assert_eq!(auth.token_id, issued.info.id);
        assert_eq!(auth.scopes, vec![Scope::ScimWrite, Scope::ScimRead]);
        assert_eq!(auth.expires_at, None);

        // Wrong secret (same id), garbage, unknown id.
        let (head, secret) = issued.secret.rsplit_once('_').unwrap();
        let flipped: String = secret
            .chars()
            .map(|c| if c == '0' { '1' } else { '0' })
            .collect();
        let wrong = format!("{head}_{flipped}");
        assert!(admin.authenticate(&wrong).await.unwrap().is_none());
        assert!(admin.authenticate("").await.unwrap().is_none());
        assert!(admin.authenticate("sgt_x_y").await.unwrap().is_none());
        let unknown = format!("sgt_{}_{secret}", uuid::Uuid::new_v4().simple());
        assert!(admin.authenticate(&unknown).await.unwrap().is_none());

        // Expired.
        let expired = admin
            .issue_token(
                &acme,
                NewToken {
                    name: "old".into(),
                    scopes: vec![Scope::ScimRead],
                    expires_at: Some(Utc::now() - Duration::seconds(1)),
                },
                "test",
            )
            .await
            .unwrap();
        assert!(admin.authenticate(&expired.secret).await.unwrap().is_none());
        let later = Utc::now() + Duration::hours(1);
        let expiring = admin
            .issue_token(
                &acme,
                NewToken {
                    name: "soon".into(),
                    scopes: vec![Scope::ScimRead],
                    expires_at: Some(later),
                },
                "test",
            )
            .await
            .unwrap();
        let a = admin.authenticate(&expiring.secret).await.unwrap().unwrap();
        assert_eq!(a.scopes, vec![Scope::ScimRead]);
        assert!(a.expires_at.is_some());

        // Listing shows no secrets.
        let list = admin.list_tokens(&acme).await.unwrap();
        assert_eq!(list.len(), 3);
        let shown = format!("{list:?}");
        assert!(!shown.contains(secret), "{which:?}: list leaks a secret");
        assert!(admin.list_tokens(&other).await.unwrap().is_empty());

        // Another tenant cannot revoke it.
        assert!(matches!(
            admin.revoke_token(&other, issued.info.id, "test").await,
            Err(StoreError::NotFound(_))
        ));
        let revoked = admin
            .revoke_token(&acme, issued.info.id, "test")
            .await
            .unwrap();
        assert!(revoked.revoked_at.is_some());
        assert!(admin.auth_revision().await.unwrap() > rev0);
        assert!(admin.authenticate(&issued.secret).await.unwrap().is_none());
        // Idempotent.
        let again = admin
            .revoke_token(&acme, issued.info.id, "test")
            .await
            .unwrap();
        assert_eq!(again.revoked_at, revoked.revoked_at);

        // A suspended tenant still authenticates (the gateway answers 403).
        admin
            .update_tenant(
                acme.id(),
                TenantUpdate {
                    status: Some(TenantStatus::Suspended),
                    ..Default::default()
                },
                "test",
            )
            .await
            .unwrap();
        let a = admin.authenticate(&expiring.secret).await.unwrap().unwrap();
        assert_eq!(a.tenant.status(), TenantStatus::Suspended);

        let e = admin
            .issue_token(&acme, token("none", &[]), "test")
            .await
            .unwrap_err();
        assert!(matches!(e, StoreError::InvalidValue(_)));
    }
}

#[tokio::test]
async fn operators() {
    for which in backends() {
        let (_db, store) = store(which).await;
        let admin = store.admin();
        assert_eq!(admin.count_operators().await.unwrap(), 0);
        admin
            .create_operator("Ops@Example.com", "correct horse", "test")
            .await
            .unwrap();
        assert_eq!(admin.count_operators().await.unwrap(), 1);
        let dup = admin
            .create_operator("ops@example.COM", "x", "test")
            .await
            .unwrap_err();
        assert!(
            matches!(dup, StoreError::Uniqueness(_)),
            "{which:?} {dup:?}"
        );
        assert!(matches!(
            admin.create_operator("not-an-email", "x", "test").await,
            Err(StoreError::InvalidValue(_))
        ));
        assert!(matches!(
            admin.create_operator("a@b.c", "", "test").await,
            Err(StoreError::InvalidValue(_))
        ));
        assert_eq!(admin.count_operators().await.unwrap(), 1);
    }
}
