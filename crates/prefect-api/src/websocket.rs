//! What every websocket route shares: Prefect's subprotocol handshake, reading text frames, closing.

use std::future::Future;

use actix_web::web::Payload;
use actix_web::{HttpRequest, HttpResponse};
use actix_ws::{AggregatedMessage, AggregatedMessageStream, CloseCode, CloseReason, Session};
use serde_json::{Value, json};

/// Largest websocket frame accepted (Prefect's event size limit is 1.5 MB).
const MAX_FRAME_BYTES: usize = 4 * 1024 * 1024;

/// Whether the client asked for Prefect's subprotocol.
fn offers_prefect_protocol(req: &HttpRequest) -> bool {
    req.headers().get_all("sec-websocket-protocol").filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).any(|p| p.trim() == "prefect")
}

pub(crate) async fn close(session: Session, code: CloseCode, reason: &str) {
    let _ = session.close(Some(CloseReason { code, description: Some(reason.to_owned()) })).await;
}

/// The next text frame, answering pings on the way; `None` when the socket closed.
pub(crate) async fn next_text(session: &mut Session, stream: &mut AggregatedMessageStream) -> Option<String> {
    while let Some(message) = stream.recv().await {
        match message {
            Ok(AggregatedMessage::Text(text)) => return Some(text.to_string()),
            Ok(AggregatedMessage::Binary(bytes)) => {
                return Some(String::from_utf8_lossy(&bytes).into_owned());
            }
            Ok(AggregatedMessage::Ping(bytes)) => {
                if session.pong(&bytes).await.is_err() {
                    return None;
                }
            }
            Ok(AggregatedMessage::Pong(_)) => {}
            Ok(AggregatedMessage::Close(_)) | Err(_) => return None,
        }
    }
    None
}

/// Prefect's websocket handshake: with the `prefect` subprotocol the first frame
/// must be `{"type": "auth", "token": …}`, answered with `{"type": "auth_success"}`.
/// Returns `false` (after closing) when the client fails it.
async fn handshake(session: &mut Session, stream: &mut AggregatedMessageStream, prefect_protocol: bool, auth: Option<&str>) -> bool {
    if !prefect_protocol {
        if auth.is_some() {
            close(session.clone(), CloseCode::Protocol, "Auth required but no subprotocol").await;
            return false;
        }
        return true;
    }
    let Some(text) = next_text(session, stream).await else {
        return false;
    };
    let message: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    if message.get("type").and_then(Value::as_str) != Some("auth") {
        close(session.clone(), CloseCode::Policy, "Expected 'auth' message").await;
        return false;
    }
    if let Some(expected) = auth {
        match message.get("token").and_then(Value::as_str) {
            None => {
                close(session.clone(), CloseCode::Policy, "Auth required but no token provided").await;
                return false;
            }
            Some(token) if !crate::auth::constant_time_eq(token.as_bytes(), expected.as_bytes()) => {
                close(session.clone(), CloseCode::Policy, "Invalid token").await;
                return false;
            }
            Some(_) => {}
        }
    }
    session.text(json!({"type": "auth_success"}).to_string()).await.is_ok()
}

/// Answers a websocket upgrade that speaks Prefect's protocol: on its own task, runs the
/// handshake (`auth` is the configured auth string), then hands the session and its frames
/// to `serve`.
pub(crate) fn accept<F, Fut>(req: &HttpRequest, body: Payload, auth: Option<String>, serve: F) -> actix_web::Result<HttpResponse>
where
    F: FnOnce(Session, AggregatedMessageStream) -> Fut + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let prefect_protocol = offers_prefect_protocol(req);
    let (response, mut session, stream) = actix_ws::handle_with_protocols(req, body, &["prefect"])?;
    let mut stream = stream.max_frame_size(MAX_FRAME_BYTES).aggregate_continuations().max_continuation_size(MAX_FRAME_BYTES);
    actix_web::rt::spawn(async move {
        if handshake(&mut session, &mut stream, prefect_protocol, auth.as_deref()).await {
            serve(session, stream).await;
        }
    });
    Ok(response)
}
