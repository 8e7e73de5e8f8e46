//! scimgate persistence: sea-orm entities and the repositories over them.
//!
//! The one rule: every query about a tenant's directory goes through a
//! [`TenantStore`], and a `TenantStore` can only be made from a [`Tenant`],
//! which only this crate can construct (from a database row). Operator-level
//! work (tenants, tokens) goes through [`AdminStore`], named so that its use
//! stands out in review. No sea-orm type appears in this crate's public API:
//! callers see documents (`serde_json::Value`), ids and the types below.
//!
//! SQLite is the embedded default and PostgreSQL the production engine; both
//! run the whole test suite.
//!
//! How it works, in brief (details at the top of each module):
//! - **Writes** are atomic one by one. On PostgreSQL each runs in its own
//!   transaction with the resource's row locked (`FOR UPDATE`). On SQLite,
//!   which has one writer and whose deferred transactions cannot safely
//!   upgrade, every write of the process goes to one writer thread
//!   (module `writer`): it takes the writes that are queued, runs each in a
//!   savepoint of one `BEGIN IMMEDIATE` transaction (a failed write rolls
//!   back to its savepoint alone), commits once for the batch (group
//!   commit: one fsync) and only then answers each. Either way the row is
//!   written with `WHERE version = <read>`; a conflict, a deadlock or a
//!   serialization failure reruns the write, at most 16 times, after which
//!   the caller gets `Unavailable`. The outbox event is inserted by the
//!   same transaction ([`OutboxEvent`]).
//! - **Members** are rows (`memberships`), changed by inserts and deletes
//!   under the group's row lock: concurrent member PATCHes on one group
//!   serialize and all land, in O(change).
//! - **Documents** are JSON text, stored as given; the indexed columns
//!   (userName, externalId, displayName, active, emails[].value) are derived
//!   from them on every write, case-insensitive ones lower-cased exactly as
//!   `scim::filter` lower-cases.
//! - **Lists** translate the filter AST to SQL where that is exact and
//!   finish the rest with `scim::filter::matches` over at most
//!   [`StoreOptions::scan_limit`] rows, else `TooMany`.
//! - **Roles** (the `roles` crate's policy, locks and results) are derived
//!   per user inside the SCIM write that changes their inputs, with a
//!   `user.roles_changed` event when they change (module `roles`).
//! - **Background jobs** (role recompute, and kinds other crates register)
//!   are rows of `jobs`, claimed under a lease that fences every write of
//!   their holder, retried with backoff, timed by a [`Clock`] (module
//!   `jobs`).
//! - **Timestamps** are UTC with millisecond precision (what `meta`
//!   shows), so a `meta.created eq` filter can match what a client read.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use scim::AttrPath;
use scim::filter::Filter;
use scim::patch::{Member, MemberChange};
use serde_json::Value;
use uuid::Uuid;

#[macro_use]
mod macros;

mod admin;
mod audit;
mod columns;
pub mod copies;
mod db;
pub mod delivery;
mod directory;
mod entity;
pub mod events;
pub mod fanout;
pub mod health;
mod jobs;
mod list;
mod log;
pub mod metrics;
pub mod render;
mod resend;
mod roles;
pub mod routing;
pub mod safety;
pub mod setup_links;
mod sqlite;
mod stats;
mod translate;
mod writer;

pub use admin::TenantActivity;
pub use events::{EventQuery, EventType, ResourceKind, StoredEvent, UnknownEventType};
pub use jobs::{
    Clock, DEFAULT_MAX_ATTEMPTS, Job, JobContext, JobError, JobHandler, JobHandlers, JobProgress,
    JobResult, JobStatus, JobWorker, ManualClock, NewJob, ROLE_RECOMPUTE, ROUTING_REROUTE, Reroute,
    RoleJob, RoleRecompute, SystemClock,
};
pub use resend::{MAPPING_RESEND, MAX_RESEND};

/// The schema version this build migrates to (see the `migrations` crate).
pub const SCHEMA_VERSION: u32 = migrations::SCHEMA_VERSION;

/// Result alias for this crate.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Why a store operation failed. The gateway maps each variant to an HTTP
/// status in one place; messages are safe to show to the tenant's client
/// except `Unavailable` and `Internal`, whose detail goes to the log only.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No such resource in this tenant (also for other tenants' ids).
    #[error("{0} not found")]
    NotFound(String),
    /// A unique value (userName, group displayName, tenant slug) is taken.
    #[error("{0}")]
    Uniqueness(String),
    /// The request names state that is no longer there (e.g. held changes
    /// already released or discarded) (HTTP 409).
    #[error("{0}")]
    Conflict(String),
    /// The caller's expected version (If-Match) is not the current one.
    #[error("version mismatch: current version is {current}")]
    PreconditionFailed {
        /// The resource's current version.
        current: u64,
    },
    /// A value the store checks is unacceptable (e.g. a member id that is
    /// neither a user nor a group of this tenant).
    #[error("{0}")]
    InvalidValue(String),
    /// The query would scan more rows than the configured bound.
    #[error("{0}")]
    TooMany(String),
    /// A protocol error raised by a caller's modification closure.
    #[error(transparent)]
    Scim(#[from] scim::Error),
    /// The database cannot be reached or timed out (HTTP 503).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// Anything else; a bug or a corrupt row (HTTP 500, logged).
    #[error("internal store error: {0}")]
    Internal(String),
}

