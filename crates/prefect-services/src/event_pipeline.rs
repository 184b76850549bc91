//! The event pipeline: drains the event bus in batches, persists events
//! (the event persister), records task runs from client task-run events (the
//! task run recorder), then fans events out to live subscribers (the
//! distributor) and to the automation triggers.
//!
//! Nothing accepted is dropped: a batch that cannot be written is retried with
//! backoff while producers wait on the bounded bus.
//!
//! Several batches may be written at once (`persist_concurrency`: on PostgreSQL one
//! connection's inserts keep one database process busy; on SQLite the next batch is
//! encoded while one is written); recording task runs and fanning
//! out still happen batch by batch, in arrival order, each after its batch is stored.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use prefect_core::{Core, EventReceiver, TaskRunRecorder};
use prefect_domain::events::ReceivedEvent;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

/// Settings of the pipeline.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct EventPipelineOptions {
    /// `PREFECT_SERVER_SERVICES_EVENT_PERSISTER_ENABLED`.
    pub persist: bool,
    /// `PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_ENABLED`.
    pub record_task_runs: bool,
    /// `PREFECT_SERVER_EVENTS_STREAM_OUT_ENABLED`.
    pub stream_out: bool,
    /// Most events written per transaction.
    pub batch_size: usize,
    /// How long to wait for a batch to fill once its first event arrived.
    pub flush_interval_ms: u64,
    /// Batches written at once; unset, the binary picks one for the backend
    /// ([`EventPipelineOptions::persist_concurrency_for`]).
    pub persist_concurrency: Option<usize>,
}

impl EventPipelineOptions {
    /// Batches written at once: the setting, or 2 on SQLite and 4 on PostgreSQL.
    ///
    /// SQLite has one writer, so a second batch in flight does not write in parallel; it
    /// is encoded (rows built, JSON serialized) while the first is written, and its jobs
    /// are queued when the writer gets to them. PostgreSQL writes several at once, each
    /// on its own connection and database process.
    pub fn persist_concurrency_for(&self, backend: prefect_core::Backend) -> usize {
        self.persist_concurrency.unwrap_or(match backend {
            prefect_core::Backend::Sqlite => 2,
            prefect_core::Backend::Postgres => 4,
        })
    }
}

impl Default for EventPipelineOptions {
    fn default() -> Self {
        EventPipelineOptions { persist: true, record_task_runs: true, stream_out: true, batch_size: 2000, flush_interval_ms: 20, persist_concurrency: None }
    }
}

/// The running pipeline.
pub struct EventPipeline {
    options: EventPipelineOptions,
    core: Core,
    recorder: TaskRunRecorder,
    receiver: EventReceiver,
    /// Where processed batches go for automation triggers, when that service runs.
    triggers: Option<tokio::sync::mpsc::Sender<crate::triggers::EventBatch>>,
}

impl EventPipeline {
    pub fn new(options: EventPipelineOptions, core: Core, receiver: EventReceiver) -> Self {
        let recorder = TaskRunRecorder::new(core.clone());
        EventPipeline { options, core, recorder, receiver, triggers: None }
    }

    /// Also hands every processed batch to the triggers service (waiting when it is behind).
    pub fn with_triggers(mut self, feed: tokio::sync::mpsc::Sender<crate::triggers::EventBatch>) -> Self {
        self.triggers = Some(feed);
        self
    }

