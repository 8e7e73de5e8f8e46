//! The role policy, its dry runs and recompute jobs, and role-locks: each
//! handler extracts, calls [`crate::service`] (which holds the
//! read-modify-write with one retry; see `service::policy`) and maps the
//! result to the wire.
//!
//! A stored change answers 200 with the new policy and the recompute job
//! it queued: the policy is in force at once for SCIM writes, while the job
//! brings every existing user in line in the background. `?dryRun=true`
//! stores nothing and answers what the change would do.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use roles::{Effective, GroupMatch, Mapping, Mode, Policy, PolicyEdit, Role};
use store::{JobStatus, PolicyChange, RoleJob, RolePreview, StoredPolicy};

use crate::BASE_PATH;
use crate::auth::{Read, Scoped, Write};
use crate::error::{AdminError, ErrorBody};
use crate::handlers::{IdPath, JsonBody, NamePath, bounded, expected_version, if_match, lock_view};
use crate::service::{self, ChangeOptions, NoOp, PolicyOutcome, PolicyRequest};
use crate::wire::{
    AddMapping, DescribeRole, DryRunQuery, DryRunView, GroupSelector, IfMatchHeader, JobList,
    JobListQuery, JobRef, JobView, LockList, LockRequest, LockView, MappingView, ModeWire,
    PolicyChangeResult, PolicyChangeView, PolicyInput, PolicyView, PreviewUser, RoleWire,
    SetDefaultRole, SetMode,
};

fn mode_wire(mode: Mode) -> ModeWire {
    match mode {
        Mode::Single => ModeWire::Single,
        Mode::Multi => ModeWire::Multi,
    }
}

fn mode_of(mode: ModeWire) -> Mode {
    match mode {
        ModeWire::Single => Mode::Single,
        ModeWire::Multi => Mode::Multi,
    }
}

pub(crate) fn selector(group: &GroupMatch) -> GroupSelector {
    match group {
        GroupMatch::DisplayName(v) => GroupSelector::DisplayName(v.clone()),
        GroupMatch::ExternalId(v) => GroupSelector::ExternalId(v.clone()),
        GroupMatch::Id(v) => GroupSelector::Id(v.clone()),
    }
}

pub(crate) fn group_match(group: GroupSelector) -> GroupMatch {
    match group {
        GroupSelector::DisplayName(v) => GroupMatch::DisplayName(v),
        GroupSelector::ExternalId(v) => GroupMatch::ExternalId(v),
        GroupSelector::Id(v) => GroupMatch::Id(v),
    }
}

fn policy_view(stored: &StoredPolicy) -> PolicyView {
    let policy = &stored.policy;
    PolicyView {
        version: stored.version,
        mode: mode_wire(policy.mode),
        default_role: policy.default_role.clone(),
        roles: policy
            .roles
            .iter()
            .map(|r| RoleWire {
                name: r.name.clone(),
                description: r.description.clone(),
            })
            .collect(),
        mappings: policy
            .mappings
            .iter()
            .zip(&stored.mapping_ids)
            .map(|(m, id)| MappingView {
                id: id.clone(),
                group: selector(&m.group),
                role: m.role.clone(),
                priority: m.priority,
            })
            .collect(),
    }
}

pub(crate) fn etag(version: u64) -> (header::HeaderName, String) {
    (header::ETAG, format!("\"{version}\""))
}

fn job_url(scope: &Scoped<Write>, id: &str) -> String {
    format!(
        "{BASE_PATH}/tenants/{}/roles/jobs/{id}",
        scope.tenant().slug()
    )
}

fn names(effective: Option<&Effective>) -> Vec<String> {
    effective
        .map(|e| e.roles.iter().map(|r| r.role.clone()).collect())
        .unwrap_or_default()
}

fn dry_run_view(preview: RolePreview) -> DryRunView {
    DryRunView {
        dry_run: true,
        users: preview.users,
        changed: preview.changed,
        sample: preview
            .sample
            .into_iter()
            .map(|c| PreviewUser {
                before: names(c.before.as_ref()),
                after: names(c.after.as_ref()),
                user_id: c.user_id,
                user_name: c.user_name,
            })
            .collect(),
    }
}

