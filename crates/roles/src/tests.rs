//! Unit tests: the Reftab-style lifecycle, modes, tie-breaking, matching,
//! validation, serialization.

use serde_json::json;

use super::*;

fn role(name: &str) -> Role {
    Role {
        name: name.into(),
        description: format!("{name} role"),
    }
}

fn map(group: GroupMatch, role: &str, priority: i32) -> Mapping {
    Mapping {
        group,
        role: role.into(),
        priority,
    }
}

fn by_name(name: &str) -> GroupMatch {
    GroupMatch::DisplayName(name.into())
}

fn group(id: &str, external_id: Option<&str>, display_name: &str) -> GroupFacts {
    GroupFacts {
        id: id.into(),
        external_id: external_id.map(Into::into),
        display_name: display_name.into(),
    }
}

fn user(groups: Vec<GroupFacts>) -> UserFacts {
    UserFacts {
        active: true,
        groups,
        lock: None,
    }
}

fn locked(roles: &[&str]) -> Option<Lock> {
    Some(Lock {
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
    })
}

fn admins() -> GroupFacts {
    group("g-admins", Some("ext-admins"), "Admins")
}

fn editors() -> GroupFacts {
    group("g-editors", Some("ext-editors"), "Editors")
}

/// admin/editor/viewer, viewer by default, Admins → admin.
fn reftab_policy() -> Policy {
    Policy {
        roles: vec![role("admin"), role("editor"), role("viewer")],
        default_role: Some("viewer".into()),
        mappings: vec![map(by_name("Admins"), "admin", 10)],
        mode: Mode::Single,
    }
}

fn eval(policy: &Policy, user: &UserFacts) -> Effective {
    let compiled = policy.compile().expect("test policy is valid");
    let out = compiled.evaluate(user);
    // The convenience function must agree with the compiled path.
    assert_eq!(evaluate(policy, user), out);
    out
}

fn mapping_reason(g: &GroupFacts) -> Reason {
    Reason::Mapping {
        group_id: g.id.clone(),
        group_display_name: g.display_name.clone(),
    }
}

fn only(role: &str, reason: Reason) -> Vec<EffectiveRole> {
    vec![EffectiveRole {
        role: role.into(),
        reason,
    }]
}

// --- lifecycle ----------------------------------------------------------------

#[test]
fn lifecycle_mapping_default_disable_lock_unlock() {
    let mut policy = reftab_policy();
    let mut u = user(vec![admins()]);

    // In Admins: admin, because of Admins.
    let out = eval(&policy, &u);
    assert_eq!(out.roles, only("admin", mapping_reason(&admins())));
    assert_eq!(out.roles[0].reason.to_string(), "mapping: Admins");
    assert!(!out.disabled);

    // Removed from Admins (its last mapped group): the default at once.
    u.groups.clear();
    let out = eval(&policy, &u);
    assert_eq!(out.roles, only("viewer", Reason::Default));
    assert_eq!(out.roles[0].reason.to_string(), "default");

    // Back in Admins but deactivated: shown disabled, roles kept.
    u.groups = vec![admins()];
    u.active = false;
    let out = eval(&policy, &u);
    assert!(out.disabled);
    assert_eq!(out.roles, only("admin", mapping_reason(&admins())));
    u.active = true;

    // Locked as admin.
    u.lock = locked(&["admin"]);
    let locked_admin = Effective {
        roles: only("admin", Reason::Locked),
        disabled: false,
        locked: true,
    };
    assert_eq!(eval(&policy, &u), locked_admin);
    assert_eq!(locked_admin.roles[0].reason.to_string(), "locked");

    // ...through a group change,
    u.groups = vec![editors()];
    assert_eq!(eval(&policy, &u), locked_admin);
    u.groups.clear();
    assert_eq!(eval(&policy, &u), locked_admin);
    // ...removal of the mapping,
    policy.mappings.clear();
    assert_eq!(eval(&policy, &u), locked_admin);
    // ...a change of default,
    policy.default_role = Some("editor".into());
    assert_eq!(eval(&policy, &u), locked_admin);
    policy.default_role = None;
    assert_eq!(eval(&policy, &u), locked_admin);
    // ...and a change of mode.
    policy.mode = Mode::Multi;
    assert_eq!(eval(&policy, &u), locked_admin);

    // Unlocked: back to what the current policy derives.
    u.lock = None;
    assert_eq!(eval(&policy, &u).roles, vec![]);
    policy.default_role = Some("editor".into());
    assert_eq!(eval(&policy, &u).roles, only("editor", Reason::Default));
    policy.mappings = vec![map(by_name("Editors"), "viewer", 1)];
    u.groups = vec![editors()];
    assert_eq!(
        eval(&policy, &u).roles,
        only("viewer", mapping_reason(&editors()))
    );
}

