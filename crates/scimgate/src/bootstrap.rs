//! The first start: on a database with no operator, create one; on a
//! database with no tenant, create the `default` tenant and a `scim:write`
//! token. What was created is shown once (see [`FirstStart::banner`]) and
//! exists afterwards only as argon2id hashes.

use std::fmt;

use rand::Rng;
use rand::distr::Alphanumeric;
use store::{AdminStore, IssuedToken, NewTenant, NewToken, Scope, Store, Tenant, TenantKind};

use crate::config::{Config, Secret};

/// Slug of the tenant created on first start.
pub const DEFAULT_TENANT_SLUG: &str = "default";

/// Length of the generated operator password (alphanumeric: ~178 bits).
const PASSWORD_LEN: usize = 30;

/// An operator account created on first start.
#[derive(Clone)]
pub struct OperatorCredential {
    /// Login email.
    pub email: String,
    /// The generated password (shown once).
    pub password: Secret,
}

impl fmt::Debug for OperatorCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OperatorCredential")
            .field("email", &self.email)
            .field("password", &self.password)
            .finish()
    }
}

/// The tenant created on first start and its first token.
#[derive(Clone)]
pub struct FirstTenant {
    /// The tenant.
    pub tenant: Tenant,
    /// Its `scim:write` token (secret shown once).
    pub token: IssuedToken,
}

impl fmt::Debug for FirstTenant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FirstTenant")
            .field("tenant", &self.tenant.slug())
            .field("token_id", &self.token.info.id)
            .finish_non_exhaustive()
    }
}

/// What the first start created; empty on later starts.
#[derive(Debug, Clone, Default)]
pub struct FirstStart {
    /// The operator, when none existed.
    pub operator: Option<OperatorCredential>,
    /// The default tenant and token, when no tenant existed.
    pub tenant: Option<FirstTenant>,
}

impl FirstStart {
    /// True when nothing was created (not a first start).
    pub fn is_empty(&self) -> bool {
        self.operator.is_none() && self.tenant.is_none()
    }

    /// The once-only message for a new user: where to point an identity
    /// provider, with which secret, and how to add more.
    pub fn banner(&self, public_url: &str) -> String {
        let rule = "=".repeat(78);
        let mut out = String::new();
        let mut line = |s: &str| {
            out.push_str(s);
            out.push('\n');
        };
        line(&rule);
        line(" scimgate: first start. Set up for you:");
        line(&rule);
        if let Some(first) = &self.tenant {
            let slug = first.tenant.slug();
            let tenant_url = format!("{public_url}/tenants/{slug}/scim/v2");
            line("");
            line(&format!(
                " Tenant \"{slug}\": give these two to your identity provider"
            ));
            line(" (Entra ID: Tenant URL + Secret Token; Okta: Base URL + API Token)");
            line("");
            line(&format!("   SCIM URL:      {tenant_url}"));
            line(&format!(
                "   Token-routed:  {public_url}/scim/v2   (the token picks the tenant)"
            ));
            line(&format!("   Secret token:  {}", first.token.secret));
            line("");
            line(" Try it:");
            line(&format!(
                "   curl -H \"Authorization: Bearer {}\" {tenant_url}/Users",
                first.token.secret
            ));
        }
        if let Some(operator) = &self.operator {
            line("");
            line(" Operator account (for the admin API and console):");
            line(&format!("   Email:         {}", operator.email));
            line(&format!("   Password:      {}", operator.password.expose()));
        }
        line("");
        line(" These secrets are shown only now and stored only as hashes: copy them.");
        line("");
        line(" Add more (from a source checkout: cargo run --release -- <command>):");
        line("   scimgate tenant create NAME     a tenant, its SCIM URL and first token");
        line("   scimgate token issue TENANT     another token for a tenant (rotation)");
        line("   scimgate token list TENANT      a tenant's tokens (no secrets)");
        line("   scimgate token revoke TENANT ID");
        line(&rule);
        out
    }
}

/// Who the audit log names for what the first start creates.
const FIRST_START_ACTOR: &str = "system:first-start";

/// Creates the operator and the default tenant where they are missing.
pub async fn ensure_initialized(store: &Store, config: &Config) -> store::Result<FirstStart> {
    let admin = store.admin();
    let mut first = FirstStart::default();
    if admin.count_operators().await? == 0 {
        let password = generate_password();
        let email = config.operator_email.trim().to_owned();
        admin
            .create_operator(&email, password.expose(), FIRST_START_ACTOR)
            .await?;
        tracing::info!(email = %email, "first start: created the operator account");
        first.operator = Some(OperatorCredential { email, password });
    }
    let (tenants, _) = admin.list_tenants(0, 1).await?;
    if tenants == 0 {
        first.tenant = Some(create_default_tenant(&admin).await?);
    }
    Ok(first)
}

async fn create_default_tenant(admin: &AdminStore) -> store::Result<FirstTenant> {
    let tenant = admin
        .create_tenant(
            NewTenant {
                slug: DEFAULT_TENANT_SLUG.to_owned(),
                name: "Default tenant".to_owned(),
                kind: TenantKind::Standard,
            },
            FIRST_START_ACTOR,
        )
        .await?;
    let token = admin
        .issue_token(
            &tenant,
            NewToken {
                name: "first-start".to_owned(),
                scopes: vec![Scope::ScimWrite],
                expires_at: None,
            },
            FIRST_START_ACTOR,
        )
        .await?;
    tracing::info!(
        tenant = %tenant.slug(),
        token_id = %token.info.id,
        "first start: created the default tenant and a scim:write token"
    );
    Ok(FirstTenant { tenant, token })
}

fn generate_password() -> Secret {
    let password: String = rand::rng()
        .sample_iter(Alphanumeric)
        .take(PASSWORD_LEN)
        .map(char::from)
        .collect();
    Secret::new(password)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_long_and_distinct() {
        let a = generate_password();
        let b = generate_password();
        assert_eq!(a.expose().len(), PASSWORD_LEN);
        assert_ne!(a.expose(), b.expose());
        assert!(a.expose().chars().all(|c| c.is_ascii_alphanumeric()));
    }

    #[test]
    fn debug_never_shows_the_password() {
        let first = FirstStart {
            operator: Some(OperatorCredential {
                email: "admin@localhost".into(),
                password: Secret::new("hunter2hunter2"),
            }),
            tenant: None,
        };
        let shown = format!("{first:?}");
        assert!(shown.contains("admin@localhost"));
        assert!(!shown.contains("hunter2"));
        let banner = first.banner("http://127.0.0.1:8080");
        assert!(banner.contains("hunter2hunter2"));
        assert!(banner.contains("scimgate tenant create NAME"));
    }
}
