//! The quarantine guard's record: how a tenant's SCIM requests fared,
//! per minute, and its rule (docs/quarantine-guard.md).
//!
//! Microsoft Entra's provisioning service puts a job "in quarantine" when
//! "most, or all, of the calls made against the target system consistently
//! fail"; incremental cycles then slow to one a day, and a job quarantined
//! for four weeks is disabled. Microsoft publishes no number, so the guard
//! reads "most" as half ([`QUARANTINE_RATIO`]) and warns at a fifth
//! ([`WARN_RATIO`]) over the last hour ([`WINDOW_MINUTES`]), once the
//! tenant made enough requests for a ratio to mean something
//! ([`MIN_REQUESTS`]).
//!
//! Each gateway counts in memory and adds its counts to one row per
//! tenant and minute every few seconds, so the ratio is the fleet's, read
//! by the admin API, the console and the metrics of any process alike.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, Func, OnConflict, Order, Query, SimpleExpr};
use sea_orm::{ConnectionTrait, DbBackend};
use serde::Serialize;
use uuid::Uuid;

use crate::db::{db, dbx};
use crate::{AdminStore, Result, TenantStore};

/// The rolling window the ratio is taken over, in minutes.
pub const WINDOW_MINUTES: i64 = 60;
/// A ratio at or above this (with [`MIN_REQUESTS`]) is flagged at risk.
pub const WARN_RATIO: f64 = 0.2;
/// The guard's reading of Microsoft's "most calls fail".
pub const QUARANTINE_RATIO: f64 = 0.5;
/// Fewer requests in the window than this are never flagged: three
/// failures out of five are noise, not a failing configuration.
pub const MIN_REQUESTS: u64 = 20;
/// A request answered later than this counts as a timeout whatever its
/// status: the IdP has likely given up on it by then.
pub const TIMEOUT_AFTER: Duration = Duration::from_secs(10);
/// How long per-minute rows are kept (a day, for the console's history).
pub const RETENTION_MINUTES: i64 = 24 * 60;
/// Distinct failing requests kept per tenant and minute.
pub const MAX_SAMPLES: usize = 20;
/// Failing requests a health report lists.
pub const TOP_FAILURES: u64 = 5;
/// Longest `detail` kept for a failing request.
const MAX_DETAIL_CHARS: usize = 300;

/// Why a request counts as failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Cause {
    /// A 4xx the request itself caused (bad filter, path, value, body).
    Validation,
    /// 409 (uniqueness) or 412 (a stale `If-Match`).
    Conflict,
    /// 401 or 403: the token, its scope, or a suspended tenant.
    Auth,
    /// 429: the tenant's rate limit.
    Throttled,
    /// 5xx: scimgate or its database.
    Server,
    /// Answered after [`TIMEOUT_AFTER`].
    Timeout,
}

impl Cause {
    /// Every cause, in the order of the columns that count them.
    pub const ALL: [Cause; 6] = [
        Cause::Validation,
        Cause::Conflict,
        Cause::Auth,
        Cause::Throttled,
        Cause::Server,
        Cause::Timeout,
    ];

