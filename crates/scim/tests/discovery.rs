//! /Schemas, /ResourceTypes and /ServiceProviderConfig (RFC 7643 §5–§7).
//!
//! The rendered documents are checked in under `docs/reference/`; a change
//! to the registry or the renderer that alters them fails
//! `checked_in_reference_documents_are_current` until they are regenerated
//! with `SCIMGATE_BLESS=1 cargo test -p scim --test discovery`.

use std::path::PathBuf;

use scim::Registry;
use scim::discovery::{
    ServiceProviderConfig, resource_type_resource, resource_types_document, schema_resource,
    schemas_document,
};
use scim::schemas::{ENTERPRISE_USER, GROUP, LIST_RESPONSE, SCIMGATE_USER, USER};
use serde_json::{Value, json};

const BASE: &str = "https://scimgate.example.com/scim/v2";

fn reference_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/reference")
}

fn pretty(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(v).expect("a Value always serializes");
    s.push('\n');
    s
}

#[test]
fn checked_in_reference_documents_are_current() {
    let registry = Registry::standard();
    let documents = [
        ("Schemas.json", schemas_document(registry, BASE)),
        (
            "ResourceTypes.json",
            resource_types_document(registry, BASE),
        ),
        (
            "ServiceProviderConfig.json",
            ServiceProviderConfig::default().to_json(BASE),
        ),
    ];
    let dir = reference_dir();
    let bless = std::env::var("SCIMGATE_BLESS").is_ok_and(|v| v == "1");
    let mut stale = Vec::new();
    for (name, doc) in documents {
        let path = dir.join(name);
        let rendered = pretty(&doc);
        if bless {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, rendered).unwrap();
            continue;
        }
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        if on_disk != rendered {
            stale.push(name);
        }
    }
    assert!(
        stale.is_empty(),
        "docs/reference/{stale:?} differ from what the registry renders; \
         regenerate with SCIMGATE_BLESS=1 cargo test -p scim --test discovery \
         and review the diff"
    );
}

fn user_schema() -> Value {
    let registry = Registry::standard();
    schema_resource(registry.schema(USER).expect("User schema"), BASE)
}

fn attr<'a>(schema: &'a Value, name: &str) -> &'a Value {
    schema["attributes"]
        .as_array()
        .expect("attributes is an array")
        .iter()
        .find(|a| a["name"] == name)
        .unwrap_or_else(|| panic!("no attribute {name}"))
}

fn sub<'a>(attribute: &'a Value, name: &str) -> &'a Value {
    attribute["subAttributes"]
        .as_array()
        .expect("subAttributes is an array")
        .iter()
        .find(|a| a["name"] == name)
        .unwrap_or_else(|| panic!("no sub-attribute {name}"))
}

#[test]
fn every_attribute_carries_every_characteristic() {
    let doc = schemas_document(Registry::standard(), BASE);
    let mut seen = 0;
    let mut check = |a: &Value| {
        seen += 1;
        for key in [
            "name",
            "type",
            "multiValued",
            "description",
            "required",
            "caseExact",
            "mutability",
            "returned",
            "uniqueness",
        ] {
            assert!(a.get(key).is_some(), "{} lacks {key}", a["name"]);
        }
        assert_eq!(
            a.get("subAttributes").is_some(),
            a["type"] == "complex",
            "{}",
            a["name"]
        );
        assert_eq!(
            a.get("referenceTypes").is_some(),
            a["type"] == "reference",
            "{}",
            a["name"]
        );
    };
    for schema in doc["Resources"].as_array().unwrap() {
        for a in schema["attributes"].as_array().unwrap() {
            check(a);
            for s in a
                .get("subAttributes")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                check(s);
            }
        }
    }
    // User 21 + 39 sub, Group 2 + 4 sub, Enterprise 6 + 3 sub, scimgate 3 + 4 sub.
    assert!(seen > 60, "only {seen} attributes rendered");
}

