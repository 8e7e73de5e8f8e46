//! Attribute mapping: the document one delivery target's application
//! receives, shaped from the resource scimgate holds (docs/mappings.md).
//!
//! A mapping is a list of rules per resource type, each setting (or
//! removing) one target attribute from a source attribute, a constant or a
//! concatenation, optionally transformed (lower/upper case, a value map)
//! and with a default. Rules read the *source* document, never each
//! other's output, so their order does not matter and a rename cannot
//! chain. Pure: no I/O, so the admin API's preview and the worker's
//! delivery shape a document the same way.

use std::collections::{BTreeMap, HashSet};

use scim::filter::PatchPath;
use scim::schemas::Attribute;
use scim::{AttrPath, ResourceSchema};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Rules per resource type at most: a mapping is configuration, not data.
pub const MAX_RULES: usize = 200;
/// Parts of one concatenation at most.
pub const MAX_PARTS: usize = 20;
/// Entries of one value map at most.
pub const MAX_MAP_ENTRIES: usize = 1000;

/// Why a mapping was refused, naming the rule and attribute at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{at}: {message}")]
pub struct MappingError {
    /// Where: e.g. `users.attributes[2] (target "costCenter")`.
    pub at: String,
    /// What is wrong there.
    pub message: String,
}

fn fail(at: &str, message: impl Into<String>) -> MappingError {
    MappingError {
        at: at.to_owned(),
        message: message.into(),
    }
}

/// A mapping as written (stored, and sent over the admin API).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MappingSpec {
    /// How users are shaped; absent: as stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub users: Option<SideSpec>,
    /// How groups are shaped; absent: as stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<SideSpec>,
    /// Webhooks also carry the unmapped document as `raw`.
    #[serde(default)]
    pub raw: bool,
}

/// The rules for one resource type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SideSpec {
    /// Start from the whole document (`true`, the default) or only from
    /// what scimgate itself adds (`false`: `id`, `meta`, `schemas`, and a
    /// user's effective roles, which a rule may still remove; everything
    /// else goes out only when a rule maps it).
    #[serde(default = "yes")]
    pub keep_unmapped: bool,
    /// The rules.
    #[serde(default)]
    pub attributes: Vec<RuleSpec>,
}

fn yes() -> bool {
    true
}

/// One rule as written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RuleSpec {
    /// The attribute set: `title`, `name.givenName`, or qualified by a
    /// schema URN (`urn:...:extension:enterprise:2.0:User:costCenter`).
    pub target: String,
    /// The attribute read, a PATCH-style path: a value filter picks an
    /// element of a multi-valued attribute (`emails[type eq "work"].value`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// A constant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    /// Source attributes and literal text joined into one string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concat: Option<Vec<PartSpec>>,
    /// Removes the target instead of setting it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub remove: bool,
    /// Case change of the value's strings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transform: Option<Transform>,
    /// Replaces a value found here by the value it maps to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub map: Option<BTreeMap<String, Value>>,
    /// The value when the source has none (and for values `map` lacks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
}

/// One part of a concatenation: an attribute or literal text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged, deny_unknown_fields)]
pub enum PartSpec {
    /// `{"source": "name.givenName"}`.
    Source {
        /// The attribute read.
        source: String,
    },
    /// `{"text": " "}`.
    Text {
        /// The text.
        text: String,
    },
}

/// A case change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transform {
    /// Lower case.
    Lower,
    /// Upper case.
    Upper,
}

/// Which resources a side shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Users.
    Users,
    /// Groups.
    Groups,
}

impl Side {
    fn schema(self) -> ResourceSchema<'static> {
        match self {
            Side::Users => ResourceSchema::user(),
            Side::Groups => ResourceSchema::group(),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Side::Users => "users",
            Side::Groups => "groups",
        }
    }
}

/// A checked mapping, ready to apply.
#[derive(Debug, Clone, Default)]
pub struct Mapping {
    users: Option<Rules>,
    groups: Option<Rules>,
    raw: bool,
}

#[derive(Debug, Clone)]
struct Rules {
    keep_unmapped: bool,
    rules: Vec<Rule>,
}

#[derive(Debug, Clone)]
struct Rule {
    target: Place,
    what: What,
    transform: Option<Transform>,
    map: Option<BTreeMap<String, Value>>,
    default: Option<Value>,
}

