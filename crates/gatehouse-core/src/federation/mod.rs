//! Trusting tokens that other issuers signed: JWT providers (an enterprise IdP such as Okta,
//! Entra ID or another Gatehouse), the JWT bearer grant's assertions (RFC 7523 §2.1), client
//! assertions for `private_key_jwt` (RFC 7523 §2.2), and third-party tokens on the APIs.
//!
//! All three go through one verification core ([`jose::verify`]) with keys from a
//! [`KeyResolver`] — the port behind which keys are fetched and cached; this crate does no IO.

pub mod jose;
mod registry;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::cache::RegistryCache;
use crate::client::{Client, TokenFormat};
use crate::scope::ScopeSet;
use crate::secret;
use crate::store::Store;
use crate::token::{AccessTokenInfo, TokenService};
use crate::user::User;
use jose::{Expectations, JwsAlgorithm, JwtRejection, KeySet, UnverifiedJwt, VerifiedJwt};

pub use registry::{JwtProviderChanges, NewJwtProvider, check_remote_url};

/// Default for how old an assertion may be (its `iat`), in seconds.
pub const DEFAULT_MAX_ASSERTION_AGE: i64 = 300;

/// Where the public keys of an issuer come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeySource {
    /// A PEM public key, a JWK or a JWK Set, pasted by an administrator.
    Static(String),
    /// A JWK Set URL, fetched and cached.
    JwksUrl(String),
    /// An OpenID Provider's discovery document, whose `jwks_uri` is then fetched.
    DiscoveryUrl(String),
}

impl KeySource {
    pub fn kind(&self) -> &'static str {
        match self {
            KeySource::Static(_) => "static",
            KeySource::JwksUrl(_) => "jwks_url",
            KeySource::DiscoveryUrl(_) => "discovery_url",
        }
    }

    pub fn value(&self) -> &str {
        match self {
            KeySource::Static(v) | KeySource::JwksUrl(v) | KeySource::DiscoveryUrl(v) => v,
        }
    }

    /// The one source named among the three ways of naming one (API, CLI and file fields).
    pub fn from_options(
        jwks_url: Option<String>,
        discovery_url: Option<String>,
        static_key: Option<String>,
    ) -> Result<Option<KeySource>, Error> {
        match (jwks_url, discovery_url, static_key) {
            (None, None, None) => Ok(None),
            (Some(url), None, None) => Ok(Some(KeySource::JwksUrl(url))),
            (None, Some(url), None) => Ok(Some(KeySource::DiscoveryUrl(url))),
            (None, None, Some(key)) => Ok(Some(KeySource::Static(key))),
            _ => Err(Error::validation(
                "give one of jwks_url, discovery_url and static_key",
            )),
        }
    }

    pub fn from_parts(kind: &str, value: String) -> Result<KeySource, Error> {
        match kind {
            "static" => Ok(KeySource::Static(value)),
            "jwks_url" => Ok(KeySource::JwksUrl(value)),
            "discovery_url" => Ok(KeySource::DiscoveryUrl(value)),
            other => Err(Error::validation(format!("unknown key source {other:?}"))),
        }
    }
}

/// The user field a provider's user claim is matched against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum UserField {
    #[default]
    UserName,
    Email,
}

impl UserField {
    pub fn as_str(self) -> &'static str {
        match self {
            UserField::UserName => "user_name",
            UserField::Email => "email",
        }
    }
}

impl fmt::Display for UserField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for UserField {
    type Err = Error;

    fn from_str(value: &str) -> Result<Self, Error> {
        match value {
            "user_name" => Ok(UserField::UserName),
            "email" => Ok(UserField::Email),
            other => Err(Error::validation(format!(
                "unknown user field {other:?} (expected user_name or email)"
            ))),
        }
    }
}

