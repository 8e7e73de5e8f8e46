//! Layered, typed configuration.
//!
//! Four layers, each overriding the one before, key by key: built-in
//! defaults, a TOML file (`--config FILE` or `SCIMGATE_CONFIG`), environment
//! variables `SCIMGATE_<KEY>`, and command-line flags. Each layer is parsed
//! on its own (figment gives typed errors that name the source and key) and
//! then overlaid here, which keeps the one cross-key rule explicit: a layer
//! that sets `database_url_file` replaces a lower layer's `database_url` and
//! vice versa, while setting both in one layer is an error.
//!
//! Unknown keys are warned about, never fatal, so an older binary can read a
//! newer file. The result is one [`Config`] value passed down explicitly.

use std::collections::BTreeSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Format, Toml};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};
use serde::Deserialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor};

/// Prefix of every configuration environment variable.
pub const ENV_PREFIX: &str = "SCIMGATE_";

/// Environment variable naming the TOML file (when `--config` is not given).
pub const CONFIG_FILE_ENV: &str = "SCIMGATE_CONFIG";

/// Every key the file and the environment accept (lower case; the
/// environment spells them `SCIMGATE_<KEY>` in upper case).
pub const KEYS: &[&str] = &[
    "listen",
    "data_dir",
    "database_url",
    "database_url_file",
    "redis_url",
    "public_url",
    "log_format",
    "log_level",
    "max_body_bytes",
    "default_count",
    "max_count",
    "rate_limit_per_second",
    "rate_limit_burst",
    "token_cache_ttl_secs",
    "auth_poll_interval_secs",
    "provisioning_log_retention_days",
    "sqlite_synchronous",
    "db_max_connections",
    "operator_email",
    "group_patch_response",
    "group_patch_no_content_above",
    "admin_jwt_keys",
    "admin_token_ttl_secs",
    "trusted_proxies",
    "delivery_enabled",
    "delivery_secrets_key",
    "delivery_allow_private_targets",
    "delivery_timeout_secs",
    "delivery_retry_schedule",
    "delivery_disable_after_hours",
    "delivery_concurrency_per_target",
    "delivery_attempt_retention_days",
    "event_retention_days",
    "job_lease_secs",
    "metrics_tenant_label",
];

/// Shortest and longest admin session lifetimes accepted, in seconds.
pub const MIN_ADMIN_TOKEN_TTL_SECS: u64 = 60;
/// See [`MIN_ADMIN_TOKEN_TTL_SECS`]: a week.
pub const MAX_ADMIN_TOKEN_TTL_SECS: u64 = 7 * 24 * 3600;

/// Shortest job lease accepted, in seconds: a heartbeat comes every
/// third of the lease, and a batch must fit in it.
pub const MIN_JOB_LEASE_SECS: u64 = 5;
/// See [`MIN_JOB_LEASE_SECS`]: an hour.
pub const MAX_JOB_LEASE_SECS: u64 = 3600;

/// Longest auth-revision poll interval accepted, in seconds: a revocation
/// made elsewhere may take this long to reach a running process.
pub const MAX_AUTH_POLL_INTERVAL_SECS: u64 = 60;

/// Name of the SQLite database file inside the data directory.
pub const SQLITE_FILE_NAME: &str = "scimgate.db";

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The configuration file named by `--config` / `SCIMGATE_CONFIG` is missing.
    #[error("configuration file {0} does not exist")]
    FileMissing(PathBuf),
    /// A value has the wrong type or cannot be parsed (figment names the key and source).
    #[error("{0}")]
    Parse(Box<figment::Error>),
    /// `database_url` and `database_url_file` are both set in the same layer.
    #[error("{0} sets both database_url and database_url_file; set only one")]
    DatabaseUrlTwice(&'static str),
    /// The file named by `database_url_file` cannot be read.
    #[error("cannot read database_url_file {path}: {source}")]
    SecretFile {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A value parsed but is not acceptable.
    #[error("invalid {key}: {reason}")]
    Invalid {
        /// The offending key.
        key: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

impl From<figment::Error> for ConfigError {
    fn from(e: figment::Error) -> Self {
        ConfigError::Parse(Box::new(e))
    }
}

/// A secret string (the database URL may carry a password): never shown by
/// `Debug`; read it with [`Secret::expose`] where it is really needed.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    /// The clear value, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per line (for log shippers).
    Json,
    /// Human-readable lines (colours on a terminal).
    Pretty,
}

/// SQLite durability setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SqliteSynchronous {
    /// Every commit reaches the disk before it is acknowledged.
    Full,
    /// Faster; the last commits may be lost on power failure (never corruption).
    Normal,
}

/// One admin API session key: tokens name it by `kid`; the secret signs
/// them (HS256).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminJwtKey {
    /// The key's id (`A-Z a-z 0-9 . _ -`, at most 64).
    pub kid: String,
    /// The HMAC secret, at least 32 bytes.
    pub secret: Secret,
}

/// `admin_jwt_keys` as written: a list of `{kid, secret}` tables (TOML), or
/// `kid:secret,kid2:secret2` (one string, for the environment).
#[derive(Debug, Clone, Default)]
struct AdminJwtKeys(Vec<AdminJwtKey>);

impl<'de> Deserialize<'de> for AdminJwtKeys {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Keys;
        impl<'de> Visitor<'de> for Keys {
            type Value = AdminJwtKeys;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of {kid, secret} tables, or \"kid:secret,kid2:secret2\"")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<AdminJwtKeys, E> {
                parse_key_list(text).map(AdminJwtKeys).map_err(E::custom)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<AdminJwtKeys, A::Error> {
                let mut keys = Vec::new();
                while let Some(key) = seq.next_element::<AdminJwtKey>()? {
                    keys.push(key);
                }
                Ok(AdminJwtKeys(keys))
            }
        }
        d.deserialize_any(Keys)
    }
}

/// Parses `kid:secret,kid2:secret2` (the environment's spelling of
/// `admin_jwt_keys`); a secret may contain `:` but not `,`.
pub fn parse_key_list(text: &str) -> Result<Vec<AdminJwtKey>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| {
            let (kid, secret) = item
                .split_once(':')
                .ok_or_else(|| "each key must be written kid:secret".to_owned())?;
            Ok(AdminJwtKey {
                kid: kid.trim().to_owned(),
                secret: Secret::new(secret),
            })
        })
        .collect()
}

/// What a successful `PATCH /Groups/{id}` answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupPatchResponse {
    /// By size (the default): `204` for a member-only PATCH of a group with
    /// more than `group_patch_no_content_above` members, unless the request
    /// names `attributes`/`excludedAttributes`; `200` with the group
    /// otherwise.
    Auto,
    /// Always `200 OK` with the group and its members.
    Resource,
    /// `204 No Content` with the new ETag: no member list read or sent.
    NoContent,
}

