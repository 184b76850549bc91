//! Task run rules (Prefect's `core_policy.py` for tasks, plus the task global transforms).

use prefect_domain::concurrency::{ConcurrencyLeaseHolder, LeaseHolderType, TAG_LIMIT_PREFIX};
use prefect_domain::state::{State, StateType};
use uuid::Uuid;

use crate::context::{Context, Effect, TaskRunData};
use crate::engine::{Rule, StateSet};
use crate::global_policy;
use crate::shared_rules::{self, release_concurrency_lease};
use crate::store::{OrchestrationStore, StoreError};

use StateType::*;

type Ctx = Context<TaskRunData>;

/// Lease TTL for tag slots taken by server-side orchestration (Prefect: ~100 years).
pub const TAG_LEASE_TTL_SECONDS: f64 = 100.0 * 365.0 * 86_400.0;

/// Every task run rule and task transform, with the memory each keeps between its hooks.
#[derive(Debug, Clone)]
pub enum TaskRule {
    CacheRetrieval,
    HandleTaskTerminalStateTransitions {
        original_run_count: Option<i64>,
    },
    PreventRunningTasksFromStoppedFlows,
    SecureTaskConcurrencySlots {
        acquired_lease_ids: Vec<Uuid>,
    },
    CopyScheduledTime,
    WaitForScheduledTime,
    RetryFailedTasks,
    RenameReruns,
    UpdateFlowRunTrackerOnTasks,
    CacheInsertion,
    ReleaseTaskConcurrencySlots,
    PreventPendingTransitions,
    CopyTaskParametersId,
    EnqueueScheduledTasks,
    // Global task transforms (GlobalTaskPolicy).
    /// SetRunStateType … SetNextScheduledStartTime, then UpdateStateDetails.
    CommonGlobalTransforms,
    IncrementTaskRunCount,
}

impl TaskRule {
    pub fn handle_task_terminal_state_transitions() -> Self {
        TaskRule::HandleTaskTerminalStateTransitions { original_run_count: None }
    }

    pub fn secure_task_concurrency_slots() -> Self {
        TaskRule::SecureTaskConcurrencySlots { acquired_lease_ids: Vec::new() }
    }
}

