//! `/admin/users/{user_name}/tokens` and `/admin/applications/{client_id}/tokens`: the tokens
//! and sessions a user or an application holds, each revoked after a confirmation, or all of
//! them at once. Who may see and end them, and what a revocation reaches, is
//! `gatehouse_core::held`'s business.

use askama::Template;
use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use gatehouse_core::Error;
use gatehouse_core::held::{HELD_LIMIT, Held, HeldKind, Holder, Holdings};

use super::form::form_message;
use super::{Confirmation, ConsoleAdmin, Flash, Frame, ListQuery, Paged, redirect_with};
use crate::error::PageError;
use crate::extract::CsrfForm;
use crate::state::AppState;
use crate::views::utc;

/// The pages of the tokens of users and of applications.
pub fn routes() -> Router<AppState> {
    Router::new()
        .merge(holder_routes::<OfUser>())
        .merge(holder_routes::<OfApplication>())
}

fn holder_routes<T: Holders>() -> Router<AppState> {
    let base = format!("{}/tokens", T::ROUTE);
    Router::new()
        .route(&base, get(list::<T>))
        .route(
            &format!("{base}/revoke"),
            get(confirm_revocation::<T>).post(revoke::<T>),
        )
        .route(
            &format!("{base}/revoke-all"),
            get(confirm_revoking_all::<T>).post(revoke_all::<T>),
        )
}

/// Whose tokens a set of pages shows.
trait Holders: Send + Sync + 'static {
    /// The route of the holder's record, its one parameter the holder's name; the same as the
    /// record's own routes use.
    const ROUTE: &'static str;
    /// The console's section, `/admin/{SECTION}/{name}` the record's page.
    const SECTION: &'static str;
    const TITLE: &'static str;
    const USERS: bool;
}

struct OfUser;

impl Holders for OfUser {
    const ROUTE: &'static str = "/admin/users/{user_name}";
    const SECTION: &'static str = "users";
    const TITLE: &'static str = "Users";
    const USERS: bool = true;
}

struct OfApplication;

impl Holders for OfApplication {
    const ROUTE: &'static str = "/admin/applications/{client_id}";
    const SECTION: &'static str = "applications";
    const TITLE: &'static str = "Applications";
    const USERS: bool = false;
}

/// The holdings `name` names, refused unless the administrator may change the holder.
async fn holdings<T: Holders>(
    admin: &ConsoleAdmin,
    state: &AppState,
    name: &str,
) -> Result<Holdings, Error> {
    let tokens = &state.services.tokens;
    if T::USERS {
        Holdings::of_user(&admin.registry, tokens, name).await
    } else {
        Holdings::of_application(&admin.registry, tokens, name).await
    }
}

/// The holder's name as the pages show it, and the path of their tokens page.
fn named<T: Holders>(holdings: &Holdings) -> (String, String) {
    let (name, key) = match holdings.holder() {
        Holder::User(user) => (user.user_name.clone(), user.user_name.clone()),
        Holder::Application(client) => (client.name.clone(), client.client_id.clone()),
    };
    (name, format!("/admin/{}/{key}/tokens", T::SECTION))
}

/// One row of the table.
struct Row {
    kind: &'static str,
    /// The application a user's token was issued to, or the user an application's acts for.
    counterpart: String,
    counterpart_link: Option<String>,
    scope: String,
    issued: String,
    expires: String,
    revoke: String,
}

fn row<T: Holders>(held: Held, tokens_page: &str) -> Row {
    let (counterpart, counterpart_link) = if T::USERS {
        match &held.client_id {
            Some(client_id) => (
                client_id.clone(),
                Some(format!("/admin/applications/{client_id}")),
            ),
            None => ("—".into(), None),
        }
    } else {
        match &held.user_name {
            Some(user_name) => (user_name.clone(), Some(format!("/admin/users/{user_name}"))),
            None => ("the application itself".into(), None),
        }
    };
    Row {
        kind: held.kind.label(),
        counterpart,
        counterpart_link,
        scope: if held.scope.is_empty() {
            "—".into()
        } else {
            held.scope.clone()
        },
        issued: utc(held.issued_at),
        expires: utc(held.expires_at),
        revoke: revocation_path(tokens_page, &held.handle),
    }
}

fn revocation_path(tokens_page: &str, handle: &str) -> String {
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("handle", handle)
        .finish();
    format!("{tokens_page}/revoke?{query}")
}

#[derive(Template)]
#[template(path = "console/tokens.html")]
struct TokensPage {
    frame: Frame,
    section: &'static str,
    section_title: &'static str,
    users: bool,
    name: String,
    record: String,
    base: String,
    rows: Vec<Row>,
    truncated: bool,
    limit: usize,
    paged: Paged,
}

