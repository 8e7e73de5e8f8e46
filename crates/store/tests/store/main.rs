//! The store's integration tests: one binary, every test on SQLite and
//! PostgreSQL (see `testkit`).

// Test helpers outside `#[test]` functions panic on failure by design.
#![allow(clippy::unwrap_used)]

mod admin_api;
mod auth;
mod common;
mod concurrency;
mod fanout;
mod groups;
mod health;
mod isolation;
mod jobs;
mod list;
mod migrate_race;
mod outbox_log;
mod roles;
mod safety;
mod stats;
mod super_tenants;
mod users;
