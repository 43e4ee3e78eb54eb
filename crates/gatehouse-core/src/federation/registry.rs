//! The registry's use cases for JWT providers, shared by the CLI, the admin API and
//! `gatehouse apply` like those for applications and users.

use serde::{Deserialize, Serialize};

use super::jose::{JwsAlgorithm, KeySet};
use super::{
    DEFAULT_MAX_ASSERTION_AGE, DEFAULT_MAX_ASSERTION_LIFETIME, DEFAULT_STALE_KEYS_LIFETIME,
    JwtProvider, KeySource, UserField,
};
use crate::Error;
use crate::audit::AuditEvent;
use crate::registry::{Registry, check_identifier, conflict_naming};

/// What the audit trail calls a JWT provider.
const JWT_PROVIDER: &str = "jwt_provider";
use crate::scope::ScopeSet;
use crate::user::Permission;

/// The longest time keys that fail to refresh may stay in use: a week.
const MAX_STALE_KEYS_LIFETIME: i64 = 7 * 86_400;

/// Changes to a JWT provider; `None` leaves a field as it is (on creation: takes its default).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtProviderChanges {
    pub issuer: Option<String>,
    pub audiences: Option<Vec<String>>,
    pub key_source: Option<KeySource>,
    pub algorithms: Option<Vec<JwsAlgorithm>>,
    pub user_claim: Option<String>,
    pub user_field: Option<UserField>,
    pub allowed_clients: Option<Vec<String>>,
    pub max_age: Option<i64>,
    pub max_lifetime: Option<i64>,
    pub api_access: Option<bool>,
    pub api_scopes: Option<Vec<String>>,
    pub accept_plain_jwt: Option<bool>,
    pub accept_id_tokens: Option<bool>,
    pub stale_keys_lifetime: Option<i64>,
    pub map_registry_roles: Option<bool>,
    pub active: Option<bool>,
}

#[derive(Debug, Clone, Default)]
pub struct NewJwtProvider {
    pub name: String,
    pub fields: JwtProviderChanges,
}

impl Registry {
    pub async fn list_jwt_providers(&self) -> Result<Vec<JwtProvider>, Error> {
        Ok(self.store.list_jwt_providers().await?)
    }

    pub async fn get_jwt_provider(&self, name: &str) -> Result<JwtProvider, Error> {
        self.store
            .find_jwt_provider(name)
            .await?
            .ok_or_else(|| Error::NotFound(format!("JWT provider {name:?}")))
    }

    pub async fn create_jwt_provider(
        &self,
        new: NewJwtProvider,
        managed: bool,
    ) -> Result<JwtProvider, Error> {
        let this = self.begin().await?;
        this.require(Permission::ManageJwtProviders)?;
        check_identifier("JWT provider name", &new.name, 64)?;
        let now = this.clock.now();
        let issuer = new.fields.issuer.clone().unwrap_or_default();
        let key_source = new
            .fields
            .key_source
            .clone()
            .ok_or_else(|| Error::validation("a JWT provider needs a key source"))?;
        let mut provider = JwtProvider {
            id: uuid::Uuid::now_v7().to_string(),
            name: new.name,
            issuer,
            audiences: vec![],
            key_source,
            algorithms: vec![JwsAlgorithm::RS256, JwsAlgorithm::ES256],
            user_claim: "sub".into(),
            user_field: UserField::UserName,
            allowed_clients: vec![],
            max_age: DEFAULT_MAX_ASSERTION_AGE,
            max_lifetime: DEFAULT_MAX_ASSERTION_LIFETIME,
            api_access: false,
            api_scopes: vec![],
            accept_plain_jwt: false,
            accept_id_tokens: false,
            stale_keys_lifetime: DEFAULT_STALE_KEYS_LIFETIME,
            map_registry_roles: false,
            active: true,
            managed,
            created_at: now,
            updated_at: now,
        };
        apply_changes(&mut provider, new.fields);
        this.validate_jwt_provider(&provider).await?;
        this.store
            .insert_jwt_provider(&provider)
            .await
            .map_err(conflict_naming(format!(
                "a JWT provider named {:?}",
                provider.name
            )))?;
        this.audit(AuditEvent::change(
            JWT_PROVIDER,
            &provider.name,
            None,
            Some(&provider),
        ))
        .await?;
        this.changed(format!("jwt_provider:{}", provider.name))
            .await?;
        this.commit().await?;
        Ok(provider)
    }

    pub async fn update_jwt_provider(
        &self,
        name: &str,
        changes: JwtProviderChanges,
    ) -> Result<JwtProvider, Error> {
        let this = self.begin().await?;
        this.require(Permission::ManageJwtProviders)?;
        let mut provider = this.get_jwt_provider(name).await?;
        let before = provider.clone();
        apply_changes(&mut provider, changes);
        provider.updated_at = this.clock.now().max(provider.updated_at + 1);
        this.validate_jwt_provider(&provider).await?;
        this.store.update_jwt_provider(&provider).await?;
        this.audit(AuditEvent::change(
            JWT_PROVIDER,
            name,
            Some(&before),
            Some(&provider),
        ))
        .await?;
        this.changed(format!("jwt_provider:{name}")).await?;
        this.commit().await?;
        Ok(provider)
    }

