//! `scimgate-bench-delivery`: the delivery benchmarks (docs/benchmarks.md;
//! `scripts/bench-delivery` runs them all). Loopback only.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use loadgen::delivery::mix::{self, MixOptions, WebhookSetup};
use loadgen::delivery::throughput::{self, ThroughputOptions};
use loadgen::{MAX_DURATION_SECS, Target};

/// Delivery benchmarks: a worker's throughput from a backlog, and the
/// steady SCIM mix with and without a webhook target.
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
                    let honest = report.complete
                        && report.failed_checks == 0
                        && report.malformed == 0
                        && report.target_caught_up;
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
                        .is_none_or(|l| l.complete && l.failed_checks == 0 && l.malformed == 0);
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
