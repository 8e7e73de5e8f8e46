//! Validation of a POST or PUT body into the canonical document the store
//! keeps (RFC 7643 §2–§4, RFC 7644 §3.3, §3.5.1).
//!
//! The canonical document has `schemas` first (core URN first), attribute
//! and sub-attribute names in schema case, values coerced by
//! [`crate::value::coerce`], extension data under its schema URN, and no
//! `null`s, empty strings or empty lists (RFC 7643 §2.5: unassigned, null
//! and empty are the same state).
//!
//! Decisions where the RFCs leave room:
//! - A body without a `schemas` array containing the resource type's core
//!   URN is `invalidSyntax`: `schemas` is what tells a parser which
//!   structure the body has (RFC 7643 §3), so such a body does not conform
//!   to the request schema (RFC 7644 §3.12). URNs are compared ignoring case.
//! - Attributes no schema defines are kept verbatim, not rejected and not
//!   dropped. RFC 7644 §3.3 lets a server "alter and/or ignore" POSTed
//!   content but requires neither; Okta sends custom attributes at the top
//!   level, and IdP data that reaches scimgate must survive to the tenant's
//!   application. They are not type-checked (there is no type to check).
//!   Unknown extension URNs (`urn:...:CustomExtensionName:2.0:User`) are kept
//!   intact the same way. An extension attribute sent at the top level
//!   without its URN (`"employeeNumber": ...`) is, at the top level, such an
//!   attribute too and stays where it was sent: RFC 7643 §3.3 places
//!   extension attributes under their URN, and guessing would move a
//!   core-namespace custom attribute that merely shares the name.
//! - readOnly attributes and sub-attributes (`id`, `meta`, `groups`,
//!   `manager.displayName`) are ignored on input (RFC 7643 §2.2).
//! - The same attribute given twice (names differing only in case, or both
//!   nested and as a flat `urn:...:attr` key) is `invalidSyntax` rather
//!   than a silent last-one-wins.
//! - Replace (PUT): readOnly attributes are carried over from the existing
//!   document (top-level ones such as `id`, `meta`, `groups`, and readOnly
//!   sub-attributes of a complex value whose `value` is unchanged, e.g. the
//!   same manager's `displayName`); the caller still sets a fresh `meta`.
//!   Immutable attributes already set must be resent unchanged or omitted
//!   (an omitted one keeps its value, since it cannot be cleared); a
//!   different value is `mutability`. For a multi-valued complex attribute
//!   with immutable sub-attributes (Group `members`), elements are matched
//!   by `value`: members may be added and removed freely, but an existing
//!   member's `type` or `$ref` may not change.

use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::path::{is_attr_name, starts_with_urn};
use crate::schemas::{AttrType, Attribute, Mutability, ResourceSchema, Schema};
use crate::value::coerce;

/// What kind of write the body is for.
#[derive(Debug, Clone, Copy)]
pub enum Mode<'a> {
    /// POST: a new resource.
    Create,
    /// PUT: replaces `existing`, the currently stored document.
    Replace {
        /// The stored document being replaced.
        existing: &'a Value,
    },
}

/// A validated resource, ready to store.
#[derive(Clone, PartialEq)]
pub struct Validated {
    /// The canonical document, without `password`.
    pub document: Value,
    /// The cleartext `password` (writeOnly), if one was sent; never stored
    /// in the document.
    pub password: Option<String>,
}

impl std::fmt::Debug for Validated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Validated")
            .field("document", &self.document)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Validates a POST (`Mode::Create`) or PUT (`Mode::Replace`) body for a
