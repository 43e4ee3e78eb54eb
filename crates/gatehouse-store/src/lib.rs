//! The storage of Gatehouse: the [`Store`](gatehouse_core::store::Store) port implemented for
//! SQLite (the embedded default) and PostgreSQL (for several instances sharing one database).
//!
//! Invariant: this is the only crate with SQL in it. Both backends run the very same queries —
//! [`shared_store_impl!`] writes them once — and differ only in how they connect, their
//! migrations folder and how SQLite separates its single writer from its readers.

/// The `StoreTransaction` methods of a transaction type (with a `held` transaction and
/// `write()`).
macro_rules! store_transaction_impl {
    ($transaction:ty) => {
        #[async_trait::async_trait]
        impl gatehouse_core::store::StoreTransaction for $transaction {
            async fn commit(&self) -> Result<(), StoreError> {
                self.held.commit().await
            }

            async fn savepoint(&self) -> Result<(), StoreError> {
                self.run("SAVEPOINT gatehouse_step").await
            }

            async fn rollback_to_savepoint(&self) -> Result<(), StoreError> {
                self.run("ROLLBACK TO SAVEPOINT gatehouse_step").await?;
                self.run("RELEASE SAVEPOINT gatehouse_step").await
            }

            async fn release_savepoint(&self) -> Result<(), StoreError> {
                self.run("RELEASE SAVEPOINT gatehouse_step").await
            }
        }

        impl $transaction {
            async fn run(&self, statement: &'static str) -> Result<(), StoreError> {
                sqlx::query(statement)
                    .execute(&mut *self.write().await?)
                    .await
                    .map_err(crate::backend_error)?;
                Ok(())
            }
        }
    };
}

mod batch;
/// Runs a database's migrations on `$pool`, first refusing an upgrade that would have to choose
/// between users sharing an email. Emails became unique (migration 0007) because a federated
/// token naming an email must name one person; which of two people keeps an address is an
/// administrator's decision, so the upgrade stops and names them instead of dropping anyone's.
macro_rules! migrate {
    ($folder:literal, $pool:expr) => {{
        // On a new database the table does not exist yet: nothing can be shared then.
        let shared: Vec<(String, String)> = sqlx::query_as(
            "SELECT email, user_name FROM users WHERE email IN \
             (SELECT email FROM users WHERE email IS NOT NULL GROUP BY email \
             HAVING COUNT(*) > 1) ORDER BY email, user_name",
        )
        .fetch_all($pool)
        .await
        .unwrap_or_default();
        if !shared.is_empty() {
            let listed: Vec<String> = shared
                .iter()
                .map(|(email, user)| format!("{user} <{email}>"))
                .collect();
            return Err(StoreError::Backend(format!(
                "migration refused: emails must be unique, and these users share one: {}; give \
                 each a distinct email (or none) with the version in use, then upgrade",
                listed.join(", ")
            )));
        }
        sqlx::migrate!($folder)
            .run($pool)
            .await
            .map_err(|e| StoreError::Backend(format!("migration failed: {e}")))?;
    }};
}
#[macro_use]
mod entries;
#[macro_use]
mod tables;
#[macro_use]
mod shared;
#[macro_use]
mod outbound;
pub mod backup;
mod postgres;
mod rows;
#[cfg(feature = "seed")]
pub mod seed;
mod sqlite;
#[cfg(feature = "test-support")]
pub mod test_support;

use std::path::Path;
use std::sync::Arc;

use gatehouse_core::store::{Store, StoreError};

pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

/// How much a write must survive before it is acknowledged (SQLite only; PostgreSQL follows its
/// own `synchronous_commit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// A committed write survives a crash of the process (`synchronous=NORMAL` in WAL mode);
    /// a power loss may cost the last moments of commits.
    #[default]
    Process,
    /// Every commit is flushed to the disk before it is acknowledged (`synchronous=FULL`).
    Full,
}

