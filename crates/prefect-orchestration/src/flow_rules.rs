//! Flow run rules (Prefect's `core_policy.py` for flows, plus the flow-only global transforms).

use chrono::TimeDelta;
use prefect_domain::concurrency::{ConcurrencyLeaseHolder, LeaseHolderType};
use prefect_domain::flow_run::FlowRunPolicy;
use prefect_domain::state::{SetStateStatus, State, StateType};
use uuid::Uuid;

use crate::context::{
    Context, Effect, FlowRunData, MIN_CLIENT_VERSION_FOR_CONCURRENCY_LIMIT_LEASING, Version, WORKER_VERSIONS_THAT_MANAGE_DEPLOYMENT_CONCURRENCY,
};
use crate::engine::{Rule, StateSet};
use crate::global_policy;
use crate::shared_rules::{self, release_concurrency_lease};
use crate::store::{CollisionStrategy, OrchestrationStore, StoreError};

use StateType::*;

type Ctx = Context<FlowRunData>;

/// Every flow run rule and flow transform, with the memory each keeps between its hooks.
#[derive(Debug, Clone)]
pub enum FlowRule {
    PreserveDeploymentConcurrencyLeaseId,
    PreventDuplicateTransitions,
    HandleFlowTerminalStateTransitions {
        original_policy: Option<FlowRunPolicy>,
    },
    EnforceCancellingToCancelledTransition,
    BypassCancellingFlowRunsWithNoInfra,
    PreventPendingTransitions,
    ValidateDeploymentConcurrencyAtRunning,
    SecureFlowConcurrencySlots {
        acquired_limit_id: Option<Uuid>,
        acquired_lease_id: Option<Uuid>,
    },
    RemoveDeploymentConcurrencyLeaseForOldClientVersions,
    EnsureOnlyScheduledFlowsMarkedLate,
    HandlePausingFlows {
        key: Option<String>,
    },
    HandleResumingPausedFlows,
    CopyScheduledTime,
    WaitForScheduledTime,
    RetryFailedFlows,
    InstrumentFlowRunStateTransitions,
    ReleaseFlowConcurrencySlots,
    PreventResultDataLoss,
    EnforceDeploymentConcurrencyOnLate,
    // Global flow transforms (GlobalFlowPolicy).
    EnsureFlowRunStateTimestampIsUnique,
    /// SetRunStateType … SetNextScheduledStartTime, then UpdateStateDetails.
    CommonGlobalTransforms,
    UpdateSubflowParentTask,
    UpdateSubflowStateDetails,
    IncrementFlowRunCount,
    RemoveResumingIndicator,
}

impl FlowRule {
    pub fn secure_flow_concurrency_slots() -> Self {
        FlowRule::SecureFlowConcurrencySlots { acquired_limit_id: None, acquired_lease_id: None }
    }

    pub fn handle_flow_terminal_state_transitions() -> Self {
        FlowRule::HandleFlowTerminalStateTransitions { original_policy: None }
    }

    pub fn handle_pausing_flows() -> Self {
        FlowRule::HandlePausingFlows { key: None }
    }
}

