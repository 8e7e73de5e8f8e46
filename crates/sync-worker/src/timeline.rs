//! One user's or group's history, end to end: the SCIM requests that
//! touched it (the provisioning log), its role changes with their reasons,
//! its events, and every attempt to deliver each event to each target, in
//! time order. The admin API and the CLI show it.

use chrono::{DateTime, SubsecRound, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use store::{EventType, LogQuery, StoreError, TenantStore};

/// The most entries of each kind a timeline reads.
pub const LIMIT: u64 = 500;

/// One entry of a timeline.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    /// When it happened.
    pub at: DateTime<Utc>,
    /// `request`, `event`, `roles` (an event of type `user.roles_changed`,
    /// with its before and after) or `attempt`.
    pub kind: &'static str,
    /// A one-line description.
    pub summary: String,
    /// The details, by kind.
    pub detail: Value,
}

/// The timeline of resource `id` of the tenant, oldest first.
pub async fn timeline(dir: &TenantStore, id: &str) -> Result<Vec<Entry>, StoreError> {
    let mut out = Vec::new();
    let requests = dir
        .provisioning_log(&LogQuery {
            resource_id: Some(id.to_owned()),
            limit: LIMIT,
            ..LogQuery::default()
        })
        .await?;
    for (log_id, r) in requests {
        let mut summary = format!(
            "{} {} → {} ({})",
            r.method, r.resource_type, r.status, r.outcome
        );
        // A super tenant's write: where its copies went, and by which rules.
        if let Some(routed) = r.routed.as_ref().and_then(Value::as_array) {
            let each: Vec<String> = routed
                .iter()
                .map(|c| {
                    let rules: Vec<&str> = c["rules"]
                        .as_array()
                        .map(|a| a.iter().filter_map(Value::as_str).collect())
                        .unwrap_or_default();
                    let why = match rules.is_empty() {
                        true => String::new(),
                        false => format!(" by {}", rules.join(", ")),
                    };
                    format!(
                        "{} {} in {}{why}",
                        c["resourceType"].as_str().unwrap_or(""),
                        c["action"].as_str().unwrap_or(""),
                        c["child"].as_str().unwrap_or(""),
                    )
                })
                .collect();
            if !each.is_empty() {
                summary.push_str("; routed: ");
                summary.push_str(&each.join("; "));
            }
        }
        out.push(Entry {
            at: r.at,
            kind: "request",
            summary,
            detail: json!({
                "logId": log_id,
                "method": r.method,
                "status": r.status,
                "outcome": r.outcome,
                "identifier": r.identifier,
                "requestId": r.request_id,
                "durationMs": r.duration_ms,
                "detail": r.detail,
                "routed": r.routed,
            }),
        });
    }
    for e in dir.resource_events(id).await? {
        let (kind, summary, detail) = if e.event_type == EventType::UserRolesChanged {
            let names = |v: &Value| -> Vec<String> {
                v.get("roles")
                    .and_then(Value::as_array)
                    .map(|roles| {
                        roles
                            .iter()
                            .filter_map(|r| r.get("role").and_then(Value::as_str))
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default()
            };
            let before = names(&e.payload["before"]);
            let after = names(&e.payload["after"]);
            (
                "roles",
                format!("roles {before:?} → {after:?}"),
                json!({"before": e.payload["before"], "after": e.payload["after"]}),
            )
        } else {
            (
                "event",
                e.event_type.as_str().to_owned(),
                json!({"changed": e.payload.get("changed"),
                       "members": e.payload.get("members"),
                       "version": e.payload.get("version")}),
            )
        };
        let mut detail = detail;
        if let Some(d) = detail.as_object_mut() {
            d.insert("eventId".into(), json!(e.public_id()));
            d.insert("type".into(), json!(e.event_type.as_str()));
            d.insert("position".into(), json!(e.position));
        }
        out.push(Entry {
            at: e.created_at,
            kind,
            summary,
            detail,
        });
    }
    for a in dir.resource_attempts(id).await? {
        let status = a
            .status_code
            .map_or_else(|| "no answer".to_owned(), |s| format!("HTTP {s}"));
        out.push(Entry {
            at: a.at,
            kind: "attempt",
            summary: format!(
                "evt_{} attempt {} → {status} ({})",
                a.event_id, a.attempt, a.outcome
            ),
            detail: json!({
                "eventId": format!("evt_{}", a.event_id),
                "targetId": a.target_id,
                "attempt": a.attempt,
                "statusCode": a.status_code,
                "outcome": a.outcome,
                "latencyMs": a.latency_ms,
                "error": a.error,
            }),
        });
    }
    // Stored times have millisecond precision (a request's arrival may
    // have more): within one millisecond a request comes before the events
    // it caused, and an event before its attempts.
    let rank = |kind: &str| match kind {
        "request" => 0,
        "attempt" => 2,
        _ => 1,
    };
    out.sort_by_key(|e| (e.at.trunc_subsecs(3), rank(e.kind)));
    Ok(out)
}
