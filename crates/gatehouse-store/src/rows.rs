//! Rows as the database returns them, and their conversion to the domain's types. Lists are
//! kept as JSON text so that both backends store them the same way.

use gatehouse_core::client::{Client, PreviousSecret};
use gatehouse_core::federation::{JwtProvider, KeySource};
use gatehouse_core::store::{
    AccessTokenRecord, AuthorizationCodeRecord, ConsentRecord, DeviceAuthorizationRecord,
    DeviceStatus, RefreshTokenRecord, SessionRecord, StoreError, StoredSigningKey,
};
use gatehouse_core::token::Act;
use gatehouse_core::user::User;
use serde_json::Value;

#[derive(sqlx::FromRow)]
pub(crate) struct ClientRow {
    id: String,
    client_id: String,
    name: String,
    client_type: String,
    secret_hash: Option<String>,
    redirect_uris: String,
    grant_types: String,
    allowed_scopes: String,
    default_scopes: String,
    access_token_lifespan: i64,
    refresh_token_lifespan: i64,
    token_format: String,
    run_as: Option<String>,
    active: bool,
    require_pkce: bool,
    allow_plain_pkce: bool,
    id_token_alg: String,
    managed: bool,
    created_at: i64,
    updated_at: i64,
    jwks: Option<String>,
    jwks_uri: Option<String>,
    legacy_token_endpoint_aud: bool,
    audiences: String,
    introspect_any: bool,
    applied: Option<String>,
    previous_secret_hash: Option<String>,
    previous_secret_expires_at: Option<i64>,
    description: Option<String>,
    require_pushed_authorization_requests: bool,
    backchannel_logout_uri: Option<String>,
    backchannel_logout_session_required: bool,
    exchange_audiences: String,
    dpop_bound_access_tokens: bool,
    tokens_revoked_at: i64,
}

/// The column values of a client, in the order of [`CLIENT_COLUMNS`](crate::shared).
pub(crate) struct ClientValues {
    pub(crate) redirect_uris: String,
    pub(crate) grant_types: String,
    pub(crate) allowed_scopes: String,
    pub(crate) default_scopes: String,
    pub(crate) audiences: String,
    pub(crate) exchange_audiences: String,
}

pub(crate) fn client_values(client: &Client) -> ClientValues {
    ClientValues {
        redirect_uris: json_list(&client.redirect_uris),
        grant_types: json_list(
            &client
                .grant_types
                .iter()
                .map(|g| g.as_str())
                .collect::<Vec<_>>(),
        ),
        allowed_scopes: json_list(&client.allowed_scopes),
        default_scopes: json_list(&client.default_scopes),
        audiences: json_list(&client.audiences),
        exchange_audiences: json_list(&client.exchange_audiences),
    }
}

pub(crate) fn json_list<S: AsRef<str>>(items: &[S]) -> String {
    Value::Array(
        items
            .iter()
            .map(|s| Value::String(s.as_ref().to_owned()))
            .collect(),
    )
    .to_string()
}

pub(crate) fn parse_list(column: &str, text: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(text)
        .map_err(|e| StoreError::Backend(format!("column {column} holds invalid JSON: {e}")))
}

pub(crate) fn corrupt(column: &str) -> impl Fn(gatehouse_core::Error) -> StoreError + '_ {
    move |e| StoreError::Backend(format!("column {column}: {e}"))
}

impl TryFrom<ClientRow> for Client {
    type Error = StoreError;

