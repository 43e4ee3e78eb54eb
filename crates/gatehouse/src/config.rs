//! Settings: built-in defaults, overridden by the optional TOML file, overridden by
//! `GATEHOUSE_*` environment variables, overridden by flags. clap resolves flag-over-environment;
//! [`Settings::resolve`] puts the file and the defaults under them.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use gatehouse_core::forwarding::TrustedProxies;
use gatehouse_core::keys::SigningAlgorithm;
use gatehouse_core::manifest::Manifest;
use gatehouse_core::throttle::ClientLockout;
use gatehouse_http::RateLimit;
use gatehouse_store::Durability;
use serde::{Deserialize, Serialize};

/// Options every subcommand accepts.
#[derive(Debug, Clone, Default, Args)]
pub struct GlobalArgs {
    /// The folder for the SQLite database and the master key file.
    #[arg(long, global = true, env = "GATEHOUSE_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// The database: sqlite://PATH (a relative PATH is in the data dir) or
    /// postgres://USER@HOST/DB (default: sqlite://gatehouse.db, in the data dir).
    #[arg(
        long,
        global = true,
        env = "GATEHOUSE_DATABASE_URL",
        value_name = "URL"
    )]
    pub database: Option<String>,
    /// A TOML configuration file (see gatehouse.example.toml).
    #[arg(long, global = true, env = "GATEHOUSE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Log format.
    #[arg(long, global = true, env = "GATEHOUSE_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// Log filter, e.g. info or gatehouse=debug,info.
    #[arg(
        long,
        global = true,
        env = "GATEHOUSE_LOG_LEVEL",
        value_name = "FILTER"
    )]
    pub log_level: Option<String>,
}

/// Options of `gatehouse serve`.
#[derive(Debug, Clone, Default, Args)]
pub struct ServeArgs {
    /// The address to listen on.
    #[arg(long, env = "GATEHOUSE_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// The issuer URL tokens name and discovery announces (default: http://LISTEN).
    #[arg(long, env = "GATEHOUSE_ISSUER", value_name = "URL")]
    pub issuer: Option<String>,
    /// Seconds relying parties may cache the JWKS; also the default key activation delay.
    #[arg(long, env = "GATEHOUSE_JWKS_MAX_AGE", value_name = "SECONDS")]
    pub jwks_max_age: Option<u64>,
    /// The algorithm of the first signing key.
    #[arg(long, env = "GATEHOUSE_SIGNING_ALG", value_name = "ALG")]
    pub signing_alg: Option<String>,
    /// `process` (a write survives a crash of the server) or `full` (also a power loss).
    #[arg(long, env = "GATEHOUSE_DURABILITY", value_enum)]
    pub durability: Option<DurabilitySetting>,
    /// Seconds a rotated refresh token presented again gets its first answer again (a client
    /// that lost it); 0 = every reuse revokes the family.
    #[arg(long, env = "GATEHOUSE_REFRESH_TOKEN_GRACE", value_name = "SECONDS")]
    pub refresh_token_grace: Option<u32>,
    /// Rotate the signing keys on schedule, every SECONDS (at least 60): each new key is
    /// published at once and signs after jwks_max_age. Off (0) by default.
    #[arg(long, env = "GATEHOUSE_KEY_ROTATION_INTERVAL", value_name = "SECONDS")]
    pub key_rotation_interval: Option<u32>,
    /// Accept authorization requests only as pushed requests (RFC 9126), every client's.
    #[arg(
        long,
        env = "GATEHOUSE_REQUIRE_PUSHED_AUTHORIZATION_REQUESTS",
        value_name = "BOOL"
    )]
    pub require_pushed_authorization_requests: Option<bool>,
    /// Require every DPoP proof (RFC 9449) to carry a nonce this server issued, at the token
    /// endpoint and the APIs alike.
    #[arg(long, env = "GATEHOUSE_REQUIRE_DPOP_NONCE", value_name = "BOOL")]
    pub require_dpop_nonce: Option<bool>,
    /// Seconds audit events are kept before the server's upkeep deletes them (default 90
    /// days); 0 keeps them for ever.
    #[arg(long, env = "GATEHOUSE_AUDIT_RETENTION", value_name = "SECONDS")]
    pub audit_retention: Option<u32>,
    /// Seconds between two fetches of one identity provider's keys (at least; also the least
    /// time fetched keys are kept).
    #[arg(
        long,
        env = "GATEHOUSE_JWKS_MIN_REFRESH_INTERVAL",
        value_name = "SECONDS"
    )]
    pub jwks_min_refresh_interval: Option<u32>,
    /// Reverse proxies (addresses or CIDR networks, comma-separated) whose X-Forwarded-For is
    /// believed.
    #[arg(
        long,
        env = "GATEHOUSE_TRUSTED_PROXIES",
        value_name = "ADDRS",
        value_delimiter = ','
    )]
    pub trusted_proxies: Option<Vec<String>>,
    /// Seconds a connection may take to send a request's complete headers before it is closed.
    #[arg(long, env = "GATEHOUSE_HEADER_READ_TIMEOUT", value_name = "SECONDS")]
    pub header_read_timeout: Option<u32>,
    /// The largest request line and headers, together, in bytes (at least 8192); larger is 431.
    #[arg(long, env = "GATEHOUSE_MAX_HEADER_BYTES", value_name = "BYTES")]
    pub max_header_bytes: Option<usize>,
    /// The most connections served at once; more wait to be accepted until one closes.
    #[arg(long, env = "GATEHOUSE_MAX_CONNECTIONS", value_name = "N")]
    pub max_connections: Option<usize>,
    /// Wrong client secrets for one client_id that lock it (each within the window of the last).
    #[arg(long, env = "GATEHOUSE_CLIENT_LOCKOUT_FAILURES", value_name = "N")]
    pub client_lockout_failures: Option<u32>,
    /// Seconds wrong client secrets are remembered, and a locked client_id stays locked.
    #[arg(long, env = "GATEHOUSE_CLIENT_LOCKOUT_SECONDS", value_name = "SECONDS")]
    pub client_lockout_seconds: Option<u32>,
    /// Requests per second each client address may send to the token, introspection,
    /// revocation and login endpoints; 0 turns the limit off.
    #[arg(long, env = "GATEHOUSE_RATE_LIMIT_PER_SECOND", value_name = "N")]
    pub rate_limit_per_second: Option<u32>,
    /// How many of those requests an address may send at once after a quiet while.
    #[arg(long, env = "GATEHOUSE_RATE_LIMIT_BURST", value_name = "N")]
    pub rate_limit_burst: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DurabilitySetting {
    #[default]
    Process,
    Full,
}

