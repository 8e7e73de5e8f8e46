//! Logging: `tracing` to standard error, as JSON lines or human-readable.
//!
//! Logs go to standard error so that standard output carries only what a
//! command prints for its user (the first-start banner, `--json` documents).
//!
//! JSON lines are `tracing-subscriber`'s JSON format, flattened, with the
//! span list: `timestamp`, `level`, the event's fields (`message` among
//! them), `target`, and `spans` (root first, each with its fields and
//! `name`), as docs/configuration.md lists them. A hand-written formatter
//! once replaced it; its measured gain was within noise.

use std::io::IsTerminal;

use tracing::Subscriber;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::util::SubscriberInitExt as _;

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
    let result = match format {
        LogFormat::Json => json_subscriber(filter, std::io::stderr)
            .try_init()
            .map_err(|e| e.to_string()),
        LogFormat::Pretty => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
            .try_init()
            .map_err(|e| e.to_string()),
    };
    result.map_err(TelemetryError::AlreadySet)
}

/// The JSON-lines subscriber writing to `writer`. The span list carries
/// the request span's `request_id` and `method` on every line of a
/// request.
fn json_subscriber<W>(filter: EnvFilter, writer: W) -> impl Subscriber + Send + Sync + 'static
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(true)
        .finish()
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};

    use serde_json::{Value, json};

    use super::*;

    /// Lines written by the subscriber under test.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| io::Error::other("poisoned"))?
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn lines(run: impl FnOnce()) -> Vec<Value> {
        let captured = Captured::default();
        let sink = captured.clone();
        let filter = EnvFilter::builder().parse("debug").expect("filter");
        let subscriber = json_subscriber(filter, move || sink.clone());
        tracing::subscriber::with_default(subscriber, run);
        let bytes = captured.0.lock().expect("not poisoned").clone();
        let text = String::from_utf8(bytes).expect("UTF-8");
        assert!(text.ends_with('\n'), "{text:?}");
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
            .collect()
    }

    /// The keys docs/configuration.md documents, in a request's span.
    #[test]
    fn json_lines_carry_the_documented_keys() {
        let got = lines(|| {
            let outer = tracing::info_span!("request", request_id = "r-1", method = "PATCH");
            let _o = outer.enter();
            let inner = tracing::info_span!("job");
            let _i = inner.enter();
            tracing::info!(
                route = "/Users/{id}",
                status = 200u16,
                tenant = "acme",
                duration_ms = 3u64,
                "request completed"
            );
        });
        assert_eq!(got.len(), 1);
        let line = &got[0];
        let timestamp = line["timestamp"].as_str().expect("timestamp");
        let parsed = chrono::DateTime::parse_from_rfc3339(timestamp).expect("RFC 3339");
        assert_eq!(parsed.offset().local_minus_utc(), 0, "{timestamp}");
        assert_eq!(
            timestamp.split_once('.').map(|(_, f)| f.len()),
            Some(7),
            "microseconds and Z: {timestamp}"
        );
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["message"], "request completed");
        assert_eq!(line["route"], "/Users/{id}");
        assert_eq!(line["status"], 200);
        assert_eq!(line["tenant"], "acme");
        assert_eq!(line["duration_ms"], 3);
        assert_eq!(line["target"], module_path!());
        assert_eq!(
            line["spans"],
            json!([
                {"request_id": "r-1", "method": "PATCH", "name": "request"},
                {"name": "job"}
            ])
        );
        let keys: Vec<&str> = line
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys.first(), Some(&"timestamp"));
        assert_eq!(keys.last(), Some(&"spans"));
        assert!(line.get("span").is_none(), "no current-span duplicate");
    }

    #[test]
    fn events_outside_spans_have_no_span_list() {
        let got = lines(|| {
            tracing::warn!(error = %"disk \\ full", "cannot write");
        });
        assert_eq!(got.len(), 1);
        assert_eq!(got[0]["level"], "WARN");
        assert_eq!(got[0]["error"], "disk \\ full");
        assert_eq!(got[0]["message"], "cannot write");
        assert!(got[0].get("spans").is_none(), "{}", got[0]);
    }
}
