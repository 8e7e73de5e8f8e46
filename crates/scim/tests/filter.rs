//! Filter evaluation over real documents (RFC 7643 §8.2, an enterprise user,
//! Entra's provisioning filters), `check`, and property tests for the
//! parser and printer.

use proptest::prelude::*;
use serde_json::{Value, json};

use scim::filter::{
    self, CompValue, CompareOp, Filter, Limits, check, matches, matches_element, parse, parse_path,
    parse_with,
};
use scim::{AttrPath, Error, ResourceSchema};

const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).expect("fixture exists");
    serde_json::from_str(&text).expect("fixture is JSON")
}

fn full_user() -> Value {
    fixture("rfc7643_8_2_full_user.json")
}

fn enterprise_user() -> Value {
    fixture("filter_enterprise_user.json")
}

/// Evaluates `filter` against a User document.
fn user_matches(filter: &str, doc: &Value) -> bool {
    let f = parse(filter).expect("test filter parses");
    matches(&f, doc, ResourceSchema::user())
}

fn group_matches(filter: &str, doc: &Value) -> bool {
    let f = parse(filter).expect("test filter parses");
    matches(&f, doc, ResourceSchema::group())
}

/// Asserts each filter's outcome against `doc`, naming the one that differs.
fn expect_user(doc: &Value, cases: &[(&str, bool)]) {
    for (filter, expected) in cases {
        assert_eq!(user_matches(filter, doc), *expected, "{filter}");
    }
}

/// Evaluation: every operator, case rules, lookup and the IdP filters.
mod filter_eval {
    use super::*;

    // ---------------------------------------------------------------------------
    // Operators on the RFC 7643 §8.2 user

