//! The tenant's directory, read-only: users with their groups and roles
//! (effective, disabled, locked, and why), groups with their members.
//!
//! The searches and their rules are the service's (`service::directory`);
//! this module maps their results to the wire.

use actix_web::{HttpResponse, web};
use roles::Reason;
use serde_json::Value;
use store::Resource;

use crate::auth::{Read, Scoped};
use crate::error::AdminError;
use crate::handlers::{IdPath, MAX_INT64, bounded, lock_view};
use crate::service::{self, UserDetails};
use crate::wire::{
    DirectoryQuery, EffectiveRoleView, GroupList, GroupRefView, GroupView, MemberView, ReasonWire,
    UserList, UserRolesView, UserView,
};

fn text(doc: &Value, key: &str) -> Option<String> {
    doc.get(key).and_then(Value::as_str).map(str::to_owned)
}

fn search(query: &DirectoryQuery) -> Result<service::DirectoryQuery, AdminError> {
    Ok(service::DirectoryQuery {
        filter: query.filter.clone(),
        start_index: bounded("startIndex", query.start_index, 1, MAX_INT64)?,
        count: bounded("count", query.count, 0, 200)?,
    })
}

pub(crate) fn user_view(details: UserDetails) -> UserView {
    let UserDetails {
        user,
        groups,
        effective,
        lock,
    } = details;
    let doc = &user.document;
    let active = doc.get("active").and_then(Value::as_bool).unwrap_or(true);
    let groups: Vec<GroupRefView> = groups
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
        locked: lock.map(lock_view),
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
    let page = service::list_users(&scope.ctx, &search(&query)?).await?;
    Ok(HttpResponse::Ok().json(UserList {
        total: page.total,
        start_index: page.start_index,
        users: page.users.into_iter().map(user_view).collect(),
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
    let details = service::get_user(&scope.ctx, &path.id).await?;
    Ok(HttpResponse::Ok().json(user_view(details)))
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
    let page = service::list_groups(&scope.ctx, &search(&query)?).await?;
    Ok(HttpResponse::Ok().json(GroupList {
        total: page.total,
        start_index: page.start_index,
        groups: page.groups.into_iter().map(group_view).collect(),
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
    let group = service::get_group(&scope.ctx, &path.id).await?;
    Ok(HttpResponse::Ok().json(group_view(group)))
}
