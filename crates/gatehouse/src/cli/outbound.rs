//! The outbound OAuth commands: `gatehouse outbound provider|profile|alias …` manage the
//! records, and `gatehouse call` calls an API through a connection alias.

use std::io::Write;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use gatehouse_core::audit::Actor;
use gatehouse_core::outbound::ProviderSpec;
use gatehouse_core::registry::Registry;
use gatehouse_http::views::ProviderView;
use gatehouse_remote::outbound::UpstreamRequest;

use super::entries::{self, AliasArgs, EntryCommand, ProfileArgs};
use super::{print_json, secret_from_env};
use crate::server::Services;

#[derive(Debug, Subcommand)]
pub enum OutboundCommand {
    /// External OAuth providers: where tokens come from.
    #[command(subcommand)]
    Provider(ProviderCommand),
    /// OAuth profiles: a provider and the scopes to ask for. A change or deletion drops the
    /// tokens obtained for the profile.
    #[command(subcommand)]
    Profile(EntryCommand<ProfileArgs>),
    /// Connection aliases: an API's base URL and the profile whose token it gets.
    #[command(subcommand)]
    Alias(EntryCommand<AliasArgs>),
}

#[derive(Debug, Subcommand)]
pub enum ProviderCommand {
    /// Create a provider, or replace the one with this name (credentials not given are kept).
    Save(Box<ProviderArgs>),
    List {
        /// Print JSON (for scripts) instead of text.
        #[arg(long)]
        json: bool,
    },
    Show {
        /// The record's name.
        name: String,
        /// Print JSON (for scripts) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Delete a provider that no profile uses.
    Delete {
        /// The record's name.
        name: String,
    },
}

#[derive(Debug, Args)]
pub struct ProviderArgs {
    /// The record's name.
    name: String,
    /// The provider's token endpoint URL.
    #[arg(long, value_name = "URL")]
    token_url: String,
    /// The authorization endpoint, for the authorization_code grant.
    #[arg(long, value_name = "URL")]
    authorization_url: Option<String>,
    /// The client_id Gatehouse has at the provider.
    #[arg(long)]
    client_id: String,
    /// Read the client secret from this environment variable.
    #[arg(long, value_name = "VAR")]
    secret_env: Option<String>,
    /// client_secret_basic (default), client_secret_post or private_key_jwt.
    #[arg(long, value_name = "METHOD", default_value = "client_secret_basic")]
    auth_method: String,
    /// client_credentials (default), authorization_code, password or jwt_bearer.
    #[arg(long, value_name = "GRANT", default_value = "client_credentials")]
    grant: String,
    /// An `audience` token-request parameter.
    #[arg(long)]
    audience: Option<String>,
    /// A `resource` token-request parameter (RFC 8707).
    #[arg(long)]
    resource: Option<String>,
    /// The resource owner (password grant) or the assertion's subject (jwt_bearer).
    #[arg(long)]
    username: Option<String>,
    /// Read the resource owner's password from this environment variable.
    #[arg(long, value_name = "VAR")]
    password_env: Option<String>,
    /// ES256 or RS256: Gatehouse generates a key of this kind for private_key_jwt and
    /// jwt_bearer and shows its public JWK.
    #[arg(long, value_name = "ALG")]
    signing_alg: Option<String>,
    /// The provider's issuer identifier (required for authorization_code): its authorization
    /// responses must name it in `iss`.
    #[arg(long, value_name = "URL")]
    issuer: Option<String>,
    /// The provider's metadata says authorization_response_iss_parameter_supported: responses
    /// without `iss` are refused.
    #[arg(long)]
    authorization_response_iss_parameter_supported: bool,
    /// Print JSON (for scripts) instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct CallArgs {
    /// The connection alias.
    alias: String,
    /// `[METHOD] PATH`: the method (default GET, or POST with --data) and the path below the
    /// alias' base URL.
    #[arg(num_args = 1..=2, value_names = ["METHOD", "PATH"], required = true)]
    request: Vec<String>,
    /// The request body; `@FILE` reads it from a file.
    #[arg(long)]
    data: Option<String>,
    /// The body's content type (default application/json when there is a body).
    #[arg(long, value_name = "TYPE")]
    content_type: Option<String>,
    /// For a per-user profile: whose token to use.
    #[arg(long, value_name = "USER")]
    user: Option<String>,
}

/// Providers go through the outbound registry; profiles and aliases, entries, through
/// `entries_registry`.
pub(super) async fn run(
    services: &Services,
    entries_registry: &Registry,
    command: OutboundCommand,
) -> anyhow::Result<()> {
    let registry = &services
        .outbound
        .registry()
        .as_actor(Actor::operator("cli"));
    match command {
        OutboundCommand::Provider(ProviderCommand::Save(args)) => {
            let spec = ProviderSpec {
                name: args.name,
                token_url: args.token_url,
                authorization_url: args.authorization_url,
                client_id: args.client_id,
                client_secret: args
                    .secret_env
                    .as_deref()
                    .map(secret_from_env)
                    .transpose()?,
                auth_method: args.auth_method.parse()?,
                grant: args.grant.parse()?,
                audience: args.audience,
                resource: args.resource,
                username: args.username,
                password: args
                    .password_env
                    .as_deref()
                    .map(secret_from_env)
                    .transpose()?,
                signing_alg: args.signing_alg,
                issuer: args.issuer,
                authorization_response_iss_parameter_supported: args
                    .authorization_response_iss_parameter_supported,
            };
            print_provider(
                &ProviderView::from(&registry.save_provider(spec).await?),
                args.json,
            )
        }
        OutboundCommand::Provider(ProviderCommand::List { json }) => {
            let views: Vec<ProviderView> = registry
                .list_providers()
                .await?
                .iter()
                .map(ProviderView::from)
                .collect();
            if json {
                return print_json(&views);
            }
            println!(
                "{:<24} {:<20} {:<20} TOKEN_URL",
                "NAME", "GRANT", "AUTH_METHOD"
            );
            for v in views {
                println!(
                    "{:<24} {:<20} {:<20} {}",
                    v.name, v.grant, v.auth_method, v.token_url
                );
            }
            Ok(())
        }
        OutboundCommand::Provider(ProviderCommand::Show { name, json }) => print_provider(
            &ProviderView::from(&registry.get_provider(&name).await?),
            json,
        ),
        OutboundCommand::Provider(ProviderCommand::Delete { name }) => {
            registry.delete_provider(&name).await?;
            eprintln!("Deleted OAuth provider {name}.");
            Ok(())
        }
        OutboundCommand::Profile(command) => entries::run(entries_registry, command).await,
        OutboundCommand::Alias(command) => entries::run(entries_registry, command).await,
    }
}

fn print_provider(view: &ProviderView, json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(view);
    }
    println!("name:              {}", view.name);
    println!("token_url:         {}", view.token_url);
    let or_dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    println!("authorization_url: {}", or_dash(&view.authorization_url));
    println!("client_id:         {}", view.client_id);
    println!("auth_method:       {}", view.auth_method);
    println!("grant:             {}", view.grant);
    println!("has_secret:        {}", view.has_secret);
    if let Some(jwk) = &view.public_jwk {
        println!("public_jwk:        {jwk}");
    }
    Ok(())
}

