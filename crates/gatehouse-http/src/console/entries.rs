//! The registry's configuration entries — scope rules, gateway routes, tables, OAuth profiles
//! and connection aliases — each kind on its pages: listed (searched by name, paged), viewed,
//! created, edited and deleted (after a confirmation) through the generic entry use cases.
//!
//! An entry is edited as the JSON document the admin API and the declarative file's sections
//! describe, checked by the registry as there; a saved document replaces the entry's fields,
//! a field left out taking its default.

use askama::Template;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use gatehouse_core::Error;
use gatehouse_core::access::ScopeRule;
use gatehouse_core::client::GrantType;
use gatehouse_core::entry::Entry;
use gatehouse_core::gateway::Route;
use gatehouse_core::outbound::{ConnectionAlias, OAuthProfile};
use gatehouse_core::table::TableDef;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::form::form_message;
use super::{
    ConfirmPage, Confirmation, ConsoleAdmin, Flash, Frame, ListQuery, Paged, redirect_with,
};
use crate::error::PageError;
use crate::extract::{CsrfChecked, CsrfForm};
use crate::state::AppState;

/// A kind of entry as the console shows it.
pub trait ConsoleEntry: Entry {
    /// Its pages' path under `/admin`, which is also the navigation's section.
    const SECTION: &'static str;
    /// What a list of them is called.
    const TITLE: &'static str;

    /// The OAuth provider this entry obtains tokens from, whose grant decides whether its page
    /// leads to the page where people obtain one.
    fn token_provider(&self) -> Option<&str> {
        None
    }
}

impl ConsoleEntry for ScopeRule {
    const SECTION: &'static str = "scope-rules";
    const TITLE: &'static str = "Scope rules";
}

impl ConsoleEntry for Route {
    const SECTION: &'static str = "routes";
    const TITLE: &'static str = "Gateway routes";
}

impl ConsoleEntry for TableDef {
    const SECTION: &'static str = "tables";
    const TITLE: &'static str = "Tables";
}

impl ConsoleEntry for OAuthProfile {
    const SECTION: &'static str = "profiles";
    const TITLE: &'static str = "OAuth profiles";

    fn token_provider(&self) -> Option<&str> {
        Some(&self.provider)
    }
}

impl ConsoleEntry for ConnectionAlias {
    const SECTION: &'static str = "aliases";
    const TITLE: &'static str = "Connection aliases";
}

/// An entry's document, as the form and its page show it.
fn document<T: Entry>(entry: &T) -> String {
    serde_json::to_string_pretty(entry).unwrap_or_default()
}

/// One entry as its list and page show it.
pub struct Shown {
    pub name: String,
    pub document: String,
    pub managed: bool,
}

#[derive(Template)]
#[template(path = "console/entries.html")]
struct ListPage {
    frame: Frame,
    title: &'static str,
    base: String,
    entries: Vec<Shown>,
    paged: Paged,
}

