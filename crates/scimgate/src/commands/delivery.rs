//! `scimgate target ...` and `scimgate user|group timeline`: a tenant's delivery
//! targets and a resource's history, through the same service the admin
//! API calls (docs/cli.md).

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use store::delivery::{DeliveryStatus, OutboundProfile, Target};
use sync_worker::targets::TargetSpec;
use tenant_admin::service::delivery::{self, DeliverySettings, TargetChange};

use super::{CommandError, Output, tenant_context};
use crate::cli::TargetCommand;
use crate::config::Config;
use crate::server::open_store;

fn settings(config: &Config) -> Result<DeliverySettings, CommandError> {
    let secrets = crate::bootstrap::delivery_secrets(config)
        .map_err(|e| CommandError::Open(crate::server::AppError::DeliveryKey(e)))?;
    let delivery = config.delivery_config();
    Ok(DeliverySettings {
        secrets,
        policy: sync_worker::address::AddressPolicy {
            allow_private: delivery.allow_private_targets,
        },
        rotation_overlap: delivery.rotation_overlap,
    })
}

fn target_json(t: &Target) -> Value {
    json!({
        "id": t.id,
        "name": t.name,
        "kind": t.kind.as_str(),
        "url": t.url,
        "eventTypes": t.event_types.iter().map(|e| e.as_str()).collect::<Vec<_>>(),
        "enabled": t.enabled,
        "disabledReason": t.disabled_reason,
        "cursor": t.cursor,
        "failingSince": t.failing_since,
        "lastSuccessAt": t.last_success_at,
        "lastFailureAt": t.last_failure_at,
        "lastError": t.last_error,
    })
}

fn target_line(t: &Target) -> String {
    let health = if !t.enabled {
        format!(
            "disabled ({})",
            t.disabled_reason.as_deref().unwrap_or("no reason")
        )
    } else if let Some(since) = t.failing_since {
        format!(
            "failing since {} ({})",
            since.to_rfc3339(),
            t.last_error.as_deref().unwrap_or("")
        )
    } else {
        "ok".to_owned()
    };
    format!(
        "{}  {}  {}  {}  {health}",
        t.id,
        t.name,
        t.kind.as_str(),
        t.url
    )
}

fn one(t: &Target) -> Output {
    Output {
        json: target_json(t),
        text: target_line(t),
    }
}

