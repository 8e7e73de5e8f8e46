//! What goes over the wire: request and response bodies and query strings.
//!
//! Every JSON key is camelCase, as in SCIM. Request bodies reject unknown
//! fields (`deny_unknown_fields`), so a typo ("prority") is a 400 naming
//! the field instead of a silently ignored setting. Query strings reject
//! unknown parameters for the same reason.
//!
//! These types are the API's own, not the store's: the store may grow
//! fields without the wire format changing by accident, and the OpenAPI
//! document is derived from exactly what is serialized here.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

// ---------------------------------------------------------------------------
// Sessions

/// `POST /login`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoginRequest {
    /// The login e-mail address.
    pub email: String,
    /// The password.
    pub password: String,
    /// A tenant's slug for a tenant-admin login; absent for an operator.
    #[serde(default)]
    #[schema(max_length = 63)]
    pub tenant: Option<String>,
}

/// Who a session belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PrincipalKind {
    /// An operator: every tenant.
    Operator,
    /// A tenant administrator: their own tenant only.
    TenantAdmin,
}

/// The logged-in principal.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PrincipalView {
    /// Operator or tenant admin.
    pub kind: PrincipalKind,
    /// The login's id.
    pub id: String,
    /// The login e-mail address.
    pub email: String,
    /// The tenant admin's tenant slug.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
}

/// A new session.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoginResponse {
    /// The bearer token (a JWT) for `Authorization: Bearer ...`.
    pub token: String,
    /// When the token stops working.
    pub expires_at: DateTime<Utc>,
    /// Who logged in.
    pub principal: PrincipalView,
}

/// `GET /me`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MeResponse {
    /// Who the token belongs to.
    pub principal: PrincipalView,
    /// The tenant admin's tenant.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<TenantView>,
    /// When the token expires.
    pub expires_at: DateTime<Utc>,
}

// ---------------------------------------------------------------------------
// Tenants

/// Standard or super tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TenantKindWire {
    /// An ordinary tenant.
    #[default]
    Standard,
    /// An MSP super tenant that fans out to child tenants.
    Super,
}

/// Whether a tenant's SCIM endpoint serves requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TenantStatusWire {
    /// Serving.
    Active,
    /// SCIM calls get 403; admins can still log in and read.
    Suspended,
}

/// A tenant.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantView {
    /// The tenant's id.
    pub id: String,
    /// The URL slug.
    pub slug: String,
    /// The display name.
    pub name: String,
    /// Standard or super.
    pub kind: TenantKindWire,
    /// Active or suspended.
    pub status: TenantStatusWire,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// The tenant's SCIM base path (prefix it with the server's origin).
    pub scim_path: String,
}

/// `GET /tenants`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantList {
    /// All tenants, regardless of paging.
    pub total: u64,
    /// The offset of this page.
    pub offset: u64,
    /// The page size asked for.
    pub limit: u64,
    /// This page, by slug.
    pub tenants: Vec<TenantView>,
}

/// Paging of `GET /tenants`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TenantListQuery {
    /// Tenants to skip (default 0).
    #[serde(default)]
    #[param(minimum = 0, maximum = 9223372036854775807_i64)]
    pub offset: Option<u64>,
    /// Page size (default 50, at most 500).
    #[serde(default)]
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u64>,
}

/// `POST /tenants`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateTenant {
    /// URL slug: lowercase letters, digits and `-`, 1 to 63 characters.
    #[schema(
        min_length = 1,
        max_length = 63,
        pattern = r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$"
    )]
    pub slug: String,
    /// Display name (not blank).
    #[schema(min_length = 1, pattern = r"\S")]
    pub name: String,
    /// Standard (default) or super.
    #[serde(default)]
    pub kind: TenantKindWire,
    /// Also issue a first `scim:write` token (its secret is in the answer,
    /// once).
    #[serde(default)]
    pub issue_token: bool,
}

/// The answer to `POST /tenants`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedTenant {
    /// The new tenant.
    pub tenant: TenantView,
    /// The first token, when `issueToken` was true.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<IssuedTokenView>,
}

/// `PATCH /tenants/{tenant}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateTenant {
    /// A new display name (not blank).
    #[serde(default)]
    #[schema(min_length = 1, pattern = r"\S")]
    pub name: Option<String>,
    /// Suspend or reactivate (operators only).
    #[serde(default)]
    pub status: Option<TenantStatusWire>,
}

/// `DELETE /tenants/{tenant}?confirm=<slug>`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeleteTenantQuery {
    /// Must repeat the tenant's slug: deletion removes its whole directory.
    #[serde(default)]
    #[param(max_length = 63)]
    pub confirm: Option<String>,
    /// For a super tenant that feeds children: what becomes of the users
    /// and groups it copied into them.
    #[serde(default)]
    pub copies: Option<CopiesWire>,
}

/// What becomes of a super tenant's copies in a child when their link ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CopiesWire {
    /// They stay, as the child's own users and groups.
    Keep,
    /// They are deleted from the child (a `user.deleted` or
    /// `group.deleted` event each).
    Remove,
}

/// `DELETE /tenants/{tenant}/children/{child}?copies=...`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UnlinkQuery {
    /// `keep` or `remove`: never implicit.
    pub copies: CopiesWire,
}

/// What ending a child's link did.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UnlinkedView {
    /// The choice made.
    pub copies: CopiesWire,
    /// Copies left in the child as its own.
    pub kept: u64,
    /// Users deleted from the child.
    pub users_removed: u64,
    /// Groups deleted from the child.
    pub groups_removed: u64,
}

// ---------------------------------------------------------------------------
// Tenant admins

/// A tenant admin login (never its password).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantAdminView {
    /// The login's id.
    pub id: String,
    /// The login e-mail address.
    pub email: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// `GET /tenants/{tenant}/admins`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantAdminList {
    /// The tenant's admin logins, by e-mail.
    pub admins: Vec<TenantAdminView>,
}

/// `POST /tenants/{tenant}/admins`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateTenantAdmin {
    /// The login e-mail address.
    #[schema(pattern = "@")]
    pub email: String,
    /// The password, at least 12 characters.
    #[schema(min_length = 12)]
    pub password: String,
}

