//! `FederationStore`: JWT providers, used assertion `jti`s and users found by email.

macro_rules! jwt_provider_columns {
    () => {
        "id, name, issuer, audiences, key_source_kind, key_source_value, algorithms, user_claim, \
         user_field, allowed_clients, max_age, api_access, api_scopes, active, managed, \
         created_at, updated_at, accept_plain_jwt, accept_id_tokens, stale_keys_lifetime, \
         max_lifetime, map_registry_roles"
    };
}

macro_rules! federation_store_impl {
    ($store:ty) => {
        mod federation_queries {
            use async_trait::async_trait;
            use gatehouse_core::store::StoreError;
            use gatehouse_core::user::User;

            use crate::backend_error;

            // The store type and its read() and write() come from the enclosing module.
            use super::*;

            #[async_trait]
            impl gatehouse_core::store::FederationStore for $store {
                async fn insert_jwt_provider(
                    &self,
                    provider: &gatehouse_core::federation::JwtProvider,
                ) -> Result<(), StoreError> {
                    let values = crate::rows::jwt_provider_values(provider);
                    sqlx::query(concat!(
                        "INSERT INTO jwt_providers (",
                        jwt_provider_columns!(),
                        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, \
                         $15, $16, $17, $18, $19, $20, $21, $22)"
                    ))
                    .bind(&provider.id)
                    .bind(&provider.name)
                    .bind(&provider.issuer)
                    .bind(&values.audiences)
                    .bind(provider.key_source.kind())
                    .bind(provider.key_source.value())
                    .bind(&values.algorithms)
                    .bind(&provider.user_claim)
                    .bind(provider.user_field.as_str())
                    .bind(&values.allowed_clients)
                    .bind(provider.max_age)
                    .bind(provider.api_access)
                    .bind(&values.api_scopes)
                    .bind(provider.active)
                    .bind(provider.managed)
                    .bind(provider.created_at)
                    .bind(provider.updated_at)
                    .bind(provider.accept_plain_jwt)
                    .bind(provider.accept_id_tokens)
                    .bind(provider.stale_keys_lifetime)
                    .bind(provider.max_lifetime)
                    .bind(provider.map_registry_roles)
                    .execute(&mut *self.write().await?)
                    .await
                    .map_err(backend_error)?;
                    Ok(())
                }

                async fn update_jwt_provider(
                    &self,
                    provider: &gatehouse_core::federation::JwtProvider,
                ) -> Result<bool, StoreError> {
                    let values = crate::rows::jwt_provider_values(provider);
                    let result = sqlx::query(
                        "UPDATE jwt_providers SET issuer = $2, audiences = $3, key_source_kind = $4, \
                         key_source_value = $5, algorithms = $6, user_claim = $7, user_field = $8, \
                         allowed_clients = $9, max_age = $10, api_access = $11, api_scopes = $12, \
                         active = $13, managed = $14, updated_at = $15, accept_plain_jwt = $16, \
                         accept_id_tokens = $17, stale_keys_lifetime = $18, max_lifetime = $19, \
                         map_registry_roles = $20 WHERE name = $1",
                    )
                    .bind(&provider.name)
                    .bind(&provider.issuer)
                    .bind(&values.audiences)
                    .bind(provider.key_source.kind())
                    .bind(provider.key_source.value())
                    .bind(&values.algorithms)
                    .bind(&provider.user_claim)
                    .bind(provider.user_field.as_str())
                    .bind(&values.allowed_clients)
                    .bind(provider.max_age)
                    .bind(provider.api_access)
                    .bind(&values.api_scopes)
                    .bind(provider.active)
                    .bind(provider.managed)
                    .bind(provider.updated_at)
                    .bind(provider.accept_plain_jwt)
                    .bind(provider.accept_id_tokens)
                    .bind(provider.stale_keys_lifetime)
                    .bind(provider.max_lifetime)
                    .bind(provider.map_registry_roles)
                    .execute(&mut *self.write().await?)
                    .await
                    .map_err(backend_error)?;
                    Ok(result.rows_affected() == 1)
                }

                async fn find_jwt_provider(
                    &self,
                    name: &str,
                ) -> Result<Option<gatehouse_core::federation::JwtProvider>, StoreError> {
                    sqlx::query_as::<_, crate::rows::JwtProviderRow>(concat!(
                        "SELECT ",
                        jwt_provider_columns!(),
                        " FROM jwt_providers WHERE name = $1"
                    ))
                    .bind(name)
                    .fetch_optional(&mut *self.read().await?)
                    .await
                    .map_err(backend_error)?
                    .map(TryInto::try_into)
                    .transpose()
                }

                async fn list_jwt_providers(
                    &self,
                ) -> Result<Vec<gatehouse_core::federation::JwtProvider>, StoreError> {
                    sqlx::query_as::<_, crate::rows::JwtProviderRow>(concat!(
                        "SELECT ",
                        jwt_provider_columns!(),
                        " FROM jwt_providers ORDER BY name"
                    ))
                    .fetch_all(&mut *self.read().await?)
                    .await
                    .map_err(backend_error)?
                    .into_iter()
                    .map(TryInto::try_into)
                    .collect()
                }

                async fn delete_jwt_provider(&self, name: &str) -> Result<bool, StoreError> {
                    let result = sqlx::query("DELETE FROM jwt_providers WHERE name = $1")
                        .bind(name)
                        .execute(&mut *self.write().await?)
                        .await
                        .map_err(backend_error)?;
                    Ok(result.rows_affected() == 1)
                }

                async fn record_assertion_use(
                    &self,
                    key: &str,
                    expires_at: i64,
                ) -> Result<bool, StoreError> {
                    let result = sqlx::query(
                        "INSERT INTO used_assertions (assertion_key, expires_at) VALUES ($1, $2) \
                         ON CONFLICT (assertion_key) DO NOTHING",
                    )
                    .bind(key)
                    .bind(expires_at)
                    .execute(&mut *self.write().await?)
                    .await
                    .map_err(backend_error)?;
                    Ok(result.rows_affected() == 1)
                }

                async fn find_user_by_email(&self, email: &str) -> Result<Option<User>, StoreError> {
                    self.find_user(
                        concat!("SELECT ", user_columns!(), " FROM users WHERE email = $1"),
                        email,
                    )
                    .await
                }
            }
        }
    };
}
