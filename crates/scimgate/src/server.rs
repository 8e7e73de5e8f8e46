//! The processes scimgate runs, built the same way for `main` and tests,
//! each from the same parts (one function per part):
//!
//! | process | serves | runs |
//! | --- | --- | --- |
//! | `serve` | SCIM, `/admin/v1`, `/console` | everything below; first start |
//! | `gateway` | SCIM | the gateway's background work (provisioning-log writer, auth poll) |
//! | `admin` | `/admin/v1`, `/console` | a gateway that only verifies SCIM tokens for the event feed, with its auth poll; first start |
//! | `worker` | | job worker, delivery worker, sweeps (purge, retention) |
//!
//! Every process serves `/metrics`, `/healthz` and `/readyz` on its one
//! listener. The parts: `metrics_registry`, `readiness`, `gateway`,
//! `admin`, `workers`, `sweep_metrics` / `sweeps` and `http_server`;
//! [`start`] puts together the ones a [`Process`] runs and [`App::stop`]
//! takes them down in order.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use actix_web::{HttpResponse, web};
use prometheus::{Encoder, IntCounter, IntGauge, Opts, Registry, TextEncoder};
use store::Store;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::bootstrap::{self, AdminKeySource, FirstStart};
use crate::config::Config;
use crate::observability::{ProcessMetrics, QuarantineMetrics};

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
/// How often PostgreSQL's planner statistics are checked: a few seconds, so
/// that an initial cycle's lookups stop using plans made on empty tables
/// well before autovacuum (once a minute) would notice.
const STATISTICS_INTERVAL: Duration = Duration::from_secs(3);

/// Which scimgate process to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Process {
    /// Everything in one process (`scimgate serve`, the embedded default).
    Serve,
    /// The SCIM service only (`scimgate gateway`).
    Gateway,
    /// The admin API and the console only (`scimgate admin`).
    Admin,
    /// The background work only (`scimgate worker`).
    Worker,
}

impl Process {
    /// The subcommand that runs it.
    pub fn name(self) -> &'static str {
        match self {
            Process::Serve => "serve",
            Process::Gateway => "gateway",
            Process::Admin => "admin",
            Process::Worker => "worker",
        }
    }

    fn serves_scim(self) -> bool {
        matches!(self, Process::Serve | Process::Gateway)
    }

    fn serves_admin(self) -> bool {
        matches!(self, Process::Serve | Process::Admin)
    }

    /// Job and delivery workers, sweeps.
    fn runs_background_work(self) -> bool {
        matches!(self, Process::Serve | Process::Worker)
    }

    /// Creates the first operator and tenant, and shows their secrets: only
    /// a process an operator starts by hand and reads (the admin API's).
    fn initialises(self) -> bool {
        self.serves_admin()
    }
}

