//! Bearer-token authentication, scope checks and the per-tenant rate limit,
//! all decided in the extractor type: a handler that takes
//! `Authorized<ScimWrite>` cannot run for a read-only token, and a handler
//! with no `Authorized<_>` argument has no [`TenantStore`] to work with.
//!
//! argon2 runs inside [`store::AdminStore::authenticate`] and is slow on
//! purpose, so results are cached by the SHA-256 of the token: valid ones
//! for `token_cache_ttl` (never past the token's expiry), invalid ones
//! briefly, both in bounded maps. Concurrent requests with the same unknown
//! token wait for one verification instead of running argon2 each, and the
//! number of verifications in flight is capped so a flood of distinct bad
//! tokens queues instead of occupying every core.

use std::collections::HashMap;
use std::future::Future;
use std::marker::PhantomData;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};
use chrono::Utc;
use governor::{Quota, RateLimiter, clock::Clock};
use sha2::{Digest, Sha256};
use store::{Authenticated, Scope, Tenant, TenantStatus, TenantStore};
use uuid::Uuid;

use crate::Shared;
use crate::error::ApiError;

/// Most valid tokens remembered at once.
const MAX_VALID: usize = 10_000;
/// Most invalid tokens remembered at once.
const MAX_INVALID: usize = 10_000;
/// How long an invalid token is remembered (at most).
const INVALID_TTL: Duration = Duration::from_secs(10);
/// argon2 verifications allowed to run at the same time.
const MAX_VERIFYING: usize = 4;

/// What a handler needs from the token: a scope requirement.
pub trait Requirement {
    /// True when a token with `scopes` may do this.
    fn allows(scopes: &[Scope]) -> bool;
    /// What is missing, for the 403 detail.
    const DESCRIPTION: &'static str;
    /// True for writes to the directory, which a tenant fed by a super
    /// tenant refuses.
    const WRITES: bool = false;
}

/// Reading the tenant's directory (`scim:read` or `scim:write`).
#[derive(Debug)]
pub struct ScimRead;
/// Writing the tenant's directory (`scim:write`).
#[derive(Debug)]
pub struct ScimWrite;
/// Any valid token of an active tenant (discovery endpoints).
#[derive(Debug)]
pub struct AnyScope;

impl Requirement for ScimRead {
    fn allows(scopes: &[Scope]) -> bool {
        scopes
            .iter()
            .any(|s| matches!(s, Scope::ScimRead | Scope::ScimWrite))
    }
    const DESCRIPTION: &'static str = "this token lacks the scim:read scope";
}

impl Requirement for ScimWrite {
    fn allows(scopes: &[Scope]) -> bool {
        scopes.contains(&Scope::ScimWrite)
    }
    const DESCRIPTION: &'static str = "this token is read-only; writes need the scim:write scope";
    const WRITES: bool = true;
}

impl Requirement for AnyScope {
    fn allows(_: &[Scope]) -> bool {
        true
    }
    const DESCRIPTION: &'static str = "";
}

/// A request authenticated for one tenant with the scope `R` requires.
pub struct Authorized<R> {
    /// The tenant the token belongs to.
    pub tenant: Tenant,
    /// The tenant's directory; the only way handlers reach data.
    pub store: TenantStore,
    /// The token's id (for logs).
    pub token_id: Uuid,
    /// The base URL of this tenant's SCIM endpoint as the client addressed
    /// it, for `Location` and `meta.location`.
    pub base_url: String,
    pub(crate) shared: web::Data<Shared>,
    _requirement: PhantomData<R>,
}

impl<R> std::fmt::Debug for Authorized<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authorized")
            .field("tenant", &self.tenant.slug())
            .field("token_id", &self.token_id)
            .finish_non_exhaustive()
    }
}

impl<R: Requirement + 'static> FromRequest for Authorized<R> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move { authorize::<R>(&req).await })
    }
}

