//! The Prefect server's use cases.
//!
//! [`Core`] is what the API and the background services call: create and read
//! flows and runs, propose states (orchestrated in one transaction with the
//! rules of `prefect-orchestration` over `prefect-storage`), ingest logs and
//! events, manage concurrency limits and leases, and record task runs from
//! client events. Every write use case runs in a single write transaction;
//! events are published after it commits.
//!
//! ```no_run
//! # async fn demo() -> prefect_core::Result<()> {
//! use prefect_core::{Core, CoreSettings};
//! use prefect_storage::{Database, DatabaseOptions};
//!
//! let db = Database::connect(&DatabaseOptions::default()).await?;
//! prefect_storage::migrate(&db).await?;
//! let (core, _events) = Core::new(db, CoreSettings::default());
//! let flows = core.read_flow_by_name("etl").await?;
//! # Ok(()) }
//! ```

mod admin;
mod artifacts;
pub mod automation_actions;
mod automations;
pub mod blocks;
mod cancellation;
mod concurrency;
pub mod deployments;
mod error;
pub mod events;
mod flow_runs;
mod flows;
mod graph;
mod job_variables;
mod late_runs;
mod logs;
mod orchestrate;
mod outbound;
mod pause;
mod recorder;
mod saved_searches;
pub mod schema_tools;
mod task_queue;
mod task_runs;
pub mod templates;
pub mod ui;
mod vacuum;
mod variables;
mod work_pools;

use std::sync::Arc;

use prefect_domain::events::EventLimits;
use prefect_orchestration::OrchestrationSettings;
use prefect_storage::Database;
use prefect_storage::concurrency::SlotWaits;
use serde::Deserialize;

pub use admin::{CsrfToken, ServerDefaultResultStorage};
pub use cancellation::CANCELLING_TIMEOUT_MESSAGE;
pub use concurrency::{AcquireMode, Acquired};
pub use error::{Error, Result};
pub use events::{EventBus, EventReceiver};
pub use flow_runs::{FlowRunInput, SetStateOutcome};
pub use pause::PAUSE_EXPIRED_MESSAGE;
pub use prefect_storage::Backend;
pub use recorder::TaskRunRecorder;
pub use task_queue::{Lane, TaskQueues, TaskWorkers};
pub use vacuum::FlowRunVacuum;
pub use variables::VariableRef;
pub use work_pools::DEFAULT_AGENT_POOL_NAME;

/// What the caller told us about itself (from request headers).
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    /// `X-PREFECT-API-VERSION`, e.g. `0.8.4`.
    pub api_version: Option<String>,
    /// The `prefect` package version from `User-Agent: prefect/3.9.1 (API 0.8.4)`.
    pub client_version: Option<String>,
}

/// Settings of the use cases.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct CoreSettings {
    /// Default and maximum `limit` of filter routes.
    pub default_limit: u64,
    /// Maximum serialized size of flow run parameters, in bytes.
    pub max_parameter_size: usize,
    /// Events the bus holds before producers wait. Bounds memory under event floods:
    /// the pipeline writes batches of 2000, so a few batches of slack keep it busy.
    pub event_queue_capacity: usize,
    /// Longest wait before a caller of `POST /events` is told to retry (429).
    pub event_publish_wait_seconds: f64,
    pub tag_concurrency_slot_wait_seconds: f64,
    pub maximum_concurrency_slot_wait_seconds: f64,
    pub max_cache_key_length: usize,
    pub deployment_concurrency_slot_wait_seconds: f64,
    pub initial_deployment_lease_duration_seconds: f64,
    pub max_flow_run_graph_nodes: usize,
    pub max_flow_run_graph_artifacts: usize,
    /// How long the resources related to a flow run (its flow, deployment, work
    /// queue and pool, parent task run) are cached for its state change events.
    pub related_resource_cache_ttl_seconds: f64,
    /// Scheduled background task runs held per task key for task workers; creating more waits.
    pub task_scheduled_queue_size: usize,
    /// Retried or redelivered background task runs held per task key.
    pub task_retry_queue_size: usize,
    /// Bounds of `POST /deployments/{id}/schedule` when the request leaves them out; the
    /// binary copies the scheduler service's settings here.
    #[serde(skip)]
    pub schedule_limits: deployments::ScheduleLimits,
}

impl Default for CoreSettings {
    fn default() -> Self {
        CoreSettings {
            default_limit: 200,
            max_parameter_size: 512 * 1024,
            event_queue_capacity: 10_000,
            event_publish_wait_seconds: 5.0,
            tag_concurrency_slot_wait_seconds: 10.0,
            maximum_concurrency_slot_wait_seconds: 30.0,
            max_cache_key_length: 2000,
            deployment_concurrency_slot_wait_seconds: 30.0,
            initial_deployment_lease_duration_seconds: 300.0,
            max_flow_run_graph_nodes: 10_000,
            max_flow_run_graph_artifacts: 10_000,
            related_resource_cache_ttl_seconds: 300.0,
            task_scheduled_queue_size: 1000,
            task_retry_queue_size: 100,
            schedule_limits: deployments::ScheduleLimits::default(),
        }
    }
}

impl CoreSettings {
    pub(crate) fn orchestration(&self) -> OrchestrationSettings {
        OrchestrationSettings {
            tag_concurrency_slot_wait_seconds: self.tag_concurrency_slot_wait_seconds,
            max_cache_key_length: self.max_cache_key_length,
            deployment_concurrency_slot_wait_seconds: self.deployment_concurrency_slot_wait_seconds,
            initial_deployment_lease_duration_seconds: self.initial_deployment_lease_duration_seconds,
        }
    }

