//! Fuzzes the filter parser, printer and evaluator, and the PATCH path parser.
//!
//! Beyond "never panics", it checks the printer's contract: whatever parses
//! prints to a string that parses back to the same AST.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use scim::ResourceSchema;
use scim::filter;
use serde_json::Value;

static USER: LazyLock<Value> = LazyLock::new(|| {
    serde_json::from_str(include_str!("../../crates/scim/tests/fixtures/fuzz_user.json"))
        .expect("fixture is valid JSON")
});

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(f) = filter::parse(input) {
        let printed = f.to_string();
        // The canonical form can be a few bytes longer than the input (`1e2`
        // prints as `100.0`), so only the length budget is lifted here.
        let limits = filter::Limits {
            max_len: usize::MAX,
            ..filter::Limits::default()
        };
        let reparsed = filter::parse_with(&printed, &limits).expect("a printed filter parses");
        assert_eq!(f, reparsed, "print/parse round trip changed the AST: {printed}");
        let _ = filter::check(&f, ResourceSchema::user());
        let _ = filter::matches(&f, &USER, ResourceSchema::user());
        let _ = filter::matches(&f, &USER, ResourceSchema::group());
    }
    if let Ok(p) = filter::parse_path(input) {
        let printed = p.to_string();
        // Paths have a fixed length budget; a canonical form pushed past it
        // by normalisation (see above) is not a round-trip failure.
        if printed.len() <= filter::Limits::default().max_len {
            let reparsed = filter::parse_path(&printed).expect("a printed path parses");
            assert_eq!(p, reparsed, "path round trip changed: {printed}");
        }
    }
});
