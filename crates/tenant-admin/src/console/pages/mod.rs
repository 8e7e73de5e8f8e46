//! The console's pages, one module per area. Handlers only translate:
//! parse the form or query, get a context through the API's access types,
//! call the service, render a template (STYLE §13).

use actix_web::{HttpRequest, HttpResponse, Scope, web};
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;

use super::render::ConsoleError;
use super::session::{self, parse_form};
use crate::auth::{self, Access, Caller, Scoped};
use crate::error::AdminError;
use crate::service::TenantContext;

mod connection;
mod delivery;
mod directory;
mod fanout;
mod logs;
mod mapping;
mod roles;
mod safety;
pub(crate) mod setup;
mod tenants;

/// Registers every signed-in page on `scope`.
pub(crate) fn routes(scope: Scope) -> Scope {
    use web::{get, post};
    scope
        .route("", get().to(session::home))
        .route("/", get().to(session::home))
        .route("/logout", post().to(session::logout))
        .route("/tenants", get().to(tenants::list))
        .route("/tenants", post().to(tenants::create))
        .route("/t/{tenant}", get().to(tenants::overview))
        .route("/t/{tenant}/status", post().to(tenants::set_status))
        .route("/t/{tenant}/delete", get().to(tenants::confirm_delete))
        .route("/t/{tenant}/delete", post().to(tenants::delete))
        .route("/t/{tenant}/connection", get().to(connection::page))
        .route("/t/{tenant}/tokens", post().to(connection::issue))
        .route(
            "/t/{tenant}/tokens/{id}/revoke",
            get().to(connection::confirm_revoke),
        )
        .route(
            "/t/{tenant}/tokens/{id}/revoke",
            post().to(connection::revoke),
        )
        .route(
            "/t/{tenant}/setup-links",
            post().to(connection::create_link),
        )
        .route(
            "/t/{tenant}/setup-links/{id}/revoke",
            get().to(connection::confirm_revoke_link),
        )
        .route(
            "/t/{tenant}/setup-links/{id}/revoke",
            post().to(connection::revoke_link),
        )
        .route("/t/{tenant}/routing", get().to(fanout::page))
        .route("/t/{tenant}/routing", post().to(fanout::change))
        .route("/t/{tenant}/kind", post().to(fanout::set_kind))
        .route("/t/{tenant}/children", post().to(fanout::link))
        .route(
            "/t/{tenant}/children/{child}/unlink",
            get().to(fanout::confirm_unlink),
        )
        .route(
            "/t/{tenant}/children/{child}/unlink",
            post().to(fanout::unlink),
        )
        .route("/t/{tenant}/delivery/{id}/mapping", get().to(mapping::page))
        .route(
            "/t/{tenant}/delivery/{id}/mapping",
            post().to(mapping::change),
        )
        .route("/t/{tenant}/users", get().to(directory::users))
        .route("/t/{tenant}/users/{id}", get().to(directory::user))
        .route("/t/{tenant}/users/{id}/lock", post().to(directory::lock))
        .route(
            "/t/{tenant}/users/{id}/unlock",
            post().to(directory::unlock),
        )
        .route("/t/{tenant}/groups", get().to(directory::groups))
        .route("/t/{tenant}/roles", get().to(roles::page))
        .route("/t/{tenant}/roles/preview", post().to(roles::preview))
        .route("/t/{tenant}/roles/apply", post().to(roles::apply))
        .route("/t/{tenant}/roles/jobs/{id}", get().to(roles::job))
        .route("/t/{tenant}/locks", get().to(roles::locks))
        .route("/t/{tenant}/provisioning", get().to(logs::provisioning))
        .route("/t/{tenant}/audit", get().to(logs::audit))
        .route("/t/{tenant}/delivery", get().to(delivery::page))
        .route("/t/{tenant}/delivery/{id}", get().to(delivery::target))
        .route(
            "/t/{tenant}/delivery/{id}/enabled",
            post().to(delivery::set_enabled),
        )
        .route(
            "/t/{tenant}/delivery/{id}/dead-letters/{delivery}/replay",
            post().to(delivery::replay_one),
        )
        .route(
            "/t/{tenant}/delivery/{id}/dead-letters/replay",
            get().to(delivery::confirm_replay_all),
        )
        .route(
            "/t/{tenant}/delivery/{id}/dead-letters/replay",
            post().to(delivery::replay_all),
        )
        .route(
            "/t/{tenant}/delivery/{id}/reconcile",
            post().to(delivery::reconcile),
        )
        .route(
            "/t/{tenant}/delivery/{id}/repair",
            get().to(delivery::confirm_repair),
        )
        .route("/t/{tenant}/jobs/{job}", get().to(delivery::job))
        .route(
            "/t/{tenant}/users/{id}/timeline",
            get().to(delivery::timeline),
        )
        .route("/t/{tenant}/safety", get().to(safety::page))
        .route("/t/{tenant}/safety/policy", post().to(safety::set_policy))
        .route(
            "/t/{tenant}/safety/held/release",
            post().to(safety::release),
        )
        .route(
            "/t/{tenant}/safety/held/discard/review",
            post().to(safety::review_discard),
        )
        .route(
            "/t/{tenant}/safety/held/discard",
            get().to(safety::confirm_discard),
        )
        .route(
            "/t/{tenant}/safety/held/discard",
            post().to(safety::discard),
        )
        .route("/t/{tenant}/safety/protected", post().to(safety::protect))
        .route(
            "/t/{tenant}/safety/protected/{id}/unprotect",
            post().to(safety::unprotect),
        )
        .route(
            "/t/{tenant}/safety/deleted/{id}/restore",
            post().to(safety::restore),
        )
        .route(
            "/t/{tenant}/users/{id}/erase",
            get().to(safety::confirm_erase),
        )
        .route("/t/{tenant}/users/{id}/erase", post().to(safety::erase))
}

