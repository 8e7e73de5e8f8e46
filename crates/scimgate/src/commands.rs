//! Operator commands: `migrate`, `tenant ...`, `token ...`, `admin ...`,
//! `role ...`, `lock`, `unlock`, `locks`, `audit`, `safety ...`.
//!
//! Each works directly against the database, so it can run while `serve`
//! does (SQLite in WAL mode allows it; servers notice revocations through
//! the store's auth revision, and role recompute jobs are claimed
//! atomically by whichever process gets there first). Output is
//! human-readable, or one JSON document on standard output with `--json`;
//! docs/cli.md shows every command and its JSON. Every change is audited
//! as [`cli_actor`].
//!
//! The operations themselves are `tenant_admin::service`'s, the same the
//! admin API runs, so a command and its API call validate, retry and audit
//! alike; this module only parses, calls and prints.

use std::fmt::Write as _;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use store::{
    AdminStore, NewToken, Scope, Store, StoreError, Tenant, TenantKind, TenantStatus, TenantUpdate,
    TokenInfo,
};
use tenant_admin::service::{self, Actor, NewTenantRequest, ServiceError, TenantContext};

use crate::cli::{KindArg, TenantCommand, TokenCommand};
use crate::config::Config;
use crate::server::{AppError, open_store};

mod audit;
mod backup;
mod delivery;
mod logins;
mod policy;
mod routing;
mod safety;

pub use audit::audit;
pub use backup::{BackupError, backup};
pub use delivery::{target, timeline};
pub use logins::admin;
pub use policy::{lock, locks, role, unlock};
pub use routing::routing;
pub use safety::safety;

/// Page size when listing every tenant.
const TENANT_PAGE: u64 = 500;

/// Why an operator command failed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The database could not be opened or migrated.
    #[error(transparent)]
    Open(#[from] AppError),
    /// No tenant has this slug.
    #[error("no tenant with slug {0:?}")]
    NoSuchTenant(String),
    /// No user of the tenant has this id or userName.
    #[error("tenant {tenant:?} has no user with id or userName {user:?}")]
    NoSuchUser {
        /// The tenant's slug.
        tenant: String,
        /// What was looked for.
        user: String,
    },
    /// The role policy edit does not apply (unknown role, role in use...).
    #[error("role policy: {0}")]
    Edit(#[from] roles::EditError),
    /// Someone else changed the role policy between this command's read
    /// and its write.
    #[error(
        "the role policy changed while this command ran (it is now version {current}); run the command again"
    )]
    PolicyChanged {
        /// The policy's current version.
        current: u64,
    },
    /// The policy change was stored but its recompute job failed.
    #[error(
        "role policy version {version} is stored, but recompute job {job} failed: {error}; the next policy change queues a new job"
    )]
    JobFailed {
        /// The stored policy version.
        version: u64,
        /// The job's id.
        job: String,
        /// Why it failed.
        error: String,
    },
    /// The command refuses to act as given (a missing confirmation, bad input).
    #[error("{0}")]
    Refused(String),
    /// The store refused or failed.
    #[error("{0}")]
    Store(#[from] StoreError),
    /// `scimgate backup` made no backup.
    #[error(transparent)]
    Backup(#[from] BackupError),
}

impl From<ServiceError> for CommandError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Store(e) => CommandError::Store(e),
            ServiceError::Edit { source, .. } => CommandError::Edit(source),
            ServiceError::NoSuchTenant(slug) => CommandError::NoSuchTenant(slug),
            ServiceError::PreconditionFailed { current }
            | ServiceError::ConcurrentChange { current } => CommandError::PolicyChanged { current },
            other => CommandError::Refused(other.to_string()),
        }
    }
}

/// What a command prints: a JSON document and its human rendering.
#[derive(Debug)]
pub struct Output {
    /// The `--json` form.
    pub json: Value,
    /// The human form.
    pub text: String,
}

impl Output {
    /// The form selected by `--json`.
    pub fn render(&self, json: bool) -> String {
        if json {
            // A Value always serialises.
            serde_json::to_string_pretty(&self.json).unwrap_or_default()
        } else {
            self.text.trim_end().to_owned()
        }
    }
}

/// `scimgate migrate`.
pub async fn migrate(config: &Config) -> Result<Output, CommandError> {
    open_store(config).await?;
    let database = config.database_display();
    Ok(Output {
        json: json!({ "migrated": true, "database": database }),
        text: format!("Database is up to date ({database})."),
    })
}

