//! The administrators' console under `/admin`: server-rendered pages over the registry's use
//! cases, for users holding `admin`, `oauth_admin` or `mi_admin`.
//!
//! People sign in through Gatehouse's own login page (its throttle, its CSRF binding), and
//! every change goes through a [`Registry`] acting for the signed-in administrator, so the
//! console can do exactly what that administrator could through the admin API — roles are
//! checked and changes audited in `gatehouse-core`, not here. Every form carries the CSRF token
//! of the session (`CsrfForm`), every change ends in a `303` to a page that shows how it went
//! (a flash message, sealed in a short-lived cookie and good for one display), and the pages
//! carry the same strict headers as the login page: no script at all, one stylesheet of our own.

mod apps;
mod dashboard;
mod entries;
mod form;
mod jwt_providers;
mod keys;
mod providers;
mod record;
mod scopes;
mod tokens;
mod tools;
mod users;

use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use gatehouse_core::access::ScopeRule;
use gatehouse_core::audit::Actor;
use gatehouse_core::gateway::Route;
use gatehouse_core::outbound::{ConnectionAlias, OAuthProfile};
use gatehouse_core::registry::Registry;
use gatehouse_core::table::TableDef;
use gatehouse_core::user::{Permission, REGISTRY_ADMIN_ROLES, User};
use serde::{Deserialize, Serialize};

use crate::error::PageError;
use crate::extract::{ClientAddress, CsrfChecked, CsrfForm};
use crate::oauth::authorize::login_page;
use crate::oauth::session_pages::LogoutParams;
use crate::pages::{self, Continuation, FormPayload, SESSION_COOKIE, SignOut, cookie, set_cookie};
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin", get(dashboard::show))
        .route("/admin/applications", get(apps::list))
        .route("/admin/applications/{client_id}", get(apps::show))
        .merge(record_routes::<apps::Apps>())
        .route(
            "/admin/applications/{client_id}/rotate-secret",
            get(apps::confirm_rotation).post(apps::rotate_secret),
        )
        .route("/admin/users", get(users::list))
        .route("/admin/users/{user_name}", get(users::show))
        .merge(record_routes::<users::Users>())
        .route("/admin/users/{user_name}/lock", post(users::lock))
        .route(
            "/admin/users/{user_name}/password",
            get(users::password_form).post(users::set_password),
        )
        .route("/admin/scopes", get(scopes::list))
        .merge(record_routes::<scopes::Scopes>())
        .merge(entry_kinds!(routes))
        .route("/admin/jwt-providers", get(jwt_providers::list))
        .merge(record_routes::<jwt_providers::JwtProviders>())
        .route("/admin/providers", get(providers::list))
        .merge(record_routes::<providers::Providers>())
        .route("/admin/keys", get(keys::list))
        .route(
            "/admin/keys/{kid}/retire",
            get(keys::confirm_retirement).post(keys::retire),
        )
        .merge(tools::routes())
        .merge(tokens::routes())
}

/// The kinds of configuration entry the console shows, in the navigation's order: `routes`
/// for their pages, `sections` for the navigation's (path, title) of each.
macro_rules! entry_kinds {
    (routes) => {
        entry_kinds!(@each routes ScopeRule, Route, TableDef, OAuthProfile, ConnectionAlias)
    };
    (sections) => {
        entry_kinds!(@each sections ScopeRule, Route, TableDef, OAuthProfile, ConnectionAlias)
    };
    (@each routes $($kind:ty),*) => {
        Router::new()$(.merge(entry_routes::<$kind>()))*
    };
    (@each sections $($kind:ty),*) => {
        &[$((<$kind as entries::ConsoleEntry>::SECTION, <$kind as entries::ConsoleEntry>::TITLE)),*]
    };
}
use entry_kinds;

/// The pages of one kind of configuration entry: its list, and the record pages of its forms.
fn entry_routes<T: entries::ConsoleEntry>() -> Router<AppState> {
    Router::new()
        .route(&format!("/admin/{}", T::SECTION), get(entries::list::<T>))
        .merge(record_routes::<entries::Entries<T>>())
}

/// The pages of one kind of record edited as a form of fields, besides its list: like every
/// kind's, its form for a new one is at `/admin/new/{section}`; a record's form is at
/// `/admin/{section}/{key}`, or at `…/edit` where another page shows the record there. The
/// key's path parameter is named as its field, as the kind's other routes name it.
fn record_routes<K: record::RecordKind>() -> Router<AppState> {
    let base = format!("/admin/{}", K::SECTION);
    let at = format!("{base}/{{{}}}", K::KEY.0);
    let form = if K::FORM_IS_PAGE {
        get(record::edit::<K>).post(record::update::<K>)
    } else {
        post(record::update::<K>)
    };
    let router = Router::new()
        .route(&base, post(record::create::<K>))
        .route(&format!("/admin/new/{}", K::SECTION), get(record::new::<K>))
        .route(&at, form)
        .route(
            &format!("{at}/delete"),
            get(record::confirm_deletion::<K>).post(record::delete::<K>),
        );
    if K::FORM_IS_PAGE {
        router
    } else {
        router.route(&format!("{at}/edit"), get(record::edit::<K>))
    }
}