/// The settings part of the TOML file; every key is documented in gatehouse.example.toml.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FileSettings {
    pub listen: Option<SocketAddr>,
    pub issuer: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub database: Option<String>,
    pub log_format: Option<LogFormat>,
    pub log_level: Option<String>,
    pub jwks_max_age: Option<u64>,
    pub signing_alg: Option<String>,
    pub durability: Option<DurabilitySetting>,
    pub refresh_token_grace: Option<u32>,
    pub key_rotation_interval: Option<u32>,
    pub require_pushed_authorization_requests: Option<bool>,
    pub require_dpop_nonce: Option<bool>,
    pub audit_retention: Option<u32>,
    pub jwks_min_refresh_interval: Option<u32>,
    pub trusted_proxies: Option<Vec<String>>,
    pub header_read_timeout: Option<u32>,
    pub max_header_bytes: Option<usize>,
    pub max_connections: Option<usize>,
    pub client_lockout_failures: Option<u32>,
    pub client_lockout_seconds: Option<u32>,
    pub rate_limit_per_second: Option<u32>,
    pub rate_limit_burst: Option<u32>,
}

/// The settings in force.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub issuer: String,
    pub data_dir: PathBuf,
    pub database: String,
    pub log_format: LogFormat,
    pub log_level: String,
    pub jwks_max_age: u64,
    pub signing_alg: SigningAlgorithm,
    pub durability: Durability,
    pub refresh_token_grace: i64,
    pub jwks_min_refresh_interval: std::time::Duration,
    /// Reverse proxies whose `X-Forwarded-For` is believed (none by default).
    pub trusted_proxies: TrustedProxies,
    /// How the listener bounds what connections may hold.
    pub connections: ConnectionLimits,
    /// How many wrong client secrets lock a client_id, and for how long.
    pub client_lockout: ClientLockout,
    /// The request rate each client address may send to the endpoints that check credentials;
    /// `None` when the limit is off.
    pub rate_limit: Option<RateLimit>,
    /// The `[[application]]` and `[[user]]` sections of the file, applied at start.
    pub registry: Manifest,
    /// How often a running server re-reads the signing keys, picking up keys rotated by the
    /// CLI or another instance. Far shorter than `jwks_max_age`, so a new key is published
    /// everywhere long before it signs.
    pub key_reload_interval: std::time::Duration,
    /// How often the signing keys rotate on schedule; `None` when they do not.
    pub key_rotation_interval: Option<std::time::Duration>,
    /// Whether the authorization endpoint takes only pushed requests.
    pub require_pushed_authorization_requests: bool,
    /// Whether DPoP proofs must carry a nonce of this server.
    pub require_dpop_nonce: bool,
    /// How long audit events are kept, in seconds; `None` for ever.
    pub audit_retention: Option<i64>,
}

