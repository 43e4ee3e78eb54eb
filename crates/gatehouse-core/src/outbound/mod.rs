//! Outbound OAuth: Gatehouse as the client of external OAuth providers, so that people and
//! scripts call external APIs by naming a connection alias and never handle tokens themselves.
//!
//! Three records, each naming the next: a **connection alias** (base URL, time-out, retry
//! policy, the roles that may use it) names an **OAuth profile** (a scope set, system-wide or
//! per user), which names an **OAuth provider** (token endpoint, client credentials, the grant
//! to use). Aliases and profiles are entries of the registry (`entry`), managed and read like
//! routes; providers have a table of their own, because their credentials are sealed at rest
//! (they must be sent to the provider and so cannot be hashed) and no view of a provider ever
//! shows them again.
//!
//! The exchanges with the provider and the token cache live in `gatehouse-remote`; here, free of
//! IO, are the records and the cache policy, the registry's use cases (`registry`), the
//! authorization-code grant a person starts in the browser (`authorization`), the declarative
//! file's outbound sections (`manifest`) and the rules a record must follow (`validation`).

mod authorization;
mod manifest;
mod registry;
mod validation;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::client::GrantType;
use crate::entry::{Catalog, Entry};
use crate::scope::ScopeSet;
use crate::secret::Secret;
use crate::store::Store;
use crate::user::{Permission, User};

pub use authorization::{AUTHORIZATION_LIFETIME, PendingAuthorization};
pub use manifest::ProviderEntry;
pub use registry::{OutboundRegistry, ProviderSpec};

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
/// Serialised for the audit trail's reports of what changed (its sealed fields only as
/// changed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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

/// A provider and a scope set: what a token is obtained for. An entry of the registry, whose
/// change or deletion drops the tokens obtained for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthProfile {
    pub name: String,
    /// The OAuth provider tokens are obtained from: not an entry, since it holds sealed
    /// credentials.
    pub provider: String,
    #[serde(default, deserialize_with = "validation::sorted_set")]
    pub scopes: Vec<String>,
    /// Each user obtains their own token (through the authorization-code grant) instead of
    /// one token serving everybody.
    #[serde(default)]
    pub per_user: bool,
}

/// A named external API: its base URL, the profile whose token it gets, and how to call it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionAlias {
    pub name: String,
    #[serde(deserialize_with = "validation::without_trailing_slash")]
    pub base_url: String,
    pub profile: String,
    /// The roles a user needs to call the alias through the proxy endpoint.
    #[serde(default, deserialize_with = "validation::sorted_set")]
    pub allowed_roles: Vec<String>,
    /// The time limit of one upstream exchange.
    #[serde(default = "default_timeout_seconds")]
    pub timeout_seconds: i64,
    /// How many times a server error (5xx, 429) or an unreachable upstream is retried.
    #[serde(default = "default_max_retries")]
    pub max_retries: i64,
}

fn default_timeout_seconds() -> i64 {
    DEFAULT_TIMEOUT_SECONDS
}

fn default_max_retries() -> i64 {
    DEFAULT_MAX_RETRIES
}

impl Entry for OAuthProfile {
    const KIND: &'static str = "oauth_profile";
    const FIELDS: &'static [&'static str] = &["provider", "scopes", "per_user"];
    const MANAGED_WITH: Permission = Permission::ManageOutbound;

    fn name(&self) -> &str {
        &self.name
    }

    fn check(&self, _: &Catalog) -> Result<(), Error> {
        validation::check_name("profile name", &self.name)?;
        ScopeSet::from_list(&self.scopes)?;
        Ok(())
    }

    async fn check_records(&self, store: &dyn Store) -> Result<(), Error> {
        let provider = store.find_provider(&self.provider).await?.ok_or_else(|| {
            Error::validation(format!("OAuth provider {:?} does not exist", self.provider))
        })?;
        if self.per_user && provider.grant != GrantType::AuthorizationCode {
            return Err(Error::validation(
                "a per-user profile needs a provider using the authorization_code grant",
            ));
        }
        Ok(())
    }

    /// A token obtained for the profile as it was is never used for it as it is.
    async fn changed(name: &str, store: &dyn Store) -> Result<(), Error> {
        Ok(store.delete_outbound_tokens(name).await?)
    }
}

