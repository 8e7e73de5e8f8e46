//! `scimgate admin ...`: operator and tenant administrator logins.
//!
//! A password is either read from standard input (`--password-stdin`, never
//! from an argument, which `ps` would show) or generated and printed once,
//! as the first start does for the first operator.

use std::fmt::Write as _;
use std::io::BufRead as _;

use serde_json::{Value, json};
use store::TenantAdminInfo;
use tenant_admin::service::{self, ServiceError, TenantContext};

use super::{CommandError, Output, cli_actor, table, tenant_context, time};
use crate::bootstrap::generate_password;
use crate::cli::AdminCommand;
use crate::config::{Config, Secret};
use crate::server::open_store;

/// The shortest password accepted (the store's rule for tenant admins,
/// applied by the CLI to operators too).
pub const MIN_PASSWORD_CHARS: usize = 12;

/// `scimgate admin ...`.
pub async fn admin(config: &Config, command: AdminCommand) -> Result<Output, CommandError> {
    match command {
        AdminCommand::CreateOperator {
            email,
            password_stdin,
        } => {
            // The password first: a missing or short one fails fast and
            // changes nothing.
            let (password, generated) = password(password_stdin)?;
            if password.expose().chars().count() < MIN_PASSWORD_CHARS {
                return Err(CommandError::Refused(format!(
                    "password must have at least {MIN_PASSWORD_CHARS} characters"
                )));
            }
            let admin = open_store(config).await?.admin();
            let email = email.trim().to_owned();
            let id = admin
                .create_operator(&email, password.expose(), &cli_actor())
                .await?;
            let mut text = format!("Created operator {email} (id {id}).\n");
            let mut json = json!({ "operator": { "id": id, "email": email } });
            shown_once(&mut text, &mut json, &password, generated);
            Ok(Output { json, text })
        }
        AdminCommand::CreateTenantAdmin {
            tenant,
            email,
            password_stdin,
        } => {
            let (password, generated) = password(password_stdin)?;
            let ctx = tenant_context(&open_store(config).await?, &tenant).await?;
            let tenant = ctx.tenant();
            let info = service::create_tenant_admin(&ctx, &email, password.expose()).await?;
            let mut text = format!(
                "Created tenant admin {} of tenant {:?} (id {}).\n",
                info.email,
                tenant.slug(),
                info.id
            );
            let mut json = json!({
                "tenant": tenant.slug(),
                "tenant_admin": tenant_admin_json(&info),
            });
            shown_once(&mut text, &mut json, &password, generated);
            Ok(Output { json, text })
        }
        AdminCommand::ListTenantAdmins { tenant } => {
            let ctx = tenant_context(&open_store(config).await?, &tenant).await?;
            let tenant = ctx.tenant();
            let admins = service::list_tenant_admins(&ctx).await?;
            let mut rows = vec![["EMAIL".to_owned(), "ID".to_owned(), "CREATED".to_owned()]];
            for a in &admins {
                rows.push([a.email.clone(), a.id.to_string(), time(a.created_at)]);
            }
            let text = if admins.is_empty() {
                format!(
                    "Tenant {:?} has no admin logins: `scimgate admin create-tenant-admin {} --email E` makes one.",
                    tenant.slug(),
                    tenant.slug()
                )
            } else {
                table(&rows)
            };
            Ok(Output {
                json: json!({
                    "tenant": tenant.slug(),
                    "tenant_admins": admins.iter().map(tenant_admin_json).collect::<Vec<_>>(),
                }),
                text,
            })
        }
        AdminCommand::DeleteTenantAdmin {
            tenant,
            admin: which,
        } => {
            let ctx = tenant_context(&open_store(config).await?, &tenant).await?;
            let tenant = ctx.tenant();
            let info = find_tenant_admin(&ctx, &which).await?;
            service::delete_tenant_admin(&ctx, &info.id.to_string()).await?;
            Ok(Output {
                json: json!({
                    "tenant": tenant.slug(),
                    "deleted": tenant_admin_json(&info),
                }),
                text: format!(
                    "Deleted tenant admin {} (id {}) of tenant {:?}.",
                    info.email,
                    info.id,
                    tenant.slug()
                ),
            })
        }
    }
}

/// The password to set and whether it was generated.
fn password(from_stdin: bool) -> Result<(Secret, bool), CommandError> {
    if !from_stdin {
        return Ok((generate_password(), true));
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| CommandError::Refused(format!("cannot read the password: {e}")))?;
    let password = line.trim_end_matches(['\n', '\r']);
    if password.is_empty() {
        return Err(CommandError::Refused(
            "--password-stdin: no password on standard input".into(),
        ));
    }
    Ok((Secret::new(password), false))
}

/// Adds a generated password to both forms of the output; a password the
/// operator typed is never echoed.
fn shown_once(text: &mut String, json: &mut Value, password: &Secret, generated: bool) {
    if !generated {
        return;
    }
    let _ = writeln!(text);
    let _ = writeln!(text, "  Password:  {}", password.expose());
    let _ = writeln!(text);
    let _ = writeln!(
        text,
        "The password is shown only now and stored only as a hash."
    );
    if let Value::Object(map) = json {
        map.insert("password".into(), Value::from(password.expose()));
    }
}

/// A tenant admin by id or (case-insensitive) e-mail address.
async fn find_tenant_admin(
    ctx: &TenantContext,
    which: &str,
) -> Result<TenantAdminInfo, CommandError> {
    match service::find_tenant_admin(ctx, which).await {
        Err(ServiceError::NotFound(_)) => Err(CommandError::Refused(format!(
            "tenant {:?} has no admin login with id or e-mail {which:?}",
            ctx.tenant().slug()
        ))),
        other => Ok(other?),
    }
}

fn tenant_admin_json(a: &TenantAdminInfo) -> Value {
    json!({
        "id": a.id,
        "email": a.email,
        "created_at": time(a.created_at),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_passwords_are_long_and_distinct() {
        let a = generate_password();
        let b = generate_password();
        // The first start's generator, which must meet the CLI's own rule.
        assert!(a.expose().len() >= MIN_PASSWORD_CHARS);
        assert_ne!(a.expose(), b.expose());
        assert!(a.expose().chars().all(|c| c.is_ascii_alphanumeric()));
    }
}
