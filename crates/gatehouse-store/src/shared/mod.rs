//! The queries, written once for both backends.
//!
//! SQLite and PostgreSQL accept the same `$n` placeholders, `ON CONFLICT` and `RETURNING`, so
//! one body serves both. Each storage trait's queries are a macro in a file of their own;
//! [`shared_store_impl!`] stamps them all out for a concrete store type, which provides
//! `read()` and `write()`, the connection a read or a write runs on (see [`crate::Conn`]):
//! a pool's, or an open transaction's, so the same queries serve a store and its transactions.

#[macro_use]
mod audit;
#[macro_use]
mod clients;
#[macro_use]
mod devices;
#[macro_use]
mod federation;
#[macro_use]
mod grants;
#[macro_use]
mod held;
#[macro_use]
mod keys;
#[macro_use]
mod pushed;
#[macro_use]
mod sessions;
#[macro_use]
mod tokens;
#[macro_use]
mod users;

pub(crate) use users::{KEEPING_ADMINISTRATOR, keeping_administrator_pattern};

macro_rules! shared_store_impl {
    ($store:ty) => {
        client_store_impl!($store);
        user_store_impl!($store);
        federation_store_impl!($store);
        token_store_impl!($store);
        grant_store_impl!($store);
        held_store_impl!($store);
        pushed_request_store_impl!($store);
        device_store_impl!($store);
        session_store_impl!($store);
        key_store_impl!($store);
        audit_store_impl!($store);

        #[async_trait::async_trait]
        impl gatehouse_core::store::Store for $store {
            async fn ping(&self) -> Result<(), gatehouse_core::store::StoreError> {
                sqlx::query("SELECT 1")
                    .execute(&mut *self.read().await?)
                    .await
                    .map_err(crate::backend_error)?;
                Ok(())
            }

            fn backend_name(&self) -> &'static str {
                Self::BACKEND
            }

            async fn begin(
                &self,
            ) -> Result<
                std::sync::Arc<dyn gatehouse_core::store::StoreTransaction>,
                gatehouse_core::store::StoreError,
            > {
                self.begin_transaction().await
            }

            async fn publish_change(
                &self,
                notice: &str,
            ) -> Result<(), gatehouse_core::store::StoreError> {
                self.publish(notice).await
            }

            async fn subscribe_changes(
                &self,
            ) -> Result<
                Option<tokio::sync::mpsc::Receiver<String>>,
                gatehouse_core::store::StoreError,
            > {
                self.subscribe().await
            }
        }
    };
}
