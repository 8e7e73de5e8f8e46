//! Super tenants and their children: a tenant's kind, and which super
//! tenant feeds a child (docs/msp-guide.md, once routing lands).
//!
//! The rules hold in the database as well as here: a child has one link
//! row (its primary key), and deleting either tenant removes the link
//! (foreign keys, migration m0010). The checks that need both tenants'
//! kinds run in one write transaction with both rows locked, so two
//! operators cannot make a child of a child or a super tenant of a child.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde_json::json;
use uuid::Uuid;

use crate::audit;
use crate::db::{Inner, TxError, db, dbx, now};
use crate::entity::{copies, routing_policies, super_links, tenants};
use crate::{Result, StoreError, Tenant, TenantKind};

/// What happens to a child's copy of a user who stops being routed there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnUnroute {
    /// The copy is deactivated (`active: false`), and reactivated if the
    /// user is routed there again.
    Deactivate,
    /// The copy is deleted (a later route creates a new one).
    Delete,
}

impl OnUnroute {
    /// The stored and wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            OnUnroute::Deactivate => "deactivate",
            OnUnroute::Delete => "delete",
        }
    }

    /// Parses the stored and wire spelling.
    pub fn parse(text: &str) -> Option<OnUnroute> {
        match text {
            "deactivate" => Some(OnUnroute::Deactivate),
            "delete" => Some(OnUnroute::Delete),
            _ => None,
        }
    }
}

/// A child tenant's link to the super tenant that feeds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuperLink {
    /// The child tenant.
    pub child: Uuid,
    /// The super tenant feeding it.
    pub super_tenant: Uuid,
    /// What happens to copies of users no longer routed to the child.
    pub on_unroute: OnUnroute,
    /// When the link was made.
    pub created_at: DateTime<Utc>,
}

fn uuid_of(text: &str) -> Result<Uuid> {
    Uuid::parse_str(text)
        .map_err(|_| StoreError::Internal(format!("malformed tenant id {text:?} in super_links")))
}

fn link_from_row(row: super_links::Model) -> Result<SuperLink> {
    Ok(SuperLink {
        child: uuid_of(&row.child_tenant_id)?,
        super_tenant: uuid_of(&row.super_tenant_id)?,
        on_unroute: OnUnroute::parse(&row.on_unroute).ok_or_else(|| {
            StoreError::Internal(format!("unknown on_unroute {:?}", row.on_unroute))
        })?,
        created_at: row.created_at,
    })
}

fn kind_of(row: &tenants::Model) -> &str {
    row.kind.as_str()
}

async fn locked_tenant(
    txn: &sea_orm::DatabaseTransaction,
    id: Uuid,
) -> Result<tenants::Model, TxError> {
    tenants::Entity::find_by_id(id.to_string())
        .lock_exclusive()
        .one(txn)
        .await
        .map_err(dbx)?
        .ok_or_else(|| StoreError::NotFound(format!("tenant {id}")).into())
}

async fn link_of(
    txn: &sea_orm::DatabaseTransaction,
    child: Uuid,
) -> Result<Option<super_links::Model>, TxError> {
    super_links::Entity::find_by_id(child.to_string())
        .one(txn)
        .await
        .map_err(dbx)
}

async fn has_children(txn: &sea_orm::DatabaseTransaction, id: Uuid) -> Result<bool, TxError> {
    let found: Option<String> = super_links::Entity::find()
        .select_only()
        .column(super_links::Column::ChildTenantId)
        .filter(super_links::Column::SuperTenantId.eq(id.to_string()))
        .limit(1)
        .into_tuple()
        .one(txn)
        .await
        .map_err(dbx)?;
    Ok(found.is_some())
}

