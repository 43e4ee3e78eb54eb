//! The queries, written once for both backends.
//!
//! SQLite and PostgreSQL accept the same `$n` placeholders, `ON CONFLICT` and `RETURNING`, so
//! one body serves both; the macro stamps it out for each concrete store type, which provides
//! `reader()` (a pool for reads) and `writer()` (the pool writes go through).

/// The columns of `clients`, as a literal so queries stay `&'static str`.
macro_rules! client_columns {
    () => {
        "id, client_id, name, client_type, secret_hash, redirect_uris, grant_types, \
         allowed_scopes, default_scopes, access_token_lifespan, refresh_token_lifespan, \
         token_format, run_as, active, managed, created_at, updated_at"
    };
}

macro_rules! user_columns {
    () => {
        "id, user_name, display_name, email, roles, active, password_hash, managed, created_at, \
         updated_at"
    };
}

macro_rules! shared_store_impl {
    ($store:ty) => {
        use async_trait::async_trait;
        use gatehouse_core::client::Client;
        use gatehouse_core::store::{
            AccessTokenRecord, ClientStore, KeyStore, StoreError, StoredSigningKey, TokenStore,
            UserStore,
        };
        use gatehouse_core::user::User;

        use crate::backend_error;
        use crate::rows::{
            AccessTokenRow, ClientRow, SigningKeyRow, UserRow, client_values, roles_value,
        };

        #[async_trait]
        impl ClientStore for $store {
            async fn insert_client(&self, client: &Client) -> Result<(), StoreError> {
                let values = client_values(client);
                sqlx::query(concat!(
                    "INSERT INTO clients (",
                    client_columns!(),
                    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, \
                     $15, $16, $17)"
                ))
                .bind(&client.id)
                .bind(&client.client_id)
                .bind(&client.name)
                .bind(client.client_type.as_str())
                .bind(&client.secret_hash)
                .bind(&values.redirect_uris)
                .bind(&values.grant_types)
                .bind(&values.allowed_scopes)
                .bind(&values.default_scopes)
                .bind(client.access_token_lifespan)
                .bind(client.refresh_token_lifespan)
                .bind(client.token_format.as_str())
                .bind(&client.run_as)
                .bind(client.active)
                .bind(client.managed)
                .bind(client.created_at)
                .bind(client.updated_at)
                .execute(self.writer())
                .await
                .map_err(backend_error)?;
                Ok(())
            }

            async fn update_client(&self, client: &Client) -> Result<bool, StoreError> {
                let values = client_values(client);
                let result = sqlx::query(
                    "UPDATE clients SET name = $2, client_type = $3, secret_hash = $4, \
                     redirect_uris = $5, grant_types = $6, allowed_scopes = $7, \
                     default_scopes = $8, access_token_lifespan = $9, \
                     refresh_token_lifespan = $10, token_format = $11, run_as = $12, \
                     active = $13, managed = $14, updated_at = $15 WHERE client_id = $1",
                )
                .bind(&client.client_id)
                .bind(&client.name)
                .bind(client.client_type.as_str())
                .bind(&client.secret_hash)
                .bind(&values.redirect_uris)
                .bind(&values.grant_types)
                .bind(&values.allowed_scopes)
                .bind(&values.default_scopes)
                .bind(client.access_token_lifespan)
                .bind(client.refresh_token_lifespan)
                .bind(client.token_format.as_str())
                .bind(&client.run_as)
                .bind(client.active)
                .bind(client.managed)
                .bind(client.updated_at)
                .execute(self.writer())
                .await
                .map_err(backend_error)?;
                Ok(result.rows_affected() == 1)
            }

            async fn find_client(&self, client_id: &str) -> Result<Option<Client>, StoreError> {
                sqlx::query_as::<_, ClientRow>(concat!(
                    "SELECT ",
                    client_columns!(),
                    " FROM clients WHERE client_id = $1"
                ))
                .bind(client_id)
                .fetch_optional(self.reader())
                .await
                .map_err(backend_error)?
                .map(Client::try_from)
                .transpose()
            }

            async fn list_clients(&self) -> Result<Vec<Client>, StoreError> {
                sqlx::query_as::<_, ClientRow>(concat!(
                    "SELECT ",
                    client_columns!(),
                    " FROM clients ORDER BY name, client_id"
                ))
                .fetch_all(self.reader())
                .await
                .map_err(backend_error)?
                .into_iter()
                .map(Client::try_from)
                .collect()
            }

            async fn delete_client(&self, client_id: &str) -> Result<bool, StoreError> {
                let mut transaction = self.writer().begin().await.map_err(backend_error)?;
                sqlx::query("DELETE FROM access_tokens WHERE client_id = $1")
                    .bind(client_id)
                    .execute(&mut *transaction)
                    .await
                    .map_err(backend_error)?;
                let deleted = sqlx::query("DELETE FROM clients WHERE client_id = $1")
                    .bind(client_id)
                    .execute(&mut *transaction)
                    .await
                    .map_err(backend_error)?
                    .rows_affected();
                transaction.commit().await.map_err(backend_error)?;
                Ok(deleted == 1)
            }
        }

        #[async_trait]
        impl UserStore for $store {
            async fn insert_user(&self, user: &User) -> Result<(), StoreError> {
                sqlx::query(concat!(
                    "INSERT INTO users (",
                    user_columns!(),
                    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
                ))
                .bind(&user.id)
                .bind(&user.user_name)
                .bind(&user.display_name)
                .bind(&user.email)
                .bind(roles_value(user))
                .bind(user.active)
                .bind(&user.password_hash)
                .bind(user.managed)
                .bind(user.created_at)
                .bind(user.updated_at)
                .execute(self.writer())
                .await
                .map_err(backend_error)?;
                Ok(())
            }

            async fn update_user(&self, user: &User) -> Result<bool, StoreError> {
                let result = sqlx::query(
                    "UPDATE users SET display_name = $2, email = $3, roles = $4, active = $5, \
                     password_hash = $6, managed = $7, updated_at = $8 WHERE user_name = $1",
                )
                .bind(&user.user_name)
                .bind(&user.display_name)
                .bind(&user.email)
                .bind(roles_value(user))
                .bind(user.active)
                .bind(&user.password_hash)
                .bind(user.managed)
                .bind(user.updated_at)
                .execute(self.writer())
                .await
                .map_err(backend_error)?;
                Ok(result.rows_affected() == 1)
            }

            async fn find_user_by_name(&self, user_name: &str) -> Result<Option<User>, StoreError> {
                self.find_user(
                    concat!("SELECT ", user_columns!(), " FROM users WHERE user_name = $1"),
                    user_name,
                )
                .await
            }

            async fn find_user_by_id(&self, id: &str) -> Result<Option<User>, StoreError> {
                self.find_user(
                    concat!("SELECT ", user_columns!(), " FROM users WHERE id = $1"),
                    id,
                )
                .await
            }

            async fn list_users(&self) -> Result<Vec<User>, StoreError> {
                sqlx::query_as::<_, UserRow>(concat!(
                    "SELECT ",
                    user_columns!(),
                    " FROM users ORDER BY user_name"
                ))
                .fetch_all(self.reader())
                .await
                .map_err(backend_error)?
                .into_iter()
                .map(User::try_from)
                .collect()
            }

            async fn delete_user(&self, user_name: &str) -> Result<bool, StoreError> {
                let mut transaction = self.writer().begin().await.map_err(backend_error)?;
                sqlx::query(
                    "DELETE FROM access_tokens WHERE user_id IN \
                     (SELECT id FROM users WHERE user_name = $1)",
                )
                .bind(user_name)
                .execute(&mut *transaction)
                .await
                .map_err(backend_error)?;
                let deleted = sqlx::query("DELETE FROM users WHERE user_name = $1")
                    .bind(user_name)
                    .execute(&mut *transaction)
                    .await
                    .map_err(backend_error)?
                    .rows_affected();
                transaction.commit().await.map_err(backend_error)?;
                Ok(deleted == 1)
            }
        }

        impl $store {
            async fn find_user(
                &self,
                query: &'static str,
                value: &str,
            ) -> Result<Option<User>, StoreError> {
                sqlx::query_as::<_, UserRow>(query)
                .bind(value)
                .fetch_optional(self.reader())
                .await
                .map_err(backend_error)?
                .map(User::try_from)
                .transpose()
            }
        }

        #[async_trait]
        impl TokenStore for $store {
            async fn insert_access_token(
                &self,
                token: &AccessTokenRecord,
            ) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO access_tokens (token_hash, jti, client_id, user_id, scope, \
                     issued_at, expires_at, revoked) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(&token.token_hash)
                .bind(&token.jti)
                .bind(&token.client_id)
                .bind(&token.user_id)
                .bind(&token.scope)
                .bind(token.issued_at)
                .bind(token.expires_at)
                .bind(token.revoked)
                .execute(self.writer())
                .await
                .map_err(backend_error)?;
                Ok(())
            }

            async fn find_access_token(
                &self,
                token_hash: &str,
            ) -> Result<Option<AccessTokenRecord>, StoreError> {
                Ok(sqlx::query_as::<_, AccessTokenRow>(
                    "SELECT token_hash, jti, client_id, user_id, scope, issued_at, expires_at, \
                     revoked FROM access_tokens WHERE token_hash = $1",
                )
                .bind(token_hash)
                .fetch_optional(self.reader())
                .await
                .map_err(backend_error)?
                .map(AccessTokenRecord::from))
            }

            async fn revoke_access_token(&self, token_hash: &str) -> Result<bool, StoreError> {
                let result =
                    sqlx::query("UPDATE access_tokens SET revoked = $2 WHERE token_hash = $1")
                        .bind(token_hash)
                        .bind(true)
                        .execute(self.writer())
                        .await
                        .map_err(backend_error)?;
                Ok(result.rows_affected() == 1)
            }

            async fn revoke_jwt(&self, jti: &str, expires_at: i64) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO revoked_jwts (jti, expires_at) VALUES ($1, $2) \
                     ON CONFLICT (jti) DO NOTHING",
                )
                .bind(jti)
                .bind(expires_at)
                .execute(self.writer())
                .await
                .map_err(backend_error)?;
                Ok(())
            }

            async fn is_jwt_revoked(&self, jti: &str) -> Result<bool, StoreError> {
                Ok(sqlx::query("SELECT 1 FROM revoked_jwts WHERE jti = $1")
                    .bind(jti)
                    .fetch_optional(self.reader())
                    .await
                    .map_err(backend_error)?
                    .is_some())
            }

            async fn purge_expired(&self, now: i64) -> Result<u64, StoreError> {
                let mut transaction = self.writer().begin().await.map_err(backend_error)?;
                let mut purged = 0;
                for query in [
                    "DELETE FROM access_tokens WHERE expires_at < $1",
                    "DELETE FROM revoked_jwts WHERE expires_at < $1",
                ] {
                    purged += sqlx::query(query)
                        .bind(now)
                        .execute(&mut *transaction)
                        .await
                        .map_err(backend_error)?
                        .rows_affected();
                }
                transaction.commit().await.map_err(backend_error)?;
                Ok(purged)
            }
        }

        #[async_trait]
        impl KeyStore for $store {
            async fn insert_signing_key(&self, key: &StoredSigningKey) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO signing_keys (kid, alg, private_key_sealed, public_jwk, \
                     created_at, activates_at) VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(&key.kid)
                .bind(&key.alg)
                .bind(&key.private_key_sealed)
                .bind(&key.public_jwk)
                .bind(key.created_at)
                .bind(key.activates_at)
                .execute(self.writer())
                .await
                .map_err(backend_error)?;
                Ok(())
            }

            async fn list_signing_keys(&self) -> Result<Vec<StoredSigningKey>, StoreError> {
                Ok(sqlx::query_as::<_, SigningKeyRow>(
                    "SELECT kid, alg, private_key_sealed, public_jwk, created_at, activates_at \
                     FROM signing_keys ORDER BY activates_at, created_at",
                )
                .fetch_all(self.reader())
                .await
                .map_err(backend_error)?
                .into_iter()
                .map(StoredSigningKey::from)
                .collect())
            }
        }

        #[async_trait]
        impl gatehouse_core::store::Store for $store {
            async fn ping(&self) -> Result<(), StoreError> {
                sqlx::query("SELECT 1")
                    .execute(self.reader())
                    .await
                    .map_err(backend_error)?;
                Ok(())
            }

            fn backend_name(&self) -> &'static str {
                Self::BACKEND
            }
        }
    };
}
