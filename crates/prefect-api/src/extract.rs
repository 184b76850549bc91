//! Request extractors that fail the way FastAPI does (422 with pydantic-style
//! details) instead of actix's plain-text 400s.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::web::Bytes;
use actix_web::{FromRequest, HttpRequest};
use prefect_core::ClientInfo;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{ApiError, ValidationDetail};

/// Largest request body accepted (large parameter sets and artifacts are legitimate).
pub const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// A JSON body. An empty body reads as `{}` (FastAPI's "all fields default").
#[derive(Debug)]
pub struct Json<T>(pub T);

impl<T> Json<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

fn loc(path: &serde_path_to_error::Path) -> Vec<Value> {
    let mut out = vec![Value::String("body".to_owned())];
    for segment in path.iter() {
        match segment {
            serde_path_to_error::Segment::Seq { index } => out.push(Value::from(*index)),
            serde_path_to_error::Segment::Map { key } | serde_path_to_error::Segment::Enum { variant: key } => out.push(Value::String(key.clone())),
            serde_path_to_error::Segment::Unknown => {}
        }
    }
    out
}

/// Translates a serde error into a pydantic-like `(type, msg, extra loc)`.
fn classify(message: &str) -> (&'static str, String, Option<String>) {
    let quoted = || message.split('`').nth(1).map(str::to_owned);
    if message.starts_with("unknown field") {
        ("extra_forbidden", "Extra inputs are not permitted".to_owned(), quoted())
    } else if message.starts_with("missing field") {
        ("missing", "Field required".to_owned(), quoted())
    } else if message.starts_with("unknown variant") {
        ("enum", format!("Input should be {}", message.split("expected ").nth(1).unwrap_or("a valid value")), None)
    } else if message.starts_with("invalid type") {
        ("type_error", message.to_owned(), None)
    } else {
        ("value_error", message.to_owned(), None)
    }
}

/// Parses `bytes` as `T`, describing failures as a 422.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) { b"{}" } else { bytes };
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let request_body = || serde_json::from_slice::<Value>(bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()));
    let json_invalid = |column: usize| ValidationDetail {
        kind: "json_invalid".to_owned(),
        loc: vec![Value::String("body".to_owned()), Value::from(column)],
        msg: "JSON decode error".to_owned(),
        input: Value::Object(Default::default()),
    };
    match serde_path_to_error::deserialize::<_, T>(&mut de) {
        Ok(value) => match de.end() {
            Ok(()) => Ok(value),
            Err(e) => Err(ApiError::Validation { details: vec![json_invalid(e.column())], request_body: request_body() }),
        },
        Err(err) => {
            let inner = err.inner();
            let detail = if inner.is_syntax() || inner.is_eof() {
                json_invalid(inner.column())
            } else {
                let message = inner.to_string();
                let message = message.split(" at line ").next().unwrap_or(&message).to_owned();
                let (kind, msg, field) = classify(&message);
                let mut location = loc(err.path());
                // Unknown fields are already the last path segment; missing ones are not.
                if let Some(field) = field
                    && location.last().and_then(Value::as_str) != Some(field.as_str())
                {
                    location.push(Value::String(field));
                }
                ValidationDetail { kind: kind.to_owned(), loc: location, msg, input: Value::Null }
            };
            Err(ApiError::Validation { details: vec![detail], request_body: request_body() })
        }
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for Json<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let bytes = Bytes::from_request(req, payload);
        Box::pin(async move {
            let bytes = bytes.await.map_err(|e| ApiError::invalid(&["body"], e.to_string(), Value::Null))?;
            parse_json::<T>(&bytes).map(Json)
        })
    }
}

/// The caller's versions, from `X-PREFECT-API-VERSION` and `User-Agent: prefect/3.9.1 (API 0.8.4)`.
pub struct Client(pub ClientInfo);

impl FromRequest for Client {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(Ok(Client(client_info(req))))
    }
}

pub fn client_info(req: &HttpRequest) -> ClientInfo {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let client_version = header("user-agent").and_then(|ua| {
        let rest = ua.strip_prefix("prefect/")?;
        Some(rest.split_whitespace().next()?.to_owned())
    });
    ClientInfo { api_version: header("x-prefect-api-version"), client_version }
}

/// 422 for malformed query strings, like FastAPI.
pub fn query_error(err: actix_web::error::QueryPayloadError, _req: &HttpRequest) -> actix_web::Error {
    let message = err.to_string();
    let (kind, msg, field) = classify(message.trim_start_matches("Query deserialize error: "));
    let mut loc = vec![Value::String("query".to_owned())];
    if let Some(field) = field {
        loc.push(Value::String(field));
    }
    ApiError::Validation { details: vec![ValidationDetail { kind: kind.to_owned(), loc, msg, input: Value::Null }], request_body: Value::Null }.into()
}

/// A path segment of the wrong type means the route does not exist (Prefect declares `{id:uuid}`).
pub fn path_error(_err: actix_web::error::PathError, _req: &HttpRequest) -> actix_web::Error {
    ApiError::RouteNotFound.into()
}

/// Reads an embedded body field sent as `null` as its default, as FastAPI does for
/// body parameters with defaults (`"offset": null` means offset 0).
pub fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de> + Default,
{
    Ok(<Option<T> as serde::Deserialize>::deserialize(deserializer)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        #[serde(default)]
        limit: Option<u64>,
    }

    fn details(err: ApiError) -> Vec<ValidationDetail> {
        match err {
            ApiError::Validation { details, .. } => details,
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn unknown_and_missing_fields() {
        let d = details(parse_json::<Body>(br#"{"name":"x","bogus":1}"#).unwrap_err());
        assert_eq!(d[0].kind, "extra_forbidden");
        assert_eq!(d[0].loc, vec![Value::from("body"), Value::from("bogus")]);
        let d = details(parse_json::<Body>(b"{}").unwrap_err());
        assert_eq!(d[0].kind, "missing");
        assert_eq!(d[0].loc, vec![Value::from("body"), Value::from("name")]);
    }

    #[test]
    fn wrong_types_and_bad_json() {
        let d = details(parse_json::<Body>(br#"{"name":"x","limit":"abc"}"#).unwrap_err());
        assert_eq!(d[0].loc, vec![Value::from("body"), Value::from("limit")]);
        let d = details(parse_json::<Body>(b"{bad").unwrap_err());
        assert_eq!(d[0].kind, "json_invalid");
    }

    #[test]
    fn empty_body_is_an_empty_object() {
        assert!(parse_json::<std::collections::HashMap<String, Value>>(b"").unwrap().is_empty());
    }
}
