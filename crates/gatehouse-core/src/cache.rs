//! In-memory caches of registry records, so the hot paths (client authentication at the token
//! endpoint, token validation) do not ask the database every time.
//!
//! Entries expire after a short time to live, which bounds how long a change made by another
//! process (the CLI next to a running server on SQLite) can go unseen. Changes made through this
//! process's `Registry` invalidate at once, and on PostgreSQL every instance also hears about
//! every change (LISTEN/NOTIFY) and invalidates at once.
//!
//! When an entry's time runs out, the next request reloads it while the requests that come
//! meanwhile are still answered from the expired entry, for at most [`RELOAD_GRACE_SECONDS`]:
//! a database that is slow for a moment (a checkpoint, a connection being opened) then holds up
//! one request per record, not every request that needs it.
//!
//! The lock is a plain `RwLock` held only to read or write the map, never across an await.

use std::collections::HashMap;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use crate::Error;
use crate::client::Client;
use crate::clock::Clock;
use crate::entry::Catalog;
use crate::federation::JwtProvider;
use crate::store::AccessTokenRecord;
use crate::token::AccessTokenInfo;
use crate::user::User;

/// How long a cached record is trusted without asking the database.
pub const RECORD_TTL_SECONDS: i64 = 5;
/// How long past its time to live a record may still answer, and only while one request is
/// reloading it (or when that reload failed): a change that reaches this process by no
/// invalidation is seen within `RECORD_TTL_SECONDS` plus the reload's time, and never later
/// than `RECORD_TTL_SECONDS + RELOAD_GRACE_SECONDS`.
pub const RELOAD_GRACE_SECONDS: i64 = 5;
/// At most this many entries: when full, expired entries go first, then an arbitrary one.
const MAX_ENTRIES: usize = 10_000;
/// Invalidations count per stripe of keys, so one key's invalidation only keeps loads of keys
/// in its stripe (1/64 of them) from being cached.
const STRIPES: usize = 64;

/// A record held in memory, when it was loaded from the store, and whether a request is
/// reloading it now that it has expired.
struct CachedRecord<T> {
    record: Arc<T>,
    loaded_at: i64,
    reloading: Arc<AtomicBool>,
}

/// Marks a record as being reloaded for as long as it lives, so a reload whose request went
/// away (or failed) lets the next request try again.
struct Reloading(Arc<AtomicBool>);

impl Drop for Reloading {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// What the map says about a key.
enum Lookup<T> {
    Fresh(Arc<T>),
    /// Expired but within the grace: another request is reloading it, so this one uses it.
    Stale(Arc<T>),
    /// Expired but within the grace, and this request reloads it; the record answers if the
    /// reload fails.
    Reload(Arc<T>, Reloading),
    Missing,
}

/// How a cache has answered since the start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Answered from memory.
    pub hits: u64,
    /// Loaded from the store and found.
    pub loaded: u64,
    /// Loaded from the store and not found (never cached).
    pub absent: u64,
}

/// A cache of one kind of record by key. Only records that exist are cached, so unknown keys
/// cannot fill it, and looking them up never disturbs what is cached.
pub struct RecordCache<T> {
    entries: RwLock<HashMap<String, CachedRecord<T>>>,
    /// Bumped by every invalidation of a key in the stripe, so a load that raced with one is
    /// not cached: it may have read the record from before the change.
    generations: [AtomicU64; STRIPES],
    hits: AtomicU64,
    loaded: AtomicU64,
    absent: AtomicU64,
    clock: Arc<dyn Clock>,
}

