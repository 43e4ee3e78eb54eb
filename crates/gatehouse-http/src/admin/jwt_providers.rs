//! `/jwt-providers`: trusted issuers of JWTs (assertions of the JWT bearer grant, and
//! third-party tokens on the APIs).

use axum::Json;
use axum::extract::Path;
use axum::http::StatusCode;
use gatehouse_core::Error;
use gatehouse_core::federation::{JwtProviderChanges, KeySource, NewJwtProvider};
use serde::Deserialize;
use utoipa::ToSchema;

use super::RegistryAdmin;
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::views::JwtProviderView;

/// The fields of a JWT provider; on update, a field left out keeps its value.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JwtProviderInput {
    /// Only on creation.
    pub name: Option<String>,
    /// The `iss` of its tokens.
    pub issuer: Option<String>,
    /// `aud` values naming this server at that issuer.
    pub audiences: Option<Vec<String>>,
    /// One of `jwks_url`, `discovery_url` and `static_key` (PEM public key, JWK or JWK Set).
    pub jwks_url: Option<String>,
    pub discovery_url: Option<String>,
    pub static_key: Option<String>,
    /// RS256, RS384, RS512, PS256, ES256, ES384, EdDSA (default RS256 and ES256).
    pub algorithms: Option<Vec<String>>,
    /// The claim naming the user (default `sub`).
    pub user_claim: Option<String>,
    /// `user_name` (default) or `email`.
    pub user_field: Option<String>,
    /// client_ids of the applications that may present its assertions.
    pub allowed_clients: Option<Vec<String>>,
    /// The oldest assertion accepted, in seconds since its `iat` (default 300).
    pub max_age: Option<i64>,
    /// The longest an assertion may live, in seconds: the most its `exp` may be after its `iat`
    /// and after now (default 3600).
    pub max_lifetime: Option<i64>,
    /// Whether its tokens are accepted as bearer tokens on the APIs.
    pub api_access: Option<bool>,
    /// The scopes its tokens may carry on the APIs.
    pub api_scopes: Option<Vec<String>>,
    /// Accept its tokens typed `JWT` (or untyped) as access tokens on the APIs, besides those
    /// typed `at+jwt` (default false). ID tokens and assertions stay refused.
    pub accept_plain_jwt: Option<bool>,
    /// Accept its ID tokens on the APIs (default false).
    pub accept_id_tokens: Option<bool>,
    /// Seconds its keys stay in use past their expiry while refreshing them fails (default
    /// 3600); then its tokens are refused.
    pub stale_keys_lifetime: Option<i64>,
    /// Whether its tokens and assertions may stand for users who hold a registry role (default
    /// false). Only `admin` may turn it on or change a provider that has it.
    pub map_registry_roles: Option<bool>,
    pub active: Option<bool>,
}

impl JwtProviderInput {
    fn into_changes(self) -> Result<(Option<String>, JwtProviderChanges), Error> {
        let changes = JwtProviderChanges {
            issuer: self.issuer,
            audiences: self.audiences,
            key_source: KeySource::from_options(
                self.jwks_url,
                self.discovery_url,
                self.static_key,
            )?,
            algorithms: self
                .algorithms
                .map(|list| list.iter().map(|a| a.parse()).collect())
                .transpose()?,
            user_claim: self.user_claim,
            user_field: self.user_field.map(|f| f.parse()).transpose()?,
            allowed_clients: self.allowed_clients,
            max_age: self.max_age,
            max_lifetime: self.max_lifetime,
            api_access: self.api_access,
            api_scopes: self.api_scopes,
            accept_plain_jwt: self.accept_plain_jwt,
            accept_id_tokens: self.accept_id_tokens,
            stale_keys_lifetime: self.stale_keys_lifetime,
            map_registry_roles: self.map_registry_roles,
            active: self.active,
        };
        Ok((self.name, changes))
    }
}

/// Lists every JWT provider.
#[utoipa::path(get, path = "/jwt-providers", tag = "jwt-providers",
    responses((status = 200, body = [JwtProviderView]), (status = 401, body = super::ErrorBody),
        (status = 403, body = super::ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(admin: RegistryAdmin) -> Result<Json<Vec<JwtProviderView>>, ApiError> {
    let providers = admin.registry.list_jwt_providers().await?;
    Ok(Json(providers.iter().map(JwtProviderView::from).collect()))
}

/// Creates a JWT provider.
#[utoipa::path(post, path = "/jwt-providers", tag = "jwt-providers",
    request_body = JwtProviderInput,
    responses((status = 201, body = JwtProviderView), (status = 400, body = super::ErrorBody),
        (status = 409, body = super::ErrorBody)),
    security(("bearer" = [])))]
pub async fn create(
    admin: RegistryAdmin,
    ApiJson(input): ApiJson<JwtProviderInput>,
) -> Result<(StatusCode, Json<JwtProviderView>), ApiError> {
    let (name, fields) = input.into_changes()?;
    let name = name.ok_or_else(|| Error::validation("a JWT provider needs a name"))?;
    let provider = admin
        .registry
        .create_jwt_provider(NewJwtProvider { name, fields }, false)
        .await?;
    Ok((StatusCode::CREATED, Json(JwtProviderView::from(&provider))))
}

/// Shows one JWT provider.
#[utoipa::path(get, path = "/jwt-providers/{name}", tag = "jwt-providers",
    params(("name" = String, Path)),
    responses((status = 200, body = JwtProviderView), (status = 404, body = super::ErrorBody)),
    security(("bearer" = [])))]
pub async fn show(
    admin: RegistryAdmin,
    Path(name): Path<String>,
) -> Result<Json<JwtProviderView>, ApiError> {
    let provider = admin.registry.get_jwt_provider(&name).await?;
    Ok(Json(JwtProviderView::from(&provider)))
}

/// Changes the given fields of a JWT provider.
#[utoipa::path(patch, path = "/jwt-providers/{name}", tag = "jwt-providers",
    request_body = JwtProviderInput, params(("name" = String, Path)),
    responses((status = 200, body = JwtProviderView), (status = 400, body = super::ErrorBody),
        (status = 404, body = super::ErrorBody)),
    security(("bearer" = [])))]
pub async fn update(
    admin: RegistryAdmin,
    Path(name): Path<String>,
    ApiJson(input): ApiJson<JwtProviderInput>,
) -> Result<Json<JwtProviderView>, ApiError> {
    let (new_name, changes) = input.into_changes()?;
    if new_name.is_some_and(|n| n != name) {
        return Err(Error::validation("a JWT provider's name cannot change").into());
    }
    let provider = admin.registry.update_jwt_provider(&name, changes).await?;
    Ok(Json(JwtProviderView::from(&provider)))
}

/// Deletes a JWT provider; its tokens stop being accepted at once.
#[utoipa::path(delete, path = "/jwt-providers/{name}", tag = "jwt-providers",
    params(("name" = String, Path)),
    responses((status = 204), (status = 404, body = super::ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete(
    admin: RegistryAdmin,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    admin.registry.delete_jwt_provider(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}
