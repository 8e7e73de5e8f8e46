//! The quarantine guard (docs/quarantine-guard.md): how a tenant's SCIM
//! requests fared over the last hour, fleet-wide, and what to fix.

use store::health::Health;

use super::{ServiceError, TenantContext};

/// The tenant's failure ratio, by cause, with its most frequent failing
/// requests and the guard's verdict.
pub async fn quarantine_risk(ctx: &TenantContext) -> Result<Health, ServiceError> {
    Ok(ctx.store().request_health(chrono::Utc::now()).await?)
}
