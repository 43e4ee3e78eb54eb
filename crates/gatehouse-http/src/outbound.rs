//! `/api/outbound/{alias}/{path…}`: calls an external API through a connection alias for a
//! user holding one of the alias' roles. The caller's credentials stay here; the alias'
//! token goes upstream, and the upstream's answer streams back as it arrives.

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::Response;
use gatehouse_core::Error;
use gatehouse_core::path::CanonicalPath;
use gatehouse_remote::outbound::UpstreamRequest;

use crate::error::ProxyError;
use crate::extract::{Authorized, RequestPath};
use crate::state::AppState;

pub async fn proxy(
    State(state): State<AppState>,
    RequestPath(path): RequestPath,
    Authorized(caller): Authorized,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ProxyError> {
    // The route is `/api/outbound/{alias}/{*path}`: what was authorized is what is sent, the
    // canonical segments after the alias, encoded by Gatehouse.
    let [_, _, alias, rest @ ..] = path.segments() else {
        return Err(Error::NotFound("no such endpoint".into()).into());
    };
    let catalog = state.services.registry.catalog().await?;
    let resolved = state
        .services
        .outbound
        .registry()
        .resolve_alias(&catalog, alias)
        .await?;
    let user = match &caller.user_id {
        Some(id) => state.services.tokens.user(id).await?,
        None => None,
    };
    resolved.alias.admits(user.as_deref())?;
    let path = CanonicalPath::encode(rest);
    let path_and_query = match uri.query() {
        Some(query) => format!("{path}?{query}"),
        None => path,
    };
    let header_text = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
            .map(str::to_owned)
    };
    let request = UpstreamRequest {
        method: method.as_str().to_owned(),
        path_and_query,
        content_type: header_text(header::CONTENT_TYPE),
        accept: header_text(header::ACCEPT),
        body,
    };
    let user_id = user.as_ref().map(|u| u.id.as_str());
    let upstream = state
        .services
        .outbound
        .call(&resolved, user_id, &request)
        .await?;
    let mut response = Response::builder()
        .status(StatusCode::from_u16(upstream.status).unwrap_or(StatusCode::BAD_GATEWAY));
    if let Some(content_type) = &upstream.content_type {
        response = response.header(header::CONTENT_TYPE, content_type);
    }
    response
        .header(header::CACHE_CONTROL, "no-store")
        .body(Body::from_stream(upstream.into_stream()))
        .map_err(|e| Error::Internal(format!("relaying the answer: {e}")).into())
}
