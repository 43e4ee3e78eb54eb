//! `/admin/providers`: the external OAuth providers Gatehouse obtains tokens from — listed
//! (searched by name, token endpoint or client_id, paged), shown in their form, created, saved
//! and deleted after a confirmation, through the outbound registry managed by the signed-in
//! administrator, which refuses those who may not manage outbound OAuth.
//!
//! The client secret and the password are write-only: no page shows them, and a blank field
//! keeps the stored one, as a credential left out of the admin API's document does.

use askama::Template;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use gatehouse_core::client::GrantType;
use gatehouse_core::outbound::{
    ClientAuthMethod, OAuthProvider, OUTBOUND_GRANTS, OutboundRegistry, ProviderSpec,
};
use gatehouse_core::secret::Secret;
use serde::Deserialize;

use super::form::{Choices, Field, FormField, Params, form_message, place_errors, submitted};
use super::{Confirmation, ConsoleAdmin, Flash, Frame, ListQuery, Paged, redirect_with};
use crate::error::PageError;
use crate::extract::{CsrfChecked, CsrfForm};
use crate::state::AppState;

const SECTION: &str = "providers";

impl Choices for ClientAuthMethod {
    const ALL: &'static [Self] = &[
        ClientAuthMethod::ClientSecretBasic,
        ClientAuthMethod::ClientSecretPost,
        ClientAuthMethod::PrivateKeyJwt,
    ];
}

/// The grant a provider is asked for: only those Gatehouse can use there.
impl Choices for GrantType {
    const ALL: &'static [Self] = &OUTBOUND_GRANTS;
}

/// A field's value as a provider's specification holds it.
trait SpecValue: FormField {
    fn from_change(change: Self::Change) -> Self;
}

impl SpecValue for String {
    fn from_change(change: String) -> String {
        change
    }
}

/// Empty is none.
impl SpecValue for Option<String> {
    fn from_change(change: String) -> Option<String> {
        Some(change).filter(|value| !value.is_empty())
    }
}

impl SpecValue for bool {
    fn from_change(change: bool) -> bool {
        change
    }
}

impl<T: Choices> SpecValue for T {
    fn from_change(change: T) -> T {
        change
    }
}

/// The fields of a provider other than its name and its write-only credentials, as the form
/// shows them and reads them back.
macro_rules! provider_fields {
    ($($field:ident: $type:ty = $default:expr, $help:literal;)*) => {
        /// What the form showed: a provider's values, or a new one's.
        struct Shown {
            $($field: $type,)*
        }

        impl Shown {
            fn of(provider: &OAuthProvider) -> Shown {
                Shown {
                    $($field: provider.$field.clone(),)*
                }
            }

            fn new_provider() -> Shown {
                Shown {
                    $($field: $default,)*
                }
            }

            fn fields(&self) -> Vec<Field> {
                vec![$(Field::new(stringify!($field), $help, self.$field.input()),)*]
            }

            /// The submitted specification of provider `name`, or what is wrong with its
            /// fields.
            fn spec(
                name: String,
                params: &Params,
            ) -> Result<ProviderSpec, Vec<(&'static str, String)>> {
                let mut errors = Vec::new();
                $(let $field = <$type as FormField>::read(stringify!($field), params)
                    .map(<$type as SpecValue>::from_change)
                    .map_err(|why| errors.push((stringify!($field), why)))
                    .ok();)*
                let credential = |field| {
                    Some(submitted(field, params))
                        .filter(|value| !value.is_empty())
                        .map(Secret::new)
                };
                match ($($field,)*) {
                    ($(Some($field),)*) if errors.is_empty() => Ok(ProviderSpec {
                        name,
                        client_secret: credential("client_secret"),
                        password: credential("password"),
                        $($field,)*
                    }),
                    _ => Err(errors),
                }
            }
        }
    };
}