// ---------------------------------------------------------------------------
// Tokens

/// A SCIM token scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum ScopeWire {
    /// Read and write the directory (what an IdP needs).
    #[serde(rename = "scim:write")]
    ScimWrite,
    /// Read the directory (for the tenant's application).
    #[serde(rename = "scim:read")]
    ScimRead,
    /// Read the event feed only (for an application that polls).
    #[serde(rename = "events:read")]
    EventsRead,
}

/// A SCIM token as listed: never its secret.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenView {
    /// The token's id.
    pub id: String,
    /// Its label.
    pub name: String,
    /// What it may do.
    pub scopes: Vec<ScopeWire>,
    /// When it was issued.
    pub created_at: DateTime<Utc>,
    /// When it stops working, if ever.
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A new token with its secret, shown only in this answer.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IssuedTokenView {
    /// The stored facts.
    #[serde(flatten)]
    pub token: TokenView,
    /// The bearer token for the IdP; stored only hashed, never shown again.
    pub secret: String,
}

/// `GET /tenants/{tenant}/tokens`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenList {
    /// The tenant's tokens, revoked ones included.
    pub tokens: Vec<TokenView>,
}

/// `POST /tenants/{tenant}/tokens`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateToken {
    /// A label ("entra-prod"; not blank).
    #[schema(min_length = 1, pattern = r"\S")]
    pub name: String,
    /// At least one scope.
    #[schema(min_items = 1)]
    pub scopes: Vec<ScopeWire>,
    /// When it stops working (RFC 3339); absent for never.
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
}

// ---------------------------------------------------------------------------
// Roles

/// Single or multi mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ModeWire {
    /// Only the mapped role with the highest priority.
    Single,
    /// Every mapped role.
    Multi,
}

/// Which group identifier a mapping matches: exactly one key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum GroupSelector {
    /// The group's `displayName` (case-insensitive).
    DisplayName(String),
    /// The group's `externalId` (case-exact).
    ExternalId(String),
    /// The group's SCIM `id` (case-exact).
    Id(String),
}

/// A role.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoleWire {
    /// The role's name, as the application sees it (1 to 128 characters,
    /// no leading or trailing whitespace).
    #[schema(min_length = 1, max_length = 128, pattern = r"^\S([\s\S]*\S)?$")]
    pub name: String,
    /// Free text for administrators.
    #[serde(default)]
    pub description: String,
}

/// A stored mapping.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MappingView {
    /// The mapping's id (kept while the mapping is unchanged).
    pub id: String,
    /// The group it matches.
    pub group: GroupSelector,
    /// The role it grants.
    #[schema(min_length = 1, max_length = 128, pattern = r"^\S([\s\S]*\S)?$")]
    pub role: String,
    /// Higher wins.
    pub priority: i32,
}

/// A tenant's role policy.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyView {
    /// Bumped by every change; what `If-Match` names.
    pub version: u64,
    /// Single or multi.
    pub mode: ModeWire,
    /// The role of users no mapping matches.
    pub default_role: Option<String>,
    /// The roles, in stored order.
    pub roles: Vec<RoleWire>,
    /// The group-to-role mappings, in stored order.
    pub mappings: Vec<MappingView>,
}

/// A recompute job, as referenced by a policy change.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobRef {
    /// The job's id.
    pub id: String,
    /// Where it is (`queued` when the change commits).
    pub status: String,
    /// Where to follow it.
    pub url: String,
}

/// The answer to a stored policy change.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyChangeView {
    /// The policy as stored.
    #[serde(flatten)]
    pub policy: PolicyView,
    /// The job that brings every user's roles in line with it.
    pub job: JobRef,
}

/// One user a proposed change would affect.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PreviewUser {
    /// The user's id.
    pub user_id: String,
    /// The user's userName.
    pub user_name: String,
    /// Their role names now.
    pub before: Vec<String>,
    /// Their role names under the proposed policy.
    pub after: Vec<String>,
}

/// The answer to a dry run: nothing was changed.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DryRunView {
    /// Always true.
    pub dry_run: bool,
    /// Users in the tenant.
    pub users: u64,
    /// Users whose roles would change.
    pub changed: u64,
    /// The first of them (at most 20), by user id.
    pub sample: Vec<PreviewUser>,
}

/// What a role change answers: the stored change, or with `?dryRun=true`
/// the report of what it would do.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum PolicyChangeResult {
    /// The change was stored.
    Stored(PolicyChangeView),
    /// A dry run: nothing was stored.
    DryRun(DryRunView),
}

/// The `If-Match` header every role change accepts (documentation only:
/// handlers read the header themselves, to answer 400 for a malformed one).
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Header)]
#[expect(dead_code, reason = "describes a header for the OpenAPI document")]
pub struct IfMatchHeader {
    /// The policy version the change is based on, e.g. `"3"`; 412 when it
    /// is no longer the current one.
    #[param(
        rename = "If-Match",
        pattern = r#"^[ \t]*(\*|(W/)?("[0-9]{1,19}"|[0-9]{1,19}))[ \t]*$"#
    )]
    pub if_match: Option<String>,
}

/// `?dryRun=true` (also spelled `dry_run`) on every role change.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DryRunQuery {
    /// Report what the change would do instead of doing it.
    #[serde(default, rename = "dryRun", alias = "dry_run")]
    pub dry_run: bool,
}

/// A mapping in a policy being stored.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MappingInput {
    /// Accepted so a policy read with GET can be sent back; ignored (a
    /// mapping keeps its id while it is unchanged).
    #[serde(default)]
    #[expect(dead_code, reason = "accepted for round trips, never used")]
    pub id: Option<String>,
    /// The group it matches.
    pub group: GroupSelector,
    /// The role it grants.
    #[schema(min_length = 1, max_length = 128, pattern = r"^\S([\s\S]*\S)?$")]
    pub role: String,
    /// Higher wins (default 0).
    #[serde(default)]
    pub priority: i32,
}