/// The cookie that carries a [`Flash`] to the page a change redirects to.
const FLASH_COOKIE: &str = "gh_flash";
/// How long a flash waits for the page it is for.
const FLASH_LIFETIME_SECONDS: i64 = 300;

/// How a change turned out, shown once on the page the change redirects to. It can carry a
/// client secret, which is why it travels sealed and is good for one display: reloading the
/// page, or replaying the cookie, shows nothing.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Flash {
    pub error: bool,
    pub text: String,
    /// A secret shown this once.
    pub secret: Option<String>,
}

impl FormPayload for Flash {
    const PURPOSE: &'static str = "console-flash";
}

impl Flash {
    pub fn success(text: impl Into<String>) -> Flash {
        Flash {
            error: false,
            text: text.into(),
            secret: None,
        }
    }

    pub fn failure(text: impl Into<String>) -> Flash {
        Flash {
            error: true,
            ..Flash::success(text)
        }
    }
}

/// The purpose all the console's forms share: each acts for the signed-in administrator, and
/// the server checks what they may do whichever form they use.
const FORM_PURPOSE: &str = "console";

/// A form that carries nothing but its CSRF token (a confirmation); its token is the one every
/// console form carries.
#[derive(Deserialize)]
pub struct Confirmation {}

impl CsrfChecked for Confirmation {
    const PURPOSE: &'static str = FORM_PURPOSE;
}

/// The signed-in administrator a console page is for. A browser without a session is shown the
/// login page (for a `GET`; any other request is refused as unverified), and a user without a
/// registry role gets a `403`.
pub struct ConsoleAdmin {
    pub user: Arc<User>,
    /// The registry acting for them: it refuses what their roles do not allow, and audits
    /// their changes under their name and address.
    pub registry: Registry,
    session: String,
    flash: Option<Flash>,
    /// Whether the request brought a flash cookie, which the answer then clears.
    flash_cookie: bool,
}

impl FromRequestParts<AppState> for ConsoleAdmin {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let session = cookie(state, &parts.headers, SESSION_COOKIE)
            .unwrap_or_default()
            .to_owned();
        let found = state
            .services
            .sessions
            .find(&session)
            .await
            .map_err(|error| PageError::from(error).into_response())?;
        let Some((_, user)) = found else {
            if parts.method != Method::GET {
                return Err(PageError::Unverified.into_response());
            }
            let path = parts
                .uri
                .path_and_query()
                .map_or("/admin", |p| p.as_str())
                .to_owned();
            let continuation = Continuation::Console { path };
            return Err(login_page(
                state,
                &parts.headers,
                None,
                continuation,
                "",
                None,
            ));
        };
        if !user.may(Permission::ReadRegistry) {
            return Err(PageError::Forbidden(format!(
                "The console is for users holding the {} role.",
                REGISTRY_ADMIN_ROLES.join(", ")
            ))
            .into_response());
        }
        let Ok(ClientAddress(address)) = ClientAddress::from_request_parts(parts, state).await;
        let actor = Actor {
            name: user.user_name.clone(),
            client_id: None,
            address: address.map(|address| address.to_string()),
        };
        let user = Arc::new(user);
        let registry = state.services.registry.acting_for(user.clone(), actor);
        let sealed = cookie(state, &parts.headers, FLASH_COOKIE).map(str::to_owned);
        // Only a page shows a flash: a form posted meanwhile leaves it for the page it leads to.
        let flash = match &sealed {
            Some(sealed) if parts.method == Method::GET => {
                pages::redeem::<Flash>(state, sealed).await.ok()
            }
            _ => None,
        };
        Ok(ConsoleAdmin {
            user,
            registry,
            session,
            flash,
            flash_cookie: sealed.is_some() && parts.method == Method::GET,
        })
    }
}

/// The page that asks before a destructive change.
#[derive(Template)]
#[template(path = "console/confirm.html")]
pub struct ConfirmPage<'a> {
    pub frame: Frame,
    pub title: String,
    pub message: String,
    pub action: String,
    pub button: &'a str,
    pub cancel: String,
    /// Whether the form asks how long the replaced secret keeps working.
    pub grace: Option<i64>,
}

