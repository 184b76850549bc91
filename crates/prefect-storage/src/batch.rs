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
//!
//! Each writer has two lanes. [`Lane::Interactive`] jobs (state transitions,
//! creations, API writes a caller waits on) and [`Lane::Bulk`] jobs (persisting
//! ingested events and logs, which are large and which nobody waits on to make
//! progress) are queued apart. When both lanes have work the writer alternates
//! between them, one transaction each, so a flood of events can neither starve
//! orchestration (a state transition waits for at most one bulk transaction)
//! nor be starved by it (ingest then pushes back on its producers instead).
//!
//! On SQLite, jobs of either lane may be direct ([`Database::write_direct_in`]): they step
//! on the writer's own connection (see [`crate::direct_writes`]). A batch that mixes the
//! two kinds runs each stretch of jobs of one kind in a transaction of its own, in queue
//! order, with the same all-or-each-alone rule inside each stretch.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use sea_orm::DatabaseTransaction;
use tokio::sync::{mpsc, oneshot};

use crate::db::{Checkpoint, Database, WriteConnection, wal_checkpoint};
use crate::direct_writes::{self, DirectTransaction};
use crate::{Error, Result};

/// The future a write job returns, borrowing the transaction it runs in.
pub type JobFuture<'t, T, E = Error> = Pin<Box<dyn Future<Output = std::result::Result<T, E>> + Send + 't>>;

/// Most interactive jobs run in one transaction (keeps latency bounded under load).
const MAX_BATCH: usize = 64;
/// Bulk jobs run one per transaction: each already carries many rows, and a
/// transition waiting behind a bulk transaction should wait for one job only.
const MAX_BULK_BATCH: usize = 1;
/// Jobs waiting per writer before callers wait to enqueue.
const QUEUE_DEPTH: usize = 4096;

trait Job: Send {
    /// Runs the job in `txn`, keeping its result; `false` if it failed.
    fn run<'t>(&'t mut self, txn: &'t DatabaseTransaction) -> Pin<Box<dyn Future<Output = bool> + Send + 't>>;
    /// Whether the job runs on the SQLite writer's own connection ([`Job::run_direct`])
    /// rather than in a SeaORM transaction ([`Job::run`]).
    fn is_direct(&self) -> bool {
        false
    }
    /// Runs a direct job in `txn`, keeping its result; `false` if it failed.
    fn run_direct(&mut self, txn: &DirectTransaction<'_>) -> bool;
    /// Forgets a result from a rolled-back attempt.
    fn reset(&mut self);
    /// Replaces the result with `error` (the batch could not commit).
    fn fail(&mut self, error: &Error);
    /// Sends the result to the caller.
    fn finish(self: Box<Self>);
}

/// A job's result while its batch runs, and where it goes once the batch is done.
struct Pending<T, E> {
    result: Option<std::result::Result<T, E>>,
    reply: Option<oneshot::Sender<std::result::Result<T, E>>>,
}

impl<T, E: From<Error>> Pending<T, E> {
    fn new(reply: oneshot::Sender<std::result::Result<T, E>>) -> Self {
        Pending { result: None, reply: Some(reply) }
    }

    /// Keeps `result`; whether it is a success.
    fn keep(&mut self, result: std::result::Result<T, E>) -> bool {
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn reset(&mut self) {
        self.result = None;
    }

    fn fail(&mut self, error: Error) {
        self.result = Some(Err(E::from(error)));
    }

    fn finish(&mut self) {
        if let (Some(reply), Some(result)) = (self.reply.take(), self.result.take()) {
            // The caller may have given up (request cancelled); its result is simply dropped.
            let _ = reply.send(result);
        }
    }
}

struct TypedJob<T, E, F> {
    f: F,
    pending: Pending<T, E>,
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
            self.pending.keep(result)
        })
    }

    fn run_direct(&mut self, _txn: &DirectTransaction<'_>) -> bool {
        self.pending.fail(wrong_kind());
        false
    }

    fn reset(&mut self) {
        self.pending.reset();
    }

    fn fail(&mut self, error: &Error) {
        self.pending.fail(batch_failure(error));
    }

    fn finish(mut self: Box<Self>) {
        self.pending.finish();
    }
}

