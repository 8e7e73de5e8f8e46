//! Super tenants: which tenants a super tenant feeds, its routing rules,
//! and the copies it made in each child.
//!
//! - `super_links`: one row per child tenant (so a tenant has at most one
//!   super tenant), with what happens to a copy whose source stops being
//!   routed to the child (`deactivate` or `delete`). Deleting either
//!   tenant removes the link.
//! - `routing_policies`: a super tenant's rules as one JSON document with
//!   a version (`If-Match`), read and written whole like a role policy.
//! - `copies`: each user or group of a super tenant copied into a child:
//!   the source's id, the copy's own id in the child, whether the source is
//!   routed there now, and the rules that route it (the "why"). Deleting
//!   the child removes its copies' links; deleting the super tenant leaves
//!   the children's users and groups as standalone resources.

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
enum SuperLinks {
    Table,
    ChildTenantId,
    SuperTenantId,
    OnUnroute,
    CreatedAt,
}

#[derive(DeriveIden)]
enum RoutingPolicies {
    Table,
    SuperTenantId,
    Version,
    Rules,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Copies {
    Table,
    ChildTenantId,
    Kind,
    SourceId,
    ChildId,
    SuperTenantId,
    Routed,
    Rules,
    CreatedAt,
    UpdatedAt,
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
        let ts = |name: DynIden| {
            let mut c = ColumnDef::new(name);
            c.timestamp_with_time_zone().not_null();
            c
        };

        m.create_table(
            Table::create()
                .table(SuperLinks::Table)
                .col(key(SuperLinks::ChildTenantId.into_iden()).primary_key())
                .col(key(SuperLinks::SuperTenantId.into_iden()))
                .col(
                    ColumnDef::new(SuperLinks::OnUnroute)
                        .text()
                        .not_null()
                        .default("deactivate"),
                )
                .col(ts(SuperLinks::CreatedAt.into_iden()))
                .foreign_key(&mut tenant_fk(
                    "fk_super_links_child",
                    SuperLinks::Table,
                    SuperLinks::ChildTenantId,
                ))
                .foreign_key(&mut tenant_fk(
                    "fk_super_links_super",
                    SuperLinks::Table,
                    SuperLinks::SuperTenantId,
                ))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_super_links_super")
                .table(SuperLinks::Table)
                .col(SuperLinks::SuperTenantId)
                .col(SuperLinks::ChildTenantId)
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(RoutingPolicies::Table)
                .col(key(RoutingPolicies::SuperTenantId.into_iden()).primary_key())
                .col(
                    ColumnDef::new(RoutingPolicies::Version)
                        .big_integer()
                        .not_null(),
                )
                .col(ColumnDef::new(RoutingPolicies::Rules).text().not_null())
                .col(ts(RoutingPolicies::UpdatedAt.into_iden()))
                .foreign_key(&mut tenant_fk(
                    "fk_routing_policies_tenant",
                    RoutingPolicies::Table,
                    RoutingPolicies::SuperTenantId,
                ))
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Copies::Table)
                .col(key(Copies::ChildTenantId.into_iden()))
                .col(key(Copies::Kind.into_iden()))
                .col(key(Copies::SourceId.into_iden()))
                .col(key(Copies::ChildId.into_iden()))
                .col(key(Copies::SuperTenantId.into_iden()))
                .col(ColumnDef::new(Copies::Routed).boolean().not_null())
                .col(ColumnDef::new(Copies::Rules).text().not_null())
                .col(ts(Copies::CreatedAt.into_iden()))
                .col(ts(Copies::UpdatedAt.into_iden()))
                .primary_key(
                    Index::create()
                        .col(Copies::ChildTenantId)
                        .col(Copies::Kind)
                        .col(Copies::SourceId),
                )
                .foreign_key(&mut tenant_fk(
                    "fk_copies_child",
                    Copies::Table,
                    Copies::ChildTenantId,
                ))
                .foreign_key(&mut tenant_fk(
                    "fk_copies_super",
                    Copies::Table,
                    Copies::SuperTenantId,
                ))
                .to_owned(),
        )
        .await?;
        for (name, cols, unique) in [
            (
                "ix_copies_child_id",
                vec![Copies::ChildTenantId, Copies::Kind, Copies::ChildId],
                true,
            ),
            (
                "ix_copies_source",
                vec![Copies::SuperTenantId, Copies::Kind, Copies::SourceId],
                false,
            ),
        ] {
            let mut ix = Index::create();
            ix.name(name).table(Copies::Table);
            for c in cols {
                ix.col(c);
            }
            if unique {
                ix.unique();
            }
            m.create_index(ix.to_owned()).await?;
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(Copies::Table).to_owned())
            .await?;
        m.drop_table(Table::drop().table(RoutingPolicies::Table).to_owned())
            .await?;
        m.drop_table(Table::drop().table(SuperLinks::Table).to_owned())
            .await
    }
}
