//! What every handler can reach.

use std::sync::Arc;

use gatehouse_core::cache::RegistryCache;
use gatehouse_core::dpop::Dpop;
use gatehouse_core::federation::Federation;
use gatehouse_core::forwarding::TrustedProxies;
use gatehouse_core::gateway::RouteExchanges;
use gatehouse_core::grant::GrantRegistry;
use gatehouse_core::logout::BackChannelLogout;
use gatehouse_core::registry::Registry;
use gatehouse_core::secret::Sealer;
use gatehouse_core::session::Sessions;
use gatehouse_core::store::Store;
use gatehouse_core::table::Tables;
use gatehouse_core::throttle::{ClientThrottle, LoginThrottle};
use gatehouse_core::token::TokenService;
use gatehouse_remote::backchannel::LogoutQueue;
use gatehouse_remote::fetch::Fetcher;
use gatehouse_remote::outbound::OutboundClient;

use crate::metrics::Metrics;
use crate::rate_limit::AddressLimiter;

/// Settings of the HTTP surface.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// How long relying parties may cache the JWKS (`Cache-Control: max-age`), in seconds.
    pub jwks_max_age: u64,
    /// Seconds an already rotated refresh token may still be rotated (concurrent retries).
    pub refresh_token_grace: i64,
    /// Whether the authorization endpoint takes only pushed requests (RFC 9126).
    pub require_pushed_authorization_requests: bool,
    /// Reverse proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: TrustedProxies,
    /// Seconds between scheduled rotations of the signing keys; `None` rotates them only when
    /// told to.
    pub key_rotation_interval: Option<i64>,
}

/// The parts of a running Gatehouse, opened once by the binary and shared by the HTTP surface,
/// the CLI and the background tasks.
#[derive(Clone)]
pub struct Services {
    pub store: Arc<dyn Store>,
    pub tokens: Arc<TokenService>,
    pub registry: Registry,
    pub sessions: Sessions,
    /// Seals the continuation of the login and consent forms.
    pub sealer: Arc<Sealer>,
    pub cache: Arc<RegistryCache>,
    /// Outbound OAuth: tokens for external APIs, and calls through connection aliases.
    pub outbound: Arc<OutboundClient>,
    /// The one outbound HTTP client (its connection pool shared by outbound OAuth and the
    /// gateway's upstreams).
    pub fetcher: Fetcher,
    /// Trusted JWT providers: assertions, client assertions, third-party tokens.
    pub federation: Arc<Federation>,
    /// The Table API's records.
    pub tables: Tables,
    /// Tells applications that a user signed out (back-channel logout).
    pub logout: BackChannelLogout,
    /// Where logout tokens wait for delivery.
    pub logout_queue: Arc<LogoutQueue>,
    /// DPoP proofs (RFC 9449) and the nonces they carry.
    pub dpop: Dpop,
}

/// What every handler can reach. axum clones the state for every request and every extractor
/// that takes it, so it is one shared pointer: cloning the parts themselves (the registry's and
/// the logout signer's keys among them) cost more than the work of a protected API call.
#[derive(Clone)]
pub struct AppState(Arc<AppParts>);

impl AppState {
    pub fn new(parts: AppParts) -> Self {
        Self(Arc::new(parts))
    }
}

impl std::ops::Deref for AppState {
    type Target = AppParts;

    fn deref(&self) -> &AppParts {
        &self.0
    }
}

/// The services, and what only the HTTP surface keeps.
pub struct AppParts {
    pub services: Services,
    pub grants: Arc<GrantRegistry>,
    pub throttle: Arc<LoginThrottle>,
    /// Guessing of client secrets.
    pub client_throttle: Arc<ClientThrottle>,
    pub metrics: Arc<Metrics>,
    pub settings: Arc<HttpSettings>,
    /// The request rate of each client address at the credential-checking endpoints; none when
    /// the limit is off.
    pub rate_limit: Option<Arc<AddressLimiter>>,
    /// The tokens gateway routes exchanged for their upstreams.
    pub route_exchanges: Arc<RouteExchanges>,
}
