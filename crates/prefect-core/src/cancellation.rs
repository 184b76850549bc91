//! Cancellation cleanup: what a cancelled flow run leaves behind is cancelled too,
//! and runs stuck in Cancelling (their worker or runner never confirmed) are
//! eventually marked Cancelled, as Prefect's `cancellation_cleanup` service does.

use prefect_domain::state::{StateCreate, StateType};
use prefect_domain::time::{self, DateTime};
use prefect_storage::{flow_runs, task_runs};
use uuid::Uuid;

use crate::{ClientInfo, Core, Result};

/// Message of the state that ends a Cancelling run whose cancellation timed out.
pub const CANCELLING_TIMEOUT_MESSAGE: &str = "Flow run cancellation timed out; marked this flow run as Cancelled.";
const PARENT_CANCELLED_MESSAGE: &str = "The parent flow run was cancelled.";

impl Core {
    /// Runs Cancelled since `ended_since`, after `after` by id (paging).
    pub async fn recently_cancelled_flow_runs(&self, ended_since: DateTime, after: Uuid, limit: u64) -> Result<Vec<Uuid>> {
        Ok(flow_runs::cancelled_since(self.db().reader(), ended_since, after, limit).await?)
    }

    /// Forces `Cancelled` onto the unfinished task runs of a cancelled flow run; returns how many.
    pub async fn cancel_child_task_runs(&self, flow_run_id: Uuid) -> Result<usize> {
        let mut cancelled = 0;
        for id in task_runs::unfinished_of_flow_run(self.db().reader(), flow_run_id, 100).await? {
            let mut state = StateCreate::of(StateType::Cancelled);
            state.message = Some(PARENT_CANCELLED_MESSAGE.to_owned());
            if self.set_task_run_state(id, state, true, &ClientInfo::default()).await?.created {
                cancelled += 1;
            }
        }
        Ok(cancelled)
    }

    /// `(subflow run id, parent task run id)` of unfinished subflow runs, after `after` by id.
    pub async fn unfinished_subflow_runs(&self, after: Uuid, limit: u64) -> Result<Vec<(Uuid, Uuid)>> {
        Ok(flow_runs::unfinished_subflows(self.db().reader(), after, limit).await?)
    }

    /// Cancels a subflow run whose containing flow run was cancelled: `Cancelling` when it
    /// has a deployment (its own infrastructure must stop it), `Cancelled` otherwise.
    /// Returns whether a state was written.
    pub async fn cancel_orphaned_subflow(&self, subflow_run_id: Uuid, parent_task_run_id: Uuid) -> Result<bool> {
        let reader = self.db().reader();
        let now = time::now();
        let Some(run) = flow_runs::read(reader, subflow_run_id, now).await? else { return Ok(false) };
        let Some(state_type) = run.state_type.filter(|t| !t.is_final()) else { return Ok(false) };
        let Some(parent_task) = task_runs::read(reader, parent_task_run_id, now).await? else { return Ok(false) };
        let Some(containing) = parent_task.flow_run_id else { return Ok(false) };
        let containing_cancelled = flow_runs::read(reader, containing, now).await?.is_some_and(|r| r.state_type == Some(StateType::Cancelled));
        if !containing_cancelled || (run.deployment_id.is_some() && state_type == StateType::Cancelling) {
            return Ok(false);
        }
        let kind = if run.deployment_id.is_some() { StateType::Cancelling } else { StateType::Cancelled };
        let mut state = StateCreate::of(kind);
        state.message = Some(PARENT_CANCELLED_MESSAGE.to_owned());
        Ok(self.set_flow_run_state(subflow_run_id, state, false, &ClientInfo::default()).await?.created)
    }

    /// Runs that entered Cancelling at or before `before`.
    pub async fn stale_cancelling_flow_runs(&self, before: DateTime, limit: u64) -> Result<Vec<Uuid>> {
        Ok(flow_runs::cancelling_since(self.db().reader(), before, limit).await?)
    }

    /// Marks a run that has been Cancelling since at least `before` Cancelled (core
    /// policy); false if it left Cancelling meanwhile.
    pub async fn time_out_cancelling(&self, id: Uuid, before: DateTime) -> Result<bool> {
        let Some(run) = flow_runs::read(self.db().reader(), id, time::now()).await? else { return Ok(false) };
        let stale = run.state_type == Some(StateType::Cancelling) && run.state.as_ref().is_some_and(|s| s.timestamp <= before);
        if !stale {
            return Ok(false);
        }
        let mut state = StateCreate::of(StateType::Cancelled);
        state.message = Some(CANCELLING_TIMEOUT_MESSAGE.to_owned());
        Ok(self.set_flow_run_state(id, state, false, &ClientInfo::default()).await?.created)
    }
}
