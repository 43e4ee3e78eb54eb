//! `/admin/tools`: questions administrators ask of a running server, answered by the code that
//! decides them at request time rather than by a second reading of the configuration.
//!
//! *Who may call this?* asks the catalog's [`Catalog::who_may_call`], the rule choice every
//! protected API authorizes with. *Why was this token refused?* asks `Federation::inspect`,
//! which runs the validation's checks to the end; the token comes in a form's body, never a
//! URL, and goes nowhere else: the page shows neither it nor anything secret derived from it.
//! Every registry role may use both: they show what the registry's pages and the token's own
//! claims already tell. *Test this alias* asks `OutboundClient::probe`, which makes a call
//! through a connection alias as the outbound proxy does and reports its steps; it obtains and
//! uses the alias' token, so it is for those who manage outbound OAuth.

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
use gatehouse_core::inspection::{CheckResult, TokenReport};
use gatehouse_core::path::CanonicalPath;
use gatehouse_core::user::Permission;
use gatehouse_remote::outbound::probe::{Preview, Probe, Step};
use gatehouse_remote::outbound::{OutboundError, TokenSource};
use serde::Deserialize;

use super::{ConsoleAdmin, Frame};
use crate::error::PageError;
use crate::extract::{CsrfChecked, CsrfForm};
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/tools", get(index))
        .route("/admin/tools/access", get(access))
        .route("/admin/tools/token", get(token_form).post(inspect_token))
        .route("/admin/tools/alias", get(alias_form).post(test_alias))
}

#[derive(Template)]
#[template(path = "console/tools.html")]
struct ToolsPage {
    frame: Frame,
    /// Whether the signed-in administrator may test aliases.
    may_test_aliases: bool,
}

