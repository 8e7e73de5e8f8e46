//! Tenants: list and create them (operators), read, rename, suspend,
//! reactivate and delete one.

use chrono::{DateTime, Utc};
use store::copies::RoutingPreview;
use store::fanout::{CopiesOnUnlink, OnUnroute, RoutingChange, RoutingPolicy, Unlinked};
use store::routing::RuleSpec;
use store::{
    AdminStore, IssuedToken, NewTenant, NewToken, Scope, StoreError, Tenant, TenantActivity,
    TenantKind, TenantUpdate,
};

use super::{Actor, ServiceError, TenantContext, not_blank, page_size};

/// A page of tenants by slug.
#[derive(Debug, Clone)]
pub struct TenantPage {
    /// Every tenant there is.
    pub total: u64,
    /// Where this page starts.
    pub offset: u64,
    /// The page size used.
    pub limit: u64,
    /// The tenants of this page.
    pub tenants: Vec<Tenant>,
}

/// A page of tenants with what an operator watches about each.
#[derive(Debug, Clone)]
pub struct TenantOverview {
    /// Every match.
    pub total: u64,
    /// Where this page starts.
    pub offset: u64,
    /// The page size used.
    pub limit: u64,
    /// The tenants of this page, with their activity.
    pub tenants: Vec<(Tenant, TenantActivity)>,
}

/// A tenant to create.
#[derive(Debug, Clone)]
pub struct NewTenantRequest {
    /// Its slug (URL name).
    pub slug: String,
    /// Its display name; may not be blank.
    pub name: String,
    /// Standard or super.
    pub kind: TenantKind,
    /// Also issue a first `scim:write` token named `initial`.
    pub issue_token: bool,
}

/// The largest accepted `offset`: the databases take a signed 64-bit
/// offset, and no deployment has anywhere near this many tenants.
pub const MAX_OFFSET: u64 = i64::MAX as u64;

/// A page of the tenants whose slug or name contains `search` (all
/// without one), with each one's users, last SCIM activity, delivery
/// health and super tenant (operators): 25 unless asked, at most 100.
pub async fn tenant_overview(
    admin: &AdminStore,
    actor: &Actor,
    search: Option<&str>,
    offset: Option<u64>,
    limit: Option<u64>,
) -> Result<TenantOverview, ServiceError> {
    operators_only(actor)?;
    let offset = offset.unwrap_or(0);
    if offset > MAX_OFFSET {
        return Err(ServiceError::Invalid(format!(
            "offset must be at most {MAX_OFFSET}"
        )));
    }
    let limit = page_size(limit, 25, 100);
    let (total, tenants) = admin.search_tenants(search, offset, limit).await?;
    let ids: Vec<_> = tenants.iter().map(Tenant::id).collect();
    let mut activity = admin.tenant_activity(&ids).await?;
    let tenants = tenants
        .into_iter()
        .map(|t| {
            let a = activity.remove(&t.id()).unwrap_or(TenantActivity {
                users: 0,
                last_activity: None,
                targets: 0,
                disabled_targets: 0,
                failing_targets: 0,
                super_tenant: None,
            });
            (t, a)
        })
        .collect();
    Ok(TenantOverview {
        total,
        offset,
        limit,
        tenants,
    })
}

/// A page of every tenant (operators): 50 unless asked, at most 500.
pub async fn list_tenants(
    admin: &AdminStore,
    offset: Option<u64>,
    limit: Option<u64>,
) -> Result<TenantPage, ServiceError> {
    let offset = offset.unwrap_or(0);
    if offset > MAX_OFFSET {
        return Err(ServiceError::Invalid(format!(
            "offset must be at most {MAX_OFFSET}"
        )));
    }
    let limit = page_size(limit, 50, 500);
    let (total, tenants) = admin.list_tenants(offset, limit).await?;
    Ok(TenantPage {
        total,
        offset,
        limit,
        tenants,
    })
}

/// The tenant with this slug.
pub async fn find_tenant(admin: &AdminStore, slug: &str) -> Result<Tenant, ServiceError> {
    admin
        .tenant_by_slug(slug)
        .await?
        .ok_or_else(|| ServiceError::NoSuchTenant(slug.to_owned()))
}

/// Creates a tenant and, when asked, its first SCIM token (operators;
/// audited). The token is a second transaction: should it fail, the tenant
/// exists without one and the caller issues one.
pub async fn create_tenant(
    admin: &AdminStore,
    actor: &Actor,
    new: NewTenantRequest,
) -> Result<(Tenant, Option<IssuedToken>), ServiceError> {
    not_blank("name", &new.name)?;
    let tenant = admin
        .create_tenant(
            NewTenant {
                slug: new.slug,
                name: new.name,
                kind: new.kind,
            },
            actor.as_str(),
        )
        .await?;
    let token = if new.issue_token {
        Some(
            admin
                .issue_token(
                    &tenant,
                    NewToken {
                        name: "initial".to_owned(),
                        scopes: vec![Scope::ScimWrite],
                        expires_at: None,
                    },
                    actor.as_str(),
                )
                .await?,
        )
    } else {
        None
    };
    Ok((tenant, token))
}

