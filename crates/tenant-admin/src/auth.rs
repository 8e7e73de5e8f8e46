//! Sessions (JWT) and who may do what.
//!
//! **Tokens.** `POST /login` checks a password with the store (argon2id)
//! and answers a JWT signed with HS256 by the first configured key, whose
//! `kid` the header names. Verification accepts any configured key by
//! `kid` (rotation: add the new key first, keep the old one until its
//! tokens expired), exactly one algorithm (HS256: `none`, HS512, RS256 and
//! anything else are refused before a key is looked at, so no
//! algorithm-confusion trick can pick the check), and requires `exp`, `iat`,
//! `iss = "scimgate"` and `sub`.
//!
//! **Authentication** runs as a middleware on every protected resource,
//! before any extractor: it verifies the token, re-reads a tenant admin's
//! tenant and login (a deleted tenant or login ends the session at once),
//! and resolves the `{tenant}` of the path. A tenant admin naming another
//! tenant gets the very 404 a missing tenant gets. The result goes into
//! the request's extensions.
//!
//! **Authorization** is in the handler's argument types (STYLE §4): a
//! handler taking [`Scoped<Write>`] cannot run for a tenant admin of a
//! suspended tenant, one taking [`Operator`] or [`Scoped<OperatorOnly>`]
//! cannot run for a tenant admin at all. Those checks read only what the
//! middleware resolved, so they finish before a body is parsed: a caller
//! learns that they may not do something before learning that their JSON
//! is malformed.

use std::collections::HashMap;
use std::fmt;
use std::future::{Ready, ready};
use std::marker::PhantomData;
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use chrono::{DateTime, Utc};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use store::{Store, Tenant, TenantStatus};
use uuid::Uuid;

use crate::error::AdminError;
use crate::service::{Actor, TenantContext};
use crate::wire::PrincipalKind;
use crate::{AdminConfigError, ISSUER, State};

/// The shortest accepted HMAC secret: HS256 keys shorter than the hash
/// output (32 bytes) weaken it (RFC 7518 §3.2).
pub const MIN_SECRET_BYTES: usize = 32;

/// Clock skew tolerated between instances, in seconds.
const LEEWAY_SECS: u64 = 5;

/// One HS256 key: a `kid` naming it in token headers, and its secret.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKey {
    kid: String,
    secret: Vec<u8>,
}

impl SigningKey {
    /// A key; `kid` must be 1 to 64 of `A-Z a-z 0-9 . _ -`, the secret at
    /// least [`MIN_SECRET_BYTES`] bytes.
    pub fn new(
        kid: impl Into<String>,
        secret: impl Into<Vec<u8>>,
    ) -> Result<Self, AdminConfigError> {
        let kid = kid.into();
        let secret = secret.into();
        let kid_ok = !kid.is_empty()
            && kid.len() <= 64
            && kid
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if !kid_ok {
            return Err(AdminConfigError::BadKid(kid));
        }
        if secret.len() < MIN_SECRET_BYTES {
            return Err(AdminConfigError::ShortSecret {
                kid,
                len: secret.len(),
            });
        }
        Ok(SigningKey { kid, secret })
    }

    /// The key's id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The secret, for the one place that needs it (signing test tokens,
    /// persisting a generated key).
    pub fn secret(&self) -> &[u8] {
        &self.secret
    }
}

// Hand-written so that a stray `{:?}` never prints a secret.
impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("secret", &"[redacted]")
            .finish()
    }
}

/// What a session token says.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Claims {
    iss: String,
    /// The login's id.
    sub: String,
    iat: i64,
    exp: i64,
    kind: PrincipalKind,
    email: String,
    /// A tenant admin's tenant id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tid: Option<Uuid>,
    /// Unique per token, so two sessions issued in the same second differ
    /// (the console derives each session's CSRF token from its token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    jti: Option<String>,
}

/// The configured keys, ready to sign and verify.
pub(crate) struct Keys {
    signer: (String, EncodingKey),
    verifiers: HashMap<String, DecodingKey>,
    validation: Validation,
}

