//! The storage port. Gatehouse's domain talks to its database only through these traits; the
//! `gatehouse-store` crate implements them for SQLite and PostgreSQL.
//!
//! The port is split per aggregate so that reading which traits a piece of code uses tells what
//! it touches. Operations that must be atomic are single methods, so no backend can get them
//! half right.

use async_trait::async_trait;

use crate::client::Client;
use crate::federation::JwtProvider;
use crate::outbound::{OAuthProvider, OutboundTokenRecord};
use crate::user::User;

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// A unique key (client_id, user name, key id) is taken.
    #[error("{0} already exists")]
    Conflict(String),
    /// The database cannot be reached for now — unreachable, refusing connections, shutting
    /// down, or held by another writer past the busy timeout — so the same request may succeed
    /// later; the text is for logs only.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The database failed; the text is for logs only.
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
    /// The authorization grant (code or login) the token descends from, if any.
    pub grant_id: Option<String>,
    /// The audiences the token is for; empty on tokens from before audiences, which are for
    /// this server's issuer.
    pub audience: Vec<String>,
    /// Who acts for the subject, when a token exchange delegated it (RFC 8693 §4.1).
    pub act: Option<crate::token::Act>,
    /// The thumbprint of the DPoP key the token is bound to (RFC 9449 §6.2).
    pub dpop_jkt: Option<String>,
}

/// An authorization code as stored, by the keyed hash of the code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationCodeRecord {
    pub code_hash: String,
    pub grant_id: String,
    pub client_id: String,
    pub user_id: String,
    pub redirect_uri: Option<String>,
    pub scope: String,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub auth_time: i64,
    pub expires_at: i64,
    pub consumed: bool,
    /// The resources the authorization request named (RFC 8707 §2.1), or this server's issuer.
    pub audience: Vec<String>,
    /// The login session the code was issued in (its `sid`), for the ID token.
    pub sid: Option<String>,
    /// The thumbprint of the DPoP key the authorization request bound the code to (RFC 9449
    /// §10): only a token request with a proof of that key redeems it.
    pub dpop_jkt: Option<String>,
}

/// The outcome of redeeming a code: codes are single-use, and only by their own client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeRedemption {
    Redeemed(AuthorizationCodeRecord),
    /// The code had been redeemed before by its client: everything issued from it must be
    /// revoked.
    Replayed(AuthorizationCodeRecord),
    /// The code was issued to another client; it was left as it was.
    OtherClient,
    Unknown,
}

/// A refresh token as stored, by the keyed hash of the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshTokenRecord {
    pub token_hash: String,
    /// The family: every refresh token rotated from the same original grant shares it.
    pub grant_id: String,
    pub client_id: String,
    pub user_id: String,
    pub scope: String,
    pub auth_time: i64,
    pub issued_at: i64,
    pub expires_at: i64,
    /// When it was exchanged for its successor.
    pub rotated_at: Option<i64>,
    pub revoked: bool,
    /// The audiences of the original grant, which refresh requests may narrow; empty on tokens
    /// from before audiences, which are for this server's issuer.
    pub audience: Vec<String>,
    /// The thumbprint of the DPoP key a public client's refresh token is bound to (RFC 9449
    /// §5): it is then used only with a proof of that key.
    pub dpop_jkt: Option<String>,
}

/// A pushed authorization request (RFC 9126), by the keyed hash of its `request_uri`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushedRequestRecord {
    pub request_hash: String,
    pub client_id: String,
    /// The request's parameters, as the pushed-request module encodes them.
    pub parameters: String,
    pub expires_at: i64,
}

/// Where a device authorization (RFC 8628) stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceStatus {
    /// Waiting for the user to enter the code.
    Pending,
    /// The user allowed it; the device's next poll gets tokens.
    Approved,
    /// The user denied it.
    Denied,
    /// Tokens were issued for it.
    Redeemed,
}

impl DeviceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceStatus::Pending => "pending",
            DeviceStatus::Approved => "approved",
            DeviceStatus::Denied => "denied",
            DeviceStatus::Redeemed => "redeemed",
        }
    }

    pub fn parse(value: &str) -> Option<DeviceStatus> {
        [
            DeviceStatus::Pending,
            DeviceStatus::Approved,
            DeviceStatus::Denied,
            DeviceStatus::Redeemed,
        ]
        .into_iter()
        .find(|status| status.as_str() == value)
    }
}

