//! End-to-end tests of the admin API over real HTTP on 127.0.0.1, with the
//! SCIM gateway on the same listener (the application `scimgate serve`
//! runs, role worker included). Every test runs on SQLite and on
//! PostgreSQL. One test binary (modules below) so the suite links once.

#![allow(clippy::unwrap_used)]

mod auth;
mod bad_input;
mod browser;
mod console;
mod console_delivery;
mod delivery;
mod isolation;
mod mappings;
mod openapi;
mod query_params;
mod roles;
mod safety;
mod super_tenants;
mod support;
mod tenants;
mod throttle;
