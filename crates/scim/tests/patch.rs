//! PATCH (RFC 7644 §3.5.2): the RFC's own examples against the RFC 7643 §8
//! example resources, Okta's documented requests, the error of every
//! failure class, the Group member delta, and properties (atomicity,
//! one-request-equals-many-requests).
//!
//! The RFC abbreviates ids as `2819c223...413861904646`; the tests use the
//! full ids of the RFC 7643 §8 examples so the requests hit those resources.

use proptest::prelude::*;
use serde_json::{Value, json};

use scim::patch::{
    Member, MemberChange, OpKind, PatchOutcome, PatchRequest, apply, split_member_changes,
};
use scim::schemas::{Mutability, Registry, SCIMGATE_USER, USER};
use scim::{Error, ResourceSchema};

const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const BABS: &str = "2819c223-7f76-453a-919d-413861904646";
const MANDY: &str = "902c246b-6245-4190-8e05-00816be7344a";
const JAMES: &str = "08e1d05d-121c-4561-8b96-473d93df9210";

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).expect("fixture readable");
    serde_json::from_str(&text).expect("fixture is JSON")
}

fn user() -> Value {
    fixture("patch_rfc7643_user.json")
}

fn enterprise_user() -> Value {
    fixture("patch_rfc7643_enterprise_user.json")
}

fn group() -> Value {
    fixture("patch_rfc7643_group.json")
}

fn body(ops: Value) -> Value {
    json!({"schemas": [PATCH_OP], "Operations": ops})
}

fn try_patch(doc: &Value, ops: Value, rs: ResourceSchema<'_>) -> Result<PatchOutcome, Error> {
    let req = PatchRequest::from_json(&body(ops))?;
    apply(doc, &req, rs)
}

fn patch(doc: &Value, ops: Value, rs: ResourceSchema<'_>) -> PatchOutcome {
    try_patch(doc, ops, rs).expect("PATCH applies")
}

fn patch_err(doc: &Value, ops: Value, rs: ResourceSchema<'_>) -> Error {
    match try_patch(doc, ops, rs) {
        Ok(out) => panic!("expected an error, got {}", out.document),
        Err(e) => e,
    }
}

fn changed(out: &PatchOutcome) -> Vec<String> {
    out.changed.iter().map(ToString::to_string).collect()
}

fn member(value: &str, display: &str) -> Value {
    json!({
        "display": display,
        "$ref": format!("https://example.com/v2/Users/{value}"),
        "value": value
    })
}

fn babs() -> Value {
    member(BABS, "Babs Jensen")
}

fn mandy() -> Value {
    member(MANDY, "Mandy Pepperidge")
}

fn james() -> Value {
    member(JAMES, "James Smith")
}

fn with(mut doc: Value, key: &str, value: Value) -> Value {
    doc[key] = value;
    doc
}

fn without(mut doc: Value, key: &str) -> Value {
    if let Some(o) = doc.as_object_mut() {
        o.shift_remove(key);
    }
    doc
}

/// RFC 7644 §3.5.2.1 add.
mod patch_rfc_add {
    use super::*;

    #[test]
    fn rfc_add_member_who_is_already_a_member_changes_nothing() {
        let g = group();
        let out = patch(
            &g,
            json!([{"op": "add", "path": "members", "value": [babs()]}]),
            ResourceSchema::group(),
        );
        assert_eq!(out.document, g);
        assert!(!out.modified());
    }

    #[test]
    fn rfc_add_member() {
        let out = patch(
            &group(),
            json!([{"op": "add", "path": "members", "value": [james()]}]),
            ResourceSchema::group(),
        );
        assert_eq!(
            out.document,
            with(group(), "members", json!([babs(), mandy(), james()]))
        );
        assert_eq!(changed(&out), ["members"]);
    }

    #[test]
    fn rfc_add_without_path_adds_email_and_nickname() {
        let start = without(
            with(
                user(),
                "emails",
                json!([{"value": "bjensen@example.com", "type": "work", "primary": true}]),
            ),
            "nickName",
        );
        let out = patch(
            &start,
            json!([{
                "op": "add",
                "value": {
                    "emails": [{"value": "babs@jensen.org", "type": "home"}],
                    "nickname": "Babs"
                }
            }]),
            ResourceSchema::user(),
        );
        // `nickname` lands under the schema's spelling `nickName`.
        assert_eq!(out.document, user());
        assert_eq!(changed(&out), ["emails", "nickName"]);
    }

    #[test]
    fn rfc_add_without_path_is_idempotent() {
        let u = user();
        let out = patch(
            &u,
            json!([{
                "op": "add",
                "value": {
                    "emails": [{"value": "babs@jensen.org", "type": "home"}],
                    "nickname": "Babs"
                }
            }]),
            ResourceSchema::user(),
        );
        assert_eq!(out.document, u);
        assert!(out.changed.is_empty());
    }

    #[test]
    fn add_to_single_valued_attribute_replaces_it() {
        let out = patch(
            &user(),
            json!([{"op": "add", "path": "title", "value": "Head Guide"}]),
            ResourceSchema::user(),
        );
        assert_eq!(out.document, with(user(), "title", json!("Head Guide")));
    }

    #[test]
    fn add_to_complex_attribute_merges_sub_attributes() {
        let out = patch(
            &user(),
            json!([{"op": "add", "path": "name", "value": {"givenName": "Barb", "middleName": ""}}]),
            ResourceSchema::user(),
        );
        let mut want = user();
        want["name"]["givenName"] = json!("Barb");
        if let Some(n) = want["name"].as_object_mut() {
            n.shift_remove("middleName");
        }
        assert_eq!(out.document, want);
        assert_eq!(changed(&out), ["name"]);
    }

    #[test]
    fn add_primary_email_clears_primary_on_the_others() {
        let out = patch(
            &user(),
            json!([{"op": "add", "path": "emails", "value": [{"value": "b@x.org", "type": "other", "primary": true}]}]),
            ResourceSchema::user(),
        );
        assert_eq!(
            out.document["emails"],
            json!([
                {"value": "bjensen@example.com", "type": "work", "primary": false},
                {"value": "babs@jensen.org", "type": "home"},
                {"value": "b@x.org", "type": "other", "primary": true}
            ])
        );
    }
}

