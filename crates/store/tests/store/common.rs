//! Shared helpers.

use serde_json::{Value, json};
use store::{NewTenant, Store, StoreOptions, Tenant, TenantKind, TenantStore};
use testkit::{TestDatabase, TestDb};

/// A migrated store on a fresh database (keep the `TestDatabase` alive).
pub async fn store(which: TestDb) -> (TestDatabase, Store) {
    store_with(which, StoreOptions::default()).await
}

/// [`store`] with options.
pub async fn store_with(which: TestDb, options: StoreOptions) -> (TestDatabase, Store) {
    let db = testkit::fresh_database(which).await;
    let store = Store::connect(&db.url, options).await.unwrap();
    store.migrate().await.unwrap();
    (db, store)
}

/// A new standard tenant.
pub async fn tenant(store: &Store, slug: &str) -> Tenant {
    store
        .admin()
        .create_tenant(
            NewTenant {
                slug: slug.into(),
                name: format!("Tenant {slug}"),
                kind: TenantKind::Standard,
            },
            "test",
        )
        .await
        .unwrap()
}

/// A store and the directory of one new tenant.
pub async fn directory(which: TestDb) -> (TestDatabase, Store, TenantStore) {
    let (db, store) = store(which).await;
    let t = tenant(&store, "acme").await;
    let dir = store.tenant(&t);
    (db, store, dir)
}

/// A minimal canonical User document.
pub fn user(name: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": name,
    })
}

/// A minimal canonical Group document.
pub fn group(name: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "displayName": name,
    })
}
