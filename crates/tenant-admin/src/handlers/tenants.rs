//! Tenants and their admin logins.

use actix_web::{HttpResponse, web};
use store::{TenantKind, TenantStatus, TenantUpdate};

use crate::State;
use crate::auth::{Operator, OperatorOnly, Read, Scoped, Write};
use crate::error::{AdminError, ErrorBody};
use crate::handlers::{IdPath, JsonBody, MAX_INT64, bounded, tenant_view, token_view};
use crate::service::{self, NewTenantRequest};
use crate::wire::{
    CreateTenant, CreateTenantAdmin, CreatedTenant, DeleteTenantQuery, IssuedTokenView,
    TenantAdminList, TenantAdminView, TenantKindWire, TenantList, TenantListQuery,
    TenantStatusWire, TenantView, UpdateTenant,
};

/// Every tenant, by slug (operators only).
#[utoipa::path(
    get,
    path = "/tenants",
    tag = "tenants",
    operation_id = "listTenants",
    params(TenantListQuery),
    responses(
        (status = 200, description = "A page of tenants", body = TenantList),
        (status = 403, description = "Tenant admins may not list tenants", body = ErrorBody),
    ),
)]
pub(crate) async fn list_tenants(
    _: Operator,
    state: web::Data<State>,
    query: web::Query<TenantListQuery>,
) -> Result<HttpResponse, AdminError> {
    let offset = bounded("offset", query.offset, 0, MAX_INT64)?;
    let limit = bounded("limit", query.limit, 1, 500)?;
    let page = service::list_tenants(&state.store.admin(), offset, limit).await?;
    Ok(HttpResponse::Ok().json(TenantList {
        total: page.total,
        offset: page.offset,
        limit: page.limit,
        tenants: page.tenants.iter().map(tenant_view).collect(),
    }))
}

/// Creates a tenant, and with `issueToken` its first SCIM token (operators
/// only).
#[utoipa::path(
    post,
    path = "/tenants",
    tag = "tenants",
    operation_id = "createTenant",
    request_body = CreateTenant,
    responses(
        (status = 201, description = "The tenant (and its first token, shown once)", body = CreatedTenant),
        (status = 403, description = "Tenant admins may not create tenants", body = ErrorBody),
        (status = 409, description = "The slug is taken", body = ErrorBody),
    ),
)]
pub(crate) async fn create_tenant(
    Operator(caller): Operator,
    state: web::Data<State>,
    body: JsonBody<CreateTenant>,
) -> Result<HttpResponse, AdminError> {
    let body = body.into_inner();
    let request = NewTenantRequest {
        slug: body.slug,
        name: body.name,
        kind: match body.kind {
            TenantKindWire::Standard => TenantKind::Standard,
            TenantKindWire::Super => TenantKind::Super,
        },
        issue_token: body.issue_token,
    };
    let (tenant, token) =
        service::create_tenant(&state.store.admin(), &caller.actor(), request).await?;
    let token = token.map(|issued| IssuedTokenView {
        token: token_view(issued.info),
        secret: issued.secret,
    });
    Ok(HttpResponse::Created()
        .insert_header((
            actix_web::http::header::LOCATION,
            format!("{}/tenants/{}", crate::BASE_PATH, tenant.slug()),
        ))
        .json(CreatedTenant {
            tenant: tenant_view(&tenant),
            token,
        }))
}

/// One tenant.
#[utoipa::path(
    get,
    path = "/tenants/{tenant}",
    tag = "tenants",
    operation_id = "getTenant",
    params(("tenant" = String, Path, description = "The tenant's slug")),
    responses((status = 200, description = "The tenant", body = TenantView)),
)]
pub(crate) async fn get_tenant(scope: Scoped<Read>) -> HttpResponse {
    HttpResponse::Ok().json(tenant_view(scope.tenant()))
}