fn change_response(scope: &Scoped<Write>, change: PolicyChange) -> HttpResponse {
    let version = change.stored.version;
    let url = job_url(scope, &change.job);
    HttpResponse::Ok()
        .insert_header(etag(version))
        .json(PolicyChangeResult::Stored(PolicyChangeView {
            policy: policy_view(&change.stored),
            job: JobRef {
                id: change.job,
                status: JobStatus::Queued.as_str().to_owned(),
                url,
            },
        }))
}

/// Runs a change through the service and answers it.
async fn change(
    scope: &Scoped<Write>,
    request: PolicyRequest,
    expected: Option<u64>,
    dry_run: bool,
) -> Result<HttpResponse, AdminError> {
    let options = ChangeOptions {
        expected,
        dry_run,
        // Every accepted change answers a new version and its job.
        no_op: NoOp::Store,
    };
    match service::change_policy(&scope.ctx, &request, options).await? {
        PolicyOutcome::Stored(change) => Ok(change_response(scope, change)),
        PolicyOutcome::DryRun { preview, .. } => {
            Ok(HttpResponse::Ok().json(PolicyChangeResult::DryRun(dry_run_view(preview))))
        }
        PolicyOutcome::Unchanged(_) => Err(AdminError::Internal(
            "a policy change skipped as a no-op, which the API never asks for".into(),
        )),
    }
}

/// Applies one edit, conditional on `If-Match`.
async fn edit(
    scope: &Scoped<Write>,
    req: &HttpRequest,
    dry_run: bool,
    request: PolicyRequest,
) -> Result<HttpResponse, AdminError> {
    let expected = if_match(req)?;
    change(scope, request, expected, dry_run).await
}

/// The tenant's role policy.
#[utoipa::path(
    get,
    path = "/tenants/{tenant}/roles",
    tag = "roles",
    operation_id = "getRolePolicy",
    params(("tenant" = String, Path, description = "The tenant's slug")),
    responses((status = 200, description = "The policy (ETag: its version)", body = PolicyView)),
)]
pub(crate) async fn get_policy(scope: Scoped<Read>) -> Result<HttpResponse, AdminError> {
    let stored = service::get_policy(&scope.ctx).await?;
    Ok(HttpResponse::Ok()
        .insert_header(etag(stored.version))
        .json(policy_view(&stored)))
}

/// Replaces the whole policy.
#[utoipa::path(
    put,
    path = "/tenants/{tenant}/roles",
    tag = "roles",
    operation_id = "putRolePolicy",
    params(
        ("tenant" = String, Path, description = "The tenant's slug"),
        IfMatchHeader,
        DryRunQuery,
    ),
    request_body = PolicyInput,
    responses(
        (status = 200, description = "The stored policy and its recompute job, or a dry run's report", body = PolicyChangeResult),
        (status = 403, description = "The tenant is suspended (tenant admins)", body = ErrorBody),
        (status = 409, description = "Changed concurrently; retry", body = ErrorBody),
        (status = 412, description = "If-Match (or `version`) is not the current version", body = ErrorBody),
    ),
)]
pub(crate) async fn put_policy(
    scope: Scoped<Write>,
    req: HttpRequest,
    query: web::Query<DryRunQuery>,
    body: JsonBody<PolicyInput>,
) -> Result<HttpResponse, AdminError> {
    let body = body.into_inner();
    let expected = expected_version(&req, body.version)?;
    let policy = Policy {
        roles: body
            .roles
            .into_iter()
            .map(|r| Role {
                name: r.name,
                description: r.description,
            })
            .collect(),
        default_role: body.default_role,
        mappings: body
            .mappings
            .into_iter()
            .map(|m| Mapping {
                group: group_match(m.group),
                role: m.role,
                priority: m.priority,
            })
            .collect(),
        mode: mode_of(body.mode),
    };
    change(
        &scope,
        PolicyRequest::Replace(policy),
        expected,
        query.dry_run,
    )
    .await
}