/// Why the application could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The Redis URL is unusable.
    #[error("redis_url: {0}")]
    Redis(#[from] cluster::ClusterError),
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

/// A running scimgate process: its HTTP server and whatever else its
/// [`Process`] runs.
#[derive(Debug)]
pub struct App {
    process: Process,
    addr: SocketAddr,
    public_url: String,
    first_start: FirstStart,
    http: Http,
    gateway: Option<GatewayTask>,
    workers: Option<Workers>,
    background: Vec<JoinHandle<()>>,
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

/// Builds and starts what `scimgate serve` runs (see [`start`]).
pub async fn spawn(config: Config) -> Result<App, AppError> {
    start(Process::Serve, config).await
}

/// Builds and starts `process`: binds `config.listen` (port 0 allowed),
/// opens and migrates the database, builds every part the process runs,
/// performs the first start where the process may, then starts serving
/// and the background work.
pub async fn start(process: Process, config: Config) -> Result<App, AppError> {
    let (listener, addr) = bind(config.listen)?;
    let store = open_store(&config).await?;
    // Redis is connected lazily: a process starts while it is down and
    // works without it meanwhile (readiness reports it degraded).
    let redis = config
        .redis_url
        .as_ref()
        .map(|url| cluster::Redis::open(url.expose()))
        .transpose()?;
    let registry = metrics_registry()?;
    let process_metrics = ProcessMetrics::register(&registry, redis.is_some())?;

    // The admin process keeps a gateway too, never mounted: the event feed
    // verifies SCIM tokens through its cache (argon2 once per token), and
    // its auth poll picks up revocations made by other processes.
    let gateway = match process {
        Process::Worker => None,
        Process::Serve | Process::Gateway | Process::Admin => {
            Some(gateway(&config, &store, redis.as_ref(), &registry)?)
        }
    };
    // One key seals target secrets for the admin API (creation) and the
    // workers (delivery); a gateway never reads them.
    let secrets = match process {
        Process::Gateway => None,
        Process::Serve | Process::Admin | Process::Worker => bootstrap::delivery_secrets(&config)?,
    };
    let admin = match (process.serves_admin(), &gateway) {
        (true, Some(tokens)) => Some(admin(
            &config,
            &store,
            tokens,
            redis.as_ref(),
            secrets.clone(),
        )?),
        _ => None,
    };
    let work = if process.runs_background_work() {
        // `serve` delivers unless turned off (a split deployment runs
        // `scimgate worker` for it); a worker always does.
        let deliver = process == Process::Worker || config.delivery_enabled;
        let workers = workers(&config, &store, redis.as_ref(), &registry, secrets, deliver)?;
        Some((workers, sweep_metrics(&registry)?))
    } else {
        None
    };
    let routes = Routes {
        registry: web::Data::new(registry),
        readiness: readiness(&store, redis.as_ref()),
        scim: gateway.clone().filter(|_| process.serves_scim()),
        admin,
    };
    // A worker's listener only answers metrics and health probes.
    let http_workers = (process == Process::Worker).then_some(1);
    let (server, in_flight) = http_server(listener, routes, http_workers)?;

    // First-start setup comes last: its secrets are shown once, so nothing
    // that can still fail (a taken port, a bad setting) may follow it.
    let first_start = if process.initialises() {
        bootstrap::ensure_initialized(&store, &config)
            .await
            .map_err(|source| AppError::Store {
                database: config.database_display(),
                source,
            })?
    } else {
        if process == Process::Gateway {
            note_pending_first_start(&store).await;
        }
        FirstStart::default()
    };

    let http = Http::run(server, in_flight);
    let gateway = gateway.map(|gateway| GatewayTask {
        task: gateway.spawn_background(),
        gateway,
    });
    let (workers, mut background) = match work {
        Some((workers, metrics)) => (
            Some(workers.spawn(&store)),
            sweeps(&config, &store, metrics),
        ),
        None => (None, Vec::new()),
    };
    background.push(process_metrics.spawn(store.clone(), redis.clone()));

    let public_url = config.public_base_url(addr);
    tracing::info!(
        process = process.name(),
        %addr,
        public_url = %public_url,
        database = %config.database_display(),
        "scimgate is serving"
    );
    Ok(App {
        process,
        addr,
        public_url,
        first_start,
        http,
        gateway,
        workers,
        background,
    })
}

/// A gateway never creates the first operator and tenant (it would have
/// to print their secrets where nobody reads them): it only says who will.
async fn note_pending_first_start(store: &Store) {
    match bootstrap::first_start_pending(store).await {
        Ok(false) => {}
        Ok(true) => tracing::warn!(
            "no operator or no tenant yet: a gateway does not create them; start \
             `scimgate admin` (or `scimgate serve`) once, which prints them, or run \
             `scimgate tenant create`"
        ),
        Err(e) => tracing::warn!(error = %e, "cannot tell whether the first start has happened"),
    }
}

/// A registry with `scimgate_build_info`; every part registers its own
/// metrics on it, and `/metrics` serves it.
fn metrics_registry() -> Result<Registry, AppError> {
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
    Ok(registry)
}

/// What `/readyz` checks, the same in every process: the database. A
/// shared engine the process is configured with (Redis) is added here.
fn readiness(store: &Store, redis: Option<&cluster::Redis>) -> gateway::Readiness {
    let readiness = gateway::Readiness::new().with_database(store.clone());
    match redis {
        Some(redis) => readiness.with_redis(redis.clone()),
        None => readiness,
    }
}

/// The SCIM service, its metrics on `registry`.
fn gateway(
    config: &Config,
    store: &Store,
    redis: Option<&cluster::Redis>,
    registry: &Registry,
) -> Result<gateway::Gateway, AppError> {
    Ok(gateway::Gateway::with_redis(
        store.clone(),
        config.gateway_config(),
        registry,
        redis.cloned(),
    )?)
}

/// The admin API and console. `tokens` is the gateway whose cache verifies
/// SCIM tokens for the event feed; every auth change made through the API
/// clears it, so a revocation takes effect in this process at once (other
/// processes notice it through their auth poll).
fn admin(
    config: &Config,
    store: &Store,
    tokens: &gateway::Gateway,
    redis: Option<&cluster::Redis>,
    secrets: Option<sync_worker::secrets::SecretBox>,
) -> Result<tenant_admin::Admin, AppError> {
    let (keys, key_source) = bootstrap::admin_keys(config)?;
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
    let invalidate = tokens.clone();
    let redis = redis.cloned();
    admin.on_auth_change(move || {
        invalidate.invalidate_tokens();
        // Every other instance hears it at once through Redis; without
        // Redis (or while it is away) they notice at their next auth poll.
        if let Some(redis) = redis.clone() {
            tokio::spawn(async move {
                if let Err(e) = redis.publish(cluster::notice::Notice::Auth).await {
                    tracing::warn!(
                        error = %e,
                        "cannot tell other instances through redis; they notice at their next auth poll"
                    );
                }
            });
        }
    });
    admin.set_delivery(delivery_settings(config, secrets));
    if let Some(url) = &config.public_url {
        admin.set_public_url(url.clone());
    }
    let verifier = tokens.clone();
    admin.on_scim_token(move |token| {
        let gateway = verifier.clone();
        async move { gateway.authenticate(&token).await }
    });
    Ok(admin)
}

/// The job worker (role recompute, re-route, reconciliation, re-send) and,
/// when `deliver`, the delivery worker (its metrics on `registry`): built,
/// not started.
fn workers(
    config: &Config,
    store: &Store,
    redis: Option<&cluster::Redis>,
    registry: &Registry,
    secrets: Option<sync_worker::secrets::SecretBox>,
    deliver: bool,
) -> Result<WorkerParts, AppError> {
    let handlers = job_handlers(config, store, secrets.clone())?;
    let delivery = if deliver {
        Some(delivery_worker(config, store, redis, registry, secrets)?)
    } else {
        None
    };
    Ok(WorkerParts { handlers, delivery })
}

/// Workers built by [`workers`], ready to start.
struct WorkerParts {
    handlers: store::JobHandlers,
    delivery: Option<Delivery>,
}

impl std::fmt::Debug for WorkerParts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerParts")
            .field("delivery", &self.delivery.is_some())
            .finish_non_exhaustive()
    }
}

