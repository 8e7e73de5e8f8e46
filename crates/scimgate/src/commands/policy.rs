//! `scimgate role ...`, `lock`, `unlock`, `locks`: a tenant's role policy
//! and its role-locks.
//!
//! Every policy change is one [`roles::PolicyEdit`] made by
//! `tenant_admin::service::change_policy`, the code the admin API runs:
//! applied to the policy read, stored only if that version is still
//! current, applied once more to the newer policy after a concurrent
//! change, and refused after a second one. A change that changes nothing
//! stores nothing. `--dry-run` previews the result and stores nothing.
//! Otherwise the command runs the queued recompute job itself
//! (a running server may claim it first: claims are atomic, and the command
//! then waits for the server to finish it) unless `--no-wait`.

use std::fmt::Write as _;
use std::time::Duration;

use roles::{EditError, Effective, GroupMatch, Mapping, Mode, Policy, PolicyEdit, Role};
use serde_json::{Value, json};
use store::{
    JobStatus, LockInfo, PreviewChange, Resource, RoleJob, RolePreview, Store, StoreError,
    StoredPolicy,
};
use tenant_admin::service::{
    self, ChangeOptions, NoOp, PolicyOutcome, PolicyRequest, ServiceError, TenantContext,
};

use super::{CommandError, Output, table, tenant_context, time};
use crate::cli::{ChangeArgs, LockArgs, ModeArg, RoleCommand};
use crate::config::Config;
use crate::server::open_store;

/// How often to look at a job another process is running.
const JOB_POLL: Duration = Duration::from_millis(200);

/// `scimgate role ...`.
pub async fn role(config: &Config, command: RoleCommand) -> Result<Output, CommandError> {
    let store = open_store(config).await?;
    match command {
        RoleCommand::Show { tenant } => show(&store, &tenant).await,
        RoleCommand::Jobs { tenant, limit } => jobs(&store, &tenant, limit).await,
        RoleCommand::Add {
            tenant,
            name,
            description,
            change: args,
        } => {
            let what = format!("add role {name:?}");
            let edit = PolicyEdit::AddRole(Role {
                name,
                description: description.unwrap_or_default(),
            });
            change(&store, &tenant, args, what, PolicyRequest::Edit(edit)).await
        }
        RoleCommand::Describe {
            tenant,
            name,
            description,
            change: args,
        } => {
            let what = format!("describe role {name:?}");
            let edit = PolicyEdit::DescribeRole { name, description };
            change(&store, &tenant, args, what, PolicyRequest::Edit(edit)).await
        }
        RoleCommand::Remove {
            tenant,
            name,
            change: args,
        } => {
            let what = format!("remove role {name:?}");
            change(
                &store,
                &tenant,
                args,
                what,
                PolicyRequest::Edit(PolicyEdit::RemoveRole(name)),
            )
            .await
        }
        RoleCommand::Default {
            tenant,
            role,
            none,
            change: args,
        } => {
            // clap requires exactly one of ROLE and --none.
            let role = if none { None } else { role };
            let what = match &role {
                Some(role) => format!("set the default role to {role:?}"),
                None => "clear the default role".to_owned(),
            };
            change(
                &store,
                &tenant,
                args,
                what,
                PolicyRequest::Edit(PolicyEdit::SetDefault(role)),
            )
            .await
        }
        RoleCommand::Mode {
            tenant,
            mode,
            change: args,
        } => {
            let mode = match mode {
                ModeArg::Single => Mode::Single,
                ModeArg::Multi => Mode::Multi,
            };
            let what = format!("set the mode to {}", mode_str(mode));
            change(
                &store,
                &tenant,
                args,
                what,
                PolicyRequest::Edit(PolicyEdit::SetMode(mode)),
            )
            .await
        }
        RoleCommand::Map {
            tenant,
            group_name,
            group_id,
            group_external_id,
            role,
            priority,
            change: args,
        } => {
            // clap requires exactly one of the three.
            let group = match (group_name, group_id, group_external_id) {
                (Some(name), _, _) => GroupMatch::DisplayName(name),
                (None, Some(id), _) => GroupMatch::Id(id),
                (None, None, Some(external)) => GroupMatch::ExternalId(external),
                (None, None, None) => {
                    return Err(CommandError::Refused(
                        "name the group with --group-name, --group-id or --group-external-id"
                            .into(),
                    ));
                }
            };
            let mapping = Mapping {
                group,
                role,
                priority,
            };
            let what = format!("map {}", mapping_text(&mapping));
            change(
                &store,
                &tenant,
                args,
                what,
                PolicyRequest::Edit(PolicyEdit::AddMapping(mapping)),
            )
            .await
        }
        RoleCommand::Unmap {
            tenant,
            mapping_id,
            change: args,
        } => {
            let what = format!("remove mapping {mapping_id}");
            let request = PolicyRequest::RemoveMapping(mapping_id.clone());
            match change(&store, &tenant, args, what, request).await {
                Err(CommandError::Refused(_)) => Err(CommandError::Refused(format!(
                    "there is no mapping with id {mapping_id:?} (see `scimgate role show`)"
                ))),
                other => other,
            }
        }
    }
}

