//! Logging: `tracing` to standard error, as JSON lines or human-readable.
//!
//! Logs go to standard error so that standard output carries only what a
//! command prints for its user (the first-start banner, `--json` documents).

use std::fmt;
use std::io::{IsTerminal, Write as _};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

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
        // Span fields (request id, method) ride along on every line.
        LogFormat::Json => builder
            .fmt_fields(JsonFields::new())
            .event_format(JsonLines)
            .try_init(),
        LogFormat::Pretty => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
    };
    result.map_err(|e| TelemetryError::AlreadySet(e.to_string()))
}

/// One JSON object per event: `timestamp`, `level`, the event's fields
/// (`message` among them), `target`, and `spans` (root first, each with
/// its fields and `name`).
///
/// The same lines as `tracing-subscriber`'s JSON format with flattened
/// events and a span list, written directly: that format parses every
/// span's stored fields back into a map and serialises them again for each
/// line, which cost more than the rest of the line (one line per request).
/// Span fields are stored as a JSON object by [`JsonFields`] and spliced in
/// as they are.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonLines;

impl<S> FormatEvent<S, JsonFields> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, JsonFields>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let mut line: Vec<u8> = Vec::with_capacity(256);
        let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.6fZ");
        let _ = write!(
            line,
            "{{\"timestamp\":\"{now}\",\"level\":\"{}\"",
            meta.level()
        );
        event.record(&mut FieldsVisitor { out: &mut line });
        line.extend_from_slice(b",\"target\":");
        json(&mut line, meta.target());
        if let Some(scope) = ctx.event_scope() {
            line.extend_from_slice(b",\"spans\":[");
            for (i, span) in scope.from_root().enumerate() {
                if i > 0 {
                    line.push(b',');
                }
                line.push(b'{');
                let extensions = span.extensions();
                if let Some(fields) = extensions.get::<FormattedFields<JsonFields>>() {
                    let inner = fields
                        .fields
                        .trim()
                        .strip_prefix('{')
                        .and_then(|f| f.strip_suffix('}'))
                        .unwrap_or("")
                        .trim();
                    if !inner.is_empty() {
                        line.extend_from_slice(inner.as_bytes());
                        line.push(b',');
                    }
                }
                line.extend_from_slice(b"\"name\":");
                json(&mut line, span.name());
                line.push(b'}');
            }
            line.push(b']');
        }
        line.extend_from_slice(b"}\n");
        writer.write_str(std::str::from_utf8(&line).map_err(|_| fmt::Error)?)
    }
}

/// Appends `value` as JSON (serde_json's encoding: escapes, and `null` for
/// a NaN or infinite float).
fn json(out: &mut Vec<u8>, value: impl serde::Serialize) {
    // Writing to a Vec cannot fail, and these values always serialise.
    let _ = serde_json::to_writer(out, &value);
}

/// Writes an event's fields as `,"name":value` pairs.
struct FieldsVisitor<'a> {
    out: &'a mut Vec<u8>,
}

impl FieldsVisitor<'_> {
    fn field(&mut self, field: &Field, value: impl serde::Serialize) {
        self.out.push(b',');
        json(self.out, field.name());
        self.out.push(b':');
        json(self.out, value);
    }
}

impl Visit for FieldsVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.field(field, value);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.field(field, value);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.field(field, value);
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.field(field, value);
    }

    fn record_i128(&mut self, field: &Field, value: i128) {
        self.field(field, value);
    }

    fn record_u128(&mut self, field: &Field, value: u128) {
        self.field(field, value);
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.field(field, value);
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.field(field, value.to_string());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.field(field, format!("{value:?}"));
    }
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
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(move || sink.clone())
            .fmt_fields(JsonFields::new())
            .event_format(JsonLines)
            .finish();
        tracing::subscriber::with_default(subscriber, run);
        let bytes = captured.0.lock().expect("not poisoned").clone();
        let text = String::from_utf8(bytes).expect("UTF-8");
        assert!(text.ends_with('\n'), "{text:?}");
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
            .collect()
    }

    #[test]
    fn lines_are_json_with_fields_target_and_spans() {
        let got = lines(|| {
            let outer = tracing::info_span!("request", request_id = "r-1", method = "PATCH");
            let _o = outer.enter();
            let inner = tracing::info_span!("job");
            let _i = inner.enter();
            tracing::info!(
                route = "/Users/{id}",
                status = 200u16,
                delta = -3i64,
                ok = true,
                ratio = 0.5f64,
                odd = f64::NAN,
                "done \"quoted\"\nnext\u{1}é"
            );
        });
        assert_eq!(got.len(), 1);
        let line = &got[0];
        let timestamp = line["timestamp"].as_str().expect("timestamp");
        assert!(
            chrono::DateTime::parse_from_rfc3339(timestamp).is_ok(),
            "{timestamp}"
        );
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["message"], "done \"quoted\"\nnext\u{1}é");
        assert_eq!(line["route"], "/Users/{id}");
        assert_eq!(line["status"], 200);
        assert_eq!(line["delta"], -3);
        assert_eq!(line["ok"], true);
        assert_eq!(line["ratio"], 0.5);
        assert_eq!(line["odd"], Value::Null);
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
