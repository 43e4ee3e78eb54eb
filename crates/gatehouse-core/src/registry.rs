//! The Application Registry's use cases — creating, changing, rotating and deleting
//! applications and users — shared by the CLI, the admin REST API and `gatehouse apply`, so the
//! three can never disagree about a rule.

mod entries;

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::access::ScopeEntry;
use crate::audience;
use crate::audit::{Actor, AuditEvent, Transacted, Transactional, Work};
use crate::cache::RegistryCache;
pub use crate::client::AppChanges;
use crate::client::{Client, ClientType, GrantType, MAX_CLIENT_ID_LENGTH, PreviousSecret};
use crate::clock::Clock;
use crate::entry::Entry;
use crate::keys::SigningAlgorithm;
use crate::logout::{BackChannelLogout, UserSignOut};
use crate::scope::ScopeSet;
use crate::secret::{self, Secret, SecretHasher};
use crate::store::{AuditQuery, AuditRecord, Store, StoreError, UserWrite};
use crate::user::{self, Permission, REGISTRY_ADMIN_ROLES, User};

/// The most audit events one page holds.
pub const MAX_AUDIT_PAGE: u64 = 1000;

/// What the audit trail calls the registry's records.
const APPLICATION: &str = "application";
const USER: &str = "user";

/// The shortest client secret an administrator may supply: 32 characters.
pub const MIN_CLIENT_SECRET_LENGTH: usize = 32;
/// How long a rotated secret stays valid unless the rotation says otherwise: a day, time to
/// redeploy the services that use it one by one.
pub const DEFAULT_SECRET_GRACE: i64 = 86_400;
/// The longest grace a rotation may give the secret it replaces: thirty days.
const MAX_SECRET_GRACE: i64 = 30 * 86_400;

/// A new application.
#[derive(Debug, Clone, Default)]
pub struct NewApp {
    /// Fixed by the administrator, or generated when `None`.
    pub client_id: Option<String>,
    /// Supplied by the administrator (at least 32 characters), or generated when `None`.
    pub client_secret: Option<Secret>,
    pub fields: AppChanges,
}

/// Changes to a user; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserChanges {
    pub display_name: Option<String>,
    /// An empty string removes it.
    pub given_name: Option<String>,
    /// An empty string removes it.
    pub family_name: Option<String>,
    /// An empty string removes the email address.
    pub email: Option<String>,
    pub roles: Option<Vec<String>>,
    pub active: Option<bool>,
    /// An administrator's lock: the user cannot log in while it is set.
    pub locked_out: Option<bool>,
}

#[derive(Debug, Clone, Default)]
pub struct NewUser {
    pub user_name: String,
    pub password: Option<Secret>,
    pub fields: UserChanges,
}

/// The registry's use cases over a store.
#[derive(Clone)]
pub struct Registry {
    pub(crate) store: Arc<dyn Store>,
    hasher: SecretHasher,
    cache: Arc<RegistryCache>,
    pub(crate) clock: Arc<dyn Clock>,
    /// The administrator of the admin API this registry acts for, bounded by their roles;
    /// `None` for the operator (the CLI, the declarative file, bootstrap), who holds the
    /// database and the master key anyway.
    administrator: Option<Arc<User>>,
    /// Who acts, and the transaction the registry works in, if any.
    work: Work,
    /// Tells applications when a change ends a user's sessions; absent where nothing listens
    /// (the registry's unit tests).
    logout: Option<BackChannelLogout>,
}

impl Transactional for Registry {
    fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    fn work(&self) -> &Work {
        &self.work
    }

    fn joined(&self, store: Arc<dyn Store>, work: Work) -> Self {
        Registry {
            store,
            work,
            ..self.clone()
        }
    }

    fn committed(&self, notices: Vec<String>) {
        for notice in notices {
            self.cache.apply_notice(&notice);
        }
    }
}

impl Registry {
    pub fn new(
        store: Arc<dyn Store>,
        hasher: SecretHasher,
        cache: Arc<RegistryCache>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Registry {
            store,
            hasher,
            cache,
            clock,
            administrator: None,
            work: Work::new(Actor::operator("server")),
            logout: None,
        }
    }

    /// This registry, telling applications through `logout` whenever a change ends a user's
    /// sessions.
    pub fn with_backchannel_logout(self, logout: BackChannelLogout) -> Registry {
        Registry {
            logout: Some(logout),
            ..self
        }
    }

