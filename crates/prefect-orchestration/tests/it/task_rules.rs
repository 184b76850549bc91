//! Task run rules under `TaskPolicy::{Core, Minimal, Background}` (Prefect's `core_policy.py`).

use prefect_domain::concurrency::{ConcurrencyLeaseHolder, LeaseHolderType};
use prefect_domain::state::StateType::{self, *};
use prefect_domain::state::{SetStateStatus, State};
use prefect_orchestration::task_rules::TAG_LEASE_TTL_SECONDS;
use prefect_orchestration::{Effect, OrchestrationStore, TaskPolicy, TaskRunData, orchestrate_task};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::*;

const TERMINAL: [StateType; 4] = [Completed, Failed, Cancelled, Crashed];

fn with_cache_key(state: State, key: &str) -> State {
    state.with_details(|d| d.cache_key = Some(key.to_owned()))
}

/// A COMPLETED state stored in the cache an hour ago.
fn cached_completion(key: &str, message: &str) -> State {
    with_cache_key(State::new(Completed, now() - secs(3600)), key).with_data(persisted_result()).with_message(message)
}

fn tagged_task(tags: &[&str]) -> TaskRunData {
    TaskRunData { tags: tags.iter().map(|t| (*t).to_owned()).collect(), ..task_run() }
}

// --- CacheRetrieval ------------------------------------------------------------------

#[tokio::test]
async fn cached_completion_is_returned_instead_of_running() {
    let mut store = store();
    let cached = cached_completion("answer", "from cache");
    store.cache.push(("answer".to_owned(), None, cached.clone()));
    let mut ctx = task_ctx(task_run(), Some(current(Pending)), with_cache_key(proposal(Running), "answer"));
    run_task(&mut ctx, &mut store).await;
    assert_eq!(reject_reason(&ctx), "Retrieved state from cache");
    let state = validated(&ctx);
    assert_eq!(state.state_type, Completed);
    assert_eq!(state.name(), "Cached");
    assert_eq!(state.data, cached.data);
    assert_eq!(state.message.as_deref(), Some("from cache"));
    assert_ne!(state.id, cached.id, "a fresh copy is written");
    assert_eq!(state.timestamp, now());
    assert_eq!(ctx.run.run_count, 0, "the task never ran");
    assert_eq!(ctx.run.state_name.as_deref(), Some("Cached"));
    assert_eq!(ctx.run.end_time, Some(now()));
}

#[tokio::test]
async fn newest_unexpired_cache_entry_wins() {
    let mut store = store();
    store.cache.push(("answer".to_owned(), None, cached_completion("answer", "oldest")));
    store.cache.push(("answer".to_owned(), Some(now() + secs(60)), cached_completion("answer", "newest valid")));
    store.cache.push(("answer".to_owned(), Some(now() - secs(1)), cached_completion("answer", "expired")));
    store.cache.push(("other".to_owned(), None, cached_completion("other", "other key")));
    let mut ctx = task_ctx(task_run(), Some(current(Pending)), with_cache_key(proposal(Running), "answer"));
    run_task(&mut ctx, &mut store).await;
    assert_eq!(validated(&ctx).message.as_deref(), Some("newest valid"));
}

#[tokio::test]
async fn expired_or_unrelated_cache_entries_are_ignored() {
    let mut store = store();
    store.cache.push(("answer".to_owned(), Some(now() - secs(1)), cached_completion("answer", "expired")));
    store.cache.push(("other".to_owned(), None, cached_completion("other", "other key")));
    let mut ctx = task_ctx(task_run(), Some(current(Pending)), with_cache_key(proposal(Running), "answer"));
    run_task(&mut ctx, &mut store).await;
    assert_accepted(&ctx);
    assert_eq!(validated(&ctx).state_type, Running);
    assert_eq!(ctx.run.run_count, 1);
}

#[tokio::test]
async fn refresh_cache_runs_the_task_anyway() {
    let mut store = store();
    store.cache.push(("answer".to_owned(), None, cached_completion("answer", "cached")));
    let proposed = with_cache_key(proposal(Running), "answer").with_details(|d| d.refresh_cache = Some(true));
    let mut ctx = task_ctx(task_run(), Some(current(Pending)), proposed);
    run_task(&mut ctx, &mut store).await;
    assert_accepted(&ctx);
    assert_eq!(validated(&ctx).state_type, Running);
}

#[tokio::test]
async fn proposals_without_cache_key_do_not_read_the_cache() {
    let mut store = store();
    store.cache.push(("answer".to_owned(), None, cached_completion("answer", "cached")));
    let mut ctx = task_ctx(task_run(), Some(current(Pending)), proposal(Running));
    run_task(&mut ctx, &mut store).await;
    assert_accepted(&ctx);
}

