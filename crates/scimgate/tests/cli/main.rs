//! End-to-end tests of the `scimgate` binary: real processes on temporary
//! data directories, real HTTP on 127.0.0.1. One test binary (modules below)
//! so the suite links once.

mod backup;
mod builder;
mod config;
mod delivery;
mod deploy;
mod fanout_crash;
mod logins;
mod migrate_race;
mod observability;
mod operator;
mod postgres;
mod quarantine;
mod role_locks;
mod role_policy;
mod safety;
mod safety_crash;
mod scale_out;
mod seeded;
mod serve;
mod split;
mod super_tenants;
mod support;
mod tenant_lifecycle;
