//! The filter AST.

use crate::path::AttrPath;

/// A comparison operator (RFC 7644 §3.4.2.2, Table 3), except `pr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CompareOp {
    /// equal
    Eq,
    /// not equal
    Ne,
    /// contains
    Co,
    /// starts with
    Sw,
    /// ends with
    Ew,
    /// greater than
    Gt,
    /// greater than or equal to
    Ge,
    /// less than
    Lt,
    /// less than or equal to
    Le,
}

/// A comparison literal (RFC 7644 `compValue`).
///
/// dateTime values arrive as strings; whether a string compares as a
/// dateTime is decided by the attribute's schema type, not by the literal.
#[derive(Debug, Clone, PartialEq)]
pub enum CompValue {
    /// `"..."` (JSON string, escapes decoded)
    String(String),
    /// A JSON number.
    Number(serde_json::Number),
    /// `true` / `false`
    Boolean(bool),
    /// `null`
    Null,
}

/// A filter expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// `attrPath compareOp compValue`
    Compare {
        /// The attribute compared.
        path: AttrPath,
        /// The operator.
        op: CompareOp,
        /// The literal compared against.
        value: CompValue,
    },
    /// `attrPath pr`
    Present(AttrPath),
    /// `a and b`
    And(Box<Filter>, Box<Filter>),
    /// `a or b`
    Or(Box<Filter>, Box<Filter>),
    /// `not (a)`
    Not(Box<Filter>),
    /// `attrPath "[" valFilter "]"`: `filter` applies to each element of the
    /// multi-valued attribute `path`, and its own paths are relative to the
    /// element (`emails[type eq "work"]` has inner path `type`).
    ValuePath {
        /// The multi-valued (complex) attribute.
        path: AttrPath,
        /// The filter over one element.
        filter: Box<Filter>,
    },
}

impl Filter {
    /// The first resource-level attribute path for which `wanted` holds;
    /// paths inside a value filter are relative to its attribute and are
    /// not visited.
    pub fn find_path(&self, wanted: impl Fn(&AttrPath) -> bool) -> Option<&AttrPath> {
        let mut stack = vec![self];
        while let Some(f) = stack.pop() {
            match f {
                Filter::Compare { path, .. }
                | Filter::Present(path)
                | Filter::ValuePath { path, .. } => {
                    if wanted(path) {
                        return Some(path);
                    }
                }
                Filter::And(a, b) | Filter::Or(a, b) => {
                    stack.push(b);
                    stack.push(a);
                }
                Filter::Not(inner) => stack.push(inner),
            }
        }
        None
    }
}

/// A PATCH operation path (RFC 7644 §3.5.2):
/// `PATH = attrPath / valuePath [subAttr]`.
///
/// `emails[type eq "work"].value` is `attr = emails`, `filter = Some(type eq
/// "work")`, `sub = Some("value")`. `name.givenName` is `attr = name.givenName`
/// (the sub-attribute stays inside the [`AttrPath`]) with no filter and no `sub`.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchPath {
    /// The attribute (with its URN, and a sub-attribute when no filter is used).
    pub attr: AttrPath,
    /// The value filter selecting elements of a multi-valued attribute.
    pub filter: Option<Filter>,
    /// The sub-attribute after a value filter (`].value`).
    pub sub: Option<String>,
}