impl WorkerParts {
    /// Starts them; they run until [`Workers::stop`].
    fn spawn(self, store: &Store) -> Workers {
        let (stop, stop_rx) = watch::channel(false);
        let jobs = {
            let store = store.clone();
            let handlers = self.handlers;
            let stop_rx = stop_rx.clone();
            tokio::spawn(async move { store.run_jobs(handlers, stop_rx).await })
        };
        let delivery = self.delivery.map(|worker| worker.spawn(stop_rx));
        Workers {
            stop,
            jobs,
            delivery,
        }
    }
}

/// The running job and delivery workers.
#[derive(Debug)]
struct Workers {
    stop: watch::Sender<bool>,
    jobs: JoinHandle<()>,
    delivery: Option<JoinHandle<()>>,
}

impl Workers {
    /// The workers stop between jobs; one still running past the grace is
    /// abandoned mid-batch (its transaction rolls back) and another worker
    /// takes it over once its heartbeat is stale. Deliveries in flight
    /// finish (or time out) and their round commits; one abandoned here is
    /// sent again after restart, under the same webhook-id.
    async fn stop(self) {
        self.stop.send_replace(true);
        if let Some(mut delivery) = self.delivery
            && tokio::time::timeout(DELIVERY_GRACE, &mut delivery)
                .await
                .is_err()
        {
            tracing::warn!("deliveries still in flight at shutdown; they will be sent again");
            delivery.abort();
        }
        let mut jobs = self.jobs;
        if tokio::time::timeout(DRAIN_GRACE, &mut jobs).await.is_err() {
            tracing::warn!("background job still running at shutdown; abandoned");
            jobs.abort();
        }
    }
}

