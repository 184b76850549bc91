//! `/artifacts` routes.

use actix_web::web::{Data, Path};
use actix_web::{HttpResponse, delete, get, patch, post};
use prefect_domain::artifact::{Artifact, ArtifactCollection, ArtifactCreate, ArtifactUpdate};
use prefect_domain::filters::{ArtifactFilter, RunFilters};
use prefect_domain::sorts::{ArtifactCollectionSort, ArtifactSort};
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::ApiState;
use crate::error::ApiResult;
use crate::extract::Json;
use crate::routes::{created, no_content, ok};

#[derive(Debug, Deserialize, ToSchema)]
pub struct ArtifactFilterBody {
    #[serde(default)]
    pub artifacts: Option<ArtifactFilter>,
    #[serde(flatten)]
    pub runs: RunFilters,
    #[serde(default)]
    pub sort: ArtifactSort,
    #[serde(default)]
    pub limit: Option<u64>,
    #[serde(default, deserialize_with = "crate::extract::null_as_default")]
    pub offset: u64,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ArtifactCollectionFilterBody {
    #[serde(default)]
    pub artifacts: Option<ArtifactFilter>,
    #[serde(flatten)]
    pub runs: RunFilters,
    #[serde(default)]
    pub sort: ArtifactCollectionSort,
    #[serde(default)]
    pub limit: Option<u64>,
    #[serde(default, deserialize_with = "crate::extract::null_as_default")]
    pub offset: u64,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ArtifactCountBody {
    #[serde(default)]
    pub artifacts: Option<ArtifactFilter>,
    #[serde(flatten)]
    pub runs: RunFilters,
}

#[utoipa::path(tag = "Artifacts", request_body = ArtifactCreate, responses((status = 201, body = Artifact)))]
#[post("/")]
pub async fn create_artifact(state: Data<ApiState>, body: Json<ArtifactCreate>) -> ApiResult<HttpResponse> {
    Ok(created(&state.core.create_artifact(body.0).await?))
}

#[utoipa::path(tag = "Artifacts", params(("id" = Uuid, Path)), responses((status = 200, body = Artifact), (status = 404)))]
#[get("")]
pub async fn read_artifact(state: Data<ApiState>, id: Path<Uuid>) -> ApiResult<HttpResponse> {
    Ok(ok(&state.core.read_artifact(*id).await?))
}

#[utoipa::path(tag = "Artifacts", responses((status = 200, body = Artifact), (status = 404)))]
#[get("/{key}/latest")]
pub async fn read_latest_artifact(state: Data<ApiState>, key: Path<String>) -> ApiResult<HttpResponse> {
    Ok(ok(&state.core.read_latest_artifact(&key).await?))
}

#[utoipa::path(tag = "Artifacts", params(("id" = Uuid, Path)), request_body = ArtifactUpdate, responses((status = 204), (status = 404)))]
#[patch("")]
pub async fn update_artifact(state: Data<ApiState>, id: Path<Uuid>, body: Json<ArtifactUpdate>) -> ApiResult<HttpResponse> {
    state.core.update_artifact(*id, body.0).await?;
    Ok(no_content())
}

#[utoipa::path(tag = "Artifacts", params(("id" = Uuid, Path)), responses((status = 204), (status = 404)))]
#[delete("")]
pub async fn delete_artifact(state: Data<ApiState>, id: Path<Uuid>) -> ApiResult<HttpResponse> {
    state.core.delete_artifact(*id).await?;
    Ok(no_content())
}

#[utoipa::path(tag = "Artifacts", request_body = ArtifactFilterBody, responses((status = 200, body = Vec<Artifact>)))]
#[post("/filter")]
pub async fn filter_artifacts(state: Data<ApiState>, body: Json<ArtifactFilterBody>) -> ApiResult<HttpResponse> {
    let b = body.0;
    Ok(ok(&state.core.filter_artifacts(b.artifacts.as_ref(), &b.runs, b.sort, b.limit, b.offset).await?))
}

#[utoipa::path(tag = "Artifacts", request_body = ArtifactCountBody, responses((status = 200, body = u64)))]
#[post("/count")]
pub async fn count_artifacts(state: Data<ApiState>, body: Json<ArtifactCountBody>) -> ApiResult<HttpResponse> {
    let b = body.0;
    Ok(ok(&state.core.count_artifacts(b.artifacts.as_ref(), &b.runs).await?))
}

/// The latest artifact of every key matching the filter.
#[utoipa::path(tag = "Artifacts", request_body = ArtifactCollectionFilterBody, responses((status = 200, body = Vec<ArtifactCollection>)))]
#[post("/latest/filter")]
pub async fn filter_latest_artifacts(state: Data<ApiState>, body: Json<ArtifactCollectionFilterBody>) -> ApiResult<HttpResponse> {
    let b = body.0;
    Ok(ok(&state.core.filter_latest_artifacts(b.artifacts.as_ref(), &b.runs, b.sort, b.limit, b.offset).await?))
}

#[utoipa::path(tag = "Artifacts", request_body = ArtifactCountBody, responses((status = 200, body = u64)))]
#[post("/latest/count")]
pub async fn count_latest_artifacts(state: Data<ApiState>, body: Json<ArtifactCountBody>) -> ApiResult<HttpResponse> {
    let b = body.0;
    Ok(ok(&state.core.count_latest_artifacts(b.artifacts.as_ref(), &b.runs).await?))
}
