//! Parser and printer unit tests. Evaluation against documents, the Entra
//! filters and the property tests are in `tests/filter.rs`.

use super::*;
use crate::error::Error;
use crate::path::AttrPath;

fn cmp(path: &str, op: CompareOp, value: CompValue) -> Filter {
    Filter::Compare {
        path: AttrPath::parse(path).unwrap(),
        op,
        value,
    }
}

fn s(v: &str) -> CompValue {
    CompValue::String(v.into())
}

fn pr(path: &str) -> Filter {
    Filter::Present(AttrPath::parse(path).unwrap())
}

fn and(a: Filter, b: Filter) -> Filter {
    Filter::And(Box::new(a), Box::new(b))
}

fn or(a: Filter, b: Filter) -> Filter {
    Filter::Or(Box::new(a), Box::new(b))
}

fn not(a: Filter) -> Filter {
    Filter::Not(Box::new(a))
}

fn vp(path: &str, inner: Filter) -> Filter {
    Filter::ValuePath {
        path: AttrPath::parse(path).unwrap(),
        filter: Box::new(inner),
    }
}

/// Parses, checks the canonical form reads back to the same AST, returns it.
fn parsed(input: &str) -> Filter {
    let f = parse(input).unwrap_or_else(|e| panic!("{input:?} should parse: {e}"));
    let printed = f.to_string();
    assert_eq!(
        parse(&printed).as_ref(),
        Ok(&f),
        "{input:?} printed as {printed:?}"
    );
    f
}

