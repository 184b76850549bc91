//! Server administration routes.

use actix_web::web::Data;
use actix_web::{HttpResponse, delete, get, put};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::ApiState;
use crate::error::ApiResult;
use crate::extract::Json;
use crate::routes::{no_content, ok};

/// The server's default result storage block.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ServerDefaultResultStorage {
    pub default_result_storage_block_id: Option<Uuid>,
}

/// Body of `PUT /admin/storage`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerDefaultResultStorageUpdate {
    pub default_result_storage_block_id: Uuid,
}

/// The server's settings, secrets obfuscated.
#[utoipa::path(tag = "Admin", responses((status = 200, body = Object)))]
#[get("/settings")]
pub async fn read_settings(state: Data<ApiState>) -> HttpResponse {
    ok(&state.settings.settings_dump)
}

/// The Prefect version this server is compatible with.
#[utoipa::path(tag = "Admin", responses((status = 200, body = String)))]
#[get("/version")]
pub async fn read_version() -> HttpResponse {
    ok(&prefect_domain::PREFECT_VERSION)
}

#[utoipa::path(tag = "Admin", responses((status = 200, body = ServerDefaultResultStorage)))]
#[get("/storage")]
pub async fn read_storage(state: Data<ApiState>) -> ApiResult<HttpResponse> {
    let value = state.core.read_default_result_storage().await?;
    Ok(ok(&ServerDefaultResultStorage { default_result_storage_block_id: value.default_result_storage_block_id }))
}

#[utoipa::path(tag = "Admin", request_body = ServerDefaultResultStorageUpdate, responses((status = 200, body = ServerDefaultResultStorage), (status = 404), (status = 422)))]
#[put("/storage")]
pub async fn update_storage(state: Data<ApiState>, body: Json<ServerDefaultResultStorageUpdate>) -> ApiResult<HttpResponse> {
    let value = state.core.set_default_result_storage(body.0.default_result_storage_block_id).await?;
    Ok(ok(&ServerDefaultResultStorage { default_result_storage_block_id: value.default_result_storage_block_id }))
}

#[utoipa::path(tag = "Admin", responses((status = 204)))]
#[delete("/storage")]
pub async fn clear_storage(state: Data<ApiState>) -> ApiResult<HttpResponse> {
    state.core.clear_default_result_storage().await?;
    Ok(no_content())
}
