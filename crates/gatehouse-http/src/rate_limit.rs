//! The request rate each client address may send to the endpoints that check credentials: the
//! token, introspection and revocation endpoints and the login form. A keyed GCRA (`governor`):
//! a check updates one entry of a sharded map and never waits, and a refused request is answered
//! before its body is read.
//!
//! The address is the one [`ClientAddress`] finds (the TCP peer, or the address a trusted proxy
//! forwarded for). An IPv6 client counts by its /64, the block one subscriber is given, so it
//! cannot step around the limit by changing addresses inside its own network. An address is
//! forgotten once its allowance is whole again ([`AddressLimiter::forget_idle`], run by the
//! server's upkeep every few seconds), so a flood of distinct addresses holds memory only briefly.
//! The state lives in memory, per instance.

use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use gatehouse_core::Error;
use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota};

use crate::error::OAuthError;
use crate::extract::ClientAddress;
use crate::state::AppState;

/// Requests per second one client address may send, and how many it may send at once after a
/// quiet while.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub per_second: NonZeroU32,
    pub burst: NonZeroU32,
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit {
            per_second: NonZeroU32::new(50).expect("not zero"),
            burst: NonZeroU32::new(100).expect("not zero"),
        }
    }
}

pub struct AddressLimiter {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
}

impl AddressLimiter {
    pub fn new(limit: RateLimit) -> Self {
        AddressLimiter {
            limiter: DefaultKeyedRateLimiter::dashmap(
                Quota::per_second(limit.per_second).allow_burst(limit.burst),
            ),
        }
    }

    /// Counts a request from `address`: `Err` with the seconds to wait when it is over the limit.
    pub fn check(&self, address: IpAddr) -> Result<(), u64> {
        self.limiter.check_key(&key(address)).map_err(|refused| {
            let wait = refused.wait_time_from(self.limiter.clock().now());
            // Retry-After is in whole seconds: rounded up, so a client that waits as told is let in.
            (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
        })
    }

    /// Forgets the addresses whose allowance is whole again: they would start afresh anyway.
    pub fn forget_idle(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

/// What an address is counted as: itself, or for IPv6 its /64.
fn key(address: IpAddr) -> IpAddr {
    match address.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() & !u128::from(u64::MAX))),
        v4 => v4,
    }
}

/// Middleware of the credential-checking routes: over the limit is `429` with `Retry-After`.
pub async fn limit(
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
    request: Request,
    next: Next,
) -> Response {
    if let (Some(limiter), Some(address)) = (&state.rate_limit, address)
        && let Err(retry_after) = limiter.check(address)
    {
        return OAuthError(Error::Throttled { retry_after }).into_response();
    }
    // The body's limit in the same layer: each layer costs every request a boxed future and a
    // clone of the route behind it, and these are the token endpoint's.
    crate::extract::limit_body(request, next).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(per_second: u32, burst: u32) -> AddressLimiter {
        AddressLimiter::new(RateLimit {
            per_second: NonZeroU32::new(per_second).unwrap(),
            burst: NonZeroU32::new(burst).unwrap(),
        })
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn a_burst_passes_then_the_address_waits_and_others_do_not() {
        let limiter = limit(1, 3);
        for _ in 0..3 {
            assert_eq!(limiter.check(ip("192.0.2.1")), Ok(()));
        }
        assert_eq!(limiter.check(ip("192.0.2.1")), Err(1));
        assert_eq!(limiter.check(ip("192.0.2.2")), Ok(()));
        // The IPv4-mapped spelling is the same client.
        assert_eq!(limiter.check(ip("::ffff:192.0.2.1")), Err(1));
    }

    #[test]
    fn an_ipv6_client_counts_by_its_64() {
        let limiter = limit(1, 1);
        assert_eq!(limiter.check(ip("2001:db8:1:2::1")), Ok(()));
        assert!(
            limiter
                .check(ip("2001:db8:1:2:ffff:ffff:ffff:ffff"))
                .is_err()
        );
        assert_eq!(limiter.check(ip("2001:db8:1:3::1")), Ok(()));
    }

    #[test]
    fn idle_addresses_are_forgotten() {
        // Each allowance is whole again a millisecond after its one request.
        let limiter = limit(1000, 1);
        for n in 0..=255u8 {
            limiter.check(IpAddr::from([198, 51, 100, n])).unwrap();
        }
        assert_eq!(limiter.limiter.len(), 256);
        std::thread::sleep(std::time::Duration::from_millis(20));
        limiter.forget_idle();
        assert!(limiter.limiter.is_empty());
    }
}