/// The resolved configuration of one scimgate process.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address the HTTP server binds (port 0 picks a free port).
    pub listen: SocketAddr,
    /// Directory of the embedded SQLite database (created if missing).
    pub data_dir: PathBuf,
    /// Database URL; `None` means the SQLite file in `data_dir`.
    pub database_url: Option<Secret>,
    /// The deployment's Redis (`redis://...`): shared rate limits, notices
    /// between instances, the delivery queue. `None`: each process alone.
    pub redis_url: Option<Secret>,
    /// Externally visible base URL (no trailing `/`); `None` derives it from the listen address.
    pub public_url: Option<String>,
    /// Log format; `None` picks pretty on a terminal, JSON otherwise.
    pub log_format: Option<LogFormat>,
    /// Log filter directives (RUST_LOG syntax); `None` falls back to `RUST_LOG`, then a default.
    pub log_level: Option<String>,
    /// Largest accepted request body, in bytes.
    pub max_body_bytes: usize,
    /// Page size when a list request names no `count`.
    pub default_count: u64,
    /// Largest page size a client may ask for.
    pub max_count: u64,
    /// Sustained requests per second allowed per tenant (0 disables the limit).
    pub rate_limit_per_second: u32,
    /// Requests a tenant may make in a burst (at least the per-second rate).
    pub rate_limit_burst: u32,
    /// How long a verified token stays in the in-memory cache, in seconds.
    pub token_cache_ttl_secs: u64,
    /// How often a process polls the store's auth revision (revocations
    /// made by other processes; also the gateway's database check), in
    /// seconds.
    pub auth_poll_interval_secs: u64,
    /// Days provisioning-log entries are kept; 0 keeps them forever.
    pub provisioning_log_retention_days: u32,
    /// SQLite durability (ignored for PostgreSQL).
    pub sqlite_synchronous: SqliteSynchronous,
    /// Maximum pooled database connections.
    pub db_max_connections: u32,
    /// Email of the operator account created on first start.
    pub operator_email: String,
    /// What a successful group PATCH answers.
    pub group_patch_response: GroupPatchResponse,
    /// Under `auto`, the group size (members) above which member-only
    /// PATCHes answer 204.
    pub group_patch_no_content_above: u64,
    /// How the metrics' `tenant` label is filled: `all`, `off` or `top:N`
    /// (the N busiest tenants by name, the rest as `other`).
    pub metrics_tenant_label: String,
    /// Admin API session keys: the first signs, all verify. Empty: a key
    /// generated on the first start and kept in the data directory.
    pub admin_jwt_keys: Vec<AdminJwtKey>,
    /// How long an admin API session lasts, in seconds.
    pub admin_token_ttl_secs: u64,
    /// Reverse proxies whose `X-Forwarded-For` names the client of an admin
    /// login (for its throttling): comma-separated addresses or CIDR
    /// ranges; empty trusts none.
    pub trusted_proxies: String,
    /// Whether `serve` runs the delivery worker in process.
    pub delivery_enabled: bool,
    /// The key that seals target secrets at rest (base64 of 32 bytes);
    /// `None`: a key generated on the first start and kept in the data
    /// directory.
    pub delivery_secrets_key: Option<Secret>,
    /// Whether targets may be in loopback, private or link-local ranges.
    pub delivery_allow_private_targets: bool,
    /// A delivery request gives up after this many seconds.
    pub delivery_timeout_secs: u64,
    /// The waits between attempts, e.g. `5s,5m,30m,2h,5h,10h,10h`.
    pub delivery_retry_schedule: String,
    /// A target failing this many hours without a success is disabled.
    pub delivery_disable_after_hours: u64,
    /// Requests in flight to one target at most.
    pub delivery_concurrency_per_target: usize,
    /// Days delivery attempts are kept.
    pub delivery_attempt_retention_days: u32,
    /// Days events are kept (never while a target still needs them).
    pub event_retention_days: u32,
    /// How long a background job's claim lasts without a heartbeat: how
    /// soon another worker takes over the job of a crashed process.
    pub job_lease_secs: u64,
}

impl Default for Config {
    fn default() -> Self {
        let gateway = gateway::GatewayConfig::default();
        let store = store::StoreOptions::default();
        Config {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 8080)),
            data_dir: PathBuf::from("./data"),
            database_url: None,
            redis_url: None,
            public_url: None,
            log_format: None,
            log_level: None,
            max_body_bytes: gateway.max_body_bytes,
            default_count: gateway.default_count,
            max_count: gateway.max_count,
            rate_limit_per_second: gateway.rate_limit_per_second,
            rate_limit_burst: gateway.rate_limit_burst,
            token_cache_ttl_secs: gateway.token_cache_ttl.as_secs(),
            auth_poll_interval_secs: gateway.auth_poll_interval.as_secs(),
            provisioning_log_retention_days: 30,
            sqlite_synchronous: if store.sqlite_synchronous_full {
                SqliteSynchronous::Full
            } else {
                SqliteSynchronous::Normal
            },
            db_max_connections: store.max_connections,
            operator_email: "admin@localhost".to_owned(),
            group_patch_response: match gateway.group_patch_response {
                gateway::GroupPatchResponse::Auto => GroupPatchResponse::Auto,
                gateway::GroupPatchResponse::Resource => GroupPatchResponse::Resource,
                gateway::GroupPatchResponse::NoContent => GroupPatchResponse::NoContent,
            },
            group_patch_no_content_above: gateway.group_patch_no_content_above,
            metrics_tenant_label: gateway.metrics_tenant_label.to_string(),
            admin_jwt_keys: Vec::new(),
            admin_token_ttl_secs: tenant_admin::DEFAULT_TOKEN_TTL.as_secs(),
            delivery_enabled: true,
            delivery_secrets_key: None,
            delivery_allow_private_targets: false,
            delivery_timeout_secs: 15,
            delivery_retry_schedule: "5s,5m,30m,2h,5h,10h,10h".to_owned(),
            trusted_proxies: String::new(),
            delivery_disable_after_hours: 5 * 24,
            delivery_concurrency_per_target: 8,
            delivery_attempt_retention_days: 30,
            event_retention_days: 30,
            job_lease_secs: store.job_lease.as_secs(),
        }
    }
}

/// Values set on the command line (the highest layer).
#[derive(Debug, Clone, Default)]
pub struct Flags {
    /// `--listen`.
    pub listen: Option<SocketAddr>,
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `--database-url`.
    pub database_url: Option<Secret>,
    /// `--redis-url`.
    pub redis_url: Option<Secret>,
    /// `--public-url`.
    pub public_url: Option<String>,
}

/// Where configuration comes from; [`Sources::from_process`] reads the real
/// environment, tests pass their own.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// The TOML file, if any.
    pub file: Option<PathBuf>,
    /// Environment variables (all of them; only `SCIMGATE_*` are read).
    pub env: Vec<(String, String)>,
    /// Command-line values.
    pub flags: Flags,
}

