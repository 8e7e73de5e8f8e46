//! attributes / excludedAttributes (RFC 7644 §3.4.2.5, §3.9) against
//! stored documents, honouring `returned`.

use scim::projection::Projection;
use scim::schemas::{ENTERPRISE_USER, GROUP, Registry, Returned, SCIMGATE_USER, USER};
use scim::{AttrPath, Error, ResourceSchema};
use serde_json::{Value, json};

const CUSTOM: &str = "urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User";

/// A stored User: RFC 7643 §8.3 trimmed, plus an IdP's custom extension
/// and (as a defence-in-depth check) a password that must never leak.
fn stored_user() -> Value {
    json!({
        "schemas": [USER, ENTERPRISE_USER, CUSTOM],
        "id": "2819c223-7f76-453a-919d-413861904646",
        "externalId": "701984",
        "userName": "bjensen@example.com",
        "name": {"formatted": "Ms. Barbara J Jensen, III", "familyName": "Jensen", "givenName": "Barbara"},
        "nickName": "Babs",
        "emails": [
            {"value": "bjensen@example.com", "type": "work", "primary": true},
            {"value": "babs@jensen.org", "type": "home"}
        ],
        "active": true,
        "password": "t1meMa$heen",
        ENTERPRISE_USER: {
            "employeeNumber": "701984",
            "manager": {"value": "26118915", "displayName": "John Smith"}
        },
        CUSTOM: {"badge": "B-7"},
        "meta": {
            "resourceType": "User",
            "created": "2010-01-23T04:56:22.000Z",
            "lastModified": "2011-05-13T04:42:34.000Z",
            "location": "https://example.com/v2/Users/2819c223-7f76-453a-919d-413861904646",
            "version": "W/\"3\""
        }
    })
}

fn stored_group() -> Value {
    json!({
        "schemas": [GROUP],
        "id": "e9e30dba",
        "displayName": "Tour Guides",
        "members": [
            {"value": "2819c223", "$ref": "https://example.com/v2/Users/2819c223", "display": "Babs Jensen"},
            {"value": "902c246b", "display": "Mandy Pepperidge"}
        ],
        "meta": {"resourceType": "Group", "version": "W/\"1\""}
    })
}

fn project(attributes: Option<&str>, excluded: Option<&str>) -> Value {
    Projection::parse(attributes, excluded)
        .expect("valid projection")
        .apply(stored_user(), ResourceSchema::user())
}

fn without(mut v: Value, keys: &[&str]) -> Value {
    if let Some(m) = v.as_object_mut() {
        for k in keys {
            m.shift_remove(*k);
        }
    }
    v
}

#[test]
fn the_default_set_is_everything_but_returned_never() {
    let out = Projection::all().apply(stored_user(), ResourceSchema::user());
    assert_eq!(out, without(stored_user(), &["password"]));
    let parsed = Projection::parse(None, None).unwrap();
    assert_eq!(parsed, Projection::all());
}

#[test]
fn a_sub_attribute_returns_its_parent_with_only_that_sub_attribute() {
    assert_eq!(
        project(Some("name.givenName"), None),
        json!({
            "schemas": [USER, ENTERPRISE_USER, CUSTOM],
            "id": "2819c223-7f76-453a-919d-413861904646",
            "name": {"givenName": "Barbara"}
        })
    );
}

#[test]
fn a_multi_valued_sub_attribute_is_projected_in_every_element() {
    let out = project(Some("emails.value"), None);
    assert_eq!(
        out["emails"],
        json!([{"value": "bjensen@example.com"}, {"value": "babs@jensen.org"}])
    );
}

#[test]
fn attributes_overrides_the_default_set_but_keeps_returned_always() {
    let out = project(Some("userName"), None);
    assert_eq!(
        out,
        json!({
            "schemas": [USER, ENTERPRISE_USER, CUSTOM],
            "id": "2819c223-7f76-453a-919d-413861904646",
            "userName": "bjensen@example.com"
        })
    );
}

#[test]
fn names_are_case_insensitive() {
    assert_eq!(
        project(Some("USERNAME,Name.GivenName"), None),
        project(Some("userName,name.givenName"), None)
    );
    assert!(project(Some("USERNAME"), None).get("userName").is_some());
    assert!(project(None, Some("NICKNAME")).get("nickName").is_none());
}

#[test]
fn returned_always_survives_exclusion() {
    let out = project(None, Some("id,schemas,userName"));
    assert_eq!(out["id"], json!("2819c223-7f76-453a-919d-413861904646"));
    assert!(out.get("schemas").is_some());
    assert!(out.get("userName").is_none());
}

