//! Filter evaluation against JSON documents. (To be written.)

use serde_json::Value;

use super::Filter;
use crate::path::AttrPath;
use crate::schemas::ResourceSchema;

/// True when the resource document `doc` matches `filter`.
pub fn matches(filter: &Filter, doc: &Value, schema: ResourceSchema<'_>) -> bool {
    let _ = (filter, doc, schema);
    todo!("filter evaluation")
}

/// True when one element of the multi-valued attribute `parent` (e.g. one
/// entry of `emails`) matches the value filter `filter`, whose paths are
/// relative to the element.
pub fn matches_element(
    filter: &Filter,
    element: &Value,
    schema: ResourceSchema<'_>,
    parent: &AttrPath,
) -> bool {
    let _ = (filter, element, schema, parent);
    todo!("value filter evaluation")
}
