//! The admin service layer: one implementation of every admin operation,
//! called by the HTTP API (`/admin/v1`), the CLI (`scimgate ...`) and,
//! later, the server-rendered console, so all of them behave the same.
//!
//! Operations take plain inputs and return domain results (store and
//! `roles` types); failures are [`ServiceError`]s, which each caller maps
//! to its own surface (the API in `crate::error`, the CLI to its messages).
//! Tenant-scoped operations take a [`TenantContext`], built from a
//! [`store::TenantStore`]: they cannot reach another tenant. Only the
//! operator-level operations (list and create tenants, the global audit
//! log, logins) take a [`store::AdminStore`].
//!
//! Who may call what (operator, tenant admin, suspended tenant) is decided
//! before a context is built: by the API's extractors, by the CLI's being
//! run by the operating system account that owns the database.

use store::{Tenant, TenantStore};

mod admins;
pub mod delivery;
mod directory;
mod error;
pub mod health;
mod locks;
mod logs;
mod policy;
pub mod safety;
pub mod setup_links;
mod tenants;
mod tokens;

pub mod login;
pub mod throttle;

pub use admins::{create_tenant_admin, delete_tenant_admin, find_tenant_admin, list_tenant_admins};
pub use directory::{
    DirectoryQuery, GroupPage, UserDetails, UserPage, effective_role_names, find_user, get_group,
    get_user, list_groups, list_users,
};
pub use error::{ServiceError, retry_secs};
pub use locks::{list_locks, lock_user, unlock_user};
pub use logs::{
    AuditFilter, AuditPage, ProvisioningFilter, ProvisioningPage, global_audit, provisioning_log,
    tenant_audit,
};
pub use policy::{
    ChangeOptions, NoOp, PolicyOutcome, PolicyRequest, change_policy, get_policy, get_role_job,
    list_role_jobs,
};
pub use tenants::{
    Child, NewTenantRequest, RoutingOutcome, TenantOverview, TenantPage, change_routing,
    create_tenant, delete_tenant, find_tenant, link_child, list_children, list_tenants,
    routing_policy, set_tenant_kind, tenant_overview, unlink_child, update_tenant,
};
pub use tokens::{issue_token, list_tokens, revoke_token};

/// Who makes a change, as the audit log names them (`operator:<email>`,
/// `tenant-admin:<email>`, `cli:<user>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    name: String,
    operator: bool,
}

impl Actor {
    /// An operator (or the CLI, which acts with operator rights).
    pub fn operator(name: impl Into<String>) -> Actor {
        Actor {
            name: name.into(),
            operator: true,
        }
    }

    /// A tenant admin.
    pub fn tenant_admin(name: impl Into<String>) -> Actor {
        Actor {
            name: name.into(),
            operator: false,
        }
    }

    /// The audit log's name for this actor.
    pub fn as_str(&self) -> &str {
        &self.name
    }

    /// True for operators (and the CLI).
    pub fn is_operator(&self) -> bool {
        self.operator
    }
}

/// One tenant, and who acts on it: what every tenant-scoped operation
/// takes.
#[derive(Debug, Clone)]
pub struct TenantContext {
    store: TenantStore,
    actor: Actor,
}

impl TenantContext {
    /// A context over `store`'s tenant for `actor`, whose right to act on
    /// it the caller has checked.
    pub fn new(store: TenantStore, actor: Actor) -> TenantContext {
        TenantContext { store, actor }
    }

    /// The tenant.
    pub fn tenant(&self) -> &Tenant {
        self.store.tenant()
    }

    /// The tenant's store handle.
    pub fn store(&self) -> &TenantStore {
        &self.store
    }

    /// Who acts.
    pub fn actor(&self) -> &Actor {
        &self.actor
    }
}

/// A page size: `default` when absent, between 1 and `max`.
pub(crate) fn page_size(value: Option<u64>, default: u64, max: u64) -> u64 {
    value.unwrap_or(default).clamp(1, max)
}

/// A required text field that may not be blank.
pub(crate) fn not_blank(field: &str, value: &str) -> Result<(), ServiceError> {
    if value.trim().is_empty() {
        return Err(ServiceError::Invalid(format!("{field} must not be empty")));
    }
    Ok(())
}
