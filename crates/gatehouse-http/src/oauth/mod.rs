//! The OAuth endpoints: token, introspection, revocation, and the metadata that describes them.

pub mod authorize;
pub mod device;
pub mod introspect;
pub mod metadata;
pub mod pushed;
pub mod revoke;
pub mod session_pages;
pub mod token;
pub mod userinfo;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use gatehouse_core::Error;
use gatehouse_core::client::Client;
use gatehouse_core::client_auth;
use serde::Serialize;

use crate::error::OAuthError;
use crate::extract::presented_credentials;
use crate::state::AppState;

/// Authenticates the client of an OAuth request from its headers and form.
async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    params: &BTreeMap<String, String>,
) -> Result<Arc<Client>, Error> {
    let presented = presented_credentials(headers, params)?;
    client_auth::authenticate(
        &state.services.tokens,
        &state.services.federation,
        &state.client_throttle,
        &presented,
    )
    .await
}

/// A JSON answer carrying tokens or token state, which must not be cached. The buffer holds a
/// token response with a JWT in it: axum's `Json` starts at 128 bytes and grows, reallocating,
/// on every request.
fn no_store_json(status: StatusCode, value: &impl Serialize) -> Result<Response, OAuthError> {
    let mut body = Vec::with_capacity(1024);
    serde_json::to_writer(&mut body, value).map_err(|e| Error::Internal(e.to_string()))?;
    let content_type = [(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    )];
    Ok(no_store((status, content_type, body)))
}

/// RFC 6749 §5.1: responses carrying tokens or token state must not be cached.
fn no_store(response: impl IntoResponse) -> Response {
    let mut response = response.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}
