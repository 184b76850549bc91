//! `/variables` routes.

use actix_web::web::{Data, Path};
use actix_web::{HttpResponse, delete, get, patch, post};
use prefect_core::VariableRef;
use prefect_domain::sorts::VariableSort;
use prefect_domain::variable::{Variable, VariableCreate, VariableFilter, VariableUpdate};
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::ApiState;
use crate::error::ApiResult;
use crate::extract::Json;
use crate::routes::{created, no_content, ok};

/// Body of `POST /variables/filter`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct VariableFilterBody {
    #[serde(default)]
    pub variables: Option<VariableFilter>,
    #[serde(default, deserialize_with = "crate::extract::null_as_default")]
    pub sort: VariableSort,
    #[serde(default)]
    pub limit: Option<u64>,
    #[serde(default, deserialize_with = "crate::extract::null_as_default")]
    pub offset: u64,
}

/// Body of `POST /variables/count`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct VariableCountBody {
    #[serde(default)]
    pub variables: Option<VariableFilter>,
}

#[utoipa::path(tag = "Variables", request_body = VariableCreate, responses((status = 201, body = Variable), (status = 409), (status = 422)))]
#[post("/")]
pub async fn create_variable(state: Data<ApiState>, body: Json<VariableCreate>) -> ApiResult<HttpResponse> {
    Ok(created(&state.core.create_variable(body.0).await?))
}

#[utoipa::path(tag = "Variables", request_body = VariableFilterBody, responses((status = 200, body = Vec<Variable>)))]
#[post("/filter")]
pub async fn filter_variables(state: Data<ApiState>, body: Json<VariableFilterBody>) -> ApiResult<HttpResponse> {
    let b = body.0;
    Ok(ok(&state.core.filter_variables(b.variables.as_ref(), b.sort, b.limit, b.offset).await?))
}

#[utoipa::path(tag = "Variables", request_body = VariableCountBody, responses((status = 200, body = u64)))]
#[post("/count")]
pub async fn count_variables(state: Data<ApiState>, body: Json<VariableCountBody>) -> ApiResult<HttpResponse> {
    Ok(ok(&state.core.count_variables(body.0.variables.as_ref()).await?))
}

#[utoipa::path(tag = "Variables", responses((status = 200, body = Variable), (status = 404)))]
#[get("/name/{name}")]
pub async fn read_variable_by_name(state: Data<ApiState>, name: Path<String>) -> ApiResult<HttpResponse> {
    Ok(ok(&state.core.read_variable(VariableRef::Name(&name)).await?))
}

#[utoipa::path(tag = "Variables", request_body = VariableUpdate, responses((status = 204), (status = 404)))]
#[patch("/name/{name}")]
pub async fn update_variable_by_name(state: Data<ApiState>, name: Path<String>, body: Json<VariableUpdate>) -> ApiResult<HttpResponse> {
    state.core.update_variable(VariableRef::Name(&name), body.0).await?;
    Ok(no_content())
}

#[utoipa::path(tag = "Variables", responses((status = 204), (status = 404)))]
#[delete("/name/{name}")]
pub async fn delete_variable_by_name(state: Data<ApiState>, name: Path<String>) -> ApiResult<HttpResponse> {
    state.core.delete_variable(VariableRef::Name(&name)).await?;
    Ok(no_content())
}

#[utoipa::path(tag = "Variables", params(("id" = Uuid, Path)), responses((status = 200, body = Variable), (status = 404)))]
#[get("")]
pub async fn read_variable(state: Data<ApiState>, id: Path<Uuid>) -> ApiResult<HttpResponse> {
    Ok(ok(&state.core.read_variable(VariableRef::Id(*id)).await?))
}

#[utoipa::path(tag = "Variables", params(("id" = Uuid, Path)), request_body = VariableUpdate, responses((status = 204), (status = 404)))]
#[patch("")]
pub async fn update_variable(state: Data<ApiState>, id: Path<Uuid>, body: Json<VariableUpdate>) -> ApiResult<HttpResponse> {
    state.core.update_variable(VariableRef::Id(*id), body.0).await?;
    Ok(no_content())
}

#[utoipa::path(tag = "Variables", params(("id" = Uuid, Path)), responses((status = 204), (status = 404)))]
#[delete("")]
pub async fn delete_variable(state: Data<ApiState>, id: Path<Uuid>) -> ApiResult<HttpResponse> {
    state.core.delete_variable(VariableRef::Id(*id)).await?;
    Ok(no_content())
}
