//! The quarantine guard's view of a tenant (docs/quarantine-guard.md).

use actix_web::HttpResponse;
use store::health::Health;

use crate::auth::{Read, Scoped};
use crate::error::{AdminError, ErrorBody};
use crate::service::health;
use crate::wire::{FailingRequestView, QuarantineRiskView};

/// The wire form of a tenant's health.
pub(crate) fn risk_view(h: Health) -> QuarantineRiskView {
    QuarantineRiskView {
        window_seconds: h.window_seconds,
        requests: h.requests,
        failures: h.failures,
        failure_ratio: h.failure_ratio,
        by_cause: h.by_cause,
        level: h.level,
        at_risk: h.at_risk,
        warn_ratio: h.warn_ratio,
        quarantine_ratio: h.quarantine_ratio,
        min_requests: h.min_requests,
        top_failures: h
            .top_failures
            .into_iter()
            .map(|f| FailingRequestView {
                method: f.method,
                route: f.route,
                status: f.status,
                scim_type: f.scim_type,
                cause: f.cause.as_str(),
                count: f.count,
                detail: f.detail,
                advice: f.advice,
            })
            .collect(),
    }
}

/// The tenant's quarantine risk: the share of its SCIM requests that
/// failed over the last hour (every gateway counted), by cause, whether
/// the guard flags it, and its most frequent failing requests with what
/// to fix.
#[utoipa::path(
    get,
    path = "/tenants/{tenant}/quarantine-risk",
    tag = "health",
    operation_id = "getQuarantineRisk",
    params(("tenant" = String, Path, description = "The tenant's slug")),
    responses(
        (status = 200, description = "The tenant's failure ratio and the guard's verdict", body = QuarantineRiskView),
        (status = 404, description = "No such tenant", body = ErrorBody),
    ),
)]
pub(crate) async fn quarantine_risk(scope: Scoped<Read>) -> Result<HttpResponse, AdminError> {
    let h = health::quarantine_risk(&scope.ctx).await?;
    Ok(HttpResponse::Ok().json(risk_view(h)))
}
