//! `/admin/scopes`: the scope registry — listed, created and deleted (after a confirmation) on
//! one page, through the registry's entry use cases.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use gatehouse_core::access::ScopeEntry;
use serde::Deserialize;
use serde_json::json;

use super::form::{Params, form_message, submitted};
use super::{ConfirmPage, Confirmation, ConsoleAdmin, Flash, Frame, redirect_with};
use crate::error::PageError;
use crate::extract::{CsrfChecked, CsrfForm};
use crate::state::AppState;

#[derive(Template)]
#[template(path = "console/scopes.html")]
struct ScopesPage {
    frame: Frame,
    /// Each scope, and whether the declarative file manages it.
    scopes: Vec<(ScopeEntry, bool)>,
    /// The new scope's form as submitted, when it was refused.
    name: String,
    description: String,
    default: bool,
    /// The refusal, shown next to the name: a scope's other fields cannot be wrong.
    name_error: Option<String>,
}

async fn page(
    admin: &ConsoleAdmin,
    state: &AppState,
    submitted: Option<(&Params, String)>,
) -> Result<Response, PageError> {
    let mut scopes = admin.registry.list_entries::<ScopeEntry>().await?;
    scopes.sort_by(|a, b| a.0.name.cmp(&b.0.name));
    let (params, message) = match submitted {
        Some((params, message)) => (Some(params), Some(message)),
        None => (None, None),
    };
    let field = |name: &str| {
        params
            .and_then(|p| p.get(name))
            .cloned()
            .unwrap_or_default()
    };
    let html = ScopesPage {
        frame: admin.frame(state, "scopes"),
        scopes,
        name: field("name"),
        description: field("description"),
        default: params.is_some_and(|p| p.contains_key("default")),
        name_error: message,
    }
    .render();
    let status = if params.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    Ok(admin.page(state, status, html))
}

/// `GET /admin/scopes`
pub async fn list(
    admin: ConsoleAdmin,
    State(state): State<AppState>,
) -> Result<Response, PageError> {
    page(&admin, &state, None).await
}

#[derive(Deserialize)]
pub struct ScopeForm {
    #[serde(flatten)]
    params: Params,
}

impl CsrfChecked for ScopeForm {
    const PURPOSE: &'static str = super::FORM_PURPOSE;
}

/// `POST /admin/scopes`
pub async fn create(
    admin: ConsoleAdmin,
    State(state): State<AppState>,
    CsrfForm { form, .. }: CsrfForm<ScopeForm>,
) -> Result<Response, PageError> {
    let fields = json!({
        "name": submitted("name", &form.params),
        "description": submitted("description", &form.params),
        "default": form.params.contains_key("default"),
    });
    match admin
        .registry
        .create_entry::<ScopeEntry>(fields, false)
        .await
    {
        Ok(scope) => Ok(redirect_with(
            &state,
            "/admin/scopes",
            &Flash::success(format!("Scope {} created.", scope.name)),
        )),
        Err(error) => {
            let message = form_message(error)?;
            page(&admin, &state, Some((&form.params, message))).await
        }
    }
}

/// `GET /admin/scopes/{name}/delete`
pub async fn confirm_deletion(
    admin: ConsoleAdmin,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, PageError> {
    let scope = admin.registry.get_entry::<ScopeEntry>(&name).await?;
    let html = ConfirmPage {
        frame: admin.frame(&state, "scopes"),
        title: format!("Delete the scope {}?", scope.name),
        message: "Scope rules and routes that name it stop matching it; applications must not \
                  be allowed it any more."
            .into(),
        action: format!("/admin/scopes/{}/delete", scope.name),
        button: "Delete scope",
        cancel: "/admin/scopes".into(),
        grace: None,
    }
    .render();
    Ok(admin.page(&state, StatusCode::OK, html))
}

/// `POST /admin/scopes/{name}/delete`
pub async fn delete(
    admin: ConsoleAdmin,
    State(state): State<AppState>,
    Path(name): Path<String>,
    _: CsrfForm<Confirmation>,
) -> Result<Response, PageError> {
    let flash = match admin.registry.delete_entry::<ScopeEntry>(&name).await {
        Ok(()) => Flash::success(format!("Scope {name} deleted.")),
        Err(error) => Flash::failure(form_message(error)?),
    };
    Ok(redirect_with(&state, "/admin/scopes", &flash))
}
