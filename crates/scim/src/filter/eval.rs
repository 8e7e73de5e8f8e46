//! Filter evaluation against JSON documents (RFC 7644 §3.4.2.2).
//!
//! How a path finds its values:
//!
//! - attribute names match case-insensitively (RFC 7643 §2.1), trying the
//!   exact key first because that is what well-behaved documents contain;
//! - core and common attributes are top-level keys, extension attributes
//!   live under their schema URN key; an unqualified name that only an
//!   extension defines is looked up there (and, failing that, at the top);
//! - attributes no schema defines (an IdP's custom extension) are still
//!   looked up, and compared by their JSON type, case-insensitively;
//! - a multi-valued attribute matches when any of its values does; a
//!   complex attribute compared without a sub-attribute (`emails co "x"`)
//!   is compared through its `value` sub-attribute.
//!
//! How values compare:
//!
//! - strings honour the attribute's `caseExact`; case-insensitive
//!   comparison lower-cases per Unicode scalar (`char::to_lowercase`, with
//!   an allocation-free ASCII fast path). That is simple lower-casing, not
//!   full case folding: `"straße"` does not equal `"STRASSE"`;
//! - `gt`/`ge`/`lt`/`le` order strings by code point (after lower-casing
//!   when not caseExact), numbers numerically and dateTime attributes as
//!   instants (RFC 3339; a value that does not parse never matches);
//! - booleans compare with boolean literals, tolerating stored strings
//!   `"True"`/`"False"` (Entra sends those);
//! - a numeric literal also matches a string holding that number
//!   (`employeeNumber eq 701984`), since IdPs are loose about quoting;
//! - `pr` means present and non-empty; `eq null` matches exactly when `pr`
//!   does not; `ne` is the negation of `eq`.

use std::cmp::Ordering;

use chrono::{DateTime, FixedOffset, NaiveDateTime};
use serde_json::{Number, Value};

use super::{CompValue, CompareOp, Filter};
use crate::error::{Error, Result};
use crate::path::AttrPath;
use crate::schemas::{AttrType, Attribute, ResourceSchema};

/// True when the resource document `doc` matches `filter`.
pub fn matches(filter: &Filter, doc: &Value, schema: ResourceSchema<'_>) -> bool {
    Eval { schema }.filter(filter, Scope::Resource(doc))
}

/// True when one element of the multi-valued attribute `parent` (e.g. one
/// entry of `emails`) matches the value filter `filter`, whose paths are
/// relative to the element.
pub fn matches_element(
    filter: &Filter,
    element: &Value,
    schema: ResourceSchema<'_>,
    parent: &AttrPath,
) -> bool {
    let parent_def = leaf_of(resolve(&schema, parent), parent);
    Eval { schema }.filter(
        filter,
        Scope::Element {
            value: element,
            parent: parent_def,
        },
    )
}

/// Rejects what RFC 7644 §3.4.2.2 says must fail with `400 invalidFilter`
/// for this resource type: `gt`/`ge`/`lt`/`le` on boolean or binary
/// attributes, and a value filter on a known attribute that is not complex.
///
/// Unknown attributes pass (IdP custom extensions are allowed). The AST
/// carries no positions, so the error's offset is 0; the message names the
/// attribute instead.
pub fn check(filter: &Filter, schema: ResourceSchema<'_>) -> Result<()> {
    check_in(filter, &schema, None)
}

/// `parent` is `None` at the resource level, `Some(def)` inside a value
/// filter (with `def` the filtered attribute, if known).
fn check_in(
    filter: &Filter,
    schema: &ResourceSchema<'_>,
    parent: Option<Option<&Attribute>>,
) -> Result<()> {
    match filter {
        Filter::Compare { path, op, .. } => {
            if !matches!(
                op,
                CompareOp::Gt | CompareOp::Ge | CompareOp::Lt | CompareOp::Le
            ) {
                return Ok(());
            }
            let attr = match parent {
                None => resolve(schema, path),
                Some(p) => p.and_then(|p| p.sub_attribute(&path.name)),
            };
            match compared_def(leaf_of(attr, path)) {
                Some(def) if matches!(def.ty, AttrType::Boolean | AttrType::Binary) => {
                    Err(Error::filter(
                        0,
                        format!(
                            "'{op}' cannot compare the {} attribute '{path}'",
                            def.ty.as_str()
                        ),
                    ))
                }
                _ => Ok(()),
            }
        }
        Filter::Present(_) => Ok(()),
        Filter::And(a, b) | Filter::Or(a, b) => {
            check_in(a, schema, parent)?;
            check_in(b, schema, parent)
        }
        Filter::Not(inner) => check_in(inner, schema, parent),
        Filter::ValuePath { path, filter } => {
            if parent.is_some() {
                return Err(Error::filter(0, "value filters cannot be nested"));
            }
            let def = leaf_of(resolve(schema, path), path);
            if let Some(d) = def
                && d.ty != AttrType::Complex
            {
                return Err(Error::filter(
                    0,
                    format!(
                        "'{path}' is a {} attribute, not complex, so it cannot take \
                             a value filter",
                        d.ty.as_str()
                    ),
                ));
            }
            check_in(filter, schema, Some(def))
        }
    }
}

