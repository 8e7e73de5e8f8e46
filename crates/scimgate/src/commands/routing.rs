//! `routing show|set|copies`: a super tenant's routing rules, their dry
//! run and re-route job, and where a user or group was copied.

use std::fmt::Write as _;
use std::time::Duration;

use serde_json::{Value, json};
use store::copies::{ChildMoves, RoutingPreview};
use store::fanout::RoutingPolicy;
use store::routing::RuleSpec;
use store::{Job, JobHandlers, JobStatus, Reroute, Store};
use tenant_admin::service::{self, RoutingOutcome};

use super::{CommandError, Output, cli, table, tenant_context, time};
use crate::cli::RoutingCommand;
use crate::config::Config;
use crate::server::open_store;

/// How often a waiting command looks at its job again.
const JOB_POLL: Duration = Duration::from_millis(200);

/// Runs one `routing` subcommand.
pub async fn routing(config: &Config, command: RoutingCommand) -> Result<Output, CommandError> {
    let store = open_store(config).await?;
    match command {
        RoutingCommand::Show { super_tenant } => {
            let policy = service::routing_policy(&store.admin(), &cli(), &super_tenant).await?;
            Ok(show(&super_tenant, &policy))
        }
        RoutingCommand::Set {
            super_tenant,
            file,
            if_match,
            dry_run,
            no_wait,
        } => {
            let rules = read_rules(&file)?;
            let outcome = service::change_routing(
                &store.admin(),
                &cli(),
                &super_tenant,
                rules,
                if_match,
                dry_run,
            )
            .await?;
            match outcome {
                RoutingOutcome::DryRun(preview) => Ok(dry_run_output(&super_tenant, &preview)),
                RoutingOutcome::Stored(change) => {
                    let version = change.policy.version;
                    let mut text = format!(
                        "Stored version {version} of the routing rules of super tenant {super_tenant:?} ({} rules).\n",
                        change.policy.rules.len()
                    );
                    if no_wait {
                        let _ = writeln!(
                            text,
                            "Queued re-route job {}: a running server applies it.",
                            change.job
                        );
                        return Ok(Output {
                            json: json!({"version": version, "job": {"id": change.job, "status": "queued"}}),
                            text,
                        });
                    }
                    let job = wait_for(&store, &change.job).await?;
                    if job.status != JobStatus::Done {
                        return Err(CommandError::Refused(format!(
                            "routing version {version} is stored, but re-route job {} {}: {}",
                            job.id,
                            job.status.as_str(),
                            job.error.unwrap_or_default()
                        )));
                    }
                    let result = job.result.clone().unwrap_or(Value::Null);
                    let _ = writeln!(
                        text,
                        "Re-route job {}: done, {} users and {} groups looked at.",
                        job.id, result["users"], result["groups"]
                    );
                    text.push_str(&moves_table(result["children"].as_array()));
                    Ok(Output {
                        json: json!({"version": version, "job": {"id": job.id, "status": "done", "result": result}}),
                        text,
                    })
                }
            }
        }
        RoutingCommand::Copies { super_tenant, id } => {
            let ctx = tenant_context(&store, &super_tenant).await?;
            let copies = ctx.store().copies(&id).await?;
            let mut rows = vec![[
                "CHILD".to_owned(),
                "TYPE".to_owned(),
                "COPY ID".to_owned(),
                "ROUTED".to_owned(),
                "RULES".to_owned(),
                "SINCE".to_owned(),
            ]];
            let mut list = Vec::new();
            for c in &copies {
                rows.push([
                    c.child.clone(),
                    c.resource_type.to_owned(),
                    c.copy_id.clone(),
                    if c.routed { "yes" } else { "no (deactivated)" }.to_owned(),
                    c.rules.join(","),
                    time(c.updated_at),
                ]);
                list.push(json!({
                    "child": c.child, "resourceType": c.resource_type, "copyId": c.copy_id,
                    "routed": c.routed, "rules": c.rules, "updatedAt": c.updated_at,
                }));
            }
            let text = if copies.is_empty() {
                format!("{id:?} of {super_tenant:?} has no copies in any child tenant.")
            } else {
                table(&rows)
            };
            Ok(Output {
                json: json!({ "copies": list }),
                text,
            })
        }
    }
}

