//! The admin API of scimgate, served under `/admin/v1`: operators manage
//! tenants, tenant admins manage their own tenant (tokens, logins, role
//! policy, role-locks) and read its directory, provisioning log and audit
//! log. JSON in and out, camelCase keys; sessions are HS256 JWTs from
//! `POST /login`.
//!
//! The handlers are a thin translation, like the gateway: extract (session
//! → caller → tenant in scope → [`service::TenantContext`]), call the
//! [`service`] layer, which the CLI and the console call too (so they all
//! agree on what an operation means, how a policy edit retries, what is
//! audited), and map the result to the wire.
//!
//! - **Routes** live in one table (module `routes`) that both registers
//!   them and names the handlers the OpenAPI document is derived from; a
//!   test compares the two ([`routes`], [`openapi`]).
//! - **Permissions** (module `auth`): operators see every tenant. A tenant
//!   admin sees only their tenant: every route naming another tenant
//!   answers 404, exactly like a tenant that does not exist. Operator-only
//!   routes (list/create/delete tenants, change a tenant's status, the
//!   global audit log) answer 403 to tenant admins. A suspended tenant's
//!   admins can log in and read, but change nothing until an operator
//!   reactivates the tenant (403).
//! - **Errors** (module `error`): one body shape, `{"error", "message"}`,
//!   for every failure, including actix's own (malformed JSON, bad query
//!   strings, oversized bodies); internal causes are logged, not shown.
//! - **Audit**: the store writes every change to the audit log in the
//!   change's own transaction; the actor is `operator:<email>` or
//!   `tenant-admin:<email>`.

use std::fmt;
use std::time::Duration;

use actix_web::web::{self, ServiceConfig};
use store::Store;

mod auth;
pub mod console;
mod error;
mod handlers;
mod routes;
pub mod service;
mod wire;

pub use auth::{MIN_SECRET_BYTES, SigningKey};
pub use error::{AdminError, ErrorBody};
pub use routes::{RouteInfo, openapi, routes};

/// Where the admin API is mounted.
pub const BASE_PATH: &str = "/admin/v1";

/// The `iss` of every session token.
pub const ISSUER: &str = "scimgate";

/// How long a session lasts unless configured otherwise.
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(3600);

/// The largest accepted request body; larger ones get 413. The biggest
/// legitimate body, a whole role policy, is far smaller.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Settings of the admin API.
#[derive(Clone)]
pub struct AdminConfig {
    /// Session keys: the first signs, all verify (rotation).
    pub keys: Vec<SigningKey>,
    /// How long a session token is valid.
    pub token_ttl: Duration,
}

impl fmt::Debug for AdminConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminConfig")
            .field("keys", &self.keys)
            .field("token_ttl", &self.token_ttl)
            .finish()
    }
}

/// Why the admin API refused its configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdminConfigError {
    /// No session key is configured.
    #[error("at least one admin JWT key is needed")]
    NoKeys,
    /// A key id is empty, too long or has characters outside `A-Za-z0-9._-`.
    #[error("admin JWT key id {0:?} must be 1 to 64 of A-Z a-z 0-9 . _ -")]
    BadKid(String),
    /// A secret is too short for HS256.
    #[error(
        "admin JWT key {kid:?} has a {len}-byte secret; at least {MIN_SECRET_BYTES} bytes are needed"
    )]
    ShortSecret {
        /// The key's id.
        kid: String,
        /// The secret's length in bytes.
        len: usize,
    },
    /// Two keys share an id.
    #[error("admin JWT key id {0:?} is configured twice")]
    DuplicateKid(String),
    /// The session lifetime is zero.
    #[error("the admin session lifetime must be at least one second")]
    ZeroTtl,
}

