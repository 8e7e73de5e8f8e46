//! Coercion of one incoming attribute value to its schema type. (Being written.)

use serde_json::Value;

use crate::error::Result;
use crate::schemas::Attribute;

/// Checks `value` against `attr`'s type and returns it in canonical form.
///
/// Accepts what real IdPs send: booleans as `"True"`/`"False"` (Entra), a
/// bare string for a complex attribute with a `value` sub-attribute (Entra's
/// `manager`), a single object for a multi-valued attribute; canonicalizes
/// sub-attribute names to their schema case. `null` is returned as is (it
/// means "clear" to callers). `at` names the attribute in error messages.
pub fn coerce(attr: &Attribute, value: Value, at: &str) -> Result<Value> {
    let _ = (attr, at);
    Ok(value)
}
