//! Unit tests for the PATCH internals; behaviour end to end is tested in
//! `tests/patch.rs` and `tests/patch_entra.rs`.

use serde_json::{Map, Value, json};

use super::doc::{equivalent, get_mut_ci, is_unassigned, put, remove_ci, settle_primary};
use super::members::key_path;
use super::request::parse_path;
use super::*;
use crate::filter;
use crate::schemas::{ENTERPRISE_USER, PATCH_OP};
use crate::{Error, ResourceSchema};

fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(o) => o,
        _ => panic!("not an object"),
    }
}

#[test]
fn canonical_access_renames_a_key_in_place() {
    let mut m = object(json!({"a": 1, "DISPLAYNAME": "x", "z": 2}));
    assert_eq!(
        get_mut_ci(&mut m, "displayName", false),
        Some(&mut json!("x"))
    );
    assert!(m.contains_key("DISPLAYNAME"));
    put(&mut m, "displayName", json!("y"), true);
    let keys: Vec<&str> = m.keys().map(String::as_str).collect();
    assert_eq!(keys, ["a", "displayName", "z"]);
    assert_eq!(remove_ci(&mut m, "DisplayName"), Some(json!("y")));
    assert_eq!(remove_ci(&mut m, "displayName"), None);
}

#[test]
fn null_empty_list_and_absent_are_one_state() {
    assert!(is_unassigned(None));
    assert!(is_unassigned(Some(&json!(null))));
    assert!(is_unassigned(Some(&json!([]))));
    assert!(is_unassigned(Some(&json!({}))));
    assert!(!is_unassigned(Some(&json!(""))));
    assert!(!is_unassigned(Some(&json!(false))));
    assert!(equivalent(None, Some(&json!([]))));
    assert!(!equivalent(Some(&json!("a")), Some(&json!("b"))));
}

#[test]
fn settle_primary_only_demotes_values_that_claimed_primary() {
    let mut items = vec![
        json!({"value": "a", "primary": true}),
        json!({"value": "b"}),
        json!({"value": "c", "primary": true}),
    ];
    settle_primary(&mut items, &[2]).expect("one winner");
    assert_eq!(
        items,
        [
            json!({"value": "a", "primary": false}),
            json!({"value": "b"}),
            json!({"value": "c", "primary": true}),
        ]
    );
    let mut two = vec![json!({"primary": true}), json!({"primary": true})];
    assert!(matches!(
        settle_primary(&mut two, &[0, 1]),
        Err(Error::InvalidValue(_))
    ));
}

#[test]
fn plain_paths_parse_as_the_filter_parser_would() {
    for p in [
        "userName",
        "name.givenName",
        "members",
        "members.$ref",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
    ] {
        assert_eq!(
            parse_path(p).expect("parses"),
            filter::parse_path(p).expect("parses"),
            "{p}"
        );
    }
    assert!(matches!(parse_path("name..x"), Err(Error::InvalidPath(_))));
    assert!(matches!(
        parse_path("emails[type eq]"),
        Err(Error::InvalidPath(_))
    ));
}

#[test]
fn value_object_keys_are_paths() {
    let k = key_path("emails[type eq \"work\"].value").expect("parses");
    assert_eq!(k.attr.name, "emails");
    assert_eq!(k.sub.as_deref(), Some("value"));
    assert!(k.filter.is_some());
    let k = key_path("displayName").expect("parses");
    assert_eq!(k.attr, crate::AttrPath::new("displayName"));
}

fn request(ops: Value) -> PatchRequest {
    PatchRequest::from_json(&json!({"schemas": [PATCH_OP], "Operations": ops})).expect("valid")
}

#[test]
fn empty_or_null_path_means_the_resource_itself() {
    let req = request(json!([
        {"op": "replace", "path": "", "value": {"title": "x"}},
        {"op": "replace", "path": null, "value": {"title": "y"}},
        {"op": "replace", "path": "title", "value": null}
    ]));
    assert!(req.operations[0].path.is_none());
    assert!(req.operations[1].path.is_none());
    assert_eq!(req.operations[2].value, Some(Value::Null));
    let e = PatchRequest::from_json(&json!({
        "schemas": [PATCH_OP],
        "Operations": [{"op": "replace", "path": 5, "value": "x"}]
    }))
    .expect_err("path must be a string");
    assert!(matches!(e, Error::InvalidPath(_)));
}

#[test]
fn an_extension_nested_in_an_extension_is_refused() {
    let doc = json!({"schemas": [crate::schemas::USER], "id": "1", "userName": "u"});
    let req = request(json!([{"op": "add", "value": {
        ENTERPRISE_USER: {ENTERPRISE_USER: {"department": "x"}}
    }}]));
    let e = apply(&doc, &req, ResourceSchema::user()).expect_err("nested");
    assert!(matches!(e, Error::InvalidValue(_)), "{e}");
}

#[test]
fn a_document_that_is_not_an_object_is_refused() {
    let req = request(json!([{"op": "replace", "path": "title", "value": "x"}]));
    assert!(apply(&json!([]), &req, ResourceSchema::user()).is_err());
}

#[test]
fn replace_null_clears_and_add_empty_list_does_nothing() {
    let doc = json!({"schemas": [crate::schemas::USER], "id": "1", "userName": "u", "title": "t",
        "emails": [{"value": "a@x.org"}]});
    let out = apply(
        &doc,
        &request(json!([
            {"op": "replace", "path": "title", "value": null},
            {"op": "add", "path": "emails", "value": []}
        ])),
        ResourceSchema::user(),
    )
    .expect("applies");
    assert_eq!(
        out.document,
        json!({"schemas": [crate::schemas::USER], "id": "1", "userName": "u",
            "emails": [{"value": "a@x.org"}]})
    );
    assert_eq!(out.changed, [crate::AttrPath::new("title")]);
}
