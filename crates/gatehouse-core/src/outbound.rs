//! Outbound OAuth: Gatehouse as the client of external OAuth providers, so that people and
//! scripts call external APIs by naming a connection alias and never handle tokens themselves.
//!
//! Three records, each naming the next: a **connection alias** (base URL, time-out, retry
//! policy, the roles that may use it) names an **OAuth profile** (a scope set, system-wide or
//! per user), which names an **OAuth provider** (token endpoint, client credentials, the grant
//! to use). Credentials are sealed at rest, because they must be sent to the provider and so
//! cannot be hashed; no view of a provider ever shows them again.
//!
//! The exchanges with the provider and the token cache live in `gatehouse-remote`; here are the
//! records, their rules and the cache policy, free of IO.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::client::GrantType;
use crate::clock::Clock;
use crate::keys::{SigningAlgorithm, SigningKey};
use crate::manifest::{Action, ApplyOptions, Change, Manifest, change, resolve};
use crate::pkce;
use crate::registry::conflict_as_domain;
use crate::scope::ScopeSet;
use crate::secret::{self, Sealer, Secret};
use crate::store::{Store, StoredSigningKey};
use crate::user::User;

/// How Gatehouse authenticates to a provider's token endpoint (RFC 6749 §2.3, RFC 7523 §2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuthMethod {
    ClientSecretBasic,
    ClientSecretPost,
    PrivateKeyJwt,
}

impl ClientAuthMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            ClientAuthMethod::ClientSecretBasic => "client_secret_basic",
            ClientAuthMethod::ClientSecretPost => "client_secret_post",
            ClientAuthMethod::PrivateKeyJwt => "private_key_jwt",
        }
    }
}

impl fmt::Display for ClientAuthMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ClientAuthMethod {
    type Err = Error;

    fn from_str(value: &str) -> Result<Self, Error> {
        [
            ClientAuthMethod::ClientSecretBasic,
            ClientAuthMethod::ClientSecretPost,
            ClientAuthMethod::PrivateKeyJwt,
        ]
        .into_iter()
        .find(|m| m.as_str() == value)
        .ok_or_else(|| {
            Error::validation(format!(
                "unknown client authentication method {value:?} (client_secret_basic, \
                 client_secret_post or private_key_jwt)"
            ))
        })
    }
}

/// The grants Gatehouse can use at a provider's token endpoint.
pub const OUTBOUND_GRANTS: [GrantType; 4] = [
    GrantType::ClientCredentials,
    GrantType::AuthorizationCode,
    GrantType::Password,
    GrantType::JwtBearer,
];

/// The algorithms of the keys that sign client assertions and JWT bearer grants.
pub const ASSERTION_ALGORITHMS: [&str; 2] = ["ES256", "RS256"];

/// An external OAuth provider, as stored. Sealed fields are AES-GCM under the master key, bound
/// to the provider's name and the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthProvider {
    pub name: String,
    pub token_url: String,
    /// The authorization endpoint, for the authorization-code grant.
    pub authorization_url: Option<String>,
    pub client_id: String,
    pub client_secret_sealed: Option<Vec<u8>>,
    pub auth_method: ClientAuthMethod,
    pub grant: GrantType,
    /// Extra token-request parameters (`audience`, RFC 8707 `resource`).
    pub audience: Option<String>,
    pub resource: Option<String>,
    /// The resource owner of the password grant, and the subject of the JWT bearer grant.
    pub username: Option<String>,
    pub password_sealed: Option<Vec<u8>>,
    /// The key Gatehouse generated to sign client assertions and JWT bearer grants (PKCS#8,
    /// sealed under its `kid`); the provider is given its public JWK.
    pub signing_key_sealed: Option<Vec<u8>>,
    pub signing_kid: Option<String>,
    pub signing_alg: Option<String>,
    pub signing_public_jwk: Option<String>,
    /// The provider's issuer identifier (RFC 8414), which its authorization responses name in
    /// `iss` (RFC 9207); needed for the authorization-code grant.
    pub issuer: Option<String>,
    /// The provider's metadata says its authorization responses always carry `iss`; a response
    /// without it is then refused.
    pub authorization_response_iss_parameter_supported: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

impl OAuthProvider {
    /// Whether Gatehouse signs JWTs for this provider (client assertions or bearer grants).
    pub fn signs(&self) -> bool {
        self.auth_method == ClientAuthMethod::PrivateKeyJwt || self.grant == GrantType::JwtBearer
    }
}

/// A provider and a scope set: what a token is obtained for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OAuthProfile {
    pub name: String,
    pub provider: String,
    pub scopes: Vec<String>,
    /// Each user obtains their own token (through the authorization-code grant) instead of
    /// one token serving everybody.
    pub per_user: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A named external API: its base URL, the profile whose token it gets, and how to call it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionAlias {
    pub name: String,
    pub base_url: String,
    pub profile: String,
    /// The roles a user needs to call the alias through the proxy endpoint.
    pub allowed_roles: Vec<String>,
    /// The time limit of one upstream exchange.
    pub timeout_seconds: i64,
    /// How many times a server error (5xx, 429) or an unreachable upstream is retried.
    pub max_retries: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Default time limit of one exchange with an upstream API or provider.
pub const DEFAULT_TIMEOUT_SECONDS: i64 = 10;
/// Default number of retries after a server error.
pub const DEFAULT_MAX_RETRIES: i64 = 2;

/// A token obtained for a profile, as stored: both tokens sealed. `owner` is the user's id for
/// per-user profiles and empty for system-wide ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundTokenRecord {
    pub profile: String,
    pub owner: String,
    pub access_token_sealed: Vec<u8>,
    pub refresh_token_sealed: Option<Vec<u8>>,
    pub obtained_at: i64,
    pub expires_at: Option<i64>,
}

