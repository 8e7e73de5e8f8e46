//! `scimgate-bench-delivery`: the delivery benchmarks (docs/benchmarks.md;
//! `scripts/bench-delivery` runs them all). Loopback only.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use loadgen::delivery::mix::{self, MixOptions, WebhookSetup};
use loadgen::delivery::throughput::{self, ThroughputOptions};
use loadgen::delivery::workers::{self, WorkersOptions};
use loadgen::{MAX_DURATION_SECS, Target};

/// Delivery benchmarks: a worker's throughput from a backlog, the steady
/// SCIM mix with and without a webhook target, and `scimgate worker`
/// processes sharing a backlog through Redis.
#[derive(Debug, Parser)]
#[command(name = "scimgate-bench-delivery", version)]
struct Args {
    #[command(subcommand)]
    command: Command,
    /// Print the report as JSON.
    #[arg(long, global = true)]
    json: bool,
    /// Check the signature and envelope of every n-th delivery (and the first).
    #[arg(long, global = true, default_value_t = 100)]
    sample: u64,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// One worker in this process delivering a backlog of user creates and
    /// updates from a fresh store to a loopback receiver.
    Throughput {
        /// Users created (one event each).
        #[arg(long, default_value_t = 10_000)]
        users: usize,
        /// Updates per user after all are created (one event each).
        #[arg(long, default_value_t = 4)]
        updates: usize,
        /// Writes in flight while seeding.
        #[arg(long, default_value_t = 32)]
        seed_concurrency: usize,
        /// A database URL (e.g. an empty PostgreSQL database); default: a
        /// new SQLite file with the embedded default's settings.
        #[arg(long)]
        database_url: Option<String>,
        /// The directory for the SQLite file (default: a temporary one).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Give up waiting for the deliveries after this many seconds.
        #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..=MAX_DURATION_SECS))]
        timeout: u64,
    },
    /// The steady SCIM mix against a running server; with --tenant, also a
    /// webhook target of that tenant on a loopback receiver, and each
    /// event's delivery lag.
    Mix {
        /// A JSON list of {"scim_url", "token"} (as `scimgate tenant create --json` prints).
        #[arg(long, value_name = "FILE")]
        targets: PathBuf,
        /// Users per tenant (as created by the `initial` scenario).
        #[arg(long, default_value_t = 10_000)]
        users: usize,
        /// Requests in flight.
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        /// Seconds the mix runs.
        #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=MAX_DURATION_SECS))]
        duration: u64,
        /// Deliver to a webhook target of this tenant (slug); needs
        /// --database-url and --data-dir.
        #[arg(long, requires_all = ["database_url", "data_dir"])]
        tenant: Option<String>,
        /// The server's database URL (without --tenant: opened and left idle,
        /// as a run with a target has it open).
        #[arg(long)]
        database_url: Option<String>,
        /// The server's data directory (its target sealing key).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// The longest wait for the last deliveries after the mix, in seconds.
        #[arg(long, default_value_t = 120)]
        drain: u64,
        /// The server's process id (its CPU is read from /proc).
        #[arg(long)]
        server_pid: Option<u32>,
    },
    /// Running `scimgate worker` processes sharing delivery through Redis:
    /// once they have shared the partitions, a backlog of several tenants
    /// (each with a webhook target on a loopback receiver) and the time
    /// until the receiver holds every event.
    Workers {
        /// The workers' PostgreSQL database URL (an empty database).
        #[arg(long)]
        database_url: String,
        /// The workers' data directory (their target sealing key file).
        #[arg(long)]
        data_dir: PathBuf,
        /// The workers' Redis URL.
        #[arg(long)]
        redis_url: String,
        /// How many workers run (the benchmark waits until they have
        /// shared the partitions).
        #[arg(long, default_value_t = 1)]
        workers: usize,
        /// Tenants, each with one webhook target, shared equally among the
        /// workers' partitions (at least 8).
        #[arg(long, default_value_t = 8)]
        tenants: usize,
        /// Users per tenant (one event each when created).
        #[arg(long, default_value_t = 1000)]
        users: usize,
        /// Updates per user after all are created (one event each).
        #[arg(long, default_value_t = 4)]
        updates: usize,
        /// Writes in flight while seeding.
        #[arg(long, default_value_t = 32)]
        seed_concurrency: usize,
        /// Give up waiting for the workers to share the partitions after
        /// this many seconds.
        #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..=MAX_DURATION_SECS))]
        balance_timeout: u64,
        /// Give up waiting for the deliveries after this many seconds.
        #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..=MAX_DURATION_SECS))]
        timeout: u64,
        /// A worker's process id (its CPU is read from /proc); repeatable.
        #[arg(long = "worker-pid")]
        worker_pids: Vec<u32>,
        /// Also write the JSON report to this file.
        #[arg(long, value_name = "FILE")]
        report: Option<PathBuf>,
    },
}

