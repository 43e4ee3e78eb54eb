//! `ClientStore`: applications, with the index that gives each audience one application.

/// The columns of `clients` a client is written with, as a literal so queries stay
/// `&'static str`.
macro_rules! client_columns {
    () => {
        "id, client_id, name, client_type, secret_hash, redirect_uris, grant_types, \
         allowed_scopes, default_scopes, access_token_lifespan, refresh_token_lifespan, \
         token_format, run_as, active, require_pkce, allow_plain_pkce, id_token_alg, managed, \
         created_at, updated_at, jwks, jwks_uri, legacy_token_endpoint_aud, audiences, \
         introspect_any, applied, previous_secret_hash, previous_secret_expires_at, description, \
         require_pushed_authorization_requests, backchannel_logout_uri, \
         backchannel_logout_session_required, exchange_audiences, dpop_bound_access_tokens"
    };
}

/// The columns a client is read from: those it is written with, and the revocation cutoff only
/// `revoke_client_grants` writes.
macro_rules! client_read_columns {
    () => {
        concat!(client_columns!(), ", tokens_revoked_at")
    };
}

macro_rules! client_store_impl {
    ($store:ty) => {
        mod client_queries {
            use async_trait::async_trait;
            use gatehouse_core::client::Client;
            use gatehouse_core::store::{ClientStore, StoreError};

            use crate::rows::{ClientRow, client_values};
            use crate::{StoreDatabase, backend_error};

            // The store type and its read() and write() come from the enclosing module.
            use super::*;

            #[async_trait]
            impl ClientStore for $store {
                async fn insert_client(&self, client: &Client) -> Result<(), StoreError> {
                    let values = client_values(client);
                    let mut connection = self.write().await?;
                    let mut transaction = connection.begin().await?;
                    sqlx::query(concat!(
                        "INSERT INTO clients (",
                        client_columns!(),
                        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, \
                         $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29, \
                         $30, $31, $32, $33, $34)"
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
                    .bind(&client.description)
                    .bind(client.require_pushed_authorization_requests)
                    .bind(&client.backchannel_logout_uri)
                    .bind(client.backchannel_logout_session_required)
                    .bind(&values.exchange_audiences)
                    .bind(client.dpop_bound_access_tokens)
                    .execute(&mut *transaction)
                    .await
                    .map_err(backend_error)?;
                    write_audiences(&mut transaction, client).await?;
                    transaction.commit().await.map_err(backend_error)?;
                    Ok(())
                }

                async fn update_client(&self, client: &Client) -> Result<bool, StoreError> {
                    let values = client_values(client);
                    let mut connection = self.write().await?;
                    let mut transaction = connection.begin().await?;
                    let result = sqlx::query(
                        "UPDATE clients SET name = $2, client_type = $3, secret_hash = $4, \
                         redirect_uris = $5, grant_types = $6, allowed_scopes = $7, \
                         default_scopes = $8, access_token_lifespan = $9, \
                         refresh_token_lifespan = $10, token_format = $11, run_as = $12, \
                         active = $13, managed = $14, updated_at = $15, require_pkce = $16, \
                         allow_plain_pkce = $17, id_token_alg = $18, jwks = $19, jwks_uri = $20, \
                         legacy_token_endpoint_aud = $21, audiences = $22, introspect_any = $23, \
                         applied = $24, previous_secret_hash = $25, \
                         previous_secret_expires_at = $26, description = $27, \
                         require_pushed_authorization_requests = $28, backchannel_logout_uri = $29, \
                         backchannel_logout_session_required = $30, exchange_audiences = $31, \
                         dpop_bound_access_tokens = $32 WHERE client_id = $1",
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
                    .bind(&client.description)
                    .bind(client.require_pushed_authorization_requests)
                    .bind(&client.backchannel_logout_uri)
                    .bind(client.backchannel_logout_session_required)
                    .bind(&values.exchange_audiences)
                    .bind(client.dpop_bound_access_tokens)
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
                        client_read_columns!(),
                        " FROM clients WHERE client_id = \
                         (SELECT client_id FROM client_audiences WHERE audience = $1)"
                    ))
                    .bind(audience)
                    .fetch_optional(&mut *self.read().await?)
                    .await
                    .map_err(backend_error)?
                    .map(Client::try_from)
                    .transpose()
                }

                async fn find_client(&self, client_id: &str) -> Result<Option<Client>, StoreError> {
                    sqlx::query_as::<_, ClientRow>(concat!(
                        "SELECT ",
                        client_read_columns!(),
                        " FROM clients WHERE client_id = $1"
                    ))
                    .bind(client_id)
                    .fetch_optional(&mut *self.read().await?)
                    .await
                    .map_err(backend_error)?
                    .map(Client::try_from)
                    .transpose()
                }

                async fn list_clients(&self) -> Result<Vec<Client>, StoreError> {
                    sqlx::query_as::<_, ClientRow>(concat!(
                        "SELECT ",
                        client_read_columns!(),
                        " FROM clients ORDER BY name, client_id"
                    ))
                    .fetch_all(&mut *self.read().await?)
                    .await
                    .map_err(backend_error)?
                    .into_iter()
                    .map(Client::try_from)
                    .collect()
                }

                async fn delete_client(&self, client_id: &str) -> Result<bool, StoreError> {
                    let mut connection = self.write().await?;
                    let mut transaction = connection.begin().await?;
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
        }
    };
}
