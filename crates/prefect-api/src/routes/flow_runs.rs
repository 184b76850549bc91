//! `/flow_runs` routes.

use actix_web::web::{Data, Path};
use actix_web::{HttpResponse, delete, get, patch, post};
use prefect_domain::filters::RunFilters;
use prefect_domain::flow_run::{FlowRun, FlowRunCreate, FlowRunUpdate, HistoryResponse};
use prefect_domain::graph::Graph;
use prefect_domain::labels::KeyValueLabels;
use prefect_domain::sorts::FlowRunSort;
use prefect_domain::state::{OrchestrationResult, SetStateRequest, SetStateStatus, State, StateCreate, StateResponseDetails};
use prefect_domain::time::DateTime;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::ApiState;
use crate::error::ApiResult;
use crate::extract::{Client, Json};
use crate::routes::flows::{BulkDeleteResponse, bulk_limit, first_page};
use crate::routes::{created_or_ok, no_content, ok};

/// Body of `POST /flow_runs/filter` (also `/count` without paging).
#[derive(Debug, Deserialize, ToSchema)]
pub struct FlowRunFilterBody {
    #[serde(flatten)]
    pub filters: RunFilters,
    #[serde(default)]
    pub sort: FlowRunSort,
    #[serde(default)]
    pub limit: Option<u64>,
    #[serde(default, deserialize_with = "crate::extract::null_as_default")]
    pub offset: u64,
}

/// Body of `POST /flow_runs/count`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct FlowRunCountBody {
    #[serde(flatten)]
    pub filters: RunFilters,
}

/// Body of `POST /flow_runs/paginate`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct FlowRunPaginateBody {
    #[serde(flatten)]
    pub filters: RunFilters,
    #[serde(default)]
    pub sort: FlowRunSort,
    #[serde(default)]
    pub limit: Option<u64>,
    #[serde(default = "first_page")]
    pub page: u64,
}

/// A page of flow runs.
#[derive(Debug, Serialize, ToSchema)]
pub struct FlowRunPaginationResponse {
    pub results: Vec<FlowRun>,
    pub count: u64,
    pub limit: u64,
    pub pages: u64,
    pub page: u64,
}

/// Body of `POST /flow_runs/history` (also used by task runs).
#[derive(Debug, Deserialize, ToSchema)]
pub struct HistoryBody {
    pub history_start: DateTime,
    pub history_end: DateTime,
    /// Seconds per bucket (at least 1).
    #[schema(value_type = f64)]
    pub history_interval_seconds: serde_json::Value,
    #[serde(flatten)]
    pub filters: RunFilters,
}

impl HistoryBody {
    /// Seconds per bucket: a number, or an ISO 8601 duration like `PT1H` (pydantic accepts both).
    pub fn interval_seconds(&self) -> Option<f64> {
        match &self.history_interval_seconds {
            serde_json::Value::Number(n) => n.as_f64(),
            serde_json::Value::String(s) => s.parse::<f64>().ok().or_else(|| iso_duration(s)),
            _ => None,
        }
    }
}

fn iso_duration(s: &str) -> Option<f64> {
    let rest = s.strip_prefix('P')?;
    let (date, clock) = rest.split_once('T').unwrap_or((rest, ""));
    let mut total = 0.0;
    let mut number = String::new();
    for (part, units) in [(date, [('W', 604_800.0), ('D', 86_400.0), ('\0', 0.0)]), (clock, [('H', 3600.0), ('M', 60.0), ('S', 1.0)])] {
        for c in part.chars() {
            match units.iter().find(|(u, _)| *u == c) {
                Some((_, factor)) => total += std::mem::take(&mut number).parse::<f64>().ok()? * factor,
                None => number.push(c),
            }
        }
    }
    Some(total)
}

/// Body of bulk deletes.
#[derive(Debug, Deserialize, ToSchema)]
pub struct FlowRunBulkDeleteBody {
    pub flow_runs: Option<prefect_domain::filters::FlowRunFilter>,
    #[serde(default = "bulk_limit")]
    pub limit: u64,
}

/// Body of `POST /flow_runs/bulk_set_state`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct FlowRunBulkSetStateBody {
    #[serde(default)]
    pub flow_runs: Option<prefect_domain::filters::FlowRunFilter>,
    pub state: StateCreate,
    #[serde(default)]
    pub force: bool,
    #[serde(default = "bulk_limit")]
    pub limit: u64,
}

/// One run's outcome in a bulk state change.
#[derive(Debug, Serialize, ToSchema)]
pub struct FlowRunOrchestrationResult {
    pub flow_run_id: Uuid,
    pub status: SetStateStatus,
    pub state: Option<State>,
    pub details: StateResponseDetails,
}

