//! Delivery: the tenant's targets with their health and the latest events
//! of its feed; one target's attempts, waiting deliveries and dead letters
//! (replayed one by one, or all after a confirmation), enabling and
//! disabling it, reconciling an outbound SCIM target in a job whose
//! progress has a page; and a user's timeline.

use actix_web::{HttpRequest, web};
use askama::Template;
use serde::Deserialize;
use serde_json::Value;
use store::JobStatus;
use store::delivery::{Attempt, Delivery, DeliveryStatus, Target, TargetKind};

use super::{Page, encode_query, form, param, query, scoped, when, when_opt};
use crate::auth::{self, Read, Write};
use crate::console::CONSOLE_PATH;
use crate::console::render::{ConsoleError, Layout, ok, see_other, wants_fragment};
use crate::error::AdminError;
use crate::service::delivery::{self, DeliverySettings, TargetChange};
use crate::service::{self, ServiceError, TenantContext};

/// Events the overview shows.
const FEED_SHOWN: u64 = 50;
/// Attempts per page of a target.
const ATTEMPTS_PER_PAGE: u64 = 50;
/// Deliveries per page of a target.
const DELIVERIES_PER_PAGE: u64 = 100;
/// Dead letters the replay-all confirmation counts at most.
const COUNT_AT_MOST: u64 = 500;

fn base(ctx: &TenantContext) -> String {
    format!("{CONSOLE_PATH}/t/{}", ctx.tenant().slug())
}

/// How targets are made in this process (the API's own settings).
fn settings(req: &HttpRequest) -> Result<DeliverySettings, ConsoleError> {
    auth::state(req)?.delivery.get().cloned().ok_or_else(|| {
        ServiceError::Conflict("delivery is not set up in this process".into()).into()
    })
}

/// A target as the console shows it.
pub(crate) struct TargetRow {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) kind: &'static str,
    pub(crate) scim: bool,
    pub(crate) url: String,
    pub(crate) event_types: String,
    pub(crate) enabled: bool,
    pub(crate) disabled_reason: Option<String>,
    pub(crate) disabled_at: String,
    pub(crate) failing_since: Option<String>,
    pub(crate) last_success: String,
    pub(crate) last_failure: String,
    pub(crate) last_error: Option<String>,
    pub(crate) cursor: i64,
    /// The attribute mapping's version (0: documents as stored).
    pub(crate) mapping_version: u64,
    pub(crate) created: String,
    pub(crate) updated: String,
}

impl TargetRow {
    fn of(t: &Target) -> TargetRow {
        TargetRow {
            id: t.id.to_string(),
            name: t.name.clone(),
            kind: t.kind.as_str(),
            scim: t.kind == TargetKind::Scim,
            url: t.url.clone(),
            event_types: if t.event_types.is_empty() {
                "all".to_owned()
            } else {
                t.event_types
                    .iter()
                    .map(|e| e.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            },
            enabled: t.enabled,
            disabled_reason: t.disabled_reason.clone(),
            disabled_at: when_opt(&t.disabled_at),
            failing_since: t.failing_since.as_ref().map(when),
            last_success: when_opt(&t.last_success_at),
            last_failure: when_opt(&t.last_failure_at),
            last_error: t.last_error.clone(),
            cursor: t.cursor,
            mapping_version: if t.mapping.is_some() {
                t.mapping_version
            } else {
                0
            },
            created: when(&t.created_at),
            updated: when(&t.updated_at),
        }
    }
}

/// One event of the feed as listed.
pub(crate) struct EventRow {
    pub(crate) id: String,
    pub(crate) kind: String,
    pub(crate) resource: String,
    /// A user's event (its resource has a timeline page).
    pub(crate) user: bool,
    pub(crate) at: String,
}

impl EventRow {
    fn of(envelope: &Value) -> EventRow {
        let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
        let kind = text(&envelope["type"]);
        let at = envelope["occurred_at"]
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| when(&t.with_timezone(&chrono::Utc)))
            .unwrap_or_else(|| text(&envelope["occurred_at"]));
        EventRow {
            id: text(&envelope["id"]),
            user: kind.starts_with("user."),
            kind,
            resource: text(&envelope["data"]["id"]),
            at,
        }
    }
}