/// What one connection, and all of them together, may hold of the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// A connection that has not sent a request's complete headers in this time is closed.
    pub header_read_timeout: std::time::Duration,
    /// The request line and headers together; a larger head is answered with 431.
    pub max_header_bytes: usize,
    /// Connections served at once.
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            header_read_timeout: std::time::Duration::from_secs(10),
            max_header_bytes: 16 * 1024,
            max_connections: 1024,
        }
    }
}

/// HTTP/1 reads a request head into one buffer, which cannot be smaller than this.
const MIN_HEADER_BYTES: usize = 8192;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_DATA_DIR: &str = "gatehouse-data";
pub const DEFAULT_JWKS_MAX_AGE: u64 = 300;
pub const DEFAULT_JWKS_MIN_REFRESH_INTERVAL: u32 = 10;
/// A shorter schedule would publish keys faster than relying parties could sensibly fetch them.
const MIN_KEY_ROTATION_INTERVAL: u32 = 60;

impl Settings {
    pub fn resolve(global: &GlobalArgs, serve: &ServeArgs) -> anyhow::Result<Settings> {
        let (file, registry) = match &global.config {
            Some(path) => read_file(path)?,
            None => (FileSettings::default(), Manifest::default()),
        };
        let listen = match serve.listen.or(file.listen) {
            Some(listen) => listen,
            None => DEFAULT_LISTEN.parse()?,
        };
        let data_dir = global
            .data_dir
            .clone()
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        let database = database_in(
            &data_dir,
            global
                .database
                .clone()
                .or(file.database)
                .unwrap_or_else(|| "sqlite://gatehouse.db".into()),
        );
        let issuer = serve
            .issuer
            .clone()
            .or(file.issuer)
            .unwrap_or_else(|| format!("http://{listen}"));
        let issuer = check_issuer(&issuer)?;
        let signing_alg = serve
            .signing_alg
            .clone()
            .or(file.signing_alg)
            .map(|alg| alg.parse::<SigningAlgorithm>())
            .transpose()?
            .unwrap_or_default();
        let trusted_proxies = TrustedProxies::parse(
            &serve
                .trusted_proxies
                .clone()
                .or(file.trusted_proxies)
                .unwrap_or_default(),
        )?;
        let defaults = ConnectionLimits::default();
        let connections = ConnectionLimits {
            header_read_timeout: serve
                .header_read_timeout
                .or(file.header_read_timeout)
                .map_or(defaults.header_read_timeout, |seconds| {
                    std::time::Duration::from_secs(u64::from(seconds))
                }),
            max_header_bytes: serve
                .max_header_bytes
                .or(file.max_header_bytes)
                .unwrap_or(defaults.max_header_bytes),
            max_connections: serve
                .max_connections
                .or(file.max_connections)
                .unwrap_or(defaults.max_connections),
        };
        if connections.header_read_timeout.is_zero() || connections.max_connections == 0 {
            bail!("header_read_timeout and max_connections must be at least 1");
        }
        if connections.max_header_bytes < MIN_HEADER_BYTES {
            bail!("max_header_bytes must be at least {MIN_HEADER_BYTES}");
        }
        let lockout_defaults = ClientLockout::default();
        let client_lockout = ClientLockout {
            failures: serve
                .client_lockout_failures
                .or(file.client_lockout_failures)
                .unwrap_or(lockout_defaults.failures),
            window_seconds: serve
                .client_lockout_seconds
                .or(file.client_lockout_seconds)
                .unwrap_or(lockout_defaults.window_seconds),
        };
        if client_lockout.failures == 0 || client_lockout.window_seconds == 0 {
            bail!("client_lockout_failures and client_lockout_seconds must be at least 1");
        }
        let rate_defaults = RateLimit::default();
        let per_second = serve
            .rate_limit_per_second
            .or(file.rate_limit_per_second)
            .unwrap_or(rate_defaults.per_second.get());
        let burst = serve
            .rate_limit_burst
            .or(file.rate_limit_burst)
            .unwrap_or(rate_defaults.burst.get());
        let rate_limit = match (NonZeroU32::new(per_second), NonZeroU32::new(burst)) {
            (None, _) => None,
            (Some(per_second), Some(burst)) => Some(RateLimit { per_second, burst }),
            (Some(_), None) => bail!("rate_limit_burst must be at least 1"),
        };
        let key_rotation_interval = match serve
            .key_rotation_interval
            .or(file.key_rotation_interval)
            .unwrap_or(0)
        {
            0 => None,
            seconds if seconds < MIN_KEY_ROTATION_INTERVAL => {
                bail!(
                    "key_rotation_interval must be 0 (off) or at least {MIN_KEY_ROTATION_INTERVAL} seconds"
                )
            }
            seconds => Some(std::time::Duration::from_secs(u64::from(seconds))),
        };
        let audit_retention = match serve.audit_retention.or(file.audit_retention) {
            Some(0) => None,
            Some(seconds) => Some(i64::from(seconds)),
            None => Some(gatehouse_core::audit::DEFAULT_RETENTION),
        };
        let durability = match serve.durability.or(file.durability).unwrap_or_default() {
            DurabilitySetting::Process => Durability::Process,
            DurabilitySetting::Full => Durability::Full,
        };
        Ok(Settings {
            listen,
            issuer,
            data_dir,
            database,
            log_format: global.log_format.or(file.log_format).unwrap_or_default(),
            log_level: global
                .log_level
                .clone()
                .or(file.log_level)
                .unwrap_or_else(|| "info".into()),
            jwks_max_age: serve
                .jwks_max_age
                .or(file.jwks_max_age)
                .unwrap_or(DEFAULT_JWKS_MAX_AGE),
            signing_alg,
            durability,
            refresh_token_grace: i64::from(
                serve
                    .refresh_token_grace
                    .or(file.refresh_token_grace)
                    .unwrap_or(0),
            ),
            jwks_min_refresh_interval: std::time::Duration::from_secs(u64::from(
                serve
                    .jwks_min_refresh_interval
                    .or(file.jwks_min_refresh_interval)
                    .unwrap_or(DEFAULT_JWKS_MIN_REFRESH_INTERVAL),
            )),
            trusted_proxies,
            connections,
            client_lockout,
            rate_limit,
            registry,
            key_reload_interval: std::time::Duration::from_secs(60),
            key_rotation_interval,
            require_pushed_authorization_requests: serve
                .require_pushed_authorization_requests
                .or(file.require_pushed_authorization_requests)
                .unwrap_or(false),
            require_dpop_nonce: serve
                .require_dpop_nonce
                .or(file.require_dpop_nonce)
                .unwrap_or(false),
            audit_retention,
        })
    }
}

