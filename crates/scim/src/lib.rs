//! The SCIM 2.0 protocol (RFC 7643, RFC 7644) as a pure library.
//!
//! No I/O, no async, no web or database types: documents are
//! `serde_json::Value`s and every operation is a function of its inputs.
//! The store translates [`filter::Filter`] ASTs to SQL; the gateway maps
//! [`Error`] to HTTP responses.

pub mod discovery;
pub mod error;
pub mod filter;
pub mod meta;
pub mod patch;
pub mod path;
pub mod projection;
pub mod schemas;
pub mod validate;
pub mod value;

pub use error::{Error, Result, ScimType};
pub use path::AttrPath;
pub use schemas::{Registry, ResourceSchema};
