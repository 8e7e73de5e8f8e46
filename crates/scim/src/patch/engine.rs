//! Applying a [`PatchRequest`] to a resource document.
//!
//! Operations mutate an owned working document and the first error drops
//! it, so a request applies whole or not at all (RFC 7644 §3.5.2: "If a
//! single operation encounters an error condition, the original SCIM
//! resource MUST be restored"). The original value of each top-level
//! attribute is snapshotted when first touched, which is all `changed`
//! needs: a PATCH never copies the attributes it does not touch.

use std::borrow::Cow;

use serde_json::{Map, Value};

use super::doc::{
    check_one_primary, equivalent, find_key, get_ci, get_mut_ci, is_clear, is_unassigned, put,
    remove_ci, settle_primary,
};
use super::members::{apply_change, classify, key_path};
use super::request::{OpKind, PatchOperation, PatchRequest};
use super::target::{ExtensionTarget, Slot, Target, members_attribute, resolve};
use crate::error::{Error, Result};
use crate::filter::{self, CompValue, CompareOp, Filter, PatchPath};
use crate::path::{AttrPath, starts_with_urn};
use crate::schemas::{AttrType, Attribute, Mutability, ResourceSchema};
use crate::value::coerce;

/// The result of a successful PATCH.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchOutcome {
    /// The patched resource document.
    pub document: Value,
    /// Top-level attributes whose value changed (URN-qualified for extension
    /// attributes), each once, in the order first touched.
    pub changed: Vec<AttrPath>,
}

impl PatchOutcome {
    /// True when the PATCH changed anything.
    pub fn modified(&self) -> bool {
        !self.changed.is_empty()
    }
}

/// Applies `req` to `doc` atomically.
///
/// On error nothing escapes: `doc` is borrowed and the working copy is
/// dropped. Member operations on a Group run through the same logic as
/// [`split_member_changes`](super::split_member_changes) +
/// [`MemberChange::apply_to`](super::MemberChange::apply_to).
pub fn apply(doc: &Value, req: &PatchRequest, schema: ResourceSchema<'_>) -> Result<PatchOutcome> {
    apply_owned(doc.clone(), req, schema)
}

/// Applies `req` to `doc` atomically, consuming `doc`.
///
/// For callers that own a document they need no more: no copy of the whole
/// document is made. On error `doc` is dropped and nothing escapes. The
/// gateway does not use it: it validates the result against the document
/// it read (`Mode::Replace { existing }`), so it keeps that and calls
/// [`apply`], which copies.
pub fn apply_owned(
    doc: Value,
    req: &PatchRequest,
    schema: ResourceSchema<'_>,
) -> Result<PatchOutcome> {
    let Value::Object(mut new) = doc else {
        return Err(Error::InvalidSyntax(
            "the resource is not a JSON object".into(),
        ));
    };
    let mut engine = Engine {
        rs: schema,
        touched: Vec::new(),
        originals: Vec::new(),
        in_extension: false,
    };
    for op in &req.operations {
        engine.operation(&mut new, op)?;
    }
    engine.drop_empty_extensions(&mut new);
    let changed = engine.changed(&new);
    Ok(PatchOutcome {
        document: Value::Object(new),
        changed,
    })
}

type Doc = Map<String, Value>;

/// Whether an attribute came from a `path` or from a key of a path-less
/// value object; read-only attributes echoed back unchanged are only
/// tolerated in the latter (Okta sends the group's `id` there).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Origin {
    Path,
    ValueObject,
}

struct Engine<'s> {
    rs: ResourceSchema<'s>,
    /// Top-level keys written so far (attribute names and extension URNs),
    /// in the spelling they have in the document.
    touched: Vec<Cow<'s, str>>,
    /// The value each `touched` key had before the request (same index).
    originals: Vec<Option<Value>>,
    /// Set while applying an extension object's attributes, so an extension
    /// nested in an extension is refused instead of recursed into.
    in_extension: bool,
}

impl<'s> Engine<'s> {
    fn operation(&mut self, doc: &mut Doc, op: &PatchOperation) -> Result<()> {
        match (&op.path, op.op) {
            (Some(path), kind) => self.at_path(doc, kind, path, op.value.as_ref(), Origin::Path),
            (None, OpKind::Remove) => Err(Error::NoTarget(
                "'remove' requires a 'path' (RFC 7644 §3.5.2.2)".into(),
            )),
            (None, kind) => match &op.value {
                Some(Value::Object(attrs)) => {
                    for (key, value) in attrs {
                        let path = key_path(key)?;
                        self.at_path(doc, kind, &path, Some(value), Origin::ValueObject)?;
                    }
                    Ok(())
                }
                _ => Err(Error::InvalidValue(format!(
                    "'{}' without a 'path' needs a 'value' object of attributes",
                    kind.as_str()
                ))),
            },
        }
    }