/// A gateway and its background task (provisioning-log writer, auth poll).
#[derive(Debug)]
struct GatewayTask {
    gateway: gateway::Gateway,
    task: JoinHandle<()>,
}

impl GatewayTask {
    /// Writes the provisioning-log entries still queued (up to
    /// [`DRAIN_GRACE`]) and ends the auth poll. Call once no handler runs.
    async fn drain(self) {
        self.gateway.shutdown();
        let mut task = self.task;
        if tokio::time::timeout(DRAIN_GRACE, &mut task).await.is_err() {
            tracing::warn!("provisioning-log drain timed out; remaining entries are lost");
            task.abort();
        }
    }
}

/// The metrics of the periodic sweeps, registered before anything starts.
#[derive(Debug)]
struct SweepMetrics {
    held: IntGauge,
    tripped: IntGauge,
    purged: IntCounter,
    pruned: IntCounter,
    quarantine: QuarantineMetrics,
}

/// Registers the sweeps' metrics on `registry`.
fn sweep_metrics(registry: &Registry) -> Result<SweepMetrics, AppError> {
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
    let pruned = IntCounter::new(
        "scimgate_provisioning_log_pruned_total",
        "Provisioning-log entries deleted by the retention task.",
    )?;
    registry.register(Box::new(held.clone()))?;
    registry.register(Box::new(tripped.clone()))?;
    registry.register(Box::new(purged.clone()))?;
    registry.register(Box::new(pruned.clone()))?;
    Ok(SweepMetrics {
        held,
        tripped,
        purged,
        pruned,
        quarantine: QuarantineMetrics::register(registry)?,
    })
}

/// Starts the periodic sweeps: the purge of soft-deleted users past their
/// grace period (with the deletion-safety gauges) and, unless turned off,
/// provisioning-log retention. Idempotent, so any number of processes may
/// run them against one database.
fn sweeps(config: &Config, store: &Store, metrics: SweepMetrics) -> Vec<JoinHandle<()>> {
    let SweepMetrics {
        held,
        tripped,
        purged,
        pruned,
        quarantine,
    } = metrics;
    let mut tasks = vec![
        spawn_deletion_safety(store.clone(), held, tripped, purged),
        spawn_statistics(store.clone()),
        quarantine.spawn(store.clone(), config.tenant_label()),
    ];
    if config.provisioning_log_retention_days > 0 {
        tasks.push(spawn_retention(
            store.clone(),
            config.provisioning_log_retention_days,
            pruned,
        ));
    }
    tasks
}

/// Everything a process's listener serves; cloned into every HTTP worker.
#[derive(Clone)]
struct Routes {
    registry: web::Data<Registry>,
    readiness: gateway::Readiness,
    scim: Option<gateway::Gateway>,
    admin: Option<tenant_admin::Admin>,
}

