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
//! - [`http`]: the outbound HTTP client those rules are built into.

pub mod address;
pub mod http;
pub mod secrets;
pub mod signing;