#[test]
fn lock_outlives_the_role_it_names() {
    let mut policy = reftab_policy();
    policy.roles.retain(|r| r.name != "admin");
    policy.mappings.clear();
    let mut u = user(vec![admins()]);
    u.lock = locked(&["admin"]);
    assert_eq!(eval(&policy, &u).roles, only("admin", Reason::Locked));
}

#[test]
fn lock_roles_are_deduplicated_and_sorted_and_may_be_empty() {
    let policy = reftab_policy();
    let mut u = user(vec![admins()]);
    u.lock = locked(&["viewer", "admin", "viewer"]);
    let out = eval(&policy, &u);
    assert_eq!(out.role_names(), ["admin", "viewer"]);
    assert!(out.roles.iter().all(|r| r.reason == Reason::Locked));

    // An empty lock pins the user to no role, not to the derived ones.
    u.lock = locked(&[]);
    let pinned = eval(&policy, &u);
    assert_eq!(pinned.roles, vec![]);
    assert!(pinned.locked, "still shown as locked");
    u.lock = None;
    assert!(!eval(&policy, &u).locked);
}

#[test]
fn locked_and_deactivated_user_is_disabled_with_the_lock_roles() {
    let policy = reftab_policy();
    let mut u = user(vec![]);
    u.active = false;
    u.lock = locked(&["editor"]);
    let out = eval(&policy, &u);
    assert!(out.disabled);
    assert_eq!(out.roles, only("editor", Reason::Locked));
}

// --- modes and ranking ---------------------------------------------------------

fn two_mapping_policy(mode: Mode) -> Policy {
    Policy {
        roles: vec![role("admin"), role("editor"), role("viewer")],
        default_role: Some("viewer".into()),
        mappings: vec![
            map(by_name("Editors"), "editor", 5),
            map(by_name("Admins"), "admin", 10),
        ],
        mode,
    }
}

#[test]
fn single_mode_picks_the_highest_priority() {
    let u = user(vec![editors(), admins()]);
    let out = eval(&two_mapping_policy(Mode::Single), &u);
    assert_eq!(out.roles, only("admin", mapping_reason(&admins())));

    // Priority decides, not the role name: lower editor's rival.
    let mut policy = two_mapping_policy(Mode::Single);
    policy.mappings[1].priority = 1;
    assert_eq!(
        eval(&policy, &u).roles,
        only("editor", mapping_reason(&editors()))
    );
}

#[test]
fn negative_priorities_rank_below_zero() {
    let mut policy = two_mapping_policy(Mode::Single);
    policy.mappings[0].priority = 0;
    policy.mappings[1].priority = -3;
    let u = user(vec![admins(), editors()]);
    assert_eq!(eval(&policy, &u).role_names(), ["editor"]);
}

#[test]
fn multi_mode_grants_every_mapped_role_sorted() {
    let u = user(vec![admins(), editors()]);
    let out = eval(&two_mapping_policy(Mode::Multi), &u);
    assert_eq!(
        out.roles,
        vec![
            EffectiveRole {
                role: "admin".into(),
                reason: mapping_reason(&admins()),
            },
            EffectiveRole {
                role: "editor".into(),
                reason: mapping_reason(&editors()),
            },
        ]
    );
    // The default is only for users no mapping matches.
    assert!(!out.role_names().contains(&"viewer"));
}

#[test]
fn multi_mode_lists_a_role_once_with_its_best_reason() {
    let ops = group("g-ops", None, "Ops");
    let sre = group("g-sre", None, "SRE");
    let mut policy = two_mapping_policy(Mode::Multi);
    policy.mappings = vec![
        map(by_name("Ops"), "admin", 1),
        map(by_name("SRE"), "admin", 5),
    ];
    let u = user(vec![ops.clone(), sre.clone()]);
    assert_eq!(eval(&policy, &u).roles, only("admin", mapping_reason(&sre)));

    // Equal priorities: the smaller group id gives the reason, in either order.
    policy.mappings[1].priority = 1;
    assert_eq!(eval(&policy, &u).roles, only("admin", mapping_reason(&ops)));
    let reversed = user(vec![sre, ops.clone()]);
    assert_eq!(
        eval(&policy, &reversed).roles,
        only("admin", mapping_reason(&ops))
    );
}

