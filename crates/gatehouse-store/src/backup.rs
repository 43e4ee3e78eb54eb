//! Copies of a SQLite database: a consistent backup of a file a server is writing, and putting
//! one back. (PostgreSQL has `pg_dump` and `pg_restore` for this.)
//!
//! Every process that opens a SQLite database holds a shared lock on a file beside it
//! (`PATH.lock`) for as long as it has the database open. A restore takes that lock exclusively:
//! it never replaces a database under a running server or command, and a server starting
//! meanwhile waits until the restore is done.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::time::Duration;

use gatehouse_core::store::{StoreError, StoredSigningKey};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection, SqliteConnection};

use crate::rows::{SELECT_SIGNING_KEYS, SigningKeyRow};

/// The migrations this version runs: a backup is a Gatehouse database when its history is a
/// prefix of them.
static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// Takes the shared lock every process with the database at `db` open holds, waiting while a
/// restore holds it exclusively.
pub(crate) async fn hold_open(db: &Path) -> Result<File, StoreError> {
    let db = db.to_owned();
    tokio::task::spawn_blocking(move || {
        let file = lock_file(&db)?;
        file.lock_shared().map_err(io_failure("cannot lock", &db))?;
        Ok(file)
    })
    .await
    .map_err(|e| StoreError::Backend(e.to_string()))?
    .map_err(|e: BackupError| StoreError::Backend(e.0))
}

/// Why a backup or a restore did not happen, for the operator.
#[derive(Debug)]
pub struct BackupError(String);

impl std::fmt::Display for BackupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BackupError {}

/// Writes a consistent copy of the database at `db` to `to`, which must not exist yet.
/// `VACUUM INTO` copies one snapshot — in WAL mode the server's writers go on meanwhile — into
/// a compact new database, written under a temporary name and flushed to the disk before it
/// takes `to`'s name, so `to` is never a partial copy.
pub async fn backup(db: &Path, to: &Path) -> Result<(), BackupError> {
    if !db.is_file() {
        return Err(BackupError(format!(
            "there is no database at {}",
            db.display()
        )));
    }
    if to.exists() {
        return Err(BackupError(format!(
            "{} already exists; a backup never overwrites a file",
            to.display()
        )));
    }
    let partial = with_suffix(to, ".partial");
    remove_if_present(&partial)?;
    vacuum_into(db, &partial).await?;
    flush(&partial)?;
    std::fs::rename(&partial, to).map_err(io_failure("cannot name the backup", to))?;
    flush_folder_of(to)
}

/// Checks that `file` is an intact Gatehouse database that this version can run — its
/// migration history is this version's, or the beginning of it — and returns its signing keys,
/// so the caller can check that the master key in use opens them.
pub async fn inspect(file: &Path) -> Result<Vec<StoredSigningKey>, BackupError> {
    if !file.is_file() {
        return Err(BackupError(format!(
            "there is no file at {}",
            file.display()
        )));
    }
    let not_gatehouse = || BackupError(format!("{} is not a Gatehouse database", file.display()));
    let mut connection = connect(file).await?;
    let checked: Result<Vec<(String,)>, _> = sqlx::query_as("PRAGMA integrity_check")
        .fetch_all(&mut connection)
        .await;
    match checked {
        Ok(rows) if rows.len() == 1 && rows[0].0 == "ok" => {}
        Ok(rows) => {
            let first = rows.into_iter().next().map(|r| r.0).unwrap_or_default();
            return Err(BackupError(format!(
                "{} is damaged: {first}",
                file.display()
            )));
        }
        Err(_) => return Err(not_gatehouse()),
    }
    let applied: Vec<(i64, Vec<u8>, bool)> =
        sqlx::query_as("SELECT version, checksum, success FROM _sqlx_migrations ORDER BY version")
            .fetch_all(&mut connection)
            .await
            .map_err(|_| not_gatehouse())?;
    if applied.first().is_none_or(|(version, ..)| *version != 1) {
        return Err(not_gatehouse());
    }
    for (version, checksum, success) in &applied {
        let Some(ours) = MIGRATIONS.iter().find(|m| m.version == *version) else {
            return Err(BackupError(format!(
                "{} comes from a newer Gatehouse (its migration {version} is unknown to this \
                 version)",
                file.display()
            )));
        };
        if *ours.checksum != **checksum || !success {
            return Err(not_gatehouse());
        }
    }
    let keys = sqlx::query_as::<_, SigningKeyRow>(SELECT_SIGNING_KEYS)
        .fetch_all(&mut connection)
        .await
        .map_err(|_| not_gatehouse())?;
    connection
        .close()
        .await
        .map_err(|e| BackupError(e.to_string()))?;
    Ok(keys.into_iter().map(StoredSigningKey::from).collect())
}