/// RFC 7644 §3.5.2.2 remove.
mod patch_rfc_remove {
    use super::*;

    #[test]
    fn rfc_remove_all_members() {
        let out = patch(
            &group(),
            json!([{"op": "remove", "path": "members"}]),
            ResourceSchema::group(),
        );
        assert_eq!(out.document, without(group(), "members"));
        assert_eq!(changed(&out), ["members"]);
    }

    #[test]
    fn rfc_remove_one_member() {
        let out = patch(
            &group(),
            json!([{"op": "remove", "path": format!("members[value eq \"{BABS}\"]")}]),
            ResourceSchema::group(),
        );
        assert_eq!(out.document, with(group(), "members", json!([mandy()])));
    }

    #[test]
    fn remove_multiple_members_with_or() {
        let out = patch(
            &group(),
            json!([{"op": "remove", "path": format!("members[value eq \"{BABS}\" or value eq \"{MANDY}\"]")}]),
            ResourceSchema::group(),
        );
        assert_eq!(out.document, without(group(), "members"));
    }

    #[test]
    fn rfc_remove_work_emails_by_compound_filter() {
        let out = patch(
            &user(),
            json!([{"op": "remove", "path": "emails[type eq \"work\" and value ew \"example.com\"]"}]),
            ResourceSchema::user(),
        );
        assert_eq!(
            out.document,
            with(
                user(),
                "emails",
                json!([{"value": "babs@jensen.org", "type": "home"}])
            )
        );
        assert_eq!(changed(&out), ["emails"]);
    }

    #[test]
    fn rfc_remove_and_add_a_member() {
        // The RFC writes the filter without a space after `eq`.
        let out = patch(
            &group(),
            json!([
                {"op": "remove", "path": format!("members[value eq\"{BABS}\"]")},
                {"op": "add", "path": "members", "value": [james()]}
            ]),
            ResourceSchema::group(),
        );
        assert_eq!(
            out.document,
            with(group(), "members", json!([mandy(), james()]))
        );
    }

    #[test]
    fn rfc_replace_all_members_with_remove_then_add() {
        let out = patch(
            &group(),
            json!([
                {"op": "remove", "path": "members"},
                {"op": "add", "path": "members", "value": [babs(), james()]}
            ]),
            ResourceSchema::group(),
        );
        assert_eq!(
            out.document,
            with(group(), "members", json!([babs(), james()]))
        );
    }

    #[test]
    fn remove_of_filter_matching_nothing_succeeds_unchanged() {
        let out = patch(
            &group(),
            json!([{"op": "remove", "path": "members[value eq \"not-a-member\"]"}]),
            ResourceSchema::group(),
        );
        assert_eq!(out.document, group());
        assert!(!out.modified());
    }

    #[test]
    fn remove_sub_attribute_and_empty_complex_attribute_goes() {
        let mut start = user();
        start["name"] = json!({"givenName": "Barbara"});
        let out = patch(
            &start,
            json!([{"op": "remove", "path": "name.givenName"}]),
            ResourceSchema::user(),
        );
        assert_eq!(out.document, without(user(), "name"));
    }

    #[test]
    fn remove_sub_attribute_of_filtered_values() {
        let out = patch(
            &user(),
            json!([{"op": "remove", "path": "addresses[type eq \"work\"].formatted"}]),
            ResourceSchema::user(),
        );
        let mut want = user();
        if let Some(a) = want["addresses"][0].as_object_mut() {
            a.shift_remove("formatted");
        }
        assert_eq!(out.document, want);
    }
}

/// RFC 7644 §3.5.2.3 replace.
mod patch_rfc_replace {
    use super::*;

    #[test]
    fn rfc_replace_members() {
        let out = patch(
            &group(),
            json!([{"op": "replace", "path": "members", "value": [babs(), james()]}]),
            ResourceSchema::group(),
        );
        assert_eq!(
            out.document,
            with(group(), "members", json!([babs(), james()]))
        );
    }

    fn new_work_address() -> Value {
        json!({
            "type": "work",
            "streetAddress": "911 Universal City Plaza",
            "locality": "Hollywood",
            "region": "CA",
            "postalCode": "91608",
            "country": "US",
            "formatted": "911 Universal City Plaza\nHollywood, CA 91608 US",
            "primary": true
        })
    }

    #[test]
    fn rfc_replace_work_address() {
        let out = patch(
            &user(),
            json!([{"op": "replace", "path": "addresses[type eq \"work\"]", "value": new_work_address()}]),
            ResourceSchema::user(),
        );
        let mut want = user();
        want["addresses"][0] = new_work_address();
        assert_eq!(out.document, want);
        assert_eq!(changed(&out), ["addresses"]);
    }

    #[test]
    fn rfc_replace_street_of_work_address() {
        let out = patch(
            &user(),
            json!([{"op": "replace", "path": "addresses[type eq \"work\"].streetAddress", "value": "1010 Broadway Ave"}]),
            ResourceSchema::user(),
        );
        let mut want = user();
        want["addresses"][0]["streetAddress"] = json!("1010 Broadway Ave");
        assert_eq!(out.document, want);
    }

    #[test]
    fn rfc_replace_without_path() {
        let start = with(
            with(
                user(),
                "emails",
                json!([{"value": "old@example.com", "type": "work"}]),
            ),
            "nickName",
            json!("Barb"),
        );
        let out = patch(
            &start,
            json!([{
                "op": "replace",
                "value": {
                    "emails": [
                        {"value": "bjensen@example.com", "type": "work", "primary": true},
                        {"value": "babs@jensen.org", "type": "home"}
                    ],
                    "nickname": "Babs"
                }
            }]),
            ResourceSchema::user(),
        );
        assert_eq!(out.document, user());
        assert_eq!(changed(&out), ["emails", "nickName"]);
    }