/// Asserts `input` fails with invalidFilter at `offset` with a message
/// containing `fragment`.
fn fails(input: &str, offset: usize, fragment: &str) {
    match parse(input) {
        Err(Error::InvalidFilter {
            offset: at,
            message,
        }) => {
            assert_eq!(at, offset, "{input:?}: wrong offset for {message:?}");
            assert!(
                message.contains(fragment),
                "{input:?}: {message:?} should mention {fragment:?}"
            );
        }
        other => panic!("{input:?} should fail with invalidFilter, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// RFC 7644 §3.4.2.2, Figure 2 (and the two spellings above it), one snapshot
// each. The filter text is in the snapshot's expression line.

macro_rules! rfc_example {
    ($name:ident, $filter:expr) => {
        #[test]
        fn $name() {
            insta::assert_debug_snapshot!(parsed($filter));
        }
    };
}

rfc_example!(rfc_username_eq_mixed_case_op, r#"userName Eq "john""#);
rfc_example!(rfc_username_eq_mixed_case_name, r#"Username eq "john""#);
rfc_example!(rfc_eq, r#"userName eq "bjensen""#);
rfc_example!(rfc_co_sub_attribute, r#"name.familyName co "O'Malley""#);
rfc_example!(rfc_sw, r#"userName sw "J""#);
rfc_example!(
    rfc_sw_urn_qualified,
    r#"urn:ietf:params:scim:schemas:core:2.0:User:userName sw "J""#
);
rfc_example!(rfc_pr, "title pr");
rfc_example!(
    rfc_gt_datetime,
    r#"meta.lastModified gt "2011-05-13T04:42:34Z""#
);
rfc_example!(
    rfc_ge_datetime,
    r#"meta.lastModified ge "2011-05-13T04:42:34Z""#
);
rfc_example!(
    rfc_lt_datetime,
    r#"meta.lastModified lt "2011-05-13T04:42:34Z""#
);
rfc_example!(
    rfc_le_datetime,
    r#"meta.lastModified le "2011-05-13T04:42:34Z""#
);
rfc_example!(rfc_pr_and_eq, r#"title pr and userType eq "Employee""#);
rfc_example!(rfc_pr_or_eq, r#"title pr or userType eq "Intern""#);
rfc_example!(
    rfc_schemas_eq,
    r#"schemas eq "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User""#
);
rfc_example!(
    rfc_and_grouped_or,
    r#"userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")"#
);
rfc_example!(
    rfc_and_not_grouped_or,
    r#"userType ne "Employee" and not (emails co "example.com" or emails.value co "example.org")"#
);
rfc_example!(
    rfc_and_grouped_single,
    r#"userType eq "Employee" and (emails.type eq "work")"#
);
rfc_example!(
    rfc_and_value_path,
    r#"userType eq "Employee" and emails[type eq "work" and value co "@example.com"]"#
);
rfc_example!(
    rfc_value_path_or_value_path,
    r#"emails[type eq "work" and value co "@example.com"] or ims[type eq "xmpp" and value co "@foo.com"]"#
);

#[test]
fn rfc_examples_wrapped_over_lines_parse_like_one_line() {
    // The RFC folds long examples; a newline is just whitespace.
    let folded =
        "userType eq \"Employee\" and emails[type eq \"work\" and\n  value co \"@example.com\"]";
    assert_eq!(
        parsed(folded),
        parsed(r#"userType eq "Employee" and emails[type eq "work" and value co "@example.com"]"#)
    );
}

// ---------------------------------------------------------------------------
// Operators, precedence, grouping

#[test]
fn every_compare_operator_parses() {
    for (word, op) in [
        ("eq", CompareOp::Eq),
        ("ne", CompareOp::Ne),
        ("co", CompareOp::Co),
        ("sw", CompareOp::Sw),
        ("ew", CompareOp::Ew),
        ("gt", CompareOp::Gt),
        ("ge", CompareOp::Ge),
        ("lt", CompareOp::Lt),
        ("le", CompareOp::Le),
    ] {
        let input = format!("title {word} \"x\"");
        assert_eq!(parsed(&input), cmp("title", op, s("x")), "{input}");
        let upper = format!("title {} \"x\"", word.to_uppercase());
        assert_eq!(parsed(&upper), cmp("title", op, s("x")), "{upper}");
        assert_eq!(op.to_string(), word);
    }
}

#[test]
fn not_binds_tighter_than_and_which_binds_tighter_than_or() {
    assert_eq!(
        parsed("a pr or b pr and c pr"),
        or(pr("a"), and(pr("b"), pr("c")))
    );
    assert_eq!(
        parsed("a pr and b pr or c pr"),
        or(and(pr("a"), pr("b")), pr("c"))
    );
    assert_eq!(
        parsed("not (a pr) and b pr or c pr"),
        or(and(not(pr("a")), pr("b")), pr("c"))
    );
    assert_eq!(
        parsed("a pr or not (b pr or c pr) and d pr"),
        or(pr("a"), and(not(or(pr("b"), pr("c"))), pr("d")))
    );
}

#[test]
fn and_and_or_associate_to_the_left() {
    assert_eq!(
        parsed("a pr and b pr and c pr"),
        and(and(pr("a"), pr("b")), pr("c"))
    );
    assert_eq!(
        parsed("a pr or b pr or c pr"),
        or(or(pr("a"), pr("b")), pr("c"))
    );
}

#[test]
fn parentheses_override_precedence_and_redundant_ones_vanish() {
    assert_eq!(
        parsed("(a pr or b pr) and c pr"),
        and(or(pr("a"), pr("b")), pr("c"))
    );
    assert_eq!(
        parsed("a pr and (b pr and c pr)"),
        and(pr("a"), and(pr("b"), pr("c")))
    );
    assert_eq!(parsed("((((a pr))))"), pr("a"));
    assert_eq!(parsed("not(a pr)"), not(pr("a")));
    assert_eq!(parsed("not ((a pr))"), not(pr("a")));
}

#[test]
fn keywords_and_literals_are_case_insensitive() {
    assert_eq!(
        parsed("NOT (a PR) AND b Eq TRUE Or c eq NULL oR d eq False"),
        or(
            or(
                and(
                    not(pr("a")),
                    cmp("b", CompareOp::Eq, CompValue::Boolean(true))
                ),
                cmp("c", CompareOp::Eq, CompValue::Null)
            ),
            cmp("d", CompareOp::Eq, CompValue::Boolean(false))
        )
    );
}

#[test]
fn whitespace_is_flexible() {
    assert_eq!(
        parsed("  userName \t eq\n\"x\"   and  (  title  pr  )  "),
        and(cmp("userName", CompareOp::Eq, s("x")), pr("title"))
    );
    // Where token boundaries are unambiguous, whitespace may be missing.
    assert_eq!(
        parsed(r#"userName eq"x"and(title pr)"#),
        and(cmp("userName", CompareOp::Eq, s("x")), pr("title"))
    );
}

#[test]
fn words_that_are_keywords_elsewhere_can_be_attribute_names() {
    assert_eq!(parsed("not pr"), pr("not"));
    assert_eq!(parsed("and pr and or pr"), and(pr("and"), pr("or")));
    assert_eq!(
        parsed(r#"order eq "x""#),
        cmp("order", CompareOp::Eq, s("x"))
    );
    assert_eq!(parsed("a pr or orx pr"), or(pr("a"), pr("orx")));
}

// ---------------------------------------------------------------------------
// Paths

#[test]
fn urn_qualified_paths_split_at_the_last_colon() {
    let f = parsed(
        r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "x""#,
    );
    let Filter::Compare { path, .. } = f else {
        panic!("expected a comparison");
    };
    assert_eq!(
        path.urn.as_deref(),
        Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User")
    );
    assert_eq!(path.name, "manager");
    assert_eq!(path.sub.as_deref(), Some("value"));

    assert_eq!(
        parsed(r#"urn:ietf:params:scim:schemas:core:2.0:User:emails[type eq "work"]"#),
        vp(
            "urn:ietf:params:scim:schemas:core:2.0:User:emails",
            cmp("type", CompareOp::Eq, s("work"))
        )
    );
}

#[test]
fn ref_sub_attribute_parses() {
    assert_eq!(
        parsed(r#"members.$ref eq "https://example.com/v2/Users/1""#),
        cmp(
            "members.$ref",
            CompareOp::Eq,
            s("https://example.com/v2/Users/1")
        )
    );
}

#[test]
fn value_path_filters_combine_and_group() {
    assert_eq!(
        parsed(r#"emails[type eq "work" or (type eq "home" and value ew "@example.com")]"#),
        vp(
            "emails",
            or(
                cmp("type", CompareOp::Eq, s("work")),
                and(
                    cmp("type", CompareOp::Eq, s("home")),
                    cmp("value", CompareOp::Ew, s("@example.com"))
                )
            )
        )
    );
    assert_eq!(
        parsed(r#"emails[not (type eq "work")]"#),
        vp("emails", not(cmp("type", CompareOp::Eq, s("work"))))
    );
    assert_eq!(
        parsed(r#"emails [ type eq "a]b" ]"#),
        vp("emails", cmp("type", CompareOp::Eq, s("a]b")))
    );
}

#[test]
fn sub_attribute_after_value_filter_is_read_as_a_conjunction() {
    assert_eq!(
        parsed(r#"emails[type eq "work"].value eq "x""#),
        vp(
            "emails",
            and(
                cmp("type", CompareOp::Eq, s("work")),
                cmp("value", CompareOp::Eq, s("x"))
            )
        )
    );
    assert_eq!(
        parsed(r#"emails[type eq "work"].value pr"#),
        vp(
            "emails",
            and(cmp("type", CompareOp::Eq, s("work")), pr("value"))
        )
    );
    // An `or` inside keeps its meaning: printed with parentheses.
    let f = parsed(r#"emails[type eq "work" or type eq "home"].value co "x""#);
    assert_eq!(
        f.to_string(),
        r#"emails[(type eq "work" or type eq "home") and value co "x"]"#
    );
}

// ---------------------------------------------------------------------------
// Values

#[test]
fn strings_decode_every_json_escape() {
    assert_eq!(
        parsed(r#"x eq "q\" b\\ s\/ \b\f\n\r\t \u00e9 \ud83d\ude00""#),
        cmp("x", CompareOp::Eq, s("q\" b\\ s/ \u{8}\u{c}\n\r\t é 😀"))
    );
    assert_eq!(
        parsed(r#"x eq "Jöns 日本""#),
        cmp("x", CompareOp::Eq, s("Jöns 日本"))
    );
    assert_eq!(parsed(r#"x eq """#), cmp("x", CompareOp::Eq, s("")));
    assert_eq!(
        parsed(r#"x eq "(and) [or] not""#),
        cmp("x", CompareOp::Eq, s("(and) [or] not"))
    );
}

#[test]
fn numbers_keep_their_json_kind() {
    let n = |v: serde_json::Number| CompValue::Number(v);
    assert_eq!(parsed("x eq 42"), cmp("x", CompareOp::Eq, n(42u64.into())));
    assert_eq!(
        parsed("x gt -7"),
        cmp("x", CompareOp::Gt, n((-7i64).into()))
    );
    let Filter::Compare {
        value: CompValue::Number(f),
        ..
    } = parsed("x lt 2.5e3")
    else {
        panic!("expected a number");
    };
    assert_eq!(f.as_f64(), Some(2500.0));
    assert!(f.is_f64());
    // Past u64, integers become floats (as serde_json does).
    let Filter::Compare {
        value: CompValue::Number(big),
        ..
    } = parsed("x eq 18446744073709551616")
    else {
        panic!("expected a number");
    };
    assert!(big.is_f64());
}

#[test]
fn printer_is_canonical() {
    let cases = [
        (
            and(pr("a"), and(pr("b"), pr("c"))),
            "a pr and (b pr and c pr)",
        ),
        (
            and(and(pr("a"), pr("b")), pr("c")),
            "a pr and b pr and c pr",
        ),
        (
            and(or(pr("a"), pr("b")), pr("c")),
            "(a pr or b pr) and c pr",
        ),
        (
            and(pr("a"), or(pr("b"), pr("c"))),
            "a pr and (b pr or c pr)",
        ),
        (or(pr("a"), or(pr("b"), pr("c"))), "a pr or (b pr or c pr)"),
        (or(and(pr("a"), pr("b")), pr("c")), "a pr and b pr or c pr"),
        (or(pr("a"), and(pr("b"), pr("c"))), "a pr or b pr and c pr"),
        (not(or(pr("a"), pr("b"))), "not (a pr or b pr)"),
        (
            cmp("x", CompareOp::Eq, s("a\"b\\c\n\u{1}é")),
            r#"x eq "a\"b\\c\n\u0001é""#,
        ),
        (cmp("x", CompareOp::Ne, CompValue::Null), "x ne null"),
        (
            cmp("x", CompareOp::Eq, CompValue::Boolean(false)),
            "x eq false",
        ),
        (
            vp("emails", cmp("type", CompareOp::Eq, s("work"))),
            r#"emails[type eq "work"]"#,
        ),
    ];
    for (ast, text) in cases {
        assert_eq!(ast.to_string(), text);
        assert_eq!(parse(text), Ok(ast), "{text}");
    }
}

// ---------------------------------------------------------------------------
// Errors

#[test]
fn malformed_filters_report_what_was_expected_and_where() {
    fails("", 0, "empty filter");
    fails("   ", 0, "empty filter");
    fails(r#"userName eq john"#, 12, "unquoted value 'john'");
    fails(r#"userName eq "john"#, 12, "unterminated string");
    fails(r#"userName "john""#, 9, "expected compareOp");
    fails("userName", 8, "expected compareOp");
    fails(r#"userName xx "john""#, 9, "expected compareOp");
    fails("userName eq", 11, "expected a comparison value after 'eq'");
    fails("userName eq )", 12, "expected a comparison value");
    fails(r#"(userName eq "x""#, 16, "unbalanced parenthesis");
    fails(r#"userName eq "x")"#, 15, "unbalanced parenthesis");
    fails(r#"userName eq "x" title pr"#, 16, "trailing input");
    fails(r#"userName eq "x" and"#, 19, "expected a filter expression");
    fails(r#"userName eq "x" or or"#, 21, "expected compareOp");
    fails(r#"not userName eq "x""#, 4, "expected '(' after 'not'");
    fails("()", 1, "expected a filter expression");
    fails(r#"emails[type eq "work""#, 21, "unterminated value filter");
    fails(
        r#"emails[type eq "work")"#,
        21,
        "expected 'and', 'or' or ']'",
    );
    fails(r#"emails[type eq "x"] ]"#, 20, "unexpected ']'");
    fails(r#"emails[ims[type pr]]"#, 10, "cannot be nested");
    fails(r#"emails[name.givenName pr]"#, 7, "plain sub-attribute");
    fails(r#"name.givenName[x pr]"#, 14, "sub-attribute path");
    fails(
        r#"emails[type pr]. pr"#,
        16,
        "expected a sub-attribute name",
    );
    fails(r#"1abc eq "x""#, 0, "invalid attribute path");
    fails(r#"a.b.c eq "x""#, 0, "invalid attribute path");
    fails(r#"x eq 01"#, 5, "invalid number '01'");
    fails(r#"x eq 1."#, 5, "invalid number");
    fails(r#"x eq 12abc"#, 5, "invalid number");
    fails(r#"x eq 1e400"#, 5, "out of range");
    fails(r#"x eq "\x""#, 6, "invalid string");
    fails(r#"x eq "ab\ud800""#, 8, "invalid string");
    fails("x eq \"a\u{1}b\"", 7, "invalid string");
    fails(r#"x eq truex"#, 5, "unquoted value");
}

#[test]
fn multibyte_input_never_splits_a_character() {
    fails(r#"ü eq "x""#, 0, "invalid attribute path");
    fails(r#"x eq "é"#, 5, "unterminated string");
    fails("x eq \"\\é\"", 6, "invalid string");
    fails("x eq \"\\é", 5, "unterminated string");
    fails("x eq ü", 5, "unquoted value 'ü'");
    fails("x pr ü", 5, "found 'ü'");
    fails("x ü", 2, "found 'ü'");
    fails("(x pr ü", 6, "found 'ü'");
}

#[test]
fn limits_are_enforced_and_named() {
    let short = Limits {
        max_len: 20,
        ..Limits::default()
    };
    let long = r#"userName eq "abcdefghij""#;
    match parse_with(long, &short) {
        Err(Error::InvalidFilter {
            offset: 20,
            message,
        }) => {
            assert!(message.contains("maximum length of 20"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    assert!(parse_with(&long[..20], &short).is_err_and(|e| !e.to_string().contains("length")));
    let limits = Limits {
        max_depth: 2,
        max_terms: 3,
        ..Limits::default()
    };
    assert!(parse_with("((a pr))", &limits).is_ok());
    match parse_with("(((a pr)))", &limits) {
        Err(Error::InvalidFilter { offset: 2, message }) => {
            assert!(message.contains("maximum depth of 2"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    // `not (` and value paths count as nesting too.
    assert!(parse_with("not (not (a pr))", &limits).is_ok());
    assert!(parse_with("not (not (not (a pr)))", &limits).is_err());
    assert!(parse_with("(e[a pr])", &limits).is_ok());
    assert!(parse_with("((e[a pr]))", &limits).is_err());
    assert!(parse_with("a pr or b pr or c pr", &limits).is_ok());
    match parse_with("a pr or b pr or c pr or d", &limits) {
        Err(Error::InvalidFilter {
            offset: 24,
            message,
        }) => {
            assert!(message.contains("maximum of 3 comparisons"), "{message}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn default_limits_allow_sixteen_levels_and_sixty_four_terms() {
    let nested = |n: usize| format!("{}a pr{}", "(".repeat(n), ")".repeat(n));
    assert!(parse(&nested(16)).is_ok());
    assert!(parse(&nested(17)).is_err());
    let terms = |n: usize| vec!["a pr"; n].join(" or ");
    assert!(parse(&terms(64)).is_ok());
    assert!(parse(&terms(65)).is_err());
}

#[test]
fn the_printed_form_of_a_lenient_filter_stays_within_the_depth_limit() {
    let limits = Limits {
        max_len: 4096,
        max_depth: 1,
        max_terms: 64,
    };
    // `e[(a pr or b pr) and c pr]` is two levels deep, so its lenient
    // spelling is refused under a one-level budget...
    assert!(parse_with("e[a pr or b pr].c pr", &limits).is_err());
    // ...while one that prints without parentheses is fine.
    let f = parse_with("e[a pr and b pr].c pr", &limits).unwrap();
    assert_eq!(parse_with(&f.to_string(), &limits), Ok(f));
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    let unlimited = Limits {
        max_len: usize::MAX,
        max_depth: usize::MAX,
        max_terms: usize::MAX,
    };
    for input in [
        "(".repeat(100_000),
        "not (".repeat(100_000),
        format!("{}a pr{}", "(".repeat(100_000), ")".repeat(100_000)),
        "e[".repeat(100_000),
    ] {
        assert!(matches!(
            parse_with(&input, &unlimited),
            Err(Error::InvalidFilter { .. })
        ));
        assert!(matches!(parse(&input), Err(Error::InvalidFilter { .. })));
    }
}

// ---------------------------------------------------------------------------
// PATCH paths (RFC 7644 §3.5.2)

#[test]
fn patch_paths_parse() {
    let p = parse_path("name.givenName").unwrap();
    assert_eq!(p.attr, AttrPath::with_sub("name", "givenName"));
    assert_eq!((p.filter, p.sub), (None, None));

    let p = parse_path(r#"emails[type eq "work"].value"#).unwrap();
    assert_eq!(p.attr, AttrPath::new("emails"));
    assert_eq!(p.filter, Some(cmp("type", CompareOp::Eq, s("work"))));
    assert_eq!(p.sub.as_deref(), Some("value"));

    let p = parse_path(r#"members[value eq "2819c223-7f76-453a-919d-413861904646"]"#).unwrap();
    assert_eq!(p.attr, AttrPath::new("members"));
    assert_eq!(
        p.filter,
        Some(cmp(
            "value",
            CompareOp::Eq,
            s("2819c223-7f76-453a-919d-413861904646")
        ))
    );
    assert_eq!(p.sub, None);

    let p = parse_path(r#"members[value eq "2819c223-7f76-453a-919d-413861904646"].displayName"#)
        .unwrap();
    assert_eq!(p.sub.as_deref(), Some("displayName"));

    let p =
        parse_path("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager").unwrap();
    assert_eq!(
        p.attr.urn.as_deref(),
        Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User")
    );
    assert_eq!(p.attr.name, "manager");

    let p = parse_path("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber")
        .unwrap();
    assert_eq!(p.attr.name, "employeeNumber");

    // A bare schema URN: the PATCH engine recognizes `urn` + `name` as the
    // extension itself.
    let p = parse_path("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User").unwrap();
    assert_eq!(
        p.attr.urn.as_deref(),
        Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0")
    );
    assert_eq!(p.attr.name, "User");

    let p = parse_path(r#"addresses[type eq "work" and primary eq true].streetAddress"#).unwrap();
    assert_eq!(
        p.filter,
        Some(and(
            cmp("type", CompareOp::Eq, s("work")),
            cmp("primary", CompareOp::Eq, CompValue::Boolean(true))
        ))
    );
}

#[test]
fn patch_path_filter_may_contain_a_bracket_inside_a_string() {
    let p = parse_path(r#"emails[value eq "odd]name@example.com"].display"#).unwrap();
    assert_eq!(
        p.filter,
        Some(cmp("value", CompareOp::Eq, s("odd]name@example.com")))
    );
    assert_eq!(p.sub.as_deref(), Some("display"));
}

#[test]
fn patch_paths_print_back() {
    for text in [
        "name.givenName",
        r#"emails[type eq "work"].value"#,
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
        r#"members[value eq "x" or value eq "y"]"#,
    ] {
        assert_eq!(parse_path(text).unwrap().to_string(), text);
    }
}

#[test]
fn malformed_patch_paths_are_invalid_path_errors() {
    for (input, fragment) in [
        ("", "empty path"),
        ("   ", "empty path"),
        ("name.", "not a valid sub-attribute name"),
        ("1abc", "not a valid attribute name"),
        ("name givenName", "trailing input"),
        (r#"emails[type eq "work""#, "unterminated value filter"),
        (r#"emails[type eq "work"]value"#, "trailing input"),
        (
            r#"emails[type eq "work"]."#,
            "expected a sub-attribute name",
        ),
        (r#"emails[type eq "work"].value.x"#, "trailing input"),
        (r#"emails[type eq work]"#, "unquoted value"),
        (r#"emails[]"#, "expected a filter expression"),
        (r#"name.givenName[type pr]"#, "sub-attribute path"),
        (r#"emails[type eq "work"].value eq "x""#, "trailing input"),
    ] {
        match parse_path(input) {
            Err(Error::InvalidPath(message)) => assert!(
                message.contains(fragment),
                "{input:?}: {message:?} should mention {fragment:?}"
            ),
            other => panic!("{input:?} should be invalidPath, got {other:?}"),
        }
    }
}

#[test]
fn find_path_visits_resource_level_paths_only() {
    let ext = crate::schemas::SCIMGATE_USER;
    let wanted = crate::schemas::names_scimgate_user;
    let f = parse(&format!(
        r#"userName eq "a" or not ({ext}:disabled eq true)"#
    ))
    .expect("parses");
    assert_eq!(
        f.find_path(wanted).map(ToString::to_string),
        Some(format!("{ext}:disabled"))
    );
    let f = parse(&format!(r#"{ext}:effectiveRoles[value eq "admin"]"#)).expect("parses");
    assert!(f.find_path(wanted).is_some());
    // Inside a value filter, paths are relative to the attribute.
    let f = parse(r#"emails[type eq "work"] and active eq true"#).expect("parses");
    assert_eq!(f.find_path(wanted), None);
    assert_eq!(
        f.find_path(|p| p.name == "active").map(ToString::to_string),
        Some("active".into())
    );
    assert_eq!(f.find_path(|p| p.name == "type"), None);
}
