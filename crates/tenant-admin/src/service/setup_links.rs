//! Setup links: made and revoked by operators and tenant admins; opened by
//! a customer's IT admin, who may issue and rotate the tenant's SCIM token
//! through one and do nothing else (see `store::setup_links`).

use chrono::{DateTime, Duration, Utc};
use store::setup_links::{MAX_LIFETIME_DAYS, NewSetupLink, SetupLink};
use store::{AdminStore, IssuedToken, StoreError, Tenant, TenantStatus};
use uuid::Uuid;

use super::{ServiceError, TenantContext, not_blank};

/// How long a link lives unless asked.
pub const DEFAULT_LIFETIME_DAYS: i64 = 7;

/// Creates a link named `name` valid for `days` (1 to 30; 7 unless
/// given). Audited.
pub async fn create(
    ctx: &TenantContext,
    name: &str,
    days: Option<i64>,
) -> Result<NewSetupLink, ServiceError> {
    not_blank("name", name)?;
    let days = days.unwrap_or(DEFAULT_LIFETIME_DAYS);
    if !(1..=MAX_LIFETIME_DAYS).contains(&days) {
        return Err(ServiceError::Invalid(format!(
            "expiresInDays must be between 1 and {MAX_LIFETIME_DAYS}"
        )));
    }
    Ok(ctx
        .store()
        .create_setup_link(name, Duration::days(days), ctx.actor().as_str())
        .await?)
}

/// The tenant's links, newest first.
pub async fn list(ctx: &TenantContext) -> Result<Vec<SetupLink>, ServiceError> {
    Ok(ctx.store().setup_links().await?)
}

/// Revokes a link. Audited.
pub async fn revoke(ctx: &TenantContext, id: &str) -> Result<SetupLink, ServiceError> {
    let id = Uuid::parse_str(id.trim())
        .map_err(|_| ServiceError::NotFound(format!("setup link {id}")))?;
    Ok(ctx
        .store()
        .revoke_setup_link(id, ctx.actor().as_str())
        .await?)
}

/// What a link's holder sees: its tenant and the link, if it still works.
/// An unknown secret is "not found"; a revoked or expired link, or one of
/// a suspended tenant, is refused with the reason.
pub async fn open(
    admin: &AdminStore,
    secret: &str,
    now: DateTime<Utc>,
) -> Result<(Tenant, SetupLink), ServiceError> {
    let (tenant, link) = admin
        .setup_link_by_secret(secret)
        .await?
        .ok_or_else(|| ServiceError::NotFound("setup link".into()))?;
    if link.revoked_at.is_some() {
        return Err(ServiceError::Forbidden(
            "this setup link was revoked; ask your provider for a new one".into(),
        ));
    }
    if link.expires_at <= now {
        return Err(ServiceError::Forbidden(format!(
            "this setup link expired on {}; ask your provider for a new one",
            link.expires_at.format("%Y-%m-%d %H:%M UTC")
        )));
    }
    if tenant.status() == TenantStatus::Suspended {
        return Err(ServiceError::Forbidden(
            "this tenant is suspended; ask your provider".into(),
        ));
    }
    Ok((tenant, link))
}

/// Through the link opened by `secret`: a new `scim:write` token, the
/// previous one from this link revoked in the same transaction.
pub async fn rotate_token(
    admin: &AdminStore,
    store: &store::Store,
    secret: &str,
    now: DateTime<Utc>,
) -> Result<(Tenant, IssuedToken), ServiceError> {
    let (tenant, link) = open(admin, secret, now).await?;
    match store.tenant(&tenant).rotate_setup_token(link.id).await {
        Ok(token) => Ok((tenant, token)),
        // Revoked or expired between the two reads.
        Err(StoreError::NotFound(_)) => Err(ServiceError::Forbidden(
            "this setup link no longer works; ask your provider for a new one".into(),
        )),
        Err(e) => Err(e.into()),
    }
}
