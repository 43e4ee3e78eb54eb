//! Wiring: opening the store and the master key, first-start bootstrap, and `serve` with its
//! background maintenance and graceful shutdown.

use std::future::Future;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::extract::ConnectInfo;
use axum::http::Request;
use gatehouse_core::audit::Actor;
use gatehouse_core::cache::RegistryCache;
use gatehouse_core::clock::{Clock, SystemClock};
use gatehouse_core::dpop::Dpop;
use gatehouse_core::federation::Federation;
use gatehouse_core::gateway::RouteExchanges;
use gatehouse_core::grant::GrantRegistry;
use gatehouse_core::logout::BackChannelLogout;
use gatehouse_core::manifest::{Action, ApplyOptions, Change};
use gatehouse_core::outbound::OutboundRegistry;
use gatehouse_core::registry::{NewUser, Registry, UserChanges};
use gatehouse_core::secret::{self, MasterKey, Secret};
use gatehouse_core::session::Sessions;
use gatehouse_core::store::Store;
use gatehouse_core::table::Tables;
use gatehouse_core::throttle::{ClientThrottle, LoginThrottle};
use gatehouse_core::token::TokenService;
use gatehouse_http::metrics::Metrics;
use gatehouse_http::{AddressLimiter, AppParts, AppState, HttpSettings};
use gatehouse_remote::backchannel::{DeliveryPolicy, LogoutQueue};
use gatehouse_remote::fetch::{Fetcher, Limits};
use gatehouse_remote::jwks::{KeyCache, KeyCachePolicy};
use gatehouse_remote::outbound::OutboundClient;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tower::ServiceExt as _;

use crate::config::{ConnectionLimits, Settings};

/// The environment variable that may hold the master key (base64 of 32 bytes). Instances that
/// share a PostgreSQL database must share it.
pub const MASTER_KEY_VAR: &str = "GATEHOUSE_MASTER_KEY";
/// The environment variable that may fix the bootstrap administrator's password.
pub const ADMIN_PASSWORD_VAR: &str = "GATEHOUSE_ADMIN_PASSWORD";

pub use gatehouse_http::Services;

/// Opens the services every command works through: the store (migrated), the master key, the
/// registry, the token service with its keys and revocations loaded, and the outbound clients.
pub async fn open_services(settings: &Settings) -> anyhow::Result<Services> {
    std::fs::create_dir_all(&settings.data_dir).with_context(|| {
        format!(
            "cannot create the data directory {}",
            settings.data_dir.display()
        )
    })?;
    let master_key = load_master_key(&settings.data_dir)?;
    let location = gatehouse_store::Location::parse(&settings.database);
    let shown = location
        .as_ref()
        .map_or_else(|_| settings.database.clone(), ToString::to_string);
    if let Ok(gatehouse_store::Location::Sqlite(path)) = location
        && !path.exists()
    {
        // Most often a mistyped --data-dir: say so before a new, empty registry appears.
        tracing::warn!("no database at {shown}: creating a new one");
    }
    let store = gatehouse_store::open(&settings.database, settings.durability)
        .await
        .with_context(|| format!("cannot open the database {shown}"))?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let cache = Arc::new(RegistryCache::new(clock.clone()));
    let registry = Registry::new(
        store.clone(),
        master_key.secret_hasher(),
        cache.clone(),
        clock.clone(),
    );
    let sessions = Sessions::new(store.clone(), master_key.secret_hasher(), clock.clone());
    let sealer = Arc::new(master_key.sealer());
    // One HTTP client (connection pool, TLS setup) for everything fetched from elsewhere.
    let fetcher = Fetcher::new(Limits::default())?;
    let tables = Tables::new(store.clone(), clock.clone());
    let outbound = Arc::new(OutboundClient::new(
        OutboundRegistry::new(store.clone(), sealer.clone(), clock.clone()),
        fetcher.clone(),
    ));
    let dpop = Dpop::new(
        settings.issuer.clone(),
        store.clone(),
        &master_key,
        clock.clone(),
        settings.require_dpop_nonce,
    );
    let tokens = Arc::new(TokenService::new(
        settings.issuer.clone(),
        settings.signing_alg,
        store.clone(),
        master_key,
        cache.clone(),
        clock,
    ));
    tokens.reload_keys().await?;
    tokens.reload_revocations().await?;
    let logout_queue = Arc::new(LogoutQueue::start(
        fetcher.clone(),
        DeliveryPolicy::default(),
    ));
    let logout = BackChannelLogout::new(store.clone(), tokens.clone(), logout_queue.clone());
    let registry = registry.with_backchannel_logout(logout.clone());
    let key_cache = KeyCache::new(
        fetcher.clone(),
        KeyCachePolicy {
            min_refresh_interval: settings.jwks_min_refresh_interval,
            ..KeyCachePolicy::default()
        },
    );
    let federation = Arc::new(Federation::new(
        store.clone(),
        tokens.clone(),
        cache.clone(),
        Arc::new(key_cache),
    ));
    Ok(Services {
        federation,
        store,
        tokens,
        registry,
        sessions,
        sealer,
        cache,
        outbound,
        fetcher,
        tables,
        logout,
        logout_queue,
        dpop,
    })
}

