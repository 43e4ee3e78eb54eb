//! Extractors: the request shapes the OAuth RFCs define, checked before any handler runs.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{FromRequest, FromRequestParts, OriginalUri, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use gatehouse_core::Error;
use gatehouse_core::access::Caller;
use gatehouse_core::client_auth::{AuthMethod, PresentedCredentials};
use gatehouse_core::dpop::{Scheme, Target};
use gatehouse_core::federation::jose::UnverifiedJwt;
use gatehouse_core::path::CanonicalPath;
use gatehouse_core::secret::Secret;
use gatehouse_core::token::AccessTokenInfo;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::de::DeserializeOwned;

use crate::error::{ApiError, OAuthError, PageError};
use crate::state::AppState;

/// RFC 9449 §4.1: the header carrying a DPoP proof. Named once: looking a header up by a
/// string parses the name on every request.
pub const DPOP: HeaderName = HeaderName::from_static("dpop");

/// The header a trusted proxy names the client's address in.
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The largest form body any endpoint reads: OAuth requests and the pages' forms are small.
pub const MAX_FORM_BYTES: usize = 64 * 1024;

/// An `application/x-www-form-urlencoded` body as OAuth requires it: the right content type, at
/// most [`MAX_FORM_BYTES`], no parameter twice (RFC 6749 §3.1, §3.2) except `resource`
/// (RFC 8707 §2), whose values come second; empty values dropped.
pub struct OAuthForm {
    pub params: BTreeMap<String, String>,
    pub resources: Vec<String>,
    /// The request's headers, which client authentication and DPoP read: moved out of the
    /// request, where axum's `HeaderMap` extractor would copy them.
    pub headers: HeaderMap,
}

impl<S: Send + Sync> FromRequest<S> for OAuthForm {
    type Rejection = Response;

    async fn from_request(request: Request, _state: &S) -> Result<Self, Response> {
        let (parts, body) = request.into_parts();
        if !is_form(&parts.headers) {
            return Err(OAuthError::from(Error::invalid_request(
                "the body must be application/x-www-form-urlencoded",
            ))
            .into_response());
        }
        let body = read_body(body, MAX_FORM_BYTES).await?;
        let (mut params, resources) = crate::pages::oauth_params(&body)
            .map_err(|error| OAuthError::from(error).into_response())?;
        params.retain(|_, value| !value.is_empty());
        Ok(OAuthForm {
            params,
            resources,
            headers: parts.headers,
        })
    }
}

/// A page's form whose anti-forgery token is bound to a cookie of the browser: an HMAC over
/// the form's purpose and the cookie's value, which a page on another site can neither read
/// nor forge.
pub trait CsrfChecked: DeserializeOwned {
    /// What the token is for, so that one form's token does not pass for another's.
    const PURPOSE: &'static str;
    /// The cookie the token is bound to: the browser's before a login, the session's after.
    const COOKIE: &'static str = crate::pages::SESSION_COOKIE;
}

/// A page's form, submitted by the browser its token was made for: the `csrf` field must be
/// the token of `T`'s purpose for this browser's cookie (`403` otherwise), and the rest of the
/// form must read as `T` (`400` otherwise). The token is checked before the form is read.
pub struct CsrfForm<T> {
    pub form: T,
    /// The value of the cookie the token is bound to.
    pub cookie: String,
}

impl<T: CsrfChecked> CsrfForm<T> {
    /// The token a page puts in the form for the browser with this cookie value.
    pub fn token(state: &AppState, cookie: &str) -> String {
        state.services.sessions.csrf_token(T::PURPOSE, cookie)
    }

    /// Whether `token` is the form's token for the browser with this cookie value.
    pub fn check(state: &AppState, cookie: &str, token: &str) -> Result<(), PageError> {
        if state
            .services
            .sessions
            .csrf_valid(T::PURPOSE, cookie, token)
        {
            Ok(())
        } else {
            Err(PageError::Unverified)
        }
    }
}

