//! The storage port. Gatehouse's domain talks to its database only through these traits; the
//! `gatehouse-store` crate implements them for SQLite and PostgreSQL.
//!
//! The port is split per aggregate so that reading which traits a piece of code uses tells what
//! it touches. Operations that must be atomic are single methods, so no backend can get them
//! half right.

use async_trait::async_trait;

use crate::client::Client;
use crate::user::User;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique key (client_id, user name, key id) is taken.
    #[error("{0} already exists")]
    Conflict(String),
    /// The database failed or is unreachable; the text is for logs only.
    #[error("database error: {0}")]
    Backend(String),
}

/// An opaque access token as stored: only the keyed hash of the token itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessTokenRecord {
    pub token_hash: String,
    pub jti: String,
    pub client_id: String,
    pub user_id: Option<String>,
    pub scope: String,
    pub issued_at: i64,
    pub expires_at: i64,
    pub revoked: bool,
}

/// A signing key as stored: the private half sealed under the master key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSigningKey {
    pub kid: String,
    pub alg: String,
    pub private_key_sealed: Vec<u8>,
    pub public_jwk: String,
    pub created_at: i64,
    /// The key signs from this instant on; before it, it is only published.
    pub activates_at: i64,
}

#[async_trait]
pub trait ClientStore: Send + Sync {
    async fn insert_client(&self, client: &Client) -> Result<(), StoreError>;
    /// Replaces the record with the same `client_id`; `false` when there is none.
    async fn update_client(&self, client: &Client) -> Result<bool, StoreError>;
    async fn find_client(&self, client_id: &str) -> Result<Option<Client>, StoreError>;
    async fn list_clients(&self) -> Result<Vec<Client>, StoreError>;
    /// Deletes the application and every token issued to it.
    async fn delete_client(&self, client_id: &str) -> Result<bool, StoreError>;
}

#[async_trait]
pub trait UserStore: Send + Sync {
    async fn insert_user(&self, user: &User) -> Result<(), StoreError>;
    async fn update_user(&self, user: &User) -> Result<bool, StoreError>;
    async fn find_user_by_name(&self, user_name: &str) -> Result<Option<User>, StoreError>;
    async fn find_user_by_id(&self, id: &str) -> Result<Option<User>, StoreError>;
    async fn list_users(&self) -> Result<Vec<User>, StoreError>;
    /// Deletes the user and every token issued for them.
    async fn delete_user(&self, user_name: &str) -> Result<bool, StoreError>;
}

#[async_trait]
pub trait TokenStore: Send + Sync {
    async fn insert_access_token(&self, token: &AccessTokenRecord) -> Result<(), StoreError>;
    async fn find_access_token(
        &self,
        token_hash: &str,
    ) -> Result<Option<AccessTokenRecord>, StoreError>;
    /// Marks an opaque token revoked; `false` when it is unknown.
    async fn revoke_access_token(&self, token_hash: &str) -> Result<bool, StoreError>;
    /// Records a revoked JWT by its `jti` until it would have expired anyway.
    async fn revoke_jwt(&self, jti: &str, expires_at: i64) -> Result<(), StoreError>;
    async fn is_jwt_revoked(&self, jti: &str) -> Result<bool, StoreError>;
    /// Deletes tokens and revocation entries that expired before `now`; returns how many.
    async fn purge_expired(&self, now: i64) -> Result<u64, StoreError>;
}

#[async_trait]
pub trait KeyStore: Send + Sync {
    async fn insert_signing_key(&self, key: &StoredSigningKey) -> Result<(), StoreError>;
    /// Every key, oldest activation first.
    async fn list_signing_keys(&self) -> Result<Vec<StoredSigningKey>, StoreError>;
}

/// Everything Gatehouse persists, behind one object the server holds as `Arc<dyn Store>`.
#[async_trait]
pub trait Store: ClientStore + UserStore + TokenStore + KeyStore + Send + Sync {
    /// A cheap round trip, for readiness checks.
    async fn ping(&self) -> Result<(), StoreError>;
    /// `sqlite` or `postgres`, for logs.
    fn backend_name(&self) -> &'static str;
}
