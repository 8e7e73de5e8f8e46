//! `scimgate`: see `scimgate --help` and docs/configuration.md.

use std::io::{ErrorKind, Write as _};
use std::process::ExitCode;

use clap::Parser;
use scimgate::cli::{AdminArgs, Cli, Command, UserCommand};
use scimgate::commands::{self, CommandError, Output};
use scimgate::config::{Config, Sources};
use scimgate::server::{self, Process};
use scimgate::telemetry;

/// mimalloc rather than glibc malloc: see the note on the dependency.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = cli.json;
    let sources = Sources::from_process(cli.config.clone(), cli.flags());
    let loaded = match Config::load(&sources) {
        Ok(loaded) => loaded,
        Err(e) => return fail(json, &format!("configuration: {e}")),
    };
    let config = loaded.config;

    // Operator commands stay quiet unless asked: their output is the point.
    let fallback_level = match cli.command {
        Command::Serve(_)
        | Command::Gateway(_)
        | Command::Worker(_)
        | Command::Admin(AdminArgs { command: None, .. })
        | Command::Migrate => "info",
        Command::Backup { .. } => "warn",
        Command::Tenant(_)
        | Command::Token(_)
        | Command::Admin(_)
        | Command::Role(_)
        | Command::Routing(_)
        | Command::Lock(_)
        | Command::Unlock { .. }
        | Command::Locks { .. }
        | Command::Audit(_)
        | Command::Target(_)
        | Command::User(_)
        | Command::Group(_)
        | Command::Safety(_) => "warn",
    };
    let directives = telemetry::directives(&config, std::env::var("RUST_LOG").ok(), fallback_level);
    let _logs = match telemetry::init(telemetry::format(&config), &directives) {
        Ok(guard) => guard,
        Err(e) => return fail(json, &format!("configuration: {e}")),
    };
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }

    match cli.command {
        Command::Serve(_) => run(Process::Serve, config).await,
        Command::Gateway(_) => run(Process::Gateway, config).await,
        Command::Admin(AdminArgs { command: None, .. }) => run(Process::Admin, config).await,
        Command::Worker(_) => run(Process::Worker, config).await,
        Command::Migrate => finish(json, commands::migrate(&config).await),
        Command::Backup { file } => finish(json, commands::backup(&config, &file).await),
        Command::Tenant(command) => finish(json, commands::tenant(&config, command).await),
        Command::Token(command) => finish(json, commands::token(&config, command).await),
        Command::Admin(AdminArgs {
            command: Some(command),
            ..
        }) => finish(json, commands::admin(&config, command).await),
        Command::Role(command) => finish(json, commands::role(&config, command).await),
        Command::Routing(command) => finish(json, commands::routing(&config, command).await),
        Command::Lock(args) => finish(json, commands::lock(&config, args).await),
        Command::Unlock { tenant, user } => {
            finish(json, commands::unlock(&config, &tenant, &user).await)
        }
        Command::Locks { tenant } => finish(json, commands::locks(&config, &tenant).await),
        Command::Audit(args) => finish(json, commands::audit(&config, args).await),
        Command::Target(command) => finish(json, commands::target(&config, command).await),
        Command::User(UserCommand::Timeline { tenant, id })
        | Command::Group(UserCommand::Timeline { tenant, id }) => {
            finish(json, commands::timeline(&config, &tenant, &id).await)
        }
        Command::Safety(command) => finish(json, commands::safety(&config, command).await),
    }
}

/// Runs `process` until SIGINT or SIGTERM.
async fn run(process: Process, config: Config) -> ExitCode {
    let app = match server::start(process, config).await {
        Ok(app) => app,
        Err(e) => {
            tracing::error!(error = %e, "cannot start");
            return fail(false, &e.to_string());
        }
    };
    if !app.first_start().is_empty() {
        println!("{}", app.first_start().banner(app.public_url()));
    }
    println!("{}", app.listening_line());
    match app.run_until_signal().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "server failed");
            fail(false, &e.to_string())
        }
    }
}

fn finish(json: bool, result: Result<Output, CommandError>) -> ExitCode {
    match result {
        // Not println!, which panics when stdout is closed early
        // (`scimgate audit | head`).
        Ok(output) => match writeln!(std::io::stdout().lock(), "{}", output.render(json)) {
            Ok(()) => ExitCode::SUCCESS,
            // The reader went away: nothing to tell it.
            Err(e) if e.kind() == ErrorKind::BrokenPipe => ExitCode::FAILURE,
            Err(e) => fail(json, &format!("cannot write the output: {e}")),
        },
        Err(e) => fail(json, &e.to_string()),
    }
}

fn fail(json: bool, message: &str) -> ExitCode {
    let mut stderr = std::io::stderr().lock();
    let _ = if json {
        writeln!(stderr, "{}", serde_json::json!({ "error": message }))
    } else {
        writeln!(stderr, "scimgate: error: {message}")
    };
    ExitCode::FAILURE
}