    /// The name used in metrics labels, the API and the console.
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::Validation => "validation",
            Cause::Conflict => "conflict",
            Cause::Auth => "auth",
            Cause::Throttled => "throttled",
            Cause::Server => "server",
            Cause::Timeout => "timeout",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The guard's classification of one answered request. A 404 is not a
/// failure: Entra and Okta look users up by GET and expect 404 for the
/// ones that are not there yet.
pub fn classify(status: u16, elapsed: Duration) -> Option<Cause> {
    if elapsed >= TIMEOUT_AFTER {
        return Some(Cause::Timeout);
    }
    match status {
        0..=399 | 404 => None,
        401 | 403 => Some(Cause::Auth),
        409 | 412 => Some(Cause::Conflict),
        429 => Some(Cause::Throttled),
        400..=499 => Some(Cause::Validation),
        _ => Some(Cause::Server),
    }
}

/// What to look at first for a failing request, by its cause and
/// `scimType`: shown beside the request in the API and the console.
pub fn advice(cause: Cause, status: u16, scim_type: Option<&str>) -> &'static str {
    match (cause, scim_type) {
        (Cause::Validation, Some("invalidFilter")) => {
            "The IdP sends a filter scimgate refuses: check the attribute mappings' matching \
             attribute (Entra: 'Matching precedence') names a SCIM attribute such as userName \
             or externalId."
        }
        (Cause::Validation, Some("invalidPath" | "noTarget")) => {
            "A PATCH names an attribute path scimgate does not know: check the IdP's attribute \
             mappings for custom or misspelled target attributes, or add them to the tenant's \
             schema extension."
        }
        (Cause::Validation, Some("invalidValue" | "invalidSyntax")) => {
            "The IdP sends a value of the wrong type or shape: check the attribute mappings \
             (expressions producing empty or non-string values, booleans sent as text)."
        }
        (Cause::Validation, Some("mutability")) => {
            "The IdP tries to change a read-only attribute: remove it from the attribute \
             mappings."
        }
        (Cause::Validation, _) if status == 413 => {
            "Requests are larger than max_body_bytes: raise the limit or send fewer members \
             per PATCH."
        }
        (Cause::Validation, _) => {
            "The IdP sends requests scimgate refuses: read the detail and the provisioning log \
             entry of one of them."
        }
        (Cause::Conflict, _) if status == 412 => {
            "The IdP sends a stale If-Match version: it usually recovers on its own; if not, \
             restart the provisioning cycle."
        }
        (Cause::Conflict, _) => {
            "A user or group with the same userName or displayName already exists in the \
             tenant: the IdP's matching attribute does not find it. Align the matching \
             attribute (userName, externalId) or remove the duplicate."
        }
        (Cause::Auth, _) if status == 403 => {
            "The token lacks the scim:write scope, or the tenant is suspended (or is a super \
             tenant's child, which refuses writes): check the tenant's status and token."
        }
        (Cause::Auth, _) => {
            "The IdP's secret token is invalid, revoked or expired: issue a new token and paste \
             it into the IdP's provisioning settings."
        }
        (Cause::Throttled, _) => {
            "The tenant exceeds its rate limit: raise rate_limit_per_second / \
             rate_limit_burst, or let the IdP's retries spread the load."
        }
        (Cause::Server, _) => {
            "scimgate or its database failed: look for errors with these requests' ids in \
             the logs and check the database's health."
        }
        (Cause::Timeout, _) => {
            "Requests take longer than the IdP waits: check the database's latency and the \
             gateways' load (dashboard: latency p99)."
        }
    }
}

/// One failing request as a gateway saw it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Signature {
    /// The HTTP method.
    pub method: String,
    /// The route pattern (`/scim/v2/Users/{id}`), never the raw path.
    pub route: String,
    /// The status answered.
    pub status: u16,
    /// The SCIM error's `scimType`, if it had one.
    pub scim_type: Option<String>,
}

/// One tenant's requests over some seconds, as a gateway counts them.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    /// Requests answered.
    pub requests: u64,
    /// Failures by [`Cause::index`].
    failures: [u64; 6],
    /// Distinct failing requests: how often, and the last detail.
    samples: HashMap<Signature, (u64, String)>,
}

impl Tally {
    /// Counts one request; `failure` is its cause and what it looked like.
    pub fn add(&mut self, failure: Option<(Cause, Signature, &str)>) {
        self.requests += 1;
        let Some((cause, signature, detail)) = failure else {
            return;
        };
        self.failures[cause.index()] += 1;
        let keep = self.samples.len() < MAX_SAMPLES || self.samples.contains_key(&signature);
        if keep {
            let entry = self.samples.entry(signature).or_default();
            entry.0 += 1;
            entry.1 = detail.chars().take(MAX_DETAIL_CHARS).collect();
        }
    }

    /// Failures of `cause` counted so far.
    pub fn failures(&self, cause: Cause) -> u64 {
        self.failures[cause.index()]
    }
}

