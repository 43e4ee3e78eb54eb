//! SQLite, the embedded default: one file in WAL mode, a single-connection pool for writes (so
//! writers queue in the process instead of failing with `SQLITE_BUSY`) and a small pool for
//! concurrent reads.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use gatehouse_core::store::StoreError;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Pool, Sqlite};

use crate::{Conn, Durability, Held, backend_error};

pub struct SqliteStore {
    reader: Pool<Sqlite>,
    writer: Pool<Sqlite>,
    token_writer: crate::batch::TokenWriter,
    /// The shared lock on the file beside the database that keeps a restore from replacing it
    /// while this store has it open.
    _open: std::fs::File,
}

impl SqliteStore {
    const BACKEND: &'static str = "sqlite";

    pub async fn open(path: &Path, durability: Durability) -> Result<Self, StoreError> {
        let synchronous = match durability {
            Durability::Process => SqliteSynchronous::Normal,
            Durability::Full => SqliteSynchronous::Full,
        };
        let open = crate::backup::hold_open(path).await?;
        let options = SqliteConnectOptions::from_str("sqlite://")
            .map_err(backend_error)?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(synchronous)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true)
            // 1 MiB of page cache per connection (the default is 2 MiB): the hot paths are served
            // from memory caches, and five connections at the default would dominate the RSS.
            .pragma("cache_size", "-1024");
        // SQLite has no lock the migrator could take, so processes starting together on a new
        // file would each apply the same migrations; a lock on a file beside it makes them take
        // turns, and each later one finds the migrations applied. It is taken before the first
        // connection, whose pragmas (WAL on a new file) need the database to themselves too.
        let lock_path = format!("{}.migrations-lock", path.display());
        let migrations_lock = tokio::task::spawn_blocking(move || {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&lock_path)?;
            file.lock()?;
            Ok::<_, std::io::Error>(file)
        })
        .await
        .map_err(|e| StoreError::Backend(e.to_string()))?
        .map_err(|e| StoreError::Backend(format!("cannot lock for migrations: {e}")))?;
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            // A connection to a file in this process cannot have been dropped by a server while
            // it sat idle: the ping sqlx sends before handing one out would be a round trip to
            // the connection's thread on every query, for nothing.
            .test_before_acquire(false)
            .connect_with(options.clone())
            .await
            .map_err(backend_error)?;
        migrate!("./migrations/sqlite", &writer);
        drop(migrations_lock);
        let reader = SqlitePoolOptions::new()
            // Two readers: the hot paths read from memory caches, and each SQLite connection is a
            // thread with its own page cache.
            .max_connections(2)
            .test_before_acquire(false)
            .connect_with(options.read_only(true))
            .await
            .map_err(backend_error)?;
        let token_writer = crate::batch::TokenWriter::start(writer.clone());
        Ok(SqliteStore {
            reader,
            writer,
            token_writer,
            _open: open,
        })
    }

    /// One instance owns a SQLite file: there is nobody to tell.
    async fn publish(&self, _notice: &str) -> Result<(), StoreError> {
        Ok(())
    }

    async fn subscribe(&self) -> Result<Option<tokio::sync::mpsc::Receiver<String>>, StoreError> {
        Ok(None)
    }

    async fn read(&self) -> Result<Conn<'static, Sqlite>, StoreError> {
        Conn::acquire(&self.reader).await
    }

    async fn write(&self) -> Result<Conn<'static, Sqlite>, StoreError> {
        Conn::acquire(&self.writer).await
    }

    fn token_writer(&self) -> Option<&crate::batch::TokenWriter> {
        Some(&self.token_writer)
    }

    async fn begin_transaction(
        &self,
    ) -> Result<std::sync::Arc<dyn gatehouse_core::store::StoreTransaction>, StoreError> {
        Ok(std::sync::Arc::new(SqliteTransaction {
            // Taking the write lock at once: a deferred transaction that read first could
            // fail to upgrade once another process (the CLI, a server) had written.
            held: Held::begin(&self.writer, Some("BEGIN IMMEDIATE")).await?,
        }))
    }
}

impl crate::batch::BatchInsert for Pool<Sqlite> {
    type Connection = sqlx::pool::PoolConnection<Sqlite>;

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

shared_store_impl!(SqliteStore);
outbound_store_impl!(SqliteStore);
entry_store_impl!(SqliteStore);
table_store_impl!(SqliteStore);

pub(crate) use transaction::SqliteTransaction;

/// A transaction on the writer connection, which it holds until it ends: other writers queue
/// behind it, as they queue behind any write.
mod transaction {
    use gatehouse_core::store::StoreError;
    use sqlx::Sqlite;

    use crate::{Conn, Held};

    pub(crate) struct SqliteTransaction {
        pub(super) held: Held<Sqlite>,
    }

    impl SqliteTransaction {
        const BACKEND: &'static str = "sqlite";

        async fn publish(&self, _notice: &str) -> Result<(), StoreError> {
            Ok(())
        }

        async fn subscribe(
            &self,
        ) -> Result<Option<tokio::sync::mpsc::Receiver<String>>, StoreError> {
            Ok(None)
        }

        async fn read(&self) -> Result<Conn<'_, Sqlite>, StoreError> {
            self.held.conn().await
        }

        async fn write(&self) -> Result<Conn<'_, Sqlite>, StoreError> {
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

    store_transaction_impl!(SqliteTransaction);

    shared_store_impl!(SqliteTransaction);
    outbound_store_impl!(SqliteTransaction);
    entry_store_impl!(SqliteTransaction);
    table_store_impl!(SqliteTransaction);
}
