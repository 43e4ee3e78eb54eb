//! `/admin/keys`: the signing keys, where each stands in its rotation, and retiring one after a
//! compromise (after a confirmation), as the admin API's `keys/{kid}/retire` does.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use gatehouse_core::Error;
use gatehouse_core::user::Permission;

use super::{ConfirmPage, Confirmation, ConsoleAdmin, Flash, Frame, redirect_with};
use crate::error::PageError;
use crate::extract::CsrfForm;
use crate::state::AppState;
use crate::views::KeyView;

#[derive(Template)]
#[template(path = "console/keys.html")]
struct KeysPage {
    frame: Frame,
    keys: Vec<KeyView>,
}

/// `GET /admin/keys`
pub async fn list(
    admin: ConsoleAdmin,
    State(state): State<AppState>,
) -> Result<Response, PageError> {
    let now = state.services.tokens.clock().now();
    let html = KeysPage {
        frame: admin.frame(&state, "keys"),
        keys: KeyView::list(&state.services.tokens.key_ring(), now),
    }
    .render();
    Ok(admin.page(&state, StatusCode::OK, html))
}

/// `GET /admin/keys/{kid}/retire`
pub async fn confirm_retirement(
    admin: ConsoleAdmin,
    State(state): State<AppState>,
    Path(kid): Path<String>,
) -> Result<Response, PageError> {
    let now = state.services.tokens.clock().now();
    let key = KeyView::list(&state.services.tokens.key_ring(), now)
        .into_iter()
        .find(|key| key.kid == kid)
        .ok_or_else(|| Error::NotFound(format!("signing key {kid:?}")))?;
    let html = ConfirmPage {
        frame: admin.frame(&state, "keys"),
        title: format!("Retire the key {}?", key.kid),
        message: format!(
            "It leaves the JWKS at once, on every instance, and every token it signed is refused \
             from now on.{} Do this when the key may have leaked.",
            if key.state == "signing" {
                " A new key of its algorithm takes its place and signs at once."
            } else {
                ""
            }
        ),
        action: format!("/admin/keys/{}/retire", key.kid),
        button: "Retire key",
        cancel: "/admin/keys".into(),
        grace: None,
    }
    .render();
    Ok(admin.page(&state, StatusCode::OK, html))
}

/// `POST /admin/keys/{kid}/retire`
pub async fn retire(
    admin: ConsoleAdmin,
    State(state): State<AppState>,
    Path(kid): Path<String>,
    _: CsrfForm<Confirmation>,
) -> Result<Response, PageError> {
    admin.registry.require(Permission::ManageSigningKeys)?;
    let replacement = state
        .services
        .tokens
        .retire_key(&kid, admin.registry.actor())
        .await?;
    let text = match replacement {
        Some(new) => format!("Key {kid} retired; key {new} signs in its place."),
        None => format!("Key {kid} retired."),
    };
    Ok(redirect_with(&state, "/admin/keys", &Flash::success(text)))
}