/// A job stepped on the SQLite writer's own connection (see [`crate::direct_writes`]).
struct DirectJob<T, E, F> {
    f: F,
    pending: Pending<T, E>,
}

impl<T, E, F> Job for DirectJob<T, E, F>
where
    T: Send + 'static,
    E: From<Error> + Send + 'static,
    F: Fn(&DirectTransaction<'_>) -> std::result::Result<T, E> + Send + 'static,
{
    fn run<'t>(&'t mut self, _txn: &'t DatabaseTransaction) -> Pin<Box<dyn Future<Output = bool> + Send + 't>> {
        self.pending.fail(wrong_kind());
        Box::pin(std::future::ready(false))
    }

    fn is_direct(&self) -> bool {
        true
    }

    fn run_direct(&mut self, txn: &DirectTransaction<'_>) -> bool {
        let result = (self.f)(txn);
        self.pending.keep(result)
    }

    fn reset(&mut self) {
        self.pending.reset();
    }

    fn fail(&mut self, error: &Error) {
        self.pending.fail(batch_failure(error));
    }

    fn finish(mut self: Box<Self>) {
        self.pending.finish();
    }
}

/// What a job answers when its batch could not commit.
fn batch_failure(error: &Error) -> Error {
    match error {
        Error::Unavailable(msg) => Error::Unavailable(msg.clone()),
        other => Error::Unavailable(format!("the write batch failed: {other}")),
    }
}

/// A job given a transaction of the other kind (a batch never mixes the two).
fn wrong_kind() -> Error {
    Error::Database(sea_orm::DbErr::Custom("a write job was given the wrong kind of transaction".to_owned()))
}

/// Which queue of its writer a job waits in (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// Writes a client or the orchestration of a run waits on.
    Interactive,
    /// Large writes of ingested data (events, logs).
    Bulk,
}

/// The two queues of one writer loop, and its requests for a checkpoint.
struct WriterQueues {
    interactive: mpsc::Sender<Box<dyn Job>>,
    bulk: mpsc::Sender<Box<dyn Job>>,
    checkpoints: mpsc::Sender<CheckpointRequest>,
}

/// Where a writer loop answers a checkpoint it ran between two transactions.
type CheckpointRequest = oneshot::Sender<Result<Checkpoint>>;

/// Queues for the writer loops of one database.
#[derive(Clone)]
pub(crate) struct Writers {
    queues: Arc<Vec<WriterQueues>>,
    next: Arc<AtomicUsize>,
}

impl std::fmt::Debug for Writers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writers").field("loops", &self.queues.len()).finish()
    }
}

impl Writers {
    /// How many writer loops there are (transactions that can be written at once).
    pub(crate) fn count(&self) -> usize {
        self.queues.len()
    }

    /// Starts `count` writer loops (one for SQLite, a few for PostgreSQL). They end
    /// when the last [`Database`] clone, and with it every queue sender, is dropped.
    pub(crate) fn start(conn: &WriteConnection, count: usize) -> Writers {
        let mut queues = Vec::with_capacity(count);
        for _ in 0..count.max(1) {
            let (interactive, interactive_jobs) = mpsc::channel(QUEUE_DEPTH);
            let (bulk, bulk_jobs) = mpsc::channel(QUEUE_DEPTH);
            let (checkpoints, checkpoint_requests) = mpsc::channel(1);
            queues.push(WriterQueues { interactive, bulk, checkpoints });
            tokio::spawn(writer_loop(conn.clone(), interactive_jobs, bulk_jobs, checkpoint_requests));
        }
        Writers { queues: Arc::new(queues), next: Arc::new(AtomicUsize::new(0)) }
    }

