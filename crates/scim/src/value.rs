//! Coercion of one incoming attribute value to its schema type.
//!
//! Validation (POST/PUT) and PATCH both write values into documents; this is
//! the one place that decides what a value of each RFC 7643 §2.3 type may
//! look like on input, and which real-world deviations are tolerated.

use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::schemas::{AttrType, Attribute};

/// Checks `value` against `attr`'s type and returns it in canonical form.
///
/// Accepts what real IdPs send: booleans as `"True"`/`"False"` (Entra), a
/// bare string for a complex attribute with a `value` sub-attribute (Entra's
/// `manager`), a single object for a multi-valued attribute; canonicalizes
/// sub-attribute names to their schema case. `null` is returned as is (it
/// means "clear" to callers). `at` names the attribute in error messages.
pub fn coerce(attr: &Attribute, value: Value, at: &str) -> Result<Value> {
    if value.is_null() {
        return Ok(Value::Null);
    }
    if attr.multi_valued {
        let items = match value {
            Value::Array(items) => items,
            // A lone value where a list is expected: IdPs do this for
            // single-element lists; the meaning is unambiguous.
            single => vec![single],
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.into_iter().enumerate() {
            if item.is_null() {
                continue;
            }
            out.push(coerce_single(attr, item, &format!("{at}[{i}]"))?);
        }
        return Ok(Value::Array(out));
    }
    if value.is_array() {
        return Err(Error::InvalidValue(format!(
            "'{at}' is single-valued; an array was given"
        )));
    }
    coerce_single(attr, value, at)
}

/// Coerces one (non-array) value of `attr`.
fn coerce_single(attr: &Attribute, value: Value, at: &str) -> Result<Value> {
    match attr.ty {
        AttrType::Complex => coerce_complex(attr, value, at),
        ty => coerce_scalar(ty, value, at),
    }
}

fn coerce_complex(attr: &Attribute, value: Value, at: &str) -> Result<Value> {
    let map = match value {
        Value::Object(map) => map,
        // Entra sends `manager` as a bare id; any complex attribute with a
        // `value` sub-attribute reads a scalar the same way.
        scalar @ (Value::String(_) | Value::Number(_) | Value::Bool(_))
            if attr.sub_attribute("value").is_some() =>
        {
            let mut m = Map::with_capacity(1);
            m.insert("value".into(), scalar);
            m
        }
        other => {
            return Err(Error::InvalidValue(format!(
                "'{at}' is complex; expected an object, got {}",
                json_kind(&other)
            )));
        }
    };
    let mut out = Map::with_capacity(map.len());
    for (key, v) in map {
        match attr.sub_attribute(&key) {
            Some(sub) => {
                let name = sub.name.clone();
                let coerced = coerce(sub, v, &format!("{at}.{name}"))?;
                // Entra clears a sub-attribute with "" as it does attributes.
                if !coerced.is_null() && coerced != Value::String(String::new()) {
                    out.insert(name, coerced);
                }
            }
            // Unknown sub-attributes are kept: IdPs add their own (Okta's
            // `display` on emails variants, Entra's custom complex
            // extensions), and dropping data silently is worse.
            None => {
                if !v.is_null() {
                    out.insert(key, v);
                }
            }
        }
    }
    Ok(Value::Object(out))
}

fn coerce_scalar(ty: AttrType, value: Value, at: &str) -> Result<Value> {
    let wrong = |v: &Value| {
        Error::InvalidValue(format!(
            "'{at}' must be a {}; got {}",
            ty.as_str(),
            json_kind(v)
        ))
    };
    match ty {
        AttrType::String | AttrType::Reference | AttrType::Binary => match value {
            Value::String(_) => Ok(value),
            other => Err(wrong(&other)),
        },
        AttrType::Boolean => match value {
            Value::Bool(_) => Ok(value),
            // Entra (before aadOptscim062020, and still in places) sends
            // "True"/"False".
            Value::String(ref s) if s.eq_ignore_ascii_case("true") => Ok(Value::Bool(true)),
            Value::String(ref s) if s.eq_ignore_ascii_case("false") => Ok(Value::Bool(false)),
            other => Err(wrong(&other)),
        },
        AttrType::Integer => match value {
            Value::Number(ref n) if n.is_i64() || n.is_u64() => Ok(value),
            other => Err(wrong(&other)),
        },
        AttrType::Decimal => match value {
            Value::Number(_) => Ok(value),
            other => Err(wrong(&other)),
        },
        AttrType::DateTime => match value {
            Value::String(ref s) if chrono::DateTime::parse_from_rfc3339(s).is_ok() => Ok(value),
            Value::String(ref s) => Err(Error::InvalidValue(format!(
                "'{at}' must be an RFC 3339 dateTime; got {s:?}"
            ))),
            other => Err(wrong(&other)),
        },
        AttrType::Complex => Err(wrong(&value)),
    }
}

/// A short name of a JSON value's kind, for error messages.
pub fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::path::AttrPath;
    use crate::schemas::{ENTERPRISE_USER, ResourceSchema};

    fn user_attr(path: &str) -> &'static Attribute {
        let p = AttrPath::parse(path).unwrap();
        ResourceSchema::user().resolve(&p).unwrap().leaf()
    }

    #[test]
    fn entra_boolean_strings_become_booleans() {
        let active = user_attr("active");
        assert_eq!(
            coerce(active, json!("True"), "active").unwrap(),
            json!(true)
        );
        assert_eq!(
            coerce(active, json!("false"), "active").unwrap(),
            json!(false)
        );
        assert_eq!(coerce(active, json!(true), "active").unwrap(), json!(true));
        assert!(matches!(
            coerce(active, json!("yes"), "active"),
            Err(Error::InvalidValue(_))
        ));
        assert!(coerce(active, json!({}), "active").is_err());
    }

    #[test]
    fn manager_as_bare_id_becomes_object() {
        let manager = user_attr(&format!("{ENTERPRISE_USER}:manager"));
        assert_eq!(
            coerce(manager, json!("26118915-6090"), "manager").unwrap(),
            json!({"value": "26118915-6090"})
        );
    }

    #[test]
    fn multi_valued_accepts_single_object_and_canonicalizes_sub_names() {
        let emails = user_attr("emails");
        let out = coerce(
            emails,
            json!({"VALUE": "a@x.com", "Type": "work", "Primary": "True"}),
            "emails",
        )
        .unwrap();
        assert_eq!(
            out,
            json!([{"value": "a@x.com", "type": "work", "primary": true}])
        );
    }

    #[test]
    fn wrong_types_are_invalid_value() {
        assert!(coerce(user_attr("userName"), json!(42), "userName").is_err());
        assert!(coerce(user_attr("emails"), json!([["a@x.com"]]), "emails").is_err());
        assert!(coerce(user_attr("emails"), json!([{"value": 7}]), "emails").is_err());
        assert!(coerce(user_attr("name"), json!([]), "name").is_err());
        assert!(
            coerce(
                user_attr("meta.created"),
                json!("yesterday"),
                "meta.created"
            )
            .is_err()
        );
        assert!(
            coerce(
                user_attr("meta.created"),
                json!("2011-08-01T18:29:49.793Z"),
                "c"
            )
            .is_ok()
        );
    }

    #[test]
    fn bare_strings_in_a_value_bearing_list_become_value_objects() {
        assert_eq!(
            coerce(user_attr("emails"), json!(["a@x.com"]), "emails").unwrap(),
            json!([{"value": "a@x.com"}])
        );
    }

    #[test]
    fn empty_string_sub_attribute_clears_it() {
        let name = user_attr("name");
        assert_eq!(
            coerce(
                name,
                json!({"givenName": "", "familyName": "Jensen"}),
                "name"
            )
            .unwrap(),
            json!({"familyName": "Jensen"})
        );
    }
}
