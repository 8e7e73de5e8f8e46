//! The initial schema: tenants and their tokens, operators, the directory
//! (users, their e-mail index, groups, memberships), the provisioning log and
//! the outbox.
//!
//! Conventions, on both engines:
//! - ids are UUID strings (text), so a SCIM `id` filter (`co`, `sw`, `gt`)
//!   is a plain string comparison wherever it runs;
//! - every directory row carries `tenant_id`, and every index starts with it;
//! - `*_norm` columns hold the lower-cased value of a case-insensitive
//!   attribute (computed in Rust, exactly as the filter evaluator lower-cases),
//!   so uniqueness and filters need no database-specific case folding;
//! - on PostgreSQL the text columns that are compared or sorted use the "C"
//!   collation: SCIM orders strings by code point, as SQLite's BINARY does,
//!   not by the server's locale;
//! - timestamps are `timestamp with time zone`, always written in UTC;
//! - documents are JSON text, kept byte-for-byte as written (attribute order
//!   included, which PostgreSQL's jsonb would not keep).

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

/// Creates every table of schema version 1.
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0001_initial"
    }
}

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
                .table(Tenants::Table)
                .col(cols.key(Tenants::Id).primary_key())
                .col(cols.key(Tenants::Slug).unique_key())
                .col(ColumnDef::new(Tenants::Name).text().not_null())
                .col(ColumnDef::new(Tenants::Kind).text().not_null())
                .col(ColumnDef::new(Tenants::Status).text().not_null())
                .col(ts(Tenants::CreatedAt))
                .col(ts(Tenants::UpdatedAt))
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Tokens::Table)
                .col(cols.key(Tokens::Id).primary_key())
                .col(cols.key(Tokens::TenantId))
                .col(ColumnDef::new(Tokens::Name).text().not_null())
                .col(ColumnDef::new(Tokens::SecretHash).text().not_null())
                .col(ColumnDef::new(Tokens::Scopes).text().not_null())
                .col(ts(Tokens::CreatedAt))
                .col(ts_null(Tokens::ExpiresAt))
                .col(ts_null(Tokens::RevokedAt))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_tokens_tenant")
                        .from(Tokens::Table, Tokens::TenantId)
                        .to(Tenants::Table, Tenants::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        index(m, "ix_tokens_tenant", Tokens::Table, [Tokens::TenantId]).await?;

        // One row, bumped whenever cached authentications may have become
        // wrong (token revoked, tenant suspended or deleted).
        m.create_table(
            Table::create()
                .table(AuthRevision::Table)
                .col(
                    ColumnDef::new(AuthRevision::Id)
                        .integer()
                        .not_null()
                        .primary_key(),
                )
                .col(
                    ColumnDef::new(AuthRevision::Revision)
                        .big_integer()
                        .not_null(),
                )
                .to_owned(),
        )
        .await?;
        let seed = Query::insert()
            .into_table(AuthRevision::Table)
            .columns([AuthRevision::Id, AuthRevision::Revision])
            .values([1i32.into(), 0i64.into()])
            .map_err(|e| DbErr::Migration(e.to_string()))?
            .to_owned();
        m.exec_stmt(seed).await?;

        m.create_table(
            Table::create()
                .table(Operators::Table)
                .col(cols.key(Operators::Id).primary_key())
                .col(ColumnDef::new(Operators::Email).text().not_null())
                .col(cols.key(Operators::EmailNorm).unique_key())
                .col(ColumnDef::new(Operators::PasswordHash).text().not_null())
                .col(ts(Operators::CreatedAt))
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Users::Table)
                .col(cols.key(Users::TenantId))
                .col(cols.key(Users::Id))
                .col(ColumnDef::new(Users::UserName).text().not_null())
                .col(cols.key(Users::UserNameNorm))
                .col(cols.key_null(Users::ExternalId))
                .col(ColumnDef::new(Users::DisplayName).text().null())
                .col(cols.key_null(Users::DisplayNameNorm))
                .col(ColumnDef::new(Users::Active).boolean().null())
                .col(ColumnDef::new(Users::Document).text().not_null())
                .col(ColumnDef::new(Users::Version).big_integer().not_null())
                .col(ts(Users::CreatedAt))
                .col(ts(Users::UpdatedAt))
                .primary_key(Index::create().col(Users::TenantId).col(Users::Id))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_users_tenant")
                        .from(Users::Table, Users::TenantId)
                        .to(Tenants::Table, Tenants::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        unique(
            m,
            "ux_users_user_name",
            Users::Table,
            [Users::TenantId, Users::UserNameNorm],
        )
        .await?;
        index(
            m,
            "ix_users_external_id",
            Users::Table,
            [Users::TenantId, Users::ExternalId],
        )
        .await?;
        index(
            m,
            "ix_users_display_name",
            Users::Table,
            [Users::TenantId, Users::DisplayNameNorm],
        )
        .await?;

        // One row per element of a user's `emails`, rewritten with the
        // document; `value_norm` is NULL for an element without a value.
        m.create_table(
            Table::create()
                .table(UserEmails::Table)
                .col(cols.key(UserEmails::TenantId))
                .col(cols.key(UserEmails::UserId))
                .col(ColumnDef::new(UserEmails::Position).integer().not_null())
                .col(cols.key_null(UserEmails::ValueNorm))
                .primary_key(
                    Index::create()
                        .col(UserEmails::TenantId)
                        .col(UserEmails::UserId)
                        .col(UserEmails::Position),
                )
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_user_emails_user")
                        .from(
                            UserEmails::Table,
                            (UserEmails::TenantId, UserEmails::UserId),
                        )
                        .to(Users::Table, (Users::TenantId, Users::Id))
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        index(
            m,
            "ix_user_emails_value",
            UserEmails::Table,
            [UserEmails::TenantId, UserEmails::ValueNorm],
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Groups::Table)
                .col(cols.key(Groups::TenantId))
                .col(cols.key(Groups::Id))
                .col(ColumnDef::new(Groups::DisplayName).text().not_null())
                .col(cols.key(Groups::DisplayNameNorm))
                .col(cols.key_null(Groups::ExternalId))
                .col(ColumnDef::new(Groups::Document).text().not_null())
                .col(ColumnDef::new(Groups::Version).big_integer().not_null())
                .col(ts(Groups::CreatedAt))
                .col(ts(Groups::UpdatedAt))
                .primary_key(Index::create().col(Groups::TenantId).col(Groups::Id))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_groups_tenant")
                        .from(Groups::Table, Groups::TenantId)
                        .to(Tenants::Table, Tenants::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        unique(
            m,
            "ux_groups_display_name",
            Groups::Table,
            [Groups::TenantId, Groups::DisplayNameNorm],
        )
        .await?;
        index(
            m,
            "ix_groups_external_id",
            Groups::Table,
            [Groups::TenantId, Groups::ExternalId],
        )
        .await?;

        // A member is a user or a group, so `member_id` has no foreign key;
        // the store removes a deleted resource's memberships itself.
        m.create_table(
            Table::create()
                .table(Memberships::Table)
                .col(cols.key(Memberships::TenantId))
                .col(cols.key(Memberships::GroupId))
                .col(cols.key(Memberships::MemberId))
                .col(ColumnDef::new(Memberships::MemberType).text().not_null())
                .col(ColumnDef::new(Memberships::Display).text().null())
                .primary_key(
                    Index::create()
                        .col(Memberships::GroupId)
                        .col(Memberships::MemberId),
                )
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_memberships_group")
                        .from(
                            Memberships::Table,
                            (Memberships::TenantId, Memberships::GroupId),
                        )
                        .to(Groups::Table, (Groups::TenantId, Groups::Id))
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        index(
            m,
            "ix_memberships_member",
            Memberships::Table,
            [Memberships::TenantId, Memberships::MemberId],
        )
        .await?;

        m.create_table(
            Table::create()
                .table(ProvisioningLog::Table)
                .col(
                    ColumnDef::new(ProvisioningLog::Id)
                        .big_integer()
                        .not_null()
                        .auto_increment()
                        .primary_key(),
                )
                .col(cols.key(ProvisioningLog::TenantId))
                .col(ts(ProvisioningLog::At))
                .col(ColumnDef::new(ProvisioningLog::Method).text().not_null())
                .col(
                    ColumnDef::new(ProvisioningLog::ResourceType)
                        .text()
                        .not_null(),
                )
                .col(cols.key_null(ProvisioningLog::ResourceId))
                .col(ColumnDef::new(ProvisioningLog::Identifier).text().null())
                .col(ColumnDef::new(ProvisioningLog::Outcome).text().not_null())
                .col(ColumnDef::new(ProvisioningLog::Status).integer().not_null())
                .col(
                    ColumnDef::new(ProvisioningLog::DurationMs)
                        .big_integer()
                        .not_null(),
                )
                .col(ColumnDef::new(ProvisioningLog::RequestId).text().not_null())
                .col(ColumnDef::new(ProvisioningLog::Detail).text().null())
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_provisioning_log_tenant")
                        .from(ProvisioningLog::Table, ProvisioningLog::TenantId)
                        .to(Tenants::Table, Tenants::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        index(
            m,
            "ix_provisioning_log_at",
            ProvisioningLog::Table,
            [ProvisioningLog::TenantId, ProvisioningLog::At],
        )
        .await?;
        index(
            m,
            "ix_provisioning_log_id",
            ProvisioningLog::Table,
            [ProvisioningLog::TenantId, ProvisioningLog::Id],
        )
        .await?;
        // Retention prunes across tenants by age.
        index(
            m,
            "ix_provisioning_log_prune",
            ProvisioningLog::Table,
            [ProvisioningLog::At],
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Outbox::Table)
                .col(
                    ColumnDef::new(Outbox::Id)
                        .big_integer()
                        .not_null()
                        .auto_increment()
                        .primary_key(),
                )
                .col(cols.key(Outbox::TenantId))
                .col(ColumnDef::new(Outbox::EventType).text().not_null())
                .col(ColumnDef::new(Outbox::ResourceType).text().not_null())
                .col(cols.key(Outbox::ResourceId))
                .col(ColumnDef::new(Outbox::Payload).text().not_null())
                .col(ts(Outbox::CreatedAt))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_outbox_tenant")
                        .from(Outbox::Table, Outbox::TenantId)
                        .to(Tenants::Table, Tenants::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        index(
            m,
            "ix_outbox_tenant_id",
            Outbox::Table,
            [Outbox::TenantId, Outbox::Id],
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // Children first, so foreign keys never block a drop.
        for table in [
            Outbox::Table.into_iden(),
            ProvisioningLog::Table.into_iden(),
            Memberships::Table.into_iden(),
            Groups::Table.into_iden(),
            UserEmails::Table.into_iden(),
            Users::Table.into_iden(),
            Operators::Table.into_iden(),
            AuthRevision::Table.into_iden(),
            Tokens::Table.into_iden(),
            Tenants::Table.into_iden(),
        ] {
            m.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}

/// Column builders that differ by engine.
struct Cols {
    pg: bool,
}

impl Cols {
    /// A text column that is compared or sorted: ids, normalised values.
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

async fn index<T, C, const N: usize>(
    m: &SchemaManager<'_>,
    name: &str,
    table: T,
    columns: [C; N],
) -> Result<(), DbErr>
where
    T: IntoIden,
    C: IntoIden,
{
    let mut ix = Index::create();
    ix.name(name).table(table);
    for c in columns {
        ix.col(c);
    }
    m.create_index(ix).await
}

async fn unique<T, C, const N: usize>(
    m: &SchemaManager<'_>,
    name: &str,
    table: T,
    columns: [C; N],
) -> Result<(), DbErr>
where
    T: IntoIden,
    C: IntoIden,
{
    let mut ix = Index::create();
    ix.name(name).table(table).unique();
    for c in columns {
        ix.col(c);
    }
    m.create_index(ix).await
}

#[derive(DeriveIden)]
enum Tenants {
    Table,
    Id,
    Slug,
    Name,
    Kind,
    Status,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Tokens {
    Table,
    Id,
    TenantId,
    Name,
    SecretHash,
    Scopes,
    CreatedAt,
    ExpiresAt,
    RevokedAt,
}

#[derive(DeriveIden)]
enum AuthRevision {
    Table,
    Id,
    Revision,
}

#[derive(DeriveIden)]
enum Operators {
    Table,
    Id,
    Email,
    EmailNorm,
    PasswordHash,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    TenantId,
    Id,
    UserName,
    UserNameNorm,
    ExternalId,
    DisplayName,
    DisplayNameNorm,
    Active,
    Document,
    Version,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum UserEmails {
    Table,
    TenantId,
    UserId,
    Position,
    ValueNorm,
}

#[derive(DeriveIden)]
enum Groups {
    Table,
    TenantId,
    Id,
    DisplayName,
    DisplayNameNorm,
    ExternalId,
    Document,
    Version,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Memberships {
    Table,
    TenantId,
    GroupId,
    MemberId,
    MemberType,
    Display,
}

#[derive(DeriveIden)]
enum ProvisioningLog {
    Table,
    Id,
    TenantId,
    At,
    Method,
    ResourceType,
    ResourceId,
    Identifier,
    Outcome,
    Status,
    DurationMs,
    RequestId,
    Detail,
}

#[derive(DeriveIden)]
enum Outbox {
    Table,
    Id,
    TenantId,
    EventType,
    ResourceType,
    ResourceId,
    Payload,
    CreatedAt,
}