/// Which database engine a [`Store`] runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite (embedded default).
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// Connection and behaviour settings.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Maximum pooled connections (PostgreSQL); on SQLite, the most idle
    /// reader connections kept.
    pub max_connections: u32,
    /// SQLite `synchronous=FULL` (true, default: no acknowledged write is
    /// lost on power failure) or `NORMAL` (faster; may lose the last
    /// transactions on power loss, never corrupts).
    pub sqlite_synchronous_full: bool,
    /// Most rows a filter the database cannot evaluate may scan in memory
    /// before the request is refused with `tooMany`.
    pub scan_limit: usize,
    /// Where background jobs read the time (tests pass a [`ManualClock`]).
    pub clock: Arc<dyn Clock>,
    /// How long a claimed job stays its worker's without a heartbeat
    /// (heartbeats come every third of it).
    pub job_lease: std::time::Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            max_connections: 16,
            sqlite_synchronous_full: true,
            scan_limit: 50_000,
            clock: Arc::new(SystemClock),
            job_lease: std::time::Duration::from_secs(30),
        }
    }
}

/// The kind of a tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TenantKind {
    /// An ordinary tenant with its own directory.
    Standard,
    /// An MSP super tenant that fans out to child tenants.
    Super,
}

/// Whether a tenant's SCIM endpoint serves requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TenantStatus {
    /// Serving.
    Active,
    /// Refused with 403 until reactivated.
    Suspended,
}

/// A tenant, as read from the database. Only this crate constructs it, so
/// holding one proves the tenant was resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    id: Uuid,
    slug: String,
    name: String,
    kind: TenantKind,
    status: TenantStatus,
    created_at: DateTime<Utc>,
}

impl Tenant {
    /// The tenant's id.
    pub fn id(&self) -> Uuid {
        self.id
    }
    /// The URL slug (`/tenants/{slug}/scim/v2`).
    pub fn slug(&self) -> &str {
        &self.slug
    }
    /// The display name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Standard or super.
    pub fn kind(&self) -> TenantKind {
        self.kind
    }
    /// Active or suspended.
    pub fn status(&self) -> TenantStatus {
        self.status
    }
    /// When the tenant was created.
    pub fn created_at(&self) -> DateTime<Utc> {
        self.created_at
    }
}

/// A token scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Read and write the tenant's directory (what an IdP needs).
    ScimWrite,
    /// Read the tenant's directory (for the tenant's application).
    ScimRead,
    /// Read the tenant's event feed (`/admin/v1/tenants/{t}/events`), and
    /// nothing else.
    EventsRead,
}

impl Scope {
    /// The wire spelling: `scim:write` / `scim:read`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::ScimWrite => "scim:write",
            Scope::ScimRead => "scim:read",
            Scope::EventsRead => "events:read",
        }
    }
}

/// A token as listed: never its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    /// The token's id (also embedded in the token string).
    pub id: Uuid,
    /// The tenant it belongs to.
    pub tenant_id: Uuid,
    /// A label ("entra-prod", "rotation 2026-11").
    pub name: String,
    /// What it may do.
    pub scopes: Vec<Scope>,
    /// When it was issued.
    pub created_at: DateTime<Utc>,
    /// When it stops working, if ever.
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A freshly issued token: the only time its secret exists in clear.
#[derive(Clone)]
pub struct IssuedToken {
    /// The stored facts.
    pub info: TokenInfo,
    /// The bearer token to hand to the IdP; shown once, stored only hashed.
    pub secret: String,
}

// Hand-written so that a stray `{:?}` in a log line can never print the
// secret.
impl std::fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedToken")
            .field("info", &self.info)
            .field("secret", &"[redacted]")
            .finish()
    }
}

/// What a valid bearer token resolves to.
#[derive(Debug, Clone)]
pub struct Authenticated {
    /// The token's tenant.
    pub tenant: Tenant,
    /// The token's id.
    pub token_id: Uuid,
    /// Its scopes.
    pub scopes: Vec<Scope>,
    /// When it expires, so a cache never outlives it.
    pub expires_at: Option<DateTime<Utc>>,
    /// The slug of the super tenant feeding this tenant, if one does: its
    /// directory is then written only through that super tenant.
    pub fed_by: Option<String>,
}

/// A request for a new tenant.
#[derive(Debug, Clone)]
pub struct NewTenant {
    /// URL slug: lowercase letters, digits and `-`, 1..=63 chars.
    pub slug: String,
    /// Display name.
    pub name: String,
    /// Standard or super.
    pub kind: TenantKind,
}

/// A request for a new token.
#[derive(Debug, Clone)]
pub struct NewToken {
    /// A label.
    pub name: String,
    /// Scopes; must not be empty.
    pub scopes: Vec<Scope>,
    /// Optional expiry.
    pub expires_at: Option<DateTime<Utc>>,
}

/// A stored User or Group.
#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    /// The server-assigned id.
    pub id: String,
    /// The canonical document as validated (no `id`, no `meta`, no
    /// `members`, no `groups`: those are rendered from columns and tables).
    pub document: Value,
    /// Incremented on every change; the ETag is `W/"<version>"`.
    pub version: u64,
    /// When created.
    pub created: DateTime<Utc>,
    /// When last changed.
    pub last_modified: DateTime<Utc>,
    /// Group members, when asked for (`None` when not loaded).
    pub members: Option<Vec<Member>>,
    /// The copies a write on a super tenant changed in its children (empty
    /// for reads and for other tenants).
    pub routed: Vec<copies::Routed>,
}

/// A group a user belongs to, for the User's read-only `groups` attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRef {
    /// The group's id.
    pub id: String,
    /// The group's displayName.
    pub display: String,
}

/// A list request (RFC 7644 §3.4.2), already parsed and bounded.
#[derive(Debug, Clone)]
pub struct ListQuery {
    /// The filter, if any.
    pub filter: Option<Filter>,
    /// Attribute to sort by.
    pub sort_by: Option<AttrPath>,
    /// Descending order (`sortOrder=descending`).
    pub descending: bool,
    /// 1-based index of the first result.
    pub start_index: u64,
    /// Page size (already capped by the caller); 0 asks for the count only.
    pub count: u64,
    /// Load Group members (false for `excludedAttributes=members`).
    pub with_members: bool,
    /// For Users: what the page should bring along from other tables.
    pub user_extras: UserExtras,
}

