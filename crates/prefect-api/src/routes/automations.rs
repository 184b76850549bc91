//! `/automations` routes.

use actix_web::web::{Data, Path};
use actix_web::{HttpResponse, delete, get, patch, post, put};
use prefect_domain::automation::{Automation, AutomationCreate, AutomationFilter, AutomationPartialUpdate, AutomationUpdate};
use prefect_domain::sorts::AutomationSort;
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::ApiState;
use crate::error::ApiResult;
use crate::extract::Json;
use crate::routes::{created, no_content, ok};

/// Body of `POST /automations/filter`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct AutomationFilterBody {
    #[serde(default)]
    pub automations: Option<AutomationFilter>,
    #[serde(default, deserialize_with = "crate::extract::null_as_default")]
    pub sort: AutomationSort,
    #[serde(default)]
    pub limit: Option<u64>,
    #[serde(default, deserialize_with = "crate::extract::null_as_default")]
    pub offset: u64,
}

/// Body of `POST /automations/count`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct AutomationCountBody {
    #[serde(default)]
    pub automations: Option<AutomationFilter>,
}

/// Creates an automation; the server assigns the ids of its triggers.
#[utoipa::path(tag = "Automations", request_body = AutomationCreate, responses((status = 201, body = Automation), (status = 422)))]
#[post("/")]
pub async fn create_automation(state: Data<ApiState>, body: Json<AutomationCreate>) -> ApiResult<HttpResponse> {
    Ok(created(&state.core.create_automation(body.0).await?))
}

/// Replaces an automation's definition.
#[utoipa::path(tag = "Automations", params(("id" = Uuid, Path)), request_body = AutomationUpdate, responses((status = 204), (status = 404), (status = 422)))]
#[put("")]
pub async fn update_automation(state: Data<ApiState>, id: Path<Uuid>, body: Json<AutomationUpdate>) -> ApiResult<HttpResponse> {
    state.core.update_automation(*id, body.0).await?;
    Ok(no_content())
}

/// Turns an automation on or off.
#[utoipa::path(tag = "Automations", params(("id" = Uuid, Path)), request_body = AutomationPartialUpdate, responses((status = 204), (status = 404), (status = 422)))]
#[patch("")]
pub async fn patch_automation(state: Data<ApiState>, id: Path<Uuid>, body: Json<AutomationPartialUpdate>) -> ApiResult<HttpResponse> {
    state.core.set_automation_enabled(*id, body.0.enabled).await?;
    Ok(no_content())
}

#[utoipa::path(tag = "Automations", params(("id" = Uuid, Path)), responses((status = 204), (status = 404)))]
#[delete("")]
pub async fn delete_automation(state: Data<ApiState>, id: Path<Uuid>) -> ApiResult<HttpResponse> {
    state.core.delete_automation(*id).await?;
    Ok(no_content())
}

#[utoipa::path(tag = "Automations", params(("id" = Uuid, Path)), responses((status = 200, body = Automation), (status = 404)))]
#[get("")]
pub async fn read_automation(state: Data<ApiState>, id: Path<Uuid>) -> ApiResult<HttpResponse> {
    Ok(ok(&state.core.read_automation(*id).await?))
}

#[utoipa::path(tag = "Automations", request_body = AutomationFilterBody, responses((status = 200, body = Vec<Automation>)))]
#[post("/filter")]
pub async fn filter_automations(state: Data<ApiState>, body: Json<AutomationFilterBody>) -> ApiResult<HttpResponse> {
    let b = body.0;
    Ok(ok(&state.core.filter_automations(b.automations.as_ref(), b.sort, b.limit, b.offset).await?))
}

#[utoipa::path(tag = "Automations", request_body = AutomationCountBody, responses((status = 200, body = u64)))]
#[post("/count")]
pub async fn count_automations(state: Data<ApiState>, body: Json<AutomationCountBody>) -> ApiResult<HttpResponse> {
    Ok(ok(&state.core.count_automations(body.0.automations.as_ref()).await?))
}

/// Automations related to a resource, e.g. `prefect.deployment.<id>` (those that run it or belong to it).
#[utoipa::path(tag = "Automations", responses((status = 200, body = Vec<Automation>)))]
#[get("/related-to/{resource_id}")]
pub async fn read_automations_related_to(state: Data<ApiState>, resource_id: Path<String>) -> ApiResult<HttpResponse> {
    Ok(ok(&state.core.automations_related_to(&resource_id).await?))
}

/// Deletes the automations a resource owns (a deployment's triggers, before it is deployed again).
#[utoipa::path(tag = "Automations", responses((status = 202)))]
#[delete("/owned-by/{resource_id}")]
pub async fn delete_automations_owned_by(state: Data<ApiState>, resource_id: Path<String>) -> ApiResult<HttpResponse> {
    state.core.delete_automations_owned_by(&resource_id).await?;
    Ok(HttpResponse::Accepted().finish())
}
