//! Applications: the records of the Application Registry (OAuth clients, RFC 6749 §2).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::federation::KeySource;
use crate::scope::ScopeSet;

/// Default access-token lifespan: 30 minutes.
pub const DEFAULT_ACCESS_TOKEN_LIFESPAN: i64 = 1800;
/// Default refresh-token lifespan: 100 days.
pub const DEFAULT_REFRESH_TOKEN_LIFESPAN: i64 = 8_640_000;

/// The longest client_id an application may have.
pub const MAX_CLIENT_ID_LENGTH: usize = 128;

/// RFC 6749 §2.1: whether a client can keep a secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case", try_from = "String")]
pub enum ClientType {
    Confidential,
    Public,
}

/// The grants an application may be allowed to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case", try_from = "String")]
pub enum GrantType {
    AuthorizationCode,
    ClientCredentials,
    Password,
    JwtBearer,
    Implicit,
    RefreshToken,
    DeviceCode,
    TokenExchange,
}

impl GrantType {
    pub const ALL: [GrantType; 8] = [
        GrantType::AuthorizationCode,
        GrantType::ClientCredentials,
        GrantType::Password,
        GrantType::JwtBearer,
        GrantType::Implicit,
        GrantType::RefreshToken,
        GrantType::DeviceCode,
        GrantType::TokenExchange,
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
            GrantType::DeviceCode => "device_code",
            GrantType::TokenExchange => "token_exchange",
        }
    }

    /// The value of the `grant_type` parameter at the token endpoint, where there is one.
    pub fn token_endpoint_value(self) -> Option<&'static str> {
        match self {
            GrantType::JwtBearer => Some("urn:ietf:params:oauth:grant-type:jwt-bearer"),
            GrantType::DeviceCode => Some("urn:ietf:params:oauth:grant-type:device_code"),
            GrantType::TokenExchange => Some("urn:ietf:params:oauth:grant-type:token-exchange"),
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case", try_from = "String")]
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

/// Reading these names from JSON or a file goes through `FromStr`, so a misspelt one is
/// answered with the names it could have been, as everywhere else.
macro_rules! parsed_from_text {
    ($($kind:ty),*) => {$(
        impl TryFrom<String> for $kind {
            type Error = Error;

            fn try_from(value: String) -> Result<Self, Error> {
                value.parse()
            }
        }
    )*};
}

parsed_from_text!(ClientType, GrantType, TokenFormat);

/// A replaced client secret, still accepted until `expires_at` so the services using it can
/// move to the new one one by one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PreviousSecret {
    pub hash: String,
    pub expires_at: i64,
}

