//! Application roles derived from group membership, per tenant.
//!
//! The crate decides one thing: given a tenant's role [`Policy`] and what is
//! known about one user ([`UserFacts`]: `active`, groups, role-lock), which
//! application roles the user has and why ([`Effective`]). It is pure: no
//! I/O, no clock, no randomness. The answer depends only on the two inputs,
//! so a recompute after a policy change gives the same result a sync would.
//!
//! # Rules
//!
//! 1. **Locked users.** A user with a [`Lock`] has exactly the lock's roles,
//!    deduplicated and sorted, each with reason [`Reason::Locked`], and
//!    nothing else, whatever their groups, the mappings, the default role or
//!    the mode. This holds until the lock is removed. The lock's roles are
//!    authoritative even if a role was since removed from the policy: an
//!    administrator pinned the user on purpose, and silently dropping the
//!    role would break that promise; the administrator resolves it by
//!    unlocking. A lock with no roles pins the user to no role.
//! 2. **Mapped roles.** Otherwise every [`Mapping`] whose [`GroupMatch`]
//!    matches one of the user's groups offers its role. `id` and
//!    `externalId` match case-exactly; `displayName` matches when both sides
//!    have the same Unicode lowercase (RFC 7643 declares it caseExact=false).
//!    Candidates are ranked by priority (higher first), then role name,
//!    then group id, then group displayName, so the answer never depends on
//!    the order of `mappings` or of the user's groups.
//!    - [`Mode::Single`]: the best-ranked candidate's role, alone.
//!    - [`Mode::Multi`]: every offered role once; its reason is that of its
//!      best-ranked candidate.
//! 3. **Default.** If no mapping matches, the user has the default role with
//!    reason [`Reason::Default`], or no role if the policy has none. A user
//!    who leaves their last mapped group falls back to it at once: nothing
//!    about earlier evaluations is remembered.
//! 4. **Deactivated users.** `active: false` sets [`Effective::disabled`];
//!    roles are still computed, so reactivation restores them.
//!
//! Roles in an [`Effective`] are sorted by name (byte order), each once.
//! [`changed`] tells whether two results differ in role names or
//! `disabled`; a different reason alone is not a change.
//!
//! # Properties
//!
//! `tests/properties.rs` checks these for generated policies and users:
//!
//! 1. **Locks are never overridden.** For any policy and any user with a
//!    lock, the result's roles are exactly the lock's distinct roles, in
//!    sorted order, each with reason `Locked`.
//! 2. **Only the inputs matter.** Evaluating twice gives equal results, and
//!    reordering (shuffling or reversing) `mappings` or the user's groups
//!    gives an equal result, reasons included.
//! 3. **Removing a mapping never adds a role** (for unlocked users). Let `m`
//!    be any one mapping, and *before* and *after* the results with and
//!    without it.
//!    - In [`Mode::Multi`]: either after's role names are a subset of
//!      before's, or no mapping matches any more and after is exactly the
//!      default role (reason `Default`). Also, before's roles that after
//!      lacks are at most `m`'s role.
//!    - In [`Mode::Single`]: after equals before, reasons included, unless
//!      `m` could have been the winner: it grants the winning role, matches
//!      the group named in the winning reason, and has the highest priority
//!      among the mappings that match the user. Removing the winner may let
//!      the next-ranked mapping win, which can be a role the user did not
//!      have, or, if none is left, the default role.
//! 4. **The index is faithful.** [`CompiledPolicy::evaluate`] equals a
//!    reference implementation that scans every mapping against every group.
//!
//! # Use
//!
//! Validate a policy when it is stored; compile it once per recompute and
//! evaluate each user. Evaluation costs O(the user's groups), not
//! O(mappings).
//!
//! ```
//! use roles::{GroupFacts, GroupMatch, Mapping, Mode, Policy, Reason, Role, UserFacts};
//!
//! let role = |name: &str| Role { name: name.into(), description: String::new() };
//! let policy = Policy {
//!     roles: vec![role("admin"), role("viewer")],
//!     default_role: Some("viewer".into()),
//!     mappings: vec![Mapping {
//!         group: GroupMatch::DisplayName("Admins".into()),
//!         role: "admin".into(),
//!         priority: 10,
//!     }],
//!     mode: Mode::Single,
//! };
//! let compiled = policy.compile()?;
//! let user = UserFacts {
//!     active: true,
//!     groups: vec![GroupFacts {
//!         id: "7f3a".into(),
//!         external_id: None,
//!         display_name: "ADMINS".into(),
//!     }],
//!     lock: None,
//! };
//! let effective = compiled.evaluate(&user);
//! assert_eq!(effective.role_names(), ["admin"]);
//! assert_eq!(effective.roles[0].reason.to_string(), "mapping: ADMINS");
//!
//! let left = UserFacts { groups: vec![], ..user };
//! let effective = compiled.evaluate(&left);
//! assert_eq!(effective.role_names(), ["viewer"]);
//! assert_eq!(effective.roles[0].reason, Reason::Default);
//! # Ok::<(), roles::PolicyError>(())
//! ```

mod edit;
mod eval;
mod policy;

pub use edit::{EditError, PolicyEdit};
pub use eval::{
    CompiledPolicy, Effective, EffectiveRole, GroupFacts, Lock, Reason, UserFacts, changed,
    evaluate,
};
pub use policy::{GroupMatch, MAX_ROLE_NAME_CHARS, Mapping, Mode, Policy, PolicyError, Role};

#[cfg(test)]
mod tests;