/// Reads the master key from the environment, or from `master.key` in the data directory;
/// `None` when there is neither.
pub fn existing_master_key(data_dir: &Path) -> anyhow::Result<Option<MasterKey>> {
    if let Ok(value) = std::env::var(MASTER_KEY_VAR) {
        return MasterKey::decode(&value)
            .map(Some)
            .with_context(|| format!("invalid {MASTER_KEY_VAR}"));
    }
    let path = data_dir.join("master.key");
    match std::fs::read_to_string(&path) {
        Ok(text) => MasterKey::decode(&text)
            .map(Some)
            .with_context(|| format!("invalid key in {}", path.display())),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// The master key (see [`existing_master_key`]), creating `master.key` (readable by its owner
/// only) on the very first start.
fn load_master_key(data_dir: &Path) -> anyhow::Result<MasterKey> {
    match existing_master_key(data_dir)? {
        Some(key) => Ok(key),
        None => {
            let path = data_dir.join("master.key");
            let key = MasterKey::generate();
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options
                .open(&path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            writeln!(file, "{}", key.encode())?;
            Ok(key)
        }
    }
}

/// On the first start of an empty registry: creates the `admin` user, with the password from
/// `GATEHOUSE_ADMIN_PASSWORD` or a generated one printed once. Returns the generated password.
pub async fn bootstrap_admin(services: &Services) -> anyhow::Result<Option<Secret>> {
    if !services.registry.list_users().await?.is_empty() {
        return Ok(None);
    }
    let (password, generated) = match std::env::var(ADMIN_PASSWORD_VAR) {
        Ok(value) => (Secret::new(value), false),
        Err(_) => (Secret::new(secret::generate()), true),
    };
    let admin = NewUser {
        user_name: "admin".into(),
        password: Some(password.clone()),
        fields: UserChanges {
            display_name: Some("Administrator".into()),
            roles: Some(vec!["admin".into()]),
            ..UserChanges::default()
        },
    };
    match services.registry.create_user(admin, false).await {
        Ok(_) => Ok(generated.then_some(password)),
        // Another instance starting on the same empty database created it first; its password
        // is the one that was shown.
        Err(gatehouse_core::Error::Conflict(_)) => Ok(None),
        Err(error) => Err(error.into()),
    }
}

/// Runs the server on `listener` until `shutdown` resolves, then lets in-flight requests finish.
pub async fn serve(
    settings: Settings,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let services = open_services(&settings).await?;
    serve_with(services, settings, listener, shutdown).await
}

/// Runs the server with services already opened (tests share them with the server).
pub async fn serve_with(
    services: Services,
    settings: Settings,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    services.tokens.ensure_signing_keys().await?;
    if let Some(password) = bootstrap_admin(&services).await? {
        // Printed, never logged: logs must not hold secrets.
        eprintln!(
            "Created the administrator \"admin\". Its password, shown only this once: {}",
            password.expose()
        );
    }
    if settings.registry != Default::default() {
        let env = |name: &str| std::env::var(name).ok();
        let apply = Actor::operator("apply");
        let changes = settings
            .registry
            .apply(
                &services.registry.as_actor(apply.clone()),
                &services.outbound.registry().as_actor(apply),
                ApplyOptions::default(),
                &env,
            )
            .await
            .context("cannot apply the registry sections of the configuration file")?;
        report_changes(&changes);
    }
    // The background tasks are owned here: however this function returns, dropping the set
    // stops them.
    let mut background = JoinSet::new();
    // Other instances' registry changes reach this instance's caches at once.
    if let Some(mut notices) = services.store.subscribe_changes().await? {
        let tokens = services.tokens.clone();
        background.spawn(async move {
            while let Some(notice) = notices.recv().await {
                if let Err(error) = tokens.apply_notice(&notice).await {
                    tracing::warn!(%error, "applying a change notice failed");
                }
            }
        });
    }
    let rate_limit = settings
        .rate_limit
        .map(|limit| Arc::new(AddressLimiter::new(limit)));
    let rotation_interval = settings
        .key_rotation_interval
        .map(|interval| i64::try_from(interval.as_secs()).unwrap_or(i64::MAX));
    background.spawn(maintain(
        services.store.clone(),
        services.tokens.clone(),
        rate_limit.clone(),
        KeySchedule {
            reload_interval: settings.key_reload_interval,
            rotation_interval,
            activation_delay: i64::try_from(settings.jwks_max_age).unwrap_or(i64::MAX),
        },
        settings.audit_retention,
    ));
    let state = AppState::new(AppParts {
        services: services.clone(),
        grants: Arc::new(GrantRegistry::standard()),
        throttle: Arc::new(LoginThrottle::default()),
        client_throttle: Arc::new(ClientThrottle::new(settings.client_lockout)),
        metrics: Arc::new(Metrics::new(services.tokens.clone())),
        settings: Arc::new(HttpSettings {
            jwks_max_age: settings.jwks_max_age,
            refresh_token_grace: settings.refresh_token_grace,
            require_pushed_authorization_requests: settings.require_pushed_authorization_requests,
            trusted_proxies: settings.trusted_proxies.clone(),
            key_rotation_interval: rotation_interval,
        }),
        rate_limit,
        route_exchanges: Arc::new(RouteExchanges::new(Arc::new(SystemClock))),
    });
    tracing::info!(
        address = %listener.local_addr()?,
        issuer = %settings.issuer,
        database = services.store.backend_name(),
        "gatehouse is serving"
    );
    let app = gatehouse_http::router(state);
    accept(listener, app, settings.connections, shutdown).await;
    background.shutdown().await;
    tracing::info!("gatehouse stopped");
    Ok(())
}

/// Serves HTTP/1 connections until `shutdown` resolves, then lets in-flight requests finish.
/// At most `limits.max_connections` are served at once: the next waits in the listen backlog,
/// and the request-head timeout closes idle and slow connections, so a flood of connections
/// cannot hold every slot for long.
async fn accept(
    listener: TcpListener,
    app: axum::Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        // A request head that does not fit the read buffer is answered with 431.
        .max_buf_size(limits.max_header_bytes);
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            () = &mut shutdown => break,
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
        };
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors, or a connection reset before it was accepted:
                    // the next accept may succeed.
                    tracing::warn!(%error, "accepting a connection failed");
                    continue;
                }
            },
        };
        let service = app
            .clone()
            .map_request(move |mut request: Request<Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                request
            });
        let connection = graceful
            .watch(http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service)));
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, %peer, "connection closed with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Prints what applying the registry changed; generated secrets go to the terminal once.
pub fn report_changes(changes: &[Change]) {
    for change in changes {
        let action = match change.action {
            Action::Create => "created",
            Action::Update => "updated",
            Action::Delete => "deleted",
        };
        tracing::info!(kind = change.kind, key = %change.key, fields = ?change.fields, "registry {action}");
        if let Some(secret) = &change.generated_secret {
            eprintln!(
                "Generated the client secret of {} {}, shown only this once: {secret}",
                change.kind, change.key
            );
        }
    }
}

