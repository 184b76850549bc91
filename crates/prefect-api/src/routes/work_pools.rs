//! `/work_pools` routes: pools, their queues and workers, and the worker polling path.

use actix_web::web::{Data, Path};
use actix_web::{HttpResponse, delete, get, patch, post};
use prefect_domain::filters::{WorkPoolFilter, WorkQueueFilter};
use prefect_domain::time::DateTime;
use prefect_domain::work_pool::{
    WorkPool, WorkPoolCreate, WorkPoolUpdate, WorkQueue, WorkQueueCreate, WorkQueueUpdate, Worker, WorkerFilter, WorkerFlowRun, WorkerHeartbeat,
};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::ApiState;
use crate::error::ApiResult;
use crate::extract::Json;
use crate::routes::{created, no_content, ok};

/// Body of `POST /work_pools/filter`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct WorkPoolFilterBody {
    #[serde(default)]
    pub work_pools: Option<WorkPoolFilter>,
    #[serde(default)]
    pub limit: Option<u64>,
    #[serde(default, deserialize_with = "crate::extract::null_as_default")]
    pub offset: u64,
}

/// Body of `POST /work_pools/count`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct WorkPoolCountBody {
    #[serde(default)]
    pub work_pools: Option<WorkPoolFilter>,
}

/// Body of `POST /work_pools/{name}/queues/filter` and `POST /work_queues/filter`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct WorkQueueFilterBody {
    #[serde(default)]
    pub work_queues: Option<WorkQueueFilter>,
    #[serde(default)]
    pub limit: Option<u64>,
    #[serde(default, deserialize_with = "crate::extract::null_as_default")]
    pub offset: u64,
}

/// Body of `POST /work_pools/{name}/workers/filter`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct WorkerFilterBody {
    #[serde(default)]
    pub workers: Option<WorkerFilter>,
    #[serde(default)]
    pub limit: Option<u64>,
    #[serde(default, deserialize_with = "crate::extract::null_as_default")]
    pub offset: u64,
}

/// Body of `POST /work_pools/{name}/get_scheduled_flow_runs`.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct ScheduledFlowRunsBody {
    /// Only these queues of the pool (default: all).
    #[serde(default)]
    pub work_queue_names: Option<Vec<String>>,
    #[serde(default)]
    pub scheduled_before: Option<DateTime>,
    #[serde(default)]
    pub scheduled_after: Option<DateTime>,
    #[serde(default)]
    pub limit: Option<u64>,
}

#[utoipa::path(tag = "Work Pools", request_body = WorkPoolCreate, responses((status = 201, body = WorkPool), (status = 403), (status = 409), (status = 422)))]
#[post("/")]
pub async fn create_work_pool(state: Data<ApiState>, body: Json<WorkPoolCreate>) -> ApiResult<HttpResponse> {
    Ok(created(&state.core.create_work_pool(body.0).await?))
}

#[utoipa::path(tag = "Work Pools", request_body = WorkPoolFilterBody, responses((status = 200, body = Vec<WorkPool>)))]
#[post("/filter")]
pub async fn filter_work_pools(state: Data<ApiState>, body: Json<WorkPoolFilterBody>) -> ApiResult<HttpResponse> {
    let b = body.0;
    Ok(ok(&state.core.filter_work_pools(b.work_pools.as_ref(), b.limit, b.offset).await?))
}

#[utoipa::path(tag = "Work Pools", request_body = WorkPoolCountBody, responses((status = 200, body = u64)))]
#[post("/count")]
pub async fn count_work_pools(state: Data<ApiState>, body: Json<WorkPoolCountBody>) -> ApiResult<HttpResponse> {
    Ok(ok(&state.core.count_work_pools(body.0.work_pools.as_ref()).await?))
}

#[utoipa::path(tag = "Work Pools", responses((status = 200, body = WorkPool), (status = 404)))]
#[get("/{name}")]
pub async fn read_work_pool(state: Data<ApiState>, name: Path<String>) -> ApiResult<HttpResponse> {
    Ok(ok(&state.core.read_work_pool(&name).await?))
}

#[utoipa::path(tag = "Work Pools", request_body = WorkPoolUpdate, responses((status = 204), (status = 403), (status = 404)))]
#[patch("/{name}")]
pub async fn update_work_pool(state: Data<ApiState>, name: Path<String>, body: Json<WorkPoolUpdate>) -> ApiResult<HttpResponse> {
    state.core.update_work_pool(&name, body.0).await?;
    Ok(no_content())
}

#[utoipa::path(tag = "Work Pools", responses((status = 204), (status = 403), (status = 404)))]
#[delete("/{name}")]
pub async fn delete_work_pool(state: Data<ApiState>, name: Path<String>) -> ApiResult<HttpResponse> {
    state.core.delete_work_pool(&name).await?;
    Ok(no_content())
}

