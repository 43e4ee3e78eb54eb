//! `POST /oauth/token` (and `/oauth_token.do`): RFC 6749 §3.2, with DPoP proofs (RFC 9449 §5).

use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use gatehouse_core::Error;
use gatehouse_core::dpop::Target;
use gatehouse_core::grant::{GrantContext, TokenRequest};
use gatehouse_core::store::StoreError;

use super::{authenticate, no_store_json};
use crate::error::{DPOP_NONCE, OAuthError};
use crate::extract::{ClientAddress, DPOP, OAuthForm, dpop_proof};
use crate::state::AppState;

pub async fn token(
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
    OriginalUri(uri): OriginalUri,
    OAuthForm {
        params,
        resources,
        headers,
    }: OAuthForm,
) -> Result<Response, OAuthError> {
    let request = TokenRequest::new(params, resources);
    // The metric label is the grant the server knows, never the raw (unbounded) parameter.
    let grant_label = state
        .grants
        .grant_for(&request)
        .map(|g| g.grant_type().as_str())
        .unwrap_or(crate::metrics::UNKNOWN_GRANT);
    let result = exchange(&state, address, &headers, uri.path(), &request).await;
    let outcome = match &result {
        Ok(_) => "issued",
        Err(Error::InvalidClient(_)) => "invalid_client",
        Err(Error::InvalidGrant(_)) => "invalid_grant",
        Err(Error::InvalidScope(_)) => "invalid_scope",
        Err(Error::InvalidTarget(_)) => "invalid_target",
        Err(Error::InvalidRequest(_)) => "invalid_request",
        Err(Error::InvalidDpopProof(_)) => "invalid_dpop_proof",
        Err(Error::UseDpopNonce { .. }) => "use_dpop_nonce",
        Err(Error::UnauthorizedClient(_)) => "unauthorized_client",
        Err(Error::UnsupportedGrantType(_)) => "unsupported_grant_type",
        Err(Error::Throttled { .. }) => "throttled",
        Err(Error::AuthorizationRefused { error, .. }) => error,
        Err(Error::Store(StoreError::Unavailable(_))) => "temporarily_unavailable",
        Err(_) => "server_error",
    };
    state.metrics.token_request(grant_label, outcome);
    let mut response = no_store_json(StatusCode::OK, &result?)?;
    // RFC 9449 §8.2: a client that proves its key with nonces gets the one to use next.
    let dpop = &state.services.dpop;
    if dpop.requires_nonce()
        && headers.contains_key(DPOP)
        && let Ok(nonce) = HeaderValue::from_str(&dpop.nonce())
    {
        response.headers_mut().insert(DPOP_NONCE, nonce);
    }
    Ok(response)
}

async fn exchange(
    state: &AppState,
    address: Option<std::net::IpAddr>,
    headers: &HeaderMap,
    path: &str,
    request: &TokenRequest,
) -> Result<gatehouse_core::token::TokenResponse, Error> {
    let client = authenticate(state, headers, request.params()).await?;
    // Only a request that carries a proof pays for checking it (one store round trip).
    let proof = match dpop_proof(headers)? {
        Some(proof) => {
            let target = Target {
                method: "POST",
                path,
                access_token: None,
            };
            Some(state.services.dpop.verify(proof, &target).await?)
        }
        None => None,
    };
    let context = GrantContext {
        client: &client,
        store: state.services.store.as_ref(),
        tokens: &state.services.tokens,
        federation: &state.services.federation,
        throttle: &state.throttle,
        client_address: address,
        refresh_token_grace: state.settings.refresh_token_grace,
        dpop: proof.as_ref(),
    };
    state.grants.exchange(&context, request).await
}
