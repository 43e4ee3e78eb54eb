//! The registry's configuration entries — scope rules, gateway routes, tables, OAuth profiles
//! and connection aliases — each kind on its pages: listed (searched by name, paged) with
//! their documents, and in the console's record forms ([`Entries`]): one input per field,
//! created, edited and deleted (after a confirmation) through the generic entry use cases,
//! which check them as the admin API and the declarative file are checked.
//!
//! A saved form changes only the fields that differ from what it showed; a new entry is made
//! of every field as submitted.

use std::marker::PhantomData;

use askama::Template;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use gatehouse_core::Error;
use gatehouse_core::access::ScopeRule;
use gatehouse_core::client::GrantType;
use gatehouse_core::entry::Entry;
use gatehouse_core::gateway::{DEFAULT_ROUTE_TIMEOUT_SECONDS, Route, RouteExchange};
use gatehouse_core::outbound::{
    ConnectionAlias, DEFAULT_MAX_RETRIES, DEFAULT_TIMEOUT_SECONDS, OAuthProfile,
};
use gatehouse_core::table::TableDef;
use serde_json::{Map, Value};

use super::form::{Field, FieldValue, FormField, Input, Params, submitted};
use super::record::{Link, RecordKind, Refused};
use super::{ConsoleAdmin, Frame, ListQuery, Paged};
use crate::error::PageError;
use crate::state::AppState;

/// A kind of entry as the console shows it.
pub trait ConsoleEntry: Entry {
    /// Its pages' path under `/admin`, which is also the navigation's section.
    const SECTION: &'static str;
    /// What a list of them is called.
    const TITLE: &'static str;
    /// What one is called in messages ("Table incidents created.").
    const ONE: &'static str;
    /// The kinds of entry it names, each with the field naming it: the registry's message that
    /// one does not exist names the kind, not the field.
    const REFERENCES: &'static [(&'static str, &'static str)] = &[];

