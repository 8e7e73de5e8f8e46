//! Each delivery target's attribute mapping (docs/mappings.md).
//!
//! Two columns on `targets`: `mapping`, the mapping as JSON (null: the
//! application receives documents as stored), and `mapping_version`,
//! which grows with every change so `If-Match` can guard one (0: never
//! set).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum Targets {
    Table,
    Mapping,
    MappingVersion,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // SQLite alters one column per statement.
        m.alter_table(
            Table::alter()
                .table(Targets::Table)
                .add_column(ColumnDef::new(Targets::Mapping).text().null())
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Targets::Table)
                .add_column(
                    ColumnDef::new(Targets::MappingVersion)
                        .big_integer()
                        .not_null()
                        .default(0),
                )
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for column in [Targets::MappingVersion, Targets::Mapping] {
            m.alter_table(
                Table::alter()
                    .table(Targets::Table)
                    .drop_column(column)
                    .to_owned(),
            )
            .await?;
        }
        Ok(())
    }
}
