//! `/admin/tools`: questions administrators ask of a running server, answered by the code that
//! decides them at request time rather than by a second reading of the configuration.
//!
//! *Who may call this?* asks the catalog's [`Catalog::who_may_call`], the rule choice every
//! protected API authorizes with. Every registry role may use it: it shows what the registry's
//! pages already show.

use askama::Template;
use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use gatehouse_core::Error;
use gatehouse_core::access::{ScopeRule, USERACCOUNT};
use gatehouse_core::entry::Catalog;
use gatehouse_core::gateway::Route;
use gatehouse_core::path::CanonicalPath;
use gatehouse_core::user::Permission;
use serde::Deserialize;

use super::{ConsoleAdmin, Frame};
use crate::error::PageError;
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/tools", get(index))
        .route("/admin/tools/access", get(access))
}

#[derive(Template)]
#[template(path = "console/tools.html")]
struct ToolsPage {
    frame: Frame,
}

/// `GET /admin/tools`
pub async fn index(
    admin: ConsoleAdmin,
    State(state): State<AppState>,
) -> Result<Response, PageError> {
    let html = ToolsPage {
        frame: admin.frame(&state, "tools"),
    }
    .render();
    Ok(admin.page(&state, StatusCode::OK, html))
}

/// The question of *who may call this?*, as the form asks it.
#[derive(Deserialize, Default)]
pub struct AccessQuery {
    #[serde(default)]
    method: String,
    #[serde(default)]
    path: String,
}

/// The answer: what decides the request, as the protected APIs decide it.
struct AccessAnswer {
    rule: Option<ScopeRule>,
    scopes: Vec<String>,
    /// Whether `useraccount` is what is needed, so no other scope would do.
    useraccount_needed: bool,
    /// The audience a token must have been issued for: the route's, or this server's issuer.
    audience: String,
    route: Option<Route>,
    /// Where the route sends this path.
    upstream_url: Option<String>,
}

#[derive(Template)]
#[template(path = "console/tools_access.html")]
struct AccessPage {
    frame: Frame,
    method: String,
    path: String,
    /// Why the question cannot be answered: a method or path the server refuses.
    refused: Option<String>,
    answer: Option<AccessAnswer>,
    useraccount: &'static str,
}

/// `GET /admin/tools/access`: the form, and with a method and path, its answer.
pub async fn access(
    admin: ConsoleAdmin,
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, PageError> {
    admin.registry.require(Permission::ReadRegistry)?;
    let query: AccessQuery =
        crate::pages::form(raw.unwrap_or_default().as_bytes()).unwrap_or_default();
    let method = query.method.trim().to_ascii_uppercase();
    let path = query.path.trim().to_owned();
    let (refused, answer) = if path.is_empty() {
        (None, None)
    } else {
        let catalog = admin.registry.catalog().await?;
        match answer(&catalog, &method, &path, state.services.tokens.issuer()) {
            Ok(answer) => (None, Some(answer)),
            Err(why) => (Some(why), None),
        }
    };
    let html = AccessPage {
        frame: admin.frame(&state, "tools"),
        method: if method.is_empty() {
            "GET".into()
        } else {
            method
        },
        path,
        refused,
        answer,
        useraccount: USERACCOUNT,
    }
    .render();
    Ok(admin.page(&state, StatusCode::OK, html))
}

fn answer(
    catalog: &Catalog,
    method: &str,
    raw_path: &str,
    issuer: &str,
) -> Result<AccessAnswer, String> {
    // Rules name methods in upper case, as requests do: anything else could never match.
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err("The method must be an HTTP method such as GET or POST.".into());
    }
    // The server reads the path as it arrives, still percent-encoded, and refuses any it
    // cannot read one way only before a rule runs; so does this answer.
    let path = CanonicalPath::parse(raw_path).map_err(|error| {
        let why = match error {
            Error::InvalidRequest(why) => why,
            other => other.to_string(),
        };
        format!("The server refuses this path before any rule runs: {why}.")
    })?;
    let policy = catalog.who_may_call(method, &path);
    Ok(AccessAnswer {
        rule: policy.rule.cloned(),
        scopes: policy.scopes.to_vec(),
        useraccount_needed: policy.scopes.iter().any(|s| s == USERACCOUNT),
        audience: policy
            .route
            .and_then(|route| route.audience.clone())
            .unwrap_or_else(|| issuer.to_owned()),
        upstream_url: policy
            .route
            .and_then(|route| route.upstream_url(&path, None)),
        route: policy.route.cloned(),
    })
}
