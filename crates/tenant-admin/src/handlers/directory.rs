//! The tenant's directory, read-only: users with their groups and roles
//! (effective, disabled, locked, and why), groups with their members.
//!
//! Searches take a SCIM filter parsed and checked by `scim::filter`, the
//! same code the gateway uses, so an admin's search means what the IdP's
//! would.

use std::collections::HashMap;

use actix_web::{HttpResponse, web};
use roles::Reason;
use scim::filter::{self, Filter};
use scim::schemas::names_scimgate_user;
use scim::{AttrPath, ResourceSchema};
use serde_json::Value;
use store::{ListQuery, Resource, TenantStore};

use crate::auth::{Read, Scoped};
use crate::error::AdminError;
use crate::handlers::{IdPath, lock_view};
use crate::wire::{
    DirectoryQuery, EffectiveRoleView, GroupList, GroupRefView, GroupView, MemberView, ReasonWire,
    UserList, UserRolesView, UserView,
};

/// Page size when none is asked for, and the largest.
const DEFAULT_COUNT: u64 = 50;
const MAX_COUNT: u64 = 200;

/// Refuses filters on the effective-roles extension: lists filter stored
/// documents, which never hold it, so such a filter would silently match
/// nothing (the gateway refuses them for the same reason).
fn refuse_roles_extension(filter: &Filter) -> Result<(), AdminError> {
    match filter.find_path(names_scimgate_user) {
        Some(path) => Err(AdminError::BadRequest(format!(
            "'{path}' cannot be filtered on: effective roles are computed, not stored"
        ))),
        None => Ok(()),
    }
}

fn list_query(
    query: &DirectoryQuery,
    schema: ResourceSchema<'_>,
    sort_by: &str,
) -> Result<ListQuery, AdminError> {
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
    })
}

fn text(doc: &Value, key: &str) -> Option<String> {
    doc.get(key).and_then(Value::as_str).map(str::to_owned)
}

