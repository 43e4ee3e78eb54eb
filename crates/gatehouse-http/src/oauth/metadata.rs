//! The documents that describe the server: the JWKS and the discovery metadata (RFC 8414, and
//! the same content at the OpenID Connect discovery path).

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde_json::json;

use crate::state::AppState;

/// The published signing keys, cacheable for the announced lifetime. Key rotation waits that
/// long before a new key signs, so a relying party's cached copy always knows the signing key.
pub async fn jwks(State(state): State<AppState>) -> impl IntoResponse {
    let now = state.tokens.clock().now();
    (
        [(
            header::CACHE_CONTROL,
            format!("public, max-age={}", state.settings.jwks_max_age),
        )],
        Json(state.tokens.key_ring().jwks(now)),
    )
}

/// RFC 8414 §2: what this server supports, and nothing it does not.
pub async fn discovery(State(state): State<AppState>) -> impl IntoResponse {
    let issuer = state.tokens.issuer();
    let auth_methods = ["client_secret_basic", "client_secret_post"];
    let signing_algs: Vec<&str> = {
        let ring = state.tokens.key_ring();
        let mut algs: Vec<&str> = ring
            .published(state.tokens.clock().now())
            .iter()
            .map(|k| k.alg.as_str())
            .collect();
        algs.sort_unstable();
        algs.dedup();
        algs
    };
    Json(json!({
        "issuer": issuer,
        "token_endpoint": format!("{issuer}/oauth/token"),
        "jwks_uri": format!("{issuer}/oauth/jwks"),
        "introspection_endpoint": format!("{issuer}/oauth/introspect"),
        "revocation_endpoint": format!("{issuer}/oauth/revoke"),
        "grant_types_supported": state.grants.supported(),
        "response_types_supported": [],
        "token_endpoint_auth_methods_supported": auth_methods,
        "introspection_endpoint_auth_methods_supported": auth_methods,
        "revocation_endpoint_auth_methods_supported": auth_methods,
        "access_token_signing_alg_values_supported": signing_algs,
    }))
}