    /// A new one's form: its fields' defaults.
    fn blank() -> Self;
    /// Its fields but the name, one input each.
    fn fields(&self) -> Vec<Field>;
    /// Its fields but the name as submitted, as its document holds them; what cannot be read
    /// goes to `errors`.
    fn document(params: &Params, errors: &mut Vec<(&'static str, String)>) -> Map<String, Value>;

    /// The OAuth provider this entry obtains tokens from, whose grant decides whether its page
    /// leads to the page where people obtain one.
    fn token_provider(&self) -> Option<&str> {
        None
    }
}

/// Reads the field `name` of type `T` into `document`.
fn read_into<T: FieldValue + serde::Serialize>(
    name: &'static str,
    params: &Params,
    document: &mut Map<String, Value>,
    errors: &mut Vec<(&'static str, String)>,
) {
    match T::read(name, params) {
        Ok(change) => {
            let value = serde_json::to_value(T::from_change(change)).unwrap_or_default();
            document.insert(name.into(), value);
        }
        Err(why) => errors.push((name, why)),
    }
}

/// A kind's form: its fields but the name, each of a type edited as [`FormField`] says, with
/// its default on a new one's form and its help.
macro_rules! entry_form {
    ($($field:ident: $type:ty = $default:expr, $help:literal;)*) => {
        fn blank() -> Self {
            Self {
                name: String::new(),
                $($field: $default,)*
            }
        }

        fn fields(&self) -> Vec<Field> {
            vec![$(Field::new(stringify!($field), $help, self.$field.input()),)*]
        }

        fn document(
            params: &Params,
            errors: &mut Vec<(&'static str, String)>,
        ) -> Map<String, Value> {
            let mut document = Map::new();
            $(read_into::<$type>(stringify!($field), params, &mut document, errors);)*
            document
        }
    };
}

impl ConsoleEntry for ScopeRule {
    const SECTION: &'static str = "scope-rules";
    const TITLE: &'static str = "Scope rules";
    const ONE: &'static str = "Scope rule";

    entry_form! {
        methods: Vec<String> = vec![],
            "Upper-case HTTP methods it applies to, such as GET; none for every method.";
        path: String = String::new(),
            "The API path it guards, from /: * matches one segment, a final ** the rest.";
        scopes: Vec<String> = vec![],
            "The scopes a token needs, every one of them (or useraccount).";
    }
}

impl ConsoleEntry for Route {
    const SECTION: &'static str = "routes";
    const TITLE: &'static str = "Gateway routes";
    const ONE: &'static str = "Gateway route";

    entry_form! {
        prefix: String = String::new(),
            "Requests whose path is this prefix or lies under it take the route; it starts \
             with /api/.";
        upstream: String = String::new(),
            "The upstream base URL; the path after the prefix is appended to it.";
        timeout_seconds: u64 = DEFAULT_ROUTE_TIMEOUT_SECONDS,
            "Seconds the upstream has to answer, body included (at most 25).";
        audience: Option<String> = None,
            "The audience the upstream expects of tokens (RFC 8707); empty for this server.";
        exchange: Option<RouteExchange> = None,
            "Send the upstream the caller's token exchanged for it (RFC 8693) instead of \
             X-Gatehouse headers: the exchanging application's client_id, the audience and \
             optionally the scope, separated by spaces (inventory-gateway \
             https://inventory.example.org stock.read); empty for none.";
    }
}

/// A route's exchange on one line: `client_id audience [scope …]` — none of them holds a
/// space, and the scope is the rest of the line.
impl FormField for Option<RouteExchange> {
    type Change = Option<RouteExchange>;
    fn input(&self) -> Input {
        let line = self.as_ref().map(|exchange| {
            let mut words = vec![exchange.client_id.as_str(), exchange.audience.as_str()];
            words.extend(exchange.scope.as_deref());
            words.join(" ")
        });
        line.input()
    }
    fn as_change(&self) -> Option<RouteExchange> {
        self.clone()
    }
    fn read(name: &str, params: &Params) -> Result<Option<RouteExchange>, String> {
        let words: Vec<&str> = submitted(name, params).split_whitespace().collect();
        match words.as_slice() {
            [] => Ok(None),
            [_] => Err("needs the client_id and the audience, separated by a space".into()),
            [client_id, audience, scope @ ..] => Ok(Some(RouteExchange {
                client_id: (*client_id).to_owned(),
                audience: (*audience).to_owned(),
                scope: (!scope.is_empty()).then(|| scope.join(" ")),
            })),
        }
    }
}

impl FieldValue for Option<RouteExchange> {
    fn from_change(change: Option<RouteExchange>) -> Option<RouteExchange> {
        change
    }
}

impl ConsoleEntry for TableDef {
    const SECTION: &'static str = "tables";
    const TITLE: &'static str = "Tables";
    const ONE: &'static str = "Table";

    entry_form! {
        read_roles: Vec<String> = vec![],
            "Users holding one of these roles (or a write role, or admin) may read its records.";
        write_roles: Vec<String> = vec![],
            "Users holding one of these roles (or admin) may create, change and delete its \
             records.";
    }
}

impl ConsoleEntry for OAuthProfile {
    const SECTION: &'static str = "profiles";
    const TITLE: &'static str = "OAuth profiles";
    const ONE: &'static str = "OAuth profile";

    entry_form! {
        provider: String = String::new(), "The OAuth provider its tokens are obtained from.";
        scopes: Vec<String> = vec![], "The scopes asked for.";
        per_user: bool = false,
            "Each user obtains their own token, through the authorization-code grant, instead \
             of one token serving everybody.";
    }

    fn token_provider(&self) -> Option<&str> {
        Some(&self.provider)
    }
}

impl ConsoleEntry for ConnectionAlias {
    const SECTION: &'static str = "aliases";
    const TITLE: &'static str = "Connection aliases";
    const ONE: &'static str = "Connection alias";
    const REFERENCES: &'static [(&'static str, &'static str)] = &[(OAuthProfile::KIND, "profile")];

    entry_form! {
        base_url: String = String::new(), "The external API's base URL.";
        profile: String = String::new(), "The OAuth profile whose token is sent to it.";
        allowed_roles: Vec<String> = vec![],
            "A user needs one of these roles to call it through the proxy endpoint.";
        timeout_seconds: i64 = DEFAULT_TIMEOUT_SECONDS,
            "Seconds one exchange with the API may take (at most 25).";
        max_retries: i64 = DEFAULT_MAX_RETRIES,
            "How many times a server error (5xx, 429) or an unreachable API is retried (0 to 10).";
    }
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

/// The entries of kind `T`, in the console's record pages.
pub struct Entries<T>(PhantomData<T>);

impl<T: ConsoleEntry> RecordKind for Entries<T> {
    type Record = T;
    type Shown = T;

    const SECTION: &'static str = T::SECTION;
    const KIND: &'static str = T::ONE;
    const TITLE: &'static str = T::TITLE;
    const NEW: &'static str = "New";
    const CREATE: &'static str = "Create";
    const KEY: (&'static str, &'static str, &'static str) =
        ("name", "Name", "It cannot change later.");
    const FORM_IS_PAGE: bool = true;
    const DELETION: (&'static str, &'static str) = ("This cannot be undone.", "Delete");

    async fn get(admin: &ConsoleAdmin, _: &AppState, name: &str) -> Result<T, Error> {
        admin.registry.get_entry::<T>(name).await
    }

    fn key(entry: &T) -> &str {
        entry.name()
    }

    fn shown(entry: Option<&T>) -> T {
        entry.cloned().unwrap_or_else(T::blank)
    }

    fn fields(shown: &T) -> Vec<Field> {
        shown.fields()
    }

    async fn links(state: &AppState, entry: &T) -> Result<Vec<Link>, Error> {
        let Some(provider) = entry.token_provider() else {
            return Ok(vec![]);
        };
        // A provider not (or no longer) registered obtains nothing: no link.
        match state
            .services
            .outbound
            .registry()
            .get_provider(provider)
            .await
        {
            Ok(provider) if provider.grant == GrantType::AuthorizationCode => Ok(vec![Link {
                id: "get-token",
                text: "Get OAuth token",
                href: format!("/outbound#get-token-{}", entry.name()),
            }]),
            Ok(_) | Err(Error::NotFound(_)) => Ok(vec![]),
            Err(error) => Err(error),
        }
    }

    async fn save(
        admin: &ConsoleAdmin,
        _: &AppState,
        existing: Option<&T>,
        shown: &T,
        params: &Params,
    ) -> Result<(T, Option<String>), Refused> {
        let mut errors = Vec::new();
        let mut document = T::document(params, &mut errors);
        if !errors.is_empty() {
            return Err(Refused::Fields(errors));
        }
        let saved = match existing {
            Some(entry) => {
                let before = serde_json::to_value(shown).unwrap_or_default();
                document.retain(|field, value| before.get(field).unwrap_or(&Value::Null) != value);
                admin
                    .registry
                    .update_entry::<T>(entry.name(), document)
                    .await
            }
            None => {
                let name = submitted("name", params).to_owned();
                document.insert("name".into(), Value::String(name));
                admin
                    .registry
                    .create_entry::<T>(Value::Object(document), false)
                    .await
            }
        };
        saved
            .map(|entry| (entry, None))
            .map_err(|error| match error {
                Error::Validation(message) => match referenced_field::<T>(&message) {
                    Some(field) => Refused::Fields(vec![(field, message)]),
                    None => Refused::Registry(Error::Validation(message)),
                },
                other => Refused::Registry(other),
            })
    }

    async fn delete(
        admin: &ConsoleAdmin,
        _: &AppState,
        name: &str,
    ) -> Result<Result<String, Error>, PageError> {
        Ok(admin
            .registry
            .delete_entry::<T>(name)
            .await
            .map(|()| name.to_owned()))
    }
}

/// The field naming the entry that `message` says does not exist (`oauth_profile "crm" does
/// not exist`).
fn referenced_field<T: ConsoleEntry>(message: &str) -> Option<&'static str> {
    T::REFERENCES
        .iter()
        .find(|(kind, _)| {
            message
                .strip_prefix(kind)
                .is_some_and(|rest| rest.starts_with(" \"") && rest.ends_with("does not exist"))
        })
        .map(|&(_, field)| field)
}
