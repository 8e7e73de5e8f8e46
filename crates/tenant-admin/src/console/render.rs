//! Turning templates and errors into responses, and what every page's
//! layout shows (who is logged in, the tenant in scope, the CSRF token).

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpMessage, HttpRequest, HttpResponse, ResponseError};
use askama::Template;
use store::{Tenant, TenantKind, TenantStatus};

use super::CONSOLE_PATH;
use super::session::Session;
use crate::error::AdminError;
use crate::service::ServiceError;

/// A console request that failed: rendered as an HTML page with the
/// status the API would answer (a lost session is a redirect to the
/// login form instead).
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub(crate) struct ConsoleError(#[from] pub(crate) AdminError);

impl From<ServiceError> for ConsoleError {
    fn from(e: ServiceError) -> Self {
        ConsoleError(AdminError::Service(e))
    }
}

impl From<store::StoreError> for ConsoleError {
    fn from(e: store::StoreError) -> Self {
        ConsoleError(AdminError::Store(e))
    }
}

/// The error page.
#[derive(Template)]
#[template(path = "console/error.html")]
struct ErrorPage<'a> {
    status: u16,
    title: &'a str,
    message: &'a str,
}

impl ResponseError for ConsoleError {
    fn status_code(&self) -> StatusCode {
        match &self.0 {
            AdminError::Unauthorized(_) => StatusCode::SEE_OTHER,
            other => other.status_code(),
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let AdminError::Unauthorized(_) = &self.0 {
            return to_login();
        }
        let status = self.0.status_code();
        let message = self.0.public_message();
        let title = status.canonical_reason().unwrap_or("Error");
        let page = ErrorPage {
            status: status.as_u16(),
            title,
            message: &message,
        };
        html(status, &page)
    }
}

/// To the login form: a redirect, or for htmx an `HX-Redirect` (htmx
/// follows redirects inside its request, which would swap the login form
/// into a fragment).
pub(crate) fn to_login() -> HttpResponse {
    let login = format!("{CONSOLE_PATH}/login");
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, login.clone()))
        .insert_header(("HX-Redirect", login))
        .finish()
}

/// A rendered template with `status`.
pub(crate) fn html(status: StatusCode, template: &impl Template) -> HttpResponse {
    match template.render() {
        Ok(body) => HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .body(body),
        Err(e) => {
            let reference = uuid::Uuid::new_v4();
            tracing::error!(%reference, error = %e, "console template failed to render");
            HttpResponse::InternalServerError()
                .content_type("text/plain; charset=utf-8")
                .body(format!("internal error (reference {reference})"))
        }
    }
}

/// A rendered page (200).
pub(crate) fn ok(template: &impl Template) -> Result<HttpResponse, ConsoleError> {
    Ok(html(StatusCode::OK, template))
}

/// After a successful POST: to `location` (303, so a reload does not post
/// again).
pub(crate) fn see_other(location: impl Into<String>) -> Result<HttpResponse, ConsoleError> {
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location.into()))
        .finish())
}

/// True when htmx asks for the element with this id only.
pub(crate) fn wants_fragment(req: &HttpRequest, id: &str) -> bool {
    req.headers()
        .get("HX-Target")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t == id)
        && req.headers().get("HX-Request").is_some()
}

/// The tenant in scope, as the navigation shows it.
#[derive(Debug, Clone)]
pub(crate) struct TenantNav {
    pub(crate) slug: String,
    pub(crate) name: String,
    pub(crate) suspended: bool,
}

impl TenantNav {
    pub(crate) fn of(tenant: &Tenant) -> TenantNav {
        TenantNav {
            slug: tenant.slug().to_owned(),
            name: tenant.name().to_owned(),
            suspended: tenant.status() == TenantStatus::Suspended,
        }
    }
}

/// How a tenant kind reads.
pub(crate) fn kind_label(kind: TenantKind) -> &'static str {
    match kind {
        TenantKind::Standard => "standard",
        TenantKind::Super => "super",
    }
}

/// What the layout of every signed-in page shows.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    pub(crate) title: String,
    pub(crate) email: String,
    pub(crate) operator: bool,
    pub(crate) csrf: String,
    /// The tenant the page is about, if any.
    pub(crate) tenant: Option<TenantNav>,
    /// The navigation entry to mark as current.
    pub(crate) section: &'static str,
}