impl<S: OrchestrationStore> Rule<TaskRunData, S> for TaskRule {
    fn name(&self) -> &'static str {
        match self {
            TaskRule::CacheRetrieval => "CacheRetrieval",
            TaskRule::HandleTaskTerminalStateTransitions { .. } => "HandleTaskTerminalStateTransitions",
            TaskRule::PreventRunningTasksFromStoppedFlows => "PreventRunningTasksFromStoppedFlows",
            TaskRule::SecureTaskConcurrencySlots { .. } => "SecureTaskConcurrencySlots",
            TaskRule::CopyScheduledTime => "CopyScheduledTime",
            TaskRule::WaitForScheduledTime => "WaitForScheduledTime",
            TaskRule::RetryFailedTasks => "RetryFailedTasks",
            TaskRule::RenameReruns => "RenameReruns",
            TaskRule::UpdateFlowRunTrackerOnTasks => "UpdateFlowRunTrackerOnTasks",
            TaskRule::CacheInsertion => "CacheInsertion",
            TaskRule::ReleaseTaskConcurrencySlots => "ReleaseTaskConcurrencySlots",
            TaskRule::PreventPendingTransitions => "PreventPendingTransitions",
            TaskRule::CopyTaskParametersId => "CopyTaskParametersID",
            TaskRule::EnqueueScheduledTasks => "EnqueueScheduledTasks",
            TaskRule::CommonGlobalTransforms => "CommonGlobalTransforms",
            TaskRule::IncrementTaskRunCount => "IncrementTaskRunCount",
        }
    }

    fn from_states(&self) -> StateSet {
        match self {
            TaskRule::HandleTaskTerminalStateTransitions { .. } => StateSet::TERMINAL,
            TaskRule::CopyScheduledTime => StateSet::of(&[Scheduled]),
            TaskRule::WaitForScheduledTime | TaskRule::CopyTaskParametersId => StateSet::of(&[Scheduled, Pending]),
            TaskRule::RetryFailedTasks => StateSet::of(&[Running]),
            TaskRule::PreventPendingTransitions => StateSet::of(&[Pending, Cancelling, Running, Cancelled]),
            _ => StateSet::ALL,
        }
    }

    fn to_states(&self) -> StateSet {
        match self {
            TaskRule::CacheRetrieval
            | TaskRule::PreventRunningTasksFromStoppedFlows
            | TaskRule::SecureTaskConcurrencySlots { .. }
            | TaskRule::WaitForScheduledTime
            | TaskRule::RenameReruns
            | TaskRule::UpdateFlowRunTrackerOnTasks => StateSet::of(&[Running]),
            TaskRule::CopyScheduledTime | TaskRule::PreventPendingTransitions => StateSet::of(&[Pending]),
            TaskRule::RetryFailedTasks => StateSet::of(&[Failed]),
            TaskRule::CacheInsertion => StateSet::of(&[Completed]),
            TaskRule::CopyTaskParametersId => StateSet::of(&[Pending, Running]),
            TaskRule::EnqueueScheduledTasks => StateSet::of(&[Scheduled]),
            _ => StateSet::ALL,
        }
    }

    fn is_universal(&self) -> bool {
        matches!(self, TaskRule::ReleaseTaskConcurrencySlots | TaskRule::CommonGlobalTransforms | TaskRule::IncrementTaskRunCount)
    }

    async fn before(&mut self, ctx: &mut Ctx, store: &mut S) -> Result<(), StoreError> {
        match self {
            TaskRule::CacheRetrieval => cache_retrieval(ctx, store).await?,
            TaskRule::HandleTaskTerminalStateTransitions { original_run_count } => {
                handle_terminal_before(ctx, store, original_run_count).await?;
            }
            TaskRule::PreventRunningTasksFromStoppedFlows => prevent_running_tasks_from_stopped_flows(ctx, store).await?,
            TaskRule::SecureTaskConcurrencySlots { acquired_lease_ids } => secure_task_concurrency_slots(ctx, store, acquired_lease_ids).await?,
            TaskRule::CopyScheduledTime => shared_rules::copy_scheduled_time(ctx),
            TaskRule::WaitForScheduledTime => shared_rules::wait_for_scheduled_time(ctx),
            TaskRule::RetryFailedTasks => retry_failed_tasks(ctx),
            TaskRule::RenameReruns => shared_rules::rename_reruns(ctx),
            TaskRule::CacheInsertion => {
                if let Some(proposed) = &ctx.proposed_state
                    && let Some(key) = &proposed.state_details.cache_key
                    && key.chars().count() > ctx.settings.max_cache_key_length
                {
                    let reason = format!("Cache key exceeded maximum allowed length of {} characters.", ctx.settings.max_cache_key_length);
                    let state = ctx.proposed_state.clone();
                    ctx.reject(state, reason);
                }
            }
            TaskRule::PreventPendingTransitions => shared_rules::prevent_pending_transitions(ctx),
            TaskRule::CopyTaskParametersId => {
                let id = ctx.initial_state.as_ref().and_then(|s| s.state_details.task_parameters_id);
                if let Some(proposed) = &mut ctx.proposed_state
                    && proposed.state_details.task_parameters_id.is_none()
                {
                    proposed.state_details.task_parameters_id = id;
                }
            }
            TaskRule::CommonGlobalTransforms => {
                global_policy::common_before(ctx);
                let (run_id, flow_run_id) = (ctx.run.id, ctx.run.flow_run_id);
                if let Some(proposed) = &mut ctx.proposed_state {
                    proposed.state_details.flow_run_id = flow_run_id;
                    proposed.state_details.task_run_id = Some(run_id);
                }
            }
            TaskRule::IncrementTaskRunCount => {
                if ctx.proposed_type() == Some(Running) {
                    ctx.run.run_count += 1;
                }
            }
            TaskRule::UpdateFlowRunTrackerOnTasks | TaskRule::ReleaseTaskConcurrencySlots | TaskRule::EnqueueScheduledTasks => {}
        }
        Ok(())
    }

    async fn after(&mut self, ctx: &mut Ctx, store: &mut S) -> Result<(), StoreError> {
        match self {
            TaskRule::UpdateFlowRunTrackerOnTasks => {
                if let Some(flow_run_id) = ctx.run.flow_run_id {
                    match store.read_parent_flow_run(flow_run_id).await? {
                        Some(flow_run) => ctx.run.flow_run_run_count = flow_run.run_count,
                        None => {
                            return Err(
                                format!("Unable to read flow run associated with task run: {}, this flow run might have been deleted", ctx.run.id).into()
                            );
                        }
                    }
                }
            }
            TaskRule::CacheInsertion => {
                if let Some(validated) = &ctx.validated_state
                    && validated.state_details.cache_key.is_some()
                {
                    store.insert_cache_entry(validated).await?;
                }
            }
            TaskRule::ReleaseTaskConcurrencySlots => release_task_concurrency_slots(ctx, store).await?,
            TaskRule::EnqueueScheduledTasks => {
                if let Some(validated) = &ctx.validated_state
                    && validated.state_details.deferred == Some(true)
                {
                    ctx.effects.push(Effect::TaskRunScheduled {
                        task_run_id: ctx.run.id,
                        task_key: ctx.run.task_key.clone(),
                        retry: validated.name() == "AwaitingRetry",
                    });
                }
            }
            _ => {}
        }
        Ok(())
    }

    async fn cleanup(&mut self, ctx: &mut Ctx, store: &mut S) -> Result<(), StoreError> {
        match self {
            TaskRule::HandleTaskTerminalStateTransitions { original_run_count } => {
                if let Some(count) = original_run_count.take() {
                    ctx.run.run_count = count;
                }
            }
            TaskRule::SecureTaskConcurrencySlots { acquired_lease_ids } => {
                for lease_id in acquired_lease_ids.drain(..) {
                    release_concurrency_lease(store, lease_id, None, 1).await?;
                }
            }
            _ => {}
        }
        Ok(())
    }
}

