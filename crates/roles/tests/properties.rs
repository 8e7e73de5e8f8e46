//! Property tests for the statements in the crate docs: locks win, only the
//! inputs matter, removing a mapping never adds a role, and the compiled
//! index agrees with a naive scan.
//!
//! Generators draw from small pools so that matches, case variants,
//! priority ties and repeated groups are common rather than rare.

use std::collections::BTreeSet;

use proptest::prelude::*;
use proptest::sample::select;

use roles::{
    CompiledPolicy, Effective, EffectiveRole, GroupFacts, GroupMatch, Lock, Mapping, Mode, Policy,
    Reason, Role, UserFacts, evaluate,
};

const ROLES: [&str; 4] = ["admin", "auditor", "editor", "viewer"];

/// (id, externalId, displayName): case variants of one name under
/// different ids, shared external ids, non-ASCII names.
const GROUPS: [(&str, Option<&str>, &str); 8] = [
    ("g1", Some("AD-1"), "Admins"),
    ("g2", Some("ad-1"), "ADMINS"),
    ("g3", None, "Editors"),
    ("G3", Some("AD-3"), "editors"),
    ("g5", Some("AD-5"), "Ärzte"),
    ("g6", None, "ÄRZTE"),
    ("g7", Some("AD-7"), "Everyone"),
    ("g8", Some("AD-1"), "Ops"),
];

fn role_name() -> impl Strategy<Value = String> {
    select(&ROLES[..]).prop_map(str::to_owned)
}

fn group_match() -> impl Strategy<Value = GroupMatch> {
    let ids = select(vec!["g1", "g2", "g3", "G3", "g5", "G1", "g9"]);
    let external_ids = select(vec!["AD-1", "ad-1", "AD-3", "AD-5", "AD-7", "AD-9"]);
    let names = select(vec![
        "Admins", "admins", "ADMINS", "Editors", "ärzte", "ÄRZTE", "Everyone", "Nobody", "g1",
    ]);
    prop_oneof![
        ids.prop_map(|v| GroupMatch::Id(v.into())),
        external_ids.prop_map(|v| GroupMatch::ExternalId(v.into())),
        names.prop_map(|v| GroupMatch::DisplayName(v.into())),
    ]
}

fn mapping() -> impl Strategy<Value = Mapping> {
    // A narrow priority range makes ties frequent.
    (group_match(), role_name(), -2i32..3).prop_map(|(group, role, priority)| Mapping {
        group,
        role,
        priority,
    })
}

fn mode() -> impl Strategy<Value = Mode> {
    prop_oneof![Just(Mode::Single), Just(Mode::Multi)]
}

/// A valid policy: every pool role defined, mappings and default drawn from it.
fn policy() -> impl Strategy<Value = Policy> {
    (
        proptest::option::of(role_name()),
        proptest::collection::vec(mapping(), 0..10),
        mode(),
    )
        .prop_map(|(default_role, mappings, mode)| Policy {
            roles: ROLES
                .iter()
                .map(|&name| Role {
                    name: name.into(),
                    description: String::new(),
                })
                .collect(),
            default_role,
            mappings,
            mode,
        })
}

fn group() -> impl Strategy<Value = GroupFacts> {
    select(&GROUPS[..]).prop_map(|(id, external_id, display_name)| GroupFacts {
        id: id.into(),
        external_id: external_id.map(Into::into),
        display_name: display_name.into(),
    })
}

fn lock() -> impl Strategy<Value = Lock> {
    // "ghost" is no role of the policy; "Admin" differs from "admin" in case.
    let names = select(vec!["admin", "viewer", "editor", "ghost", "Admin"]);
    proptest::collection::vec(names.prop_map(str::to_owned), 0..4).prop_map(|roles| Lock { roles })
}

fn unlocked_user() -> impl Strategy<Value = UserFacts> {
    (any::<bool>(), proptest::collection::vec(group(), 0..5)).prop_map(|(active, groups)| {
        UserFacts {
            active,
            groups,
            lock: None,
        }
    })
}

fn user() -> impl Strategy<Value = UserFacts> {
    (unlocked_user(), proptest::option::of(lock())).prop_map(|(mut u, lock)| {
        u.lock = lock;
        u
    })
}

fn compile(policy: &Policy) -> CompiledPolicy {
    policy.compile().expect("generated policies are valid")
}

