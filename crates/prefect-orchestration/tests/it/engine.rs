//! The engine's mechanics: entry in policy order, exit in reverse, fizzling and cleanup,
//! skipped rules, and what is written for each kind of answer.

use std::sync::{Arc, Mutex};

use prefect_domain::state::StateType::{self, *};
use prefect_domain::state::{SetStateStatus, State, StateResponseDetails};
use prefect_orchestration::engine::{Rule, StateSet, orchestrate};
use prefect_orchestration::flow_rules::FlowRule;
use prefect_orchestration::store::CollisionStrategy;
use prefect_orchestration::testing::MemoryStore;
use prefect_orchestration::{Context, FlowPolicy, FlowRunData, OrchestrationStore, StoreError, TaskPolicy, TaskRunData};

use crate::support::*;

type Log = Arc<Mutex<Vec<String>>>;

/// What a probe does in its `before` hook.
#[derive(Debug, Clone, Copy)]
enum Action {
    Pass,
    Reject(Option<StateType>),
    /// Rejects with a copy of the proposal retyped, like Prefect's `FizzlingRule` test fixture.
    Retype(StateType),
    Delay,
    Abort,
    Rename,
    Fail,
}

/// A rule that records its hooks and takes a scripted decision.
struct Probe {
    name: &'static str,
    from: StateSet,
    to: StateSet,
    universal: bool,
    action: Action,
    fail_after: bool,
    log: Log,
}

impl Probe {
    fn new(name: &'static str, action: Action, log: &Log) -> Self {
        Probe { name, from: StateSet::ALL, to: StateSet::ALL, universal: false, action, fail_after: false, log: Arc::clone(log) }
    }

    fn governing(mut self, from: StateSet, to: StateSet) -> Self {
        self.from = from;
        self.to = to;
        self
    }

    fn universal(mut self) -> Self {
        self.universal = true;
        self
    }

    fn failing_after(mut self) -> Self {
        self.fail_after = true;
        self
    }

    fn record(&self, hook: &str) {
        self.log.lock().expect("log lock").push(format!("{}.{hook}", self.name));
    }

    fn before<R>(&self, ctx: &mut Context<R>) -> Result<(), StoreError> {
        self.record("before");
        match self.action {
            Action::Pass => {}
            Action::Reject(state_type) => {
                let state = state_type.map(|t| State::new(t, ctx.now));
                ctx.reject(state, format!("{} rejects", self.name));
            }
            Action::Retype(state_type) => {
                let mut state = ctx.proposed_state.clone().expect("a proposal to retype");
                state.state_type = state_type;
                ctx.reject(Some(state), format!("{} retypes", self.name));
            }
            Action::Delay => ctx.delay(7, format!("{} delays", self.name)),
            Action::Abort => ctx.abort(format!("{} aborts", self.name)),
            Action::Rename => ctx.rename("Renamed"),
            Action::Fail => return Err("boom".into()),
        }
        Ok(())
    }

    fn after(&self) -> Result<(), StoreError> {
        self.record("after");
        if self.fail_after { Err("after went wrong".into()) } else { Ok(()) }
    }
}

/// Probes mixed with real flow rules in one policy.
enum TestRule {
    Probe(Probe),
    Flow(FlowRule),
}

impl<S: OrchestrationStore> Rule<FlowRunData, S> for TestRule {
    fn name(&self) -> &'static str {
        match self {
            TestRule::Probe(p) => p.name,
            TestRule::Flow(r) => Rule::<FlowRunData, S>::name(r),
        }
    }

    fn from_states(&self) -> StateSet {
        match self {
            TestRule::Probe(p) => p.from,
            TestRule::Flow(r) => Rule::<FlowRunData, S>::from_states(r),
        }
    }

    fn to_states(&self) -> StateSet {
        match self {
            TestRule::Probe(p) => p.to,
            TestRule::Flow(r) => Rule::<FlowRunData, S>::to_states(r),
        }
    }

    fn is_universal(&self) -> bool {
        match self {
            TestRule::Probe(p) => p.universal,
            TestRule::Flow(r) => Rule::<FlowRunData, S>::is_universal(r),
        }
    }

    async fn before(&mut self, ctx: &mut Context<FlowRunData>, store: &mut S) -> Result<(), StoreError> {
        match self {
            TestRule::Probe(p) => p.before(ctx),
            TestRule::Flow(r) => r.before(ctx, store).await,
        }
    }

    async fn after(&mut self, ctx: &mut Context<FlowRunData>, store: &mut S) -> Result<(), StoreError> {
        match self {
            TestRule::Probe(p) => p.after(),
            TestRule::Flow(r) => r.after(ctx, store).await,
        }
    }

    async fn cleanup(&mut self, ctx: &mut Context<FlowRunData>, store: &mut S) -> Result<(), StoreError> {
        match self {
            TestRule::Probe(p) => {
                p.record("cleanup");
                Ok(())
            }
            TestRule::Flow(r) => r.cleanup(ctx, store).await,
        }
    }
}