    #[test]
    fn replace_complex_leaves_unnamed_sub_attributes() {
        let out = patch(
            &user(),
            json!([{"op": "replace", "path": "name", "value": {"familyName": "Jensen-Smith"}}]),
            ResourceSchema::user(),
        );
        let mut want = user();
        want["name"]["familyName"] = json!("Jensen-Smith");
        assert_eq!(out.document, want);
    }

    #[test]
    fn replace_with_same_value_reports_no_change() {
        let out = patch(
            &user(),
            json!([
                {"op": "replace", "path": "displayName", "value": "Babs Jensen"},
                {"op": "replace", "path": "emails[type eq \"work\"].value", "value": "bjensen@example.com"}
            ]),
            ResourceSchema::user(),
        );
        assert_eq!(out.document, user());
        assert!(!out.modified());
    }

    #[test]
    fn replace_primary_on_one_value_clears_the_other() {
        let out = patch(
            &user(),
            json!([{"op": "replace", "path": "emails[type eq \"home\"].primary", "value": true}]),
            ResourceSchema::user(),
        );
        assert_eq!(
            out.document["emails"],
            json!([
                {"value": "bjensen@example.com", "type": "work", "primary": false},
                {"value": "babs@jensen.org", "type": "home", "primary": true}
            ])
        );
    }

    #[test]
    fn replace_list_with_two_primaries_is_invalid_value() {
        let e = patch_err(
            &user(),
            json!([{"op": "replace", "path": "emails", "value": [
                {"value": "a@x.org", "primary": true},
                {"value": "b@x.org", "primary": true}
            ]}]),
            ResourceSchema::user(),
        );
        assert!(matches!(e, Error::InvalidValue(_)), "{e}");
    }

    #[test]
    fn attribute_names_match_ignoring_case_and_are_written_in_schema_case() {
        let out = patch(
            &user(),
            json!([
                {"op": "REPLACE", "path": "DISPLAYNAME", "value": "B"},
                {"op": "Replace", "path": "Name.GivenName", "value": "Barb"},
                {"op": "add", "path": "EMAILS[TYPE eq \"work\"].VALUE", "value": "w@example.com"}
            ]),
            ResourceSchema::user(),
        );
        let mut want = user();
        want["displayName"] = json!("B");
        want["name"]["givenName"] = json!("Barb");
        want["emails"][0]["value"] = json!("w@example.com");
        assert_eq!(out.document, want);
    }

    #[test]
    fn document_keys_in_another_case_are_renamed_to_schema_case() {
        let start = json!({
            "schemas": [USER], "id": "1", "userName": "u", "DisplayName": "Old"
        });
        let out = patch(
            &start,
            json!([{"op": "replace", "path": "displayName", "value": "New"}]),
            ResourceSchema::user(),
        );
        assert_eq!(
            out.document,
            json!({"schemas": [USER], "id": "1", "userName": "u", "displayName": "New"})
        );
    }
}

/// Extensions.
mod patch_extensions {
    use super::*;

    #[test]
    fn whole_enterprise_extension_can_be_replaced_and_removed() {
        let out = patch(
            &enterprise_user(),
            json!([{"op": "replace", "path": ENTERPRISE, "value": {"department": "Rides", "costCenter": ""}}]),
            ResourceSchema::user(),
        );
        let mut want = enterprise_user();
        want[ENTERPRISE]["department"] = json!("Rides");
        if let Some(e) = want[ENTERPRISE].as_object_mut() {
            e.shift_remove("costCenter");
        }
        assert_eq!(out.document, want);
        assert_eq!(
            changed(&out),
            [
                format!("{ENTERPRISE}:department"),
                format!("{ENTERPRISE}:costCenter")
            ]
        );

        let out = patch(
            &enterprise_user(),
            json!([{"op": "remove", "path": ENTERPRISE}]),
            ResourceSchema::user(),
        );
        assert_eq!(
            out.document,
            with(
                without(enterprise_user(), ENTERPRISE),
                "schemas",
                json!([USER])
            )
        );
    }

    /// scim2-tester (scim2-models) sends an extension object with its own
    /// `schemas` key; it is ignored, as in a path-less value object.
    #[test]
    fn schemas_key_inside_an_extension_value_is_ignored() {
        for op in ["add", "replace"] {
            let out = patch(
                &user(),
                json!([{"op": op, "path": ENTERPRISE,
                        "value": {"schemas": [ENTERPRISE], "department": "Tours"}}]),
                ResourceSchema::user(),
            );
            assert_eq!(
                out.document[ENTERPRISE],
                json!({"department": "Tours"}),
                "{op}"
            );
            assert_eq!(out.document["schemas"], json!([USER, ENTERPRISE]), "{op}");
        }
    }

    #[test]
    fn first_extension_attribute_adds_the_urn_to_schemas() {
        let out = patch(
            &user(),
            json!([{"op": "add", "path": format!("{ENTERPRISE}:department"), "value": "Tours"}]),
            ResourceSchema::user(),
        );
        let mut want = user();
        want["schemas"] = json!([USER, ENTERPRISE]);
        want[ENTERPRISE] = json!({"department": "Tours"});
        assert_eq!(out.document, want);
        assert_eq!(
            changed(&out),
            [format!("{ENTERPRISE}:department"), "schemas".to_string()]
        );
    }

    #[test]
    fn removing_the_last_extension_attribute_removes_the_extension() {
        let mut start = user();
        start["schemas"] = json!([USER, ENTERPRISE]);
        start[ENTERPRISE] = json!({"department": "Tours"});
        let out = patch(
            &start,
            json!([{"op": "remove", "path": format!("{ENTERPRISE}:department")}]),
            ResourceSchema::user(),
        );
        assert_eq!(out.document, user());
    }

