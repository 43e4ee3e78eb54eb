//! `/admin/jwt-providers`: the trusted issuers of JWTs — listed (searched by name or issuer,
//! paged), shown in their form, created, changed and deleted after a confirmation, through the
//! registry acting for the signed-in administrator, which decides who may, as for the admin
//! API. A saved form changes only the fields that differ from what it showed.

use askama::Template;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use gatehouse_core::federation::jose::JwsAlgorithm;
use gatehouse_core::federation::{
    DEFAULT_MAX_ASSERTION_AGE, DEFAULT_MAX_ASSERTION_LIFETIME, DEFAULT_STALE_KEYS_LIFETIME,
    JwtProvider, JwtProviderChanges, KeySource, NewJwtProvider, UserField,
};
use serde::Deserialize;

use super::form::{Field, FormField, Params, changed, form_message, place_errors, submitted};
use super::{Confirmation, ConsoleAdmin, Flash, Frame, ListQuery, Paged, redirect_with};
use crate::error::PageError;
use crate::extract::{CsrfChecked, CsrfForm};
use crate::state::AppState;

const SECTION: &str = "jwt-providers";

/// What the form showed: a provider's values, or a new one's. Its key source is the one of
/// `jwks_url`, `discovery_url` and `static_key` that is set.
struct Shown {
    issuer: String,
    audiences: Vec<String>,
    jwks_url: Option<String>,
    discovery_url: Option<String>,
    static_key: Option<String>,
    algorithms: Vec<JwsAlgorithm>,
    user_claim: String,
    user_field: UserField,
    allowed_clients: Vec<String>,
    max_age: i64,
    max_lifetime: i64,
    api_access: bool,
    api_scopes: Vec<String>,
    accept_plain_jwt: bool,
    accept_id_tokens: bool,
    stale_keys_lifetime: i64,
    map_registry_roles: bool,
    active: bool,
}

impl Shown {
    fn of(provider: &JwtProvider) -> Shown {
        let source = |kind: &str| {
            (provider.key_source.kind() == kind).then(|| provider.key_source.value().to_owned())
        };
        Shown {
            issuer: provider.issuer.clone(),
            audiences: provider.audiences.clone(),
            jwks_url: source("jwks_url"),
            discovery_url: source("discovery_url"),
            static_key: source("static"),
            algorithms: provider.algorithms.clone(),
            user_claim: provider.user_claim.clone(),
            user_field: provider.user_field,
            allowed_clients: provider.allowed_clients.clone(),
            max_age: provider.max_age,
            max_lifetime: provider.max_lifetime,
            api_access: provider.api_access,
            api_scopes: provider.api_scopes.clone(),
            accept_plain_jwt: provider.accept_plain_jwt,
            accept_id_tokens: provider.accept_id_tokens,
            stale_keys_lifetime: provider.stale_keys_lifetime,
            map_registry_roles: provider.map_registry_roles,
            active: provider.active,
        }
    }

    /// A new provider's form, showing the registry's defaults.
    fn new_provider() -> Shown {
        Shown {
            issuer: String::new(),
            audiences: vec![],
            jwks_url: None,
            discovery_url: None,
            static_key: None,
            algorithms: vec![JwsAlgorithm::RS256, JwsAlgorithm::ES256],
            user_claim: "sub".into(),
            user_field: UserField::UserName,
            allowed_clients: vec![],
            max_age: DEFAULT_MAX_ASSERTION_AGE,
            max_lifetime: DEFAULT_MAX_ASSERTION_LIFETIME,
            api_access: false,
            api_scopes: vec![],
            accept_plain_jwt: false,
            accept_id_tokens: false,
            stale_keys_lifetime: DEFAULT_STALE_KEYS_LIFETIME,
            map_registry_roles: false,
            active: true,
        }
    }