    pub(crate) fn slot_waits(&self) -> SlotWaits {
        SlotWaits { tag_limit_seconds: self.tag_concurrency_slot_wait_seconds, other_limit_seconds: self.maximum_concurrency_slot_wait_seconds }
    }

    /// Checks `limit` against the maximum page size, defaulting it when absent.
    pub fn limit(&self, limit: Option<u64>) -> Result<u64> {
        match limit {
            None => Ok(self.default_limit),
            Some(l) if l <= self.default_limit => Ok(l),
            Some(_) => Err(Error::invalid("limit", format!("Input should be less than or equal to {}", self.default_limit))),
        }
    }
}

/// The server's use cases over one database and event bus. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Core {
    inner: Arc<Inner>,
}

struct Inner {
    db: Database,
    bus: EventBus,
    settings: CoreSettings,
    /// Flow run id -> when its related resources were read, and what they were.
    /// As in Prefect, every state change of a run would otherwise read them again.
    relations: quick_cache::sync::Cache<uuid::Uuid, (std::time::Instant, events::FlowRunRelations)>,
    task_queues: TaskQueues,
    task_workers: TaskWorkers,
    /// Log lines waiting to be written together (see [`logs::LogQueue`]).
    logs: logs::LogQueue,
    /// Bumped whenever this server changes an automation, so the triggers service reloads.
    automations_version: tokio::sync::watch::Sender<u64>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner").field("db", &self.db).field("settings", &self.settings).finish_non_exhaustive()
    }
}

/// Flow runs whose related resources are cached (Prefect keeps 1000).
const RELATIONS_CACHE_SIZE: usize = 10_000;

impl Core {
    /// A core over `db`; returns the receiving end of its event bus for the event pipeline.
    pub fn new(db: Database, settings: CoreSettings) -> (Core, EventReceiver) {
        let (bus, receiver) = EventBus::new(settings.event_queue_capacity, EventLimits::default());
        let relations = quick_cache::sync::Cache::new(RELATIONS_CACHE_SIZE);
        let task_queues = TaskQueues::new(settings.task_scheduled_queue_size, settings.task_retry_queue_size);
        let inner = Inner {
            db,
            bus,
            settings,
            relations,
            task_queues,
            task_workers: TaskWorkers::default(),
            logs: logs::LogQueue::default(),
            automations_version: tokio::sync::watch::Sender::new(0),
        };
        (Core { inner: Arc::new(inner) }, receiver)
    }

    pub fn db(&self) -> &Database {
        &self.inner.db
    }

    pub fn events(&self) -> &EventBus {
        &self.inner.bus
    }

    /// Scheduled background task runs waiting for task workers.
    pub fn task_queues(&self) -> &TaskQueues {
        &self.inner.task_queues
    }

    /// The task workers connected to this server.
    pub fn task_workers(&self) -> &TaskWorkers {
        &self.inner.task_workers
    }

    pub fn settings(&self) -> &CoreSettings {
        &self.inner.settings
    }

    /// Runs `job` in a write transaction shared with other concurrent writes
    /// (group commit, see [`prefect_storage::batch`]); returns once it has committed.
    ///
    /// `key` keeps writes about one object (a run id) on one writer. The job may
    /// run twice (after a rolled-back batch), so it must only touch the database.
    pub(crate) async fn write<T, F>(&self, key: Option<uuid::Uuid>, job: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'t> Fn(&'t prefect_storage::DatabaseTransaction) -> prefect_storage::batch::JobFuture<'t, T, Error> + Send + 'static,
    {
        self.db().write(key.map(|k| k.as_u64_pair().1), job).await
    }

    /// A write that on SQLite first tries `direct` on the writer's own connection (see
    /// [`prefect_storage::direct_writes`]), in the interactive lane and keyed as
    /// [`Core::write`]; `job` runs through SeaORM on PostgreSQL, and on SQLite when `direct`
    /// answers `None` (it must then have written nothing).
    pub(crate) async fn write_direct_or<T, D, F>(&self, key: Option<uuid::Uuid>, direct: D, job: F) -> Result<T>
    where
        T: Send + 'static,
        D: Fn(&prefect_storage::direct_writes::DirectTransaction<'_>) -> Result<Option<T>> + Send + 'static,
        F: for<'t> Fn(&'t prefect_storage::DatabaseTransaction) -> prefect_storage::batch::JobFuture<'t, T, Error> + Send + 'static,
    {
        if self.db().backend() == prefect_storage::Backend::Sqlite {
            let key = key.map(|k| k.as_u64_pair().1);
            if let Some(done) = self.db().write_direct_in(prefect_storage::batch::Lane::Interactive, key, direct).await? {
                return Ok(done);
            }
        }
        self.write(key, job).await
    }

    /// [`Core::write`] in the writers' bulk lane, for ingested events and logs: a flood
    /// of them then shares the writer with orchestration instead of queueing ahead of it.
    pub(crate) async fn write_bulk<T, F>(&self, job: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'t> Fn(&'t prefect_storage::DatabaseTransaction) -> prefect_storage::batch::JobFuture<'t, T, Error> + Send + 'static,
    {
        self.db().write_in(prefect_storage::batch::Lane::Bulk, None, job).await
    }

    /// Whether the database answers (`/ready`).
    pub async fn ready(&self) -> Result<()> {
        Ok(self.db().ping().await?)
    }
}
