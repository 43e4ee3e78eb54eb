//! Outbound OAuth records (providers, profiles, connection aliases and the tokens obtained), with
//! their queries written once for both backends like [`shared_store_impl!`].

use gatehouse_core::outbound::{ConnectionAlias, OAuthProfile, OAuthProvider, OutboundTokenRecord};
use gatehouse_core::store::StoreError;

use crate::rows::{corrupt, parse_list};

macro_rules! provider_columns {
    () => {
        "name, token_url, authorization_url, client_id, client_secret_sealed, auth_method, \
         grant_type, audience, resource, username, password_sealed, signing_key_sealed, \
         signing_kid, signing_alg, signing_public_jwk, created_at, updated_at, issuer, \
         authorization_response_iss_parameter_supported"
    };
}

macro_rules! profile_columns {
    () => {
        "name, provider, scopes, per_user, created_at, updated_at"
    };
}

macro_rules! alias_columns {
    () => {
        "name, base_url, profile, allowed_roles, timeout_seconds, max_retries, created_at, \
         updated_at"
    };
}

macro_rules! outbound_token_columns {
    () => {
        "profile, owner, access_token_sealed, refresh_token_sealed, obtained_at, expires_at"
    };
}

macro_rules! outbound_store_impl {
    ($store:ty) => {
        mod outbound_queries {
            use async_trait::async_trait;
            use gatehouse_core::outbound::{
                ConnectionAlias, OAuthProfile, OAuthProvider, OutboundTokenRecord,
            };
            use gatehouse_core::store::{OutboundStore, StoreError};

            use crate::backend_error;
            use crate::outbound::{AliasRow, ProfileRow, ProviderRow, TokenRow};
            use crate::rows::json_list as list_value;

            // The store type and its read() and write() come from the enclosing module.
            use super::*;

            #[async_trait]
            impl OutboundStore for $store {
                async fn insert_provider(&self, p: &OAuthProvider) -> Result<(), StoreError> {
                    sqlx::query(concat!(
                        "INSERT INTO oauth_providers (",
                        provider_columns!(),
                        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, \
                         $15, $16, $17, $18, $19)"
                    ))
                    .bind(&p.name)
                    .bind(&p.token_url)
                    .bind(&p.authorization_url)
                    .bind(&p.client_id)
                    .bind(&p.client_secret_sealed)
                    .bind(p.auth_method.as_str())
                    .bind(p.grant.as_str())
                    .bind(&p.audience)
                    .bind(&p.resource)
                    .bind(&p.username)
                    .bind(&p.password_sealed)
                    .bind(&p.signing_key_sealed)
                    .bind(&p.signing_kid)
                    .bind(&p.signing_alg)
                    .bind(&p.signing_public_jwk)
                    .bind(p.created_at)
                    .bind(p.updated_at)
                    .bind(&p.issuer)
                    .bind(p.authorization_response_iss_parameter_supported)
                    .execute(&mut *self.write().await?)
                    .await
                    .map_err(backend_error)?;
                    Ok(())
                }

                async fn update_provider(&self, p: &OAuthProvider) -> Result<bool, StoreError> {
                    let mut connection = self.write().await?;
                    let mut transaction = connection.begin().await?;
                    let result = sqlx::query(
                        "UPDATE oauth_providers SET token_url = $2, authorization_url = $3, \
                         client_id = $4, client_secret_sealed = $5, auth_method = $6, \
                         grant_type = $7, audience = $8, resource = $9, username = $10, \
                         password_sealed = $11, signing_key_sealed = $12, signing_kid = $13, \
                         signing_alg = $14, signing_public_jwk = $15, created_at = $16, \
                         updated_at = $17, issuer = $18, \
                         authorization_response_iss_parameter_supported = $19 WHERE name = $1",
                    )
                    .bind(&p.name)
                    .bind(&p.token_url)
                    .bind(&p.authorization_url)
                    .bind(&p.client_id)
                    .bind(&p.client_secret_sealed)
                    .bind(p.auth_method.as_str())
                    .bind(p.grant.as_str())
                    .bind(&p.audience)
                    .bind(&p.resource)
                    .bind(&p.username)
                    .bind(&p.password_sealed)
                    .bind(&p.signing_key_sealed)
                    .bind(&p.signing_kid)
                    .bind(&p.signing_alg)
                    .bind(&p.signing_public_jwk)
                    .bind(p.created_at)
                    .bind(p.updated_at)
                    .bind(&p.issuer)
                    .bind(p.authorization_response_iss_parameter_supported)
                    .execute(&mut *transaction)
                    .await
                    .map_err(backend_error)?;
                    sqlx::query(
                        "DELETE FROM outbound_tokens WHERE profile IN \
                         (SELECT name FROM oauth_profiles WHERE provider = $1)",
                    )
                    .bind(&p.name)
                    .execute(&mut *transaction)
                    .await
                    .map_err(backend_error)?;
                    transaction.commit().await.map_err(backend_error)?;
                    Ok(result.rows_affected() > 0)
                }

                async fn find_provider(
                    &self,
                    name: &str,
                ) -> Result<Option<OAuthProvider>, StoreError> {
                    sqlx::query_as::<_, ProviderRow>(concat!(
                        "SELECT ",
                        provider_columns!(),
                        " FROM oauth_providers WHERE name = $1"
                    ))
                    .bind(name)
                    .fetch_optional(&mut *self.read().await?)
                    .await
                    .map_err(backend_error)?
                    .map(OAuthProvider::try_from)
                    .transpose()
                }

                async fn list_providers(&self) -> Result<Vec<OAuthProvider>, StoreError> {
                    sqlx::query_as::<_, ProviderRow>(concat!(
                        "SELECT ",
                        provider_columns!(),
                        " FROM oauth_providers ORDER BY name"
                    ))
                    .fetch_all(&mut *self.read().await?)
                    .await
                    .map_err(backend_error)?
                    .into_iter()
                    .map(OAuthProvider::try_from)
                    .collect()
                }

                async fn delete_provider(&self, name: &str) -> Result<bool, StoreError> {
                    let result = sqlx::query("DELETE FROM oauth_providers WHERE name = $1")
                        .bind(name)
                        .execute(&mut *self.write().await?)
                        .await
                        .map_err(backend_error)?;
                    Ok(result.rows_affected() > 0)
                }

                async fn insert_profile(&self, p: &OAuthProfile) -> Result<(), StoreError> {
                    sqlx::query(concat!(
                        "INSERT INTO oauth_profiles (",
                        profile_columns!(),
                        ") VALUES ($1, $2, $3, $4, $5, $6)"
                    ))
                    .bind(&p.name)
                    .bind(&p.provider)
                    .bind(list_value(&p.scopes))
                    .bind(p.per_user)
                    .bind(p.created_at)
                    .bind(p.updated_at)
                    .execute(&mut *self.write().await?)
                    .await
                    .map_err(backend_error)?;
                    Ok(())
                }

                async fn update_profile(&self, p: &OAuthProfile) -> Result<bool, StoreError> {
                    let result = sqlx::query(
                        "UPDATE oauth_profiles SET provider = $2, scopes = $3, per_user = $4, \
                         created_at = $5, updated_at = $6 WHERE name = $1",
                    )
                    .bind(&p.name)
                    .bind(&p.provider)
                    .bind(list_value(&p.scopes))
                    .bind(p.per_user)
                    .bind(p.created_at)
                    .bind(p.updated_at)
                    .execute(&mut *self.write().await?)
                    .await
                    .map_err(backend_error)?;
                    Ok(result.rows_affected() > 0)
                }

                async fn find_profile(
                    &self,
                    name: &str,
                ) -> Result<Option<OAuthProfile>, StoreError> {
                    sqlx::query_as::<_, ProfileRow>(concat!(
                        "SELECT ",
                        profile_columns!(),
                        " FROM oauth_profiles WHERE name = $1"
                    ))
                    .bind(name)
                    .fetch_optional(&mut *self.read().await?)
                    .await
                    .map_err(backend_error)?
                    .map(OAuthProfile::try_from)
                    .transpose()
                }

                async fn list_profiles(&self) -> Result<Vec<OAuthProfile>, StoreError> {
                    sqlx::query_as::<_, ProfileRow>(concat!(
                        "SELECT ",
                        profile_columns!(),
                        " FROM oauth_profiles ORDER BY name"
                    ))
                    .fetch_all(&mut *self.read().await?)
                    .await
                    .map_err(backend_error)?
                    .into_iter()
                    .map(OAuthProfile::try_from)
                    .collect()
                }

                async fn delete_profile(&self, name: &str) -> Result<bool, StoreError> {
                    let mut connection = self.write().await?;
                    let mut transaction = connection.begin().await?;
                    sqlx::query("DELETE FROM outbound_tokens WHERE profile = $1")
                        .bind(name)
                        .execute(&mut *transaction)
                        .await
                        .map_err(backend_error)?;
                    let result = sqlx::query("DELETE FROM oauth_profiles WHERE name = $1")
                        .bind(name)
                        .execute(&mut *transaction)
                        .await
                        .map_err(backend_error)?;
                    transaction.commit().await.map_err(backend_error)?;
                    Ok(result.rows_affected() > 0)
                }

                async fn insert_alias(&self, a: &ConnectionAlias) -> Result<(), StoreError> {
                    sqlx::query(concat!(
                        "INSERT INTO connection_aliases (",
                        alias_columns!(),
                        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
                    ))
                    .bind(&a.name)
                    .bind(&a.base_url)
                    .bind(&a.profile)
                    .bind(list_value(&a.allowed_roles))
                    .bind(a.timeout_seconds)
                    .bind(a.max_retries)
                    .bind(a.created_at)
                    .bind(a.updated_at)
                    .execute(&mut *self.write().await?)
                    .await
                    .map_err(backend_error)?;
                    Ok(())
                }

                async fn update_alias(&self, a: &ConnectionAlias) -> Result<bool, StoreError> {
                    let result = sqlx::query(
                        "UPDATE connection_aliases SET base_url = $2, profile = $3, \
                         allowed_roles = $4, timeout_seconds = $5, max_retries = $6, \
                         created_at = $7, updated_at = $8 WHERE name = $1",
                    )
                    .bind(&a.name)
                    .bind(&a.base_url)
                    .bind(&a.profile)
                    .bind(list_value(&a.allowed_roles))
                    .bind(a.timeout_seconds)
                    .bind(a.max_retries)
                    .bind(a.created_at)
                    .bind(a.updated_at)
                    .execute(&mut *self.write().await?)
                    .await
                    .map_err(backend_error)?;
                    Ok(result.rows_affected() > 0)
                }

                async fn find_alias(
                    &self,
                    name: &str,
                ) -> Result<Option<ConnectionAlias>, StoreError> {
                    sqlx::query_as::<_, AliasRow>(concat!(
                        "SELECT ",
                        alias_columns!(),
                        " FROM connection_aliases WHERE name = $1"
                    ))
                    .bind(name)
                    .fetch_optional(&mut *self.read().await?)
                    .await
                    .map_err(backend_error)?
                    .map(ConnectionAlias::try_from)
                    .transpose()
                }

                async fn list_aliases(&self) -> Result<Vec<ConnectionAlias>, StoreError> {
                    sqlx::query_as::<_, AliasRow>(concat!(
                        "SELECT ",
                        alias_columns!(),
                        " FROM connection_aliases ORDER BY name"
                    ))
                    .fetch_all(&mut *self.read().await?)
                    .await
                    .map_err(backend_error)?
                    .into_iter()
                    .map(ConnectionAlias::try_from)
                    .collect()
                }

                async fn delete_alias(&self, name: &str) -> Result<bool, StoreError> {
                    let result = sqlx::query("DELETE FROM connection_aliases WHERE name = $1")
                        .bind(name)
                        .execute(&mut *self.write().await?)
                        .await
                        .map_err(backend_error)?;
                    Ok(result.rows_affected() > 0)
                }

                async fn find_outbound_token(
                    &self,
                    profile: &str,
                    owner: &str,
                ) -> Result<Option<OutboundTokenRecord>, StoreError> {
                    Ok(sqlx::query_as::<_, TokenRow>(concat!(
                        "SELECT ",
                        outbound_token_columns!(),
                        " FROM outbound_tokens WHERE profile = $1 AND owner = $2"
                    ))
                    .bind(profile)
                    .bind(owner)
                    .fetch_optional(&mut *self.read().await?)
                    .await
                    .map_err(backend_error)?
                    .map(OutboundTokenRecord::from))
                }

                async fn save_outbound_token(
                    &self,
                    t: &OutboundTokenRecord,
                ) -> Result<(), StoreError> {
                    sqlx::query(concat!(
                        "INSERT INTO outbound_tokens (",
                        outbound_token_columns!(),
                        ") VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (profile, owner) DO \
                         UPDATE SET access_token_sealed = $3, refresh_token_sealed = $4, \
                         obtained_at = $5, expires_at = $6"
                    ))
                    .bind(&t.profile)
                    .bind(&t.owner)
                    .bind(&t.access_token_sealed)
                    .bind(&t.refresh_token_sealed)
                    .bind(t.obtained_at)
                    .bind(t.expires_at)
                    .execute(&mut *self.write().await?)
                    .await
                    .map_err(backend_error)?;
                    Ok(())
                }

                async fn delete_outbound_tokens(&self, profile: &str) -> Result<(), StoreError> {
                    sqlx::query("DELETE FROM outbound_tokens WHERE profile = $1")
                        .bind(profile)
                        .execute(&mut *self.write().await?)
                        .await
                        .map_err(backend_error)?;
                    Ok(())
                }
            }
        }
    };
}

