//! Deletion safety: policy, held changes, protected users, soft-deleted
//! users and erasure (docs/deletion-safety.md).

use actix_web::{HttpRequest, HttpResponse, web};
use store::safety::{DeletedUser, DeletionPolicy, HeldChange, ProtectedUser, SafetyState};

use crate::auth::{OperatorOnly, Read, Scoped, Write};
use crate::error::{AdminError, ErrorBody};
use crate::handlers::directory::user_view;
use crate::handlers::roles::etag;
use crate::handlers::{IdPath, JsonBody, bounded, expected_version};
use crate::service::{self, safety};
use crate::wire::{
    DeletedUserList, DeletedUserView, DeletionPolicyInput, DeletionSafetyView, EraseQuery,
    ErasureView, HeldChangeList, HeldChangeView, HeldSelectionInput, HeldSettled, IfMatchHeader,
    ProtectionInput, ProtectionList, ProtectionView, SafetyListQuery, UserView,
};

fn state_view(s: SafetyState) -> DeletionSafetyView {
    DeletionSafetyView {
        max_deletions: s.policy.max_deletions,
        max_percent: s.policy.max_percent,
        window_minutes: s.policy.window_minutes,
        grace_days: s.policy.grace_days,
        version: s.version,
        tripped: s.tripped,
        window_started_at: s.window_started_at,
        window_count: s.window_count,
        held: s.held,
    }
}

fn held_view(h: HeldChange) -> HeldChangeView {
    HeldChangeView {
        id: h.id,
        user_id: h.user_id,
        user_name: h.user_name,
        reason: h.reason.as_str().to_owned(),
        event_type: h.event_type.as_str().to_owned(),
        held_at: h.held_at,
    }
}

fn protection_view(p: ProtectedUser) -> ProtectionView {
    ProtectionView {
        user_id: p.user_id,
        reason: p.reason,
        protected_by: p.actor,
        since: p.since,
    }
}

fn deleted_view(d: DeletedUser) -> DeletedUserView {
    DeletedUserView {
        id: d.id,
        user_name: d.user_name,
        deleted_at: d.deleted_at,
        purge_after: d.purge_after,
    }
}

fn limit(query: &SafetyListQuery) -> Result<u64, AdminError> {
    Ok(bounded("limit", query.limit, 1, 1000)?.unwrap_or(safety::DEFAULT_LIST))
}

/// The tenant's deletion safety: its policy (the defaults until one is
/// set), whether the threshold has tripped, and how much is held.
#[utoipa::path(
    get,
    path = "/tenants/{tenant}/deletion-safety",
    tag = "safety",
    operation_id = "getDeletionSafety",
    params(("tenant" = String, Path, description = "The tenant's slug")),
    responses((status = 200, description = "The policy and its state (the version is also the ETag)", body = DeletionSafetyView)),
)]
pub(crate) async fn get_policy(scope: Scoped<Read>) -> Result<HttpResponse, AdminError> {
    let s = safety::state(&scope.ctx).await?;
    Ok(HttpResponse::Ok()
        .insert_header(etag(s.version))
        .json(state_view(s)))
}

/// Replaces the tenant's deletion policy, conditional on `If-Match`;
/// audited. A field left out takes its default; `null` turns a limit off.
#[utoipa::path(
    put,
    path = "/tenants/{tenant}/deletion-safety",
    tag = "safety",
    operation_id = "putDeletionSafety",
    params(("tenant" = String, Path, description = "The tenant's slug"), IfMatchHeader),
    request_body = DeletionPolicyInput,
    responses(
        (status = 200, description = "The stored policy and its state", body = DeletionSafetyView),
        (status = 400, description = "A bound exceeded (the message names the field)", body = ErrorBody),
        (status = 403, description = "The tenant is suspended (tenant admins)", body = ErrorBody),
        (status = 412, description = "If-Match is not the current version", body = ErrorBody),
    ),
)]
pub(crate) async fn put_policy(
    scope: Scoped<Write>,
    req: HttpRequest,
    body: JsonBody<DeletionPolicyInput>,
) -> Result<HttpResponse, AdminError> {
    let body = body.into_inner();
    let expected = expected_version(&req, body.version)?;
    let defaults = DeletionPolicy::default();
    let policy = DeletionPolicy {
        max_deletions: body.max_deletions.unwrap_or(defaults.max_deletions),
        max_percent: body.max_percent.unwrap_or(defaults.max_percent),
        window_minutes: body.window_minutes.unwrap_or(defaults.window_minutes),
        grace_days: body.grace_days.unwrap_or(defaults.grace_days),
    };
    let s = safety::set_policy(&scope.ctx, policy, expected).await?;
    Ok(HttpResponse::Ok()
        .insert_header(etag(s.version))
        .json(state_view(s)))
}

