//! Role derivation: each tenant's role policy (settings, roles, group
//! mappings), administrators' role-locks, and every user's effective roles
//! as last derived.
//!
//! `roles.position` and `role_mappings.position` keep the order the
//! administrator gave, so a policy reads back exactly as it was stored.
//! `role_locks.roles` and `user_roles.effective` are JSON text, like the
//! directory's documents: they are always read and written whole.

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
                .table(RoleSettings::Table)
                .col(cols.key(RoleSettings::TenantId).primary_key())
                .col(cols.key_null(RoleSettings::DefaultRole))
                .col(
                    ColumnDef::new(RoleSettings::Mode)
                        .text()
                        .not_null()
                        .default("single"),
                )
                .col(
                    ColumnDef::new(RoleSettings::PolicyVersion)
                        .big_integer()
                        .not_null(),
                )
                .col(ts(RoleSettings::UpdatedAt))
                .foreign_key(&mut tenant_fk(
                    "fk_role_settings_tenant",
                    RoleSettings::Table,
                    RoleSettings::TenantId,
                ))
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Roles::Table)
                .col(cols.key(Roles::TenantId))
                .col(cols.key(Roles::Name))
                .col(ColumnDef::new(Roles::Description).text().not_null())
                .col(ColumnDef::new(Roles::Position).integer().not_null())
                .primary_key(Index::create().col(Roles::TenantId).col(Roles::Name))
                .foreign_key(&mut tenant_fk(
                    "fk_roles_tenant",
                    Roles::Table,
                    Roles::TenantId,
                ))
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(RoleMappings::Table)
                .col(cols.key(RoleMappings::TenantId))
                .col(cols.key(RoleMappings::Id))
                .col(cols.key(RoleMappings::MatchAttribute))
                .col(cols.key(RoleMappings::MatchValue))
                .col(cols.key(RoleMappings::Role))
                .col(ColumnDef::new(RoleMappings::Priority).integer().not_null())
                .col(ColumnDef::new(RoleMappings::Position).integer().not_null())
                .col(ts(RoleMappings::CreatedAt))
                .primary_key(
                    Index::create()
                        .col(RoleMappings::TenantId)
                        .col(RoleMappings::Id),
                )
                .foreign_key(&mut tenant_fk(
                    "fk_role_mappings_tenant",
                    RoleMappings::Table,
                    RoleMappings::TenantId,
                ))
                // A mapping can only name a role the policy defines.
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_role_mappings_role")
                        .from(
                            RoleMappings::Table,
                            (RoleMappings::TenantId, RoleMappings::Role),
                        )
                        .to(Roles::Table, (Roles::TenantId, Roles::Name))
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(RoleLocks::Table)
                .col(cols.key(RoleLocks::TenantId))
                .col(cols.key(RoleLocks::UserId))
                .col(ColumnDef::new(RoleLocks::Roles).text().not_null())
                .col(ColumnDef::new(RoleLocks::Reason).text().not_null())
                .col(ColumnDef::new(RoleLocks::LockedBy).text().not_null())
                .col(ts(RoleLocks::LockedAt))
                .primary_key(
                    Index::create()
                        .col(RoleLocks::TenantId)
                        .col(RoleLocks::UserId),
                )
                .foreign_key(&mut tenant_fk(
                    "fk_role_locks_tenant",
                    RoleLocks::Table,
                    RoleLocks::TenantId,
                ))
                .foreign_key(&mut user_fk(
                    "fk_role_locks_user",
                    RoleLocks::Table,
                    RoleLocks::TenantId,
                    RoleLocks::UserId,
                ))
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(UserRoles::Table)
                .col(cols.key(UserRoles::TenantId))
                .col(cols.key(UserRoles::UserId))
                .col(ColumnDef::new(UserRoles::Effective).text().not_null())
                .col(ts(UserRoles::UpdatedAt))
                .primary_key(
                    Index::create()
                        .col(UserRoles::TenantId)
                        .col(UserRoles::UserId),
                )
                .foreign_key(&mut tenant_fk(
                    "fk_user_roles_tenant",
                    UserRoles::Table,
                    UserRoles::TenantId,
                ))
                .foreign_key(&mut user_fk(
                    "fk_user_roles_user",
                    UserRoles::Table,
                    UserRoles::TenantId,
                    UserRoles::UserId,
                ))
                .to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // Children first, so foreign keys never block a drop.
        for table in [
            UserRoles::Table.into_iden(),
            RoleLocks::Table.into_iden(),
            RoleMappings::Table.into_iden(),
            Roles::Table.into_iden(),
            RoleSettings::Table.into_iden(),
        ] {
            m.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}

/// Column builders that differ by engine (as in `m0001_initial`; steps are
/// frozen once released, so each keeps its own copy).
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

fn user_fk<T: IntoIden, C: IntoIden, U: IntoIden>(
    name: &str,
    table: T,
    tenant: C,
    user: U,
) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(name)
        .from(table, (tenant, user))
        .to(Users::Table, (Users::TenantId, Users::Id))
        .on_delete(ForeignKeyAction::Cascade)
        .to_owned()
}

#[derive(DeriveIden)]
enum Tenants {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    TenantId,
    Id,
}

#[derive(DeriveIden)]
enum RoleSettings {
    Table,
    TenantId,
    DefaultRole,
    Mode,
    PolicyVersion,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Roles {
    Table,
    TenantId,
    Name,
    Description,
    Position,
}

#[derive(DeriveIden)]
enum RoleMappings {
    Table,
    TenantId,
    Id,
    MatchAttribute,
    MatchValue,
    Role,
    Priority,
    Position,
    CreatedAt,
}

#[derive(DeriveIden)]
enum RoleLocks {
    Table,
    TenantId,
    UserId,
    Roles,
    Reason,
    LockedBy,
    LockedAt,
}

#[derive(DeriveIden)]
enum UserRoles {
    Table,
    TenantId,
    UserId,
    Effective,
    UpdatedAt,
}
