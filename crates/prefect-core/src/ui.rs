//! Read models of the UI's dashboard and run pages (`/ui/flow_runs/*`, `/ui/task_runs/*`).

use std::collections::HashMap;

use chrono::DurationRound;

use prefect_domain::filters::{DateTimeFilter, ExistsFilter, RunFilters, StateFilter, StateTypeFilter, TaskRunFilter, TaskRunFlowRunIdFilter};
use prefect_domain::flow_run::FlowRun;
use prefect_domain::sorts::FlowRunSort;
use prefect_domain::state::StateType;
use prefect_domain::task_run::TaskRun;
use prefect_domain::time::{self, DateTime};
use prefect_storage::{flow_runs, task_runs};
use serde::Serialize;
use uuid::Uuid;

use crate::{Core, Error, Result};

/// Most runs one `/ui/flow_runs/history` request returns.
pub const MAX_HISTORY_RUNS: u64 = 1000;
/// Time buckets of the dashboard's task run chart.
const DASHBOARD_BUCKETS: usize = 20;

/// One dot of the UI's flow run history chart.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimpleFlowRun {
    pub id: Uuid,
    pub state_type: Option<StateType>,
    /// When it started, or when it is expected to.
    pub timestamp: Option<DateTime>,
    /// Run time so far, in seconds.
    pub duration: f64,
    /// How late it started (or is), in seconds.
    pub lateness: f64,
}

impl From<FlowRun> for SimpleFlowRun {
    fn from(run: FlowRun) -> Self {
        SimpleFlowRun {
            id: run.id,
            state_type: run.state_type,
            timestamp: run.start_time.or(run.expected_start_time),
            duration: run.estimated_run_time,
            lateness: run.estimated_start_time_delta,
        }
    }
}

/// Finished task runs in one time bucket of the dashboard.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TaskRunCount {
    pub completed: u64,
    pub failed: u64,
}

/// A task run with the name of its flow run (`GET /ui/task_runs/{id}`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UiTaskRun {
    #[serde(flatten)]
    pub task_run: TaskRun,
    pub flow_run_name: Option<String>,
}

impl Core {
    /// `POST /ui/flow_runs/history`: the matching runs as chart dots, up to 1000 a page.
    pub async fn flow_run_history_dots(&self, filters: &RunFilters, sort: FlowRunSort, limit: u64, offset: u64) -> Result<Vec<SimpleFlowRun>> {
        if limit > MAX_HISTORY_RUNS {
            return Err(Error::invalid("limit", format!("Input should be less than or equal to {MAX_HISTORY_RUNS}")));
        }
        let runs = flow_runs::filter(&self.db().reads(), self.db().backend(), filters, sort, limit, offset, time::now()).await?;
        Ok(runs.into_iter().map(SimpleFlowRun::from).collect())
    }

    /// `POST /ui/flow_runs/count-task-runs`: task runs of each flow run, not counting the
    /// task runs that stand for subflows.
    pub async fn count_task_runs_by_flow_run(&self, flow_run_ids: &[Uuid]) -> Result<Vec<(Uuid, u64)>> {
        let filters = RunFilters {
            task_runs: Some(TaskRunFilter {
                flow_run_id: Some(TaskRunFlowRunIdFilter { operator: Default::default(), any_: Some(flow_run_ids.to_vec()), is_null_: None }),
                subflow_runs: Some(ExistsFilter { exists_: Some(false) }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let counts: HashMap<Uuid, i64> = task_runs::count_by_flow_run(self.db().reader(), self.db().backend(), &filters).await?.into_iter().collect();
        Ok(flow_run_ids.iter().map(|id| (*id, counts.get(id).copied().unwrap_or(0).max(0) as u64)).collect())
    }

    /// `POST /ui/task_runs/count`: matching task runs per state type, every type present.
    pub async fn count_task_runs_by_state(&self, filters: &RunFilters) -> Result<Vec<(StateType, u64)>> {
        let counts: HashMap<String, i64> = task_runs::count_by_state_type(self.db().reader(), self.db().backend(), filters)
            .await?
            .into_iter()
            .filter_map(|(state_type, n)| state_type.map(|t| (t, n)))
            .collect();
        // Prefect's CountByState lists them in this order.
        const ORDER: [StateType; 9] = [
            StateType::Completed,
            StateType::Pending,
            StateType::Running,
            StateType::Failed,
            StateType::Cancelled,
            StateType::Crashed,
            StateType::Paused,
            StateType::Cancelling,
            StateType::Scheduled,
        ];
        Ok(ORDER.iter().map(|t| (*t, counts.get(t.as_str()).copied().unwrap_or(0).max(0) as u64)).collect())
    }

    /// `POST /ui/task_runs/dashboard/counts`: finished task runs that started in the window
    /// (`task_runs.start_time.after_` to `before_` or now, whole minutes), completed and
    /// failed (or crashed), in 20 equal buckets.
    pub async fn dashboard_task_run_counts(&self, mut filters: RunFilters) -> Result<Vec<TaskRunCount>> {
        let task_filter = filters.task_runs.get_or_insert_with(TaskRunFilter::default);
        let Some(after) = task_filter.start_time.as_ref().and_then(|s| s.after_) else {
            return Err(Error::unprocessable("task_runs.start_time.after_ is required"));
        };
        let before = task_filter.start_time.as_ref().and_then(|s| s.before_);
        let minute = |t: DateTime| t.duration_trunc(chrono::TimeDelta::minutes(1)).unwrap_or(t);
        let start = minute(after);
        // The end of the last minute, as Prefect's `end_of_period(..., "minute")`.
        let end = minute(before.unwrap_or_else(time::now)) + chrono::TimeDelta::minutes(1) - chrono::TimeDelta::microseconds(1);
        // Only finished runs count.
        task_filter.state = Some(StateFilter {
            state_type: Some(StateTypeFilter {
                any_: Some(vec![StateType::Completed, StateType::Cancelled, StateType::Failed, StateType::Crashed]),
                not_any_: None,
            }),
            ..Default::default()
        });
        task_filter.start_time = Some(DateTimeFilter { after_: Some(after), before_: before, is_null_: None });
        let rows = task_runs::start_times_and_state_types(self.db().reader(), self.db().backend(), &filters).await?;
        let bucket_seconds = time::seconds(end - start) / DASHBOARD_BUCKETS as f64;
        let mut buckets = vec![TaskRunCount::default(); DASHBOARD_BUCKETS];
        for (started, state_type) in rows {
            let Some(started) = started else { continue };
            let index = (time::seconds(started - start) / bucket_seconds).floor();
            if !(0.0..DASHBOARD_BUCKETS as f64).contains(&index) {
                continue;
            }
            let bucket = &mut buckets[index as usize];
            match state_type.as_deref() {
                Some("FAILED") | Some("CRASHED") => bucket.failed += 1,
                _ => bucket.completed += 1,
            }
        }
        Ok(buckets)
    }

    /// `GET /ui/task_runs/{id}`.
    pub async fn read_ui_task_run(&self, id: Uuid) -> Result<UiTaskRun> {
        let task_run = self.read_task_run(id).await?;
        let flow_run_name = match task_run.flow_run_id {
            Some(flow_run_id) => flow_runs::read(self.db().reader(), flow_run_id, time::now()).await?.map(|run| run.name),
            None => None,
        };
        Ok(UiTaskRun { task_run, flow_run_name })
    }
}