/// Defines a role.
#[utoipa::path(
    post,
    path = "/tenants/{tenant}/roles/roles",
    tag = "roles",
    operation_id = "addRole",
    params(("tenant" = String, Path, description = "The tenant's slug"), IfMatchHeader, DryRunQuery),
    request_body = RoleWire,
    responses(
        (status = 200, description = "The stored policy and its recompute job, or a dry run's report", body = PolicyChangeResult),
        (status = 403, description = "The tenant is suspended (tenant admins)", body = ErrorBody),
        (status = 409, description = "The role exists, or a concurrent change", body = ErrorBody),
        (status = 412, description = "If-Match is not the current version", body = ErrorBody),
    ),
)]
pub(crate) async fn add_role(
    scope: Scoped<Write>,
    req: HttpRequest,
    query: web::Query<DryRunQuery>,
    body: JsonBody<RoleWire>,
) -> Result<HttpResponse, AdminError> {
    let role = body.into_inner();
    let edit_role = PolicyEdit::AddRole(Role {
        name: role.name,
        description: role.description,
    });
    edit(&scope, &req, query.dry_run, PolicyRequest::Edit(edit_role)).await
}

/// Changes a role's description.
#[utoipa::path(
    patch,
    path = "/tenants/{tenant}/roles/roles/{name}",
    tag = "roles",
    operation_id = "describeRole",
    params(
        ("tenant" = String, Path, description = "The tenant's slug"),
        ("name" = String, Path, description = "The role's name"),
        IfMatchHeader,
        DryRunQuery,
    ),
    request_body = DescribeRole,
    responses(
        (status = 200, description = "The stored policy and its recompute job, or a dry run's report", body = PolicyChangeResult),
        (status = 403, description = "The tenant is suspended (tenant admins)", body = ErrorBody),
        (status = 409, description = "A concurrent change", body = ErrorBody),
        (status = 412, description = "If-Match is not the current version", body = ErrorBody),
    ),
)]
pub(crate) async fn describe_role(
    scope: Scoped<Write>,
    req: HttpRequest,
    path: web::Path<NamePath>,
    query: web::Query<DryRunQuery>,
    body: JsonBody<DescribeRole>,
) -> Result<HttpResponse, AdminError> {
    let body = body.into_inner();
    let describe = PolicyEdit::DescribeRole {
        name: path.into_inner().name,
        description: body.description,
    };
    edit(&scope, &req, query.dry_run, PolicyRequest::Edit(describe)).await
}

/// Removes a role that neither the default nor a mapping uses.
#[utoipa::path(
    delete,
    path = "/tenants/{tenant}/roles/roles/{name}",
    tag = "roles",
    operation_id = "removeRole",
    params(
        ("tenant" = String, Path, description = "The tenant's slug"),
        ("name" = String, Path, description = "The role's name"),
        IfMatchHeader,
        DryRunQuery,
    ),
    responses(
        (status = 200, description = "The stored policy and its recompute job, or a dry run's report", body = PolicyChangeResult),
        (status = 403, description = "The tenant is suspended (tenant admins)", body = ErrorBody),
        (status = 409, description = "The role is still in use, or a concurrent change", body = ErrorBody),
        (status = 412, description = "If-Match is not the current version", body = ErrorBody),
    ),
)]
pub(crate) async fn remove_role(
    scope: Scoped<Write>,
    req: HttpRequest,
    path: web::Path<NamePath>,
    query: web::Query<DryRunQuery>,
) -> Result<HttpResponse, AdminError> {
    let remove = PolicyEdit::RemoveRole(path.into_inner().name);
    edit(&scope, &req, query.dry_run, PolicyRequest::Edit(remove)).await
}

/// Sets or clears the default role.
#[utoipa::path(
    put,
    path = "/tenants/{tenant}/roles/default",
    tag = "roles",
    operation_id = "setDefaultRole",
    params(("tenant" = String, Path, description = "The tenant's slug"), IfMatchHeader, DryRunQuery),
    request_body = SetDefaultRole,
    responses(
        (status = 200, description = "The stored policy and its recompute job, or a dry run's report", body = PolicyChangeResult),
        (status = 403, description = "The tenant is suspended (tenant admins)", body = ErrorBody),
        (status = 409, description = "A concurrent change", body = ErrorBody),
        (status = 412, description = "If-Match is not the current version", body = ErrorBody),
    ),
)]
pub(crate) async fn set_default(
    scope: Scoped<Write>,
    req: HttpRequest,
    query: web::Query<DryRunQuery>,
    body: JsonBody<SetDefaultRole>,
) -> Result<HttpResponse, AdminError> {
    let Some(role) = body.into_inner().role else {
        return Err(AdminError::BadRequest(
            "role is required: a role name, or null for no default role".into(),
        ));
    };
    let set = PolicyEdit::SetDefault(role);
    edit(&scope, &req, query.dry_run, PolicyRequest::Edit(set)).await
}

