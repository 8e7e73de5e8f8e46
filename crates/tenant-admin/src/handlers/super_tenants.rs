//! Super tenants: tenant kinds and the children a super tenant feeds
//! (operators only).

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use store::TenantKind;
use store::fanout::OnUnroute;

use crate::State;
use crate::auth::{OperatorOnly, Scoped};
use crate::error::{AdminError, ErrorBody};
use crate::handlers::{JsonBody, tenant_view};
use crate::service::{self, Child};
use crate::wire::{
    ChildList, ChildView, LinkChild, OnUnrouteWire, SetTenantKind, TenantKindWire, TenantView,
};

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
    Ok(HttpResponse::Ok().json(child_view(&child)))
}

/// Ends a child's link to this super tenant; the child keeps its users
/// and groups as its own (operators only).
#[utoipa::path(
    delete,
    path = "/tenants/{tenant}/children/{child}",
    tag = "tenants",
    operation_id = "unlinkChild",
    params(
        ("tenant" = String, Path, description = "The super tenant's slug"),
        ("child" = String, Path, description = "The child tenant's slug"),
    ),
    responses(
        (status = 204, description = "Unlinked"),
        (status = 403, description = "Tenant admins may not unlink tenants", body = ErrorBody),
        (status = 404, description = "No such tenant, or not a child of this super tenant", body = ErrorBody),
    ),
)]
pub(crate) async fn unlink_child(
    scope: Scoped<OperatorOnly>,
    state: web::Data<State>,
    path: web::Path<ChildPath>,
) -> Result<HttpResponse, AdminError> {
    service::unlink_child(
        &state.store.admin(),
        scope.ctx.actor(),
        scope.tenant().slug(),
        &path.child,
    )
    .await?;
    Ok(HttpResponse::NoContent().finish())
}