/// `GET /admin/tools`
pub async fn index(
    admin: ConsoleAdmin,
    State(state): State<AppState>,
) -> Result<Response, PageError> {
    let html = ToolsPage {
        frame: admin.frame(&state, "tools"),
        may_test_aliases: admin.user.may(Permission::ManageOutbound),
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

/// A token inspected, as the page shows it: what it says, with times as people read them, and
/// every check.
struct ReportView {
    valid: bool,
    kind: String,
    facts: Vec<(&'static str, String)>,
    checks: Vec<CheckResult>,
    failures: usize,
}

impl ReportView {
    fn of(report: TokenReport, now: i64) -> ReportView {
        let valid = report.valid();
        let failures = report.failures().count();
        let facts = report.facts.map_or_else(Vec::new, |facts| {
            let or_dash = |value: Option<String>| value.unwrap_or_else(|| "-".into());
            vec![
                ("Subject", or_dash(facts.subject)),
                ("User", or_dash(facts.user_name)),
                ("Client", or_dash(facts.client_id)),
                ("Issuer", or_dash(facts.issuer)),
                ("Scopes", facts.scope),
                ("Audience", facts.audience.join(" ")),
                ("Issued", moment(facts.issued_at, now)),
                ("Expires", moment(facts.expires_at, now)),
            ]
        });
        ReportView {
            valid,
            failures,
            kind: report.kind,
            facts,
            checks: report.checks,
        }
    }
}

/// A Unix time, and how far it is from now.
fn moment(at: Option<i64>, now: i64) -> String {
    match at {
        None => "-".into(),
        Some(at) if at > now => format!("{at} (in {} s)", at - now),
        Some(at) => format!("{at} ({} s ago)", now - at),
    }
}

#[derive(Template)]
#[template(path = "console/tools_token.html")]
struct TokenPage {
    frame: Frame,
    report: Option<ReportView>,
}

/// `GET /admin/tools/token`
pub async fn token_form(
    admin: ConsoleAdmin,
    State(state): State<AppState>,
) -> Result<Response, PageError> {
    admin.registry.require(Permission::ReadRegistry)?;
    let html = TokenPage {
        frame: admin.frame(&state, "tools"),
        report: None,
    }
    .render();
    Ok(admin.page(&state, StatusCode::OK, html))
}

#[derive(Deserialize)]
pub struct TokenForm {
    #[serde(default)]
    token: String,
}

impl CsrfChecked for TokenForm {
    const PURPOSE: &'static str = super::FORM_PURPOSE;
}

/// `POST /admin/tools/token`: the report on the posted token. It changes nothing, so it is
/// the answer itself rather than a redirect, which would have to carry the token along.
pub async fn inspect_token(
    admin: ConsoleAdmin,
    State(state): State<AppState>,
    CsrfForm { form, .. }: CsrfForm<TokenForm>,
) -> Result<Response, PageError> {
    admin.registry.require(Permission::ReadRegistry)?;
    // Pasted as an Authorization header's value, it still is the token.
    let token = form.token.trim();
    let token = ["Bearer ", "DPoP "]
        .iter()
        .find_map(|scheme| {
            token
                .get(..scheme.len())
                .filter(|prefix| prefix.eq_ignore_ascii_case(scheme))
                .map(|_| token[scheme.len()..].trim())
        })
        .unwrap_or(token);
    let report = if token.is_empty() {
        None
    } else {
        let now = state.services.tokens.clock().now();
        let report = state.services.federation.inspect(token).await?;
        Some(ReportView::of(report, now))
    };
    let html = TokenPage {
        frame: admin.frame(&state, "tools"),
        report,
    }
    .render();
    Ok(admin.page(&state, StatusCode::OK, html))
}

/// One step of an alias test as the page shows it.
struct StepView {
    name: &'static str,
    ok: bool,
    text: String,
    milliseconds: u128,
}

impl StepView {
    fn of(step: &Step) -> StepView {
        let (name, elapsed, outcome) = match step {
            Step::Token { elapsed, outcome } => (
                "Token",
                elapsed,
                outcome.as_ref().map(|source| {
                    match source {
                        TokenSource::Memory => "held in memory since an earlier call",
                        TokenSource::Stored => "read from the database",
                        TokenSource::Refreshed => "refreshed at the provider",
                        TokenSource::Obtained => "newly obtained from the provider",
                        TokenSource::StoredAfterFailedRenewal => {
                            "read from the database: its renewal failed, and it has not expired"
                        }
                    }
                    .to_owned()
                }),
            ),
            Step::Upstream { elapsed, outcome } => (
                "API",
                elapsed,
                outcome
                    .as_ref()
                    .map(|status| format!("answered HTTP {status}")),
            ),
        };
        let (ok, text) = match outcome {
            Ok(text) => (true, text),
            Err(why) => (false, why.clone()),
        };
        StepView {
            name,
            ok,
            text,
            milliseconds: elapsed.as_millis(),
        }
    }
}

/// An alias test as the page shows it.
struct ProbeView {
    url: String,
    steps: Vec<StepView>,
    reached: bool,
    /// The API's answer, with its body's size and preview in words.
    answer: Vec<(&'static str, String)>,
    preview: Option<String>,
}

impl ProbeView {
    fn of(probe: &Probe) -> ProbeView {
        let mut answer = Vec::new();
        let mut preview = None;
        if let Some(got) = &probe.answer {
            answer.push(("Status", got.status.to_string()));
            answer.push((
                "Content type",
                got.content_type.clone().unwrap_or_else(|| "-".into()),
            ));
            let size = if got.complete {
                format!("{} bytes", got.size)
            } else {
                format!("more than {} bytes (not read further)", got.size)
            };
            answer.push(("Size", size));
            answer.push(("Body read in", format!("{} ms", got.elapsed.as_millis())));
            let shown = match &got.preview {
                Preview::Empty => "(empty)".to_owned(),
                Preview::Binary => "(not text: not shown)".to_owned(),
                Preview::Text { text, cut } => {
                    preview = Some(text.clone());
                    if *cut { "the start, below" } else { "below" }.to_owned()
                }
            };
            answer.push(("Body", shown));
        }
        ProbeView {
            url: probe.url.clone(),
            steps: probe.steps.iter().map(StepView::of).collect(),
            reached: probe.reached(),
            answer,
            preview,
        }
    }
}

#[derive(Template)]
#[template(path = "console/tools_alias.html")]
struct AliasPage {
    frame: Frame,
    /// Each alias: its name and base URL.
    aliases: Vec<(String, String)>,
    alias: String,
    path: String,
    /// Why the test could not start: a path that leaves the alias' base URL, say.
    refused: Option<String>,
    probe: Option<ProbeView>,
}

impl AliasPage {
    async fn render_for(
        admin: &ConsoleAdmin,
        state: &AppState,
        alias: String,
        path: String,
        refused: Option<String>,
        probe: Option<ProbeView>,
    ) -> Result<Response, PageError> {
        let catalog = admin.registry.catalog().await?;
        let html = AliasPage {
            frame: admin.frame(state, "tools"),
            aliases: catalog
                .aliases
                .iter()
                .map(|a| (a.name.clone(), a.base_url.clone()))
                .collect(),
            alias,
            path,
            refused,
            probe,
        }
        .render();
        Ok(admin.page(state, StatusCode::OK, html))
    }
}

/// `GET /admin/tools/alias`
pub async fn alias_form(
    admin: ConsoleAdmin,
    State(state): State<AppState>,
) -> Result<Response, PageError> {
    admin.registry.require(Permission::ManageOutbound)?;
    AliasPage::render_for(&admin, &state, String::new(), "/".into(), None, None).await
}

#[derive(Deserialize)]
pub struct AliasForm {
    #[serde(default)]
    alias: String,
    #[serde(default)]
    path: String,
}

impl CsrfChecked for AliasForm {
    const PURPOSE: &'static str = super::FORM_PURPOSE;
}

/// `POST /admin/tools/alias`: the test's report. A `POST`, as it obtains tokens and calls out;
/// the report is the answer itself, since a redirect would have to call again to show it.
pub async fn test_alias(
    admin: ConsoleAdmin,
    State(state): State<AppState>,
    CsrfForm { form, .. }: CsrfForm<AliasForm>,
) -> Result<Response, PageError> {
    let path = form.path.trim().to_owned();
    let (refused, probe) = match state
        .services
        .outbound
        .probe(&admin.registry, &form.alias, &path)
        .await
    {
        Ok(probe) => (None, Some(ProbeView::of(&probe))),
        Err(OutboundError::Domain(error)) => return Err(error.into()),
        Err(other) => (Some(other.to_string()), None),
    };
    AliasPage::render_for(&admin, &state, form.alias, path, refused, probe).await
}
