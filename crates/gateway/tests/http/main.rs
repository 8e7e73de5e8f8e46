//! The gateway over real HTTP on 127.0.0.1, on SQLite and PostgreSQL.

// Test helpers outside `#[test]` functions unwrap too: a panic is the
// failure report.
#![allow(clippy::unwrap_used)]

mod authn;
mod bad_input;
mod common;
mod concurrency;
mod effective_roles;
mod entra;
mod groups;
mod isolation;
mod okta;
mod service;
mod super_tenants;
mod two_gateways;
mod users;