    /// This registry acting for an administrator: every use case refuses what their roles do
    /// not allow, and the audit trail names `actor` (their user name, the client their token
    /// came through, their address).
    pub fn acting_for(&self, administrator: Arc<User>, actor: Actor) -> Registry {
        Registry {
            administrator: Some(administrator),
            work: Work::new(actor),
            ..self.clone()
        }
    }

    /// This registry as the operator's tool `actor` (`cli`, `apply`), as the audit trail names
    /// it.
    pub fn as_actor(&self, actor: Actor) -> Registry {
        Registry {
            work: Work::new(actor),
            ..self.clone()
        }
    }

    pub fn actor(&self) -> &Actor {
        self.work.actor()
    }

    /// The administrator this registry acts for; `None` for the operator.
    pub fn administrator(&self) -> Option<&User> {
        self.administrator.as_deref()
    }

    /// Begins a unit of work whose writes and audit events commit together (see
    /// [`Transacted`]).
    pub async fn begin(&self) -> Result<Transacted<Registry>, Error> {
        Transacted::begin(self).await
    }

    /// Whether this registry works in a transaction: reads must not fill the shared caches
    /// with what it has not committed.
    pub(crate) fn in_transaction(&self) -> bool {
        self.work.is_open()
    }

    /// Writes the audit event of a change (none when nothing changed) in this unit of work.
    pub(crate) async fn audit(&self, event: Option<AuditEvent>) -> Result<(), Error> {
        match event {
            Some(event) => self.work.audit(&*self.store, &*self.clock, event).await,
            None => Ok(()),
        }
    }

    /// Refuses unless the administrator this registry acts for (if any) may `permission`.
    pub fn require(&self, permission: Permission) -> Result<(), Error> {
        match &self.administrator {
            Some(administrator) if !administrator.may(permission) => {
                let roles: Vec<&str> = REGISTRY_ADMIN_ROLES
                    .into_iter()
                    .filter(|role| user::role_may(role, permission))
                    .collect();
                Err(Error::Forbidden(format!(
                    "{} needs the {} role",
                    permission.description(),
                    roles.join(" or ")
                )))
            }
            _ => Ok(()),
        }
    }

    /// Managing an application that runs as someone who holds a registry role hands over
    /// what they may do, so only those who manage administrators may.
    async fn require_for_run_as(&self, run_as: Option<&str>) -> Result<(), Error> {
        if self.administrator.is_none() {
            return Ok(());
        }
        if let Some(user_name) = run_as
            && let Some(user) = self.store.find_user_by_name(user_name).await?
            && user.is_registry_admin()
        {
            self.require(Permission::ManageAdministrators)?;
        }
        Ok(())
    }

    /// The checks of a change to `current` (or of a new user): users who hold a registry role,
    /// and the registry roles themselves, are for those who manage administrators.
    fn require_for_user(
        &self,
        current: Option<&User>,
        roles: Option<&[String]>,
    ) -> Result<(), Error> {
        self.require(Permission::ManageUsers)?;
        let registry_roles = |roles: &[String]| -> Vec<String> {
            let mut held: Vec<String> = roles
                .iter()
                .filter(|r| REGISTRY_ADMIN_ROLES.contains(&r.as_str()))
                .cloned()
                .collect();
            held.sort();
            held.dedup();
            held
        };
        let before = current
            .map(|u| registry_roles(&u.roles))
            .unwrap_or_default();
        let touches_roles = roles.is_some_and(|roles| registry_roles(roles) != before);
        if !before.is_empty() || touches_roles {
            self.require(Permission::ManageAdministrators)?;
        }
        Ok(())
    }

    /// Turns a refused user write into the domain's answer.
    fn user_written(outcome: UserWrite, user_name: &str) -> Result<(), Error> {
        match outcome {
            UserWrite::Done => Ok(()),
            UserWrite::NotFound => Err(Error::NotFound(format!("user {user_name:?}"))),
            UserWrite::LastAdministrator => Err(Error::Conflict(format!(
                "{user_name:?} is the last active, unlocked administrator with a password; \
                 make another one first"
            ))),
        }
    }

    /// Tells this process's caches, and other instances sharing the database, that a record
    /// changed.
    /// In a transaction, both wait for the commit.
    pub(crate) async fn changed(&self, notice: String) -> Result<(), Error> {
        if !self.work.defer_notice(&notice) {
            self.cache.apply_notice(&notice);
        }
        self.store.publish_change(&notice).await?;
        Ok(())
    }

