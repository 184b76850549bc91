//! `/work_queues` routes: queues addressed by id, and the agents' pool (`default-agent-pool`).

use actix_web::web::{Data, Path};
use actix_web::{HttpResponse, delete, get, patch, post};
use prefect_domain::flow_run::FlowRun;
use prefect_domain::time::DateTime;
use prefect_domain::work_pool::{WorkQueue, WorkQueueCreate, WorkQueueStatusDetail, WorkQueueUpdate};
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::ApiState;
use crate::error::ApiResult;
use crate::extract::Json;
use crate::routes::work_pools::WorkQueueFilterBody;
use crate::routes::{created, no_content, ok};

/// Body of `POST /work_queues/{id}/get_runs`.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct WorkQueueRunsBody {
    #[serde(default)]
    pub scheduled_before: Option<DateTime>,
    #[serde(default)]
    pub agent_id: Option<Uuid>,
    #[serde(default)]
    pub limit: Option<u64>,
}

#[utoipa::path(tag = "Work Queues", request_body = WorkQueueCreate, responses((status = 201, body = WorkQueue), (status = 409), (status = 422)))]
#[post("/")]
pub async fn create_agent_work_queue(state: Data<ApiState>, body: Json<WorkQueueCreate>) -> ApiResult<HttpResponse> {
    Ok(created(&state.core.create_agent_work_queue(body.0).await?))
}

#[utoipa::path(tag = "Work Queues", request_body = WorkQueueFilterBody, responses((status = 200, body = Vec<WorkQueue>)))]
#[post("/filter")]
pub async fn filter_all_work_queues(state: Data<ApiState>, body: Option<Json<WorkQueueFilterBody>>) -> ApiResult<HttpResponse> {
    let (filter, limit, offset) = body.map_or((None, None, 0), |b| (b.0.work_queues, b.0.limit, b.0.offset));
    Ok(ok(&state.core.filter_all_work_queues(filter.as_ref(), limit, offset).await?))
}

#[utoipa::path(tag = "Work Queues", responses((status = 200, body = WorkQueue), (status = 404)))]
#[get("/name/{name}")]
pub async fn read_agent_work_queue_by_name(state: Data<ApiState>, name: Path<String>) -> ApiResult<HttpResponse> {
    Ok(ok(&state.core.read_agent_work_queue(&name).await?))
}

#[utoipa::path(tag = "Work Queues", params(("id" = Uuid, Path)), responses((status = 200, body = WorkQueue), (status = 404)))]
#[get("")]
pub async fn read_work_queue_by_id(state: Data<ApiState>, id: Path<Uuid>) -> ApiResult<HttpResponse> {
    Ok(ok(&state.core.read_work_queue_by_id(*id).await?))
}

#[utoipa::path(tag = "Work Queues", params(("id" = Uuid, Path)), request_body = WorkQueueUpdate, responses((status = 204), (status = 404)))]
#[patch("")]
pub async fn update_work_queue_by_id(state: Data<ApiState>, id: Path<Uuid>, body: Json<WorkQueueUpdate>) -> ApiResult<HttpResponse> {
    state.core.update_work_queue_by_id(*id, body.0).await?;
    Ok(no_content())
}

#[utoipa::path(tag = "Work Queues", params(("id" = Uuid, Path)), responses((status = 204), (status = 400), (status = 404)))]
#[delete("")]
pub async fn delete_work_queue_by_id(state: Data<ApiState>, id: Path<Uuid>) -> ApiResult<HttpResponse> {
    state.core.delete_work_queue_by_id(*id).await?;
    Ok(no_content())
}

#[utoipa::path(tag = "Work Queues", params(("id" = Uuid, Path)), request_body = WorkQueueRunsBody, responses((status = 200, body = Vec<FlowRun>), (status = 404)))]
#[post("/get_runs")]
pub async fn read_work_queue_runs(state: Data<ApiState>, id: Path<Uuid>, body: Option<Json<WorkQueueRunsBody>>) -> ApiResult<HttpResponse> {
    let b = body.map(|b| b.0).unwrap_or_default();
    Ok(ok(&state.core.work_queue_runs(*id, b.scheduled_before, b.limit).await?))
}

/// The queue's health: late runs and the last poll, against Prefect's default policy.
#[utoipa::path(tag = "Work Queues", params(("id" = Uuid, Path)), responses((status = 200, body = WorkQueueStatusDetail), (status = 404)))]
#[get("/status")]
pub async fn read_work_queue_status(state: Data<ApiState>, id: Path<Uuid>) -> ApiResult<HttpResponse> {
    Ok(ok(&state.core.work_queue_status(*id).await?))
}
