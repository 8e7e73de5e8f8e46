//! Login throttling: after too many failed logins for one account, or from
//! one client address, within a window, further attempts are refused for
//! a while, before any password is checked (argon2 is the expensive part
//! an attacker would make us pay for), and each lockout of the same key
//! in a row lasts twice as long as the one before, up to a ceiling.
//!
//! An attempt is counted when it starts, not when it fails: forty
//! concurrent guesses would otherwise all pass the check before the first
//! failure is recorded. A successful login takes its attempt back and
//! clears the account's record (not the address's: one valid login must
//! not wipe the record of a client guessing at other accounts).
//!
//! Time is an input ([`Clock`]), so tests walk through windows and
//! lockouts without sleeping. The record lives behind [`ThrottleStore`];
//! [`MemoryThrottle`] keeps it per process, a shared (Redis) store can
//! implement the same trait later.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};

/// Where time comes from.
pub trait Clock: Send + Sync {
    /// Now.
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that moves only when told to (tests and tools).
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<Mutex<DateTime<Utc>>>,
}

impl ManualClock {
    /// A clock standing at `now`.
    pub fn new(now: DateTime<Utc>) -> ManualClock {
        ManualClock {
            now: Arc::new(Mutex::new(now)),
        }
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let by = chrono::Duration::from_std(by).unwrap_or(chrono::Duration::MAX);
        let mut now = self.now.lock().unwrap_or_else(|e| e.into_inner());
        *now = now.checked_add_signed(by).unwrap_or(*now);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What a login attempt is counted against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ThrottleKey {
    /// One account: the tenant's slug (none for operators) and the e-mail,
    /// both lower case and trimmed, so spellings share one record.
    Account {
        /// The tenant's slug; `None` for an operator login.
        tenant: Option<String>,
        /// The e-mail address.
        email: String,
    },
    /// One client address.
    Address(IpAddr),
}

impl ThrottleKey {
    /// The account key of a login.
    pub fn account(tenant: Option<&str>, email: &str) -> ThrottleKey {
        ThrottleKey::Account {
            tenant: tenant.map(|t| t.trim().to_lowercase()),
            email: email.trim().to_lowercase(),
        }
    }
}

/// The limits of one kind of key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// Failed attempts allowed within `window`; the next is refused.
    pub max_failures: u32,
    /// How long failures are remembered.
    pub window: Duration,
    /// The first lockout; each further one in a row doubles it.
    pub lockout: Duration,
    /// The longest lockout.
    pub max_lockout: Duration,
}

/// The limits of accounts and of client addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleSettings {
    /// Per account (tenant and e-mail).
    pub account: Limit,
    /// Per client address: higher, since many people may share one (NAT).
    pub address: Limit,
}

impl Default for ThrottleSettings {
    fn default() -> Self {
        ThrottleSettings {
            account: Limit {
                max_failures: 5,
                window: Duration::from_secs(15 * 60),
                lockout: Duration::from_secs(60),
                max_lockout: Duration::from_secs(30 * 60),
            },
            address: Limit {
                max_failures: 20,
                window: Duration::from_secs(15 * 60),
                lockout: Duration::from_secs(60),
                max_lockout: Duration::from_secs(30 * 60),
            },
        }
    }
}

/// An attempt let through; hand it back with [`ThrottleStore::succeeded`]
/// or keep it as a failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// The keys it was counted against.
    pub keys: Vec<ThrottleKey>,
    /// The keys this attempt locked (it was their last allowed one), with
    /// the lockout's length: if it fails, those are now locked out.
    pub locked: Vec<(ThrottleKey, Duration)>,
}

/// The record of login attempts.
pub trait ThrottleStore: Send + Sync {
    /// Counts an attempt against every key, or refuses it (counting
    /// nothing) with how long until the longest lockout among them ends.
    fn begin(&self, keys: &[ThrottleKey], now: DateTime<Utc>) -> Result<Attempt, Duration>;
    /// The attempt succeeded: takes it back, and clears the record of its
    /// account keys.
    fn succeeded(&self, attempt: &Attempt, now: DateTime<Utc>);
}