#[tokio::test]
async fn cache_hit_bypasses_the_other_running_rules() {
    let mut store = store();
    store.cache.push(("answer".to_owned(), None, cached_completion("answer", "cached")));
    store.add_limit("tag:db", 0);
    let flow_run_id = add_flow_run(&mut store, Some(current(Completed)), 1);
    let run = TaskRunData { tags: vec!["db".to_owned()], ..task_run_in(flow_run_id) };
    let mut ctx = task_ctx(run, Some(scheduled("Scheduled", now() + secs(60))), with_cache_key(proposal(Running), "answer"));
    run_task(&mut ctx, &mut store).await;
    assert_eq!(reject_reason(&ctx), "Retrieved state from cache", "no abort for the stopped flow, zero limit or schedule");
    assert_eq!(validated(&ctx).name(), "Cached");
}

// --- CacheInsertion ------------------------------------------------------------------

#[tokio::test]
async fn completion_with_cache_key_is_cached() {
    let mut store = store();
    let expiration = now() + secs(3600);
    let proposed = with_cache_key(proposal(Completed), "answer").with_data(persisted_result()).with_details(|d| d.cache_expiration = Some(expiration));
    let mut ctx = task_ctx(task_run(), Some(current(Running)), proposed);
    run_task(&mut ctx, &mut store).await;
    assert_accepted(&ctx);
    assert_eq!(store.cache, vec![("answer".to_owned(), Some(expiration), validated(&ctx).clone())]);
}

#[tokio::test]
async fn cached_completion_is_found_by_the_next_run() {
    let mut store = store();
    let mut first = task_ctx(task_run(), Some(current(Running)), with_cache_key(proposal(Completed), "answer"));
    run_task(&mut first, &mut store).await;
    let mut second = task_ctx(task_run(), Some(current(Pending)), with_cache_key(proposal(Running), "answer"));
    run_task(&mut second, &mut store).await;
    assert_eq!(second.response_status, SetStateStatus::Reject);
    assert_eq!(validated(&second).name(), "Cached");
}

#[tokio::test]
async fn states_without_key_or_other_than_completed_are_not_cached() {
    let mut store = store();
    for (initial, proposed) in [
        (current(Running), proposal(Completed)),
        (current(Running), with_cache_key(proposal(Failed), "answer")),
        (current(Pending), with_cache_key(proposal(Cancelled), "answer")),
    ] {
        let mut ctx = task_ctx(task_run(), Some(initial), proposed);
        run_task(&mut ctx, &mut store).await;
        assert_accepted(&ctx);
    }
    assert!(store.cache.is_empty());
}

#[tokio::test]
async fn over_long_cache_key_is_rejected_but_the_state_is_written() {
    let mut store = store();
    let proposed = with_cache_key(proposal(Completed), &"k".repeat(2001));
    let proposed_id = proposed.id;
    let mut ctx = task_ctx(task_run(), Some(current(Running)), proposed);
    run_task(&mut ctx, &mut store).await;
    assert_eq!(reject_reason(&ctx), "Cache key exceeded maximum allowed length of 2000 characters.");
    assert_eq!(validated(&ctx).id, proposed_id);
    assert_eq!(validated(&ctx).state_type, Completed);
    assert_eq!(ctx.run.state_type, Some(Completed));
}

#[tokio::test]
async fn cache_key_length_counts_characters() {
    for (key, accepted) in [("éééé", true), ("ééééé", false)] {
        let mut store = store();
        let mut ctx = task_ctx(task_run(), Some(current(Running)), with_cache_key(proposal(Completed), key));
        ctx.settings.max_cache_key_length = 4;
        run_task(&mut ctx, &mut store).await;
        assert_eq!(ctx.response_status == SetStateStatus::Accept, accepted, "{key}");
    }
}

// --- HandleTaskTerminalStateTransitions ----------------------------------------------

#[tokio::test]
async fn terminal_task_runs_cannot_become_cancelling_paused_or_crashed() {
    for from in TERMINAL {
        for to in [Cancelling, Paused, Crashed] {
            let mut store = store();
            let mut ctx = task_ctx(task_run(), Some(current(from)), proposal(to));
            run_task(&mut ctx, &mut store).await;
            assert_eq!(abort_reason(&ctx), format!("Run is already {from}."));
            assert_nothing_written(&ctx);
        }
    }
}

#[tokio::test]
async fn completed_task_with_persisted_result_cannot_change() {
    for to in [Running, Pending, Scheduled, Completed, Failed] {
        let mut store = store();
        let mut run = task_run();
        run.run_count = 1;
        let mut ctx = task_ctx(run, Some(current(Completed).with_data(persisted_result())), proposal(to));
        run_task(&mut ctx, &mut store).await;
        assert_eq!(reject_reason(&ctx), "This run is already completed.", "-> {to}");
        assert_nothing_written(&ctx);
        assert_eq!(ctx.run.run_count, 1);
    }
}

