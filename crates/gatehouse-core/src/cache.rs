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
/// More entries than this and the cache starts over (a bound against unbounded growth).
const MAX_ENTRIES: usize = 10_000;

struct Entry<T> {
    record: Arc<T>,
    loaded_at: i64,
}

/// A cache of one kind of record by key. Only records that exist are cached, so unknown keys
/// cannot fill it.
pub struct RecordCache<T> {
    entries: RwLock<HashMap<String, Entry<T>>>,
    /// Bumped by every invalidation, so a load that raced with one is not cached: it may have
    /// read the record from before the change.
    generation: AtomicU64,
    clock: Arc<dyn Clock>,
}

impl<T> RecordCache<T> {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        RecordCache {
            entries: RwLock::default(),
            generation: AtomicU64::new(0),
            clock,
        }
    }

    /// The cached record, or the one `load` finds (then cached).
    pub async fn get<F, Fut>(&self, key: &str, load: F) -> Result<Option<Arc<T>>, Error>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<T>, Error>>,
    {
        let now = self.clock.now();
        let generation = self.generation.load(Ordering::SeqCst);
        {
            let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
            if let Some(entry) = entries.get(key)
                && now - entry.loaded_at < RECORD_TTL_SECONDS
            {
                return Ok(Some(entry.record.clone()));
            }
        }
        let Some(record) = load().await?.map(Arc::new) else {
            self.invalidate(key);
            return Ok(None);
        };
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        if self.generation.load(Ordering::SeqCst) != generation {
            return Ok(Some(record));
        }
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(
            key.to_owned(),
            Entry {
                record: record.clone(),
                loaded_at: now,
            },
        );
        Ok(Some(record))
    }

    pub fn invalidate(&self, key: &str) {
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        self.generation.fetch_add(1, Ordering::SeqCst);
        entries.remove(key);
    }

    pub fn clear(&self) {
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        self.generation.fetch_add(1, Ordering::SeqCst);
        entries.clear();
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
    use std::sync::atomic::{AtomicI64, AtomicUsize};

    use super::*;

    struct TestClock(AtomicI64);

    impl Clock for TestClock {
        fn now(&self) -> i64 {
            self.0.load(Ordering::SeqCst)
        }
    }

    #[tokio::test]
    async fn records_are_reused_until_they_expire_or_are_invalidated() {
        let clock = Arc::new(TestClock(AtomicI64::new(0)));
        let cache = RecordCache::<String>::new(clock.clone());
        let loads = AtomicUsize::new(0);
        let load = || async {
            loads.fetch_add(1, Ordering::SeqCst);
            Ok(Some("value".to_owned()))
        };
        cache.get("k", load).await.unwrap();
        cache.get("k", load).await.unwrap();
        assert_eq!(loads.load(Ordering::SeqCst), 1);
        clock.0.store(RECORD_TTL_SECONDS, Ordering::SeqCst);
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
    }
}