/// `GET /admin/{section}?q=…&page=…`
pub async fn list<T: ConsoleEntry>(
    admin: ConsoleAdmin,
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, PageError> {
    let query = ListQuery::read(raw);
    let needle = query.needle();
    let mut entries: Vec<Shown> = admin
        .registry
        .list_entries::<T>()
        .await?
        .into_iter()
        .filter(|(entry, _)| needle.is_empty() || entry.name().to_lowercase().contains(&needle))
        .map(|(entry, managed)| Shown {
            name: entry.name().to_owned(),
            document: document(&entry),
            managed,
        })
        .collect();
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    let base = format!("/admin/{}", T::SECTION);
    let (entries, paged) = Paged::of(entries, &query, &base);
    let html = ListPage {
        frame: admin.frame(&state, T::SECTION),
        title: T::TITLE,
        base,
        entries,
        paged,
    }
    .render();
    Ok(admin.page(&state, StatusCode::OK, html))
}

#[derive(Template)]
#[template(path = "console/entry_form.html")]
struct FormPage {
    frame: Frame,
    title: &'static str,
    base: String,
    /// The entry edited; `None` on the form of a new one.
    name: Option<String>,
    document: String,
    error: Option<String>,
    /// Where a token is obtained for the entry through the authorization-code grant, for an
    /// entry that obtains them so.
    token_page: Option<String>,
}

impl FormPage {
    fn action(&self) -> String {
        match &self.name {
            Some(name) => format!("{}/{name}", self.base),
            None => self.base.clone(),
        }
    }
}

/// `GET /admin/new/{section}`
pub async fn new<T: ConsoleEntry>(
    admin: ConsoleAdmin,
    State(state): State<AppState>,
) -> Result<Response, PageError> {
    let html = FormPage {
        frame: admin.frame(&state, T::SECTION),
        title: T::TITLE,
        base: format!("/admin/{}", T::SECTION),
        name: None,
        document: "{\n  \"name\": \"\"\n}".into(),
        error: None,
        token_page: None,
    }
    .render();
    Ok(admin.page(&state, StatusCode::OK, html))
}

/// `GET /admin/{section}/{name}`: the entry's document, in its form.
pub async fn edit<T: ConsoleEntry>(
    admin: ConsoleAdmin,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, PageError> {
    let entry = admin.registry.get_entry::<T>(&name).await?;
    let token_page = match entry.token_provider() {
        // A provider not (or no longer) registered obtains nothing: no link.
        Some(provider) => match state
            .services
            .outbound
            .registry()
            .get_provider(provider)
            .await
        {
            Ok(provider) if provider.grant == GrantType::AuthorizationCode => {
                Some(format!("/outbound#get-token-{}", entry.name()))
            }
            Ok(_) | Err(Error::NotFound(_)) => None,
            Err(error) => return Err(error.into()),
        },
        None => None,
    };
    let html = FormPage {
        frame: admin.frame(&state, T::SECTION),
        title: T::TITLE,
        base: format!("/admin/{}", T::SECTION),
        name: Some(entry.name().to_owned()),
        document: document(&entry),
        error: None,
        token_page,
    }
    .render();
    Ok(admin.page(&state, StatusCode::OK, html))
}

#[derive(Deserialize)]
pub struct DocumentForm {
    document: String,
}

impl CsrfChecked for DocumentForm {
    const PURPOSE: &'static str = super::FORM_PURPOSE;
}

/// The submitted document as an object, or why it is none.
fn fields(document: &str) -> Result<Map<String, Value>, Error> {
    match serde_json::from_str(document) {
        Ok(Value::Object(fields)) => Ok(fields),
        Ok(_) => Err(Error::validation("the document must be a JSON object")),
        Err(error) => Err(Error::validation(format!(
            "the document is not JSON: {error}"
        ))),
    }
}

/// The form again, with what was submitted and why it was not accepted (`422`).
fn refused<T: ConsoleEntry>(
    admin: &ConsoleAdmin,
    state: &AppState,
    name: Option<String>,
    document: String,
    message: String,
) -> Response {
    let html = FormPage {
        frame: admin.frame(state, T::SECTION),
        title: T::TITLE,
        base: format!("/admin/{}", T::SECTION),
        name,
        document,
        error: Some(message),
        token_page: None,
    }
    .render();
    admin.page(state, StatusCode::UNPROCESSABLE_ENTITY, html)
}

/// `POST /admin/{section}`
pub async fn create<T: ConsoleEntry>(
    admin: ConsoleAdmin,
    State(state): State<AppState>,
    CsrfForm { form, .. }: CsrfForm<DocumentForm>,
) -> Result<Response, PageError> {
    let created = match fields(&form.document) {
        Ok(fields) => {
            admin
                .registry
                .create_entry::<T>(Value::Object(fields), false)
                .await
        }
        Err(error) => Err(error),
    };
    match created {
        Ok(entry) => Ok(redirect_with(
            &state,
            &format!("/admin/{}/{}", T::SECTION, entry.name()),
            &Flash::success(format!("{} {} created.", T::KIND, entry.name())),
        )),
        Err(error) => {
            let message = form_message(error)?;
            Ok(refused::<T>(&admin, &state, None, form.document, message))
        }
    }
}

/// `POST /admin/{section}/{name}`: the document replaces the entry's fields.
pub async fn update<T: ConsoleEntry>(
    admin: ConsoleAdmin,
    State(state): State<AppState>,
    Path(name): Path<String>,
    CsrfForm { form, .. }: CsrfForm<DocumentForm>,
) -> Result<Response, PageError> {
    let current = admin.registry.get_entry::<T>(&name).await?;
    let updated = match fields(&form.document) {
        Ok(mut changes) => {
            // A field taken out of the document takes its default, as it would in the file.
            if let Value::Object(before) = serde_json::to_value(&current).unwrap_or_default() {
                for field in before.keys() {
                    changes.entry(field.clone()).or_insert(Value::Null);
                }
            }
            admin.registry.update_entry::<T>(&name, changes).await
        }
        Err(error) => Err(error),
    };
    match updated {
        Ok(entry) => Ok(redirect_with(
            &state,
            &format!("/admin/{}/{}", T::SECTION, entry.name()),
            &Flash::success(format!("{} {} saved.", T::KIND, entry.name())),
        )),
        Err(error) => {
            let message = form_message(error)?;
            Ok(refused::<T>(
                &admin,
                &state,
                Some(name),
                form.document,
                message,
            ))
        }
    }
}

/// `GET /admin/{section}/{name}/delete`
pub async fn confirm_deletion<T: ConsoleEntry>(
    admin: ConsoleAdmin,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, PageError> {
    let entry = admin.registry.get_entry::<T>(&name).await?;
    let html = ConfirmPage {
        frame: admin.frame(&state, T::SECTION),
        title: format!("Delete the {} {}?", T::KIND, entry.name()),
        message: "This cannot be undone.".into(),
        action: format!("/admin/{}/{}/delete", T::SECTION, entry.name()),
        button: "Delete",
        cancel: format!("/admin/{}/{}", T::SECTION, entry.name()),
        grace: None,
    }
    .render();
    Ok(admin.page(&state, StatusCode::OK, html))
}

/// `POST /admin/{section}/{name}/delete`
pub async fn delete<T: ConsoleEntry>(
    admin: ConsoleAdmin,
    State(state): State<AppState>,
    Path(name): Path<String>,
    _: CsrfForm<Confirmation>,
) -> Result<Response, PageError> {
    match admin.registry.delete_entry::<T>(&name).await {
        Ok(()) => Ok(redirect_with(
            &state,
            &format!("/admin/{}", T::SECTION),
            &Flash::success(format!("{} {name} deleted.", T::KIND)),
        )),
        Err(error) => Ok(redirect_with(
            &state,
            &format!("/admin/{}/{name}", T::SECTION),
            &Flash::failure(form_message(error)?),
        )),
    }
}
