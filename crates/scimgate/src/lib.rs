//! scimgate, the binary: command line, configuration, first start, and the
//! application builder that the processes (`serve`, `gateway`, `admin`,
//! `worker`) and the tests share.
//!
//! [`spawn`] builds exactly what `serve` runs (database, migrations, first
//! start, gateway, admin API, `/metrics`, background work) and binds its
//! listener, so tests boot the real application rather than a look-alike;
//! [`start`] does the same for any [`Process`].

pub mod bootstrap;
pub mod cli;
pub mod commands;
pub mod config;
pub mod observability;
pub mod server;
pub mod telemetry;

pub use config::{Config, Secret};
pub use server::{App, AppError, Process, open_store, spawn, start};