async fn authorize<R: Requirement>(req: &HttpRequest) -> Result<Authorized<R>, ApiError> {
    let shared = req
        .app_data::<web::Data<Shared>>()
        .cloned()
        .ok_or_else(|| ApiError::Internal("gateway state is not configured".into()))?;
    // With the database known to be down, neither the token nor the request
    // can be served: answer now rather than wait for the pool to give up.
    // Before the token check, so a client is told to retry, not that its
    // token is bad.
    if !shared.database.is_reachable() {
        return Err(ApiError::Unavailable {
            retry_after: shared.config.auth_poll_interval.as_secs().max(1),
        });
    }
    let fail = |reason: &str, e: ApiError| {
        shared
            .metrics
            .auth_failures
            .with_label_values(&[reason])
            .inc();
        e
    };
    let token = match bearer(req) {
        Ok(t) => t,
        Err(reason) => {
            return Err(fail(
                reason,
                ApiError::Unauthorized(
                    "a bearer token is required (Authorization: Bearer <token>)",
                ),
            ));
        }
    };
    let Some(auth) = shared.tokens.resolve(&shared, token).await? else {
        return Err(fail(
            "invalid",
            ApiError::Unauthorized("the bearer token is not valid"),
        ));
    };
    // A token opens only its own tenant's URL; saying so with 401 (not 403)
    // avoids confirming that the other tenant exists.
    if let Some(slug) = req.match_info().get("slug")
        && slug != auth.tenant.slug()
    {
        return Err(fail(
            "tenant_mismatch",
            ApiError::Unauthorized("the bearer token is not valid for this tenant"),
        ));
    }
    // For the request's log line (see `observe`), not recorded into its
    // span: that would re-format the span's fields.
    actix_web::HttpMessage::extensions_mut(req).insert(crate::observe::LogTenant {
        id: auth.tenant.id(),
        slug: auth.tenant.slug().to_owned(),
    });
    if auth.tenant.status() == TenantStatus::Suspended {
        return Err(fail(
            "suspended",
            ApiError::Forbidden(format!(
                "tenant '{}' is suspended; contact the service operator",
                auth.tenant.slug()
            )),
        ));
    }
    if !R::allows(&auth.scopes) {
        return Err(fail("scope", ApiError::Forbidden(R::DESCRIPTION.into())));
    }
    if R::WRITES
        && let Some(feeder) = &auth.fed_by
    {
        return Err(fail(
            "fed_by_super_tenant",
            ApiError::Forbidden(format!(
                "tenant '{}' is fed by super tenant '{feeder}': its users and groups are \
                 written through the super tenant's SCIM connection, and this tenant's \
                 tokens can only read",
                auth.tenant.slug()
            )),
        ));
    }
    shared.limiter.check(&shared, &auth.tenant).await?;
    let base_url = crate::render::base_url(req, &shared.config, auth.tenant.slug());
    Ok(Authorized {
        store: shared.store.tenant(&auth.tenant),
        tenant: auth.tenant,
        token_id: auth.token_id,
        base_url,
        shared,
        _requirement: PhantomData,
    })
}

/// The token of an `Authorization: Bearer <token>` header, or why not.
fn bearer(req: &HttpRequest) -> Result<&str, &'static str> {
    let value = req.headers().get(header::AUTHORIZATION).ok_or("missing")?;
    let value = value.to_str().map_err(|_| "malformed")?;
    let (scheme, token) = value.trim().split_once(' ').ok_or("malformed")?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err("malformed");
    }
    let token = token.trim();
    if token.is_empty() || token.len() > 4096 {
        return Err("malformed");
    }
    Ok(token)
}

type Key = [u8; 32];

enum Cached {
    Valid(Box<Authenticated>, Instant),
    Invalid(Instant),
}

/// The token cache (see the module documentation).
pub(crate) struct TokenCache {
    entries: Mutex<HashMap<Key, Cached>>,
    inflight: Mutex<HashMap<Key, Arc<tokio::sync::Mutex<()>>>>,
    verifying: tokio::sync::Semaphore,
    /// Bumped by every invalidation, so a verification that started
    /// before it cannot store a stale result after it.
    generation: AtomicU64,
    ttl: Duration,
}

impl TokenCache {
    pub(crate) fn new(ttl: Duration) -> TokenCache {
        TokenCache {
            entries: Mutex::new(HashMap::new()),
            inflight: Mutex::new(HashMap::new()),
            verifying: tokio::sync::Semaphore::new(MAX_VERIFYING),
            generation: AtomicU64::new(0),
            ttl,
        }
    }

    /// Forgets every cached result.
    pub(crate) fn clear(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        if let Ok(mut m) = self.entries.lock() {
            m.clear();
        }
    }

    fn lookup(&self, key: &Key) -> Option<Option<Authenticated>> {
        let mut m = self.entries.lock().ok()?;
        let now = Instant::now();
        let fresh = match m.get(key)? {
            Cached::Valid(auth, at) => {
                let unexpired = auth.expires_at.is_none_or(|exp| Utc::now() < exp);
                (now.duration_since(*at) < self.ttl && unexpired).then(|| Some((**auth).clone()))
            }
            Cached::Invalid(at) => {
                (now.duration_since(*at) < self.ttl.min(INVALID_TTL)).then_some(None)
            }
        };
        if fresh.is_none() {
            m.remove(key);
        }
        fresh
    }

