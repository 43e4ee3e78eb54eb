//! Server-rendered pages (login, consent, account, sign-out, errors) and what every page
//! carries: strict security headers, the browser cookies and their CSRF tokens, and the
//! continuation sealed into each form.
//!
//! Pages load nothing from elsewhere: one stylesheet served by Gatehouse itself, no scripts
//! except the one-line auto-submit of a `form_post` response, allowed by its hash.

use std::collections::BTreeMap;

use askama::Template;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gatehouse_core::Error;
use gatehouse_core::authorize::{AuthorizationRequest, AuthorizationResponse, ResponseMode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::PageError;
use crate::state::AppState;

/// The session cookie.
pub const SESSION_COOKIE: &str = "gh_session";
/// A random per-browser value that binds the login form's CSRF token before there is a session.
pub const BROWSER_COOKIE: &str = "gh_browser";
/// The script that submits a `form_post` response.
pub const SUBMIT_SCRIPT: &str = "document.forms[0].submit();";

pub static STYLESHEET: &str = include_str!("../assets/gatehouse.css");

/// Where a form leads once it is submitted (a login form: what the login was for). It travels
/// sealed (encrypted and authenticated with a key derived from the master key), so the browser
/// can neither read nor alter it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Continuation {
    Authorize(Box<AuthorizationRequest>),
    Account,
    /// The page where tokens for outbound OAuth profiles are obtained.
    Outbound,
    /// The device page, with the code the user brought, if any.
    Device {
        user_code: String,
    },
    /// A page of the administrators' console, by its path (always under `/admin`).
    Console {
        path: String,
    },
}

/// What a form carries sealed in a hidden field.
pub trait FormPayload: Serialize + DeserializeOwned {
    /// Keeps one form's payload from being accepted by another form.
    const PURPOSE: &'static str;

    /// When the payload stops being good on its own account, if ever.
    fn expires_at(&self) -> Option<i64> {
        None
    }
}

impl FormPayload for Continuation {
    const PURPOSE: &'static str = "continuation";

    fn expires_at(&self) -> Option<i64> {
        match self {
            Continuation::Authorize(request) => Some(request.expires_at),
            Continuation::Account
            | Continuation::Outbound
            | Continuation::Device { .. }
            | Continuation::Console { .. } => None,
        }
    }
}

/// The sign-out confirmation, whose form carries nothing but its ticket.
#[derive(Serialize, Deserialize)]
pub struct SignOut;

impl FormPayload for SignOut {
    const PURPOSE: &'static str = "sign-out";
}

/// How long a form stays good when nothing shorter (an authorization request's own expiry)
/// applies.
const FORM_LIFETIME_SECONDS: i64 = 3600;

/// A sealed form field: its payload and a random ticket that makes the form good for one
/// submission, so a replayed approval cannot produce a second code.
#[derive(Serialize, Deserialize)]
struct SealedForm<T> {
    payload: T,
    ticket: String,
    expires_at: i64,
}

pub fn seal<T: FormPayload>(state: &AppState, payload: &T) -> String {
    let lifetime_end = state.services.tokens.clock().now() + FORM_LIFETIME_SECONDS;
    let form = SealedForm {
        payload,
        ticket: gatehouse_core::secret::generate(),
        expires_at: payload
            .expires_at()
            .map_or(lifetime_end, |end| end.min(lifetime_end)),
    };
    let json = serde_json::to_vec(&form).expect("a form payload serialises");
    URL_SAFE_NO_PAD.encode(state.services.sealer.seal(T::PURPOSE, &json))
}

/// Opens a sealed form and uses up its ticket, so of several submissions of one form (a double
/// click, a replay, concurrent posts to several instances) exactly one goes on.
pub async fn redeem<T: FormPayload>(state: &AppState, sealed: &str) -> Result<T, PageError> {
    redeem_ticket(state, sealed, None).await
}

/// Like [`redeem`], but uses the ticket up for one `content` of the form only: the same form
/// sent again as it was goes no further, while one corrected after a refusal does.
pub async fn redeem_for<T: FormPayload>(
    state: &AppState,
    sealed: &str,
    content: &str,
) -> Result<T, PageError> {
    redeem_ticket(state, sealed, Some(content)).await
}

