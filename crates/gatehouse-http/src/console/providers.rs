//! `/admin/providers`: the external OAuth providers Gatehouse obtains tokens from — listed
//! (searched by name, token endpoint or client_id, paged), shown in their form, created, saved
//! and deleted after a confirmation, through the outbound registry managed by the signed-in
//! administrator, which refuses those who may not manage outbound OAuth.
//!
//! The client secret and the password are write-only: no page shows them, and a blank field
//! keeps the stored one, as a credential left out of the admin API's document does.

use askama::Template;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use gatehouse_core::Error;
use gatehouse_core::client::GrantType;
use gatehouse_core::outbound::{
    ClientAuthMethod, OAuthProvider, OUTBOUND_GRANTS, OutboundRegistry, ProviderSpec,
};
use gatehouse_core::secret;

use super::form::{Choices, Field, FieldValue, FormField, Params, submitted};
use super::record::{RecordKind, Refused, Secret};
use super::{ConsoleAdmin, Frame, ListQuery, Paged};
use crate::error::PageError;
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

/// The fields of a provider other than its name and its write-only credentials, as the form
/// shows them and reads them back.
macro_rules! provider_fields {
    ($($field:ident: $type:ty = $default:expr, $help:literal;)*) => {
        /// What the form showed: a provider's values, or a new one's.
        pub struct Shown {
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
                    .map(<$type as FieldValue>::from_change)
                    .map_err(|why| errors.push((stringify!($field), why)))
                    .ok();)*
                let credential = |field| {
                    Some(submitted(field, params))
                        .filter(|value| !value.is_empty())
                        .map(secret::Secret::new)
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

/// The outbound registry changing providers for the administrator, if they may.
fn managed(state: &AppState, admin: &ConsoleAdmin) -> Result<OutboundRegistry, Error> {
    state
        .services
        .outbound
        .registry()
        .managed_by(&admin.registry)
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
    let mut providers: Vec<OAuthProvider> = state
        .services
        .outbound
        .registry()
        .list_providers()
        .await?
        .into_iter()
        .filter(|provider| query.finds([&provider.name, &provider.token_url, &provider.client_id]))
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

/// OAuth providers, in the console's record pages. The form replaces the provider as
/// submitted, its credentials kept where their fields are blank.
pub struct Providers;

impl RecordKind for Providers {
    type Record = OAuthProvider;
    type Shown = Shown;

    const SECTION: &'static str = SECTION;
    const KIND: &'static str = "OAuth provider";
    const TITLE: &'static str = "OAuth providers";
    const NEW: &'static str = "New provider";
    const CREATE: &'static str = "Create provider";
    const KEY: (&'static str, &'static str, &'static str) = (
        "name",
        "Name",
        "What profiles call it; it cannot change later.",
    );
    const FORM_IS_PAGE: bool = true;
    const DELETION: (&'static str, &'static str) = (
        "The provider and its stored credentials are deleted; a provider a profile names is \
         not. This cannot be undone.",
        "Delete provider",
    );

    async fn get(_: &ConsoleAdmin, state: &AppState, name: &str) -> Result<OAuthProvider, Error> {
        state.services.outbound.registry().get_provider(name).await
    }

    fn key(provider: &OAuthProvider) -> &str {
        &provider.name
    }

    fn shown(provider: Option<&OAuthProvider>) -> Shown {
        provider.map_or_else(Shown::new_provider, Shown::of)
    }

    fn fields(shown: &Shown) -> Vec<Field> {
        shown.fields()
    }

    fn secrets(provider: Option<&OAuthProvider>) -> Vec<Secret> {
        let stored = |held: bool| {
            if held {
                "One is stored; leave blank to keep it."
            } else {
                "None is stored; leave blank for none."
            }
        };
        vec![
            Secret {
                name: "client_secret",
                label: "Client secret",
                help: format!(
                    "Never shown. {}",
                    stored(provider.is_some_and(|p| p.client_secret_sealed.is_some()))
                ),
            },
            Secret {
                name: "password",
                label: "Password",
                help: format!(
                    "The resource owner's, for the password grant; never shown. {}",
                    stored(provider.is_some_and(|p| p.password_sealed.is_some()))
                ),
            },
        ]
    }

    async fn save(
        admin: &ConsoleAdmin,
        state: &AppState,
        existing: Option<&OAuthProvider>,
        _: &Shown,
        params: &Params,
    ) -> Result<(OAuthProvider, Option<String>), Refused> {
        let registry = managed(state, admin)?;
        let name = match existing {
            Some(provider) => provider.name.clone(),
            None => submitted("name", params).to_owned(),
        };
        let spec = Shown::spec(name, params).map_err(Refused::Fields)?;
        // Saving replaces a provider of the same name: a new one must not take an existing one.
        if existing.is_none() && taken(&registry, &spec.name).await? {
            let message = format!("an OAuth provider named {:?} already exists", spec.name);
            return Err(Refused::Registry(Error::Conflict(message)));
        }
        Ok((registry.save_provider(spec).await?, None))
    }

    async fn delete(
        admin: &ConsoleAdmin,
        state: &AppState,
        name: &str,
    ) -> Result<Result<String, Error>, PageError> {
        let deleted = managed(state, admin)?.delete_provider(name).await;
        Ok(deleted.map(|()| name.to_owned()))
    }
}

/// Whether a provider is named `name`.
async fn taken(registry: &OutboundRegistry, name: &str) -> Result<bool, Error> {
    match registry.get_provider(name).await {
        Ok(_) => Ok(true),
        Err(Error::NotFound(_)) => Ok(false),
        Err(error) => Err(error),
    }
}