    fn store(&self, key: Key, value: Option<&Authenticated>, generation: u64) {
        let Ok(mut m) = self.entries.lock() else {
            return;
        };
        if self.generation.load(Ordering::SeqCst) != generation {
            return;
        }
        let now = Instant::now();
        let (valid, invalid) = m.values().fold((0, 0), |(v, i), c| match c {
            Cached::Valid(..) => (v + 1, i),
            Cached::Invalid(_) => (v, i + 1),
        });
        let full = match value {
            Some(_) => valid >= MAX_VALID,
            None => invalid >= MAX_INVALID,
        };
        if full {
            let ttl = self.ttl;
            m.retain(|_, c| match c {
                Cached::Valid(_, at) => now.duration_since(*at) < ttl,
                Cached::Invalid(at) => now.duration_since(*at) < ttl.min(INVALID_TTL),
            });
            // Still full of live entries: drop that kind wholesale; the
            // cost is one argon2 per token on its next request.
            let still = m
                .values()
                .filter(|c| {
                    matches!(
                        (c, value),
                        (Cached::Valid(..), Some(_)) | (Cached::Invalid(_), None)
                    )
                })
                .count();
            if still >= MAX_VALID.min(MAX_INVALID) {
                m.retain(|_, c| match value {
                    Some(_) => !matches!(c, Cached::Valid(..)),
                    None => !matches!(c, Cached::Invalid(_)),
                });
            }
        }
        let entry = match value {
            Some(a) => Cached::Valid(Box::new(a.clone()), now),
            None => Cached::Invalid(now),
        };
        m.insert(key, entry);
    }

    /// Resolves a bearer token through the cache, verifying it with the
    /// store (argon2) at most once per key at a time.
    pub(crate) async fn resolve(
        &self,
        shared: &Shared,
        token: &str,
    ) -> Result<Option<Authenticated>, ApiError> {
        let key: Key = Sha256::digest(token.as_bytes()).into();
        let metric = |result: &str| {
            shared
                .metrics
                .token_cache
                .with_label_values(&[result])
                .inc()
        };
        if let Some(hit) = self.lookup(&key) {
            metric(if hit.is_some() { "hit" } else { "negative_hit" });
            return Ok(hit);
        }
        let gate = {
            let mut inflight = self
                .inflight
                .lock()
                .map_err(|_| ApiError::Internal("token cache lock poisoned".into()))?;
            inflight.entry(key).or_default().clone()
        };
        // Removes the gate when done, also when the request is dropped
        // mid-verification (client gone), so the map cannot grow.
        let _cleanup = InflightGuard { cache: self, key };
        let _one_at_a_time = gate.lock().await;
        if let Some(hit) = self.lookup(&key) {
            metric(if hit.is_some() { "hit" } else { "negative_hit" });
            return Ok(hit);
        }
        metric("miss");
        let generation = self.generation.load(Ordering::SeqCst);
        let result = {
            let _permit = self
                .verifying
                .acquire()
                .await
                .map_err(|_| ApiError::Internal("token verification closed".into()))?;
            shared.store.admin().authenticate(token).await
        };
        let auth = result?;
        self.store(key, auth.as_ref(), generation);
        Ok(auth)
    }
}

struct InflightGuard<'a> {
    cache: &'a TokenCache,
    key: Key,
}

impl Drop for InflightGuard<'_> {
    fn drop(&mut self) {
        if let Ok(mut inflight) = self.cache.inflight.lock() {
            inflight.remove(&self.key);
        }
    }
}

/// The per-tenant request rate limit: shared by every gateway through
/// Redis when one is configured, else (and while Redis does not answer)
/// this process's own.
pub(crate) struct TenantLimiter {
    limiter: Option<governor::DefaultKeyedRateLimiter<Uuid>>,
    shared: Option<cluster::limit::SharedLimiter>,
    per_second: u32,
    burst: u32,
    /// Set while Redis fails, so an outage is logged once, not per request.
    redis_down: std::sync::atomic::AtomicBool,
}

