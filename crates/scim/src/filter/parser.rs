//! Filter parser. (To be written.)

use super::{Filter, PatchPath};
use crate::error::Result;

/// Budgets that bound the work one filter string may cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Maximum filter length in bytes.
    pub max_len: usize,
    /// Maximum nesting depth of parentheses, `not` and value paths.
    pub max_depth: usize,
    /// Maximum number of comparisons (attrExp) in the whole filter.
    pub max_terms: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_len: 4096,
            max_depth: 16,
            max_terms: 64,
        }
    }
}

/// Parses a filter with the default [`Limits`].
pub fn parse(input: &str) -> Result<Filter> {
    parse_with(input, &Limits::default())
}

/// Parses a filter within the given limits.
pub fn parse_with(input: &str, limits: &Limits) -> Result<Filter> {
    let _ = (input, limits);
    todo!("filter parser")
}

/// Parses a PATCH `path` (`attrPath / valuePath [subAttr]`).
pub fn parse_path(input: &str) -> Result<PatchPath> {
    let _ = input;
    todo!("patch path parser")
}