#[derive(Debug, Clone)]
enum What {
    Source(Source),
    Value(Value),
    Concat(Vec<Part>),
    Remove,
}

#[derive(Debug, Clone)]
enum Part {
    Source(Source),
    Text(String),
}

/// Where a target attribute lives in a document.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Place {
    /// The extension object's key; `None` for the document's top level.
    extension: Option<String>,
    name: String,
    sub: Option<String>,
}

/// A source attribute, resolved against the resource's schemas.
#[derive(Debug, Clone)]
struct Source {
    path: PatchPath,
    /// The extension URN it lives under, `None` for the top level.
    extension: Option<String>,
}

impl MappingSpec {
    /// Reads a mapping sent as JSON (not yet checked: see
    /// [`Mapping::parse`]).
    pub fn from_json(value: &Value) -> Result<MappingSpec, MappingError> {
        serde_json::from_value(value.clone())
            .map_err(|e| fail("mapping", format!("does not parse: {e}")))
    }
}

impl Mapping {
    /// Parses and checks a mapping sent as JSON.
    pub fn from_json(value: &Value) -> Result<Mapping, MappingError> {
        Mapping::parse(&MappingSpec::from_json(value)?)
    }

    /// Checks `spec`: every path parses, every rule has exactly one value
    /// source, constants fit the attribute they set, no target is set
    /// twice, and `id`, `meta` and `schemas` stay scimgate's.
    pub fn parse(spec: &MappingSpec) -> Result<Mapping, MappingError> {
        let side = |s: &Option<SideSpec>, side: Side| {
            s.as_ref().map(|s| Rules::parse(s, side)).transpose()
        };
        Ok(Mapping {
            users: side(&spec.users, Side::Users)?,
            groups: side(&spec.groups, Side::Groups)?,
            raw: spec.raw,
        })
    }

    /// True when webhooks carry the unmapped document too.
    pub fn raw(&self) -> bool {
        self.raw
    }

    /// True when `side` starts from the whole document (no mapping, or
    /// `keepUnmapped`), so nothing of the source is withheld.
    pub fn keeps_unmapped(&self, side: Side) -> bool {
        self.rules(side).is_none_or(|r| r.keep_unmapped)
    }

    /// True when `side` is delivered as stored.
    pub fn is_identity(&self, side: Side) -> bool {
        self.rules(side).is_none()
    }

    fn rules(&self, side: Side) -> Option<&Rules> {
        match side {
            Side::Users => self.users.as_ref(),
            Side::Groups => self.groups.as_ref(),
        }
    }

    /// The document the application receives for `data` (a rendered user
    /// or group: `id`, `meta`, and for users their roles).
    pub fn apply(&self, side: Side, data: &Value) -> Value {
        match self.rules(side) {
            Some(rules) => rules.apply(side, data),
            None => data.clone(),
        }
    }
}