impl<S: OrchestrationStore> Rule<FlowRunData, S> for FlowRule {
    fn name(&self) -> &'static str {
        match self {
            FlowRule::PreserveDeploymentConcurrencyLeaseId => "PreserveDeploymentConcurrencyLeaseId",
            FlowRule::PreventDuplicateTransitions => "PreventDuplicateTransitions",
            FlowRule::HandleFlowTerminalStateTransitions { .. } => "HandleFlowTerminalStateTransitions",
            FlowRule::EnforceCancellingToCancelledTransition => "EnforceCancellingToCancelledTransition",
            FlowRule::BypassCancellingFlowRunsWithNoInfra => "BypassCancellingFlowRunsWithNoInfra",
            FlowRule::PreventPendingTransitions => "PreventPendingTransitions",
            FlowRule::ValidateDeploymentConcurrencyAtRunning => "ValidateDeploymentConcurrencyAtRunning",
            FlowRule::SecureFlowConcurrencySlots { .. } => "SecureFlowConcurrencySlots",
            FlowRule::RemoveDeploymentConcurrencyLeaseForOldClientVersions => "RemoveDeploymentConcurrencyLeaseForOldClientVersions",
            FlowRule::EnsureOnlyScheduledFlowsMarkedLate => "EnsureOnlyScheduledFlowsMarkedLate",
            FlowRule::HandlePausingFlows { .. } => "HandlePausingFlows",
            FlowRule::HandleResumingPausedFlows => "HandleResumingPausedFlows",
            FlowRule::CopyScheduledTime => "CopyScheduledTime",
            FlowRule::WaitForScheduledTime => "WaitForScheduledTime",
            FlowRule::RetryFailedFlows => "RetryFailedFlows",
            FlowRule::InstrumentFlowRunStateTransitions => "InstrumentFlowRunStateTransitions",
            FlowRule::ReleaseFlowConcurrencySlots => "ReleaseFlowConcurrencySlots",
            FlowRule::PreventResultDataLoss => "PreventResultDataLoss",
            FlowRule::EnforceDeploymentConcurrencyOnLate => "EnforceDeploymentConcurrencyOnLate",
            FlowRule::EnsureFlowRunStateTimestampIsUnique => "EnsureFlowRunStateTimestampIsUnique",
            FlowRule::CommonGlobalTransforms => "CommonGlobalTransforms",
            FlowRule::UpdateSubflowParentTask => "UpdateSubflowParentTask",
            FlowRule::UpdateSubflowStateDetails => "UpdateSubflowStateDetails",
            FlowRule::IncrementFlowRunCount => "IncrementFlowRunCount",
            FlowRule::RemoveResumingIndicator => "RemoveResumingIndicator",
        }
    }

    fn from_states(&self) -> StateSet {
        match self {
            FlowRule::HandleFlowTerminalStateTransitions { .. } | FlowRule::PreventResultDataLoss => StateSet::TERMINAL,
            FlowRule::EnforceCancellingToCancelledTransition => StateSet::of(&[Cancelling]),
            FlowRule::BypassCancellingFlowRunsWithNoInfra => StateSet::of(&[Scheduled, Paused]),
            FlowRule::PreventPendingTransitions => StateSet::of(&[Pending, Cancelling, Running, Cancelled]),
            FlowRule::ValidateDeploymentConcurrencyAtRunning | FlowRule::RemoveDeploymentConcurrencyLeaseForOldClientVersions => StateSet::of(&[Pending]),
            FlowRule::SecureFlowConcurrencySlots { .. } => StateSet::ALL.without(&[Pending, Running, Cancelling]),
            FlowRule::HandleResumingPausedFlows => StateSet::of(&[Paused]),
            FlowRule::CopyScheduledTime | FlowRule::EnforceDeploymentConcurrencyOnLate => StateSet::of(&[Scheduled]),
            FlowRule::WaitForScheduledTime => StateSet::of(&[Scheduled, Pending]),
            FlowRule::RetryFailedFlows => StateSet::of(&[Running]),
            _ => StateSet::ALL,
        }
    }

    fn to_states(&self) -> StateSet {
        match self {
            FlowRule::HandleFlowTerminalStateTransitions { .. } => StateSet::ALL,
            FlowRule::PreventResultDataLoss => StateSet::TERMINAL,
            FlowRule::EnforceCancellingToCancelledTransition => StateSet::ALL.without(&[Cancelled]),
            FlowRule::BypassCancellingFlowRunsWithNoInfra => StateSet::of(&[Cancelling]),
            FlowRule::PreventPendingTransitions | FlowRule::SecureFlowConcurrencySlots { .. } | FlowRule::CopyScheduledTime => StateSet::of(&[Pending]),
            FlowRule::ValidateDeploymentConcurrencyAtRunning | FlowRule::WaitForScheduledTime => StateSet::of(&[Running]),
            FlowRule::RemoveDeploymentConcurrencyLeaseForOldClientVersions => StateSet::of(&[Running, Cancelling]),
            FlowRule::EnsureOnlyScheduledFlowsMarkedLate | FlowRule::EnforceDeploymentConcurrencyOnLate => StateSet::of(&[Scheduled]),
            FlowRule::HandlePausingFlows { .. } => StateSet::of(&[Paused]),
            FlowRule::RetryFailedFlows => StateSet::of(&[Failed]),
            _ => StateSet::ALL,
        }
    }

    fn is_universal(&self) -> bool {
        matches!(
            self,
            FlowRule::PreserveDeploymentConcurrencyLeaseId
                | FlowRule::InstrumentFlowRunStateTransitions
                | FlowRule::ReleaseFlowConcurrencySlots
                | FlowRule::EnsureFlowRunStateTimestampIsUnique
                | FlowRule::CommonGlobalTransforms
                | FlowRule::UpdateSubflowParentTask
                | FlowRule::UpdateSubflowStateDetails
                | FlowRule::IncrementFlowRunCount
                | FlowRule::RemoveResumingIndicator
        )
    }

    async fn before(&mut self, ctx: &mut Ctx, store: &mut S) -> Result<(), StoreError> {
        match self {
            FlowRule::PreserveDeploymentConcurrencyLeaseId => preserve_deployment_concurrency_lease_id(ctx),
            FlowRule::PreventDuplicateTransitions => prevent_duplicate_transitions(ctx),
            FlowRule::HandleFlowTerminalStateTransitions { original_policy } => handle_terminal_before(ctx, original_policy),
            FlowRule::EnforceCancellingToCancelledTransition => {
                ctx.reject(None, "Cannot transition flows that are cancelling to a state other than Cancelled.");
            }
            FlowRule::BypassCancellingFlowRunsWithNoInfra => bypass_cancelling_with_no_infra(ctx),
            FlowRule::PreventPendingTransitions => shared_rules::prevent_pending_transitions(ctx),
            FlowRule::ValidateDeploymentConcurrencyAtRunning => validate_deployment_concurrency_at_running(ctx, store).await?,
            FlowRule::SecureFlowConcurrencySlots { acquired_limit_id, acquired_lease_id } => {
                secure_flow_concurrency_slots(ctx, store, acquired_limit_id, acquired_lease_id).await?;
            }
            FlowRule::EnsureOnlyScheduledFlowsMarkedLate => ensure_only_scheduled_flows_marked_late(ctx),
            FlowRule::HandlePausingFlows { key } => handle_pausing_before(ctx, key),
            FlowRule::HandleResumingPausedFlows => handle_resuming_before(ctx),
            FlowRule::CopyScheduledTime => shared_rules::copy_scheduled_time(ctx),
            FlowRule::WaitForScheduledTime => shared_rules::wait_for_scheduled_time(ctx),
            FlowRule::RetryFailedFlows => retry_failed_flows(ctx),
            FlowRule::PreventResultDataLoss => prevent_result_data_loss(ctx),
            FlowRule::EnforceDeploymentConcurrencyOnLate => enforce_deployment_concurrency_on_late(ctx, store).await?,
            FlowRule::EnsureFlowRunStateTimestampIsUnique => {
                if let Some(proposed) = &mut ctx.proposed_state {
                    let mut candidate = proposed.timestamp;
                    while store.flow_run_state_timestamp_taken(ctx.run.id, candidate).await? {
                        candidate += TimeDelta::microseconds(1);
                    }
                    proposed.timestamp = candidate;
                }
            }
            FlowRule::CommonGlobalTransforms => {
                global_policy::common_before(ctx);
                let run_id = ctx.run.id;
                if let Some(proposed) = &mut ctx.proposed_state {
                    proposed.state_details.flow_run_id = Some(run_id);
                }
            }
            FlowRule::UpdateSubflowStateDetails => {
                if let (Some(parent), Some(proposed)) = (ctx.run.parent_task_run_id, &mut ctx.proposed_state) {
                    proposed.state_details.task_run_id = Some(parent);
                }
            }
            FlowRule::IncrementFlowRunCount => {
                if ctx.proposed_type() == Some(Running) && !(ctx.api_at_least_0_8_4() && ctx.run.empirical_policy.is_resuming()) {
                    ctx.run.run_count += 1;
                }
            }
            FlowRule::RemoveResumingIndicator => {
                let entering = ctx.proposed_state.as_ref().is_some_and(|p| p.state_type == Running || p.is_final());
                if ctx.api_at_least_0_8_4() && entering && ctx.run.empirical_policy.is_resuming() {
                    ctx.run.empirical_policy.resuming = Some(false);
                }
            }
            FlowRule::RemoveDeploymentConcurrencyLeaseForOldClientVersions
            | FlowRule::InstrumentFlowRunStateTransitions
            | FlowRule::ReleaseFlowConcurrencySlots
            | FlowRule::UpdateSubflowParentTask => {}
        }
        Ok(())
    }

    async fn after(&mut self, ctx: &mut Ctx, store: &mut S) -> Result<(), StoreError> {
        match self {
            FlowRule::RemoveDeploymentConcurrencyLeaseForOldClientVersions => {
                let Some(initial) = &ctx.initial_state else {
                    return Ok(());
                };
                let modern = ctx.client_version.as_deref().and_then(Version::parse).is_some_and(|v| v >= MIN_CLIENT_VERSION_FOR_CONCURRENCY_LIMIT_LEASING);
                if !modern && let Some(lease_id) = initial.state_details.deployment_concurrency_lease_id {
                    store.revoke_lease(lease_id).await?;
                }
            }
            FlowRule::HandlePausingFlows { key } => {
                if let Some(key) = key.take() {
                    ctx.run.empirical_policy.add_pause_key(key);
                }
                let keys: Vec<String> = ctx
                    .validated_state
                    .as_ref()
                    .and_then(|s| s.state_details.run_input_keyset.as_ref())
                    .map(|keyset| keyset.values().filter_map(|v| v.as_str().map(str::to_owned)).collect())
                    .unwrap_or_default();
                if !keys.is_empty() {
                    store.delete_flow_run_inputs(ctx.run.id, &keys).await?;
                }
            }
            FlowRule::HandleResumingPausedFlows => handle_resuming_after(ctx),
            FlowRule::InstrumentFlowRunStateTransitions => {
                if ctx.proposed_state.is_some()
                    && let Some(validated) = &ctx.validated_state
                {
                    ctx.effects.push(Effect::FlowRunStateChanged { initial: ctx.initial_state.clone(), validated: validated.clone() });
                }
            }
            FlowRule::ReleaseFlowConcurrencySlots => release_flow_concurrency_slots(ctx, store).await?,
            FlowRule::UpdateSubflowParentTask => {
                if ctx.proposed_state.is_none() {
                    return Ok(());
                }
                if let (Some(parent_task_run_id), Some(validated)) = (ctx.run.parent_task_run_id, &ctx.validated_state) {
                    let mut state = validated.fresh_copy(ctx.now);
                    state.state_details.child_flow_run_id = Some(ctx.run.id);
                    store.set_subflow_parent_task_state(parent_task_run_id, state).await?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    async fn cleanup(&mut self, ctx: &mut Ctx, store: &mut S) -> Result<(), StoreError> {
        match self {
            FlowRule::HandleFlowTerminalStateTransitions { original_policy } => {
                if let Some(policy) = original_policy.take() {
                    ctx.run.empirical_policy = policy;
                }
            }
            FlowRule::SecureFlowConcurrencySlots { acquired_limit_id, acquired_lease_id } => {
                let Some(limit_id) = acquired_limit_id.take() else {
                    return Ok(());
                };
                match acquired_lease_id.take() {
                    Some(lease_id) => {
                        release_concurrency_lease(store, lease_id, Some(&[limit_id]), 1).await?;
                        if let Some(validated) = &mut ctx.validated_state {
                            validated.state_details.deployment_concurrency_lease_id = None;
                        }
                    }
                    None => store.decrement_slots(&[limit_id], 1).await?,
                }
            }
            _ => {}
        }
        Ok(())
    }
}

fn preserve_deployment_concurrency_lease_id(ctx: &mut Ctx) {
    let lease_id = ctx.initial_state.as_ref().and_then(|s| s.state_details.deployment_concurrency_lease_id);
    if let (Some(lease_id), Some(proposed)) = (lease_id, &mut ctx.proposed_state)
        && proposed.state_details.deployment_concurrency_lease_id.is_none()
    {
        proposed.state_details.deployment_concurrency_lease_id = Some(lease_id);
    }
}

fn prevent_duplicate_transitions(ctx: &mut Ctx) {
    let (Some(initial), Some(proposed)) = (&ctx.initial_state, &ctx.proposed_state) else {
        return;
    };
    if let (Some(a), Some(b)) = (initial.state_details.transition_id, proposed.state_details.transition_id)
        && a == b
    {
        ctx.reject(None, "This run has already made this state transition.");
    }
}

fn handle_terminal_before(ctx: &mut Ctx, original_policy: &mut Option<FlowRunPolicy>) {
    let (Some(initial), Some(proposed)) = (&ctx.initial_state, &ctx.proposed_state) else {
        return;
    };
    *original_policy = Some(ctx.run.empirical_policy.clone());
    if matches!(proposed.state_type, Cancelling | Paused | Crashed) {
        let reason = format!("Run is already in terminal state {}.", initial.state_type);
        ctx.abort(reason);
        return;
    }
    let initial_persisted = initial.state_type == Completed && initial.has_persisted_result();
    if initial_persisted && !proposed.is_final() {
        ctx.reject(None, "Run is already COMPLETED.");
        return;
    }
    if initial_persisted && proposed.state_type == Completed && !proposed.has_persisted_result() {
        ctx.reject(None, "Cannot overwrite a COMPLETED state that carries persisted result data with one that does not.");
        return;
    }
    if proposed.state_type == Scheduled && ctx.run.deployment_id.is_none() {
        ctx.abort("Cannot reschedule a run without an associated deployment.");
        return;
    }
    if !proposed.is_final() && ctx.api_at_least_0_8_4() {
        let scheduled = proposed.state_type == Scheduled;
        let policy = &mut ctx.run.empirical_policy;
        policy.resuming = Some(false);
        policy.pause_keys = Some(Vec::new());
        policy.retry_type = scheduled.then(|| "reschedule".to_owned());
    }
}

fn prevent_result_data_loss(ctx: &mut Ctx) {
    let (Some(initial), Some(proposed)) = (&ctx.initial_state, &ctx.proposed_state) else {
        return;
    };
    if initial.state_type == Completed && initial.has_persisted_result() && proposed.state_type == Completed && !proposed.has_persisted_result() {
        ctx.reject(None, "Cannot overwrite a COMPLETED state that carries persisted result data with one that does not.");
    }
}

fn bypass_cancelling_with_no_infra(ctx: &mut Ctx) {
    let (Some(initial), Some(_)) = (&ctx.initial_state, &ctx.proposed_state) else {
        return;
    };
    let now = ctx.now;
    if (initial.state_type == Scheduled && ctx.run.infrastructure_pid.as_deref().is_none_or(str::is_empty)) || initial.name() == "Resuming" {
        ctx.reject(Some(State::new(Cancelled, now)), "Scheduled flow run has no infrastructure to terminate.");
    } else if initial.state_type == Paused && initial.state_details.pause_reschedule {
        ctx.reject(Some(State::new(Cancelled, now)), "Suspended flow run has no infrastructure to terminate.");
    }
}

fn lease_ttl(grace_period_seconds: Option<f64>, ctx: &Ctx) -> f64 {
    grace_period_seconds.unwrap_or(ctx.settings.initial_deployment_lease_duration_seconds)
}

async fn validate_deployment_concurrency_at_running<S: OrchestrationStore>(ctx: &mut Ctx, store: &mut S) -> Result<(), StoreError> {
    let (Some(initial), Some(proposed)) = (&ctx.initial_state, &mut ctx.proposed_state) else {
        return Ok(());
    };
    let lease_id = initial.state_details.deployment_concurrency_lease_id;
    proposed.state_details.deployment_concurrency_lease_id = lease_id;
    let Some(lease_id) = lease_id else {
        return Ok(());
    };
    let client = ctx.client_version.as_deref().and_then(Version::parse).unwrap_or(Version(2, 0, 0));
    if client < MIN_CLIENT_VERSION_FOR_CONCURRENCY_LIMIT_LEASING {
        return Ok(());
    }
    let Some(deployment_id) = ctx.run.deployment_id else {
        return Ok(());
    };
    let Some(deployment) = store.deployment_concurrency(deployment_id).await? else {
        return Ok(());
    };
    let Some(limit) = deployment.limit else {
        return Ok(());
    };
    let ttl = lease_ttl(deployment.grace_period_seconds, ctx);
    if store.renew_lease(lease_id, ttl).await? {
        return Ok(());
    }
    if store.increment_slots(&[limit.id], 1).await? {
        let holder = ConcurrencyLeaseHolder { kind: LeaseHolderType::FlowRun, id: ctx.run.id };
        let new_lease = store.create_lease(&[limit.id], 1, ttl, Some(holder)).await?;
        if let Some(proposed) = &mut ctx.proposed_state {
            proposed.state_details.deployment_concurrency_lease_id = Some(new_lease);
        }
        return Ok(());
    }
    let now = ctx.now;
    ctx.reject(
        Some(State::with_message(Cancelled, "Deployment concurrency slot lost during provisioning - no slots available to continue execution", now)),
        "Deployment concurrency limit reached after lease expiry.",
    );
    Ok(())
}

async fn secure_flow_concurrency_slots<S: OrchestrationStore>(
    ctx: &mut Ctx,
    store: &mut S,
    acquired_limit_id: &mut Option<Uuid>,
    acquired_lease_id: &mut Option<Uuid>,
) -> Result<(), StoreError> {
    let Some(deployment_id) = ctx.run.deployment_id else {
        return Ok(());
    };
    if ctx.proposed_state.is_none() || ctx.client_version.as_deref().is_some_and(|v| WORKER_VERSIONS_THAT_MANAGE_DEPLOYMENT_CONCURRENCY.contains(&v)) {
        return Ok(());
    }
    let Some(deployment) = store.deployment_concurrency(deployment_id).await? else {
        ctx.abort("Deployment not found.");
        return Ok(());
    };
    let Some(limit) = deployment.limit else {
        return Ok(());
    };
    if limit.limit == 0 {
        ctx.abort("The deployment concurrency limit is 0. The flow will deadlock if submitted again.");
        return Ok(());
    }
    if store.increment_slots(&[limit.id], 1).await? {
        let ttl = lease_ttl(deployment.grace_period_seconds, ctx);
        let lease_id = store.create_lease(&[limit.id], 1, ttl, None).await?;
        if let Some(proposed) = &mut ctx.proposed_state {
            proposed.state_details.deployment_concurrency_lease_id = Some(lease_id);
        }
        *acquired_limit_id = Some(limit.id);
        *acquired_lease_id = Some(lease_id);
        return Ok(());
    }
    let now = ctx.now;
    match deployment.collision_strategy {
        CollisionStrategy::Enqueue => {
            let wait = prefect_domain::time::from_seconds(ctx.settings.deployment_concurrency_slot_wait_seconds);
            ctx.reject(Some(State::scheduled("AwaitingConcurrencySlot", now + wait, now)), "Deployment concurrency limit reached.");
        }
        CollisionStrategy::CancelNew => {
            ctx.reject(Some(State::with_message(Cancelled, "Deployment concurrency limit reached.", now)), "Deployment concurrency limit reached.");
        }
    }
    Ok(())
}

async fn release_flow_concurrency_slots<S: OrchestrationStore>(ctx: &mut Ctx, store: &mut S) -> Result<(), StoreError> {
    let Some(proposed) = &ctx.proposed_state else {
        return Ok(());
    };
    let holding = |t: Option<StateType>| matches!(t, Some(Running | Cancelling | Pending));
    let leaves_slot_holding_states = holding(ctx.initial_type()) && !holding(Some(proposed.state_type));
    if !leaves_slot_holding_states {
        return Ok(());
    }
    if proposed.state_type == Scheduled && proposed.name() == "AwaitingRetry" && ctx.response_status == SetStateStatus::Reject {
        // An in-process retry keeps its slot.
        return Ok(());
    }
    let Some(deployment_id) = ctx.run.deployment_id else {
        return Ok(());
    };
    let deployment = store.deployment_concurrency(deployment_id).await?;
    let limit_id = deployment.and_then(|d| d.limit).map(|l| l.id);
    let lease_id = ctx.initial_state.as_ref().and_then(|s| s.state_details.deployment_concurrency_lease_id);
    match (lease_id, limit_id) {
        (Some(lease_id), _) => {
            let fallback: Vec<Uuid> = limit_id.into_iter().collect();
            release_concurrency_lease(store, lease_id, Some(&fallback), 1).await
        }
        (None, Some(limit_id)) => store.decrement_slots(&[limit_id], 1).await,
        (None, None) => Ok(()),
    }
}

fn ensure_only_scheduled_flows_marked_late(ctx: &mut Ctx) {
    let (Some(initial), Some(proposed)) = (&ctx.initial_state, &ctx.proposed_state) else {
        return;
    };
    if proposed.state_type == Scheduled && proposed.name() == "Late" {
        if initial.state_type != Scheduled {
            ctx.reject(None, "Only scheduled flows can be marked late.");
        } else if initial.name() == "Late" {
            ctx.reject(None, "This flow run is already marked late.");
        }
    }
}

async fn enforce_deployment_concurrency_on_late<S: OrchestrationStore>(ctx: &mut Ctx, store: &mut S) -> Result<(), StoreError> {
    let (Some(_), Some(proposed)) = (&ctx.initial_state, &ctx.proposed_state) else {
        return Ok(());
    };
    if !(proposed.state_type == Scheduled && proposed.name() == "Late") {
        return Ok(());
    }
    let Some(deployment_id) = ctx.run.deployment_id else {
        return Ok(());
    };
    let Some(deployment) = store.deployment_concurrency(deployment_id).await? else {
        return Ok(());
    };
    if deployment.collision_strategy != CollisionStrategy::CancelNew {
        return Ok(());
    }
    let Some(limit) = deployment.limit else {
        return Ok(());
    };
    if limit.active_slots >= limit.limit {
        let now = ctx.now;
        ctx.reject(
            Some(State::with_message(Cancelled, "Deployment concurrency limit reached.", now)),
            "Deployment concurrency limit is full and uses the CANCEL_NEW strategy.",
        );
    }
    Ok(())
}

fn handle_pausing_before(ctx: &mut Ctx, key: &mut Option<String>) {
    let Some(proposed) = &ctx.proposed_state else {
        return;
    };
    let verb = if proposed.name() == "Suspended" { "suspend" } else { "pause" };
    let Some(initial) = &ctx.initial_state else {
        ctx.abort(format!("Cannot {verb} flows with no state."));
        return;
    };
    if initial.state_type != Running {
        ctx.reject(None, format!("Cannot {verb} flows that are not currently running."));
        return;
    }
    let pause_key = proposed.state_details.pause_key.clone().unwrap_or_else(|| Uuid::new_v4().to_string());
    if ctx.run.empirical_policy.has_pause_key(&pause_key) {
        ctx.reject(None, format!("This {verb} has already fired."));
        return;
    }
    if proposed.state_details.pause_reschedule {
        if ctx.run.parent_task_run_id.is_some() {
            ctx.abort(format!("Cannot {verb} subflows."));
            return;
        }
        if ctx.run.deployment_id.is_none() {
            ctx.abort(format!("Cannot {verb} flows without a deployment."));
            return;
        }
    }
    *key = Some(pause_key);
}

fn handle_resuming_before(ctx: &mut Ctx) {
    let (Some(initial), Some(proposed)) = (&ctx.initial_state, &ctx.proposed_state) else {
        return;
    };
    let allowed = matches!(proposed.state_type, Running | Scheduled | Cancelling) || proposed.is_final();
    if !allowed {
        let reason = format!("This run cannot transition to the {} state from the {} state.", proposed.state_type, initial.state_type);
        ctx.reject(None, reason);
        return;
    }
    let verb = if proposed.name() == "Suspended" { "suspend" } else { "pause" };
    let display = proposed.name.as_deref().map_or_else(|| proposed.state_type.as_str().to_lowercase(), str::to_lowercase);
    if initial.state_details.pause_reschedule && ctx.run.deployment_id.is_none() {
        ctx.reject(None, format!("Cannot reschedule a {display} flow run without a deployment."));
        return;
    }
    if proposed.state_type == Cancelling {
        return;
    }
    if let Some(timeout) = initial.state_details.pause_timeout
        && timeout < ctx.now
    {
        let now = ctx.now;
        ctx.reject(
            Some(State::with_message(Failed, format!("The flow was {display} and never resumed."), now)),
            format!("The flow run {verb} has timed out and can no longer resume."),
        );
    }
}

fn handle_resuming_after(ctx: &mut Ctx) {
    let suspended = ctx.initial_state.as_ref().is_some_and(|s| s.state_details.pause_reschedule);
    let to_scheduled = ctx.validated_state.as_ref().is_some_and(|s| s.state_type == Scheduled);
    let api_ok = ctx.api_at_least_0_8_4();
    let policy = &mut ctx.run.empirical_policy;
    if ctx.initial_state.is_some() && !suspended && to_scheduled && api_ok {
        policy.resuming = Some(false);
        policy.pause_keys = Some(Vec::new());
        policy.retry_type = Some("reschedule".to_owned());
    } else {
        policy.resuming = Some(true);
    }
}

fn retry_failed_flows(ctx: &mut Ctx) {
    let (Some(initial), Some(proposed)) = (&ctx.initial_state, &ctx.proposed_state) else {
        return;
    };
    let retries = ctx.run.empirical_policy.retries;
    if retries.is_none_or(|r| ctx.run.run_count > r) {
        ctx.run.empirical_policy.retry_type = None;
        return;
    }
    let delay = ctx.run.empirical_policy.retry_delay.unwrap_or(0);
    let now = ctx.now;
    let mut retry = State::awaiting_retry(now + TimeDelta::seconds(delay), now);
    retry.message = proposed.message.clone();
    retry.data = proposed.data.clone();
    retry.state_details.deployment_concurrency_lease_id = initial.state_details.deployment_concurrency_lease_id;
    if ctx.api_at_least_0_8_4() {
        let policy = &mut ctx.run.empirical_policy;
        policy.resuming = Some(false);
        policy.pause_keys = Some(Vec::new());
        policy.retry_type = Some("in_process".to_owned());
    }
    ctx.reject(Some(retry), "Retrying");
}