impl Keys {
    pub(crate) fn new(keys: &[SigningKey]) -> Result<Keys, AdminConfigError> {
        let Some(first) = keys.first() else {
            return Err(AdminConfigError::NoKeys);
        };
        let mut verifiers = HashMap::with_capacity(keys.len());
        for key in keys {
            if verifiers
                .insert(key.kid.clone(), DecodingKey::from_secret(&key.secret))
                .is_some()
            {
                return Err(AdminConfigError::DuplicateKid(key.kid.clone()));
            }
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "sub"]);
        validation.validate_exp = true;
        validation.leeway = LEEWAY_SECS;
        Ok(Keys {
            signer: (first.kid.clone(), EncodingKey::from_secret(&first.secret)),
            verifiers,
            validation,
        })
    }

    /// A token for `principal`, valid for `ttl`.
    pub(crate) fn issue(
        &self,
        principal: &store::Principal,
        ttl: Duration,
    ) -> Result<(String, DateTime<Utc>), AdminError> {
        let now = Utc::now();
        let ttl = chrono::Duration::from_std(ttl)
            .map_err(|e| AdminError::Internal(format!("token lifetime: {e}")))?;
        let expires = now + ttl;
        let claims = Claims {
            iss: ISSUER.to_owned(),
            sub: principal.id.clone(),
            iat: now.timestamp(),
            exp: expires.timestamp(),
            kind: match principal.tenant {
                Some(_) => PrincipalKind::TenantAdmin,
                None => PrincipalKind::Operator,
            },
            email: principal.email.clone(),
            tid: principal.tenant.as_ref().map(Tenant::id),
            jti: Some(Uuid::new_v4().to_string()),
        };
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(self.signer.0.clone());
        let token = jsonwebtoken::encode(&header, &claims, &self.signer.1)
            .map_err(|e| AdminError::Internal(format!("cannot sign a session token: {e}")))?;
        let expires = DateTime::from_timestamp(claims.exp, 0).unwrap_or(expires);
        Ok((token, expires))
    }

    /// The claims of a token this deployment issued and that is still valid.
    pub(crate) fn verify(&self, token: &str) -> Result<Claims, AdminError> {
        const INVALID: AdminError = AdminError::Unauthorized("invalid session token");
        // The algorithm is pinned before any key is chosen; a header that
        // does not parse (`"alg": "none"` included) is simply invalid.
        let header = jsonwebtoken::decode_header(token).map_err(|_| INVALID)?;
        if header.alg != Algorithm::HS256 {
            return Err(INVALID);
        }
        let key = header
            .kid
            .as_deref()
            .and_then(|kid| self.verifiers.get(kid))
            .ok_or(INVALID)?;
        let data =
            jsonwebtoken::decode::<Claims>(token, key, &self.validation).map_err(|e| {
                match e.kind() {
                    ErrorKind::ExpiredSignature => {
                        AdminError::Unauthorized("the session has expired; log in again")
                    }
                    _ => INVALID,
                }
            })?;
        let claims = data.claims;
        let leeway = i64::try_from(LEEWAY_SECS).unwrap_or(0);
        let consistent = match claims.kind {
            PrincipalKind::Operator => claims.tid.is_none(),
            PrincipalKind::TenantAdmin => claims.tid.is_some(),
        };
        // A token "issued" in the future was not issued by this clock.
        if !consistent || claims.iat > Utc::now().timestamp() + leeway {
            return Err(INVALID);
        }
        Ok(claims)
    }
}

/// Someone with a valid session.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub(crate) kind: PrincipalKind,
    pub(crate) id: String,
    pub(crate) email: String,
    /// A tenant admin's tenant, as read for this request.
    pub(crate) tenant: Option<Tenant>,
    pub(crate) expires_at: DateTime<Utc>,
}

impl Caller {
    /// How the service layer (and the audit log) names this caller.
    pub(crate) fn actor(&self) -> Actor {
        match self.kind {
            PrincipalKind::Operator => Actor::operator(format!("operator:{}", self.email)),
            PrincipalKind::TenantAdmin => {
                Actor::tenant_admin(format!("tenant-admin:{}", self.email))
            }
        }
    }

    pub(crate) fn is_operator(&self) -> bool {
        self.kind == PrincipalKind::Operator
    }
}

/// What the middleware resolved for one request.
#[derive(Debug, Clone)]
struct Context {
    caller: Caller,
    /// The `{tenant}` of the path, when the route has one.
    tenant: Option<Tenant>,
}

