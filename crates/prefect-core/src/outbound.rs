//! Outgoing HTTP for automation actions: `call-webhook` through a Webhook block, and
//! `send-notification` through the notification blocks whose delivery is plain HTTP.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde_json::{Map, Value, json};

/// How long a webhook may take to answer (Prefect's custom webhook block waits 10 s).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Response bodies in action events are cut to this many characters, head and tail.
const RESPONSE_BODY_LIMIT: usize = 1000;

/// The shared client: rustls with the ring provider and the Mozilla roots, built once.
pub(crate) fn client() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        let roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
        let builder = reqwest::Client::builder().timeout(REQUEST_TIMEOUT);
        let builder =
            match rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider())).with_safe_default_protocol_versions() {
                Ok(tls) => builder.tls_backend_preconfigured(tls.with_root_certificates(roots).with_no_client_auth()),
                Err(error) => {
                    tracing::error!(%error, "TLS is unavailable for webhooks; only plain HTTP will work.");
                    builder
                }
            };
        builder.build().unwrap_or_else(|error| {
            tracing::error!(%error, "Could not build the webhook client; using a default one.");
            reqwest::Client::new()
        })
    })
}

/// A request an action makes.
pub(crate) struct Outgoing {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub query: Vec<(String, String)>,
    pub body: Body,
}

pub(crate) enum Body {
    None,
    Text(String),
    Json(Value),
    Form(Vec<(String, String)>),
}

/// What came back: the status and the details Prefect reports in the action's event.
pub(crate) struct Answer {
    pub status: u16,
    pub details: Map<String, Value>,
}

/// Sends the request; `Err` carries the transport error (no answer at all).
pub(crate) async fn send(request: Outgoing) -> Result<Answer, String> {
    let method = reqwest::Method::from_bytes(request.method.to_ascii_uppercase().as_bytes()).map_err(|e| e.to_string())?;
    let url = if request.query.is_empty() { reqwest::Url::parse(&request.url) } else { reqwest::Url::parse_with_params(&request.url, &request.query) };
    let mut builder = client().request(method, url.map_err(|e| format!("invalid URL: {e}"))?);
    for (name, value) in &request.headers {
        builder = builder.header(name, value);
    }
    builder = match request.body {
        Body::None => builder,
        Body::Text(text) => builder.body(text),
        Body::Json(value) => builder.header("content-type", "application/json").body(value.to_string()),
        Body::Form(pairs) => {
            let encoded = reqwest::Url::parse_with_params("http://form.invalid/", &pairs).map_err(|e| e.to_string())?.query().unwrap_or_default().to_owned();
            builder.header("content-type", "application/x-www-form-urlencoded").body(encoded)
        }
    };
    let response = builder.send().await.map_err(|e| describe(&e))?;
    let status = response.status().as_u16();
    let headers: Map<String, Value> = response
        .headers()
        .iter()
        .filter(|(name, _)| reportable_header(name.as_str()))
        .map(|(name, value)| (name.as_str().to_owned(), json!(String::from_utf8_lossy(value.as_bytes()))))
        .collect();
    let text = response.text().await.unwrap_or_default();
    let mut details = Map::new();
    details.insert("status_code".to_owned(), json!(status));
    details.insert("response_body".to_owned(), json!(truncated(&text)));
    details.insert("response_headers".to_owned(), Value::Object(headers));
    Ok(Answer { status, details })
}