/// `PUT /tenants/{tenant}/roles`: the whole policy.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicyInput {
    /// When present, the change applies only if this is still the current
    /// version (like `If-Match`).
    #[serde(default)]
    #[schema(minimum = 0, maximum = 9223372036854775807_i64)]
    pub version: Option<u64>,
    /// Single (default) or multi.
    #[serde(default = "single")]
    pub mode: ModeWire,
    /// The role of users no mapping matches (default: none).
    #[serde(default)]
    pub default_role: Option<String>,
    /// The roles.
    pub roles: Vec<RoleWire>,
    /// The mappings (default: none).
    #[serde(default)]
    pub mappings: Vec<MappingInput>,
}

fn single() -> ModeWire {
    ModeWire::Single
}

/// `PATCH /tenants/{tenant}/roles/roles/{name}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DescribeRole {
    /// The new description.
    pub description: String,
}

/// `PUT /tenants/{tenant}/roles/default`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetDefaultRole {
    /// A role name, or null for no default role. Required.
    #[serde(default, deserialize_with = "present")]
    #[schema(required = true, nullable = true, value_type = Option<String>)]
    pub role: Option<Option<String>>,
}

/// Tells "absent" (`None`) from "null" (`Some(None)`).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// `PUT /tenants/{tenant}/roles/mode`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetMode {
    /// Single or multi.
    pub mode: ModeWire,
}

/// `POST /tenants/{tenant}/roles/mappings`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AddMapping {
    /// The group it matches.
    pub group: GroupSelector,
    /// The role it grants.
    #[schema(min_length = 1, max_length = 128, pattern = r"^\S([\s\S]*\S)?$")]
    pub role: String,
    /// Higher wins (default 0).
    #[serde(default)]
    pub priority: i32,
}

/// A role recompute job.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobView {
    /// The job's id.
    pub id: String,
    /// `queued` (also while waiting to retry), `running`, `done`, `failed`
    /// or `cancelled`.
    pub status: String,
    /// The policy version it applies.
    pub policy_version: u64,
    /// Users in the tenant when it started.
    pub total: u64,
    /// Users done so far.
    pub processed: u64,
    /// Users whose roles changed.
    pub changed: u64,
    /// Why it failed.
    pub error: Option<String>,
    /// When it was queued.
    pub created_at: DateTime<Utc>,
    /// When it (last) started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it finished.
    pub finished_at: Option<DateTime<Utc>>,
}

/// `GET /tenants/{tenant}/roles/jobs`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobList {
    /// Newest first.
    pub jobs: Vec<JobView>,
}

/// Paging of the job list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct JobListQuery {
    /// How many (default 20, at most 100).
    #[serde(default)]
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u64>,
}

// ---------------------------------------------------------------------------
// Locks

/// A role-lock.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LockView {
    /// The locked user's id.
    pub user_id: String,
    /// The roles the user keeps while locked.
    pub roles: Vec<String>,
    /// Why.
    pub reason: String,
    /// Who locked the user (`operator:<email>` or `tenant-admin:<email>`).
    pub locked_by: String,
    /// When.
    pub locked_at: DateTime<Utc>,
}

/// `GET /tenants/{tenant}/locks`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LockList {
    /// Every lock, by user id.
    pub locks: Vec<LockView>,
}

/// `PUT /tenants/{tenant}/users/{id}/lock`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LockRequest {
    /// The roles to pin the user to (may be empty: no role at all).
    pub roles: Vec<String>,
    /// Why (required, not blank).
    #[schema(min_length = 1, pattern = r"\S")]
    pub reason: String,
}

// ---------------------------------------------------------------------------
// Directory

/// A group reference.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GroupRefView {
    /// The group's id.
    pub id: String,
    /// Its displayName.
    pub display: String,
}

/// Why a user has a role.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum ReasonWire {
    /// A group mapping (see `group`).
    Mapping,
    /// The default role.
    Default,
    /// A role-lock.
    Locked,
}

/// One role a user has, and why.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EffectiveRoleView {
    /// The role.
    pub role: String,
    /// Why.
    pub reason: ReasonWire,
    /// The group whose mapping granted it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<GroupRefView>,
}

/// A user's roles.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserRolesView {
    /// The effective roles, by name.
    pub effective: Vec<EffectiveRoleView>,
    /// The user is deactivated (`active: false`); roles are kept.
    pub disabled: bool,
    /// The role-lock, if any.
    pub locked: Option<LockView>,
}

/// A directory user.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserView {
    /// The SCIM id.
    pub id: String,
    /// The userName.
    pub user_name: String,
    /// The IdP's id for the user.
    pub external_id: Option<String>,
    /// The displayName, if set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// The SCIM `name` object, if set.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub name: Option<Value>,
    /// SCIM `active`.
    pub active: bool,
    /// The groups the user is a direct member of.
    pub groups: Vec<GroupRefView>,
    /// Effective roles, disabled flag and lock.
    pub roles: UserRolesView,
    /// When created.
    pub created: DateTime<Utc>,
    /// When last changed.
    pub last_modified: DateTime<Utc>,
}

/// A page of users.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserList {
    /// All matches.
    pub total: u64,
    /// 1-based index of the first user on this page.
    pub start_index: u64,
    /// This page, by userName.
    pub users: Vec<UserView>,
}

/// A group member.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemberView {
    /// The member's id.
    pub value: String,
    /// `User` or `Group`, when known.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The display text the IdP sent, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
}

/// A directory group.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GroupView {
    /// The SCIM id.
    pub id: String,
    /// The displayName.
    pub display_name: String,
    /// The IdP's id for the group.
    pub external_id: Option<String>,
    /// How many members (single-group reads only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub member_count: Option<u64>,
    /// The members (single-group reads only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub members: Option<Vec<MemberView>>,
    /// When created.
    pub created: DateTime<Utc>,
    /// When last changed.
    pub last_modified: DateTime<Utc>,
}

/// A page of groups.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GroupList {
    /// All matches.
    pub total: u64,
    /// 1-based index of the first group on this page.
    pub start_index: u64,
    /// This page, by displayName (without members).
    pub groups: Vec<GroupView>,
}

