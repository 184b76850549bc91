//! `/logs` routes.

use actix_web::web::Data;
use actix_web::{HttpResponse, post};
use prefect_domain::filters::LogFilter;
use prefect_domain::log::{Log, LogCreate};
use prefect_domain::sorts::LogSort;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::ApiState;
use crate::error::ApiResult;
use crate::extract::Json;
use crate::routes::ok;

#[derive(Debug, Deserialize, ToSchema)]
pub struct LogFilterBody {
    #[serde(default)]
    pub logs: Option<LogFilter>,
    #[serde(default)]
    pub sort: LogSort,
    #[serde(default)]
    pub limit: Option<u64>,
    #[serde(default, deserialize_with = "crate::extract::null_as_default")]
    pub offset: u64,
}

/// Stores a batch of log lines (a JSON array); answers 201 with `null`.
#[utoipa::path(tag = "Logs", request_body = Vec<LogCreate>, responses((status = 201)))]
#[post("/")]
pub async fn create_logs(state: Data<ApiState>, body: Json<Vec<LogCreate>>) -> ApiResult<HttpResponse> {
    state.core.create_logs(body.0).await?;
    Ok(HttpResponse::Created().json(serde_json::Value::Null))
}

#[utoipa::path(tag = "Logs", request_body = LogFilterBody, responses((status = 200, body = Vec<Log>)))]
#[post("/filter")]
pub async fn filter_logs(state: Data<ApiState>, body: Json<LogFilterBody>) -> ApiResult<HttpResponse> {
    let b = body.0;
    Ok(ok(&state.core.filter_logs(b.logs.as_ref(), b.sort, b.limit, b.offset).await?))
}
