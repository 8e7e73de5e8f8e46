//! Case-insensitive access to JSON objects, and the value predicates PATCH
//! semantics are phrased in.
//!
//! Attribute names are case-insensitive (RFC 7643 §2.1) but documents are
//! stored with one spelling per key. Schema-defined attributes are written
//! back under their schema spelling (an existing key in another case is
//! renamed in place); attributes no schema defines keep the spelling they
//! already have in the document.

use serde_json::{Map, Value};

pub(crate) use super::request::get_ci;

/// The key under which `name` is stored in `map`, exact spelling first.
pub(crate) fn find_key(map: &Map<String, Value>, name: &str) -> Option<String> {
    if map.contains_key(name) {
        return Some(name.to_owned());
    }
    map.keys().find(|k| k.eq_ignore_ascii_case(name)).cloned()
}

/// Mutable access to `name`. With `canonical`, a key spelled in another case
/// is first renamed to `name`, keeping its position.
pub(crate) fn get_mut_ci<'m>(
    map: &'m mut Map<String, Value>,
    name: &str,
    canonical: bool,
) -> Option<&'m mut Value> {
    if !map.contains_key(name) {
        let key = map.keys().find(|k| k.eq_ignore_ascii_case(name)).cloned()?;
        if !canonical {
            return map.get_mut(&key);
        }
        rename(map, &key, name);
    }
    map.get_mut(name)
}

/// Sets `name` to `value`, replacing any key that matches ignoring case.
pub(crate) fn put(map: &mut Map<String, Value>, name: &str, value: Value, canonical: bool) {
    match get_mut_ci(map, name, canonical) {
        Some(slot) => *slot = value,
        None => {
            map.insert(name.to_owned(), value);
        }
    }
}

/// Removes `name` (any case); returns the removed value.
pub(crate) fn remove_ci(map: &mut Map<String, Value>, name: &str) -> Option<Value> {
    if let Some(v) = map.shift_remove(name) {
        return Some(v);
    }
    let key = map.keys().find(|k| k.eq_ignore_ascii_case(name)).cloned()?;
    map.shift_remove(&key)
}

fn rename(map: &mut Map<String, Value>, from: &str, to: &str) {
    let Some(index) = map.keys().position(|k| k == from) else {
        return;
    };
    if let Some((_, v)) = map.shift_remove_entry(from) {
        map.shift_insert(index, to.to_owned(), v);
    }
}

/// RFC 7643 §2.5: unassigned, `null` and `[]` are the same state; an empty
/// complex value (`{}`) carries no sub-attribute and is treated alike.
pub(crate) fn is_unassigned(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => true,
        Some(Value::Array(a)) => a.is_empty(),
        Some(Value::Object(o)) => o.is_empty(),
        Some(_) => false,
    }
}

/// A write of this value clears the attribute: `null`, or Entra's `""`
/// (which it sends when the source attribute was emptied).
pub(crate) fn is_clear(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        _ => false,
    }
}

/// Same state under RFC 7643 §2.5 equivalence.
pub(crate) fn equivalent(a: Option<&Value>, b: Option<&Value>) -> bool {
    match (is_unassigned(a), is_unassigned(b)) {
        (true, true) => true,
        (false, false) => a == b,
        _ => false,
    }
}

/// True when an element of a multi-valued attribute is marked primary.
pub(crate) fn is_primary(element: &Value) -> bool {
    match element {
        Value::Object(o) => matches!(get_ci(o, "primary"), Some(Value::Bool(true))),
        _ => false,
    }
}

/// RFC 7644 §3.5.2: when a value is set primary, "the service provider SHALL
/// set 'primary' to 'false' for any other values in the array". Only other
/// elements that claim primary are touched, so elements without the flag are
/// left as they are. `written` are the indices the operation just wrote.
pub(crate) fn settle_primary(items: &mut [Value], written: &[usize]) -> crate::Result<()> {
    let winners = written
        .iter()
        .filter(|&&i| items.get(i).is_some_and(is_primary))
        .count();
    if winners == 0 {
        return Ok(());
    }
    if winners > 1 {
        return Err(crate::Error::InvalidValue(
            "at most one value of a multi-valued attribute may be primary".into(),
        ));
    }
    for (i, item) in items.iter_mut().enumerate() {
        if written.contains(&i) || !is_primary(item) {
            continue;
        }
        if let Value::Object(o) = item {
            put(o, "primary", Value::Bool(false), true);
        }
    }
    Ok(())
}

/// Fails when a list supplied by the client marks more than one value primary.
pub(crate) fn check_one_primary(items: &[Value], at: &str) -> crate::Result<()> {
    if items.iter().filter(|v| is_primary(v)).count() > 1 {
        return Err(crate::Error::InvalidValue(format!(
            "'{at}': at most one value may be primary"
        )));
    }
    Ok(())
}