/// Puts the backup `file` (checked with [`inspect`] first) in place of the database at `db`.
/// Refused while any process has `db` open. The replaced database, with its write-ahead log,
/// is kept beside it as `DB.before-restore`, whose path is returned.
pub async fn restore(file: &Path, db: &Path) -> Result<Option<PathBuf>, BackupError> {
    if let Some(folder) = db.parent().filter(|f| !f.as_os_str().is_empty()) {
        std::fs::create_dir_all(folder).map_err(io_failure("cannot create", folder))?;
    }
    let lock = lock_file(db)?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            return Err(BackupError(format!(
                "{} is in use: stop the server (and any gatehouse command) using it first",
                db.display()
            )));
        }
        Err(TryLockError::Error(error)) => {
            return Err(io_failure("cannot lock", db)(error));
        }
    }
    let incoming = with_suffix(db, ".restoring");
    remove_if_present(&incoming)?;
    vacuum_into(file, &incoming).await?;
    flush(&incoming)?;
    // A write-ahead log belongs to its database file: one left beside the new file would be
    // replayed into it. The replaced file keeps its own log under its new name.
    let aside = with_suffix(db, ".before-restore");
    let kept = db.exists();
    if kept {
        std::fs::rename(db, &aside).map_err(io_failure("cannot move aside", db))?;
        remove_if_present(&with_suffix(&aside, "-wal"))?;
        remove_if_present(&with_suffix(&aside, "-shm"))?;
        let log = with_suffix(db, "-wal");
        if log.exists() {
            std::fs::rename(&log, with_suffix(&aside, "-wal"))
                .map_err(io_failure("cannot move aside", &log))?;
        }
    }
    remove_if_present(&with_suffix(db, "-wal"))?;
    remove_if_present(&with_suffix(db, "-shm"))?;
    std::fs::rename(&incoming, db).map_err(io_failure("cannot name the database", db))?;
    flush_folder_of(db)?;
    drop(lock);
    Ok(kept.then_some(aside))
}

/// The lock file beside the database at `db` (see the module documentation).
fn lock_file(db: &Path) -> Result<File, BackupError> {
    let path = with_suffix(db, ".lock");
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io_failure("cannot open", &path))
}

/// A connection that only reads `file` (and never creates it).
async fn connect(file: &Path) -> Result<SqliteConnection, BackupError> {
    SqliteConnectOptions::new()
        .filename(file)
        .read_only(true)
        .busy_timeout(Duration::from_secs(5))
        .connect()
        .await
        .map_err(|e| BackupError(format!("cannot open {}: {e}", file.display())))
}

async fn vacuum_into(from: &Path, to: &Path) -> Result<(), BackupError> {
    let target = to
        .to_str()
        .ok_or_else(|| BackupError(format!("{} is not a UTF-8 path", to.display())))?;
    let mut connection = connect(from).await?;
    sqlx::query("VACUUM INTO $1")
        .bind(target)
        .execute(&mut connection)
        .await
        .map_err(|e| BackupError(format!("cannot copy {}: {e}", from.display())))?;
    connection
        .close()
        .await
        .map_err(|e| BackupError(e.to_string()))
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn remove_if_present(path: &Path) -> Result<(), BackupError> {
    match std::fs::remove_file(path) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
            Err(io_failure("cannot remove", path)(error))
        }
        _ => Ok(()),
    }
}

fn flush(path: &Path) -> Result<(), BackupError> {
    File::open(path)
        .and_then(|file| file.sync_all())
        .map_err(io_failure("cannot flush", path))
}