/// A directory search.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DirectoryQuery {
    /// A SCIM filter (RFC 7644 §3.4.2.2), e.g. `userName sw "a"`.
    #[serde(default)]
    pub filter: Option<String>,
    /// 1-based index of the first result (default 1).
    #[serde(default)]
    #[param(minimum = 1, maximum = 9223372036854775807_i64)]
    pub start_index: Option<u64>,
    /// Page size (default 50, at most 200; 0 counts without listing).
    #[serde(default)]
    #[param(minimum = 0, maximum = 200)]
    pub count: Option<u64>,
}

// ---------------------------------------------------------------------------
// Logs

/// One provisioning-log entry.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProvisioningEntryView {
    /// The entry's id (for `beforeId` paging).
    pub id: i64,
    /// When the request arrived.
    pub at: DateTime<Utc>,
    /// HTTP method.
    pub method: String,
    /// `User` or `Group`.
    pub resource_type: String,
    /// The resource id, when known.
    pub resource_id: Option<String>,
    /// userName, displayName or externalId.
    pub identifier: Option<String>,
    /// `success` or `failure`.
    pub outcome: String,
    /// HTTP status returned.
    pub status: u16,
    /// How long the request took.
    pub duration_ms: u64,
    /// The request id (also in logs).
    pub request_id: String,
    /// The SCIM error detail for failures.
    pub detail: Option<String>,
    /// For a write on a super tenant: the copies it changed in children,
    /// each `{child, resourceType, sourceId, copyId, action, rules}` (the
    /// rules are why it went there).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub routed: Option<Value>,
}

/// A page of the provisioning log.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProvisioningLog {
    /// Newest first.
    pub entries: Vec<ProvisioningEntryView>,
    /// Pass as `beforeId` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_before_id: Option<i64>,
}

/// Filters of the provisioning log.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ProvisioningLogQuery {
    /// Only entries at or after this time (RFC 3339).
    #[serde(default)]
    #[param(value_type = Option<String>, format = DateTime)]
    pub since: Option<String>,
    /// Only entries before this time (RFC 3339).
    #[serde(default)]
    #[param(value_type = Option<String>, format = DateTime)]
    pub until: Option<String>,
    /// `success` or `failure`.
    #[serde(default)]
    pub outcome: Option<String>,
    /// `User` or `Group`.
    #[serde(default)]
    pub resource_type: Option<String>,
    /// One resource's entries.
    #[serde(default)]
    pub resource_id: Option<String>,
    /// Entries older than this id (the previous page's `nextBeforeId`).
    #[serde(default)]
    #[param(minimum = 1)]
    pub before_id: Option<i64>,
    /// Page size (default 100, at most 1000).
    #[serde(default)]
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u64>,
}

/// One audit-log entry.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntryView {
    /// The entry's id (for `beforeId` paging).
    pub id: i64,
    /// The tenant concerned, if any.
    pub tenant_id: Option<String>,
    /// When the change committed.
    pub at: DateTime<Utc>,
    /// Who made it.
    pub actor: String,
    /// What was done (`roles.lock`, `tenant.update`, ...).
    pub action: String,
    /// What it was done to.
    pub target: String,
    /// Before/after values and other facts.
    #[schema(value_type = Object)]
    pub detail: Value,
}

/// A page of the audit log.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditLog {
    /// Newest first.
    pub entries: Vec<AuditEntryView>,
    /// Pass as `beforeId` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_before_id: Option<i64>,
}

/// Filters of a tenant's audit log.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQueryParams {
    /// Only this actor's entries (`operator:<email>`, ...).
    #[serde(default)]
    pub actor: Option<String>,
    /// Only this action.
    #[serde(default)]
    pub action: Option<String>,
    /// Only entries at or after this time (RFC 3339).
    #[serde(default)]
    #[param(value_type = Option<String>, format = DateTime)]
    pub since: Option<String>,
    /// Only entries before this time (RFC 3339).
    #[serde(default)]
    #[param(value_type = Option<String>, format = DateTime)]
    pub until: Option<String>,
    /// Entries older than this id.
    #[serde(default)]
    #[param(minimum = 1)]
    pub before_id: Option<i64>,
    /// Page size (default 100, at most 1000).
    #[serde(default)]
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u64>,
}

/// Filters of the global audit log.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct GlobalAuditQueryParams {
    /// Only this tenant's entries: its slug, or its id (which also finds
    /// entries of deleted tenants).
    #[serde(default)]
    pub tenant: Option<String>,
    /// Only this actor's entries.
    #[serde(default)]
    pub actor: Option<String>,
    /// Only this action.
    #[serde(default)]
    pub action: Option<String>,
    /// Only entries at or after this time (RFC 3339).
    #[serde(default)]
    #[param(value_type = Option<String>, format = DateTime)]
    pub since: Option<String>,
    /// Only entries before this time (RFC 3339).
    #[serde(default)]
    #[param(value_type = Option<String>, format = DateTime)]
    pub until: Option<String>,
    /// Entries older than this id.
    #[serde(default)]
    #[param(minimum = 1)]
    pub before_id: Option<i64>,
    /// Page size (default 100, at most 1000).
    #[serde(default)]
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u64>,
}

// ---------------------------------------------------------------------------
// Delivery: targets, attempts, waiting deliveries, the event feed, timelines

/// An event type's name (docs/events.md). Its schema is built from
/// `store::EventType::ALL`, the one list of types.
pub struct EventTypeName;

impl utoipa::PartialSchema for EventTypeName {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .enum_values(Some(store::EventType::ALL.iter().map(|t| t.as_str())))
            .description(Some("An event type (docs/events.md)"))
            .into()
    }
}

impl ToSchema for EventTypeName {}

/// How a target receives events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TargetKindWire {
    /// Signed HTTP POSTs (Standard Webhooks).
    Webhook,
    /// The application's own SCIM endpoint (not available yet).
    Scim,
}

