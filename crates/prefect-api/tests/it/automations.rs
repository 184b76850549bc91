use prefect_testing::{TestApp, spawn_app};
use serde_json::{Value, json};

use crate::support::{flow, flow_run, id, unique};

async fn deployment(app: &TestApp) -> String {
    let flow_id = flow(app).await;
    let (status, body) = app.post("deployments/", json!({"name": unique("dep"), "flow_id": flow_id})).await;
    assert_eq!(status, 201, "{body}");
    id(&body)
}

fn emitted(name: &str, resource: &str) -> Value {
    json!({"id": uuid::Uuid::new_v4(), "occurred": chrono::Utc::now(), "event": name, "resource": {"prefect.resource.id": resource}})
}

/// Events about `resource_id` named `name`, once at least one is stored.
async fn events_about(app: &TestApp, resource_id: &str, name: &str) -> Vec<Value> {
    app.eventually(15, || async {
        let filter = json!({"filter": {"resource": {"id": [resource_id]}, "event": {"name": [name]}}});
        let (_, page) = app.post("events/filter", filter).await;
        let events = page["events"].as_array().cloned().unwrap_or_default();
        (!events.is_empty()).then_some(events)
    })
    .await
}

#[tokio::test]
async fn automations_are_created_read_listed_updated_and_deleted() {
    let app = spawn_app().await;
    let deployment_id = deployment(&app).await;
    let name = unique("auto");
    let body = json!({
        "name": name,
        "trigger": {"id": uuid::Uuid::nil(), "match": {"prefect.resource.id": "prefect.flow-run.*"}, "expect": ["prefect.flow-run.Failed"], "posture": "Reactive"},
        "actions": [{"type": "run-deployment", "deployment_id": deployment_id, "parameters": {"x": 1}}, {"type": "cancel-flow-run"}],
        "owner_resource": format!("prefect.deployment.{deployment_id}"),
    });
    let (status, created) = app.post("automations/", body.clone()).await;
    assert_eq!(status, 201, "{created}");
    assert_ne!(created["trigger"]["id"], json!(uuid::Uuid::nil()), "the server assigns trigger ids");
    assert_eq!(created["description"], "");
    assert_eq!(created["trigger"]["within"], json!(0.0));
    assert_eq!(created["actions"][0]["source"], "selected");
    assert_eq!(created["actions"][0]["schedule_after"], json!(0.0));
    let automation_id = id(&created);
    let (status, read) = app.get(&format!("automations/{automation_id}")).await;
    assert_eq!((status, &read), (200, &created));

    let (_, listed) = app.post("automations/filter", json!({"automations": {"name": {"any_": [name]}}})).await;
    assert_eq!(listed.as_array().unwrap().len(), 1);
    let (_, counted) = app.post("automations/count", json!({"automations": {"id": {"any_": [automation_id]}}})).await;
    assert_eq!(counted, 1);
    let (_, related) = app.get(&format!("automations/related-to/prefect.deployment.{deployment_id}")).await;
    assert_eq!(related[0]["id"], automation_id);

    assert_eq!(app.patch(&format!("automations/{automation_id}"), json!({"enabled": false})).await.0, 204);
    let (_, read) = app.get(&format!("automations/{automation_id}")).await;
    assert_eq!((read["enabled"].clone(), read["trigger"]["id"].clone()), (json!(false), created["trigger"]["id"].clone()));

    let mut replaced = body.clone();
    replaced.as_object_mut().unwrap().remove("owner_resource");
    replaced["description"] = json!("replaced");
    replaced["actions"] = json!([{"type": "do-nothing"}]);
    assert_eq!(app.put(&format!("automations/{automation_id}"), replaced).await.0, 204);
    let (_, read) = app.get(&format!("automations/{automation_id}")).await;
    assert_eq!(read["description"], "replaced");
    assert_eq!(read["enabled"], true);
    // Still owned by the deployment, though it no longer runs it.
    let (_, related) = app.get(&format!("automations/related-to/prefect.deployment.{deployment_id}")).await;
    assert_eq!(related.as_array().unwrap().len(), 1);

    let (_, lifecycle) = app
        .eventually(15, || async {
            let filter = json!({"filter": {"resource": {"id": [format!("prefect.automation.{automation_id}")]}}});
            let (_, page) = app.post("events/filter", filter).await;
            (page["total"].as_u64() == Some(3)).then_some(((), page))
        })
        .await;
    let mut names: Vec<&str> = lifecycle["events"].as_array().unwrap().iter().map(|e| e["event"].as_str().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["prefect.automation.created", "prefect.automation.updated", "prefect.automation.updated"]);

    let (status, _) = app.delete(&format!("automations/owned-by/prefect.deployment.{deployment_id}")).await;
    assert_eq!(status, 202);
    assert_eq!(app.get(&format!("automations/{automation_id}")).await.0, 404);
    assert_eq!(app.delete(&format!("automations/{automation_id}")).await.0, 404);
    assert_eq!(app.put(&format!("automations/{automation_id}"), json!({"name": "x", "trigger": {"posture": "Reactive"}, "actions": []})).await.0, 404);
}

