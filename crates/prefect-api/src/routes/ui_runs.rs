//! `/ui/flow_runs/*` and `/ui/task_runs/*`: what the UI's dashboard and run pages read.

use actix_web::web::{Data, Path};
use actix_web::{HttpResponse, get, post};
use prefect_domain::filters::{DeploymentFilter, FlowFilter, FlowRunFilter, RunFilters, TaskRunFilter, WorkPoolFilter, WorkQueueFilter};
use prefect_domain::sorts::FlowRunSort;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::ApiState;
use crate::error::{ApiError, ApiResult};
use crate::extract::Json;
use crate::routes::ok;

/// Most flow runs `/ui/flow_runs/count-task-runs` may ask about (Prefect's `max_length`).
const MAX_FLOW_RUN_IDS: usize = 200;

/// Body of `POST /ui/flow_runs/history`: the run filters, sorted, up to 1000 runs.
#[derive(Debug, Deserialize, ToSchema)]
pub struct FlowRunHistoryBody {
    #[serde(flatten)]
    pub filters: RunFilters,
    #[serde(default = "expected_start_time_desc", deserialize_with = "null_as_expected_start_time_desc")]
    pub sort: FlowRunSort,
    #[serde(default = "thousand", deserialize_with = "null_as_thousand")]
    pub limit: u64,
    #[serde(default, deserialize_with = "crate::extract::null_as_default")]
    pub offset: u64,
}

fn expected_start_time_desc() -> FlowRunSort {
    FlowRunSort::ExpectedStartTimeDesc
}

fn null_as_expected_start_time_desc<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<FlowRunSort, D::Error> {
    // The sort's own `null` means ID_DESC elsewhere; this route's default differs.
    Ok(Option::<Value>::deserialize(deserializer)?
        .filter(|v| !v.is_null())
        .map(serde_json::from_value)
        .transpose()
        .map_err(serde::de::Error::custom)?
        .unwrap_or(FlowRunSort::ExpectedStartTimeDesc))
}

fn thousand() -> u64 {
    prefect_core::ui::MAX_HISTORY_RUNS
}

fn null_as_thousand<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    Ok(Option::<u64>::deserialize(deserializer)?.unwrap_or_else(thousand))
}

/// Body of `POST /ui/flow_runs/count-task-runs`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct FlowRunIdsBody {
    pub flow_run_ids: Vec<Uuid>,
}

/// Body of `POST /ui/task_runs/count` and `/ui/task_runs/dashboard/counts`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskRunCountsBody {
    #[serde(default)]
    pub flows: Option<FlowFilter>,
    #[serde(default)]
    pub flow_runs: Option<FlowRunFilter>,
    #[serde(default)]
    pub task_runs: Option<TaskRunFilter>,
    #[serde(default)]
    pub deployments: Option<DeploymentFilter>,
    #[serde(default)]
    pub work_pools: Option<WorkPoolFilter>,
    #[serde(default)]
    pub work_queues: Option<WorkQueueFilter>,
}

impl TaskRunCountsBody {
    fn filters(self) -> RunFilters {
        RunFilters {
            flows: self.flows,
            flow_runs: self.flow_runs,
            task_runs: self.task_runs,
            deployments: self.deployments,
            work_pools: self.work_pools,
            work_pool_queues: self.work_queues,
        }
    }
}

/// The matching flow runs as dots of the UI's history chart: id, state type, start (or
/// expected start), duration and lateness in seconds.
#[utoipa::path(tag = "UI", request_body = FlowRunHistoryBody, responses((status = 200, body = Vec<Object>), (status = 422)))]
#[post("/flow_runs/history")]
pub async fn ui_flow_run_history(state: Data<ApiState>, body: Json<FlowRunHistoryBody>) -> ApiResult<HttpResponse> {
    let b = body.0;
    Ok(ok(&state.core.flow_run_history_dots(&b.filters, b.sort, b.limit, b.offset).await?))
}

/// Task runs per flow run (`{flow_run_id: count}`), not counting subflow runs.
#[utoipa::path(tag = "UI", request_body = FlowRunIdsBody, responses((status = 200, body = Object), (status = 422)))]
#[post("/flow_runs/count-task-runs")]
pub async fn count_task_runs_by_flow_run(state: Data<ApiState>, body: Json<FlowRunIdsBody>) -> ApiResult<HttpResponse> {
    let ids = body.0.flow_run_ids;
    if ids.len() > MAX_FLOW_RUN_IDS {
        let message = format!("List should have at most {MAX_FLOW_RUN_IDS} items after validation, not {}", ids.len());
        return Err(ApiError::invalid(&["body", "flow_run_ids"], message, json!(ids)));
    }
    let counts = state.core.count_task_runs_by_flow_run(&ids).await?;
    let out: Map<String, Value> = counts.into_iter().map(|(id, n)| (id.to_string(), Value::from(n))).collect();
    Ok(ok(&out))
}

/// Matching task runs per state type (`{"COMPLETED": n, ...}`, every type present).
#[utoipa::path(tag = "UI", request_body = TaskRunCountsBody, responses((status = 200, body = Object)))]
#[post("/task_runs/count")]
pub async fn count_task_runs_by_state(state: Data<ApiState>, body: Json<TaskRunCountsBody>) -> ApiResult<HttpResponse> {
    let counts = state.core.count_task_runs_by_state(&body.0.filters()).await?;
    let out: Map<String, Value> = counts.into_iter().map(|(state_type, n)| (state_type.as_str().to_owned(), Value::from(n))).collect();
    Ok(ok(&out))
}

/// Finished task runs in 20 time buckets of the window `task_runs.start_time` gives
/// (`after_` required): `[{"completed": n, "failed": n}, ...]`.
#[utoipa::path(tag = "UI", request_body = TaskRunCountsBody, responses((status = 200, body = Vec<Object>), (status = 422)))]
#[post("/task_runs/dashboard/counts")]
pub async fn dashboard_task_run_counts(state: Data<ApiState>, body: Json<TaskRunCountsBody>) -> ApiResult<HttpResponse> {
    Ok(ok(&state.core.dashboard_task_run_counts(body.0.filters()).await?))
}

/// A task run with its flow run's name.
#[utoipa::path(tag = "UI", responses((status = 200, body = Object), (status = 404)))]
#[get("/task_runs/{id}")]
pub async fn read_ui_task_run(state: Data<ApiState>, id: Path<Uuid>) -> ApiResult<HttpResponse> {
    Ok(ok(&state.core.read_ui_task_run(*id).await?))
}