#[tokio::test]
async fn rerunning_a_terminal_task_resets_its_run_count() {
    for from in [current(Failed), current(Completed), current(Completed).with_data(unpersisted_result())] {
        let mut store = store();
        let mut run = task_run();
        run.run_count = 3;
        let mut ctx = task_ctx(run, Some(from), proposal(Running));
        run_task(&mut ctx, &mut store).await;
        assert_accepted(&ctx);
        assert_eq!(ctx.run.run_count, 1, "reset to 0, then counted");
        assert_eq!(validated(&ctx).name(), "Running", "a fresh run is not a rerun");
    }
}

#[tokio::test]
async fn terminal_task_sent_back_to_waiting_has_no_runs() {
    for to in [Pending, Scheduled] {
        let mut store = store();
        let mut run = task_run();
        run.run_count = 3;
        let mut ctx = task_ctx(run, Some(current(Failed)), proposal(to));
        run_task(&mut ctx, &mut store).await;
        assert_accepted(&ctx);
        assert_eq!(ctx.run.run_count, 0, "-> {to}");
    }
}

#[tokio::test]
async fn moving_between_final_states_keeps_the_task_run_count() {
    let mut store = store();
    let mut run = task_run();
    run.run_count = 3;
    let mut ctx = task_ctx(run, Some(current(Failed)), proposal(Completed));
    run_task(&mut ctx, &mut store).await;
    assert_accepted(&ctx);
    assert_eq!(ctx.run.run_count, 3);
}

#[tokio::test]
async fn rerun_after_the_flow_retried_is_named_retrying() {
    let mut store = store();
    let flow_run_id = add_flow_run(&mut store, Some(current(Running)), 2);
    let mut run = task_run_in(flow_run_id);
    run.run_count = 1;
    run.flow_run_run_count = 1;
    let mut ctx = task_ctx(run, Some(current(Failed)), proposal(Running));
    run_task(&mut ctx, &mut store).await;
    assert_accepted(&ctx);
    assert_eq!(validated(&ctx).name(), "Retrying");
    assert_eq!(ctx.run.flow_run_run_count, 2);
    assert_eq!(ctx.run.run_count, 1);
}

#[tokio::test]
async fn rerun_within_the_same_flow_run_keeps_its_name() {
    let mut store = store();
    let flow_run_id = add_flow_run(&mut store, Some(current(Running)), 1);
    let mut run = task_run_in(flow_run_id);
    run.run_count = 1;
    run.flow_run_run_count = 1;
    let mut ctx = task_ctx(run, Some(current(Failed)), proposal(Running));
    run_task(&mut ctx, &mut store).await;
    assert_accepted(&ctx);
    assert_eq!(validated(&ctx).name(), "Running");
}

#[tokio::test]
async fn run_count_reset_is_reverted_when_a_later_rule_aborts() {
    let mut store = store();
    let flow_run_id = add_flow_run(&mut store, Some(current(Completed)), 1);
    let mut run = task_run_in(flow_run_id);
    run.run_count = 3;
    let mut ctx = task_ctx(run, Some(current(Failed)), proposal(Running));
    run_task(&mut ctx, &mut store).await;
    assert_eq!(abort_reason(&ctx), "The enclosing flow must be running to begin task execution.");
    assert_eq!(ctx.run.run_count, 3, "HandleTaskTerminalStateTransitions fizzled and restored the count");
}

// --- PreventRunningTasksFromStoppedFlows ---------------------------------------------

#[tokio::test]
async fn tasks_cannot_start_in_a_flow_that_is_not_running() {
    for flow_state in [None, Some(current(Completed)), Some(scheduled("Scheduled", now())), Some(current(Cancelling))] {
        let mut store = store();
        let flow_run_id = add_flow_run(&mut store, flow_state, 1);
        let mut ctx = task_ctx(task_run_in(flow_run_id), Some(current(Pending)), proposal(Running));
        run_task(&mut ctx, &mut store).await;
        assert_eq!(abort_reason(&ctx), "The enclosing flow must be running to begin task execution.");
        assert_nothing_written(&ctx);
        assert_eq!(ctx.run.run_count, 0);
    }
}

