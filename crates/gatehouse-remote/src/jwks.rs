//! The keys of trusted issuers, fetched and cached: the adapter behind the domain's
//! [`KeyResolver`] port.
//!
//! A key set is kept for as long as its server's `Cache-Control: max-age` says (clamped), and
//! refetched early only when a token names an unknown `kid` — at most once per
//! `min_refresh_interval` per issuer, so a stream of forged `kid`s costs the issuer nothing. One
//! fetch runs per issuer at a time; concurrent callers wait for it. When a refresh fails, the
//! keys already known stay in use for the anchor's `stale_keys_lifetime` past their expiry: a
//! failing issuer degrades, it does not stop validation at once — but keys it may have revoked
//! meanwhile are not trusted forever either.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use gatehouse_core::federation::jose::KeySet;
use gatehouse_core::federation::{KeyResolver, KeySource, TrustAnchor};
use serde_json::Value;
use url::Url;

use crate::fetch::{FetchError, Fetcher};

/// Cache lifetimes.
#[derive(Debug, Clone, Copy)]
pub struct KeyCachePolicy {
    /// The shortest time a key set is kept, and the shortest time between two fetches for one
    /// issuer.
    pub min_refresh_interval: Duration,
    /// How long a key set is kept when its server says nothing.
    pub default_ttl: Duration,
    /// The longest time a key set is kept whatever its server says.
    pub max_ttl: Duration,
}

impl Default for KeyCachePolicy {
    fn default() -> Self {
        Self {
            min_refresh_interval: Duration::from_secs(10),
            default_ttl: Duration::from_secs(600),
            max_ttl: Duration::from_secs(86_400),
        }
    }
}

/// More issuers than this and the cache starts over.
const MAX_ISSUERS: usize = 1_000;

struct Cached {
    keys: Arc<KeySet>,
    expires_at: Instant,
}

#[derive(Default)]
struct Slot {
    cached: Mutex<Option<Cached>>,
    last_fetch: Mutex<Option<Instant>>,
    /// Held while fetching, so one fetch runs per issuer.
    fetching: tokio::sync::Mutex<()>,
}

impl Slot {
    /// The cached keys and when they expire.
    fn cached(&self) -> Option<(Arc<KeySet>, Instant)> {
        let cached = self.cached.lock().unwrap_or_else(|p| p.into_inner());
        cached.as_ref().map(|c| (c.keys.clone(), c.expires_at))
    }

    fn fetched_recently(&self, interval: Duration) -> bool {
        let last = self.last_fetch.lock().unwrap_or_else(|p| p.into_inner());
        last.is_some_and(|at| at.elapsed() < interval)
    }
}

/// Fetches and caches issuers' keys.
pub struct KeyCache {
    fetcher: Fetcher,
    policy: KeyCachePolicy,
    slots: Mutex<HashMap<String, Arc<Slot>>>,
}

impl KeyCache {
    pub fn new(fetcher: Fetcher, policy: KeyCachePolicy) -> Self {
        Self {
            fetcher,
            policy,
            slots: Mutex::default(),
        }
    }

    fn slot(&self, key: &str) -> Arc<Slot> {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        if !slots.contains_key(key) && slots.len() >= MAX_ISSUERS {
            slots.clear();
        }
        slots.entry(key.to_owned()).or_default().clone()
    }

    /// The cache's answer without a fetch, if it can give one: keys that are fresh and know
    /// `kid`, or — within the interval after a fetch, when no fetch may run — whatever it holds,
    /// unless that is stale beyond the anchor's limit.
    fn cached_answer(
        &self,
        slot: &Slot,
        anchor: &TrustAnchor<'_>,
        kid: Option<&str>,
    ) -> Option<Result<Arc<KeySet>, String>> {
        let (keys, expires_at) = slot.cached()?;
        let fresh = Instant::now() < expires_at;
        let knows_kid = kid.is_none_or(|kid| keys.has_kid(kid));
        if fresh && knows_kid {
            return Some(Ok(keys));
        }
        if slot.fetched_recently(self.policy.min_refresh_interval) {
            return Some(within_stale_limit(keys, expires_at, anchor));
        }
        None
    }

