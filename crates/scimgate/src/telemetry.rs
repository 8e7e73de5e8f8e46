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
//!
//! Lines are written in batches ([`Batched`]): a `write` to standard error
//! per line (one per request) was about 3 % of a filter GET's CPU on one
//! core. A line of level INFO or below waits in memory at most
//! [`BATCH_WAIT`]; a warning or an error is written at once, after every
//! line before it.

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

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
    /// The thread that writes batched lines could not start.
    #[error("cannot start the log writer: {0}")]
    Writer(std::io::Error),
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

/// How long a line of level INFO or below may wait in memory.
pub const BATCH_WAIT: Duration = Duration::from_millis(25);

/// Pending lines past this size are written without waiting.
const BATCH_BYTES: usize = 64 * 1024;

/// Installs the global subscriber; the guard writes what is pending when
/// dropped (keep it until the process ends).
pub fn init(format: LogFormat, directives: &str) -> Result<LogGuard, TelemetryError> {
    let filter =
        EnvFilter::builder()
            .parse(directives)
            .map_err(|source| TelemetryError::Filter {
                directives: directives.to_owned(),
                source,
            })?;
    let writer = Batched::new(std::io::stderr());
    let result = match format {
        LogFormat::Json => json_subscriber(filter, writer.clone())
            .try_init()
            .map_err(|e| e.to_string()),
        LogFormat::Pretty => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(writer.clone())
            .with_ansi(std::io::stderr().is_terminal())
            .try_init()
            .map_err(|e| e.to_string()),
    };
    result.map_err(TelemetryError::AlreadySet)?;
    let flusher = writer.clone();
    // A thread, not a task: logging works before and after the runtime,
    // and a busy runtime does not hold lines back.
    std::thread::Builder::new()
        .name("log-writer".into())
        .spawn(move || {
            loop {
                std::thread::sleep(BATCH_WAIT);
                flusher.flush();
            }
        })
        .map_err(TelemetryError::Writer)?;
    Ok(LogGuard(writer))
}

/// Writes the pending log lines when dropped.
#[must_use = "dropping the guard at once loses nothing, but keep it until the process ends"]
pub struct LogGuard(Batched<std::io::Stderr>);

impl Drop for LogGuard {
    fn drop(&mut self) {
        self.0.flush();
    }
}

/// Log lines gathered in memory and written to `W` in batches.
pub struct Batched<W>(Arc<Pending<W>>);

impl<W> Clone for Batched<W> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

struct Pending<W> {
    lines: Mutex<Vec<u8>>,
    /// Held while a batch is taken and written, so batches leave in the
    /// order their lines came.
    out: Mutex<W>,
}

/// A poisoned lock only means a thread panicked while logging; the bytes
/// are still bytes.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<W: Write> Batched<W> {
    /// Batches lines for `out`.
    pub fn new(out: W) -> Self {
        Self(Arc::new(Pending {
            lines: Mutex::new(Vec::with_capacity(BATCH_BYTES)),
            out: Mutex::new(out),
        }))
    }

    /// Writes every pending line.
    pub fn flush(&self) {
        let mut out = lock(&self.0.out);
        let batch = std::mem::take(&mut *lock(&self.0.lines));
        if batch.is_empty() {
            return;
        }
        // Nowhere to report a failure to write the log.
        let _ = out.write_all(&batch);
        let _ = out.flush();
        // Give the buffer back, so the next batch does not grow one again.
        let mut lines = lock(&self.0.lines);
        if lines.is_empty() {
            let mut batch = batch;
            batch.clear();
            *lines = batch;
        }
    }
}

/// One event's line (the formatter writes it whole, then drops this).
pub struct Line<'a, W: Write> {
    batched: &'a Batched<W>,
    urgent: bool,
}

impl<W: Write> Write for Line<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut lines = lock(&self.batched.0.lines);
        lines.extend_from_slice(buf);
        if lines.len() >= BATCH_BYTES {
            self.urgent = true;
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<W: Write> Drop for Line<'_, W> {
    fn drop(&mut self) {
        if self.urgent {
            self.batched.flush();
        }
    }
}

impl<'a, W: Write + 'a> MakeWriter<'a> for Batched<W> {
    type Writer = Line<'a, W>;

    fn make_writer(&'a self) -> Self::Writer {
        Line {
            batched: self,
            urgent: true,
        }
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Self::Writer {
        Line {
            batched: self,
            urgent: *meta.level() <= tracing::Level::WARN,
        }
    }
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

    /// Informational lines wait for a flush; a warning takes every line
    /// before it along, in order.
    #[test]
    fn lines_wait_in_memory_until_a_warning_or_a_flush() {
        let captured = Captured::default();
        let batched = Batched::new(captured.clone());
        let filter = EnvFilter::builder().parse("debug").expect("filter");
        let subscriber = json_subscriber(filter, batched.clone());
        let written = || {
            let bytes = captured.0.lock().expect("not poisoned").clone();
            String::from_utf8(bytes)
                .expect("UTF-8")
                .lines()
                .map(|l| {
                    serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("{l:?}: {e}"))
                        ["message"]
                        .as_str()
                        .map(str::to_owned)
                        .unwrap_or_default()
                })
                .collect::<Vec<_>>()
        };
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!("one");
            tracing::debug!("two");
            assert!(written().is_empty(), "{:?}", written());
            tracing::warn!("three");
            assert_eq!(written(), ["one", "two", "three"]);
            tracing::info!("four");
            assert_eq!(written().len(), 3);
            batched.flush();
            assert_eq!(written(), ["one", "two", "three", "four"]);
            // A burst past the batch size is written without waiting.
            let long = "x".repeat(1000);
            for _ in 0..(BATCH_BYTES / 1000 + 1) {
                tracing::info!("{long}");
            }
            assert!(written().len() > 4, "a full batch was written");
        });
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
