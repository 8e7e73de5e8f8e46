//! Super tenants: tenant kinds, the children a super tenant feeds, its
//! routing rules (with dry runs) and where each resource was copied
//! (operators only).

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use store::copies::{CopyInfo, PreviewEntry, RoutingPreview};
use store::fanout::{CopiesOnUnlink, OnUnroute, RoutingPolicy};
use store::routing::RuleSpec;
use store::{JobStatus, TenantKind};

use crate::auth::{OperatorOnly, Scoped};
use crate::error::{AdminError, ErrorBody};
use crate::handlers::roles::{etag, group_match, selector};
use crate::handlers::{IdPath, JsonBody, expected_version, tenant_view};
use crate::service::{self, Child, RoutingOutcome};
use crate::wire::{
    ChildList, ChildMovesView, ChildView, CopiesWire, CopyList, CopyView, DryRunQuery,
    IfMatchHeader, JobRef, LinkChild, OnUnrouteWire, RoutedSample, RoutingChangeResult,
    RoutingChangeView, RoutingDryRunView, RoutingInput, RoutingView, RuleWire, SetTenantKind,
    TenantKindWire, TenantView, UnlinkQuery, UnlinkedView,
};
use crate::{BASE_PATH, State};

/// The `{child}` of a child's path (`{tenant}` is the scope's).
#[derive(Debug, Deserialize)]
pub(crate) struct ChildPath {
    child: String,
}

fn child_view(c: &Child) -> ChildView {
    ChildView {
        tenant: tenant_view(&c.tenant),
        on_unroute: match c.on_unroute {
            OnUnroute::Deactivate => OnUnrouteWire::Deactivate,
            OnUnroute::Delete => OnUnrouteWire::Delete,
        },
        linked_at: c.linked_at,
    }
}

/// Makes a tenant standard or super (operators only).
#[utoipa::path(
    put,
    path = "/tenants/{tenant}/kind",
    tag = "tenants",
    operation_id = "setTenantKind",
    params(("tenant" = String, Path, description = "The tenant's slug")),
    request_body = SetTenantKind,
    responses(
        (status = 200, description = "The tenant as changed (unchanged if it already had that kind)", body = TenantView),
        (status = 403, description = "Tenant admins may not change kinds", body = ErrorBody),
        (status = 404, description = "No such tenant", body = ErrorBody),
        (status = 409, description = "A child cannot become super; a super tenant with children cannot become standard", body = ErrorBody),
    ),
)]
pub(crate) async fn set_kind(
    scope: Scoped<OperatorOnly>,
    state: web::Data<State>,
    body: JsonBody<SetTenantKind>,
) -> Result<HttpResponse, AdminError> {
    let kind = match body.into_inner().kind {
        TenantKindWire::Standard => TenantKind::Standard,
        TenantKindWire::Super => TenantKind::Super,
    };
    let tenant = service::set_tenant_kind(
        &state.store.admin(),
        scope.ctx.actor(),
        scope.tenant().slug(),
        kind,
    )
    .await?;
    // Cached token verifications carry the tenant's kind and link.
    state.auth_changed();
    Ok(HttpResponse::Ok().json(tenant_view(&tenant)))
}

/// The child tenants a super tenant feeds (operators only).
#[utoipa::path(
    get,
    path = "/tenants/{tenant}/children",
    tag = "tenants",
    operation_id = "listChildren",
    params(("tenant" = String, Path, description = "The super tenant's slug")),
    responses(
        (status = 200, description = "Its children, in the order they were linked", body = ChildList),
        (status = 403, description = "Tenant admins may not list children", body = ErrorBody),
        (status = 404, description = "No such tenant", body = ErrorBody),
    ),
)]
pub(crate) async fn list_children(
    scope: Scoped<OperatorOnly>,
    state: web::Data<State>,
) -> Result<HttpResponse, AdminError> {
    let children = service::list_children(&state.store.admin(), scope.tenant().slug()).await?;
    Ok(HttpResponse::Ok().json(ChildList {
        children: children.iter().map(child_view).collect(),
    }))
}

/// Makes a tenant a child of this super tenant (operators only).
#[utoipa::path(
    put,
    path = "/tenants/{tenant}/children/{child}",
    tag = "tenants",
    operation_id = "linkChild",
    params(
        ("tenant" = String, Path, description = "The super tenant's slug"),
        ("child" = String, Path, description = "The child tenant's slug"),
    ),
    request_body = LinkChild,
    responses(
        (status = 200, description = "The child as linked (unchanged if it was already this super tenant's)", body = ChildView),
        (status = 403, description = "Tenant admins may not link tenants", body = ErrorBody),
        (status = 404, description = "No such tenant", body = ErrorBody),
        (status = 409, description = "Not a super tenant, a super tenant as the child, or a child another super tenant feeds", body = ErrorBody),
    ),
)]
pub(crate) async fn link_child(
    scope: Scoped<OperatorOnly>,
    state: web::Data<State>,
    path: web::Path<ChildPath>,
    body: JsonBody<LinkChild>,
) -> Result<HttpResponse, AdminError> {
    let on_unroute = match body.into_inner().on_unroute {
        OnUnrouteWire::Deactivate => OnUnroute::Deactivate,
        OnUnrouteWire::Delete => OnUnroute::Delete,
    };
    let child = service::link_child(
        &state.store.admin(),
        scope.ctx.actor(),
        scope.tenant().slug(),
        &path.child,
        on_unroute,
    )
    .await?;
    // The child's cached tokens must stop writing directly now.
    state.auth_changed();
    Ok(HttpResponse::Ok().json(child_view(&child)))
}

