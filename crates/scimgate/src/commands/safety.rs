//! `scimgate safety ...`: a tenant's deletion safety (policy, held
//! changes, protected and soft-deleted users, erasure), through the same
//! service the admin API calls (docs/cli.md).

use std::fmt::Write as _;

use serde_json::{Value, json};
use store::safety::{DeletedUser, DeletionPolicy, HeldChange, ProtectedUser, SafetyState};
use tenant_admin::service::safety;

use super::{CommandError, Output, tenant_context, time};
use crate::cli::{HeldArgs, SafetyCommand};
use crate::config::Config;
use crate::server::open_store;

fn state_json(s: &SafetyState) -> Value {
    json!({
        "maxDeletions": s.policy.max_deletions,
        "maxPercent": s.policy.max_percent,
        "windowMinutes": s.policy.window_minutes,
        "graceDays": s.policy.grace_days,
        "version": s.version,
        "tripped": s.tripped,
        "windowStartedAt": s.window_started_at,
        "windowCount": s.window_count,
        "held": s.held,
    })
}

fn state_output(s: &SafetyState) -> Output {
    let p = &s.policy;
    let limit =
        |v: Option<u32>, unit: &str| v.map_or("no limit".to_owned(), |n| format!("{n}{unit}"));
    let mut text = String::new();
    let _ = writeln!(text, "Deletion policy, version {}:", s.version);
    let _ = writeln!(text, "  max deletions:  {}", limit(p.max_deletions, ""));
    let _ = writeln!(text, "  max percent:    {}", limit(p.max_percent, " %"));
    let _ = writeln!(text, "  window:         {} minutes", p.window_minutes);
    let _ = writeln!(text, "  grace period:   {} days", p.grace_days);
    let window = s
        .window_started_at
        .map_or("no window open yet".to_owned(), |at| {
            format!("{} let through since {}", s.window_count, time(at))
        });
    let _ = writeln!(
        text,
        "State: {}; {window}; {} held.",
        if s.tripped { "TRIPPED" } else { "not tripped" },
        s.held
    );
    Output {
        json: state_json(s),
        text,
    }
}

fn held_json(h: &HeldChange) -> Value {
    json!({
        "id": h.id,
        "userId": h.user_id,
        "userName": h.user_name,
        "reason": h.reason.as_str(),
        "eventType": h.event_type.as_str(),
        "heldAt": h.held_at,
    })
}

fn protection_json(p: &ProtectedUser) -> Value {
    json!({
        "userId": p.user_id,
        "reason": p.reason,
        "protectedBy": p.actor,
        "since": p.since,
    })
}

fn deleted_json(d: &DeletedUser) -> Value {
    json!({
        "id": d.id,
        "userName": d.user_name,
        "deletedAt": d.deleted_at,
        "purgeAfter": d.purge_after,
    })
}

/// The service's selection of `--id` / `--user`: neither is all.
fn selection(which: HeldArgs) -> Result<store::safety::HeldSelection, CommandError> {
    let ids = (!which.ids.is_empty()).then_some(which.ids);
    let users = (!which.users.is_empty()).then_some(which.users);
    Ok(safety::selection(ids, users)?)
}

