//! The SCIM 2.0 service (RFC 7644) on actix-web: tenant and token
//! resolution, routing, limits, the provisioning log and metrics.
//!
//! The gateway is a thin translation. Protocol rules live in `scim`, data
//! in `store`; this crate extracts (token → tenant → [`TenantStore`], body,
//! query), calls one function per operation, and maps the result to HTTP.
//!
//! Routes, mounted twice with identical behaviour:
//! - `/scim/v2/...`: the tenant is the token's;
//! - `/tenants/{slug}/scim/v2/...`: the token must belong to `{slug}`
//!   (else 401, so the URL reveals nothing about other tenants).
//!
//! Under each: `/Users`, `/Users/{id}`, `/Users/.search`, `/Groups`,
//! `/Groups/{id}`, `/Groups/.search`, `/ServiceProviderConfig`,
//! `/ResourceTypes[/{name}]`, `/Schemas[/{urn}]`; plus `/healthz` and
//! `/readyz` at the root ([`Gateway::configure`]; [`Gateway::configure_scim`]
//! leaves them to the caller's [`Readiness`]).
//!
//! **Database down** (PostgreSQL). The background auth-revision poll
//! doubles as the database check: when it fails as unreachable, or gets no
//! answer within [`GatewayConfig::database_check_timeout`], every SCIM
//! request is answered at once with 503 and a SCIM error body (with
//! `Retry-After`) instead of waiting for a connection the pool cannot make;
//! the first poll that succeeds again ends it. Requests already waiting
//! when the database goes away end with 503 when the pool gives up.
//!
//! Decisions where RFC 7644 leaves room (each is also noted where it is
//! implemented):
//! - **PATCH responses**: a User comes back 200 with the resource (with
//!   `groups`). A Group comes back 200 with the resource, `members`
//!   included unless `attributes`/`excludedAttributes` leave them out,
//!   except (by default, [`GroupPatchResponse::Auto`]) a PATCH whose every
//!   operation touches only `members`, on a group of more than
//!   [`GatewayConfig::group_patch_no_content_above`] members, without
//!   `attributes`/`excludedAttributes`: that gets 204 with the new `ETag`
//!   (§3.5.2 allows it; Microsoft asks for it), so building a large group a
//!   few members at a time costs O(change) per request, reply included.
//! - **Rendered attributes**: `members` (Groups) and `groups` (Users) are
//!   always present when shown, as `[]` when empty, as Entra's and Okta's
//!   examples show them; member `$ref`s are filled in when the type is known.
//! - **If-Match**: weak comparison (as `scim::meta` explains); `*` means any
//!   current version; a header that matches nothing (garbage included) is
//!   412. **If-None-Match** on GET of one resource answers 304.
//! - **Content types**: `application/scim+json`, `application/json` or none
//!   are accepted; anything else is 400 `invalidSyntax`.
//! - **Discovery endpoints** ignore `filter` (RFC 7644 §4 lets a server
//!   refuse it; ignoring it breaks no client).
//! - **Authentication failures** are 401 for a missing/unknown/revoked/
//!   expired token and for a token used on another tenant's slug URL; 403
//!   for a missing scope and for a suspended tenant.
//! - **Rate limiting** happens after authentication (the limit is per
//!   tenant); refused requests are not written to the provisioning log.
//!
//! [`TenantStore`]: store::TenantStore

use std::sync::Arc;
use std::time::Duration;

use actix_web::middleware::from_fn;
use actix_web::web::{self, ServiceConfig};
use store::Store;
use tokio::task::JoinHandle;

mod auth;
mod body;
mod error;
mod handlers;
mod observe;
mod ops;
mod provlog;
mod query;
mod render;

pub use auth::{AnyScope, Authorized, Requirement, ScimRead, ScimWrite};
pub use error::{ApiError, SCIM_CONTENT_TYPE};
pub use handlers::{READINESS_CHECK_TIMEOUT, Readiness, ReadinessReport};
pub use observe::{OTHER_TENANTS, TOP_REVIEW, TenantLabel, current_request_id};

