//! The declarative registry file: the desired state of applications and users, and the
//! reconciliation that makes the store match it (`gatehouse apply`, and the same sections in the
//! server's configuration file).
//!
//! Each entry describes a record completely: a field left out takes its default, so applying the
//! same file twice changes nothing, and a change made by hand is undone by the next apply —
//! except a lock, a deactivation or a new password or client secret: those are what an
//! administrator does after a compromise, so the file sets them only when it changes them
//! itself (the record remembers what the file last said, see [`Applied`]).
//! Records created or updated by apply are marked `managed`; `--prune` deletes only managed
//! records missing from the file, so a pruning apply never removes what an administrator made by
//! hand (such as the bootstrap `admin` user).

mod entries;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::Error;
use crate::access::{ScopeEntry, ScopeRule};
use crate::audit::Transacted;
use crate::client::Client;
use crate::federation::jose::JwsAlgorithm;
use crate::federation::{
    DEFAULT_MAX_ASSERTION_AGE, DEFAULT_MAX_ASSERTION_LIFETIME, DEFAULT_STALE_KEYS_LIFETIME,
    JwtProvider, JwtProviderChanges, KeySource, NewJwtProvider, UserField,
};
use crate::gateway::Route;
use crate::outbound::{ConnectionAlias, OAuthProfile, OutboundRegistry, ProviderEntry};
use crate::registry::{AppChanges, NewApp, NewUser, Registry, UserChanges};
use crate::secret::Secret;
use crate::table::TableDef;
use crate::user::{self, User};

/// The registry sections of a declarative file.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    #[serde(default, rename = "application", skip_serializing_if = "Vec::is_empty")]
    pub applications: Vec<AppEntry>,
    #[serde(default, rename = "user", skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<UserEntry>,
    #[serde(
        default,
        rename = "oauth_provider",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub oauth_providers: Vec<ProviderEntry>,
    #[serde(
        default,
        rename = "oauth_profile",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub oauth_profiles: Vec<OAuthProfile>,
    #[serde(
        default,
        rename = "connection_alias",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub connection_aliases: Vec<ConnectionAlias>,
    #[serde(default, rename = "scope", skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<ScopeEntry>,
    #[serde(default, rename = "scope_rule", skip_serializing_if = "Vec::is_empty")]
    pub scope_rules: Vec<ScopeRule>,
    #[serde(default, rename = "route", skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route>,
    #[serde(
        default,
        rename = "jwt_provider",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub jwt_providers: Vec<JwtProviderEntry>,
    #[serde(default, rename = "table", skip_serializing_if = "Vec::is_empty")]
    pub tables: Vec<TableDef>,
}

/// An application of the file: the registry's fields of an application, each one left out taking
/// its value on creation, and what matches and authenticates it.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(try_from = "Map<String, Value>")]
pub struct AppEntry {
    /// Fixes the client_id; without it the entry is matched to an application by name.
    pub client_id: Option<String>,
    /// The secret inline (prefer `client_secret_env`).
    pub client_secret: Option<String>,
    /// The name of an environment variable holding the secret.
    pub client_secret_env: Option<String>,
    /// The application's fields as the file gives them; `name` is always there, and
    /// `default_scopes` defaults to `allowed_scopes`.
    #[serde(flatten)]
    pub fields: AppChanges,
}

impl AppEntry {
    pub fn name(&self) -> &str {
        self.fields.name.as_deref().unwrap_or_default()
    }
}

/// Reads an entry in two steps, since serde cannot refuse unknown fields beside a flattened
/// struct: the entry's own keys first, then the rest as the application's fields, unknown ones
/// refused.
impl TryFrom<Map<String, Value>> for AppEntry {
    type Error = String;

