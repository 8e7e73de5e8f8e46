//! On SQLite, the group-direction membership index also carries each
//! membership's `member_type` and `display`.
//!
//! A group's member list (read for every `GET /Groups/{id}` and every
//! `PATCH` reply) then comes from a few adjacent index pages instead of one
//! table lookup per member. On SQLite that matters more than elsewhere: a
//! connection's page cache is emptied whenever another connection commits,
//! so under steady writes every one of those lookups was a read from the
//! file. PostgreSQL keeps its buffers across commits, and its index entries
//! have a size limit a long `display` could reach, so its index stays as it
//! was.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum Memberships {
    Table,
    TenantId,
    GroupId,
    MemberId,
    MemberType,
    Display,
}

/// The group-direction index, covering or not.
fn group_index(covering: bool) -> IndexCreateStatement {
    let mut index = Index::create();
    index
        .name("ix_memberships_group")
        .table(Memberships::Table)
        .col(Memberships::TenantId)
        .col(Memberships::GroupId)
        .col(Memberships::MemberId);
    if covering {
        index.col(Memberships::MemberType).col(Memberships::Display);
    }
    index.to_owned()
}

fn drop_group_index() -> IndexDropStatement {
    Index::drop()
        .name("ix_memberships_group")
        .table(Memberships::Table)
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        if m.get_database_backend() != DbBackend::Sqlite {
            return Ok(());
        }
        m.drop_index(drop_group_index()).await?;
        m.create_index(group_index(true)).await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        if m.get_database_backend() != DbBackend::Sqlite {
            return Ok(());
        }
        m.drop_index(drop_group_index()).await?;
        m.create_index(group_index(false)).await
    }
}