async fn cache_retrieval<S: OrchestrationStore>(ctx: &mut Ctx, store: &mut S) -> Result<(), StoreError> {
    let Some(proposed) = &ctx.proposed_state else { return Ok(()) };
    let Some(cache_key) = proposed.state_details.cache_key.clone().filter(|k| !k.is_empty()) else { return Ok(()) };
    if proposed.state_details.refresh_cache == Some(true) {
        return Ok(());
    }
    if let Some(cached) = store.read_cached_state(&cache_key, ctx.now).await? {
        let mut state = cached.fresh_copy(ctx.now);
        state.name = Some("Cached".to_owned());
        ctx.reject(Some(state), "Retrieved state from cache");
    }
    Ok(())
}

async fn handle_terminal_before<S: OrchestrationStore>(ctx: &mut Ctx, store: &mut S, original_run_count: &mut Option<i64>) -> Result<(), StoreError> {
    let (Some(initial), Some(proposed)) = (&ctx.initial_state, &ctx.proposed_state) else { return Ok(()) };
    *original_run_count = Some(ctx.run.run_count);
    if matches!(proposed.state_type, Cancelling | Paused | Crashed) {
        let reason = format!("Run is already {}.", initial.state_type);
        ctx.abort(reason);
        return Ok(());
    }
    if initial.state_type == Completed && initial.has_persisted_result() {
        ctx.reject(None, "This run is already completed.");
        return Ok(());
    }
    let proposed_final = proposed.is_final();
    let proposed_running = proposed.state_type == Running;
    if !proposed_final {
        ctx.run.run_count = 0;
    }
    if proposed_running
        && let Some(flow_run_id) = ctx.run.flow_run_id
        && let Some(flow_run) = store.read_parent_flow_run(flow_run_id).await?
        && ctx.run.flow_run_run_count < flow_run.run_count
    {
        ctx.rename("Retrying");
    }
    Ok(())
}

async fn prevent_running_tasks_from_stopped_flows<S: OrchestrationStore>(ctx: &mut Ctx, store: &mut S) -> Result<(), StoreError> {
    let Some(flow_run_id) = ctx.run.flow_run_id else { return Ok(()) };
    let Some(flow_run) = store.read_parent_flow_run(flow_run_id).await? else { return Ok(()) };
    match &flow_run.state {
        None => ctx.abort("The enclosing flow must be running to begin task execution."),
        Some(state) if state.state_type == Paused => {
            let mut paused = State::new(Paused, ctx.now);
            paused.name = Some("NotReady".to_owned());
            paused.state_details.pause_timeout = state.state_details.pause_timeout;
            paused.state_details.pause_reschedule = state.state_details.pause_reschedule;
            ctx.reject(Some(paused), format!("The flow is paused, new tasks can execute after resuming flow run: {}.", flow_run.id));
        }
        Some(state) if state.state_type != Running => ctx.abort("The enclosing flow must be running to begin task execution."),
        Some(_) => {}
    }
    Ok(())
}