impl Sources {
    /// Sources from this process: `--config` (else `SCIMGATE_CONFIG`), its
    /// environment, and the given flags.
    pub fn from_process(config_flag: Option<PathBuf>, flags: Flags) -> Sources {
        let env: Vec<(String, String)> = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect();
        let file = config_flag.or_else(|| {
            env.iter()
                .find(|(k, v)| k == CONFIG_FILE_ENV && !v.is_empty())
                .map(|(_, v)| PathBuf::from(v))
        });
        Sources { file, env, flags }
    }
}

/// A loaded configuration and what was odd about its sources.
#[derive(Debug)]
pub struct Loaded {
    /// The configuration.
    pub config: Config,
    /// Warnings to log once logging is up (unknown keys, ignored variables).
    pub warnings: Vec<String>,
}

/// One layer as parsed: every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Layer {
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    database_url: Option<Secret>,
    database_url_file: Option<PathBuf>,
    redis_url: Option<Secret>,
    public_url: Option<String>,
    log_format: Option<LogFormat>,
    log_level: Option<String>,
    max_body_bytes: Option<usize>,
    default_count: Option<u64>,
    max_count: Option<u64>,
    rate_limit_per_second: Option<u32>,
    rate_limit_burst: Option<u32>,
    token_cache_ttl_secs: Option<u64>,
    auth_poll_interval_secs: Option<u64>,
    provisioning_log_retention_days: Option<u32>,
    sqlite_synchronous: Option<SqliteSynchronous>,
    db_max_connections: Option<u32>,
    operator_email: Option<String>,
    group_patch_response: Option<GroupPatchResponse>,
    group_patch_no_content_above: Option<u64>,
    admin_jwt_keys: Option<AdminJwtKeys>,
    admin_token_ttl_secs: Option<u64>,
    trusted_proxies: Option<String>,
    delivery_enabled: Option<bool>,
    delivery_secrets_key: Option<Secret>,
    delivery_allow_private_targets: Option<bool>,
    delivery_timeout_secs: Option<u64>,
    delivery_retry_schedule: Option<String>,
    delivery_disable_after_hours: Option<u64>,
    delivery_concurrency_per_target: Option<usize>,
    delivery_attempt_retention_days: Option<u32>,
    event_retention_days: Option<u32>,
    job_lease_secs: Option<u64>,
    metrics_tenant_label: Option<String>,
}

/// Where the database URL of the winning layer comes from.
enum DatabaseSource {
    Inline(Secret),
    File(PathBuf),
}

/// The `SCIMGATE_*` variables as a figment provider, values parsed the way
/// figment's own `Env` provider parses them (numbers, booleans, strings).
/// Its own type rather than `figment::providers::Env` so tests can pass an
/// environment without touching the process's.
struct EnvLayer {
    vars: Vec<(String, String)>,
}

impl EnvLayer {
    fn new(env: &[(String, String)]) -> EnvLayer {
        let vars = env
            .iter()
            .filter_map(|(k, v)| {
                let key = k.strip_prefix(ENV_PREFIX)?;
                // SCIMGATE_CONFIG locates the file; it is not a key. An empty
                // value means "unset", as compose files write `X=${X:-}`.
                if k == CONFIG_FILE_ENV || key.is_empty() || v.is_empty() {
                    return None;
                }
                Some((key.to_ascii_lowercase(), v.clone()))
            })
            .collect();
        EnvLayer { vars }
    }
}

impl Provider for EnvLayer {
    fn metadata(&self) -> Metadata {
        Metadata::named("`SCIMGATE_` environment variable(s)")
            .interpolater(|_, keys| format!("{ENV_PREFIX}{}", keys.join(".").to_ascii_uppercase()))
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let mut dict = Dict::new();
        for (key, value) in &self.vars {
            let Ok(parsed) = value.parse::<Value>();
            dict.insert(key.clone(), parsed);
        }
        Ok(Profile::Default.collect(dict))
    }
}

fn parse_layer(provider: impl Provider) -> Result<Layer, ConfigError> {
    Ok(Figment::from(provider).extract::<Layer>()?)
}

fn unknown_keys(provider: &impl Provider) -> Result<Vec<String>, ConfigError> {
    let known: BTreeSet<&str> = KEYS.iter().copied().collect();
    let data = provider.data()?;
    Ok(data
        .values()
        .flat_map(|dict| dict.keys())
        .filter(|k| !known.contains(k.as_str()))
        .cloned()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect())
}

impl Config {
    /// Loads defaults, then the file, then the environment, then the flags.
    pub fn load(sources: &Sources) -> Result<Loaded, ConfigError> {
        let mut warnings = Vec::new();
        let mut config = Config::default();
        let mut database: Option<DatabaseSource> = None;
        let mut default_count_set = false;

        if let Some(path) = &sources.file {
            if !path.is_file() {
                return Err(ConfigError::FileMissing(path.clone()));
            }
            let toml = Toml::file_exact(path);
            for key in unknown_keys(&toml)? {
                warnings.push(format!(
                    "unknown configuration key `{key}` in {} (ignored)",
                    path.display()
                ));
            }
            let layer = parse_layer(toml)?;
            config.overlay(
                layer,
                &mut database,
                &mut default_count_set,
                "the configuration file",
            )?;
        }

        let env = EnvLayer::new(&sources.env);
        for key in unknown_keys(&env)? {
            warnings.push(format!(
                "unknown environment variable {ENV_PREFIX}{} (not a configuration key; ignored)",
                key.to_ascii_uppercase()
            ));
        }
        let layer = parse_layer(env)?;
        config.overlay(
            layer,
            &mut database,
            &mut default_count_set,
            "the environment",
        )?;

        let flags = &sources.flags;
        config.overlay(
            Layer {
                listen: flags.listen,
                data_dir: flags.data_dir.clone(),
                database_url: flags.database_url.clone(),
                redis_url: flags.redis_url.clone(),
                public_url: flags.public_url.clone(),
                ..Layer::default()
            },
            &mut database,
            &mut default_count_set,
            "the command line",
        )?;

        config.database_url = match database {
            None => None,
            Some(DatabaseSource::Inline(url)) => Some(url),
            Some(DatabaseSource::File(path)) => Some(read_secret_file(&path)?),
        };
        // Lowering max_count alone should just work: the default page
        // follows it down. An explicit default_count above it is an error.
        if !default_count_set {
            config.default_count = config.default_count.min(config.max_count);
        }
        config.validate()?;
        Ok(Loaded { config, warnings })
    }

