//! `/scopes`, `/scope-rules`, `/routes`, `/tables`, `/outbound/profiles`, `/outbound/aliases`:
//! the entries of the registry, one generic set of handlers for every kind. Bodies are the
//! entries' JSON documents; an update changes the fields it names (`null` resets one to its
//! default).

use axum::Json;
use axum::extract::Path;
use axum::http::StatusCode;
use gatehouse_core::entry::Entry;
use serde_json::{Map, Value};

use super::RegistryAdmin;
use crate::error::ApiError;
use crate::extract::ApiJson;

pub async fn list<T: Entry>(admin: RegistryAdmin) -> Result<Json<Vec<T>>, ApiError> {
    let entries = admin.registry.list_entries::<T>().await?;
    Ok(Json(entries.into_iter().map(|(entry, _)| entry).collect()))
}

pub async fn create<T: Entry>(
    admin: RegistryAdmin,
    ApiJson(fields): ApiJson<Map<String, Value>>,
) -> Result<(StatusCode, Json<T>), ApiError> {
    let entry = admin
        .registry
        .create_entry::<T>(Value::Object(fields), false)
        .await?;
    Ok((StatusCode::CREATED, Json(entry)))
}

/// Creates an entry, or replaces the one with its name (the outbound kinds' POST).
pub async fn save<T: Entry>(
    admin: RegistryAdmin,
    ApiJson(fields): ApiJson<Map<String, Value>>,
) -> Result<Json<T>, ApiError> {
    Ok(Json(
        admin
            .registry
            .save_entry::<T>(Value::Object(fields))
            .await?,
    ))
}

pub async fn show<T: Entry>(
    admin: RegistryAdmin,
    Path(name): Path<String>,
) -> Result<Json<T>, ApiError> {
    Ok(Json(admin.registry.get_entry::<T>(&name).await?))
}

pub async fn update<T: Entry>(
    admin: RegistryAdmin,
    Path(name): Path<String>,
    ApiJson(changes): ApiJson<Map<String, Value>>,
) -> Result<Json<T>, ApiError> {
    Ok(Json(
        admin.registry.update_entry::<T>(&name, changes).await?,
    ))
}

pub async fn delete<T: Entry>(
    admin: RegistryAdmin,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    admin.registry.delete_entry::<T>(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The configuration entries' operations in the OpenAPI document. The handlers are generic over
/// the kind, which utoipa's attribute cannot describe, so the paths are built here; bodies are
/// the entries' JSON documents (see the README for their fields).
pub struct EntryPaths;

/// What a POST on a kind's collection does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Post {
    /// Creates an entry (`201`), refusing a taken name (`409`).
    Create,
    /// Creates an entry or replaces the one with its name (`200`).
    Save,
}

/// (path, tag, what the kind is, its POST).
pub const ENTRY_KINDS: [(&str, &str, &str, Post); 6] = [
    (
        "/scopes",
        "scopes",
        "scopes (name, description, default)",
        Post::Create,
    ),
    (
        "/scope-rules",
        "scope rules",
        "REST API auth scope rules (name, methods, path, scopes)",
        Post::Create,
    ),
    (
        "/routes",
        "gateway routes",
        "gateway routes (name, prefix, upstream, timeout_seconds, audience)",
        Post::Create,
    ),
    (
        "/tables",
        "tables",
        "Table API tables (name, read_roles, write_roles)",
        Post::Create,
    ),
    (
        "/outbound/profiles",
        "outbound",
        "OAuth profiles (name, provider, scopes, per_user)",
        Post::Save,
    ),
    (
        "/outbound/aliases",
        "outbound",
        "connection aliases (name, base_url, profile, allowed_roles, timeout_seconds, \
         max_retries)",
        Post::Save,
    ),
];

impl utoipa::Modify for EntryPaths {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn};
        use utoipa::openapi::request_body::RequestBodyBuilder;
        use utoipa::openapi::schema::{Object, Type};
        use utoipa::openapi::security::SecurityRequirement;
        use utoipa::openapi::{Content, Required, Response};

        let json = || Content::new(Some(Object::with_type(Type::Object)));
        let operation = |tag: &str, summary: String, status: &str, answer: &str| {
            OperationBuilder::new()
                .tag(tag)
                .summary(Some(summary))
                .response(status, Response::new(answer))
                .response("400", Response::new("Invalid input"))
                .response("401", Response::new("No valid bearer token"))
                .response("403", Response::new("Missing scope or role"))
                .security(SecurityRequirement::new("bearer", Vec::<String>::new()))
        };
        let name = ParameterBuilder::new()
            .name("name")
            .parameter_in(ParameterIn::Path)
            .required(Required::True)
            .schema(Some(Object::with_type(Type::String)))
            .build();
        let body = RequestBodyBuilder::new()
            .content("application/json", json())
            .build();
        for (path, tag, what, post) in ENTRY_KINDS {
            let item = format!("{path}/{{name}}");
            let paths = &mut openapi.paths;
            paths.add_path_operation(
                path,
                vec![HttpMethod::Get],
                operation(tag, format!("Lists {what}"), "200", "The entries"),
            );
            let post = match post {
                Post::Create => {
                    operation(tag, format!("Creates one of the {what}"), "201", "Created")
                }
                Post::Save => operation(
                    tag,
                    format!("Creates one of the {what}, or replaces the one with its name"),
                    "200",
                    "The entry as saved",
                ),
            };
            paths.add_path_operation(
                path,
                vec![HttpMethod::Post],
                post.request_body(Some(body.clone())),
            );
            paths.add_path_operation(
                &item,
                vec![HttpMethod::Get],
                operation(tag, "Shows one".into(), "200", "The entry").parameter(name.clone()),
            );
            paths.add_path_operation(
                &item,
                vec![HttpMethod::Patch],
                operation(
                    tag,
                    "Changes the fields given (null resets one)".into(),
                    "200",
                    "The entry as changed",
                )
                .parameter(name.clone())
                .request_body(Some(body.clone())),
            );
            paths.add_path_operation(
                &item,
                vec![HttpMethod::Delete],
                operation(tag, "Deletes one".into(), "204", "Deleted").parameter(name.clone()),
            );
        }
    }
}
