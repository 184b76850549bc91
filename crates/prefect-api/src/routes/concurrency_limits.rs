//! `/concurrency_limits` routes: the tag-limit (V1) API over `tag:<tag>` global limits.

use actix_web::web::{Data, Path};
use actix_web::{HttpResponse, delete, get, post};
use prefect_domain::concurrency::{MinimalConcurrencyLimitResponse, TagConcurrencyLimit, TagConcurrencyLimitCreate};
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::ApiState;
use crate::error::ApiResult;
use crate::extract::Json;
use crate::routes::concurrency_limits_v2::PageBody;
use crate::routes::{created_or_ok, ok};

#[derive(Debug, Deserialize, ToSchema)]
pub struct TagSlotsBody {
    pub names: Vec<String>,
    pub task_run_id: Uuid,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ResetBody {
    #[serde(default)]
    pub slot_override: Option<Vec<Uuid>>,
}

/// Creates (201) or resizes (200) the limit of a tag.
#[utoipa::path(tag = "Concurrency Limits", request_body = TagConcurrencyLimitCreate, responses((status = 201, body = TagConcurrencyLimit), (status = 200, body = TagConcurrencyLimit)))]
#[post("/")]
pub async fn create_tag_limit(state: Data<ApiState>, body: Json<TagConcurrencyLimitCreate>) -> ApiResult<HttpResponse> {
    let b = body.0;
    let (limit, created) = state.core.upsert_tag_concurrency_limit(&b.tag, b.concurrency_limit).await?;
    Ok(created_or_ok(created, &limit))
}

#[utoipa::path(tag = "Concurrency Limits", params(("id" = Uuid, Path)), responses((status = 200, body = TagConcurrencyLimit), (status = 404)))]
#[get("")]
pub async fn read_tag_limit(state: Data<ApiState>, id: Path<Uuid>) -> ApiResult<HttpResponse> {
    Ok(ok(&state.core.read_tag_concurrency_limit(*id).await?))
}

#[utoipa::path(tag = "Concurrency Limits", params(("tag" = String, Path)), responses((status = 200, body = TagConcurrencyLimit), (status = 404)))]
#[get("")]
pub async fn read_tag_limit_by_tag(state: Data<ApiState>, tag: Path<String>) -> ApiResult<HttpResponse> {
    Ok(ok(&state.core.read_tag_concurrency_limit_by_tag(&tag).await?))
}

#[utoipa::path(tag = "Concurrency Limits", request_body = PageBody, responses((status = 200, body = Vec<TagConcurrencyLimit>)))]
#[post("/filter")]
pub async fn filter_tag_limits(state: Data<ApiState>, body: Json<PageBody>) -> ApiResult<HttpResponse> {
    Ok(ok(&state.core.filter_tag_concurrency_limits(body.0.limit, body.0.offset).await?))
}

#[utoipa::path(tag = "Concurrency Limits", params(("tag" = String, Path)), request_body = ResetBody, responses((status = 200), (status = 404)))]
#[post("/reset")]
pub async fn reset_tag_limit(state: Data<ApiState>, tag: Path<String>, body: Json<ResetBody>) -> ApiResult<HttpResponse> {
    state.core.reset_tag_concurrency_limit(&tag, body.0.slot_override).await?;
    Ok(ok(&serde_json::Value::Null))
}

#[utoipa::path(tag = "Concurrency Limits", params(("id" = Uuid, Path)), responses((status = 200), (status = 404)))]
#[delete("")]
pub async fn delete_tag_limit(state: Data<ApiState>, id: Path<Uuid>) -> ApiResult<HttpResponse> {
    state.core.delete_tag_concurrency_limit(Some(*id), None).await?;
    Ok(ok(&serde_json::Value::Null))
}

#[utoipa::path(tag = "Concurrency Limits", params(("tag" = String, Path)), responses((status = 200), (status = 404)))]
#[delete("")]
pub async fn delete_tag_limit_by_tag(state: Data<ApiState>, tag: Path<String>) -> ApiResult<HttpResponse> {
    state.core.delete_tag_concurrency_limit(None, Some(&tag)).await?;
    Ok(ok(&serde_json::Value::Null))
}

/// Takes one slot on each tag's limit for a task run; 423 when any is full or zero.
#[utoipa::path(tag = "Concurrency Limits", request_body = TagSlotsBody, responses((status = 200, body = Vec<MinimalConcurrencyLimitResponse>), (status = 423)))]
#[post("/increment")]
pub async fn increment_tags(state: Data<ApiState>, body: Json<TagSlotsBody>) -> ApiResult<HttpResponse> {
    let b = body.0;
    Ok(ok(&state.core.increment_tag_concurrency_slots(&b.names, b.task_run_id).await?))
}

#[utoipa::path(tag = "Concurrency Limits", request_body = TagSlotsBody, responses((status = 200, body = Vec<MinimalConcurrencyLimitResponse>)))]
#[post("/decrement")]
pub async fn decrement_tags(state: Data<ApiState>, body: Json<TagSlotsBody>) -> ApiResult<HttpResponse> {
    let b = body.0;
    Ok(ok(&state.core.decrement_tag_concurrency_slots(&b.names, b.task_run_id).await?))
}