async fn redeem_ticket<T: FormPayload>(
    state: &AppState,
    sealed: &str,
    content: Option<&str>,
) -> Result<T, PageError> {
    let Some(form) = URL_SAFE_NO_PAD
        .decode(sealed)
        .ok()
        .and_then(|bytes| state.services.sealer.open(T::PURPOSE, &bytes).ok())
        .and_then(|json| serde_json::from_slice::<SealedForm<T>>(&json).ok())
        .filter(|form| form.expires_at > state.services.tokens.clock().now())
    else {
        return Err(PageError::Expired);
    };
    let key = match content {
        None => format!("form:{}", form.ticket),
        Some(content) => format!(
            "form:{}:{}",
            form.ticket,
            gatehouse_core::secret::sha256_base64(content)
        ),
    };
    let first = state
        .services
        .store
        .record_assertion_use(&key, form.expires_at)
        .await
        .map_err(Error::from)?;
    if first {
        Ok(form.payload)
    } else {
        Err(PageError::AlreadySubmitted)
    }
}

/// Whether cookies are `Secure`: whenever the issuer is https. Browsers drop secure cookies
/// sent over plain http, which only a loopback issuer (tests, development) uses.
fn secure_cookies(state: &AppState) -> bool {
    state.services.tokens.issuer().starts_with("https://")
}

/// The name a cookie is set and read under. Secure cookies carry the `__Host-` prefix
/// (RFC 6265bis §4.1.3.2): a browser keeps such a cookie only if it is `Secure`, for `Path=/`
/// and without `Domain`, so neither a sibling subdomain nor a plain-http page can set or shadow
/// it.
pub fn cookie_name(state: &AppState, name: &str) -> String {
    if secure_cookies(state) {
        format!("__Host-{name}")
    } else {
        name.to_owned()
    }
}

/// Reads one of Gatehouse's cookies, under the name [`cookie_name`] gives it.
pub fn cookie<'h>(state: &AppState, headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    let name = cookie_name(state, name);
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}

/// A `Set-Cookie` value: `HttpOnly`, `SameSite=Lax`, `Path=/`, no `Domain`, and, whenever the
/// issuer is https, `Secure` and the `__Host-` prefix.
pub fn set_cookie(state: &AppState, name: &str, value: &str, max_age: Option<i64>) -> HeaderValue {
    let secure = if secure_cookies(state) {
        "; Secure"
    } else {
        ""
    };
    let max_age = max_age
        .map(|s| format!("; Max-Age={s}"))
        .unwrap_or_default();
    HeaderValue::from_str(&format!(
        "{}={value}; Path=/; HttpOnly; SameSite=Lax{secure}{max_age}",
        cookie_name(state, name)
    ))
    .expect("cookie values are base64url")
}

/// The origin of a URI, for the CSP `form-action` of pages whose forms end in a redirect there.
fn origin(uri: &str) -> Option<String> {
    let url = url::Url::parse(uri).ok()?;
    match url.origin() {
        url::Origin::Tuple(..) => Some(url.origin().ascii_serialization()),
        // Private-use schemes of native apps.
        url::Origin::Opaque(_) => Some(format!("{}:", url.scheme())),
    }
}

/// Renders a page with the headers every page carries.
pub fn page(
    status: StatusCode,
    html: Result<String, askama::Error>,
    form_target: Option<&str>,
    script_hash: Option<&str>,
) -> Response {
    page_with_form_targets(status, html, form_target.as_slice(), script_hash)
}