/// When the upkeep task looks at the signing keys, and whether it rotates them.
struct KeySchedule {
    reload_interval: Duration,
    /// Seconds between rotations; `None` rotates only when told to.
    rotation_interval: Option<i64>,
    /// Seconds a scheduled key is published before it signs (relying parties' JWKS cache).
    activation_delay: i64,
}

/// Background upkeep: picks up keys rotated elsewhere and rotates them when they are due,
/// deletes expired tokens and audit events past their retention so the tables stay bounded
/// without a separate janitor, and forgets
/// client addresses the rate limit no longer needs to remember.
async fn maintain(
    store: Arc<dyn Store>,
    tokens: Arc<TokenService>,
    rate_limit: Option<Arc<AddressLimiter>>,
    keys: KeySchedule,
    audit_retention: Option<i64>,
) {
    const PURGE_INTERVAL: Duration = Duration::from_secs(600);
    // An address is remembered until the first sweep after its allowance is whole again (a
    // burst's worth of requests after its last one), so a flood of distinct addresses holds at
    // most what arrives in a few seconds.
    const FORGET_INTERVAL: Duration = Duration::from_secs(5);
    let mut tick = tokio::time::interval(keys.reload_interval);
    let mut forget = tokio::time::interval(FORGET_INTERVAL);
    let mut last_purge: Option<std::time::Instant> = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = forget.tick() => {
                if let Some(limiter) = &rate_limit {
                    limiter.forget_idle();
                }
                continue;
            }
        }
        if let Err(error) = tokens.reload_keys().await {
            tracing::warn!(%error, "reloading signing keys failed");
        }
        if let Some(interval) = keys.rotation_interval
            && let Err(error) = tokens
                .rotate_due_keys(interval, keys.activation_delay)
                .await
        {
            tracing::warn!(%error, "rotating signing keys on schedule failed");
        }
        if let Err(error) = tokens.reload_revocations().await {
            tracing::warn!(%error, "reloading revoked tokens failed");
        }
        if last_purge.is_none_or(|at| at.elapsed() >= PURGE_INTERVAL) {
            last_purge = Some(std::time::Instant::now());
            purge(&*store, tokens.clock().now(), audit_retention).await;
        }
    }
}

/// Deletes expired tokens, and audit events older than `audit_retention` seconds (if any).
pub async fn purge(store: &dyn Store, now: i64, audit_retention: Option<i64>) {
    match store.purge_expired(now).await {
        Ok(purged) if purged > 0 => tracing::info!(purged, "expired tokens deleted"),
        Ok(_) => {}
        Err(error) => tracing::warn!(%error, "purging expired tokens failed"),
    }
    if let Some(retention) = audit_retention {
        match store.prune_audit(now.saturating_sub(retention)).await {
            Ok(pruned) if pruned > 0 => tracing::info!(pruned, "old audit events deleted"),
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "pruning audit events failed"),
        }
    }
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}
