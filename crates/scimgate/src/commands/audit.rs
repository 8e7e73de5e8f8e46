//! `scimgate audit`: the admin audit log, newest first.

use std::collections::HashMap;

use serde_json::{Value, json};
use store::AuditEntry;
use tenant_admin::service::{self, AuditFilter};
use uuid::Uuid;

use super::{CommandError, Output, table, time};
use crate::cli::AuditArgs;
use crate::config::Config;
use crate::server::open_store;

/// `scimgate audit [--tenant T] [--limit N]`.
pub async fn audit(config: &Config, args: AuditArgs) -> Result<Output, CommandError> {
    let admin = open_store(config).await?.admin();
    // A deleted tenant's entries stay; they can only be asked for by id.
    let filter = AuditFilter {
        limit: Some(args.limit),
        ..AuditFilter::default()
    };
    let entries = service::global_audit(&admin, args.tenant.as_deref(), filter)
        .await?
        .entries;

    // Slugs for the tenants named, where they still exist.
    let mut slugs: HashMap<Uuid, Option<String>> = HashMap::new();
    for id in entries.iter().filter_map(|e| e.tenant_id) {
        if let std::collections::hash_map::Entry::Vacant(slot) = slugs.entry(id) {
            slot.insert(admin.tenant_by_id(id).await?.map(|t| t.slug().to_owned()));
        }
    }
    let slug_of = |e: &AuditEntry| e.tenant_id.and_then(|id| slugs.get(&id).cloned().flatten());

    let mut rows = vec![[
        "AT".to_owned(),
        "TENANT".to_owned(),
        "ACTOR".to_owned(),
        "ACTION".to_owned(),
        "TARGET".to_owned(),
    ]];
    for e in &entries {
        let tenant = match (slug_of(e), e.tenant_id) {
            (Some(slug), _) => slug,
            (None, Some(id)) => id.to_string(),
            (None, None) => "-".to_owned(),
        };
        rows.push([
            time(e.at),
            tenant,
            e.actor.clone(),
            e.action.clone(),
            e.target.clone(),
        ]);
    }
    let text = if entries.is_empty() {
        "No audit entries.".to_owned()
    } else {
        table(&rows)
    };
    Ok(Output {
        json: json!({
            "entries": entries
                .iter()
                .map(|e| entry_json(e, slug_of(e)))
                .collect::<Vec<_>>(),
        }),
        text,
    })
}

fn entry_json(e: &AuditEntry, tenant: Option<String>) -> Value {
    json!({
        "id": e.id,
        "at": time(e.at),
        "tenant_id": e.tenant_id,
        "tenant": tenant,
        "actor": e.actor,
        "action": e.action,
        "target": e.target,
        "detail": e.detail,
    })
}