/// `scimgate tenant ...`.
pub async fn tenant(config: &Config, command: TenantCommand) -> Result<Output, CommandError> {
    // The changes after which the API tells running instances too.
    let changes_auth = matches!(
        command,
        TenantCommand::Suspend { .. }
            | TenantCommand::Resume { .. }
            | TenantCommand::Delete { .. }
            | TenantCommand::Kind { .. }
            | TenantCommand::Link { .. }
            | TenantCommand::Unlink { .. }
    );
    let out = tenant_command(config, command).await?;
    if changes_auth {
        tell_instances(config).await;
    }
    Ok(out)
}

/// Tells running instances through Redis, when the deployment has it, that
/// tokens or tenants changed: they drop their cached verifications at once,
/// as after the same change through the admin API. Without Redis, or with
/// Redis away (the change is committed either way), they notice it at
/// their next auth poll.
async fn tell_instances(config: &Config) {
    let Some(url) = &config.redis_url else {
        return;
    };
    let told = match cluster::Redis::open(url.expose()) {
        Ok(redis) => redis.publish(cluster::notice::Notice::Auth).await,
        Err(e) => Err(e),
    };
    if let Err(e) = told {
        tracing::warn!(
            error = %e,
            "cannot tell running instances through redis; they notice at their next auth poll"
        );
    }
}

async fn tenant_command(config: &Config, command: TenantCommand) -> Result<Output, CommandError> {
    let store = open_store(config).await?;
    let admin = store.admin();
    match command {
        TenantCommand::Create { slug, name, kind } => {
            tenant_create(config, &admin, slug, name, kind).await
        }
        TenantCommand::List => tenant_list(&admin).await,
        TenantCommand::Suspend { tenant } => {
            let update = TenantUpdate {
                status: Some(TenantStatus::Suspended),
                ..TenantUpdate::default()
            };
            let tenant = tenant_update(&store, &tenant, update).await?;
            Ok(tenant_changed(
                &tenant,
                format!(
                    "Suspended tenant {:?}: its SCIM endpoint answers 403 until `scimgate tenant resume {}`. Running servers refuse its tokens within seconds.",
                    tenant.slug(),
                    tenant.slug()
                ),
            ))
        }
        TenantCommand::Resume { tenant } => {
            let update = TenantUpdate {
                status: Some(TenantStatus::Active),
                ..TenantUpdate::default()
            };
            let tenant = tenant_update(&store, &tenant, update).await?;
            Ok(tenant_changed(
                &tenant,
                format!("Tenant {:?} is active.", tenant.slug()),
            ))
        }
        TenantCommand::Rename { tenant, name } => {
            let update = TenantUpdate {
                name: Some(name),
                ..TenantUpdate::default()
            };
            let tenant = tenant_update(&store, &tenant, update).await?;
            Ok(tenant_changed(
                &tenant,
                format!(
                    "Tenant {:?} is now named {:?}.",
                    tenant.slug(),
                    tenant.name()
                ),
            ))
        }
        TenantCommand::Delete {
            tenant,
            yes,
            copies,
        } => {
            let ctx = tenant_context(&store, &tenant).await?;
            let tenant = ctx.tenant().clone();
            if !yes {
                return Err(CommandError::Refused(format!(
                    "deleting tenant {:?} removes its users, groups, tokens, logins and roles for good; add --yes to confirm",
                    tenant.slug()
                )));
            }
            // --yes is the CLI's spelling of the API's ?confirm={slug}.
            service::delete_tenant(&ctx, &admin, Some(tenant.slug()), copies.map(Into::into))
                .await?;
            Ok(Output {
                json: json!({ "deleted": tenant_json(&tenant) }),
                text: format!(
                    "Deleted tenant {:?} ({}) and everything it owned.",
                    tenant.slug(),
                    tenant.name()
                ),
            })
        }
        TenantCommand::Kind { tenant, kind } => {
            let tenant = service::set_tenant_kind(&admin, &cli(), &tenant, kind.into()).await?;
            Ok(tenant_changed(
                &tenant,
                format!(
                    "Tenant {:?} is a {} tenant.",
                    tenant.slug(),
                    kind_str(tenant.kind())
                ),
            ))
        }
        TenantCommand::Link {
            super_tenant,
            child,
            on_unroute,
        } => {
            let linked =
                service::link_child(&admin, &cli(), &super_tenant, &child, on_unroute.into())
                    .await?;
            Ok(Output {
                json: json!({ "super_tenant": super_tenant, "child": child_json(&linked) }),
                text: format!(
                    "Tenant {:?} is a child of super tenant {super_tenant:?}; copies of users no longer routed there are {}d.",
                    linked.tenant.slug(),
                    linked.on_unroute.as_str()
                ),
            })
        }
        TenantCommand::Unlink {
            super_tenant,
            child,
            copies,
        } => {
            let done = service::unlink_child(
                &admin,
                &cli(),
                &super_tenant,
                &child,
                copies.map(Into::into),
            )
            .await?;
            Ok(Output {
                json: json!({ "unlinked": {
                    "super_tenant": super_tenant, "child": child,
                    "kept": done.kept, "users_removed": done.users_removed,
                    "groups_removed": done.groups_removed,
                } }),
                text: format!(
                    "Tenant {child:?} is no longer fed by {super_tenant:?}: {} copies kept as its own, {} users and {} groups removed.",
                    done.kept, done.users_removed, done.groups_removed
                ),
            })
        }
        TenantCommand::Children { super_tenant } => {
            let children = service::list_children(&admin, &super_tenant).await?;
            let mut rows = vec![[
                "SLUG".to_owned(),
                "NAME".to_owned(),
                "ON UNROUTE".to_owned(),
                "LINKED".to_owned(),
            ]];
            for c in &children {
                rows.push([
                    c.tenant.slug().to_owned(),
                    c.tenant.name().to_owned(),
                    c.on_unroute.as_str().to_owned(),
                    time(c.linked_at),
                ]);
            }
            let text = if children.is_empty() {
                format!(
                    "{super_tenant:?} feeds no child tenants: `scimgate tenant link {super_tenant} CHILD` adds one."
                )
            } else {
                table(&rows)
            };
            Ok(Output {
                json: json!({ "children": children.iter().map(child_json).collect::<Vec<_>>() }),
                text,
            })
        }
    }
}