/// Like [`page`], for a page whose forms may end in redirects to several origins.
pub fn page_with_form_targets(
    status: StatusCode,
    html: Result<String, askama::Error>,
    form_targets: &[&str],
    script_hash: Option<&str>,
) -> Response {
    let html = match html {
        Ok(html) => html,
        Err(error) => return crate::error::unrendered_page(&error),
    };
    let mut origins: Vec<String> = form_targets.iter().filter_map(|t| origin(t)).collect();
    origins.sort();
    origins.dedup();
    let form_action = std::iter::once("'self'".to_owned())
        .chain(origins)
        .collect::<Vec<_>>()
        .join(" ");
    let script = script_hash
        .map(|h| format!("; script-src '{h}'"))
        .unwrap_or_default();
    let csp = format!(
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action {form_action}; \
         frame-ancestors 'none'; base-uri 'none'{script}"
    );
    let mut response = (status, Html(html)).into_response();
    let headers = response.headers_mut();
    if let Ok(csp) = HeaderValue::from_str(&csp) {
        headers.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[derive(Template)]
#[template(path = "message.html")]
struct MessagePage<'a> {
    title: &'a str,
    message: &'a str,
    is_error: bool,
}

/// The page that tells the user something. Errors reach it only through
/// [`PageError`](crate::error::PageError); other results through [`notice`].
pub fn message(status: StatusCode, title: &str, message: &str) -> Response {
    let is_error = !status.is_success();
    page(
        status,
        MessagePage {
            title,
            message,
            is_error,
        }
        .render(),
        None,
        None,
    )
}

/// A page that tells the user how something they did turned out.
pub fn notice(title: &str, text: &str) -> Response {
    message(StatusCode::OK, title, text)
}

#[derive(Template)]
#[template(path = "form_post.html")]
struct FormPostPage<'a> {
    action: &'a str,
    params: &'a [(String, String)],
}

/// Sends an authorization response to the client in its response mode.
pub fn deliver(response: AuthorizationResponse) -> Result<Response, PageError> {
    let encoded = || {
        form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&response.params)
            .finish()
    };
    let location = match response.response_mode {
        ResponseMode::Query => {
            let mut url = url::Url::parse(&response.redirect_uri)
                .map_err(|_| Error::Internal("bad redirect URI".into()))?;
            url.query_pairs_mut().extend_pairs(&response.params);
            url.to_string()
        }
        ResponseMode::Fragment => format!("{}#{}", response.redirect_uri, encoded()),
        ResponseMode::FormPost => {
            let html = FormPostPage {
                action: &response.redirect_uri,
                params: &response.params,
            }
            .render();
            return Ok(page(
                StatusCode::OK,
                html,
                Some(&response.redirect_uri),
                Some(&script_hash()),
            ));
        }
    };
    Ok(redirect(&location))
}

/// A 303 redirect: after a POST, the browser follows with a GET (RFC 9700 §4.12).
pub fn redirect(location: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The CSP source of [`SUBMIT_SCRIPT`].
fn script_hash() -> String {
    format!(
        "sha256-{}",
        gatehouse_core::secret::sha256_base64(SUBMIT_SCRIPT)
    )
}

/// Parses a query string or form body, refusing repeated parameters (RFC 6749 §3.1).
pub fn unique_params(bytes: &[u8]) -> Result<BTreeMap<String, String>, Error> {
    parse_params(bytes, None).map(|(params, _)| params)
}

/// The parameters of an OAuth request: each at most once, except `resource`, which RFC 8707 §2
/// lets a client repeat to name several resources; those come back apart, in order, without
/// empty values.
pub fn oauth_params(bytes: &[u8]) -> Result<(BTreeMap<String, String>, Vec<String>), Error> {
    parse_params(bytes, Some("resource"))
}

fn parse_params(
    bytes: &[u8],
    repeatable: Option<&str>,
) -> Result<(BTreeMap<String, String>, Vec<String>), Error> {
    let mut params = BTreeMap::new();
    let mut repeated = Vec::new();
    for (name, value) in form_urlencoded::parse(bytes) {
        if Some(name.as_ref()) == repeatable {
            if !value.is_empty() {
                repeated.push(value.into_owned());
            }
            continue;
        }
        if params.contains_key(name.as_ref()) {
            return Err(Error::invalid_request("a parameter is repeated"));
        }
        params.insert(name.into_owned(), value.into_owned());
    }
    Ok((params, repeated))
}

/// A form body (or query string) as a typed struct; `None` when a field is missing or repeated.
pub fn form<T: DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    read_params(unique_params(bytes).ok()?)
}

/// Parameters as a typed struct; `None` when a field is missing.
pub fn read_params<T: DeserializeOwned>(params: BTreeMap<String, String>) -> Option<T> {
    serde_json::from_value(serde_json::to_value(params).ok()?).ok()
}