#[tokio::test]
async fn tasks_of_a_paused_flow_are_parked_as_not_ready() {
    let mut store = store();
    let timeout = now() + secs(600);
    let paused = current(Paused).with_details(|d| {
        d.pause_timeout = Some(timeout);
        d.pause_reschedule = true;
        d.pause_key = Some("approval".to_owned());
    });
    let flow_run_id = add_flow_run(&mut store, Some(paused), 1);
    let mut ctx = task_ctx(task_run_in(flow_run_id), Some(current(Pending)), proposal(Running));
    run_task(&mut ctx, &mut store).await;
    assert_eq!(reject_reason(&ctx), format!("The flow is paused, new tasks can execute after resuming flow run: {flow_run_id}."));
    let state = validated(&ctx);
    assert_eq!(state.state_type, Paused);
    assert_eq!(state.name(), "NotReady");
    assert_eq!(state.state_details.pause_timeout, Some(timeout));
    assert!(state.state_details.pause_reschedule);
    assert_eq!(state.state_details.pause_key, None);
}

#[tokio::test]
async fn tasks_start_in_a_running_flow_or_without_one() {
    let mut store = store();
    let flow_run_id = add_flow_run(&mut store, Some(current(Running)), 1);
    for run in [task_run_in(flow_run_id), task_run()] {
        let mut ctx = task_ctx(run, Some(current(Pending)), proposal(Running));
        run_task(&mut ctx, &mut store).await;
        assert_accepted(&ctx);
    }
}

// --- SecureTaskConcurrencySlots / ReleaseTaskConcurrencySlots ------------------------

#[tokio::test]
async fn zero_tag_limit_aborts_the_task() {
    let mut store = store();
    store.add_limit("tag:db", 0);
    let mut ctx = task_ctx(tagged_task(&["db"]), Some(current(Pending)), proposal(Running));
    run_task(&mut ctx, &mut store).await;
    assert_eq!(abort_reason(&ctx), "The concurrency limit on tag \"db\" is 0 and will deadlock if the task tries to run again.");
    assert!(store.leases.is_empty());
}

#[tokio::test]
async fn inactive_and_missing_tag_limits_are_ignored() {
    let mut store = store();
    for (name, slots) in [("tag:db", 0), ("tag:api", 1)] {
        let id = store.add_limit(name, slots);
        if let Some(limit) = store.limits.get_mut(&id) {
            limit.active = false;
        }
    }
    let mut ctx = task_ctx(tagged_task(&["db", "api", "untracked"]), Some(current(Pending)), proposal(Running));
    run_task(&mut ctx, &mut store).await;
    assert_accepted(&ctx);
    assert!(store.leases.is_empty());
}

#[tokio::test]
async fn running_takes_one_slot_on_every_tag_limit() {
    let mut store = store();
    let db = store.add_limit("tag:db", 2);
    let api = store.add_limit("tag:api", 1);
    let run = tagged_task(&["db", "api", "untracked"]);
    let run_id = run.id;
    let mut ctx = task_ctx(run, Some(current(Pending)), proposal(Running));
    run_task(&mut ctx, &mut store).await;
    assert_accepted(&ctx);
    assert_eq!((active_slots(&store, db), active_slots(&store, api)), (1, 1));
    let leases: Vec<_> = store.leases.values().collect();
    let [lease] = leases.as_slice() else { panic!("expected one lease, got {leases:?}") };
    let mut resources = lease.resource_ids.clone();
    resources.sort();
    let mut expected = vec![db, api];
    expected.sort();
    assert_eq!(resources, expected);
    assert_eq!(lease.slots, 1);
    assert_eq!(lease.holder, Some(ConcurrencyLeaseHolder { kind: LeaseHolderType::TaskRun, id: run_id }));
    assert_eq!(lease.expiration, now() + prefect_domain::time::from_seconds(TAG_LEASE_TTL_SECONDS));
}

#[tokio::test]
async fn full_tag_limit_delays_the_task_without_taking_any_slot() {
    let mut store = store();
    let db = store.add_limit("tag:db", 1);
    let api = store.add_limit("tag:api", 5);
    assert!(store.increment_slots(&[db], 1).await.expect("increment"));
    let mut ctx = task_ctx(tagged_task(&["db", "api"]), Some(current(Pending)), proposal(Running));
    run_task(&mut ctx, &mut store).await;
    let (delay, reason) = wait_details(&ctx);
    assert!(reason.starts_with("Concurrency limit reached for tags: "), "{reason}");
    assert!(reason.contains("db") && reason.contains("api"), "{reason}");
    // The fullest limit (db) averages 2 s per slot: the wait is drawn from [1.5 s, 2.6 s].
    assert!((2..=3).contains(&delay), "{delay}");
    assert_nothing_written(&ctx);
    assert_eq!((active_slots(&store, db), active_slots(&store, api)), (1, 0));
    assert!(store.leases.is_empty());
    assert_eq!(ctx.run.run_count, 0);
}

