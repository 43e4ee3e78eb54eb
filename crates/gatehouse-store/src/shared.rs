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
         token_format, run_as, active, require_pkce, allow_plain_pkce, id_token_alg, managed, \
         created_at, updated_at, jwks, jwks_uri, legacy_token_endpoint_aud, audiences, \
         introspect_any, applied, previous_secret_hash, previous_secret_expires_at"
    };
}

macro_rules! user_columns {
    () => {
        "id, user_name, display_name, given_name, family_name, email, roles, active, locked_out, \
         password_hash, managed, created_at, updated_at, credential_epoch, applied"
    };
}

macro_rules! access_token_columns {
    () => {
        "token_hash, jti, client_id, user_id, scope, issued_at, expires_at, revoked, grant_id, \
         audience"
    };
}

macro_rules! code_columns {
    () => {
        "code_hash, grant_id, client_id, user_id, redirect_uri, scope, nonce, code_challenge, \
         code_challenge_method, auth_time, expires_at, consumed, audience"
    };
}

macro_rules! refresh_columns {
    () => {
        "token_hash, grant_id, client_id, user_id, scope, auth_time, issued_at, expires_at, \
         rotated_at, revoked, audience"
    };
}

macro_rules! jwt_provider_columns {
    () => {
        "id, name, issuer, audiences, key_source_kind, key_source_value, algorithms, user_claim, \
         user_field, allowed_clients, max_age, api_access, api_scopes, active, managed, \
         created_at, updated_at, accept_plain_jwt, accept_id_tokens, stale_keys_lifetime, \
         max_lifetime, map_registry_roles"
    };
}

/// The condition on `users` of [`User::is_keeping_administrator`]; `$1` is
/// [`keeping_administrator_pattern`]. Roles are a JSON array, so the quoted name matches the
/// element `admin` and nothing longer.
///
/// [`User::is_keeping_administrator`]: gatehouse_core::user::User::is_keeping_administrator
pub(crate) const KEEPING_ADMINISTRATOR: &str = "roles LIKE $1 AND active = TRUE \
    AND locked_out = FALSE AND password_hash IS NOT NULL";

pub(crate) fn keeping_administrator_pattern() -> String {
    format!("%\"{}\"%", gatehouse_core::user::ADMIN_ROLE)
}