/// Deletions and deactivations held for a tenant admin (the threshold
/// tripped, or the user is protected), oldest first.
#[utoipa::path(
    get,
    path = "/tenants/{tenant}/held-changes",
    tag = "safety",
    operation_id = "listHeldChanges",
    params(("tenant" = String, Path, description = "The tenant's slug"), SafetyListQuery),
    responses((status = 200, description = "The held changes", body = HeldChangeList)),
)]
pub(crate) async fn list_held(
    scope: Scoped<Read>,
    query: web::Query<SafetyListQuery>,
) -> Result<HttpResponse, AdminError> {
    let held = safety::held(&scope.ctx, limit(&query)?).await?;
    Ok(HttpResponse::Ok().json(HeldChangeList {
        changes: held.into_iter().map(held_view).collect(),
    }))
}

/// Releases held changes (all, or those named by id or user): the
/// applications hear of them now, in the order they were held. Clears a
/// tripped threshold once none of its holds is left. Audited.
#[utoipa::path(
    post,
    path = "/tenants/{tenant}/held-changes/release",
    tag = "safety",
    operation_id = "releaseHeldChanges",
    params(("tenant" = String, Path, description = "The tenant's slug")),
    request_body = HeldSelectionInput,
    responses(
        (status = 200, description = "How many were released", body = HeldSettled),
        (status = 400, description = "Both ids and users, or an empty list", body = ErrorBody),
        (status = 409, description = "An id that names no held change (settled already)", body = ErrorBody),
    ),
)]
pub(crate) async fn release_held(
    scope: Scoped<Write>,
    body: JsonBody<HeldSelectionInput>,
) -> Result<HttpResponse, AdminError> {
    let body = body.into_inner();
    let which = safety::selection(body.ids, body.users)?;
    let count = safety::release(&scope.ctx, which).await?;
    Ok(HttpResponse::Ok().json(HeldSettled { count }))
}

/// Discards held changes (all, or those named): the applications never
/// hear of them and keep the users as they were. Audited.
#[utoipa::path(
    post,
    path = "/tenants/{tenant}/held-changes/discard",
    tag = "safety",
    operation_id = "discardHeldChanges",
    params(("tenant" = String, Path, description = "The tenant's slug")),
    request_body = HeldSelectionInput,
    responses(
        (status = 200, description = "How many were discarded", body = HeldSettled),
        (status = 400, description = "Both ids and users, or an empty list", body = ErrorBody),
        (status = 409, description = "An id that names no held change (settled already)", body = ErrorBody),
    ),
)]
pub(crate) async fn discard_held(
    scope: Scoped<Write>,
    body: JsonBody<HeldSelectionInput>,
) -> Result<HttpResponse, AdminError> {
    let body = body.into_inner();
    let which = safety::selection(body.ids, body.users)?;
    let count = safety::discard(&scope.ctx, which).await?;
    Ok(HttpResponse::Ok().json(HeldSettled { count }))
}

/// The protected users: their deletion or deactivation by the IdP waits
/// for a tenant admin's confirmation.
#[utoipa::path(
    get,
    path = "/tenants/{tenant}/protected-users",
    tag = "safety",
    operation_id = "listProtectedUsers",
    params(("tenant" = String, Path, description = "The tenant's slug")),
    responses((status = 200, description = "The protected users", body = ProtectionList)),
)]
pub(crate) async fn list_protected(scope: Scoped<Read>) -> Result<HttpResponse, AdminError> {
    let users = safety::protected(&scope.ctx).await?;
    Ok(HttpResponse::Ok().json(ProtectionList {
        users: users.into_iter().map(protection_view).collect(),
    }))
}

