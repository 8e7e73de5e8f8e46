//! Several handles migrating one database at once (as several processes
//! starting together would): every one succeeds and each step is applied
//! once, on both engines.

use store::{Store, StoreOptions};
use testkit::backends;
use tokio::task::JoinSet;

use crate::common::*;

const HANDLES: usize = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_migrations_from_separate_handles_all_succeed() {
    for which in backends() {
        let db = testkit::fresh_database(which).await;
        // Separate connections, pools and (on SQLite) lock-file handles:
        // what separate processes would have.
        let mut stores = Vec::new();
        for _ in 0..HANDLES {
            stores.push(
                Store::connect(&db.url, StoreOptions::default())
                    .await
                    .unwrap(),
            );
        }
        let mut tasks = JoinSet::new();
        for store in stores.clone() {
            tasks.spawn(async move { store.migrate().await });
        }
        while let Some(done) = tasks.join_next().await {
            done.unwrap()
                .unwrap_or_else(|e| panic!("{which:?}: concurrent migrate failed: {e}"));
        }

        // One row per step in the migration table (each names its step,
        // `m0001_...`; nothing else in a fresh database does).
        let found = db.find_text(&["m0"]).await;
        let rows = found
            .iter()
            .find_map(|f| f.strip_prefix("seaql_migrations: m0 ("))
            .and_then(|rest| rest.strip_suffix(" rows)"))
            .and_then(|n| n.parse::<u32>().ok());
        assert_eq!(rows, Some(store::SCHEMA_VERSION), "{which:?}: {found:?}");

        // Migrating again is a no-op, and the schema works.
        stores[0].migrate().await.unwrap();
        tenant(&stores[1], "acme").await;
    }
}