    #[test]
    fn manager_sub_attribute_and_read_only_display_name() {
        let out = patch(
            &enterprise_user(),
            json!([{"op": "replace", "path": format!("{ENTERPRISE}:manager.value"), "value": "m2"}]),
            ResourceSchema::user(),
        );
        assert_eq!(out.document[ENTERPRISE]["manager"]["value"], "m2");
        let e = patch_err(
            &enterprise_user(),
            json!([{"op": "replace", "path": format!("{ENTERPRISE}:manager.displayName"), "value": "X"}]),
            ResourceSchema::user(),
        );
        assert!(matches!(e, Error::Mutability(_)), "{e}");
        // Inside a value, the read-only sub-attribute is ignored.
        let out = patch(
            &enterprise_user(),
            json!([{"op": "replace", "path": format!("{ENTERPRISE}:manager"), "value": {"displayName": "X"}}]),
            ResourceSchema::user(),
        );
        assert_eq!(out.document, enterprise_user());
    }
}

/// Okta (developer.okta.com, "Okta and SCIM Version 2.0").
mod patch_okta {
    use super::*;

    fn okta_user() -> Value {
        fixture("patch_okta_user.json")
    }

    fn okta_group() -> Value {
        fixture("patch_okta_group.json")
    }

    #[test]
    fn okta_deactivate_user() {
        let out = patch(
            &okta_user(),
            json!([{"op": "replace", "value": {"active": false}}]),
            ResourceSchema::user(),
        );
        assert_eq!(out.document, with(okta_user(), "active", json!(false)));
        assert_eq!(changed(&out), ["active"]);
    }

    #[test]
    fn okta_group_rename_echoes_the_id() {
        let out = patch(
            &okta_group(),
            json!([{"op": "replace", "value": {"id": "abf4dd94-a4c0-4f67-89c9-76b03340cb9b", "displayName": "Test SCIMv20"}}]),
            ResourceSchema::group(),
        );
        assert_eq!(
            out.document,
            with(okta_group(), "displayName", json!("Test SCIMv20"))
        );
        assert_eq!(changed(&out), ["displayName"]);
    }

    #[test]
    fn okta_group_rename_with_another_id_is_mutability() {
        let e = patch_err(
            &okta_group(),
            json!([{"op": "replace", "value": {"id": "something-else", "displayName": "X"}}]),
            ResourceSchema::group(),
        );
        assert!(matches!(e, Error::Mutability(_)), "{e}");
    }

    #[test]
    fn okta_membership_update() {
        let mut start = okta_group();
        start["members"] = json!([
            {"value": "b1c794f24f4c49f4b5d503a4cb2686ea", "display": "SCIM 2 Group A"},
            {"value": "89bb1940-b905-4575-9e7f-6f887cfb368e", "display": "test.user@okta.local"}
        ]);
        let out = patch(
            &start,
            json!([
                {"op": "remove", "path": "members[value eq \"89bb1940-b905-4575-9e7f-6f887cfb368e\"]"},
                {"op": "add", "path": "members", "value": [{"value": "23a35c27-23d3-4c03-b4c5-6443c09e7173", "display": "test.user@okta.local"}]}
            ]),
            ResourceSchema::group(),
        );
        assert_eq!(
            out.document["members"],
            json!([
                {"value": "b1c794f24f4c49f4b5d503a4cb2686ea", "display": "SCIM 2 Group A"},
                {"value": "23a35c27-23d3-4c03-b4c5-6443c09e7173", "display": "test.user@okta.local"}
            ])
        );
    }

    #[test]
    fn okta_full_membership_push() {
        let pushed = json!([
            {"value": "23a35c27-23d3-4c03-b4c5-6443c09e7173", "display": "test.user@okta.local"},
            {"value": "89bb1940-b905-4575-9e7f-6f887cfb368e", "display": "test.user@okta.local"}
        ]);
        let out = patch(
            &okta_group(),
            json!([{"op": "replace", "path": "members", "value": pushed}]),
            ResourceSchema::group(),
        );
        assert_eq!(out.document, with(okta_group(), "members", pushed));
    }
}

/// Errors.
mod patch_errors {
    use super::*;

    fn assert_syntax(body: Value) {
        let e = PatchRequest::from_json(&body).expect_err("malformed body rejected");
        assert!(matches!(e, Error::InvalidSyntax(_)), "{body}: {e}");
    }

    #[test]
    fn malformed_messages_are_invalid_syntax() {
        let op = json!({"op": "add", "path": "title", "value": "x"});
        assert_syntax(json!([op]));
        assert_syntax(json!({"Operations": [op]}));
        assert_syntax(
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"], "Operations": [op]}),
        );
        assert_syntax(json!({"schemas": PATCH_OP, "Operations": [op]}));
        assert_syntax(json!({"schemas": [PATCH_OP]}));
        assert_syntax(json!({"schemas": [PATCH_OP], "Operations": []}));
        assert_syntax(json!({"schemas": [PATCH_OP], "Operations": op}));
        assert_syntax(json!({"schemas": [PATCH_OP], "Operations": ["add"]}));
        assert_syntax(
            json!({"schemas": [PATCH_OP], "Operations": [{"path": "title", "value": "x"}]}),
        );
        assert_syntax(
            json!({"schemas": [PATCH_OP], "Operations": [{"op": "move", "path": "title"}]}),
        );
        assert_syntax(json!({"schemas": [PATCH_OP], "Operations": [{"op": 1, "path": "title"}]}));
    }

    #[test]
    fn message_keys_and_op_names_match_ignoring_case() {
        let req = PatchRequest::from_json(&json!({
            "SCHEMAS": ["URN:IETF:PARAMS:SCIM:API:MESSAGES:2.0:PATCHOP"],
            "operations": [
                {"OP": "ADD", "PATH": "title", "VALUE": "x"},
                {"Op": "Remove", "Path": "nickName"},
                {"op": "rEpLaCe", "value": {"title": "y"}}
            ]
        }))
        .expect("parses");
        let kinds: Vec<OpKind> = req.operations.iter().map(|o| o.op).collect();
        assert_eq!(kinds, [OpKind::Add, OpKind::Remove, OpKind::Replace]);
        assert!(req.operations[2].path.is_none());
    }

