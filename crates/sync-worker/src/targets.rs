//! Managing a tenant's targets: the one place that checks what an admin
//! asks for (name, address, event types), makes and seals secrets, and
//! writes through the tenant's store. The admin API and the CLI both call
//! it.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use store::delivery::{NewTarget, Target, TargetKind, TargetUpdate};
use store::{EventType, StoreError, TenantStore};
use uuid::Uuid;

use crate::address::{AddressError, AddressPolicy};
use crate::secrets::{SecretBox, SecretError};
use crate::signing::WebhookSecret;

/// The longest target name.
pub const MAX_NAME: usize = 100;

/// The longest target URL.
pub const MAX_URL: usize = 2048;

/// The longest outbound SCIM bearer token.
pub const MAX_TOKEN: usize = 4096;

/// Why a target request was refused.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// A value the admin sent is unacceptable (the message says which).
    #[error("{0}")]
    Invalid(String),
    /// The address is refused (SSRF guard).
    #[error(transparent)]
    Address(#[from] AddressError),
    /// Sealing or opening a secret failed (a server problem).
    #[error("target secret: {0}")]
    Secret(#[from] SecretError),
    /// The store refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No key to seal secrets with is configured.
    #[error("targets cannot be created here: the operator has not configured delivery_secrets_key")]
    NoKey,
}

/// A target request as an admin writes it.
#[derive(Debug, Clone)]
pub struct TargetSpec {
    /// A label, unique in the tenant.
    pub name: String,
    /// `webhook` or `scim`.
    pub kind: String,
    /// The endpoint.
    pub url: String,
    /// Event type names; empty for all.
    pub event_types: Vec<String>,
    /// For outbound SCIM: the application's bearer token.
    pub token: Option<String>,
}

/// A new target and the secret that is shown this once.
#[derive(Debug, Clone)]
pub struct Created {
    /// The stored target.
    pub target: Target,
    /// The webhook signing secret (`whsec_...`); `None` for outbound SCIM.
    pub secret: Option<String>,
}

/// Checks and parses event type names.
pub fn event_types(names: &[String]) -> Result<Vec<EventType>, TargetError> {
    names
        .iter()
        .map(|n| {
            EventType::from_str(n).map_err(|_| {
                let known: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
                TargetError::Invalid(format!(
                    "unknown event type {n:?}; known types: {}",
                    known.join(", ")
                ))
            })
        })
        .collect()
}

fn check_name(name: &str) -> Result<String, TargetError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME || name.chars().any(char::is_control) {
        return Err(TargetError::Invalid(format!(
            "name must be 1 to {MAX_NAME} printable characters"
        )));
    }
    Ok(name.to_owned())
}

fn check_url(policy: &AddressPolicy, url: &str) -> Result<String, TargetError> {
    if url.len() > MAX_URL {
        return Err(TargetError::Invalid(format!(
            "url must be at most {MAX_URL} bytes"
        )));
    }
    Ok(policy.check_url(url)?.to_string())
}

/// A SCIM base URL: a webhook's checks, and no query or fragment (resource
/// paths are appended to it).
fn check_scim_url(policy: &AddressPolicy, url: &str) -> Result<String, TargetError> {
    let checked = check_url(policy, url)?;
    let parsed = url::Url::parse(&checked)
        .map_err(|e| TargetError::Invalid(format!("url is not a URL: {e}")))?;
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(TargetError::Invalid(
            "the SCIM base URL may not have a query or a fragment".into(),
        ));
    }
    Ok(checked)
}

/// An application's bearer token: 1 to [`MAX_TOKEN`] visible ASCII
/// characters (it goes into an `Authorization` header as it is).
fn check_token(token: &str) -> Result<(), TargetError> {
    let ok = !token.is_empty()
        && token.len() <= MAX_TOKEN
        && token.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        Ok(())
    } else {
        Err(TargetError::Invalid(format!(
            "token must be 1 to {MAX_TOKEN} visible ASCII characters"
        )))
    }
}

/// The targets service of one tenant.
pub struct Targets<'a> {
    /// The tenant's store.
    pub store: &'a TenantStore,
    /// Seals target secrets; `None` when no key is configured (then no
    /// target can be created and no secret rotated).
    pub secrets: Option<&'a SecretBox>,
    /// Which addresses targets may have.
    pub policy: AddressPolicy,
}