    fn at_path(
        &mut self,
        doc: &mut Doc,
        kind: OpKind,
        path: &PatchPath,
        value: Option<&Value>,
        origin: Origin,
    ) -> Result<()> {
        let slot = match resolve(self.rs, doc, path)? {
            Target::Extension(ext) => return self.extension(doc, kind, &ext, value),
            Target::Attr(slot) => slot,
        };
        let at = describe(path);
        if let Some(def) = slot.def {
            if slot.container.is_none()
                && def.name == "members"
                && members_attribute(self.rs).is_some_and(|m| std::ptr::eq(m, def))
            {
                return self.members(doc, kind, path, value, def);
            }
            if slot.container.is_none() && def.name == "schemas" {
                // The engine keeps `schemas` in step with the extension data;
                // a client's copy in a value object is ignored.
                return match origin {
                    Origin::ValueObject => Ok(()),
                    Origin::Path => Err(Error::Mutability(
                        "'schemas' is maintained by the service provider".into(),
                    )),
                };
            }
            if def.mutability == Mutability::ReadOnly {
                let echoed = origin == Origin::ValueObject
                    && slot.sub.is_none()
                    && path.filter.is_none()
                    && kind != OpKind::Remove
                    && equivalent(self.current(doc, &slot), value);
                return if echoed {
                    Ok(())
                } else {
                    Err(Error::Mutability(format!("'{at}' is readOnly")))
                };
            }
            if let Some(sub) = slot.sub.as_ref().and_then(|s| s.def)
                && sub.mutability == Mutability::ReadOnly
            {
                return Err(Error::Mutability(format!("'{at}' is readOnly")));
            }
        }
        match (&path.filter, kind) {
            (Some(filter), _) => self.filtered(doc, kind, &slot, filter, path, value, &at),
            (None, OpKind::Remove) => self.remove(doc, &slot, value, &at),
            (None, _) => {
                let value = value.ok_or_else(|| {
                    Error::InvalidValue(format!("'{}' requires a 'value'", kind.as_str()))
                })?;
                match &slot.sub {
                    Some(_) => self.write_sub(doc, &slot, value, &at),
                    None => self.write(doc, kind, &slot, value, &at),
                }
            }
        }
    }

    // ----- containers -------------------------------------------------------

    /// Records that `key` is about to change, snapshotting its value the
    /// first time; must be called before the key is mutated.
    fn touch(&mut self, doc: &Doc, key: Cow<'s, str>) {
        if !self.touched.iter().any(|k| k.eq_ignore_ascii_case(&key)) {
            self.originals.push(get_ci(doc, &key).cloned());
            self.touched.push(key);
        }
    }

