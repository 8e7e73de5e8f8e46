//! Logging in, who am I, and the OpenAPI document.

use std::net::IpAddr;
use std::sync::OnceLock;

use actix_web::{HttpRequest, HttpResponse, web};

use crate::auth::Authenticated;
use crate::error::{AdminError, ErrorBody};
use crate::handlers::{JsonBody, tenant_view};
use crate::service::login::{self, Credentials};
use crate::wire::{LoginRequest, LoginResponse, MeResponse, PrincipalKind, PrincipalView};
use crate::{State, openapi};

/// The client's address: the peer's, or, when the peer is a trusted
/// proxy, the last `X-Forwarded-For` hop that is not one (the hops before
/// it are whatever the client chose to send).
pub(crate) fn client_address(req: &HttpRequest, trusted: &[ipnet::IpNet]) -> Option<IpAddr> {
    let trusted_hop = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    let peer = req.peer_addr()?.ip();
    if !trusted_hop(&peer) {
        return Some(peer);
    }
    let hops: Vec<IpAddr> = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map_while(|hop| hop.trim().parse::<IpAddr>().ok())
        .collect();
    Some(
        hops.into_iter()
            .rev()
            .find(|hop| !trusted_hop(hop))
            .unwrap_or(peer),
    )
}

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
        (status = 429, description = "Too many failed logins for this account or from this address; retry after `Retry-After` seconds", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds until the next attempt is accepted"))),
    ),
)]
pub(crate) async fn login(
    state: web::Data<State>,
    req: HttpRequest,
    body: JsonBody<LoginRequest>,
) -> Result<HttpResponse, AdminError> {
    let body = body.into_inner();
    let client = client_address(&req, &state.login.trusted_proxies);
    let credentials = Credentials {
        email: &body.email,
        password: &body.password,
        tenant: body.tenant.as_deref(),
    };
    let principal = login::login(
        &state.store.admin(),
        &state.login.throttle,
        credentials,
        client,
    )
    .await?;
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
