//! A rate limit shared by every gateway: GCRA (the generic cell rate
//! algorithm, as in ATM networks and `redis-cell`) in one Lua script, so
//! each request costs one round trip and the check-and-update is atomic
//! however many gateways ask at once.
//!
//! The state per key is one number, the theoretical arrival time (TAT) of
//! the next request in microseconds, which expires when the key is idle.
//! Time is Redis's own (`TIME`), so gateways whose clocks disagree still
//! share one limit.

use std::time::Duration;

use redis::Script;

use crate::{ClusterError, Redis, bounded};

/// `KEYS[1]`: the key. `ARGV[1]`: the emission interval (µs between
/// requests at the sustained rate). `ARGV[2]`: the burst (requests that
/// may arrive at once). Returns 0 when allowed, else the microseconds to
/// wait before the next request would be.
const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = interval * tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local next_tat = tat + interval
local allowed_at = next_tat - tolerance
if allowed_at > now then
  return allowed_at - now
end
redis.call('SET', KEYS[1], next_tat, 'PX', math.ceil((next_tat - now) / 1000) + 1)
return 0
";

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Go ahead.
    Allow,
    /// Refused; the next request would be allowed after this long.
    Wait(Duration),
}

/// The shared limiter; cheap to clone.
#[derive(Clone, Debug)]
pub struct SharedLimiter {
    redis: Redis,
    script: std::sync::Arc<Script>,
}

impl SharedLimiter {
    /// A limiter on `redis`.
    pub fn new(redis: Redis) -> SharedLimiter {
        SharedLimiter {
            redis,
            script: std::sync::Arc::new(Script::new(GCRA)),
        }
    }

    /// Counts one request against `key`'s limit of `per_second` sustained
    /// requests with bursts of up to `burst` (at least 1) and says whether it
    /// may go ahead. Errors when Redis does not answer: the caller decides
    /// what to do without it.
    pub async fn check(
        &self,
        key: &str,
        per_second: u32,
        burst: u32,
    ) -> Result<Decision, ClusterError> {
        let interval = 1_000_000 / u64::from(per_second.max(1));
        let key = self.redis.key(&["rate", key]);
        let mut conn = self.redis.conn();
        let mut call = self.script.key(key);
        call.arg(interval).arg(burst.max(1));
        let wait: u64 = bounded(call.invoke_async(&mut conn)).await?;
        Ok(if wait == 0 {
            Decision::Allow
        } else {
            Decision::Wait(Duration::from_micros(wait))
        })
    }
}
