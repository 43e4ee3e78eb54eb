//! The browser side of outbound OAuth's authorization-code grant: the page listing the
//! profiles a user may authorize ("Get OAuth token"), the start of the authorization at the
//! provider (PKCE S256 and `state`), and Gatehouse's callback `/oauth_redirect.do`, which
//! redeems the code and stores the tokens for the profile — system-wide or the user's own.
//!
//! The authorization in progress travels sealed in a cookie of the browser that started it and
//! is cleared at the callback, whatever the outcome; a replayed callback finds no cookie, and
//! the provider redeems a code only once anyway.

use askama::Template;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gatehouse_core::Error;
use gatehouse_core::outbound::{AUTHORIZATION_LIFETIME, PendingAuthorization};
use gatehouse_remote::outbound::OutboundError;
use serde::Deserialize;

use crate::error::PageError;
use crate::extract::{CsrfChecked, CsrfForm};
use crate::oauth::authorize::login_page;
use crate::pages::{self, Continuation, SESSION_COOKIE, cookie, set_cookie};
use crate::state::AppState;

/// The cookie carrying the sealed [`PendingAuthorization`].
const PENDING_COOKIE: &str = "gh_outbound";
/// The sealing context of that cookie.
const PENDING_CONTEXT: &str = "outbound authorization";

struct Row {
    profile: String,
    provider: String,
    scopes: String,
    per_user: bool,
    held: bool,
}

#[derive(Template)]
#[template(path = "outbound.html")]
struct OutboundPage {
    user_name: String,
    rows: Vec<Row>,
    csrf: String,
}

/// `GET /outbound`
pub async fn outbound_page(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    let session_cookie = cookie(&state, &headers, SESSION_COOKIE)
        .unwrap_or_default()
        .to_owned();
    let Some((_, user)) = state.services.sessions.find(&session_cookie).await? else {
        let login = login_page(&state, &headers, None, Continuation::Outbound, "", None);
        return Ok(login);
    };
    let profiles = state
        .services
        .outbound
        .registry()
        .authorizable_profiles(&*state.services.registry.catalog().await?, &user)
        .await
        .map_err(PageError::Internal)?;
    // The buttons' forms end in redirects to the providers: the CSP must allow those.
    let targets: Vec<String> = profiles
        .iter()
        .filter_map(|(_, provider, _)| provider.authorization_url.clone())
        .collect();
    let rows = profiles
        .into_iter()
        .map(|(profile, provider, held)| Row {
            scopes: profile.scopes.join(" "),
            per_user: profile.per_user,
            profile: profile.name,
            provider: provider.name,
            held,
        })
        .collect();
    let html = OutboundPage {
        user_name: user.display_name,
        rows,
        csrf: CsrfForm::<AuthorizeForm>::token(&state, &session_cookie),
    }
    .render();
    let targets: Vec<&str> = targets.iter().map(String::as_str).collect();
    Ok(pages::page_with_form_targets(
        StatusCode::OK,
        html,
        &targets,
        None,
    ))
}

#[derive(Deserialize)]
pub struct AuthorizeForm {
    profile: String,
}

impl CsrfChecked for AuthorizeForm {
    const PURPOSE: &'static str = "outbound";
}