/// What a page of Users brings along from other tables, read in the same
/// statement as the users where the list runs in SQL (an IdP's lookup
/// before each write is then one round trip to the database, not three).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UserExtras {
    /// Each user's direct groups (the `groups` attribute).
    pub groups: bool,
    /// Each user's stored effective roles (scimgate's extension).
    pub roles: bool,
}

/// One page of results.
#[derive(Debug, Clone)]
pub struct Page {
    /// All matches, regardless of paging.
    pub total: u64,
    /// This page.
    pub resources: Vec<Resource>,
    /// The users' groups, by user id, when [`UserExtras::groups`] was asked
    /// and read with the page (`None`: the caller reads them itself).
    pub groups: Option<HashMap<String, Vec<GroupRef>>>,
    /// The users' stored effective roles, by user id (users without any
    /// are absent), when [`UserExtras::roles`] was asked and read with the
    /// page (`None`: the caller reads them itself).
    pub roles: Option<HashMap<String, ::roles::Effective>>,
}

/// One provisioning-log entry: a SCIM write and its outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct ProvisioningEntry {
    /// When the request arrived.
    pub at: DateTime<Utc>,
    /// HTTP method.
    pub method: String,
    /// "User" or "Group" (or "Bulk" later).
    pub resource_type: String,
    /// The resource id, when known.
    pub resource_id: Option<String>,
    /// userName / displayName / externalId, whichever identifies it best.
    pub identifier: Option<String>,
    /// "success" or "failure".
    pub outcome: String,
    /// HTTP status returned.
    pub status: u16,
    /// How long the request took.
    pub duration_ms: u64,
    /// The request id (also in logs).
    pub request_id: String,
    /// The SCIM error detail for failures.
    pub detail: Option<String>,
    /// For a write on a super tenant, the copies it changed in children
    /// and why ([`copies::routed_json`]); `None` otherwise.
    pub routed: Option<Value>,
}

/// Filters for reading the provisioning log.
#[derive(Debug, Clone, Default)]
pub struct LogQuery {
    /// Only entries at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only entries before this time.
    pub until: Option<DateTime<Utc>>,
    /// Only this outcome.
    pub outcome: Option<String>,
    /// Only this resource type.
    pub resource_type: Option<String>,
    /// Only this resource id.
    pub resource_id: Option<String>,
    /// Page: entries after this id (newest first when `None`).
    pub before_id: Option<i64>,
    /// Page size.
    pub limit: u64,
}

/// A tenant's stored role policy and its version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPolicy {
    /// The policy, roles and mappings in the order they were stored.
    pub policy: ::roles::Policy,
    /// Bumped by every replacement; 0 when none was ever stored.
    pub version: u64,
    /// The stored id of each mapping, parallel to `policy.mappings`.
    pub mapping_ids: Vec<String>,
}

/// An administrator's role-lock on one user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockInfo {
    /// The locked user's id.
    pub user_id: String,
    /// The roles the user keeps while locked, sorted, each once.
    pub roles: Vec<String>,
    /// Why the user was locked.
    pub reason: String,
    /// Who locked the user.
    pub locked_by: String,
    /// When the lock was set.
    pub locked_at: DateTime<Utc>,
}

/// Changes to a tenant's name or status; `None` keeps the current value.
#[derive(Debug, Clone, Default)]
pub struct TenantUpdate {
    /// New display name.
    pub name: Option<String>,
    /// New status (suspended tenants' SCIM calls get 403).
    pub status: Option<TenantStatus>,
}

/// Someone who logged in to the admin API.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The operator's or tenant admin's id.
    pub id: String,
    /// Their e-mail address as stored.
    pub email: String,
    /// The tenant of a tenant admin; `None` for an operator.
    pub tenant: Option<Tenant>,
}

/// A tenant administrator's login, as listed (never its hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantAdminInfo {
    /// The admin's id.
    pub id: Uuid,
    /// Their tenant.
    pub tenant_id: Uuid,
    /// Their e-mail address (the login name).
    pub email: String,
    /// When the login was created.
    pub created_at: DateTime<Utc>,
}

/// One entry of the admin audit log.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    /// Monotonic id (newest is highest).
    pub id: i64,
    /// The tenant concerned, if any (kept after the tenant is deleted).
    pub tenant_id: Option<Uuid>,
    /// When the change committed.
    pub at: DateTime<Utc>,
    /// Who made it (`operator:<email>`, `tenant-admin:<email>`, `cli`...).
    pub actor: String,
    /// What was done, e.g. `tenant.update`, `roles.policy.set`, `roles.lock`.
    pub action: String,
    /// What it was done to (a slug, `user <id>`, `token <id>`).
    pub target: String,
    /// Before/after values and other facts of the change.
    pub detail: Value,
}

/// Filters for reading the audit log (newest first).
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// Only this tenant's entries.
    pub tenant: Option<Uuid>,
    /// Only this actor's.
    pub actor: Option<String>,
    /// Only this action.
    pub action: Option<String>,
    /// Only entries at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only entries before this time.
    pub until: Option<DateTime<Utc>>,
    /// Page: entries with a smaller id.
    pub before_id: Option<i64>,
    /// Page size (1..=1000).
    pub limit: u64,
}

/// The result of replacing a role policy: the stored policy and the
/// recompute job that applies it to every user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyChange {
    /// The policy as stored, with its new version.
    pub stored: StoredPolicy,
    /// The id of the queued recompute job.
    pub job: String,
}

/// What a proposed role policy would change (a dry run).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolePreview {
    /// Users in the tenant.
    pub users: u64,
    /// Users whose roles would change.
    pub changed: u64,
    /// The first of them, by user id.
    pub sample: Vec<PreviewChange>,
}

