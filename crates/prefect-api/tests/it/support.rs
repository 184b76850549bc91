//! Shared setup for the integration tests.

use futures_util::{SinkExt, StreamExt};
use prefect_testing::TestApp;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// A unique name for objects created by one test.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", &uuid::Uuid::new_v4().simple().to_string()[..10])
}

/// Creates a flow and returns its id.
pub async fn flow(app: &TestApp) -> String {
    let (status, body) = app.post("flows/", json!({"name": unique("flow")})).await;
    assert_eq!(status, 201, "{body}");
    body["id"].as_str().expect("flow id").to_owned()
}

/// Creates a flow run with the given extra fields and returns it.
pub async fn flow_run(app: &TestApp, flow_id: &str, extra: Value) -> Value {
    let mut body = json!({"flow_id": flow_id});
    if let (Some(target), Value::Object(more)) = (body.as_object_mut(), extra) {
        target.extend(more);
    }
    let (status, run) = app.post("flow_runs/", body).await;
    assert_eq!(status, 201, "{run}");
    run
}

/// Proposes a state; returns the HTTP status and the orchestration result.
pub async fn set_state(app: &TestApp, kind: &str, id: &str, state_type: &str, force: bool) -> (u16, Value) {
    app.post(&format!("{kind}/{id}/set_state"), json!({"state": {"type": state_type}, "force": force})).await
}

pub fn id(value: &Value) -> String {
    value["id"].as_str().expect("id").to_owned()
}

/// A websocket to `path`, past Prefect's `prefect` subprotocol handshake.
pub async fn connect(app: &TestApp, path: &str) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let url = app.url(path).replacen("http://", "ws://", 1);
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert("Sec-WebSocket-Protocol", "prefect".parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    ws.send(Message::text(json!({"type": "auth", "token": null}).to_string())).await.unwrap();
    let reply = ws.next().await.unwrap().unwrap();
    assert_eq!(serde_json::from_str::<Value>(reply.to_text().unwrap()).unwrap(), json!({"type": "auth_success"}));
    ws
}
