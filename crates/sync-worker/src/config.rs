//! Delivery settings, with the defaults an operator gets without writing
//! any (`[delivery]` in the configuration file).

use std::time::Duration;

/// How the worker delivers.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryConfig {
    /// The wait before each retry: the first entry after the first failed
    /// attempt, and so on; an event is attempted `len + 1` times in all.
    pub retry_schedule: Vec<Duration>,
    /// Each wait is multiplied by a random factor in `1 ± jitter`, so
    /// retries of many events do not arrive in lockstep.
    pub jitter: f64,
    /// The most a `Retry-After` may postpone an attempt.
    pub max_retry_after: Duration,
    /// A whole request (connect, send, response) gives up after this.
    pub timeout: Duration,
    /// A target whose every attempt has failed for this long is disabled.
    pub disable_after: Duration,
    /// Requests in flight to one target at most.
    pub per_target_concurrency: usize,
    /// Events one round reads for one target.
    pub batch: u64,
    /// How often an idle target looks for new events when nothing wakes
    /// it (another process wrote them, or a retry came due).
    pub poll: Duration,
    /// The least time between the starts of two rounds on one target,
    /// unless the first round found a full batch. Under a steady stream of
    /// changes this gathers them into fewer, larger rounds (each round is
    /// one write transaction), at the price of up to this much lag.
    pub linger: Duration,
    /// How long a target's lease lasts; renewed at a third of it, and at
    /// least twice `timeout` (a round only starts with that much left).
    pub lease: Duration,
    /// Targets one worker process delivers to at most.
    pub max_targets: u64,
    /// Whether target addresses in loopback, private and link-local ranges
    /// are allowed (off: a tenant admin cannot aim at the internal network).
    pub allow_private_targets: bool,
    /// Bytes of a response body kept with its attempt.
    pub response_excerpt: usize,
    /// Attempts are kept this long.
    pub attempt_retention: Duration,
    /// Events are kept this long (once every target is done with them).
    pub event_retention: Duration,
    /// After a secret rotation, the old secret signs too for this long.
    pub rotation_overlap: Duration,
}

impl DeliveryConfig {
    /// The lease a worker actually takes: `lease`, but at least twice
    /// `timeout` (a round needs a lease that outlasts a whole request
    /// after a renewal came late).
    pub fn effective_lease(&self) -> Duration {
        self.lease.max(self.timeout * 2)
    }
}

const MINUTE: u64 = 60;
const HOUR: u64 = 60 * MINUTE;
const DAY: u64 = 24 * HOUR;

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            // The Standard Webhooks schedule: immediately, then after 5 s,
            // 5 min, 30 min, 2 h, 5 h, 10 h and 10 h.
            retry_schedule: [
                5,
                5 * MINUTE,
                30 * MINUTE,
                2 * HOUR,
                5 * HOUR,
                10 * HOUR,
                10 * HOUR,
            ]
            .into_iter()
            .map(Duration::from_secs)
            .collect(),
            jitter: 0.1,
            max_retry_after: Duration::from_secs(DAY),
            timeout: Duration::from_secs(15),
            disable_after: Duration::from_secs(5 * DAY),
            per_target_concurrency: 8,
            batch: 500,
            poll: Duration::from_secs(1),
            linger: Duration::from_millis(50),
            lease: Duration::from_secs(30),
            max_targets: 10_000,
            allow_private_targets: false,
            response_excerpt: 1024,
            attempt_retention: Duration::from_secs(30 * DAY),
            event_retention: Duration::from_secs(30 * DAY),
            rotation_overlap: Duration::from_secs(DAY),
        }
    }
}
