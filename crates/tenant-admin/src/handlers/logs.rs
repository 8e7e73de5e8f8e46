//! The provisioning log (what the IdP did) and the audit log (what admins
//! did). Both page newest first by id: pass a page's `nextBeforeId` as
//! `beforeId` for the next one.

use actix_web::{HttpResponse, web};

use crate::State;
use crate::auth::{Operator, Read, Scoped};
use crate::error::{AdminError, ErrorBody};
use crate::handlers::{bounded, cursor, timestamp};
use crate::service::{self, AuditFilter, AuditPage, ProvisioningFilter};
use crate::wire::{
    AuditEntryView, AuditLog, AuditQueryParams, GlobalAuditQueryParams, ProvisioningEntryView,
    ProvisioningLog, ProvisioningLogQuery,
};

/// The tenant's provisioning log, newest first.
#[utoipa::path(
    get,
    path = "/tenants/{tenant}/provisioning-log",
    tag = "logs",
    operation_id = "provisioningLog",
    params(("tenant" = String, Path, description = "The tenant's slug"), ProvisioningLogQuery),
    responses((status = 200, description = "A page of entries, newest first", body = ProvisioningLog)),
)]
pub(crate) async fn provisioning_log(
    scope: Scoped<Read>,
    query: web::Query<ProvisioningLogQuery>,
) -> Result<HttpResponse, AdminError> {
    let query = query.into_inner();
    let filter = ProvisioningFilter {
        since: timestamp("since", query.since.as_deref())?,
        until: timestamp("until", query.until.as_deref())?,
        outcome: query.outcome,
        resource_type: query.resource_type,
        resource_id: query.resource_id,
        before_id: cursor(query.before_id)?,
        limit: bounded("limit", query.limit, 1, 1000)?,
    };
    let page = service::provisioning_log(&scope.ctx, filter).await?;
    Ok(HttpResponse::Ok().json(ProvisioningLog {
        entries: page
            .entries
            .into_iter()
            .map(|(id, e)| ProvisioningEntryView {
                id,
                at: e.at,
                method: e.method,
                resource_type: e.resource_type,
                resource_id: e.resource_id,
                identifier: e.identifier,
                outcome: e.outcome,
                status: e.status,
                duration_ms: e.duration_ms,
                request_id: e.request_id,
                detail: e.detail,
                routed: e.routed,
            })
            .collect(),
        next_before_id: page.next_before_id,
    }))
}

fn audit_view(page: AuditPage) -> AuditLog {
    AuditLog {
        entries: page
            .entries
            .into_iter()
            .map(|e| AuditEntryView {
                id: e.id,
                tenant_id: e.tenant_id.map(|t| t.to_string()),
                at: e.at,
                actor: e.actor,
                action: e.action,
                target: e.target,
                detail: e.detail,
            })
            .collect(),
        next_before_id: page.next_before_id,
    }
}

/// The tenant's audit log, newest first.
#[utoipa::path(
    get,
    path = "/tenants/{tenant}/audit",
    tag = "logs",
    operation_id = "tenantAudit",
    params(("tenant" = String, Path, description = "The tenant's slug"), AuditQueryParams),
    responses((status = 200, description = "A page of entries, newest first", body = AuditLog)),
)]
pub(crate) async fn tenant_audit(
    scope: Scoped<Read>,
    query: web::Query<AuditQueryParams>,
) -> Result<HttpResponse, AdminError> {
    let query = query.into_inner();
    let filter = AuditFilter {
        actor: query.actor,
        action: query.action,
        since: timestamp("since", query.since.as_deref())?,
        until: timestamp("until", query.until.as_deref())?,
        before_id: cursor(query.before_id)?,
        limit: bounded("limit", query.limit, 1, 1000)?,
    };
    let page = service::tenant_audit(&scope.ctx, filter).await?;
    Ok(HttpResponse::Ok().json(audit_view(page)))
}

/// The whole audit log, newest first (operators only).
#[utoipa::path(
    get,
    path = "/audit",
    tag = "logs",
    operation_id = "globalAudit",
    params(GlobalAuditQueryParams),
    responses(
        (status = 200, description = "A page of entries, newest first", body = AuditLog),
        (status = 403, description = "Tenant admins read their tenant's log instead", body = ErrorBody),
        (status = 404, description = "`tenant` names no tenant", body = ErrorBody),
    ),
)]
pub(crate) async fn global_audit(
    _: Operator,
    state: web::Data<State>,
    query: web::Query<GlobalAuditQueryParams>,
) -> Result<HttpResponse, AdminError> {
    let query = query.into_inner();
    let filter = AuditFilter {
        actor: query.actor,
        action: query.action,
        since: timestamp("since", query.since.as_deref())?,
        until: timestamp("until", query.until.as_deref())?,
        before_id: cursor(query.before_id)?,
        limit: bounded("limit", query.limit, 1, 1000)?,
    };
    let page = service::global_audit(&state.store.admin(), query.tenant.as_deref(), filter).await?;
    Ok(HttpResponse::Ok().json(audit_view(page)))
}