    /// The object holding `slot`'s attribute, created (and registered in
    /// `schemas`) for an extension when `create` is set.
    fn container<'d>(
        &mut self,
        doc: &'d mut Doc,
        slot: &Slot<'s>,
        create: bool,
    ) -> Option<&'d mut Doc> {
        let Some(key) = &slot.container else {
            self.touch(doc, slot.name.clone());
            return Some(doc);
        };
        self.touch(doc, key.clone());
        let key: &str = key;
        if create {
            self.ensure_schema_urn(doc, key);
            let exists = get_mut_ci(doc, key, slot.canonical()).is_some_and(|v| v.is_object());
            if !exists {
                put(doc, key, Value::Object(Map::new()), slot.canonical());
            }
        }
        get_mut_ci(doc, key, slot.canonical()).and_then(Value::as_object_mut)
    }

    fn ensure_schema_urn(&mut self, doc: &mut Doc, urn: &str) {
        let listed = match get_ci(doc, "schemas") {
            Some(Value::Array(urns)) => urns
                .iter()
                .any(|u| u.as_str().is_some_and(|u| u.eq_ignore_ascii_case(urn))),
            _ => false,
        };
        if listed {
            return;
        }
        self.touch(doc, Cow::Borrowed("schemas"));
        match get_mut_ci(doc, "schemas", true) {
            Some(Value::Array(urns)) => urns.push(Value::String(urn.to_owned())),
            _ => put(
                doc,
                "schemas",
                Value::Array(vec![
                    Value::String(self.rs.resource_type.schema.clone()),
                    Value::String(urn.to_owned()),
                ]),
                true,
            ),
        }
    }

    fn forget_schema_urn(&mut self, doc: &mut Doc, urn: &str) {
        let listed = |u: &Value| u.as_str().is_some_and(|u| u.eq_ignore_ascii_case(urn));
        let present =
            matches!(get_ci(doc, "schemas"), Some(Value::Array(urns)) if urns.iter().any(listed));
        if !present {
            return;
        }
        self.touch(doc, Cow::Borrowed("schemas"));
        if let Some(Value::Array(urns)) = get_mut_ci(doc, "schemas", true) {
            urns.retain(|u| !listed(u));
        }
    }

    fn current<'d>(&self, doc: &'d Doc, slot: &Slot<'s>) -> Option<&'d Value> {
        let holder = match slot.container.as_deref() {
            None => doc,
            Some(key) => get_ci(doc, key)?.as_object()?,
        };
        get_ci(holder, &slot.name)
    }

    // ----- whole extension objects -------------------------------------------

    fn extension(
        &mut self,
        doc: &mut Doc,
        kind: OpKind,
        ext: &ExtensionTarget<'s>,
        value: Option<&Value>,
    ) -> Result<()> {
        // A read-only extension (scimgate's effective roles) is the service
        // provider's: no operation may add, replace or remove it, whether
        // it is named by a path or as a key of a path-less value. Adding or
        // replacing with an object that names no sub-attribute (empty, or
        // only the extension's own `schemas`, which client libraries put
        // in every extension object) is, by RFC 7644 §3.5.2.1/.3, a change
        // of nothing, so it is a no-op: it is what a client sends when it
        // fills an extension with every attribute it may write, none.
        if ext.read_only {
            let empty = value.is_some_and(|v| {
                v.as_object()
                    .is_some_and(|o| o.keys().all(|k| k.eq_ignore_ascii_case("schemas")))
            });
            if empty && kind != OpKind::Remove {
                return Ok(());
            }
            return Err(Error::Mutability(format!(
                "extension {} is readOnly",
                ext.key
            )));
        }
        let clears = value.is_none_or(is_clear);
        if kind == OpKind::Remove || (kind == OpKind::Replace && clears) {
            if ext.required {
                return Err(Error::Mutability(format!(
                    "extension {} is required and cannot be removed",
                    ext.key
                )));
            }
            self.touch(doc, ext.key.clone());
            remove_ci(doc, &ext.key);
            self.forget_schema_urn(doc, &ext.key);
            return Ok(());
        }
        let Some(Value::Object(attrs)) = value else {
            return Err(Error::InvalidValue(format!(
                "a value for extension {} must be an object of its attributes",
                ext.key
            )));
        };
        if self.in_extension {
            return Err(Error::InvalidValue(format!(
                "extension {} cannot be nested in another extension",
                ext.key
            )));
        }
        self.in_extension = true;
        let result = attrs.iter().try_for_each(|(key, v)| {
            // An extension object has no `schemas` attribute, but some
            // clients serialize one into it (`{"schemas": [urn], ...}`). The
            // engine maintains `schemas` itself, so that copy is ignored, as
            // it is in a path-less value object.
            if key.eq_ignore_ascii_case("schemas") {
                return Ok(());
            }
            let mut path = key_path(key)?;
            if path.attr.urn.is_none() {
                path.attr.urn = Some(ext.key.to_string());
            }
            self.at_path(doc, kind, &path, Some(v), Origin::ValueObject)
        });
        self.in_extension = false;
        result
    }

    // ----- members ----------------------------------------------------------

    fn members(
        &mut self,
        doc: &mut Doc,
        kind: OpKind,
        path: &PatchPath,
        value: Option<&Value>,
        def: &'s Attribute,
    ) -> Result<()> {
        let change = classify(kind, path, value, def)?;
        self.touch(doc, Cow::Borrowed(def.name.as_str()));
        let mut list = match get_mut_ci(doc, &def.name, true) {
            Some(Value::Array(items)) => std::mem::take(items),
            _ => Vec::new(),
        };
        apply_change(&change, &mut list, self.rs);
        if list.is_empty() {
            remove_ci(doc, &def.name);
        } else {
            put(doc, &def.name, Value::Array(list), true);
        }
        Ok(())
    }

    // ----- add / replace without a filter ---------------------------------------

    fn write(
        &mut self,
        doc: &mut Doc,
        kind: OpKind,
        slot: &Slot<'s>,
        value: &Value,
        at: &str,
    ) -> Result<()> {
        let Some(def) = slot.def else {
            return self.write_custom(doc, kind, slot, value);
        };
        if is_clear(value) || (def.multi_valued && is_unassigned(Some(value))) {
            if kind == OpKind::Add && def.multi_valued {
                return Ok(());
            }
            return self.clear(doc, slot, def, at);
        }
        if def.multi_valued {
            let items = coerce_items(def, value, at)?;
            if items.is_empty() {
                return match kind {
                    OpKind::Add => Ok(()),
                    _ => self.clear(doc, slot, def, at),
                };
            }
            check_one_primary(&items, at)?;
            let canonical = slot.canonical();
            let Some(holder) = self.container(doc, slot, true) else {
                return Ok(());
            };
            match kind {
                OpKind::Add => {
                    let Some(list) = ensure_array(holder, &slot.name, canonical) else {
                        return Ok(());
                    };
                    let mut written = Vec::new();
                    for item in items {
                        if let Some(i) = list.iter().position(|e| *e == item) {
                            written.push(i);
                        } else {
                            written.push(list.len());
                            list.push(item);
                        }
                    }
                    settle_primary(list, &written)?;
                }
                _ => {
                    let new = Value::Array(items);
                    check_immutable(def, get_ci(holder, &slot.name), Some(&new), at)?;
                    put(holder, &slot.name, new, canonical);
                }
            }
            return Ok(());
        }
        if def.ty == AttrType::Complex {
            let write = coerce_complex(def, value, at)?;
            let canonical = slot.canonical();
            let Some(holder) = self.container(doc, slot, true) else {
                return Ok(());
            };
            let Some(existing) = ensure_object(holder, &slot.name, canonical) else {
                return Ok(());
            };
            if write.whole {
                // A bare value (Entra's `"manager": "<id>"`) names the whole
                // complex value; keeping the old `$ref` would point elsewhere.
                for sub in &def.sub_attributes {
                    if sub.mutability != Mutability::ReadOnly
                        && get_ci(&write.set, &sub.name).is_none()
                    {
                        check_sub_removal(sub, get_ci(existing, &sub.name), at)?;
                    }
                }
                existing.clear();
            }
            merge_into(existing, def, write.set, &write.cleared, at)?;
            if existing.is_empty() {
                remove_ci(holder, &slot.name);
            }
            return Ok(());
        }
        let new = coerce(def, value.clone(), at)?;
        if is_clear(&new) {
            return self.clear(doc, slot, def, at);
        }
        let canonical = slot.canonical();
        let Some(holder) = self.container(doc, slot, true) else {
            return Ok(());
        };
        check_immutable(def, get_ci(holder, &slot.name), Some(&new), at)?;
        put(holder, &slot.name, new, canonical);
        Ok(())
    }

    /// `name.sub` on a single-valued complex attribute (or an unregistered one).
    fn write_sub(&mut self, doc: &mut Doc, slot: &Slot<'s>, value: &Value, at: &str) -> Result<()> {
        let Some(sub) = &slot.sub else {
            return Ok(());
        };
        if slot.def.is_some_and(|d| d.multi_valued) {
            return Err(multi_sub_without_filter(at));
        }
        if is_clear(value) {
            return self.remove_sub(doc, slot, at);
        }
        let new = match sub.def {
            Some(d) => coerce(d, value.clone(), at)?,
            None => value.clone(),
        };
        if is_clear(&new) {
            return self.remove_sub(doc, slot, at);
        }
        let canonical = slot.canonical();
        let Some(holder) = self.container(doc, slot, true) else {
            return Ok(());
        };
        let Some(parent) = ensure_object(holder, &slot.name, canonical) else {
            return Ok(());
        };
        if let Some(d) = sub.def {
            check_immutable(d, get_ci(parent, &d.name), Some(&new), at)?;
        }
        let sub_name = existing_or(parent, &sub.name, canonical);
        put(parent, &sub_name, new, canonical);
        Ok(())
    }

    /// Attributes of unregistered extensions are stored as sent; `add`
    /// appends to an existing list and merges into an existing object.
    fn write_custom(
        &mut self,
        doc: &mut Doc,
        kind: OpKind,
        slot: &Slot<'s>,
        value: &Value,
    ) -> Result<()> {
        let Some(holder) = self.container(doc, slot, !is_clear(value)) else {
            return Ok(());
        };
        if is_clear(value) {
            remove_ci(holder, &slot.name);
            return Ok(());
        }
        if kind == OpKind::Add {
            match (get_mut_ci(holder, &slot.name, false), value) {
                (Some(Value::Array(list)), Value::Array(new)) => {
                    for item in new {
                        if !list.contains(item) {
                            list.push(item.clone());
                        }
                    }
                    return Ok(());
                }
                (Some(Value::Array(list)), item) => {
                    if !list.contains(item) {
                        list.push(item.clone());
                    }
                    return Ok(());
                }
                (Some(Value::Object(existing)), Value::Object(new)) => {
                    for (k, v) in new {
                        let key = existing_or(existing, k, false);
                        if is_clear(v) {
                            remove_ci(existing, &key);
                        } else {
                            put(existing, &key, v.clone(), false);
                        }
                    }
                    return Ok(());
                }
                _ => {}
            }
        }
        put(holder, &slot.name, value.clone(), false);
        Ok(())
    }

    // ----- remove without a filter ---------------------------------------------

    fn remove(
        &mut self,
        doc: &mut Doc,
        slot: &Slot<'s>,
        value: Option<&Value>,
        at: &str,
    ) -> Result<()> {
        if slot.sub.is_some() {
            if slot.def.is_some_and(|d| d.multi_valued) {
                return Err(multi_sub_without_filter(at));
            }
            return self.remove_sub(doc, slot, at);
        }
        let listed = value.filter(|v| !is_unassigned(Some(v)) && !is_clear(v));
        let multi = match slot.def {
            Some(d) => d.multi_valued,
            None => matches!(self.current(doc, slot), Some(Value::Array(_))),
        };
        if let (Some(listed), true) = (listed, multi) {
            return self.remove_listed(doc, slot, listed, at);
        }
        match slot.def {
            Some(def) => self.clear(doc, slot, def, at),
            None => {
                if let Some(holder) = self.container(doc, slot, false) {
                    remove_ci(holder, &slot.name);
                }
                Ok(())
            }
        }
    }

    // `{"op":"remove","path":"emails","value":[{"value":"x@y"}]}`: Microsoft's
    // reading of remove-with-value, generalized from `members` to any
    // multi-valued attribute: only the listed values go.
    fn remove_listed(
        &mut self,
        doc: &mut Doc,
        slot: &Slot<'s>,
        listed: &Value,
        at: &str,
    ) -> Result<()> {
        let listed: Vec<&Value> = match listed {
            Value::Array(items) => items.iter().collect(),
            other => vec![other],
        };
        let value_exact = slot
            .def
            .and_then(|d| d.sub_attribute("value"))
            .is_some_and(|v| v.case_exact);
        let canonical = slot.canonical();
        let Some(holder) = self.container(doc, slot, false) else {
            return Ok(());
        };
        let Some(Value::Array(list)) = get_mut_ci(holder, &slot.name, canonical) else {
            return Ok(());
        };
        list.retain(|element| !listed.iter().any(|l| same_value(element, l, value_exact)));
        if list.is_empty() {
            if let Some(def) = slot.def {
                check_removal(def, at)?;
            }
            remove_ci(holder, &slot.name);
        }
        Ok(())
    }

    fn clear(&mut self, doc: &mut Doc, slot: &Slot<'s>, def: &Attribute, at: &str) -> Result<()> {
        check_removal(def, at)?;
        let Some(holder) = self.container(doc, slot, false) else {
            return Ok(());
        };
        check_immutable(def, get_ci(holder, &slot.name), None, at)?;
        remove_ci(holder, &slot.name);
        Ok(())
    }

    fn remove_sub(&mut self, doc: &mut Doc, slot: &Slot<'s>, at: &str) -> Result<()> {
        let Some(sub) = &slot.sub else {
            return Ok(());
        };
        let canonical = slot.canonical();
        let Some(holder) = self.container(doc, slot, false) else {
            return Ok(());
        };
        let Some(Value::Object(parent)) = get_mut_ci(holder, &slot.name, canonical) else {
            return Ok(());
        };
        if let Some(d) = sub.def {
            check_sub_removal(d, get_ci(parent, &d.name), at)?;
        }
        remove_ci(parent, &sub.name);
        if parent.is_empty() {
            if let Some(def) = slot.def {
                check_removal(def, at)?;
            }
            remove_ci(holder, &slot.name);
        }
        Ok(())
    }

    // ----- value-filtered paths ------------------------------------------------

    #[allow(clippy::too_many_arguments)]
    fn filtered(
        &mut self,
        doc: &mut Doc,
        kind: OpKind,
        slot: &Slot<'s>,
        filter: &Filter,
        path: &PatchPath,
        value: Option<&Value>,
        at: &str,
    ) -> Result<()> {
        if let Some(def) = slot.def
            && !def.multi_valued
        {
            return Err(Error::InvalidPath(format!(
                "'{at}': a value filter needs a multi-valued attribute, and '{}' is not",
                def.name
            )));
        }
        let rs = self.rs;
        let matched: Vec<usize> = match self.current(doc, slot) {
            Some(Value::Array(list)) => list
                .iter()
                .enumerate()
                .filter(|(_, e)| filter::matches_element(filter, e, rs, &path.attr))
                .map(|(i, _)| i)
                .collect(),
            None | Some(Value::Null) => Vec::new(),
            Some(_) => {
                return Err(Error::InvalidPath(format!(
                    "'{at}': a value filter needs a multi-valued attribute"
                )));
            }
        };
        if kind == OpKind::Remove {
            return self.remove_matched(doc, slot, &matched, at);
        }
        let value = value.ok_or_else(|| {
            Error::InvalidValue(format!("'{}' requires a 'value'", kind.as_str()))
        })?;
        if slot.sub.is_none() && is_clear(value) {
            // Replacing matched values with nothing removes them.
            return match kind {
                OpKind::Replace => self.remove_matched(doc, slot, &matched, at),
                _ => Ok(()),
            };
        }
        if matched.is_empty() {
            return self.create_element(doc, kind, slot, filter, value, at);
        }
        let cleared = match (&slot.sub, slot.def) {
            (None, Some(def)) => cleared_subs(def, value),
            _ => Vec::new(),
        };
        let new_element = match (&slot.sub, slot.def) {
            (None, Some(def)) => Some(coerce_element(def, value, at)?),
            (None, None) => Some(value.clone()),
            (Some(_), _) => None,
        };
        let new_sub = match &slot.sub {
            Some(sub) if !is_clear(value) => Some(match sub.def {
                Some(d) => coerce(d, value.clone(), at)?,
                None => value.clone(),
            }),
            _ => None,
        };
        let canonical = slot.canonical();
        let Some(holder) = self.container(doc, slot, false) else {
            return Ok(());
        };
        let Some(Value::Array(list)) = get_mut_ci(holder, &slot.name, canonical) else {
            return Ok(());
        };
        for &i in &matched {
            let Some(element) = list.get_mut(i) else {
                continue;
            };
            match (&slot.sub, &new_element) {
                (Some(sub), _) => {
                    let Value::Object(obj) = element else {
                        return Err(Error::InvalidPath(format!(
                            "'{at}': the matched value has no sub-attributes"
                        )));
                    };
                    let name = existing_or(obj, &sub.name, canonical);
                    match &new_sub {
                        None => {
                            if let Some(d) = sub.def {
                                check_sub_removal(d, get_ci(obj, &name), at)?;
                            }
                            remove_ci(obj, &name);
                        }
                        Some(v) => {
                            if let Some(d) = sub.def {
                                check_immutable(d, get_ci(obj, &name), Some(v), at)?;
                            }
                            put(obj, &name, v.clone(), canonical);
                        }
                    }
                }
                (None, Some(new)) => match (kind, element, new) {
                    (OpKind::Add, Value::Object(obj), Value::Object(incoming)) => match slot.def {
                        Some(def) => merge_into(obj, def, incoming.clone(), &cleared, at)?,
                        None => {
                            for (k, v) in incoming {
                                put(obj, k, v.clone(), false);
                            }
                        }
                    },
                    (_, element, new) => {
                        if let (Some(def), Value::Object(old)) = (slot.def, &*element) {
                            for sub in &def.sub_attributes {
                                let incoming = new.as_object().and_then(|n| get_ci(n, &sub.name));
                                check_immutable(
                                    sub,
                                    get_ci(old, &sub.name),
                                    Some(incoming.unwrap_or(&Value::Null)),
                                    at,
                                )?;
                            }
                        }
                        *element = new.clone();
                    }
                },
                (None, None) => {}
            }
        }
        settle_primary(list, &matched)?;
        // Values left without any sub-attribute are gone (RFC 7644 §3.5.2.2).
        list.retain(|e| !e.as_object().is_some_and(Map::is_empty));
        if list.is_empty() {
            if let Some(def) = slot.def {
                check_removal(def, at)?;
            }
            remove_ci(holder, &slot.name);
        }
        Ok(())
    }

    fn remove_matched(
        &mut self,
        doc: &mut Doc,
        slot: &Slot<'s>,
        matched: &[usize],
        at: &str,
    ) -> Result<()> {
        if matched.is_empty() {
            // RFC 7644 §3.5.2.2 names no error for a filter that matches
            // nothing; Okta removes members that may already be gone.
            return Ok(());
        }
        let canonical = slot.canonical();
        let Some(holder) = self.container(doc, slot, false) else {
            return Ok(());
        };
        let Some(Value::Array(list)) = get_mut_ci(holder, &slot.name, canonical) else {
            return Ok(());
        };
        match &slot.sub {
            None => {
                let mut i = 0;
                list.retain(|_| {
                    let keep = !matched.contains(&i);
                    i += 1;
                    keep
                });
            }
            Some(sub) => {
                for &i in matched {
                    if let Some(Value::Object(obj)) = list.get_mut(i) {
                        if let Some(d) = sub.def {
                            check_sub_removal(d, get_ci(obj, &d.name), at)?;
                        }
                        remove_ci(obj, &sub.name);
                    }
                }
                list.retain(|e| !e.as_object().is_some_and(Map::is_empty));
            }
        }
        if list.is_empty() {
            if let Some(def) = slot.def {
                check_removal(def, at)?;
            }
            remove_ci(holder, &slot.name);
        }
        Ok(())
    }

    // No value matched. RFC 7644 §3.5.2.3 makes a filtered replace without a
    // match a noTarget failure, but also says a replace of an attribute that
    // does not exist is an add. Entra expresses "set the work email" as
    // `Replace emails[type eq "work"].value` (and as `Add` for the same
    // thing), whether or not the value exists yet, so a filter made only of
    // `eq` terms joined by `and` is taken as the description of the value to
    // create: `{"type": "work", "value": ...}`. Any other filter cannot
    // describe a value, and fails with noTarget.
    fn create_element(
        &mut self,
        doc: &mut Doc,
        kind: OpKind,
        slot: &Slot<'s>,
        filter: &Filter,
        value: &Value,
        at: &str,
    ) -> Result<()> {
        let Some(mut element) = element_from_filter(filter, slot.def) else {
            return Err(Error::NoTarget(format!(
                "'{at}': no value matches the filter{}",
                if kind == OpKind::Add {
                    ", and the filter does not describe a value to add"
                } else {
                    ""
                }
            )));
        };
        if is_clear(value) {
            return Ok(());
        }
        match (&slot.sub, value) {
            (Some(sub), v) => {
                element.insert(sub.name.to_string(), v.clone());
            }
            (None, Value::Object(fields)) => {
                for (k, v) in fields {
                    put(&mut element, k, v.clone(), false);
                }
            }
            (None, _) => {
                return Err(Error::InvalidValue(format!(
                    "'{at}': the value must be an object of sub-attributes"
                )));
            }
        }
        let element = match slot.def {
            Some(def) => coerce_element(def, &Value::Object(element), at)?,
            None => Value::Object(element),
        };
        let canonical = slot.canonical();
        let Some(holder) = self.container(doc, slot, true) else {
            return Ok(());
        };
        match get_mut_ci(holder, &slot.name, canonical) {
            Some(Value::Array(list)) => {
                list.push(element);
                let last = list.len() - 1;
                settle_primary(list, &[last])?;
            }
            _ => put(holder, &slot.name, Value::Array(vec![element]), canonical),
        }
        Ok(())
    }

    // ----- bookkeeping --------------------------------------------------------

    fn drop_empty_extensions(&mut self, doc: &mut Doc) {
        let empty: Vec<Cow<'s, str>> = self
            .touched
            .iter()
            .filter(|k| starts_with_urn(k))
            .filter(|k| get_ci(doc, k).is_some_and(|v| v.as_object().is_some_and(Map::is_empty)))
            .cloned()
            .collect();
        for key in empty {
            remove_ci(doc, &key);
            self.forget_schema_urn(doc, &key);
        }
    }

    fn changed(&self, new: &Doc) -> Vec<AttrPath> {
        let mut out: Vec<AttrPath> = Vec::new();
        for (key, original) in self.touched.iter().zip(&self.originals) {
            let before = original.as_ref();
            let after = get_ci(new, key);
            if !starts_with_urn(key) {
                if !equivalent(before, after) {
                    out.push(AttrPath::new(key.as_ref()));
                }
                continue;
            }
            let empty = Map::new();
            let b = before.and_then(Value::as_object).unwrap_or(&empty);
            let a = after.and_then(Value::as_object).unwrap_or(&empty);
            for name in a.keys().chain(b.keys()) {
                let differs = !equivalent(get_ci(b, name), get_ci(a, name));
                let seen = out.iter().any(|p| {
                    p.name.eq_ignore_ascii_case(name)
                        && p.urn
                            .as_deref()
                            .is_some_and(|u| u.eq_ignore_ascii_case(key))
                });
                if differs && !seen {
                    out.push(AttrPath {
                        urn: Some(key.to_string()),
                        name: name.clone(),
                        sub: None,
                    });
                }
            }
        }
        out
    }
}

