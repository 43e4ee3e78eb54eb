//! `/users/{user_name}/tokens` and `/apps/{client_id}/tokens`: what a user or an application
//! holds, and its revocation one at a time or all at once — the console's tokens pages over
//! JSON, through the same `held::Holdings`, so who may see and end what, and what a revocation
//! reaches, is decided there.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use gatehouse_core::Error;
use gatehouse_core::held::Holdings;

use super::RegistryAdmin;
use crate::error::ApiError;
use crate::state::AppState;
use crate::views::{HeldView, HoldingsView};

/// Whose tokens a route serves.
#[derive(Clone, Copy)]
enum Of {
    User,
    Application,
}

/// The holdings `name` names, refused unless the administrator may change the holder.
async fn holdings(
    of: Of,
    admin: &RegistryAdmin,
    state: &AppState,
    name: &str,
) -> Result<Holdings, Error> {
    let tokens = &state.services.tokens;
    match of {
        Of::User => Holdings::of_user(&admin.registry, tokens, name).await,
        Of::Application => Holdings::of_application(&admin.registry, tokens, name).await,
    }
}

/// Lists the stored tokens a user holds — opaque access tokens, the JWTs of their grants,
/// refresh tokens — and their login sessions, newest first, at most 500 of each kind. Needs
/// what changing the user needs.
#[utoipa::path(get, path = "/users/{user_name}/tokens", tag = "tokens",
    params(("user_name" = String, Path)),
    responses((status = 200, body = HoldingsView), (status = 401, body = super::ErrorBody),
        (status = 403, body = super::ErrorBody), (status = 404, body = super::ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_of_user(
    admin: RegistryAdmin,
    state: State<AppState>,
    name: Path<String>,
) -> Result<Json<HoldingsView>, ApiError> {
    list(Of::User, admin, state, name).await
}

/// Lists the stored access and refresh tokens issued to an application, for any user, newest
/// first, at most 500 of each kind. JWTs an application obtains for itself are stored nowhere
/// and not listed. Needs what changing the application needs.
#[utoipa::path(get, path = "/apps/{client_id}/tokens", tag = "tokens",
    params(("client_id" = String, Path)),
    responses((status = 200, body = HoldingsView), (status = 401, body = super::ErrorBody),
        (status = 403, body = super::ErrorBody), (status = 404, body = super::ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_of_application(
    admin: RegistryAdmin,
    state: State<AppState>,
    name: Path<String>,
) -> Result<Json<HoldingsView>, ApiError> {
    list(Of::Application, admin, state, name).await
}

async fn list(
    of: Of,
    admin: RegistryAdmin,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<HoldingsView>, ApiError> {
    let listing = holdings(of, &admin, &state, &name).await?.list().await?;
    Ok(Json(HoldingsView {
        tokens: listing.held.iter().map(HeldView::from).collect(),
        truncated: listing.truncated,
    }))
}

/// Ends everything the user holds, as a new password does: every session and token, JWTs
/// included (their credential epoch goes up).
#[utoipa::path(delete, path = "/users/{user_name}/tokens", tag = "tokens",
    params(("user_name" = String, Path)),
    responses((status = 204), (status = 401, body = super::ErrorBody),
        (status = 403, body = super::ErrorBody), (status = 404, body = super::ErrorBody)),
    security(("bearer" = [])))]
pub async fn revoke_all_of_user(
    admin: RegistryAdmin,
    state: State<AppState>,
    name: Path<String>,
) -> Result<StatusCode, ApiError> {
    revoke_all(Of::User, admin, state, name).await
}

/// Revokes every access and refresh token issued to the application, for every user.
#[utoipa::path(delete, path = "/apps/{client_id}/tokens", tag = "tokens",
    params(("client_id" = String, Path)),
    responses((status = 204), (status = 401, body = super::ErrorBody),
        (status = 403, body = super::ErrorBody), (status = 404, body = super::ErrorBody)),
    security(("bearer" = [])))]
pub async fn revoke_all_of_application(
    admin: RegistryAdmin,
    state: State<AppState>,
    name: Path<String>,
) -> Result<StatusCode, ApiError> {
    revoke_all(Of::Application, admin, state, name).await
}

async fn revoke_all(
    of: Of,
    admin: RegistryAdmin,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    holdings(of, &admin, &state, &name)
        .await?
        .revoke_all()
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Revokes one token or ends one session of the user, named by the `handle` the listing gave.
/// A refresh token takes its grant with it. Answers what was revoked; `404` for a handle that
/// names nothing of theirs in service.
#[utoipa::path(delete, path = "/users/{user_name}/tokens/{handle}", tag = "tokens",
    params(("user_name" = String, Path), ("handle" = String, Path)),
    responses((status = 200, body = HeldView), (status = 401, body = super::ErrorBody),
        (status = 403, body = super::ErrorBody), (status = 404, body = super::ErrorBody)),
    security(("bearer" = [])))]
pub async fn revoke_of_user(
    admin: RegistryAdmin,
    state: State<AppState>,
    names: Path<(String, String)>,
) -> Result<Json<HeldView>, ApiError> {
    revoke(Of::User, admin, state, names).await
}

/// Revokes one token issued to the application, named by the `handle` the listing gave. A
/// refresh token takes its grant with it. Answers what was revoked; `404` for a handle that
/// names nothing of the application's in service.
#[utoipa::path(delete, path = "/apps/{client_id}/tokens/{handle}", tag = "tokens",
    params(("client_id" = String, Path), ("handle" = String, Path)),
    responses((status = 200, body = HeldView), (status = 401, body = super::ErrorBody),
        (status = 403, body = super::ErrorBody), (status = 404, body = super::ErrorBody)),
    security(("bearer" = [])))]
pub async fn revoke_of_application(
    admin: RegistryAdmin,
    state: State<AppState>,
    names: Path<(String, String)>,
) -> Result<Json<HeldView>, ApiError> {
    revoke(Of::Application, admin, state, names).await
}

async fn revoke(
    of: Of,
    admin: RegistryAdmin,
    State(state): State<AppState>,
    Path((name, handle)): Path<(String, String)>,
) -> Result<Json<HeldView>, ApiError> {
    let held = holdings(of, &admin, &state, &name)
        .await?
        .revoke(&handle)
        .await?;
    Ok(Json(HeldView::from(&held)))
}
