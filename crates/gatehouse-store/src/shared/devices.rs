//! `DeviceStore`: device authorizations (RFC 8628), each answered once and redeemed once.

macro_rules! device_columns {
    () => {
        "device_code_hash, user_code, client_id, scope, audience, expires_at, poll_interval, \
         last_polled_at, status, user_id, auth_time"
    };
}

macro_rules! device_store_impl {
    ($store:ty) => {
        mod device_queries {
            use async_trait::async_trait;
            use gatehouse_core::store::{
                DeviceAuthorizationRecord, DeviceStatus, DeviceStore, StoreError,
            };

            use crate::backend_error;
            use crate::rows::{DeviceAuthorizationRow, json_list};

            // The store type and its read() and write() come from the enclosing module.
            use super::*;

            #[async_trait]
            impl DeviceStore for $store {
                async fn insert_device_authorization(
                    &self,
                    authorization: &DeviceAuthorizationRecord,
                ) -> Result<(), StoreError> {
                    sqlx::query(concat!(
                        "INSERT INTO device_authorizations (",
                        device_columns!(),
                        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
                    ))
                    .bind(&authorization.device_code_hash)
                    .bind(&authorization.user_code)
                    .bind(&authorization.client_id)
                    .bind(&authorization.scope)
                    .bind(json_list(&authorization.audience))
                    .bind(authorization.expires_at)
                    .bind(authorization.interval)
                    .bind(authorization.last_polled_at)
                    .bind(authorization.status.as_str())
                    .bind(&authorization.user_id)
                    .bind(authorization.auth_time)
                    .execute(&mut *self.write().await?)
                    .await
                    .map_err(backend_error)?;
                    Ok(())
                }

                async fn find_device_authorization(
                    &self,
                    device_code_hash: &str,
                ) -> Result<Option<DeviceAuthorizationRecord>, StoreError> {
                    sqlx::query_as::<_, DeviceAuthorizationRow>(concat!(
                        "SELECT ",
                        device_columns!(),
                        " FROM device_authorizations WHERE device_code_hash = $1"
                    ))
                    .bind(device_code_hash)
                    .fetch_optional(&mut *self.read().await?)
                    .await
                    .map_err(backend_error)?
                    .map(DeviceAuthorizationRecord::try_from)
                    .transpose()
                }

                async fn find_pending_device_authorization(
                    &self,
                    user_code: &str,
                    now: i64,
                ) -> Result<Option<DeviceAuthorizationRecord>, StoreError> {
                    sqlx::query_as::<_, DeviceAuthorizationRow>(concat!(
                        "SELECT ",
                        device_columns!(),
                        " FROM device_authorizations \
                         WHERE user_code = $1 AND status = 'pending' AND expires_at > $2"
                    ))
                    .bind(user_code)
                    .bind(now)
                    .fetch_optional(&mut *self.read().await?)
                    .await
                    .map_err(backend_error)?
                    .map(DeviceAuthorizationRecord::try_from)
                    .transpose()
                }

                async fn decide_device_authorization(
                    &self,
                    user_code: &str,
                    status: DeviceStatus,
                    user_id: &str,
                    auth_time: i64,
                    now: i64,
                ) -> Result<bool, StoreError> {
                    let result = sqlx::query(
                        "UPDATE device_authorizations \
                         SET status = $2, user_id = $3, auth_time = $4 \
                         WHERE user_code = $1 AND status = 'pending' AND expires_at > $5",
                    )
                    .bind(user_code)
                    .bind(status.as_str())
                    .bind(user_id)
                    .bind(auth_time)
                    .bind(now)
                    .execute(&mut *self.write().await?)
                    .await
                    .map_err(backend_error)?;
                    Ok(result.rows_affected() == 1)
                }

                async fn record_device_poll(
                    &self,
                    device_code_hash: &str,
                    now: i64,
                    interval: i64,
                ) -> Result<(), StoreError> {
                    sqlx::query(
                        "UPDATE device_authorizations \
                         SET last_polled_at = $2, poll_interval = $3 \
                         WHERE device_code_hash = $1",
                    )
                    .bind(device_code_hash)
                    .bind(now)
                    .bind(interval)
                    .execute(&mut *self.write().await?)
                    .await
                    .map_err(backend_error)?;
                    Ok(())
                }

                async fn redeem_device_authorization(
                    &self,
                    device_code_hash: &str,
                ) -> Result<bool, StoreError> {
                    let result = sqlx::query(
                        "UPDATE device_authorizations SET status = 'redeemed' \
                         WHERE device_code_hash = $1 AND status = 'approved'",
                    )
                    .bind(device_code_hash)
                    .execute(&mut *self.write().await?)
                    .await
                    .map_err(backend_error)?;
                    Ok(result.rows_affected() == 1)
                }
            }
        }
    };
}