    /// A page of the audit trail, newest first. `query.limit` is kept between 1 and
    /// [`MAX_AUDIT_PAGE`].
    pub async fn audit_events(&self, mut query: AuditQuery) -> Result<Vec<AuditRecord>, Error> {
        self.require(Permission::ReadAudit)?;
        query.limit = query.limit.clamp(1, MAX_AUDIT_PAGE);
        Ok(self.store.list_audit(&query).await?)
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    pub fn hasher(&self) -> &SecretHasher {
        &self.hasher
    }

    pub async fn list_apps(&self) -> Result<Vec<Client>, Error> {
        Ok(self.store.list_clients().await?)
    }

    pub async fn get_app(&self, client_id: &str) -> Result<Client, Error> {
        self.store
            .find_client(client_id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("application {client_id:?}")))
    }

    /// Creates an application; returns it with its secret in clear, which is never shown again.
    pub async fn create_app(
        &self,
        new: NewApp,
        managed: bool,
    ) -> Result<(Client, Option<Secret>), Error> {
        let this = self.begin().await?;
        this.require(Permission::ManageApplications)?;
        this.require_for_run_as(new.fields.run_as.as_deref())
            .await?;
        let now = this.clock.now();
        let client_id = match new.client_id {
            Some(id) => {
                check_identifier("client_id", &id, MAX_CLIENT_ID_LENGTH)?;
                id
            }
            None => uuid::Uuid::new_v4().simple().to_string(),
        };
        if new.fields.name.is_none() {
            return Err(Error::validation("an application needs a name"));
        }
        let mut client = Client::new(uuid::Uuid::now_v7().to_string(), client_id, now);
        client.managed = managed;
        let mut fields = new.fields;
        // As registered without a scope list, an application may use the registry's default
        // scopes (`useraccount` unless an administrator changed that).
        if fields.allowed_scopes.is_none() {
            fields.allowed_scopes = Some(this.default_scopes().await?);
        }
        let defaults_given = fields.default_scopes.is_some();
        fields.apply(&mut client);
        // Unless told otherwise, a client gets everything it may have when it asks for no scope.
        if !defaults_given {
            client.default_scopes = client.allowed_scopes.clone();
        }
        let secret = match client.client_type {
            // A client that registered keys authenticates with them (private_key_jwt) only.
            ClientType::Confidential if client.key_source().is_some() => {
                if new.client_secret.is_some() {
                    return Err(Error::validation(
                        "a client that registers keys authenticates with them, not a secret",
                    ));
                }
                None
            }
            ClientType::Confidential => Some(match new.client_secret {
                Some(secret) => {
                    check_client_secret(&secret)?;
                    secret
                }
                None => Secret::new(secret::generate()),
            }),
            ClientType::Public if new.client_secret.is_some() => {
                return Err(Error::validation("a public client has no secret"));
            }
            ClientType::Public => None,
        };
        client.secret_hash = secret.as_ref().map(|s| this.hasher.hash(s.expose()));
        this.validate_app(&client).await?;
        this.store
            .insert_client(&client)
            .await
            .map_err(conflict_naming(application(&client.client_id)))?;
        this.audit(AuditEvent::change(
            APPLICATION,
            &client.client_id,
            None,
            Some(&client),
        ))
        .await?;
        this.commit().await?;
        Ok((client, secret))
    }

    pub async fn update_app(&self, client_id: &str, changes: AppChanges) -> Result<Client, Error> {
        let this = self.begin().await?;
        let mut client = this.get_app_to_change(client_id).await?;
        let before = client.clone();
        this.require_for_run_as(changes.run_as.as_deref()).await?;
        let becomes_public = changes.client_type == Some(ClientType::Public);
        let defaults_given = changes.default_scopes.is_some();
        let defaults_followed_allowed = client.default_scopes == client.allowed_scopes;
        changes.apply(&mut client);
        // New allowed scopes without new defaults: defaults that were "everything allowed" stay
        // so, others keep what is still allowed.
        if !defaults_given {
            client.default_scopes = if defaults_followed_allowed {
                client.allowed_scopes.clone()
            } else {
                let allowed = &client.allowed_scopes;
                client
                    .default_scopes
                    .iter()
                    .filter(|s| allowed.contains(s))
                    .cloned()
                    .collect()
            };
        }
        if becomes_public {
            client.secret_hash = None;
            client.previous_secret = None;
        } else if client.client_type == ClientType::Confidential
            && client.secret_hash.is_none()
            && client.key_source().is_none()
        {
            return Err(Error::validation(
                "a public client becomes confidential only through rotate-secret",
            ));
        }
        client.updated_at = this.clock.now();
        this.validate_app(&client).await?;
        this.store
            .update_client(&client)
            .await
            .map_err(conflict_naming(application(&client.client_id)))?;
        this.app_changed(&before, &client).await?;
        this.commit().await?;
        Ok(client)
    }

