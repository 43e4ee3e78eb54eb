//! `/users`: the users tokens act for, and who may manage the registry.

use axum::Json;
use axum::extract::Path;
use axum::http::StatusCode;
use gatehouse_core::Error;
use gatehouse_core::registry::{NewUser, UserChanges};
use gatehouse_core::secret::Secret;
use serde::Deserialize;
use utoipa::ToSchema;

use super::RegistryAdmin;
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::views::UserView;

/// The fields of a user; on update, a field left out keeps its value.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserInput {
    /// Only on creation.
    pub user_name: Option<String>,
    pub display_name: Option<String>,
    /// An empty string removes it.
    pub given_name: Option<String>,
    /// An empty string removes it.
    pub family_name: Option<String>,
    /// An empty string removes the address.
    pub email: Option<String>,
    pub roles: Option<Vec<String>>,
    pub active: Option<bool>,
    /// An administrator's lock: the user cannot log in while it is set.
    pub locked_out: Option<bool>,
    /// Only on creation; at least 12 characters.
    pub password: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordInput {
    /// At least 12 characters.
    pub password: String,
}

fn changes(input: &UserInput) -> UserChanges {
    UserChanges {
        display_name: input.display_name.clone(),
        given_name: input.given_name.clone(),
        family_name: input.family_name.clone(),
        email: input.email.clone(),
        roles: input.roles.clone(),
        active: input.active,
        locked_out: input.locked_out,
    }
}

/// Lists every user.
#[utoipa::path(get, path = "/users", tag = "users",
    responses((status = 200, body = [UserView]), (status = 401, body = super::ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(admin: RegistryAdmin) -> Result<Json<Vec<UserView>>, ApiError> {
    let users = admin.registry.list_users().await?;
    Ok(Json(users.iter().map(UserView::from).collect()))
}

/// Creates a user.
#[utoipa::path(post, path = "/users", tag = "users", request_body = UserInput,
    responses((status = 201, body = UserView), (status = 400, body = super::ErrorBody),
        (status = 409, body = super::ErrorBody)),
    security(("bearer" = [])))]
pub async fn create(
    admin: RegistryAdmin,
    ApiJson(input): ApiJson<UserInput>,
) -> Result<(StatusCode, Json<UserView>), ApiError> {
    let user_name = input
        .user_name
        .clone()
        .ok_or_else(|| Error::validation("user_name is required"))?;
    let new = NewUser {
        user_name,
        password: input.password.clone().map(Secret::new),
        fields: changes(&input),
    };
    let user = admin.registry.create_user(new, false).await?;
    Ok((StatusCode::CREATED, Json(UserView::from(&user))))
}

/// Shows one user.
#[utoipa::path(get, path = "/users/{user_name}", tag = "users",
    params(("user_name" = String, Path)),
    responses((status = 200, body = UserView), (status = 404, body = super::ErrorBody)),
    security(("bearer" = [])))]
pub async fn show(
    admin: RegistryAdmin,
    Path(user_name): Path<String>,
) -> Result<Json<UserView>, ApiError> {
    Ok(Json(UserView::from(
        &admin.registry.get_user(&user_name).await?,
    )))
}

/// Changes the given fields of a user. A lock or a deactivation ends their sessions and tokens.
#[utoipa::path(patch, path = "/users/{user_name}", tag = "users", request_body = UserInput,
    params(("user_name" = String, Path)),
    responses((status = 200, body = UserView), (status = 404, body = super::ErrorBody),
        (status = 409, body = super::ErrorBody)),
    security(("bearer" = [])))]
pub async fn update(
    admin: RegistryAdmin,
    Path(user_name): Path<String>,
    ApiJson(input): ApiJson<UserInput>,
) -> Result<Json<UserView>, ApiError> {
    if input.user_name.is_some() || input.password.is_some() {
        return Err(Error::validation(
            "user_name cannot change; a password changes through /password",
        )
        .into());
    }
    let user = admin
        .registry
        .update_user(&user_name, changes(&input))
        .await?;
    Ok(Json(UserView::from(&user)))
}

/// Deletes a user and every token issued for them.
#[utoipa::path(delete, path = "/users/{user_name}", tag = "users",
    params(("user_name" = String, Path)),
    responses((status = 204), (status = 404, body = super::ErrorBody),
        (status = 409, body = super::ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete(
    admin: RegistryAdmin,
    Path(user_name): Path<String>,
) -> Result<StatusCode, ApiError> {
    admin.registry.delete_user(&user_name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sets a user's password. Their sessions, codes, refresh tokens and access tokens end at once.
#[utoipa::path(put, path = "/users/{user_name}/password", tag = "users",
    request_body = PasswordInput, params(("user_name" = String, Path)),
    responses((status = 204), (status = 400, body = super::ErrorBody),
        (status = 404, body = super::ErrorBody)),
    security(("bearer" = [])))]
pub async fn set_password(
    admin: RegistryAdmin,
    Path(user_name): Path<String>,
    ApiJson(input): ApiJson<PasswordInput>,
) -> Result<StatusCode, ApiError> {
    admin
        .registry
        .set_password(&user_name, Secret::new(input.password))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