/// Applies one edit to the stored policy: previews it, or stores it and
/// (unless `--no-wait`) runs its recompute job.
async fn change(
    store: &Store,
    slug: &str,
    args: ChangeArgs,
    what: String,
    request: PolicyRequest,
) -> Result<Output, CommandError> {
    let ctx = tenant_context(store, slug).await?;
    let dir = ctx.store();
    let slug = ctx.tenant().slug();
    let options = ChangeOptions {
        expected: None,
        dry_run: args.dry_run,
        no_op: NoOp::Skip,
    };
    let outcome = match service::change_policy(&ctx, &request, options).await {
        Err(ServiceError::Edit { source, .. }) => {
            let current = service::get_policy(&ctx).await?;
            return Err(edit_error(source, &current));
        }
        other => other?,
    };
    let stored = match outcome {
        PolicyOutcome::Unchanged(current) => {
            return Ok(Output {
                json: json!({
                    "tenant": slug,
                    "change": what,
                    "dry_run": args.dry_run,
                    "unchanged": true,
                    "version": current.version,
                }),
                text: format!(
                    "Nothing to change: the role policy of tenant {slug:?} already says that (version {}).",
                    current.version
                ),
            });
        }
        PolicyOutcome::DryRun { current, preview } => {
            return Ok(dry_run_output(slug, &what, &current, &preview));
        }
        PolicyOutcome::Stored(stored) => stored,
    };
    let version = stored.stored.version;
    let mut text =
        format!("Stored version {version} of the role policy of tenant {slug:?}: {what}.\n");
    let job = if args.no_wait {
        let job = dir.role_job(&stored.job).await?;
        let _ = writeln!(
            text,
            "Queued recompute job {}: a running server applies it (see `scimgate role jobs {slug}`).",
            job.id
        );
        job
    } else {
        let job = wait_for_job(store, &ctx, &stored.job).await?;
        if matches!(job.status, JobStatus::Failed | JobStatus::Cancelled) {
            let error = match job.status {
                JobStatus::Cancelled => "it was cancelled".to_owned(),
                _ => job.error.unwrap_or_default(),
            };
            return Err(CommandError::JobFailed {
                version,
                job: job.id,
                error,
            });
        }
        let _ = writeln!(
            text,
            "Recompute job {}: {}, {} processed, {} changed.",
            job.id,
            job.status.as_str(),
            users(job.processed),
            job.changed
        );
        job
    };
    Ok(Output {
        json: json!({
            "tenant": slug,
            "change": what,
            "dry_run": false,
            "version": version,
            "policy": policy_json(&stored.stored),
            "job": job_json(&job),
        }),
        text,
    })
}

