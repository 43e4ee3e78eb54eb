//! The HTTP surface of Gatehouse: the route table, the extractors that turn requests into the
//! domain's inputs, thin handlers, and the one place where domain errors become HTTP responses.
//!
//! Invariant: handlers hold no OAuth rules; they extract, call `gatehouse-core`, and serialise.
//! Every error response is built in [`error`], nowhere else.

mod admin;
mod console;
pub mod error;
mod extract;
mod gateway;
pub mod metrics;
mod oauth;
mod ops;
mod outbound;
mod outbound_pages;
mod pages;
mod rate_limit;
mod state;
mod table;
pub mod views;

use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{any, get, post};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::TimeoutLayer;

use crate::extract::ClientAddress;

pub use admin::openapi_document;
pub use extract::{MAX_BODY_BYTES, MAX_FORM_BYTES};
pub use ops::write_log_line;
pub use rate_limit::{AddressLimiter, RateLimit};
pub use state::{AppParts, AppState, HttpSettings, Services};

/// The whole route table: standard paths and their ServiceNow-style aliases side by side.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route(
            "/oauth/authorize",
            get(oauth::authorize::authorize_get).post(oauth::authorize::authorize_post),
        )
        .route(
            "/oauth_auth.do",
            get(oauth::authorize::authorize_get).post(oauth::authorize::authorize_post),
        )
        .route("/oauth/authorize/consent", post(oauth::authorize::consent))
        .route(
            "/oauth/userinfo",
            get(oauth::userinfo::userinfo).post(oauth::userinfo::userinfo),
        )
        .route(
            "/oauth/logout",
            get(oauth::session_pages::logout_get).post(oauth::session_pages::logout_post),
        )
        .route("/account", get(oauth::session_pages::account))
        .route("/outbound", get(outbound_pages::outbound_page))
        .route("/outbound/authorize", post(outbound_pages::authorize))
        .route("/oauth_redirect.do", get(outbound_pages::callback))
        .route("/account/withdraw", post(oauth::session_pages::withdraw))
        .route("/assets/gatehouse.css", get(oauth::authorize::stylesheet))
        .route("/oauth/jwks", get(oauth::metadata::jwks))
        .route(
            "/.well-known/oauth-authorization-server",
            get(oauth::metadata::discovery),
        )
        .route(
            "/.well-known/openid-configuration",
            get(oauth::metadata::discovery),
        )
        .route(
            "/.well-known/oauth-protected-resource",
            get(oauth::metadata::own_resource),
        )
        .route(
            "/.well-known/oauth-protected-resource/{*prefix}",
            get(oauth::metadata::route_resource),
        )
        .nest("/api/admin/v1", admin::routes())
        .merge(console::routes())
        .route(
            "/api/now/table/{table}",
            get(table::list).post(table::create),
        )
        .route(
            "/api/now/table/{table}/{sys_id}",
            get(table::show)
                .put(table::update)
                .patch(table::update)
                .delete(table::delete),
        )
        .route("/api/outbound/{alias}/{*path}", any(outbound::proxy))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        // Every route above, not the gateway's fallback, which streams bodies to upstreams.
        .route_layer(axum::middleware::from_fn(extract::limit_body))
        .merge(credential_routes(state.clone()))
        .fallback(gateway::dispatch)
        // One stack in one `layer` call: the router boxes each layer it is given, and every box
        // is cloned — allocated anew — for every request, once for each box around it.
        // `around_request` is outermost, so that its log context and metric cover a panic's 500
        // and a timeout's 408 too; being outside catch-panic, it must never panic itself.
        .layer(
            ServiceBuilder::new()
                .layer(axum::middleware::from_fn_with_state(
                    state.clone(),
                    around_request,
                ))
                .layer(CatchPanicLayer::custom(error::panic_response))
                .layer(TimeoutLayer::with_status_code(
                    axum::http::StatusCode::REQUEST_TIMEOUT,
                    Duration::from_secs(30),
                )),
        )
        .with_state(state)
}

/// What every request goes through, in one layer because each `from_fn` layer costs every
/// request a boxed future and a clone of the route behind it: what its log lines say of it, the
/// latency metric, the client address its audit events carry (`audit::within_request`, however
/// deep in the domain they are recorded), and the resource metadata its bearer challenge names.
async fn around_request(
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
    mut request: Request,
    next: Next,
) -> Response {
    mark_credentials_sensitive(request.headers_mut());
    let timer = metrics::RequestTimer::start(&request);
    // A `Uri` shares its bytes when cloned.
    let uri = request.uri().clone();
    let serving = ops::Serving::of(&request);
    serving
        .scope(async move {
            let response = gatehouse_core::audit::within_request(address, next.run(request)).await;
            let mut response = error::name_resource_metadata(&state, uri.path(), response).await;
            mark_credentials_sensitive(response.headers_mut());
            timer.finish(&state.metrics, response.status());
            response
        })
        .await
}

/// Marks the headers that carry credentials, so that a `Debug` of them shows no value. In one
/// pass over the headers: looking each name up through the map's entry API, as a layer would,
/// costs every request more than the rest of this function.
fn mark_credentials_sensitive(headers: &mut header::HeaderMap) {
    for (name, value) in headers.iter_mut() {
        if name == header::AUTHORIZATION || name == header::COOKIE || name == header::SET_COOKIE {
            value.set_sensitive(true);
        }
    }
}

/// The endpoints that check passwords and client secrets. Each client address may call them at
/// the configured rate, checked before the body is read.
fn credential_routes(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/oauth/token", post(oauth::token::token))
        .route("/oauth_token.do", post(oauth::token::token))
        .route("/oauth/par", post(oauth::pushed::push))
        .route("/oauth/device_authorization", post(oauth::device::start))
        .route(
            "/device",
            get(oauth::device::page_get).post(oauth::device::answer),
        )
        .route("/oauth/introspect", post(oauth::introspect::introspect))
        .route("/oauth/revoke", post(oauth::revoke::revoke))
        .route("/oauth_revoke_token.do", post(oauth::revoke::revoke))
        .route("/oauth/authorize/login", post(oauth::authorize::login))
        .route_layer(axum::middleware::from_fn_with_state(
            state,
            rate_limit::limit,
        ))
}

#[cfg(test)]
mod tests {
    use axum::http::{HeaderMap, HeaderValue, header};

    #[test]
    fn every_value_of_a_credential_header_is_marked_sensitive_and_no_other() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic YTpi"),
        );
        headers.append(header::COOKIE, HeaderValue::from_static("a=1"));
        headers.append(header::COOKIE, HeaderValue::from_static("b=2"));
        headers.insert(header::SET_COOKIE, HeaderValue::from_static("c=3"));
        headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        super::mark_credentials_sensitive(&mut headers);
        for (name, value) in &headers {
            assert_eq!(value.is_sensitive(), name != header::ACCEPT, "{name}");
        }
        let shown = format!("{headers:?}");
        assert!(!shown.contains("YTpi") && !shown.contains("a=1") && !shown.contains("b=2"));
        assert!(shown.contains("application/json"));
    }
}
