//! The one place where errors become HTTP responses.
//!
//! Each surface answers errors as its RFC prescribes:
//! - the OAuth endpoints (token, introspection, revocation): RFC 6749 §5.2 JSON, `401` with a
//!   `WWW-Authenticate: Basic` challenge for `invalid_client`, `Cache-Control: no-store`;
//! - bearer-protected APIs: RFC 6750 §3 challenges (`invalid_token`, `insufficient_scope`), and
//!   RFC 9449 §7.1 `DPoP` challenges for what concerns DPoP (`invalid_dpop_proof`,
//!   `use_dpop_nonce` with a `DPoP-Nonce` header, `invalid_token` of a DPoP-bound token); at the
//!   token endpoint the same DPoP errors are RFC 6749 §5.2 answers (`400`);
//! - the outbound proxy: a provider or API that fails is a `502` (`504` when it was too slow)
//!   with `error: upstream_error` and a description naming the provider's own `error`;
//! - the browser's pages (login, consent, account, sign-out, outbound tokens): the error page,
//!   its status chosen here by what went wrong, never a redirect to an application that could
//!   not be trusted;
//! - `/readyz`: a `503` while the database does not answer;
//! - all: a database that cannot be reached for now (`StoreError::Unavailable`) is a `503` with
//!   `Retry-After` (RFC 9110 §15.6.4), logged here once as a warning: on the OAuth endpoints and
//!   the APIs with `error: temporarily_unavailable`, the code RFC 6749 §4.1.2.1 gives this very
//!   case, on the pages a page that says so; internal failures are logged here once and answered with a bare `server_error` (on
//!   the pages, a page that says only that something went wrong, or a bare `500` when the page
//!   itself cannot be rendered); too many attempts are a bare
//!   `429` with `Retry-After` (RFC 6585 §4), since no OAuth error code means "slow down"
//!   outside the device flow.

use std::any::Any;

use axum::Json;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use gatehouse_core::Error;
use gatehouse_core::error::description_text;
use gatehouse_core::store::StoreError;
use gatehouse_remote::fetch::FetchError;
use gatehouse_remote::outbound::OutboundError;
use serde_json::json;

use crate::state::AppState;

/// The seconds a `503` for an unavailable database asks clients to wait before retrying: long
/// enough that clients do not hammer a database coming back, short enough that a restart or
/// failover (seconds) costs a client one retry.
const UNAVAILABLE_RETRY_AFTER: u64 = 5;

/// The realm named in every challenge.
pub const REALM: &str = "gatehouse";

/// RFC 9449 §8.1: the header that carries the nonce a DPoP proof must use.
pub const DPOP_NONCE: HeaderName = HeaderName::from_static("dpop-nonce");

/// The proof algorithms a `DPoP` challenge names (RFC 9449 §7.1 `algs`).
fn dpop_algorithms() -> String {
    let names: Vec<&str> = gatehouse_core::dpop::ALGORITHMS
        .iter()
        .map(|a| a.as_str())
        .collect();
    names.join(" ")
}

/// An error raised by an OAuth endpoint (RFC 6749 §5.2, RFC 7009, RFC 7662).
#[derive(Debug)]
pub struct OAuthError(pub Error);

/// An error raised by a bearer-protected API (RFC 6750 §3) or the admin API.
#[derive(Debug)]
pub struct ApiError(pub Error);

impl<E: Into<Error>> From<E> for OAuthError {
    fn from(error: E) -> Self {
        OAuthError(error.into())
    }
}

impl<E: Into<Error>> From<E> for ApiError {
    fn from(error: E) -> Self {
        ApiError(error.into())
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        error_response(&self.0, Surface::OAuth)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        error_response(&self.0, Surface::Api)
    }
}

/// An error of the outbound proxy: the caller's (an [`ApiError`]) or the far side's.
#[derive(Debug)]
pub enum ProxyError {
    Api(ApiError),
    Upstream(OutboundError),
}

impl From<Error> for ProxyError {
    fn from(error: Error) -> Self {
        ProxyError::Api(ApiError(error))
    }
}

impl From<ApiError> for ProxyError {
    fn from(error: ApiError) -> Self {
        ProxyError::Api(error)
    }
}