impl Routes {
    fn configure(&self, cfg: &mut web::ServiceConfig) {
        cfg.app_data(self.registry.clone());
        cfg.route("/metrics", web::get().to(metrics));
        self.readiness.configure(cfg);
        if let Some(gateway) = &self.scim {
            gateway.configure_scim(cfg);
        }
        if let Some(admin) = &self.admin {
            admin.configure(cfg);
        }
    }
}

/// The HTTP server over `listener` serving `routes` (`workers` threads, or
/// one per core), built but not started: it starts when spawned
/// ([`Http::run`]). Every request is counted in the returned [`InFlight`].
fn http_server(
    listener: TcpListener,
    routes: Routes,
    workers: Option<usize>,
) -> Result<(actix_web::dev::Server, InFlight), AppError> {
    let addr = listener.local_addr().map_err(|source| AppError::Bind {
        addr: SocketAddr::from(([0, 0, 0, 0], 0)),
        source,
    })?;
    let in_flight = InFlight::default();
    let counted = in_flight.clone();
    let mut server = actix_web::HttpServer::new(move || {
        let routes = routes.clone();
        let in_flight = counted.clone();
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
            .configure(move |cfg| routes.configure(cfg))
    })
    // Signals are handled by the caller (`App::run_until_signal`) so tests
    // and embedders decide when to stop.
    .disable_signals()
    .shutdown_timeout(SHUTDOWN_GRACE.as_secs());
    if let Some(workers) = workers {
        server = server.workers(workers);
    }
    let server = server
        .listen(listener)
        .map_err(|source| AppError::Bind { addr, source })?
        .run();
    Ok((server, in_flight))
}

/// The running HTTP server.
#[derive(Debug)]
struct Http {
    handle: actix_web::dev::ServerHandle,
    task: JoinHandle<std::io::Result<()>>,
    in_flight: InFlight,
}

impl Http {
    fn run(server: actix_web::dev::Server, in_flight: InFlight) -> Http {
        let handle = server.handle();
        Http {
            handle,
            task: tokio::spawn(server),
            in_flight,
        }
    }