#[derive(Template)]
#[template(path = "console/delivery.html")]
struct DeliveryPage {
    layout: Layout,
    targets: Vec<TargetRow>,
    events: Vec<EventRow>,
}

/// `GET /console/t/{tenant}/delivery`: targets and the newest events.
pub(crate) async fn page(req: HttpRequest) -> Page {
    let ctx = scoped::<Read>(&req).await?;
    let targets = delivery::list_targets(&ctx).await?;
    let events = delivery::recent_events(&ctx, FEED_SHOWN).await?;
    let layout = Layout::new(&req, "Delivery", "delivery", Some(ctx.tenant()))?;
    ok(&DeliveryPage {
        targets: targets.iter().map(TargetRow::of).collect(),
        events: events.iter().map(EventRow::of).collect(),
        layout,
    })
}

/// A waiting delivery or dead letter as listed.
pub(crate) struct DeliveryRow {
    pub(crate) id: i64,
    pub(crate) event: String,
    pub(crate) resource: String,
    pub(crate) attempts: u32,
    pub(crate) next_attempt: String,
    pub(crate) last_status: String,
    pub(crate) last_error: String,
    pub(crate) created: String,
}

impl DeliveryRow {
    fn of(d: &Delivery) -> DeliveryRow {
        DeliveryRow {
            id: d.id,
            event: format!("evt_{}", d.event_id),
            resource: d.resource_id.clone(),
            attempts: d.attempts,
            next_attempt: when(&d.next_attempt_at),
            last_status: d
                .last_status
                .map_or_else(|| "—".to_owned(), |s| s.to_string()),
            last_error: d.last_error.clone().unwrap_or_default(),
            created: when(&d.created_at),
        }
    }
}

/// One attempt as listed.
pub(crate) struct AttemptRow {
    pub(crate) at: String,
    pub(crate) event: String,
    pub(crate) resource: String,
    pub(crate) attempt: u32,
    pub(crate) status: String,
    pub(crate) outcome: String,
    pub(crate) delivered: bool,
    pub(crate) latency_ms: u64,
    pub(crate) error: String,
}