    /// Has the first writer loop run a passive WAL checkpoint on its own connection
    /// between two transactions (SQLite has one loop): its next transaction then
    /// begins with the WAL fully copied back, which lets SQLite rewind it (see
    /// [`Database::checkpoint`]).
    pub(crate) async fn checkpoint_between_transactions(&self) -> Result<Checkpoint> {
        let stopped = || Error::Unavailable("the database writer has stopped".to_owned());
        let (reply, answer) = oneshot::channel();
        self.queues.first().ok_or_else(stopped)?.checkpoints.send(reply).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// Queues the job `make` builds around its reply, and waits for its result.
    async fn submit<T, E: From<Error>>(&self, lane: Lane, key: Option<u64>, make: impl FnOnce(Pending<T, E>) -> Box<dyn Job>) -> std::result::Result<T, E> {
        let (reply, receive) = oneshot::channel();
        self.queue(lane, key).send(make(Pending::new(reply))).await.map_err(|_| E::from(Error::Unavailable("the database writer has stopped".to_owned())))?;
        receive.await.map_err(|_| E::from(Error::Unavailable("the database writer dropped a job".to_owned())))?
    }

    fn queue(&self, lane: Lane, key: Option<u64>) -> &mpsc::Sender<Box<dyn Job>> {
        let n = self.queues.len();
        let i = match key {
            Some(k) => (k % n as u64) as usize,
            None => self.next.fetch_add(1, Ordering::Relaxed) % n,
        };
        match lane {
            Lane::Interactive => &self.queues[i].interactive,
            Lane::Bulk => &self.queues[i].bulk,
        }
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
        self.write_in(Lane::Interactive, key, job).await
    }

    /// [`Database::write`] in the given lane: [`Lane::Bulk`] for ingested events and logs.
    pub async fn write_in<T, E, F>(&self, lane: Lane, key: Option<u64>, job: F) -> std::result::Result<T, E>
    where
        T: Send + 'static,
        E: From<Error> + Send + 'static,
        F: for<'t> Fn(&'t DatabaseTransaction) -> JobFuture<'t, T, E> + Send + 'static,
    {
        self.writers().submit(lane, key, |pending| Box::new(TypedJob { f: job, pending })).await
    }

