//! Trusting tokens that other issuers signed: JWT providers (an enterprise IdP such as Okta,
//! Entra ID or another Gatehouse), the JWT bearer grant's assertions (RFC 7523 §2.1), client
//! assertions for `private_key_jwt` (RFC 7523 §2.2), and third-party tokens on the APIs.
//!
//! All three go through one verification core ([`jose::verify`]) with keys from a
//! [`KeyResolver`] — the port behind which keys are fetched and cached; this crate does no IO.

pub mod jose;
mod registry;

use crate::audit::{Actor, AuditEvent};
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::cache::RegistryCache;
use crate::client::{Client, TokenFormat};
use crate::inspection::{Check, CheckResult, TokenFacts, TokenReport};
use crate::scope::ScopeSet;
use crate::secret;
use crate::store::Store;
use crate::token::{AccessTokenInfo, TokenService};
use crate::user::User;
use jose::{Expectations, JwsAlgorithm, JwtRejection, KeySet, UnverifiedJwt, VerifiedJwt};

pub use registry::{JwtProviderChanges, NewJwtProvider, check_remote_url};

/// Default for how old an assertion may be (its `iat`), in seconds.
pub const DEFAULT_MAX_ASSERTION_AGE: i64 = 300;

/// Default for how long an assertion may live (`exp - iat`, and `exp` from now), in seconds.
pub const DEFAULT_MAX_ASSERTION_LIFETIME: i64 = 3600;

/// Default for how long keys that fail to refresh stay in use past their expiry, in seconds.
pub const DEFAULT_STALE_KEYS_LIFETIME: i64 = 3600;

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

/// A trusted issuer of JWTs. Serialised for the audit trail's reports of what changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
    /// How long an assertion may live, in seconds: the most `exp - iat` and `exp - now` may be.
    pub max_lifetime: i64,
    /// Whether this provider's tokens are accepted as bearer tokens on the APIs.
    pub api_access: bool,
    /// The scopes a token of this provider can carry on the APIs.
    pub api_scopes: Vec<String>,
    /// Whether tokens typed `JWT` (or untyped) count as access tokens on the APIs; otherwise
    /// only `at+jwt` (RFC 9068) does.
    pub accept_plain_jwt: bool,
    /// Whether ID tokens are accepted on the APIs as standing for their user.
    pub accept_id_tokens: bool,
    /// How long keys that fail to refresh stay in use past their expiry, in seconds; after
    /// that the provider's tokens are refused until its keys can be fetched again.
    pub stale_keys_lifetime: i64,
    /// Whether its tokens and assertions may stand for a user who holds a registry role. Off,
    /// such users are refused: whoever controls the provider's keys would otherwise act as an
    /// administrator, so only `admin` may turn it on.
    pub map_registry_roles: bool,
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
            stale_keys_lifetime: self.stale_keys_lifetime,
        }
    }
}

