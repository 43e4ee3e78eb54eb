//! `/admin/applications`: list, view, create, edit, rotate the secret of and delete
//! applications.
//!
//! The form is built from the registry's one field list (`with_app_fields!`), each field edited
//! as its type is ([`FormField`]), so a field added there is on the form, and on the
//! application's page, without more code. A submitted form changes only the fields that differ
//! from what it showed, as a `PATCH` of the admin API would: what the registry does with a
//! field left alone (default scopes following the allowed ones, say) stays its business.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use gatehouse_core::Error;
use gatehouse_core::client::{Client, ClientType, GrantType, TokenFormat};
use gatehouse_core::keys::SigningAlgorithm;
use gatehouse_core::registry::{AppChanges, DEFAULT_SECRET_GRACE, NewApp};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::{Confirmation, ConsoleAdmin, Flash, Frame, label, redirect_with};
use crate::error::PageError;
use crate::extract::{CsrfChecked, CsrfForm};
use crate::pages;
use crate::state::AppState;

/// Applications on one page of the list.
const PAGE_SIZE: usize = 25;

/// A submitted form's fields by name.
type Params = BTreeMap<String, String>;

/// One input of the form (or one line of the application's page).
pub struct Field {
    pub name: &'static str,
    pub label: String,
    pub help: String,
    /// `text`, `textarea`, `lines`, `number`, `checkbox`, `select` or `checkboxes`.
    pub kind: &'static str,
    pub value: String,
    pub checked: bool,
    pub options: Vec<Choice>,
    pub error: Option<String>,
}

/// One option of a `select`, or one box of `checkboxes`.
pub struct Choice {
    pub value: String,
    pub selected: bool,
}

impl Field {
    fn new(name: &'static str, doc: &str, input: Input) -> Field {
        // Free text that may run over lines: a key set, a description.
        let kind = match input.kind {
            "text" if matches!(name, "description" | "jwks") => "textarea",
            kind => kind,
        };
        Field {
            name,
            label: label(name),
            // The registry's docs mark names up as code, which a page shows as they are.
            help: doc.trim().replace('`', ""),
            kind,
            value: input.value,
            checked: input.checked,
            options: input.options,
            error: None,
        }
    }

    /// Shows what was submitted instead of what the form showed before.
    fn resubmitted(&mut self, params: &Params) {
        let submitted = params.get(self.name).cloned().unwrap_or_default();
        match self.kind {
            "checkbox" => self.checked = params.contains_key(self.name),
            "checkboxes" => {
                for option in &mut self.options {
                    option.selected = params.contains_key(&box_name(self.name, &option.value));
                }
            }
            "select" => {
                for option in &mut self.options {
                    option.selected = option.value == submitted;
                }
            }
            _ => self.value = submitted,
        }
    }

    /// The value as the application's page shows it; a dash for nothing.
    pub fn shown(&self) -> String {
        let shown = match self.kind {
            "checkbox" => if self.checked { "yes" } else { "no" }.into(),
            "checkboxes" | "select" => self
                .options
                .iter()
                .filter(|o| o.selected)
                .map(|o| o.value.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            _ => self.value.clone(),
        };
        if shown.is_empty() {
            "—".into()
        } else {
            shown
        }
    }
}

/// The name of one box of a `checkboxes` field: fields are never repeated in a form.
fn box_name(field: &str, value: &str) -> String {
    format!("{field}.{value}")
}

/// How a value is shown on the form.
pub struct Input {
    kind: &'static str,
    value: String,
    checked: bool,
    options: Vec<Choice>,
}

impl Input {
    fn text(kind: &'static str, value: String) -> Input {
        Input {
            kind,
            value,
            checked: false,
            options: vec![],
        }
    }
}

/// How a field's type is edited: shown as an input, read back as the registry's change.
trait FormField {
    /// What `AppChanges` holds for the field.
    type Change: PartialEq;
    fn input(&self) -> Input;
    /// This value, as a change would set it.
    fn as_change(&self) -> Self::Change;
    /// The submitted value; `Err` says what is wrong with it.
    fn read(name: &str, params: &Params) -> Result<Self::Change, String>;
}

fn submitted<'p>(name: &str, params: &'p Params) -> &'p str {
    params.get(name).map_or("", |value| value.trim())
}

