//! Group membership changes as a delta.
//!
//! A group can have 100k members; the store must not load and rewrite that
//! list for every Entra "add one member" PATCH. [`split_member_changes`]
//! takes the `members` operations out of a request as ordered
//! [`MemberChange`]s the store can run as set operations. [`apply`](super::apply)
//! uses the very same classification and list logic on an in-document
//! `members` array, so both routes reach the same member set.
//!
//! Supported forms (everything Entra, Okta and RFC 7644 §3.5.2 send):
//! `add`/`replace` with path `members` or a path-less value containing
//! `members`; `remove` with path `members` (all members), with path
//! `members` and a `value` list (Microsoft's legacy form: only those
//! members), or with `members[filter]`. Changing a sub-attribute of an
//! existing member (`members[...].display`) or a filtered add/replace is
//! rejected with `invalidPath`: members are references, and editing one in
//! place cannot be expressed as a set operation.

use std::collections::HashSet;

use serde_json::{Map, Value};

use super::doc::get_ci;
use super::request::{OpKind, PatchOperation, PatchRequest, parse_path};
use super::target::{is_members, members_attribute};
use crate::error::{Error, Result};
use crate::filter::{self, CompValue, CompareOp, Filter, PatchPath};
use crate::path::{AttrPath, is_attr_name};
use crate::schemas::{Attribute, ResourceSchema};
use crate::value::coerce;

/// One group member (RFC 7643 §4.2 `members`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Member {
    /// The member resource's `id`.
    pub value: String,
    /// Human-readable name, as the client sent it.
    pub display: Option<String>,
    /// `User` or `Group`.
    pub r#type: Option<String>,
    /// The member resource's URI (`$ref`).
    pub reference: Option<String>,
}

impl Member {
    /// A member with only its `value`.
    pub fn new(value: impl Into<String>) -> Member {
        Member {
            value: value.into(),
            display: None,
            r#type: None,
            reference: None,
        }
    }

    /// Reads one `members` element; sub-attribute names match ignoring case,
    /// `null` sub-attributes (Entra sends `"$ref": null`) count as absent.
    pub fn from_json(element: &Value) -> Result<Member> {
        let Value::Object(o) = element else {
            return Err(Error::InvalidValue(
                "each member must be an object with a 'value'".into(),
            ));
        };
        let value = match get_ci(o, "value") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            _ => {
                return Err(Error::InvalidValue(
                    "each member needs a non-empty string 'value' (the member's id)".into(),
                ));
            }
        };
        Ok(Member {
            value,
            display: optional_string(o, "display")?,
            r#type: optional_string(o, "type")?,
            reference: optional_string(o, "$ref")?,
        })
    }

    /// The element as stored in a Group document.
    pub fn to_json(&self) -> Value {
        self.clone().into_json()
    }

    /// The element as stored in a Group document, moving its strings.
    pub fn into_json(self) -> Value {
        let mut o = Map::with_capacity(4);
        o.insert("value".into(), Value::String(self.value));
        for (k, v) in [
            ("display", self.display),
            ("type", self.r#type),
            ("$ref", self.reference),
        ] {
            if let Some(v) = v {
                o.insert(k.into(), Value::String(v));
            }
        }
        Value::Object(o)
    }
}

fn optional_string(o: &Map<String, Value>, key: &str) -> Result<Option<String>> {
    match get_ci(o, key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(Error::InvalidValue(format!(
            "member '{key}' must be a string"
        ))),
    }
}

/// One change to a group's member set, in request order.
#[derive(Debug, Clone, PartialEq)]
pub enum MemberChange {
    /// Add these members; ones already present are left as they are
    /// (RFC 7644 §3.5.2.1: "no changes should be made").
    Add(Vec<Member>),
    /// Remove the members with these ids; absent ids are ignored.
    Remove(Vec<String>),
    /// Remove every member.
    RemoveAll,
    /// Replace the whole member set (duplicates by id collapse to the first).
    Replace(Vec<Member>),
    /// Remove members matching a value filter that is not a plain
    /// `value eq "id"` (or an `or` of those); the store evaluates it.
    RemoveWhere(Filter),
}