/// mimalloc, as the server uses: the benchmark shares the machine's cores.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn print<T: serde::Serialize>(json: bool, report: &T, text: String) -> ExitCode {
    if json {
        match serde_json::to_string_pretty(report) {
            Ok(j) => println!("{j}"),
            Err(e) => {
                eprintln!("scimgate-bench-delivery: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        print!("{text}");
    }
    ExitCode::SUCCESS
}

fn main() -> ExitCode {
    let args = Args::parse();
    match args.command {
        Command::Workers {
            database_url,
            data_dir,
            redis_url,
            workers,
            tenants,
            users,
            updates,
            seed_concurrency,
            balance_timeout,
            timeout,
            worker_pids,
            report,
        } => {
            let options = WorkersOptions {
                database_url,
                data_dir,
                redis_url,
                workers,
                tenants,
                users,
                updates,
                seed_concurrency,
                sample: args.sample,
                balance_timeout: Duration::from_secs(balance_timeout),
                timeout: Duration::from_secs(timeout),
                worker_pids,
            };
            match workers::run(options) {
                Ok(result) => {
                    if let Some(file) = &report {
                        let written = serde_json::to_string_pretty(&result)
                            .map_err(|e| e.to_string())
                            .and_then(|j| std::fs::write(file, j).map_err(|e| e.to_string()));
                        if let Err(e) = written {
                            eprintln!("scimgate-bench-delivery: {}: {e}", file.display());
                            return ExitCode::FAILURE;
                        }
                    }
                    let code = print(args.json, &result, result.to_text());
                    if result.honest() {
                        code
                    } else {
                        eprintln!(
                            "scimgate-bench-delivery: not every event arrived intact, once, \
                             after the start, with the partitions in place (see the report)"
                        );
                        ExitCode::FAILURE
                    }
                }
                Err(e) => {
                    eprintln!("scimgate-bench-delivery: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Throughput {
            users,
            updates,
            seed_concurrency,
            database_url,
            dir,
            timeout,
        } => {
            let options = ThroughputOptions {
                database_url,
                dir,
                users,
                updates,
                seed_concurrency,
                sample: args.sample,
                timeout: Duration::from_secs(timeout),
            };
            match throughput::run(options) {
                Ok(report) => {
                    let code = print(args.json, &report, report.to_text());
                    let honest =
                        report.complete && report.receiver.intact() && report.target_caught_up;
                    if honest {
                        code
                    } else {
                        eprintln!(
                            "scimgate-bench-delivery: not every event arrived intact (see the report)"
                        );
                        ExitCode::FAILURE
                    }
                }
                Err(e) => {
                    eprintln!("scimgate-bench-delivery: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Mix {
            targets,
            users,
            concurrency,
            duration,
            tenant,
            database_url,
            data_dir,
            drain,
            server_pid,
        } => {
            let targets: Vec<Target> = match loadgen::read_targets(&targets) {
                Ok(t) => t
                    .into_iter()
                    .map(|t| Target {
                        scim_url: t.scim_url.trim_end_matches('/').to_owned(),
                        token: t.token,
                    })
                    .collect(),
                Err(e) => {
                    eprintln!("scimgate-bench-delivery: {e}");
                    return ExitCode::from(2);
                }
            };
            let open_store = database_url.clone();
            let webhook = match (tenant, database_url, data_dir) {
                (Some(tenant), Some(database_url), Some(data_dir)) => Some(WebhookSetup {
                    database_url,
                    data_dir,
                    tenant,
                }),
                _ => None,
            };
            let options = MixOptions {
                targets,
                users,
                concurrency,
                duration: Duration::from_secs(duration),
                webhook,
                drain: Duration::from_secs(drain),
                sample: args.sample,
                server_pid,
                open_store,
            };
            // As scimgate-loadgen runs: one thread drives the load.
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("scimgate-bench-delivery: cannot start a runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(mix::run(options)) {
                Ok(report) => {
                    let code = print(args.json, &report, report.to_text());
                    let honest = report
                        .lag
                        .as_ref()
                        .is_none_or(|l| l.complete && l.receiver.intact());
                    if honest {
                        code
                    } else {
                        eprintln!(
                            "scimgate-bench-delivery: not every event arrived intact (see the report)"
                        );
                        ExitCode::FAILURE
                    }
                }
                Err(e) => {
                    eprintln!("scimgate-bench-delivery: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