fn probes(list: Vec<Probe>) -> Vec<TestRule> {
    list.into_iter().map(TestRule::Probe).collect()
}

fn entries(log: &Log) -> Vec<String> {
    log.lock().expect("log lock").clone()
}

/// PENDING -> RUNNING, the transition most probes are written against.
fn start_ctx() -> Context<FlowRunData> {
    flow_ctx(flow_run(), Some(current(Pending)), proposal(Running))
}

async fn run_probes(ctx: &mut Context<FlowRunData>, rules: Vec<Probe>) {
    orchestrate(ctx, &mut store(), probes(rules)).await.expect("orchestration succeeds");
}

#[tokio::test]
async fn before_hooks_run_in_policy_order_and_after_hooks_in_reverse() {
    let log = Log::default();
    let mut ctx = start_ctx();
    let proposed = ctx.proposed_state.clone();
    run_probes(&mut ctx, vec![Probe::new("A", Action::Pass, &log), Probe::new("B", Action::Pass, &log), Probe::new("U", Action::Pass, &log).universal()]).await;
    assert_eq!(entries(&log), ["A.before", "B.before", "U.before", "U.after", "B.after", "A.after"]);
    assert_accepted(&ctx);
    assert_eq!(ctx.validated_state, proposed);
}

#[tokio::test]
async fn rule_whose_transition_a_later_rule_changed_fizzles_into_cleanup() {
    let log = Log::default();
    let mut ctx = start_ctx();
    run_probes(&mut ctx, vec![Probe::new("A", Action::Pass, &log), Probe::new("B", Action::Reject(Some(Failed)), &log)]).await;
    assert_eq!(entries(&log), ["A.before", "B.before", "B.after", "A.cleanup"]);
    assert_eq!(reject_reason(&ctx), "B rejects");
    assert_eq!(validated(&ctx).state_type, Failed);
}

#[tokio::test]
async fn rules_for_a_transition_that_was_changed_are_skipped() {
    let log = Log::default();
    let mut ctx = start_ctx();
    let pending = StateSet::of(&[Pending]);
    run_probes(
        &mut ctx,
        vec![
            Probe::new("A", Action::Reject(Some(Cancelled)), &log),
            Probe::new("B", Action::Pass, &log).governing(pending, StateSet::of(&[Running])),
            Probe::new("C", Action::Pass, &log).governing(pending, StateSet::of(&[Cancelled])),
            Probe::new("U", Action::Pass, &log).universal(),
        ],
    )
    .await;
    // B no longer matches; C matches the new transition but the policy was compiled for the intended one.
    assert_eq!(entries(&log), ["A.before", "U.before", "U.after", "A.after"]);
    assert_eq!(validated(&ctx).state_type, Cancelled);
}

#[tokio::test]
async fn rules_that_do_not_govern_the_transition_are_never_entered() {
    let log = Log::default();
    let mut ctx = start_ctx();
    run_probes(
        &mut ctx,
        vec![
            Probe::new("A", Action::Abort, &log).governing(StateSet::of(&[Scheduled]), StateSet::ALL),
            Probe::new("B", Action::Abort, &log).governing(StateSet::ALL, StateSet::of(&[Pending])),
            Probe::new("C", Action::Pass, &log).governing(StateSet::ALL.without(&[Scheduled]), StateSet::of(&[Running])),
        ],
    )
    .await;
    assert_eq!(entries(&log), ["C.before", "C.after"]);
    assert_accepted(&ctx);

    let log = Log::default();
    let mut first_state = flow_ctx(flow_run(), None, proposal(Pending));
    run_probes(
        &mut first_state,
        vec![Probe::new("D", Action::Abort, &log).governing(StateSet::of(&StateType::ALL), StateSet::ALL), Probe::new("E", Action::Pass, &log)],
    )
    .await;
    assert_eq!(entries(&log), ["E.before", "E.after"], "a run without state is only matched by sets with 'no state'");
}

