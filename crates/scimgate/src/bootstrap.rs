//! The first start: on a database with no operator, create one; on a
//! database with no tenant, create the `default` tenant and a `scim:write`
//! token. What was created is shown once (see [`FirstStart::banner`]) and
//! exists afterwards only as argon2id hashes.
//!
//! Also the admin API's session key when none is configured
//! ([`admin_keys`]): generated once and kept in the data directory, so a
//! restart does not log everyone out.

use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use rand::Rng;
use rand::distr::Alphanumeric;
use store::{
    AdminStore, IssuedToken, NewTenant, NewToken, Scope, Store, StoreError, Tenant, TenantKind,
};

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
            line(&format!(
                "   Web console:   {public_url}{}   (log in with the above)",
                tenant_admin::console::CONSOLE_PATH
            ));
            line(&format!(
                "   Admin API:     {public_url}{}   (POST /login)",
                tenant_admin::BASE_PATH
            ));
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
///
/// Only processes that can show the secrets it creates call this (`serve`
/// and `admin`, which print the banner). Several of them may start at
/// once on a new shared database: the one whose insert loses the race
/// (a uniqueness error) leaves that part to the winner, which shows it.
pub async fn ensure_initialized(store: &Store, config: &Config) -> store::Result<FirstStart> {
    let admin = store.admin();
    let mut first = FirstStart::default();
    if admin.count_operators().await? == 0 {
        let password = generate_password();
        let email = config.operator_email.trim().to_owned();
        match admin
            .create_operator(&email, password.expose(), FIRST_START_ACTOR)
            .await
        {
            Ok(_) => {
                tracing::info!(email = %email, "first start: created the operator account");
                first.operator = Some(OperatorCredential { email, password });
            }
            Err(StoreError::Uniqueness(_)) => {
                tracing::info!("first start: another instance created the operator account");
            }
            Err(e) => return Err(e),
        }
    }
    let (tenants, _) = admin.list_tenants(0, 1).await?;
    if tenants == 0 {
        match create_default_tenant(&admin).await {
            Ok(tenant) => first.tenant = Some(tenant),
            Err(StoreError::Uniqueness(_)) => {
                tracing::info!("first start: another instance created the default tenant");
            }
            Err(e) => return Err(e),
        }
    }
    Ok(first)
}

/// For a process that does not initialise (a gateway, which must not
/// print secrets): true when the first start has not happened yet (no
/// operator, or no tenant), so it can say who will do it.
pub async fn first_start_pending(store: &Store) -> store::Result<bool> {
    let admin = store.admin();
    if admin.count_operators().await? == 0 {
        return Ok(true);
    }
    let (tenants, _) = admin.list_tenants(0, 1).await?;
    Ok(tenants == 0)
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

/// The file in the data directory that keeps a generated admin session key.
pub const ADMIN_KEY_FILE: &str = "admin-jwt.key";

/// Where the admin API's session keys came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminKeySource {
    /// `admin_jwt_keys` in the configuration.
    Configured,
    /// A key generated earlier and kept in this file.
    File(PathBuf),
    /// A key generated now and kept in this file.
    Generated(PathBuf),
    /// A key generated now for this process only: sessions end at restart.
    Ephemeral,
}

/// The box that seals delivery targets' secrets: the configured key; with
/// the embedded database, else the key file in the data directory (made
/// on first use, mode 0600). An external database is shared by several
/// machines, which must share the key too, and scimgate does not write to
/// a data directory there: without `delivery_secrets_key` (or a key file
/// already in place) there is no key, and targets cannot be created or
/// delivered to until one is set.
pub fn delivery_secrets(
    config: &Config,
) -> Result<Option<sync_worker::secrets::SecretBox>, sync_worker::secrets::SecretError> {
    use sync_worker::secrets::{KEY_FILE, SecretBox};
    if let Some(key) = &config.delivery_secrets_key {
        return SecretBox::from_key_text(key.expose()).map(Some);
    }
    if config.database_url.is_some() && !config.data_dir.join(KEY_FILE).is_file() {
        tracing::warn!(
            "no delivery_secrets_key configured: webhook targets cannot be created or \
             delivered to; set delivery_secrets_key (the same on every machine)"
        );
        return Ok(None);
    }
    let (secrets, created) = SecretBox::load_or_create(&config.data_dir)?;
    if created {
        tracing::info!(
            dir = %config.data_dir.display(),
            "generated the key that seals delivery target secrets in the data directory"
        );
    }
    Ok(Some(secrets))
}

/// Why the admin session key file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum AdminKeyError {
    /// The file could not be read or written.
    #[error("admin session key file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file does not hold a usable key.
    #[error(
        "admin session key file {path} is not valid ({reason}); delete it to generate a new key \
         (existing admin sessions end)"
    )]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// The admin API's session keys: the configured ones; else the key kept in