impl MemberChange {
    /// Applies the change to an in-memory member list.
    pub fn apply_to(&self, members: &mut Vec<Member>, schema: ResourceSchema<'_>) {
        apply_change(self, members, schema);
    }
}

/// Takes the `members` operations out of `req`.
///
/// Returns the request without them (path-less values lose their `members`
/// key; an operation left with nothing to do is dropped) and the member
/// operations as ordered changes. Member operations are validated here
/// exactly as [`apply`](super::apply) would; the others are left for it.
/// For a resource type without `members` the request comes back unchanged.
pub fn split_member_changes(
    req: &PatchRequest,
    schema: ResourceSchema<'_>,
) -> Result<(PatchRequest, Vec<MemberChange>)> {
    let Some(def) = members_attribute(schema) else {
        return Ok((req.clone(), Vec::new()));
    };
    let mut rest = Vec::with_capacity(req.operations.len());
    let mut changes = Vec::new();
    for op in &req.operations {
        match (&op.path, &op.value) {
            (Some(path), _) if is_members(schema, &path.attr) => {
                changes.push(classify(op.op, path, op.value.as_ref(), def)?);
            }
            (None, Some(Value::Object(attrs))) if op.op != OpKind::Remove => {
                let mut kept = Map::new();
                let mut took = false;
                for (key, value) in attrs {
                    let path = key_path(key)?;
                    if is_members(schema, &path.attr) {
                        changes.push(classify(op.op, &path, Some(value), def)?);
                        took = true;
                    } else {
                        kept.insert(key.clone(), value.clone());
                    }
                }
                if !took || !kept.is_empty() {
                    rest.push(PatchOperation {
                        op: op.op,
                        path: None,
                        value: Some(Value::Object(kept)),
                    });
                }
            }
            _ => rest.push(op.clone()),
        }
    }
    Ok((PatchRequest { operations: rest }, changes))
}

/// The path a key of a path-less value object names: a plain attribute
/// name, or (Entra) a dotted, URN-qualified or value-filtered path.
pub(crate) fn key_path(key: &str) -> Result<PatchPath> {
    if is_attr_name(key) {
        return Ok(PatchPath {
            attr: AttrPath::new(key),
            filter: None,
            sub: None,
        });
    }
    parse_path(key)
}

/// Turns one operation on `members` into a [`MemberChange`].
pub(crate) fn classify(
    kind: OpKind,
    path: &PatchPath,
    value: Option<&Value>,
    def: &Attribute,
) -> Result<MemberChange> {
    if path.attr.sub.is_some() || path.sub.is_some() {
        return Err(Error::InvalidPath(
            "members can only be added, replaced or removed whole; \
             a member's sub-attributes cannot be patched"
                .into(),
        ));
    }
    match (kind, &path.filter) {
        (OpKind::Add, None) => match value {
            Some(v) if !super::doc::is_clear(v) => Ok(MemberChange::Add(parse_members(v, def)?)),
            _ => Err(Error::InvalidValue(
                "'add' to members needs a list of members".into(),
            )),
        },
        (OpKind::Replace, None) => match value {
            None => Err(Error::InvalidValue(
                "'replace' of members needs a list of members".into(),
            )),
            Some(v) if super::doc::is_clear(v) => Ok(MemberChange::Replace(Vec::new())),
            Some(v) => Ok(MemberChange::Replace(parse_members(v, def)?)),
        },
        (OpKind::Remove, None) => match value {
            None | Some(Value::Null) => Ok(MemberChange::RemoveAll),
            Some(v) => Ok(MemberChange::Remove(listed_ids(v)?)),
        },
        (OpKind::Remove, Some(f)) => Ok(match simple_ids(f) {
            Some(ids) => MemberChange::Remove(ids),
            None => MemberChange::RemoveWhere(f.clone()),
        }),
        (OpKind::Add | OpKind::Replace, Some(_)) => Err(Error::InvalidPath(
            "a value filter on members is only supported with 'remove'".into(),
        )),
    }
}

fn parse_members(value: &Value, def: &Attribute) -> Result<Vec<Member>> {
    let value = coerce(def, value.clone(), "members")?;
    match value {
        Value::Array(items) => items.iter().map(Member::from_json).collect(),
        Value::Object(_) => Ok(vec![Member::from_json(&value)?]),
        Value::Null => Ok(Vec::new()),
        _ => Err(Error::InvalidValue(
            "members must be a list of objects with a 'value'".into(),
        )),
    }
}

