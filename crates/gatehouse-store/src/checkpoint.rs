//! SQLite's checkpoints, done beside the writer as well as inside its commits.
//!
//! In WAL mode a commit appends its pages to the log, and a checkpoint copies them into the
//! database file, syncing the log before and the file after. SQLite runs one inside the commit
//! that takes the log past 1,000 pages, so the one writing connection, and every request whose
//! token waits in its batch, waits for the copy and both syncs: the token endpoint's p99 under
//! load.
//!
//! The `Checkpointer` copies pages on a connection of its own while commits come, which the
//! writer's commits do not wait for (a checkpoint does not hold the write lock). The writer's own
//! checkpoint stays, because only a writer can rewind the log to its start, and only once every
//! page in it is copied: without it the file would grow for as long as writes kept coming. It
//! now finds most pages copied already, and nothing to sync when all are.
//!
//! Durability is unchanged: a commit is as durable as before once it is in the log; a checkpoint
//! only moves committed pages to where later readers find them without the log.

use std::time::Duration;

use gatehouse_core::store::StoreError;
use sqlx::ConnectOptions;
use sqlx::sqlite::SqliteConnectOptions;

use crate::backend_error;

/// How soon the next checkpoint follows one that found new pages in the log.
const WHILE_WRITING: Duration = Duration::from_millis(5);

/// How soon the next checkpoint follows one that found the log as it was left.
const AT_REST: Duration = Duration::from_millis(250);

/// The task that checkpoints; it ends when this is dropped, with the store holding it.
pub(crate) struct Checkpointer {
    task: tokio::task::AbortHandle,
}

impl Checkpointer {
    pub(crate) async fn start(options: SqliteConnectOptions) -> Result<Self, StoreError> {
        // A checkpoint copies from the log to the file without the page cache.
        let mut connection = options
            .pragma("cache_size", "-64")
            .connect()
            .await
            .map_err(backend_error)?;
        let task = tokio::spawn(async move {
            let mut seen = None;
            // Ticks missed while a checkpoint ran come at once: the next one starts right away.
            let mut tick = tokio::time::interval(WHILE_WRITING);
            loop {
                // PASSIVE: copies what no reader still needs, and never waits for anyone.
                let progress =
                    sqlx::query_as::<_, (i64, i64, i64)>("PRAGMA wal_checkpoint(PASSIVE)")
                        .fetch_one(&mut connection)
                        .await;
                let (_, log_pages, copied_pages) = match progress {
                    Ok(progress) => progress,
                    Err(error) => {
                        // The writer's own checkpoints carry on without this task.
                        tracing::warn!(%error, "the SQLite checkpointer stopped");
                        return;
                    }
                };
                let now = Some((log_pages, copied_pages));
                let writing = now != seen;
                seen = now;
                if writing {
                    tick.tick().await;
                } else {
                    tokio::time::sleep(AT_REST).await;
                    tick.reset();
                }
            }
        })
        .abort_handle();
        Ok(Checkpointer { task })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