impl<T: CsrfChecked> FromRequest<AppState> for CsrfForm<T> {
    type Rejection = PageError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, PageError> {
        let cookie = crate::pages::cookie(state, request.headers(), T::COOKIE)
            .ok_or(PageError::Unverified)?
            .to_owned();
        let body = Bytes::from_request(request, state)
            .await
            .map_err(|_| PageError::Incomplete)?;
        let params = crate::pages::unique_params(&body).map_err(|_| PageError::Incomplete)?;
        let token = params.get("csrf").ok_or(PageError::Unverified)?;
        Self::check(state, &cookie, token)?;
        let form = crate::pages::read_params(params).ok_or(PageError::Incomplete)?;
        Ok(CsrfForm { form, cookie })
    }
}

/// The largest body other than a form that Gatehouse's own endpoints read (JSON, the outbound
/// proxy); the gateway streams bodies to its upstreams instead and is not bound by it.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

/// Middleware for every route but the gateway: the body is read here, at most
/// [`MAX_FORM_BYTES`] for a form and [`MAX_BODY_BYTES`] for anything else, so one limit and one
/// `413` hold for every handler, and a body that declares (`Content-Length`) or streams (chunked)
/// more is refused at once, not when a handler would have finished waiting for it.
pub async fn limit_body(request: Request, next: Next) -> Response {
    // No body at all, as with most GETs: nothing to read or to limit.
    if request.body().is_end_stream() {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let limit = if is_form(&parts.headers) {
        MAX_FORM_BYTES
    } else {
        MAX_BODY_BYTES
    };
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return crate::error::body_too_large(limit);
    }
    match read_body(body, limit).await {
        Ok(bytes) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Err(response) => response,
    }
}

/// The whole body, or the answer to a body over `limit` (`413`) or broken off (`400`).
async fn read_body(body: Body, limit: usize) -> Result<Bytes, Response> {
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.is::<LengthLimitError>() => Err(crate::error::body_too_large(limit)),
        Err(_) => Err(OAuthError::from(Error::invalid_request(
            "the request body could not be read",
        ))
        .into_response()),
    }
}

/// What the client presented to authenticate (RFC 6749 §2.3.1): HTTP Basic with form-encoded
/// id and secret, or `client_id`/`client_secret` in the body — never both.
pub fn presented_credentials(
    headers: &HeaderMap,
    params: &BTreeMap<String, String>,
) -> Result<PresentedCredentials, Error> {
    let failed = || Error::InvalidClient("client authentication failed".into());
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"));
    let assertion = client_assertion(params)?;
    if let Some((_, encoded)) = basic {
        if params.contains_key("client_secret") || assertion.is_some() {
            return Err(Error::invalid_request(
                "use one client authentication method, not Basic and client_secret together",
            ));
        }
        let decoded = STANDARD.decode(encoded.trim()).map_err(|_| failed())?;
        let decoded = String::from_utf8(decoded).map_err(|_| failed())?;
        let (id, secret) = decoded.split_once(':').ok_or_else(failed)?;
        let client_id = form_decode(id);
        if params.get("client_id").is_some_and(|id| *id != client_id) {
            return Err(Error::invalid_request(
                "client_id in the body differs from the authenticated client",
            ));
        }
        return Ok(PresentedCredentials {
            client_id,
            secret: Some(Secret::new(form_decode(secret))),
            assertion: None,
            method: AuthMethod::SecretBasic,
        });
    }
    if let Some(assertion) = assertion {
        if params.contains_key("client_secret") {
            return Err(Error::invalid_request(
                "use one client authentication method, not client_assertion and client_secret",
            ));
        }
        // RFC 7523 §3: the assertion's `sub` is the client_id; `client_id` may be omitted. The
        // value read here only selects the client's keys: verification then requires both
        // `iss` and `sub` to equal it.
        let client_id = match params.get("client_id") {
            Some(id) => id.clone(),
            None => UnverifiedJwt::parse(&assertion)
                .ok()
                .and_then(|jwt| jwt.subject().map(str::to_owned))
                .ok_or_else(failed)?,
        };
        return Ok(PresentedCredentials {
            client_id,
            secret: None,
            assertion: Some(assertion),
            method: AuthMethod::PrivateKeyJwt,
        });
    }
    let client_id = params.get("client_id").ok_or_else(failed)?.clone();
    let secret = params.get("client_secret").map(|s| Secret::new(s.clone()));
    let method = match secret {
        Some(_) => AuthMethod::SecretPost,
        None => AuthMethod::None,
    };
    Ok(PresentedCredentials {
        client_id,
        secret,
        assertion: None,
        method,
    })
}

