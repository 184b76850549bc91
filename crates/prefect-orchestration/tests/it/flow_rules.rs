//! Flow run rules under `FlowPolicy::{Core, Minimal, MarkLateRuns}` (Prefect's `core_policy.py`).

use prefect_domain::concurrency::{ConcurrencyLeaseHolder, LeaseHolderType};
use prefect_domain::flow_run::FlowRunPolicy;
use prefect_domain::state::StateType::{self, *};
use prefect_domain::state::{SetStateStatus, State};
use prefect_orchestration::store::CollisionStrategy::{CancelNew, Enqueue};
use prefect_orchestration::{Effect, FlowPolicy, OrchestrationStore, Version};
use serde_json::json;
use uuid::Uuid;

use crate::support::*;

const TERMINAL: [StateType; 4] = [Completed, Failed, Cancelled, Crashed];

fn with_lease(state: State, lease_id: Uuid) -> State {
    state.with_details(|d| d.deployment_concurrency_lease_id = Some(lease_id))
}

fn lived_policy() -> FlowRunPolicy {
    FlowRunPolicy {
        retries: Some(1),
        retry_delay: Some(5),
        pause_keys: Some(vec!["pause-1".to_owned()]),
        resuming: Some(true),
        retry_type: Some("in_process".to_owned()),
        ..FlowRunPolicy::default()
    }
}

// --- PreserveDeploymentConcurrencyLeaseId ---------------------------------------------

#[tokio::test]
async fn lease_id_is_carried_into_a_proposal_without_one() {
    let mut store = store();
    let lease_id = Uuid::now_v7();
    let mut ctx = flow_ctx(flow_run(), Some(with_lease(current(Running), lease_id)), proposal(Completed));
    run_flow(&mut ctx, &mut store).await;
    assert_accepted(&ctx);
    assert_eq!(validated(&ctx).state_details.deployment_concurrency_lease_id, Some(lease_id));
}

#[tokio::test]
async fn lease_id_sent_with_the_proposal_wins() {
    let mut store = store();
    let (old, new) = (Uuid::now_v7(), Uuid::now_v7());
    let mut ctx = flow_ctx(flow_run(), Some(with_lease(current(Running), old)), with_lease(proposal(Completed), new));
    run_flow(&mut ctx, &mut store).await;
    assert_eq!(validated(&ctx).state_details.deployment_concurrency_lease_id, Some(new));
}

#[tokio::test]
async fn lease_id_is_carried_by_forced_transitions() {
    let mut store = store();
    let lease_id = Uuid::now_v7();
    let mut ctx = flow_ctx(flow_run(), Some(with_lease(current(Running), lease_id)), proposal(Crashed));
    run_flow_with(FlowPolicy::Minimal, &mut ctx, &mut store).await;
    assert_accepted(&ctx);
    assert_eq!(validated(&ctx).state_details.deployment_concurrency_lease_id, Some(lease_id));
}

// --- PreventDuplicateTransitions -----------------------------------------------------

#[tokio::test]
async fn repeated_transition_id_is_rejected_with_the_current_state() {
    let mut store = store();
    let transition_id = Some(Uuid::now_v7());
    let pending = current(Pending).with_details(|d| d.transition_id = transition_id);
    let mut ctx = flow_ctx(flow_run(), Some(pending), proposal(Running).with_details(|d| d.transition_id = transition_id));
    run_flow(&mut ctx, &mut store).await;
    assert_eq!(reject_reason(&ctx), "This run has already made this state transition.");
    assert_nothing_written(&ctx);
    assert_eq!(ctx.run.run_count, 0, "a duplicate RUNNING proposal does not count as a run");
    assert_eq!(ctx.run.state_type, None, "run bookkeeping is untouched");
    assert!(ctx.effects.is_empty());
}

#[tokio::test]
async fn distinct_transition_ids_are_accepted() {
    let mut store = store();
    let pending = current(Pending).with_details(|d| d.transition_id = Some(Uuid::now_v7()));
    let mut ctx = flow_ctx(flow_run(), Some(pending), proposal(Running).with_details(|d| d.transition_id = Some(Uuid::now_v7())));
    run_flow(&mut ctx, &mut store).await;
    assert_accepted(&ctx);
    assert_eq!(ctx.run.run_count, 1);
}

// --- HandleFlowTerminalStateTransitions ----------------------------------------------

#[tokio::test]
async fn terminal_runs_cannot_become_cancelling_paused_or_crashed() {
    for from in TERMINAL {
        for to in [Cancelling, Paused, Crashed] {
            let mut store = store();
            let mut ctx = flow_ctx(flow_run(), Some(current(from)), proposal(to));
            run_flow(&mut ctx, &mut store).await;
            assert_eq!(abort_reason(&ctx), format!("Run is already in terminal state {from}."), "{from} -> {to}");
            assert_nothing_written(&ctx);
        }
    }
}

#[tokio::test]
async fn completed_run_with_persisted_result_cannot_run_again() {
    for to in [Running, Pending, Scheduled] {
        let mut store = store();
        let deployment_id = deployment_without_limit(&mut store);
        let completed = current(Completed).with_data(persisted_result());
        let mut run = deployment_run(deployment_id);
        run.run_count = 1;
        let mut ctx = flow_ctx(run, Some(completed), proposal(to));
        run_flow(&mut ctx, &mut store).await;
        assert_eq!(reject_reason(&ctx), "Run is already COMPLETED.", "COMPLETED -> {to}");
        assert_nothing_written(&ctx);
        assert_eq!(ctx.run.run_count, 1);
    }
}

#[tokio::test]
async fn completed_run_without_persisted_result_can_run_again() {
    for completed in [current(Completed), current(Completed).with_data(unpersisted_result())] {
        let mut store = store();
        let mut run = flow_run();
        run.run_count = 1;
        let mut ctx = flow_ctx(run, Some(completed), proposal(Running));
        run_flow(&mut ctx, &mut store).await;
        assert_accepted(&ctx);
        assert_eq!(validated(&ctx).state_type, Running);
        assert_eq!(ctx.run.run_count, 2);
    }
}

#[tokio::test]
async fn persisted_completion_cannot_be_replaced_by_one_without_result_data() {
    let overwrite = "Cannot overwrite a COMPLETED state that carries persisted result data with one that does not.";
    for replacement in [proposal(Completed), proposal(Completed).with_data(unpersisted_result())] {
        let mut store = store();
        let mut ctx = flow_ctx(flow_run(), Some(current(Completed).with_data(persisted_result())), replacement);
        run_flow(&mut ctx, &mut store).await;
        assert_eq!(reject_reason(&ctx), overwrite);
        assert_nothing_written(&ctx);
        assert!(ctx.effects.is_empty());
    }
}

#[tokio::test]
async fn persisted_completion_can_move_to_other_final_states() {
    for replacement in [proposal(Completed).with_data(persisted_result()), proposal(Failed), proposal(Cancelled)] {
        let mut store = store();
        let expected = replacement.state_type;
        let mut ctx = flow_ctx(flow_run(), Some(current(Completed).with_data(persisted_result())), replacement);
        run_flow(&mut ctx, &mut store).await;
        assert_accepted(&ctx);
        assert_eq!(validated(&ctx).state_type, expected);
    }
}

#[tokio::test]
async fn terminal_run_without_deployment_cannot_be_rescheduled() {
    for from in TERMINAL {
        let mut store = store();
        let mut ctx = flow_ctx(flow_run(), Some(current(from)), proposal(Scheduled));
        run_flow(&mut ctx, &mut store).await;
        assert_eq!(abort_reason(&ctx), "Cannot reschedule a run without an associated deployment.");
        assert_nothing_written(&ctx);
    }
}

#[tokio::test]
async fn rescheduling_a_terminal_deployment_run_resets_its_retry_bookkeeping() {
    let mut store = store();
    let deployment_id = deployment_without_limit(&mut store);
    let mut run = deployment_run(deployment_id);
    run.empirical_policy = lived_policy();
    let mut ctx = flow_ctx(run, Some(current(Failed)), proposal(Scheduled));
    run_flow(&mut ctx, &mut store).await;
    assert_accepted(&ctx);
    let policy = &ctx.run.empirical_policy;
    assert_eq!(policy.resuming, Some(false));
    assert_eq!(policy.pause_keys, Some(Vec::new()));
    assert_eq!(policy.retry_type.as_deref(), Some("reschedule"));
    assert_eq!(policy.retries, Some(1), "retry settings themselves are kept");
}

