//! A tenant's connection page: its SCIM URL, its tokens (issue with a
//! secret shown once, revoke) and the Entra ID and Okta setup steps with
//! this tenant's values filled in.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, web};
use askama::Template;
use chrono::{Duration, Utc};
use serde::Deserialize;
use store::setup_links::SetupLink;
use store::{IssuedToken, NewToken, Scope, Tenant, TokenInfo};

use super::{Page, form, param, scoped, when, when_opt};
use crate::auth::{self, Read, Write};
use crate::console::CONSOLE_PATH;
use crate::console::render::{FormErrors, Layout, html, ok, see_other};
use crate::service::{self, TenantContext, setup_links};

/// The tenant's SCIM base URL: the configured public URL, else the one
/// this request reached the console at.
pub(crate) fn scim_url(req: &HttpRequest, tenant: &Tenant) -> String {
    format!("{}/tenants/{}/scim/v2", scim_url_base(req), tenant.slug())
}

/// Where clients reach this deployment: `public_url`, else the origin of
/// this request.
fn scim_url_base(req: &HttpRequest) -> String {
    match auth::state(req)
        .ok()
        .and_then(|s| s.public_url.get().cloned())
    {
        Some(url) => url,
        None => {
            let info = req.connection_info();
            format!("{}://{}", info.scheme(), info.host())
        }
    }
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

/// A setup link as listed.
pub(crate) struct LinkRow {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) created_by: String,
    pub(crate) expires: String,
    pub(crate) last_used: String,
    /// `active`, `expired` or `revoked`.
    pub(crate) state: &'static str,
}

impl LinkRow {
    fn of(l: &SetupLink) -> LinkRow {
        LinkRow {
            id: l.id.to_string(),
            name: l.name.clone(),
            created_by: l.created_by.clone(),
            expires: when(&l.expires_at),
            last_used: when_opt(&l.last_used_at),
            state: if l.revoked_at.is_some() {
                "revoked"
            } else if l.usable(Utc::now()) {
                "active"
            } else {
                "expired"
            },
        }
    }
}

/// What the setup link form had.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct LinkForm {
    #[serde(default)]
    link_name: String,
    #[serde(default)]
    link_days: String,
}

#[derive(Template)]
#[template(path = "console/connection.html")]
struct ConnectionPage {
    layout: Layout,
    scim_url: String,
    tokens: Vec<TokenRow>,
    issued: Option<(TokenRow, String)>,
    new: IssueForm,
    links: Vec<LinkRow>,
    /// A just-made setup link's URL (shown once).
    made_link: Option<String>,
    link: LinkForm,
    errors: FormErrors,
}

/// What the connection page shows beyond its lists.
#[derive(Default)]
struct Shown {
    issued: Option<IssuedToken>,
    new: IssueForm,
    made_link: Option<String>,
    link: LinkForm,
    errors: FormErrors,
}

async fn page_with(
    req: &HttpRequest,
    ctx: &TenantContext,
    shown: Shown,
    status: StatusCode,
) -> Page {
    let tenant = ctx.tenant();
    let tokens = service::list_tokens(ctx).await?;
    let links = setup_links::list(ctx).await?;
    let page = ConnectionPage {
        layout: Layout::new(req, "Connection", "connection", Some(tenant))?,
        scim_url: scim_url(req, tenant),
        tokens: tokens.iter().map(TokenRow::of).collect(),
        issued: shown.issued.map(|t| (TokenRow::of(&t.info), t.secret)),
        new: shown.new,
        links: links.iter().map(LinkRow::of).collect(),
        made_link: shown.made_link,
        link: shown.link,
        errors: shown.errors,
    };
    Ok(html(status, &page))
}

