//! A tenant's connection page: its SCIM URL, its tokens (issue with a
//! secret shown once, revoke) and the Entra ID and Okta setup steps with
//! this tenant's values filled in.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, web};
use askama::Template;
use chrono::{Duration, Utc};
use serde::Deserialize;
use store::{IssuedToken, NewToken, Scope, Tenant, TokenInfo};

use super::{Page, form, param, scoped, when, when_opt};
use crate::auth::{self, Read, Write};
use crate::console::CONSOLE_PATH;
use crate::console::render::{FormErrors, Layout, html, ok, see_other};
use crate::service::{self, TenantContext};

/// The tenant's SCIM base URL: the configured public URL, else the one
/// this request reached the console at.
pub(crate) fn scim_url(req: &HttpRequest, tenant: &Tenant) -> String {
    let base = match auth::state(req)
        .ok()
        .and_then(|s| s.public_url.get().cloned())
    {
        Some(url) => url,
        None => {
            let info = req.connection_info();
            format!("{}://{}", info.scheme(), info.host())
        }
    };
    format!("{base}/tenants/{}/scim/v2", tenant.slug())
}

/// One token as the page lists it.
pub(crate) struct TokenRow {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) scopes: String,
    pub(crate) created: String,
    pub(crate) expires: String,
    pub(crate) revoked: Option<String>,
    pub(crate) expired: bool,
}

impl TokenRow {
    fn of(t: &TokenInfo) -> TokenRow {
        TokenRow {
            id: t.id.to_string(),
            name: t.name.clone(),
            scopes: t
                .scopes
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            created: when(&t.created_at),
            expires: when_opt(&t.expires_at),
            revoked: t.revoked_at.as_ref().map(when),
            expired: t.expires_at.is_some_and(|e| e <= Utc::now()),
        }
    }
}

/// What the issue form had.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct IssueForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    scope: Vec<String>,
    #[serde(default)]
    expires_days: String,
}

impl IssueForm {
    pub(crate) fn has(&self, scope: &str) -> bool {
        self.scope.iter().any(|s| s == scope)
    }
}

#[derive(Template)]
#[template(path = "console/connection.html")]
struct ConnectionPage {
    layout: Layout,
    scim_url: String,
    tokens: Vec<TokenRow>,
    issued: Option<(TokenRow, String)>,
    new: IssueForm,
    errors: FormErrors,
}

async fn page_with(
    req: &HttpRequest,
    ctx: &TenantContext,
    issued: Option<IssuedToken>,
    new: IssueForm,
    errors: FormErrors,
    status: StatusCode,
) -> Page {
    let tenant = ctx.tenant();
    let tokens = service::list_tokens(ctx).await?;
    let page = ConnectionPage {
        layout: Layout::new(req, "Connection", "connection", Some(tenant))?,
        scim_url: scim_url(req, tenant),
        tokens: tokens.iter().map(TokenRow::of).collect(),
        issued: issued.map(|t| (TokenRow::of(&t.info), t.secret)),
        new,
        errors,
    };
    Ok(html(status, &page))
}

/// The connection page, with a just-issued token's secret if any.
pub(crate) async fn render(
    req: &HttpRequest,
    ctx: &TenantContext,
    issued: Option<IssuedToken>,
    status: StatusCode,
) -> Page {
    let new = IssueForm {
        scope: vec!["scim:write".to_owned()],
        ..IssueForm::default()
    };
    page_with(req, ctx, issued, new, FormErrors::none(), status).await
}

/// `GET /console/t/{tenant}/connection`.
pub(crate) async fn page(req: HttpRequest) -> Page {
    let ctx = scoped::<Read>(&req).await?;
    render(&req, &ctx, None, StatusCode::OK).await
}

/// `POST /console/t/{tenant}/tokens`: issue a token; the answer shows its
/// secret, once.
pub(crate) async fn issue(req: HttpRequest, body: web::Bytes) -> Page {
    let ctx = scoped::<Write>(&req).await?;
    let new: IssueForm = form(&body)?;
    let mut scopes = Vec::new();
    for s in &new.scope {
        scopes.push(match s.as_str() {
            "scim:write" => Scope::ScimWrite,
            "scim:read" => Scope::ScimRead,
            "events:read" => Scope::EventsRead,
            _ => {
                let errors = FormErrors::on("scope", format!("unknown scope {s:?}"));
                return page_with(
                    &req,
                    &ctx,
                    None,
                    new,
                    errors,
                    StatusCode::UNPROCESSABLE_ENTITY,
                )
                .await;
            }
        });
    }
    let now = Utc::now();
    let expires_at = match new.expires_days.trim() {
        "" => None,
        days => match days.parse::<i64>() {
            Ok(d) if (1..=3650).contains(&d) => Some(now + Duration::days(d)),
            _ => {
                let errors = FormErrors::on(
                    "expires_days",
                    "enter a whole number of days from 1 to 3650, or leave it empty",
                );
                return page_with(
                    &req,
                    &ctx,
                    None,
                    new,
                    errors,
                    StatusCode::UNPROCESSABLE_ENTITY,
                )
                .await;
            }
        },
    };
    let request = NewToken {
        name: new.name.trim().to_owned(),
        scopes,
        expires_at,
    };
    match service::issue_token(&ctx, request, now).await {
        Ok(issued) => render(&req, &ctx, Some(issued), StatusCode::CREATED).await,
        Err(e) => {
            let errors = FormErrors::from_error(e, &["name", "scope", "expires"])?;
            let status = errors.status();
            page_with(&req, &ctx, None, new, errors, status).await
        }
    }
}

#[derive(Template)]
#[template(path = "console/token_revoke.html")]
struct RevokePage {
    layout: Layout,
    token: TokenRow,
}

/// `GET /console/t/{tenant}/tokens/{id}/revoke`: the confirmation.
pub(crate) async fn confirm_revoke(req: HttpRequest) -> Page {
    let ctx = scoped::<Write>(&req).await?;
    let id = param(&req, "id");
    let token = service::list_tokens(&ctx)
        .await?
        .into_iter()
        .find(|t| t.id.to_string() == id)
        .ok_or_else(|| service::ServiceError::NotFound(format!("token {id}")))?;
    ok(&RevokePage {
        layout: Layout::new(&req, "Revoke token", "connection", Some(ctx.tenant()))?,
        token: TokenRow::of(&token),
    })
}

/// `POST /console/t/{tenant}/tokens/{id}/revoke`.
pub(crate) async fn revoke(req: HttpRequest) -> Page {
    let ctx = scoped::<Write>(&req).await?;
    service::revoke_token(&ctx, &param(&req, "id")).await?;
    auth::state(&req)?.auth_changed();
    see_other(format!(
        "{CONSOLE_PATH}/t/{}/connection",
        ctx.tenant().slug()
    ))
}
