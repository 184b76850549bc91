//! `/templates/validate` (also under `/automations`): checks a Jinja template.

use actix_web::web::Bytes;
use actix_web::{HttpResponse, post};
use serde_json::json;

use crate::error::ApiResult;
use crate::extract::parse_json;

fn validate(body: &Bytes) -> ApiResult<HttpResponse> {
    // The body is a bare JSON string; an empty body is the empty template.
    let template: String = if body.iter().all(u8::is_ascii_whitespace) { String::new() } else { parse_json(body)? };
    Ok(match prefect_core::templates::validate_user_template(&template) {
        Ok(()) => HttpResponse::NoContent().finish(),
        Err(e) => HttpResponse::UnprocessableEntity().json(json!({"error": {"line": e.line, "message": e.message, "source": template}})),
    })
}

/// 204 when the template is valid; 422 with the line and message of the problem otherwise.
#[utoipa::path(tag = "Automations", request_body = String, responses((status = 204), (status = 422)))]
#[post("/templates/validate")]
pub async fn validate_template(body: Bytes) -> ApiResult<HttpResponse> {
    validate(&body)
}

/// The same check, under the automations router.
#[utoipa::path(tag = "Automations", request_body = String, responses((status = 204), (status = 422)))]
#[post("/templates/validate")]
pub async fn validate_automation_template(body: Bytes) -> ApiResult<HttpResponse> {
    validate(&body)
}
