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
//! At most as many attempts for a pair are in flight as it has failures left before its lock;
//! one more waits until one of them ends. So a burst of parallel guesses cannot all pass the
//! check before the first failure is recorded, while a burst of correct sign-ins (a service
//! using the password grant) only queues briefly. A locked attempt is answered exactly as a
//! wrong password is (the caller still waits for a password hash), so the answer never tells
//! that the lock exists.
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

/// What to do with an admitted login attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// How long the attempt waits before its answer.
    pub delay: Duration,
    /// Refuse it whatever the password: the pair is locked.
    pub locked: bool,
}

/// Whether an attempt may start now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Go(Verdict),
    /// As many attempts for this pair are in flight as it has failures left: try again shortly.
    Wait,
}

#[derive(Debug, Clone, Copy, Default)]
struct Counter {
    failures: u32,
    in_flight: u32,
    last: i64,
}

impl Counter {
    fn current(&mut self, now: i64) -> &mut Self {
        if now - self.last >= LOCKOUT_SECONDS {
            self.failures = 0;
        }
        self
    }
}

#[derive(Debug, Default)]
pub struct LoginThrottle {
    counters: Mutex<HashMap<String, Counter>>,
}

fn keys(user_name: &str, address: Option<IpAddr>) -> [String; 2] {
    let user = user_name.to_lowercase();
    let address = address.map(|a| a.to_string()).unwrap_or_default();
    [format!("user\0{user}"), format!("pair\0{user}\0{address}")]
}

impl LoginThrottle {
    /// Admits a login attempt at `now`, or asks it to wait. An admitted attempt must be ended
    /// with [`LoginThrottle::finish`].
    pub fn attempt(&self, user_name: &str, address: Option<IpAddr>, now: i64) -> Admission {
        let [user, pair] = keys(user_name, address);
        let mut counters = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        if counters.len() > SWEEP_ABOVE {
            counters.retain(|_, c| c.in_flight > 0 || now - c.last < LOCKOUT_SECONDS);
        }
        let user_failures = counters.entry(user).or_default().current(now).failures;
        let pair = counters.entry(pair).or_default().current(now);
        let locked = pair.failures >= PAIR_LOCKOUT_FAILURES;
        if !locked && pair.failures + pair.in_flight >= PAIR_LOCKOUT_FAILURES {
            return Admission::Wait;
        }
        pair.in_flight += 1;
        pair.last = now;
        let excess = user_failures.saturating_sub(FREE_FAILURES);
        let delay = if excess == 0 {
            0
        } else {
            (1u64 << excess.min(8)).min(MAX_DELAY_SECONDS)
        };
        Admission::Go(Verdict {
            delay: Duration::from_secs(delay),
            locked,
        })
    }

    /// Ends an admitted attempt: a success clears the user's failures, anything else (a wrong
    /// password, a locked or abandoned attempt) adds one.
    pub fn finish(&self, user_name: &str, address: Option<IpAddr>, now: i64, succeeded: bool) {
        let [user, pair] = keys(user_name, address);
        let mut counters = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(pair) = counters.get_mut(&pair) {
            pair.in_flight = pair.in_flight.saturating_sub(1);
        }
        for key in [user, pair] {
            let counter = counters.entry(key).or_default().current(now);
            if succeeded {
                counter.failures = 0;
            } else {
                counter.failures = counter.failures.saturating_add(1);
                counter.last = now;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ATTACKER: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1)));
    const VICTIM: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2)));

    fn go(seconds: u64, locked: bool) -> Admission {
        Admission::Go(Verdict {
            delay: Duration::from_secs(seconds),
            locked,
        })
    }

    /// One whole attempt that fails.
    fn fail(throttle: &LoginThrottle, user: &str, address: Option<IpAddr>, now: i64) -> Admission {
        let admission = throttle.attempt(user, address, now);
        throttle.finish(user, address, now, false);
        admission
    }

    #[test]
    fn delays_grow_then_the_pair_locks_and_the_lock_expires() {
        let throttle = LoginThrottle::default();
        for _ in 0..4 {
            assert_eq!(fail(&throttle, "alice", ATTACKER, 0), go(0, false));
        }
        assert_eq!(fail(&throttle, "alice", ATTACKER, 0), go(2, false));
        for _ in 0..5 {
            assert_eq!(fail(&throttle, "Alice", ATTACKER, 0), go(4, false));
        }
        assert_eq!(throttle.attempt("alice", ATTACKER, 0), go(4, true));
        // The victim, from their own address, is slowed but not locked out.
        assert_eq!(throttle.attempt("alice", VICTIM, 0), go(4, false));
        // The lock ends.
        assert_eq!(
            throttle.attempt("alice", ATTACKER, LOCKOUT_SECONDS),
            go(0, false)
        );
    }

    #[test]
    fn a_burst_waits_for_the_attempts_in_flight() {
        // Thirty guesses arrive together: ten go on, the rest wait; once the ten failed, the
        // pair is locked and no guess is checked any more.
        let throttle = LoginThrottle::default();
        let admissions: Vec<Admission> = (0..30)
            .map(|_| throttle.attempt("carol", ATTACKER, 0))
            .collect();
        let started = admissions.iter().filter(|a| **a != Admission::Wait).count();
        assert_eq!(started, PAIR_LOCKOUT_FAILURES as usize);
        for _ in 0..started {
            throttle.finish("carol", ATTACKER, 0, false);
        }
        assert!(matches!(
            throttle.attempt("carol", ATTACKER, 0),
            Admission::Go(Verdict { locked: true, .. })
        ));
    }

    #[test]
    fn a_burst_of_successes_never_locks() {
        let throttle = LoginThrottle::default();
        for _ in 0..100 {
            let started: Vec<Admission> = (0..16)
                .map(|_| throttle.attempt("svc", VICTIM, 0))
                .filter(|a| *a != Admission::Wait)
                .collect();
            assert!(started.iter().all(|a| *a == go(0, false)));
            for _ in &started {
                throttle.finish("svc", VICTIM, 0, true);
            }
        }
    }

    #[test]
    fn failures_for_other_names_lock_nobody_out() {
        let throttle = LoginThrottle::default();
        for n in 0..500 {
            fail(&throttle, &format!("nobody{n}"), ATTACKER, 0);
        }
        assert_eq!(throttle.attempt("dave", ATTACKER, 0), go(0, false));
    }

    #[test]
    fn success_clears_the_user() {
        let throttle = LoginThrottle::default();
        for _ in 0..5 {
            fail(&throttle, "bob", VICTIM, 0);
        }
        throttle.attempt("bob", VICTIM, 0);
        throttle.finish("bob", VICTIM, 0, true);
        assert_eq!(throttle.attempt("bob", VICTIM, 0), go(0, false));
    }
}
