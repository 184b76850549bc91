//! The global bookkeeping transforms (Prefect's `global_policy.py`), applied after every policy.

use chrono::TimeDelta;
use prefect_domain::state::StateType::*;
use prefect_domain::state::{SetStateStatus, State};
use prefect_orchestration::{FlowPolicy, TaskPolicy, Version};
use uuid::Uuid;

use crate::support::*;

// --- SetRunStateType / SetRunStateName / SetRunStateTimestamp -----------------------

#[tokio::test]
async fn run_mirrors_the_written_state() {
    let mut store = store();
    let mut ctx = flow_ctx(flow_run(), Some(current(Pending)), proposal(Running).named("Retrying"));
    run_flow(&mut ctx, &mut store).await;
    assert_eq!(ctx.run.state_type, Some(Running));
    assert_eq!(ctx.run.state_name.as_deref(), Some("Retrying"));
    assert_eq!(ctx.run.state_timestamp, Some(now()));
}

#[tokio::test]
async fn run_mirrors_the_state_a_rule_wrote_instead() {
    let mut store = store();
    let mut ctx = flow_ctx(flow_run(), Some(scheduled("Scheduled", now())), proposal(Cancelling));
    run_flow(&mut ctx, &mut store).await;
    assert_eq!(ctx.response_status, SetStateStatus::Reject);
    assert_eq!(ctx.run.state_type, Some(Cancelled));
    assert_eq!(ctx.run.state_name.as_deref(), Some("Cancelled"));
}

#[tokio::test]
async fn run_is_untouched_when_nothing_is_written() {
    let mut store = store();
    let contexts = [
        flow_ctx(flow_run(), Some(scheduled("Scheduled", now() + secs(30))), proposal(Running)),
        flow_ctx(flow_run(), Some(current(Running)), proposal(Pending)),
        flow_ctx(flow_run(), Some(current(Cancelling)), proposal(Running)),
    ];
    for mut ctx in contexts {
        let before = ctx.run.clone();
        run_flow(&mut ctx, &mut store).await;
        assert_ne!(ctx.response_status, SetStateStatus::Accept);
        assert_eq!(ctx.run, before, "{:?}", ctx.response_details);
    }
}

// --- SetStartTime / SetEndTime / IncrementRunTime ------------------------------------

#[tokio::test]
async fn first_running_state_sets_the_start_time() {
    let mut store = store();
    let mut ctx = flow_ctx(flow_run(), Some(current(Pending)), proposal(Running));
    run_flow(&mut ctx, &mut store).await;
    assert_eq!(ctx.run.start_time, Some(now()));

    let mut run = flow_run();
    let earlier = now() - secs(3600);
    run.start_time = Some(earlier);
    run.run_count = 1;
    let mut ctx = flow_ctx(run, Some(State::awaiting_retry(now(), now() - secs(60))), proposal(Running));
    run_flow(&mut ctx, &mut store).await;
    assert_eq!(ctx.run.start_time, Some(earlier), "a rerun keeps the first start time");
}

#[tokio::test]
async fn finishing_sets_the_end_time_and_adds_the_run_time() {
    let mut store = store();
    let mut run = flow_run();
    run.start_time = Some(now() - secs(90));
    run.total_run_time = 30.0;
    let running = State::new(Running, now() - TimeDelta::milliseconds(12_500));
    let mut ctx = flow_ctx(run, Some(running), proposal(Completed));
    run_flow(&mut ctx, &mut store).await;
    assert_eq!(ctx.run.end_time, Some(now()));
    assert_eq!(ctx.run.start_time, Some(now() - secs(90)));
    assert!((ctx.run.total_run_time - 42.5).abs() < 1e-9, "{}", ctx.run.total_run_time);
}

#[tokio::test]
async fn run_that_never_started_gets_a_start_time_when_it_finishes() {
    let mut store = store();
    let mut ctx = flow_ctx(flow_run(), Some(scheduled("Scheduled", now())), proposal(Cancelled));
    run_flow(&mut ctx, &mut store).await;
    assert_eq!(ctx.run.start_time, Some(now()));
    assert_eq!(ctx.run.end_time, Some(now()));
    assert_eq!(ctx.run.total_run_time, 0.0, "time outside RUNNING does not count");
}