#[tokio::test]
async fn wait_for_a_tag_slot_is_bounded_by_the_configured_maximum() {
    // (average occupancy, max wait or the default of 10 s) -> range of the rounded wait
    for (occupancy, max_wait, range) in [(0.0, None, 8..=13), (100.0, None, 8..=13), (100.0, Some(4.0), 3..=5)] {
        let mut store = store();
        let db = store.add_limit("tag:db", 1);
        if let Some(limit) = store.limits.get_mut(&db) {
            limit.active_slots = 1;
            limit.avg_slot_occupancy_seconds = occupancy;
        }
        let mut ctx = task_ctx(tagged_task(&["db"]), Some(current(Pending)), proposal(Running));
        if let Some(max_wait) = max_wait {
            ctx.settings.tag_concurrency_slot_wait_seconds = max_wait;
        }
        run_task(&mut ctx, &mut store).await;
        let (delay, reason) = wait_details(&ctx);
        assert_eq!(reason, "Concurrency limit reached for tags: db");
        assert!(range.contains(&delay), "occupancy {occupancy}, max {max_wait:?}: {delay}");
    }
}

#[tokio::test]
async fn tag_slot_wait_is_repeatable_with_a_seed() {
    let mut delays = Vec::new();
    for _ in 0..2 {
        let mut store = store();
        let db = store.add_limit("tag:db", 1);
        if let Some(limit) = store.limits.get_mut(&db) {
            limit.active_slots = 1;
        }
        let mut ctx = task_ctx(tagged_task(&["db"]), Some(current(Pending)), proposal(Running));
        run_task(&mut ctx, &mut store).await;
        delays.push(wait_details(&ctx).0);
    }
    assert_eq!(delays[0], delays[1]);
}

#[tokio::test]
async fn finishing_releases_the_task_runs_tag_slots() {
    for to in TERMINAL.into_iter().chain([Pending, Scheduled, Paused]) {
        let mut store = store();
        let db = store.add_limit("tag:db", 1);
        let run = tagged_task(&["db"]);
        let mut ctx = task_ctx(run, Some(current(Pending)), proposal(Running));
        run_task(&mut ctx, &mut store).await;
        assert_eq!(active_slots(&store, db), 1);

        let mut ctx = task_ctx(ctx.run, Some(current(Running)), proposal(to));
        run_task(&mut ctx, &mut store).await;
        assert_eq!(validated(&ctx).state_type, to);
        assert_eq!(active_slots(&store, db), 0, "RUNNING -> {to}");
        assert!(store.leases.is_empty(), "RUNNING -> {to}");
    }
}

#[tokio::test]
async fn tag_slots_are_kept_while_cancelling() {
    let mut store = store();
    let db = store.add_limit("tag:db", 1);
    let mut ctx = task_ctx(tagged_task(&["db"]), Some(current(Pending)), proposal(Running));
    run_task(&mut ctx, &mut store).await;
    let mut ctx = task_ctx(ctx.run, Some(current(Running)), proposal(Cancelling));
    run_task(&mut ctx, &mut store).await;
    assert_accepted(&ctx);
    assert_eq!(active_slots(&store, db), 1);
    assert_eq!(store.leases.len(), 1);
}

#[tokio::test]
async fn only_the_task_runs_own_leases_are_released() {
    let mut store = store();
    let db = store.add_limit("tag:db", 2);
    let mut first = task_ctx(tagged_task(&["db"]), Some(current(Pending)), proposal(Running));
    run_task(&mut first, &mut store).await;
    let mut second = task_ctx(tagged_task(&["db"]), Some(current(Pending)), proposal(Running));
    run_task(&mut second, &mut store).await;
    assert_eq!(active_slots(&store, db), 2);

    let mut done = task_ctx(first.run, Some(current(Running)), proposal(Completed));
    run_task(&mut done, &mut store).await;
    assert_eq!(active_slots(&store, db), 1);
    let holders: Vec<_> = store.leases.values().filter_map(|l| l.holder.map(|h| h.id)).collect();
    assert_eq!(holders, vec![second.run.id]);
}

#[tokio::test]
async fn forced_finish_releases_tag_slots() {
    let mut store = store();
    let db = store.add_limit("tag:db", 1);
    let mut ctx = task_ctx(tagged_task(&["db"]), Some(current(Pending)), proposal(Running));
    run_task(&mut ctx, &mut store).await;
    let mut ctx = task_ctx(ctx.run, Some(current(Running)), proposal(Crashed));
    run_task_with(TaskPolicy::Minimal, &mut ctx, &mut store).await;
    assert_accepted(&ctx);
    assert_eq!(active_slots(&store, db), 0);
    assert!(store.leases.is_empty());
}