/// A tenant's health over the window, as the admin API shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    /// The window, in seconds.
    pub window_seconds: i64,
    /// Requests answered in the window.
    pub requests: u64,
    /// Of which failed.
    pub failures: u64,
    /// `failures / requests` (0 without requests).
    pub failure_ratio: f64,
    /// Failures by cause (every cause, zeros included).
    pub by_cause: HashMap<&'static str, u64>,
    /// `ok`, `warning` (at or above [`WARN_RATIO`]) or `critical` (at or
    /// above [`QUARANTINE_RATIO`]); `ok` below [`MIN_REQUESTS`].
    pub level: &'static str,
    /// `level` is not `ok`.
    pub at_risk: bool,
    /// The ratio the warning starts at.
    pub warn_ratio: f64,
    /// The guard's reading of Microsoft's quarantine rule.
    pub quarantine_ratio: f64,
    /// The fewest requests a flag needs.
    pub min_requests: u64,
    /// The most frequent failing requests, most frequent first.
    pub top_failures: Vec<FailingRequest>,
}

/// One kind of failing request over the window.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FailingRequest {
    /// The HTTP method.
    pub method: String,
    /// The route pattern.
    pub route: String,
    /// The status answered.
    pub status: u16,
    /// The SCIM `scimType`, if any.
    pub scim_type: Option<String>,
    /// The guard's cause.
    pub cause: Cause,
    /// How many in the window.
    pub count: u64,
    /// The detail of the latest one.
    pub detail: String,
    /// What to fix.
    pub advice: &'static str,
}

/// One tenant's totals over the window (for metrics and overviews).
#[derive(Debug, Clone, PartialEq)]
pub struct TenantRatio {
    /// The tenant.
    pub tenant_id: Uuid,
    /// Its slug.
    pub slug: String,
    /// Requests in the window.
    pub requests: u64,
    /// Failures in the window.
    pub failures: u64,
}

impl TenantRatio {
    /// `failures / requests`.
    pub fn ratio(&self) -> f64 {
        ratio(self.failures, self.requests)
    }

    /// Whether the rule flags it.
    pub fn at_risk(&self) -> bool {
        level(self.failures, self.requests) != "ok"
    }
}

fn ratio(failures: u64, requests: u64) -> f64 {
    if requests == 0 {
        0.0
    } else {
        failures as f64 / requests as f64
    }
}

/// The rule: `ok`, `warning` or `critical`.
pub fn level(failures: u64, requests: u64) -> &'static str {
    let r = ratio(failures, requests);
    if requests < MIN_REQUESTS {
        "ok"
    } else if r >= QUARANTINE_RATIO {
        "critical"
    } else if r >= WARN_RATIO {
        "warning"
    } else {
        "ok"
    }
}

const HEALTH: &str = "request_health";
const FAILURES: &str = "request_failures";
const CAUSE_COLUMNS: [&str; 6] = [
    "validation",
    "conflict",
    "auth",
    "throttled",
    "server",
    "timeout",
];

fn t(name: &str) -> Alias {
    Alias::new(name)
}

/// The minute `at` falls in, as minutes since the epoch.
fn minute_of(at: DateTime<Utc>) -> i64 {
    at.timestamp().div_euclid(60)
}

/// `table.column + excluded.column`, for adding on conflict.
fn added(table: &str, column: &str) -> SimpleExpr {
    Expr::col((t(table), t(column))).add(Expr::col((t("excluded"), t(column))))
}

