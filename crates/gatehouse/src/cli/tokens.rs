//! `gatehouse user tokens` and `gatehouse app tokens`: what a user or an application holds,
//! through `held::Holdings`, as the console's tokens pages and the admin API show it.

use clap::Subcommand;
use gatehouse_core::held::Holdings;
use gatehouse_http::views::{HeldView, HoldingsView};

use super::print_json;

#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// List the stored tokens in service (and a user's login sessions), newest first, at most
    /// 500 of each kind, each with the handle that revokes it.
    List {
        /// Print JSON (for scripts) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Revoke one token or end one session, by the handle the list shows. A refresh token
    /// takes its grant with it.
    Revoke {
        /// The handle `list` shows beside the token or session.
        handle: String,
    },
    /// Revoke everything: a user's sessions and tokens (JWTs included, as a new password
    /// does), or every access and refresh token issued to an application.
    RevokeAll,
}

pub(super) async fn run(holdings: Holdings, command: TokensCommand) -> anyhow::Result<()> {
    match command {
        TokensCommand::List { json } => {
            let listing = holdings.list().await?;
            let view = HoldingsView {
                tokens: listing.held.iter().map(HeldView::from).collect(),
                truncated: listing.truncated,
            };
            if json {
                return print_json(&view);
            }
            println!(
                "{:<16} {:<24} {:<24} {:<11} {:<11} HANDLE",
                "KIND", "CLIENT_ID", "USER", "ISSUED_AT", "EXPIRES_AT"
            );
            for held in &view.tokens {
                println!(
                    "{:<16} {:<24} {:<24} {:<11} {:<11} {}",
                    held.kind,
                    held.client_id.as_deref().unwrap_or("-"),
                    held.user_name.as_deref().unwrap_or("-"),
                    held.issued_at,
                    held.expires_at,
                    held.handle
                );
            }
            if view.truncated {
                eprintln!("More are in service than listed: the newest 500 of each kind are.");
            }
            Ok(())
        }
        TokensCommand::Revoke { handle } => {
            let held = holdings.revoke(&handle).await?;
            eprintln!("Revoked the {}.", held.kind.label());
            Ok(())
        }
        TokensCommand::RevokeAll => {
            holdings.revoke_all().await?;
            eprintln!("Revoked everything.");
            Ok(())
        }
    }
}