impl TenantLimiter {
    /// `per_second == 0` disables the limit.
    pub(crate) fn new(
        per_second: u32,
        burst: u32,
        shared: Option<cluster::limit::SharedLimiter>,
    ) -> TenantLimiter {
        let limiter = NonZeroU32::new(per_second).map(|rate| {
            let burst = NonZeroU32::new(burst.max(per_second)).unwrap_or(rate);
            RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
        });
        TenantLimiter {
            limiter,
            shared,
            per_second,
            burst: burst.max(per_second),
            redis_down: std::sync::atomic::AtomicBool::new(false),
        }
    }

    async fn check(&self, shared: &Shared, tenant: &Tenant) -> Result<(), ApiError> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        let wait = match self.check_shared(tenant).await {
            Some(decision) => decision,
            // Without Redis each gateway holds the tenant to the whole
            // limit: the fleet may let through up to n times it, but no
            // tenant is refused because Redis is away.
            None => limiter.check_key(&tenant.id()).err().map(|not_until| {
                not_until.wait_time_from(governor::clock::DefaultClock::default().now())
            }),
        };
        let Some(wait) = wait else { return Ok(()) };
        shared
            .metrics
            .rate_limited
            .with_label_values(&[&shared.tenant_label(tenant.slug())])
            .inc();
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        Err(ApiError::RateLimited {
            retry_after: secs.max(1),
        })
    }

    /// The shared limit's answer (`Some(None)`: go ahead; `Some(Some(wait))`:
    /// refused), or `None` when there is no shared limit or Redis failed.
    async fn check_shared(&self, tenant: &Tenant) -> Option<Option<Duration>> {
        let limiter = self.shared.as_ref()?;
        let key = tenant.id().to_string();
        match limiter.check(&key, self.per_second, self.burst).await {
            Ok(decision) => {
                if self.redis_down.swap(false, Ordering::Relaxed) {
                    tracing::info!("redis answers again; rate limits are shared again");
                }
                Some(match decision {
                    cluster::limit::Decision::Allow => None,
                    cluster::limit::Decision::Wait(wait) => Some(wait),
                })
            }
            Err(e) => {
                if !self.redis_down.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        error = %e,
                        "redis does not answer; each gateway limits tenants on its own until it does"
                    );
                }
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_gate_requirements() {
        assert!(ScimRead::allows(&[Scope::ScimRead]));
        assert!(ScimRead::allows(&[Scope::ScimWrite]));
        assert!(!ScimWrite::allows(&[Scope::ScimRead]));
        assert!(ScimWrite::allows(&[Scope::ScimRead, Scope::ScimWrite]));
        assert!(!ScimRead::allows(&[]));
        assert!(AnyScope::allows(&[]));
    }

    #[test]
    fn bearer_header_parsing() {
        let req = |v: &str| {
            actix_web::test::TestRequest::default()
                .insert_header((header::AUTHORIZATION, v))
                .to_http_request()
        };
        assert_eq!(bearer(&req("Bearer abc")), Ok("abc"));
        assert_eq!(bearer(&req("bearer  abc ")), Ok("abc"));
        assert_eq!(bearer(&req("Basic abc")), Err("malformed"));
        assert_eq!(bearer(&req("Bearer")), Err("malformed"));
        assert_eq!(bearer(&req("Bearer ")), Err("malformed"));
        let none = actix_web::test::TestRequest::default().to_http_request();
        assert_eq!(bearer(&none), Err("missing"));
    }

    #[test]
    fn invalid_entries_expire_and_clear_empties_the_cache() {
        let cache = TokenCache::new(Duration::from_secs(60));
        let key = [7u8; 32];
        cache.store(key, None, 0);
        assert!(matches!(cache.lookup(&key), Some(None)));
        cache.clear();
        assert!(cache.lookup(&key).is_none());
        // A verification that started before the clear must not store.
        cache.store(key, None, 0);
        assert!(cache.lookup(&key).is_none());
    }

    #[test]
    fn invalid_cache_is_bounded() {
        let cache = TokenCache::new(Duration::from_secs(60));
        for i in 0..(MAX_INVALID + 10) {
            let mut key = [0u8; 32];
            key[..8].copy_from_slice(&(i as u64).to_le_bytes());
            cache.store(key, None, 0);
        }
        assert!(cache.entries.lock().unwrap().len() <= MAX_INVALID);
    }

    #[test]
    fn limiter_disabled_at_zero_rate() {
        assert!(TenantLimiter::new(0, 0, None).limiter.is_none());
        assert!(TenantLimiter::new(1, 0, None).limiter.is_some());
    }
}