/// Switches between single and multi mode.
#[utoipa::path(
    put,
    path = "/tenants/{tenant}/roles/mode",
    tag = "roles",
    operation_id = "setRoleMode",
    params(("tenant" = String, Path, description = "The tenant's slug"), IfMatchHeader, DryRunQuery),
    request_body = SetMode,
    responses(
        (status = 200, description = "The stored policy and its recompute job, or a dry run's report", body = PolicyChangeResult),
        (status = 403, description = "The tenant is suspended (tenant admins)", body = ErrorBody),
        (status = 409, description = "A concurrent change", body = ErrorBody),
        (status = 412, description = "If-Match is not the current version", body = ErrorBody),
    ),
)]
pub(crate) async fn set_mode(
    scope: Scoped<Write>,
    req: HttpRequest,
    query: web::Query<DryRunQuery>,
    body: JsonBody<SetMode>,
) -> Result<HttpResponse, AdminError> {
    let mode = mode_of(body.mode);
    let set = PolicyEdit::SetMode(mode);
    edit(&scope, &req, query.dry_run, PolicyRequest::Edit(set)).await
}

/// Maps a group to a role.
#[utoipa::path(
    post,
    path = "/tenants/{tenant}/roles/mappings",
    tag = "roles",
    operation_id = "addMapping",
    params(("tenant" = String, Path, description = "The tenant's slug"), IfMatchHeader, DryRunQuery),
    request_body = AddMapping,
    responses(
        (status = 200, description = "The stored policy and its recompute job, or a dry run's report", body = PolicyChangeResult),
        (status = 403, description = "The tenant is suspended (tenant admins)", body = ErrorBody),
        (status = 409, description = "The same mapping exists, or a concurrent change", body = ErrorBody),
        (status = 412, description = "If-Match is not the current version", body = ErrorBody),
    ),
)]
pub(crate) async fn add_mapping(
    scope: Scoped<Write>,
    req: HttpRequest,
    query: web::Query<DryRunQuery>,
    body: JsonBody<AddMapping>,
) -> Result<HttpResponse, AdminError> {
    let body = body.into_inner();
    let mapping = Mapping {
        group: group_match(body.group),
        role: body.role,
        priority: body.priority,
    };
    let add = PolicyEdit::AddMapping(mapping);
    edit(&scope, &req, query.dry_run, PolicyRequest::Edit(add)).await
}

/// Removes a mapping by id.
#[utoipa::path(
    delete,
    path = "/tenants/{tenant}/roles/mappings/{id}",
    tag = "roles",
    operation_id = "removeMapping",
    params(
        ("tenant" = String, Path, description = "The tenant's slug"),
        ("id" = String, Path, description = "The mapping's id"),
        IfMatchHeader,
        DryRunQuery,
    ),
    responses(
        (status = 200, description = "The stored policy and its recompute job, or a dry run's report", body = PolicyChangeResult),
        (status = 403, description = "The tenant is suspended (tenant admins)", body = ErrorBody),
        (status = 409, description = "A concurrent change", body = ErrorBody),
        (status = 412, description = "If-Match is not the current version", body = ErrorBody),
    ),
)]
pub(crate) async fn remove_mapping(
    scope: Scoped<Write>,
    req: HttpRequest,
    path: web::Path<IdPath>,
    query: web::Query<DryRunQuery>,
) -> Result<HttpResponse, AdminError> {
    let remove = PolicyRequest::RemoveMapping(path.into_inner().id);
    edit(&scope, &req, query.dry_run, remove).await
}

