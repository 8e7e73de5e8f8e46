//! What an attempt's result means for the event and its target: the one
//! state machine of a delivery.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::config::DeliveryConfig;

/// What one attempt came to, as the receiver or the network said it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// An HTTP response with this status (and its `Retry-After`, if any).
    Status {
        /// The status code.
        code: u16,
        /// The `Retry-After` header as a delay.
        retry_after: Option<Duration>,
    },
    /// No response: connection refused, reset, TLS or DNS failure.
    Network(String),
    /// No response within the request timeout.
    Timeout,
    /// Not attempted: the target's address is refused, its secret cannot
    /// be opened, or the event cannot be rendered.
    Refused(String),
}

/// What happens next to the event (and, for `DisableTarget`, to the
/// target).
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    /// Delivered; nothing more to do.
    Delivered,
    /// Try again at this time.
    RetryAt(DateTime<Utc>),
    /// Give up: a dead letter.
    Dead,
    /// The receiver said the endpoint is gone (410): keep the event
    /// waiting and disable the target.
    DisableTarget,
}

/// The one transition: an event that has now been attempted `attempts`
/// times (this one included) and got `outcome` at `now`; `jitter` is a
/// factor in `[1 - config.jitter, 1 + config.jitter]` the caller draws.
///
/// 2xx delivers; 410 disables the target; 408, 409, 429 and every 5xx,
/// network failure and timeout are retried on the schedule (a
/// `Retry-After` on 429/503 sets the wait instead, bounded); any other
/// status (4xx, and the 1xx/3xx a webhook receiver has no business
/// sending) and a refusal are permanent. A retry past the schedule's end
/// is a dead letter.
pub fn next(
    attempts: u32,
    outcome: &Outcome,
    now: DateTime<Utc>,
    config: &DeliveryConfig,
    jitter: f64,
) -> Next {
    let retry_after = match outcome {
        Outcome::Status { code, .. } if (200..300).contains(code) => return Next::Delivered,
        Outcome::Status { code: 410, .. } => return Next::DisableTarget,
        Outcome::Status {
            code: code @ (429 | 503),
            retry_after,
        } => {
            let _ = code;
            *retry_after
        }
        Outcome::Status { code, .. } if *code == 408 || *code == 409 || *code >= 500 => None,
        Outcome::Status { .. } | Outcome::Refused(_) => return Next::Dead,
        Outcome::Network(_) | Outcome::Timeout => None,
    };
    let index = usize::try_from(attempts.saturating_sub(1)).unwrap_or(usize::MAX);
    let Some(wait) = config.retry_schedule.get(index) else {
        return Next::Dead;
    };
    let wait = match retry_after {
        Some(asked) => asked.min(config.max_retry_after),
        None => wait.mul_f64(jitter.clamp(0.0, 2.0)),
    };
    let wait = chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::MAX);
    Next::RetryAt(
        now.checked_add_signed(wait)
            .unwrap_or(DateTime::<Utc>::MAX_UTC),
    )
}

/// Whether a target failing since `failing_since` has failed long enough
/// to be disabled at `now`.
pub fn exhausted(
    failing_since: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    config: &DeliveryConfig,
) -> bool {
    let limit = chrono::Duration::from_std(config.disable_after).unwrap_or(chrono::Duration::MAX);
    failing_since.is_some_and(|since| now.signed_duration_since(since) >= limit)
}

/// A factor in `1 ± spread`, drawn at random.
pub fn draw_jitter(spread: f64) -> f64 {
    use rand::Rng;
    let spread = spread.clamp(0.0, 0.9);
    if spread == 0.0 {
        return 1.0;
    }
    rand::rng().random_range((1.0 - spread)..=(1.0 + spread))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp(secs, 0).unwrap_or_default()
    }

    fn status(code: u16) -> Outcome {
        Outcome::Status {
            code,
            retry_after: None,
        }
    }

    /// Every edge of [`next`], as a table: (attempts, outcome, expected).
    #[test]
    fn every_outcome_moves_as_documented() {
        let config = DeliveryConfig::default();
        let t0 = at(1_000_000);
        let after = |secs: i64| Next::RetryAt(at(1_000_000 + secs));
        let retry_after = |code, secs| Outcome::Status {
            code,
            retry_after: Some(Duration::from_secs(secs)),
        };
        let cases: Vec<(u32, Outcome, Next)> = vec![
            (1, status(200), Next::Delivered),
            (1, status(204), Next::Delivered),
            (3, status(299), Next::Delivered),
            (1, status(410), Next::DisableTarget),
            (1, status(500), after(5)),
            (2, status(502), after(300)),
            (3, status(503), after(1800)),
            (1, status(408), after(5)),
            (1, status(409), after(5)),
            (1, status(429), after(5)),
            (1, retry_after(429, 120), after(120)),
            (1, retry_after(503, 7), after(7)),
            // A Retry-After on another status is not honoured.
            (1, retry_after(500, 120), after(5)),
            // Bounded by max_retry_after (a day).
            (1, retry_after(429, 10 * 86_400), after(86_400)),
            (1, Outcome::Timeout, after(5)),
            (4, Outcome::Network("refused".into()), after(7200)),
            (7, status(500), after(36_000)),
            // The schedule has 7 waits: the 8th failure is the last.
            (8, status(500), Next::Dead),
            (8, Outcome::Timeout, Next::Dead),
            (1, status(400), Next::Dead),
            (1, status(401), Next::Dead),
            (1, status(404), Next::Dead),
            (1, status(422), Next::Dead),
            (1, status(301), Next::Dead),
            (1, status(100), Next::Dead),
            (1, Outcome::Refused("private address".into()), Next::Dead),
        ];
        for (attempts, outcome, expected) in cases {
            assert_eq!(
                next(attempts, &outcome, t0, &config, 1.0),
                expected,
                "{attempts} {outcome:?}"
            );
        }
    }

    #[test]
    fn jitter_scales_the_wait_but_not_retry_after() {
        let config = DeliveryConfig::default();
        let t0 = at(0);
        assert_eq!(
            next(2, &status(500), t0, &config, 1.1),
            Next::RetryAt(at(330))
        );
        assert_eq!(
            next(2, &status(500), t0, &config, 0.9),
            Next::RetryAt(at(270))
        );
        let asked = Outcome::Status {
            code: 429,
            retry_after: Some(Duration::from_secs(60)),
        };
        assert_eq!(next(1, &asked, t0, &config, 1.1), Next::RetryAt(at(60)));
        for _ in 0..100 {
            let j = draw_jitter(0.1);
            assert!((0.9..=1.1).contains(&j), "{j}");
        }
        assert_eq!(draw_jitter(0.0), 1.0);
    }

    #[test]
    fn a_target_is_exhausted_after_the_configured_failing_time() {
        let config = DeliveryConfig::default();
        let five_days = 5 * 86_400;
        assert!(!exhausted(None, at(10 * five_days), &config));
        assert!(!exhausted(Some(at(0)), at(five_days - 1), &config));
        assert!(exhausted(Some(at(0)), at(five_days), &config));
    }
}
