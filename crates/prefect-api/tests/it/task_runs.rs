use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use prefect_testing::spawn_app;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::support::{connect, flow, flow_run, id, set_state, unique};

#[tokio::test]
async fn task_runs_dedupe_on_natural_key_and_orchestrate() {
    let app = spawn_app().await;
    let run = flow_run(&app, &flow(&app).await, json!({"state": {"type": "RUNNING"}})).await;
    let body = json!({"flow_run_id": run["id"], "task_key": "k", "dynamic_key": "0", "name": "t", "state": {"type": "PENDING"}, "tags": ["a"]});
    let (first, task) = app.post("task_runs/", body.clone()).await;
    let (second, again) = app.post("task_runs/", body).await;
    assert_eq!((first, second), (201, 200));
    assert_eq!(task["id"], again["id"]);
    assert_eq!(task["labels"]["prefect.flow-run.id"], run["id"]);
    let task_id = id(&task);

    let (_, result) = set_state(&app, "task_runs", &task_id, "RUNNING", false).await;
    assert_eq!(result["status"], "ACCEPT");
    let (_, result) = set_state(&app, "task_runs", &task_id, "COMPLETED", false).await;
    assert_eq!(result["status"], "ACCEPT");
    let (_, task) = app.get(&format!("task_runs/{task_id}")).await;
    assert_eq!((task["state_type"].as_str(), task["run_count"].as_i64()), (Some("COMPLETED"), Some(1)));
    let (_, states) = app.get(&format!("task_run_states/?task_run_id={task_id}")).await;
    assert_eq!(states.as_array().unwrap().len(), 3);

    let (_, found) = app.post("task_runs/filter", json!({"flow_runs": {"id": {"any_": [run["id"]]}}, "task_runs": {"tags": {"all_": ["a"]}}})).await;
    assert_eq!(found.as_array().unwrap().len(), 1);
    let (_, count) =
        app.post("task_runs/count", json!({"task_runs": {"state": {"type": {"any_": ["COMPLETED"]}}, "flow_run_id": {"any_": [run["id"]]}}})).await;
    assert_eq!(count, json!(1));
    let (_, page) = app.post("task_runs/paginate", json!({"flow_runs": {"id": {"any_": [run["id"]]}}, "limit": 1})).await;
    assert_eq!(page["count"], 1);

    assert_eq!(app.patch(&format!("task_runs/{task_id}"), json!({"name": "renamed"})).await.0, 204);
    assert_eq!(app.get(&format!("task_runs/{task_id}")).await.1["name"], "renamed");
    assert_eq!(app.delete(&format!("task_runs/{task_id}")).await.0, 204);
    assert_eq!(app.get(&format!("task_runs/{task_id}")).await.0, 404);
}

#[tokio::test]
async fn task_run_needs_a_running_flow() {
    let app = spawn_app().await;
    let run = flow_run(&app, &flow(&app).await, json!({})).await;
    let (_, task) = app.post("task_runs/", json!({"flow_run_id": run["id"], "task_key": "k", "dynamic_key": "0", "state": {"type": "PENDING"}})).await;
    let (_, result) = set_state(&app, "task_runs", &id(&task), "RUNNING", false).await;
    assert_eq!(result["status"], "ABORT");
    assert_eq!(result["details"]["reason"], "The enclosing flow must be running to begin task execution.");
}

#[tokio::test]
async fn task_cache_returns_cached_completed_states() {
    let app = spawn_app().await;
    let run = flow_run(&app, &flow(&app).await, json!({"state": {"type": "RUNNING"}})).await;
    let make = |key: &str| json!({"flow_run_id": run["id"], "task_key": "cached", "dynamic_key": key, "state": {"type": "PENDING"}});
    let (_, first) = app.post("task_runs/", make("0")).await;
    let running = json!({"state": {"type": "RUNNING", "state_details": {"cache_key": "ck"}}});
    app.post(&format!("task_runs/{}/set_state", id(&first)), running.clone()).await;
    let completed = json!({"state": {"type": "COMPLETED", "state_details": {"cache_key": "ck"}, "data": {"storage_key": "s"}}});
    app.post(&format!("task_runs/{}/set_state", id(&first)), completed).await;
    let (_, second) = app.post("task_runs/", make("1")).await;
    let (_, result) = app.post(&format!("task_runs/{}/set_state", id(&second)), running).await;
    assert_eq!(result["status"], "REJECT");
    assert_eq!(result["state"]["name"], "Cached");
    assert_eq!(result["state"]["data"], json!({"storage_key": "s"}));
}

