//! Delivery attempts lose their per-resource index.
//!
//! Every delivered event writes one attempt row, so each index on
//! `delivery_attempts` is one more b-tree insert per event on the write
//! path the gateway shares. The other indexes grow at their right edge
//! (ids, event ids and times only increase), but `(tenant, resource, id)`
//! takes each insert at a random place: on SQLite a round of a few hundred
//! attempts dirtied about as many index pages, each written whole to the
//! WAL, which measurably slowed the SCIM traffic beside it. A resource's
//! attempts (the timeline) are now found through its events instead: the
//! event log's `(tenant, resource)` index, then the attempts' event index.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum DeliveryAttempts {
    Table,
    TenantId,
    ResourceId,
    Id,
}

const NAME: &str = "ix_delivery_attempts_resource";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_index(
            Index::drop()
                .name(NAME)
                .table(DeliveryAttempts::Table)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_index(
            Index::create()
                .name(NAME)
                .table(DeliveryAttempts::Table)
                .col(DeliveryAttempts::TenantId)
                .col(DeliveryAttempts::ResourceId)
                .col(DeliveryAttempts::Id)
                .to_owned(),
        )
        .await
    }
}