/// Settings of the SCIM service.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// The externally visible origin (`https://scim.example.com`, optionally
    /// with a path prefix) used for `Location` and `meta.location`; `None`
    /// takes scheme and host from the request (and its `Forwarded` /
    /// `X-Forwarded-*` headers), so set it behind untrusted proxies.
    pub public_url: Option<String>,
    /// Largest accepted request body; larger ones get 413.
    pub max_body_bytes: usize,
    /// Page size when a list request names no `count`.
    pub default_count: u64,
    /// Largest page size; larger `count`s are capped, not refused.
    pub max_count: u64,
    /// Sustained requests per second per tenant (0 disables the limit).
    pub rate_limit_per_second: u32,
    /// Requests a tenant may make in a burst above the sustained rate.
    pub rate_limit_burst: u32,
    /// How long a verified token is trusted without asking the store.
    pub token_cache_ttl: Duration,
    /// How often the store's auth revision is polled to pick up
    /// revocations and suspensions made elsewhere; the same poll tells
    /// whether the database is reachable.
    pub auth_poll_interval: Duration,
    /// On PostgreSQL, how long that poll may wait for an answer before the
    /// database counts as unreachable and SCIM requests are answered 503
    /// at once. (An embedded SQLite file cannot become unreachable: there
    /// the poll never stops requests.)
    pub database_check_timeout: Duration,
    /// Budget for filter strings.
    pub filter_limits: scim::filter::Limits,
    /// What a successful `PATCH /Groups/{id}` answers.
    pub group_patch_response: GroupPatchResponse,
    /// Under [`GroupPatchResponse::Auto`], member-only PATCHes of groups
    /// with more members than this answer 204.
    pub group_patch_no_content_above: u64,
    /// How the metrics' `tenant` label is filled (bounds its cardinality).
    pub metrics_tenant_label: TenantLabel,
}

/// The answer to a successful `PATCH /Groups/{id}` (RFC 7644 §3.5.2 allows
/// 200 with the resource or 204).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GroupPatchResponse {
    /// By size: `204 No Content` with the new `ETag` when every operation
    /// touches only `members`, the group has more than
    /// [`GatewayConfig::group_patch_no_content_above`] members and the
    /// request names no `attributes`/`excludedAttributes`; otherwise as
    /// [`GroupPatchResponse::Resource`]. A full reply per member change
    /// makes building a group of n members O(n²) in work and bytes sent.
    #[default]
    Auto,
    /// Always `200 OK` with the group, members included unless the
    /// request's `attributes`/`excludedAttributes` leave them out.
    Resource,
    /// `204 No Content` with the new `ETag`: no member list is read or sent,
    /// which matters for large groups that IdPs change a few members at a
    /// time (Microsoft's provisioning tutorial answers these with 204).
    NoContent,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            public_url: None,
            max_body_bytes: 1 << 20,
            default_count: 100,
            max_count: 1000,
            rate_limit_per_second: 200,
            rate_limit_burst: 400,
            token_cache_ttl: Duration::from_secs(60),
            auth_poll_interval: Duration::from_secs(2),
            database_check_timeout: Duration::from_secs(3),
            filter_limits: scim::filter::Limits::default(),
            group_patch_response: GroupPatchResponse::Auto,
            group_patch_no_content_above: DEFAULT_GROUP_PATCH_NO_CONTENT_ABOVE,
            metrics_tenant_label: TenantLabel::All,
        }
    }
}

/// The default of [`GatewayConfig::group_patch_no_content_above`]: above
/// this a full reply is tens of kilobytes per member change.
pub const DEFAULT_GROUP_PATCH_NO_CONTENT_ABOVE: u64 = 1_000;

/// Why the gateway could not be built.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// A metric could not be registered (e.g. registered twice).
    #[error("cannot register metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// The configuration is unusable.
    #[error("invalid gateway configuration: {0}")]
    Config(String),
}

/// State shared by every worker and request.
pub(crate) struct Shared {
    pub(crate) store: Store,
    pub(crate) config: GatewayConfig,
    pub(crate) metrics: observe::Metrics,
    pub(crate) tokens: auth::TokenCache,
    pub(crate) limiter: auth::TenantLimiter,
    /// The deployment's Redis, if any (notices of auth changes).
    pub(crate) redis: Option<cluster::Redis>,
    pub(crate) log: provlog::Queue,
    /// Whether the database answered the last background check.
    pub(crate) database: DatabaseState,
    /// The metrics' `tenant` label values.
    pub(crate) tenant_labels: observe::TenantLabels,
    /// The quarantine guard's counts, flushed to the store every
    /// [`GUARD_FLUSH`].
    pub(crate) guard: observe::GuardTally,
    /// Set once by [`Gateway::shutdown`]; background tasks watch it.
    pub(crate) stop: tokio::sync::watch::Sender<bool>,
}

/// The SCIM service; cheap to clone.
#[derive(Clone)]
pub struct Gateway {
    shared: web::Data<Shared>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// Builds the service over `store`, registering its metrics in `metrics`.
    pub fn new(
        store: Store,
        config: GatewayConfig,
        metrics: &prometheus::Registry,
    ) -> Result<Gateway, GatewayError> {
        Gateway::with_redis(store, config, metrics, None)
    }