#[tokio::test]
async fn tag_slot_is_given_back_when_a_later_rule_delays_running() {
    let mut store = store();
    let db = store.add_limit("tag:db", 1);
    let pending = current(Pending).with_details(|d| d.scheduled_time = Some(now() + secs(30)));
    let mut ctx = task_ctx(tagged_task(&["db"]), Some(pending), proposal(Running));
    run_task(&mut ctx, &mut store).await;
    assert_eq!(wait_details(&ctx), (30, "Scheduled time is in the future".to_owned()));
    assert_eq!(active_slots(&store, db), 0, "SecureTaskConcurrencySlots fizzled and released its slot");
    assert!(store.leases.is_empty());
}

// --- CopyScheduledTime / WaitForScheduledTime ----------------------------------------

#[tokio::test]
async fn pending_task_inherits_the_scheduled_time() {
    let mut store = store();
    let due = now() - secs(5);
    let mut ctx = task_ctx(task_run(), Some(scheduled("Scheduled", due)), proposal(Pending));
    run_task(&mut ctx, &mut store).await;
    assert_accepted(&ctx);
    assert_eq!(validated(&ctx).state_details.scheduled_time, Some(due));
}

#[tokio::test]
async fn task_waits_for_its_scheduled_time() {
    let mut store = store();
    let mut ctx = task_ctx(task_run(), Some(scheduled("Scheduled", now() + secs(45))), proposal(Running));
    run_task(&mut ctx, &mut store).await;
    assert_eq!(wait_details(&ctx), (45, "Scheduled time is in the future".to_owned()));
    assert_nothing_written(&ctx);
}

// --- RetryFailedTasks ----------------------------------------------------------------

fn retrying_task(run_count: i64, retries: Option<i64>, retry_delay: Value) -> TaskRunData {
    let mut run = task_run();
    run.run_count = run_count;
    run.empirical_policy.retries = retries;
    run.empirical_policy.retry_delay = Some(retry_delay);
    run
}

#[tokio::test]
async fn failed_task_with_retries_left_awaits_retry() {
    let mut store = store();
    let failed = proposal(Failed).with_message("boom").with_data(persisted_result());
    let mut ctx = task_ctx(retrying_task(1, Some(2), json!(5)), Some(current(Running)), failed);
    run_task(&mut ctx, &mut store).await;
    assert_eq!(reject_reason(&ctx), "Retrying");
    let state = validated(&ctx);
    assert_eq!(state.state_type, Scheduled);
    assert_eq!(state.name(), "AwaitingRetry");
    assert_eq!(state.state_details.scheduled_time, Some(now() + secs(5)));
    assert_eq!(state.message.as_deref(), Some("boom"));
    assert_eq!(state.data, Some(persisted_result()));
    assert_eq!(ctx.run.state_name.as_deref(), Some("AwaitingRetry"));
    assert_eq!(ctx.run.end_time, None);
}

#[tokio::test]
async fn retry_delay_list_is_indexed_by_attempt() {
    for (run_count, delay) in [(1, 1), (2, 10), (3, 100), (4, 100)] {
        let mut store = store();
        let mut ctx = task_ctx(retrying_task(run_count, Some(5), json!([1, 10, 100])), Some(current(Running)), proposal(Failed));
        run_task(&mut ctx, &mut store).await;
        assert_eq!(validated(&ctx).state_details.scheduled_time, Some(now() + secs(delay)), "attempt {run_count}");
    }
}

#[tokio::test]
async fn failure_marked_not_retriable_is_final() {
    for (retriable, retried) in [(Some(false), false), (Some(true), true), (None, true)] {
        let mut store = store();
        let failed = proposal(Failed).with_details(|d| d.retriable = retriable);
        let mut ctx = task_ctx(retrying_task(1, Some(3), json!(0)), Some(current(Running)), failed);
        run_task(&mut ctx, &mut store).await;
        assert_eq!(validated(&ctx).state_type == Scheduled, retried, "retriable {retriable:?}");
    }
}

#[tokio::test]
async fn task_without_retries_left_fails() {
    for (run_count, retries) in [(3, Some(2)), (1, None), (1, Some(0))] {
        let mut store = store();
        let mut ctx = task_ctx(retrying_task(run_count, retries, json!(5)), Some(current(Running)), proposal(Failed));
        run_task(&mut ctx, &mut store).await;
        assert_accepted(&ctx);
        assert_eq!(validated(&ctx).state_type, Failed);
        assert_eq!(ctx.run.end_time, Some(now()));
    }
}

#[tokio::test]
async fn retry_jitter_spreads_the_delay_repeatably() {
    let mut scheduled_times = Vec::new();
    for _ in 0..2 {
        let mut store = store();
        let mut run = retrying_task(1, Some(1), json!(10));
        run.empirical_policy.retry_jitter_factor = Some(0.5);
        let mut ctx = task_ctx(run, Some(current(Running)), proposal(Failed));
        run_task(&mut ctx, &mut store).await;
        let at = validated(&ctx).state_details.scheduled_time.expect("scheduled time");
        // Clamped to at most 1.5 x the delay, and to at least about 0.63 x.
        assert!(at >= now() + secs(6) && at <= now() + secs(15), "{at}");
        scheduled_times.push(at);
    }
    assert_eq!(scheduled_times[0], scheduled_times[1]);
}

