//! Deletion safety (docs/deletion-safety.md): the tenant's policy, held
//! deletions and deactivations, protected users, soft-deleted users and
//! erasure. The store enforces it; these are the admin's levers.

use store::Resource;
use store::safety::{
    DeletedUser, DeletionPolicy, HeldChange, HeldSelection, ProtectedUser, SafetyState,
};

use super::{ServiceError, TenantContext};

/// Entries a list returns unless asked for fewer.
pub const DEFAULT_LIST: u64 = 100;

/// The tenant's deletion safety as it stands.
pub async fn state(ctx: &TenantContext) -> Result<SafetyState, ServiceError> {
    Ok(ctx.store().deletion_safety().await?)
}

/// Replaces the tenant's deletion policy (audited); `expected` is the
/// version the change expects.
pub async fn set_policy(
    ctx: &TenantContext,
    policy: DeletionPolicy,
    expected: Option<u64>,
) -> Result<SafetyState, ServiceError> {
    Ok(ctx
        .store()
        .set_deletion_policy(policy, expected, ctx.actor().as_str())
        .await?)
}

/// The held changes, oldest first.
pub async fn held(ctx: &TenantContext, limit: u64) -> Result<Vec<HeldChange>, ServiceError> {
    Ok(ctx.store().held_changes(limit).await?)
}

/// Which held changes: these ids, these users' or (neither) all.
pub fn selection(
    ids: Option<Vec<i64>>,
    users: Option<Vec<String>>,
) -> Result<HeldSelection, ServiceError> {
    match (ids, users) {
        (Some(_), Some(_)) => Err(ServiceError::Invalid(
            "name held changes by ids or by users, not both".into(),
        )),
        (Some(ids), None) if ids.is_empty() => Err(ServiceError::Invalid("ids is empty".into())),
        (None, Some(users)) if users.is_empty() => {
            Err(ServiceError::Invalid("users is empty".into()))
        }
        (Some(ids), None) => Ok(HeldSelection::Ids(ids)),
        (None, Some(users)) => Ok(HeldSelection::Users(users)),
        (None, None) => Ok(HeldSelection::All),
    }
}

/// Releases held changes to the applications; how many.
pub async fn release(ctx: &TenantContext, which: HeldSelection) -> Result<u64, ServiceError> {
    Ok(ctx
        .store()
        .release_held(which, ctx.actor().as_str())
        .await?)
}

/// Discards held changes (the applications keep the users); how many.
pub async fn discard(ctx: &TenantContext, which: HeldSelection) -> Result<u64, ServiceError> {
    Ok(ctx
        .store()
        .discard_held(which, ctx.actor().as_str())
        .await?)
}

/// The protected users.
pub async fn protected(ctx: &TenantContext) -> Result<Vec<ProtectedUser>, ServiceError> {
    Ok(ctx.store().protected_users().await?)
}

/// Protects a user (a reason is required).
pub async fn protect(
    ctx: &TenantContext,
    user_id: &str,
    reason: &str,
) -> Result<ProtectedUser, ServiceError> {
    Ok(ctx
        .store()
        .protect_user(user_id, reason, ctx.actor().as_str())
        .await?)
}

/// Removes a user's protection.
pub async fn unprotect(ctx: &TenantContext, user_id: &str) -> Result<(), ServiceError> {
    Ok(ctx
        .store()
        .unprotect_user(user_id, ctx.actor().as_str())
        .await?)
}

/// The soft-deleted users, most recent first.
pub async fn deleted(ctx: &TenantContext, limit: u64) -> Result<Vec<DeletedUser>, ServiceError> {
    Ok(ctx.store().deleted_users(limit).await?)
}

/// Restores a soft-deleted user with its id.
pub async fn restore(ctx: &TenantContext, user_id: &str) -> Result<Resource, ServiceError> {
    Ok(ctx
        .store()
        .restore_user(user_id, ctx.actor().as_str())
        .await?)
}

/// Erases a user's personal data everywhere (operators only; `confirm`
/// must repeat the id). Returns the rows touched per table.
pub async fn erase(
    ctx: &TenantContext,
    user_id: &str,
    confirm: Option<&str>,
) -> Result<serde_json::Value, ServiceError> {
    if !ctx.actor().is_operator() {
        return Err(ServiceError::Forbidden(
            "only an operator can erase a user's data".into(),
        ));
    }
    if confirm != Some(user_id) {
        return Err(ServiceError::Invalid(
            "an erasure cannot be undone: repeat the user's id as confirm".into(),
        ));
    }
    Ok(ctx
        .store()
        .erase_user(user_id, ctx.actor().as_str())
        .await?)
}
