//! The command line.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};

use crate::config::{Flags, Secret};

/// scimgate: a multi-tenant SCIM 2.0 gateway.
#[derive(Debug, Parser)]
#[command(
    name = "scimgate",
    version,
    about = "scimgate: a multi-tenant SCIM 2.0 gateway",
    after_help = "Configuration: defaults < TOML file < SCIMGATE_<KEY> environment < flags; see docs/configuration.md.\n\
                  Processes: `serve` runs everything; a split deployment runs `gateway`, `admin` and `worker` against one PostgreSQL (docs/operations.md)."
)]
pub struct Cli {
    /// TOML configuration file (else $SCIMGATE_CONFIG; see docs/configuration.md).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Database URL, postgres://... or sqlite:... (default: SQLite in the data directory).
    ///
    /// Prefer SCIMGATE_DATABASE_URL_FILE for a URL with a password: command-line
    /// arguments are visible to other users through `ps`.
    #[arg(long, global = true, value_name = "URL")]
    pub database_url: Option<String>,

    /// The deployment's Redis, redis://[:password@]host:port[/db] (optional:
    /// shared rate limits, notices between instances, the delivery queue).
    ///
    /// Prefer SCIMGATE_REDIS_URL for a URL with a password.
    #[arg(long, global = true, value_name = "URL")]
    pub redis_url: Option<String>,

    /// Directory of the embedded SQLite database (default ./data).
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Machine-readable JSON output for operator commands.
    #[arg(long, global = true)]
    pub json: bool,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run everything in one process: SCIM gateway, admin API and console, metrics, background work.
    Serve(ServeArgs),
    /// Run only the SCIM service (split deployment): /scim/v2, /metrics, /healthz, /readyz.
    Gateway(ServeArgs),
    /// Without a subcommand, run the admin API and console (split deployment); with one, manage admin logins.
    Admin(AdminArgs),
    /// Run the background work only (split deployment): delivery, jobs, sweeps; /metrics, /healthz, /readyz.
    Worker(ServeArgs),
    /// Apply database migrations and exit.
    Migrate,
    /// Write a consistent copy of the SQLite database to FILE, safe while servers run (PostgreSQL: use pg_dump -Fc).
    Backup {
        /// The new file; an existing file is never replaced.
        file: PathBuf,
    },
    /// Manage tenants.
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Manage a tenant's SCIM bearer tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Show and change a tenant's role policy (roles, default, mode, group mappings).
    #[command(subcommand)]
    Role(RoleCommand),
    /// Show and change a super tenant's routing rules; show where a user or group was copied.
    #[command(subcommand)]
    Routing(RoutingCommand),
    /// Pin a user to roles, whatever their groups (a role-lock).
    Lock(LockArgs),
    /// Remove a user's role-lock.
    Unlock {
        /// The tenant's slug.
        tenant: String,
        /// The user's id or userName.
        user: String,
    },
    /// List a tenant's role-locks.
    Locks {
        /// The tenant's slug.
        tenant: String,
    },
    /// Show the admin audit log, newest first.
    Audit(AuditArgs),
    /// Manage a tenant's delivery targets (webhooks, outbound SCIM).
    #[command(subcommand)]
    Target(TargetCommand),
    /// Users: their history.
    #[command(subcommand)]
    User(UserCommand),
    /// Groups: their history.
    #[command(subcommand)]
    Group(UserCommand),
    /// Deletion safety: the policy, held deletions, protected and
    /// soft-deleted users, erasure.
    #[command(subcommand)]
    Safety(SafetyCommand),
}

/// `user ...` and `group ...`.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Show the history: requests, role changes, events, delivery attempts.
    Timeline {
        /// The tenant's slug.
        tenant: String,
        /// The user's or group's id.
        id: String,
    },
}