    fn overlay(
        &mut self,
        layer: Layer,
        database: &mut Option<DatabaseSource>,
        default_count_set: &mut bool,
        source: &'static str,
    ) -> Result<(), ConfigError> {
        *default_count_set |= layer.default_count.is_some();
        match (layer.database_url, layer.database_url_file) {
            (Some(_), Some(_)) => return Err(ConfigError::DatabaseUrlTwice(source)),
            (Some(url), None) => *database = Some(DatabaseSource::Inline(url)),
            (None, Some(path)) => *database = Some(DatabaseSource::File(path)),
            (None, None) => {}
        }
        macro_rules! take {
            ($($field:ident),*) => {
                $(if let Some(v) = layer.$field { self.$field = v; })*
            };
        }
        take!(
            listen,
            data_dir,
            max_body_bytes,
            default_count,
            max_count,
            rate_limit_per_second,
            rate_limit_burst,
            token_cache_ttl_secs,
            auth_poll_interval_secs,
            provisioning_log_retention_days,
            sqlite_synchronous,
            db_max_connections,
            operator_email,
            group_patch_response,
            group_patch_no_content_above,
            admin_token_ttl_secs,
            trusted_proxies,
            delivery_enabled,
            delivery_allow_private_targets,
            delivery_timeout_secs,
            delivery_retry_schedule,
            delivery_disable_after_hours,
            delivery_concurrency_per_target,
            delivery_attempt_retention_days,
            event_retention_days,
            job_lease_secs,
            metrics_tenant_label
        );
        if let Some(key) = layer.delivery_secrets_key {
            self.delivery_secrets_key = Some(key);
        }
        if let Some(keys) = layer.admin_jwt_keys {
            self.admin_jwt_keys = keys.0;
        }
        if let Some(url) = layer.public_url {
            self.public_url = Some(url);
        }
        if let Some(url) = layer.redis_url {
            // An empty value turns a lower layer's Redis off.
            self.redis_url = (!url.expose().trim().is_empty()).then_some(url);
        }
        if let Some(format) = layer.log_format {
            self.log_format = Some(format);
        }
        if let Some(level) = layer.log_level {
            self.log_level = Some(level);
        }
        Ok(())
    }

    /// Checks values that parse but make no sense, and normalises
    /// `public_url` (no trailing `/`).
    pub fn validate(&mut self) -> Result<(), ConfigError> {
        fn invalid(key: &'static str, reason: impl Into<String>) -> ConfigError {
            ConfigError::Invalid {
                key,
                reason: reason.into(),
            }
        }
        if let Err(reason) = self.metrics_tenant_label.parse::<gateway::TenantLabel>() {
            return Err(invalid("metrics_tenant_label", reason));
        }
        if let Some(url) = &self.public_url {
            let trimmed = url.trim().trim_end_matches('/');
            let rest = trimmed
                .strip_prefix("http://")
                .or_else(|| trimmed.strip_prefix("https://"));
            match rest {
                Some(host) if !host.is_empty() && !host.contains(['?', '#']) => {}
                _ => {
                    return Err(invalid(
                        "public_url",
                        "must be an http:// or https:// URL without query or fragment",
                    ));
                }
            }
            self.public_url = Some(trimmed.to_owned());
        }
        if let Some(url) = &self.database_url {
            let url = url.expose();
            let known = ["sqlite:", "postgres://", "postgresql://"];
            if !known.iter().any(|p| url.starts_with(p)) {
                return Err(invalid(
                    "database_url",
                    "must start with sqlite:, postgres:// or postgresql://",
                ));
            }
        }
        if let Some(url) = &self.redis_url {
            let url = url.expose();
            if url.starts_with("rediss://") {
                return Err(invalid(
                    "redis_url",
                    "TLS to Redis (rediss://) is not built in; reach Redis on a private \
                     network or through a TLS tunnel, with redis://",
                ));
            }
            if !url.starts_with("redis://") && !url.starts_with("unix://") {
                return Err(invalid("redis_url", "must start with redis://"));
            }
        }
        if self.max_body_bytes == 0 {
            return Err(invalid("max_body_bytes", "must be greater than 0"));
        }
        if self.max_count == 0 {
            return Err(invalid("max_count", "must be greater than 0"));
        }
        if self.default_count > self.max_count {
            return Err(invalid(
                "default_count",
                format!(
                    "{} is larger than max_count ({})",
                    self.default_count, self.max_count
                ),
            ));
        }
        if !(MIN_JOB_LEASE_SECS..=MAX_JOB_LEASE_SECS).contains(&self.job_lease_secs) {
            return Err(invalid(
                "job_lease_secs",
                format!("must be between {MIN_JOB_LEASE_SECS} and {MAX_JOB_LEASE_SECS} seconds"),
            ));
        }
        if !(1..=MAX_AUTH_POLL_INTERVAL_SECS).contains(&self.auth_poll_interval_secs) {
            return Err(invalid(
                "auth_poll_interval_secs",
                format!("must be between 1 and {MAX_AUTH_POLL_INTERVAL_SECS} seconds"),
            ));
        }
        if self.db_max_connections == 0 {
            return Err(invalid("db_max_connections", "must be greater than 0"));
        }
        if let Err(e) = self.admin_signing_keys() {
            return Err(invalid("admin_jwt_keys", e.to_string()));
        }
        if !(MIN_ADMIN_TOKEN_TTL_SECS..=MAX_ADMIN_TOKEN_TTL_SECS)
            .contains(&self.admin_token_ttl_secs)
        {
            return Err(invalid(
                "admin_token_ttl_secs",
                format!(
                    "must be between {MIN_ADMIN_TOKEN_TTL_SECS} and {MAX_ADMIN_TOKEN_TTL_SECS} seconds"
                ),
            ));
        }
        if let Err(e) = parse_networks(&self.trusted_proxies) {
            return Err(invalid("trusted_proxies", e));
        }
        if let Err(e) = parse_schedule(&self.delivery_retry_schedule) {
            return Err(invalid("delivery_retry_schedule", e));
        }
        if !(1..=300).contains(&self.delivery_timeout_secs) {
            return Err(invalid(
                "delivery_timeout_secs",
                "must be between 1 and 300",
            ));
        }
        if !(1..=256).contains(&self.delivery_concurrency_per_target) {
            return Err(invalid(
                "delivery_concurrency_per_target",
                "must be between 1 and 256",
            ));
        }
        if self.delivery_disable_after_hours == 0 {
            return Err(invalid(
                "delivery_disable_after_hours",
                "must be greater than 0",
            ));
        }
        let email = self.operator_email.trim();
        if email.is_empty() || !email.contains('@') || email.contains(char::is_whitespace) {
            return Err(invalid("operator_email", "must be an email address"));
        }
        if self.database_url.is_none() {
            let path = self.data_dir.to_string_lossy();
            if self.data_dir.to_str().is_none() || path.contains(['?', '#', '%']) {
                return Err(invalid(
                    "data_dir",
                    "must be valid UTF-8 without '?', '#' or '%' (or set database_url)",
                ));
            }
        }
        Ok(())
    }