/// The error and its causes, e.g. "error sending request: connection refused".
fn describe(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Headers that may carry credentials or tracing internals are not reported.
fn reportable_header(name: &str) -> bool {
    const HIDDEN: [&str; 3] = ["authorization", "traceparent", "via"];
    const HIDDEN_PREFIXES: [&str; 5] = ["x-forwarded", "x-b3", "x-cloud-trace", "x-envoy", "x-prefect"];
    !HIDDEN.contains(&name) && !HIDDEN_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// Prefect's cut of a long body: the first and last halves and how much was left out.
fn truncated(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    if chars.len() <= RESPONSE_BODY_LIMIT {
        return text.to_owned();
    }
    let half = RESPONSE_BODY_LIMIT / 2;
    let head: String = chars[..half].iter().collect();
    let tail: String = chars[chars.len() - half..].iter().collect();
    format!("{head}...{} additional characters...{tail}", chars.len() - RESPONSE_BODY_LIMIT)
}

/// Prefect's `apply_values`: `{{ name }}` placeholders in strings (recursively in objects
/// and arrays) take the named value; a string that is only a placeholder takes the value
/// itself, JSON type and all. Unknown placeholders leave the string out, as Prefect does.
pub(crate) fn apply_values(template: &Value, values: &Map<String, Value>) -> Option<Value> {
    match template {
        Value::String(text) => apply_to_string(text, values),
        Value::Object(map) => Some(Value::Object(map.iter().filter_map(|(k, v)| apply_values(v, values).map(|v| (k.clone(), v))).collect())),
        Value::Array(items) => Some(Value::Array(items.iter().filter_map(|v| apply_values(v, values)).collect())),
        other => Some(other.clone()),
    }
}

fn apply_to_string(text: &str, values: &Map<String, Value>) -> Option<Value> {
    let placeholders = placeholders(text);
    if placeholders.is_empty() {
        return Some(Value::String(text.to_owned()));
    }
    if let [(whole, name)] = placeholders.as_slice()
        && whole == text
    {
        return values.get(name).cloned();
    }
    let mut out = text.to_owned();
    for (whole, name) in placeholders {
        let value = values.get(&name)?;
        let rendered = match value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        out = out.replace(&whole, &rendered);
    }
    Some(Value::String(out))
}

/// `(placeholder as written, name)` for each `{{ name }}` in the text.
fn placeholders(text: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let mut rest = text;
    let mut offset = 0;
    while let Some(start) = rest.find("{{") {
        let Some(len) = rest[start..].find("}}") else { break };
        let whole = &rest[start..start + len + 2];
        let name = whole[2..whole.len() - 2].trim();
        if !name.is_empty() && name.chars().all(|c| c.is_alphanumeric() || matches!(c, '_' | '.' | '-')) {
            found.push((whole.to_owned(), name.to_owned()));
        }
        offset += start + len + 2;
        rest = &text[offset..];
    }
    found
}

/// String pairs of a JSON object (`params`, `headers`, `cookies`, form fields).
pub(crate) fn string_pairs(value: Option<&Value>) -> Vec<(String, String)> {
    value
        .and_then(Value::as_object)
        .map(|map| {
            map.iter()
                .map(|(k, v)| {
                    let v = match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    (k.clone(), v)
                })
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_fill_placeholders_and_a_lone_placeholder_keeps_its_type() {
        let values: Map<String, Value> = serde_json::from_value(json!({"subject": "Hi", "count": 3, "token": "s3cret"})).unwrap();
        let template = json!({"text": "{{subject}}: {{ count }} runs", "n": "{{count}}", "auth": "Bearer {{token}}", "missing": "{{nope}}", "plain": 1});
        assert_eq!(apply_values(&template, &values).unwrap(), json!({"text": "Hi: 3 runs", "n": 3, "auth": "Bearer s3cret", "plain": 1}));
    }

    #[test]
    fn long_bodies_keep_their_head_and_tail() {
        let body = format!("{}{}", "a".repeat(600), "b".repeat(600));
        let cut = truncated(&body);
        assert!(cut.starts_with(&"a".repeat(500)) && cut.ends_with(&"b".repeat(500)));
        assert!(cut.contains("...200 additional characters..."));
        assert_eq!(truncated("short"), "short");
        assert!(!reportable_header("authorization") && !reportable_header("x-prefect-thing") && reportable_header("content-type"));
    }
}