#[test]
fn returned_never_is_not_returned_even_when_requested() {
    assert!(project(Some("password"), None).get("password").is_none());
    assert!(project(None, None).get("password").is_none());
    let p = Projection::parse(Some("password"), None).unwrap();
    assert!(!p.wants(&AttrPath::new("password"), ResourceSchema::user()));
}

#[test]
fn meta_is_returned_by_default_and_can_be_narrowed() {
    assert!(project(None, None).get("meta").is_some());
    assert!(project(Some("userName"), None).get("meta").is_none());
    assert_eq!(
        project(Some("meta.lastModified"), None)["meta"],
        json!({"lastModified": "2011-05-13T04:42:34.000Z"})
    );
    assert!(
        project(None, Some("meta.version"))["meta"]
            .get("version")
            .is_none()
    );
}

#[test]
fn excluding_a_sub_attribute_keeps_the_rest_of_the_parent() {
    let out = project(None, Some("name.givenName,emails.type"));
    assert_eq!(
        out["name"],
        json!({"formatted": "Ms. Barbara J Jensen, III", "familyName": "Jensen"})
    );
    assert_eq!(
        out["emails"],
        json!([
            {"value": "bjensen@example.com", "primary": true},
            {"value": "babs@jensen.org"}
        ])
    );
}

#[test]
fn a_complex_value_emptied_by_exclusion_disappears() {
    let out = project(None, Some("name.givenName,name.familyName,name.formatted"));
    assert!(out.get("name").is_none());
}

#[test]
fn urn_qualified_extension_attributes() {
    let out = project(Some(&format!("{ENTERPRISE_USER}:manager")), None);
    assert_eq!(
        out[ENTERPRISE_USER],
        json!({"manager": {"value": "26118915", "displayName": "John Smith"}})
    );
    assert!(out.get("userName").is_none());
    assert!(out.get(CUSTOM).is_none());

    let out = project(Some(&format!("{ENTERPRISE_USER}:manager.value")), None);
    assert_eq!(
        out[ENTERPRISE_USER],
        json!({"manager": {"value": "26118915"}})
    );

    // Unqualified extension names resolve as filters and PATCH paths do.
    let out = project(Some("employeeNumber"), None);
    assert_eq!(out[ENTERPRISE_USER], json!({"employeeNumber": "701984"}));
}

#[test]
fn a_schema_urn_selects_or_removes_the_whole_extension() {
    let out = project(Some(ENTERPRISE_USER), None);
    assert_eq!(out[ENTERPRISE_USER], stored_user()[ENTERPRISE_USER]);
    assert!(out.get("userName").is_none());

    let out = project(None, Some(ENTERPRISE_USER));
    assert!(out.get(ENTERPRISE_USER).is_none());
    assert!(out.get("userName").is_some());

    // URN case does not matter.
    let out = project(None, Some(&ENTERPRISE_USER.to_uppercase()));
    assert!(out.get(ENTERPRISE_USER).is_none());
}

#[test]
fn unknown_extensions_are_projected_like_known_ones() {
    let out = project(Some(CUSTOM), None);
    assert_eq!(out[CUSTOM], json!({"badge": "B-7"}));
    assert!(out.get(ENTERPRISE_USER).is_none());

    let out = project(Some(&format!("{CUSTOM}:badge")), None);
    assert_eq!(out[CUSTOM], json!({"badge": "B-7"}));

    assert!(project(None, Some(CUSTOM)).get(CUSTOM).is_none());
    assert!(project(Some("userName"), None).get(CUSTOM).is_none());
}

#[test]
fn core_urn_qualified_names() {
    let out = project(Some(&format!("{USER}:userName")), None);
    assert_eq!(out["userName"], json!("bjensen@example.com"));
    assert!(out.get("name").is_none());
    // The bare core URN names every core attribute, not the extensions.
    let out = project(Some(USER), None);
    assert!(out.get("userName").is_some() && out.get("meta").is_some());
    assert!(out.get(ENTERPRISE_USER).is_none());
}

#[test]
fn both_parameters_select_then_remove() {
    let out = project(Some("name,userName"), Some("name.givenName,id"));
    assert_eq!(
        out,
        json!({
            "schemas": [USER, ENTERPRISE_USER, CUSTOM],
            "id": "2819c223-7f76-453a-919d-413861904646",
            "userName": "bjensen@example.com",
            "name": {"formatted": "Ms. Barbara J Jensen, III", "familyName": "Jensen"}
        })
    );
}