#[test]
fn single_mode_ties_break_on_role_name_then_group_id() {
    let a = group("g-a", None, "Zeta");
    let b = group("g-b", None, "Alpha");
    let mut policy = two_mapping_policy(Mode::Single);

    // Same priority, different roles: the smaller role name, either order.
    policy.mappings = vec![
        map(by_name("Zeta"), "editor", 3),
        map(by_name("Alpha"), "admin", 3),
    ];
    let u = user(vec![a.clone(), b.clone()]);
    assert_eq!(eval(&policy, &u).roles, only("admin", mapping_reason(&b)));
    policy.mappings.reverse();
    let u = user(vec![b.clone(), a.clone()]);
    assert_eq!(eval(&policy, &u).roles, only("admin", mapping_reason(&b)));

    // Same priority, same role: the smaller group id gives the reason,
    // even though its displayName sorts last.
    policy.mappings = vec![
        map(by_name("Alpha"), "editor", 3),
        map(by_name("Zeta"), "editor", 3),
    ];
    for groups in [vec![a.clone(), b.clone()], vec![b.clone(), a.clone()]] {
        assert_eq!(
            eval(&policy, &user(groups)).roles,
            only("editor", mapping_reason(&a))
        );
    }
}

#[test]
fn a_group_listed_twice_or_matched_twice_gives_one_role() {
    let mut policy = two_mapping_policy(Mode::Multi);
    policy.mappings = vec![
        map(by_name("Admins"), "admin", 1),
        map(GroupMatch::Id("g-admins".into()), "admin", 2),
        map(GroupMatch::ExternalId("ext-admins".into()), "admin", 3),
    ];
    let u = user(vec![admins(), admins()]);
    assert_eq!(
        eval(&policy, &u).roles,
        only("admin", mapping_reason(&admins()))
    );
}

#[test]
fn no_default_role_and_no_match_gives_no_roles() {
    let mut policy = reftab_policy();
    policy.default_role = None;
    let out = eval(&policy, &user(vec![editors()]));
    assert_eq!(out.roles, vec![]);
    assert!(!out.disabled);
    policy.mode = Mode::Multi;
    assert_eq!(eval(&policy, &user(vec![])).roles, vec![]);
}

// --- matching ------------------------------------------------------------------

fn matches(m: GroupMatch, g: GroupFacts) -> bool {
    let policy = Policy {
        roles: vec![role("admin")],
        default_role: None,
        mappings: vec![map(m, "admin", 0)],
        mode: Mode::Single,
    };
    !eval(&policy, &user(vec![g])).roles.is_empty()
}

#[test]
fn id_matches_case_exactly_and_only_the_id() {
    let id = |v: &str| GroupMatch::Id(v.into());
    assert!(matches(id("g-1"), group("g-1", None, "One")));
    assert!(!matches(id("G-1"), group("g-1", None, "One")));
    assert!(!matches(id("One"), group("g-1", None, "One")));
    assert!(!matches(id("x-1"), group("g-1", Some("x-1"), "One")));
}

#[test]
fn external_id_matches_case_exactly_and_only_the_external_id() {
    let ext = |v: &str| GroupMatch::ExternalId(v.into());
    assert!(matches(ext("AD-42"), group("g-1", Some("AD-42"), "One")));
    assert!(!matches(ext("ad-42"), group("g-1", Some("AD-42"), "One")));
    assert!(!matches(ext("g-1"), group("g-1", None, "One")));
    assert!(!matches(ext("One"), group("g-1", None, "One")));
}

#[test]
fn display_name_matches_case_insensitively_including_non_ascii() {
    assert!(matches(by_name("Admins"), group("g", None, "Admins")));
    assert!(matches(by_name("admins"), group("g", None, "ADMINS")));
    assert!(matches(by_name("ADMINS"), group("g", None, "aDmInS")));
    assert!(matches(
        by_name("Équipe Ärzte"),
        group("g", None, "ÉQUIPE ÄRZTE")
    ));
    assert!(matches(by_name("ΔΙΟΙΚΗΣΗ"), group("g", None, "διοικηση")));
    // Case-insensitive, not fuzzy.
    assert!(!matches(by_name("Admins "), group("g", None, "Admins")));
    assert!(!matches(by_name("Admin"), group("g", None, "Admins")));
    assert!(!matches(by_name("g"), group("g", None, "Admins")));
}

#[test]
fn reason_shows_the_display_name_the_user_group_has() {
    let policy = reftab_policy();
    let g = group("g-admins", None, "ADMINS");
    let out = eval(&policy, &user(vec![g]));
    assert_eq!(out.roles[0].reason.to_string(), "mapping: ADMINS");
}

