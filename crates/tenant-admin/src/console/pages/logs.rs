//! The provisioning log (every SCIM request the IdP made) and the audit
//! log (every admin change), newest first, with filters and cursor paging.

use actix_web::HttpRequest;
use askama::Template;
use serde::Deserialize;

use super::{Page, encode_query, query, scoped, when};
use crate::auth::Read;
use crate::console::render::{Layout, ok};
use crate::service::{self, AuditFilter, ProvisioningFilter};

/// Entries per page.
const PER_PAGE: u64 = 50;

fn blank_none(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_owned())
}

/// One provisioning log entry as shown.
pub(crate) struct ProvisioningRow {
    pub(crate) at: String,
    pub(crate) method: String,
    pub(crate) resource_type: String,
    pub(crate) resource_id: String,
    pub(crate) identifier: String,
    pub(crate) success: bool,
    pub(crate) status: u16,
    pub(crate) duration_ms: u64,
    pub(crate) detail: String,
    pub(crate) routed: String,
}

#[derive(Debug, Default, Deserialize)]
struct ProvisioningQuery {
    #[serde(default)]
    outcome: String,
    #[serde(default)]
    resource_type: String,
    #[serde(default)]
    resource_id: String,
    before_id: Option<i64>,
}

#[derive(Template)]
#[template(path = "console/provisioning.html")]
struct ProvisioningPage {
    layout: Layout,
    outcome: String,
    resource_type: String,
    resource_id: String,
    rows: Vec<ProvisioningRow>,
    next: Option<String>,
}

/// `GET /console/t/{tenant}/provisioning?outcome=&resource_type=&resource_id=&before_id=`.
pub(crate) async fn provisioning(req: HttpRequest) -> Page {
    let ctx = scoped::<Read>(&req).await?;
    let q: ProvisioningQuery = query(&req)?;
    let layout = Layout::new(&req, "Provisioning log", "provisioning", Some(ctx.tenant()))?;
    let filter = ProvisioningFilter {
        outcome: blank_none(&q.outcome),
        resource_type: blank_none(&q.resource_type),
        resource_id: blank_none(&q.resource_id),
        before_id: q.before_id,
        limit: Some(PER_PAGE),
        ..ProvisioningFilter::default()
    };
    let page = service::provisioning_log(&ctx, filter).await?;
    let rows = page
        .entries
        .into_iter()
        .map(|(_, e)| ProvisioningRow {
            at: when(&e.at),
            method: e.method,
            resource_type: e.resource_type,
            resource_id: e.resource_id.unwrap_or_default(),
            identifier: e.identifier.unwrap_or_default(),
            success: e.outcome == "success",
            status: e.status,
            duration_ms: e.duration_ms,
            detail: e.detail.unwrap_or_default(),
            routed: e.routed.map(|r| r.to_string()).unwrap_or_default(),
        })
        .collect();
    let next = page.next_before_id.map(|id| {
        let id = id.to_string();
        format!(
            "{}/provisioning?{}",
            layout.base(),
            encode_query(&[
                ("outcome", &q.outcome),
                ("resource_type", &q.resource_type),
                ("resource_id", &q.resource_id),
                ("before_id", &id),
            ])
        )
    });
    ok(&ProvisioningPage {
        layout,
        outcome: q.outcome,
        resource_type: q.resource_type,
        resource_id: q.resource_id,
        rows,
        next,
    })
}

/// One audit entry as shown.
pub(crate) struct AuditRow {
    pub(crate) at: String,
    pub(crate) actor: String,
    pub(crate) action: String,
    pub(crate) target: String,
    pub(crate) detail: String,
}

#[derive(Debug, Default, Deserialize)]
struct AuditQuery {
    #[serde(default)]
    actor: String,
    #[serde(default)]
    action: String,
    before_id: Option<i64>,
}

#[derive(Template)]
#[template(path = "console/audit.html")]
struct AuditPage {
    layout: Layout,
    actor: String,
    action: String,
    rows: Vec<AuditRow>,
    next: Option<String>,
}

/// `GET /console/t/{tenant}/audit?actor=&action=&before_id=`.
pub(crate) async fn audit(req: HttpRequest) -> Page {
    let ctx = scoped::<Read>(&req).await?;
    let q: AuditQuery = query(&req)?;
    let layout = Layout::new(&req, "Audit log", "audit", Some(ctx.tenant()))?;
    let filter = AuditFilter {
        actor: blank_none(&q.actor),
        action: blank_none(&q.action),
        before_id: q.before_id,
        limit: Some(PER_PAGE),
        ..AuditFilter::default()
    };
    let page = service::tenant_audit(&ctx, filter).await?;
    let rows = page
        .entries
        .into_iter()
        .map(|e| AuditRow {
            at: when(&e.at),
            actor: e.actor,
            action: e.action,
            target: e.target,
            detail: if e.detail.is_null() {
                String::new()
            } else {
                e.detail.to_string()
            },
        })
        .collect();
    let next = page.next_before_id.map(|id| {
        let id = id.to_string();
        format!(
            "{}/audit?{}",
            layout.base(),
            encode_query(&[
                ("actor", &q.actor),
                ("action", &q.action),
                ("before_id", &id)
            ])
        )
    });
    ok(&AuditPage {
        layout,
        actor: q.actor,
        action: q.action,
        rows,
        next,
    })
}