#[tokio::test]
async fn renaming_does_not_change_the_transition() {
    let log = Log::default();
    let mut ctx = start_ctx();
    run_probes(&mut ctx, vec![Probe::new("A", Action::Pass, &log), Probe::new("B", Action::Rename, &log), Probe::new("C", Action::Pass, &log)]).await;
    assert_eq!(entries(&log), ["A.before", "B.before", "C.before", "C.after", "B.after", "A.after"]);
    assert_accepted(&ctx);
    assert_eq!(validated(&ctx).name(), "Renamed");
}

#[tokio::test]
async fn rejecting_with_the_same_state_type_keeps_the_transition() {
    let log = Log::default();
    let mut ctx = start_ctx();
    run_probes(&mut ctx, vec![Probe::new("A", Action::Pass, &log), Probe::new("B", Action::Reject(Some(Running)), &log), Probe::new("C", Action::Pass, &log)])
        .await;
    assert_eq!(entries(&log), ["A.before", "B.before", "C.before", "C.after", "B.after", "A.after"]);
    assert_eq!(ctx.response_status, SetStateStatus::Reject);
    assert_eq!(validated(&ctx).state_type, Running);
}

#[tokio::test]
async fn rule_that_moves_the_transition_outside_its_to_states_runs_no_exit_hook() {
    let log = Log::default();
    let mut ctx = start_ctx();
    run_probes(
        &mut ctx,
        vec![Probe::new("Wide", Action::Pass, &log), Probe::new("Narrow", Action::Reject(None), &log).governing(StateSet::ALL, StateSet::of(&[Running]))],
    )
    .await;
    assert_eq!(entries(&log), ["Wide.before", "Narrow.before", "Wide.cleanup"]);

    let log = Log::default();
    let mut ctx = start_ctx();
    run_probes(&mut ctx, vec![Probe::new("Wide", Action::Reject(None), &log)]).await;
    assert_eq!(entries(&log), ["Wide.before", "Wide.after"], "'no state' is among its to-states, so its after hook runs");
}

#[tokio::test]
async fn answers_that_write_nothing_leave_the_current_state() {
    for (action, status) in [(Action::Delay, SetStateStatus::Wait), (Action::Abort, SetStateStatus::Abort), (Action::Reject(None), SetStateStatus::Reject)] {
        let log = Log::default();
        let mut ctx = start_ctx();
        run_probes(&mut ctx, vec![Probe::new("A", Action::Pass, &log), Probe::new("B", action, &log)]).await;
        assert_eq!(ctx.response_status, status);
        assert_nothing_written(&ctx);
        assert_eq!(validated(&ctx).state_type, Pending);
        assert_eq!(entries(&log).last().map(String::as_str), Some("A.cleanup"), "{action:?}");
    }
    let log = Log::default();
    let mut ctx = start_ctx();
    run_probes(&mut ctx, vec![Probe::new("A", Action::Delay, &log)]).await;
    assert_eq!(ctx.response_details, StateResponseDetails::WaitDetails { delay_seconds: 7, reason: Some("A delays".to_owned()) });
}

#[tokio::test]
async fn failing_rule_aborts_the_transition_and_earlier_rules_clean_up() {
    let log = Log::default();
    let mut ctx = start_ctx();
    let rules = probes(vec![
        Probe::new("A", Action::Pass, &log),
        Probe::new("U1", Action::Pass, &log).universal(),
        Probe::new("B", Action::Fail, &log),
        Probe::new("C", Action::Pass, &log),
        Probe::new("U2", Action::Pass, &log).universal(),
    ]);
    let error = orchestrate(&mut ctx, &mut store(), rules).await.expect_err("the rule failed");
    assert_eq!(error.rule, "B");
    assert_eq!(error.source.to_string(), "boom");
    assert_eq!(abort_reason(&ctx), "Aborting orchestration due to error in B: !boom");
    assert_nothing_written(&ctx);
    assert_eq!(entries(&log), ["A.before", "U1.before", "B.before", "B.cleanup", "A.cleanup"]);
}

