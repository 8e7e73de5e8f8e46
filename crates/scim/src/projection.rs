//! Projection: the `attributes` and `excludedAttributes` parameters
//! (RFC 7644 §3.4.2.5, §3.9) with the `returned` characteristic (RFC 7643 §7).
//!
//! - `returned: always` (`id`, `schemas`) is in every response, even when
//!   excluded or not named; `never` (`password`) is in none, even when named;
//!   `request` only when named in `attributes`; `default` unless excluded or
//!   unless `attributes` names others.
//! - Names are attribute paths (RFC 7644 §3.10), case-insensitive, optionally
//!   URN-qualified (`urn:...:enterprise:2.0:User:manager`). A bare schema URN
//!   names the whole extension (or, for the core URN, every core attribute).
//!   A name no schema defines is allowed and selects whatever the document
//!   holds under it (an IdP's custom attributes are projected like any other).
//! - Naming a complex attribute returns all of its sub-attributes that are
//!   not `never`, including `request` ones; naming a sub-attribute
//!   (`name.givenName`) returns the parent with only the named
//!   sub-attributes (and any `always` ones). A complex value left with no
//!   sub-attributes is dropped, as is a multi-valued element left empty.
//! - Both parameters at once: RFC 7644 says only one of them should be used
//!   but gives no error code for using both; rather than fail a read we honour
//!   both, returning what `attributes` selects minus what
//!   `excludedAttributes` removes (still never removing `always`).
//! - A malformed name is `invalidPath`: the parameters are lists of attribute
//!   paths in the same §3.10 notation as a PATCH `path`.

use serde_json::{Map, Value};

use crate::error::Result;
use crate::path::{AttrPath, starts_with_urn};
use crate::schemas::{Attribute, ResourceSchema, Returned};

/// A parsed `attributes` / `excludedAttributes` pair, ready to apply.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Projection {
    /// `None` when `attributes` was absent (or empty): the default set.
    attributes: Option<Vec<Selector>>,
    /// Removed from whatever `attributes` (or the default set) selects.
    excluded: Vec<Selector>,
}

/// One comma-separated item of either parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Selector {
    /// The item as written (trimmed), for matching whole-schema URNs.
    raw: String,
    /// The item as an attribute path; `None` for a URN that is not one
    /// (e.g. `urn:example:ext:2.0`, whose last segment is not a name).
    path: Option<AttrPath>,
}

/// What a selector designates, resolved against a resource type.
#[derive(Debug, Clone)]
enum Target {
    /// Every attribute in a container: `None` is the top level (the core
    /// schema), `Some(urn)` an extension object.
    Whole(Option<String>),
    /// One attribute, or one of its sub-attributes.
    Attr {
        container: Option<String>,
        name: String,
        sub: Option<String>,
    },
}

/// Where an attribute sits in a document.
#[derive(Debug, Clone, Copy)]
struct Loc<'a> {
    /// `None` for top-level attributes, else the extension URN key.
    container: Option<&'a str>,
    name: &'a str,
}

/// How a list of targets selects one attribute.
#[derive(Debug, Default)]
struct Hit<'t> {
    whole: bool,
    subs: Vec<&'t str>,
}

impl Hit<'_> {
    fn names_sub(&self, sub: &str) -> bool {
        self.subs.iter().any(|s| s.eq_ignore_ascii_case(sub))
    }
}

/// Selectors resolved for one document and resource type.
struct Resolved {
    include: Option<Vec<Target>>,
    exclude: Vec<Target>,
}

impl Projection {
    /// Parses the two query parameters (comma-separated attribute paths,
    /// whitespace around items ignored, empty items skipped).
    pub fn parse(
        attributes: Option<&str>,
        excluded_attributes: Option<&str>,
    ) -> Result<Projection> {
        let attributes = match attributes {
            Some(s) => Some(parse_list(s)?).filter(|l| !l.is_empty()),
            None => None,
        };
        let excluded = match excluded_attributes {
            Some(s) => parse_list(s)?,
            None => Vec::new(),
        };
        Ok(Projection {
            attributes,
            excluded,
        })
    }

    /// The default projection: every attribute returned `always` or `default`.
    pub fn all() -> Projection {
        Projection::default()
    }

    /// True when neither parameter selects anything: every attribute is
    /// returned as the schema says, each one whole.
    pub fn is_default(&self) -> bool {
        self.attributes.is_none() && self.excluded.is_empty()
    }

    /// Projects a stored document for a response. Takes the document by
    /// value: what is kept is moved, not copied (a group's members can be
    /// most of a response).
    pub fn apply(&self, doc: Value, schema: ResourceSchema<'_>) -> Value {
        let Value::Object(obj) = doc else {
            return doc;
        };
        let r = self.resolve(schema, Some(&obj));
        let mut out = Map::with_capacity(obj.len());
        for (key, value) in obj {
            if key.eq_ignore_ascii_case("schemas") {
                out.insert(key, value);
                continue;
            }
            let value = match value {
                Value::Object(inner) if starts_with_urn(&key) => {
                    let ext = schema.schema_for_urn(&key);
                    let mut kept = Map::new();
                    for (name, v) in inner {
                        let def = ext.and_then(|s| s.attribute(&name));
                        let loc = Loc {
                            container: Some(&key),
                            name: &name,
                        };
                        if let Some(v) = r.project(loc, def, v) {
                            kept.insert(name, v);
                        }
                    }
                    if !kept.is_empty() {
                        out.insert(key, Value::Object(kept));
                    }
                    continue;
                }
                other => other,
            };
            let def = top_level(schema, &key);
            let loc = Loc {
                container: None,
                name: &key,
            };
            if let Some(v) = r.project(loc, def, value) {
                out.insert(key, v);
            }
        }
        Value::Object(out)
    }

