//! Delivery to the tenant's applications: targets, their attempts, waiting
//! deliveries and dead letters, replays and re-sends, the event feed and a
//! resource's timeline. Checking what an admin asks for (addresses,
//! secrets) is `sync_worker::targets`'s, called from here.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use mapping::{Mapping, MappingSpec};
use serde_json::Value;
use store::delivery::{Attempt, Delivery, DeliveryStatus, Target};
use store::{EventQuery, EventType, ResourceKind, StoreError};
use sync_worker::address::AddressPolicy;
use sync_worker::secrets::SecretBox;
use sync_worker::targets::{Created, TargetError, TargetSpec, Targets};
use uuid::Uuid;

use super::{ServiceError, TenantContext};

/// How targets are made: the key that seals their secrets (none: no
/// target can be created), which addresses they may have, and how long a
/// rotated secret keeps signing.
#[derive(Clone, Debug)]
pub struct DeliverySettings {
    /// Seals target secrets.
    pub secrets: Option<SecretBox>,
    /// Which addresses targets may have.
    pub policy: AddressPolicy,
    /// How long the previous secret signs too after a rotation.
    pub rotation_overlap: Duration,
}

impl From<TargetError> for ServiceError {
    fn from(e: TargetError) -> Self {
        match e {
            TargetError::Invalid(m) => ServiceError::Invalid(m),
            TargetError::Address(a) => ServiceError::Invalid(a.to_string()),
            TargetError::Secret(s) => ServiceError::Internal(format!("target secret: {s}")),
            TargetError::Store(StoreError::Uniqueness(m)) => ServiceError::Conflict(m),
            TargetError::Store(s) => ServiceError::Store(s),
            TargetError::NoKey => ServiceError::Conflict(TargetError::NoKey.to_string()),
        }
    }
}

fn targets<'a>(ctx: &'a TenantContext, settings: &'a DeliverySettings) -> Targets<'a> {
    Targets {
        store: ctx.store(),
        secrets: settings.secrets.as_ref(),
        policy: settings.policy,
    }
}

/// A target id from a path: an unparsable one is simply not found.
fn target_id(id: &str) -> Result<Uuid, ServiceError> {
    Uuid::parse_str(id).map_err(|_| ServiceError::NotFound(format!("target {id}")))
}

/// The tenant's targets, by name.
pub async fn list_targets(ctx: &TenantContext) -> Result<Vec<Target>, ServiceError> {
    Ok(ctx.store().targets().await?)
}

/// One target.
pub async fn get_target(ctx: &TenantContext, id: &str) -> Result<Target, ServiceError> {
    Ok(ctx.store().target(target_id(id)?).await?)
}

/// Creates a target; a webhook's signing secret is in the result, once.
pub async fn create_target(
    ctx: &TenantContext,
    settings: &DeliverySettings,
    spec: TargetSpec,
) -> Result<Created, ServiceError> {
    Ok(targets(ctx, settings)
        .create(spec, ctx.actor().as_str())
        .await?)
}

/// What an update may change (`None` keeps the current value).
#[derive(Debug, Clone, Default)]
pub struct TargetChange {
    /// A new label.
    pub name: Option<String>,
    /// A new endpoint.
    pub url: Option<String>,
    /// New event types (empty: all).
    pub event_types: Option<Vec<String>>,
    /// Enable or disable.
    pub enabled: Option<bool>,
    /// A new bearer token (outbound SCIM).
    pub token: Option<String>,
}

/// Changes a target.
pub async fn update_target(
    ctx: &TenantContext,
    settings: &DeliverySettings,
    id: &str,
    change: TargetChange,
) -> Result<Target, ServiceError> {
    let id = target_id(id)?;
    let service = targets(ctx, settings);
    if let Some(token) = &change.token {
        service.set_token(id, token, ctx.actor().as_str()).await?;
    }
    Ok(service
        .update(
            id,
            change.name,
            change.url,
            change.event_types,
            change.enabled,
            ctx.actor().as_str(),
        )
        .await?)
}

/// Queues a reconciliation of an outbound SCIM target (a dry run unless
/// `dry_run` is false); returns the job.
pub async fn reconcile(
    ctx: &TenantContext,
    id: &str,
    dry_run: bool,
) -> Result<store::Job, ServiceError> {
    let target = ctx.store().target(target_id(id)?).await?;
    if target.kind != store::delivery::TargetKind::Scim {
        return Err(ServiceError::Invalid(
            "only outbound SCIM targets can be reconciled".into(),
        ));
    }
    let job = ctx
        .store()
        .enqueue_job(sync_worker::reconcile::job(target.id, dry_run))
        .await?;
    Ok(ctx.store().job(&job).await?)
}

