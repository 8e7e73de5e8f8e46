//! POST/PUT validation: RFC 7643 §8 examples, Entra and Okta bodies,
//! readOnly/writeOnly/immutable handling, and malformed input.

use proptest::prelude::*;
use scim::schemas::{ENTERPRISE_USER, GROUP, Mutability, Registry, SCIMGATE_USER, USER};
use scim::validate::{Mode, Validated, validate_resource};
use scim::{Error, ResourceSchema};
use serde_json::{Value, json};

const CUSTOM: &str = "urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User";

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).expect("fixture exists");
    serde_json::from_str(&text).expect("fixture is JSON")
}

fn create_user(body: &Value) -> scim::Result<Validated> {
    validate_resource(body, ResourceSchema::user(), Mode::Create)
}

fn create_group(body: &Value) -> scim::Result<Validated> {
    validate_resource(body, ResourceSchema::group(), Mode::Create)
}

fn without(mut v: Value, keys: &[&str]) -> Value {
    if let Some(m) = v.as_object_mut() {
        for k in keys {
            m.shift_remove(*k);
        }
    }
    v
}

// --- RFC 7643 §8 examples ---------------------------------------------------

#[test]
fn rfc7643_8_1_minimal_user_keeps_only_writable_attributes() {
    let out = create_user(&fixture("rfc7643_8_1_minimal_user.json")).unwrap();
    assert_eq!(
        out.document,
        json!({"schemas": [USER], "userName": "bjensen@example.com"})
    );
    assert_eq!(out.password, None);
}

#[test]
fn rfc7643_8_2_full_user_strips_read_only_and_extracts_the_password() {
    let input = fixture("rfc7643_8_2_full_user.json");
    let out = create_user(&input).unwrap();
    // Everything else in the example is writable and already canonical.
    let expected = without(input, &["id", "meta", "groups", "password"]);
    assert_eq!(out.document, expected);
    assert_eq!(out.password.as_deref(), Some("t1meMa$heen"));
}

#[test]
fn rfc7643_8_3_enterprise_user_validates_the_extension() {
    let input = fixture("rfc7643_8_3_enterprise_user.json");
    let out = create_user(&input).unwrap();
    let doc = &out.document;
    assert_eq!(doc["schemas"], json!([USER, ENTERPRISE_USER]));
    for gone in ["id", "meta", "groups", "password"] {
        assert!(doc.get(gone).is_none(), "{gone} should be stripped");
    }
    // manager.displayName is readOnly; the rest of the extension is kept.
    assert_eq!(
        doc[ENTERPRISE_USER],
        json!({
            "employeeNumber": "701984",
            "costCenter": "4130",
            "organization": "Universal Studios",
            "division": "Theme Park",
            "department": "Tour Operations",
            "manager": {
                "value": "26118915-6090-4610-87e4-49d8ca9f808d",
                "$ref": "../Users/26118915-6090-4610-87e4-49d8ca9f808d"
            }
        })
    );
    insta::assert_json_snapshot!("rfc7643_8_3_enterprise_user", doc);
}

#[test]
fn rfc7643_8_4_group_keeps_members() {
    let input = fixture("rfc7643_8_4_group.json");
    let out = create_group(&input).unwrap();
    assert_eq!(out.document, without(input, &["id", "meta"]));
}

#[test]
fn a_validated_document_validates_to_itself() {
    for (name, rs) in [
        ("rfc7643_8_2_full_user.json", ResourceSchema::user()),
        ("rfc7643_8_3_enterprise_user.json", ResourceSchema::user()),
        ("rfc7643_8_4_group.json", ResourceSchema::group()),
    ] {
        let once = validate_resource(&fixture(name), rs, Mode::Create).unwrap();
        let twice = validate_resource(&once.document, rs, Mode::Create).unwrap();
        assert_eq!(once.document, twice.document, "{name}");
    }
}

// --- IdP bodies -------------------------------------------------------------