/// The token of an `Authorization: Bearer` header.
fn bearer(req: &ServiceRequest) -> Result<&str, AdminError> {
    let value = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .ok_or(AdminError::Unauthorized("missing bearer token"))?;
    let text = value
        .to_str()
        .map_err(|_| AdminError::Unauthorized("malformed Authorization header"))?;
    let (scheme, token) = text
        .trim()
        .split_once(' ')
        .ok_or(AdminError::Unauthorized("malformed Authorization header"))?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(AdminError::Unauthorized(
            "the Authorization header must be 'Bearer <token>'",
        ));
    }
    Ok(token.trim())
}

pub(crate) fn state(req: &HttpRequest) -> Result<web::Data<State>, AdminError> {
    req.app_data::<web::Data<State>>()
        .cloned()
        .ok_or_else(|| AdminError::Internal("admin state is not registered".into()))
}

/// Turns verified claims into a caller, re-reading what may have changed
/// since the token was issued.
async fn caller(store: &Store, claims: Claims) -> Result<Caller, AdminError> {
    const GONE: AdminError = AdminError::Unauthorized("the session's login no longer exists");
    let expires_at = DateTime::from_timestamp(claims.exp, 0).ok_or(GONE)?;
    let tenant = match claims.tid {
        None => None,
        Some(tid) => {
            let admin = store.admin();
            let tenant = admin.tenant_by_id(tid).await?.ok_or(GONE)?;
            let logins = admin.list_tenant_admins(&tenant).await?;
            if !logins.iter().any(|l| l.id.to_string() == claims.sub) {
                return Err(GONE);
            }
            Some(tenant)
        }
    };
    Ok(Caller {
        kind: claims.kind,
        id: claims.sub,
        email: claims.email,
        tenant,
        expires_at,
    })
}

/// The tenant a path names (its slug, or its id: a client that created a
/// tenant may name it by either), as this caller may see it: another
/// tenant of a tenant admin is "not found", exactly like a tenant that
/// does not exist.
async fn tenant_in_scope(store: &Store, caller: &Caller, slug: &str) -> Result<Tenant, AdminError> {
    let not_found = || AdminError::NotFound(format!("tenant '{slug}'"));
    let id = Uuid::parse_str(slug).ok();
    if let Some(own) = &caller.tenant {
        return if own.slug() == slug || id == Some(own.id()) {
            Ok(own.clone())
        } else {
            Err(not_found())
        };
    }
    let admin = store.admin();
    if let Some(tenant) = admin.tenant_by_slug(slug).await? {
        return Ok(tenant);
    }
    match id {
        Some(id) => admin.tenant_by_id(id).await?.ok_or_else(not_found),
        None => Err(not_found()),
    }
}

/// How SCIM bearer tokens begin (admin sessions are JWTs, which never do).
const SCIM_TOKEN_PREFIX: &str = "sgt_";

/// The one route a SCIM token may call: the event feed, with the
/// `events:read` scope, of its own tenant. It is let in as a read-only
/// tenant admin of that tenant (what the feed's handler requires).
async fn feed_reader(
    state: &State,
    req: &ServiceRequest,
    token: &str,
) -> Result<Caller, AdminError> {
    const FEED: &str = "/tenants/{tenant}/events";
    let on_feed = req
        .match_pattern()
        .is_some_and(|p| p.strip_prefix(crate::BASE_PATH) == Some(FEED));
    if !on_feed {
        return Err(AdminError::Unauthorized(
            "a SCIM token is accepted only by the event feed; log in for the rest",
        ));
    }
    let verify = state.scim_tokens.get().ok_or(AdminError::Unauthorized(
        "SCIM tokens are not accepted here",
    ))?;
    let auth = verify(token.to_owned())
        .await?
        .ok_or(AdminError::Unauthorized("invalid or revoked token"))?;
    if !auth.scopes.contains(&store::Scope::EventsRead) {
        return Err(AdminError::Forbidden(
            "this token lacks the events:read scope".to_owned(),
        ));
    }
    Ok(Caller {
        kind: PrincipalKind::TenantAdmin,
        id: auth.token_id.to_string(),
        email: format!("token:{}", auth.token_id),
        expires_at: auth.expires_at.unwrap_or(DateTime::<Utc>::MAX_UTC),
        tenant: Some(auth.tenant),
    })
}

/// The authentication middleware of every protected resource.
pub(crate) async fn authenticate(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let state = state(req.request())?;
    let token = bearer(&req)?;
    let caller = if token.starts_with(SCIM_TOKEN_PREFIX) {
        feed_reader(&state, &req, token).await?
    } else {
        caller(&state.store, state.keys.verify(token)?).await?
    };
    enter(&state, &req, caller).await?;
    next.call(req).await
}

