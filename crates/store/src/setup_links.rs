//! Setup links: an expiring, revocable link for a customer's IT admin,
//! whose holder may see the tenant's SCIM URL and setup steps and issue or
//! rotate the tenant's SCIM token, and nothing else.
//!
//! The secret (`sgl_` and 64 hex digits) is shown once; only its SHA-256
//! is stored (it is random and long, so a fast hash suffices, and a lookup
//! by hash is a unique-index read). A link remembers the last token issued
//! through it: rotating issues a new `scim:write` token and revokes that
//! one in the same transaction, so at every moment exactly one token from
//! the link works. Every change is audited; changes made through a link
//! name it as the actor (`setup-link:<name>`).

use chrono::{DateTime, Utc};
use rand::RngCore;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde_json::json;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::admin::{self, bump_auth_revision};
use crate::audit;
use crate::db::{TxError, db, dbx, now};
use crate::entity::{setup_links, tokens};
use crate::{AdminStore, IssuedToken, NewToken, Result, Scope, StoreError, Tenant, TenantStore};

/// How setup link secrets begin.
pub const SECRET_PREFIX: &str = "sgl_";

/// The longest a setup link may live.
pub const MAX_LIFETIME_DAYS: i64 = 30;

/// A setup link as listed (never its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupLink {
    /// Its id.
    pub id: Uuid,
    /// A label ("Acme IT, Dec 2026").
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
    pub token_id: Option<Uuid>,
}

impl SetupLink {
    /// True while the link may be used.
    pub fn usable(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && self.expires_at > now
    }

    /// How the audit log names changes made through this link.
    pub fn actor(&self) -> String {
        format!("setup-link:{}", self.name)
    }
}

/// A just-created link: the only time its secret exists in clear.
#[derive(Clone)]
pub struct NewSetupLink {
    /// The stored facts.
    pub link: SetupLink,
    /// The secret that goes into the link's URL.
    pub secret: String,
}

// Hand-written so that a stray `{:?}` never prints the secret.
impl std::fmt::Debug for NewSetupLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewSetupLink")
            .field("link", &self.link)
            .field("secret", &"[redacted]")
            .finish()
    }
}