#[tokio::test]
async fn tag_limits_gate_task_runs_and_release_on_completion() {
    let app = spawn_app().await;
    let tag = crate::support::unique("tag");
    let (status, limit) = app.post("concurrency_limits/", json!({"tag": tag, "concurrency_limit": 1})).await;
    assert_eq!(status, 201, "{limit}");
    let run = flow_run(&app, &flow(&app).await, json!({"state": {"type": "RUNNING"}})).await;
    let make = |key: &str| json!({"flow_run_id": run["id"], "task_key": "limited", "dynamic_key": key, "tags": [tag], "state": {"type": "PENDING"}});
    let (_, a) = app.post("task_runs/", make("a")).await;
    let (_, b) = app.post("task_runs/", make("b")).await;
    let (_, result) = set_state(&app, "task_runs", &id(&a), "RUNNING", false).await;
    assert_eq!(result["status"], "ACCEPT");
    let (_, view) = app.get(&format!("concurrency_limits/tag/{tag}")).await;
    assert_eq!(view["active_slots"], json!([a["id"]]));
    let (_, result) = set_state(&app, "task_runs", &id(&b), "RUNNING", false).await;
    assert_eq!(result["status"], "WAIT");
    assert!(result["details"]["reason"].as_str().unwrap().contains(&tag));
    set_state(&app, "task_runs", &id(&a), "COMPLETED", false).await;
    let (_, result) = set_state(&app, "task_runs", &id(&b), "RUNNING", false).await;
    assert_eq!(result["status"], "ACCEPT");
}

// --- background tasks: delivery to task workers ------------------------------------------

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn subscribe(app: &prefect_testing::TestApp, keys: &[&str], client_id: &str) -> Socket {
    let mut ws = connect(app, "task_runs/subscriptions/scheduled").await;
    ws.send(Message::text(json!({"type": "subscribe", "keys": keys, "client_id": client_id}).to_string())).await.unwrap();
    ws
}

async fn receive(ws: &mut Socket) -> serde_json::Value {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(10), ws.next()).await.expect("a task run within 10 s").unwrap().unwrap();
        if let Message::Text(text) = frame {
            return serde_json::from_str(&text).unwrap();
        }
    }
}

async fn ack(ws: &mut Socket) {
    ws.send(Message::text(json!({"type": "ack"}).to_string())).await.unwrap();
}

/// The task workers `POST /task_workers/filter` reports for `key`.
async fn workers_serving(app: &prefect_testing::TestApp, key: &str) -> serde_json::Value {
    app.post("task_workers/filter", json!({"task_worker_filter": {"task_keys": [key]}})).await.1
}

async fn deferred_task_run(app: &prefect_testing::TestApp, task_key: &str) -> serde_json::Value {
    let parameters_id = uuid::Uuid::new_v4();
    let state = json!({"type": "SCHEDULED", "state_details": {"deferred": true, "task_parameters_id": parameters_id}});
    let (status, run) = app.post("task_runs/", json!({"task_key": task_key, "dynamic_key": uuid::Uuid::new_v4(), "name": "bg", "state": state})).await;
    assert_eq!(status, 201, "{run}");
    run
}

