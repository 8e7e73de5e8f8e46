//! Delivery to applications: targets, the deliveries that wait (retries,
//! events held behind them, dead letters), every attempt, and the remote
//! ids of resources pushed over outbound SCIM.
//!
//! Rows carry their tenant but have no foreign key to it: when a tenant is
//! deleted its applications still receive the deletion events it wrote,
//! and the worker removes its targets once they have nothing left to send.
//! A target's own rows do cascade with the target.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum Targets {
    Table,
    Id,
    TenantId,
    Name,
    Kind,
    Url,
    EventTypes,
    Enabled,
    DisabledReason,
    DisabledAt,
    Secret,
    PreviousSecret,
    PreviousSecretUntil,
    Cursor,
    FailingSince,
    LastSuccessAt,
    LastFailureAt,
    LastError,
    LeaseOwner,
    LeaseUntil,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Deliveries {
    Table,
    Id,
    TargetId,
    TenantId,
    EventId,
    Position,
    ResourceId,
    Status,
    Attempts,
    NextAttemptAt,
    LastStatus,
    LastError,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum DeliveryAttempts {
    Table,
    Id,
    TargetId,
    TenantId,
    EventId,
    ResourceId,
    Attempt,
    At,
    StatusCode,
    Outcome,
    LatencyMs,
    Response,
    Error,
}

#[derive(DeriveIden)]
enum RemoteIds {
    Table,
    TargetId,
    ResourceType,
    LocalId,
    RemoteId,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let pg = m.get_database_backend() == DbBackend::Postgres;
        // Compared and sorted text uses the "C" collation on PostgreSQL,
        // as everywhere else in the schema.
        let key = |name: DynIden| {
            let mut c = ColumnDef::new(name);
            c.text().not_null();
            if pg {
                c.extra("COLLATE \"C\"");
            }
            c
        };
        let ts = |name: DynIden, null: bool| {
            let mut c = ColumnDef::new(name);
            c.timestamp_with_time_zone();
            if null {
                c.null();
            } else {
                c.not_null();
            }
            c
        };
        m.create_table(
            Table::create()
                .table(Targets::Table)
                .col(key(Targets::Id.into_iden()).primary_key())
                .col(key(Targets::TenantId.into_iden()))
                .col(ColumnDef::new(Targets::Name).text().not_null())
                .col(ColumnDef::new(Targets::Kind).text().not_null())
                .col(ColumnDef::new(Targets::Url).text().not_null())
                .col(ColumnDef::new(Targets::EventTypes).text().not_null())
                .col(ColumnDef::new(Targets::Enabled).boolean().not_null())
                .col(ColumnDef::new(Targets::DisabledReason).text().null())
                .col(ts(Targets::DisabledAt.into_iden(), true))
                .col(ColumnDef::new(Targets::Secret).text().not_null())
                .col(ColumnDef::new(Targets::PreviousSecret).text().null())
                .col(ts(Targets::PreviousSecretUntil.into_iden(), true))
                .col(ColumnDef::new(Targets::Cursor).big_integer().not_null())
                .col(ts(Targets::FailingSince.into_iden(), true))
                .col(ts(Targets::LastSuccessAt.into_iden(), true))
                .col(ts(Targets::LastFailureAt.into_iden(), true))
                .col(ColumnDef::new(Targets::LastError).text().null())
                .col(ColumnDef::new(Targets::LeaseOwner).text().null())
                .col(ts(Targets::LeaseUntil.into_iden(), true))
                .col(ts(Targets::CreatedAt.into_iden(), false))
                .col(ts(Targets::UpdatedAt.into_iden(), false))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ux_targets_tenant_name")
                .table(Targets::Table)
                .col(Targets::TenantId)
                .col(Targets::Name)
                .unique()
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Deliveries::Table)
                .col(
                    ColumnDef::new(Deliveries::Id)
                        .big_integer()
                        .not_null()
                        .auto_increment()
                        .primary_key(),
                )
                .col(key(Deliveries::TargetId.into_iden()))
                .col(key(Deliveries::TenantId.into_iden()))
                .col(ColumnDef::new(Deliveries::EventId).big_integer().not_null())
                .col(
                    ColumnDef::new(Deliveries::Position)
                        .big_integer()
                        .not_null(),
                )
                .col(key(Deliveries::ResourceId.into_iden()))
                .col(ColumnDef::new(Deliveries::Status).text().not_null())
                .col(ColumnDef::new(Deliveries::Attempts).integer().not_null())
                .col(ts(Deliveries::NextAttemptAt.into_iden(), false))
                .col(ColumnDef::new(Deliveries::LastStatus).integer().null())
                .col(ColumnDef::new(Deliveries::LastError).text().null())
                .col(ts(Deliveries::CreatedAt.into_iden(), false))
                .col(ts(Deliveries::UpdatedAt.into_iden(), false))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_deliveries_target")
                        .from(Deliveries::Table, Deliveries::TargetId)
                        .to(Targets::Table, Targets::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        for (name, cols, unique) in [
            (
                "ux_deliveries_event",
                vec![Deliveries::TargetId, Deliveries::EventId],
                true,
            ),
            // The head of each resource's queue, and due work.
            (
                "ix_deliveries_resource",
                vec![
                    Deliveries::TargetId,
                    Deliveries::ResourceId,
                    Deliveries::Position,
                ],
                false,
            ),
            (
                "ix_deliveries_due",
                vec![
                    Deliveries::TargetId,
                    Deliveries::Status,
                    Deliveries::NextAttemptAt,
                ],
                false,
            ),
        ] {
            let mut ix = Index::create();
            ix.name(name).table(Deliveries::Table);
            for c in cols {
                ix.col(c);
            }
            if unique {
                ix.unique();
            }
            m.create_index(ix.to_owned()).await?;
        }

        m.create_table(
            Table::create()
                .table(DeliveryAttempts::Table)
                .col(
                    ColumnDef::new(DeliveryAttempts::Id)
                        .big_integer()
                        .not_null()
                        .auto_increment()
                        .primary_key(),
                )
                .col(key(DeliveryAttempts::TargetId.into_iden()))
                .col(key(DeliveryAttempts::TenantId.into_iden()))
                .col(
                    ColumnDef::new(DeliveryAttempts::EventId)
                        .big_integer()
                        .not_null(),
                )
                .col(key(DeliveryAttempts::ResourceId.into_iden()))
                .col(
                    ColumnDef::new(DeliveryAttempts::Attempt)
                        .integer()
                        .not_null(),
                )
                .col(ts(DeliveryAttempts::At.into_iden(), false))
                .col(
                    ColumnDef::new(DeliveryAttempts::StatusCode)
                        .integer()
                        .null(),
                )
                .col(ColumnDef::new(DeliveryAttempts::Outcome).text().not_null())
                .col(
                    ColumnDef::new(DeliveryAttempts::LatencyMs)
                        .big_integer()
                        .not_null(),
                )
                .col(ColumnDef::new(DeliveryAttempts::Response).text().null())
                .col(ColumnDef::new(DeliveryAttempts::Error).text().null())
                .to_owned(),
        )
        .await?;
        for (name, cols) in [
            (
                "ix_delivery_attempts_target",
                vec![DeliveryAttempts::TargetId, DeliveryAttempts::Id],
            ),
            (
                "ix_delivery_attempts_event",
                vec![DeliveryAttempts::EventId, DeliveryAttempts::Id],
            ),
            (
                "ix_delivery_attempts_resource",
                vec![
                    DeliveryAttempts::TenantId,
                    DeliveryAttempts::ResourceId,
                    DeliveryAttempts::Id,
                ],
            ),
            // Retention prunes by age.
            ("ix_delivery_attempts_at", vec![DeliveryAttempts::At]),
        ] {
            let mut ix = Index::create();
            ix.name(name).table(DeliveryAttempts::Table);
            for c in cols {
                ix.col(c);
            }
            m.create_index(ix.to_owned()).await?;
        }

        m.create_table(
            Table::create()
                .table(RemoteIds::Table)
                .col(key(RemoteIds::TargetId.into_iden()))
                .col(key(RemoteIds::ResourceType.into_iden()))
                .col(key(RemoteIds::LocalId.into_iden()))
                .col(ColumnDef::new(RemoteIds::RemoteId).text().not_null())
                .primary_key(
                    Index::create()
                        .col(RemoteIds::TargetId)
                        .col(RemoteIds::ResourceType)
                        .col(RemoteIds::LocalId),
                )
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_remote_ids_target")
                        .from(RemoteIds::Table, RemoteIds::TargetId)
                        .to(Targets::Table, Targets::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            RemoteIds::Table.into_iden(),
            DeliveryAttempts::Table.into_iden(),
            Deliveries::Table.into_iden(),
            Targets::Table.into_iden(),
        ] {
            m.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}
