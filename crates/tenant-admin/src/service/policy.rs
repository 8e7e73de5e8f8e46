//! The role policy: read it, change it (one edit or a whole new policy),
//! preview a change, and follow the recompute jobs changes queue.
//!
//! Every change is read-modify-write: read the stored policy, apply the
//! request, and store the result only if the version read is still
//! current. A concurrent change in between makes the store refuse; the
//! request is then applied once more to the newer policy (an edit such as
//! "add this mapping" still means the same thing there), and a second
//! refusal is [`ServiceError::ConcurrentChange`]. With an expected version
//! (`If-Match`), that version must be current: [`ServiceError::PreconditionFailed`]
//! otherwise, never a retry, since the caller asked for exactly that version.

use roles::{EditError, Policy, PolicyEdit};
use store::{PolicyChange, RoleJob, RolePreview, StoreError, StoredPolicy};

use super::{ServiceError, TenantContext, page_size};

/// Users listed in a dry run's sample.
pub const DRY_RUN_SAMPLE: usize = 20;

/// What to change in a policy.
#[derive(Debug, Clone, PartialEq)]
pub enum PolicyRequest {
    /// Replace the whole policy.
    Replace(Policy),
    /// Apply one edit ([`roles::Policy::apply`]); a `RemoveMapping` index
    /// refers to the policy the edit is applied to.
    Edit(PolicyEdit),
    /// Remove the mapping with this id (looked up again on a retry: its
    /// position may have moved).
    RemoveMapping(String),
}

/// What a change that would leave the policy as it is does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoOp {
    /// Store it anyway: a new version and a recompute job (the API's
    /// contract: every accepted change answers a version and a job).
    Store,
    /// Store nothing and answer [`PolicyOutcome::Unchanged`] (the CLI's).
    Skip,
}

/// How to make a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChangeOptions {
    /// The version the caller read (`If-Match`); `None` for any.
    pub expected: Option<u64>,
    /// Preview only: store nothing, queue nothing.
    pub dry_run: bool,
    /// What a change that changes nothing does.
    pub no_op: NoOp,
}

/// What a change did.
#[derive(Debug, Clone)]
pub enum PolicyOutcome {
    /// Stored: the new policy and its queued recompute job.
    Stored(PolicyChange),
    /// A dry run: the policy it was applied to and what it would do.
    DryRun {
        /// The policy the preview was computed against.
        current: StoredPolicy,
        /// What storing it would change.
        preview: RolePreview,
    },
    /// Nothing to change ([`NoOp::Skip`]): the current policy.
    Unchanged(StoredPolicy),
}

impl PolicyRequest {
    fn apply(&self, current: &StoredPolicy) -> Result<Policy, ServiceError> {
        let (edit, on_target) = match self {
            PolicyRequest::Replace(policy) => return Ok(policy.clone()),
            PolicyRequest::Edit(edit) => (
                edit.clone(),
                matches!(
                    edit,
                    PolicyEdit::DescribeRole { .. } | PolicyEdit::RemoveRole(_)
                ),
            ),
            PolicyRequest::RemoveMapping(id) => {
                let index = current
                    .mapping_ids
                    .iter()
                    .position(|m| m == id)
                    .ok_or_else(|| ServiceError::NotFound(format!("mapping {id}")))?;
                (PolicyEdit::RemoveMapping(index), true)
            }
        };
        current.policy.apply(edit).map_err(|source| match source {
            EditError::UnknownMapping(_) => ServiceError::NotFound("mapping".into()),
            source => ServiceError::Edit { source, on_target },
        })
    }
}

/// The tenant's role policy (an empty one, version 0, when none was
/// stored).
pub async fn get_policy(ctx: &TenantContext) -> Result<StoredPolicy, ServiceError> {
    Ok(ctx.store().role_policy().await?)
}

/// Changes the policy (see the module docs); audited as the context's
/// actor.
pub async fn change_policy(
    ctx: &TenantContext,
    request: &PolicyRequest,
    options: ChangeOptions,
) -> Result<PolicyOutcome, ServiceError> {
    if let PolicyRequest::Replace(policy) = request {
        policy
            .validate()
            .map_err(|e| ServiceError::Invalid(e.to_string()))?;
    }
    let store = ctx.store();
    let mut attempts = 0;
    loop {
        attempts += 1;
        let current = store.role_policy().await?;
        // The request itself first: an invalid one is refused as such
        // (400) whatever version it names, then the version (412).
        let next = request.apply(&current)?;
        if let Some(expected) = options.expected
            && expected != current.version
        {
            return Err(ServiceError::PreconditionFailed {
                current: current.version,
            });
        }
        if options.no_op == NoOp::Skip && next == current.policy {
            return Ok(PolicyOutcome::Unchanged(current));
        }
        if options.dry_run {
            let preview = store.preview_role_policy(next, DRY_RUN_SAMPLE).await?;
            return Ok(PolicyOutcome::DryRun { current, preview });
        }
        match store
            .set_role_policy(next, Some(current.version), ctx.actor().as_str())
            .await
        {
            Ok(change) => return Ok(PolicyOutcome::Stored(change)),
            Err(StoreError::PreconditionFailed { current }) if options.expected.is_some() => {
                return Err(ServiceError::PreconditionFailed { current });
            }
            Err(StoreError::PreconditionFailed { .. }) if attempts < 2 => {}
            Err(StoreError::PreconditionFailed { current }) => {
                return Err(ServiceError::ConcurrentChange { current });
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// The tenant's recompute jobs, newest first (20 unless asked, at most 100).
pub async fn list_role_jobs(
    ctx: &TenantContext,
    limit: Option<u64>,
) -> Result<Vec<RoleJob>, ServiceError> {
    Ok(ctx.store().role_jobs(page_size(limit, 20, 100)).await?)
}

/// One of the tenant's recompute jobs.
pub async fn get_role_job(ctx: &TenantContext, id: &str) -> Result<RoleJob, ServiceError> {
    Ok(ctx.store().role_job(id).await?)
}
