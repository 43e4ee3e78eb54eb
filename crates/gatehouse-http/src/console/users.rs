//! `/admin/users`: list, view, create, edit (roles, active, lock), set the password of and
//! delete users. What an administrator may do to whom — registry roles, other administrators,
//! the last administrator — is the registry's decision, as for the admin API.

use askama::Template;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use gatehouse_core::Error;
use gatehouse_core::registry::{NewUser, UserChanges};
use gatehouse_core::secret::Secret;
use gatehouse_core::user::User;
use serde::Deserialize;

use super::form::{Field, FormField, Params, changed, form_message, submitted};
use super::record::{self, RecordKind, Refused};
use super::{ConsoleAdmin, Flash, Frame, ListQuery, Paged, redirect_with};
use crate::error::PageError;
use crate::extract::{CsrfChecked, CsrfForm};
use crate::state::AppState;

/// What the form showed: a user's values, or a new one's.
#[derive(Default)]
pub struct Shown {
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
    let mut users: Vec<User> = admin
        .registry
        .list_users()
        .await?
        .into_iter()
        .filter(|user| {
            query.finds(
                [
                    Some(&user.user_name),
                    Some(&user.display_name),
                    user.email.as_ref(),
                ]
                .into_iter()
                .flatten(),
            )
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
    let (frame, user, fields) = record::page_of::<Users>(&admin, &state, &user_name).await?;
    let html = UserPage {
        frame,
        user,
        fields,
    }
    .render();
    Ok(admin.page(&state, StatusCode::OK, html))
}

/// Users, in the console's record pages; their page is `show`, their form at `…/edit`.
pub struct Users;

impl RecordKind for Users {
    type Record = User;
    type Shown = Shown;

    const SECTION: &'static str = "users";
    const KIND: &'static str = "User";
    const TITLE: &'static str = "Users";
    const NEW: &'static str = "New user";
    const CREATE: &'static str = "Create user";
    const KEY: (&'static str, &'static str, &'static str) = (
        "user_name",
        "User name",
        "Letters, digits or . _ - @ ~; it cannot change later.",
    );
    const FORM_IS_PAGE: bool = false;
    const DELETION: (&'static str, &'static str) = (
        "The user, their sessions and every token issued for them are deleted. This cannot be \
         undone.",
        "Delete user",
    );

    async fn get(admin: &ConsoleAdmin, _: &AppState, user_name: &str) -> Result<User, Error> {
        admin.registry.get_user(user_name).await
    }

    fn key(user: &User) -> &str {
        &user.user_name
    }

    fn shown(user: Option<&User>) -> Shown {
        user.map_or_else(Shown::new_user, Shown::of)
    }

    fn fields(shown: &Shown) -> Vec<Field> {
        shown.fields()
    }

    /// A new user's password; an existing one's is set on a page of its own.
    fn secrets(user: Option<&User>) -> Vec<record::Secret> {
        match user {
            Some(_) => vec![],
            None => vec![record::Secret {
                name: "password",
                label: "Password",
                help: "Optional: without one the user signs in only through a trusted provider."
                    .into(),
            }],
        }
    }

    async fn save(
        admin: &ConsoleAdmin,
        _: &AppState,
        existing: Option<&User>,
        shown: &Shown,
        params: &Params,
    ) -> Result<(User, Option<String>), Refused> {
        let fields = Refused::unless_read(|errors| shown.changes(params, errors))?;
        let saved = match existing {
            Some(user) => admin.registry.update_user(&user.user_name, fields).await?,
            None => {
                let password = Some(submitted("password", params))
                    .filter(|p| !p.is_empty())
                    .map(Secret::new);
                let new = NewUser {
                    user_name: submitted("user_name", params).to_owned(),
                    password,
                    fields,
                };
                admin.registry.create_user(new, false).await?
            }
        };
        Ok((saved, None))
    }

    async fn delete(
        admin: &ConsoleAdmin,
        _: &AppState,
        user_name: &str,
    ) -> Result<Result<String, Error>, PageError> {
        let deleted = admin.registry.delete_user(user_name).await;
        Ok(deleted.map(|()| user_name.to_owned()))
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
