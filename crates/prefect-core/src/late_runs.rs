//! Late runs: a Scheduled run whose start time passed without a worker picking it up
//! becomes `Late` (still of type SCHEDULED), keeping its scheduled time.

use prefect_domain::state::{StateCreate, StateType};
use prefect_domain::time::{self, DateTime};
use prefect_orchestration::FlowPolicy;
use prefect_storage::flow_runs;
use uuid::Uuid;

use crate::{ClientInfo, Core, Result};

impl Core {
    /// Ids of runs in the `Scheduled` state that should have started before `before`.
    pub async fn overdue_scheduled_runs(&self, before: DateTime, limit: u64) -> Result<Vec<Uuid>> {
        Ok(flow_runs::overdue_scheduled(self.db().reader(), before, limit).await?)
    }

    /// Marks one run `Late` under the late-runs policy; false if it is no longer overdue
    /// (it started or was rescheduled meanwhile).
    pub async fn mark_flow_run_late(&self, id: Uuid, before: DateTime) -> Result<bool> {
        let Some(run) = flow_runs::read(self.db().reader(), id, time::now()).await? else { return Ok(false) };
        let overdue = run.state_type == Some(StateType::Scheduled)
            && run.state_name.as_deref() == Some("Scheduled")
            && run.next_scheduled_start_time.is_some_and(|t| t <= before);
        if !overdue {
            return Ok(false);
        }
        let mut late = StateCreate::of(StateType::Scheduled);
        late.name = Some("Late".to_owned());
        late.state_details.scheduled_time = run.next_scheduled_start_time;
        let outcome = self.propose_flow_run_state(id, late, false, Some(FlowPolicy::MarkLateRuns), &ClientInfo::default()).await?;
        Ok(outcome.created)
    }
}
