//! Brute-force protection for password logins (the login page and the password grant).
//!
//! Failures are counted per user name, per user name and client address, and per client
//! address. Past a few failures every further attempt for that user waits longer (up to a few
//! seconds) — from any address, so a distributed guesser is slowed too. Only the pair
//! (user, address) and the address alone are ever locked, and only for a while: an attacker
//! can slow a victim's logins but never lock the victim out from the victim's own address, and
//! no lockout outlives `LOCKOUT_SECONDS`.
//!
//! The counters live in memory, per instance. The lock is a plain mutex held only while the
//! map is read or updated, never across an await.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

/// Failures allowed before attempts are delayed.
const FREE_FAILURES: u32 = 3;
/// The longest delay.
const MAX_DELAY_SECONDS: u64 = 4;
/// Failures of one user from one address before that pair is locked.
const PAIR_LOCKOUT_FAILURES: u32 = 10;
/// Failures from one address (over any users) before it is locked.
const ADDRESS_LOCKOUT_FAILURES: u32 = 50;
/// How long a lockout lasts, and how long failures are remembered.
pub const LOCKOUT_SECONDS: i64 = 900;
/// The map is swept of stale entries when it grows past this.
const SWEEP_ABOVE: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Go ahead after waiting this long.
    Proceed(Duration),
    /// Refuse without checking the password.
    Locked,
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: i64,
}

#[derive(Debug, Default)]
pub struct LoginThrottle {
    failures: Mutex<HashMap<String, Failures>>,
}

fn keys(user_name: &str, address: Option<IpAddr>) -> [String; 3] {
    let user = user_name.to_lowercase();
    let address = address.map(|a| a.to_string()).unwrap_or_default();
    [
        format!("user\0{user}"),
        format!("pair\0{user}\0{address}"),
        format!("addr\0{address}"),
    ]
}

impl LoginThrottle {
    /// What to do with a login attempt at `now`.
    pub fn check(&self, user_name: &str, address: Option<IpAddr>, now: i64) -> Verdict {
        let [user, pair, addr] = keys(user_name, address);
        let failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let count = |key: &str| {
            failures
                .get(key)
                .filter(|f| now - f.last < LOCKOUT_SECONDS)
                .map_or(0, |f| f.count)
        };
        if count(&pair) >= PAIR_LOCKOUT_FAILURES || count(&addr) >= ADDRESS_LOCKOUT_FAILURES {
            return Verdict::Locked;
        }
        let excess = count(&user).saturating_sub(FREE_FAILURES);
        let delay = if excess == 0 {
            0
        } else {
            (1u64 << excess.min(8)).min(MAX_DELAY_SECONDS)
        };
        Verdict::Proceed(Duration::from_secs(delay))
    }

    pub fn record_failure(&self, user_name: &str, address: Option<IpAddr>, now: i64) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if failures.len() > SWEEP_ABOVE {
            failures.retain(|_, f| now - f.last < LOCKOUT_SECONDS);
        }
        for key in keys(user_name, address) {
            let entry = failures.entry(key).or_insert(Failures {
                count: 0,
                last: now,
            });
            if now - entry.last >= LOCKOUT_SECONDS {
                entry.count = 0;
            }
            entry.count += 1;
            entry.last = now;
        }
    }

    /// A successful login clears the user's counters (the address keeps its own).
    pub fn record_success(&self, user_name: &str, address: Option<IpAddr>) {
        let [user, pair, _] = keys(user_name, address);
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        failures.remove(&user);
        failures.remove(&pair);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ATTACKER: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1)));
    const VICTIM: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2)));

    #[test]
    fn delays_grow_then_the_pair_locks_and_the_lock_expires() {
        let throttle = LoginThrottle::default();
        for _ in 0..3 {
            assert_eq!(
                throttle.check("alice", ATTACKER, 0),
                Verdict::Proceed(Duration::ZERO)
            );
            throttle.record_failure("alice", ATTACKER, 0);
        }
        throttle.record_failure("alice", ATTACKER, 0);
        assert_eq!(
            throttle.check("alice", ATTACKER, 0),
            Verdict::Proceed(Duration::from_secs(2))
        );
        for _ in 0..6 {
            throttle.record_failure("Alice", ATTACKER, 0);
        }
        assert_eq!(throttle.check("alice", ATTACKER, 0), Verdict::Locked);
        // The victim, from their own address, is slowed but not locked out.
        assert_eq!(
            throttle.check("alice", VICTIM, 0),
            Verdict::Proceed(Duration::from_secs(4))
        );
        // The lock ends.
        assert_eq!(
            throttle.check("alice", ATTACKER, LOCKOUT_SECONDS),
            Verdict::Proceed(Duration::ZERO)
        );
    }

    #[test]
    fn success_clears_the_user() {
        let throttle = LoginThrottle::default();
        for _ in 0..5 {
            throttle.record_failure("bob", VICTIM, 0);
        }
        throttle.record_success("bob", VICTIM);
        assert_eq!(
            throttle.check("bob", VICTIM, 0),
            Verdict::Proceed(Duration::ZERO)
        );
    }
}