#[tokio::test]
async fn end_time_is_kept_between_final_states_and_cleared_on_rerun() {
    let mut store = store();
    let finished = now() - secs(60);
    let mut run = flow_run();
    run.end_time = Some(finished);
    let mut ctx = flow_ctx(run.clone(), Some(current(Failed)), proposal(Completed));
    run_flow(&mut ctx, &mut store).await;
    assert_eq!(ctx.run.end_time, Some(finished));

    let mut ctx = flow_ctx(run, Some(current(Failed)), proposal(Running));
    run_flow(&mut ctx, &mut store).await;
    assert_eq!(ctx.run.end_time, None);
}

// --- SetExpectedStartTime / SetNextScheduledStartTime --------------------------------

#[tokio::test]
async fn first_state_sets_the_expected_start_time() {
    let mut store = store();
    let due = now() + secs(3600);
    let mut ctx = flow_ctx(flow_run(), None, State::scheduled("Scheduled", due, now()));
    run_flow_with(FlowPolicy::Minimal, &mut ctx, &mut store).await;
    assert_eq!(ctx.run.expected_start_time, Some(due));
    assert_eq!(ctx.run.next_scheduled_start_time, Some(due));

    let mut ctx = flow_ctx(flow_run(), None, proposal(Pending));
    run_flow_with(FlowPolicy::Minimal, &mut ctx, &mut store).await;
    assert_eq!(ctx.run.expected_start_time, Some(now()));
    assert_eq!(ctx.run.next_scheduled_start_time, None);
}

#[tokio::test]
async fn expected_start_time_is_never_overwritten_but_next_start_moves() {
    let mut store = store();
    let (first, later) = (now() - secs(600), now() + secs(600));
    let mut run = flow_run();
    run.expected_start_time = Some(first);
    run.next_scheduled_start_time = Some(first);
    let mut ctx = flow_ctx(run, Some(scheduled("Scheduled", first)), State::scheduled("Rescheduled", later, now()));
    run_flow(&mut ctx, &mut store).await;
    assert_accepted(&ctx);
    assert_eq!(ctx.run.expected_start_time, Some(first));
    assert_eq!(ctx.run.next_scheduled_start_time, Some(later));
}

#[tokio::test]
async fn leaving_scheduled_clears_the_next_start_time() {
    let mut store = store();
    let mut run = flow_run();
    run.next_scheduled_start_time = Some(now());
    let mut ctx = flow_ctx(run, Some(scheduled("Scheduled", now())), proposal(Pending));
    run_flow(&mut ctx, &mut store).await;
    assert_eq!(ctx.run.next_scheduled_start_time, None);
}

// --- UpdateStateDetails / UpdateSubflowStateDetails / UpdateSubflowParentTask --------

#[tokio::test]
async fn written_flow_state_names_its_run() {
    let mut store = store();
    let run = flow_run();
    let run_id = run.id;
    let mut ctx = flow_ctx(run, Some(current(Running)), proposal(Completed));
    run_flow(&mut ctx, &mut store).await;
    assert_eq!(validated(&ctx).state_details.flow_run_id, Some(run_id));
    assert_eq!(validated(&ctx).state_details.task_run_id, None);
}

#[tokio::test]
async fn written_task_state_names_its_task_run_and_flow_run() {
    let mut store = store();
    let flow_run_id = add_flow_run(&mut store, Some(current(Running)), 1);
    let run = task_run_in(flow_run_id);
    let task_run_id = run.id;
    let mut ctx = task_ctx(run, Some(current(Running)), proposal(Completed));
    run_task(&mut ctx, &mut store).await;
    assert_eq!(validated(&ctx).state_details.flow_run_id, Some(flow_run_id));
    assert_eq!(validated(&ctx).state_details.task_run_id, Some(task_run_id));
}