// ----- helpers ---------------------------------------------------------------

fn describe(path: &PatchPath) -> Cow<'_, str> {
    let attr = &path.attr;
    Cow::Owned(match (&path.filter, &path.sub) {
        (None, _) if attr.urn.is_none() && attr.sub.is_none() => {
            return Cow::Borrowed(&attr.name);
        }
        (None, _) => attr.to_string(),
        (Some(_), None) => format!("{}[...]", path.attr),
        (Some(_), Some(sub)) => format!("{}[...].{sub}", path.attr),
    })
}

fn multi_sub_without_filter(at: &str) -> Error {
    Error::InvalidPath(format!(
        "'{at}': a sub-attribute of a multi-valued attribute needs a value filter, \
         e.g. emails[type eq \"work\"].value"
    ))
}

/// The list stored under `name`, created (or a non-list replaced) as needed.
fn ensure_array<'m>(
    holder: &'m mut Doc,
    name: &str,
    canonical: bool,
) -> Option<&'m mut Vec<Value>> {
    if !matches!(get_mut_ci(holder, name, canonical), Some(Value::Array(_))) {
        put(holder, name, Value::Array(Vec::new()), canonical);
    }
    get_mut_ci(holder, name, canonical).and_then(Value::as_array_mut)
}

/// The complex value stored under `name`, created (or a non-object
/// replaced) as needed.
fn ensure_object<'m>(holder: &'m mut Doc, name: &str, canonical: bool) -> Option<&'m mut Doc> {
    if !matches!(get_mut_ci(holder, name, canonical), Some(Value::Object(_))) {
        put(holder, name, Value::Object(Map::new()), canonical);
    }
    get_mut_ci(holder, name, canonical).and_then(Value::as_object_mut)
}