/// A device authorization (RFC 8628), by the keyed hash of its device code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceAuthorizationRecord {
    pub device_code_hash: String,
    /// The code the user types, normalised (upper case, no separators).
    pub user_code: String,
    pub client_id: String,
    pub scope: String,
    /// The resources the request named, or this server's issuer.
    pub audience: Vec<String>,
    pub expires_at: i64,
    /// The seconds the device must wait between polls; grows with every `slow_down`.
    pub interval: i64,
    pub last_polled_at: Option<i64>,
    pub status: DeviceStatus,
    /// Who decided, and when they logged in, once someone did.
    pub user_id: Option<String>,
    pub auth_time: Option<i64>,
}

/// Tokens revoked together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenFamily<'a> {
    /// Issued from one grant.
    Grant(&'a str),
    /// Given to a client by a user's consent.
    Consent {
        user_id: &'a str,
        client_id: &'a str,
    },
    /// Issued to a client, for anyone.
    Client(&'a str),
}

/// Whose tokens an administrator lists: a user's (by id, from any application) or an
/// application's (by client_id, for anyone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenHolder<'a> {
    User(&'a str),
    Client(&'a str),
}

/// The outcome of rotating a refresh token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshRotation {
    /// The token was current; it is now rotated and its successor stored.
    Rotated(RefreshTokenRecord),
    /// The token was rotated within the grace period, and its first rotation left this sealed
    /// answer for a client that lost it; nothing was stored.
    Repeated {
        record: RefreshTokenRecord,
        sealed_answer: Vec<u8>,
    },
    /// The token exists but was rotated before (outside the grace period), revoked or expired;
    /// nothing was stored.
    Refused(RefreshTokenRecord),
    Unknown,
}

/// A login session, by the keyed hash of its cookie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub session_hash: String,
    pub user_id: String,
    pub auth_time: i64,
    pub expires_at: i64,
}

/// A user's remembered consent to an application's scopes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentRecord {
    pub user_id: String,
    pub client_id: String,
    pub scope: String,
    pub granted_at: i64,
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

/// A configuration entry of the registry (scope, scope rule, route, ...): a JSON document by
/// kind and name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryRecord {
    pub kind: String,
    pub name: String,
    pub body: String,
    pub managed: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

#[async_trait]
pub trait EntryStore: Send + Sync {
    async fn insert_entry(&self, entry: &EntryRecord) -> Result<(), StoreError>;
    /// Replaces the body of the entry with the same kind and name; `false` when there is none.
    async fn update_entry(&self, entry: &EntryRecord) -> Result<bool, StoreError>;
    /// Every entry of every kind, by kind and name.
    async fn list_entries(&self) -> Result<Vec<EntryRecord>, StoreError>;
    async fn delete_entry(&self, kind: &str, name: &str) -> Result<bool, StoreError>;
}

/// A record of the Table API: its fields and the system fields Gatehouse keeps.
#[derive(Debug, Clone, PartialEq)]
pub struct TableRecord {
    pub sys_id: String,
    pub fields: serde_json::Map<String, serde_json::Value>,
    pub sys_created_on: i64,
    pub sys_updated_on: i64,
    pub sys_mod_count: i64,
}

/// Which records of a table to list: equality filters on fields (compared as text), oldest
/// first, one page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordQuery {
    pub filters: Vec<(String, String)>,
    pub limit: u64,
    pub offset: u64,
}

#[async_trait]
pub trait TableStore: Send + Sync {
    async fn insert_record(&self, table: &str, record: &TableRecord) -> Result<(), StoreError>;
    async fn find_record(
        &self,
        table: &str,
        sys_id: &str,
    ) -> Result<Option<TableRecord>, StoreError>;
    /// One page of matching records and the number of all matching records.
    async fn list_records(
        &self,
        table: &str,
        query: &RecordQuery,
    ) -> Result<(Vec<TableRecord>, u64), StoreError>;
    /// Replaces the record if its `sys_mod_count` is still `expected_mod_count` (a
    /// compare-and-swap); `false` when another change came first or the record is gone.
    async fn replace_record(
        &self,
        table: &str,
        record: &TableRecord,
        expected_mod_count: i64,
    ) -> Result<bool, StoreError>;
    async fn delete_record(&self, table: &str, sys_id: &str) -> Result<bool, StoreError>;
}

