//! `/ui/schemas/validate`: the UI's check of form values against a JSON schema.

use actix_web::web::Data;
use actix_web::{HttpResponse, post};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::ApiState;
use crate::error::ApiResult;
use crate::extract::Json;
use crate::routes::ok;

/// Body of `POST /ui/schemas/validate`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct SchemaValuesValidation {
    #[schema(value_type = Object)]
    pub schema: serde_json::Map<String, serde_json::Value>,
    #[schema(value_type = Object)]
    pub values: serde_json::Map<String, serde_json::Value>,
}

/// `{"errors": [...], "valid": bool}`; 422 when the schema itself is invalid.
#[utoipa::path(tag = "UI", request_body = SchemaValuesValidation, responses((status = 200, body = Object), (status = 422)))]
#[post("/schemas/validate")]
pub async fn validate_schema_values(state: Data<ApiState>, body: Json<SchemaValuesValidation>) -> ApiResult<HttpResponse> {
    let b = body.0;
    Ok(ok(&state.core.validate_schema_values(&serde_json::Value::Object(b.schema), &serde_json::Value::Object(b.values)).await?))
}
