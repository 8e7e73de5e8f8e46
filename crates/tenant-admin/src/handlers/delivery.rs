//! Delivery to the tenant's applications: webhook targets and their
//! health, attempts, waiting deliveries and dead letters, replays,
//! re-sends, the event feed, and a user's or group's timeline. Everything
//! is decided in `service::delivery`; these handlers only translate.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Utc;
use serde::Deserialize;
use store::delivery::{
    Attempt, Delivery, DeliveryStatus, OutboundProfile, Target, TargetKind, UpdateMethod,
};
use sync_worker::targets::TargetSpec;

use crate::auth::{Read, Scoped, Write};
use crate::error::{AdminError, ErrorBody};
use crate::handlers::roles::etag;
use crate::handlers::{IdPath, JsonBody, bounded, expected_version};
use crate::service::ServiceError;
use crate::service::delivery::{self, DeliverySettings, TargetChange};
use crate::wire::{
    AttemptList, AttemptQuery, AttemptView, AttributeMappingInput, AttributeMappingPreviewEntry,
    AttributeMappingPreviewInput, AttributeMappingPreviewView, AttributeMappingView, CreateTarget,
    CreatedTargetView, DeliveryList, DeliveryQuery, DeliveryStatusWire, DeliveryView, FeedPage,
    FeedQuery, IfMatchHeader, JobInfoView, JobRef, ProfileWire, ReconcileQuery, ReplayResult,
    ResendRequest, ResendResult, RotatedSecretView, TargetKindWire, TargetList, TargetView,
    Timeline, TimelineEntryView, UpdateMethodWire, UpdateTarget,
};
use crate::{BASE_PATH, State};

/// The `{id}` and `{delivery}` of a dead letter's path.
#[derive(Debug, Deserialize)]
pub(crate) struct DeadLetterPath {
    id: String,
    delivery: i64,
}

fn settings(state: &State) -> Result<&DeliverySettings, AdminError> {
    state.delivery.get().ok_or_else(|| {
        AdminError::Service(ServiceError::Conflict(
            "delivery is not set up in this process".into(),
        ))
    })
}

fn target_view(t: Target) -> TargetView {
    TargetView {
        id: t.id.to_string(),
        name: t.name,
        kind: match t.kind {
            TargetKind::Webhook => TargetKindWire::Webhook,
            TargetKind::Scim => TargetKindWire::Scim,
        },
        url: t.url,
        event_types: t
            .event_types
            .iter()
            .map(|e| e.as_str().to_owned())
            .collect(),
        enabled: t.enabled,
        disabled_reason: t.disabled_reason,
        disabled_at: t.disabled_at,
        cursor: t.cursor,
        failing_since: t.failing_since,
        last_success_at: t.last_success_at,
        last_failure_at: t.last_failure_at,
        last_error: t.last_error,
        previous_secret_until: t.previous_secret_until,
        created_at: t.created_at,
        updated_at: t.updated_at,
    }
}

fn attempt_view(a: Attempt) -> AttemptView {
    AttemptView {
        id: a.id,
        event_id: format!("evt_{}", a.event_id),
        resource_id: a.resource_id,
        attempt: a.attempt,
        at: a.at,
        status_code: a.status_code,
        outcome: a.outcome,
        latency_ms: a.latency_ms,
        response: a.response,
        error: a.error,
    }
}

fn delivery_view(d: Delivery) -> DeliveryView {
    DeliveryView {
        id: d.id,
        event_id: format!("evt_{}", d.event_id),
        position: d.position,
        resource_id: d.resource_id,
        status: match d.status {
            DeliveryStatus::Pending => DeliveryStatusWire::Pending,
            DeliveryStatus::Dead => DeliveryStatusWire::Dead,
        },
        attempts: d.attempts,
        next_attempt_at: d.next_attempt_at,
        last_status: d.last_status,
        last_error: d.last_error,
        created_at: d.created_at,
    }
}

