//! Attribute paths (RFC 7644 §3.10): `[URI ":"] ATTRNAME ["." subAttr]`.
//!
//! ```text
//! attrPath  = [URI ":"] ATTRNAME *1subAttr
//! ATTRNAME  = ALPHA *(nameChar)
//! nameChar  = "-" / "_" / DIGIT / ALPHA
//! subAttr   = "." ATTRNAME
//! ```
//!
//! Schema URNs contain both `:` and `.` (`...:enterprise:2.0:User:manager.value`),
//! so the attribute name is whatever follows the *last* colon, and a sub-attribute
//! is split off at the first dot after it. `$ref` is accepted as a name because
//! RFC 7643 uses it as a sub-attribute (`members.$ref`).
//!
//! Names are kept as written; comparison is case-insensitive (RFC 7643 §2.1)
//! and is the business of whoever resolves the path against a schema.

use std::fmt;

use crate::error::{Error, Result};

/// A parsed attribute path, context-free (not yet resolved against a schema).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AttrPath {
    /// The schema URN prefix, if the path was fully qualified.
    pub urn: Option<String>,
    /// The attribute name.
    pub name: String,
    /// The sub-attribute name, for `name.givenName` style paths.
    pub sub: Option<String>,
}

impl AttrPath {
    /// A path to a top-level attribute of the core schema.
    pub fn new(name: impl Into<String>) -> Self {
        AttrPath {
            urn: None,
            name: name.into(),
            sub: None,
        }
    }

    /// A path to a sub-attribute of a core attribute.
    pub fn with_sub(name: impl Into<String>, sub: impl Into<String>) -> Self {
        AttrPath {
            urn: None,
            name: name.into(),
            sub: Some(sub.into()),
        }
    }

    /// Parses a complete attribute path string; anything else in the string is an error.
    pub fn parse(input: &str) -> Result<AttrPath> {
        let bad = |why: &str| Error::InvalidPath(format!("'{input}': {why}"));
        if input.is_empty() {
            return Err(bad("empty attribute path"));
        }
        let (urn, rest) = if starts_with_urn(input) {
            match input.rfind(':') {
                Some(i) if i + 1 < input.len() => (Some(&input[..i]), &input[i + 1..]),
                _ => return Err(bad("schema URN without an attribute name")),
            }
        } else {
            (None, input)
        };
        let (name, sub) = match rest.split_once('.') {
            Some((n, s)) => (n, Some(s)),
            None => (rest, None),
        };
        if !is_attr_name(name) {
            return Err(bad("not a valid attribute name"));
        }
        if let Some(s) = sub
            && !is_attr_name(s)
        {
            return Err(bad("not a valid sub-attribute name"));
        }
        Ok(AttrPath {
            urn: urn.map(str::to_owned),
            name: name.to_owned(),
            sub: sub.map(str::to_owned),
        })
    }

    /// The same path without its sub-attribute.
    pub fn parent(&self) -> AttrPath {
        AttrPath {
            urn: self.urn.clone(),
            name: self.name.clone(),
            sub: None,
        }
    }

    /// True when `name` (and `urn`, if both have one) equal `other`'s, ignoring case.
    pub fn same_attribute(&self, other: &AttrPath) -> bool {
        self.name.eq_ignore_ascii_case(&other.name)
            && match (&self.urn, &other.urn) {
                (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
                _ => true,
            }
    }
}

impl fmt::Display for AttrPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(urn) = &self.urn {
            write!(f, "{urn}:")?;
        }
        f.write_str(&self.name)?;
        if let Some(sub) = &self.sub {
            write!(f, ".{sub}")?;
        }
        Ok(())
    }
}

/// True when `s` begins with the `urn:` scheme (case-insensitive, RFC 8141).
pub fn starts_with_urn(s: &str) -> bool {
    s.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("urn:"))
}

/// True for a valid ATTRNAME, or the RFC 7643 reserved `$ref`.
pub fn is_attr_name(s: &str) -> bool {
    if s.eq_ignore_ascii_case("$ref") {
        return true;
    }
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// True for a byte that may continue an ATTRNAME (used by tokenizers).
pub fn is_name_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'$'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simple_and_sub_attribute() {
        assert_eq!(
            AttrPath::parse("userName").unwrap(),
            AttrPath::new("userName")
        );
        assert_eq!(
            AttrPath::parse("name.givenName").unwrap(),
            AttrPath::with_sub("name", "givenName")
        );
        assert_eq!(
            AttrPath::parse("members.$ref").unwrap(),
            AttrPath::with_sub("members", "$ref")
        );
    }

    #[test]
    fn urn_qualified_paths_split_at_last_colon() {
        let p = AttrPath::parse(
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value",
        )
        .unwrap();
        assert_eq!(
            p.urn.as_deref(),
            Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User")
        );
        assert_eq!(p.name, "manager");
        assert_eq!(p.sub.as_deref(), Some("value"));
        assert_eq!(
            p.to_string(),
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value"
        );
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "1abc",
            "name.",
            ".x",
            "a b",
            "urn:x:",
            "name.given.x",
            "na\"me",
        ] {
            assert!(
                matches!(AttrPath::parse(bad), Err(Error::InvalidPath(_))),
                "{bad:?} should be rejected"
            );
        }
    }
}