/// `<data_dir>/admin-jwt.key`, generated (mode 0600) on the first start
/// when the embedded database is in use. With an external database and no
/// key file, the data directory is not scimgate's to create: the key lives
/// in memory only, and a warning says so.
pub fn admin_keys(
    config: &Config,
) -> Result<(Vec<tenant_admin::SigningKey>, AdminKeySource), AdminKeyError> {
    let path = config.data_dir.join(ADMIN_KEY_FILE);
    let configured = config
        .admin_signing_keys()
        .map_err(|e| AdminKeyError::Invalid {
            path: path.clone(),
            reason: e.to_string(),
        })?;
    if !configured.is_empty() {
        return Ok((configured, AdminKeySource::Configured));
    }
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            return Ok((
                vec![parse_key_file(&path, &text)?],
                AdminKeySource::File(path),
            ));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => return Err(AdminKeyError::Io { path, source }),
    }
    let key = generate_key()?;
    if config.database_url.is_some() {
        return Ok((vec![key], AdminKeySource::Ephemeral));
    }
    write_key_file(&path, &key)?;
    Ok((vec![key], AdminKeySource::Generated(path)))
}

fn parse_key_file(path: &Path, text: &str) -> Result<tenant_admin::SigningKey, AdminKeyError> {
    let invalid = |reason: String| AdminKeyError::Invalid {
        path: path.to_owned(),
        reason,
    };
    let line = text.trim();
    let (kid, secret) = line
        .split_once(':')
        .ok_or_else(|| invalid("expected one line kid:secret".into()))?;
    tenant_admin::SigningKey::new(kid, secret.as_bytes()).map_err(|e| invalid(e.to_string()))
}

fn generate_key() -> Result<tenant_admin::SigningKey, AdminKeyError> {
    let mut rng = rand::rng();
    let kid: String = (&mut rng)
        .sample_iter(Alphanumeric)
        .take(8)
        .map(char::from)
        .collect();
    // 48 alphanumeric characters: ~285 bits, text so the same value can be
    // copied into SCIMGATE_ADMIN_JWT_KEYS for a second instance.
    let secret: String = rng
        .sample_iter(Alphanumeric)
        .take(48)
        .map(char::from)
        .collect();
    tenant_admin::SigningKey::new(format!("local-{kid}"), secret.into_bytes()).map_err(|e| {
        AdminKeyError::Invalid {
            path: PathBuf::new(),
            reason: e.to_string(),
        }
    })
}

/// Writes the key readable by this user only, completely or not at all
/// (a temporary file renamed into place).
fn write_key_file(path: &Path, key: &tenant_admin::SigningKey) -> Result<(), AdminKeyError> {
    let io = |source| AdminKeyError::Io {
        path: path.to_owned(),
        source,
    };
    let temp = path.with_extension("key.tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(&temp).map_err(io)?;
    let mut line = key.kid().as_bytes().to_vec();
    line.push(b':');
    line.extend_from_slice(key.secret());
    line.push(b'\n');
    file.write_all(&line).map_err(io)?;
    file.sync_all().map_err(io)?;
    drop(file);
    std::fs::rename(&temp, path).map_err(io)
}

/// A random alphanumeric password (30 characters, about 178 bits): the
/// first start's operator password and the CLI's generated ones.
pub(crate) fn generate_password() -> Secret {
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
    fn admin_key_is_generated_once_kept_private_and_reused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = Config {
            data_dir: dir.path().to_owned(),
            ..Config::default()
        };
        let (first, source) = admin_keys(&config).expect("generated");
        let path = dir.path().join(ADMIN_KEY_FILE);
        assert_eq!(source, AdminKeySource::Generated(path.clone()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path)
                .expect("key file")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let (again, source) = admin_keys(&config).expect("read back");
        assert_eq!(source, AdminKeySource::File(path.clone()));
        assert_eq!(again, first);
        assert!(first[0].secret().len() >= tenant_admin::MIN_SECRET_BYTES);

        std::fs::write(&path, "garbage").expect("write");
        let e = admin_keys(&config).expect_err("corrupt file");
        assert!(e.to_string().contains("delete it"), "{e}");
    }

    #[test]
    fn configured_keys_win_and_external_databases_get_no_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let secret = "s".repeat(40);
        let config = Config {
            data_dir: dir.path().join("unused"),
            database_url: Some(Secret::new("postgres://h/db")),
            admin_jwt_keys: crate::config::parse_key_list(&format!("a:{secret},b:{secret}"))
                .expect("keys"),
            ..Config::default()
        };
        let (keys, source) = admin_keys(&config).expect("configured");
        assert_eq!(source, AdminKeySource::Configured);
        assert_eq!(keys.len(), 2);
        let config = Config {
            admin_jwt_keys: Vec::new(),
            ..config
        };
        let (keys, source) = admin_keys(&config).expect("ephemeral");
        assert_eq!(source, AdminKeySource::Ephemeral);
        assert_eq!(keys.len(), 1);
        assert!(!dir.path().join("unused").exists());
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
