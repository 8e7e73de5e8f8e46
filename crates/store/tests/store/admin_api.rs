//! What the admin API stands on: recompute jobs, dry runs, the audit log
//! and tenant admin logins.

use roles::{GroupMatch, Mapping, Mode, Policy};
use scim::patch::Member;
use serde_json::json;
use store::{AuditQuery, JobStatus, StoreError, TenantStatus, TenantUpdate};
use testkit::backends;

use crate::common::*;
use crate::roles::policy;

fn no_roles() -> Policy {
    Policy {
        roles: vec![],
        default_role: None,
        mappings: vec![],
        mode: Mode::Single,
    }
}

async fn role_event_count(dir: &store::TenantStore) -> usize {
    dir.events_after(0, 10_000)
        .await
        .unwrap()
        .iter()
        .filter(|e| e.event_type.as_str() == "user.roles_changed")
        .count()
}

#[tokio::test]
async fn a_tenant_without_roles_stores_none() {
    for which in backends() {
        let (_db, _store, dir) = directory(which).await;
        let u = dir.create_user(user("alice")).await.unwrap();
        dir.create_group(group("Admins"), vec![Member::new(u.id.clone())])
            .await
            .unwrap();
        assert!(
            dir.effective_roles(std::slice::from_ref(&u.id))
                .await
                .unwrap()
                .is_empty(),
            "{which:?}"
        );
        assert_eq!(role_event_count(&dir).await, 0, "{which:?}");
    }
}

#[tokio::test]
async fn the_recompute_job_applies_a_policy_to_every_user() {
    for which in backends() {
        let (_db, store, dir) = directory(which).await;
        let mut ids = Vec::new();
        for i in 0..30 {
            ids.push(dir.create_user(user(&format!("u{i:02}"))).await.unwrap().id);
        }
        let admins: Vec<Member> = ids[..10].iter().cloned().map(Member::new).collect();
        dir.create_group(group("Admins"), admins).await.unwrap();
        assert!(store.run_next_role_job().await.unwrap().is_none());

        // Two changes before a worker runs make one job, for the later.
        let first = dir.set_role_policy(policy(), None, "test").await.unwrap();
        let mut next = policy();
        next.default_role = Some("editor".into());
        let second = dir.set_role_policy(next, Some(1), "test").await.unwrap();
        assert_eq!(first.job, second.job, "{which:?}: coalesced");
        let queued = dir.role_job(&second.job).await.unwrap();
        assert_eq!(
            (queued.status, queued.policy_version),
            (JobStatus::Queued, 2)
        );

        let job = store.run_next_role_job().await.unwrap().unwrap();
        assert_eq!(job.id, second.job);
        assert_eq!(job.status, JobStatus::Done, "{which:?} {job:?}");
        assert_eq!((job.total, job.processed, job.changed), (30, 30, 30));
        assert!(job.started_at.is_some() && job.finished_at.is_some());
        let map = dir.effective_roles(&ids).await.unwrap();
        for (i, id) in ids.iter().enumerate() {
            let want = if i < 10 { "admin" } else { "editor" };
            assert_eq!(map[id].role_names(), [want], "{which:?} user {i}");
        }
        assert_eq!(role_event_count(&dir).await, 30);
        assert!(store.run_next_role_job().await.unwrap().is_none());

        // A change that moves only the admins changes only them.
        let mut demote = policy();
        demote.default_role = Some("editor".into());
        demote.mappings[0].role = "editor".into();
        let change = dir.set_role_policy(demote, None, "test").await.unwrap();
        assert_ne!(change.job, job.id, "a finished job is not reused");
        let job = store.run_next_role_job().await.unwrap().unwrap();
        assert_eq!((job.processed, job.changed), (30, 10), "{which:?}");
        assert_eq!(role_event_count(&dir).await, 40);
        let jobs = dir.role_jobs(10).await.unwrap();
        assert_eq!(jobs.len(), 2);
        assert_eq!(jobs[0].id, job.id, "newest first");
    }
}