#[test]
fn unknown_names_select_nothing_and_are_not_errors() {
    let out = project(Some("doesNotExist"), Some("neitherDoesThis"));
    assert_eq!(
        out,
        json!({
            "schemas": [USER, ENTERPRISE_USER, CUSTOM],
            "id": "2819c223-7f76-453a-919d-413861904646"
        })
    );
}

#[test]
fn malformed_lists_are_invalid_path() {
    for bad in [
        "name..givenName",
        "emails[type eq \"work\"]",
        "1st",
        "a,b c",
    ] {
        let err = Projection::parse(Some(bad), None).unwrap_err();
        assert!(matches!(err, Error::InvalidPath(_)), "{bad}: {err:?}");
        assert_eq!(err.status(), 400);
    }
}

#[test]
fn excluded_members_are_not_wanted() {
    let g = ResourceSchema::group();
    let members = AttrPath::new("members");
    let excluded = Projection::parse(None, Some("members")).unwrap();
    assert!(!excluded.wants(&members, g));
    assert!(excluded.wants(&AttrPath::new("displayName"), g));
    assert!(excluded.wants(&AttrPath::new("id"), g));
    let out = excluded.apply(stored_group(), g);
    assert_eq!(out, without(stored_group(), &["members"]));

    let narrowed = Projection::parse(Some("displayName"), None).unwrap();
    assert!(!narrowed.wants(&members, g));
    assert!(Projection::all().wants(&members, g));

    let values = Projection::parse(Some("members.value"), None).unwrap();
    assert!(values.wants(&members, g));
    assert!(values.wants(&AttrPath::with_sub("members", "value"), g));
    assert!(!values.wants(&AttrPath::with_sub("members", "display"), g));
    assert_eq!(
        values.apply(stored_group(), g)["members"],
        json!([{"value": "2819c223"}, {"value": "902c246b"}])
    );
}

#[test]
fn wants_understands_extensions() {
    let u = ResourceSchema::user();
    let whole = AttrPath::parse(ENTERPRISE_USER).unwrap();
    let manager = AttrPath::parse(&format!("{ENTERPRISE_USER}:manager")).unwrap();
    let p = Projection::parse(Some(&format!("{ENTERPRISE_USER}:manager")), None).unwrap();
    assert!(p.wants(&manager, u));
    assert!(p.wants(&whole, u));
    assert!(!p.wants(&AttrPath::new("userName"), u));
    let p = Projection::parse(None, Some(ENTERPRISE_USER)).unwrap();
    assert!(!p.wants(&whole, u));
    assert!(!p.wants(&manager, u));
    assert!(!p.wants(&AttrPath::new("employeeNumber"), u));
    assert!(p.wants(&AttrPath::new("userName"), u));
}

#[test]
fn scimgate_extension_is_wanted_by_default_and_only_then() {
    let u = ResourceSchema::user();
    let wants = |attributes: Option<&str>, excluded: Option<&str>| {
        Projection::parse(attributes, excluded)
            .unwrap()
            .wants_schema(SCIMGATE_USER, u)
    };
    assert!(wants(None, None));
    assert!(wants(None, Some("userName,groups")));
    assert!(wants(Some(SCIMGATE_USER), None));
    assert!(wants(
        Some(&format!("{SCIMGATE_USER}:effectiveRoles.value")),
        None
    ));
    assert!(wants(
        Some(&format!("userName,{SCIMGATE_USER}:locked")),
        None
    ));
    assert!(!wants(Some("userName"), None));
    assert!(!wants(None, Some(SCIMGATE_USER)));
    assert!(!wants(None, Some(&SCIMGATE_USER.to_lowercase())));
    // Unqualified names are not the extension's (it is read-only).
    assert!(!wants(Some("effectiveRoles"), None));
    // `wants` on the bare URN asks the same question.
    let whole = AttrPath::parse(SCIMGATE_USER).unwrap();
    let p = Projection::parse(None, Some(SCIMGATE_USER)).unwrap();
    assert!(!p.wants(&whole, u));
    assert!(Projection::all().wants(&whole, u));
    assert!(!Projection::all().wants_schema("urn:example:unknown:2.0:User", u));

    let doc = json!({
        "schemas": [USER, SCIMGATE_USER],
        "id": "u1",
        "userName": "bjensen",
        SCIMGATE_USER: {
            "effectiveRoles": [{"value": "admin", "reason": "default"}],
            "disabled": false,
            "locked": false
        }
    });
    let p =
        Projection::parse(Some(&format!("{SCIMGATE_USER}:effectiveRoles.value")), None).unwrap();
    assert_eq!(
        p.apply(doc.clone(), u),
        json!({
            "schemas": [USER, SCIMGATE_USER],
            "id": "u1",
            SCIMGATE_USER: {"effectiveRoles": [{"value": "admin"}]}
        })
    );
    let p = Projection::parse(None, Some(SCIMGATE_USER)).unwrap();
    assert!(p.apply(doc.clone(), u).get(SCIMGATE_USER).is_none());
}