/// What `?copies=` asks for.
pub(crate) fn copies_on_unlink(wire: CopiesWire) -> CopiesOnUnlink {
    match wire {
        CopiesWire::Keep => CopiesOnUnlink::Keep,
        CopiesWire::Remove => CopiesOnUnlink::Remove,
    }
}

/// Ends a child's link to this super tenant; `?copies=keep` leaves the
/// users and groups it copied there as the child's own, `?copies=remove`
/// deletes them from the child (operators only).
#[utoipa::path(
    delete,
    path = "/tenants/{tenant}/children/{child}",
    tag = "tenants",
    operation_id = "unlinkChild",
    params(
        ("tenant" = String, Path, description = "The super tenant's slug"),
        ("child" = String, Path, description = "The child tenant's slug"),
        UnlinkQuery,
    ),
    responses(
        (status = 200, description = "Unlinked: what became of the copies", body = UnlinkedView),
        (status = 400, description = "`copies` missing or not `keep`/`remove`: the choice is never implicit", body = ErrorBody),
        (status = 403, description = "Tenant admins may not unlink tenants", body = ErrorBody),
        (status = 404, description = "No such tenant, or not a child of this super tenant", body = ErrorBody),
    ),
)]
pub(crate) async fn unlink_child(
    scope: Scoped<OperatorOnly>,
    state: web::Data<State>,
    path: web::Path<ChildPath>,
    query: web::Query<UnlinkQuery>,
) -> Result<HttpResponse, AdminError> {
    let choice = query.into_inner().copies;
    let done = service::unlink_child(
        &state.store.admin(),
        scope.ctx.actor(),
        scope.tenant().slug(),
        &path.child,
        Some(copies_on_unlink(choice)),
    )
    .await?;
    state.auth_changed();
    Ok(HttpResponse::Ok().json(UnlinkedView {
        copies: choice,
        kept: done.kept,
        users_removed: done.users_removed,
        groups_removed: done.groups_removed,
    }))
}

fn rule_wire(rule: &RuleSpec) -> RuleWire {
    RuleWire {
        id: rule.id.clone(),
        child: rule.child.clone(),
        group: rule.group.as_ref().map(selector),
        filter: rule.filter.clone(),
    }
}

fn routing_view(policy: &RoutingPolicy) -> RoutingView {
    RoutingView {
        version: policy.version,
        rules: policy.rules.iter().map(rule_wire).collect(),
        updated_at: policy.updated_at,
    }
}

fn samples(entries: Vec<PreviewEntry>) -> Vec<RoutedSample> {
    entries
        .into_iter()
        .map(|e| RoutedSample {
            id: e.id,
            name: e.name,
        })
        .collect()
}

fn dry_run_view(preview: RoutingPreview) -> RoutingDryRunView {
    RoutingDryRunView {
        dry_run: true,
        users: preview.users,
        groups: preview.groups,
        children: preview
            .children
            .into_iter()
            .map(|c| ChildMovesView {
                child: c.child,
                users_entering: c.users_entering,
                users_leaving: c.users_leaving,
                groups_entering: c.groups_entering,
                groups_leaving: c.groups_leaving,
                sample_entering: samples(c.sample_entering),
                sample_leaving: samples(c.sample_leaving),
            })
            .collect(),
    }
}

/// A super tenant's routing rules (operators only).
#[utoipa::path(
    get,
    path = "/tenants/{tenant}/routing",
    tag = "tenants",
    operation_id = "getRouting",
    params(("tenant" = String, Path, description = "The super tenant's slug")),
    responses(
        (status = 200, description = "The rules and their version (also the ETag)", body = RoutingView),
        (status = 403, description = "Tenant admins may not read routing rules", body = ErrorBody),
        (status = 404, description = "No such tenant", body = ErrorBody),
    ),
)]
pub(crate) async fn get_routing(
    scope: Scoped<OperatorOnly>,
    state: web::Data<State>,
) -> Result<HttpResponse, AdminError> {
    let policy = service::routing_policy(
        &state.store.admin(),
        scope.ctx.actor(),
        scope.tenant().slug(),
    )
    .await?;
    Ok(HttpResponse::Ok()
        .insert_header(etag(policy.version))
        .json(routing_view(&policy)))
}