impl FormField for String {
    type Change = String;
    fn input(&self) -> Input {
        Input::text("text", self.clone())
    }
    fn as_change(&self) -> String {
        self.clone()
    }
    fn read(name: &str, params: &Params) -> Result<String, String> {
        Ok(submitted(name, params).to_owned())
    }
}

/// An optional text: empty removes it.
impl FormField for Option<String> {
    type Change = String;
    fn input(&self) -> Input {
        Input::text("text", self.clone().unwrap_or_default())
    }
    fn as_change(&self) -> String {
        self.clone().unwrap_or_default()
    }
    fn read(name: &str, params: &Params) -> Result<String, String> {
        Ok(submitted(name, params).to_owned())
    }
}

impl FormField for i64 {
    type Change = i64;
    fn input(&self) -> Input {
        Input::text("number", self.to_string())
    }
    fn as_change(&self) -> i64 {
        *self
    }
    fn read(name: &str, params: &Params) -> Result<i64, String> {
        submitted(name, params)
            .parse()
            .map_err(|_| "must be a whole number".into())
    }
}

impl FormField for bool {
    type Change = bool;
    fn input(&self) -> Input {
        Input {
            checked: *self,
            ..Input::text("checkbox", String::new())
        }
    }
    fn as_change(&self) -> bool {
        *self
    }
    fn read(name: &str, params: &Params) -> Result<bool, String> {
        Ok(params.contains_key(name))
    }
}

/// A list (URIs, scopes, audiences): one per line, or separated by spaces — none of them
/// contains a space.
impl FormField for Vec<String> {
    type Change = Vec<String>;
    fn input(&self) -> Input {
        Input::text("lines", self.join("\n"))
    }
    fn as_change(&self) -> Vec<String> {
        self.clone()
    }
    fn read(name: &str, params: &Params) -> Result<Vec<String>, String> {
        Ok(submitted(name, params)
            .split_whitespace()
            .map(str::to_owned)
            .collect())
    }
}

impl FormField for Vec<GrantType> {
    type Change = Vec<GrantType>;
    fn input(&self) -> Input {
        Input {
            options: GrantType::ALL
                .iter()
                .map(|grant| Choice {
                    value: grant.as_str().into(),
                    selected: self.contains(grant),
                })
                .collect(),
            ..Input::text("checkboxes", String::new())
        }
    }
    fn as_change(&self) -> Vec<GrantType> {
        self.clone()
    }
    fn read(name: &str, params: &Params) -> Result<Vec<GrantType>, String> {
        Ok(GrantType::ALL
            .into_iter()
            .filter(|grant| params.contains_key(&box_name(name, grant.as_str())))
            .collect())
    }
}

/// One of a few values, named as the registry's JSON names them.
trait Choices: Sized + Copy + PartialEq + 'static + serde::Serialize + DeserializeOwned {
    const ALL: &'static [Self];
    fn name(self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    }
}

impl Choices for ClientType {
    const ALL: &'static [Self] = &[ClientType::Confidential, ClientType::Public];
}

impl Choices for TokenFormat {
    const ALL: &'static [Self] = &[TokenFormat::Opaque, TokenFormat::Jwt];
}

/// The algorithm of ID tokens, the one field of this type: EdDSA is not offered, since the
/// registry refuses it there.
impl Choices for SigningAlgorithm {
    const ALL: &'static [Self] = &[SigningAlgorithm::Es256, SigningAlgorithm::Rs256];
}

