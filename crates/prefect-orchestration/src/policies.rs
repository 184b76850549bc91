//! Policies: which rules, in which order, govern a transition.

use crate::flow_rules::FlowRule;
use crate::task_rules::TaskRule;

/// Flow run policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowPolicy {
    /// `set_state` without `force`.
    Core,
    /// Forced transitions and the initial state of a new run.
    Minimal,
    /// The late-runs service marking a run `Late`.
    MarkLateRuns,
}

impl FlowPolicy {
    /// The policy's rules followed by the global flow transforms.
    pub fn rules(self) -> Vec<FlowRule> {
        use FlowRule as R;
        let mut rules = match self {
            FlowPolicy::Core => vec![
                R::PreserveDeploymentConcurrencyLeaseId,
                R::PreventDuplicateTransitions,
                R::handle_flow_terminal_state_transitions(),
                R::EnforceCancellingToCancelledTransition,
                R::BypassCancellingFlowRunsWithNoInfra,
                R::PreventPendingTransitions,
                R::ValidateDeploymentConcurrencyAtRunning,
                R::secure_flow_concurrency_slots(),
                R::RemoveDeploymentConcurrencyLeaseForOldClientVersions,
                R::EnsureOnlyScheduledFlowsMarkedLate,
                R::handle_pausing_flows(),
                R::HandleResumingPausedFlows,
                R::CopyScheduledTime,
                R::WaitForScheduledTime,
                R::RetryFailedFlows,
                R::InstrumentFlowRunStateTransitions,
                R::ReleaseFlowConcurrencySlots,
            ],
            FlowPolicy::Minimal => vec![
                R::PreserveDeploymentConcurrencyLeaseId,
                R::PreventResultDataLoss,
                R::BypassCancellingFlowRunsWithNoInfra,
                R::InstrumentFlowRunStateTransitions,
                R::ReleaseFlowConcurrencySlots,
            ],
            FlowPolicy::MarkLateRuns => {
                vec![R::EnsureOnlyScheduledFlowsMarkedLate, R::EnforceDeploymentConcurrencyOnLate, R::InstrumentFlowRunStateTransitions]
            }
        };
        rules.extend([
            R::EnsureFlowRunStateTimestampIsUnique,
            R::CommonGlobalTransforms,
            R::UpdateSubflowParentTask,
            R::UpdateSubflowStateDetails,
            R::IncrementFlowRunCount,
            R::RemoveResumingIndicator,
        ]);
        rules
    }
}

/// Task run policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskPolicy {
    /// `set_state` without `force`.
    Core,
    /// Forced transitions and the initial state of a new task run.
    Minimal,
    /// Any transition of a deferred (background) task run.
    Background,
}

impl TaskPolicy {
    /// The policy's rules followed by the global task transforms.
    pub fn rules(self) -> Vec<TaskRule> {
        use TaskRule as R;
        let mut rules = match self {
            TaskPolicy::Core => vec![
                R::CacheRetrieval,
                R::handle_task_terminal_state_transitions(),
                R::PreventRunningTasksFromStoppedFlows,
                R::secure_task_concurrency_slots(),
                R::CopyScheduledTime,
                R::WaitForScheduledTime,
                R::RetryFailedTasks,
                R::RenameReruns,
                R::UpdateFlowRunTrackerOnTasks,
                R::CacheInsertion,
                R::ReleaseTaskConcurrencySlots,
            ],
            TaskPolicy::Minimal => vec![R::ReleaseTaskConcurrencySlots],
            TaskPolicy::Background => vec![
                R::PreventPendingTransitions,
                R::CacheRetrieval,
                R::handle_task_terminal_state_transitions(),
                R::CopyScheduledTime,
                R::CopyTaskParametersId,
                R::WaitForScheduledTime,
                R::RetryFailedTasks,
                R::RenameReruns,
                R::UpdateFlowRunTrackerOnTasks,
                R::CacheInsertion,
                R::ReleaseTaskConcurrencySlots,
                R::EnqueueScheduledTasks,
            ],
        };
        rules.extend([R::CommonGlobalTransforms, R::IncrementTaskRunCount]);
        rules
    }
}