#[tokio::test]
async fn scheduled_background_tasks_reach_a_subscribed_worker_once() {
    let app = spawn_app().await;
    let key = unique("say_hello");
    let early = deferred_task_run(&app, &key).await;
    let mut worker = subscribe(&app, &[&key], "worker-1").await;
    let delivered = receive(&mut worker).await;
    assert_eq!(delivered["id"], early["id"], "a run scheduled before the worker came is delivered");
    assert_eq!(delivered["state"]["state_details"]["deferred"], true);
    assert_eq!(delivered["state"]["state_details"]["task_parameters_id"], early["state"]["state_details"]["task_parameters_id"]);
    ack(&mut worker).await;

    let late = deferred_task_run(&app, &key).await;
    let other_key = deferred_task_run(&app, &unique("other")).await;
    let delivered = receive(&mut worker).await;
    assert_eq!(delivered["id"], late["id"]);
    assert_ne!(delivered["id"], other_key["id"]);
    ack(&mut worker).await;

    let workers = workers_serving(&app, &key).await;
    assert_eq!(workers.as_array().unwrap().len(), 1, "{workers}");
    assert_eq!(workers[0]["identifier"], "worker-1");
    assert_eq!(workers[0]["task_keys"], json!([key]));
    assert_eq!(workers_serving(&app, "nobody-serves-this").await, json!([]));

    worker.close(None).await.unwrap();
    // `eventually` fails the test if the worker is still listed after 10 s.
    app.eventually(10, || async { (workers_serving(&app, &key).await == json!([])).then_some(()) }).await;
}

#[tokio::test]
async fn a_run_the_worker_did_not_acknowledge_goes_to_the_next_worker() {
    let app = spawn_app().await;
    let key = unique("flaky");
    let run = deferred_task_run(&app, &key).await;
    let mut first = subscribe(&app, &[&key], "first").await;
    assert_eq!(receive(&mut first).await["id"], run["id"]);
    drop(first); // gone without an ack

    let mut second = subscribe(&app, &[&key], "second").await;
    assert_eq!(receive(&mut second).await["id"], run["id"], "redelivered");
    ack(&mut second).await;
}

#[tokio::test]
async fn retries_of_background_tasks_are_delivered_again() {
    let app = spawn_app().await;
    let key = unique("retrying");
    let run = deferred_task_run(&app, &key).await;
    let mut worker = subscribe(&app, &[&key], "w").await;
    receive(&mut worker).await;
    ack(&mut worker).await;
    let task_id = id(&run);
    let deferred = |kind: &str, name: &str| json!({"state": {"type": kind, "name": name, "state_details": {"deferred": true}}});
    for (kind, name) in [("PENDING", "Pending"), ("RUNNING", "Running")] {
        let (_, r) = app.post(&format!("task_runs/{task_id}/set_state"), deferred(kind, name)).await;
        assert_eq!(r["status"], "ACCEPT", "{r}");
    }
    let retry = json!({"state": {"type": "SCHEDULED", "name": "AwaitingRetry", "state_details": {"deferred": true, "scheduled_time": chrono::Utc::now()}}});
    let (_, r) = app.post(&format!("task_runs/{task_id}/set_state"), retry).await;
    assert_eq!(r["status"], "ACCEPT", "{r}");
    let again = receive(&mut worker).await;
    assert_eq!((again["id"].clone(), again["state"]["name"].clone()), (run["id"].clone(), json!("AwaitingRetry")));
}

#[tokio::test]
async fn subscriptions_must_name_keys_and_a_client() {
    let app = spawn_app().await;
    for (message, reason) in [
        (json!({"type": "listen"}), "Protocol violation: expected 'subscribe' message"),
        (json!({"type": "subscribe", "keys": [], "client_id": "c"}), "Protocol violation: expected 'keys' in subscribe message"),
        (json!({"type": "subscribe", "keys": ["k"]}), "Protocol violation: expected 'client_id' in subscribe message"),
    ] {
        let mut ws = connect(&app, "task_runs/subscriptions/scheduled").await;
        ws.send(Message::text(message.to_string())).await.unwrap();
        let frame = tokio::time::timeout(Duration::from_secs(10), ws.next()).await.unwrap().unwrap().unwrap();
        let Message::Close(Some(close)) = frame else { panic!("expected a close frame, got {frame:?}") };
        assert_eq!((u16::from(close.code), close.reason.as_str()), (4001, reason));
    }
}
