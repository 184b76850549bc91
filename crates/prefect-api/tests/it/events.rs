use futures_util::{SinkExt, StreamExt};
use prefect_testing::spawn_app;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::support::{connect, flow, flow_run, id, set_state, unique};

fn event(name: &str, resource: &str, related: Value) -> Value {
    json!({"id": uuid::Uuid::new_v4(), "occurred": chrono::Utc::now(), "event": name,
           "resource": {"prefect.resource.id": resource}, "related": related, "payload": {"k": 1}})
}

#[tokio::test]
async fn events_are_persisted_filtered_paged_and_counted() {
    let app = spawn_app().await;
    let name = format!("test.{}", unique("evt"));
    let resource = format!("test.resource.{}", unique("r"));
    let batch: Vec<Value> =
        (0..3).map(|_| event(&name, &resource, json!([{"prefect.resource.id": "test.related", "prefect.resource.role": "tester"}]))).collect();
    assert_eq!(app.post("events", json!(batch)).await.0, 204);
    assert_eq!(app.post("events", json!(batch)).await.0, 204, "duplicates are accepted and ignored");

    let filter = json!({"filter": {"event": {"name": [name]}}, "limit": 2});
    let page = app
        .eventually(10, || async {
            let (_, p) = app.post("events/filter", filter.clone()).await;
            (p["total"] == 3).then_some(p)
        })
        .await;
    assert_eq!(page["events"].as_array().unwrap().len(), 2);
    let next = page["next_page"].as_str().unwrap();
    let (_, rest) = {
        let r = app.client.get(next).send().await.unwrap();
        (r.status().as_u16(), r.json::<Value>().await.unwrap())
    };
    assert_eq!(rest["events"].as_array().unwrap().len(), 1);
    assert_eq!(rest["next_page"], Value::Null);

    let (_, related) = app.post("events/filter", json!({"filter": {"related": {"id": ["test.related"], "role": ["tester"]}, "event": {"name": [name]}}})).await;
    assert_eq!(related["total"], 3);
    let (_, by_resource) = app.post("events/filter", json!({"filter": {"resource": {"id_prefix": [resource]}}})).await;
    assert_eq!(by_resource["total"], 3);
    let (_, counts) = app.post("events/count-by/event", json!({"filter": {"event": {"name": [name]}}})).await;
    assert_eq!(counts[0]["value"], name);
    assert_eq!(counts[0]["count"], 3);
    let (_, days) = app
        .post(
            "events/count-by/day",
            json!({"filter": {"event": {"name": [name]}, "occurred": {"since": chrono::Utc::now() - chrono::TimeDelta::days(1), "until": chrono::Utc::now()}}}),
        )
        .await;
    assert_eq!(days.as_array().unwrap().iter().map(|d| d["count"].as_u64().unwrap()).sum::<u64>(), 3);
    assert_eq!(app.get("events/filter/next?page-token=bm90LWpzb24=").await.0, 403);
    assert_eq!(app.post("events", json!([{"id": uuid::Uuid::new_v4(), "occurred": chrono::Utc::now(), "event": "x", "resource": {}}])).await.0, 422);
}

/// `any_resource` matches an event through its own resource (which has no resource
/// row) as well as through its related ones; a list of criteria must all match.
#[tokio::test]
async fn any_resource_filters_match_an_events_own_and_related_resources() {
    let app = spawn_app().await;
    let name = format!("test.{}", unique("any"));
    let prefix = format!("test.any.{}", unique("r"));
    let (a, b, c, upstream) = (format!("{prefix}.a"), format!("{prefix}.b"), format!("{prefix}.c"), format!("{prefix}.upstream"));
    let mut first = event(&name, &a, json!([{"prefect.resource.id": upstream, "prefect.resource.role": "tester"}]));
    first["resource"]["prefect.resource.name"] = json!("alpha");
    let batch = vec![first, event(&name, &b, json!([{"prefect.resource.id": a, "prefect.resource.role": "upstream"}])), event(&name, &c, json!([]))];
    assert_eq!(app.post("events", json!(batch)).await.0, 204);
    let total = |any_resource: Value| {
        let app = &app;
        let name = name.clone();
        async move {
            let (status, page) = app.post("events/filter", json!({"filter": {"event": {"name": [name]}, "any_resource": any_resource}})).await;
            assert_eq!(status, 200, "{page}");
            page["total"].as_u64().unwrap()
        }
    };
    app.eventually(10, || async { (total(json!({"id_prefix": [prefix.clone()]})).await == 3).then_some(()) }).await;
    assert_eq!(total(json!({"id": [a.clone()]})).await, 2, "its own resource on one event, a related one on another");
    assert_eq!(total(json!({"id": [c.clone()]})).await, 1, "an event with no related resources");
    assert_eq!(total(json!({"id": [upstream.clone()]})).await, 1);
    assert_eq!(total(json!({"labels": {"prefect.resource.name": "alpha"}})).await, 1);
    assert_eq!(total(json!({"labels": {"prefect.resource.role": "tester"}})).await, 1, "roles belong to related resources");
    assert_eq!(total(json!({"labels": {"prefect.resource.id": format!("{prefix}.*")}})).await, 3);
    assert_eq!(total(json!([{"id": [a.clone()]}, {"id": [upstream.clone()]}])).await, 1, "every criterion of a list must match");
    assert_eq!(total(json!({"id": [format!("{prefix}.missing")]})).await, 0);
}

