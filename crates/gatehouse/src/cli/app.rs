//! `gatehouse app`: the applications (OAuth clients) of the registry.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use gatehouse_core::registry::{AppChanges, DEFAULT_SECRET_GRACE, NewApp, Registry};
use gatehouse_http::views::AppView;

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
    /// Change the given fields of an application (a list option replaces the whole list).
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
}

/// The fields of an application, for `create` and `update`.
#[derive(Debug, Args)]
pub struct AppFieldArgs {
    /// The application's name, shown on the consent page.
    #[arg(long)]
    name: Option<String>,
    /// confidential or public.
    #[arg(long = "type", value_name = "TYPE")]
    client_type: Option<String>,
    /// An allowed grant (repeatable): authorization_code, client_credentials, password,
    /// jwt_bearer, implicit, refresh_token.
    #[arg(long = "grant", value_name = "GRANT")]
    grants: Vec<String>,
    /// An allowed scope (repeatable).
    #[arg(long = "scope", value_name = "SCOPE")]
    scopes: Vec<String>,
    /// A default scope (repeatable; default: the allowed scopes).
    #[arg(long = "default-scope", value_name = "SCOPE")]
    default_scopes: Vec<String>,
    /// A redirect URI (repeatable).
    #[arg(long = "redirect-uri", value_name = "URI")]
    redirect_uris: Vec<String>,
    /// Access-token lifespan in seconds (default 1800).
    #[arg(long, value_name = "SECONDS")]
    access_token_lifespan: Option<i64>,
    /// Refresh-token lifespan in seconds (default 8640000).
    #[arg(long, value_name = "SECONDS")]
    refresh_token_lifespan: Option<i64>,
    /// opaque or jwt.
    #[arg(long, value_name = "FORMAT")]
    token_format: Option<String>,
    /// The user client-credentials tokens act as ("" removes it).
    #[arg(long, value_name = "USER")]
    run_as: Option<String>,
    /// Whether the application may obtain tokens.
    #[arg(long, value_name = "BOOL")]
    active: Option<bool>,
    /// Whether the authorization-code grant demands PKCE (default true; always for public
    /// clients).
    #[arg(long, value_name = "BOOL")]
    require_pkce: Option<bool>,
    /// Whether the plain PKCE method is accepted besides S256 (default false).
    #[arg(long, value_name = "BOOL")]
    allow_plain_pkce: Option<bool>,
    /// ID-token algorithm: ES256 (default) or RS256.
    #[arg(long, value_name = "ALG")]
    id_token_alg: Option<String>,
    /// A file with the public keys for private_key_jwt (JWK Set, JWK or PEM); a client with
    /// keys gets no secret.
    #[arg(long, value_name = "FILE")]
    jwks_file: Option<PathBuf>,
    /// A JWK Set URL for private_key_jwt ("" removes it).
    #[arg(long, value_name = "URL")]
    jwks_uri: Option<String>,
    /// Accept private_key_jwt assertions whose aud is the token endpoint URL (default false).
    #[arg(long, value_name = "BOOL")]
    legacy_token_endpoint_aud: Option<bool>,
    /// An audience identifier of the API this application serves (repeatable; an absolute
    /// URI, unique across applications; given once with "" it removes them all).
    #[arg(long = "audience", value_name = "URI")]
    audiences: Vec<String>,
    /// Whether the application may introspect every token (default false).
    #[arg(long, value_name = "BOOL")]
    introspect_any: Option<bool>,
}

impl AppFieldArgs {
    fn into_changes(self) -> anyhow::Result<AppChanges> {
        // A list option replaces the list; given once with an empty value it empties it.
        let list = |values: Vec<String>| {
            (!values.is_empty()).then(|| values.into_iter().filter(|v| !v.is_empty()).collect())
        };
        let grants: Option<Vec<String>> = list(self.grants);
        Ok(AppChanges {
            name: self.name,
            client_type: self.client_type.map(|t| t.parse()).transpose()?,
            redirect_uris: list(self.redirect_uris),
            grant_types: grants
                .map(|g| g.iter().map(|g| g.parse()).collect())
                .transpose()?,
            allowed_scopes: list(self.scopes),
            default_scopes: list(self.default_scopes),
            access_token_lifespan: self.access_token_lifespan,
            refresh_token_lifespan: self.refresh_token_lifespan,
            token_format: self.token_format.map(|f| f.parse()).transpose()?,
            run_as: self.run_as,
            active: self.active,
            require_pkce: self.require_pkce,
            allow_plain_pkce: self.allow_plain_pkce,
            id_token_alg: self.id_token_alg.map(|a| a.parse()).transpose()?,
            jwks: self.jwks_file.as_deref().map(read_text).transpose()?,
            jwks_uri: self.jwks_uri,
            legacy_token_endpoint_aud: self.legacy_token_endpoint_aud,
            audiences: list(self.audiences),
            introspect_any: self.introspect_any,
        })
    }
}

fn print_app(view: &AppView, json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(view);
    }
    println!("client_id:              {}", view.client_id);
    println!("name:                   {}", view.name);
    println!("client_type:            {}", view.client_type);
    println!("grant_types:            {}", view.grant_types.join(" "));
    println!("allowed_scopes:         {}", view.allowed_scopes.join(" "));
    println!("default_scopes:         {}", view.default_scopes.join(" "));
    println!("redirect_uris:          {}", view.redirect_uris.join(" "));
    println!("access_token_lifespan:  {}", view.access_token_lifespan);
    println!("refresh_token_lifespan: {}", view.refresh_token_lifespan);
    println!("token_format:           {}", view.token_format);
    println!(
        "run_as:                 {}",
        view.run_as.as_deref().unwrap_or("-")
    );
    println!("active:                 {}", view.active);
    println!("audiences:              {}", view.audiences.join(" "));
    println!("introspect_any:         {}", view.introspect_any);
    if let Some(secret) = &view.client_secret {
        println!("client_secret:          {secret}");
        eprintln!("The client secret is shown only this once; store it now.");
    }
    Ok(())
}

pub(super) async fn run(registry: &Registry, command: AppCommand) -> anyhow::Result<()> {
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
                    v.client_type,
                    v.token_format,
                    v.active,
                    v.grant_types.join(",")
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
