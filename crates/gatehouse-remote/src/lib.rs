//! Gatehouse as an HTTP client. Everything the server fetches from other servers goes through
//! [`fetch::Fetcher`], which bounds the time and size of every exchange, follows no redirects
//! and speaks plain HTTP only to loopback addresses. [`outbound`] obtains tokens from external
//! OAuth providers and calls APIs through connection aliases with them; [`forward`] is the
//! gateway's streaming exchange with upstream services, on the same client. [`jwks::KeyCache`]
//! fetches and caches the keys of trusted issuers for the domain's federation.
//! [`backchannel::LogoutQueue`] delivers back-channel logout tokens to applications.

pub mod backchannel;
pub mod fetch;
pub mod forward;
pub mod jwks;
pub mod outbound;