/// The stored spelling of `name` in `map`, else `name` itself.
fn existing_or<'a>(map: &Doc, name: &'a str, canonical: bool) -> Cow<'a, str> {
    if canonical || map.contains_key(name) {
        return Cow::Borrowed(name);
    }
    match find_key(map, name) {
        Some(k) => Cow::Owned(k),
        None => Cow::Borrowed(name),
    }
}

/// RFC 7644 §3.5.2: removing (or clearing) a required attribute fails with
/// `mutability`.
fn check_removal(def: &Attribute, at: &str) -> Result<()> {
    if def.required {
        return Err(Error::Mutability(format!(
            "'{at}' is required and cannot be removed"
        )));
    }
    Ok(())
}

fn check_sub_removal(def: &Attribute, current: Option<&Value>, at: &str) -> Result<()> {
    if is_unassigned(current) {
        return Ok(());
    }
    match def.mutability {
        Mutability::ReadOnly => Err(Error::Mutability(format!("'{at}' is readOnly"))),
        _ if def.required => check_removal(def, at),
        _ => check_immutable(def, current, None, at),
    }
}

/// RFC 7644 §3.5.2: an immutable attribute may be given a value while it has
/// none, and may be "set" to the value it already has; anything else fails.
/// `new: None` is a removal.
fn check_immutable(
    def: &Attribute,
    current: Option<&Value>,
    new: Option<&Value>,
    at: &str,
) -> Result<()> {
    if def.mutability != Mutability::Immutable || is_unassigned(current) {
        return Ok(());
    }
    if new.is_some_and(|n| equivalent(current, Some(n))) {
        return Ok(());
    }
    Err(Error::Mutability(format!(
        "'{at}' is immutable and already has a value"
    )))
}

