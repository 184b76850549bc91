//! Log use cases.

use std::collections::VecDeque;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use prefect_domain::filters::LogFilter;
use prefect_domain::log::{Log, LogCreate};
use prefect_domain::sorts::LogSort;
use prefect_domain::time;
use prefect_storage::{Backend, logs};
use tokio::sync::oneshot;

use crate::{Core, Error, Result};

/// Log lines of concurrent `POST /logs/` requests, written together.
///
/// Clients send their log lines in batches (a hundred or so per request). Written one
/// transaction per request, each batch paid for its own BEGIN and COMMIT and, on SQLite,
/// for a few statements each handed to the driver's thread and back: the writer spent
/// more time on those round trips than on the rows. Here requests queue their lines, and
/// a flush takes everything queued (up to [`MAX_FLUSH_ROWS`]) into one transaction with
/// few, large statements. Each request still returns only once its own lines have
/// committed, and lines of a failed flush are retried request by request, so one bad
/// batch never takes another's lines with it.
#[derive(Debug, Default)]
pub(crate) struct LogQueue {
    state: Mutex<QueueState>,
}

#[derive(Debug, Default)]
struct QueueState {
    pending: VecDeque<PendingLogs>,
    /// Flushes running (at most one per database writer).
    flushes: usize,
}

#[derive(Debug)]
struct PendingLogs {
    logs: Vec<LogCreate>,
    reply: oneshot::Sender<Result<()>>,
}

/// Most log lines one flush writes (bounds how long a state transition waits behind it
/// in the writer's bulk lane).
const MAX_FLUSH_ROWS: usize = 2000;

impl LogQueue {
    fn locked(&self) -> std::sync::MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The requests the next flush writes: at least one, then more while they fit. When
    /// none is queued, the calling flush ends: its slot is given back under the same lock,
    /// so a request queued right after starts a new flush.
    fn take(&self) -> Vec<PendingLogs> {
        let mut state = self.locked();
        let mut taken = Vec::new();
        let mut rows = 0;
        while let Some(next) = state.pending.front() {
            if !taken.is_empty() && rows + next.logs.len() > MAX_FLUSH_ROWS {
                break;
            }
            rows += next.logs.len();
            taken.extend(state.pending.pop_front());
        }
        if taken.is_empty() {
            state.flushes -= 1;
        }
        taken
    }
}

/// Gives a flush's slot back if the flush ends without emptying the queue (a panic):
/// the next request then starts another.
struct FlushSlot<'a> {
    queue: &'a LogQueue,
    /// Still counted in `flushes` (`take` has not given it back).
    held: bool,
}

impl Drop for FlushSlot<'_> {
    fn drop(&mut self) {
        if self.held {
            self.queue.locked().flushes -= 1;
        }
    }
}

impl Core {
    /// Stores a batch of log lines; returns once they have committed (see [`LogQueue`]).
    pub async fn create_logs(&self, batch: Vec<LogCreate>) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let (reply, committed) = oneshot::channel();
        let queue = &self.inner.logs;
        let start_flush = {
            let mut state = queue.locked();
            state.pending.push_back(PendingLogs { logs: batch, reply });
            let start = state.flushes < self.db().writer_count();
            if start {
                state.flushes += 1;
            }
            start
        };
        if start_flush {
            // A task of its own: the flush must finish even if this request is cancelled.
            tokio::spawn(self.clone().flush_logs());
        }
        committed.await.map_err(|_| Error::Unavailable("the log writer stopped before writing these logs".to_owned()))?
    }

    /// Writes queued log lines until the queue is empty.
    async fn flush_logs(self) {
        let queue = &self.inner.logs;
        let mut slot = FlushSlot { queue, held: true };
        loop {
            let taken = queue.take();
            if taken.is_empty() {
                // `take` gave the slot back under the same lock that saw the queue empty.
                slot.held = false;
                return;
            }
            self.write_logs(taken).await;
        }
    }

    /// Writes the lines of `taken` in one transaction; if that fails, each request's alone.
    async fn write_logs(&self, taken: Vec<PendingLogs>) {
        let mut logs = Vec::with_capacity(taken.iter().map(|p| p.logs.len()).sum());
        let mut parts: Vec<(Range<usize>, oneshot::Sender<Result<()>>)> = Vec::with_capacity(taken.len());
        for pending in taken {
            let start = logs.len();
            logs.extend(pending.logs);
            parts.push((start..logs.len(), pending.reply));
        }
        let logs = Arc::new(logs);
        match self.insert_logs(&logs, 0..logs.len()).await {
            Ok(()) => {
                for (_, reply) in parts {
                    // The request may have been cancelled; its lines are stored all the same.
                    let _ = reply.send(Ok(()));
                }
            }
            Err(error) if parts.len() == 1 => {
                let (_, reply) = parts.pop().expect("one part");
                let _ = reply.send(Err(error));
            }
            Err(error) => {
                tracing::warn!(%error, requests = parts.len(), "Writing queued log lines together failed; writing each request's alone.");
                for (range, reply) in parts {
                    let _ = reply.send(self.insert_logs(&logs, range).await);
                }
            }
        }
    }

    async fn insert_logs(&self, logs: &Arc<Vec<LogCreate>>, range: Range<usize>) -> Result<()> {
        let backend = self.db().backend();
        let logs = Arc::clone(logs);
        if backend == Backend::Sqlite {
            return Ok(self.db().write_direct(move |txn| logs::insert_many_direct(txn, &logs[range.clone()], time::now())).await?);
        }
        self.write_bulk(move |txn| {
            let logs = Arc::clone(&logs);
            let range = range.clone();
            Box::pin(async move { Ok(logs::insert_many(txn, backend, &logs[range], time::now()).await?) })
        })
        .await
    }

    pub async fn filter_logs(&self, filter: Option<&LogFilter>, sort: LogSort, limit: Option<u64>, offset: u64) -> Result<Vec<Log>> {
        let limit = self.settings().limit(limit)?;
        Ok(logs::filter(self.db().reader(), self.db().backend(), filter, sort, limit, offset).await?)
    }

    /// Every log line of a flow run, oldest first, read in pages (for downloads).
    pub async fn all_flow_run_logs(&self, flow_run_id: uuid::Uuid) -> Result<Vec<Log>> {
        let filter = LogFilter { flow_run_id: Some(prefect_domain::filters::IdFilter { any_: Some(vec![flow_run_id]), not_any_: None }), ..Default::default() };
        let mut out = Vec::new();
        loop {
            let page = logs::filter(self.db().reader(), self.db().backend(), Some(&filter), LogSort::TimestampAsc, 1000, out.len() as u64).await?;
            let done = page.len() < 1000;
            out.extend(page);
            if done {
                return Ok(out);
            }
        }
    }
}