/// The owner of a system-wide profile's token.
pub const SYSTEM_OWNER: &str = "";

/// A provider as an administrator describes it, with credentials in clear. On update, a
/// credential left out keeps its stored value.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderSpec {
    pub name: String,
    pub token_url: String,
    pub authorization_url: Option<String>,
    pub client_id: String,
    #[serde(default, skip_serializing)]
    pub client_secret: Option<Secret>,
    #[serde(default = "default_auth_method")]
    pub auth_method: ClientAuthMethod,
    #[serde(default = "default_grant")]
    pub grant: GrantType,
    pub audience: Option<String>,
    pub resource: Option<String>,
    pub username: Option<String>,
    #[serde(default, skip_serializing)]
    pub password: Option<Secret>,
    /// ES256 or RS256: the algorithm of the key Gatehouse generates for `private_key_jwt` and
    /// `jwt_bearer`.
    pub signing_alg: Option<String>,
    /// The provider's issuer identifier; required for the authorization-code grant.
    pub issuer: Option<String>,
    /// Copied from the provider's metadata: its authorization responses always carry `iss`.
    #[serde(default)]
    pub authorization_response_iss_parameter_supported: bool,
}

fn default_auth_method() -> ClientAuthMethod {
    ClientAuthMethod::ClientSecretBasic
}

