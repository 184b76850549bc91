//! Group commit: many small write jobs share one transaction.
//!
//! Under load, most requests are small writes (a state, a log batch, a task run
//! event). Giving each its own `BEGIN … COMMIT` makes the commit, not the work,
//! the bottleneck — on SQLite because there is one writer, on PostgreSQL because
//! each commit waits for the WAL to reach disk. [`Database::write`] instead
//! queues the job; a writer loop takes every job waiting, runs them one after
//! another inside a single transaction and commits once.
//!
//! Jobs are optimistic: if any job in a batch fails, the whole batch is rolled
//! back and each job is re-run alone in its own transaction, so a failing job
//! never takes another's writes with it. Jobs must therefore be re-runnable
//! (`Fn`, not `FnOnce`) and must not have effects outside the transaction;
//! callers publish events and the like after `write` returns.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use sea_orm::DatabaseTransaction;
use tokio::sync::{mpsc, oneshot};

use crate::db::{Database, WriteConnection};
use crate::{Error, Result};

/// The future a write job returns, borrowing the transaction it runs in.
pub type JobFuture<'t, T, E = Error> = Pin<Box<dyn Future<Output = std::result::Result<T, E>> + Send + 't>>;

/// Most jobs run in one transaction (keeps latency bounded under load).
const MAX_BATCH: usize = 64;
/// Jobs waiting per writer before callers wait to enqueue.
const QUEUE_DEPTH: usize = 4096;

trait Job: Send {
    /// Runs the job in `txn`, keeping its result; `false` if it failed.
    fn run<'t>(&'t mut self, txn: &'t DatabaseTransaction) -> Pin<Box<dyn Future<Output = bool> + Send + 't>>;
    /// Forgets a result from a rolled-back attempt.
    fn reset(&mut self);
    /// Replaces the result with `error` (the batch could not commit).
    fn fail(&mut self, error: &Error);
    /// Sends the result to the caller.
    fn finish(self: Box<Self>);
}

struct TypedJob<T, E, F> {
    f: F,
    result: Option<std::result::Result<T, E>>,
    reply: Option<oneshot::Sender<std::result::Result<T, E>>>,
}

impl<T, E, F> Job for TypedJob<T, E, F>
where
    T: Send + 'static,
    E: From<Error> + Send + 'static,
    F: for<'t> Fn(&'t DatabaseTransaction) -> JobFuture<'t, T, E> + Send + 'static,
{
    fn run<'t>(&'t mut self, txn: &'t DatabaseTransaction) -> Pin<Box<dyn Future<Output = bool> + Send + 't>> {
        Box::pin(async move {
            let result = (self.f)(txn).await;
            let ok = result.is_ok();
            self.result = Some(result);
            ok
        })
    }

    fn reset(&mut self) {
        self.result = None;
    }

    fn fail(&mut self, error: &Error) {
        self.result = Some(Err(E::from(match error {
            Error::Unavailable(msg) => Error::Unavailable(msg.clone()),
            other => Error::Unavailable(format!("the write batch failed: {other}")),
        })));
    }

    fn finish(mut self: Box<Self>) {
        if let (Some(reply), Some(result)) = (self.reply.take(), self.result.take()) {
            // The caller may have given up (request cancelled); its result is simply dropped.
            let _ = reply.send(result);
        }
    }
}

/// Queues for the writer loops of one database.
#[derive(Clone)]
pub(crate) struct Writers {
    queues: Arc<Vec<mpsc::Sender<Box<dyn Job>>>>,
    next: Arc<AtomicUsize>,
}

impl std::fmt::Debug for Writers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writers").field("loops", &self.queues.len()).finish()
    }
}

impl Writers {
    /// Starts `count` writer loops (one for SQLite, a few for PostgreSQL). They end
    /// when the last [`Database`] clone, and with it every queue sender, is dropped.
    pub(crate) fn start(conn: &WriteConnection, count: usize) -> Writers {
        let mut queues = Vec::with_capacity(count);
        for _ in 0..count.max(1) {
            let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
            queues.push(tx);
            tokio::spawn(writer_loop(conn.clone(), rx));
        }
        Writers { queues: Arc::new(queues), next: Arc::new(AtomicUsize::new(0)) }
    }

    fn queue(&self, key: Option<u64>) -> &mpsc::Sender<Box<dyn Job>> {
        let n = self.queues.len();
        let i = match key {
            Some(k) => (k % n as u64) as usize,
            None => self.next.fetch_add(1, Ordering::Relaxed) % n,
        };
        &self.queues[i]
    }
}

impl Database {
    /// Runs `job` in a write transaction shared with other queued jobs, and returns
    /// its result once that transaction has committed (see the module docs).
    ///
    /// `key` routes jobs about the same object (e.g. a run id) to the same writer,
    /// so they never contend for row locks across writers.
    ///
    /// The job's error type `E` is the caller's: any error makes the job's writes roll back.
    pub async fn write<T, E, F>(&self, key: Option<u64>, job: F) -> std::result::Result<T, E>
    where
        T: Send + 'static,
        E: From<Error> + Send + 'static,
        F: for<'t> Fn(&'t DatabaseTransaction) -> JobFuture<'t, T, E> + Send + 'static,
    {
        let writers = self.writers();
        let (reply, receive) = oneshot::channel();
        let boxed: Box<dyn Job> = Box::new(TypedJob { f: job, result: None, reply: Some(reply) });
        writers.queue(key).send(boxed).await.map_err(|_| E::from(Error::Unavailable("the database writer has stopped".to_owned())))?;
        receive.await.map_err(|_| E::from(Error::Unavailable("the database writer dropped a job".to_owned())))?
    }
}

async fn writer_loop(db: WriteConnection, mut jobs: mpsc::Receiver<Box<dyn Job>>) {
    let mut batch: Vec<Box<dyn Job>> = Vec::with_capacity(MAX_BATCH);
    while jobs.recv_many(&mut batch, MAX_BATCH).await > 0 {
        match run_batch(&db, &mut batch).await {
            Ok(()) => {}
            Err(error) if batch.len() == 1 => {
                if let Some(job) = batch.first_mut() {
                    job.fail(&error);
                }
            }
            Err(_) => {
                // Something in the batch failed: give every job its own transaction.
                for job in &mut batch {
                    job.reset();
                    let mut single = std::slice::from_mut(job);
                    if let Err(error) = run_batch_slice(&db, &mut single).await {
                        job.fail(&error);
                    }
                }
            }
        }
        for job in batch.drain(..) {
            job.finish();
        }
    }
}

async fn run_batch(db: &WriteConnection, batch: &mut [Box<dyn Job>]) -> Result<()> {
    let mut slice = batch;
    run_batch_slice(db, &mut slice).await
}

/// Runs the jobs in one transaction; commits only if all succeeded.
async fn run_batch_slice(db: &WriteConnection, batch: &mut &mut [Box<dyn Job>]) -> Result<()> {
    let txn = db.begin().await?;
    let mut all_ok = true;
    for job in batch.iter_mut() {
        if !job.run(&txn).await {
            all_ok = false;
            break;
        }
    }
    if all_ok {
        txn.commit().await.map_err(Error::from_db)
    } else {
        // A failed job keeps its error as its result; the others are re-run alone.
        let _ = txn.rollback().await;
        if batch.len() == 1 { Ok(()) } else { Err(Error::Unavailable("a job in the batch failed".to_owned())) }
    }
}
