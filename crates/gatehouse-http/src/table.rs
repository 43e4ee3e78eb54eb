//! The Table API, `/api/now/table/{table}[/{sys_id}]`: JSON records in tables the registry
//! declares, for users holding the tables' roles. Answers are shaped like the platform's:
//! `{"result": …}`, and `X-Total-Count` on lists.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use gatehouse_core::Error;
use gatehouse_core::access::Caller;
use gatehouse_core::table::{ListRequest, TableDef};
use gatehouse_core::user::User;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::extract::{ApiJson, Authorized};
use crate::state::AppState;

pub async fn list(
    Authorized(caller): Authorized,
    State(state): State<AppState>,
    Path(table): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let (table, user) = resolve(&state, &caller, &table).await?;
    let params = crate::pages::unique_params(query.unwrap_or_default().as_bytes())?;
    let number = |name: &str| {
        params
            .get(name)
            .map(|v| {
                v.parse::<u64>().map_err(|_| {
                    Error::invalid_request(format!("{name} must be a non-negative integer"))
                })
            })
            .transpose()
    };
    let request = ListRequest {
        query: params.get("sysparm_query").cloned(),
        limit: number("sysparm_limit")?,
        offset: number("sysparm_offset")?,
    };
    let (records, total) = state.services.tables.list(&table, &user, &request).await?;
    let total = HeaderValue::from(total);
    Ok((
        [(HeaderName::from_static("x-total-count"), total)],
        Json(json!({ "result": records })),
    )
        .into_response())
}

pub async fn show(
    Authorized(caller): Authorized,
    State(state): State<AppState>,
    Path((table, sys_id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let (table, user) = resolve(&state, &caller, &table).await?;
    let record = state.services.tables.get(&table, &user, &sys_id).await?;
    Ok(Json(json!({ "result": record })))
}

pub async fn create(
    Authorized(caller): Authorized,
    State(state): State<AppState>,
    Path(table): Path<String>,
    ApiJson(body): ApiJson<Value>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let (table, user) = resolve(&state, &caller, &table).await?;
    let record = state.services.tables.create(&table, &user, body).await?;
    Ok((StatusCode::CREATED, Json(json!({ "result": record }))))
}

/// PUT and PATCH both merge the given fields, as the platform does.
pub async fn update(
    Authorized(caller): Authorized,
    State(state): State<AppState>,
    Path((table, sys_id)): Path<(String, String)>,
    ApiJson(body): ApiJson<Value>,
) -> Result<Json<Value>, ApiError> {
    let (table, user) = resolve(&state, &caller, &table).await?;
    let record = state
        .services
        .tables
        .update(&table, &user, &sys_id, body)
        .await?;
    Ok(Json(json!({ "result": record })))
}

pub async fn delete(
    Authorized(caller): Authorized,
    State(state): State<AppState>,
    Path((table, sys_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let (table, user) = resolve(&state, &caller, &table).await?;
    state.services.tables.delete(&table, &user, &sys_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The table (from the cached catalog) and the user the caller acts for: the token's user, or
/// for client credentials the application's run-as user.
async fn resolve(
    state: &AppState,
    caller: &Caller,
    table: &str,
) -> Result<(TableDef, Arc<User>), ApiError> {
    let table = state
        .services
        .registry
        .catalog()
        .await?
        .table(table)?
        .clone();
    let user = match &caller.user_id {
        Some(id) => state.services.tokens.user(id).await?,
        None => None,
    };
    let user = user.filter(|u| u.active).ok_or_else(|| {
        Error::Forbidden("the Table API acts for a user: give the application a run-as user".into())
    })?;
    Ok((table, user))
}
