//! The admin REST API under `/api/admin/v1`: the Application Registry over JSON, for users
//! holding `admin`, `oauth_admin` or `mi_admin`, and its OpenAPI document.

mod apps;
mod audit;
mod entries;
mod jwt_providers;
mod keys;
mod outbound;
mod tokens;
mod users;

use axum::Json;
use axum::Router;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::routing::{delete, get, post, put};
use gatehouse_core::Error;
use gatehouse_core::access::{ScopeEntry, ScopeRule};
use gatehouse_core::audit::Actor;
use gatehouse_core::entry::Entry;
use gatehouse_core::gateway::Route;
use gatehouse_core::outbound::{ConnectionAlias, OAuthProfile};
use gatehouse_core::registry::Registry;
use gatehouse_core::table::TableDef;
use gatehouse_core::user::Permission;
use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use self::entries::{ENTRY_KINDS, EntryPaths, Post};
use crate::error::ApiError;
use crate::extract::{Authorized, Bearer, ClientAddress};
use crate::state::AppState;
use crate::views::{
    AppView, AuditEventView, HeldView, HoldingsView, JwtProviderView, KeyView, ProviderView,
    RetiredKeyView, UserView,
};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/openapi.json", get(openapi_json))
        .route("/whoami", get(whoami))
        .route("/apps", get(apps::list).post(apps::create))
        .route(
            "/apps/{client_id}",
            get(apps::show).patch(apps::update).delete(apps::delete),
        )
        .route("/apps/{client_id}/rotate-secret", post(apps::rotate_secret))
        .route("/users", get(users::list).post(users::create))
        .route(
            "/users/{user_name}",
            get(users::show).patch(users::update).delete(users::delete),
        )
        .route("/users/{user_name}/password", put(users::set_password))
        .route(
            "/users/{user_name}/tokens",
            get(tokens::list_of_user).delete(tokens::revoke_all_of_user),
        )
        .route(
            "/users/{user_name}/tokens/{handle}",
            delete(tokens::revoke_of_user),
        )
        .route(
            "/apps/{client_id}/tokens",
            get(tokens::list_of_application).delete(tokens::revoke_all_of_application),
        )
        .route(
            "/apps/{client_id}/tokens/{handle}",
            delete(tokens::revoke_of_application),
        )
        .route(
            "/outbound/providers",
            get(outbound::list_providers).post(outbound::save_provider),
        )
        .route(
            "/outbound/providers/{name}",
            get(outbound::show_provider).delete(outbound::delete_provider),
        )
        .merge(entry_routes::<OAuthProfile>("/outbound/profiles"))
        .merge(entry_routes::<ConnectionAlias>("/outbound/aliases"))
        .merge(entry_routes::<ScopeEntry>("/scopes"))
        .merge(entry_routes::<ScopeRule>("/scope-rules"))
        .merge(entry_routes::<Route>("/routes"))
        .route(
            "/jwt-providers",
            get(jwt_providers::list).post(jwt_providers::create),
        )
        .route(
            "/jwt-providers/{name}",
            get(jwt_providers::show)
                .patch(jwt_providers::update)
                .delete(jwt_providers::delete),
        )
        .merge(entry_routes::<TableDef>("/tables"))
        .route("/keys", get(keys::list))
        .route("/audit", get(audit::list))
        .route("/keys/{kid}/retire", post(keys::retire))
}

/// The five operations on one kind of entry, its POST as [`ENTRY_KINDS`] says.
fn entry_routes<T: Entry>(path: &str) -> Router<AppState> {
    let post = match ENTRY_KINDS.iter().find(|kind| kind.0 == path) {
        Some((.., Post::Save)) => post(entries::save::<T>),
        _ => post(entries::create::<T>),
    };
    Router::new()
        .route(path, get(entries::list::<T>).merge(post))
        .route(
            &format!("{path}/{{name}}"),
            get(entries::show::<T>)
                .patch(entries::update::<T>)
                .delete(entries::delete::<T>),
        )
}

/// A caller allowed to read the registry: authorized by the scope rules (with none covering
/// the admin API, that takes `useraccount`), and acting for a user holding one of the registry
/// roles. What they may change is decided by the use cases of `registry`, which acts for them.
pub struct RegistryAdmin {
    pub registry: Registry,
}