/// `scimgate safety ...`.
pub async fn safety(config: &Config, command: SafetyCommand) -> Result<Output, CommandError> {
    let store = open_store(config).await?;
    match command {
        SafetyCommand::Show { tenant } => {
            let ctx = tenant_context(&store, &tenant).await?;
            Ok(state_output(&safety::state(&ctx).await?))
        }
        SafetyCommand::Set {
            tenant,
            max_deletions,
            no_max_deletions,
            max_percent,
            no_max_percent,
            window_minutes,
            grace_days,
            if_match,
        } => {
            let ctx = tenant_context(&store, &tenant).await?;
            let defaults = DeletionPolicy::default();
            let policy = DeletionPolicy {
                max_deletions: if no_max_deletions {
                    None
                } else {
                    max_deletions.or(defaults.max_deletions)
                },
                max_percent: if no_max_percent {
                    None
                } else {
                    max_percent.or(defaults.max_percent)
                },
                window_minutes: window_minutes.unwrap_or(defaults.window_minutes),
                grace_days: grace_days.unwrap_or(defaults.grace_days),
            };
            Ok(state_output(
                &safety::set_policy(&ctx, policy, if_match).await?,
            ))
        }
        SafetyCommand::Held { tenant, limit } => {
            let ctx = tenant_context(&store, &tenant).await?;
            let held = safety::held(&ctx, limit).await?;
            let mut text = String::new();
            for h in &held {
                let _ = writeln!(
                    text,
                    "{}  {}  {}  {}  {}  {}",
                    h.id,
                    h.user_id,
                    h.user_name.as_deref().unwrap_or("-"),
                    h.reason.as_str(),
                    h.event_type.as_str(),
                    time(h.held_at)
                );
            }
            if held.is_empty() {
                text.push_str("No held changes.\n");
            }
            Ok(Output {
                json: json!({"changes": held.iter().map(held_json).collect::<Vec<_>>()}),
                text,
            })
        }
        SafetyCommand::Release { tenant, which } => {
            let ctx = tenant_context(&store, &tenant).await?;
            let count = safety::release(&ctx, selection(which)?).await?;
            Ok(Output {
                json: json!({"count": count}),
                text: format!("Released {count} held change(s) to the applications."),
            })
        }
        SafetyCommand::Discard { tenant, which } => {
            let ctx = tenant_context(&store, &tenant).await?;
            let count = safety::discard(&ctx, selection(which)?).await?;
            Ok(Output {
                json: json!({"count": count}),
                text: format!(
                    "Discarded {count} held change(s); the applications keep those users."
                ),
            })
        }
        SafetyCommand::Protected { tenant } => {
            let ctx = tenant_context(&store, &tenant).await?;
            let users = safety::protected(&ctx).await?;
            let mut text = String::new();
            for p in &users {
                let _ = writeln!(
                    text,
                    "{}  since {} by {}: {}",
                    p.user_id,
                    time(p.since),
                    p.actor,
                    p.reason
                );
            }
            if users.is_empty() {
                text.push_str("No protected users.\n");
            }
            Ok(Output {
                json: json!({"users": users.iter().map(protection_json).collect::<Vec<_>>()}),
                text,
            })
        }
        SafetyCommand::Protect {
            tenant,
            user_id,
            reason,
        } => {
            let ctx = tenant_context(&store, &tenant).await?;
            let p = safety::protect(&ctx, &user_id, &reason).await?;
            Ok(Output {
                json: protection_json(&p),
                text: format!(
                    "User {} is protected: its deletion or deactivation is held. Reason: {}",
                    p.user_id, p.reason
                ),
            })
        }
        SafetyCommand::Unprotect { tenant, user_id } => {
            let ctx = tenant_context(&store, &tenant).await?;
            safety::unprotect(&ctx, &user_id).await?;
            Ok(Output {
                json: json!({"unprotected": user_id}),
                text: format!("User {user_id} is no longer protected."),
            })
        }
        SafetyCommand::Deleted { tenant, limit } => {
            let ctx = tenant_context(&store, &tenant).await?;
            let users = safety::deleted(&ctx, limit).await?;
            let mut text = String::new();
            for d in &users {
                let _ = writeln!(
                    text,
                    "{}  {}  deleted {}  purged after {}",
                    d.id,
                    d.user_name,
                    time(d.deleted_at),
                    time(d.purge_after)
                );
            }
            if users.is_empty() {
                text.push_str("No soft-deleted users.\n");
            }
            Ok(Output {
                json: json!({"users": users.iter().map(deleted_json).collect::<Vec<_>>()}),
                text,
            })
        }
        SafetyCommand::Restore { tenant, user_id } => {
            let ctx = tenant_context(&store, &tenant).await?;
            let user = safety::restore(&ctx, &user_id).await?;
            let user_name = user.document["userName"].as_str().unwrap_or_default();
            Ok(Output {
                json: json!({"id": user.id, "userName": user_name}),
                text: format!("Restored user {} ({user_name}).", user.id),
            })
        }
        SafetyCommand::Erase {
            tenant,
            user_id,
            confirm,
        } => {
            let ctx = tenant_context(&store, &tenant).await?;
            // --confirm is the CLI's spelling of the API's ?confirm={id}.
            if confirm.as_deref() != Some(user_id.as_str()) {
                return Err(CommandError::Refused(format!(
                    "erasing user {user_id}'s data cannot be undone; add --confirm {user_id} to confirm"
                )));
            }
            let rows = safety::erase(&ctx, &user_id, confirm.as_deref()).await?;
            let mut text = format!("Erased user {user_id}'s data. Rows by table:\n");
            if let Value::Object(tables) = &rows {
                for (table, n) in tables {
                    let _ = writeln!(text, "  {table}: {n}");
                }
            }
            Ok(Output {
                json: json!({"id": user_id, "rows": rows}),
                text,
            })
        }
    }
}
