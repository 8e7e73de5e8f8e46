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
mod m0007_jobs;
mod m0008_delivery;
mod m0009_attempts_by_event;
mod m0010_super_tenants;
mod m0011_routed_log;
mod m0012_target_mappings;
mod m0013_target_profiles;
mod m0014_deletion_safety;
mod m0015_setup_links;
mod m0016_request_health;

/// The schema version this build expects: the number of migration steps.
pub const SCHEMA_VERSION: u32 = 16;

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
            Box::new(m0007_jobs::Migration),
            Box::new(m0008_delivery::Migration),
            Box::new(m0009_attempts_by_event::Migration),
            Box::new(m0010_super_tenants::Migration),
            Box::new(m0011_routed_log::Migration),
            Box::new(m0012_target_mappings::Migration),
            Box::new(m0013_target_profiles::Migration),
            Box::new(m0014_deletion_safety::Migration),
            Box::new(m0015_setup_links::Migration),
            Box::new(m0016_request_health::Migration),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_version_is_the_last_steps_number() {
        // Steps are numbered by name (`m0007_jobs`); numbers only grow, and
        // the last one is the version (steps developed in parallel may
        // leave a number to be filled in by a merge).
        let numbers: Vec<u32> = Migrator::migrations()
            .iter()
            .map(|m| {
                let name = m.name().to_owned();
                name.get(1..5)
                    .and_then(|n| n.parse().ok())
                    .unwrap_or_else(|| panic!("step {name:?} is not named mNNNN_..."))
            })
            .collect();
        assert!(numbers.windows(2).all(|w| w[0] < w[1]), "{numbers:?}");
        assert_eq!(numbers.last().copied(), Some(SCHEMA_VERSION));
    }
}
