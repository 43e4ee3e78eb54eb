//! Group commit for access tokens: requests hand their token to one writer task, which inserts
//! whatever has queued up meanwhile in a single statement and answers each request once the
//! statement has committed.
//!
//! Under load this turns many small transactions, each queueing for the database's one writer,
//! into a few larger ones; at rest a lone token is written at once. Durability is unchanged: a
//! request is answered only after its token is committed.

use gatehouse_core::store::{AccessTokenRecord, StoreError};
use tokio::sync::{mpsc, oneshot};

/// The most tokens written in one statement (twelve bound values each).
const MAX_BATCH: usize = 128;

pub(crate) trait BatchInsert: Send + Sync + 'static {
    fn insert_batch(
        &self,
        tokens: &[AccessTokenRecord],
    ) -> impl std::future::Future<Output = Result<(), StoreError>> + Send;
}

type Job = (AccessTokenRecord, oneshot::Sender<Result<(), StoreError>>);

pub(crate) struct TokenWriter {
    jobs: mpsc::Sender<Job>,
}

impl TokenWriter {
    /// Starts the writer task on the current runtime. The writer owns it: once the writer (and
    /// so the store holding it) is dropped, the queue closes and the task ends.
    pub(crate) fn start<W: BatchInsert>(writer: W) -> Self {
        let (jobs, mut queue) = mpsc::channel::<Job>(4 * MAX_BATCH);
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(MAX_BATCH);
            while let Some(job) = queue.recv().await {
                batch.push(job);
                while batch.len() < MAX_BATCH {
                    match queue.try_recv() {
                        Ok(job) => batch.push(job),
                        Err(_) => break,
                    }
                }
                let tokens: Vec<AccessTokenRecord> =
                    batch.iter().map(|(token, _)| token.clone()).collect();
                let result = writer.insert_batch(&tokens).await;
                for (_, reply) in batch.drain(..) {
                    let _ = reply.send(result.clone());
                }
            }
        });
        TokenWriter { jobs }
    }

    pub(crate) async fn insert(&self, token: AccessTokenRecord) -> Result<(), StoreError> {
        let stopped = || StoreError::Backend("the token writer has stopped".into());
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send((token, reply))
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}
