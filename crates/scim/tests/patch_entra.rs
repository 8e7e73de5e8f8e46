//! Microsoft Entra ID's PATCH requests, verbatim from Microsoft's
//! "Known issues and resolutions with SCIM 2.0 protocol compliance of the
//! Microsoft Entra user provisioning service" (both the default requests and
//! those sent with the `aadOptscim062020` flag) and "Tutorial: Develop and
//! plan provisioning for a SCIM endpoint in Microsoft Entra ID", plus the
//! request shapes Entra is documented or reported to send for extension,
//! manager, custom and filtered attributes. Resources are the tutorial's
//! Create User / Create Group responses.

use serde_json::{Value, json};

use scim::patch::{MemberChange, PatchOutcome, PatchRequest, apply, split_member_changes};
use scim::{Error, ResourceSchema};

const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const CUSTOM: &str = "urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User";

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).expect("fixture readable");
    serde_json::from_str(&text).expect("fixture is JSON")
}

fn user() -> Value {
    fixture("patch_entra_user.json")
}

fn group() -> Value {
    fixture("patch_entra_group.json")
}

fn try_patch(doc: &Value, body: Value, rs: ResourceSchema<'_>) -> Result<PatchOutcome, Error> {
    let req = PatchRequest::from_json(&body)?;
    apply(doc, &req, rs)
}

fn patch(doc: &Value, body: Value, rs: ResourceSchema<'_>) -> PatchOutcome {
    try_patch(doc, body, rs).expect("PATCH applies")
}

fn ops(ops: Value) -> Value {
    json!({"schemas": [PATCH_OP], "Operations": ops})
}

fn changed(out: &PatchOutcome) -> Vec<String> {
    out.changed.iter().map(ToString::to_string).collect()
}

fn set(mut doc: Value, pointer: &str, value: Value) -> Value {
    match doc.pointer_mut(pointer) {
        Some(slot) => *slot = value,
        None => panic!("no {pointer} in fixture"),
    }
    doc
}

fn with_enterprise(mut doc: Value, ext: Value) -> Value {
    doc["schemas"] = json!([USER, ENTERPRISE]);
    doc[ENTERPRISE] = ext;
    doc
}

fn group_with(members: &[&str]) -> Value {
    let mut g = group();
    g["members"] = members.iter().map(|m| json!({"value": m})).collect();
    g
}

/// Known issues: requests made to disable users.
mod patch_entra_disable_user {
    use super::*;

    #[test]
    fn disable_user_without_flag_boolean_as_string() {
        let out = patch(
            &user(),
            ops(json!([{"op": "Replace", "path": "active", "value": "False"}])),
            ResourceSchema::user(),
        );
        assert_eq!(out.document, set(user(), "/active", json!(false)));
        assert_eq!(changed(&out), ["active"]);
    }

    #[test]
    fn disable_user_with_flag() {
        let out = patch(
            &user(),
            ops(json!([{"op": "replace", "path": "active", "value": false}])),
            ResourceSchema::user(),
        );
        assert_eq!(out.document, set(user(), "/active", json!(false)));
    }
}

/// Known issues: requests made to add a single-value string attribute.
mod patch_entra_add_string {
    use super::*;

    #[test]
    fn add_single_value_string_attribute_both_forms() {
        let mut want = user();
        want["nickName"] = json!("Babs");
        for op in ["Add", "add"] {
            let out = patch(
                &user(),
                ops(json!([{"op": op, "path": "nickName", "value": "Babs"}])),
                ResourceSchema::user(),
            );
            assert_eq!(out.document, want);
            assert_eq!(changed(&out), ["nickName"]);
        }
    }
}

/// Known issues: requests to replace multiple attributes.
mod patch_entra_replace_many {
    use super::*;

