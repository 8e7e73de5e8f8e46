//! Reconciliation of an outbound SCIM target, as a background job
//! (`scim_reconcile`, payload `{"target": "<uuid>", "dryRun": true}`).
//!
//! It lists the application's users and groups over SCIM, compares them
//! with the tenant's directory through the remote-id map, and reports the
//! drift in the job's result: resources **missing** at the application,
//! **extra** ones scimgate pushed whose source is gone, and **different**
//! ones (userName, active, roles; a group's displayName and members).
//! With `"dryRun": false` it repairs each through the same requests as
//! delivery (upsert, member PATCH, DELETE); members the application has
//! that scimgate never pushed are left alone.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use serde_json::{Value, json};
use store::delivery::TargetKind;
use store::{
    JobContext, JobError, JobHandler, JobProgress, JobResult, ListQuery, NewJob, Store, TenantStore,
};
use uuid::Uuid;

use crate::address::AddressPolicy;
use crate::config::DeliveryConfig;
use crate::outbound::{Fail, Kind, ScimApp};
use crate::secrets::SecretBox;

/// The job kind.
pub const KIND: &str = "scim_reconcile";

/// The most entries of each list a report shows (the counts are exact).
pub const MAX_REPORTED: usize = 100;

/// A reconciliation job of `target`; `dry_run` only reports.
pub fn job(target: Uuid, dry_run: bool) -> NewJob {
    NewJob::new(KIND, json!({"target": target, "dryRun": dry_run}))
}

/// The job handler.
pub struct Reconcile {
    store: Store,
    secrets: Option<SecretBox>,
    client: reqwest::Client,
    policy: AddressPolicy,
    excerpt: usize,
}

impl Reconcile {
    /// A handler using the delivery settings (address policy, timeout).
    pub fn new(
        store: Store,
        config: &DeliveryConfig,
        secrets: Option<SecretBox>,
    ) -> Result<Reconcile, crate::http::HttpError> {
        let policy = AddressPolicy {
            allow_private: config.allow_private_targets,
        };
        Ok(Reconcile {
            client: crate::http::client(&policy, config.timeout)?,
            store,
            secrets,
            policy,
            excerpt: config.response_excerpt,
        })
    }

    fn app(
        &self,
        dir: &TenantStore,
        t: &store::delivery::Target,
        sealed: &str,
    ) -> Result<ScimApp, JobError> {
        let (target, url) = (t.id, t.url.as_str());
        let Some(key) = &self.secrets else {
            return Err(JobError::Retryable(
                "no delivery_secrets_key is configured".into(),
            ));
        };
        let token = key
            .open(sealed)
            .map_err(|e| JobError::Permanent(format!("cannot open the target's token: {e}")))?;
        let base = self
            .policy
            .check_url(url)
            .map_err(|e| JobError::Permanent(e.to_string()))?;
        Ok(ScimApp {
            base,
            token,
            target,
            links: self.store.delivery(),
            tenant: Some(dir.clone()),
            profile: t.profile,
            pacer: crate::outbound::Pacer::of(target),
            mapping: t
                .mapping
                .as_ref()
                .map(mapping::Mapping::parse)
                .transpose()
                .map_err(|e| JobError::Permanent(format!("the target's mapping: {e}")))?
                .map(Arc::new),
        })
    }
}

/// Repairs stop between resources once the job is cancelled.
fn stop_if_cancelled(ctx: &JobContext) -> Result<(), JobError> {
    if ctx.is_cancelled() {
        Err(JobError::Cancelled)
    } else {
        Ok(())
    }
}

fn failed(f: Fail) -> JobError {
    if f.transient() {
        JobError::Retryable(f.to_string())
    } else {
        JobError::Permanent(f.to_string())
    }
}

/// One kind of drift, with how many and the first few names.
#[derive(Default)]
struct Drift {
    count: usize,
    items: Vec<Value>,
}

impl Drift {
    fn push(&mut self, item: Value) {
        self.count += 1;
        if self.items.len() < MAX_REPORTED {
            self.items.push(item);
        }
    }

