//! scimgate, the binary: command line, configuration, first start, and the
//! application builder that `scimgate serve` and the tests share.
//!
//! [`spawn`] builds exactly what `serve` runs (database, migrations, first
//! start, gateway, `/metrics`, background tasks) and binds its listener, so
//! tests boot the real application rather than a look-alike.

pub mod bootstrap;
pub mod cli;
pub mod commands;
pub mod config;
pub mod server;
pub mod telemetry;

pub use config::{Config, Secret};
pub use server::{App, AppError, open_store, spawn};