/// A target, never with its secret.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TargetView {
    /// Its id.
    pub id: String,
    /// A label, unique in the tenant.
    pub name: String,
    /// Webhook (or outbound SCIM).
    pub kind: TargetKindWire,
    /// The endpoint.
    pub url: String,
    /// The event types it receives; empty for all.
    pub event_types: Vec<String>,
    /// Whether events are delivered to it.
    pub enabled: bool,
    /// Why it was disabled.
    pub disabled_reason: Option<String>,
    /// When it was disabled.
    pub disabled_at: Option<DateTime<Utc>>,
    /// The last event position it has handled.
    pub cursor: i64,
    /// Since when every attempt has failed.
    pub failing_since: Option<DateTime<Utc>>,
    /// The last successful attempt.
    pub last_success_at: Option<DateTime<Utc>>,
    /// The last failed attempt.
    pub last_failure_at: Option<DateTime<Utc>>,
    /// What the last failure was.
    pub last_error: Option<String>,
    /// Until when the previous signing secret still signs (a rotation).
    pub previous_secret_until: Option<DateTime<Utc>>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was last changed.
    pub updated_at: DateTime<Utc>,
}

/// The tenant's targets.
#[derive(Debug, Serialize, ToSchema)]
pub struct TargetList {
    /// By name.
    pub targets: Vec<TargetView>,
}

/// `POST /tenants/{tenant}/targets`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateTarget {
    /// A label, unique in the tenant (1 to 100 printable characters).
    #[schema(min_length = 1, max_length = 100, pattern = r"\S")]
    pub name: String,
    /// `webhook`.
    pub kind: TargetKindWire,
    /// The endpoint: http(s), no credentials, not an internal address.
    #[schema(
        min_length = 1,
        max_length = 2048,
        pattern = "^[Hh][Tt][Tt][Pp][Ss]?://[^/?#@]+"
    )]
    pub url: String,
    /// Event types to receive (see docs/events.md); absent or empty: all.
    #[serde(default)]
    #[schema(value_type = Vec<EventTypeName>)]
    pub event_types: Vec<String>,
    /// For `scim`: the application's bearer token (kept sealed, never
    /// shown again); not allowed for `webhook`.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 4096)]
    pub token: Option<String>,
}

/// A created target and its signing secret, shown this once.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedTargetView {
    /// The target.
    pub target: TargetView,
    /// The `whsec_...` signing secret: store it now, it is never shown
    /// again.
    pub secret: Option<String>,
}

/// `PATCH /tenants/{tenant}/targets/{id}`: only what is given changes.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateTarget {
    /// A new label.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 100, pattern = r"\S")]
    pub name: Option<String>,
    /// A new endpoint.
    #[serde(default)]
    #[schema(
        min_length = 1,
        max_length = 2048,
        pattern = "^[Hh][Tt][Tt][Pp][Ss]?://[^/?#@]+"
    )]
    pub url: Option<String>,
    /// New event types (empty: all).
    #[serde(default)]
    #[schema(value_type = Option<Vec<EventTypeName>>)]
    pub event_types: Option<Vec<String>>,
    /// Enable (clears the failure record) or disable.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// For `scim`: a new bearer token for the application.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 4096)]
    pub token: Option<String>,
}

/// A new signing secret, shown this once.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RotatedSecretView {
    /// The target.
    pub target: TargetView,
    /// The new `whsec_...` secret; the old one also signs until
    /// `target.previousSecretUntil`.
    pub secret: String,
}

/// One delivery attempt.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AttemptView {
    /// Its id (for `beforeId` paging).
    pub id: i64,
    /// The event (`evt_...`).
    pub event_id: String,
    /// The user or group.
    pub resource_id: String,
    /// 1 for an event's first attempt, then 2, ...
    pub attempt: u32,
    /// When it was made.
    pub at: DateTime<Utc>,
    /// The HTTP status, if an answer came.
    pub status_code: Option<u16>,
    /// `delivered`, `retry`, `dead` or `disabled`.
    pub outcome: String,
    /// How long it took.
    pub latency_ms: u64,
    /// The start of the answer's body.
    pub response: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
}

/// A page of attempts, newest first.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AttemptList {
    /// The attempts.
    pub attempts: Vec<AttemptView>,
    /// Pass as `beforeId` for the next page; absent on the last.
    pub next_before_id: Option<i64>,
}

/// Filters of a target's attempts.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AttemptQuery {
    /// Only this event's attempts (`evt_42`).
    #[serde(default)]
    #[param(pattern = r"^(evt_)?[1-9][0-9]{0,17}$")]
    pub event: Option<String>,
    /// Attempts older than this id (the previous page's `nextBeforeId`).
    #[serde(default)]
    #[param(minimum = 1)]
    pub before_id: Option<i64>,
    /// Page size (default 100, at most 500).
    #[serde(default)]
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u64>,
}

/// Where a waiting delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatusWire {
    /// Waiting for a retry, or behind an earlier event of its resource.
    Pending,
    /// A dead letter: given up on until replayed.
    Dead,
}

/// A waiting delivery.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryView {
    /// Its id (to replay one dead letter; `afterId` paging).
    pub id: i64,
    /// The event (`evt_...`).
    pub event_id: String,
    /// The event's position.
    pub position: i64,
    /// The user or group.
    pub resource_id: String,
    /// Pending or dead.
    pub status: DeliveryStatusWire,
    /// Attempts made.
    pub attempts: u32,
    /// When it is next attempted (pending).
    pub next_attempt_at: DateTime<Utc>,
    /// The last attempt's HTTP status.
    pub last_status: Option<u16>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// When it began waiting.
    pub created_at: DateTime<Utc>,
}

/// Waiting deliveries, oldest first.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryList {
    /// The deliveries.
    pub deliveries: Vec<DeliveryView>,
    /// Pass as `afterId` for the next page; absent on the last.
    pub next_after_id: Option<i64>,
}

/// Which waiting deliveries to list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeliveryQuery {
    /// `pending` (default) or `dead`.
    #[serde(default)]
    pub status: Option<DeliveryStatusWire>,
    /// Deliveries after this id (the previous page's `nextAfterId`).
    #[serde(default)]
    #[param(minimum = 0)]
    pub after_id: Option<i64>,
    /// Page size (default 100, at most 500).
    #[serde(default)]
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u64>,
}

/// How many dead letters went back in line.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReplayResult {
    /// The number replayed.
    pub replayed: u64,
}

/// `POST /tenants/{tenant}/targets/{id}/resend`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResendRequest {
    /// Send again every event committed at or after this time.
    pub since: DateTime<Utc>,
}