/// One user a proposed policy would change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviewChange {
    /// The user's id.
    pub user_id: String,
    /// The user's userName.
    pub user_name: String,
    /// Their roles now (`None`: none stored).
    pub before: Option<::roles::Effective>,
    /// Their roles under the proposed policy (`None`: the policy defines
    /// no roles).
    pub after: Option<::roles::Effective>,
}

/// The database: a pool, its engine, and the handles it hands out.
#[derive(Clone)]
pub struct Store {
    inner: Arc<db::Inner>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

impl Store {
    /// Connects to `sqlite://path?mode=rwc` or `postgres://...`.
    pub async fn connect(url: &str, options: StoreOptions) -> Result<Store> {
        Ok(Store {
            inner: Arc::new(db::Inner::connect(url, options).await?),
        })
    }
    /// Applies pending migrations (idempotent).
    pub async fn migrate(&self) -> Result<()> {
        admin::migrate(&self.inner).await
    }
    /// Checks the database answers (for `/readyz`).
    pub async fn ping(&self) -> Result<()> {
        self.inner.conn.ping().await.map_err(db::db)
    }
    /// The engine.
    pub fn backend(&self) -> Backend {
        self.inner.backend
    }
    /// The connection pool's use now. On SQLite, the read connections
    /// (writes run on the one writer connection, not counted).
    pub fn pool_usage(&self) -> PoolUsage {
        use std::sync::atomic::Ordering::Relaxed;
        if let Some(usage) = &self.inner.reader_usage {
            return PoolUsage {
                in_use: usage.in_use.load(Relaxed) as u64,
                idle: usage.idle.load(Relaxed) as u64,
                max: usage.max_idle as u64,
            };
        }
        let pool = self.inner.conn.get_postgres_connection_pool();
        let open = u64::from(pool.size());
        let idle = pool.num_idle() as u64;
        PoolUsage {
            in_use: open.saturating_sub(idle),
            idle,
            max: u64::from(self.inner.options.max_connections.max(1)),
        }
    }
    /// Operator-level operations across tenants. Every use is a place where
    /// tenant isolation is the caller's responsibility.
    pub fn admin(&self) -> AdminStore {
        AdminStore {
            inner: self.inner.clone(),
        }
    }
    /// Delivery state of every tenant's targets (the delivery worker's).
    pub fn delivery(&self) -> delivery::DeliveryStore {
        delivery::DeliveryStore {
            inner: self.inner.clone(),
        }
    }
    /// The event log of every tenant (the delivery worker's reader).
    pub fn event_log(&self) -> EventLog {
        EventLog {
            inner: self.inner.clone(),
        }
    }
    /// The directory of one resolved tenant.
    pub fn tenant(&self, tenant: &Tenant) -> TenantStore {
        TenantStore {
            inner: self.inner.clone(),
            tenant: tenant.clone(),
        }
    }
}

/// A connection pool's use at one moment ([`Store::pool_usage`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolUsage {
    /// Connections serving a query now.
    pub in_use: u64,
    /// Open connections waiting for one.
    pub idle: u64,
    /// The most the pool keeps (`db_max_connections`).
    pub max: u64,
}

/// Operator-level operations: tenants, tokens, operators.
#[derive(Clone)]
pub struct AdminStore {
    inner: Arc<db::Inner>,
}

