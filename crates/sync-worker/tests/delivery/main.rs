//! Delivery tests: a real receiver on 127.0.0.1 that verifies signatures
//! with the Standard Webhooks authors' own library, the worker running as
//! in production, real SQLite and PostgreSQL.

mod queue;
mod recipes;
mod redis;
mod scim;
mod super_tenants;
mod support;
mod webhooks;
