//! `gatehouse scope|rule|route|table …` and `gatehouse outbound profile|alias …`: the entries of
//! the registry, one generic command set for every kind.

use clap::{Args, Subcommand};
use gatehouse_core::access::{ScopeEntry, ScopeRule};
use gatehouse_core::entry::Entry;
use gatehouse_core::gateway::Route;
use gatehouse_core::outbound::{ConnectionAlias, OAuthProfile};
use gatehouse_core::registry::Registry;
use gatehouse_core::table::TableDef;
use serde_json::{Map, Value};

use super::print_json;

#[derive(Debug, Subcommand)]
pub enum EntryCommand<A: EntryArgs> {
    /// Create one.
    Create {
        /// The record's name.
        name: String,
        #[command(flatten)]
        fields: A,
        /// Print JSON (for scripts) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Create one, or replace the one with this name as a whole.
    Save {
        /// The record's name.
        name: String,
        #[command(flatten)]
        fields: A,
        /// Print JSON (for scripts) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// List them.
    List {
        /// Print JSON (for scripts) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Show one.
    Show {
        /// The record's name.
        name: String,
        /// Print JSON (for scripts) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Change the given fields of one (a list option replaces the whole list).
    Update {
        /// The record's name.
        name: String,
        #[command(flatten)]
        fields: A,
        /// Print JSON (for scripts) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Delete one.
    Delete {
        /// The record's name.
        name: String,
    },
}

/// The options of one kind of entry, as the JSON fields they set.
pub trait EntryArgs: Args {
    type Entry: Entry;
    fn into_fields(self) -> Map<String, Value>;
}

#[derive(Debug, Args)]
pub struct ScopeArgs {
    /// What the consent page says the scope allows.
    #[arg(long)]
    description: Option<String>,
    /// Whether applications registered without a scope list get it.
    #[arg(long, value_name = "BOOL")]
    default: Option<bool>,
}

impl EntryArgs for ScopeArgs {
    type Entry = ScopeEntry;
    fn into_fields(self) -> Map<String, Value> {
        let mut fields = Map::new();
        set(&mut fields, "description", self.description);
        set(&mut fields, "default", self.default);
        fields
    }
}

#[derive(Debug, Args)]
pub struct RuleArgs {
    /// An HTTP method the rule covers (repeatable; none: every method).
    #[arg(long = "method", value_name = "METHOD")]
    methods: Vec<String>,
    /// The path pattern: `*` matches one segment, a final `**` the rest.
    #[arg(long)]
    path: Option<String>,
    /// A scope the token needs (repeatable; it needs all of them, or useraccount).
    #[arg(long = "scope", value_name = "SCOPE")]
    scopes: Vec<String>,
}

impl EntryArgs for RuleArgs {
    type Entry = ScopeRule;
    fn into_fields(self) -> Map<String, Value> {
        let mut fields = Map::new();
        set(&mut fields, "methods", list(self.methods));
        set(&mut fields, "path", self.path);
        set(&mut fields, "scopes", list(self.scopes));
        fields
    }
}

#[derive(Debug, Args)]
pub struct RouteArgs {
    /// The path prefix it serves, such as /api/x/inventory.
    #[arg(long)]
    prefix: Option<String>,
    /// The upstream base URL requests are forwarded to.
    #[arg(long)]
    upstream: Option<String>,
    /// Seconds the upstream has to answer (default 10, at most 25).
    #[arg(long = "timeout", value_name = "SECONDS")]
    timeout_seconds: Option<u64>,
    /// The audience the upstream expects: requests need a token requested for it with
    /// `resource` (default: a token for this server).
    #[arg(long, value_name = "URI")]
    audience: Option<String>,
    /// Send the upstream a token addressed to it instead of identity headers: the caller's
    /// token exchanged by this application (with the token_exchange grant); "" stops it. Give
    /// --exchange-audience (and --exchange-scope) with it.
    #[arg(long, value_name = "CLIENT_ID")]
    exchange_as: Option<String>,
    /// The audience the exchanged token is for: the upstream's.
    #[arg(long, value_name = "URI")]
    exchange_audience: Option<String>,
    /// The scope the exchanged token asks for (default: the caller's, within the exchanging
    /// application's).
    #[arg(long, value_name = "SCOPE")]
    exchange_scope: Option<String>,
}

impl EntryArgs for RouteArgs {
    type Entry = Route;
    fn into_fields(self) -> Map<String, Value> {
        let mut fields = Map::new();
        set(&mut fields, "prefix", self.prefix);
        set(&mut fields, "upstream", self.upstream);
        set(&mut fields, "timeout_seconds", self.timeout_seconds);
        set(&mut fields, "audience", self.audience);
        if self.exchange_as.as_deref() == Some("") {
            fields.insert("exchange".into(), Value::Null);
        } else if self.exchange_as.is_some() || self.exchange_audience.is_some() {
            let mut exchange = Map::new();
            set(&mut exchange, "client_id", self.exchange_as);
            set(&mut exchange, "audience", self.exchange_audience);
            set(&mut exchange, "scope", self.exchange_scope);
            fields.insert("exchange".into(), Value::Object(exchange));
        }
        fields
    }
}

#[derive(Debug, Args)]
pub struct TableArgs {
    /// A role whose holders may read the table (repeatable).
    #[arg(long = "read-role", value_name = "ROLE")]
    read_roles: Vec<String>,
    /// A role whose holders may create, change and delete records (repeatable).
    #[arg(long = "write-role", value_name = "ROLE")]
    write_roles: Vec<String>,
}

impl EntryArgs for TableArgs {
    type Entry = TableDef;
    fn into_fields(self) -> Map<String, Value> {
        let mut fields = Map::new();
        set(&mut fields, "read_roles", list(self.read_roles));
        set(&mut fields, "write_roles", list(self.write_roles));
        fields
    }
}

#[derive(Debug, Args)]
pub struct ProfileArgs {
    /// The OAuth provider the profile obtains tokens from.
    #[arg(long)]
    provider: Option<String>,
    /// A scope to ask for (repeatable).
    #[arg(long = "scope", value_name = "SCOPE")]
    scopes: Vec<String>,
    /// Each user gets their own token (authorization_code providers); `--per-user false`
    /// makes one token serve everybody again.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    per_user: Option<bool>,
}

impl EntryArgs for ProfileArgs {
    type Entry = OAuthProfile;
    fn into_fields(self) -> Map<String, Value> {
        let mut fields = Map::new();
        set(&mut fields, "provider", self.provider);
        set(&mut fields, "scopes", list(self.scopes));
        set(&mut fields, "per_user", self.per_user);
        fields
    }
}

#[derive(Debug, Args)]
pub struct AliasArgs {
    /// The base URL of the external API calls through the alias go to.
    #[arg(long, value_name = "URL")]
    base_url: Option<String>,
    /// The OAuth profile whose tokens the alias' calls carry.
    #[arg(long)]
    profile: Option<String>,
    /// A role whose holders may call the alias through the proxy endpoint (repeatable).
    #[arg(long = "role", value_name = "ROLE")]
    roles: Vec<String>,
    /// Time limit of one exchange (default 10).
    #[arg(long, value_name = "SECONDS")]
    timeout: Option<i64>,
    /// Retries after a server error, a 429 or a refused connection (default 2).
    #[arg(long, value_name = "N")]
    retries: Option<i64>,
}

impl EntryArgs for AliasArgs {
    type Entry = ConnectionAlias;
    fn into_fields(self) -> Map<String, Value> {
        let mut fields = Map::new();
        set(&mut fields, "base_url", self.base_url);
        set(&mut fields, "profile", self.profile);
        set(&mut fields, "allowed_roles", list(self.roles));
        set(&mut fields, "timeout_seconds", self.timeout);
        set(&mut fields, "max_retries", self.retries);
        fields
    }
}

fn set<T: Into<Value>>(fields: &mut Map<String, Value>, name: &str, value: Option<T>) {
    if let Some(value) = value {
        fields.insert(name.to_owned(), value.into());
    }
}

/// A list option given once with an empty value empties the list.
fn list(values: Vec<String>) -> Option<Vec<String>> {
    (!values.is_empty()).then(|| values.into_iter().filter(|v| !v.is_empty()).collect())
}

pub async fn run<A: EntryArgs>(
    registry: &Registry,
    command: EntryCommand<A>,
) -> anyhow::Result<()> {
    let kind = A::Entry::KIND;
    match command {
        EntryCommand::Create { name, fields, json } => {
            let mut fields = fields.into_fields();
            fields.insert("name".into(), name.into());
            let entry = registry
                .create_entry::<A::Entry>(Value::Object(fields), false)
                .await?;
            print(&entry, json)
        }
        EntryCommand::Save { name, fields, json } => {
            let mut fields = fields.into_fields();
            fields.insert("name".into(), name.into());
            let entry = registry
                .save_entry::<A::Entry>(Value::Object(fields))
                .await?;
            print(&entry, json)
        }
        EntryCommand::List { json } => {
            let entries: Vec<A::Entry> = registry
                .list_entries::<A::Entry>()
                .await?
                .into_iter()
                .map(|(entry, _)| entry)
                .collect();
            if json {
                return print_json(&entries);
            }
            for entry in entries {
                let fields = A::Entry::FIELDS.iter().map(|f| {
                    let value = serde_json::to_value(&entry).unwrap_or_default()[f].clone();
                    format!("{f}={}", text(&value))
                });
                println!(
                    "{:<24} {}",
                    entry.name(),
                    fields.collect::<Vec<_>>().join(" ")
                );
            }
            Ok(())
        }
        EntryCommand::Show { name, json } => {
            print(&registry.get_entry::<A::Entry>(&name).await?, json)
        }
        EntryCommand::Update { name, fields, json } => {
            let entry = registry
                .update_entry::<A::Entry>(&name, fields.into_fields())
                .await?;
            print(&entry, json)
        }
        EntryCommand::Delete { name } => {
            registry.delete_entry::<A::Entry>(&name).await?;
            eprintln!("Deleted {kind} {name}.");
            Ok(())
        }
    }
}

fn print<T: Entry>(entry: &T, json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(entry);
    }
    let value = serde_json::to_value(entry)?;
    println!("{:<16} {}", "name:", entry.name());
    for field in T::FIELDS {
        println!("{:<16} {}", format!("{field}:"), text(&value[field]));
    }
    Ok(())
}

/// A field as a person reads it: lists space-separated, strings unquoted.
fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(text).collect::<Vec<_>>().join(" "),
        other => other.to_string(),
    }
}