#[tokio::test]
async fn jitter_without_delay_retries_immediately() {
    let mut store = store();
    let mut run = retrying_task(1, Some(1), json!(0));
    run.empirical_policy.retry_jitter_factor = Some(0.5);
    let mut ctx = task_ctx(run, Some(current(Running)), proposal(Failed));
    run_task(&mut ctx, &mut store).await;
    assert_eq!(validated(&ctx).state_details.scheduled_time, Some(now()));
}

// --- RenameReruns / UpdateFlowRunTrackerOnTasks --------------------------------------

#[tokio::test]
async fn reruns_are_renamed_by_how_they_came_back() {
    let cases =
        [(1, State::awaiting_retry(now() - secs(1), now() - secs(60)), "Retrying"), (1, current(Pending), "Rerunning"), (0, current(Pending), "Running")];
    for (run_count, initial, name) in cases {
        let mut store = store();
        let mut run = task_run();
        run.run_count = run_count;
        let mut ctx = task_ctx(run, Some(initial), proposal(Running));
        run_task(&mut ctx, &mut store).await;
        assert_accepted(&ctx);
        assert_eq!(validated(&ctx).name(), name);
        assert_eq!(ctx.run.run_count, run_count + 1);
    }
}

#[tokio::test]
async fn running_task_records_its_flow_runs_run_count() {
    let mut store = store();
    let flow_run_id = add_flow_run(&mut store, Some(current(Running)), 3);
    let mut ctx = task_ctx(task_run_in(flow_run_id), Some(current(Pending)), proposal(Running));
    run_task(&mut ctx, &mut store).await;
    assert_eq!(ctx.run.flow_run_run_count, 3);

    if let Some(flow_run) = store.flow_runs.get_mut(&flow_run_id) {
        flow_run.run_count = 4;
    }
    let mut ctx = task_ctx(ctx.run, Some(current(Running)), proposal(Completed));
    run_task(&mut ctx, &mut store).await;
    assert_eq!(ctx.run.flow_run_run_count, 3, "only RUNNING updates the tracker");
}

#[tokio::test]
async fn running_task_of_a_deleted_flow_run_fails() {
    let mut store = store();
    let mut ctx = task_ctx(task_run_in(Uuid::now_v7()), Some(current(Pending)), proposal(Running));
    let error = orchestrate_task(&mut ctx, &mut store, TaskPolicy::Core).await.expect_err("the flow run is gone");
    assert_eq!(error.rule, "UpdateFlowRunTrackerOnTasks");
    assert!(error.source.to_string().starts_with("Unable to read flow run associated with task run"), "{error}");
}

// --- TaskPolicy::Background: PreventPendingTransitions, CopyTaskParametersID, EnqueueScheduledTasks

#[tokio::test]
async fn background_task_cannot_go_back_to_pending() {
    for from in [Pending, Running, Cancelling, Cancelled] {
        let mut store = store();
        let mut ctx = task_ctx(task_run(), Some(current(from)), proposal(Pending).with_details(|d| d.deferred = Some(true)));
        run_task_with(TaskPolicy::Background, &mut ctx, &mut store).await;
        assert_eq!(abort_reason(&ctx), format!("This run is in a {from} state and cannot transition to a PENDING state."));
    }
}

#[tokio::test]
async fn background_task_submission_is_accepted() {
    let mut store = store();
    let parameters_id = Uuid::now_v7();
    let queued = scheduled("Scheduled", now()).with_details(|d| {
        d.deferred = Some(true);
        d.task_parameters_id = Some(parameters_id);
    });
    let mut ctx = task_ctx(task_run(), Some(queued), proposal(Pending));
    run_task_with(TaskPolicy::Background, &mut ctx, &mut store).await;
    assert_accepted(&ctx);
    assert_eq!(validated(&ctx).state_details.task_parameters_id, Some(parameters_id), "CopyTaskParametersID");
}