/// What a filter is being evaluated against.
#[derive(Clone, Copy)]
enum Scope<'d, 's> {
    /// A whole resource document.
    Resource(&'d Value),
    /// One element of a multi-valued (or complex) attribute, inside `[...]`.
    Element {
        value: &'d Value,
        parent: Option<&'s Attribute>,
    },
}

struct Eval<'s> {
    schema: ResourceSchema<'s>,
}

impl<'s> Eval<'s> {
    fn filter(&self, filter: &Filter, scope: Scope<'_, 's>) -> bool {
        match filter {
            Filter::Compare { path, op, value } => self.compare(scope, path, *op, value),
            Filter::Present(path) => self.present(scope, path),
            Filter::And(a, b) => self.filter(a, scope) && self.filter(b, scope),
            Filter::Or(a, b) => self.filter(a, scope) || self.filter(b, scope),
            Filter::Not(inner) => !self.filter(inner, scope),
            Filter::ValuePath { path, filter } => {
                let (value, attr) = self.locate(scope, path);
                let parent = leaf_of(attr, path);
                any_value(value, path.sub.as_deref(), &mut |element| {
                    self.filter(
                        filter,
                        Scope::Element {
                            value: element,
                            parent,
                        },
                    )
                })
            }
        }
    }

    fn present(&self, scope: Scope<'_, 's>, path: &AttrPath) -> bool {
        let (value, _) = self.locate(scope, path);
        any_value(value, path.sub.as_deref(), &mut is_present)
    }

    fn compare(
        &self,
        scope: Scope<'_, 's>,
        path: &AttrPath,
        op: CompareOp,
        literal: &CompValue,
    ) -> bool {
        match (op, literal) {
            (CompareOp::Ne, _) => return !self.compare(scope, path, CompareOp::Eq, literal),
            (CompareOp::Eq, CompValue::Null) => return !self.present(scope, path),
            (_, CompValue::Null) => return false,
            _ => {}
        }
        let (value, attr) = self.locate(scope, path);
        let def = compared_def(leaf_of(attr, path));
        let rule = Rule {
            ty: def.map(|d| d.ty),
            case_exact: def.is_some_and(|d| d.case_exact || d.ty == AttrType::Binary),
        };
        any_value(value, path.sub.as_deref(), &mut |v| match v {
            Value::Object(_) => {
                get_ci(v, "value").is_some_and(|inner| rule.compare(inner, op, literal))
            }
            _ => rule.compare(v, op, literal),
        })
    }

    /// The value of the attribute `path` names (before any sub-attribute)
    /// in `scope`, and its definition if the schema has one.
    fn locate<'d>(
        &self,
        scope: Scope<'d, 's>,
        path: &AttrPath,
    ) -> (Option<&'d Value>, Option<&'s Attribute>) {
        match scope {
            Scope::Element { value, parent } => {
                let attr = parent.and_then(|p| p.sub_attribute(&path.name));
                let found = match value {
                    Value::Object(_) => get_ci(value, &path.name),
                    // Elements of a multi-valued simple attribute (`schemas`)
                    // have no members; `value` is the element itself.
                    _ if path.name.eq_ignore_ascii_case("value") => Some(value),
                    _ => None,
                };
                (found, attr)
            }
            Scope::Resource(doc) => {
                let core = self.schema.core();
                match path.urn.as_deref() {
                    Some(urn) if core.id.eq_ignore_ascii_case(urn) => {
                        (get_ci(doc, &path.name), resolve(&self.schema, path))
                    }
                    Some(urn) => {
                        let ext = get_ci(doc, urn);
                        let found = ext.and_then(|e| get_ci(e, &path.name));
                        (found, resolve(&self.schema, path))
                    }
                    None => match resolve_name(&self.schema, None, &path.name) {
                        Some((Some(schema_id), attr))
                            if !core.id.eq_ignore_ascii_case(schema_id) =>
                        {
                            // Lenient: an extension attribute named without
                            // its URN; some clients also store it flat.
                            let found = get_ci(doc, schema_id)
                                .and_then(|e| get_ci(e, &path.name))
                                .or_else(|| get_ci(doc, &path.name));
                            (found, Some(attr))
                        }
                        resolved => (get_ci(doc, &path.name), resolved.map(|(_, a)| a)),
                    },
                }
            }
        }
    }
}

