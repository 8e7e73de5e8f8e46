//! Users, groups and memberships of one tenant.
//!
//! Every write runs in one transaction that first locks the resource's row
//! (`FOR UPDATE` on PostgreSQL; SQLite writers are serialized), then
//! checks `If-Match`, writes the row with `WHERE version = <read version>`
//! (a conflict, which the lock makes practically impossible, retries the
//! whole transaction), rewrites derived rows and appends outbox events.
//! Member changes are row inserts and deletes under the group's row lock,
//! so concurrent member PATCHes on one group serialize and all land.

use std::collections::{BTreeSet, HashMap, HashSet};

use scim::AttrPath;
use scim::patch::{Member, MemberChange};
use scim::schemas::ResourceSchema;
use sea_orm::sea_query::{Expr, ExprTrait, LockType, OnConflict, Query, SelectStatement};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::columns::{GroupColumns, UserColumns, changed_attributes, group_columns, user_columns};
use crate::copies::{self, Touched};
use crate::db::{TxError, db, dbx, now, unique_or};
use crate::entity::{groups, memberships, user_emails, users};
use crate::events::{self, Event, PreparedEvent, ResourceKind};
use crate::roles as role_store;
use crate::safety;
use crate::{GroupRef, Resource, Result, StoreError, TenantStore};

/// Ids per `IN (...)` list and rows per multi-row insert: well inside
/// SQLite's bound-parameter limit, large enough that a 100k-member change
/// is a few hundred statements.
pub(crate) const CHUNK: usize = 500;

// ---------------------------------------------------------------------------
// Rows to resources

pub(crate) fn parse_document(text: &str, what: &str) -> Result<Value> {
    serde_json::from_str(text)
        .map_err(|e| StoreError::Internal(format!("{what} has a corrupt document: {e}")))
}

pub(crate) fn version(v: i64, what: &str) -> Result<u64> {
    u64::try_from(v).map_err(|_| StoreError::Internal(format!("{what} has version {v}")))
}

pub(crate) fn user_resource(row: &users::Model) -> Result<Resource> {
    let what = format!("user {}", row.id);
    Ok(Resource {
        id: row.id.clone(),
        document: parse_document(&row.document, &what)?,
        version: version(row.version, &what)?,
        created: row.created_at,
        last_modified: row.updated_at,
        members: None,
        routed: Vec::new(),
    })
}

pub(crate) fn group_resource(
    row: &groups::Model,
    members: Option<Vec<Member>>,
) -> Result<Resource> {
    let what = format!("group {}", row.id);
    Ok(Resource {
        id: row.id.clone(),
        document: parse_document(&row.document, &what)?,
        version: version(row.version, &what)?,
        created: row.created_at,
        last_modified: row.updated_at,
        members,
        routed: Vec::new(),
    })
}

fn not_found(kind: &str, id: &str) -> StoreError {
    StoreError::NotFound(format!("{kind} {id}"))
}

fn check_if_match(if_match: Option<u64>, current: u64) -> Result<(), TxError> {
    match if_match {
        Some(expected) if expected != current => {
            Err(StoreError::PreconditionFailed { current }.into())
        }
        _ => Ok(()),
    }
}

fn user_name_taken(name: &str) -> String {
    format!("userName '{name}' is already taken")
}

fn group_name_taken(name: &str) -> String {
    format!("displayName '{name}' is already taken")
}

impl TenantStore {
    fn tenant_key(&self) -> String {
        self.tenant.id.to_string()
    }
}

// ---------------------------------------------------------------------------
// Users

pub(crate) async fn find_user(
    store: &TenantStore,
    conn: &impl ConnectionTrait,
    id: &str,
    lock: bool,
) -> Result<Option<users::Model>, sea_orm::DbErr> {
    let q = users::Entity::find()
        .filter(users::Column::TenantId.eq(store.tenant_key()))
        .filter(users::Column::Id.eq(id));
    // By primary key, so at most one row; `one()` would add a bound
    // `LIMIT`, which makes SQLite re-prepare the statement on every call.
    let rows = if lock {
        role_store::locked_read(store, conn, q.lock_exclusive()).await?
    } else {
        q.all(conn).await?
    };
    Ok(rows.into_iter().next())
}

fn user_active_model(
    tenant: &str,
    id: &str,
    cols: &UserColumns,
    document: &str,
    version: i64,
    created: chrono::DateTime<chrono::Utc>,
    updated: chrono::DateTime<chrono::Utc>,
) -> users::ActiveModel {
    users::ActiveModel {
        tenant_id: Set(tenant.to_owned()),
        id: Set(id.to_owned()),
        user_name: Set(cols.user_name.clone()),
        user_name_norm: Set(cols.user_name_norm.clone()),
        external_id: Set(cols.external_id.clone()),
        display_name: Set(cols.display_name.clone()),
        display_name_norm: Set(cols.display_name_norm.clone()),
        active: Set(cols.active),
        document: Set(document.to_owned()),
        version: Set(version),
        created_at: Set(created),
        updated_at: Set(updated),
    }
}

async fn write_emails(
    txn: &DatabaseTransaction,
    tenant: &str,
    user_id: &str,
    emails: &[Option<String>],
    replace: bool,
) -> Result<(), TxError> {
    if replace {
        user_emails::Entity::delete_many()
            .filter(user_emails::Column::TenantId.eq(tenant))
            .filter(user_emails::Column::UserId.eq(user_id))
            .exec(txn)
            .await
            .map_err(dbx)?;
    }
    let rows: Vec<user_emails::ActiveModel> = emails
        .iter()
        .enumerate()
        .map(|(i, v)| user_emails::ActiveModel {
            tenant_id: Set(tenant.to_owned()),
            user_id: Set(user_id.to_owned()),
            position: Set(i32::try_from(i).unwrap_or(i32::MAX)),
            value_norm: Set(v.clone()),
        })
        .collect();
    for chunk in rows.chunks(CHUNK) {
        user_emails::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(txn)
            .await
            .map_err(dbx)?;
    }
    Ok(())
}

/// A new user's or group's id: a time-ordered UUID (v7). The id leads the
/// keys of the users and groups tables and of every table keyed by a
/// user or group (emails, memberships, roles, copies), so new rows land
/// beside the last ones instead of on a random page of each index: a
/// commit of many creates writes a few pages per index, not one per row.
pub(crate) fn new_resource_id() -> String {
    Uuid::now_v7().to_string()
}

pub(crate) async fn create_user(store: &TenantStore, document: Value) -> Result<Resource> {
    let new = NewUser::prepare(new_resource_id(), document)?;
    let at = now();
    write_txn!(store.inner, [store], [new], txn => {
        let mut user = create_user_in(store, txn, new, at).await?;
        let touched = Touched::User { id: &user.id, document: Some(&user.document), new: true };
        user.routed = copies::follow(store, txn, touched).await?;
        Ok(user)
    })
}

/// A user about to be inserted, with what can be worked out before the
/// transaction (on SQLite the transaction runs on the one writer thread,
/// so work done here is work that thread does not do).
#[derive(Debug, Clone)]
pub(crate) struct NewUser {
    id: String,
    document: Value,
    cols: UserColumns,
    text: String,
    event: PreparedEvent,
}

impl NewUser {
    /// The new user's id.
    pub(crate) fn id(&self) -> &str {
        &self.id
    }

    /// Validates `document`'s indexed columns for user `id`.
    pub(crate) fn prepare(id: String, document: Value) -> Result<NewUser> {
        let cols = user_columns(&document)?;
        let text = document.to_string();
        let event = Event::created(ResourceKind::User, &id, 1, &document).into();
        Ok(NewUser {
            id,
            document,
            cols,
            text,
            event,
        })
    }

    /// A soft-deleted user coming back with its id: the same as a new
    /// one, announced as `user.restored`.
    pub(crate) fn restored(id: String, document: Value) -> Result<NewUser> {
        let mut event = Event::created(ResourceKind::User, &id, 1, &document);
        event.event_type = events::EventType::UserRestored;
        Ok(NewUser {
            event: event.into(),
            ..NewUser::prepare(id, document)?
        })
    }
}