/// Microsoft's "Develop and plan provisioning for a SCIM endpoint" create-user request.
fn entra_create_user() -> Value {
    json!({
        "schemas": [
            "urn:ietf:params:scim:schemas:core:2.0:User",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
        "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
        "userName": "Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1",
        "active": true,
        "emails": [{
            "primary": true,
            "type": "work",
            "value": "Test_User_fd0ea19b-0777-472c-9f96-4f70d2226f2e@testuser.com"
        }],
        "meta": {
            "resourceType": "User"
        },
        "name": {
            "formatted": "givenName familyName",
            "familyName": "familyName",
            "givenName": "givenName"
        },
        "roles": []
    })
}

/// Okta's documented POST /Users body (SCIM 2.0 protocol reference).
fn okta_create_user() -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": "test.user@okta.local",
        "name": {
            "givenName": "Test",
            "familyName": "User"
        },
        "emails": [{
            "primary": true,
            "value": "test.user@okta.local",
            "type": "work"
        }],
        "displayName": "Test User",
        "locale": "en-US",
        "externalId": "00ujl29u0le5T6Aj10h7",
        "groups": [],
        "password": "1mz050nq",
        "active": true
    })
}

#[test]
fn entra_create_user_request() {
    let out = create_user(&entra_create_user()).unwrap();
    let doc = &out.document;
    // meta is readOnly, roles: [] is unassigned; the listed extension with
    // no data stays listed.
    assert!(doc.get("meta").is_none());
    assert!(doc.get("roles").is_none());
    assert_eq!(doc["schemas"], json!([USER, ENTERPRISE_USER]));
    assert!(doc.get(ENTERPRISE_USER).is_none());
    assert_eq!(doc["active"], json!(true));
    assert_eq!(out.password, None);
    insta::assert_json_snapshot!("entra_create_user", doc);
}

#[test]
fn entra_string_booleans_and_flat_extension_keys_are_canonicalized() {
    let mut body = entra_create_user();
    let m = body.as_object_mut().unwrap();
    m.insert("active".into(), json!("True"));
    m.insert(format!("{ENTERPRISE_USER}:employeeNumber"), json!("701984"));
    m.insert(
        format!("{ENTERPRISE_USER}:department"),
        json!("Tour Operations"),
    );
    m.insert(
        format!("{ENTERPRISE_USER}:manager"),
        json!("26118915-6090-4610-87e4-49d8ca9f808d"),
    );
    m.insert(format!("{ENTERPRISE_USER}:costCenter"), json!(""));
    let out = create_user(&body).unwrap();
    let doc = &out.document;
    assert_eq!(doc["active"], json!(true));
    assert_eq!(
        doc[ENTERPRISE_USER],
        json!({
            "employeeNumber": "701984",
            "department": "Tour Operations",
            "manager": {"value": "26118915-6090-4610-87e4-49d8ca9f808d"}
        })
    );
    for key in doc.as_object().unwrap().keys() {
        assert!(
            !key.starts_with(&format!("{ENTERPRISE_USER}:")),
            "flat key {key} left in the document"
        );
    }
    insta::assert_json_snapshot!("entra_flat_extension_user", doc);
}

#[test]
fn flat_extension_keys_list_the_extension_even_when_schemas_does_not() {
    let body = json!({
        "schemas": [USER],
        "userName": "u",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value": "m-1",
        "active": "False"
    });
    let doc = create_user(&body).unwrap().document;
    assert_eq!(doc["schemas"], json!([USER, ENTERPRISE_USER]));
    assert_eq!(doc[ENTERPRISE_USER], json!({"manager": {"value": "m-1"}}));
    assert_eq!(doc["active"], json!(false));
}

#[test]
fn okta_create_user_request() {
    let out = create_user(&okta_create_user()).unwrap();
    let doc = &out.document;
    assert_eq!(out.password.as_deref(), Some("1mz050nq"));
    assert!(doc.get("password").is_none());
    assert!(doc.get("groups").is_none());
    assert_eq!(doc["externalId"], json!("00ujl29u0le5T6Aj10h7"));
    insta::assert_json_snapshot!("okta_create_user", doc);
}

#[test]
fn unknown_top_level_attributes_are_kept_verbatim() {
    let mut body = okta_create_user();
    let m = body.as_object_mut().unwrap();
    m.insert("costCentre".into(), json!("CC-42"));
    m.insert("okta_flags".into(), json!({"Nested": [1, 2]}));
    m.insert("dropped".into(), Value::Null);
    let doc = create_user(&body).unwrap().document;
    assert_eq!(doc["costCentre"], json!("CC-42"));
    assert_eq!(doc["okta_flags"], json!({"Nested": [1, 2]}));
    assert!(doc.get("dropped").is_none());
}