/// An issuer whose keys are wanted, with the key under which they may be cached (it changes
/// whenever the record does, so an edited key source is never served from the cache).
pub struct TrustAnchor<'a> {
    pub cache_key: String,
    pub issuer: &'a str,
    pub source: &'a KeySource,
    /// Seconds the keys may serve past their expiry while refreshing them fails.
    pub stale_keys_lifetime: i64,
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
        let outcome = self
            .verify_provider_assertion(client, provider, assertion, unverified, refuse)
            .await;
        if let Err(error) = &outcome {
            self.tokens
                .security_event(
                    Actor::at_request(&client.client_id, Some(&client.client_id)),
                    AuditEvent::new("jwt_provider.refused", &provider.name)
                        .with("reason", error.description()),
                )
                .await?;
        }
        outcome
    }

    /// The part of [`Federation::verify_grant_assertion`] after its provider is known, whose
    /// refusals are audit events.
    async fn verify_provider_assertion(
        &self,
        client: &Client,
        provider: &JwtProvider,
        assertion: &str,
        unverified: UnverifiedJwt,
        refuse: impl Fn(String) -> Error + Copy,
    ) -> Result<Arc<User>, Error> {
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
                    max_lifetime: Some(provider.max_lifetime),
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
        self.map_user(provider, &verified.claims, refuse).await
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
                stale_keys_lifetime: DEFAULT_STALE_KEYS_LIFETIME,
            };
            let verified = self
                .verify(
                    assertion,
                    unverified,
                    &anchor,
                    &Expectations {
                        issuer: &client.client_id,
                        audiences: &self.client_assertion_audiences(client),
                        algorithms: &JwsAlgorithm::ALL,
                        max_age: Some(DEFAULT_MAX_ASSERTION_AGE),
                        max_lifetime: Some(DEFAULT_MAX_ASSERTION_LIFETIME),
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
        Some(
            self.validate_provider_token(token, unverified, provider)
                .await,
        )
    }

    /// Validates a token exchange's subject token (RFC 8693 §2.1) of a trusted provider: a token
    /// the APIs would accept ([`Federation::validate_api_token`]), of a provider that lists
    /// `client` among the applications that may present its tokens. Every failure is
    /// `invalid_request`, as RFC 8693 §2.2.2 has it for a subject token refused for any reason.
    pub async fn validate_subject_token(
        &self,
        client: &Client,
        token: &str,
    ) -> Result<AccessTokenInfo, Error> {
        let refuse =
            |why: &str| Error::InvalidRequest(format!("the subject token was refused: {why}"));
        let unverified = UnverifiedJwt::parse(token).map_err(|e| refuse(&e.to_string()))?;
        let issuer = unverified
            .issuer()
            .ok_or_else(|| refuse(&JwtRejection::MissingClaim("iss").to_string()))?
            .to_owned();
        let providers = self.providers().await?;
        let provider = providers
            .iter()
            .find(|p| p.api_access && p.issuer == issuer)
            .ok_or_else(|| refuse("its issuer is no trusted JWT provider with API access"))?;
        if !provider.allowed_clients.contains(&client.client_id) {
            return Err(refuse(&format!(
                "JWT provider {:?} is not allowed for this application",
                provider.name
            )));
        }
        self.validate_provider_token(token, unverified, provider)
            .await
            .map_err(|error| match error {
                Error::InvalidToken(why) => refuse(&why),
                other => other,
            })
    }

    /// A provider's token, validated once and then cached by hash until it expires.
    async fn validate_provider_token(
        &self,
        token: &str,
        unverified: UnverifiedJwt,
        provider: &JwtProvider,
    ) -> Result<AccessTokenInfo, Error> {
        let key = secret::sha256_base64(token);
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
            })
    }

    async fn validate_api_token_uncached(
        &self,
        token: &str,
        unverified: UnverifiedJwt,
        provider: &JwtProvider,
    ) -> Result<Option<AccessTokenInfo>, Error> {
        let refuse = |why: String| Error::InvalidToken(format!("the token was refused: {why}"));
        let now = self.tokens.clock().now();
        let audiences = self.api_audiences(provider);
        let declared_type = unverified.token_type();
        let verified = self
            .verify(
                token,
                unverified,
                &provider.anchor(),
                &api_expectations(provider, &audiences, now),
            )
            .await
            .map_err(refuse)?;
        let kind = TokenKind::of(
            declared_type.as_deref(),
            &verified.claims,
            &self.token_endpoints(),
        );
        kind.accepted_by(provider).map_err(refuse)?;
        let user = self.map_user(provider, &verified.claims, refuse).await?;
        Ok(Some(AccessTokenInfo {
            jti: verified.string("jti").unwrap_or_default().to_owned(),
            client_id: api_client_id(provider, &verified.claims),
            user_id: Some(user.id.clone()),
            user_name: Some(user.user_name.clone()),
            scope: api_scope(provider, &verified.claims),
            issued_at: verified.number("iat").unwrap_or(now),
            expires_at: verified.expires_at,
            format: TokenFormat::Jwt,
            // Verified above to name this server among the provider's audiences.
            audience: vec![self.tokens.issuer().to_owned()],
            act: None,
            dpop_jkt: None,
        }))
    }

    /// Every check the APIs make of `token`, each with its outcome, and what the token says
    /// about itself: Gatehouse's own tokens through [`TokenService::inspect`], a JWT of another
    /// issuer through the checks of [`Federation::validate_api_token`] — of whichever provider
    /// trusts that issuer, active or not.
    pub async fn inspect(&self, token: &str) -> Result<TokenReport, Error> {
        let foreign = UnverifiedJwt::parse(token)
            .ok()
            .filter(|jwt| jwt.issuer().is_some_and(|iss| iss != self.tokens.issuer()));
        let Some(unverified) = foreign else {
            return self.tokens.inspect(token).await;
        };
        let claims = unverified.claims();
        let issuer = unverified.issuer().unwrap_or_default().to_owned();
        let providers = self.store.list_jwt_providers().await?;
        let provider = providers.iter().find(|p| p.issuer == issuer);
        let mut checks = Vec::new();
        let mut note = |check, failure| checks.push(CheckResult { check, failure });
        let mut facts = TokenFacts {
            subject: unverified.subject().map(str::to_owned),
            issuer: Some(issuer),
            audience: match claims.get("aud") {
                Some(serde_json::Value::String(aud)) => vec![aud.clone()],
                Some(serde_json::Value::Array(auds)) => auds
                    .iter()
                    .filter_map(|aud| aud.as_str().map(str::to_owned))
                    .collect(),
                _ => Vec::new(),
            },
            issued_at: claims.get("iat").and_then(serde_json::Value::as_i64),
            expires_at: claims.get("exp").and_then(serde_json::Value::as_i64),
            ..TokenFacts::default()
        };
        note(
            Check::Provider,
            match provider {
                None => Some("no JWT provider trusts its issuer".into()),
                Some(p) if !p.active => Some(format!("JWT provider {:?} is disabled", p.name)),
                Some(p) if !p.api_access => Some(format!(
                    "JWT provider {:?} does not give its tokens API access (api_access)",
                    p.name
                )),
                Some(_) => None,
            },
        );
        let Some(provider) = provider else {
            return Ok(TokenReport {
                kind: "a JWT of an issuer this server does not trust".into(),
                facts: Some(facts),
                checks,
            });
        };
        facts.client_id = Some(api_client_id(provider, claims));
        facts.scope = api_scope(provider, claims).to_string();
        let now = self.tokens.clock().now();
        let audiences = self.api_audiences(provider);
        let expect = api_expectations(provider, &audiences, now);
        let signature = match self
            .resolver
            .keys(&provider.anchor(), unverified.kid())
            .await
        {
            Ok(keys) => {
                jose::verify_signature(token, &unverified, &keys, expect.algorithms, expect.types)
                    .err()
                    .map(|why| why.to_string())
            }
            Err(why) => Some(format!("the provider's keys cannot be had: {why}")),
        };
        note(Check::Signature, signature);
        for (check, outcome) in jose::claim_checks(claims, &expect) {
            note(check, outcome.err().map(|why| why.to_string()));
        }
        let kind = TokenKind::of(
            unverified.token_type().as_deref(),
            claims,
            &self.token_endpoints(),
        );
        note(Check::TokenType, kind.accepted_by(provider).err());
        match self.map_user(provider, claims, Error::InvalidToken).await {
            Ok(user) => {
                facts.user_name = Some(user.user_name.clone());
                note(Check::User, None);
            }
            Err(Error::InvalidToken(why)) => {
                note(Check::User, Some(why));
            }
            Err(other) => return Err(other),
        }
        Ok(TokenReport {
            kind: format!("a JWT of the JWT provider {:?}", provider.name),
            facts: Some(facts),
            checks,
        })
    }

    /// The `aud` values that name this server in a provider's tokens on the APIs.
    fn api_audiences(&self, provider: &JwtProvider) -> Vec<String> {
        if provider.audiences.is_empty() {
            vec![self.tokens.issuer().to_owned()]
        } else {
            provider.audiences.clone()
        }
    }

    /// This server's token endpoint under both its paths.
    fn token_endpoints(&self) -> [String; 2] {
        let issuer = self.tokens.issuer();
        [
            format!("{issuer}/oauth/token"),
            format!("{issuer}/oauth_token.do"),
        ]
    }

    /// The `aud` a client's `private_key_jwt` assertion must carry: this server's issuer (RFC
    /// 7523bis, so an assertion made for one server's token endpoint cannot be replayed to
    /// another that shares it), or the token endpoint for a client kept on the older rule.
    fn client_assertion_audiences(&self, client: &Client) -> Vec<String> {
        let mut audiences = vec![self.tokens.issuer().to_owned()];
        if client.legacy_token_endpoint_aud {
            audiences.extend(self.token_endpoints());
        }
        audiences
    }

    /// This server's names as an audience: its issuer and its token endpoint under both paths.
    fn own_audiences(&self) -> Vec<String> {
        let mut audiences = vec![self.tokens.issuer().to_owned()];
        audiences.extend(self.token_endpoints());
        audiences
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

    /// The active, unlocked user the provider's user claim names. An email names someone only
    /// when the provider vouches for it (`email_verified: true`, OpenID Connect Core §5.1);
    /// emails are unique among users, so it names at most one person.
    async fn map_user(
        &self,
        provider: &JwtProvider,
        claims: &serde_json::Map<String, serde_json::Value>,
        refuse: impl Fn(String) -> Error,
    ) -> Result<Arc<User>, Error> {
        let not_a_user = || {
            refuse(format!(
                "its {} claim does not name an active user",
                provider.user_claim
            ))
        };
        let value = claims
            .get(&provider.user_claim)
            .and_then(serde_json::Value::as_str)
            .ok_or_else(not_a_user)?;
        let user = match provider.user_field {
            UserField::UserName => self.tokens.user_by_name(value).await?,
            UserField::Email => {
                if claims.get("email_verified") != Some(&serde_json::Value::Bool(true)) {
                    return Err(refuse(
                        "users are mapped by email, and its email_verified is not true".into(),
                    ));
                }
                self.store.find_user_by_email(value).await?.map(Arc::new)
            }
        };
        let user = user
            .filter(|u| u.can_authenticate())
            .ok_or_else(not_a_user)?;
        if user.is_registry_admin() && !provider.map_registry_roles {
            return Err(refuse(
                "it names a user who holds a registry role, and the provider may not map such \
                 users (map_registry_roles)"
                    .into(),
            ));
        }
        Ok(user)
    }
}