// --- validation ----------------------------------------------------------------

fn invalid(edit: impl FnOnce(&mut Policy)) -> PolicyError {
    let mut policy = reftab_policy();
    edit(&mut policy);
    let err = policy.validate().expect_err("policy is invalid");
    assert_eq!(policy.compile().err(), Some(err.clone()));
    err
}

#[test]
fn valid_policies_validate() {
    reftab_policy().validate().expect("valid");
    two_mapping_policy(Mode::Multi).validate().expect("valid");
    let mut p = reftab_policy();
    p.roles.push(role(&"é".repeat(MAX_ROLE_NAME_CHARS)));
    p.default_role = None;
    p.mappings.clear();
    p.validate()
        .expect("128 characters is allowed, however many bytes");
    let empty = Policy {
        roles: vec![],
        default_role: None,
        mappings: vec![],
        mode: Mode::Multi,
    };
    empty
        .validate()
        .expect("a policy with nothing in it is valid");
}

#[test]
fn empty_role_name_is_rejected() {
    let err = invalid(|p| p.roles.push(role("")));
    assert_eq!(err, PolicyError::EmptyRoleName { index: 3 });
    assert_eq!(err.to_string(), "roles[3]: the role name is empty");
}

#[test]
fn untrimmed_role_name_is_rejected() {
    for name in [" admin2", "admin2 ", "\tadmin2", "admin2\u{a0}"] {
        let err = invalid(|p| p.roles.push(role(name)));
        assert_eq!(
            err,
            PolicyError::UntrimmedRoleName {
                index: 3,
                name: name.into()
            }
        );
    }
    let err = invalid(|p| p.roles.push(role(" x")));
    assert_eq!(
        err.to_string(),
        r#"roles[3]: role name " x" has leading or trailing whitespace"#
    );
    let err = invalid(|p| p.roles[0] = role("   "));
    assert!(matches!(
        err,
        PolicyError::UntrimmedRoleName { index: 0, .. }
    ));
}

#[test]
fn long_role_name_is_rejected() {
    let name = "r".repeat(MAX_ROLE_NAME_CHARS + 1);
    let err = invalid(|p| p.roles.push(role(&name)));
    assert_eq!(
        err,
        PolicyError::RoleNameTooLong {
            index: 3,
            name: name.clone(),
            chars: 129
        }
    );
    let msg = err.to_string();
    assert!(msg.contains(&name), "{msg}");
    assert!(
        msg.contains("129 characters") && msg.contains("at most 128"),
        "{msg}"
    );
}

#[test]
fn duplicate_role_is_rejected_case_sensitively() {
    let err = invalid(|p| p.roles.push(role("editor")));
    assert_eq!(
        err,
        PolicyError::DuplicateRole {
            index: 3,
            name: "editor".into()
        }
    );
    assert_eq!(
        err.to_string(),
        r#"roles[3]: role "editor" is defined more than once"#
    );
    let mut p = reftab_policy();
    p.roles.push(role("Editor"));
    p.validate()
        .expect("names differing in case are distinct roles");
}

#[test]
fn unknown_default_role_is_rejected() {
    let err = invalid(|p| p.default_role = Some("guest".into()));
    assert_eq!(
        err,
        PolicyError::UnknownDefaultRole {
            name: "guest".into()
        }
    );
    assert_eq!(
        err.to_string(),
        r#"defaultRole: "guest" is not one of the defined roles"#
    );
    // Role names are case-sensitive here too.
    let err = invalid(|p| p.default_role = Some("Viewer".into()));
    assert!(matches!(err, PolicyError::UnknownDefaultRole { .. }));
}

#[test]
fn unknown_mapping_role_is_rejected() {
    let err = invalid(|p| p.mappings.push(map(by_name("Ops"), "operator", 1)));
    assert_eq!(
        err,
        PolicyError::UnknownMappingRole {
            index: 1,
            role: "operator".into()
        }
    );
    assert_eq!(
        err.to_string(),
        r#"mappings[1]: role "operator" is not one of the defined roles"#
    );
}

#[test]
fn empty_group_match_is_rejected() {
    let cases = [
        (GroupMatch::Id(String::new()), "id"),
        (GroupMatch::ExternalId(" ".into()), "externalId"),
        (GroupMatch::DisplayName("\t".into()), "displayName"),
    ];
    for (m, attribute) in cases {
        let err = invalid(|p| p.mappings.insert(0, map(m, "admin", 1)));
        assert_eq!(
            err,
            PolicyError::EmptyGroupMatch {
                index: 0,
                attribute
            }
        );
        assert_eq!(
            err.to_string(),
            format!("mappings[0]: the group {attribute} to match is empty")
        );
    }
}

