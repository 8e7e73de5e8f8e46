//! Tenants and their admin logins.

use actix_web::{HttpResponse, web};
use store::{NewTenant, NewToken, Scope, TenantKind, TenantStatus, TenantUpdate};
use uuid::Uuid;

use crate::State;
use crate::auth::{Operator, OperatorOnly, Read, Scoped, Write};
use crate::error::{AdminError, ErrorBody};
use crate::handlers::{IdPath, not_blank, page_size, tenant_view, token_view};
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
    let offset = query.offset.unwrap_or(0);
    let limit = page_size(query.limit, 50, 500);
    let (total, tenants) = state.store.admin().list_tenants(offset, limit).await?;
    Ok(HttpResponse::Ok().json(TenantList {
        total,
        offset,
        limit,
        tenants: tenants.iter().map(tenant_view).collect(),
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
    body: web::Json<CreateTenant>,
) -> Result<HttpResponse, AdminError> {
    let body = body.into_inner();
    not_blank("name", &body.name)?;
    let actor = caller.actor();
    let admin = state.store.admin();
    let tenant = admin
        .create_tenant(
            NewTenant {
                slug: body.slug,
                name: body.name,
                kind: match body.kind {
                    TenantKindWire::Standard => TenantKind::Standard,
                    TenantKindWire::Super => TenantKind::Super,
                },
            },
            &actor,
        )
        .await?;
    // A second transaction: should it fail, the tenant exists without a
    // token and the caller issues one with POST /tenants/{t}/tokens.
    let token = if body.issue_token {
        let issued = admin
            .issue_token(
                &tenant,
                NewToken {
                    name: "initial".to_owned(),
                    scopes: vec![Scope::ScimWrite],
                    expires_at: None,
                },
                &actor,
            )
            .await?;
        Some(IssuedTokenView {
            token: token_view(issued.info),
            secret: issued.secret,
        })
    } else {
        None
    };
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
    HttpResponse::Ok().json(tenant_view(&scope.tenant))
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
    body: web::Json<UpdateTenant>,
) -> Result<HttpResponse, AdminError> {
    let body = body.into_inner();
    if body.status.is_some() && !scope.caller.is_operator() {
        return Err(AdminError::Forbidden(
            "only operators may suspend or reactivate a tenant".into(),
        ));
    }
    if let Some(name) = &body.name {
        not_blank("name", name)?;
    }
    let update = TenantUpdate {
        name: body.name,
        status: body.status.map(|s| match s {
            TenantStatusWire::Active => TenantStatus::Active,
            TenantStatusWire::Suspended => TenantStatus::Suspended,
        }),
    };
    let tenant = scope
        .admin
        .update_tenant(scope.tenant.id(), update, &scope.caller.actor())
        .await?;
    if tenant.status() != scope.tenant.status() {
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
    let slug = scope.tenant.slug();
    if query.confirm.as_deref() != Some(slug) {
        return Err(AdminError::BadRequest(format!(
            "deleting a tenant removes its whole directory; repeat its slug as ?confirm={slug}"
        )));
    }
    scope
        .admin
        .delete_tenant(scope.tenant.id(), &scope.caller.actor())
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
    let admins = scope.admin.list_tenant_admins(&scope.tenant).await?;
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
    body: web::Json<CreateTenantAdmin>,
) -> Result<HttpResponse, AdminError> {
    let created = scope
        .admin
        .create_tenant_admin(
            &scope.tenant,
            &body.email,
            &body.password,
            &scope.caller.actor(),
        )
        .await?;
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
    let not_found = || AdminError::NotFound(format!("tenant admin {}", path.id));
    let id = Uuid::parse_str(&path.id).map_err(|_| not_found())?;
    scope
        .admin
        .delete_tenant_admin(&scope.tenant, id, &scope.caller.actor())
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
