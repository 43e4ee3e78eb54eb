//! `/admin/scopes`: the scope registry — listed (searched by name or description, paged),
//! shown in their form, created, their description and default changed, and deleted after a
//! confirmation, through the registry's entry use cases.

use askama::Template;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use gatehouse_core::Error;
use gatehouse_core::access::ScopeEntry;
use serde_json::{Map, Value, json};

use super::form::{Field, FormField, Params, changed, submitted};
use super::record::{RecordKind, Refused};
use super::{ConsoleAdmin, Frame, ListQuery, Paged};
use crate::error::PageError;
use crate::state::AppState;

const SECTION: &str = "scopes";

#[derive(Template)]
#[template(path = "console/scopes.html")]
struct ListPage {
    frame: Frame,
    /// Each scope, and whether the declarative file manages it.
    rows: Vec<(ScopeEntry, bool)>,
    paged: Paged,
}

/// `GET /admin/scopes?q=…&page=…`
pub async fn list(
    admin: ConsoleAdmin,
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, PageError> {
    let query = ListQuery::read(raw);
    let mut scopes: Vec<(ScopeEntry, bool)> = admin
        .registry
        .list_entries::<ScopeEntry>()
        .await?
        .into_iter()
        .filter(|(scope, _)| query.finds([&scope.name, &scope.description]))
        .collect();
    scopes.sort_by(|a, b| a.0.name.cmp(&b.0.name));
    let (rows, paged) = Paged::of(scopes, &query, "/admin/scopes");
    let html = ListPage {
        frame: admin.frame(&state, SECTION),
        rows,
        paged,
    }
    .render();
    Ok(admin.page(&state, StatusCode::OK, html))
}

/// Scopes, in the console's record pages.
pub struct Scopes;

impl RecordKind for Scopes {
    type Record = ScopeEntry;
    /// A new scope's form shows the defaults of one with no name.
    type Shown = ScopeEntry;

    const SECTION: &'static str = SECTION;
    const KIND: &'static str = "Scope";
    const TITLE: &'static str = "Scopes";
    const NEW: &'static str = "New scope";
    const CREATE: &'static str = "Create scope";
    const KEY: (&'static str, &'static str, &'static str) = (
        "name",
        "Name",
        "As applications ask for it, e.g. inventory.read. It cannot change later.",
    );
    const FORM_IS_PAGE: bool = true;
    const DELETION: (&'static str, &'static str) = (
        "Scope rules and routes that name it stop matching it; applications must not be allowed \
         it any more.",
        "Delete scope",
    );

    async fn get(admin: &ConsoleAdmin, _: &AppState, name: &str) -> Result<ScopeEntry, Error> {
        admin.registry.get_entry::<ScopeEntry>(name).await
    }

    fn key(scope: &ScopeEntry) -> &str {
        &scope.name
    }

    fn shown(scope: Option<&ScopeEntry>) -> ScopeEntry {
        scope.cloned().unwrap_or(ScopeEntry {
            name: String::new(),
            description: String::new(),
            default: false,
        })
    }

    fn fields(shown: &ScopeEntry) -> Vec<Field> {
        vec![
            Field::new(
                "description",
                "What the consent page tells people it allows.",
                shown.description.input(),
            ),
            Field::new(
                "default",
                "Given to new applications registered without a scope list.",
                shown.default.input(),
            ),
        ]
    }

    async fn save(
        admin: &ConsoleAdmin,
        _: &AppState,
        existing: Option<&ScopeEntry>,
        shown: &ScopeEntry,
        params: &Params,
    ) -> Result<(ScopeEntry, Option<String>), Refused> {
        let mut changes = Refused::unless_read(|errors| {
            let mut changes = Map::new();
            if let Some(description) = changed("description", &shown.description, params, errors) {
                changes.insert("description".into(), Value::String(description));
            }
            if let Some(default) = changed("default", &shown.default, params, errors) {
                changes.insert("default".into(), Value::Bool(default));
            }
            changes
        })?;
        let saved = match existing {
            Some(scope) => admin.registry.update_entry(&scope.name, changes).await?,
            None => {
                changes.insert("name".into(), json!(submitted("name", params)));
                // What a new scope can be refused for is its name: malformed, or taken.
                admin
                    .registry
                    .create_entry(Value::Object(changes), false)
                    .await
                    .map_err(|error| match error {
                        Error::Validation(message) | Error::Conflict(message) => {
                            Refused::Fields(vec![("name", message)])
                        }
                        other => Refused::Registry(other),
                    })?
            }
        };
        Ok((saved, None))
    }

    async fn delete(
        admin: &ConsoleAdmin,
        _: &AppState,
        name: &str,
    ) -> Result<Result<String, Error>, PageError> {
        Ok(admin
            .registry
            .delete_entry::<ScopeEntry>(name)
            .await
            .map(|()| name.to_owned()))
    }
}