    fn json(&self) -> Value {
        json!({"count": self.count, "items": self.items})
    }
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

fn role_names(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .map(|a| a.iter().map(|r| text(&r["value"])).collect())
        .unwrap_or_default()
}

async fn every(dir: &TenantStore, users: bool) -> Result<Vec<store::Resource>, JobError> {
    let mut out = Vec::new();
    loop {
        let query = ListQuery {
            filter: None,
            sort_by: None,
            descending: false,
            start_index: out.len() as u64 + 1,
            count: 1000,
            with_members: !users,
            user_extras: Default::default(),
        };
        let page = if users {
            dir.list_users(&query).await?
        } else {
            dir.list_groups(&query).await?
        };
        let n = page.resources.len();
        out.extend(page.resources);
        if n == 0 || out.len() as u64 >= page.total {
            return Ok(out);
        }
    }
}

impl JobHandler for Reconcile {
    fn kind(&self) -> &'static str {
        KIND
    }

    async fn run(&self, ctx: JobContext) -> Result<JobResult, JobError> {
        let Some(dir) = ctx.tenant().cloned() else {
            return Err(JobError::Permanent(
                "a reconciliation belongs to a tenant".into(),
            ));
        };
        let payload = ctx.payload().clone();
        let target = payload["target"]
            .as_str()
            .and_then(|t| Uuid::parse_str(t).ok())
            .ok_or_else(|| JobError::Permanent("the payload names no target".into()))?;
        let dry_run = payload["dryRun"].as_bool().unwrap_or(true);
        let t = dir.target(target).await?;
        if t.kind != TargetKind::Scim {
            return Err(JobError::Permanent(
                "only outbound SCIM targets are reconciled".into(),
            ));
        }
        let leased = self
            .store
            .delivery()
            .target(target)
            .await?
            .ok_or_else(|| JobError::Permanent(format!("target {target} is gone")))?;
        let app = self.app(&dir, &t, &leased.secrets.current)?;
        let mut s = app.session(&self.client, &self.policy, self.excerpt);
        let links = self.store.delivery();

        // What each side holds.
        let remote_users: HashMap<String, Value> = s
            .list_all(Kind::User)
            .await
            .map_err(failed)?
            .into_iter()
            .map(|u| (text(&u["id"]), u))
            .collect();
        let remote_groups: HashMap<String, Value> = s
            .list_all(Kind::Group)
            .await
            .map_err(failed)?
            .into_iter()
            .map(|g| (text(&g["id"]), g))
            .collect();
        let users = every(&dir, true).await?;
        let groups = every(&dir, false).await?;
        let user_ids: Vec<String> = users.iter().map(|u| u.id.clone()).collect();
        let roles = dir.effective_roles(&user_ids).await?;
        let user_links: HashMap<String, String> = links
            .remote_ids(target, Kind::User.name())
            .await?
            .into_iter()
            .collect();
        let group_links: HashMap<String, String> = links
            .remote_ids(target, Kind::Group.name())
            .await?
            .into_iter()
            .collect();
        ctx.progress(JobProgress {
            total: (users.len() + groups.len()) as u64,
            processed: 0,
            changed: 0,
        })
        .await?;

        let (mut missing_users, mut different_users, mut extra_users) =
            (Drift::default(), Drift::default(), Drift::default());
        let mut fix_users: Vec<String> = Vec::new();
        for u in &users {
            let name = text(&u.document["userName"]);
            let remote = user_links.get(&u.id).and_then(|r| remote_users.get(r));
            let Some(remote) = remote else {
                missing_users.push(json!({"id": u.id, "userName": name}));
                fix_users.push(u.id.clone());
                continue;
            };
            let mut diff = Vec::new();
            if !text(&remote["userName"]).eq_ignore_ascii_case(&name) {
                diff.push("userName");
            }
            let active = u.document["active"].as_bool().unwrap_or(true);
            if remote["active"].as_bool().unwrap_or(true) != active {
                diff.push("active");
            }
            let want: BTreeSet<String> = roles
                .get(&u.id)
                .map(|e| e.roles.iter().map(|r| r.role.clone()).collect())
                .unwrap_or_default();
            if role_names(&remote["roles"]) != want {
                diff.push("roles");
            }
            if !diff.is_empty() {
                different_users.push(json!({"id": u.id, "userName": name, "attributes": diff}));
                fix_users.push(u.id.clone());
            }
        }
        let local_users: HashSet<&str> = users.iter().map(|u| u.id.as_str()).collect();
        let mut gone_users = Vec::new();
        for (local, remote) in &user_links {
            if !local_users.contains(local.as_str()) && remote_users.contains_key(remote) {
                extra_users.push(json!({"id": local, "remoteId": remote,
                    "userName": text(&remote_users[remote]["userName"])}));
                gone_users.push(local.clone());
            }
        }

        // Members are compared by remote id, over the members scimgate
        // pushed (the application may have members of its own).
        let managed: HashSet<&str> = user_links
            .values()
            .chain(group_links.values())
            .map(String::as_str)
            .collect();
        let (mut missing_groups, mut different_groups, mut extra_groups) =
            (Drift::default(), Drift::default(), Drift::default());
        let mut fix_groups: Vec<(String, Vec<String>, Vec<String>)> = Vec::new();
        for g in &groups {
            let name = text(&g.document["displayName"]);
            let want: Vec<String> = g
                .members
                .iter()
                .flatten()
                .map(|m| m.value.clone())
                .collect();
            let remote = group_links.get(&g.id).and_then(|r| remote_groups.get(r));
            let Some(remote) = remote else {
                missing_groups.push(json!({"id": g.id, "displayName": name}));
                fix_groups.push((g.id.clone(), want, Vec::new()));
                continue;
            };
            let have: HashSet<String> = remote["members"]
                .as_array()
                .map(|a| a.iter().map(|m| text(&m["value"])).collect())
                .unwrap_or_default();
            let want_remote: HashSet<String> = want
                .iter()
                .filter_map(|m| user_links.get(m).or_else(|| group_links.get(m)).cloned())
                .collect();
            let add: Vec<String> = want
                .iter()
                .filter(|m| {
                    user_links
                        .get(*m)
                        .or_else(|| group_links.get(*m))
                        .is_none_or(|r| !have.contains(r))
                })
                .cloned()
                .collect();
            let remove: Vec<String> = have
                .iter()
                .filter(|r| managed.contains(r.as_str()) && !want_remote.contains(*r))
                .cloned()
                .collect();
            let mut diff = Vec::new();
            if !text(&remote["displayName"]).eq(&name) {
                diff.push("displayName");
            }
            if !add.is_empty() || !remove.is_empty() {
                diff.push("members");
            }
            if !diff.is_empty() {
                different_groups.push(json!({"id": g.id, "displayName": name,
                    "attributes": diff, "membersMissing": add.len(),
                    "membersExtra": remove.len()}));
                fix_groups.push((g.id.clone(), add, remove));
            }
        }
        let local_groups: HashSet<&str> = groups.iter().map(|g| g.id.as_str()).collect();
        let mut gone_groups = Vec::new();
        for (local, remote) in &group_links {
            if !local_groups.contains(local.as_str()) && remote_groups.contains_key(remote) {
                extra_groups.push(json!({"id": local, "remoteId": remote,
                    "displayName": text(&remote_groups[remote]["displayName"])}));
                gone_groups.push(local.clone());
            }
        }

        let mut changed = 0u64;
        if !dry_run {
            for id in &fix_users {
                stop_if_cancelled(&ctx)?;
                s.push_user(id).await.map_err(failed)?;
                changed += 1;
            }
            for (id, add, remove) in &fix_groups {
                stop_if_cancelled(&ctx)?;
                let Some(remote) = s.push_group(id).await.map_err(failed)? else {
                    continue;
                };
                let mut add_remote = Vec::new();
                for m in add {
                    let r = match links.remote_id(target, Kind::User.name(), m).await? {
                        Some(r) => Some(r),
                        None => s.push_user(m).await.map_err(failed)?,
                    };
                    add_remote.extend(r);
                }
                s.patch_members(&remote, &add_remote, remove)
                    .await
                    .map_err(failed)?;
                changed += 1;
            }
            for id in &gone_groups {
                s.remove(Kind::Group, id).await.map_err(failed)?;
                changed += 1;
            }
            for id in &gone_users {
                s.remove(Kind::User, id).await.map_err(failed)?;
                changed += 1;
            }
        }
        ctx.progress(JobProgress {
            total: (users.len() + groups.len()) as u64,
            processed: (users.len() + groups.len()) as u64,
            changed,
        })
        .await?;
        Ok(JobResult {
            summary: Some(json!({
                "target": target,
                "dryRun": dry_run,
                "users": {"missing": missing_users.json(), "extra": extra_users.json(),
                          "different": different_users.json()},
                "groups": {"missing": missing_groups.json(), "extra": extra_groups.json(),
                           "different": different_groups.json()},
                "repaired": changed,
            })),
        })
    }
}