fn default_grant() -> GrantType {
    GrantType::ClientCredentials
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileSpec {
    pub name: String,
    pub provider: String,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub per_user: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AliasSpec {
    pub name: String,
    pub base_url: String,
    pub profile: String,
    #[serde(default)]
    pub allowed_roles: Vec<String>,
    pub timeout_seconds: Option<i64>,
    pub max_retries: Option<i64>,
}

/// A provider in the declarative file: like [`ProviderSpec`], with credentials inline or, better,
/// named by environment variable.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderEntry {
    pub name: String,
    pub token_url: String,
    pub authorization_url: Option<String>,
    pub client_id: String,
    pub client_secret: Option<String>,
    pub client_secret_env: Option<String>,
    #[serde(default = "default_auth_method")]
    pub auth_method: ClientAuthMethod,
    #[serde(default = "default_grant")]
    pub grant: GrantType,
    pub audience: Option<String>,
    pub resource: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub password_env: Option<String>,
    pub signing_alg: Option<String>,
    pub issuer: Option<String>,
    #[serde(default)]
    pub authorization_response_iss_parameter_supported: bool,
}

impl ProviderEntry {
    fn to_spec(
        &self,
        env: &(dyn Fn(&str) -> Option<String> + Sync),
    ) -> Result<ProviderSpec, Error> {
        let what = format!("OAuth provider {:?}", self.name);
        Ok(ProviderSpec {
            name: self.name.clone(),
            token_url: self.token_url.clone(),
            authorization_url: self.authorization_url.clone(),
            client_id: self.client_id.clone(),
            client_secret: resolve(&what, &self.client_secret, &self.client_secret_env, env)?,
            auth_method: self.auth_method,
            grant: self.grant,
            audience: self.audience.clone(),
            resource: self.resource.clone(),
            username: self.username.clone(),
            password: resolve(&what, &self.password, &self.password_env, env)?,
            signing_alg: self.signing_alg.clone(),
            issuer: self.issuer.clone(),
            authorization_response_iss_parameter_supported: self
                .authorization_response_iss_parameter_supported,
        })
    }
}

impl Manifest {
    /// Makes the outbound records match the file's `[[oauth_provider]]`, `[[oauth_profile]]`
    /// and `[[connection_alias]]` sections. A record that already matches is left alone, so its
    /// tokens survive every apply. Outbound records are never pruned.
    pub async fn apply_outbound(
        &self,
        outbound: &OutboundRegistry,
        options: ApplyOptions,
        env: &(dyn Fn(&str) -> Option<String> + Sync),
    ) -> Result<Vec<Change>, Error> {
        let mut changes = Vec::new();
        for entry in &self.oauth_providers {
            let spec = entry.to_spec(env)?;
            let fields = match outbound.store.find_provider(&spec.name).await? {
                Some(current) => Some(outbound.provider_differences(&current, &spec)?),
                None => None,
            };
            changes.extend(
                reconcile(
                    options,
                    "oauth_provider",
                    &spec.name.clone(),
                    fields,
                    async { outbound.save_provider(spec).await.map(drop) },
                )
                .await?,
            );
        }
        for spec in &self.oauth_profiles {
            let fields = outbound
                .store
                .find_profile(&spec.name)
                .await?
                .map(|current| profile_differences(&current, spec));
            changes.extend(
                reconcile(options, "oauth_profile", &spec.name, fields, async {
                    outbound.save_profile(spec.clone()).await.map(drop)
                })
                .await?,
            );
        }
        for spec in &self.connection_aliases {
            let fields = outbound
                .store
                .find_alias(&spec.name)
                .await?
                .map(|current| alias_differences(&current, spec));
            changes.extend(
                reconcile(options, "connection_alias", &spec.name, fields, async {
                    outbound.save_alias(spec.clone()).await.map(drop)
                })
                .await?,
            );
        }
        Ok(changes)
    }
}

/// Creates or updates one record. `differences` is `None` for a record not stored yet, else the
/// fields in which the stored one differs from the file.
async fn reconcile(
    options: ApplyOptions,
    kind: &'static str,
    name: &str,
    differences: Option<Vec<&'static str>>,
    save: impl Future<Output = Result<(), Error>>,
) -> Result<Option<Change>, Error> {
    let action = match &differences {
        None => Action::Create,
        Some(fields) if fields.is_empty() => return Ok(None),
        Some(_) => Action::Update,
    };
    if !options.dry_run {
        save.await?;
    }
    Ok(Some(change(
        action,
        kind,
        name,
        differences.unwrap_or_default(),
    )))
}

/// Collects the names of the fields whose check is true.
fn differing(checks: &[(&'static str, bool)]) -> Vec<&'static str> {
    checks
        .iter()
        .filter(|(_, differs)| *differs)
        .map(|(name, _)| *name)
        .collect()
}

fn profile_differences(current: &OAuthProfile, spec: &ProfileSpec) -> Vec<&'static str> {
    let mut scopes = spec.scopes.clone();
    scopes.sort();
    scopes.dedup();
    differing(&[
        ("provider", current.provider != spec.provider),
        ("scopes", current.scopes != scopes),
        ("per_user", current.per_user != spec.per_user),
    ])
}

fn alias_differences(current: &ConnectionAlias, spec: &AliasSpec) -> Vec<&'static str> {
    let mut roles = spec.allowed_roles.clone();
    roles.sort();
    roles.dedup();
    differing(&[
        (
            "base_url",
            current.base_url != spec.base_url.trim_end_matches('/'),
        ),
        ("profile", current.profile != spec.profile),
        ("allowed_roles", current.allowed_roles != roles),
        (
            "timeout_seconds",
            current.timeout_seconds != spec.timeout_seconds.unwrap_or(DEFAULT_TIMEOUT_SECONDS),
        ),
        (
            "max_retries",
            current.max_retries != spec.max_retries.unwrap_or(DEFAULT_MAX_RETRIES),
        ),
    ])
}

/// The clear credentials of a provider, opened for one exchange.
#[derive(Debug, Clone)]
pub struct ProviderCredentials {
    pub client_secret: Option<Secret>,
    pub password: Option<Secret>,
}

/// The sealing context of one credential of one record, so a sealed value cannot be moved to
/// another record or field.
fn context(kind: &str, name: &str, field: &str) -> String {
    format!("outbound {kind} {name} {field}")
}

/// Whether a token obtained at `obtained_at` should be renewed at `now`: when less than a tenth
/// of its lifetime or 60 seconds is left, whichever is larger — but never in the first half of
/// its life, so that a provider issuing short-lived tokens is not asked again at every call.
/// A token without a stated expiry is used until the API refuses it.
pub fn renewal_due(obtained_at: i64, expires_at: Option<i64>, now: i64) -> bool {
    let Some(expires_at) = expires_at else {
        return false;
    };
    let lifetime = (expires_at - obtained_at).max(0);
    let margin = (lifetime / 10).max(60).min(lifetime / 2);
    now >= expires_at - margin
}

/// The outbound registry's use cases: shared by the CLI, the admin API and the token manager.
#[derive(Clone)]
pub struct OutboundRegistry {
    store: Arc<dyn Store>,
    sealer: Arc<Sealer>,
    clock: Arc<dyn Clock>,
}

impl OutboundRegistry {
    pub fn new(store: Arc<dyn Store>, sealer: Arc<Sealer>, clock: Arc<dyn Clock>) -> Self {
        OutboundRegistry {
            store,
            sealer,
            clock,
        }
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    pub async fn list_providers(&self) -> Result<Vec<OAuthProvider>, Error> {
        Ok(self.store.list_providers().await?)
    }

    pub async fn get_provider(&self, name: &str) -> Result<OAuthProvider, Error> {
        self.store
            .find_provider(name)
            .await?
            .ok_or_else(|| Error::NotFound(format!("OAuth provider {name:?}")))
    }

    /// Creates a provider, or replaces the one with the same name (keeping the credentials the
    /// specification leaves out). Tokens obtained under the old settings are dropped.
    ///
    /// Credentials stay bound to where they were given: when the token or authorization
    /// endpoint moves to another origin, the stored secret, password and signing key are
    /// discarded (a new key is generated), so only credentials given in the same change travel
    /// to the new origin.
    pub async fn save_provider(&self, spec: ProviderSpec) -> Result<OAuthProvider, Error> {
        check_name("provider name", &spec.name)?;
        let now = self.clock.now();
        let existing = self.store.find_provider(&spec.name).await?;
        let moved = existing
            .as_ref()
            .and_then(|current| moved_origins(current, &spec));
        let kept = existing.clone().filter(|_| moved.is_none());
        let seal = |field: &str, value: &Option<Secret>, kept: Option<Vec<u8>>| match value {
            Some(v) => Some(self.sealer.seal(
                &context("provider", &spec.name, field),
                v.expose().as_bytes(),
            )),
            None => kept,
        };
        let provider = OAuthProvider {
            client_secret_sealed: seal(
                "client_secret",
                &spec.client_secret,
                kept.as_ref().and_then(|p| p.client_secret_sealed.clone()),
            ),
            password_sealed: seal(
                "password",
                &spec.password,
                kept.as_ref().and_then(|p| p.password_sealed.clone()),
            ),
            name: spec.name,
            token_url: spec.token_url,
            authorization_url: spec.authorization_url,
            client_id: spec.client_id,
            auth_method: spec.auth_method,
            grant: spec.grant,
            audience: spec.audience,
            resource: spec.resource,
            username: spec.username,
            signing_key_sealed: None,
            signing_kid: None,
            signing_alg: spec.signing_alg,
            signing_public_jwk: None,
            issuer: spec.issuer,
            authorization_response_iss_parameter_supported: spec
                .authorization_response_iss_parameter_supported,
            created_at: existing.as_ref().map_or(now, |p| p.created_at),
            updated_at: now,
        };
        let mut provider = provider;
        self.provide_signing_key(&mut provider, kept.as_ref())?;
        check_provider(&provider).map_err(|error| match (&moved, error) {
            (Some(field), Error::Validation(why)) => Error::validation(format!(
                "{why}: {field} moves to another origin, so the stored credentials were \
                 discarded; give them again in the same change"
            )),
            (_, error) => error,
        })?;
        match existing {
            // Dropping the profiles' tokens is part of the same write.
            Some(_) => {
                self.store.update_provider(&provider).await?;
            }
            None => self
                .store
                .insert_provider(&provider)
                .await
                .map_err(conflict_as_domain)?,
        }
        Ok(provider)
    }

    /// A provider that signs (`private_key_jwt`, `jwt_bearer`) keeps its key while the
    /// algorithm stays the same; otherwise Gatehouse generates one, whose public JWK the
    /// administrator registers at the provider. The private key never leaves Gatehouse.
    fn provide_signing_key(
        &self,
        provider: &mut OAuthProvider,
        existing: Option<&OAuthProvider>,
    ) -> Result<(), Error> {
        let Some(alg) = provider.signing_alg.clone().filter(|_| provider.signs()) else {
            provider.signing_alg = None;
            return Ok(());
        };
        if let Some(kept) = existing.filter(|p| p.signing_alg.as_ref() == Some(&alg))
            && kept.signing_key_sealed.is_some()
        {
            provider.signing_key_sealed = kept.signing_key_sealed.clone();
            provider.signing_kid = kept.signing_kid.clone();
            provider.signing_public_jwk = kept.signing_public_jwk.clone();
            return Ok(());
        }
        let algorithm: SigningAlgorithm = alg.parse()?;
        if !ASSERTION_ALGORITHMS.contains(&algorithm.as_str()) {
            return Err(Error::validation(
                "signing_alg must be ES256 or RS256 when a key signs",
            ));
        }
        let now = self.clock.now();
        let (stored, _) = SigningKey::generate(algorithm, now, now, &self.sealer)?;
        provider.signing_key_sealed = Some(stored.private_key_sealed);
        provider.signing_kid = Some(stored.kid);
        provider.signing_public_jwk = Some(stored.public_jwk);
        Ok(())
    }

    /// The key that signs the provider's client assertions and JWT bearer grants.
    pub fn assertion_key(&self, provider: &OAuthProvider) -> Result<SigningKey, Error> {
        match (
            &provider.signing_key_sealed,
            &provider.signing_kid,
            &provider.signing_alg,
        ) {
            (Some(sealed), Some(kid), Some(alg)) => SigningKey::load(
                &StoredSigningKey {
                    kid: kid.clone(),
                    alg: alg.clone(),
                    private_key_sealed: sealed.clone(),
                    public_jwk: provider.signing_public_jwk.clone().unwrap_or_default(),
                    created_at: provider.created_at,
                    activates_at: provider.created_at,
                },
                &self.sealer,
            ),
            _ => Err(Error::Internal(format!(
                "OAuth provider {:?} has no signing key",
                provider.name
            ))),
        }
    }

    pub async fn delete_provider(&self, name: &str) -> Result<(), Error> {
        let users: Vec<String> = self
            .store
            .list_profiles()
            .await?
            .into_iter()
            .filter(|p| p.provider == name)
            .map(|p| p.name)
            .collect();
        if !users.is_empty() {
            return Err(Error::Conflict(format!(
                "OAuth provider {name:?} is used by the profiles {}",
                users.join(", ")
            )));
        }
        if self.store.delete_provider(name).await? {
            Ok(())
        } else {
            Err(Error::NotFound(format!("OAuth provider {name:?}")))
        }
    }

    /// The fields in which a stored provider differs from `spec`; credentials the spec leaves
    /// out are not compared.
    fn provider_differences(
        &self,
        current: &OAuthProvider,
        spec: &ProviderSpec,
    ) -> Result<Vec<&'static str>, Error> {
        let stored = self.open_credentials(current)?;
        let changes = |desired: &Option<Secret>, stored: &Option<Secret>| {
            desired.is_some() && desired != stored
        };
        let signs = spec.auth_method == ClientAuthMethod::PrivateKeyJwt
            || spec.grant == GrantType::JwtBearer;
        Ok(differing(&[
            ("token_url", current.token_url != spec.token_url),
            (
                "authorization_url",
                current.authorization_url != spec.authorization_url,
            ),
            ("client_id", current.client_id != spec.client_id),
            (
                "client_secret",
                changes(&spec.client_secret, &stored.client_secret),
            ),
            ("auth_method", current.auth_method != spec.auth_method),
            ("grant", current.grant != spec.grant),
            ("audience", current.audience != spec.audience),
            ("resource", current.resource != spec.resource),
            ("username", current.username != spec.username),
            ("password", changes(&spec.password, &stored.password)),
            (
                "signing_alg",
                current.signing_alg != spec.signing_alg.clone().filter(|_| signs),
            ),
            ("issuer", current.issuer != spec.issuer),
            (
                "authorization_response_iss_parameter_supported",
                current.authorization_response_iss_parameter_supported
                    != spec.authorization_response_iss_parameter_supported,
            ),
        ]))
    }

    /// The provider's credentials in clear, for an exchange with it.
    pub fn open_credentials(&self, provider: &OAuthProvider) -> Result<ProviderCredentials, Error> {
        let open = |field: &str, sealed: &Option<Vec<u8>>| -> Result<Option<Secret>, Error> {
            sealed
                .as_ref()
                .map(|s| {
                    let clear = self
                        .sealer
                        .open(&context("provider", &provider.name, field), s)?;
                    String::from_utf8(clear)
                        .map(Secret::new)
                        .map_err(|_| Error::Internal("a sealed credential is not text".into()))
                })
                .transpose()
        };
        Ok(ProviderCredentials {
            client_secret: open("client_secret", &provider.client_secret_sealed)?,
            password: open("password", &provider.password_sealed)?,
        })
    }

    pub async fn list_profiles(&self) -> Result<Vec<OAuthProfile>, Error> {
        Ok(self.store.list_profiles().await?)
    }

    pub async fn get_profile(&self, name: &str) -> Result<OAuthProfile, Error> {
        self.store
            .find_profile(name)
            .await?
            .ok_or_else(|| Error::NotFound(format!("OAuth profile {name:?}")))
    }

    /// Creates or replaces a profile; tokens obtained for the old one are dropped.
    pub async fn save_profile(&self, spec: ProfileSpec) -> Result<OAuthProfile, Error> {
        check_name("profile name", &spec.name)?;
        let provider = self.get_provider(&spec.provider).await.map_err(|_| {
            Error::validation(format!("OAuth provider {:?} does not exist", spec.provider))
        })?;
        let scopes = ScopeSet::from_list(&spec.scopes)?;
        if spec.per_user && provider.grant != GrantType::AuthorizationCode {
            return Err(Error::validation(
                "a per-user profile needs a provider using the authorization_code grant",
            ));
        }
        let now = self.clock.now();
        let existing = self.store.find_profile(&spec.name).await?;
        let profile = OAuthProfile {
            name: spec.name,
            provider: spec.provider,
            scopes: scopes.iter().map(str::to_owned).collect(),
            per_user: spec.per_user,
            created_at: existing.as_ref().map_or(now, |p| p.created_at),
            updated_at: now,
        };
        match existing {
            Some(_) => {
                self.store.update_profile(&profile).await?;
                self.store.delete_outbound_tokens(&profile.name).await?;
            }
            None => self
                .store
                .insert_profile(&profile)
                .await
                .map_err(conflict_as_domain)?,
        }
        Ok(profile)
    }

    /// Deletes a profile and its tokens.
    pub async fn delete_profile(&self, name: &str) -> Result<(), Error> {
        let users: Vec<String> = self
            .store
            .list_aliases()
            .await?
            .into_iter()
            .filter(|a| a.profile == name)
            .map(|a| a.name)
            .collect();
        if !users.is_empty() {
            return Err(Error::Conflict(format!(
                "OAuth profile {name:?} is used by the connection aliases {}",
                users.join(", ")
            )));
        }
        if self.store.delete_profile(name).await? {
            Ok(())
        } else {
            Err(Error::NotFound(format!("OAuth profile {name:?}")))
        }
    }

    pub async fn list_aliases(&self) -> Result<Vec<ConnectionAlias>, Error> {
        Ok(self.store.list_aliases().await?)
    }

    pub async fn get_alias(&self, name: &str) -> Result<ConnectionAlias, Error> {
        self.store
            .find_alias(name)
            .await?
            .ok_or_else(|| Error::NotFound(format!("connection alias {name:?}")))
    }

    pub async fn save_alias(&self, spec: AliasSpec) -> Result<ConnectionAlias, Error> {
        check_name("alias name", &spec.name)?;
        if self.store.find_profile(&spec.profile).await?.is_none() {
            return Err(Error::validation(format!(
                "OAuth profile {:?} does not exist",
                spec.profile
            )));
        }
        check_url("base_url", &spec.base_url)?;
        let timeout_seconds = spec.timeout_seconds.unwrap_or(DEFAULT_TIMEOUT_SECONDS);
        // The proxy endpoint answers within the server's request time limit, as gateway routes
        // do, so an alias may not wait longer than a route.
        let max = crate::gateway::MAX_ROUTE_TIMEOUT_SECONDS as i64;
        if !(1..=max).contains(&timeout_seconds) {
            return Err(Error::validation(format!(
                "timeout_seconds must be between 1 and {max}"
            )));
        }
        let max_retries = spec.max_retries.unwrap_or(DEFAULT_MAX_RETRIES);
        if !(0..=10).contains(&max_retries) {
            return Err(Error::validation("max_retries must be between 0 and 10"));
        }
        let now = self.clock.now();
        let existing = self.store.find_alias(&spec.name).await?;
        let mut allowed_roles = spec.allowed_roles;
        allowed_roles.sort();
        allowed_roles.dedup();
        let alias = ConnectionAlias {
            name: spec.name,
            base_url: spec.base_url.trim_end_matches('/').to_owned(),
            profile: spec.profile,
            allowed_roles,
            timeout_seconds,
            max_retries,
            created_at: existing.as_ref().map_or(now, |a| a.created_at),
            updated_at: now,
        };
        match existing {
            Some(_) => {
                self.store.update_alias(&alias).await?;
            }
            None => self
                .store
                .insert_alias(&alias)
                .await
                .map_err(conflict_as_domain)?,
        }
        Ok(alias)
    }

    pub async fn delete_alias(&self, name: &str) -> Result<(), Error> {
        if self.store.delete_alias(name).await? {
            Ok(())
        } else {
            Err(Error::NotFound(format!("connection alias {name:?}")))
        }
    }

    /// The alias with the profile and provider it names.
    pub async fn route(&self, alias: &str) -> Result<Route, Error> {
        let alias = self.get_alias(alias).await?;
        let profile = self.get_profile(&alias.profile).await?;
        let provider = self.get_provider(&profile.provider).await?;
        Ok(Route {
            alias,
            profile,
            provider,
        })
    }

    pub async fn find_token(
        &self,
        profile: &str,
        owner: &str,
    ) -> Result<Option<OutboundTokenRecord>, Error> {
        Ok(self.store.find_outbound_token(profile, owner).await?)
    }

    /// Seals and stores the tokens just obtained for a profile.
    pub async fn store_token(&self, token: &ObtainedToken) -> Result<(), Error> {
        let ctx = |field: &str| {
            context(
                "token",
                &format!("{} {}", token.profile, token.owner),
                field,
            )
        };
        let record = OutboundTokenRecord {
            profile: token.profile.clone(),
            owner: token.owner.clone(),
            access_token_sealed: self
                .sealer
                .seal(&ctx("access"), token.access_token.expose().as_bytes()),
            refresh_token_sealed: token
                .refresh_token
                .as_ref()
                .map(|r| self.sealer.seal(&ctx("refresh"), r.expose().as_bytes())),
            obtained_at: token.obtained_at,
            expires_at: token.expires_at,
        };
        Ok(self.store.save_outbound_token(&record).await?)
    }

    /// Opens a stored token record.
    pub fn open_token(&self, record: &OutboundTokenRecord) -> Result<ObtainedToken, Error> {
        let ctx = |field: &str| {
            context(
                "token",
                &format!("{} {}", record.profile, record.owner),
                field,
            )
        };
        let open = |field: &str, sealed: &[u8]| -> Result<Secret, Error> {
            String::from_utf8(self.sealer.open(&ctx(field), sealed)?)
                .map(Secret::new)
                .map_err(|_| Error::Internal("a sealed token is not text".into()))
        };
        Ok(ObtainedToken {
            profile: record.profile.clone(),
            owner: record.owner.clone(),
            access_token: open("access", &record.access_token_sealed)?,
            refresh_token: record
                .refresh_token_sealed
                .as_deref()
                .map(|s| open("refresh", s))
                .transpose()?,
            obtained_at: record.obtained_at,
            expires_at: record.expires_at,
        })
    }
}

/// How long a user has to authorize at the provider after pressing "Get OAuth token".
pub const AUTHORIZATION_LIFETIME: i64 = 600;

/// An outbound authorization in progress, between the "Get OAuth token" button and the
/// provider's answer at Gatehouse's callback. It travels sealed in a cookie of the browser that
/// started it, so it works whichever instance receives the callback.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PendingAuthorization {
    pub profile: String,
    pub owner: String,
    pub state: String,
    pub code_verifier: String,
    pub redirect_uri: String,
    pub expires_at: i64,
    /// The provider the browser was sent to, as it was then: its name, issuer and token
    /// endpoint. The answer is accepted only from that issuer and the code redeemed only at that
    /// token endpoint (RFC 9700 §4.4).
    pub provider: String,
    pub issuer: String,
    pub token_url: String,
}

impl PendingAuthorization {
    /// Whether the callback's `state` is this authorization's, and still in time (RFC 6749
    /// §10.12).
    pub fn answers(&self, state: &str, now: i64) -> bool {
        now < self.expires_at && secret::constant_time_eq(&self.state, state)
    }
}

/// A system-wide token serves everybody, so only administrators obtain it; a per-user token
/// is each user's own.
fn may_authorize(profile: &OAuthProfile, user: &User) -> bool {
    user.active && (profile.per_user || user.is_registry_admin())
}

impl OutboundRegistry {
    /// The authorization-code profiles `user` may obtain a token for in the browser, with their
    /// providers and whether a token is held.
    pub async fn authorizable_profiles(
        &self,
        user: &User,
    ) -> Result<Vec<(OAuthProfile, OAuthProvider, bool)>, Error> {
        let mut rows = Vec::new();
        for profile in self.store.list_profiles().await? {
            if !may_authorize(&profile, user) {
                continue;
            }
            let Some(provider) = self.store.find_provider(&profile.provider).await? else {
                continue;
            };
            if provider.grant != GrantType::AuthorizationCode {
                continue;
            }
            let owner = owner_for(&profile, user);
            let held = self
                .store
                .find_outbound_token(&profile.name, &owner)
                .await?
                .is_some();
            rows.push((profile, provider, held));
        }
        Ok(rows)
    }

    /// The profile and provider an authorization response is for, once it is shown to come from
    /// the provider the authorization was sent to (RFC 9207 §2.4): its `iss` must name that
    /// provider's issuer, and must be present when the provider says it always sends it. A
    /// provider or profile changed since the authorization started is not used for it.
    pub async fn response_target(
        &self,
        pending: &PendingAuthorization,
        iss: Option<&str>,
    ) -> Result<(OAuthProfile, OAuthProvider), Error> {
        let refused = |why: String| Error::validation(format!("the answer was refused: {why}"));
        let profile = self.get_profile(&pending.profile).await?;
        let provider = self.get_provider(&pending.provider).await?;
        let unchanged = profile.provider == provider.name
            && provider.issuer.as_deref() == Some(pending.issuer.as_str())
            && provider.token_url == pending.token_url;
        if !unchanged {
            return Err(refused(format!(
                "OAuth provider {:?} or profile {:?} changed after the authorization started",
                pending.provider, pending.profile
            )));
        }
        match iss {
            Some(iss) if iss != pending.issuer => Err(refused(format!(
                "it names issuer {iss:?}, but the authorization was sent to {:?}",
                pending.issuer
            ))),
            None if provider.authorization_response_iss_parameter_supported => {
                Err(refused(format!(
                    "it carries no iss, which provider {:?} always sends",
                    provider.name
                )))
            }
            _ => Ok((profile, provider)),
        }
    }

    /// Starts the authorization-code grant (with PKCE S256 and `state`) for a profile on behalf
    /// of `user`; returns what the browser must keep and where to send it.
    pub async fn start_authorization(
        &self,
        profile: &str,
        user: &User,
        redirect_uri: &str,
    ) -> Result<(PendingAuthorization, String), Error> {
        let profile = self.get_profile(profile).await?;
        if !may_authorize(&profile, user) {
            return Err(Error::Forbidden(
                "a system-wide token is obtained by an administrator".into(),
            ));
        }
        let provider = self.get_provider(&profile.provider).await?;
        let (authorization_url, issuer) = match (
            &provider.grant,
            &provider.authorization_url,
            &provider.issuer,
        ) {
            (GrantType::AuthorizationCode, Some(url), Some(issuer)) => (url, issuer),
            _ => {
                return Err(Error::validation(format!(
                    "profile {:?} does not use the authorization_code grant",
                    profile.name
                )));
            }
        };
        let pending = PendingAuthorization {
            owner: owner_for(&profile, user),
            profile: profile.name.clone(),
            state: secret::generate(),
            code_verifier: secret::generate(),
            redirect_uri: redirect_uri.to_owned(),
            expires_at: self.clock.now() + AUTHORIZATION_LIFETIME,
            provider: provider.name.clone(),
            issuer: issuer.clone(),
            token_url: provider.token_url.clone(),
        };
        let mut url = url::Url::parse(authorization_url)
            .map_err(|_| Error::Internal("a stored authorization_url is invalid".into()))?;
        {
            let mut query = url.query_pairs_mut();
            query
                .append_pair("response_type", "code")
                .append_pair("client_id", &provider.client_id)
                .append_pair("redirect_uri", redirect_uri)
                .append_pair("state", &pending.state)
                .append_pair(
                    "code_challenge",
                    &pkce::s256_challenge(&pending.code_verifier),
                )
                .append_pair("code_challenge_method", "S256");
            if !profile.scopes.is_empty() {
                query.append_pair("scope", &profile.scopes.join(" "));
            }
            if let Some(audience) = &provider.audience {
                query.append_pair("audience", audience);
            }
            if let Some(resource) = &provider.resource {
                query.append_pair("resource", resource);
            }
        }
        Ok((pending, url.into()))
    }
}

fn owner_for(profile: &OAuthProfile, user: &User) -> String {
    if profile.per_user {
        user.id.clone()
    } else {
        SYSTEM_OWNER.to_owned()
    }
}

/// What a call through an alias needs: the alias, its profile and the profile's provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub alias: ConnectionAlias,
    pub profile: OAuthProfile,
    pub provider: OAuthProvider,
}