    /// True when a response under this projection would contain (some of)
    /// the attribute at `path`; a bare extension URN asks about any of the
    /// extension's attributes.
    pub fn wants(&self, path: &AttrPath, schema: ResourceSchema<'_>) -> bool {
        if path.sub.is_none()
            && let Some(urn) = &path.urn
        {
            let whole = format!("{urn}:{}", path.name);
            if schema.schema_for_urn(&whole).is_some() {
                return self.wants_schema(&whole, schema);
            }
        }
        let r = self.resolve(schema, None);
        let (container, def) = locate(path, schema);
        let loc = Loc {
            container: container.as_deref(),
            name: &path.name,
        };
        let returned = def.map_or(Returned::Default, |d| d.returned);
        if !r.shows_attr(loc, returned) {
            return false;
        }
        match &path.sub {
            None => true,
            Some(sub) => {
                let sub_returned = def
                    .and_then(|d| d.sub_attribute(sub))
                    .map_or(Returned::Default, |s| s.returned);
                r.shows_sub(loc, returned, sub, sub_returned)
            }
        }
    }

    /// True when a response under this projection would contain (some of)
    /// the attributes of the core or extension schema `urn`; false for a
    /// URN the resource type does not declare. Lets a caller skip loading
    /// data the response would drop.
    pub fn wants_schema(&self, urn: &str, schema: ResourceSchema<'_>) -> bool {
        let Some(ext) = schema.schema_for_urn(urn) else {
            return false;
        };
        let r = self.resolve(schema, None);
        let core = ext.id.eq_ignore_ascii_case(&schema.core().id);
        let container = (!core).then_some(ext.id.as_str());
        ext.attributes.iter().any(|a| {
            r.shows_attr(
                Loc {
                    container,
                    name: &a.name,
                },
                a.returned,
            )
        })
    }

    fn resolve(&self, schema: ResourceSchema<'_>, doc: Option<&Map<String, Value>>) -> Resolved {
        let targets = |list: &[Selector]| -> Vec<Target> {
            list.iter().map(|s| target(s, schema, doc)).collect()
        };
        Resolved {
            include: self.attributes.as_deref().map(targets),
            exclude: targets(&self.excluded),
        }
    }
}

impl Resolved {
    /// The projected value of one attribute, or `None` to leave it out.
    fn project(&self, loc: Loc<'_>, def: Option<&Attribute>, value: Value) -> Option<Value> {
        let returned = def.map_or(Returned::Default, |d| d.returned);
        if !self.shows_attr(loc, returned) {
            return None;
        }
        let keep_sub = |name: &str| {
            let sub_returned = def
                .and_then(|d| d.sub_attribute(name))
                .map_or(Returned::Default, |s| s.returned);
            self.shows_sub(loc, returned, name, sub_returned)
        };
        let filter = |mut m: Map<String, Value>| -> Option<Value> {
            m.retain(|k, _| keep_sub(k));
            (!m.is_empty()).then_some(Value::Object(m))
        };
        match value {
            Value::Object(m) => filter(m),
            Value::Array(items) if items.iter().any(Value::is_object) => {
                let kept: Vec<Value> = items
                    .into_iter()
                    .filter_map(|item| match item {
                        Value::Object(m) => filter(m),
                        other => Some(other),
                    })
                    .collect();
                (!kept.is_empty()).then_some(Value::Array(kept))
            }
            other => Some(other),
        }
    }

    /// Whether any of the attribute at `loc` is shown.
    fn shows_attr(&self, loc: Loc<'_>, returned: Returned) -> bool {
        match returned {
            Returned::Never => return false,
            Returned::Always => return true,
            Returned::Default | Returned::Request => {}
        }
        let requested = match &self.include {
            Some(inc) => {
                let hit = hits(inc, loc);
                hit.whole || !hit.subs.is_empty()
            }
            None => returned == Returned::Default,
        };
        requested && !hits(&self.exclude, loc).whole
    }

    /// Whether sub-attribute `sub` of the (shown) attribute at `loc` is shown.
    fn shows_sub(&self, loc: Loc<'_>, parent: Returned, sub: &str, returned: Returned) -> bool {
        match returned {
            Returned::Never => return false,
            Returned::Always => return true,
            Returned::Default | Returned::Request => {}
        }
        let requested = match &self.include {
            Some(inc) => {
                let hit = hits(inc, loc);
                hit.whole
                    || hit.names_sub(sub)
                    || (parent == Returned::Always && returned == Returned::Default)
            }
            None => returned == Returned::Default,
        };
        if !requested {
            return false;
        }
        // excludedAttributes has no effect on an always-returned attribute,
        // sub-attributes included.
        if parent == Returned::Always {
            return true;
        }
        let ex = hits(&self.exclude, loc);
        !(ex.whole || ex.names_sub(sub))
    }
}