/// resource of `schema`'s type and returns the canonical document to store.
pub fn validate_resource(
    input: &Value,
    schema: ResourceSchema<'_>,
    mode: Mode<'_>,
) -> Result<Validated> {
    let body = input
        .as_object()
        .ok_or_else(|| Error::InvalidSyntax("the request body must be a JSON object".into()))?;
    let listed = read_schemas(body, schema)?;
    let collected = collect(body, &listed, schema)?;

    let mut password = None;
    let mut top = Map::new();
    for (name, value) in collected.top {
        match top_level(schema, &name) {
            Some(def) => {
                let canonical = def.name.clone();
                if let Some(v) = process(def, value, &canonical, &mut password)? {
                    top.insert(canonical, v);
                }
            }
            None => {
                if !value.is_null() {
                    top.insert(name, value);
                }
            }
        }
    }

    let mut containers: Vec<(String, Option<&Schema>, Map<String, Value>)> = Vec::new();
    for c in collected.containers {
        let mut out = Map::new();
        for (name, value) in c.entries {
            match c.schema.and_then(|s| s.attribute(&name)) {
                Some(def) => {
                    let at = format!("{}:{}", c.key, def.name);
                    if let Some(v) = process(def, value, &at, &mut password)? {
                        out.insert(def.name.clone(), v);
                    }
                }
                // Unknown extensions are kept as sent (nulls included:
                // there is no schema to say what they mean).
                None if c.schema.is_none() => {
                    out.insert(name, value);
                }
                None => {
                    if !value.is_null() {
                        out.insert(name, value);
                    }
                }
            }
        }
        containers.push((c.key, c.schema, out));
    }

    if let Mode::Replace { existing } = mode {
        let empty = Map::new();
        let old = existing.as_object().unwrap_or(&empty);
        let top_defs = schema
            .registry
            .common
            .iter()
            .chain(schema.core().attributes.iter());
        reconcile(top_defs, &mut top, old, "")?;
        for ext in schema.extensions() {
            let Some(old_ext) = find_ci(old, &ext.id).and_then(Value::as_object) else {
                continue;
            };
            let idx = match containers
                .iter()
                .position(|(k, _, _)| k.eq_ignore_ascii_case(&ext.id))
            {
                Some(i) => i,
                None => {
                    containers.push((ext.id.clone(), Some(ext), Map::new()));
                    containers.len() - 1
                }
            };
            if let Some((_, _, map)) = containers.get_mut(idx) {
                reconcile(ext.attributes.iter(), map, old_ext, &format!("{}:", ext.id))?;
            }
        }
    }

    // Known extensions left empty are dropped; unknown ones stay intact.
    containers.retain(|(_, s, m)| s.is_none() || !m.is_empty());
    // `"urn:a:b": 1` next to `"urn:a:b:c": 2` would need two values under one key.
    if let Some((key, _, _)) = containers
        .iter()
        .find(|(k, _, _)| top.keys().any(|t| t.eq_ignore_ascii_case(k)))
    {
        return Err(Error::InvalidSyntax(format!(
            "'{key}' is given both as an attribute and as an extension"
        )));
    }

    check_required(schema, &top, &containers)?;

    let mut schemas = listed;
    for (key, _, _) in &containers {
        if !schemas.iter().any(|s| s.eq_ignore_ascii_case(key)) {
            schemas.push(key.clone());
        }
    }

    let mut doc = Map::with_capacity(top.len() + containers.len() + 1);
    doc.insert(
        "schemas".into(),
        Value::Array(schemas.into_iter().map(Value::String).collect()),
    );
    if let Some(id) = top.shift_remove("id") {
        doc.insert("id".into(), id);
    }
    let meta = top.shift_remove("meta");
    doc.extend(top);
    for (key, _, map) in containers {
        doc.insert(key, Value::Object(map));
    }
    if let Some(meta) = meta {
        doc.insert("meta".into(), meta);
    }
    Ok(Validated {
        document: Value::Object(doc),
        password,
    })
}

