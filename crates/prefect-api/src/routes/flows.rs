//! `/flows` routes.

use actix_web::web::{Data, Path};
use actix_web::{HttpResponse, delete, get, patch, post};
use prefect_domain::filters::RunFilters;
use prefect_domain::flow::{Flow, FlowCreate, FlowUpdate};
use prefect_domain::sorts::FlowSort;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::ApiState;
use crate::error::ApiResult;
use crate::extract::Json;
use crate::routes::{created_or_ok, no_content, ok};

/// Body of `POST /flows/filter`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct FlowFilterBody {
    #[serde(flatten)]
    pub filters: RunFilters,
    #[serde(default)]
    pub sort: FlowSort,
    #[serde(default)]
    pub limit: Option<u64>,
    #[serde(default, deserialize_with = "crate::extract::null_as_default")]
    pub offset: u64,
}

/// Body of `POST /flows/count`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct FlowCountBody {
    #[serde(flatten)]
    pub filters: RunFilters,
}

/// Body of `POST /flows/paginate`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct FlowPaginateBody {
    #[serde(flatten)]
    pub filters: RunFilters,
    #[serde(default)]
    pub sort: FlowSort,
    #[serde(default)]
    pub limit: Option<u64>,
    #[serde(default = "first_page")]
    pub page: u64,
}

pub(crate) fn first_page() -> u64 {
    1
}

/// Body of bulk deletes.
#[derive(Debug, Deserialize, ToSchema)]
pub struct FlowBulkDeleteBody {
    #[serde(flatten)]
    pub filters: RunFilters,
    #[serde(default = "bulk_limit")]
    pub limit: u64,
}

pub(crate) fn bulk_limit() -> u64 {
    50
}

/// Ids deleted by a bulk delete.
#[derive(Debug, Serialize, ToSchema)]
pub struct BulkDeleteResponse {
    pub deleted: Vec<Uuid>,
}

/// A page of flows.
#[derive(Debug, Serialize, ToSchema)]
pub struct FlowPaginationResponse {
    pub results: Vec<Flow>,
    pub count: u64,
    pub limit: u64,
    pub pages: u64,
    pub page: u64,
}

/// Creates a flow, or returns the one with that name (201 new, 200 existing).
#[utoipa::path(tag = "Flows", request_body = FlowCreate, responses((status = 201, body = Flow), (status = 200, body = Flow)))]
#[post("/")]
pub async fn create_flow(state: Data<ApiState>, body: Json<FlowCreate>) -> ApiResult<HttpResponse> {
    let (flow, created) = state.core.create_flow(body.0).await?;
    Ok(created_or_ok(created, &flow))
}

#[utoipa::path(tag = "Flows", params(("id" = Uuid, Path)), responses((status = 200, body = Flow), (status = 404)))]
#[get("")]
pub async fn read_flow(state: Data<ApiState>, id: Path<Uuid>) -> ApiResult<HttpResponse> {
    Ok(ok(&state.core.read_flow(*id).await?))
}

#[utoipa::path(tag = "Flows", responses((status = 200, body = Flow), (status = 404)))]
#[get("/name/{name}")]
pub async fn read_flow_by_name(state: Data<ApiState>, name: Path<String>) -> ApiResult<HttpResponse> {
    Ok(ok(&state.core.read_flow_by_name(&name).await?))
}

#[utoipa::path(tag = "Flows", params(("id" = Uuid, Path)), request_body = FlowUpdate, responses((status = 204), (status = 404)))]
#[patch("")]
pub async fn update_flow(state: Data<ApiState>, id: Path<Uuid>, body: Json<FlowUpdate>) -> ApiResult<HttpResponse> {
    state.core.update_flow(*id, body.0).await?;
    Ok(no_content())
}

#[utoipa::path(tag = "Flows", params(("id" = Uuid, Path)), responses((status = 204), (status = 404)))]
#[delete("")]
pub async fn delete_flow(state: Data<ApiState>, id: Path<Uuid>) -> ApiResult<HttpResponse> {
    state.core.delete_flow(*id).await?;
    Ok(no_content())
}

#[utoipa::path(tag = "Flows", request_body = FlowFilterBody, responses((status = 200, body = Vec<Flow>)))]
#[post("/filter")]
pub async fn filter_flows(state: Data<ApiState>, body: Json<FlowFilterBody>) -> ApiResult<HttpResponse> {
    let b = body.0;
    Ok(ok(&state.core.filter_flows(&b.filters, b.sort, b.limit, b.offset).await?))
}

#[utoipa::path(tag = "Flows", request_body = FlowCountBody, responses((status = 200, body = u64)))]
#[post("/count")]
pub async fn count_flows(state: Data<ApiState>, body: Json<FlowCountBody>) -> ApiResult<HttpResponse> {
    Ok(ok(&state.core.count_flows(&body.0.filters).await?))
}

#[utoipa::path(tag = "Flows", request_body = FlowPaginateBody, responses((status = 200, body = FlowPaginationResponse)))]
#[post("/paginate")]
pub async fn paginate_flows(state: Data<ApiState>, body: Json<FlowPaginateBody>) -> ApiResult<HttpResponse> {
    let b = body.0;
    let p = state.core.paginate_flows(&b.filters, b.sort, b.limit, b.page.max(1)).await?;
    Ok(ok(&FlowPaginationResponse { results: p.results, count: p.count, limit: p.limit, pages: p.pages, page: p.page }))
}

#[utoipa::path(tag = "Flows", request_body = FlowBulkDeleteBody, responses((status = 200, body = BulkDeleteResponse)))]
#[post("/bulk_delete")]
pub async fn bulk_delete_flows(state: Data<ApiState>, body: Json<FlowBulkDeleteBody>) -> ApiResult<HttpResponse> {
    let b = body.0;
    let deleted = state.core.bulk_delete_flows(&b.filters, b.limit.clamp(1, 50)).await?;
    Ok(ok(&BulkDeleteResponse { deleted }))
}