fn reactive_trigger() -> Value {
    json!({"posture": "Reactive"})
}

#[tokio::test]
async fn invalid_automations_are_refused_with_422() {
    let app = spawn_app().await;
    let with = |trigger: Value, actions: Value| json!({"name": unique("bad"), "trigger": trigger, "actions": actions});
    let reactive = reactive_trigger();
    for body in [
        with(reactive.clone(), json!([{"type": "pause-deployment"}])),
        with(reactive.clone(), json!([{"type": "pause-work-pool", "source": "inferred", "work_pool_id": uuid::Uuid::new_v4()}])),
        with(reactive.clone(), json!([{"type": "no-such-action"}])),
        with(json!({"posture": "Metric"}), json!([])),
        with(json!({"posture": "Proactive", "within": 3}), json!([])),
        with(json!({"type": "compound", "require": 3, "within": null, "triggers": [reactive]}), json!([])),
        with(json!({"posture": "Reactive", "expect": ["prefect.flow-run.Running"]}), json!([{"type": "run-deployment", "source": "inferred"}])),
        json!({"name": "no trigger", "actions": []}),
        json!({"name": "extra", "trigger": reactive, "actions": [], "surprise": 1}),
    ] {
        let (status, answer) = app.post("automations/", body.clone()).await;
        assert_eq!(status, 422, "{body} -> {answer}");
    }
    let (_, answer) = app.post("automations/", with(reactive_trigger(), json!([{"type": "do-nothing"}, {"type": "resume-work-queue"}]))).await;
    assert_eq!(answer["exception_detail"][0]["loc"], json!(["body", "actions", 1]));
    assert_eq!(answer["exception_detail"][0]["msg"], "Value error, work_queue_id is required");
    let (_, count) = app.post("automations/count", json!({})).await;
    assert_eq!(count, 0);
}

