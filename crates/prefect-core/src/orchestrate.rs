//! State transitions: orchestration rules applied inside a storage transaction.
//!
//! All state changes go through [`set_flow_run_state`] or [`set_task_run_state`]:
//! they lock the run, apply the policy through a [`TxnStore`] (the
//! orchestration port over the open transaction), then write the new state and
//! the run's bookkeeping in the same transaction.

use std::future::Future;
use std::pin::Pin;

use prefect_domain::concurrency::{ConcurrencyLease, ConcurrencyLeaseHolder, ConcurrencyLimitV2};
use prefect_domain::flow_run::FlowRun;
use prefect_domain::state::{OrchestrationResult, State, has_persisted_result};
use prefect_domain::task_run::TaskRun;
use prefect_domain::time::DateTime;
use prefect_orchestration::store::{CollisionStrategy, DeploymentConcurrency, ParentFlowRun};
use prefect_orchestration::{
    Context, Effect, FlowPolicy, FlowRunData, OrchestrationSettings, OrchestrationStore, StoreError, TaskPolicy, TaskRunData, Version,
};
use prefect_storage::concurrency::SlotWaits;
use prefect_storage::direct_writes::DirectTransaction;
use prefect_storage::flow_runs::{NewFlowRun, RunBookkeeping};
use prefect_storage::task_runs::NewTaskRun;
use prefect_storage::{Backend, DatabaseTransaction, RowWrites, artifacts, concurrency, deployments, flow_runs, task_runs};
use uuid::Uuid;

use crate::{ClientInfo, Error, Result};

/// The orchestration port over an open write transaction.
pub(crate) struct TxnStore<'a> {
    pub txn: &'a DatabaseTransaction,
    pub backend: Backend,
    pub waits: SlotWaits,
    pub settings: &'a OrchestrationSettings,
    pub now: DateTime,
    /// A flow run inserted in this transaction: it has no states to collide with.
    pub new_flow_run: Option<Uuid>,
    /// `(run, timestamp, taken)`: whether a state of the run has that timestamp, read
    /// with the run (see [`flow_runs::read_for_transition`]).
    pub probed_timestamp: Option<(Uuid, DateTime, bool)>,
}

type StoreResult<T> = std::result::Result<T, StoreError>;

/// Whether a state of the run has `timestamp`, when the transaction already knows: a run
/// inserted in it has no states, and the read of the run answered for the proposed one.
fn known_timestamp_taken(new_flow_run: Option<Uuid>, probed: Option<(Uuid, DateTime, bool)>, flow_run_id: Uuid, timestamp: DateTime) -> Option<bool> {
    if new_flow_run == Some(flow_run_id) {
        return Some(false);
    }
    match probed {
        Some((run, probed, taken)) if run == flow_run_id && probed == timestamp => Some(taken),
        _ => None,
    }
}

fn boxed(e: prefect_storage::Error) -> StoreError {
    Box::new(e)
}