#[test]
fn user_schema_matches_rfc7643_8_7_1() {
    let s = user_schema();
    assert_eq!(
        s["schemas"],
        json!(["urn:ietf:params:scim:schemas:core:2.0:Schema"])
    );
    assert_eq!(s["id"], json!(USER));
    assert_eq!(s["name"], json!("User"));
    assert_eq!(s["description"], json!("User Account"));
    assert_eq!(
        s["meta"],
        json!({
            "resourceType": "Schema",
            "location": format!("{BASE}/Schemas/{USER}")
        })
    );
    let user_name = attr(&s, "userName");
    assert_eq!(user_name["type"], "string");
    assert_eq!(user_name["required"], true);
    assert_eq!(user_name["caseExact"], false);
    assert_eq!(user_name["uniqueness"], "server");
    let password = attr(&s, "password");
    assert_eq!(password["mutability"], "writeOnly");
    assert_eq!(password["returned"], "never");
    let groups = attr(&s, "groups");
    assert_eq!(groups["mutability"], "readOnly");
    assert_eq!(groups["multiValued"], true);
    assert_eq!(
        sub(groups, "$ref")["referenceTypes"],
        json!(["User", "Group"])
    );
    let emails = attr(&s, "emails");
    assert_eq!(
        sub(emails, "type")["canonicalValues"],
        json!(["work", "home", "other"])
    );
    assert_eq!(sub(emails, "primary")["type"], "boolean");
    assert_eq!(
        attr(&s, "profileUrl")["referenceTypes"],
        json!(["external"])
    );
    let names: Vec<&str> = s["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    // RFC 7643 §8.7.1 order; common attributes (id, externalId, meta)
    // belong to no schema and are not listed.
    assert_eq!(
        names,
        [
            "userName",
            "name",
            "displayName",
            "nickName",
            "profileUrl",
            "title",
            "userType",
            "preferredLanguage",
            "locale",
            "timezone",
            "active",
            "password",
            "emails",
            "phoneNumbers",
            "ims",
            "photos",
            "addresses",
            "groups",
            "entitlements",
            "roles",
            "x509Certificates"
        ]
    );
}

#[test]
fn group_and_enterprise_schemas_match_rfc7643_8_7() {
    let registry = Registry::standard();
    let g = schema_resource(registry.schema(GROUP).unwrap(), BASE);
    let members = attr(&g, "members");
    for s in ["value", "$ref", "type"] {
        assert_eq!(sub(members, s)["mutability"], "immutable", "members.{s}");
    }
    assert_eq!(
        sub(members, "type")["canonicalValues"],
        json!(["User", "Group"])
    );

    let e = schema_resource(registry.schema(ENTERPRISE_USER).unwrap(), BASE);
    assert_eq!(e["name"], "EnterpriseUser");
    let manager = attr(&e, "manager");
    assert_eq!(sub(manager, "displayName")["mutability"], "readOnly");
    assert_eq!(sub(manager, "$ref")["referenceTypes"], json!(["User"]));
    assert_eq!(
        e["meta"]["location"],
        json!(format!("{BASE}/Schemas/{ENTERPRISE_USER}"))
    );
}

#[test]
fn scimgate_user_extension_is_read_only() {
    let registry = Registry::standard();
    let s = schema_resource(registry.schema(SCIMGATE_USER).unwrap(), BASE);
    let read_only = |a: &Value| {
        json!({
            "mutability": a["mutability"],
            "returned": a["returned"],
            "uniqueness": a["uniqueness"],
            "required": a["required"],
        })
    };
    let expected = json!({
        "mutability": "readOnly",
        "returned": "default",
        "uniqueness": "none",
        "required": false,
    });
    assert_eq!(s["name"], "ScimgateUser");
    assert_eq!(
        s["meta"]["location"],
        json!(format!("{BASE}/Schemas/{SCIMGATE_USER}"))
    );
    let attributes = s["attributes"].as_array().unwrap();
    let names: Vec<&str> = attributes
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["effectiveRoles", "disabled", "locked"]);
    for a in attributes {
        assert_eq!(read_only(a), expected, "{}", a["name"]);
    }
    let roles = attr(&s, "effectiveRoles");
    assert_eq!(roles["type"], "complex");
    assert_eq!(roles["multiValued"], true);
    let subs: Vec<&str> = roles["subAttributes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            assert_eq!(read_only(a), expected, "{}", a["name"]);
            assert_eq!(a["type"], "string", "{}", a["name"]);
            a["name"].as_str().unwrap()
        })
        .collect();
    assert_eq!(subs, ["value", "reason", "groupId", "groupDisplay"]);
    assert_eq!(
        sub(roles, "reason")["canonicalValues"],
        json!(["mapping", "default", "locked"])
    );
    assert_eq!(sub(roles, "value")["caseExact"], true);
    assert_eq!(attr(&s, "disabled")["type"], "boolean");
    assert_eq!(attr(&s, "locked")["type"], "boolean");
}