fn child_json(c: &service::Child) -> Value {
    json!({
        "tenant": tenant_json(&c.tenant),
        "on_unroute": c.on_unroute.as_str(),
        "linked_at": time(c.linked_at),
    })
}

async fn tenant_update(
    store: &Store,
    slug: &str,
    update: TenantUpdate,
) -> Result<Tenant, CommandError> {
    let ctx = tenant_context(store, slug).await?;
    Ok(service::update_tenant(&ctx, update).await?)
}

fn tenant_changed(tenant: &Tenant, text: String) -> Output {
    Output {
        json: json!({ "tenant": tenant_json(tenant) }),
        text,
    }
}

/// `scimgate token ...`.
pub async fn token(config: &Config, command: TokenCommand) -> Result<Output, CommandError> {
    let store = open_store(config).await?;
    match command {
        TokenCommand::Issue {
            tenant,
            name,
            scopes,
            expires_in_days,
        } => {
            let ctx = tenant_context(&store, &tenant).await?;
            let tenant = ctx.tenant().clone();
            let scopes = if scopes.is_empty() {
                vec![Scope::ScimWrite]
            } else {
                let mut out: Vec<Scope> = Vec::new();
                for scope in scopes.into_iter().map(Scope::from) {
                    if !out.contains(&scope) {
                        out.push(scope);
                    }
                }
                out
            };
            let expires_at =
                expires_in_days.map(|days| Utc::now() + chrono::Duration::days(i64::from(days)));
            let name = name.unwrap_or_else(|| format!("issued {}", Utc::now().format("%Y-%m-%d")));
            let issued = service::issue_token(
                &ctx,
                NewToken {
                    name,
                    scopes,
                    expires_at,
                },
                Utc::now(),
            )
            .await?;
            let scim_url = tenant_scim_url(config, &tenant);
            let mut text = String::new();
            let _ = writeln!(
                text,
                "Issued token {} for tenant {:?}.",
                issued.info.id,
                tenant.slug()
            );
            let _ = writeln!(text);
            let _ = writeln!(text, "  SCIM URL:      {scim_url}");
            let _ = writeln!(text, "  Secret token:  {}", issued.secret);
            let _ = writeln!(
                text,
                "  Scopes:        {}",
                scopes_text(&issued.info.scopes)
            );
            let _ = writeln!(
                text,
                "  Expires:       {}",
                opt_time(issued.info.expires_at)
            );
            let _ = writeln!(text);
            let _ = writeln!(
                text,
                "The secret is shown only now and stored only as a hash."
            );
            Ok(Output {
                json: json!({
                    "tenant": tenant.slug(),
                    "scim_url": scim_url,
                    "token": issued.secret,
                    "token_info": token_json(&issued.info),
                }),
                text,
            })
        }
        TokenCommand::List { tenant } => {
            let ctx = tenant_context(&store, &tenant).await?;
            let tenant = ctx.tenant().clone();
            let tokens = service::list_tokens(&ctx).await?;
            let mut rows = vec![[
                "ID".to_owned(),
                "NAME".to_owned(),
                "SCOPES".to_owned(),
                "STATUS".to_owned(),
                "CREATED".to_owned(),
                "EXPIRES".to_owned(),
            ]];
            for t in &tokens {
                rows.push([
                    t.id.to_string(),
                    t.name.clone(),
                    scopes_text(&t.scopes),
                    token_status(t).to_owned(),
                    time(t.created_at),
                    opt_time(t.expires_at),
                ]);
            }
            let text = if tokens.is_empty() {
                format!("Tenant {:?} has no tokens.", tenant.slug())
            } else {
                table(&rows)
            };
            Ok(Output {
                json: json!({
                    "tenant": tenant.slug(),
                    "tokens": tokens.iter().map(token_json).collect::<Vec<_>>(),
                }),
                text,
            })
        }
        TokenCommand::Revoke { tenant, token_id } => {
            let ctx = tenant_context(&store, &tenant).await?;
            let tenant = ctx.tenant().clone();
            let info = service::revoke_token(&ctx, &token_id.to_string()).await?;
            tell_instances(config).await;
            Ok(Output {
                json: json!({ "tenant": tenant.slug(), "revoked": token_json(&info) }),
                text: format!(
                    "Revoked token {} ({:?}) of tenant {:?}. Running servers refuse it within seconds.",
                    info.id,
                    info.name,
                    tenant.slug()
                ),
            })
        }
    }
}