/// The latest reconciliations of target `id` (at most `limit`, newest
/// first), from the tenant's recent reconciliation jobs.
pub async fn reconciliations(
    ctx: &TenantContext,
    id: &str,
    limit: u64,
) -> Result<Vec<store::Job>, ServiceError> {
    let target = target_id(id)?.to_string();
    let mut jobs = ctx
        .store()
        .jobs(Some(sync_worker::reconcile::KIND), 100)
        .await?;
    jobs.retain(|j| j.payload["target"].as_str() == Some(target.as_str()));
    jobs.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    Ok(jobs)
}

/// One of the tenant's background jobs.
pub async fn job(ctx: &TenantContext, id: &str) -> Result<store::Job, ServiceError> {
    Ok(ctx.store().job(id).await?)
}

/// Deletes a target and its waiting deliveries.
pub async fn delete_target(ctx: &TenantContext, id: &str) -> Result<(), ServiceError> {
    Ok(ctx
        .store()
        .delete_target(target_id(id)?, ctx.actor().as_str())
        .await?)
}

/// Gives a webhook target a new signing secret (returned once).
pub async fn rotate_secret(
    ctx: &TenantContext,
    settings: &DeliverySettings,
    id: &str,
    now: DateTime<Utc>,
) -> Result<(Target, String), ServiceError> {
    let id = target_id(id)?;
    Ok(targets(ctx, settings)
        .rotate(id, settings.rotation_overlap, now, ctx.actor().as_str())
        .await?)
}

/// A target's attempts, newest first.
pub async fn attempts(
    ctx: &TenantContext,
    id: &str,
    event: Option<&str>,
    before: Option<i64>,
    limit: u64,
) -> Result<Vec<Attempt>, ServiceError> {
    let event = event.map(event_number).transpose()?;
    Ok(ctx
        .store()
        .attempts(target_id(id)?, event, before, limit)
        .await?)
}

/// `evt_42` (or `42`) as the log id 42.
pub fn event_number(text: &str) -> Result<i64, ServiceError> {
    text.strip_prefix("evt_")
        .unwrap_or(text)
        .parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| ServiceError::Invalid(format!("{text:?} is not an event id (evt_<n>)")))
}

/// A target's waiting deliveries of one status, oldest first.
pub async fn deliveries(
    ctx: &TenantContext,
    id: &str,
    status: DeliveryStatus,
    after: i64,
    limit: u64,
) -> Result<Vec<Delivery>, ServiceError> {
    Ok(ctx
        .store()
        .deliveries(target_id(id)?, status, after, limit)
        .await?)
}

/// Puts one dead letter (or all of the target's) back in line.
pub async fn replay(
    ctx: &TenantContext,
    id: &str,
    delivery: Option<i64>,
) -> Result<u64, ServiceError> {
    Ok(ctx
        .store()
        .replay_dead_letters(target_id(id)?, delivery, ctx.actor().as_str())
        .await?)
}

/// Sends again every event committed since `since`; returns the cursor.
pub async fn resend(
    ctx: &TenantContext,
    id: &str,
    since: DateTime<Utc>,
) -> Result<i64, ServiceError> {
    Ok(ctx
        .store()
        .resend_since(target_id(id)?, since, ctx.actor().as_str())
        .await?)
}

