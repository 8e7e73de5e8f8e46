//! The provisioning log says where a super tenant's write was routed.
//!
//! A nullable `routed` column on `provisioning_log`: for a write on a
//! super tenant, the copies it changed in child tenants, as a JSON array
//! of `{child, resourceType, sourceId, copyId, action, rules}` (the rules
//! are the "why"). Other entries leave it null.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum ProvisioningLog {
    Table,
    Routed,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(ProvisioningLog::Table)
                .add_column(ColumnDef::new(ProvisioningLog::Routed).text().null())
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(ProvisioningLog::Table)
                .drop_column(ProvisioningLog::Routed)
                .to_owned(),
        )
        .await
    }
}