    #[test]
    fn replace_multiple_attributes_without_flag() {
        let out = patch(
            &user(),
            ops(json!([
                {"op": "Replace", "path": "displayName", "value": "Pvlo"},
                {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "TestBcwqnm@test.microsoft.com"},
                {"op": "Replace", "path": "name.givenName", "value": "Gtfd"},
                {"op": "Replace", "path": "name.familyName", "value": "Pkqf"},
                {"op": "Replace", "path": "externalId", "value": "Eqpj"},
                {"op": "Replace", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber", "value": "Eqpj"}
            ])),
            ResourceSchema::user(),
        );
        let mut want = with_enterprise(user(), json!({"employeeNumber": "Eqpj"}));
        want["displayName"] = json!("Pvlo");
        want["emails"][0]["value"] = json!("TestBcwqnm@test.microsoft.com");
        want["name"]["givenName"] = json!("Gtfd");
        want["name"]["familyName"] = json!("Pkqf");
        want["externalId"] = json!("Eqpj");
        assert_eq!(out.document, want);
        assert_eq!(
            changed(&out),
            [
                "displayName".to_string(),
                "emails".into(),
                "name".into(),
                "externalId".into(),
                format!("{ENTERPRISE}:employeeNumber"),
                "schemas".into(),
            ]
        );
    }

    #[test]
    fn replace_multiple_attributes_with_flag_uses_dotted_keys() {
        let out = patch(
            &user(),
            ops(json!([
                {"op": "replace", "path": "emails[type eq \"work\"].value", "value": "TestMhvaes@test.microsoft.com"},
                {"op": "replace", "value": {
                    "displayName": "Bjfe",
                    "name.givenName": "Kkom",
                    "name.familyName": "Unua",
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber": "Aklq"
                }}
            ])),
            ResourceSchema::user(),
        );
        let mut want = with_enterprise(user(), json!({"employeeNumber": "Aklq"}));
        want["displayName"] = json!("Bjfe");
        want["emails"][0]["value"] = json!("TestMhvaes@test.microsoft.com");
        want["name"]["givenName"] = json!("Kkom");
        want["name"]["familyName"] = json!("Unua");
        assert_eq!(out.document, want);
    }
}

/// Known issues: requests made to remove a group member.
mod patch_entra_remove_member {
    use super::*;

    #[test]
    fn remove_member_without_flag_names_it_in_value() {
        let start = group_with(&["u1091", "u2000"]);
        let out = patch(
            &start,
            ops(json!([{"op": "Remove", "path": "members", "value": [{"value": "u1091"}]}])),
            ResourceSchema::group(),
        );
        assert_eq!(out.document, group_with(&["u2000"]));
        assert_eq!(changed(&out), ["members"]);
    }

    #[test]
    fn remove_member_with_flag_uses_a_filter() {
        let id = "7f4bc1a3-285e-48ae-8202-5accb43efb0e";
        let out = patch(
            &group_with(&[id, "u2000"]),
            ops(
                json!([{"op": "remove", "path": "members[value eq \"7f4bc1a3-285e-48ae-8202-5accb43efb0e\"]"}]),
            ),
            ResourceSchema::group(),
        );
        assert_eq!(out.document, group_with(&["u2000"]));
    }

    #[test]
    fn both_member_removals_are_the_same_delta() {
        let legacy = PatchRequest::from_json(&ops(json!([
            {"op": "Remove", "path": "members", "value": [{"value": "u1091"}]}
        ])))
        .expect("valid");
        let compliant = PatchRequest::from_json(&ops(json!([
            {"op": "remove", "path": "members[value eq \"u1091\"]"}
        ])))
        .expect("valid");
        let rs = ResourceSchema::group();
        let (_, a) = split_member_changes(&legacy, rs).expect("splits");
        let (_, b) = split_member_changes(&compliant, rs).expect("splits");
        assert_eq!(a, [MemberChange::Remove(vec!["u1091".into()])]);
        assert_eq!(a, b);
    }
}

/// Tutorial: user operations.
mod patch_entra_tutorial_users {
    use super::*;

    #[test]
    fn tutorial_update_user_multi_valued_properties() {
        let out = patch(
            &user(),
            ops(json!([
                {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "updatedEmail@microsoft.com"},
                {"op": "Replace", "path": "name.familyName", "value": "updatedFamilyName"}
            ])),
            ResourceSchema::user(),
        );
        let want = set(
            set(
                user(),
                "/emails/0/value",
                json!("updatedEmail@microsoft.com"),
            ),
            "/name/familyName",
            json!("updatedFamilyName"),
        );
        assert_eq!(out.document, want);
    }