    #[test]
    fn missing_value_is_invalid_value() {
        for op in ["add", "replace"] {
            let e = PatchRequest::from_json(&body(json!([{"op": op, "path": "title"}])))
                .expect_err("value required");
            assert!(matches!(e, Error::InvalidValue(_)), "{op}: {e}");
        }
        let e = patch_err(
            &user(),
            json!([{"op": "replace", "value": "not an object"}]),
            ResourceSchema::user(),
        );
        assert!(matches!(e, Error::InvalidValue(_)), "{e}");
    }

    #[test]
    fn remove_without_path_is_no_target() {
        let e = patch_err(&user(), json!([{"op": "remove"}]), ResourceSchema::user());
        assert!(matches!(e, Error::NoTarget(_)), "{e}");
    }

    #[test]
    fn filtered_replace_that_cannot_describe_a_value_is_no_target() {
        let e = patch_err(
            &user(),
            json!([{"op": "replace", "path": "emails[value co \"nowhere\"].value", "value": "x@y.org"}]),
            ResourceSchema::user(),
        );
        assert!(matches!(e, Error::NoTarget(_)), "{e}");
    }

    #[test]
    fn bad_paths_are_invalid_path() {
        for path in [
            "nonsense",
            "name.nonsense",
            "emails[type eq \"work\"",
            "emails[type eq \"work\"].nonsense",
            "emails.value",
            "displayName[value eq \"x\"]",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:nonsense",
            "urn:ietf:params:scim:schemas:core:2.0:Group:displayName",
            "1abc",
        ] {
            let e = patch_err(
                &user(),
                json!([{"op": "replace", "path": path, "value": "x"}]),
                ResourceSchema::user(),
            );
            assert!(matches!(e, Error::InvalidPath(_)), "{path}: {e}");
        }
        for path in ["members[value eq \"x\"].display", "members.value"] {
            let e = patch_err(
                &group(),
                json!([{"op": "replace", "path": path, "value": "x"}]),
                ResourceSchema::group(),
            );
            assert!(matches!(e, Error::InvalidPath(_)), "{path}: {e}");
        }
    }

    #[test]
    fn read_only_and_required_attributes_are_mutability() {
        let cases = [
            json!({"op": "replace", "path": "id", "value": "x"}),
            json!({"op": "remove", "path": "id"}),
            json!({"op": "replace", "path": "meta.created", "value": "2020-01-01T00:00:00Z"}),
            json!({"op": "add", "path": "groups", "value": [{"value": "g"}]}),
            json!({"op": "replace", "path": "schemas", "value": [USER]}),
            json!({"op": "remove", "path": "userName"}),
            json!({"op": "replace", "path": "userName", "value": ""}),
            json!({"op": "replace", "value": {"userName": null}}),
            json!({"op": "replace", "value": {"meta": {"resourceType": "Group"}}}),
        ];
        for op in cases {
            let e = patch_err(&user(), json!([op]), ResourceSchema::user());
            assert!(matches!(e, Error::Mutability(_)), "{op}: {e}");
        }
        let e = patch_err(
            &group(),
            json!([{"op": "remove", "path": "displayName"}]),
            ResourceSchema::group(),
        );
        assert!(matches!(e, Error::Mutability(_)), "{e}");
    }

    #[test]
    fn the_read_only_scimgate_extension_cannot_be_patched() {
        let ext = SCIMGATE_USER;
        let cases = [
            json!({"op": "add", "path": ext, "value": {"disabled": true}}),
            json!({"op": "replace", "path": ext, "value": {"locked": false}}),
            json!({"op": "replace", "path": ext, "value": null}),
            json!({"op": "remove", "path": ext}),
            json!({"op": "replace", "path": format!("{ext}:disabled"), "value": true}),
            json!({"op": "remove", "path": format!("{ext}:locked")}),
            json!({"op": "add", "path": format!("{ext}:effectiveRoles"),
                   "value": [{"value": "admin", "reason": "default"}]}),
            json!({"op": "replace", "path": format!("{ext}:effectiveRoles.value"), "value": "x"}),
            json!({"op": "remove", "path": format!("{ext}:effectiveRoles[value eq \"admin\"]")}),
            json!({"op": "add", "value": {ext: {"effectiveRoles": [{"value": "admin"}]}}}),
            json!({"op": "replace", "value": {format!("{ext}:locked"): true}}),
        ];
        for op in cases {
            let e = patch_err(&user(), json!([op]), ResourceSchema::user());
            assert!(matches!(e, Error::Mutability(_)), "{op}: {e}");
        }
        // An empty object names no sub-attribute: a change of nothing.
        for op in [
            json!({"op": "add", "path": ext, "value": {}}),
            json!({"op": "replace", "path": ext, "value": {}}),
            json!({"op": "replace", "value": {ext: {}}}),
            json!({"op": "add", "path": ext, "value": {"schemas": [ext]}}),
        ] {
            let out = patch(&user(), json!([op]), ResourceSchema::user());
            assert_eq!(out.document, user(), "{op}");
            assert!(changed(&out).is_empty(), "{op}");
        }
        // Unqualified, the names are not the extension's (it is reached
        // only by its URN): unknown attributes, as before.
        let e = patch_err(
            &user(),
            json!([{"op": "replace", "path": "disabled", "value": true}]),
            ResourceSchema::user(),
        );
        assert!(matches!(e, Error::InvalidPath(_)), "{e}");
    }

    #[test]
    fn unchanged_read_only_attributes_in_a_value_object_are_ignored() {
        let u = user();
        let out = patch(
            &u,
            json!([{"op": "replace", "value": {
                "schemas": [USER],
                "id": BABS,
                "meta": u["meta"].clone(),
                "groups": u["groups"].clone(),
                "title": "Guide"
            }}]),
            ResourceSchema::user(),
        );
        assert_eq!(out.document, with(user(), "title", json!("Guide")));
        assert_eq!(changed(&out), ["title"]);
    }

