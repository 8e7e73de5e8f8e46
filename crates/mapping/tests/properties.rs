//! Any mapping that checks out, applied to any document (as an IdP might
//! leave it: wrong types, odd keys, nesting), never panics, and leaves
//! scimgate's own attributes alone: `id` and `meta` as they were, `schemas`
//! led by the core schema.

use mapping::{Mapping, MappingSpec, PartSpec, RuleSpec, Side, SideSpec, Transform};
use proptest::prelude::*;
use serde_json::{Value, json};

const ENT: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const CUSTOM: &str = "urn:ietf:params:scim:schemas:extension:Custom:2.0:User";

fn arb_doc() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i32>().prop_map(|n| json!(n)),
        ".{0,6}".prop_map(Value::String),
    ];
    let key = prop_oneof![
        Just("schemas".to_owned()),
        Just("id".to_owned()),
        Just("meta".to_owned()),
        Just("userName".to_owned()),
        Just("name".to_owned()),
        Just("givenName".to_owned()),
        Just("emails".to_owned()),
        Just("type".to_owned()),
        Just("value".to_owned()),
        Just("primary".to_owned()),
        Just("department".to_owned()),
        Just(ENT.to_owned()),
        Just(CUSTOM.to_owned()),
        "[a-zA-Z:.]{0,10}",
    ];
    leaf.prop_recursive(3, 32, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((key.clone(), inner), 0..7)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

fn arb_path() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("userName".to_owned()),
        Just("name.givenName".to_owned()),
        Just("emails.value".to_owned()),
        Just("emails[type eq \"work\"].value".to_owned()),
        Just("emails[primary eq true]".to_owned()),
        Just("department".to_owned()),
        Just(format!("{ENT}:department")),
        Just(format!("{ENT}:manager.value")),
        Just(format!("{CUSTOM}:badge")),
        Just(format!("{CUSTOM}:badge.sub")),
        Just("displayName".to_owned()),
        "[a-zA-Z]{1,6}",
        ".{0,8}",
    ]
}

fn arb_rule() -> impl Strategy<Value = RuleSpec> {
    let what = prop_oneof![
        arb_path().prop_map(|p| (Some(p), None, None, false)),
        arb_doc_leafish().prop_map(|v| (None, Some(v), None, false)),
        prop::collection::vec(
            prop_oneof![
                arb_path().prop_map(|source| PartSpec::Source { source }),
                ".{0,3}".prop_map(|text| PartSpec::Text { text }),
            ],
            0..4
        )
        .prop_map(|parts| (None, None, Some(parts), false)),
        Just((None, None, None, true)),
    ];
    (
        arb_path(),
        what,
        proptest::option::of(prop_oneof![Just(Transform::Lower), Just(Transform::Upper)]),
        proptest::option::of(prop::collection::btree_map(
            ".{0,4}",
            arb_doc_leafish(),
            0..3,
        )),
        proptest::option::of(arb_doc_leafish()),
    )
        .prop_map(
            |(target, (source, value, concat, remove), transform, map, default)| RuleSpec {
                target,
                source,
                value,
                concat,
                remove,
                transform,
                map,
                default,
            },
        )
}

fn arb_doc_leafish() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        ".{0,6}".prop_map(Value::String),
        Just(json!({"value": "x"})),
        Just(json!([{"value": "y"}])),
    ]
}

proptest! {
    #[test]
    fn checked_mappings_apply_to_anything_without_harm(
        keep in any::<bool>(),
        rules in prop::collection::vec(arb_rule(), 0..6),
        doc in arb_doc(),
        raw in any::<bool>(),
    ) {
        let side = SideSpec { keep_unmapped: keep, attributes: rules };
        let spec = MappingSpec { users: Some(side.clone()), groups: Some(side), raw };
        let Ok(mapping) = Mapping::parse(&spec) else { return Ok(()) };
        for which in [Side::Users, Side::Groups] {
            let out = mapping.apply(which, &doc);
            let Some(input) = doc.as_object() else {
                prop_assert_eq!(&out, &doc, "a non-object passes through");
                continue;
            };
            let o = out.as_object().expect("an object stays an object");
            prop_assert_eq!(o.get("id"), input.get("id"));
            prop_assert_eq!(o.get("meta"), input.get("meta"));
            let schemas = o.get("schemas").and_then(Value::as_array).expect("schemas");
            prop_assert!(schemas[0].as_str().is_some_and(|s| s.starts_with("urn:ietf:params:scim:schemas:core:2.0:")));
            // The stored form of a checked mapping reads back to one that
            // does the same.
            let text = serde_json::to_value(&spec).expect("serializes");
            let back = Mapping::parse(&MappingSpec::from_json(&text).expect("reads back"))
                .expect("still checks out");
            prop_assert_eq!(back.apply(which, &doc), out);
        }
    }
}