/// Replaces a super tenant's routing rules, conditional on `If-Match`, and
/// queues the job that re-routes its existing users and groups; with
/// `?dryRun=true` stores nothing and answers who would enter and leave
/// each child (operators only).
#[utoipa::path(
    put,
    path = "/tenants/{tenant}/routing",
    tag = "tenants",
    operation_id = "putRouting",
    params(
        ("tenant" = String, Path, description = "The super tenant's slug"),
        DryRunQuery,
        IfMatchHeader,
    ),
    request_body = RoutingInput,
    responses(
        (status = 200, description = "The stored rules and their re-route job, or the dry run's report", body = RoutingChangeResult),
        (status = 400, description = "An invalid rule (the message names it)", body = ErrorBody),
        (status = 403, description = "Tenant admins may not change routing rules", body = ErrorBody),
        (status = 404, description = "No such tenant", body = ErrorBody),
        (status = 409, description = "Not a super tenant, or a rule names a tenant it does not feed", body = ErrorBody),
        (status = 412, description = "If-Match is not the current version", body = ErrorBody),
    ),
)]
pub(crate) async fn put_routing(
    scope: Scoped<OperatorOnly>,
    state: web::Data<State>,
    req: HttpRequest,
    query: web::Query<DryRunQuery>,
    body: JsonBody<RoutingInput>,
) -> Result<HttpResponse, AdminError> {
    let RoutingInput {
        rules,
        version,
        // Sent back from a GET; not the caller's to set.
        updated_at: _read_only,
    } = body.into_inner();
    let expected = expected_version(&req, version)?;
    let rules: Vec<RuleSpec> = rules
        .into_iter()
        .map(|r| RuleSpec {
            id: r.id,
            child: r.child,
            group: r.group.map(group_match),
            filter: r.filter,
        })
        .collect();
    let slug = scope.tenant().slug().to_owned();
    let outcome = service::change_routing(
        &state.store.admin(),
        scope.ctx.actor(),
        &slug,
        rules,
        expected,
        query.dry_run,
    )
    .await?;
    Ok(match outcome {
        RoutingOutcome::DryRun(preview) => {
            HttpResponse::Ok().json(RoutingChangeResult::DryRun(dry_run_view(preview)))
        }
        RoutingOutcome::Stored(change) => {
            let version = change.policy.version;
            let url = format!("{BASE_PATH}/tenants/{slug}/jobs/{}", change.job);
            HttpResponse::Ok()
                .insert_header(etag(version))
                .json(RoutingChangeResult::Stored(RoutingChangeView {
                    routing: routing_view(&change.policy),
                    job: JobRef {
                        id: change.job,
                        status: JobStatus::Queued.as_str().to_owned(),
                        url,
                    },
                }))
        }
    })
}

fn copy_list(copies: Vec<CopyInfo>, resource_type: &str) -> CopyList {
    CopyList {
        copies: copies
            .into_iter()
            .filter(|c| c.resource_type == resource_type)
            .map(|c| CopyView {
                child: c.child,
                resource_type: c.resource_type.to_owned(),
                copy_id: c.copy_id,
                routed: c.routed,
                rules: c.rules,
                updated_at: c.updated_at,
            })
            .collect(),
    }
}

/// Where a super tenant's user was copied, and by which rules (operators
/// only; empty for a user routed nowhere, or of a tenant that is not a
/// super tenant).
#[utoipa::path(
    get,
    path = "/tenants/{tenant}/users/{id}/copies",
    tag = "tenants",
    operation_id = "listUserCopies",
    params(
        ("tenant" = String, Path, description = "The super tenant's slug"),
        ("id" = String, Path, description = "The user's id in the super tenant"),
    ),
    responses(
        (status = 200, description = "Its copies, by child", body = CopyList),
        (status = 403, description = "Tenant admins may not list copies", body = ErrorBody),
        (status = 404, description = "No such tenant", body = ErrorBody),
    ),
)]
pub(crate) async fn user_copies(
    scope: Scoped<OperatorOnly>,
    path: web::Path<IdPath>,
) -> Result<HttpResponse, AdminError> {
    let copies = scope.ctx.store().copies(&path.id).await?;
    Ok(HttpResponse::Ok().json(copy_list(copies, "User")))
}

/// Where a super tenant's group was copied, and by which rules (operators
/// only).
#[utoipa::path(
    get,
    path = "/tenants/{tenant}/groups/{id}/copies",
    tag = "tenants",
    operation_id = "listGroupCopies",
    params(
        ("tenant" = String, Path, description = "The super tenant's slug"),
        ("id" = String, Path, description = "The group's id in the super tenant"),
    ),
    responses(
        (status = 200, description = "Its copies, by child", body = CopyList),
        (status = 403, description = "Tenant admins may not list copies", body = ErrorBody),
        (status = 404, description = "No such tenant", body = ErrorBody),
    ),
)]
pub(crate) async fn group_copies(
    scope: Scoped<OperatorOnly>,
    path: web::Path<IdPath>,
) -> Result<HttpResponse, AdminError> {
    let copies = scope.ctx.store().copies(&path.id).await?;
    Ok(HttpResponse::Ok().json(copy_list(copies, "Group")))
}
