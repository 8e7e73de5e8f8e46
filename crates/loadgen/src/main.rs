//! `scimgate-loadgen`: SCIM load for this repository's benchmarks (loopback only).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use loadgen::sweep::{SweepOptions, SweepReport};
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
    /// Open loop: each of --rates for --secs-per-rate, the steady mix one request per arrival, at most
    /// --max-in-flight outstanding; latency from each request's intended send time (p50 to p99.9).
    Sweep,
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
    /// sweep: the offered rates, requests/s, comma-separated, in the order run.
    #[arg(long, value_delimiter = ',', default_value = "250,500,1000,2000,4000")]
    rates: Vec<u32>,
    /// sweep: seconds each rate is offered.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=MAX_DURATION_SECS))]
    secs_per_rate: u64,
    /// sweep: the most requests in flight (one connection each).
    #[arg(long, default_value_t = 256)]
    max_in_flight: usize,
    /// sweep: seconds of idle between two rates.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(0..=600))]
    pause_secs: u64,
    /// sweep: also write the figures as CSV to FILE.
    #[arg(long, value_name = "FILE")]
    csv: Option<PathBuf>,
    /// sweep: also write the report as JSON to FILE (what --plot-from reads).
    #[arg(long, value_name = "FILE")]
    json_out: Option<PathBuf>,
    /// sweep: draw the percentiles against the offered rate into FILE (PNG).
    #[arg(long, value_name = "FILE")]
    plot: Option<PathBuf>,
    /// Draw --plot from sweep reports written by --json-out instead of
    /// running any load; repeatable, LABEL=FILE or FILE. The last one is
    /// drawn solid, earlier ones (baselines) dashed.
    #[arg(long, value_name = "[LABEL=]FILE")]
    plot_from: Vec<String>,
    /// sweep: the plot's title.
    #[arg(
        long,
        default_value = "scimgate: latency against offered load (open loop)"
    )]
    title: String,
}

fn write_file(path: &std::path::Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// `--plot-from`: reads the reports and draws them; no load.
fn plot_from(args: &Args) -> Result<(), String> {
    let Some(plot) = &args.plot else {
        return Err("--plot-from needs --plot FILE".into());
    };
    let mut runs = Vec::new();
    for (n, spec) in args.plot_from.iter().enumerate() {
        let (label, file) = match spec.split_once('=') {
            Some((label, file)) => (label.to_string(), file),
            None => (format!("run {}", n + 1), spec.as_str()),
        };
        let text = std::fs::read_to_string(file).map_err(|e| format!("cannot read {file}: {e}"))?;
        let report: SweepReport =
            serde_json::from_str(&text).map_err(|e| format!("{file}: not a sweep report: {e}"))?;
        runs.push((label, report));
    }
    loadgen::plot::write_png(plot, &args.title, &runs).map_err(|e| e.to_string())
}

/// `--scenario sweep`: runs it, prints the table (or JSON) and writes the files asked for.
async fn sweep(args: &Args, targets: Vec<Target>) -> Result<(), String> {
    let options = SweepOptions {
        targets,
        users: args.users,
        rates: args.rates.clone(),
        step: Duration::from_secs(args.secs_per_rate),
        max_in_flight: args.max_in_flight,
        pause: Duration::from_secs(args.pause_secs),
    };
    let report = loadgen::run_sweep(options)
        .await
        .map_err(|e| e.to_string())?;
    let json = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
    if let Some(path) = &args.json_out {
        write_file(path, &format!("{json}\n"))?;
    }
    if let Some(path) = &args.csv {
        write_file(path, &report.to_csv())?;
    }
    if let Some(path) = &args.plot {
        loadgen::plot::write_png(
            path,
            &args.title,
            &[(String::from("this run"), report.clone())],
        )
        .map_err(|e| e.to_string())?;
    }
    if args.json {
        println!("{json}");
    } else {
        print!("{}", report.to_markdown());
    }
    Ok(())
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
    if !args.plot_from.is_empty() {
        return match plot_from(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(message) => {
                eprintln!("scimgate-loadgen: {message}");
                ExitCode::FAILURE
            }
        };
    }
    let targets = match targets(&args) {
        Ok(targets) => targets,
        Err(message) => {
            eprintln!("scimgate-loadgen: {message}");
            return ExitCode::from(2);
        }
    };
    if matches!(args.scenario, ScenarioArg::Sweep) {
        return match sweep(&args, targets).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(message) => {
                eprintln!("scimgate-loadgen: {message}");
                ExitCode::FAILURE
            }
        };
    }
    let options = Options {
        targets,
        concurrency: args.concurrency,
        scenario: match args.scenario {
            ScenarioArg::Initial => Scenario::Initial,
            ScenarioArg::Steady => Scenario::Steady,
            ScenarioArg::Lookup => Scenario::Lookup,
            ScenarioArg::LargeGroup => Scenario::LargeGroup,
            ScenarioArg::Sweep => unreachable!("handled above"),
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
