//! The outbox becomes the event log: `event_log` replaces `outbox`.
//!
//! What changes:
//! - **No foreign key to the tenant.** Deleting a tenant used to cascade
//!   away its undelivered events; now the deletion writes events of its
//!   own and the log keeps every row until retention removes it.
//! - **A commit-ordered `position`**, the cursor every reader pages by.
//!   The row `id` is the insertion order, which on PostgreSQL is not the
//!   commit order: a transaction can take id 10 and commit after another
//!   took id 11, and a reader that had passed 11 would never see 10. So
//!   rows are written with `position` NULL and a sequencer (one at a
//!   time, under an advisory lock) numbers committed rows afterwards; a
//!   reader only ever sees numbered rows, and numbers only grow. On SQLite
//!   writers are serial, so the writer numbers rows as it inserts them.
//! - **`schema_version`** of the payload, so a reader can tell old
//!   payloads from new ones.
//!
//! Existing rows are copied with `position = id` (they were read in id
//! order before).

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum EventLog {
    Table,
    Id,
    Position,
    TenantId,
    EventType,
    ResourceType,
    ResourceId,
    SchemaVersion,
    Payload,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Outbox {
    Table,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let pg = m.get_database_backend() == DbBackend::Postgres;
        let key = |name: EventLog| {
            let mut c = ColumnDef::new(name);
            c.text().not_null();
            if pg {
                c.extra("COLLATE \"C\"");
            }
            c
        };
        m.create_table(
            Table::create()
                .table(EventLog::Table)
                .col(
                    ColumnDef::new(EventLog::Id)
                        .big_integer()
                        .not_null()
                        .auto_increment()
                        .primary_key(),
                )
                .col(ColumnDef::new(EventLog::Position).big_integer().null())
                .col(key(EventLog::TenantId))
                .col(ColumnDef::new(EventLog::EventType).text().not_null())
                .col(ColumnDef::new(EventLog::ResourceType).text().not_null())
                .col(key(EventLog::ResourceId))
                .col(
                    ColumnDef::new(EventLog::SchemaVersion)
                        .integer()
                        .not_null()
                        .default(1),
                )
                .col(ColumnDef::new(EventLog::Payload).text().not_null())
                .col(
                    ColumnDef::new(EventLog::CreatedAt)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .to_owned(),
        )
        .await?;
        let db = m.get_connection();
        db.execute_unprepared(
            "INSERT INTO event_log (id, position, tenant_id, event_type, resource_type, \
             resource_id, schema_version, payload, created_at) \
             SELECT id, id, tenant_id, event_type, resource_type, resource_id, 1, payload, \
             created_at FROM outbox",
        )
        .await?;
        if pg {
            // The copied ids were inserted explicitly: move the sequence on.
            db.execute_unprepared(
                "SELECT setval(pg_get_serial_sequence('event_log', 'id'), \
                 GREATEST((SELECT MAX(id) FROM event_log), 1))",
            )
            .await?;
        }
        m.drop_table(Table::drop().table(Outbox::Table).to_owned())
            .await?;
        // Readers page by position, globally (the delivery worker) and per
        // tenant (the event feed); the timeline reads one resource's rows.
        m.create_index(
            Index::create()
                .name("ux_event_log_position")
                .table(EventLog::Table)
                .col(EventLog::Position)
                .unique()
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_event_log_tenant")
                .table(EventLog::Table)
                .col(EventLog::TenantId)
                .col(EventLog::Position)
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_event_log_resource")
                .table(EventLog::Table)
                .col(EventLog::TenantId)
                .col(EventLog::ResourceId)
                .col(EventLog::Id)
                .to_owned(),
        )
        .await?;
        if pg {
            // The sequencer's work list: rows not numbered yet, in id order.
            db.execute_unprepared(
                "CREATE INDEX ix_event_log_unsequenced ON event_log (id) WHERE position IS NULL",
            )
            .await?;
        }
        Ok(())
    }

    async fn down(&self, _m: &SchemaManager) -> Result<(), DbErr> {
        // Going back would squeeze typed, tenant-less history into the old
        // outbox and lose what the deletion of a tenant wrote: restore a
        // backup instead.
        Err(DbErr::Migration(
            "m0006_event_log cannot be reverted; restore a backup taken before it".into(),
        ))
    }
}
