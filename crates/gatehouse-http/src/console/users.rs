//! `/admin/users`: list, view, create, edit (roles, active, lock), set the password of and
//! delete users. What an administrator may do to whom — registry roles, other administrators,
//! the last administrator — is the registry's decision, as for the admin API.

use askama::Template;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use gatehouse_core::registry::{NewUser, UserChanges};
use gatehouse_core::secret::Secret;
use gatehouse_core::user::User;
use serde::Deserialize;

use super::form::{Field, FormField, Params, changed, form_message, place_errors, submitted};
use super::{Confirmation, ConsoleAdmin, Flash, Frame, ListQuery, Paged, redirect_with};
use crate::error::PageError;
use crate::extract::{CsrfChecked, CsrfForm};
use crate::state::AppState;

/// What the form showed: a user's values, or a new one's.
#[derive(Default)]
struct Shown {
    display_name: String,
    given_name: Option<String>,
    family_name: Option<String>,
    email: Option<String>,
    roles: Vec<String>,
    active: bool,
    locked_out: bool,
}

impl Shown {
    fn of(user: &User) -> Shown {
        Shown {
            display_name: user.display_name.clone(),
            given_name: user.given_name.clone(),
            family_name: user.family_name.clone(),
            email: user.email.clone(),
            roles: user.roles.clone(),
            active: user.active,
            locked_out: user.locked_out,
        }
    }

    fn new_user() -> Shown {
        Shown {
            active: true,
            ..Shown::default()
        }
    }

    fn fields(&self) -> Vec<Field> {
        vec![
            Field::new(
                "display_name",
                "The name shown to people (by default: the user name).",
                self.display_name.input(),
            ),
            Field::new("given_name", "Empty removes it.", self.given_name.input()),
            Field::new("family_name", "Empty removes it.", self.family_name.input()),
            Field::new(
                "email",
                "Unique among users; empty removes it.",
                self.email.input(),
            ),
            Field::new(
                "roles",
                "admin, oauth_admin and mi_admin manage the registry; other roles are the \
                 scope rules' and tables' business.",
                self.roles.input(),
            ),
            Field::new(
                "active",
                "An inactive user cannot sign in, and their tokens stop working.",
                self.active.input(),
            ),
            Field::new(
                "locked_out",
                "An administrator's lock: the user cannot sign in while it is set.",
                self.locked_out.input(),
            ),
        ]
    }

