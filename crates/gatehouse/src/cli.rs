//! The command line: `serve`, the registry commands (`app`, `user`, `keys`, `apply`), their
//! `--json` output and the conventions scripts rely on (one-line errors, non-zero exit status).

mod entries;

use std::io::Read;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use gatehouse_core::federation::{JwtProviderChanges, KeySource, NewJwtProvider};
use gatehouse_core::manifest::ApplyOptions;
use gatehouse_core::registry::{AppChanges, DEFAULT_SECRET_GRACE, NewApp, NewUser, UserChanges};
use gatehouse_core::secret::Secret;
use gatehouse_http::views::{AppView, JwtProviderView, KeyView, RetiredKeyView, UserView};
use serde::Serialize;

use self::entries::{EntryCommand, RouteArgs, RuleArgs, ScopeArgs, TableArgs};
use crate::config::{GlobalArgs, ServeArgs, Settings};
use crate::outbound_cli::{CallArgs, OutboundCommand, run_call, run_outbound};
use crate::server::Services;

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
    /// Make the registry match a declarative TOML file.
    Apply(ApplyArgs),
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
}

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
        #[arg(long)]
        json: bool,
    },
    /// List applications.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show one application.
    Show {
        client_id: String,
        #[arg(long)]
        json: bool,
    },
    /// Change the given fields of an application (a list option replaces the whole list).
    Update {
        client_id: String,
        #[command(flatten)]
        fields: AppFieldArgs,
        #[arg(long)]
        json: bool,
    },
    /// Delete an application and every token issued to it.
    Delete { client_id: String },
    /// Replace the client secret; prints the new one once. The replaced secret stays valid for
    /// the grace period, so the services using it can be redeployed one by one.
    RotateSecret {
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
        #[arg(long)]
        json: bool,
    },
}