/// How `POST /login` treats its callers.
#[derive(Debug, Clone)]
pub struct LoginOptions {
    /// The login throttle (in memory, on the system clock, by default).
    pub throttle: service::login::Throttle,
    /// Reverse proxies (addresses or ranges) whose `X-Forwarded-For` names
    /// the client; from any other peer the header is ignored (a client
    /// could write anything).
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

impl Default for LoginOptions {
    fn default() -> Self {
        use service::throttle::{MemoryThrottle, SystemClock, ThrottleSettings};
        LoginOptions {
            throttle: service::login::Throttle::new(
                std::sync::Arc::new(MemoryThrottle::new(ThrottleSettings::default())),
                std::sync::Arc::new(SystemClock),
            ),
            trusted_proxies: Vec::new(),
        }
    }
}

/// State shared by every request.
pub(crate) struct State {
    pub(crate) store: Store,
    pub(crate) login: LoginOptions,
    pub(crate) keys: auth::Keys,
    pub(crate) token_ttl: Duration,
    /// Told when a change may invalidate SCIM bearer tokens (a revocation,
    /// a suspension, a deletion), so this process's gateway forgets its
    /// cached verifications at once instead of at its next poll.
    auth_changed: std::sync::OnceLock<AuthListener>,
    /// How targets are made (see [`Admin::set_delivery`]).
    pub(crate) delivery: std::sync::OnceLock<service::delivery::DeliverySettings>,
    /// Verifies SCIM bearer tokens for the event feed (see
    /// [`Admin::on_scim_token`]).
    pub(crate) scim_tokens: std::sync::OnceLock<TokenVerifier>,
    /// Console sessions ended by logout before their expiry (see
    /// `console::session`).
    pub(crate) console_logouts: console::Logouts,
    /// The URL clients reach this deployment at, when configured (else the
    /// console derives it from each request).
    pub(crate) public_url: std::sync::OnceLock<String>,
}

/// See [`Admin::on_scim_token`].
pub(crate) type TokenVerifier = Box<
    dyn Fn(
            String,
        ) -> std::pin::Pin<
            Box<
                dyn std::future::Future<
                        Output = Result<Option<store::Authenticated>, store::StoreError>,
                    > + Send,
            >,
        > + Send
        + Sync,
>;

/// See [`Admin::on_auth_change`].
type AuthListener = Box<dyn Fn() + Send + Sync>;

impl State {
    /// Tells the listener, if any, that tokens may have stopped working.
    pub(crate) fn auth_changed(&self) {
        if let Some(listener) = self.auth_changed.get() {
            listener();
        }
    }
}

/// The admin API; cheap to clone.
#[derive(Clone)]
pub struct Admin {
    state: web::Data<State>,
}

impl fmt::Debug for Admin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Admin")
            .field("token_ttl", &self.state.token_ttl)
            .finish_non_exhaustive()
    }
}

impl Admin {
    /// The admin API over `store`, with the default login options.
    pub fn new(store: Store, config: AdminConfig) -> Result<Admin, AdminConfigError> {
        Admin::with_login_options(store, config, LoginOptions::default())
    }

    /// The admin API over `store`, with these login options (a shared
    /// throttle, a test clock, trusted proxies).
    pub fn with_login_options(
        store: Store,
        config: AdminConfig,
        login: LoginOptions,
    ) -> Result<Admin, AdminConfigError> {
        if config.token_ttl.is_zero() {
            return Err(AdminConfigError::ZeroTtl);
        }
        let keys = auth::Keys::new(&config.keys)?;
        Ok(Admin {
            state: web::Data::new(State {
                store,
                login,
                keys,
                token_ttl: config.token_ttl,
                auth_changed: std::sync::OnceLock::new(),
                delivery: std::sync::OnceLock::new(),
                scim_tokens: std::sync::OnceLock::new(),
                console_logouts: console::Logouts::default(),
                public_url: std::sync::OnceLock::new(),
            }),
        })
    }

    /// Calls `listener` after every change that can stop SCIM tokens from
    /// working (token revoked, tenant suspended or deleted); the server
    /// passes its gateway's cache invalidation. Other processes notice
    /// through the store's auth revision. Only the first listener is kept.
    pub fn on_auth_change(&self, listener: impl Fn() + Send + Sync + 'static) {
        let _ = self.state.auth_changed.set(Box::new(listener));
    }

    /// The URL clients reach this deployment at (`public_url`), which the
    /// console shows in SCIM URLs and setup steps. Only the first call
    /// counts.
    pub fn set_public_url(&self, url: impl Into<String>) {
        let _ = self.state.public_url.set(url.into());
    }

    /// Enables the delivery routes: how targets' secrets are sealed, which
    /// addresses they may have, how long a rotated secret keeps signing.
    /// Only the first call counts.
    pub fn set_delivery(&self, settings: service::delivery::DeliverySettings) {
        let _ = self.state.delivery.set(settings);
    }

    /// Lets the event feed accept SCIM tokens with the `events:read` scope,
    /// verified by `verify` (the server passes its gateway's cached
    /// verification, so argon2 does not run on every poll). Only the first
    /// call counts; without one the feed takes admin sessions only.
    pub fn on_scim_token<F, Fut>(&self, verify: F)
    where
        F: Fn(String) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<Option<store::Authenticated>, store::StoreError>>
            + Send
            + 'static,
    {
        let _ = self
            .state
            .scim_tokens
            .set(Box::new(move |token| Box::pin(verify(token))));
    }

    /// Mounts every admin route under [`BASE_PATH`] and the console under
    /// [`console::CONSOLE_PATH`].
    pub fn configure(&self, cfg: &mut ServiceConfig) {
        cfg.service(routes::scope(self.state.clone()));
        cfg.service(console::scope(self.state.clone()));
    }
}
