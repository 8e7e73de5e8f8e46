//! The application `serve` runs, built the same way for `main` and tests:
//! the SCIM gateway and the admin API (`/admin/v1`) on one listener, the
//! role recompute worker, and the background tasks.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use actix_web::{HttpResponse, web};
use prometheus::{Encoder, IntCounter, IntGauge, Opts, Registry, TextEncoder};
use store::Store;
use tokio::task::JoinHandle;

use crate::bootstrap::{self, AdminKeySource, FirstStart};
use crate::config::Config;

/// How long in-flight requests may take to finish after a stop is asked for.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// How long a stop waits for queued provisioning-log entries to be written.
pub const DRAIN_GRACE: Duration = Duration::from_secs(10);

/// How long a stop waits for deliveries in flight (a little more than a
/// request's timeout).
pub const DELIVERY_GRACE: Duration = Duration::from_secs(20);

/// How often deleted users past their grace period are purged and the
/// held-deletion metrics refreshed.
const SAFETY_INTERVAL: Duration = Duration::from_secs(60);
/// Deleted users purged per transaction.
const PURGE_BATCH: u64 = 500;
/// How often old provisioning-log entries are pruned.
const RETENTION_INTERVAL: Duration = Duration::from_secs(3600);

/// Why the application could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The data directory could not be created.
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: std::path::PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The database could not be opened, migrated or initialised.
    #[error("database ({database}): {source}")]
    Store {
        /// The database, password redacted.
        database: String,
        /// The store's error.
        source: store::StoreError,
    },
    /// The gateway refused its configuration.
    #[error("gateway: {0}")]
    Gateway(#[from] gateway::GatewayError),
    /// The admin API's session keys could not be loaded or kept.
    #[error("{0}")]
    AdminKeys(#[from] bootstrap::AdminKeyError),
    /// The admin API refused its configuration.
    #[error("admin API: {0}")]
    Admin(#[from] tenant_admin::AdminConfigError),
    /// The metrics registry refused a metric (a duplicate name: a bug).
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The HTTP server failed while running.
    #[error("http server: {0}")]
    Server(std::io::Error),
    /// The key that seals target secrets could not be loaded or made.
    #[error("delivery secrets key: {0}")]
    DeliveryKey(#[from] sync_worker::secrets::SecretError),
    /// The delivery worker could not start.
    #[error("delivery worker: {0}")]
    Delivery(#[from] sync_worker::WorkerError),
}

/// Opens the configured database (creating the data directory for SQLite,
/// private to this user, and warning when an existing one is not) and
/// applies pending migrations.
pub async fn open_store(config: &Config) -> Result<Store, AppError> {
    let exposed = config
        .prepare_data_dir()
        .map_err(|source| AppError::DataDir {
            path: config.data_dir.clone(),
            source,
        })?;
    for warning in exposed {
        tracing::warn!("{warning}");
    }
    let store_error = |source| AppError::Store {
        database: config.database_display(),
        source,
    };
    let store = Store::connect(config.store_url().expose(), config.store_options())
        .await
        .map_err(store_error)?;
    store.migrate().await.map_err(store_error)?;
    Ok(store)
}

/// A running scimgate: HTTP server (SCIM gateway and admin API), gateway
/// background work, the role recompute worker and the provisioning-log
/// retention task.
#[derive(Debug)]
pub struct App {
    addr: SocketAddr,
    public_url: String,
    first_start: FirstStart,
    server: actix_web::dev::ServerHandle,
    server_task: JoinHandle<std::io::Result<()>>,
    gateway: gateway::Gateway,
    gateway_task: JoinHandle<()>,
    role_worker_stop: tokio::sync::watch::Sender<bool>,
    role_worker: JoinHandle<()>,
    delivery: Option<JoinHandle<()>>,
    background: Vec<JoinHandle<()>>,
    in_flight: InFlight,
}

/// Requests being handled right now, counted by a guard that lives as long
/// as the request's future (a cancelled request counts down too).
///
/// A graceful stop waits for it to reach zero before it asks actix to stop:
/// actix-server wakes its accept thread before it tells the workers, and a
/// worker that sees the accept thread gone first ends at once, dropping the
/// requests it was serving.
#[derive(Clone, Default, Debug)]
struct InFlight(Arc<AtomicUsize>);

/// Counts one request until dropped.
struct InFlightGuard(Arc<AtomicUsize>);

impl InFlight {
    fn enter(&self) -> InFlightGuard {
        self.0.fetch_add(1, Ordering::SeqCst);
        InFlightGuard(self.0.clone())
    }

    fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Binds `listen` (port 0 picks a free port); returns the bound address.
fn bind(listen: SocketAddr) -> Result<(TcpListener, SocketAddr), AppError> {
    let error = |source| AppError::Bind {
        addr: listen,
        source,
    };
    let listener = TcpListener::bind(listen).map_err(error)?;
    let addr = listener.local_addr().map_err(error)?;
    Ok((listener, addr))
}

/// Builds and starts the application `scimgate serve` runs: opens and
/// migrates the database, performs first-start initialisation, binds
/// `config.listen` (port 0 allowed) and starts serving.
pub async fn spawn(config: Config) -> Result<App, AppError> {
    let (listener, addr) = bind(config.listen)?;
    let store = open_store(&config).await?;

    let registry = Registry::new();
    let build_info = IntGauge::with_opts(
        Opts::new(
            "scimgate_build_info",
            "Always 1; labelled with the version.",
        )
        .const_label("version", env!("CARGO_PKG_VERSION")),
    )?;
    build_info.set(1);
    registry.register(Box::new(build_info))?;
    let pruned = IntCounter::new(
        "scimgate_provisioning_log_pruned_total",
        "Provisioning-log entries deleted by the retention task.",
    )?;
    registry.register(Box::new(pruned.clone()))?;
    let sweep = spawn_deletion_safety(store.clone(), &registry)?;

    let gateway = gateway::Gateway::new(store.clone(), config.gateway_config(), &registry)?;
    let (keys, key_source) = bootstrap::admin_keys(&config)?;
    log_admin_key_source(&key_source);
    let admin = tenant_admin::Admin::with_login_options(
        store.clone(),
        tenant_admin::AdminConfig {
            keys,
            token_ttl: Duration::from_secs(config.admin_token_ttl_secs),
        },
        tenant_admin::LoginOptions {
            trusted_proxies: config.trusted_proxy_networks(),
            ..tenant_admin::LoginOptions::default()
        },
    )?;
    let invalidate = gateway.clone();
    admin.on_auth_change(move || invalidate.invalidate_tokens());
    // One key seals target secrets for the API (creation) and the worker
    // (delivery).
    let secrets = bootstrap::delivery_secrets(&config)?;
    admin.set_delivery(delivery_settings(&config, secrets.clone()));
    if let Some(url) = &config.public_url {
        admin.set_public_url(url.clone());
    }
    let verifier = gateway.clone();
    admin.on_scim_token(move |token| {
        let gateway = verifier.clone();
        async move { gateway.authenticate(&token).await }
    });

    let job_secrets = secrets.clone();
    let delivery = if config.delivery_enabled {
        Some(delivery_worker(&config, &store, &registry, secrets)?)
    } else {
        None
    };

    let metrics_registry = web::Data::new(registry);
    let factory_gateway = gateway.clone();
    let in_flight = InFlight::default();
    let factory_in_flight = in_flight.clone();
    let server = actix_web::HttpServer::new(move || {
        let gateway = factory_gateway.clone();
        let admin = admin.clone();
        let in_flight = factory_in_flight.clone();
        actix_web::App::new()
            .wrap_fn(move |req, srv| {
                let guard = in_flight.enter();
                let call = actix_web::dev::Service::call(srv, req);
                async move {
                    let response = call.await;
                    drop(guard);
                    response
                }
            })
            .app_data(metrics_registry.clone())
            .route("/metrics", web::get().to(metrics))
            .configure(|cfg| gateway.configure(cfg))
            .configure(|cfg| admin.configure(cfg))
    })
    // Signals are handled by the caller (`App::run_until_signal`) so tests
    // and embedders decide when to stop.
    .disable_signals()
    .shutdown_timeout(SHUTDOWN_GRACE.as_secs())
    .listen(listener)
    .map_err(|source| AppError::Bind {
        addr: config.listen,
        source,
    })?;

    // First-start setup comes last: its secrets are shown once, so nothing
    // that can still fail (a taken port, a bad setting) may follow it.
    let first_start = bootstrap::ensure_initialized(&store, &config)
        .await
        .map_err(|source| AppError::Store {
            database: config.database_display(),
            source,
        })?;

    let server = server.run();
    let handle = server.handle();
    let server_task = tokio::spawn(server);

    let gateway_task = gateway.spawn_background();
    // Policy changes made through the admin API (or the CLI, or another
    // instance) queue recompute jobs; this worker runs them.
    let (role_worker_stop, stop_rx) = tokio::sync::watch::channel(false);
    let role_worker = {
        let store = store.clone();
        let handlers = job_handlers(&config, &store, job_secrets)?;
        tokio::spawn(async move { store.run_jobs(handlers, stop_rx).await })
    };
    // The delivery worker runs in this process unless turned off (a split
    // deployment runs `scimgate worker` instead); it stops with the role
    // worker's signal.
    let delivery = delivery.map(|worker| tokio::spawn(worker.run(role_worker_stop.subscribe())));
    let mut background = Vec::new();
    background.push(sweep);
    if config.provisioning_log_retention_days > 0 {
        background.push(spawn_retention(
            store,
            config.provisioning_log_retention_days,
            pruned,
        ));
    }

    let public_url = config.public_base_url(addr);
    tracing::info!(
        %addr,
        public_url = %public_url,
        database = %config.database_display(),
        "scimgate is serving"
    );
    Ok(App {
        addr,
        public_url,
        first_start,
        server: handle,
        server_task,
        gateway,
        gateway_task,
        role_worker_stop,
        role_worker,
        delivery,
        background,
        in_flight,
    })
}

/// `scimgate worker`: the background work alone (delivery, role
/// recompute jobs), with `/metrics` and `/healthz` on `config.listen`,
/// until SIGINT or SIGTERM.
pub async fn run_worker(config: Config) -> Result<(), AppError> {
    let (listener, addr) = bind(config.listen)?;
    let store = open_store(&config).await?;
    let registry = Registry::new();
    let secrets = bootstrap::delivery_secrets(&config)?;
    let handlers = job_handlers(&config, &store, secrets.clone())?;
    let worker = delivery_worker(&config, &store, &registry, secrets)?;
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let delivery = tokio::spawn(worker.run(stop_rx.clone()));
    let roles = {
        let store = store.clone();
        let stop_rx = stop_rx.clone();
        tokio::spawn(async move { store.run_jobs(handlers, stop_rx).await })
    };
    let sweep = spawn_deletion_safety(store.clone(), &registry)?;
    let metrics_registry = web::Data::new(registry);
    let server = actix_web::HttpServer::new(move || {
        actix_web::App::new()
            .app_data(metrics_registry.clone())
            .route("/metrics", web::get().to(metrics))
            .route(
                "/healthz",
                web::get().to(|| async { HttpResponse::Ok().body("ok") }),
            )
    })
    .disable_signals()
    .workers(1)
    .listen(listener)
    .map_err(|source| AppError::Bind {
        addr: config.listen,
        source,
    })?
    .run();
    let handle = server.handle();
    let server_task = tokio::spawn(server);
    tracing::info!(%addr, database = %config.database_display(), "scimgate worker is running");
    println!(
        "scimgate {} worker running (metrics at http://{addr}/metrics)",
        env!("CARGO_PKG_VERSION")
    );
    let signal = shutdown_signal().await;
    tracing::info!(signal, "shutting down: finishing deliveries in flight");
    stop.send_replace(true);
    for (task, name) in [(delivery, "delivery"), (roles, "role jobs")] {
        let mut task = task;
        if tokio::time::timeout(DELIVERY_GRACE, &mut task)
            .await
            .is_err()
        {
            tracing::warn!(worker = name, "still busy at shutdown; abandoned");
            task.abort();
        }
    }
    sweep.abort();
    handle.stop(true).await;
    let _ = server_task.await;
    tracing::info!("stopped");
    Ok(())
}

/// The background jobs this process runs: the store's own (role
/// recompute) and reconciliation with outbound SCIM applications.
fn job_handlers(
    config: &Config,
    store: &Store,
    secrets: Option<sync_worker::secrets::SecretBox>,
) -> Result<store::JobHandlers, AppError> {
    let reconcile =
        sync_worker::reconcile::Reconcile::new(store.clone(), &config.delivery_config(), secrets)
            .map_err(|e| AppError::Delivery(sync_worker::WorkerError::Http(e)))?;
    Ok(store::JobHandlers::builtin()
        .with(reconcile)
        .with(sync_worker::resend::Resend))
}

/// How the admin API makes targets under this configuration.
fn delivery_settings(
    config: &Config,
    secrets: Option<sync_worker::secrets::SecretBox>,
) -> tenant_admin::service::delivery::DeliverySettings {
    let delivery = config.delivery_config();
    tenant_admin::service::delivery::DeliverySettings {
        secrets,
        policy: sync_worker::address::AddressPolicy {
            allow_private: delivery.allow_private_targets,
        },
        rotation_overlap: delivery.rotation_overlap,
    }
}

/// The delivery worker this configuration describes, its metrics on
/// `registry`.
pub fn delivery_worker(
    config: &Config,
    store: &Store,
    registry: &Registry,
    secrets: Option<sync_worker::secrets::SecretBox>,
) -> Result<sync_worker::Worker, AppError> {
    let metrics = sync_worker::metrics::Metrics::register(registry)?;
    Ok(sync_worker::Worker::new(
        store.clone(),
        config.delivery_config(),
        secrets,
        metrics,
    )?)
}

fn log_admin_key_source(source: &AdminKeySource) {
    match source {
        AdminKeySource::Configured => {}
        AdminKeySource::File(path) | AdminKeySource::Generated(path) => tracing::info!(
            file = %path.display(),
            "admin API sessions are signed with the key kept in the data directory; \
             with more than one instance, set admin_jwt_keys (the same on every instance)"
        ),
        AdminKeySource::Ephemeral => tracing::warn!(
            "no admin_jwt_keys configured: admin API sessions are signed with a key that \
             lives only in this process (they end at restart and other instances refuse \
             them); set admin_jwt_keys"
        ),
    }
}

impl App {
    /// The address the server is bound to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL clients use (`public_url` or `http://<addr>`).
    pub fn public_url(&self) -> &str {
        &self.public_url
    }

    /// What the first start created (empty on later starts).
    pub fn first_start(&self) -> &FirstStart {
        &self.first_start
    }

    /// Stops the server: `graceful` stops accepting and lets in-flight
    /// requests finish (up to [`SHUTDOWN_GRACE`]); then the gateway writes
    /// the provisioning-log entries still queued (up to [`DRAIN_GRACE`]) and
    /// background tasks end.
    pub async fn stop(self, graceful: bool) -> Result<(), AppError> {
        if graceful {
            // No new connections; the requests in flight finish before
            // actix is told to stop (see [`InFlight`]).
            self.server.pause().await;
            let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
            while self.in_flight.count() > 0 && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        self.server.stop(graceful).await;
        let result = match self.server_task.await {
            Ok(result) => result.map_err(AppError::Server),
            Err(join) => Err(AppError::Server(std::io::Error::other(join))),
        };
        // No handler runs any more, so nothing new can be queued: drain.
        self.gateway.shutdown();
        let mut gateway_task = self.gateway_task;
        if tokio::time::timeout(DRAIN_GRACE, &mut gateway_task)
            .await
            .is_err()
        {
            tracing::warn!("provisioning-log drain timed out; remaining entries are lost");
            gateway_task.abort();
        }
        // The workers stop between jobs; one still running past the grace
        // is abandoned mid-batch (its transaction rolls back) and another
        // worker takes it over once its heartbeat is stale. Deliveries in
        // flight finish (or time out) and their round commits; one
        // abandoned here is sent again after restart, under the same
        // webhook-id.
        self.role_worker_stop.send_replace(true);
        if let Some(mut delivery) = self.delivery
            && tokio::time::timeout(DELIVERY_GRACE, &mut delivery)
                .await
                .is_err()
        {
            tracing::warn!("deliveries still in flight at shutdown; they will be sent again");
            delivery.abort();
        }
        let mut role_worker = self.role_worker;
        if tokio::time::timeout(DRAIN_GRACE, &mut role_worker)
            .await
            .is_err()
        {
            tracing::warn!("role recompute job still running at shutdown; abandoned");
            role_worker.abort();
        }
        for task in &self.background {
            task.abort();
        }
        for task in self.background {
            // An aborted task reports cancellation; nothing to do with it.
            let _ = task.await;
        }
        result
    }

    /// Serves until SIGINT or SIGTERM, then stops gracefully (a second
    /// signal makes the stop immediate).
    pub async fn run_until_signal(mut self) -> Result<(), AppError> {
        tokio::select! {
            finished = &mut self.server_task => {
                return match finished {
                    Ok(result) => result.map_err(AppError::Server),
                    Err(join) => Err(AppError::Server(std::io::Error::other(join))),
                };
            }
            signal = shutdown_signal() => {
                tracing::info!(signal, "shutting down: finishing in-flight requests");
            }
        }
        let handle = self.server.clone();
        let force = tokio::spawn(async move {
            let signal = shutdown_signal().await;
            tracing::warn!(signal, "second signal: stopping immediately");
            handle.stop(false).await;
        });
        let result = self.stop(true).await;
        force.abort();
        tracing::info!("stopped");
        result
    }
}

/// Waits for SIGINT or SIGTERM and names it.
async fn shutdown_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => "SIGTERM",
                    _ = int.recv() => "SIGINT",
                }
            }
            _ => {
                tracing::warn!("cannot install signal handlers; stop with Ctrl-C");
                let _ = tokio::signal::ctrl_c().await;
                "SIGINT"
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    }
}

/// Purges soft-deleted users whose grace period is over, and keeps the
/// deletion-safety alert metrics current (docs/deletion-safety.md).
fn spawn_deletion_safety(store: Store, registry: &Registry) -> Result<JoinHandle<()>, AppError> {
    let held = IntGauge::new(
        "scimgate_deletions_held",
        "Deletions and deactivations held for a tenant admin (threshold or protected user).",
    )?;
    let tripped = IntGauge::new(
        "scimgate_deletion_threshold_tripped_tenants",
        "Tenants whose accidental-deletion threshold has tripped.",
    )?;
    let purged = IntCounter::new(
        "scimgate_deleted_users_purged_total",
        "Soft-deleted users purged after their grace period.",
    )?;
    registry.register(Box::new(held.clone()))?;
    registry.register(Box::new(tripped.clone()))?;
    registry.register(Box::new(purged.clone()))?;
    Ok(tokio::spawn(async move {
        let mut tick = tokio::time::interval(SAFETY_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            loop {
                match store.purge_deleted(chrono::Utc::now(), PURGE_BATCH).await {
                    Ok(n) => {
                        purged.inc_by(n);
                        if n > 0 {
                            tracing::info!(
                                purged = n,
                                "purged deleted users past their grace period"
                            );
                        }
                        if n < PURGE_BATCH {
                            break;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "purging deleted users failed");
                        break;
                    }
                }
            }
            match store.held_totals().await {
                Ok((h, t)) => {
                    held.set(i64::try_from(h).unwrap_or(i64::MAX));
                    tripped.set(i64::try_from(t).unwrap_or(i64::MAX));
                }
                Err(e) => tracing::warn!(error = %e, "reading held deletions failed"),
            }
        }
    }))
}

fn spawn_retention(store: Store, days: u32, pruned: IntCounter) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(RETENTION_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let before = chrono::Utc::now() - chrono::Duration::days(i64::from(days));
            match store.admin().prune_provisioning_log(before).await {
                Ok(0) => {}
                Ok(n) => {
                    pruned.inc_by(n);
                    tracing::info!(deleted = n, days, "pruned old provisioning-log entries");
                }
                Err(e) => tracing::warn!(error = %e, "provisioning-log retention failed"),
            }
        }
    })
}

async fn metrics(registry: web::Data<Registry>) -> HttpResponse {
    let encoder = TextEncoder::new();
    let mut body = Vec::new();
    match encoder.encode(&registry.gather(), &mut body) {
        Ok(()) => HttpResponse::Ok()
            .content_type(encoder.format_type())
            .body(body),
        Err(e) => {
            tracing::error!(error = %e, "cannot encode metrics");
            HttpResponse::InternalServerError().finish()
        }
    }
}
