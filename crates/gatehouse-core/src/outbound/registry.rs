//! The outbound registry's use cases, shared by the CLI, the admin API, the declarative file and
//! the outbound client: providers saved and deleted, aliases resolved, credentials and tokens
//! sealed and opened. Profiles and aliases are registry entries, managed by the registry's
//! generic use cases.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::validation::{check_name, check_provider, moved_origins};
use super::{
    ASSERTION_ALGORITHMS, ClientAuthMethod, OAuthProvider, ObtainedToken, OutboundTokenRecord,
    ProviderCredentials, ResolvedAlias,
};
use crate::Error;
use crate::audit::{Actor, AuditEvent, Transacted, Transactional, Work};
use crate::client::GrantType;
use crate::clock::Clock;
use crate::entry::Catalog;
use crate::keys::{SigningAlgorithm, SigningKey};
use crate::registry::{Registry, conflict_naming};
use crate::secret::{Sealer, Secret};
use crate::store::{Store, StoredSigningKey};
use crate::user::Permission;

/// A provider as an administrator describes it, with credentials in clear. On update, a
/// credential left out keeps its stored value.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderSpec {
    pub name: String,
    pub token_url: String,
    pub authorization_url: Option<String>,
    pub client_id: String,
    #[serde(default, skip_serializing)]
    pub client_secret: Option<Secret>,
    #[serde(default = "default_auth_method")]
    pub auth_method: ClientAuthMethod,
    #[serde(default = "default_grant")]
    pub grant: GrantType,
    pub audience: Option<String>,
    pub resource: Option<String>,
    pub username: Option<String>,
    #[serde(default, skip_serializing)]
    pub password: Option<Secret>,
    /// ES256 or RS256: the algorithm of the key Gatehouse generates for `private_key_jwt` and
    /// `jwt_bearer`.
    pub signing_alg: Option<String>,
    /// The provider's issuer identifier; required for the authorization-code grant.
    pub issuer: Option<String>,
    /// Copied from the provider's metadata: its authorization responses always carry `iss`.
    #[serde(default)]
    pub authorization_response_iss_parameter_supported: bool,
}

pub(super) fn default_auth_method() -> ClientAuthMethod {
    ClientAuthMethod::ClientSecretBasic
}

pub(super) fn default_grant() -> GrantType {
    GrantType::ClientCredentials
}

/// The sealing context of one credential of one record, so a sealed value cannot be moved to
/// another record or field.
fn context(kind: &str, name: &str, field: &str) -> String {
    format!("outbound {kind} {name} {field}")
}

/// The outbound registry's use cases: shared by the CLI, the admin API and the outbound client.
#[derive(Clone)]
pub struct OutboundRegistry {
    pub(super) store: Arc<dyn Store>,
    pub(super) sealer: Arc<Sealer>,
    pub(super) clock: Arc<dyn Clock>,
    /// Who acts, and the transaction the registry works in, if any.
    work: Work,
}

impl Transactional for OutboundRegistry {
    fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    fn work(&self) -> &Work {
        &self.work
    }

    fn joined(&self, store: Arc<dyn Store>, work: Work) -> Self {
        OutboundRegistry {
            store,
            work,
            ..self.clone()
        }
    }
}

impl OutboundRegistry {
    pub fn new(store: Arc<dyn Store>, sealer: Arc<Sealer>, clock: Arc<dyn Clock>) -> Self {
        OutboundRegistry {
            store,
            sealer,
            clock,
            work: Work::new(Actor::operator("server")),
        }
    }

    /// This registry acting as `actor`, as the audit trail names it.
    pub fn as_actor(&self, actor: Actor) -> OutboundRegistry {
        OutboundRegistry {
            work: Work::new(actor),
            ..self.clone()
        }
    }

    /// This registry changing providers for the administrator `registry` acts for, as the
    /// audit trail names them: refused unless they may manage outbound OAuth, so every front
    /// end that changes providers for someone gets the same answer.
    pub fn managed_by(&self, registry: &Registry) -> Result<OutboundRegistry, Error> {
        registry.require(Permission::ManageOutbound)?;
        Ok(self.as_actor(registry.actor().clone()))
    }

    async fn begin(&self) -> Result<Transacted<OutboundRegistry>, Error> {
        Transacted::begin(self).await
    }

