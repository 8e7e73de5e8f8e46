//! SCIM filters (RFC 7644 §3.4.2.2): the AST, its parser, printer and evaluator.
//!
//! The AST is SQL-agnostic: the store walks it to build a query without
//! re-parsing, and [`eval`] evaluates it against a JSON document for the
//! attributes the store has not indexed and for super-tenant routing rules.

mod ast;
pub mod eval;
mod parser;
mod print;
#[cfg(test)]
mod tests;

pub use ast::{CompValue, CompareOp, Filter, PatchPath};
pub use eval::{check, matches, matches_element};
pub use parser::{Limits, parse, parse_path, parse_with};