#[tokio::test]
async fn background_task_carries_its_parameters_id_into_running() {
    let mut store = store();
    let (inherited, own) = (Uuid::now_v7(), Uuid::now_v7());
    let pending = current(Pending).with_details(|d| d.task_parameters_id = Some(inherited));
    let cases = [(proposal(Running), Some(inherited)), (proposal(Running).with_details(|d| d.task_parameters_id = Some(own)), Some(own))];
    for (proposed, expected) in cases {
        let mut ctx = task_ctx(task_run(), Some(pending.clone()), proposed);
        run_task_with(TaskPolicy::Background, &mut ctx, &mut store).await;
        assert_eq!(validated(&ctx).state_details.task_parameters_id, expected);
    }
    let mut ctx = task_ctx(task_run(), Some(pending), proposal(Running));
    run_task(&mut ctx, &mut store).await;
    assert_eq!(validated(&ctx).state_details.task_parameters_id, None, "only the background policy copies it");
}

#[tokio::test]
async fn scheduled_deferred_task_is_handed_to_task_workers() {
    let cases = [(None, State::scheduled("Scheduled", now(), now()), false), (Some(current(Running)), State::awaiting_retry(now() + secs(5), now()), true)];
    for (initial, proposed, retry) in cases {
        let mut store = store();
        let run = TaskRunData { task_key: "say_hello-3f2a".to_owned(), ..task_run() };
        let run_id = run.id;
        let mut ctx = task_ctx(run, initial, proposed.with_details(|d| d.deferred = Some(true)));
        run_task_with(TaskPolicy::Background, &mut ctx, &mut store).await;
        assert_accepted(&ctx);
        assert_eq!(ctx.effects, vec![Effect::TaskRunScheduled { task_run_id: run_id, task_key: "say_hello-3f2a".to_owned(), retry }]);
    }
}

#[tokio::test]
async fn only_deferred_tasks_under_the_background_policy_are_enqueued() {
    let mut store = store();
    let mut not_deferred = task_ctx(task_run(), None, State::scheduled("Scheduled", now(), now()));
    run_task_with(TaskPolicy::Background, &mut not_deferred, &mut store).await;
    assert!(not_deferred.effects.is_empty());

    let deferred = State::scheduled("Scheduled", now(), now()).with_details(|d| d.deferred = Some(true));
    for policy in [TaskPolicy::Core, TaskPolicy::Minimal] {
        let mut ctx = task_ctx(task_run(), None, deferred.clone());
        run_task_with(policy, &mut ctx, &mut store).await;
        assert_accepted(&ctx);
        assert!(ctx.effects.is_empty(), "{policy:?}");
    }
}

#[tokio::test]
async fn background_policy_caches_retries_and_waits_but_ignores_tags_and_flow_state() {
    let mut store = store();
    store.cache.push(("answer".to_owned(), None, cached_completion("answer", "cached")));
    let mut cached = task_ctx(task_run(), Some(current(Pending)), with_cache_key(proposal(Running), "answer"));
    run_task_with(TaskPolicy::Background, &mut cached, &mut store).await;
    assert_eq!(validated(&cached).name(), "Cached");

    let mut retried = task_ctx(retrying_task(1, Some(1), json!(3)), Some(current(Running)), proposal(Failed));
    run_task_with(TaskPolicy::Background, &mut retried, &mut store).await;
    assert_eq!(validated(&retried).name(), "AwaitingRetry");

    let mut early = task_ctx(task_run(), Some(scheduled("Scheduled", now() + secs(10))), proposal(Running));
    run_task_with(TaskPolicy::Background, &mut early, &mut store).await;
    assert_eq!(wait_details(&early).0, 10);

    store.add_limit("tag:db", 0);
    let flow_run_id = add_flow_run(&mut store, Some(current(Completed)), 1);
    let run = TaskRunData { tags: vec!["db".to_owned()], ..task_run_in(flow_run_id) };
    let mut unguarded = task_ctx(run, Some(current(Pending)), proposal(Running));
    run_task_with(TaskPolicy::Background, &mut unguarded, &mut store).await;
    assert_accepted(&unguarded);
}

// --- TaskPolicy::Minimal ---------------------------------------------------------------

#[tokio::test]
async fn forced_task_transitions_skip_the_core_rules() {
    let mut store = store();
    store.add_limit("tag:db", 0);
    let cases = [
        (task_run(), current(Completed).with_data(persisted_result()), proposal(Running)),
        (retrying_task(1, Some(3), json!(5)), current(Running), proposal(Failed)),
        (tagged_task(&["db"]), current(Pending), proposal(Running)),
        (task_run(), scheduled("Scheduled", now() + secs(60)), proposal(Running)),
        (task_run(), current(Running), with_cache_key(proposal(Completed), &"k".repeat(3000))),
    ];
    for (run, initial, proposed) in cases {
        let expected = proposed.state_type;
        let mut ctx = task_ctx(run, Some(initial), proposed);
        run_task_with(TaskPolicy::Minimal, &mut ctx, &mut store).await;
        assert_accepted(&ctx);
        assert_eq!(validated(&ctx).state_type, expected);
    }
    assert!(store.cache.is_empty(), "forced completions are not cached");
}
