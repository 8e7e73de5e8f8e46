//! The provisioning log (what the IdP did) and the audit log (what admins
//! did). Both page newest first by id: pass a page's `nextBeforeId` as
//! `beforeId` for the next one.

use actix_web::{HttpResponse, web};
use store::{AuditEntry, AuditQuery, LogQuery};
use uuid::Uuid;

use crate::State;
use crate::auth::{Operator, Read, Scoped};
use crate::error::{AdminError, ErrorBody};
use crate::handlers::{page_size, timestamp};
use crate::wire::{
    AuditEntryView, AuditLog, AuditQueryParams, GlobalAuditQueryParams, ProvisioningEntryView,
    ProvisioningLog, ProvisioningLogQuery,
};

const DEFAULT_LIMIT: u64 = 100;
const MAX_LIMIT: u64 = 1000;

/// The cursor for the next page: the last id, when the page was full.
fn next_before_id(ids: impl Iterator<Item = i64>, len: usize, limit: u64) -> Option<i64> {
    if (len as u64) < limit {
        return None;
    }
    ids.last()
}

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
    let limit = page_size(query.limit, DEFAULT_LIMIT, MAX_LIMIT);
    let log = LogQuery {
        since: timestamp("since", query.since.as_deref())?,
        until: timestamp("until", query.until.as_deref())?,
        outcome: query.outcome,
        resource_type: query.resource_type,
        resource_id: query.resource_id,
        before_id: query.before_id,
        limit,
    };
    let rows = scope.store.provisioning_log(&log).await?;
    let next = next_before_id(rows.iter().map(|(id, _)| *id), rows.len(), limit);
    Ok(HttpResponse::Ok().json(ProvisioningLog {
        entries: rows
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
            })
            .collect(),
        next_before_id: next,
    }))
}

fn audit_view(entries: Vec<AuditEntry>, limit: u64) -> AuditLog {
    let next = next_before_id(entries.iter().map(|e| e.id), entries.len(), limit);
    AuditLog {
        entries: entries
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
        next_before_id: next,
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
    let limit = page_size(query.limit, DEFAULT_LIMIT, MAX_LIMIT);
    let audit = AuditQuery {
        tenant: Some(scope.tenant.id()),
        actor: query.actor,
        action: query.action,
        since: timestamp("since", query.since.as_deref())?,
        until: timestamp("until", query.until.as_deref())?,
        before_id: query.before_id,
        limit,
    };
    let entries = scope.admin.audit_log(&audit).await?;
    Ok(HttpResponse::Ok().json(audit_view(entries, limit)))
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
    let admin = state.store.admin();
    let tenant = match query.tenant.as_deref().map(str::trim) {
        None | Some("") => None,
        // An id also finds the entries of a deleted tenant, whose slug no
        // longer resolves.
        Some(text) => match Uuid::parse_str(text) {
            Ok(id) => Some(id),
            Err(_) => Some(
                admin
                    .tenant_by_slug(text)
                    .await?
                    .ok_or_else(|| AdminError::NotFound(format!("tenant '{text}'")))?
                    .id(),
            ),
        },
    };
    let limit = page_size(query.limit, DEFAULT_LIMIT, MAX_LIMIT);
    let audit = AuditQuery {
        tenant,
        actor: query.actor,
        action: query.action,
        since: timestamp("since", query.since.as_deref())?,
        until: timestamp("until", query.until.as_deref())?,
        before_id: query.before_id,
        limit,
    };
    let entries = admin.audit_log(&audit).await?;
    Ok(HttpResponse::Ok().json(audit_view(entries, limit)))
}
