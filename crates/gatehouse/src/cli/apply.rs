//! `gatehouse apply`: makes the registry match a declarative TOML file.

use std::path::PathBuf;

use clap::Args;
use gatehouse_core::audit::Actor;
use gatehouse_core::manifest::{Action, ApplyOptions};

use super::print_json;
use crate::server::Services;

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// The TOML file with [[application]], [[user]], [[oauth_provider]], [[oauth_profile]],
    /// [[connection_alias]], [[scope]], [[scope_rule]], [[route]] and [[table]] sections; the
    /// server's configuration file serves (its settings locate the database).
    pub(super) file: PathBuf,
    /// Delete records that earlier applies created and the file no longer lists.
    #[arg(long)]
    prune: bool,
    /// Print what would change, change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print JSON (for scripts) instead of text.
    #[arg(long)]
    json: bool,
}

pub(super) async fn run(services: &Services, args: ApplyArgs) -> anyhow::Result<()> {
    let (_, manifest) = crate::config::read_file(&args.file)?;
    let options = ApplyOptions {
        prune: args.prune,
        dry_run: args.dry_run,
    };
    let env = |name: &str| std::env::var(name).ok();
    let apply = Actor::operator("apply");
    let changes = manifest
        .apply(
            &services.registry.as_actor(apply.clone()),
            &services.outbound.registry().as_actor(apply),
            options,
            &env,
        )
        .await?;
    if args.json {
        return print_json(&changes);
    }
    if changes.is_empty() {
        println!("No changes.");
    }
    let prefix = if args.dry_run { "would " } else { "" };
    for change in &changes {
        let action = match change.action {
            Action::Create => "create",
            Action::Update => "update",
            Action::Delete => "delete",
        };
        let fields = if change.fields.is_empty() {
            String::new()
        } else {
            format!(" ({})", change.fields.join(", "))
        };
        println!("{prefix}{action} {} {}{fields}", change.kind, change.key);
        if let Some(secret) = &change.generated_secret {
            println!("  client_secret: {secret}  (shown only this once)");
        }
    }
    Ok(())
}