    fn try_from(mut table: Map<String, Value>) -> Result<AppEntry, String> {
        let mut text = |key: &str| -> Result<Option<String>, String> {
            table
                .remove(key)
                .map(serde_json::from_value)
                .transpose()
                .map_err(|e| format!("{key}: {e}"))
        };
        let client_id = text("client_id")?;
        let client_secret = text("client_secret")?;
        let client_secret_env = text("client_secret_env")?;
        if !table.contains_key("name") {
            return Err("missing field `name`".into());
        }
        if !table.contains_key("default_scopes")
            && let Some(allowed) = table.get("allowed_scopes").cloned()
        {
            table.insert("default_scopes".into(), allowed);
        }
        let fields = serde_json::from_value(Value::Object(table)).map_err(|e| e.to_string())?;
        Ok(AppEntry {
            client_id,
            client_secret,
            client_secret_env,
            fields,
        })
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct JwtProviderEntry {
    pub name: String,
    pub issuer: String,
    #[serde(default)]
    pub audiences: Vec<String>,
    /// One of `jwks_url`, `discovery_url` and `static_key` (a PEM public key, JWK or JWK Set).
    pub jwks_url: Option<String>,
    pub discovery_url: Option<String>,
    pub static_key: Option<String>,
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<JwsAlgorithm>,
    #[serde(default = "sub")]
    pub user_claim: String,
    #[serde(default)]
    pub user_field: UserField,
    #[serde(default)]
    pub allowed_clients: Vec<String>,
    #[serde(default = "default_max_age")]
    pub max_age: i64,
    #[serde(default = "default_max_lifetime")]
    pub max_lifetime: i64,
    #[serde(default)]
    pub api_access: bool,
    #[serde(default)]
    pub api_scopes: Vec<String>,
    #[serde(default)]
    pub accept_plain_jwt: bool,
    #[serde(default)]
    pub accept_id_tokens: bool,
    #[serde(default = "default_stale_keys_lifetime")]
    pub stale_keys_lifetime: i64,
    #[serde(default)]
    pub map_registry_roles: bool,
    #[serde(default = "yes")]
    pub active: bool,
}

fn default_stale_keys_lifetime() -> i64 {
    DEFAULT_STALE_KEYS_LIFETIME
}
fn default_algorithms() -> Vec<JwsAlgorithm> {
    vec![JwsAlgorithm::RS256, JwsAlgorithm::ES256]
}
fn sub() -> String {
    "sub".into()
}
fn default_max_age() -> i64 {
    DEFAULT_MAX_ASSERTION_AGE
}
fn default_max_lifetime() -> i64 {
    DEFAULT_MAX_ASSERTION_LIFETIME
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct UserEntry {
    pub user_name: String,
    pub display_name: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub email: Option<String>,
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default = "yes")]
    pub active: bool,
    #[serde(default)]
    pub locked_out: bool,
    pub password: Option<String>,
    pub password_env: Option<String>,
}

fn yes() -> bool {
    true
}

/// What reconciling changes, one line per record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub action: Action,
    pub kind: &'static str,
    /// client_id or user name.
    pub key: String,
    /// The fields that differ (for updates).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<&'static str>,
    /// A secret generated for a new confidential application without one in the file; shown
    /// once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generated_secret: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Create,
    Update,
    Delete,
}

/// How to reconcile.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApplyOptions {
    /// Delete managed records that the file no longer lists.
    pub prune: bool,
    /// Report the changes without making them.
    pub dry_run: bool,
}

impl Manifest {
    /// The names of the file's registry sections, as they appear in a configuration file.
    pub const SECTIONS: [&'static str; 10] = [
        "application",
        "user",
        "jwt_provider",
        "oauth_provider",
        "oauth_profile",
        "connection_alias",
        "scope",
        "scope_rule",
        "route",
        "table",
    ];

    /// Makes the registry match this file, all of it or nothing: every record is applied in
    /// one transaction, each in a step of its own, so a record that fails is reported and the
    /// rest are still checked; with any failure the transaction is rolled back and the error
    /// lists them all, each naming its section and record. `env` resolves `*_env` references
    /// (the caller's environment in production, a map in tests).
    pub async fn apply(
        &self,
        registry: &Registry,
        outbound: &OutboundRegistry,
        options: ApplyOptions,
        env: &(dyn Fn(&str) -> Option<String> + Sync),
    ) -> Result<Vec<Change>, Error> {
        let work = registry.begin().await?;
        let mut apply = Apply {
            work: &work,
            changes: Vec::new(),
            failures: Vec::new(),
        };
        self.apply_registry(&mut apply, options, env).await?;
        self.apply_providers(&mut apply, &work.join(outbound), options, env)
            .await?;
        // After their providers. Profiles and aliases are never pruned, like providers.
        entries::reconcile(&mut apply, &self.oauth_profiles, options).await?;
        entries::reconcile(&mut apply, &self.connection_aliases, options).await?;
        let Apply {
            changes, failures, ..
        } = apply;
        if !failures.is_empty() {
            return Err(Error::validation(format!(
                "nothing was applied: {} record{} failed:\n{}",
                failures.len(),
                if failures.len() == 1 { "" } else { "s" },
                failures.join("\n")
            )));
        }
        work.commit().await?;
        Ok(changes)
    }

