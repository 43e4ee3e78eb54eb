//! PostgreSQL, for several Gatehouse instances sharing one database.
//!
//! sqlx's default `sslmode` is `prefer`, which encrypts but does not verify the server; use
//! `sslmode=verify-full` in the URL in production.

use std::time::Duration;

use gatehouse_core::store::StoreError;
use sqlx::postgres::{PgListener, PgPoolOptions};
use sqlx::{Pool, Postgres};

use crate::{Conn, Held, backend_error};

pub struct PostgresStore {
    pool: Pool<Postgres>,
    token_writer: crate::batch::TokenWriter,
}

impl PostgresStore {
    const BACKEND: &'static str = "postgres";

    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(5))
            .connect(url)
            .await
            .map_err(backend_error)?;
        migrate!("./migrations/postgres", &pool);
        let token_writer = crate::batch::TokenWriter::start(pool.clone());
        Ok(PostgresStore { pool, token_writer })
    }

    /// Registry changes travel between instances on this channel.
    const CHANNEL: &'static str = "gatehouse_registry";

    async fn publish(&self, notice: &str) -> Result<(), StoreError> {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(Self::CHANNEL)
            .bind(notice)
            .execute(&self.pool)
            .await
            .map_err(backend_error)?;
        Ok(())
    }

    /// Listens for other instances' notices. If the connection drops, the listener reconnects;
    /// notices sent meanwhile are lost, which the caches' short time to live makes good. The
    /// receiver owns the listening task: once it is dropped, the task ends and its connection
    /// closes.
    async fn subscribe(&self) -> Result<Option<tokio::sync::mpsc::Receiver<String>>, StoreError> {
        let mut listener = PgListener::connect_with(&self.pool)
            .await
            .map_err(backend_error)?;
        listener
            .listen(Self::CHANNEL)
            .await
            .map_err(backend_error)?;
        let (sender, receiver) = tokio::sync::mpsc::channel(256);
        tokio::spawn(async move {
            loop {
                let received = tokio::select! {
                    () = sender.closed() => return,
                    received = listener.recv() => received,
                };
                match received {
                    Ok(notification) => {
                        if sender
                            .send(notification.payload().to_owned())
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                    Err(error) => {
                        tracing::warn!(%error, "registry change listener failed; retrying");
                        tokio::select! {
                            () = sender.closed() => return,
                            () = tokio::time::sleep(Duration::from_secs(1)) => {}
                        }
                    }
                }
            }
        });
        Ok(Some(receiver))
    }

    async fn read(&self) -> Result<Conn<'static, Postgres>, StoreError> {
        Conn::acquire(&self.pool).await
    }

    async fn write(&self) -> Result<Conn<'static, Postgres>, StoreError> {
        Conn::acquire(&self.pool).await
    }

    fn token_writer(&self) -> Option<&crate::batch::TokenWriter> {
        Some(&self.token_writer)
    }

    async fn begin_transaction(
        &self,
    ) -> Result<std::sync::Arc<dyn gatehouse_core::store::StoreTransaction>, StoreError> {
        Ok(std::sync::Arc::new(PostgresTransaction {
            held: Held::begin(&self.pool, None).await?,
        }))
    }
}

impl crate::batch::BatchInsert for Pool<Postgres> {
    type Connection = sqlx::pool::PoolConnection<Postgres>;

    async fn connect(&self) -> Result<Self::Connection, StoreError> {
        self.acquire().await.map_err(backend_error)
    }

    async fn insert_batch(
        connection: &mut Self::Connection,
        tokens: &[gatehouse_core::store::AccessTokenRecord],
    ) -> Result<(), StoreError> {
        token_queries::insert_access_tokens(&mut **connection, tokens).await
    }
}

shared_store_impl!(PostgresStore);
outbound_store_impl!(PostgresStore);
entry_store_impl!(PostgresStore);
table_store_impl!(PostgresStore);

pub(crate) use transaction::PostgresTransaction;

/// A transaction on one pooled connection.
mod transaction {
    use gatehouse_core::store::StoreError;
    use sqlx::Postgres;

    use crate::{Conn, Held, backend_error};

    pub(crate) struct PostgresTransaction {
        pub(super) held: Held<Postgres>,
    }

    impl PostgresTransaction {
        const BACKEND: &'static str = "postgres";

        /// A notice sent inside a transaction is delivered when it commits, and never if it
        /// rolls back: other instances hear of exactly the changes that happened.
        async fn publish(&self, notice: &str) -> Result<(), StoreError> {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(super::PostgresStore::CHANNEL)
                .bind(notice)
                .execute(&mut *self.write().await?)
                .await
                .map_err(backend_error)?;
            Ok(())
        }

        async fn subscribe(
            &self,
        ) -> Result<Option<tokio::sync::mpsc::Receiver<String>>, StoreError> {
            Ok(None)
        }

        async fn read(&self) -> Result<Conn<'_, Postgres>, StoreError> {
            self.held.conn().await
        }

        async fn write(&self) -> Result<Conn<'_, Postgres>, StoreError> {
            self.held.conn().await
        }

        /// Tokens written in a transaction commit with it, not with the group commit's batch.
        fn token_writer(&self) -> Option<&crate::batch::TokenWriter> {
            None
        }

        async fn begin_transaction(
            &self,
        ) -> Result<std::sync::Arc<dyn gatehouse_core::store::StoreTransaction>, StoreError>
        {
            Err(StoreError::Backend("a transaction is already open".into()))
        }
    }

    store_transaction_impl!(PostgresTransaction);

    shared_store_impl!(PostgresTransaction);
    outbound_store_impl!(PostgresTransaction);
    entry_store_impl!(PostgresTransaction);
    table_store_impl!(PostgresTransaction);
}