/// RFC 7521 §4.2: `client_assertion` with its type, which must be the JWT one.
fn client_assertion(params: &BTreeMap<String, String>) -> Result<Option<String>, Error> {
    const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
    match (
        params.get("client_assertion_type"),
        params.get("client_assertion"),
    ) {
        (None, None) => Ok(None),
        (Some(kind), Some(assertion)) if kind == JWT_BEARER => Ok(Some(assertion.clone())),
        (Some(_), Some(_)) => Err(Error::InvalidClient(
            "client_assertion_type must be urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
                .into(),
        )),
        _ => Err(Error::invalid_request(
            "client_assertion and client_assertion_type go together",
        )),
    }
}

/// Undoes the `application/x-www-form-urlencoded` encoding RFC 6749 §2.3.1 applies inside Basic.
fn form_decode(text: &str) -> String {
    // Most credentials hold nothing to decode.
    if !text.bytes().any(|b| b == b'%' || b == b'+') {
        return text.to_owned();
    }
    form_urlencoded::parse(format!("v={text}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// The request's `DPoP` header, if it has one (RFC 9449 §4.3: never more than one).
pub fn dpop_proof(headers: &HeaderMap) -> Result<Option<&str>, Error> {
    let mut values = headers.get_all(DPOP).iter();
    match (values.next(), values.next()) {
        (None, _) => Ok(None),
        (Some(_), Some(_)) => Err(Error::InvalidDpopProof(
            "the request has more than one DPoP header".into(),
        )),
        (Some(value), None) => value
            .to_str()
            .map(Some)
            .map_err(|_| Error::InvalidDpopProof("the DPoP header is not a JWT".into())),
    }
}

/// An access token as a request presents it, and under which scheme.
struct Presented<'a> {
    token: &'a str,
    scheme: Scheme,
}

/// The one access token a request presents (RFC 6750 §2): in the `Authorization` header, with
/// the `Bearer` or `DPoP` (RFC 9449 §7.1) scheme, or — only where the endpoint reads one, the
/// UserInfo endpoint's `POST` — as the form body's `access_token` (`body_token`), a bearer
/// token. A client "MUST NOT use more than one method" (§2), so a token presented two ways is
/// refused rather than one of them chosen, and so is a token in the query string (§2.3: it ends
/// up in logs and `Referer` headers, and Gatehouse never reads it there), with or without
/// another; all of them are `invalid_request`. A header of another scheme presents no token.
fn presented_token<'a>(
    parts: &'a Parts,
    body_token: Option<&'a str>,
) -> Result<Presented<'a>, Error> {
    let in_query = parts.uri.query().is_some_and(|query| {
        form_urlencoded::parse(query.as_bytes()).any(|(name, _)| name == "access_token")
    });
    if in_query {
        return Err(Error::invalid_request(
            "an access token is never accepted in the query string",
        ));
    }
    let mut headers = parts.headers.get_all(header::AUTHORIZATION).iter();
    let header_token = match (headers.next(), headers.next()) {
        (_, Some(_)) => {
            return Err(Error::invalid_request(
                "the request has more than one Authorization header",
            ));
        }
        (None, None) => None,
        (Some(value), None) => {
            let value = value
                .to_str()
                .map_err(|_| Error::invalid_request("malformed Authorization header"))?;
            let scheme = match value.split_once(' ') {
                Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => {
                    Some((Scheme::Bearer, token))
                }
                Some((scheme, token)) if scheme.eq_ignore_ascii_case("dpop") => {
                    Some((Scheme::DPoP, token))
                }
                _ => None,
            };
            match scheme {
                Some((scheme, token)) => {
                    let token = token.trim();
                    if token.is_empty() || token.contains(' ') {
                        return Err(Error::invalid_request("malformed access token"));
                    }
                    Some(Presented { token, scheme })
                }
                None => None,
            }
        }
    };
    match (header_token, body_token) {
        (Some(_), Some(_)) => Err(Error::invalid_request(
            "the access token must be presented in one way only, not in the header and the body",
        )),
        (Some(presented), None) => Ok(presented),
        (None, Some(token)) => Ok(Presented {
            token,
            scheme: Scheme::Bearer,
        }),
        (None, None) => Err(Error::MissingToken),
    }
}

