//! The UserInfo endpoint (OpenID Connect Core §5.3): the claims the token's scope releases about
//! its user. The access token comes in the `Authorization: Bearer` header (GET or POST) or as
//! the form body's `access_token` of a POST, never both.

use axum::Json;
use axum::extract::State;

use crate::error::ApiError;
use crate::extract::FormBearer;
use crate::state::AppState;

pub async fn userinfo(
    State(state): State<AppState>,
    FormBearer(token): FormBearer,
) -> Result<Json<serde_json::Map<String, serde_json::Value>>, ApiError> {
    Ok(Json(state.services.tokens.userinfo(&token).await?))
}
