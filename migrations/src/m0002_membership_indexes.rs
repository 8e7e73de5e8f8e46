//! Covering indexes for both directions of the membership table.
//!
//! The first schema had only `(tenant_id, member_id)` beside the primary key
//! `(group_id, member_id)`. Without statistics SQLite's planner then served
//! "members of group G in tenant T" from the tenant-wide member index,
//! visiting every membership of the tenant, and "groups of user U" by walking
//! every group of the tenant. With one covering index per direction, both
//! lookups are a range scan of exactly the rows they return on either
//! engine, whatever the statistics say.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum Memberships {
    Table,
    TenantId,
    GroupId,
    MemberId,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    // Without a transaction SQLite would run each statement on whichever
    // pooled connection is free, and the drop and re-create could race.
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_index(
            Index::drop()
                .name("ix_memberships_member")
                .table(Memberships::Table)
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_memberships_member")
                .table(Memberships::Table)
                .col(Memberships::TenantId)
                .col(Memberships::MemberId)
                .col(Memberships::GroupId)
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_memberships_group")
                .table(Memberships::Table)
                .col(Memberships::TenantId)
                .col(Memberships::GroupId)
                .col(Memberships::MemberId)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_index(
            Index::drop()
                .name("ix_memberships_group")
                .table(Memberships::Table)
                .to_owned(),
        )
        .await?;
        m.drop_index(
            Index::drop()
                .name("ix_memberships_member")
                .table(Memberships::Table)
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_memberships_member")
                .table(Memberships::Table)
                .col(Memberships::TenantId)
                .col(Memberships::MemberId)
                .to_owned(),
        )
        .await
    }
}
