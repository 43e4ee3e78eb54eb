//! Applications: the records of the Application Registry (OAuth clients, RFC 6749 §2).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::federation::KeySource;
use crate::keys::SigningAlgorithm;
use crate::scope::ScopeSet;

/// Default access-token lifespan: 30 minutes.
pub const DEFAULT_ACCESS_TOKEN_LIFESPAN: i64 = 1800;
/// Default refresh-token lifespan: 100 days.
pub const DEFAULT_REFRESH_TOKEN_LIFESPAN: i64 = 8_640_000;

/// The longest client_id an application may have.
pub const MAX_CLIENT_ID_LENGTH: usize = 128;

/// RFC 6749 §2.1: whether a client can keep a secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientType {
    Confidential,
    Public,
}

/// The grants an application may be allowed to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantType {
    AuthorizationCode,
    ClientCredentials,
    Password,
    JwtBearer,
    Implicit,
    RefreshToken,
}

impl GrantType {
    pub const ALL: [GrantType; 6] = [
        GrantType::AuthorizationCode,
        GrantType::ClientCredentials,
        GrantType::Password,
        GrantType::JwtBearer,
        GrantType::Implicit,
        GrantType::RefreshToken,
    ];

    /// The registry's short name (also accepted by `FromStr`).
    pub fn as_str(self) -> &'static str {
        match self {
            GrantType::AuthorizationCode => "authorization_code",
            GrantType::ClientCredentials => "client_credentials",
            GrantType::Password => "password",
            GrantType::JwtBearer => "jwt_bearer",
            GrantType::Implicit => "implicit",
            GrantType::RefreshToken => "refresh_token",
        }
    }

    /// The value of the `grant_type` parameter at the token endpoint, where there is one.
    pub fn token_endpoint_value(self) -> Option<&'static str> {
        match self {
            GrantType::JwtBearer => Some("urn:ietf:params:oauth:grant-type:jwt-bearer"),
            GrantType::Implicit => None,
            other => Some(other.as_str()),
        }
    }
}

impl fmt::Display for GrantType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for GrantType {
    type Err = Error;

    fn from_str(value: &str) -> Result<Self, Error> {
        GrantType::ALL
            .into_iter()
            .find(|g| g.as_str() == value || g.token_endpoint_value() == Some(value))
            .ok_or_else(|| {
                let known: Vec<&str> = GrantType::ALL.iter().map(|g| g.as_str()).collect();
                Error::validation(format!(
                    "unknown grant type {value:?} (expected one of {})",
                    known.join(", ")
                ))
            })
    }
}

/// How access tokens of an application are represented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TokenFormat {
    /// A random reference; only its hash is stored. Revocation takes effect at once everywhere.
    #[default]
    Opaque,
    /// A signed JWT per RFC 9068, verifiable without a database round trip.
    Jwt,
}

impl TokenFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenFormat::Opaque => "opaque",
            TokenFormat::Jwt => "jwt",
        }
    }
}

impl FromStr for TokenFormat {
    type Err = Error;

    fn from_str(value: &str) -> Result<Self, Error> {
        match value {
            "opaque" => Ok(TokenFormat::Opaque),
            "jwt" => Ok(TokenFormat::Jwt),
            other => Err(Error::validation(format!(
                "unknown token format {other:?} (expected opaque or jwt)"
            ))),
        }
    }
}

impl FromStr for ClientType {
    type Err = Error;

    fn from_str(value: &str) -> Result<Self, Error> {
        match value {
            "confidential" => Ok(ClientType::Confidential),
            "public" => Ok(ClientType::Public),
            other => Err(Error::validation(format!(
                "unknown client type {other:?} (expected confidential or public)"
            ))),
        }
    }
}

impl ClientType {
    pub fn as_str(self) -> &'static str {
        match self {
            ClientType::Confidential => "confidential",
            ClientType::Public => "public",
        }
    }
}

/// A replaced client secret, still accepted until `expires_at` so the services using it can
/// move to the new one one by one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviousSecret {
    pub hash: String,
    pub expires_at: i64,
}

/// One application of the registry, as stored. The secret is present only as its keyed hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    pub id: String,
    pub client_id: String,
    pub name: String,
    pub client_type: ClientType,
    pub secret_hash: Option<String>,
    /// The secret the last rotation replaced, while its grace period lasts.
    pub previous_secret: Option<PreviousSecret>,
    pub redirect_uris: Vec<String>,
    pub grant_types: Vec<GrantType>,
    pub allowed_scopes: Vec<String>,
    pub default_scopes: Vec<String>,
    pub access_token_lifespan: i64,
    pub refresh_token_lifespan: i64,
    pub token_format: TokenFormat,
    /// The user the client-credentials grant acts as, by user name.
    pub run_as: Option<String>,
    pub active: bool,
    /// Whether the authorization-code grant demands PKCE of this client (always for public
    /// clients).
    pub require_pkce: bool,
    /// Whether the `plain` PKCE method is accepted besides `S256` (RFC 7636 §4.2).
    pub allow_plain_pkce: bool,
    /// The algorithm of this client's ID tokens.
    pub id_token_alg: SigningAlgorithm,
    /// Public keys registered for `private_key_jwt` (a JWK Set, a JWK or a PEM public key).
    pub jwks: Option<String>,
    /// A JWK Set URL registered for `private_key_jwt`.
    pub jwks_uri: Option<String>,
    /// Whether this client's `private_key_jwt` assertions may still name the token endpoint as
    /// `aud` instead of the issuer (for clients written before that rule).
    pub legacy_token_endpoint_aud: bool,
    /// The audience identifiers of the API this application is a resource server for
    /// (RFC 8707): tokens requested for one of them carry it as `aud`, and this application may
    /// introspect them. Unique across applications.
    pub audiences: Vec<String>,
    /// Whether an administrator allowed this application to introspect every token, whatever
    /// its client and audience (for gateways and APIs that predate audiences).
    pub introspect_any: bool,
    /// Whether `gatehouse apply` owns this record (and may prune it).
    pub managed: bool,
    /// What the declarative file said last time about the fields it sets only when it changes
    /// them (kept by `manifest`).
    pub applied: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Client {
    pub fn allows_grant(&self, grant: GrantType) -> bool {
        self.grant_types.contains(&grant)
    }

    pub fn allowed_scope_set(&self) -> ScopeSet {
        ScopeSet::from_list(&self.allowed_scopes).unwrap_or_default()
    }

    pub fn default_scope_set(&self) -> ScopeSet {
        ScopeSet::from_list(&self.default_scopes).unwrap_or_default()
    }

    /// RFC 7636 / RFC 9700 §2.1.1: public clients always use PKCE; confidential ones unless
    /// their record says otherwise.
    pub fn pkce_required(&self) -> bool {
        self.client_type == ClientType::Public || self.require_pkce
    }

    /// Where the keys for this client's `private_key_jwt` assertions come from, if it
    /// registered any.
    pub fn key_source(&self) -> Option<KeySource> {
        match (&self.jwks, &self.jwks_uri) {
            (Some(jwks), _) => Some(KeySource::Static(jwks.clone())),
            (None, Some(uri)) => Some(KeySource::JwksUrl(uri.clone())),
            (None, None) => None,
        }
    }
}