/// `safety ...`.
#[derive(Debug, Subcommand)]
pub enum SafetyCommand {
    /// Show the deletion policy and its state (window, trip, held changes).
    Show {
        /// The tenant's slug.
        tenant: String,
    },
    /// Replace the deletion policy; options left out take their defaults.
    Set {
        /// The tenant's slug.
        tenant: String,
        /// Deletions and deactivations let through per window (default 500).
        #[arg(long, value_name = "N", conflicts_with = "no_max_deletions")]
        max_deletions: Option<u32>,
        /// No count limit.
        #[arg(long)]
        no_max_deletions: bool,
        /// The same as a share of the directory, in percent (default: none).
        #[arg(long, value_name = "P", conflicts_with = "no_max_percent")]
        max_percent: Option<u32>,
        /// No share limit (the default).
        #[arg(long)]
        no_max_percent: bool,
        /// The window's length, in minutes (default 60).
        #[arg(long, value_name = "M")]
        window_minutes: Option<u32>,
        /// Days a deleted user stays restorable (default 30; 0: deletions
        /// are final at once).
        #[arg(long, value_name = "D")]
        grace_days: Option<u32>,
        /// Only if the policy is still at this version.
        #[arg(long, value_name = "V")]
        if_match: Option<u64>,
    },
    /// List the held deletions and deactivations, oldest first.
    Held {
        /// The tenant's slug.
        tenant: String,
        /// How many.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=1000))]
        limit: u64,
    },
    /// Release held changes to the applications (all, or those named).
    Release {
        /// The tenant's slug.
        tenant: String,
        /// --id, --user.
        #[command(flatten)]
        which: HeldArgs,
    },
    /// Discard held changes: the applications keep the users (all, or
    /// those named).
    Discard {
        /// The tenant's slug.
        tenant: String,
        /// --id, --user.
        #[command(flatten)]
        which: HeldArgs,
    },
    /// List the protected users.
    Protected {
        /// The tenant's slug.
        tenant: String,
    },
    /// Protect a user: the IdP's deletion or deactivation of it is held.
    Protect {
        /// The tenant's slug.
        tenant: String,
        /// The user's id.
        user_id: String,
        /// Why (required; shown in `safety protected` and the audit log).
        #[arg(long)]
        reason: String,
    },
    /// Remove a user's protection.
    Unprotect {
        /// The tenant's slug.
        tenant: String,
        /// The user's id.
        user_id: String,
    },
    /// List the soft-deleted users, most recently deleted first.
    Deleted {
        /// The tenant's slug.
        tenant: String,
        /// How many.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=1000))]
        limit: u64,
    },
    /// Restore a soft-deleted user with the same id.
    Restore {
        /// The tenant's slug.
        tenant: String,
        /// The deleted user's id.
        user_id: String,
    },
    /// Erase a user's personal data everywhere (live or soft-deleted);
    /// it cannot be undone.
    Erase {
        /// The tenant's slug.
        tenant: String,
        /// The user's id.
        user_id: String,
        /// The user's id again, to confirm.
        #[arg(long, value_name = "USER_ID")]
        confirm: Option<String>,
    },
}

/// Which held changes `safety release` and `safety discard` take; neither
/// option: all of them.
#[derive(Debug, Clone, Args)]
pub struct HeldArgs {
    /// This held change (repeatable).
    #[arg(long = "id", value_name = "N", conflicts_with = "users")]
    pub ids: Vec<i64>,
    /// Every held change of this user (repeatable).
    #[arg(long = "user", value_name = "USER_ID")]
    pub users: Vec<String>,
}