/// `GET …/tokens?page=…`: what is in service, newest first.
async fn list<T: Holders>(
    admin: ConsoleAdmin,
    State(state): State<AppState>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, PageError> {
    let holdings = holdings::<T>(&admin, &state, &name).await?;
    let (name, base) = named::<T>(&holdings);
    let listing = holdings.list().await?;
    let rows: Vec<Row> = listing
        .held
        .into_iter()
        .map(|held| row::<T>(held, &base))
        .collect();
    let (rows, paged) = Paged::of(rows, &ListQuery::read(raw), &base);
    let html = TokensPage {
        frame: admin.frame(&state, T::SECTION),
        section: T::SECTION,
        section_title: T::TITLE,
        users: T::USERS,
        record: base.trim_end_matches("/tokens").to_owned(),
        name,
        base,
        rows,
        truncated: listing.truncated,
        limit: HELD_LIMIT,
        paged,
    }
    .render();
    Ok(admin.page(&state, StatusCode::OK, html))
}

/// The handle a revocation's query names.
fn handle(raw: Option<String>) -> String {
    form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .find(|(name, _)| name == "handle")
        .map(|(_, value)| value.into_owned())
        .unwrap_or_default()
}

/// What ends with a token or session, for the confirmation and the flash.
fn consequence(held: &Held) -> &'static str {
    match held.kind {
        HeldKind::AccessToken | HeldKind::JwtAccessToken => "It stops working at once.",
        HeldKind::RefreshToken => {
            "It stops working at once, and so do the access tokens issued with it: its \
             application gets no new ones without the user."
        }
        HeldKind::Session => {
            "The browser signed in with it is signed out, and the applications that listen \
             for sign-outs are told."
        }
    }
}

/// `GET …/tokens/revoke?handle=…`
async fn confirm_revocation<T: Holders>(
    admin: ConsoleAdmin,
    State(state): State<AppState>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, PageError> {
    let holdings = holdings::<T>(&admin, &state, &name).await?;
    let (name, base) = named::<T>(&holdings);
    let handle = handle(raw);
    let held = holdings.find(&handle).await?;
    let issued = match &held.client_id {
        Some(client_id) => format!("issued to {client_id} on {}", utc(held.issued_at)),
        None => format!("started on {}", utc(held.issued_at)),
    };
    let html = super::ConfirmPage {
        frame: admin.frame(&state, T::SECTION),
        title: format!("Revoke this {} of {name}?", held.kind.label()),
        message: format!(
            "The {} {issued}, valid until {}. {}",
            held.kind.label(),
            utc(held.expires_at),
            consequence(&held)
        ),
        action: revocation_path(&base, &handle),
        button: "Revoke",
        cancel: base,
        grace: None,
    }
    .render();
    Ok(admin.page(&state, StatusCode::OK, html))
}

/// `POST …/tokens/revoke?handle=…`
async fn revoke<T: Holders>(
    admin: ConsoleAdmin,
    State(state): State<AppState>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
    _: CsrfForm<Confirmation>,
) -> Result<Response, PageError> {
    let holdings = holdings::<T>(&admin, &state, &name).await?;
    let (_, base) = named::<T>(&holdings);
    let flash = match holdings.revoke(&handle(raw)).await {
        Ok(held) => Flash::success(format!(
            "The {} was revoked. {}",
            held.kind.label(),
            consequence(&held)
        )),
        Err(Error::NotFound(_)) => Flash::failure("That token or session is no longer stored."),
        Err(error) => Flash::failure(form_message(error)?),
    };
    Ok(redirect_with(&state, &base, &flash))
}

/// `GET …/tokens/revoke-all`
async fn confirm_revoking_all<T: Holders>(
    admin: ConsoleAdmin,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, PageError> {
    let holdings = holdings::<T>(&admin, &state, &name).await?;
    let (name, base) = named::<T>(&holdings);
    let message = if T::USERS {
        "Every login session and token of the user ends, as when their password changes: the \
         JWT access tokens issued for them too, listed or not. They may sign in again."
    } else {
        "Every access and refresh token issued to the application ends, for every user. JWT \
         access tokens it obtained for itself (client credentials) are stored nowhere and stay \
         valid until they expire."
    };
    let html = super::ConfirmPage {
        frame: admin.frame(&state, T::SECTION),
        title: format!("Revoke everything of {name}?"),
        message: message.into(),
        action: format!("{base}/revoke-all"),
        button: "Revoke everything",
        cancel: base,
        grace: None,
    }
    .render();
    Ok(admin.page(&state, StatusCode::OK, html))
}

/// `POST …/tokens/revoke-all`
async fn revoke_all<T: Holders>(
    admin: ConsoleAdmin,
    State(state): State<AppState>,
    Path(name): Path<String>,
    _: CsrfForm<Confirmation>,
) -> Result<Response, PageError> {
    let holdings = holdings::<T>(&admin, &state, &name).await?;
    let (name, base) = named::<T>(&holdings);
    let flash = match holdings.revoke_all().await {
        Ok(()) => Flash::success(format!("Everything of {name} was revoked.")),
        Err(error) => Flash::failure(form_message(error)?),
    };
    Ok(redirect_with(&state, &base, &flash))
}
