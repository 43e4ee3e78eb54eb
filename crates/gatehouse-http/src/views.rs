//! The JSON shapes of registry records, shared by the admin API and the CLI's `--json` output
//! so that scripts see one format. Secrets appear only in the answer that created them.

use gatehouse_core::client::Client;
use gatehouse_core::federation::{JwtProvider, KeySource};
use gatehouse_core::held::{Held, HeldKind};
use gatehouse_core::keys::KeyRing;
use gatehouse_core::outbound::OAuthProvider;
use gatehouse_core::store::AuditRecord;
use gatehouse_core::user::User;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Declares the view of an application from the registry's field list.
macro_rules! app_view {
    ($(
        $(#[doc = $doc:literal])*
        #[arg($($arg:tt)*)]
        $field:ident : $ty:ty => $change:ty = $default:expr,
    )*) => {
        /// An application of the registry.
        #[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
        pub struct AppView {
            pub client_id: String,
            $($(#[doc = $doc])* pub $field: $ty,)*
            /// Whether `gatehouse apply` owns the record.
            pub managed: bool,
            pub created_at: i64,
            pub updated_at: i64,
            /// When the secret the last rotation replaced stops working (absent when none does).
            #[serde(skip_serializing_if = "Option::is_none")]
            pub previous_secret_expires_at: Option<i64>,
            /// Present only when the secret was just created or rotated; it is never shown again.
            #[serde(skip_serializing_if = "Option::is_none")]
            pub client_secret: Option<String>,
        }

        impl From<&Client> for AppView {
            fn from(client: &Client) -> Self {
                AppView {
                    client_id: client.client_id.clone(),
                    $($field: client.$field.clone(),)*
                    managed: client.managed,
                    created_at: client.created_at,
                    updated_at: client.updated_at,
                    previous_secret_expires_at: client
                        .previous_secret
                        .as_ref()
                        .map(|p| p.expires_at),
                    client_secret: None,
                }
            }
        }
    };
}

gatehouse_core::with_app_fields!(app_view);

/// A user.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UserView {
    pub id: String,
    pub user_name: String,
    pub display_name: String,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub email: Option<String>,
    pub roles: Vec<String>,
    pub active: bool,
    pub locked_out: bool,
    /// Whether the user can log in with a password.
    pub has_password: bool,
    pub managed: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

impl From<&User> for UserView {
    fn from(user: &User) -> Self {
        UserView {
            id: user.id.clone(),
            user_name: user.user_name.clone(),
            display_name: user.display_name.clone(),
            given_name: user.given_name.clone(),
            family_name: user.family_name.clone(),
            email: user.email.clone(),
            roles: user.roles.clone(),
            active: user.active,
            locked_out: user.locked_out,
            has_password: user.password_hash.is_some(),
            managed: user.managed,
            created_at: user.created_at,
            updated_at: user.updated_at,
        }
    }
}

/// An external OAuth provider. Its credentials are never shown: only whether they are set.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProviderView {
    pub name: String,
    pub token_url: String,
    pub authorization_url: Option<String>,
    pub client_id: String,
    /// `client_secret_basic`, `client_secret_post` or `private_key_jwt`.
    pub auth_method: String,
    /// `client_credentials`, `authorization_code`, `password` or `jwt_bearer`.
    pub grant: String,
    pub audience: Option<String>,
    pub resource: Option<String>,
    pub username: Option<String>,
    pub has_secret: bool,
    pub has_password: bool,
    /// `ES256` or `RS256`, when Gatehouse signs for this provider.
    pub signing_alg: Option<String>,
    /// The public half of Gatehouse's signing key, to register at the provider.
    #[schema(value_type = Option<Object>)]
    pub public_jwk: Option<serde_json::Value>,
    /// The provider's issuer identifier, which its authorization responses must name in `iss`.
    pub issuer: Option<String>,
    /// Whether its authorization responses must carry `iss` (from its metadata).
    pub authorization_response_iss_parameter_supported: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

impl From<&OAuthProvider> for ProviderView {
    fn from(p: &OAuthProvider) -> Self {
        ProviderView {
            name: p.name.clone(),
            token_url: p.token_url.clone(),
            authorization_url: p.authorization_url.clone(),
            client_id: p.client_id.clone(),
            auth_method: p.auth_method.as_str().into(),
            grant: p.grant.as_str().into(),
            audience: p.audience.clone(),
            resource: p.resource.clone(),
            username: p.username.clone(),
            has_secret: p.client_secret_sealed.is_some(),
            has_password: p.password_sealed.is_some(),
            signing_alg: p.signing_alg.clone(),
            public_jwk: p
                .signing_public_jwk
                .as_deref()
                .and_then(|jwk| serde_json::from_str(jwk).ok()),
            issuer: p.issuer.clone(),
            authorization_response_iss_parameter_supported: p
                .authorization_response_iss_parameter_supported,
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

/// A trusted JWT provider.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct JwtProviderView {
    pub name: String,
    pub issuer: String,
    pub audiences: Vec<String>,
    /// Exactly one of `jwks_url`, `discovery_url` and `static_key` is set.
    pub jwks_url: Option<String>,
    pub discovery_url: Option<String>,
    pub static_key: Option<String>,
    pub algorithms: Vec<String>,
    pub user_claim: String,
    /// `user_name` or `email`.
    pub user_field: String,
    pub allowed_clients: Vec<String>,
    /// Seconds.
    pub max_age: i64,
    /// Seconds an assertion may live (`exp - iat`, and `exp` from now).
    pub max_lifetime: i64,
    pub api_access: bool,
    pub api_scopes: Vec<String>,
    /// Whether its tokens typed `JWT` (or untyped) are accepted as access tokens on the APIs,
    /// besides those typed `at+jwt`.
    pub accept_plain_jwt: bool,
    /// Whether its ID tokens are accepted on the APIs.
    pub accept_id_tokens: bool,
    /// Seconds its keys stay in use past their expiry while refreshing them fails.
    pub stale_keys_lifetime: i64,
    /// Whether its tokens may stand for users who hold a registry role.
    pub map_registry_roles: bool,
    pub active: bool,
    pub managed: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

impl From<&JwtProvider> for JwtProviderView {
    fn from(provider: &JwtProvider) -> Self {
        let (mut jwks_url, mut discovery_url, mut static_key) = (None, None, None);
        match &provider.key_source {
            KeySource::JwksUrl(url) => jwks_url = Some(url.clone()),
            KeySource::DiscoveryUrl(url) => discovery_url = Some(url.clone()),
            KeySource::Static(key) => static_key = Some(key.clone()),
        }
        JwtProviderView {
            name: provider.name.clone(),
            issuer: provider.issuer.clone(),
            audiences: provider.audiences.clone(),
            jwks_url,
            discovery_url,
            static_key,
            algorithms: provider
                .algorithms
                .iter()
                .map(|a| a.as_str().into())
                .collect(),
            user_claim: provider.user_claim.clone(),
            user_field: provider.user_field.as_str().into(),
            allowed_clients: provider.allowed_clients.clone(),
            max_age: provider.max_age,
            max_lifetime: provider.max_lifetime,
            api_access: provider.api_access,
            api_scopes: provider.api_scopes.clone(),
            accept_plain_jwt: provider.accept_plain_jwt,
            accept_id_tokens: provider.accept_id_tokens,
            stale_keys_lifetime: provider.stale_keys_lifetime,
            map_registry_roles: provider.map_registry_roles,
            active: provider.active,
            managed: provider.managed,
            created_at: provider.created_at,
            updated_at: provider.updated_at,
        }
    }
}

/// A signing key: its public identity and where it stands in its algorithm's rotation (the
/// private half is never shown).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct KeyView {
    pub kid: String,
    /// `ES256`, `RS256` or `EdDSA`.
    pub alg: String,
    /// Unix seconds from which it signs.
    pub activates_at: i64,
    /// `next` (published, not signing yet), `signing`, `superseded` (still published for the
    /// tokens it signed) or `unpublished`.
    pub state: String,
}

impl KeyView {
    /// Every key of `ring` at `now`, oldest activation first.
    pub fn list(ring: &KeyRing, now: i64) -> Vec<KeyView> {
        ring.keys()
            .iter()
            .filter_map(|key| {
                Some(KeyView {
                    kid: key.kid.clone(),
                    alg: key.alg.as_str().into(),
                    activates_at: key.activates_at,
                    state: ring.state(&key.kid, now)?.as_str().into(),
                })
            })
            .collect()
    }
}

/// The outcome of retiring a signing key.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RetiredKeyView {
    pub retired: String,
    /// The key created in the same step when the retired one was signing, which signs at once.
    pub replacement: Option<String>,
}

/// An event of the audit trail: a change to the registry or a security event.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AuditEventView {
    /// Increasing; pass the last one of a page as `before` for the next page.
    pub id: i64,
    /// Unix seconds.
    pub at: i64,
    /// `subject.action`: `application.created`, `user.updated`, `sign_in.failed`, ...
    pub kind: String,
    /// Who acted: an administrator's user name, `cli`, `apply` or `server`; for sign-ins, the
    /// user name given.
    pub actor: String,
    /// The application the actor came through.
    pub client_id: Option<String>,
    /// The client address of the request.
    pub address: Option<String>,
    /// The key of the record the event is about.
    pub subject: String,
    /// The fields changed (`{"old": …, "new": …}`, or `{"changed": true}` for secrets), or the
    /// event's facts.
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
}

impl From<AuditRecord> for AuditEventView {
    fn from(record: AuditRecord) -> Self {
        AuditEventView {
            id: record.id,
            at: record.at,
            kind: record.kind,
            actor: record.actor,
            client_id: record.client_id,
            address: record.address,
            subject: record.subject,
            details: serde_json::from_str(&record.details).unwrap_or(serde_json::Value::Null),
        }
    }
}

/// A token or login session in service, as a listing of what a user or an application holds
/// shows it: never the token, only the handle that names it for a revocation.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HeldView {
    /// `access_token`, `jwt_access_token` (a JWT of a person's grant), `refresh_token` or
    /// `session`.
    pub kind: String,
    /// What names it for a revocation: its kind and the keyed hash (or a JWT's `jti`) the store
    /// keeps it by, from which no token can be recovered.
    pub handle: String,
    /// The application it was issued to; absent for a session.
    pub client_id: Option<String>,
    /// The user it acts for, by name (their id if they are gone); absent for an application's
    /// own token.
    pub user_name: Option<String>,
    pub scope: String,
    /// Unix seconds; for a session, when the user signed in.
    pub issued_at: i64,
    /// Unix seconds.
    pub expires_at: i64,
}

impl From<&Held> for HeldView {
    fn from(held: &Held) -> Self {
        HeldView {
            kind: match held.kind {
                HeldKind::AccessToken => "access_token",
                HeldKind::JwtAccessToken => "jwt_access_token",
                HeldKind::RefreshToken => "refresh_token",
                HeldKind::Session => "session",
            }
            .into(),
            handle: held.handle.clone(),
            client_id: held.client_id.clone(),
            user_name: held.user_name.clone(),
            scope: held.scope.clone(),
            issued_at: held.issued_at,
            expires_at: held.expires_at,
        }
    }
}

/// What a user or an application holds, newest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HoldingsView {
    pub tokens: Vec<HeldView>,
    /// Whether more of a kind were in service than the 500 listed.
    pub truncated: bool,
}

/// A Unix time as a UTC date and time to the minute, e.g. `2026-11-27 04:05 UTC`.
pub fn utc(seconds: i64) -> String {
    let days = seconds.div_euclid(86_400);
    let minutes = seconds.rem_euclid(86_400) / 60;
    // Civil date from days since 1970-01-01, counting in 400-year eras that begin on March 1st
    // so that the leap day ends each year.
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let march_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * march_month + 2) / 5 + 1;
    let month = if march_month < 10 {
        march_month + 3
    } else {
        march_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        minutes / 60,
        minutes % 60
    )
}

#[cfg(test)]
mod tests {
    use super::utc;

    #[test]
    fn unix_times_read_as_utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(utc(1_798_344_359), "2026-12-27 04:05 UTC");
        assert_eq!(utc(-60), "1969-12-31 23:59 UTC");
    }
}