#[tokio::test]
async fn a_reactive_automation_changes_the_state_of_the_flow_run_its_event_names() {
    let app = spawn_app().await;
    let flow_id = flow(&app).await;
    let scheduled = chrono::Utc::now() + chrono::TimeDelta::hours(2);
    let run = flow_run(&app, &flow_id, json!({"state": {"type": "SCHEDULED", "state_details": {"scheduled_time": scheduled}}})).await;
    let run_id = id(&run);
    let trigger_event = unique("test.trigger");
    let (status, automation) = app
        .post(
            "automations/",
            json!({
                "name": unique("cancel"),
                "trigger": {"match": {"prefect.resource.id": "prefect.flow-run.*"}, "expect": [trigger_event], "posture": "Reactive", "threshold": 1, "within": 0},
                "actions": [{"type": "change-flow-run-state", "state": "CANCELLED", "message": "cancelled by automation"}],
            }),
        )
        .await;
    assert_eq!(status, 201, "{automation}");
    let automation_id = id(&automation);

    let event = emitted(&trigger_event, &format!("prefect.flow-run.{run_id}"));
    assert_eq!(app.post("events", json!([event])).await.0, 204);
    let cancelled = app
        .eventually(15, || async {
            let (_, run) = app.get(&format!("flow_runs/{run_id}")).await;
            (run["state"]["type"] == "CANCELLED").then_some(run)
        })
        .await;
    assert_eq!(cancelled["state"]["message"], "cancelled by automation");

    let resource = format!("prefect.automation.{automation_id}");
    let triggered = events_about(&app, &resource, "prefect.automation.triggered").await;
    assert_eq!(triggered[0]["related"][0]["prefect.resource.id"], format!("prefect.event.{}", event["id"].as_str().unwrap()));
    assert_eq!(triggered[0]["payload"]["triggering_event"]["id"], event["id"]);
    let executed = events_about(&app, &resource, "prefect.automation.action.executed").await;
    assert_eq!(executed[0]["payload"]["action_type"], "change-flow-run-state");
    assert_eq!(executed[0]["payload"]["action_index"], 0);
    assert_eq!(executed[0]["resource"]["prefect.posture"], "Reactive");
    let roles: Vec<&str> = executed[0]["related"].as_array().unwrap().iter().map(|r| r["prefect.resource.role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["target", "automation-triggered-event", "triggering-event"]);
}

#[tokio::test]
async fn a_run_deployment_action_creates_a_run_with_rendered_parameters_and_reports_failures() {
    let app = spawn_app().await;
    let deployment_id = deployment(&app).await;
    let trigger_event = unique("test.rundep");
    let name = unique("rd");
    let (status, automation) = app
        .post(
            "automations/",
            json!({
                "name": name,
                "trigger": {"match": {"prefect.resource.id": "test.thing.*"}, "expect": [trigger_event], "posture": "Reactive"},
                "actions": [
                    {"type": "run-deployment", "source": "selected", "deployment_id": deployment_id,
                     "parameters": {"resource": "{{ event.resource.id }}", "fixed": 3}},
                    {"type": "pause-work-queue", "source": "inferred"},
                ],
            }),
        )
        .await;
    assert_eq!(status, 201, "{automation}");
    let automation_id = id(&automation);
    assert_eq!(app.post("events", json!([emitted(&trigger_event, "test.thing.1")])).await.0, 204);

    let runs = app
        .eventually(15, || async {
            let (_, runs) = app.post("flow_runs/filter", json!({"deployments": {"id": {"any_": [deployment_id]}}})).await;
            runs.as_array().filter(|r| !r.is_empty()).cloned()
        })
        .await;
    assert_eq!(runs[0]["parameters"], json!({"resource": "test.thing.1", "fixed": 3}));
    assert_eq!(runs[0]["state_type"], "SCHEDULED");
    assert_eq!(runs[0]["created_by"], json!({"id": automation_id, "type": "AUTOMATION", "display_value": name}));
    assert!(runs[0]["idempotency_key"].as_str().unwrap().starts_with(&format!("automation {automation_id}, action 0, invocation ")));

    let resource = format!("prefect.automation.{automation_id}");
    let failed = events_about(&app, &resource, "prefect.automation.action.failed").await;
    assert_eq!(failed[0]["payload"]["action_index"], 1);
    assert_eq!(failed[0]["payload"]["reason"], "No work queue could be inferred");
    let executed = events_about(&app, &resource, "prefect.automation.action.executed").await;
    let related: Vec<&str> = executed[0]["related"].as_array().unwrap().iter().map(|r| r["prefect.resource.id"].as_str().unwrap()).collect();
    assert_eq!(related[0], format!("prefect.deployment.{deployment_id}"));
    assert_eq!(related[1], format!("prefect.flow-run.{}", runs[0]["id"].as_str().unwrap()));
}

/// A local HTTP endpoint that answers 200 to every request and hands over each request as text.
async fn http_recorder() -> (String, tokio::sync::mpsc::Receiver<String>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (received, requests) = tokio::sync::mpsc::channel(8);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let received = received.clone();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let n = socket.read(&mut chunk).await.unwrap_or(0);
                    request.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&request).to_string();
                    let complete = text.split_once("\r\n\r\n").is_some_and(|(head, body)| {
                        let length =
                            head.lines().find_map(|l| l.to_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse::<usize>().unwrap_or(0)));
                        body.len() >= length.unwrap_or(0)
                    });
                    if n == 0 || complete {
                        break;
                    }
                }
                let answer = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nx-prefect-internal: hidden\r\nconnection: close\r\n\r\nok";
                let _ = socket.write_all(answer.as_bytes()).await;
                let _ = received.send(String::from_utf8_lossy(&request).to_string()).await;
            });
        }
    });
    (url, requests)
}