/// The validated access token of a request to a protected API, presented in the
/// `Authorization` header ([`presented_token`]), issued for the API's audience — this server's
/// issuer, unless a gateway route names its upstream's — and presented as its binding demands: a
/// DPoP-bound token with the `DPoP` scheme and a proof of its key for this request, any other
/// with `Bearer`.
pub struct Bearer(pub AccessTokenInfo);

impl FromRequestParts<AppState> for Bearer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Bearer::for_audience(parts, state, state.services.tokens.issuer()).await
    }
}

impl Bearer {
    /// The token of a request to an API whose audience is `audience`.
    pub async fn for_audience(
        parts: &Parts,
        state: &AppState,
        audience: &str,
    ) -> Result<Self, ApiError> {
        let presented = presented_token(parts, None)?;
        Bearer::accepted(state, parts, presented, audience).await
    }

    /// The presented token, validated, for `audience` (RFC 9068 §4: a token for another
    /// audience is `invalid_token`) and admitted under its binding (RFC 9449 §7.1). Under the
    /// DPoP scheme a refusal is a DPoP challenge.
    async fn accepted(
        state: &AppState,
        parts: &Parts,
        presented: Presented<'_>,
        audience: &str,
    ) -> Result<Self, ApiError> {
        let scheme = presented.scheme;
        Bearer::admitted(state, parts, presented, audience)
            .await
            .map(Bearer)
            .map_err(|error| match (scheme, error) {
                (Scheme::DPoP, Error::InvalidToken(why)) => Error::InvalidDpopToken(why).into(),
                (_, error) => error.into(),
            })
    }

    async fn admitted(
        state: &AppState,
        parts: &Parts,
        presented: Presented<'_>,
        audience: &str,
    ) -> Result<AccessTokenInfo, Error> {
        let token = presented.token;
        let info = match state.services.tokens.validate(token).await {
            Ok(info) => info,
            // Not one of ours: perhaps a trusted identity provider's.
            Err(Error::InvalidToken(why)) => {
                match state.services.federation.validate_api_token(token).await {
                    Some(result) => result?,
                    None => return Err(Error::InvalidToken(why)),
                }
            }
            Err(other) => return Err(other),
        };
        if !info.is_for(audience) {
            return Err(Error::InvalidToken(
                "the access token is not for this audience".into(),
            ));
        }
        let target = Target {
            method: parts.method.as_str(),
            path: received_path(parts),
            access_token: Some(token),
        };
        // A bearer request's `DPoP` header is no business of ours.
        let proof = match presented.scheme {
            Scheme::DPoP => dpop_proof(&parts.headers)?,
            Scheme::Bearer => None,
        };
        state
            .services
            .dpop
            .admit(info.dpop_jkt.as_deref(), presented.scheme, proof, &target)
            .await?;
        Ok(info)
    }
}

/// The path the request was sent to, before any nested router took its prefix away.
fn received_path(parts: &Parts) -> &str {
    parts
        .extensions
        .get::<OriginalUri>()
        .map_or(parts.uri.path(), |original| original.0.path())
}

/// The validated access token of the UserInfo endpoint, which OpenID Connect Core §5.3.1 says
/// must also accept it as the form body's `access_token` of a `POST` (RFC 6750 §2.2); for
/// Gatehouse's own audience.
pub struct FormBearer(pub AccessTokenInfo);

