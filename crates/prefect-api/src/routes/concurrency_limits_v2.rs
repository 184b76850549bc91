//! `/v2/concurrency_limits` routes: global limits and leases.

use actix_web::web::{Data, Path};
use actix_web::{HttpResponse, delete, get, patch, post};
use prefect_domain::concurrency::{
    ConcurrencyLeaseHolder, ConcurrencyLimitV2, ConcurrencyLimitV2Create, ConcurrencyLimitV2Update, ConcurrencyLimitWithLeaseResponse, ConcurrencyMode,
    GlobalConcurrencyLimitResponse, MinimalConcurrencyLimitResponse,
};
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::ApiState;
use crate::error::ApiResult;
use crate::extract::Json;
use crate::routes::{created, no_content, ok};

#[derive(Debug, Deserialize, ToSchema)]
pub struct PageBody {
    #[serde(default)]
    pub limit: Option<u64>,
    #[serde(default, deserialize_with = "crate::extract::null_as_default")]
    pub offset: u64,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct IncrementBody {
    pub slots: i64,
    pub names: Vec<String>,
    #[serde(default)]
    pub mode: ConcurrencyMode,
    /// Deprecated and ignored: limits must exist before slots are taken.
    #[serde(default)]
    pub create_if_missing: Option<bool>,
}

fn default_lease_duration() -> f64 {
    300.0
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct IncrementWithLeaseBody {
    pub slots: i64,
    pub names: Vec<String>,
    #[serde(default)]
    pub mode: ConcurrencyMode,
    #[serde(default = "default_lease_duration")]
    pub lease_duration: f64,
    #[serde(default)]
    pub holder: Option<ConcurrencyLeaseHolder>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct DecrementBody {
    pub slots: i64,
    pub names: Vec<String>,
    #[serde(default)]
    pub occupancy_seconds: Option<f64>,
    /// Deprecated and ignored.
    #[serde(default)]
    pub create_if_missing: Option<bool>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct LeaseBody {
    pub lease_id: Uuid,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RenewBody {
    #[serde(default = "default_lease_duration")]
    pub lease_duration: f64,
}

#[utoipa::path(tag = "Concurrency Limits V2", request_body = ConcurrencyLimitV2Create, responses((status = 201, body = ConcurrencyLimitV2), (status = 409)))]
#[post("/concurrency_limits/")]
pub async fn create_limit(state: Data<ApiState>, body: Json<ConcurrencyLimitV2Create>) -> ApiResult<HttpResponse> {
    Ok(created(&state.core.create_concurrency_limit(body.0).await?))
}

#[utoipa::path(tag = "Concurrency Limits V2", params(("id_or_name" = String, Path)), responses((status = 200, body = GlobalConcurrencyLimitResponse), (status = 404)))]
#[get("")]
pub async fn read_limit(state: Data<ApiState>, id_or_name: Path<String>) -> ApiResult<HttpResponse> {
    Ok(ok(&state.core.read_concurrency_limit(&id_or_name).await?))
}

#[utoipa::path(tag = "Concurrency Limits V2", params(("id_or_name" = String, Path)), request_body = ConcurrencyLimitV2Update, responses((status = 204), (status = 404)))]
#[patch("")]
pub async fn update_limit(state: Data<ApiState>, id_or_name: Path<String>, body: Json<ConcurrencyLimitV2Update>) -> ApiResult<HttpResponse> {
    state.core.update_concurrency_limit(&id_or_name, body.0).await?;
    Ok(no_content())
}

#[utoipa::path(tag = "Concurrency Limits V2", params(("id_or_name" = String, Path)), responses((status = 204), (status = 404)))]
#[delete("")]
pub async fn delete_limit(state: Data<ApiState>, id_or_name: Path<String>) -> ApiResult<HttpResponse> {
    state.core.delete_concurrency_limit(&id_or_name).await?;
    Ok(no_content())
}

#[utoipa::path(tag = "Concurrency Limits V2", request_body = PageBody, responses((status = 200, body = Vec<GlobalConcurrencyLimitResponse>)))]
#[post("/concurrency_limits/filter")]
pub async fn filter_limits(state: Data<ApiState>, body: Json<PageBody>) -> ApiResult<HttpResponse> {
    Ok(ok(&state.core.filter_concurrency_limits(body.0.limit, body.0.offset).await?))
}

/// Takes slots on the named limits; 423 with Retry-After when any is full.
#[utoipa::path(tag = "Concurrency Limits V2", request_body = IncrementBody, responses((status = 200, body = Vec<MinimalConcurrencyLimitResponse>), (status = 423)))]
#[post("/concurrency_limits/increment")]
pub async fn increment(state: Data<ApiState>, body: Json<IncrementBody>) -> ApiResult<HttpResponse> {
    let b = body.0;
    Ok(ok(&state.core.increment_concurrency_slots(&b.names, b.slots, b.mode).await?))
}

/// Takes slots under a lease; 423 with Retry-After when any limit is full.
#[utoipa::path(tag = "Concurrency Limits V2", request_body = IncrementWithLeaseBody, responses((status = 200, body = ConcurrencyLimitWithLeaseResponse), (status = 423)))]
#[post("/concurrency_limits/increment-with-lease")]
pub async fn increment_with_lease(state: Data<ApiState>, body: Json<IncrementWithLeaseBody>) -> ApiResult<HttpResponse> {
    let b = body.0;
    Ok(ok(&state.core.increment_concurrency_slots_with_lease(&b.names, b.slots, b.mode, b.lease_duration, b.holder).await?))
}

#[utoipa::path(tag = "Concurrency Limits V2", request_body = DecrementBody, responses((status = 200, body = Vec<MinimalConcurrencyLimitResponse>)))]
#[post("/concurrency_limits/decrement")]
pub async fn decrement(state: Data<ApiState>, body: Json<DecrementBody>) -> ApiResult<HttpResponse> {
    let b = body.0;
    Ok(ok(&state.core.decrement_concurrency_slots(&b.names, b.slots, b.occupancy_seconds).await?))
}

#[utoipa::path(tag = "Concurrency Limits V2", request_body = LeaseBody, responses((status = 204)))]
#[post("/concurrency_limits/decrement-with-lease")]
pub async fn decrement_with_lease(state: Data<ApiState>, body: Json<LeaseBody>) -> ApiResult<HttpResponse> {
    state.core.decrement_concurrency_slots_with_lease(body.0.lease_id).await?;
    Ok(no_content())
}

/// Extends a lease; 410 when it expired or was revoked.
#[utoipa::path(tag = "Concurrency Limits V2", request_body = RenewBody, responses((status = 204), (status = 410)))]
#[post("/concurrency_limits/leases/{lease_id}/renew")]
pub async fn renew_lease(state: Data<ApiState>, lease_id: Path<Uuid>, body: Json<RenewBody>) -> ApiResult<HttpResponse> {
    state.core.renew_concurrency_lease(*lease_id, body.0.lease_duration).await?;
    Ok(no_content())
}