fn dry_run_output(slug: &str, what: &str, current: &StoredPolicy, preview: &RolePreview) -> Output {
    let mut text = format!(
        "Dry run ({what}): {} of the {} of tenant {slug:?} would get other roles. Nothing was stored.\n",
        preview.changed,
        users(preview.users)
    );
    text.push_str(&preview_text(preview));
    Output {
        json: json!({
            "tenant": slug,
            "change": what,
            "dry_run": true,
            "version": current.version,
            "preview": preview_json(preview),
        }),
        text,
    }
}

/// The edit's refusal, naming a mapping by the id `role unmap` takes
/// rather than by its position.
fn edit_error(e: EditError, current: &StoredPolicy) -> CommandError {
    if let EditError::RoleInUse { role, used_by } = &e {
        let mapping = current
            .mapping_ids
            .iter()
            .zip(&current.policy.mappings)
            .find(|(_, m)| m.role == *role);
        if let (Some((id, m)), true) = (mapping, used_by.starts_with("mappings")) {
            return CommandError::Refused(format!(
                "role policy: role {role:?} is still used by mapping {id} ({}); remove it first with `scimgate role unmap`",
                mapping_text(m)
            ));
        }
    }
    e.into()
}

/// Runs waiting recompute jobs, oldest first, until `id` has finished;
/// while another process (a server) runs it, waits for that.
async fn wait_for_job(
    store: &Store,
    ctx: &TenantContext,
    id: &str,
) -> Result<RoleJob, CommandError> {
    loop {
        let job = service::get_role_job(ctx, id).await?;
        if job.status.is_finished() {
            return Ok(job);
        }
        if store.run_next_role_job().await?.is_none() {
            tokio::time::sleep(JOB_POLL).await;
        }
    }
}

async fn show(store: &Store, slug: &str) -> Result<Output, CommandError> {
    let ctx = tenant_context(store, slug).await?;
    let slug = ctx.tenant().slug();
    let stored = service::get_policy(&ctx).await?;
    let latest = service::list_role_jobs(&ctx, Some(1))
        .await?
        .into_iter()
        .next();
    let policy = &stored.policy;

    let mut text = String::new();
    if policy.roles.is_empty() {
        let _ = writeln!(
            text,
            "Tenant {slug:?} defines no roles (policy version {}): `scimgate role add {slug} NAME` defines one.",
            stored.version
        );
    } else {
        let default = policy
            .default_role
            .as_ref()
            .map_or_else(|| "none".to_owned(), |r| format!("{r:?}"));
        let _ = writeln!(
            text,
            "Role policy of tenant {slug:?}: version {}, mode {}, default role {default}.",
            stored.version,
            mode_str(policy.mode)
        );
        let _ = writeln!(text);
        let mut rows = vec![["ROLE".to_owned(), "DESCRIPTION".to_owned()]];
        for r in &policy.roles {
            rows.push([r.name.clone(), r.description.clone()]);
        }
        text.push_str(&table(&rows));
        let _ = writeln!(text);
        if policy.mappings.is_empty() {
            let _ = writeln!(
                text,
                "No group mappings: `scimgate role map {slug} --group-name NAME --role ROLE` adds one."
            );
        } else {
            let mut rows = vec![[
                "MAPPING ID".to_owned(),
                "GROUP".to_owned(),
                "ROLE".to_owned(),
                "PRIORITY".to_owned(),
            ]];
            for (id, m) in stored.mapping_ids.iter().zip(&policy.mappings) {
                rows.push([
                    id.clone(),
                    group_text(&m.group),
                    m.role.clone(),
                    m.priority.to_string(),
                ]);
            }
            text.push_str(&table(&rows));
        }
    }
    if let Some(job) = &latest {
        let _ = writeln!(text);
        let _ = writeln!(
            text,
            "Latest recompute job {} (policy version {}): {}, {} of {} processed, {} changed{}.",
            job.id,
            job.policy_version,
            job.status.as_str(),
            job.processed,
            users(job.total),
            job.changed,
            job.error
                .as_ref()
                .map(|e| format!(" ({e})"))
                .unwrap_or_default()
        );
    }
    let mut json = policy_json(&stored);
    if let Value::Object(map) = &mut json {
        map.insert("tenant".into(), Value::from(slug));
        map.insert(
            "latest_job".into(),
            latest.as_ref().map_or(Value::Null, job_json),
        );
    }
    Ok(Output { json, text })
}

