//! Request ids, the per-request tracing span, and the Prometheus metrics.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage};
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};
use store::health::{Cause, Signature, Tally};
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

/// The tenant a request was authenticated for: named on its log line,
/// counted in its metrics and in the quarantine guard's tally.
#[derive(Debug, Clone)]
pub(crate) struct LogTenant {
    pub(crate) id: uuid::Uuid,
    pub(crate) slug: String,
}

/// What an error response said, for the quarantine guard's list of
/// failing requests (set by the one place errors become responses).
#[derive(Debug, Clone)]
pub(crate) struct FailureNote {
    pub(crate) scim_type: Option<&'static str>,
    pub(crate) detail: String,
}

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
    pub scim_requests: IntCounterVec,
    pub scim_failures: IntCounterVec,
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
            scim_requests: IntCounterVec::new(
                Opts::new(
                    "scimgate_scim_requests_total",
                    "Authenticated SCIM requests by tenant, resource, method and status",
                ),
                &["tenant", "resource", "method", "status"],
            )?,
            scim_failures: IntCounterVec::new(
                Opts::new(
                    "scimgate_scim_request_failures_total",
                    "SCIM requests the quarantine guard counts as failed, by tenant and cause \
                     (validation, conflict, auth, throttled, server, timeout)",
                ),
                &["tenant", "cause"],
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
        registry.register(Box::new(m.scim_requests.clone()))?;
        registry.register(Box::new(m.scim_failures.clone()))?;
        Ok(m)
    }
}

/// How the `tenant` label of the metrics is filled (`metrics_tenant_label`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TenantLabel {
    /// Every tenant under its own slug.
    #[default]
    All,
    /// Every tenant as `other`: no per-tenant series at all.
    Off,
    /// The N busiest tenants (by SCIM requests over the last
    /// [`TOP_REVIEW`]) under their slug, the rest as `other`.
    Top(usize),
}

impl std::str::FromStr for TenantLabel {
    type Err = String;

    fn from_str(s: &str) -> Result<TenantLabel, String> {
        match s.trim() {
            "all" => Ok(TenantLabel::All),
            "off" => Ok(TenantLabel::Off),
            other => other
                .strip_prefix("top:")
                .and_then(|n| n.trim().parse::<usize>().ok())
                .filter(|n| *n > 0)
                .map(TenantLabel::Top)
                .ok_or_else(|| format!("{other:?} is not one of all, off, top:N (N at least 1)")),
        }
    }
}

impl std::fmt::Display for TenantLabel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TenantLabel::All => f.write_str("all"),
            TenantLabel::Off => f.write_str("off"),
            TenantLabel::Top(n) => write!(f, "top:{n}"),
        }
    }
}

/// The label value of tenants without their own.
pub const OTHER_TENANTS: &str = "other";

/// How often a `top:N` label re-picks its tenants.
pub const TOP_REVIEW: Duration = Duration::from_secs(600);

/// Maps tenant slugs to metric label values under a [`TenantLabel`].
pub(crate) struct TenantLabels {
    mode: TenantLabel,
    top: Mutex<TopTenants>,
}

/// Under `top:N`: who has a label, and each tenant's traffic since the
/// last review.
struct TopTenants {
    admitted: HashSet<String>,
    traffic: HashMap<String, u64>,
    reviewed: Instant,
}

impl TenantLabels {
    pub(crate) fn new(mode: TenantLabel) -> TenantLabels {
        TenantLabels {
            mode,
            top: Mutex::new(TopTenants {
                admitted: HashSet::new(),
                traffic: HashMap::new(),
                reviewed: Instant::now(),
            }),
        }
    }

    /// The label of `slug`. Under `top:N` the first N tenants seen get
    /// theirs; each review keeps the N busiest since the one before, so a
    /// tenant that stops sending gives its place up (its series stay, with
    /// their last values, until the process restarts).
    pub(crate) fn label<'a>(&self, slug: &'a str) -> Cow<'a, str> {
        let n = match self.mode {
            TenantLabel::All => return Cow::Borrowed(slug),
            TenantLabel::Off => return Cow::Borrowed(OTHER_TENANTS),
            TenantLabel::Top(n) => n,
        };
        let Ok(mut top) = self.top.lock() else {
            return Cow::Borrowed(OTHER_TENANTS);
        };
        if top.reviewed.elapsed() >= TOP_REVIEW {
            let mut busiest: Vec<(String, u64)> = top.traffic.drain().collect();
            busiest.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            top.admitted = busiest.into_iter().take(n).map(|(s, _)| s).collect();
            top.reviewed = Instant::now();
        }
        match top.traffic.get_mut(slug) {
            Some(count) => *count += 1,
            None => {
                top.traffic.insert(slug.to_owned(), 1);
            }
        }
        if top.admitted.contains(slug) {
            return Cow::Borrowed(slug);
        }
        if top.admitted.len() < n {
            top.admitted.insert(slug.to_owned());
            return Cow::Borrowed(slug);
        }
        Cow::Borrowed(OTHER_TENANTS)
    }
}

/// The quarantine guard's counts since the last flush, by tenant id.
#[derive(Default)]
pub(crate) struct GuardTally {
    tenants: Mutex<HashMap<uuid::Uuid, Tally>>,
}