/// Response of `POST /flow_runs/bulk_set_state`.
#[derive(Debug, Serialize, ToSchema)]
pub struct FlowRunBulkSetStateResponse {
    pub results: Vec<FlowRunOrchestrationResult>,
}

/// Body of `POST /flow_runs/{id}/input`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct FlowRunInputCreate {
    pub key: String,
    pub value: String,
    #[serde(default)]
    pub sender: Option<String>,
}

/// Body of `POST /flow_runs/{id}/input/filter`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct FlowRunInputFilter {
    pub prefix: String,
    #[serde(default = "one")]
    pub limit: u64,
    #[serde(default)]
    pub exclude_keys: Vec<String>,
}

fn one() -> u64 {
    1
}

/// A flow run input as returned by the API.
#[derive(Debug, Serialize, ToSchema)]
pub struct FlowRunInput {
    pub id: Uuid,
    pub created: DateTime,
    pub updated: DateTime,
    pub flow_run_id: Uuid,
    pub key: String,
    pub value: String,
    pub sender: Option<String>,
}

impl From<prefect_core::FlowRunInput> for FlowRunInput {
    fn from(i: prefect_core::FlowRunInput) -> Self {
        FlowRunInput { id: i.id, created: i.created, updated: i.updated, flow_run_id: i.flow_run_id, key: i.key, value: i.value, sender: i.sender }
    }
}

/// Creates a flow run (201), or returns the existing run with the same idempotency key (200).
#[utoipa::path(tag = "Flow Runs", request_body = FlowRunCreate, responses((status = 201, body = FlowRun), (status = 200, body = FlowRun)))]
#[post("/")]
pub async fn create_flow_run(state: Data<ApiState>, client: Client, body: Json<FlowRunCreate>) -> ApiResult<HttpResponse> {
    // The open-source server records no creator for runs created through the API.
    let (run, created) = state.core.create_flow_run(body.0, None, &client.0).await?;
    Ok(created_or_ok(created, &run))
}

#[utoipa::path(tag = "Flow Runs", params(("id" = Uuid, Path)), responses((status = 200, body = FlowRun), (status = 404)))]
#[get("")]
pub async fn read_flow_run(state: Data<ApiState>, id: Path<Uuid>) -> ApiResult<HttpResponse> {
    Ok(ok(&state.core.read_flow_run(*id).await?))
}

#[utoipa::path(tag = "Flow Runs", params(("id" = Uuid, Path)), request_body = FlowRunUpdate, responses((status = 204), (status = 404)))]
#[patch("")]
pub async fn update_flow_run(state: Data<ApiState>, id: Path<Uuid>, body: Json<FlowRunUpdate>) -> ApiResult<HttpResponse> {
    state.core.update_flow_run(*id, body.0).await?;
    Ok(no_content())
}

#[utoipa::path(tag = "Flow Runs", params(("id" = Uuid, Path)), responses((status = 204), (status = 404)))]
#[delete("")]
pub async fn delete_flow_run(state: Data<ApiState>, id: Path<Uuid>) -> ApiResult<HttpResponse> {
    state.core.delete_flow_run(*id).await?;
    Ok(no_content())
}

#[utoipa::path(tag = "Flow Runs", request_body = FlowRunFilterBody, responses((status = 200, body = Vec<FlowRun>)))]
#[post("/filter")]
pub async fn filter_flow_runs(state: Data<ApiState>, body: Json<FlowRunFilterBody>) -> ApiResult<HttpResponse> {
    let b = body.0;
    Ok(ok(&state.core.filter_flow_runs(&b.filters, b.sort, b.limit, b.offset).await?))
}

#[utoipa::path(tag = "Flow Runs", request_body = FlowRunCountBody, responses((status = 200, body = u64)))]
#[post("/count")]
pub async fn count_flow_runs(state: Data<ApiState>, body: Json<FlowRunCountBody>) -> ApiResult<HttpResponse> {
    Ok(ok(&state.core.count_flow_runs(&body.0.filters).await?))
}

/// Average lateness in seconds of the matching runs (`null` when none match).
#[utoipa::path(tag = "Flow Runs", request_body = FlowRunCountBody, responses((status = 200, body = Option<f64>)))]
#[post("/lateness")]
pub async fn average_flow_run_lateness(state: Data<ApiState>, body: Json<FlowRunCountBody>) -> ApiResult<HttpResponse> {
    Ok(ok(&state.core.average_flow_run_lateness(&body.0.filters).await?))
}

#[utoipa::path(tag = "Flow Runs", request_body = FlowRunPaginateBody, responses((status = 200, body = FlowRunPaginationResponse)))]
#[post("/paginate")]
pub async fn paginate_flow_runs(state: Data<ApiState>, body: Json<FlowRunPaginateBody>) -> ApiResult<HttpResponse> {
    let b = body.0;
    let p = state.core.paginate_flow_runs(&b.filters, b.sort, b.limit, b.page.max(1)).await?;
    Ok(ok(&FlowRunPaginationResponse { results: p.results, count: p.count, limit: p.limit, pages: p.pages, page: p.page }))
}