/// A trusted issuer of JWTs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtProvider {
    pub id: String,
    pub name: String,
    pub issuer: String,
    /// `aud` values that name this server at that issuer (besides this server's issuer and
    /// token endpoint, always accepted in assertions).
    pub audiences: Vec<String>,
    pub key_source: KeySource,
    pub algorithms: Vec<JwsAlgorithm>,
    /// The claim naming the user (`sub`, `email`, `preferred_username`, …).
    pub user_claim: String,
    pub user_field: UserField,
    /// Applications (client_ids) that may present this provider's assertions.
    pub allowed_clients: Vec<String>,
    /// How old an assertion may be, by its `iat`, in seconds.
    pub max_age: i64,
    /// Whether this provider's tokens are accepted as bearer tokens on the APIs.
    pub api_access: bool,
    /// The scopes a token of this provider can carry on the APIs.
    pub api_scopes: Vec<String>,
    pub active: bool,
    pub managed: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

impl JwtProvider {
    fn anchor(&self) -> TrustAnchor<'_> {
        TrustAnchor {
            cache_key: format!("provider:{}:{}", self.id, self.updated_at),
            issuer: &self.issuer,
            source: &self.key_source,
        }
    }
}

/// An issuer whose keys are wanted, with the key under which they may be cached (it changes
/// whenever the record does, so an edited key source is never served from the cache).
pub struct TrustAnchor<'a> {
    pub cache_key: String,
    pub issuer: &'a str,
    pub source: &'a KeySource,
}

/// The port through which verification keys are obtained (fetched and cached by the adapter).
#[async_trait]
pub trait KeyResolver: Send + Sync {
    /// The keys of `anchor`. When `kid` is given and unknown, the adapter may refetch — at most
    /// once per short interval, so forged `kid`s cannot make it hammer the issuer. The error is
    /// a description for administrators.
    async fn keys(
        &self,
        anchor: &TrustAnchor<'_>,
        kid: Option<&str>,
    ) -> Result<Arc<KeySet>, String>;
}

/// The federation use cases over the store, the token service and a key resolver.
pub struct Federation {
    store: Arc<dyn Store>,
    tokens: Arc<TokenService>,
    cache: Arc<RegistryCache>,
    resolver: Arc<dyn KeyResolver>,
}

impl Federation {
    pub fn new(
        store: Arc<dyn Store>,
        tokens: Arc<TokenService>,
        cache: Arc<RegistryCache>,
        resolver: Arc<dyn KeyResolver>,
    ) -> Self {
        Federation {
            store,
            tokens,
            cache,
            resolver,
        }
    }

    /// The active providers, from the cache.
    async fn providers(&self) -> Result<Arc<Vec<JwtProvider>>, Error> {
        let store = &self.store;
        Ok(self
            .cache
            .jwt_providers
            .get("active", || async {
                let all = store.list_jwt_providers().await?;
                Ok(Some(all.into_iter().filter(|p| p.active).collect()))
            })
            .await?
            .unwrap_or_default())
    }

    /// Checks a JWT bearer grant's assertion (RFC 7523 §2.1, §3) for `client` and returns the
    /// user it stands for. Every failure is `invalid_grant` with the reason.
    pub async fn verify_grant_assertion(
        &self,
        client: &Client,
        assertion: &str,
    ) -> Result<Arc<User>, Error> {
        let refuse = |why: String| Error::InvalidGrant(format!("the assertion was refused: {why}"));
        let unverified = UnverifiedJwt::parse(assertion).map_err(|e| refuse(e.to_string()))?;
        let issuer = unverified
            .issuer()
            .ok_or_else(|| refuse(JwtRejection::MissingClaim("iss").to_string()))?
            .to_owned();
        let providers = self.providers().await?;
        let provider = providers
            .iter()
            .find(|p| p.issuer == issuer)
            .ok_or_else(|| refuse(format!("issuer {issuer:?} is not a trusted JWT provider")))?;
        if !provider.allowed_clients.contains(&client.client_id) {
            return Err(refuse(format!(
                "JWT provider {:?} is not allowed for this application",
                provider.name
            )));
        }
        let mut audiences = self.own_audiences();
        audiences.extend(provider.audiences.iter().cloned());
        let verified = self
            .verify(
                assertion,
                unverified,
                &provider.anchor(),
                &Expectations {
                    issuer: &provider.issuer,
                    audiences: &audiences,
                    algorithms: &provider.algorithms,
                    max_age: Some(provider.max_age),
                    subject: None,
                    types: &["jwt"],
                    now: self.tokens.clock().now(),
                },
            )
            .await
            .map_err(refuse)?;
        self.accept_once(&provider.issuer, &verified)
            .await
            .map_err(refuse)?;
        self.map_user(provider, &verified).await?.ok_or_else(|| {
            refuse(format!(
                "its {} claim does not name an active user",
                provider.user_claim
            ))
        })
    }

