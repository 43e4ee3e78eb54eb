//! `/outbound/…`: the external OAuth providers, OAuth profiles and connection aliases. Saving
//! creates a record or replaces the one with the same name.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use gatehouse_core::outbound::{AliasSpec, ProfileSpec, ProviderSpec};

use gatehouse_core::user::Permission;

use super::RegistryAdmin;
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::state::AppState;
use crate::views::{AliasView, ProfileView, ProviderView};

fn registry(state: &AppState) -> &gatehouse_core::outbound::OutboundRegistry {
    state.services.outbound.registry()
}

/// The outbound registry acting for the administrator, as the audit trail names them.
fn changing(state: &AppState, admin: &RegistryAdmin) -> gatehouse_core::outbound::OutboundRegistry {
    state
        .services
        .outbound
        .registry()
        .as_actor(admin.registry.actor().clone())
}

/// Lists the OAuth providers.
#[utoipa::path(get, path = "/outbound/providers", tag = "outbound",
    responses((status = 200, body = [ProviderView])), security(("bearer" = [])))]
pub async fn list_providers(
    _: RegistryAdmin,
    State(state): State<AppState>,
) -> Result<Json<Vec<ProviderView>>, ApiError> {
    let providers = registry(&state).list_providers().await?;
    Ok(Json(providers.iter().map(ProviderView::from).collect()))
}

/// Creates or replaces a provider. Credentials left out keep their stored value; none is ever
/// returned.
#[utoipa::path(post, path = "/outbound/providers", tag = "outbound", request_body = Object,
    responses((status = 200, body = ProviderView), (status = 400, body = super::ErrorBody)),
    security(("bearer" = [])))]
pub async fn save_provider(
    admin: RegistryAdmin,
    State(state): State<AppState>,
    ApiJson(spec): ApiJson<ProviderSpec>,
) -> Result<Json<ProviderView>, ApiError> {
    admin.registry.require(Permission::ManageOutbound)?;
    let provider = changing(&state, &admin).save_provider(spec).await?;
    Ok(Json(ProviderView::from(&provider)))
}

#[utoipa::path(get, path = "/outbound/providers/{name}", tag = "outbound",
    params(("name" = String, Path)),
    responses((status = 200, body = ProviderView), (status = 404, body = super::ErrorBody)),
    security(("bearer" = [])))]
pub async fn show_provider(
    _: RegistryAdmin,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<ProviderView>, ApiError> {
    let provider = registry(&state).get_provider(&name).await?;
    Ok(Json(ProviderView::from(&provider)))
}

/// Deletes a provider no profile uses.
#[utoipa::path(delete, path = "/outbound/providers/{name}", tag = "outbound",
    params(("name" = String, Path)),
    responses((status = 204), (status = 404, body = super::ErrorBody),
        (status = 409, body = super::ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete_provider(
    admin: RegistryAdmin,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    admin.registry.require(Permission::ManageOutbound)?;
    changing(&state, &admin).delete_provider(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Lists the OAuth profiles.
#[utoipa::path(get, path = "/outbound/profiles", tag = "outbound",
    responses((status = 200, body = [ProfileView])), security(("bearer" = [])))]
pub async fn list_profiles(
    _: RegistryAdmin,
    State(state): State<AppState>,
) -> Result<Json<Vec<ProfileView>>, ApiError> {
    let profiles = registry(&state).list_profiles().await?;
    Ok(Json(profiles.iter().map(ProfileView::from).collect()))
}

/// Creates or replaces a profile; tokens obtained for the old one are dropped.
#[utoipa::path(post, path = "/outbound/profiles", tag = "outbound", request_body = Object,
    responses((status = 200, body = ProfileView), (status = 400, body = super::ErrorBody)),
    security(("bearer" = [])))]
pub async fn save_profile(
    admin: RegistryAdmin,
    State(state): State<AppState>,
    ApiJson(spec): ApiJson<ProfileSpec>,
) -> Result<Json<ProfileView>, ApiError> {
    admin.registry.require(Permission::ManageOutbound)?;
    let profile = changing(&state, &admin).save_profile(spec).await?;
    Ok(Json(ProfileView::from(&profile)))
}

/// Deletes a profile no alias uses, and its tokens.
#[utoipa::path(delete, path = "/outbound/profiles/{name}", tag = "outbound",
    params(("name" = String, Path)),
    responses((status = 204), (status = 404, body = super::ErrorBody),
        (status = 409, body = super::ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete_profile(
    admin: RegistryAdmin,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    admin.registry.require(Permission::ManageOutbound)?;
    changing(&state, &admin).delete_profile(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Lists the connection aliases.
#[utoipa::path(get, path = "/outbound/aliases", tag = "outbound",
    responses((status = 200, body = [AliasView])), security(("bearer" = [])))]
pub async fn list_aliases(
    _: RegistryAdmin,
    State(state): State<AppState>,
) -> Result<Json<Vec<AliasView>>, ApiError> {
    let aliases = registry(&state).list_aliases().await?;
    Ok(Json(aliases.iter().map(AliasView::from).collect()))
}

/// Creates or replaces a connection alias.
#[utoipa::path(post, path = "/outbound/aliases", tag = "outbound", request_body = Object,
    responses((status = 200, body = AliasView), (status = 400, body = super::ErrorBody)),
    security(("bearer" = [])))]
pub async fn save_alias(
    admin: RegistryAdmin,
    State(state): State<AppState>,
    ApiJson(spec): ApiJson<AliasSpec>,
) -> Result<Json<AliasView>, ApiError> {
    admin.registry.require(Permission::ManageOutbound)?;
    let alias = changing(&state, &admin).save_alias(spec).await?;
    Ok(Json(AliasView::from(&alias)))
}

#[utoipa::path(delete, path = "/outbound/aliases/{name}", tag = "outbound",
    params(("name" = String, Path)),
    responses((status = 204), (status = 404, body = super::ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete_alias(
    admin: RegistryAdmin,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    admin.registry.require(Permission::ManageOutbound)?;
    changing(&state, &admin).delete_alias(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}