/// The media type of JWT access tokens (RFC 9068 §2.1), as [`UnverifiedJwt::token_type`] gives it.
const ACCESS_TOKEN_TYPE: &str = "at+jwt";

/// Claims only an ID token carries (OpenID Connect Core §2, §3.1.3.6, §3.3.2.11; `s_hash` from
/// FAPI): a token with any of them was made for a client to learn who signed in, not for an API.
/// `auth_time` counts only for untyped tokens, since RFC 9068 §2.2.1 allows it in `at+jwt` ones.
const ID_TOKEN_CLAIMS: [&str; 5] = ["nonce", "at_hash", "c_hash", "s_hash", "auth_time"];

/// What a verified third-party token is, by its `typ` header and its claims.
#[derive(Debug, Clone, PartialEq, Eq)]
enum TokenKind {
    /// Declared an access token (`typ: at+jwt`).
    Access,
    /// Untyped or typed `JWT`, with nothing that marks it as something else.
    Plain,
    /// An ID token: it has ID-token claims, or its audience is the party it was issued to
    /// (`aud` naming its own `azp`), which is how an ID token addresses its client.
    IdToken,
    /// A client or grant assertion for this server's token endpoint (its `aud` names it).
    TokenEndpointAssertion,
}

impl TokenKind {
    fn of(
        declared_type: Option<&str>,
        claims: &serde_json::Map<String, serde_json::Value>,
        token_endpoints: &[String],
    ) -> Self {
        let audiences: Vec<&str> = match claims.get("aud") {
            Some(serde_json::Value::String(aud)) => vec![aud.as_str()],
            Some(serde_json::Value::Array(auds)) => {
                auds.iter().filter_map(serde_json::Value::as_str).collect()
            }
            _ => vec![],
        };
        if audiences
            .iter()
            .any(|aud| token_endpoints.iter().any(|e| e == aud))
        {
            return TokenKind::TokenEndpointAssertion;
        }
        if declared_type == Some(ACCESS_TOKEN_TYPE) {
            return TokenKind::Access;
        }
        let id_claims = ID_TOKEN_CLAIMS.iter().any(|c| claims.contains_key(*c));
        let addressed_to_its_client = claims
            .get("azp")
            .and_then(serde_json::Value::as_str)
            .is_some_and(|azp| audiences.contains(&azp));
        if id_claims || addressed_to_its_client {
            TokenKind::IdToken
        } else {
            TokenKind::Plain
        }
    }

