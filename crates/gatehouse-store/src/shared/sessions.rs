//! `SessionStore`: login sessions and remembered consents.

macro_rules! session_store_impl {
    ($store:ty) => {
        mod session_queries {
            use async_trait::async_trait;
            use gatehouse_core::store::{ConsentRecord, SessionRecord, SessionStore, StoreError};

            use crate::backend_error;
            use crate::rows::{ConsentRow, SessionRow};

            // The store type and its read() and write() come from the enclosing module.
            use super::*;

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
                    .execute(&mut *self.write().await?)
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
                    .fetch_optional(&mut *self.read().await?)
                    .await
                    .map_err(backend_error)?
                    .map(SessionRecord::from))
                }

                async fn take_session(
                    &self,
                    session_hash: &str,
                ) -> Result<Option<SessionRecord>, StoreError> {
                    Ok(sqlx::query_as::<_, SessionRow>(
                        "DELETE FROM sessions WHERE session_hash = $1 \
                         RETURNING session_hash, user_id, auth_time, expires_at",
                    )
                    .bind(session_hash)
                    .fetch_optional(&mut *self.write().await?)
                    .await
                    .map_err(backend_error)?
                    .map(SessionRecord::from))
                }

                async fn list_user_sessions(
                    &self,
                    user_id: &str,
                    now: i64,
                ) -> Result<Vec<SessionRecord>, StoreError> {
                    Ok(sqlx::query_as::<_, SessionRow>(
                        "SELECT session_hash, user_id, auth_time, expires_at FROM sessions \
                         WHERE user_id = $1 AND expires_at > $2 ORDER BY auth_time, session_hash",
                    )
                    .bind(user_id)
                    .bind(now)
                    .fetch_all(&mut *self.read().await?)
                    .await
                    .map_err(backend_error)?
                    .into_iter()
                    .map(SessionRecord::from)
                    .collect())
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
                    .execute(&mut *self.write().await?)
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
                    .fetch_optional(&mut *self.read().await?)
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
                    .fetch_all(&mut *self.read().await?)
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
                        .execute(&mut *self.write().await?)
                        .await
                        .map_err(backend_error)?;
                    Ok(result.rows_affected() == 1)
                }
            }
        }
    };
}