#[tokio::test]
async fn removing_every_role_clears_stored_roles() {
    for which in backends() {
        let (_db, store, dir) = directory(which).await;
        dir.set_role_policy(policy(), None, "test").await.unwrap();
        let a = dir.create_user(user("alice")).await.unwrap();
        let b = dir.create_user(user("bob")).await.unwrap();
        store.run_next_role_job().await.unwrap().unwrap();
        let both = [a.id.clone(), b.id.clone()];
        assert_eq!(dir.effective_roles(&both).await.unwrap().len(), 2);

        // Locked users keep their roles through every change, so the last
        // role cannot go while someone is locked.
        dir.lock_user(&a.id, vec!["admin".into()], "vip", "ops")
            .await
            .unwrap();
        let e = dir
            .set_role_policy(no_roles(), None, "test")
            .await
            .unwrap_err();
        assert!(
            matches!(&e, StoreError::InvalidValue(m) if m.contains("locked")),
            "{which:?} {e:?}"
        );
        assert_eq!(dir.role_policy().await.unwrap().version, 1);
        dir.unlock_user(&a.id, "test").await.unwrap();

        let before = role_event_count(&dir).await;
        dir.set_role_policy(no_roles(), None, "test").await.unwrap();
        let job = store.run_next_role_job().await.unwrap().unwrap();
        assert_eq!((job.status, job.changed), (JobStatus::Done, 2), "{which:?}");
        assert!(dir.effective_roles(&both).await.unwrap().is_empty());
        assert_eq!(role_event_count(&dir).await, before + 2);
    }
}

