//! The page a setup link opens, for a customer's IT admin without an
//! account: the tenant's SCIM URL, the Entra ID and Okta steps, and one
//! action, issuing (or rotating) the tenant's SCIM token. Nothing else of
//! the tenant is shown or reachable from here.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use chrono::Utc;
use serde::Deserialize;
use store::Tenant;
use store::setup_links::SetupLink;

use super::{Page, form, param, when};
use crate::auth;
use crate::console::render::{FormErrors, html};
use crate::console::session::{form_token, form_token_matches, set_form_cookie};
use crate::service::setup_links;

#[derive(Template)]
#[template(path = "console/setup.html")]
struct SetupPage {
    tenant: String,
    link_name: String,
    expires: String,
    scim_url: String,
    rotates: bool,
    secret: Option<String>,
    action: String,
    csrf: String,
    errors: FormErrors,
}

fn render(
    req: &HttpRequest,
    tenant: &Tenant,
    link: &SetupLink,
    secret: Option<String>,
    errors: FormErrors,
    status: StatusCode,
) -> HttpResponse {
    let csrf = form_token();
    let page = SetupPage {
        tenant: tenant.name().to_owned(),
        link_name: link.name.clone(),
        expires: when(&link.expires_at),
        scim_url: super::connection::scim_url(req, tenant),
        rotates: link.token_id.is_some() || secret.is_some(),
        secret,
        action: format!("{}/token", req.path().trim_end_matches("/token")),
        csrf: csrf.clone(),
        errors,
    };
    let mut res = html(status, &page);
    set_form_cookie(req, &mut res, &csrf);
    res
}

/// `GET /console/setup/{secret}`.
pub(crate) async fn page(req: HttpRequest) -> Page {
    let state = auth::state(&req)?;
    let (tenant, link) =
        setup_links::open(&state.store.admin(), &param(&req, "secret"), Utc::now()).await?;
    Ok(render(
        &req,
        &tenant,
        &link,
        None,
        FormErrors::none(),
        StatusCode::OK,
    ))
}

#[derive(Debug, Default, Deserialize)]
struct TokenForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /console/setup/{secret}/token`: a new `scim:write` token, the
/// one this link issued before revoked.
pub(crate) async fn rotate(req: HttpRequest, body: web::Bytes) -> Page {
    let state = auth::state(&req)?;
    let secret = param(&req, "secret");
    let admin = state.store.admin();
    let (tenant, link) = setup_links::open(&admin, &secret, Utc::now()).await?;
    let f: TokenForm = form(&body)?;
    if !form_token_matches(&req, &f.csrf) {
        let errors = FormErrors::on(
            "",
            "the form expired or was not sent from this page; please try again",
        );
        return Ok(render(
            &req,
            &tenant,
            &link,
            None,
            errors,
            StatusCode::FORBIDDEN,
        ));
    }
    let (tenant, issued) =
        setup_links::rotate_token(&admin, &state.store, &secret, Utc::now()).await?;
    // The previous token stops working at once on this instance.
    state.auth_changed();
    let (tenant, link) = match setup_links::open(&admin, &secret, Utc::now()).await {
        Ok(found) => found,
        Err(_) => (tenant, link),
    };
    tracing::info!(tenant = %tenant.slug(), link = %link.id, "token issued through a setup link");
    Ok(render(
        &req,
        &tenant,
        &link,
        Some(issued.secret),
        FormErrors::none(),
        StatusCode::CREATED,
    ))
}