async fn next_request(requests: &mut tokio::sync::mpsc::Receiver<String>) -> String {
    tokio::time::timeout(std::time::Duration::from_secs(15), requests.recv()).await.expect("a request arrives").unwrap()
}

/// A block document of a system block type.
async fn block_document(app: &TestApp, slug: &str, data: Value) -> String {
    let (_, block_type) = app.get(&format!("block_types/slug/{slug}")).await;
    let (_, schemas) = app.post("block_schemas/filter", json!({"block_schemas": {"block_type_id": {"any_": [block_type["id"]]}}})).await;
    let body = json!({"name": unique(slug), "block_type_id": block_type["id"], "block_schema_id": schemas[0]["id"], "data": data});
    let (status, document) = app.post("block_documents/", body).await;
    assert_eq!(status, 201, "{document}");
    id(&document)
}

#[tokio::test]
async fn webhook_and_notification_actions_send_their_rendered_templates() {
    let app = spawn_app().await;
    let (url, mut requests) = http_recorder().await;
    let webhook = block_document(&app, "webhook", json!({"method": "PUT", "url": format!("{url}/hook"), "headers": {"X-Token": "t0k"}})).await;
    let notifier = block_document(
        &app,
        "custom-webhook",
        json!({"name": "ops", "url": format!("{url}/notify"), "method": "POST", "params": {"channel": "{{name}}"},
               "json_data": {"text": "{{subject}}: {{body}}", "token": "{{token}}"}, "secrets": {"token": "s3cret"}}),
    )
    .await;
    let trigger_event = unique("test.hook");
    let (status, automation) = app
        .post(
            "automations/",
            json!({
                "name": unique("hooks"),
                "trigger": {"expect": [trigger_event], "posture": "Reactive"},
                "actions": [
                    {"type": "call-webhook", "block_document_id": webhook, "payload": "{{ event.event }} on {{ event.resource.id }}{{ flow_run.name }}"},
                    {"type": "send-notification", "block_document_id": notifier, "subject": "Alert", "body": "saw {{ event.resource.id }}"},
                ],
            }),
        )
        .await;
    assert_eq!(status, 201, "{automation}");
    assert_eq!(app.post("events", json!([emitted(&trigger_event, "test.thing.7")])).await.0, 204);

    let hook = next_request(&mut requests).await;
    assert!(hook.starts_with("PUT /hook HTTP/1.1"), "{hook}");
    assert!(hook.to_lowercase().contains("x-token: t0k"), "{hook}");
    assert!(hook.ends_with(&format!("\r\n\r\n{trigger_event} on test.thing.7")), "{hook}");
    let notification = next_request(&mut requests).await;
    assert!(notification.starts_with("POST /notify?channel=ops HTTP/1.1"), "{notification}");
    assert!(notification.to_lowercase().contains("user-agent: prefect notifications"), "{notification}");
    let body: Value = serde_json::from_str(notification.split_once("\r\n\r\n").unwrap().1).unwrap();
    assert_eq!(body, json!({"text": "Alert: saw test.thing.7", "token": "s3cret"}));

    let resource = format!("prefect.automation.{}", id(&automation));
    let executed = app
        .eventually(15, || async {
            let filter = json!({"filter": {"resource": {"id": [resource]}, "event": {"name": ["prefect.automation.action.executed"]}}});
            let (_, page) = app.post("events/filter", filter).await;
            (page["total"] == 2).then_some(page["events"].as_array().unwrap().clone())
        })
        .await;
    let call = executed.iter().find(|e| e["payload"]["action_type"] == "call-webhook").unwrap();
    assert_eq!(call["payload"]["status_code"], 200);
    assert_eq!(call["payload"]["response_body"], "ok");
    assert!(call["payload"]["response_headers"].get("x-prefect-internal").is_none());
    assert_eq!(call["related"][0]["prefect.resource.id"], format!("prefect.block-document.{webhook}"));
    assert_eq!(call["related"][1]["prefect.resource.id"], "prefect.block-type.webhook");
}