#[tokio::test]
async fn rerunning_a_terminal_run_clears_the_retry_type() {
    let mut store = store();
    let mut run = flow_run();
    run.empirical_policy = lived_policy();
    run.run_count = 2;
    let mut ctx = flow_ctx(run, Some(current(Failed)), proposal(Running));
    run_flow(&mut ctx, &mut store).await;
    assert_accepted(&ctx);
    let policy = &ctx.run.empirical_policy;
    assert_eq!(policy.retry_type, None);
    assert_eq!(policy.pause_keys, Some(Vec::new()));
    assert_eq!(policy.resuming, Some(false));
    assert_eq!(ctx.run.run_count, 3, "no longer resuming, so the rerun counts");
}

#[tokio::test]
async fn terminal_to_final_transitions_keep_the_policy() {
    let mut store = store();
    let mut run = flow_run();
    run.empirical_policy = lived_policy();
    let mut ctx = flow_ctx(run, Some(current(Failed)), proposal(Completed));
    run_flow(&mut ctx, &mut store).await;
    assert_accepted(&ctx);
    assert_eq!(ctx.run.empirical_policy.retry_type.as_deref(), Some("in_process"));
    assert_eq!(ctx.run.empirical_policy.pause_keys, Some(vec!["pause-1".to_owned()]));
}

#[tokio::test]
async fn old_api_clients_leave_the_policy_alone_when_leaving_terminal_states() {
    let mut store = store();
    let mut run = flow_run();
    run.empirical_policy = lived_policy();
    let mut ctx = flow_ctx(run, Some(current(Failed)), proposal(Running));
    ctx.api_version = Some(Version(0, 8, 3));
    run_flow(&mut ctx, &mut store).await;
    assert_accepted(&ctx);
    assert_eq!(ctx.run.empirical_policy.retry_type.as_deref(), Some("in_process"));
    assert_eq!(ctx.run.empirical_policy.pause_keys, Some(vec!["pause-1".to_owned()]));
}

#[tokio::test]
async fn policy_reset_is_reverted_when_a_later_rule_rejects() {
    let mut store = store();
    let deployment = deployment_with_limit(&mut store, 1, Enqueue);
    lease_slot(&mut store, deployment.limit_id, 300.0).await;
    let mut run = deployment_run(deployment.id);
    run.empirical_policy = lived_policy();
    let mut ctx = flow_ctx(run, Some(current(Failed)), proposal(Pending));
    run_flow(&mut ctx, &mut store).await;
    assert_eq!(reject_reason(&ctx), "Deployment concurrency limit reached.");
    assert_eq!(validated(&ctx).name(), "AwaitingConcurrencySlot");
    assert_eq!(ctx.run.empirical_policy, lived_policy(), "HandleFlowTerminalStateTransitions fizzled and restored the policy");
}

#[tokio::test]
async fn policy_reset_is_reverted_when_a_later_rule_aborts() {
    let mut store = store();
    let mut run = flow_run();
    run.empirical_policy = lived_policy();
    let mut ctx = flow_ctx(run, Some(current(Cancelled)), proposal(Pending));
    run_flow(&mut ctx, &mut store).await;
    assert_eq!(abort_reason(&ctx), "This run is in a CANCELLED state and cannot transition to a PENDING state.");
    assert_eq!(ctx.run.empirical_policy, lived_policy());
}

// --- EnforceCancellingToCancelledTransition ------------------------------------------

#[tokio::test]
async fn cancelling_runs_can_only_become_cancelled() {
    for to in [Scheduled, Pending, Running, Completed, Failed, Crashed, Paused, Cancelling] {
        let mut store = store();
        let mut ctx = flow_ctx(flow_run(), Some(current(Cancelling)), proposal(to));
        run_flow(&mut ctx, &mut store).await;
        assert_eq!(reject_reason(&ctx), "Cannot transition flows that are cancelling to a state other than Cancelled.", "-> {to}");
        assert_nothing_written(&ctx);
    }
}

#[tokio::test]
async fn cancelling_runs_can_be_cancelled() {
    let mut store = store();
    let mut ctx = flow_ctx(flow_run(), Some(current(Cancelling)), proposal(Cancelled));
    run_flow(&mut ctx, &mut store).await;
    assert_accepted(&ctx);
    assert_eq!(validated(&ctx).state_type, Cancelled);
}

// --- BypassCancellingFlowRunsWithNoInfra ---------------------------------------------

#[tokio::test]
async fn scheduled_run_without_infrastructure_is_cancelled_directly() {
    let mut store = store();
    let mut ctx = flow_ctx(flow_run(), Some(scheduled("Scheduled", now())), proposal(Cancelling));
    run_flow(&mut ctx, &mut store).await;
    assert_eq!(reject_reason(&ctx), "Scheduled flow run has no infrastructure to terminate.");
    assert_eq!(validated(&ctx).state_type, Cancelled);
    assert_eq!(ctx.run.state_type, Some(Cancelled));
    assert_eq!(ctx.run.end_time, Some(now()));
}

#[tokio::test]
async fn scheduled_run_with_infrastructure_goes_through_cancelling() {
    let mut store = store();
    let mut run = flow_run();
    run.infrastructure_pid = Some("worker-1:4242".to_owned());
    let mut ctx = flow_ctx(run, Some(scheduled("Scheduled", now())), proposal(Cancelling));
    run_flow(&mut ctx, &mut store).await;
    assert_accepted(&ctx);
    assert_eq!(validated(&ctx).state_type, Cancelling);
}

#[tokio::test]
async fn resuming_run_is_cancelled_directly_even_with_infrastructure() {
    let mut store = store();
    let mut run = flow_run();
    run.infrastructure_pid = Some("worker-1:4242".to_owned());
    let mut ctx = flow_ctx(run, Some(scheduled("Resuming", now())), proposal(Cancelling));
    run_flow(&mut ctx, &mut store).await;
    assert_eq!(reject_reason(&ctx), "Scheduled flow run has no infrastructure to terminate.");
    assert_eq!(validated(&ctx).state_type, Cancelled);
}

#[tokio::test]
async fn suspended_run_is_cancelled_directly() {
    let mut store = store();
    let deployment_id = deployment_without_limit(&mut store);
    let suspended = current(Paused).named("Suspended").with_details(|d| d.pause_reschedule = true);
    let mut ctx = flow_ctx(deployment_run(deployment_id), Some(suspended), proposal(Cancelling));
    run_flow(&mut ctx, &mut store).await;
    assert_eq!(reject_reason(&ctx), "Suspended flow run has no infrastructure to terminate.");
    assert_eq!(validated(&ctx).state_type, Cancelled);
}

#[tokio::test]
async fn paused_run_goes_through_cancelling() {
    let mut store = store();
    let mut ctx = flow_ctx(flow_run(), Some(current(Paused)), proposal(Cancelling));
    run_flow(&mut ctx, &mut store).await;
    assert_accepted(&ctx);
    assert_eq!(validated(&ctx).state_type, Cancelling);
}

#[tokio::test]
async fn forced_cancel_of_scheduled_run_without_infrastructure_is_cancelled_directly() {
    let mut store = store();
    let mut ctx = flow_ctx(flow_run(), Some(scheduled("Scheduled", now())), proposal(Cancelling));
    run_flow_with(FlowPolicy::Minimal, &mut ctx, &mut store).await;
    assert_eq!(ctx.response_status, SetStateStatus::Reject);
    assert_eq!(validated(&ctx).state_type, Cancelled);
}

// --- PreventPendingTransitions -------------------------------------------------------

#[tokio::test]
async fn runs_cannot_go_back_to_pending() {
    for from in [Pending, Running, Cancelled] {
        let mut store = store();
        let mut ctx = flow_ctx(flow_run(), Some(current(from)), proposal(Pending));
        run_flow(&mut ctx, &mut store).await;
        assert_eq!(abort_reason(&ctx), format!("This run is in a {from} state and cannot transition to a PENDING state."));
        assert_nothing_written(&ctx);
    }
}