/// The tenant's targets with their health.
#[utoipa::path(
    get,
    path = "/tenants/{tenant}/targets",
    tag = "delivery",
    operation_id = "listTargets",
    params(("tenant" = String, Path, description = "The tenant's slug")),
    responses((status = 200, description = "The targets, by name", body = TargetList)),
)]
pub(crate) async fn list_targets(scope: Scoped<Read>) -> Result<HttpResponse, AdminError> {
    let targets = delivery::list_targets(&scope.ctx).await?;
    Ok(HttpResponse::Ok().json(TargetList {
        targets: targets.into_iter().map(target_view).collect(),
    }))
}

/// Creates a webhook target; its signing secret is in this answer only.
#[utoipa::path(
    post,
    path = "/tenants/{tenant}/targets",
    tag = "delivery",
    operation_id = "createTarget",
    params(("tenant" = String, Path, description = "The tenant's slug")),
    request_body = CreateTarget,
    responses(
        (status = 201, description = "The target and its secret (shown once)", body = CreatedTargetView),
        (status = 403, description = "The tenant is suspended (tenant admins)", body = ErrorBody),
        (status = 409, description = "The name is taken, or no secrets key is configured", body = ErrorBody),
    ),
)]
pub(crate) async fn create_target(
    scope: Scoped<Write>,
    state: web::Data<State>,
    body: JsonBody<CreateTarget>,
) -> Result<HttpResponse, AdminError> {
    let body = body.into_inner();
    let created = delivery::create_target(
        &scope.ctx,
        settings(&state)?,
        TargetSpec {
            name: body.name,
            kind: match body.kind {
                TargetKindWire::Webhook => "webhook".into(),
                TargetKindWire::Scim => "scim".into(),
            },
            url: body.url,
            event_types: body.event_types,
            token: body.token,
        },
    )
    .await?;
    Ok(HttpResponse::Created().json(CreatedTargetView {
        target: target_view(created.target),
        secret: created.secret,
    }))
}

/// One target with its health.
#[utoipa::path(
    get,
    path = "/tenants/{tenant}/targets/{id}",
    tag = "delivery",
    operation_id = "getTarget",
    params(
        ("tenant" = String, Path, description = "The tenant's slug"),
        ("id" = String, Path, description = "The target's id"),
    ),
    responses((status = 200, description = "The target", body = TargetView)),
)]
pub(crate) async fn get_target(
    scope: Scoped<Read>,
    path: web::Path<IdPath>,
) -> Result<HttpResponse, AdminError> {
    let t = delivery::get_target(&scope.ctx, &path.id).await?;
    Ok(HttpResponse::Ok().json(target_view(t)))
}

/// Changes a target's name, address, event types, or enables/disables it.
#[utoipa::path(
    patch,
    path = "/tenants/{tenant}/targets/{id}",
    tag = "delivery",
    operation_id = "updateTarget",
    params(
        ("tenant" = String, Path, description = "The tenant's slug"),
        ("id" = String, Path, description = "The target's id"),
    ),
    request_body = UpdateTarget,
    responses(
        (status = 200, description = "The changed target", body = TargetView),
        (status = 403, description = "The tenant is suspended (tenant admins)", body = ErrorBody),
        (status = 409, description = "The name is taken", body = ErrorBody),
    ),
)]
pub(crate) async fn update_target(
    scope: Scoped<Write>,
    state: web::Data<State>,
    path: web::Path<IdPath>,
    body: JsonBody<UpdateTarget>,
) -> Result<HttpResponse, AdminError> {
    let body = body.into_inner();
    let t = delivery::update_target(
        &scope.ctx,
        settings(&state)?,
        &path.id,
        TargetChange {
            name: body.name,
            url: body.url,
            event_types: body.event_types,
            enabled: body.enabled,
            token: body.token,
        },
    )
    .await?;
    Ok(HttpResponse::Ok().json(target_view(t)))
}

