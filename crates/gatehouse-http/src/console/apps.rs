//! `/admin/applications`: list, view, create, edit, rotate the secret of and delete
//! applications.
//!
//! The form is built from the registry's one field list (`with_app_fields!`), each field edited
//! as its type is ([`FormField`]), so a field added there is on the form, and on the
//! application's page, without more code. A submitted form changes only the fields that differ
//! from what it showed, as a `PATCH` of the admin API would: what the registry does with a
//! field left alone (default scopes following the allowed ones, say) stays its business.

use askama::Template;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use gatehouse_core::Error;
use gatehouse_core::client::{Client, ClientType};
use gatehouse_core::registry::{AppChanges, DEFAULT_SECRET_GRACE, NewApp};
use serde::Deserialize;

use super::form::{Choices, Field, FormField, Params, changed, submitted};
use super::record::{self, RecordKind, Refused};
use super::{ConsoleAdmin, Flash, Frame, ListQuery, Paged, redirect_with};
use crate::error::PageError;
use crate::extract::{CsrfChecked, CsrfForm};
use crate::state::AppState;

/// Declares, from the registry's field list, what the form shows and how it reads back.
macro_rules! app_form {
    ($(
        $(#[doc = $doc:literal])*
        #[arg($($arg:tt)*)]
        $field:ident : $ty:ty => $change:ty = $default:expr,
    )*) => {
        /// What the form showed for each field: an application's values, or a new one's
        /// defaults.
        pub struct Shown {
            $($field: $ty,)*
        }

        impl Shown {
            fn of(client: &Client) -> Shown {
                Shown { $($field: client.$field.clone(),)* }
            }

            fn defaults() -> Shown {
                Shown { $($field: $default,)* }
            }

            fn fields(&self) -> Vec<Field> {
                vec![$(Field::new(
                    stringify!($field),
                    concat!($($doc),*),
                    FormField::input(&self.$field),
                ),)*]
            }

            /// The fields the submitted form changes; a field that cannot be read leaves its
            /// message in `errors`.
            fn changes(
                &self,
                params: &Params,
                errors: &mut Vec<(&'static str, String)>,
            ) -> AppChanges {
                AppChanges {
                    $($field: changed::<$ty>(stringify!($field), &self.$field, params, errors),)*
                }
            }
        }
    };
}

gatehouse_core::with_app_fields!(app_form);

pub struct Row {
    pub client_id: String,
    pub name: String,
    pub client_type: String,
    pub grants: String,
    pub active: bool,
}

#[derive(Template)]
#[template(path = "console/apps.html")]
struct ListPage {
    frame: Frame,
    rows: Vec<Row>,
    paged: Paged,
}

/// `GET /admin/applications?q=…&page=…`: by name, searched by name or client_id.
pub async fn list(
    admin: ConsoleAdmin,
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, PageError> {
    let query = ListQuery::read(raw);
    let mut apps: Vec<Client> = admin
        .registry
        .list_apps()
        .await?
        .into_iter()
        .filter(|app| query.finds([&app.name, &app.client_id]))
        .collect();
    apps.sort_by(|a, b| {
        (a.name.to_lowercase(), &a.client_id).cmp(&(b.name.to_lowercase(), &b.client_id))
    });
    let (apps, paged) = Paged::of(apps, &query, "/admin/applications");
    let rows = apps
        .into_iter()
        .map(|app| Row {
            grants: app
                .grant_types
                .iter()
                .map(|g| g.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            client_type: ClientType::name(app.client_type),
            client_id: app.client_id,
            name: app.name,
            active: app.active,
        })
        .collect();
    let html = ListPage {
        frame: admin.frame(&state, "applications"),
        rows,
        paged,
    }
    .render();
    Ok(admin.page(&state, StatusCode::OK, html))
}

#[derive(Template)]
#[template(path = "console/app.html")]
struct AppPage {
    frame: Frame,
    app: Client,
    fields: Vec<Field>,
}

/// `GET /admin/applications/{client_id}`
pub async fn show(
    admin: ConsoleAdmin,
    State(state): State<AppState>,
    Path(client_id): Path<String>,
) -> Result<Response, PageError> {
    let (frame, app, fields) = record::page_of::<Apps>(&admin, &state, &client_id).await?;
    let html = AppPage { frame, app, fields }.render();
    Ok(admin.page(&state, StatusCode::OK, html))
}

/// Applications, in the console's record pages; their page is `show`, their form at
/// `…/edit`.
pub struct Apps;

impl RecordKind for Apps {
    type Record = Client;
    type Shown = Shown;

    const SECTION: &'static str = "applications";
    const KIND: &'static str = "Application";
    const TITLE: &'static str = "Applications";
    const NEW: &'static str = "New application";
    const CREATE: &'static str = "Create application";
    const KEY: (&'static str, &'static str, &'static str) = (
        "client_id",
        "client_id",
        "Leave empty to have one generated. Letters, digits or . _ - @ ~; it cannot change later.",
    );
    const FORM_IS_PAGE: bool = false;
    const DELETION: (&'static str, &'static str) = (
        "The application and every token issued to it are deleted. This cannot be undone.",
        "Delete application",
    );

    async fn get(admin: &ConsoleAdmin, _: &AppState, client_id: &str) -> Result<Client, Error> {
        admin.registry.get_app(client_id).await
    }

    fn key(app: &Client) -> &str {
        &app.client_id
    }

    fn name(app: &Client) -> &str {
        &app.name
    }

    fn shown(app: Option<&Client>) -> Shown {
        app.map_or_else(Shown::defaults, Shown::of)
    }

    fn fields(shown: &Shown) -> Vec<Field> {
        shown.fields()
    }

    /// A new application's secret is shown once, on the page the form leads to.
    async fn save(
        admin: &ConsoleAdmin,
        _: &AppState,
        existing: Option<&Client>,
        shown: &Shown,
        params: &Params,
    ) -> Result<(Client, Option<String>), Refused> {
        let fields = Refused::unless_read(|errors| shown.changes(params, errors))?;
        match existing {
            Some(app) => Ok((
                admin.registry.update_app(&app.client_id, fields).await?,
                None,
            )),
            None => {
                let client_id = Some(submitted("client_id", params))
                    .filter(|id| !id.is_empty())
                    .map(str::to_owned);
                let new = NewApp {
                    client_id,
                    client_secret: None,
                    fields,
                };
                let (app, secret) = admin.registry.create_app(new, false).await?;
                Ok((app, secret.map(|s| s.expose().to_owned())))
            }
        }
    }

    /// Any refusal is the error page's.
    async fn delete(
        admin: &ConsoleAdmin,
        _: &AppState,
        client_id: &str,
    ) -> Result<Result<String, Error>, PageError> {
        let app = admin.registry.get_app(client_id).await?;
        admin.registry.delete_app(client_id).await?;
        Ok(Ok(app.name))
    }
}

/// `GET /admin/applications/{client_id}/rotate-secret`
pub async fn confirm_rotation(
    admin: ConsoleAdmin,
    State(state): State<AppState>,
    Path(client_id): Path<String>,
) -> Result<Response, PageError> {
    let app = admin.registry.get_app(&client_id).await?;
    let html = super::ConfirmPage {
        frame: admin.frame(&state, "applications"),
        title: format!("Rotate the secret of {}?", app.name),
        message: "A new secret is generated and shown once. The current one keeps working for \
                  the time below, so the services using it can be moved to the new one."
            .into(),
        action: format!("/admin/applications/{}/rotate-secret", app.client_id),
        button: "Rotate secret",
        cancel: format!("/admin/applications/{}", app.client_id),
        grace: Some(DEFAULT_SECRET_GRACE),
    }
    .render();
    Ok(admin.page(&state, StatusCode::OK, html))
}

#[derive(Deserialize)]
pub struct RotationForm {
    grace: String,
}

impl CsrfChecked for RotationForm {
    const PURPOSE: &'static str = super::FORM_PURPOSE;
}

/// `POST /admin/applications/{client_id}/rotate-secret`
pub async fn rotate_secret(
    admin: ConsoleAdmin,
    State(state): State<AppState>,
    Path(client_id): Path<String>,
    CsrfForm { form, .. }: CsrfForm<RotationForm>,
) -> Result<Response, PageError> {
    let grace = form
        .grace
        .trim()
        .parse()
        .map_err(|_| Error::validation("the grace period is a whole number of seconds"))?;
    let (app, secret) = admin
        .registry
        .rotate_secret(&client_id, None, grace)
        .await?;
    let flash = Flash {
        secret: Some(secret.expose().to_owned()),
        ..Flash::success("The secret was rotated.")
    };
    Ok(redirect_with(
        &state,
        &format!("/admin/applications/{}", app.client_id),
        &flash,
    ))
}
