//! `/task_run_states` routes.

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
pub struct TaskRunStatesQuery {
    task_run_id: Uuid,
}

#[utoipa::path(tag = "Task Run States", responses((status = 200, body = State), (status = 404)))]
#[get("/{id}")]
pub async fn read_task_run_state(state: Data<ApiState>, id: Path<Uuid>) -> ApiResult<HttpResponse> {
    Ok(ok(&state.core.read_task_run_state(*id).await?))
}

/// Every state of a task run, oldest first.
#[utoipa::path(tag = "Task Run States", params(TaskRunStatesQuery), responses((status = 200, body = Vec<State>)))]
#[get("/")]
pub async fn read_task_run_states(state: Data<ApiState>, query: Query<TaskRunStatesQuery>) -> ApiResult<HttpResponse> {
    Ok(ok(&state.core.task_run_states(query.task_run_id).await?))
}
