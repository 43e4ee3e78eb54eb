//! `/admin/keys`: the signing keys, where each stands in its rotation and when the schedule
//! rotates each algorithm next, and retiring one after a compromise (after a confirmation), as
//! the admin API's `keys/{kid}/retire` does.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use gatehouse_core::Error;
use gatehouse_core::keys::{KeyRing, SigningAlgorithm};
use gatehouse_core::user::Permission;

use super::{ConfirmPage, Confirmation, ConsoleAdmin, Flash, Frame, redirect_with};
use crate::error::PageError;
use crate::extract::CsrfForm;
use crate::state::AppState;
use crate::views::{KeyView, utc};

#[derive(Template)]
#[template(path = "console/keys.html")]
struct KeysPage {
    frame: Frame,
    keys: Vec<KeyView>,
    /// How often the keys rotate, in words; `None` when only people rotate them.
    interval: Option<String>,
    schedule: Vec<Line>,
}

/// Where one algorithm's line of keys stands.
struct Line {
    alg: &'static str,
    /// The key that signs now, and since when.
    signing: Option<(String, String)>,
    /// When the next scheduled rotation is due, in words.
    due: String,
}

/// Each algorithm of `ring` with its signing key and its next scheduled rotation.
fn schedule(ring: &KeyRing, interval: Option<i64>, now: i64) -> Vec<Line> {
    let mut algorithms: Vec<SigningAlgorithm> = ring.keys().iter().map(|key| key.alg).collect();
    algorithms.sort_by_key(|alg| alg.as_str());
    algorithms.dedup();
    algorithms
        .into_iter()
        .map(|alg| Line {
            alg: alg.as_str(),
            signing: ring
                .signing_key(alg, now)
                .map(|key| (key.kid.clone(), utc(key.activates_at))),
            due: match interval.and_then(|interval| ring.rotation_due(alg, interval)) {
                None => "manual only".into(),
                // The upkeep rotates it when it next looks at the keys.
                Some(due) if due <= now => "now".into(),
                Some(due) => utc(due),
            },
        })
        .collect()
}

/// A number of seconds in the largest unit that divides it, e.g. `30 days`.
fn duration(seconds: i64) -> String {
    let (count, unit) = [(86_400, "day"), (3_600, "hour"), (60, "minute")]
        .into_iter()
        .find(|(unit, _)| seconds % unit == 0)
        .map_or((seconds, "second"), |(size, unit)| (seconds / size, unit));
    format!("{count} {unit}{}", if count == 1 { "" } else { "s" })
}

/// `GET /admin/keys`
pub async fn list(
    admin: ConsoleAdmin,
    State(state): State<AppState>,
) -> Result<Response, PageError> {
    let now = state.services.tokens.clock().now();
    let ring = state.services.tokens.key_ring();
    let interval = state.settings.key_rotation_interval;
    let html = KeysPage {
        frame: admin.frame(&state, "keys"),
        keys: KeyView::list(&ring, now),
        interval: interval.map(duration),
        schedule: schedule(&ring, interval, now),
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

#[cfg(test)]
mod tests {
    use super::duration;

    #[test]
    fn intervals_read_in_their_largest_whole_unit() {
        assert_eq!(duration(30 * 86_400), "30 days");
        assert_eq!(duration(86_400), "1 day");
        assert_eq!(duration(7_200), "2 hours");
        assert_eq!(duration(90 * 60), "90 minutes");
        assert_eq!(duration(3_601), "3601 seconds");
    }
}