async fn jobs(store: &Store, slug: &str, limit: u64) -> Result<Output, CommandError> {
    let ctx = tenant_context(store, slug).await?;
    let tenant = ctx.tenant();
    let jobs = service::list_role_jobs(&ctx, Some(limit)).await?;
    let mut rows = vec![[
        "ID".to_owned(),
        "STATUS".to_owned(),
        "VERSION".to_owned(),
        "PROCESSED".to_owned(),
        "CHANGED".to_owned(),
        "CREATED".to_owned(),
        "FINISHED".to_owned(),
    ]];
    for j in &jobs {
        rows.push([
            j.id.clone(),
            j.status.as_str().to_owned(),
            j.policy_version.to_string(),
            format!("{}/{}", j.processed, j.total),
            j.changed.to_string(),
            time(j.created_at),
            j.finished_at.map(time).unwrap_or_else(|| "-".to_owned()),
        ]);
    }
    let text = if jobs.is_empty() {
        format!(
            "Tenant {:?} has no recompute jobs: its role policy never changed.",
            tenant.slug()
        )
    } else {
        let mut text = table(&rows);
        for j in jobs.iter().filter(|j| j.error.is_some()) {
            let _ = writeln!(
                text,
                "job {} failed: {}",
                j.id,
                j.error.as_deref().unwrap_or_default()
            );
        }
        text
    };
    Ok(Output {
        json: json!({
            "tenant": tenant.slug(),
            "jobs": jobs.iter().map(job_json).collect::<Vec<_>>(),
        }),
        text,
    })
}

/// `scimgate lock TENANT USER --role R... --reason TEXT`.
pub async fn lock(config: &Config, args: LockArgs) -> Result<Output, CommandError> {
    let store = open_store(config).await?;
    let ctx = tenant_context(&store, &args.tenant).await?;
    let tenant = ctx.tenant();
    let (user_id, user_name) = find_user(&ctx, &args.user).await?;
    // clap requires --role or --no-role, never both.
    let roles = if args.no_role { Vec::new() } else { args.roles };
    let info = service::lock_user(&ctx, &user_id, roles, &args.reason).await?;
    let effective = service::effective_role_names(&ctx, &user_id).await?;
    let roles_text = if info.roles.is_empty() {
        "no role".to_owned()
    } else {
        info.roles.join(", ")
    };
    Ok(Output {
        json: json!({
            "tenant": tenant.slug(),
            "lock": lock_json(&info, Some(&user_name)),
            "effective_roles": effective,
        }),
        text: format!(
            "Locked user {user_name} ({user_id}) of tenant {:?} to {roles_text}: {}.\nThe lock holds whatever their groups until `scimgate unlock {} {user_name}`.",
            tenant.slug(),
            info.reason,
            tenant.slug()
        ),
    })
}

/// `scimgate unlock TENANT USER`.
pub async fn unlock(config: &Config, tenant: &str, user: &str) -> Result<Output, CommandError> {
    let store = open_store(config).await?;
    let ctx = tenant_context(&store, tenant).await?;
    let tenant = ctx.tenant();
    let (user_id, user_name) = find_user(&ctx, user).await?;
    match service::unlock_user(&ctx, &user_id).await {
        Err(ServiceError::Store(StoreError::NotFound(_))) => {
            return Err(CommandError::Refused(format!(
                "user {user_name} ({user_id}) of tenant {:?} is not locked",
                tenant.slug()
            )));
        }
        other => other?,
    }
    let effective = service::effective_role_names(&ctx, &user_id).await?;
    let roles_text = if effective.is_empty() {
        "no role".to_owned()
    } else {
        effective.join(", ")
    };
    Ok(Output {
        json: json!({
            "tenant": tenant.slug(),
            "unlocked": { "user_id": user_id, "user_name": user_name },
            "effective_roles": effective,
        }),
        text: format!(
            "Unlocked user {user_name} ({user_id}) of tenant {:?}; the policy now gives them {roles_text}.",
            tenant.slug()
        ),
    })
}

