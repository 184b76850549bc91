//! The port through which rules read and change the world around a run.
//!
//! Rules never touch a database: the few lookups and writes they need
//! (concurrency slots and leases, the task cache, the parent flow run) go
//! through [`OrchestrationStore`]. `prefect-core` implements it over a storage
//! transaction; [`crate::testing::MemoryStore`] implements it in memory.

use std::future::Future;

use prefect_domain::concurrency::{ConcurrencyLease, ConcurrencyLeaseHolder, ConcurrencyLimitV2};
use prefect_domain::state::State;
use prefect_domain::time::DateTime;
use uuid::Uuid;

/// An error from the store: the transition aborts and the caller sees it.
pub type StoreError = Box<dyn std::error::Error + Send + Sync>;

/// Deployment settings that decide deployment concurrency.
#[derive(Debug, Clone, PartialEq)]
pub struct DeploymentConcurrency {
    /// The `deployment:<id>` V2 limit, if the deployment has a concurrency limit.
    pub limit: Option<ConcurrencyLimitV2>,
    /// `ENQUEUE` (default) or `CANCEL_NEW`.
    pub collision_strategy: CollisionStrategy,
    /// Seconds a worker has to start the run before its slot lease expires.
    pub grace_period_seconds: Option<f64>,
}

/// What happens to a run that finds its deployment's limit full.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CollisionStrategy {
    /// Wait (`AwaitingConcurrencySlot`) and try again.
    #[default]
    Enqueue,
    /// Cancel the new run.
    CancelNew,
}

/// What task rules need to know about the enclosing flow run.
#[derive(Debug, Clone, PartialEq)]
pub struct ParentFlowRun {
    pub id: Uuid,
    pub run_count: i64,
    pub state: Option<State>,
}

/// Lookups and writes available to rules, all within the caller's transaction.
///
/// The futures carry no `Send` bound: a store over a connection that stays on one thread
/// (the SQLite writer's own, polled in place) implements it too, and the orchestration of a
/// store whose futures are `Send` (a SeaORM transaction) is `Send` itself.
pub trait OrchestrationStore {
    /// Whether the flow run already has a state with exactly this timestamp.
    fn flow_run_state_timestamp_taken(&mut self, flow_run_id: Uuid, timestamp: DateTime) -> impl Future<Output = Result<bool, StoreError>>;

    /// Concurrency settings of a deployment; `None` if the deployment does not exist.
    fn deployment_concurrency(&mut self, deployment_id: Uuid) -> impl Future<Output = Result<Option<DeploymentConcurrency>, StoreError>>;

    /// V2 limits by name (missing names are skipped).
    fn read_limits_by_name(&mut self, names: &[String]) -> impl Future<Output = Result<Vec<ConcurrencyLimitV2>, StoreError>>;

    /// Takes `slots` on every limit, or on none: `false` when any is full or inactive.
    fn increment_slots(&mut self, limit_ids: &[Uuid], slots: i64) -> impl Future<Output = Result<bool, StoreError>>;

    /// Returns `slots` to every limit (never below zero).
    fn decrement_slots(&mut self, limit_ids: &[Uuid], slots: i64) -> impl Future<Output = Result<(), StoreError>>;

    /// Creates a lease on slots already taken; returns its id.
    fn create_lease(
        &mut self,
        limit_ids: &[Uuid],
        slots: i64,
        ttl_seconds: f64,
        holder: Option<ConcurrencyLeaseHolder>,
    ) -> impl Future<Output = Result<Uuid, StoreError>>;

    fn read_lease(&mut self, lease_id: Uuid) -> impl Future<Output = Result<Option<ConcurrencyLease>, StoreError>>;

    /// Extends a lease that has not been reclaimed yet; `false` if it is gone.
    fn renew_lease(&mut self, lease_id: Uuid, ttl_seconds: f64) -> impl Future<Output = Result<bool, StoreError>>;

    /// Deletes a lease record (its slots are returned separately).
    fn revoke_lease(&mut self, lease_id: Uuid) -> impl Future<Output = Result<(), StoreError>>;

    /// Leases on any of `limit_ids` held by `holder_id`.
    fn leases_held_by(&mut self, limit_ids: &[Uuid], holder_id: Uuid) -> impl Future<Output = Result<Vec<ConcurrencyLease>, StoreError>>;

    /// The newest cached COMPLETED state for `cache_key` that has not expired at `now`.
    fn read_cached_state(&mut self, cache_key: &str, now: DateTime) -> impl Future<Output = Result<Option<State>, StoreError>>;

    /// Records a validated COMPLETED state in the task cache under its cache key.
    fn insert_cache_entry(&mut self, state: &State) -> impl Future<Output = Result<(), StoreError>>;

    /// The flow run a task run belongs to.
    fn read_parent_flow_run(&mut self, flow_run_id: Uuid) -> impl Future<Output = Result<Option<ParentFlowRun>, StoreError>>;

    /// Deletes flow run inputs (a pause that fired consumes its input keys).
    fn delete_flow_run_inputs(&mut self, flow_run_id: Uuid, keys: &[String]) -> impl Future<Output = Result<(), StoreError>>;

    /// Forces `state` onto the task run that stands for a subflow in its parent.
    fn set_subflow_parent_task_state(&mut self, task_run_id: Uuid, state: State) -> impl Future<Output = Result<(), StoreError>>;
}