    async fn apply_registry(
        &self,
        apply: &mut Apply<'_>,
        options: ApplyOptions,
        env: &(dyn Fn(&str) -> Option<String> + Sync),
    ) -> Result<(), Error> {
        let registry: &Registry = apply.work;
        // Scopes before the rules that name them.
        entries::reconcile(apply, &self.scopes, options).await?;
        entries::reconcile(apply, &self.scope_rules, options).await?;
        entries::reconcile(apply, &self.routes, options).await?;
        entries::reconcile(apply, &self.tables, options).await?;
        // Users first: applications name their run-as user.
        for entry in &self.users {
            let step = reconcile_user(registry, entry, options, env);
            if let Some(change) = apply.step("user", &entry.user_name, step).await?.flatten() {
                apply.changes.push(change);
            }
        }
        let existing_apps = registry.list_apps().await?;
        let mut kept_apps = Vec::new();
        for entry in &self.applications {
            let key = entry.client_id.as_deref().unwrap_or(entry.name());
            let step = reconcile_app(registry, &existing_apps, entry, options, env);
            if let Some((change, client_id)) = apply.step("application", key, step).await? {
                kept_apps.push(client_id);
                apply.changes.extend(change);
            }
        }
        // After applications: providers name the applications allowed to use them.
        let existing_providers = registry.list_jwt_providers().await?;
        for entry in &self.jwt_providers {
            let current = existing_providers.iter().find(|p| p.name == entry.name);
            let step = reconcile_jwt_provider(registry, current, entry, options);
            if let Some(change) = apply
                .step("jwt_provider", &entry.name, step)
                .await?
                .flatten()
            {
                apply.changes.push(change);
            }
        }
        if !options.prune {
            return Ok(());
        }
        for provider in existing_providers
            .iter()
            .filter(|p| p.managed && !self.jwt_providers.iter().any(|e| e.name == p.name))
        {
            let step = async {
                if !options.dry_run {
                    registry.delete_jwt_provider(&provider.name).await?;
                }
                Ok(change(
                    Action::Delete,
                    "jwt_provider",
                    &provider.name,
                    vec![],
                ))
            };
            if let Some(change) = apply.step("jwt_provider", &provider.name, step).await? {
                apply.changes.push(change);
            }
        }
        for app in existing_apps
            .iter()
            .filter(|a| a.managed && !kept_apps.contains(&a.client_id))
        {
            let step = async {
                if !options.dry_run {
                    registry.delete_app(&app.client_id).await?;
                }
                Ok(change(
                    Action::Delete,
                    "application",
                    &app.client_id,
                    vec![],
                ))
            };
            if let Some(change) = apply.step("application", &app.client_id, step).await? {
                apply.changes.push(change);
            }
        }
        for user in registry.list_users().await? {
            let listed = self.users.iter().any(|u| u.user_name == user.user_name);
            if !user.managed || listed {
                continue;
            }
            let step = async {
                if !options.dry_run {
                    registry.delete_user(&user.user_name).await?;
                }
                Ok(change(Action::Delete, "user", &user.user_name, vec![]))
            };
            if let Some(change) = apply.step("user", &user.user_name, step).await? {
                apply.changes.push(change);
            }
        }
        entries::prune(apply, &self.tables, options).await?;
        entries::prune(apply, &self.routes, options).await?;
        entries::prune(apply, &self.scope_rules, options).await?;
        entries::prune(apply, &self.scopes, options).await
    }
}

/// One apply in progress: its transaction, the changes made so far and the records that failed.
pub(crate) struct Apply<'a> {
    pub(crate) work: &'a Transacted<Registry>,
    pub(crate) changes: Vec<Change>,
    failures: Vec<String>,
}

impl Apply<'_> {
    /// Applies one record of `[[section]]` in a step of its own: `None` when it failed, which is
    /// noted and undone. `Err` only when the database fails.
    pub(crate) async fn step<T>(
        &mut self,
        section: &str,
        key: &str,
        step: impl Future<Output = Result<T, Error>>,
    ) -> Result<Option<T>, Error> {
        match self.work.attempt(step).await? {
            Ok(value) => Ok(Some(value)),
            Err(Error::Store(error)) => Err(Error::Store(error)),
            Err(error) => {
                self.failures
                    .push(format!("[[{section}]] {key:?}: {}", error.description()));
                Ok(None)
            }
        }
    }
}