    fn fields(&self) -> Vec<Field> {
        vec![
            Field::new("issuer", "The iss of its tokens.", self.issuer.input()),
            Field::new(
                "audiences",
                "aud values naming this server at that issuer.",
                self.audiences.input(),
            ),
            Field::new(
                "jwks_url",
                "Its JWK Set URL; give this, the discovery URL or a static key.",
                self.jwks_url.input(),
            ),
            Field::new(
                "discovery_url",
                "Its OpenID discovery document, whose jwks_uri is fetched.",
                self.discovery_url.input(),
            ),
            Field::new(
                "static_key",
                "A PEM public key, a JWK or a JWK Set.",
                self.static_key.input(),
            ),
            Field::new(
                "algorithms",
                "The algorithms its tokens may be signed with.",
                self.algorithms.input(),
            ),
            Field::new(
                "user_claim",
                "The claim naming the user.",
                self.user_claim.input(),
            ),
            Field::new(
                "user_field",
                "The user field that claim is matched against.",
                self.user_field.input(),
            ),
            Field::new(
                "allowed_clients",
                "client_ids of the applications that may present its assertions.",
                self.allowed_clients.input(),
            ),
            Field::new(
                "max_age",
                "The oldest assertion accepted, in seconds since its iat.",
                self.max_age.input(),
            ),
            Field::new(
                "max_lifetime",
                "The longest an assertion may live, in seconds.",
                self.max_lifetime.input(),
            ),
            Field::new(
                "api_access",
                "Its tokens are accepted as bearer tokens on the APIs.",
                self.api_access.input(),
            ),
            Field::new(
                "api_scopes",
                "The scopes its tokens may carry on the APIs.",
                self.api_scopes.input(),
            ),
            Field::new(
                "accept_plain_jwt",
                "Accept its tokens typed JWT (or untyped) as access tokens, besides at+jwt.",
                self.accept_plain_jwt.input(),
            ),
            Field::new(
                "accept_id_tokens",
                "Accept its ID tokens on the APIs.",
                self.accept_id_tokens.input(),
            ),
            Field::new(
                "stale_keys_lifetime",
                "Seconds its keys stay in use past their expiry while refreshing them fails.",
                self.stale_keys_lifetime.input(),
            ),
            Field::new(
                "map_registry_roles",
                "Its tokens may stand for users holding a registry role (only admin may set it).",
                self.map_registry_roles.input(),
            ),
            Field::new(
                "active",
                "An inactive provider's tokens are refused.",
                self.active.input(),
            ),
        ]
    }

    fn changes(
        &self,
        params: &Params,
        errors: &mut Vec<(&'static str, String)>,
    ) -> JwtProviderChanges {
        let jwks_url = changed("jwks_url", &self.jwks_url, params, errors);
        let discovery_url = changed("discovery_url", &self.discovery_url, params, errors);
        let static_key = changed("static_key", &self.static_key, params, errors);
        // A changed source is the one of the three the form now names.
        let key_source = if [&jwks_url, &discovery_url, &static_key]
            .iter()
            .any(|change| change.is_some())
        {
            let named = |name| Some(submitted(name, params).to_owned()).filter(|v| !v.is_empty());
            KeySource::from_options(
                named("jwks_url"),
                named("discovery_url"),
                named("static_key"),
            )
            .unwrap_or_else(|error| {
                errors.push(("jwks_url", error.to_string()));
                None
            })
        } else {
            None
        };
        JwtProviderChanges {
            issuer: changed("issuer", &self.issuer, params, errors),
            audiences: changed("audiences", &self.audiences, params, errors),
            key_source,
            algorithms: changed("algorithms", &self.algorithms, params, errors),
            user_claim: changed("user_claim", &self.user_claim, params, errors),
            user_field: changed("user_field", &self.user_field, params, errors),
            allowed_clients: changed("allowed_clients", &self.allowed_clients, params, errors),
            max_age: changed("max_age", &self.max_age, params, errors),
            max_lifetime: changed("max_lifetime", &self.max_lifetime, params, errors),
            api_access: changed("api_access", &self.api_access, params, errors),
            api_scopes: changed("api_scopes", &self.api_scopes, params, errors),
            accept_plain_jwt: changed("accept_plain_jwt", &self.accept_plain_jwt, params, errors),
            accept_id_tokens: changed("accept_id_tokens", &self.accept_id_tokens, params, errors),
            stale_keys_lifetime: changed(
                "stale_keys_lifetime",
                &self.stale_keys_lifetime,
                params,
                errors,
            ),
            map_registry_roles: changed(
                "map_registry_roles",
                &self.map_registry_roles,
                params,
                errors,
            ),
            active: changed("active", &self.active, params, errors),
        }
    }
}

/// A submitted JWT provider form.
#[derive(Deserialize)]
pub struct JwtProviderForm {
    #[serde(flatten)]
    params: Params,
}

impl CsrfChecked for JwtProviderForm {
    const PURPOSE: &'static str = super::FORM_PURPOSE;
}

#[derive(Template)]
#[template(path = "console/jwt_providers.html")]
struct ListPage {
    frame: Frame,
    providers: Vec<JwtProvider>,
    paged: Paged,
}

/// `GET /admin/jwt-providers?q=…&page=…`
pub async fn list(
    admin: ConsoleAdmin,
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, PageError> {
    let query = ListQuery::read(raw);
    let needle = query.needle();
    let mut providers: Vec<JwtProvider> = admin
        .registry
        .list_jwt_providers()
        .await?
        .into_iter()
        .filter(|provider| {
            needle.is_empty()
                || [&provider.name, &provider.issuer]
                    .into_iter()
                    .any(|text| text.to_lowercase().contains(&needle))
        })
        .collect();
    providers.sort_by(|a, b| a.name.cmp(&b.name));
    let (providers, paged) = Paged::of(providers, &query, "/admin/jwt-providers");
    let html = ListPage {
        frame: admin.frame(&state, SECTION),
        providers,
        paged,
    }
    .render();
    Ok(admin.page(&state, StatusCode::OK, html))
}

#[derive(Template)]
#[template(path = "console/jwt_provider_form.html")]
struct FormPage {
    frame: Frame,
    /// The provider shown; `None` on the form of a new one.
    name: Option<String>,
    /// A new provider's name, as submitted.
    new_name: String,
    fields: Vec<Field>,
    errors: Vec<String>,
}

impl FormPage {
    fn action(&self) -> String {
        match &self.name {
            Some(name) => format!("/admin/jwt-providers/{name}"),
            None => "/admin/jwt-providers".into(),
        }
    }
}

/// `GET /admin/new/jwt-providers`
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
    }
    .render();
    Ok(admin.page(&state, StatusCode::OK, html))
}