/// The caller a session token names (an admin session, never a SCIM
/// token): what the console's cookie carries.
pub(crate) async fn session_caller(state: &State, token: &str) -> Result<Caller, AdminError> {
    if token.starts_with(SCIM_TOKEN_PREFIX) {
        return Err(AdminError::Unauthorized("invalid session token"));
    }
    caller(&state.store, state.keys.verify(token)?).await
}

/// Resolves the `{tenant}` of the path for `caller` and records both for
/// the extractors: the one place a request gets its tenant scope, for the
/// API and the console alike.
pub(crate) async fn enter(
    state: &State,
    req: &ServiceRequest,
    caller: Caller,
) -> Result<(), AdminError> {
    let tenant = match req.match_info().get("tenant") {
        Some(slug) => Some(tenant_in_scope(&state.store, &caller, slug).await?),
        None => None,
    };
    req.extensions_mut().insert(Context { caller, tenant });
    Ok(())
}

fn context(req: &HttpRequest) -> Result<Context, AdminError> {
    req.extensions()
        .get::<Context>()
        .cloned()
        .ok_or_else(|| AdminError::Internal("route registered without authentication".into()))
}

/// Any valid session.
#[derive(Debug)]
pub(crate) struct Authenticated(pub(crate) Caller);

impl FromRequest for Authenticated {
    type Error = AdminError;
    type Future = Ready<Result<Self, AdminError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(context(req).map(|c| Authenticated(c.caller)))
    }
}

/// An operator's session (tenant admins get 403).
#[derive(Debug)]
pub(crate) struct Operator(pub(crate) Caller);

impl FromRequest for Operator {
    type Error = AdminError;
    type Future = Ready<Result<Self, AdminError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(context(req).and_then(|c| {
            if c.caller.is_operator() {
                Ok(Operator(c.caller))
            } else {
                Err(AdminError::Forbidden(
                    "only operators may do this".to_owned(),
                ))
            }
        }))
    }
}

/// What a tenant-scoped route needs beyond seeing the tenant.
pub(crate) trait Access {
    /// Refuses the caller, or lets them through.
    fn check(caller: &Caller, tenant: &Tenant) -> Result<(), AdminError>;
}

/// Reading a tenant: operators, and the tenant's admins even while it is
/// suspended (they need to see what happened).
#[derive(Debug)]
pub(crate) enum Read {}

/// Changing a tenant's settings: operators, and the tenant's admins while
/// it is active. A suspended tenant is frozen for its own admins until an
/// operator reactivates it.
#[derive(Debug)]
pub(crate) enum Write {}

/// Operator-only changes to a tenant (delete it).
#[derive(Debug)]
pub(crate) enum OperatorOnly {}

impl Access for Read {
    fn check(_: &Caller, _: &Tenant) -> Result<(), AdminError> {
        Ok(())
    }
}

impl Access for Write {
    fn check(caller: &Caller, tenant: &Tenant) -> Result<(), AdminError> {
        if !caller.is_operator() && tenant.status() == TenantStatus::Suspended {
            return Err(AdminError::Forbidden(format!(
                "tenant '{}' is suspended; its admins can read but not change it",
                tenant.slug()
            )));
        }
        Ok(())
    }
}

impl Access for OperatorOnly {
    fn check(caller: &Caller, _: &Tenant) -> Result<(), AdminError> {
        if caller.is_operator() {
            Ok(())
        } else {
            Err(AdminError::Forbidden(
                "only operators may do this".to_owned(),
            ))
        }
    }
}

/// A tenant the caller may see, with the access `A` checked; holding one
/// is the only way a handler gets a [`TenantContext`] (and through it a
/// [`store::TenantStore`]) for the service layer.
pub(crate) struct Scoped<A> {
    pub(crate) ctx: TenantContext,
    _access: PhantomData<A>,
}

impl<A> Scoped<A> {
    /// The tenant in scope.
    pub(crate) fn tenant(&self) -> &Tenant {
        self.ctx.tenant()
    }
}

impl<A: Access> Scoped<A> {
    /// The tenant in scope of `req` with the access `A` checked (what the
    /// extractor does, for the console's own extractors).
    pub(crate) fn from_req(req: &HttpRequest) -> Result<Self, AdminError> {
        Self::extract_now(req)
    }
}

