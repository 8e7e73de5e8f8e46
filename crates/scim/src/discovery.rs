//! The discovery documents: `/ServiceProviderConfig` (RFC 7643 §5),
//! `/ResourceTypes` (§6) and `/Schemas` (§7), generated from the registry.
//!
//! Every document is a pure function of its inputs, so the same registry and
//! base URL always render byte-identical JSON; the reference copies under
//! `docs/reference/` are checked against it. `meta` therefore carries only
//! `resourceType` and `location`: creation times and versions of
//! configuration would make the documents change with every deployment.

use serde_json::{Map, Value, json};

use crate::meta::location;
use crate::schemas::{
    AttrType, Attribute, LIST_RESPONSE, RESOURCE_TYPE, Registry, ResourceType, SCHEMA,
    SERVICE_PROVIDER_CONFIG, Schema,
};

/// What the service provider supports, for `/ServiceProviderConfig`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceProviderConfig {
    /// Where the human-readable help for this service is.
    pub documentation_uri: Option<String>,
    /// Whether PATCH is supported.
    pub patch: bool,
    /// Bulk support: `(maxOperations, maxPayloadSize in bytes)`; `None` if unsupported.
    pub bulk: Option<(u32, u64)>,
    /// The most resources a filtered query returns.
    pub filter_max_results: u32,
    /// Whether `password` may be changed.
    pub change_password: bool,
    /// Whether `sortBy` is supported.
    pub sort: bool,
    /// Whether ETags (`meta.version`, If-Match) are supported.
    pub etag: bool,
}

impl Default for ServiceProviderConfig {
    /// What scimgate supports out of the box: PATCH, filters (200 results
    /// per query, the RFC 7643 §8.5 example's figure), sorting and ETags;
    /// no bulk, no password changes.
    fn default() -> Self {
        ServiceProviderConfig {
            documentation_uri: None,
            patch: true,
            bulk: None,
            filter_max_results: 200,
            change_password: false,
            sort: true,
            etag: true,
        }
    }
}

impl ServiceProviderConfig {
    /// The RFC 7643 §5 representation served at `<base_url>/ServiceProviderConfig`.
    pub fn to_json(&self, base_url: &str) -> Value {
        let mut m = Map::new();
        m.insert("schemas".into(), json!([SERVICE_PROVIDER_CONFIG]));
        if let Some(uri) = &self.documentation_uri {
            m.insert("documentationUri".into(), Value::String(uri.clone()));
        }
        m.insert("patch".into(), json!({ "supported": self.patch }));
        // maxOperations and maxPayloadSize are REQUIRED sub-attributes even
        // when bulk is unsupported; 0 says "none".
        let (max_operations, max_payload_size) = self.bulk.unwrap_or((0, 0));
        m.insert(
            "bulk".into(),
            json!({
                "supported": self.bulk.is_some(),
                "maxOperations": max_operations,
                "maxPayloadSize": max_payload_size,
            }),
        );
        m.insert(
            "filter".into(),
            json!({ "supported": true, "maxResults": self.filter_max_results }),
        );
        m.insert(
            "changePassword".into(),
            json!({ "supported": self.change_password }),
        );
        m.insert("sort".into(), json!({ "supported": self.sort }));
        m.insert("etag".into(), json!({ "supported": self.etag }));
        m.insert(
            "authenticationSchemes".into(),
            json!([{
                "type": "oauthbearertoken",
                "name": "OAuth Bearer Token",
                "description": "Authentication scheme using the OAuth Bearer Token Standard",
                "specUri": "https://www.rfc-editor.org/info/rfc6750",
                "primary": true,
            }]),
        );
        m.insert(
            "meta".into(),
            json!({
                "resourceType": "ServiceProviderConfig",
                "location": location(base_url, "ServiceProviderConfig", ""),
            }),
        );
        Value::Object(m)
    }
}

/// One schema as served at `<base_url>/Schemas/<urn>` (RFC 7643 §7, §8.7.1).
pub fn schema_resource(schema: &Schema, base_url: &str) -> Value {
    json!({
        "schemas": [SCHEMA],
        "id": schema.id,
        "name": schema.name,
        "description": schema.description,
        "attributes": schema.attributes.iter().map(attribute).collect::<Vec<_>>(),
        "meta": {
            "resourceType": "Schema",
            "location": location(base_url, "Schemas", &schema.id),
        },
    })
}

/// The `/Schemas` ListResponse: every schema in the registry.
pub fn schemas_document(registry: &Registry, base_url: &str) -> Value {
    list_response(
        registry
            .schemas
            .iter()
            .map(|s| schema_resource(s, base_url))
            .collect(),
    )
}

/// One resource type as served at `<base_url>/ResourceTypes/<name>` (RFC 7643 §6, §8.6).
pub fn resource_type_resource(rt: &ResourceType, base_url: &str) -> Value {
    let extensions: Vec<Value> = rt
        .schema_extensions
        .iter()
        .map(|(urn, required)| json!({ "schema": urn, "required": required }))
        .collect();
    json!({
        "schemas": [RESOURCE_TYPE],
        "id": rt.name,
        "name": rt.name,
        "endpoint": rt.endpoint,
        "description": rt.description,
        "schema": rt.schema,
        // Written even when empty: some clients index it unconditionally.
        "schemaExtensions": extensions,
        "meta": {
            "resourceType": "ResourceType",
            "location": location(base_url, "ResourceTypes", &rt.name),
        },
    })
}

/// The `/ResourceTypes` ListResponse: every resource type in the registry.
pub fn resource_types_document(registry: &Registry, base_url: &str) -> Value {
    list_response(
        registry
            .resource_types
            .iter()
            .map(|rt| resource_type_resource(rt, base_url))
            .collect(),
    )
}

/// An unpaged RFC 7644 §3.4.2 ListResponse holding `resources`.
fn list_response(resources: Vec<Value>) -> Value {
    let n = resources.len();
    json!({
        "schemas": [LIST_RESPONSE],
        "totalResults": n,
        "itemsPerPage": n,
        "startIndex": 1,
        "Resources": resources,
    })
}

/// One attribute definition with every RFC 7643 §7 characteristic.
///
/// All characteristics are written for every attribute (the §8.7.1 example
/// omits some, e.g. `caseExact` on booleans), so clients never have to know
/// the defaults; key order follows §8.7.1.
fn attribute(a: &Attribute) -> Value {
    let mut m = Map::new();
    m.insert("name".into(), Value::String(a.name.clone()));
    m.insert("type".into(), Value::String(a.ty.as_str().into()));
    if a.ty == AttrType::Reference {
        m.insert("referenceTypes".into(), json!(a.reference_types));
    }
    m.insert("multiValued".into(), Value::Bool(a.multi_valued));
    m.insert("description".into(), Value::String(a.description.clone()));
    m.insert("required".into(), Value::Bool(a.required));
    if a.ty == AttrType::Complex {
        m.insert(
            "subAttributes".into(),
            Value::Array(a.sub_attributes.iter().map(attribute).collect()),
        );
    }
    m.insert("caseExact".into(), Value::Bool(a.case_exact));
    if !a.canonical_values.is_empty() {
        m.insert("canonicalValues".into(), json!(a.canonical_values));
    }
    m.insert(
        "mutability".into(),
        Value::String(a.mutability.as_str().into()),
    );
    m.insert("returned".into(), Value::String(a.returned.as_str().into()));
    m.insert(
        "uniqueness".into(),
        Value::String(a.uniqueness.as_str().into()),
    );
    Value::Object(m)
}
