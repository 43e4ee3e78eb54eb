//! `TokenStore`: opaque access tokens (inserted in batches by the group commit), revoked JWTs
//! and the purge of what has expired.

macro_rules! access_token_columns {
    () => {
        "token_hash, jti, client_id, user_id, scope, issued_at, expires_at, revoked, grant_id, \
         audience, act, dpop_jkt"
    };
}

/// The access tokens in service of the holder `$column` names: a JWT revoked by its client is
/// in `revoked_jwts` only.
macro_rules! held_access_tokens {
    ($column:literal) => {
        concat!(
            "SELECT ",
            access_token_columns!(),
            " FROM access_tokens WHERE ",
            $column,
            " = $1 AND expires_at > $2 AND revoked = $3 AND NOT EXISTS \
             (SELECT 1 FROM revoked_jwts WHERE revoked_jwts.jti = access_tokens.jti) \
             ORDER BY issued_at DESC, token_hash LIMIT $4"
        )
    };
}

/// Deletes one slice of `$table`'s expired rows, found by their primary key `$key`.
macro_rules! purge_slice {
    ($table:literal, $key:literal) => {
        concat!(
            "DELETE FROM ",
            $table,
            " WHERE ",
            $key,
            " IN (SELECT ",
            $key,
            " FROM ",
            $table,
            " WHERE expires_at < $1 LIMIT $2)"
        )
    };
}