    pub async fn set_jwt_provider_managed(&self, name: &str, managed: bool) -> Result<(), Error> {
        let this = self.begin().await?;
        let mut provider = this.get_jwt_provider(name).await?;
        if provider.managed != managed {
            let before = provider.clone();
            provider.managed = managed;
            this.store.update_jwt_provider(&provider).await?;
            this.audit(AuditEvent::change(
                JWT_PROVIDER,
                name,
                Some(&before),
                Some(&provider),
            ))
            .await?;
        }
        this.commit().await
    }

    pub async fn delete_jwt_provider(&self, name: &str) -> Result<(), Error> {
        let this = self.begin().await?;
        this.require(Permission::ManageJwtProviders)?;
        let provider = this.get_jwt_provider(name).await?;
        if !this.store.delete_jwt_provider(name).await? {
            return Err(Error::NotFound(format!("JWT provider {name:?}")));
        }
        this.audit(AuditEvent::change(
            JWT_PROVIDER,
            name,
            Some(&provider),
            None,
        ))
        .await?;
        this.changed(format!("jwt_provider:{name}")).await?;
        this.commit().await
    }

    async fn validate_jwt_provider(&self, provider: &JwtProvider) -> Result<(), Error> {
        // Whoever shapes a provider that may map administrators decides who becomes one.
        if provider.map_registry_roles {
            self.require(Permission::ManageAdministrators)?;
        }
        if provider.issuer.trim().is_empty() {
            return Err(Error::validation("a JWT provider needs an issuer"));
        }
        match &provider.key_source {
            KeySource::Static(text) => {
                KeySet::from_static(text)
                    .map_err(|e| Error::validation(format!("the static key is unusable: {e}")))?;
            }
            KeySource::JwksUrl(url) | KeySource::DiscoveryUrl(url) => check_remote_url(url)?,
        }
        if provider.algorithms.is_empty() {
            return Err(Error::validation(
                "a JWT provider needs at least one algorithm",
            ));
        }
        if provider.user_claim.trim().is_empty() {
            return Err(Error::validation("the user claim cannot be empty"));
        }
        if !(1..=86_400).contains(&provider.max_age) {
            return Err(Error::validation(
                "max_age must be between 1 second and 1 day",
            ));
        }
        if !(1..=86_400).contains(&provider.max_lifetime) {
            return Err(Error::validation(
                "max_lifetime must be between 1 second and 1 day",
            ));
        }
        if !(0..=MAX_STALE_KEYS_LIFETIME).contains(&provider.stale_keys_lifetime) {
            return Err(Error::validation(format!(
                "stale_keys_lifetime must be between 0 and {MAX_STALE_KEYS_LIFETIME} seconds"
            )));
        }
        ScopeSet::from_list(&provider.api_scopes)?;
        if provider.api_access && provider.api_scopes.is_empty() {
            return Err(Error::validation(
                "a provider with API access needs the scopes its tokens may carry (api_scopes)",
            ));
        }
        for client_id in &provider.allowed_clients {
            if self.store.find_client(client_id).await?.is_none() {
                return Err(Error::validation(format!(
                    "allowed application {client_id:?} does not exist"
                )));
            }
        }
        Ok(())
    }
}

/// [`crate::remote::is_allowed`] for a URL given as text.
pub fn check_remote_url(text: &str) -> Result<(), Error> {
    let url = url::Url::parse(text)
        .map_err(|e| Error::validation(format!("{text:?} is not a URL: {e}")))?;
    if crate::remote::is_allowed(&url) {
        Ok(())
    } else {
        Err(Error::validation(format!(
            "{text} is not allowed: only https, or http to a loopback address"
        )))
    }
}

fn apply_changes(provider: &mut JwtProvider, changes: JwtProviderChanges) {
    let JwtProviderChanges {
        issuer,
        audiences,
        key_source,
        algorithms,
        user_claim,
        user_field,
        allowed_clients,
        max_age,
        max_lifetime,
        api_access,
        api_scopes,
        accept_plain_jwt,
        accept_id_tokens,
        stale_keys_lifetime,
        map_registry_roles,
        active,
    } = changes;
    if let Some(v) = map_registry_roles {
        provider.map_registry_roles = v;
    }
    if let Some(v) = accept_plain_jwt {
        provider.accept_plain_jwt = v;
    }
    if let Some(v) = accept_id_tokens {
        provider.accept_id_tokens = v;
    }
    if let Some(v) = stale_keys_lifetime {
        provider.stale_keys_lifetime = v;
    }
    if let Some(v) = issuer {
        provider.issuer = v;
    }
    if let Some(v) = audiences {
        provider.audiences = v;
    }
    if let Some(v) = key_source {
        provider.key_source = v;
    }
    if let Some(mut v) = algorithms {
        v.sort();
        v.dedup();
        provider.algorithms = v;
    }
    if let Some(v) = user_claim {
        provider.user_claim = v;
    }
    if let Some(v) = user_field {
        provider.user_field = v;
    }
    if let Some(v) = allowed_clients {
        provider.allowed_clients = v;
    }
    if let Some(v) = max_age {
        provider.max_age = v;
    }
    if let Some(v) = max_lifetime {
        provider.max_lifetime = v;
    }
    if let Some(v) = api_access {
        provider.api_access = v;
    }
    if let Some(v) = api_scopes {
        provider.api_scopes = v;
    }
    if let Some(v) = active {
        provider.active = v;
    }
}
