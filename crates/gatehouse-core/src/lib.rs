//! The domain of Gatehouse: the OAuth 2.0 rules, the Application Registry, grants, tokens and
//! signing keys.
//!
//! Invariant: this crate does no IO of its own. It reaches the world only through the ports it
//! declares — [`store::Store`] for persistence and [`clock::Clock`] for time — and it names no
//! web framework, SQL driver or HTTP client, so every rule here can be tested without a socket.
//! Blocking work (Argon2) is moved off the async threads with `tokio::task::spawn_blocking`.

pub mod access;
pub mod audience;
pub mod audit;
pub mod authorize;
pub mod cache;
pub mod client;
pub mod client_auth;
pub mod clock;
pub mod device;
pub mod dpop;
pub mod entry;
pub mod error;
pub mod federation;
pub mod forwarding;
pub mod gateway;
pub mod grant;
pub mod held;
pub mod inspection;
pub mod keys;
pub mod login;
pub mod logout;
pub mod manifest;
pub mod outbound;
pub mod path;
pub mod pkce;
pub mod pushed;
pub mod registry;
pub mod remote;
pub mod resource;
pub mod scope;
pub mod secret;
pub mod session;
pub mod store;
pub mod table;
pub mod throttle;
pub mod token;
pub mod user;

pub use error::Error;