#[tokio::test]
async fn renamed_pending_is_accepted_and_inherits_schedule_and_lease() {
    let mut store = store();
    let (lease_id, other_lease) = (Uuid::now_v7(), Uuid::now_v7());
    let scheduled_time = now() - secs(30);
    let pending = with_lease(current(Pending), lease_id).with_details(|d| d.scheduled_time = Some(scheduled_time));
    let submitting = with_lease(proposal(Pending).named("Submitting"), other_lease);
    let mut ctx = flow_ctx(flow_run(), Some(pending), submitting);
    run_flow(&mut ctx, &mut store).await;
    assert_accepted(&ctx);
    let state = validated(&ctx);
    assert_eq!(state.name(), "Submitting");
    assert_eq!(state.state_details.scheduled_time, Some(scheduled_time));
    assert_eq!(state.state_details.deployment_concurrency_lease_id, Some(lease_id));
}

#[tokio::test]
async fn pending_cannot_be_renamed_to_pending_or_to_the_same_name() {
    for (from, to) in [("Submitting", "Pending"), ("Submitting", "Submitting")] {
        let mut store = store();
        let mut ctx = flow_ctx(flow_run(), Some(current(Pending).named(from)), proposal(Pending).named(to));
        run_flow(&mut ctx, &mut store).await;
        assert_eq!(abort_reason(&ctx), "This run is in a PENDING state and cannot transition to a PENDING state.");
    }
}

// --- ValidateDeploymentConcurrencyAtRunning ------------------------------------------

#[tokio::test]
async fn modern_client_renews_the_deployment_lease_at_running() {
    let mut store = store();
    let deployment = deployment_with_limit(&mut store, 1, Enqueue);
    if let Some(d) = store.deployments.get_mut(&deployment.id) {
        d.grace_period_seconds = Some(120.0);
    }
    let lease_id = lease_slot(&mut store, deployment.limit_id, 10.0).await;
    let mut ctx = flow_ctx(deployment_run(deployment.id), Some(with_lease(current(Pending), lease_id)), proposal(Running));
    ctx.client_version = Some("3.5.0".to_owned());
    run_flow(&mut ctx, &mut store).await;
    assert_accepted(&ctx);
    assert_eq!(validated(&ctx).state_details.deployment_concurrency_lease_id, Some(lease_id));
    assert_eq!(lease(&store, lease_id).expect("lease kept").expiration, now() + secs(120));
    assert_eq!(active_slots(&store, deployment.limit_id), 1);
}

#[tokio::test]
async fn renewal_without_grace_period_uses_the_initial_lease_duration() {
    let mut store = store();
    let deployment = deployment_with_limit(&mut store, 1, Enqueue);
    let lease_id = lease_slot(&mut store, deployment.limit_id, 10.0).await;
    let mut ctx = flow_ctx(deployment_run(deployment.id), Some(with_lease(current(Pending), lease_id)), proposal(Running));
    ctx.client_version = Some("3.4.11".to_owned());
    run_flow(&mut ctx, &mut store).await;
    assert_accepted(&ctx);
    assert_eq!(lease(&store, lease_id).expect("lease kept").expiration, now() + secs(300));
}

#[tokio::test]
async fn reaped_lease_is_replaced_by_a_fresh_slot_at_running() {
    let mut store = store();
    let deployment = deployment_with_limit(&mut store, 1, CancelNew);
    let lease_id = lease_slot(&mut store, deployment.limit_id, 10.0).await;
    // The lease repossessor revoked the expired lease and returned its slot.
    store.revoke_lease(lease_id).await.expect("revoke");
    store.decrement_slots(&[deployment.limit_id], 1).await.expect("decrement");
    let run = deployment_run(deployment.id);
    let run_id = run.id;
    let mut ctx = flow_ctx(run, Some(with_lease(current(Pending), lease_id)), proposal(Running));
    ctx.client_version = Some("3.5.0".to_owned());
    run_flow(&mut ctx, &mut store).await;
    assert_accepted(&ctx);
    let new_lease_id = validated(&ctx).state_details.deployment_concurrency_lease_id.expect("a new lease");
    assert_ne!(new_lease_id, lease_id);
    let new_lease = lease(&store, new_lease_id).expect("lease stored");
    assert_eq!(new_lease.resource_ids, vec![deployment.limit_id]);
    assert_eq!(new_lease.holder, Some(ConcurrencyLeaseHolder { kind: LeaseHolderType::FlowRun, id: run_id }));
    assert_eq!(new_lease.expiration, now() + secs(300));
    assert_eq!(active_slots(&store, deployment.limit_id), 1);
}

#[tokio::test]
async fn run_that_lost_its_slot_is_cancelled_at_running() {
    let mut store = store();
    let deployment = deployment_with_limit(&mut store, 1, Enqueue);
    let lease_id = lease_slot(&mut store, deployment.limit_id, 10.0).await;
    store.revoke_lease(lease_id).await.expect("revoke");
    store.decrement_slots(&[deployment.limit_id], 1).await.expect("decrement");
    let other_run_lease = lease_slot(&mut store, deployment.limit_id, 300.0).await;
    let mut ctx = flow_ctx(deployment_run(deployment.id), Some(with_lease(current(Pending), lease_id)), proposal(Running));
    ctx.client_version = Some("3.9.1".to_owned());
    run_flow(&mut ctx, &mut store).await;
    assert_eq!(reject_reason(&ctx), "Deployment concurrency limit reached after lease expiry.");
    let state = validated(&ctx);
    assert_eq!(state.state_type, Cancelled);
    assert_eq!(state.message.as_deref(), Some("Deployment concurrency slot lost during provisioning - no slots available to continue execution"));
    assert_eq!(ctx.run.run_count, 0, "the run never started");
    assert!(lease(&store, other_run_lease).is_some(), "the slot holder's lease is untouched");
}

#[tokio::test]
async fn expired_lease_that_was_not_reaped_yet_is_renewed() {
    // Prefect's lease stores renew any lease still on record, expired or not.
    let mut store = store();
    let deployment = deployment_with_limit(&mut store, 1, Enqueue);
    let lease_id = lease_slot(&mut store, deployment.limit_id, 10.0).await;
    if let Some(l) = store.leases.get_mut(&lease_id) {
        l.expiration = now() - secs(1);
    }
    let mut ctx = flow_ctx(deployment_run(deployment.id), Some(with_lease(current(Pending), lease_id)), proposal(Running));
    ctx.client_version = Some("3.9.1".to_owned());
    run_flow(&mut ctx, &mut store).await;
    let state = validated(&ctx);
    assert_eq!(state.state_type, Running);
    assert_eq!(state.state_details.deployment_concurrency_lease_id, Some(lease_id));
    assert!(lease(&store, lease_id).is_some_and(|l| l.expiration > now()), "the lease was extended");
    assert_eq!(active_slots(&store, deployment.limit_id), 1);
}

#[tokio::test]
async fn old_or_unknown_clients_skip_lease_validation() {
    for client_version in [Some("3.4.10"), None] {
        let mut store = store();
        let deployment = deployment_with_limit(&mut store, 1, Enqueue);
        let lease_id = lease_slot(&mut store, deployment.limit_id, 10.0).await;
        if let Some(l) = store.leases.get_mut(&lease_id) {
            l.expiration = now() - secs(1);
        }
        let mut ctx = flow_ctx(deployment_run(deployment.id), Some(with_lease(current(Pending), lease_id)), proposal(Running));
        ctx.client_version = client_version.map(str::to_owned);
        run_flow(&mut ctx, &mut store).await;
        assert_accepted(&ctx);
        assert_eq!(validated(&ctx).state_details.deployment_concurrency_lease_id, Some(lease_id), "{client_version:?}");
        assert_eq!(active_slots(&store, deployment.limit_id), 1, "the slot stays taken until the run finishes");
    }
}

#[tokio::test]
async fn running_takes_the_lease_id_of_the_current_state() {
    let mut store = store();
    let mut ctx = flow_ctx(flow_run(), Some(current(Pending)), with_lease(proposal(Running), Uuid::now_v7()));
    run_flow(&mut ctx, &mut store).await;
    assert_accepted(&ctx);
    assert_eq!(validated(&ctx).state_details.deployment_concurrency_lease_id, None);
}

