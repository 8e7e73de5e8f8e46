//! The quarantine guard's record (docs/quarantine-guard.md): per tenant
//! and minute, how many SCIM requests were answered and how many failed by
//! cause, and the distinct failing requests with their latest detail.
//! Gateways add to these rows; nothing is ever replaced. `minute` is
//! minutes since the Unix epoch, so both engines compare plain integers.

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
enum RequestHealth {
    Table,
    TenantId,
    Minute,
    Requests,
    Validation,
    Conflict,
    Auth,
    Throttled,
    Server,
    Timeout,
}

#[derive(DeriveIden)]
enum RequestFailures {
    Table,
    TenantId,
    Minute,
    Method,
    Route,
    Status,
    ScimType,
    Count,
    Detail,
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
        let count = |name: DynIden| {
            let mut c = ColumnDef::new(name);
            c.big_integer().not_null().default(0);
            c
        };
        m.create_table(
            Table::create()
                .table(RequestHealth::Table)
                .col(key(RequestHealth::TenantId.into_iden()))
                .col(
                    ColumnDef::new(RequestHealth::Minute)
                        .big_integer()
                        .not_null(),
                )
                .col(count(RequestHealth::Requests.into_iden()))
                .col(count(RequestHealth::Validation.into_iden()))
                .col(count(RequestHealth::Conflict.into_iden()))
                .col(count(RequestHealth::Auth.into_iden()))
                .col(count(RequestHealth::Throttled.into_iden()))
                .col(count(RequestHealth::Server.into_iden()))
                .col(count(RequestHealth::Timeout.into_iden()))
                .primary_key(
                    Index::create()
                        .col(RequestHealth::TenantId)
                        .col(RequestHealth::Minute),
                )
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_request_health_tenant")
                        .from(RequestHealth::Table, RequestHealth::TenantId)
                        .to(Tenants::Table, Tenants::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        // The fleet-wide read and the retention sweep go by minute.
        m.create_index(
            Index::create()
                .name("ix_request_health_minute")
                .table(RequestHealth::Table)
                .col(RequestHealth::Minute)
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(RequestFailures::Table)
                .col(key(RequestFailures::TenantId.into_iden()))
                .col(
                    ColumnDef::new(RequestFailures::Minute)
                        .big_integer()
                        .not_null(),
                )
                .col(ColumnDef::new(RequestFailures::Method).text().not_null())
                .col(ColumnDef::new(RequestFailures::Route).text().not_null())
                .col(
                    ColumnDef::new(RequestFailures::Status)
                        .big_integer()
                        .not_null(),
                )
                .col(ColumnDef::new(RequestFailures::ScimType).text().not_null())
                .col(count(RequestFailures::Count.into_iden()))
                .col(ColumnDef::new(RequestFailures::Detail).text().not_null())
                .primary_key(
                    Index::create()
                        .col(RequestFailures::TenantId)
                        .col(RequestFailures::Minute)
                        .col(RequestFailures::Method)
                        .col(RequestFailures::Route)
                        .col(RequestFailures::Status)
                        .col(RequestFailures::ScimType),
                )
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_request_failures_tenant")
                        .from(RequestFailures::Table, RequestFailures::TenantId)
                        .to(Tenants::Table, Tenants::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_request_failures_minute")
                .table(RequestFailures::Table)
                .col(RequestFailures::Minute)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(RequestFailures::Table).to_owned())
            .await?;
        m.drop_table(Table::drop().table(RequestHealth::Table).to_owned())
            .await
    }
}