impl<T: Choices> FormField for T {
    type Change = T;
    fn input(&self) -> Input {
        Input {
            options: T::ALL
                .iter()
                .map(|choice| Choice {
                    value: choice.name(),
                    selected: choice == self,
                })
                .collect(),
            ..Input::text("select", String::new())
        }
    }
    fn as_change(&self) -> T {
        *self
    }
    fn read(name: &str, params: &Params) -> Result<T, String> {
        let value = submitted(name, params);
        T::ALL
            .iter()
            .copied()
            .find(|choice| choice.name() == value)
            .ok_or_else(|| "is not one of the choices".into())
    }
}

/// A field's change: the submitted value when it differs from what the form showed.
fn changed<T: FormField>(
    name: &'static str,
    shown: &T,
    params: &Params,
    errors: &mut Vec<(&'static str, String)>,
) -> Option<T::Change> {
    match T::read(name, params) {
        Ok(value) if value != shown.as_change() => Some(value),
        Ok(_) => None,
        Err(why) => {
            errors.push((name, why));
            None
        }
    }
}

/// Declares, from the registry's field list, what the form shows and how it reads back.
macro_rules! app_form {
    ($(
        $(#[doc = $doc:literal])*
        #[arg($($arg:tt)*)]
        $field:ident : $ty:ty => $change:ty = $default:expr,
    )*) => {
        /// What the form showed for each field: an application's values, or a new one's
        /// defaults.
        struct Shown {
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

/// A submitted application form.
#[derive(Deserialize)]
pub struct AppForm {
    #[serde(flatten)]
    params: Params,
}

impl CsrfChecked for AppForm {
    const PURPOSE: &'static str = super::FORM_PURPOSE;
}

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
    query: String,
    rows: Vec<Row>,
    total: usize,
    page: usize,
    pages: usize,
    previous: Option<String>,
    next: Option<String>,
}

#[derive(Deserialize, Default)]
struct ListQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    page: String,
}

/// The list's URL for a search and a page.
fn list_url(query: &str, page: usize) -> String {
    let mut url = form_urlencoded::Serializer::new(String::new());
    if !query.is_empty() {
        url.append_pair("q", query);
    }
    url.append_pair("page", &page.to_string());
    format!("/admin/applications?{}", url.finish())
}

/// `GET /admin/applications?q=…&page=…`: by name, searched by name or client_id.
pub async fn list(
    admin: ConsoleAdmin,
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, PageError> {
    let query: ListQuery = pages::form(raw.unwrap_or_default().as_bytes()).unwrap_or_default();
    let needle = query.q.trim().to_lowercase();
    let mut apps: Vec<Client> = admin
        .registry
        .list_apps()
        .await?
        .into_iter()
        .filter(|app| {
            needle.is_empty()
                || app.name.to_lowercase().contains(&needle)
                || app.client_id.to_lowercase().contains(&needle)
        })
        .collect();
    apps.sort_by(|a, b| {
        (a.name.to_lowercase(), &a.client_id).cmp(&(b.name.to_lowercase(), &b.client_id))
    });
    let total = apps.len();
    let pages = total.div_ceil(PAGE_SIZE).max(1);
    let page = query.page.parse::<usize>().unwrap_or(1).clamp(1, pages);
    let rows = apps
        .into_iter()
        .skip((page - 1) * PAGE_SIZE)
        .take(PAGE_SIZE)
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
    let search = query.q.trim().to_owned();
    let html = ListPage {
        frame: admin.frame(&state, "applications"),
        previous: (page > 1).then(|| list_url(&search, page - 1)),
        next: (page < pages).then(|| list_url(&search, page + 1)),
        query: search,
        rows,
        total,
        page,
        pages,
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
    let app = admin.registry.get_app(&client_id).await?;
    let html = AppPage {
        frame: admin.frame(&state, "applications"),
        fields: Shown::of(&app).fields(),
        app,
    }
    .render();
    Ok(admin.page(&state, StatusCode::OK, html))
}

#[derive(Template)]
#[template(path = "console/app_form.html")]
struct FormPage {
    frame: Frame,
    /// The application edited; `None` on the form of a new one.
    client_id: Option<String>,
    /// A new application's chosen client_id, as submitted.
    new_client_id: String,
    fields: Vec<Field>,
    /// Messages that concern no one field.
    errors: Vec<String>,
}

impl FormPage {
    fn action(&self) -> String {
        match &self.client_id {
            Some(client_id) => format!("/admin/applications/{client_id}"),
            None => "/admin/applications".into(),
        }
    }
}

/// `GET /admin/applications/new`
pub async fn new(
    admin: ConsoleAdmin,
    State(state): State<AppState>,
) -> Result<Response, PageError> {
    let html = FormPage {
        frame: admin.frame(&state, "applications"),
        client_id: None,
        new_client_id: String::new(),
        fields: Shown::defaults().fields(),
        errors: vec![],
    }
    .render();
    Ok(admin.page(&state, StatusCode::OK, html))
}

/// `GET /admin/applications/{client_id}/edit`
pub async fn edit(
    admin: ConsoleAdmin,
    State(state): State<AppState>,
    Path(client_id): Path<String>,
) -> Result<Response, PageError> {
    let app = admin.registry.get_app(&client_id).await?;
    let html = FormPage {
        frame: admin.frame(&state, "applications"),
        client_id: Some(app.client_id.clone()),
        new_client_id: String::new(),
        fields: Shown::of(&app).fields(),
        errors: vec![],
    }
    .render();
    Ok(admin.page(&state, StatusCode::OK, html))
}

/// The form shown again with what was submitted and why it was not accepted (`422`): nothing
/// changed, so there is nothing to redirect to.
fn refused_form(
    admin: &ConsoleAdmin,
    state: &AppState,
    client_id: Option<String>,
    shown: &Shown,
    params: &Params,
    mut errors: Vec<(&'static str, String)>,
    general: Option<String>,
) -> Response {
    let mut fields = shown.fields();
    for field in &mut fields {
        field.resubmitted(params);
    }
    let mut unplaced = Vec::new();
    // The registry's messages name the field they concern, when one does.
    if let Some(message) = general {
        match fields.iter().find(|f| names_field(&message, f.name)) {
            Some(field) => errors.push((field.name, message)),
            None => unplaced.push(message),
        }
    }
    for (name, message) in errors {
        if let Some(field) = fields.iter_mut().find(|f| f.name == name) {
            field.error = Some(message);
        }
    }
    let html = FormPage {
        frame: admin.frame(state, "applications"),
        client_id,
        new_client_id: params.get("client_id").cloned().unwrap_or_default(),
        fields,
        errors: unplaced,
    }
    .render();
    admin.page(state, StatusCode::UNPROCESSABLE_ENTITY, html)
}

/// Whether `message` names the field `name` as a word of its own.
fn names_field(message: &str, name: &str) -> bool {
    message
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .any(|word| word == name)
}

/// A refusal the form answers next to its fields; anything else is the error page's.
fn form_message(error: Error) -> Result<String, PageError> {
    match error {
        Error::Validation(message) | Error::Conflict(message) => Ok(message),
        other => Err(other.into()),
    }
}

/// `POST /admin/applications`: creates the application and shows its secret once.
pub async fn create(
    admin: ConsoleAdmin,
    State(state): State<AppState>,
    CsrfForm { form, .. }: CsrfForm<AppForm>,
) -> Result<Response, PageError> {
    let shown = Shown::defaults();
    let mut errors = Vec::new();
    let fields = shown.changes(&form.params, &mut errors);
    if !errors.is_empty() {
        return Ok(refused_form(
            &admin,
            &state,
            None,
            &shown,
            &form.params,
            errors,
            None,
        ));
    }
    let client_id = Some(submitted("client_id", &form.params))
        .filter(|id| !id.is_empty())
        .map(str::to_owned);
    let new = NewApp {
        client_id,
        client_secret: None,
        fields,
    };
    let (app, secret) = match admin.registry.create_app(new, false).await {
        Ok(created) => created,
        Err(error) => {
            let message = form_message(error)?;
            return Ok(refused_form(
                &admin,
                &state,
                None,
                &shown,
                &form.params,
                errors,
                Some(message),
            ));
        }
    };
    let flash = Flash {
        secret: secret.map(|s| s.expose().to_owned()),
        ..Flash::success(format!("Application {} created.", app.name))
    };
    Ok(redirect_with(
        &state,
        &format!("/admin/applications/{}", app.client_id),
        &flash,
    ))
}

/// `POST /admin/applications/{client_id}`: changes what the form changed.
pub async fn update(
    admin: ConsoleAdmin,
    State(state): State<AppState>,
    Path(client_id): Path<String>,
    CsrfForm { form, .. }: CsrfForm<AppForm>,
) -> Result<Response, PageError> {
    let app = admin.registry.get_app(&client_id).await?;
    let shown = Shown::of(&app);
    let mut errors = Vec::new();
    let changes = shown.changes(&form.params, &mut errors);
    let id = Some(app.client_id.clone());
    if !errors.is_empty() {
        return Ok(refused_form(
            &admin,
            &state,
            id,
            &shown,
            &form.params,
            errors,
            None,
        ));
    }
    match admin.registry.update_app(&client_id, changes).await {
        Ok(app) => Ok(redirect_with(
            &state,
            &format!("/admin/applications/{}", app.client_id),
            &Flash::success(format!("Application {} saved.", app.name)),
        )),
        Err(error) => {
            let message = form_message(error)?;
            Ok(refused_form(
                &admin,
                &state,
                id,
                &shown,
                &form.params,
                errors,
                Some(message),
            ))
        }
    }
}

#[derive(Template)]
#[template(path = "console/confirm.html")]
struct ConfirmPage<'a> {
    frame: Frame,
    title: String,
    message: String,
    action: String,
    button: &'a str,
    cancel: String,
    /// Whether the form asks how long the replaced secret keeps working.
    grace: Option<i64>,
}

/// `GET /admin/applications/{client_id}/rotate-secret`
pub async fn confirm_rotation(
    admin: ConsoleAdmin,
    State(state): State<AppState>,
    Path(client_id): Path<String>,
) -> Result<Response, PageError> {
    let app = admin.registry.get_app(&client_id).await?;
    let html = ConfirmPage {
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

/// `GET /admin/applications/{client_id}/delete`
pub async fn confirm_deletion(
    admin: ConsoleAdmin,
    State(state): State<AppState>,
    Path(client_id): Path<String>,
) -> Result<Response, PageError> {
    let app = admin.registry.get_app(&client_id).await?;
    let html = ConfirmPage {
        frame: admin.frame(&state, "applications"),
        title: format!("Delete {}?", app.name),
        message: "The application and every token issued to it are deleted. This cannot be \
                  undone."
            .into(),
        action: format!("/admin/applications/{}/delete", app.client_id),
        button: "Delete application",
        cancel: format!("/admin/applications/{}", app.client_id),
        grace: None,
    }
    .render();
    Ok(admin.page(&state, StatusCode::OK, html))
}

/// `POST /admin/applications/{client_id}/delete`
pub async fn delete(
    admin: ConsoleAdmin,
    State(state): State<AppState>,
    Path(client_id): Path<String>,
    _: CsrfForm<Confirmation>,
) -> Result<Response, PageError> {
    let app = admin.registry.get_app(&client_id).await?;
    admin.registry.delete_app(&client_id).await?;
    Ok(redirect_with(
        &state,
        "/admin/applications",
        &Flash::success(format!("Application {} deleted.", app.name)),
    ))
}