    /// Runs `job` on the SQLite writer's own connection, in its own transaction in the
    /// bulk lane, and returns its result once that transaction has committed (see
    /// [`crate::direct_writes`]). For large inserts of few distinct statements (events,
    /// log lines); SQLite only. Like every write job it may run again after a failure,
    /// so it must only touch the database.
    pub async fn write_direct<T, F>(&self, job: F) -> Result<T>
    where
        T: Send + 'static,
        F: Fn(&DirectTransaction<'_>) -> Result<T> + Send + 'static,
    {
        self.write_direct_in(Lane::Bulk, None, job).await
    }

    /// [`Database::write_direct`] in the given lane: in [`Lane::Interactive`], the job shares
    /// a transaction with the direct jobs queued beside it, as [`Database::write`] jobs do
    /// with theirs (a batch that mixes the two kinds runs each stretch of one kind in a
    /// transaction of its own, in queue order). SQLite only.
    pub async fn write_direct_in<T, E, F>(&self, lane: Lane, key: Option<u64>, job: F) -> std::result::Result<T, E>
    where
        T: Send + 'static,
        E: From<Error> + Send + 'static,
        F: Fn(&DirectTransaction<'_>) -> std::result::Result<T, E> + Send + 'static,
    {
        if self.backend() != crate::Backend::Sqlite {
            return Err(E::from(Error::Database(sea_orm::DbErr::Custom("direct writes are for SQLite only".to_owned()))));
        }
        self.writers().submit(lane, key, |pending| Box::new(DirectJob { f: job, pending })).await
    }
}

async fn writer_loop(
    db: WriteConnection,
    mut interactive: mpsc::Receiver<Box<dyn Job>>,
    mut bulk: mpsc::Receiver<Box<dyn Job>>,
    mut checkpoints: mpsc::Receiver<CheckpointRequest>,
) {
    let mut interactive_batch: Vec<Box<dyn Job>> = Vec::with_capacity(MAX_BATCH);
    let mut bulk_batch: Vec<Box<dyn Job>> = Vec::with_capacity(MAX_BULK_BATCH);
    // After an interactive transaction, waiting bulk jobs go next, and the other way round.
    let mut bulk_next = false;
    loop {
        // A requested checkpoint goes before the next transaction (it cannot run inside one).
        let lane = if bulk_next {
            tokio::select! {
                biased;
                Some(reply) = checkpoints.recv() => {
                    let _ = reply.send(checkpoint_here(&db).await);
                    continue;
                },
                _ = bulk.recv_many(&mut bulk_batch, MAX_BULK_BATCH) => Lane::Bulk,
                _ = interactive.recv_many(&mut interactive_batch, MAX_BATCH) => Lane::Interactive,
            }
        } else {
            tokio::select! {
                biased;
                Some(reply) = checkpoints.recv() => {
                    let _ = reply.send(checkpoint_here(&db).await);
                    continue;
                },
                _ = interactive.recv_many(&mut interactive_batch, MAX_BATCH) => Lane::Interactive,
                _ = bulk.recv_many(&mut bulk_batch, MAX_BULK_BATCH) => Lane::Bulk,
            }
        };
        let batch = match lane {
            Lane::Interactive => &mut interactive_batch,
            Lane::Bulk => &mut bulk_batch,
        };
        if batch.is_empty() {
            // A lane answered empty: it is closed. Both close together, when the last
            // `Database` clone is dropped; finish what the other lane still holds, then stop.
            match lane {
                Lane::Interactive => drain(&db, &mut bulk, &mut bulk_batch, MAX_BULK_BATCH).await,
                Lane::Bulk => drain(&db, &mut interactive, &mut interactive_batch, MAX_BATCH).await,
            }
            break;
        }
        bulk_next = lane == Lane::Interactive;
        run_jobs(&db, batch).await;
    }
}

/// Runs a requested checkpoint on the writer's own connection (see [`Writers::checkpoint_between_transactions`]).
async fn checkpoint_here(db: &WriteConnection) -> Result<Checkpoint> {
    let started = std::time::Instant::now();
    let done = wal_checkpoint(&db.conn).await;
    tracing::debug!(milliseconds = started.elapsed().as_secs_f64() * 1000.0, ?done, "The writer copied the rest of the WAL back.");
    done
}

/// Runs every job left in a closed queue.
async fn drain(db: &WriteConnection, jobs: &mut mpsc::Receiver<Box<dyn Job>>, batch: &mut Vec<Box<dyn Job>>, max: usize) {
    while jobs.recv_many(batch, max).await > 0 {
        run_jobs(db, batch).await;
    }
}

/// Runs a batch and answers every job: each stretch of jobs of one kind (SeaORM or
/// direct) in one transaction, in queue order.
async fn run_jobs(db: &WriteConnection, batch: &mut Vec<Box<dyn Job>>) {
    let mut start = 0;
    while start < batch.len() {
        let direct = batch[start].is_direct();
        let end = batch[start..].iter().position(|job| job.is_direct() != direct).map_or(batch.len(), |n| start + n);
        run_stretch(db, &mut batch[start..end]).await;
        start = end;
    }
    for job in batch.drain(..) {
        job.finish();
    }
}

/// Runs jobs of one kind in one transaction (each job alone if any fails).
async fn run_stretch(db: &WriteConnection, batch: &mut [Box<dyn Job>]) {
    match run_batch(db, batch).await {
        Ok(()) => {}
        Err(error) if batch.len() == 1 => {
            if let Some(job) = batch.first_mut() {
                job.fail(&error);
            }
        }
        Err(_) => {
            // Something in the batch failed: give every job its own transaction.
            for job in batch.iter_mut() {
                job.reset();
                let mut single = std::slice::from_mut(job);
                if let Err(error) = run_batch_slice(db, &mut single).await {
                    job.fail(&error);
                }
            }
        }
    }
}

async fn run_batch(db: &WriteConnection, batch: &mut [Box<dyn Job>]) -> Result<()> {
    let mut slice = batch;
    run_batch_slice(db, &mut slice).await
}

/// Runs the jobs in one transaction; commits only if all succeeded.
async fn run_batch_slice(db: &WriteConnection, batch: &mut &mut [Box<dyn Job>]) -> Result<()> {
    if batch.first().is_some_and(|job| job.is_direct()) {
        let committed = direct_writes::transaction(db, |conn| {
            let txn = DirectTransaction::new(conn);
            batch.iter_mut().all(|job| job.run_direct(&txn))
        })
        .await?;
        return if committed || batch.len() == 1 { Ok(()) } else { Err(Error::Unavailable("a job in the batch failed".to_owned())) };
    }
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

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::DatabaseOptions;

    type Order = Arc<Mutex<Vec<&'static str>>>;

    /// A job that records its name when it runs (again if re-run).
    fn record(order: &Order, name: &'static str) -> impl for<'t> Fn(&'t DatabaseTransaction) -> JobFuture<'t, (), Error> + Send + 'static {
        let order = Arc::clone(order);
        move |_txn| {
            let order = Arc::clone(&order);
            Box::pin(async move {
                order.lock().expect("order").push(name);
                Ok(())
            })
        }
    }

    fn five_milliseconds(_txn: &DatabaseTransaction) -> JobFuture<'_, ()> {
        Box::pin(async {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            Ok(())
        })
    }

    /// A transaction opened outside the writer loops (`begin_write`) gets SQLite's one
    /// write connection in turn while the loops have a steady stream of jobs, instead of
    /// waiting out the pool timeout.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn direct_transactions_get_in_while_the_writer_is_busy() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("direct.db").display());
        let db = Database::connect(&DatabaseOptions { url, pool_timeout_seconds: 1.0, ..Default::default() }).await.expect("connect");
        let busy = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let mut producers = Vec::new();
        for _ in 0..8 {
            let (db, busy) = (db.clone(), Arc::clone(&busy));
            producers.push(tokio::spawn(async move {
                while busy.load(Ordering::Relaxed) {
                    db.write_in(Lane::Bulk, None, five_milliseconds).await.expect("bulk job");
                }
            }));
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        for _ in 0..5 {
            let txn = db.begin_write().await.expect("a direct transaction while the writer is busy");
            txn.commit().await.expect("commit");
        }
        busy.store(false, Ordering::Relaxed);
        for producer in producers {
            producer.await.expect("producer");
        }
    }

    #[tokio::test]
    async fn a_transition_waits_for_at_most_one_bulk_transaction() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("lanes.db").display());
        let db = Database::connect(&DatabaseOptions { url, ..Default::default() }).await.expect("connect");
        let order: Order = Arc::default();

        // The first bulk job holds the writer until released, so the others queue behind it.
        let (release, gate) = oneshot::channel::<()>();
        let gate = Arc::new(tokio::sync::Mutex::new(Some(gate)));
        let first = {
            let (db, order, gate) = (db.clone(), Arc::clone(&order), Arc::clone(&gate));
            tokio::spawn(async move {
                db.write_in(Lane::Bulk, None, move |_txn| {
                    let (order, gate) = (Arc::clone(&order), Arc::clone(&gate));
                    Box::pin(async move {
                        let gate = gate.lock().await.take();
                        if let Some(gate) = gate {
                            let _ = gate.await;
                        }
                        order.lock().expect("order").push("bulk-0");
                        Ok::<(), Error>(())
                    })
                })
                .await
            })
        };
        while gate.lock().await.is_some() {
            tokio::task::yield_now().await;
        }
        let mut queued = Vec::new();
        for name in ["bulk-1", "bulk-2", "bulk-3", "bulk-4", "bulk-5"] {
            let (db, job) = (db.clone(), record(&order, name));
            queued.push(tokio::spawn(async move { db.write_in(Lane::Bulk, None, job).await }));
        }
        let (db2, job) = (db.clone(), record(&order, "transition"));
        queued.push(tokio::spawn(async move { db2.write(None, job).await }));
        // Let every job reach its queue before the writer is released.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        release.send(()).expect("release");
        first.await.expect("join").expect("first bulk job");
        for job in queued {
            job.await.expect("join").expect("job");
        }

        let order = order.lock().expect("order").clone();
        assert_eq!(order.len(), 7, "every job ran once: {order:?}");
        assert_eq!(order[0], "bulk-0");
        assert_eq!(order[1], "transition", "the transition runs right after the bulk transaction it waited for: {order:?}");
        assert_eq!(&order[2..], ["bulk-1", "bulk-2", "bulk-3", "bulk-4", "bulk-5"], "bulk jobs keep their order: {order:?}");
    }
}