/// Reads `schemas`: canonical case for URNs the registry knows, duplicates
/// removed, the core URN first.
fn read_schemas(body: &Map<String, Value>, rs: ResourceSchema<'_>) -> Result<Vec<String>> {
    let core = &rs.core().id;
    let missing = || Error::InvalidSyntax(format!("'schemas' must be an array including '{core}'"));
    let items = find_ci(body, "schemas")
        .and_then(Value::as_array)
        .ok_or_else(missing)?;
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    for item in items {
        let urn = item
            .as_str()
            .ok_or_else(|| Error::InvalidSyntax("'schemas' must contain only strings".into()))?;
        let canonical = match rs.registry.schema(urn) {
            Some(s) => s.id.clone(),
            None => urn.to_owned(),
        };
        if !out.iter().any(|s| s.eq_ignore_ascii_case(&canonical)) {
            out.push(canonical);
        }
    }
    let pos = out
        .iter()
        .position(|s| s.eq_ignore_ascii_case(core))
        .ok_or_else(missing)?;
    let core_urn = out.remove(pos);
    out.insert(0, core_urn);
    Ok(out)
}

/// The body's attributes, grouped by where they belong, not yet validated.
struct Collected<'s> {
    /// Top-level (common and core) attributes, names as sent.
    top: Vec<(String, Value)>,
    /// Extension objects in order of first appearance.
    containers: Vec<Container<'s>>,
}

struct Container<'s> {
    /// The URN key: schema case if known, as sent otherwise.
    key: String,
    schema: Option<&'s Schema>,
    entries: Vec<(String, Value)>,
}

impl<'s> Collected<'s> {
    fn container(&mut self, key: &str, schema: Option<&'s Schema>) -> &mut Vec<(String, Value)> {
        let idx = match self
            .containers
            .iter()
            .position(|c| c.key.eq_ignore_ascii_case(key))
        {
            Some(i) => i,
            None => {
                self.containers.push(Container {
                    key: key.to_owned(),
                    schema,
                    entries: Vec::new(),
                });
                self.containers.len() - 1
            }
        };
        &mut self.containers[idx].entries
    }
}

/// How a top-level key starting with `urn:` is read.
enum UrnKey<'s> {
    /// A schema URN of this resource type: an object of its attributes.
    Schema(&'s Schema),
    /// `<known URN>:attr[.sub]`, the flat form Entra uses.
    Attr(&'s Schema, String, Option<String>),
    /// An unknown extension object, kept intact.
    Unknown,
    /// `<unknown URN>:attr[.sub]`, nested under its URN.
    UnknownAttr(String, String, Option<String>),
    /// Anything else: kept verbatim as a top-level attribute.
    Verbatim,
}

/// Sorts the body's keys into top-level attributes and extension objects.
fn collect<'s>(
    body: &Map<String, Value>,
    listed: &[String],
    rs: ResourceSchema<'s>,
) -> Result<Collected<'s>> {
    let core = rs.core();
    let mut c = Collected {
        top: Vec::new(),
        containers: Vec::new(),
    };
    for (key, value) in body {
        if key.eq_ignore_ascii_case("schemas") {
            continue;
        }
        if !starts_with_urn(key) {
            push(&mut c.top, key, None, value.clone())?;
            continue;
        }
        match classify(key, value, listed, rs) {
            UrnKey::Schema(s) => {
                let is_core = s.id == core.id;
                let entries = match value {
                    Value::Object(m) => m,
                    Value::Null => continue,
                    _ => {
                        return Err(Error::InvalidValue(format!(
                            "'{}' must be an object of the schema's attributes",
                            s.id
                        )));
                    }
                };
                for (name, v) in entries {
                    let target = if is_core {
                        &mut c.top
                    } else {
                        c.container(&s.id, Some(s))
                    };
                    push(target, name, None, v.clone())?;
                }
                if !is_core {
                    // Present even if empty, so `schemas` lists it.
                    c.container(&s.id, Some(s));
                }
            }
            UrnKey::Attr(s, name, sub) => {
                let target = if s.id == core.id {
                    &mut c.top
                } else {
                    c.container(&s.id, Some(s))
                };
                push(target, &name, sub.as_deref(), value.clone())?;
            }
            UrnKey::Unknown => {
                let entries = c.container(key, None);
                if let Value::Object(m) = value {
                    for (name, v) in m {
                        push(entries, name, None, v.clone())?;
                    }
                }
            }
            UrnKey::UnknownAttr(urn, name, sub) => {
                push(
                    c.container(&urn, None),
                    &name,
                    sub.as_deref(),
                    value.clone(),
                )?;
            }
            UrnKey::Verbatim => push(&mut c.top, key, None, value.clone())?,
        }
    }
    Ok(c)
}