    #[test]
    fn eq_and_ne() {
        expect_user(
            &full_user(),
            &[
                (r#"userName eq "bjensen@example.com""#, true),
                (r#"userName eq "bjensen""#, false),
                (r#"userName ne "bjensen""#, true),
                (r#"userName ne "BJensen@Example.com""#, false),
                (r#"displayName eq "Babs Jensen""#, true),
                (r#"name.givenName eq "Barbara""#, true),
                (r#"name.givenName eq "Barb""#, false),
                (r#"externalId eq "701984""#, true),
                (r#"title ne "Tour Guide""#, false),
                // Absent attributes are never equal, so always `ne`.
                (r#"nonexistent ne "x""#, true),
                (r#"nonexistent eq "x""#, false),
            ],
        );
    }

    #[test]
    fn co_sw_ew() {
        expect_user(
            &full_user(),
            &[
                (r#"name.familyName co "ens""#, true),
                (r#"name.familyName co "ENS""#, true),
                (r#"name.familyName co "xyz""#, false),
                (r#"name.familyName co """#, true),
                (r#"userName sw "bjensen@""#, true),
                (r#"userName sw "BJ""#, true),
                (r#"userName sw "example""#, false),
                (r#"userName ew "@EXAMPLE.COM""#, true),
                (r#"userName ew "bjensen""#, false),
                (r#"userName sw "bjensen@example.com""#, true),
                (r#"userName ew "bjensen@example.com""#, true),
                (r#"userName sw "bjensen@example.com.""#, false),
            ],
        );
    }

    #[test]
    fn ordering_of_strings_is_lexicographic_and_case_folded_unless_case_exact() {
        expect_user(
            &full_user(),
            &[
                (r#"userName gt "a""#, true),
                (r#"userName gt "C""#, false),
                (r#"userName lt "C""#, true),
                (r#"userName ge "BJENSEN@EXAMPLE.COM""#, true),
                (r#"userName le "BJENSEN@EXAMPLE.COM""#, true),
                (r#"userName gt "BJENSEN@EXAMPLE.COM""#, false),
                (r#"nickName lt "babs""#, false),
                // id is caseExact: "2819c..." > "2819C..." by code point.
                (r#"id gt "2819C223""#, true),
                (r#"id lt "2819C223""#, false),
            ],
        );
    }

    #[test]
    fn case_exact_attributes_compare_exactly_and_others_do_not() {
        let user = full_user();
        expect_user(
            &user,
            &[
                (r#"userName eq "BJENSEN@EXAMPLE.COM""#, true),
                (r#"id eq "2819c223-7f76-453a-919d-413861904646""#, true),
                (r#"id eq "2819C223-7F76-453A-919D-413861904646""#, false),
                (r#"id sw "2819C""#, false),
                (r#"id co "7F76""#, false),
                (r#"id co "7f76""#, true),
                (r#"meta.resourceType eq "user""#, false),
                (r#"meta.resourceType eq "User""#, true),
                // Binary values are compared exactly.
                (r#"x509Certificates.value sw "miidqz""#, false),
                (r#"x509Certificates.value sw "MIIDQz""#, true),
            ],
        );
        let doc = json!({"externalId": "AbC-1", "userName": "Ärger"});
        expect_user(
            &doc,
            &[
                (r#"externalId eq "AbC-1""#, true),
                (r#"externalId eq "abc-1""#, false),
                // Case-insensitivity is Unicode-aware, not ASCII-only.
                (r#"userName eq "äRGER""#, true),
                (r#"userName sw "ä""#, true),
                (r#"userName ew "GER""#, true),
                (r#"userName co "RG""#, true),
                (r#"userName co "ÄRGERLICH""#, false),
            ],
        );
    }

    #[test]
    fn date_times_compare_as_instants() {
        expect_user(
            &full_user(),
            &[
                (r#"meta.lastModified gt "2011-05-13T04:42:34Z""#, false),
                (r#"meta.lastModified ge "2011-05-13T04:42:34Z""#, true),
                (r#"meta.lastModified lt "2011-05-13T04:42:34Z""#, false),
                (r#"meta.lastModified le "2011-05-13T04:42:34Z""#, true),
                (r#"meta.lastModified gt "2011-05-13T04:42:33Z""#, true),
                (r#"meta.lastModified lt "2011-05-13T04:42:34.001Z""#, true),
                // Same instant, other offset: equal as a date, not as a string.
                (r#"meta.lastModified eq "2011-05-13T06:42:34+02:00""#, true),
                (r#"meta.lastModified gt "2011-05-13T05:00:00+02:00""#, true),
                (r#"meta.created lt "2011-01-01T00:00:00Z""#, true),
                (r#"meta.created gt "2011-01-01T00:00:00Z""#, false),
                // Unparsable literals never match.
                (r#"meta.lastModified gt "yesterday""#, false),
                (r#"meta.lastModified lt "yesterday""#, false),
                (r#"meta.lastModified eq "yesterday""#, false),
            ],
        );
        let odd = json!({"meta": {"lastModified": "13/05/2011"}});
        expect_user(
            &odd,
            &[
                (r#"meta.lastModified lt "2099-01-01T00:00:00Z""#, false),
                (r#"meta.lastModified gt "1970-01-01T00:00:00Z""#, false),
            ],
        );
    }

    #[test]
    fn present_means_present_and_non_empty() {
        expect_user(
            &full_user(),
            &[
                ("title pr", true),
                ("emails pr", true),
                ("emails.type pr", true),
                ("emails.display pr", false),
                ("x509Certificates pr", true),
                ("name pr", true),
                ("meta.lastModified pr", true),
                ("nonexistent pr", false),
            ],
        );
        let empty = json!({
            "title": "",
            "nickName": null,
            "emails": [],
            "phoneNumbers": [{"value": ""}],
            "name": {"givenName": ""},
            "userType": "x",
            "active": false
        });
        expect_user(
            &empty,
            &[
                ("title pr", false),
                ("nickName pr", false),
                ("emails pr", false),
                ("phoneNumbers pr", false),
                ("name pr", false),
                ("userType pr", true),
                ("active pr", true),
            ],
        );
    }

    #[test]
    fn eq_null_matches_absent_and_ne_null_present() {
        let user = full_user();
        let sparse = json!({"userName": "x", "title": null, "nickName": ""});
        assert!(!user_matches("title eq null", &user));
        assert!(user_matches("title ne null", &user));
        assert!(user_matches("title eq null", &sparse));
        assert!(user_matches("nickName eq null", &sparse));
        assert!(user_matches("displayName eq null", &sparse));
        assert!(!user_matches("displayName ne null", &sparse));
        // Other operators never match null.
        assert!(!user_matches("title co null", &sparse));
        assert!(!user_matches("title gt null", &user));
    }

    #[test]
    fn multi_valued_attributes_match_when_any_value_does() {
        expect_user(
            &full_user(),
            &[
                (r#"emails.value eq "babs@jensen.org""#, true),
                (r#"emails.value eq "bjensen@example.com""#, true),
                (r#"emails.type eq "other""#, false),
                // Without a sub-attribute, the comparison applies to `value`.
                (r#"emails co "jensen.org""#, true),
                (r#"emails eq "babs@jensen.org""#, true),
                (r#"emails co "nowhere.org""#, false),
                (r#"phoneNumbers.value sw "555-555-4""#, true),
                (r#"groups.display eq "us employees""#, true),
                (
                    r#"schemas eq "urn:ietf:params:scim:schemas:core:2.0:user""#,
                    true,
                ),
                (
                    r#"schemas eq "urn:ietf:params:scim:schemas:core:2.0:Group""#,
                    false,
                ),
                // `ne` negates `eq` over the whole attribute: some email is
                // "work", so it is not true that emails.type ne "work".
                (r#"emails.type ne "work""#, false),
                (r#"emails.type ne "other""#, true),
            ],
        );
    }

    #[test]
    fn value_paths_apply_the_whole_filter_to_one_element() {
        expect_user(
            &full_user(),
            &[
                (
                    r#"emails[type eq "work" and value co "@example.com"]"#,
                    true,
                ),
                (
                    r#"emails[type eq "home" and value co "@example.com"]"#,
                    false,
                ),
                // The flattened form matches across elements.
                (
                    r#"emails.type eq "home" and emails.value co "@example.com""#,
                    true,
                ),
                (r#"emails[primary eq true]"#, true),
                (r#"emails[type eq "home" and primary eq true]"#, false),
                (r#"emails[not (type eq "work")]"#, true),
                (
                    r#"emails[type eq "work" or (type eq "home" and value ew "@jensen.org")]"#,
                    true,
                ),
                (r#"addresses[type eq "home" and primary eq true]"#, false),
                (
                    r#"addresses[type eq "work" and locality eq "HOLLYWOOD"]"#,
                    true,
                ),
                (r#"groups[display eq "Employees"]"#, true),
                (r#"ims[type eq "xmpp"]"#, false),
                (r#"EMAILS[TYPE eq "work"]"#, true),
                // Lenient spelling of `emails[type eq "work" and value eq ...]`.
                (
                    r#"emails[type eq "work"].value eq "bjensen@example.com""#,
                    true,
                ),
                (
                    r#"emails[type eq "work"].value eq "babs@jensen.org""#,
                    false,
                ),
                (r#"nonexistent[type eq "work"]"#, false),
                // A single-valued complex attribute filters like a one-element list.
                (
                    r#"name[givenName eq "barbara" and familyName eq "jensen"]"#,
                    true,
                ),
                (
                    r#"name[givenName eq "barbara" and familyName eq "smith"]"#,
                    false,
                ),
            ],
        );
    }

    #[test]
    fn logical_operators_and_precedence() {
        expect_user(
            &full_user(),
            &[
                (r#"not (userName eq "x")"#, true),
                ("not (title pr)", false),
                ("not (not (title pr))", true),
                (r#"title pr and userType eq "Employee""#, true),
                (r#"title pr and userType eq "Intern""#, false),
                (r#"title pr or userType eq "Intern""#, true),
                (r#"nothing pr or userType eq "Intern""#, false),
                // and binds tighter than or: true or (false and false).
                (
                    r#"title pr or userName eq "x" and nickName eq "nope""#,
                    true,
                ),
                (
                    r#"(title pr or userName eq "x") and nickName eq "nope""#,
                    false,
                ),
                // not binds tighter than and.
                (r#"not (title pr) and userType eq "Employee""#, false),
                (
                    r#"userType ne "Employee" and not (emails co "example.com" or emails.value co "example.org")"#,
                    false,
                ),
                (
                    r#"userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")"#,
                    true,
                ),
                (
                    r#"userType eq "Employee" and (emails.type eq "work")"#,
                    true,
                ),
            ],
        );
    }

    #[test]
    fn booleans_compare_with_boolean_literals_and_tolerate_strings() {
        let user = full_user();
        expect_user(
            &user,
            &[
                ("active eq true", true),
                ("active eq false", false),
                ("active ne false", true),
                ("active eq TRUE", true),
                (r#"active eq "true""#, true),
                ("active gt false", false),
            ],
        );
        // Entra sends booleans as "True"/"False" strings.
        let entra = json!({"active": "True", "emails": [{"value": "a@b.c", "primary": "False"}]});
        expect_user(
            &entra,
            &[
                ("active eq true", true),
                ("active eq false", false),
                ("emails[primary eq false]", true),
                ("emails[primary eq true]", false),
            ],
        );
    }

    #[test]
    fn numbers_compare_numerically() {
        let doc = json!({"level": 7, "ratio": 0.5, "big": 18446744073709551615u64, "code": "42"});
        expect_user(
            &doc,
            &[
                ("level eq 7", true),
                ("level eq 7.0", true),
                ("level gt 6.5", true),
                ("level lt -1", false),
                ("level ge 7", true),
                ("level le 6", false),
                ("ratio lt 1", true),
                ("big gt 1", true),
                ("big eq 18446744073709551615", true),
                // Numeric literal against a string that holds a number.
                ("code eq 42", true),
                ("code gt 100", false),
                (r#"level eq "7""#, false),
                ("level co 7", false),
            ],
        );
    }

    // ---------------------------------------------------------------------------
    // Schema-directed lookup: URNs, extensions, case of names

    #[test]
    fn urn_qualified_core_attributes_are_top_level() {
        expect_user(
            &full_user(),
            &[
                (
                    r#"urn:ietf:params:scim:schemas:core:2.0:User:userName sw "J""#,
                    false,
                ),
                (
                    r#"urn:ietf:params:scim:schemas:core:2.0:User:userName sw "bj""#,
                    true,
                ),
                (
                    r#"urn:ietf:params:scim:schemas:core:2.0:User:name.givenName eq "barbara""#,
                    true,
                ),
                (
                    r#"urn:ietf:params:scim:schemas:core:2.0:User:emails[type eq "home"]"#,
                    true,
                ),
                (
                    r#"urn:ietf:params:scim:schemas:core:2.0:User:id eq "2819c223-7f76-453a-919d-413861904646""#,
                    true,
                ),
            ],
        );
    }

    #[test]
    fn extension_attributes_live_under_their_schema_urn() {
        let user = enterprise_user();
        expect_user(
            &user,
            &[
                (&format!(r#"{ENTERPRISE}:employeeNumber eq "701984""#), true),
                (
                    &format!(r#"{ENTERPRISE}:employeeNumber eq "701985""#),
                    false,
                ),
                (
                    &format!(r#"{ENTERPRISE}:department eq "tour operations""#),
                    true,
                ),
                (
                    &format!(
                        r#"{ENTERPRISE}:manager.value eq "26118915-6090-4610-87e4-49d8ca9f808d""#
                    ),
                    true,
                ),
                (
                    &format!(r#"{ENTERPRISE}:manager.displayName sw "john""#),
                    true,
                ),
                (&format!(r#"{ENTERPRISE}:manager pr"#), true),
                // A complex attribute compared as a whole compares its `value`.
                (
                    &format!(r#"{ENTERPRISE}:manager eq "26118915-6090-4610-87e4-49d8ca9f808d""#),
                    true,
                ),
                (
                    &format!(r#"{ENTERPRISE}:costCenter pr and userName eq "bjensen@example.com""#),
                    true,
                ),
                // Unqualified extension attributes resolve leniently.
                (r#"employeeNumber eq "701984""#, true),
                (r#"manager.displayName eq "John Smith""#, true),
                // Numeric literal against the string employeeNumber.
                ("employeeNumber eq 701984", true),
                // The core attribute of the same name is not the extension's.
                (&format!(r#"{ENTERPRISE}:userName pr"#), false),
            ],
        );
        // Extension attributes are not top-level attributes.
        let flat = json!({"employeeNumber": "1"});
        assert!(!user_matches(
            &format!(r#"{ENTERPRISE}:employeeNumber eq "1""#),
            &flat
        ));
        // ...but an unqualified name falls back to the top level.
        assert!(user_matches(r#"employeeNumber eq "1""#, &flat));
    }

    #[test]
    fn attribute_names_and_schema_keys_match_case_insensitively() {
        let doc = json!({
            "UserName": "Alice",
            "NAME": {"GivenName": "Alice"},
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:user": {"EmployeeNumber": "9"}
        });
        expect_user(
            &doc,
            &[
                (r#"userName eq "alice""#, true),
                (r#"USERNAME eq "alice""#, true),
                (r#"name.givenName eq "alice""#, true),
                (r#"Name.GIVENNAME eq "alice""#, true),
                (&format!(r#"{ENTERPRISE}:employeeNumber eq "9""#), true),
                (r#"employeeNumber eq "9""#, true),
            ],
        );
    }

    #[test]
    fn unknown_attributes_compare_by_json_type_case_insensitively() {
        let doc = json!({
            "nonstandard": "MiXeD",
            "urn:acme:params:scim:schemas:extension:2.0:User": {
                "costCode": "AB-1",
                "level": 7,
                "remote": true,
                "tags": ["Red", "Blue"],
                "badge": {"value": "B-7", "issued": "2020-01-01T00:00:00Z"}
            }
        });
        let acme = "urn:acme:params:scim:schemas:extension:2.0:User";
        expect_user(
            &doc,
            &[
                (r#"nonstandard eq "mixed""#, true),
                (r#"nonstandard sw "MIX""#, true),
                (&format!(r#"{acme}:costCode eq "ab-1""#), true),
                (&format!(r#"{acme}:costCode pr"#), true),
                (&format!("{acme}:level gt 5"), true),
                (&format!("{acme}:level eq 7"), true),
                (&format!("{acme}:remote eq true"), true),
                (&format!(r#"{acme}:tags eq "blue""#), true),
                (&format!(r#"{acme}:tags eq "green""#), false),
                (&format!(r#"{acme}:badge eq "b-7""#), true),
                (&format!(r#"{acme}:badge.issued pr"#), true),
                // Not a dateTime by schema, so it compares as a string.
                (&format!(r#"{acme}:badge.issued gt "2019""#), true),
                (&format!(r#"{acme}:badge[value sw "B"]"#), true),
                (r#"costCode eq "AB-1""#, false),
            ],
        );
    }

    #[test]
    fn matches_element_uses_the_parent_attribute_definition() {
        let user = ResourceSchema::user();
        let work = json!({"type": "work", "value": "BJensen@Example.com", "primary": true});
        let f = parse(r#"type eq "WORK" and value eq "bjensen@example.com""#).expect("parses");
        assert!(matches_element(&f, &work, user, &AttrPath::new("emails")));
        let f = parse(r#"type eq "home""#).expect("parses");
        assert!(!matches_element(&f, &work, user, &AttrPath::new("emails")));

        // x509Certificates.value is binary, compared exactly; emails.value is not.
        let cert = json!({"value": "MIIDQzCCAqygAwIBAgICEAAwDQYJKoZIhvcNAQEFBQAwTjEL"});
        let f = parse(r#"value eq "miidqzccaqygawibagiceaawdqyjkozihvcnaqefbqawtjel""#)
            .expect("parses");
        assert!(!matches_element(
            &f,
            &cert,
            user,
            &AttrPath::new("x509Certificates")
        ));
        assert!(matches_element(&f, &cert, user, &AttrPath::new("emails")));

        // Group members, as the PATCH engine filters them.
        let member = json!({"value": "2819c223-7f76-453a-919d-413861904646", "display": "Babs"});
        let f = parse(r#"value eq "2819c223-7f76-453a-919d-413861904646""#).expect("parses");
        assert!(matches_element(
            &f,
            &member,
            ResourceSchema::group(),
            &AttrPath::new("members")
        ));
        let upper = parse(r#"display eq "BABS" and value pr"#).expect("parses");
        assert!(matches_element(
            &upper,
            &member,
            ResourceSchema::group(),
            &AttrPath::new("members")
        ));

        // Elements of a multi-valued simple attribute are their own `value`.
        let f = parse(r#"value eq "urn:ietf:params:scim:schemas:core:2.0:user""#).expect("parses");
        assert!(matches_element(
            &f,
            &json!("urn:ietf:params:scim:schemas:core:2.0:User"),
            user,
            &AttrPath::new("schemas")
        ));
    }

    // ---------------------------------------------------------------------------
    // Entra ID provisioning filters

    #[test]
    fn entra_user_lookups() {
        let user = json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "id": "9b1deb4d-3b7d-4bad-9bdd-2b0d7b3dcb6d",
            "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
            "userName": "Test_User_dfeef4c5-5681-4387-b016-bdf221e82081",
            "active": "True"
        });
        expect_user(
            &user,
            &[
                (
                    r#"userName eq "Test_User_dfeef4c5-5681-4387-b016-bdf221e82081""#,
                    true,
                ),
                (
                    r#"userName eq "test_user_DFEEF4C5-5681-4387-b016-bdf221e82081""#,
                    true,
                ),
                (
                    r#"userName eq "Test_User_00000000-5681-4387-b016-bdf221e82081""#,
                    false,
                ),
                (
                    r#"externalId eq "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef""#,
                    true,
                ),
                (
                    r#"externalId eq "0A21F0F2-8D2A-4F8E-BF98-7363C4AED4EF""#,
                    false,
                ),
            ],
        );
    }

    #[test]
    fn entra_group_lookups() {
        let group = json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "id": "x",
            "displayName": "Group1",
            "members": [
                {"value": "y", "display": "User Y"},
                {"value": "z"}
            ]
        });
        assert!(group_matches(r#"displayName eq "Group1""#, &group));
        assert!(group_matches(r#"displayName eq "group1""#, &group));
        assert!(!group_matches(r#"displayName eq "Group2""#, &group));
        assert!(group_matches(
            r#"id eq "x" and members[value eq "y"]"#,
            &group
        ));
        assert!(group_matches(
            r#"id eq "x" and members[value eq "z"]"#,
            &group
        ));
        assert!(!group_matches(
            r#"id eq "x" and members[value eq "w"]"#,
            &group
        ));
        assert!(!group_matches(
            r#"id eq "X" and members[value eq "y"]"#,
            &group
        ));
        assert!(!group_matches(
            r#"id eq "x" and members[value eq "y" and display eq "nope"]"#,
            &group
        ));
        let empty = json!({"id": "x", "displayName": "Group1"});
        assert!(!group_matches(
            r#"id eq "x" and members[value eq "y"]"#,
            &empty
        ));
    }
}

/// `check`: what must fail with invalidFilter before evaluation.
mod filter_check {
    use super::*;

    // ---------------------------------------------------------------------------
    // check()

    #[test]
    fn check_rejects_what_the_rfc_says_must_fail() {
        let user = ResourceSchema::user();
        for bad in [
            "active gt true",
            "active le false",
            r#"x509Certificates.value lt "MII""#,
            // A complex attribute compared as a whole compares its binary value.
            r#"x509Certificates ge "MII""#,
            "emails[primary ge true]",
            r#"userName[value eq "x"]"#,
            "title[x pr]",
            "active[value eq true]",
            "emails.primary gt false",
        ] {
            let f = parse(bad).expect("parses");
            assert!(
                matches!(check(&f, user), Err(Error::InvalidFilter { .. })),
                "{bad} should be rejected"
            );
        }
        // Nested value paths cannot come from the parser, but an AST built by
        // hand is checked too.
        let nested = Filter::ValuePath {
            path: AttrPath::new("emails"),
            filter: Box::new(Filter::ValuePath {
                path: AttrPath::new("ims"),
                filter: Box::new(Filter::Present(AttrPath::new("value"))),
            }),
        };
        assert!(check(&nested, user).is_err());
    }

    #[test]
    fn check_accepts_valid_and_unknown() {
        let user = ResourceSchema::user();
        for good in [
            r#"userName gt "a""#,
            r#"meta.lastModified gt "2011-05-13T04:42:34Z""#,
            "active eq true",
            "not (active ne false)",
            r#"emails[type eq "work" and primary eq true]"#,
            r#"name[givenName sw "B"]"#,
            "urn:acme:params:scim:2.0:User:flag gt true",
            "customThing[x gt true]",
            r#"emails.value gt "a""#,
            r#"title pr or userType eq "Intern""#,
            r#"userType eq "Employee" and emails[type eq "work" and value co "@example.com"]"#,
            r#"emails[type eq "work" and value co "@example.com"] or ims[type eq "xmpp" and value co "@foo.com"]"#,
        ] {
            let f = parse(good).expect("parses");
            assert_eq!(check(&f, user), Ok(()), "{good}");
        }
        let group = ResourceSchema::group();
        let f = parse(r#"id eq "x" and members[value eq "y"]"#).expect("parses");
        assert_eq!(check(&f, group), Ok(()));
        let f = parse(r#"displayName[value eq "y"]"#).expect("parses");
        assert!(check(&f, group).is_err());
    }

    #[test]
    fn check_error_names_the_attribute() {
        let f = parse("active gt true").expect("parses");
        let Err(Error::InvalidFilter { message, .. }) = check(&f, ResourceSchema::user()) else {
            panic!("expected invalidFilter");
        };
        assert!(
            message.contains("'active'") && message.contains("boolean"),
            "{message}"
        );
    }
}

/// Property tests: printer/parser round trips, and no panics on any input.
mod filter_properties {
    use super::*;

    // ---------------------------------------------------------------------------
    // Property tests

    const URNS: [&str; 4] = [
        "urn:ietf:params:scim:schemas:core:2.0:User",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
        "urn:ietf:params:scim:schemas:core:2.0:Group",
        "URN:acme:custom:1.0",
    ];

    fn attr_name() -> impl Strategy<Value = String> {
        prop_oneof![
            3 => "[a-zA-Z][a-zA-Z0-9_-]{0,7}",
            1 => prop::sample::select(vec![
                "userName", "emails", "$ref", "not", "and", "or", "pr", "eq", "true", "null", "urn",
            ])
            .prop_map(str::to_owned),
        ]
    }

    fn urn() -> impl Strategy<Value = String> {
        prop_oneof![
            2 => prop::sample::select(URNS.to_vec()).prop_map(str::to_owned),
            1 => "urn:[a-z]{1,5}(:[a-zA-Z0-9.-]{1,6}){0,3}",
        ]
    }

    fn attr_path() -> impl Strategy<Value = AttrPath> {
        (
            prop::option::weighted(0.3, urn()),
            attr_name(),
            prop::option::weighted(0.3, attr_name()),
        )
            .prop_map(|(urn, name, sub)| AttrPath { urn, name, sub })
    }

    fn comp_value() -> impl Strategy<Value = CompValue> {
        prop_oneof![
            any::<String>().prop_map(CompValue::String),
            "[\"\\\\a-z\u{0}-\u{1f} é😀\u{2028}\u{7f}]{0,12}".prop_map(CompValue::String),
            any::<u64>().prop_map(|n| CompValue::Number(n.into())),
            any::<i64>().prop_map(|n| CompValue::Number(n.into())),
            any::<f64>()
                .prop_filter_map("finite", serde_json::Number::from_f64)
                .prop_map(CompValue::Number),
            any::<bool>().prop_map(CompValue::Boolean),
            Just(CompValue::Null),
        ]
    }

    fn compare_op() -> impl Strategy<Value = CompareOp> {
        prop::sample::select(vec![
            CompareOp::Eq,
            CompareOp::Ne,
            CompareOp::Co,
            CompareOp::Sw,
            CompareOp::Ew,
            CompareOp::Gt,
            CompareOp::Ge,
            CompareOp::Lt,
            CompareOp::Le,
        ])
    }

    /// Comparisons and presence tests over paths from `path`.
    fn term(path: BoxedStrategy<AttrPath>) -> impl Strategy<Value = Filter> {
        prop_oneof![
            3 => (path.clone(), compare_op(), comp_value())
                .prop_map(|(path, op, value)| Filter::Compare { path, op, value }),
            1 => path.prop_map(Filter::Present),
        ]
    }

    /// Logical combinations of `leaf`.
    fn logic(leaf: BoxedStrategy<Filter>) -> impl Strategy<Value = Filter> {
        leaf.prop_recursive(4, 24, 2, |inner| {
            prop_oneof![
                (inner.clone(), inner.clone())
                    .prop_map(|(a, b)| Filter::And(Box::new(a), Box::new(b))),
                (inner.clone(), inner.clone())
                    .prop_map(|(a, b)| Filter::Or(Box::new(a), Box::new(b))),
                inner.prop_map(|a| Filter::Not(Box::new(a))),
            ]
        })
    }

    /// Every AST shape the parser can produce: value filters only at the
    /// resource level, over plain sub-attribute names.
    fn filter_ast() -> impl Strategy<Value = Filter> {
        let element_path = attr_name().prop_map(AttrPath::new).boxed();
        let element_filter = logic(term(element_path).boxed()).boxed();
        let value_path = (
            (prop::option::weighted(0.3, urn()), attr_name()).prop_map(|(urn, name)| AttrPath {
                urn,
                name,
                sub: None,
            }),
            element_filter,
        )
            .prop_map(|(path, f)| Filter::ValuePath {
                path,
                filter: Box::new(f),
            });
        let leaf = prop_oneof![3 => term(attr_path().boxed()), 1 => value_path].boxed();
        logic(leaf)
    }

    /// Budgets roomy enough for any generated AST; the round trip under the
    /// default limits is asserted whenever the printed form fits them.
    const ROOMY: Limits = Limits {
        max_len: 1 << 20,
        max_depth: 64,
        max_terms: 4096,
    };

    /// Input drawn from the filter alphabet, to get past the first token.
    fn filterish() -> impl Strategy<Value = String> {
        let tokens = prop::sample::select(vec![
            " ", "(", ")", "[", "]", "\"", "\\", ".", ":", "a", "x", "eq", "pr", "gt", " and ",
            " or ", "not ", "not(", "true", "null", "1", "-", "e", "0.5", "\"v\"", "emails",
            "urn:a:b:", "$ref", "\\u00e9", "\\ud83d", "é", "😀", "\t", "]. ",
        ]);
        prop::collection::vec(tokens, 0..40).prop_map(|parts| parts.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn printed_filters_parse_back_to_the_same_ast(ast in filter_ast()) {
            let text = ast.to_string();
            prop_assert_eq!(parse_with(&text, &ROOMY), Ok(ast.clone()), "printed: {}", text);
            if text.len() <= Limits::default().max_len {
                prop_assert_eq!(parse(&text), Ok(ast), "printed: {}", text);
            }
        }

        #[test]
        fn printed_patch_paths_parse_back(
            attr in (prop::option::weighted(0.3, urn()), attr_name())
                .prop_map(|(urn, name)| AttrPath { urn, name, sub: None }),
            f in logic(term(attr_name().prop_map(AttrPath::new).boxed()).boxed()),
            sub in prop::option::of(attr_name()),
        ) {
            let path = filter::PatchPath { attr, filter: Some(f), sub };
            let text = path.to_string();
            prop_assert_eq!(parse_path(&text), Ok(path), "printed: {}", text);
        }

        #[test]
        fn parse_never_panics_on_arbitrary_text(input in any::<String>()) {
            let _ = parse(&input);
            let _ = parse_path(&input);
        }

        #[test]
        fn parse_never_panics_on_random_bytes(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
            let input = String::from_utf8_lossy(&bytes);
            let _ = parse(&input);
            let _ = parse_path(&input);
        }

        #[test]
        fn whatever_parses_prints_back_and_evaluates_without_panicking(input in filterish()) {
            if let Ok(f) = parse(&input) {
                prop_assert_eq!(parse_with(&f.to_string(), &ROOMY), Ok(f.clone()), "input: {}", input);
                let doc = json!({"a": "x", "x": [1, "v", null, {"value": "e"}], "emails": [{"a": true}]});
                let _ = matches(&f, &doc, ResourceSchema::user());
                let _ = check(&f, ResourceSchema::user());
            }
            if let Ok(p) = parse_path(&input) {
                prop_assert_eq!(parse_path(&p.to_string()), Ok(p), "input: {}", input);
            }
        }
    }
}
