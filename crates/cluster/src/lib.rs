//! What the instances of one scimgate deployment share through Redis.
//!
//! Redis is optional: one machine (or several processes on one
//! PostgreSQL) works without it. With it:
//! - [`limit`]: per-tenant rate limits shared by every gateway (GCRA, one
//!   Lua script per request, Redis's clock);
//! - [`notice`]: broadcasts (token revoked, tenant suspended, role policy
//!   changed) that every instance hears within milliseconds instead of at
//!   its next poll of the database;
//! - [`stream`]: the delivery queue's streams, relay and partition leases,
//!   which spread delivery over several workers.
//!
//! Redis never holds the only copy of anything: the database stays the
//! source of truth, so Redis being down or restarted delays and degrades
//! (each gateway limits on its own, revocations wait for the poll) but
//! loses nothing. Every call is bounded by [`CALL_TIMEOUT`]: a slow Redis
//! must not hold up a SCIM request.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

pub mod limit;
pub mod notice;
pub mod stream;

/// The longest any one Redis call may take before the caller falls back.
pub const CALL_TIMEOUT: Duration = Duration::from_millis(500);

/// Why a Redis call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The URL is not a Redis URL.
    #[error("invalid Redis URL: {0}")]
    Url(String),
    /// Redis answered with an error or the connection failed.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// Redis did not answer within [`CALL_TIMEOUT`].
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
}

/// A connection to the deployment's Redis; cheap to clone (one multiplexed
/// connection, re-established in the background after a failure).
#[derive(Clone)]
pub struct Redis {
    client: redis::Client,
    conn: ConnectionManager,
    prefix: String,
}

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a password.
        f.debug_struct("Redis")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl Redis {
    /// A handle on the Redis at `url` (`redis://[:password@]host:port/[db]`).
    /// Does not wait for Redis: an instance starts while Redis is down and
    /// connects when it comes up. Fails only on a malformed URL.
    pub fn open(url: &str) -> Result<Redis, ClusterError> {
        let client = redis::Client::open(url).map_err(|e| ClusterError::Url(e.to_string()))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CALL_TIMEOUT))
            .set_response_timeout(Some(CALL_TIMEOUT))
            // Reconnection is retried on the next call, not in a long
            // background loop: a call during an outage fails fast.
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(200));
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), config)?;
        Ok(Redis {
            client,
            conn,
            prefix: "scimgate".to_owned(),
        })
    }

    /// Checks that Redis answers (for `/readyz`).
    pub async fn ping(&self) -> Result<(), ClusterError> {
        let mut conn = self.conn.clone();
        bounded(redis::cmd("PING").query_async::<String>(&mut conn)).await?;
        Ok(())
    }

    /// The key `scimgate:<parts...>`: every key this deployment uses.
    pub(crate) fn key(&self, parts: &[&str]) -> String {
        let mut key = self.prefix.clone();
        for part in parts {
            key.push(':');
            key.push_str(part);
        }
        key
    }

    /// The shared connection.
    pub(crate) fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// A client for dedicated connections (subscriptions).
    pub(crate) fn client(&self) -> &redis::Client {
        &self.client
    }
}

/// Runs one Redis call within [`CALL_TIMEOUT`].
pub(crate) async fn bounded<T>(
    call: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> Result<T, ClusterError> {
    match tokio::time::timeout(CALL_TIMEOUT, call).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(ClusterError::Timeout(CALL_TIMEOUT)),
    }
}