/// Where the target now reads from.
#[derive(Debug, Serialize, ToSchema)]
pub struct ResendResult {
    /// The target's new cursor: every event after it is sent (again).
    pub cursor: i64,
}

/// The event feed's query.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct FeedQuery {
    /// Events after this position (the previous page's `next`; 0 for the
    /// start of what is kept).
    #[serde(default)]
    #[param(minimum = 0)]
    pub after: Option<i64>,
    /// Page size (default 100, at most 100).
    #[serde(default)]
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u64>,
    /// Only these event types, comma-separated
    /// (`user.created,user.deleted`).
    #[serde(default, rename = "type")]
    #[param(rename = "type", value_type = Option<Vec<EventTypeName>>, style = Form, explode = false, min_items = 1)]
    pub types: Option<String>,
}

/// A page of the event feed, in commit order.
#[derive(Debug, Serialize, ToSchema)]
pub struct FeedPage {
    /// Event envelopes (docs/events.md).
    #[schema(value_type = Vec<Object>)]
    pub events: Vec<Value>,
    /// Pass as `after` for the next page (unchanged when there was
    /// nothing new).
    pub next: i64,
}

/// One entry of a resource's timeline.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TimelineEntryView {
    /// When it happened.
    pub at: DateTime<Utc>,
    /// `request`, `roles`, `event` or `attempt`.
    pub kind: String,
    /// One line.
    pub summary: String,
    /// Details by kind.
    #[schema(value_type = Object)]
    pub detail: Value,
}

/// A user's or group's history, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct Timeline {
    /// The entries.
    pub entries: Vec<TimelineEntryView>,
}

/// `POST /tenants/{tenant}/targets/{id}/reconcile`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ReconcileQuery {
    /// Only report the drift (default), or also repair it.
    #[serde(default)]
    pub dry_run: Option<bool>,
}

/// A background job (reconciliation, role recompute).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobInfoView {
    /// Its id.
    pub id: String,
    /// `scim_reconcile`, `role_recompute`, ...
    pub kind: String,
    /// `queued`, `running`, `done`, `failed` or `cancelled`.
    pub status: String,
    /// What it was asked to do.
    #[schema(value_type = Object)]
    pub payload: Value,
    /// Items to go through (0 until known).
    pub total: u64,
    /// Items done so far.
    pub processed: u64,
    /// Items changed so far.
    pub changed: u64,
    /// What it found (a reconciliation's drift report).
    #[schema(value_type = Option<Object>)]
    pub result: Option<Value>,
    /// Why it failed.
    pub error: Option<String>,
    /// Attempts so far.
    pub attempts: u32,
    /// When it was queued.
    pub created_at: DateTime<Utc>,
    /// When it started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
}

/// `PUT /tenants/{tenant}/kind`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetTenantKind {
    /// The tenant's new kind.
    pub kind: TenantKindWire,
}

/// What happens to a child's copy of a user the super tenant no longer
/// routes there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnUnrouteWire {
    /// Deactivated (`active: false`), reactivated if routed there again.
    #[default]
    Deactivate,
    /// Deleted.
    Delete,
}

/// `PUT /tenants/{tenant}/children/{child}`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LinkChild {
    /// What happens to copies of users no longer routed to the child
    /// (default `deactivate`).
    #[serde(default)]
    pub on_unroute: OnUnrouteWire,
}

/// A child tenant of a super tenant.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChildView {
    /// The child tenant.
    pub tenant: TenantView,
    /// What happens to copies of users no longer routed to it.
    pub on_unroute: OnUnrouteWire,
    /// When it was linked.
    pub linked_at: DateTime<Utc>,
}

/// `GET /tenants/{tenant}/children`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChildList {
    /// The children, in the order they were linked.
    pub children: Vec<ChildView>,
}

/// One routing rule: a child tenant and exactly one condition.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RuleWire {
    /// The rule's id: 1 to 64 of `a-z`, `0-9`, `-`, `_`; unique.
    pub id: String,
    /// The child tenant's slug (a child this super tenant feeds).
    pub child: String,
    /// Route this group's members (and copy the group there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<GroupSelector>,
    /// Route the users this SCIM filter matches (RFC 7644 §3.4.2.2; the
    /// user's `groups` can be tested too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
}

/// `GET /tenants/{tenant}/routing`: a super tenant's routing rules.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoutingView {
    /// Grows with every change; send it back as `If-Match`.
    pub version: u64,
    /// The rules, in order.
    pub rules: Vec<RuleWire>,
    /// When last changed (absent: never set).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<DateTime<Utc>>,
}

/// `PUT /tenants/{tenant}/routing`: the whole new set of rules.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoutingInput {
    /// The rules, in order (at most 1000).
    pub rules: Vec<RuleWire>,
    /// The version the change expects (as `If-Match`, which wins when both
    /// are given and must then agree).
    #[serde(default)]
    #[schema(minimum = 0, maximum = 9223372036854775807_i64)]
    pub version: Option<u64>,
    /// Accepted so a document read with GET can be sent back; ignored.
    #[serde(default)]
    pub updated_at: Option<DateTime<Utc>>,
}

/// The answer to stored routing rules.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoutingChangeView {
    /// The rules as stored.
    pub routing: RoutingView,
    /// The job re-routing the existing users and groups (its progress and,
    /// when done, what entered and left each child: `GET
    /// /tenants/{tenant}/jobs/{id}`).
    pub job: JobRef,
}

/// A user or group in a routing dry run's sample.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoutedSample {
    /// Its id in the super tenant.
    pub id: String,
    /// Its userName.
    pub name: String,
}

/// What new rules would do in one child.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChildMovesView {
    /// The child's slug.
    pub child: String,
    /// Users who would get a copy there, or have theirs reactivated.
    pub users_entering: u64,
    /// Users whose copy there would be deactivated or deleted (by the
    /// child's link).
    pub users_leaving: u64,
    /// Groups that would be copied there.
    pub groups_entering: u64,
    /// Groups whose copy there would be deleted.
    pub groups_leaving: u64,
    /// Up to 20 of the users entering.
    pub sample_entering: Vec<RoutedSample>,
    /// Up to 20 of the users leaving.
    pub sample_leaving: Vec<RoutedSample>,
}