    /// As [`Gateway::new`], sharing with the deployment's other instances
    /// through `redis`: the per-tenant rate limit, and notices of token and
    /// tenant changes (the token cache is cleared when one arrives, and
    /// after every reconnection to Redis).
    pub fn with_redis(
        store: Store,
        config: GatewayConfig,
        metrics: &prometheus::Registry,
        redis: Option<cluster::Redis>,
    ) -> Result<Gateway, GatewayError> {
        if config.max_count == 0 {
            return Err(GatewayError::Config("max_count must be at least 1".into()));
        }
        if config.max_body_bytes == 0 {
            return Err(GatewayError::Config(
                "max_body_bytes must be at least 1".into(),
            ));
        }
        let shared = Shared {
            metrics: observe::Metrics::register(metrics)?,
            tokens: auth::TokenCache::new(config.token_cache_ttl),
            limiter: auth::TenantLimiter::new(
                config.rate_limit_per_second,
                config.rate_limit_burst,
                redis.clone().map(cluster::limit::SharedLimiter::new),
            ),
            redis,
            log: provlog::Queue::new(),
            database: DatabaseState::register(metrics)?,
            tenant_labels: observe::TenantLabels::new(config.metrics_tenant_label),
            guard: observe::GuardTally::default(),
            stop: tokio::sync::watch::channel(false).0,
            store,
            config,
        };
        Ok(Gateway {
            shared: web::Data::from(Arc::new(shared)),
        })
    }

    /// Mounts every SCIM route, `/healthz` and `/readyz` (checking the
    /// database), with the request id / tracing / metrics middleware
    /// applied inside.
    pub fn configure(&self, cfg: &mut ServiceConfig) {
        Readiness::new()
            .with_database(self.shared.store.clone())
            .configure(cfg);
        self.configure_scim(cfg);
    }

    /// Mounts the SCIM routes only, for a process that mounts its own
    /// [`Readiness`] (with the checks of everything it depends on).
    pub fn configure_scim(&self, cfg: &mut ServiceConfig) {
        cfg.app_data(self.shared.clone());
        cfg.service(scim_scope("/scim/v2"));
        cfg.service(scim_scope("/tenants/{slug}/scim/v2"));
    }

    /// Starts the background work: the auth-revision poller (clears the
    /// token cache when revocations or suspensions happen anywhere) and the
    /// provisioning-log writer. Runs until aborted; call once.
    pub fn spawn_background(&self) -> JoinHandle<()> {
        let shared = self.shared.clone();
        let receiver = shared.log.take_receiver();
        let stop = shared.stop.subscribe();
        tokio::spawn(async move {
            let writer = async {
                match receiver {
                    Some(rx) => provlog::run_writer(rx, stop).await,
                    None => tracing::warn!(
                        "spawn_background called twice; the provisioning-log writer already runs"
                    ),
                }
            };
            tokio::join!(
                writer,
                flush_guard(shared.clone()),
                poll_auth_revision(shared.clone()),
                announce_commits(shared.clone()),
                listen_for_notices(shared)
            );
        })
    }

    /// Asks the background tasks to finish: the provisioning-log writer stops
    /// taking entries, writes every entry already queued and returns; the
    /// auth-revision poller stops. Call it once the HTTP server has stopped
    /// (so no handler still queues entries), then await the handle
    /// [`Gateway::spawn_background`] returned.
    pub fn shutdown(&self) {
        self.shared.stop.send_replace(true);
    }

    /// Verifies a SCIM bearer token through this gateway's cache (argon2
    /// at most once per token per cache lifetime), for other services of
    /// the process that accept SCIM tokens (the admin API's event feed).
    pub async fn authenticate(
        &self,
        token: &str,
    ) -> Result<Option<store::Authenticated>, store::StoreError> {
        if !self.shared.database.is_reachable() {
            return Err(store::StoreError::Unavailable(
                "the database is unreachable".into(),
            ));
        }
        self.shared
            .tokens
            .resolve(&self.shared, token)
            .await
            .map_err(|e| store::StoreError::Unavailable(e.to_string()))
    }

    /// Forgets every cached token verification, so revocations take effect
    /// on the next request.
    pub fn invalidate_tokens(&self) {
        self.shared.tokens.clear();
    }

    /// Whether the database answered this gateway's last background check
    /// (see the module documentation); `true` until a check fails.
    pub fn database_reachable(&self) -> bool {
        self.shared.database.is_reachable()
    }
}