/// Merges sub-attributes into a complex value (RFC 7644 §3.5.2.3: those not
/// given are left unchanged) and removes the cleared ones. Sub-attributes no
/// schema defines are kept as sent, as coercion does.
fn merge_into(
    existing: &mut Doc,
    def: &Attribute,
    set: Doc,
    cleared: &[String],
    at: &str,
) -> Result<()> {
    for (k, v) in set {
        match def.sub_attribute(&k) {
            Some(sub) => {
                check_immutable(sub, get_ci(existing, &sub.name), Some(&v), at)?;
                put(existing, &sub.name, v, true);
            }
            None => put(existing, &k, v, false),
        }
    }
    for name in cleared {
        if let Some(sub) = def.sub_attribute(name) {
            if sub.mutability == Mutability::ReadOnly {
                continue;
            }
            check_sub_removal(sub, get_ci(existing, &sub.name), at)?;
        }
        remove_ci(existing, name);
    }
    Ok(())
}

/// Coerces a value for a multi-valued attribute into its list of values.
fn coerce_items(def: &Attribute, value: &Value, at: &str) -> Result<Vec<Value>> {
    let value = match value {
        Value::Array(_) => value.clone(),
        single => Value::Array(vec![single.clone()]),
    };
    let items = match coerce(def, value, at)? {
        Value::Array(items) => items,
        Value::Null => Vec::new(),
        other => vec![other],
    };
    Ok(items
        .into_iter()
        .filter(|v| !v.is_null())
        .map(|v| clean_element(def, v))
        .collect())
}

