//! The tenant's directory, read-only: users with their groups and roles
//! (effective, disabled, locked, and why), groups with their members.
//!
//! Searches take a SCIM filter parsed and checked by `scim::filter`, the
//! same code the gateway uses, so an admin's search means what the IdP's
//! would.

use std::collections::HashMap;

use roles::Effective;
use scim::filter::{self, CompValue, CompareOp, Filter};
use scim::schemas::names_scimgate_user;
use scim::{AttrPath, ResourceSchema};
use store::{GroupRef, ListQuery, LockInfo, Resource, StoreError};

use super::{ServiceError, TenantContext};

/// Page size when none is asked for, and the largest.
const DEFAULT_COUNT: u64 = 50;
const MAX_COUNT: u64 = 200;

/// A directory search.
#[derive(Debug, Clone, Default)]
pub struct DirectoryQuery {
    /// A SCIM filter; blank means none.
    pub filter: Option<String>,
    /// 1-based index of the first result (1 unless asked).
    pub start_index: Option<u64>,
    /// Page size (50 unless asked, at most 200).
    pub count: Option<u64>,
}

/// A user with what the admin views show about them.
#[derive(Debug, Clone)]
pub struct UserDetails {
    /// The stored user.
    pub user: Resource,
    /// The groups the user directly belongs to.
    pub groups: Vec<GroupRef>,
    /// The stored effective roles, if derived yet.
    pub effective: Option<Effective>,
    /// The user's role-lock, if any.
    pub lock: Option<LockInfo>,
}

/// A page of users by userName.
#[derive(Debug, Clone)]
pub struct UserPage {
    /// Every match.
    pub total: u64,
    /// The index of the first user of this page.
    pub start_index: u64,
    /// This page.
    pub users: Vec<UserDetails>,
}

/// A page of groups by displayName (without members).
#[derive(Debug, Clone)]
pub struct GroupPage {
    /// Every match.
    pub total: u64,
    /// The index of the first group of this page.
    pub start_index: u64,
    /// This page.
    pub groups: Vec<Resource>,
}

/// Refuses filters on the effective-roles extension: lists filter stored
/// documents, which never hold it, so such a filter would silently match
/// nothing (the gateway refuses them for the same reason).
fn refuse_roles_extension(filter: &Filter) -> Result<(), ServiceError> {
    match filter.find_path(names_scimgate_user) {
        Some(path) => Err(ServiceError::Invalid(format!(
            "'{path}' cannot be filtered on: effective roles are computed, not stored"
        ))),
        None => Ok(()),
    }
}

fn list_query(
    query: &DirectoryQuery,
    schema: ResourceSchema<'_>,
    sort_by: &str,
) -> Result<ListQuery, ServiceError> {
    let filter = match query.filter.as_deref().map(str::trim) {
        Some(text) if !text.is_empty() => {
            let parsed = filter::parse(text)?;
            filter::check(&parsed, schema)?;
            refuse_roles_extension(&parsed)?;
            Some(parsed)
        }
        _ => None,
    };
    Ok(ListQuery {
        filter,
        // A stable order, so pages do not overlap or skip.
        sort_by: Some(AttrPath::new(sort_by)),
        descending: false,
        start_index: query.start_index.unwrap_or(1).max(1),
        count: query.count.unwrap_or(DEFAULT_COUNT).min(MAX_COUNT),
        with_members: false,
        user_extras: Default::default(),
    })
}

/// Users with their groups, effective roles and locks, two queries for
/// the whole page.
async fn details(
    ctx: &TenantContext,
    users: Vec<Resource>,
) -> Result<Vec<UserDetails>, ServiceError> {
    let store = ctx.store();
    let ids: Vec<String> = users.iter().map(|u| u.id.clone()).collect();
    let both = store::UserExtras {
        groups: true,
        roles: true,
    };
    let (mut groups, mut effective) = store.user_extras(&ids, both).await?;
    let mut locks: HashMap<String, LockInfo> = store
        .locks()
        .await?
        .into_iter()
        .filter(|l| ids.contains(&l.user_id))
        .map(|l| (l.user_id.clone(), l))
        .collect();
    Ok(users
        .into_iter()
        .map(|user| UserDetails {
            groups: groups.remove(&user.id).unwrap_or_default(),
            effective: effective.remove(&user.id),
            lock: locks.remove(&user.id),
            user,
        })
        .collect())
}

/// Searches the tenant's users.
pub async fn list_users(
    ctx: &TenantContext,
    query: &DirectoryQuery,
) -> Result<UserPage, ServiceError> {
    let list = list_query(query, ResourceSchema::user(), "userName")?;
    let page = ctx.store().list_users(&list).await?;
    Ok(UserPage {
        total: page.total,
        start_index: list.start_index,
        users: details(ctx, page.resources).await?,
    })
}

/// One user with groups and roles.
pub async fn get_user(ctx: &TenantContext, id: &str) -> Result<UserDetails, ServiceError> {
    let user = ctx.store().get_user(id).await?;
    details(ctx, vec![user])
        .await?
        .pop()
        .ok_or_else(|| ServiceError::Internal("a user's details went missing".into()))
}

/// A user by id, else by userName (compared as SCIM compares it:
/// case-insensitively, and userNames are unique that way).
pub async fn find_user(ctx: &TenantContext, given: &str) -> Result<Resource, ServiceError> {
    let store = ctx.store();
    match store.get_user(given).await {
        Ok(user) => return Ok(user),
        Err(StoreError::NotFound(_)) => {}
        Err(e) => return Err(e.into()),
    }
    let query = ListQuery {
        filter: Some(Filter::Compare {
            path: AttrPath::new("userName"),
            op: CompareOp::Eq,
            value: CompValue::String(given.to_owned()),
        }),
        sort_by: None,
        descending: false,
        start_index: 1,
        count: 1,
        with_members: false,
        user_extras: Default::default(),
    };
    store
        .list_users(&query)
        .await?
        .resources
        .into_iter()
        .next()
        .ok_or_else(|| ServiceError::NotFound(format!("user {given:?}")))
}

/// The names of a user's stored effective roles (none when not derived).
pub async fn effective_role_names(
    ctx: &TenantContext,
    user_id: &str,
) -> Result<Vec<String>, ServiceError> {
    let ids = [user_id.to_owned()];
    Ok(ctx
        .store()
        .effective_roles(&ids)
        .await?
        .remove(user_id)
        .map(|e| e.role_names().into_iter().map(str::to_owned).collect())
        .unwrap_or_default())
}

/// Searches the tenant's groups (without members).
pub async fn list_groups(
    ctx: &TenantContext,
    query: &DirectoryQuery,
) -> Result<GroupPage, ServiceError> {
    let list = list_query(query, ResourceSchema::group(), "displayName")?;
    let page = ctx.store().list_groups(&list).await?;
    Ok(GroupPage {
        total: page.total,
        start_index: list.start_index,
        groups: page.resources,
    })
}

/// One group with its members.
pub async fn get_group(ctx: &TenantContext, id: &str) -> Result<Resource, ServiceError> {
    Ok(ctx.store().get_group(id, true).await?)
}
