//! What is known about a user, the roles that follow, and the evaluator.

use std::borrow::Cow;
use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::policy::{GroupMatch, Mode, Policy, PolicyError};

/// The identifiers of a group the user belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupFacts {
    /// The group's SCIM `id`.
    pub id: String,
    /// The group's `externalId`, if the IdP set one.
    #[serde(default)]
    pub external_id: Option<String>,
    /// The group's `displayName`.
    pub display_name: String,
}

/// An administrator's pin on a user's roles. Who locked, when and why are
/// kept by the store; only the roles affect evaluation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Lock {
    /// The roles the user keeps while locked; may be empty (no role at all).
    pub roles: Vec<String>,
}

/// Everything evaluation needs to know about one user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserFacts {
    /// The user's SCIM `active`.
    pub active: bool,
    /// The groups the user is a member of, in any order.
    #[serde(default)]
    pub groups: Vec<GroupFacts>,
    /// The role-lock, if an administrator set one.
    #[serde(default)]
    pub lock: Option<Lock>,
}

/// Why a user has a role.
///
/// Serialized with a `kind` tag so the store can keep it as JSON:
/// `{"kind":"mapping","groupId":"…","groupDisplayName":"Admins"}`,
/// `{"kind":"default"}`, `{"kind":"locked"}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Reason {
    /// A mapping matched this group.
    #[serde(rename_all = "camelCase")]
    Mapping {
        /// The matched group's SCIM `id`.
        group_id: String,
        /// The matched group's `displayName`, as the user's group facts give it.
        group_display_name: String,
    },
    /// No mapping matched, so the policy's default role applies.
    Default,
    /// The user's role-lock.
    Locked,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Mapping {
                group_display_name, ..
            } => write!(f, "mapping: {group_display_name}"),
            Reason::Default => f.write_str("default"),
            Reason::Locked => f.write_str("locked"),
        }
    }
}

/// One role a user has, and why.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EffectiveRole {
    /// The role's name.
    pub role: String,
    /// Why the user has it.
    pub reason: Reason,
}

/// The outcome of evaluation for one user.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Effective {
    /// The user's roles, sorted by name (byte order), each name once.
    pub roles: Vec<EffectiveRole>,
    /// `!active`: the gateway shows the user as disabled but keeps the roles,
    /// so reactivation restores them without a recompute.
    pub disabled: bool,
    /// The roles come from a role-lock (also when the lock pins no role,
    /// which `roles` alone cannot show). Absent from JSON when false, so
    /// results stored before the flag existed read back unchanged.
    #[serde(default, skip_serializing_if = "is_false")]
    pub locked: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl Effective {
    /// The role names, in the same (sorted) order as `roles`.
    pub fn role_names(&self) -> Vec<&str> {
        self.roles.iter().map(|r| r.role.as_str()).collect()
    }
}

/// Whether `after` differs from `before` in a way the application must act
/// on: a different set of role names or a different `disabled`.
///
/// A change of reason alone (say, the same role now granted by another
/// group, or a derived role becoming locked) is not a role change: the
/// user's access is the same, so recompute and dry-run do not report it.
pub fn changed(before: &Effective, after: &Effective) -> bool {
    before.disabled != after.disabled
        || before.roles.len() != after.roles.len()
        || before
            .roles
            .iter()
            .zip(&after.roles)
            .any(|(b, a)| b.role != a.role)
}

/// Evaluates one user against `policy`.
///
/// Does not validate: an unvalidated policy is applied as written (a mapping
/// to an undefined role grants that name). Validate policies when they are
/// stored. For many users, [`Policy::compile`] once and call
/// [`CompiledPolicy::evaluate`]; this function compiles on every call.
pub fn evaluate(policy: &Policy, user: &UserFacts) -> Effective {
    CompiledPolicy::build(policy).evaluate(user)
}

/// A mapping target: a role (by rank in the sorted role table, so comparing
/// ranks compares names) and its priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Target {
    priority: i32,
    role: u32,
}

/// A policy indexed for evaluation: each group identifier leads straight to
/// its mappings, so a user costs O(their groups), not O(mappings).
#[derive(Debug, Clone)]
pub struct CompiledPolicy {
    /// Names of mapped roles, sorted and deduplicated; a [`Target`]'s rank
    /// indexes it.
    role_names: Vec<String>,
    by_id: HashMap<String, Vec<Target>>,
    by_external_id: HashMap<String, Vec<Target>>,
    /// Keyed by [`fold`]ed display name.
    by_display_name: HashMap<String, Vec<Target>>,
    default_role: Option<String>,
    mode: Mode,
}

impl Policy {
    /// Validates the policy and indexes it for fast evaluation.
    pub fn compile(&self) -> Result<CompiledPolicy, PolicyError> {
        self.validate()?;
        Ok(CompiledPolicy::build(self))
    }
}

/// A candidate role for a user: one mapping target reached through one of
/// the user's groups.
#[derive(Clone, Copy)]
struct Candidate<'u> {
    target: Target,
    group: &'u GroupFacts,
}

impl Candidate<'_> {
    /// The total order that makes the answer independent of input order:
    /// higher priority first, then smaller role name, then smaller group id,
    /// then smaller display name. Two candidates equal under it yield equal
    /// [`EffectiveRole`]s.
    fn rank(&self) -> (Reverse<i32>, u32, &str, &str) {
        (
            Reverse(self.target.priority),
            self.target.role,
            &self.group.id,
            &self.group.display_name,
        )
    }
}

