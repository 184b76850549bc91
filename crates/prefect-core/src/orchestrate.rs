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

fn boxed(e: prefect_storage::Error) -> StoreError {
    Box::new(e)
}

impl OrchestrationStore for TxnStore<'_> {
    async fn flow_run_state_timestamp_taken(&mut self, flow_run_id: Uuid, timestamp: DateTime) -> StoreResult<bool> {
        if self.new_flow_run == Some(flow_run_id) {
            return Ok(false);
        }
        if let Some((run, probed, taken)) = self.probed_timestamp
            && run == flow_run_id
            && probed == timestamp
        {
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
        let collision_strategy = match options.as_ref().and_then(|o| o.get("collision_strategy")).and_then(|v| v.as_str()) {
            Some("CANCEL_NEW") => CollisionStrategy::CancelNew,
            _ => CollisionStrategy::Enqueue,
        };
        let grace_period_seconds = options.as_ref().and_then(|o| o.get("grace_period_seconds")).and_then(serde_json::Value::as_f64);
        let limit = limit.map(|mut l| {
            l.active_slots = concurrency::active_slots_now(&l, self.now);
            l
        });
        Ok(Some(DeploymentConcurrency { limit, collision_strategy, grace_period_seconds }))
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
        flow_runs::read_for_transition(txn, backend, flow_run_id, state.timestamp, t.now).await?.ok_or_else(|| Error::not_found("Flow run not found"))?;
    transition_flow_run(txn, backend, t, run, state, force, policy, FlowRunRow::Read { proposed_timestamp_taken }).await
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
    let (new_run, probed_timestamp) = match row {
        FlowRunRow::New(new) => (Some(new), None),
        FlowRunRow::Read { proposed_timestamp_taken } => (None, Some((run.id, state.timestamp, proposed_timestamp_taken))),
    };
    let initial = run.state.clone();
    let before = flow_run_data(&run);
    let mut ctx = Context::new(before.clone(), initial, Some(state), t.now);
    configure(&mut ctx, t);
    let policy = policy.unwrap_or(if force { FlowPolicy::Minimal } else { FlowPolicy::Core });
    let mut store = TxnStore { txn, backend, waits: t.waits, settings: &t.settings, now: t.now, new_flow_run: new_run.map(|n| n.id), probed_timestamp };
    prefect_orchestration::orchestrate_flow(&mut ctx, &mut store, policy).await?;

    let created = ctx.proposed_state.is_some();
    let validated = ctx.validated_state.as_ref().filter(|_| created);
    let mut after = run;
    let before_state_id = after.state_id;
    let state_id = validated.map(|v| v.id).or(before_state_id);
    let mut writes = RowWrites::on(txn);
    if let Some(new) = new_run {
        flow_runs::push_insert(&mut writes, new, &bookkeeping_of(state_id, &ctx.run), &ctx.run.empirical_policy, t.now);
    }
    if let Some(validated) = validated {
        let artifact = match &validated.data {
            Some(data) if has_persisted_result(Some(data)) => {
                // The artifact row refers to the run: write what is queued first.
                std::mem::replace(&mut writes, RowWrites::on(txn)).execute(txn).await?;
                Some(artifacts::insert_result(txn, data, Some(after.id), None, t.now).await?)
            }
            _ => None,
        };
        flow_runs::push_state(&mut writes, after.id, validated, artifact, t.now);
        after.state_id = Some(validated.id);
        after.state = Some(validated.clone());
    }
    if validated.is_some() || ctx.run != before {
        if new_run.is_none() {
            let policy = (ctx.run.empirical_policy != before.empirical_policy).then_some(&ctx.run.empirical_policy);
            flow_runs::push_bookkeeping_changes(
                &mut writes,
                after.id,
                &bookkeeping_of(before_state_id, &before),
                &bookkeeping_of(state_id, &ctx.run),
                policy,
                t.now,
            );
        }
        apply_flow_run_data(&mut after, &ctx.run, t.now);
    }
    writes.execute(txn).await?;
    Ok(Transition {
        result: OrchestrationResult { state: ctx.validated_state, status: ctx.response_status, details: ctx.response_details },
        created,
        run: after,
        effects: ctx.effects,
    })
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
    let run = task_runs::read_for_update(txn, backend, task_run_id, t.now).await?.ok_or_else(|| Error::not_found("Task run not found"))?;
    transition_task_run(txn, backend, t, run, state, force, None).await
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
    let initial = run.state.clone();
    let before = task_run_data(&run);
    let policy = if state.state_details.deferred == Some(true) {
        TaskPolicy::Background
    } else if force {
        TaskPolicy::Minimal
    } else {
        TaskPolicy::Core
    };
    let mut ctx = Context::new(before.clone(), initial, Some(state), t.now);
    configure(&mut ctx, t);
    let mut store = TxnStore { txn, backend, waits: t.waits, settings: &t.settings, now: t.now, new_flow_run: None, probed_timestamp: None };
    prefect_orchestration::orchestrate_task(&mut ctx, &mut store, policy).await?;

    let created = ctx.proposed_state.is_some();
    let validated = ctx.validated_state.as_ref().filter(|_| created);
    let mut after = run;
    let before_state_id = after.state_id;
    let state_id = validated.map(|v| v.id).or(before_state_id);
    let mut writes = RowWrites::on(txn);
    if let Some(new) = new_run {
        task_runs::push_insert(&mut writes, new, &bookkeeping_of(state_id, &ctx.run), ctx.run.flow_run_run_count, t.now);
    }
    if let Some(validated) = validated {
        let artifact = match &validated.data {
            Some(data) if has_persisted_result(Some(data)) => {
                // The artifact row refers to the run: write what is queued first.
                std::mem::replace(&mut writes, RowWrites::on(txn)).execute(txn).await?;
                Some(artifacts::insert_result(txn, data, after.flow_run_id, Some(after.id), t.now).await?)
            }
            _ => None,
        };
        task_runs::push_state(&mut writes, after.id, validated, artifact, t.now);
        after.state_id = Some(validated.id);
        after.state = Some(validated.clone());
    }
    if validated.is_some() || ctx.run != before {
        if new_run.is_none() {
            task_runs::push_bookkeeping_changes(
                &mut writes,
                after.id,
                (&bookkeeping_of(before_state_id, &before), before.flow_run_run_count),
                (&bookkeeping_of(state_id, &ctx.run), ctx.run.flow_run_run_count),
                t.now,
            );
        }
        apply_task_run_data(&mut after, &ctx.run, t.now);
    }
    writes.execute(txn).await?;
    Ok(Transition {
        result: OrchestrationResult { state: ctx.validated_state, status: ctx.response_status, details: ctx.response_details },
        created,
        run: after,
        effects: ctx.effects,
    })
}
