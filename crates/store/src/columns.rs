//! The indexed columns derived from a document.
//!
//! Attributes are found the way the filter evaluator finds them (exact key
//! first, then ignoring ASCII case), and case-insensitive values are
//! lower-cased the way it lower-cases (per Unicode scalar, not
//! `str::to_lowercase`, whose final-sigma rule the evaluator does not
//! apply), so SQL over these columns agrees with `scim::filter::matches`.
//! Documents arrive validated; a type the columns cannot represent is
//! refused rather than indexed wrongly.

use serde_json::Value;

use crate::{Result, StoreError};

/// Lower-cases exactly as the SCIM filter evaluator does.
pub(crate) fn lower(s: &str) -> String {
    s.chars().flat_map(char::to_lowercase).collect()
}

/// Looks up `key` in an object: exact match first, then ignoring ASCII case.
pub(crate) fn get_ci<'d>(value: &'d Value, key: &str) -> Option<&'d Value> {
    let map = value.as_object()?;
    map.get(key).or_else(|| {
        map.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

/// A User's indexed columns.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct UserColumns {
    pub user_name: String,
    pub user_name_norm: String,
    pub external_id: Option<String>,
    pub display_name: Option<String>,
    pub display_name_norm: Option<String>,
    pub active: Option<bool>,
    /// One entry per `emails` element: its lower-cased `value`, if any.
    pub emails: Vec<Option<String>>,
}

/// A Group's indexed columns.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct GroupColumns {
    pub display_name: String,
    pub display_name_norm: String,
    pub external_id: Option<String>,
}

fn object(doc: &Value) -> Result<()> {
    if doc.is_object() {
        Ok(())
    } else {
        Err(StoreError::InvalidValue(
            "a resource document must be a JSON object".into(),
        ))
    }
}

fn optional_string(doc: &Value, key: &str) -> Result<Option<String>> {
    match get_ci(doc, key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(StoreError::InvalidValue(format!(
            "'{key}' must be a string"
        ))),
    }
}

fn required_string(doc: &Value, key: &str) -> Result<String> {
    match optional_string(doc, key)? {
        Some(s) if !s.is_empty() => Ok(s),
        _ => Err(StoreError::InvalidValue(format!("'{key}' is required"))),
    }
}

pub(crate) fn user_columns(doc: &Value) -> Result<UserColumns> {
    object(doc)?;
    let user_name = required_string(doc, "userName")?;
    let display_name = optional_string(doc, "displayName")?;
    let active = match get_ci(doc, "active") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => {
            return Err(StoreError::InvalidValue(
                "'active' must be a boolean".into(),
            ));
        }
    };
    let emails = match get_ci(doc, "emails") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items.iter().map(email_value).collect::<Result<_>>()?,
        Some(single @ Value::Object(_)) => vec![email_value(single)?],
        Some(_) => {
            return Err(StoreError::InvalidValue(
                "'emails' must be a list of objects".into(),
            ));
        }
    };
    Ok(UserColumns {
        user_name_norm: lower(&user_name),
        user_name,
        external_id: optional_string(doc, "externalId")?,
        display_name_norm: display_name.as_deref().map(lower),
        display_name,
        active,
        emails,
    })
}

fn email_value(element: &Value) -> Result<Option<String>> {
    if !element.is_object() {
        return Err(StoreError::InvalidValue(
            "each element of 'emails' must be an object".into(),
        ));
    }
    Ok(optional_string(element, "value")
        .map_err(|_| StoreError::InvalidValue("'emails.value' must be a string".into()))?
        .map(|v| lower(&v)))
}

pub(crate) fn group_columns(doc: &Value) -> Result<GroupColumns> {
    object(doc)?;
    let display_name = required_string(doc, "displayName")?;
    Ok(GroupColumns {
        display_name_norm: lower(&display_name),
        display_name,
        external_id: optional_string(doc, "externalId")?,
    })
}

/// The top-level attributes whose values differ between two documents
/// (added, removed or changed), in the new document's order, then removed
/// ones.
pub(crate) fn changed_attributes(old: &Value, new: &Value) -> Vec<String> {
    let empty = serde_json::Map::new();
    let old = old.as_object().unwrap_or(&empty);
    let new = new.as_object().unwrap_or(&empty);
    let mut out: Vec<String> = new
        .iter()
        .filter(|(k, v)| old.get(*k) != Some(*v))
        .map(|(k, _)| k.clone())
        .collect();
    out.extend(old.keys().filter(|k| !new.contains_key(*k)).cloned());
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn derives_user_columns() {
        let c = user_columns(&json!({
            "userName": "BJensen",
            "displayName": "Babs ΣΑΣ",
            "externalId": "X1",
            "active": true,
            "emails": [{"value": "B@Example.com", "type": "work"}, {"type": "home"}]
        }))
        .unwrap();
        assert_eq!(c.user_name_norm, "bjensen");
        // Per-scalar lower-casing: no final sigma.
        assert_eq!(c.display_name_norm.as_deref(), Some("babs σασ"));
        assert_eq!(c.external_id.as_deref(), Some("X1"));
        assert_eq!(c.active, Some(true));
        assert_eq!(c.emails, vec![Some("b@example.com".into()), None]);
    }

    #[test]
    fn refuses_what_the_columns_cannot_hold() {
        for bad in [
            json!({}),
            json!({"userName": ""}),
            json!({"userName": 5}),
            json!({"userName": "a", "active": "True"}),
            json!({"userName": "a", "externalId": 7}),
            json!({"userName": "a", "emails": ["a@b"]}),
            json!({"userName": "a", "emails": [{"value": 1}]}),
            json!([1]),
        ] {
            assert!(
                matches!(user_columns(&bad), Err(StoreError::InvalidValue(_))),
                "{bad}"
            );
        }
        assert!(group_columns(&json!({"displayName": null})).is_err());
    }

    #[test]
    fn changed_attributes_lists_added_changed_removed() {
        let old = json!({"a": 1, "b": 2, "c": 3});
        let new = json!({"a": 1, "b": 5, "d": 4});
        assert_eq!(changed_attributes(&old, &new), vec!["b", "d", "c"]);
    }
}