#[async_trait]
pub trait ClientStore: Send + Sync {
    /// Inserts an application; `Conflict` when its client_id or one of its audiences is taken.
    async fn insert_client(&self, client: &Client) -> Result<(), StoreError>;
    /// Replaces the record with the same `client_id`; `false` when there is none; `Conflict`
    /// when one of its audiences belongs to another application.
    async fn update_client(&self, client: &Client) -> Result<bool, StoreError>;
    async fn find_client(&self, client_id: &str) -> Result<Option<Client>, StoreError>;
    /// The application that registered an audience identifier.
    async fn find_client_by_audience(&self, audience: &str) -> Result<Option<Client>, StoreError>;
    async fn list_clients(&self) -> Result<Vec<Client>, StoreError>;
    /// Deletes the application and every token issued to it.
    async fn delete_client(&self, client_id: &str) -> Result<bool, StoreError>;
}

/// The outcome of changing or deleting a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserWrite {
    Done,
    NotFound,
    /// Refused, nothing changed: it would have left no user who keeps the registry manageable
    /// ([`User::is_keeping_administrator`]) where there was one.
    LastAdministrator,
}

#[async_trait]
pub trait UserStore: Send + Sync {
    async fn insert_user(&self, user: &User) -> Result<(), StoreError>;
    /// Replaces the record with the same user name, unless that takes away the last user who
    /// keeps the registry manageable. The check holds a lock on those users' rows until the
    /// change commits, so of concurrent demotions of the last two, one is refused. With
    /// `end_tokens`, the user's sessions, authorization codes, refresh tokens and opaque access
    /// tokens end in the same transaction.
    async fn update_user(&self, user: &User, end_tokens: bool) -> Result<UserWrite, StoreError>;
    async fn find_user_by_name(&self, user_name: &str) -> Result<Option<User>, StoreError>;
    async fn find_user_by_id(&self, id: &str) -> Result<Option<User>, StoreError>;
    async fn list_users(&self) -> Result<Vec<User>, StoreError>;
    /// Deletes the user and every token issued for them, under the rule of `update_user`.
    async fn delete_user(&self, user_name: &str) -> Result<UserWrite, StoreError>;
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
    /// Every revoked JWT that has not expired at `now`, as (`jti`, expiry).
    async fn list_revoked_jwts(&self, now: i64) -> Result<Vec<(String, i64)>, StoreError>;
    /// The JWT access tokens of a family that have not expired at `now`, as (`jti`, expiry):
    /// after the family is revoked, what an instance adds to the revoked JWTs it knows.
    async fn list_family_jwts(
        &self,
        family: TokenFamily<'_>,
        now: i64,
    ) -> Result<Vec<(String, i64)>, StoreError>;
    /// The access tokens of `holder` in service at `now` — unexpired, unrevoked, and for JWTs
    /// not among the revoked ones —, newest first, at most `limit`.
    async fn list_held_access_tokens(
        &self,
        holder: TokenHolder<'_>,
        now: i64,
        limit: u64,
    ) -> Result<Vec<AccessTokenRecord>, StoreError>;
    /// Deletes tokens, codes, sessions and revocation entries that expired before `now`;
    /// returns how many. It deletes in short slices, each its own transaction, so a large
    /// backlog never holds the writer long enough to stall issuance.
    async fn purge_expired(&self, now: i64) -> Result<u64, StoreError>;
    /// How many stored tokens are in service at `now`: not expired, not revoked and, for
    /// refresh tokens, not rotated. JWTs outside a person's grant are never stored, so they are
    /// not among them.
    async fn count_active_tokens(&self, now: i64) -> Result<ActiveTokens, StoreError>;
}

/// The stored tokens in service, by kind (see [`TokenStore::count_active_tokens`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ActiveTokens {
    /// Opaque access tokens and the JWT access tokens of people's grants.
    pub access: u64,
    pub refresh: u64,
}