#[utoipa::path(tag = "Work Pools", request_body = ScheduledFlowRunsBody, responses((status = 200, body = Vec<WorkerFlowRun>), (status = 404)))]
#[post("/{name}/get_scheduled_flow_runs")]
pub async fn get_scheduled_flow_runs(state: Data<ApiState>, name: Path<String>, body: Option<Json<ScheduledFlowRunsBody>>) -> ApiResult<HttpResponse> {
    let b = body.map(|b| b.0).unwrap_or_default();
    let runs = state.core.get_scheduled_flow_runs(&name, b.work_queue_names.as_deref(), b.scheduled_before, b.scheduled_after, b.limit).await?;
    Ok(ok(&runs))
}

#[utoipa::path(tag = "Work Pools", request_body = WorkQueueCreate, responses((status = 201, body = WorkQueue), (status = 404), (status = 409), (status = 422)))]
#[post("/{work_pool_name}/queues")]
pub async fn create_work_queue(state: Data<ApiState>, pool: Path<String>, body: Json<WorkQueueCreate>) -> ApiResult<HttpResponse> {
    Ok(created(&state.core.create_work_queue(&pool, body.0).await?))
}

#[utoipa::path(tag = "Work Pools", request_body = WorkQueueFilterBody, responses((status = 200, body = Vec<WorkQueue>), (status = 404)))]
#[post("/{work_pool_name}/queues/filter")]
pub async fn filter_work_queues(state: Data<ApiState>, pool: Path<String>, body: Option<Json<WorkQueueFilterBody>>) -> ApiResult<HttpResponse> {
    let (filter, limit, offset) = body.map_or((None, None, 0), |b| (b.0.work_queues, b.0.limit, b.0.offset));
    Ok(ok(&state.core.filter_work_queues(&pool, filter.as_ref(), limit, offset).await?))
}

#[utoipa::path(tag = "Work Pools", responses((status = 200, body = WorkQueue), (status = 404)))]
#[get("/{work_pool_name}/queues/{name}")]
pub async fn read_work_queue(state: Data<ApiState>, path: Path<(String, String)>) -> ApiResult<HttpResponse> {
    let (pool, name) = path.into_inner();
    Ok(ok(&state.core.read_work_queue(&pool, &name).await?))
}

#[utoipa::path(tag = "Work Pools", request_body = WorkQueueUpdate, responses((status = 204), (status = 404)))]
#[patch("/{work_pool_name}/queues/{name}")]
pub async fn update_work_queue(state: Data<ApiState>, path: Path<(String, String)>, body: Json<WorkQueueUpdate>) -> ApiResult<HttpResponse> {
    let (pool, name) = path.into_inner();
    state.core.update_work_queue(&pool, &name, body.0).await?;
    Ok(no_content())
}

#[utoipa::path(tag = "Work Pools", responses((status = 204), (status = 400), (status = 404)))]
#[delete("/{work_pool_name}/queues/{name}")]
pub async fn delete_work_queue(state: Data<ApiState>, path: Path<(String, String)>) -> ApiResult<HttpResponse> {
    let (pool, name) = path.into_inner();
    state.core.delete_work_queue(&pool, &name).await?;
    Ok(no_content())
}

#[utoipa::path(tag = "Work Pools", request_body = WorkerHeartbeat, responses((status = 204), (status = 404)))]
#[post("/{work_pool_name}/workers/heartbeat")]
pub async fn worker_heartbeat(state: Data<ApiState>, pool: Path<String>, body: Json<WorkerHeartbeat>) -> ApiResult<HttpResponse> {
    let b = body.0;
    state.core.worker_heartbeat(&pool, &b.name, b.heartbeat_interval_seconds).await?;
    Ok(no_content())
}

#[utoipa::path(tag = "Work Pools", request_body = WorkerFilterBody, responses((status = 200, body = Vec<Worker>), (status = 404)))]
#[post("/{work_pool_name}/workers/filter")]
pub async fn filter_workers(state: Data<ApiState>, pool: Path<String>, body: Option<Json<WorkerFilterBody>>) -> ApiResult<HttpResponse> {
    let (filter, limit, offset) = body.map_or((None, None, 0), |b| (b.0.workers, b.0.limit, b.0.offset));
    Ok(ok(&state.core.filter_workers(&pool, filter.as_ref(), limit, offset).await?))
}

#[utoipa::path(tag = "Work Pools", responses((status = 204), (status = 404)))]
#[delete("/{work_pool_name}/workers/{name}")]
pub async fn delete_worker(state: Data<ApiState>, path: Path<(String, String)>) -> ApiResult<HttpResponse> {
    let (pool, name) = path.into_inner();
    state.core.delete_worker(&pool, &name).await?;
    Ok(no_content())
}