    /// `graceful` stops accepting and lets in-flight requests finish (up
    /// to [`SHUTDOWN_GRACE`]) before actix is told to stop (see
    /// [`InFlight`]).
    async fn stop(self, graceful: bool) -> Result<(), AppError> {
        if graceful {
            self.handle.pause().await;
            let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
            while self.in_flight.count() > 0 && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        self.handle.stop(graceful).await;
        match self.task.await {
            Ok(result) => result.map_err(AppError::Server),
            Err(join) => Err(AppError::Server(std::io::Error::other(join))),
        }
    }
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

/// The delivery worker, fed by the database alone or, with Redis, by its
/// streams (several workers then share the work).
enum Delivery {
    /// [`sync_worker::SqlQueue`].
    Sql(sync_worker::Worker),
    /// [`sync_worker::RedisQueue`].
    Redis(sync_worker::Worker<sync_worker::RedisQueue>),
}

impl Delivery {
    /// Runs it until `stop`.
    fn spawn(self, stop: watch::Receiver<bool>) -> JoinHandle<()> {
        match self {
            Delivery::Sql(worker) => tokio::spawn(worker.run(stop)),
            Delivery::Redis(worker) => tokio::spawn(worker.run(stop)),
        }
    }
}

/// The delivery worker this configuration describes, its metrics on
/// `registry`.
fn delivery_worker(
    config: &Config,
    store: &Store,
    redis: Option<&cluster::Redis>,
    registry: &Registry,
    secrets: Option<sync_worker::secrets::SecretBox>,
) -> Result<Delivery, AppError> {
    let metrics = sync_worker::metrics::Metrics::register(registry)?;
    let store = store.clone();
    let delivery = config.delivery_config();
    Ok(match redis {
        None => Delivery::Sql(sync_worker::Worker::new(store, delivery, secrets, metrics)?),
        Some(redis) => Delivery::Redis(sync_worker::Worker::with_redis(
            store,
            redis.clone(),
            delivery,
            secrets,
            metrics,
        )?),
    })
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
    /// Which process this is.
    pub fn process(&self) -> Process {
        self.process
    }

    /// The address the server is bound to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL clients use (`public_url` or `http://<addr>`).
    pub fn public_url(&self) -> &str {
        &self.public_url
    }

    /// What the first start created (empty on later starts, and always in
    /// processes that do not initialise).
    pub fn first_start(&self) -> &FirstStart {
        &self.first_start
    }

    /// The line `main` prints once serving: the version, the process and
    /// where to reach what it serves.
    pub fn listening_line(&self) -> String {
        let version = env!("CARGO_PKG_VERSION");
        let (addr, url) = (self.addr, &self.public_url);
        match self.process {
            Process::Serve => {
                format!("scimgate {version} listening on http://{addr} (SCIM at {url}/scim/v2)")
            }
            Process::Gateway => format!(
                "scimgate {version} gateway listening on http://{addr} (SCIM at {url}/scim/v2)"
            ),
            Process::Admin => format!(
                "scimgate {version} admin listening on http://{addr} (console at {url}{}, admin API at {url}{})",
                tenant_admin::console::CONSOLE_PATH,
                tenant_admin::BASE_PATH
            ),
            Process::Worker => format!(
                "scimgate {version} worker listening on http://{addr} (metrics at http://{addr}/metrics)"
            ),
        }
    }

    /// Stops the process: `graceful` stops accepting and lets in-flight
    /// requests finish (up to [`SHUTDOWN_GRACE`]); then the gateway writes
    /// the provisioning-log entries still queued (up to [`DRAIN_GRACE`]),
    /// the workers finish what they are doing (up to [`DELIVERY_GRACE`] and
    /// [`DRAIN_GRACE`]) and the sweeps end.
    pub async fn stop(self, graceful: bool) -> Result<(), AppError> {
        let result = self.http.stop(graceful).await;
        // No handler runs any more, so nothing new can be queued: drain.
        if let Some(gateway) = self.gateway {
            gateway.drain().await;
        }
        if let Some(workers) = self.workers {
            workers.stop().await;
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
    /// signal makes the HTTP stop immediate).
    pub async fn run_until_signal(mut self) -> Result<(), AppError> {
        tokio::select! {
            finished = &mut self.http.task => {
                return match finished {
                    Ok(result) => result.map_err(AppError::Server),
                    Err(join) => Err(AppError::Server(std::io::Error::other(join))),
                };
            }
            signal = shutdown_signal() => {
                tracing::info!(
                    signal,
                    process = self.process.name(),
                    "shutting down: finishing in-flight requests and work"
                );
            }
        }
        let handle = self.http.handle.clone();
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
fn spawn_deletion_safety(
    store: Store,
    held: IntGauge,
    tripped: IntGauge,
    purged: IntCounter,
) -> JoinHandle<()> {
    tokio::spawn(async move {
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
    })
}

/// Keeps PostgreSQL's planner statistics fresh while tables grow fast
/// (`Store::refresh_statistics`); ends at once on SQLite.
fn spawn_statistics(store: Store) -> JoinHandle<()> {
    tokio::spawn(async move {
        if store.backend() != store::Backend::Postgres {
            return;
        }
        let mut tick = tokio::time::interval(STATISTICS_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match store.refresh_statistics().await {
                Ok(tables) if tables.is_empty() => {}
                Ok(tables) => tracing::debug!(?tables, "analyzed tables that grew"),
                Err(e) => tracing::warn!(error = %e, "refreshing planner statistics failed"),
            }
        }
    })
}

/// Deletes provisioning-log entries older than `days`, at start and hourly.
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