impl Rules {
    fn parse(spec: &SideSpec, side: Side) -> Result<Rules, MappingError> {
        if spec.attributes.len() > MAX_RULES {
            return Err(fail(
                side.name(),
                format!("{} rules, at most {MAX_RULES}", spec.attributes.len()),
            ));
        }
        let schema = side.schema();
        let mut seen: HashSet<Place> = HashSet::new();
        let mut rules = Vec::with_capacity(spec.attributes.len());
        for (i, r) in spec.attributes.iter().enumerate() {
            let at = format!("{}.attributes[{i}] (target {:?})", side.name(), r.target);
            let (target, def) = target_place(&r.target, schema).map_err(|m| fail(&at, m))?;
            let key = Place {
                extension: target.extension.as_ref().map(|e| e.to_ascii_lowercase()),
                name: target.name.to_ascii_lowercase(),
                sub: target.sub.as_ref().map(|s| s.to_ascii_lowercase()),
            };
            if !seen.insert(key) {
                return Err(fail(
                    &at,
                    "this attribute is already set by an earlier rule",
                ));
            }
            // `null` is no value (JSON cannot tell it from an absent one
            // once stored).
            let value = r.value.as_ref().filter(|v| !v.is_null());
            let default = r.default.as_ref().filter(|v| !v.is_null());
            let sources = usize::from(r.source.is_some())
                + usize::from(value.is_some())
                + usize::from(r.concat.is_some())
                + usize::from(r.remove);
            if sources != 1 {
                return Err(fail(
                    &at,
                    "give exactly one of \"source\", \"value\", \"concat\" or \"remove\": true",
                ));
            }
            let what = if r.remove {
                if r.transform.is_some() || r.map.is_some() || default.is_some() {
                    return Err(fail(&at, "a removal takes no transform, map or default"));
                }
                What::Remove
            } else if let Some(source) = &r.source {
                What::Source(Source::parse(source, schema).map_err(|m| fail(&at, m))?)
            } else if let Some(value) = value {
                check_value(def, value).map_err(|m| fail(&at, format!("\"value\": {m}")))?;
                What::Value(value.clone())
            } else {
                let parts = r.concat.as_deref().unwrap_or_default();
                if parts.is_empty() || parts.len() > MAX_PARTS {
                    return Err(fail(
                        &at,
                        format!("\"concat\" takes 1 to {MAX_PARTS} parts"),
                    ));
                }
                let parts = parts
                    .iter()
                    .map(|p| match p {
                        PartSpec::Source { source } => {
                            Source::parse(source, schema).map(Part::Source)
                        }
                        PartSpec::Text { text } => Ok(Part::Text(text.clone())),
                    })
                    .collect::<Result<Vec<_>, String>>()
                    .map_err(|m| fail(&at, m))?;
                What::Concat(parts)
            };
            if let Some(map) = &r.map {
                if map.len() > MAX_MAP_ENTRIES {
                    return Err(fail(
                        &at,
                        format!("\"map\" has more than {MAX_MAP_ENTRIES} entries"),
                    ));
                }
                for (from, to) in map {
                    check_value(def, to)
                        .map_err(|m| fail(&at, format!("\"map\" entry {from:?}: {m}")))?;
                }
            }
            if let Some(default) = default {
                check_value(def, default).map_err(|m| fail(&at, format!("\"default\": {m}")))?;
            }
            rules.push(Rule {
                target,
                what,
                transform: r.transform,
                map: r.map.clone(),
                default: default.cloned(),
            });
        }
        Ok(Rules {
            keep_unmapped: spec.keep_unmapped,
            rules,
        })
    }

    fn apply(&self, side: Side, data: &Value) -> Value {
        let schema = side.schema();
        let Some(source) = data.as_object() else {
            return data.clone();
        };
        let mut out = if self.keep_unmapped {
            source.clone()
        } else {
            source
                .iter()
                .filter(|(k, _)| is_scimgates(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        };
        for rule in &self.rules {
            match rule.value(source, schema) {
                Some(value) => set(&mut out, &rule.target, value),
                None => unset(&mut out, &rule.target),
            }
        }
        fix_schemas(&mut out, schema);
        Value::Object(out)
    }
}

impl Rule {
    /// The value this rule gives its target from `doc`; `None` removes it.
    fn value(&self, doc: &Map<String, Value>, schema: ResourceSchema<'_>) -> Option<Value> {
        let found = match &self.what {
            What::Remove => return None,
            What::Value(v) => Some(v.clone()),
            What::Source(s) => s.read(doc, schema).cloned(),
            What::Concat(parts) => concat(parts, doc, schema),
        };
        let found = found
            .filter(|v| !is_empty(v))
            .map(|v| match self.transform {
                Some(t) => transform(v, t),
                None => v,
            });
        let mapped = match (&self.map, found) {
            (Some(map), Some(v)) => lookup(map, &v).cloned().or_else(|| {
                // A value the map lacks keeps itself unless a default is given.
                if self.default.is_some() {
                    None
                } else {
                    Some(v)
                }
            }),
            (_, found) => found,
        };
        mapped.or_else(|| self.default.clone())
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

fn transform(v: Value, t: Transform) -> Value {
    let case = |s: String| match t {
        Transform::Lower => s.to_lowercase(),
        Transform::Upper => s.to_uppercase(),
    };
    match v {
        Value::String(s) => Value::String(case(s)),
        Value::Array(items) => Value::Array(items.into_iter().map(|i| transform(i, t)).collect()),
        other => other,
    }
}

/// The value `map` gives `v`: its exact spelling first, then ignoring case
/// (directory values such as departments are spelled inconsistently).
fn lookup<'m>(map: &'m BTreeMap<String, Value>, v: &Value) -> Option<&'m Value> {
    let key = scalar_text(v)?;
    map.get(&key).or_else(|| {
        map.iter()
            .find(|(k, _)| k.to_lowercase() == key.to_lowercase())
            .map(|(_, to)| to)
    })
}

fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn concat(parts: &[Part], doc: &Map<String, Value>, schema: ResourceSchema<'_>) -> Option<Value> {
    let mut out = String::new();
    let mut any = false;
    for part in parts {
        match part {
            Part::Text(t) => out.push_str(t),
            Part::Source(s) => {
                if let Some(text) = s.read(doc, schema).and_then(scalar_text) {
                    any |= !text.is_empty();
                    out.push_str(&text);
                }
            }
        }
    }
    // Only literal text is no value: "Ann " when the family name is missing
    // is trimmed, " " alone is nothing.
    let trimmed = out.trim();
    (any && !trimmed.is_empty()).then(|| Value::String(trimmed.to_owned()))
}

/// Case-insensitive key lookup (RFC 7643 §2.1), exact spelling first.
fn get_ci<'d>(map: &'d Map<String, Value>, name: &str) -> Option<&'d Value> {
    map.get(name).or_else(|| {
        map.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    })
}

