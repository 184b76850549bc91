//! Route handlers, one module per Prefect router.

pub mod admin;
pub mod artifacts;
pub mod automations;
pub mod blocks;
pub mod concurrency_limits;
pub mod concurrency_limits_v2;
pub mod deployments;
pub mod events;
pub mod flow_run_states;
pub mod flow_runs;
pub mod flows;
pub mod logs;
pub mod root;
pub mod saved_searches;
pub mod task_run_states;
pub mod task_runs;
pub mod templates;
pub mod ui_flows;
pub mod ui_runs;
pub mod ui_schemas;
pub mod variables;
pub mod work_pools;
pub mod work_queues;

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use serde::Serialize;

/// 200 with a JSON body.
pub fn ok<T: Serialize>(value: &T) -> HttpResponse {
    HttpResponse::Ok().json(value)
}

/// 201 when something was created, 200 when it already existed.
pub fn created_or_ok<T: Serialize>(created: bool, value: &T) -> HttpResponse {
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    HttpResponse::build(status).json(value)
}

/// 201 with a JSON body.
pub fn created<T: Serialize>(value: &T) -> HttpResponse {
    HttpResponse::Created().json(value)
}

/// 204 without a body.
pub fn no_content() -> HttpResponse {
    HttpResponse::NoContent().finish()
}
