//! Logging: `tracing` to standard error, as JSON lines or human-readable.
//!
//! Logs go to standard error so that standard output carries only what a
//! command prints for its user (the first-start banner, `--json` documents).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::{Config, LogFormat};

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// `log_level` is not valid filter syntax.
    #[error("invalid log_level {directives:?}: {source}")]
    Filter {
        /// The directives as given.
        directives: String,
        /// The parser's complaint.
        source: tracing_subscriber::filter::ParseError,
    },
    /// A global subscriber was already installed.
    #[error("logging already initialised: {0}")]
    AlreadySet(String),
}

/// The filter directives in force: `log_level`, else `RUST_LOG`, else `fallback`.
pub fn directives(config: &Config, rust_log: Option<String>, fallback: &str) -> String {
    config
        .log_level
        .clone()
        .or(rust_log.filter(|v| !v.trim().is_empty()))
        .unwrap_or_else(|| fallback.to_owned())
}

/// The format in force: `log_format`, else pretty on a terminal and JSON otherwise.
pub fn format(config: &Config) -> LogFormat {
    config.log_format.unwrap_or_else(|| {
        if std::io::stderr().is_terminal() {
            LogFormat::Pretty
        } else {
            LogFormat::Json
        }
    })
}

/// Installs the global subscriber.
pub fn init(format: LogFormat, directives: &str) -> Result<(), TelemetryError> {
    let filter =
        EnvFilter::builder()
            .parse(directives)
            .map_err(|source| TelemetryError::Filter {
                directives: directives.to_owned(),
                source,
            })?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match format {
        // Span fields (request id, tenant) ride along on every line.
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(true)
            .try_init(),
        LogFormat::Pretty => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
    };
    result.map_err(|e| TelemetryError::AlreadySet(e.to_string()))
}
