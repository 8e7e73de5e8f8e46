//! scimgate's database schema, as sea-orm migrations that run on SQLite and
//! PostgreSQL.
//!
//! Each step runs in one transaction on both engines (SQLite's DDL is
//! transactional too), so a failed step leaves the schema as it was. Steps
//! are never edited once released: a change is a new step, and
//! [`SCHEMA_VERSION`] moves with it.

pub use sea_orm_migration::MigratorTrait;
use sea_orm_migration::prelude::*;

mod m0001_initial;
mod m0002_membership_indexes;
mod m0003_roles;
mod m0004_admin;
mod m0005_membership_cover;
mod m0006_event_log;
mod m0008_delivery;

/// The schema version this build expects: the number of migration steps.
pub const SCHEMA_VERSION: u32 = 7;

/// All of scimgate's migrations, in order.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m0001_initial::Migration),
            Box::new(m0002_membership_indexes::Migration),
            Box::new(m0003_roles::Migration),
            Box::new(m0004_admin::Migration),
            Box::new(m0005_membership_cover::Migration),
            Box::new(m0006_event_log::Migration),
            Box::new(m0008_delivery::Migration),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_version_counts_the_steps() {
        assert_eq!(Migrator::migrations().len(), SCHEMA_VERSION as usize);
    }
}