    /// An application the administrator this registry acts for may change.
    pub(crate) async fn get_app_to_change(&self, client_id: &str) -> Result<Client, Error> {
        self.require(Permission::ManageApplications)?;
        let client = self.get_app(client_id).await?;
        self.require_for_run_as(client.run_as.as_deref()).await?;
        Ok(client)
    }

    /// Marks an application as owned by `gatehouse apply`, with what the file said (see
    /// `manifest`).
    pub async fn mark_app_applied(&self, client_id: &str, applied: String) -> Result<(), Error> {
        let this = self.begin().await?;
        let mut client = this.get_app(client_id).await?;
        if !client.managed || client.applied.as_ref() != Some(&applied) {
            let before = client.clone();
            client.managed = true;
            client.applied = Some(applied);
            this.store.update_client(&client).await?;
            this.app_changed(&before, &client).await?;
        }
        this.commit().await
    }

    /// Replaces the secret (with `secret`, or a generated one) and returns it in clear. The old
    /// secret stops working at once; a public client becomes confidential.
    /// Replaces the client secret. The replaced one stays valid for `grace` seconds (0: it
    /// stops at once), taking the place of any secret an earlier rotation kept, so no more than
    /// two are ever live.
    pub async fn rotate_secret(
        &self,
        client_id: &str,
        secret: Option<Secret>,
        grace: i64,
    ) -> Result<(Client, Secret), Error> {
        let this = self.begin().await?;
        if !(0..=MAX_SECRET_GRACE).contains(&grace) {
            return Err(Error::validation(format!(
                "the grace period of the previous secret must be between 0 and {MAX_SECRET_GRACE} seconds"
            )));
        }
        let mut client = this.get_app_to_change(client_id).await?;
        let before = client.clone();
        let secret = match secret {
            Some(secret) => {
                check_client_secret(&secret)?;
                secret
            }
            None => Secret::new(secret::generate()),
        };
        let now = this.clock.now();
        client.previous_secret =
            client
                .secret_hash
                .take()
                .filter(|_| grace > 0)
                .map(|hash| PreviousSecret {
                    hash,
                    expires_at: now + grace,
                });
        client.client_type = ClientType::Confidential;
        client.secret_hash = Some(this.hasher.hash(secret.expose()));
        client.updated_at = now;
        this.store.update_client(&client).await?;
        this.app_changed(&before, &client).await?;
        this.commit().await?;
        Ok((client, secret))
    }

    /// Ends the grace period of the secret the last rotation replaced, at once.
    pub async fn end_previous_secret(&self, client_id: &str) -> Result<Client, Error> {
        let this = self.begin().await?;
        let mut client = this.get_app_to_change(client_id).await?;
        let before = client.clone();
        if client.previous_secret.take().is_some() {
            client.updated_at = this.clock.now();
            this.store.update_client(&client).await?;
            this.app_changed(&before, &client).await?;
        }
        this.commit().await?;
        Ok(client)
    }

    pub async fn delete_app(&self, client_id: &str) -> Result<(), Error> {
        let this = self.begin().await?;
        let client = this.get_app_to_change(client_id).await?;
        if !this.store.delete_client(client_id).await? {
            return Err(Error::NotFound(format!("application {client_id:?}")));
        }
        this.audit(AuditEvent::change(
            APPLICATION,
            client_id,
            Some(&client),
            None,
        ))
        .await?;
        this.changed(format!("client:{client_id}")).await?;
        this.commit().await
    }

    /// Audits a stored change to an application and tells every cache.
    async fn app_changed(&self, before: &Client, after: &Client) -> Result<(), Error> {
        self.audit(AuditEvent::change(
            APPLICATION,
            &after.client_id,
            Some(before),
            Some(after),
        ))
        .await?;
        self.changed(format!("client:{}", after.client_id)).await
    }

