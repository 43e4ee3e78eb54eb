//! The authorization endpoint (`/oauth/authorize`, `/oauth_auth.do`; GET and POST) and the login
//! and consent forms it leads through. The rules are in `gatehouse_core::authorize`; this module
//! only moves the browser between pages.

use askama::Template;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use gatehouse_core::Error;
use gatehouse_core::authorize::{
    AuthorizationRequest, AuthorizeError, Consent, Decision, ErrorRedirect, Pushing, SignedIn,
};
use gatehouse_core::client::Client;
use gatehouse_core::entry::Catalog;
use gatehouse_core::login;
use gatehouse_core::session::SESSION_LIFETIME;
use gatehouse_core::store::SessionRecord;
use gatehouse_core::user::User;
use serde::Deserialize;

use crate::error::PageError;
use crate::extract::{ClientAddress, CsrfChecked, CsrfForm};
use crate::pages::{
    self, BROWSER_COOKIE, Continuation, SESSION_COOKIE, cookie, cookie_name, deliver, page,
    set_cookie,
};
use crate::state::AppState;

/// `GET /oauth/authorize?…`
pub async fn authorize_get(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, PageError> {
    authorize(&state, &headers, query.unwrap_or_default().as_bytes()).await
}

/// `POST /oauth/authorize` with a form body (OpenID Connect Core §3.1.2.1). Parameters in the
/// query string are read together with the body's, so one given in both is refused as repeated
/// rather than read from one place by Gatehouse and from the other by the client.
pub async fn authorize_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Result<Response, PageError> {
    match query.filter(|q| !q.is_empty()) {
        Some(query) => {
            let mut all = query.into_bytes();
            all.push(b'&');
            all.extend_from_slice(&body);
            authorize(&state, &headers, &all).await
        }
        None => authorize(&state, &headers, &body).await,
    }
}

async fn authorize(
    state: &AppState,
    headers: &HeaderMap,
    raw: &[u8],
) -> Result<Response, PageError> {
    let (params, resources) = pages::oauth_params(raw)?;
    let now = state.services.tokens.clock().now();
    let pushing = Pushing::Direct {
        required: state.settings.require_pushed_authorization_requests,
    };
    let validated = AuthorizationRequest::validate(
        state.services.store.as_ref(),
        &state.services.tokens,
        &params,
        &resources,
        now,
        pushing,
    )
    .await;
    let (client, request) = match validated {
        Ok(validated) => validated,
        Err(AuthorizeError::Redirect(redirect)) => return tell_client(state, redirect),
        Err(AuthorizeError::Page(message)) => {
            return Err(PageError::BadRequest {
                title: CANNOT_COMPLETE,
                message,
            });
        }
        Err(AuthorizeError::Internal(error)) => return Err(PageError::Internal(error)),
    };
    let session = current_session(state, headers).await?;
    proceed(state, headers, &client, request, session, false).await
}

/// The title of the page for a request that names no usable application or redirect URI.
const CANNOT_COMPLETE: &str = "This request cannot be completed";

/// The logged-in user of this browser, and their session.
pub(crate) async fn current_session(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<(User, SessionRecord)>, Error> {
    let Some(value) = cookie(state, headers, SESSION_COOKIE) else {
        return Ok(None);
    };
    Ok(state
        .services
        .sessions
        .find(value)
        .await?
        .map(|(session, user)| (user, session)))
}

/// An error the client hears at its redirect URI, with `state` and `iss`.
fn tell_client(state: &AppState, redirect: ErrorRedirect) -> Result<Response, PageError> {
    deliver(redirect.into_response(state.services.tokens.issuer()))
}

/// Takes a validated request as far as it can go: login, consent, or the response.
async fn proceed(
    state: &AppState,
    headers: &HeaderMap,
    client: &Client,
    request: AuthorizationRequest,
    session: Option<(User, SessionRecord)>,
    just_logged_in: bool,
) -> Result<Response, PageError> {
    let remembered = match &session {
        Some((user, _)) => state
            .services
            .sessions
            .remembered_consent(user, &client.client_id)
            .await
            .map_err(PageError::Internal)?,
        None => None,
    };
    let signed_in = session.as_ref().map(|(user, session)| SignedIn {
        user,
        auth_time: session.auth_time,
        just_now: just_logged_in,
    });
    let now = state.services.tokens.clock().now();
    let decision = request.decide(signed_in, Consent::Remembered(remembered.as_ref()), now);
    let sid = session
        .as_ref()
        .map(|(_, session)| state.services.sessions.sid(session));
    act(state, headers, client, request, decision, sid.as_deref()).await
}

/// Carries out what [`AuthorizationRequest::decide`] decided, in the browser session `sid`.
async fn act(
    state: &AppState,
    headers: &HeaderMap,
    client: &Client,
    request: AuthorizationRequest,
    decision: Decision<'_>,
    sid: Option<&str>,
) -> Result<Response, PageError> {
    match decision {
        Decision::Login => {
            let hint = request.login_hint.clone().unwrap_or_default();
            Ok(login_page(
                state,
                headers,
                Some(&client.name),
                Continuation::Authorize(Box::new(request)),
                &hint,
                None,
            ))
        }
        Decision::Consent { user } => {
            let catalog = state.services.registry.catalog().await?;
            Ok(consent_page(
                state, headers, client, user, &catalog, request,
            ))
        }
        Decision::Respond {
            user,
            auth_time,
            remember_consent,
        } => {
            if remember_consent {
                state
                    .services
                    .sessions
                    .remember_consent(user, &client.client_id, &request.scope_set())
                    .await
                    .map_err(PageError::Internal)?;
            }
            let response = request
                .respond(
                    state.services.store.as_ref(),
                    &state.services.tokens,
                    client,
                    user,
                    auth_time,
                    sid,
                )
                .await
                .map_err(PageError::Internal)?;
            deliver(response)
        }
        Decision::Error(redirect) => tell_client(state, redirect),
    }
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    app_name: Option<&'a str>,
    error: Option<&'a str>,
    continuation: String,
    csrf: String,
    login_hint: &'a str,
}

/// The login form, bound to this browser by a cookie and the CSRF token derived from it.
pub fn login_page(
    state: &AppState,
    headers: &HeaderMap,
    app_name: Option<&str>,
    continuation: Continuation,
    login_hint: &str,
    error: Option<&str>,
) -> Response {
    let existing = cookie(state, headers, BROWSER_COOKIE).map(str::to_owned);
    let browser = existing
        .clone()
        .unwrap_or_else(gatehouse_core::secret::generate);
    let target = match &continuation {
        Continuation::Authorize(request) => Some(request.redirect_uri.clone()),
        Continuation::Account
        | Continuation::Outbound
        | Continuation::Device { .. }
        | Continuation::Console { .. } => None,
    };
    let html = LoginPage {
        app_name,
        error,
        continuation: pages::seal(state, &continuation),
        csrf: CsrfForm::<LoginForm>::token(state, &browser),
        login_hint,
    }
    .render();
    let status = if error.is_some() {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::OK
    };
    let mut response = page(status, html, target.as_deref(), None);
    if existing.is_none() {
        response.headers_mut().append(
            header::SET_COOKIE,
            set_cookie(state, BROWSER_COOKIE, &browser, None),
        );
    }
    response
}

#[derive(Deserialize)]
pub struct LoginForm {
    continuation: String,
    username: String,
    password: String,
}

impl CsrfChecked for LoginForm {
    const PURPOSE: &'static str = "login";
    // There is no session yet: the token binds the form to the browser.
    const COOKIE: &'static str = BROWSER_COOKIE;
}

/// `POST /oauth/authorize/login`
pub async fn login(
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
    headers: HeaderMap,
    CsrfForm { form, .. }: CsrfForm<LoginForm>,
) -> Result<Response, PageError> {
    let continuation = pages::redeem(&state, &form.continuation).await?;
    let now = state.services.tokens.clock().now();
    let client_id = match &continuation {
        Continuation::Authorize(request) => Some(request.client_id.as_str()),
        _ => None,
    };
    let checked = login::check_password(
        state.services.store.as_ref(),
        &state.throttle,
        &form.username,
        &form.password,
        client_id,
        address,
        now,
    )
    .await;
    let user = match checked.map_err(PageError::Internal)? {
        Some(user) => user,
        None => {
            let app_name = match &continuation {
                Continuation::Authorize(request) => state
                    .services
                    .store
                    .find_client(&request.client_id)
                    .await
                    .ok()
                    .flatten()
                    .map(|c| c.name),
                Continuation::Account
                | Continuation::Outbound
                | Continuation::Device { .. }
                | Continuation::Console { .. } => None,
            };
            return Ok(login_page(
                &state,
                &headers,
                app_name.as_deref(),
                continuation,
                &form.username,
                Some("The user name or password is wrong."),
            ));
        }
    };
    let (session_cookie, session) = state
        .services
        .sessions
        .start(&user)
        .await
        .map_err(PageError::Internal)?;
    // The follow-up pages must see the new session, not the one the request came with.
    let mut headers = headers.clone();
    headers.insert(
        header::COOKIE,
        axum::http::HeaderValue::from_str(&format!(
            "{}={session_cookie}; {}={}",
            cookie_name(&state, SESSION_COOKIE),
            cookie_name(&state, BROWSER_COOKIE),
            cookie(&state, &headers, BROWSER_COOKIE).unwrap_or_default()
        ))
        .expect("cookie values are base64url"),
    );
    let onward = match continuation {
        Continuation::Authorize(request) => {
            continue_authorization(&state, &headers, *request, user, session).await
        }
        Continuation::Account => Ok(pages::redirect("/account")),
        Continuation::Outbound => Ok(pages::redirect("/outbound")),
        Continuation::Device { user_code } => {
            let query = form_urlencoded::Serializer::new(String::new())
                .append_pair("user_code", &user_code)
                .finish();
            Ok(pages::redirect(&format!("/device?{query}")))
        }
        Continuation::Console { path } => Ok(pages::redirect(&path)),
    };
    // The session has started whatever happens next, so its cookie goes with any answer.
    let mut response = onward.into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(
            &state,
            SESSION_COOKIE,
            &session_cookie,
            Some(SESSION_LIFETIME),
        ),
    );
    Ok(response)
}

/// The authorization a login was for, now that the user has logged in for it.
async fn continue_authorization(
    state: &AppState,
    headers: &HeaderMap,
    request: AuthorizationRequest,
    user: User,
    session: SessionRecord,
) -> Result<Response, PageError> {
    let client = state
        .services
        .store
        .find_client(&request.client_id)
        .await
        .map_err(|error| PageError::Internal(error.into()))?
        .filter(|client| client.active)
        .ok_or_else(|| PageError::BadRequest {
            title: CANNOT_COMPLETE,
            message: "The application is unknown or disabled.".into(),
        })?;
    proceed(
        state,
        headers,
        &client,
        request,
        Some((user, session)),
        true,
    )
    .await
}

#[derive(Template)]
#[template(path = "consent.html")]
struct ConsentPage<'a> {
    app_name: &'a str,
    user_name: &'a str,
    scopes: Vec<(String, String)>,
    continuation: String,
    csrf: String,
}