    #[test]
    fn wrong_value_types_are_invalid_value() {
        for op in [
            json!({"op": "replace", "path": "active", "value": "maybe"}),
            json!({"op": "replace", "path": "name", "value": 7}),
            json!({"op": "replace", "path": "displayName", "value": {"x": 1}}),
            json!({"op": "add", "path": "members", "value": [{"display": "no id"}]}),
        ] {
            let rs = if op["path"] == "members" {
                ResourceSchema::group()
            } else {
                ResourceSchema::user()
            };
            let doc = if op["path"] == "members" {
                group()
            } else {
                user()
            };
            let e = patch_err(&doc, json!([op]), rs);
            assert!(matches!(e, Error::InvalidValue(_)), "{op}: {e}");
        }
    }

    /// A registry whose User has an immutable `badge`, to exercise RFC 7644
    /// §3.5.2's immutable rule (the standard User has no immutable attribute).
    fn registry_with_immutable_badge() -> Registry {
        let mut registry = Registry::standard().clone();
        if let Some(user) = registry.schemas.iter_mut().find(|s| s.id == USER) {
            let mut badge = user.attribute("title").expect("title exists").clone();
            badge.name = "badge".into();
            badge.mutability = Mutability::Immutable;
            user.attributes.push(badge);
        }
        registry
    }

    #[test]
    fn immutable_attribute_is_set_once() {
        let registry = registry_with_immutable_badge();
        let rs = registry.view("User").expect("User type");
        let out = patch(
            &user(),
            json!([{"op": "add", "path": "badge", "value": "B-1"}]),
            rs,
        );
        let set = out.document;
        assert_eq!(set["badge"], "B-1");
        let same = patch(
            &set,
            json!([{"op": "replace", "path": "badge", "value": "B-1"}]),
            rs,
        );
        assert!(!same.modified());
        for op in [
            json!({"op": "replace", "path": "badge", "value": "B-2"}),
            json!({"op": "remove", "path": "badge"}),
        ] {
            let e = patch_err(&set, json!([op]), rs);
            assert!(matches!(e, Error::Mutability(_)), "{op}: {e}");
        }
    }

    #[test]
    fn a_failing_operation_leaves_nothing_applied() {
        let u = user();
        let e = patch_err(
            &u,
            json!([
                {"op": "replace", "path": "displayName", "value": "Changed"},
                {"op": "replace", "path": "id", "value": "x"}
            ]),
            ResourceSchema::user(),
        );
        assert!(matches!(e, Error::Mutability(_)));
        assert_eq!(u, user());
    }
}

/// Member delta.
mod patch_member_delta {
    use super::*;

    fn split(ops: Value) -> (PatchRequest, Vec<MemberChange>) {
        let req = PatchRequest::from_json(&body(ops)).expect("valid request");
        split_member_changes(&req, ResourceSchema::group()).expect("splits")
    }

    fn m(value: &str, display: Option<&str>) -> Member {
        Member {
            value: value.into(),
            display: display.map(Into::into),
            r#type: None,
            reference: None,
        }
    }

    #[test]
    fn split_classifies_every_member_operation_form() {
        let (rest, changes) = split(json!([
            {"op": "Add", "path": "members", "value": [{"$ref": null, "value": "u1"}]},
            {"op": "add", "path": "members", "value": {"value": "u2", "display": "Two"}},
            {"op": "Remove", "path": "members", "value": [{"$ref": null, "value": "u1"}]},
            {"op": "remove", "path": "members[value eq \"u2\"]"},
            {"op": "remove", "path": "members[value eq \"u3\" or value eq \"u4\"]"},
            {"op": "remove", "path": "members[display sw \"T\"]"},
            {"op": "remove", "path": "members"},
            {"op": "replace", "path": "members", "value": [{"value": "u5"}, {"value": "u5"}]},
            {"op": "replace", "value": {"id": "g", "displayName": "New", "members": [{"value": "u6"}]}},
            {"op": "add", "value": {"members": [{"value": "u7"}]}},
            {"op": "replace", "path": "displayName", "value": "Newer"}
        ]));
        let filter = scim::filter::parse("display sw \"T\"").expect("filter parses");
        assert_eq!(
            changes,
            [
                MemberChange::Add(vec![m("u1", None)]),
                MemberChange::Add(vec![m("u2", Some("Two"))]),
                MemberChange::Remove(vec!["u1".into()]),
                MemberChange::Remove(vec!["u2".into()]),
                MemberChange::Remove(vec!["u3".into(), "u4".into()]),
                MemberChange::RemoveWhere(filter),
                MemberChange::RemoveAll,
                MemberChange::Replace(vec![m("u5", None), m("u5", None)]),
                MemberChange::Replace(vec![m("u6", None)]),
                MemberChange::Add(vec![m("u7", None)]),
            ]
        );
        let left: Vec<Value> = rest
            .operations
            .iter()
            .map(|o| json!({"op": o.op.as_str(), "path": o.path.as_ref().map(|p| p.attr.to_string()), "value": o.value}))
            .collect();
        assert_eq!(
            left,
            [
                json!({"op": "replace", "path": null, "value": {"id": "g", "displayName": "New"}}),
                json!({"op": "replace", "path": "displayName", "value": "Newer"}),
            ]
        );
    }

    #[test]
    fn split_rejects_member_forms_that_are_not_set_operations() {
        for op in [
            json!({"op": "replace", "path": "members[value eq \"u1\"].display", "value": "x"}),
            json!({"op": "add", "path": "members[value eq \"u1\"]", "value": {"display": "x"}}),
            json!({"op": "remove", "path": "members.display"}),
        ] {
            let req = PatchRequest::from_json(&body(json!([op]))).expect("valid request");
            let e = split_member_changes(&req, ResourceSchema::group()).expect_err("rejected");
            assert!(matches!(e, Error::InvalidPath(_)), "{op}: {e}");
        }
    }

    #[test]
    fn split_leaves_user_requests_alone() {
        let req = PatchRequest::from_json(&body(
            json!([{"op": "replace", "value": {"active": false}}]),
        ))
        .expect("valid");
        let (rest, changes) = split_member_changes(&req, ResourceSchema::user()).expect("splits");
        assert_eq!(rest, req);
        assert!(changes.is_empty());
    }

