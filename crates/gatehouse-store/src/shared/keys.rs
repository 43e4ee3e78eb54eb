//! `KeyStore`: signing keys: the first of an algorithm, rotations and retirements.

macro_rules! key_store_impl {
    ($store:ty) => {
        mod key_queries {
            use async_trait::async_trait;
            use gatehouse_core::store::{KeyStore, StoreError, StoredSigningKey};

            use crate::rows::SigningKeyRow;
            use crate::{StoreDatabase, backend_error};

            // The store type and its read() and write() come from the enclosing module.
            use super::*;

            #[async_trait]
            impl KeyStore for $store {
                async fn insert_signing_key(
                    &self,
                    key: &StoredSigningKey,
                ) -> Result<(), StoreError> {
                    insert_signing_key(&mut *self.write().await?, key).await
                }

                async fn insert_signing_key_unless_since(
                    &self,
                    key: &StoredSigningKey,
                    since: i64,
                ) -> Result<bool, StoreError> {
                    let mut connection = self.write().await?;
                    let mut transaction = connection.begin().await?;
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
                    let mut connection = self.write().await?;
                    let mut transaction = connection.begin().await?;
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
                    Ok(
                        sqlx::query_as::<_, SigningKeyRow>(crate::rows::SELECT_SIGNING_KEYS)
                            .fetch_all(&mut *self.read().await?)
                            .await
                            .map_err(backend_error)?
                            .into_iter()
                            .map(StoredSigningKey::from)
                            .collect(),
                    )
                }
            }

            async fn insert_signing_key<'e, E>(
                executor: E,
                key: &StoredSigningKey,
            ) -> Result<(), StoreError>
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
        }
    };
}
