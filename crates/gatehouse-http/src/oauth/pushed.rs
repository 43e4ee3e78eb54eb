//! `POST /oauth/par`: pushed authorization requests (RFC 9126 §2), which may bind the code to a
//! DPoP key by a proof (RFC 9449 §10.1).

use axum::extract::{OriginalUri, State};
use axum::http::StatusCode;
use axum::response::Response;
use gatehouse_core::dpop::Target;
use gatehouse_core::pushed;

use super::{authenticate, no_store_json};
use crate::error::OAuthError;
use crate::extract::{OAuthForm, dpop_proof};
use crate::state::AppState;

/// Authenticates the client as the token endpoint does, then validates and stores the request;
/// `201` with the `request_uri` the browser is to carry.
pub async fn push(
    State(state): State<AppState>,
    OriginalUri(uri): OriginalUri,
    OAuthForm {
        mut params,
        resources,
        headers,
    }: OAuthForm,
) -> Result<Response, OAuthError> {
    let client = authenticate(&state, &headers, &params).await?;
    if let Some(proof) = dpop_proof(&headers)? {
        let target = Target {
            method: "POST",
            path: uri.path(),
            access_token: None,
        };
        let proof = state.services.dpop.verify(proof, &target).await?;
        pushed::bind_to_key(&mut params, &proof)?;
    }
    let pushed = pushed::push(
        state.services.store.as_ref(),
        &state.services.tokens,
        &client,
        params,
        resources,
        state.services.tokens.clock().now(),
    )
    .await?;
    no_store_json(StatusCode::CREATED, &pushed)
}