    /// Whether `provider` lets this kind of token reach the APIs; the error says why not.
    fn accepted_by(&self, provider: &JwtProvider) -> Result<(), String> {
        match self {
            TokenKind::Access => Ok(()),
            TokenKind::Plain if provider.accept_plain_jwt => Ok(()),
            TokenKind::IdToken if provider.accept_id_tokens => Ok(()),
            TokenKind::Plain => Err(format!(
                "it is not typed at+jwt, and provider {:?} does not accept plain JWTs \
                 (accept_plain_jwt)",
                provider.name
            )),
            TokenKind::IdToken => Err(format!(
                "it is an ID token, and provider {:?} does not accept ID tokens \
                 (accept_id_tokens)",
                provider.name
            )),
            TokenKind::TokenEndpointAssertion => {
                Err("it is an assertion for this server's token endpoint".into())
            }
        }
    }
}

/// The scopes a third-party token carries: `scp` (an array, as Okta, or a space-separated
/// string, as Entra ID) or `scope`.
fn token_scopes(claims: &serde_json::Map<String, serde_json::Value>) -> Option<ScopeSet> {
    let words: Vec<String> = match claims.get("scp").or(claims.get("scope"))? {
        serde_json::Value::Array(items) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        serde_json::Value::String(text) => text.split_whitespace().map(str::to_owned).collect(),
        _ => return Some(ScopeSet::default()),
    };
    Some(ScopeSet::from_list(&words).unwrap_or_default())
}