/// Decides what a `urn:` key is. A known schema URN is an object of its
/// attributes and `<known URN>:name` one attribute. For unknown URNs the
/// body's `schemas` disambiguates (`urn:a:b:c` is an extension if listed,
/// an attribute `c` of `urn:a:b` if that is listed); failing that, an
/// object value is taken to be an extension and anything else an attribute.
fn classify<'s>(key: &str, value: &Value, listed: &[String], rs: ResourceSchema<'s>) -> UrnKey<'s> {
    if let Some(s) = rs.schema_for_urn(key) {
        return UrnKey::Schema(s);
    }
    let split = key
        .rfind(':')
        .and_then(|i| Some((key.get(..i)?, key.get(i + 1..)?)))
        .and_then(|(prefix, rest)| {
            let (name, sub) = split_attr(rest)?;
            Some((prefix, name, sub))
        });
    if let Some((prefix, name, sub)) = &split
        && let Some(s) = rs.schema_for_urn(prefix)
    {
        return UrnKey::Attr(s, name.clone(), sub.clone());
    }
    let is_listed = |u: &str| listed.iter().any(|l| l.eq_ignore_ascii_case(u));
    if is_listed(key) {
        return UrnKey::Unknown;
    }
    if let Some((prefix, name, sub)) = split {
        let prefix_is_urn = starts_with_urn(prefix) && prefix.len() > 4;
        if prefix_is_urn && (is_listed(prefix) || !value.is_object()) {
            return UrnKey::UnknownAttr(prefix.to_owned(), name, sub);
        }
    }
    if value.is_object() {
        UrnKey::Unknown
    } else {
        UrnKey::Verbatim
    }
}

/// Splits `attr` or `attr.sub` into valid attribute names.
fn split_attr(s: &str) -> Option<(String, Option<String>)> {
    let (name, sub) = match s.split_once('.') {
        Some((n, sub)) => (n, Some(sub)),
        None => (s, None),
    };
    if !is_attr_name(name) || sub.is_some_and(|x| !is_attr_name(x)) {
        return None;
    }
    Some((name.to_owned(), sub.map(str::to_owned)))
}

/// Adds one attribute (or, with `sub`, one sub-attribute of it) to a list,
/// refusing a second occurrence of the same name.
fn push(
    entries: &mut Vec<(String, Value)>,
    name: &str,
    sub: Option<&str>,
    value: Value,
) -> Result<()> {
    let twice =
        |what: &str| Error::InvalidSyntax(format!("attribute '{what}' is given more than once"));
    let existing = entries
        .iter_mut()
        .find(|(n, _)| n.eq_ignore_ascii_case(name));
    match (existing, sub) {
        (None, None) => entries.push((name.to_owned(), value)),
        (None, Some(s)) => {
            let mut m = Map::new();
            m.insert(s.to_owned(), value);
            entries.push((name.to_owned(), Value::Object(m)));
        }
        (Some((_, Value::Object(m))), Some(s)) => {
            if m.keys().any(|k| k.eq_ignore_ascii_case(s)) {
                return Err(twice(&format!("{name}.{s}")));
            }
            m.insert(s.to_owned(), value);
        }
        (Some(_), Some(s)) => return Err(twice(&format!("{name}.{s}"))),
        (Some(_), None) => return Err(twice(name)),
    }
    Ok(())
}