/// Renames the tenant, or (operators only) suspends or reactivates it.
/// Audited.
pub async fn update_tenant(
    ctx: &TenantContext,
    update: TenantUpdate,
) -> Result<Tenant, ServiceError> {
    if update.status.is_some() && !ctx.actor().is_operator() {
        return Err(ServiceError::Forbidden(
            "only operators may suspend or reactivate a tenant".into(),
        ));
    }
    if let Some(name) = &update.name {
        not_blank("name", name)?;
    }
    Ok(ctx
        .store()
        .update_tenant(update, ctx.actor().as_str())
        .await?)
}

/// Deletes the tenant and everything it owns (operators; audited).
/// `confirm` must repeat the slug: a deletion is never an accident. A
/// super tenant that feeds children also needs `copies`: whether the
/// children keep its copies as their own or lose them; each child is
/// unlinked that way first (and audited), then the tenant is deleted.
pub async fn delete_tenant(
    ctx: &TenantContext,
    admin: &AdminStore,
    confirm: Option<&str>,
    copies: Option<CopiesOnUnlink>,
) -> Result<(), ServiceError> {
    if !ctx.actor().is_operator() {
        return Err(ServiceError::Forbidden(
            "only operators may do this".to_owned(),
        ));
    }
    let slug = ctx.tenant().slug();
    if confirm != Some(slug) {
        return Err(ServiceError::Invalid(format!(
            "deleting a tenant removes its whole directory; repeat its slug as ?confirm={slug}"
        )));
    }
    let children = admin.children(ctx.tenant().id()).await?;
    if !children.is_empty() {
        let Some(copies) = copies else {
            return Err(ServiceError::Invalid(format!(
                "super tenant '{slug}' feeds {} child tenants: say what becomes of the users and groups it copied there, copies=keep (they stay, as each child's own) or copies=remove (they are deleted from the children)",
                children.len()
            )));
        };
        for link in children {
            match admin
                .unlink_child(link.child, copies, ctx.actor().as_str())
                .await
            {
                // Unlinked meanwhile by someone else: nothing left to do.
                Ok(_) | Err(StoreError::NotFound(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(ctx.store().delete_tenant(ctx.actor().as_str()).await?)
}

/// A child tenant, as its super tenant lists it.
#[derive(Debug, Clone)]
pub struct Child {
    /// The child tenant.
    pub tenant: Tenant,
    /// What happens to copies of users no longer routed to it.
    pub on_unroute: OnUnroute,
    /// When it was linked.
    pub linked_at: DateTime<Utc>,
}

fn operators_only(actor: &Actor) -> Result<(), ServiceError> {
    if actor.is_operator() {
        Ok(())
    } else {
        Err(ServiceError::Forbidden(
            "only operators may do this".to_owned(),
        ))
    }
}

/// A refused kind or link change is a conflict with the tenants' state.
fn state_conflict(e: StoreError) -> ServiceError {
    match e {
        StoreError::InvalidValue(m) | StoreError::Uniqueness(m) => ServiceError::Conflict(m),
        other => ServiceError::Store(other),
    }
}

/// Makes a tenant `standard` or `super` (operators; audited). A child
/// cannot become a super tenant; a super tenant with children cannot
/// become standard.
pub async fn set_tenant_kind(
    admin: &AdminStore,
    actor: &Actor,
    slug: &str,
    kind: TenantKind,
) -> Result<Tenant, ServiceError> {
    operators_only(actor)?;
    let tenant = find_tenant(admin, slug).await?;
    admin
        .set_tenant_kind(tenant.id(), kind, actor.as_str())
        .await
        .map_err(state_conflict)
}

/// Makes `child` a child of super tenant `super_slug` (operators;
/// audited). Linking a child to the super tenant it already has changes
/// nothing.
pub async fn link_child(
    admin: &AdminStore,
    actor: &Actor,
    super_slug: &str,
    child_slug: &str,
    on_unroute: OnUnroute,
) -> Result<Child, ServiceError> {
    operators_only(actor)?;
    let parent = find_tenant(admin, super_slug).await?;
    let child = find_tenant(admin, child_slug).await?;
    let link = admin
        .link_child(parent.id(), child.id(), on_unroute, actor.as_str())
        .await
        .map_err(state_conflict)?;
    Ok(Child {
        tenant: child,
        on_unroute: link.on_unroute,
        linked_at: link.created_at,
    })
}

/// Ends the link between super tenant `super_slug` and `child_slug`
/// (operators; audited). `copies` must say what becomes of the users and
/// groups the super tenant copied there: kept as the child's own, or
/// deleted from it. `NotFound` when the super tenant does not feed it.
pub async fn unlink_child(
    admin: &AdminStore,
    actor: &Actor,
    super_slug: &str,
    child_slug: &str,
    copies: Option<CopiesOnUnlink>,
) -> Result<Unlinked, ServiceError> {
    operators_only(actor)?;
    let Some(copies) = copies else {
        return Err(ServiceError::Invalid(format!(
            "say what becomes of the users and groups '{super_slug}' copied into '{child_slug}': copies=keep (they stay, as the child's own) or copies=remove (they are deleted from the child)"
        )));
    };
    let parent = find_tenant(admin, super_slug).await?;
    let child = find_tenant(admin, child_slug).await?;
    match admin.super_of(child.id()).await? {
        Some(link) if link.super_tenant == parent.id() => {}
        _ => {
            return Err(ServiceError::NotFound(format!(
                "child tenant '{child_slug}' of super tenant '{super_slug}'"
            )));
        }
    }
    Ok(admin
        .unlink_child(child.id(), copies, actor.as_str())
        .await?)
}

/// The children super tenant `super_slug` feeds, in the order they were
/// linked.
pub async fn list_children(
    admin: &AdminStore,
    super_slug: &str,
) -> Result<Vec<Child>, ServiceError> {
    let parent = find_tenant(admin, super_slug).await?;
    let mut out = Vec::new();
    for link in admin.children(parent.id()).await? {
        // A child deleted meanwhile has no link any more: skip it.
        if let Some(tenant) = admin.tenant_by_id(link.child).await? {
            out.push(Child {
                tenant,
                on_unroute: link.on_unroute,
                linked_at: link.created_at,
            });
        }
    }
    Ok(out)
}

/// A super tenant's routing rules and their version (operators).
pub async fn routing_policy(
    admin: &AdminStore,
    actor: &Actor,
    super_slug: &str,
) -> Result<RoutingPolicy, ServiceError> {
    operators_only(actor)?;
    let tenant = find_tenant(admin, super_slug).await?;
    Ok(admin.routing_policy(tenant.id()).await?)
}

/// What a routing change did: stored with its re-route job, or (dry run)
/// what it would do.
#[derive(Debug, Clone)]
pub enum RoutingOutcome {
    /// The rules are stored and the re-route job queued.
    Stored(RoutingChange),
    /// Nothing stored: who would enter and leave each child.
    DryRun(RoutingPreview),
}

/// Replaces a super tenant's routing rules (operators; audited) when
/// `expected` is the current version (or absent), queueing the job that
/// re-routes its users and groups; with `dry_run`, stores nothing and
/// reports what the rules would do. Either way the rules are checked the
/// same: a dry run of an invalid change fails as the change would.
pub async fn change_routing(
    admin: &AdminStore,
    actor: &Actor,
    super_slug: &str,
    rules: Vec<RuleSpec>,
    expected: Option<u64>,
    dry_run: bool,
) -> Result<RoutingOutcome, ServiceError> {
    operators_only(actor)?;
    let tenant = find_tenant(admin, super_slug).await?;
    // The tenants' state, not the request, decides these: 409.
    if tenant.kind() != TenantKind::Super {
        return Err(ServiceError::Conflict(format!(
            "tenant '{super_slug}' is not a super tenant: only a super tenant routes to children"
        )));
    }
    let linked: Vec<uuid::Uuid> = admin
        .children(tenant.id())
        .await?
        .into_iter()
        .map(|l| l.child)
        .collect();
    let mut checked = std::collections::BTreeSet::new();
    for rule in &rules {
        if !checked.insert(rule.child.as_str()) {
            continue;
        }
        let fed = match admin.tenant_by_slug(&rule.child).await? {
            Some(child) => linked.contains(&child.id()),
            None => false,
        };
        if !fed {
            return Err(ServiceError::Conflict(format!(
                "rule {:?}: tenant '{}' is not a child of super tenant '{super_slug}' (link it first)",
                rule.id, rule.child
            )));
        }
    }
    let invalid = |e: StoreError| match e {
        StoreError::InvalidValue(m) => ServiceError::Invalid(m),
        StoreError::PreconditionFailed { current } => ServiceError::PreconditionFailed { current },
        other => ServiceError::Store(other),
    };
    if dry_run {
        let current = admin.routing_policy(tenant.id()).await?;
        if let Some(v) = expected
            && v != current.version
        {
            return Err(ServiceError::PreconditionFailed {
                current: current.version,
            });
        }
        let preview = admin
            .preview_routing(&tenant, &rules)
            .await
            .map_err(invalid)?;
        return Ok(RoutingOutcome::DryRun(preview));
    }
    let change = admin
        .set_routing_policy(tenant.id(), rules, expected, actor.as_str())
        .await
        .map_err(invalid)?;
    Ok(RoutingOutcome::Stored(change))
}