fn job_view(job: RoleJob) -> JobView {
    JobView {
        id: job.id,
        status: job.status.as_str().to_owned(),
        policy_version: job.policy_version,
        total: job.total,
        processed: job.processed,
        changed: job.changed,
        error: job.error,
        created_at: job.created_at,
        started_at: job.started_at,
        finished_at: job.finished_at,
    }
}

/// The tenant's recompute jobs, newest first.
#[utoipa::path(
    get,
    path = "/tenants/{tenant}/roles/jobs",
    tag = "roles",
    operation_id = "listRoleJobs",
    params(("tenant" = String, Path, description = "The tenant's slug"), JobListQuery),
    responses((status = 200, description = "Jobs, newest first", body = JobList)),
)]
pub(crate) async fn list_jobs(
    scope: Scoped<Read>,
    query: web::Query<JobListQuery>,
) -> Result<HttpResponse, AdminError> {
    let limit = bounded("limit", query.limit, 1, 100)?;
    let jobs = service::list_role_jobs(&scope.ctx, limit).await?;
    Ok(HttpResponse::Ok().json(JobList {
        jobs: jobs.into_iter().map(job_view).collect(),
    }))
}

/// One recompute job.
#[utoipa::path(
    get,
    path = "/tenants/{tenant}/roles/jobs/{id}",
    tag = "roles",
    operation_id = "getRoleJob",
    params(
        ("tenant" = String, Path, description = "The tenant's slug"),
        ("id" = String, Path, description = "The job's id"),
    ),
    responses((status = 200, description = "The job", body = JobView)),
)]
pub(crate) async fn get_job(
    scope: Scoped<Read>,
    path: web::Path<IdPath>,
) -> Result<HttpResponse, AdminError> {
    let job = service::get_role_job(&scope.ctx, &path.id).await?;
    Ok(HttpResponse::Ok().json(job_view(job)))
}

/// Every role-lock of the tenant.
#[utoipa::path(
    get,
    path = "/tenants/{tenant}/locks",
    tag = "locks",
    operation_id = "listLocks",
    params(("tenant" = String, Path, description = "The tenant's slug")),
    responses((status = 200, description = "Locks, by user id", body = LockList)),
)]
pub(crate) async fn list_locks(scope: Scoped<Read>) -> Result<HttpResponse, AdminError> {
    let locks = service::list_locks(&scope.ctx).await?;
    Ok(HttpResponse::Ok().json(LockList {
        locks: locks.into_iter().map(lock_view).collect(),
    }))
}

/// Locks a user to roles (replacing any earlier lock); they keep exactly
/// these roles through every sync and policy change until unlocked.
#[utoipa::path(
    put,
    path = "/tenants/{tenant}/users/{id}/lock",
    tag = "locks",
    operation_id = "lockUser",
    params(
        ("tenant" = String, Path, description = "The tenant's slug"),
        ("id" = String, Path, description = "The user's SCIM id"),
    ),
    request_body = LockRequest,
    responses(
        (status = 200, description = "The lock", body = LockView),
        (status = 403, description = "The tenant is suspended (tenant admins)", body = ErrorBody),
    ),
)]
pub(crate) async fn lock_user(
    scope: Scoped<Write>,
    path: web::Path<IdPath>,
    body: JsonBody<LockRequest>,
) -> Result<HttpResponse, AdminError> {
    let body = body.into_inner();
    let lock = service::lock_user(&scope.ctx, &path.id, body.roles, &body.reason).await?;
    Ok(HttpResponse::Ok().json(lock_view(lock)))
}

/// Removes a user's lock; their derived roles apply again at once.
#[utoipa::path(
    delete,
    path = "/tenants/{tenant}/users/{id}/lock",
    tag = "locks",
    operation_id = "unlockUser",
    params(
        ("tenant" = String, Path, description = "The tenant's slug"),
        ("id" = String, Path, description = "The user's SCIM id"),
    ),
    responses(
        (status = 204, description = "Unlocked"),
        (status = 403, description = "The tenant is suspended (tenant admins)", body = ErrorBody),
    ),
)]
pub(crate) async fn unlock_user(
    scope: Scoped<Write>,
    path: web::Path<IdPath>,
) -> Result<HttpResponse, AdminError> {
    service::unlock_user(&scope.ctx, &path.id).await?;
    Ok(HttpResponse::NoContent().finish())
}