/// How the audit log names a change made with the CLI: by the operating
/// system account that ran it, which is all the CLI knows.
/// The JSON document of a file (`-`: standard input).
pub(crate) fn read_json(file: &std::path::Path) -> Result<Value, CommandError> {
    use std::io::Read as _;
    let mut text = String::new();
    let read = if file.as_os_str() == "-" {
        std::io::stdin().read_to_string(&mut text).map(drop)
    } else {
        std::fs::read_to_string(file).map(|t| text = t)
    };
    read.map_err(|e| CommandError::Refused(format!("cannot read {}: {e}", file.display())))?;
    serde_json::from_str(&text)
        .map_err(|e| CommandError::Refused(format!("{}: not JSON: {e}", file.display())))
}

pub(crate) fn cli_actor() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".to_owned());
    format!("cli:{user}")
}

/// The CLI's actor: run by the account that owns the database, it acts
/// with an operator's rights.
pub(crate) fn cli() -> Actor {
    Actor::operator(cli_actor())
}

/// The service context of the tenant with this slug, acting as the CLI.
pub(crate) async fn tenant_context(
    store: &Store,
    slug: &str,
) -> Result<TenantContext, CommandError> {
    let tenant = find_tenant(&store.admin(), slug).await?;
    Ok(TenantContext::new(store.tenant(&tenant), cli()))
}

async fn tenant_create(
    config: &Config,
    admin: &AdminStore,
    slug: String,
    name: Option<String>,
    kind: KindArg,
) -> Result<Output, CommandError> {
    let name = name.unwrap_or_else(|| slug.clone());
    let request = NewTenantRequest {
        slug,
        name,
        kind: kind.into(),
        issue_token: true,
    };
    let (tenant, token) = service::create_tenant(admin, &cli(), request).await?;
    let Some(token) = token else {
        return Err(CommandError::Refused(format!(
            "tenant {:?} was created without a token; issue one with `scimgate token issue {}`",
            tenant.slug(),
            tenant.slug()
        )));
    };
    let scim_url = tenant_scim_url(config, &tenant);
    let mut text = String::new();
    let _ = writeln!(
        text,
        "Created {} tenant {:?} ({}), id {}.",
        kind_str(tenant.kind()),
        tenant.slug(),
        tenant.name(),
        tenant.id()
    );
    let _ = writeln!(text);
    let _ = writeln!(text, "  SCIM URL:      {scim_url}");
    let _ = writeln!(text, "  Secret token:  {}", token.secret);
    let _ = writeln!(text);
    let _ = writeln!(
        text,
        "Give both to the identity provider. The secret is shown only now and stored only as a hash."
    );
    Ok(Output {
        json: json!({
            "tenant": tenant_json(&tenant),
            "scim_url": scim_url,
            "token": token.secret,
        }),
        text,
    })
}