/// The public URL of a setup page.
fn setup_url(req: &HttpRequest, secret: &str) -> String {
    let base = scim_url_base(req);
    format!("{base}{}", crate::console::setup_path(secret))
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
    let shown = Shown {
        issued,
        new,
        ..Shown::default()
    };
    page_with(req, ctx, shown, status).await
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
    let mut unknown = None;
    for s in &new.scope {
        match s.as_str() {
            "scim:write" => scopes.push(Scope::ScimWrite),
            "scim:read" => scopes.push(Scope::ScimRead),
            "events:read" => scopes.push(Scope::EventsRead),
            other => unknown = Some(other.to_owned()),
        }
    }
    if let Some(other) = unknown {
        let errors = FormErrors::on("scope", format!("unknown scope {other:?}"));
        let shown = Shown {
            new,
            errors,
            ..Shown::default()
        };
        return page_with(&req, &ctx, shown, StatusCode::UNPROCESSABLE_ENTITY).await;
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
                let shown = Shown {
                    new,
                    errors,
                    ..Shown::default()
                };
                return page_with(&req, &ctx, shown, StatusCode::UNPROCESSABLE_ENTITY).await;
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
            page_with(
                &req,
                &ctx,
                Shown {
                    new,
                    errors,
                    ..Shown::default()
                },
                status,
            )
            .await
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

/// `POST /console/t/{tenant}/setup-links`: makes a link; the page shows
/// its URL once.
pub(crate) async fn create_link(req: HttpRequest, body: web::Bytes) -> Page {
    let ctx = scoped::<Write>(&req).await?;
    let link: LinkForm = form(&body)?;
    let days = match link.link_days.trim() {
        "" => None,
        d => match d.parse::<i64>() {
            Ok(d) => Some(d),
            Err(_) => {
                let errors =
                    FormErrors::on("link_days", "enter a whole number of days from 1 to 30");
                let shown = Shown {
                    link,
                    errors,
                    ..Shown::default()
                };
                return page_with(&req, &ctx, shown, StatusCode::UNPROCESSABLE_ENTITY).await;
            }
        },
    };
    match setup_links::create(&ctx, &link.link_name, days).await {
        Ok(made) => {
            let shown = Shown {
                made_link: Some(setup_url(&req, &made.secret)),
                ..Shown::default()
            };
            page_with(&req, &ctx, shown, StatusCode::CREATED).await
        }
        Err(e) => {
            let mut errors = FormErrors::from_error(e, &["name", "expiresInDays"])?;
            // The service names the API's fields; the form's differ.
            errors = errors.renamed(&[("name", "link_name"), ("expiresInDays", "link_days")]);
            let status = errors.status();
            page_with(
                &req,
                &ctx,
                Shown {
                    link,
                    errors,
                    ..Shown::default()
                },
                status,
            )
            .await
        }
    }
}

#[derive(Template)]
#[template(path = "console/setup_link_revoke.html")]
struct RevokeLinkPage {
    layout: Layout,
    link: LinkRow,
}

/// `GET /console/t/{tenant}/setup-links/{id}/revoke`: the confirmation.
pub(crate) async fn confirm_revoke_link(req: HttpRequest) -> Page {
    let ctx = scoped::<Write>(&req).await?;
    let id = param(&req, "id");
    let link = setup_links::list(&ctx)
        .await?
        .into_iter()
        .find(|l| l.id.to_string() == id)
        .ok_or_else(|| service::ServiceError::NotFound(format!("setup link {id}")))?;
    ok(&RevokeLinkPage {
        layout: Layout::new(&req, "Revoke setup link", "connection", Some(ctx.tenant()))?,
        link: LinkRow::of(&link),
    })
}

/// `POST /console/t/{tenant}/setup-links/{id}/revoke`.
pub(crate) async fn revoke_link(req: HttpRequest) -> Page {
    let ctx = scoped::<Write>(&req).await?;
    setup_links::revoke(&ctx, &param(&req, "id")).await?;
    see_other(format!(
        "{CONSOLE_PATH}/t/{}/connection#setup-links",
        ctx.tenant().slug()
    ))
}