    fn try_from(row: ClientRow) -> Result<Client, StoreError> {
        Ok(Client {
            id: row.id,
            client_id: row.client_id,
            name: row.name,
            description: row.description,
            require_pushed_authorization_requests: row.require_pushed_authorization_requests,
            backchannel_logout_uri: row.backchannel_logout_uri,
            backchannel_logout_session_required: row.backchannel_logout_session_required,
            dpop_bound_access_tokens: row.dpop_bound_access_tokens,
            client_type: row.client_type.parse().map_err(corrupt("client_type"))?,
            secret_hash: row.secret_hash,
            previous_secret: row
                .previous_secret_hash
                .zip(row.previous_secret_expires_at)
                .map(|(hash, expires_at)| PreviousSecret { hash, expires_at }),
            redirect_uris: parse_list("redirect_uris", &row.redirect_uris)?,
            grant_types: parse_list("grant_types", &row.grant_types)?
                .iter()
                .map(|g| g.parse())
                .collect::<Result<_, _>>()
                .map_err(corrupt("grant_types"))?,
            allowed_scopes: parse_list("allowed_scopes", &row.allowed_scopes)?,
            default_scopes: parse_list("default_scopes", &row.default_scopes)?,
            access_token_lifespan: row.access_token_lifespan,
            refresh_token_lifespan: row.refresh_token_lifespan,
            token_format: row.token_format.parse().map_err(corrupt("token_format"))?,
            run_as: row.run_as,
            active: row.active,
            require_pkce: row.require_pkce,
            allow_plain_pkce: row.allow_plain_pkce,
            id_token_alg: row.id_token_alg.parse().map_err(corrupt("id_token_alg"))?,
            jwks: row.jwks,
            jwks_uri: row.jwks_uri,
            legacy_token_endpoint_aud: row.legacy_token_endpoint_aud,
            audiences: parse_list("audiences", &row.audiences)?,
            exchange_audiences: parse_list("exchange_audiences", &row.exchange_audiences)?,
            introspect_any: row.introspect_any,
            managed: row.managed,
            applied: row.applied,
            created_at: row.created_at,
            updated_at: row.updated_at,
            tokens_revoked_at: row.tokens_revoked_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct UserRow {
    id: String,
    user_name: String,
    display_name: String,
    given_name: Option<String>,
    family_name: Option<String>,
    email: Option<String>,
    roles: String,
    active: bool,
    locked_out: bool,
    password_hash: Option<String>,
    managed: bool,
    created_at: i64,
    updated_at: i64,
    credential_epoch: i64,
    applied: Option<String>,
}

pub(crate) fn roles_value(user: &User) -> String {
    json_list(&user.roles)
}

impl TryFrom<UserRow> for User {
    type Error = StoreError;

    fn try_from(row: UserRow) -> Result<User, StoreError> {
        Ok(User {
            id: row.id,
            user_name: row.user_name,
            display_name: row.display_name,
            given_name: row.given_name,
            family_name: row.family_name,
            email: row.email,
            roles: parse_list("roles", &row.roles)?,
            active: row.active,
            locked_out: row.locked_out,
            password_hash: row.password_hash,
            managed: row.managed,
            credential_epoch: row.credential_epoch,
            applied: row.applied,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct AccessTokenRow {
    token_hash: String,
    jti: String,
    client_id: String,
    user_id: Option<String>,
    scope: String,
    issued_at: i64,
    expires_at: i64,
    revoked: bool,
    grant_id: Option<String>,
    audience: String,
    act: Option<String>,
    dpop_jkt: Option<String>,
}

/// The `act` column: the claim's JSON.
pub(crate) fn act_value(act: Option<&Act>) -> Option<String> {
    act.map(|act| serde_json::to_string(act).unwrap_or_default())
}

impl TryFrom<AccessTokenRow> for AccessTokenRecord {
    type Error = StoreError;

    fn try_from(row: AccessTokenRow) -> Result<Self, StoreError> {
        Ok(AccessTokenRecord {
            audience: parse_list("audience", &row.audience)?,
            act: row
                .act
                .as_deref()
                .map(serde_json::from_str)
                .transpose()
                .map_err(|e| StoreError::Backend(format!("column act holds invalid JSON: {e}")))?,
            token_hash: row.token_hash,
            jti: row.jti,
            client_id: row.client_id,
            user_id: row.user_id,
            scope: row.scope,
            issued_at: row.issued_at,
            expires_at: row.expires_at,
            revoked: row.revoked,
            grant_id: row.grant_id,
            dpop_jkt: row.dpop_jkt,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct AuthorizationCodeRow {
    code_hash: String,
    grant_id: String,
    client_id: String,
    user_id: String,
    redirect_uri: Option<String>,
    scope: String,
    nonce: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    auth_time: i64,
    expires_at: i64,
    consumed: bool,
    audience: String,
    sid: Option<String>,
    dpop_jkt: Option<String>,
}

impl TryFrom<AuthorizationCodeRow> for AuthorizationCodeRecord {
    type Error = StoreError;

    fn try_from(row: AuthorizationCodeRow) -> Result<Self, StoreError> {
        Ok(AuthorizationCodeRecord {
            audience: parse_list("audience", &row.audience)?,
            code_hash: row.code_hash,
            grant_id: row.grant_id,
            client_id: row.client_id,
            user_id: row.user_id,
            redirect_uri: row.redirect_uri,
            scope: row.scope,
            nonce: row.nonce,
            code_challenge: row.code_challenge,
            code_challenge_method: row.code_challenge_method,
            auth_time: row.auth_time,
            expires_at: row.expires_at,
            consumed: row.consumed,
            sid: row.sid,
            dpop_jkt: row.dpop_jkt,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct RefreshTokenRow {
    token_hash: String,
    grant_id: String,
    client_id: String,
    user_id: String,
    scope: String,
    auth_time: i64,
    issued_at: i64,
    expires_at: i64,
    rotated_at: Option<i64>,
    revoked: bool,
    audience: String,
    dpop_jkt: Option<String>,
}

impl TryFrom<RefreshTokenRow> for RefreshTokenRecord {
    type Error = StoreError;

    fn try_from(row: RefreshTokenRow) -> Result<Self, StoreError> {
        Ok(RefreshTokenRecord {
            audience: parse_list("audience", &row.audience)?,
            token_hash: row.token_hash,
            grant_id: row.grant_id,
            client_id: row.client_id,
            user_id: row.user_id,
            scope: row.scope,
            auth_time: row.auth_time,
            issued_at: row.issued_at,
            expires_at: row.expires_at,
            rotated_at: row.rotated_at,
            revoked: row.revoked,
            dpop_jkt: row.dpop_jkt,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct SessionRow {
    session_hash: String,
    user_id: String,
    auth_time: i64,
    expires_at: i64,
}

impl From<SessionRow> for SessionRecord {
    fn from(row: SessionRow) -> Self {
        SessionRecord {
            session_hash: row.session_hash,
            user_id: row.user_id,
            auth_time: row.auth_time,
            expires_at: row.expires_at,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct ConsentRow {
    user_id: String,
    client_id: String,
    scope: String,
    granted_at: i64,
}

impl From<ConsentRow> for ConsentRecord {
    fn from(row: ConsentRow) -> Self {
        ConsentRecord {
            user_id: row.user_id,
            client_id: row.client_id,
            scope: row.scope,
            granted_at: row.granted_at,
        }
    }
}

/// Every signing key, in the order they activate: read by the store, and from a backup to check
/// that the master key opens them.
pub(crate) const SELECT_SIGNING_KEYS: &str = "SELECT kid, alg, private_key_sealed, public_jwk, \
     created_at, activates_at FROM signing_keys ORDER BY activates_at, created_at";

#[derive(sqlx::FromRow)]
pub(crate) struct SigningKeyRow {
    kid: String,
    alg: String,
    private_key_sealed: Vec<u8>,
    public_jwk: String,
    created_at: i64,
    activates_at: i64,
}

impl From<SigningKeyRow> for StoredSigningKey {
    fn from(row: SigningKeyRow) -> Self {
        StoredSigningKey {
            kid: row.kid,
            alg: row.alg,
            private_key_sealed: row.private_key_sealed,
            public_jwk: row.public_jwk,
            created_at: row.created_at,
            activates_at: row.activates_at,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct JwtProviderRow {
    id: String,
    name: String,
    issuer: String,
    audiences: String,
    key_source_kind: String,
    key_source_value: String,
    algorithms: String,
    user_claim: String,
    user_field: String,
    allowed_clients: String,
    max_age: i64,
    api_access: bool,
    api_scopes: String,
    active: bool,
    managed: bool,
    created_at: i64,
    updated_at: i64,
    accept_plain_jwt: bool,
    accept_id_tokens: bool,
    stale_keys_lifetime: i64,
    max_lifetime: i64,
    map_registry_roles: bool,
}

/// The list columns of a JWT provider, as JSON text.
pub(crate) struct JwtProviderValues {
    pub(crate) audiences: String,
    pub(crate) algorithms: String,
    pub(crate) allowed_clients: String,
    pub(crate) api_scopes: String,
}

pub(crate) fn jwt_provider_values(provider: &JwtProvider) -> JwtProviderValues {
    JwtProviderValues {
        audiences: json_list(&provider.audiences),
        algorithms: json_list(
            &provider
                .algorithms
                .iter()
                .map(|a| a.as_str())
                .collect::<Vec<_>>(),
        ),
        allowed_clients: json_list(&provider.allowed_clients),
        api_scopes: json_list(&provider.api_scopes),
    }
}

impl TryFrom<JwtProviderRow> for JwtProvider {
    type Error = StoreError;

    fn try_from(row: JwtProviderRow) -> Result<JwtProvider, StoreError> {
        Ok(JwtProvider {
            id: row.id,
            name: row.name,
            issuer: row.issuer,
            audiences: parse_list("audiences", &row.audiences)?,
            key_source: KeySource::from_parts(&row.key_source_kind, row.key_source_value)
                .map_err(corrupt("key_source_kind"))?,
            algorithms: parse_list("algorithms", &row.algorithms)?
                .iter()
                .map(|a| a.parse())
                .collect::<Result<_, _>>()
                .map_err(corrupt("algorithms"))?,
            user_claim: row.user_claim,
            user_field: row.user_field.parse().map_err(corrupt("user_field"))?,
            allowed_clients: parse_list("allowed_clients", &row.allowed_clients)?,
            max_age: row.max_age,
            max_lifetime: row.max_lifetime,
            api_access: row.api_access,
            api_scopes: parse_list("api_scopes", &row.api_scopes)?,
            accept_plain_jwt: row.accept_plain_jwt,
            accept_id_tokens: row.accept_id_tokens,
            stale_keys_lifetime: row.stale_keys_lifetime,
            map_registry_roles: row.map_registry_roles,
            active: row.active,
            managed: row.managed,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct DeviceAuthorizationRow {
    device_code_hash: String,
    user_code: String,
    client_id: String,
    scope: String,
    audience: String,
    expires_at: i64,
    poll_interval: i64,
    last_polled_at: Option<i64>,
    status: String,
    user_id: Option<String>,
    auth_time: Option<i64>,
}

impl TryFrom<DeviceAuthorizationRow> for DeviceAuthorizationRecord {
    type Error = StoreError;

    fn try_from(row: DeviceAuthorizationRow) -> Result<Self, StoreError> {
        Ok(DeviceAuthorizationRecord {
            audience: parse_list("audience", &row.audience)?,
            status: DeviceStatus::parse(&row.status)
                .ok_or_else(|| StoreError::Backend(format!("unknown status {:?}", row.status)))?,
            device_code_hash: row.device_code_hash,
            user_code: row.user_code,
            client_id: row.client_id,
            scope: row.scope,
            expires_at: row.expires_at,
            interval: row.poll_interval,
            last_polled_at: row.last_polled_at,
            user_id: row.user_id,
            auth_time: row.auth_time,
        })
    }
}
