//! Broadcasts between the instances of a deployment: what one instance
//! changed that the others cache (tokens and tenants, role policies).
//!
//! Redis pub/sub delivers a message to whoever listens at that moment and
//! to no one else, so a listener that was disconnected may have missed
//! some: after every (re)connection it reports [`Notice::Resync`], and its
//! owner then drops everything it cached. The database stays the source
//! of truth; a notice only says "read it again".

use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::watch;
use uuid::Uuid;

use crate::{ClusterError, Redis, bounded};

/// What changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    /// Tokens or tenants changed (a token revoked, a tenant suspended,
    /// deleted or linked to a super tenant): cached verifications are stale.
    Auth,
    /// A tenant's role policy changed.
    Policy(Uuid),
    /// An instance committed writes, and with them events: the delivery
    /// relay may copy them now instead of at its next poll.
    Committed,
    /// The listener (re)connected and may have missed notices: drop every
    /// cached fact.
    Resync,
}

impl Notice {
    fn encode(self) -> String {
        match self {
            Notice::Auth => "auth".to_owned(),
            Notice::Policy(tenant) => format!("policy:{tenant}"),
            Notice::Resync => "resync".to_owned(),
            Notice::Committed => "committed".to_owned(),
        }
    }

    /// Reads a message; `None` for one this version does not know (sent by
    /// a newer instance during a rolling upgrade).
    fn decode(text: &str) -> Option<Notice> {
        match text.split_once(':') {
            None if text == "auth" => Some(Notice::Auth),
            None if text == "resync" => Some(Notice::Resync),
            None if text == "committed" => Some(Notice::Committed),
            Some(("policy", id)) => Uuid::parse_str(id).ok().map(Notice::Policy),
            _ => None,
        }
    }
}

/// The longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

impl Redis {
    /// Tells every listening instance (this one included) what changed.
    pub async fn publish(&self, notice: Notice) -> Result<(), ClusterError> {
        let channel = self.key(&["notices"]);
        let mut conn = self.conn();
        let _receivers: i64 = bounded(
            redis::cmd("PUBLISH")
                .arg(channel)
                .arg(notice.encode())
                .query_async(&mut conn),
        )
        .await?;
        Ok(())
    }

    /// Listens for notices until `stop` turns true, calling `on` for each,
    /// with [`Notice::Resync`] after every (re)connection. Reconnects with
    /// a backoff of up to [`MAX_BACKOFF`] while Redis is away.
    pub async fn listen(&self, on: impl Fn(Notice) + Send, mut stop: watch::Receiver<bool>) {
        let channel = self.key(&["notices"]);
        let mut backoff = Duration::from_millis(50);
        let mut was_down = false;
        loop {
            if *stop.borrow() {
                return;
            }
            let subscribed = async {
                let mut pubsub = bounded(self.client().get_async_pubsub()).await?;
                bounded(pubsub.subscribe(&channel)).await?;
                Ok::<_, ClusterError>(pubsub)
            };
            let pubsub = tokio::select! {
                r = subscribed => r,
                _ = stop.wait_for(|s| *s) => return,
            };
            match pubsub {
                Ok(pubsub) => {
                    if was_down {
                        tracing::info!("redis is back; listening for notices again");
                    }
                    was_down = false;
                    backoff = Duration::from_millis(50);
                    on(Notice::Resync);
                    let mut messages = pubsub.into_on_message();
                    loop {
                        let message = tokio::select! {
                            m = messages.next() => m,
                            _ = stop.wait_for(|s| *s) => return,
                        };
                        let Some(message) = message else { break };
                        match message
                            .get_payload::<String>()
                            .ok()
                            .and_then(|t| Notice::decode(&t))
                        {
                            Some(notice) => on(notice),
                            None => tracing::debug!("ignoring an unknown notice"),
                        }
                    }
                    tracing::warn!("lost the redis notice subscription; reconnecting");
                }
                Err(e) => {
                    if !was_down {
                        tracing::warn!(error = %e, "cannot subscribe to redis notices; retrying");
                    }
                    was_down = true;
                }
            }
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_round_trip_and_unknown_ones_are_ignored() {
        let tenant = Uuid::new_v4();
        for notice in [
            Notice::Auth,
            Notice::Policy(tenant),
            Notice::Resync,
            Notice::Committed,
        ] {
            assert_eq!(Notice::decode(&notice.encode()), Some(notice));
        }
        for text in [
            "",
            "policy:",
            "policy:nope",
            "tenant:x",
            "authx",
            "auth:1",
            "committed:1",
        ] {
            assert_eq!(Notice::decode(text), None, "{text:?}");
        }
    }
}