#[test]
fn unknown_extensions_are_kept_intact_and_listed() {
    let body = json!({
        "schemas": [USER],
        "userName": "u",
        CUSTOM: {"CustomAttribute": "x", "Other": null, "List": [{"a": 1}]}
    });
    let doc = create_user(&body).unwrap().document;
    assert_eq!(
        doc[CUSTOM],
        json!({"CustomAttribute": "x", "Other": null, "List": [{"a": 1}]})
    );
    assert_eq!(doc["schemas"], json!([USER, CUSTOM]));
}

#[test]
fn flat_keys_of_a_listed_unknown_extension_are_nested_under_it() {
    let body = json!({
        "schemas": [USER, CUSTOM],
        "userName": "u",
        format!("{CUSTOM}:CustomAttribute"): "x",
        format!("{CUSTOM}:Complex"): {"a": "b"}
    });
    let doc = create_user(&body).unwrap().document;
    assert_eq!(
        doc[CUSTOM],
        json!({"CustomAttribute": "x", "Complex": {"a": "b"}})
    );
    assert_eq!(doc.as_object().unwrap().len(), 3);
}

#[test]
fn a_listed_extension_without_data_is_fine() {
    let body = json!({"schemas": [USER, ENTERPRISE_USER, CUSTOM], "userName": "u"});
    let doc = create_user(&body).unwrap().document;
    assert_eq!(
        doc,
        json!({"schemas": [USER, ENTERPRISE_USER, CUSTOM], "userName": "u"})
    );
}

// --- names and schemas ------------------------------------------------------

#[test]
fn names_and_urns_are_matched_ignoring_case_and_written_in_schema_case() {
    let body = json!({
        "SCHEMAS": [
            "URN:IETF:PARAMS:SCIM:SCHEMAS:EXTENSION:ENTERPRISE:2.0:USER",
            "urn:ietf:params:scim:schemas:core:2.0:user"
        ],
        "USERNAME": "bjensen",
        "Name": {"GIVENNAME": "Barbara", "familyname": "Jensen"},
        "Emails": [{"Value": "b@example.com", "PRIMARY": "True", "TYPE": "work"}],
        "ExternalID": "AbC-123",
        "urn:ietf:params:scim:schemas:extension:ENTERPRISE:2.0:user": {"EMPLOYEENUMBER": "7"}
    });
    let doc = create_user(&body).unwrap().document;
    assert_eq!(
        doc,
        json!({
            "schemas": [USER, ENTERPRISE_USER],
            "userName": "bjensen",
            "name": {"givenName": "Barbara", "familyName": "Jensen"},
            "emails": [{"value": "b@example.com", "primary": true, "type": "work"}],
            "externalId": "AbC-123",
            ENTERPRISE_USER: {"employeeNumber": "7"}
        })
    );
}

#[test]
fn schemas_must_be_present_and_name_the_core_schema() {
    let cases = [
        json!({"userName": "u"}),
        json!({"schemas": USER, "userName": "u"}),
        json!({"schemas": [], "userName": "u"}),
        json!({"schemas": [GROUP], "userName": "u"}),
        json!({"schemas": [ENTERPRISE_USER], "userName": "u"}),
        json!({"schemas": [USER, 7], "userName": "u"}),
    ];
    for body in cases {
        assert!(
            matches!(create_user(&body), Err(Error::InvalidSyntax(_))),
            "{body}"
        );
    }
    // A User body sent to /Groups.
    assert!(matches!(
        create_group(&json!({"schemas": [USER], "displayName": "g"})),
        Err(Error::InvalidSyntax(_))
    ));
}

#[test]
fn the_body_must_be_an_object() {
    for body in [json!([]), json!("x"), json!(null), json!(1)] {
        let err = create_user(&body).unwrap_err();
        assert!(matches!(err, Error::InvalidSyntax(_)), "{body}");
        assert_eq!(err.status(), 400);
    }
}

