//! Builders and assertions shared by the orchestration tests.

use chrono::{TimeDelta, TimeZone, Utc};
use prefect_domain::concurrency::ConcurrencyLease;
use prefect_domain::state::{SetStateStatus, State, StateDetails, StateResponseDetails, StateType};
use prefect_domain::time::DateTime;
use prefect_orchestration::store::{CollisionStrategy, DeploymentConcurrency, ParentFlowRun};
use prefect_orchestration::testing::MemoryStore;
use prefect_orchestration::{Context, FlowPolicy, FlowRunData, OrchestrationStore, TaskPolicy, TaskRunData, orchestrate_flow, orchestrate_task};
use serde_json::{Value, json};
use uuid::Uuid;

/// Seed for every context, so retry jitter and tag-limit waits are repeatable.
pub const SEED: u64 = 7;

/// The clock of every transition in these tests.
pub fn now() -> DateTime {
    Utc.with_ymd_and_hms(2025, 6, 1, 12, 0, 0).single().expect("a valid fixed time")
}

pub fn secs(n: i64) -> TimeDelta {
    TimeDelta::seconds(n)
}

/// A current state, entered a minute before [`now`].
pub fn current(state_type: StateType) -> State {
    State::new(state_type, now() - secs(60))
}

/// A proposal made at [`now`].
pub fn proposal(state_type: StateType) -> State {
    State::new(state_type, now())
}

/// A current SCHEDULED state named `name`, due at `at`.
pub fn scheduled(name: &str, at: DateTime) -> State {
    State::scheduled(name, at, now() - secs(60))
}

/// Tweaks for building states inline.
pub trait StateExt: Sized {
    fn named(self, name: &str) -> Self;
    fn with_data(self, data: Value) -> Self;
    fn with_message(self, message: &str) -> Self;
    fn with_details(self, edit: impl FnOnce(&mut StateDetails)) -> Self;
}

impl StateExt for State {
    fn named(mut self, name: &str) -> Self {
        self.name = Some(name.to_owned());
        self
    }

    fn with_data(mut self, data: Value) -> Self {
        self.data = Some(data);
        self
    }

    fn with_message(mut self, message: &str) -> Self {
        self.message = Some(message.to_owned());
        self
    }

    fn with_details(mut self, edit: impl FnOnce(&mut StateDetails)) -> Self {
        edit(&mut self.state_details);
        self
    }
}

/// Result metadata of a persisted result (what the client sends as `data`).
pub fn persisted_result() -> Value {
    json!({
        "storage_key": "/results/8c1f2d",
        "expiration": null,
        "serializer": {"type": "pickle"},
        "storage_block_id": null,
        "prefect_version": "3.9.1"
    })
}

pub fn unpersisted_result() -> Value {
    json!({"type": "unpersisted"})
}

pub fn store() -> MemoryStore {
    MemoryStore { now: Some(now()), ..MemoryStore::default() }
}

pub fn flow_run() -> FlowRunData {
    FlowRunData::new(Uuid::now_v7(), Uuid::now_v7())
}

/// A deployment flow run of `deployment_id`.
pub fn deployment_run(deployment_id: Uuid) -> FlowRunData {
    FlowRunData { deployment_id: Some(deployment_id), ..flow_run() }
}

/// A task run that belongs to no flow run.
pub fn task_run() -> TaskRunData {
    TaskRunData::new(Uuid::now_v7(), None)
}

/// A task run of the flow run `flow_run_id`.
pub fn task_run_in(flow_run_id: Uuid) -> TaskRunData {
    TaskRunData::new(Uuid::now_v7(), Some(flow_run_id))
}

/// Registers a flow run for task rules to look up; returns its id.
pub fn add_flow_run(store: &mut MemoryStore, state: Option<State>, run_count: i64) -> Uuid {
    let id = Uuid::now_v7();
    store.flow_runs.insert(id, ParentFlowRun { id, run_count, state });
    id
}

/// A deployment and its `deployment:<id>` concurrency limit.
pub struct Deployment {
    pub id: Uuid,
    pub limit_id: Uuid,
}

/// Registers a deployment limited to `slots` concurrent runs.
pub fn deployment_with_limit(store: &mut MemoryStore, slots: i64, strategy: CollisionStrategy) -> Deployment {
    let id = Uuid::now_v7();
    let limit_id = store.add_limit(&format!("deployment:{id}"), slots);
    let limit = store.limits.get(&limit_id).cloned();
    store.deployments.insert(id, DeploymentConcurrency { limit, collision_strategy: strategy, grace_period_seconds: None });
    Deployment { id, limit_id }
}

