//! The pages every kind of record edited as a form of fields shares: the form of a new one,
//! the form of one, the form again with why it was refused (`422`), the confirmation before a
//! deletion and the deletion. A kind ([`RecordKind`]) states only what is its own: its names,
//! its fields, and how the registry reads, saves and deletes it — which is also where its
//! permissions are checked.

use std::future::Future;

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use gatehouse_core::Error;
use serde::{Deserialize, Serialize};

use super::form::{Field, Params, form_message, names_field, place_errors};
use super::{ConfirmPage, Confirmation, ConsoleAdmin, Flash, Frame, redirect_with};
use crate::error::PageError;
use crate::extract::{CsrfChecked, CsrfForm};
use crate::pages::{self, FormPayload};
use crate::state::AppState;

/// A kind of record the console edits as a form of fields.
pub trait RecordKind: 'static {
    type Record: Send + Sync;
    /// What the form showed, against which the submitted form is read: a record's values, or
    /// a new one's defaults.
    type Shown: Send + Sync;

    /// Its pages' path under `/admin`, which is also the navigation's section.
    const SECTION: &'static str;
    /// What one is called in messages ("JWT provider bob created.").
    const KIND: &'static str;
    /// What the list of them is called.
    const TITLE: &'static str;
    /// The heading of a new one's form, and its button.
    const NEW: &'static str;
    const CREATE: &'static str;
    /// The input that names a new one: its field, label and help.
    const KEY: (&'static str, &'static str, &'static str);
    /// Whether the form is the record's own page (with its delete button there), rather than
    /// at `…/edit` beside a page that shows the record.
    const FORM_IS_PAGE: bool;
    /// What the confirmation of a deletion says, and its button.
    const DELETION: (&'static str, &'static str);

    fn get(
        admin: &ConsoleAdmin,
        state: &AppState,
        key: &str,
    ) -> impl Future<Output = Result<Self::Record, Error>> + Send;
    /// What names it in its URL.
    fn key(record: &Self::Record) -> &str;
    /// What names it to people.
    fn name(record: &Self::Record) -> &str {
        Self::key(record)
    }
    fn shown(record: Option<&Self::Record>) -> Self::Shown;
    fn fields(shown: &Self::Shown) -> Vec<Field>;
    /// Write-only inputs after the fields (passwords, secrets), never filled in.
    fn secrets(_record: Option<&Self::Record>) -> Vec<Secret> {
        vec![]
    }
    /// Pages the record's page leads to beside its form.
    fn links(
        state: &AppState,
        record: &Self::Record,
    ) -> impl Future<Output = Result<Vec<Link>, Error>> + Send {
        let _ = (state, record);
        async { Ok(vec![]) }
    }
    /// Creates (`existing` is `None`) or changes the record as submitted: the saved record and
    /// a secret shown once, or why not.
    fn save(
        admin: &ConsoleAdmin,
        state: &AppState,
        existing: Option<&Self::Record>,
        shown: &Self::Shown,
        params: &Params,
    ) -> impl Future<Output = Result<(Self::Record, Option<String>), Refused>> + Send;
    /// Deletes the record: the name the message gives it, or the refusal the record's page
    /// shows; an `Err` is the error page's.
    fn delete(
        admin: &ConsoleAdmin,
        state: &AppState,
        key: &str,
    ) -> impl Future<Output = Result<Result<String, Error>, PageError>> + Send;
}

