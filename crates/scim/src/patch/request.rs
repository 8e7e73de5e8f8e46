//! The PatchOp message (RFC 7644 §3.5.2): shape validation and path parsing.
//!
//! Structural names are matched without regard to case (`Operations`,
//! `operations`; `op` values `add`, `Add`, `REPLACE`), because Entra sends
//! capitalized op names and RFC 7643 §2.1 makes attribute names
//! case-insensitive; Microsoft's guidance asks servers to accept both.

use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::filter::{self, PatchPath};
use crate::path::AttrPath;
use crate::schemas::PATCH_OP;

/// A parsed PATCH request body: the operations, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchRequest {
    /// The operations, applied in order and atomically.
    pub operations: Vec<PatchOperation>,
}

/// One PATCH operation.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchOperation {
    /// What to do.
    pub op: OpKind,
    /// Where to do it; `None` means "the resource itself".
    pub path: Option<PatchPath>,
    /// The operand; required for add and replace, optional for remove.
    pub value: Option<Value>,
}

/// The three PATCH operation kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpKind {
    /// `add`
    Add,
    /// `remove`
    Remove,
    /// `replace`
    Replace,
}

impl OpKind {
    /// The RFC 7644 spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            OpKind::Add => "add",
            OpKind::Remove => "remove",
            OpKind::Replace => "replace",
        }
    }

    fn parse(s: &str) -> Option<OpKind> {
        [OpKind::Add, OpKind::Remove, OpKind::Replace]
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(s))
    }
}

impl PatchRequest {
    /// Validates the shape of a PatchOp body and parses every `path`.
    ///
    /// Shape errors (not an object, no PatchOp schema URN, no or empty
    /// `Operations`, an operation without a known `op`) are `invalidSyntax`,
    /// a missing `value` on add/replace is `invalidValue`, and a malformed
    /// path is `invalidPath`. A missing `path` on `remove` is accepted here
    /// and fails in [`apply`](super::apply) with `noTarget`, as RFC 7644
    /// §3.5.2.2 assigns that failure to the operation, not the message.
    pub fn from_json(body: &Value) -> Result<PatchRequest> {
        let Value::Object(body) = body else {
            return Err(Error::InvalidSyntax(
                "a PATCH body must be a JSON object".into(),
            ));
        };
        check_schemas(body)?;
        let ops = match get_ci(body, "Operations") {
            Some(Value::Array(ops)) if !ops.is_empty() => ops,
            Some(Value::Array(_)) => {
                return Err(Error::InvalidSyntax(
                    "'Operations' must contain at least one operation".into(),
                ));
            }
            Some(_) => {
                return Err(Error::InvalidSyntax("'Operations' must be an array".into()));
            }
            None => {
                return Err(Error::InvalidSyntax(
                    "a PATCH body must contain 'Operations'".into(),
                ));
            }
        };
        let operations = ops
            .iter()
            .enumerate()
            .map(|(i, op)| parse_operation(i, op))
            .collect::<Result<Vec<_>>>()?;
        Ok(PatchRequest { operations })
    }
}

// RFC 7644 §3.5.2: "The body of each request MUST contain the 'schemas'
// attribute with the URI value of urn:ietf:params:scim:api:messages:2.0:PatchOp."
// Both Entra and Okta send it, so a body without it is treated as malformed
// (invalidSyntax) rather than guessed at. Other URNs alongside it are tolerated.
fn check_schemas(body: &Map<String, Value>) -> Result<()> {
    match get_ci(body, "schemas") {
        Some(Value::Array(urns))
            if urns
                .iter()
                .any(|u| u.as_str().is_some_and(|u| u.eq_ignore_ascii_case(PATCH_OP))) =>
        {
            Ok(())
        }
        Some(_) => Err(Error::InvalidSyntax(format!(
            "'schemas' must be an array containing \"{PATCH_OP}\""
        ))),
        None => Err(Error::InvalidSyntax(format!(
            "a PATCH body must contain 'schemas': [\"{PATCH_OP}\"]"
        ))),
    }
}

fn parse_operation(index: usize, op: &Value) -> Result<PatchOperation> {
    let Value::Object(op) = op else {
        return Err(Error::InvalidSyntax(format!(
            "Operations[{index}] must be a JSON object"
        )));
    };
    let kind = match get_ci(op, "op") {
        Some(Value::String(s)) => OpKind::parse(s).ok_or_else(|| {
            Error::InvalidSyntax(format!(
                "Operations[{index}]: unknown op '{s}' (expected add, remove or replace)"
            ))
        })?,
        Some(_) => {
            return Err(Error::InvalidSyntax(format!(
                "Operations[{index}]: 'op' must be a string"
            )));
        }
        None => {
            return Err(Error::InvalidSyntax(format!(
                "Operations[{index}] has no 'op'"
            )));
        }
    };
    let path = match get_ci(op, "path") {
        None | Some(Value::Null) => None,
        // Some clients send an empty path for "the resource itself".
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(Value::String(s)) => Some(parse_path(s)?),
        Some(_) => {
            return Err(Error::InvalidPath(format!(
                "Operations[{index}]: 'path' must be a string"
            )));
        }
    };
    let value = get_ci(op, "value").cloned();
    if value.is_none() && kind != OpKind::Remove {
        return Err(Error::InvalidValue(format!(
            "Operations[{index}]: '{}' requires a 'value'",
            kind.as_str()
        )));
    }
    Ok(PatchOperation {
        op: kind,
        path,
        value,
    })
}

/// Parses a PATCH path (`attrPath / valuePath [subAttr]`).
///
/// A path without `[` can only be an `attrPath`, which [`AttrPath::parse`]
/// reads completely; only value-filtered paths need the filter parser.
/// A filter syntax error inside a path is reported as `invalidPath`, since
/// RFC 7644 §3.5.2 assigns malformed paths that scimType.
pub(crate) fn parse_path(input: &str) -> Result<PatchPath> {
    let input = input.trim();
    if !input.contains('[') {
        return Ok(PatchPath {
            attr: AttrPath::parse(input)?,
            filter: None,
            sub: None,
        });
    }
    filter::parse_path(input).map_err(|e| match e {
        Error::InvalidFilter { offset, message } => {
            Error::InvalidPath(format!("'{input}': {message} (at offset {offset})"))
        }
        other => other,
    })
}

/// Looks a key up in a JSON object: exact match first, then ignoring case.
pub(crate) fn get_ci<'m>(map: &'m Map<String, Value>, key: &str) -> Option<&'m Value> {
    map.get(key).or_else(|| {
        map.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}