#[tokio::test]
async fn deployment_without_limit_is_not_validated_at_running() {
    let mut store = store();
    let deployment_id = deployment_without_limit(&mut store);
    let unknown_lease = Uuid::now_v7();
    let mut ctx = flow_ctx(deployment_run(deployment_id), Some(with_lease(current(Pending), unknown_lease)), proposal(Running));
    ctx.client_version = Some("3.9.1".to_owned());
    run_flow(&mut ctx, &mut store).await;
    assert_accepted(&ctx);
    assert_eq!(validated(&ctx).state_details.deployment_concurrency_lease_id, Some(unknown_lease));
    assert!(store.leases.is_empty());
}

// --- RemoveDeploymentConcurrencyLeaseForOldClientVersions ----------------------------

#[tokio::test]
async fn old_client_lease_record_is_revoked_after_leaving_pending() {
    for to in [Running, Cancelling] {
        let mut store = store();
        let deployment = deployment_with_limit(&mut store, 1, Enqueue);
        let lease_id = lease_slot(&mut store, deployment.limit_id, 300.0).await;
        let mut ctx = flow_ctx(deployment_run(deployment.id), Some(with_lease(current(Pending), lease_id)), proposal(to));
        ctx.client_version = Some("3.4.10".to_owned());
        run_flow(&mut ctx, &mut store).await;
        assert_accepted(&ctx);
        assert!(lease(&store, lease_id).is_none(), "old clients cannot renew, so the lease record goes ({to})");
        assert_eq!(active_slots(&store, deployment.limit_id), 1, "the slot itself stays taken ({to})");
    }
}

#[tokio::test]
async fn modern_client_lease_record_is_kept_after_leaving_pending() {
    let mut store = store();
    let deployment = deployment_with_limit(&mut store, 1, Enqueue);
    let lease_id = lease_slot(&mut store, deployment.limit_id, 300.0).await;
    let mut ctx = flow_ctx(deployment_run(deployment.id), Some(with_lease(current(Pending), lease_id)), proposal(Cancelling));
    ctx.client_version = Some("3.4.11".to_owned());
    run_flow(&mut ctx, &mut store).await;
    assert_accepted(&ctx);
    assert!(lease(&store, lease_id).is_some());
}

#[tokio::test]
async fn old_client_lease_is_not_revoked_when_running_is_delayed() {
    let mut store = store();
    let deployment = deployment_with_limit(&mut store, 1, Enqueue);
    let lease_id = lease_slot(&mut store, deployment.limit_id, 300.0).await;
    let pending = with_lease(current(Pending), lease_id).with_details(|d| d.scheduled_time = Some(now() + secs(60)));
    let mut ctx = flow_ctx(deployment_run(deployment.id), Some(pending), proposal(Running));
    ctx.client_version = Some("3.4.10".to_owned());
    run_flow(&mut ctx, &mut store).await;
    assert_eq!(wait_details(&ctx).0, 60);
    assert!(lease(&store, lease_id).is_some(), "the rule fizzled, so its after hook did not run");
}

// --- SecureFlowConcurrencySlots -------------------------------------------------------

#[tokio::test]
async fn submitting_a_deployment_run_takes_a_slot_and_a_lease() {
    let mut store = store();
    let deployment = deployment_with_limit(&mut store, 2, Enqueue);
    let mut ctx = flow_ctx(deployment_run(deployment.id), Some(scheduled("Scheduled", now())), proposal(Pending));
    run_flow(&mut ctx, &mut store).await;
    assert_accepted(&ctx);
    assert_eq!(active_slots(&store, deployment.limit_id), 1);
    let lease_id = validated(&ctx).state_details.deployment_concurrency_lease_id.expect("lease id on the pending state");
    let lease = lease(&store, lease_id).expect("lease stored");
    assert_eq!(lease.resource_ids, vec![deployment.limit_id]);
    assert_eq!(lease.slots, 1);
    assert_eq!(lease.holder, None);
    assert_eq!(lease.expiration, now() + secs(300));
}

#[tokio::test]
async fn submission_lease_lasts_the_deployment_grace_period() {
    let mut store = store();
    let deployment = deployment_with_limit(&mut store, 2, Enqueue);
    if let Some(d) = store.deployments.get_mut(&deployment.id) {
        d.grace_period_seconds = Some(45.0);
    }
    let mut ctx = flow_ctx(deployment_run(deployment.id), Some(scheduled("Scheduled", now())), proposal(Pending));
    run_flow(&mut ctx, &mut store).await;
    let lease_id = validated(&ctx).state_details.deployment_concurrency_lease_id.expect("lease id");
    assert_eq!(lease(&store, lease_id).expect("lease").expiration, now() + secs(45));
}

#[tokio::test]
async fn full_deployment_with_enqueue_strategy_reschedules_the_run() {
    let mut store = store();
    let deployment = deployment_with_limit(&mut store, 1, Enqueue);
    lease_slot(&mut store, deployment.limit_id, 300.0).await;
    let mut ctx = flow_ctx(deployment_run(deployment.id), Some(scheduled("Scheduled", now())), proposal(Pending));
    run_flow(&mut ctx, &mut store).await;
    assert_eq!(reject_reason(&ctx), "Deployment concurrency limit reached.");
    let state = validated(&ctx);
    assert_eq!(state.state_type, Scheduled);
    assert_eq!(state.name(), "AwaitingConcurrencySlot");
    assert_eq!(state.state_details.scheduled_time, Some(now() + secs(30)));
    assert_eq!(state.state_details.deployment_concurrency_lease_id, None);
    assert_eq!(active_slots(&store, deployment.limit_id), 1);
    assert_eq!(store.leases.len(), 1, "no lease for the waiting run");
    assert_eq!(ctx.run.next_scheduled_start_time, Some(now() + secs(30)));
}

#[tokio::test]
async fn full_deployment_with_cancel_new_strategy_cancels_the_run() {
    let mut store = store();
    let deployment = deployment_with_limit(&mut store, 1, CancelNew);
    lease_slot(&mut store, deployment.limit_id, 300.0).await;
    let mut ctx = flow_ctx(deployment_run(deployment.id), Some(scheduled("Scheduled", now())), proposal(Pending));
    run_flow(&mut ctx, &mut store).await;
    assert_eq!(reject_reason(&ctx), "Deployment concurrency limit reached.");
    let state = validated(&ctx);
    assert_eq!(state.state_type, Cancelled);
    assert_eq!(state.message.as_deref(), Some("Deployment concurrency limit reached."));
    assert_eq!(active_slots(&store, deployment.limit_id), 1);
}

#[tokio::test]
async fn zero_deployment_limit_aborts_submission() {
    let mut store = store();
    let deployment = deployment_with_limit(&mut store, 0, Enqueue);
    let mut ctx = flow_ctx(deployment_run(deployment.id), Some(scheduled("Scheduled", now())), proposal(Pending));
    run_flow(&mut ctx, &mut store).await;
    assert_eq!(abort_reason(&ctx), "The deployment concurrency limit is 0. The flow will deadlock if submitted again.");
    assert_nothing_written(&ctx);
}

#[tokio::test]
async fn submission_of_run_with_missing_deployment_aborts() {
    let mut store = store();
    let mut ctx = flow_ctx(deployment_run(Uuid::now_v7()), Some(scheduled("Scheduled", now())), proposal(Pending));
    run_flow(&mut ctx, &mut store).await;
    assert_eq!(abort_reason(&ctx), "Deployment not found.");
}

#[tokio::test]
async fn runs_without_deployment_limit_take_no_slot() {
    let mut store = store();
    let deployment_id = deployment_without_limit(&mut store);
    for run in [flow_run(), deployment_run(deployment_id)] {
        let mut ctx = flow_ctx(run, Some(scheduled("Scheduled", now())), proposal(Pending));
        run_flow(&mut ctx, &mut store).await;
        assert_accepted(&ctx);
        assert_eq!(validated(&ctx).state_details.deployment_concurrency_lease_id, None);
    }
    assert!(store.leases.is_empty());
}

