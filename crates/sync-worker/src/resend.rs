//! The re-send after a target's attribute mapping changed, as a
//! background job (`mapping_resend`, queued by the store with the mapping
//! change; see the store's `resend` module for the events it writes).
//!
//! It walks the tenant's users, then its groups, in id order and in
//! pages, renders each page under the mapping the target had before and
//! the one it has now (as delivery renders them, roles included), and
//! re-sends exactly those whose document differs, to that target only.
//! Progress counts resources looked at (`processed`) and re-sent
//! (`changed`); the result names how many of each kind were re-sent.

use mapping::{Mapping, MappingSpec};
use serde_json::{Value, json};
use store::{
    EventType, JobContext, JobError, JobHandler, JobProgress, JobResult, MAPPING_RESEND,
    MAX_RESEND, ResourceKind,
};
use uuid::Uuid;

use crate::envelope::Renderer;

/// The job handler (stateless: everything it needs is in the payload and
/// the tenant's store).
#[derive(Debug, Clone, Copy, Default)]
pub struct Resend;

/// Resources rendered and compared per page.
const PAGE: usize = 500;

fn parse(spec: Option<MappingSpec>) -> Result<Option<Mapping>, JobError> {
    spec.as_ref()
        .map(Mapping::parse)
        .transpose()
        .map_err(|e| JobError::Permanent(format!("a mapping does not check out: {e}")))
}

impl JobHandler for Resend {
    fn kind(&self) -> &'static str {
        MAPPING_RESEND
    }

    async fn run(&self, ctx: JobContext) -> Result<JobResult, JobError> {
        let Some(dir) = ctx.tenant().cloned() else {
            return Err(JobError::Permanent("a re-send belongs to a tenant".into()));
        };
        let payload = ctx.payload().clone();
        let target = payload["target"]
            .as_str()
            .and_then(|t| Uuid::parse_str(t).ok())
            .ok_or_else(|| JobError::Permanent("the payload names no target".into()))?;
        let from: Option<MappingSpec> = serde_json::from_value(payload["from"].clone())
            .map_err(|e| JobError::Permanent(format!("the payload's mapping: {e}")))?;
        // The target's mapping now: a change since this job was queued
        // queued its own re-send, and both compare with what is current.
        let t = dir.target(target).await?;
        let before = parse(from)?;
        let after = parse(t.mapping.clone())?;
        let render = |mapping| Renderer {
            tenant: Some(&dir),
            mapping,
        };
        let (old, new) = (render(before.as_ref()), render(after.as_ref()));
        let mut progress = JobProgress {
            total: total(&dir, false).await? + total(&dir, true).await?,
            ..JobProgress::default()
        };
        let mut resent = serde_json::Map::new();
        let kinds = [
            (ResourceKind::User, EventType::UserUpdated, "users"),
            (ResourceKind::Group, EventType::GroupUpdated, "groups"),
        ];
        for (kind, event_type, name) in kinds {
            let mut count = 0u64;
            // A target that does not take updates of this kind hears of
            // none; nothing to re-send.
            if t.wants(event_type) {
                let mut last = String::new();
                loop {
                    if ctx.is_cancelled() {
                        return Err(JobError::Cancelled);
                    }
                    let ids = dir.ids_after(kind, &last, PAGE as u64).await?;
                    let Some(next) = ids.last().cloned() else {
                        break;
                    };
                    let was = old.now(kind, &ids).await?;
                    let is = new.now(kind, &ids).await?;
                    let changed: Vec<String> = differing(was, is);
                    for chunk in changed.chunks(MAX_RESEND) {
                        count += dir.resend(target, kind, chunk).await?;
                    }
                    progress.processed += ids.len() as u64;
                    progress.changed += changed.len() as u64;
                    ctx.progress(progress).await?;
                    last = next;
                }
            }
            resent.insert(name.to_owned(), json!(count));
        }
        Ok(JobResult {
            summary: Some(json!({
                "target": target,
                "mappingVersion": t.mapping_version,
                "looked": progress.processed,
                "resent": Value::Object(resent),
            })),
        })
    }
}

/// How many users (or groups) the tenant has.
async fn total(dir: &store::TenantStore, groups: bool) -> Result<u64, JobError> {
    let query = store::ListQuery {
        filter: None,
        sort_by: None,
        descending: false,
        start_index: 1,
        count: 0,
        with_members: false,
        user_extras: Default::default(),
    };
    let page = if groups {
        dir.list_groups(&query).await?
    } else {
        dir.list_users(&query).await?
    };
    Ok(page.total)
}

/// The ids whose document differs between the two renderings (a resource
/// gone from one of them since is left out: its deletion is an event of
/// its own).
fn differing(was: Vec<(String, Value)>, is: Vec<(String, Value)>) -> Vec<String> {
    let was: std::collections::HashMap<String, Value> = was.into_iter().collect();
    is.into_iter()
        .filter(|(id, doc)| was.get(id).is_some_and(|before| before != doc))
        .map(|(id, _)| id)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_documents_that_differ_are_resent() {
        let was = vec![
            ("a".to_owned(), json!({"x": 1})),
            ("b".to_owned(), json!({"x": 2})),
            ("c".to_owned(), json!({"x": 3})),
        ];
        let is = vec![
            ("a".to_owned(), json!({"x": 1})),
            ("b".to_owned(), json!({"x": 20})),
            ("d".to_owned(), json!({"x": 4})),
        ];
        assert_eq!(differing(was, is), vec!["b".to_owned()]);
    }
}