/// The database URL with a relative SQLite path taken as relative to the data directory, so
/// one configuration file serves any `--data-dir`.
fn database_in(data_dir: &Path, database: String) -> String {
    match gatehouse_store::Location::parse(&database) {
        Ok(gatehouse_store::Location::Sqlite(path)) if path.is_relative() => {
            format!("sqlite://{}", data_dir.join(path).display())
        }
        _ => database,
    }
}

/// Splits the file into its settings and its registry sections.
pub fn read_file(path: &Path) -> anyhow::Result<(FileSettings, Manifest)> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse_file(&text).with_context(|| format!("invalid configuration in {}", path.display()))
}

pub fn parse_file(text: &str) -> anyhow::Result<(FileSettings, Manifest)> {
    let mut table: toml::Table = toml::from_str(text)?;
    let mut registry = toml::Table::new();
    for section in Manifest::SECTIONS {
        if let Some(value) = table.remove(section) {
            registry.insert(section.into(), value);
        }
    }
    let settings = FileSettings::deserialize(toml::Value::Table(table))?;
    let registry = Manifest::deserialize(toml::Value::Table(registry))?;
    Ok((settings, registry))
}

/// The issuer is an https URL (or http on loopback) with no query or fragment (RFC 8414 §2);
/// a trailing slash is dropped so endpoint URLs join cleanly.
fn check_issuer(issuer: &str) -> anyhow::Result<String> {
    let trimmed = issuer.trim_end_matches('/');
    let (scheme, rest) = trimmed
        .split_once("://")
        .with_context(|| format!("issuer {issuer:?} is not a URL"))?;
    if rest.is_empty() || rest.contains(['?', '#']) {
        bail!("issuer {issuer:?} must have a host and no query or fragment");
    }
    match scheme {
        "https" => Ok(trimmed.to_owned()),
        "http" if is_loopback_authority(rest.split('/').next().unwrap_or_default()) => {
            Ok(trimmed.to_owned())
        }
        "http" => bail!(
            "issuer {issuer:?} must be https: plain http is for a loopback address only \
             (127.0.0.1 or [::1])"
        ),
        _ => bail!("issuer {issuer:?} must be an http(s) URL"),
    }
}

