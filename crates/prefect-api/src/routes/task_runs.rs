//! `/task_runs` routes.

use actix_web::web::{Data, Path};
use actix_web::{HttpResponse, delete, get, patch, post};
use prefect_domain::filters::RunFilters;
use prefect_domain::flow_run::HistoryResponse;
use prefect_domain::sorts::TaskRunSort;
use prefect_domain::state::{OrchestrationResult, SetStateRequest};
use prefect_domain::task_run::{TaskRun, TaskRunCreate, TaskRunUpdate};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::ApiState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Client, Json};
use crate::routes::flow_runs::HistoryBody;
use crate::routes::flows::first_page;
use crate::routes::{created_or_ok, no_content, ok};

#[derive(Debug, Deserialize, ToSchema)]
pub struct TaskRunFilterBody {
    #[serde(flatten)]
    pub filters: RunFilters,
    #[serde(default)]
    pub sort: TaskRunSort,
    #[serde(default)]
    pub limit: Option<u64>,
    #[serde(default)]
    pub offset: u64,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct TaskRunCountBody {
    #[serde(flatten)]
    pub filters: RunFilters,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct TaskRunPaginateBody {
    #[serde(flatten)]
    pub filters: RunFilters,
    #[serde(default)]
    pub sort: TaskRunSort,
    #[serde(default)]
    pub limit: Option<u64>,
    #[serde(default = "first_page")]
    pub page: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TaskRunPaginationResponse {
    pub results: Vec<TaskRun>,
    pub count: u64,
    pub limit: u64,
    pub pages: u64,
    pub page: u64,
}

/// Creates a task run (201), or returns the one with the same flow run, task key and dynamic key (200).
#[utoipa::path(tag = "Task Runs", request_body = TaskRunCreate, responses((status = 201, body = TaskRun), (status = 200, body = TaskRun)))]
#[post("/task_runs/")]
pub async fn create_task_run(state: Data<ApiState>, client: Client, body: Json<TaskRunCreate>) -> ApiResult<HttpResponse> {
    let (run, created) = state.core.create_task_run(body.0, &client.0).await?;
    Ok(created_or_ok(created, &run))
}

#[utoipa::path(tag = "Task Runs", responses((status = 200, body = TaskRun), (status = 404)))]
#[get("/task_runs/{id}")]
pub async fn read_task_run(state: Data<ApiState>, id: Path<Uuid>) -> ApiResult<HttpResponse> {
    Ok(ok(&state.core.read_task_run(*id).await?))
}

#[utoipa::path(tag = "Task Runs", request_body = TaskRunUpdate, responses((status = 204), (status = 404)))]
#[patch("/task_runs/{id}")]
pub async fn update_task_run(state: Data<ApiState>, id: Path<Uuid>, body: Json<TaskRunUpdate>) -> ApiResult<HttpResponse> {
    state.core.update_task_run(*id, body.0).await?;
    Ok(no_content())
}

#[utoipa::path(tag = "Task Runs", responses((status = 204), (status = 404)))]
#[delete("/task_runs/{id}")]
pub async fn delete_task_run(state: Data<ApiState>, id: Path<Uuid>) -> ApiResult<HttpResponse> {
    state.core.delete_task_run(*id).await?;
    Ok(no_content())
}

#[utoipa::path(tag = "Task Runs", request_body = TaskRunFilterBody, responses((status = 200, body = Vec<TaskRun>)))]
#[post("/task_runs/filter")]
pub async fn filter_task_runs(state: Data<ApiState>, body: Json<TaskRunFilterBody>) -> ApiResult<HttpResponse> {
    let b = body.0;
    Ok(ok(&state.core.filter_task_runs(&b.filters, b.sort, b.limit, b.offset).await?))
}

#[utoipa::path(tag = "Task Runs", request_body = TaskRunCountBody, responses((status = 200, body = u64)))]
#[post("/task_runs/count")]
pub async fn count_task_runs(state: Data<ApiState>, body: Json<TaskRunCountBody>) -> ApiResult<HttpResponse> {
    Ok(ok(&state.core.count_task_runs(&body.0.filters).await?))
}

#[utoipa::path(tag = "Task Runs", request_body = TaskRunPaginateBody, responses((status = 200, body = TaskRunPaginationResponse)))]
#[post("/task_runs/paginate")]
pub async fn paginate_task_runs(state: Data<ApiState>, body: Json<TaskRunPaginateBody>) -> ApiResult<HttpResponse> {
    let b = body.0;
    let p = state.core.paginate_task_runs(&b.filters, b.sort, b.limit, b.page.max(1)).await?;
    Ok(ok(&TaskRunPaginationResponse { results: p.results, count: p.count, limit: p.limit, pages: p.pages, page: p.page }))
}

#[utoipa::path(tag = "Task Runs", request_body = HistoryBody, responses((status = 200, body = Vec<HistoryResponse>)))]
#[post("/task_runs/history")]
pub async fn task_run_history(state: Data<ApiState>, body: Json<HistoryBody>) -> ApiResult<HttpResponse> {
    let b = body.0;
    let interval = b
        .interval_seconds()
        .ok_or_else(|| ApiError::invalid(&["body", "history_interval_seconds"], "Input should be a valid timedelta", b.history_interval_seconds.clone()))?;
    Ok(ok(&state.core.task_run_history(b.history_start, b.history_end, interval, &b.filters).await?))
}

/// Proposes a state with the task run policy (server-side orchestration).
#[utoipa::path(tag = "Task Runs", request_body = SetStateRequest, responses((status = 201, body = OrchestrationResult), (status = 200, body = OrchestrationResult), (status = 404)))]
#[post("/task_runs/{id}/set_state")]
pub async fn set_task_run_state(state: Data<ApiState>, id: Path<Uuid>, client: Client, body: Json<SetStateRequest>) -> ApiResult<HttpResponse> {
    let SetStateRequest { state: proposed, force } = body.0;
    let outcome = state.core.set_task_run_state(*id, proposed, force, &client.0).await?;
    Ok(created_or_ok(outcome.created, &outcome.result))
}
