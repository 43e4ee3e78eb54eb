//! Operational endpoints: liveness, readiness, metrics, and the request span.

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::response::IntoResponse;

use crate::error::NotReady;
use crate::state::AppState;

pub async fn healthz() -> &'static str {
    "ok"
}

/// Ready when the database answers.
pub async fn readyz(State(state): State<AppState>) -> Result<&'static str, NotReady> {
    state.services.store.ping().await.map_err(NotReady)?;
    Ok("ready")
}

pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
}

/// The span of a request names its method and route template only: query strings and paths
/// can carry identifiers that do not belong in logs.
pub fn request_span(request: &Request) -> tracing::Span {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str);
    tracing::info_span!("request", method = %request.method(), route = %route)
}
