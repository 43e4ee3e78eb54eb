//! `/admin`: the dashboard — how many applications, users and tokens there are, the last
//! hour's token requests and errors per grant (this instance's, from its metrics), and whether
//! the database and the signing keys are in order.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use gatehouse_core::store::ActiveTokens;

use super::{ConsoleAdmin, Frame};
use crate::error::PageError;
use crate::metrics::GrantFigures;
use crate::state::AppState;
use crate::views::KeyView;

/// The registry's size, read only while the database answers.
struct Counts {
    applications: usize,
    users: usize,
    tokens: ActiveTokens,
}

#[derive(Template)]
#[template(path = "console/dashboard.html")]
struct DashboardPage {
    frame: Frame,
    counts: Option<Counts>,
    keys: Vec<KeyView>,
    /// The last hour's token requests per grant.
    token_requests: Vec<GrantFigures>,
    /// Whether some key signs: without one, no token can be issued.
    keys_healthy: bool,
}

/// `GET /admin`
pub async fn show(
    admin: ConsoleAdmin,
    State(state): State<AppState>,
) -> Result<Response, PageError> {
    // The readiness check's question; its failure is what the page reports, not an error.
    let counts = match state.services.store.ping().await {
        Ok(()) => {
            let now = state.services.tokens.clock().now();
            Some(Counts {
                applications: admin.registry.list_apps().await?.len(),
                users: admin.registry.list_users().await?.len(),
                tokens: state
                    .services
                    .store
                    .count_active_tokens(now)
                    .await
                    .map_err(gatehouse_core::Error::from)?,
            })
        }
        Err(error) => {
            tracing::warn!(%error, "database not ready");
            None
        }
    };
    let now = state.services.tokens.clock().now();
    let keys = KeyView::list(&state.services.tokens.key_ring(), now);
    let keys_healthy = keys.iter().any(|key| key.state == "signing");
    let html = DashboardPage {
        frame: admin.frame(&state, "dashboard"),
        counts,
        keys,
        token_requests: state.metrics.recent_token_requests(),
        keys_healthy,
    }
    .render();
    Ok(admin.page(&state, StatusCode::OK, html))
}