macro_rules! token_store_impl {
    ($store:ty) => {
        mod token_queries {
            use async_trait::async_trait;
            use gatehouse_core::store::{
                AccessTokenRecord, ActiveTokens, StoreError, TokenFamily, TokenHolder, TokenStore,
            };

            use crate::rows::{AccessTokenRow, act_value, json_list};
            use crate::{StoreDatabase, backend_error};

            // The store type and its read() and write() come from the enclosing module.
            use super::*;

            #[async_trait]
            impl TokenStore for $store {
                async fn insert_access_token(
                    &self,
                    token: &AccessTokenRecord,
                ) -> Result<(), StoreError> {
                    match self.token_writer() {
                        Some(writer) => writer.insert(token.clone()).await,
                        None => {
                            insert_access_tokens(
                                &mut *self.write().await?,
                                std::slice::from_ref(token),
                            )
                            .await
                        }
                    }
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
                    .fetch_optional(&mut *self.read().await?)
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
                            .execute(&mut *self.write().await?)
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
                    .execute(&mut *self.write().await?)
                    .await
                    .map_err(backend_error)?;
                    Ok(())
                }

                async fn is_jwt_revoked(&self, jti: &str) -> Result<bool, StoreError> {
                    Ok(sqlx::query("SELECT 1 FROM revoked_jwts WHERE jti = $1")
                        .bind(jti)
                        .fetch_optional(&mut *self.read().await?)
                        .await
                        .map_err(backend_error)?
                        .is_some())
                }

                async fn list_revoked_jwts(&self, now: i64) -> Result<Vec<(String, i64)>, StoreError> {
                    sqlx::query_as::<_, (String, i64)>(
                        "SELECT jti, expires_at FROM revoked_jwts WHERE expires_at > $1",
                    )
                    .bind(now)
                    .fetch_all(&mut *self.read().await?)
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
                        TokenFamily::Client(client_id) => sqlx::query_as::<_, (String, i64)>(
                            "SELECT jti, expires_at FROM access_tokens WHERE client_id = $1 \
                             AND token_hash LIKE 'jwt:%' AND expires_at > $2",
                        )
                        .bind(client_id)
                        .bind(now),
                    };
                    query.fetch_all(&mut *self.read().await?).await.map_err(backend_error)
                }

                async fn list_held_access_tokens(
                    &self,
                    holder: TokenHolder<'_>,
                    now: i64,
                    limit: u64,
                ) -> Result<Vec<AccessTokenRecord>, StoreError> {
                    self.list_held::<AccessTokenRow, _>(
                        [held_access_tokens!("user_id"), held_access_tokens!("client_id")],
                        holder,
                        now,
                        limit,
                    )
                    .await
                }

                async fn purge_expired(&self, now: i64) -> Result<u64, StoreError> {
                    let mut purged = 0;
                    for statement in PURGE_STATEMENTS {
                        loop {
                            // One slice a statement, each its own transaction: the writer is
                            // free between slices, so issuance waits for a slice, not the purge.
                            let slice = sqlx::query(statement)
                                .bind(now)
                                .bind(PURGE_SLICE)
                                .execute(&mut *self.write().await?)
                                .await
                                .map_err(backend_error)?
                                .rows_affected();
                            purged += slice;
                            if slice < PURGE_SLICE as u64 {
                                break;
                            }
                        }
                    }
                    Ok(purged)
                }

                async fn count_active_tokens(&self, now: i64) -> Result<ActiveTokens, StoreError> {
                    let (access, refresh) = sqlx::query_as::<_, (i64, i64)>(
                        "SELECT (SELECT COUNT(*) FROM access_tokens \
                                 WHERE expires_at > $1 AND revoked = $2), \
                                (SELECT COUNT(*) FROM refresh_tokens \
                                 WHERE expires_at > $1 AND revoked = $2 AND rotated_at IS NULL)",
                    )
                    .bind(now)
                    .bind(false)
                    .fetch_one(&mut *self.read().await?)
                    .await
                    .map_err(backend_error)?;
                    Ok(ActiveTokens {
                        access: access.try_into().unwrap_or_default(),
                        refresh: refresh.try_into().unwrap_or_default(),
                    })
                }
            }

            /// Rows one purge statement touches at most: a slice takes milliseconds, where a
            /// million expired rows in one transaction would hold the writer for seconds.
            const PURGE_SLICE: i64 = 1_000;

            /// The purge, one statement a table, each touching at most `PURGE_SLICE` rows by
            /// primary key (`$1` the time, `$2` the slice); the `expires_at` indexes find them.
            const PURGE_STATEMENTS: [&str; 10] = [
                purge_slice!("access_tokens", "token_hash"),
                purge_slice!("revoked_jwts", "jti"),
                purge_slice!("authorization_codes", "code_hash"),
                purge_slice!("refresh_tokens", "token_hash"),
                "UPDATE refresh_tokens SET successor = NULL, successor_until = NULL \
                 WHERE token_hash IN (SELECT token_hash FROM refresh_tokens \
                 WHERE successor_until < $1 LIMIT $2)",
                purge_slice!("sessions", "session_hash"),
                purge_slice!("used_assertions", "assertion_key"),
                purge_slice!("revoked_grants", "grant_id"),
                purge_slice!("pushed_requests", "request_hash"),
                purge_slice!("device_authorizations", "device_code_hash"),
            ];

            /// Inserts access tokens, many in one statement: the writer task's unit of work.
            /// The builder writes each backend's own placeholders: numbered ones (`$1`) are
            /// named parameters to SQLite, and binding a statement with a name for each of its
            /// values costs time that grows with the square of their number.
            pub(super) async fn insert_access_tokens<'e, E>(
                executor: E,
                tokens: &[AccessTokenRecord],
            ) -> Result<(), StoreError>
            where
                E: sqlx::Executor<'e, Database = <$store as StoreDatabase>::Database>,
            {
                let mut insert = sqlx::QueryBuilder::new(concat!(
                    "INSERT INTO access_tokens (",
                    access_token_columns!(),
                    ") "
                ));
                insert.push_values(tokens, |mut row, token| {
                    row.push_bind(&token.token_hash)
                        .push_bind(&token.jti)
                        .push_bind(&token.client_id)
                        .push_bind(&token.user_id)
                        .push_bind(&token.scope)
                        .push_bind(token.issued_at)
                        .push_bind(token.expires_at)
                        .push_bind(token.revoked)
                        .push_bind(&token.grant_id)
                        .push_bind(json_list(&token.audience))
                        .push_bind(act_value(token.act.as_ref()))
                        .push_bind(&token.dpop_jkt);
                });
                insert
                    .build()
                    .execute(executor)
                    .await
                    .map_err(backend_error)?;
                Ok(())
            }
        }
    };
}
