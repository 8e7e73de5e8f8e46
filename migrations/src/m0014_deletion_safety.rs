//! Deletion safety (docs/deletion-safety.md):
//!
//! - `deletion_safety`: one row per tenant that has one: its policy (JSON,
//!   null: the defaults) with a version, and the window that counts the
//!   deletions and deactivations let through (when it started, how many),
//!   and whether the threshold has tripped.
//! - `held_changes`: deletions and deactivations held for a tenant admin
//!   (the threshold tripped, or the user is protected): the events they
//!   would have written, stored instead of the event log.
//! - `protected_users`: users whose deletion or deactivation waits for a
//!   tenant admin's confirmation.
//! - `deleted_users`: soft-deleted users, restorable with the same id
//!   until `purge_after`.
//!
//! Every table goes with its tenant.

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
enum DeletionSafety {
    Table,
    TenantId,
    Policy,
    Version,
    WindowStartedAt,
    WindowCount,
    Tripped,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum HeldChanges {
    Table,
    Id,
    TenantId,
    UserId,
    Reason,
    EventType,
    Payload,
    CreatedAt,
}

#[derive(DeriveIden)]
enum ProtectedUsers {
    Table,
    TenantId,
    UserId,
    Reason,
    Actor,
    CreatedAt,
}

#[derive(DeriveIden)]
enum DeletedUsers {
    Table,
    TenantId,
    Id,
    UserName,
    Document,
    Version,
    Groups,
    DeletedAt,
    PurgeAfter,
}

fn tenant_fk<T: IntoIden, C: IntoIden>(
    name: &str,
    table: T,
    column: C,
) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(name)
        .from(table, column)
        .to(Tenants::Table, Tenants::Id)
        .on_delete(ForeignKeyAction::Cascade)
        .to_owned()
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
        let ts = |name: DynIden| {
            let mut c = ColumnDef::new(name);
            c.timestamp_with_time_zone().not_null();
            c
        };

        m.create_table(
            Table::create()
                .table(DeletionSafety::Table)
                .col(key(DeletionSafety::TenantId.into_iden()).primary_key())
                .col(ColumnDef::new(DeletionSafety::Policy).text().null())
                .col(
                    ColumnDef::new(DeletionSafety::Version)
                        .big_integer()
                        .not_null()
                        .default(0),
                )
                .col(
                    ColumnDef::new(DeletionSafety::WindowStartedAt)
                        .timestamp_with_time_zone()
                        .null(),
                )
                .col(
                    ColumnDef::new(DeletionSafety::WindowCount)
                        .big_integer()
                        .not_null()
                        .default(0),
                )
                .col(
                    ColumnDef::new(DeletionSafety::Tripped)
                        .boolean()
                        .not_null()
                        .default(false),
                )
                .col(ts(DeletionSafety::UpdatedAt.into_iden()))
                .foreign_key(&mut tenant_fk(
                    "fk_deletion_safety_tenant",
                    DeletionSafety::Table,
                    DeletionSafety::TenantId,
                ))
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(HeldChanges::Table)
                .col(
                    ColumnDef::new(HeldChanges::Id)
                        .big_integer()
                        .not_null()
                        .auto_increment()
                        .primary_key(),
                )
                .col(key(HeldChanges::TenantId.into_iden()))
                .col(key(HeldChanges::UserId.into_iden()))
                .col(ColumnDef::new(HeldChanges::Reason).text().not_null())
                .col(ColumnDef::new(HeldChanges::EventType).text().not_null())
                .col(ColumnDef::new(HeldChanges::Payload).text().not_null())
                .col(ts(HeldChanges::CreatedAt.into_iden()))
                .foreign_key(&mut tenant_fk(
                    "fk_held_changes_tenant",
                    HeldChanges::Table,
                    HeldChanges::TenantId,
                ))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_held_changes_tenant")
                .table(HeldChanges::Table)
                .col(HeldChanges::TenantId)
                .col(HeldChanges::UserId)
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(ProtectedUsers::Table)
                .col(key(ProtectedUsers::TenantId.into_iden()))
                .col(key(ProtectedUsers::UserId.into_iden()))
                .col(ColumnDef::new(ProtectedUsers::Reason).text().not_null())
                .col(ColumnDef::new(ProtectedUsers::Actor).text().not_null())
                .col(ts(ProtectedUsers::CreatedAt.into_iden()))
                .primary_key(
                    Index::create()
                        .col(ProtectedUsers::TenantId)
                        .col(ProtectedUsers::UserId),
                )
                .foreign_key(&mut tenant_fk(
                    "fk_protected_users_tenant",
                    ProtectedUsers::Table,
                    ProtectedUsers::TenantId,
                ))
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(DeletedUsers::Table)
                .col(key(DeletedUsers::TenantId.into_iden()))
                .col(key(DeletedUsers::Id.into_iden()))
                .col(ColumnDef::new(DeletedUsers::UserName).text().not_null())
                .col(ColumnDef::new(DeletedUsers::Document).text().not_null())
                .col(
                    ColumnDef::new(DeletedUsers::Version)
                        .big_integer()
                        .not_null(),
                )
                .col(ColumnDef::new(DeletedUsers::Groups).text().not_null())
                .col(ts(DeletedUsers::DeletedAt.into_iden()))
                .col(ts(DeletedUsers::PurgeAfter.into_iden()))
                .primary_key(
                    Index::create()
                        .col(DeletedUsers::TenantId)
                        .col(DeletedUsers::Id),
                )
                .foreign_key(&mut tenant_fk(
                    "fk_deleted_users_tenant",
                    DeletedUsers::Table,
                    DeletedUsers::TenantId,
                ))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_deleted_users_purge")
                .table(DeletedUsers::Table)
                .col(DeletedUsers::PurgeAfter)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            DeletedUsers::Table.into_iden(),
            ProtectedUsers::Table.into_iden(),
            HeldChanges::Table.into_iden(),
            DeletionSafety::Table.into_iden(),
        ] {
            m.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}