#[tokio::test]
async fn workers_that_manage_deployment_concurrency_are_not_limited_by_the_server() {
    for client_version in ["3.0.0rc20", "3.0.0", "3.0.1", "3.0.2", "3.0.3"] {
        let mut store = store();
        let deployment = deployment_with_limit(&mut store, 1, Enqueue);
        lease_slot(&mut store, deployment.limit_id, 300.0).await;
        let mut ctx = flow_ctx(deployment_run(deployment.id), Some(scheduled("Scheduled", now())), proposal(Pending));
        ctx.client_version = Some(client_version.to_owned());
        run_flow(&mut ctx, &mut store).await;
        assert_accepted(&ctx);
        assert_eq!(active_slots(&store, deployment.limit_id), 1, "{client_version}");
    }
    let mut store = store();
    let deployment = deployment_with_limit(&mut store, 1, Enqueue);
    lease_slot(&mut store, deployment.limit_id, 300.0).await;
    let mut ctx = flow_ctx(deployment_run(deployment.id), Some(scheduled("Scheduled", now())), proposal(Pending));
    ctx.client_version = Some("3.0.4".to_owned());
    run_flow(&mut ctx, &mut store).await;
    assert_eq!(ctx.response_status, SetStateStatus::Reject);
}

#[tokio::test]
async fn slot_is_given_back_when_a_later_rule_rejects_the_submission() {
    let mut store = store();
    let deployment = deployment_with_limit(&mut store, 1, Enqueue);
    let mut ctx = flow_ctx(deployment_run(deployment.id), Some(current(Paused)), proposal(Pending));
    run_flow(&mut ctx, &mut store).await;
    assert_eq!(reject_reason(&ctx), "This run cannot transition to the PENDING state from the PAUSED state.");
    assert_eq!(active_slots(&store, deployment.limit_id), 0, "SecureFlowConcurrencySlots fizzled and released its slot");
    assert!(store.leases.is_empty(), "and revoked its lease");
    assert_eq!(validated(&ctx).state_details.deployment_concurrency_lease_id, None);
}

// --- ReleaseFlowConcurrencySlots -----------------------------------------------------

#[tokio::test]
async fn finishing_a_run_releases_its_deployment_lease() {
    for to in TERMINAL {
        let mut store = store();
        let deployment = deployment_with_limit(&mut store, 1, Enqueue);
        let lease_id = lease_slot(&mut store, deployment.limit_id, 300.0).await;
        let mut ctx = flow_ctx(deployment_run(deployment.id), Some(with_lease(current(Running), lease_id)), proposal(to));
        run_flow(&mut ctx, &mut store).await;
        assert_accepted(&ctx);
        assert_eq!(active_slots(&store, deployment.limit_id), 0, "RUNNING -> {to}");
        assert!(lease(&store, lease_id).is_none());
    }
}

#[tokio::test]
async fn release_without_a_lease_decrements_the_limit() {
    let mut store = store();
    let deployment = deployment_with_limit(&mut store, 1, Enqueue);
    assert!(store.increment_slots(&[deployment.limit_id], 1).await.expect("increment"));
    let mut ctx = flow_ctx(deployment_run(deployment.id), Some(current(Running)), proposal(Completed));
    run_flow(&mut ctx, &mut store).await;
    assert_eq!(active_slots(&store, deployment.limit_id), 0);
}

#[tokio::test]
async fn release_falls_back_to_the_limit_when_the_lease_record_is_gone() {
    let mut store = store();
    let deployment = deployment_with_limit(&mut store, 1, Enqueue);
    let lease_id = lease_slot(&mut store, deployment.limit_id, 300.0).await;
    store.revoke_lease(lease_id).await.expect("revoke");
    let mut ctx = flow_ctx(deployment_run(deployment.id), Some(with_lease(current(Running), lease_id)), proposal(Failed));
    run_flow(&mut ctx, &mut store).await;
    assert_eq!(active_slots(&store, deployment.limit_id), 0);
}

#[tokio::test]
async fn in_process_retry_keeps_the_deployment_slot() {
    let mut store = store();
    let deployment = deployment_with_limit(&mut store, 1, Enqueue);
    let lease_id = lease_slot(&mut store, deployment.limit_id, 300.0).await;
    let mut run = deployment_run(deployment.id);
    run.run_count = 1;
    run.empirical_policy.retries = Some(1);
    let mut ctx = flow_ctx(run, Some(with_lease(current(Running), lease_id)), proposal(Failed));
    run_flow(&mut ctx, &mut store).await;
    assert_eq!(reject_reason(&ctx), "Retrying");
    let state = validated(&ctx);
    assert_eq!(state.name(), "AwaitingRetry");
    assert_eq!(state.state_details.deployment_concurrency_lease_id, Some(lease_id));
    assert!(lease(&store, lease_id).is_some());
    assert_eq!(active_slots(&store, deployment.limit_id), 1);
}

#[tokio::test]
async fn exhausted_retries_release_the_deployment_slot() {
    let mut store = store();
    let deployment = deployment_with_limit(&mut store, 1, Enqueue);
    let lease_id = lease_slot(&mut store, deployment.limit_id, 300.0).await;
    let mut run = deployment_run(deployment.id);
    run.run_count = 2;
    run.empirical_policy.retries = Some(1);
    let mut ctx = flow_ctx(run, Some(with_lease(current(Running), lease_id)), proposal(Failed));
    run_flow(&mut ctx, &mut store).await;
    assert_accepted(&ctx);
    assert_eq!(active_slots(&store, deployment.limit_id), 0);
}

#[tokio::test]
async fn awaiting_retry_proposed_by_the_client_releases_the_slot() {
    let mut store = store();
    let deployment = deployment_with_limit(&mut store, 1, Enqueue);
    let lease_id = lease_slot(&mut store, deployment.limit_id, 300.0).await;
    let retry = State::awaiting_retry(now() + secs(10), now());
    let mut ctx = flow_ctx(deployment_run(deployment.id), Some(with_lease(current(Running), lease_id)), retry);
    run_flow(&mut ctx, &mut store).await;
    assert_accepted(&ctx);
    assert_eq!(active_slots(&store, deployment.limit_id), 0, "only a retry the server granted keeps the slot");
}

#[tokio::test]
async fn moving_between_slot_holding_states_keeps_the_slot() {
    for (from, to) in [(Running, Cancelling), (Pending, Running), (Pending, Cancelling)] {
        let mut store = store();
        let deployment = deployment_with_limit(&mut store, 1, Enqueue);
        let lease_id = lease_slot(&mut store, deployment.limit_id, 300.0).await;
        let mut ctx = flow_ctx(deployment_run(deployment.id), Some(with_lease(current(from), lease_id)), proposal(to));
        ctx.client_version = Some("3.9.1".to_owned());
        run_flow(&mut ctx, &mut store).await;
        assert_accepted(&ctx);
        assert_eq!(active_slots(&store, deployment.limit_id), 1, "{from} -> {to}");
        assert!(lease(&store, lease_id).is_some(), "{from} -> {to}");
    }
}

#[tokio::test]
async fn forced_transitions_release_the_deployment_slot() {
    let mut store = store();
    let deployment = deployment_with_limit(&mut store, 1, Enqueue);
    let lease_id = lease_slot(&mut store, deployment.limit_id, 300.0).await;
    let mut ctx = flow_ctx(deployment_run(deployment.id), Some(with_lease(current(Cancelling), lease_id)), proposal(Cancelled));
    run_flow_with(FlowPolicy::Minimal, &mut ctx, &mut store).await;
    assert_accepted(&ctx);
    assert_eq!(active_slots(&store, deployment.limit_id), 0);
    assert!(store.leases.is_empty());
}

#[tokio::test]
async fn runs_that_hold_no_slot_release_nothing() {
    let mut store = store();
    let deployment = deployment_with_limit(&mut store, 1, Enqueue);
    lease_slot(&mut store, deployment.limit_id, 300.0).await;
    let mut ctx = flow_ctx(deployment_run(deployment.id), Some(scheduled("Scheduled", now())), proposal(Cancelled));
    run_flow(&mut ctx, &mut store).await;
    assert_accepted(&ctx);
    assert_eq!(active_slots(&store, deployment.limit_id), 1, "the slot belongs to another run");
}

// --- EnsureOnlyScheduledFlowsMarkedLate ----------------------------------------------