    /// Authenticates a client by a signed assertion (`private_key_jwt`, RFC 7523 §2.2, OpenID
    /// Connect Core §9) against the keys it registered. The reason for a failure is logged for
    /// administrators; the client only learns `invalid_client`.
    pub async fn authenticate_client_assertion(
        &self,
        client: &Client,
        assertion: &str,
    ) -> Result<(), Error> {
        let result = async {
            let source = client
                .key_source()
                .ok_or_else(|| "the application has registered no keys".to_owned())?;
            let unverified = UnverifiedJwt::parse(assertion).map_err(|e| e.to_string())?;
            let anchor = TrustAnchor {
                cache_key: format!("client:{}:{}", client.id, client.updated_at),
                issuer: &client.client_id,
                source: &source,
            };
            let verified = self
                .verify(
                    assertion,
                    unverified,
                    &anchor,
                    &Expectations {
                        issuer: &client.client_id,
                        audiences: &self.own_audiences(),
                        algorithms: &JwsAlgorithm::ALL,
                        max_age: Some(DEFAULT_MAX_ASSERTION_AGE),
                        subject: Some(&client.client_id),
                        types: &["jwt"],
                        now: self.tokens.clock().now(),
                    },
                )
                .await?;
            self.accept_once(&format!("client:{}", client.client_id), &verified)
                .await
        }
        .await;
        result.map_err(|why| {
            tracing::info!(client_id = %client.client_id, reason = %why, "client assertion refused");
            Error::InvalidClient("client authentication failed".into())
        })
    }

    /// Validates a bearer token from a trusted provider marked for API access. `None` when the
    /// token is not a JWT of such a provider, so the caller can report its own error.
    pub async fn validate_api_token(&self, token: &str) -> Option<Result<AccessTokenInfo, Error>> {
        let unverified = UnverifiedJwt::parse(token).ok()?;
        let issuer = unverified.issuer()?.to_owned();
        let providers = match self.providers().await {
            Ok(providers) => providers,
            Err(e) => return Some(Err(e)),
        };
        let provider = providers
            .iter()
            .find(|p| p.api_access && p.issuer == issuer)?;
        let key = secret::sha256_base64(token);
        Some(
            self.cache
                .federated_tokens
                .get(&key, || {
                    self.validate_api_token_uncached(token, unverified, provider)
                })
                .await
                .and_then(|info| info.ok_or_else(|| Error::InvalidToken("unknown token".into())))
                .and_then(|info| {
                    if info.expires_at <= self.tokens.clock().now() {
                        Err(Error::InvalidToken("the token has expired".into()))
                    } else {
                        Ok(info.as_ref().clone())
                    }
                }),
        )
    }