#[test]
fn duplicate_schema_urns_are_collapsed_with_the_core_first() {
    let body = json!({
        "schemas": [ENTERPRISE_USER, USER, "urn:ietf:params:scim:schemas:core:2.0:USER"],
        "userName": "u"
    });
    let doc = create_user(&body).unwrap().document;
    assert_eq!(doc["schemas"], json!([USER, ENTERPRISE_USER]));
}

#[test]
fn an_attribute_given_twice_is_invalid_syntax() {
    let bodies = [
        json!({"schemas": [USER], "userName": "a", "USERNAME": "b"}),
        json!({
            "schemas": [USER, ENTERPRISE_USER],
            "userName": "a",
            ENTERPRISE_USER: {"employeeNumber": "1"},
            format!("{ENTERPRISE_USER}:employeeNumber"): "2"
        }),
        json!({
            "schemas": [USER],
            "userName": "a",
            format!("{USER}:userName"): "b"
        }),
    ];
    for body in bodies {
        assert!(
            matches!(create_user(&body), Err(Error::InvalidSyntax(_))),
            "{body}"
        );
    }
}

#[test]
fn core_attributes_under_the_core_urn_are_read_as_top_level() {
    let body = json!({
        "schemas": [USER],
        USER: {"userName": "u", "displayName": "U"},
        format!("{USER}:title"): "Boss"
    });
    let doc = create_user(&body).unwrap().document;
    assert_eq!(
        doc,
        json!({"schemas": [USER], "userName": "u", "displayName": "U", "title": "Boss"})
    );
}

// --- required, types, primary ------------------------------------------------

#[test]
fn required_attributes_must_be_present_and_non_empty() {
    for user_name in [None, Some(json!("")), Some(json!("   ")), Some(Value::Null)] {
        let mut body = json!({"schemas": [USER], "displayName": "x"});
        if let Some(v) = user_name.clone() {
            body["userName"] = v;
        }
        let err = create_user(&body).unwrap_err();
        assert!(matches!(err, Error::InvalidValue(_)), "{user_name:?}");
        assert!(err.to_string().contains("userName"), "{err}");
    }
    let err = create_group(&json!({"schemas": [GROUP], "members": []})).unwrap_err();
    assert!(matches!(err, Error::InvalidValue(ref m) if m.contains("displayName")));
}

#[test]
fn wrong_types_are_invalid_value() {
    let cases = [
        json!({"userName": 42}),
        json!({"userName": ["a"]}),
        json!({"userName": "u", "active": {"value": true}}),
        json!({"userName": "u", "active": "yes"}),
        json!({"userName": "u", "emails": 7}),
        json!({"userName": "u", "emails": [["a@x.com"]]}),
        json!({"userName": "u", "emails": [{"value": 7}]}),
        json!({"userName": "u", "name": "Barbara"}),
        json!({"userName": "u", "name": [{"givenName": "B"}]}),
        json!({"userName": "u", "password": 1234}),
        json!({"userName": "u", ENTERPRISE_USER: "x"}),
        json!({"userName": "u", ENTERPRISE_USER: {"employeeNumber": 5}}),
    ];
    for mut body in cases {
        body["schemas"] = json!([USER]);
        let err = create_user(&body).unwrap_err();
        assert!(matches!(err, Error::InvalidValue(_)), "{body}: {err:?}");
        assert_eq!(err.status(), 400);
    }
}

#[test]
fn a_bare_string_for_emails_is_read_as_one_email() {
    // value::coerce reads a lone value where a list is expected, and a bare
    // string where a value-bearing complex is expected.
    let body = json!({"schemas": [USER], "userName": "u", "emails": "a@example.com"});
    let doc = create_user(&body).unwrap().document;
    assert_eq!(doc["emails"], json!([{"value": "a@example.com"}]));
}

#[test]
fn at_most_one_primary_value() {
    let two = json!({
        "schemas": [USER],
        "userName": "u",
        "emails": [
            {"value": "a@x.com", "primary": true},
            {"value": "b@x.com", "primary": "True"}
        ]
    });
    let err = create_user(&two).unwrap_err();
    assert!(
        matches!(err, Error::InvalidValue(ref m) if m.contains("primary")),
        "{err}"
    );

    let one = json!({
        "schemas": [USER],
        "userName": "u",
        "emails": [
            {"value": "a@x.com", "primary": true},
            {"value": "b@x.com", "primary": false}
        ],
        "addresses": [{"locality": "A", "primary": true}],
        "phoneNumbers": [{"value": "1", "primary": true}]
    });
    assert!(create_user(&one).is_ok());
}

