//! The admin API's own state: tenant administrators' logins, the audit log
//! of every administrative change, and role recompute jobs.
//!
//! `admin_audit` has no foreign key to `tenants`: the record of who deleted
//! a tenant must outlive the tenant. `role_jobs` rows are the durable queue
//! of tenant-wide role recomputes; a job is written in the same transaction
//! as the policy change that needs it, so no change is ever left
//! unapplied by a crash.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let pg = m.get_database_backend() == DbBackend::Postgres;
        let cols = Cols { pg };

        m.create_table(
            Table::create()
                .table(TenantAdmins::Table)
                .col(cols.key(TenantAdmins::Id).primary_key())
                .col(cols.key(TenantAdmins::TenantId))
                .col(ColumnDef::new(TenantAdmins::Email).text().not_null())
                .col(cols.key(TenantAdmins::EmailNorm))
                .col(ColumnDef::new(TenantAdmins::PasswordHash).text().not_null())
                .col(ts(TenantAdmins::CreatedAt))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_tenant_admins_tenant")
                        .from(TenantAdmins::Table, TenantAdmins::TenantId)
                        .to(Tenants::Table, Tenants::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ux_tenant_admins_email")
                .table(TenantAdmins::Table)
                .col(TenantAdmins::TenantId)
                .col(TenantAdmins::EmailNorm)
                .unique()
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(AdminAudit::Table)
                .col(
                    ColumnDef::new(AdminAudit::Id)
                        .big_integer()
                        .not_null()
                        .auto_increment()
                        .primary_key(),
                )
                .col(cols.key_null(AdminAudit::TenantId))
                .col(ts(AdminAudit::At))
                .col(cols.key(AdminAudit::Actor))
                .col(cols.key(AdminAudit::Action))
                .col(ColumnDef::new(AdminAudit::Target).text().not_null())
                .col(ColumnDef::new(AdminAudit::Detail).text().not_null())
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_admin_audit_tenant")
                .table(AdminAudit::Table)
                .col(AdminAudit::TenantId)
                .col(AdminAudit::Id)
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(RoleJobs::Table)
                .col(cols.key(RoleJobs::Id).primary_key())
                .col(cols.key(RoleJobs::TenantId))
                .col(cols.key(RoleJobs::Status))
                .col(
                    ColumnDef::new(RoleJobs::PolicyVersion)
                        .big_integer()
                        .not_null(),
                )
                .col(ColumnDef::new(RoleJobs::Total).big_integer().not_null())
                .col(ColumnDef::new(RoleJobs::Processed).big_integer().not_null())
                .col(ColumnDef::new(RoleJobs::Changed).big_integer().not_null())
                .col(ColumnDef::new(RoleJobs::Error).text().null())
                .col(ts(RoleJobs::CreatedAt))
                .col(ts_null(RoleJobs::StartedAt))
                .col(ts_null(RoleJobs::FinishedAt))
                .col(ts_null(RoleJobs::HeartbeatAt))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_role_jobs_tenant")
                        .from(RoleJobs::Table, RoleJobs::TenantId)
                        .to(Tenants::Table, Tenants::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        // The worker's "next job" and an admin's "jobs of my tenant".
        m.create_index(
            Index::create()
                .name("ix_role_jobs_status")
                .table(RoleJobs::Table)
                .col(RoleJobs::Status)
                .col(RoleJobs::CreatedAt)
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_role_jobs_tenant")
                .table(RoleJobs::Table)
                .col(RoleJobs::TenantId)
                .col(RoleJobs::CreatedAt)
                .to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            RoleJobs::Table.into_iden(),
            AdminAudit::Table.into_iden(),
            TenantAdmins::Table.into_iden(),
        ] {
            m.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}

/// Column builders that differ by engine (each step keeps its own copy;
/// steps are frozen once released).
struct Cols {
    pg: bool,
}

impl Cols {
    /// A text column that is compared or sorted: ids, names.
    fn key<T: IntoIden>(&self, name: T) -> ColumnDef {
        let mut c = ColumnDef::new(name);
        c.text().not_null();
        if self.pg {
            c.extra("COLLATE \"C\"");
        }
        c
    }

    /// A nullable [`Cols::key`].
    fn key_null<T: IntoIden>(&self, name: T) -> ColumnDef {
        let mut c = ColumnDef::new(name);
        c.text().null();
        if self.pg {
            c.extra("COLLATE \"C\"");
        }
        c
    }
}

fn ts<T: IntoIden>(name: T) -> ColumnDef {
    ColumnDef::new(name)
        .timestamp_with_time_zone()
        .not_null()
        .to_owned()
}

fn ts_null<T: IntoIden>(name: T) -> ColumnDef {
    ColumnDef::new(name)
        .timestamp_with_time_zone()
        .null()
        .to_owned()
}

#[derive(DeriveIden)]
enum Tenants {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum TenantAdmins {
    Table,
    Id,
    TenantId,
    Email,
    EmailNorm,
    PasswordHash,
    CreatedAt,
}

#[derive(DeriveIden)]
enum AdminAudit {
    Table,
    Id,
    TenantId,
    At,
    Actor,
    Action,
    Target,
    Detail,
}

#[derive(DeriveIden)]
enum RoleJobs {
    Table,
    Id,
    TenantId,
    Status,
    PolicyVersion,
    Total,
    Processed,
    Changed,
    Error,
    CreatedAt,
    StartedAt,
    FinishedAt,
    HeartbeatAt,
}