impl From<OutboundError> for ProxyError {
    fn from(error: OutboundError) -> Self {
        match error {
            OutboundError::Domain(error) => ProxyError::Api(ApiError(error)),
            OutboundError::PathEscapes(_) => {
                ProxyError::Api(ApiError(Error::invalid_request(error.to_string())))
            }
            other => ProxyError::Upstream(other),
        }
    }
}

impl IntoResponse for ProxyError {
    fn into_response(self) -> Response {
        match self {
            ProxyError::Api(error) => error.into_response(),
            ProxyError::Upstream(error) => {
                let status = match &error {
                    OutboundError::Provider(FetchError::Timeout)
                    | OutboundError::Upstream(FetchError::Timeout) => StatusCode::GATEWAY_TIMEOUT,
                    _ => StatusCode::BAD_GATEWAY,
                };
                tracing::warn!(%error, "outbound call failed");
                let body = json!({"error": "upstream_error", "error_description": description_text(&error.to_string())});
                let mut response = (status, Json(body)).into_response();
                response
                    .headers_mut()
                    .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                response
            }
        }
    }
}

/// An error of a browser page, shown on the error page.
#[derive(Debug)]
pub enum PageError {
    /// `400`: the request cannot be served as it came; the page says why under `title`.
    BadRequest {
        title: &'static str,
        message: String,
    },
    /// `400`: a form lacks a field or repeats one.
    Incomplete,
    /// `403`: a form's anti-forgery token is missing or wrong, or the session it was bound to
    /// has ended.
    Unverified,
    /// `400`: a sealed form or request was altered, is not ours, or has expired.
    Expired,
    /// `400`: a sealed form's one submission was made already.
    AlreadySubmitted,
    /// `403`: the signed-in user may not do this; the page says why.
    Forbidden(String),
    /// `404`: the record a page is about does not exist.
    NotFound(String),
    /// `502`: another server failed; the page says what happened under `title`.
    BadGateway {
        title: &'static str,
        message: String,
    },
    /// `500`: our own failure, logged here; the page says nothing about it. A database that
    /// cannot be reached for now is a `503` page instead, with `Retry-After`.
    Internal(Error),
}

/// Domain errors read as the API reads them: storage and internal failures are ours, a
/// refusal is `403`, anything else is what was wrong with the request, in the domain's words.
impl From<Error> for PageError {
    fn from(error: Error) -> Self {
        match error {
            Error::Store(_) | Error::Internal(_) => PageError::Internal(error),
            Error::Forbidden(why) => PageError::Forbidden(why),
            Error::NotFound(what) => PageError::NotFound(format!("There is no {what}.")),
            other => PageError::BadRequest {
                title: "Invalid request",
                message: other.to_string(),
            },
        }
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        use StatusCode as S;
        let (status, title, message) = match &self {
            PageError::BadRequest { title, message } => (S::BAD_REQUEST, *title, message.as_str()),
            PageError::Incomplete => (S::BAD_REQUEST, "Invalid request", "The form is incomplete."),
            PageError::Unverified => (
                S::FORBIDDEN,
                "Request refused",
                "The form could not be verified (missing or wrong anti-forgery token). Go back, \
                 reload the page and try again.",
            ),
            PageError::Expired => (
                S::BAD_REQUEST,
                "This request has expired",
                "Start again from the application you came from.",
            ),
            PageError::AlreadySubmitted => (
                S::BAD_REQUEST,
                "This form was already submitted",
                "Each form can be sent once. Start again from the application you came from.",
            ),
            PageError::Forbidden(why) => (S::FORBIDDEN, "Not allowed", why.as_str()),
            PageError::NotFound(what) => (S::NOT_FOUND, "Not found", what.as_str()),
            PageError::BadGateway { title, message } => (S::BAD_GATEWAY, *title, message.as_str()),
            PageError::Internal(error) if unavailable(error) => {
                tracing::warn!(%error, "page failed: database unavailable");
                (
                    S::SERVICE_UNAVAILABLE,
                    "Temporarily unavailable",
                    "The service is temporarily unavailable. Please try again in a few moments.",
                )
            }
            PageError::Internal(error) => {
                tracing::error!(%error, "page failed");
                (
                    S::INTERNAL_SERVER_ERROR,
                    "Something went wrong",
                    "The server could not complete the request. Please try again later.",
                )
            }
        };
        let response = crate::pages::message(status, title, message);
        if status == S::SERVICE_UNAVAILABLE {
            ask_again_later(response)
        } else {
            response
        }
    }
}

