//! Role-locks: a locked user keeps exactly the lock's roles through every
//! sync and policy change until unlocked.

use store::LockInfo;

use super::{ServiceError, TenantContext};

/// Every lock of the tenant, by user id.
pub async fn list_locks(ctx: &TenantContext) -> Result<Vec<LockInfo>, ServiceError> {
    Ok(ctx.store().locks().await?)
}

/// Locks `user_id` to `roles` (each defined by the policy; none pins the
/// user to no role), replacing any earlier lock; `reason` may not be
/// blank. Audited, with the actor as `lockedBy`.
pub async fn lock_user(
    ctx: &TenantContext,
    user_id: &str,
    roles: Vec<String>,
    reason: &str,
) -> Result<LockInfo, ServiceError> {
    Ok(ctx
        .store()
        .lock_user(user_id, roles, reason, ctx.actor().as_str())
        .await?)
}

/// Removes `user_id`'s lock; not found when the user was not locked.
/// Audited.
pub async fn unlock_user(ctx: &TenantContext, user_id: &str) -> Result<(), ServiceError> {
    Ok(ctx
        .store()
        .unlock_user(user_id, ctx.actor().as_str())
        .await?)
}
