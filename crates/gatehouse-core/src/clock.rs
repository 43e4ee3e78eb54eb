//! Time, as the domain sees it: whole Unix seconds from one injectable source.

use std::time::{SystemTime, UNIX_EPOCH};

/// The source of "now". Tests use their own implementation to move across expiry without
/// sleeping.
pub trait Clock: Send + Sync {
    /// Seconds since the Unix epoch.
    fn now(&self) -> i64;

    /// Milliseconds since the Unix epoch, for what is ordered finer than a second.
    fn now_millis(&self) -> i64 {
        self.now() * 1000
    }
}

/// The wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)
    }

    fn now_millis(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    }
}

/// A clock that stands still until a test moves it, so expiry is crossed without sleeping.
#[cfg(test)]
#[derive(Debug)]
pub struct TestClock(std::sync::atomic::AtomicI64);

#[cfg(test)]
impl TestClock {
    pub fn at(now: i64) -> Self {
        TestClock(std::sync::atomic::AtomicI64::new(now))
    }

    pub fn set(&self, now: i64) {
        self.0.store(now, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn advance(&self, seconds: i64) {
        self.0
            .fetch_add(seconds, std::sync::atomic::Ordering::SeqCst);
    }
}

#[cfg(test)]
impl Clock for TestClock {
    fn now(&self) -> i64 {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}
