//! `/outbound/providers`: the external OAuth providers. Saving creates a provider or replaces
//! the one with the same name. (`/outbound/profiles` and `/outbound/aliases` are entries,
//! served by `entries`.)

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use gatehouse_core::outbound::ProviderSpec;

use super::RegistryAdmin;
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::state::AppState;
use crate::views::ProviderView;

fn registry(state: &AppState) -> &gatehouse_core::outbound::OutboundRegistry {
    state.services.outbound.registry()
}

/// The outbound registry acting for the administrator, if they may change providers.
fn changing(
    state: &AppState,
    admin: &RegistryAdmin,
) -> Result<gatehouse_core::outbound::OutboundRegistry, ApiError> {
    Ok(registry(state).managed_by(&admin.registry)?)
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
    let provider = changing(&state, &admin)?.save_provider(spec).await?;
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
    changing(&state, &admin)?.delete_provider(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}
