//! `gatehouse app`: the applications (OAuth clients) of the registry.

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, Subcommand};
use gatehouse_core::client::{Client, ClientType, GrantType, TokenFormat};
use gatehouse_core::held::Holdings;
use gatehouse_core::keys::SigningAlgorithm;
use gatehouse_core::registry::{AppChanges, DEFAULT_SECRET_GRACE, NewApp, Registry};
use gatehouse_core::token::TokenService;
use gatehouse_http::views::AppView;

use super::tokens::TokensCommand;
use super::{print_json, read_text, secret_from_env};

#[derive(Debug, Subcommand)]
pub enum AppCommand {
    /// Register an application; prints its client secret once.
    Create {
        /// Fix the client_id instead of generating one.
        #[arg(long)]
        client_id: Option<String>,
        /// Read an administrator-chosen secret (32+ characters) from this environment variable.
        #[arg(long, value_name = "VAR")]
        secret_env: Option<String>,
        #[command(flatten)]
        fields: AppFieldArgs,
        /// Print JSON (for scripts) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// List applications.
    List {
        /// Print JSON (for scripts) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Show one application.
    Show {
        /// The application's client_id.
        client_id: String,
        /// Print JSON (for scripts) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Change the given fields of an application (a list option replaces the whole list; given
    /// once as "" it empties it).
    Update {
        /// The application's client_id.
        client_id: String,
        #[command(flatten)]
        fields: AppFieldArgs,
        /// Print JSON (for scripts) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Delete an application and every token issued to it.
    Delete {
        /// The application's client_id.
        client_id: String,
    },
    /// Replace the client secret; prints the new one once. The replaced secret stays valid for
    /// the grace period, so the services using it can be redeployed one by one.
    RotateSecret {
        /// The application's client_id.
        client_id: String,
        /// Read an administrator-chosen secret from this environment variable.
        #[arg(long, value_name = "VAR")]
        secret_env: Option<String>,
        /// Seconds the replaced secret stays valid (default 86400, a day; 0 ends it at once; at
        /// most 30 days).
        #[arg(long, value_name = "SECONDS", conflicts_with = "revoke_previous")]
        grace: Option<i64>,
        /// Rotate nothing: end the grace period of the secret the last rotation replaced.
        #[arg(long, conflicts_with = "secret_env")]
        revoke_previous: bool,
        /// Print JSON (for scripts) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// The tokens issued to the application: list them, revoke one or everything.
    Tokens {
        /// The application's client_id.
        client_id: String,
        #[command(subcommand)]
        command: TokensCommand,
    },
}

/// Declares the options of `create` and `update` from the registry's field list.
macro_rules! app_options {
    ($(
        $(#[doc = $doc:literal])*
        #[arg($($arg:tt)*)]
        $field:ident : $ty:ty => $change:ty = $default:expr,
    )*) => {
        /// The fields of an application, for `create` and `update`.
        #[derive(Debug, Args)]
        pub struct AppFieldArgs {
            $($(#[doc = $doc])* #[arg($($arg)*)] $field: Option<$change>,)*
            /// A file with the public keys for private_key_jwt (JWK Set, JWK or PEM); a client
            /// with keys gets no secret.
            #[arg(long, value_name = "FILE")]
            jwks_file: Option<PathBuf>,
        }

        impl AppFieldArgs {
            fn into_changes(self) -> anyhow::Result<AppChanges> {
                let mut changes = AppChanges {
                    $($field: self.$field.map(Emptied::emptied),)*
                };
                if let Some(path) = &self.jwks_file {
                    changes.jwks = Some(read_text(path)?);
                }
                Ok(changes)
            }
        }
    };
}

gatehouse_core::with_app_fields!(app_options);

/// A list option replaces the list; given once with an empty value, it empties it.
trait Emptied: Sized {
    fn emptied(self) -> Self {
        self
    }
}

impl Emptied for Vec<String> {
    fn emptied(self) -> Self {
        self.into_iter().filter(|v| !v.is_empty()).collect()
    }
}

impl Emptied for Vec<GrantType> {}
impl Emptied for String {}
impl Emptied for bool {}
impl Emptied for i64 {}
impl Emptied for ClientType {}
impl Emptied for TokenFormat {}
impl Emptied for SigningAlgorithm {}

/// Prints the client_id and every field an administrator sets, one a line in the order they are
/// declared, lists space-separated and an absent value as `-`; then a new secret, with the
/// warning that it is not shown again.
fn print_app(view: &AppView, json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(view);
    }
    let fields = serde_json::to_value(view)?;
    let names = ["client_id"]
        .iter()
        .chain(Client::FIELDS)
        .chain(["client_secret"].iter());
    for name in names {
        let shown = match &fields[*name] {
            serde_json::Value::Null if *name == "client_secret" => continue,
            serde_json::Value::Null => "-".to_owned(),
            serde_json::Value::String(text) => text.clone(),
            serde_json::Value::Array(items) => items
                .iter()
                .map(|item| {
                    item.as_str()
                        .map_or_else(|| item.to_string(), str::to_owned)
                })
                .collect::<Vec<_>>()
                .join(" "),
            other => other.to_string(),
        };
        println!("{:<23} {shown}", format!("{name}:"));
    }
    if view.client_secret.is_some() {
        eprintln!("The client secret is shown only this once; store it now.");
    }
    Ok(())
}

pub(super) async fn run(
    registry: &Registry,
    tokens: &Arc<TokenService>,
    command: AppCommand,
) -> anyhow::Result<()> {
    match command {
        AppCommand::Create {
            client_id,
            secret_env,
            fields,
            json,
        } => {
            let new = NewApp {
                client_id,
                client_secret: secret_env.as_deref().map(secret_from_env).transpose()?,
                fields: fields.into_changes()?,
            };
            let (client, secret) = registry.create_app(new, false).await?;
            let mut view = AppView::from(&client);
            view.client_secret = secret.map(|s| s.expose().to_owned());
            print_app(&view, json)
        }
        AppCommand::List { json } => {
            let views: Vec<AppView> = registry
                .list_apps()
                .await?
                .iter()
                .map(AppView::from)
                .collect();
            if json {
                return print_json(&views);
            }
            println!(
                "{:<34} {:<24} {:<13} {:<7} {:<7} GRANTS",
                "CLIENT_ID", "NAME", "TYPE", "FORMAT", "ACTIVE"
            );
            for v in views {
                println!(
                    "{:<34} {:<24} {:<13} {:<7} {:<7} {}",
                    v.client_id,
                    v.name,
                    v.client_type.as_str(),
                    v.token_format.as_str(),
                    v.active,
                    v.grant_types
                        .iter()
                        .map(|g| g.as_str())
                        .collect::<Vec<_>>()
                        .join(",")
                );
            }
            Ok(())
        }
        AppCommand::Show { client_id, json } => {
            print_app(&AppView::from(&registry.get_app(&client_id).await?), json)
        }
        AppCommand::Update {
            client_id,
            fields,
            json,
        } => {
            let client = registry
                .update_app(&client_id, fields.into_changes()?)
                .await?;
            print_app(&AppView::from(&client), json)
        }
        AppCommand::Delete { client_id } => {
            registry.delete_app(&client_id).await?;
            eprintln!("Deleted application {client_id}.");
            Ok(())
        }
        AppCommand::Tokens { client_id, command } => {
            let holdings = Holdings::of_application(registry, tokens, &client_id).await?;
            super::tokens::run(holdings, command).await
        }
        AppCommand::RotateSecret {
            client_id,
            revoke_previous: true,
            json,
            ..
        } => {
            let client = registry.end_previous_secret(&client_id).await?;
            eprintln!("The previous secret of {client_id} no longer works.");
            print_app(&AppView::from(&client), json)
        }
        AppCommand::RotateSecret {
            client_id,
            secret_env,
            grace,
            json,
            ..
        } => {
            let secret = secret_env.as_deref().map(secret_from_env).transpose()?;
            let grace = grace.unwrap_or(DEFAULT_SECRET_GRACE);
            let (client, secret) = registry.rotate_secret(&client_id, secret, grace).await?;
            let mut view = AppView::from(&client);
            view.client_secret = Some(secret.expose().to_owned());
            print_app(&view, json)
        }
    }
}