/// Deletes a target with its waiting deliveries.
#[utoipa::path(
    delete,
    path = "/tenants/{tenant}/targets/{id}",
    tag = "delivery",
    operation_id = "deleteTarget",
    params(
        ("tenant" = String, Path, description = "The tenant's slug"),
        ("id" = String, Path, description = "The target's id"),
    ),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "The tenant is suspended (tenant admins)", body = ErrorBody),
    ),
)]
pub(crate) async fn delete_target(
    scope: Scoped<Write>,
    path: web::Path<IdPath>,
) -> Result<HttpResponse, AdminError> {
    delivery::delete_target(&scope.ctx, &path.id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Gives a webhook target a new signing secret, shown this once; the old
/// one signs too during the overlap.
#[utoipa::path(
    post,
    path = "/tenants/{tenant}/targets/{id}/rotate-secret",
    tag = "delivery",
    operation_id = "rotateTargetSecret",
    params(
        ("tenant" = String, Path, description = "The tenant's slug"),
        ("id" = String, Path, description = "The target's id"),
    ),
    responses(
        (status = 200, description = "The target and its new secret (shown once)", body = RotatedSecretView),
        (status = 403, description = "The tenant is suspended (tenant admins)", body = ErrorBody),
        (status = 409, description = "No secrets key is configured", body = ErrorBody),
    ),
)]
pub(crate) async fn rotate_secret(
    scope: Scoped<Write>,
    state: web::Data<State>,
    path: web::Path<IdPath>,
) -> Result<HttpResponse, AdminError> {
    let (t, secret) =
        delivery::rotate_secret(&scope.ctx, settings(&state)?, &path.id, Utc::now()).await?;
    Ok(HttpResponse::Ok().json(RotatedSecretView {
        target: target_view(t),
        secret,
    }))
}

/// A target's delivery attempts, newest first.
#[utoipa::path(
    get,
    path = "/tenants/{tenant}/targets/{id}/attempts",
    tag = "delivery",
    operation_id = "listAttempts",
    params(
        ("tenant" = String, Path, description = "The tenant's slug"),
        ("id" = String, Path, description = "The target's id"),
        AttemptQuery,
    ),
    responses((status = 200, description = "A page of attempts", body = AttemptList)),
)]
pub(crate) async fn attempts(
    scope: Scoped<Read>,
    path: web::Path<IdPath>,
    query: web::Query<AttemptQuery>,
) -> Result<HttpResponse, AdminError> {
    let q = query.into_inner();
    if q.before_id.is_some_and(|b| b < 1) {
        return Err(AdminError::BadRequest("beforeId must be at least 1".into()));
    }
    let limit = bounded("limit", q.limit, 1, 500)?.unwrap_or(100);
    let attempts =
        delivery::attempts(&scope.ctx, &path.id, q.event.as_deref(), q.before_id, limit).await?;
    let next_before_id = (attempts.len() as u64 == limit)
        .then(|| attempts.last().map(|a| a.id))
        .flatten();
    Ok(HttpResponse::Ok().json(AttemptList {
        attempts: attempts.into_iter().map(attempt_view).collect(),
        next_before_id,
    }))
}

/// A target's waiting deliveries (`status=pending`) or dead letters
/// (`status=dead`), oldest first.
#[utoipa::path(
    get,
    path = "/tenants/{tenant}/targets/{id}/deliveries",
    tag = "delivery",
    operation_id = "listDeliveries",
    params(
        ("tenant" = String, Path, description = "The tenant's slug"),
        ("id" = String, Path, description = "The target's id"),
        DeliveryQuery,
    ),
    responses((status = 200, description = "A page of deliveries", body = DeliveryList)),
)]
pub(crate) async fn deliveries(
    scope: Scoped<Read>,
    path: web::Path<IdPath>,
    query: web::Query<DeliveryQuery>,
) -> Result<HttpResponse, AdminError> {
    let q = query.into_inner();
    let after = q.after_id.unwrap_or(0);
    if after < 0 {
        return Err(AdminError::BadRequest("afterId must be at least 0".into()));
    }
    let limit = bounded("limit", q.limit, 1, 500)?.unwrap_or(100);
    let status = match q.status.unwrap_or(DeliveryStatusWire::Pending) {
        DeliveryStatusWire::Pending => DeliveryStatus::Pending,
        DeliveryStatusWire::Dead => DeliveryStatus::Dead,
    };
    let list = delivery::deliveries(&scope.ctx, &path.id, status, after, limit).await?;
    let next_after_id = (list.len() as u64 == limit)
        .then(|| list.last().map(|d| d.id))
        .flatten();
    Ok(HttpResponse::Ok().json(DeliveryList {
        deliveries: list.into_iter().map(delivery_view).collect(),
        next_after_id,
    }))
}