#[test]
fn external_id_keeps_its_case_and_active_its_boolean() {
    let body = json!({
        "schemas": [USER],
        "userName": "u",
        "externalId": "MixedCase-ID",
        "active": false
    });
    let doc = create_user(&body).unwrap().document;
    assert_eq!(doc["externalId"], json!("MixedCase-ID"));
    assert_eq!(doc["active"], json!(false));
}

#[test]
fn unassigned_values_are_dropped() {
    let body = json!({
        "schemas": [USER],
        "userName": "u",
        "displayName": null,
        "title": "",
        "emails": [],
        "phoneNumbers": [null],
        "name": {"givenName": null},
        "addresses": [{}]
    });
    let doc = create_user(&body).unwrap().document;
    assert_eq!(doc, json!({"schemas": [USER], "userName": "u"}));
}

// --- readOnly / writeOnly ------------------------------------------------------

#[test]
fn read_only_attributes_are_ignored_on_create() {
    let body = json!({
        "schemas": [USER, ENTERPRISE_USER],
        "id": "client-chosen",
        "userName": "u",
        "meta": {"resourceType": "User", "version": "W/\"9\""},
        "groups": [{"value": "g1"}],
        ENTERPRISE_USER: {"manager": {"value": "m", "displayName": "Boss"}}
    });
    let doc = create_user(&body).unwrap().document;
    assert_eq!(
        doc,
        json!({
            "schemas": [USER, ENTERPRISE_USER],
            "userName": "u",
            ENTERPRISE_USER: {"manager": {"value": "m"}}
        })
    );
}

#[test]
fn the_read_only_scimgate_extension_is_ignored_on_input() {
    let body = json!({
        "schemas": [USER],
        "userName": "u",
        SCIMGATE_USER: {
            "effectiveRoles": [{"value": "admin", "reason": "locked"}],
            "disabled": true
        },
        format!("{SCIMGATE_USER}:locked"): true
    });
    let doc = create_user(&body).unwrap().document;
    assert_eq!(doc, json!({"schemas": [USER], "userName": "u"}));
    let existing = json!({"schemas": [USER], "userName": "u"});
    let doc = validate_resource(
        &body,
        ResourceSchema::user(),
        Mode::Replace {
            existing: &existing,
        },
    )
    .unwrap()
    .document;
    assert_eq!(doc, existing);
}

#[test]
fn the_password_never_reaches_the_document_or_debug_output() {
    let body = json!({"schemas": [USER], "userName": "u", "PassWord": "s3cret!"});
    let out = create_user(&body).unwrap();
    assert_eq!(out.password.as_deref(), Some("s3cret!"));
    assert!(!out.document.to_string().contains("s3cret!"));
    assert!(!format!("{out:?}").contains("s3cret!"));
}

// --- Replace (PUT) -----------------------------------------------------------

fn stored_group() -> Value {
    json!({
        "schemas": [GROUP],
        "id": "e9e30dba",
        "displayName": "Tour Guides",
        "members": [
            {"value": "u-1", "type": "User", "display": "Babs"},
            {"value": "u-2", "type": "User"}
        ],
        "meta": {"resourceType": "Group", "version": "W/\"3\""}
    })
}

fn replace_group(body: &Value, existing: &Value) -> scim::Result<Validated> {
    validate_resource(body, ResourceSchema::group(), Mode::Replace { existing })
}

#[test]
fn replace_carries_read_only_attributes_over_from_the_stored_document() {
    let existing = stored_group();
    let body = json!({
        "schemas": [GROUP],
        "id": "client-says-otherwise",
        "displayName": "Renamed",
        "meta": {"version": "W/\"1\""}
    });
    let doc = replace_group(&body, &existing).unwrap().document;
    assert_eq!(
        doc,
        json!({
            "schemas": [GROUP],
            "id": "e9e30dba",
            "displayName": "Renamed",
            "meta": {"resourceType": "Group", "version": "W/\"3\""}
        })
    );
}

