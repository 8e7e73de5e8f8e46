//! Criterion benchmarks for the protocol hot paths an IdP drives:
//! parsing the filters Entra sends, evaluating a filter against a user, and
//! applying a typical Entra PATCH.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use scim::ResourceSchema;
use scim::filter;
use scim::patch::{self, PatchRequest};
use serde_json::{Value, json};

/// The RFC 7643 §8.3 enterprise user: a realistic, fairly full document.
fn user() -> Value {
    serde_json::from_str(include_str!(
        "../tests/fixtures/rfc7643_8_3_enterprise_user.json"
    ))
    .expect("fixture is valid JSON")
}

fn filters(c: &mut Criterion) {
    let entra = r#"userName eq "Test_User_dfeef4c5-5681-4387-b016-bdf221e82081""#;
    let complex = r#"userType eq "Employee" and (emails[type eq "work" and value co "@example.com"] or urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "Tour Operations")"#;
    c.bench_function("filter/parse/entra_userName_eq", |b| {
        b.iter(|| filter::parse(black_box(entra)))
    });
    c.bench_function("filter/parse/complex", |b| {
        b.iter(|| filter::parse(black_box(complex)))
    });

    let doc = user();
    let schema = ResourceSchema::user();
    let by_name = filter::parse(r#"userName eq "BJENSEN@example.com""#).expect("parses");
    let by_value_path = filter::parse(complex).expect("parses");
    c.bench_function("filter/eval/userName_eq", |b| {
        b.iter(|| filter::matches(black_box(&by_name), black_box(&doc), schema))
    });
    c.bench_function("filter/eval/complex", |b| {
        b.iter(|| filter::matches(black_box(&by_value_path), black_box(&doc), schema))
    });
}

fn patches(c: &mut Criterion) {
    let doc = user();
    let schema = ResourceSchema::user();
    // The shape Entra sends for an attribute update cycle: one op per attribute.
    let body = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [
            {"op": "Replace", "path": "active", "value": "False"},
            {"op": "Replace", "path": "name.givenName", "value": "Barbara"},
            {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "babs@example.com"}
        ]
    });
    c.bench_function("patch/parse/entra_3_ops", |b| {
        b.iter(|| PatchRequest::from_json(black_box(&body)))
    });
    let req = PatchRequest::from_json(&body).expect("valid request");
    c.bench_function("patch/apply/entra_3_ops", |b| {
        b.iter(|| patch::apply(black_box(&doc), black_box(&req), schema))
    });
    // The gateway's path: it owns the document it just read from the
    // store, so the engine never copies it (the clone here is setup, untimed).
    c.bench_function("patch/apply_owned/entra_3_ops", |b| {
        b.iter_batched(
            || doc.clone(),
            |d| patch::apply_owned(d, black_box(&req), schema),
            BatchSize::SmallInput,
        )
    });
    c.bench_function("patch/parse_and_apply_owned/entra_3_ops", |b| {
        b.iter_batched(
            || doc.clone(),
            |d| {
                let req = PatchRequest::from_json(black_box(&body))?;
                patch::apply_owned(d, &req, schema)
            },
            BatchSize::SmallInput,
        )
    });
}

criterion_group!(benches, filters, patches);
criterion_main!(benches);
