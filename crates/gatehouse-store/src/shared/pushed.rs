//! `PushedRequestStore`: pushed authorization requests, each used once.

macro_rules! pushed_request_store_impl {
    ($store:ty) => {
        mod pushed_request_queries {
            use async_trait::async_trait;
            use gatehouse_core::store::{PushedRequestRecord, PushedRequestStore, StoreError};

            use crate::backend_error;

            // The store type and its writer() come from the enclosing module.
            use super::*;

            #[async_trait]
            impl PushedRequestStore for $store {
                async fn insert_pushed_request(
                    &self,
                    request: &PushedRequestRecord,
                ) -> Result<(), StoreError> {
                    sqlx::query(
                        "INSERT INTO pushed_requests \
                         (request_hash, client_id, parameters, expires_at) \
                         VALUES ($1, $2, $3, $4)",
                    )
                    .bind(&request.request_hash)
                    .bind(&request.client_id)
                    .bind(&request.parameters)
                    .bind(request.expires_at)
                    .execute(&mut *self.write().await?)
                    .await
                    .map_err(backend_error)?;
                    Ok(())
                }

                async fn take_pushed_request(
                    &self,
                    request_hash: &str,
                ) -> Result<Option<PushedRequestRecord>, StoreError> {
                    // One statement: the row goes to whichever use deletes it.
                    let row = sqlx::query_as::<_, (String, String, String, i64)>(
                        "DELETE FROM pushed_requests WHERE request_hash = $1 \
                         RETURNING request_hash, client_id, parameters, expires_at",
                    )
                    .bind(request_hash)
                    .fetch_optional(&mut *self.write().await?)
                    .await
                    .map_err(backend_error)?;
                    Ok(
                        row.map(|(request_hash, client_id, parameters, expires_at)| {
                            PushedRequestRecord {
                                request_hash,
                                client_id,
                                parameters,
                                expires_at,
                            }
                        }),
                    )
                }
            }
        }
    };
}