/// Whether `error` is the database being unreachable for now, which a retry may get past.
fn unavailable(error: &Error) -> bool {
    matches!(error, Error::Store(StoreError::Unavailable(_)))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Surface {
    OAuth,
    Api,
}

/// The `error` code, status and description of a domain error.
fn classify(error: &Error, surface: Surface) -> (StatusCode, &'static str, Option<&str>) {
    use StatusCode as S;
    // RFC 9449 §5 answers a token request's proof like any other mistake in it; §7.1 answers
    // a resource request's with a challenge.
    let dpop_status = match surface {
        Surface::OAuth => S::BAD_REQUEST,
        Surface::Api => S::UNAUTHORIZED,
    };
    match error {
        Error::InvalidRequest(d) => (S::BAD_REQUEST, "invalid_request", Some(d)),
        Error::InvalidClient(d) => (S::UNAUTHORIZED, "invalid_client", Some(d)),
        Error::InvalidGrant(d) => (S::BAD_REQUEST, "invalid_grant", Some(d)),
        Error::UnauthorizedClient(d) => (S::BAD_REQUEST, "unauthorized_client", Some(d)),
        Error::UnsupportedGrantType(d) => (S::BAD_REQUEST, "unsupported_grant_type", Some(d)),
        Error::InvalidScope(d) => (S::BAD_REQUEST, "invalid_scope", Some(d)),
        Error::InvalidTarget(d) => (S::BAD_REQUEST, "invalid_target", Some(d)),
        Error::AuthorizationRefused { error, description } => {
            (S::BAD_REQUEST, *error, Some(description))
        }
        Error::MissingToken => (S::UNAUTHORIZED, "", None),
        Error::InvalidToken(d) | Error::InvalidDpopToken(d) => {
            (S::UNAUTHORIZED, "invalid_token", Some(d))
        }
        Error::InvalidDpopProof(d) => (dpop_status, "invalid_dpop_proof", Some(d)),
        Error::UseDpopNonce { .. } => (
            dpop_status,
            "use_dpop_nonce",
            Some("the DPoP proof must carry the nonce of the DPoP-Nonce header"),
        ),
        Error::InsufficientScope(_) => (
            S::FORBIDDEN,
            "insufficient_scope",
            Some("the access token lacks a required scope"),
        ),
        Error::Forbidden(d) => (S::FORBIDDEN, "access_denied", Some(d)),
        Error::NotFound(d) => (S::NOT_FOUND, "not_found", Some(d)),
        Error::Conflict(d) => (S::CONFLICT, "conflict", Some(d)),
        Error::Validation(d) => (S::BAD_REQUEST, "invalid_request", Some(d)),
        Error::UpstreamUnreachable(_) => (
            S::BAD_GATEWAY,
            "upstream_error",
            Some("the upstream service could not be reached"),
        ),
        Error::UpstreamTimeout => (
            S::GATEWAY_TIMEOUT,
            "upstream_error",
            Some("the upstream service did not answer in time"),
        ),
        Error::Throttled { .. } => (S::TOO_MANY_REQUESTS, "", None),
        Error::Store(StoreError::Unavailable(_)) => {
            (S::SERVICE_UNAVAILABLE, "temporarily_unavailable", None)
        }
        Error::Store(_) | Error::Internal(_) => (S::INTERNAL_SERVER_ERROR, "server_error", None),
    }
}

fn error_response(error: &Error, surface: Surface) -> Response {
    let (status, code, description) = classify(error, surface);
    if status == StatusCode::INTERNAL_SERVER_ERROR {
        tracing::error!(error = %error, "request failed");
    } else if unavailable(error) {
        tracing::warn!(error = %error, "request failed: database unavailable");
    } else if let Error::UpstreamUnreachable(_) = error {
        tracing::warn!(error = %error, "gateway request failed");
    }
    let mut response = if code.is_empty() {
        status.into_response()
    } else {
        let mut body = json!({ "error": code });
        if let Some(description) = description {
            // OAuth endpoints keep to RFC 6749's characters; the registry's own APIs may quote
            // the names an administrator gave, which JSON carries safely.
            body["error_description"] = match surface {
                Surface::OAuth => json!(description_text(description)),
                Surface::Api => json!(description),
            };
        }
        (status, Json(body)).into_response()
    };
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    let challenge = match (surface, error) {
        // RFC 6749 §5.2: a failed client authentication is answered with a challenge.
        (_, Error::InvalidClient(_)) => Some(format!("Basic realm=\"{REALM}\"")),
        (Surface::Api, Error::MissingToken) => Some(format!("Bearer realm=\"{REALM}\"")),
        (Surface::Api, Error::InvalidToken(d)) => Some(format!(
            "Bearer realm=\"{REALM}\", error=\"invalid_token\", error_description=\"{}\"",
            description_text(d)
        )),
        (Surface::Api, Error::InsufficientScope(scope)) => Some(format!(
            "Bearer realm=\"{REALM}\", error=\"insufficient_scope\", scope=\"{}\"",
            description_text(scope)
        )),
        (Surface::Api, Error::InvalidRequest(_)) => Some(format!(
            "Bearer realm=\"{REALM}\", error=\"invalid_request\""
        )),
        (
            Surface::Api,
            Error::InvalidDpopProof(_) | Error::InvalidDpopToken(_) | Error::UseDpopNonce { .. },
        ) => Some(format!(
            "DPoP realm=\"{REALM}\", algs=\"{}\", error=\"{code}\", error_description=\"{}\"",
            dpop_algorithms(),
            description_text(description.unwrap_or_default())
        )),
        _ => None,
    };
    if let Some(value) = challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
        headers.insert(header::WWW_AUTHENTICATE, value);
    }
    if let Error::UseDpopNonce { nonce } = error
        && let Ok(value) = HeaderValue::from_str(nonce)
    {
        headers.insert(DPOP_NONCE, value);
    }
    let retry_after = match error {
        Error::Throttled { retry_after } => Some((*retry_after).max(1)),
        _ if unavailable(error) => Some(UNAVAILABLE_RETRY_AFTER),
        _ => None,
    };
    if let Some(seconds) = retry_after {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

/// RFC 9728 §5.1: every bearer (or DPoP) challenge names the metadata of the resource the request was
/// for (a gateway route's, or Gatehouse's own), so a client that meets it learns where to get a
/// token and with which scopes. Only answers that carry a challenge pay for the lookup.
pub async fn name_resource_metadata(
    state: &AppState,
    path: &str,
    mut response: Response,
) -> Response {
    let bearer = response
        .headers()
        .get(header::WWW_AUTHENTICATE)
        .filter(|challenge| {
            let challenge = challenge.as_bytes();
            challenge.starts_with(b"Bearer") || challenge.starts_with(b"DPoP")
        })
        .cloned();
    let Some(challenge) = bearer else {
        return response;
    };
    let Ok(catalog) = state.services.registry.catalog().await else {
        return response;
    };
    let url = catalog.resource_metadata_url(state.services.tokens.issuer(), path);
    let mut named = challenge.as_bytes().to_vec();
    named.extend_from_slice(format!(", resource_metadata=\"{url}\"").as_bytes());
    if let Ok(value) = HeaderValue::from_bytes(&named) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

/// RFC 9110 §15.5.14: a request body over `limit` bytes. The connection is closed with the
/// answer, so the rest of the body is never read.
pub fn body_too_large(limit: usize) -> Response {
    let body = json!({
        "error": "invalid_request",
        "error_description": format!("the request body exceeds {limit} bytes"),
    });
    let mut response = (StatusCode::PAYLOAD_TOO_LARGE, Json(body)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// `/readyz` when the database does not answer: a `503` that load balancers read as "send
/// nothing here", with when to ask again, and the reason logged rather than shown (it can name
/// the database's host).
#[derive(Debug)]
pub struct NotReady(pub StoreError);

impl IntoResponse for NotReady {
    fn into_response(self) -> Response {
        tracing::warn!(error = %self.0, "database not ready");
        ask_again_later((StatusCode::SERVICE_UNAVAILABLE, "database unavailable").into_response())
    }
}

/// A `503` for a database out of reach says when to try again (RFC 9110 §10.2.3).
fn ask_again_later(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from(UNAVAILABLE_RETRY_AFTER),
    );
    response
}

/// A page whose template failed to render: a bare `500`, since there is no page left to show
/// the error on (the error page is a template too). Logged here, like every internal failure.
pub fn unrendered_page(error: &askama::Error) -> Response {
    tracing::error!(%error, "a page template failed to render");
    StatusCode::INTERNAL_SERVER_ERROR.into_response()
}

/// A panic in a handler becomes a bare 500: no message or stack trace reaches the client.
pub fn panic_response(_panic: Box<dyn Any + Send + 'static>) -> Response {
    tracing::error!("a request handler panicked");
    error_response(&Error::Internal("panic".into()), Surface::Api)
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    async fn shown(error: PageError) -> (StatusCode, String) {
        let response = error.into_response();
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn a_pages_internal_failure_shows_nothing_of_itself() {
        let store = gatehouse_core::store::StoreError::Backend(
            "relation \"sessions\" does not exist".into(),
        );
        for error in [Error::Store(store), Error::Internal("key material".into())] {
            let (status, body) = shown(error.into()).await;
            assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
            assert!(body.contains("Something went wrong"), "{body}");
            assert!(
                !body.contains("sessions") && !body.contains("key material"),
                "{body}"
            );
        }
    }

    #[tokio::test]
    async fn an_unavailable_database_is_a_503_to_retry_on_every_surface() {
        let down = || Error::Store(StoreError::Unavailable("pool timed out".into()));
        for response in [
            OAuthError(down()).into_response(),
            ApiError(down()).into_response(),
        ] {
            assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(response.headers()[header::RETRY_AFTER], "5");
            assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
            let body = response.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(&body[..], br#"{"error":"temporarily_unavailable"}"#);
        }
        let response = PageError::from(down()).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "5");
        let (_, body) = shown(down().into()).await;
        assert!(body.contains("temporarily unavailable"), "{body}");
        assert!(!body.contains("pool"), "{body}");
    }

    #[tokio::test]
    async fn a_pages_refusal_says_why() {
        let (status, body) = shown(Error::invalid_request("a parameter is repeated").into()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(body.contains("a parameter is repeated"), "{body}");
        let (status, body) = shown(Error::Forbidden("admins only".into()).into()).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(body.contains("admins only"), "{body}");
    }

    #[tokio::test]
    async fn an_unready_database_is_a_503_that_names_nothing_of_it() {
        let error = StoreError::Backend("connection to db.internal:5432 refused".into());
        let response = NotReady(error).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"database unavailable");
    }

    #[test]
    fn dpop_errors_are_json_at_the_token_endpoint_and_challenges_at_the_apis() {
        let nonce = || Error::UseDpopNonce {
            nonce: "n-1".into(),
        };
        let response = OAuthError(nonce()).into_response();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(response.headers()[&DPOP_NONCE], "n-1");
        assert!(!response.headers().contains_key(header::WWW_AUTHENTICATE));
        let response = ApiError(nonce()).into_response();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(response.headers()[&DPOP_NONCE], "n-1");
        let challenge = response.headers()[header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap();
        assert!(
            challenge.starts_with("DPoP realm=\"gatehouse\", algs=\"RS256 ")
                && challenge.contains("error=\"use_dpop_nonce\""),
            "{challenge}"
        );
        let response = ApiError(Error::InvalidDpopToken("bound".into())).into_response();
        let challenge = response.headers()[header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap();
        assert!(
            challenge.contains("error=\"invalid_token\", error_description=\"bound\""),
            "{challenge}"
        );
        let response = OAuthError(Error::InvalidDpopProof("replayed".into())).into_response();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn an_unrendered_page_is_a_bare_500() {
        let response = unrendered_page(&askama::Error::Fmt);
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
