//! Fresh, throw-away databases for tests: a SQLite file in a temporary folder, or a PostgreSQL
//! database created for one test and dropped after it.
//!
//! PostgreSQL tests need `GATEHOUSE_TEST_POSTGRES` (an admin URL such as
//! `postgres://postgres@127.0.0.1:5432/test`). Without it they print why they were skipped —
//! except under CI (`CI` set), where a missing URL fails the run instead of hiding the tests.

use std::path::PathBuf;

use sqlx::{AssertSqlSafe, Connection, Executor, PgConnection, SqliteConnection};

/// The environment variable naming the PostgreSQL server for tests.
pub const POSTGRES_URL_VAR: &str = "GATEHOUSE_TEST_POSTGRES";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A database that exists for as long as this value does.
pub struct TestDatabase {
    pub url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    Directory(PathBuf),
    PostgresDatabase { admin_url: String, name: String },
}

impl TestDatabase {
    /// Creates a database on `backend`, or `None` (with a message on stderr) when PostgreSQL is
    /// not configured.
    pub async fn create(backend: Backend) -> Option<TestDatabase> {
        let unique = uuid::Uuid::new_v4().simple().to_string();
        match backend {
            Backend::Sqlite => {
                let dir = std::env::temp_dir().join(format!("gatehouse-test-{unique}"));
                std::fs::create_dir_all(&dir).expect("create a temporary directory");
                Some(TestDatabase {
                    url: format!("sqlite://{}", dir.join("gatehouse.db").display()),
                    cleanup: Cleanup::Directory(dir),
                })
            }
            Backend::Postgres => {
                let Ok(admin_url) = std::env::var(POSTGRES_URL_VAR) else {
                    assert!(
                        std::env::var_os("CI").is_none(),
                        "{POSTGRES_URL_VAR} must be set under CI so the PostgreSQL tests run"
                    );
                    eprintln!(
                        "skipped on PostgreSQL: set {POSTGRES_URL_VAR} (e.g. \
                         postgres://postgres@127.0.0.1:5432/test) to run it there"
                    );
                    return None;
                };
                let name = format!("gh_test_{unique}");
                let mut admin = PgConnection::connect(&admin_url)
                    .await
                    .unwrap_or_else(|e| panic!("connect to {POSTGRES_URL_VAR}: {e}"));
                admin
                    .execute(AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .await
                    .expect("create a test database");
                let mut url = url::Url::parse(&admin_url).expect("a valid PostgreSQL URL");
                url.set_path(&name);
                Some(TestDatabase {
                    url: url.to_string(),
                    cleanup: Cleanup::PostgresDatabase { admin_url, name },
                })
            }
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        match &self.cleanup {
            Cleanup::Directory(dir) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Cleanup::PostgresDatabase { admin_url, name } => {
                let (admin_url, name) = (admin_url.clone(), name.clone());
                // Drop runs inside the test's runtime, which cannot be blocked on; a thread with
                // its own small runtime removes the database.
                let _ = std::thread::spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("a runtime for cleanup");
                    runtime.block_on(async {
                        if let Ok(mut admin) = PgConnection::connect(&admin_url).await {
                            let _ = admin
                                .execute(AssertSqlSafe(format!(
                                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                                )))
                                .await;
                        }
                    });
                })
                .join();
            }
        }
    }
}

/// The write lock of a SQLite database, held by a connection of its own as a long write of
/// another process would hold it: the server's writes wait out their busy timeout, then fail.
pub struct SqliteWriteLock(SqliteConnection);

impl SqliteWriteLock {
    /// Takes the write lock of the database at `url`.
    pub async fn hold(url: &str) -> SqliteWriteLock {
        let mut connection = SqliteConnection::connect(url)
            .await
            .expect("open the SQLite database");
        connection
            .execute("BEGIN IMMEDIATE")
            .await
            .expect("take the write lock");
        SqliteWriteLock(connection)
    }

    /// Lets the lock go: closing the connection rolls its transaction back.
    pub async fn release(self) {
        self.0.close().await.expect("close the locking connection");
    }
}
