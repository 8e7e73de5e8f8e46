//! One administrative change at a time to a [`Policy`].
//!
//! The admin API and the CLI both offer fine-grained edits (add a role,
//! map a group, change the default). Each is applied here to the current
//! policy, giving the whole new policy to validate, preview and store, so
//! the two front ends cannot disagree on what an edit means.

use crate::{Mapping, Mode, Policy, PolicyError, Role};

/// One change to a policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyEdit {
    /// Define a new role (its name must be new).
    AddRole(Role),
    /// Change a role's description.
    DescribeRole {
        /// The role.
        name: String,
        /// Its new description.
        description: String,
    },
    /// Remove a role that neither the default nor any mapping uses.
    RemoveRole(String),
    /// Set (or with `None` clear) the default role.
    SetDefault(Option<String>),
    /// Switch between single and multi mode.
    SetMode(Mode),
    /// Add a group-to-role mapping.
    AddMapping(Mapping),
    /// Remove the mapping at this position of `mappings`.
    RemoveMapping(usize),
}

/// Why an edit cannot apply, besides the new policy being invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EditError {
    /// The edit names a role the policy does not define.
    #[error("role {0:?} is not defined")]
    UnknownRole(String),
    /// The edit adds a role that is already defined.
    #[error("role {0:?} is already defined")]
    RoleExists(String),
    /// The role to remove is still in use.
    #[error("role {role:?} is still used by {used_by}; change that first")]
    RoleInUse {
        /// The role.
        role: String,
        /// `the default role` or `mappings[i]`.
        used_by: String,
    },
    /// No mapping at that position.
    #[error("there is no mapping number {0}")]
    UnknownMapping(usize),
    /// The mapping to add already exists (same group, role and priority).
    #[error("that mapping already exists")]
    DuplicateMapping,
    /// The resulting policy is invalid.
    #[error(transparent)]
    Invalid(#[from] PolicyError),
}

