//! `GrantStore`: authorization codes, refresh tokens and their rotation, and revoked grants.

macro_rules! code_columns {
    () => {
        "code_hash, grant_id, client_id, user_id, redirect_uri, scope, nonce, code_challenge, \
         code_challenge_method, auth_time, expires_at, consumed, audience, sid, dpop_jkt"
    };
}

macro_rules! refresh_columns {
    () => {
        "token_hash, grant_id, client_id, user_id, scope, auth_time, issued_at, expires_at, \
         rotated_at, revoked, audience, dpop_jkt"
    };
}

/// The refresh tokens in service of the holder `$column` names.
macro_rules! held_refresh_tokens {
    ($column:literal) => {
        concat!(
            "SELECT ",
            refresh_columns!(),
            " FROM refresh_tokens WHERE ",
            $column,
            " = $1 AND expires_at > $2 AND revoked = $3 AND rotated_at IS NULL \
             ORDER BY issued_at DESC, token_hash LIMIT $4"
        )
    };
}

macro_rules! grant_store_impl {
    ($store:ty) => {
        mod grant_queries {
            use async_trait::async_trait;
            use gatehouse_core::store::{
                AuthorizationCodeRecord, CodeRedemption, GrantStore, RefreshRotation, RefreshTokenRecord,
                StoreError, TokenHolder,
            };

            use crate::rows::{AuthorizationCodeRow, RefreshTokenRow, json_list};
            use crate::{StoreDatabase, backend_error};

            // The store type and its read() and write() come from the enclosing module.
            use super::*;

            #[async_trait]
            impl GrantStore for $store {
                async fn insert_authorization_code(
                    &self,
                    code: &AuthorizationCodeRecord,
                ) -> Result<(), StoreError> {
                    sqlx::query(concat!(
                        "INSERT INTO authorization_codes (",
                        code_columns!(),
                        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
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
                    .bind(&code.sid)
                    .bind(&code.dpop_jkt)
                    .execute(&mut *self.write().await?)
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
                    .fetch_optional(&mut *self.write().await?)
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
                    .fetch_optional(&mut *self.write().await?)
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
                    insert_refresh(&mut *self.write().await?, token).await
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
                    .fetch_optional(&mut *self.read().await?)
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
                    let mut connection = self.write().await?;
                    let mut transaction = connection.begin().await?;
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
                        drop(connection);
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
                        .fetch_optional(&mut *self.read().await?)
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
                    .execute(&mut *self.write().await?)
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
                    .execute(&mut *self.write().await?)
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
                    .fetch_one(&mut *self.read().await?)
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

                async fn revoke_client_grants(
                    &self,
                    client_id: &str,
                    cutoff: i64,
                ) -> Result<(), StoreError> {
                    let mut connection = self.write().await?;
                    let mut transaction = connection.begin().await?;
                    // Never lowered: revocations of the same application may end out of order.
                    sqlx::query(
                        "UPDATE clients SET tokens_revoked_at = $2 \
                         WHERE client_id = $1 AND tokens_revoked_at < $2",
                    )
                    .bind(client_id)
                    .bind(cutoff)
                    .execute(&mut *transaction)
                    .await
                    .map_err(backend_error)?;
                    Self::revoke_grants_in(
                        &mut transaction,
                        [
                            "INSERT INTO revoked_jwts (jti, expires_at) SELECT jti, expires_at \
                             FROM access_tokens WHERE client_id = $1 \
                             AND token_hash LIKE 'jwt:%' ON CONFLICT (jti) DO NOTHING",
                            "UPDATE access_tokens SET revoked = TRUE WHERE client_id = $1",
                            "UPDATE refresh_tokens SET revoked = TRUE WHERE client_id = $1",
                        ],
                        client_id,
                        None,
                    )
                    .await?;
                    transaction.commit().await.map_err(backend_error)?;
                    Ok(())
                }

                async fn list_held_refresh_tokens(
                    &self,
                    holder: TokenHolder<'_>,
                    now: i64,
                    limit: u64,
                ) -> Result<Vec<RefreshTokenRecord>, StoreError> {
                    self.list_held::<RefreshTokenRow, _>(
                        [held_refresh_tokens!("user_id"), held_refresh_tokens!("client_id")],
                        holder,
                        now,
                        limit,
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
                    let mut connection = self.write().await?;
                    let mut transaction = connection.begin().await?;
                    Self::revoke_grants_in(&mut transaction, queries, first, second).await?;
                    transaction.commit().await.map_err(backend_error)?;
                    Ok(())
                }

                /// Runs the statements of a revocation in `transaction`.
                async fn revoke_grants_in(
                    transaction: &mut sqlx::Transaction<'_, <$store as StoreDatabase>::Database>,
                    queries: [&'static str; 3],
                    first: &str,
                    second: Option<&str>,
                ) -> Result<(), StoreError> {
                    for query in queries {
                        let mut statement = sqlx::query(query).bind(first);
                        if let Some(second) = second {
                            statement = statement.bind(second);
                        }
                        statement
                            .execute(&mut **transaction)
                            .await
                            .map_err(backend_error)?;
                    }
                    Ok(())
                }
            }

            async fn insert_refresh<'e, E>(executor: E, token: &RefreshTokenRecord) -> Result<(), StoreError>
            where
                E: sqlx::Executor<'e, Database = <$store as StoreDatabase>::Database>,
            {
                sqlx::query(concat!(
                    "INSERT INTO refresh_tokens (",
                    refresh_columns!(),
                    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
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
                .bind(&token.dpop_jkt)
                .execute(executor)
                .await
                .map_err(backend_error)?;
                Ok(())
            }
        }
    };
}
