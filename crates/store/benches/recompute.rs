//! The tenant-wide role recompute job, timed on a real database.
//!
//! `cargo bench -p store --bench recompute` seeds one tenant with users
//! (default 100,000) and groups through the store's own API, then times
//! the job a policy change queues, three ways: the first policy (every
//! user gets a row), a default-role change (most users change), and a
//! change that moves nobody (every user is read and compared, none
//! written). SQLite in a temporary directory by default; set
//! `SCIMGATE_BENCH_DATABASE_URL=postgres://...` for PostgreSQL (an empty
//! database). `SCIMGATE_BENCH_USERS` and `SCIMGATE_BENCH_GROUPS` change
//! the sizes; `SCIMGATE_BENCH_PAUSE_SECS` waits between seeding and the
//! jobs (time for PostgreSQL's autovacuum to gather statistics, as it has
//! on a live database).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Instant;

use roles::{GroupMatch, Mapping, Mode, Policy, Role};
use scim::patch::Member;
use serde_json::json;
use store::{NewTenant, Store, StoreOptions, TenantKind, TenantStore};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn policy(default: &str) -> Policy {
    let role = |name: &str| Role {
        name: name.into(),
        description: String::new(),
    };
    Policy {
        roles: vec![role("viewer"), role("editor"), role("admin")],
        default_role: Some(default.into()),
        mappings: (0..10)
            .map(|i| Mapping {
                group: GroupMatch::DisplayName(format!("group-{i:04}")),
                role: if i == 0 { "admin" } else { "editor" }.into(),
                priority: 10 - i,
            })
            .collect(),
        mode: Mode::Single,
    }
}

async fn seed(dir: &TenantStore, users: usize, groups: usize) -> Vec<String> {
    let started = Instant::now();
    let mut ids = Vec::with_capacity(users);
    let mut next = 0usize;
    while next < users {
        let mut tasks = tokio::task::JoinSet::new();
        for i in next..(next + 256).min(users) {
            let dir = dir.clone();
            tasks.spawn(async move {
                dir.create_user(json!({
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                    "userName": format!("user{i:07}@example.com"),
                    "active": true,
                }))
                .await
                .unwrap()
                .id
            });
        }
        while let Some(id) = tasks.join_next().await {
            ids.push(id.unwrap());
        }
        next = (next + 256).min(users);
    }
    // Each user in one group; groups of equal size.
    let per = users.div_ceil(groups.max(1));
    for (g, chunk) in ids.chunks(per).enumerate() {
        let members = chunk.iter().cloned().map(Member::new).collect();
        dir.create_group(
            json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                "displayName": format!("group-{g:04}"),
            }),
            members,
        )
        .await
        .unwrap();
    }
    eprintln!(
        "seeded {users} users in {groups} groups in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    ids
}

async fn timed_job(store: &Store, dir: &TenantStore, label: &str, policy: Policy) {
    let version = dir.role_policy().await.unwrap().version;
    dir.set_role_policy(policy, Some(version), "bench")
        .await
        .unwrap();
    let started = Instant::now();
    let job = store.run_next_role_job().await.unwrap().expect("a job");
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(job.status, store::JobStatus::Done, "{job:?}");
    println!(
        "{label:<28} users {:>7}  changed {:>7}  {:>6.2} s  {:>9.0} users/s",
        job.processed,
        job.changed,
        secs,
        job.processed as f64 / secs
    );
}

fn main() {
    let users = env_usize("SCIMGATE_BENCH_USERS", 100_000);
    let groups = env_usize("SCIMGATE_BENCH_GROUPS", 100);
    let tmp = tempfile::tempdir().unwrap();
    let url = std::env::var("SCIMGATE_BENCH_DATABASE_URL").unwrap_or_else(|_| {
        format!(
            "sqlite://{}?mode=rwc",
            tmp.path().join("bench.db").display()
        )
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = Store::connect(&url, StoreOptions::default()).await.unwrap();
        store.migrate().await.unwrap();
        let tenant = store
            .admin()
            .create_tenant(
                NewTenant {
                    slug: format!("bench-{}", std::process::id()),
                    name: "bench".into(),
                    kind: TenantKind::Standard,
                },
                "bench",
            )
            .await
            .unwrap();
        let dir = store.tenant(&tenant);
        seed(&dir, users, groups).await;
        // A live database has statistics on what it stores; a freshly
        // seeded one gets them from autovacuum within a minute or so.
        let pause = env_usize("SCIMGATE_BENCH_PAUSE_SECS", 0);
        if pause > 0 {
            eprintln!("pausing {pause} s before the jobs");
            tokio::time::sleep(std::time::Duration::from_secs(pause as u64)).await;
        }
        println!(
            "role recompute job, {users} users, {groups} groups, {:?}",
            store.backend()
        );
        timed_job(&store, &dir, "first policy", policy("viewer")).await;
        timed_job(&store, &dir, "default role changed", policy("editor")).await;
        let mut same = policy("editor");
        same.roles[0].description = "read only".into();
        timed_job(&store, &dir, "nothing changes", same).await;
    });
}
