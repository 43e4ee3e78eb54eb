//! `gatehouse keys`: the signing keys, their rotation and their retirement.

use clap::Subcommand;
use gatehouse_core::audit::Actor;
use gatehouse_http::views::{KeyView, RetiredKeyView};

use super::print_json;
use crate::config::{ServeArgs, Settings};
use crate::server::Services;

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// List signing keys and their state.
    List {
        /// Print JSON (for scripts) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Publish a new signing key now; it signs after the delay (default: the JWKS cache
    /// lifetime), so no relying party meets an unknown kid.
    Rotate {
        /// ES256, RS256 or EdDSA.
        #[arg(long, default_value = "ES256")]
        alg: String,
        /// Seconds before the new key signs.
        #[arg(long, value_name = "SECONDS")]
        delay: Option<u64>,
        #[command(flatten)]
        serve: Box<ServeArgs>,
        /// Print JSON (for scripts) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Take a key out of service at once (after a compromise): it is no longer published and
    /// the tokens it signed no longer verify, on every instance. A key that was signing is
    /// replaced by a new key of its algorithm, which signs at once.
    Retire {
        /// The key's id (`kid`), as `keys list` shows it.
        kid: String,
        /// Print JSON (for scripts) instead of text.
        #[arg(long)]
        json: bool,
    },
}

pub(super) async fn run(
    services: &Services,
    settings: &Settings,
    command: KeysCommand,
) -> anyhow::Result<()> {
    match command {
        KeysCommand::List { json } => list(services, json),
        KeysCommand::Retire { kid, json } => {
            let replacement = services.tokens.retire_key(&kid, &cli()).await?;
            if json {
                return print_json(&RetiredKeyView {
                    retired: kid,
                    replacement,
                });
            }
            println!("Retired key {kid}: it is no longer published and its tokens are refused.");
            if let Some(replacement) = replacement {
                println!("Key {replacement} replaces it and signs from now on.");
            }
            Ok(())
        }
        KeysCommand::Rotate {
            alg, delay, json, ..
        } => {
            let delay = delay.unwrap_or(settings.jwks_max_age);
            let kid = services
                .tokens
                .rotate_key(alg.parse()?, i64::try_from(delay)?, &cli())
                .await?;
            if json {
                return print_json(
                    &serde_json::json!({ "kid": kid, "alg": alg, "signs_in_seconds": delay }),
                );
            }
            println!("Published key {kid} ({alg}); it signs in {delay} s.");
            Ok(())
        }
    }
}

fn list(services: &Services, json: bool) -> anyhow::Result<()> {
    let keys = KeyView::list(&services.tokens.key_ring(), services.tokens.clock().now());
    if json {
        return print_json(&keys);
    }
    println!("{:<18} {:<6} {:<12} STATE", "KID", "ALG", "ACTIVATES_AT");
    for key in keys {
        println!(
            "{:<18} {:<6} {:<12} {}",
            key.kid, key.alg, key.activates_at, key.state
        );
    }
    Ok(())
}

fn cli() -> Actor {
    Actor::operator("cli")
}