impl Targets<'_> {
    fn key(&self) -> Result<&SecretBox, TargetError> {
        self.secrets.ok_or(TargetError::NoKey)
    }

    /// Creates a target; a webhook gets a new signing secret, returned
    /// this once; an outbound SCIM target keeps the application's token
    /// (sealed, never returned).
    pub async fn create(&self, spec: TargetSpec, actor: &str) -> Result<Created, TargetError> {
        let name = check_name(&spec.name)?;
        let kind = TargetKind::from_str(&spec.kind)
            .map_err(|_| TargetError::Invalid("kind must be \"webhook\" or \"scim\"".into()))?;
        let (url, sealed_secret, shown) = match (kind, spec.token.as_deref()) {
            (TargetKind::Webhook, Some(_)) => {
                return Err(TargetError::Invalid(
                    "token is for outbound SCIM targets only".into(),
                ));
            }
            (TargetKind::Webhook, None) => {
                let url = check_url(&self.policy, &spec.url)?;
                let shown = WebhookSecret::generate().expose();
                let sealed = self.key()?.seal(&shown)?;
                (url, sealed, Some(shown))
            }
            (TargetKind::Scim, None) => {
                return Err(TargetError::Invalid(
                    "an outbound SCIM target needs the application's bearer token".into(),
                ));
            }
            (TargetKind::Scim, Some(token)) => {
                let url = check_scim_url(&self.policy, &spec.url)?;
                check_token(token)?;
                (url, self.key()?.seal(token)?, None)
            }
        };
        let event_types = event_types(&spec.event_types)?;
        let target = self
            .store
            .create_target(
                NewTarget {
                    name,
                    kind,
                    url,
                    event_types,
                    sealed_secret,
                },
                actor,
            )
            .await?;
        Ok(Created {
            target,
            secret: shown,
        })
    }

    /// Changes a target's name, address, event types or enabled state.
    pub async fn update(
        &self,
        id: Uuid,
        name: Option<String>,
        url: Option<String>,
        event_types: Option<Vec<String>>,
        enabled: Option<bool>,
        actor: &str,
    ) -> Result<Target, TargetError> {
        let url = match url.as_deref() {
            Some(u) if self.store.target(id).await?.kind == TargetKind::Scim => {
                Some(check_scim_url(&self.policy, u)?)
            }
            Some(u) => Some(check_url(&self.policy, u)?),
            None => None,
        };
        let update = TargetUpdate {
            name: name.as_deref().map(check_name).transpose()?,
            url,
            event_types: event_types.as_deref().map(self::event_types).transpose()?,
            enabled,
            sealed_secret: None,
        };
        Ok(self.store.update_target(id, update, actor).await?)
    }

    /// Replaces an outbound SCIM target's bearer token (sealed, never
    /// returned).
    pub async fn set_token(
        &self,
        id: Uuid,
        token: &str,
        actor: &str,
    ) -> Result<Target, TargetError> {
        if self.store.target(id).await?.kind != TargetKind::Scim {
            return Err(TargetError::Invalid(
                "only outbound SCIM targets have a token".into(),
            ));
        }
        check_token(token)?;
        let update = TargetUpdate {
            sealed_secret: Some(self.key()?.seal(token)?),
            ..TargetUpdate::default()
        };
        Ok(self.store.update_target(id, update, actor).await?)
    }

    /// Gives a webhook target a new signing secret, returned this once;
    /// the old one also signs until `now + overlap`.
    pub async fn rotate(
        &self,
        id: Uuid,
        overlap: std::time::Duration,
        now: DateTime<Utc>,
        actor: &str,
    ) -> Result<(Target, String), TargetError> {
        let current = self.store.target(id).await?;
        if current.kind != TargetKind::Webhook {
            return Err(TargetError::Invalid(
                "only webhook targets have a signing secret".into(),
            ));
        }
        let secret = WebhookSecret::generate();
        let shown = secret.expose();
        let sealed = self.key()?.seal(&shown)?;
        let until = now + chrono::Duration::from_std(overlap).unwrap_or_default();
        let target = self
            .store
            .rotate_target_secret(id, sealed, until, actor)
            .await?;
        Ok((target, shown))
    }
}