impl<T> RecordCache<T> {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        RecordCache {
            entries: RwLock::default(),
            generations: std::array::from_fn(|_| AtomicU64::new(0)),
            hits: AtomicU64::new(0),
            loaded: AtomicU64::new(0),
            absent: AtomicU64::new(0),
            clock,
        }
    }

    fn stripe(key: &str) -> usize {
        let mut hasher = std::hash::DefaultHasher::new();
        key.hash(&mut hasher);
        (hasher.finish() % STRIPES as u64) as usize
    }

    /// The cached record, or the one `load` finds (then cached).
    pub async fn get<F, Fut>(&self, key: &str, load: F) -> Result<Option<Arc<T>>, Error>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<T>, Error>>,
    {
        let now = self.clock.now();
        let fallback = match self.lookup(key, now) {
            Lookup::Fresh(record) | Lookup::Stale(record) => {
                self.hits.fetch_add(1, Ordering::Relaxed);
                return Ok(Some(record));
            }
            Lookup::Reload(record, reloading) => Some((record, reloading)),
            Lookup::Missing => None,
        };
        // Read before the load starts: an invalidation from here on keeps its result out.
        let stripe = &self.generations[Self::stripe(key)];
        let generation = stripe.load(Ordering::SeqCst);
        let loaded = match load().await {
            Ok(loaded) => loaded,
            Err(error) => {
                return match fallback {
                    Some((record, _reloading)) => {
                        tracing::warn!(%error, "reloading a cached record failed; the record loaded before answers");
                        Ok(Some(record))
                    }
                    None => Err(error),
                };
            }
        };
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        let Some(record) = loaded.map(Arc::new) else {
            self.absent.fetch_add(1, Ordering::Relaxed);
            if fallback.is_some() {
                entries.remove(key);
            }
            return Ok(None);
        };
        self.loaded.fetch_add(1, Ordering::Relaxed);
        if stripe.load(Ordering::SeqCst) != generation {
            return Ok(Some(record));
        }
        if entries.len() >= MAX_ENTRIES && !entries.contains_key(key) {
            entries.retain(|_, entry| now - entry.loaded_at < RECORD_TTL_SECONDS);
            if entries.len() >= MAX_ENTRIES
                && let Some(victim) = entries.keys().next().cloned()
            {
                entries.remove(&victim);
            }
        }
        entries.insert(
            key.to_owned(),
            CachedRecord {
                record: record.clone(),
                loaded_at: now,
                reloading: Arc::default(),
            },
        );
        Ok(Some(record))
    }

    fn lookup(&self, key: &str, now: i64) -> Lookup<T> {
        let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
        let Some(entry) = entries.get(key) else {
            return Lookup::Missing;
        };
        let age = now - entry.loaded_at;
        if age < RECORD_TTL_SECONDS {
            return Lookup::Fresh(entry.record.clone());
        }
        if age >= RECORD_TTL_SECONDS + RELOAD_GRACE_SECONDS {
            return Lookup::Missing;
        }
        let won = entry
            .reloading
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if won {
            Lookup::Reload(entry.record.clone(), Reloading(entry.reloading.clone()))
        } else {
            Lookup::Stale(entry.record.clone())
        }
    }

    pub fn invalidate(&self, key: &str) {
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        self.generations[Self::stripe(key)].fetch_add(1, Ordering::SeqCst);
        entries.remove(key);
    }

    /// Drops the entries whose record matches. Loads in flight may be of matching records not
    /// cached yet, so none of them is cached.
    pub fn invalidate_where(&self, matches: impl Fn(&T) -> bool) {
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        self.bump_all();
        entries.retain(|_, entry| !matches(&entry.record));
    }

    pub fn clear(&self) {
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        self.bump_all();
        entries.clear();
    }

    fn bump_all(&self) {
        for generation in &self.generations {
            generation.fetch_add(1, Ordering::SeqCst);
        }
    }

    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            loaded: self.loaded.load(Ordering::Relaxed),
            absent: self.absent.load(Ordering::Relaxed),
        }
    }
}

/// The caches of the registry: applications by client_id, users by id and by name, the
/// configuration entries, the active JWT providers, and validated third-party tokens (by hash).
pub struct RegistryCache {
    pub clients: RecordCache<Client>,
    /// The client_id of the application that registered an audience identifier.
    pub audience_owners: RecordCache<String>,
    pub users: RecordCache<User>,
    pub users_by_name: RecordCache<User>,
    /// Every configuration entry, as one snapshot under the key [`CATALOG_KEY`].
    pub catalog: RecordCache<Catalog>,
    pub jwt_providers: RecordCache<Vec<JwtProvider>>,
    pub federated_tokens: RecordCache<AccessTokenInfo>,
    /// Opaque access tokens recently looked up, by hash. A user's credential change revokes
    /// their opaque tokens in the store, so these go with every user notice too.
    pub opaque_tokens: RecordCache<AccessTokenRecord>,
}

/// The catalog cache's one key.
pub const CATALOG_KEY: &str = "catalog";