impl Entry for ConnectionAlias {
    const KIND: &'static str = "connection_alias";
    const FIELDS: &'static [&'static str] = &[
        "base_url",
        "profile",
        "allowed_roles",
        "timeout_seconds",
        "max_retries",
    ];
    const MANAGED_WITH: Permission = Permission::ManageOutbound;

    fn name(&self) -> &str {
        &self.name
    }

    fn check(&self, _: &Catalog) -> Result<(), Error> {
        validation::check_alias(self)
    }

    fn references(&self) -> Vec<(&'static str, &str)> {
        vec![(OAuthProfile::KIND, &self.profile)]
    }
}

impl ConnectionAlias {
    /// Whether `user` may call the API behind the alias: an active user holding one of its
    /// roles. A caller acting for no user, such as a client's own token, never may.
    pub fn admits(&self, user: Option<&User>) -> Result<(), Error> {
        let allowed = user
            .is_some_and(|u| u.active && self.allowed_roles.iter().any(|role| u.has_role(role)));
        if allowed {
            Ok(())
        } else {
            Err(Error::Forbidden(format!(
                "calling {:?} needs one of the roles {}",
                self.name,
                self.allowed_roles.join(", ")
            )))
        }
    }
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

/// The clear credentials of a provider, opened for one exchange.
#[derive(Debug, Clone)]
pub struct ProviderCredentials {
    pub client_secret: Option<Secret>,
    pub password: Option<Secret>,
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

/// A connection alias resolved: the alias, its profile and the profile's provider — what a call
/// through it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedAlias {
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
    fn an_alias_admits_active_users_with_one_of_its_roles() {
        let alias = ConnectionAlias {
            name: "crm".into(),
            base_url: "https://crm.example".into(),
            profile: "crm".into(),
            allowed_roles: vec!["sales".into(), "support".into()],
            timeout_seconds: DEFAULT_TIMEOUT_SECONDS,
            max_retries: DEFAULT_MAX_RETRIES,
        };
        let support = User::for_tests("sam", &["support"]);
        assert!(alias.admits(Some(&support)).is_ok());
        let inactive = User {
            active: false,
            ..support.clone()
        };
        let other = User::for_tests("olga", &["admin"]);
        for refused in [Some(&inactive), Some(&other), None] {
            match alias.admits(refused) {
                Err(Error::Forbidden(why)) => assert!(why.contains("sales, support"), "{why}"),
                other => panic!("expected a refusal, got {other:?}"),
            }
        }
    }

    #[test]
    fn profiles_and_aliases_read_in_one_form_with_their_defaults() {
        let alias: ConnectionAlias = serde_json::from_value(serde_json::json!({
            "name": "crm", "base_url": "https://crm.example/v1/", "profile": "crm",
            "allowed_roles": ["support", "sales", "support"],
        }))
        .unwrap();
        assert_eq!(alias.base_url, "https://crm.example/v1");
        assert_eq!(alias.allowed_roles, ["sales", "support"]);
        assert_eq!(
            (alias.timeout_seconds, alias.max_retries),
            (DEFAULT_TIMEOUT_SECONDS, DEFAULT_MAX_RETRIES)
        );
        assert!(alias.check(&Catalog::default()).is_ok());
        assert_eq!(alias.references(), [(OAuthProfile::KIND, "crm")]);
        for refused in [
            ConnectionAlias {
                timeout_seconds: 0,
                ..alias.clone()
            },
            ConnectionAlias {
                max_retries: 11,
                ..alias.clone()
            },
            ConnectionAlias {
                base_url: "http://crm.example".into(),
                ..alias.clone()
            },
            ConnectionAlias {
                name: "a/b".into(),
                ..alias.clone()
            },
        ] {
            assert!(refused.check(&Catalog::default()).is_err(), "{refused:?}");
        }
        let profile: OAuthProfile = serde_json::from_value(serde_json::json!({
            "name": "crm", "provider": "idp", "scopes": ["write", "read", "write"],
        }))
        .unwrap();
        assert_eq!(profile.scopes, ["read", "write"]);
        assert!(!profile.per_user);
        let unknown = serde_json::json!({"name": "crm", "provider": "idp", "scope": "read"});
        assert!(serde_json::from_value::<OAuthProfile>(unknown).is_err());
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