#[test]
fn replace_lets_members_be_added_and_removed() {
    let body = json!({
        "schemas": [GROUP],
        "displayName": "Tour Guides",
        "members": [{"value": "u-2", "type": "User"}, {"value": "u-3", "type": "Group"}]
    });
    let doc = replace_group(&body, &stored_group()).unwrap().document;
    assert_eq!(
        doc["members"],
        json!([{"value": "u-2", "type": "User"}, {"value": "u-3", "type": "Group"}])
    );
}

#[test]
fn replace_refuses_to_change_an_immutable_member_type() {
    let body = json!({
        "schemas": [GROUP],
        "displayName": "Tour Guides",
        "members": [{"value": "u-1", "type": "Group"}]
    });
    let err = replace_group(&body, &stored_group()).unwrap_err();
    assert!(
        matches!(err, Error::Mutability(ref m) if m.contains("type")),
        "{err}"
    );
    assert_eq!(err.status(), 400);
    assert_eq!(err.to_body()["scimType"], json!("mutability"));
}

#[test]
fn replace_compares_immutable_values_by_the_attributes_case_rules() {
    // members.type is caseExact: false, so "user" is the same value.
    let body = json!({
        "schemas": [GROUP],
        "displayName": "Tour Guides",
        "members": [{"value": "u-1", "type": "user", "display": "B. Jensen"}]
    });
    let doc = replace_group(&body, &stored_group()).unwrap().document;
    assert_eq!(
        doc["members"],
        json!([{"value": "u-1", "type": "user", "display": "B. Jensen"}])
    );
}

#[test]
fn replace_keeps_an_omitted_immutable_value() {
    let body = json!({
        "schemas": [GROUP],
        "displayName": "Tour Guides",
        "members": [{"value": "u-1"}]
    });
    let doc = replace_group(&body, &stored_group()).unwrap().document;
    assert_eq!(doc["members"], json!([{"value": "u-1", "type": "User"}]));
}

#[test]
fn replace_still_requires_required_attributes() {
    let body = json!({"schemas": [GROUP], "members": []});
    assert!(matches!(
        replace_group(&body, &stored_group()),
        Err(Error::InvalidValue(_))
    ));
}

#[test]
fn replace_keeps_the_managers_display_name_only_for_the_same_manager() {
    let existing = json!({
        "schemas": [USER, ENTERPRISE_USER],
        "id": "u1",
        "userName": "u",
        "groups": [{"value": "g1", "display": "Staff"}],
        ENTERPRISE_USER: {"manager": {"value": "m-1", "displayName": "Boss"}}
    });
    let put = |manager: &str| {
        let body = json!({
            "schemas": [USER, ENTERPRISE_USER],
            "userName": "u",
            ENTERPRISE_USER: {"manager": manager}
        });
        validate_resource(
            &body,
            ResourceSchema::user(),
            Mode::Replace {
                existing: &existing,
            },
        )
        .unwrap()
        .document
    };
    let same = put("m-1");
    assert_eq!(
        same[ENTERPRISE_USER]["manager"],
        json!({"value": "m-1", "displayName": "Boss"})
    );
    assert_eq!(same["groups"], json!([{"value": "g1", "display": "Staff"}]));
    assert_eq!(same["id"], json!("u1"));
    let other = put("m-2");
    assert_eq!(other[ENTERPRISE_USER]["manager"], json!({"value": "m-2"}));
}