/// Coerces one value of a multi-valued attribute.
fn coerce_element(def: &Attribute, value: &Value, at: &str) -> Result<Value> {
    let mut items = coerce_items(def, value, at)?;
    match (items.pop(), items.is_empty()) {
        (Some(v), true) => Ok(v),
        _ => Err(Error::InvalidValue(format!(
            "'{at}': expected a single value"
        ))),
    }
}

/// Drops the read-only sub-attributes of one value: they are set by the
/// service provider, and RFC 7643 §7 has clients' values for them ignored.
fn clean_element(def: &Attribute, value: Value) -> Value {
    match value {
        Value::Object(mut fields) if def.ty == AttrType::Complex => {
            fields.retain(|k, _| {
                !def.sub_attribute(k)
                    .is_some_and(|s| s.mutability == Mutability::ReadOnly)
            });
            Value::Object(fields)
        }
        other => other,
    }
}

/// A complex value to write: the sub-attributes to set, those the client
/// cleared with `null`/`""` (which coercion drops), and whether the client
/// sent a bare value (a string for `manager`) rather than sub-attributes,
/// which replaces the whole complex value.
struct ComplexWrite {
    set: Doc,
    cleared: Vec<String>,
    whole: bool,
}

/// Coerces a value for a single-valued complex attribute.
fn coerce_complex(def: &Attribute, value: &Value, at: &str) -> Result<ComplexWrite> {
    // Entra sends `"manager": [{"value": ...}]` for the single-valued manager.
    let value = match value {
        Value::Array(items) if items.len() == 1 => &items[0],
        v => v,
    };
    let cleared = cleared_subs(def, value);
    let whole = !value.is_object();
    let Value::Object(fields) = coerce(def, value.clone(), at)? else {
        return Err(Error::InvalidValue(format!(
            "'{at}' is complex: expected an object of sub-attributes"
        )));
    };
    let mut set = Map::new();
    for (k, v) in fields {
        if !def
            .sub_attribute(&k)
            .is_some_and(|s| s.mutability == Mutability::ReadOnly)
        {
            set.insert(k, v);
        }
    }
    Ok(ComplexWrite {
        set,
        cleared,
        whole,
    })
}

