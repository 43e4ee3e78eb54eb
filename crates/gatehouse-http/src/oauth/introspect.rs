//! `POST /oauth/introspect`: RFC 7662. Only authenticated confidential clients may ask, and only
//! those entitled to learn about a token do (§4); for everyone else, and for an inactive,
//! unknown or revoked token, the answer is `{"active": false}` and nothing more (§2.2).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;

use super::{authenticate, no_store_json};
use crate::error::OAuthError;
use crate::extract::OAuthForm;
use crate::state::AppState;

pub async fn introspect(
    State(state): State<AppState>,
    OAuthForm {
        params, headers, ..
    }: OAuthForm,
) -> Result<Response, OAuthError> {
    let client = authenticate(&state, &headers, &params).await?;
    let token = params.get("token").map(String::as_str);
    let answer = state.services.tokens.introspect(&client, token).await?;
    no_store_json(StatusCode::OK, &answer)
}
