//! The declarative file's `[[oauth_provider]]` sections, reconciled through the outbound
//! registry's use cases (`[[oauth_profile]]` and `[[connection_alias]]` are entries, reconciled
//! like routes).

use serde::{Deserialize, Serialize};

use super::registry::{default_auth_method, default_grant};
use super::{ClientAuthMethod, OAuthProvider, OutboundRegistry, ProviderSpec};
use crate::Error;
use crate::client::GrantType;
use crate::manifest::{Action, Apply, ApplyOptions, Change, Manifest, change, resolve};
use crate::secret::Secret;

/// A provider in the declarative file: like [`ProviderSpec`], with credentials inline or, better,
/// named by environment variable.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderEntry {
    pub name: String,
    pub token_url: String,
    pub authorization_url: Option<String>,
    pub client_id: String,
    pub client_secret: Option<String>,
    pub client_secret_env: Option<String>,
    #[serde(default = "default_auth_method")]
    pub auth_method: ClientAuthMethod,
    #[serde(default = "default_grant")]
    pub grant: GrantType,
    pub audience: Option<String>,
    pub resource: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub password_env: Option<String>,
    pub signing_alg: Option<String>,
    pub issuer: Option<String>,
    #[serde(default)]
    pub authorization_response_iss_parameter_supported: bool,
}

impl ProviderEntry {
    fn to_spec(
        &self,
        env: &(dyn Fn(&str) -> Option<String> + Sync),
    ) -> Result<ProviderSpec, Error> {
        let what = format!("OAuth provider {:?}", self.name);
        Ok(ProviderSpec {
            name: self.name.clone(),
            token_url: self.token_url.clone(),
            authorization_url: self.authorization_url.clone(),
            client_id: self.client_id.clone(),
            client_secret: resolve(&what, &self.client_secret, &self.client_secret_env, env)?,
            auth_method: self.auth_method,
            grant: self.grant,
            audience: self.audience.clone(),
            resource: self.resource.clone(),
            username: self.username.clone(),
            password: resolve(&what, &self.password, &self.password_env, env)?,
            signing_alg: self.signing_alg.clone(),
            issuer: self.issuer.clone(),
            authorization_response_iss_parameter_supported: self
                .authorization_response_iss_parameter_supported,
        })
    }
}

impl Manifest {
    /// Makes the providers match the file's `[[oauth_provider]]` sections, in the steps of
    /// `apply`. A provider that already matches is left alone, so its profiles' tokens survive
    /// every apply. Providers are never pruned.
    pub(crate) async fn apply_providers(
        &self,
        apply: &mut Apply<'_>,
        outbound: &OutboundRegistry,
        options: ApplyOptions,
        env: &(dyn Fn(&str) -> Option<String> + Sync),
    ) -> Result<(), Error> {
        for entry in &self.oauth_providers {
            let step = async {
                let spec = entry.to_spec(env)?;
                let fields = match outbound.store.find_provider(&spec.name).await? {
                    Some(current) => Some(outbound.provider_differences(&current, &spec)?),
                    None => None,
                };
                reconcile(
                    options,
                    "oauth_provider",
                    &spec.name.clone(),
                    fields,
                    async { outbound.save_provider(spec).await.map(drop) },
                )
                .await
            };
            if let Some(change) = apply
                .step("oauth_provider", &entry.name, step)
                .await?
                .flatten()
            {
                apply.changes.push(change);
            }
        }
        Ok(())
    }
}

/// Creates or updates one record. `differences` is `None` for a record not stored yet, else the
/// fields in which the stored one differs from the file.
async fn reconcile(
    options: ApplyOptions,
    kind: &'static str,
    name: &str,
    differences: Option<Vec<&'static str>>,
    save: impl Future<Output = Result<(), Error>>,
) -> Result<Option<Change>, Error> {
    let action = match &differences {
        None => Action::Create,
        Some(fields) if fields.is_empty() => return Ok(None),
        Some(_) => Action::Update,
    };
    if !options.dry_run {
        save.await?;
    }
    Ok(Some(change(
        action,
        kind,
        name,
        differences.unwrap_or_default(),
    )))
}

/// Collects the names of the fields whose check is true.
fn differing(checks: &[(&'static str, bool)]) -> Vec<&'static str> {
    checks
        .iter()
        .filter(|(_, differs)| *differs)
        .map(|(name, _)| *name)
        .collect()
}

impl OutboundRegistry {
    /// The fields in which a stored provider differs from `spec`; credentials the spec leaves
    /// out are not compared.
    fn provider_differences(
        &self,
        current: &OAuthProvider,
        spec: &ProviderSpec,
    ) -> Result<Vec<&'static str>, Error> {
        let stored = self.open_credentials(current)?;
        let changes = |desired: &Option<Secret>, stored: &Option<Secret>| {
            desired.is_some() && desired != stored
        };
        let signs = spec.auth_method == ClientAuthMethod::PrivateKeyJwt
            || spec.grant == GrantType::JwtBearer;
        Ok(differing(&[
            ("token_url", current.token_url != spec.token_url),
            (
                "authorization_url",
                current.authorization_url != spec.authorization_url,
            ),
            ("client_id", current.client_id != spec.client_id),
            (
                "client_secret",
                changes(&spec.client_secret, &stored.client_secret),
            ),
            ("auth_method", current.auth_method != spec.auth_method),
            ("grant", current.grant != spec.grant),
            ("audience", current.audience != spec.audience),
            ("resource", current.resource != spec.resource),
            ("username", current.username != spec.username),
            ("password", changes(&spec.password, &stored.password)),
            (
                "signing_alg",
                current.signing_alg != spec.signing_alg.clone().filter(|_| signs),
            ),
            ("issuer", current.issuer != spec.issuer),
            (
                "authorization_response_iss_parameter_supported",
                current.authorization_response_iss_parameter_supported
                    != spec.authorization_response_iss_parameter_supported,
            ),
        ]))
    }
}
