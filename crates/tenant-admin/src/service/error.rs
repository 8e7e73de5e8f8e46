//! Why a service operation failed, in terms of the operation rather than
//! of a protocol: the admin API maps each variant to a status in
//! `crate::error`, the CLI to its own messages.

use std::time::Duration;

use roles::EditError;
use store::StoreError;

/// Why an admin service operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The input is invalid; the message names the offending value.
    #[error("{0}")]
    Invalid(String),
    /// No such thing (or one the caller may not see); the message names it.
    #[error("{0} not found")]
    NotFound(String),
    /// No tenant has this slug (or id).
    #[error("tenant '{0}' not found")]
    NoSuchTenant(String),
    /// The caller may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// The change conflicts with the current state.
    #[error("{0}")]
    Conflict(String),
    /// A role policy edit does not apply to the current policy.
    #[error("{source}")]
    Edit {
        /// What the `roles` crate refused.
        source: EditError,
        /// True when the edit's own target (the role it describes or
        /// removes) is what is missing, which is "not found" rather than
        /// an invalid reference in the input.
        on_target: bool,
    },
    /// The caller's expected version is not the current one.
    #[error("version mismatch: the current version is {current}")]
    PreconditionFailed {
        /// The current version.
        current: u64,
    },
    /// The role policy changed concurrently on the first attempt and on
    /// the retry; the caller may simply try again.
    #[error("the role policy is being changed concurrently (it is now version {current}); retry")]
    ConcurrentChange {
        /// The version the second attempt found.
        current: u64,
    },
    /// A login failed: wrong e-mail, password or tenant (one message for
    /// all, so the answer tells nothing about which accounts exist).
    #[error("invalid email, password or tenant")]
    WrongCredentials,
    /// Too many failed logins: refused before any password is checked.
    #[error("too many failed logins for this account or from this address; try again in {} s", retry_secs(*retry_after))]
    Throttled {
        /// How long until the next attempt is accepted.
        retry_after: Duration,
    },
    /// A store failure, passed through.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A bug in the service (the message is for the log only).
    #[error("internal error: {0}")]
    Internal(String),
}

/// Whole seconds to wait, rounded up (at least 1): a client that waits
/// exactly this long is let through.
pub fn retry_secs(d: Duration) -> u64 {
    (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
}

impl From<scim::Error> for ServiceError {
    fn from(e: scim::Error) -> Self {
        ServiceError::Invalid(e.to_string())
    }
}