/// Sub-attributes a value object clears (`null` or `""`), by schema name.
fn cleared_subs(def: &Attribute, value: &Value) -> Vec<String> {
    match value {
        Value::Object(o) => o
            .iter()
            .filter(|(_, v)| is_clear(v))
            .map(|(k, _)| {
                def.sub_attribute(k)
                    .map_or_else(|| k.clone(), |s| s.name.clone())
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// Whether `element` is the value `listed` names: by its `value`
/// sub-attribute when `listed` has one, else by equality.
fn same_value(element: &Value, listed: &Value, value_exact: bool) -> bool {
    let key = |v: &Value| match v {
        Value::Object(o) => get_ci(o, "value").cloned(),
        _ => None,
    };
    match (key(listed), key(element)) {
        (Some(Value::String(a)), Some(Value::String(b))) if !value_exact => {
            a.eq_ignore_ascii_case(&b)
        }
        (Some(a), Some(b)) => a == b,
        (Some(_), None) => false,
        (None, _) => element == listed,
    }
}

/// The value a filter of `eq` terms joined by `and` describes, e.g.
/// `type eq "work"` → `{"type": "work"}`; `None` for any other filter.
/// Walked with an explicit stack, so no native recursion.
fn element_from_filter(filter: &Filter, def: Option<&Attribute>) -> Option<Doc> {
    let mut out = Map::new();
    let mut stack = vec![filter];
    while let Some(f) = stack.pop() {
        match f {
            Filter::And(a, b) => {
                stack.push(b);
                stack.push(a);
            }
            Filter::Compare {
                path,
                op: CompareOp::Eq,
                value,
            } if path.urn.is_none() && path.sub.is_none() => {
                let name = match def {
                    Some(d) => d.sub_attribute(&path.name)?.name.clone(),
                    None => path.name.clone(),
                };
                let v = match value {
                    CompValue::String(s) => Value::String(s.clone()),
                    CompValue::Number(n) => Value::Number(n.clone()),
                    CompValue::Boolean(b) => Value::Bool(*b),
                    CompValue::Null => return None,
                };
                if out.get(&name).is_some_and(|old| *old != v) {
                    return None;
                }
                out.insert(name, v);
            }
            _ => return None,
        }
    }
    Some(out)
}