/// A page of the event feed: envelopes after `after`, and the cursor to
/// ask from next (the same when there was nothing new).
pub async fn feed(
    ctx: &TenantContext,
    after: i64,
    limit: u64,
    types: &[String],
) -> Result<(Vec<Value>, i64), ServiceError> {
    let types = types
        .iter()
        .map(|t| {
            EventType::from_str(t).map_err(|_| {
                ServiceError::Invalid(format!("unknown event type {t:?} (see docs/events.md)"))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut events = ctx
        .store()
        .events(&EventQuery {
            after,
            limit,
            types,
            tenant: None,
        })
        .await?;
    let next = events.last().map_or(after, |e| e.position);
    // Re-sends after a target's mapping change are that target's alone.
    events.retain(|e| e.only_for().is_none());
    // The feed is the tenant's own: documents as stored.
    let renderer = sync_worker::envelope::Renderer {
        tenant: Some(ctx.store()),
        mapping: None,
    };
    Ok((renderer.render(&events).await?, next))
}

/// The tenant's newest `limit` events, newest first, as the feed renders
/// them (for the console; applications page the feed in commit order).
pub async fn recent_events(ctx: &TenantContext, limit: u64) -> Result<Vec<Value>, ServiceError> {
    let mut events = ctx.store().latest_events(limit).await?;
    events.retain(|e| e.only_for().is_none());
    let renderer = sync_worker::envelope::Renderer {
        tenant: Some(ctx.store()),
        mapping: None,
    };
    Ok(renderer.render(&events).await?)
}

/// One user's or group's timeline; `NotFound` when it never existed here.
pub async fn timeline(
    ctx: &TenantContext,
    id: &str,
) -> Result<Vec<sync_worker::timeline::Entry>, ServiceError> {
    let entries = sync_worker::timeline::timeline(ctx.store(), id).await?;
    if entries.is_empty() {
        return Err(ServiceError::NotFound(format!("resource {id}")));
    }
    Ok(entries)
}

/// Users a mapping preview shows at most.
pub const MAX_PREVIEW_USERS: u64 = 50;

/// Reads a mapping sent over the API; `null` means "documents as stored".
/// A mapping that does not parse or check out is `Invalid`, naming the
/// rule and attribute.
pub fn mapping_spec(value: Option<&Value>) -> Result<Option<MappingSpec>, ServiceError> {
    let Some(value) = value.filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let spec = MappingSpec::from_json(value).map_err(|e| ServiceError::Invalid(e.to_string()))?;
    Mapping::parse(&spec).map_err(|e| ServiceError::Invalid(e.to_string()))?;
    Ok(Some(spec))
}

/// Replaces a target's attribute mapping (audited) when `expected` is its
/// current mapping version (or absent).
pub async fn set_mapping(
    ctx: &TenantContext,
    id: &str,
    spec: Option<MappingSpec>,
    expected: Option<u64>,
    resend: bool,
) -> Result<(Target, Option<String>), ServiceError> {
    Ok(ctx
        .store()
        .set_target_mapping(target_id(id)?, spec, expected, resend, ctx.actor().as_str())
        .await?)
}

/// One user in a mapping preview: what the target receives under its
/// stored mapping, and what it would receive under the proposed one.
#[derive(Debug, Clone, PartialEq)]
pub struct MappingPreview {
    /// The user's id.
    pub id: String,
    /// Under the stored mapping.
    pub before: Value,
    /// Under the proposed mapping.
    pub after: Value,
}

/// Previews `proposed` (`None`: documents as stored) against target `id`'s
/// stored mapping, for the users `ids` or, without them, the tenant's
/// first `first` users. Stores nothing.
pub async fn preview_mapping(
    ctx: &TenantContext,
    id: &str,
    proposed: Option<MappingSpec>,
    ids: Option<Vec<String>>,
    first: u64,
) -> Result<Vec<MappingPreview>, ServiceError> {
    let target = ctx.store().target(target_id(id)?).await?;
    let limit = MAX_PREVIEW_USERS;
    let ids = match ids {
        Some(ids) if ids.len() as u64 > limit => {
            return Err(ServiceError::Invalid(format!(
                "a preview shows at most {limit} users"
            )));
        }
        Some(ids) => ids,
        None => {
            let query = store::ListQuery {
                filter: None,
                sort_by: None,
                descending: false,
                start_index: 1,
                count: first.min(limit),
                with_members: false,
                user_extras: Default::default(),
            };
            ctx.store()
                .list_users(&query)
                .await?
                .resources
                .into_iter()
                .map(|r| r.id)
                .collect()
        }
    };
    let parse = |spec: Option<&MappingSpec>| {
        spec.map(Mapping::parse)
            .transpose()
            .map_err(|e| ServiceError::Invalid(e.to_string()))
    };
    let stored = parse(target.mapping.as_ref())?;
    let proposed = parse(proposed.as_ref())?;
    let render = |mapping| sync_worker::envelope::Renderer {
        tenant: Some(ctx.store()),
        mapping,
    };
    let before = render(stored.as_ref())
        .now(ResourceKind::User, &ids)
        .await?;
    let after = render(proposed.as_ref())
        .now(ResourceKind::User, &ids)
        .await?;
    Ok(before
        .into_iter()
        .zip(after)
        .map(|((id, before), (_, after))| MappingPreview { id, before, after })
        .collect())
}

/// Replaces an outbound SCIM target's application profile (audited).
pub async fn set_profile(
    ctx: &TenantContext,
    id: &str,
    profile: store::delivery::OutboundProfile,
) -> Result<Target, ServiceError> {
    Ok(ctx
        .store()
        .set_target_profile(target_id(id)?, profile, ctx.actor().as_str())
        .await?)
}
