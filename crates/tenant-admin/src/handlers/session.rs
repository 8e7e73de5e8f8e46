//! Logging in, who am I, and the OpenAPI document.

use std::sync::OnceLock;

use actix_web::{HttpResponse, web};

use crate::auth::Authenticated;
use crate::error::{AdminError, ErrorBody};
use crate::handlers::tenant_view;
use crate::wire::{LoginRequest, LoginResponse, MeResponse, PrincipalKind, PrincipalView};
use crate::{State, openapi};

/// One message for every failed login, so the answer never tells whether
/// the e-mail, the password or the tenant was wrong.
const WRONG_CREDENTIALS: AdminError = AdminError::Unauthorized("invalid email, password or tenant");

/// Log in: an operator without `tenant`, a tenant admin with their
/// tenant's slug.
#[utoipa::path(
    post,
    path = "/login",
    tag = "session",
    operation_id = "login",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "A session token", body = LoginResponse),
        (status = 401, description = "Wrong e-mail, password or tenant (one message for all)", body = ErrorBody),
    ),
)]
pub(crate) async fn login(
    state: web::Data<State>,
    body: web::Json<LoginRequest>,
) -> Result<HttpResponse, AdminError> {
    let body = body.into_inner();
    let admin = state.store.admin();
    let principal = match &body.tenant {
        None => admin.verify_operator(&body.email, &body.password).await?,
        Some(slug) => match admin.tenant_by_slug(slug.trim()).await? {
            Some(tenant) => {
                admin
                    .verify_tenant_admin(&tenant, &body.email, &body.password)
                    .await?
            }
            None => {
                // Spend the argon2 time a wrong password costs (the store
                // verifies unknown logins against a dummy hash), so timing
                // does not tell which tenant slugs exist.
                let _ = admin.verify_operator("", &body.password).await?;
                None
            }
        },
    };
    let Some(principal) = principal else {
        tracing::info!(tenant = ?body.tenant, "admin login refused");
        return Err(WRONG_CREDENTIALS);
    };
    let (token, expires_at) = state.keys.issue(&principal, state.token_ttl)?;
    let kind = match principal.tenant {
        Some(_) => PrincipalKind::TenantAdmin,
        None => PrincipalKind::Operator,
    };
    tracing::info!(email = %principal.email, ?kind, "admin login");
    Ok(HttpResponse::Ok().json(LoginResponse {
        token,
        expires_at,
        principal: PrincipalView {
            kind,
            id: principal.id,
            email: principal.email,
            tenant: principal.tenant.map(|t| t.slug().to_owned()),
        },
    }))
}

/// The session's principal.
#[utoipa::path(
    get,
    path = "/me",
    tag = "session",
    operation_id = "me",
    responses((status = 200, description = "Who the token belongs to", body = MeResponse)),
)]
pub(crate) async fn me(Authenticated(caller): Authenticated) -> HttpResponse {
    HttpResponse::Ok().json(MeResponse {
        principal: PrincipalView {
            kind: caller.kind,
            id: caller.id.clone(),
            email: caller.email.clone(),
            tenant: caller.tenant.as_ref().map(|t| t.slug().to_owned()),
        },
        tenant: caller.tenant.as_ref().map(tenant_view),
        expires_at: caller.expires_at,
    })
}

/// This API's OpenAPI 3 document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "session",
    operation_id = "openapi",
    responses((status = 200, description = "The OpenAPI 3 document", content_type = "application/json", body = Object)),
)]
pub(crate) async fn openapi_json() -> HttpResponse {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    let text = DOCUMENT.get_or_init(|| match openapi().to_json() {
        Ok(text) => text,
        Err(e) => {
            tracing::error!(error = %e, "cannot serialize the OpenAPI document");
            "{}".to_owned()
        }
    });
    HttpResponse::Ok()
        .content_type("application/json")
        .body(text.clone())
}