impl AdminStore {
    /// Creates a tenant; `Uniqueness` if the slug is taken, `InvalidValue`
    /// for a malformed slug. `actor` names who did it in the audit log.
    pub async fn create_tenant(&self, new: NewTenant, actor: &str) -> Result<Tenant> {
        admin::create_tenant(&self.inner, new, actor).await
    }
    /// Looks a tenant up by slug.
    pub async fn tenant_by_slug(&self, slug: &str) -> Result<Option<Tenant>> {
        admin::tenant_by_slug(&self.inner, slug).await
    }
    /// Looks a tenant up by id.
    pub async fn tenant_by_id(&self, id: Uuid) -> Result<Option<Tenant>> {
        admin::tenant_by_id(&self.inner, id).await
    }
    /// Lists tenants by slug, with the total count.
    pub async fn list_tenants(&self, offset: u64, limit: u64) -> Result<(u64, Vec<Tenant>)> {
        admin::list_tenants(&self.inner, offset, limit).await
    }
    /// Tenants whose slug or name contains `search` (case-insensitively),
    /// by slug, with the total count of matches.
    pub async fn search_tenants(
        &self,
        search: Option<&str>,
        offset: u64,
        limit: u64,
    ) -> Result<(u64, Vec<Tenant>)> {
        admin::search_tenants(&self.inner, search, offset, limit).await
    }
    /// Users, last SCIM activity, delivery health and super tenant of each
    /// of `ids` (meant for one page of a list).
    pub async fn tenant_activity(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, TenantActivity>> {
        admin::tenant_activity(&self.inner, ids).await
    }
    /// Renames, suspends or reactivates a tenant (audited).
    pub async fn update_tenant(
        &self,
        id: Uuid,
        update: TenantUpdate,
        actor: &str,
    ) -> Result<Tenant> {
        admin::update_tenant(&self.inner, id, update, actor).await
    }
    /// Deletes a tenant and everything it owns (audited).
    pub async fn delete_tenant(&self, id: Uuid, actor: &str) -> Result<()> {
        admin::delete_tenant(&self.inner, id, actor).await
    }
    /// Makes a tenant `standard` or `super` (audited); `InvalidValue` for a
    /// child becoming super or a super tenant with children becoming
    /// standard.
    pub async fn set_tenant_kind(&self, id: Uuid, kind: TenantKind, actor: &str) -> Result<Tenant> {
        fanout::set_kind(&self.inner, id, kind, actor).await
    }
    /// Makes `child` a child of `super_tenant` (audited); `Uniqueness` when
    /// another super tenant already feeds it.
    pub async fn link_child(
        &self,
        super_tenant: Uuid,
        child: Uuid,
        on_unroute: fanout::OnUnroute,
        actor: &str,
    ) -> Result<fanout::SuperLink> {
        fanout::link(&self.inner, super_tenant, child, on_unroute, actor).await
    }
    /// Ends `child`'s link to its super tenant (audited), keeping or
    /// deleting the copies the super tenant made there.
    pub async fn unlink_child(
        &self,
        child: Uuid,
        copies: fanout::CopiesOnUnlink,
        actor: &str,
    ) -> Result<fanout::Unlinked> {
        fanout::unlink(&self.inner, child, copies, actor).await
    }
    /// The children a super tenant feeds.
    pub async fn children(&self, super_tenant: Uuid) -> Result<Vec<fanout::SuperLink>> {
        fanout::children(&self.inner, super_tenant).await
    }
    /// The super tenant feeding `child`, if any.
    pub async fn super_of(&self, child: Uuid) -> Result<Option<fanout::SuperLink>> {
        fanout::super_of(&self.inner, child).await
    }
    /// A super tenant's routing rules (version 0 and none when never set).
    pub async fn routing_policy(&self, super_tenant: Uuid) -> Result<fanout::RoutingPolicy> {
        fanout::routing_policy(&self.inner, super_tenant).await
    }
    /// Replaces a super tenant's routing rules (audited): `InvalidValue`
    /// for a bad rule or one naming a tenant that is not its child,
    /// `PreconditionFailed` when `if_match` is not the current version.
    /// Queues the job that re-routes the existing directory, in the same
    /// transaction.
    pub async fn set_routing_policy(
        &self,
        super_tenant: Uuid,
        rules: Vec<routing::RuleSpec>,
        if_match: Option<u64>,
        actor: &str,
    ) -> Result<fanout::RoutingChange> {
        fanout::set_routing_policy(&self.inner, super_tenant, rules, if_match, actor).await
    }
    /// What `rules` would route where in super tenant `tenant`, against
    /// its copies as they are (stores nothing).
    pub async fn preview_routing(
        &self,
        tenant: &Tenant,
        rules: &[routing::RuleSpec],
    ) -> Result<copies::RoutingPreview> {
        let store = TenantStore {
            inner: self.inner.clone(),
            tenant: tenant.clone(),
        };
        copies::preview(&store, rules).await
    }
    /// Issues a token (argon2id-hashed at rest; secret returned once;
    /// audited).
    pub async fn issue_token(
        &self,
        tenant: &Tenant,
        new: NewToken,
        actor: &str,
    ) -> Result<IssuedToken> {
        admin::issue_token(&self.inner, tenant, new, actor).await
    }
    /// Lists a tenant's tokens (no secrets).
    pub async fn list_tokens(&self, tenant: &Tenant) -> Result<Vec<TokenInfo>> {
        admin::list_tokens(&self.inner, tenant).await
    }
    /// Queues a job that belongs to no tenant (see
    /// [`TenantStore::enqueue_job`]).
    pub async fn enqueue_job(&self, job: NewJob) -> Result<String> {
        jobs::enqueue_now(&self.inner, None, job).await
    }
    /// Any job by id, whichever tenant it belongs to.
    pub async fn job(&self, id: &str) -> Result<Job> {
        jobs::find(&self.inner, id).await
    }
    /// Revokes a token; `NotFound` if it is not this tenant's (audited).
    pub async fn revoke_token(
        &self,
        tenant: &Tenant,
        token_id: Uuid,
        actor: &str,
    ) -> Result<TokenInfo> {
        admin::revoke_token(&self.inner, tenant, token_id, actor).await
    }
    /// Verifies a bearer token with argon2 (slow by design: callers cache
    /// the result). `None` for unknown, wrong, expired or revoked tokens.
    pub async fn authenticate(&self, bearer: &str) -> Result<Option<Authenticated>> {
        admin::authenticate(&self.inner, bearer).await
    }
    /// A number that changes whenever any token is revoked or a tenant is
    /// suspended or deleted. Servers poll it (cheaply) and clear their token
    /// caches when it moves, so a revocation made by another process (the
    /// CLI, another instance) takes effect within one poll interval.
    pub async fn auth_revision(&self) -> Result<i64> {
        admin::auth_revision(&self.inner).await
    }
    /// Deletes provisioning-log entries of every tenant older than
    /// `before` (retention); returns how many.
    pub async fn prune_provisioning_log(&self, before: DateTime<Utc>) -> Result<u64> {
        log::prune(&self.inner, before).await
    }
    /// How many operators exist (0 on a fresh database).
    pub async fn count_operators(&self) -> Result<u64> {
        admin::count_operators(&self.inner).await
    }
    /// Creates an operator with an argon2id password hash (audited).
    pub async fn create_operator(&self, email: &str, password: &str, actor: &str) -> Result<Uuid> {
        admin::create_operator(&self.inner, email, password, actor).await
    }
    /// Checks an operator's login; `None` for a wrong e-mail or password.
    pub async fn verify_operator(&self, email: &str, password: &str) -> Result<Option<Principal>> {
        admin::verify_operator(&self.inner, email, password).await
    }
    /// Checks a tenant admin's login to `tenant`; `None` when wrong.
    pub async fn verify_tenant_admin(
        &self,
        tenant: &Tenant,
        email: &str,
        password: &str,
    ) -> Result<Option<Principal>> {
        admin::verify_tenant_admin(&self.inner, tenant, email, password).await
    }
    /// Creates a tenant admin login (password of 12 characters or more;
    /// audited).
    pub async fn create_tenant_admin(
        &self,
        tenant: &Tenant,
        email: &str,
        password: &str,
        actor: &str,
    ) -> Result<TenantAdminInfo> {
        admin::create_tenant_admin(&self.inner, tenant, email, password, actor).await
    }
    /// A tenant's admin logins, by e-mail.
    pub async fn list_tenant_admins(&self, tenant: &Tenant) -> Result<Vec<TenantAdminInfo>> {
        admin::list_tenant_admins(&self.inner, tenant).await
    }
    /// Deletes a tenant admin login (audited).
    pub async fn delete_tenant_admin(&self, tenant: &Tenant, id: Uuid, actor: &str) -> Result<()> {
        admin::delete_tenant_admin(&self.inner, tenant, id, actor).await
    }
    /// Reads the admin audit log, newest first.
    pub async fn audit_log(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>> {
        audit::read(&self.inner, query).await
    }
    /// Appends one audit entry on its own (an event that changes no stored
    /// state, such as an admin login locked out after repeated failures).
    pub async fn record_audit(
        &self,
        tenant: Option<Uuid>,
        actor: &str,
        action: &str,
        target: &str,
        detail: Value,
    ) -> Result<()> {
        audit::record(&self.inner, tenant, actor, action, target, detail).await
    }
}

/// One tenant's directory. Every query it runs is scoped to that tenant.
#[derive(Clone)]
pub struct TenantStore {
    inner: Arc<db::Inner>,
    tenant: Tenant,
}

impl std::fmt::Debug for TenantStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantStore")
            .field("tenant", &self.tenant.slug)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for AdminStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminStore").finish_non_exhaustive()
    }
}