/// Renames a tenant, or (operators only) suspends or reactivates it.
#[utoipa::path(
    patch,
    path = "/tenants/{tenant}",
    tag = "tenants",
    operation_id = "updateTenant",
    params(("tenant" = String, Path, description = "The tenant's slug")),
    request_body = UpdateTenant,
    responses(
        (status = 200, description = "The tenant as changed", body = TenantView),
        (status = 403, description = "A tenant admin changing the status, or changing a suspended tenant", body = ErrorBody),
    ),
)]
pub(crate) async fn update_tenant(
    scope: Scoped<Write>,
    state: web::Data<State>,
    body: JsonBody<UpdateTenant>,
) -> Result<HttpResponse, AdminError> {
    let body = body.into_inner();
    let update = TenantUpdate {
        name: body.name,
        status: body.status.map(|s| match s {
            TenantStatusWire::Active => TenantStatus::Active,
            TenantStatusWire::Suspended => TenantStatus::Suspended,
        }),
    };
    let tenant = service::update_tenant(&scope.ctx, update).await?;
    if tenant.status() != scope.tenant().status() {
        state.auth_changed();
    }
    Ok(HttpResponse::Ok().json(tenant_view(&tenant)))
}

/// Deletes a tenant and everything it owns (operators only;
/// `confirm` must repeat the slug).
#[utoipa::path(
    delete,
    path = "/tenants/{tenant}",
    tag = "tenants",
    operation_id = "deleteTenant",
    params(("tenant" = String, Path, description = "The tenant's slug"), DeleteTenantQuery),
    responses(
        (status = 204, description = "Deleted, with its users, groups, tokens, logins and policy"),
        (status = 403, description = "Tenant admins may not delete tenants", body = ErrorBody),
    ),
)]
pub(crate) async fn delete_tenant(
    scope: Scoped<OperatorOnly>,
    state: web::Data<State>,
    query: web::Query<DeleteTenantQuery>,
) -> Result<HttpResponse, AdminError> {
    let query = query.into_inner();
    service::delete_tenant(
        &scope.ctx,
        &state.store.admin(),
        query.confirm.as_deref(),
        query
            .copies
            .map(crate::handlers::super_tenants::copies_on_unlink),
    )
    .await?;
    state.auth_changed();
    Ok(HttpResponse::NoContent().finish())
}

/// The tenant's admin logins.
#[utoipa::path(
    get,
    path = "/tenants/{tenant}/admins",
    tag = "admins",
    operation_id = "listTenantAdmins",
    params(("tenant" = String, Path, description = "The tenant's slug")),
    responses((status = 200, description = "The logins, by e-mail", body = TenantAdminList)),
)]
pub(crate) async fn list_admins(scope: Scoped<Read>) -> Result<HttpResponse, AdminError> {
    let admins = service::list_tenant_admins(&scope.ctx).await?;
    Ok(HttpResponse::Ok().json(TenantAdminList {
        admins: admins
            .into_iter()
            .map(|a| TenantAdminView {
                id: a.id.to_string(),
                email: a.email,
                created_at: a.created_at,
            })
            .collect(),
    }))
}

/// Creates a tenant admin login.
#[utoipa::path(
    post,
    path = "/tenants/{tenant}/admins",
    tag = "admins",
    operation_id = "createTenantAdmin",
    params(("tenant" = String, Path, description = "The tenant's slug")),
    request_body = CreateTenantAdmin,
    responses(
        (status = 201, description = "The login", body = TenantAdminView),
        (status = 403, description = "The tenant is suspended (tenant admins)", body = ErrorBody),
        (status = 409, description = "The e-mail address already has a login here", body = ErrorBody),
    ),
)]
pub(crate) async fn create_admin(
    scope: Scoped<Write>,
    body: JsonBody<CreateTenantAdmin>,
) -> Result<HttpResponse, AdminError> {
    let created = service::create_tenant_admin(&scope.ctx, &body.email, &body.password).await?;
    Ok(HttpResponse::Created().json(TenantAdminView {
        id: created.id.to_string(),
        email: created.email,
        created_at: created.created_at,
    }))
}

/// Deletes a tenant admin login; its sessions end at once.
#[utoipa::path(
    delete,
    path = "/tenants/{tenant}/admins/{id}",
    tag = "admins",
    operation_id = "deleteTenantAdmin",
    params(
        ("tenant" = String, Path, description = "The tenant's slug"),
        ("id" = String, Path, description = "The login's id"),
    ),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "The tenant is suspended (tenant admins)", body = ErrorBody),
    ),
)]
pub(crate) async fn delete_admin(
    scope: Scoped<Write>,
    path: web::Path<IdPath>,
) -> Result<HttpResponse, AdminError> {
    service::delete_tenant_admin(&scope.ctx, &path.id).await?;
    Ok(HttpResponse::NoContent().finish())
}