#[test]
fn replace_enforces_top_level_immutable_attributes() {
    // The standard schemas have no immutable top-level attribute; a
    // deployment's registry may (here: enterprise employeeNumber).
    let mut registry = Registry::standard().clone();
    let ext = registry
        .schemas
        .iter_mut()
        .find(|s| s.id == ENTERPRISE_USER)
        .unwrap();
    ext.attributes
        .iter_mut()
        .find(|a| a.name == "employeeNumber")
        .unwrap()
        .mutability = Mutability::Immutable;
    let rs = registry.view("User").unwrap();
    let existing = json!({
        "schemas": [USER, ENTERPRISE_USER],
        "userName": "u",
        ENTERPRISE_USER: {"employeeNumber": "701984"}
    });
    let put = |ext: Value| {
        let body = json!({"schemas": [USER], "userName": "u", ENTERPRISE_USER: ext});
        validate_resource(
            &body,
            rs,
            Mode::Replace {
                existing: &existing,
            },
        )
    };
    assert!(matches!(
        put(json!({"employeeNumber": "1"})),
        Err(Error::Mutability(_))
    ));
    let same = put(json!({"employeeNumber": "701984", "division": "D"})).unwrap();
    assert_eq!(
        same.document[ENTERPRISE_USER],
        json!({"employeeNumber": "701984", "division": "D"})
    );
    // Omitted: kept (it cannot be cleared), and the extension is listed.
    let omitted = put(Value::Null).unwrap().document;
    assert_eq!(
        omitted[ENTERPRISE_USER],
        json!({"employeeNumber": "701984"})
    );
    assert_eq!(omitted["schemas"], json!([USER, ENTERPRISE_USER]));
    // Not yet set: may be set.
    let fresh = json!({"schemas": [USER], "userName": "u"});
    let body =
        json!({"schemas": [USER], "userName": "u", ENTERPRISE_USER: {"employeeNumber": "9"}});
    let out = validate_resource(&body, rs, Mode::Replace { existing: &fresh }).unwrap();
    assert_eq!(
        out.document[ENTERPRISE_USER],
        json!({"employeeNumber": "9"})
    );
}

#[test]
fn replace_tolerates_a_malformed_stored_document() {
    let body = json!({"schemas": [GROUP], "displayName": "g", "members": [{"value": "a"}]});
    for existing in [
        json!(null),
        json!([]),
        json!({"members": "garbage", "id": 5}),
        json!({"members": [1, {"value": 2}, {"value": "a", "type": []}]}),
    ] {
        let _ = replace_group(&body, &existing);
    }
}

// --- robustness ---------------------------------------------------------------

fn arb_json() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just("schemas".to_owned()),
        Just("userName".to_owned()),
        Just("emails".to_owned()),
        Just("members".to_owned()),
        Just("name".to_owned()),
        Just("primary".to_owned()),
        Just("value".to_owned()),
        Just("type".to_owned()),
        Just("active".to_owned()),
        Just("id".to_owned()),
        Just("meta".to_owned()),
        Just("password".to_owned()),
        Just("displayName".to_owned()),
        Just(USER.to_owned()),
        Just(GROUP.to_owned()),
        Just(ENTERPRISE_USER.to_owned()),
        Just(format!("{ENTERPRISE_USER}:manager")),
        Just(format!("{ENTERPRISE_USER}:manager.value")),
        Just(CUSTOM.to_owned()),
        Just("urn:x:2.0".to_owned()),
        Just("urn:x:2.0:a".to_owned()),
        Just(format!("{CUSTOM}:a.b")),
        "[a-zA-Z:.$]{0,12}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        prop_oneof![
            Just(USER.to_owned()),
            Just(GROUP.to_owned()),
            Just("True".to_owned()),
            ".{0,8}"
        ]
        .prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key.clone(), inner), 0..8)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn never_panics(body in arb_json(), existing in arb_json()) {
        for rs in [ResourceSchema::user(), ResourceSchema::group()] {
            let created = validate_resource(&body, rs, Mode::Create);
            let _ = validate_resource(&body, rs, Mode::Replace { existing: &existing });
            if let Ok(v) = created {
                // Whatever is accepted is a fixed point of validation.
                let again = validate_resource(&v.document, rs, Mode::Create).unwrap();
                prop_assert_eq!(&again.document, &v.document);
            }
        }
    }
}

#[test]
fn an_unqualified_extension_attribute_stays_at_the_top_level() {
    let body = json!({"schemas": [USER], "userName": "u", "employeeNumber": "701984"});
    let doc = create_user(&body).unwrap().document;
    assert_eq!(
        doc,
        json!({"schemas": [USER], "userName": "u", "employeeNumber": "701984"})
    );
}

#[test]
fn a_key_used_both_as_attribute_and_extension_is_invalid_syntax() {
    let body = json!({
        "schemas": [USER],
        "userName": "u",
        "urn:example:ext:2.0": "x",
        "urn:example:ext:2.0:attr": "y"
    });
    // "urn:example:ext:2.0" cannot be an attribute path (its last segment is
    // "2.0"), so it is kept verbatim; the second key nests under it.
    assert!(matches!(create_user(&body), Err(Error::InvalidSyntax(_))));
}