// Microsoft's legacy removal names the members to remove in `value`:
// `{"op":"Remove","path":"members","value":[{"value":"u1091"}]}`.
fn listed_ids(value: &Value) -> Result<Vec<String>> {
    let one = |v: &Value| match v {
        Value::String(s) if !s.is_empty() => Ok(s.clone()),
        Value::Object(_) => Member::from_json(v).map(|m| m.value),
        _ => Err(Error::InvalidValue(
            "members to remove must be objects with a 'value'".into(),
        )),
    };
    match value {
        Value::Array(items) => items.iter().map(one).collect(),
        other => Ok(vec![one(other)?]),
    }
}

// `value eq "a"` or `value eq "a" or value eq "b" ...`: a plain id list the
// store can delete by key. Walked with an explicit stack, so filter depth
// costs no native stack.
fn simple_ids(filter: &Filter) -> Option<Vec<String>> {
    let mut ids = Vec::new();
    let mut stack = vec![filter];
    while let Some(f) = stack.pop() {
        match f {
            Filter::Compare {
                path,
                op: CompareOp::Eq,
                value: CompValue::String(id),
            } if path.urn.is_none()
                && path.sub.is_none()
                && path.name.eq_ignore_ascii_case("value") =>
            {
                ids.push(id.clone());
            }
            Filter::Or(a, b) => {
                stack.push(b);
                stack.push(a);
            }
            _ => return None,
        }
    }
    Some(ids)
}

/// A list element that can be treated as a member.
pub(crate) trait MemberEntry {
    /// The member's id, if the element has one.
    fn id(&self) -> Option<&str>;
    /// Whether the element matches a `members[...]` value filter.
    fn matches(&self, filter: &Filter, schema: ResourceSchema<'_>, parent: &AttrPath) -> bool;
    /// The element for a new member.
    fn from_member(member: &Member) -> Self;
}

impl MemberEntry for Member {
    fn id(&self) -> Option<&str> {
        Some(&self.value)
    }
    fn matches(&self, filter: &Filter, schema: ResourceSchema<'_>, parent: &AttrPath) -> bool {
        filter::matches_element(filter, &self.to_json(), schema, parent)
    }
    fn from_member(member: &Member) -> Self {
        member.clone()
    }
}

impl MemberEntry for Value {
    fn id(&self) -> Option<&str> {
        match self {
            Value::Object(o) => get_ci(o, "value").and_then(Value::as_str),
            _ => None,
        }
    }
    fn matches(&self, filter: &Filter, schema: ResourceSchema<'_>, parent: &AttrPath) -> bool {
        filter::matches_element(filter, self, schema, parent)
    }
    fn from_member(member: &Member) -> Self {
        member.to_json()
    }
}

/// The one implementation of member-set semantics, shared by
/// [`MemberChange::apply_to`] and the in-document path of `apply`.
pub(crate) fn apply_change<T: MemberEntry>(
    change: &MemberChange,
    list: &mut Vec<T>,
    schema: ResourceSchema<'_>,
) {
    match change {
        MemberChange::Add(new) => add(list, new),
        MemberChange::Replace(new) => {
            list.clear();
            add(list, new);
        }
        MemberChange::RemoveAll => list.clear(),
        MemberChange::Remove(ids) => {
            let ids: HashSet<&str> = ids.iter().map(String::as_str).collect();
            list.retain(|m| m.id().is_none_or(|id| !ids.contains(id)));
        }
        MemberChange::RemoveWhere(filter) => {
            let parent = AttrPath::new("members");
            list.retain(|m| !m.matches(filter, schema, &parent));
        }
    }
}

fn add<T: MemberEntry>(list: &mut Vec<T>, new: &[Member]) {
    let fresh: Vec<&Member> = {
        let mut seen: HashSet<&str> = list.iter().filter_map(MemberEntry::id).collect();
        new.iter().filter(|m| seen.insert(&m.value)).collect()
    };
    list.extend(fresh.into_iter().map(T::from_member));
}