impl FromRequestParts<AppState> for RegistryAdmin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Authorized(caller) = Authorized::from_request_parts(parts, state).await?;
        let Ok(ClientAddress(address)) = ClientAddress::from_request_parts(parts, state).await;
        let user = match &caller.user_id {
            Some(id) => state.services.tokens.user(id).await?,
            None => None,
        };
        match user {
            Some(user) if user.may(Permission::ReadRegistry) => {
                let actor = Actor {
                    name: user.user_name.clone(),
                    client_id: Some(caller.client_id.clone()),
                    address: address.map(|address| address.to_string()),
                };
                Ok(RegistryAdmin {
                    registry: state.services.registry.acting_for(user, actor),
                })
            }
            _ => Err(Error::Forbidden(
                "managing the registry needs the admin, oauth_admin or mi_admin role".into(),
            )
            .into()),
        }
    }
}

/// Who the presented access token speaks for.
#[derive(Debug, Serialize, ToSchema)]
pub struct WhoAmI {
    /// The token's subject: the user's id, or the client_id when no user is involved.
    sub: String,
    client_id: String,
    user_name: Option<String>,
    scope: String,
    /// Unix seconds.
    exp: i64,
}

/// Describes the caller's access token. Any valid token may ask.
#[utoipa::path(get, path = "/whoami", tag = "session",
    responses((status = 200, body = WhoAmI), (status = 401, description = "No valid bearer token")),
    security(("bearer" = [])))]
async fn whoami(Bearer(token): Bearer) -> Json<WhoAmI> {
    Json(WhoAmI {
        sub: token.subject().to_owned(),
        client_id: token.client_id.clone(),
        user_name: token.user_name.clone(),
        scope: token.scope.to_string(),
        exp: token.expires_at,
    })
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Gatehouse admin API",
        description = "The Application Registry: applications (OAuth clients), users, the \
            providers, profiles and connection aliases of outbound OAuth, the scopes, REST \
            API auth scope rules, gateway routes and Table API tables, the signing keys, and \
            the tokens and sessions users and applications hold. \
            Every operation except this document needs a bearer access token with the \
            `useraccount` scope (unless a scope rule asks for another) whose user holds \
            `admin`, `oauth_admin` or `mi_admin`. All three read the registry, only `admin` the \
            audit trail; `oauth_admin` \
            changes applications, users, scopes, scope rules, routes and JWT providers, \
            `mi_admin` outbound OAuth and tables, and only `admin` grants or removes a \
            registry role, changes a user holding one or an application running as one \
            (403 `access_denied` otherwise). The last active, unlocked `admin` with a \
            password cannot be demoted, locked, deactivated or deleted (409)."
    ),
    servers((url = "/api/admin/v1")),
    paths(
        whoami,
        apps::list, apps::create, apps::show, apps::update, apps::delete, apps::rotate_secret,
        users::list, users::create, users::show, users::update, users::delete,
        users::set_password,
        tokens::list_of_user, tokens::revoke_all_of_user, tokens::revoke_of_user,
        tokens::list_of_application, tokens::revoke_all_of_application,
        tokens::revoke_of_application,
        outbound::list_providers, outbound::save_provider, outbound::show_provider,
        outbound::delete_provider,
        jwt_providers::list, jwt_providers::create, jwt_providers::show, jwt_providers::update,
        jwt_providers::delete, keys::list, keys::retire, audit::list
    ),
    components(schemas(AppView, UserView, WhoAmI, apps::AppInput, apps::RotateSecretInput, users::UserInput,
        users::PasswordInput, ErrorBody, ProviderView, JwtProviderView,
        jwt_providers::JwtProviderInput, KeyView, RetiredKeyView, AuditEventView,
        audit::AuditPage, HeldView, HoldingsView)),
    modifiers(&BearerAuth, &EntryPaths)
)]
struct AdminApi;

/// The RFC 6749-style error body every failed call returns.
#[derive(Serialize, ToSchema)]
struct ErrorBody {
    error: String,
    error_description: Option<String>,
}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The OpenAPI 3 document of the admin API.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    AdminApi::openapi()
}

async fn openapi_json(State(_): State<AppState>) -> Json<utoipa::openapi::OpenApi> {
    Json(openapi_document())
}
