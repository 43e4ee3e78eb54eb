//! Brute-force protection: for password logins (the login page and the password grant) and for
//! client secrets (client authentication at the token, introspection and revocation endpoints).
//!
//! Password attempts are counted per user name and per user name and client address. Past a few
//! failures every further attempt for that user waits longer (up to a few seconds) — from any
//! address, so a distributed guesser is slowed too. Only the pair (user, address) is ever locked,
//! and only for a while: an attacker can slow a victim's logins but never lock the victim out
//! from the victim's own address, failures for other user names never lock anyone out (behind a
//! reverse proxy every user shares an address; floods from one address meet the request rate
//! limit instead), and no lockout outlives `LOCKOUT_SECONDS`.
//!
//! At most as many attempts for a pair are in flight as it has failures left before its lock;
//! one more waits until one of them ends. So a burst of parallel guesses cannot all pass the
//! check before the first failure is recorded, while a burst of correct sign-ins (a service
//! using the password grant) only queues briefly. A locked attempt is answered exactly as a
//! wrong password is (the caller still waits for a password hash), so the answer never tells
//! that the lock exists.
//!
//! Client secrets are counted per client_id alone: a client's secret is its own, and one in
//! use by a service would otherwise be guessed from many addresses at once. A client_id with too
//! many recent failures is refused outright, whatever it presents, until its window has passed
//! (see [`ClientThrottle`]).
//!
//! The counters live in memory, per instance. The lock is a plain read-write lock held only
//! while the map is read or updated, never across an await.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
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
    /// The counter as of `now`: failures are forgotten once none came for `window` seconds.
    fn current(&mut self, now: i64, window: i64) -> &mut Self {
        if now - self.last >= window {
            self.failures = 0;
        }
        self
    }

    fn is_stale(&self, now: i64, window: i64) -> bool {
        self.in_flight == 0 && now - self.last >= window
    }
}

/// Counters by key, forgotten `window` seconds after their last failure.
#[derive(Debug)]
struct Counters {
    map: RwLock<HashMap<String, Counter>>,
    window: i64,
}

impl Counters {
    fn new(window: i64) -> Self {
        Counters {
            map: RwLock::default(),
            window,
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, HashMap<String, Counter>> {
        self.map.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The map for a change, swept of stale counters first when it has grown large, so keys
    /// that stop failing do not hold memory.
    fn write(&self, now: i64) -> RwLockWriteGuard<'_, HashMap<String, Counter>> {
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        if map.len() > SWEEP_ABOVE {
            map.retain(|_, c| !c.is_stale(now, self.window));
        }
        map
    }
}

#[derive(Debug)]
pub struct LoginThrottle {
    counters: Counters,
}

impl Default for LoginThrottle {
    fn default() -> Self {
        LoginThrottle {
            counters: Counters::new(LOCKOUT_SECONDS),
        }
    }
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
        let mut counters = self.counters.write(now);
        let user_failures = counters
            .entry(user)
            .or_default()
            .current(now, LOCKOUT_SECONDS)
            .failures;
        let pair = counters
            .entry(pair)
            .or_default()
            .current(now, LOCKOUT_SECONDS);
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
        let mut counters = self.counters.write(now);
        if let Some(pair) = counters.get_mut(&pair) {
            pair.in_flight = pair.in_flight.saturating_sub(1);
        }
        for key in [user, pair] {
            let counter = counters
                .entry(key)
                .or_default()
                .current(now, LOCKOUT_SECONDS);
            if succeeded {
                counter.failures = 0;
            } else {
                counter.failures = counter.failures.saturating_add(1);
                counter.last = now;
            }
        }
    }
}

/// How many wrong client secrets lock a client_id, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientLockout {
    /// Failures, each within `window_seconds` of the one before, that lock the client_id.
    pub failures: u32,
    /// How long failures are remembered, and how long a lock lasts after the last of them.
    pub window_seconds: u32,
}