/// The database a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location<'a> {
    /// `sqlite://PATH`: the file.
    Sqlite(&'a Path),
    /// `postgres://…` or `postgresql://…`: the whole URL.
    Postgres(&'a str),
}

impl<'a> Location<'a> {
    pub fn parse(url: &'a str) -> Result<Location<'a>, StoreError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Location::Postgres(url))
        } else if let Some(path) = url.strip_prefix("sqlite://") {
            Ok(Location::Sqlite(Path::new(path)))
        } else {
            Err(StoreError::Backend(
                "the database URL must start with sqlite:// or postgres://".into(),
            ))
        }
    }
}

/// As messages show it: a SQLite file's path, or a PostgreSQL URL without its password.
impl std::fmt::Display for Location<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let url = match self {
            Location::Sqlite(path) => return write!(f, "{}", path.display()),
            Location::Postgres(url) => *url,
        };
        let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        match authority.rsplit_once('@') {
            Some((user, host)) => {
                let user = user.split_once(':').map_or(user, |(user, _)| user);
                write!(f, "{scheme}://{user}@{host}{path}")
            }
            None => f.write_str(url),
        }
    }
}

/// Opens the database a URL names — `sqlite://PATH` or `postgres://…` — and applies its
/// migrations.
pub async fn open(url: &str, durability: Durability) -> Result<Arc<dyn Store>, StoreError> {
    match Location::parse(url)? {
        Location::Postgres(url) => Ok(Arc::new(PostgresStore::connect(url).await?)),
        Location::Sqlite(path) => Ok(Arc::new(SqliteStore::open(path, durability).await?)),
    }
}

/// Names the sqlx database a store type runs on, so shared code can be generic over executors.
trait StoreDatabase {
    type Database: sqlx::Database;
    /// What a `SELECT` ends with to lock the rows it reads until the transaction ends.
    const LOCK_ROWS: &'static str;
}

impl StoreDatabase for SqliteStore {
    type Database = sqlx::Sqlite;
    // The one writer connection runs write transactions one at a time: nothing to lock.
    const LOCK_ROWS: &'static str = "";
}

impl StoreDatabase for PostgresStore {
    type Database = sqlx::Postgres;
    const LOCK_ROWS: &'static str = " FOR UPDATE";
}

impl StoreDatabase for sqlite::SqliteTransaction {
    type Database = sqlx::Sqlite;
    const LOCK_ROWS: &'static str = "";
}

impl StoreDatabase for postgres::PostgresTransaction {
    type Database = sqlx::Postgres;
    const LOCK_ROWS: &'static str = " FOR UPDATE";
}

/// The connection a query runs on: taken from a pool for the one call, or the one an open
/// transaction holds. Queries run on `&mut *conn` either way, so every query is written once
/// for a store and for its transactions.
enum Conn<'a, DB: sqlx::Database> {
    Pooled(sqlx::pool::PoolConnection<DB>),
    Held(tokio::sync::MappedMutexGuard<'a, sqlx::Transaction<'static, DB>>),
}

impl<DB: sqlx::Database> std::ops::Deref for Conn<'_, DB> {
    type Target = DB::Connection;

    fn deref(&self) -> &DB::Connection {
        match self {
            Conn::Pooled(connection) => connection,
            Conn::Held(transaction) => transaction,
        }
    }
}

impl<DB: sqlx::Database> std::ops::DerefMut for Conn<'_, DB> {
    fn deref_mut(&mut self) -> &mut DB::Connection {
        match self {
            Conn::Pooled(connection) => connection,
            Conn::Held(transaction) => transaction,
        }
    }
}

impl<DB: sqlx::Database> Conn<'_, DB> {
    async fn acquire(pool: &sqlx::Pool<DB>) -> Result<Conn<'static, DB>, StoreError> {
        Ok(Conn::Pooled(pool.acquire().await.map_err(backend_error)?))
    }

    /// A transaction on this connection; a savepoint when it is an open transaction's, so an
    /// operation that must be atomic stays so inside a larger transaction, and its rollback
    /// undoes only its own writes.
    async fn begin(&mut self) -> Result<sqlx::Transaction<'_, DB>, StoreError> {
        sqlx::Connection::begin(&mut **self)
            .await
            .map_err(backend_error)
    }
}