/// A token obtained from a provider, in clear (in memory only).
#[derive(Debug, Clone)]
pub struct ObtainedToken {
    pub profile: String,
    pub owner: String,
    pub access_token: Secret,
    pub refresh_token: Option<Secret>,
    pub obtained_at: i64,
    pub expires_at: Option<i64>,
}

impl ObtainedToken {
    pub fn renewal_due(&self, now: i64) -> bool {
        renewal_due(self.obtained_at, self.expires_at, now)
    }
}

fn check_provider(provider: &OAuthProvider) -> Result<(), Error> {
    check_url("token_url", &provider.token_url)?;
    if let Some(url) = &provider.authorization_url {
        check_url("authorization_url", url)?;
    }
    if let Some(issuer) = &provider.issuer {
        check_url("issuer", issuer)?;
    }
    if provider.client_id.is_empty() {
        return Err(Error::validation("a provider needs a client_id"));
    }
    if !OUTBOUND_GRANTS.contains(&provider.grant) {
        return Err(Error::validation(format!(
            "grant {} cannot be used towards a provider (client_credentials, \
             authorization_code, password or jwt_bearer)",
            provider.grant
        )));
    }
    if provider.signs() {
        if provider.signing_key_sealed.is_none() {
            return Err(Error::validation(
                "private_key_jwt and jwt_bearer need signing_alg (ES256 or RS256)",
            ));
        }
    } else if provider.client_secret_sealed.is_none() {
        return Err(Error::validation(format!(
            "{} needs a client secret",
            provider.auth_method
        )));
    }
    match provider.grant {
        GrantType::AuthorizationCode if provider.authorization_url.is_none() => Err(
            Error::validation("the authorization_code grant needs an authorization_url"),
        ),
        // RFC 9700 §4.4.2: without the issuer, a response from another provider cannot be told
        // apart from this one's.
        GrantType::AuthorizationCode if provider.issuer.is_none() => Err(Error::validation(
            "the authorization_code grant needs the provider's issuer",
        )),
        GrantType::Password
            if provider.username.is_none() || provider.password_sealed.is_none() =>
        {
            Err(Error::validation(
                "the password grant needs a username and a password",
            ))
        }
        GrantType::JwtBearer if provider.username.is_none() => Err(Error::validation(
            "the jwt_bearer grant needs a username (the assertion's subject)",
        )),
        _ => Ok(()),
    }
}