/// `scimgate target ...`.
pub async fn target(config: &Config, command: TargetCommand) -> Result<Output, CommandError> {
    let store = open_store(config).await?;
    match command {
        TargetCommand::Create {
            tenant,
            name,
            url,
            kind,
            event_types,
            token_stdin,
        } => {
            let ctx = tenant_context(&store, &tenant).await?;
            let token = if token_stdin {
                let mut line = String::new();
                std::io::stdin()
                    .read_line(&mut line)
                    .map_err(|e| CommandError::Refused(format!("cannot read the token: {e}")))?;
                Some(line.trim().to_owned())
            } else {
                None
            };
            let created = delivery::create_target(
                &ctx,
                &settings(config)?,
                TargetSpec {
                    name,
                    kind,
                    url,
                    event_types,
                    token,
                },
            )
            .await?;
            let mut text = format!("Created target {}.\n", target_line(&created.target));
            if let Some(secret) = &created.secret {
                let _ = writeln!(
                    text,
                    "Signing secret (shown once; give it to the application):\n  {secret}"
                );
            }
            Ok(Output {
                json: json!({"target": target_json(&created.target), "secret": created.secret}),
                text,
            })
        }
        TargetCommand::List { tenant } => {
            let ctx = tenant_context(&store, &tenant).await?;
            let targets = delivery::list_targets(&ctx).await?;
            let mut text = String::new();
            for t in &targets {
                let _ = writeln!(text, "{}", target_line(t));
            }
            if targets.is_empty() {
                text.push_str("No targets.\n");
            }
            Ok(Output {
                json: json!({"targets": targets.iter().map(target_json).collect::<Vec<_>>()}),
                text,
            })
        }
        TargetCommand::Show { tenant, id } => {
            let ctx = tenant_context(&store, &tenant).await?;
            Ok(one(&delivery::get_target(&ctx, &id).await?))
        }
        TargetCommand::Update {
            tenant,
            id,
            name,
            url,
            enable,
            disable,
        } => {
            let ctx = tenant_context(&store, &tenant).await?;
            let enabled = match (enable, disable) {
                (true, true) => {
                    return Err(CommandError::Refused(
                        "--enable and --disable exclude each other".into(),
                    ));
                }
                (true, false) => Some(true),
                (false, true) => Some(false),
                (false, false) => None,
            };
            let change = TargetChange {
                name,
                url,
                enabled,
                ..TargetChange::default()
            };
            Ok(one(&delivery::update_target(
                &ctx,
                &settings(config)?,
                &id,
                change,
            )
            .await?))
        }
        TargetCommand::Delete { tenant, id } => {
            let ctx = tenant_context(&store, &tenant).await?;
            delivery::delete_target(&ctx, &id).await?;
            Ok(Output {
                json: json!({"deleted": id}),
                text: format!("Deleted target {id}."),
            })
        }
        TargetCommand::RotateSecret { tenant, id } => {
            let ctx = tenant_context(&store, &tenant).await?;
            let (t, secret) =
                delivery::rotate_secret(&ctx, &settings(config)?, &id, Utc::now()).await?;
            Ok(Output {
                json: json!({"target": target_json(&t), "secret": secret}),
                text: format!(
                    "New signing secret (shown once; the old one also signs until {}):\n  {secret}",
                    t.previous_secret_until
                        .map(|u| u.to_rfc3339())
                        .unwrap_or_default()
                ),
            })
        }
        TargetCommand::Mapping { tenant, id } => {
            let ctx = tenant_context(&store, &tenant).await?;
            Ok(mapping_output(&delivery::get_target(&ctx, &id).await?))
        }
        TargetCommand::SetMapping {
            tenant,
            id,
            file,
            if_match,
            resend,
        } => {
            let ctx = tenant_context(&store, &tenant).await?;
            let spec = delivery::mapping_spec(Some(&mapping_of(&file)?))?;
            let (t, job) = delivery::set_mapping(&ctx, &id, spec, if_match, resend).await?;
            let mut out = mapping_output(&t);
            if let Some(job) = job {
                out.json["resendJob"] = json!(job);
                out.text.push_str(&format!(
                    "Queued re-send job {job}; a running scimgate serve or worker runs it. \
                     Its progress: GET /admin/v1/tenants/{tenant}/jobs/{job}\n"
                ));
            }
            Ok(out)
        }
        TargetCommand::PreviewMapping {
            tenant,
            id,
            file,
            users,
            first,
        } => {
            let ctx = tenant_context(&store, &tenant).await?;
            let spec = delivery::mapping_spec(Some(&mapping_of(&file)?))?;
            let users = (!users.is_empty()).then_some(users);
            let preview = delivery::preview_mapping(&ctx, &id, spec, users, first).await?;
            let mut text = String::new();
            for p in &preview {
                let _ = writeln!(
                    text,
                    "user {}\n  now:   {}\n  would: {}",
                    p.id, p.before, p.after
                );
            }
            if preview.is_empty() {
                text.push_str("No users to preview.\n");
            }
            let users: Vec<Value> = preview
                .iter()
                .map(|p| json!({"id": p.id, "before": p.before, "after": p.after}))
                .collect();
            Ok(Output {
                json: json!({ "users": users }),
                text,
            })
        }
        TargetCommand::Profile { tenant, id } => {
            let ctx = tenant_context(&store, &tenant).await?;
            Ok(profile_output(&delivery::get_target(&ctx, &id).await?))
        }
        TargetCommand::SetProfile {
            tenant,
            id,
            members_per_patch,
            update_method,
            requests_per_second,
            flatten_groups,
        } => {
            let ctx = tenant_context(&store, &tenant).await?;
            let defaults = OutboundProfile::default();
            let profile = OutboundProfile {
                members_per_patch: members_per_patch.unwrap_or(defaults.members_per_patch),
                update_method: update_method.map_or(defaults.update_method, Into::into),
                requests_per_second,
                flatten_groups: flatten_groups.unwrap_or(defaults.flatten_groups),
            };
            Ok(profile_output(
                &delivery::set_profile(&ctx, &id, profile).await?,
            ))
        }
        TargetCommand::Attempts { tenant, id, limit } => {
            let ctx = tenant_context(&store, &tenant).await?;
            let attempts = delivery::attempts(&ctx, &id, None, None, limit).await?;
            let mut text = String::new();
            for a in &attempts {
                let _ = writeln!(
                    text,
                    "{}  evt_{}  #{}  {}  {}  {} ms{}",
                    a.at.to_rfc3339(),
                    a.event_id,
                    a.attempt,
                    a.status_code
                        .map_or_else(|| "-".to_owned(), |s| s.to_string()),
                    a.outcome,
                    a.latency_ms,
                    a.error
                        .as_deref()
                        .map(|e| format!("  {e}"))
                        .unwrap_or_default()
                );
            }
            Ok(Output {
                json: json!({"attempts": attempts.iter().map(|a| json!({
                    "eventId": format!("evt_{}", a.event_id), "attempt": a.attempt, "at": a.at,
                    "statusCode": a.status_code, "outcome": a.outcome, "latencyMs": a.latency_ms,
                    "error": a.error})).collect::<Vec<_>>()}),
                text,
            })
        }
        TargetCommand::DeadLetters { tenant, id, limit } => {
            let ctx = tenant_context(&store, &tenant).await?;
            let dead = delivery::deliveries(&ctx, &id, DeliveryStatus::Dead, 0, limit).await?;
            let mut text = String::new();
            for d in &dead {
                let _ = writeln!(
                    text,
                    "{}  evt_{}  {}  after {} attempts: {}",
                    d.id,
                    d.event_id,
                    d.resource_id,
                    d.attempts,
                    d.last_error.as_deref().unwrap_or("")
                );
            }
            if dead.is_empty() {
                text.push_str("No dead letters.\n");
            }
            Ok(Output {
                json: json!({"deadLetters": dead.iter().map(|d| json!({
                    "id": d.id, "eventId": format!("evt_{}", d.event_id),
                    "resourceId": d.resource_id, "attempts": d.attempts,
                    "lastStatus": d.last_status, "lastError": d.last_error})).collect::<Vec<_>>()}),
                text,
            })
        }
        TargetCommand::Replay {
            tenant,
            id,
            delivery: one_id,
        } => {
            let ctx = tenant_context(&store, &tenant).await?;
            let n = delivery::replay(&ctx, &id, one_id).await?;
            Ok(Output {
                json: json!({"replayed": n}),
                text: format!("{n} dead letter(s) back in line."),
            })
        }
        TargetCommand::Reconcile { tenant, id, repair } => {
            let ctx = tenant_context(&store, &tenant).await?;
            let job = delivery::reconcile(&ctx, &id, !repair).await?;
            Ok(Output {
                json: json!({"job": job.id, "kind": job.kind, "dryRun": !repair}),
                text: format!(
                    "Queued {} job {} ({}); a running scimgate serve or worker runs it. \
                     Its drift report: GET /admin/v1/tenants/{tenant}/jobs/{}",
                    job.kind,
                    job.id,
                    if repair { "repair" } else { "dry run" },
                    job.id
                ),
            })
        }
        TargetCommand::Resend { tenant, id, since } => {
            let ctx = tenant_context(&store, &tenant).await?;
            let since = DateTime::parse_from_rfc3339(&since)
                .map_err(|_| {
                    CommandError::Refused(
                        "--since must be an RFC 3339 time such as 2026-12-01T00:00:00Z".into(),
                    )
                })?
                .with_timezone(&Utc);
            let cursor = delivery::resend(&ctx, &id, since).await?;
            Ok(Output {
                json: json!({"cursor": cursor}),
                text: format!("Every event after position {cursor} will be sent again."),
            })
        }
    }
}