    #[test]
    fn tutorial_update_user_single_valued_property() {
        let out = patch(
            &user(),
            ops(
                json!([{"op": "Replace", "path": "userName", "value": "5b50642d-79fc-4410-9e90-4c077cdd1a59@testuser.com"}]),
            ),
            ResourceSchema::user(),
        );
        assert_eq!(
            out.document,
            set(
                user(),
                "/userName",
                json!("5b50642d-79fc-4410-9e90-4c077cdd1a59@testuser.com")
            )
        );
    }

    #[test]
    fn tutorial_disable_user_operations_before_schemas() {
        let body = json!({
            "Operations": [{"op": "Replace", "path": "active", "value": false}],
            "schemas": [PATCH_OP]
        });
        let out = patch(&user(), body, ResourceSchema::user());
        assert_eq!(out.document, set(user(), "/active", json!(false)));
    }

    #[test]
    fn tutorial_add_manager_as_single_element_list() {
        let out = patch(
            &user(),
            ops(json!([{
                "op": "Add",
                "path": "manager",
                "value": [{
                    "$ref": "http://example.com/scim/Users/00aa00aa-bb11-cc22-dd33-44ee44ee44ee",
                    "value": "00aa00aa-bb11-cc22-dd33-44ee44ee44ee"
                }]
            }])),
            ResourceSchema::user(),
        );
        let want = with_enterprise(
            user(),
            json!({"manager": {
                "$ref": "http://example.com/scim/Users/00aa00aa-bb11-cc22-dd33-44ee44ee44ee",
                "value": "00aa00aa-bb11-cc22-dd33-44ee44ee44ee"
            }}),
        );
        assert_eq!(out.document, want);
        assert_eq!(
            changed(&out),
            [format!("{ENTERPRISE}:manager"), "schemas".to_string()]
        );
    }
}

/// Tutorial: group operations.
mod patch_entra_tutorial_groups {
    use super::*;

    #[test]
    fn tutorial_update_group_display_name() {
        let out = patch(
            &group(),
            ops(
                json!([{"op": "Replace", "path": "displayName", "value": "1879db59-3bdf-4490-ad68-ab880a269474updatedDisplayName"}]),
            ),
            ResourceSchema::group(),
        );
        assert_eq!(
            out.document,
            set(
                group(),
                "/displayName",
                json!("1879db59-3bdf-4490-ad68-ab880a269474updatedDisplayName")
            )
        );
        assert_eq!(changed(&out), ["displayName"]);
    }

    #[test]
    fn tutorial_add_and_remove_members_with_null_ref() {
        let add = ops(
            json!([{"op": "Add", "path": "members", "value": [{"$ref": null, "value": "f648f8d5ea4e4cd38e9c"}]}]),
        );
        let out = patch(&group(), add, ResourceSchema::group());
        assert_eq!(out.document, group_with(&["f648f8d5ea4e4cd38e9c"]));

        let remove = ops(
            json!([{"op": "Remove", "path": "members", "value": [{"$ref": null, "value": "f648f8d5ea4e4cd38e9c"}]}]),
        );
        let out = patch(&out.document, remove, ResourceSchema::group());
        // The group's only member is gone: `members` is unassigned, which
        // RFC 7643 §2.5 equates with the `[]` the group was created with.
        let mut want = group();
        if let Some(o) = want.as_object_mut() {
            o.shift_remove("members");
        }
        assert_eq!(out.document, want);
    }

    #[test]
    fn adding_an_existing_member_again_changes_nothing() {
        let start = group_with(&["f648f8d5ea4e4cd38e9c"]);
        let out = patch(
            &start,
            ops(
                json!([{"op": "Add", "path": "members", "value": [{"$ref": null, "value": "f648f8d5ea4e4cd38e9c"}]}]),
            ),
            ResourceSchema::group(),
        );
        assert_eq!(out.document, start);
        assert!(!out.modified());
    }

