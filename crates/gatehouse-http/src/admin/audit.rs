//! `/audit`: the audit trail, newest first, a page at a time. Only `admin` may read it.

use axum::Json;
use axum::extract::Query;
use gatehouse_core::Error;
use gatehouse_core::store::AuditQuery;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::RegistryAdmin;
use crate::error::ApiError;
use crate::views::AuditEventView;

/// The events a page holds unless `limit` says otherwise.
const DEFAULT_PAGE: u64 = 100;

/// Which events to list. Numbers are read here, so a malformed one gets this API's error.
#[derive(Debug, Deserialize, IntoParams)]
pub struct AuditParams {
    /// Only events at or after this time (Unix seconds).
    since: Option<String>,
    /// Only events of this kind (`user.updated`), or of this subject (`user`).
    kind: Option<String>,
    /// Only events by this actor (a user name, `cli`, `apply`, `server`).
    actor: Option<String>,
    /// Only events older than this id: the `next` of the previous page.
    before: Option<String>,
    /// Events per page, 1 to 1000 (default 100).
    limit: Option<String>,
}

/// One page of the audit trail.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditPage {
    pub events: Vec<AuditEventView>,
    /// The `before` of the next page; absent on the last page.
    pub next: Option<i64>,
}

fn number<T: std::str::FromStr>(name: &str, value: Option<String>) -> Result<Option<T>, Error> {
    value
        .map(|text| {
            text.parse()
                .map_err(|_| Error::invalid_request(format!("{name} must be a whole number")))
        })
        .transpose()
}

/// Lists audit events, newest first: changes to the registry (who, what, the fields changed —
/// secrets only as changed —, from which address) and security events. Needs `admin`.
#[utoipa::path(get, path = "/audit", tag = "audit", params(AuditParams),
    responses((status = 200, body = AuditPage), (status = 400, body = super::ErrorBody),
        (status = 401, body = super::ErrorBody), (status = 403, body = super::ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(
    admin: RegistryAdmin,
    Query(params): Query<AuditParams>,
) -> Result<Json<AuditPage>, ApiError> {
    let query = AuditQuery {
        since: number("since", params.since)?,
        kind: params.kind,
        actor: params.actor,
        before: number("before", params.before)?,
        limit: number("limit", params.limit)?.unwrap_or(DEFAULT_PAGE),
    };
    let limit = query.limit;
    let events: Vec<AuditEventView> = admin
        .registry
        .audit_events(query)
        .await?
        .into_iter()
        .map(AuditEventView::from)
        .collect();
    let next = events
        .last()
        .filter(|_| events.len() as u64 >= limit)
        .map(|event| event.id);
    Ok(Json(AuditPage { events, next }))
}