impl GuardTally {
    fn add(&self, tenant: uuid::Uuid, failure: Option<(Cause, Signature, &str)>) {
        if let Ok(mut tenants) = self.tenants.lock() {
            tenants.entry(tenant).or_default().add(failure);
        }
    }

    /// Everything counted since the last call.
    pub(crate) fn take(&self) -> Vec<(uuid::Uuid, Tally)> {
        match self.tenants.lock() {
            Ok(mut tenants) => tenants.drain().collect(),
            Err(_) => Vec::new(),
        }
    }
}

/// The SCIM resource a route pattern serves.
fn resource_of(route: &str) -> &'static str {
    let tail = route.rsplit_once("/scim/v2").map_or("", |(_, t)| t);
    let first = tail.trim_start_matches('/').split('/').next().unwrap_or("");
    match first {
        "Users" => "User",
        "Groups" => "Group",
        "Bulk" => "Bulk",
        "Me" => "Me",
        "ServiceProviderConfig" | "ResourceTypes" | "Schemas" => "discovery",
        _ => "other",
    }
}

impl crate::Shared {
    /// The `tenant` label value for `slug` (see [`TenantLabel`]).
    pub(crate) fn tenant_label<'a>(&self, slug: &'a str) -> Cow<'a, str> {
        self.tenant_labels.label(slug)
    }

    /// Counts an authenticated SCIM request in the metrics and in the
    /// quarantine guard's tally.
    fn count_scim_request(
        &self,
        tenant: &LogTenant,
        method: &str,
        route: &str,
        status: u16,
        elapsed: Duration,
        note: Option<FailureNote>,
    ) {
        let label = self.tenant_label(&tenant.slug);
        let code = status.to_string();
        self.metrics
            .scim_requests
            .with_label_values(&[&label, resource_of(route), method, code.as_str()])
            .inc();
        let cause = store::health::classify(status, elapsed);
        let failure = cause.map(|cause| {
            self.metrics
                .scim_failures
                .with_label_values(&[&label, cause.as_str()])
                .inc();
            let (scim_type, detail) = match &note {
                Some(n) => (n.scim_type.map(str::to_owned), n.detail.as_str()),
                None => (None, ""),
            };
            (
                cause,
                Signature {
                    method: method.to_owned(),
                    route: route.to_owned(),
                    status,
                    scim_type,
                },
                detail,
            )
        });
        self.guard.add(tenant.id, failure);
    }
}

/// Middleware: request id in and out, one span per request, HTTP metrics.
pub(crate) async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody + 'static>, Error> {
    let started = Instant::now();
    let shared = req
        .app_data::<actix_web::web::Data<crate::Shared>>()
        .cloned();
    let metrics = shared.as_ref().map(|s| s.metrics.clone());
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
            if let (Some(shared), Some(tenant)) = (&shared, &tenant) {
                let note = res.response().extensions().get::<FailureNote>().cloned();
                shared.count_scim_request(tenant, &method, &route, status, elapsed, note);
            }
            span.in_scope(|| {
                tracing::info!(
                    route = route.as_str(),
                    status,
                    tenant = tenant.as_ref().map(|t| t.slug.as_str()),
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
    fn the_tenant_label_is_bounded_as_configured() {
        let all = TenantLabels::new(TenantLabel::All);
        assert_eq!(all.label("acme"), "acme");
        let off = TenantLabels::new(TenantLabel::Off);
        assert_eq!(off.label("acme"), OTHER_TENANTS);
        let top = TenantLabels::new(TenantLabel::Top(2));
        assert_eq!(top.label("a"), "a");
        assert_eq!(top.label("b"), "b");
        assert_eq!(top.label("c"), OTHER_TENANTS);
        assert_eq!(top.label("a"), "a");
        // A review keeps the busiest since the last one: c overtakes b.
        for _ in 0..5 {
            top.label("c");
        }
        if let Ok(mut t) = top.top.lock() {
            t.reviewed = Instant::now() - TOP_REVIEW;
        }
        assert_eq!(top.label("c"), "c");
        assert_eq!(top.label("a"), "a");
        assert_eq!(top.label("b"), OTHER_TENANTS);
    }

    #[test]
    fn tenant_label_modes_parse_and_print() {
        for text in ["all", "off", "top:5"] {
            let mode: TenantLabel = text.parse().unwrap();
            assert_eq!(mode.to_string(), text);
        }
        for bad in ["", "top:0", "top:-1", "first:3", "top"] {
            assert!(bad.parse::<TenantLabel>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn routes_name_their_scim_resource() {
        assert_eq!(resource_of("/scim/v2/Users/{id}"), "User");
        assert_eq!(resource_of("/tenants/{slug}/scim/v2/Groups"), "Group");
        assert_eq!(resource_of("/scim/v2/Users/.search"), "User");
        assert_eq!(resource_of("/scim/v2/Schemas/{urn}"), "discovery");
        assert_eq!(resource_of("/scim/v2/Bulk"), "Bulk");
        assert_eq!(resource_of("unmatched"), "other");
    }

    #[test]
    fn metrics_register_once_per_registry() {
        let r = Registry::new();
        assert!(Metrics::register(&r).is_ok());
        assert!(Metrics::register(&r).is_err());
    }
}
