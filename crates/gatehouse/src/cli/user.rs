//! `gatehouse user`: the users, and their passwords, which never come from the command line.

use std::io::Read;
use std::sync::Arc;

use anyhow::bail;
use clap::{Args, Subcommand};
use gatehouse_core::held::Holdings;
use gatehouse_core::registry::{NewUser, Registry, UserChanges};
use gatehouse_core::secret::Secret;
use gatehouse_core::token::TokenService;
use gatehouse_http::views::UserView;

use super::tokens::TokensCommand;
use super::{print_json, secret_from_env};

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user.
    Create {
        /// The user's name, which they sign in with.
        user_name: String,
        #[command(flatten)]
        fields: UserFieldArgs,
        #[command(flatten)]
        password: PasswordArgs,
        /// Print JSON (for scripts) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// List users.
    List {
        /// Print JSON (for scripts) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Show one user.
    Show {
        /// The user's name, which they sign in with.
        user_name: String,
        /// Print JSON (for scripts) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Change the given fields of a user.
    Update {
        /// The user's name, which they sign in with.
        user_name: String,
        #[command(flatten)]
        fields: UserFieldArgs,
        /// Print JSON (for scripts) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Delete a user and every token issued for them.
    Delete {
        /// The user's name, which they sign in with.
        user_name: String,
    },
    /// Set a user's password (from an environment variable or standard input).
    SetPassword {
        /// The user's name, which they sign in with.
        user_name: String,
        #[command(flatten)]
        password: PasswordArgs,
    },
    /// The user's tokens and login sessions: list them, revoke one or everything.
    Tokens {
        /// The user's name, which they sign in with.
        user_name: String,
        #[command(subcommand)]
        command: TokensCommand,
    },
}

#[derive(Debug, Args)]
pub struct UserFieldArgs {
    /// The name shown for the user (default: the user name).
    #[arg(long)]
    display_name: Option<String>,
    /// Given name ("" removes it).
    #[arg(long)]
    given_name: Option<String>,
    /// Family name ("" removes it).
    #[arg(long)]
    family_name: Option<String>,
    /// An email address ("" removes it).
    #[arg(long)]
    email: Option<String>,
    /// A role (repeatable), e.g. admin, oauth_admin, mi_admin.
    #[arg(long = "role", value_name = "ROLE")]
    roles: Vec<String>,
    /// Whether the user may sign in and act (default true).
    #[arg(long, value_name = "BOOL")]
    active: Option<bool>,
    /// Lock the user out (true) or let them log in again (false).
    #[arg(long, value_name = "BOOL")]
    locked_out: Option<bool>,
}

impl From<UserFieldArgs> for UserChanges {
    fn from(args: UserFieldArgs) -> Self {
        UserChanges {
            display_name: args.display_name,
            given_name: args.given_name,
            family_name: args.family_name,
            email: args.email,
            roles: (!args.roles.is_empty())
                .then(|| args.roles.into_iter().filter(|r| !r.is_empty()).collect()),
            active: args.active,
            locked_out: args.locked_out,
        }
    }
}

/// Where a password comes from: never the command line, where other users could read it.
#[derive(Debug, Args)]
pub struct PasswordArgs {
    /// Read the password from this environment variable.
    #[arg(long, value_name = "VAR", conflicts_with = "password_stdin")]
    password_env: Option<String>,
    /// Read the password from the first line of standard input.
    #[arg(long)]
    password_stdin: bool,
}

impl PasswordArgs {
    fn read(&self) -> anyhow::Result<Option<Secret>> {
        if let Some(var) = &self.password_env {
            return Ok(Some(secret_from_env(var)?));
        }
        if self.password_stdin {
            let mut line = String::new();
            std::io::stdin().read_to_string(&mut line)?;
            let password = line.lines().next().unwrap_or_default().to_owned();
            return Ok(Some(Secret::new(password)));
        }
        Ok(None)
    }
}

fn print_user(view: &UserView, json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(view);
    }
    println!("user_name:    {}", view.user_name);
    println!("display_name: {}", view.display_name);
    println!("email:        {}", view.email.as_deref().unwrap_or("-"));
    println!("roles:        {}", view.roles.join(" "));
    println!("active:       {}", view.active);
    println!("has_password: {}", view.has_password);
    Ok(())
}

pub(super) async fn run(
    registry: &Registry,
    tokens: &Arc<TokenService>,
    command: UserCommand,
) -> anyhow::Result<()> {
    match command {
        UserCommand::Create {
            user_name,
            fields,
            password,
            json,
        } => {
            let new = NewUser {
                user_name,
                password: password.read()?,
                fields: fields.into(),
            };
            print_user(
                &UserView::from(&registry.create_user(new, false).await?),
                json,
            )
        }
        UserCommand::List { json } => {
            let views: Vec<UserView> = registry
                .list_users()
                .await?
                .iter()
                .map(UserView::from)
                .collect();
            if json {
                return print_json(&views);
            }
            println!(
                "{:<24} {:<24} {:<7} ROLES",
                "USER_NAME", "DISPLAY_NAME", "ACTIVE"
            );
            for v in views {
                println!(
                    "{:<24} {:<24} {:<7} {}",
                    v.user_name,
                    v.display_name,
                    v.active,
                    v.roles.join(",")
                );
            }
            Ok(())
        }
        UserCommand::Show { user_name, json } => {
            print_user(&UserView::from(&registry.get_user(&user_name).await?), json)
        }
        UserCommand::Update {
            user_name,
            fields,
            json,
        } => {
            let user = registry.update_user(&user_name, fields.into()).await?;
            print_user(&UserView::from(&user), json)
        }
        UserCommand::Delete { user_name } => {
            registry.delete_user(&user_name).await?;
            eprintln!("Deleted user {user_name}.");
            Ok(())
        }
        UserCommand::SetPassword {
            user_name,
            password,
        } => {
            let Some(password) = password.read()? else {
                bail!("give the password with --password-env VAR or --password-stdin");
            };
            registry.set_password(&user_name, password).await?;
            eprintln!("Password of {user_name} set.");
            Ok(())
        }
        UserCommand::Tokens { user_name, command } => {
            let holdings = Holdings::of_user(registry, tokens, &user_name).await?;
            super::tokens::run(holdings, command).await
        }
    }
}