#[tokio::test]
async fn failing_exit_hook_fails_the_orchestration() {
    let log = Log::default();
    let mut ctx = start_ctx();
    let rules = probes(vec![Probe::new("A", Action::Pass, &log).failing_after(), Probe::new("B", Action::Pass, &log)]);
    let error = orchestrate(&mut ctx, &mut store(), rules).await.expect_err("the after hook failed");
    assert_eq!(error.rule, "A");
    assert_eq!(error.source.to_string(), "after went wrong");
}

#[tokio::test]
async fn slot_taken_by_a_real_rule_is_returned_when_a_later_rule_fails() {
    let log = Log::default();
    let mut store = store();
    let deployment = deployment_with_limit(&mut store, 1, CollisionStrategy::Enqueue);
    let mut ctx = flow_ctx(deployment_run(deployment.id), Some(scheduled("Scheduled", now())), proposal(Pending));
    let rules = vec![TestRule::Flow(FlowRule::secure_flow_concurrency_slots()), TestRule::Probe(Probe::new("Boom", Action::Fail, &log))];
    orchestrate(&mut ctx, &mut store, rules).await.expect_err("the probe failed");
    assert_eq!(active_slots(&store, deployment.limit_id), 0);
    assert!(store.leases.is_empty());
}

#[tokio::test]
async fn lease_given_back_on_fizzle_is_not_left_on_the_written_state() {
    let log = Log::default();
    let mut store = store();
    let deployment = deployment_with_limit(&mut store, 1, CollisionStrategy::Enqueue);
    let mut ctx = flow_ctx(deployment_run(deployment.id), Some(scheduled("Scheduled", now())), proposal(Pending));
    let rules = vec![TestRule::Flow(FlowRule::secure_flow_concurrency_slots()), TestRule::Probe(Probe::new("Retype", Action::Retype(Cancelled), &log))];
    orchestrate(&mut ctx, &mut store, rules).await.expect("orchestration succeeds");
    assert_eq!(reject_reason(&ctx), "Retype retypes");
    assert_eq!(validated(&ctx).state_type, Cancelled);
    assert_eq!(validated(&ctx).state_details.deployment_concurrency_lease_id, None, "the revoked lease is not advertised");
    assert_eq!(active_slots(&store, deployment.limit_id), 0);
    assert!(store.leases.is_empty());
}

#[tokio::test]
async fn real_rule_keeps_its_slot_when_the_transition_stands() {
    let log = Log::default();
    let mut store = store();
    let deployment = deployment_with_limit(&mut store, 1, CollisionStrategy::Enqueue);
    let mut ctx = flow_ctx(deployment_run(deployment.id), Some(scheduled("Scheduled", now())), proposal(Pending));
    let rules = vec![TestRule::Flow(FlowRule::secure_flow_concurrency_slots()), TestRule::Probe(Probe::new("Rename", Action::Rename, &log))];
    orchestrate(&mut ctx, &mut store, rules).await.expect("orchestration succeeds");
    assert_eq!(active_slots(&store, deployment.limit_id), 1);
    assert_eq!(store.leases.len(), 1);
}

fn flow_rule_names(policy: FlowPolicy) -> Vec<&'static str> {
    policy.rules().iter().map(Rule::<FlowRunData, MemoryStore>::name).collect()
}

fn task_rule_names(policy: TaskPolicy) -> Vec<&'static str> {
    policy.rules().iter().map(Rule::<TaskRunData, MemoryStore>::name).collect()
}