#[tokio::test]
async fn a_dry_run_counts_and_samples_without_changing_anything() {
    for which in backends() {
        let (_db, store, dir) = directory(which).await;
        dir.set_role_policy(policy(), None, "test").await.unwrap();
        let mut ids = Vec::new();
        for i in 0..12 {
            ids.push(dir.create_user(user(&format!("u{i:02}"))).await.unwrap().id);
        }
        let admins: Vec<Member> = ids[..5].iter().cloned().map(Member::new).collect();
        dir.create_group(group("Admins"), admins).await.unwrap();
        dir.lock_user(&ids[0], vec!["admin".into()], "vip", "ops")
            .await
            .unwrap();
        let stored = dir.effective_roles(&ids).await.unwrap();
        let events = role_event_count(&dir).await;

        let mut demote = policy();
        demote.mappings[0] = Mapping {
            group: GroupMatch::DisplayName("admins".into()),
            role: "editor".into(),
            priority: 10,
        };
        let preview = dir.preview_role_policy(demote, 3).await.unwrap();
        // Five admins, one of them locked: four would change.
        assert_eq!((preview.users, preview.changed), (12, 4), "{which:?}");
        assert_eq!(preview.sample.len(), 3);
        for change in &preview.sample {
            assert!(ids[1..5].contains(&change.user_id), "{change:?}");
            assert_eq!(change.before.as_ref().unwrap().role_names(), ["admin"]);
            assert_eq!(change.after.as_ref().unwrap().role_names(), ["editor"]);
            assert!(change.user_name.starts_with('u'));
        }
        // Nothing changed.
        assert_eq!(dir.role_policy().await.unwrap().version, 1);
        assert_eq!(dir.effective_roles(&ids).await.unwrap(), stored);
        assert_eq!(role_event_count(&dir).await, events);
        assert!(store.run_next_role_job().await.unwrap().is_some());

        // Removing every role would take roles from everyone but nobody is
        // locked... except ids[0]; the dry run still reports it.
        let preview = dir.preview_role_policy(no_roles(), 0).await.unwrap();
        assert_eq!(preview.changed, 12, "{which:?}");
        assert!(preview.sample.is_empty());

        let mut bad = policy();
        bad.default_role = Some("root".into());
        assert!(matches!(
            dir.preview_role_policy(bad, 5).await,
            Err(StoreError::InvalidValue(_))
        ));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_runs_jobs_as_they_are_queued() {
    for which in backends() {
        let (_db, store, dir) = directory(which).await;
        let u = dir.create_user(user("alice")).await.unwrap();
        let (stop, rx) = tokio::sync::watch::channel(false);
        let worker = {
            let store = store.clone();
            tokio::spawn(async move { store.run_jobs(store::JobHandlers::builtin(), rx).await })
        };
        let change = dir.set_role_policy(policy(), None, "test").await.unwrap();
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let job = dir.role_job(&change.job).await.unwrap();
            if job.status == JobStatus::Done {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{which:?}: job not done: {job:?}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let map = dir
            .effective_roles(std::slice::from_ref(&u.id))
            .await
            .unwrap();
        assert_eq!(map[&u.id].role_names(), ["viewer"], "{which:?}");
        stop.send(true).unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(10), worker)
            .await
            .expect("the worker stops when told")
            .unwrap();
    }
}

#[tokio::test]
async fn every_admin_change_is_audited_in_its_transaction() {
    for which in backends() {
        let (_db, store) = store(which).await;
        let admin = store.admin();
        let t = tenant(&store, "acme").await;
        let other = tenant(&store, "other").await;
        let dir = store.tenant(&t);
        let u = dir.create_user(user("alice")).await.unwrap();
        let issued = admin
            .issue_token(
                &t,
                store::NewToken {
                    name: "entra".into(),
                    scopes: vec![store::Scope::ScimWrite],
                    expires_at: None,
                },
                "operator:ops@example.com",
            )
            .await
            .unwrap();
        admin
            .revoke_token(&t, issued.info.id, "operator:ops@example.com")
            .await
            .unwrap();
        admin
            .update_tenant(
                t.id(),
                TenantUpdate {
                    name: Some("Acme Corp".into()),
                    status: Some(TenantStatus::Suspended),
                },
                "operator:ops@example.com",
            )
            .await
            .unwrap();
        dir.set_role_policy(policy(), None, "tenant-admin:it@acme.example")
            .await
            .unwrap();
        dir.lock_user(
            &u.id,
            vec!["admin".into()],
            "vip",
            "tenant-admin:it@acme.example",
        )
        .await
        .unwrap();
        dir.unlock_user(&u.id, "tenant-admin:it@acme.example")
            .await
            .unwrap();
        // A refused change leaves no entry.
        assert!(
            dir.set_role_policy(policy(), Some(99), "tenant-admin:it@acme.example")
                .await
                .is_err()
        );

        let log = admin
            .audit_log(&AuditQuery {
                tenant: Some(t.id()),
                limit: 100,
                ..Default::default()
            })
            .await
            .unwrap();
        let actions: Vec<&str> = log.iter().map(|e| e.action.as_str()).collect();
        assert_eq!(
            actions,
            [
                "roles.unlock",
                "roles.lock",
                "roles.policy.set",
                "tenant.update",
                "token.revoke",
                "token.issue",
                "tenant.create"
            ],
            "{which:?}: newest first"
        );
        let update = &log[3];
        assert_eq!(update.actor, "operator:ops@example.com");
        assert_eq!(update.target, "acme");
        assert_eq!(
            update.detail["before"],
            json!({"name": "Tenant acme", "status": "active"})
        );
        assert_eq!(
            update.detail["after"],
            json!({"name": "Acme Corp", "status": "suspended"})
        );
        assert_eq!(log[1].target, format!("user {}", u.id));
        assert_eq!(log[1].detail["reason"], "vip");
        assert_eq!(log[2].detail["after"]["version"], 1);

        // Filters and paging.
        let mine = admin
            .audit_log(&AuditQuery {
                actor: Some("tenant-admin:it@acme.example".into()),
                limit: 100,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(mine.len(), 3);
        let page = admin
            .audit_log(&AuditQuery {
                tenant: Some(t.id()),
                before_id: Some(log[2].id),
                limit: 2,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(page, log[3..5].to_vec());

        // The record of a deletion outlives the tenant.
        admin
            .delete_tenant(t.id(), "operator:ops@example.com")
            .await
            .unwrap();
        let after = admin
            .audit_log(&AuditQuery {
                tenant: Some(t.id()),
                limit: 100,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(after.len(), log.len() + 1, "{which:?}");
        assert_eq!(after[0].action, "tenant.delete");
        let others = admin
            .audit_log(&AuditQuery {
                tenant: Some(other.id()),
                limit: 100,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(others.len(), 1, "only its creation");
    }
}

#[tokio::test]
async fn tenant_admin_logins() {
    for which in backends() {
        let (_db, store) = store(which).await;
        let admin = store.admin();
        let t = tenant(&store, "acme").await;
        let other = tenant(&store, "other").await;
        let created = admin
            .create_tenant_admin(&t, " IT@Acme.example ", "a long password", "test")
            .await
            .unwrap();
        assert_eq!(created.email, "IT@Acme.example");

        let who = admin
            .verify_tenant_admin(&t, "it@acme.EXAMPLE", "a long password")
            .await
            .unwrap()
            .expect("right password");
        assert_eq!(who.id, created.id.to_string());
        assert_eq!(who.tenant.as_ref().map(|t| t.id()), Some(t.id()));
        for (tenant, email, password) in [
            (&t, "it@acme.example", "a long passworD"),
            (&t, "nobody@acme.example", "a long password"),
            (&other, "it@acme.example", "a long password"),
        ] {
            assert!(
                admin
                    .verify_tenant_admin(tenant, email, password)
                    .await
                    .unwrap()
                    .is_none(),
                "{which:?}: {email} on {}",
                tenant.slug()
            );
        }
        // Not an operator.
        assert!(
            admin
                .verify_operator("it@acme.example", "a long password")
                .await
                .unwrap()
                .is_none()
        );

        let e = admin
            .create_tenant_admin(&t, "it@ACME.example", "another long one", "test")
            .await
            .unwrap_err();
        assert!(matches!(e, StoreError::Uniqueness(_)), "{which:?} {e:?}");
        let e = admin
            .create_tenant_admin(&t, "x@acme.example", "short", "test")
            .await
            .unwrap_err();
        assert!(matches!(e, StoreError::InvalidValue(_)), "{e:?}");
        // The same person may administer another tenant.
        admin
            .create_tenant_admin(&other, "it@acme.example", "a long password", "test")
            .await
            .unwrap();

        assert_eq!(
            admin.list_tenant_admins(&t).await.unwrap(),
            std::slice::from_ref(&created)
        );
        let e = admin
            .delete_tenant_admin(&other, created.id, "test")
            .await
            .unwrap_err();
        assert!(matches!(e, StoreError::NotFound(_)), "{which:?}: scoped");
        admin
            .delete_tenant_admin(&t, created.id, "test")
            .await
            .unwrap();
        assert!(admin.list_tenant_admins(&t).await.unwrap().is_empty());
        assert!(
            admin
                .verify_tenant_admin(&t, "it@acme.example", "a long password")
                .await
                .unwrap()
                .is_none()
        );
    }
}

#[tokio::test]
async fn operator_logins() {
    for which in backends() {
        let (_db, store) = store(which).await;
        let admin = store.admin();
        let id = admin
            .create_operator("Ops@Example.com", "correct horse battery", "test")
            .await
            .unwrap();
        let who = admin
            .verify_operator("ops@example.com", "correct horse battery")
            .await
            .unwrap()
            .expect("right password");
        assert_eq!((who.id, who.tenant.is_none()), (id.to_string(), true));
        assert!(
            admin
                .verify_operator("ops@example.com", "wrong")
                .await
                .unwrap()
                .is_none(),
            "{which:?}"
        );
    }
}

#[tokio::test]
async fn a_dry_run_predicts_what_the_job_changes() {
    for which in backends() {
        let (_db, store, dir) = directory(which).await;
        let mut ids = Vec::new();
        for i in 0..5 {
            ids.push(dir.create_user(user(&format!("u{i}"))).await.unwrap().id);
        }
        let admins = ids[..2].iter().cloned().map(Member::new).collect();
        dir.create_group(group("Admins"), admins).await.unwrap();
        // No default role: only the two admins get a role.
        let mut p = policy();
        p.default_role = None;
        let preview = dir.preview_role_policy(p.clone(), 10).await.unwrap();
        assert_eq!((preview.users, preview.changed), (5, 2), "{which:?}");
        dir.set_role_policy(p, None, "test").await.unwrap();
        let job = store.run_next_role_job().await.unwrap().unwrap();
        assert_eq!((job.processed, job.changed), (5, 2), "{which:?}");
        assert_eq!(role_event_count(&dir).await, 2);
        // Users with no role still have their (empty) result stored.
        assert_eq!(dir.effective_roles(&ids).await.unwrap().len(), 5);
    }
}