/// `target ...`.
#[derive(Debug, Subcommand)]
pub enum TargetCommand {
    /// Create a target; a webhook's signing secret is printed once.
    Create {
        /// The tenant's slug.
        tenant: String,
        /// A label, unique in the tenant.
        name: String,
        /// The endpoint (for outbound SCIM: the application's SCIM base URL).
        #[arg(long)]
        url: String,
        /// `webhook` or `scim`.
        #[arg(long, default_value = "webhook")]
        kind: String,
        /// Event types to receive (repeat or comma-separate; default all).
        #[arg(long = "event-type", value_name = "TYPE", value_delimiter = ',')]
        event_types: Vec<String>,
        /// Read the application's bearer token (outbound SCIM) from stdin.
        #[arg(long)]
        token_stdin: bool,
    },
    /// List the tenant's targets with their health.
    List {
        /// The tenant's slug.
        tenant: String,
    },
    /// Show one target.
    Show {
        /// The tenant's slug.
        tenant: String,
        /// The target's id.
        id: String,
    },
    /// Change a target's name or address, or enable/disable it.
    Update {
        /// The tenant's slug.
        tenant: String,
        /// The target's id.
        id: String,
        /// A new label.
        #[arg(long)]
        name: Option<String>,
        /// A new endpoint.
        #[arg(long)]
        url: Option<String>,
        /// Enable it (clears its failure record).
        #[arg(long)]
        enable: bool,
        /// Disable it.
        #[arg(long)]
        disable: bool,
    },
    /// Delete a target and its waiting deliveries.
    Delete {
        /// The tenant's slug.
        tenant: String,
        /// The target's id.
        id: String,
    },
    /// Give a webhook target a new signing secret (printed once).
    RotateSecret {
        /// The tenant's slug.
        tenant: String,
        /// The target's id.
        id: String,
    },
    /// The target's delivery attempts, newest first.
    Attempts {
        /// The tenant's slug.
        tenant: String,
        /// The target's id.
        id: String,
        /// How many.
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=500))]
        limit: u64,
    },
    /// The target's dead letters.
    DeadLetters {
        /// The tenant's slug.
        tenant: String,
        /// The target's id.
        id: String,
        /// How many.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=500))]
        limit: u64,
    },
    /// Put dead letters back in line: all, or one with --delivery.
    Replay {
        /// The tenant's slug.
        tenant: String,
        /// The target's id.
        id: String,
        /// Only this dead letter.
        #[arg(long)]
        delivery: Option<i64>,
    },
    /// Compare an outbound SCIM application with the tenant in a
    /// background job (a dry run unless --repair); prints the job's id.
    Reconcile {
        /// The tenant's slug.
        tenant: String,
        /// The target's id.
        id: String,
        /// Also repair the drift.
        #[arg(long)]
        repair: bool,
    },
    /// Show a target's attribute mapping and its version
    /// (docs/mappings.md).
    Mapping {
        /// The tenant's slug.
        tenant: String,
        /// The target's id.
        id: String,
    },
    /// Replace a target's attribute mapping with that of a JSON file
    /// (`{"mapping": {...}}`, as `target mapping --json` prints, or the
    /// bare mapping; `-` reads standard input; `null` removes it).
    SetMapping {
        /// The tenant's slug.
        tenant: String,
        /// The target's id.
        id: String,
        /// The mapping file, or `-` for standard input.
        #[arg(long)]
        file: std::path::PathBuf,
        /// Only if the mapping is still at this version.
        #[arg(long)]
        if_match: Option<u64>,
        /// Also send the users and groups whose document changes to the
        /// target again (a job that a running server or worker runs).
        #[arg(long)]
        resend: bool,
    },
    /// Show what the target would receive for some users under the
    /// mapping of a JSON file, next to what it receives now.
    PreviewMapping {
        /// The tenant's slug.
        tenant: String,
        /// The target's id.
        id: String,
        /// The mapping file, or `-` for standard input.
        #[arg(long)]
        file: std::path::PathBuf,
        /// These users (repeatable); without it, the first --first users.
        #[arg(long = "user")]
        users: Vec<String>,
        /// How many users when no --user is given.
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=50))]
        first: u64,
    },
    /// Show an outbound SCIM target's profile of its application's limits.
    Profile {
        /// The tenant's slug.
        tenant: String,
        /// The target's id.
        id: String,
    },
    /// Replace an outbound SCIM target's profile; options left out take
    /// their defaults.
    SetProfile {
        /// The tenant's slug.
        tenant: String,
        /// The target's id.
        id: String,
        /// Members added or removed per group PATCH (default 100).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1000))]
        members_per_patch: Option<u32>,
        /// How a changed user is sent (default put).
        #[arg(long, value_enum)]
        update_method: Option<UpdateMethodArg>,
        /// Requests per second to the application, at most (default: no limit).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=10000))]
        requests_per_second: Option<u32>,
        /// Send a nested group's users as members of every group above it,
        /// for applications without nested groups (default false).
        #[arg(long)]
        flatten_groups: Option<bool>,
    },
    /// Send again every event committed since a time.
    Resend {
        /// The tenant's slug.
        tenant: String,
        /// The target's id.
        id: String,
        /// RFC 3339 time, e.g. 2026-12-01T00:00:00Z.
        #[arg(long)]
        since: String,
    },
}