/// Resolves the attribute (not the sub-attribute) `path` names.
fn resolve<'s>(schema: &ResourceSchema<'s>, path: &AttrPath) -> Option<&'s Attribute> {
    resolve_name(schema, path.urn.as_deref(), &path.name).map(|(_, a)| a)
}

/// Resolves the attribute alone (see [`ResourceSchema::resolve_attribute`]),
/// returning the defining schema's URN.
fn resolve_name<'s>(
    schema: &ResourceSchema<'s>,
    urn: Option<&str>,
    name: &str,
) -> Option<(Option<&'s str>, &'s Attribute)> {
    schema
        .resolve_attribute(urn, name)
        .map(|(s, a)| (s.map(|s| s.id.as_str()), a))
}

/// The definition of what `path` names: its sub-attribute if it has one.
fn leaf_of<'s>(attr: Option<&'s Attribute>, path: &AttrPath) -> Option<&'s Attribute> {
    match &path.sub {
        Some(sub) => attr.and_then(|a| a.sub_attribute(sub)),
        None => attr,
    }
}

/// The definition values are compared under: a complex attribute compared
/// as a whole is compared through its `value` sub-attribute.
fn compared_def(leaf: Option<&Attribute>) -> Option<&Attribute> {
    match leaf {
        Some(a) if a.ty == AttrType::Complex => a.sub_attribute("value"),
        other => other,
    }
}

/// Looks up `key` in an object, exact match first, then ignoring ASCII case.
fn get_ci<'d>(value: &'d Value, key: &str) -> Option<&'d Value> {
    let map = value.as_object()?;
    map.get(key).or_else(|| {
        map.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

/// Calls `f` on each value `value` holds (each element, for an array), or on
/// each element's `sub` member when there is a sub-attribute; true as soon as
/// `f` is.
fn any_value(value: Option<&Value>, sub: Option<&str>, f: &mut dyn FnMut(&Value) -> bool) -> bool {
    let Some(value) = value else {
        return false;
    };
    match sub {
        None => any_item(value, f),
        Some(sub) => any_item(value, &mut |item| {
            get_ci(item, sub).is_some_and(|member| any_item(member, &mut *f))
        }),
    }
}

fn any_item(value: &Value, f: &mut dyn FnMut(&Value) -> bool) -> bool {
    match value {
        Value::Array(items) => items.iter().any(f),
        single => f(single),
    }
}

/// RFC 7644 `pr`: present, and neither null nor empty.
fn is_present(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(items) => items.iter().any(is_present),
        Value::Object(members) => members.values().any(is_present),
        Value::Bool(_) | Value::Number(_) => true,
    }
}

/// How one attribute's values compare, from its schema definition (`ty`
/// is `None` for attributes no schema defines).
#[derive(Clone, Copy)]
struct Rule {
    ty: Option<AttrType>,
    case_exact: bool,
}

impl Rule {
    /// One stored value against the literal; `ne` and `null` are handled
    /// by the caller.
    fn compare(self, value: &Value, op: CompareOp, literal: &CompValue) -> bool {
        match literal {
            CompValue::Null => false,
            CompValue::Boolean(b) => op == CompareOp::Eq && as_bool(value) == Some(*b),
            CompValue::Number(n) => {
                let ordering = match value {
                    Value::Number(v) => cmp_numbers(v, n),
                    Value::String(s) => s
                        .trim()
                        .parse::<f64>()
                        .ok()
                        .zip(n.as_f64())
                        .and_then(|(a, b)| a.partial_cmp(&b)),
                    _ => None,
                };
                ordering.is_some_and(|o| holds(op, o))
            }
            CompValue::String(s) => match value {
                Value::String(v) => self.compare_strings(v, op, s),
                Value::Bool(v) => op == CompareOp::Eq && parse_bool(s) == Some(*v),
                _ => false,
            },
        }
    }

    fn compare_strings(self, value: &str, op: CompareOp, literal: &str) -> bool {
        let ordered = matches!(
            op,
            CompareOp::Eq | CompareOp::Gt | CompareOp::Ge | CompareOp::Lt | CompareOp::Le
        );
        if ordered && self.ty == Some(AttrType::DateTime) {
            return match (parse_instant(value), parse_instant(literal)) {
                (Some(a), Some(b)) => holds(op, a.cmp(&b)),
                _ => false,
            };
        }
        if self.ty == Some(AttrType::Boolean)
            && op == CompareOp::Eq
            && let (Some(a), Some(b)) = (parse_bool(value), parse_bool(literal))
        {
            return a == b;
        }
        let exact = self.case_exact;
        match op {
            CompareOp::Eq => {
                if exact {
                    value == literal
                } else {
                    eq_ci(value, literal)
                }
            }
            CompareOp::Ne => !self.compare_strings(value, CompareOp::Eq, literal),
            CompareOp::Co => {
                if exact {
                    value.contains(literal)
                } else {
                    contains_ci(value, literal)
                }
            }
            CompareOp::Sw => {
                if exact {
                    value.starts_with(literal)
                } else {
                    starts_with_ci(value, literal)
                }
            }
            CompareOp::Ew => {
                if exact {
                    value.ends_with(literal)
                } else {
                    ends_with_ci(value, literal)
                }
            }
            CompareOp::Gt | CompareOp::Ge | CompareOp::Lt | CompareOp::Le => {
                let ordering = if exact {
                    value.cmp(literal)
                } else {
                    cmp_ci(value, literal)
                };
                holds(op, ordering)
            }
        }
    }
}

/// True when `ordering` (stored value against literal) satisfies `op`.
fn holds(op: CompareOp, ordering: Ordering) -> bool {
    match op {
        CompareOp::Eq => ordering == Ordering::Equal,
        CompareOp::Ne => ordering != Ordering::Equal,
        CompareOp::Gt => ordering == Ordering::Greater,
        CompareOp::Ge => ordering != Ordering::Less,
        CompareOp::Lt => ordering == Ordering::Less,
        CompareOp::Le => ordering != Ordering::Greater,
        CompareOp::Co | CompareOp::Sw | CompareOp::Ew => false,
    }
}

fn cmp_numbers(a: &Number, b: &Number) -> Option<Ordering> {
    if let (Some(x), Some(y)) = (a.as_i64(), b.as_i64()) {
        return Some(x.cmp(&y));
    }
    if let (Some(x), Some(y)) = (a.as_u64(), b.as_u64()) {
        return Some(x.cmp(&y));
    }
    a.as_f64()?.partial_cmp(&b.as_f64()?)
}

fn as_bool(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::String(s) => parse_bool(s),
        _ => None,
    }
}

