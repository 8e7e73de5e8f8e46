//! A tenant's SCIM bearer tokens.

use chrono::{DateTime, Utc};
use store::{IssuedToken, NewToken, TokenInfo};
use uuid::Uuid;

use super::{ServiceError, TenantContext, not_blank};

/// The tenant's tokens, revoked ones included (never a secret).
pub async fn list_tokens(ctx: &TenantContext) -> Result<Vec<TokenInfo>, ServiceError> {
    Ok(ctx.store().list_tokens().await?)
}

/// Issues a token: a name that is not blank, at least one scope, an
/// expiry after `now` if any. The secret is in the answer only. Audited.
pub async fn issue_token(
    ctx: &TenantContext,
    new: NewToken,
    now: DateTime<Utc>,
) -> Result<IssuedToken, ServiceError> {
    not_blank("name", &new.name)?;
    if new.scopes.is_empty() {
        return Err(ServiceError::Invalid(
            "scopes must name at least one of scim:write, scim:read".into(),
        ));
    }
    if new.expires_at.is_some_and(|t| t <= now) {
        return Err(ServiceError::Invalid(
            "expiresAt must be in the future".into(),
        ));
    }
    Ok(ctx.store().issue_token(new, ctx.actor().as_str()).await?)
}

/// Revokes the token with this id (not found for any other tenant's or a
/// malformed id). Audited. Servers notice through the auth revision.
pub async fn revoke_token(ctx: &TenantContext, id: &str) -> Result<TokenInfo, ServiceError> {
    let id =
        Uuid::parse_str(id.trim()).map_err(|_| ServiceError::NotFound(format!("token {id}")))?;
    Ok(ctx.store().revoke_token(id, ctx.actor().as_str()).await?)
}