fn digest(secret: &str) -> String {
    Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn link_from_row(row: &setup_links::Model) -> Result<SetupLink> {
    let uuid = |text: &str| {
        Uuid::parse_str(text)
            .map_err(|_| StoreError::Internal(format!("setup link {} has a malformed id", row.id)))
    };
    Ok(SetupLink {
        id: uuid(&row.id)?,
        name: row.name.clone(),
        created_by: row.created_by.clone(),
        created_at: row.created_at,
        expires_at: row.expires_at,
        revoked_at: row.revoked_at,
        last_used_at: row.last_used_at,
        token_id: row.token_id.as_deref().map(uuid).transpose()?,
    })
}

impl TenantStore {
    /// Creates a setup link named `name` that works for `lifetime` (more
    /// than nothing, at most [`MAX_LIFETIME_DAYS`]). Audited.
    pub async fn create_setup_link(
        &self,
        name: &str,
        lifetime: chrono::Duration,
        actor: &str,
    ) -> Result<NewSetupLink> {
        let name = name.trim().to_owned();
        if name.is_empty() {
            return Err(StoreError::InvalidValue("a setup link needs a name".into()));
        }
        if lifetime <= chrono::Duration::zero()
            || lifetime > chrono::Duration::days(MAX_LIFETIME_DAYS)
        {
            return Err(StoreError::InvalidValue(format!(
                "a setup link lives for up to {MAX_LIFETIME_DAYS} days"
            )));
        }
        let created_at = now();
        let expires_at = created_at + lifetime;
        let mut raw = [0u8; 32];
        rand::rng().fill_bytes(&mut raw);
        let secret = format!(
            "{SECRET_PREFIX}{}",
            raw.iter().map(|b| format!("{b:02x}")).collect::<String>()
        );
        let row = setup_links::Model {
            id: Uuid::new_v4().to_string(),
            tenant_id: self.tenant.id.to_string(),
            name,
            secret_hash: digest(&secret),
            created_by: actor.to_owned(),
            created_at,
            expires_at,
            revoked_at: None,
            last_used_at: None,
            token_id: None,
        };
        let tenant = self.tenant.id;
        let stored = row.clone();
        write_txn!(self.inner, [actor], [stored], txn => {
            let am: setup_links::ActiveModel = stored.clone().into();
            setup_links::Entity::insert(am)
                .exec_without_returning(txn)
                .await
                .map_err(dbx)?;
            let detail = json!({"name": stored.name, "expiresAt": stored.expires_at});
            let target = format!("setup link {}", stored.id);
            audit::write(txn, Some(tenant), actor, "setup_link.create", &target, detail).await
        })?;
        Ok(NewSetupLink {
            link: link_from_row(&row)?,
            secret,
        })
    }

    /// The tenant's setup links, newest first.
    pub async fn setup_links(&self) -> Result<Vec<SetupLink>> {
        setup_links::Entity::find()
            .filter(setup_links::Column::TenantId.eq(self.tenant.id.to_string()))
            .order_by_desc(setup_links::Column::CreatedAt)
            .order_by_desc(setup_links::Column::Id)
            .all(&self.inner.conn)
            .await
            .map_err(db)?
            .iter()
            .map(link_from_row)
            .collect()
    }

    /// Revokes a link (the tokens it issued keep working: revoke those on
    /// their own). Revoking twice is harmless. Audited.
    pub async fn revoke_setup_link(&self, id: Uuid, actor: &str) -> Result<SetupLink> {
        let tenant = self.tenant.id;
        let row = write_txn!(self.inner, [actor], [], txn => {
            let Some(row) = setup_links::Entity::find_by_id(id.to_string())
                .filter(setup_links::Column::TenantId.eq(tenant.to_string()))
                .lock_exclusive()
                .one(txn)
                .await
                .map_err(dbx)?
            else {
                return Err(StoreError::NotFound(format!("setup link {id}")).into());
            };
            if row.revoked_at.is_some() {
                return Ok(row);
            }
            let at = now();
            setup_links::Entity::update_many()
                .col_expr(setup_links::Column::RevokedAt, Expr::value(at))
                .filter(setup_links::Column::Id.eq(id.to_string()))
                .exec(txn)
                .await
                .map_err(dbx)?;
            let target = format!("setup link {id}");
            audit::write(txn, Some(tenant), actor, "setup_link.revoke", &target, json!({"name": row.name})).await?;
            Ok(setup_links::Model { revoked_at: Some(at), ..row })
        })?;
        link_from_row(&row)
    }

    /// Through link `id`: issues a new `scim:write` token and revokes the
    /// one the link issued before, in one transaction, if the link is
    /// still usable (`NotFound` otherwise, the same as a link that never
    /// existed). Audited as the link.
    pub async fn rotate_setup_token(&self, id: Uuid) -> Result<IssuedToken> {
        let tenant = self.tenant.clone();
        let link = self
            .setup_links()
            .await?
            .into_iter()
            .find(|l| l.id == id)
            .filter(|l| l.usable(Utc::now()))
            .ok_or_else(|| StoreError::NotFound(format!("setup link {id}")))?;
        let token = std::sync::Arc::new(
            admin::prepare_token(
                &tenant,
                NewToken {
                    name: format!("setup link: {}", link.name),
                    scopes: vec![Scope::ScimWrite],
                    expires_at: None,
                },
            )
            .await?,
        );
        let actor = link.actor();
        let actor = actor.as_str();
        let shared = token.clone();
        let tenant_id = tenant.id;
        write_txn!(self.inner, [actor], [shared], txn => {
            let row = setup_links::Entity::find_by_id(id.to_string())
                .filter(setup_links::Column::TenantId.eq(tenant_id.to_string()))
                .lock_exclusive()
                .one(txn)
                .await
                .map_err(dbx)?;
            let at = now();
            let Some(row) = row.filter(|r| r.revoked_at.is_none() && r.expires_at > at) else {
                return Err(TxError::Fail(StoreError::NotFound(format!("setup link {id}"))));
            };
            admin::insert_token(txn, shared, actor).await?;
            if let Some(previous) = &row.token_id {
                let revoked = tokens::Entity::update_many()
                    .col_expr(tokens::Column::RevokedAt, Expr::value(at))
                    .filter(tokens::Column::Id.eq(previous.as_str()))
                    .filter(tokens::Column::TenantId.eq(tenant_id.to_string()))
                    .filter(tokens::Column::RevokedAt.is_null())
                    .exec(txn)
                    .await
                    .map_err(dbx)?;
                if revoked.rows_affected > 0 {
                    bump_auth_revision(txn).await?;
                    let target = format!("token {previous}");
                    audit::write(txn, Some(tenant_id), actor, "token.revoke", &target, json!({"rotatedBy": format!("setup link {id}")})).await?;
                }
            }
            setup_links::Entity::update_many()
                .col_expr(setup_links::Column::TokenId, Expr::value(shared.id().to_string()))
                .col_expr(setup_links::Column::LastUsedAt, Expr::value(at))
                .filter(setup_links::Column::Id.eq(id.to_string()))
                .exec(txn)
                .await
                .map_err(dbx)?;
            Ok(())
        })?;
        token.issued()
    }
}

impl AdminStore {
    /// The tenant and link a setup link secret opens, if it names one (a
    /// revoked or expired link is returned too: the caller says why it no
    /// longer works).
    pub async fn setup_link_by_secret(&self, secret: &str) -> Result<Option<(Tenant, SetupLink)>> {
        let secret = secret.trim();
        if !secret.starts_with(SECRET_PREFIX) || secret.len() > 128 {
            return Ok(None);
        }
        let Some(row) = setup_links::Entity::find()
            .filter(setup_links::Column::SecretHash.eq(digest(secret)))
            .one(&self.inner.conn)
            .await
            .map_err(db)?
        else {
            return Ok(None);
        };
        let link = link_from_row(&row)?;
        let tenant_id = Uuid::parse_str(&row.tenant_id).map_err(|_| {
            StoreError::Internal(format!("setup link {} has a malformed tenant", row.id))
        })?;
        Ok(self
            .tenant_by_id(tenant_id)
            .await?
            .map(|tenant| (tenant, link)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_is_usable_until_it_expires_or_is_revoked() {
        let t = Utc::now();
        let mut link = SetupLink {
            id: Uuid::new_v4(),
            name: "Acme IT".into(),
            created_by: "operator:a@b".into(),
            created_at: t,
            expires_at: t + chrono::Duration::hours(1),
            revoked_at: None,
            last_used_at: None,
            token_id: None,
        };
        assert!(link.usable(t));
        assert!(!link.usable(t + chrono::Duration::hours(1)));
        link.revoked_at = Some(t);
        assert!(!link.usable(t));
        assert_eq!(link.actor(), "setup-link:Acme IT");
        let shown = format!(
            "{:?}",
            NewSetupLink {
                link,
                secret: "sgl_secret".into()
            }
        );
        assert!(!shown.contains("sgl_secret"), "{shown}");
    }
}
