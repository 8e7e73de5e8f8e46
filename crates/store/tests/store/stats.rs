//! Planner statistics: refreshed on PostgreSQL once a table has grown past
//! autovacuum's rule, left alone otherwise; nothing to do on SQLite.

use std::time::{Duration, Instant};

use testkit::TestDb;

use crate::common::*;

#[tokio::test]
async fn a_table_that_grew_is_analyzed_once() {
    let (_db, store, dir) = directory(TestDb::Postgres).await;
    for i in 0..200 {
        dir.create_user(user(&format!("s{i:03}")))
            .await
            .expect("user");
    }
    // Each server process reports its counts at most once a second (and
    // an idle one within ten), so the growth shows up after a moment.
    let deadline = Instant::now() + Duration::from_secs(30);
    let analyzed = loop {
        let analyzed = store.refresh_statistics().await.expect("refresh");
        if analyzed.iter().any(|t| t == "users") || Instant::now() > deadline {
            break analyzed;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        analyzed.iter().any(|t| t == "users"),
        "users grew by 200 rows from none: {analyzed:?}"
    );
    // Analyzed now: no change since, so nothing to do.
    let again = store.refresh_statistics().await.expect("refresh");
    assert!(!again.iter().any(|t| t == "users"), "{again:?}");
}

#[tokio::test]
async fn sqlite_has_no_statistics_to_refresh() {
    let (_db, store, dir) = directory(TestDb::Sqlite).await;
    for i in 0..100 {
        dir.create_user(user(&format!("s{i:03}")))
            .await
            .expect("user");
    }
    assert!(
        store
            .refresh_statistics()
            .await
            .expect("refresh")
            .is_empty()
    );
}