/// Whether the database answered the last background check, as a flag the
/// request path reads without waiting and a gauge for alerts.
pub(crate) struct DatabaseState {
    reachable: std::sync::atomic::AtomicBool,
    gauge: prometheus::IntGauge,
}

impl DatabaseState {
    fn register(registry: &prometheus::Registry) -> Result<DatabaseState, prometheus::Error> {
        let gauge = prometheus::IntGauge::new(
            "scimgate_database_reachable",
            "1 when the database answered this process's last background check, else 0 \
             (SCIM requests are then answered 503 at once).",
        )?;
        registry.register(Box::new(gauge.clone()))?;
        gauge.set(1);
        Ok(DatabaseState {
            reachable: std::sync::atomic::AtomicBool::new(true),
            gauge,
        })
    }

    pub(crate) fn is_reachable(&self) -> bool {
        self.reachable.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Records a check's outcome; a change is logged once, not per request.
    fn set(&self, reachable: bool, cause: &dyn std::fmt::Display) {
        let was = self
            .reachable
            .swap(reachable, std::sync::atomic::Ordering::Relaxed);
        self.gauge.set(i64::from(reachable));
        match (was, reachable) {
            (true, false) => tracing::error!(
                error = %cause,
                "database unreachable: SCIM requests are answered 503 until it answers again"
            ),
            (false, true) => tracing::info!("database reachable again: serving SCIM requests"),
            _ => {}
        }
    }
}

/// How often a gateway adds its quarantine-guard counts to the store.
pub const GUARD_FLUSH: Duration = Duration::from_secs(5);

/// Adds the quarantine guard's counts to the store every [`GUARD_FLUSH`],
/// and once more at shutdown. A failed write keeps nothing: the guard is
/// an early warning, and a database that refuses writes shows as 5xx
/// anyway.
async fn flush_guard(shared: web::Data<Shared>) {
    let mut tick = tokio::time::interval(GUARD_FLUSH);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut stop = shared.stop.subscribe();
    loop {
        let last = tokio::select! {
            _ = tick.tick() => false,
            () = stopped(&mut stop) => true,
        };
        let tallies = shared.guard.take();
        if !tallies.is_empty()
            && let Err(e) = shared
                .store
                .admin()
                .record_request_health(chrono::Utc::now(), tallies)
                .await
        {
            tracing::warn!(error = %e, "quarantine guard: cannot record request counts");
        }
        if last {
            return;
        }
    }
}

/// Resolves once [`Gateway::shutdown`] has been called (or the gateway is
/// gone). Returns `()` so no non-`Send` watch guard lives across an await.
pub(crate) async fn stopped(stop: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}

/// Clears the token cache whenever the store's auth revision moves, and
/// records whether the database answered (see [`DatabaseState`]).
async fn poll_auth_revision(shared: web::Data<Shared>) {
    let mut tick = tokio::time::interval(
        shared
            .config
            .auth_poll_interval
            .max(Duration::from_millis(10)),
    );
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seen = None;
    let mut stop = shared.stop.subscribe();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stopped(&mut stop) => return,
        }
        let read = tokio::time::timeout(
            shared.config.database_check_timeout,
            shared.store.admin().auth_revision(),
        )
        .await;
        // Only a database across the network can become unreachable; on an
        // embedded SQLite file a slow or busy read is contention, and the
        // requests are better off trying (see `database_check_timeout`).
        let networked = shared.store.backend() == store::Backend::Postgres;
        match read {
            Ok(Ok(rev)) => {
                if networked {
                    shared.database.set(true, &"answered");
                }
                if seen != Some(rev) {
                    if seen.is_some() {
                        tracing::info!(
                            revision = rev,
                            "auth revision changed; token cache cleared"
                        );
                    }
                    shared.tokens.clear();
                    seen = Some(rev);
                }
            }
            Ok(Err(e @ store::StoreError::Unavailable(_))) if networked => {
                shared.database.set(false, &e);
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot read the auth revision"),
            Err(_) if networked => shared.database.set(
                false,
                &format!(
                    "no answer within {:?}",
                    shared.config.database_check_timeout
                ),
            ),
            Err(_) => tracing::warn!("reading the auth revision is slow"),
        }
    }
}

/// The least time between two commit notices of this process: under a
/// stream of writes the relay is woken at most this often by each gateway,
/// and reads all that was committed meanwhile at once.
const COMMIT_NOTICE_GAP: Duration = Duration::from_millis(20);