fn key_ci(map: &Map<String, Value>, name: &str) -> Option<String> {
    if map.contains_key(name) {
        return Some(name.to_owned());
    }
    map.keys().find(|k| k.eq_ignore_ascii_case(name)).cloned()
}

fn is_primary(v: &Value) -> bool {
    v.as_object()
        .and_then(|o| get_ci(o, "primary"))
        .is_some_and(|p| p == &Value::Bool(true))
}

/// Of several elements, the one marked primary, else the first.
fn pick<'d>(items: impl Iterator<Item = &'d Value> + Clone) -> Option<&'d Value> {
    items
        .clone()
        .find(|v| is_primary(v))
        .or_else(|| items.into_iter().next())
}

impl Source {
    fn parse(text: &str, schema: ResourceSchema<'_>) -> Result<Source, String> {
        let path = scim::filter::parse_path(text).map_err(|e| format!("source {text:?}: {e}"))?;
        if let Some(filter) = &path.filter {
            scim::filter::check(filter, schema).map_err(|e| format!("source {text:?}: {e}"))?;
        }
        let extension = extension_of(&path.attr, schema);
        Ok(Source { path, extension })
    }

    fn read<'d>(
        &self,
        doc: &'d Map<String, Value>,
        schema: ResourceSchema<'_>,
    ) -> Option<&'d Value> {
        let container = match &self.extension {
            Some(urn) => get_ci(doc, urn)?.as_object()?,
            None => doc,
        };
        let attr = &self.path.attr;
        let value = get_ci(container, &attr.name)?;
        if let Some(filter) = &self.path.filter {
            let parent = AttrPath {
                urn: attr.urn.clone(),
                name: attr.name.clone(),
                sub: None,
            };
            let items = value.as_array()?;
            let element = pick(
                items
                    .iter()
                    .filter(|e| scim::filter::matches_element(filter, e, schema, &parent)),
            )?;
            return match &self.path.sub {
                Some(sub) => get_ci(element.as_object()?, sub),
                None => Some(element),
            };
        }
        match (&attr.sub, value) {
            (None, v) => Some(v),
            (Some(sub), Value::Array(items)) => {
                let element = pick(items.iter().filter(|e| e.is_object()))?;
                get_ci(element.as_object()?, sub)
            }
            (Some(sub), Value::Object(o)) => get_ci(o, sub),
            (Some(_), _) => None,
        }
    }
}

/// The extension URN under which `path` lives in a document, or `None`
/// for the top level: an explicit URN other than the core schema's, or
/// (for a bare name) the writable extension the schema resolves it to,
/// as the gateway stores it.
fn extension_of(path: &AttrPath, schema: ResourceSchema<'_>) -> Option<String> {
    match &path.urn {
        Some(urn) if urn.eq_ignore_ascii_case(&schema.core().id) => None,
        Some(urn) => Some(urn.clone()),
        None => schema
            .resolve(path)
            .filter(|r| r.is_extension(&schema))
            .and_then(|r| r.schema)
            .map(|s| s.id.clone()),
    }
}

const RESERVED: [&str; 3] = ["id", "meta", "schemas"];