fn count_of(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

impl AdminStore {
    /// Adds gateways' counts to the minute `at` falls in. Counts from any
    /// number of processes add up; nothing is replaced.
    pub async fn record_request_health(
        &self,
        at: DateTime<Utc>,
        tallies: Vec<(Uuid, Tally)>,
    ) -> Result<()> {
        if tallies.is_empty() {
            return Ok(());
        }
        let minute = minute_of(at);
        write_txn!(self.inner, [], [tallies, minute], txn => {
            let backend = txn.get_database_backend();
            for (tenant, tally) in tallies {
                let tenant = tenant.to_string();
                let mut insert = Query::insert();
                insert.into_table(t(HEALTH));
                let mut columns = vec![t("tenant_id"), t("minute"), t("requests")];
                columns.extend(CAUSE_COLUMNS.iter().map(|c| t(c)));
                insert.columns(columns);
                let mut values: Vec<SimpleExpr> = vec![
                    Expr::val(tenant.clone()),
                    Expr::val(*minute),
                    Expr::val(i64::try_from(tally.requests).unwrap_or(i64::MAX)),
                ];
                values.extend(
                    tally
                        .failures
                        .iter()
                        .map(|n| Expr::val(i64::try_from(*n).unwrap_or(i64::MAX))),
                );
                insert.values(values).map_err(|e| dbx(sea_orm::DbErr::Custom(e.to_string())))?;
                let mut update: Vec<(Alias, SimpleExpr)> = vec![(t("requests"), added(HEALTH, "requests"))];
                update.extend(CAUSE_COLUMNS.iter().map(|c| (t(c), added(HEALTH, c))));
                insert.on_conflict(
                    OnConflict::columns([t("tenant_id"), t("minute")])
                        .values(update)
                        .to_owned(),
                );
                txn.execute_raw(backend.build(&insert)).await.map_err(dbx)?;
                for (sig, (count, detail)) in &tally.samples {
                    let mut insert = Query::insert();
                    insert
                        .into_table(t(FAILURES))
                        .columns([
                            t("tenant_id"),
                            t("minute"),
                            t("method"),
                            t("route"),
                            t("status"),
                            t("scim_type"),
                            t("count"),
                            t("detail"),
                        ])
                        .values([
                            Expr::val(tenant.clone()),
                            Expr::val(*minute),
                            Expr::val(sig.method.clone()),
                            Expr::val(sig.route.clone()),
                            Expr::val(i64::from(sig.status)),
                            Expr::val(sig.scim_type.clone().unwrap_or_default()),
                            Expr::val(i64::try_from(*count).unwrap_or(i64::MAX)),
                            Expr::val(detail.clone()),
                        ])
                        .map_err(|e| dbx(sea_orm::DbErr::Custom(e.to_string())))?
                        .on_conflict(
                            OnConflict::columns([
                                t("tenant_id"),
                                t("minute"),
                                t("method"),
                                t("route"),
                                t("status"),
                                t("scim_type"),
                            ])
                            .values([
                                (t("count"), added(FAILURES, "count")),
                                (t("detail"), Expr::col((t("excluded"), t("detail")))),
                            ])
                            .to_owned(),
                        );
                    txn.execute_raw(backend.build(&insert)).await.map_err(dbx)?;
                }
            }
            Ok(())
        })
    }

    /// Every tenant's totals over the window ending at `now`, for tenants
    /// that made requests in it.
    pub async fn request_ratios(&self, now: DateTime<Utc>) -> Result<Vec<TenantRatio>> {
        let conn = &self.inner.conn;
        let backend = conn.get_database_backend();
        let since = minute_of(now) - WINDOW_MINUTES + 1;
        let mut failures: SimpleExpr = Expr::col(t(CAUSE_COLUMNS[0]));
        for c in &CAUSE_COLUMNS[1..] {
            failures = failures.add(Expr::col(t(c)));
        }
        let mut select = Query::select();
        select
            .from(t(HEALTH))
            .inner_join(
                t("tenants"),
                Expr::col((t("tenants"), t("id"))).equals((t(HEALTH), t("tenant_id"))),
            )
            .expr_as(Expr::col((t(HEALTH), t("tenant_id"))), t("tenant_id"))
            .expr_as(Expr::col((t("tenants"), t("slug"))), t("slug"))
            .expr_as(total(Expr::col(t("requests"))), t("requests"))
            .expr_as(total(failures), t("failures"))
            .and_where(Expr::col(t("minute")).gte(since))
            .group_by_col((t(HEALTH), t("tenant_id")))
            .group_by_col((t("tenants"), t("slug")));
        let rows = conn
            .query_all_raw(backend.build(&select))
            .await
            .map_err(db)?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let id: String = row.try_get("", "tenant_id").map_err(db)?;
            let Ok(tenant_id) = Uuid::parse_str(&id) else {
                continue;
            };
            out.push(TenantRatio {
                tenant_id,
                slug: row.try_get("", "slug").map_err(db)?,
                requests: count_of(sum_column(backend, &row, "requests")?),
                failures: count_of(sum_column(backend, &row, "failures")?),
            });
        }
        Ok(out)
    }

    /// Deletes rows older than [`RETENTION_MINUTES`] before `now`.
    pub async fn prune_request_health(&self, now: DateTime<Utc>) -> Result<u64> {
        let before = minute_of(now) - RETENTION_MINUTES;
        write_txn!(self.inner, [], [before], txn => {
            let backend = txn.get_database_backend();
            let mut removed = 0;
            for table in [HEALTH, FAILURES] {
                let delete = Query::delete()
                    .from_table(t(table))
                    .and_where(Expr::col(t("minute")).lt(*before))
                    .to_owned();
                removed += txn
                    .execute_raw(backend.build(&delete))
                    .await
                    .map_err(dbx)?
                    .rows_affected();
            }
            Ok(removed)
        })
    }
}

