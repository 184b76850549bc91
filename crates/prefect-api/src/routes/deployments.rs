//! `/deployments` routes.

use std::collections::HashSet;

use actix_web::web::{Data, Path};
use actix_web::{HttpResponse, delete, get, patch, post};
use prefect_domain::deployment::{
    Deployment, DeploymentBulkDeleteResponse, DeploymentCreate, DeploymentFlowRunCreate, DeploymentSchedule, DeploymentScheduleCreate,
    DeploymentScheduleUpdate, DeploymentUpdate, FlowRunBulkCreateResponse, ScheduleRequest,
};
use prefect_domain::filters::{DeploymentFilter, RunFilters};
use prefect_domain::flow_run::FlowRun;
use prefect_domain::sorts::DeploymentSort;
use prefect_domain::time::DateTime;
use prefect_domain::work_pool::LegacyWorkQueue;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::ApiState;
use crate::error::ApiResult;
use crate::extract::{Client, Json, parse_json};
use crate::routes::flows::first_page;
use crate::routes::{created, created_or_ok, no_content, ok};

/// Body of `POST /deployments/filter`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct DeploymentFilterBody {
    #[serde(flatten)]
    pub filters: RunFilters,
    #[serde(default, deserialize_with = "crate::extract::null_as_default")]
    pub sort: DeploymentSort,
    #[serde(default)]
    pub limit: Option<u64>,
    #[serde(default, deserialize_with = "crate::extract::null_as_default")]
    pub offset: u64,
}

/// Body of `POST /deployments/count`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct DeploymentCountBody {
    #[serde(flatten)]
    pub filters: RunFilters,
}

/// Body of `POST /deployments/paginate`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct DeploymentPaginateBody {
    #[serde(flatten)]
    pub filters: RunFilters,
    #[serde(default, deserialize_with = "crate::extract::null_as_default")]
    pub sort: DeploymentSort,
    #[serde(default)]
    pub limit: Option<u64>,
    #[serde(default = "first_page")]
    pub page: u64,
}

/// A page of deployments.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeploymentPaginationResponse {
    pub results: Vec<Deployment>,
    pub count: u64,
    pub limit: u64,
    pub pages: u64,
    pub page: u64,
}

/// Body of `POST /deployments/bulk_delete`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct DeploymentBulkDeleteBody {
    #[serde(default)]
    pub deployments: Option<DeploymentFilter>,
    #[serde(default)]
    pub limit: Option<u64>,
}

/// Body of `POST /deployments/get_scheduled_flow_runs`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ScheduledFlowRunsBody {
    pub deployment_ids: Vec<Uuid>,
    #[serde(default)]
    pub scheduled_before: Option<DateTime>,
    #[serde(default)]
    pub limit: Option<u64>,
}

/// Creates a deployment (201) or updates the one with the same flow and name (200).
#[utoipa::path(tag = "Deployments", request_body = DeploymentCreate, responses((status = 201, body = Deployment), (status = 200, body = Deployment), (status = 404), (status = 422)))]
#[post("/")]
pub async fn create_deployment(state: Data<ApiState>, body: Json<serde_json::Value>) -> ApiResult<HttpResponse> {
    let fields: HashSet<String> = body.0.as_object().map(|m| m.keys().cloned().collect()).unwrap_or_default();
    let bytes = serde_json::to_vec(&body.0).unwrap_or_default();
    let create: DeploymentCreate = parse_json(&bytes)?;
    let (deployment, was_created) = state.core.create_deployment(create, &fields, None).await?;
    Ok(created_or_ok(was_created, &deployment))
}

#[utoipa::path(tag = "Deployments", request_body = DeploymentFilterBody, responses((status = 200, body = Vec<Deployment>)))]
#[post("/filter")]
pub async fn filter_deployments(state: Data<ApiState>, body: Json<DeploymentFilterBody>) -> ApiResult<HttpResponse> {
    let b = body.0;
    Ok(ok(&state.core.filter_deployments(&b.filters, b.sort, b.limit, b.offset).await?))
}

#[utoipa::path(tag = "Deployments", request_body = DeploymentPaginateBody, responses((status = 200, body = DeploymentPaginationResponse)))]
#[post("/paginate")]
pub async fn paginate_deployments(state: Data<ApiState>, body: Json<DeploymentPaginateBody>) -> ApiResult<HttpResponse> {
    let b = body.0;
    let p = state.core.paginate_deployments(&b.filters, b.sort, b.limit, b.page).await?;
    Ok(ok(&DeploymentPaginationResponse { results: p.results, count: p.count, limit: p.limit, pages: p.pages, page: p.page }))
}