    async fn validate_app(&self, client: &Client) -> Result<(), Error> {
        if client.name.trim().is_empty() {
            return Err(Error::validation("an application needs a name"));
        }
        if client.client_type == ClientType::Public
            && client.allows_grant(GrantType::ClientCredentials)
        {
            return Err(Error::validation(
                "a public client cannot use client_credentials (RFC 6749 §4.4)",
            ));
        }
        // The exchange turns tokens the client holds into others: a client that proves nothing
        // about itself must not be able to.
        if client.client_type == ClientType::Public && client.allows_grant(GrantType::TokenExchange)
        {
            return Err(Error::validation(
                "a public client cannot use token_exchange",
            ));
        }
        let redirecting = [GrantType::AuthorizationCode, GrantType::Implicit];
        if redirecting.iter().any(|g| client.allows_grant(*g)) && client.redirect_uris.is_empty() {
            return Err(Error::validation(
                "authorization_code and implicit need at least one redirect URI",
            ));
        }
        for uri in &client.redirect_uris {
            check_redirect_uri(uri)?;
        }
        audience::check_identifiers(&client.audiences)?;
        audience::check_identifiers(&client.exchange_audiences)?;
        // A friendlier answer than the store's; its unique index still decides races.
        for audience in &client.audiences {
            if let Some(owner) = self.store.find_client_by_audience(audience).await?
                && owner.client_id != client.client_id
            {
                return Err(Error::Conflict(format!(
                    "audience {audience:?} belongs to application {:?}",
                    owner.client_id
                )));
            }
        }
        if client.introspect_any && client.client_type != ClientType::Confidential {
            return Err(Error::validation(
                "only a confidential client may introspect tokens",
            ));
        }
        let allowed = ScopeSet::from_list(&client.allowed_scopes)?;
        let defaults = ScopeSet::from_list(&client.default_scopes)?;
        // A scope nobody registered has no description for the consent page and no rule
        // that names it, and is most often a typing mistake that would be issued as written.
        let catalog = self.fresh_catalog().await?;
        let unknown: Vec<&str> = allowed
            .iter()
            .filter(|scope| !catalog.contains(ScopeEntry::KIND, scope))
            .collect();
        if !unknown.is_empty() {
            let known: Vec<&str> = catalog.scopes.iter().map(|s| s.name.as_str()).collect();
            return Err(Error::validation(format!(
                "unknown scope{} {}: register {} first (registered scopes: {})",
                if unknown.len() == 1 { "" } else { "s" },
                unknown.join(" "),
                if unknown.len() == 1 { "it" } else { "them" },
                known.join(" ")
            )));
        }
        if !defaults.is_subset(&allowed) {
            return Err(Error::validation(
                "default scopes must be among the allowed scopes",
            ));
        }
        for (what, value) in [
            ("access_token_lifespan", client.access_token_lifespan),
            ("refresh_token_lifespan", client.refresh_token_lifespan),
        ] {
            if !(1..=10 * 365 * 86_400).contains(&value) {
                return Err(Error::validation(format!(
                    "{what} must be between 1 second and 10 years"
                )));
            }
        }
        match (&client.jwks, &client.jwks_uri) {
            (Some(_), Some(_)) => {
                return Err(Error::validation(
                    "register keys inline (jwks) or by URL (jwks_uri), not both",
                ));
            }
            (Some(jwks), None) => {
                crate::federation::jose::KeySet::from_static(jwks).map_err(|e| {
                    Error::validation(format!("the registered keys are unusable: {e}"))
                })?;
            }
            (None, Some(uri)) => crate::federation::check_remote_url(uri)?,
            (None, None) => {}
        }
        if let Some(uri) = &client.backchannel_logout_uri {
            check_backchannel_logout_uri(uri)?;
        }
        if client.client_type == ClientType::Public && client.key_source().is_some() {
            return Err(Error::validation("a public client registers no keys"));
        }
        if client.id_token_alg == SigningAlgorithm::EdDsa {
            return Err(Error::validation(
                "ID tokens are signed with ES256 or RS256 (OpenID Connect relying parties rarely \
                 accept EdDSA)",
            ));
        }
        if let Some(user_name) = &client.run_as
            && self.store.find_user_by_name(user_name).await?.is_none()
        {
            return Err(Error::validation(format!(
                "run-as user {user_name:?} does not exist"
            )));
        }
        Ok(())
    }

    pub async fn list_users(&self) -> Result<Vec<User>, Error> {
        Ok(self.store.list_users().await?)
    }