/// Why a form was not saved: fields that could not be read, or the registry's refusal.
pub enum Refused {
    Fields(Vec<(&'static str, String)>),
    Registry(Error),
}

impl Refused {
    /// What `read` reads from a form, or the fields it could not read.
    pub fn unless_read<T>(
        read: impl FnOnce(&mut Vec<(&'static str, String)>) -> T,
    ) -> Result<T, Refused> {
        let mut errors = Vec::new();
        let read = read(&mut errors);
        if errors.is_empty() {
            Ok(read)
        } else {
            Err(Refused::Fields(errors))
        }
    }
}

impl From<Error> for Refused {
    fn from(error: Error) -> Refused {
        Refused::Registry(error)
    }
}

/// A submitted record form.
#[derive(Deserialize)]
pub struct RecordForm {
    #[serde(flatten)]
    params: Params,
}

impl CsrfChecked for RecordForm {
    const PURPOSE: &'static str = super::FORM_PURPOSE;
}

/// What the form of a new record carries, sealed with a ticket good for one submission of
/// what it holds: the form sent again as it was (a double click, a reload after a lost answer)
/// creates nothing more, on any instance, since the ticket is used up in the store. Refused
/// and corrected, it is another submission.
#[derive(Serialize, Deserialize)]
struct CreationTicket;

impl FormPayload for CreationTicket {
    const PURPOSE: &'static str = "console-create";
}

/// The input naming a new record, with its value as submitted and why it was refused.
struct KeyField {
    name: &'static str,
    label: &'static str,
    help: &'static str,
    value: String,
    error: Option<String>,
}

/// A link among the record's page's actions.
pub struct Link {
    pub id: &'static str,
    pub text: &'static str,
    pub href: String,
}

/// A write-only input.
pub struct Secret {
    pub name: &'static str,
    pub label: &'static str,
    pub help: String,
}

#[derive(Template)]
#[template(path = "console/record_form.html")]
struct FormPage {
    frame: Frame,
    base: String,
    title: &'static str,
    new: &'static str,
    create: &'static str,
    form_is_page: bool,
    /// The record's key; `None` on the form of a new one.
    key: Option<String>,
    /// The input naming a new one.
    key_field: KeyField,
    /// A new one's form's sealed [`CreationTicket`].
    ticket: Option<String>,
    fields: Vec<Field>,
    secrets: Vec<Secret>,
    links: Vec<Link>,
    /// Messages that concern no one field.
    errors: Vec<String>,
}

impl FormPage {
    fn action(&self) -> String {
        match &self.key {
            Some(key) => format!("{}/{key}", self.base),
            None => self.base.clone(),
        }
    }
}

/// The form of `record` (of a new one for `None`), as `K` shows it.
fn form_page<K: RecordKind>(
    admin: &ConsoleAdmin,
    state: &AppState,
    record: Option<&K::Record>,
    fields: Vec<Field>,
    params: Option<&Params>,
    errors: Vec<String>,
) -> FormPage {
    let (name, label, help) = K::KEY;
    FormPage {
        frame: admin.frame(state, K::SECTION),
        base: format!("/admin/{}", K::SECTION),
        title: K::TITLE,
        new: K::NEW,
        create: K::CREATE,
        form_is_page: K::FORM_IS_PAGE,
        key: record.map(|record| K::key(record).to_owned()),
        key_field: KeyField {
            name,
            label,
            help,
            value: params
                .and_then(|p| p.get(name))
                .cloned()
                .unwrap_or_default(),
            error: None,
        },
        ticket: record
            .is_none()
            .then(|| pages::seal(state, &CreationTicket)),
        fields,
        secrets: K::secrets(record),
        links: vec![],
        errors,
    }
}

/// `GET /admin/new/{section}`
pub async fn new<K: RecordKind>(
    admin: ConsoleAdmin,
    State(state): State<AppState>,
) -> Result<Response, PageError> {
    let fields = K::fields(&K::shown(None));
    let html = form_page::<K>(&admin, &state, None, fields, None, vec![]).render();
    Ok(admin.page(&state, StatusCode::OK, html))
}

/// What the page of a record shows where its form is elsewhere (`FORM_IS_PAGE` false): the
/// layout, the record, and its fields as its form shows them.
pub async fn page_of<K: RecordKind>(
    admin: &ConsoleAdmin,
    state: &AppState,
    key: &str,
) -> Result<(Frame, K::Record, Vec<Field>), PageError> {
    let record = K::get(admin, state, key).await?;
    let fields = K::fields(&K::shown(Some(&record)));
    Ok((admin.frame(state, K::SECTION), record, fields))
}

/// `GET /admin/{section}/{key}` (or `…/edit`): the record, in its form.
pub async fn edit<K: RecordKind>(
    admin: ConsoleAdmin,
    State(state): State<AppState>,
    Path(key): Path<String>,
) -> Result<Response, PageError> {
    let record = K::get(&admin, &state, &key).await?;
    let fields = K::fields(&K::shown(Some(&record)));
    let mut page = form_page::<K>(&admin, &state, Some(&record), fields, None, vec![]);
    page.links = K::links(&state, &record).await?;
    Ok(admin.page(&state, StatusCode::OK, page.render()))
}

/// The record created or changed as submitted, and a `303` to it; or the form again with what
/// was submitted and why it was not accepted (`422`): nothing changed, so there is nothing to
/// redirect to.
async fn save<K: RecordKind>(
    admin: ConsoleAdmin,
    state: AppState,
    existing: Option<K::Record>,
    params: Params,
) -> Result<Response, PageError> {
    let shown = K::shown(existing.as_ref());
    let (errors, general) = match K::save(&admin, &state, existing.as_ref(), &shown, &params).await
    {
        Ok((record, secret)) => {
            let done = if existing.is_some() {
                "saved"
            } else {
                "created"
            };
            let flash = Flash {
                secret,
                ..Flash::success(format!("{} {} {done}.", K::KIND, K::name(&record)))
            };
            let location = format!("/admin/{}/{}", K::SECTION, K::key(&record));
            return Ok(redirect_with(&state, &location, &flash));
        }
        Err(Refused::Fields(errors)) => (errors, None),
        Err(Refused::Registry(error)) => (vec![], Some(form_message(error)?)),
    };
    // The name of a new record is an input of its own, next to which what names it goes: a
    // refusal the kind placed there, or one that names it.
    let placed_on_key = errors
        .iter()
        .find(|(name, _)| *name == K::KEY.0)
        .map(|(_, message)| message.clone());
    let mut fields = K::fields(&shown);
    let mut unplaced = place_errors(&mut fields, &params, errors, general);
    let key_error = placed_on_key.or_else(|| {
        existing
            .is_none()
            .then(|| unplaced.iter().position(|m| names_field(m, K::KEY.0)))
            .flatten()
            .map(|at| unplaced.remove(at))
    });
    let mut page = form_page::<K>(
        &admin,
        &state,
        existing.as_ref(),
        fields,
        Some(&params),
        unplaced,
    );
    page.key_field.error = key_error;
    Ok(admin.page(&state, StatusCode::UNPROCESSABLE_ENTITY, page.render()))
}

/// `POST /admin/{section}`: a form sent again as it was goes to the list, creating nothing. A
/// form without a usable ticket (none, or expired) is still the signed-in administrator's,
/// checked like any other, only not guarded against being sent twice.
pub async fn create<K: RecordKind>(
    admin: ConsoleAdmin,
    State(state): State<AppState>,
    CsrfForm { mut form, .. }: CsrfForm<RecordForm>,
) -> Result<Response, PageError> {
    if let Some(ticket) = form.params.remove("ticket") {
        let content = serde_json::to_string(&form.params).unwrap_or_default();
        match pages::redeem_for::<CreationTicket>(&state, &ticket, &content).await {
            Err(PageError::AlreadySubmitted) => {
                let flash = Flash::failure(
                    "This form was sent already as it is, and is not carried out twice: what it \
                     created is listed here.",
                );
                return Ok(redirect_with(
                    &state,
                    &format!("/admin/{}", K::SECTION),
                    &flash,
                ));
            }
            Ok(CreationTicket) | Err(PageError::Expired) => {}
            Err(error) => return Err(error),
        }
    }
    save::<K>(admin, state, None, form.params).await
}

/// `POST /admin/{section}/{key}`: changes what the form changed.
pub async fn update<K: RecordKind>(
    admin: ConsoleAdmin,
    State(state): State<AppState>,
    Path(key): Path<String>,
    CsrfForm { form, .. }: CsrfForm<RecordForm>,
) -> Result<Response, PageError> {
    let record = K::get(&admin, &state, &key).await?;
    save::<K>(admin, state, Some(record), form.params).await
}

/// `GET /admin/{section}/{key}/delete`
pub async fn confirm_deletion<K: RecordKind>(
    admin: ConsoleAdmin,
    State(state): State<AppState>,
    Path(key): Path<String>,
) -> Result<Response, PageError> {
    let record = K::get(&admin, &state, &key).await?;
    let (message, button) = K::DELETION;
    let at = format!("/admin/{}/{}", K::SECTION, K::key(&record));
    let html = ConfirmPage {
        frame: admin.frame(&state, K::SECTION),
        title: format!("Delete {}?", K::name(&record)),
        message: message.into(),
        action: format!("{at}/delete"),
        button,
        cancel: at,
        grace: None,
    }
    .render();
    Ok(admin.page(&state, StatusCode::OK, html))
}

/// `POST /admin/{section}/{key}/delete`: to the list when done, to the record's page with why
/// not when refused.
pub async fn delete<K: RecordKind>(
    admin: ConsoleAdmin,
    State(state): State<AppState>,
    Path(key): Path<String>,
    _: CsrfForm<Confirmation>,
) -> Result<Response, PageError> {
    match K::delete(&admin, &state, &key).await? {
        Ok(name) => Ok(redirect_with(
            &state,
            &format!("/admin/{}", K::SECTION),
            &Flash::success(format!("{} {name} deleted.", K::KIND)),
        )),
        Err(error) => Ok(redirect_with(
            &state,
            &format!("/admin/{}/{key}", K::SECTION),
            &Flash::failure(form_message(error)?),
        )),
    }
}
