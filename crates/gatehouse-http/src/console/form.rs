//! The console's forms: each field edited as its type is (`FormField`), read back as the
//! registry's change only when it differs from what the form showed, and the registry's
//! refusals placed next to the field they name.

use std::collections::BTreeMap;

use gatehouse_core::Error;
use gatehouse_core::client::{ClientType, GrantType, TokenFormat};
use gatehouse_core::federation::UserField;
use gatehouse_core::federation::jose::JwsAlgorithm;
use gatehouse_core::keys::SigningAlgorithm;
use serde::de::DeserializeOwned;

use super::label;
use crate::error::PageError;

/// A submitted form's fields by name.
pub type Params = BTreeMap<String, String>;

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
    pub fn new(name: &'static str, doc: &str, input: Input) -> Field {
        // Free text that may run over lines: a key set, a description.
        let kind = match input.kind {
            "text" if matches!(name, "description" | "jwks" | "static_key") => "textarea",
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
    pub fn resubmitted(&mut self, params: &Params) {
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
pub fn box_name(field: &str, value: &str) -> String {
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
pub trait FormField {
    /// What `AppChanges` holds for the field.
    type Change: PartialEq;
    fn input(&self) -> Input;
    /// This value, as a change would set it.
    fn as_change(&self) -> Self::Change;
    /// The submitted value; `Err` says what is wrong with it.
    fn read(name: &str, params: &Params) -> Result<Self::Change, String>;
}

pub fn submitted<'p>(name: &str, params: &'p Params) -> &'p str {
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

/// Whole numbers, of whichever width the record holds.
macro_rules! whole_numbers {
    ($($type:ty),*) => {$(
        impl FormField for $type {
            type Change = $type;
            fn input(&self) -> Input {
                Input::text("number", self.to_string())
            }
            fn as_change(&self) -> $type {
                *self
            }
            fn read(name: &str, params: &Params) -> Result<$type, String> {
                submitted(name, params)
                    .parse()
                    .map_err(|_| "must be a whole number".into())
            }
        }
    )*};
}

whole_numbers!(i64, u64);

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

/// Values of which a field holds any number, one box each.
pub trait Boxes: Sized + Copy + PartialEq + 'static {
    const ALL: &'static [Self];
    fn as_str(self) -> &'static str;
}

impl Boxes for GrantType {
    const ALL: &'static [Self] = &GrantType::ALL;
    fn as_str(self) -> &'static str {
        GrantType::as_str(self)
    }
}

impl Boxes for JwsAlgorithm {
    const ALL: &'static [Self] = &JwsAlgorithm::ALL;
    fn as_str(self) -> &'static str {
        JwsAlgorithm::as_str(self)
    }
}

impl<T: Boxes> FormField for Vec<T> {
    type Change = Vec<T>;
    fn input(&self) -> Input {
        Input {
            options: T::ALL
                .iter()
                .map(|value| Choice {
                    value: value.as_str().into(),
                    selected: self.contains(value),
                })
                .collect(),
            ..Input::text("checkboxes", String::new())
        }
    }
    fn as_change(&self) -> Vec<T> {
        self.clone()
    }
    fn read(name: &str, params: &Params) -> Result<Vec<T>, String> {
        Ok(T::ALL
            .iter()
            .copied()
            .filter(|value| params.contains_key(&box_name(name, value.as_str())))
            .collect())
    }
}

/// One of a few values, named as the registry's JSON names them.
pub trait Choices:
    Sized + Copy + PartialEq + 'static + serde::Serialize + DeserializeOwned
{
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

impl Choices for UserField {
    const ALL: &'static [Self] = &[UserField::UserName, UserField::Email];
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

/// A field's value as the record holds it, made from what the form read: for the kinds saved
/// whole from their fields rather than as changes.
pub trait FieldValue: FormField {
    fn from_change(change: Self::Change) -> Self;
}

/// The types whose change is the value itself.
macro_rules! held_as_read {
    ($($type:ty),*) => {$(
        impl FieldValue for $type {
            fn from_change(change: $type) -> $type {
                change
            }
        }
    )*};
}

held_as_read!(String, bool, i64, u64, Vec<String>);

/// Empty is none.
impl FieldValue for Option<String> {
    fn from_change(change: String) -> Option<String> {
        Some(change).filter(|value| !value.is_empty())
    }
}

impl<T: Choices> FieldValue for T {
    fn from_change(change: T) -> T {
        change
    }
}

/// A field's change: the submitted value when it differs from what the form showed.
pub fn changed<T: FormField>(
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

/// Shows `fields` with what was submitted and the messages of `errors` next to their fields;
/// `general`, the registry's refusal, goes next to the field it names or, naming none, into
/// what this returns: the messages for the top of the form.
pub fn place_errors(
    fields: &mut [Field],
    params: &Params,
    mut errors: Vec<(&'static str, String)>,
    general: Option<String>,
) -> Vec<String> {
    for field in fields.iter_mut() {
        field.resubmitted(params);
    }
    let mut unplaced = Vec::new();
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
    unplaced
}

/// Whether `message` names the field `name` as a word of its own, or names one item of a
/// list field (`method "get"` concerns `methods`).
pub fn names_field(message: &str, name: &str) -> bool {
    message
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .any(|word| word == name || name.strip_suffix('s') == Some(word))
}

/// A refusal the form answers next to its fields; anything else is the error page's.
pub fn form_message(error: Error) -> Result<String, PageError> {
    match error {
        Error::Validation(message) | Error::Conflict(message) => Ok(message),
        other => Err(other.into()),
    }
}