#[test]
fn policies_list_prefects_rules_in_prefects_order() {
    let global_flow = [
        "EnsureFlowRunStateTimestampIsUnique",
        "CommonGlobalTransforms",
        "UpdateSubflowParentTask",
        "UpdateSubflowStateDetails",
        "IncrementFlowRunCount",
        "RemoveResumingIndicator",
    ];
    let core_flow = [
        "PreserveDeploymentConcurrencyLeaseId",
        "PreventDuplicateTransitions",
        "HandleFlowTerminalStateTransitions",
        "EnforceCancellingToCancelledTransition",
        "BypassCancellingFlowRunsWithNoInfra",
        "PreventPendingTransitions",
        "ValidateDeploymentConcurrencyAtRunning",
        "SecureFlowConcurrencySlots",
        "RemoveDeploymentConcurrencyLeaseForOldClientVersions",
        "EnsureOnlyScheduledFlowsMarkedLate",
        "HandlePausingFlows",
        "HandleResumingPausedFlows",
        "CopyScheduledTime",
        "WaitForScheduledTime",
        "RetryFailedFlows",
        "InstrumentFlowRunStateTransitions",
        "ReleaseFlowConcurrencySlots",
    ];
    let minimal_flow = [
        "PreserveDeploymentConcurrencyLeaseId",
        "PreventResultDataLoss",
        "BypassCancellingFlowRunsWithNoInfra",
        "InstrumentFlowRunStateTransitions",
        "ReleaseFlowConcurrencySlots",
    ];
    let late_flow = ["EnsureOnlyScheduledFlowsMarkedLate", "EnforceDeploymentConcurrencyOnLate", "InstrumentFlowRunStateTransitions"];
    for (policy, rules) in [(FlowPolicy::Core, &core_flow[..]), (FlowPolicy::Minimal, &minimal_flow[..]), (FlowPolicy::MarkLateRuns, &late_flow[..])] {
        let expected: Vec<&str> = rules.iter().chain(&global_flow).copied().collect();
        assert_eq!(flow_rule_names(policy), expected, "{policy:?}");
    }

    let global_task = ["CommonGlobalTransforms", "IncrementTaskRunCount"];
    let core_task = [
        "CacheRetrieval",
        "HandleTaskTerminalStateTransitions",
        "PreventRunningTasksFromStoppedFlows",
        "SecureTaskConcurrencySlots",
        "CopyScheduledTime",
        "WaitForScheduledTime",
        "RetryFailedTasks",
        "RenameReruns",
        "UpdateFlowRunTrackerOnTasks",
        "CacheInsertion",
        "ReleaseTaskConcurrencySlots",
    ];
    let background_task = [
        "PreventPendingTransitions",
        "CacheRetrieval",
        "HandleTaskTerminalStateTransitions",
        "CopyScheduledTime",
        "CopyTaskParametersID",
        "WaitForScheduledTime",
        "RetryFailedTasks",
        "RenameReruns",
        "UpdateFlowRunTrackerOnTasks",
        "CacheInsertion",
        "ReleaseTaskConcurrencySlots",
        "EnqueueScheduledTasks",
    ];
    let minimal_task = ["ReleaseTaskConcurrencySlots"];
    for (policy, rules) in [(TaskPolicy::Core, &core_task[..]), (TaskPolicy::Minimal, &minimal_task[..]), (TaskPolicy::Background, &background_task[..])] {
        let expected: Vec<&str> = rules.iter().chain(&global_task).copied().collect();
        assert_eq!(task_rule_names(policy), expected, "{policy:?}");
    }
}

#[test]
fn only_bookkeeping_and_slot_release_rules_are_universal() {
    let universal: Vec<&str> =
        FlowPolicy::Core.rules().iter().filter(|r| Rule::<FlowRunData, MemoryStore>::is_universal(*r)).map(Rule::<FlowRunData, MemoryStore>::name).collect();
    assert_eq!(
        universal,
        [
            "PreserveDeploymentConcurrencyLeaseId",
            "InstrumentFlowRunStateTransitions",
            "ReleaseFlowConcurrencySlots",
            "EnsureFlowRunStateTimestampIsUnique",
            "CommonGlobalTransforms",
            "UpdateSubflowParentTask",
            "UpdateSubflowStateDetails",
            "IncrementFlowRunCount",
            "RemoveResumingIndicator",
        ]
    );
    let universal: Vec<&str> = TaskPolicy::Background
        .rules()
        .iter()
        .filter(|r| Rule::<TaskRunData, MemoryStore>::is_universal(*r))
        .map(Rule::<TaskRunData, MemoryStore>::name)
        .collect();
    assert_eq!(universal, ["ReleaseTaskConcurrencySlots", "CommonGlobalTransforms", "IncrementTaskRunCount"]);
}
