//! Console sessions: the login form, the session cookie, CSRF tokens and
//! logout.
//!
//! - **The session** is the admin API's own signed session token (same
//!   keys, lifetime and checks, re-read on every request so a deleted login
//!   or tenant ends it), kept in the `scimgate_console` cookie: HttpOnly
//!   (no script can read it), SameSite=Strict (no other site's page sends
//!   it), Path=/console, Secure when the console is reached over https.
//! - **CSRF**: every POST carries a token in the form field `csrf` (or,
//!   for htmx requests, the `X-CSRF-Token` header) equal to a SHA-256 of
//!   the session token: unguessable without the cookie, which no other
//!   origin can read. The check is a middleware over every signed-in
//!   route, so no handler can forget it. The login form, before there is a
//!   session, uses a random double-submit cookie instead.
//! - **Logins** go through [`crate::service::login::login`], the very
//!   function (and throttle) `POST /admin/v1/login` uses.
//! - **Logout** drops the cookie and remembers the session's digest until
//!   its expiry, so a copy of the cookie stops working too. The list is
//!   this process's; sessions expire after the configured lifetime anyway.

use std::collections::HashMap;
use std::sync::Mutex;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::cookie::{Cookie, SameSite};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};
use askama::Template;
use base64::Engine;
use chrono::Utc;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::CONSOLE_PATH;
use super::render::{self, ConsoleError, FormErrors, html, to_login};
use crate::auth::{self, Caller};
use crate::error::AdminError;
use crate::service::ServiceError;
use crate::service::login::{self, Credentials};
use crate::{MAX_BODY_BYTES, State};

/// The session cookie.
pub const SESSION_COOKIE: &str = "scimgate_console";

/// The double-submit cookie of forms shown without a session (login, a
/// setup link's page).
pub const FORM_COOKIE: &str = "scimgate_console_form";

/// The form field that carries the CSRF token.
pub const CSRF_FIELD: &str = "csrf";

/// The header htmx requests carry the CSRF token in.
pub const CSRF_HEADER: &str = "X-CSRF-Token";

/// The signed-in person of a console request.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    pub(crate) email: String,
    pub(crate) operator: bool,
    /// The token every form of this session carries.
    pub(crate) csrf: String,
    digest: [u8; 32],
    expires_at: i64,
}

/// Sessions ended by logout, by digest, until their expiry.
#[derive(Debug, Default)]
pub(crate) struct Logouts(Mutex<HashMap<[u8; 32], i64>>);

impl Logouts {
    fn add(&self, digest: [u8; 32], expires_at: i64) {
        let now = Utc::now().timestamp();
        let mut ended = self.0.lock().unwrap_or_else(|e| e.into_inner());
        ended.retain(|_, exp| *exp > now);
        ended.insert(digest, expires_at);
    }

    fn contains(&self, digest: &[u8; 32]) -> bool {
        let ended = self.0.lock().unwrap_or_else(|e| e.into_inner());
        ended.contains_key(digest)
    }
}

fn digest(label: &[u8], token: &str) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update(label);
    hash.update(token.as_bytes());
    hash.finalize().into()
}

/// The CSRF token of a session token.
fn csrf_of(token: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(digest(b"scimgate console csrf\0", token))
}

/// Compares in time independent of where the inputs differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

fn session_cookie<'a>(req: &HttpRequest, value: String, max_age_secs: i64) -> Cookie<'a> {
    Cookie::build(SESSION_COOKIE, value)
        .path(CONSOLE_PATH)
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(req.connection_info().scheme() == "https")
        .max_age(actix_web::cookie::time::Duration::seconds(max_age_secs))
        .finish()
}

/// Reads an `application/x-www-form-urlencoded` body into `T`.
pub(crate) fn parse_form<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ConsoleError> {
    serde_html_form::from_bytes(body)
        .map_err(|e| ConsoleError(AdminError::BadRequest(format!("invalid form: {e}"))))
}

/// The `csrf` field of a form body, if any.
fn csrf_field(body: &[u8]) -> Option<String> {
    let pairs: Vec<(String, String)> = serde_html_form::from_bytes(body).ok()?;
    pairs
        .into_iter()
        .find(|(name, _)| name == CSRF_FIELD)
        .map(|(_, value)| value)
}