/// What a select-mode mapping keeps without a rule: the resource's
/// identity and the roles scimgate derived (an outbound SCIM target
/// without them would clear the application's roles).
fn is_scimgates(key: &str) -> bool {
    RESERVED
        .iter()
        .chain(&["roles", scim::schemas::SCIMGATE_USER])
        .any(|n| key.eq_ignore_ascii_case(n))
}

/// Where `text` puts its value, with the attribute's definition when a
/// schema defines it. A bare name is the top level (a custom attribute of
/// the application's), never an extension's.
fn target_place<'s>(
    text: &str,
    schema: ResourceSchema<'s>,
) -> Result<(Place, Option<&'s Attribute>), String> {
    if text.contains('[') {
        return Err("a target is an attribute, without a value filter".into());
    }
    let path = AttrPath::parse(text).map_err(|e| e.to_string())?;
    let extension = match &path.urn {
        Some(urn) if urn.eq_ignore_ascii_case(&schema.core().id) => None,
        Some(urn) => Some(urn.clone()),
        None => None,
    };
    if extension.is_none() && RESERVED.iter().any(|r| path.name.eq_ignore_ascii_case(r)) {
        return Err(format!(
            "\"{}\" is scimgate's and cannot be mapped",
            path.name
        ));
    }
    let def = match &extension {
        Some(_) => schema.resolve(&path),
        None => schema
            .resolve_attribute(Some(&schema.core().id), &path.name)
            .and_then(|(s, a)| {
                let sub = match &path.sub {
                    Some(sub) => Some(a.sub_attribute(sub)?),
                    None => None,
                };
                Some(scim::schemas::AttrRef {
                    schema: s,
                    attribute: a,
                    sub_attribute: sub,
                })
            }),
    };
    // Known attributes keep their schema spelling.
    let name = def
        .as_ref()
        .map_or(path.name.clone(), |d| d.attribute.name.clone());
    let sub = match (&path.sub, def.as_ref().and_then(|d| d.sub_attribute)) {
        (Some(_), Some(s)) => Some(s.name.clone()),
        (sub, _) => sub.clone(),
    };
    Ok((
        Place {
            extension,
            name,
            sub,
        },
        def.map(|d| d.leaf()),
    ))
}

/// Checks a constant against the attribute it sets, when a schema defines
/// it (an application's own attributes take any JSON).
fn check_value(def: Option<&Attribute>, value: &Value) -> Result<(), String> {
    match def {
        Some(attr) => scim::value::coerce(attr, value.clone(), &attr.name)
            .map(|_| ())
            .map_err(|e| e.to_string()),
        None => Ok(()),
    }
}

/// The object `place` lives in, made when missing.
fn container<'d>(
    doc: &'d mut Map<String, Value>,
    place: &Place,
) -> Option<&'d mut Map<String, Value>> {
    let Some(urn) = &place.extension else {
        return Some(doc);
    };
    let key = key_ci(doc, urn).unwrap_or_else(|| urn.clone());
    let slot = doc.entry(key).or_insert_with(|| Value::Object(Map::new()));
    if !slot.is_object() {
        *slot = Value::Object(Map::new());
    }
    slot.as_object_mut()
}

fn set(doc: &mut Map<String, Value>, place: &Place, value: Value) {
    let Some(map) = container(doc, place) else {
        return;
    };
    let key = key_ci(map, &place.name);
    match &place.sub {
        None => {
            // Another spelling of the name gives way to the rule's.
            if let Some(k) = key.filter(|k| k != &place.name) {
                map.shift_remove(&k);
            }
            map.insert(place.name.clone(), value);
        }
        Some(sub) => {
            let k = key.unwrap_or_else(|| place.name.clone());
            let slot = map.entry(k).or_insert_with(|| Value::Object(Map::new()));
            if !slot.is_object() {
                *slot = Value::Object(Map::new());
            }
            if let Value::Object(o) = slot {
                if let Some(old) = key_ci(o, sub).filter(|k| k != sub) {
                    o.shift_remove(&old);
                }
                o.insert(sub.clone(), value);
            }
        }
    }
}

fn unset(doc: &mut Map<String, Value>, place: &Place) {
    if let Some(urn) = &place.extension {
        let Some(k) = key_ci(doc, urn) else { return };
        let Some(Value::Object(ext)) = doc.get_mut(&k) else {
            return;
        };
        remove_in(ext, place);
        if ext.is_empty() {
            doc.shift_remove(&k);
        }
        return;
    }
    remove_in(doc, place);
}