/// Registers a deployment without a concurrency limit.
pub fn deployment_without_limit(store: &mut MemoryStore) -> Uuid {
    let id = Uuid::now_v7();
    store.deployments.insert(id, DeploymentConcurrency { limit: None, collision_strategy: CollisionStrategy::Enqueue, grace_period_seconds: None });
    id
}

/// Takes one slot of `limit_id` and leases it for `ttl_seconds`, as a worker submitting a run would.
pub async fn lease_slot(store: &mut MemoryStore, limit_id: Uuid, ttl_seconds: f64) -> Uuid {
    assert!(store.increment_slots(&[limit_id], 1).await.expect("increment"), "a free slot to lease");
    store.create_lease(&[limit_id], 1, ttl_seconds, None).await.expect("create lease")
}

pub fn active_slots(store: &MemoryStore, limit_id: Uuid) -> i64 {
    store.limits.get(&limit_id).expect("limit exists").active_slots
}

pub fn lease(store: &MemoryStore, lease_id: Uuid) -> Option<&ConcurrencyLease> {
    store.leases.get(&lease_id)
}

pub fn flow_ctx(run: FlowRunData, initial: Option<State>, proposed: State) -> Context<FlowRunData> {
    Context::new(run, initial, Some(proposed), now()).with_seed(SEED)
}

pub fn task_ctx(run: TaskRunData, initial: Option<State>, proposed: State) -> Context<TaskRunData> {
    Context::new(run, initial, Some(proposed), now()).with_seed(SEED)
}

/// Orchestrates under [`FlowPolicy::Core`], which must not fail.
pub async fn run_flow(ctx: &mut Context<FlowRunData>, store: &mut MemoryStore) {
    run_flow_with(FlowPolicy::Core, ctx, store).await;
}

pub async fn run_flow_with(policy: FlowPolicy, ctx: &mut Context<FlowRunData>, store: &mut MemoryStore) {
    orchestrate_flow(ctx, store, policy).await.expect("flow orchestration succeeds");
}

/// Orchestrates under [`TaskPolicy::Core`], which must not fail.
pub async fn run_task(ctx: &mut Context<TaskRunData>, store: &mut MemoryStore) {
    run_task_with(TaskPolicy::Core, ctx, store).await;
}

pub async fn run_task_with(policy: TaskPolicy, ctx: &mut Context<TaskRunData>, store: &mut MemoryStore) {
    orchestrate_task(ctx, store, policy).await.expect("task orchestration succeeds");
}

pub fn assert_accepted<R>(ctx: &Context<R>) {
    assert_eq!(ctx.response_status, SetStateStatus::Accept, "details: {:?}", ctx.response_details);
    assert_eq!(ctx.response_details, StateResponseDetails::AcceptDetails);
}

pub fn reject_reason<R>(ctx: &Context<R>) -> String {
    match (&ctx.response_status, &ctx.response_details) {
        (SetStateStatus::Reject, StateResponseDetails::RejectDetails { reason: Some(reason) }) => reason.clone(),
        other => panic!("expected a reject with a reason, got {other:?}"),
    }
}

pub fn abort_reason<R>(ctx: &Context<R>) -> String {
    match (&ctx.response_status, &ctx.response_details) {
        (SetStateStatus::Abort, StateResponseDetails::AbortDetails { reason: Some(reason) }) => reason.clone(),
        other => panic!("expected an abort with a reason, got {other:?}"),
    }
}

/// `(delay_seconds, reason)` of a WAIT.
pub fn wait_details<R>(ctx: &Context<R>) -> (i64, String) {
    match (&ctx.response_status, &ctx.response_details) {
        (SetStateStatus::Wait, StateResponseDetails::WaitDetails { delay_seconds, reason: Some(reason) }) => (*delay_seconds, reason.clone()),
        other => panic!("expected a wait, got {other:?}"),
    }
}

pub fn validated<R>(ctx: &Context<R>) -> &State {
    ctx.validated_state.as_ref().expect("a validated state")
}

/// Asserts that nothing was written: the response carries the current state.
pub fn assert_nothing_written<R>(ctx: &Context<R>) {
    assert!(ctx.proposed_state.is_none(), "no state is written");
    assert_eq!(ctx.validated_state, ctx.initial_state, "the current state is returned");
}
