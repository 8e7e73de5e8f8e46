//! An outbound SCIM target's profile of its application's limits
//! (docs/connect-your-application.md): a nullable `profile` column on
//! `targets`, JSON (null: the defaults).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum Targets {
    Table,
    Profile,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(Targets::Table)
                .add_column(ColumnDef::new(Targets::Profile).text().null())
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(Targets::Table)
                .drop_column(Targets::Profile)
                .to_owned(),
        )
        .await
    }
}
