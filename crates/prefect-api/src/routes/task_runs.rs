//! `/task_runs` routes.

use actix_web::web::{Data, Path, Payload};
use actix_web::{HttpRequest, HttpResponse, delete, get, patch, post};
use actix_ws::{AggregatedMessage, AggregatedMessageStream, CloseCode, Session};
use prefect_core::Lane;
use prefect_domain::filters::RunFilters;
use prefect_domain::flow_run::HistoryResponse;
use prefect_domain::sorts::TaskRunSort;
use prefect_domain::state::{OrchestrationResult, SetStateRequest};
use prefect_domain::task_run::{TaskRun, TaskRunCreate, TaskRunUpdate, TaskWorkerResponse};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::ApiState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Client, Json};
use crate::routes::flow_runs::HistoryBody;
use crate::routes::flows::first_page;
use crate::routes::{created_or_ok, no_content, ok};
use crate::websocket::{self, close, next_text};

#[derive(Debug, Deserialize, ToSchema)]
pub struct TaskRunFilterBody {
    #[serde(flatten)]
    pub filters: RunFilters,
    #[serde(default)]
    pub sort: TaskRunSort,
    #[serde(default)]
    pub limit: Option<u64>,
    #[serde(default, deserialize_with = "crate::extract::null_as_default")]
    pub offset: u64,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct TaskRunCountBody {
    #[serde(flatten)]
    pub filters: RunFilters,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct TaskRunPaginateBody {
    #[serde(flatten)]
    pub filters: RunFilters,
    #[serde(default)]
    pub sort: TaskRunSort,
    #[serde(default)]
    pub limit: Option<u64>,
    #[serde(default = "first_page")]
    pub page: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TaskRunPaginationResponse {
    pub results: Vec<TaskRun>,
    pub count: u64,
    pub limit: u64,
    pub pages: u64,
    pub page: u64,
}

/// Creates a task run (201), or returns the one with the same flow run, task key and dynamic key (200).
#[utoipa::path(tag = "Task Runs", request_body = TaskRunCreate, responses((status = 201, body = TaskRun), (status = 200, body = TaskRun)))]
#[post("/")]
pub async fn create_task_run(state: Data<ApiState>, client: Client, body: Json<TaskRunCreate>) -> ApiResult<HttpResponse> {
    let (run, created) = state.core.create_task_run(body.0, &client.0).await?;
    Ok(created_or_ok(created, &run))
}

#[utoipa::path(tag = "Task Runs", params(("id" = Uuid, Path)), responses((status = 200, body = TaskRun), (status = 404)))]
#[get("")]
pub async fn read_task_run(state: Data<ApiState>, id: Path<Uuid>) -> ApiResult<HttpResponse> {
    Ok(ok(&state.core.read_task_run(*id).await?))
}

#[utoipa::path(tag = "Task Runs", params(("id" = Uuid, Path)), request_body = TaskRunUpdate, responses((status = 204), (status = 404)))]
#[patch("")]
pub async fn update_task_run(state: Data<ApiState>, id: Path<Uuid>, body: Json<TaskRunUpdate>) -> ApiResult<HttpResponse> {
    state.core.update_task_run(*id, body.0).await?;
    Ok(no_content())
}

#[utoipa::path(tag = "Task Runs", params(("id" = Uuid, Path)), responses((status = 204), (status = 404)))]
#[delete("")]
pub async fn delete_task_run(state: Data<ApiState>, id: Path<Uuid>) -> ApiResult<HttpResponse> {
    state.core.delete_task_run(*id).await?;
    Ok(no_content())
}

#[utoipa::path(tag = "Task Runs", request_body = TaskRunFilterBody, responses((status = 200, body = Vec<TaskRun>)))]
#[post("/filter")]
pub async fn filter_task_runs(state: Data<ApiState>, body: Json<TaskRunFilterBody>) -> ApiResult<HttpResponse> {
    let b = body.0;
    Ok(ok(&state.core.filter_task_runs(&b.filters, b.sort, b.limit, b.offset).await?))
}

#[utoipa::path(tag = "Task Runs", request_body = TaskRunCountBody, responses((status = 200, body = u64)))]
#[post("/count")]
pub async fn count_task_runs(state: Data<ApiState>, body: Json<TaskRunCountBody>) -> ApiResult<HttpResponse> {
    Ok(ok(&state.core.count_task_runs(&body.0.filters).await?))
}

#[utoipa::path(tag = "Task Runs", request_body = TaskRunPaginateBody, responses((status = 200, body = TaskRunPaginationResponse)))]
#[post("/paginate")]
pub async fn paginate_task_runs(state: Data<ApiState>, body: Json<TaskRunPaginateBody>) -> ApiResult<HttpResponse> {
    let b = body.0;
    let p = state.core.paginate_task_runs(&b.filters, b.sort, b.limit, b.page.max(1)).await?;
    Ok(ok(&TaskRunPaginationResponse { results: p.results, count: p.count, limit: p.limit, pages: p.pages, page: p.page }))
}

#[utoipa::path(tag = "Task Runs", request_body = HistoryBody, responses((status = 200, body = Vec<HistoryResponse>)))]
#[post("/history")]
pub async fn task_run_history(state: Data<ApiState>, body: Json<HistoryBody>) -> ApiResult<HttpResponse> {
    let b = body.0;
    let interval = b
        .interval_seconds()
        .ok_or_else(|| ApiError::invalid(&["body", "history_interval_seconds"], "Input should be a valid timedelta", b.history_interval_seconds.clone()))?;
    Ok(ok(&state.core.task_run_history(b.history_start, b.history_end, interval, &b.filters).await?))
}

/// Proposes a state with the task run policy (server-side orchestration).
#[utoipa::path(tag = "Task Runs", params(("id" = Uuid, Path)), request_body = SetStateRequest, responses((status = 201, body = OrchestrationResult), (status = 200, body = OrchestrationResult), (status = 404)))]
#[post("/set_state")]
pub async fn set_task_run_state(state: Data<ApiState>, id: Path<Uuid>, client: Client, body: Json<SetStateRequest>) -> ApiResult<HttpResponse> {
    let SetStateRequest { state: proposed, force } = body.0;
    let outcome = state.core.set_task_run_state(*id, proposed, force, &client.0).await?;
    Ok(created_or_ok(outcome.created, &outcome.result))
}

/// Body of `POST /task_workers/filter`.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct TaskWorkerFilterBody {
    #[serde(default)]
    pub task_worker_filter: Option<TaskWorkerFilter>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct TaskWorkerFilter {
    #[serde(default)]
    pub task_keys: Vec<String>,
}

/// The task workers connected to this server; with task keys, those serving any of them.
#[utoipa::path(tag = "Task Workers", request_body = TaskWorkerFilterBody, responses((status = 200, body = Vec<TaskWorkerResponse>)))]
#[post("/task_workers/filter")]
pub async fn filter_task_workers(state: Data<ApiState>, body: Option<Json<TaskWorkerFilterBody>>) -> ApiResult<HttpResponse> {
    let keys = body.and_then(|b| b.0.task_worker_filter).map(|f| f.task_keys).unwrap_or_default();
    Ok(ok(&state.core.task_workers().list(&keys)))
}

/// Prefect's close code for a client that breaks the subscription protocol.
const PROTOCOL_VIOLATION: u16 = 4001;

/// Delivers scheduled background task runs to a task worker. After the handshake the worker
/// sends `{"type": "subscribe", "keys": [task keys], "client_id": …}`; the server then sends
/// one task run at a time and waits for `{"type": "ack"}` before the next (`{"type": "quit"}`
/// ends the subscription). A run the worker did not acknowledge goes back to the front of its
/// queue for the next worker.
#[utoipa::path(tag = "Task Runs", responses((status = 101)))]
#[get("/subscriptions/scheduled")]
pub async fn scheduled_task_subscription(req: HttpRequest, body: Payload, state: Data<ApiState>) -> actix_web::Result<HttpResponse> {
    let state = state.into_inner();
    let auth = state.settings.auth_string.clone();
    websocket::accept(&req, body, auth, move |mut session, mut stream| async move {
        let Some(text) = next_text(&mut session, &mut stream).await else {
            return;
        };
        let (keys, client_id) = match subscription(&text) {
            Ok(subscribed) => subscribed,
            Err(reason) => {
                close(session, CloseCode::Other(PROTOCOL_VIOLATION), reason).await;
                return;
            }
        };
        tracing::info!(%client_id, ?keys, "Task worker subscribed.");
        let workers = state.core.task_workers();
        workers.observe(&client_id, &keys);
        deliver(&mut session, &mut stream, &state.core, &keys, &client_id).await;
        workers.forget(&client_id);
    })
}

/// The task keys and client id of a subscribe message, or why it was refused, in Prefect's words.
fn subscription(text: &str) -> Result<(Vec<String>, String), &'static str> {
    let message: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    if message.get("type").and_then(Value::as_str) != Some("subscribe") {
        return Err("Protocol violation: expected 'subscribe' message");
    }
    let keys: Vec<String> =
        message.get("keys").and_then(Value::as_array).map(|keys| keys.iter().filter_map(|k| k.as_str().map(str::to_owned)).collect()).unwrap_or_default();
    if keys.is_empty() {
        return Err("Protocol violation: expected 'keys' in subscribe message");
    }
    let client_id = message.get("client_id").and_then(Value::as_str).filter(|c| !c.is_empty());
    let client_id = client_id.ok_or("Protocol violation: expected 'client_id' in subscribe message")?;
    Ok((keys, client_id.to_owned()))
}

/// Sends runs for `keys` until the worker leaves; keeps the worker marked as seen meanwhile.
async fn deliver(session: &mut Session, stream: &mut AggregatedMessageStream, core: &prefect_core::Core, keys: &[String], client_id: &str) {
    let (queues, workers) = (core.task_queues(), core.task_workers());
    let mut seen = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        // Taking is cancel-safe: a run is only removed when `take` returns it.
        let run = tokio::select! {
            run = queues.take(keys) => run,
            incoming = stream.recv() => match incoming {
                Some(Ok(AggregatedMessage::Ping(bytes))) => {
                    if session.pong(&bytes).await.is_err() {
                        return;
                    }
                    continue;
                }
                Some(Ok(AggregatedMessage::Close(_))) | Some(Err(_)) | None => return,
                Some(Ok(_)) => continue,
            },
            _ = seen.tick() => {
                workers.observe(client_id, keys);
                continue;
            }
        };
        let body = match serde_json::to_string(&run) {
            Ok(body) => body,
            Err(e) => {
                tracing::error!(task_run_id = %run.id, error = %e, "Could not encode a task run for a task worker.");
                continue;
            }
        };
        if session.text(body).await.is_err() {
            queues.put(run, Lane::Retry).await;
            return;
        }
        let reply = next_text(session, stream).await.map(|text| serde_json::from_str::<Value>(&text).unwrap_or(Value::Null));
        match reply.as_ref().and_then(|r| r.get("type")).and_then(Value::as_str) {
            Some("ack") => workers.observe(client_id, std::slice::from_ref(&run.task_key)),
            Some("quit") => {
                let _ = session.clone().close(None).await;
                return;
            }
            _ => {
                tracing::debug!(task_run_id = %run.id, "Task worker left without acknowledging; the run goes back to its queue.");
                queues.put(run, Lane::Retry).await;
                if reply.is_some() {
                    close(session.clone(), CloseCode::Other(PROTOCOL_VIOLATION), "Protocol violation: expected 'ack' message").await;
                }
                return;
            }
        }
    }
}
