//! A tenant's SCIM bearer tokens.
//!
//! Revocation is committed here; every gateway instance polls the store's
//! auth revision (every 2 s by default) and drops its token cache when it
//! moves, so a revoked token stops working everywhere within seconds.

use actix_web::{HttpResponse, web};
use chrono::Utc;
use store::{NewToken, Scope};

use crate::State;
use crate::auth::{Read, Scoped, Write};
use crate::error::{AdminError, ErrorBody};
use crate::handlers::{IdPath, JsonBody, token_view};
use crate::service;
use crate::wire::{CreateToken, IssuedTokenView, ScopeWire, TokenList, TokenView};

/// The tenant's tokens (never their secrets).
#[utoipa::path(
    get,
    path = "/tenants/{tenant}/tokens",
    tag = "tokens",
    operation_id = "listTokens",
    params(("tenant" = String, Path, description = "The tenant's slug")),
    responses((status = 200, description = "The tokens, revoked ones included", body = TokenList)),
)]
pub(crate) async fn list_tokens(scope: Scoped<Read>) -> Result<HttpResponse, AdminError> {
    let tokens = service::list_tokens(&scope.ctx).await?;
    Ok(HttpResponse::Ok().json(TokenList {
        tokens: tokens.into_iter().map(token_view).collect(),
    }))
}

/// Issues a token; its secret is in this answer and nowhere else, ever.
#[utoipa::path(
    post,
    path = "/tenants/{tenant}/tokens",
    tag = "tokens",
    operation_id = "issueToken",
    params(("tenant" = String, Path, description = "The tenant's slug")),
    request_body = CreateToken,
    responses(
        (status = 201, description = "The token with its secret (shown once)", body = IssuedTokenView),
        (status = 403, description = "The tenant is suspended (tenant admins)", body = ErrorBody),
    ),
)]
pub(crate) async fn issue_token(
    scope: Scoped<Write>,
    body: JsonBody<CreateToken>,
) -> Result<HttpResponse, AdminError> {
    let body = body.into_inner();
    let issued = service::issue_token(
        &scope.ctx,
        NewToken {
            name: body.name,
            scopes: body
                .scopes
                .into_iter()
                .map(|s| match s {
                    ScopeWire::ScimWrite => Scope::ScimWrite,
                    ScopeWire::ScimRead => Scope::ScimRead,
                    ScopeWire::EventsRead => Scope::EventsRead,
                })
                .collect(),
            expires_at: body.expires_at,
        },
        Utc::now(),
    )
    .await?;
    Ok(HttpResponse::Created().json(IssuedTokenView {
        token: token_view(issued.info),
        secret: issued.secret,
    }))
}

/// Revokes a token; every instance refuses it within seconds.
#[utoipa::path(
    delete,
    path = "/tenants/{tenant}/tokens/{id}",
    tag = "tokens",
    operation_id = "revokeToken",
    params(
        ("tenant" = String, Path, description = "The tenant's slug"),
        ("id" = String, Path, description = "The token's id"),
    ),
    responses(
        (status = 200, description = "The revoked token", body = TokenView),
        (status = 403, description = "The tenant is suspended (tenant admins)", body = ErrorBody),
    ),
)]
pub(crate) async fn revoke_token(
    scope: Scoped<Write>,
    state: web::Data<State>,
    path: web::Path<IdPath>,
) -> Result<HttpResponse, AdminError> {
    let info = service::revoke_token(&scope.ctx, &path.id).await?;
    state.auth_changed();
    Ok(HttpResponse::Ok().json(token_view(info)))
}