#[utoipa::path(tag = "Deployments", request_body = DeploymentCountBody, responses((status = 200, body = u64)))]
#[post("/count")]
pub async fn count_deployments(state: Data<ApiState>, body: Json<DeploymentCountBody>) -> ApiResult<HttpResponse> {
    Ok(ok(&state.core.count_deployments(&body.0.filters).await?))
}

#[utoipa::path(tag = "Deployments", request_body = DeploymentBulkDeleteBody, responses((status = 200, body = DeploymentBulkDeleteResponse)))]
#[post("/bulk_delete")]
pub async fn bulk_delete_deployments(state: Data<ApiState>, body: Json<DeploymentBulkDeleteBody>) -> ApiResult<HttpResponse> {
    let b = body.0;
    Ok(ok(&state.core.bulk_delete_deployments(b.deployments, b.limit).await?))
}

/// Scheduled runs of the given deployments (a runner's poll); marks them READY.
#[utoipa::path(tag = "Deployments", request_body = ScheduledFlowRunsBody, responses((status = 200, body = Vec<FlowRun>)))]
#[post("/get_scheduled_flow_runs")]
pub async fn get_scheduled_flow_runs_for_deployments(state: Data<ApiState>, body: Json<ScheduledFlowRunsBody>) -> ApiResult<HttpResponse> {
    let b = body.0;
    Ok(ok(&state.core.scheduled_runs_of_deployments(b.deployment_ids, b.scheduled_before, b.limit).await?))
}

#[utoipa::path(tag = "Deployments", responses((status = 200, body = Deployment), (status = 404)))]
#[get("/name/{flow_name}/{deployment_name}")]
pub async fn read_deployment_by_name(state: Data<ApiState>, path: Path<(String, String)>) -> ApiResult<HttpResponse> {
    let (flow_name, name) = path.into_inner();
    Ok(ok(&state.core.read_deployment_by_name(&flow_name, &name).await?))
}

#[utoipa::path(tag = "Deployments", params(("id" = Uuid, Path)), responses((status = 200, body = Deployment), (status = 404)))]
#[get("")]
pub async fn read_deployment(state: Data<ApiState>, id: Path<Uuid>) -> ApiResult<HttpResponse> {
    Ok(ok(&state.core.read_deployment(*id).await?))
}

#[utoipa::path(tag = "Deployments", params(("id" = Uuid, Path)), request_body = DeploymentUpdate, responses((status = 204), (status = 404), (status = 409), (status = 422)))]
#[patch("")]
pub async fn update_deployment(state: Data<ApiState>, id: Path<Uuid>, body: Json<DeploymentUpdate>) -> ApiResult<HttpResponse> {
    state.core.update_deployment(*id, body.0).await?;
    Ok(no_content())
}

#[utoipa::path(tag = "Deployments", params(("id" = Uuid, Path)), responses((status = 204), (status = 404)))]
#[delete("")]
pub async fn delete_deployment(state: Data<ApiState>, id: Path<Uuid>) -> ApiResult<HttpResponse> {
    state.core.delete_deployment(*id).await?;
    Ok(no_content())
}

/// Creates a flow run from the deployment (Scheduled now unless a state is given).
#[utoipa::path(tag = "Deployments", params(("id" = Uuid, Path)), request_body = DeploymentFlowRunCreate, responses((status = 201, body = FlowRun), (status = 200, body = FlowRun), (status = 404), (status = 409)))]
#[post("/create_flow_run")]
pub async fn create_flow_run_from_deployment(
    state: Data<ApiState>,
    client: Client,
    id: Path<Uuid>,
    body: Json<DeploymentFlowRunCreate>,
) -> ApiResult<HttpResponse> {
    let (run, was_created) = state.core.create_flow_run_from_deployment(*id, body.0, None, &client.0).await?;
    Ok(created_or_ok(was_created, &run))
}

#[utoipa::path(tag = "Deployments", params(("id" = Uuid, Path)), request_body = Vec<DeploymentFlowRunCreate>, responses((status = 200, body = FlowRunBulkCreateResponse), (status = 404)))]
#[post("/create_flow_run/bulk")]
pub async fn bulk_create_flow_runs_from_deployment(
    state: Data<ApiState>,
    client: Client,
    id: Path<Uuid>,
    body: Json<Vec<DeploymentFlowRunCreate>>,
) -> ApiResult<HttpResponse> {
    let results = state.core.bulk_create_flow_runs_from_deployment(*id, body.0, None, &client.0).await?;
    Ok(ok(&FlowRunBulkCreateResponse { results }))
}

