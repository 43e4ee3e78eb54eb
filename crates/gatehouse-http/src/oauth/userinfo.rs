//! The UserInfo endpoint (OpenID Connect Core §5.3): the claims the token's scope releases about
//! its user. The access token comes in the `Authorization: Bearer` header (GET or POST) or as
//! the form body's `access_token` of a POST, never both.

use axum::Json;
use axum::extract::State;
use gatehouse_core::Error;
use gatehouse_core::token::user_claims;

use crate::error::ApiError;
use crate::extract::FormBearer;
use crate::state::AppState;

pub async fn userinfo(
    State(state): State<AppState>,
    FormBearer(token): FormBearer,
) -> Result<Json<serde_json::Map<String, serde_json::Value>>, ApiError> {
    if !token.scope.contains("openid") {
        return Err(Error::InsufficientScope("openid".into()).into());
    }
    let user_id = token
        .user_id
        .as_deref()
        .ok_or_else(|| Error::InvalidToken("the token acts for no user".into()))?;
    let user = state
        .tokens
        .user(user_id)
        .await?
        .filter(|u| u.can_authenticate())
        .ok_or_else(|| Error::InvalidToken("the token's user is no longer active".into()))?;
    Ok(Json(user_claims(&user, &token.scope)))
}