/// Options of `serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (default 127.0.0.1:8080; port 0 picks a free port).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Base URL clients reach this server at, e.g. behind a reverse proxy.
    #[arg(long, value_name = "URL")]
    pub public_url: Option<String>,
}

/// `admin`: the admin process, or (with a subcommand) the admin logins.
///
/// Both share the name: `scimgate admin [--listen ADDR]` is the process of
/// a split deployment (as `gateway` and `worker` are), and `scimgate admin
/// create-operator ...` (and the other login commands) keep working.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct AdminArgs {
    /// Manage admin logins instead of running the admin process.
    #[command(subcommand)]
    pub command: Option<AdminCommand>,
    /// The admin process's listener.
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// `tenant ...`.
#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create a tenant and its first scim:write token.
    Create {
        /// URL slug: lowercase letters, digits and '-'.
        slug: String,
        /// Display name (default: the slug).
        #[arg(long)]
        name: Option<String>,
        /// Tenant kind.
        #[arg(long, value_enum, default_value_t = KindArg::Standard)]
        kind: KindArg,
    },
    /// List tenants.
    List,
    /// Suspend a tenant: its SCIM endpoint answers 403 until resumed.
    Suspend {
        /// The tenant's slug.
        tenant: String,
    },
    /// Resume a suspended tenant.
    Resume {
        /// The tenant's slug.
        tenant: String,
    },
    /// Change a tenant's display name (the slug never changes).
    Rename {
        /// The tenant's slug.
        tenant: String,
        /// The new display name.
        name: String,
    },
    /// Delete a tenant and everything it owns (users, groups, tokens, logins, roles).
    Delete {
        /// The tenant's slug.
        tenant: String,
        /// Confirm the deletion; it cannot be undone.
        #[arg(long)]
        yes: bool,
        /// For a super tenant that feeds children: keep the users and
        /// groups it copied there as the children's own, or remove them.
        #[arg(long, value_enum)]
        copies: Option<CopiesArg>,
    },
    /// Make a tenant standard or super (a super tenant feeds child tenants).
    Kind {
        /// The tenant's slug.
        tenant: String,
        /// The new kind.
        #[arg(value_enum)]
        kind: KindArg,
    },
    /// Make a tenant a child of a super tenant.
    Link {
        /// The super tenant's slug.
        super_tenant: String,
        /// The child tenant's slug.
        child: String,
        /// What happens to the child's copy of a user the super tenant no
        /// longer routes there.
        #[arg(long, value_enum, default_value_t = OnUnrouteArg::Deactivate)]
        on_unroute: OnUnrouteArg,
    },
    /// End a child's link to its super tenant.
    Unlink {
        /// The super tenant's slug.
        super_tenant: String,
        /// The child tenant's slug.
        child: String,
        /// What becomes of the users and groups the super tenant copied
        /// there: kept as the child's own, or removed from it.
        #[arg(long, value_enum)]
        copies: Option<CopiesArg>,
    },
    /// List the child tenants a super tenant feeds.
    Children {
        /// The super tenant's slug.
        super_tenant: String,
    },
}

/// `routing ...`.
#[derive(Debug, Subcommand)]
pub enum RoutingCommand {
    /// Show a super tenant's routing rules and their version.
    Show {
        /// The super tenant's slug.
        super_tenant: String,
    },
    /// Replace a super tenant's routing rules with those of a JSON file
    /// (`{"rules": [...]}` or the bare array; `-` reads standard input),
    /// then re-route its users and groups.
    Set {
        /// The super tenant's slug.
        super_tenant: String,
        /// The rules file, or `-` for standard input.
        #[arg(long)]
        file: std::path::PathBuf,
        /// Only if the rules are still at this version.
        #[arg(long)]
        if_match: Option<u64>,
        /// Show who would enter and leave each child; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Store the rules and print the queued re-route job's id without
        /// running it (a running server picks it up).
        #[arg(long, conflicts_with = "dry_run")]
        no_wait: bool,
    },
    /// Show the children a super tenant's user or group was copied into, and why.
    Copies {
        /// The super tenant's slug.
        super_tenant: String,
        /// The user's or group's id in the super tenant.
        id: String,
    },
}

