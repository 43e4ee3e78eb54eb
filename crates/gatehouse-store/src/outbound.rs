//! Outbound OAuth records (providers and the tokens obtained for profiles), with their queries
//! written once for both backends like [`shared_store_impl!`]. Profiles and connection aliases
//! are registry entries (`entries.rs`).

use gatehouse_core::outbound::{OAuthProvider, OutboundTokenRecord};
use gatehouse_core::store::StoreError;

use crate::rows::corrupt;

macro_rules! provider_columns {
    () => {
        "name, token_url, authorization_url, client_id, client_secret_sealed, auth_method, \
         grant_type, audience, resource, username, password_sealed, signing_key_sealed, \
         signing_kid, signing_alg, signing_public_jwk, created_at, updated_at, issuer, \
         authorization_response_iss_parameter_supported"
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
            use gatehouse_core::outbound::{OAuthProvider, OutboundTokenRecord};
            use gatehouse_core::store::{OutboundStore, StoreError};

            use crate::backend_error;
            use crate::outbound::{ProviderRow, TokenRow};

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
                    .execute(&mut *self.write().await?)
                    .await
                    .map_err(backend_error)?;
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
