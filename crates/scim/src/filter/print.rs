//! Filter printer: `Display` for the AST, producing the canonical string
//! that [`parse`](super::parse) reads back to the same AST.
//!
//! Canonical means: lower-case operators and keywords, single spaces,
//! JSON-escaped strings, and parentheses only where precedence needs them
//! (`and` binds tighter than `or`, both associate to the left, so an `or`
//! under an `and`, or a right operand of its own kind, is parenthesized).

use std::fmt::{self, Write};

use super::{CompValue, CompareOp, Filter, PatchPath};

impl CompareOp {
    /// The operator as written in a filter (`eq`, `ne`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            CompareOp::Eq => "eq",
            CompareOp::Ne => "ne",
            CompareOp::Co => "co",
            CompareOp::Sw => "sw",
            CompareOp::Ew => "ew",
            CompareOp::Gt => "gt",
            CompareOp::Ge => "ge",
            CompareOp::Lt => "lt",
            CompareOp::Le => "le",
        }
    }
}

impl fmt::Display for CompareOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for CompValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CompValue::String(s) => write_json_string(f, s),
            CompValue::Number(n) => write!(f, "{n}"),
            CompValue::Boolean(b) => write!(f, "{b}"),
            CompValue::Null => f.write_str("null"),
        }
    }
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Filter::Compare { path, op, value } => write!(f, "{path} {op} {value}"),
            Filter::Present(path) => write!(f, "{path} pr"),
            Filter::And(left, right) => {
                operand(f, left, matches!(**left, Filter::Or(..)))?;
                f.write_str(" and ")?;
                operand(
                    f,
                    right,
                    matches!(**right, Filter::Or(..) | Filter::And(..)),
                )
            }
            Filter::Or(left, right) => {
                write!(f, "{left} or ")?;
                operand(f, right, matches!(**right, Filter::Or(..)))
            }
            Filter::Not(inner) => write!(f, "not ({inner})"),
            Filter::ValuePath { path, filter } => write!(f, "{path}[{filter}]"),
        }
    }
}

impl fmt::Display for PatchPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.attr)?;
        if let Some(filter) = &self.filter {
            write!(f, "[{filter}]")?;
        }
        if let Some(sub) = &self.sub {
            write!(f, ".{sub}")?;
        }
        Ok(())
    }
}

fn operand(f: &mut fmt::Formatter<'_>, filter: &Filter, parenthesize: bool) -> fmt::Result {
    if parenthesize {
        write!(f, "({filter})")
    } else {
        write!(f, "{filter}")
    }
}

/// Writes `s` as a JSON string literal (RFC 8259 §7), escaping only what
/// JSON requires so non-ASCII text stays readable.
fn write_json_string(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    f.write_char('"')?;
    let mut clean_from = 0;
    for (i, c) in s.char_indices() {
        let escape = match c {
            '"' => "\\\"",
            '\\' => "\\\\",
            '\n' => "\\n",
            '\r' => "\\r",
            '\t' => "\\t",
            '\u{08}' => "\\b",
            '\u{0C}' => "\\f",
            c if c < ' ' => "",
            _ => continue,
        };
        f.write_str(&s[clean_from..i])?;
        if escape.is_empty() {
            write!(f, "\\u{:04x}", u32::from(c))?;
        } else {
            f.write_str(escape)?;
        }
        clean_from = i + c.len_utf8();
    }
    f.write_str(&s[clean_from..])?;
    f.write_char('"')
}
