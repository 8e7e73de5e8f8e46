//! Tenants: the operator's searchable list, creating a tenant, a tenant's
//! overview, suspending, reactivating and deleting it.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, web};
use askama::Template;
use serde::Deserialize;
use store::fanout::CopiesOnUnlink;
use store::{TenantActivity, TenantKind, TenantStatus, TenantUpdate};

use super::{Page, Pager, encode_query, form, operator, page_number, query, scoped, when_opt};
use crate::auth::{self, OperatorOnly, Read, Write};
use crate::console::CONSOLE_PATH;
use crate::console::render::{FormErrors, Layout, html, kind_label, ok, see_other, wants_fragment};
use crate::service::{self, NewTenantRequest, TenantContext};

/// Tenants per page.
const PER_PAGE: u64 = 25;

/// One row of the tenant list.
pub(crate) struct TenantRow {
    pub(crate) slug: String,
    pub(crate) name: String,
    pub(crate) kind: &'static str,
    pub(crate) suspended: bool,
    pub(crate) activity: TenantActivity,
}

impl TenantRow {
    pub(crate) fn last_activity(&self) -> String {
        when_opt(&self.activity.last_activity)
    }

    /// `healthy`, `failing`, `disabled` or `none` (no targets).
    pub(crate) fn delivery(&self) -> &'static str {
        let a = &self.activity;
        if a.targets == 0 {
            "none"
        } else if a.disabled_targets > 0 {
            "disabled"
        } else if a.failing_targets > 0 {
            "failing"
        } else {
            "healthy"
        }
    }
}

/// What the create form had.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct NewTenantForm {
    #[serde(default)]
    slug: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    token: Option<String>,
}

#[derive(Template)]
#[template(path = "console/tenants.html")]
struct TenantsPage {
    layout: Layout,
    q: String,
    rows: Vec<TenantRow>,
    pager: Pager,
    new: NewTenantForm,
    errors: FormErrors,
}

#[derive(Template)]
#[template(path = "console/tenants.html", block = "results")]
struct TenantsResults {
    rows: Vec<TenantRow>,
    pager: Pager,
}

#[derive(Debug, Default, Deserialize)]
struct ListQuery {
    #[serde(default)]
    q: String,
    page: Option<u64>,
}

async fn tenants_page(
    req: &HttpRequest,
    q: &str,
    page: u64,
    new: NewTenantForm,
    errors: FormErrors,
) -> Page {
    let caller = operator(req)?;
    let state = auth::state(req)?;
    let overview = service::tenant_overview(
        &state.store.admin(),
        &caller.actor(),
        Some(q),
        Some((page - 1) * PER_PAGE),
        Some(PER_PAGE),
    )
    .await?;
    let rows: Vec<TenantRow> = overview
        .tenants
        .into_iter()
        .map(|(t, activity)| TenantRow {
            slug: t.slug().to_owned(),
            name: t.name().to_owned(),
            kind: if activity.super_tenant.is_some() {
                "child"
            } else {
                kind_label(t.kind())
            },
            suspended: t.status() == TenantStatus::Suspended,
            activity,
        })
        .collect();
    let path = format!("{CONSOLE_PATH}/tenants");
    let pager = Pager::new(
        &path,
        &encode_query(&[("q", q)]),
        page,
        PER_PAGE,
        rows.len() as u64,
        overview.total,
    );
    if wants_fragment(req, "results") {
        return ok(&TenantsResults { rows, pager });
    }
    let status = errors.status();
    let page = TenantsPage {
        layout: Layout::new(req, "Tenants", "tenants", None)?,
        q: q.to_owned(),
        rows,
        pager,
        new,
        errors,
    };
    Ok(html(status, &page))
}

/// `GET /console/tenants?q=&page=`.
pub(crate) async fn list(req: HttpRequest) -> Page {
    let q: ListQuery = query(&req)?;
    tenants_page(
        &req,
        &q.q,
        page_number(q.page),
        NewTenantForm::default(),
        FormErrors::none(),
    )
    .await
}

/// `POST /console/tenants`: create a tenant; with a first token, its
/// connection page shows the secret once.
pub(crate) async fn create(req: HttpRequest, body: web::Bytes) -> Page {
    let caller = operator(&req)?;
    let state = auth::state(&req)?;
    let new: NewTenantForm = form(&body)?;
    let kind = match new.kind.as_str() {
        "" | "standard" => TenantKind::Standard,
        "super" => TenantKind::Super,
        _ => {
            let errors = FormErrors::on("kind", "choose standard or super");
            return tenants_page(&req, "", 1, new, errors).await;
        }
    };
    let request = NewTenantRequest {
        slug: new.slug.trim().to_owned(),
        name: new.name.trim().to_owned(),
        kind,
        issue_token: new.token.is_some(),
    };
    match service::create_tenant(&state.store.admin(), &caller.actor(), request).await {
        Ok((tenant, Some(token))) => {
            let ctx = TenantContext::new(state.store.tenant(&tenant), caller.actor());
            super::connection::render(&req, &ctx, Some(token), StatusCode::CREATED).await
        }
        Ok((tenant, None)) => see_other(format!("{CONSOLE_PATH}/t/{}", tenant.slug())),
        Err(e) => {
            let errors = FormErrors::from_error(e, &["slug", "name", "kind"])?;
            tenants_page(&req, "", 1, new, errors).await
        }
    }
}