#[utoipa::path(tag = "Deployments", params(("id" = Uuid, Path)), responses((status = 200), (status = 404)))]
#[post("/pause_deployment")]
pub async fn pause_deployment(state: Data<ApiState>, id: Path<Uuid>) -> ApiResult<HttpResponse> {
    state.core.set_deployment_paused(*id, true).await?;
    Ok(ok(&serde_json::Value::Null))
}

#[utoipa::path(tag = "Deployments", params(("id" = Uuid, Path)), responses((status = 200), (status = 404)))]
#[post("/resume_deployment")]
pub async fn resume_deployment(state: Data<ApiState>, id: Path<Uuid>) -> ApiResult<HttpResponse> {
    state.core.set_deployment_paused(*id, false).await?;
    Ok(ok(&serde_json::Value::Null))
}

/// Schedules runs of the deployment's active schedules in a window; a past window backfills.
/// Runs already scheduled for a schedule and time are not duplicated. An unknown id schedules nothing.
#[utoipa::path(tag = "Deployments", params(("id" = Uuid, Path)), request_body = ScheduleRequest, responses((status = 200)))]
#[post("/schedule")]
pub async fn schedule_deployment(state: Data<ApiState>, id: Path<Uuid>, body: Option<Json<ScheduleRequest>>) -> ApiResult<HttpResponse> {
    state.core.schedule_deployment_runs(*id, body.map(|b| b.0).unwrap_or_default()).await?;
    Ok(ok(&serde_json::Value::Null))
}

/// Work queues whose legacy agent filter would pick up the deployment's runs.
#[utoipa::path(tag = "Deployments", params(("id" = Uuid, Path)), responses((status = 200, body = Vec<LegacyWorkQueue>), (status = 404)))]
#[get("/work_queue_check")]
pub async fn work_queue_check(state: Data<ApiState>, id: Path<Uuid>) -> ApiResult<HttpResponse> {
    Ok(ok(&state.core.work_queues_for_deployment(*id).await?))
}

#[utoipa::path(tag = "Deployments", params(("id" = Uuid, Path)), responses((status = 200, body = Vec<DeploymentSchedule>), (status = 404)))]
#[get("/schedules")]
pub async fn read_deployment_schedules(state: Data<ApiState>, id: Path<Uuid>) -> ApiResult<HttpResponse> {
    Ok(ok(&state.core.read_deployment_schedules(*id).await?))
}

#[utoipa::path(tag = "Deployments", params(("id" = Uuid, Path)), request_body = Vec<DeploymentScheduleCreate>, responses((status = 201, body = Vec<DeploymentSchedule>), (status = 404), (status = 409)))]
#[post("/schedules")]
pub async fn create_deployment_schedules(state: Data<ApiState>, id: Path<Uuid>, body: Json<Vec<DeploymentScheduleCreate>>) -> ApiResult<HttpResponse> {
    Ok(created(&state.core.create_deployment_schedules(*id, body.0).await?))
}

#[utoipa::path(tag = "Deployments", params(("id" = Uuid, Path), ("schedule_id" = Uuid, Path)), request_body = DeploymentScheduleUpdate, responses((status = 204), (status = 404)))]
#[patch("/schedules/{schedule_id}")]
pub async fn update_deployment_schedule(state: Data<ApiState>, path: Path<(Uuid, Uuid)>, body: Json<DeploymentScheduleUpdate>) -> ApiResult<HttpResponse> {
    let (id, schedule_id) = path.into_inner();
    state.core.update_deployment_schedule(id, schedule_id, body.0).await?;
    Ok(no_content())
}

#[utoipa::path(tag = "Deployments", params(("id" = Uuid, Path), ("schedule_id" = Uuid, Path)), responses((status = 204), (status = 404)))]
#[delete("/schedules/{schedule_id}")]
pub async fn delete_deployment_schedule(state: Data<ApiState>, path: Path<(Uuid, Uuid)>) -> ApiResult<HttpResponse> {
    let (id, schedule_id) = path.into_inner();
    state.core.delete_deployment_schedule(id, schedule_id).await?;
    Ok(no_content())
}