async fn tenant_list(admin: &AdminStore) -> Result<Output, CommandError> {
    let mut tenants = Vec::new();
    loop {
        let page =
            service::list_tenants(admin, Some(tenants.len() as u64), Some(TENANT_PAGE)).await?;
        let (total, page) = (page.total, page.tenants);
        let done = page.is_empty() || tenants.len() as u64 + page.len() as u64 >= total;
        tenants.extend(page);
        if done {
            break;
        }
    }
    let mut rows = vec![[
        "SLUG".to_owned(),
        "NAME".to_owned(),
        "KIND".to_owned(),
        "STATUS".to_owned(),
        "ID".to_owned(),
        "CREATED".to_owned(),
    ]];
    for t in &tenants {
        rows.push([
            t.slug().to_owned(),
            t.name().to_owned(),
            kind_str(t.kind()).to_owned(),
            status_str(t.status()).to_owned(),
            t.id().to_string(),
            time(t.created_at()),
        ]);
    }
    let text = if tenants.is_empty() {
        "No tenants yet: `scimgate tenant create NAME` makes one.".to_owned()
    } else {
        table(&rows)
    };
    Ok(Output {
        json: json!({ "tenants": tenants.iter().map(tenant_json).collect::<Vec<_>>() }),
        text,
    })
}

pub(crate) async fn find_tenant(admin: &AdminStore, slug: &str) -> Result<Tenant, CommandError> {
    Ok(service::find_tenant(admin, slug).await?)
}

/// The tenant's SCIM base URL as an operator command knows it: `public_url`,
/// else derived from the configured listen address.
fn tenant_scim_url(config: &Config, tenant: &Tenant) -> String {
    let base = config.public_base_url(config.listen);
    scim_url(&base, tenant.slug())
}

/// `<base>/tenants/<slug>/scim/v2`.
pub fn scim_url(base: &str, slug: &str) -> String {
    format!("{base}/tenants/{slug}/scim/v2")
}

pub(crate) fn tenant_json(t: &Tenant) -> Value {
    json!({
        "id": t.id(),
        "slug": t.slug(),
        "name": t.name(),
        "kind": kind_str(t.kind()),
        "status": status_str(t.status()),
        "created_at": time(t.created_at()),
    })
}

fn token_json(t: &TokenInfo) -> Value {
    json!({
        "id": t.id,
        "name": t.name,
        "scopes": t.scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        "status": token_status(t),
        "created_at": time(t.created_at),
        "expires_at": t.expires_at.map(time),
        "revoked_at": t.revoked_at.map(time),
    })
}

fn token_status(t: &TokenInfo) -> &'static str {
    if t.revoked_at.is_some() {
        "revoked"
    } else if t.expires_at.is_some_and(|at| at <= Utc::now()) {
        "expired"
    } else {
        "active"
    }
}

fn kind_str(kind: TenantKind) -> &'static str {
    match kind {
        TenantKind::Standard => "standard",
        TenantKind::Super => "super",
    }
}

fn status_str(status: TenantStatus) -> &'static str {
    match status {
        TenantStatus::Active => "active",
        TenantStatus::Suspended => "suspended",
    }
}

fn scopes_text(scopes: &[Scope]) -> String {
    scopes
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

pub(crate) fn time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

pub(crate) fn opt_time(at: Option<DateTime<Utc>>) -> String {
    at.map(time).unwrap_or_else(|| "never".to_owned())
}

/// Left-aligned columns separated by two spaces.
pub(crate) fn table<const N: usize>(rows: &[[String; N]]) -> String {
    let mut widths = [0usize; N];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, (cell, w)) in row.iter().zip(widths).enumerate() {
            if i + 1 == N {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<w$}  ");
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_columns() {
        let rows = [
            ["A".to_owned(), "BB".to_owned()],
            ["ccc".to_owned(), "d".to_owned()],
        ];
        assert_eq!(table(&rows), "A    BB\nccc  d\n");
    }

    #[test]
    fn scim_url_shape() {
        assert_eq!(
            scim_url("https://scim.example.com", "acme"),
            "https://scim.example.com/tenants/acme/scim/v2"
        );
    }
}