#[derive(Debug, Clone, Default)]
struct Record {
    window_start: Option<DateTime<Utc>>,
    failures: u32,
    /// Lockouts in a row, which doubles the next one.
    lockouts: u32,
    locked_until: Option<DateTime<Utc>>,
}

/// Records above which the memory store forgets stale ones.
const PRUNE_ABOVE: usize = 100_000;

/// The record in this process's memory.
#[derive(Debug, Default)]
pub struct MemoryThrottle {
    settings: ThrottleSettings,
    records: Mutex<HashMap<ThrottleKey, Record>>,
}

fn add(at: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| at.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

fn until(now: DateTime<Utc>, at: DateTime<Utc>) -> Duration {
    (at - now).to_std().unwrap_or(Duration::ZERO)
}

impl MemoryThrottle {
    /// An empty record with these limits.
    pub fn new(settings: ThrottleSettings) -> MemoryThrottle {
        MemoryThrottle {
            settings,
            records: Mutex::new(HashMap::new()),
        }
    }

    fn limit(&self, key: &ThrottleKey) -> Limit {
        match key {
            ThrottleKey::Account { .. } => self.settings.account,
            ThrottleKey::Address(_) => self.settings.address,
        }
    }

    /// Forgets records with nothing left to remember.
    fn prune(&self, records: &mut HashMap<ThrottleKey, Record>, now: DateTime<Utc>) {
        records.retain(|key, r| {
            let limit = self.limit(key);
            let locked = r.locked_until.is_some_and(|t| t > now);
            let remembered = r
                .window_start
                .is_some_and(|start| add(start, limit.window) > now);
            let streak = r.locked_until.is_some_and(|t| add(t, limit.window) > now);
            locked || remembered || streak
        });
    }
}

impl ThrottleStore for MemoryThrottle {
    fn begin(&self, keys: &[ThrottleKey], now: DateTime<Utc>) -> Result<Attempt, Duration> {
        let mut records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        let refused = keys
            .iter()
            .filter_map(|k| records.get(k)?.locked_until.filter(|t| *t > now))
            .max();
        if let Some(at) = refused {
            return Err(until(now, at));
        }
        if records.len() > PRUNE_ABOVE {
            self.prune(&mut records, now);
        }
        let mut locked = Vec::new();
        for key in keys {
            let limit = self.limit(key);
            let r = records.entry(key.clone()).or_default();
            // A window with no failures after the last lockout ended ends
            // the streak: the next lockout starts short again.
            if r.locked_until.is_some_and(|t| add(t, limit.window) <= now) {
                r.lockouts = 0;
                r.locked_until = None;
            }
            if r.window_start
                .is_none_or(|start| add(start, limit.window) <= now)
            {
                r.window_start = Some(now);
                r.failures = 0;
            }
            r.failures += 1;
            if r.failures >= limit.max_failures {
                let factor = 1u32 << r.lockouts.min(16);
                let lockout = limit
                    .lockout
                    .checked_mul(factor)
                    .unwrap_or(limit.max_lockout)
                    .min(limit.max_lockout);
                r.locked_until = Some(add(now, lockout));
                r.lockouts = r.lockouts.saturating_add(1);
                r.failures = 0;
                r.window_start = None;
                locked.push((key.clone(), lockout));
            }
        }
        Ok(Attempt {
            keys: keys.to_vec(),
            locked,
        })
    }

    fn succeeded(&self, attempt: &Attempt, _now: DateTime<Utc>) {
        let mut records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        for key in &attempt.keys {
            match key {
                ThrottleKey::Account { .. } => {
                    records.remove(key);
                }
                ThrottleKey::Address(_) => {
                    let locked_by_this = attempt.locked.iter().any(|(k, _)| k == key);
                    if let Some(r) = records.get_mut(key) {
                        if locked_by_this {
                            // The attempt that would have locked the
                            // address was a good login: no lockout.
                            r.locked_until = None;
                            r.lockouts = r.lockouts.saturating_sub(1);
                            r.failures = self.limit(key).max_failures.saturating_sub(1);
                            r.window_start.get_or_insert(_now);
                        } else {
                            r.failures = r.failures.saturating_sub(1);
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> ThrottleSettings {
        let limit = Limit {
            max_failures: 3,
            window: Duration::from_secs(600),
            lockout: Duration::from_secs(60),
            max_lockout: Duration::from_secs(200),
        };
        ThrottleSettings {
            account: limit,
            address: Limit {
                max_failures: 5,
                ..limit
            },
        }
    }

    fn t0() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn lockouts_grow_and_end() {
        let throttle = MemoryThrottle::new(settings());
        let keys = [ThrottleKey::account(None, "Root@X ")];
        let at = |s: u64| add(t0(), secs(s));
        assert!(throttle.begin(&keys, at(0)).unwrap().locked.is_empty());
        assert!(throttle.begin(&keys, at(1)).unwrap().locked.is_empty());
        let third = throttle.begin(&keys, at(2)).unwrap();
        assert_eq!(third.locked, vec![(keys[0].clone(), secs(60))]);
        assert_eq!(throttle.begin(&keys, at(3)), Err(secs(59)));
        // The same account however it is spelled.
        let other = [ThrottleKey::account(None, "root@x")];
        assert_eq!(throttle.begin(&other, at(3)), Err(secs(59)));
        // Over: three more, then twice as long, then the ceiling.
        for s in 62..64 {
            assert!(throttle.begin(&keys, at(s)).unwrap().locked.is_empty());
        }
        assert_eq!(
            throttle.begin(&keys, at(64)).unwrap().locked[0].1,
            secs(120)
        );
        for s in 184..186 {
            assert!(throttle.begin(&keys, at(s)).is_ok());
        }
        assert_eq!(
            throttle.begin(&keys, at(186)).unwrap().locked[0].1,
            secs(200)
        );
        // A quiet window after the lockout ends the streak.
        let later = 186 + 200 + 600;
        for s in later..later + 2 {
            assert!(throttle.begin(&keys, at(s)).is_ok());
        }
        assert_eq!(
            throttle.begin(&keys, at(later + 2)).unwrap().locked[0].1,
            secs(60)
        );
    }

    #[test]
    fn failures_outside_the_window_are_forgotten() {
        let throttle = MemoryThrottle::new(settings());
        let keys = [ThrottleKey::account(Some("acme"), "a@x")];
        throttle.begin(&keys, t0()).unwrap();
        throttle.begin(&keys, t0()).unwrap();
        let late = add(t0(), secs(601));
        assert!(throttle.begin(&keys, late).unwrap().locked.is_empty());
        assert!(throttle.begin(&keys, late).unwrap().locked.is_empty());
    }

    #[test]
    fn success_clears_the_account_but_not_the_address() {
        let throttle = MemoryThrottle::new(settings());
        let ip = ThrottleKey::Address("192.0.2.7".parse().unwrap());
        let keys = [ThrottleKey::account(None, "a@x"), ip.clone()];
        throttle.begin(&keys, t0()).unwrap();
        throttle.begin(&keys, t0()).unwrap();
        let good = throttle.begin(&keys, t0()).unwrap();
        assert_eq!(
            good.locked.len(),
            1,
            "the third attempt would lock the account"
        );
        throttle.succeeded(&good, t0());
        // The account starts over; the address keeps its two failures.
        throttle.begin(&keys, t0()).unwrap();
        throttle.begin(&keys, t0()).unwrap();
        let last = throttle.begin(std::slice::from_ref(&ip), t0()).unwrap();
        assert_eq!(last.locked, vec![(ip.clone(), secs(60))]);
        assert!(throttle.begin(&[ip], t0()).is_err());
    }
}
