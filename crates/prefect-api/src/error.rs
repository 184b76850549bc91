//! The one place that knows HTTP status codes: `ApiError` and its JSON bodies.

use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderValue, RETRY_AFTER};
use actix_web::{HttpResponse, ResponseError};
use serde_json::{Value, json};

/// One entry of a 422 `exception_detail`, shaped like a pydantic error.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ValidationDetail {
    #[serde(rename = "type")]
    pub kind: String,
    pub loc: Vec<Value>,
    pub msg: String,
    pub input: Value,
}

/// Every way a request can fail, mapped to Prefect's status codes and bodies.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A use case refused or failed.
    #[error(transparent)]
    Core(#[from] prefect_core::Error),
    /// The request body, query or path did not validate (422 with pydantic-style details).
    #[error("Invalid request received.")]
    Validation { details: Vec<ValidationDetail>, request_body: Value },
    /// No such route, or a path segment that does not match its type (404).
    #[error("Not Found")]
    RouteNotFound,
    /// A request header is unacceptable (400).
    #[error("{0}")]
    BadHeader(String),
    /// Missing or wrong credentials (401).
    #[error("Unauthorized")]
    Unauthorized,
    /// CSRF checks failed (403).
    #[error("{0}")]
    Csrf(String),
}

impl ApiError {
    /// A 422 for one invalid field.
    pub fn invalid(loc: &[&str], msg: impl Into<String>, input: Value) -> ApiError {
        ApiError::Validation {
            details: vec![ValidationDetail {
                kind: "value_error".to_owned(),
                loc: loc.iter().map(|s| Value::String((*s).to_owned())).collect(),
                msg: msg.into(),
                input,
            }],
            request_body: Value::Null,
        }
    }

    fn detail(&self) -> Value {
        json!({"detail": self.to_string()})
    }
}

fn validation_body(details: Vec<ValidationDetail>, request_body: Value) -> Value {
    json!({"exception_message": "Invalid request received.", "exception_detail": details, "request_body": request_body})
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        use prefect_core::Error as C;
        match self {
            ApiError::Core(C::NotFound(_)) | ApiError::RouteNotFound => StatusCode::NOT_FOUND,
            ApiError::Core(C::Conflict(_)) => StatusCode::CONFLICT,
            ApiError::Core(C::Invalid { .. }) | ApiError::Validation { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Core(C::BadRequest(_)) | ApiError::BadHeader(_) => StatusCode::BAD_REQUEST,
            ApiError::Core(C::Forbidden(_)) | ApiError::Csrf(_) => StatusCode::FORBIDDEN,
            ApiError::Core(C::Locked { .. }) => StatusCode::LOCKED,
            ApiError::Core(C::Gone(_)) => StatusCode::GONE,
            ApiError::Core(C::Busy(_)) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Core(C::Unavailable(_)) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Core(C::Internal(_)) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
        }
    }

    fn error_response(&self) -> HttpResponse {
        use prefect_core::Error as C;
        let status = self.status_code();
        let mut builder = HttpResponse::build(status);
        let body = match self {
            ApiError::Validation { details, request_body } => validation_body(details.clone(), request_body.clone()),
            ApiError::Core(C::Invalid { field: Some(field), message }) => validation_body(
                vec![ValidationDetail {
                    kind: "value_error".to_owned(),
                    // List positions are numbers in pydantic's locations (`["body", "actions", 0]`).
                    loc: std::iter::once("body")
                        .chain(field.split('.').filter(|s| !s.is_empty()))
                        .map(|s| s.parse::<u64>().map_or_else(|_| Value::String(s.to_owned()), Value::from))
                        .collect(),
                    msg: message.clone(),
                    input: Value::Null,
                }],
                Value::Null,
            ),
            ApiError::Core(C::Invalid { field: None, message }) => json!({"detail": message}),
            ApiError::Core(C::Locked { detail, retry_after }) => {
                if let Some(delay) = retry_after
                    && let Ok(value) = HeaderValue::from_str(&format!("{:.3}", delay.as_secs_f64()))
                {
                    builder.insert_header((RETRY_AFTER, value));
                }
                json!({"detail": detail.clone().unwrap_or_else(|| "Concurrency limit reached".to_owned())})
            }
            ApiError::Core(C::Busy(message)) => {
                builder.insert_header((RETRY_AFTER, HeaderValue::from_static("1")));
                json!({"detail": message})
            }
            ApiError::Core(C::Unavailable(error)) => {
                tracing::warn!(%error, "Retryable storage error; answering 503.");
                builder.insert_header((RETRY_AFTER, HeaderValue::from_static("1")));
                json!({"exception_message": "Service Unavailable"})
            }
            ApiError::Core(C::Internal(error)) => {
                tracing::error!(%error, "Request failed.");
                json!({"exception_message": "Internal Server Error"})
            }
            ApiError::Unauthorized => json!({"exception_message": "Unauthorized"}),
            _ => self.detail(),
        };
        builder.json(body)
    }
}

/// Result alias for handlers.
pub type ApiResult<T> = Result<T, ApiError>;