/// Every field of an application that an administrator sets, declared once.
///
/// `with_app_fields!(callback)` hands the list to the macro `callback`, which builds what it
/// needs from it: [`Client`] and [`AppChanges`] here, the admin API's input and view in
/// `gatehouse-http`, the CLI's options in the binary. So a new field is one entry here (and its
/// column in the store), and the API, the CLI, the declarative file and their documentation
/// follow. Each entry is
///
/// ```text
/// /// documentation, shown by the API's schema and the CLI's help too
/// #[arg(the CLI option, in clap's syntax)]
/// field: stored type => the type a change gives it = its value on creation,
/// ```
///
/// A field whose stored type is `Option<String>` is changed by text, where `""` removes it
/// (see [`Changed`]).
#[macro_export]
macro_rules! with_app_fields {
    ($callback:ident) => {
        $callback! {
            /// The application's name, shown on the consent page.
            #[arg(long)]
            name: String => String = String::new(),
            /// What the application is for, in the administrators' words; "" removes it.
            #[arg(long, value_name = "TEXT")]
            description: Option<String> => String = None,
            /// `confidential` (default) or `public`.
            #[arg(long = "type", value_name = "TYPE")]
            client_type: $crate::client::ClientType => $crate::client::ClientType =
                $crate::client::ClientType::Confidential,
            /// The redirect URIs, registered in full and compared exactly.
            #[arg(long = "redirect-uri", value_name = "URI")]
            redirect_uris: Vec<String> => Vec<String> = Vec::new(),
            /// The grants it may use: `authorization_code`, `client_credentials`, `password`,
            /// `jwt_bearer`, `implicit`, `refresh_token`, `device_code`, `token_exchange`.
            #[arg(long = "grant", value_name = "GRANT")]
            grant_types: Vec<$crate::client::GrantType> => Vec<$crate::client::GrantType> =
                Vec::new(),
            /// The scopes it may be granted (on creation, by default: the registry's default
            /// scopes).
            #[arg(long = "scope", value_name = "SCOPE")]
            allowed_scopes: Vec<String> => Vec<String> = Vec::new(),
            /// The scopes it gets when it asks for none (by default: the allowed scopes).
            #[arg(long = "default-scope", value_name = "SCOPE")]
            default_scopes: Vec<String> => Vec<String> = Vec::new(),
            /// Access-token lifespan in seconds (default 1800).
            #[arg(long, value_name = "SECONDS")]
            access_token_lifespan: i64 => i64 = $crate::client::DEFAULT_ACCESS_TOKEN_LIFESPAN,
            /// Refresh-token lifespan in seconds (default 8640000).
            #[arg(long, value_name = "SECONDS")]
            refresh_token_lifespan: i64 => i64 = $crate::client::DEFAULT_REFRESH_TOKEN_LIFESPAN,
            /// `opaque` (default) or `jwt`.
            #[arg(long, value_name = "FORMAT")]
            token_format: $crate::client::TokenFormat => $crate::client::TokenFormat =
                $crate::client::TokenFormat::Opaque,
            /// The user the client-credentials grant acts as, by user name; "" removes it.
            #[arg(long, value_name = "USER")]
            run_as: Option<String> => String = None,
            /// Whether the application may obtain tokens (default true).
            #[arg(long, value_name = "BOOL")]
            active: bool => bool = true,
            /// Whether the authorization-code grant demands PKCE (default true; always for
            /// public clients).
            #[arg(long, value_name = "BOOL")]
            require_pkce: bool => bool = true,
            /// Whether the `plain` PKCE method is accepted besides `S256` (RFC 7636 §4.2;
            /// default false).
            #[arg(long, value_name = "BOOL")]
            allow_plain_pkce: bool => bool = false,
            /// Whether its authorization requests must be pushed first (RFC 9126; default
            /// false): the authorization endpoint then takes only a `request_uri`.
            #[arg(long, value_name = "BOOL")]
            require_pushed_authorization_requests: bool => bool = false,
            /// The algorithm of its ID tokens: `ES256` (default) or `RS256`.
            #[arg(long, value_name = "ALG")]
            id_token_alg: $crate::keys::SigningAlgorithm => $crate::keys::SigningAlgorithm =
                $crate::keys::SigningAlgorithm::Es256,
            /// Public keys for `private_key_jwt` (a JWK Set, a JWK or a PEM public key); a
            /// client with keys gets no secret. "" removes them.
            #[arg(skip)]
            jwks: Option<String> => String = None,
            /// A JWK Set URL for `private_key_jwt`; "" removes it.
            #[arg(long, value_name = "URL")]
            jwks_uri: Option<String> => String = None,
            /// Whether `private_key_jwt` assertions may still name the token endpoint URL as
            /// `aud` instead of the issuer (default false; for clients written before that
            /// rule).
            #[arg(long, value_name = "BOOL")]
            legacy_token_endpoint_aud: bool => bool = false,
            /// The audience identifiers of the API this application serves (RFC 8707: absolute
            /// URIs without a fragment, unique across applications). Tokens requested for one
            /// of them carry it as `aud`, and this application may introspect them. An empty
            /// list makes it no resource server.
            #[arg(long = "audience", value_name = "URI")]
            audiences: Vec<String> => Vec<String> = Vec::new(),
            /// The audiences it may ask a token exchange (RFC 8693) for, besides the subject
            /// token's own: registered audience identifiers, or this server's issuer for its own
            /// APIs. Empty: an exchange keeps the subject token's audience.
            #[arg(long = "exchange-audience", value_name = "URI")]
            exchange_audiences: Vec<String> => Vec<String> = Vec::new(),
            /// Whether this application may introspect every token, whatever its client and
            /// audience (default false; confidential clients only; for gateways and APIs that
            /// predate audiences).
            #[arg(long, value_name = "BOOL")]
            introspect_any: bool => bool = false,
            /// Where it hears that a user signed out (OpenID Connect Back-Channel Logout 1.0):
            /// https, or http to a loopback address; "" removes it.
            #[arg(long, value_name = "URL")]
            backchannel_logout_uri: Option<String> => String = None,
            /// Whether its logout tokens must name the ended session (`sid`; default false, as
            /// the specification says): ending all of a user's sessions then sends one token per
            /// session instead of one naming only the user.
            #[arg(long, value_name = "BOOL")]
            backchannel_logout_session_required: bool => bool = false,
            /// Whether every token request must carry a DPoP proof (RFC 9449 §5.2; default
            /// false): its access tokens are then always bound to the client's key.
            #[arg(long, value_name = "BOOL")]
            dpop_bound_access_tokens: bool => bool = false,
        }
    };
}