fn names(e: &Effective) -> BTreeSet<&str> {
    e.roles.iter().map(|r| r.role.as_str()).collect()
}

// --- reference implementation -------------------------------------------------

/// Whether `m` matches `g`, written out from the rules without the index.
fn reference_matches(m: &GroupMatch, g: &GroupFacts) -> bool {
    match m {
        GroupMatch::Id(v) => *v == g.id,
        GroupMatch::ExternalId(v) => g.external_id.as_ref() == Some(v),
        GroupMatch::DisplayName(v) => v.to_lowercase() == g.display_name.to_lowercase(),
    }
}

/// Every (mapping, group) pair that matches, as (priority, role, group).
fn reference_candidates<'a>(
    policy: &'a Policy,
    user: &'a UserFacts,
) -> Vec<(i32, &'a str, &'a GroupFacts)> {
    let mut out = Vec::new();
    for m in &policy.mappings {
        for g in &user.groups {
            if reference_matches(&m.group, g) {
                out.push((m.priority, m.role.as_str(), g));
            }
        }
    }
    out
}

/// Evaluation by scanning every mapping against every group.
fn reference(policy: &Policy, user: &UserFacts) -> Effective {
    let disabled = !user.active;
    if let Some(lock) = &user.lock {
        let set: BTreeSet<&String> = lock.roles.iter().collect();
        let roles = set
            .into_iter()
            .map(|r| EffectiveRole {
                role: r.clone(),
                reason: Reason::Locked,
            })
            .collect();
        return Effective {
            roles,
            disabled,
            locked: true,
        };
    }
    let mut candidates = reference_candidates(policy, user);
    // Best first: priority high to low, then role, group id, displayName.
    candidates.sort_by(|a, b| {
        b.0.cmp(&a.0)
            .then(a.1.cmp(b.1))
            .then(a.2.id.cmp(&b.2.id))
            .then(a.2.display_name.cmp(&b.2.display_name))
    });
    let to_role = |(_, role, g): &(i32, &str, &GroupFacts)| EffectiveRole {
        role: (*role).to_owned(),
        reason: Reason::Mapping {
            group_id: g.id.clone(),
            group_display_name: g.display_name.clone(),
        },
    };
    let mut roles: Vec<EffectiveRole> = match policy.mode {
        Mode::Single => candidates.first().map(to_role).into_iter().collect(),
        Mode::Multi => {
            let mut seen = BTreeSet::new();
            candidates
                .iter()
                .filter(|c| seen.insert(c.1))
                .map(to_role)
                .collect()
        }
    };
    roles.sort_by(|a, b| a.role.cmp(&b.role));
    if roles.is_empty()
        && let Some(d) = &policy.default_role
    {
        roles.push(EffectiveRole {
            role: d.clone(),
            reason: Reason::Default,
        });
    }
    Effective {
        roles,
        disabled,
        locked: false,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    /// 1. A lock is never overridden.
    #[test]
    fn lock_is_never_overridden(policy in policy(), mut u in unlocked_user(), lock in lock()) {
        u.lock = Some(lock.clone());
        let out = compile(&policy).evaluate(&u);
        let expected: Vec<String> = lock.roles.iter().cloned().collect::<BTreeSet<_>>().into_iter().collect();
        prop_assert_eq!(out.role_names(), expected.iter().map(String::as_str).collect::<Vec<_>>());
        prop_assert!(out.roles.iter().all(|r| r.reason == Reason::Locked));
        prop_assert_eq!(out.disabled, !u.active);
    }

    /// 2. The result depends only on the inputs, not on their order.
    #[test]
    fn result_depends_only_on_the_inputs(
        (policy, u, shuffled_mappings, shuffled_groups) in (policy(), user()).prop_flat_map(|(p, u)| {
            let m = Just(p.mappings.clone()).prop_shuffle();
            let g = Just(u.groups.clone()).prop_shuffle();
            (Just(p), Just(u), m, g)
        })
    ) {
        let compiled = compile(&policy);
        let out = compiled.evaluate(&u);
        prop_assert_eq!(&compiled.evaluate(&u), &out);
        prop_assert_eq!(&compile(&policy).evaluate(&u), &out);
        prop_assert_eq!(&evaluate(&policy, &u), &out);

        let mut reordered_policy = policy.clone();
        reordered_policy.mappings = shuffled_mappings;
        let mut reordered_user = u.clone();
        reordered_user.groups = shuffled_groups;
        prop_assert_eq!(&compile(&reordered_policy).evaluate(&u), &out);
        prop_assert_eq!(&compiled.evaluate(&reordered_user), &out);
        prop_assert_eq!(&compile(&reordered_policy).evaluate(&reordered_user), &out);

        let mut reversed_policy = policy.clone();
        reversed_policy.mappings.reverse();
        let mut reversed_user = u.clone();
        reversed_user.groups.reverse();
        prop_assert_eq!(&compile(&reversed_policy).evaluate(&reversed_user), &out);
    }

    /// 3. Removing a mapping never adds a role, in the precise form the
    ///    crate docs state for each mode.
    #[test]
    fn removing_a_mapping_never_adds_a_role(policy in policy(), u in unlocked_user()) {
        let before = compile(&policy).evaluate(&u);
        let top_priority = reference_candidates(&policy, &u).iter().map(|c| c.0).max();
        for i in 0..policy.mappings.len() {
            let mut smaller = policy.clone();
            let removed = smaller.mappings.remove(i);
            let after = compile(&smaller).evaluate(&u);
            prop_assert_eq!(after.disabled, before.disabled);
            match policy.mode {
                Mode::Multi => {
                    let (b, a) = (names(&before), names(&after));
                    let nothing_matches = reference_candidates(&smaller, &u).is_empty();
                    if nothing_matches {
                        let default: Vec<&str> = smaller.default_role.as_deref().into_iter().collect();
                        prop_assert_eq!(after.role_names(), default);
                        prop_assert!(after.roles.iter().all(|r| r.reason == Reason::Default));
                    } else {
                        prop_assert!(a.is_subset(&b), "removing {:?} added {:?}", removed, a.difference(&b).collect::<Vec<_>>());
                    }
                    let lost: Vec<&&str> = b.difference(&a).collect();
                    prop_assert!(lost.iter().all(|r| **r == removed.role), "removing {:?} lost {:?}", removed, lost);
                }
                Mode::Single => {
                    let could_have_won = match before.roles.first() {
                        Some(EffectiveRole { role, reason: Reason::Mapping { group_id, group_display_name } }) => {
                            removed.role == *role
                                && Some(removed.priority) == top_priority
                                && u.groups.iter().any(|g| {
                                    g.id == *group_id
                                        && g.display_name == *group_display_name
                                        && reference_matches(&removed.group, g)
                                })
                        }
                        _ => false,
                    };
                    if !could_have_won {
                        prop_assert_eq!(&after, &before, "removing {:?}", removed);
                    }
                }
            }
        }
    }

    /// 4. The compiled index agrees with the naive scan, reasons included.
    #[test]
    fn compiled_equals_reference(policy in policy(), u in user()) {
        let expected = reference(&policy, &u);
        prop_assert_eq!(&compile(&policy).evaluate(&u), &expected);
        prop_assert_eq!(&evaluate(&policy, &u), &expected);
    }
}

/// The generators must actually reach the interesting cases, or the
/// properties above hold vacuously.
#[test]
fn generators_reach_matches_ties_and_fallbacks() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    let mut runner = TestRunner::deterministic();
    let (mut mapped, mut multi_role, mut defaulted, mut tied) = (0, 0, 0, 0);
    for _ in 0..2000 {
        let p = policy().new_tree(&mut runner).expect("generates").current();
        let u = unlocked_user()
            .new_tree(&mut runner)
            .expect("generates")
            .current();
        let out = reference(&p, &u);
        let candidates = reference_candidates(&p, &u);
        if out
            .roles
            .iter()
            .any(|r| matches!(r.reason, Reason::Mapping { .. }))
        {
            mapped += 1;
        }
        if out.roles.len() > 1 {
            multi_role += 1;
        }
        if out.roles.iter().any(|r| r.reason == Reason::Default) {
            defaulted += 1;
        }
        if let Some(top) = candidates.iter().map(|c| c.0).max() {
            let best: BTreeSet<(&str, &str)> = candidates
                .iter()
                .filter(|c| c.0 == top)
                .map(|c| (c.1, c.2.id.as_str()))
                .collect();
            if best.len() > 1 {
                tied += 1;
            }
        }
    }
    assert!(mapped > 200, "mapped {mapped}");
    assert!(multi_role > 100, "multi-role {multi_role}");
    assert!(defaulted > 200, "defaulted {defaulted}");
    assert!(tied > 100, "tied {tied}");
}