#[tokio::test]
async fn subflow_states_are_mirrored_onto_the_parent_task_run() {
    let mut store = store();
    let parent_task_run_id = Uuid::now_v7();
    let mut run = flow_run();
    run.parent_task_run_id = Some(parent_task_run_id);
    let subflow_id = run.id;
    let mut ctx = flow_ctx(run, Some(current(Pending)), proposal(Running).with_data(persisted_result()));
    ctx.now = now() + secs(1);
    run_flow(&mut ctx, &mut store).await;
    let written = validated(&ctx).clone();
    assert_eq!(written.state_details.task_run_id, Some(parent_task_run_id), "UpdateSubflowStateDetails");
    assert_eq!(written.state_details.flow_run_id, Some(subflow_id));
    let [(task_run_id, mirrored)] = store.subflow_parent_states.as_slice() else {
        panic!("expected one mirrored state, got {:?}", store.subflow_parent_states);
    };
    assert_eq!(*task_run_id, parent_task_run_id);
    assert_ne!(mirrored.id, written.id, "the parent gets a fresh copy");
    assert_eq!(mirrored.timestamp, now() + secs(1));
    assert_eq!(mirrored.state_type, Running);
    assert_eq!(mirrored.data, written.data);
    assert_eq!(mirrored.state_details.child_flow_run_id, Some(subflow_id));
}

#[tokio::test]
async fn subflow_state_written_by_a_rejection_is_mirrored() {
    let mut store = store();
    let mut run = flow_run();
    run.parent_task_run_id = Some(Uuid::now_v7());
    run.run_count = 1;
    run.empirical_policy.retries = Some(1);
    let mut ctx = flow_ctx(run, Some(current(Running)), proposal(Failed));
    run_flow(&mut ctx, &mut store).await;
    assert_eq!(store.subflow_parent_states.len(), 1);
    assert_eq!(store.subflow_parent_states[0].1.name(), "AwaitingRetry");
}

#[tokio::test]
async fn nothing_is_mirrored_for_top_level_runs_or_unwritten_subflow_states() {
    let mut store = store();
    let mut ctx = flow_ctx(flow_run(), Some(current(Pending)), proposal(Running));
    run_flow(&mut ctx, &mut store).await;

    let mut subflow = flow_run();
    subflow.parent_task_run_id = Some(Uuid::now_v7());
    let mut ctx = flow_ctx(subflow, Some(scheduled("Scheduled", now() + secs(30))), proposal(Running));
    run_flow(&mut ctx, &mut store).await;
    assert_eq!(ctx.response_status, SetStateStatus::Wait);
    assert!(store.subflow_parent_states.is_empty());
}

// --- EnsureFlowRunStateTimestampIsUnique ---------------------------------------------

#[tokio::test]
async fn colliding_state_timestamp_is_moved_by_a_microsecond() {
    let micro = TimeDelta::microseconds(1);
    for taken in 1..=3 {
        let mut store = store();
        let run = flow_run();
        for bump in 0..taken {
            store.taken_timestamps.insert((run.id, now() + micro * bump));
        }
        let mut ctx = flow_ctx(run, Some(current(Running)), proposal(Completed));
        run_flow(&mut ctx, &mut store).await;
        let unique = now() + micro * taken;
        assert_eq!(validated(&ctx).timestamp, unique, "{taken} taken");
        assert_eq!(ctx.run.state_timestamp, Some(unique));
        assert_eq!(ctx.run.end_time, Some(unique));
    }
}

#[tokio::test]
async fn timestamps_of_other_runs_do_not_collide() {
    let mut store = store();
    store.taken_timestamps.insert((Uuid::now_v7(), now()));
    let mut ctx = flow_ctx(flow_run(), Some(current(Running)), proposal(Completed));
    run_flow(&mut ctx, &mut store).await;
    assert_eq!(validated(&ctx).timestamp, now());
}

// --- IncrementFlowRunCount / RemoveResumingIndicator ---------------------------------

#[tokio::test]
async fn entering_running_counts_a_flow_run() {
    let mut store = store();
    let mut ctx = flow_ctx(flow_run(), Some(current(Pending)), proposal(Running));
    run_flow(&mut ctx, &mut store).await;
    assert_eq!(ctx.run.run_count, 1);
    let mut ctx = flow_ctx(ctx.run, Some(current(Running)), proposal(Completed));
    run_flow(&mut ctx, &mut store).await;
    assert_eq!(ctx.run.run_count, 1, "only RUNNING counts");
}