/// A routing dry run: nothing stored.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoutingDryRunView {
    /// Always true.
    pub dry_run: bool,
    /// The super tenant's users, all looked at.
    pub users: u64,
    /// Its groups, all looked at.
    pub groups: u64,
    /// Each child something would enter or leave.
    pub children: Vec<ChildMovesView>,
}

/// What a routing change answers: the stored rules and their job, or with
/// `?dryRun=true` what they would do.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum RoutingChangeResult {
    /// Stored.
    Stored(RoutingChangeView),
    /// A dry run.
    DryRun(RoutingDryRunView),
}

/// A copy of a super tenant's user or group in one child.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CopyView {
    /// The child's slug.
    pub child: String,
    /// `User` or `Group`.
    pub resource_type: String,
    /// The copy's own id in the child.
    pub copy_id: String,
    /// Routed there now (false: a deactivated copy waiting).
    pub routed: bool,
    /// The ids of the rules that route it there (the "why").
    pub rules: Vec<String>,
    /// When the copy's link last changed.
    pub updated_at: DateTime<Utc>,
}

/// `GET /tenants/{tenant}/users/{id}/copies` (and groups).
#[derive(Debug, Serialize, ToSchema)]
pub struct CopyList {
    /// The copies, by child slug.
    pub copies: Vec<CopyView>,
}

/// A target's attribute mapping (docs/mappings.md) and its version.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AttributeMappingView {
    /// Grows with every change; also the ETag (0: never set).
    pub version: u64,
    /// The mapping: `users` and `groups`, each with `keepUnmapped` and
    /// `attributes` rules, and `raw`; `null` when the application receives
    /// documents as stored.
    #[schema(value_type = Option<Object>)]
    pub mapping: Option<Value>,
    /// After a change asked to re-send: the job that sends the users and
    /// groups whose document changed to this target again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resend_job: Option<JobRef>,
}

/// `PUT /tenants/{tenant}/targets/{id}/mapping`: the whole new mapping.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AttributeMappingInput {
    /// The mapping; `null` or absent: documents as stored.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub mapping: Option<Value>,
    /// The version the change expects (as `If-Match`, which wins when both
    /// are given and must then agree).
    #[serde(default)]
    #[schema(minimum = 0, maximum = 9223372036854775807_i64)]
    pub version: Option<u64>,
    /// Re-send the users and groups whose document the change alters to
    /// this target, as a job (default false).
    #[serde(default)]
    pub resend: bool,
}

/// `POST /tenants/{tenant}/targets/{id}/mapping/preview`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AttributeMappingPreviewInput {
    /// The mapping to preview; `null` or absent: documents as stored.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub mapping: Option<Value>,
    /// The users to show (at most 50); absent: the first `first` users.
    #[serde(default)]
    pub users: Option<Vec<String>>,
    /// How many users to show when `users` is absent (1-50, default 5).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 50)]
    pub first: Option<u64>,
}

/// One user in a mapping preview.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AttributeMappingPreviewEntry {
    /// The user's id.
    pub id: String,
    /// What the target receives as `data` under its stored mapping.
    #[schema(value_type = Object)]
    pub before: Value,
    /// What it would receive under the previewed mapping.
    #[schema(value_type = Object)]
    pub after: Value,
}

/// A mapping preview: each user's document before and after.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AttributeMappingPreviewView {
    /// The users, in the order asked (or by id).
    pub users: Vec<AttributeMappingPreviewEntry>,
}

/// An outbound SCIM target's profile of its application's limits.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProfileWire {
    /// Members added or removed per group PATCH, at most (1-1000; default
    /// 100); a larger change is split.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 1000)]
    pub members_per_patch: Option<u64>,
    /// How a changed user is sent: `put` (default) or `patch`.
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "put")]
    pub update_method: Option<UpdateMethodWire>,
    /// Requests per second to the application, at most (1-10000; absent:
    /// as fast as it answers).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 10000)]
    pub requests_per_second: Option<u64>,
    /// Whether the application takes only users as group members: a
    /// nested group's users become members of every group above it
    /// (default false).
    #[serde(default)]
    pub flatten_groups: Option<bool>,
}

/// How an outbound SCIM target updates a user.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum UpdateMethodWire {
    /// The whole user.
    Put,
    /// A `replace` of its attributes.
    Patch,
}

// ---------------------------------------------------------------------------
// Deletion safety

/// A tenant's deletion safety (docs/deletion-safety.md).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeletionSafetyView {
    /// Deletions and deactivations let through per window before the rest
    /// are held (`null`: no count limit).
    pub max_deletions: Option<u32>,
    /// The same as a share of the directory, in percent (`null`: none).
    pub max_percent: Option<u32>,
    /// The window's length, in minutes.
    pub window_minutes: u32,
    /// How long a deleted user stays restorable, in days (0: no soft
    /// delete).
    pub grace_days: u32,
    /// Grows with every policy change; also the ETag (0: the defaults).
    pub version: u64,
    /// Whether the threshold has tripped: deletions and deactivations are
    /// held until released or discarded.
    pub tripped: bool,
    /// When the current window started.
    pub window_started_at: Option<DateTime<Utc>>,
    /// Changes let through in the current window.
    pub window_count: u64,
    /// Changes held now.
    pub held: u64,
}

/// `PUT /tenants/{tenant}/deletion-safety`: a field left out takes its
/// default; `null` turns a limit off.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeletionPolicyInput {
    /// Changes let through per window (1-1000000; default 500; `null`: no
    /// count limit).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u32>, minimum = 1, maximum = 1000000)]
    pub max_deletions: Option<Option<u32>>,
    /// Percent of the directory let through per window (1-100; default
    /// none).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u32>, minimum = 1, maximum = 100)]
    pub max_percent: Option<Option<u32>>,
    /// The window, in minutes (1-10080; default 60).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 10080)]
    pub window_minutes: Option<u32>,
    /// Days a deleted user stays restorable (0-3650; default 30).
    #[serde(default)]
    #[schema(minimum = 0, maximum = 3650)]
    pub grace_days: Option<u32>,
    /// The version the change expects (as `If-Match`).
    #[serde(default)]
    #[schema(minimum = 0, maximum = 9223372036854775807_i64)]
    pub version: Option<u64>,
}