/// `gatehouse call`: prints the API's body as it arrives; fails (exit status 1) when the token
/// cannot be obtained or the API answers an error status.
pub(super) async fn run_call(services: &Services, args: CallArgs) -> anyhow::Result<()> {
    let (method, path) = match args.request.as_slice() {
        [path] if args.data.is_some() => ("POST".to_owned(), path.clone()),
        [path] => ("GET".to_owned(), path.clone()),
        [method, path] => (method.to_ascii_uppercase(), path.clone()),
        _ => bail!("give [METHOD] PATH"),
    };
    let body = match args.data.as_deref() {
        Some(data) => match data.strip_prefix('@') {
            Some(file) => std::fs::read(file).with_context(|| format!("cannot read {file}"))?,
            None => data.as_bytes().to_vec(),
        },
        None => Vec::new(),
    };
    let content_type = args
        .content_type
        .or_else(|| (!body.is_empty()).then(|| "application/json".to_owned()));
    let catalog = services.registry.catalog().await?;
    let resolved = services
        .outbound
        .registry()
        .resolve_alias(&catalog, &args.alias)
        .await?;
    let user_id = match &args.user {
        Some(name) => Some(services.registry.get_user(name).await?.id),
        None => None,
    };
    let request = UpstreamRequest {
        method,
        path_and_query: path,
        content_type,
        accept: None,
        body: body.into(),
    };
    let mut response = services
        .outbound
        .call(&resolved, user_id.as_deref(), &request)
        .await?;
    let mut stdout = std::io::stdout().lock();
    while let Some(chunk) = response.chunk().await? {
        stdout.write_all(&chunk)?;
    }
    stdout.flush()?;
    if response.status >= 400 {
        bail!("the API answered HTTP {}", response.status);
    }
    Ok(())
}