    pub async fn get_user(&self, user_name: &str) -> Result<User, Error> {
        self.store
            .find_user_by_name(user_name)
            .await?
            .ok_or_else(|| Error::NotFound(format!("user {user_name:?}")))
    }

    pub async fn create_user(&self, new: NewUser, managed: bool) -> Result<User, Error> {
        let this = self.begin().await?;
        this.require_for_user(None, new.fields.roles.as_deref())?;
        check_identifier("user name", &new.user_name, 64)?;
        let now = this.clock.now();
        let password_hash = match new.password {
            Some(password) => {
                user::check_password_policy(password.expose())?;
                Some(user::hash_password(password.expose().to_owned()).await?)
            }
            None => None,
        };
        let mut user = User {
            id: uuid::Uuid::now_v7().to_string(),
            display_name: new.user_name.clone(),
            user_name: new.user_name,
            given_name: None,
            family_name: None,
            email: None,
            roles: vec![],
            active: true,
            locked_out: false,
            password_hash,
            managed,
            credential_epoch: 0,
            applied: None,
            created_at: now,
            updated_at: now,
        };
        apply_user_changes(&mut user, new.fields);
        check_user(&user)?;
        this.ensure_email_free(&user).await?;
        this.store
            .insert_user(&user)
            .await
            .map_err(conflict_naming(format!(
                "a user named {:?}",
                user.user_name
            )))?;
        this.audit(AuditEvent::change(USER, &user.user_name, None, Some(&user)))
            .await?;
        this.commit().await?;
        Ok(user)
    }

    pub async fn update_user(&self, user_name: &str, changes: UserChanges) -> Result<User, Error> {
        let this = self.begin().await?;
        let current = this.get_user(user_name).await?;
        this.require_for_user(Some(&current), changes.roles.as_deref())?;
        let mut user = current.clone();
        apply_user_changes(&mut user, changes);
        check_user(&user)?;
        // A lock or a deactivation ends what the user's credentials started; lifting it later
        // does not bring that back.
        let ends_credentials =
            (current.active && !user.active) || (!current.locked_out && user.locked_out);
        if ends_credentials {
            user.credential_epoch += 1;
        }
        this.ensure_email_free(&user).await?;
        user.updated_at = this.clock.now();
        this.save_user(&current, &user, ends_credentials).await?;
        this.commit().await?;
        Ok(user)
    }

    /// Stores a changed user (ending their sessions and tokens with `end_tokens`) and tells
    /// every cache.
    async fn save_user(&self, before: &User, user: &User, end_tokens: bool) -> Result<(), Error> {
        let owed = if end_tokens {
            self.before_sign_out(&user.id).await?
        } else {
            None
        };
        let outcome = self
            .store
            .update_user(user, end_tokens)
            .await
            .map_err(conflict_naming(format!(
                "a user named {:?}",
                user.user_name
            )))?;
        Self::user_written(outcome, &user.user_name)?;
        self.audit(AuditEvent::change(
            USER,
            &user.user_name,
            Some(before),
            Some(user),
        ))
        .await?;
        self.sign_out_after_commit(owed);
        self.changed(format!("user:{}", user.user_name)).await
    }

    /// The logout tokens owed once the user's sessions end, read before the change that ends
    /// them.
    async fn before_sign_out(&self, user_id: &str) -> Result<Option<UserSignOut>, Error> {
        match &self.logout {
            Some(logout) => Ok(Some(
                logout
                    .before_user_signed_out(self.store.as_ref(), user_id)
                    .await?,
            )),
            None => Ok(None),
        }
    }

    /// Sends what [`Self::before_sign_out`] found once the change has committed (never for one
    /// rolled back): a token that cannot be signed is logged, since the change stands either
    /// way.
    fn sign_out_after_commit(&self, owed: Option<UserSignOut>) {
        if let (Some(logout), Some(owed)) = (self.logout.clone(), owed) {
            self.work.after_commit(move || {
                if let Err(error) = owed.send(&logout) {
                    tracing::error!(%error, "back-channel logout tokens were not sent");
                }
            });
        }
    }

    /// Marks a user as owned by `gatehouse apply`, with what the file said (see `manifest`).
    pub async fn mark_user_applied(&self, user_name: &str, applied: String) -> Result<(), Error> {
        let this = self.begin().await?;
        let mut user = this.get_user(user_name).await?;
        if !user.managed || user.applied.as_ref() != Some(&applied) {
            let before = user.clone();
            user.managed = true;
            user.applied = Some(applied);
            this.save_user(&before, &user, false).await?;
        }
        this.commit().await
    }