impl TenantStore {
    /// This tenant's health over the window ending at `now`.
    pub async fn request_health(&self, now: DateTime<Utc>) -> Result<Health> {
        let conn = &self.inner.conn;
        let backend = conn.get_database_backend();
        let since = minute_of(now) - WINDOW_MINUTES + 1;
        let key = self.tenant.id.to_string();
        let mut select = Query::select();
        select.from(t(HEALTH));
        select.expr_as(total(Expr::col(t("requests"))), t("requests"));
        for c in CAUSE_COLUMNS {
            select.expr_as(total(Expr::col(t(c))), t(c));
        }
        select
            .and_where(Expr::col(t("tenant_id")).eq(key.clone()))
            .and_where(Expr::col(t("minute")).gte(since));
        let row = conn
            .query_one_raw(backend.build(&select))
            .await
            .map_err(db)?;
        let sum = |name: &str| -> Result<u64> {
            Ok(match &row {
                Some(row) => count_of(sum_column(backend, row, name)?),
                None => 0,
            })
        };
        let requests = sum("requests")?;
        let mut by_cause = HashMap::new();
        let mut failures = 0;
        for (cause, column) in Cause::ALL.iter().zip(CAUSE_COLUMNS) {
            let n = sum(column)?;
            failures += n;
            by_cause.insert(cause.as_str(), n);
        }

        let mut top = Query::select();
        top.from(t(FAILURES))
            .columns([t("method"), t("route"), t("status"), t("scim_type")])
            .expr_as(total(Expr::col(t("count"))), t("total"))
            .expr_as(Expr::col(t("minute")).max(), t("latest"))
            .and_where(Expr::col(t("tenant_id")).eq(key.clone()))
            .and_where(Expr::col(t("minute")).gte(since))
            .group_by_columns([t("method"), t("route"), t("status"), t("scim_type")])
            .order_by(t("total"), Order::Desc)
            .order_by(t("route"), Order::Asc)
            .limit(TOP_FAILURES);
        let rows = conn.query_all_raw(backend.build(&top)).await.map_err(db)?;
        let mut top_failures = Vec::with_capacity(rows.len());
        for row in rows {
            let method: String = row.try_get("", "method").map_err(db)?;
            let route: String = row.try_get("", "route").map_err(db)?;
            let status: i64 = row.try_get("", "status").map_err(db)?;
            let scim_type: String = row.try_get("", "scim_type").map_err(db)?;
            let latest: i64 = row.try_get("", "latest").map_err(db)?;
            let count = count_of(sum_column(backend, &row, "total")?);
            let status = u16::try_from(status).unwrap_or(0);
            let scim_type = (!scim_type.is_empty()).then_some(scim_type);
            // The detail of this request's latest minute.
            let mut detail = Query::select();
            detail
                .from(t(FAILURES))
                .column(t("detail"))
                .and_where(Expr::col(t("tenant_id")).eq(key.clone()))
                .and_where(Expr::col(t("minute")).eq(latest))
                .and_where(Expr::col(t("method")).eq(method.clone()))
                .and_where(Expr::col(t("route")).eq(route.clone()))
                .and_where(Expr::col(t("status")).eq(i64::from(status)))
                .and_where(Expr::col(t("scim_type")).eq(scim_type.clone().unwrap_or_default()));
            let detail: String = match conn
                .query_one_raw(backend.build(&detail))
                .await
                .map_err(db)?
            {
                Some(row) => row.try_get("", "detail").map_err(db)?,
                None => String::new(),
            };
            // Only a timeout can be a failure with a status that is not.
            let cause = classify(status, Duration::ZERO).unwrap_or(Cause::Timeout);
            top_failures.push(FailingRequest {
                advice: advice(cause, status, scim_type.as_deref()),
                method,
                route,
                status,
                scim_type,
                cause,
                count,
                detail,
            });
        }
        let level = level(failures, requests);
        Ok(Health {
            window_seconds: WINDOW_MINUTES * 60,
            requests,
            failures,
            failure_ratio: ratio(failures, requests),
            by_cause,
            level,
            at_risk: level != "ok",
            warn_ratio: WARN_RATIO,
            quarantine_ratio: QUARANTINE_RATIO,
            min_requests: MIN_REQUESTS,
            top_failures,
        })
    }
}