/// The body of [`create_user`]: inserts the user in `txn`, with its
/// derived roles and events. Another transaction (a super tenant's
/// copies) can run it too.
pub(crate) async fn create_user_in(
    store: &TenantStore,
    txn: &DatabaseTransaction,
    new: &NewUser,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<Resource, TxError> {
    if !create_user_body(store, txn, new, at, false).await? {
        return Err(StoreError::Internal("a user insert wrote no row".into()).into());
    }
    Ok(Resource {
        id: new.id.clone(),
        document: new.document.clone(),
        version: 1,
        created: at,
        last_modified: at,
        members: None,
        routed: Vec::new(),
    })
}

/// [`create_user_in`], except that a userName already taken in the tenant
/// writes nothing and answers `false` (one statement, where a look-up
/// first would be two; a failed insert would abort a PostgreSQL
/// transaction). The new user is `new.id()`; no resource is built, which
/// a copy does not need.
pub(crate) async fn create_user_unless_taken(
    store: &TenantStore,
    txn: &DatabaseTransaction,
    new: &NewUser,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<bool, TxError> {
    create_user_body(store, txn, new, at, true).await
}

async fn create_user_body(
    store: &TenantStore,
    txn: &DatabaseTransaction,
    new: &NewUser,
    at: chrono::DateTime<chrono::Utc>,
    unless_taken: bool,
) -> Result<bool, TxError> {
    let tenant = store.tenant_key();
    let (id, cols) = (&new.id, &new.cols);
    let insert = users::Entity::insert(user_active_model(&tenant, id, cols, &new.text, 1, at, at));
    if unless_taken {
        let written = insert
            .on_conflict(
                sea_orm::sea_query::OnConflict::columns([
                    users::Column::TenantId,
                    users::Column::UserNameNorm,
                ])
                .do_nothing()
                .to_owned(),
            )
            .exec_without_returning(txn)
            .await
            .map_err(|e| unique_or(e, || user_name_taken(&cols.user_name)))?;
        if written == 0 {
            return Ok(false);
        }
    } else {
        insert
            .exec_without_returning(txn)
            .await
            .map_err(|e| unique_or(e, || user_name_taken(&cols.user_name)))?;
    }
    write_emails(txn, &tenant, id, &cols.emails, false).await?;
    events::write_prepared(store, txn, vec![new.event.clone()]).await?;
    let roles = role_store::derive_new_user(store, txn, id, cols.active).await?;
    events::write(store, txn, roles.into_iter().collect()).await?;
    Ok(true)
}

pub(crate) async fn get_user(store: &TenantStore, id: &str) -> Result<Resource> {
    let row = find_user(store, &store.inner.conn, id, false)
        .await
        .map_err(db)?
        .ok_or_else(|| not_found("User", id))?;
    user_resource(&row)
}

/// Writes a user's new document over `row` (read under lock); a document
/// equal to the stored one changes nothing.
pub(crate) async fn update_user(
    store: &TenantStore,
    txn: &DatabaseTransaction,
    row: &users::Model,
    document: Value,
) -> Result<Resource, TxError> {
    let update = UserUpdate::prepare(row, document)?;
    apply_user_update(store, txn, row, update).await
}

/// A user's update as far as it can be decided without the database:
/// the parsed documents, the new columns and the event. A batch (the
/// re-route job) prepares these for many users off the writer's thread.
pub(crate) enum UserUpdate {
    /// The new document equals the stored one: nothing to write.
    Unchanged(Resource),
    /// What to write. (The stored document, parsed to compare, is dropped
    /// where it was prepared, which is not always the writer's thread.)
    Changed(UserChange),
}

/// What a [`UserUpdate`] writes when the document changed.
pub(crate) struct UserChange {
    document: Value,
    cols: UserColumns,
    text: String,
    emails_changed: bool,
    event: PreparedEvent,
}

impl UserUpdate {
    /// Prepares writing `document` over `row`.
    pub(crate) fn prepare(row: &users::Model, document: Value) -> Result<UserUpdate, TxError> {
        let current = user_resource(row)?;
        if current.document == document {
            return Ok(UserUpdate::Unchanged(current));
        }
        let cols = user_columns(&document)?;
        // Most updates (active, displayName, name) leave the emails alone:
        // then their index rows stay as they are.
        let old_emails = user_columns(&current.document).map(|c| c.emails).ok();
        let emails_changed = old_emails.as_ref() != Some(&cols.emails);
        let version = version(row.version + 1, "user")?;
        let changed = changed_attributes(&current.document, &document);
        let event = Event::updated(
            ResourceKind::User,
            &row.id,
            version,
            &changed,
            &current.document,
            &document,
        );
        let text = document.to_string();
        Ok(UserUpdate::Changed(UserChange {
            document,
            cols,
            text,
            emails_changed,
            event: event.into(),
        }))
    }
}

/// Writes a prepared update over `row` (read under lock).
pub(crate) async fn apply_user_update(
    store: &TenantStore,
    txn: &DatabaseTransaction,
    row: &users::Model,
    update: UserUpdate,
) -> Result<Resource, TxError> {
    let UserChange {
        document,
        cols,
        text,
        emails_changed,
        event,
    } = match update {
        UserUpdate::Unchanged(current) => return Ok(current),
        UserUpdate::Changed(change) => change,
    };
    let tenant = store.tenant_key();
    let new_version = row.version + 1;
    let at = now();
    // Only the columns whose value changes: SQLite rewrites the index entry
    // of every indexed column a `SET` names, changed or not, and each
    // rewritten entry is another page in the commit.
    let mut update = users::Entity::update_many()
        .col_expr(users::Column::Document, Expr::value(text))
        .col_expr(users::Column::Version, Expr::value(new_version))
        .col_expr(users::Column::UpdatedAt, Expr::value(at));
    if cols.user_name != row.user_name {
        update = update.col_expr(users::Column::UserName, Expr::value(cols.user_name.clone()));
    }
    if cols.user_name_norm != row.user_name_norm {
        update = update.col_expr(
            users::Column::UserNameNorm,
            Expr::value(cols.user_name_norm.clone()),
        );
    }
    if cols.external_id != row.external_id {
        update = update.col_expr(
            users::Column::ExternalId,
            Expr::value(cols.external_id.clone()),
        );
    }
    if cols.display_name != row.display_name {
        update = update.col_expr(
            users::Column::DisplayName,
            Expr::value(cols.display_name.clone()),
        );
    }
    if cols.display_name_norm != row.display_name_norm {
        update = update.col_expr(
            users::Column::DisplayNameNorm,
            Expr::value(cols.display_name_norm.clone()),
        );
    }
    if cols.active != row.active {
        update = update.col_expr(users::Column::Active, Expr::value(cols.active));
    }
    let updated = update
        .filter(users::Column::TenantId.eq(tenant.clone()))
        .filter(users::Column::Id.eq(row.id.clone()))
        .filter(users::Column::Version.eq(row.version))
        .exec(txn)
        .await
        .map_err(|e| unique_or(e, || user_name_taken(&cols.user_name)))?;
    if updated.rows_affected == 0 {
        return Err(TxError::Retry);
    }
    if emails_changed {
        write_emails(txn, &tenant, &row.id, &cols.emails, true).await?;
    }
    let version = version(new_version, "user")?;
    let mut events = Vec::new();
    // Only `active` and group membership feed role derivation (users
    // written before the tenant had roles get theirs from the recompute
    // job that defining roles starts).
    let active_changed = row.active.unwrap_or(true) != cols.active.unwrap_or(true);
    if active_changed {
        events.extend(role_store::recompute(store, txn, std::slice::from_ref(&row.id)).await?);
    }
    let deactivated = active_changed && !cols.active.unwrap_or(true);
    let hold = if deactivated {
        safety::screen(store, txn, &row.id).await?.hold
    } else {
        None
    };
    match hold {
        // A held deactivation holds the role change it caused too.
        Some(reason) => {
            let mut held = vec![event];
            held.extend(events.into_iter().map(PreparedEvent::from));
            safety::hold(store, txn, &row.id, reason, held).await?;
        }
        None => {
            events::write_prepared(store, txn, vec![event]).await?;
            events::write(store, txn, events).await?;
        }
    }
    Ok(Resource {
        id: row.id.clone(),
        document,
        version,
        created: row.created_at,
        last_modified: at,
        members: None,
        routed: Vec::new(),
    })
}

pub(crate) async fn replace_user(
    store: &TenantStore,
    id: &str,
    document: Value,
    if_match: Option<u64>,
) -> Result<Resource> {
    // Refuse a bad document before taking any lock.
    user_columns(&document)?;
    write_txn!(store.inner, [store, id], [document], txn => {
        let mut user = replace_user_in(store, txn, id, document.clone(), if_match).await?;
        let touched = Touched::User { id: &user.id, document: Some(&user.document), new: false };
        user.routed = copies::follow(store, txn, touched).await?;
        Ok(user)
    })
}

/// The body of [`replace_user`].
pub(crate) async fn replace_user_in(
    store: &TenantStore,
    txn: &DatabaseTransaction,
    id: &str,
    document: Value,
    if_match: Option<u64>,
) -> Result<Resource, TxError> {
    let row = find_user(store, txn, id, true)
        .await
        .map_err(dbx)?
        .ok_or_else(|| not_found("User", id))?;
    check_if_match(if_match, version(row.version, "user")?)?;
    update_user(store, txn, &row, document).await
}

pub(crate) async fn modify_user<F>(
    store: &TenantStore,
    id: &str,
    if_match: Option<u64>,
    modify: F,
) -> Result<Resource>
where
    F: Fn(&Resource) -> Result<Value, scim::Error> + Send + Sync + 'static,
{
    write_txn!(store.inner, [store, id], [modify], txn => {
        let mut user = modify_user_in(store, txn, id, if_match, modify).await?;
        let touched = Touched::User { id: &user.id, document: Some(&user.document), new: false };
        user.routed = copies::follow(store, txn, touched).await?;
        Ok(user)
    })
}

/// The body of [`modify_user`].
pub(crate) async fn modify_user_in<F>(
    store: &TenantStore,
    txn: &DatabaseTransaction,
    id: &str,
    if_match: Option<u64>,
    modify: &F,
) -> Result<Resource, TxError>
where
    F: Fn(&Resource) -> Result<Value, scim::Error> + Send + Sync,
{
    let row = find_user(store, txn, id, true)
        .await
        .map_err(dbx)?
        .ok_or_else(|| not_found("User", id))?;
    let current = user_resource(&row)?;
    check_if_match(if_match, current.version)?;
    let document = modify(&current)?;
    update_user(store, txn, &row, document).await
}

pub(crate) async fn delete_user(
    store: &TenantStore,
    id: &str,
    if_match: Option<u64>,
) -> Result<Vec<copies::Routed>> {
    write_txn!(store.inner, [store, id], [], txn => {
        delete_user_in(store, txn, id, if_match).await?;
        copies::follow(store, txn, Touched::User { id, document: None, new: false }).await
    })
}

/// The body of [`delete_user`].
pub(crate) async fn delete_user_in(
    store: &TenantStore,
    txn: &DatabaseTransaction,
    id: &str,
    if_match: Option<u64>,
) -> Result<(), TxError> {
    let row = find_user(store, txn, id, true)
        .await
        .map_err(dbx)?
        .ok_or_else(|| not_found("User", id))?;
    let current = version(row.version, "user")?;
    check_if_match(if_match, current)?;
    let screened = safety::screen(store, txn, id).await?;
    let events = remove_from_all_groups(store, txn, id).await?;
    let left: Vec<String> = events.iter().map(|e| e.resource_id.clone()).collect();
    let last = user_resource(&row)?.document;
    let mut extra = json!({ "groups": left });
    if screened.grace_days > 0 {
        let until = safety::keep_deleted(store, txn, &row, &left, screened.grace_days).await?;
        extra["restorable_until"] = json!(until);
    }
    let deleted = Event::deleted(ResourceKind::User, id, current, &last, extra);
    users::Entity::delete_many()
        .filter(users::Column::TenantId.eq(store.tenant_key()))
        .filter(users::Column::Id.eq(id))
        .exec(txn)
        .await
        .map_err(dbx)?;
    // The groups the user left hear of it at once; the deletion itself
    // waits when it is held.
    match screened.hold {
        Some(reason) => safety::hold(store, txn, id, reason, vec![deleted.into()]).await?,
        None => events::write(store, txn, vec![deleted]).await?,
    }
    events::write(store, txn, events).await
}

/// Removes a live user for an erasure: out of its groups (their member
/// events carry ids only) and out of the directory, with no event of its
/// own (the erasure writes one without data).
pub(crate) async fn erase_live_user(
    store: &TenantStore,
    txn: &DatabaseTransaction,
    id: &str,
) -> Result<(), TxError> {
    let events = remove_from_all_groups(store, txn, id).await?;
    users::Entity::delete_many()
        .filter(users::Column::TenantId.eq(store.tenant_key()))
        .filter(users::Column::Id.eq(id))
        .exec(txn)
        .await
        .map_err(dbx)?;
    events::write(store, txn, events).await
}

/// Removes `member_id` from every group of the tenant it belongs to,
/// bumping those groups' versions; returns their `members_removed` events.
async fn remove_from_all_groups(
    store: &TenantStore,
    txn: &DatabaseTransaction,
    member_id: &str,
) -> Result<Vec<Event>, TxError> {
    let tenant = store.tenant_key();
    let group_ids: Vec<String> = memberships::Entity::find()
        .select_only()
        .column(memberships::Column::GroupId)
        .filter(memberships::Column::TenantId.eq(tenant.clone()))
        .filter(memberships::Column::MemberId.eq(member_id))
        .order_by_asc(memberships::Column::GroupId)
        .into_tuple()
        .all(txn)
        .await
        .map_err(dbx)?;
    if group_ids.is_empty() {
        return Ok(Vec::new());
    }
    memberships::Entity::delete_many()
        .filter(memberships::Column::TenantId.eq(tenant.clone()))
        .filter(memberships::Column::MemberId.eq(member_id))
        .exec(txn)
        .await
        .map_err(dbx)?;
    let at = now();
    let mut events = Vec::with_capacity(group_ids.len());
    for chunk in group_ids.chunks(CHUNK) {
        groups::Entity::update_many()
            .col_expr(
                groups::Column::Version,
                Expr::col(groups::Column::Version).add(1),
            )
            .col_expr(groups::Column::UpdatedAt, Expr::value(at))
            .filter(groups::Column::TenantId.eq(tenant.clone()))
            .filter(groups::Column::Id.is_in(chunk.iter().cloned()))
            .exec(txn)
            .await
            .map_err(dbx)?;
        let versions: Vec<(String, i64)> = groups::Entity::find()
            .select_only()
            .column(groups::Column::Id)
            .column(groups::Column::Version)
            .filter(groups::Column::TenantId.eq(tenant.clone()))
            .filter(groups::Column::Id.is_in(chunk.iter().cloned()))
            .order_by_asc(groups::Column::Id)
            .into_tuple()
            .all(txn)
            .await
            .map_err(dbx)?;
        for (gid, v) in versions {
            events.extend(Event::members_changed(
                &gid,
                version(v, "group")?,
                &[],
                &[member_id.to_owned()],
            ));
        }
    }
    Ok(events)
}

/// The groups that each of `member_ids` directly belongs to: one row per
/// (member, group) with the group's id, displayName (and its normalized
/// form) and externalId, served by the member-first covering index. Callers
/// chunk the ids and order the rows themselves.
pub(crate) fn groups_of_members(tenant: &str, member_ids: &[String]) -> SelectStatement {
    Query::select()
        .column((memberships::Entity, memberships::Column::MemberId))
        .column((groups::Entity, groups::Column::Id))
        .column((groups::Entity, groups::Column::DisplayName))
        .column((groups::Entity, groups::Column::DisplayNameNorm))
        .column((groups::Entity, groups::Column::ExternalId))
        .from(memberships::Entity)
        .inner_join(
            groups::Entity,
            Expr::col((groups::Entity, groups::Column::TenantId))
                .equals((memberships::Entity, memberships::Column::TenantId))
                .and(
                    Expr::col((groups::Entity, groups::Column::Id))
                        .equals((memberships::Entity, memberships::Column::GroupId)),
                ),
        )
        .and_where(Expr::col((memberships::Entity, memberships::Column::TenantId)).eq(tenant))
        .and_where(
            Expr::col((memberships::Entity, memberships::Column::MemberId))
                .is_in(member_ids.iter().cloned()),
        )
        .to_owned()
}

pub(crate) async fn user_groups(
    store: &TenantStore,
    user_ids: &[String],
) -> Result<HashMap<String, Vec<GroupRef>>> {
    let mut out: HashMap<String, Vec<GroupRef>> =
        user_ids.iter().map(|id| (id.clone(), Vec::new())).collect();
    let tenant = store.tenant_key();
    let ids: Vec<String> = out.keys().cloned().collect();
    // One query per 500 users: a page of results is one query. Sorted here
    // rather than by `ORDER BY`, which would tempt a statistics-less
    // planner to walk the tenant's groups in name order instead of probing
    // the member index.
    let mut sorted: HashMap<String, Vec<(String, GroupRef)>> = HashMap::new();
    for chunk in ids.chunks(CHUNK) {
        let q = groups_of_members(&tenant, chunk);
        let rows = store.inner.conn.query_all(&q).await.map_err(db)?;
        for row in rows {
            let member: String = row.try_get("", "member_id").map_err(db)?;
            let id: String = row.try_get("", "id").map_err(db)?;
            let display: String = row.try_get("", "display_name").map_err(db)?;
            let norm: String = row.try_get("", "display_name_norm").map_err(db)?;
            sorted
                .entry(member)
                .or_default()
                .push((norm, GroupRef { id, display }));
        }
    }
    for (member, refs) in sorted {
        if let Some(list) = out.get_mut(&member) {
            list.extend(in_display_order(refs));
        }
    }
    Ok(out)
}

/// A user's groups in the order `groups` lists them: by normalized
/// displayName (the first of each pair), ties by id.
pub(crate) fn in_display_order(mut refs: Vec<(String, GroupRef)>) -> Vec<GroupRef> {
    refs.sort_by(|(a, x), (b, y)| a.cmp(b).then_with(|| x.id.cmp(&y.id)));
    refs.into_iter().map(|(_, r)| r).collect()
}

// ---------------------------------------------------------------------------
// Groups

pub(crate) async fn find_group(
    store: &TenantStore,
    conn: &impl ConnectionTrait,
    id: &str,
    lock: bool,
) -> Result<Option<groups::Model>, sea_orm::DbErr> {
    let q = groups::Entity::find()
        .filter(groups::Column::TenantId.eq(store.tenant_key()))
        .filter(groups::Column::Id.eq(id));
    // By primary key, so at most one row; `one()` would add a bound
    // `LIMIT`, which makes SQLite re-prepare the statement on every call.
    let rows = if lock {
        role_store::locked_read(store, conn, q.lock_exclusive()).await?
    } else {
        q.all(conn).await?
    };
    Ok(rows.into_iter().next())
}

/// One member as the aggregate query of [`load_members`] spells it.
#[derive(serde::Deserialize)]
struct MemberJson {
    value: String,
    #[serde(rename = "type")]
    kind: String,
    display: Option<String>,
}

/// The members of each group that exists, in member-id order, in one query
/// per 500 groups; a group asked for that does not exist has no entry. The
/// database builds each group's list as one JSON array (one row per group,
/// not per member): decoding a row per member through the ORM cost about
/// twenty times the index scan that found them. The order is set here, by
/// bytes, the same on both engines (an `ORDER BY` inside SQLite's aggregate
/// sorts every group's rows into a temporary b-tree, and PostgreSQL's would
/// follow the database's collation).
pub(crate) async fn load_members(
    store: &TenantStore,
    conn: &impl ConnectionTrait,
    group_ids: &[String],
) -> Result<HashMap<String, Vec<Member>>, sea_orm::DbErr> {
    let mut out: HashMap<String, Vec<Member>> = HashMap::with_capacity(group_ids.len());
    let backend = conn.get_database_backend();
    for chunk in group_ids.chunks(CHUNK) {
        let mut values: Vec<sea_orm::Value> = Vec::with_capacity(chunk.len() + 1);
        values.push(store.tenant_key().into());
        values.extend(chunk.iter().map(|id| sea_orm::Value::from(id.as_str())));
        let sql = members_sql(backend, chunk.len());
        let rows = conn
            .query_all_raw(sea_orm::Statement::from_sql_and_values(
                backend, sql, values,
            ))
            .await?;
        for row in rows {
            let group: String = row.try_get("", "group_id")?;
            let text: String = row.try_get("", "members")?;
            let members: Vec<MemberJson> = serde_json::from_str(&text)
                .map_err(|e| sea_orm::DbErr::Type(format!("members of group {group}: {e}")))?;
            let mut list: Vec<Member> = members
                .into_iter()
                .map(|m| Member {
                    value: m.value,
                    display: m.display,
                    r#type: Some(m.kind),
                    reference: None,
                })
                .collect();
            list.sort_unstable_by(|a, b| a.value.cmp(&b.value));
            out.insert(group, list);
        }
    }
    Ok(out)
}

/// How each engine spells the JSON aggregate of a group's members.
struct MembersDialect {
    pg: bool,
}

impl MembersDialect {
    fn of(backend: sea_orm::DbBackend) -> MembersDialect {
        MembersDialect {
            pg: backend == sea_orm::DbBackend::Postgres,
        }
    }

    /// The `i`-th bound parameter (1-based).
    fn param(&self, i: usize) -> String {
        match self.pg {
            true => format!("${i}"),
            false => format!("?{i}"),
        }
    }

    /// A JSON object of `key, value` SQL pairs.
    fn object(&self, pairs: &str) -> String {
        let f = if self.pg {
            "json_build_object"
        } else {
            "json_object"
        };
        format!("{f}({pairs})")
    }

    /// A scalar subquery: the JSON array (text, `[]` when empty) of `item`
    /// over the memberships of group `g`. `order` is a sort clause only
    /// PostgreSQL gets: SQLite aggregates the covering index's rows in the
    /// index's (member-id, bytewise) order, and an `ORDER BY` inside its
    /// aggregate would sort them again in a temporary b-tree.
    fn array(&self, item: &str, order: &str) -> String {
        let agg = match self.pg {
            true => format!("coalesce(json_agg({item}{order}), '[]'::json)::text"),
            false => format!("json_group_array({item})"),
        };
        format!(
            "(SELECT {agg} FROM memberships m \
             WHERE m.tenant_id = g.tenant_id AND m.group_id = g.id)"
        )
    }
}

/// The query of [`load_members`] for `n` group ids: tenant id first, then
/// the group ids. One row per group found, its members aggregated by a
/// subquery (an empty array for a group without members); the caller sorts
/// them.
fn members_sql(backend: sea_orm::DbBackend, n: usize) -> String {
    let d = MembersDialect::of(backend);
    let item = d.object("'value', m.member_id, 'type', m.member_type, 'display', m.display");
    let groups: Vec<String> = (2..n + 2).map(|i| d.param(i)).collect();
    format!(
        "SELECT g.id AS group_id, {} AS members FROM groups g \
         WHERE g.tenant_id = {} AND g.id IN ({})",
        d.array(&item, ""),
        d.param(1),
        groups.join(", ")
    )
}

/// A group's members as the JSON array a response carries, built by the
/// database: `value`, `display` (when set), `type` and `$ref` (the
/// member's id after `user_ref` or `group_ref`, by its type), in member-id
/// order. Nothing is decoded or re-encoded on the way: a member-`PATCH`
/// reply of a large group is mostly this array.
pub(crate) async fn group_members_json(
    store: &TenantStore,
    group_id: &str,
    user_ref: &str,
    group_ref: &str,
    at_most: Option<u64>,
) -> Result<Option<String>> {
    let conn = &store.inner.conn;
    let backend = conn.get_database_backend();
    let values: Vec<sea_orm::Value> = vec![
        store.tenant_key().into(),
        group_id.into(),
        user_ref.into(),
        group_ref.into(),
    ];
    let row = conn
        .query_all_raw(sea_orm::Statement::from_sql_and_values(
            backend,
            members_json_sql(backend, at_most),
            values,
        ))
        .await
        .map_err(db)?
        .into_iter()
        .next()
        .ok_or_else(|| not_found("Group", group_id))?;
    row.try_get("", "members").map_err(db)
}

/// The query of [`group_members_json`]: tenant id, group id, then the two
/// reference prefixes. PostgreSQL is told the order, in bytes ("C")
/// whatever the database's collation; SQLite's index gives it. With
/// `at_most`, a group of more members answers NULL, counted in the index no
/// further than one past the bound, and its members are never aggregated
/// (`CASE` evaluates only the branch it takes), so a large group costs the
/// same as one at the bound.
fn members_json_sql(backend: sea_orm::DbBackend, at_most: Option<u64>) -> String {
    let d = MembersDialect::of(backend);
    let reference = format!(
        "'$ref', CASE m.member_type WHEN 'Group' THEN {} ELSE {} END || m.member_id",
        d.param(4),
        d.param(3)
    );
    let item = format!(
        "CASE WHEN m.display IS NULL THEN {} ELSE {} END",
        d.object(&format!(
            "'value', m.member_id, 'type', m.member_type, {reference}"
        )),
        d.object(&format!(
            "'value', m.member_id, 'display', m.display, 'type', m.member_type, {reference}"
        )),
    );
    let array = d.array(&item, " ORDER BY m.member_id COLLATE \"C\"");
    let members = match at_most {
        None => array,
        Some(n) => format!(
            "CASE WHEN (SELECT count(*) FROM (SELECT 1 FROM memberships x \
             WHERE x.tenant_id = g.tenant_id AND x.group_id = g.id LIMIT {}) c) > {n} \
             THEN NULL ELSE {array} END",
            n.saturating_add(1)
        ),
    };
    format!(
        "SELECT {members} AS members FROM groups g WHERE g.tenant_id = {} AND g.id = {}",
        d.param(1),
        d.param(2)
    )
}

/// A group's members; `None` if the group does not exist.
async fn members_of(
    store: &TenantStore,
    conn: &impl ConnectionTrait,
    group_id: &str,
) -> Result<Option<Vec<Member>>, sea_orm::DbErr> {
    let mut all = load_members(store, conn, &[group_id.to_owned()]).await?;
    Ok(all.remove(group_id))
}

/// The first occurrence of each member id, in order.
fn dedupe(members: Vec<Member>) -> Vec<Member> {
    let mut seen = HashSet::new();
    members
        .into_iter()
        .filter(|m| seen.insert(m.value.clone()))
        .collect()
}

/// Checks that every member is a user or group of this tenant (locking
/// them against a concurrent delete) and sets each one's `type`.
async fn resolve_members(
    store: &TenantStore,
    txn: &DatabaseTransaction,
    group_id: &str,
    members: Vec<Member>,
) -> Result<Vec<Member>, TxError> {
    if members.iter().any(|m| m.value == group_id) {
        return Err(StoreError::InvalidValue("a group cannot be a member of itself".into()).into());
    }
    let tenant = store.tenant_key();
    let ids: Vec<String> = members.iter().map(|m| m.value.clone()).collect();
    let mut users_found = HashSet::new();
    let mut groups_found = HashSet::new();
    for chunk in ids.chunks(CHUNK) {
        // KEY SHARE blocks a delete of the user as SHARE would, but not
        // the NO KEY UPDATE lock role derivation then takes on it.
        let u: Vec<String> = users::Entity::find()
            .select_only()
            .column(users::Column::Id)
            .filter(users::Column::TenantId.eq(tenant.clone()))
            .filter(users::Column::Id.is_in(chunk.iter().cloned()))
            .lock(LockType::KeyShare)
            .into_tuple()
            .all(txn)
            .await
            .map_err(dbx)?;
        users_found.extend(u);
        // Most members are users: the groups are looked for only among the
        // rest, and not at all (one round trip fewer) when none is left.
        let rest: Vec<String> = chunk
            .iter()
            .filter(|id| !users_found.contains(*id))
            .cloned()
            .collect();
        if rest.is_empty() {
            continue;
        }
        let g: Vec<String> = groups::Entity::find()
            .select_only()
            .column(groups::Column::Id)
            .filter(groups::Column::TenantId.eq(tenant.clone()))
            .filter(groups::Column::Id.is_in(rest))
            .lock_shared()
            .into_tuple()
            .all(txn)
            .await
            .map_err(dbx)?;
        groups_found.extend(g);
    }
    members
        .into_iter()
        .map(|mut m| {
            let ty = if users_found.contains(&m.value) {
                "User"
            } else if groups_found.contains(&m.value) {
                "Group"
            } else {
                // Same words whether or not the id exists in another tenant.
                return Err(StoreError::InvalidValue(format!(
                    "member '{}' is not a user or group of this tenant",
                    m.value
                ))
                .into());
            };
            m.r#type = Some(ty.to_owned());
            m.reference = None;
            Ok(m)
        })
        .collect()
}

/// Inserts `members`, skipping the ones already in the group; returns the
/// ids it added. The skip is the insert's own (`ON CONFLICT DO NOTHING
/// RETURNING`), so no statement reads the current members first.
async fn insert_members(
    store: &TenantStore,
    txn: &DatabaseTransaction,
    group_id: &str,
    members: &[Member],
) -> Result<Vec<String>, TxError> {
    let tenant = store.tenant_key();
    let mut added = Vec::new();
    for chunk in members.chunks(CHUNK) {
        let mut insert = Query::insert();
        insert.into_table(memberships::Entity).columns([
            memberships::Column::TenantId,
            memberships::Column::GroupId,
            memberships::Column::MemberId,
            memberships::Column::MemberType,
            memberships::Column::Display,
        ]);
        for m in chunk {
            insert.values_panic([
                tenant.clone().into(),
                group_id.into(),
                m.value.clone().into(),
                m.r#type.clone().unwrap_or_else(|| "User".into()).into(),
                m.display.clone().into(),
            ]);
        }
        insert
            .on_conflict(
                OnConflict::columns([memberships::Column::GroupId, memberships::Column::MemberId])
                    .do_nothing()
                    .to_owned(),
            )
            .returning_col(memberships::Column::MemberId);
        let rows = txn.query_all(&insert).await.map_err(dbx)?;
        for row in rows {
            added.push(row.try_get::<String>("", "member_id").map_err(dbx)?);
        }
    }
    Ok(added)
}

/// Deletes the memberships of `ids` in the group; returns the ids that
/// were members (`RETURNING`: no statement reads them first).
async fn delete_members(
    store: &TenantStore,
    txn: &DatabaseTransaction,
    group_id: &str,
    ids: &[String],
) -> Result<Vec<String>, TxError> {
    let mut gone = Vec::new();
    for chunk in ids.chunks(CHUNK) {
        let delete = Query::delete()
            .from_table(memberships::Entity)
            .and_where(Expr::col(memberships::Column::TenantId).eq(store.tenant_key()))
            .and_where(Expr::col(memberships::Column::GroupId).eq(group_id))
            .and_where(Expr::col(memberships::Column::MemberId).is_in(chunk.iter().cloned()))
            .returning_col(memberships::Column::MemberId)
            .to_owned();
        let rows = txn.query_all(&delete).await.map_err(dbx)?;
        for row in rows {
            gone.push(row.try_get::<String>("", "member_id").map_err(dbx)?);
        }
    }
    Ok(gone)
}

pub(crate) async fn all_member_ids(
    store: &TenantStore,
    txn: &DatabaseTransaction,
    group_id: &str,
) -> Result<Vec<String>, TxError> {
    memberships::Entity::find()
        .select_only()
        .column(memberships::Column::MemberId)
        .filter(memberships::Column::TenantId.eq(store.tenant_key()))
        .filter(memberships::Column::GroupId.eq(group_id))
        .order_by_asc(memberships::Column::MemberId)
        .into_tuple()
        .all(txn)
        .await
        .map_err(dbx)
}

/// The net effect of a sequence of member changes.
#[derive(Default)]
struct Delta {
    added: BTreeSet<String>,
    removed: BTreeSet<String>,
}

impl Delta {
    fn add(&mut self, id: String) {
        if !self.removed.remove(&id) {
            self.added.insert(id);
        }
    }
    fn remove(&mut self, id: String) {
        if !self.added.remove(&id) {
            self.removed.insert(id);
        }
    }
    fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty()
    }
    fn events(&self, group_id: &str, version: u64) -> Vec<Event> {
        let added: Vec<String> = self.added.iter().cloned().collect();
        let removed: Vec<String> = self.removed.iter().cloned().collect();
        Event::members_changed(group_id, version, &added, &removed)
    }
}

/// Adds members (ignoring ones already present).
async fn add_members(
    store: &TenantStore,
    txn: &DatabaseTransaction,
    group_id: &str,
    members: Vec<Member>,
    delta: &mut Delta,
) -> Result<(), TxError> {
    let members = dedupe(members);
    if members.is_empty() {
        return Ok(());
    }
    // Members already present are resolved too (they exist, so this
    // cannot fail on them): that costs less than a statement to find them.
    let members = resolve_members(store, txn, group_id, members).await?;
    for id in insert_members(store, txn, group_id, &members).await? {
        delta.add(id);
    }
    Ok(())
}

async fn remove_members(
    store: &TenantStore,
    txn: &DatabaseTransaction,
    group_id: &str,
    ids: &[String],
    delta: &mut Delta,
) -> Result<(), TxError> {
    for id in delete_members(store, txn, group_id, ids).await? {
        delta.remove(id);
    }
    Ok(())
}

/// Makes the member set exactly `members` (PUT, or PATCH replace).
async fn set_members(
    store: &TenantStore,
    txn: &DatabaseTransaction,
    group_id: &str,
    members: Vec<Member>,
    delta: &mut Delta,
) -> Result<(), TxError> {
    let members = dedupe(members);
    let wanted: HashSet<&str> = members.iter().map(|m| m.value.as_str()).collect();
    let current = all_member_ids(store, txn, group_id).await?;
    let gone: Vec<String> = current
        .iter()
        .filter(|id| !wanted.contains(id.as_str()))
        .cloned()
        .collect();
    for id in delete_members(store, txn, group_id, &gone).await? {
        delta.remove(id);
    }
    let current: HashSet<String> = current.into_iter().collect();
    let fresh: Vec<Member> = members
        .into_iter()
        .filter(|m| !current.contains(&m.value))
        .collect();
    if !fresh.is_empty() {
        let fresh = resolve_members(store, txn, group_id, fresh).await?;
        for id in insert_members(store, txn, group_id, &fresh).await? {
            delta.add(id);
        }
    }
    Ok(())
}

/// Adjacent additions as one addition, adjacent removals as one removal:
/// the same outcome (an addition leaves present members as they are, a
/// removal ignores absent ones), with a few statements per run instead of
/// a few per operation (Entra sends a PATCH operation per member).
fn coalesce(changes: Vec<MemberChange>) -> Vec<MemberChange> {
    let mut out: Vec<MemberChange> = Vec::with_capacity(changes.len());
    for change in changes {
        match (out.last_mut(), change) {
            (Some(MemberChange::Add(run)), MemberChange::Add(more)) => run.extend(more),
            (Some(MemberChange::Remove(run)), MemberChange::Remove(more)) => run.extend(more),
            (_, change) => out.push(change),
        }
    }
    out
}

async fn apply_change(
    store: &TenantStore,
    txn: &DatabaseTransaction,
    group_id: &str,
    change: MemberChange,
    delta: &mut Delta,
) -> Result<(), TxError> {
    match change {
        MemberChange::Add(members) => add_members(store, txn, group_id, members, delta).await,
        MemberChange::Remove(ids) => remove_members(store, txn, group_id, &ids, delta).await,
        MemberChange::RemoveAll => {
            let ids = all_member_ids(store, txn, group_id).await?;
            remove_members(store, txn, group_id, &ids, delta).await
        }
        MemberChange::Replace(members) => set_members(store, txn, group_id, members, delta).await,
        MemberChange::RemoveWhere(filter) => {
            // A filter other than `value eq` (e.g. on `type` or `display`):
            // evaluated over the current members, as the PATCH engine would.
            let members = members_of(store, txn, group_id)
                .await
                .map_err(dbx)?
                .unwrap_or_default();
            let parent = AttrPath::new("members");
            let ids: Vec<String> = members
                .into_iter()
                .filter(|m| {
                    scim::filter::matches_element(
                        &filter,
                        &m.to_json(),
                        ResourceSchema::group(),
                        &parent,
                    )
                })
                .map(|m| m.value)
                .collect();
            remove_members(store, txn, group_id, &ids, delta).await
        }
    }
}

fn group_active_model(
    tenant: &str,
    id: &str,
    cols: &GroupColumns,
    document: &str,
    at: chrono::DateTime<chrono::Utc>,
) -> groups::ActiveModel {
    groups::ActiveModel {
        tenant_id: Set(tenant.to_owned()),
        id: Set(id.to_owned()),
        display_name: Set(cols.display_name.clone()),
        display_name_norm: Set(cols.display_name_norm.clone()),
        external_id: Set(cols.external_id.clone()),
        document: Set(document.to_owned()),
        version: Set(1),
        created_at: Set(at),
        updated_at: Set(at),
    }
}

pub(crate) async fn create_group(
    store: &TenantStore,
    document: Value,
    members: Vec<Member>,
) -> Result<Resource> {
    let new = NewGroup::prepare(new_resource_id(), document, members)?;
    let at = now();
    write_txn!(store.inner, [store], [new], txn => {
        let mut group = create_group_in(store, txn, new, at).await?;
        if store.tenant.kind == crate::TenantKind::Super {
            let members: Vec<String> = group
                .members
                .iter()
                .flatten()
                .map(|m| m.value.clone())
                .collect();
            let change = GroupChange::default();
            let touched = Touched::Group { id: &group.id, change: &change, all_members: &members };
            group.routed = copies::follow(store, txn, touched).await?;
        }
        Ok(group)
    })
}

/// A group about to be inserted, with what can be worked out before the
/// transaction (see [`NewUser`]).
#[derive(Debug, Clone)]
pub(crate) struct NewGroup {
    id: String,
    document: Value,
    members: Vec<Member>,
    cols: GroupColumns,
    text: String,
    event: PreparedEvent,
}

impl NewGroup {
    /// Validates `document`'s indexed columns for group `id`.
    pub(crate) fn prepare(id: String, document: Value, members: Vec<Member>) -> Result<NewGroup> {
        let cols = group_columns(&document)?;
        let text = document.to_string();
        let event = Event::created(ResourceKind::Group, &id, 1, &document).into();
        Ok(NewGroup {
            id,
            document,
            members,
            cols,
            text,
            event,
        })
    }
}

/// The body of [`create_group`]: inserts the group and its members in
/// `txn`, with the members' derived roles and the events.
pub(crate) async fn create_group_in(
    store: &TenantStore,
    txn: &DatabaseTransaction,
    new: &NewGroup,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<Resource, TxError> {
    let (id, cols) = (&new.id, &new.cols);
    groups::Entity::insert(group_active_model(
        &store.tenant_key(),
        id,
        cols,
        &new.text,
        at,
    ))
    .exec_without_returning(txn)
    .await
    .map_err(|e| unique_or(e, || group_name_taken(&cols.display_name)))?;
    let mut delta = Delta::default();
    add_members(store, txn, id, new.members.clone(), &mut delta).await?;
    events::write_prepared(store, txn, vec![new.event.clone()]).await?;
    let mut events = Vec::new();
    if !delta.is_empty() {
        events.extend(delta.events(id, 1));
    }
    let added: Vec<String> = delta.added.iter().cloned().collect();
    events.extend(role_store::recompute(store, txn, &added).await?);
    events::write(store, txn, events).await?;
    let members = members_of(store, txn, id)
        .await
        .map_err(dbx)?
        .unwrap_or_default();
    Ok(Resource {
        id: id.clone(),
        document: new.document.clone(),
        version: 1,
        created: at,
        last_modified: at,
        members: Some(members),
        routed: Vec::new(),
    })
}

pub(crate) async fn get_group(
    store: &TenantStore,
    id: &str,
    with_members: bool,
) -> Result<Resource> {
    let conn = &store.inner.conn;
    let row = find_group(store, conn, id, false)
        .await
        .map_err(db)?
        .ok_or_else(|| not_found("Group", id))?;
    let members = if with_members {
        Some(
            members_of(store, conn, id)
                .await
                .map_err(db)?
                .unwrap_or_default(),
        )
    } else {
        None
    };
    group_resource(&row, members)
}

/// A group's members, without reading (or parsing) the group itself.
pub(crate) async fn group_members(store: &TenantStore, group_id: &str) -> Result<Vec<Member>> {
    members_of(store, &store.inner.conn, group_id)
        .await
        .map_err(db)?
        .ok_or_else(|| not_found("Group", group_id))
}

/// See [`TenantStore::group_has_more_members_than`]: the `n + 1`-th entry
/// of the group in the group-direction membership index, if there is one.
pub(crate) async fn group_has_more_members_than(
    store: &TenantStore,
    group_id: &str,
    n: u64,
) -> Result<bool> {
    let beyond: Vec<String> = memberships::Entity::find()
        .select_only()
        .column(memberships::Column::MemberId)
        .filter(memberships::Column::TenantId.eq(store.tenant_key()))
        .filter(memberships::Column::GroupId.eq(group_id))
        .order_by_asc(memberships::Column::MemberId)
        .offset(n)
        .limit(1)
        .into_tuple()
        .all(&store.inner.conn)
        .await
        .map_err(db)?;
    Ok(!beyond.is_empty())
}

/// What a group write changed, for a super tenant's copies to follow.
#[derive(Debug, Default)]
pub(crate) struct GroupChange {
    /// Member ids added.
    pub(crate) added: Vec<String>,
    /// Member ids removed.
    pub(crate) removed: Vec<String>,
    /// The displayName or externalId changed (what routing and role
    /// mappings match on).
    pub(crate) renamed: bool,
}

/// Writes a group's new document and member changes over `row` (read under
/// lock). No change at all keeps the version and writes no event.
async fn update_group(
    store: &TenantStore,
    txn: &DatabaseTransaction,
    row: &groups::Model,
    document: Value,
    changes: Vec<MemberChange>,
) -> Result<(Resource, GroupChange), TxError> {
    let current = group_resource(row, None)?;
    let doc_changed = current.document != document;
    let cols = if doc_changed {
        Some(group_columns(&document)?)
    } else {
        None
    };
    let mut delta = Delta::default();
    for change in coalesce(changes) {
        apply_change(store, txn, &row.id, change, &mut delta).await?;
    }
    if !doc_changed && delta.is_empty() {
        return Ok((current, GroupChange::default()));
    }
    let new_version = row.version + 1;
    let at = now();
    let mut update = groups::Entity::update_many()
        .col_expr(groups::Column::Version, Expr::value(new_version))
        .col_expr(groups::Column::UpdatedAt, Expr::value(at));
    // As for users: only the indexed columns whose value changes.
    if let Some(cols) = &cols {
        update = update.col_expr(groups::Column::Document, Expr::value(document.to_string()));
        if cols.display_name != row.display_name {
            update = update.col_expr(
                groups::Column::DisplayName,
                Expr::value(cols.display_name.clone()),
            );
        }
        if cols.display_name_norm != row.display_name_norm {
            update = update.col_expr(
                groups::Column::DisplayNameNorm,
                Expr::value(cols.display_name_norm.clone()),
            );
        }
        if cols.external_id != row.external_id {
            update = update.col_expr(
                groups::Column::ExternalId,
                Expr::value(cols.external_id.clone()),
            );
        }
    }
    let updated = update
        .filter(groups::Column::TenantId.eq(store.tenant_key()))
        .filter(groups::Column::Id.eq(row.id.clone()))
        .filter(groups::Column::Version.eq(row.version))
        .exec(txn)
        .await
        .map_err(|e| {
            let name = cols
                .as_ref()
                .map(|c| c.display_name.clone())
                .unwrap_or_default();
            unique_or(e, || group_name_taken(&name))
        })?;
    if updated.rows_affected == 0 {
        return Err(TxError::Retry);
    }
    let version = version(new_version, "group")?;
    let mut events = Vec::new();
    if doc_changed {
        let changed = changed_attributes(&current.document, &document);
        events.push(Event::updated(
            ResourceKind::Group,
            &row.id,
            version,
            &changed,
            &current.document,
            &document,
        ));
    }
    if !delta.is_empty() {
        events.extend(delta.events(&row.id, version));
    }
    let mut affected: Vec<String> = delta.added.iter().chain(&delta.removed).cloned().collect();
    // Mappings match a group by id, externalId or displayName: a change of
    // the latter two can change every member's roles.
    let renamed = cols
        .as_ref()
        .is_some_and(|c| c.display_name != row.display_name || c.external_id != row.external_id);
    if renamed {
        affected.extend(all_member_ids(store, txn, &row.id).await?);
    }
    events.extend(role_store::recompute(store, txn, &affected).await?);
    events::write(store, txn, events).await?;
    let change = GroupChange {
        added: delta.added.into_iter().collect(),
        removed: delta.removed.into_iter().collect(),
        renamed,
    };
    let resource = Resource {
        id: row.id.clone(),
        document,
        version,
        created: row.created_at,
        last_modified: at,
        members: None,
        routed: Vec::new(),
    };
    Ok((resource, change))
}

pub(crate) async fn replace_group(
    store: &TenantStore,
    id: &str,
    document: Value,
    members: Vec<Member>,
    if_match: Option<u64>,
) -> Result<Resource> {
    group_columns(&document)?;
    write_txn!(store.inner, [store, id, members], [document], txn => {
        let (mut resource, change) =
            replace_group_in(store, txn, id, document.clone(), members.clone(), if_match).await?;
        resource.routed =
            copies::follow(store, txn, Touched::Group { id, change: &change, all_members: &[] })
                .await?;
        Ok(resource)
    })
}

/// The body of [`replace_group`].
pub(crate) async fn replace_group_in(
    store: &TenantStore,
    txn: &DatabaseTransaction,
    id: &str,
    document: Value,
    members: Vec<Member>,
    if_match: Option<u64>,
) -> Result<(Resource, GroupChange), TxError> {
    let row = find_group(store, txn, id, true)
        .await
        .map_err(dbx)?
        .ok_or_else(|| not_found("Group", id))?;
    check_if_match(if_match, version(row.version, "group")?)?;
    let changes = vec![MemberChange::Replace(members)];
    let (mut resource, change) = update_group(store, txn, &row, document, changes).await?;
    resource.members = Some(
        members_of(store, txn, id)
            .await
            .map_err(dbx)?
            .unwrap_or_default(),
    );
    Ok((resource, change))
}

pub(crate) async fn modify_group<F>(
    store: &TenantStore,
    id: &str,
    if_match: Option<u64>,
    modify: F,
) -> Result<Resource>
where
    F: Fn(&Resource) -> Result<(Value, Vec<MemberChange>), scim::Error> + Send + Sync + 'static,
{
    write_txn!(store.inner, [store, id], [modify], txn => {
        let (mut resource, change) = modify_group_in(store, txn, id, if_match, modify).await?;
        resource.routed =
            copies::follow(store, txn, Touched::Group { id, change: &change, all_members: &[] })
                .await?;
        Ok(resource)
    })
}

/// The body of [`modify_group`].
pub(crate) async fn modify_group_in<F>(
    store: &TenantStore,
    txn: &DatabaseTransaction,
    id: &str,
    if_match: Option<u64>,
    modify: &F,
) -> Result<(Resource, GroupChange), TxError>
where
    F: Fn(&Resource) -> Result<(Value, Vec<MemberChange>), scim::Error> + Send + Sync,
{
    let row = find_group(store, txn, id, true)
        .await
        .map_err(dbx)?
        .ok_or_else(|| not_found("Group", id))?;
    let current = group_resource(&row, None)?;
    check_if_match(if_match, current.version)?;
    let (document, changes) = modify(&current)?;
    update_group(store, txn, &row, document, changes).await
}

pub(crate) async fn delete_group(
    store: &TenantStore,
    id: &str,
    if_match: Option<u64>,
) -> Result<Vec<copies::Routed>> {
    write_txn!(store.inner, [store, id], [], txn => {
        let members = delete_group_in(store, txn, id, if_match).await?;
        let change = GroupChange::default();
        copies::follow(store, txn, Touched::Group { id, change: &change, all_members: &members })
            .await
    })
}

/// The body of [`delete_group`]; returns the ids of the members it had.
pub(crate) async fn delete_group_in(
    store: &TenantStore,
    txn: &DatabaseTransaction,
    id: &str,
    if_match: Option<u64>,
) -> Result<Vec<String>, TxError> {
    let row = find_group(store, txn, id, true)
        .await
        .map_err(dbx)?
        .ok_or_else(|| not_found("Group", id))?;
    let current = version(row.version, "group")?;
    check_if_match(if_match, current)?;
    // Its own membership in other groups; its members go with it
    // (ON DELETE CASCADE), so they are read first.
    let members = all_member_ids(store, txn, id).await?;
    let mut events = remove_from_all_groups(store, txn, id).await?;
    groups::Entity::delete_many()
        .filter(groups::Column::TenantId.eq(store.tenant_key()))
        .filter(groups::Column::Id.eq(id))
        .exec(txn)
        .await
        .map_err(dbx)?;
    let last = group_resource(&row, None)?.document;
    events.insert(
        0,
        Event::deleted(ResourceKind::Group, id, current, &last, json!({})),
    );
    events.extend(role_store::recompute(store, txn, &members).await?);
    events::write(store, txn, events).await?;
    Ok(members)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adjacent_member_changes_of_one_kind_coalesce_in_order() {
        use MemberChange::{Add, Remove, RemoveAll};
        let m = |id: &str| Member::new(id.to_owned());
        let ids = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let out = coalesce(vec![
            Add(vec![m("a")]),
            Add(vec![m("b"), m("a")]),
            Remove(ids(&["c"])),
            Remove(ids(&["d"])),
            Add(vec![m("e")]),
            RemoveAll,
            Add(vec![m("f")]),
        ]);
        assert_eq!(
            out,
            vec![
                Add(vec![m("a"), m("b"), m("a")]),
                Remove(ids(&["c", "d"])),
                Add(vec![m("e")]),
                RemoveAll,
                Add(vec![m("f")]),
            ]
        );
    }

    async fn two_tenants(store: &crate::Store) -> (TenantStore, TenantStore) {
        let mut out = Vec::new();
        for slug in ["source", "child"] {
            let t = store
                .admin()
                .create_tenant(
                    crate::NewTenant {
                        slug: slug.into(),
                        name: slug.into(),
                        kind: crate::TenantKind::Standard,
                    },
                    "test",
                )
                .await
                .expect("tenant");
            out.push(store.tenant(&t));
        }
        let b = out.pop().expect("two");
        let a = out.pop().expect("two");
        (a, b)
    }

    fn user(name: &str) -> Value {
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": name,
            "active": true,
        })
    }

    /// Writes of two tenants compose into one transaction (what a super
    /// tenant's copies need): both commit with their own events, or, when
    /// one fails, neither leaves a row or an event behind.
    #[tokio::test]
    async fn writes_of_several_tenants_compose_into_one_transaction() {
        for which in testkit::backends() {
            let db = testkit::fresh_database(which).await;
            let store = crate::Store::connect(&db.url, crate::StoreOptions::default())
                .await
                .expect("connect");
            store.migrate().await.expect("migrate");
            let (a, b) = two_tenants(&store).await;
            b.create_user(user("taken@x")).await.expect("user in b");
            let before = (
                a.events_after(0, 100).await.expect("events").len(),
                b.events_after(0, 100).await.expect("events").len(),
            );

            // Both: committed together, each tenant with its own event.
            let one = NewUser::prepare(Uuid::new_v4().to_string(), user("ann@x")).expect("valid");
            let two = NewUser::prepare(Uuid::new_v4().to_string(), user("ann@x")).expect("valid");
            let at = now();
            let (a_ref, b_ref) = (&a, &b);
            let (ra, rb) = write_txn!(store.inner, [a_ref, b_ref], [one, two], txn => {
                let (a, b) = (a_ref, b_ref);
                let ra = create_user_in(a, txn, one, at).await?;
                let rb = create_user_in(b, txn, two, at).await?;
                Ok((ra, rb))
            })
            .expect("both commit");
            assert_eq!(
                a.get_user(&ra.id).await.expect("in a").id,
                ra.id,
                "{which:?}"
            );
            assert_eq!(
                b.get_user(&rb.id).await.expect("in b").id,
                rb.id,
                "{which:?}"
            );
            assert!(
                a.get_user(&rb.id).await.is_err(),
                "{which:?}: tenants stay apart"
            );
            let a_events = a.events_after(0, 100).await.expect("events");
            let b_events = b.events_after(0, 100).await.expect("events");
            assert_eq!(a_events.len(), before.0 + 1, "{which:?}");
            assert_eq!(b_events.len(), before.1 + 1, "{which:?}");
            assert_eq!(
                a_events.last().map(|e| e.resource_id.clone()),
                Some(ra.id.clone())
            );
            assert_eq!(
                b_events.last().map(|e| e.resource_id.clone()),
                Some(rb.id.clone())
            );

            // The second fails (its userName is taken in b): the first is
            // rolled back with it.
            let three = NewUser::prepare(Uuid::new_v4().to_string(), user("bob@x")).expect("valid");
            let four =
                NewUser::prepare(Uuid::new_v4().to_string(), user("taken@x")).expect("valid");
            let failed = write_txn!(store.inner, [a_ref, b_ref], [three, four], txn => {
                let (a, b) = (a_ref, b_ref);
                create_user_in(a, txn, three, at).await?;
                create_user_in(b, txn, four, at).await?;
                Ok(())
            });
            assert!(
                matches!(failed, Err(StoreError::Uniqueness(_))),
                "{which:?}: {failed:?}"
            );
            let users = a
                .list_users(&crate::ListQuery {
                    filter: None,
                    sort_by: None,
                    descending: false,
                    start_index: 1,
                    count: 0,
                    with_members: false,
                    user_extras: Default::default(),
                })
                .await
                .map(|page| page.total);
            assert_eq!(
                users.ok(),
                Some(1),
                "{which:?}: bob was not left behind in a"
            );
            assert_eq!(
                a.events_after(0, 100).await.expect("events").len(),
                before.0 + 1,
                "{which:?}"
            );
            assert_eq!(
                b.events_after(0, 100).await.expect("events").len(),
                before.1 + 1,
                "{which:?}"
            );
        }
    }

    /// SQLite reads a group's member list from the group-direction index
    /// alone, in its order: no table lookup per member and no temporary
    /// b-tree. (Under steady writes each table lookup was a read from the
    /// file: see migration m0005.)
    #[tokio::test]
    async fn sqlite_reads_member_lists_from_the_covering_index() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("db").display());
        let store = crate::Store::connect(&url, crate::StoreOptions::default())
            .await
            .unwrap();
        store.migrate().await.unwrap();
        let sqlite = sea_orm::DbBackend::Sqlite;
        for query in [
            members_sql(sqlite, 2),
            members_json_sql(sqlite, None),
            members_json_sql(sqlite, Some(100)),
        ] {
            let rows = store
                .inner
                .conn
                .query_all_raw(sea_orm::Statement::from_string(
                    sqlite,
                    format!("EXPLAIN QUERY PLAN {query}"),
                ))
                .await
                .unwrap();
            let plan: Vec<String> = rows
                .iter()
                .map(|r| r.try_get::<String>("", "detail").unwrap())
                .collect();
            assert!(
                plan.iter()
                    .any(|d| d.contains("COVERING INDEX ix_memberships_group")),
                "{query}: {plan:?}"
            );
            assert!(
                !plan.iter().any(|d| d.contains("TEMP B-TREE")),
                "{query}: {plan:?}"
            );
        }
    }
}