provider_fields! {
    token_url: String = String::new(), "The provider's token endpoint.";
    authorization_url: Option<String> = None,
        "Its authorization endpoint, for the authorization-code grant.";
    client_id: String = String::new(), "Gatehouse's client_id at the provider.";
    auth_method: ClientAuthMethod = ClientAuthMethod::ClientSecretBasic,
        "How Gatehouse authenticates to the token endpoint.";
    grant: GrantType = GrantType::ClientCredentials, "The grant tokens are obtained with.";
    audience: Option<String> = None, "Sent as audience in token requests; empty for none.";
    resource: Option<String> = None, "Sent as resource (RFC 8707); empty for none.";
    username: Option<String> = None,
        "The resource owner of the password grant, the subject of the JWT bearer grant.";
    signing_alg: Option<String> = None,
        "ES256 or RS256: the key Gatehouse generates for private_key_jwt and the JWT bearer grant.";
    issuer: Option<String> = None,
        "The provider's issuer identifier; needed for the authorization-code grant.";
    authorization_response_iss_parameter_supported: bool = false,
        "Its authorization responses always carry iss (from its metadata).";
}

/// A submitted provider form.
#[derive(Deserialize)]
pub struct ProviderForm {
    #[serde(flatten)]
    params: Params,
}

impl CsrfChecked for ProviderForm {
    const PURPOSE: &'static str = super::FORM_PURPOSE;
}

/// The outbound registry changing providers for the administrator, if they may.
fn managed(state: &AppState, admin: &ConsoleAdmin) -> Result<OutboundRegistry, PageError> {
    Ok(state
        .services
        .outbound
        .registry()
        .managed_by(&admin.registry)?)
}

#[derive(Template)]
#[template(path = "console/providers.html")]
struct ListPage {
    frame: Frame,
    providers: Vec<OAuthProvider>,
    paged: Paged,
}