/// `GET /admin/jwt-providers/{name}`: the provider, in its form.
pub async fn show(
    admin: ConsoleAdmin,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, PageError> {
    let provider = admin.registry.get_jwt_provider(&name).await?;
    let html = FormPage {
        frame: admin.frame(&state, SECTION),
        name: Some(provider.name.clone()),
        new_name: String::new(),
        fields: Shown::of(&provider).fields(),
        errors: vec![],
    }
    .render();
    Ok(admin.page(&state, StatusCode::OK, html))
}

/// `POST /admin/jwt-providers` and `POST /admin/jwt-providers/{name}`: the provider created or
/// changed as submitted, or the form again with why not (`422`).
async fn save(
    admin: ConsoleAdmin,
    state: AppState,
    existing: Option<JwtProvider>,
    params: Params,
) -> Result<Response, PageError> {
    let shown = existing
        .as_ref()
        .map_or_else(Shown::new_provider, Shown::of);
    let mut errors = Vec::new();
    let fields = shown.changes(&params, &mut errors);
    let general = if errors.is_empty() {
        let saved = match &existing {
            Some(provider) => {
                admin
                    .registry
                    .update_jwt_provider(&provider.name, fields)
                    .await
            }
            None => {
                let name = submitted("name", &params).to_owned();
                let new = NewJwtProvider { name, fields };
                admin.registry.create_jwt_provider(new, false).await
            }
        };
        match saved {
            Ok(provider) => {
                let done = if existing.is_some() {
                    "saved"
                } else {
                    "created"
                };
                return Ok(redirect_with(
                    &state,
                    &format!("/admin/jwt-providers/{}", provider.name),
                    &Flash::success(format!("JWT provider {} {done}.", provider.name)),
                ));
            }
            Err(error) => Some(form_message(error)?),
        }
    } else {
        None
    };
    let mut fields = shown.fields();
    let unplaced = place_errors(&mut fields, &params, errors, general);
    let html = FormPage {
        frame: admin.frame(&state, SECTION),
        name: existing.map(|provider| provider.name),
        new_name: params.get("name").cloned().unwrap_or_default(),
        fields,
        errors: unplaced,
    }
    .render();
    Ok(admin.page(&state, StatusCode::UNPROCESSABLE_ENTITY, html))
}

/// `POST /admin/jwt-providers`
pub async fn create(
    admin: ConsoleAdmin,
    State(state): State<AppState>,
    CsrfForm { form, .. }: CsrfForm<JwtProviderForm>,
) -> Result<Response, PageError> {
    save(admin, state, None, form.params).await
}

/// `POST /admin/jwt-providers/{name}`
pub async fn update(
    admin: ConsoleAdmin,
    State(state): State<AppState>,
    Path(name): Path<String>,
    CsrfForm { form, .. }: CsrfForm<JwtProviderForm>,
) -> Result<Response, PageError> {
    let provider = admin.registry.get_jwt_provider(&name).await?;
    save(admin, state, Some(provider), form.params).await
}

/// `GET /admin/jwt-providers/{name}/delete`
pub async fn confirm_deletion(
    admin: ConsoleAdmin,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, PageError> {
    let provider = admin.registry.get_jwt_provider(&name).await?;
    let html = super::ConfirmPage {
        frame: admin.frame(&state, SECTION),
        title: format!("Delete {}?", provider.name),
        message: "Its tokens and assertions stop being accepted at once. This cannot be undone."
            .into(),
        action: format!("/admin/jwt-providers/{}/delete", provider.name),
        button: "Delete provider",
        cancel: format!("/admin/jwt-providers/{}", provider.name),
        grace: None,
    }
    .render();
    Ok(admin.page(&state, StatusCode::OK, html))
}

/// `POST /admin/jwt-providers/{name}/delete`
pub async fn delete(
    admin: ConsoleAdmin,
    State(state): State<AppState>,
    Path(name): Path<String>,
    _: CsrfForm<Confirmation>,
) -> Result<Response, PageError> {
    match admin.registry.delete_jwt_provider(&name).await {
        Ok(()) => Ok(redirect_with(
            &state,
            "/admin/jwt-providers",
            &Flash::success(format!("JWT provider {name} deleted.")),
        )),
        Err(error) => Ok(redirect_with(
            &state,
            &format!("/admin/jwt-providers/{name}"),
            &Flash::failure(form_message(error)?),
        )),
    }
}