/// A [`total`] read back.
fn sum_column(_backend: DbBackend, row: &sea_orm::QueryResult, name: &str) -> Result<i64> {
    row.try_get("", name).map_err(db)
}

/// `CAST(COALESCE(SUM(e), 0) AS BIGINT)`: never NULL, and PostgreSQL types a sum of BIGINTs as
/// NUMERIC, which would not read back as an integer.
fn total(e: SimpleExpr) -> SimpleExpr {
    SimpleExpr::from(Func::coalesce([e.sum(), Expr::val(0i64)])).cast_as(t("BIGINT"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guard_classifies_by_status_and_time() {
        let quick = Duration::from_millis(5);
        assert_eq!(classify(200, quick), None);
        assert_eq!(classify(204, quick), None);
        assert_eq!(classify(404, quick), None);
        assert_eq!(classify(400, quick), Some(Cause::Validation));
        assert_eq!(classify(413, quick), Some(Cause::Validation));
        assert_eq!(classify(401, quick), Some(Cause::Auth));
        assert_eq!(classify(403, quick), Some(Cause::Auth));
        assert_eq!(classify(409, quick), Some(Cause::Conflict));
        assert_eq!(classify(412, quick), Some(Cause::Conflict));
        assert_eq!(classify(429, quick), Some(Cause::Throttled));
        assert_eq!(classify(500, quick), Some(Cause::Server));
        assert_eq!(classify(503, quick), Some(Cause::Server));
        assert_eq!(classify(200, TIMEOUT_AFTER), Some(Cause::Timeout));
    }

    #[test]
    fn the_rule_needs_enough_requests_and_warns_before_most_fail() {
        assert_eq!(level(19, 19), "ok");
        assert_eq!(level(3, 20), "ok");
        assert_eq!(level(4, 20), "warning");
        assert_eq!(level(9, 20), "warning");
        assert_eq!(level(10, 20), "critical");
        assert_eq!(level(0, 0), "ok");
    }

    #[test]
    fn a_tally_keeps_a_bounded_set_of_failing_requests() {
        let mut tally = Tally::default();
        for i in 0..(MAX_SAMPLES + 5) {
            let sig = Signature {
                method: "GET".into(),
                route: format!("/r{i}"),
                status: 400,
                scim_type: Some("invalidFilter".into()),
            };
            tally.add(Some((Cause::Validation, sig, "bad")));
        }
        tally.add(None);
        assert_eq!(tally.requests, MAX_SAMPLES as u64 + 6);
        assert_eq!(tally.failures(Cause::Validation), MAX_SAMPLES as u64 + 5);
        assert_eq!(tally.samples.len(), MAX_SAMPLES);
    }
}