impl Default for ClientLockout {
    fn default() -> Self {
        ClientLockout {
            failures: 10,
            window_seconds: 300,
        }
    }
}

/// Where a client_id stands before its secret is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// No failure on record: the common case, which costs one lookup.
    Clean,
    /// Some failures, not yet a lock.
    Failing,
    /// Refused whatever it presents, for this many more seconds.
    Locked { retry_after: u64 },
}

/// Guessing of client secrets, per client_id (whether or not an application has it, so a lock
/// does not tell which client_ids exist). A locked client_id is refused before its secret is
/// checked, so the refusal is the same for a right and a wrong secret; attempts during the lock
/// are not counted, so it ends when promised, `window_seconds` after the failure that caused it.
///
/// The check and the record of its outcome run without an await between them, so parallel
/// guesses overshoot the limit by at most one per thread checking at the same moment.
#[derive(Debug)]
pub struct ClientThrottle {
    counters: Counters,
    failures: u32,
}

impl ClientThrottle {
    pub fn new(policy: ClientLockout) -> Self {
        ClientThrottle {
            counters: Counters::new(i64::from(policy.window_seconds)),
            failures: policy.failures,
        }
    }

    pub fn standing(&self, client_id: &str, now: i64) -> Standing {
        let counters = self.counters.read();
        let Some(counter) = counters.get(client_id) else {
            return Standing::Clean;
        };
        let until = counter.last + self.counters.window;
        if counter.failures >= self.failures && now < until {
            Standing::Locked {
                retry_after: (until - now) as u64,
            }
        } else {
            Standing::Failing
        }
    }

    /// Records a wrong secret (or one presented for a client_id that has none).
    pub fn failed(&self, client_id: &str, now: i64) {
        let mut counters = self.counters.write(now);
        let counter = counters
            .entry(client_id.to_owned())
            .or_default()
            .current(now, self.counters.window);
        counter.failures = counter.failures.saturating_add(1);
        counter.last = now;
    }

    /// Forgets the failures of a client_id that has just authenticated.
    pub fn succeeded(&self, client_id: &str, now: i64) {
        self.counters.write(now).remove(client_id);
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

    fn client_throttle() -> ClientThrottle {
        ClientThrottle::new(ClientLockout {
            failures: 3,
            window_seconds: 60,
        })
    }

    #[test]
    fn a_client_id_locks_after_its_failures_until_the_window_has_passed() {
        let throttle = client_throttle();
        assert_eq!(throttle.standing("app", 0), Standing::Clean);
        for now in [0, 10, 20] {
            throttle.failed("app", now);
        }
        assert_eq!(
            throttle.standing("app", 20),
            Standing::Locked { retry_after: 60 }
        );
        assert_eq!(
            throttle.standing("app", 79),
            Standing::Locked { retry_after: 1 }
        );
        // Other client_ids go on.
        assert_eq!(throttle.standing("other", 20), Standing::Clean);
        // The lock ends when it said it would, and the next failure starts a new count.
        assert_eq!(throttle.standing("app", 80), Standing::Failing);
        throttle.failed("app", 80);
        assert_eq!(throttle.standing("app", 80), Standing::Failing);
    }

    #[test]
    fn failures_further_apart_than_the_window_never_lock() {
        let throttle = client_throttle();
        for n in 0..10 {
            throttle.failed("app", n * 60);
            assert_eq!(throttle.standing("app", n * 60), Standing::Failing);
        }
    }

    #[test]
    fn success_forgets_a_client_ids_failures() {
        let throttle = client_throttle();
        throttle.failed("app", 0);
        throttle.failed("app", 0);
        throttle.succeeded("app", 0);
        assert_eq!(throttle.standing("app", 0), Standing::Clean);
        throttle.failed("app", 0);
        throttle.failed("app", 0);
        assert_eq!(throttle.standing("app", 0), Standing::Failing);
    }
}
