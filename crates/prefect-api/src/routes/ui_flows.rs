//! `/ui/flows/*`: the per-flow summaries the UI's flows page asks for.

use actix_web::web::Data;
use actix_web::{HttpResponse, post};
use prefect_domain::flow_run::SimpleNextFlowRun;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::ApiState;
use crate::error::{ApiError, ApiResult};
use crate::extract::Json;
use crate::routes::ok;

/// Most flows one request may ask about (Prefect's `max_length`).
const MAX_FLOW_IDS: usize = 200;

/// Body of the `/ui/flows/*` routes.
#[derive(Debug, Deserialize, ToSchema)]
pub struct FlowIdsBody {
    pub flow_ids: Vec<Uuid>,
}

impl FlowIdsBody {
    fn checked(self) -> ApiResult<Vec<Uuid>> {
        if self.flow_ids.len() > MAX_FLOW_IDS {
            let message = format!("List should have at most {MAX_FLOW_IDS} items after validation, not {}", self.flow_ids.len());
            return Err(ApiError::invalid(&["body", "flow_ids"], message, json!(self.flow_ids)));
        }
        Ok(self.flow_ids)
    }
}

/// Deployments per flow: `{flow_id: count}` for every flow asked about.
#[utoipa::path(tag = "UI", request_body = FlowIdsBody, responses((status = 200, body = Object), (status = 422)))]
#[post("/flows/count-deployments")]
pub async fn count_deployments_by_flow(state: Data<ApiState>, body: Json<FlowIdsBody>) -> ApiResult<HttpResponse> {
    let ids = body.0.checked()?;
    let counts = state.core.count_deployments_by_flow(&ids).await?;
    let out: Map<String, Value> = counts.into_iter().map(|(id, n)| (id.to_string(), Value::from(n))).collect();
    Ok(ok(&out))
}

/// Each flow's soonest Scheduled run: `{flow_id: run or null}` for every flow asked about.
#[utoipa::path(tag = "UI", request_body = FlowIdsBody, responses((status = 200, body = Object), (status = 422)))]
#[post("/flows/next-runs")]
pub async fn next_runs_by_flow(state: Data<ApiState>, body: Json<FlowIdsBody>) -> ApiResult<HttpResponse> {
    let ids = body.0.checked()?;
    let next = state.core.next_runs_by_flow(&ids).await?;
    let out: Map<String, Value> = next.into_iter().map(|(id, run): (Uuid, Option<SimpleNextFlowRun>)| (id.to_string(), json!(run))).collect();
    Ok(ok(&out))
}
