//! `/keys`: the signing keys, and their retirement after a compromise.

use axum::Json;
use axum::extract::{Path, State};
use gatehouse_core::user::Permission;

use super::RegistryAdmin;
use crate::error::ApiError;
use crate::state::AppState;
use crate::views::{KeyView, RetiredKeyView};

/// Lists the signing keys and where each stands in its rotation.
#[utoipa::path(get, path = "/keys", tag = "keys",
    responses((status = 200, body = [KeyView]), (status = 401, body = super::ErrorBody),
        (status = 403, body = super::ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(_: RegistryAdmin, State(state): State<AppState>) -> Json<Vec<KeyView>> {
    let now = state.services.tokens.clock().now();
    Json(KeyView::list(&state.services.tokens.key_ring(), now))
}

/// Takes a key out of service at once, on every instance: it is no longer published and the
/// tokens it signed are refused. A key that was signing is replaced by a new key of its
/// algorithm, which signs at once. Needs `admin` or `oauth_admin`.
#[utoipa::path(post, path = "/keys/{kid}/retire", tag = "keys",
    params(("kid" = String, Path)),
    responses((status = 200, body = RetiredKeyView), (status = 401, body = super::ErrorBody),
        (status = 403, body = super::ErrorBody), (status = 404, body = super::ErrorBody)),
    security(("bearer" = [])))]
pub async fn retire(
    admin: RegistryAdmin,
    State(state): State<AppState>,
    Path(kid): Path<String>,
) -> Result<Json<RetiredKeyView>, ApiError> {
    admin.registry.require(Permission::ManageSigningKeys)?;
    let replacement = state
        .services
        .tokens
        .retire_key(&kid, admin.registry.actor())
        .await?;
    Ok(Json(RetiredKeyView {
        retired: kid,
        replacement,
    }))
}