#[tokio::test]
async fn scheduled_run_can_be_marked_late() {
    let mut store = store();
    let due = now() - secs(60);
    let mut ctx = flow_ctx(flow_run(), Some(scheduled("Scheduled", due)), State::scheduled("Late", due, now()));
    run_flow_with(FlowPolicy::MarkLateRuns, &mut ctx, &mut store).await;
    assert_accepted(&ctx);
    assert_eq!(ctx.run.state_name.as_deref(), Some("Late"));
    assert_eq!(ctx.run.next_scheduled_start_time, Some(due));
}

#[tokio::test]
async fn only_scheduled_runs_can_be_marked_late() {
    for policy in [FlowPolicy::MarkLateRuns, FlowPolicy::Core] {
        let mut store = store();
        let mut ctx = flow_ctx(flow_run(), Some(current(Running)), State::scheduled("Late", now(), now()));
        run_flow_with(policy, &mut ctx, &mut store).await;
        assert_eq!(reject_reason(&ctx), "Only scheduled flows can be marked late.", "{policy:?}");
        assert_nothing_written(&ctx);
    }
}

#[tokio::test]
async fn late_runs_are_not_marked_late_again() {
    let mut store = store();
    let mut ctx = flow_ctx(flow_run(), Some(scheduled("Late", now())), State::scheduled("Late", now(), now()));
    run_flow_with(FlowPolicy::MarkLateRuns, &mut ctx, &mut store).await;
    assert_eq!(reject_reason(&ctx), "This flow run is already marked late.");
    assert!(ctx.effects.is_empty());
}

#[tokio::test]
async fn other_scheduled_names_are_not_checked() {
    let mut store = store();
    let mut ctx = flow_ctx(flow_run(), Some(current(Running)), State::awaiting_retry(now() + secs(5), now()));
    run_flow(&mut ctx, &mut store).await;
    assert_accepted(&ctx);
    assert_eq!(validated(&ctx).name(), "AwaitingRetry");
}

// --- EnforceDeploymentConcurrencyOnLate ----------------------------------------------

#[tokio::test]
async fn late_run_of_a_full_cancel_new_deployment_is_cancelled() {
    let mut store = store();
    let deployment = deployment_with_limit(&mut store, 1, CancelNew);
    lease_slot(&mut store, deployment.limit_id, 300.0).await;
    let mut ctx = flow_ctx(deployment_run(deployment.id), Some(scheduled("Scheduled", now())), State::scheduled("Late", now(), now()));
    run_flow_with(FlowPolicy::MarkLateRuns, &mut ctx, &mut store).await;
    assert_eq!(reject_reason(&ctx), "Deployment concurrency limit is full and uses the CANCEL_NEW strategy.");
    let state = validated(&ctx);
    assert_eq!(state.state_type, Cancelled);
    assert_eq!(state.message.as_deref(), Some("Deployment concurrency limit reached."));
}

#[tokio::test]
async fn late_run_is_marked_late_when_slots_are_free_or_runs_queue() {
    for (strategy, taken) in [(CancelNew, false), (Enqueue, true)] {
        let mut store = store();
        let deployment = deployment_with_limit(&mut store, 1, strategy);
        if taken {
            lease_slot(&mut store, deployment.limit_id, 300.0).await;
        }
        let mut ctx = flow_ctx(deployment_run(deployment.id), Some(scheduled("Scheduled", now())), State::scheduled("Late", now(), now()));
        run_flow_with(FlowPolicy::MarkLateRuns, &mut ctx, &mut store).await;
        assert_accepted(&ctx);
        assert_eq!(validated(&ctx).name(), "Late", "{strategy:?}");
    }
}

// --- HandlePausingFlows ---------------------------------------------------------------

fn pause(key: Option<&str>) -> State {
    proposal(Paused).with_details(|d| {
        d.pause_key = key.map(str::to_owned);
        d.pause_timeout = Some(now() + secs(3600));
    })
}

fn suspend(key: &str) -> State {
    pause(Some(key)).named("Suspended").with_details(|d| d.pause_reschedule = true)
}

#[tokio::test]
async fn running_flow_can_pause_and_the_pause_key_is_recorded() {
    let mut store = store();
    let mut ctx = flow_ctx(flow_run(), Some(current(Running)), pause(Some("approval")));
    run_flow(&mut ctx, &mut store).await;
    assert_accepted(&ctx);
    assert_eq!(validated(&ctx).state_type, Paused);
    assert!(ctx.run.empirical_policy.has_pause_key("approval"));
}

#[tokio::test]
async fn pause_without_a_key_records_a_generated_one() {
    let mut store = store();
    let mut ctx = flow_ctx(flow_run(), Some(current(Running)), pause(None));
    run_flow(&mut ctx, &mut store).await;
    assert_accepted(&ctx);
    let keys = ctx.run.empirical_policy.pause_keys.clone().expect("pause keys");
    assert_eq!(keys.len(), 1);
    assert!(Uuid::parse_str(&keys[0]).is_ok(), "generated key {:?} is a uuid", keys[0]);
}

#[tokio::test]
async fn a_pause_that_already_fired_is_rejected() {
    for (proposed, reason) in [(pause(Some("approval")), "This pause has already fired."), (suspend("approval"), "This suspend has already fired.")] {
        let mut store = store();
        let deployment_id = deployment_without_limit(&mut store);
        let mut run = deployment_run(deployment_id);
        run.empirical_policy.add_pause_key("approval".to_owned());
        let mut ctx = flow_ctx(run, Some(current(Running)), proposed);
        run_flow(&mut ctx, &mut store).await;
        assert_eq!(reject_reason(&ctx), reason);
        assert_nothing_written(&ctx);
        assert_eq!(ctx.run.empirical_policy.pause_keys, Some(vec!["approval".to_owned()]));
    }
}

#[tokio::test]
async fn only_running_flows_can_pause() {
    for from in [Scheduled, Pending, Paused] {
        let mut store = store();
        let mut ctx = flow_ctx(flow_run(), Some(current(from)), pause(Some("approval")));
        run_flow(&mut ctx, &mut store).await;
        assert_eq!(reject_reason(&ctx), "Cannot pause flows that are not currently running.", "{from}");
        assert_nothing_written(&ctx);
        assert!(!ctx.run.empirical_policy.has_pause_key("approval"));
    }
}

#[tokio::test]
async fn flows_without_a_state_cannot_pause() {
    let mut store = store();
    let mut ctx = flow_ctx(flow_run(), None, suspend("approval"));
    run_flow(&mut ctx, &mut store).await;
    assert_eq!(abort_reason(&ctx), "Cannot suspend flows with no state.");
    assert_eq!(ctx.validated_state, None);
}

#[tokio::test]
async fn subflows_and_deploymentless_flows_cannot_suspend() {
    let mut store = store();
    let deployment_id = deployment_without_limit(&mut store);
    let mut subflow = deployment_run(deployment_id);
    subflow.parent_task_run_id = Some(Uuid::now_v7());
    for (run, reason) in [(subflow, "Cannot suspend subflows."), (flow_run(), "Cannot suspend flows without a deployment.")] {
        let mut ctx = flow_ctx(run, Some(current(Running)), suspend("approval"));
        run_flow(&mut ctx, &mut store).await;
        assert_eq!(abort_reason(&ctx), reason);
        assert_nothing_written(&ctx);
        assert!(store.subflow_parent_states.is_empty());
    }
}

#[tokio::test]
async fn deployment_flows_can_suspend_and_subflows_can_pause_in_process() {
    let mut store = store();
    let deployment_id = deployment_without_limit(&mut store);
    let mut subflow = flow_run();
    subflow.parent_task_run_id = Some(Uuid::now_v7());
    for (run, proposed) in [(deployment_run(deployment_id), suspend("approval")), (subflow, pause(Some("approval")))] {
        let mut ctx = flow_ctx(run, Some(current(Running)), proposed);
        run_flow(&mut ctx, &mut store).await;
        assert_accepted(&ctx);
        assert!(ctx.run.empirical_policy.has_pause_key("approval"));
    }
}

fn input_keyset() -> serde_json::Map<String, serde_json::Value> {
    let keyset = json!({"description": "paused-1-description", "response": "paused-1-response", "schema": "paused-1-schema"});
    keyset.as_object().cloned().expect("an object")
}