impl TenantStore {
    /// The tenant this handle is scoped to.
    pub fn tenant(&self) -> &Tenant {
        &self.tenant
    }

    /// Renames, suspends or reactivates this tenant (audited).
    pub async fn update_tenant(&self, update: TenantUpdate, actor: &str) -> Result<Tenant> {
        admin::update_tenant(&self.inner, self.tenant.id, update, actor).await
    }
    /// Deletes this tenant and everything it owns (audited); the handle is
    /// useless afterwards.
    pub async fn delete_tenant(&self, actor: &str) -> Result<()> {
        admin::delete_tenant(&self.inner, self.tenant.id, actor).await
    }
    /// Issues one of this tenant's SCIM tokens (see
    /// [`AdminStore::issue_token`]; audited).
    pub async fn issue_token(&self, new: NewToken, actor: &str) -> Result<IssuedToken> {
        admin::issue_token(&self.inner, &self.tenant, new, actor).await
    }
    /// This tenant's tokens (no secrets).
    pub async fn list_tokens(&self) -> Result<Vec<TokenInfo>> {
        admin::list_tokens(&self.inner, &self.tenant).await
    }
    /// Revokes one of this tenant's tokens; `NotFound` for any other
    /// (audited).
    pub async fn revoke_token(&self, token_id: Uuid, actor: &str) -> Result<TokenInfo> {
        admin::revoke_token(&self.inner, &self.tenant, token_id, actor).await
    }
    /// Creates an admin login of this tenant (audited).
    pub async fn create_tenant_admin(
        &self,
        email: &str,
        password: &str,
        actor: &str,
    ) -> Result<TenantAdminInfo> {
        admin::create_tenant_admin(&self.inner, &self.tenant, email, password, actor).await
    }
    /// This tenant's admin logins, by e-mail.
    pub async fn list_tenant_admins(&self) -> Result<Vec<TenantAdminInfo>> {
        admin::list_tenant_admins(&self.inner, &self.tenant).await
    }
    /// Deletes one of this tenant's admin logins (audited).
    pub async fn delete_tenant_admin(&self, id: Uuid, actor: &str) -> Result<()> {
        admin::delete_tenant_admin(&self.inner, &self.tenant, id, actor).await
    }
    /// This tenant's audit entries, newest first; `query.tenant` is
    /// ignored (always this tenant).
    pub async fn audit_log(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>> {
        let query = AuditQuery {
            tenant: Some(self.tenant.id),
            ..query.clone()
        };
        audit::read(&self.inner, &query).await
    }

    /// Creates a user from a validated canonical document; writes the user,
    /// its indexed columns and a `user.created` outbox event in one
    /// transaction. `Uniqueness` on a taken userName (case-insensitive).
    pub async fn create_user(&self, document: Value) -> Result<Resource> {
        directory::create_user(self, document).await
    }
    /// Reads a user.
    pub async fn get_user(&self, id: &str) -> Result<Resource> {
        directory::get_user(self, id).await
    }
    /// Replaces a user's document (PUT), checking `if_match` when given.
    pub async fn replace_user(
        &self,
        id: &str,
        document: Value,
        if_match: Option<u64>,
    ) -> Result<Resource> {
        directory::replace_user(self, id, document, if_match).await
    }
    /// Read-modify-write (PATCH): `modify` gets the current resource and
    /// returns the new document, inside one transaction; retried on a
    /// concurrent change. A no-op (same document) keeps the version.
    pub async fn modify_user<F>(
        &self,
        id: &str,
        if_match: Option<u64>,
        modify: F,
    ) -> Result<Resource>
    where
        F: Fn(&Resource) -> Result<Value, scim::Error> + Send + Sync + 'static,
    {
        directory::modify_user(self, id, if_match, modify).await
    }
    /// Deletes a user and all their memberships.
    pub async fn delete_user(
        &self,
        id: &str,
        if_match: Option<u64>,
    ) -> Result<Vec<copies::Routed>> {
        directory::delete_user(self, id, if_match).await
    }
    /// Lists users matching a query.
    pub async fn list_users(&self, query: &ListQuery) -> Result<Page> {
        list::list(self, translate::Kind::User, query).await
    }
    /// What `extras` asks of these users, in one statement (per 500
    /// users): their groups (an entry for each user found) and their
    /// stored effective roles (users without any are absent).
    pub async fn user_extras(
        &self,
        user_ids: &[String],
        extras: UserExtras,
    ) -> Result<(
        HashMap<String, Vec<GroupRef>>,
        HashMap<String, ::roles::Effective>,
    )> {
        list::user_extras(self, user_ids, extras).await
    }
    /// The groups each of these users directly belongs to.
    pub async fn user_groups(&self, user_ids: &[String]) -> Result<HashMap<String, Vec<GroupRef>>> {
        directory::user_groups(self, user_ids).await
    }

    /// Creates a group with its members (ids must be users or groups of
    /// this tenant, else `InvalidValue`). `Uniqueness` on a taken displayName.
    pub async fn create_group(&self, document: Value, members: Vec<Member>) -> Result<Resource> {
        directory::create_group(self, document, members).await
    }
    /// Reads a group, with members when asked.
    pub async fn get_group(&self, id: &str, with_members: bool) -> Result<Resource> {
        directory::get_group(self, id, with_members).await
    }
    /// Replaces a group's document and whole member set (PUT).
    pub async fn replace_group(
        &self,
        id: &str,
        document: Value,
        members: Vec<Member>,
        if_match: Option<u64>,
    ) -> Result<Resource> {
        directory::replace_group(self, id, document, members, if_match).await
    }
    /// Read-modify-write (PATCH): `modify` gets the current group (without
    /// members) and returns its new document and member changes, applied as
    /// a delta in one transaction (O(change), never a rewrite of the set).
    pub async fn modify_group<F>(
        &self,
        id: &str,
        if_match: Option<u64>,
        modify: F,
    ) -> Result<Resource>
    where
        F: Fn(&Resource) -> Result<(Value, Vec<MemberChange>), scim::Error> + Send + Sync + 'static,
    {
        directory::modify_group(self, id, if_match, modify).await
    }
    /// Deletes a group, its memberships and its own membership in others.
    pub async fn delete_group(
        &self,
        id: &str,
        if_match: Option<u64>,
    ) -> Result<Vec<copies::Routed>> {
        directory::delete_group(self, id, if_match).await
    }
    /// Lists groups matching a query.
    pub async fn list_groups(&self, query: &ListQuery) -> Result<Page> {
        list::list(self, translate::Kind::Group, query).await
    }
    /// A group's members.
    pub async fn group_members(&self, group_id: &str) -> Result<Vec<Member>> {
        directory::group_members(self, group_id).await
    }
    /// Whether a group has more than `n` members, from the membership
    /// index and reading at most `n + 1` of its entries, so the answer costs
    /// the same for any group larger than `n`. False for a missing group.
    pub async fn group_has_more_members_than(&self, group_id: &str, n: u64) -> Result<bool> {
        directory::group_has_more_members_than(self, group_id, n).await
    }
    /// A group's members as a response's JSON array, built by the database
    /// (`$ref` is the member id after `user_ref` or `group_ref`); `None`
    /// when the group has more than `at_most` members (when given).
    pub async fn group_members_json(
        &self,
        group_id: &str,
        user_ref: &str,
        group_ref: &str,
        at_most: Option<u64>,
    ) -> Result<Option<String>> {
        directory::group_members_json(self, group_id, user_ref, group_ref, at_most).await
    }

    /// The tenant's role policy; an empty one (no roles, mode single,
    /// version 0) when none was stored.
    pub async fn role_policy(&self) -> Result<StoredPolicy> {
        roles::role_policy(self).await
    }
    /// Validates `policy` (`InvalidValue` with the reason) and replaces the
    /// stored one, bumping its version; `PreconditionFailed` when
    /// `expected_version` is given and is not the current version. Audited
    /// as `actor`. Users' effective roles are not recomputed here: the
    /// change queues a recompute job (in the same transaction) that the
    /// role worker runs.
    pub async fn set_role_policy(
        &self,
        policy: ::roles::Policy,
        expected_version: Option<u64>,
        actor: &str,
    ) -> Result<PolicyChange> {
        roles::set_role_policy(self, policy, expected_version, actor).await
    }
    /// What `policy` would change if stored now: how many users would get
    /// other roles, and the first `sample` of them. Changes nothing.
    pub async fn preview_role_policy(
        &self,
        policy: ::roles::Policy,
        sample: usize,
    ) -> Result<RolePreview> {
        roles::preview_role_policy(self, policy, sample).await
    }
    /// The tenant's recompute jobs, newest first (at most `limit`, ≤ 100).
    pub async fn role_jobs(&self, limit: u64) -> Result<Vec<RoleJob>> {
        jobs::tenant_jobs(self, Some(ROLE_RECOMPUTE), limit)
            .await?
            .into_iter()
            .map(RoleJob::try_from)
            .collect()
    }
    /// One of the tenant's recompute jobs.
    pub async fn role_job(&self, id: &str) -> Result<RoleJob> {
        let job = jobs::tenant_job(self, id).await?;
        if job.kind != ROLE_RECOMPUTE {
            return Err(StoreError::NotFound(format!("role job {id}")));
        }
        RoleJob::try_from(job)
    }
    /// Queues a job for this tenant (or, when `job` coalesces and one of
    /// its key is queued, updates that one's payload); returns its id.
    /// Workers with a handler for its kind run it ([`Store::run_jobs`]).
    pub async fn enqueue_job(&self, job: NewJob) -> Result<String> {
        jobs::enqueue_now(&self.inner, Some(self.tenant.id), job).await
    }
    /// One of the tenant's jobs, of any kind.
    pub async fn job(&self, id: &str) -> Result<Job> {
        jobs::tenant_job(self, id).await
    }
    /// The tenant's jobs (of `kind`, if given), newest first (at most
    /// `limit`, ≤ 100).
    pub async fn jobs(&self, kind: Option<&str>, limit: u64) -> Result<Vec<Job>> {
        jobs::tenant_jobs(self, kind, limit).await
    }
    /// Cancels one of the tenant's jobs; a worker running it stops at its
    /// next write. `InvalidValue` when the job has already ended.
    pub async fn cancel_job(&self, id: &str) -> Result<Job> {
        jobs::cancel(self, id).await
    }
    /// Locks a user to `roles` (each defined by the policy, else
    /// `InvalidValue`), replacing any earlier lock. `InvalidValue` for a
    /// blank reason, `NotFound` for a user not in this tenant.
    pub async fn lock_user(
        &self,
        user_id: &str,
        roles: Vec<String>,
        reason: &str,
        locked_by: &str,
    ) -> Result<LockInfo> {
        roles::lock_user(self, user_id, roles, reason, locked_by).await
    }
    /// Removes a user's role-lock; `NotFound` if the user is not locked.
    /// Audited as `actor` (a lock is audited as its `locked_by`).
    pub async fn unlock_user(&self, user_id: &str, actor: &str) -> Result<()> {
        roles::unlock_user(self, user_id, actor).await
    }
    /// Every role-lock of the tenant, by user id.
    pub async fn locks(&self) -> Result<Vec<LockInfo>> {
        roles::locks(self).await
    }
    /// The stored effective roles of these users; users without any are
    /// absent from the map.
    pub async fn effective_roles(
        &self,
        user_ids: &[String],
    ) -> Result<HashMap<String, ::roles::Effective>> {
        roles::effective_roles(self, user_ids).await
    }

    /// The copies a super tenant made of its user or group `source_id` in
    /// its children (empty for any other tenant).
    pub async fn copies(&self, source_id: &str) -> Result<Vec<copies::CopyInfo>> {
        copies::copies_of(self, source_id).await
    }

    /// Appends a provisioning-log entry (outside any write transaction, so
    /// failed requests are logged too).
    pub async fn record(&self, entry: ProvisioningEntry) -> Result<()> {
        log::record(&self.inner, vec![(self.clone(), entry)]).await
    }
    /// Appends provisioning-log entries, each to its own tenant's log, in
    /// one transaction (the gateway's background writer batches them).
    pub async fn record_many(entries: Vec<(TenantStore, ProvisioningEntry)>) -> Result<()> {
        match entries.first() {
            Some((store, _)) => {
                let inner = Arc::clone(&store.inner);
                log::record(&inner, entries).await
            }
            None => Ok(()),
        }
    }
    /// Reads the provisioning log, newest first.
    pub async fn provisioning_log(
        &self,
        query: &LogQuery,
    ) -> Result<Vec<(i64, ProvisioningEntry)>> {
        log::read(self, query).await
    }
    /// This tenant's events after position `after`, in commit order.
    pub async fn events_after(&self, after: i64, limit: u64) -> Result<Vec<StoredEvent>> {
        self.events(&EventQuery {
            after,
            limit,
            ..EventQuery::default()
        })
        .await
    }
    /// This tenant's events matching `query` (its `tenant` is ignored: it
    /// is always this tenant), in commit order.
    pub async fn events(&self, query: &EventQuery) -> Result<Vec<StoredEvent>> {
        let query = EventQuery {
            tenant: Some(self.tenant.id),
            ..query.clone()
        };
        events::read(&self.inner, &query).await
    }
    /// This tenant's newest events, newest first (for a person to look
    /// at; applications read the feed in commit order).
    pub async fn latest_events(&self, limit: u64) -> Result<Vec<StoredEvent>> {
        events::latest(self, limit).await
    }
    /// The events of one user or group, oldest first (the newest
    /// [`events::MAX_READ`] of them).
    pub async fn resource_events(&self, resource_id: &str) -> Result<Vec<StoredEvent>> {
        events::of_resource(self, resource_id).await
    }
}

/// The whole event log, across tenants: for the delivery worker and
/// retention, never for a request (tenant-scoped reads go through
/// [`TenantStore::events`]).
#[derive(Clone)]
pub struct EventLog {
    inner: Arc<db::Inner>,
}

impl EventLog {
    /// Events after position `after` of every tenant, in commit order.
    pub async fn read(&self, query: &EventQuery) -> Result<Vec<StoredEvent>> {
        events::read(&self.inner, query).await
    }
    /// The largest position a reader can see (0 when empty).
    pub async fn head(&self) -> Result<i64> {
        events::head(&self.inner).await
    }
    /// PostgreSQL: numbers newly committed events now (reads do this
    /// too); a no-op on SQLite. Returns how many it numbered.
    pub async fn sequence(&self) -> Result<u64> {
        events::sequence(&self.inner).await
    }
    /// Deletes events created before `before` at positions up to `up_to`
    /// (what every consumer is done with); returns how many.
    pub async fn prune(&self, before: DateTime<Utc>, up_to: i64) -> Result<u64> {
        events::prune(&self.inner, before, up_to).await
    }
    /// Resolves after the next write this process commits (events may
    /// have been written): lets an in-process reader wake without polling.
    pub async fn committed(&self) {
        self.inner.committed.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_token_debug_never_shows_the_secret() {
        let issued = IssuedToken {
            info: TokenInfo {
                id: Uuid::nil(),
                tenant_id: Uuid::nil(),
                name: "entra".into(),
                scopes: vec![Scope::ScimWrite],
                created_at: Utc::now(),
                expires_at: None,
                revoked_at: None,
            },
            secret: "sgt_0000_supersecretvalue".into(),
        };
        let shown = format!("{issued:?}");
        assert!(!shown.contains("supersecretvalue"), "{shown}");
        assert!(
            shown.contains("[redacted]") && shown.contains("entra"),
            "{shown}"
        );
    }
}