#[async_trait]
pub trait GrantStore: Send + Sync {
    async fn insert_authorization_code(
        &self,
        code: &AuthorizationCodeRecord,
    ) -> Result<(), StoreError>;
    /// Marks the code consumed if it was issued to `client_id`, atomically: of any number of
    /// concurrent redemptions by its client exactly one gets `Redeemed`, and a redemption by
    /// another client changes nothing.
    async fn redeem_authorization_code(
        &self,
        code_hash: &str,
        client_id: &str,
    ) -> Result<CodeRedemption, StoreError>;
    async fn insert_refresh_token(&self, token: &RefreshTokenRecord) -> Result<(), StoreError>;
    async fn find_refresh_token(
        &self,
        token_hash: &str,
    ) -> Result<Option<RefreshTokenRecord>, StoreError>;
    /// Atomically marks `old_hash` rotated and stores `successor` — if `old_hash` is unrevoked,
    /// unexpired at `now`, and was never rotated. Of any number of concurrent rotations, exactly
    /// one gets `Rotated`. With `grace > 0` it keeps `sealed_answer` until `now + grace`, and a
    /// later rotation of the same token before then gets `Repeated` with the answer last kept.
    async fn rotate_refresh_token(
        &self,
        old_hash: &str,
        successor: &RefreshTokenRecord,
        sealed_answer: &[u8],
        now: i64,
        grace: i64,
    ) -> Result<RefreshRotation, StoreError>;
    /// Replaces the answer kept for a rotated refresh token (by [`rotate_refresh_token`]) while
    /// its grace period lasts.
    ///
    /// [`rotate_refresh_token`]: GrantStore::rotate_refresh_token
    async fn keep_refresh_answer(
        &self,
        old_hash: &str,
        sealed_answer: &[u8],
    ) -> Result<(), StoreError>;
    /// Revokes every access and refresh token issued from a grant. The grant is first recorded
    /// as revoked (until `remember_until`) and committed, and only then are its tokens revoked,
    /// so an issuance that stores its tokens and then asks [`GrantStore::is_grant_revoked`]
    /// either finds the record or had its tokens stored before they were revoked.
    async fn revoke_grant(&self, grant_id: &str, remember_until: i64) -> Result<(), StoreError>;
    /// Whether [`GrantStore::revoke_grant`] revoked the grant.
    async fn is_grant_revoked(&self, grant_id: &str) -> Result<bool, StoreError>;
    /// Revokes every grant a user gave a client (consent withdrawn).
    async fn revoke_user_client_grants(
        &self,
        user_id: &str,
        client_id: &str,
    ) -> Result<(), StoreError>;
    /// Revokes every access and refresh token issued to a client, records its stored JWTs as
    /// revoked and, in the same transaction, raises its `tokens_revoked_at` to `cutoff` (never
    /// lowers it). Tokens being issued meanwhile may escape the first two; the cutoff is what
    /// refuses them, and the JWTs stored nowhere, when they are presented.
    async fn revoke_client_grants(&self, client_id: &str, cutoff: i64) -> Result<(), StoreError>;
    /// The refresh tokens of `holder` in service at `now` — unexpired, unrevoked, not rotated —,
    /// newest first, at most `limit`.
    async fn list_held_refresh_tokens(
        &self,
        holder: TokenHolder<'_>,
        now: i64,
        limit: u64,
    ) -> Result<Vec<RefreshTokenRecord>, StoreError>;
}

#[async_trait]
pub trait PushedRequestStore: Send + Sync {
    async fn insert_pushed_request(&self, request: &PushedRequestRecord) -> Result<(), StoreError>;
    /// Deletes the request and returns it, atomically: of concurrent uses exactly one gets it.
    async fn take_pushed_request(
        &self,
        request_hash: &str,
    ) -> Result<Option<PushedRequestRecord>, StoreError>;
}

#[async_trait]
pub trait DeviceStore: Send + Sync {
    /// Stores a new device authorization; `Conflict` when its user code is taken.
    async fn insert_device_authorization(
        &self,
        authorization: &DeviceAuthorizationRecord,
    ) -> Result<(), StoreError>;
    async fn find_device_authorization(
        &self,
        device_code_hash: &str,
    ) -> Result<Option<DeviceAuthorizationRecord>, StoreError>;
    /// The authorization waiting for this user code, if it is pending and unexpired at `now`.
    async fn find_pending_device_authorization(
        &self,
        user_code: &str,
        now: i64,
    ) -> Result<Option<DeviceAuthorizationRecord>, StoreError>;
    /// Records the user's answer, if the authorization is still pending and unexpired at
    /// `now`; `false` (and nothing changed) otherwise. Of two answers exactly one counts.
    async fn decide_device_authorization(
        &self,
        user_code: &str,
        status: DeviceStatus,
        user_id: &str,
        auth_time: i64,
        now: i64,
    ) -> Result<bool, StoreError>;
    /// Records a poll at `now` and the interval the device must keep from then on.
    async fn record_device_poll(
        &self,
        device_code_hash: &str,
        now: i64,
        interval: i64,
    ) -> Result<(), StoreError>;
    /// Marks an approved authorization redeemed; `false` when it was not approved (e.g. a
    /// concurrent poll redeemed it first), so tokens are issued once.
    async fn redeem_device_authorization(&self, device_code_hash: &str)
    -> Result<bool, StoreError>;
}