fn parse_bool(s: &str) -> Option<bool> {
    if s.eq_ignore_ascii_case("true") {
        Some(true)
    } else if s.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

/// An xsd:dateTime as an instant: RFC 3339, or (leniently) without an
/// offset, which is then read as UTC.
fn parse_instant(s: &str) -> Option<DateTime<FixedOffset>> {
    DateTime::parse_from_rfc3339(s).ok().or_else(|| {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
            .ok()
            .map(|naive| naive.and_utc().fixed_offset())
    })
}

fn lower(s: &str) -> impl Iterator<Item = char> + '_ {
    s.chars().flat_map(char::to_lowercase)
}

fn lower_rev(s: &str) -> impl Iterator<Item = char> + '_ {
    s.chars().rev().flat_map(|c| c.to_lowercase().rev())
}

fn eq_ci(a: &str, b: &str) -> bool {
    if a.is_ascii() && b.is_ascii() {
        a.eq_ignore_ascii_case(b)
    } else {
        lower(a).eq(lower(b))
    }
}

fn cmp_ci(a: &str, b: &str) -> Ordering {
    if a.is_ascii() && b.is_ascii() {
        a.bytes()
            .map(|c| c.to_ascii_lowercase())
            .cmp(b.bytes().map(|c| c.to_ascii_lowercase()))
    } else {
        lower(a).cmp(lower(b))
    }
}

fn starts_with_ci(hay: &str, prefix: &str) -> bool {
    if hay.is_ascii() && prefix.is_ascii() {
        return hay
            .as_bytes()
            .get(..prefix.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(prefix.as_bytes()));
    }
    let mut h = lower(hay);
    lower(prefix).all(|c| h.next() == Some(c))
}

fn ends_with_ci(hay: &str, suffix: &str) -> bool {
    if hay.is_ascii() && suffix.is_ascii() {
        return hay
            .len()
            .checked_sub(suffix.len())
            .and_then(|start| hay.as_bytes().get(start..))
            .is_some_and(|tail| tail.eq_ignore_ascii_case(suffix.as_bytes()));
    }
    let mut h = lower_rev(hay);
    lower_rev(suffix).all(|c| h.next() == Some(c))
}

fn contains_ci(hay: &str, needle: &str) -> bool {
    if needle.is_empty() {
        return true;
    }
    if hay.is_ascii() && needle.is_ascii() {
        return hay
            .as_bytes()
            .windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()));
    }
    // Rare enough (non-ASCII substring search) to pay for two allocations.
    lower(hay)
        .collect::<String>()
        .contains(&lower(needle).collect::<String>())
}
