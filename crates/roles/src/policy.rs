//! A tenant's role policy and its validation.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

/// The longest role name accepted, counted in Unicode scalar values.
pub const MAX_ROLE_NAME_CHARS: usize = 128;

/// An application role a tenant defines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Role {
    /// The role's name, as the application sees it; unique in the policy.
    pub name: String,
    /// Free text for administrators.
    #[serde(default)]
    pub description: String,
}

/// Which of a group's identifiers a mapping matches, and the value to match.
///
/// Serialized externally tagged: `{"displayName": "Admins"}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum GroupMatch {
    /// The group's SCIM `id`, compared case-exactly.
    Id(String),
    /// The group's `externalId`, compared case-exactly (RFC 7643 §3.1 makes it caseExact).
    ExternalId(String),
    /// The group's `displayName`, compared case-insensitively: RFC 7643 §4.2
    /// declares it caseExact=false, so IdPs may change its case at will.
    DisplayName(String),
}

impl GroupMatch {
    /// The value to match, whatever the attribute.
    pub fn value(&self) -> &str {
        match self {
            GroupMatch::Id(v) | GroupMatch::ExternalId(v) | GroupMatch::DisplayName(v) => v,
        }
    }

    /// The SCIM attribute name the match is on, for messages.
    pub fn attribute(&self) -> &'static str {
        match self {
            GroupMatch::Id(_) => "id",
            GroupMatch::ExternalId(_) => "externalId",
            GroupMatch::DisplayName(_) => "displayName",
        }
    }
}

/// Members of a matching group get `role`; `priority` ranks mappings in
/// [`Mode::Single`] and picks the reason shown in [`Mode::Multi`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Mapping {
    /// The group this mapping applies to.
    pub group: GroupMatch,
    /// The role granted; must be one of the policy's roles.
    pub role: String,
    /// Higher wins.
    pub priority: i32,
}

/// How many mapped roles a user gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Only the mapped role with the highest priority.
    Single,
    /// Every mapped role.
    Multi,
}

/// One tenant's roles and the rules that assign them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Policy {
    /// The roles the tenant defines.
    pub roles: Vec<Role>,
    /// The role of users no mapping matches; `None` gives them no role.
    #[serde(default)]
    pub default_role: Option<String>,
    /// Group-to-role mappings; their order does not matter.
    #[serde(default)]
    pub mappings: Vec<Mapping>,
    /// Whether users get one mapped role or all of them.
    pub mode: Mode,
}

/// Why a [`Policy`] was rejected. Messages name the offending value because
/// they reach administrators verbatim in HTTP 400 bodies.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// A role has an empty name.
    #[error("roles[{index}]: the role name is empty")]
    EmptyRoleName {
        /// Position in `roles`.
        index: usize,
    },
    /// A role name starts or ends with whitespace.
    #[error("roles[{index}]: role name {name:?} has leading or trailing whitespace")]
    UntrimmedRoleName {
        /// Position in `roles`.
        index: usize,
        /// The name as given.
        name: String,
    },
    /// A role name is longer than [`MAX_ROLE_NAME_CHARS`].
    #[error(
        "roles[{index}]: role name {name:?} is {chars} characters long; at most {MAX_ROLE_NAME_CHARS} are allowed"
    )]
    RoleNameTooLong {
        /// Position in `roles`.
        index: usize,
        /// The name as given.
        name: String,
        /// Its length in Unicode scalar values.
        chars: usize,
    },
    /// Two roles have the same name (compared case-sensitively).
    #[error("roles[{index}]: role {name:?} is defined more than once")]
    DuplicateRole {
        /// Position in `roles` of the second definition.
        index: usize,
        /// The repeated name.
        name: String,
    },
    /// The default role is not one of the policy's roles.
    #[error("defaultRole: {name:?} is not one of the defined roles")]
    UnknownDefaultRole {
        /// The default role as given.
        name: String,
    },
    /// A mapping grants a role the policy does not define.
    #[error("mappings[{index}]: role {role:?} is not one of the defined roles")]
    UnknownMappingRole {
        /// Position in `mappings`.
        index: usize,
        /// The role as given.
        role: String,
    },
    /// A mapping's group value is empty or only whitespace, so it could
    /// only ever match by accident.
    #[error("mappings[{index}]: the group {attribute} to match is empty")]
    EmptyGroupMatch {
        /// Position in `mappings`.
        index: usize,
        /// `id`, `externalId` or `displayName`.
        attribute: &'static str,
    },
}

impl Policy {
    /// Checks the policy; the first problem found is returned, roles first,
    /// then the default role, then mappings, each in order.
    pub fn validate(&self) -> Result<(), PolicyError> {
        let mut names = HashSet::with_capacity(self.roles.len());
        for (index, role) in self.roles.iter().enumerate() {
            let name = role.name.as_str();
            if name.is_empty() {
                return Err(PolicyError::EmptyRoleName { index });
            }
            if name.trim() != name {
                return Err(PolicyError::UntrimmedRoleName {
                    index,
                    name: name.to_owned(),
                });
            }
            let chars = name.chars().count();
            if chars > MAX_ROLE_NAME_CHARS {
                return Err(PolicyError::RoleNameTooLong {
                    index,
                    name: name.to_owned(),
                    chars,
                });
            }
            if !names.insert(name) {
                return Err(PolicyError::DuplicateRole {
                    index,
                    name: name.to_owned(),
                });
            }
        }
        if let Some(default) = &self.default_role
            && !names.contains(default.as_str())
        {
            return Err(PolicyError::UnknownDefaultRole {
                name: default.clone(),
            });
        }
        for (index, mapping) in self.mappings.iter().enumerate() {
            if mapping.group.value().trim().is_empty() {
                return Err(PolicyError::EmptyGroupMatch {
                    index,
                    attribute: mapping.group.attribute(),
                });
            }
            if !names.contains(mapping.role.as_str()) {
                return Err(PolicyError::UnknownMappingRole {
                    index,
                    role: mapping.role.clone(),
                });
            }
        }
        Ok(())
    }
}