/// A held deletion or deactivation.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HeldChangeView {
    /// Its id.
    pub id: i64,
    /// The user.
    pub user_id: String,
    /// The user's userName, when the change records it.
    pub user_name: Option<String>,
    /// `threshold` or `protected`.
    pub reason: String,
    /// The held event (`user.deleted`, `user.deactivated`, ...).
    pub event_type: String,
    /// When it was held.
    pub held_at: DateTime<Utc>,
}

/// `GET /tenants/{tenant}/held-changes`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HeldChangeList {
    /// Oldest first.
    pub changes: Vec<HeldChangeView>,
}

/// `POST /tenants/{tenant}/held-changes/release` (or `/discard`): which
/// ones; neither field: all of them.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HeldSelectionInput {
    /// These held changes, by id.
    #[serde(default)]
    pub ids: Option<Vec<i64>>,
    /// Every held change of these users.
    #[serde(default)]
    pub users: Option<Vec<String>>,
}

/// How many held changes a release or discard settled.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HeldSettled {
    /// How many.
    pub count: u64,
}

/// A protected user.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProtectionView {
    /// The user.
    pub user_id: String,
    /// Why.
    pub reason: String,
    /// Who protected it.
    pub protected_by: String,
    /// When.
    pub since: DateTime<Utc>,
}

/// `GET /tenants/{tenant}/protected-users`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProtectionList {
    /// By user id.
    pub users: Vec<ProtectionView>,
}

/// `PUT /tenants/{tenant}/users/{id}/protection`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProtectionInput {
    /// Why (required, not blank).
    #[schema(min_length = 1, pattern = r"\S")]
    pub reason: String,
}

/// A soft-deleted user.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeletedUserView {
    /// Its id (the same after a restore).
    pub id: String,
    /// Its userName.
    pub user_name: String,
    /// When it was deleted.
    pub deleted_at: DateTime<Utc>,
    /// When it is purged unless restored first.
    pub purge_after: DateTime<Utc>,
}

/// `GET /tenants/{tenant}/deleted-users`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeletedUserList {
    /// Most recently deleted first.
    pub users: Vec<DeletedUserView>,
}

/// `?limit=` of the held-change and deleted-user lists.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SafetyListQuery {
    /// At most this many (1-1000; default 100).
    #[serde(default)]
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u64>,
}

/// `?confirm=` of an erasure: must repeat the user's id.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EraseQuery {
    /// The user's id again: an erasure cannot be undone.
    #[serde(default)]
    #[param(max_length = 200)]
    pub confirm: Option<String>,
}

/// What an erasure removed: rows per table (no data).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErasureView {
    /// The user's id.
    pub id: String,
    /// Rows removed or blanked, by table.
    #[schema(value_type = Object)]
    pub rows: Value,
}

/// A setup link (never its secret).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SetupLinkView {
    /// Its id.
    pub id: String,
    /// Its label.
    pub name: String,
    /// Who made it.
    pub created_by: String,
    /// When.
    pub created_at: DateTime<Utc>,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
    /// When its holder last issued a token with it.
    pub last_used_at: Option<DateTime<Utc>>,
    /// The last token issued through it.
    pub token_id: Option<String>,
}

/// A just-made setup link, with the URL to hand over (shown once).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedSetupLink {
    /// The stored facts.
    #[serde(flatten)]
    pub link: SetupLinkView,
    /// The link's path on this deployment (`/console/setup/sgl_...`):
    /// prefix the public URL and send it to the customer's IT admin. Only
    /// a hash is stored; it is never shown again.
    pub path: String,
}

/// `GET /tenants/{tenant}/setup-links`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SetupLinkList {
    /// Newest first, revoked and expired ones included.
    pub setup_links: Vec<SetupLinkView>,
}

/// `POST /tenants/{tenant}/setup-links`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateSetupLink {
    /// A label ("Acme IT"; not blank).
    #[schema(min_length = 1, pattern = r"\S")]
    pub name: String,
    /// Days until it stops working: 1 to 30, 7 when absent.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 30)]
    pub expires_in_days: Option<i64>,
}

/// A tenant's quarantine risk (docs/quarantine-guard.md): its SCIM
/// requests over the last hour, across every gateway.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct QuarantineRiskView {
    /// The window, in seconds (an hour).
    pub window_seconds: i64,
    /// SCIM requests answered in the window.
    pub requests: u64,
    /// Of which failed (404s are not failures).
    pub failures: u64,
    /// `failures / requests` (0 without requests).
    pub failure_ratio: f64,
    /// Failures by cause: `validation`, `conflict`, `auth`, `throttled`,
    /// `server`, `timeout`.
    #[schema(value_type = std::collections::HashMap<String, u64>)]
    pub by_cause: std::collections::HashMap<&'static str, u64>,
    /// `ok`, `warning` (at or above `warnRatio`) or `critical` (at or
    /// above `quarantineRatio`); always `ok` below `minRequests`.
    pub level: &'static str,
    /// `level` is not `ok`: the `ScimgateQuarantineRisk` alert fires.
    pub at_risk: bool,
    /// The ratio the warning starts at.
    pub warn_ratio: f64,
    /// The guard's reading of Microsoft's "most calls fail".
    pub quarantine_ratio: f64,
    /// The fewest requests in the window for a flag.
    pub min_requests: u64,
    /// The most frequent failing requests, most frequent first.
    pub top_failures: Vec<FailingRequestView>,
}

/// One kind of failing request over the window.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FailingRequestView {
    /// The HTTP method.
    pub method: String,
    /// The route pattern (`/scim/v2/Users/{id}`).
    pub route: String,
    /// The status answered.
    pub status: u16,
    /// The SCIM error's `scimType`, if any.
    pub scim_type: Option<String>,
    /// The guard's cause.
    pub cause: &'static str,
    /// How many in the window.
    pub count: u64,
    /// The error detail of the latest one.
    pub detail: String,
    /// What to fix.
    pub advice: &'static str,
}