impl CompiledPolicy {
    fn build(policy: &Policy) -> CompiledPolicy {
        let role_names: Vec<String> = policy
            .mappings
            .iter()
            .map(|m| m.role.as_str())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .map(str::to_owned)
            .collect();
        let rank: HashMap<&str, u32> = role_names
            .iter()
            .zip(0u32..)
            .map(|(name, i)| (name.as_str(), i))
            .collect();

        let mut compiled = CompiledPolicy {
            by_id: HashMap::new(),
            by_external_id: HashMap::new(),
            by_display_name: HashMap::new(),
            default_role: policy.default_role.clone(),
            mode: policy.mode,
            role_names: Vec::new(),
        };
        for mapping in &policy.mappings {
            let target = Target {
                priority: mapping.priority,
                // Every mapping's role was put in the table above.
                role: rank.get(mapping.role.as_str()).copied().unwrap_or(0),
            };
            let (index, key) = match &mapping.group {
                GroupMatch::Id(v) => (&mut compiled.by_id, v.clone()),
                GroupMatch::ExternalId(v) => (&mut compiled.by_external_id, v.clone()),
                GroupMatch::DisplayName(v) => (&mut compiled.by_display_name, fold(v).into_owned()),
            };
            index.entry(key).or_default().push(target);
        }
        for index in [
            &mut compiled.by_id,
            &mut compiled.by_external_id,
            &mut compiled.by_display_name,
        ] {
            for targets in index.values_mut() {
                // Best first, and one target per role: a group reaching the
                // same role twice can only ever use the higher priority.
                targets.sort_by_key(|t| (t.role, Reverse(t.priority)));
                targets.dedup_by_key(|t| t.role);
                targets.sort_by_key(|t| (Reverse(t.priority), t.role));
            }
        }
        compiled.role_names = role_names;
        compiled
    }

    /// The mode the policy was compiled with.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The mapping targets `group` reaches, each list best first.
    fn targets_of(&self, group: &GroupFacts) -> [&[Target]; 3] {
        let by_id = self.by_id.get(group.id.as_str());
        let by_external_id = group
            .external_id
            .as_deref()
            .and_then(|e| self.by_external_id.get(e));
        // Folding may allocate; skip it when no mapping matches by name.
        let by_display_name = if self.by_display_name.is_empty() {
            None
        } else {
            self.by_display_name.get(fold(&group.display_name).as_ref())
        };
        [by_id, by_external_id, by_display_name].map(|t| t.map_or(&[][..], Vec::as_slice))
    }

    /// Evaluates one user; see the crate docs for the rules.
    pub fn evaluate(&self, user: &UserFacts) -> Effective {
        let disabled = !user.active;
        if let Some(lock) = &user.lock {
            let mut names: Vec<&String> = lock.roles.iter().collect();
            names.sort_unstable();
            names.dedup();
            let roles = names
                .into_iter()
                .map(|role| EffectiveRole {
                    role: role.clone(),
                    reason: Reason::Locked,
                })
                .collect();
            return Effective {
                roles,
                disabled,
                locked: true,
            };
        }

        let mapped = match self.mode {
            Mode::Single => self.single(user),
            Mode::Multi => self.multi(user),
        };
        let roles = if mapped.is_empty() {
            self.default_role
                .iter()
                .map(|role| EffectiveRole {
                    role: role.clone(),
                    reason: Reason::Default,
                })
                .collect()
        } else {
            mapped
        };
        Effective {
            roles,
            disabled,
            locked: false,
        }
    }

    fn single(&self, user: &UserFacts) -> Vec<EffectiveRole> {
        let mut best: Option<Candidate<'_>> = None;
        for group in &user.groups {
            for targets in self.targets_of(group) {
                // Lists are best first, so only the head can win.
                let Some(&target) = targets.first() else {
                    continue;
                };
                let candidate = Candidate { target, group };
                let better = match &best {
                    None => true,
                    Some(b) => candidate.rank() < b.rank(),
                };
                if better {
                    best = Some(candidate);
                }
            }
        }
        best.map(|c| self.effective(c)).into_iter().collect()
    }

    fn multi(&self, user: &UserFacts) -> Vec<EffectiveRole> {
        let mut candidates: Vec<Candidate<'_>> = Vec::new();
        for group in &user.groups {
            for targets in self.targets_of(group) {
                candidates.extend(targets.iter().map(|&target| Candidate { target, group }));
            }
        }
        // Role rank first groups each role's candidates together, best
        // first; ranks follow name order, so the output is sorted by name.
        candidates.sort_unstable_by(|a, b| {
            a.target
                .role
                .cmp(&b.target.role)
                .then_with(|| a.rank().cmp(&b.rank()))
        });
        candidates.dedup_by_key(|c| c.target.role);
        candidates.into_iter().map(|c| self.effective(c)).collect()
    }

    fn effective(&self, c: Candidate<'_>) -> EffectiveRole {
        EffectiveRole {
            role: self.role_names[c.target.role as usize].clone(),
            reason: Reason::Mapping {
                group_id: c.group.id.clone(),
                group_display_name: c.group.display_name.clone(),
            },
        }
    }
}

/// Case folding for displayName matching: Unicode lowercase, borrowed when
/// the name is ASCII with no capitals (the common case) to save an allocation.
impl crate::GroupMatch {
    /// True when `group` is the group this selector names: `id` and
    /// `externalId` case-exactly, `displayName` ignoring case (as role
    /// mappings match).
    pub fn matches(&self, group: &GroupFacts) -> bool {
        match self {
            crate::GroupMatch::Id(v) => group.id == *v,
            crate::GroupMatch::ExternalId(v) => group.external_id.as_deref() == Some(v.as_str()),
            crate::GroupMatch::DisplayName(v) => fold(v) == fold(&group.display_name),
        }
    }
}

fn fold(s: &str) -> Cow<'_, str> {
    if s.bytes().all(|b| b.is_ascii() && !b.is_ascii_uppercase()) {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(s.to_lowercase())
    }
}