    /// A user the administrator this registry acts for may change.
    pub(crate) async fn get_user_to_change(&self, user_name: &str) -> Result<User, Error> {
        let user = self.get_user(user_name).await?;
        self.require_for_user(Some(&user), None)?;
        Ok(user)
    }

    /// Ends every session and token of a user, as a new password, a lock or a deactivation
    /// does, and leaves them free to sign in again: their credential epoch goes up, which ends
    /// even the JWTs issued for them that the store never kept.
    pub async fn end_user_sessions(&self, user_name: &str) -> Result<(), Error> {
        let this = self.begin().await?;
        let mut user = this.get_user_to_change(user_name).await?;
        let before = user.clone();
        user.credential_epoch += 1;
        user.updated_at = this.clock.now();
        this.save_user(&before, &user, true).await?;
        this.commit().await
    }

    /// What tells applications that a user's session ended, where anything listens.
    pub(crate) fn backchannel_logout(&self) -> Option<&BackChannelLogout> {
        self.logout.as_ref()
    }

    /// Sets a user's password, which ends every session and token their old one started.
    /// Administrators may always set their own.
    pub async fn set_password(&self, user_name: &str, password: Secret) -> Result<(), Error> {
        let this = self.begin().await?;
        user::check_password_policy(password.expose())?;
        let mut user = this.get_user(user_name).await?;
        let own = this
            .administrator
            .as_ref()
            .is_some_and(|administrator| administrator.id == user.id);
        if !own {
            this.require_for_user(Some(&user), None)?;
        }
        let before = user.clone();
        user.password_hash = Some(user::hash_password(password.expose().to_owned()).await?);
        user.credential_epoch += 1;
        user.updated_at = this.clock.now();
        this.save_user(&before, &user, true).await?;
        this.commit().await
    }

    pub async fn delete_user(&self, user_name: &str) -> Result<(), Error> {
        let this = self.begin().await?;
        let user = this.get_user(user_name).await?;
        this.require_for_user(Some(&user), None)?;
        let dependents: Vec<String> = this
            .store
            .list_clients()
            .await?
            .into_iter()
            .filter(|c| c.run_as.as_deref() == Some(user_name))
            .map(|c| c.client_id)
            .collect();
        if !dependents.is_empty() {
            return Err(Error::Conflict(format!(
                "user {user_name:?} is the run-as user of {}",
                dependents.join(", ")
            )));
        }
        let owed = this.before_sign_out(&user.id).await?;
        Self::user_written(this.store.delete_user(user_name).await?, user_name)?;
        this.sign_out_after_commit(owed);
        this.audit(AuditEvent::change(USER, user_name, Some(&user), None))
            .await?;
        this.changed(format!("user:{user_name}")).await?;
        this.commit().await
    }

    /// Emails are unique among users, since a federated token naming an email must name one
    /// person. This gives the clear answer; the unique index decides a race.
    async fn ensure_email_free(&self, user: &User) -> Result<(), Error> {
        let Some(email) = &user.email else {
            return Ok(());
        };
        match self.store.find_user_by_email(email).await? {
            Some(holder) if holder.id != user.id => Err(Error::Conflict(format!(
                "user {:?} already has the email {email:?}; emails are unique",
                holder.user_name
            ))),
            _ => Ok(()),
        }
    }
}

/// A back-channel logout URI is one Gatehouse connects to ([`crate::remote`]), and has no
/// fragment (Back-Channel Logout 1.0 §2.2).
fn check_backchannel_logout_uri(uri: &str) -> Result<(), Error> {
    crate::federation::check_remote_url(uri)?;
    if uri.contains('#') {
        return Err(Error::validation(
            "backchannel_logout_uri must not have a fragment",
        ));
    }
    Ok(())
}

fn apply_user_changes(user: &mut User, changes: UserChanges) {
    let UserChanges {
        display_name,
        given_name,
        family_name,
        email,
        roles,
        active,
        locked_out,
    } = changes;
    if let Some(v) = given_name {
        user.given_name = (!v.is_empty()).then_some(v);
    }
    if let Some(v) = family_name {
        user.family_name = (!v.is_empty()).then_some(v);
    }
    if let Some(v) = locked_out {
        user.locked_out = v;
    }
    if let Some(v) = display_name {
        user.display_name = v;
    }
    if let Some(v) = email {
        user.email = (!v.is_empty()).then_some(v);
    }
    if let Some(v) = roles {
        user.roles = sorted(v);
    }
    if let Some(v) = active {
        user.active = v;
    }
}