/// What the layout of every console page shows: navigation, who is signed in, the flash.
pub struct Frame {
    pub section: &'static str,
    pub user_name: String,
    pub roles: String,
    /// The CSRF token of the console's forms.
    pub csrf: String,
    pub logout_csrf: String,
    pub logout_form: String,
    pub flash: Option<Flash>,
    /// The (path, title) of each kind of entry, for the navigation.
    pub entry_sections: &'static [(&'static str, &'static str)],
}

impl ConsoleAdmin {
    /// The layout's data for a page of `section`.
    pub fn frame(&self, state: &AppState, section: &'static str) -> Frame {
        let roles: Vec<&str> = self
            .user
            .roles
            .iter()
            .map(String::as_str)
            .filter(|role| REGISTRY_ADMIN_ROLES.contains(role))
            .collect();
        Frame {
            section,
            user_name: self.user.user_name.clone(),
            roles: roles.join(", "),
            csrf: CsrfForm::<Confirmation>::token(state, &self.session),
            logout_csrf: CsrfForm::<LogoutParams>::token(state, &self.session),
            logout_form: pages::seal(state, &SignOut),
            flash: self.flash.clone(),
            entry_sections: entry_kinds!(sections),
        }
    }

    /// A rendered page, with the headers of every page, clearing the flash it showed.
    pub fn page(
        &self,
        state: &AppState,
        status: StatusCode,
        html: askama::Result<String>,
    ) -> Response {
        let mut response = pages::page(status, html, None, None);
        if self.flash_cookie {
            response.headers_mut().append(
                header::SET_COOKIE,
                set_cookie(state, FLASH_COOKIE, "", Some(0)),
            );
        }
        response
    }
}

/// The `303` that ends every change, with how it went for the page it leads to.
pub fn redirect_with(state: &AppState, location: &str, flash: &Flash) -> Response {
    let mut response = pages::redirect(location);
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(
            state,
            FLASH_COOKIE,
            &pages::seal(state, flash),
            Some(FLASH_LIFETIME_SECONDS),
        ),
    );
    response
}

/// A field name as a label: words, with the abbreviations people know spelled as they know
/// them.
pub fn label(name: &str) -> String {
    let words: Vec<String> = name
        .split('_')
        .map(|word| match word {
            "id" | "uri" | "url" | "pkce" | "jwks" | "alg" => word.to_uppercase(),
            "uris" => "URIs".into(),
            other => other.to_owned(),
        })
        .collect();
    let joined = words.join(" ");
    let mut chars = joined.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => joined,
    }
}

/// Records on one page of a list.
const PAGE_SIZE: usize = 25;

/// A list page's query: a search and a page number.
#[derive(Deserialize, Default)]
pub struct ListQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    page: String,
}

impl ListQuery {
    pub fn read(raw: Option<String>) -> ListQuery {
        pages::form(raw.unwrap_or_default().as_bytes()).unwrap_or_default()
    }

    /// What to search for, in lower case; empty for everything.
    pub fn needle(&self) -> String {
        self.q.trim().to_lowercase()
    }

    /// Whether the search finds a record by `texts`: one of them contains it, in any case. An
    /// empty search finds everything.
    pub fn finds<'t>(&self, texts: impl IntoIterator<Item = &'t String>) -> bool {
        let needle = self.needle();
        needle.is_empty()
            || texts
                .into_iter()
                .any(|text| text.to_lowercase().contains(&needle))
    }
}

/// Where one page of a list is, and the links to its neighbours.
pub struct Paged {
    pub query: String,
    pub total: usize,
    pub page: usize,
    pub pages: usize,
    pub previous: Option<String>,
    pub next: Option<String>,
}

impl Paged {
    /// The page `query` asks for of `all` (kept in range), listed at `base`, and where it is.
    pub fn of<T>(all: Vec<T>, query: &ListQuery, base: &str) -> (Vec<T>, Paged) {
        let total = all.len();
        let pages = total.div_ceil(PAGE_SIZE).max(1);
        let page = query.page.parse::<usize>().unwrap_or(1).clamp(1, pages);
        let search = query.q.trim().to_owned();
        let url = |page: usize| {
            let mut url = form_urlencoded::Serializer::new(String::new());
            if !search.is_empty() {
                url.append_pair("q", &search);
            }
            url.append_pair("page", &page.to_string());
            format!("{base}?{}", url.finish())
        };
        let items = all
            .into_iter()
            .skip((page - 1) * PAGE_SIZE)
            .take(PAGE_SIZE)
            .collect();
        let paged = Paged {
            previous: (page > 1).then(|| url(page - 1)),
            next: (page < pages).then(|| url(page + 1)),
            query: search,
            total,
            page,
            pages,
        };
        (items, paged)
    }
}
