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

use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use gatehouse_core::Error;
use gatehouse_core::client::Client;
use gatehouse_core::client_auth;

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

/// RFC 6749 §5.1: responses carrying tokens or token state must not be cached.
fn no_store(response: impl IntoResponse) -> Response {
    let mut response = response.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}