/// The definition of a top-level (common or core) attribute.
fn top_level<'a>(rs: ResourceSchema<'a>, name: &str) -> Option<&'a Attribute> {
    rs.registry
        .common
        .iter()
        .find(|a| a.name.eq_ignore_ascii_case(name))
        .or_else(|| rs.core().attribute(name))
}

/// Validates one known attribute's value: `None` when it is to be left out
/// (readOnly, unassigned, or the password, which goes to `password`).
fn process(
    def: &Attribute,
    value: Value,
    at: &str,
    password: &mut Option<String>,
) -> Result<Option<Value>> {
    if def.mutability == Mutability::ReadOnly {
        return Ok(None);
    }
    let v = coerce(def, value, at)?;
    if is_unassigned(&v) {
        return Ok(None);
    }
    if def.mutability == Mutability::WriteOnly && def.name == "password" {
        return match v {
            Value::String(s) => {
                *password = Some(s);
                Ok(None)
            }
            other => Err(Error::InvalidValue(format!(
                "'{at}' must be a string; got {}",
                crate::value::json_kind(&other)
            ))),
        };
    }
    shape(def, v, at)
}

/// Null, the empty string (Entra clears attributes with `""`) and the
/// empty list all mean "no value" (RFC 7643 §2.5).
fn is_unassigned(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// Structural rules on a coerced value: readOnly sub-attributes dropped,
/// required sub-attributes present, at most one `primary: true`.
fn shape(def: &Attribute, v: Value, at: &str) -> Result<Option<Value>> {
    let not_kind = |what: &str| Error::InvalidValue(format!("'{at}' must be {what}"));
    if def.multi_valued {
        let Value::Array(items) = v else {
            return Err(not_kind("an array"));
        };
        let mut out = Vec::with_capacity(items.len());
        let mut primaries = 0usize;
        for (i, item) in items.into_iter().enumerate() {
            let item = match item {
                Value::Null => continue,
                Value::Object(m) if def.ty == AttrType::Complex => {
                    let m = complex_value(def, m, &format!("{at}[{i}]"))?;
                    if m.is_empty() {
                        continue;
                    }
                    if m.get("primary") == Some(&Value::Bool(true)) {
                        primaries += 1;
                    }
                    Value::Object(m)
                }
                Value::Object(_) | Value::Array(_) => {
                    return Err(not_kind("an array of simple values"));
                }
                other => other,
            };
            out.push(item);
        }
        // RFC 7643 §2.4: "The primary attribute value 'true' MUST appear no
        // more than once."
        if primaries > 1 {
            return Err(Error::InvalidValue(format!(
                "'{at}' has {primaries} values with primary set to true; at most one is allowed"
            )));
        }
        return Ok((!out.is_empty()).then_some(Value::Array(out)));
    }
    match (def.ty, v) {
        (AttrType::Complex, Value::Object(m)) => {
            let m = complex_value(def, m, at)?;
            Ok((!m.is_empty()).then_some(Value::Object(m)))
        }
        (AttrType::Complex, _) => Err(not_kind("an object")),
        (_, Value::Object(_) | Value::Array(_)) => Err(not_kind("a single simple value")),
        (_, other) => Ok(Some(other)),
    }
}

/// One complex value: readOnly and null sub-attributes removed, required
/// ones checked. Unknown sub-attributes stay (as `coerce` keeps them).
fn complex_value(def: &Attribute, m: Map<String, Value>, at: &str) -> Result<Map<String, Value>> {
    let mut out = Map::with_capacity(m.len());
    for (k, v) in m {
        if v.is_null() {
            continue;
        }
        match def.sub_attribute(&k) {
            Some(sub) if sub.mutability == Mutability::ReadOnly => {}
            Some(sub) => {
                out.insert(sub.name.clone(), v);
            }
            None => {
                out.insert(k, v);
            }
        }
    }
    for sub in &def.sub_attributes {
        if sub.required && sub.mutability != Mutability::ReadOnly && !out.contains_key(&sub.name) {
            return Err(Error::InvalidValue(format!(
                "'{at}.{}' is required",
                sub.name
            )));
        }
    }
    Ok(out)
}

/// PUT against the stored document: carries readOnly values over and
/// enforces immutability (RFC 7644 §3.5.1).
fn reconcile<'a>(
    defs: impl Iterator<Item = &'a Attribute>,
    new: &mut Map<String, Value>,
    old: &Map<String, Value>,
    prefix: &str,
) -> Result<()> {
    for def in defs {
        let Some(old_v) = find_ci(old, &def.name).filter(|v| !v.is_null()) else {
            continue;
        };
        let at = format!("{prefix}{}", def.name);
        match def.mutability {
            Mutability::ReadOnly => {
                new.insert(def.name.clone(), old_v.clone());
            }
            Mutability::Immutable => match new.get(&def.name) {
                None => {
                    new.insert(def.name.clone(), old_v.clone());
                }
                Some(n) if !same_value(def, n, old_v) => {
                    return Err(immutable(&at));
                }
                Some(_) => {}
            },
            Mutability::ReadWrite | Mutability::WriteOnly => {
                if def.ty != AttrType::Complex {
                    continue;
                }
                let Some(n) = new.get_mut(&def.name) else {
                    continue;
                };
                if def.multi_valued {
                    reconcile_elements(def, n, old_v, &at)?;
                } else if let (Value::Object(nm), Value::Object(om)) = (n, old_v) {
                    reconcile_subs(def, nm, om, &at)?;
                }
            }
        }
    }
    Ok(())
}

