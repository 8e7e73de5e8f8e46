//! The provisioning log: one row per SCIM write and its outcome, written
//! outside the write's transaction so that failures are logged too.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::NotSet, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};

use crate::db::{Inner, db, dbx};
use crate::entity::provisioning_log;
use crate::{LogQuery, ProvisioningEntry, Result, StoreError, TenantStore};

/// Page size when the caller asks for 0, and the most one read returns.
const DEFAULT_LIMIT: u64 = 100;
const MAX_LIMIT: u64 = 1000;

fn row(store: &TenantStore, entry: ProvisioningEntry) -> provisioning_log::ActiveModel {
    provisioning_log::ActiveModel {
        id: NotSet,
        tenant_id: Set(store.tenant.id.to_string()),
        at: Set(entry.at),
        method: Set(entry.method),
        resource_type: Set(entry.resource_type),
        resource_id: Set(entry.resource_id),
        identifier: Set(entry.identifier),
        outcome: Set(entry.outcome),
        status: Set(i32::from(entry.status)),
        duration_ms: Set(i64::try_from(entry.duration_ms).unwrap_or(i64::MAX)),
        request_id: Set(entry.request_id),
        detail: Set(entry.detail),
        routed: Set(entry.routed.map(|v| v.to_string())),
    }
}

/// Rows per multi-row insert: 13 columns each, well inside SQLite's limit
/// on bound parameters.
const INSERT_ROWS: usize = 200;

pub(crate) async fn record(
    inner: &Inner,
    entries: Vec<(TenantStore, ProvisioningEntry)>,
) -> Result<()> {
    if entries.is_empty() {
        return Ok(());
    }
    let rows: Vec<provisioning_log::ActiveModel> = entries
        .into_iter()
        .map(|(store, entry)| row(&store, entry))
        .collect();
    write_txn!(inner, [], [rows], txn => {
        for chunk in rows.chunks(INSERT_ROWS) {
            provisioning_log::Entity::insert_many(chunk.to_vec())
                .exec_without_returning(txn)
                .await
                .map_err(dbx)?;
        }
        Ok(())
    })
}

pub(crate) async fn read(
    store: &TenantStore,
    query: &LogQuery,
) -> Result<Vec<(i64, ProvisioningEntry)>> {
    let limit = match query.limit {
        0 => DEFAULT_LIMIT,
        n => n.min(MAX_LIMIT),
    };
    let mut select = provisioning_log::Entity::find()
        .filter(provisioning_log::Column::TenantId.eq(store.tenant.id.to_string()));
    if let Some(since) = query.since {
        select = select.filter(provisioning_log::Column::At.gte(since));
    }
    if let Some(until) = query.until {
        select = select.filter(provisioning_log::Column::At.lt(until));
    }
    if let Some(outcome) = &query.outcome {
        select = select.filter(provisioning_log::Column::Outcome.eq(outcome.as_str()));
    }
    if let Some(rt) = &query.resource_type {
        select = select.filter(provisioning_log::Column::ResourceType.eq(rt.as_str()));
    }
    if let Some(rid) = &query.resource_id {
        select = select.filter(provisioning_log::Column::ResourceId.eq(rid.as_str()));
    }
    if let Some(before) = query.before_id {
        select = select.filter(provisioning_log::Column::Id.lt(before));
    }
    let rows = select
        .order_by_desc(provisioning_log::Column::Id)
        .limit(limit)
        .all(&store.inner.conn)
        .await
        .map_err(db)?;
    rows.into_iter()
        .map(|r| {
            let status = u16::try_from(r.status).map_err(|_| {
                StoreError::Internal(format!("log entry {} has status {}", r.id, r.status))
            })?;
            Ok((
                r.id,
                ProvisioningEntry {
                    at: r.at,
                    method: r.method,
                    resource_type: r.resource_type,
                    resource_id: r.resource_id,
                    identifier: r.identifier,
                    outcome: r.outcome,
                    status,
                    duration_ms: u64::try_from(r.duration_ms).unwrap_or(0),
                    request_id: r.request_id,
                    detail: r.detail,
                    // Written by this module as JSON; unreadable text (never
                    // expected) is shown as absent rather than failing the
                    // whole page.
                    routed: r.routed.and_then(|t| serde_json::from_str(&t).ok()),
                },
            ))
        })
        .collect()
}

pub(crate) async fn prune(inner: &Inner, before: DateTime<Utc>) -> Result<u64> {
    write_txn!(inner, [], [], txn => {
        let r = provisioning_log::Entity::delete_many()
            .filter(provisioning_log::Column::At.lt(before))
            .exec(txn)
            .await
            .map_err(dbx)?;
        Ok(r.rows_affected)
    })
}