impl FromRequest<AppState> for FormBearer {
    type Rejection = Response;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Response> {
        let (parts, body) = request.into_parts();
        let mut params = BTreeMap::new();
        // §2.2: only a form body of a method whose body has a meaning carries a token.
        if parts.method == Method::POST && is_form(&parts.headers) {
            let body = read_body(body, MAX_FORM_BYTES).await?;
            params = crate::pages::oauth_params(&body)
                .map_err(|error| ApiError::from(error).into_response())?
                .0;
        }
        let body_token = params.get("access_token").filter(|t| !t.is_empty());
        let presented = presented_token(&parts, body_token.map(String::as_str))
            .map_err(|error| ApiError::from(error).into_response())?;
        Bearer::accepted(state, &parts, presented, state.services.tokens.issuer())
            .await
            .map(|Bearer(info)| FormBearer(info))
            .map_err(IntoResponse::into_response)
    }
}

/// The caller of a protected API, authorized by the REST API auth scope rules for this
/// request's method and path. Every protected API takes its caller from here.
pub struct Authorized(pub Caller);

impl FromRequestParts<AppState> for Authorized {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Authorized::for_audience(parts, state, state.services.tokens.issuer()).await
    }
}

impl Authorized {
    /// The caller of an API whose audience is `audience`, authorized by the scope rules.
    pub async fn for_audience(
        parts: &mut Parts,
        state: &AppState,
        audience: &str,
    ) -> Result<Self, ApiError> {
        let RequestPath(path) = RequestPath::from_request_parts(parts, state).await?;
        let Bearer(token) = Bearer::for_audience(parts, state, audience).await?;
        let caller = Caller::from(token);
        Self::check_rules(parts, state, &path, &caller).await?;
        Ok(Authorized(caller))
    }

    /// Like [`Authorized::for_audience`], but the token itself and what it proved: for a
    /// gateway route that exchanges it for its upstream.
    pub async fn token_for_audience(
        parts: &mut Parts,
        state: &AppState,
        audience: &str,
    ) -> Result<(String, AccessTokenInfo), ApiError> {
        let RequestPath(path) = RequestPath::from_request_parts(parts, state).await?;
        let presented = presented_token(parts, None)?;
        let token = presented.token.to_owned();
        let Bearer(info) = Bearer::accepted(state, parts, presented, audience).await?;
        Self::check_rules(parts, state, &path, &Caller::from(info.clone())).await?;
        Ok((token, info))
    }

    /// The scope rules for this request's method and `path`.
    async fn check_rules(
        parts: &Parts,
        state: &AppState,
        path: &CanonicalPath,
        caller: &Caller,
    ) -> Result<(), ApiError> {
        state
            .services
            .registry
            .catalog()
            .await?
            .authorize(caller, parts.method.as_str(), path)?;
        Ok(())
    }
}

/// The request's path in its canonical form, or `400 invalid_request` when it has none. Read
/// once per request and kept, so the rules, the route and the upstream URL see the same path.
#[derive(Clone)]
pub struct RequestPath(pub Arc<CanonicalPath>);

impl<S: Send + Sync> FromRequestParts<S> for RequestPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        if let Some(path) = parts.extensions.get::<RequestPath>() {
            return Ok(path.clone());
        }
        // Nested routers see their own part of the path; the rules speak of the whole one.
        let raw = received_path(parts);
        let path = RequestPath(Arc::new(CanonicalPath::parse(raw)?));
        parts.extensions.insert(path.clone());
        Ok(path)
    }
}

/// A JSON body whose rejection is an [`ApiError`] rather than axum's plain-text one.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        axum::Json::<T>::from_request(request, state)
            .await
            .map(|axum::Json(value)| ApiJson(value))
            .map_err(|rejection| Error::validation(rejection.body_text()).into())
    }
}

/// The client's address: the TCP peer, or, when the peer is one of the configured trusted
/// proxies, the address it forwarded for. `None` when the server runs without connection info.
pub struct ClientAddress(pub Option<IpAddr>);

impl FromRequestParts<AppState> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(ClientAddress(peer_address(parts).map(|peer| {
            state
                .settings
                .trusted_proxies
                .client_address(peer, &forwarded_for(&parts.headers))
        })))
    }
}

/// The TCP peer of the request's connection.
pub fn peer_address(parts: &Parts) -> Option<IpAddr> {
    parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|info| info.0.ip())
}

/// Every `X-Forwarded-For` value, in order; values that are not text are left out.
pub fn forwarded_for(headers: &HeaderMap) -> Vec<&str> {
    headers
        .get_all(X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect()
}
