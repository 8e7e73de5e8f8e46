//! The provisioning log (what the IdP did) and the audit log (what admins
//! did). Both page newest first by id: a full page's last id is the
//! cursor for the next.

use chrono::{DateTime, Utc};
use store::{AdminStore, AuditEntry, AuditQuery, LogQuery, ProvisioningEntry};
use uuid::Uuid;

use super::{ServiceError, TenantContext, page_size};

const DEFAULT_LIMIT: u64 = 100;
const MAX_LIMIT: u64 = 1000;

/// Filters of the provisioning log.
#[derive(Debug, Clone, Default)]
pub struct ProvisioningFilter {
    /// At or after.
    pub since: Option<DateTime<Utc>>,
    /// Before.
    pub until: Option<DateTime<Utc>>,
    /// `success` or `failure`.
    pub outcome: Option<String>,
    /// `User` or `Group`.
    pub resource_type: Option<String>,
    /// One resource's entries.
    pub resource_id: Option<String>,
    /// Entries with a smaller id (the previous page's cursor).
    pub before_id: Option<i64>,
    /// Page size (100 unless asked, at most 1000).
    pub limit: Option<u64>,
}

/// Filters of the audit log.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Only this actor's entries.
    pub actor: Option<String>,
    /// Only this action's.
    pub action: Option<String>,
    /// At or after.
    pub since: Option<DateTime<Utc>>,
    /// Before.
    pub until: Option<DateTime<Utc>>,
    /// Entries with a smaller id (the previous page's cursor).
    pub before_id: Option<i64>,
    /// Page size (100 unless asked, at most 1000).
    pub limit: Option<u64>,
}

/// A page of the provisioning log, newest first.
#[derive(Debug, Clone)]
pub struct ProvisioningPage {
    /// Entries with their ids.
    pub entries: Vec<(i64, ProvisioningEntry)>,
    /// The cursor of the next page, when this one is full.
    pub next_before_id: Option<i64>,
}

/// A page of the audit log, newest first.
#[derive(Debug, Clone)]
pub struct AuditPage {
    /// The entries.
    pub entries: Vec<AuditEntry>,
    /// The cursor of the next page, when this one is full.
    pub next_before_id: Option<i64>,
}

/// The cursor for the next page: the last id, when the page was full.
fn next_before_id(ids: impl Iterator<Item = i64>, len: usize, limit: u64) -> Option<i64> {
    if (len as u64) < limit {
        return None;
    }
    ids.last()
}

/// The tenant's provisioning log.
pub async fn provisioning_log(
    ctx: &TenantContext,
    filter: ProvisioningFilter,
) -> Result<ProvisioningPage, ServiceError> {
    let limit = page_size(filter.limit, DEFAULT_LIMIT, MAX_LIMIT);
    let query = LogQuery {
        since: filter.since,
        until: filter.until,
        outcome: filter.outcome,
        resource_type: filter.resource_type,
        resource_id: filter.resource_id,
        before_id: filter.before_id,
        limit,
    };
    let entries = ctx.store().provisioning_log(&query).await?;
    let next_before_id = next_before_id(entries.iter().map(|(id, _)| *id), entries.len(), limit);
    Ok(ProvisioningPage {
        entries,
        next_before_id,
    })
}

fn audit_query(tenant: Option<Uuid>, filter: AuditFilter) -> AuditQuery {
    AuditQuery {
        tenant,
        actor: filter.actor,
        action: filter.action,
        since: filter.since,
        until: filter.until,
        before_id: filter.before_id,
        limit: page_size(filter.limit, DEFAULT_LIMIT, MAX_LIMIT),
    }
}

fn audit_page(entries: Vec<AuditEntry>, limit: u64) -> AuditPage {
    let next_before_id = next_before_id(entries.iter().map(|e| e.id), entries.len(), limit);
    AuditPage {
        entries,
        next_before_id,
    }
}

/// What admins did to this tenant.
pub async fn tenant_audit(
    ctx: &TenantContext,
    filter: AuditFilter,
) -> Result<AuditPage, ServiceError> {
    let query = audit_query(None, filter);
    let entries = ctx.store().audit_log(&query).await?;
    Ok(audit_page(entries, query.limit))
}

/// The whole audit log (operators). `tenant` is a slug, or a tenant id,
/// which also finds the entries of a deleted tenant.
pub async fn global_audit(
    admin: &AdminStore,
    tenant: Option<&str>,
    filter: AuditFilter,
) -> Result<AuditPage, ServiceError> {
    let tenant = match tenant.map(str::trim) {
        None | Some("") => None,
        Some(text) => match Uuid::parse_str(text) {
            Ok(id) => Some(id),
            Err(_) => Some(
                admin
                    .tenant_by_slug(text)
                    .await?
                    .ok_or_else(|| ServiceError::NoSuchTenant(text.to_owned()))?
                    .id(),
            ),
        },
    };
    let query = audit_query(tenant, filter);
    let entries = admin.audit_log(&query).await?;
    Ok(audit_page(entries, query.limit))
}