/// The fields of an application, for `create` and `update`.
#[derive(Debug, Args)]
pub struct AppFieldArgs {
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

fn read_text(path: &std::path::Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

#[derive(Debug, Subcommand)]
pub enum JwtProviderCommand {
    /// Trust an issuer of JWTs.
    Create {
        name: String,
        #[command(flatten)]
        fields: JwtProviderFieldArgs,
    },
    /// List JWT providers.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show one JWT provider.
    Show { name: String },
    /// Change the given fields of a JWT provider (a list option replaces the whole list).
    Update {
        name: String,
        #[command(flatten)]
        fields: JwtProviderFieldArgs,
    },
    /// Stop trusting an issuer.
    Delete { name: String },
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

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user.
    Create {
        user_name: String,
        #[command(flatten)]
        fields: UserFieldArgs,
        #[command(flatten)]
        password: PasswordArgs,
        #[arg(long)]
        json: bool,
    },
    /// List users.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show one user.
    Show {
        user_name: String,
        #[arg(long)]
        json: bool,
    },
    /// Change the given fields of a user.
    Update {
        user_name: String,
        #[command(flatten)]
        fields: UserFieldArgs,
        #[arg(long)]
        json: bool,
    },
    /// Delete a user and every token issued for them.
    Delete { user_name: String },
    /// Set a user's password (from an environment variable or standard input).
    SetPassword {
        user_name: String,
        #[command(flatten)]
        password: PasswordArgs,
    },
}

#[derive(Debug, Args)]
pub struct UserFieldArgs {
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

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// List signing keys and their state.
    List {
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
        #[arg(long)]
        json: bool,
    },
    /// Take a key out of service at once (after a compromise): it is no longer published and
    /// the tokens it signed no longer verify, on every instance. A key that was signing is
    /// replaced by a new key of its algorithm, which signs at once.
    Retire {
        /// The key's id (`kid`), as `keys list` shows it.
        kid: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// The TOML file with [[application]], [[user]], [[oauth_provider]], [[oauth_profile]],
    /// [[connection_alias]], [[scope]], [[scope_rule]], [[route]] and [[table]] sections; the
    /// server's configuration file serves (its settings locate the database).
    file: PathBuf,
    /// Delete records that earlier applies created and the file no longer lists.
    #[arg(long)]
    prune: bool,
    /// Print what would change, change nothing.
    #[arg(long)]
    dry_run: bool,
    #[arg(long)]
    json: bool,
}

fn secret_from_env(var: &str) -> anyhow::Result<Secret> {
    std::env::var(var)
        .map(Secret::new)
        .with_context(|| format!("environment variable {var} is not set"))
}

fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
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

/// Runs a command other than `serve`.
pub async fn run(mut global: GlobalArgs, command: Command) -> anyhow::Result<()> {
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
    let services = Services::open(&settings).await?;
    let registry = &services.registry;
    match command {
        Command::Serve(_) => unreachable!("serve is run by main"),
        Command::App(AppCommand::Create {
            client_id,
            secret_env,
            fields,
            json,
        }) => {
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
        Command::App(AppCommand::List { json }) => {
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
        Command::App(AppCommand::Show { client_id, json }) => {
            print_app(&AppView::from(&registry.get_app(&client_id).await?), json)
        }
        Command::App(AppCommand::Update {
            client_id,
            fields,
            json,
        }) => {
            let client = registry
                .update_app(&client_id, fields.into_changes()?)
                .await?;
            print_app(&AppView::from(&client), json)
        }
        Command::App(AppCommand::Delete { client_id }) => {
            registry.delete_app(&client_id).await?;
            eprintln!("Deleted application {client_id}.");
            Ok(())
        }
        Command::App(AppCommand::RotateSecret {
            client_id,
            revoke_previous: true,
            json,
            ..
        }) => {
            let client = registry.end_previous_secret(&client_id).await?;
            eprintln!("The previous secret of {client_id} no longer works.");
            print_app(&AppView::from(&client), json)
        }
        Command::App(AppCommand::RotateSecret {
            client_id,
            secret_env,
            grace,
            json,
            ..
        }) => {
            let secret = secret_env.as_deref().map(secret_from_env).transpose()?;
            let grace = grace.unwrap_or(DEFAULT_SECRET_GRACE);
            let (client, secret) = registry.rotate_secret(&client_id, secret, grace).await?;
            let mut view = AppView::from(&client);
            view.client_secret = Some(secret.expose().to_owned());
            print_app(&view, json)
        }
        Command::JwtProvider(JwtProviderCommand::Create { name, fields }) => {
            let new = NewJwtProvider {
                name,
                fields: fields.into_changes()?,
            };
            print_json(&JwtProviderView::from(
                &registry.create_jwt_provider(new, false).await?,
            ))
        }
        Command::JwtProvider(JwtProviderCommand::List { json }) => {
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
        Command::JwtProvider(JwtProviderCommand::Show { name }) => print_json(
            &JwtProviderView::from(&registry.get_jwt_provider(&name).await?),
        ),
        Command::JwtProvider(JwtProviderCommand::Update { name, fields }) => {
            let provider = registry
                .update_jwt_provider(&name, fields.into_changes()?)
                .await?;
            print_json(&JwtProviderView::from(&provider))
        }
        Command::JwtProvider(JwtProviderCommand::Delete { name }) => {
            registry.delete_jwt_provider(&name).await?;
            eprintln!("Deleted JWT provider {name}.");
            Ok(())
        }
        Command::User(UserCommand::Create {
            user_name,
            fields,
            password,
            json,
        }) => {
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
        Command::User(UserCommand::List { json }) => {
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
        Command::User(UserCommand::Show { user_name, json }) => {
            print_user(&UserView::from(&registry.get_user(&user_name).await?), json)
        }
        Command::User(UserCommand::Update {
            user_name,
            fields,
            json,
        }) => {
            let user = registry.update_user(&user_name, fields.into()).await?;
            print_user(&UserView::from(&user), json)
        }
        Command::User(UserCommand::Delete { user_name }) => {
            registry.delete_user(&user_name).await?;
            eprintln!("Deleted user {user_name}.");
            Ok(())
        }
        Command::User(UserCommand::SetPassword {
            user_name,
            password,
        }) => {
            let Some(password) = password.read()? else {
                bail!("give the password with --password-env VAR or --password-stdin");
            };
            registry.set_password(&user_name, password).await?;
            eprintln!("Password of {user_name} set.");
            Ok(())
        }
        Command::Keys(KeysCommand::List { json }) => list_keys(&services, json),
        Command::Keys(KeysCommand::Retire { kid, json }) => {
            let replacement = services.tokens.retire_key(&kid).await?;
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
        Command::Keys(KeysCommand::Rotate {
            alg, delay, json, ..
        }) => {
            let delay = delay.unwrap_or(settings.jwks_max_age);
            let kid = services
                .tokens
                .rotate_key(alg.parse()?, i64::try_from(delay)?)
                .await?;
            if json {
                return print_json(
                    &serde_json::json!({ "kid": kid, "alg": alg, "signs_in_seconds": delay }),
                );
            }
            println!("Published key {kid} ({alg}); it signs in {delay} s.");
            Ok(())
        }
        Command::Outbound(command) => run_outbound(&services, command).await,
        Command::Call(args) => run_call(&services, args).await,
        Command::Scope(command) => entries::run(registry, command).await,
        Command::Rule(command) => entries::run(registry, command).await,
        Command::Route(command) => entries::run(registry, command).await,
        Command::Table(command) => entries::run(registry, command).await,
        Command::Apply(args) => {
            let (_, manifest) = crate::config::read_file(&args.file)?;
            let options = ApplyOptions {
                prune: args.prune,
                dry_run: args.dry_run,
            };
            let env = |name: &str| std::env::var(name).ok();
            let mut changes = manifest.apply(registry, options, &env).await?;
            changes.extend(
                manifest
                    .apply_outbound(services.outbound.registry(), options, &env)
                    .await?,
            );
            if args.json {
                return print_json(&changes);
            }
            if changes.is_empty() {
                println!("No changes.");
            }
            let prefix = if args.dry_run { "would " } else { "" };
            for change in &changes {
                let action = match change.action {
                    gatehouse_core::manifest::Action::Create => "create",
                    gatehouse_core::manifest::Action::Update => "update",
                    gatehouse_core::manifest::Action::Delete => "delete",
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
    }
}

fn list_keys(services: &Services, json: bool) -> anyhow::Result<()> {
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