/// A registry where some attributes are `returned: request`, which the
/// standard schemas do not use.
fn registry_with_request_attributes() -> Registry {
    let mut registry = Registry::standard().clone();
    let user = registry
        .schemas
        .iter_mut()
        .find(|s| s.id == USER)
        .expect("User schema");
    for a in user.attributes.iter_mut() {
        if a.name == "nickName" {
            a.returned = Returned::Request;
        }
        if a.name == "name" {
            for s in a.sub_attributes.iter_mut() {
                if s.name == "formatted" {
                    s.returned = Returned::Request;
                }
            }
        }
    }
    registry
}

#[test]
fn returned_request_only_when_named() {
    let registry = registry_with_request_attributes();
    let u = registry.view("User").unwrap();
    let apply =
        |a: Option<&str>, e: Option<&str>| Projection::parse(a, e).unwrap().apply(stored_user(), u);

    let default = apply(None, None);
    assert!(default.get("nickName").is_none());
    assert_eq!(
        default["name"],
        json!({"familyName": "Jensen", "givenName": "Barbara"})
    );
    assert!(apply(None, Some("userName")).get("nickName").is_none());

    assert_eq!(apply(Some("nickName"), None)["nickName"], json!("Babs"));
    assert!(apply(Some("userName"), None).get("nickName").is_none());

    // Naming the parent returns its request sub-attributes too; naming a
    // sibling does not.
    assert_eq!(apply(Some("name"), None)["name"], stored_user()["name"]);
    assert_eq!(
        apply(Some("name.givenName"), None)["name"],
        json!({"givenName": "Barbara"})
    );
    assert_eq!(
        apply(Some("name.formatted"), None)["name"],
        json!({"formatted": "Ms. Barbara J Jensen, III"})
    );

    let p = Projection::parse(None, None).unwrap();
    assert!(!p.wants(&AttrPath::new("nickName"), u));
    assert!(!p.wants(&AttrPath::with_sub("name", "formatted"), u));
    assert!(p.wants(&AttrPath::with_sub("name", "givenName"), u));
}

#[test]
fn non_object_documents_pass_through() {
    let p = Projection::parse(Some("userName"), None).unwrap();
    assert_eq!(
        p.apply(json!([1, 2]), ResourceSchema::user()),
        json!([1, 2])
    );
}

mod robustness {
    use proptest::prelude::*;

    use super::*;

    fn arb_doc() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            ".{0,6}".prop_map(Value::String),
        ];
        let key = prop_oneof![
            Just("schemas".to_owned()),
            Just("id".to_owned()),
            Just("name".to_owned()),
            Just("emails".to_owned()),
            Just("password".to_owned()),
            Just("value".to_owned()),
            Just(ENTERPRISE_USER.to_owned()),
            Just(CUSTOM.to_owned()),
            "[a-zA-Z:.]{0,10}",
        ];
        leaf.prop_recursive(3, 32, 5, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                prop::collection::vec((key.clone(), inner), 0..6)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn parse_and_apply_never_panic(
            attributes in proptest::option::of("[a-zA-Z:., $0-9]{0,40}"),
            excluded in proptest::option::of("[a-zA-Z:., $0-9]{0,40}"),
            doc in arb_doc(),
        ) {
            if let Ok(p) = Projection::parse(attributes.as_deref(), excluded.as_deref()) {
                for rs in [ResourceSchema::user(), ResourceSchema::group()] {
                    let out = p.apply(doc.clone(), rs);
                    // Projection only ever removes.
                    if let (Some(o), Some(d)) = (out.as_object(), doc.as_object()) {
                        prop_assert!(o.keys().all(|k| d.contains_key(k)));
                    }
                    let _ = p.wants(&AttrPath::new("members"), rs);
                }
            }
        }
    }
}
