//! The command line: `serve` and the commands that manage the registry, their `--json` output
//! and the conventions scripts rely on (one-line errors, non-zero exit status).
//!
//! Here are the top-level arguments and the dispatch; each command group (`app`, `user`,
//! `jwt-provider`, `keys`, `apply`, `audit`, `outbound` with `call`, `entries` for `scope`, `rule`,
//! `route`, `table` and outbound's `profile` and `alias`, `backup` with `restore`, and the hidden
//! `generate`) has a module with its arguments and how it runs.

mod app;
mod apply;
mod audit;
mod backup;
mod entries;
mod generate;
mod jwt_provider;
mod keys;
mod outbound;
mod tokens;
mod user;

use std::path::Path;

use anyhow::Context;
use clap::{Parser, Subcommand};
use gatehouse_core::audit::Actor;
use gatehouse_core::secret::Secret;
use serde::Serialize;

use self::app::AppCommand;
use self::apply::ApplyArgs;
use self::audit::AuditCommand;
use self::backup::{BackupArgs, RestoreArgs};
use self::entries::{EntryCommand, RouteArgs, RuleArgs, ScopeArgs, TableArgs};
use self::generate::GenerateCommand;
use self::jwt_provider::JwtProviderCommand;
use self::keys::KeysCommand;
use self::outbound::{CallArgs, OutboundCommand};
use self::user::UserCommand;
use crate::config::{GlobalArgs, ServeArgs, Settings};
use crate::server::open_services;

#[derive(Debug, Parser)]
#[command(
    name = "gatehouse",
    version,
    about = "A self-hosted OAuth 2.0 and OpenID Connect authorization server"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server.
    Serve(ServeArgs),
    /// Manage applications (OAuth clients) of the registry.
    #[command(subcommand)]
    App(AppCommand),
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage trusted issuers of JWTs (JWT bearer grant, third-party tokens on the APIs).
    #[command(subcommand)]
    JwtProvider(JwtProviderCommand),
    /// Manage signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Make the registry match a declarative TOML file, all of it or nothing.
    Apply(ApplyArgs),
    /// Read the audit trail: changes to the registry and security events.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Manage outbound OAuth: providers, profiles and connection aliases.
    #[command(subcommand)]
    Outbound(OutboundCommand),
    /// Call an external API through a connection alias, with the alias' token.
    Call(CallArgs),
    /// Manage scopes (name, consent-page description, granted by default).
    #[command(subcommand)]
    Scope(EntryCommand<ScopeArgs>),
    /// Manage REST API auth scope rules (methods, path pattern, scopes needed).
    #[command(subcommand)]
    Rule(EntryCommand<RuleArgs>),
    /// Manage gateway routes (path prefix, upstream URL, timeout).
    #[command(subcommand)]
    Route(EntryCommand<RouteArgs>),
    /// Manage the Table API's tables (read and write roles).
    #[command(subcommand)]
    Table(EntryCommand<TableArgs>),
    /// Write a consistent copy of the SQLite database, also while a server runs on it.
    Backup(BackupArgs),
    /// Put a backup in place of the SQLite database (refused while a server runs on it).
    Restore(RestoreArgs),
    /// Write shell completions or man pages (for packaging).
    #[command(subcommand, hide = true)]
    Generate(GenerateCommand),
}

/// Runs a command other than `serve`.
pub async fn run(mut global: GlobalArgs, command: Command) -> anyhow::Result<()> {
    // These work on the database file itself, or on no database: no services.
    let command = match command {
        Command::Backup(args) => return backup::backup(&global, args).await,
        Command::Restore(args) => return backup::restore(&global, args).await,
        Command::Generate(command) => return generate::run(command),
        command => command,
    };
    let serve_args = match &command {
        Command::Keys(KeysCommand::Rotate { serve, .. }) => (**serve).clone(),
        _ => ServeArgs::default(),
    };
    // `apply` takes the file `serve` takes: its settings say where the database is, unless
    // --config names another file for them.
    if let Command::Apply(args) = &command {
        global.config.get_or_insert_with(|| args.file.clone());
    }
    let settings = Settings::resolve(&global, &serve_args)?;
    let services = open_services(&settings).await?;
    let registry = &services.registry.as_actor(Actor::operator("cli"));
    let outcome = match command {
        Command::Serve(_) | Command::Backup(_) | Command::Restore(_) | Command::Generate(_) => {
            unreachable!("run without the services")
        }
        Command::App(command) => app::run(registry, &services.tokens, command).await,
        Command::User(command) => user::run(registry, &services.tokens, command).await,
        Command::JwtProvider(command) => jwt_provider::run(registry, command).await,
        Command::Keys(command) => keys::run(&services, &settings, command).await,
        Command::Apply(args) => apply::run(&services, args).await,
        Command::Audit(command) => audit::run(registry, command).await,
        Command::Outbound(command) => outbound::run(&services, registry, command).await,
        Command::Call(args) => outbound::run_call(&services, args).await,
        Command::Scope(command) => entries::run(registry, command).await,
        Command::Rule(command) => entries::run(registry, command).await,
        Command::Route(command) => entries::run(registry, command).await,
        Command::Table(command) => entries::run(registry, command).await,
    };
    // A change that ended a user's sessions queued logout tokens for applications: the process
    // ends here, so it delivers them first (each delivery is bounded, and so is the wait).
    if !services.logout_queue.finished(LOGOUT_DELIVERY_WAIT).await {
        tracing::warn!("some back-channel logout tokens were still being delivered and are lost");
    }
    outcome
}

/// How long a command waits for its back-channel logout deliveries, retries included.
const LOGOUT_DELIVERY_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

fn secret_from_env(var: &str) -> anyhow::Result<Secret> {
    std::env::var(var)
        .map(Secret::new)
        .with_context(|| format!("environment variable {var} is not set"))
}

fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

fn read_text(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}
