//! `POST /oauth/revoke` (and `/oauth_revoke_token.do`): RFC 7009. A client revokes its own
//! tokens; an unknown token is answered like a revoked one (§2.2), so the endpoint reveals
//! nothing about tokens the caller does not hold.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use gatehouse_core::Error;

use super::{authenticate, no_store};
use crate::error::OAuthError;
use crate::extract::OAuthForm;
use crate::state::AppState;

pub async fn revoke(
    State(state): State<AppState>,
    OAuthForm {
        params, headers, ..
    }: OAuthForm,
) -> Result<Response, OAuthError> {
    let client = authenticate(&state, &headers, &params).await?;
    let token = params
        .get("token")
        .ok_or_else(|| Error::invalid_request("the token parameter is missing"))?;
    state.services.tokens.revoke(token, &client).await?;
    Ok(no_store(StatusCode::OK))
}