/// Reads a request body up to [`MAX_BODY_BYTES`].
async fn read_body(req: &mut ServiceRequest) -> Result<web::Bytes, AdminError> {
    use futures_util::StreamExt;
    let mut payload = req.take_payload();
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk
            .map_err(|e| AdminError::BadRequest(format!("cannot read the request body: {e}")))?;
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(AdminError::PayloadTooLarge {
                limit: MAX_BODY_BYTES,
            });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// The middleware of every signed-in console route: no session (or an
/// ended one) goes to the login form; a POST without this session's CSRF
/// token is refused (403) before any handler runs; otherwise the caller
/// and the tenant of the path are resolved exactly as for the API.
pub(crate) async fn require_session(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let Some(token) = req.cookie(SESSION_COOKIE).map(|c| c.value().to_owned()) else {
        return Ok(req.into_response(to_login()).map_into_right_body());
    };
    let state = auth::state(req.request())?;
    let digest = digest(b"scimgate console session\0", &token);
    let caller = match auth::session_caller(&state, &token).await {
        Ok(caller) if !state.console_logouts.contains(&digest) => caller,
        Ok(_) | Err(AdminError::Unauthorized(_)) => {
            return Ok(req.into_response(to_login()).map_into_right_body());
        }
        Err(e) => return Err(ConsoleError(e).into()),
    };
    let csrf = csrf_of(&token);
    if req.method() == Method::POST {
        let from_header = req
            .headers()
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = read_body(&mut req).await.map_err(ConsoleError)?;
        let given = from_header.or_else(|| csrf_field(&body));
        if !given.is_some_and(|g| same(&g, &csrf)) {
            tracing::warn!(path = %req.path(), "console form refused: missing or wrong CSRF token");
            return Err(ConsoleError(AdminError::Forbidden(
                "this form is missing its security token or it does not match your session; \
                 reload the page and try again"
                    .to_owned(),
            ))
            .into());
        }
        req.set_payload(actix_web::dev::Payload::from(body));
    }
    let session = Session {
        email: caller.email.clone(),
        operator: caller.is_operator(),
        csrf,
        digest,
        expires_at: caller.expires_at.timestamp(),
    };
    auth::enter(&state, &req, caller)
        .await
        .map_err(ConsoleError)?;
    req.extensions_mut().insert(session);
    Ok(next.call(req).await?.map_into_left_body())
}

/// The login page.
#[derive(Template)]
#[template(path = "console/login.html")]
struct LoginPage<'a> {
    csrf: &'a str,
    email: &'a str,
    tenant: &'a str,
    errors: FormErrors,
}

/// A fresh double-submit token for a form shown without a session (the
/// login form, a setup link's page): the same value goes into the form
/// and into an HttpOnly, SameSite=Strict cookie that [`form_token_matches`]
/// compares it with.
pub(crate) fn form_token() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 24]>())
}

/// Sets the cookie of a [`form_token`] on the response showing the form.
pub(crate) fn set_form_cookie(req: &HttpRequest, res: &mut HttpResponse, token: &str) {
    let cookie = Cookie::build(FORM_COOKIE, token.to_owned())
        .path(CONSOLE_PATH)
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(req.connection_info().scheme() == "https")
        .finish();
    if let Err(e) = res.add_cookie(&cookie) {
        tracing::error!(error = %e, "cannot set the console form cookie");
    }
}

/// True when a form posted without a session carries the token its
/// cookie holds.
pub(crate) fn form_token_matches(req: &HttpRequest, given: &str) -> bool {
    req.cookie(FORM_COOKIE)
        .is_some_and(|c| !c.value().is_empty() && same(c.value(), given))
}

fn login_page(
    req: &HttpRequest,
    status: StatusCode,
    email: &str,
    tenant: &str,
    errors: FormErrors,
) -> HttpResponse {
    let csrf = form_token();
    let page = LoginPage {
        csrf: &csrf,
        email,
        tenant,
        errors,
    };
    let mut res = html(status, &page);
    set_form_cookie(req, &mut res, &csrf);
    res
}

/// `GET /console/login`.
pub(crate) async fn login_form(req: HttpRequest) -> HttpResponse {
    login_page(&req, StatusCode::OK, "", "", FormErrors::none())
}

/// The login form's fields.
#[derive(Debug, Deserialize)]
struct LoginForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    /// Blank for operators.
    #[serde(default)]
    tenant: String,
    #[serde(default)]
    csrf: String,
}