/// How an outbound SCIM target updates a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum UpdateMethodArg {
    /// `PUT` the whole user.
    Put,
    /// `PATCH` a `replace` of its attributes.
    Patch,
}

impl From<UpdateMethodArg> for store::delivery::UpdateMethod {
    fn from(arg: UpdateMethodArg) -> Self {
        match arg {
            UpdateMethodArg::Put => store::delivery::UpdateMethod::Put,
            UpdateMethodArg::Patch => store::delivery::UpdateMethod::Patch,
        }
    }
}

/// What becomes of a super tenant's copies when a child's link ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CopiesArg {
    /// They stay, as the child's own users and groups.
    Keep,
    /// They are deleted from the child.
    Remove,
}

impl From<CopiesArg> for store::fanout::CopiesOnUnlink {
    fn from(arg: CopiesArg) -> Self {
        match arg {
            CopiesArg::Keep => store::fanout::CopiesOnUnlink::Keep,
            CopiesArg::Remove => store::fanout::CopiesOnUnlink::Remove,
        }
    }
}

/// What happens to a child's copy of a user no longer routed there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OnUnrouteArg {
    /// Deactivated, and reactivated if routed there again.
    Deactivate,
    /// Deleted.
    Delete,
}

impl From<OnUnrouteArg> for store::fanout::OnUnroute {
    fn from(arg: OnUnrouteArg) -> Self {
        match arg {
            OnUnrouteArg::Deactivate => store::fanout::OnUnroute::Deactivate,
            OnUnrouteArg::Delete => store::fanout::OnUnroute::Delete,
        }
    }
}

/// `admin ...`.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create an operator login (admin API and console, every tenant).
    CreateOperator {
        /// The login e-mail address.
        #[arg(long)]
        email: String,
        /// Read the password from the first line of standard input instead
        /// of generating one (at least 12 characters).
        #[arg(long)]
        password_stdin: bool,
    },
    /// Create a tenant administrator login (one tenant's roles and logs).
    CreateTenantAdmin {
        /// The tenant's slug.
        tenant: String,
        /// The login e-mail address.
        #[arg(long)]
        email: String,
        /// Read the password from the first line of standard input instead
        /// of generating one (at least 12 characters).
        #[arg(long)]
        password_stdin: bool,
    },
    /// List a tenant's administrator logins (never their passwords).
    ListTenantAdmins {
        /// The tenant's slug.
        tenant: String,
    },
    /// Delete a tenant administrator login.
    DeleteTenantAdmin {
        /// The tenant's slug.
        tenant: String,
        /// The login's id (from `admin list-tenant-admins`) or its e-mail address.
        admin: String,
    },
}