impl RegistryCache {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        RegistryCache {
            clients: RecordCache::new(clock.clone()),
            audience_owners: RecordCache::new(clock.clone()),
            users: RecordCache::new(clock.clone()),
            users_by_name: RecordCache::new(clock.clone()),
            catalog: RecordCache::new(clock.clone()),
            jwt_providers: RecordCache::new(clock.clone()),
            federated_tokens: RecordCache::new(clock.clone()),
            opaque_tokens: RecordCache::new(clock),
        }
    }

    /// How each cache has answered, by name.
    pub fn stats(&self) -> [(&'static str, CacheStats); 8] {
        [
            ("clients", self.clients.stats()),
            ("audience_owners", self.audience_owners.stats()),
            ("users", self.users.stats()),
            ("users_by_name", self.users_by_name.stats()),
            ("catalog", self.catalog.stats()),
            ("jwt_providers", self.jwt_providers.stats()),
            ("federated_tokens", self.federated_tokens.stats()),
            ("opaque_tokens", self.opaque_tokens.stats()),
        ]
    }

    /// Applies a change notice from the store (`client:ID`; `user:…`, which clears every cached
    /// user, since notices name users by name while one cache keys them by id; `entry:KIND:NAME`,
    /// which reloads the catalog; `jwt_provider:NAME`). Validated third-party tokens depend on
    /// providers and users, so they go with either; opaque token lookups go with users.
    pub fn apply_notice(&self, notice: &str) {
        match notice.split_once(':') {
            // A notice does not say which audiences changed hands, so all are reread.
            Some(("client", client_id)) => {
                self.clients.invalidate(client_id);
                self.audience_owners.clear();
            }
            Some(("user", _)) => {
                self.users.clear();
                self.users_by_name.clear();
                self.federated_tokens.clear();
                self.opaque_tokens.clear();
            }
            Some(("jwt_provider", _)) => {
                self.jwt_providers.clear();
                self.federated_tokens.clear();
            }
            Some(("entry", _)) => self.catalog.clear(),
            _ => {
                self.catalog.clear();
                self.clients.clear();
                self.audience_owners.clear();
                self.users.clear();
                self.users_by_name.clear();
                self.jwt_providers.clear();
                self.federated_tokens.clear();
                self.opaque_tokens.clear();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;
    use crate::clock::TestClock;

    #[tokio::test]
    async fn records_are_reused_until_they_expire_or_are_invalidated() {
        let clock = Arc::new(TestClock::at(0));
        let cache = RecordCache::<String>::new(clock.clone());
        let loads = AtomicUsize::new(0);
        let load = || async {
            loads.fetch_add(1, Ordering::SeqCst);
            Ok(Some("value".to_owned()))
        };
        cache.get("k", load).await.unwrap();
        cache.get("k", load).await.unwrap();
        assert_eq!(loads.load(Ordering::SeqCst), 1);
        clock.set(RECORD_TTL_SECONDS);
        cache.get("k", load).await.unwrap();
        assert_eq!(loads.load(Ordering::SeqCst), 2);
        cache.invalidate("k");
        cache.get("k", load).await.unwrap();
        assert_eq!(loads.load(Ordering::SeqCst), 3);
        assert!(
            cache
                .get("missing", || async { Ok(None) })
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(
            cache.stats(),
            CacheStats {
                hits: 1,
                loaded: 3,
                absent: 1
            }
        );
    }

    #[tokio::test]
    async fn an_expired_record_answers_while_one_request_reloads_it() {
        let clock = Arc::new(TestClock::at(0));
        let cache = RecordCache::<String>::new(clock.clone());
        let loads = AtomicUsize::new(0);
        let counted = |value: &'static str| {
            loads.fetch_add(1, Ordering::SeqCst);
            async move { Ok(Some(value.to_owned())) }
        };
        cache.get("k", || counted("old")).await.unwrap();
        clock.set(RECORD_TTL_SECONDS);
        let (release, released) = tokio::sync::oneshot::channel::<()>();
        // The first request reloads, and waits on the database; the second comes meanwhile.
        let (reloaded, meanwhile) = tokio::join!(
            cache.get("k", || async {
                released.await.unwrap();
                counted("new").await
            }),
            async {
                let answer = cache.get("k", || counted("another")).await;
                release.send(()).unwrap();
                answer
            },
        );
        assert_eq!(*meanwhile.unwrap().unwrap(), "old");
        assert_eq!(*reloaded.unwrap().unwrap(), "new");
        assert_eq!(loads.load(Ordering::SeqCst), 2, "one reload");
        assert_eq!(
            *cache.get("k", || counted("x")).await.unwrap().unwrap(),
            "new"
        );
        assert_eq!(loads.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_failed_or_abandoned_reload_leaves_the_next_request_to_try_again() {
        let clock = Arc::new(TestClock::at(0));
        let cache = RecordCache::<String>::new(clock.clone());
        cache
            .get("k", || async { Ok(Some("old".to_owned())) })
            .await
            .unwrap();
        clock.set(RECORD_TTL_SECONDS + 1);
        // The database fails: the record loaded before answers, within the grace.
        let failed = cache
            .get("k", || async {
                Err(Error::Internal("database away".into()))
            })
            .await;
        assert_eq!(*failed.unwrap().unwrap(), "old");
        // A reload whose request goes away before the database answers.
        let abandoned = cache.get("k", std::future::pending);
        let waited = tokio::time::timeout(std::time::Duration::from_millis(20), abandoned).await;
        assert!(waited.is_err());
        let reloaded = cache
            .get("k", || async { Ok(Some("new".to_owned())) })
            .await;
        assert_eq!(*reloaded.unwrap().unwrap(), "new");
        // Past the grace, an expired record never answers: every request waits for the store.
        clock.set(2 * RECORD_TTL_SECONDS + 1 + RELOAD_GRACE_SECONDS);
        let failed = cache
            .get("k", || async {
                Err(Error::Internal("database away".into()))
            })
            .await;
        assert!(failed.is_err());
        // A record deleted meanwhile is gone once a reload finds nothing.
        cache
            .get("k", || async { Ok(Some("new".to_owned())) })
            .await
            .unwrap();
        clock.set(3 * RECORD_TTL_SECONDS + 1 + RELOAD_GRACE_SECONDS);
        assert!(
            cache
                .get("k", || async { Ok(None) })
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            cache
                .get("k", || async {
                    Err(Error::Internal("database away".into()))
                })
                .await
                .is_err()
        );
    }

    /// Two keys in different stripes.
    fn apart() -> (String, String) {
        let first = "a".to_owned();
        let second = (0..)
            .map(|n| format!("b{n}"))
            .find(|k| RecordCache::<String>::stripe(k) != RecordCache::<String>::stripe(&first))
            .unwrap();
        (first, second)
    }

    #[tokio::test]
    async fn misses_and_other_keys_invalidations_leave_cached_records_alone() {
        let clock = Arc::new(TestClock::at(0));
        let cache = RecordCache::<String>::new(clock.clone());
        let (valid, other) = apart();
        let found = || async { Ok(Some("value".to_owned())) };
        cache.get(&valid, found).await.unwrap();
        // A flood of unknown keys: nothing is cached for them, nothing is evicted.
        for n in 0..(2 * MAX_ENTRIES) {
            let key = format!("garbage-{n}");
            assert!(
                cache
                    .get(&key, || async { Ok(None) })
                    .await
                    .unwrap()
                    .is_none()
            );
        }
        // A load of `valid` during which another stripe's key is invalidated is still cached.
        cache.invalidate(&valid);
        cache
            .get(&valid, || async {
                cache.invalidate(&other);
                Ok(Some("value".to_owned()))
            })
            .await
            .unwrap();
        let before = cache.stats();
        cache.get(&valid, found).await.unwrap();
        assert_eq!(cache.stats().hits, before.hits + 1);
        assert_eq!(cache.stats().loaded, before.loaded);
        // One in its own stripe is not: it may have read the record from before the change.
        cache.invalidate(&valid);
        cache
            .get(&valid, || async {
                cache.invalidate(&valid);
                Ok(Some("stale".to_owned()))
            })
            .await
            .unwrap();
        let before = cache.stats();
        cache.get(&valid, found).await.unwrap();
        assert_eq!(cache.stats().loaded, before.loaded + 1);
    }

    #[tokio::test]
    async fn a_full_cache_makes_room_from_expired_entries_first() {
        let clock = Arc::new(TestClock::at(0));
        let cache = RecordCache::<String>::new(clock.clone());
        let found = || async { Ok(Some("value".to_owned())) };
        for n in 0..MAX_ENTRIES - 1 {
            cache.get(&format!("old-{n}"), found).await.unwrap();
        }
        clock.set(RECORD_TTL_SECONDS);
        cache.get("fresh", found).await.unwrap();
        cache.get("newcomer", found).await.unwrap();
        let entries = cache.entries.read().unwrap();
        assert_eq!(entries.len(), 2, "the expired entries made room");
        assert!(entries.contains_key("fresh") && entries.contains_key("newcomer"));
    }

    #[tokio::test]
    async fn invalidating_by_record_drops_only_the_matching_ones() {
        let clock = Arc::new(TestClock::at(0));
        let cache = RecordCache::<String>::new(clock);
        for key in ["g1-a", "g1-b", "g2-a"] {
            cache
                .get(key, || async { Ok(Some(key[..2].to_owned())) })
                .await
                .unwrap();
        }
        cache.invalidate_where(|grant| grant == "g1");
        let entries = cache.entries.read().unwrap();
        assert_eq!(entries.keys().collect::<Vec<_>>(), ["g2-a"]);
    }
}
