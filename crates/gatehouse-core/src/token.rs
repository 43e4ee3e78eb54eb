//! Access tokens: minting (opaque or RFC 9068 JWT), validation, introspection (RFC 7662) and
//! revocation (RFC 7009).

use crate::audit::{self, Actor, AuditEvent};
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use crate::Error;
use std::collections::HashMap;
use std::sync::RwLock;

use crate::audience;
use crate::cache::{CacheStats, RecordCache, RegistryCache};
use crate::client::{Client, ClientType, TokenFormat};
use crate::clock::Clock;
use crate::inspection::{Check, Checks, Halt, TokenFacts, TokenReport};
use crate::keys::{KeyRing, KeyState, SharedKeyRing, SigningAlgorithm, SigningKey};
use crate::logout::{LOGOUT_TOKEN_TYPE, LogoutClaims};
use crate::scope::ScopeSet;
use crate::secret::{self, MasterKey, Sealer, SecretHasher};
use crate::store::{AccessTokenRecord, RefreshTokenRecord, Store, TokenFamily};
use crate::user::User;

/// Every opaque access token starts with this, so leaked tokens are easy to recognise in logs
/// and by secret scanners.
pub const OPAQUE_ACCESS_TOKEN_PREFIX: &str = "gh_at_";

/// The body of a successful token response (RFC 6749 §5.1).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: String,
    pub expires_in: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    /// RFC 8693 §2.2.1: what a token exchange issued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued_token_type: Option<String>,
}

/// Prefix of opaque refresh tokens.
pub const REFRESH_TOKEN_PREFIX: &str = "gh_rt_";

/// What a token is issued for.
pub struct Issue<'a> {
    pub client: &'a Client,
    /// The user the token acts for, if any.
    pub user: Option<&'a User>,
    pub scope: &'a ScopeSet,
    /// The grant a person gave (a code or a password login) that the tokens descend from.
    pub grant: Option<GrantLink<'a>>,
    /// A refresh token already stored by the caller, to hand out with the access token.
    pub refresh_token: Option<String>,
    /// Whether to add an ID token (the token endpoint does when `openid` was granted).
    pub with_id_token: bool,
    /// Whom the access token is for (from [`TokenService::audience_for`] or a grant's record).
    pub audience: &'a [String],
    /// The token a token exchange made this one from, when it did.
    pub exchanged: Option<Exchanged<'a>>,
    /// The thumbprint of the key the access token is bound to (RFC 9449), when the request
    /// proved possession of one.
    pub dpop_jkt: Option<&'a str>,
}

/// What an access token made by a token exchange (RFC 8693) keeps of the subject token.
#[derive(Debug, Clone, Copy)]
pub struct Exchanged<'a> {
    /// Who acts for the subject.
    pub act: Option<&'a Act>,
    /// The subject token's expiry: a token made from it never outlives it.
    pub expires_by: i64,
}

/// RFC 8693 §4.1: the party acting for a token's subject (a delegation). `act` nests the actors
/// of earlier delegations, the most recent outermost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Act {
    pub sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Box<Act>>,
}

impl Act {
    /// How many actors the chain names.
    pub fn depth(&self) -> usize {
        1 + self.act.as_ref().map_or(0, |earlier| earlier.depth())
    }
}

/// The person's authorization behind an issuance: revocable as one, and what ID tokens tell.
#[derive(Debug, Clone, Copy)]
pub struct GrantLink<'a> {
    pub grant_id: &'a str,
    pub auth_time: i64,
    pub nonce: Option<&'a str>,
    /// The login session the person authorized in (its `sid`), when it was a browser's.
    pub sid: Option<&'a str>,
}

/// What a valid access token grants: the facts every protected API decides on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessTokenInfo {
    pub jti: String,
    pub client_id: String,
    pub user_id: Option<String>,
    pub user_name: Option<String>,
    pub scope: ScopeSet,
    pub issued_at: i64,
    pub expires_at: i64,
    pub format: TokenFormat,
    /// Whom the token is for: this server's issuer, or the resource servers it was requested
    /// for.
    pub audience: Vec<String>,
    /// Who acts for the subject, when a token exchange delegated it.
    pub act: Option<Act>,
    /// The thumbprint of the key the token is bound to (RFC 9449 §6): it is then accepted only
    /// with a DPoP proof of that key.
    pub dpop_jkt: Option<String>,
}

impl AccessTokenInfo {
    /// Whether the token was issued for `audience` (RFC 9068 §4: a resource server refuses
    /// tokens whose `aud` does not name it).
    pub fn is_for(&self, audience: &str) -> bool {
        self.audience.iter().any(|a| a == audience)
    }

    /// The RFC 9068 `sub`: the user when there is one, otherwise the client itself.
    pub fn subject(&self) -> &str {
        self.user_id.as_deref().unwrap_or(&self.client_id)
    }
}

/// The claims of a JWT access token (RFC 9068 §2.2).
#[derive(Debug, Serialize, Deserialize)]
struct AccessTokenClaims {
    iss: String,
    sub: String,
    #[serde(with = "audience_claim")]
    aud: Vec<String>,
    exp: i64,
    iat: i64,
    jti: String,
    client_id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    scope: String,
    /// The user's credential epoch at issuance; a token from before their password last
    /// changed, or they were last locked or deactivated, carries an older one. Absent for
    /// tokens without a user (and, read as 0, from tokens issued before epochs existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    credential_epoch: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    act: Option<Act>,
    /// The key the token is bound to (RFC 9449 §6.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cnf: Option<Confirmation>,
}

/// RFC 7800 `cnf`, with the JWK thumbprint RFC 9449 §6.1 binds tokens by.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Confirmation {
    pub jkt: String,
}

/// The `token_type` of an access token (RFC 9449 §5: `DPoP` when it is bound to a key).
fn token_type(dpop_jkt: Option<&str>) -> &'static str {
    if dpop_jkt.is_some() { "DPoP" } else { "Bearer" }
}

/// What an ID token of ours tells when it comes back as an `id_token_hint` (OpenID Connect Core
/// §3.1.2.1, RP-Initiated Logout 1.0 §2).
#[derive(Debug, Deserialize)]
struct IdTokenClaims {
    iss: String,
    sub: String,
    #[serde(with = "audience_claim")]
    aud: Vec<String>,
}

/// An `id_token_hint` that verified: the user it names and the client it was issued to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdTokenHint {
    pub subject: String,
    pub client_id: String,
}

/// A JWT with the claims of our access tokens, read before anything else is checked: the
/// claims, and the key that verified its signature or why none did.
struct ReadJwt {
    claims: AccessTokenClaims,
    signature: Result<String, &'static str>,
}

/// A compact JWS taken apart, nothing verified yet.
struct Jws<'a> {
    header: JwsHeader,
    signed: &'a str,
    signature: &'a str,
    claims: Vec<u8>,
}