/// `role ...`.
#[derive(Debug, Subcommand)]
pub enum RoleCommand {
    /// Show the role policy (roles, default, mode, mappings with their ids)
    /// and the latest recompute job.
    Show {
        /// The tenant's slug.
        tenant: String,
    },
    /// Define a new role.
    Add {
        /// The tenant's slug.
        tenant: String,
        /// The role's name, as the application sees it.
        name: String,
        /// Free text for administrators.
        #[arg(long, value_name = "TEXT")]
        description: Option<String>,
        /// --dry-run, --no-wait.
        #[command(flatten)]
        change: ChangeArgs,
    },
    /// Change a role's description.
    Describe {
        /// The tenant's slug.
        tenant: String,
        /// The role.
        name: String,
        /// Its new description.
        description: String,
        /// --dry-run, --no-wait.
        #[command(flatten)]
        change: ChangeArgs,
    },
    /// Remove a role that neither the default nor any mapping uses.
    Remove {
        /// The tenant's slug.
        tenant: String,
        /// The role.
        name: String,
        /// --dry-run, --no-wait.
        #[command(flatten)]
        change: ChangeArgs,
    },
    /// Set the role of users no mapping matches, or with --none give them no role.
    #[command(group(ArgGroup::new("default_role").required(true).args(["role", "none"])))]
    Default {
        /// The tenant's slug.
        tenant: String,
        /// The default role.
        role: Option<String>,
        /// No default role: users no mapping matches get no role.
        #[arg(long)]
        none: bool,
        /// --dry-run, --no-wait.
        #[command(flatten)]
        change: ChangeArgs,
    },
    /// Give users one mapped role (the highest priority) or every mapped role.
    Mode {
        /// The tenant's slug.
        tenant: String,
        /// single or multi.
        #[arg(value_enum)]
        mode: ModeArg,
        /// --dry-run, --no-wait.
        #[command(flatten)]
        change: ChangeArgs,
    },
    /// Map a group to a role: its direct members get the role.
    #[command(group(
        ArgGroup::new("group").required(true).args(["group_name", "group_id", "group_external_id"])
    ))]
    Map {
        /// The tenant's slug.
        tenant: String,
        /// Match the group by displayName (case-insensitive).
        #[arg(long, value_name = "NAME")]
        group_name: Option<String>,
        /// Match the group by its SCIM id.
        #[arg(long, value_name = "ID")]
        group_id: Option<String>,
        /// Match the group by its externalId (case-exact).
        #[arg(long, value_name = "ID")]
        group_external_id: Option<String>,
        /// The role its members get.
        #[arg(long)]
        role: String,
        /// Higher wins in single mode (default 0).
        #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
        priority: i32,
        /// --dry-run, --no-wait.
        #[command(flatten)]
        change: ChangeArgs,
    },
    /// Remove a mapping by its id (from `role show`).
    Unmap {
        /// The tenant's slug.
        tenant: String,
        /// The mapping's id.
        mapping_id: String,
        /// --dry-run, --no-wait.
        #[command(flatten)]
        change: ChangeArgs,
    },
    /// List the tenant's role recompute jobs, newest first.
    Jobs {
        /// The tenant's slug.
        tenant: String,
        /// How many (1..=100).
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=100))]
        limit: u64,
    },
}

/// What every role policy change command accepts.
#[derive(Debug, Clone, Copy, Args)]
pub struct ChangeArgs {
    /// Show how many users would get other roles, and a sample; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Store the change and print the queued recompute job's id without
    /// running it (a running server's role worker picks it up).
    #[arg(long, conflicts_with = "dry_run")]
    pub no_wait: bool,
}

/// Options of `lock`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("pin").required(true).args(["roles", "no_role"])))]
pub struct LockArgs {
    /// The tenant's slug.
    pub tenant: String,
    /// The user's id or userName.
    pub user: String,
    /// A role the user keeps while locked (repeat for several).
    #[arg(long = "role", value_name = "ROLE")]
    pub roles: Vec<String>,
    /// Lock the user to no role at all.
    #[arg(long)]
    pub no_role: bool,
    /// Why (required; shown in `locks` and the audit log).
    #[arg(long)]
    pub reason: String,
}

/// Options of `audit`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Only this tenant's entries (its slug, or its id once deleted).
    #[arg(long)]
    pub tenant: Option<String>,
    /// How many entries (1..=1000).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub limit: u64,
}

/// Role mode on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    /// Only the mapped role with the highest priority.
    Single,
    /// Every mapped role.
    Multi,
}

/// `token ...`.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Issue a new token for a tenant; its secret is printed once.
    Issue {
        /// The tenant's slug.
        tenant: String,
        /// A label for the token (e.g. entra-prod).
        #[arg(long)]
        name: Option<String>,
        /// Scopes (repeat or comma-separate); default scim:write.
        #[arg(
            long = "scope",
            value_name = "SCOPE",
            value_enum,
            value_delimiter = ','
        )]
        scopes: Vec<ScopeArg>,
        /// Days until the token expires (default: never).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=36500))]
        expires_in_days: Option<u32>,
    },
    /// List a tenant's tokens (never their secrets).
    List {
        /// The tenant's slug.
        tenant: String,
    },
    /// Revoke a token.
    Revoke {
        /// The tenant's slug.
        tenant: String,
        /// The token's id (from `token list`).
        token_id: uuid::Uuid,
    },
}

/// Tenant kind on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KindArg {
    /// An ordinary tenant.
    Standard,
    /// An MSP super tenant that fans out to child tenants.
    Super,
}