#[async_trait]
pub trait SessionStore: Send + Sync {
    async fn insert_session(&self, session: &SessionRecord) -> Result<(), StoreError>;
    async fn find_session(&self, session_hash: &str) -> Result<Option<SessionRecord>, StoreError>;
    /// Deletes a session and returns it, when there was one.
    async fn take_session(&self, session_hash: &str) -> Result<Option<SessionRecord>, StoreError>;
    /// The user's sessions that have not expired by `now`.
    async fn list_user_sessions(
        &self,
        user_id: &str,
        now: i64,
    ) -> Result<Vec<SessionRecord>, StoreError>;
    async fn upsert_consent(&self, consent: &ConsentRecord) -> Result<(), StoreError>;
    async fn find_consent(
        &self,
        user_id: &str,
        client_id: &str,
    ) -> Result<Option<ConsentRecord>, StoreError>;
    async fn list_consents(&self, user_id: &str) -> Result<Vec<ConsentRecord>, StoreError>;
    async fn delete_consent(&self, user_id: &str, client_id: &str) -> Result<bool, StoreError>;
}

#[async_trait]
pub trait KeyStore: Send + Sync {
    async fn insert_signing_key(&self, key: &StoredSigningKey) -> Result<(), StoreError>;
    /// Stores `key` only if no key of its algorithm activates at or after `since` (none at all
    /// with `i64::MIN`), atomically across every instance on the database; `false` (and nothing
    /// stored) when one does. A new installation's first keys and scheduled rotations go
    /// through it, so instances doing either at once store one key between them.
    async fn insert_signing_key_unless_since(
        &self,
        key: &StoredSigningKey,
        since: i64,
    ) -> Result<bool, StoreError>;
    /// Every key, oldest activation first.
    async fn list_signing_keys(&self) -> Result<Vec<StoredSigningKey>, StoreError>;
    /// Deletes the key `kid` and stores `replacement`, if any, in one transaction; `false` (and
    /// nothing stored) when there is no such key, e.g. because a concurrent retirement came
    /// first.
    async fn retire_signing_key(
        &self,
        kid: &str,
        replacement: Option<&StoredSigningKey>,
    ) -> Result<bool, StoreError>;
}

/// Outbound OAuth: providers (by name) and the tokens obtained for profiles (which, like
/// aliases, are registry entries).
#[async_trait]
pub trait OutboundStore: Send + Sync {
    async fn insert_provider(&self, provider: &OAuthProvider) -> Result<(), StoreError>;
    async fn update_provider(&self, provider: &OAuthProvider) -> Result<bool, StoreError>;
    async fn find_provider(&self, name: &str) -> Result<Option<OAuthProvider>, StoreError>;
    async fn list_providers(&self) -> Result<Vec<OAuthProvider>, StoreError>;
    async fn delete_provider(&self, name: &str) -> Result<bool, StoreError>;
    async fn find_outbound_token(
        &self,
        profile: &str,
        owner: &str,
    ) -> Result<Option<OutboundTokenRecord>, StoreError>;
    /// Stores the token of a (profile, owner), replacing the previous one.
    async fn save_outbound_token(&self, token: &OutboundTokenRecord) -> Result<(), StoreError>;
    /// Drops every token obtained for a profile.
    async fn delete_outbound_tokens(&self, profile: &str) -> Result<(), StoreError>;
}