/// `GET /admin/providers?q=…&page=…`
pub async fn list(
    admin: ConsoleAdmin,
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, PageError> {
    let query = ListQuery::read(raw);
    let needle = query.needle();
    let mut providers: Vec<OAuthProvider> = state
        .services
        .outbound
        .registry()
        .list_providers()
        .await?
        .into_iter()
        .filter(|provider| {
            needle.is_empty()
                || [&provider.name, &provider.token_url, &provider.client_id]
                    .into_iter()
                    .any(|text| text.to_lowercase().contains(&needle))
        })
        .collect();
    providers.sort_by(|a, b| a.name.cmp(&b.name));
    let (providers, paged) = Paged::of(providers, &query, "/admin/providers");
    let html = ListPage {
        frame: admin.frame(&state, SECTION),
        providers,
        paged,
    }
    .render();
    Ok(admin.page(&state, StatusCode::OK, html))
}

#[derive(Template)]
#[template(path = "console/provider_form.html")]
struct FormPage {
    frame: Frame,
    /// The provider shown; `None` on the form of a new one.
    name: Option<String>,
    /// A new provider's name, as submitted.
    new_name: String,
    fields: Vec<Field>,
    errors: Vec<String>,
    /// Whether the provider holds a client secret, and a password.
    has_secret: bool,
    has_password: bool,
}

impl FormPage {
    fn action(&self) -> String {
        match &self.name {
            Some(name) => format!("/admin/providers/{name}"),
            None => "/admin/providers".into(),
        }
    }
}

/// `GET /admin/new/providers`
pub async fn new(
    admin: ConsoleAdmin,
    State(state): State<AppState>,
) -> Result<Response, PageError> {
    let html = FormPage {
        frame: admin.frame(&state, SECTION),
        name: None,
        new_name: String::new(),
        fields: Shown::new_provider().fields(),
        errors: vec![],
        has_secret: false,
        has_password: false,
    }
    .render();
    Ok(admin.page(&state, StatusCode::OK, html))
}

/// `GET /admin/providers/{name}`: the provider, in its form.
pub async fn show(
    admin: ConsoleAdmin,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, PageError> {
    let provider = state
        .services
        .outbound
        .registry()
        .get_provider(&name)
        .await?;
    let html = FormPage {
        frame: admin.frame(&state, SECTION),
        name: Some(provider.name.clone()),
        new_name: String::new(),
        fields: Shown::of(&provider).fields(),
        errors: vec![],
        has_secret: provider.client_secret_sealed.is_some(),
        has_password: provider.password_sealed.is_some(),
    }
    .render();
    Ok(admin.page(&state, StatusCode::OK, html))
}

/// `POST /admin/providers` and `POST /admin/providers/{name}`: the provider created or
/// replaced as submitted, its credentials kept where their fields are blank; or the form again
/// with why not (`422`).
async fn save(
    admin: ConsoleAdmin,
    state: AppState,
    existing: Option<OAuthProvider>,
    params: Params,
) -> Result<Response, PageError> {
    let registry = managed(&state, &admin)?;
    let name = match &existing {
        Some(provider) => provider.name.clone(),
        None => submitted("name", &params).to_owned(),
    };
    let (errors, general) = match Shown::spec(name, &params) {
        Err(errors) => (errors, None),
        // Saving replaces a provider of the same name: a new one must not take an existing one.
        Ok(spec) if existing.is_none() && taken(&registry, &spec.name).await? => {
            let message = format!("an OAuth provider named {:?} already exists", spec.name);
            (vec![], Some(message))
        }
        Ok(spec) => match registry.save_provider(spec).await {
            Ok(provider) => {
                let done = if existing.is_some() {
                    "saved"
                } else {
                    "created"
                };
                return Ok(redirect_with(
                    &state,
                    &format!("/admin/providers/{}", provider.name),
                    &Flash::success(format!("OAuth provider {} {done}.", provider.name)),
                ));
            }
            Err(error) => (vec![], Some(form_message(error)?)),
        },
    };
    let shown = existing
        .as_ref()
        .map_or_else(Shown::new_provider, Shown::of);
    let mut fields = shown.fields();
    let unplaced = place_errors(&mut fields, &params, errors, general);
    let html = FormPage {
        frame: admin.frame(&state, SECTION),
        name: existing.as_ref().map(|provider| provider.name.clone()),
        new_name: params.get("name").cloned().unwrap_or_default(),
        fields,
        errors: unplaced,
        has_secret: existing
            .as_ref()
            .is_some_and(|provider| provider.client_secret_sealed.is_some()),
        has_password: existing
            .as_ref()
            .is_some_and(|provider| provider.password_sealed.is_some()),
    }
    .render();
    Ok(admin.page(&state, StatusCode::UNPROCESSABLE_ENTITY, html))
}

/// Whether a provider is named `name`.
async fn taken(registry: &OutboundRegistry, name: &str) -> Result<bool, PageError> {
    match registry.get_provider(name).await {
        Ok(_) => Ok(true),
        Err(gatehouse_core::Error::NotFound(_)) => Ok(false),
        Err(error) => Err(error.into()),
    }
}

/// `POST /admin/providers`
pub async fn create(
    admin: ConsoleAdmin,
    State(state): State<AppState>,
    CsrfForm { form, .. }: CsrfForm<ProviderForm>,
) -> Result<Response, PageError> {
    save(admin, state, None, form.params).await
}

/// `POST /admin/providers/{name}`
pub async fn update(
    admin: ConsoleAdmin,
    State(state): State<AppState>,
    Path(name): Path<String>,
    CsrfForm { form, .. }: CsrfForm<ProviderForm>,
) -> Result<Response, PageError> {
    let provider = state
        .services
        .outbound
        .registry()
        .get_provider(&name)
        .await?;
    save(admin, state, Some(provider), form.params).await
}

/// `GET /admin/providers/{name}/delete`
pub async fn confirm_deletion(
    admin: ConsoleAdmin,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, PageError> {
    let provider = state
        .services
        .outbound
        .registry()
        .get_provider(&name)
        .await?;
    let html = super::ConfirmPage {
        frame: admin.frame(&state, SECTION),
        title: format!("Delete {}?", provider.name),
        message: "The provider and its stored credentials are deleted; a provider a profile names \
                  is not. This cannot be undone."
            .into(),
        action: format!("/admin/providers/{}/delete", provider.name),
        button: "Delete provider",
        cancel: format!("/admin/providers/{}", provider.name),
        grace: None,
    }
    .render();
    Ok(admin.page(&state, StatusCode::OK, html))
}

/// `POST /admin/providers/{name}/delete`
pub async fn delete(
    admin: ConsoleAdmin,
    State(state): State<AppState>,
    Path(name): Path<String>,
    _: CsrfForm<Confirmation>,
) -> Result<Response, PageError> {
    match managed(&state, &admin)?.delete_provider(&name).await {
        Ok(()) => Ok(redirect_with(
            &state,
            "/admin/providers",
            &Flash::success(format!("OAuth provider {name} deleted.")),
        )),
        Err(error) => Ok(redirect_with(
            &state,
            &format!("/admin/providers/{name}"),
            &Flash::failure(form_message(error)?),
        )),
    }
}