impl<A: Access> FromRequest for Scoped<A> {
    type Error = AdminError;
    type Future = Ready<Result<Self, AdminError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Self::extract_now(req))
    }
}

impl<A: Access> Scoped<A> {
    fn extract_now(req: &HttpRequest) -> Result<Self, AdminError> {
        let c = context(req)?;
        let tenant = c.tenant.ok_or_else(|| {
            AdminError::Internal("tenant-scoped handler on a route without {tenant}".into())
        })?;
        A::check(&c.caller, &tenant)?;
        let state = state(req)?;
        Ok(Scoped {
            ctx: TenantContext::new(state.store.tenant(&tenant), c.caller.actor()),
            _access: PhantomData,
        })
    }
}

/// Resolves the `{tenant}` of the matched path for the caller already
/// authenticated: for the console, whose session middleware runs before
/// the path is matched.
pub(crate) async fn enter_tenant(req: &HttpRequest) -> Result<(), AdminError> {
    let state = state(req)?;
    let caller = context(req)?.caller;
    let tenant = match req.match_info().get("tenant") {
        Some(slug) => Some(tenant_in_scope(&state.store, &caller, slug).await?),
        None => None,
    };
    req.extensions_mut().insert(Context { caller, tenant });
    Ok(())
}

/// The caller of a request that went through authentication.
pub(crate) fn caller_of(req: &HttpRequest) -> Result<Caller, AdminError> {
    context(req).map(|c| c.caller)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Keys {
        Keys::new(&[
            SigningKey::new("new", vec![7u8; 32]).unwrap(),
            SigningKey::new("old", vec![9u8; 40]).unwrap(),
        ])
        .unwrap()
    }

    fn operator() -> store::Principal {
        store::Principal {
            id: "op-1".into(),
            email: "root@example.test".into(),
            tenant: None,
        }
    }

    #[test]
    fn keys_are_checked() {
        assert_eq!(
            SigningKey::new("k", vec![0u8; 31]),
            Err(AdminConfigError::ShortSecret {
                kid: "k".into(),
                len: 31
            })
        );
        for kid in ["", "has space", "slash/", &"x".repeat(65)] {
            assert!(
                matches!(
                    SigningKey::new(kid, vec![0u8; 32]),
                    Err(AdminConfigError::BadKid(_))
                ),
                "{kid}"
            );
        }
        assert!(matches!(Keys::new(&[]), Err(AdminConfigError::NoKeys)));
        let twice = SigningKey::new("a", vec![1u8; 32]).unwrap();
        assert!(matches!(
            Keys::new(&[twice.clone(), twice]),
            Err(AdminConfigError::DuplicateKid(_))
        ));
        let shown = format!(
            "{:?}",
            SigningKey::new("a", b"0123456789abcdef0123456789abcdef".to_vec()).unwrap()
        );
        assert!(!shown.contains("0123456789"), "{shown}");
    }

    #[test]
    fn issued_tokens_verify_and_name_the_first_key() {
        let keys = keys();
        let (token, expires) = keys.issue(&operator(), Duration::from_secs(600)).unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.alg, Algorithm::HS256);
        assert_eq!(header.kid.as_deref(), Some("new"));
        let claims = keys.verify(&token).unwrap();
        assert_eq!(claims.sub, "op-1");
        assert_eq!(claims.kind, PrincipalKind::Operator);
        assert_eq!(claims.iss, ISSUER);
        assert_eq!(claims.exp, expires.timestamp());
        assert!(claims.tid.is_none());

        // A key that only verifies: tokens it signed still work.
        let old_only = Keys::new(&[SigningKey::new("old", vec![9u8; 40]).unwrap()]).unwrap();
        let (old_token, _) = old_only
            .issue(&operator(), Duration::from_secs(600))
            .unwrap();
        assert!(keys.verify(&old_token).is_ok());
        // A key that is no longer configured: refused.
        let gone = Keys::new(&[SigningKey::new("gone", vec![3u8; 32]).unwrap()]).unwrap();
        let (gone_token, _) = gone.issue(&operator(), Duration::from_secs(600)).unwrap();
        assert!(matches!(
            keys.verify(&gone_token),
            Err(AdminError::Unauthorized(_))
        ));
    }
}
