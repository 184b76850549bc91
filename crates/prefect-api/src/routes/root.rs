//! Health, version and CSRF routes.

use actix_web::web::{Data, Query};
use actix_web::{HttpResponse, get};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::ApiState;
use crate::error::{ApiError, ApiResult};
use crate::routes::ok;

/// Liveness: always `true` while the process serves requests.
#[utoipa::path(tag = "Root", responses((status = 200, body = bool)))]
#[get("/health")]
pub async fn health() -> HttpResponse {
    ok(&true)
}

/// Readiness: 200 when the database answers, 503 otherwise.
#[utoipa::path(tag = "Root", responses((status = 200, body = Object), (status = 503)))]
#[get("/ready")]
pub async fn ready(state: Data<ApiState>) -> HttpResponse {
    match state.core.ready().await {
        Ok(()) => ok(&serde_json::json!({"message": "OK"})),
        Err(_) => HttpResponse::ServiceUnavailable().json(serde_json::json!({"message": "Database is not available"})),
    }
}

/// The API version (`0.8.4`).
#[utoipa::path(tag = "Root", responses((status = 200, body = String)))]
#[get("/version")]
pub async fn version() -> HttpResponse {
    ok(&prefect_domain::API_VERSION)
}

/// A friendly greeting.
#[utoipa::path(tag = "Root", responses((status = 200, body = String)))]
#[get("/hello")]
pub async fn hello() -> HttpResponse {
    ok(&"👋")
}

#[derive(Deserialize, IntoParams)]
pub struct CsrfQuery {
    /// The client asking for a token.
    client: String,
}

/// A CSRF token for `client`. With CSRF protection off (the default) the
/// answer is 422 "CSRF protection is disabled.", which tells clients to skip CSRF headers.
#[utoipa::path(tag = "Root", params(CsrfQuery), responses((status = 200, body = Object), (status = 422)))]
#[get("/csrf-token")]
pub async fn csrf_token(state: Data<ApiState>, query: Query<CsrfQuery>) -> ApiResult<HttpResponse> {
    if !state.settings.csrf_protection_enabled {
        return Err(ApiError::Core(prefect_core::Error::Invalid { field: None, message: "CSRF protection is disabled.".to_owned() }));
    }
    let token = state.core.issue_csrf_token(&query.client, state.settings.csrf_token_expiration_seconds).await?;
    Ok(ok(&token))
}
