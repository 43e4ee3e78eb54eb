//! `/scopes`, `/scope-rules`, `/routes`: configuration entries of the registry, one generic set
//! of handlers for every kind. Bodies are the entries' JSON documents; an update changes the
//! fields it names (`null` resets one to its default).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use gatehouse_core::entry::Entry;
use serde_json::{Map, Value};

use super::RegistryAdmin;
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::state::AppState;

pub async fn list<T: Entry>(
    _: RegistryAdmin,
    State(state): State<AppState>,
) -> Result<Json<Vec<T>>, ApiError> {
    let entries = state.registry.list_entries::<T>().await?;
    Ok(Json(entries.into_iter().map(|(entry, _)| entry).collect()))
}

pub async fn create<T: Entry>(
    _: RegistryAdmin,
    State(state): State<AppState>,
    ApiJson(fields): ApiJson<Map<String, Value>>,
) -> Result<(StatusCode, Json<T>), ApiError> {
    let entry = state
        .registry
        .create_entry::<T>(Value::Object(fields), false)
        .await?;
    Ok((StatusCode::CREATED, Json(entry)))
}

pub async fn show<T: Entry>(
    _: RegistryAdmin,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<T>, ApiError> {
    Ok(Json(state.registry.get_entry::<T>(&name).await?))
}

pub async fn update<T: Entry>(
    _: RegistryAdmin,
    State(state): State<AppState>,
    Path(name): Path<String>,
    ApiJson(changes): ApiJson<Map<String, Value>>,
) -> Result<Json<T>, ApiError> {
    Ok(Json(
        state.registry.update_entry::<T>(&name, changes).await?,
    ))
}

pub async fn delete<T: Entry>(
    _: RegistryAdmin,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.registry.delete_entry::<T>(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}