/// Whether `authority` (host and optional port) is a literal loopback address. A name such as
/// `localhost` is not: what it resolves to is not the issuer's to decide.
fn is_loopback_authority(authority: &str) -> bool {
    let host = match authority.strip_prefix('[') {
        Some(bracketed) => bracketed.split(']').next().unwrap_or_default(),
        None => authority.split(':').next().unwrap_or_default(),
    };
    !authority.contains('@')
        && host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|address| address.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relative_sqlite_path_is_inside_the_data_directory() {
        let data_dir = Path::new("/srv/gatehouse");
        for (database, resolved) in [
            (
                "sqlite://gatehouse.db",
                "sqlite:///srv/gatehouse/gatehouse.db",
            ),
            ("sqlite://db/auth.db", "sqlite:///srv/gatehouse/db/auth.db"),
            ("sqlite:///var/lib/auth.db", "sqlite:///var/lib/auth.db"),
            (
                "postgres://postgres@127.0.0.1/test",
                "postgres://postgres@127.0.0.1/test",
            ),
        ] {
            assert_eq!(database_in(data_dir, database.into()), resolved);
        }
    }

    #[test]
    fn example_file_documents_every_setting_and_parses() {
        let text = include_str!("../../../gatehouse.example.toml");
        let (settings, registry) = parse_file(text).expect("the example parses");
        let documented: toml::Table = toml::from_str(text).unwrap();
        let all_keys = toml::Table::try_from(FileSettings {
            listen: Some(DEFAULT_LISTEN.parse().unwrap()),
            issuer: Some(String::new()),
            data_dir: Some(PathBuf::new()),
            database: Some(String::new()),
            log_format: Some(LogFormat::Text),
            log_level: Some(String::new()),
            jwks_max_age: Some(0),
            signing_alg: Some(String::new()),
            durability: Some(DurabilitySetting::Process),
            refresh_token_grace: Some(0),
            key_rotation_interval: Some(0),
            require_pushed_authorization_requests: Some(false),
            require_dpop_nonce: Some(false),
            audit_retention: Some(0),
            jwks_min_refresh_interval: Some(0),
            trusted_proxies: Some(Vec::new()),
            header_read_timeout: Some(0),
            max_header_bytes: Some(0),
            max_connections: Some(0),
            client_lockout_failures: Some(0),
            client_lockout_seconds: Some(0),
            rate_limit_per_second: Some(0),
            rate_limit_burst: Some(0),
        })
        .unwrap();
        for key in all_keys.keys() {
            assert!(
                documented.contains_key(key),
                "gatehouse.example.toml does not document {key}"
            );
        }
        assert!(settings.listen.is_some());
        assert!(!registry.applications.is_empty() && !registry.users.is_empty());
        assert!(!registry.oauth_providers.is_empty() && !registry.connection_aliases.is_empty());
        assert!(!registry.scopes.is_empty() && !registry.scope_rules.is_empty());
        assert!(!registry.routes.is_empty() && !registry.tables.is_empty());
    }

    #[test]
    fn flags_beat_the_file_and_the_file_beats_defaults() {
        let dir = std::env::temp_dir().join(format!("gatehouse-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("gatehouse.toml");
        std::fs::write(&path, "listen = \"127.0.0.1:9000\"\njwks_max_age = 60\n").unwrap();
        let global = GlobalArgs {
            config: Some(path),
            ..GlobalArgs::default()
        };
        let from_file = Settings::resolve(&global, &ServeArgs::default()).unwrap();
        assert_eq!(from_file.listen.port(), 9000);
        assert_eq!(from_file.jwks_max_age, 60);
        assert_eq!(from_file.issuer, "http://127.0.0.1:9000");
        let flags = ServeArgs {
            listen: Some("127.0.0.1:9001".parse().unwrap()),
            ..ServeArgs::default()
        };
        assert_eq!(
            Settings::resolve(&global, &flags).unwrap().listen.port(),
            9001
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn the_rate_limit_is_on_by_default_and_zero_turns_it_off() {
        let defaults = Settings::resolve(&GlobalArgs::default(), &ServeArgs::default()).unwrap();
        let limit = defaults.rate_limit.expect("on by default");
        assert_eq!((limit.per_second.get(), limit.burst.get()), (50, 100));
        let off = ServeArgs {
            rate_limit_per_second: Some(0),
            ..ServeArgs::default()
        };
        let resolved = Settings::resolve(&GlobalArgs::default(), &off).unwrap();
        assert_eq!(resolved.rate_limit, None);
    }

    #[test]
    fn unknown_keys_and_bad_issuers_are_refused() {
        assert!(parse_file("listn = \"x\"").is_err());
        let proxies = |list: &str| ServeArgs {
            trusted_proxies: Some(list.split(',').map(str::to_owned).collect()),
            ..ServeArgs::default()
        };
        let resolved = Settings::resolve(&GlobalArgs::default(), &proxies("10.0.0.0/8,::1"));
        assert!(
            resolved
                .unwrap()
                .trusted_proxies
                .trusts("10.1.2.3".parse().unwrap())
        );
        assert!(Settings::resolve(&GlobalArgs::default(), &proxies("10.0.0.0/40")).is_err());
        for limits in [
            ServeArgs {
                max_header_bytes: Some(MIN_HEADER_BYTES - 1),
                ..ServeArgs::default()
            },
            ServeArgs {
                max_connections: Some(0),
                ..ServeArgs::default()
            },
            ServeArgs {
                header_read_timeout: Some(0),
                ..ServeArgs::default()
            },
            ServeArgs {
                client_lockout_failures: Some(0),
                ..ServeArgs::default()
            },
            ServeArgs {
                client_lockout_seconds: Some(0),
                ..ServeArgs::default()
            },
            ServeArgs {
                rate_limit_burst: Some(0),
                ..ServeArgs::default()
            },
        ] {
            assert!(Settings::resolve(&GlobalArgs::default(), &limits).is_err());
        }
        assert!(check_issuer("ftp://x").is_err());
        for plain in [
            "http://id.example",
            "http://10.0.0.1:8080",
            "http://0.0.0.0:8080",
            "http://localhost:8080",
            "http://127.0.0.1.example",
            "http://user@127.0.0.1",
        ] {
            assert!(check_issuer(plain).is_err(), "{plain}");
        }
        for loopback in [
            "http://127.0.0.1:8080",
            "http://[::1]:8080/",
            "http://127.1.2.3",
        ] {
            assert!(check_issuer(loopback).is_ok(), "{loopback}");
        }
        assert!(check_issuer("https://x/?a").is_err());
        assert_eq!(
            check_issuer("https://id.example/").unwrap(),
            "https://id.example"
        );
    }
}