/// `scimgate user timeline TENANT ID` (and `group timeline`).
pub async fn timeline(config: &Config, tenant: &str, id: &str) -> Result<Output, CommandError> {
    let store = open_store(config).await?;
    let ctx = tenant_context(&store, tenant).await?;
    let entries = delivery::timeline(&ctx, id).await?;
    let mut text = String::new();
    for e in &entries {
        let _ = writeln!(text, "{}  {:<8} {}", e.at.to_rfc3339(), e.kind, e.summary);
    }
    Ok(Output {
        json: json!({"entries": entries}),
        text,
    })
}

/// The mapping of a file: `{"mapping": ...}` (what `target mapping --json`
/// prints) or the bare mapping.
fn mapping_of(file: &std::path::Path) -> Result<Value, CommandError> {
    Ok(match super::read_json(file)? {
        Value::Object(mut o) if o.contains_key("mapping") => {
            o.remove("mapping").unwrap_or(Value::Null)
        }
        other => other,
    })
}

fn mapping_output(t: &Target) -> Output {
    let mapping = t
        .mapping
        .as_ref()
        .and_then(|m| serde_json::to_value(m).ok())
        .unwrap_or(Value::Null);
    let text = match &mapping {
        Value::Null => format!(
            "Target {} has no mapping (version {}): its application receives documents as stored.\n",
            t.id, t.mapping_version
        ),
        m => format!(
            "Target {} mapping, version {}:\n{}\n",
            t.id,
            t.mapping_version,
            serde_json::to_string_pretty(m).unwrap_or_default()
        ),
    };
    Output {
        json: json!({"version": t.mapping_version, "mapping": mapping}),
        text,
    }
}

fn profile_output(t: &Target) -> Output {
    let p = t.profile;
    let rate = p
        .requests_per_second
        .map_or("no limit".to_owned(), |r| format!("{r} requests/s"));
    Output {
        json: serde_json::to_value(p).unwrap_or(Value::Null),
        text: format!(
            "Target {}: {} members per PATCH, users updated by {}, {rate}, {}.\n",
            t.id,
            p.members_per_patch,
            match p.update_method {
                store::delivery::UpdateMethod::Put => "PUT",
                store::delivery::UpdateMethod::Patch => "PATCH",
            },
            if p.flatten_groups {
                "nested groups flattened"
            } else {
                "nested groups as they are"
            }
        ),
    }
}