/// Elements of a multi-valued complex attribute are matched by `value`;
/// matched pairs are reconciled sub-attribute by sub-attribute.
fn reconcile_elements(def: &Attribute, new: &mut Value, old: &Value, at: &str) -> Result<()> {
    let guarded = def
        .sub_attributes
        .iter()
        .any(|s| matches!(s.mutability, Mutability::Immutable | Mutability::ReadOnly));
    let (Some(value_def), true) = (def.sub_attribute("value"), guarded) else {
        return Ok(());
    };
    let (Value::Array(new_items), Value::Array(old_items)) = (new, old) else {
        return Ok(());
    };
    // Keyed lookup: a 100k-member group must not cost 100k² comparisons.
    let mut by_value: HashMap<String, &Map<String, Value>> =
        HashMap::with_capacity(old_items.len());
    for item in old_items {
        if let Some((key, m)) = item
            .as_object()
            .and_then(|m| Some((element_key(value_def, m)?, m)))
        {
            by_value.entry(key).or_insert(m);
        }
    }
    for (i, item) in new_items.iter_mut().enumerate() {
        let Value::Object(nm) = item else { continue };
        let Some(key) = element_key(value_def, nm) else {
            continue;
        };
        if let Some(om) = by_value.get(&key) {
            reconcile_subs(def, nm, om, &format!("{at}[{i}]"))?;
        }
    }
    Ok(())
}

fn element_key(value_def: &Attribute, m: &Map<String, Value>) -> Option<String> {
    m.get(&value_def.name)
        .map(|v| normalize(value_def, v).to_string())
}

/// Sub-attributes of one complex value: immutable ones must match (or are
/// carried over when omitted); readOnly ones are carried over when the
/// value still refers to the same thing (same `value`, if it has one).
fn reconcile_subs(
    def: &Attribute,
    new: &mut Map<String, Value>,
    old: &Map<String, Value>,
    at: &str,
) -> Result<()> {
    let same_referent = match def.sub_attribute("value") {
        Some(vd) => match (new.get(&vd.name), find_ci(old, &vd.name)) {
            (Some(a), Some(b)) => same_value(vd, a, b),
            _ => false,
        },
        None => true,
    };
    for sub in &def.sub_attributes {
        let Some(old_v) = find_ci(old, &sub.name).filter(|v| !v.is_null()) else {
            continue;
        };
        match sub.mutability {
            Mutability::Immutable => match new.get(&sub.name) {
                None => {
                    new.insert(sub.name.clone(), old_v.clone());
                }
                Some(n) if !same_value(sub, n, old_v) => {
                    return Err(immutable(&format!("{at}.{}", sub.name)));
                }
                Some(_) => {}
            },
            Mutability::ReadOnly if same_referent => {
                new.insert(sub.name.clone(), old_v.clone());
            }
            _ => {}
        }
    }
    Ok(())
}

