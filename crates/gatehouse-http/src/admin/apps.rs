//! `/apps`: applications of the registry.

use axum::Json;
use axum::extract::Path;
use axum::http::StatusCode;
use gatehouse_core::Error;
use gatehouse_core::registry::{AppChanges, DEFAULT_SECRET_GRACE, NewApp};
use gatehouse_core::secret::Secret;
use serde::Deserialize;
use utoipa::ToSchema;

use super::RegistryAdmin;
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::views::AppView;

/// Declares the API's input from the registry's field list.
macro_rules! app_input {
    ($(
        $(#[doc = $doc:literal])*
        #[arg($($arg:tt)*)]
        $field:ident : $ty:ty => $change:ty = $default:expr,
    )*) => {
        /// The fields of an application; on update, a field left out keeps its value.
        #[derive(Debug, Default, Deserialize, ToSchema)]
        #[serde(deny_unknown_fields)]
        pub struct AppInput {
            /// Only on creation; generated when left out.
            pub client_id: Option<String>,
            /// Only on creation; at least 32 characters; generated when left out.
            pub client_secret: Option<String>,
            $($(#[doc = $doc])* pub $field: Option<$change>,)*
        }

        impl AppInput {
            /// The registry's changes; the client_id and secret are taken separately.
            pub fn into_changes(self) -> (Option<String>, Option<Secret>, AppChanges) {
                let changes = AppChanges {
                    $($field: self.$field,)*
                };
                (self.client_id, self.client_secret.map(Secret::new), changes)
            }
        }
    };
}

gatehouse_core::with_app_fields!(app_input);

/// Lists every application.
#[utoipa::path(get, path = "/apps", tag = "applications",
    responses((status = 200, body = [AppView]), (status = 401, body = super::ErrorBody),
        (status = 403, body = super::ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(admin: RegistryAdmin) -> Result<Json<Vec<AppView>>, ApiError> {
    let apps = admin.registry.list_apps().await?;
    Ok(Json(apps.iter().map(AppView::from).collect()))
}

/// Creates an application. The answer carries the client secret, shown this once.
#[utoipa::path(post, path = "/apps", tag = "applications", request_body = AppInput,
    responses((status = 201, body = AppView), (status = 400, body = super::ErrorBody),
        (status = 409, body = super::ErrorBody)),
    security(("bearer" = [])))]
pub async fn create(
    admin: RegistryAdmin,
    ApiJson(input): ApiJson<AppInput>,
) -> Result<(StatusCode, Json<AppView>), ApiError> {
    let (client_id, client_secret, fields) = input.into_changes();
    let new = NewApp {
        client_id,
        client_secret,
        fields,
    };
    let (client, secret) = admin.registry.create_app(new, false).await?;
    let mut view = AppView::from(&client);
    view.client_secret = secret.map(|s| s.expose().to_owned());
    Ok((StatusCode::CREATED, Json(view)))
}

/// Shows one application.
#[utoipa::path(get, path = "/apps/{client_id}", tag = "applications",
    params(("client_id" = String, Path)),
    responses((status = 200, body = AppView), (status = 404, body = super::ErrorBody)),
    security(("bearer" = [])))]
pub async fn show(
    admin: RegistryAdmin,
    Path(client_id): Path<String>,
) -> Result<Json<AppView>, ApiError> {
    Ok(Json(AppView::from(
        &admin.registry.get_app(&client_id).await?,
    )))
}

/// Changes the given fields of an application.
#[utoipa::path(patch, path = "/apps/{client_id}", tag = "applications", request_body = AppInput,
    params(("client_id" = String, Path)),
    responses((status = 200, body = AppView), (status = 400, body = super::ErrorBody),
        (status = 404, body = super::ErrorBody)),
    security(("bearer" = [])))]
pub async fn update(
    admin: RegistryAdmin,
    Path(client_id): Path<String>,
    ApiJson(input): ApiJson<AppInput>,
) -> Result<Json<AppView>, ApiError> {
    let (new_id, secret, changes) = input.into_changes();
    if new_id.is_some() || secret.is_some() {
        return Err(Error::validation(
            "client_id cannot change; a secret changes through rotate-secret",
        )
        .into());
    }
    Ok(Json(AppView::from(
        &admin.registry.update_app(&client_id, changes).await?,
    )))
}

/// Deletes an application and every token issued to it.
#[utoipa::path(delete, path = "/apps/{client_id}", tag = "applications",
    params(("client_id" = String, Path)),
    responses((status = 204), (status = 404, body = super::ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete(
    admin: RegistryAdmin,
    Path(client_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    admin.registry.delete_app(&client_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// How a secret rotation treats the secret it replaces.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateSecretInput {
    /// Seconds the replaced secret stays valid beside the new one (default 86400, a day; 0
    /// ends it at once; at most 30 days).
    pub grace: Option<i64>,
    /// Rotate nothing: end the grace period of the secret the last rotation replaced, at once.
    #[serde(default)]
    pub revoke_previous: bool,
}

/// Replaces the client secret with a generated one, returned this once. The replaced secret
/// stays valid for the grace period (`previous_secret_expires_at`); with `revoke_previous`, ends
/// that period instead. The body is optional.
#[utoipa::path(post, path = "/apps/{client_id}/rotate-secret", tag = "applications",
    params(("client_id" = String, Path)),
    request_body(content = Option<RotateSecretInput>),
    responses((status = 200, body = AppView), (status = 400, body = super::ErrorBody),
        (status = 404, body = super::ErrorBody)),
    security(("bearer" = [])))]
pub async fn rotate_secret(
    admin: RegistryAdmin,
    Path(client_id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<AppView>, ApiError> {
    // Without a body, the defaults: existing callers post none.
    let input: RotateSecretInput = if body.is_empty() {
        RotateSecretInput::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| Error::validation(e.to_string()))?
    };
    if input.revoke_previous {
        if input.grace.is_some() {
            return Err(Error::validation("revoke_previous rotates nothing: give no grace").into());
        }
        let client = admin.registry.end_previous_secret(&client_id).await?;
        return Ok(Json(AppView::from(&client)));
    }
    let grace = input.grace.unwrap_or(DEFAULT_SECRET_GRACE);
    let (client, secret) = admin
        .registry
        .rotate_secret(&client_id, None, grace)
        .await?;
    let mut view = AppView::from(&client);
    view.client_secret = Some(secret.expose().to_owned());
    Ok(Json(view))
}