#[utoipa::path(tag = "Flow Runs", request_body = HistoryBody, responses((status = 200, body = Vec<HistoryResponse>)))]
#[post("/history")]
pub async fn flow_run_history(state: Data<ApiState>, body: Json<HistoryBody>) -> ApiResult<HttpResponse> {
    let b = body.0;
    let interval = b.interval_seconds().ok_or_else(|| {
        crate::error::ApiError::invalid(&["body", "history_interval_seconds"], "Input should be a valid timedelta", b.history_interval_seconds.clone())
    })?;
    Ok(ok(&state.core.flow_run_history(b.history_start, b.history_end, interval, &b.filters).await?))
}

/// Proposes one state for up to `limit` (at most 50) runs matching the filter, each orchestrated on its own.
#[utoipa::path(tag = "Flow Runs", request_body = FlowRunBulkSetStateBody, responses((status = 200, body = FlowRunBulkSetStateResponse), (status = 422)))]
#[post("/bulk_set_state")]
pub async fn bulk_set_flow_run_state(state: Data<ApiState>, client: Client, body: Json<FlowRunBulkSetStateBody>) -> ApiResult<HttpResponse> {
    let b = body.0;
    if !(1..=bulk_limit()).contains(&b.limit) {
        let message = format!("Input should be greater than or equal to 1 and less than or equal to {}", bulk_limit());
        return Err(crate::error::ApiError::invalid(&["body", "limit"], message, serde_json::json!(b.limit)));
    }
    let filters = RunFilters { flow_runs: b.flow_runs, ..Default::default() };
    let outcomes = state.core.bulk_set_flow_run_state(&filters, b.state, b.force, b.limit, &client.0).await?;
    let results = outcomes
        .into_iter()
        .map(|(flow_run_id, outcome)| match outcome {
            Ok(r) => FlowRunOrchestrationResult { flow_run_id, status: r.status, state: r.state, details: r.details },
            Err(reason) => FlowRunOrchestrationResult {
                flow_run_id,
                status: SetStateStatus::Abort,
                state: None,
                details: StateResponseDetails::AbortDetails { reason: Some(reason) },
            },
        })
        .collect();
    Ok(ok(&FlowRunBulkSetStateResponse { results }))
}

#[utoipa::path(tag = "Flow Runs", request_body = FlowRunBulkDeleteBody, responses((status = 200, body = BulkDeleteResponse)))]
#[post("/bulk_delete")]
pub async fn bulk_delete_flow_runs(state: Data<ApiState>, body: Json<FlowRunBulkDeleteBody>) -> ApiResult<HttpResponse> {
    let b = body.0;
    let filters = RunFilters { flow_runs: b.flow_runs, ..Default::default() };
    let deleted = state.core.bulk_delete_flow_runs(&filters, b.limit.clamp(1, 200)).await?;
    Ok(ok(&BulkDeleteResponse { deleted }))
}

/// Proposes a state. 201 when a new state was written, 200 otherwise (REJECT to the current state, WAIT, ABORT).
#[utoipa::path(tag = "Flow Runs", params(("id" = Uuid, Path)), request_body = SetStateRequest, responses((status = 201, body = OrchestrationResult), (status = 200, body = OrchestrationResult), (status = 404)))]
#[post("/set_state")]
pub async fn set_flow_run_state(state: Data<ApiState>, id: Path<Uuid>, client: Client, body: Json<SetStateRequest>) -> ApiResult<HttpResponse> {
    let SetStateRequest { state: proposed, force } = body.0;
    let outcome = state.core.set_flow_run_state(*id, proposed, force, &client.0).await?;
    Ok(created_or_ok(outcome.created, &outcome.result))
}

/// Merges labels into the run's labels.
#[utoipa::path(tag = "Flow Runs", params(("id" = Uuid, Path)), request_body = Object, responses((status = 204), (status = 404)))]
#[patch("/labels")]
pub async fn update_flow_run_labels(state: Data<ApiState>, id: Path<Uuid>, body: Json<KeyValueLabels>) -> ApiResult<HttpResponse> {
    state.core.update_flow_run_labels(*id, body.0).await?;
    Ok(no_content())
}

#[utoipa::path(tag = "Flow Runs", params(("id" = Uuid, Path)), request_body = FlowRunInputCreate, responses((status = 201), (status = 404), (status = 409)))]
#[post("/input")]
pub async fn create_flow_run_input(state: Data<ApiState>, id: Path<Uuid>, body: Json<FlowRunInputCreate>) -> ApiResult<HttpResponse> {
    let b = body.0;
    state.core.create_flow_run_input(*id, &b.key, &b.value, b.sender.as_deref()).await?;
    Ok(HttpResponse::Created().finish())
}