/// Makes a tenant `standard` or `super` (audited). A child cannot become a
/// super tenant, and a super tenant with children cannot become standard.
pub(crate) async fn set_kind(
    inner: &Inner,
    id: Uuid,
    kind: TenantKind,
    actor: &str,
) -> Result<Tenant> {
    let row = write_txn!(inner, [actor], [], txn => {
        let row = locked_tenant(txn, id).await?;
        let wanted = match kind {
            TenantKind::Standard => "standard",
            TenantKind::Super => "super",
        };
        if kind_of(&row) == wanted {
            return Ok(row);
        }
        match kind {
            TenantKind::Super if link_of(txn, id).await?.is_some() => {
                return Err(StoreError::InvalidValue(format!(
                    "tenant '{}' is fed by a super tenant: unlink it before making it a super tenant",
                    row.slug
                ))
                .into());
            }
            TenantKind::Standard if has_children(txn, id).await? => {
                return Err(StoreError::InvalidValue(format!(
                    "super tenant '{}' still feeds child tenants: unlink them first",
                    row.slug
                ))
                .into());
            }
            _ => {}
        }
        let at = now();
        tenants::Entity::update_many()
            .col_expr(tenants::Column::Kind, Expr::value(wanted))
            .col_expr(tenants::Column::UpdatedAt, Expr::value(at))
            .filter(tenants::Column::Id.eq(id.to_string()))
            .exec(txn)
            .await
            .map_err(dbx)?;
        // Cached token lookups carry the kind: they must be re-read.
        crate::admin::bump_auth_revision(txn).await?;
        let detail = json!({"before": row.kind, "after": wanted});
        audit::write(txn, Some(id), actor, "tenant.kind", &row.slug, detail).await?;
        Ok(tenants::Model {
            kind: wanted.to_owned(),
            updated_at: at,
            ..row
        })
    })?;
    crate::admin::tenant_from_row(row)
}

/// Links `child` to `super_tenant` (audited): the super tenant must be of
/// kind `super`, the child `standard` and not yet fed by any super tenant.
pub(crate) async fn link(
    inner: &Inner,
    super_tenant: Uuid,
    child: Uuid,
    on_unroute: OnUnroute,
    actor: &str,
) -> Result<SuperLink> {
    if super_tenant == child {
        return Err(StoreError::InvalidValue(
            "a tenant cannot be its own child".into(),
        ));
    }
    let row = write_txn!(inner, [actor], [], txn => {
        let parent = locked_tenant(txn, super_tenant).await?;
        let kid = locked_tenant(txn, child).await?;
        if kind_of(&parent) != "super" {
            return Err(StoreError::InvalidValue(format!(
                "tenant '{}' is not a super tenant (make it one first)",
                parent.slug
            ))
            .into());
        }
        if kind_of(&kid) != "standard" {
            return Err(StoreError::InvalidValue(format!(
                "tenant '{}' is a super tenant and cannot be a child",
                kid.slug
            ))
            .into());
        }
        if let Some(existing) = link_of(txn, child).await? {
            if existing.super_tenant_id == super_tenant.to_string() {
                return Ok(existing);
            }
            return Err(StoreError::Uniqueness(format!(
                "tenant '{}' is already fed by another super tenant: unlink it first",
                kid.slug
            ))
            .into());
        }
        let row = super_links::Model {
            child_tenant_id: child.to_string(),
            super_tenant_id: super_tenant.to_string(),
            on_unroute: on_unroute.as_str().to_owned(),
            created_at: now(),
        };
        super_links::Entity::insert(super_links::ActiveModel {
            child_tenant_id: Set(row.child_tenant_id.clone()),
            super_tenant_id: Set(row.super_tenant_id.clone()),
            on_unroute: Set(row.on_unroute.clone()),
            created_at: Set(row.created_at),
        })
        .exec_without_returning(txn)
        .await
        .map_err(dbx)?;
        // Cached token lookups say whether a tenant is fed: re-read them.
        crate::admin::bump_auth_revision(txn).await?;
        let detail = json!({"super_tenant": parent.slug, "child": kid.slug, "on_unroute": row.on_unroute});
        audit::write(txn, Some(super_tenant), actor, "tenant.link", &kid.slug, detail.clone()).await?;
        audit::write(txn, Some(child), actor, "tenant.link", &kid.slug, detail).await?;
        Ok(row)
    })?;
    link_from_row(row)
}

/// What happens to a child's copies when its link ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopiesOnUnlink {
    /// They stay, as the child's own standalone users and groups.
    Keep,
    /// They are deleted from the child (each deletion an event there).
    Remove,
}

impl CopiesOnUnlink {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            CopiesOnUnlink::Keep => "keep",
            CopiesOnUnlink::Remove => "remove",
        }
    }
}

/// What ending a link did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Unlinked {
    /// Copies left in the child as its own users and groups.
    pub kept: u64,
    /// Users deleted from the child.
    pub users_removed: u64,
    /// Groups deleted from the child.
    pub groups_removed: u64,
}