#[test]
fn list_responses_have_the_rfc7644_shape() {
    let registry = Registry::standard();
    for doc in [
        schemas_document(registry, BASE),
        resource_types_document(registry, BASE),
    ] {
        let n = doc["Resources"].as_array().unwrap().len();
        assert!(n >= 2);
        assert_eq!(doc["schemas"], json!([LIST_RESPONSE]));
        assert_eq!(doc["totalResults"], json!(n));
        assert_eq!(doc["itemsPerPage"], json!(n));
        assert_eq!(doc["startIndex"], json!(1));
    }
    assert_eq!(
        schemas_document(registry, BASE)["totalResults"],
        json!(registry.schemas.len())
    );
}

#[test]
fn resource_types_match_rfc7643_8_6() {
    let registry = Registry::standard();
    let user = resource_type_resource(registry.resource_type("User").unwrap(), BASE);
    assert_eq!(
        user,
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
            "id": "User",
            "name": "User",
            "endpoint": "/Users",
            "description": "User Account",
            "schema": USER,
            "schemaExtensions": [
                {"schema": ENTERPRISE_USER, "required": false},
                {"schema": SCIMGATE_USER, "required": false}
            ],
            "meta": {
                "resourceType": "ResourceType",
                "location": format!("{BASE}/ResourceTypes/User")
            }
        })
    );
    let group = resource_type_resource(registry.resource_type("Group").unwrap(), BASE);
    assert_eq!(group["schema"], json!(GROUP));
    assert_eq!(group["endpoint"], json!("/Groups"));
    assert_eq!(group["schemaExtensions"], json!([]));
}

#[test]
fn service_provider_config_matches_rfc7643_5() {
    let doc = ServiceProviderConfig::default().to_json(BASE);
    assert_eq!(
        doc,
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
            "patch": {"supported": true},
            "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
            "filter": {"supported": true, "maxResults": 200},
            "changePassword": {"supported": false},
            "sort": {"supported": true},
            "etag": {"supported": true},
            "authenticationSchemes": [{
                "type": "oauthbearertoken",
                "name": "OAuth Bearer Token",
                "description": "Authentication scheme using the OAuth Bearer Token Standard",
                "specUri": "https://www.rfc-editor.org/info/rfc6750",
                "primary": true
            }],
            "meta": {
                "resourceType": "ServiceProviderConfig",
                "location": format!("{BASE}/ServiceProviderConfig")
            }
        })
    );

    let custom = ServiceProviderConfig {
        documentation_uri: Some("https://docs.example.com/scim".into()),
        patch: false,
        bulk: Some((1000, 1_048_576)),
        filter_max_results: 50,
        change_password: true,
        sort: false,
        etag: false,
    }
    .to_json(&format!("{BASE}/"));
    assert_eq!(
        custom["documentationUri"],
        json!("https://docs.example.com/scim")
    );
    assert_eq!(
        custom["bulk"],
        json!({"supported": true, "maxOperations": 1000, "maxPayloadSize": 1048576})
    );
    assert_eq!(custom["patch"], json!({"supported": false}));
    assert_eq!(custom["filter"]["maxResults"], json!(50));
    assert_eq!(custom["changePassword"], json!({"supported": true}));
    // A trailing slash on the base URL does not double up.
    assert_eq!(
        custom["meta"]["location"],
        json!(format!("{BASE}/ServiceProviderConfig"))
    );
}