/// Protects a user (e.g. a break-glass admin), with a reason. Audited.
#[utoipa::path(
    put,
    path = "/tenants/{tenant}/users/{id}/protection",
    tag = "safety",
    operation_id = "protectUser",
    params(
        ("tenant" = String, Path, description = "The tenant's slug"),
        ("id" = String, Path, description = "The user's SCIM id"),
    ),
    request_body = ProtectionInput,
    responses(
        (status = 200, description = "The protection", body = ProtectionView),
        (status = 400, description = "A blank reason", body = ErrorBody),
        (status = 404, description = "No such user", body = ErrorBody),
    ),
)]
pub(crate) async fn protect_user(
    scope: Scoped<Write>,
    path: web::Path<IdPath>,
    body: JsonBody<ProtectionInput>,
) -> Result<HttpResponse, AdminError> {
    let p = safety::protect(&scope.ctx, &path.id, &body.reason).await?;
    Ok(HttpResponse::Ok().json(protection_view(p)))
}

/// Removes a user's protection. Audited.
#[utoipa::path(
    delete,
    path = "/tenants/{tenant}/users/{id}/protection",
    tag = "safety",
    operation_id = "unprotectUser",
    params(
        ("tenant" = String, Path, description = "The tenant's slug"),
        ("id" = String, Path, description = "The user's SCIM id"),
    ),
    responses(
        (status = 204, description = "No longer protected"),
        (status = 404, description = "The user is not protected", body = ErrorBody),
    ),
)]
pub(crate) async fn unprotect_user(
    scope: Scoped<Write>,
    path: web::Path<IdPath>,
) -> Result<HttpResponse, AdminError> {
    safety::unprotect(&scope.ctx, &path.id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Soft-deleted users, restorable until their purge time, most recently
/// deleted first.
#[utoipa::path(
    get,
    path = "/tenants/{tenant}/deleted-users",
    tag = "safety",
    operation_id = "listDeletedUsers",
    params(("tenant" = String, Path, description = "The tenant's slug"), SafetyListQuery),
    responses((status = 200, description = "The soft-deleted users", body = DeletedUserList)),
)]
pub(crate) async fn list_deleted(
    scope: Scoped<Read>,
    query: web::Query<SafetyListQuery>,
) -> Result<HttpResponse, AdminError> {
    let users = safety::deleted(&scope.ctx, limit(&query)?).await?;
    Ok(HttpResponse::Ok().json(DeletedUserList {
        users: users.into_iter().map(deleted_view).collect(),
    }))
}

/// Restores a soft-deleted user with the same id, back in the groups it
/// was in that still exist; the applications hear `user.restored`
/// (outbound SCIM reactivates the user it kept). Audited.
#[utoipa::path(
    post,
    path = "/tenants/{tenant}/deleted-users/{id}/restore",
    tag = "safety",
    operation_id = "restoreUser",
    params(
        ("tenant" = String, Path, description = "The tenant's slug"),
        ("id" = String, Path, description = "The deleted user's id"),
    ),
    responses(
        (status = 200, description = "The restored user", body = UserView),
        (status = 404, description = "Not a soft-deleted user (never deleted, or purged)", body = ErrorBody),
        (status = 409, description = "Another user has its userName now", body = ErrorBody),
    ),
)]
pub(crate) async fn restore_user(
    scope: Scoped<Write>,
    path: web::Path<IdPath>,
) -> Result<HttpResponse, AdminError> {
    let user = safety::restore(&scope.ctx, &path.id).await?;
    let details = service::get_user(&scope.ctx, &user.id).await?;
    Ok(HttpResponse::Ok().json(user_view(details)))
}

/// Erases a user's personal data everywhere scimgate keeps it (operators
/// only; `confirm` repeats the id). The audit log records the erasure,
/// not the data; the applications hear `user.purged`.
#[utoipa::path(
    post,
    path = "/tenants/{tenant}/users/{id}/erase",
    tag = "safety",
    operation_id = "eraseUser",
    params(
        ("tenant" = String, Path, description = "The tenant's slug"),
        ("id" = String, Path, description = "The user's id (live or soft-deleted)"),
        EraseQuery,
    ),
    responses(
        (status = 200, description = "Rows removed or blanked, by table", body = ErasureView),
        (status = 400, description = "confirm does not repeat the id", body = ErrorBody),
        (status = 403, description = "Not an operator", body = ErrorBody),
        (status = 404, description = "No such user", body = ErrorBody),
    ),
)]
pub(crate) async fn erase_user(
    scope: Scoped<OperatorOnly>,
    path: web::Path<IdPath>,
    query: web::Query<EraseQuery>,
) -> Result<HttpResponse, AdminError> {
    let rows = safety::erase(&scope.ctx, &path.id, query.confirm.as_deref()).await?;
    Ok(HttpResponse::Ok().json(ErasureView {
        id: path.id.clone(),
        rows,
    }))
}