/// `scimgate locks TENANT`.
pub async fn locks(config: &Config, tenant: &str) -> Result<Output, CommandError> {
    let store = open_store(config).await?;
    let ctx = tenant_context(&store, tenant).await?;
    let tenant = ctx.tenant();
    let locks = service::list_locks(&ctx).await?;
    let mut named = Vec::with_capacity(locks.len());
    for lock in locks {
        let user_name = match service::get_user(&ctx, &lock.user_id).await {
            Ok(details) => Some(user_name_of(&details.user)),
            Err(ServiceError::Store(StoreError::NotFound(_))) => None,
            Err(e) => return Err(e.into()),
        };
        named.push((lock, user_name));
    }
    let mut rows = vec![[
        "USER".to_owned(),
        "USERNAME".to_owned(),
        "ROLES".to_owned(),
        "BY".to_owned(),
        "AT".to_owned(),
        "REASON".to_owned(),
    ]];
    for (lock, user_name) in &named {
        rows.push([
            lock.user_id.clone(),
            user_name.clone().unwrap_or_else(|| "-".to_owned()),
            if lock.roles.is_empty() {
                "(none)".to_owned()
            } else {
                lock.roles.join(",")
            },
            lock.locked_by.clone(),
            time(lock.locked_at),
            lock.reason.clone(),
        ]);
    }
    let text = if named.is_empty() {
        format!("Tenant {:?} has no role-locks.", tenant.slug())
    } else {
        table(&rows)
    };
    Ok(Output {
        json: json!({
            "tenant": tenant.slug(),
            "locks": named
                .iter()
                .map(|(lock, name)| lock_json(lock, name.as_deref()))
                .collect::<Vec<_>>(),
        }),
        text,
    })
}

/// A user by id, else by userName (compared as SCIM compares it:
/// case-insensitively, and userNames are unique that way).
async fn find_user(ctx: &TenantContext, given: &str) -> Result<(String, String), CommandError> {
    match service::find_user(ctx, given).await {
        Ok(user) => Ok((user.id.clone(), user_name_of(&user))),
        Err(ServiceError::NotFound(_)) => Err(CommandError::NoSuchUser {
            tenant: ctx.tenant().slug().to_owned(),
            user: given.to_owned(),
        }),
        Err(e) => Err(e.into()),
    }
}

fn user_name_of(user: &Resource) -> String {
    user.document
        .get("userName")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn names(effective: Option<&Effective>) -> Vec<String> {
    effective
        .map(|e| e.role_names().into_iter().map(str::to_owned).collect())
        .unwrap_or_default()
}

/// `1 user`, `3 users`.
fn users(n: u64) -> String {
    if n == 1 {
        "1 user".to_owned()
    } else {
        format!("{n} users")
    }
}

fn mode_str(mode: Mode) -> &'static str {
    match mode {
        Mode::Single => "single",
        Mode::Multi => "multi",
    }
}

/// `displayName "Admins"`.
fn group_text(group: &GroupMatch) -> String {
    format!("{} {:?}", group.attribute(), group.value())
}

/// `group displayName "Admins" to role "admin" (priority 10)`.
fn mapping_text(m: &Mapping) -> String {
    format!(
        "group {} to role {:?} (priority {})",
        group_text(&m.group),
        m.role,
        m.priority
    )
}

fn roles_text(effective: Option<&Effective>) -> String {
    let names = names(effective);
    let mut text = if names.is_empty() {
        "(none)".to_owned()
    } else {
        names.join(", ")
    };
    if effective.is_some_and(|e| e.disabled) {
        text.push_str(" (disabled)");
    }
    text
}