#[async_trait]
pub trait FederationStore: Send + Sync {
    async fn insert_jwt_provider(&self, provider: &JwtProvider) -> Result<(), StoreError>;
    /// Replaces the record with the same name; `false` when there is none.
    async fn update_jwt_provider(&self, provider: &JwtProvider) -> Result<bool, StoreError>;
    async fn find_jwt_provider(&self, name: &str) -> Result<Option<JwtProvider>, StoreError>;
    async fn list_jwt_providers(&self) -> Result<Vec<JwtProvider>, StoreError>;
    async fn delete_jwt_provider(&self, name: &str) -> Result<bool, StoreError>;
    /// Records that an assertion (by a hash of its issuer and `jti`) was used, until
    /// `expires_at`. `false` when it was already recorded: of concurrent uses exactly one wins.
    async fn record_assertion_use(&self, key: &str, expires_at: i64) -> Result<bool, StoreError>;
    async fn find_user_by_email(&self, email: &str) -> Result<Option<User>, StoreError>;
}

/// One event of the audit trail, as stored: a change to the registry or a security event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// Assigned by the store, increasing; ignored on insert.
    pub id: i64,
    pub at: i64,
    /// `subject.action`, e.g. `application.updated`, `sign_in.failed`.
    pub kind: String,
    /// Who acted: an administrator's user name, `cli`, `apply` or `server`; for sign-ins, the
    /// user name given.
    pub actor: String,
    /// The application the actor came through (the admin API's token, a token request).
    pub client_id: Option<String>,
    /// The client address of the request, when there was one.
    pub address: Option<String>,
    /// The key of the record the event is about (a client_id, a user name, a key id).
    pub subject: String,
    /// A JSON object: the fields changed with their old and new values, or the event's facts.
    pub details: String,
}

/// Which audit events to list: newest first, optionally older than the event `before` (the
/// page after one that ended with it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// Only events at or after this time.
    pub since: Option<i64>,
    /// Only events of this kind, or of this subject (`user` matches `user.updated`).
    pub kind: Option<String>,
    pub actor: Option<String>,
    pub before: Option<i64>,
    pub limit: u64,
}

#[async_trait]
pub trait AuditStore: Send + Sync {
    async fn insert_audit(&self, record: &AuditRecord) -> Result<(), StoreError>;
    async fn list_audit(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError>;
    /// Deletes the events from before `before`; returns how many.
    async fn prune_audit(&self, before: i64) -> Result<u64, StoreError>;
}

/// A transaction of the store: it reads and writes like the store (it is one), and what it
/// wrote becomes visible at `commit`, all of it, or never if it is dropped uncommitted. Change
/// notices it publishes are sent on commit.
#[async_trait]
pub trait StoreTransaction: Store {
    async fn commit(&self) -> Result<(), StoreError>;
    /// Marks a point to return to, so that a step that fails can be undone alone and the
    /// transaction goes on (on PostgreSQL a failed statement otherwise spoils all of it).
    async fn savepoint(&self) -> Result<(), StoreError>;
    /// Undoes what was written since the last savepoint, and ends it.
    async fn rollback_to_savepoint(&self) -> Result<(), StoreError>;
    /// Keeps what was written since the last savepoint, and ends it.
    async fn release_savepoint(&self) -> Result<(), StoreError>;
}

/// Everything Gatehouse persists, behind one object the server holds as `Arc<dyn Store>`.
#[async_trait]
pub trait Store:
    ClientStore
    + UserStore
    + TokenStore
    + GrantStore
    + PushedRequestStore
    + DeviceStore
    + SessionStore
    + KeyStore
    + OutboundStore
    + EntryStore
    + FederationStore
    + TableStore
    + AuditStore
    + Send
    + Sync
{
    /// Opens a transaction. Within one, do not use the store itself to write: on SQLite the
    /// transaction holds the one writer connection until it ends.
    async fn begin(&self) -> Result<std::sync::Arc<dyn StoreTransaction>, StoreError>;
    /// A cheap round trip, for readiness checks.
    async fn ping(&self) -> Result<(), StoreError>;
    /// `sqlite` or `postgres`, for logs.
    fn backend_name(&self) -> &'static str;
    /// Tells other instances sharing the database that a registry record changed
    /// (`client:ID`, `user:NAME`). A single-instance backend does nothing.
    async fn publish_change(&self, notice: &str) -> Result<(), StoreError>;
    /// The change notices of other instances, for backends that several instances share.
    async fn subscribe_changes(
        &self,
    ) -> Result<Option<tokio::sync::mpsc::Receiver<String>>, StoreError>;
}