// --- changes and serialization --------------------------------------------------

#[test]
fn changed_compares_role_names_and_disabled_not_reasons() {
    let policy = two_mapping_policy(Mode::Multi);
    let mut u = user(vec![admins()]);
    let before = eval(&policy, &u);

    // Same role through another group: not a change.
    let mut other = policy.clone();
    other.mappings = vec![map(by_name("Editors"), "admin", 1)];
    u.groups = vec![editors()];
    let same_role = eval(&other, &u);
    assert_ne!(before.roles[0].reason, same_role.roles[0].reason);
    assert!(!changed(&before, &same_role));

    // Locked to the role it already had: not a change.
    u.lock = locked(&["admin"]);
    assert!(!changed(&before, &eval(&policy, &u)));
    u.lock = None;

    u.groups = vec![admins(), editors()];
    assert!(changed(&before, &eval(&policy, &u)));
    u.groups = vec![];
    assert!(changed(&before, &eval(&policy, &u)));
    u.groups = vec![admins()];
    u.active = false;
    assert!(changed(&before, &eval(&policy, &u)));
    u.active = true;
    assert!(!changed(&before, &eval(&policy, &u)));
}

#[test]
fn reasons_serialize_tagged() {
    let value = |r: &Reason| serde_json::to_value(r).expect("serializes");
    let mapping = mapping_reason(&admins());
    assert_eq!(
        value(&mapping),
        json!({"kind": "mapping", "groupId": "g-admins", "groupDisplayName": "Admins"})
    );
    assert_eq!(value(&Reason::Default), json!({"kind": "default"}));
    assert_eq!(value(&Reason::Locked), json!({"kind": "locked"}));
    for r in [mapping, Reason::Default, Reason::Locked] {
        let back: Reason = serde_json::from_value(value(&r)).expect("deserializes");
        assert_eq!(back, r);
    }
}

#[test]
fn policy_reads_from_camel_case_json() {
    let policy: Policy = serde_json::from_value(json!({
        "roles": [{"name": "admin", "description": "Full access"}, {"name": "viewer"}],
        "defaultRole": "viewer",
        "mappings": [
            {"group": {"displayName": "Admins"}, "role": "admin", "priority": 10},
            {"group": {"externalId": "AD-1"}, "role": "admin", "priority": 5},
            {"group": {"id": "g-1"}, "role": "viewer", "priority": 0}
        ],
        "mode": "multi"
    }))
    .expect("deserializes");
    assert_eq!(policy.mode, Mode::Multi);
    assert_eq!(policy.default_role.as_deref(), Some("viewer"));
    assert_eq!(policy.roles[1].description, "");
    assert_eq!(
        policy.mappings[1].group,
        GroupMatch::ExternalId("AD-1".into())
    );
    policy.validate().expect("valid");
    let again: Policy = serde_json::from_value(serde_json::to_value(&policy).expect("serializes"))
        .expect("round-trips");
    assert_eq!(again, policy);
    assert_eq!(
        serde_json::to_value(Mode::Single).expect("serializes"),
        json!("single")
    );
}

#[test]
fn effective_serializes_for_the_store() {
    let out = eval(&reftab_policy(), &user(vec![admins()]));
    assert_eq!(
        serde_json::to_value(&out).expect("serializes"),
        json!({
            "roles": [{"role": "admin", "reason": {"kind": "mapping", "groupId": "g-admins", "groupDisplayName": "Admins"}}],
            "disabled": false
        })
    );
}

#[test]
fn a_selector_matches_the_way_mappings_do() {
    let g = group("g-1", Some("ext-1"), "Acme Staff");
    assert!(GroupMatch::Id("g-1".into()).matches(&g));
    assert!(!GroupMatch::Id("G-1".into()).matches(&g));
    assert!(GroupMatch::ExternalId("ext-1".into()).matches(&g));
    assert!(!GroupMatch::ExternalId("EXT-1".into()).matches(&g));
    assert!(GroupMatch::DisplayName("acme STAFF".into()).matches(&g));
    assert!(!GroupMatch::DisplayName("Acme".into()).matches(&g));
    // The selector agrees with evaluation for every kind.
    for m in [
        GroupMatch::Id("g-1".into()),
        GroupMatch::ExternalId("ext-1".into()),
        GroupMatch::DisplayName("ACME staff".into()),
        GroupMatch::DisplayName("other".into()),
    ] {
        assert_eq!(m.matches(&g), matches(m.clone(), g.clone()), "{m:?}");
    }
}
