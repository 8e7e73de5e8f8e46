//! m0007: `role_jobs` rows become `role_recompute` jobs, and back.

// Test code: a failed step is a failed test.
#![allow(clippy::unwrap_used)]

use chrono::TimeDelta;
use migrations::MigratorTrait;
use sea_orm::sea_query::{Alias, Query};
use sea_orm::{ConnectionTrait, Value};
use serde_json::json;

use crate::db::now;
use crate::{JobHandlers, JobStatus, NewTenant, Store, StoreOptions, TenantKind};

/// Schema version 6: the last step before `jobs` replaces `role_jobs`.
const BEFORE_JOBS: u32 = 6;

#[tokio::test]
async fn role_jobs_become_jobs_and_back() {
    for which in testkit::backends() {
        let db = testkit::fresh_database(which).await;
        let store = Store::connect(&db.url, StoreOptions::default())
            .await
            .unwrap();
        let conn = crate::admin::migration_connection(&store.inner)
            .await
            .unwrap();
        migrations::Migrator::up(&conn, Some(BEFORE_JOBS))
            .await
            .unwrap();
        conn.ping().await.unwrap();
        let tenant = store
            .admin()
            .create_tenant(
                NewTenant {
                    slug: "acme".into(),
                    name: "Acme".into(),
                    kind: TenantKind::Standard,
                },
                "test",
            )
            .await
            .unwrap();

        // One finished, one left running by a process that died an hour
        // ago, one queued; ids in queue order.
        let at = now() - TimeDelta::hours(1);
        let ids: Vec<String> = (0..3).map(|_| uuid::Uuid::now_v7().to_string()).collect();
        let rows: [(&str, i64, i64, Option<chrono::DateTime<chrono::Utc>>); 3] = [
            ("done", 1, 4, Some(at)),
            ("running", 2, 2, Some(at)),
            ("queued", 3, 0, None),
        ];
        for (id, (status, version, processed, started)) in ids.iter().zip(rows) {
            let mut insert = Query::insert();
            insert
                .into_table(Alias::new("role_jobs"))
                .columns(
                    [
                        "id",
                        "tenant_id",
                        "status",
                        "policy_version",
                        "total",
                        "processed",
                        "changed",
                        "error",
                        "created_at",
                        "started_at",
                        "finished_at",
                        "heartbeat_at",
                    ]
                    .map(Alias::new),
                )
                .values_panic([
                    id.clone().into(),
                    tenant.id().to_string().into(),
                    status.into(),
                    version.into(),
                    4i64.into(),
                    processed.into(),
                    1i64.into(),
                    Value::String(None).into(),
                    at.into(),
                    started.into(),
                    (status == "done").then_some(at).into(),
                    started.into(),
                ]);
            conn.execute_raw(conn.get_database_backend().build(&insert))
                .await
                .unwrap();
        }
        migrations::Migrator::up(&conn, None).await.unwrap();
        conn.ping().await.unwrap();

        let dir = store.tenant(&tenant);
        let jobs = dir.role_jobs(10).await.unwrap();
        let seen: Vec<_> = jobs
            .iter()
            .map(|j| (j.id.as_str(), j.status, j.policy_version, j.processed))
            .collect();
        assert_eq!(
            seen,
            [
                (ids[2].as_str(), JobStatus::Queued, 3, 0),
                (ids[1].as_str(), JobStatus::Running, 2, 2),
                (ids[0].as_str(), JobStatus::Done, 1, 4),
            ],
            "{which:?}"
        );
        let done = dir.job(&ids[0]).await.unwrap();
        assert_eq!(done.kind, "role_recompute");
        assert_eq!(done.payload, json!({"policy_version": 1}));
        assert_eq!((done.progress.total, done.progress.changed), (4, 1));
        assert_eq!(done.finished_at, Some(at));
        let running = dir.job(&ids[1]).await.unwrap();
        assert_eq!(running.lease_owner, None, "{which:?}");
        assert_eq!(running.lease_expires_at, Some(at));

        // The copied queued job still coalesces with the next change.
        let change = dir
            .set_role_policy(
                ::roles::Policy {
                    roles: vec![],
                    default_role: None,
                    mappings: vec![],
                    mode: ::roles::Mode::Single,
                },
                None,
                "test",
            )
            .await
            .unwrap();
        assert_eq!(change.job, ids[2], "{which:?}");
        // The dead process's job is taken over first (oldest).
        let worker = store.job_worker(JobHandlers::builtin());
        let taken = worker.run_next().await.unwrap().unwrap();
        assert_eq!((taken.id.as_str(), taken.attempts), (ids[1].as_str(), 2));
        assert_eq!(taken.status, JobStatus::Done, "{which:?}");

        // Down again: the role jobs go back to `role_jobs`.
        // Back to just before m0007 (later steps are undone first).
        migrations::Migrator::down(&conn, Some(migrations::SCHEMA_VERSION - BEFORE_JOBS))
            .await
            .unwrap();
        conn.ping().await.unwrap();
        let back = conn
            .query_all_raw(sea_orm::Statement::from_string(
                conn.get_database_backend(),
                "SELECT id, status, policy_version FROM role_jobs ORDER BY id",
            ))
            .await
            .unwrap();
        let back: Vec<(String, String, i64)> = back
            .iter()
            .map(|r| {
                (
                    r.try_get("", "id").unwrap(),
                    r.try_get("", "status").unwrap(),
                    r.try_get("", "policy_version").unwrap(),
                )
            })
            .collect();
        assert_eq!(
            back,
            [
                (ids[0].clone(), "done".to_owned(), 1),
                (ids[1].clone(), "done".to_owned(), 2),
                (ids[2].clone(), "queued".to_owned(), 1),
            ],
            "{which:?}"
        );
    }
}

/// Every step after m0006 (which cannot be reverted: it rewrites the
/// outbox) undoes cleanly: down to it and up again leaves a working schema
/// (each later step's `down` is exercised here, not only when an operator
/// rolls back).
#[tokio::test]
async fn later_steps_go_down_and_up_again() {
    for which in testkit::backends() {
        let db = testkit::fresh_database(which).await;
        let store = Store::connect(&db.url, StoreOptions::default())
            .await
            .unwrap();
        store.migrate().await.unwrap();
        let conn = crate::admin::migration_connection(&store.inner)
            .await
            .unwrap();
        migrations::Migrator::down(&conn, Some(migrations::SCHEMA_VERSION - BEFORE_JOBS))
            .await
            .unwrap();
        let left = migrations::Migrator::get_applied_migrations(&conn)
            .await
            .unwrap();
        assert_eq!(left.len(), BEFORE_JOBS as usize, "{which:?}");
        migrations::Migrator::up(&conn, None).await.unwrap();
        let applied = migrations::Migrator::get_applied_migrations(&conn)
            .await
            .unwrap();
        assert_eq!(
            applied.len(),
            migrations::SCHEMA_VERSION as usize,
            "{which:?}"
        );
        conn.ping().await.unwrap();
        let tenant = store
            .admin()
            .create_tenant(
                NewTenant {
                    slug: "again".into(),
                    name: "Again".into(),
                    kind: TenantKind::Standard,
                },
                "test",
            )
            .await
            .unwrap();
        let dir = store.tenant(&tenant);
        dir.create_user(json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": "back@x"
        }))
        .await
        .unwrap();
    }
}
