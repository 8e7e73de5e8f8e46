//! Setup links (docs/console.md): an expiring, revocable link a tenant's
//! operator or admin hands to the customer's IT admin, whose page shows
//! the tenant's SCIM URL and setup steps and lets its holder issue and
//! rotate the tenant's SCIM token, nothing else. Only a SHA-256 of the
//! link's secret is stored; `token_id` is the last token issued through
//! the link (rotation revokes it).

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum Tenants {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum SetupLinks {
    Table,
    Id,
    TenantId,
    Name,
    SecretHash,
    CreatedBy,
    CreatedAt,
    ExpiresAt,
    RevokedAt,
    LastUsedAt,
    TokenId,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let pg = m.get_database_backend() == DbBackend::Postgres;
        let key = |name: DynIden| {
            let mut c = ColumnDef::new(name);
            c.text().not_null();
            if pg {
                c.extra("COLLATE \"C\"");
            }
            c
        };
        m.create_table(
            Table::create()
                .table(SetupLinks::Table)
                .col(key(SetupLinks::Id.into_iden()).primary_key())
                .col(key(SetupLinks::TenantId.into_iden()))
                .col(ColumnDef::new(SetupLinks::Name).text().not_null())
                .col(key(SetupLinks::SecretHash.into_iden()).unique_key())
                .col(ColumnDef::new(SetupLinks::CreatedBy).text().not_null())
                .col(
                    ColumnDef::new(SetupLinks::CreatedAt)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(SetupLinks::ExpiresAt)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(SetupLinks::RevokedAt)
                        .timestamp_with_time_zone()
                        .null(),
                )
                .col(
                    ColumnDef::new(SetupLinks::LastUsedAt)
                        .timestamp_with_time_zone()
                        .null(),
                )
                .col(ColumnDef::new(SetupLinks::TokenId).text().null())
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_setup_links_tenant")
                        .from(SetupLinks::Table, SetupLinks::TenantId)
                        .to(Tenants::Table, Tenants::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_setup_links_tenant")
                .table(SetupLinks::Table)
                .col(SetupLinks::TenantId)
                .col(SetupLinks::CreatedAt)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(SetupLinks::Table).to_owned())
            .await
    }
}