impl OrchestrationStore for TxnStore<'_> {
    async fn flow_run_state_timestamp_taken(&mut self, flow_run_id: Uuid, timestamp: DateTime) -> StoreResult<bool> {
        if let Some(taken) = known_timestamp_taken(self.new_flow_run, self.probed_timestamp, flow_run_id, timestamp) {
            return Ok(taken);
        }
        flow_runs::state_timestamp_taken(self.txn, flow_run_id, timestamp).await.map_err(boxed)
    }

    async fn deployment_concurrency(&mut self, deployment_id: Uuid) -> StoreResult<Option<DeploymentConcurrency>> {
        let Some((limit_id, options)) = deployments::read_concurrency(self.txn, deployment_id).await.map_err(boxed)? else {
            return Ok(None);
        };
        let limit = match limit_id {
            Some(id) => concurrency::read(self.txn, id).await.map_err(boxed)?,
            None => None,
        };
        Ok(Some(deployment_concurrency(limit, options, self.now)))
    }

    async fn read_limits_by_name(&mut self, names: &[String]) -> StoreResult<Vec<ConcurrencyLimitV2>> {
        concurrency::read_by_names(self.txn, names).await.map_err(boxed)
    }

    async fn increment_slots(&mut self, limit_ids: &[Uuid], slots: i64) -> StoreResult<bool> {
        concurrency::increment(self.txn, self.backend, limit_ids, slots, &self.waits, self.now).await.map_err(boxed)
    }

    async fn decrement_slots(&mut self, limit_ids: &[Uuid], slots: i64) -> StoreResult<()> {
        concurrency::decrement(self.txn, self.backend, limit_ids, slots, None, &self.waits, self.now).await.map_err(boxed)
    }

    async fn create_lease(&mut self, limit_ids: &[Uuid], slots: i64, ttl_seconds: f64, holder: Option<ConcurrencyLeaseHolder>) -> StoreResult<Uuid> {
        concurrency::create_lease(self.txn, limit_ids, slots, ttl_seconds, holder, self.now).await.map_err(boxed)
    }

    async fn read_lease(&mut self, lease_id: Uuid) -> StoreResult<Option<ConcurrencyLease>> {
        concurrency::read_lease(self.txn, lease_id).await.map_err(boxed)
    }

    async fn renew_lease(&mut self, lease_id: Uuid, ttl_seconds: f64) -> StoreResult<bool> {
        concurrency::renew_lease(self.txn, lease_id, ttl_seconds, self.now).await.map_err(boxed)
    }

    async fn revoke_lease(&mut self, lease_id: Uuid) -> StoreResult<()> {
        concurrency::revoke_lease(self.txn, lease_id).await.map(|_| ()).map_err(boxed)
    }

    async fn leases_held_by(&mut self, limit_ids: &[Uuid], holder_id: Uuid) -> StoreResult<Vec<ConcurrencyLease>> {
        concurrency::leases_held_by(self.txn, limit_ids, holder_id).await.map_err(boxed)
    }

    async fn read_cached_state(&mut self, cache_key: &str, now: DateTime) -> StoreResult<Option<State>> {
        task_runs::read_cached_state(self.txn, cache_key, now).await.map_err(boxed)
    }

    async fn insert_cache_entry(&mut self, state: &State) -> StoreResult<()> {
        let Some(key) = &state.state_details.cache_key else { return Ok(()) };
        task_runs::insert_cache_entry(self.txn, key, state.state_details.cache_expiration, state.id, self.now).await.map_err(boxed)
    }

    async fn read_parent_flow_run(&mut self, flow_run_id: Uuid) -> StoreResult<Option<ParentFlowRun>> {
        let run = flow_runs::read(self.txn, flow_run_id, self.now).await.map_err(boxed)?;
        Ok(run.map(|r| ParentFlowRun { id: r.id, run_count: r.run_count, state: r.state }))
    }

    async fn delete_flow_run_inputs(&mut self, flow_run_id: Uuid, keys: &[String]) -> StoreResult<()> {
        prefect_storage::flow_run_inputs::delete_keys(self.txn, flow_run_id, keys).await.map_err(boxed)
    }

    async fn set_subflow_parent_task_state(&mut self, task_run_id: Uuid, state: State) -> StoreResult<()> {
        let ctx = TransitionContext { client: ClientInfo::default(), now: self.now, waits: self.waits, settings: self.settings.clone() };
        // Boxed: a flow transition contains this task transition.
        let fut: Pin<Box<dyn Future<Output = Result<Transition<TaskRun>>> + Send + '_>> =
            Box::pin(set_task_run_state(self.txn, self.backend, &ctx, task_run_id, state, true));
        match fut.await {
            Ok(_) | Err(Error::NotFound(_)) => Ok(()),
            Err(e) => Err(Box::new(e)),
        }
    }
}

/// What [`DirectStore`] answers for what it leaves to a SeaORM transaction: the rules
/// stop, nothing has been written, and the transition runs again through [`TxnStore`].
#[derive(Debug, thiserror::Error)]
#[error("this transition runs in a SeaORM transaction")]
pub(crate) struct NeedsSeaOrm;

/// The orchestration port over the SQLite writer's own connection (see
/// [`prefect_storage::direct_writes`]), for the transitions most runs make: it answers
/// the lookups of those (the proposed timestamp, the parent flow run, a deployment's
/// concurrency settings) and [`NeedsSeaOrm`] to everything else. Every write of a transition happens after its rules have run,
/// and the writes the rules make themselves (slots, leases, the task cache, inputs) are
/// among what it leaves to SeaORM, so a transition it stops has written nothing.
pub(crate) struct DirectStore<'a, 'c> {
    txn: &'a DirectTransaction<'c>,
    now: DateTime,
    /// A flow run inserted in this transaction: it has no states to collide with.
    new_flow_run: Option<Uuid>,
    /// `(run, timestamp, taken)`, read with the run (see [`TxnStore::probed_timestamp`]).
    probed_timestamp: Option<(Uuid, DateTime, bool)>,
}

fn needs_sea_orm<T>() -> StoreResult<T> {
    Err(Box::new(NeedsSeaOrm))
}

impl OrchestrationStore for DirectStore<'_, '_> {
    async fn flow_run_state_timestamp_taken(&mut self, flow_run_id: Uuid, timestamp: DateTime) -> StoreResult<bool> {
        match known_timestamp_taken(self.new_flow_run, self.probed_timestamp, flow_run_id, timestamp) {
            Some(taken) => Ok(taken),
            None => needs_sea_orm(),
        }
    }

    async fn deployment_concurrency(&mut self, deployment_id: Uuid) -> StoreResult<Option<DeploymentConcurrency>> {
        let Some((limit_id, options)) = deployments::read_concurrency_direct(self.txn, deployment_id).map_err(boxed)? else {
            return Ok(None);
        };
        let limit = match limit_id {
            Some(id) => concurrency::read_direct(self.txn, id).map_err(boxed)?,
            None => None,
        };
        Ok(Some(deployment_concurrency(limit, options, self.now)))
    }