/// Puts every dead letter of the target back in line.
#[utoipa::path(
    post,
    path = "/tenants/{tenant}/targets/{id}/dead-letters/replay",
    tag = "delivery",
    operation_id = "replayDeadLetters",
    params(
        ("tenant" = String, Path, description = "The tenant's slug"),
        ("id" = String, Path, description = "The target's id"),
    ),
    responses(
        (status = 200, description = "How many went back in line", body = ReplayResult),
        (status = 403, description = "The tenant is suspended (tenant admins)", body = ErrorBody),
    ),
)]
pub(crate) async fn replay_all(
    scope: Scoped<Write>,
    path: web::Path<IdPath>,
) -> Result<HttpResponse, AdminError> {
    let replayed = delivery::replay(&scope.ctx, &path.id, None).await?;
    Ok(HttpResponse::Ok().json(ReplayResult { replayed }))
}

/// Puts one dead letter back in line.
#[utoipa::path(
    post,
    path = "/tenants/{tenant}/targets/{id}/dead-letters/{delivery}/replay",
    tag = "delivery",
    operation_id = "replayDeadLetter",
    params(
        ("tenant" = String, Path, description = "The tenant's slug"),
        ("id" = String, Path, description = "The target's id"),
        ("delivery" = i64, Path, minimum = 1, description = "The dead letter's id"),
    ),
    responses(
        (status = 200, description = "It went back in line", body = ReplayResult),
        (status = 403, description = "The tenant is suspended (tenant admins)", body = ErrorBody),
    ),
)]
pub(crate) async fn replay_one(
    scope: Scoped<Write>,
    path: web::Path<DeadLetterPath>,
) -> Result<HttpResponse, AdminError> {
    let replayed = delivery::replay(&scope.ctx, &path.id, Some(path.delivery)).await?;
    Ok(HttpResponse::Ok().json(ReplayResult { replayed }))
}

/// Sends again every event committed since a time.
#[utoipa::path(
    post,
    path = "/tenants/{tenant}/targets/{id}/resend",
    tag = "delivery",
    operation_id = "resendEvents",
    params(
        ("tenant" = String, Path, description = "The tenant's slug"),
        ("id" = String, Path, description = "The target's id"),
    ),
    request_body = ResendRequest,
    responses(
        (status = 200, description = "The target's new cursor", body = ResendResult),
        (status = 403, description = "The tenant is suspended (tenant admins)", body = ErrorBody),
    ),
)]
pub(crate) async fn resend(
    scope: Scoped<Write>,
    path: web::Path<IdPath>,
    body: JsonBody<ResendRequest>,
) -> Result<HttpResponse, AdminError> {
    let cursor = delivery::resend(&scope.ctx, &path.id, body.into_inner().since).await?;
    Ok(HttpResponse::Ok().json(ResendResult { cursor }))
}

/// The tenant's events after a position, in commit order: for
/// applications that poll. Also readable with a SCIM token that has the
/// `events:read` scope.
#[utoipa::path(
    get,
    path = "/tenants/{tenant}/events",
    tag = "delivery",
    operation_id = "eventFeed",
    params(("tenant" = String, Path, description = "The tenant's slug"), FeedQuery),
    responses((status = 200, description = "A page of events", body = FeedPage)),
)]
pub(crate) async fn feed(
    scope: Scoped<Read>,
    query: web::Query<FeedQuery>,
) -> Result<HttpResponse, AdminError> {
    let q = query.into_inner();
    let after = q.after.unwrap_or(0);
    if after < 0 {
        return Err(AdminError::BadRequest("after must be at least 0".into()));
    }
    let limit = bounded("limit", q.limit, 1, 100)?.unwrap_or(100);
    let types: Vec<String> = q
        .types
        .as_deref()
        .map(|t| t.split(',').map(str::trim).map(str::to_owned).collect())
        .unwrap_or_default();
    // `type=` or `type=a,,b` names no type: refused, not read as "all".
    if types.iter().any(String::is_empty) {
        return Err(AdminError::BadRequest(
            "type: an empty event type; give event types such as user.created, comma-separated"
                .into(),
        ));
    }
    let (events, next) = delivery::feed(&scope.ctx, after, limit, &types).await?;
    Ok(HttpResponse::Ok().json(FeedPage { events, next }))
}