#[derive(sqlx::FromRow)]
pub(crate) struct ProviderRow {
    name: String,
    token_url: String,
    authorization_url: Option<String>,
    client_id: String,
    client_secret_sealed: Option<Vec<u8>>,
    auth_method: String,
    grant_type: String,
    audience: Option<String>,
    resource: Option<String>,
    username: Option<String>,
    password_sealed: Option<Vec<u8>>,
    signing_key_sealed: Option<Vec<u8>>,
    signing_kid: Option<String>,
    signing_alg: Option<String>,
    signing_public_jwk: Option<String>,
    created_at: i64,
    updated_at: i64,
    issuer: Option<String>,
    authorization_response_iss_parameter_supported: bool,
}

impl TryFrom<ProviderRow> for OAuthProvider {
    type Error = StoreError;

    fn try_from(row: ProviderRow) -> Result<Self, StoreError> {
        Ok(OAuthProvider {
            name: row.name,
            token_url: row.token_url,
            authorization_url: row.authorization_url,
            client_id: row.client_id,
            client_secret_sealed: row.client_secret_sealed,
            auth_method: row.auth_method.parse().map_err(corrupt("auth_method"))?,
            grant: row.grant_type.parse().map_err(corrupt("grant_type"))?,
            audience: row.audience,
            resource: row.resource,
            username: row.username,
            password_sealed: row.password_sealed,
            signing_key_sealed: row.signing_key_sealed,
            signing_kid: row.signing_kid,
            signing_alg: row.signing_alg,
            signing_public_jwk: row.signing_public_jwk,
            issuer: row.issuer,
            authorization_response_iss_parameter_supported: row
                .authorization_response_iss_parameter_supported,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct ProfileRow {
    name: String,
    provider: String,
    scopes: String,
    per_user: bool,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<ProfileRow> for OAuthProfile {
    type Error = StoreError;

    fn try_from(row: ProfileRow) -> Result<Self, StoreError> {
        Ok(OAuthProfile {
            name: row.name,
            provider: row.provider,
            scopes: parse_list("scopes", &row.scopes)?,
            per_user: row.per_user,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct AliasRow {
    name: String,
    base_url: String,
    profile: String,
    allowed_roles: String,
    timeout_seconds: i64,
    max_retries: i64,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<AliasRow> for ConnectionAlias {
    type Error = StoreError;

    fn try_from(row: AliasRow) -> Result<Self, StoreError> {
        Ok(ConnectionAlias {
            name: row.name,
            base_url: row.base_url,
            profile: row.profile,
            allowed_roles: parse_list("allowed_roles", &row.allowed_roles)?,
            timeout_seconds: row.timeout_seconds,
            max_retries: row.max_retries,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct TokenRow {
    profile: String,
    owner: String,
    access_token_sealed: Vec<u8>,
    refresh_token_sealed: Option<Vec<u8>>,
    obtained_at: i64,
    expires_at: Option<i64>,
}

impl From<TokenRow> for OutboundTokenRecord {
    fn from(row: TokenRow) -> Self {
        OutboundTokenRecord {
            profile: row.profile,
            owner: row.owner,
            access_token_sealed: row.access_token_sealed,
            refresh_token_sealed: row.refresh_token_sealed,
            obtained_at: row.obtained_at,
            expires_at: row.expires_at,
        }
    }
}