    async fn read_limits_by_name(&mut self, _names: &[String]) -> StoreResult<Vec<ConcurrencyLimitV2>> {
        needs_sea_orm()
    }

    async fn increment_slots(&mut self, _limit_ids: &[Uuid], _slots: i64) -> StoreResult<bool> {
        needs_sea_orm()
    }

    async fn decrement_slots(&mut self, _limit_ids: &[Uuid], _slots: i64) -> StoreResult<()> {
        needs_sea_orm()
    }

    async fn create_lease(&mut self, _limit_ids: &[Uuid], _slots: i64, _ttl_seconds: f64, _holder: Option<ConcurrencyLeaseHolder>) -> StoreResult<Uuid> {
        needs_sea_orm()
    }

    async fn read_lease(&mut self, _lease_id: Uuid) -> StoreResult<Option<ConcurrencyLease>> {
        needs_sea_orm()
    }

    async fn renew_lease(&mut self, _lease_id: Uuid, _ttl_seconds: f64) -> StoreResult<bool> {
        needs_sea_orm()
    }

    async fn revoke_lease(&mut self, _lease_id: Uuid) -> StoreResult<()> {
        needs_sea_orm()
    }

    async fn leases_held_by(&mut self, _limit_ids: &[Uuid], _holder_id: Uuid) -> StoreResult<Vec<ConcurrencyLease>> {
        needs_sea_orm()
    }

    async fn read_cached_state(&mut self, _cache_key: &str, _now: DateTime) -> StoreResult<Option<State>> {
        needs_sea_orm()
    }

    async fn insert_cache_entry(&mut self, _state: &State) -> StoreResult<()> {
        needs_sea_orm()
    }

    async fn read_parent_flow_run(&mut self, flow_run_id: Uuid) -> StoreResult<Option<ParentFlowRun>> {
        let run = flow_runs::read_direct(self.txn, flow_run_id, self.now).map_err(boxed)?;
        Ok(run.map(|r| ParentFlowRun { id: r.id, run_count: r.run_count, state: r.state }))
    }

    async fn delete_flow_run_inputs(&mut self, _flow_run_id: Uuid, _keys: &[String]) -> StoreResult<()> {
        needs_sea_orm()
    }

    async fn set_subflow_parent_task_state(&mut self, _task_run_id: Uuid, _state: State) -> StoreResult<()> {
        needs_sea_orm()
    }
}

/// Polls a direct transition's orchestration once: over a [`DirectStore`] nothing in it
/// waits, so it is done after one poll.
fn run_ready<F: Future>(future: F) -> Result<F::Output> {
    let mut future = std::pin::pin!(future);
    match future.as_mut().poll(&mut std::task::Context::from_waker(std::task::Waker::noop())) {
        std::task::Poll::Ready(output) => Ok(output),
        std::task::Poll::Pending => Err(Error::Internal("a transition on the SQLite writer's connection waited".to_owned())),
    }
}