/// An open transaction, shared by the calls made through a store transaction type: each call
/// holds it for its queries, one at a time.
struct Held<DB: sqlx::Database> {
    transaction: tokio::sync::Mutex<Option<sqlx::Transaction<'static, DB>>>,
}

impl<DB: sqlx::Database> Held<DB> {
    /// Begins with `statement` (`BEGIN` when `None`).
    async fn begin(
        pool: &sqlx::Pool<DB>,
        statement: Option<&'static str>,
    ) -> Result<Held<DB>, StoreError> {
        let transaction = match statement {
            Some(statement) => pool.begin_with(statement).await,
            None => pool.begin().await,
        };
        Ok(Held {
            transaction: tokio::sync::Mutex::new(Some(transaction.map_err(backend_error)?)),
        })
    }

    async fn conn(&self) -> Result<Conn<'_, DB>, StoreError> {
        tokio::sync::MutexGuard::try_map(self.transaction.lock().await, Option::as_mut)
            .map(Conn::Held)
            .map_err(|_| StoreError::Backend("the transaction has ended".into()))
    }

    async fn commit(&self) -> Result<(), StoreError> {
        let transaction = self.transaction.lock().await.take();
        transaction
            .ok_or_else(|| StoreError::Backend("the transaction has ended".into()))?
            .commit()
            .await
            .map_err(backend_error)
    }
}

fn backend_error(error: sqlx::Error) -> StoreError {
    match &error {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::Conflict(db.table().unwrap_or("record").to_owned())
        }
        _ if unavailable(&error) => StoreError::Unavailable(error.to_string()),
        _ => StoreError::Backend(error.to_string()),
    }
}

/// Whether `error` says the database cannot be reached for now, rather than that the query or
/// its data is wrong: the connection could not be made or was lost (refused, reset, TLS), no
/// pooled connection came within the pool's acquire timeout, the pool is closing, PostgreSQL is
/// shutting down, starting up or out of connection slots, or SQLite's file stayed locked by
/// another writer past the busy timeout. A retry of the same request may then succeed.
fn unavailable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_) => true,
        sqlx::Error::Database(db) => {
            if let Some(pg) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
                // Class 08 is "connection exception"; 57P01–57P03 are the server shutting down,
                // crashed, or not accepting connections yet; 53300 is too_many_connections.
                let code = pg.code();
                code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03" | "53300")
            } else if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                // SQLITE_BUSY and its extended codes, which carry it in their low byte.
                db.code()
                    .and_then(|code| code.parse::<i32>().ok())
                    .is_some_and(|code| code & 0xff == SQLITE_BUSY)
            } else {
                false
            }
        }
        _ => false,
    }
}

/// SQLite's primary result code for a database file another connection holds locked.
const SQLITE_BUSY: i32 = 5;

#[cfg(test)]
mod tests {
    use super::Location;

    #[test]
    fn database_locations_are_shown_without_credentials() {
        for (url, shown) in [
            (
                "sqlite:///var/lib/gatehouse/gatehouse.db",
                "/var/lib/gatehouse/gatehouse.db",
            ),
            (
                "postgres://gatehouse:s3cret@db.internal:5432/auth",
                "postgres://gatehouse@db.internal:5432/auth",
            ),
            ("postgresql://gh:p@ss@db/auth", "postgresql://gh@db/auth"),
            (
                "postgres://postgres@127.0.0.1/test",
                "postgres://postgres@127.0.0.1/test",
            ),
            ("postgres://db.internal/auth", "postgres://db.internal/auth"),
        ] {
            assert_eq!(Location::parse(url).unwrap().to_string(), shown, "{url}");
        }
    }
}
