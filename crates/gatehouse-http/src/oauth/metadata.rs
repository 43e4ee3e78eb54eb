//! The documents that describe the server: the JWKS and the discovery metadata (RFC 8414, and
//! the same content at the OpenID Connect discovery path).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::IntoResponse;
use gatehouse_core::Error;
use gatehouse_core::dpop;
use gatehouse_core::federation::jose::JwsAlgorithm;
use gatehouse_core::resource::ResourceMetadata;
use serde_json::json;

use crate::error::ApiError;
use crate::state::AppState;

/// The published signing keys, cacheable for the announced lifetime. Key rotation waits that
/// long before a new key signs, so a relying party's cached copy always knows the signing key.
pub async fn jwks(State(state): State<AppState>) -> impl IntoResponse {
    let now = state.services.tokens.clock().now();
    (
        [(
            header::CACHE_CONTROL,
            format!("public, max-age={}", state.settings.jwks_max_age),
        )],
        Json(state.services.tokens.key_ring().jwks(now)),
    )
}

/// RFC 8414 §2: what this server supports, and nothing it does not.
pub async fn discovery(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let scopes: Vec<String> = (state.services.registry.catalog().await?.scopes.iter())
        .map(|s| s.name.clone())
        .collect();
    let issuer = state.services.tokens.issuer();
    let confidential_methods = [
        "client_secret_basic",
        "client_secret_post",
        "private_key_jwt",
    ];
    // Public clients present only their client_id (`none`) at the token and revocation
    // endpoints; introspection is for confidential clients.
    let all_methods = [
        "client_secret_basic",
        "client_secret_post",
        "private_key_jwt",
        "none",
    ];
    let assertion_algs: Vec<&str> = JwsAlgorithm::ALL.iter().map(|a| a.as_str()).collect();
    let dpop_algs: Vec<&str> = dpop::ALGORITHMS.iter().map(|a| a.as_str()).collect();
    let signing_algs: Vec<&str> = {
        let ring = state.services.tokens.key_ring();
        let mut algs: Vec<&str> = ring
            .published(state.services.tokens.clock().now())
            .iter()
            .map(|k| k.alg.as_str())
            .collect();
        algs.sort_unstable();
        algs.dedup();
        algs
    };
    let mut grant_types = state.grants.supported();
    grant_types.push("implicit");
    Ok(Json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/oauth/authorize"),
        "token_endpoint": format!("{issuer}/oauth/token"),
        "userinfo_endpoint": format!("{issuer}/oauth/userinfo"),
        "end_session_endpoint": format!("{issuer}/oauth/logout"),
        "backchannel_logout_supported": true,
        "backchannel_logout_session_supported": true,
        "jwks_uri": format!("{issuer}/oauth/jwks"),
        "pushed_authorization_request_endpoint": format!("{issuer}/oauth/par"),
        "require_pushed_authorization_requests":
            state.settings.require_pushed_authorization_requests,
        "device_authorization_endpoint": format!("{issuer}/oauth/device_authorization"),
        "introspection_endpoint": format!("{issuer}/oauth/introspect"),
        "revocation_endpoint": format!("{issuer}/oauth/revoke"),
        "grant_types_supported": grant_types,
        "response_types_supported": [
            "code", "token", "id_token", "code id_token", "code token", "id_token token",
            "code id_token token"
        ],
        "response_modes_supported": ["query", "fragment", "form_post"],
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": true,
        "prompt_values_supported": ["none", "login", "consent"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256", "RS256"],
        "scopes_supported": scopes,
        "claims_supported": [
            "sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "at_hash", "c_hash", "azp",
            "sid",
            "name", "given_name", "family_name", "preferred_username", "updated_at", "email",
            "email_verified"
        ],
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "token_endpoint_auth_methods_supported": all_methods,
        "token_endpoint_auth_signing_alg_values_supported": assertion_algs,
        "introspection_endpoint_auth_methods_supported": confidential_methods,
        "introspection_endpoint_auth_signing_alg_values_supported": assertion_algs,
        "revocation_endpoint_auth_signing_alg_values_supported": assertion_algs,
        "revocation_endpoint_auth_methods_supported": all_methods,
        "access_token_signing_alg_values_supported": signing_algs,
        "dpop_signing_alg_values_supported": dpop_algs,
    })))
}

/// RFC 9728 §3: the metadata of Gatehouse's own APIs.
pub async fn own_resource(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    resource(&state, "").await
}

/// RFC 9728 §3.1: the metadata of the gateway route whose prefix follows the well-known path.
pub async fn route_resource(
    State(state): State<AppState>,
    Path(prefix): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    resource(&state, &format!("/{prefix}")).await
}

async fn resource(state: &AppState, suffix: &str) -> Result<Json<ResourceMetadata>, ApiError> {
    let catalog = state.services.registry.catalog().await?;
    let metadata = catalog
        .resource_metadata(state.services.tokens.issuer(), suffix)
        .ok_or_else(|| Error::NotFound("no protected resource here".into()))?;
    Ok(Json(metadata))
}
