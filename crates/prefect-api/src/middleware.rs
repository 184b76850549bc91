//! Request middleware: API version check, basic auth, CSRF, the in-flight cap and CORS.

use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::web::Data;
use tokio::sync::Semaphore;

use crate::error::ApiError;
use crate::{ApiSettings, ApiState};

/// Rejects (400) an `X-PREFECT-API-VERSION` that is malformed or older than 0.8.0.
pub async fn check_api_version(req: ServiceRequest, next: Next<impl MessageBody>) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    if let Some(value) = req.headers().get("x-prefect-api-version") {
        let text = value.to_str().unwrap_or_default();
        let parts: Vec<Option<u32>> = text.split('.').map(|p| p.parse().ok()).collect();
        match parts.as_slice() {
            [Some(major), Some(minor), Some(patch)] => {
                if (*major, *minor, *patch) < (0, 8, 0) {
                    return Err(
                        ApiError::BadHeader(format!("The request specified API version {text} but this server requires version 0.8.0 or higher.")).into()
                    );
                }
            }
            _ => return Err(ApiError::BadHeader(format!("Invalid X-PREFECT-API-VERSION header format: {text:?}")).into()),
        }
    }
    next.call(req).await
}

fn is_websocket(req: &ServiceRequest) -> bool {
    req.headers().get("upgrade").and_then(|v| v.to_str().ok()).is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

fn state(req: &ServiceRequest) -> Option<Data<ApiState>> {
    req.app_data::<Data<ApiState>>().cloned()
}

/// HTTP Basic auth when an auth string is configured. Health checks and websocket
/// upgrades (which authenticate in their first frame) are exempt.
pub async fn basic_auth(req: ServiceRequest, next: Next<impl MessageBody>) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    if let Some(state) = state(&req)
        && let Some(expected) = state.settings.auth_string.as_deref()
    {
        let path = req.path();
        let exempt = path == "/api/health" || path == "/api/ready" || is_websocket(&req);
        let header = req.headers().get("authorization").and_then(|v| v.to_str().ok());
        if !exempt && !crate::auth::authorized(header, expected) {
            return Err(ApiError::Unauthorized.into());
        }
    }
    next.call(req).await
}

/// CSRF protection (off by default): state-changing requests need the client's token.
pub async fn csrf(req: ServiceRequest, next: Next<impl MessageBody>) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    if let Some(state) = state(&req)
        && state.settings.csrf_protection_enabled
        && matches!(*req.method(), Method::POST | Method::PUT | Method::PATCH | Method::DELETE)
    {
        let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let Some(token) = header("prefect-csrf-token") else { return Err(ApiError::Csrf("Missing CSRF token.".to_owned()).into()) };
        let Some(client) = header("prefect-csrf-client") else {
            return Err(ApiError::Csrf("Missing client identifier.".to_owned()).into());
        };
        if !state.core.check_csrf_token(&client, &token).await.map_err(ApiError::from)? {
            return Err(ApiError::Csrf("Invalid CSRF token or client identifier.".to_owned()).into());
        }
    }
    next.call(req).await
}

/// Caps requests served at once; the rest wait their turn.
#[derive(Clone)]
pub struct InFlight(pub Option<Arc<Semaphore>>);

pub async fn in_flight_limit(req: ServiceRequest, next: Next<impl MessageBody>) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let limiter = req.app_data::<Data<InFlight>>().and_then(|l| l.0.clone());
    let _permit = match limiter {
        Some(semaphore) => Some(semaphore.acquire_owned().await.map_err(|_| ApiError::Core(prefect_core::Error::Unavailable("shutting down".to_owned())))?),
        None => None,
    };
    next.call(req).await
}

/// CORS from the configured origins, methods and headers.
pub fn cors(settings: &ApiSettings) -> actix_cors::Cors {
    let split = |s: &str| s.split(',').map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned).collect::<Vec<_>>();
    let mut cors = actix_cors::Cors::default().max_age(3600);
    let origins = split(&settings.cors_allowed_origins);
    if origins.iter().any(|o| o == "*") {
        cors = cors.allow_any_origin().send_wildcard();
    } else {
        for origin in &origins {
            cors = cors.allowed_origin(origin);
        }
    }
    let methods = split(&settings.cors_allowed_methods);
    cors = if methods.iter().any(|m| m == "*") {
        cors.allow_any_method()
    } else {
        cors.allowed_methods(methods.iter().filter_map(|m| Method::from_bytes(m.as_bytes()).ok()).collect::<Vec<_>>())
    };
    let headers = split(&settings.cors_allowed_headers);
    if headers.iter().any(|h| h == "*") {
        cors.allow_any_header()
    } else {
        cors.allowed_headers(headers.iter().filter_map(|h| actix_web::http::header::HeaderName::from_bytes(h.as_bytes()).ok()).collect::<Vec<_>>())
    }
}
