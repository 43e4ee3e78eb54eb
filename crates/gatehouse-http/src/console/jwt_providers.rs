//! `/admin/jwt-providers`: the trusted issuers of JWTs — listed (searched by name or issuer,
//! paged), shown in their form, created, changed and deleted after a confirmation, through the
//! registry acting for the signed-in administrator, which decides who may, as for the admin
//! API. A saved form changes only the fields that differ from what it showed.

use askama::Template;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use gatehouse_core::Error;
use gatehouse_core::federation::jose::JwsAlgorithm;
use gatehouse_core::federation::{
    DEFAULT_MAX_ASSERTION_AGE, DEFAULT_MAX_ASSERTION_LIFETIME, DEFAULT_STALE_KEYS_LIFETIME,
    JwtProvider, JwtProviderChanges, KeySource, NewJwtProvider, UserField,
};

use super::form::{Field, FormField, Params, changed, submitted};
use super::record::{RecordKind, Refused};
use super::{ConsoleAdmin, Frame, ListQuery, Paged};
use crate::error::PageError;
use crate::state::AppState;

const SECTION: &str = "jwt-providers";

/// What the form showed: a provider's values, or a new one's. Its key source is the one of
/// `jwks_url`, `discovery_url` and `static_key` that is set.
pub struct Shown {
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
    let mut providers: Vec<JwtProvider> = admin
        .registry
        .list_jwt_providers()
        .await?
        .into_iter()
        .filter(|provider| query.finds([&provider.name, &provider.issuer]))
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

/// JWT providers, in the console's record pages.
pub struct JwtProviders;

impl RecordKind for JwtProviders {
    type Record = JwtProvider;
    type Shown = Shown;

    const SECTION: &'static str = SECTION;
    const KIND: &'static str = "JWT provider";
    const TITLE: &'static str = "JWT providers";
    const NEW: &'static str = "New provider";
    const CREATE: &'static str = "Create provider";
    const KEY: (&'static str, &'static str, &'static str) =
        ("name", "Name", "It cannot change later.");
    const FORM_IS_PAGE: bool = true;
    const DELETION: (&'static str, &'static str) = (
        "Its tokens and assertions stop being accepted at once. This cannot be undone.",
        "Delete provider",
    );

    async fn get(admin: &ConsoleAdmin, _: &AppState, name: &str) -> Result<JwtProvider, Error> {
        admin.registry.get_jwt_provider(name).await
    }

    fn key(provider: &JwtProvider) -> &str {
        &provider.name
    }

    fn shown(provider: Option<&JwtProvider>) -> Shown {
        provider.map_or_else(Shown::new_provider, Shown::of)
    }

    fn fields(shown: &Shown) -> Vec<Field> {
        shown.fields()
    }

    async fn save(
        admin: &ConsoleAdmin,
        _: &AppState,
        existing: Option<&JwtProvider>,
        shown: &Shown,
        params: &Params,
    ) -> Result<(JwtProvider, Option<String>), Refused> {
        let fields = Refused::unless_read(|errors| shown.changes(params, errors))?;
        let saved = match existing {
            Some(provider) => {
                admin
                    .registry
                    .update_jwt_provider(&provider.name, fields)
                    .await?
            }
            None => {
                let name = submitted("name", params).to_owned();
                let new = NewJwtProvider { name, fields };
                admin.registry.create_jwt_provider(new, false).await?
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
            .delete_jwt_provider(name)
            .await
            .map(|()| name.to_owned()))
    }
}
