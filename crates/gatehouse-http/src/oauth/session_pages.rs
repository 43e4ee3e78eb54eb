//! The user's own pages: the account page (consents given, and withdrawing them) and signing
//! out (OpenID Connect RP-Initiated Logout 1.0, with a confirmation so no other site can sign a
//! user out).

use askama::Template;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use gatehouse_core::Error;
use gatehouse_core::session::{SignOutRequest, SignOutReturn};
use serde::Deserialize;

use super::authorize::login_page;
use crate::error::PageError;
use crate::extract::{CsrfChecked, CsrfForm};
use crate::pages::{self, Continuation, SESSION_COOKIE, SignOut, cookie, page, set_cookie};
use crate::state::AppState;

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    user_name: String,
    /// (application name, scopes, client_id)
    consents: Vec<(String, String, String)>,
    csrf: String,
    logout_csrf: String,
    /// The single-use ticket a sign-out needs, as on the confirmation page.
    logout_form: String,
}

/// `GET /account`
pub async fn account(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    let session_cookie = cookie(&state, &headers, SESSION_COOKIE)
        .unwrap_or_default()
        .to_owned();
    let Some((_, user)) = state.services.sessions.find(&session_cookie).await? else {
        let login = login_page(&state, &headers, None, Continuation::Account, "", None);
        return Ok(login);
    };
    let consents = state.services.sessions.consents(&user).await?;
    let mut rows = Vec::new();
    for consent in consents {
        let name = match state.services.store.find_client(&consent.client_id).await {
            Ok(Some(client)) => client.name,
            _ => consent.client_id.clone(),
        };
        rows.push((name, consent.scope, consent.client_id));
    }
    let html = AccountPage {
        user_name: user.display_name,
        consents: rows,
        csrf: CsrfForm::<WithdrawForm>::token(&state, &session_cookie),
        logout_csrf: CsrfForm::<LogoutParams>::token(&state, &session_cookie),
        logout_form: pages::seal(&state, &SignOut),
    }
    .render();
    Ok(page(StatusCode::OK, html, None, None))
}

#[derive(Deserialize)]
pub struct WithdrawForm {
    client_id: String,
}

impl CsrfChecked for WithdrawForm {
    const PURPOSE: &'static str = "account";
}

/// `POST /account/withdraw`: forgets a consent and revokes the application's tokens for the
/// user.
pub async fn withdraw(
    State(state): State<AppState>,
    CsrfForm {
        form,
        cookie: session_cookie,
    }: CsrfForm<WithdrawForm>,
) -> Result<Response, PageError> {
    let Some((_, user)) = state.services.sessions.find(&session_cookie).await? else {
        return Err(PageError::Unverified);
    };
    state
        .services
        .sessions
        .withdraw_consent(&state.services.tokens, &user, &form.client_id)
        .await
        .map_err(PageError::Internal)?;
    Ok(pages::redirect("/account"))
}

#[derive(Template)]
#[template(path = "logout.html")]
struct LogoutPage<'a> {
    csrf: String,
    form: String,
    client_id: &'a str,
    post_logout_redirect_uri: &'a str,
    state: &'a str,
}

#[derive(Deserialize, Default)]
pub struct LogoutParams {
    #[serde(default)]
    client_id: String,
    #[serde(default)]
    post_logout_redirect_uri: String,
    #[serde(default)]
    state: String,
    #[serde(default)]
    id_token_hint: String,
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    form: String,
}

impl CsrfChecked for LogoutParams {
    const PURPOSE: &'static str = "logout";
}

impl LogoutParams {
    /// Where this sign-out returns to; refused when its parameters contradict each other or
    /// its `id_token_hint` is not ours.
    async fn resolve(&self, state: &AppState) -> Result<SignOutReturn, PageError> {
        SignOutRequest {
            client_id: self.client_id.clone(),
            post_logout_redirect_uri: self.post_logout_redirect_uri.clone(),
            id_token_hint: self.id_token_hint.clone(),
        }
        .resolve(&state.services.tokens)
        .await
        .map_err(|error| match error {
            Error::InvalidRequest(_) => error.into(),
            other => PageError::Internal(other),
        })
    }
}

/// `GET /oauth/logout` (the `end_session_endpoint`): asks the user to confirm.
pub async fn logout_get(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, PageError> {
    let params: LogoutParams =
        pages::form(query.unwrap_or_default().as_bytes()).unwrap_or_default();
    let target = params.resolve(&state).await?;
    let Some(session_cookie) = cookie(&state, &headers, SESSION_COOKIE) else {
        return Ok(after_logout(&target, &params.state));
    };
    let html = LogoutPage {
        csrf: CsrfForm::<LogoutParams>::token(&state, session_cookie),
        form: pages::seal(&state, &SignOut),
        client_id: &target.client_id,
        post_logout_redirect_uri: &params.post_logout_redirect_uri,
        state: &params.state,
    }
    .render();
    // The confirmation form ends in a redirect to the application, which the page's CSP
    // `form-action` must allow (browsers enforce it on redirects after a form submission).
    Ok(page(
        StatusCode::OK,
        html,
        target.redirect_uri.as_deref(),
        None,
    ))
}

/// `POST /oauth/logout`: ends the session.
pub async fn logout_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, PageError> {
    let params: LogoutParams = pages::form(&body).unwrap_or_default();
    let target = params.resolve(&state).await?;
    // Without a session there is nothing to end, and so nothing for a forged form to do.
    if let Some(session_cookie) = cookie(&state, &headers, SESSION_COOKIE) {
        CsrfForm::<LogoutParams>::check(&state, session_cookie, &params.csrf)?;
        match pages::redeem::<SignOut>(&state, &params.form).await {
            Ok(SignOut) => {}
            // A signed-in user's sign-out without its confirmation is no expired request.
            Err(PageError::Expired) => return Err(PageError::Unverified),
            Err(other) => return Err(other),
        }
        if let Some(ended) = state.services.sessions.end(session_cookie).await? {
            // The user is signed out whatever the applications hear; their tokens are queued,
            // never waited for.
            if let Err(error) = state.services.logout.session_ended(&ended).await {
                tracing::error!(%error, "back-channel logout tokens were not sent");
            }
        }
    }
    let mut response = after_logout(&target, &params.state);
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(&state, SESSION_COOKIE, "", Some(0)),
    );
    Ok(response)
}

/// Back to the application when it named one of its registered redirect URIs, otherwise a
/// page.
fn after_logout(target: &SignOutReturn, state: &str) -> Response {
    match target.location(state) {
        Some(location) => pages::redirect(&location),
        None => pages::notice("Signed out", "You are signed out of Gatehouse."),
    }
}