/// How `targets` select the attribute at `loc`.
fn hits<'t>(targets: &'t [Target], loc: Loc<'_>) -> Hit<'t> {
    let mut hit = Hit::default();
    for t in targets {
        match t {
            Target::Whole(c) => {
                if same_container(c.as_deref(), loc.container) {
                    hit.whole = true;
                }
            }
            Target::Attr {
                container,
                name,
                sub,
            } => {
                if same_container(container.as_deref(), loc.container)
                    && name.eq_ignore_ascii_case(loc.name)
                {
                    match sub {
                        None => hit.whole = true,
                        Some(s) => hit.subs.push(s),
                    }
                }
            }
        }
    }
    hit
}

fn same_container(a: Option<&str>, b: Option<&str>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
        _ => false,
    }
}

/// The definition of a top-level (common or core) attribute.
fn top_level<'a>(schema: ResourceSchema<'a>, name: &str) -> Option<&'a Attribute> {
    schema
        .registry
        .common
        .iter()
        .find(|a| a.name.eq_ignore_ascii_case(name))
        .or_else(|| schema.core().attribute(name))
}

/// The container an attribute path lives in, and its definition if known.
///
/// An unqualified name is looked up among the common and core attributes,
/// then (as [`ResourceSchema::resolve`] does) in the extensions.
fn locate<'a>(
    path: &AttrPath,
    schema: ResourceSchema<'a>,
) -> (Option<String>, Option<&'a Attribute>) {
    match &path.urn {
        Some(urn) => match schema.schema_for_urn(urn) {
            Some(s) if s.id.eq_ignore_ascii_case(&schema.core().id) => {
                (None, top_level(schema, &path.name))
            }
            Some(s) => (Some(s.id.clone()), s.attribute(&path.name)),
            None => (Some(urn.clone()), None),
        },
        None => {
            if let Some(def) = top_level(schema, &path.name) {
                return (None, Some(def));
            }
            for ext in schema.lenient_extensions() {
                if let Some(def) = ext.attribute(&path.name) {
                    return (Some(ext.id.clone()), Some(def));
                }
            }
            (None, None)
        }
    }
}

/// Resolves a selector; `doc` lets a bare URN name an unknown extension
/// object the document holds.
fn target(sel: &Selector, schema: ResourceSchema<'_>, doc: Option<&Map<String, Value>>) -> Target {
    if starts_with_urn(&sel.raw) {
        if let Some(s) = schema.schema_for_urn(&sel.raw) {
            let core = s.id.eq_ignore_ascii_case(&schema.core().id);
            return Target::Whole((!core).then(|| s.id.clone()));
        }
        let in_doc = doc.and_then(|d| {
            d.iter()
                .find(|(k, v)| v.is_object() && k.eq_ignore_ascii_case(&sel.raw))
                .map(|(k, _)| k.clone())
        });
        if let Some(key) = in_doc {
            return Target::Whole(Some(key));
        }
    }
    match &sel.path {
        Some(path) => {
            let (container, _) = locate(path, schema);
            Target::Attr {
                container,
                name: path.name.clone(),
                sub: path.sub.clone(),
            }
        }
        None => Target::Whole(Some(sel.raw.clone())),
    }
}

fn parse_list(list: &str) -> Result<Vec<Selector>> {
    list.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| match AttrPath::parse(item) {
            Ok(path) => Ok(Selector {
                raw: item.to_owned(),
                path: Some(path),
            }),
            Err(_) if is_plausible_urn(item) => Ok(Selector {
                raw: item.to_owned(),
                path: None,
            }),
            Err(e) => Err(e),
        })
        .collect()
}

/// `urn:` followed by printable characters: a schema URN that is not also
/// an attribute path (its last segment may be `2.0`).
fn is_plausible_urn(s: &str) -> bool {
    starts_with_urn(s) && s.len() > 4 && s.bytes().all(|b| b.is_ascii_graphic() && b != b'"')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    #[test]
    fn whitespace_and_empty_items_are_tolerated() {
        let p = Projection::parse(Some(" userName , ,name.givenName "), None).unwrap();
        let Some(list) = &p.attributes else {
            panic!("attributes missing")
        };
        assert_eq!(list.len(), 2);
        assert_eq!(
            Projection::parse(Some(" "), None).unwrap(),
            Projection::all()
        );
    }

    #[test]
    fn malformed_names_are_invalid_path() {
        for bad in ["1abc", "name.", "a b", "name.given.x", "urn:"] {
            assert!(
                matches!(
                    Projection::parse(Some(bad), None),
                    Err(Error::InvalidPath(_))
                ),
                "{bad:?}"
            );
            assert!(Projection::parse(None, Some(bad)).is_err(), "{bad:?}");
        }
    }
}