#[tokio::test]
async fn resuming_run_is_not_counted_again_and_stops_resuming() {
    let mut store = store();
    let mut run = flow_run();
    run.run_count = 1;
    run.empirical_policy.resuming = Some(true);
    let mut ctx = flow_ctx(run, Some(current(Running)), proposal(Running));
    run_flow(&mut ctx, &mut store).await;
    assert_accepted(&ctx);
    assert_eq!(ctx.run.run_count, 1);
    assert_eq!(ctx.run.empirical_policy.resuming, Some(false));
}

#[tokio::test]
async fn old_api_clients_count_resumed_runs_and_keep_resuming() {
    let mut store = store();
    let mut run = flow_run();
    run.run_count = 1;
    run.empirical_policy.resuming = Some(true);
    let mut ctx = flow_ctx(run, Some(current(Running)), proposal(Running));
    ctx.api_version = Some(Version(0, 8, 3));
    run_flow(&mut ctx, &mut store).await;
    assert_eq!(ctx.run.run_count, 2);
    assert_eq!(ctx.run.empirical_policy.resuming, Some(true));
}

#[tokio::test]
async fn resuming_indicator_is_removed_only_when_running_or_finishing() {
    for (to, still_resuming) in [(Completed, false), (Crashed, false), (Scheduled, true), (Cancelling, true)] {
        let mut store = store();
        let mut run = flow_run();
        run.empirical_policy.resuming = Some(true);
        let mut ctx = flow_ctx(run, Some(current(Paused)), proposal(to));
        // Forced, so only the global transforms touch the policy.
        run_flow_with(FlowPolicy::Minimal, &mut ctx, &mut store).await;
        assert_accepted(&ctx);
        assert_eq!(ctx.run.empirical_policy.resuming, Some(still_resuming), "PAUSED -> {to}");
    }
}

// --- IncrementTaskRunCount and task bookkeeping ---------------------------------------

#[tokio::test]
async fn entering_running_counts_a_task_run() {
    let mut store = store();
    let mut ctx = task_ctx(task_run(), Some(current(Pending)), proposal(Running));
    run_task(&mut ctx, &mut store).await;
    assert_eq!(ctx.run.run_count, 1);
    assert_eq!(ctx.run.start_time, Some(now()));
    assert_eq!(ctx.run.state_type, Some(Running));

    let mut ctx = task_ctx(ctx.run, Some(current(Running)), proposal(Completed));
    run_task(&mut ctx, &mut store).await;
    assert_eq!(ctx.run.run_count, 1);
    assert_eq!(ctx.run.end_time, Some(now()));
    assert!((ctx.run.total_run_time - 60.0).abs() < 1e-9);
}

#[tokio::test]
async fn task_run_count_is_untouched_when_running_is_delayed() {
    let mut store = store();
    let mut ctx = task_ctx(task_run(), Some(scheduled("Scheduled", now() + secs(20))), proposal(Running));
    run_task(&mut ctx, &mut store).await;
    assert_eq!(wait_details(&ctx).0, 20);
    assert_eq!(ctx.run.run_count, 0);
    assert_eq!(ctx.run.state_type, None);
}

#[tokio::test]
async fn bookkeeping_applies_under_every_policy() {
    let mut store = store();
    for policy in [FlowPolicy::Core, FlowPolicy::Minimal] {
        let mut ctx = flow_ctx(flow_run(), Some(current(Pending)), proposal(Running));
        run_flow_with(policy, &mut ctx, &mut store).await;
        assert_eq!((ctx.run.run_count, ctx.run.start_time), (1, Some(now())), "{policy:?}");
    }
    for policy in [TaskPolicy::Core, TaskPolicy::Minimal, TaskPolicy::Background] {
        let mut ctx = task_ctx(task_run(), Some(current(Pending)), proposal(Running));
        run_task_with(policy, &mut ctx, &mut store).await;
        assert_eq!((ctx.run.run_count, ctx.run.start_time), (1, Some(now())), "{policy:?}");
    }
    let mut ctx = flow_ctx(flow_run(), Some(scheduled("Scheduled", now())), State::scheduled("Late", now(), now()));
    run_flow_with(FlowPolicy::MarkLateRuns, &mut ctx, &mut store).await;
    assert_eq!(ctx.run.state_name.as_deref(), Some("Late"));
}