    /// The configured admin session keys, checked (empty when none is
    /// configured: see `bootstrap::admin_keys`).
    pub fn admin_signing_keys(
        &self,
    ) -> Result<Vec<tenant_admin::SigningKey>, tenant_admin::AdminConfigError> {
        let keys = self
            .admin_jwt_keys
            .iter()
            .map(|k| tenant_admin::SigningKey::new(k.kid.clone(), k.secret.expose().as_bytes()))
            .collect::<Result<Vec<_>, _>>()?;
        for (i, key) in keys.iter().enumerate() {
            if keys[..i].iter().any(|earlier| earlier.kid() == key.kid()) {
                return Err(tenant_admin::AdminConfigError::DuplicateKid(
                    key.kid().to_owned(),
                ));
            }
        }
        Ok(keys)
    }

    /// True when the database is SQLite (the embedded default or an explicit `sqlite:` URL).
    pub fn is_sqlite(&self) -> bool {
        self.database_url
            .as_ref()
            .is_none_or(|url| url.expose().starts_with("sqlite:"))
    }

    /// The SQLite file used when no `database_url` is set.
    pub fn sqlite_path(&self) -> PathBuf {
        self.data_dir.join(SQLITE_FILE_NAME)
    }

    /// The URL handed to the store: `database_url`, or the SQLite file in
    /// `data_dir` (which must exist, see [`Config::prepare_data_dir`]).
    pub fn store_url(&self) -> Secret {
        match &self.database_url {
            Some(url) => url.clone(),
            None => {
                let path =
                    std::path::absolute(self.sqlite_path()).unwrap_or_else(|_| self.sqlite_path());
                Secret::new(format!("sqlite://{}?mode=rwc", path.display()))
            }
        }
    }

    /// Prepares `data_dir` when the embedded SQLite database is in use: the
    /// directory is created readable by this user only (0700: it holds every
    /// tenant's directory and the admin session key), and so is a fresh
    /// database file (0600, created empty here because SQLite would create
    /// it 0644; SQLite gives its `-wal` and `-shm` files the database's
    /// mode). Existing ones are left as they are; what other local accounts
    /// can read is returned as warnings to log.
    pub fn prepare_data_dir(&self) -> std::io::Result<Vec<String>> {
        if self.database_url.is_some() {
            return Ok(Vec::new());
        }
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt as _;
            builder.mode(0o700);
        }
        builder.create(&self.data_dir)?;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        match options.open(self.sqlite_path()) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        Ok(self.data_dir_exposure())
    }

    /// Warnings for the data directory and the database files when group or
    /// other users have any access to them.
    fn data_dir_exposure(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let db = self.sqlite_path();
            let mut paths = vec![(self.data_dir.clone(), "700")];
            for suffix in ["", "-wal", "-shm"] {
                let mut name = db.clone().into_os_string();
                name.push(suffix);
                paths.push((PathBuf::from(name), "600"));
            }
            for (path, wanted) in paths {
                let Ok(meta) = std::fs::metadata(&path) else {
                    continue;
                };
                let mode = meta.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    warnings.push(format!(
                        "{} is accessible to other local accounts (mode {mode:04o}); \
                         it holds every tenant's directory: chmod {wanted} it",
                        path.display()
                    ));
                }
            }
        }
        warnings
    }

    /// The database URL with any password replaced, for logs and messages.
    pub fn database_display(&self) -> String {
        match &self.database_url {
            Some(url) => redact_url(url.expose()),
            None => format!("sqlite {}", self.sqlite_path().display()),
        }
    }

    /// Store settings from this configuration.
    pub fn store_options(&self) -> store::StoreOptions {
        store::StoreOptions {
            max_connections: self.db_max_connections,
            sqlite_synchronous_full: self.sqlite_synchronous == SqliteSynchronous::Full,
            job_lease: Duration::from_secs(self.job_lease_secs),
            ..store::StoreOptions::default()
        }
    }

    /// Gateway settings from this configuration.
    pub fn gateway_config(&self) -> gateway::GatewayConfig {
        gateway::GatewayConfig {
            public_url: self.public_url.clone(),
            max_body_bytes: self.max_body_bytes,
            default_count: self.default_count,
            max_count: self.max_count,
            rate_limit_per_second: self.rate_limit_per_second,
            rate_limit_burst: self.rate_limit_burst,
            token_cache_ttl: Duration::from_secs(self.token_cache_ttl_secs),
            auth_poll_interval: Duration::from_secs(self.auth_poll_interval_secs),
            group_patch_response: match self.group_patch_response {
                GroupPatchResponse::Auto => gateway::GroupPatchResponse::Auto,
                GroupPatchResponse::Resource => gateway::GroupPatchResponse::Resource,
                GroupPatchResponse::NoContent => gateway::GroupPatchResponse::NoContent,
            },
            group_patch_no_content_above: self.group_patch_no_content_above,
            metrics_tenant_label: self.tenant_label(),
            ..gateway::GatewayConfig::default()
        }
    }

    /// The metrics' tenant label mode (`validate` refused anything else).
    pub fn tenant_label(&self) -> gateway::TenantLabel {
        self.metrics_tenant_label.parse().unwrap_or_default()
    }

    /// The reverse proxies trusted to name a login's client.
    pub fn trusted_proxy_networks(&self) -> Vec<ipnet::IpNet> {
        parse_networks(&self.trusted_proxies).unwrap_or_default()
    }

    /// The delivery worker's settings.
    pub fn delivery_config(&self) -> sync_worker::DeliveryConfig {
        let days = |d: u32| Duration::from_secs(u64::from(d) * 86_400);
        sync_worker::DeliveryConfig {
            retry_schedule: parse_schedule(&self.delivery_retry_schedule).unwrap_or_default(),
            timeout: Duration::from_secs(self.delivery_timeout_secs),
            disable_after: Duration::from_secs(self.delivery_disable_after_hours * 3600),
            per_target_concurrency: self.delivery_concurrency_per_target,
            allow_private_targets: self.delivery_allow_private_targets,
            attempt_retention: days(self.delivery_attempt_retention_days),
            event_retention: days(self.event_retention_days),
            ..sync_worker::DeliveryConfig::default()
        }
    }

    /// The base URL clients use: `public_url`, else `http://` and the
    /// address (an unspecified bind address is shown as loopback, which is
    /// at least reachable from this machine).
    pub fn public_base_url(&self, bound: SocketAddr) -> String {
        if let Some(url) = &self.public_url {
            return url.clone();
        }
        let shown = match bound.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => {
                SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), bound.port())
            }
            IpAddr::V6(ip) if ip.is_unspecified() => {
                SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), bound.port())
            }
            _ => bound,
        };
        format!("http://{shown}")
    }
}

fn read_secret_file(path: &Path) -> Result<Secret, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::SecretFile {
        path: path.to_owned(),
        source,
    })?;
    // Secret files usually end with a newline (`echo ... > file`).
    Ok(Secret::new(text.trim_end_matches(['\n', '\r']).to_owned()))
}

