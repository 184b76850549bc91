//! Prefect's orchestration policies as pure rules.
//!
//! A state proposal for a flow or task run is judged by an ordered list of
//! rules (a *policy*) followed by bookkeeping transforms. Rules see the run,
//! its current state and the proposed state, and may accept, rename, mutate,
//! reject (with another state or none), delay (WAIT) or abort the proposal.
//! The few facts a rule needs from outside — concurrency slots and leases,
//! the task cache, the parent flow run — come through the
//! [`store::OrchestrationStore`] port, so every rule can be exercised without
//! a database ([`testing::MemoryStore`]).
//!
//! This crate depends only on `prefect-domain`.
//!
//! ```
//! use prefect_domain::state::{State, StateType, SetStateStatus};
//! use prefect_orchestration::{orchestrate_flow, FlowPolicy, Context, FlowRunData, testing::MemoryStore};
//!
//! # tokio_test_block_on(async {
//! let now = prefect_domain::time::now();
//! let run = FlowRunData::new(uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
//! let pending = State::new(StateType::Pending, now);
//! let mut ctx = Context::new(run, Some(pending), Some(State::new(StateType::Running, now)), now);
//! orchestrate_flow(&mut ctx, &mut MemoryStore::default(), FlowPolicy::Core).await.unwrap();
//! assert_eq!(ctx.response_status, SetStateStatus::Accept);
//! assert_eq!(ctx.run.run_count, 1);
//! # });
//! # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
//! # }
//! ```

pub mod context;
pub mod engine;
pub mod flow_rules;
pub mod global_policy;
pub mod math;
pub mod policies;
pub mod shared_rules;
pub mod store;
pub mod task_rules;
pub mod testing;

pub use context::{Context, Effect, FlowRunData, OrchestrationSettings, RunData, TaskRunData, Version};
pub use engine::{Error, Rule, StateSet};
pub use policies::{FlowPolicy, TaskPolicy};
pub use store::{OrchestrationStore, StoreError};

/// Orchestrates a flow run transition under `policy` (plus the global flow transforms).
pub async fn orchestrate_flow<S: OrchestrationStore>(ctx: &mut Context<FlowRunData>, store: &mut S, policy: FlowPolicy) -> Result<(), Error> {
    engine::orchestrate(ctx, store, policy.rules()).await
}

/// Orchestrates a task run transition under `policy` (plus the global task transforms).
pub async fn orchestrate_task<S: OrchestrationStore>(ctx: &mut Context<TaskRunData>, store: &mut S, policy: TaskPolicy) -> Result<(), Error> {
    engine::orchestrate(ctx, store, policy.rules()).await
}