impl Policy {
    /// The policy with `edit` applied, validated; `self` is unchanged.
    pub fn apply(&self, edit: PolicyEdit) -> Result<Policy, EditError> {
        let mut next = self.clone();
        match edit {
            PolicyEdit::AddRole(role) => {
                if next.roles.iter().any(|r| r.name == role.name) {
                    return Err(EditError::RoleExists(role.name));
                }
                next.roles.push(role);
            }
            PolicyEdit::DescribeRole { name, description } => {
                let role = next
                    .roles
                    .iter_mut()
                    .find(|r| r.name == name)
                    .ok_or(EditError::UnknownRole(name))?;
                role.description = description;
            }
            PolicyEdit::RemoveRole(name) => {
                let Some(index) = next.roles.iter().position(|r| r.name == name) else {
                    return Err(EditError::UnknownRole(name));
                };
                if next.default_role.as_deref() == Some(name.as_str()) {
                    return Err(EditError::RoleInUse {
                        role: name,
                        used_by: "the default role".into(),
                    });
                }
                if let Some(i) = next.mappings.iter().position(|m| m.role == name) {
                    return Err(EditError::RoleInUse {
                        role: name,
                        used_by: format!("mappings[{i}]"),
                    });
                }
                next.roles.remove(index);
            }
            PolicyEdit::SetDefault(role) => {
                if let Some(name) = &role
                    && !next.roles.iter().any(|r| &r.name == name)
                {
                    return Err(EditError::UnknownRole(name.clone()));
                }
                next.default_role = role;
            }
            PolicyEdit::SetMode(mode) => next.mode = mode,
            PolicyEdit::AddMapping(mapping) => {
                if !next.roles.iter().any(|r| r.name == mapping.role) {
                    return Err(EditError::UnknownRole(mapping.role));
                }
                if next.mappings.contains(&mapping) {
                    return Err(EditError::DuplicateMapping);
                }
                next.mappings.push(mapping);
            }
            PolicyEdit::RemoveMapping(index) => {
                if index >= next.mappings.len() {
                    return Err(EditError::UnknownMapping(index));
                }
                next.mappings.remove(index);
            }
        }
        next.validate()?;
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::GroupMatch;

    fn role(name: &str) -> Role {
        Role {
            name: name.into(),
            description: String::new(),
        }
    }

    fn base() -> Policy {
        Policy {
            roles: vec![role("viewer"), role("admin")],
            default_role: Some("viewer".into()),
            mappings: vec![Mapping {
                group: GroupMatch::DisplayName("Admins".into()),
                role: "admin".into(),
                priority: 10,
            }],
            mode: Mode::Single,
        }
    }

    #[test]
    fn each_edit_changes_only_what_it_names() {
        let p = base();
        let added = p.apply(PolicyEdit::AddRole(role("editor"))).unwrap();
        assert_eq!(added.roles.len(), 3);
        assert_eq!(added.mappings, p.mappings);
        let described = p
            .apply(PolicyEdit::DescribeRole {
                name: "admin".into(),
                description: "everything".into(),
            })
            .unwrap();
        assert_eq!(described.roles[1].description, "everything");
        let cleared = p.apply(PolicyEdit::SetDefault(None)).unwrap();
        assert_eq!(cleared.default_role, None);
        let multi = p.apply(PolicyEdit::SetMode(Mode::Multi)).unwrap();
        assert_eq!(multi.mode, Mode::Multi);
        let unmapped = p.apply(PolicyEdit::RemoveMapping(0)).unwrap();
        assert!(unmapped.mappings.is_empty());
        let removed = unmapped
            .apply(PolicyEdit::RemoveRole("admin".into()))
            .unwrap();
        assert_eq!(removed.roles, vec![role("viewer")]);
        let mapped = p
            .apply(PolicyEdit::AddMapping(Mapping {
                group: GroupMatch::ExternalId("ext-1".into()),
                role: "viewer".into(),
                priority: 0,
            }))
            .unwrap();
        assert_eq!(mapped.mappings.len(), 2);
        assert_eq!(p, base(), "the original is untouched");
    }

    #[test]
    fn refused_edits_say_why() {
        let p = base();
        assert_eq!(
            p.apply(PolicyEdit::AddRole(role("admin"))),
            Err(EditError::RoleExists("admin".into()))
        );
        assert_eq!(
            p.apply(PolicyEdit::RemoveRole("viewer".into())),
            Err(EditError::RoleInUse {
                role: "viewer".into(),
                used_by: "the default role".into()
            })
        );
        let e = p.apply(PolicyEdit::RemoveRole("admin".into())).unwrap_err();
        assert_eq!(
            e.to_string(),
            "role \"admin\" is still used by mappings[0]; change that first"
        );
        assert_eq!(
            p.apply(PolicyEdit::RemoveRole("root".into())),
            Err(EditError::UnknownRole("root".into()))
        );
        assert_eq!(
            p.apply(PolicyEdit::SetDefault(Some("root".into()))),
            Err(EditError::UnknownRole("root".into()))
        );
        assert_eq!(
            p.apply(PolicyEdit::RemoveMapping(1)),
            Err(EditError::UnknownMapping(1))
        );
        assert_eq!(
            p.apply(PolicyEdit::AddMapping(p.mappings[0].clone())),
            Err(EditError::DuplicateMapping)
        );
        assert!(matches!(
            p.apply(PolicyEdit::AddRole(role(" spaced"))),
            Err(EditError::Invalid(PolicyError::UntrimmedRoleName { .. }))
        ));
        assert!(matches!(
            p.apply(PolicyEdit::AddMapping(Mapping {
                group: GroupMatch::Id("  ".into()),
                role: "admin".into(),
                priority: 0,
            })),
            Err(EditError::Invalid(PolicyError::EmptyGroupMatch { .. }))
        ));
    }
}
