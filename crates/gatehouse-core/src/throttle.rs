//! Brute-force protection for password logins (the login page and the password grant).
//!
//! Attempts are counted per user name and per user name and client address. Past a few failures
//! every further attempt for that user waits longer (up to a few seconds) — from any address, so
//! a distributed guesser is slowed too. Only the pair (user, address) is ever locked, and only
//! for a while: an attacker can slow a victim's logins but never lock the victim out from the
//! victim's own address, failures for other user names never lock anyone out (behind a reverse
//! proxy every user shares an address; floods from one address meet the request rate limit
//! instead), and no lockout outlives `LOCKOUT_SECONDS`.
//!
//! An attempt is counted when it starts, before its password is checked, and forgiven when it
//! succeeds: a burst of parallel guesses cannot all pass the check before the first failure is
//! recorded. A locked attempt is answered exactly as a wrong password is (the caller still waits
//! for a password hash), so the answer never tells that the lock exists.
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
pub const PAIR_LOCKOUT_FAILURES: u32 = 10;
/// How long a lockout lasts, and how long failures are remembered.
pub const LOCKOUT_SECONDS: i64 = 900;
/// The map is swept of stale entries when it grows past this.
const SWEEP_ABOVE: usize = 10_000;

/// What to do with a login attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// How long the attempt waits before its answer.
    pub delay: Duration,
    /// Refuse it whatever the password: the pair is locked.
    pub locked: bool,
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

fn keys(user_name: &str, address: Option<IpAddr>) -> [String; 2] {
    let user = user_name.to_lowercase();
    let address = address.map(|a| a.to_string()).unwrap_or_default();
    [format!("user\0{user}"), format!("pair\0{user}\0{address}")]
}

impl LoginThrottle {
    /// Counts a login attempt at `now` as a failure until [`LoginThrottle::record_success`]
    /// forgives it, and says how to treat it given the failures before it.
    pub fn attempt(&self, user_name: &str, address: Option<IpAddr>, now: i64) -> Verdict {
        let [user, pair] = keys(user_name, address);
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if failures.len() > SWEEP_ABOVE {
            failures.retain(|_, f| now - f.last < LOCKOUT_SECONDS);
        }
        let mut count = |key: String| {
            let entry = failures.entry(key).or_insert(Failures {
                count: 0,
                last: now,
            });
            if now - entry.last >= LOCKOUT_SECONDS {
                entry.count = 0;
            }
            let before = entry.count;
            entry.count = entry.count.saturating_add(1);
            entry.last = now;
            before
        };
        let (user_failures, pair_failures) = (count(user), count(pair));
        let excess = user_failures.saturating_sub(FREE_FAILURES);
        let delay = if excess == 0 {
            0
        } else {
            (1u64 << excess.min(8)).min(MAX_DELAY_SECONDS)
        };
        Verdict {
            delay: Duration::from_secs(delay),
            locked: pair_failures >= PAIR_LOCKOUT_FAILURES,
        }
    }

    /// A successful login clears the user's counters.
    pub fn record_success(&self, user_name: &str, address: Option<IpAddr>) {
        let [user, pair] = keys(user_name, address);
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

    fn proceed(seconds: u64) -> Verdict {
        Verdict {
            delay: Duration::from_secs(seconds),
            locked: false,
        }
    }

    #[test]
    fn delays_grow_then_the_pair_locks_and_the_lock_expires() {
        let throttle = LoginThrottle::default();
        for _ in 0..4 {
            assert_eq!(throttle.attempt("alice", ATTACKER, 0), proceed(0));
        }
        assert_eq!(throttle.attempt("alice", ATTACKER, 0), proceed(2));
        for _ in 0..5 {
            assert!(!throttle.attempt("Alice", ATTACKER, 0).locked);
        }
        assert!(throttle.attempt("alice", ATTACKER, 0).locked);
        // The victim, from their own address, is slowed but not locked out.
        assert_eq!(throttle.attempt("alice", VICTIM, 0), proceed(4));
        // The lock ends.
        assert!(!throttle.attempt("alice", ATTACKER, LOCKOUT_SECONDS).locked);
    }

    #[test]
    fn a_burst_is_counted_before_any_of_it_is_checked() {
        // Thirty guesses arrive together; none has finished, so none was recorded as a failure
        // afterwards. Only the first ten may go on.
        let throttle = LoginThrottle::default();
        let verdicts: Vec<Verdict> = (0..30)
            .map(|_| throttle.attempt("carol", ATTACKER, 0))
            .collect();
        let unlocked = verdicts.iter().filter(|v| !v.locked).count();
        assert_eq!(unlocked, PAIR_LOCKOUT_FAILURES as usize);
    }

    #[test]
    fn failures_for_other_names_lock_nobody_out() {
        let throttle = LoginThrottle::default();
        for n in 0..500 {
            throttle.attempt(&format!("nobody{n}"), ATTACKER, 0);
        }
        assert_eq!(throttle.attempt("dave", ATTACKER, 0), proceed(0));
    }

    #[test]
    fn success_clears_the_user() {
        let throttle = LoginThrottle::default();
        for _ in 0..5 {
            throttle.attempt("bob", VICTIM, 0);
        }
        throttle.record_success("bob", VICTIM);
        assert_eq!(throttle.attempt("bob", VICTIM, 0), proceed(0));
    }
}