#[tokio::test]
async fn accepted_pause_clears_the_inputs_it_will_wait_for() {
    let mut store = store();
    let run = flow_run();
    let run_id = run.id;
    let proposed = pause(Some("paused-1")).with_details(|d| d.run_input_keyset = Some(input_keyset()));
    let mut ctx = flow_ctx(run, Some(current(Running)), proposed);
    run_flow(&mut ctx, &mut store).await;
    assert_accepted(&ctx);
    let mut deleted = store.deleted_inputs.clone();
    deleted.sort();
    let expected: Vec<(Uuid, String)> = ["paused-1-description", "paused-1-response", "paused-1-schema"].iter().map(|k| (run_id, (*k).to_owned())).collect();
    assert_eq!(deleted, expected);
}

#[tokio::test]
async fn rejected_pause_leaves_the_current_pause_inputs_alone() {
    let mut store = store();
    let paused = current(Paused).with_details(|d| {
        d.pause_key = Some("paused-1".to_owned());
        d.run_input_keyset = Some(input_keyset());
    });
    let proposed = pause(Some("paused-1")).with_details(|d| d.run_input_keyset = Some(input_keyset()));
    let mut ctx = flow_ctx(flow_run(), Some(paused), proposed);
    run_flow(&mut ctx, &mut store).await;
    assert_eq!(reject_reason(&ctx), "Cannot pause flows that are not currently running.");
    assert!(store.deleted_inputs.is_empty(), "the schema and description of the active pause must survive");
}

// --- HandleResumingPausedFlows --------------------------------------------------------

fn paused_until(timeout: prefect_domain::time::DateTime) -> State {
    current(Paused).with_details(|d| d.pause_timeout = Some(timeout))
}

#[tokio::test]
async fn paused_runs_cannot_go_to_pending() {
    let mut store = store();
    let mut ctx = flow_ctx(flow_run(), Some(paused_until(now() + secs(60))), proposal(Pending));
    run_flow(&mut ctx, &mut store).await;
    assert_eq!(reject_reason(&ctx), "This run cannot transition to the PENDING state from the PAUSED state.");
    assert_nothing_written(&ctx);
}

#[tokio::test]
async fn paused_runs_can_resume_into_running_scheduled_cancelling_or_final_states() {
    for to in [Running, Scheduled, Cancelling, Completed, Failed, Cancelled, Crashed] {
        let mut store = store();
        let mut ctx = flow_ctx(flow_run(), Some(paused_until(now() + secs(60))), proposal(to));
        run_flow(&mut ctx, &mut store).await;
        assert_accepted(&ctx);
        assert_eq!(validated(&ctx).state_type, to);
    }
}

#[tokio::test]
async fn resuming_a_pause_marks_the_run_as_resuming() {
    let mut store = store();
    let mut ctx = flow_ctx(flow_run(), Some(paused_until(now() + secs(60))), proposal(Running));
    run_flow(&mut ctx, &mut store).await;
    assert_accepted(&ctx);
    assert_eq!(ctx.run.empirical_policy.resuming, Some(true));
}

#[tokio::test]
async fn timed_out_pause_fails_the_run() {
    let mut store = store();
    let mut ctx = flow_ctx(flow_run(), Some(paused_until(now() - secs(1))), proposal(Running));
    run_flow(&mut ctx, &mut store).await;
    assert_eq!(reject_reason(&ctx), "The flow run pause has timed out and can no longer resume.");
    let state = validated(&ctx);
    assert_eq!(state.state_type, Failed);
    // Prefect names the proposal in the message; a resume proposes `Running`.
    assert_eq!(state.message.as_deref(), Some("The flow was running and never resumed."));
    assert_eq!(ctx.run.end_time, Some(now()));
}

#[tokio::test]
async fn timed_out_pause_can_still_be_cancelled() {
    let mut store = store();
    let mut ctx = flow_ctx(flow_run(), Some(paused_until(now() - secs(1))), proposal(Cancelling));
    run_flow(&mut ctx, &mut store).await;
    assert_accepted(&ctx);
    assert_eq!(validated(&ctx).state_type, Cancelling);
}

#[tokio::test]
async fn suspended_run_without_deployment_cannot_resume() {
    let mut store = store();
    let suspended = paused_until(now() + secs(60)).named("Suspended").with_details(|d| d.pause_reschedule = true);
    let mut ctx = flow_ctx(flow_run(), Some(suspended), proposal(Running));
    run_flow(&mut ctx, &mut store).await;
    assert_eq!(reject_reason(&ctx), "Cannot reschedule a running flow run without a deployment.");
    assert_nothing_written(&ctx);
}

#[tokio::test]
async fn suspended_deployment_run_resumes_through_scheduled() {
    let mut store = store();
    let deployment_id = deployment_without_limit(&mut store);
    let suspended = paused_until(now() + secs(60)).named("Suspended").with_details(|d| d.pause_reschedule = true);
    let mut ctx = flow_ctx(deployment_run(deployment_id), Some(suspended), State::scheduled("Resuming", now(), now()));
    run_flow(&mut ctx, &mut store).await;
    assert_accepted(&ctx);
    assert_eq!(validated(&ctx).name(), "Resuming");
    assert_eq!(ctx.run.empirical_policy.resuming, Some(true));
}

#[tokio::test]
async fn pause_resumed_into_scheduled_is_a_reschedule() {
    let mut store = store();
    let mut run = flow_run();
    run.empirical_policy.add_pause_key("pause-1".to_owned());
    let mut ctx = flow_ctx(run, Some(paused_until(now() + secs(60))), proposal(Scheduled));
    run_flow(&mut ctx, &mut store).await;
    assert_accepted(&ctx);
    let policy = &ctx.run.empirical_policy;
    assert_eq!(policy.resuming, Some(false));
    assert_eq!(policy.pause_keys, Some(Vec::new()));
    assert_eq!(policy.retry_type.as_deref(), Some("reschedule"));
}

// --- CopyScheduledTime / WaitForScheduledTime -----------------------------------------

#[tokio::test]
async fn pending_inherits_the_scheduled_time() {
    let mut store = store();
    let due = now() - secs(5);
    let mut ctx = flow_ctx(flow_run(), Some(scheduled("Scheduled", due)), proposal(Pending));
    run_flow(&mut ctx, &mut store).await;
    assert_accepted(&ctx);
    assert_eq!(validated(&ctx).state_details.scheduled_time, Some(due));
}

#[tokio::test]
async fn pending_keeps_a_scheduled_time_it_brings() {
    let mut store = store();
    let own = now() + secs(5);
    let proposed = proposal(Pending).with_details(|d| d.scheduled_time = Some(own));
    let mut ctx = flow_ctx(flow_run(), Some(scheduled("Scheduled", now() - secs(5))), proposed);
    run_flow(&mut ctx, &mut store).await;
    assert_eq!(validated(&ctx).state_details.scheduled_time, Some(own));
}

#[tokio::test]
async fn early_start_waits_for_the_scheduled_time() {
    for from in [scheduled("Scheduled", now() + secs(90)), current(Pending).with_details(|d| d.scheduled_time = Some(now() + secs(90)))] {
        let mut store = store();
        let mut ctx = flow_ctx(flow_run(), Some(from), proposal(Running));
        run_flow(&mut ctx, &mut store).await;
        assert_eq!(wait_details(&ctx), (90, "Scheduled time is in the future".to_owned()));
        assert_nothing_written(&ctx);
        assert_eq!(ctx.run.run_count, 0);
        assert_eq!(ctx.run.start_time, None);
        assert!(ctx.effects.is_empty());
    }
}

#[tokio::test]
async fn wait_is_rounded_to_whole_seconds() {
    for (millis, expected) in [(2600, 3), (2400, 2), (1500, 1)] {
        let mut store = store();
        let due = now() + chrono::TimeDelta::milliseconds(millis);
        let mut ctx = flow_ctx(flow_run(), Some(scheduled("Scheduled", due)), proposal(Running));
        run_flow(&mut ctx, &mut store).await;
        assert_eq!(wait_details(&ctx).0, expected, "{millis} ms");
    }
}

