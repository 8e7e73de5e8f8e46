//! Setup links for a customer's IT admin (see docs/console.md): made,
//! listed and revoked by operators and the tenant's admins; the link
//! itself opens a console page, not this API.

use actix_web::{HttpResponse, web};
use store::setup_links::SetupLink;

use crate::auth::{Read, Scoped, Write};
use crate::error::{AdminError, ErrorBody};
use crate::handlers::{IdPath, JsonBody};
use crate::service::setup_links;
use crate::wire::{CreateSetupLink, CreatedSetupLink, SetupLinkList, SetupLinkView};

pub(crate) fn setup_link_view(link: SetupLink) -> SetupLinkView {
    SetupLinkView {
        id: link.id.to_string(),
        name: link.name,
        created_by: link.created_by,
        created_at: link.created_at,
        expires_at: link.expires_at,
        revoked_at: link.revoked_at,
        last_used_at: link.last_used_at,
        token_id: link.token_id.map(|t| t.to_string()),
    }
}

/// The tenant's setup links (never their secrets).
#[utoipa::path(
    get,
    path = "/tenants/{tenant}/setup-links",
    tag = "tokens",
    operation_id = "listSetupLinks",
    params(("tenant" = String, Path, description = "The tenant's slug")),
    responses((status = 200, description = "Newest first", body = SetupLinkList)),
)]
pub(crate) async fn list_setup_links(scope: Scoped<Read>) -> Result<HttpResponse, AdminError> {
    let links = setup_links::list(&scope.ctx).await?;
    Ok(HttpResponse::Ok().json(SetupLinkList {
        setup_links: links.into_iter().map(setup_link_view).collect(),
    }))
}

/// Makes a setup link: its holder can see the tenant's SCIM URL and setup
/// steps and issue or rotate the tenant's SCIM token, nothing else, until
/// it expires or is revoked. The link is in this answer only.
#[utoipa::path(
    post,
    path = "/tenants/{tenant}/setup-links",
    tag = "tokens",
    operation_id = "createSetupLink",
    params(("tenant" = String, Path, description = "The tenant's slug")),
    request_body = CreateSetupLink,
    responses(
        (status = 201, description = "The link (shown once)", body = CreatedSetupLink),
        (status = 403, description = "The tenant is suspended (tenant admins)", body = ErrorBody),
    ),
)]
pub(crate) async fn create_setup_link(
    scope: Scoped<Write>,
    body: JsonBody<CreateSetupLink>,
) -> Result<HttpResponse, AdminError> {
    let body = body.into_inner();
    let made = setup_links::create(&scope.ctx, &body.name, body.expires_in_days).await?;
    Ok(HttpResponse::Created().json(CreatedSetupLink {
        path: crate::console::setup_path(&made.secret),
        link: setup_link_view(made.link),
    }))
}

/// Revokes a setup link at once (tokens issued through it keep working;
/// revoke those separately).
#[utoipa::path(
    delete,
    path = "/tenants/{tenant}/setup-links/{id}",
    tag = "tokens",
    operation_id = "revokeSetupLink",
    params(
        ("tenant" = String, Path, description = "The tenant's slug"),
        ("id" = String, Path, description = "The link's id"),
    ),
    responses(
        (status = 200, description = "The revoked link", body = SetupLinkView),
        (status = 403, description = "The tenant is suspended (tenant admins)", body = ErrorBody),
    ),
)]
pub(crate) async fn revoke_setup_link(
    scope: Scoped<Write>,
    path: web::Path<IdPath>,
) -> Result<HttpResponse, AdminError> {
    let link = setup_links::revoke(&scope.ctx, &path.id).await?;
    Ok(HttpResponse::Ok().json(setup_link_view(link)))
}