    /// Writes the audit event of a change (none when nothing changed) in this unit of work.
    async fn audit(&self, event: Option<AuditEvent>) -> Result<(), Error> {
        match event {
            Some(event) => self.work.audit(&*self.store, &*self.clock, event).await,
            None => Ok(()),
        }
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    pub async fn list_providers(&self) -> Result<Vec<OAuthProvider>, Error> {
        Ok(self.store.list_providers().await?)
    }

    pub async fn get_provider(&self, name: &str) -> Result<OAuthProvider, Error> {
        self.store
            .find_provider(name)
            .await?
            .ok_or_else(|| Error::NotFound(format!("OAuth provider {name:?}")))
    }

    /// Creates a provider, or replaces the one with the same name (keeping the credentials the
    /// specification leaves out). Tokens obtained under the old settings are dropped.
    ///
    /// Credentials stay bound to where they were given: when the token or authorization
    /// endpoint moves to another origin, the stored secret, password and signing key are
    /// discarded (a new key is generated), so only credentials given in the same change travel
    /// to the new origin.
    pub async fn save_provider(&self, spec: ProviderSpec) -> Result<OAuthProvider, Error> {
        let this = self.begin().await?;
        check_name("provider name", &spec.name)?;
        let now = this.clock.now();
        let existing = this.store.find_provider(&spec.name).await?;
        let moved = existing
            .as_ref()
            .and_then(|current| moved_origins(current, &spec));
        let kept = existing.clone().filter(|_| moved.is_none());
        let seal = |field: &str, value: &Option<Secret>, kept: Option<Vec<u8>>| match value {
            Some(v) => Some(this.sealer.seal(
                &context("provider", &spec.name, field),
                v.expose().as_bytes(),
            )),
            None => kept,
        };
        let provider = OAuthProvider {
            client_secret_sealed: seal(
                "client_secret",
                &spec.client_secret,
                kept.as_ref().and_then(|p| p.client_secret_sealed.clone()),
            ),
            password_sealed: seal(
                "password",
                &spec.password,
                kept.as_ref().and_then(|p| p.password_sealed.clone()),
            ),
            name: spec.name,
            token_url: spec.token_url,
            authorization_url: spec.authorization_url,
            client_id: spec.client_id,
            auth_method: spec.auth_method,
            grant: spec.grant,
            audience: spec.audience,
            resource: spec.resource,
            username: spec.username,
            signing_key_sealed: None,
            signing_kid: None,
            signing_alg: spec.signing_alg,
            signing_public_jwk: None,
            issuer: spec.issuer,
            authorization_response_iss_parameter_supported: spec
                .authorization_response_iss_parameter_supported,
            created_at: existing.as_ref().map_or(now, |p| p.created_at),
            updated_at: now,
        };
        let mut provider = provider;
        this.provide_signing_key(&mut provider, kept.as_ref())?;
        check_provider(&provider).map_err(|error| match (&moved, error) {
            (Some(field), Error::Validation(why)) => Error::validation(format!(
                "{why}: {field} moves to another origin, so the stored credentials were \
                 discarded; give them again in the same change"
            )),
            (_, error) => error,
        })?;
        match &existing {
            // A token obtained under the old settings is never used under the new ones.
            Some(_) => {
                this.store.update_provider(&provider).await?;
                for profile in this.profiles_of(&provider.name).await? {
                    this.store.delete_outbound_tokens(&profile).await?;
                }
            }
            None => this
                .store
                .insert_provider(&provider)
                .await
                .map_err(conflict_naming(format!(
                    "an OAuth provider named {:?}",
                    provider.name
                )))?,
        }
        this.audit(AuditEvent::change(
            "oauth_provider",
            &provider.name,
            existing.as_ref(),
            Some(&provider),
        ))
        .await?;
        this.commit().await?;
        Ok(provider)
    }

    /// A provider that signs (`private_key_jwt`, `jwt_bearer`) keeps its key while the
    /// algorithm stays the same; otherwise Gatehouse generates one, whose public JWK the
    /// administrator registers at the provider. The private key never leaves Gatehouse.
    fn provide_signing_key(
        &self,
        provider: &mut OAuthProvider,
        existing: Option<&OAuthProvider>,
    ) -> Result<(), Error> {
        let Some(alg) = provider.signing_alg.clone().filter(|_| provider.signs()) else {
            provider.signing_alg = None;
            return Ok(());
        };
        if let Some(kept) = existing.filter(|p| p.signing_alg.as_ref() == Some(&alg))
            && kept.signing_key_sealed.is_some()
        {
            provider.signing_key_sealed = kept.signing_key_sealed.clone();
            provider.signing_kid = kept.signing_kid.clone();
            provider.signing_public_jwk = kept.signing_public_jwk.clone();
            return Ok(());
        }
        let algorithm: SigningAlgorithm = alg.parse()?;
        if !ASSERTION_ALGORITHMS.contains(&algorithm.as_str()) {
            return Err(Error::validation(
                "signing_alg must be ES256 or RS256 when a key signs",
            ));
        }
        let now = self.clock.now();
        let (stored, _) = SigningKey::generate(algorithm, now, now, &self.sealer)?;
        provider.signing_key_sealed = Some(stored.private_key_sealed);
        provider.signing_kid = Some(stored.kid);
        provider.signing_public_jwk = Some(stored.public_jwk);
        Ok(())
    }

    /// The key that signs the provider's client assertions and JWT bearer grants.
    pub fn assertion_key(&self, provider: &OAuthProvider) -> Result<SigningKey, Error> {
        match (
            &provider.signing_key_sealed,
            &provider.signing_kid,
            &provider.signing_alg,
        ) {
            (Some(sealed), Some(kid), Some(alg)) => SigningKey::load(
                &StoredSigningKey {
                    kid: kid.clone(),
                    alg: alg.clone(),
                    private_key_sealed: sealed.clone(),
                    public_jwk: provider.signing_public_jwk.clone().unwrap_or_default(),
                    created_at: provider.created_at,
                    activates_at: provider.created_at,
                },
                &self.sealer,
            ),
            _ => Err(Error::Internal(format!(
                "OAuth provider {:?} has no signing key",
                provider.name
            ))),
        }
    }

    pub async fn delete_provider(&self, name: &str) -> Result<(), Error> {
        let this = self.begin().await?;
        let users = this.profiles_of(name).await?;
        if !users.is_empty() {
            return Err(Error::Conflict(format!(
                "OAuth provider {name:?} is used by the profiles {}",
                users.join(", ")
            )));
        }
        let provider = this.get_provider(name).await?;
        if !this.store.delete_provider(name).await? {
            return Err(Error::NotFound(format!("OAuth provider {name:?}")));
        }
        this.audit(AuditEvent::change(
            "oauth_provider",
            name,
            Some(&provider),
            None,
        ))
        .await?;
        this.commit().await
    }

    /// The provider's credentials in clear, for an exchange with it.
    pub fn open_credentials(&self, provider: &OAuthProvider) -> Result<ProviderCredentials, Error> {
        let open = |field: &str, sealed: &Option<Vec<u8>>| -> Result<Option<Secret>, Error> {
            sealed
                .as_ref()
                .map(|s| {
                    let clear = self
                        .sealer
                        .open(&context("provider", &provider.name, field), s)?;
                    String::from_utf8(clear)
                        .map(Secret::new)
                        .map_err(|_| Error::Internal("a sealed credential is not text".into()))
                })
                .transpose()
        };
        Ok(ProviderCredentials {
            client_secret: open("client_secret", &provider.client_secret_sealed)?,
            password: open("password", &provider.password_sealed)?,
        })
    }

    /// The alias with the profile and provider it names: the alias and profile from the
    /// catalog in memory, the provider from the store.
    pub async fn resolve_alias(
        &self,
        catalog: &Catalog,
        alias: &str,
    ) -> Result<ResolvedAlias, Error> {
        let alias = Catalog::find(&catalog.aliases, alias)?;
        let profile = Catalog::find(&catalog.profiles, &alias.profile)?;
        let provider = self.get_provider(&profile.provider).await?;
        Ok(ResolvedAlias {
            alias: alias.clone(),
            profile: profile.clone(),
            provider,
        })
    }

    /// The names of the profiles that name a provider, read through this unit of work.
    async fn profiles_of(&self, provider: &str) -> Result<Vec<String>, Error> {
        let catalog = Catalog::from_records(&self.store.list_entries().await?)?;
        Ok(catalog
            .profiles
            .into_iter()
            .filter(|p| p.provider == provider)
            .map(|p| p.name)
            .collect())
    }

    pub async fn find_token(
        &self,
        profile: &str,
        owner: &str,
    ) -> Result<Option<OutboundTokenRecord>, Error> {
        Ok(self.store.find_outbound_token(profile, owner).await?)
    }

    /// Seals and stores the tokens just obtained for a profile.
    pub async fn store_token(&self, token: &ObtainedToken) -> Result<(), Error> {
        let ctx = |field: &str| {
            context(
                "token",
                &format!("{} {}", token.profile, token.owner),
                field,
            )
        };
        let record = OutboundTokenRecord {
            profile: token.profile.clone(),
            owner: token.owner.clone(),
            access_token_sealed: self
                .sealer
                .seal(&ctx("access"), token.access_token.expose().as_bytes()),
            refresh_token_sealed: token
                .refresh_token
                .as_ref()
                .map(|r| self.sealer.seal(&ctx("refresh"), r.expose().as_bytes())),
            obtained_at: token.obtained_at,
            expires_at: token.expires_at,
        };
        Ok(self.store.save_outbound_token(&record).await?)
    }

    /// Opens a stored token record.
    pub fn open_token(&self, record: &OutboundTokenRecord) -> Result<ObtainedToken, Error> {
        let ctx = |field: &str| {
            context(
                "token",
                &format!("{} {}", record.profile, record.owner),
                field,
            )
        };
        let open = |field: &str, sealed: &[u8]| -> Result<Secret, Error> {
            String::from_utf8(self.sealer.open(&ctx(field), sealed)?)
                .map(Secret::new)
                .map_err(|_| Error::Internal("a sealed token is not text".into()))
        };
        Ok(ObtainedToken {
            profile: record.profile.clone(),
            owner: record.owner.clone(),
            access_token: open("access", &record.access_token_sealed)?,
            refresh_token: record
                .refresh_token_sealed
                .as_deref()
                .map(|s| open("refresh", s))
                .transpose()?,
            obtained_at: record.obtained_at,
            expires_at: record.expires_at,
        })
    }
}