macro_rules! shared_store_impl {
    ($store:ty) => {
        use async_trait::async_trait;
        use gatehouse_core::client::Client;
        use gatehouse_core::store::{
            AccessTokenRecord, AuthorizationCodeRecord, ClientStore, CodeRedemption,
            ConsentRecord, GrantStore, TokenFamily, KeyStore, RefreshRotation, RefreshTokenRecord,
            SessionRecord, SessionStore, StoreError, StoredSigningKey, TokenStore, UserStore,
            UserWrite,
        };
        use gatehouse_core::user::User;

        use crate::backend_error;
        use crate::StoreDatabase;
        use crate::shared::{KEEPING_ADMINISTRATOR, keeping_administrator_pattern};
        use crate::rows::{
            AccessTokenRow, AuthorizationCodeRow, ClientRow, ConsentRow, RefreshTokenRow,
            SessionRow, SigningKeyRow, UserRow, client_values, json_list, roles_value,
        };

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
                .execute(self.writer())
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
                .execute(self.writer())
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
                .fetch_optional(self.reader())
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
                .fetch_all(self.reader())
                .await
                .map_err(backend_error)?
                .into_iter()
                .map(TryInto::try_into)
                .collect()
            }

            async fn delete_jwt_provider(&self, name: &str) -> Result<bool, StoreError> {
                let result = sqlx::query("DELETE FROM jwt_providers WHERE name = $1")
                    .bind(name)
                    .execute(self.writer())
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
                .execute(self.writer())
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

        #[async_trait]
        impl ClientStore for $store {
            async fn insert_client(&self, client: &Client) -> Result<(), StoreError> {
                let values = client_values(client);
                let mut transaction = self.writer().begin().await.map_err(backend_error)?;
                sqlx::query(concat!(
                    "INSERT INTO clients (",
                    client_columns!(),
                    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, \
                     $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28)"
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
                .bind(client.require_pkce)
                .bind(client.allow_plain_pkce)
                .bind(client.id_token_alg.as_str())
                .bind(client.managed)
                .bind(client.created_at)
                .bind(client.updated_at)
                .bind(&client.jwks)
                .bind(&client.jwks_uri)
                .bind(client.legacy_token_endpoint_aud)
                .bind(&values.audiences)
                .bind(client.introspect_any)
                .bind(&client.applied)
                .bind(client.previous_secret.as_ref().map(|p| &p.hash))
                .bind(client.previous_secret.as_ref().map(|p| p.expires_at))
                .execute(&mut *transaction)
                .await
                .map_err(backend_error)?;
                write_audiences(&mut transaction, client).await?;
                transaction.commit().await.map_err(backend_error)?;
                Ok(())
            }

            async fn update_client(&self, client: &Client) -> Result<bool, StoreError> {
                let values = client_values(client);
                let mut transaction = self.writer().begin().await.map_err(backend_error)?;
                let result = sqlx::query(
                    "UPDATE clients SET name = $2, client_type = $3, secret_hash = $4, \
                     redirect_uris = $5, grant_types = $6, allowed_scopes = $7, \
                     default_scopes = $8, access_token_lifespan = $9, \
                     refresh_token_lifespan = $10, token_format = $11, run_as = $12, \
                     active = $13, managed = $14, updated_at = $15, require_pkce = $16, \
                     allow_plain_pkce = $17, id_token_alg = $18, jwks = $19, jwks_uri = $20, \
                     legacy_token_endpoint_aud = $21, audiences = $22, introspect_any = $23, \
                     applied = $24, previous_secret_hash = $25, \
                     previous_secret_expires_at = $26 WHERE client_id = $1",
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
                .bind(client.require_pkce)
                .bind(client.allow_plain_pkce)
                .bind(client.id_token_alg.as_str())
                .bind(&client.jwks)
                .bind(&client.jwks_uri)
                .bind(client.legacy_token_endpoint_aud)
                .bind(&values.audiences)
                .bind(client.introspect_any)
                .bind(&client.applied)
                .bind(client.previous_secret.as_ref().map(|p| &p.hash))
                .bind(client.previous_secret.as_ref().map(|p| p.expires_at))
                .execute(&mut *transaction)
                .await
                .map_err(backend_error)?;
                if result.rows_affected() != 1 {
                    return Ok(false);
                }
                write_audiences(&mut transaction, client).await?;
                transaction.commit().await.map_err(backend_error)?;
                Ok(true)
            }

            async fn find_client_by_audience(
                &self,
                audience: &str,
            ) -> Result<Option<Client>, StoreError> {
                sqlx::query_as::<_, ClientRow>(concat!(
                    "SELECT ",
                    client_columns!(),
                    " FROM clients WHERE client_id = \
                     (SELECT client_id FROM client_audiences WHERE audience = $1)"
                ))
                .bind(audience)
                .fetch_optional(self.reader())
                .await
                .map_err(backend_error)?
                .map(Client::try_from)
                .transpose()
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
                for query in [
                    "DELETE FROM access_tokens WHERE client_id = $1",
                    "DELETE FROM refresh_tokens WHERE client_id = $1",
                    "DELETE FROM authorization_codes WHERE client_id = $1",
                    "DELETE FROM consents WHERE client_id = $1",
                    "DELETE FROM client_audiences WHERE client_id = $1",
                ] {
                    sqlx::query(query)
                        .bind(client_id)
                        .execute(&mut *transaction)
                        .await
                        .map_err(backend_error)?;
                }
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
                    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
                ))
                .bind(&user.id)
                .bind(&user.user_name)
                .bind(&user.display_name)
                .bind(&user.given_name)
                .bind(&user.family_name)
                .bind(&user.email)
                .bind(roles_value(user))
                .bind(user.active)
                .bind(user.locked_out)
                .bind(&user.password_hash)
                .bind(user.managed)
                .bind(user.created_at)
                .bind(user.updated_at)
                .bind(user.credential_epoch)
                .bind(&user.applied)
                .execute(self.writer())
                .await
                .map_err(backend_error)?;
                Ok(())
            }

            async fn update_user(
                &self,
                user: &User,
                end_tokens: bool,
            ) -> Result<UserWrite, StoreError> {
                let mut transaction = self.writer().begin().await.map_err(backend_error)?;
                let before = Self::lock_keeping_administrators(&mut transaction).await?;
                let updated = sqlx::query(
                    "UPDATE users SET display_name = $2, email = $3, roles = $4, active = $5, \
                     password_hash = $6, managed = $7, updated_at = $8, given_name = $9, \
                     family_name = $10, locked_out = $11, credential_epoch = $12, \
                     applied = $13 WHERE user_name = $1",
                )
                .bind(&user.user_name)
                .bind(&user.display_name)
                .bind(&user.email)
                .bind(roles_value(user))
                .bind(user.active)
                .bind(&user.password_hash)
                .bind(user.managed)
                .bind(user.updated_at)
                .bind(&user.given_name)
                .bind(&user.family_name)
                .bind(user.locked_out)
                .bind(user.credential_epoch)
                .bind(&user.applied)
                .execute(&mut *transaction)
                .await
                .map_err(backend_error)?
                .rows_affected();
                if updated == 0 {
                    return Ok(UserWrite::NotFound);
                }
                if end_tokens {
                    for query in [
                        "DELETE FROM sessions WHERE user_id = $1",
                        "DELETE FROM authorization_codes WHERE user_id = $1",
                        "UPDATE refresh_tokens SET revoked = TRUE WHERE user_id = $1",
                        "UPDATE access_tokens SET revoked = TRUE WHERE user_id = $1",
                    ] {
                        sqlx::query(query)
                            .bind(&user.id)
                            .execute(&mut *transaction)
                            .await
                            .map_err(backend_error)?;
                    }
                }
                Self::commit_keeping_an_administrator(transaction, before).await
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

            async fn delete_user(&self, user_name: &str) -> Result<UserWrite, StoreError> {
                let mut transaction = self.writer().begin().await.map_err(backend_error)?;
                let before = Self::lock_keeping_administrators(&mut transaction).await?;
                for query in [
                    "DELETE FROM access_tokens WHERE user_id IN \
                     (SELECT id FROM users WHERE user_name = $1)",
                    "DELETE FROM refresh_tokens WHERE user_id IN \
                     (SELECT id FROM users WHERE user_name = $1)",
                    "DELETE FROM authorization_codes WHERE user_id IN \
                     (SELECT id FROM users WHERE user_name = $1)",
                    "DELETE FROM sessions WHERE user_id IN \
                     (SELECT id FROM users WHERE user_name = $1)",
                    "DELETE FROM consents WHERE user_id IN \
                     (SELECT id FROM users WHERE user_name = $1)",
                ] {
                    sqlx::query(query)
                        .bind(user_name)
                        .execute(&mut *transaction)
                        .await
                        .map_err(backend_error)?;
                }
                let deleted = sqlx::query("DELETE FROM users WHERE user_name = $1")
                    .bind(user_name)
                    .execute(&mut *transaction)
                    .await
                    .map_err(backend_error)?
                    .rows_affected();
                if deleted == 0 {
                    return Ok(UserWrite::NotFound);
                }
                Self::commit_keeping_an_administrator(transaction, before).await
            }
        }

        impl $store {
            /// Counts the administrators who keep the registry manageable, locking their rows
            /// until the transaction ends (PostgreSQL; SQLite's one writer connection already
            /// runs such transactions one at a time). A concurrent change that waited for the
            /// lock sees this one's outcome, so two demotions cannot both count the other.
            async fn lock_keeping_administrators(
                transaction: &mut sqlx::Transaction<'static, <$store as StoreDatabase>::Database>,
            ) -> Result<usize, StoreError> {
                let sql = format!(
                    "SELECT id FROM users WHERE {KEEPING_ADMINISTRATOR} ORDER BY id{}",
                    <$store as StoreDatabase>::LOCK_ROWS
                );
                Ok(sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(keeping_administrator_pattern())
                    .fetch_all(&mut **transaction)
                    .await
                    .map_err(backend_error)?
                    .len())
            }

            /// Commits a change to users, unless it took away the last administrator who
            /// kept the registry manageable.
            async fn commit_keeping_an_administrator(
                mut transaction: sqlx::Transaction<'static, <$store as StoreDatabase>::Database>,
                before: usize,
            ) -> Result<UserWrite, StoreError> {
                let after: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                    "SELECT COUNT(*) FROM users WHERE {KEEPING_ADMINISTRATOR}"
                )))
                .bind(keeping_administrator_pattern())
                .fetch_one(&mut *transaction)
                .await
                .map_err(backend_error)?;
                if before > 0 && after == 0 {
                    transaction.rollback().await.map_err(backend_error)?;
                    return Ok(UserWrite::LastAdministrator);
                }
                transaction.commit().await.map_err(backend_error)?;
                Ok(UserWrite::Done)
            }

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
                self.token_writer.insert(token.clone()).await
            }

            async fn find_access_token(
                &self,
                token_hash: &str,
            ) -> Result<Option<AccessTokenRecord>, StoreError> {
                Ok(sqlx::query_as::<_, AccessTokenRow>(concat!(
                    "SELECT ",
                    access_token_columns!(),
                    " FROM access_tokens WHERE token_hash = $1"
                ))
                .bind(token_hash)
                .fetch_optional(self.reader())
                .await
                .map_err(backend_error)?
                .map(AccessTokenRecord::try_from)
                .transpose()?)
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

            async fn list_revoked_jwts(&self, now: i64) -> Result<Vec<(String, i64)>, StoreError> {
                sqlx::query_as::<_, (String, i64)>(
                    "SELECT jti, expires_at FROM revoked_jwts WHERE expires_at > $1",
                )
                .bind(now)
                .fetch_all(self.reader())
                .await
                .map_err(backend_error)
            }

            async fn list_family_jwts(
                &self,
                family: TokenFamily<'_>,
                now: i64,
            ) -> Result<Vec<(String, i64)>, StoreError> {
                let query = match family {
                    TokenFamily::Grant(grant_id) => sqlx::query_as::<_, (String, i64)>(
                        "SELECT jti, expires_at FROM access_tokens WHERE grant_id = $1 \
                         AND token_hash LIKE 'jwt:%' AND expires_at > $2",
                    )
                    .bind(grant_id)
                    .bind(now),
                    TokenFamily::Consent { user_id, client_id } => {
                        sqlx::query_as::<_, (String, i64)>(
                            "SELECT jti, expires_at FROM access_tokens WHERE user_id = $1 \
                             AND client_id = $2 AND token_hash LIKE 'jwt:%' AND expires_at > $3",
                        )
                        .bind(user_id)
                        .bind(client_id)
                        .bind(now)
                    }
                };
                query.fetch_all(self.reader()).await.map_err(backend_error)
            }

            async fn purge_expired(&self, now: i64) -> Result<u64, StoreError> {
                let mut transaction = self.writer().begin().await.map_err(backend_error)?;
                let mut purged = 0;
                for query in [
                    "DELETE FROM access_tokens WHERE expires_at < $1",
                    "DELETE FROM revoked_jwts WHERE expires_at < $1",
                    "DELETE FROM authorization_codes WHERE expires_at < $1",
                    "DELETE FROM refresh_tokens WHERE expires_at < $1",
                    "UPDATE refresh_tokens SET successor = NULL, successor_until = NULL \
                     WHERE successor_until < $1",
                    "DELETE FROM sessions WHERE expires_at < $1",
                    "DELETE FROM used_assertions WHERE expires_at < $1",
                    "DELETE FROM revoked_grants WHERE expires_at < $1",
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
        impl GrantStore for $store {
            async fn insert_authorization_code(
                &self,
                code: &AuthorizationCodeRecord,
            ) -> Result<(), StoreError> {
                sqlx::query(concat!(
                    "INSERT INTO authorization_codes (",
                    code_columns!(),
                    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
                ))
                .bind(&code.code_hash)
                .bind(&code.grant_id)
                .bind(&code.client_id)
                .bind(&code.user_id)
                .bind(&code.redirect_uri)
                .bind(&code.scope)
                .bind(&code.nonce)
                .bind(&code.code_challenge)
                .bind(&code.code_challenge_method)
                .bind(code.auth_time)
                .bind(code.expires_at)
                .bind(code.consumed)
                .bind(json_list(&code.audience))
                .execute(self.writer())
                .await
                .map_err(backend_error)?;
                Ok(())
            }

            async fn redeem_authorization_code(
                &self,
                code_hash: &str,
                client_id: &str,
            ) -> Result<CodeRedemption, StoreError> {
                // The client is part of the compare-and-swap, so a code presented by another
                // client is never consumed by it.
                let redeemed = sqlx::query_as::<_, AuthorizationCodeRow>(concat!(
                    "UPDATE authorization_codes SET consumed = $2 \
                     WHERE code_hash = $1 AND consumed = $3 AND client_id = $4 RETURNING ",
                    code_columns!()
                ))
                .bind(code_hash)
                .bind(true)
                .bind(false)
                .bind(client_id)
                .fetch_optional(self.writer())
                .await
                .map_err(backend_error)?;
                if let Some(row) = redeemed {
                    return Ok(CodeRedemption::Redeemed(row.try_into()?));
                }
                let existing = sqlx::query_as::<_, AuthorizationCodeRow>(concat!(
                    "SELECT ",
                    code_columns!(),
                    " FROM authorization_codes WHERE code_hash = $1"
                ))
                .bind(code_hash)
                .fetch_optional(self.writer())
                .await
                .map_err(backend_error)?;
                Ok(match existing.map(AuthorizationCodeRecord::try_from).transpose()? {
                    Some(record) if record.client_id != client_id => CodeRedemption::OtherClient,
                    Some(record) => CodeRedemption::Replayed(record),
                    None => CodeRedemption::Unknown,
                })
            }

            async fn insert_refresh_token(
                &self,
                token: &RefreshTokenRecord,
            ) -> Result<(), StoreError> {
                insert_refresh(self.writer(), token).await
            }

            async fn find_refresh_token(
                &self,
                token_hash: &str,
            ) -> Result<Option<RefreshTokenRecord>, StoreError> {
                Ok(sqlx::query_as::<_, RefreshTokenRow>(concat!(
                    "SELECT ",
                    refresh_columns!(),
                    " FROM refresh_tokens WHERE token_hash = $1"
                ))
                .bind(token_hash)
                .fetch_optional(self.reader())
                .await
                .map_err(backend_error)?
                .map(RefreshTokenRecord::try_from)
                .transpose()?)
            }

            async fn rotate_refresh_token(
                &self,
                old_hash: &str,
                successor: &RefreshTokenRecord,
                sealed_answer: &[u8],
                now: i64,
                grace: i64,
            ) -> Result<RefreshRotation, StoreError> {
                let mut transaction = self.writer().begin().await.map_err(backend_error)?;
                let (kept, until) = if grace > 0 {
                    (Some(sealed_answer), Some(now + grace))
                } else {
                    (None, None)
                };
                // The row update is the compare-and-swap: concurrent rotations of one token
                // serialise on it, and only the first still finds it unrotated.
                let rotated = sqlx::query_as::<_, RefreshTokenRow>(concat!(
                    "UPDATE refresh_tokens SET rotated_at = $2, successor = $4, \
                     successor_until = $5 \
                     WHERE token_hash = $1 AND revoked = $3 AND expires_at > $2 \
                     AND rotated_at IS NULL RETURNING ",
                    refresh_columns!()
                ))
                .bind(old_hash)
                .bind(now)
                .bind(false)
                .bind(kept)
                .bind(until)
                .fetch_optional(&mut *transaction)
                .await
                .map_err(backend_error)?;
                let Some(rotated) = rotated else {
                    transaction.rollback().await.map_err(backend_error)?;
                    let Some(record) = self.find_refresh_token(old_hash).await? else {
                        return Ok(RefreshRotation::Unknown);
                    };
                    let kept = sqlx::query_scalar::<_, Vec<u8>>(
                        "SELECT successor FROM refresh_tokens WHERE token_hash = $1 \
                         AND revoked = $2 AND expires_at > $3 AND successor_until > $3 \
                         AND successor IS NOT NULL",
                    )
                    .bind(old_hash)
                    .bind(false)
                    .bind(now)
                    .fetch_optional(self.reader())
                    .await
                    .map_err(backend_error)?;
                    return Ok(match kept {
                        Some(sealed_answer) if grace > 0 => RefreshRotation::Repeated {
                            record,
                            sealed_answer,
                        },
                        _ => RefreshRotation::Refused(record),
                    });
                };
                insert_refresh(&mut *transaction, successor).await?;
                transaction.commit().await.map_err(backend_error)?;
                Ok(RefreshRotation::Rotated(rotated.try_into()?))
            }

            async fn keep_refresh_answer(
                &self,
                old_hash: &str,
                sealed_answer: &[u8],
            ) -> Result<(), StoreError> {
                sqlx::query(
                    "UPDATE refresh_tokens SET successor = $2 \
                     WHERE token_hash = $1 AND successor IS NOT NULL",
                )
                .bind(old_hash)
                .bind(sealed_answer)
                .execute(self.writer())
                .await
                .map_err(backend_error)?;
                Ok(())
            }

            async fn revoke_grant(
                &self,
                grant_id: &str,
                remember_until: i64,
            ) -> Result<(), StoreError> {
                // Committed on its own before the tokens are revoked: see the trait.
                sqlx::query(
                    "INSERT INTO revoked_grants (grant_id, expires_at) VALUES ($1, $2) \
                     ON CONFLICT (grant_id) DO UPDATE SET expires_at = excluded.expires_at",
                )
                .bind(grant_id)
                .bind(remember_until)
                .execute(self.writer())
                .await
                .map_err(backend_error)?;
                self.revoke_grants_where(
                    [
                        "INSERT INTO revoked_jwts (jti, expires_at) SELECT jti, expires_at \
                         FROM access_tokens WHERE grant_id = $1 AND token_hash LIKE 'jwt:%' \
                         ON CONFLICT (jti) DO NOTHING",
                        "UPDATE access_tokens SET revoked = TRUE WHERE grant_id = $1",
                        "UPDATE refresh_tokens SET revoked = TRUE WHERE grant_id = $1",
                    ],
                    grant_id,
                    None,
                )
                .await
            }

            async fn is_grant_revoked(&self, grant_id: &str) -> Result<bool, StoreError> {
                let found = sqlx::query_scalar::<_, i64>(
                    "SELECT COUNT(*) FROM revoked_grants WHERE grant_id = $1",
                )
                .bind(grant_id)
                .fetch_one(self.reader())
                .await
                .map_err(backend_error)?;
                Ok(found > 0)
            }

            async fn revoke_user_client_grants(
                &self,
                user_id: &str,
                client_id: &str,
            ) -> Result<(), StoreError> {
                self.revoke_grants_where(
                    [
                        "INSERT INTO revoked_jwts (jti, expires_at) SELECT jti, expires_at \
                         FROM access_tokens WHERE user_id = $1 AND client_id = $2 \
                         AND token_hash LIKE 'jwt:%' ON CONFLICT (jti) DO NOTHING",
                        "UPDATE access_tokens SET revoked = TRUE \
                         WHERE user_id = $1 AND client_id = $2",
                        "UPDATE refresh_tokens SET revoked = TRUE \
                         WHERE user_id = $1 AND client_id = $2",
                    ],
                    user_id,
                    Some(client_id),
                )
                .await
            }
        }

        impl $store {
            /// Runs the statements of a revocation in one transaction.
            async fn revoke_grants_where(
                &self,
                queries: [&'static str; 3],
                first: &str,
                second: Option<&str>,
            ) -> Result<(), StoreError> {
                let mut transaction = self.writer().begin().await.map_err(backend_error)?;
                for query in queries {
                    let mut statement = sqlx::query(query).bind(first);
                    if let Some(second) = second {
                        statement = statement.bind(second);
                    }
                    statement
                        .execute(&mut *transaction)
                        .await
                        .map_err(backend_error)?;
                }
                transaction.commit().await.map_err(backend_error)?;
                Ok(())
            }
        }

        /// Replaces the rows of `client_audiences` for a client inside its write: the table's
        /// primary key is what keeps an audience from belonging to two applications.
        async fn write_audiences(
            transaction: &mut sqlx::Transaction<'_, <$store as StoreDatabase>::Database>,
            client: &Client,
        ) -> Result<(), StoreError> {
            sqlx::query("DELETE FROM client_audiences WHERE client_id = $1")
                .bind(&client.client_id)
                .execute(&mut **transaction)
                .await
                .map_err(backend_error)?;
            for audience in &client.audiences {
                sqlx::query("INSERT INTO client_audiences (audience, client_id) VALUES ($1, $2)")
                    .bind(audience)
                    .bind(&client.client_id)
                    .execute(&mut **transaction)
                    .await
                    .map_err(|error| match backend_error(error) {
                        StoreError::Conflict(_) => {
                            StoreError::Conflict(format!("audience {audience:?}"))
                        }
                        other => other,
                    })?;
            }
            Ok(())
        }

        /// The bound values of one access token row.
        const ACCESS_TOKEN_COLUMNS: usize = 10;

        /// Inserts access tokens, many in one statement: the writer task's unit of work.
        async fn insert_access_tokens(
            pool: &sqlx::Pool<<$store as StoreDatabase>::Database>,
            tokens: &[AccessTokenRecord],
        ) -> Result<(), StoreError> {
            let mut sql = String::from(concat!(
                "INSERT INTO access_tokens (",
                access_token_columns!(),
                ") VALUES "
            ));
            for index in 0..tokens.len() {
                let first = index * ACCESS_TOKEN_COLUMNS;
                if index > 0 {
                    sql.push_str(", ");
                }
                sql.push('(');
                for column in 1..=ACCESS_TOKEN_COLUMNS {
                    if column > 1 {
                        sql.push_str(", ");
                    }
                    sql.push_str(&format!("${}", first + column));
                }
                sql.push(')');
            }
            // Only placeholders are spliced into the statement; every value is bound.
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for token in tokens {
                query = query
                    .bind(&token.token_hash)
                    .bind(&token.jti)
                    .bind(&token.client_id)
                    .bind(&token.user_id)
                    .bind(&token.scope)
                    .bind(token.issued_at)
                    .bind(token.expires_at)
                    .bind(token.revoked)
                    .bind(&token.grant_id)
                    .bind(json_list(&token.audience));
            }
            query.execute(pool).await.map_err(backend_error)?;
            Ok(())
        }

        impl crate::batch::BatchInsert for sqlx::Pool<<$store as StoreDatabase>::Database> {
            async fn insert_batch(&self, tokens: &[AccessTokenRecord]) -> Result<(), StoreError> {
                insert_access_tokens(self, tokens).await
            }
        }

        async fn insert_refresh<'e, E>(executor: E, token: &RefreshTokenRecord) -> Result<(), StoreError>
        where
            E: sqlx::Executor<'e, Database = <$store as StoreDatabase>::Database>,
        {
            sqlx::query(concat!(
                "INSERT INTO refresh_tokens (",
                refresh_columns!(),
                ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
            ))
            .bind(&token.token_hash)
            .bind(&token.grant_id)
            .bind(&token.client_id)
            .bind(&token.user_id)
            .bind(&token.scope)
            .bind(token.auth_time)
            .bind(token.issued_at)
            .bind(token.expires_at)
            .bind(token.rotated_at)
            .bind(token.revoked)
            .bind(json_list(&token.audience))
            .execute(executor)
            .await
            .map_err(backend_error)?;
            Ok(())
        }

        async fn insert_signing_key<'e, E>(executor: E, key: &StoredSigningKey) -> Result<(), StoreError>
        where
            E: sqlx::Executor<'e, Database = <$store as StoreDatabase>::Database>,
        {
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
            .execute(executor)
            .await
            .map_err(backend_error)?;
            Ok(())
        }

        #[async_trait]
        impl SessionStore for $store {
            async fn insert_session(&self, session: &SessionRecord) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO sessions (session_hash, user_id, auth_time, expires_at) \
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(&session.session_hash)
                .bind(&session.user_id)
                .bind(session.auth_time)
                .bind(session.expires_at)
                .execute(self.writer())
                .await
                .map_err(backend_error)?;
                Ok(())
            }

            async fn find_session(
                &self,
                session_hash: &str,
            ) -> Result<Option<SessionRecord>, StoreError> {
                Ok(sqlx::query_as::<_, SessionRow>(
                    "SELECT session_hash, user_id, auth_time, expires_at FROM sessions \
                     WHERE session_hash = $1",
                )
                .bind(session_hash)
                .fetch_optional(self.reader())
                .await
                .map_err(backend_error)?
                .map(SessionRecord::from))
            }

            async fn delete_session(&self, session_hash: &str) -> Result<(), StoreError> {
                sqlx::query("DELETE FROM sessions WHERE session_hash = $1")
                    .bind(session_hash)
                    .execute(self.writer())
                    .await
                    .map_err(backend_error)?;
                Ok(())
            }

            async fn upsert_consent(&self, consent: &ConsentRecord) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO consents (user_id, client_id, scope, granted_at) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (user_id, client_id) \
                     DO UPDATE SET scope = excluded.scope, granted_at = excluded.granted_at",
                )
                .bind(&consent.user_id)
                .bind(&consent.client_id)
                .bind(&consent.scope)
                .bind(consent.granted_at)
                .execute(self.writer())
                .await
                .map_err(backend_error)?;
                Ok(())
            }

            async fn find_consent(
                &self,
                user_id: &str,
                client_id: &str,
            ) -> Result<Option<ConsentRecord>, StoreError> {
                Ok(sqlx::query_as::<_, ConsentRow>(
                    "SELECT user_id, client_id, scope, granted_at FROM consents \
                     WHERE user_id = $1 AND client_id = $2",
                )
                .bind(user_id)
                .bind(client_id)
                .fetch_optional(self.reader())
                .await
                .map_err(backend_error)?
                .map(ConsentRecord::from))
            }

            async fn list_consents(&self, user_id: &str) -> Result<Vec<ConsentRecord>, StoreError> {
                Ok(sqlx::query_as::<_, ConsentRow>(
                    "SELECT user_id, client_id, scope, granted_at FROM consents \
                     WHERE user_id = $1 ORDER BY client_id",
                )
                .bind(user_id)
                .fetch_all(self.reader())
                .await
                .map_err(backend_error)?
                .into_iter()
                .map(ConsentRecord::from)
                .collect())
            }

            async fn delete_consent(&self, user_id: &str, client_id: &str) -> Result<bool, StoreError> {
                let result = sqlx::query("DELETE FROM consents WHERE user_id = $1 AND client_id = $2")
                    .bind(user_id)
                    .bind(client_id)
                    .execute(self.writer())
                    .await
                    .map_err(backend_error)?;
                Ok(result.rows_affected() == 1)
            }
        }

        #[async_trait]
        impl KeyStore for $store {
            async fn insert_signing_key(&self, key: &StoredSigningKey) -> Result<(), StoreError> {
                insert_signing_key(self.writer(), key).await
            }

            async fn insert_signing_key_unless_since(
                &self,
                key: &StoredSigningKey,
                since: i64,
            ) -> Result<bool, StoreError> {
                let mut transaction = self.writer().begin().await.map_err(backend_error)?;
                // Writing the algorithm's row first locks it until commit, so concurrent keys of
                // one algorithm take turns, and each turn's count sees the keys stored by the
                // turns before it.
                sqlx::query(
                    "INSERT INTO signing_key_lines (alg) VALUES ($1) \
                     ON CONFLICT (alg) DO UPDATE SET alg = excluded.alg",
                )
                .bind(&key.alg)
                .execute(&mut *transaction)
                .await
                .map_err(backend_error)?;
                let (existing,): (i64,) = sqlx::query_as(
                    "SELECT COUNT(*) FROM signing_keys WHERE alg = $1 AND activates_at >= $2",
                )
                .bind(&key.alg)
                .bind(since)
                .fetch_one(&mut *transaction)
                .await
                .map_err(backend_error)?;
                if existing > 0 {
                    transaction.rollback().await.map_err(backend_error)?;
                    return Ok(false);
                }
                insert_signing_key(&mut *transaction, key).await?;
                transaction.commit().await.map_err(backend_error)?;
                Ok(true)
            }

            async fn retire_signing_key(
                &self,
                kid: &str,
                replacement: Option<&StoredSigningKey>,
            ) -> Result<bool, StoreError> {
                let mut transaction = self.writer().begin().await.map_err(backend_error)?;
                let deleted = sqlx::query("DELETE FROM signing_keys WHERE kid = $1")
                    .bind(kid)
                    .execute(&mut *transaction)
                    .await
                    .map_err(backend_error)?
                    .rows_affected();
                if deleted == 0 {
                    transaction.rollback().await.map_err(backend_error)?;
                    return Ok(false);
                }
                if let Some(replacement) = replacement {
                    insert_signing_key(&mut *transaction, replacement).await?;
                }
                transaction.commit().await.map_err(backend_error)?;
                Ok(true)
            }

            async fn list_signing_keys(&self) -> Result<Vec<StoredSigningKey>, StoreError> {
                Ok(sqlx::query_as::<_, SigningKeyRow>(crate::rows::SELECT_SIGNING_KEYS)
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

            async fn publish_change(&self, notice: &str) -> Result<(), StoreError> {
                self.publish(notice).await
            }

            async fn subscribe_changes(
                &self,
            ) -> Result<Option<tokio::sync::mpsc::Receiver<String>>, StoreError> {
                self.subscribe().await
            }
        }
    };
}
