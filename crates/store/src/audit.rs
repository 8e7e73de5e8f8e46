//! The admin audit log: who changed what, when.
//!
//! Every administrative change writes its entry inside the transaction
//! that makes the change, so the log can neither miss a change that
//! happened nor record one that rolled back. Entries keep the tenant's id
//! as text without a foreign key: the record of a tenant's deletion
//! outlives the tenant.

use sea_orm::{
    ActiveValue::NotSet, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use serde_json::Value;
use uuid::Uuid;

use crate::db::{Inner, TxError, db, dbx, now};
use crate::entity::admin_audit;
use crate::{AuditEntry, AuditQuery, Result, StoreError};

/// Most entries one read returns.
const MAX_LIMIT: u64 = 1000;

/// Writes one audit entry inside the caller's transaction.
pub(crate) async fn write(
    txn: &impl ConnectionTrait,
    tenant: Option<Uuid>,
    actor: &str,
    action: &str,
    target: &str,
    detail: Value,
) -> Result<(), TxError> {
    admin_audit::Entity::insert(admin_audit::ActiveModel {
        id: NotSet,
        tenant_id: Set(tenant.map(|t| t.to_string())),
        at: Set(now()),
        actor: Set(actor.to_owned()),
        action: Set(action.to_owned()),
        target: Set(target.to_owned()),
        detail: Set(detail.to_string()),
    })
    .exec_without_returning(txn)
    .await
    .map_err(dbx)?;
    Ok(())
}

/// Writes one audit entry in a transaction of its own, for events that
/// are not a change to stored state (a login locked out by throttling).
pub(crate) async fn record(
    inner: &Inner,
    tenant: Option<Uuid>,
    actor: &str,
    action: &str,
    target: &str,
    detail: Value,
) -> Result<()> {
    write_txn!(inner, [actor, action, target], [detail], txn => {
        write(txn, tenant, actor, action, target, detail.clone()).await
    })
}

pub(crate) async fn read(inner: &Inner, query: &AuditQuery) -> Result<Vec<AuditEntry>> {
    let mut q = admin_audit::Entity::find();
    if let Some(tenant) = query.tenant {
        q = q.filter(admin_audit::Column::TenantId.eq(tenant.to_string()));
    }
    if let Some(before) = query.before_id {
        q = q.filter(admin_audit::Column::Id.lt(before));
    }
    if let Some(action) = &query.action {
        q = q.filter(admin_audit::Column::Action.eq(action.clone()));
    }
    if let Some(actor) = &query.actor {
        q = q.filter(admin_audit::Column::Actor.eq(actor.clone()));
    }
    if let Some(since) = query.since {
        q = q.filter(admin_audit::Column::At.gte(since));
    }
    if let Some(until) = query.until {
        q = q.filter(admin_audit::Column::At.lt(until));
    }
    let rows = q
        .order_by_desc(admin_audit::Column::Id)
        .limit(query.limit.clamp(1, MAX_LIMIT))
        .all(&inner.conn)
        .await
        .map_err(db)?;
    rows.into_iter()
        .map(|r| {
            let detail = serde_json::from_str(&r.detail).map_err(|e| {
                StoreError::Internal(format!("audit entry {} has a corrupt detail: {e}", r.id))
            })?;
            let tenant_id = r
                .tenant_id
                .as_deref()
                .map(Uuid::parse_str)
                .transpose()
                .map_err(|_| {
                    StoreError::Internal(format!("audit entry {} has a malformed tenant", r.id))
                })?;
            Ok(AuditEntry {
                id: r.id,
                tenant_id,
                at: r.at,
                actor: r.actor,
                action: r.action,
                target: r.target,
                detail,
            })
        })
        .collect()
}