async fn secure_task_concurrency_slots<S: OrchestrationStore>(ctx: &mut Ctx, store: &mut S, acquired_lease_ids: &mut Vec<Uuid>) -> Result<(), StoreError> {
    if ctx.run.tags.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = ctx.run.tags.iter().map(|t| format!("{TAG_LIMIT_PREFIX}{t}")).collect();
    let limits = store.read_limits_by_name(&names).await?;
    if let Some(zero) = limits.iter().find(|l| l.active && l.limit == 0) {
        let tag = zero.name.trim_start_matches(TAG_LIMIT_PREFIX).to_owned();
        ctx.abort(format!("The concurrency limit on tag \"{tag}\" is 0 and will deadlock if the task tries to run again."));
        return Ok(());
    }
    let active: Vec<_> = limits.into_iter().filter(|l| l.active && l.limit > 0).collect();
    if active.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = active.iter().map(|l| l.id).collect();
    if !store.increment_slots(&ids, 1).await? {
        let max_wait = ctx.settings.tag_concurrency_slot_wait_seconds;
        let blocking = active
            .iter()
            .max_by(|a, b| {
                let ra = a.active_slots as f64 / a.limit as f64;
                let rb = b.active_slots as f64 / b.limit as f64;
                ra.total_cmp(&rb)
            })
            .map_or(max_wait, |l| l.avg_slot_occupancy_seconds);
        let average = if blocking > 0.0 { blocking.min(max_wait) } else { max_wait };
        let delay = ctx.clamped_poisson_interval(average, 0.3).round() as i64;
        let tags: Vec<&str> = active.iter().map(|l| l.name.trim_start_matches(TAG_LIMIT_PREFIX)).collect();
        ctx.delay(delay, format!("Concurrency limit reached for tags: {}", tags.join(", ")));
        return Ok(());
    }
    let holder = ConcurrencyLeaseHolder { kind: LeaseHolderType::TaskRun, id: ctx.run.id };
    let lease_id = store.create_lease(&ids, 1, TAG_LEASE_TTL_SECONDS, Some(holder)).await?;
    acquired_lease_ids.push(lease_id);
    Ok(())
}

async fn release_task_concurrency_slots<S: OrchestrationStore>(ctx: &mut Ctx, store: &mut S) -> Result<(), StoreError> {
    if ctx.proposed_state.is_none() || ctx.run.tags.is_empty() {
        return Ok(());
    }
    let Some(validated) = &ctx.validated_state else { return Ok(()) };
    if matches!(validated.state_type, Running | Cancelling) {
        return Ok(());
    }
    let names: Vec<String> = ctx.run.tags.iter().map(|t| format!("{TAG_LIMIT_PREFIX}{t}")).collect();
    let limits = store.read_limits_by_name(&names).await?;
    if limits.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = limits.iter().map(|l| l.id).collect();
    for lease in store.leases_held_by(&ids, ctx.run.id).await? {
        release_concurrency_lease(store, lease.id, None, 1).await?;
    }
    Ok(())
}

fn retry_failed_tasks(ctx: &mut Ctx) {
    let (Some(_), Some(proposed)) = (&ctx.initial_state, &ctx.proposed_state) else { return };
    let policy = &ctx.run.empirical_policy;
    let run_count = ctx.run.run_count;
    let base_delay = policy.base_delay(run_count);
    let jitter = policy.retry_jitter_factor.filter(|f| *f > 0.0);
    if proposed.state_details.retriable == Some(false) {
        return;
    }
    let Some(retries) = policy.retries else { return };
    if run_count > retries {
        return;
    }
    let (message, data) = (proposed.message.clone(), proposed.data.clone());
    let delay = match jitter {
        Some(factor) if base_delay > 0.0 => ctx.clamped_poisson_interval(base_delay, factor),
        _ => base_delay,
    };
    let now = ctx.now;
    let mut retry = State::awaiting_retry(now + prefect_domain::time::from_seconds(delay), now);
    retry.message = message;
    retry.data = data;
    ctx.reject(Some(retry), "Retrying");
}