/// What the file said last time about the fields it sets only when it changes them, kept as
/// JSON in the record. A field the file still says the same about keeps whatever an
/// administrator made of it since; a field the file changed is applied.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Applied {
    active: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    locked_out: bool,
    /// The keyed hash of the file's password or client secret, if it gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
}

impl Applied {
    fn said(
        registry: &Registry,
        active: bool,
        locked_out: bool,
        secret: &Option<Secret>,
    ) -> Applied {
        Applied {
            active,
            locked_out,
            secret: secret.as_ref().map(|s| registry.hasher().hash(s.expose())),
        }
    }

    /// What the file said before, for a record it manages.
    fn before(managed: bool, applied: &Option<String>) -> Option<Applied> {
        applied
            .as_deref()
            .filter(|_| managed)
            .and_then(|text| serde_json::from_str(text).ok())
    }

    fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

pub(crate) fn change(
    action: Action,
    kind: &'static str,
    key: &str,
    fields: Vec<&'static str>,
) -> Change {
    Change {
        action,
        kind,
        key: key.to_owned(),
        fields,
        generated_secret: None,
    }
}

pub(crate) fn resolve(
    what: &str,
    inline: &Option<String>,
    variable: &Option<String>,
    env: &(dyn Fn(&str) -> Option<String> + Sync),
) -> Result<Option<Secret>, Error> {
    match (inline, variable) {
        (Some(_), Some(_)) => Err(Error::validation(format!(
            "{what}: give the value inline or by environment variable, not both"
        ))),
        (Some(value), None) => Ok(Some(Secret::new(value.clone()))),
        (None, Some(name)) => env(name).map(|v| Some(Secret::new(v))).ok_or_else(|| {
            Error::validation(format!("{what}: environment variable {name} is not set"))
        }),
        (None, None) => Ok(None),
    }
}

/// What the file says of every field of an application: those it leaves out take their value on
/// creation.
fn desired_app_fields(entry: &AppEntry) -> AppChanges {
    let mut described = Client::new(String::new(), String::new(), 0);
    entry.fields.clone().apply(&mut described);
    AppChanges::every_field_of(&described)
}

/// The names of the fields in which `client` differs from `desired`.
fn app_differences(client: &Client, desired: &AppChanges) -> Vec<&'static str> {
    let mut changed = client.clone();
    desired.clone().apply(&mut changed);
    client.differences(&changed)
}

