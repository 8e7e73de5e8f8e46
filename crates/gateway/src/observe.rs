//! Request ids, the per-request tracing span, and the Prometheus metrics.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage};
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};
use tracing::Instrument;

/// The request id header, honoured on input and always set on output.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

tokio::task_local! {
    static CURRENT_REQUEST_ID: String;
}

/// The id of the request being served, or `-` outside a request.
pub fn current_request_id() -> String {
    CURRENT_REQUEST_ID
        .try_with(Clone::clone)
        .unwrap_or_else(|_| "-".to_owned())
}

/// The tenant a request was authenticated for, named on its log line.
#[derive(Debug, Clone)]
pub(crate) struct LogTenant(pub(crate) String);

/// Marks a request no route matched, so its metrics label is not the
/// enclosing scope's pattern.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Unmatched;

/// A client's id is kept when it is short and made of characters that are
/// safe in logs and headers; anything else is replaced, never echoed.
fn sane_request_id(v: &HeaderValue) -> Option<String> {
    let s = v.to_str().ok()?;
    let ok = !s.is_empty()
        && s.len() <= 128
        && s.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':' | b'/' | b'+' | b'=')
        });
    ok.then(|| s.to_owned())
}

/// The metrics this service exports, all prefixed `scimgate_`.
#[derive(Clone)]
pub(crate) struct Metrics {
    pub http_requests: IntCounterVec,
    pub http_duration: HistogramVec,
    pub operations: IntCounterVec,
    pub auth_failures: IntCounterVec,
    pub rate_limited: IntCounterVec,
    pub token_cache: IntCounterVec,
    pub log_dropped: prometheus::IntCounter,
    pub fanout: IntCounterVec,
}

impl Metrics {
    pub(crate) fn register(registry: &Registry) -> Result<Metrics, prometheus::Error> {
        let m = Metrics {
            http_requests: IntCounterVec::new(
                Opts::new("scimgate_http_requests_total", "HTTP requests served"),
                &["method", "route", "status"],
            )?,
            http_duration: HistogramVec::new(
                HistogramOpts::new(
                    "scimgate_http_request_duration_seconds",
                    "HTTP request latency",
                )
                .buckets(vec![
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                ]),
                &["method", "route"],
            )?,
            operations: IntCounterVec::new(
                Opts::new(
                    "scimgate_scim_operations_total",
                    "SCIM operations by tenant, resource type, operation and outcome",
                ),
                &["tenant", "resource", "operation", "outcome"],
            )?,
            auth_failures: IntCounterVec::new(
                Opts::new(
                    "scimgate_auth_failures_total",
                    "Requests refused by authentication or authorization",
                ),
                &["reason"],
            )?,
            rate_limited: IntCounterVec::new(
                Opts::new(
                    "scimgate_rate_limited_total",
                    "Requests refused by the per-tenant rate limit",
                ),
                &["tenant"],
            )?,
            token_cache: IntCounterVec::new(
                Opts::new(
                    "scimgate_token_cache_total",
                    "Bearer token cache lookups by result",
                ),
                &["result"],
            )?,
            log_dropped: prometheus::IntCounter::new(
                "scimgate_provisioning_log_dropped_total",
                "Provisioning-log entries dropped because the writer queue was full",
            )?,
            fanout: IntCounterVec::new(
                Opts::new(
                    "scimgate_fanout_copies_total",
                    "Copies a super tenant's SCIM writes changed in its children, by super tenant, child, resource type and action",
                ),
                &["tenant", "child", "resource", "action"],
            )?,
        };
        registry.register(Box::new(m.http_requests.clone()))?;
        registry.register(Box::new(m.http_duration.clone()))?;
        registry.register(Box::new(m.operations.clone()))?;
        registry.register(Box::new(m.auth_failures.clone()))?;
        registry.register(Box::new(m.rate_limited.clone()))?;
        registry.register(Box::new(m.token_cache.clone()))?;
        registry.register(Box::new(m.log_dropped.clone()))?;
        registry.register(Box::new(m.fanout.clone()))?;
        Ok(m)
    }
}

/// Middleware: request id in and out, one span per request, HTTP metrics.
pub(crate) async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody + 'static>, Error> {
    let started = Instant::now();
    let metrics = req
        .app_data::<actix_web::web::Data<crate::Shared>>()
        .map(|s| s.metrics.clone());
    let id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(sane_request_id)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let method = req.method().as_str().to_owned();
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %method,
    );
    let result = CURRENT_REQUEST_ID
        .scope(id.clone(), next.call(req).instrument(span.clone()))
        .await;
    let elapsed = started.elapsed();
    match result {
        Ok(mut res) => {
            let route = if res.request().extensions().get::<Unmatched>().is_some() {
                "unmatched".to_owned()
            } else {
                res.request()
                    .match_pattern()
                    .unwrap_or_else(|| "unmatched".to_owned())
            };
            let status = res.status().as_u16();
            if let Some(metrics) = &metrics {
                metrics
                    .http_requests
                    .with_label_values(&[method.as_str(), route.as_str(), &status.to_string()])
                    .inc();
                metrics
                    .http_duration
                    .with_label_values(&[method.as_str(), route.as_str()])
                    .observe(elapsed.as_secs_f64());
            }
            if let Ok(v) = HeaderValue::from_str(&id) {
                res.headers_mut().insert(REQUEST_ID, v);
            }
            // Route, status and tenant go on this one event, not into the
            // span: the JSON formatter re-parses and re-writes a span's
            // fields on every `record`, which cost more than the line itself.
            let tenant = res.request().extensions().get::<LogTenant>().cloned();
            span.in_scope(|| {
                tracing::info!(
                    route = route.as_str(),
                    status,
                    tenant = tenant.as_ref().map(|t| t.0.as_str()),
                    duration_ms = elapsed.as_millis() as u64,
                    "request completed"
                );
            });
            Ok(res)
        }
        Err(e) => {
            // Handlers turn their errors into responses; this is a failure
            // of the framework itself, counted under an unknown route.
            if let Some(metrics) = &metrics {
                metrics
                    .http_requests
                    .with_label_values(&[method.as_str(), "unmatched", "500"])
                    .inc();
            }
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_kept_only_when_sane() {
        let ok = HeaderValue::from_static("abc-123_x.y:z");
        assert_eq!(sane_request_id(&ok).as_deref(), Some("abc-123_x.y:z"));
        for bad in ["", "has space", "quote\"", "<script>"] {
            let v = HeaderValue::from_str(bad).unwrap();
            assert_eq!(sane_request_id(&v), None, "{bad:?}");
        }
        let long = HeaderValue::from_str(&"a".repeat(129)).unwrap();
        assert_eq!(sane_request_id(&long), None);
    }

    #[test]
    fn metrics_register_once_per_registry() {
        let r = Registry::new();
        assert!(Metrics::register(&r).is_ok());
        assert!(Metrics::register(&r).is_err());
    }
}