impl<'a> Jws<'a> {
    fn parse(token: &'a str) -> Option<Jws<'a>> {
        let (signed, signature) = token.rsplit_once('.')?;
        let (header, claims) = signed.split_once('.')?;
        Some(Jws {
            header: serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).ok()?).ok()?,
            signed,
            signature,
            claims: URL_SAFE_NO_PAD.decode(claims).ok()?,
        })
    }
}

#[derive(Debug, Deserialize)]
struct JwsHeader {
    alg: String,
    #[serde(default)]
    typ: Option<String>,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    crit: Option<serde_json::Value>,
}

/// The RFC 7662 §2.2 introspection response.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct Introspection {
    pub active: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "optional_audience_claim"
    )]
    pub aud: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// RFC 8693 §4.1: who acts for the subject (the claim may be told by introspection too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Act>,
    /// The key a DPoP-bound token is bound to (RFC 9449 §6.2).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Confirmation>,
}

/// RFC 7519 §4.1.3: `aud` is one string when the token has one audience, an array otherwise.
mod audience_claim {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }

    pub fn serialize<S: Serializer>(audience: &[String], serializer: S) -> Result<S::Ok, S::Error> {
        match audience {
            [one] => one.serialize(serializer),
            many => many.serialize(serializer),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<String>, D::Error> {
        Ok(match OneOrMany::deserialize(deserializer)? {
            OneOrMany::One(one) => vec![one],
            OneOrMany::Many(many) => many,
        })
    }
}

/// `aud` of an introspection response, where it is optional.
mod optional_audience_claim {
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(
        audience: &Option<Vec<String>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match audience {
            Some(audience) => super::audience_claim::serialize(audience, serializer),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Vec<String>>, D::Error> {
        super::audience_claim::deserialize(deserializer).map(Some)
    }
}

/// Mints, validates, introspects and revokes access tokens.
pub struct TokenService {
    issuer: String,
    access_token_alg: SigningAlgorithm,
    store: Arc<dyn Store>,
    hasher: SecretHasher,
    master_key: MasterKey,
    keys: SharedKeyRing,
    cache: Arc<RegistryCache>,
    /// JWTs whose signature was recently checked, by hash: a client that calls an API many
    /// times with one token pays for one verification. Expiry, revocation, that the key is still
    /// published, and the client's and user's state are still checked on every use.
    verified: RecordCache<ReadJwt>,
    /// Revoked JWTs that have not expired yet (`jti` → expiry), so validating a JWT needs no
    /// database round trip. Added to by every revocation, here and on other instances' notices,
    /// and reloaded periodically.
    revoked_jwts: RwLock<HashMap<String, i64>>,
    clock: Arc<dyn Clock>,
}

/// What a revocation took out of service. Caches drop exactly that, on this instance at once
/// and on the others through a change notice, so a revocation costs what it revokes rather
/// than everyone's cached lookups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Revocation<'a> {
    /// An opaque access token, by hash.
    Opaque(&'a str),
    Jwt {
        jti: &'a str,
        expires_at: i64,
    },
    /// Every token of a grant (a replayed code, a reused or revoked refresh token).
    Grant(&'a str),
    /// Every token a user's consent gave a client.
    Consent {
        user_id: &'a str,
        client_id: &'a str,
    },
    /// Every token issued to a client (an administrator revoked them all).
    Client(&'a str),
}

/// The prefix of revocation notices.
const REVOCATION_NOTICE: &str = "revocation:";

impl<'a> Revocation<'a> {
    fn notice(self) -> String {
        match self {
            Revocation::Opaque(hash) => format!("{REVOCATION_NOTICE}opaque:{hash}"),
            Revocation::Jwt { jti, expires_at } => {
                format!("{REVOCATION_NOTICE}jwt:{expires_at}:{jti}")
            }
            Revocation::Grant(grant_id) => format!("{REVOCATION_NOTICE}grant:{grant_id}"),
            Revocation::Consent { user_id, client_id } => {
                format!("{REVOCATION_NOTICE}consent:{user_id}:{client_id}")
            }
            Revocation::Client(client_id) => format!("{REVOCATION_NOTICE}client:{client_id}"),
        }
    }

    /// The revocation a notice tells of (user ids never hold a `:`, so a client_id may).
    fn parse(notice: &'a str) -> Option<Self> {
        let (kind, rest) = notice.strip_prefix(REVOCATION_NOTICE)?.split_once(':')?;
        Some(match kind {
            "opaque" => Revocation::Opaque(rest),
            "jwt" => {
                let (expires_at, jti) = rest.split_once(':')?;
                Revocation::Jwt {
                    jti,
                    expires_at: expires_at.parse().ok()?,
                }
            }
            "grant" => Revocation::Grant(rest),
            "consent" => {
                let (user_id, client_id) = rest.split_once(':')?;
                Revocation::Consent { user_id, client_id }
            }
            "client" => Revocation::Client(rest),
            _ => return None,
        })
    }
}

/// How the store keys the JWT access tokens it records (a person's grant's), which have no hash:
/// by `jti`, under a prefix no hash has.
pub(crate) const JWT_RECORD_PREFIX: &str = "jwt:";

/// The change notice that tells other instances the signing keys changed.
const KEYS_NOTICE: &str = "keys";

/// How long a revoked grant is remembered: far longer than any request that is issuing tokens
/// from it can take.
const GRANT_REVOCATION_MEMORY: i64 = 3600;

impl TokenService {
    pub fn new(
        issuer: String,
        access_token_alg: SigningAlgorithm,
        store: Arc<dyn Store>,
        master_key: MasterKey,
        cache: Arc<RegistryCache>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        TokenService {
            cache,
            verified: RecordCache::new(clock.clone()),
            revoked_jwts: RwLock::default(),
            issuer,
            access_token_alg,
            store,
            hasher: master_key.secret_hasher(),
            master_key,
            keys: SharedKeyRing::default(),
            clock,
        }
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn clock(&self) -> &dyn Clock {
        self.clock.as_ref()
    }

    pub fn hasher(&self) -> &SecretHasher {
        &self.hasher
    }

    /// The key the store holds an opaque access token under.
    pub fn access_token_key(&self, token: &str) -> String {
        self.hasher.token_key(token, OPAQUE_ACCESS_TOKEN_PREFIX)
    }

    /// The key the store holds a refresh token under.
    pub fn refresh_token_key(&self, token: &str) -> String {
        self.hasher.token_key(token, REFRESH_TOKEN_PREFIX)
    }

    /// Encryption at rest under the master key.
    pub fn sealer(&self) -> Sealer {
        self.master_key.sealer()
    }

    /// An application, from the cache when it is fresh.
    pub async fn client(&self, client_id: &str) -> Result<Option<Arc<Client>>, Error> {
        self.cache
            .clients
            .get(client_id, || async {
                Ok(self.store.find_client(client_id).await?)
            })
            .await
    }

    /// A user by name, from the cache when it is fresh.
    pub async fn user_by_name(&self, user_name: &str) -> Result<Option<Arc<User>>, Error> {
        self.cache
            .users_by_name
            .get(user_name, || async {
                Ok(self.store.find_user_by_name(user_name).await?)
            })
            .await
    }

    /// A user by id, from the cache when it is fresh.
    pub async fn user(&self, user_id: &str) -> Result<Option<Arc<User>>, Error> {
        self.cache
            .users
            .get(user_id, || async {
                Ok(self.store.find_user_by_id(user_id).await?)
            })
            .await
    }

    /// How each cache of the token service and the registry has answered, by name.
    pub fn cache_stats(&self) -> Vec<(&'static str, CacheStats)> {
        let mut stats = self.cache.stats().to_vec();
        stats.push(("verified_jwts", self.verified.stats()));
        stats
    }

    pub fn key_ring(&self) -> Arc<KeyRing> {
        self.keys.get()
    }

    /// Reads the revoked JWTs from the store into memory. A revocation is never undone, so what
    /// is read is added to what is known (dropping what has expired): a reload that read the
    /// table before a concurrent one cannot overwrite the newer one's result.
    pub async fn reload_revocations(&self) -> Result<(), Error> {
        let now = self.clock.now();
        let revoked = self.store.list_revoked_jwts(now).await?;
        let mut known = self.revoked_jwts.write().unwrap_or_else(|p| p.into_inner());
        known.retain(|_, expires_at| *expires_at > now);
        known.extend(revoked);
        Ok(())
    }

    /// Whether the JWT `jti` is known here to be revoked (JWTs revoked by their client are
    /// recorded by `jti` alone).
    pub(crate) fn is_revoked(&self, jti: &str) -> bool {
        self.revoked_jwts
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(jti)
    }

    /// After a revocation here: update the caches, and tell other instances.
    async fn revoked(&self, revocation: Revocation<'_>) -> Result<(), Error> {
        self.forget(revocation).await?;
        self.store.publish_change(&revocation.notice()).await?;
        Ok(())
    }

    /// Drops what a revocation took out of service from the cached opaque tokens, and adds its
    /// JWTs to the revoked ones.
    async fn forget(&self, revocation: Revocation<'_>) -> Result<(), Error> {
        let now = self.clock.now();
        let family = match revocation {
            Revocation::Opaque(hash) => {
                self.cache.opaque_tokens.invalidate(hash);
                return Ok(());
            }
            Revocation::Jwt { jti, expires_at } => {
                self.remember_revoked([(jti.to_owned(), expires_at)], now);
                return Ok(());
            }
            Revocation::Grant(grant_id) => {
                self.cache
                    .opaque_tokens
                    .invalidate_where(|t| t.grant_id.as_deref() == Some(grant_id));
                TokenFamily::Grant(grant_id)
            }
            Revocation::Consent { user_id, client_id } => {
                self.cache.opaque_tokens.invalidate_where(|t| {
                    t.client_id == client_id && t.user_id.as_deref() == Some(user_id)
                });
                TokenFamily::Consent { user_id, client_id }
            }
            Revocation::Client(client_id) => {
                // The cached client holds its cutoff.
                self.cache.clients.invalidate(client_id);
                self.cache
                    .opaque_tokens
                    .invalidate_where(|t| t.client_id == client_id);
                TokenFamily::Client(client_id)
            }
        };
        let jwts = self.store.list_family_jwts(family, now).await?;
        self.remember_revoked(jwts, now);
        Ok(())
    }

    fn remember_revoked(&self, jwts: impl IntoIterator<Item = (String, i64)>, now: i64) {
        let mut known = self.revoked_jwts.write().unwrap_or_else(|p| p.into_inner());
        known.extend(jwts.into_iter().filter(|(_, expires_at)| *expires_at > now));
    }

    /// Handles a change notice from another instance.
    pub async fn apply_notice(&self, notice: &str) -> Result<(), Error> {
        if notice == KEYS_NOTICE {
            return self.reload_keys().await;
        }
        if notice.starts_with(REVOCATION_NOTICE) {
            return match Revocation::parse(notice) {
                Some(revocation) => self.forget(revocation).await,
                // From a version that said less: start over.
                None => {
                    self.cache.opaque_tokens.clear();
                    self.reload_revocations().await
                }
            };
        }
        self.cache.apply_notice(notice);
        Ok(())
    }

    /// Revokes every token issued from a grant (a replayed code, a reused refresh token),
    /// including tokens another request is issuing from it at this moment: see [`Self::issue`].
    pub async fn revoke_grant(&self, grant_id: &str) -> Result<(), Error> {
        let remember_until = self.clock.now() + GRANT_REVOCATION_MEMORY;
        self.store.revoke_grant(grant_id, remember_until).await?;
        self.revoked(Revocation::Grant(grant_id)).await
    }

    /// Revokes every access and refresh token issued to a client, those being issued at this
    /// moment and its JWTs stored nowhere included: the client's cutoff refuses every token
    /// issued up to the second the revocation committed in. Issue times are whole seconds, so
    /// the cutoff is that second itself: the revocation is written again should the clock have
    /// passed into the next one before it committed (a token issued later in that second is
    /// refused too; the application asks again).
    pub(crate) async fn revoke_client(&self, client_id: &str) -> Result<(), Error> {
        let mut cutoff = self.clock.now();
        loop {
            self.store.revoke_client_grants(client_id, cutoff).await?;
            let committed_by = self.clock.now();
            if committed_by <= cutoff {
                break;
            }
            cutoff = committed_by;
        }
        self.revoked(Revocation::Client(client_id)).await
    }

    /// Takes one stored access token out of service: an opaque one in the store, a JWT by its
    /// `jti` until it would have expired.
    pub(crate) async fn revoke_access_token(
        &self,
        record: &AccessTokenRecord,
    ) -> Result<(), Error> {
        if record.token_hash.starts_with(JWT_RECORD_PREFIX) {
            return self.revoke_jwt(&record.jti, record.expires_at).await;
        }
        self.store.revoke_access_token(&record.token_hash).await?;
        self.revoked(Revocation::Opaque(&record.token_hash)).await
    }

    async fn revoke_jwt(&self, jti: &str, expires_at: i64) -> Result<(), Error> {
        self.store.revoke_jwt(jti, expires_at).await?;
        self.revoked(Revocation::Jwt { jti, expires_at }).await
    }

    /// Revokes every token a user's consent gave a client (the consent was withdrawn).
    pub async fn revoke_user_client(&self, user_id: &str, client_id: &str) -> Result<(), Error> {
        self.store
            .revoke_user_client_grants(user_id, client_id)
            .await?;
        self.revoked(Revocation::Consent { user_id, client_id })
            .await
    }

    /// Reads the signing keys from the store into memory. Called at start, on other instances'
    /// notices of a key change, and periodically (which also covers a change made by the CLI
    /// next to a server on SQLite, where there are no notices).
    pub async fn reload_keys(&self) -> Result<(), Error> {
        let ticket = self.keys.ticket();
        let sealer = self.master_key.sealer();
        let stored = self.store.list_signing_keys().await?;
        let keys = stored
            .iter()
            .map(|s| SigningKey::load(s, &sealer))
            .collect::<Result<Vec<_>, _>>()?;
        let max_lifetime = self
            .store
            .list_clients()
            .await?
            .iter()
            .map(|c| c.access_token_lifespan)
            .max()
            .unwrap_or(crate::client::DEFAULT_ACCESS_TOKEN_LIFESPAN)
            .max(crate::client::DEFAULT_ACCESS_TOKEN_LIFESPAN);
        self.keys.replace(ticket, KeyRing::new(keys, max_lifetime));
        Ok(())
    }

    /// Adds a signing key that is published now and signs from `now + delay`.
    pub async fn rotate_key(
        &self,
        alg: SigningAlgorithm,
        delay: i64,
        actor: &Actor,
    ) -> Result<String, Error> {
        let now = self.clock.now();
        let (stored, _) = SigningKey::generate(alg, now, now + delay, &self.master_key.sealer())?;
        let transaction = self.store.begin().await?;
        transaction.insert_signing_key(&stored).await?;
        let record = audit::write(&*transaction, now, actor, rotated_event(&stored)).await?;
        transaction.commit().await?;
        audit::log(&record);
        self.keys_changed().await?;
        Ok(stored.kid)
    }

    /// The audit event of a revocation (RFC 7009) by the client the token was issued to:
    /// `subject` is the grant of a refresh token, the `jti` of an access token.
    async fn token_revoked(&self, client: &Client, kind: &str, subject: &str) -> Result<(), Error> {
        self.security_event(
            Actor::at_request(&client.client_id, Some(&client.client_id)),
            AuditEvent::new("token.revoked", subject).with("token_type", kind),
        )
        .await
    }

    /// Records a security event of the token service (a replayed code, a reused refresh token,
    /// a revocation) by `actor`.
    pub(crate) async fn security_event(
        &self,
        actor: Actor,
        event: AuditEvent,
    ) -> Result<(), Error> {
        audit::record(&*self.store, self.clock.now(), &actor, event).await
    }

    /// Takes a key out of service at once (after a compromise): it is deleted, so it is no
    /// longer published and no token it signed verifies any more, here and — by the change
    /// notice — on every other instance. If it was the key its algorithm signs with, a new key
    /// of that algorithm replaces it in the same step and signs at once, so no algorithm is ever
    /// left without a key; relying parties meet its `kid` before their cached JWKS expires and
    /// fetch it again. Returns the replacement's kid.
    pub async fn retire_key(&self, kid: &str, actor: &Actor) -> Result<Option<String>, Error> {
        self.reload_keys().await?;
        let ring = self.keys.get();
        let now = self.clock.now();
        let key = ring
            .find(kid)
            .ok_or_else(|| Error::NotFound(format!("no signing key {kid}")))?;
        let replacement = if ring.state(kid, now) == Some(KeyState::Signing) {
            Some(SigningKey::generate(key.alg, now, now, &self.master_key.sealer())?.0)
        } else {
            None
        };
        let transaction = self.store.begin().await?;
        if !transaction
            .retire_signing_key(kid, replacement.as_ref())
            .await?
        {
            return Err(Error::NotFound(format!("no signing key {kid}")));
        }
        let mut event = AuditEvent::new("signing_key.retired", kid).with("alg", key.alg.as_str());
        if let Some(replacement) = &replacement {
            event = event.with("replacement", replacement.kid.as_str());
        }
        let record = audit::write(&*transaction, now, actor, event).await?;
        transaction.commit().await?;
        audit::log(&record);
        self.keys_changed().await?;
        Ok(replacement.map(|r| r.kid))
    }

    /// After a change of the stored keys here: reload them, and tell other instances.
    async fn keys_changed(&self) -> Result<(), Error> {
        self.reload_keys().await?;
        self.store.publish_change(KEYS_NOTICE).await?;
        Ok(())
    }

    /// Makes sure there is a key to sign with for access tokens and for ID tokens of either
    /// algorithm (the first start of a new installation). Instances starting together on an
    /// empty database each offer a key, the store keeps only the first of each algorithm, and
    /// every instance then signs with and publishes that one.
    pub async fn ensure_signing_keys(&self) -> Result<(), Error> {
        self.reload_keys().await?;
        let now = self.clock.now();
        let sealer = self.master_key.sealer();
        let mut stored_any = false;
        for alg in self.signing_algorithms() {
            if self.keys.get().signing_key(alg, now).is_none() {
                let (stored, _) = SigningKey::generate(alg, now, now, &sealer)?;
                stored_any |= self
                    .store
                    .insert_signing_key_unless_since(&stored, i64::MIN)
                    .await?;
            }
        }
        if stored_any {
            self.keys_changed().await
        } else {
            self.reload_keys().await
        }
    }

    /// The algorithms this server signs with: access tokens', and ID tokens' two.
    fn signing_algorithms(&self) -> Vec<SigningAlgorithm> {
        let mut algorithms = vec![
            self.access_token_alg,
            SigningAlgorithm::Es256,
            SigningAlgorithm::Rs256,
        ];
        algorithms.dedup();
        algorithms
    }

    /// The scheduled rotation: each algorithm whose newest key activated `interval` seconds ago
    /// or earlier gets a new key, published at once and signing after `delay` (the staged
    /// rotation of `rotate_key`). Every instance runs it; the store lets one key through per
    /// algorithm and period. Returns the new keys' ids.
    pub async fn rotate_due_keys(&self, interval: i64, delay: i64) -> Result<Vec<String>, Error> {
        let now = self.clock.now();
        let ring = self.keys.get();
        let sealer = self.master_key.sealer();
        let mut rotated = Vec::new();
        for alg in self.signing_algorithms() {
            if ring.rotation_due(alg, interval).is_none_or(|due| due > now) {
                continue;
            }
            let (stored, _) = SigningKey::generate(alg, now, now + delay, &sealer)?;
            let transaction = self.store.begin().await?;
            if transaction
                .insert_signing_key_unless_since(&stored, now - interval + 1)
                .await?
            {
                let record = audit::write(
                    &*transaction,
                    now,
                    &Actor::operator("server"),
                    rotated_event(&stored).with("scheduled", true),
                )
                .await?;
                transaction.commit().await?;
                audit::log(&record);
                rotated.push(stored.kid);
            }
        }
        if !rotated.is_empty() {
            self.keys_changed().await?;
        }
        Ok(rotated)
    }

    /// A new refresh token and its stored form; the caller stores it (or rotates into it).
    /// `dpop_jkt` binds it to a key (RFC 9449 §5: a public client's, which has nothing else
    /// to prove it is the client).
    pub fn mint_refresh_token(
        &self,
        client: &Client,
        user: &User,
        scope: &ScopeSet,
        audience: &[String],
        link: GrantLink<'_>,
        dpop_jkt: Option<&str>,
    ) -> (String, RefreshTokenRecord) {
        let now = self.clock.now();
        let token = format!(
            "{REFRESH_TOKEN_PREFIX}{}",
            secret::generate_ordered(self.clock.now_millis())
        );
        let record = RefreshTokenRecord {
            token_hash: self.refresh_token_key(&token),
            grant_id: link.grant_id.to_owned(),
            client_id: client.client_id.clone(),
            user_id: user.id.clone(),
            scope: scope.to_string(),
            auth_time: link.auth_time,
            issued_at: now,
            expires_at: now + client.refresh_token_lifespan,
            rotated_at: None,
            revoked: false,
            audience: audience.to_vec(),
            dpop_jkt: dpop_jkt.map(str::to_owned),
        };
        (token, record)
    }

    /// Issues an access token — plus the given refresh token, and an ID token when the scope
    /// asks for `openid` on behalf of a person.
    ///
    /// A grant can be revoked while its tokens are being issued (two redemptions of one code,
    /// two rotations of one refresh token racing): once the tokens are stored, the grant is
    /// looked up, and if it was revoked meanwhile, it is revoked again so they go with it.
    pub async fn issue(&self, issue: Issue<'_>) -> Result<TokenResponse, Error> {
        let mut response = self.issue_access_token(&issue).await?;
        if let Some(link) = issue.grant
            && self.store.is_grant_revoked(link.grant_id).await?
        {
            self.revoke_grant(link.grant_id).await?;
        }
        response.refresh_token = issue.refresh_token;
        if let (Some(user), Some(link), true) = (issue.user, issue.grant, issue.with_id_token) {
            response.id_token = Some(self.id_token(
                issue.client,
                user,
                issue.scope,
                link,
                Some(&response.access_token),
                None,
            )?);
        }
        Ok(response)
    }

    /// An OpenID Connect ID token (Core §2), with `at_hash`/`c_hash` when it travels with an
    /// access token or a code (§3.3.2.11).
    pub fn id_token(
        &self,
        client: &Client,
        user: &User,
        scope: &ScopeSet,
        link: GrantLink<'_>,
        access_token: Option<&str>,
        code: Option<&str>,
    ) -> Result<String, Error> {
        let now = self.clock.now();
        let mut claims = user_claims(user, scope);
        claims.insert("iss".into(), self.issuer.clone().into());
        claims.insert("aud".into(), client.client_id.clone().into());
        claims.insert("azp".into(), client.client_id.clone().into());
        claims.insert("iat".into(), now.into());
        claims.insert("exp".into(), (now + client.access_token_lifespan).into());
        claims.insert("auth_time".into(), link.auth_time.into());
        if let Some(nonce) = link.nonce {
            claims.insert("nonce".into(), nonce.into());
        }
        if let Some(sid) = link.sid {
            claims.insert("sid".into(), sid.into());
        }
        if let Some(token) = access_token {
            claims.insert("at_hash".into(), half_hash(token).into());
        }
        if let Some(code) = code {
            claims.insert("c_hash".into(), half_hash(code).into());
        }
        self.sign_jwt(client.id_token_alg, "JWT", &claims)
    }

    /// A logout token (Back-Channel Logout 1.0 §2.4) telling `client` that `subject`'s session
    /// `sid` — or, without one, all of the subject's sessions — ended; signed like the
    /// application's ID tokens, so it verifies with the keys it already trusts.
    pub fn logout_token(
        &self,
        client: &Client,
        subject: &str,
        sid: Option<&str>,
    ) -> Result<String, Error> {
        let claims = LogoutClaims::new(
            &self.issuer,
            &client.client_id,
            subject,
            sid,
            self.clock.now(),
        );
        self.sign_jwt(client.id_token_alg, LOGOUT_TOKEN_TYPE, &claims)
    }

    /// Issues an access token for the client, acting for the user when there is one.
    async fn issue_access_token(&self, issue: &Issue<'_>) -> Result<TokenResponse, Error> {
        let Issue {
            client,
            user,
            scope,
            grant,
            audience,
            dpop_jkt,
            exchanged,
            ..
        } = *issue;
        let now = self.clock.now();
        let mut expires_at = now + client.access_token_lifespan;
        if let Some(exchanged) = exchanged {
            expires_at = expires_at.min(exchanged.expires_by);
        }
        let act = exchanged.and_then(|e| e.act).cloned();
        let jti = uuid::Uuid::new_v4().to_string();
        let access_token = match client.token_format {
            TokenFormat::Jwt => {
                let claims = AccessTokenClaims {
                    iss: self.issuer.clone(),
                    sub: user
                        .map(|u| u.id.clone())
                        .unwrap_or_else(|| client.client_id.clone()),
                    aud: audience.to_vec(),
                    exp: expires_at,
                    iat: now,
                    jti: jti.clone(),
                    client_id: client.client_id.clone(),
                    scope: scope.to_string(),
                    credential_epoch: user.map(|u| u.credential_epoch),
                    act: act.clone(),
                    cnf: dpop_jkt.map(|jkt| Confirmation {
                        jkt: jkt.to_owned(),
                    }),
                };
                let token = self.sign_jwt(self.access_token_alg, "at+jwt", &claims)?;
                // JWTs of a person's grant are recorded by `jti`, so revoking the grant (a
                // replayed code, a reused refresh token) can revoke them too.
                if let Some(link) = grant {
                    let record = AccessTokenRecord {
                        token_hash: format!("{JWT_RECORD_PREFIX}{jti}"),
                        jti,
                        client_id: client.client_id.clone(),
                        user_id: user.map(|u| u.id.clone()),
                        scope: scope.to_string(),
                        issued_at: now,
                        expires_at,
                        revoked: false,
                        grant_id: Some(link.grant_id.to_owned()),
                        audience: audience.to_vec(),
                        act,
                        dpop_jkt: dpop_jkt.map(str::to_owned),
                    };
                    self.store.insert_access_token(&record).await?;
                }
                token
            }
            TokenFormat::Opaque => {
                let token = format!(
                    "{OPAQUE_ACCESS_TOKEN_PREFIX}{}",
                    secret::generate_ordered(self.clock.now_millis())
                );
                let record = AccessTokenRecord {
                    token_hash: self.access_token_key(&token),
                    jti,
                    client_id: client.client_id.clone(),
                    user_id: user.map(|u| u.id.clone()),
                    scope: scope.to_string(),
                    issued_at: now,
                    expires_at,
                    revoked: false,
                    grant_id: grant.map(|g| g.grant_id.to_owned()),
                    audience: audience.to_vec(),
                    act,
                    dpop_jkt: dpop_jkt.map(str::to_owned),
                };
                self.store.insert_access_token(&record).await?;
                token
            }
        };
        Ok(TokenResponse {
            access_token,
            token_type: token_type(dpop_jkt).into(),
            expires_in: expires_at - now,
            scope: (!scope.is_empty()).then(|| scope.to_string()),
            refresh_token: None,
            id_token: None,
            issued_token_type: None,
        })
    }

    /// Signs `claims` as a compact JWS with the current key. The key is parsed once at load, so
    /// this costs one signature and two base64 encodings.
    fn sign_jwt<T: Serialize>(
        &self,
        alg: SigningAlgorithm,
        typ: &str,
        claims: &T,
    ) -> Result<String, Error> {
        let ring = self.keys.get();
        let key = ring
            .signing_key(alg, self.clock.now())
            .ok_or_else(|| Error::Internal("no signing key is active".into()))?;
        key.sign_jws(typ, claims)
    }

    /// Checks a JWS's header and signature against our own keys: its `typ` (RFC 8725 §3.11:
    /// the type keeps an ID token from passing as an access token and the other way round) must
    /// be `typ` — compared case-insensitively, with or without `application/` —, its `kid` must
    /// name a key published at this moment and its `alg` that key's algorithm. Returns the key's
    /// id, or what is wrong.
    fn verify_own_jws(&self, jws: &Jws<'_>, typ: &str) -> Result<String, &'static str> {
        let header = &jws.header;
        let declared = header
            .typ
            .as_deref()
            .ok_or("its header has no typ")?
            .to_ascii_lowercase();
        let declared = declared.strip_prefix("application/").unwrap_or(&declared);
        if declared != typ {
            return Err("its typ is not that of this kind of token");
        }
        // RFC 7515 §4.1.11: we understand no critical extension.
        if header.crit.is_some() {
            return Err("it has a crit header, which is not supported");
        }
        let kid = header
            .kid
            .as_deref()
            .ok_or("its header names no key (kid)")?;
        let ring = self.keys.get();
        let key = ring
            .verifying_key(kid, self.clock.now())
            .ok_or("its kid names no key this server publishes: an unknown or retired key")?;
        if header.alg != key.alg.as_str() {
            return Err("its alg is not the algorithm of the key its kid names");
        }
        let verified = URL_SAFE_NO_PAD
            .decode(jws.signature)
            .is_ok_and(|signature| key.verify(jws.signed.as_bytes(), &signature));
        if !verified {
            return Err("its signature does not verify with the key its kid names");
        }
        Ok(key.kid.clone())
    }

    /// A JWT with the claims of our access tokens, and how its signature checked out; `None`
    /// for anything else.
    fn read_own_jwt(&self, token: &str) -> Option<ReadJwt> {
        let jws = Jws::parse(token)?;
        let claims = serde_json::from_slice(&jws.claims).ok()?;
        Some(ReadJwt {
            signature: self.verify_own_jws(&jws, "at+jwt"),
            claims,
        })
    }

    /// The claims of an access token of ours, verified by [`Self::verify_own_jws`].
    fn verify_own_jwt(&self, token: &str) -> Option<AccessTokenClaims> {
        let read = self.read_own_jwt(token)?;
        read.signature.ok()?;
        (read.claims.iss == self.issuer).then_some(read.claims)
    }

    /// Verifies an `id_token_hint`: an ID token this server signed with a key it publishes
    /// now, naming this server as its issuer. An expired one is accepted (OpenID Connect Core
    /// §3.1.2.1: the hint tells who, not that they are signed in). `None` for anything else — a
    /// bad signature, an unknown or retired `kid`, another issuer, an access token, or no JWT.
    pub fn verify_id_token_hint(&self, token: &str) -> Option<IdTokenHint> {
        let jws = Jws::parse(token)?;
        self.verify_own_jws(&jws, "jwt").ok()?;
        let claims: IdTokenClaims = serde_json::from_slice(&jws.claims).ok()?;
        // Our ID tokens have exactly one audience, the client they were issued to.
        let [client_id] = <[String; 1]>::try_from(claims.aud).ok()?;
        (claims.iss == self.issuer && !claims.sub.is_empty()).then_some(IdTokenHint {
            subject: claims.sub,
            client_id,
        })
    }

    /// Validates an access token presented to a protected API: signature or lookup, expiry,
    /// revocation, and that its client and user are still active.
    pub async fn validate(&self, token: &str) -> Result<AccessTokenInfo, Error> {
        match self.examine(token, &mut Checks::until_failure()).await {
            Ok(info) => Ok(info),
            Err(Halt::Failed(error)) => Err(error),
            Err(Halt::Refused) => Err(Error::InvalidToken(
                "the access token is invalid, expired or revoked".into(),
            )),
        }
    }

    /// Every check [`Self::validate`] makes of `token`, each with its outcome, and what the
    /// token says about itself.
    pub async fn inspect(&self, token: &str) -> Result<TokenReport, Error> {
        let mut checks = Checks::every();
        let info = match self.examine(token, &mut checks).await {
            Ok(info) => Some(info),
            Err(Halt::Refused) => None,
            Err(Halt::Failed(error)) => return Err(error),
        };
        let kind = match info.as_ref().map(|info| info.format) {
            Some(TokenFormat::Opaque) => "an opaque access token of this server",
            Some(TokenFormat::Jwt) => "a JWT access token of this server",
            None => "no access token of this server",
        };
        Ok(TokenReport {
            kind: kind.into(),
            facts: info.map(|info| TokenFacts::of(&info, &self.issuer)),
            checks: checks.into_results(),
        })
    }

    /// The checks of an access token, in order, through `checks`; what the token says when it
    /// could be read, whether or not every check passed.
    async fn examine(&self, token: &str, checks: &mut Checks) -> Result<AccessTokenInfo, Halt> {
        let now = self.clock.now();
        let revoked = || "it was revoked".to_owned();
        // Opaque tokens end in the store when their user's credentials change; JWTs by epoch.
        let mut credential_epoch = None;
        let mut info = if token.starts_with(OPAQUE_ACCESS_TOKEN_PREFIX) {
            let hash = self.access_token_key(token);
            let record = self
                .cache
                .opaque_tokens
                .get(&hash, || async {
                    Ok(self.store.find_access_token(&hash).await?)
                })
                .await?;
            checks.record(
                Check::Known,
                record.is_none().then(|| {
                    "no access token of this server has this value: it was never issued, or it \
                     expired and its record was purged"
                        .to_owned()
                }),
            )?;
            let record = record.ok_or(Halt::Refused)?;
            checks.record(Check::Revocation, record.revoked.then(revoked))?;
            AccessTokenInfo {
                jti: record.jti.clone(),
                client_id: record.client_id.clone(),
                user_id: record.user_id.clone(),
                user_name: None,
                scope: ScopeSet::parse(&record.scope).unwrap_or_default(),
                issued_at: record.issued_at,
                expires_at: record.expires_at,
                format: TokenFormat::Opaque,
                audience: self.stored_audience(&record.audience),
                act: record.act.clone(),
                dpop_jkt: record.dpop_jkt.clone(),
            }
        } else {
            let read = self
                .verified
                .get(&self.hasher.hash(token), || async {
                    Ok(self.read_own_jwt(token))
                })
                .await?;
            checks.record(
                Check::Known,
                read.is_none().then(|| {
                    "it is neither an opaque access token of this server nor a JWT with the \
                     claims of its access tokens"
                        .to_owned()
                }),
            )?;
            let read = read.ok_or(Halt::Refused)?;
            let signature = match &read.signature {
                // A key retired since the verification was cached takes its tokens with it.
                Ok(kid) if self.keys.get().verifying_key(kid, now).is_none() => {
                    Some("the key that signed it has been retired")
                }
                Ok(_) => None,
                Err(why) => Some(*why),
            };
            checks.record(Check::Signature, signature.map(str::to_owned))?;
            let claims = &read.claims;
            checks.record(
                Check::Issuer,
                (claims.iss != self.issuer).then(|| "its iss is not this server's issuer".into()),
            )?;
            checks.record(
                Check::Audience,
                claims.aud.is_empty().then(|| "it names no audience".into()),
            )?;
            checks.record(
                Check::Revocation,
                self.is_revoked(&claims.jti).then(revoked),
            )?;
            let user_id = (claims.sub != claims.client_id).then(|| claims.sub.clone());
            credential_epoch = Some(claims.credential_epoch.unwrap_or(0));
            AccessTokenInfo {
                jti: claims.jti.clone(),
                client_id: claims.client_id.clone(),
                user_id,
                user_name: None,
                scope: ScopeSet::parse(&claims.scope).unwrap_or_default(),
                issued_at: claims.iat,
                expires_at: claims.exp,
                format: TokenFormat::Jwt,
                audience: claims.aud.clone(),
                act: claims.act.clone(),
                dpop_jkt: claims.cnf.as_ref().map(|cnf| cnf.jkt.clone()),
            }
        };
        checks.record(
            Check::Expiry,
            (info.expires_at <= now).then(|| format!("it expired {} s ago", now - info.expires_at)),
        )?;
        let client = self.client(&info.client_id).await?;
        let failure = match client {
            Some(client) if !client.active => Some("its application is inactive"),
            Some(client) if client.revoked_since(info.issued_at) => {
                Some("everything of its application was revoked after it was issued")
            }
            Some(_) => None,
            None => Some("its application no longer exists"),
        };
        checks.record(Check::Application, failure.map(str::to_owned))?;
        if let Some(user_id) = &info.user_id {
            let user = self.user(user_id).await?;
            let failure = match &user {
                None => Some("its user no longer exists"),
                Some(user) if !user.can_authenticate() => {
                    Some("its user is inactive or locked out")
                }
                Some(user)
                    if credential_epoch.is_some_and(|epoch| epoch < user.credential_epoch) =>
                {
                    Some(
                        "its user's password changed, or they were locked out or deactivated, \
                         after it was issued",
                    )
                }
                Some(_) => None,
            };
            info.user_name = user.map(|user| user.user_name.clone());
            checks.record(Check::User, failure.map(str::to_owned))?;
        }
        Ok(info)
    }

    /// The UserInfo response (OpenID Connect Core §5.3) for a validated access token: only a
    /// token with the `openid` scope may ask (`insufficient_scope`), and only for a user who
    /// may still sign in (`invalid_token` for a client's own token or a user since disabled).
    pub async fn userinfo(
        &self,
        token: &AccessTokenInfo,
    ) -> Result<serde_json::Map<String, serde_json::Value>, Error> {
        if !token.scope.contains("openid") {
            return Err(Error::InsufficientScope("openid".into()));
        }
        let user_id = token
            .user_id
            .as_deref()
            .ok_or_else(|| Error::InvalidToken("the token acts for no user".into()))?;
        let user = self
            .user(user_id)
            .await?
            .filter(|u| u.can_authenticate())
            .ok_or_else(|| Error::InvalidToken("the token's user is no longer active".into()))?;
        Ok(user_claims(&user, &token.scope))
    }

    /// RFC 7662: the state of a token, told only to a caller entitled to it
    /// ([`audience::may_introspect`]); everyone else learns `{"active": false}`, exactly as for
    /// an unknown, expired, revoked or foreign token, so the answer reveals nothing. The token's
    /// prefix says what it is, so a `token_type_hint` is never needed to find it (§2.1).
    ///
    /// Only confidential clients may ask at all (§2.1 requires authorization, and a public
    /// client proves nothing about itself); `token` is the request's `token` parameter.
    pub async fn introspect(
        &self,
        caller: &Client,
        token: Option<&str>,
    ) -> Result<Introspection, Error> {
        if caller.client_type != ClientType::Confidential {
            return Err(Error::InvalidClient("client authentication failed".into()));
        }
        let token =
            token.ok_or_else(|| Error::invalid_request("the token parameter is missing"))?;
        if token.starts_with(REFRESH_TOKEN_PREFIX) {
            return self.introspect_refresh_token(caller, token).await;
        }
        let info = match self.validate(token).await {
            Ok(info) => info,
            Err(Error::InvalidToken(_)) => return Ok(Introspection::default()),
            Err(other) => return Err(other),
        };
        if !audience::may_introspect(caller, &self.issuer, &info.client_id, &info.audience) {
            return Ok(Introspection::default());
        }
        Ok(Introspection {
            active: true,
            scope: Some(info.scope.to_string()),
            client_id: Some(info.client_id.clone()),
            username: info.user_name.clone(),
            token_type: Some(token_type(info.dpop_jkt.as_deref()).into()),
            exp: Some(info.expires_at),
            iat: Some(info.issued_at),
            sub: Some(info.subject().to_owned()),
            iss: Some(self.issuer.clone()),
            jti: Some(info.jti.clone()),
            aud: Some(info.audience),
            act: info.act,
            cnf: info.dpop_jkt.map(|jkt| Confirmation { jkt }),
        })
    }

    /// A refresh token is active for its own client only: no resource server ever receives one.
    async fn introspect_refresh_token(
        &self,
        caller: &Client,
        token: &str,
    ) -> Result<Introspection, Error> {
        let Some(record) = self
            .store
            .find_refresh_token(&self.refresh_token_key(token))
            .await?
        else {
            return Ok(Introspection::default());
        };
        let current = !record.revoked
            && record.rotated_at.is_none()
            && record.expires_at > self.clock.now()
            && record.client_id == caller.client_id
            && !caller.revoked_since(record.issued_at)
            && caller.active;
        if !current {
            return Ok(Introspection::default());
        }
        let Some(user) = self
            .user(&record.user_id)
            .await?
            .filter(|u| u.can_authenticate())
        else {
            return Ok(Introspection::default());
        };
        Ok(Introspection {
            active: true,
            scope: Some(record.scope.clone()),
            client_id: Some(record.client_id.clone()),
            username: Some(user.user_name.clone()),
            token_type: Some("refresh_token".into()),
            exp: Some(record.expires_at),
            iat: Some(record.issued_at),
            sub: Some(record.user_id.clone()),
            iss: Some(self.issuer.clone()),
            jti: None,
            aud: Some(self.stored_audience(&record.audience)),
            act: None,
            cnf: record.dpop_jkt.map(|jkt| Confirmation { jkt }),
        })
    }

    /// The audience of a new token for the `resource` values of a request (RFC 8707 §2): this
    /// server's issuer without any; otherwise each must be the issuer or an audience an active
    /// application registered, else `invalid_target`. Any authenticated client may ask for any
    /// registered audience: what the token may do there is still bounded by the client's scopes.
    pub async fn audience_for(&self, resources: &[String]) -> Result<Vec<String>, Error> {
        let requested = audience::requested(resources)?;
        if requested.is_empty() {
            return Ok(vec![self.issuer.clone()]);
        }
        for resource in &requested {
            if *resource == self.issuer {
                continue;
            }
            let owner = self
                .cache
                .audience_owners
                .get(resource, || async {
                    Ok(self
                        .store
                        .find_client_by_audience(resource)
                        .await?
                        .map(|c| c.client_id))
                })
                .await?;
            let registered = match owner {
                Some(client_id) => self.client(&client_id).await?.is_some_and(|c| c.active),
                None => false,
            };
            if !registered {
                return Err(Error::InvalidTarget(
                    "a resource is not a registered audience".into(),
                ));
            }
        }
        Ok(requested)
    }

    /// The audience recorded with a grant or token; rows from before audiences existed are for
    /// this server's issuer.
    pub fn stored_audience(&self, stored: &[String]) -> Vec<String> {
        if stored.is_empty() {
            vec![self.issuer.clone()]
        } else {
            stored.to_vec()
        }
    }

    /// RFC 7009: revokes a token issued to `client`. Unknown, malformed and expired tokens are
    /// not an error (§2.2); a token of another client is refused.
    pub async fn revoke(&self, token: &str, client: &Client) -> Result<(), Error> {
        let not_yours =
            || Error::UnauthorizedClient("the token was not issued to this client".into());
        if token.starts_with(REFRESH_TOKEN_PREFIX) {
            // §2.1: revoking a refresh token revokes the access tokens of the same grant too.
            let Some(record) = self
                .store
                .find_refresh_token(&self.refresh_token_key(token))
                .await?
            else {
                return Ok(());
            };
            if record.client_id != client.client_id {
                return Err(not_yours());
            }
            self.revoke_grant(&record.grant_id).await?;
            self.token_revoked(client, "refresh_token", &record.grant_id)
                .await?;
        } else if token.starts_with(OPAQUE_ACCESS_TOKEN_PREFIX) {
            let hash = self.access_token_key(token);
            let Some(record) = self.store.find_access_token(&hash).await? else {
                return Ok(());
            };
            if record.client_id != client.client_id {
                return Err(not_yours());
            }
            self.revoke_access_token(&record).await?;
            self.token_revoked(client, "access_token", &record.jti)
                .await?;
        } else if let Some(claims) = self.verify_own_jwt(token) {
            if claims.client_id != client.client_id {
                return Err(not_yours());
            }
            if claims.exp > self.clock.now() {
                self.revoke_jwt(&claims.jti, claims.exp).await?;
                self.token_revoked(client, "access_token", &claims.jti)
                    .await?;
            }
        }
        Ok(())
    }
}

/// The standard claims (OIDC Core §5.1, §5.4) a scope releases about a user.
fn user_claims(user: &User, scope: &ScopeSet) -> serde_json::Map<String, serde_json::Value> {
    let mut claims = serde_json::Map::new();
    claims.insert("sub".into(), user.id.clone().into());
    if scope.contains("profile") {
        claims.insert("name".into(), user.display_name.clone().into());
        claims.insert("preferred_username".into(), user.user_name.clone().into());
        if let Some(given) = &user.given_name {
            claims.insert("given_name".into(), given.clone().into());
        }
        if let Some(family) = &user.family_name {
            claims.insert("family_name".into(), family.clone().into());
        }
        claims.insert("updated_at".into(), user.updated_at.into());
    }
    if scope.contains("email")
        && let Some(email) = &user.email
    {
        claims.insert("email".into(), email.clone().into());
        // Addresses are entered by administrators, not proven by the user.
        claims.insert("email_verified".into(), false.into());
    }
    claims
}

/// OIDC Core §3.1.3.6 / §3.3.2.11: the left half of the SHA-256 of a token, base64url.
fn half_hash(value: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, value.as_bytes());
    URL_SAFE_NO_PAD.encode(&digest.as_ref()[..16])
}

/// The audit event of a new signing key: published now, signing from `activates_at`.
fn rotated_event(key: &crate::store::StoredSigningKey) -> AuditEvent {
    AuditEvent::new("signing_key.rotated", &key.kid)
        .with("alg", key.alg.as_str())
        .with("activates_at", key.activates_at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revocation_notices_say_exactly_what_was_revoked() {
        for revocation in [
            Revocation::Opaque("aGFzaA"),
            Revocation::Jwt {
                jti: "0192-jti",
                expires_at: 1_800_000_000,
            },
            Revocation::Grant("0192-grant"),
            Revocation::Client("billing:v2"),
            Revocation::Consent {
                user_id: "0192-user",
                client_id: "billing:eu",
            },
        ] {
            assert_eq!(Revocation::parse(&revocation.notice()), Some(revocation));
        }
        for older in [
            "revocation",
            "revocation:",
            "revocation:jwt:soon:x",
            "revocation:x:y",
        ] {
            assert_eq!(Revocation::parse(older), None, "{older}");
        }
    }
}