/// Users with their groups, effective roles and locks, three queries for
/// the whole page.
async fn user_views(
    store: &TenantStore,
    users: Vec<Resource>,
) -> Result<Vec<UserView>, AdminError> {
    let ids: Vec<String> = users.iter().map(|u| u.id.clone()).collect();
    let mut groups = store.user_groups(&ids).await?;
    let mut effective = store.effective_roles(&ids).await?;
    let mut locks: HashMap<String, store::LockInfo> = store
        .locks()
        .await?
        .into_iter()
        .filter(|l| ids.contains(&l.user_id))
        .map(|l| (l.user_id.clone(), l))
        .collect();
    Ok(users
        .into_iter()
        .map(|user| {
            let doc = &user.document;
            let active = doc.get("active").and_then(Value::as_bool).unwrap_or(true);
            let effective = effective.remove(&user.id);
            let groups: Vec<GroupRefView> = groups
                .remove(&user.id)
                .unwrap_or_default()
                .into_iter()
                .map(|g| GroupRefView {
                    id: g.id,
                    display: g.display,
                })
                .collect();
            let roles = UserRolesView {
                disabled: effective.as_ref().map_or(!active, |e| e.disabled),
                effective: effective
                    .map(|e| {
                        e.roles
                            .into_iter()
                            .map(|r| {
                                let (reason, group) = match r.reason {
                                    Reason::Mapping {
                                        group_id,
                                        group_display_name,
                                    } => (
                                        ReasonWire::Mapping,
                                        Some(GroupRefView {
                                            id: group_id,
                                            display: group_display_name,
                                        }),
                                    ),
                                    Reason::Default => (ReasonWire::Default, None),
                                    Reason::Locked => (ReasonWire::Locked, None),
                                };
                                EffectiveRoleView {
                                    role: r.role,
                                    reason,
                                    group,
                                }
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
                locked: locks.remove(&user.id).map(lock_view),
            };
            UserView {
                user_name: text(doc, "userName").unwrap_or_default(),
                external_id: text(doc, "externalId"),
                display_name: text(doc, "displayName"),
                name: doc.get("name").filter(|n| n.is_object()).cloned(),
                active,
                groups,
                roles,
                created: user.created,
                last_modified: user.last_modified,
                id: user.id,
            }
        })
        .collect())
}

fn group_view(group: Resource) -> GroupView {
    let doc = &group.document;
    let members = group.members.map(|members| {
        members
            .into_iter()
            .map(|m| MemberView {
                value: m.value,
                kind: m.r#type,
                display: m.display,
            })
            .collect::<Vec<_>>()
    });
    GroupView {
        display_name: text(doc, "displayName").unwrap_or_default(),
        external_id: text(doc, "externalId"),
        member_count: members.as_ref().map(|m| m.len() as u64),
        members,
        created: group.created,
        last_modified: group.last_modified,
        id: group.id,
    }
}

/// Searches the tenant's users.
#[utoipa::path(
    get,
    path = "/tenants/{tenant}/users",
    tag = "directory",
    operation_id = "listUsers",
    params(("tenant" = String, Path, description = "The tenant's slug"), DirectoryQuery),
    responses((status = 200, description = "A page of users, by userName", body = UserList)),
)]
pub(crate) async fn list_users(
    scope: Scoped<Read>,
    query: web::Query<DirectoryQuery>,
) -> Result<HttpResponse, AdminError> {
    let list = list_query(&query, ResourceSchema::user(), "userName")?;
    let page = scope.store.list_users(&list).await?;
    let users = user_views(&scope.store, page.resources).await?;
    Ok(HttpResponse::Ok().json(UserList {
        total: page.total,
        start_index: list.start_index,
        users,
    }))
}

/// One user, with groups and roles.
#[utoipa::path(
    get,
    path = "/tenants/{tenant}/users/{id}",
    tag = "directory",
    operation_id = "getUser",
    params(
        ("tenant" = String, Path, description = "The tenant's slug"),
        ("id" = String, Path, description = "The user's SCIM id"),
    ),
    responses((status = 200, description = "The user", body = UserView)),
)]
pub(crate) async fn get_user(
    scope: Scoped<Read>,
    path: web::Path<IdPath>,
) -> Result<HttpResponse, AdminError> {
    let user = scope.store.get_user(&path.id).await?;
    let mut views = user_views(&scope.store, vec![user]).await?;
    let view = views
        .pop()
        .ok_or_else(|| AdminError::Internal("a user view went missing".into()))?;
    Ok(HttpResponse::Ok().json(view))
}

/// Searches the tenant's groups (without members).
#[utoipa::path(
    get,
    path = "/tenants/{tenant}/groups",
    tag = "directory",
    operation_id = "listGroups",
    params(("tenant" = String, Path, description = "The tenant's slug"), DirectoryQuery),
    responses((status = 200, description = "A page of groups, by displayName", body = GroupList)),
)]
pub(crate) async fn list_groups(
    scope: Scoped<Read>,
    query: web::Query<DirectoryQuery>,
) -> Result<HttpResponse, AdminError> {
    let list = list_query(&query, ResourceSchema::group(), "displayName")?;
    let page = scope.store.list_groups(&list).await?;
    Ok(HttpResponse::Ok().json(GroupList {
        total: page.total,
        start_index: list.start_index,
        groups: page.resources.into_iter().map(group_view).collect(),
    }))
}

/// One group, with its members.
#[utoipa::path(
    get,
    path = "/tenants/{tenant}/groups/{id}",
    tag = "directory",
    operation_id = "getGroup",
    params(
        ("tenant" = String, Path, description = "The tenant's slug"),
        ("id" = String, Path, description = "The group's SCIM id"),
    ),
    responses((status = 200, description = "The group and its members", body = GroupView)),
)]
pub(crate) async fn get_group(
    scope: Scoped<Read>,
    path: web::Path<IdPath>,
) -> Result<HttpResponse, AdminError> {
    let group = scope.store.get_group(&path.id, true).await?;
    Ok(HttpResponse::Ok().json(group_view(group)))
}
