//! `scimgate-loadgen`: SCIM load for this repository's benchmarks (loopback only).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use loadgen::{MAX_DURATION_SECS, Options, Scenario, Target};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ScenarioArg {
    /// Entra's initial cycle: per user a lookup then a POST; per group a lookup, a POST, member PATCHes.
    Initial,
    /// For --duration: 60% userName lookups, 25% user PATCHes, 15% group member PATCHes (add then remove).
    Steady,
    /// For --duration: only `userName eq` lookups of existing users.
    Lookup,
    /// One group of all --users: the initial cycle's users, then one group PATCHed 10 members per request, in sequence.
    LargeGroup,
}

/// Drives Entra-shaped SCIM traffic at scimgate tenants on this machine and
/// reports requests/s and latency percentiles per operation.
#[derive(Debug, Parser)]
#[command(name = "scimgate-loadgen", version)]
struct Args {
    /// A tenant's SCIM base URL (loopback only); repeatable, each with a --token.
    #[arg(long = "url", value_name = "URL")]
    urls: Vec<String>,
    /// The bearer token of the --url at the same position.
    #[arg(long = "token", value_name = "TOKEN")]
    tokens: Vec<String>,
    /// A JSON list of {"scim_url", "token"} objects, one per tenant.
    #[arg(long, value_name = "FILE")]
    targets: Option<PathBuf>,
    /// The origin (http://127.0.0.1:PORT) of one of several processes serving
    /// the same tenants; repeatable. Connections are spread round-robin over
    /// them (worker w sends to gateway w % n), each target's URL keeping its
    /// path. Without it, the target URLs as given.
    #[arg(long = "gateway", value_name = "ORIGIN")]
    gateways: Vec<String>,
    /// Concurrent requests in flight.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// The traffic to generate.
    #[arg(long, value_enum, default_value_t = ScenarioArg::Steady)]
    scenario: ScenarioArg,
    /// Users per tenant: created by `initial`, looked up by `steady` and `lookup`.
    #[arg(long, default_value_t = 1000)]
    users: usize,
    /// Groups per tenant created by `initial` (users are spread over them).
    #[arg(long, default_value_t = 10)]
    groups: usize,
    /// Seconds `steady`/`lookup` run; the time limit of `initial`.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=MAX_DURATION_SECS))]
    duration: u64,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

fn targets(args: &Args) -> Result<Vec<Target>, String> {
    if args.urls.len() != args.tokens.len() {
        return Err(format!(
            "{} --url but {} --token: give one token per URL",
            args.urls.len(),
            args.tokens.len()
        ));
    }
    let mut targets: Vec<Target> = args
        .urls
        .iter()
        .zip(&args.tokens)
        .map(|(url, token)| Target {
            scim_url: url.trim_end_matches('/').to_string(),
            token: token.clone(),
        })
        .collect();
    if let Some(file) = &args.targets {
        let mut from_file = loadgen::read_targets(file).map_err(|e| e.to_string())?;
        for target in &mut from_file {
            target.scim_url = target.scim_url.trim_end_matches('/').to_string();
        }
        targets.extend(from_file);
    }
    Ok(targets)
}

/// mimalloc, as the server uses: the load tool shares the machine's cores.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = Args::parse();
    let targets = match targets(&args) {
        Ok(targets) => targets,
        Err(message) => {
            eprintln!("scimgate-loadgen: {message}");
            return ExitCode::from(2);
        }
    };
    let options = Options {
        targets,
        concurrency: args.concurrency,
        scenario: match args.scenario {
            ScenarioArg::Initial => Scenario::Initial,
            ScenarioArg::Steady => Scenario::Steady,
            ScenarioArg::Lookup => Scenario::Lookup,
            ScenarioArg::LargeGroup => Scenario::LargeGroup,
        },
        users: args.users,
        groups: args.groups,
        duration: Duration::from_secs(args.duration),
        gateways: args.gateways,
    };
    match loadgen::run(options).await {
        Ok(report) => {
            if args.json {
                match serde_json::to_string_pretty(&report) {
                    Ok(json) => println!("{json}"),
                    Err(e) => {
                        eprintln!("scimgate-loadgen: {e}");
                        return ExitCode::FAILURE;
                    }
                }
            } else {
                print!("{}", report.to_text());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("scimgate-loadgen: {e}");
            ExitCode::FAILURE
        }
    }
}