/// The tenant in scope with access `A` checked, as the API checks it.
pub(crate) async fn scoped<A: Access>(req: &HttpRequest) -> Result<TenantContext, ConsoleError> {
    auth::enter_tenant(req).await?;
    Ok(Scoped::<A>::from_req(req)?.ctx)
}

/// The signed-in caller, who must be an operator (403 otherwise, as in the
/// API).
pub(crate) fn operator(req: &HttpRequest) -> Result<Caller, ConsoleError> {
    let caller = auth::caller_of(req)?;
    if !caller.is_operator() {
        return Err(AdminError::Forbidden("only operators may do this".to_owned()).into());
    }
    Ok(caller)
}

/// The query string as `T` (400 page when malformed).
pub(crate) fn query<T: DeserializeOwned>(req: &HttpRequest) -> Result<T, ConsoleError> {
    parse_form(req.query_string().as_bytes())
}

/// A path parameter (the router guarantees it exists).
pub(crate) fn param(req: &HttpRequest, name: &str) -> String {
    req.match_info().get(name).unwrap_or_default().to_owned()
}

/// A form body as `T`.
pub(crate) fn form<T: DeserializeOwned>(body: &web::Bytes) -> Result<T, ConsoleError> {
    parse_form(body)
}

/// How a time reads in the console (UTC, to the second).
pub(crate) fn when(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// An optional time, or a dash.
pub(crate) fn when_opt(t: &Option<DateTime<Utc>>) -> String {
    t.as_ref().map(when).unwrap_or_else(|| "—".to_owned())
}

/// Paging of a list: which page, how many per page, and links.
#[derive(Debug, Clone)]
pub(crate) struct Pager {
    pub(crate) total: u64,
    pub(crate) first: u64,
    pub(crate) last: u64,
    pub(crate) prev: Option<String>,
    pub(crate) next: Option<String>,
}

impl Pager {
    /// Paging for items `offset..offset+shown` of `total`, with links to
    /// `path` carrying `query` (already encoded, may be empty) and `page`.
    pub(crate) fn new(
        path: &str,
        query: &str,
        page: u64,
        per_page: u64,
        shown: u64,
        total: u64,
    ) -> Pager {
        let offset = (page - 1) * per_page;
        let link = |p: u64| {
            if query.is_empty() {
                format!("{path}?page={p}")
            } else {
                format!("{path}?{query}&page={p}")
            }
        };
        Pager {
            total,
            first: if shown == 0 { 0 } else { offset + 1 },
            last: offset + shown,
            prev: (page > 1).then(|| link(page - 1)),
            next: (offset + shown < total).then(|| link(page + 1)),
        }
    }
}

/// `q=...` encoded for a link, or empty.
pub(crate) fn encode_query(pairs: &[(&str, &str)]) -> String {
    let kept: Vec<(&str, &str)> = pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .copied()
        .collect();
    serde_html_form::to_string(kept).unwrap_or_default()
}

/// A 1-based page number from a query (1 when absent or zero).
pub(crate) fn page_number(page: Option<u64>) -> u64 {
    page.unwrap_or(1).clamp(1, 1_000_000)
}

/// The response to a request the console can only answer with a page.
pub(crate) type Page = Result<HttpResponse, ConsoleError>;