fn timeline_view(entries: Vec<sync_worker::timeline::Entry>) -> Timeline {
    Timeline {
        entries: entries
            .into_iter()
            .map(|e| TimelineEntryView {
                at: e.at,
                kind: e.kind.to_owned(),
                summary: e.summary,
                detail: e.detail,
            })
            .collect(),
    }
}

/// A user's history: the SCIM requests that changed it, its role changes,
/// its events and every attempt to deliver each, oldest first.
#[utoipa::path(
    get,
    path = "/tenants/{tenant}/users/{id}/timeline",
    tag = "delivery",
    operation_id = "userTimeline",
    params(
        ("tenant" = String, Path, description = "The tenant's slug"),
        ("id" = String, Path, description = "The user's SCIM id"),
    ),
    responses((status = 200, description = "The timeline", body = Timeline)),
)]
pub(crate) async fn user_timeline(
    scope: Scoped<Read>,
    path: web::Path<IdPath>,
) -> Result<HttpResponse, AdminError> {
    let entries = delivery::timeline(&scope.ctx, &path.id).await?;
    Ok(HttpResponse::Ok().json(timeline_view(entries)))
}

/// A group's history, as for users.
#[utoipa::path(
    get,
    path = "/tenants/{tenant}/groups/{id}/timeline",
    tag = "delivery",
    operation_id = "groupTimeline",
    params(
        ("tenant" = String, Path, description = "The tenant's slug"),
        ("id" = String, Path, description = "The group's SCIM id"),
    ),
    responses((status = 200, description = "The timeline", body = Timeline)),
)]
pub(crate) async fn group_timeline(
    scope: Scoped<Read>,
    path: web::Path<IdPath>,
) -> Result<HttpResponse, AdminError> {
    let entries = delivery::timeline(&scope.ctx, &path.id).await?;
    Ok(HttpResponse::Ok().json(timeline_view(entries)))
}

fn job_view(j: store::Job) -> JobInfoView {
    JobInfoView {
        id: j.id,
        kind: j.kind,
        status: j.status.as_str().to_owned(),
        payload: j.payload,
        total: j.progress.total,
        processed: j.progress.processed,
        changed: j.progress.changed,
        result: j.result,
        error: j.error,
        attempts: j.attempts,
        created_at: j.created_at,
        started_at: j.started_at,
        finished_at: j.finished_at,
    }
}

/// Compares an outbound SCIM application with the tenant in a background
/// job and reports the drift; with `dryRun=false` also repairs it.
#[utoipa::path(
    post,
    path = "/tenants/{tenant}/targets/{id}/reconcile",
    tag = "delivery",
    operation_id = "reconcileTarget",
    params(
        ("tenant" = String, Path, description = "The tenant's slug"),
        ("id" = String, Path, description = "The target's id"),
        ReconcileQuery,
    ),
    responses(
        (status = 202, description = "The queued job; poll GET /tenants/{tenant}/jobs/{id}", body = JobInfoView),
        (status = 403, description = "The tenant is suspended (tenant admins)", body = ErrorBody),
    ),
)]
pub(crate) async fn reconcile(
    scope: Scoped<Write>,
    path: web::Path<IdPath>,
    query: web::Query<ReconcileQuery>,
) -> Result<HttpResponse, AdminError> {
    let dry_run = query.into_inner().dry_run.unwrap_or(true);
    let job = delivery::reconcile(&scope.ctx, &path.id, dry_run).await?;
    Ok(HttpResponse::Accepted().json(job_view(job)))
}

/// One of the tenant's background jobs, with its progress and result.
#[utoipa::path(
    get,
    path = "/tenants/{tenant}/jobs/{id}",
    tag = "delivery",
    operation_id = "getJob",
    params(
        ("tenant" = String, Path, description = "The tenant's slug"),
        ("id" = String, Path, description = "The job's id"),
    ),
    responses((status = 200, description = "The job", body = JobInfoView)),
)]
pub(crate) async fn get_job(
    scope: Scoped<Read>,
    path: web::Path<IdPath>,
) -> Result<HttpResponse, AdminError> {
    let job = delivery::job(&scope.ctx, &path.id).await?;
    Ok(HttpResponse::Ok().json(job_view(job)))
}