#[tokio::test]
async fn flow_run_transitions_emit_events() {
    let app = spawn_app().await;
    let flow_id = flow(&app).await;
    let run_id = id(&flow_run(&app, &flow_id, json!({"tags": ["t"]})).await);
    set_state(&app, "flow_runs", &run_id, "RUNNING", false).await;
    let filter = json!({"filter": {"resource": {"id": [format!("prefect.flow-run.{run_id}")]}, "order": "ASC"}});
    let events = app
        .eventually(10, || async {
            let (_, p) = app.post("events/filter", filter.clone()).await;
            (p["total"] == 2).then_some(p["events"].clone())
        })
        .await;
    assert_eq!(events[0]["event"], "prefect.flow-run.Pending");
    assert_eq!(events[1]["event"], "prefect.flow-run.Running");
    assert_eq!(events[1]["resource"]["prefect.state-type"], "RUNNING");
    assert_eq!(events[1]["follows"], events[0]["id"]);
    let related: Vec<&str> = events[1]["related"].as_array().unwrap().iter().map(|r| r["prefect.resource.id"].as_str().unwrap()).collect();
    assert!(related.contains(&format!("prefect.flow.{flow_id}").as_str()) && related.contains(&"prefect.tag.t"), "{related:?}");
}

#[tokio::test]
async fn websocket_in_records_task_runs_and_websocket_out_streams() {
    let app = spawn_app().await;
    let run = flow_run(&app, &flow(&app).await, json!({"state": {"type": "RUNNING"}})).await;
    let run_id = id(&run);
    let mut out = connect(&app, "events/out").await;
    let watch = format!("test.ws.{}", unique("w"));
    out.send(Message::text(json!({"type": "filter", "filter": {"event": {"prefix": [watch.clone(), "prefect.task-run."]}}}).to_string())).await.unwrap();

    let mut input = connect(&app, "events/in").await;
    let task_run_id = uuid::Uuid::now_v7();
    let states = [("PENDING", "Pending"), ("RUNNING", "Running"), ("COMPLETED", "Completed")];
    let mut previous: Option<uuid::Uuid> = None;
    for (i, (state_type, state_name)) in states.iter().enumerate() {
        let event_id = uuid::Uuid::now_v7();
        let event = json!({
            "id": event_id, "occurred": chrono::Utc::now(), "event": format!("prefect.task-run.{state_name}"), "follows": previous,
            "resource": {"prefect.resource.id": format!("prefect.task-run.{task_run_id}"), "prefect.orchestration": "client", "prefect.resource.name": "add-1"},
            "related": [{"prefect.resource.id": format!("prefect.flow-run.{run_id}"), "prefect.resource.role": "flow-run"}],
            "payload": {"validated_state": {"type": state_type, "name": state_name, "message": "", "state_details": {}, "data": null},
                        "task_run": {"name": "add-1", "task_key": "add", "dynamic_key": "1", "run_count": if i > 0 { 1 } else { 0 }, "flow_run_run_count": 1,
                                     "empirical_policy": {"max_retries": 0, "retry_delay_seconds": 0.0}, "tags": [], "labels": {}, "task_inputs": {}, "total_run_time": 0.0}}
        });
        input.send(Message::text(event.to_string())).await.unwrap();
        previous = Some(event_id);
    }
    input.send(Message::text(event(&watch, "test.ws", json!([])).to_string())).await.unwrap();

    let task = app
        .eventually(10, || async {
            let (status, t) = app.get(&format!("task_runs/{task_run_id}")).await;
            (status == 200 && t["state_type"] == "COMPLETED").then_some(t)
        })
        .await;
    assert_eq!(task["flow_run_id"], run_id);
    assert_eq!(task["run_count"], 1);
    let (_, states) = app.get(&format!("task_run_states/?task_run_id={task_run_id}")).await;
    assert_eq!(states.as_array().unwrap().len(), 3);

    let mut seen = Vec::new();
    while !seen.contains(&watch) {
        let message = tokio::time::timeout(std::time::Duration::from_secs(10), out.next()).await.expect("an event over /events/out").unwrap().unwrap();
        let value: Value = serde_json::from_str(message.to_text().unwrap()).unwrap();
        assert_eq!(value["type"], "event");
        seen.push(value["event"]["event"].as_str().unwrap().to_owned());
    }
    assert!(seen.contains(&"prefect.task-run.Completed".to_owned()), "{seen:?}");
}

#[tokio::test]
async fn websocket_handshake_requires_auth_message() {
    let app = spawn_app().await;
    let url = app.url("events/in").replacen("http://", "ws://", 1);
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert("Sec-WebSocket-Protocol", "prefect".parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    ws.send(Message::text(json!({"type": "hello"}).to_string())).await.unwrap();
    match ws.next().await {
        Some(Ok(Message::Close(Some(frame)))) => assert_eq!(u16::from(frame.code), 1008),
        other => panic!("expected a 1008 close, got {other:?}"),
    }
}