    /// Processes events until shutdown, then drains what is already queued.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let batch_size = self.options.batch_size.max(1);
        let concurrency = self.options.persist_concurrency_for(self.core.db().backend()).max(1);
        let mut buffer: Vec<ReceivedEvent> = Vec::with_capacity(batch_size);
        // Batches being written, oldest first; each is finished (recorded, fanned out) in order.
        let mut writing: VecDeque<Writing> = VecDeque::new();
        loop {
            let received = tokio::select! {
                biased;
                _ = shutdown.cancelled() => {
                    self.finish_all(&mut writing, &shutdown).await;
                    self.receiver.close();
                    while self.receiver.recv_many(&mut buffer, batch_size).await > 0 {
                        let batch: Arc<[Arc<ReceivedEvent>]> = buffer.drain(..).map(Arc::new).collect();
                        writing.push_back(self.write(batch, &shutdown));
                        self.finish_all(&mut writing, &shutdown).await;
                    }
                    return;
                }
                // Finish the oldest write when it is done, so recording never waits for new events.
                joined = async { (&mut writing.front_mut().expect("guarded").task).await }, if !writing.is_empty() => {
                    if let Some(oldest) = writing.pop_front() {
                        self.finish(oldest.batch, joined, &shutdown).await;
                    }
                    continue;
                }
                n = self.receiver.recv_many(&mut buffer, batch_size), if writing.len() < concurrency => n,
            };
            if received == 0 {
                self.finish_all(&mut writing, &shutdown).await;
                return;
            }
            // Let a burst accumulate into one transaction.
            if buffer.len() < batch_size {
                let deadline = tokio::time::sleep(Duration::from_millis(self.options.flush_interval_ms));
                tokio::pin!(deadline);
                while buffer.len() < batch_size {
                    let room = batch_size - buffer.len();
                    tokio::select! {
                        n = self.receiver.recv_many(&mut buffer, room) => if n == 0 { break },
                        _ = &mut deadline => break,
                    }
                }
            }
            let batch: Arc<[Arc<ReceivedEvent>]> = buffer.drain(..).map(Arc::new).collect();
            writing.push_back(self.write(batch, &shutdown));
        }
    }

    /// Starts storing `batch` (retried until stored) on its own task.
    fn write(&self, batch: Arc<[Arc<ReceivedEvent>]>, shutdown: &CancellationToken) -> Writing {
        let task = if self.options.persist {
            let (core, shutdown, events) = (self.core.clone(), shutdown.clone(), Arc::clone(&batch));
            tokio::spawn(async move { retry("event persister", &shutdown, || core.persist_events(&events)).await })
        } else {
            tokio::spawn(async {})
        };
        Writing { batch, task }
    }

    /// Waits for every batch being written and finishes each, oldest first.
    async fn finish_all(&self, writing: &mut VecDeque<Writing>, shutdown: &CancellationToken) {
        while let Some(oldest) = writing.pop_front() {
            self.finish(oldest.batch, oldest.task.await, shutdown).await;
        }
    }

    /// After a batch is stored: records its task runs and fans it out to live subscribers.
    async fn finish(&self, batch: Arc<[Arc<ReceivedEvent>]>, stored: Result<(), tokio::task::JoinError>, shutdown: &CancellationToken) {
        if let Err(error) = stored {
            tracing::error!(%error, "The event persister task failed.");
        }
        if self.options.record_task_runs {
            retry("task run recorder", shutdown, || self.recorder.record(&batch)).await;
        }
        if self.options.stream_out {
            for event in batch.iter() {
                self.core.events().broadcast(event.clone());
            }
        }
        if let Some(triggers) = &self.triggers {
            // A stopped triggers service only means automations are off.
            let _ = triggers.send(batch).await;
        }
    }
}

/// A batch and the task storing it.
struct Writing {
    batch: Arc<[Arc<ReceivedEvent>]>,
    task: tokio::task::JoinHandle<()>,
}

/// Retries `op` with capped exponential backoff until it succeeds, or gives up on shutdown.
async fn retry<T, F, Fut>(what: &'static str, shutdown: &CancellationToken, mut op: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = prefect_core::Result<T>>,
{
    let mut delay = Duration::from_millis(50);
    let mut attempts = 0u32;
    loop {
        match op().await {
            Ok(_) => return,
            Err(error) => {
                attempts += 1;
                if matches!(error, prefect_core::Error::Invalid { .. } | prefect_core::Error::Conflict(_)) || attempts >= 20 {
                    tracing::error!(service = what, %error, attempts, "Giving up on an event batch.");
                    return;
                }
                tracing::warn!(service = what, %error, attempts, "Event batch failed; retrying.");
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = shutdown.cancelled() => if attempts >= 3 { return },
                }
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}
