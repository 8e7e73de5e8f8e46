//! Operator commands: `migrate`, `tenant ...`, `token ...`, `admin ...`,
//! `role ...`, `lock`, `unlock`, `locks`, `audit`.
//!
//! Each works directly against the database, so it can run while `serve`
//! does (SQLite in WAL mode allows it; servers notice revocations through
//! the store's auth revision, and role recompute jobs are claimed
//! atomically by whichever process gets there first). Output is
//! human-readable, or one JSON document on standard output with `--json`;
//! docs/cli.md shows every command and its JSON. Every change is audited
//! as [`cli_actor`].

use std::fmt::Write as _;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use store::{
    AdminStore, NewTenant, NewToken, Scope, StoreError, Tenant, TenantKind, TenantStatus,
    TenantUpdate, TokenInfo,
};

use crate::cli::{KindArg, ScopeArg, TenantCommand, TokenCommand};
use crate::config::Config;
use crate::server::{AppError, open_store};

mod audit;
mod logins;
mod policy;

pub use audit::audit;
pub use logins::admin;
pub use policy::{lock, locks, role, unlock};

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
    let admin = open_store(config).await?.admin();
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
            let tenant = tenant_update(&admin, &tenant, update).await?;
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
            let tenant = tenant_update(&admin, &tenant, update).await?;
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
            let tenant = tenant_update(&admin, &tenant, update).await?;
            Ok(tenant_changed(
                &tenant,
                format!(
                    "Tenant {:?} is now named {:?}.",
                    tenant.slug(),
                    tenant.name()
                ),
            ))
        }
        TenantCommand::Delete { tenant, yes } => {
            let tenant = find_tenant(&admin, &tenant).await?;
            if !yes {
                return Err(CommandError::Refused(format!(
                    "deleting tenant {:?} removes its users, groups, tokens, logins and roles for good; add --yes to confirm",
                    tenant.slug()
                )));
            }
            admin.delete_tenant(tenant.id(), &cli_actor()).await?;
            Ok(Output {
                json: json!({ "deleted": tenant_json(&tenant) }),
                text: format!(
                    "Deleted tenant {:?} ({}) and everything it owned.",
                    tenant.slug(),
                    tenant.name()
                ),
            })
        }
    }
}

async fn tenant_update(
    admin: &AdminStore,
    slug: &str,
    update: TenantUpdate,
) -> Result<Tenant, CommandError> {
    let tenant = find_tenant(admin, slug).await?;
    Ok(admin
        .update_tenant(tenant.id(), update, &cli_actor())
        .await?)
}

fn tenant_changed(tenant: &Tenant, text: String) -> Output {
    Output {
        json: json!({ "tenant": tenant_json(tenant) }),
        text,
    }
}

/// `scimgate token ...`.
pub async fn token(config: &Config, command: TokenCommand) -> Result<Output, CommandError> {
    let admin = open_store(config).await?.admin();
    match command {
        TokenCommand::Issue {
            tenant,
            name,
            scopes,
            expires_in_days,
        } => {
            let tenant = find_tenant(&admin, &tenant).await?;
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
            let issued = admin
                .issue_token(
                    &tenant,
                    NewToken {
                        name,
                        scopes,
                        expires_at,
                    },
                    &cli_actor(),
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
            let tenant = find_tenant(&admin, &tenant).await?;
            let tokens = admin.list_tokens(&tenant).await?;
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
            let tenant = find_tenant(&admin, &tenant).await?;
            let info = admin.revoke_token(&tenant, token_id, &cli_actor()).await?;
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
pub(crate) fn cli_actor() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".to_owned());
    format!("cli:{user}")
}

async fn tenant_create(
    config: &Config,
    admin: &AdminStore,
    slug: String,
    name: Option<String>,
    kind: KindArg,
) -> Result<Output, CommandError> {
    let name = name.unwrap_or_else(|| slug.clone());
    let tenant = admin
        .create_tenant(
            NewTenant {
                slug,
                name,
                kind: kind.into(),
            },
            &cli_actor(),
        )
        .await?;
    let token = admin
        .issue_token(
            &tenant,
            NewToken {
                name: "initial".to_owned(),
                scopes: vec![ScopeArg::ScimWrite.into()],
                expires_at: None,
            },
            &cli_actor(),
        )
        .await?;
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
        let (total, page) = admin
            .list_tenants(tenants.len() as u64, TENANT_PAGE)
            .await?;
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
    admin
        .tenant_by_slug(slug)
        .await?
        .ok_or_else(|| CommandError::NoSuchTenant(slug.to_owned()))
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