/// What a provider's token on the APIs must satisfy besides its signature.
fn api_expectations<'a>(
    provider: &'a JwtProvider,
    audiences: &'a [String],
    now: i64,
) -> Expectations<'a> {
    Expectations {
        issuer: &provider.issuer,
        audiences,
        algorithms: &provider.algorithms,
        max_age: None,
        max_lifetime: None,
        subject: None,
        types: &["jwt", ACCESS_TOKEN_TYPE],
        now,
    }
}

/// The scopes a provider's token has on the APIs: those it carries that the provider may give.
fn api_scope(
    provider: &JwtProvider,
    claims: &serde_json::Map<String, serde_json::Value>,
) -> ScopeSet {
    let allowed = ScopeSet::from_list(&provider.api_scopes).unwrap_or_default();
    match token_scopes(claims) {
        Some(carried) => {
            let kept: Vec<&str> = carried.iter().filter(|s| allowed.contains(s)).collect();
            ScopeSet::from_list(&kept).unwrap_or_default()
        }
        // An ID token carries no scopes: it stands for the user, within what the
        // administrator allowed this provider.
        None => allowed,
    }
}

/// The client a provider's token stands for. The provider chooses its client identifiers;
/// prefixed with its name they can never pass for one of this server's applications (whose
/// client_ids cannot contain ':').
fn api_client_id(
    provider: &JwtProvider,
    claims: &serde_json::Map<String, serde_json::Value>,
) -> String {
    match ["azp", "client_id", "cid"]
        .iter()
        .find_map(|c| claims.get(*c).and_then(serde_json::Value::as_str))
    {
        Some(theirs) => format!("{}:{theirs}", provider.name),
        None => provider.name.clone(),
    }
}