fn mapping_view(t: &Target, resend_job: Option<JobRef>) -> AttributeMappingView {
    AttributeMappingView {
        version: t.mapping_version,
        mapping: t
            .mapping
            .as_ref()
            .and_then(|m| serde_json::to_value(m).ok()),
        resend_job,
    }
}

/// A target's attribute mapping (docs/mappings.md).
#[utoipa::path(
    get,
    path = "/tenants/{tenant}/targets/{id}/mapping",
    tag = "delivery",
    operation_id = "getTargetMapping",
    params(
        ("tenant" = String, Path, description = "The tenant's slug"),
        ("id" = String, Path, description = "The target's id"),
    ),
    responses((status = 200, description = "The mapping and its version (also the ETag)", body = AttributeMappingView)),
)]
pub(crate) async fn get_mapping(
    scope: Scoped<Read>,
    path: web::Path<IdPath>,
) -> Result<HttpResponse, AdminError> {
    let t = delivery::get_target(&scope.ctx, &path.id).await?;
    Ok(HttpResponse::Ok()
        .insert_header(etag(t.mapping_version))
        .json(mapping_view(&t, None)))
}

/// Replaces a target's attribute mapping, conditional on `If-Match`;
/// audited. An invalid mapping is refused with the rule and attribute
/// named, and changes nothing. With `"resend": true` a job sends the users
/// and groups whose document changes to this target again.
#[utoipa::path(
    put,
    path = "/tenants/{tenant}/targets/{id}/mapping",
    tag = "delivery",
    operation_id = "putTargetMapping",
    params(
        ("tenant" = String, Path, description = "The tenant's slug"),
        ("id" = String, Path, description = "The target's id"),
        IfMatchHeader,
    ),
    request_body = AttributeMappingInput,
    responses(
        (status = 200, description = "The stored mapping, its new version, and the re-send job if one was asked for", body = AttributeMappingView),
        (status = 400, description = "An invalid mapping (the message names the rule and attribute)", body = ErrorBody),
        (status = 403, description = "The tenant is suspended (tenant admins)", body = ErrorBody),
        (status = 412, description = "If-Match is not the current version", body = ErrorBody),
    ),
)]
pub(crate) async fn put_mapping(
    scope: Scoped<Write>,
    req: HttpRequest,
    path: web::Path<IdPath>,
    body: JsonBody<AttributeMappingInput>,
) -> Result<HttpResponse, AdminError> {
    let AttributeMappingInput {
        mapping,
        version,
        resend,
    } = body.into_inner();
    let expected = expected_version(&req, version)?;
    let spec = delivery::mapping_spec(mapping.as_ref())?;
    let (t, job) = delivery::set_mapping(&scope.ctx, &path.id, spec, expected, resend).await?;
    let slug = scope.ctx.tenant().slug();
    let job = job.map(|id| JobRef {
        url: format!("{BASE_PATH}/tenants/{slug}/jobs/{id}"),
        status: store::JobStatus::Queued.as_str().to_owned(),
        id,
    });
    Ok(HttpResponse::Ok()
        .insert_header(etag(t.mapping_version))
        .json(mapping_view(&t, job)))
}