async fn reconcile_jwt_provider(
    registry: &Registry,
    current: Option<&JwtProvider>,
    entry: &JwtProviderEntry,
    options: ApplyOptions,
) -> Result<Option<Change>, Error> {
    let key_source = KeySource::from_options(
        entry.jwks_url.clone(),
        entry.discovery_url.clone(),
        entry.static_key.clone(),
    )?
    .ok_or_else(|| {
        Error::validation(format!(
            "JWT provider {:?}: give jwks_url, discovery_url or static_key",
            entry.name
        ))
    })?;
    let desired = JwtProviderChanges {
        issuer: Some(entry.issuer.clone()),
        audiences: Some(entry.audiences.clone()),
        key_source: Some(key_source.clone()),
        algorithms: Some(entry.algorithms.clone()),
        user_claim: Some(entry.user_claim.clone()),
        user_field: Some(entry.user_field),
        allowed_clients: Some(entry.allowed_clients.clone()),
        max_age: Some(entry.max_age),
        max_lifetime: Some(entry.max_lifetime),
        api_access: Some(entry.api_access),
        api_scopes: Some(entry.api_scopes.clone()),
        accept_plain_jwt: Some(entry.accept_plain_jwt),
        accept_id_tokens: Some(entry.accept_id_tokens),
        stale_keys_lifetime: Some(entry.stale_keys_lifetime),
        map_registry_roles: Some(entry.map_registry_roles),
        active: Some(entry.active),
    };
    let Some(current) = current else {
        if !options.dry_run {
            let new = NewJwtProvider {
                name: entry.name.clone(),
                fields: desired,
            };
            registry.create_jwt_provider(new, true).await?;
        }
        return Ok(Some(change(
            Action::Create,
            "jwt_provider",
            &entry.name,
            vec![],
        )));
    };
    let mut algorithms = entry.algorithms.clone();
    algorithms.sort();
    algorithms.dedup();
    let mut fields = Vec::new();
    for (name, differs) in [
        ("issuer", entry.issuer != current.issuer),
        ("audiences", entry.audiences != current.audiences),
        ("key_source", key_source != current.key_source),
        ("algorithms", algorithms != current.algorithms),
        ("user_claim", entry.user_claim != current.user_claim),
        ("user_field", entry.user_field != current.user_field),
        (
            "allowed_clients",
            entry.allowed_clients != current.allowed_clients,
        ),
        ("max_age", entry.max_age != current.max_age),
        ("max_lifetime", entry.max_lifetime != current.max_lifetime),
        ("api_access", entry.api_access != current.api_access),
        ("api_scopes", entry.api_scopes != current.api_scopes),
        (
            "accept_plain_jwt",
            entry.accept_plain_jwt != current.accept_plain_jwt,
        ),
        (
            "accept_id_tokens",
            entry.accept_id_tokens != current.accept_id_tokens,
        ),
        (
            "stale_keys_lifetime",
            entry.stale_keys_lifetime != current.stale_keys_lifetime,
        ),
        (
            "map_registry_roles",
            entry.map_registry_roles != current.map_registry_roles,
        ),
        ("active", entry.active != current.active),
        ("managed", !current.managed),
    ] {
        if differs {
            fields.push(name);
        }
    }
    if fields.is_empty() {
        return Ok(None);
    }
    if !options.dry_run {
        registry.update_jwt_provider(&entry.name, desired).await?;
        registry.set_jwt_provider_managed(&entry.name, true).await?;
    }
    Ok(Some(change(
        Action::Update,
        "jwt_provider",
        &entry.name,
        fields,
    )))
}

async fn reconcile_app(
    registry: &Registry,
    existing: &[Client],
    entry: &AppEntry,
    options: ApplyOptions,
    env: &(dyn Fn(&str) -> Option<String> + Sync),
) -> Result<(Option<Change>, String), Error> {
    let what = format!("application {:?}", entry.name());
    let secret = resolve(&what, &entry.client_secret, &entry.client_secret_env, env)?;
    let mut desired = desired_app_fields(entry);
    let active = desired.active.unwrap_or_default();
    let said = Applied::said(registry, active, false, &secret);
    let current = match &entry.client_id {
        Some(id) => existing.iter().find(|c| &c.client_id == id),
        None => {
            let mut named = existing.iter().filter(|c| c.name == entry.name());
            let first = named.next();
            if named.next().is_some() {
                return Err(Error::validation(format!(
                    "{what}: several applications have this name; give its client_id"
                )));
            }
            first
        }
    };
    let Some(current) = current else {
        let key = entry
            .client_id
            .clone()
            .unwrap_or_else(|| entry.name().to_owned());
        if options.dry_run {
            return Ok((
                Some(change(Action::Create, "application", &key, vec![])),
                key,
            ));
        }
        let (client, generated) = registry
            .create_app(
                NewApp {
                    client_id: entry.client_id.clone(),
                    client_secret: secret.clone(),
                    fields: desired,
                },
                true,
            )
            .await?;
        registry
            .mark_app_applied(&client.client_id, said.to_json())
            .await?;
        let mut created = change(Action::Create, "application", &client.client_id, vec![]);
        if secret.is_none() {
            created.generated_secret = generated.map(|s| s.expose().to_owned());
        }
        return Ok((Some(created), client.client_id));
    };
    let before = Applied::before(current.managed, &current.applied);
    if before.as_ref().is_some_and(|b| b.active == said.active) {
        desired.active = None;
    }
    let mut fields = app_differences(current, &desired);
    let secret_said_before = before.is_some_and(|b| b.secret == said.secret);
    let secret_changes = match (&secret, &current.secret_hash) {
        _ if secret_said_before => false,
        (Some(secret), Some(hash)) => !registry.hasher().verify(secret.expose(), hash),
        (Some(_), None) => true,
        (None, _) => false,
    };
    if secret_changes {
        fields.push("client_secret");
    }
    if !current.managed {
        fields.push("managed");
    }
    let client_id = current.client_id.clone();
    if fields.is_empty() {
        if !options.dry_run {
            registry
                .mark_app_applied(&client_id, said.to_json())
                .await?;
        }
        return Ok((None, client_id));
    }
    if !options.dry_run {
        // A secret first, so that a public client turned confidential has one.
        if secret_changes {
            // The file says which secret is valid: the one it replaced stops at once.
            registry.rotate_secret(&client_id, secret, 0).await?;
        }
        registry.update_app(&client_id, desired).await?;
        registry
            .mark_app_applied(&client_id, said.to_json())
            .await?;
    }
    Ok((
        Some(change(Action::Update, "application", &client_id, fields)),
        client_id,
    ))
}

