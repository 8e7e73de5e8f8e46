//! One durable job table for every kind of background work (role
//! recompute today; reconciliation, re-routing and re-sends next), replacing
//! `role_jobs`.
//!
//! A job is claimed under a lease (`lease_owner`, `lease_expires_at`):
//! every write its holder makes is conditional on still holding it, so a
//! worker that lost the job to a takeover cannot overwrite the new
//! holder's work. `run_after` delays a retry (backoff). `coalesce_key`
//! names work that a newer request replaces: at most one *queued* job per
//! key (a partial unique index, the same SQL on both engines), whose
//! payload a newer request updates instead of queueing another.
//!
//! Existing `role_jobs` rows are copied as jobs of kind `role_recompute`
//! (payload `{"policy_version": N}`); a running one keeps running with an
//! already expired lease and no owner, so the next worker takes it over.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

/// Attempts a copied role job may make (the store's default for the kind).
const COPIED_MAX_ATTEMPTS: i64 = 3;

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
                .table(Jobs::Table)
                .col(cols.key(Jobs::Id).primary_key())
                .col(cols.key_null(Jobs::TenantId))
                .col(cols.key(Jobs::Kind))
                .col(ColumnDef::new(Jobs::Payload).text().not_null())
                .col(cols.key(Jobs::Status))
                .col(ColumnDef::new(Jobs::Attempts).big_integer().not_null())
                .col(ColumnDef::new(Jobs::MaxAttempts).big_integer().not_null())
                .col(ts(Jobs::RunAfter))
                .col(cols.key_null(Jobs::LeaseOwner))
                .col(ts_null(Jobs::LeaseExpiresAt))
                .col(ts_null(Jobs::HeartbeatAt))
                .col(ColumnDef::new(Jobs::Total).big_integer().not_null())
                .col(ColumnDef::new(Jobs::Processed).big_integer().not_null())
                .col(ColumnDef::new(Jobs::Changed).big_integer().not_null())
                .col(ColumnDef::new(Jobs::Result).text().null())
                .col(ColumnDef::new(Jobs::Error).text().null())
                .col(ts(Jobs::CreatedAt))
                .col(ts_null(Jobs::StartedAt))
                .col(ts_null(Jobs::FinishedAt))
                .col(cols.key_null(Jobs::CoalesceKey))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_jobs_tenant")
                        .from(Jobs::Table, Jobs::TenantId)
                        .to(Tenants::Table, Tenants::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        // A worker's "next claimable job": queued ones by `run_after`,
        // running ones (takeover) by `lease_expires_at`.
        m.create_index(
            Index::create()
                .name("ix_jobs_claim")
                .table(Jobs::Table)
                .col(Jobs::Status)
                .col(Jobs::RunAfter)
                .to_owned(),
        )
        .await?;
        // "The jobs of my tenant of this kind, newest first".
        m.create_index(
            Index::create()
                .name("ix_jobs_tenant")
                .table(Jobs::Table)
                .col(Jobs::TenantId)
                .col(Jobs::Kind)
                .col(Jobs::Id)
                .to_owned(),
        )
        .await?;

        let db = m.get_connection();
        // Written out: sea-query's index builder has no partial indexes on
        // both engines, and this statement is the same SQL on each.
        db.execute_unprepared(
            "CREATE UNIQUE INDEX ux_jobs_coalesce ON jobs (coalesce_key) \
             WHERE status = 'queued'",
        )
        .await?;

        // `||` concatenates text on both engines; the CASTs keep
        // PostgreSQL from having to guess operand types.
        db.execute_unprepared(&format!(
            "INSERT INTO jobs (id, tenant_id, kind, payload, status, attempts, max_attempts, \
                run_after, lease_owner, lease_expires_at, heartbeat_at, total, processed, \
                changed, result, error, created_at, started_at, finished_at, coalesce_key) \
             SELECT id, tenant_id, 'role_recompute', \
                '{{\"policy_version\":' || CAST(policy_version AS TEXT) || '}}', \
                status, \
                CASE WHEN started_at IS NULL THEN 0 ELSE 1 END, \
                {COPIED_MAX_ATTEMPTS}, \
                created_at, NULL, \
                CASE WHEN status = 'running' \
                    THEN COALESCE(heartbeat_at, started_at, created_at) END, \
                heartbeat_at, total, processed, changed, NULL, error, \
                created_at, started_at, finished_at, \
                'role_recompute:' || CAST(tenant_id AS TEXT) \
             FROM role_jobs"
        ))
        .await?;
        m.drop_table(Table::drop().table(RoleJobs::Table).to_owned())
            .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let pg = m.get_database_backend() == DbBackend::Postgres;
        let cols = Cols { pg };
        // `role_jobs` as m0004 created it.
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
        for (name, col) in [
            ("ix_role_jobs_status", RoleJobs::Status),
            ("ix_role_jobs_tenant", RoleJobs::TenantId),
        ] {
            m.create_index(
                Index::create()
                    .name(name)
                    .table(RoleJobs::Table)
                    .col(col)
                    .col(RoleJobs::CreatedAt)
                    .to_owned(),
            )
            .await?;
        }
        // Role jobs go back (a cancelled one as failed: the old schema has
        // no such status); other kinds have nowhere to go.
        let version = if pg {
            "CAST(CAST(payload AS jsonb) ->> 'policy_version' AS BIGINT)"
        } else {
            "CAST(json_extract(payload, '$.policy_version') AS INTEGER)"
        };
        m.get_connection()
            .execute_unprepared(&format!(
                "INSERT INTO role_jobs (id, tenant_id, status, policy_version, total, processed, \
                    changed, error, created_at, started_at, finished_at, heartbeat_at) \
                 SELECT id, tenant_id, \
                    CASE WHEN status = 'cancelled' THEN 'failed' ELSE status END, \
                    {version}, total, processed, changed, error, created_at, started_at, \
                    finished_at, heartbeat_at \
                 FROM jobs WHERE kind = 'role_recompute' AND tenant_id IS NOT NULL"
            ))
            .await?;
        m.drop_table(Table::drop().table(Jobs::Table).to_owned())
            .await?;
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
enum Jobs {
    Table,
    Id,
    TenantId,
    Kind,
    Payload,
    Status,
    Attempts,
    MaxAttempts,
    RunAfter,
    LeaseOwner,
    LeaseExpiresAt,
    HeartbeatAt,
    Total,
    Processed,
    Changed,
    Result,
    Error,
    CreatedAt,
    StartedAt,
    FinishedAt,
    CoalesceKey,
}

#[derive(DeriveIden, Clone, Copy)]
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