/// Shows what the target would receive for some users under a proposed
/// mapping, next to what it receives under the stored one; stores nothing.
#[utoipa::path(
    post,
    path = "/tenants/{tenant}/targets/{id}/mapping/preview",
    tag = "delivery",
    operation_id = "previewTargetMapping",
    params(
        ("tenant" = String, Path, description = "The tenant's slug"),
        ("id" = String, Path, description = "The target's id"),
    ),
    request_body = AttributeMappingPreviewInput,
    responses(
        (status = 200, description = "Each user's document before and after", body = AttributeMappingPreviewView),
        (status = 400, description = "An invalid mapping (the message names the rule and attribute), or too many users", body = ErrorBody),
    ),
)]
pub(crate) async fn preview_mapping(
    scope: Scoped<Read>,
    path: web::Path<IdPath>,
    body: JsonBody<AttributeMappingPreviewInput>,
) -> Result<HttpResponse, AdminError> {
    let AttributeMappingPreviewInput {
        mapping,
        users,
        first,
    } = body.into_inner();
    let first = bounded("first", first, 1, delivery::MAX_PREVIEW_USERS)?.unwrap_or(5);
    let spec = delivery::mapping_spec(mapping.as_ref())?;
    let users = delivery::preview_mapping(&scope.ctx, &path.id, spec, users, first).await?;
    Ok(HttpResponse::Ok().json(AttributeMappingPreviewView {
        users: users
            .into_iter()
            .map(|p| AttributeMappingPreviewEntry {
                id: p.id,
                before: p.before,
                after: p.after,
            })
            .collect(),
    }))
}

fn profile_view(t: &Target) -> ProfileWire {
    let p = t.profile;
    ProfileWire {
        members_per_patch: Some(u64::from(p.members_per_patch)),
        update_method: Some(match p.update_method {
            UpdateMethod::Put => UpdateMethodWire::Put,
            UpdateMethod::Patch => UpdateMethodWire::Patch,
        }),
        requests_per_second: p.requests_per_second.map(u64::from),
        flatten_groups: Some(p.flatten_groups),
    }
}

/// An outbound SCIM target's profile of its application's limits.
#[utoipa::path(
    get,
    path = "/tenants/{tenant}/targets/{id}/profile",
    tag = "delivery",
    operation_id = "getTargetProfile",
    params(
        ("tenant" = String, Path, description = "The tenant's slug"),
        ("id" = String, Path, description = "The target's id"),
    ),
    responses((status = 200, description = "The profile, defaults filled in", body = ProfileWire)),
)]
pub(crate) async fn get_profile(
    scope: Scoped<Read>,
    path: web::Path<IdPath>,
) -> Result<HttpResponse, AdminError> {
    let t = delivery::get_target(&scope.ctx, &path.id).await?;
    Ok(HttpResponse::Ok().json(profile_view(&t)))
}

/// Replaces an outbound SCIM target's profile; absent fields take their
/// defaults. Audited.
#[utoipa::path(
    put,
    path = "/tenants/{tenant}/targets/{id}/profile",
    tag = "delivery",
    operation_id = "putTargetProfile",
    params(
        ("tenant" = String, Path, description = "The tenant's slug"),
        ("id" = String, Path, description = "The target's id"),
    ),
    request_body = ProfileWire,
    responses(
        (status = 200, description = "The stored profile", body = ProfileWire),
        (status = 400, description = "A bound exceeded, or a webhook target", body = ErrorBody),
        (status = 403, description = "The tenant is suspended (tenant admins)", body = ErrorBody),
    ),
)]
pub(crate) async fn put_profile(
    scope: Scoped<Write>,
    path: web::Path<IdPath>,
    body: JsonBody<ProfileWire>,
) -> Result<HttpResponse, AdminError> {
    let body = body.into_inner();
    let defaults = OutboundProfile::default();
    let max = u64::from(OutboundProfile::MAX_MEMBERS_PER_PATCH);
    let members = bounded("membersPerPatch", body.members_per_patch, 1, max)?;
    let max = u64::from(OutboundProfile::MAX_REQUESTS_PER_SECOND);
    let rate = bounded("requestsPerSecond", body.requests_per_second, 1, max)?;
    let profile = OutboundProfile {
        members_per_patch: members
            .and_then(|m| u32::try_from(m).ok())
            .unwrap_or(defaults.members_per_patch),
        update_method: match body.update_method {
            Some(UpdateMethodWire::Patch) => UpdateMethod::Patch,
            Some(UpdateMethodWire::Put) => UpdateMethod::Put,
            None => defaults.update_method,
        },
        requests_per_second: rate.and_then(|r| u32::try_from(r).ok()),
        flatten_groups: body.flatten_groups.unwrap_or(defaults.flatten_groups),
    };
    let t = delivery::set_profile(&scope.ctx, &path.id, profile).await?;
    Ok(HttpResponse::Ok().json(profile_view(&t)))
}