impl Layout {
    /// The layout of a page titled `title` in `section`, for the session
    /// of `req`.
    pub(crate) fn new(
        req: &HttpRequest,
        title: impl Into<String>,
        section: &'static str,
        tenant: Option<&Tenant>,
    ) -> Result<Layout, ConsoleError> {
        let session = req.extensions().get::<Session>().cloned().ok_or_else(|| {
            ConsoleError(AdminError::Internal(
                "console page registered without a session".into(),
            ))
        })?;
        Ok(Layout {
            title: title.into(),
            email: session.email,
            operator: session.operator,
            csrf: session.csrf,
            tenant: tenant.map(TenantNav::of),
            section,
        })
    }

    /// The console path of the tenant in scope (`/console/t/{slug}`).
    pub(crate) fn base(&self) -> String {
        match &self.tenant {
            Some(t) => format!("{CONSOLE_PATH}/t/{}", t.slug),
            None => CONSOLE_PATH.to_owned(),
        }
    }

    /// The htmx file's name.
    pub(crate) fn htmx(&self) -> &'static str {
        super::assets::HTMX
    }

    /// `aria-current` for a navigation entry.
    pub(crate) fn current(&self, section: &str) -> &'static str {
        if self.section == section {
            "page"
        } else {
            "false"
        }
    }
}

/// Form errors, each shown next to its field (or above the form when no
/// field is named).
#[derive(Debug, Clone, Default)]
pub(crate) struct FormErrors {
    entries: Vec<(String, String)>,
    /// The status the refusal had in the service (409, 412, 429), when
    /// it is not plain invalid input.
    status: Option<StatusCode>,
}

impl FormErrors {
    /// No errors.
    pub(crate) fn none() -> FormErrors {
        FormErrors::default()
    }

    /// One error on `field` (`""`: the whole form).
    pub(crate) fn on(field: &str, message: impl Into<String>) -> FormErrors {
        FormErrors {
            entries: vec![(field.to_owned(), message.into())],
            status: None,
        }
    }

    /// A refused submission: the message goes next to the first of
    /// `fields` it names, else above the form. Errors the form cannot
    /// show (no session, not found, forbidden, database down) stay errors.
    pub(crate) fn from_error(
        error: impl Into<ConsoleError>,
        fields: &[&str],
    ) -> Result<FormErrors, ConsoleError> {
        let error = error.into();
        let status = error.0.status_code().as_u16();
        if !matches!(status, 400 | 409 | 412 | 429) {
            return Err(error);
        }
        let message = error.0.public_message();
        let lower = message.to_ascii_lowercase();
        let field = fields
            .iter()
            .find(|f| lower.contains(&f.to_ascii_lowercase()))
            .copied()
            .unwrap_or("");
        let mut errors = FormErrors::on(field, message);
        if status != 400 {
            errors.status = StatusCode::from_u16(status).ok();
        }
        Ok(errors)
    }

    /// The same errors with fields renamed (`(from, to)`), for forms whose
    /// field names differ from the service's.
    pub(crate) fn renamed(mut self, names: &[(&str, &str)]) -> FormErrors {
        for (field, _) in &mut self.entries {
            if let Some((_, to)) = names.iter().find(|(from, _)| from == field) {
                *field = (*to).to_owned();
            }
        }
        self
    }

    /// The message for `field`, if any.
    pub(crate) fn get(&self, field: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(f, _)| f == field)
            .map(|(_, m)| m.as_str())
    }

    /// True when a field has an error (for `aria-invalid`).
    pub(crate) fn invalid(&self, field: &str) -> &'static str {
        if self.get(field).is_some() {
            "true"
        } else {
            "false"
        }
    }

    /// True when there is any error.
    pub(crate) fn any(&self) -> bool {
        !self.entries.is_empty()
    }

    /// The status a page showing these errors answers with.
    pub(crate) fn status(&self) -> StatusCode {
        match (self.any(), self.status) {
            (false, _) => StatusCode::OK,
            (true, Some(status)) => status,
            (true, None) => StatusCode::UNPROCESSABLE_ENTITY,
        }
    }

    /// The same errors answered with `status`.
    pub(crate) fn with_status(mut self, status: StatusCode) -> FormErrors {
        self.status = Some(status);
        self
    }
}

/// A header value, for handlers that set one.
pub(crate) fn header_value(text: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(text).ok()
}