fn consent_page(
    state: &AppState,
    headers: &HeaderMap,
    client: &Client,
    user: &User,
    catalog: &Catalog,
    request: AuthorizationRequest,
) -> Response {
    let session = cookie(state, headers, SESSION_COOKIE).unwrap_or_default();
    let scopes = catalog.describe(&request.scope_set());
    let target = request.redirect_uri.clone();
    let html = ConsentPage {
        app_name: &client.name,
        user_name: &user.display_name,
        scopes,
        continuation: pages::seal(state, &Continuation::Authorize(Box::new(request))),
        csrf: CsrfForm::<ConsentForm>::token(state, session),
    }
    .render();
    page(StatusCode::OK, html, Some(&target), None)
}

#[derive(Deserialize)]
pub struct ConsentForm {
    continuation: String,
    decision: String,
}

impl CsrfChecked for ConsentForm {
    const PURPOSE: &'static str = "consent";
}

/// `POST /oauth/authorize/consent`
pub async fn consent(
    State(state): State<AppState>,
    headers: HeaderMap,
    CsrfForm { form, .. }: CsrfForm<ConsentForm>,
) -> Result<Response, PageError> {
    let Continuation::Authorize(request) = pages::redeem(&state, &form.continuation).await? else {
        return Err(PageError::Expired);
    };
    let (session, client) = match (
        current_session(&state, &headers).await,
        state.services.store.find_client(&request.client_id).await,
    ) {
        (Ok(Some(session)), Ok(Some(client))) if client.active => (session, client),
        (Err(error), _) => return Err(PageError::Internal(error)),
        _ => return Err(PageError::Expired),
    };
    let (user, session) = session;
    let signed_in = SignedIn {
        user: &user,
        auth_time: session.auth_time,
        just_now: false,
    };
    let answer = Consent::Answered {
        allow: form.decision == "allow",
    };
    let now = state.services.tokens.clock().now();
    let decision = request.decide(Some(signed_in), answer, now);
    let sid = state.services.sessions.sid(&session);
    act(&state, &headers, &client, *request, decision, Some(&sid)).await
}

/// The stylesheet every page uses.
pub async fn stylesheet() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        pages::STYLESHEET,
    )
}