#[derive(Template)]
#[template(path = "console/tenant.html")]
struct OverviewPage {
    layout: Layout,
    id: String,
    created: String,
    scim_url: String,
    activity: TenantActivity,
    row: TenantRow,
    health: store::health::Health,
}

impl OverviewPage {
    /// The failure ratio as a percentage with one decimal.
    fn failure_percent(&self) -> String {
        format!("{:.1} %", self.health.failure_ratio * 100.0)
    }

    /// The failures of each cause that had any, as `cause: n` pairs.
    fn causes(&self) -> String {
        store::health::Cause::ALL
            .iter()
            .filter_map(|c| {
                let n = self.health.by_cause.get(c.as_str()).copied().unwrap_or(0);
                (n > 0).then(|| format!("{}: {n}", c.as_str()))
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// `GET /console/t/{tenant}`.
pub(crate) async fn overview(req: HttpRequest) -> Page {
    let ctx = scoped::<Read>(&req).await?;
    let state = auth::state(&req)?;
    let tenant = ctx.tenant().clone();
    let activity = state
        .store
        .admin()
        .tenant_activity(&[tenant.id()])
        .await?
        .remove(&tenant.id())
        .unwrap_or(TenantActivity {
            users: 0,
            last_activity: None,
            targets: 0,
            disabled_targets: 0,
            failing_targets: 0,
            super_tenant: None,
        });
    let row = TenantRow {
        slug: tenant.slug().to_owned(),
        name: tenant.name().to_owned(),
        kind: if activity.super_tenant.is_some() {
            "child"
        } else {
            kind_label(tenant.kind())
        },
        suspended: tenant.status() == TenantStatus::Suspended,
        activity: activity.clone(),
    };
    ok(&OverviewPage {
        layout: Layout::new(&req, tenant.name(), "overview", Some(&tenant))?,
        id: tenant.id().to_string(),
        created: super::when(&tenant.created_at()),
        scim_url: super::connection::scim_url(&req, &tenant),
        activity,
        row,
        health: crate::service::health::quarantine_risk(&ctx).await?,
    })
}

#[derive(Debug, Deserialize)]
struct StatusForm {
    #[serde(default)]
    status: String,
}

/// `POST /console/t/{tenant}/status`: suspend or reactivate (operators).
pub(crate) async fn set_status(req: HttpRequest, body: web::Bytes) -> Page {
    let ctx = scoped::<Write>(&req).await?;
    let f: StatusForm = form(&body)?;
    let status = match f.status.as_str() {
        "active" => TenantStatus::Active,
        "suspended" => TenantStatus::Suspended,
        other => {
            return Err(crate::error::AdminError::BadRequest(format!(
                "status must be active or suspended, not {other:?}"
            ))
            .into());
        }
    };
    let tenant = service::update_tenant(
        &ctx,
        TenantUpdate {
            name: None,
            status: Some(status),
        },
    )
    .await?;
    // Suspending cuts off SCIM tokens: tell the gateway at once.
    auth::state(&req)?.auth_changed();
    see_other(format!("{CONSOLE_PATH}/t/{}", tenant.slug()))
}

#[derive(Template)]
#[template(path = "console/tenant_delete.html")]
struct DeletePage {
    layout: Layout,
    feeds_children: bool,
    confirm: String,
    errors: FormErrors,
}

async fn delete_page(req: &HttpRequest, confirm: String, errors: FormErrors) -> Page {
    let ctx = scoped::<OperatorOnly>(req).await?;
    let state = auth::state(req)?;
    let feeds_children = !state
        .store
        .admin()
        .children(ctx.tenant().id())
        .await?
        .is_empty();
    let status = errors.status();
    let page = DeletePage {
        layout: Layout::new(req, "Delete tenant", "overview", Some(ctx.tenant()))?,
        feeds_children,
        confirm,
        errors,
    };
    Ok(html(status, &page))
}

/// `GET /console/t/{tenant}/delete`: the confirmation form.
pub(crate) async fn confirm_delete(req: HttpRequest) -> Page {
    delete_page(&req, String::new(), FormErrors::none()).await
}

#[derive(Debug, Deserialize)]
struct DeleteForm {
    #[serde(default)]
    confirm: String,
    #[serde(default)]
    copies: String,
}

/// `POST /console/t/{tenant}/delete`: deletes when the slug was repeated.
pub(crate) async fn delete(req: HttpRequest, body: web::Bytes) -> Page {
    let ctx = scoped::<OperatorOnly>(&req).await?;
    let state = auth::state(&req)?;
    let f: DeleteForm = form(&body)?;
    let copies = match f.copies.as_str() {
        "keep" => Some(CopiesOnUnlink::Keep),
        "remove" => Some(CopiesOnUnlink::Remove),
        _ => None,
    };
    if f.confirm.trim() != ctx.tenant().slug() {
        let errors = FormErrors::on(
            "confirm",
            format!("type {} exactly to confirm", ctx.tenant().slug()),
        );
        return delete_page(&req, f.confirm, errors).await;
    }
    match service::delete_tenant(&ctx, &state.store.admin(), Some(f.confirm.trim()), copies).await {
        Ok(()) => {
            state.auth_changed();
            see_other(format!("{CONSOLE_PATH}/tenants"))
        }
        Err(e) => {
            let errors = FormErrors::from_error(e, &["copies", "confirm"])?;
            delete_page(&req, f.confirm, errors).await
        }
    }
}
