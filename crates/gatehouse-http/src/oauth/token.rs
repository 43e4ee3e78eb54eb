//! `POST /oauth/token` (and `/oauth_token.do`): RFC 6749 §3.2.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use gatehouse_core::Error;
use gatehouse_core::grant::{GrantContext, TokenRequest};

use super::{authenticate, no_store};
use crate::error::OAuthError;
use crate::extract::{ClientAddress, OAuthForm};
use crate::state::AppState;

pub async fn token(
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
    headers: HeaderMap,
    OAuthForm(params, resources): OAuthForm,
) -> Result<Response, OAuthError> {
    let request = TokenRequest::new(params, resources);
    // The metric label is the grant the server knows, never the raw (unbounded) parameter.
    let grant_label = state
        .grants
        .grant_for(&request)
        .map(|g| g.grant_type().as_str())
        .unwrap_or("unknown");
    let result = exchange(&state, address, &headers, &request).await;
    let outcome = match &result {
        Ok(_) => "issued",
        Err(Error::InvalidClient(_)) => "invalid_client",
        Err(Error::InvalidGrant(_)) => "invalid_grant",
        Err(Error::InvalidScope(_)) => "invalid_scope",
        Err(Error::InvalidTarget(_)) => "invalid_target",
        Err(Error::InvalidRequest(_)) => "invalid_request",
        Err(Error::UnauthorizedClient(_)) => "unauthorized_client",
        Err(Error::UnsupportedGrantType(_)) => "unsupported_grant_type",
        Err(Error::Throttled { .. }) => "throttled",
        Err(Error::AuthorizationRefused { error, .. }) => error,
        Err(_) => "server_error",
    };
    state.metrics.token_request(grant_label, outcome);
    Ok(no_store(Json(result?)))
}

async fn exchange(
    state: &AppState,
    address: Option<std::net::IpAddr>,
    headers: &HeaderMap,
    request: &TokenRequest,
) -> Result<gatehouse_core::token::TokenResponse, Error> {
    let client = authenticate(state, headers, request.params()).await?;
    let context = GrantContext {
        client: &client,
        store: state.services.store.as_ref(),
        tokens: &state.services.tokens,
        federation: &state.services.federation,
        throttle: &state.throttle,
        client_address: address,
        refresh_token_grace: state.settings.refresh_token_grace,
    };
    state.grants.exchange(&context, request).await
}