/// Replaces the password in a URL's user-info (`postgres://u:pw@h/db` →
/// `postgres://u:***@h/db`); everything else is kept so logs stay useful.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let authority_start = scheme_end + 3;
    let rest = &url[authority_start..];
    let authority_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_len];
    let Some(at) = authority.rfind('@') else {
        return url.to_owned();
    };
    let userinfo = &authority[..at];
    let redacted_userinfo = match userinfo.find(':') {
        Some(colon) => format!("{}:***", &userinfo[..colon]),
        None => userinfo.to_owned(),
    };
    format!(
        "{}{}{}",
        &url[..authority_start],
        redacted_userinfo,
        &url[authority_start + at..]
    )
}

/// Parses comma-separated addresses (`10.0.0.7`, `::1`) and CIDR ranges
/// (`10.0.0.0/8`); an address is a range of one.
pub fn parse_networks(text: &str) -> Result<Vec<ipnet::IpNet>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|part| {
            part.parse::<ipnet::IpNet>()
                .or_else(|_| part.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map(|net| net.trunc())
                .map_err(|_| {
                    format!(
                        "{part:?} is not an IP address or CIDR range (e.g. 10.0.0.7, 10.0.0.0/8)"
                    )
                })
        })
        .collect()
}

/// Parses a retry schedule: comma-separated waits, each a number with a
/// unit (`s`, `m`, `h`, `d`), e.g. `5s,5m,30m,2h`. An empty schedule means
/// no retries.
pub fn parse_schedule(text: &str) -> Result<Vec<Duration>, String> {
    let mut out = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let split = part
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(part.len());
        let (number, unit) = part.split_at(split);
        let n: u64 = number
            .parse()
            .map_err(|_| format!("{part:?} is not a number with a unit (e.g. 30s, 5m, 2h)"))?;
        let scale = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            _ => return Err(format!("{part:?} needs a unit: s, m, h or d")),
        };
        let secs = n
            .checked_mul(scale)
            .filter(|s| *s <= 30 * 86_400)
            .ok_or_else(|| format!("{part:?} is longer than 30 days"))?;
        out.push(Duration::from_secs(secs));
    }
    if out.len() > 50 {
        return Err("at most 50 retries".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_schedules_parse_with_units() {
        let s = |n: u64| Duration::from_secs(n);
        assert_eq!(
            parse_schedule("5s, 5m,30m,2h,1d"),
            Ok(vec![s(5), s(300), s(1800), s(7200), s(86_400)])
        );
        assert_eq!(parse_schedule(""), Ok(vec![]));
        assert!(parse_schedule("5").is_err());
        assert!(parse_schedule("5x").is_err());
        assert!(parse_schedule("-5s").is_err());
        assert!(parse_schedule("31d").is_err());
        assert!(parse_schedule("99999999999999999999s").is_err());
        let default = Config::default();
        assert_eq!(
            default.delivery_config().retry_schedule,
            sync_worker::DeliveryConfig::default().retry_schedule
        );
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn write_file(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write temp file");
        path
    }

    #[test]
    fn defaults_without_sources() {
        let loaded = Config::load(&Sources::default()).expect("defaults load");
        let config = loaded.config;
        assert!(loaded.warnings.is_empty());
        assert_eq!(config.listen, "127.0.0.1:8080".parse().expect("addr"));
        assert_eq!(config.data_dir, PathBuf::from("./data"));
        assert!(config.is_sqlite());
        assert_eq!(config.provisioning_log_retention_days, 30);
        assert_eq!(config.operator_email, "admin@localhost");
        assert_eq!(config.sqlite_synchronous, SqliteSynchronous::Full);
        assert!(
            config
                .store_url()
                .expose()
                .ends_with("/data/scimgate.db?mode=rwc")
        );
    }

    #[test]
    fn defaults_are_the_gateway_and_store_defaults() {
        let config = Config::default();
        let gateway = gateway::GatewayConfig::default();
        let ours = config.gateway_config();
        assert_eq!(ours.max_body_bytes, gateway.max_body_bytes);
        assert_eq!(ours.default_count, gateway.default_count);
        assert_eq!(ours.max_count, gateway.max_count);
        assert_eq!(ours.rate_limit_per_second, gateway.rate_limit_per_second);
        assert_eq!(ours.rate_limit_burst, gateway.rate_limit_burst);
        assert_eq!(ours.token_cache_ttl, gateway.token_cache_ttl);
        assert_eq!(
            config.store_options().max_connections,
            store::StoreOptions::default().max_connections
        );
    }

    #[test]
    fn group_patch_response_is_configurable_and_reaches_the_gateway() {
        assert_eq!(
            Config::default().gateway_config().group_patch_response,
            gateway::GroupPatchResponse::Auto
        );
        assert_eq!(
            Config::default()
                .gateway_config()
                .group_patch_no_content_above,
            1_000
        );
        let sources = Sources {
            env: env(&[
                ("SCIMGATE_GROUP_PATCH_RESPONSE", "resource"),
                ("SCIMGATE_GROUP_PATCH_NO_CONTENT_ABOVE", "50"),
            ]),
            ..Sources::default()
        };
        let loaded = Config::load(&sources).expect("load");
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        let gw = loaded.config.gateway_config();
        assert_eq!(
            gw.group_patch_response,
            gateway::GroupPatchResponse::Resource
        );
        assert_eq!(gw.group_patch_no_content_above, 50);
        let sources = Sources {
            env: env(&[("SCIMGATE_GROUP_PATCH_RESPONSE", "no_content")]),
            ..Sources::default()
        };
        let c = Config::load(&sources).expect("load").config;
        assert_eq!(c.group_patch_response, GroupPatchResponse::NoContent);
        assert_eq!(
            c.gateway_config().group_patch_response,
            gateway::GroupPatchResponse::NoContent
        );
        let bad = Sources {
            env: env(&[("SCIMGATE_GROUP_PATCH_RESPONSE", "sometimes")]),
            ..Sources::default()
        };
        let e = Config::load(&bad).expect_err("unknown value");
        let e = e.to_string();
        assert!(
            e.contains("SCIMGATE_GROUP_PATCH_RESPONSE") && e.contains("no_content"),
            "names the key and the accepted values: {e}"
        );
    }

    #[test]
    fn the_tenant_label_mode_is_configurable_and_checked() {
        assert_eq!(
            Config::default().gateway_config().metrics_tenant_label,
            gateway::TenantLabel::All
        );
        for (text, mode) in [
            ("off", gateway::TenantLabel::Off),
            ("top:25", gateway::TenantLabel::Top(25)),
            ("all", gateway::TenantLabel::All),
        ] {
            let sources = Sources {
                env: env(&[("SCIMGATE_METRICS_TENANT_LABEL", text)]),
                ..Sources::default()
            };
            let c = Config::load(&sources).expect("load").config;
            assert_eq!(c.gateway_config().metrics_tenant_label, mode, "{text}");
        }
        for bad in ["top:0", "top:", "some", "top:x"] {
            let sources = Sources {
                env: env(&[("SCIMGATE_METRICS_TENANT_LABEL", bad)]),
                ..Sources::default()
            };
            let e = Config::load(&sources).expect_err(bad).to_string();
            assert!(
                e.contains("metrics_tenant_label") && e.contains("top:N"),
                "{e}"
            );
        }
    }

    #[test]
    fn file_then_env_then_flags() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = write_file(
            &dir,
            "c.toml",
            "listen = \"127.0.0.1:1001\"\nmax_count = 10\ndefault_count = 5\n\
             public_url = \"https://file.example/\"\nlog_level = \"debug\"\n",
        );
        let sources = Sources {
            file: Some(file),
            env: env(&[
                ("SCIMGATE_LISTEN", "127.0.0.1:1002"),
                ("SCIMGATE_MAX_COUNT", "20"),
                ("SCIMGATE_LOG_LEVEL", "info,store=debug"),
                ("PATH", "/bin"),
            ]),
            flags: Flags {
                listen: Some("127.0.0.1:1003".parse().expect("addr")),
                ..Flags::default()
            },
        };
        let loaded = Config::load(&sources).expect("load");
        let c = loaded.config;
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        assert_eq!(c.listen.port(), 1003, "flag wins");
        assert_eq!(c.max_count, 20, "env beats file");
        assert_eq!(c.default_count, 5, "file beats default");
        assert_eq!(c.public_url.as_deref(), Some("https://file.example"));
        assert_eq!(c.log_level.as_deref(), Some("info,store=debug"));
    }

    #[test]
    fn unknown_keys_warn_not_fail() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = write_file(&dir, "c.toml", "lisen = \"x\"\n[gateway]\na = 1\n");
        let sources = Sources {
            file: Some(file),
            env: env(&[
                ("SCIMGATE_MAX_CONUT", "3"),
                ("SCIMGATE_CONFIG", "ignored-here"),
            ]),
            flags: Flags::default(),
        };
        let loaded = Config::load(&sources).expect("load");
        let joined = loaded.warnings.join("\n");
        assert!(joined.contains("`lisen`"), "{joined}");
        assert!(joined.contains("`gateway`"), "{joined}");
        assert!(joined.contains("SCIMGATE_MAX_CONUT"), "{joined}");
        assert!(!joined.contains("SCIMGATE_CONFIG"), "{joined}");
        assert_eq!(loaded.warnings.len(), 3);
    }

    #[test]
    fn bad_value_names_key_and_source() {
        let sources = Sources {
            env: env(&[("SCIMGATE_MAX_COUNT", "lots")]),
            ..Sources::default()
        };
        let err = Config::load(&sources).expect_err("must fail").to_string();
        assert!(err.contains("SCIMGATE_MAX_COUNT"), "{err}");
    }

    #[test]
    fn missing_config_file_is_an_error() {
        let sources = Sources {
            file: Some(PathBuf::from("/nonexistent/scimgate.toml")),
            ..Sources::default()
        };
        assert!(matches!(
            Config::load(&sources),
            Err(ConfigError::FileMissing(_))
        ));
    }

    #[test]
    fn database_url_file_is_read_and_layers_override_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let secret = write_file(&dir, "db", "postgres://app:s3cret@db:5432/scim\n");
        let file = write_file(
            &dir,
            "c.toml",
            &format!("database_url_file = {:?}\n", secret.display().to_string()),
        );
        let from_file = Sources {
            file: Some(file.clone()),
            ..Sources::default()
        };
        let c = Config::load(&from_file).expect("load").config;
        assert_eq!(
            c.database_url.as_ref().map(Secret::expose),
            Some("postgres://app:s3cret@db:5432/scim")
        );
        assert!(!c.is_sqlite());
        assert_eq!(c.database_display(), "postgres://app:***@db:5432/scim");
        assert!(!format!("{c:?}").contains("s3cret"));

        // A higher layer's database_url replaces a lower layer's file.
        let overridden = Sources {
            file: Some(file),
            env: env(&[("SCIMGATE_DATABASE_URL", "sqlite:///tmp/x.db")]),
            ..Sources::default()
        };
        let c = Config::load(&overridden).expect("load").config;
        assert_eq!(
            c.database_url.as_ref().map(Secret::expose),
            Some("sqlite:///tmp/x.db")
        );
        assert!(c.is_sqlite());
    }

    #[test]
    fn both_database_keys_in_one_layer_is_an_error() {
        let sources = Sources {
            env: env(&[
                ("SCIMGATE_DATABASE_URL", "postgres://h/db"),
                ("SCIMGATE_DATABASE_URL_FILE", "/run/secrets/db"),
            ]),
            ..Sources::default()
        };
        assert!(matches!(
            Config::load(&sources),
            Err(ConfigError::DatabaseUrlTwice(_))
        ));
    }

    #[test]
    fn invalid_values_are_refused() {
        for (key, value) in [
            ("SCIMGATE_PUBLIC_URL", "ftp://x"),
            ("SCIMGATE_DATABASE_URL", "mysql://x"),
            ("SCIMGATE_MAX_COUNT", "0"),
            ("SCIMGATE_DEFAULT_COUNT", "1000000"),
            ("SCIMGATE_OPERATOR_EMAIL", "nobody"),
            ("SCIMGATE_LOG_FORMAT", "xml"),
            ("SCIMGATE_SQLITE_SYNCHRONOUS", "off"),
            ("SCIMGATE_JOB_LEASE_SECS", "4"),
            ("SCIMGATE_JOB_LEASE_SECS", "3601"),
            ("SCIMGATE_AUTH_POLL_INTERVAL_SECS", "0"),
            ("SCIMGATE_AUTH_POLL_INTERVAL_SECS", "61"),
        ] {
            let sources = Sources {
                env: env(&[(key, value)]),
                ..Sources::default()
            };
            assert!(Config::load(&sources).is_err(), "{key}={value} accepted");
        }
    }

    #[test]
    fn redis_url_takes_plain_redis_only_and_stays_secret() {
        let load = |value: &str| {
            Config::load(&Sources {
                env: env(&[("SCIMGATE_REDIS_URL", value)]),
                ..Sources::default()
            })
        };
        let c = load("redis://:s3cret-pass@127.0.0.1:6379/2")
            .expect("a redis:// URL")
            .config;
        assert_eq!(
            c.redis_url.as_ref().map(|u| u.expose().to_owned()),
            Some("redis://:s3cret-pass@127.0.0.1:6379/2".to_owned())
        );
        assert!(!format!("{c:?}").contains("s3cret-pass"), "never in Debug");
        // Empty: no Redis, as without the setting.
        assert!(load("").expect("empty").config.redis_url.is_none());
        for (value, needle) in [
            ("rediss://cache.internal:6380", "TLS to Redis"),
            ("http://127.0.0.1:6379", "redis://"),
            ("127.0.0.1:6379", "redis://"),
        ] {
            let err = load(value).expect_err(value).to_string();
            assert!(err.contains("redis_url"), "{value}: {err}");
            assert!(err.contains(needle), "{value}: {err}");
            assert!(
                !err.contains("cache.internal"),
                "{value}: the URL is not echoed: {err}"
            );
        }
    }

    #[test]
    fn admin_jwt_keys_from_file_and_environment() {
        let a = "a".repeat(32);
        let b = "b:with-colon".repeat(4);
        let dir = tempfile::tempdir().expect("tempdir");
        let file = write_file(
            &dir,
            "c.toml",
            &format!(
                "admin_token_ttl_secs = 600\n\
                 admin_jwt_keys = [{{ kid = \"2026-01\", secret = \"{a}\" }}, \
                 {{ kid = \"2025-12\", secret = \"{b}\" }}]\n"
            ),
        );
        let from_file = Sources {
            file: Some(file.clone()),
            ..Sources::default()
        };
        let c = Config::load(&from_file).expect("load").config;
        assert_eq!(c.admin_token_ttl_secs, 600);
        let keys = c.admin_signing_keys().expect("valid keys");
        assert_eq!(
            keys.iter().map(|k| k.kid()).collect::<Vec<_>>(),
            ["2026-01", "2025-12"]
        );
        assert_eq!(keys[1].secret(), b.as_bytes());
        assert!(!format!("{c:?}").contains(&a), "secrets never in Debug");

        // The environment's spelling replaces the file's list.
        let env_form = Sources {
            file: Some(file),
            env: env(&[("SCIMGATE_ADMIN_JWT_KEYS", &format!("new:{b}, old:{a}"))]),
            ..Sources::default()
        };
        let c = Config::load(&env_form).expect("load").config;
        let keys = c.admin_signing_keys().expect("valid keys");
        assert_eq!(
            keys.iter().map(|k| k.kid()).collect::<Vec<_>>(),
            ["new", "old"]
        );
        assert_eq!(keys[0].secret(), b.as_bytes());

        for (value, needle) in [
            ("k:short", "at least 32 bytes"),
            (&format!("k:{a},k:{a}"), "twice"),
            (&format!("bad kid:{a}"), "must be 1 to 64"),
            ("no-colon", "kid:secret"),
        ] {
            let sources = Sources {
                env: env(&[("SCIMGATE_ADMIN_JWT_KEYS", value)]),
                ..Sources::default()
            };
            let e = Config::load(&sources).expect_err(value).to_string();
            assert!(e.contains(needle), "{value}: {e}");
            assert!(!e.contains(&a), "the secret is not echoed: {e}");
        }
        let sources = Sources {
            env: env(&[("SCIMGATE_ADMIN_TOKEN_TTL_SECS", "5")]),
            ..Sources::default()
        };
        assert!(Config::load(&sources).is_err());
    }

    #[test]
    fn lowering_max_count_lowers_the_default_page() {
        let sources = Sources {
            env: env(&[("SCIMGATE_MAX_COUNT", "2")]),
            ..Sources::default()
        };
        let c = Config::load(&sources).expect("load").config;
        assert_eq!((c.default_count, c.max_count), (2, 2));
    }

    #[test]
    fn empty_env_values_are_unset() {
        let sources = Sources {
            env: env(&[("SCIMGATE_PUBLIC_URL", ""), ("SCIMGATE_MAX_COUNT", "")]),
            ..Sources::default()
        };
        let c = Config::load(&sources).expect("load").config;
        assert_eq!(c.public_url, None);
        assert_eq!(c.max_count, Config::default().max_count);
    }

    #[test]
    fn public_url_defaults_to_the_bound_address() {
        let c = Config::default();
        let bound: SocketAddr = "0.0.0.0:9000".parse().expect("addr");
        assert_eq!(c.public_base_url(bound), "http://127.0.0.1:9000");
        let bound: SocketAddr = "127.0.0.1:9001".parse().expect("addr");
        assert_eq!(c.public_base_url(bound), "http://127.0.0.1:9001");
        let bound: SocketAddr = "[::]:9002".parse().expect("addr");
        assert_eq!(c.public_base_url(bound), "http://[::1]:9002");
    }

    #[test]
    fn redacts_passwords_only() {
        assert_eq!(
            redact_url("postgres://u:p@ss@h:5432/d?sslmode=require"),
            "postgres://u:***@h:5432/d?sslmode=require"
        );
        assert_eq!(redact_url("postgres://u@h/d"), "postgres://u@h/d");
        assert_eq!(redact_url("postgres://h/d?x=a@b"), "postgres://h/d?x=a@b");
        assert_eq!(redact_url("sqlite://./x.db"), "sqlite://./x.db");
        assert_eq!(redact_url("not a url"), "not a url");
    }

    #[test]
    fn trusted_proxies_are_addresses_and_ranges() {
        let sources = Sources {
            env: env(&[(
                "SCIMGATE_TRUSTED_PROXIES",
                " 10.1.2.3, 192.168.0.0/16 ,::1,",
            )]),
            ..Sources::default()
        };
        let c = Config::load(&sources).expect("load").config;
        let nets = c.trusted_proxy_networks();
        let shown: Vec<String> = nets.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["10.1.2.3/32", "192.168.0.0/16", "::1/128"]);
        let inside: std::net::IpAddr = "192.168.40.2".parse().expect("address");
        assert!(nets.iter().any(|n| n.contains(&inside)));
        assert!(Config::default().trusted_proxy_networks().is_empty());

        for bad in ["10.0.0.0/33", "proxy.internal", "10.0.0.1;10.0.0.2"] {
            let sources = Sources {
                env: env(&[("SCIMGATE_TRUSTED_PROXIES", bad)]),
                ..Sources::default()
            };
            let e = Config::load(&sources).expect_err(bad).to_string();
            assert!(e.contains("trusted_proxies"), "{bad}: {e}");
            assert!(e.contains("CIDR"), "{bad}: {e}");
        }
    }

    #[test]
    fn example_file_sets_every_key_and_docs_mention_them() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let example = root.join("scimgate.example.toml");
        let text = std::fs::read_to_string(&example).expect("example file");
        // Every key appears (commented out or not) in the example file.
        for key in KEYS {
            assert!(
                text.lines().any(|l| {
                    let l = l.trim_start_matches(['#', ' ']);
                    l.starts_with(&format!("{key} ="))
                }),
                "{key} missing from scimgate.example.toml"
            );
        }
        // The file as shipped loads without warnings.
        let loaded = Config::load(&Sources {
            file: Some(example),
            ..Sources::default()
        })
        .expect("example loads");
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);

        let docs = std::fs::read_to_string(root.join("docs/configuration.md")).expect("docs");
        for key in KEYS {
            assert!(docs.contains(&format!("`{key}`")), "{key} not documented");
            let env = format!("`{ENV_PREFIX}{}`", key.to_ascii_uppercase());
            assert!(docs.contains(&env), "{env} not documented");
        }
    }
}