fn preview_text(preview: &RolePreview) -> String {
    let mut text = String::new();
    for PreviewChange {
        user_name,
        before,
        after,
        ..
    } in &preview.sample
    {
        let _ = writeln!(
            text,
            "  {user_name}: {} → {}",
            roles_text(before.as_ref()),
            roles_text(after.as_ref())
        );
    }
    let shown = preview.sample.len() as u64;
    if preview.changed > shown {
        let _ = writeln!(text, "  ... and {} more", preview.changed - shown);
    }
    text
}

fn preview_json(preview: &RolePreview) -> Value {
    json!({
        "users": preview.users,
        "changed": preview.changed,
        "sample": preview
            .sample
            .iter()
            .map(|c| json!({
                "user_id": c.user_id,
                "user_name": c.user_name,
                "before": names(c.before.as_ref()),
                "after": names(c.after.as_ref()),
            }))
            .collect::<Vec<_>>(),
    })
}

/// The policy with its version and mapping ids (what `role show` prints).
fn policy_json(stored: &StoredPolicy) -> Value {
    let Policy {
        roles,
        default_role,
        mappings,
        mode,
    } = &stored.policy;
    json!({
        "version": stored.version,
        "mode": mode_str(*mode),
        "default_role": default_role,
        "roles": roles
            .iter()
            .map(|r| json!({ "name": r.name, "description": r.description }))
            .collect::<Vec<_>>(),
        "mappings": stored
            .mapping_ids
            .iter()
            .zip(mappings)
            .map(|(id, m)| json!({
                "id": id,
                "group": { "attribute": m.group.attribute(), "value": m.group.value() },
                "role": m.role,
                "priority": m.priority,
            }))
            .collect::<Vec<_>>(),
    })
}

fn job_json(job: &RoleJob) -> Value {
    json!({
        "id": job.id,
        "status": job.status.as_str(),
        "policy_version": job.policy_version,
        "total": job.total,
        "processed": job.processed,
        "changed": job.changed,
        "error": job.error,
        "created_at": time(job.created_at),
        "started_at": job.started_at.map(time),
        "finished_at": job.finished_at.map(time),
    })
}

fn lock_json(lock: &LockInfo, user_name: Option<&str>) -> Value {
    json!({
        "user_id": lock.user_id,
        "user_name": user_name,
        "roles": lock.roles,
        "reason": lock.reason,
        "locked_by": lock.locked_by,
        "locked_at": time(lock.locked_at),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use roles::{EffectiveRole, Reason};

    fn effective(names: &[&str], disabled: bool) -> Effective {
        Effective {
            roles: names
                .iter()
                .map(|n| EffectiveRole {
                    role: (*n).to_owned(),
                    reason: Reason::Default,
                })
                .collect(),
            disabled,
            locked: false,
        }
    }

    #[test]
    fn preview_lines_name_before_and_after() {
        let preview = RolePreview {
            users: 5,
            changed: 3,
            sample: vec![
                PreviewChange {
                    user_id: "1".into(),
                    user_name: "alice".into(),
                    before: Some(effective(&["viewer"], false)),
                    after: Some(effective(&["admin"], false)),
                },
                PreviewChange {
                    user_id: "2".into(),
                    user_name: "bob".into(),
                    before: None,
                    after: Some(effective(&["editor", "viewer"], true)),
                },
            ],
        };
        assert_eq!(
            preview_text(&preview),
            "  alice: viewer → admin\n  bob: (none) → editor, viewer (disabled)\n  ... and 1 more\n"
        );
        let json = preview_json(&preview);
        assert_eq!(json["sample"][1]["before"], json!([]));
        assert_eq!(json["sample"][1]["after"], json!(["editor", "viewer"]));
    }

    #[test]
    fn mappings_read_naturally() {
        let m = Mapping {
            group: GroupMatch::ExternalId("ext-1".into()),
            role: "admin".into(),
            priority: -2,
        };
        assert_eq!(
            mapping_text(&m),
            "group externalId \"ext-1\" to role \"admin\" (priority -2)"
        );
    }
}