/// The rules of a file: `{"rules": [...]}` (what `routing show --json`
/// prints) or the bare array.
fn read_rules(file: &std::path::Path) -> Result<Vec<RuleSpec>, CommandError> {
    let rules = match super::read_json(file)? {
        Value::Object(mut o) => o.remove("rules").unwrap_or(Value::Null),
        other => other,
    };
    serde_json::from_value(rules).map_err(|e| {
        CommandError::Refused(format!(
            "{}: expected {{\"rules\": [...]}} or an array of rules: {e}",
            file.display()
        ))
    })
}

fn show(slug: &str, policy: &RoutingPolicy) -> Output {
    let mut rows = vec![["ID".to_owned(), "CHILD".to_owned(), "CONDITION".to_owned()]];
    for r in &policy.rules {
        let condition = match (&r.group, &r.filter) {
            (Some(g), _) => format!("group {} = {:?}", g.attribute(), g.value()),
            (None, Some(f)) => format!("filter {f}"),
            (None, None) => String::new(),
        };
        rows.push([r.id.clone(), r.child.clone(), condition]);
    }
    let text = if policy.rules.is_empty() {
        format!(
            "Super tenant {slug:?} has no routing rules (version {}): `scimgate routing set {slug} --file rules.json` sets them.",
            policy.version
        )
    } else {
        format!(
            "Routing rules of super tenant {slug:?}, version {}:\n{}",
            policy.version,
            table(&rows)
        )
    };
    Output {
        json: json!({"version": policy.version, "rules": policy.rules, "updatedAt": policy.updated_at}),
        text,
    }
}

fn moves_json(c: &ChildMoves) -> Value {
    let sample = |list: &[store::copies::PreviewEntry]| -> Vec<Value> {
        list.iter()
            .map(|e| json!({"id": e.id, "name": e.name}))
            .collect()
    };
    json!({
        "child": c.child,
        "usersEntering": c.users_entering,
        "usersLeaving": c.users_leaving,
        "groupsEntering": c.groups_entering,
        "groupsLeaving": c.groups_leaving,
        "sampleEntering": sample(&c.sample_entering),
        "sampleLeaving": sample(&c.sample_leaving),
    })
}

fn moves_table(children: Option<&Vec<Value>>) -> String {
    let children = children.map(Vec::as_slice).unwrap_or(&[]);
    if children.is_empty() {
        return "Nothing enters or leaves any child.\n".to_owned();
    }
    let mut rows = vec![[
        "CHILD".to_owned(),
        "USERS IN".to_owned(),
        "USERS OUT".to_owned(),
        "GROUPS IN".to_owned(),
        "GROUPS OUT".to_owned(),
    ]];
    for c in children {
        rows.push([
            c["child"].as_str().unwrap_or("").to_owned(),
            c["usersEntering"].to_string(),
            c["usersLeaving"].to_string(),
            c["groupsEntering"].to_string(),
            c["groupsLeaving"].to_string(),
        ]);
    }
    table(&rows)
}

fn dry_run_output(slug: &str, preview: &RoutingPreview) -> Output {
    let children: Vec<Value> = preview.children.iter().map(moves_json).collect();
    let mut text = format!(
        "Dry run for super tenant {slug:?} ({} users, {} groups looked at; nothing stored):\n",
        preview.users, preview.groups
    );
    text.push_str(&moves_table(Some(&children)));
    for c in &preview.children {
        for (what, list) in [
            ("entering", &c.sample_entering),
            ("leaving", &c.sample_leaving),
        ] {
            if !list.is_empty() {
                let names: Vec<&str> = list.iter().map(|e| e.name.as_str()).collect();
                let _ = writeln!(text, "{} {what}: {}", c.child, names.join(", "));
            }
        }
    }
    Output {
        json: json!({"dryRun": true, "users": preview.users, "groups": preview.groups, "children": children}),
        text,
    }
}

/// Runs re-route jobs in this process until job `id` has finished (a
/// running server may take it first; then this waits for it).
async fn wait_for(store: &Store, id: &str) -> Result<Job, CommandError> {
    let worker = store.job_worker(JobHandlers::new().with(Reroute));
    loop {
        let job = store.admin().job(id).await?;
        if job.status.is_finished() {
            return Ok(job);
        }
        if worker.run_next().await?.is_none() {
            tokio::time::sleep(JOB_POLL).await;
        }
    }
}
