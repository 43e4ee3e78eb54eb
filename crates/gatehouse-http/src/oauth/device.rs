//! The device authorization grant's endpoints (RFC 8628): `POST /oauth/device_authorization`,
//! where a device starts, and `/device`, where its user enters the code and answers. The device
//! then polls the token endpoint (`DeviceCodeGrant`).

use askama::Template;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use gatehouse_core::device;
use gatehouse_core::scope::ScopeSet;
use gatehouse_core::user::User;
use serde::{Deserialize, Serialize};

use super::authorize::{current_session, login_page};
use super::{authenticate, no_store_json};
use crate::error::{OAuthError, PageError};
use crate::extract::{CsrfChecked, CsrfForm, OAuthForm};
use crate::pages::{self, Continuation, FormPayload, SESSION_COOKIE, cookie, page};
use crate::state::AppState;

/// `POST /oauth/device_authorization`: the client authenticates as at the token endpoint (a
/// public client names itself) and gets a device code and a user code.
pub async fn start(
    State(state): State<AppState>,
    OAuthForm {
        params,
        resources,
        headers,
    }: OAuthForm,
) -> Result<Response, OAuthError> {
    let client = authenticate(&state, &headers, &params).await?;
    let started = device::start(
        state.services.store.as_ref(),
        &state.services.tokens,
        &client,
        params.get("scope").map(String::as_str),
        &resources,
        state.services.tokens.clock().now(),
    )
    .await?;
    no_store_json(StatusCode::OK, &started)
}

#[derive(Template)]
#[template(path = "device.html")]
struct EntryPage<'a> {
    user_name: &'a str,
    typed: &'a str,
    error: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "device_consent.html")]
struct DeviceConsentPage<'a> {
    app_name: &'a str,
    user_name: &'a str,
    user_code: String,
    scopes: Vec<(String, String)>,
    ticket: String,
    csrf: String,
}

/// The authorization a consent form answers, sealed in it.
#[derive(Serialize, Deserialize)]
pub struct DeviceTicket {
    user_code: String,
    expires_at: i64,
}

impl FormPayload for DeviceTicket {
    const PURPOSE: &'static str = "device";

    fn expires_at(&self) -> Option<i64> {
        Some(self.expires_at)
    }
}

/// `GET /device[?user_code=…]`: the code entry form, or, for a code that waits, what the device
/// asks for. Signing in comes first.
pub async fn page_get(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, PageError> {
    let (params, _) = pages::oauth_params(query.unwrap_or_default().as_bytes())?;
    let typed = params.get("user_code").cloned().unwrap_or_default();
    let Some((user, _)) = current_session(&state, &headers).await? else {
        let continuation = Continuation::Device { user_code: typed };
        return Ok(login_page(&state, &headers, None, continuation, "", None));
    };
    if typed.is_empty() {
        return Ok(entry_page(&user, "", None));
    }
    let now = state.services.tokens.clock().now();
    let waiting = device::pending(state.services.store.as_ref(), &typed, now).await?;
    let client = match &waiting {
        Some(record) => (state.services.store)
            .find_client(&record.client_id)
            .await
            .map_err(|e| PageError::Internal(e.into()))?
            .filter(|client| client.active),
        None => None,
    };
    let (Some(record), Some(client)) = (waiting, client) else {
        let error = "That code is unknown, expired or answered already. Check the code your \
                     device shows.";
        return Ok(entry_page(&user, &typed, Some(error)));
    };
    let catalog = state.services.registry.catalog().await?;
    let scopes = catalog.describe(&ScopeSet::parse(&record.scope)?);
    let session = cookie(&state, &headers, SESSION_COOKIE).unwrap_or_default();
    let html = DeviceConsentPage {
        app_name: &client.name,
        user_name: &user.display_name,
        user_code: device::display_user_code(&record.user_code),
        scopes,
        ticket: pages::seal(
            &state,
            &DeviceTicket {
                user_code: record.user_code,
                expires_at: record.expires_at,
            },
        ),
        csrf: CsrfForm::<DeviceForm>::token(&state, session),
    }
    .render();
    Ok(page(StatusCode::OK, html, None, None))
}

/// The code entry form; with an error, the code typed is shown again beside it.
fn entry_page(user: &User, typed: &str, error: Option<&str>) -> Response {
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let html = EntryPage {
        user_name: &user.display_name,
        typed,
        error,
    }
    .render();
    page(status, html, None, None)
}

#[derive(Deserialize)]
pub struct DeviceForm {
    ticket: String,
    decision: String,
}

impl CsrfChecked for DeviceForm {
    const PURPOSE: &'static str = "device";
}

/// `POST /device`: the signed-in user's answer; the device learns it at its next poll.
pub async fn answer(
    State(state): State<AppState>,
    headers: HeaderMap,
    CsrfForm { form, .. }: CsrfForm<DeviceForm>,
) -> Result<Response, PageError> {
    let ticket: DeviceTicket = pages::redeem(&state, &form.ticket).await?;
    let Some((user, session)) = current_session(&state, &headers).await? else {
        return Err(PageError::Expired);
    };
    let auth_time = session.auth_time;
    let allow = form.decision == "allow";
    let now = state.services.tokens.clock().now();
    let store = state.services.store.as_ref();
    if !device::answer(store, &ticket.user_code, &user, auth_time, allow, now).await? {
        return Err(PageError::Expired);
    }
    Ok(if allow {
        pages::notice(
            "Device connected",
            "You allowed the device. Go back to it: it continues on its own.",
        )
    } else {
        pages::notice(
            "Device denied",
            "You denied the device. It has been told and gets no access.",
        )
    })
}