fn sorted(mut values: Vec<String>) -> Vec<String> {
    values.sort();
    values.dedup();
    values
}

fn check_user(user: &User) -> Result<(), Error> {
    if let Some(email) = &user.email
        && (!email.contains('@') || email.chars().any(char::is_whitespace))
    {
        return Err(Error::validation(format!(
            "{email:?} is not an email address"
        )));
    }
    for role in &user.roles {
        let valid = !role.is_empty()
            && role
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !valid {
            return Err(Error::validation(format!(
                "role {role:?} must be lower-case letters, digits and underscores"
            )));
        }
    }
    Ok(())
}

pub(crate) fn check_identifier(what: &str, value: &str, max: usize) -> Result<(), Error> {
    let valid = !value.is_empty()
        && value.len() <= max
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-@~".contains(&b));
    if valid {
        Ok(())
    } else {
        Err(Error::validation(format!(
            "{what} must be 1 to {max} letters, digits or . _ - @ ~"
        )))
    }
}

fn check_client_secret(secret: &Secret) -> Result<(), Error> {
    if secret.expose().chars().count() < MIN_CLIENT_SECRET_LENGTH {
        return Err(Error::validation(format!(
            "a client secret must have at least {MIN_CLIENT_SECRET_LENGTH} characters"
        )));
    }
    Ok(())
}

/// RFC 9700 §2.1 and §4.1.3: redirect URIs are registered in full, compared exactly, carry no
/// fragment, and use TLS unless they stay on the machine (loopback) or belong to a native app.
fn check_redirect_uri(uri: &str) -> Result<(), Error> {
    let invalid = |why: &str| Err(Error::validation(format!("redirect URI {uri:?} {why}")));
    let Ok(parsed) = url::Url::parse(uri) else {
        return invalid("is not an absolute URI");
    };
    if parsed.fragment().is_some() {
        return invalid("must not contain a fragment");
    }
    match parsed.scheme() {
        "https" => Ok(()),
        "http" => match parsed.host_str() {
            Some("127.0.0.1" | "[::1]" | "localhost") => Ok(()),
            _ => invalid("must use https unless it is a loopback address"),
        },
        // RFC 8252 §7.1: private-use schemes are reverse domain names.
        scheme if scheme.contains('.') => Ok(()),
        "javascript" | "data" | "file" | "vbscript" => invalid("uses a forbidden scheme"),
        _ => invalid("must be https, loopback http, or a reverse-domain private-use scheme"),
    }
}

fn application(client_id: &str) -> String {
    format!("an application with client_id {client_id:?}")
}

/// A store conflict as the domain's, naming the record: `an application with client_id
/// "billing" already exists`. A conflict on another unique value of the record, which the store
/// describes itself (an audience), keeps that description.
pub(crate) fn conflict_naming(record: String) -> impl FnOnce(StoreError) -> Error {
    move |error| match error {
        // The store says which value collided, or only which table.
        StoreError::Conflict(value) if value.contains(' ') => {
            Error::Conflict(format!("{value} is already registered"))
        }
        StoreError::Conflict(_) => Error::Conflict(format!("{record} already exists")),
        other => Error::Store(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_uri_rules() {
        assert!(check_redirect_uri("https://app.example/cb").is_ok());
        assert!(check_redirect_uri("http://127.0.0.1/cb").is_ok());
        assert!(check_redirect_uri("com.example.app:/cb").is_ok());
        assert!(check_redirect_uri("http://app.example/cb").is_err());
        assert!(check_redirect_uri("https://app.example/cb#x").is_err());
        assert!(check_redirect_uri("/cb").is_err());
        assert!(check_redirect_uri("javascript:alert(1)").is_err());
    }

    #[test]
    fn short_admin_secrets_are_refused() {
        assert!(check_client_secret(&Secret::new("x".repeat(31))).is_err());
        assert!(check_client_secret(&Secret::new("x".repeat(32))).is_ok());
    }

    #[test]
    fn identifiers_are_restricted() {
        assert!(check_identifier("client_id", "billing-app.v2", 128).is_ok());
        assert!(check_identifier("client_id", "has space", 128).is_err());
        assert!(check_identifier("client_id", "", 128).is_err());
    }
}