impl AttemptRow {
    fn of(a: &Attempt) -> AttemptRow {
        AttemptRow {
            at: when(&a.at),
            event: format!("evt_{}", a.event_id),
            resource: a.resource_id.clone(),
            attempt: a.attempt,
            status: a
                .status_code
                .map_or_else(|| "no answer".to_owned(), |s| s.to_string()),
            delivered: a.outcome == "delivered",
            outcome: a.outcome.clone(),
            latency_ms: a.latency_ms,
            error: a.error.clone().unwrap_or_default(),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
struct TargetQuery {
    /// `dead` (the default) or `pending`.
    #[serde(default)]
    status: String,
    /// Deliveries after this id.
    after: Option<i64>,
    /// Attempts before this id.
    before: Option<i64>,
    /// How many dead letters a replay just put back in line.
    replayed: Option<u64>,
}

#[derive(Template)]
#[template(path = "console/target.html")]
struct TargetPage {
    layout: Layout,
    target: TargetRow,
    /// Showing dead letters (else pending deliveries).
    dead: bool,
    deliveries: Vec<DeliveryRow>,
    more_deliveries: Option<String>,
    attempts: Vec<AttemptRow>,
    older_attempts: Option<String>,
    replayed: Option<u64>,
    reconciliations: Vec<RunRow>,
}

/// A reconciliation run as listed.
pub(crate) struct RunRow {
    pub(crate) id: String,
    pub(crate) status: &'static str,
    pub(crate) repair: bool,
    pub(crate) queued: String,
    pub(crate) finished: String,
    pub(crate) summary: String,
}

impl RunRow {
    fn of(job: &store::Job) -> RunRow {
        RunRow {
            id: job.id.clone(),
            status: job.status.as_str(),
            repair: job.payload["dryRun"] == serde_json::Value::Bool(false),
            queued: when(&job.created_at),
            finished: when_opt(&job.finished_at),
            summary: match (&job.result, &job.error) {
                (_, Some(error)) => error.clone(),
                (Some(result), None) => result
                    .as_object()
                    .map(|o| {
                        o.iter()
                            .filter(|(_, v)| v.is_number())
                            .map(|(k, v)| format!("{k} {v}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    })
                    .unwrap_or_default(),
                (None, None) => String::new(),
            },
        }
    }
}

/// `GET /console/t/{tenant}/delivery/{id}?status=&after=&before=`.
pub(crate) async fn target(req: HttpRequest) -> Page {
    let ctx = scoped::<Read>(&req).await?;
    let id = param(&req, "id");
    let q: TargetQuery = query(&req)?;
    let status = match q.status.as_str() {
        "" | "dead" => DeliveryStatus::Dead,
        "pending" => DeliveryStatus::Pending,
        other => {
            return Err(AdminError::BadRequest(format!(
                "status must be dead or pending, not {other:?}"
            ))
            .into());
        }
    };
    let after = q.after.unwrap_or(0);
    if after < 0 {
        return Err(AdminError::BadRequest("after must be at least 0".into()).into());
    }
    if q.before.is_some_and(|b| b < 1) {
        return Err(AdminError::BadRequest("before must be at least 1".into()).into());
    }
    let t = delivery::get_target(&ctx, &id).await?;
    let deliveries = delivery::deliveries(&ctx, &id, status, after, DELIVERIES_PER_PAGE).await?;
    let attempts = delivery::attempts(&ctx, &id, None, q.before, ATTEMPTS_PER_PAGE).await?;
    let layout = Layout::new(&req, t.name.clone(), "delivery", Some(ctx.tenant()))?;
    let path = format!("{}/delivery/{id}", layout.base());
    let more_deliveries = (deliveries.len() as u64 == DELIVERIES_PER_PAGE)
        .then(|| deliveries.last().map(|d| d.id))
        .flatten()
        .map(|last| {
            let after = last.to_string();
            format!(
                "{path}?{}",
                encode_query(&[("status", status.as_str()), ("after", &after)])
            )
        });
    let older_attempts = (attempts.len() as u64 == ATTEMPTS_PER_PAGE)
        .then(|| attempts.last().map(|a| a.id))
        .flatten()
        .map(|last| {
            let before = last.to_string();
            format!(
                "{path}?{}",
                encode_query(&[("status", status.as_str()), ("before", &before)])
            )
        });
    ok(&TargetPage {
        layout,
        target: TargetRow::of(&t),
        dead: status == DeliveryStatus::Dead,
        deliveries: deliveries.iter().map(DeliveryRow::of).collect(),
        more_deliveries,
        attempts: attempts.iter().map(AttemptRow::of).collect(),
        older_attempts,
        replayed: q.replayed,
        reconciliations: delivery::reconciliations(&ctx, &id, 5)
            .await?
            .iter()
            .map(RunRow::of)
            .collect(),
    })
}

#[derive(Debug, Default, Deserialize)]
struct EnabledForm {
    #[serde(default)]
    enabled: String,
}

/// `POST /console/t/{tenant}/delivery/{id}/enabled`: enable or disable.
pub(crate) async fn set_enabled(req: HttpRequest, body: web::Bytes) -> Page {
    let ctx = scoped::<Write>(&req).await?;
    let f: EnabledForm = form(&body)?;
    let enabled = match f.enabled.as_str() {
        "true" => true,
        "false" => false,
        other => {
            return Err(AdminError::BadRequest(format!(
                "enabled must be true or false, not {other:?}"
            ))
            .into());
        }
    };
    let id = param(&req, "id");
    let change = TargetChange {
        enabled: Some(enabled),
        ..TargetChange::default()
    };
    delivery::update_target(&ctx, &settings(&req)?, &id, change).await?;
    see_other(format!("{}/delivery/{id}", base(&ctx)))
}

/// `POST /console/t/{tenant}/delivery/{id}/dead-letters/{delivery}/replay`.
pub(crate) async fn replay_one(req: HttpRequest) -> Page {
    let ctx = scoped::<Write>(&req).await?;
    let id = param(&req, "id");
    let which = param(&req, "delivery");
    // An id that is not a number names no dead letter.
    let number = which
        .parse::<i64>()
        .map_err(|_| ServiceError::NotFound(format!("dead letter {which}")))?;
    let replayed = delivery::replay(&ctx, &id, Some(number)).await?;
    see_other(format!(
        "{}/delivery/{id}?status=dead&replayed={replayed}",
        base(&ctx)
    ))
}

#[derive(Template)]
#[template(path = "console/replay_all.html")]
struct ReplayAllPage {
    layout: Layout,
    target: TargetRow,
    /// Dead letters now (up to [`COUNT_AT_MOST`]).
    count: u64,
    at_most: bool,
}

/// `GET /console/t/{tenant}/delivery/{id}/dead-letters/replay`: what
/// replaying every dead letter does.
pub(crate) async fn confirm_replay_all(req: HttpRequest) -> Page {
    let ctx = scoped::<Write>(&req).await?;
    let id = param(&req, "id");
    let t = delivery::get_target(&ctx, &id).await?;
    let dead = delivery::deliveries(&ctx, &id, DeliveryStatus::Dead, 0, COUNT_AT_MOST).await?;
    ok(&ReplayAllPage {
        layout: Layout::new(&req, "Replay dead letters", "delivery", Some(ctx.tenant()))?,
        target: TargetRow::of(&t),
        count: dead.len() as u64,
        at_most: dead.len() as u64 == COUNT_AT_MOST,
    })
}

/// `POST /console/t/{tenant}/delivery/{id}/dead-letters/replay`.
pub(crate) async fn replay_all(req: HttpRequest) -> Page {
    let ctx = scoped::<Write>(&req).await?;
    let id = param(&req, "id");
    let replayed = delivery::replay(&ctx, &id, None).await?;
    see_other(format!(
        "{}/delivery/{id}?status=dead&replayed={replayed}",
        base(&ctx)
    ))
}

#[derive(Template)]
#[template(path = "console/repair.html")]
struct RepairPage {
    layout: Layout,
    target: TargetRow,
}

/// `GET /console/t/{tenant}/delivery/{id}/repair`: what a repairing
/// reconciliation does.
pub(crate) async fn confirm_repair(req: HttpRequest) -> Page {
    let ctx = scoped::<Write>(&req).await?;
    let t = delivery::get_target(&ctx, &param(&req, "id")).await?;
    if t.kind != TargetKind::Scim {
        return Err(
            ServiceError::Invalid("only outbound SCIM targets can be reconciled".into()).into(),
        );
    }
    ok(&RepairPage {
        layout: Layout::new(&req, "Repair drift", "delivery", Some(ctx.tenant()))?,
        target: TargetRow::of(&t),
    })
}

#[derive(Debug, Default, Deserialize)]
struct ReconcileForm {
    /// `yes`: repair the drift too (from the confirmation page).
    #[serde(default)]
    repair: String,
}

/// `POST /console/t/{tenant}/delivery/{id}/reconcile`: queues a
/// reconciliation (a report unless `repair=yes`) and shows its job.
pub(crate) async fn reconcile(req: HttpRequest, body: web::Bytes) -> Page {
    let ctx = scoped::<Write>(&req).await?;
    let f: ReconcileForm = form(&body)?;
    let dry_run = match f.repair.as_str() {
        "" | "no" => true,
        "yes" => false,
        other => {
            return Err(
                AdminError::BadRequest(format!("repair must be yes or no, not {other:?}")).into(),
            );
        }
    };
    let job = delivery::reconcile(&ctx, &param(&req, "id"), dry_run).await?;
    see_other(format!("{}/jobs/{}", base(&ctx), job.id))
}

/// A background job as shown.
pub(crate) struct JobView {
    pub(crate) id: String,
    pub(crate) kind: String,
    pub(crate) status: &'static str,
    pub(crate) running: bool,
    pub(crate) total: u64,
    pub(crate) processed: u64,
    pub(crate) changed: u64,
    /// The finished job's summary, as indented JSON.
    pub(crate) result: Option<String>,
    pub(crate) error: Option<String>,
    /// The target a delivery job works on, if any.
    pub(crate) target: Option<String>,
    /// A reconciliation that only reports.
    pub(crate) dry_run: Option<bool>,
    pub(crate) attempts: u32,
    pub(crate) created: String,
    pub(crate) started: String,
    pub(crate) finished: String,
}

impl JobView {
    fn of(j: &store::Job) -> JobView {
        JobView {
            id: j.id.clone(),
            kind: j.kind.clone(),
            status: j.status.as_str(),
            running: matches!(j.status, JobStatus::Queued | JobStatus::Running),
            total: j.progress.total,
            processed: j.progress.processed,
            changed: j.progress.changed,
            result: j
                .result
                .as_ref()
                .map(|r| serde_json::to_string_pretty(r).unwrap_or_else(|_| r.to_string())),
            error: j.error.clone(),
            target: j.payload["target"].as_str().map(str::to_owned),
            dry_run: j.payload["dryRun"].as_bool(),
            attempts: j.attempts,
            created: when(&j.created_at),
            started: when_opt(&j.started_at),
            finished: when_opt(&j.finished_at),
        }
    }

    /// How the job's kind reads.
    pub(crate) fn title(&self) -> &str {
        match (self.kind.as_str(), self.dry_run) {
            ("scim_reconcile", Some(false)) => "Reconciliation (repair)",
            ("scim_reconcile", _) => "Reconciliation (report only)",
            ("role_recompute", _) => "Role recompute",
            ("resend", _) => "Re-send",
            (other, _) => other,
        }
    }
}

#[derive(Template)]
#[template(path = "console/delivery_job.html")]
struct JobPage {
    layout: Layout,
    job: JobView,
}

#[derive(Template)]
#[template(path = "console/delivery_job.html", block = "progress")]
struct JobProgress {
    layout: Layout,
    job: JobView,
}

/// `GET /console/t/{tenant}/jobs/{job}`: a job's progress, refreshed by
/// htmx while it is queued or running.
pub(crate) async fn job(req: HttpRequest) -> Page {
    let ctx = scoped::<Read>(&req).await?;
    let job = JobView::of(&delivery::job(&ctx, &param(&req, "job")).await?);
    let layout = Layout::new(&req, job.title().to_owned(), "delivery", Some(ctx.tenant()))?;
    if wants_fragment(&req, "progress") {
        return ok(&JobProgress { layout, job });
    }
    ok(&JobPage { layout, job })
}

/// One timeline entry as listed.
pub(crate) struct TimelineRow {
    pub(crate) at: String,
    pub(crate) kind: &'static str,
    pub(crate) summary: String,
    pub(crate) detail: String,
    /// The target of an attempt.
    pub(crate) target: Option<String>,
}

#[derive(Template)]
#[template(path = "console/timeline.html")]
struct TimelinePage {
    layout: Layout,
    id: String,
    /// The user's userName while the user exists.
    user_name: Option<String>,
    rows: Vec<TimelineRow>,
}

/// `GET /console/t/{tenant}/users/{id}/timeline`: the user's requests,
/// events and delivery attempts, newest first.
pub(crate) async fn timeline(req: HttpRequest) -> Page {
    let ctx = scoped::<Read>(&req).await?;
    let id = param(&req, "id");
    let entries = delivery::timeline(&ctx, &id).await?;
    let user_name = match service::get_user(&ctx, &id).await {
        Ok(d) => d.user.document["userName"].as_str().map(str::to_owned),
        // Deleted or erased: the timeline stays readable by id.
        Err(ServiceError::Store(store::StoreError::NotFound(_)) | ServiceError::NotFound(_)) => {
            None
        }
        Err(e) => return Err(e.into()),
    };
    let rows = entries
        .into_iter()
        .rev()
        .map(|e| TimelineRow {
            at: when(&e.at),
            kind: e.kind,
            target: (e.kind == "attempt")
                .then(|| e.detail["targetId"].as_str().map(str::to_owned))
                .flatten(),
            summary: e.summary,
            detail: e.detail.to_string(),
        })
        .collect();
    let title = format!("Timeline of {}", user_name.as_deref().unwrap_or(&id));
    ok(&TimelinePage {
        layout: Layout::new(&req, title, "users", Some(ctx.tenant()))?,
        id,
        user_name,
        rows,
    })
}