/// Whether orchestration ran to its end: `false` when a rule asked [`DirectStore`] for
/// what it leaves to SeaORM.
fn orchestrated(outcome: std::result::Result<(), prefect_orchestration::Error>) -> Result<bool> {
    match outcome {
        Ok(()) => Ok(true),
        Err(e) if e.source.is::<NeedsSeaOrm>() => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// A deployment's concurrency settings from its limit and `concurrency_options`.
fn deployment_concurrency(limit: Option<ConcurrencyLimitV2>, options: Option<serde_json::Value>, now: DateTime) -> DeploymentConcurrency {
    let collision_strategy = match options.as_ref().and_then(|o| o.get("collision_strategy")).and_then(|v| v.as_str()) {
        Some("CANCEL_NEW") => CollisionStrategy::CancelNew,
        _ => CollisionStrategy::Enqueue,
    };
    let grace_period_seconds = options.as_ref().and_then(|o| o.get("grace_period_seconds")).and_then(serde_json::Value::as_f64);
    let limit = limit.map(|mut l| {
        l.active_slots = concurrency::active_slots_now(&l, now);
        l
    });
    DeploymentConcurrency { limit, collision_strategy, grace_period_seconds }
}

/// Everything a transition needs besides the transaction.
#[derive(Debug, Clone)]
pub(crate) struct TransitionContext {
    pub client: ClientInfo,
    pub now: DateTime,
    pub waits: SlotWaits,
    pub settings: OrchestrationSettings,
}

/// The outcome of one transition.
#[derive(Debug)]
pub(crate) struct Transition<R> {
    pub result: OrchestrationResult,
    /// A new state row was written.
    pub created: bool,
    /// The run as it is after the transition (as a read would return it).
    pub run: R,
    pub effects: Vec<Effect>,
}

fn flow_run_data(run: &FlowRun) -> FlowRunData {
    FlowRunData {
        id: run.id,
        flow_id: run.flow_id,
        name: run.name.clone(),
        deployment_id: run.deployment_id,
        parent_task_run_id: run.parent_task_run_id,
        infrastructure_pid: run.infrastructure_pid.clone(),
        run_count: run.run_count,
        empirical_policy: run.empirical_policy.clone(),
        state_type: run.state_type,
        state_name: run.state_name.clone(),
        state_timestamp: run.state.as_ref().map(|s| s.timestamp),
        start_time: run.start_time,
        end_time: run.end_time,
        total_run_time: run.total_run_time,
        expected_start_time: run.expected_start_time,
        next_scheduled_start_time: run.next_scheduled_start_time,
    }
}

fn task_run_data(run: &TaskRun) -> TaskRunData {
    TaskRunData {
        id: run.id,
        flow_run_id: run.flow_run_id,
        task_key: run.task_key.clone(),
        tags: run.tags.clone(),
        run_count: run.run_count,
        flow_run_run_count: run.flow_run_run_count,
        empirical_policy: run.empirical_policy.clone(),
        state_type: run.state_type,
        state_name: run.state_name.clone(),
        state_timestamp: run.state.as_ref().map(|s| s.timestamp),
        start_time: run.start_time,
        end_time: run.end_time,
        total_run_time: run.total_run_time,
        expected_start_time: run.expected_start_time,
        next_scheduled_start_time: run.next_scheduled_start_time,
    }
}

fn bookkeeping_of(state_id: Option<Uuid>, d: &impl BookkeepingFields) -> RunBookkeeping {
    d.bookkeeping(state_id)
}

trait BookkeepingFields {
    fn bookkeeping(&self, state_id: Option<Uuid>) -> RunBookkeeping;
}

macro_rules! impl_bookkeeping {
    ($t:ty) => {
        impl BookkeepingFields for $t {
            fn bookkeeping(&self, state_id: Option<Uuid>) -> RunBookkeeping {
                RunBookkeeping {
                    state_id,
                    state_type: self.state_type,
                    state_name: self.state_name.clone(),
                    state_timestamp: self.state_timestamp,
                    run_count: self.run_count,
                    start_time: self.start_time,
                    end_time: self.end_time,
                    total_run_time: self.total_run_time,
                    expected_start_time: self.expected_start_time,
                    next_scheduled_start_time: self.next_scheduled_start_time,
                }
            }
        }
    };
}
impl_bookkeeping!(FlowRunData);
impl_bookkeeping!(TaskRunData);

fn configure<R>(ctx: &mut Context<R>, t: &TransitionContext) {
    ctx.client_version = t.client.client_version.clone();
    ctx.api_version = t.client.api_version.as_deref().and_then(Version::parse);
    ctx.settings = t.settings.clone();
}

/// Proposes `state` for a flow run. `force` applies only the minimal policy.
pub(crate) async fn set_flow_run_state(
    txn: &DatabaseTransaction,
    backend: Backend,
    t: &TransitionContext,
    flow_run_id: Uuid,
    state: State,
    force: bool,
    policy: Option<FlowPolicy>,
) -> Result<Transition<FlowRun>> {
    let (run, proposed_timestamp_taken) =
        flow_runs::read_for_transition(txn, backend, flow_run_id, state.timestamp, t.now).await?.ok_or_else(flow_run_not_found)?;
    transition_flow_run(txn, backend, t, run, state, force, policy, FlowRunRow::Read { proposed_timestamp_taken }).await
}

/// [`set_flow_run_state`] on the SQLite writer's own connection; `None` when the transition
/// needs more than [`DirectStore`] does (nothing was written: run it through SeaORM).
pub(crate) fn set_flow_run_state_direct(
    txn: &DirectTransaction<'_>,
    t: &TransitionContext,
    flow_run_id: Uuid,
    state: State,
    force: bool,
    policy: Option<FlowPolicy>,
) -> Result<Option<Transition<FlowRun>>> {
    let (run, proposed_timestamp_taken) = flow_runs::read_for_transition_direct(txn, flow_run_id, state.timestamp, t.now)?.ok_or_else(flow_run_not_found)?;
    transition_flow_run_direct(txn, t, run, state, force, policy, FlowRunRow::Read { proposed_timestamp_taken })
}

fn flow_run_not_found() -> Error {
    Error::not_found("Flow run not found")
}

/// Where the flow run of a transition stands in the transaction.
#[derive(Debug, Clone, Copy)]
pub(crate) enum FlowRunRow<'a> {
    /// Read (and locked) in this transaction, with whether one of its states already
    /// has the proposed state's timestamp.
    Read { proposed_timestamp_taken: bool },
    /// About to be inserted by this transition.
    New(&'a NewFlowRun),
}

impl<'a> FlowRunRow<'a> {
    /// The run to insert, and what the read answered about the proposed timestamp.
    fn parts(self, run: &FlowRun, state: &State) -> (Option<&'a NewFlowRun>, Option<(Uuid, DateTime, bool)>) {
        match self {
            FlowRunRow::New(new) => (Some(new), None),
            FlowRunRow::Read { proposed_timestamp_taken } => (None, Some((run.id, state.timestamp, proposed_timestamp_taken))),
        }
    }
}

/// Orchestrates `state` for `run`, already read (and locked) in `txn`, or about to be
/// created: with [`FlowRunRow::New`], the run's row is inserted here, once, with what
/// orchestration decided (its first state, run count, times), instead of inserted and
/// then updated. The rows a transition writes go to the database in one call
/// ([`RowWrites`]).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn transition_flow_run(
    txn: &DatabaseTransaction,
    backend: Backend,
    t: &TransitionContext,
    run: FlowRun,
    state: State,
    force: bool,
    policy: Option<FlowPolicy>,
    row: FlowRunRow<'_>,
) -> Result<Transition<FlowRun>> {
    let (new_run, probed_timestamp) = row.parts(&run, &state);
    let mut ctx = flow_context(&run, state, t);
    let mut store = TxnStore { txn, backend, waits: t.waits, settings: &t.settings, now: t.now, new_flow_run: new_run.map(|n| n.id), probed_timestamp };
    prefect_orchestration::orchestrate_flow(&mut ctx, &mut store, flow_policy(force, policy)).await?;
    let mut writes = RowWrites::on(txn);
    let transition = write_flow_transition(&mut writes, ctx, run, new_run, t.now);
    writes.execute(txn).await?;
    Ok(transition)
}

/// [`transition_flow_run`] on the SQLite writer's own connection; `None` when the rules
/// asked [`DirectStore`] for something it leaves to SeaORM (nothing was written).
pub(crate) fn transition_flow_run_direct(
    txn: &DirectTransaction<'_>,
    t: &TransitionContext,
    run: FlowRun,
    state: State,
    force: bool,
    policy: Option<FlowPolicy>,
    row: FlowRunRow<'_>,
) -> Result<Option<Transition<FlowRun>>> {
    let (new_run, probed_timestamp) = row.parts(&run, &state);
    let mut ctx = flow_context(&run, state, t);
    let mut store = DirectStore { txn, now: t.now, new_flow_run: new_run.map(|n| n.id), probed_timestamp };
    if !orchestrated(run_ready(prefect_orchestration::orchestrate_flow(&mut ctx, &mut store, flow_policy(force, policy)))?)? {
        return Ok(None);
    }
    let mut writes = RowWrites::for_backend(Backend::Sqlite);
    let transition = write_flow_transition(&mut writes, ctx, run, new_run, t.now);
    writes.execute_direct(txn)?;
    Ok(Some(transition))
}

fn flow_policy(force: bool, policy: Option<FlowPolicy>) -> FlowPolicy {
    policy.unwrap_or(if force { FlowPolicy::Minimal } else { FlowPolicy::Core })
}

fn flow_context(run: &FlowRun, state: State, t: &TransitionContext) -> Context<FlowRunData> {
    let mut ctx = Context::new(flow_run_data(run), run.state.clone(), Some(state), t.now);
    configure(&mut ctx, t);
    ctx
}

/// Queues in `writes` the rows an orchestrated flow transition changes (the new run, its
/// result artifact and state, its bookkeeping) and answers the run as it is after them.
fn write_flow_transition(writes: &mut RowWrites, ctx: Context<FlowRunData>, run: FlowRun, new_run: Option<&NewFlowRun>, now: DateTime) -> Transition<FlowRun> {
    let before = flow_run_data(&run);
    let created = ctx.proposed_state.is_some();
    let validated = ctx.validated_state.as_ref().filter(|_| created);
    let mut after = run;
    let before_state_id = after.state_id;
    let state_id = validated.map(|v| v.id).or(before_state_id);
    if let Some(new) = new_run {
        flow_runs::push_insert(writes, new, &bookkeeping_of(state_id, &ctx.run), &ctx.run.empirical_policy, now);
    }
    if let Some(validated) = validated {
        let artifact = match &validated.data {
            Some(data) if has_persisted_result(Some(data)) => Some(artifacts::push_insert_result(writes, data, Some(after.id), None, now)),
            _ => None,
        };
        flow_runs::push_state(writes, after.id, validated, artifact, now);
        after.state_id = Some(validated.id);
        after.state = Some(validated.clone());
    }
    if validated.is_some() || ctx.run != before {
        if new_run.is_none() {
            let policy = (ctx.run.empirical_policy != before.empirical_policy).then_some(&ctx.run.empirical_policy);
            flow_runs::push_bookkeeping_changes(writes, after.id, &bookkeeping_of(before_state_id, &before), &bookkeeping_of(state_id, &ctx.run), policy, now);
        }
        apply_flow_run_data(&mut after, &ctx.run, now);
    }
    Transition {
        result: OrchestrationResult { state: ctx.validated_state, status: ctx.response_status, details: ctx.response_details },
        created,
        run: after,
        effects: ctx.effects,
    }
}

/// Copies what orchestration changed onto the run, as `write_bookkeeping` stored it.
fn apply_flow_run_data(run: &mut FlowRun, data: &FlowRunData, now: DateTime) {
    run.updated = now;
    run.state_type = data.state_type;
    run.state_name = data.state_name.clone();
    run.run_count = data.run_count;
    run.start_time = data.start_time;
    run.end_time = data.end_time;
    run.total_run_time = data.total_run_time;
    run.expected_start_time = data.expected_start_time;
    run.next_scheduled_start_time = data.next_scheduled_start_time;
    run.empirical_policy = data.empirical_policy.clone();
    run.compute_estimates(now);
}

/// Copies what orchestration changed onto the run, as `write_bookkeeping` stored it.
fn apply_task_run_data(run: &mut TaskRun, data: &TaskRunData, now: DateTime) {
    run.updated = now;
    run.state_type = data.state_type;
    run.state_name = data.state_name.clone();
    run.run_count = data.run_count;
    run.flow_run_run_count = data.flow_run_run_count;
    run.start_time = data.start_time;
    run.end_time = data.end_time;
    run.total_run_time = data.total_run_time;
    run.expected_start_time = data.expected_start_time;
    run.next_scheduled_start_time = data.next_scheduled_start_time;
    run.compute_estimates(now);
}

/// Proposes `state` for a task run. `force` applies only the minimal policy;
/// deferred (background) task states always use the background policy.
pub(crate) async fn set_task_run_state(
    txn: &DatabaseTransaction,
    backend: Backend,
    t: &TransitionContext,
    task_run_id: Uuid,
    state: State,
    force: bool,
) -> Result<Transition<TaskRun>> {
    let run = task_runs::read_for_update(txn, backend, task_run_id, t.now).await?.ok_or_else(task_run_not_found)?;
    transition_task_run(txn, backend, t, run, state, force, None).await
}

/// [`set_task_run_state`] on the SQLite writer's own connection; `None` when the transition
/// needs more than [`DirectStore`] does (nothing was written: run it through SeaORM).
pub(crate) fn set_task_run_state_direct(
    txn: &DirectTransaction<'_>,
    t: &TransitionContext,
    task_run_id: Uuid,
    state: State,
    force: bool,
) -> Result<Option<Transition<TaskRun>>> {
    let run = task_runs::read_for_update_direct(txn, task_run_id, t.now)?.ok_or_else(task_run_not_found)?;
    transition_task_run_direct(txn, t, run, state, force, None)
}

fn task_run_not_found() -> Error {
    Error::not_found("Task run not found")
}

/// Orchestrates `state` for `run`, already read (and locked) in `txn`, or about to be
/// created: with `new_run`, the run's row is inserted here, once (see [`transition_flow_run`]).
pub(crate) async fn transition_task_run(
    txn: &DatabaseTransaction,
    backend: Backend,
    t: &TransitionContext,
    run: TaskRun,
    state: State,
    force: bool,
    new_run: Option<&NewTaskRun>,
) -> Result<Transition<TaskRun>> {
    let policy = task_policy(&state, force);
    let mut ctx = task_context(&run, state, t);
    let mut store = TxnStore { txn, backend, waits: t.waits, settings: &t.settings, now: t.now, new_flow_run: None, probed_timestamp: None };
    prefect_orchestration::orchestrate_task(&mut ctx, &mut store, policy).await?;
    let mut writes = RowWrites::on(txn);
    let transition = write_task_transition(&mut writes, ctx, run, new_run, t.now);
    writes.execute(txn).await?;
    Ok(transition)
}

/// [`transition_task_run`] on the SQLite writer's own connection; `None` when the rules
/// asked [`DirectStore`] for something it leaves to SeaORM (nothing was written).
pub(crate) fn transition_task_run_direct(
    txn: &DirectTransaction<'_>,
    t: &TransitionContext,
    run: TaskRun,
    state: State,
    force: bool,
    new_run: Option<&NewTaskRun>,
) -> Result<Option<Transition<TaskRun>>> {
    let policy = task_policy(&state, force);
    let mut ctx = task_context(&run, state, t);
    let mut store = DirectStore { txn, now: t.now, new_flow_run: None, probed_timestamp: None };
    if !orchestrated(run_ready(prefect_orchestration::orchestrate_task(&mut ctx, &mut store, policy))?)? {
        return Ok(None);
    }
    let mut writes = RowWrites::for_backend(Backend::Sqlite);
    let transition = write_task_transition(&mut writes, ctx, run, new_run, t.now);
    writes.execute_direct(txn)?;
    Ok(Some(transition))
}

fn task_policy(state: &State, force: bool) -> TaskPolicy {
    if state.state_details.deferred == Some(true) {
        TaskPolicy::Background
    } else if force {
        TaskPolicy::Minimal
    } else {
        TaskPolicy::Core
    }
}

fn task_context(run: &TaskRun, state: State, t: &TransitionContext) -> Context<TaskRunData> {
    let mut ctx = Context::new(task_run_data(run), run.state.clone(), Some(state), t.now);
    configure(&mut ctx, t);
    ctx
}

/// Queues in `writes` the rows an orchestrated task transition changes (see [`write_flow_transition`]).
fn write_task_transition(writes: &mut RowWrites, ctx: Context<TaskRunData>, run: TaskRun, new_run: Option<&NewTaskRun>, now: DateTime) -> Transition<TaskRun> {
    let before = task_run_data(&run);
    let created = ctx.proposed_state.is_some();
    let validated = ctx.validated_state.as_ref().filter(|_| created);
    let mut after = run;
    let before_state_id = after.state_id;
    let state_id = validated.map(|v| v.id).or(before_state_id);
    if let Some(new) = new_run {
        task_runs::push_insert(writes, new, &bookkeeping_of(state_id, &ctx.run), ctx.run.flow_run_run_count, now);
    }
    if let Some(validated) = validated {
        let artifact = match &validated.data {
            Some(data) if has_persisted_result(Some(data)) => Some(artifacts::push_insert_result(writes, data, after.flow_run_id, Some(after.id), now)),
            _ => None,
        };
        task_runs::push_state(writes, after.id, validated, artifact, now);
        after.state_id = Some(validated.id);
        after.state = Some(validated.clone());
    }
    if validated.is_some() || ctx.run != before {
        if new_run.is_none() {
            task_runs::push_bookkeeping_changes(
                writes,
                after.id,
                (&bookkeeping_of(before_state_id, &before), before.flow_run_run_count),
                (&bookkeeping_of(state_id, &ctx.run), ctx.run.flow_run_run_count),
                now,
            );
        }
        apply_task_run_data(&mut after, &ctx.run, now);
    }
    Transition {
        result: OrchestrationResult { state: ctx.validated_state, status: ctx.response_status, details: ctx.response_details },
        created,
        run: after,
        effects: ctx.effects,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use prefect_domain::flow::FlowCreate;
    use prefect_domain::state::{StateCreate, StateType};
    use prefect_storage::batch::Lane;
    use prefect_storage::{Database, DatabaseOptions};
    use serde_json::{Value, json};

    use super::*;
    use crate::{Core, CoreSettings};

    fn new_run(flow_id: Uuid, name: &str) -> NewFlowRun {
        NewFlowRun {
            id: Uuid::now_v7(),
            name: name.to_owned(),
            flow_id,
            flow_version: Some("1".to_owned()),
            deployment_id: None,
            deployment_version: None,
            work_queue_id: None,
            work_queue_name: None,
            parameters: serde_json::Map::new(),
            idempotency_key: None,
            context: serde_json::Map::new(),
            empirical_policy: Default::default(),
            tags: vec!["t".to_owned()],
            labels: Default::default(),
            parent_task_run_id: None,
            infrastructure_document_id: None,
            job_variables: None,
            created_by: None,
            auto_scheduled: false,
        }
    }

    /// What a transition answered and the run as stored after it, without what differs
    /// between two runs by construction (ids and names) or by when they are read (estimates).
    fn comparable(transition: &Transition<FlowRun>, stored: &FlowRun) -> Value {
        let mut stored = serde_json::to_value(stored).expect("run");
        for key in ["id", "name", "state_id", "estimated_run_time", "estimated_start_time_delta"] {
            stored[key] = Value::Null;
        }
        stored["state"]["id"] = Value::Null;
        stored["state"]["state_details"]["flow_run_id"] = Value::Null;
        let mut result = serde_json::to_value(&transition.result).expect("result");
        result["state"]["id"] = Value::Null;
        result["state"]["state_details"]["flow_run_id"] = Value::Null;
        json!({ "created": transition.created, "result": result, "stored": stored })
    }

    /// The same proposals at the same instants for two runs, one through SeaORM and one
    /// on the SQLite writer's own connection, answer alike and leave the same runs.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn direct_and_sea_orm_transitions_answer_and_store_alike() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("prefect.db").display());
        let db = Database::connect(&DatabaseOptions { url, ..Default::default() }).await.expect("connect");
        prefect_storage::migrate(&db).await.expect("migrate");
        let (core, _events) = Core::new(db, CoreSettings::default());
        let (flow, _) = core.create_flow(FlowCreate { name: "f".to_owned(), tags: Vec::new(), labels: None }).await.expect("flow");
        let base = core.transition_context(&ClientInfo::default());

        let result = json!({"type": "reference", "storage_key": "/results/k", "serializer": {"type": "json"}});
        let state = |state_type: StateType, data: Option<Value>, now: DateTime| {
            let mut create = StateCreate::of(state_type);
            create.data = data;
            create.into_state(now)
        };
        let proposals = [
            (StateType::Pending, None, true),
            (StateType::Running, None, false),
            (StateType::Completed, Some(result.clone()), false),
            // Out of a terminal state without force: the rules refuse it.
            (StateType::Running, None, false),
        ];

        let (sea_orm_run, direct_run) = (new_run(flow.id, "through-sea-orm"), new_run(flow.id, "direct"));
        for (step, (state_type, data, first)) in proposals.into_iter().enumerate() {
            // Each step a millisecond after the last (a state's timestamp is unique per run).
            let t = Arc::new(TransitionContext { now: base.now + chrono::Duration::milliseconds(step as i64), ..base.clone() });
            // The same proposal for each run, with a state id of its own.
            let (for_sea_orm, proposed) = (state(state_type, data.clone(), t.now), state(state_type, data, t.now));
            let through_sea_orm = {
                let (t, new, proposed) = (Arc::clone(&t), sea_orm_run.clone(), for_sea_orm);
                core.write(None, move |txn| {
                    let (t, new, proposed) = (Arc::clone(&t), new.clone(), proposed.clone());
                    Box::pin(async move {
                        if first {
                            let inserted = flow_runs::inserted(&new, None, t.now);
                            transition_flow_run(txn, Backend::Sqlite, &t, inserted, proposed, true, None, FlowRunRow::New(&new)).await
                        } else {
                            set_flow_run_state(txn, Backend::Sqlite, &t, new.id, proposed, false, None).await
                        }
                    })
                })
                .await
                .expect("transition through SeaORM")
            };
            let direct = {
                let (t, new) = (Arc::clone(&t), direct_run.clone());
                core.db()
                    .write_direct_in(Lane::Interactive, None, move |txn| {
                        if first {
                            let inserted = flow_runs::inserted(&new, None, t.now);
                            transition_flow_run_direct(txn, &t, inserted, proposed.clone(), true, None, FlowRunRow::New(&new))
                        } else {
                            set_flow_run_state_direct(txn, &t, new.id, proposed.clone(), false, None)
                        }
                    })
                    .await
                    .expect("direct transition")
                    .expect("this transition needs nothing the direct store leaves to SeaORM")
            };
            let stored_sea_orm = core.read_flow_run(sea_orm_run.id).await.expect("run");
            let stored_direct = core.read_flow_run(direct_run.id).await.expect("run");
            assert_eq!(comparable(&direct, &stored_direct), comparable(&through_sea_orm, &stored_sea_orm), "step {step}");
            assert_eq!(stored_direct.state.as_ref().map(|s| s.id), direct.result.state.as_ref().map(|s| s.id));
        }
        let completed = core.read_flow_run(direct_run.id).await.expect("run");
        assert_eq!(completed.state_type, Some(StateType::Completed), "the last proposal was refused");
        assert_eq!(completed.state.and_then(|s| s.data), Some(result), "the result reference is stored with its state");
        for id in [sea_orm_run.id, direct_run.id] {
            assert_eq!(core.flow_run_states(id).await.expect("states").len(), 3, "Pending, Running, Completed");
        }
    }

    /// A transition whose rules need what the direct store leaves to SeaORM answers `None`
    /// and writes nothing, so that SeaORM can run it whole.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_direct_transition_that_needs_sea_orm_writes_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("prefect.db").display());
        let db = Database::connect(&DatabaseOptions { url, ..Default::default() }).await.expect("connect");
        prefect_storage::migrate(&db).await.expect("migrate");
        let (core, _events) = Core::new(db, CoreSettings::default());
        let (flow, _) = core.create_flow(FlowCreate { name: "f".to_owned(), tags: Vec::new(), labels: None }).await.expect("flow");
        let t = Arc::new(core.transition_context(&ClientInfo::default()));
        let new = new_run(flow.id, "collided");
        let scheduled = StateCreate::of(StateType::Scheduled).into_state(t.now);
        let created = {
            let (t, new) = (Arc::clone(&t), new.clone());
            core.db()
                .write_direct_in(Lane::Interactive, None, move |txn| {
                    transition_flow_run_direct(txn, &t, flow_runs::inserted(&new, None, t.now), scheduled.clone(), true, None, FlowRunRow::New(&new))
                })
                .await
                .expect("create")
        };
        assert!(created.is_some(), "a forced first state needs no lookups");
        // A proposal at the instant of the run's current state: the rules look for the next
        // free instant, a lookup the direct store leaves to SeaORM.
        let pending = StateCreate::of(StateType::Pending).into_state(t.now);
        let answer = {
            let (t, id) = (Arc::clone(&t), new.id);
            core.db().write_direct_in(Lane::Interactive, None, move |txn| set_flow_run_state_direct(txn, &t, id, pending.clone(), false, None)).await
        };
        assert!(matches!(answer, Ok(None)), "left to SeaORM: {answer:?}");
        assert_eq!(core.read_flow_run(new.id).await.expect("run").state_type, Some(StateType::Scheduled));
        assert_eq!(core.flow_run_states(new.id).await.expect("states").len(), 1);
    }
}
