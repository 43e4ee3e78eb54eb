//! The gateway: a request under a route's prefix is authorized like every protected API, then
//! forwarded to the route's upstream with the caller's identity in `X-Gatehouse-*` headers — or,
//! on a route that exchanges tokens, with a token addressed to the upstream —, and the
//! upstream's answer streams back. Paths no route covers are 404.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use gatehouse_core::Error;
use gatehouse_core::access::Caller;
use gatehouse_remote::fetch::FetchError;
use gatehouse_remote::forward::{Forwarding, GatewayRequest, without_hop_by_hop};

use crate::error::ApiError;
use crate::extract::{Authorized, RequestPath, forwarded_for, peer_address};
use crate::state::AppState;

/// The router's fallback: forwards what a route covers, answers 404 for the rest.
pub async fn dispatch(State(state): State<AppState>, request: Request) -> Response {
    forward(state, request)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn forward(state: AppState, request: Request) -> Result<Response, ApiError> {
    let (mut parts, body) = request.into_parts();
    // The route, the rules and the upstream URL all read this one canonical path.
    let RequestPath(path) = RequestPath::from_request_parts(&mut parts, &state).await?;
    let catalog = state.services.registry.catalog().await?;
    let Some(route) = catalog.route_for(&path) else {
        return Err(Error::NotFound("no such endpoint".into()).into());
    };
    let audience = route
        .audience
        .as_deref()
        .unwrap_or(state.services.tokens.issuer());
    let identity = match &route.exchange {
        None => {
            let Authorized(caller) = Authorized::for_audience(&mut parts, &state, audience).await?;
            identity_headers(&caller)
        }
        Some(exchange) => {
            let (presented, caller) =
                Authorized::token_for_audience(&mut parts, &state, audience).await?;
            let token = state
                .route_exchanges
                .token_for(&state.services.tokens, exchange, &presented, &caller)
                .await?;
            let value = HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|e| Error::Internal(e.to_string()))?;
            vec![(header::AUTHORIZATION, value)]
        }
    };
    let url = route
        .upstream_url(&path, parts.uri.query())
        .ok_or_else(|| Error::Internal("a route was chosen for a path it does not cover".into()))?;
    let forwarding = forwarding(&parts, &state);
    let gateway_request = GatewayRequest {
        method: parts.method,
        url,
        headers: parts.headers,
        identity,
        forwarding,
        body: reqwest::Body::wrap_stream(body.into_data_stream()),
        timeout: Duration::from_secs(route.timeout_seconds),
    };
    let upstream = state
        .services
        .fetcher
        .forward(gateway_request)
        .await
        .map_err(|error| match error {
            FetchError::Timeout => Error::UpstreamTimeout,
            other => Error::UpstreamUnreachable(other.to_string()),
        })?;
    let mut response = Response::builder().status(upstream.status());
    if let Some(headers) = response.headers_mut() {
        *headers = without_hop_by_hop(upstream.headers().clone());
        // The upstream answers on Gatehouse's origin, the login page's: its cookies could
        // replace Gatehouse's, and a page or script of its could act as Gatehouse. Answers are
        // data: no sniffing, no scripts, no framing, whatever the upstream asked for.
        headers.remove(header::SET_COOKIE);
        headers.remove(header::CONTENT_SECURITY_POLICY_REPORT_ONLY);
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(UPSTREAM_CSP),
        );
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
    }
    response
        .body(Body::from_stream(upstream.bytes_stream()))
        .map_err(|e| Error::Internal(e.to_string()).into())
}

/// The policy of every relayed answer: as strict as CSP gets, so no upstream's own can be
/// stricter.
const UPSTREAM_CSP: &str = "sandbox; default-src 'none'; frame-ancestors 'none'";

/// The chain of addresses for `X-Forwarded-For` and `Forwarded`: extended when the peer is a
/// trusted proxy, started afresh otherwise.
fn forwarding(parts: &Parts, state: &AppState) -> Forwarding {
    let proxies = &state.settings.trusted_proxies;
    match peer_address(parts) {
        Some(peer) => Forwarding {
            chain: proxies.chain(peer, &forwarded_for(&parts.headers)),
            from_trusted_proxy: proxies.trusts(peer),
        },
        None => Forwarding {
            chain: Vec::new(),
            from_trusted_proxy: false,
        },
    }
}

/// Who is calling, for the upstream: the user's name (for a user's token), the client and the
/// token's scopes.
fn identity_headers(caller: &Caller) -> Vec<(HeaderName, HeaderValue)> {
    let mut headers = Vec::new();
    let mut add = |name: &'static str, value: &str| {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.push((HeaderName::from_static(name), value));
        }
    };
    if let Some(user) = &caller.user_name {
        add("x-gatehouse-user", user);
    }
    add("x-gatehouse-client-id", &caller.client_id);
    add("x-gatehouse-scopes", &caller.scopes.to_string());
    headers
}
