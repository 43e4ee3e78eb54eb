//! PostgreSQL, for several Gatehouse instances sharing one database.
//!
//! sqlx's default `sslmode` is `prefer`, which encrypts but does not verify the server; use
//! `sslmode=verify-full` in the URL in production.

use std::time::Duration;

use sqlx::postgres::PgPoolOptions;
use sqlx::{Pool, Postgres};

pub struct PostgresStore {
    pool: Pool<Postgres>,
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
        sqlx::migrate!("./migrations/postgres")
            .run(&pool)
            .await
            .map_err(|e| StoreError::Backend(format!("migration failed: {e}")))?;
        Ok(PostgresStore { pool })
    }

    fn reader(&self) -> &Pool<Postgres> {
        &self.pool
    }

    fn writer(&self) -> &Pool<Postgres> {
        &self.pool
    }
}

shared_store_impl!(PostgresStore);