    #[test]
    fn several_memberships_in_one_patch() {
        let out = patch(
            &group_with(&["a", "b"]),
            ops(json!([
                {"op": "Add", "path": "members", "value": [{"value": "c"}, {"value": "d"}]},
                {"op": "Remove", "path": "members", "value": [{"value": "a"}, {"value": "d"}]}
            ])),
            ResourceSchema::group(),
        );
        assert_eq!(out.document, group_with(&["b", "c"]));
    }
}

/// Extension attributes, manager, custom extensions.
mod patch_entra_extensions {
    use super::*;

    #[test]
    fn path_less_extension_keys_with_manager_as_bare_id() {
        let out = patch(
            &user(),
            ops(json!([{"op": "replace", "value": {
                "name.givenName": "Barbara",
                "emails[type eq \"work\"].value": "x@y.com",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber": "701984",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager": "26118915-6090-4610-87e4-49d8ca9f808d"
            }}])),
            ResourceSchema::user(),
        );
        let mut want = with_enterprise(
            user(),
            json!({
                "employeeNumber": "701984",
                "manager": {"value": "26118915-6090-4610-87e4-49d8ca9f808d"}
            }),
        );
        want["name"]["givenName"] = json!("Barbara");
        want["emails"][0]["value"] = json!("x@y.com");
        assert_eq!(out.document, want);
    }

    #[test]
    fn a_new_bare_manager_id_replaces_the_whole_manager() {
        let start = with_enterprise(
            user(),
            json!({"manager": {
                "value": "old",
                "$ref": "../Users/old",
                "displayName": "Old Boss"
            }}),
        );
        let out = patch(
            &start,
            ops(
                json!([{"op": "Replace", "path": format!("{ENTERPRISE}:manager"), "value": "new"}]),
            ),
            ResourceSchema::user(),
        );
        assert_eq!(
            out.document,
            with_enterprise(user(), json!({"manager": {"value": "new"}}))
        );
    }

    #[test]
    fn removing_the_manager_removes_the_extension() {
        let start = with_enterprise(user(), json!({"manager": {"value": "m"}}));
        let out = patch(
            &start,
            ops(json!([{"op": "Remove", "path": format!("{ENTERPRISE}:manager")}])),
            ResourceSchema::user(),
        );
        assert_eq!(out.document, user());
        assert_eq!(
            changed(&out),
            [format!("{ENTERPRISE}:manager"), "schemas".to_string()]
        );
    }

    #[test]
    fn custom_extension_attribute_is_stored_under_its_schema_urn() {
        let path = format!("{CUSTOM}:CustomAttribute");
        let out = patch(
            &user(),
            ops(json!([{"op": "Add", "path": path, "value": "701984"}])),
            ResourceSchema::user(),
        );
        let mut want = user();
        want["schemas"] = json!([USER, CUSTOM]);
        want[CUSTOM] = json!({"CustomAttribute": "701984"});
        assert_eq!(out.document, want);
        assert_eq!(
            changed(&out),
            [format!("{CUSTOM}:CustomAttribute"), "schemas".to_string()]
        );

        // Path-less, as the flagged job sends several attributes at once.
        let again = patch(
            &user(),
            ops(json!([{"op": "replace", "value": {path.as_str(): "701984"}}])),
            ResourceSchema::user(),
        );
        assert_eq!(again.document, want);

        let removed = patch(
            &out.document,
            ops(json!([{"op": "Remove", "path": path}])),
            ResourceSchema::user(),
        );
        assert_eq!(removed.document, user());
    }

    #[test]
    fn custom_multi_valued_attribute_add_appends() {
        let urn = "urn:ietf:params:scim:schemas:extension:greenhouse:2.0:User";
        let mut start = user();
        start["schemas"] = json!([USER, urn]);
        start[urn] = json!({"department_ids": [{"value": "2"}]});
        let out = patch(
            &start,
            ops(
                json!([{"op": "Add", "path": format!("{urn}:department_ids"), "value": [{"value": "1"}]}]),
            ),
            ResourceSchema::user(),
        );
        assert_eq!(
            out.document[urn]["department_ids"],
            json!([{"value": "2"}, {"value": "1"}])
        );
        let out = patch(
            &start,
            ops(
                json!([{"op": "Replace", "path": format!("{urn}:department_ids"), "value": [{"value": "1"}]}]),
            ),
            ResourceSchema::user(),
        );
        assert_eq!(out.document[urn]["department_ids"], json!([{"value": "1"}]));
    }
}

/// Filtered paths Entra sends for values that may not exist yet.
mod patch_entra_filtered_paths {
    use super::*;