fn immutable(at: &str) -> Error {
    Error::Mutability(format!(
        "'{at}' is immutable and already has a different value"
    ))
}

/// Equality as the attribute defines it: case per `caseExact`, dateTimes as
/// instants, multi-valued as unordered sets.
fn same_value(def: &Attribute, a: &Value, b: &Value) -> bool {
    normalize(def, a) == normalize(def, b)
}

fn normalize(def: &Attribute, v: &Value) -> Value {
    if def.multi_valued
        && let Value::Array(items) = v
    {
        let mut keys: Vec<String> = items
            .iter()
            .map(|i| normalize_single(def, i).to_string())
            .collect();
        keys.sort();
        return Value::Array(keys.into_iter().map(Value::String).collect());
    }
    normalize_single(def, v)
}

fn normalize_single(def: &Attribute, v: &Value) -> Value {
    match (def.ty, v) {
        (AttrType::Complex, Value::Object(m)) => {
            let mut entries: Vec<(String, Value)> = m
                .iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| match def.sub_attribute(k) {
                    Some(sub) => (sub.name.clone(), normalize(sub, v)),
                    None => (k.clone(), v.clone()),
                })
                .collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().collect())
        }
        (AttrType::String | AttrType::Reference, Value::String(s)) if !def.case_exact => {
            Value::String(s.to_lowercase())
        }
        (AttrType::DateTime, Value::String(s)) => match chrono::DateTime::parse_from_rfc3339(s) {
            Ok(t) => Value::String(t.with_timezone(&chrono::Utc).to_rfc3339()),
            Err(_) => v.clone(),
        },
        _ => v.clone(),
    }
}

/// Required attributes (RFC 7643 §2.2 `required`) must be present and
/// non-empty, in the core schema and in every required extension.
fn check_required(
    rs: ResourceSchema<'_>,
    top: &Map<String, Value>,
    containers: &[(String, Option<&Schema>, Map<String, Value>)],
) -> Result<()> {
    let check = |attrs: &[Attribute], doc: Option<&Map<String, Value>>, prefix: &str| {
        for a in attrs {
            if !a.required || a.mutability == Mutability::ReadOnly {
                continue;
            }
            let present = doc
                .and_then(|d| d.get(&a.name))
                .is_some_and(|v| !is_blank(v));
            if !present {
                return Err(Error::InvalidValue(format!(
                    "'{prefix}{}' is required and must not be empty",
                    a.name
                )));
            }
        }
        Ok(())
    };
    check(&rs.core().attributes, Some(top), "")?;
    for (urn, required) in &rs.resource_type.schema_extensions {
        if !required {
            continue;
        }
        let Some(ext) = rs.registry.schema(urn) else {
            continue;
        };
        let doc = containers
            .iter()
            .find(|(k, _, _)| k.eq_ignore_ascii_case(&ext.id))
            .map(|(_, _, m)| m);
        if doc.is_none() {
            return Err(Error::InvalidValue(format!(
                "the '{}' extension is required",
                ext.id
            )));
        }
        check(&ext.attributes, doc, &format!("{}:", ext.id))?;
    }
    Ok(())
}

fn is_blank(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(m) => m.is_empty(),
        Value::Bool(_) | Value::Number(_) => false,
    }
}

/// A member of `m` by name, ignoring case (RFC 7643 §2.1).
fn find_ci<'a>(m: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    m.get(name).or_else(|| {
        m.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    })
}