/// `POST /outbound/authorize`: sends the browser to the provider.
pub async fn authorize(
    State(state): State<AppState>,
    CsrfForm {
        form,
        cookie: session_cookie,
    }: CsrfForm<AuthorizeForm>,
) -> Result<Response, PageError> {
    let Some((_, user)) = state.services.sessions.find(&session_cookie).await? else {
        return Err(PageError::Unverified);
    };
    let redirect_uri = format!("{}/oauth_redirect.do", state.services.tokens.issuer());
    let started = state
        .services
        .outbound
        .registry()
        .start_authorization(
            &*state.services.registry.catalog().await?,
            &form.profile,
            &user,
            &redirect_uri,
        )
        .await;
    let (pending, location) = started.map_err(|error| match error {
        Error::Forbidden(why) => PageError::Forbidden(why),
        Error::NotFound(_) | Error::Validation(_) => PageError::BadRequest {
            title: "Cannot start",
            message: error.to_string(),
        },
        other => PageError::Internal(other),
    })?;
    let json = serde_json::to_vec(&pending).expect("a pending authorization serialises");
    let sealed = URL_SAFE_NO_PAD.encode(state.services.sealer.seal(PENDING_CONTEXT, &json));
    let mut response = pages::redirect(&location);
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(
            &state,
            PENDING_COOKIE,
            &sealed,
            Some(AUTHORIZATION_LIFETIME),
        ),
    );
    Ok(response)
}

/// `GET /oauth_redirect.do`: the provider's answer.
pub async fn callback(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let params = pages::unique_params(query.unwrap_or_default().as_bytes()).unwrap_or_default();
    let now = state.services.tokens.clock().now();
    let pending = cookie(&state, &headers, PENDING_COOKIE)
        .and_then(|sealed| URL_SAFE_NO_PAD.decode(sealed).ok())
        .and_then(|bytes| state.services.sealer.open(PENDING_CONTEXT, &bytes).ok())
        .and_then(|json| serde_json::from_slice::<PendingAuthorization>(&json).ok())
        .filter(|p| p.answers(params.get("state").map_or("", String::as_str), now));
    let outcome = match pending {
        None => Err(PageError::BadRequest {
            title: "No authorization in progress",
            message: "This answer does not belong to an authorization started in this browser, \
                      or it came too late. Start again from the OAuth tokens page."
                .into(),
        }),
        Some(pending) => redeem(&state, &pending, &params).await,
    };
    // The authorization in progress ends here, whatever its outcome.
    let mut response = outcome.into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(&state, PENDING_COOKIE, "", Some(0)),
    );
    response
}

/// The title of every page that ends an authorization without a token.
const NO_TOKEN: &str = "No token";

async fn redeem(
    state: &AppState,
    pending: &PendingAuthorization,
    params: &std::collections::BTreeMap<String, String>,
) -> Result<Response, PageError> {
    let no_token = |why: String| PageError::BadRequest {
        title: NO_TOKEN,
        message: format!("{why}. No token was stored."),
    };
    // Whose answer this is comes first (RFC 9207 §2.4): an error from another provider is no
    // more this provider's than a code is.
    let (profile, provider) = state
        .services
        .outbound
        .registry()
        .response_target(
            &*state.services.registry.catalog().await?,
            pending,
            params.get("iss").map(String::as_str),
        )
        .await
        .map_err(|error| match error {
            Error::Validation(_) | Error::NotFound(_) => no_token(error.to_string()),
            other => PageError::Internal(other),
        })?;
    if let Some(error) = params.get("error") {
        let description = params
            .get("error_description")
            .map(|d| format!(" ({d})"))
            .unwrap_or_default();
        return Err(no_token(format!(
            "The provider answered {error}{description}"
        )));
    }
    let code = params
        .get("code")
        .ok_or_else(|| no_token("The provider's answer carries no code".into()))?;
    state
        .services
        .outbound
        .redeem_code(
            &profile,
            &provider,
            &pending.owner,
            code,
            &pending.redirect_uri,
            &pending.code_verifier,
        )
        .await
        .map_err(|error| match error {
            // Storage and our own failures are ours: their text stays in the log.
            OutboundError::Domain(error @ (Error::Store(_) | Error::Internal(_))) => {
                PageError::Internal(error)
            }
            other => PageError::BadGateway {
                title: NO_TOKEN,
                message: format!("{other}. No token was stored."),
            },
        })?;
    Ok(pages::notice(
        "Token stored",
        &format!(
            "Gatehouse now holds a token for the profile {}.",
            profile.name
        ),
    ))
}
