//! `/flow_run_states` routes.

use actix_web::web::{Data, Path, Query};
use actix_web::{HttpResponse, get};
use prefect_domain::state::State;
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

use crate::ApiState;
use crate::error::ApiResult;
use crate::routes::ok;

#[derive(Deserialize, IntoParams)]
pub struct FlowRunStatesQuery {
    flow_run_id: Uuid,
}

#[utoipa::path(tag = "Flow Run States", responses((status = 200, body = State), (status = 404)))]
#[get("/{id}")]
pub async fn read_flow_run_state(state: Data<ApiState>, id: Path<Uuid>) -> ApiResult<HttpResponse> {
    Ok(ok(&state.core.read_flow_run_state(*id).await?))
}

/// Every state of a flow run, oldest first.
#[utoipa::path(tag = "Flow Run States", params(FlowRunStatesQuery), responses((status = 200, body = Vec<State>)))]
#[get("/")]
pub async fn read_flow_run_states(state: Data<ApiState>, query: Query<FlowRunStatesQuery>) -> ApiResult<HttpResponse> {
    Ok(ok(&state.core.flow_run_states(query.flow_run_id).await?))
}