    async fn fetch(&self, issuer: &str, source: &KeySource) -> Result<(KeySet, Duration), String> {
        let describe = |what: &str, e: FetchError| format!("the {what} could not be fetched: {e}");
        let jwks_url = match source {
            KeySource::Static(text) => {
                return KeySet::from_static(text)
                    .map(|keys| (keys, self.policy.max_ttl))
                    .map_err(|e| format!("the static key is unusable: {e}"));
            }
            KeySource::JwksUrl(url) => url.clone(),
            KeySource::DiscoveryUrl(url) => {
                let url = parse(url)?;
                let document = self
                    .fetcher
                    .get_json::<Value>(&url)
                    .await
                    .map_err(|e| describe("discovery document", e))?
                    .value;
                // OpenID Connect Discovery §4.3: the document must be the issuer's own.
                if document.get("issuer").and_then(Value::as_str) != Some(issuer) {
                    return Err("the discovery document names another issuer".into());
                }
                document
                    .get("jwks_uri")
                    .and_then(Value::as_str)
                    .ok_or("the discovery document has no jwks_uri")?
                    .to_owned()
            }
        };
        let fetched = self
            .fetcher
            .get_json::<Value>(&parse(&jwks_url)?)
            .await
            .map_err(|e| describe("JWK Set", e))?;
        let keys = KeySet::from_jwks(&fetched.value).map_err(|e| format!("the JWK Set: {e}"))?;
        let ttl = fetched
            .max_age
            .unwrap_or(self.policy.default_ttl)
            .clamp(self.policy.min_refresh_interval, self.policy.max_ttl);
        Ok((keys, ttl))
    }
}

/// Known keys, unless they expired longer ago than the anchor allows keys to serve while
/// refreshing them fails.
fn within_stale_limit(
    keys: Arc<KeySet>,
    expires_at: Instant,
    anchor: &TrustAnchor<'_>,
) -> Result<Arc<KeySet>, String> {
    let limit = Duration::from_secs(anchor.stale_keys_lifetime.max(0) as u64);
    if expires_at.elapsed() <= limit {
        Ok(keys)
    } else {
        Err(format!(
            "the keys known for it expired more than {} seconds ago (stale_keys_lifetime)",
            limit.as_secs()
        ))
    }
}

fn parse(url: &str) -> Result<Url, String> {
    Url::parse(url).map_err(|e| format!("{url:?} is not a URL: {e}"))
}

#[async_trait]
impl KeyResolver for KeyCache {
    async fn keys(
        &self,
        anchor: &TrustAnchor<'_>,
        kid: Option<&str>,
    ) -> Result<Arc<KeySet>, String> {
        let slot = self.slot(&anchor.cache_key);
        if let Some(answer) = self.cached_answer(&slot, anchor, kid) {
            return answer;
        }
        let _fetching = slot.fetching.lock().await;
        // Whoever held the lock before may have fetched what is needed.
        if let Some(answer) = self.cached_answer(&slot, anchor, kid) {
            return answer;
        }
        *slot.last_fetch.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
        match self.fetch(anchor.issuer, anchor.source).await {
            Ok((keys, ttl)) => {
                let keys = Arc::new(keys);
                *slot.cached.lock().unwrap_or_else(|p| p.into_inner()) = Some(Cached {
                    keys: keys.clone(),
                    expires_at: Instant::now() + ttl,
                });
                Ok(keys)
            }
            Err(error) => match slot.cached() {
                Some((known, expires_at)) => {
                    tracing::warn!(issuer = anchor.issuer, %error, "refreshing keys failed; keeping the known ones within their stale limit");
                    within_stale_limit(known, expires_at, anchor)
                        .map_err(|stale| format!("{error}, and {stale}"))
                }
                None => Err(error),
            },
        }
    }
}
