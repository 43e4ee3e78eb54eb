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

/// How many batches in a row the writer writes on one connection before it gives the connection
/// back to the pool, where the store's other writes wait for it.
const BATCHES_PER_CONNECTION: usize = 8;

pub(crate) trait BatchInsert: Send + Sync + 'static {
    /// What the writer holds while it writes: a connection of the store's pool.
    type Connection: Send;

    fn connect(
        &self,
    ) -> impl std::future::Future<Output = Result<Self::Connection, StoreError>> + Send;

    fn insert_batch(
        connection: &mut Self::Connection,
        tokens: &[AccessTokenRecord],
    ) -> impl std::future::Future<Output = Result<(), StoreError>> + Send;
}

type Job = (AccessTokenRecord, oneshot::Sender<Result<(), StoreError>>);

/// The tokens of the next statement, and the requests waiting for it.
struct Batch {
    tokens: Vec<AccessTokenRecord>,
    waiting: Vec<oneshot::Sender<Result<(), StoreError>>>,
}

impl Batch {
    /// Adds what has queued up, as far as one statement takes.
    fn take_queued(&mut self, queue: &mut mpsc::Receiver<Job>) {
        while self.tokens.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok((token, reply)) => {
                    self.tokens.push(token);
                    self.waiting.push(reply);
                }
                Err(_) => break,
            }
        }
    }

    fn answer(&mut self, result: Result<(), StoreError>) {
        self.tokens.clear();
        for reply in self.waiting.drain(..) {
            let _ = reply.send(result.clone());
        }
    }
}

pub(crate) struct TokenWriter {
    jobs: mpsc::Sender<Job>,
}

impl TokenWriter {
    /// Starts the writer task on the current runtime. The writer owns it: once the writer (and
    /// so the store holding it) is dropped, the queue closes and the task ends.
    pub(crate) fn start<W: BatchInsert>(writer: W) -> Self {
        let (jobs, mut queue) = mpsc::channel::<Job>(4 * MAX_BATCH);
        tokio::spawn(async move {
            let mut batch = Batch {
                tokens: Vec::with_capacity(MAX_BATCH),
                waiting: Vec::with_capacity(MAX_BATCH),
            };
            loop {
                if batch.tokens.is_empty() {
                    let Some((token, reply)) = queue.recv().await else {
                        break;
                    };
                    batch.tokens.push(token);
                    batch.waiting.push(reply);
                }
                batch.take_queued(&mut queue);
                let mut connection = match writer.connect().await {
                    Ok(connection) => connection,
                    Err(error) => {
                        batch.answer(Err(error));
                        continue;
                    }
                };
                // Tokens that queued while a batch was written go out on the same connection:
                // handing a connection back to sqlx's pool costs a round trip to it (a ping),
                // and on SQLite a wake of its thread, once per batch.
                for _ in 0..BATCHES_PER_CONNECTION {
                    let result = W::insert_batch(&mut connection, &batch.tokens).await;
                    // A failed statement may have left the connection unusable: the pool tests
                    // it when it is handed back, and the next batch takes another.
                    let failed = result.is_err();
                    batch.answer(result);
                    batch.take_queued(&mut queue);
                    if failed || batch.tokens.is_empty() {
                        break;
                    }
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