/// Tells the delivery relay, through Redis, when this process commits
/// writes: a worker in another process then relays their events at once
/// instead of at its next poll. Nothing without Redis (a worker in this
/// process hears the commits directly).
async fn announce_commits(shared: web::Data<Shared>) {
    let Some(redis) = shared.redis.clone() else {
        return;
    };
    let mut stop = shared.stop.subscribe();
    let log = shared.store.event_log();
    let mut next = std::pin::pin!(log.committed());
    loop {
        tokio::select! {
            () = next.as_mut() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        // Listen for the next commit before telling of this one, so one
        // that lands meanwhile is told too.
        next.set(log.committed());
        let _ =
            std::future::poll_fn(|cx| std::task::Poll::Ready(next.as_mut().poll(cx).is_ready()))
                .await;
        if let Err(e) = redis.publish(cluster::notice::Notice::Committed).await {
            // Redis being away is reported by readiness; the relay polls.
            tracing::debug!(error = %e, "cannot announce a commit through redis");
        }
        tokio::select! {
            () = tokio::time::sleep(COMMIT_NOTICE_GAP) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// Clears the token cache when another instance says tokens or tenants
/// changed (and after every reconnection to Redis, when notices may have
/// been missed). Without Redis, the auth-revision poll does it alone.
async fn listen_for_notices(shared: web::Data<Shared>) {
    let Some(redis) = shared.redis.clone() else {
        return;
    };
    let stop = shared.stop.subscribe();
    let tokens = shared.clone();
    redis
        .listen(
            move |notice| match notice {
                cluster::notice::Notice::Auth | cluster::notice::Notice::Resync => {
                    tokens.tokens.clear();
                }
                // Each write reads the policy's version before it trusts
                // its cached policy: nothing here.
                cluster::notice::Notice::Policy(_) => {}
                // For the delivery relay (a worker's business).
                cluster::notice::Notice::Committed => {}
            },
            stop,
        )
        .await;
}

/// The SCIM endpoints under one base path.
fn scim_scope(
    base: &str,
) -> actix_web::Scope<
    impl actix_web::dev::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    use handlers as h;
    let not_allowed = |allow: &'static str| {
        web::to(move |req: actix_web::HttpRequest| h::not_allowed(req, allow))
    };
    web::scope(base)
        .wrap(from_fn(observe::middleware))
        .service(
            web::resource("/Users")
                .route(web::get().to(h::list_users))
                .route(web::post().to(h::create_user))
                .default_service(not_allowed("GET, POST")),
        )
        .service(
            web::resource("/Users/.search")
                .route(web::post().to(h::search_users))
                .default_service(not_allowed("POST")),
        )
        .service(
            web::resource("/Users/{id}")
                .route(web::get().to(h::get_user))
                .route(web::put().to(h::replace_user))
                .route(web::patch().to(h::patch_user))
                .route(web::delete().to(h::delete_user))
                .default_service(not_allowed("GET, PUT, PATCH, DELETE")),
        )
        .service(
            web::resource("/Groups")
                .route(web::get().to(h::list_groups))
                .route(web::post().to(h::create_group))
                .default_service(not_allowed("GET, POST")),
        )
        .service(
            web::resource("/Groups/.search")
                .route(web::post().to(h::search_groups))
                .default_service(not_allowed("POST")),
        )
        .service(
            web::resource("/Groups/{id}")
                .route(web::get().to(h::get_group))
                .route(web::put().to(h::replace_group))
                .route(web::patch().to(h::patch_group))
                .route(web::delete().to(h::delete_group))
                .default_service(not_allowed("GET, PUT, PATCH, DELETE")),
        )
        .service(
            web::resource("/.search")
                .route(web::post().to(h::search_root))
                .default_service(not_allowed("POST")),
        )
        .service(
            web::resource("/ServiceProviderConfig")
                .route(web::get().to(h::service_provider_config))
                .default_service(not_allowed("GET")),
        )
        .service(
            web::resource("/ResourceTypes")
                .route(web::get().to(h::resource_types))
                .default_service(not_allowed("GET")),
        )
        .service(
            web::resource("/ResourceTypes/{name}")
                .route(web::get().to(h::resource_type))
                .default_service(not_allowed("GET")),
        )
        .service(
            web::resource("/Schemas")
                .route(web::get().to(h::schemas))
                .default_service(not_allowed("GET")),
        )
        .service(
            web::resource("/Schemas/{urn}")
                .route(web::get().to(h::schema))
                .default_service(not_allowed("GET")),
        )
        .default_service(web::to(h::no_route))
}