    #[test]
    fn apply_to_adds_without_duplicates_and_removes_by_id_or_filter() {
        let rs = ResourceSchema::group();
        let mut list = vec![m("a", Some("Ann")), m("b", Some("Bob"))];
        MemberChange::Add(vec![m("b", Some("Other")), m("c", None), m("c", None)])
            .apply_to(&mut list, rs);
        assert_eq!(
            list,
            [m("a", Some("Ann")), m("b", Some("Bob")), m("c", None)]
        );
        MemberChange::Remove(vec!["a".into(), "zz".into()]).apply_to(&mut list, rs);
        assert_eq!(list, [m("b", Some("Bob")), m("c", None)]);
        let f = scim::filter::parse("display eq \"Bob\"").expect("parses");
        MemberChange::RemoveWhere(f).apply_to(&mut list, rs);
        assert_eq!(list, [m("c", None)]);
        MemberChange::Replace(vec![m("d", None), m("d", Some("dup"))]).apply_to(&mut list, rs);
        assert_eq!(list, [m("d", None)]);
        MemberChange::RemoveAll.apply_to(&mut list, rs);
        assert!(list.is_empty());
    }

    /// `apply` on the document and `split` + `apply_to` on the member list must
    /// agree on the members, and on everything else.
    fn assert_member_routes_agree(doc: &Value, ops: Value) {
        let rs = ResourceSchema::group();
        let req = PatchRequest::from_json(&body(ops.clone())).expect("valid request");
        let whole = apply(doc, &req, rs).expect("applies");

        let (rest, changes) = split_member_changes(&req, rs).expect("splits");
        let mut list: Vec<Member> = doc["members"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|v| Member::from_json(v).expect("member"))
                    .collect()
            })
            .unwrap_or_default();
        for c in &changes {
            c.apply_to(&mut list, rs);
        }
        let from_doc: Vec<Member> = whole.document["members"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|v| Member::from_json(v).expect("member"))
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(from_doc, list, "members differ for {ops}");

        let without_members = without(doc.clone(), "members");
        let rest_out = if rest.operations.is_empty() {
            without_members
        } else {
            apply(&without_members, &rest, rs)
                .expect("rest applies")
                .document
        };
        assert_eq!(
            without(whole.document, "members"),
            rest_out,
            "non-member attributes differ for {ops}"
        );
    }

    #[test]
    fn member_delta_agrees_with_apply() {
        let g = group();
        for ops in [
            json!([{"op": "add", "path": "members", "value": [james(), babs()]}]),
            json!([{"op": "remove", "path": "members"}]),
            json!([{"op": "remove", "path": format!("members[value eq \"{BABS}\"]")}]),
            json!([{"op": "remove", "path": format!("members[value eq \"{BABS}\" or value eq \"{MANDY}\"]")}]),
            json!([{"op": "remove", "path": "members[display co \"Pepper\"]"}]),
            json!([{"op": "Remove", "path": "members", "value": [{"$ref": null, "value": MANDY}]}]),
            json!([{"op": "replace", "path": "members", "value": [james()]}]),
            json!([
                {"op": "remove", "path": "members"},
                {"op": "add", "path": "members", "value": [babs(), james()]},
                {"op": "remove", "path": format!("members[value eq \"{BABS}\"]")}
            ]),
            json!([{"op": "replace", "value": {"displayName": "Guides", "members": [mandy()]}}]),
            json!([
                {"op": "add", "path": "members", "value": [james()]},
                {"op": "replace", "path": "displayName", "value": "Guides"},
                {"op": "remove", "path": "members[type eq \"Group\"]"}
            ]),
        ] {
            assert_member_routes_agree(&g, ops);
        }
    }
}

/// Properties.
mod patch_properties {
    use super::*;

    /// Operations that succeed on any User document the others can produce.
    fn valid_op() -> impl Strategy<Value = Value> {
        let word = "[a-z]{1,8}";
        prop_oneof![
            word.prop_map(|w| json!({"op": "replace", "path": "displayName", "value": w})),
            word.prop_map(|w| json!({"op": "Add", "path": "nickName", "value": w})),
            Just(json!({"op": "remove", "path": "nickName"})),
            any::<bool>().prop_map(|b| json!({"op": "replace", "path": "active", "value": b})),
            Just(json!({"op": "Replace", "path": "active", "value": "False"})),
            word.prop_map(|w| json!({"op": "replace", "path": "name.givenName", "value": w})),
            Just(json!({"op": "remove", "path": "name.middleName"})),
            word.prop_map(|w| json!({"op": "add", "path": "emails", "value": [{"value": format!("{w}@x.org"), "type": "home"}]})),
            word.prop_map(|w| json!({"op": "replace", "path": "emails[type eq \"work\"].value", "value": format!("{w}@work.org")})),
            Just(json!({"op": "replace", "path": "emails[type eq \"work\"].primary", "value": true})),
            Just(json!({"op": "remove", "path": "emails[type eq \"home\"]"})),
            word.prop_map(|w| json!({"op": "add", "path": "phoneNumbers[type eq \"mobile\"].value", "value": w})),
            word.prop_map(|w| json!({"op": "replace", "value": {"title": w, "name.familyName": w}})),
            word.prop_map(|w| json!({"op": "replace", "path": format!("{ENTERPRISE}:employeeNumber"), "value": w})),
            word.prop_map(|w| json!({"op": "add", "value": {format!("{ENTERPRISE}:manager"): w}})),
            Just(json!({"op": "remove", "path": format!("{ENTERPRISE}:manager")})),
            word.prop_map(|w| json!({"op": "add", "path": "urn:ietf:params:scim:schemas:extension:Custom:2.0:User:tag", "value": w})),
            Just(json!({"op": "replace", "path": "title", "value": ""})),
        ]
    }