/// Declares the record and its changes from the field list.
macro_rules! client_record {
    ($(
        $(#[doc = $doc:literal])*
        #[arg($($arg:tt)*)]
        $field:ident : $ty:ty => $change:ty = $default:expr,
    )*) => {
        /// One application of the registry, as stored. The secret is present only as its keyed
        /// hash. Serialised for the audit trail's reports of what changed.
        #[derive(Debug, Clone, PartialEq, Eq, Serialize)]
        pub struct Client {
            pub id: String,
            pub client_id: String,
            pub secret_hash: Option<String>,
            /// The secret the last rotation replaced, while its grace period lasts.
            pub previous_secret: Option<PreviousSecret>,
            $($(#[doc = $doc])* pub $field: $ty,)*
            /// Whether `gatehouse apply` owns this record (and may prune it).
            pub managed: bool,
            /// What the declarative file said last time about the fields it sets only when it
            /// changes them (kept by `manifest`). Not audited: it holds a keyed hash of the
            /// file's secret.
            #[serde(skip)]
            pub applied: Option<String>,
            pub created_at: i64,
            pub updated_at: i64,
            /// Every token issued to it up to this second (Unix seconds) is revoked: the cutoff
            /// of its last "revoke everything", 0 for never. Only that revocation sets it, so an
            /// edit of the application can neither undo it nor report it as a change.
            #[serde(skip)]
            pub tokens_revoked_at: i64,
        }

        impl Client {
            /// The fields an administrator sets, in the order they are declared.
            pub const FIELDS: &'static [&'static str] = &[$(stringify!($field)),*];

            /// A new application, every field at its value on creation.
            pub fn new(id: String, client_id: String, now: i64) -> Client {
                Client {
                    id,
                    client_id,
                    secret_hash: None,
                    previous_secret: None,
                    $($field: $default,)*
                    managed: false,
                    applied: None,
                    created_at: now,
                    updated_at: now,
                    tokens_revoked_at: 0,
                }
            }

            /// The fields an administrator sets in which `other` differs from this one.
            pub fn differences(&self, other: &Client) -> Vec<&'static str> {
                let mut fields = Vec::new();
                $(
                    if self.$field != other.$field {
                        fields.push(stringify!($field));
                    }
                )*
                fields
            }
        }

        /// Changes to an application; `None` leaves a field as it is (on creation: takes its
        /// default).
        #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct AppChanges {
            $($(#[doc = $doc])* pub $field: Option<$change>,)*
        }

        impl AppChanges {
            /// Makes the changes to `client`, its sets kept sorted.
            pub fn apply(self, client: &mut Client) {
                $(
                    if let Some(value) = self.$field {
                        client.$field = <$ty as Changed<$change>>::from_change(value);
                    }
                )*
                client.normalize();
            }

            /// The changes that give any application `client`'s fields.
            pub fn every_field_of(client: &Client) -> AppChanges {
                AppChanges {
                    $($field: Some(<$ty as Changed<$change>>::to_change(&client.$field)),)*
                }
            }
        }
    };
}

with_app_fields!(client_record);

/// How a change gives a field its value: most fields take the value itself; optional text
/// takes text, where `""` removes it, so that a command-line option, a JSON body and a file can
/// all say "none".
pub trait Changed<C> {
    fn from_change(change: C) -> Self;
    fn to_change(&self) -> C;
}

impl<T: Clone> Changed<T> for T {
    fn from_change(change: T) -> T {
        change
    }
    fn to_change(&self) -> T {
        self.clone()
    }
}

impl Changed<String> for Option<String> {
    fn from_change(change: String) -> Option<String> {
        (!change.is_empty()).then_some(change)
    }
    fn to_change(&self) -> String {
        self.clone().unwrap_or_default()
    }
}

impl Client {
    /// Whether something issued to it at `issued_at` (Unix seconds) went with its last
    /// "revoke everything": a token, or a code or device code not yet redeemed for one.
    pub fn revoked_since(&self, issued_at: i64) -> bool {
        issued_at <= self.tokens_revoked_at
    }

    /// Sorts and deduplicates the fields that are sets, so that two equal sets compare equal.
    fn normalize(&mut self) {
        self.grant_types.sort();
        self.grant_types.dedup();
        for set in [
            &mut self.allowed_scopes,
            &mut self.default_scopes,
            &mut self.audiences,
            &mut self.exchange_audiences,
        ] {
            set.sort();
            set.dedup();
        }
    }

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
