//! Tenants: list and create them (operators), read, rename, suspend,
//! reactivate and delete one.

use store::{
    AdminStore, IssuedToken, NewTenant, NewToken, Scope, Tenant, TenantKind, TenantUpdate,
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
/// `confirm` must repeat the slug: a deletion is never an accident.
pub async fn delete_tenant(ctx: &TenantContext, confirm: Option<&str>) -> Result<(), ServiceError> {
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
    Ok(ctx.store().delete_tenant(ctx.actor().as_str()).await?)
}