    /// Operations that fail on any User document.
    fn invalid_op() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(json!({"op": "replace", "path": "id", "value": "other"})),
            Just(json!({"op": "remove", "path": "userName"})),
            Just(json!({"op": "replace", "path": "userName", "value": ""})),
            Just(json!({"op": "remove"})),
            Just(json!({"op": "add", "path": "nonsense", "value": "x"})),
            Just(
                json!({"op": "replace", "path": "meta.lastModified", "value": "2020-01-01T00:00:00Z"})
            ),
            Just(json!({"op": "replace", "path": "active", "value": "maybe"})),
            Just(json!({"op": "replace", "path": "emails[value co \"@@\"].value", "value": "x"})),
        ]
    }

    fn any_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            prop_oneof![
                Just(String::new()),
                Just("True".to_string()),
                "[a-zA-Z0-9@. ]{0,12}"
            ]
            .prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            let key = prop_oneof![
                Just("value".to_string()),
                Just("type".to_string()),
                Just("primary".to_string()),
                Just("display".to_string()),
                Just("$ref".to_string()),
                Just("givenName".to_string()),
                Just("members".to_string()),
                Just(ENTERPRISE.to_string()),
                Just(format!("{ENTERPRISE}:manager")),
                Just("emails[type eq \"work\"].value".to_string()),
                "[a-zA-Z.:\\[\\]\" ]{1,16}",
            ];
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::vec((key, inner), 0..4)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    fn any_path() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            prop::sample::select(vec![
                "userName",
                "name",
                "name.givenName",
                "emails",
                "emails[type eq \"work\"]",
                "emails[type eq \"work\"].value",
                "emails[value co \"x\"].primary",
                "members",
                "members[value eq \"a\"]",
                "members[display sw \"M\"]",
                "members.display",
                "displayName",
                "id",
                "meta",
                "meta.created",
                "groups",
                "schemas",
                "active",
                "addresses[type eq \"home\" and primary eq true].locality",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value",
                "urn:x:Custom:2.0:User",
                "urn:x:Custom:2.0:User:tag",
                "urn:x:Custom:2.0:User:tag.sub",
                "tag[value eq \"x\"]",
                "phoneNumbers[not (type eq \"work\")].value",
            ])
            .prop_map(Value::from),
            "[a-zA-Z.:\\[\\]\" =]{0,24}".prop_map(Value::from),
        ]
    }

    fn any_op() -> impl Strategy<Value = Value> {
        (
            prop::sample::select(vec!["add", "Replace", "REMOVE", "move"]),
            any_path(),
            prop::option::of(any_json()),
        )
            .prop_map(|(op, path, value)| {
                let mut o = serde_json::Map::new();
                o.insert("op".into(), json!(op));
                if !path.is_null() {
                    o.insert("path".into(), path);
                }
                if let Some(v) = value {
                    o.insert("value".into(), v);
                }
                Value::Object(o)
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 256,
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        #[test]
        fn an_invalid_operation_anywhere_fails_the_whole_request(
            ops in prop::collection::vec(valid_op(), 0..8),
            bad in invalid_op(),
            at in any::<prop::sample::Index>(),
        ) {
            let mut ops = ops;
            let position = at.index(ops.len() + 1);
            ops.insert(position, bad);
            let doc = enterprise_user();
            let before = doc.clone();
            let result = try_patch(&doc, Value::Array(ops), ResourceSchema::user());
            prop_assert!(result.is_err());
            prop_assert_eq!(doc, before);
        }

        #[test]
        fn one_request_equals_its_operations_one_by_one(
            ops in prop::collection::vec(valid_op(), 1..10),
        ) {
            let rs = ResourceSchema::user();
            let start = enterprise_user();
            let all = try_patch(&start, Value::Array(ops.clone()), rs);
            prop_assert!(all.is_ok(), "{:?}", all.err());
            let all = all.map(|o| o.document).unwrap_or_default();
            let mut step = start.clone();
            for op in ops {
                let out = try_patch(&step, json!([op]), rs);
                prop_assert!(out.is_ok(), "{:?}", out.err());
                step = out.map(|o| o.document).unwrap_or_default();
            }
            prop_assert_eq!(all, step);
        }

        #[test]
        fn arbitrary_requests_never_panic(
            ops in prop::collection::vec(any_op(), 1..6),
            on_group in any::<bool>(),
        ) {
            let (doc, rs) = if on_group {
                (group(), ResourceSchema::group())
            } else {
                (enterprise_user(), ResourceSchema::user())
            };
            let req = body(Value::Array(ops));
            if let Ok(req) = PatchRequest::from_json(&req) {
                let whole = apply(&doc, &req, rs);
                if let Ok((rest, changes)) = split_member_changes(&req, rs) {
                    let mut list = vec![Member::new("a"), Member::new("b")];
                    for c in &changes {
                        c.apply_to(&mut list, rs);
                    }
                    let _ = apply(&doc, &rest, rs);
                }
                if let Ok(out) = whole {
                    prop_assert!(out.document.is_object());
                }
            }
        }

        #[test]
        fn changed_lists_exactly_the_attributes_that_differ(
            ops in prop::collection::vec(valid_op(), 1..10),
        ) {
            let start = enterprise_user();
            let out = try_patch(&start, Value::Array(ops), ResourceSchema::user());
            prop_assert!(out.is_ok());
            let out = out.unwrap_or_else(|_| unreachable!());
            let mut differs: Vec<String> = Vec::new();
            let (Some(old), Some(new)) = (start.as_object(), out.document.as_object()) else {
                return Err(TestCaseError::fail("documents are objects"));
            };
            for key in old.keys().chain(new.keys()) {
                let (a, b) = (old.get(key), new.get(key));
                if key.starts_with("urn:") {
                    let empty = serde_json::Map::new();
                    let a = a.and_then(Value::as_object).unwrap_or(&empty);
                    let b = b.and_then(Value::as_object).unwrap_or(&empty);
                    for k in a.keys().chain(b.keys()) {
                        let name = format!("{key}:{k}");
                        if a.get(k) != b.get(k) && !differs.contains(&name) {
                            differs.push(name);
                        }
                    }
                } else if a != b && !differs.contains(key) {
                    differs.push(key.clone());
                }
            }
            let mut reported = changed(&out);
            reported.sort();
            differs.sort();
            prop_assert_eq!(reported, differs);
        }
    }
}