impl From<KindArg> for store::TenantKind {
    fn from(kind: KindArg) -> Self {
        match kind {
            KindArg::Standard => store::TenantKind::Standard,
            KindArg::Super => store::TenantKind::Super,
        }
    }
}

/// Token scope on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScopeArg {
    /// Read and write the directory (what an IdP needs).
    #[value(name = "scim:write")]
    ScimWrite,
    /// Read the directory.
    #[value(name = "scim:read")]
    ScimRead,
    /// Read the event feed only.
    #[value(name = "events:read")]
    EventsRead,
}

impl From<ScopeArg> for store::Scope {
    fn from(scope: ScopeArg) -> Self {
        match scope {
            ScopeArg::ScimWrite => store::Scope::ScimWrite,
            ScopeArg::ScimRead => store::Scope::ScimRead,
            ScopeArg::EventsRead => store::Scope::EventsRead,
        }
    }
}

impl Cli {
    /// The configuration values given as flags.
    pub fn flags(&self) -> Flags {
        let (listen, public_url) = match &self.command {
            Command::Serve(args)
            | Command::Gateway(args)
            | Command::Worker(args)
            | Command::Admin(AdminArgs {
                command: None,
                serve: args,
            }) => (args.listen, args.public_url.clone()),
            _ => (None, None),
        };
        Flags {
            listen,
            data_dir: self.data_dir.clone(),
            database_url: self.database_url.clone().map(Secret::new),
            redis_url: self.redis_url.clone().map(Secret::new),
            public_url,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn admin_is_the_process_without_a_subcommand_and_the_logins_with_one() {
        let cli = Cli::try_parse_from(["scimgate", "admin", "--listen", "127.0.0.1:9001"])
            .expect("parses");
        assert!(matches!(
            &cli.command,
            Command::Admin(AdminArgs { command: None, .. })
        ));
        assert_eq!(cli.flags().listen, "127.0.0.1:9001".parse().ok());

        let cli = Cli::try_parse_from(["scimgate", "admin", "create-operator", "--email", "a@b.c"])
            .expect("parses");
        assert!(matches!(
            cli.command,
            Command::Admin(AdminArgs {
                command: Some(AdminCommand::CreateOperator { .. }),
                ..
            })
        ));
        assert_eq!(cli.flags().listen, None);

        // A listener belongs to the process, not to a login command.
        assert!(
            Cli::try_parse_from([
                "scimgate",
                "admin",
                "--listen",
                "127.0.0.1:9001",
                "list-tenant-admins",
                "acme"
            ])
            .is_err()
        );
        let cli = Cli::try_parse_from(["scimgate", "gateway", "--listen", "0.0.0.0:8080"])
            .expect("parses");
        assert!(matches!(cli.command, Command::Gateway(_)));
        assert_eq!(cli.flags().listen, "0.0.0.0:8080".parse().ok());
    }

    #[test]
    fn global_flags_after_subcommand() {
        let cli = Cli::try_parse_from([
            "scimgate",
            "tenant",
            "create",
            "acme",
            "--json",
            "--data-dir",
            "/d",
            "--kind",
            "super",
        ])
        .expect("parses");
        assert!(cli.json);
        assert_eq!(cli.flags().data_dir, Some(PathBuf::from("/d")));
        match cli.command {
            Command::Tenant(TenantCommand::Create { slug, kind, .. }) => {
                assert_eq!(slug, "acme");
                assert_eq!(kind, KindArg::Super);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn scopes_repeat_or_comma() {
        let cli = Cli::try_parse_from([
            "scimgate",
            "token",
            "issue",
            "acme",
            "--scope",
            "scim:read,scim:write",
            "--scope",
            "scim:read",
        ])
        .expect("parses");
        let Command::Token(TokenCommand::Issue { scopes, .. }) = cli.command else {
            panic!("not token issue");
        };
        assert_eq!(
            scopes,
            [ScopeArg::ScimRead, ScopeArg::ScimWrite, ScopeArg::ScimRead]
        );
    }

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("scimgate").chain(args.iter().copied()))
    }

    #[test]
    fn role_map_takes_exactly_one_group_and_negative_priorities() {
        let cli = parse(&[
            "role",
            "map",
            "acme",
            "--group-external-id",
            "ext-1",
            "--role",
            "admin",
            "--priority",
            "-3",
            "--dry-run",
        ])
        .expect("parses");
        let Command::Role(RoleCommand::Map {
            group_external_id,
            group_name,
            priority,
            change,
            ..
        }) = cli.command
        else {
            panic!("not role map");
        };
        assert_eq!(group_external_id.as_deref(), Some("ext-1"));
        assert_eq!(group_name, None);
        assert_eq!(priority, -3);
        assert!(change.dry_run && !change.no_wait);

        let none = parse(&["role", "map", "acme", "--role", "admin"]);
        assert!(none.is_err());
        let two = parse(&[
            "role",
            "map",
            "acme",
            "--group-id",
            "a",
            "--group-name",
            "b",
            "--role",
            "admin",
        ]);
        assert!(two.is_err());
        let both = parse(&["role", "mode", "acme", "multi", "--dry-run", "--no-wait"]);
        assert!(both.is_err());
    }

    #[test]
    fn role_default_is_a_role_or_none() {
        let cli = parse(&["role", "default", "acme", "--none"]).expect("parses");
        assert!(matches!(
            cli.command,
            Command::Role(RoleCommand::Default {
                role: None,
                none: true,
                ..
            })
        ));
        assert!(parse(&["role", "default", "acme"]).is_err());
        assert!(parse(&["role", "default", "acme", "viewer", "--none"]).is_err());
    }

    #[test]
    fn lock_needs_a_reason_and_roles_or_no_role() {
        let cli = parse(&[
            "lock", "acme", "grace", "--role", "a", "--role", "b", "--reason", "why",
        ])
        .expect("parses");
        let Command::Lock(args) = cli.command else {
            panic!("not lock");
        };
        assert_eq!(args.roles, ["a", "b"]);
        assert!(!args.no_role);
        assert!(parse(&["lock", "acme", "grace", "--role", "a"]).is_err());
        assert!(parse(&["lock", "acme", "grace", "--reason", "why"]).is_err());
        assert!(
            parse(&[
                "lock",
                "acme",
                "grace",
                "--role",
                "a",
                "--no-role",
                "--reason",
                "why"
            ])
            .is_err()
        );
        assert!(parse(&["lock", "acme", "grace", "--no-role", "--reason", "why"]).is_ok());
    }

    #[test]
    fn safety_limits_are_set_or_off_and_held_changes_named_one_way() {
        let cli = parse(&["safety", "set", "acme", "--no-max-deletions"]).expect("parses");
        let Command::Safety(SafetyCommand::Set {
            max_deletions,
            no_max_deletions,
            ..
        }) = cli.command
        else {
            panic!("not safety set");
        };
        assert_eq!(max_deletions, None);
        assert!(no_max_deletions);
        assert!(
            parse(&[
                "safety",
                "set",
                "acme",
                "--max-deletions",
                "5",
                "--no-max-deletions"
            ])
            .is_err()
        );
        let cli = parse(&["safety", "release", "acme", "--id", "3", "--id", "4"]).expect("parses");
        let Command::Safety(SafetyCommand::Release { which, .. }) = cli.command else {
            panic!("not safety release");
        };
        assert_eq!(which.ids, [3, 4]);
        assert!(which.users.is_empty());
        assert!(parse(&["safety", "discard", "acme", "--id", "3", "--user", "u"]).is_err());
    }

    #[test]
    fn audit_limits_are_bounded() {
        let cli = parse(&["audit", "--tenant", "acme"]).expect("parses");
        let Command::Audit(args) = cli.command else {
            panic!("not audit");
        };
        assert_eq!(args.limit, 50);
        assert!(parse(&["audit", "--limit", "0"]).is_err());
        assert!(parse(&["audit", "--limit", "1001"]).is_err());
    }

    #[test]
    fn serve_flags_become_config_flags() {
        let cli = Cli::try_parse_from([
            "scimgate",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--public-url",
            "https://scim.example.com",
        ])
        .expect("parses");
        let flags = cli.flags();
        assert_eq!(flags.listen, Some("127.0.0.1:0".parse().expect("addr")));
        assert_eq!(
            flags.public_url.as_deref(),
            Some("https://scim.example.com")
        );
    }
}