fn remove_in(map: &mut Map<String, Value>, place: &Place) {
    let Some(k) = key_ci(map, &place.name) else {
        return;
    };
    match &place.sub {
        None => {
            map.shift_remove(&k);
        }
        Some(sub) => {
            if let Some(Value::Object(o)) = map.get_mut(&k) {
                if let Some(s) = key_ci(o, sub) {
                    o.shift_remove(&s);
                }
                if o.is_empty() {
                    map.shift_remove(&k);
                }
            }
        }
    }
}

/// `schemas` lists the core schema and exactly the extensions the mapped
/// document holds (RFC 7643 §3).
fn fix_schemas(doc: &mut Map<String, Value>, schema: ResourceSchema<'_>) {
    let core = schema.core().id.clone();
    let mut urns = vec![Value::String(core.clone())];
    for (k, v) in doc.iter() {
        if v.is_object() && k.contains(':') && !k.eq_ignore_ascii_case(&core) {
            urns.push(Value::String(k.clone()));
        }
    }
    let key = key_ci(doc, "schemas").unwrap_or_else(|| "schemas".to_owned());
    doc.insert(key, Value::Array(urns));
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ENT: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
    const CUSTOM: &str = "urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User";

    fn user() -> Value {
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENT, CUSTOM],
            "id": "u1",
            "userName": "Ann.Lee@Acme.example",
            "name": {"givenName": "Ann", "familyName": "Lee"},
            "title": "Engineer",
            "emails": [
                {"type": "home", "value": "ann@home.example"},
                {"type": "work", "value": "ann@acme.example", "primary": true}
            ],
            ENT: {"department": "Sales", "employeeNumber": "42"},
            CUSTOM: {"costCenterCode": "cc-7"},
            "roles": [{"value": "admin"}],
            "meta": {"resourceType": "User", "version": "W/\"3\""}
        })
    }

    fn mapping(users: Value) -> Result<Mapping, MappingError> {
        Mapping::from_json(&json!({ "users": users }))
    }

    #[test]
    fn renames_transforms_and_maps_extension_attributes() {
        let m = mapping(json!({"attributes": [
            {"target": "costCenter", "source": format!("{ENT}:department"),
             "map": {"sales": "CC-100", "Engineering": "CC-200"}, "default": "CC-000"},
            {"target": format!("{ENT}:department"), "remove": true},
            {"target": "userName", "source": "userName", "transform": "lower"},
            {"target": "displayName", "concat": [
                {"source": "name.givenName"}, {"text": " "}, {"source": "name.familyName"}]},
            {"target": "workEmail", "source": "emails[type eq \"work\"].value"},
            {"target": "code", "source": format!("{CUSTOM}:costCenterCode"), "transform": "upper"},
            {"target": "tier", "value": "gold"},
            {"target": "title", "remove": true}
        ]}))
        .expect("valid");
        let out = m.apply(Side::Users, &user());
        assert_eq!(out["costCenter"], "CC-100", "map matched ignoring case");
        assert_eq!(out["userName"], "ann.lee@acme.example");
        assert_eq!(out["displayName"], "Ann Lee");
        assert_eq!(out["workEmail"], "ann@acme.example");
        assert_eq!(out["code"], "CC-7");
        assert_eq!(out["tier"], "gold");
        assert!(out.get("title").is_none());
        assert_eq!(out[ENT], json!({"employeeNumber": "42"}));
        assert_eq!(out["id"], "u1");
        assert_eq!(
            out["roles"],
            json!([{"value": "admin"}]),
            "unmapped attributes kept"
        );
        assert_eq!(
            out["schemas"],
            json!(["urn:ietf:params:scim:schemas:core:2.0:User", ENT, CUSTOM])
        );
    }

    #[test]
    fn select_mode_sends_only_what_is_mapped() {
        let m = mapping(json!({"keepUnmapped": false, "attributes": [
            {"target": "email", "source": "emails.value"},
            {"target": format!("{ENT}:costCenter"), "source": "department"}
        ]}))
        .expect("valid");
        let out = m.apply(Side::Users, &user());
        let mut keys: Vec<&String> = out.as_object().expect("object").keys().collect();
        keys.sort();
        assert_eq!(keys, ["email", "id", "meta", "roles", "schemas", ENT]);
        assert_eq!(out["email"], "ann@acme.example", "the primary email");
        assert_eq!(
            out[ENT]["costCenter"], "Sales",
            "bare enterprise names resolve"
        );
        assert_eq!(
            out["schemas"],
            json!(["urn:ietf:params:scim:schemas:core:2.0:User", ENT])
        );
    }

    #[test]
    fn defaults_fill_what_the_source_lacks() {
        let m = mapping(json!({"attributes": [
            {"target": "costCenter", "source": format!("{ENT}:division"), "default": "none"},
            {"target": "nick", "source": "nickName"},
            {"target": "x", "concat": [{"source": "nickName"}, {"text": " "}]},
            {"target": "dept", "source": format!("{ENT}:department"), "map": {"Ops": "O"}},
            {"target": "dept2", "source": format!("{ENT}:department"), "map": {"Ops": "O"}, "default": "other"}
        ]}))
        .expect("valid");
        let out = m.apply(Side::Users, &user());
        assert_eq!(out["costCenter"], "none");
        assert!(out.get("nick").is_none(), "a missing source sets nothing");
        assert!(out.get("x").is_none(), "literal text alone is no value");
        assert_eq!(out["dept"], "Sales", "unmapped values pass through");
        assert_eq!(out["dept2"], "other", "unless a default is given");
    }

    #[test]
    fn invalid_mappings_name_the_rule_and_attribute() {
        let cases = [
            (
                json!({"attributes": [{"target": "id", "value": "x"}]}),
                "\"id\" is scimgate's",
            ),
            (json!({"attributes": [{"target": "a"}]}), "exactly one of"),
            (
                json!({"attributes": [{"target": "a", "source": "b", "value": 1}]}),
                "exactly one of",
            ),
            (
                json!({"attributes": [{"target": "a", "source": "emails[type eq]"}]}),
                "source \"emails[type eq]\"",
            ),
            (
                json!({"attributes": [{"target": "active", "value": "maybe"}]}),
                "\"value\"",
            ),
            (
                json!({"attributes": [{"target": "a b", "value": 1}]}),
                "invalid path",
            ),
            (
                json!({"attributes": [{"target": "emails[type eq \"work\"]", "value": 1}]}),
                "value filter",
            ),
            (
                json!({"attributes": [{"target": "a", "value": 1}, {"target": "A", "value": 2}]}),
                "already set",
            ),
            (
                json!({"attributes": [{"target": "a", "source": "b", "transform": "title"}]}),
                "does not parse",
            ),
            (
                json!({"attributes": [{"target": "a", "remove": true, "default": 1}]}),
                "no transform",
            ),
            (
                json!({"attributes": [{"target": "a", "concat": []}]}),
                "\"concat\"",
            ),
        ];
        for (users, wanted) in cases {
            let err = mapping(users.clone()).expect_err(&users.to_string());
            let text = err.to_string();
            assert!(text.contains(wanted), "{users}: {text}");
            if !wanted.contains("parse") {
                assert!(text.starts_with("users.attributes["), "{text}");
            }
        }
    }

    #[test]
    fn groups_and_absent_sides_pass_through() {
        let m = Mapping::from_json(&json!({"groups": {"attributes": [
            {"target": "name", "source": "displayName", "transform": "upper"}
        ]}, "raw": true}))
        .expect("valid");
        let group = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "id": "g",
                           "displayName": "Sales", "members": [{"value": "u1"}]});
        let out = m.apply(Side::Groups, &group);
        assert_eq!(out["name"], "SALES");
        assert_eq!(out["members"], json!([{"value": "u1"}]));
        assert!(m.raw());
        assert!(m.is_identity(Side::Users));
        assert_eq!(m.apply(Side::Users, &user()), user());
    }

    #[test]
    fn sub_attributes_are_set_and_removed() {
        let m = mapping(json!({"attributes": [
            {"target": "name.formatted", "concat": [{"source": "name.familyName"}, {"text": ", "}, {"source": "name.givenName"}]},
            {"target": "name.givenName", "remove": true},
            {"target": format!("{ENT}:manager.displayName"), "value": "Bo"}
        ]}))
        .expect("valid");
        let out = m.apply(Side::Users, &user());
        assert_eq!(
            out["name"],
            json!({"familyName": "Lee", "formatted": "Lee, Ann"})
        );
        assert_eq!(out[ENT]["manager"], json!({"displayName": "Bo"}));
    }
}