async fn reconcile_user(
    registry: &Registry,
    entry: &UserEntry,
    options: ApplyOptions,
    env: &(dyn Fn(&str) -> Option<String> + Sync),
) -> Result<Option<Change>, Error> {
    let what = format!("user {:?}", entry.user_name);
    let password = resolve(&what, &entry.password, &entry.password_env, env)?;
    let said = Applied::said(registry, entry.active, entry.locked_out, &password);
    let mut desired = UserChanges {
        display_name: Some(
            entry
                .display_name
                .clone()
                .unwrap_or_else(|| entry.user_name.clone()),
        ),
        given_name: Some(entry.given_name.clone().unwrap_or_default()),
        family_name: Some(entry.family_name.clone().unwrap_or_default()),
        email: Some(entry.email.clone().unwrap_or_default()),
        roles: Some(entry.roles.clone()),
        active: Some(entry.active),
        locked_out: Some(entry.locked_out),
    };
    let current = registry
        .list_users()
        .await?
        .into_iter()
        .find(|u| u.user_name == entry.user_name);
    let Some(current) = current else {
        if !options.dry_run {
            registry
                .create_user(
                    NewUser {
                        user_name: entry.user_name.clone(),
                        password,
                        fields: desired,
                    },
                    true,
                )
                .await?;
            registry
                .mark_user_applied(&entry.user_name, said.to_json())
                .await?;
        }
        return Ok(Some(change(
            Action::Create,
            "user",
            &entry.user_name,
            vec![],
        )));
    };
    let before = Applied::before(current.managed, &current.applied);
    if let Some(before) = &before {
        if before.active == said.active {
            desired.active = None;
        }
        if before.locked_out == said.locked_out {
            desired.locked_out = None;
        }
    }
    let mut fields = user_differences(&current, &desired);
    let password_said_before = before.is_some_and(|b| b.secret == said.secret);
    let password_changes = match (&password, &current.password_hash) {
        _ if password_said_before => false,
        (Some(password), Some(hash)) => {
            !user::verify_password(password.expose().to_owned(), hash.clone()).await?
        }
        (Some(_), None) => true,
        (None, _) => false,
    };
    if password_changes {
        fields.push("password");
    }
    if !current.managed {
        fields.push("managed");
    }
    if fields.is_empty() {
        if !options.dry_run {
            registry
                .mark_user_applied(&entry.user_name, said.to_json())
                .await?;
        }
        return Ok(None);
    }
    if !options.dry_run {
        registry.update_user(&entry.user_name, desired).await?;
        if let (true, Some(password)) = (password_changes, password) {
            registry.set_password(&entry.user_name, password).await?;
        }
        registry
            .mark_user_applied(&entry.user_name, said.to_json())
            .await?;
    }
    Ok(Some(change(
        Action::Update,
        "user",
        &entry.user_name,
        fields,
    )))
}

fn user_differences(user: &User, desired: &UserChanges) -> Vec<&'static str> {
    let mut roles = desired.roles.clone().unwrap_or_default();
    roles.sort();
    roles.dedup();
    let mut fields = Vec::new();
    if desired.display_name.as_ref() != Some(&user.display_name) {
        fields.push("display_name");
    }
    if desired.email.as_deref().unwrap_or_default() != user.email.as_deref().unwrap_or_default() {
        fields.push("email");
    }
    if roles != user.roles {
        fields.push("roles");
    }
    if desired.active.is_some_and(|a| a != user.active) {
        fields.push("active");
    }
    if desired.locked_out.is_some_and(|l| l != user.locked_out) {
        fields.push("locked_out");
    }
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    if text(&desired.given_name) != text(&user.given_name) {
        fields.push("given_name");
    }
    if text(&desired.family_name) != text(&user.family_name) {
        fields.push("family_name");
    }
    fields
}
