//! `/saved_searches` routes.

use actix_web::web::{Data, Path};
use actix_web::{HttpResponse, delete, get, post, put};
use prefect_domain::saved_search::{SavedSearch, SavedSearchCreate};
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::ApiState;
use crate::error::ApiResult;
use crate::extract::Json;
use crate::routes::{created_or_ok, no_content, ok};

/// Body of `POST /saved_searches/filter`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct SavedSearchFilterBody {
    #[serde(default)]
    pub limit: Option<u64>,
    #[serde(default, deserialize_with = "crate::extract::null_as_default")]
    pub offset: u64,
}

/// Creates a saved search (201), or replaces the filters of the one with that name (200).
#[utoipa::path(tag = "SavedSearches", request_body = SavedSearchCreate, responses((status = 201, body = SavedSearch), (status = 200, body = SavedSearch)))]
#[put("/")]
pub async fn create_saved_search(state: Data<ApiState>, body: Json<SavedSearchCreate>) -> ApiResult<HttpResponse> {
    let (saved, created) = state.core.upsert_saved_search(body.0).await?;
    Ok(created_or_ok(created, &saved))
}

#[utoipa::path(tag = "SavedSearches", request_body = SavedSearchFilterBody, responses((status = 200, body = Vec<SavedSearch>)))]
#[post("/filter")]
pub async fn filter_saved_searches(state: Data<ApiState>, body: Json<SavedSearchFilterBody>) -> ApiResult<HttpResponse> {
    Ok(ok(&state.core.filter_saved_searches(body.0.limit, body.0.offset).await?))
}

#[utoipa::path(tag = "SavedSearches", params(("id" = Uuid, Path)), responses((status = 200, body = SavedSearch), (status = 404)))]
#[get("")]
pub async fn read_saved_search(state: Data<ApiState>, id: Path<Uuid>) -> ApiResult<HttpResponse> {
    Ok(ok(&state.core.read_saved_search(*id).await?))
}

#[utoipa::path(tag = "SavedSearches", params(("id" = Uuid, Path)), responses((status = 204), (status = 404)))]
#[delete("")]
pub async fn delete_saved_search(state: Data<ApiState>, id: Path<Uuid>) -> ApiResult<HttpResponse> {
    state.core.delete_saved_search(*id).await?;
    Ok(no_content())
}
