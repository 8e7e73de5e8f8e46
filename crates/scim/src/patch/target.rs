//! Resolving a PATCH path to where it lives: the schema definitions it names
//! and the JSON object (top level or an extension object) that holds it.

use std::borrow::Cow;

use serde_json::{Map, Value};

use super::doc::find_key;
use crate::error::{Error, Result};
use crate::filter::PatchPath;
use crate::path::AttrPath;
use crate::schemas::{AttrType, Attribute, ResourceSchema, Schema};

/// What a path names.
pub(crate) enum Target<'s> {
    /// A whole extension object, e.g. `urn:...:enterprise:2.0:User`.
    Extension(ExtensionTarget<'s>),
    /// An attribute, possibly narrowed to a sub-attribute.
    Attr(Slot<'s>),
}

/// A whole extension object.
pub(crate) struct ExtensionTarget<'s> {
    /// The key the object is (or will be) stored under.
    pub key: Cow<'s, str>,
    /// Whether the resource type declares the extension required.
    pub required: bool,
    /// Whether every attribute of the extension is readOnly, so that no
    /// operation may touch it.
    pub read_only: bool,
}

/// An attribute and where it is stored.
pub(crate) struct Slot<'s> {
    /// The extension object holding the attribute; `None` for the top level.
    pub container: Option<Cow<'s, str>>,
    /// The attribute's name: its schema spelling, or as stored/written for
    /// attributes no schema defines.
    pub name: Cow<'s, str>,
    /// The definition; `None` for attributes of an unregistered extension.
    pub def: Option<&'s Attribute>,
    /// The sub-attribute, from `name.sub` or from `attr[filter].sub`.
    pub sub: Option<SubSlot<'s>>,
}

/// A sub-attribute of a [`Slot`].
pub(crate) struct SubSlot<'s> {
    /// Schema spelling, or as written when the parent is not schema-defined.
    pub name: Cow<'s, str>,
    /// The definition, when the parent has one.
    pub def: Option<&'s Attribute>,
}

impl Slot<'_> {
    /// Whether names are rewritten to their schema spelling.
    pub fn canonical(&self) -> bool {
        self.def.is_some()
    }
}

/// Resolves `path` for `rs`, consulting `doc` only for the stored spelling of
/// attributes no schema defines.
pub(crate) fn resolve<'s>(
    rs: ResourceSchema<'s>,
    doc: &Map<String, Value>,
    path: &PatchPath,
) -> Result<Target<'s>> {
    let attr = &path.attr;
    let filtered = path.filter.is_some();
    if filtered && attr.sub.is_some() {
        return Err(Error::InvalidPath(format!(
            "'{attr}': a value filter must follow the multi-valued attribute itself"
        )));
    }
    let sub_name = match (&attr.sub, &path.sub) {
        (Some(_), Some(_)) => {
            return Err(Error::InvalidPath(format!(
                "'{attr}': more than one sub-attribute"
            )));
        }
        (Some(s), None) | (None, Some(s)) => Some(s.as_str()),
        (None, None) => None,
    };
    if !filtered
        && sub_name.is_none()
        && let Some(ext) = whole_extension(rs, doc, attr)?
    {
        return Ok(Target::Extension(ext));
    }
    // `name.sub` paths resolve in one go; only when that fails is the parent
    // looked up alone, to tell an unknown sub-attribute from an unknown
    // attribute.
    let resolved = match rs.resolve(attr) {
        Some(r) => Some(r),
        None if attr.sub.is_some() => rs.resolve(&AttrPath {
            urn: attr.urn.clone(),
            name: attr.name.clone(),
            sub: None,
        }),
        None => None,
    };
    match resolved {
        Some(r) => {
            let def = r.attribute;
            let sub = match sub_name {
                None => None,
                Some(s) => {
                    if def.ty != AttrType::Complex {
                        return Err(Error::InvalidPath(format!(
                            "'{}' is not complex and has no sub-attributes",
                            def.name
                        )));
                    }
                    let sub_def = match r.sub_attribute {
                        Some(d) => d,
                        None => def.sub_attribute(s).ok_or_else(|| {
                            Error::InvalidPath(format!("'{}' has no sub-attribute '{s}'", def.name))
                        })?,
                    };
                    Some(SubSlot {
                        name: Cow::Borrowed(sub_def.name.as_str()),
                        def: Some(sub_def),
                    })
                }
            };
            let container = match r.schema {
                Some(s) if r.is_extension(&rs) => Some(Cow::Borrowed(s.id.as_str())),
                _ => None,
            };
            Ok(Target::Attr(Slot {
                container,
                name: Cow::Borrowed(def.name.as_str()),
                def: Some(def),
                sub,
            }))
        }
        None => custom_slot(rs, doc, attr, sub_name),
    }
}