/// Names of outbound records appear in URLs (`/api/outbound/{alias}/…`) and CLI arguments.
fn check_name(what: &str, name: &str) -> Result<(), Error> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if valid {
        Ok(())
    } else {
        Err(Error::validation(format!(
            "{what} must be 1 to 64 letters, digits or . _ -"
        )))
    }
}

/// The first endpoint of `spec` whose origin (RFC 6454: scheme, host and port) differs from the
/// stored provider's. An endpoint added or removed moves nothing: no credential was bound to it.
fn moved_origins(current: &OAuthProvider, spec: &ProviderSpec) -> Option<&'static str> {
    let origin = |url: Option<&str>| {
        url.and_then(|u| url::Url::parse(u).ok())
            .map(|u| u.origin())
    };
    [
        (
            "token_url",
            Some(current.token_url.as_str()),
            Some(spec.token_url.as_str()),
        ),
        (
            "authorization_url",
            current.authorization_url.as_deref(),
            spec.authorization_url.as_deref(),
        ),
    ]
    .into_iter()
    .find(|(_, before, after)| {
        before.is_some() && after.is_some() && origin(*before) != origin(*after)
    })
    .map(|(field, _, _)| field)
}

/// Credentials and tokens travel to these URLs: TLS, except to this very machine.
fn check_url(what: &str, value: &str) -> Result<(), Error> {
    let invalid = |why: &str| Err(Error::validation(format!("{what} {value:?} {why}")));
    let Ok(url) = url::Url::parse(value) else {
        return invalid("is not an absolute URL");
    };
    if url.fragment().is_some() || !url.username().is_empty() || url.password().is_some() {
        return invalid("must carry neither a fragment nor credentials");
    }
    if crate::remote::is_allowed(&url) {
        Ok(())
    } else {
        invalid("must use https unless it is a loopback address")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_is_due_in_the_last_tenth_or_minute_but_not_in_the_first_half() {
        // One hour: renewed in the last 6 minutes.
        assert!(!renewal_due(0, Some(3600), 3600 - 361));
        assert!(renewal_due(0, Some(3600), 3600 - 360));
        // Ten minutes: the last minute.
        assert!(!renewal_due(0, Some(600), 539));
        assert!(renewal_due(0, Some(600), 540));
        // Thirty seconds: the minute would be the whole life; the second half instead.
        assert!(!renewal_due(0, Some(30), 14));
        assert!(renewal_due(0, Some(30), 15));
        // No stated expiry: kept until refused.
        assert!(!renewal_due(0, None, 1_000_000));
    }

    #[test]
    fn urls_need_tls_outside_loopback() {
        assert!(check_url("u", "https://api.example/v1").is_ok());
        assert!(check_url("u", "http://127.0.0.1:9/token").is_ok());
        assert!(check_url("u", "http://api.example/v1").is_err());
        assert!(check_url("u", "https://user:pw@api.example/").is_err());
        assert!(check_url("u", "relative/path").is_err());
    }

    #[test]
    fn auth_methods_parse_from_their_names() {
        assert_eq!(
            "private_key_jwt".parse::<ClientAuthMethod>().unwrap(),
            ClientAuthMethod::PrivateKeyJwt
        );
        assert!("tls_client_auth".parse::<ClientAuthMethod>().is_err());
    }
}