    async fn validate_api_token_uncached(
        &self,
        token: &str,
        unverified: UnverifiedJwt,
        provider: &JwtProvider,
    ) -> Result<Option<AccessTokenInfo>, Error> {
        let refuse = |why: String| Error::InvalidToken(format!("the token was refused: {why}"));
        let now = self.tokens.clock().now();
        let audiences = if provider.audiences.is_empty() {
            vec![self.tokens.issuer().to_owned()]
        } else {
            provider.audiences.clone()
        };
        let verified = self
            .verify(
                token,
                unverified,
                &provider.anchor(),
                &Expectations {
                    issuer: &provider.issuer,
                    audiences: &audiences,
                    algorithms: &provider.algorithms,
                    max_age: None,
                    subject: None,
                    types: &["jwt", "at+jwt"],
                    now,
                },
            )
            .await
            .map_err(refuse)?;
        let user = self.map_user(provider, &verified).await?.ok_or_else(|| {
            refuse(format!(
                "its {} claim does not name an active user",
                provider.user_claim
            ))
        })?;
        let allowed = ScopeSet::from_list(&provider.api_scopes).unwrap_or_default();
        let scope = match token_scopes(&verified) {
            Some(carried) => {
                let kept: Vec<&str> = carried.iter().filter(|s| allowed.contains(s)).collect();
                ScopeSet::from_list(&kept).unwrap_or_default()
            }
            // An ID token carries no scopes: it stands for the user, within what the
            // administrator allowed this provider.
            None => allowed,
        };
        let client_id = ["azp", "client_id", "cid"]
            .iter()
            .find_map(|c| verified.string(c))
            .unwrap_or(&provider.name);
        Ok(Some(AccessTokenInfo {
            jti: verified.string("jti").unwrap_or_default().to_owned(),
            client_id: client_id.to_owned(),
            user_id: Some(user.id.clone()),
            user_name: Some(user.user_name.clone()),
            scope,
            issued_at: verified.number("iat").unwrap_or(now),
            expires_at: verified.expires_at,
            format: TokenFormat::Jwt,
        }))
    }

    /// This server's names as an audience: its issuer and its token endpoint under both paths.
    fn own_audiences(&self) -> Vec<String> {
        let issuer = self.tokens.issuer();
        vec![
            issuer.to_owned(),
            format!("{issuer}/oauth/token"),
            format!("{issuer}/oauth_token.do"),
        ]
    }

    async fn verify(
        &self,
        token: &str,
        unverified: UnverifiedJwt,
        anchor: &TrustAnchor<'_>,
        expect: &Expectations<'_>,
    ) -> Result<VerifiedJwt, String> {
        let keys = self.resolver.keys(anchor, unverified.kid()).await?;
        jose::verify(token, unverified, &keys, expect).map_err(|e| e.to_string())
    }

    /// Records the assertion's `jti` until the assertion expires (the `exp` that was checked,
    /// plus the leeway it was checked with); a second use is refused.
    async fn accept_once(&self, issuer: &str, verified: &VerifiedJwt) -> Result<(), String> {
        let jti = verified
            .string("jti")
            .filter(|j| !j.is_empty())
            .ok_or_else(|| JwtRejection::MissingClaim("jti").to_string())?;
        let key = secret::sha256_base64(&format!("{issuer}\n{jti}"));
        let expires_at = verified.expires_at + jose::LEEWAY_SECONDS;
        match self.store.record_assertion_use(&key, expires_at).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(format!("jti {jti:?} was already used")),
            Err(e) => {
                tracing::error!(error = %e, "recording an assertion's jti failed");
                Err("it could not be recorded".into())
            }
        }
    }

    /// The active, unlocked user the provider's user claim names.
    async fn map_user(
        &self,
        provider: &JwtProvider,
        verified: &VerifiedJwt,
    ) -> Result<Option<Arc<User>>, Error> {
        let Some(value) = verified.string(&provider.user_claim) else {
            return Ok(None);
        };
        let user = match provider.user_field {
            UserField::UserName => self.tokens.user_by_name(value).await?,
            UserField::Email => self.store.find_user_by_email(value).await?.map(Arc::new),
        };
        Ok(user.filter(|u| u.can_authenticate()))
    }
}

/// The scopes a third-party token carries: `scp` (an array, as Okta, or a space-separated
/// string, as Entra ID) or `scope`.
fn token_scopes(verified: &VerifiedJwt) -> Option<ScopeSet> {
    let words: Vec<String> = match verified
        .claims
        .get("scp")
        .or(verified.claims.get("scope"))?
    {
        serde_json::Value::Array(items) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        serde_json::Value::String(text) => text.split_whitespace().map(str::to_owned).collect(),
        _ => return Some(ScopeSet::default()),
    };
    Some(ScopeSet::from_list(&words).unwrap_or_default())
}