/// Removes `child`'s link to its super tenant (audited), keeping its
/// copies as standalone resources or deleting them, in one transaction;
/// `NotFound` when it has none.
pub(crate) async fn unlink(
    inner: &std::sync::Arc<Inner>,
    child: Uuid,
    copies: CopiesOnUnlink,
    actor: &str,
) -> Result<Unlinked> {
    let shared = inner.clone();
    write_txn!(inner, [actor], [shared], txn => {
        let kid = locked_tenant(txn, child).await?;
        let Some(existing) = link_of(txn, child).await? else {
            return Err(StoreError::NotFound(format!(
                "tenant '{}' is not fed by a super tenant",
                kid.slug
            ))
            .into());
        };
        let rows = copies::Entity::find()
            .filter(copies::Column::ChildTenantId.eq(child.to_string()))
            .order_by_asc(copies::Column::Kind)
            .order_by_asc(copies::Column::ChildId)
            .all(txn)
            .await
            .map_err(dbx)?;
        let mut done = Unlinked::default();
        match copies {
            CopiesOnUnlink::Keep => done.kept = rows.len() as u64,
            CopiesOnUnlink::Remove => {
                let store = crate::TenantStore {
                    inner: shared.clone(),
                    tenant: crate::admin::tenant_from_row(kid.clone())?,
                };
                // Groups first ("group" sorts before "user"), so member
                // removals are not written only to be deleted.
                for row in &rows {
                    let gone = if row.kind == "group" {
                        crate::directory::delete_group_in(&store, txn, &row.child_id, None)
                            .await
                            .map(drop)
                    } else {
                        crate::directory::delete_user_in(&store, txn, &row.child_id, None).await
                    };
                    match gone {
                        Ok(()) if row.kind == "group" => done.groups_removed += 1,
                        Ok(()) => done.users_removed += 1,
                        Err(TxError::Fail(StoreError::NotFound(_))) => {}
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        copies::Entity::delete_many()
            .filter(copies::Column::ChildTenantId.eq(child.to_string()))
            .exec(txn)
            .await
            .map_err(dbx)?;
        super_links::Entity::delete_by_id(child.to_string())
            .exec(txn)
            .await
            .map_err(dbx)?;
        crate::admin::bump_auth_revision(txn).await?;
        let parent = uuid_of(&existing.super_tenant_id)?;
        let detail = json!({
            "super_tenant": existing.super_tenant_id,
            "child": kid.slug,
            "copies": copies.as_str(),
            "kept": done.kept,
            "users_removed": done.users_removed,
            "groups_removed": done.groups_removed,
        });
        audit::write(txn, Some(parent), actor, "tenant.unlink", &kid.slug, detail.clone()).await?;
        audit::write(txn, Some(child), actor, "tenant.unlink", &kid.slug, detail).await?;
        Ok(done)
    })
}

/// The children a super tenant feeds, in link order.
pub(crate) async fn children(inner: &Inner, super_tenant: Uuid) -> Result<Vec<SuperLink>> {
    super_links::Entity::find()
        .filter(super_links::Column::SuperTenantId.eq(super_tenant.to_string()))
        .order_by_asc(super_links::Column::CreatedAt)
        .order_by_asc(super_links::Column::ChildTenantId)
        .all(&inner.conn)
        .await
        .map_err(db)?
        .into_iter()
        .map(link_from_row)
        .collect()
}

/// The slug of the super tenant feeding tenant `child`, if any.
pub(crate) async fn super_slug_of(
    conn: &impl sea_orm::ConnectionTrait,
    child: &str,
) -> Result<Option<String>> {
    let Some(link) = super_links::Entity::find_by_id(child.to_owned())
        .one(conn)
        .await
        .map_err(db)?
    else {
        return Ok(None);
    };
    let slug: Option<String> = tenants::Entity::find_by_id(link.super_tenant_id)
        .select_only()
        .column(tenants::Column::Slug)
        .into_tuple()
        .one(conn)
        .await
        .map_err(db)?;
    Ok(slug)
}

/// The super tenant feeding `child`, if any.
pub(crate) async fn super_of(inner: &Inner, child: Uuid) -> Result<Option<SuperLink>> {
    super_links::Entity::find_by_id(child.to_string())
        .one(&inner.conn)
        .await
        .map_err(db)?
        .map(link_from_row)
        .transpose()
}

/// A super tenant's routing rules and their version (0: never set).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutingPolicy {
    /// Grows with every change; `If-Match` compares against it.
    pub version: u64,
    /// The rules, in order.
    pub rules: Vec<crate::routing::RuleSpec>,
    /// When last changed (`None`: never set).
    pub updated_at: Option<DateTime<Utc>>,
}

fn policy_from_row(row: Option<routing_policies::Model>) -> Result<RoutingPolicy> {
    let Some(row) = row else {
        return Ok(RoutingPolicy {
            version: 0,
            rules: Vec::new(),
            updated_at: None,
        });
    };
    let rules = serde_json::from_str(&row.rules).map_err(|e| {
        StoreError::Internal(format!(
            "routing policy of tenant {} does not parse: {e}",
            row.super_tenant_id
        ))
    })?;
    Ok(RoutingPolicy {
        version: u64::try_from(row.version).unwrap_or(0),
        rules,
        updated_at: Some(row.updated_at),
    })
}

/// The routing policy of super tenant `tenant`.
pub(crate) async fn routing_policy(inner: &Inner, tenant: Uuid) -> Result<RoutingPolicy> {
    policy_from_row(
        routing_policies::Entity::find_by_id(tenant.to_string())
            .one(&inner.conn)
            .await
            .map_err(db)?,
    )
}

/// Replaces super tenant `tenant`'s rules (audited) when `if_match` is the
/// current version (or absent). The rules must be valid, and each must
/// name a child this super tenant feeds.
pub(crate) async fn set_routing_policy(
    inner: &Inner,
    tenant: Uuid,
    rules: Vec<crate::routing::RuleSpec>,
    if_match: Option<u64>,
    actor: &str,
) -> Result<RoutingChange> {
    crate::routing::Rules::parse(&rules).map_err(|e| StoreError::InvalidValue(e.0))?;
    let text = serde_json::to_string(&rules)
        .map_err(|e| StoreError::Internal(format!("routing rules do not serialize: {e}")))?;
    let clock = inner.options.clock.clone();
    let row = write_txn!(inner, [actor], [rules, text, clock], txn => {
        let me = locked_tenant(txn, tenant).await?;
        if kind_of(&me) != "super" {
            return Err(StoreError::InvalidValue(format!(
                "tenant '{}' is not a super tenant: only a super tenant routes to children",
                me.slug
            ))
            .into());
        }
        // Each rule's child must be one this super tenant feeds.
        let linked: Vec<String> = super_links::Entity::find()
            .select_only()
            .column(super_links::Column::ChildTenantId)
            .filter(super_links::Column::SuperTenantId.eq(tenant.to_string()))
            .into_tuple()
            .all(txn)
            .await
            .map_err(dbx)?;
        let slugs: Vec<String> = if linked.is_empty() {
            Vec::new()
        } else {
            tenants::Entity::find()
                .select_only()
                .column(tenants::Column::Slug)
                .filter(tenants::Column::Id.is_in(linked))
                .into_tuple()
                .all(txn)
                .await
                .map_err(dbx)?
        };
        for rule in rules.iter() {
            if !slugs.contains(&rule.child) {
                return Err(StoreError::InvalidValue(format!(
                    "rule {:?}: tenant '{}' is not a child of super tenant '{}' (link it first)",
                    rule.id, rule.child, me.slug
                ))
                .into());
            }
        }
        let current = routing_policies::Entity::find_by_id(tenant.to_string())
            .lock_exclusive()
            .one(txn)
            .await
            .map_err(dbx)?;
        let version = current.as_ref().map_or(0, |r| r.version);
        if let Some(expected) = if_match
            && i64::try_from(expected).ok() != Some(version)
        {
            return Err(StoreError::PreconditionFailed {
                current: u64::try_from(version).unwrap_or(0),
            }
            .into());
        }
        let row = routing_policies::Model {
            super_tenant_id: tenant.to_string(),
            version: version + 1,
            rules: text.clone(),
            updated_at: now(),
        };
        let active = routing_policies::ActiveModel {
            super_tenant_id: Set(row.super_tenant_id.clone()),
            version: Set(row.version),
            rules: Set(row.rules.clone()),
            updated_at: Set(row.updated_at),
        };
        if current.is_some() {
            routing_policies::Entity::update(active)
                .exec(txn)
                .await
                .map_err(dbx)?;
        } else {
            routing_policies::Entity::insert(active)
                .exec_without_returning(txn)
                .await
                .map_err(dbx)?;
        }
        let version = u64::try_from(row.version).unwrap_or(0);
        let job = crate::jobs::enqueue_reroute(clock, txn, tenant, version).await?;
        let detail = json!({"version": row.version, "rules": rules.len(), "job": job});
        audit::write(txn, Some(tenant), actor, "routing.update", &me.slug, detail).await?;
        Ok((row, job))
    })?;
    Ok(RoutingChange {
        policy: policy_from_row(Some(row.0))?,
        job: row.1,
    })
}

/// Stored routing rules and the re-route job they queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutingChange {
    /// The rules as stored, with their new version.
    pub policy: RoutingPolicy,
    /// The id of the job that re-routes the existing users and groups.
    pub job: String,
}