/// Makes a rename in the folder of `path` survive a power loss.
fn flush_folder_of(path: &Path) -> Result<(), BackupError> {
    #[cfg(unix)]
    if let Some(folder) = path.parent().filter(|f| !f.as_os_str().is_empty()) {
        flush(folder)?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

fn io_failure<'a>(doing: &'a str, path: &'a Path) -> impl Fn(std::io::Error) -> BackupError + 'a {
    move |error| BackupError(format!("{doing} {}: {error}", path.display()))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use sqlx::{ConnectOptions, Connection, Executor};

    use super::*;
    use crate::test_support::{Backend, TestDatabase};

    /// A Gatehouse database, migrated and closed, in a fresh folder.
    async fn gatehouse_database() -> (TestDatabase, PathBuf) {
        let database = TestDatabase::create(Backend::Sqlite).await.unwrap();
        let path = PathBuf::from(database.url.strip_prefix("sqlite://").unwrap());
        drop(
            crate::SqliteStore::open(&path, crate::Durability::Process)
                .await
                .unwrap(),
        );
        (database, path)
    }

    /// A connection that writes `path`, creating it if need be, in WAL mode.
    async fn write(path: &Path) -> SqliteConnection {
        SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
            .connect()
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn only_gatehouse_databases_this_version_runs_are_restored() {
        let (_database, path) = gatehouse_database().await;
        let folder = path.parent().unwrap();
        assert!(inspect(&path).await.unwrap().is_empty());

        let text = folder.join("notes.txt");
        std::fs::write(&text, "not a database at all").unwrap();
        let foreign = folder.join("other.db");
        write(&foreign)
            .await
            .execute("CREATE TABLE things (name TEXT)")
            .await
            .unwrap();
        for file in [&text, &foreign] {
            let refused = inspect(file).await.unwrap_err().to_string();
            assert!(
                refused.ends_with("is not a Gatehouse database"),
                "{refused}"
            );
        }

        let mut connection = write(&path).await;
        connection
            .execute(
                "INSERT INTO _sqlx_migrations (version, description, success, checksum, \
                 execution_time) VALUES (9999, 'from the future', TRUE, x'00', 0)",
            )
            .await
            .unwrap();
        connection.close().await.unwrap();
        let refused = inspect(&path).await.unwrap_err().to_string();
        assert!(
            refused.contains("comes from a newer Gatehouse"),
            "{refused}"
        );
    }

    #[tokio::test]
    async fn a_restore_keeps_the_replaced_database_with_its_own_log() {
        let (_database, source) = gatehouse_database().await;
        let folder = source.parent().unwrap();
        let copy = folder.join("copy.db");
        backup(&source, &copy).await.unwrap();
        assert!(
            backup(&source, &copy)
                .await
                .unwrap_err()
                .to_string()
                .contains("already exists")
        );

        // What a server killed mid-write leaves: a database whose last commits are only in
        // its write-ahead log.
        let db = folder.join("replaced").join("gatehouse.db");
        std::fs::create_dir_all(db.parent().unwrap()).unwrap();
        let mut writer = write(&db).await;
        writer
            .execute("PRAGMA wal_autocheckpoint = 0; CREATE TABLE kept (n INTEGER); INSERT INTO kept VALUES (7)")
            .await
            .unwrap();
        for suffix in ["", "-wal"] {
            std::fs::copy(
                with_suffix(&db, suffix),
                with_suffix(&folder.join("crashed.db"), suffix),
            )
            .unwrap();
        }
        writer.close().await.unwrap();
        for suffix in ["", "-wal"] {
            std::fs::copy(
                with_suffix(&folder.join("crashed.db"), suffix),
                with_suffix(&db, suffix),
            )
            .unwrap();
        }
        assert!(with_suffix(&db, "-wal").exists());

        let aside = restore(&copy, &db).await.unwrap().unwrap();
        assert!(!with_suffix(&db, "-wal").exists());
        assert!(inspect(&db).await.unwrap().is_empty());
        let mut old = write(&aside).await;
        let (kept,): (i64,) = sqlx::query_as("SELECT n FROM kept")
            .fetch_one(&mut old)
            .await
            .unwrap();
        assert_eq!(kept, 7);
        old.close().await.unwrap();

        // Not while a store has it open.
        let store = crate::SqliteStore::open(&db, crate::Durability::Process)
            .await
            .unwrap();
        let refused = restore(&copy, &db).await.unwrap_err().to_string();
        assert!(refused.contains("is in use"), "{refused}");
        drop(store);
    }
}
