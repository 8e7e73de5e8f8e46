//! Planner statistics: refreshed on PostgreSQL once a table has grown past
//! autovacuum's rule, left alone otherwise; nothing to do on SQLite.

use std::time::{Duration, Instant};

use testkit::TestDb;

use crate::common::*;

#[tokio::test]
async fn a_table_that_grew_is_analyzed_once() {
    use sea_orm::{ConnectionTrait, Database, Statement};
    let (db, store, dir) = directory(TestDb::Postgres).await;
    for i in 0..200 {
        dir.create_user(user(&format!("s{i:03}")))
            .await
            .expect("user");
    }
    // Each server process reports its counts at most once a second (and
    // an idle one within ten). Wait until every insert is counted: counts
    // reported after the analysis would be changes since it.
    let raw = Database::connect(db.url.as_str()).await.expect("connect");
    let inserted = || async {
        raw.query_one_raw(Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT n_tup_ins FROM pg_stat_user_tables WHERE relname = 'users'",
        ))
        .await
        .expect("stats")
        .and_then(|r| r.try_get::<i64>("", "n_tup_ins").ok())
        .unwrap_or(0)
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while inserted().await < 200 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let analyzed = store.refresh_statistics().await.expect("refresh");
    assert!(
        analyzed.iter().any(|t| t == "users"),
        "users grew by 200 rows from none ({} counted): {analyzed:?}",
        inserted().await
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