    fn changes(&self, params: &Params, errors: &mut Vec<(&'static str, String)>) -> UserChanges {
        UserChanges {
            display_name: changed("display_name", &self.display_name, params, errors),
            given_name: changed("given_name", &self.given_name, params, errors),
            family_name: changed("family_name", &self.family_name, params, errors),
            email: changed("email", &self.email, params, errors),
            roles: changed("roles", &self.roles, params, errors),
            active: changed("active", &self.active, params, errors),
            locked_out: changed("locked_out", &self.locked_out, params, errors),
        }
    }
}

/// A submitted user form.
#[derive(Deserialize)]
pub struct UserForm {
    #[serde(flatten)]
    params: Params,
}

impl CsrfChecked for UserForm {
    const PURPOSE: &'static str = super::FORM_PURPOSE;
}

#[derive(Template)]
#[template(path = "console/users.html")]
struct ListPage {
    frame: Frame,
    users: Vec<User>,
    paged: Paged,
}

/// `GET /admin/users?q=…&page=…`: by user name, searched by user name, name or email.
pub async fn list(
    admin: ConsoleAdmin,
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, PageError> {
    let query = ListQuery::read(raw);
    let needle = query.needle();
    let mut users: Vec<User> = admin
        .registry
        .list_users()
        .await?
        .into_iter()
        .filter(|user| {
            needle.is_empty()
                || [
                    Some(&user.user_name),
                    Some(&user.display_name),
                    user.email.as_ref(),
                ]
                .into_iter()
                .flatten()
                .any(|text| text.to_lowercase().contains(&needle))
        })
        .collect();
    users.sort_by(|a, b| a.user_name.cmp(&b.user_name));
    let (users, paged) = Paged::of(users, &query, "/admin/users");
    let html = ListPage {
        frame: admin.frame(&state, "users"),
        users,
        paged,
    }
    .render();
    Ok(admin.page(&state, StatusCode::OK, html))
}

#[derive(Template)]
#[template(path = "console/user.html")]
struct UserPage {
    frame: Frame,
    user: User,
    fields: Vec<Field>,
}

/// `GET /admin/users/{user_name}`
pub async fn show(
    admin: ConsoleAdmin,
    State(state): State<AppState>,
    Path(user_name): Path<String>,
) -> Result<Response, PageError> {
    let user = admin.registry.get_user(&user_name).await?;
    let html = UserPage {
        frame: admin.frame(&state, "users"),
        fields: Shown::of(&user).fields(),
        user,
    }
    .render();
    Ok(admin.page(&state, StatusCode::OK, html))
}

#[derive(Template)]
#[template(path = "console/user_form.html")]
struct FormPage {
    frame: Frame,
    /// The user edited; `None` on the form of a new one.
    user_name: Option<String>,
    /// A new user's name, as submitted.
    new_user_name: String,
    fields: Vec<Field>,
    errors: Vec<String>,
}

impl FormPage {
    fn action(&self) -> String {
        match &self.user_name {
            Some(user_name) => format!("/admin/users/{user_name}"),
            None => "/admin/users".into(),
        }
    }
}

/// `GET /admin/new/users`
pub async fn new(
    admin: ConsoleAdmin,
    State(state): State<AppState>,
) -> Result<Response, PageError> {
    let html = FormPage {
        frame: admin.frame(&state, "users"),
        user_name: None,
        new_user_name: String::new(),
        fields: Shown::new_user().fields(),
        errors: vec![],
    }
    .render();
    Ok(admin.page(&state, StatusCode::OK, html))
}

/// `GET /admin/users/{user_name}/edit`
pub async fn edit(
    admin: ConsoleAdmin,
    State(state): State<AppState>,
    Path(user_name): Path<String>,
) -> Result<Response, PageError> {
    let user = admin.registry.get_user(&user_name).await?;
    let html = FormPage {
        frame: admin.frame(&state, "users"),
        user_name: Some(user.user_name.clone()),
        new_user_name: String::new(),
        fields: Shown::of(&user).fields(),
        errors: vec![],
    }
    .render();
    Ok(admin.page(&state, StatusCode::OK, html))
}

/// The form again, with what was submitted and why it was not accepted (`422`).
fn refused_form(
    admin: &ConsoleAdmin,
    state: &AppState,
    user_name: Option<String>,
    shown: &Shown,
    params: &Params,
    errors: Vec<(&'static str, String)>,
    general: Option<String>,
) -> Response {
    let mut fields = shown.fields();
    let unplaced = place_errors(&mut fields, params, errors, general);
    let html = FormPage {
        frame: admin.frame(state, "users"),
        user_name,
        new_user_name: params.get("user_name").cloned().unwrap_or_default(),
        fields,
        errors: unplaced,
    }
    .render();
    admin.page(state, StatusCode::UNPROCESSABLE_ENTITY, html)
}

/// `POST /admin/users`
pub async fn create(
    admin: ConsoleAdmin,
    State(state): State<AppState>,
    CsrfForm { form, .. }: CsrfForm<UserForm>,
) -> Result<Response, PageError> {
    let shown = Shown::new_user();
    let mut errors = Vec::new();
    let fields = shown.changes(&form.params, &mut errors);
    if !errors.is_empty() {
        return Ok(refused_form(
            &admin,
            &state,
            None,
            &shown,
            &form.params,
            errors,
            None,
        ));
    }
    let password = Some(submitted("password", &form.params))
        .filter(|p| !p.is_empty())
        .map(Secret::new);
    let new = NewUser {
        user_name: submitted("user_name", &form.params).to_owned(),
        password,
        fields,
    };
    match admin.registry.create_user(new, false).await {
        Ok(user) => Ok(redirect_with(
            &state,
            &format!("/admin/users/{}", user.user_name),
            &Flash::success(format!("User {} created.", user.user_name)),
        )),
        Err(error) => {
            let message = form_message(error)?;
            Ok(refused_form(
                &admin,
                &state,
                None,
                &shown,
                &form.params,
                errors,
                Some(message),
            ))
        }
    }
}

/// `POST /admin/users/{user_name}`
pub async fn update(
    admin: ConsoleAdmin,
    State(state): State<AppState>,
    Path(user_name): Path<String>,
    CsrfForm { form, .. }: CsrfForm<UserForm>,
) -> Result<Response, PageError> {
    let user = admin.registry.get_user(&user_name).await?;
    let shown = Shown::of(&user);
    let mut errors = Vec::new();
    let changes = shown.changes(&form.params, &mut errors);
    let name = Some(user.user_name.clone());
    if !errors.is_empty() {
        return Ok(refused_form(
            &admin,
            &state,
            name,
            &shown,
            &form.params,
            errors,
            None,
        ));
    }
    match admin.registry.update_user(&user_name, changes).await {
        Ok(user) => Ok(redirect_with(
            &state,
            &format!("/admin/users/{}", user.user_name),
            &Flash::success(format!("User {} saved.", user.user_name)),
        )),
        Err(error) => {
            let message = form_message(error)?;
            Ok(refused_form(
                &admin,
                &state,
                name,
                &shown,
                &form.params,
                errors,
                Some(message),
            ))
        }
    }
}

#[derive(Deserialize)]
pub struct LockForm {
    /// `yes` locks, anything else unlocks.
    locked: String,
}

impl CsrfChecked for LockForm {
    const PURPOSE: &'static str = super::FORM_PURPOSE;
}

/// `POST /admin/users/{user_name}/lock`: locks or unlocks, at once (either is undone as
/// easily).
pub async fn lock(
    admin: ConsoleAdmin,
    State(state): State<AppState>,
    Path(user_name): Path<String>,
    CsrfForm { form, .. }: CsrfForm<LockForm>,
) -> Result<Response, PageError> {
    let locked = form.locked == "yes";
    let changes = UserChanges {
        locked_out: Some(locked),
        ..UserChanges::default()
    };
    let location = format!("/admin/users/{user_name}");
    let flash = match admin.registry.update_user(&user_name, changes).await {
        Ok(user) if locked => Flash::success(format!(
            "{} is locked out; their sessions and tokens have ended.",
            user.user_name
        )),
        Ok(user) => Flash::success(format!("{} may sign in again.", user.user_name)),
        Err(error) => Flash::failure(form_message(error)?),
    };
    Ok(redirect_with(&state, &location, &flash))
}

#[derive(Template)]
#[template(path = "console/password.html")]
struct PasswordPage {
    frame: Frame,
    user_name: String,
    error: Option<String>,
}

/// `GET /admin/users/{user_name}/password`
pub async fn password_form(
    admin: ConsoleAdmin,
    State(state): State<AppState>,
    Path(user_name): Path<String>,
) -> Result<Response, PageError> {
    let user = admin.registry.get_user(&user_name).await?;
    let html = PasswordPage {
        frame: admin.frame(&state, "users"),
        user_name: user.user_name,
        error: None,
    }
    .render();
    Ok(admin.page(&state, StatusCode::OK, html))
}

#[derive(Deserialize)]
pub struct PasswordForm {
    password: String,
}

impl CsrfChecked for PasswordForm {
    const PURPOSE: &'static str = super::FORM_PURPOSE;
}

/// `POST /admin/users/{user_name}/password`
pub async fn set_password(
    admin: ConsoleAdmin,
    State(state): State<AppState>,
    Path(user_name): Path<String>,
    CsrfForm { form, .. }: CsrfForm<PasswordForm>,
) -> Result<Response, PageError> {
    let set = admin
        .registry
        .set_password(&user_name, Secret::new(form.password))
        .await;
    match set {
        Ok(()) => Ok(redirect_with(
            &state,
            &format!("/admin/users/{user_name}"),
            &Flash::success(format!(
                "The password of {user_name} is set; the sessions and tokens their old one \
                 started have ended."
            )),
        )),
        Err(error) => {
            let html = PasswordPage {
                frame: admin.frame(&state, "users"),
                user_name,
                error: Some(form_message(error)?),
            }
            .render();
            Ok(admin.page(&state, StatusCode::UNPROCESSABLE_ENTITY, html))
        }
    }
}

/// `GET /admin/users/{user_name}/delete`
pub async fn confirm_deletion(
    admin: ConsoleAdmin,
    State(state): State<AppState>,
    Path(user_name): Path<String>,
) -> Result<Response, PageError> {
    let user = admin.registry.get_user(&user_name).await?;
    let html = super::ConfirmPage {
        frame: admin.frame(&state, "users"),
        title: format!("Delete {}?", user.user_name),
        message: "The user, their sessions and every token issued for them are deleted. This \
                  cannot be undone."
            .into(),
        action: format!("/admin/users/{}/delete", user.user_name),
        button: "Delete user",
        cancel: format!("/admin/users/{}", user.user_name),
        grace: None,
    }
    .render();
    Ok(admin.page(&state, StatusCode::OK, html))
}

/// `POST /admin/users/{user_name}/delete`
pub async fn delete(
    admin: ConsoleAdmin,
    State(state): State<AppState>,
    Path(user_name): Path<String>,
    _: CsrfForm<Confirmation>,
) -> Result<Response, PageError> {
    match admin.registry.delete_user(&user_name).await {
        Ok(()) => Ok(redirect_with(
            &state,
            "/admin/users",
            &Flash::success(format!("User {user_name} deleted.")),
        )),
        Err(error) => Ok(redirect_with(
            &state,
            &format!("/admin/users/{user_name}"),
            &Flash::failure(form_message(error)?),
        )),
    }
}
