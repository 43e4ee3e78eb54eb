//! `gatehouse jwt-provider`: trusted issuers of JWTs (JWT bearer grant, third-party tokens on
//! the APIs).

use std::path::PathBuf;

use clap::{Args, Subcommand};
use gatehouse_core::federation::{JwtProviderChanges, KeySource, NewJwtProvider};
use gatehouse_core::registry::Registry;
use gatehouse_http::views::JwtProviderView;

use super::{print_json, read_text};

#[derive(Debug, Subcommand)]
pub enum JwtProviderCommand {
    /// Trust an issuer of JWTs.
    Create {
        /// The provider's name.
        name: String,
        #[command(flatten)]
        fields: JwtProviderFieldArgs,
    },
    /// List JWT providers.
    List {
        /// Print JSON (for scripts) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Show one JWT provider.
    Show {
        /// The provider's name.
        name: String,
    },
    /// Change the given fields of a JWT provider (a list option replaces the whole list).
    Update {
        /// The provider's name.
        name: String,
        #[command(flatten)]
        fields: JwtProviderFieldArgs,
    },
    /// Stop trusting an issuer.
    Delete {
        /// The provider's name.
        name: String,
    },
}

/// The fields of a JWT provider, for `create` and `update`.
#[derive(Debug, Args)]
pub struct JwtProviderFieldArgs {
    /// The `iss` of its tokens.
    #[arg(long)]
    issuer: Option<String>,
    /// An `aud` value naming this server at that issuer (repeatable).
    #[arg(long = "audience", value_name = "AUD")]
    audiences: Vec<String>,
    /// Its JWK Set URL.
    #[arg(long, value_name = "URL")]
    jwks_url: Option<String>,
    /// Its OpenID Connect discovery URL (the JWK Set is found there).
    #[arg(long, value_name = "URL")]
    discovery_url: Option<String>,
    /// A file with its public key (PEM, JWK or JWK Set).
    #[arg(long, value_name = "FILE")]
    key_file: Option<PathBuf>,
    /// An accepted algorithm (repeatable): RS256, RS384, RS512, PS256, ES256, ES384, EdDSA
    /// (default RS256 and ES256).
    #[arg(long = "alg", value_name = "ALG")]
    algorithms: Vec<String>,
    /// The claim naming the user (default sub).
    #[arg(long, value_name = "CLAIM")]
    user_claim: Option<String>,
    /// The user field the claim is matched against: user_name (default) or email.
    #[arg(long, value_name = "FIELD")]
    user_field: Option<String>,
    /// The client_id of an application that may present its assertions (repeatable).
    #[arg(long = "allow-app", value_name = "CLIENT_ID")]
    allowed_clients: Vec<String>,
    /// The oldest assertion accepted, in seconds since its iat (default 300).
    #[arg(long, value_name = "SECONDS")]
    max_age: Option<i64>,
    /// The longest an assertion may live, in seconds: the most its exp may be after its iat
    /// and after now (default 3600).
    #[arg(long, value_name = "SECONDS")]
    max_lifetime: Option<i64>,
    /// Whether its tokens are accepted as bearer tokens on the APIs.
    #[arg(long, value_name = "BOOL")]
    api_access: Option<bool>,
    /// A scope its tokens may carry on the APIs (repeatable).
    #[arg(long = "api-scope", value_name = "SCOPE")]
    api_scopes: Vec<String>,
    /// Whether its tokens typed JWT (or untyped) are accepted on the APIs besides at+jwt ones.
    #[arg(long, value_name = "BOOL")]
    accept_plain_jwt: Option<bool>,
    /// Whether its ID tokens are accepted on the APIs.
    #[arg(long, value_name = "BOOL")]
    accept_id_tokens: Option<bool>,
    /// Seconds its keys stay in use past their expiry while refreshing fails (default 3600).
    #[arg(long, value_name = "SECONDS")]
    stale_keys_lifetime: Option<i64>,
    /// Whether its tokens may stand for users who hold a registry role (admin only; default
    /// false).
    #[arg(long, value_name = "BOOL")]
    map_registry_roles: Option<bool>,
    /// Whether its tokens and assertions are accepted (default true).
    #[arg(long, value_name = "BOOL")]
    active: Option<bool>,
}

impl JwtProviderFieldArgs {
    fn into_changes(self) -> anyhow::Result<JwtProviderChanges> {
        let list = |values: Vec<String>| {
            (!values.is_empty()).then(|| values.into_iter().filter(|v| !v.is_empty()).collect())
        };
        let static_key = self.key_file.as_deref().map(read_text).transpose()?;
        let algorithms: Option<Vec<String>> = list(self.algorithms);
        Ok(JwtProviderChanges {
            issuer: self.issuer,
            audiences: list(self.audiences),
            key_source: KeySource::from_options(self.jwks_url, self.discovery_url, static_key)?,
            algorithms: algorithms
                .map(|a| a.iter().map(|a| a.parse()).collect())
                .transpose()?,
            user_claim: self.user_claim,
            user_field: self.user_field.map(|f| f.parse()).transpose()?,
            allowed_clients: list(self.allowed_clients),
            max_age: self.max_age,
            max_lifetime: self.max_lifetime,
            api_access: self.api_access,
            accept_plain_jwt: self.accept_plain_jwt,
            accept_id_tokens: self.accept_id_tokens,
            stale_keys_lifetime: self.stale_keys_lifetime,
            map_registry_roles: self.map_registry_roles,
            api_scopes: list(self.api_scopes),
            active: self.active,
        })
    }
}

pub(super) async fn run(registry: &Registry, command: JwtProviderCommand) -> anyhow::Result<()> {
    match command {
        JwtProviderCommand::Create { name, fields } => {
            let new = NewJwtProvider {
                name,
                fields: fields.into_changes()?,
            };
            print_json(&JwtProviderView::from(
                &registry.create_jwt_provider(new, false).await?,
            ))
        }
        JwtProviderCommand::List { json } => {
            let views: Vec<JwtProviderView> = registry
                .list_jwt_providers()
                .await?
                .iter()
                .map(JwtProviderView::from)
                .collect();
            if json {
                return print_json(&views);
            }
            println!("{:<24} {:<7} {:<6} ISSUER", "NAME", "ACTIVE", "API");
            for v in views {
                println!(
                    "{:<24} {:<7} {:<6} {}",
                    v.name, v.active, v.api_access, v.issuer
                );
            }
            Ok(())
        }
        JwtProviderCommand::Show { name } => print_json(&JwtProviderView::from(
            &registry.get_jwt_provider(&name).await?,
        )),
        JwtProviderCommand::Update { name, fields } => {
            let provider = registry
                .update_jwt_provider(&name, fields.into_changes()?)
                .await?;
            print_json(&JwtProviderView::from(&provider))
        }
        JwtProviderCommand::Delete { name } => {
            registry.delete_jwt_provider(&name).await?;
            eprintln!("Deleted JWT provider {name}.");
            Ok(())
        }
    }
}