// An attribute of an extension the registry does not know (Entra's
// `urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User:attr`)
// is stored intact under its schema URN, as the client sent it.
fn custom_slot<'s>(
    rs: ResourceSchema<'s>,
    doc: &Map<String, Value>,
    attr: &AttrPath,
    sub_name: Option<&str>,
) -> Result<Target<'s>> {
    let Some(urn) = &attr.urn else {
        return Err(Error::InvalidPath(format!(
            "'{attr}' is not an attribute of {}",
            rs.resource_type.name
        )));
    };
    if let Some(schema) = rs.schema_for_urn(urn) {
        return Err(Error::InvalidPath(format!(
            "'{}' is not an attribute of {}",
            attr.name, schema.id
        )));
    }
    if rs.registry.schema(urn).is_some() {
        return Err(Error::InvalidPath(format!(
            "schema {urn} does not apply to {}",
            rs.resource_type.name
        )));
    }
    let container = find_key(doc, urn).unwrap_or_else(|| urn.clone());
    let name = doc
        .get(&container)
        .and_then(Value::as_object)
        .and_then(|o| find_key(o, &attr.name))
        .unwrap_or_else(|| attr.name.clone());
    Ok(Target::Attr(Slot {
        container: Some(Cow::Owned(container)),
        name: Cow::Owned(name),
        def: None,
        sub: sub_name.map(|s| SubSlot {
            name: Cow::Owned(s.to_owned()),
            def: None,
        }),
    }))
}

// A bare schema URN parses as an attribute path whose last segment is the
// "attribute" (`urn:...:enterprise:2.0` + `User`). It names a whole
// extension object when the rejoined URN is a declared extension, or, for
// unregistered URNs, when the segment before the name is a version
// (`...:CustomExtensionName:2.0:User`, where an attribute path would read
// `...:2.0:User:attr`) or the document already holds an object under it.
fn whole_extension<'s>(
    rs: ResourceSchema<'s>,
    doc: &Map<String, Value>,
    attr: &AttrPath,
) -> Result<Option<ExtensionTarget<'s>>> {
    let Some(urn) = &attr.urn else {
        return Ok(None);
    };
    let full = format!("{urn}:{}", attr.name);
    if let Some(schema) = rs.schema_for_urn(&full) {
        if is_core(rs, schema) {
            return Err(Error::InvalidPath(format!(
                "'{full}' names the resource's core schema, not an attribute"
            )));
        }
        let required = rs
            .resource_type
            .schema_extensions
            .iter()
            .any(|(u, req)| *req && u.eq_ignore_ascii_case(&schema.id));
        return Ok(Some(ExtensionTarget {
            key: Cow::Borrowed(schema.id.as_str()),
            required,
            read_only: schema.is_read_only(),
        }));
    }
    if rs.registry.schema(&full).is_some() {
        return Err(Error::InvalidPath(format!(
            "schema {full} does not apply to {}",
            rs.resource_type.name
        )));
    }
    if rs.schema_for_urn(urn).is_some() || rs.registry.schema(urn).is_some() {
        return Ok(None);
    }
    let existing = find_key(doc, &full);
    let holds_object = existing
        .as_ref()
        .and_then(|k| doc.get(k))
        .is_some_and(Value::is_object);
    let versioned = urn
        .rsplit(':')
        .next()
        .is_some_and(|seg| seg.starts_with(|c: char| c.is_ascii_digit()));
    if holds_object || versioned {
        return Ok(Some(ExtensionTarget {
            key: Cow::Owned(existing.unwrap_or(full)),
            required: false,
            read_only: false,
        }));
    }
    Ok(None)
}

fn is_core(rs: ResourceSchema<'_>, schema: &Schema) -> bool {
    schema.id.eq_ignore_ascii_case(&rs.resource_type.schema)
}

/// The Group-style `members` attribute of the core schema, if the resource
/// type has one.
pub(crate) fn members_attribute<'s>(rs: ResourceSchema<'s>) -> Option<&'s Attribute> {
    rs.core()
        .attribute("members")
        .filter(|a| a.is_multi_complex())
}

/// True when `attr` names the core `members` attribute (any sub-attribute).
pub(crate) fn is_members(rs: ResourceSchema<'_>, attr: &AttrPath) -> bool {
    attr.name.eq_ignore_ascii_case("members")
        && attr
            .urn
            .as_deref()
            .is_none_or(|u| u.eq_ignore_ascii_case(&rs.resource_type.schema))
        && members_attribute(rs).is_some()
}