#[tokio::test]
async fn start_at_or_after_the_scheduled_time_is_accepted() {
    for due in [now(), now() - secs(5), now() + chrono::TimeDelta::milliseconds(400)] {
        let mut store = store();
        let mut ctx = flow_ctx(flow_run(), Some(scheduled("Scheduled", due)), proposal(Running));
        run_flow(&mut ctx, &mut store).await;
        assert_accepted(&ctx);
    }
}

// --- RetryFailedFlows ----------------------------------------------------------------

fn retrying_run(run_count: i64, retries: Option<i64>) -> prefect_orchestration::FlowRunData {
    let mut run = flow_run();
    run.run_count = run_count;
    run.empirical_policy =
        FlowRunPolicy { retries, retry_delay: Some(10), pause_keys: Some(vec!["pause-1".to_owned()]), resuming: Some(true), ..FlowRunPolicy::default() };
    run
}

#[tokio::test]
async fn failed_run_with_retries_left_awaits_retry() {
    for run_count in [1, 2] {
        let mut store = store();
        let failed = proposal(Failed).with_message("boom").with_data(persisted_result());
        let mut ctx = flow_ctx(retrying_run(run_count, Some(2)), Some(current(Running)), failed);
        run_flow(&mut ctx, &mut store).await;
        assert_eq!(reject_reason(&ctx), "Retrying");
        let state = validated(&ctx);
        assert_eq!(state.state_type, Scheduled);
        assert_eq!(state.name(), "AwaitingRetry");
        assert_eq!(state.state_details.scheduled_time, Some(now() + secs(10)));
        assert_eq!(state.message.as_deref(), Some("boom"));
        assert_eq!(state.data, Some(persisted_result()));
        let policy = &ctx.run.empirical_policy;
        assert_eq!(policy.retry_type.as_deref(), Some("in_process"));
        assert_eq!(policy.resuming, Some(false));
        assert_eq!(policy.pause_keys, Some(Vec::new()));
        assert_eq!(ctx.run.state_name.as_deref(), Some("AwaitingRetry"));
        assert_eq!(ctx.run.end_time, None, "the run is not over");
        assert_eq!(ctx.run.run_count, run_count);
    }
}

#[tokio::test]
async fn retry_delay_defaults_to_immediately() {
    let mut store = store();
    let mut run = retrying_run(1, Some(1));
    run.empirical_policy.retry_delay = None;
    let mut ctx = flow_ctx(run, Some(current(Running)), proposal(Failed));
    run_flow(&mut ctx, &mut store).await;
    assert_eq!(validated(&ctx).state_details.scheduled_time, Some(now()));
}

#[tokio::test]
async fn failed_run_without_retries_left_fails() {
    for (run_count, retries) in [(3, Some(2)), (1, None)] {
        let mut store = store();
        let mut run = retrying_run(run_count, retries);
        run.empirical_policy.retry_type = Some("in_process".to_owned());
        let mut ctx = flow_ctx(run, Some(current(Running)), proposal(Failed));
        run_flow(&mut ctx, &mut store).await;
        assert_accepted(&ctx);
        assert_eq!(validated(&ctx).state_type, Failed);
        assert_eq!(ctx.run.empirical_policy.retry_type, None);
        assert_eq!(ctx.run.end_time, Some(now()));
    }
}

#[tokio::test]
async fn old_api_clients_retry_without_policy_reset() {
    let mut store = store();
    let mut ctx = flow_ctx(retrying_run(1, Some(1)), Some(current(Running)), proposal(Failed));
    ctx.api_version = Some(Version(0, 8, 3));
    run_flow(&mut ctx, &mut store).await;
    assert_eq!(validated(&ctx).name(), "AwaitingRetry");
    assert_eq!(ctx.run.empirical_policy.retry_type, None);
    assert_eq!(ctx.run.empirical_policy.pause_keys, Some(vec!["pause-1".to_owned()]));
}

// --- InstrumentFlowRunStateTransitions -----------------------------------------------

#[tokio::test]
async fn written_states_are_reported_as_state_changes() {
    let mut store = store();
    let pending = current(Pending);
    let mut ctx = flow_ctx(flow_run(), Some(pending.clone()), proposal(Running));
    run_flow(&mut ctx, &mut store).await;
    assert_eq!(ctx.effects, vec![Effect::FlowRunStateChanged { initial: Some(pending), validated: validated(&ctx).clone() }]);
}

#[tokio::test]
async fn state_written_by_a_rejection_is_reported() {
    let mut store = store();
    let mut ctx = flow_ctx(retrying_run(1, Some(1)), Some(current(Running)), proposal(Failed));
    run_flow(&mut ctx, &mut store).await;
    match ctx.effects.as_slice() {
        [Effect::FlowRunStateChanged { validated, .. }] => assert_eq!(validated.name(), "AwaitingRetry"),
        other => panic!("expected one state change, got {other:?}"),
    }
}

#[tokio::test]
async fn transitions_that_write_nothing_report_nothing() {
    let mut store = store();
    let transition_id = Some(Uuid::now_v7());
    let contexts = [
        flow_ctx(
            flow_run(),
            Some(current(Pending).with_details(|d| d.transition_id = transition_id)),
            proposal(Running).with_details(|d| d.transition_id = transition_id),
        ),
        flow_ctx(flow_run(), Some(scheduled("Scheduled", now() + secs(60))), proposal(Running)),
        flow_ctx(flow_run(), Some(current(Running)), proposal(Pending)),
    ];
    for mut ctx in contexts {
        run_flow(&mut ctx, &mut store).await;
        assert_ne!(ctx.response_status, SetStateStatus::Accept);
        assert!(ctx.effects.is_empty(), "{:?}", ctx.response_details);
    }
}

#[tokio::test]
async fn forced_and_late_transitions_are_reported() {
    let mut store = store();
    let mut forced = flow_ctx(flow_run(), Some(current(Running)), proposal(Crashed));
    run_flow_with(FlowPolicy::Minimal, &mut forced, &mut store).await;
    assert_eq!(forced.effects.len(), 1);
    let mut late = flow_ctx(flow_run(), Some(scheduled("Scheduled", now())), State::scheduled("Late", now(), now()));
    run_flow_with(FlowPolicy::MarkLateRuns, &mut late, &mut store).await;
    assert_eq!(late.effects.len(), 1);
}

// --- PreventResultDataLoss and the Minimal policy -------------------------------------

#[tokio::test]
async fn forced_completion_cannot_drop_persisted_result_data() {
    let mut store = store();
    let mut ctx = flow_ctx(flow_run(), Some(current(Completed).with_data(persisted_result())), proposal(Completed));
    run_flow_with(FlowPolicy::Minimal, &mut ctx, &mut store).await;
    assert_eq!(reject_reason(&ctx), "Cannot overwrite a COMPLETED state that carries persisted result data with one that does not.");
    assert_nothing_written(&ctx);
}

#[tokio::test]
async fn forced_transitions_that_keep_result_data_are_accepted() {
    let cases = [
        (current(Completed).with_data(persisted_result()), proposal(Completed).with_data(persisted_result())),
        (current(Completed).with_data(persisted_result()), proposal(Failed)),
        (current(Completed).with_data(unpersisted_result()), proposal(Completed)),
        (current(Completed), proposal(Completed)),
    ];
    for (initial, proposed) in cases {
        let mut store = store();
        let mut ctx = flow_ctx(flow_run(), Some(initial), proposed);
        run_flow_with(FlowPolicy::Minimal, &mut ctx, &mut store).await;
        assert_accepted(&ctx);
    }
}

#[tokio::test]
async fn forced_transitions_skip_the_core_protections() {
    let cases = [
        (current(Completed).with_data(persisted_result()), proposal(Running)),
        (current(Running), proposal(Pending)),
        (current(Cancelling), proposal(Running)),
        (scheduled("Scheduled", now() + secs(600)), proposal(Running)),
        (current(Failed), proposal(Scheduled)),
    ];
    for (initial, proposed) in cases {
        let mut store = store();
        let expected = proposed.state_type;
        let mut ctx = flow_ctx(flow_run(), Some(initial), proposed);
        run_flow_with(FlowPolicy::Minimal, &mut ctx, &mut store).await;
        assert_accepted(&ctx);
        assert_eq!(validated(&ctx).state_type, expected);
    }
}
