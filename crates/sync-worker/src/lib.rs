//! Delivery of the event log to each tenant's application.
//!
//! The event log (`store::events`) is the only source: every committed
//! change is there, in commit order. This crate turns it into deliveries:
//! signed webhooks (the Standard Webhooks specification) and outbound SCIM
//! to the application's own endpoint, at least once, in commit order per
//! (target, resource), with retries, dead letters and replay.
//!
//! Modules:
//! - [`secrets`]: target secrets sealed at rest (AEAD);
//! - [`signing`]: Standard Webhooks secrets and signatures;
//! - [`address`]: which target addresses may be called (SSRF guard);
//! - [`http`]: the outbound HTTP client those rules are built into;
//! - [`policy`]: what an attempt's result means (the state machine);
//! - [`envelope`]: the JSON an application receives for an event;
//! - [`webhook`]: one signed request;
//! - [`outbound`]: outbound SCIM (the application's own SCIM endpoint);
//! - [`reconcile`]: the job that compares and repairs an outbound SCIM target;
//! - [`queue`]: where the worker finds its work (the database's queue);
//! - [`redis_queue`]: the queue through Redis Streams, for several workers;
//! - [`runner`]: the worker, its leases and per-target rounds;
//! - [`metrics`]: what it exports to Prometheus.

pub mod address;
pub mod config;
pub mod envelope;
pub mod http;
pub mod metrics;
pub mod outbound;
pub mod policy;
pub mod queue;
pub mod reconcile;
pub mod redis_queue;
pub mod resend;
pub mod runner;
pub mod secrets;
pub mod signing;
pub mod targets;
pub mod timeline;
pub mod webhook;

pub use config::DeliveryConfig;
pub use queue::{Queue, SqlQueue};
pub use redis_queue::RedisQueue;
pub use runner::{Worker, WorkerError};
