//! The web console at `/console`: server-rendered HTML (askama templates,
//! compiled into the binary) with htmx for partial updates, for operators
//! and tenant admins.
//!
//! - **Same rules as the API.** Every page calls the [`crate::service`]
//!   layer with a [`crate::service::TenantContext`] obtained through the
//!   API's own scope resolution and access types ([`crate::auth::Scoped`]),
//!   so the console can never do what `/admin/v1` forbids: a tenant admin
//!   naming another tenant gets the same "not found".
//! - **Sessions** (module `session`): the login form goes through the API's
//!   login and throttle; the session is the API's signed token in an
//!   HttpOnly, SameSite=Strict cookie (Secure over https), every POST
//!   carries a CSRF token derived from it, logout forgets the session.
//! - **Every page works as a full page load**; htmx (`hx-boost`) only saves
//!   the reloads, and a few fragments (search results, previews, job
//!   progress) are rendered alone when htmx asks for them by target.
//! - **No inline script or style**: the content security policy allows only
//!   this origin's files, which are embedded (module `assets`).

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::{Next, from_fn};
use actix_web::web;

use crate::State;

mod assets;
mod pages;
mod render;
mod session;

pub(crate) use session::Logouts;

/// Where the console is mounted.
pub const CONSOLE_PATH: &str = "/console";

/// The content security policy of every console response: this origin's
/// scripts, styles and images only; no inline code, no framing, forms post
/// only here.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; \
     frame-ancestors 'none'; base-uri 'none'";

/// The path of the setup page a setup link's secret opens.
pub fn setup_path(secret: &str) -> String {
    format!("{CONSOLE_PATH}/setup/{secret}")
}

/// The `/console` scope.
pub(crate) fn scope(state: web::Data<State>) -> impl actix_web::dev::HttpServiceFactory {
    let protected = pages::routes(web::scope("")).wrap(from_fn(session::require_session));
    web::scope(CONSOLE_PATH)
        .app_data(state)
        .wrap(from_fn(security_headers))
        .route("/assets/{name}", web::get().to(assets::serve))
        .route("/login", web::get().to(session::login_form))
        .route("/login", web::post().to(session::login))
        .route("/setup/{secret}", web::get().to(pages::setup::page))
        .route(
            "/setup/{secret}/token",
            web::post().to(pages::setup::rotate),
        )
        .service(protected)
}

/// Headers every console response carries.
async fn security_headers(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let mut res = next.call(req).await?;
    let headers = res.headers_mut();
    for (name, value) in [
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
    ] {
        headers.insert(name, value);
    }
    // Pages hold secrets shown once and per-user data: never cached.
    // Assets set their own caching.
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    Ok(res)
}