    #[test]
    fn add_to_a_filtered_path_creates_the_value() {
        let out = patch(
            &user(),
            ops(
                json!([{"op": "add", "path": "phoneNumbers[type eq \"mobile\"].value", "value": "555"}]),
            ),
            ResourceSchema::user(),
        );
        let mut want = user();
        want["phoneNumbers"] = json!([{"type": "mobile", "value": "555"}]);
        assert_eq!(out.document, want);
        assert_eq!(changed(&out), ["phoneNumbers"]);
    }

    #[test]
    fn add_work_address_formatted_creates_the_address() {
        let out = patch(
            &user(),
            ops(
                json!([{"op": "Add", "path": "addresses[type eq \"work\"].formatted", "value": "Columbus"}]),
            ),
            ResourceSchema::user(),
        );
        assert_eq!(
            out.document["addresses"],
            json!([{"type": "work", "formatted": "Columbus"}])
        );
        assert_eq!(changed(&out), ["addresses"]);
    }

    #[test]
    fn add_to_an_existing_filtered_value_sets_it() {
        let out = patch(
            &user(),
            ops(json!([
                {"op": "Replace", "path": "title", "value": "tester"},
                {"op": "Add", "path": "emails[type eq \"work\"].value", "value": "joe@joe.com"}
            ])),
            ResourceSchema::user(),
        );
        let mut want = set(user(), "/emails/0/value", json!("joe@joe.com"));
        want["title"] = json!("tester");
        assert_eq!(out.document, want);
    }

    #[test]
    fn replace_of_a_missing_filtered_value_creates_it() {
        let start = set(
            user(),
            "/emails",
            json!([{"value": "home@x.org", "type": "home"}]),
        );
        let out = patch(
            &start,
            ops(
                json!([{"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "w@x.org"}]),
            ),
            ResourceSchema::user(),
        );
        assert_eq!(
            out.document["emails"],
            json!([
                {"value": "home@x.org", "type": "home"},
                {"type": "work", "value": "w@x.org"}
            ])
        );
    }
}

/// Clearing.
mod patch_entra_clearing {
    use super::*;

    #[test]
    fn empty_string_clears_attributes_and_sub_attributes() {
        let start = set(user(), "/name/givenName", json!("Joy"));
        let mut start = start;
        start["title"] = json!("Guide");
        let out = patch(
            &start,
            ops(json!([
                {"op": "Replace", "path": "title", "value": ""},
                {"op": "Replace", "path": "name.givenName", "value": ""},
                {"op": "replace", "value": {"name.formatted": ""}}
            ])),
            ResourceSchema::user(),
        );
        assert_eq!(out.document["name"], json!({"familyName": "familyName"}));
        assert!(out.document.get("title").is_none());
        assert_eq!(changed(&out), ["title", "name"]);
    }

    #[test]
    fn clearing_the_user_name_is_refused() {
        let e = try_patch(
            &user(),
            ops(json!([{"op": "Replace", "path": "userName", "value": ""}])),
            ResourceSchema::user(),
        )
        .expect_err("userName is required");
        assert!(matches!(e, Error::Mutability(_)), "{e}");
    }

    #[test]
    fn legacy_boolean_strings_inside_values() {
        let out = patch(
            &user(),
            ops(
                json!([{"op": "Add", "path": "emails", "value": [{"value": "o@x.org", "type": "other", "primary": "True"}]}]),
            ),
            ResourceSchema::user(),
        );
        assert_eq!(
            out.document["emails"],
            json!([
                {"value": "Test_User_11bb11bb-cc22-dd33-ee44-55ff55ff55ff@testuser.com", "type": "work", "primary": false},
                {"value": "o@x.org", "type": "other", "primary": true}
            ])
        );
    }
}