#[utoipa::path(tag = "Flow Runs", params(("id" = Uuid, Path)), request_body = FlowRunInputFilter, responses((status = 200, body = Vec<FlowRunInput>)))]
#[post("/input/filter")]
pub async fn filter_flow_run_inputs(state: Data<ApiState>, id: Path<Uuid>, body: Json<FlowRunInputFilter>) -> ApiResult<HttpResponse> {
    let b = body.0;
    let inputs = state.core.filter_flow_run_inputs(*id, &b.prefix, b.limit, &b.exclude_keys).await?;
    Ok(ok(&inputs.into_iter().map(FlowRunInput::from).collect::<Vec<_>>()))
}

/// The stored value of an input (raw JSON text).
#[utoipa::path(tag = "Flow Runs", params(("id" = Uuid, Path), ("key" = String, Path)), responses((status = 200), (status = 404)))]
#[get("/input/{key}")]
pub async fn read_flow_run_input(state: Data<ApiState>, path: Path<(Uuid, String)>) -> ApiResult<HttpResponse> {
    let (id, key) = path.into_inner();
    let input = state.core.read_flow_run_input(id, &key).await?;
    Ok(HttpResponse::Ok().content_type("application/json").body(input.value))
}

#[utoipa::path(tag = "Flow Runs", params(("id" = Uuid, Path), ("key" = String, Path)), responses((status = 204), (status = 404)))]
#[delete("/input/{key}")]
pub async fn delete_flow_run_input(state: Data<ApiState>, path: Path<(Uuid, String)>) -> ApiResult<HttpResponse> {
    let (id, key) = path.into_inner();
    state.core.delete_flow_run_input(id, &key).await?;
    Ok(no_content())
}

/// The run's logs as CSV.
#[utoipa::path(tag = "Flow Runs", params(("id" = Uuid, Path)), responses((status = 200, content_type = "text/csv"), (status = 404)))]
#[get("/logs/download")]
pub async fn download_logs(state: Data<ApiState>, id: Path<Uuid>) -> ApiResult<HttpResponse> {
    let run = state.core.read_flow_run(*id).await?;
    let logs = state.core.all_flow_run_logs(run.id).await?;
    let mut csv = String::from("timestamp,level,flow_run_id,task_run_id,message\n");
    for log in logs {
        let message = log.message.replace('"', "\"\"");
        csv.push_str(&format!(
            "{},{},{},{},\"{}\"\n",
            log.timestamp.to_rfc3339_opts(chrono::SecondsFormat::Micros, false),
            log.level,
            log.flow_run_id.map(|id| id.to_string()).unwrap_or_default(),
            log.task_run_id.map(|id| id.to_string()).unwrap_or_default(),
            message
        ));
    }
    Ok(HttpResponse::Ok().content_type("text/csv").insert_header(("Content-Disposition", format!("attachment; filename={}-logs.csv", run.name))).body(csv))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct GraphQuery {
    /// Only nodes that ended at or after this time (or have not ended).
    #[serde(default)]
    since: Option<DateTime>,
}

/// The run's task runs and subflows as a dependency graph; 400 when it has too many nodes.
#[utoipa::path(tag = "Flow Runs", params(GraphQuery, ("id" = Uuid, Path)), responses((status = 200, body = Graph), (status = 400), (status = 404)))]
#[get("/graph-v2")]
pub async fn read_flow_run_graph(state: Data<ApiState>, id: Path<Uuid>, query: actix_web::web::Query<GraphQuery>) -> ApiResult<HttpResponse> {
    Ok(ok(&state.core.flow_run_graph(*id, query.since).await?))
}

/// Body of `POST /flow_runs/{id}/resume`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ResumeFlowRunBody {
    /// Input for a run paused with `wait_for_input`, validated against its schema.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub run_input: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Resumes a paused run. REJECT when its run input does not validate, ABORT when it is not paused.
#[utoipa::path(tag = "Flow Runs", params(("id" = Uuid, Path)), request_body = ResumeFlowRunBody, responses((status = 201, body = OrchestrationResult), (status = 200, body = OrchestrationResult), (status = 404)))]
#[post("/resume")]
pub async fn resume_flow_run(state: Data<ApiState>, id: Path<Uuid>, client: Client, body: Json<ResumeFlowRunBody>) -> ApiResult<HttpResponse> {
    let outcome = state.core.resume_flow_run(*id, body.0.run_input, &client.0).await?;
    Ok(created_or_ok(outcome.created, &outcome.result))
}
