//! `POST /oauth/par`: pushed authorization requests (RFC 9126 §2).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use gatehouse_core::pushed;

use super::{authenticate, no_store};
use crate::error::OAuthError;
use crate::extract::OAuthForm;
use crate::state::AppState;

/// Authenticates the client as the token endpoint does, then validates and stores the request;
/// `201` with the `request_uri` the browser is to carry.
pub async fn push(
    State(state): State<AppState>,
    headers: HeaderMap,
    OAuthForm(params, resources): OAuthForm,
) -> Result<Response, OAuthError> {
    let client = authenticate(&state, &headers, &params).await?;
    let pushed = pushed::push(
        state.services.store.as_ref(),
        &state.services.tokens,
        &client,
        params,
        resources,
        state.services.tokens.clock().now(),
    )
    .await?;
    Ok(no_store((StatusCode::CREATED, Json(pushed))))
}
