//! A tenant's admin logins.

use store::TenantAdminInfo;
use uuid::Uuid;

use super::{ServiceError, TenantContext};

/// The tenant's admin logins, by e-mail (never a password).
pub async fn list_tenant_admins(ctx: &TenantContext) -> Result<Vec<TenantAdminInfo>, ServiceError> {
    Ok(ctx.store().list_tenant_admins().await?)
}

/// Creates a login (password of 12 characters or more). Audited.
pub async fn create_tenant_admin(
    ctx: &TenantContext,
    email: &str,
    password: &str,
) -> Result<TenantAdminInfo, ServiceError> {
    Ok(ctx
        .store()
        .create_tenant_admin(email, password, ctx.actor().as_str())
        .await?)
}

/// A login by id or (case-insensitive) e-mail address.
pub async fn find_tenant_admin(
    ctx: &TenantContext,
    which: &str,
) -> Result<TenantAdminInfo, ServiceError> {
    let id = Uuid::parse_str(which.trim()).ok();
    let wanted = which.trim().to_lowercase();
    ctx.store()
        .list_tenant_admins()
        .await?
        .into_iter()
        .find(|a| Some(a.id) == id || a.email.to_lowercase() == wanted)
        .ok_or_else(|| ServiceError::NotFound(format!("tenant admin {which}")))
}

/// Deletes the login with this id; its sessions end at once. Audited.
pub async fn delete_tenant_admin(ctx: &TenantContext, id: &str) -> Result<(), ServiceError> {
    let id = Uuid::parse_str(id.trim())
        .map_err(|_| ServiceError::NotFound(format!("tenant admin {id}")))?;
    Ok(ctx
        .store()
        .delete_tenant_admin(id, ctx.actor().as_str())
        .await?)
}
