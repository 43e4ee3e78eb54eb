//! In-memory caches of registry records, so the hot paths (client authentication at the token
//! endpoint, token validation) do not ask the database every time.
//!
//! Entries expire after a short time to live, which bounds how long a change made by another
//! process (the CLI next to a running server on SQLite) can go unseen. Changes made through this
//! process's `Registry` invalidate at once, and on PostgreSQL every instance also hears about
//! every change (LISTEN/NOTIFY) and invalidates at once.
//!
//! The lock is a plain `RwLock` held only to read or write the map, never across an await.

use std::collections::HashMap;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
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
/// At most this many entries: when full, expired entries go first, then an arbitrary one.
const MAX_ENTRIES: usize = 10_000;
/// Invalidations count per stripe of keys, so one key's invalidation only keeps loads of keys
/// in its stripe (1/64 of them) from being cached.
const STRIPES: usize = 64;

/// A record held in memory, and when it was loaded from the store.
struct CachedRecord<T> {
    record: Arc<T>,
    loaded_at: i64,
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
        {
            let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
            if let Some(entry) = entries.get(key)
                && now - entry.loaded_at < RECORD_TTL_SECONDS
            {
                self.hits.fetch_add(1, Ordering::Relaxed);
                return Ok(Some(entry.record.clone()));
            }
        }
        // Read before the load starts: an invalidation from here on keeps its result out.
        let stripe = &self.generations[Self::stripe(key)];
        let generation = stripe.load(Ordering::SeqCst);
        let Some(record) = load().await?.map(Arc::new) else {
            self.absent.fetch_add(1, Ordering::Relaxed);
            return Ok(None);
        };
        self.loaded.fetch_add(1, Ordering::Relaxed);
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
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
            },
        );
        Ok(Some(record))
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
