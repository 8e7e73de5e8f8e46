//! Logging in: checks an operator's or a tenant admin's password, behind
//! the login throttle ([`super::throttle`]), so a guesser is refused
//! before argon2 runs once the limits are reached.

use std::net::IpAddr;
use std::sync::Arc;

use serde_json::json;
use store::{AdminStore, Principal};

use super::ServiceError;
use super::throttle::{Clock, ThrottleKey, ThrottleStore};

/// Who names the throttle in the audit log.
const THROTTLE_ACTOR: &str = "system:login-throttle";

/// A login attempt.
#[derive(Debug, Clone)]
pub struct Credentials<'a> {
    /// The login's e-mail address.
    pub email: &'a str,
    /// The password as typed.
    pub password: &'a str,
    /// A tenant admin's tenant slug; `None` for an operator.
    pub tenant: Option<&'a str>,
}

/// The login throttle and its clock, shared by every login surface (API,
/// console).
#[derive(Clone)]
pub struct Throttle {
    store: Arc<dyn ThrottleStore>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Throttle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Throttle").finish_non_exhaustive()
    }
}

impl Throttle {
    /// A throttle over `store`, telling time with `clock`.
    pub fn new(store: Arc<dyn ThrottleStore>, clock: Arc<dyn Clock>) -> Throttle {
        Throttle { store, clock }
    }
}

/// Checks a login: the principal, or [`ServiceError::WrongCredentials`]
/// (one answer for a wrong e-mail, password or tenant, costing the same
/// argon2 time), or [`ServiceError::Throttled`] without checking anything
/// once the account or `client` has failed too often. The attempt that
/// locks an account out is audited.
pub async fn login(
    admin: &AdminStore,
    throttle: &Throttle,
    credentials: Credentials<'_>,
    client: Option<IpAddr>,
) -> Result<Principal, ServiceError> {
    let tenant_slug = credentials.tenant.map(str::trim);
    let account = ThrottleKey::account(tenant_slug, credentials.email);
    let mut keys = vec![account.clone()];
    keys.extend(client.map(ThrottleKey::Address));
    let now = throttle.clock.now();
    let attempt = throttle.store.begin(&keys, now).map_err(|retry_after| {
        tracing::info!(tenant = ?tenant_slug, ?client, "admin login throttled");
        ServiceError::Throttled { retry_after }
    })?;

    let (principal, tenant) = match tenant_slug {
        None => (
            admin
                .verify_operator(credentials.email, credentials.password)
                .await?,
            None,
        ),
        Some(slug) => match admin.tenant_by_slug(slug).await? {
            Some(tenant) => (
                admin
                    .verify_tenant_admin(&tenant, credentials.email, credentials.password)
                    .await?,
                Some(tenant),
            ),
            None => {
                // Spend the argon2 time a wrong password costs (the store
                // verifies unknown logins against a dummy hash), so timing
                // does not tell which tenant slugs exist.
                let _ = admin.verify_operator("", credentials.password).await?;
                (None, None)
            }
        },
    };
    if let Some(principal) = principal {
        throttle.store.succeeded(&attempt, throttle.clock.now());
        return Ok(principal);
    }
    tracing::info!(tenant = ?tenant_slug, ?client, "admin login refused");
    for (key, lockout) in &attempt.locked {
        match key {
            ThrottleKey::Account { .. } => {
                let who = match tenant_slug {
                    None => format!("operator:{}", credentials.email.trim()),
                    Some(_) => format!("tenant-admin:{}", credentials.email.trim()),
                };
                let detail = json!({
                    "tenant": tenant_slug,
                    "client": client.map(|c| c.to_string()),
                    "lockedForSecs": lockout.as_secs(),
                });
                tracing::warn!(account = %who, ?client, secs = lockout.as_secs(), "admin login locked out");
                admin
                    .record_audit(
                        tenant.as_ref().map(store::Tenant::id),
                        THROTTLE_ACTOR,
                        "admin.login.locked_out",
                        &who,
                        detail,
                    )
                    .await?;
            }
            ThrottleKey::Address(ip) => {
                tracing::warn!(client = %ip, secs = lockout.as_secs(), "admin logins from a client address locked out");
            }
        }
    }
    Err(ServiceError::WrongCredentials)
}