/// `POST /console/login`.
pub(crate) async fn login(
    req: HttpRequest,
    state: web::Data<State>,
    body: web::Bytes,
) -> Result<HttpResponse, ConsoleError> {
    let form: LoginForm = parse_form(&body)?;
    if !form_token_matches(&req, &form.csrf) {
        return Ok(login_page(
            &req,
            StatusCode::FORBIDDEN,
            &form.email,
            &form.tenant,
            FormErrors::on(
                "",
                "the form expired or was not sent from this page; please try again",
            ),
        ));
    }
    let tenant = form.tenant.trim();
    if form.email.trim().is_empty() || form.password.is_empty() {
        let errors = if form.email.trim().is_empty() {
            FormErrors::on("email", "enter your e-mail address")
        } else {
            FormErrors::on("password", "enter your password")
        };
        return Ok(login_page(
            &req,
            StatusCode::UNPROCESSABLE_ENTITY,
            &form.email,
            &form.tenant,
            errors,
        ));
    }
    let credentials = Credentials {
        email: form.email.trim(),
        password: &form.password,
        tenant: (!tenant.is_empty()).then_some(tenant),
    };
    let client = crate::handlers::session::client_address(&req, &state.login.trusted_proxies);
    let principal = match login::login(
        &state.store.admin(),
        &state.login.throttle,
        credentials,
        client,
    )
    .await
    {
        Ok(principal) => principal,
        Err(e @ (ServiceError::WrongCredentials | ServiceError::Throttled { .. })) => {
            let status = match &e {
                ServiceError::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
                _ => StatusCode::UNAUTHORIZED,
            };
            let mut res = login_page(
                &req,
                status,
                &form.email,
                &form.tenant,
                FormErrors::on("", e.to_string()),
            );
            if let ServiceError::Throttled { retry_after } = e {
                let secs = crate::service::retry_secs(retry_after).to_string();
                if let Some(value) = render::header_value(&secs) {
                    res.headers_mut()
                        .insert(actix_web::http::header::RETRY_AFTER, value);
                }
            }
            return Ok(res);
        }
        Err(e) => return Err(e.into()),
    };
    let (token, expires_at) = state.keys.issue(&principal, state.token_ttl)?;
    tracing::info!(email = %principal.email, "console login");
    let home = match &principal.tenant {
        Some(tenant) => format!("{CONSOLE_PATH}/t/{}", tenant.slug()),
        None => format!("{CONSOLE_PATH}/tenants"),
    };
    let max_age = (expires_at - Utc::now()).num_seconds().max(1);
    let mut res = HttpResponse::SeeOther()
        .insert_header((actix_web::http::header::LOCATION, home))
        .finish();
    res.add_cookie(&session_cookie(&req, token, max_age))
        .map_err(|e| AdminError::Internal(format!("cannot set the session cookie: {e}")))?;
    let mut spent = Cookie::build(FORM_COOKIE, "").path(CONSOLE_PATH).finish();
    spent.make_removal();
    res.add_cookie(&spent)
        .map_err(|e| AdminError::Internal(format!("cannot clear the login cookie: {e}")))?;
    Ok(res)
}

/// `POST /console/logout`: ends the session here and in the browser.
pub(crate) async fn logout(req: HttpRequest) -> Result<HttpResponse, ConsoleError> {
    let state = auth::state(&req)?;
    if let Some(session) = req.extensions().get::<Session>() {
        state
            .console_logouts
            .add(session.digest, session.expires_at);
        tracing::info!(email = %session.email, "console logout");
    }
    let mut res = HttpResponse::SeeOther()
        .insert_header((
            actix_web::http::header::LOCATION,
            format!("{CONSOLE_PATH}/login"),
        ))
        .finish();
    let mut gone = session_cookie(&req, String::new(), 0);
    gone.make_removal();
    res.add_cookie(&gone)
        .map_err(|e| AdminError::Internal(format!("cannot clear the session cookie: {e}")))?;
    Ok(res)
}

/// `GET /console`: the signed-in person's start page.
pub(crate) async fn home(req: HttpRequest) -> Result<HttpResponse, ConsoleError> {
    let caller: Caller = auth::caller_of(&req)?;
    let target = match &caller.tenant {
        Some(tenant) => format!("{CONSOLE_PATH}/t/{}", tenant.slug()),
        None => format!("{CONSOLE_PATH}/tenants"),
    };
    render::see_other(target)
}
