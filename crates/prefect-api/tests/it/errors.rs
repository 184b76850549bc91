use prefect_testing::spawn_app;
use serde_json::json;

#[tokio::test]
async fn meta_routes() {
    let app = spawn_app().await;
    assert_eq!(app.get("health").await, (200, json!(true)));
    assert_eq!(app.get("ready").await, (200, json!({"message": "OK"})));
    assert_eq!(app.get("version").await, (200, json!("0.8.4")));
    assert_eq!(app.get("admin/version").await, (200, json!("3.9.1")));
    assert_eq!(app.get("hello").await, (200, json!("👋")));
    assert_eq!(app.get("admin/storage").await, (200, json!({"default_result_storage_block_id": null})));
    let (status, body) = app.get("csrf-token?client=abc").await;
    assert_eq!((status, body["detail"].as_str()), (422, Some("CSRF protection is disabled.")));
    assert_eq!(app.get("csrf-token").await.0, 422);
    assert_eq!(app.put("admin/storage", json!({"default_result_storage_block_id": uuid::Uuid::new_v4()})).await.0, 404);
    let spec = app.client.get(app.url("openapi.json")).send().await.unwrap().json::<serde_json::Value>().await.unwrap();
    assert!(spec["paths"]["/api/flow_runs/{id}/set_state"]["post"].is_object());
}

#[tokio::test]
async fn bad_input_gets_fastapi_style_422s() {
    let app = spawn_app().await;
    let (status, body) = app.post("flows/", json!({"name": "x", "unexpected_field": 1})).await;
    assert_eq!(status, 422);
    assert_eq!(body["exception_message"], "Invalid request received.");
    assert_eq!(body["exception_detail"][0]["type"], "extra_forbidden");
    assert_eq!(body["exception_detail"][0]["loc"], json!(["body", "unexpected_field"]));
    assert_eq!(body["request_body"], json!({"name": "x", "unexpected_field": 1}));
    assert_eq!(app.post("flows/", json!({})).await.1["exception_detail"][0]["type"], "missing");
    assert_eq!(app.post("flows/", json!({"name": "a/b"})).await.0, 422);
    assert_eq!(app.post_raw("flows/", "{bad json").await.1["exception_detail"][0]["type"], "json_invalid");
    assert_eq!(app.post("flow_runs/filter", json!({"limit": "abc"})).await.0, 422);
    assert_eq!(app.post("flow_runs/filter", json!({"sort": "NOT_A_SORT"})).await.0, 422);
    assert_eq!(app.post("flow_runs/filter", json!({"offset": -1})).await.0, 422);
    assert_eq!(app.post("flow_runs/", json!({"flow_id": uuid::Uuid::new_v4(), "state": {"type": "NOT_A_STATE"}})).await.0, 422);
    assert_eq!(app.post("flow_runs/", json!({"flow_id": uuid::Uuid::new_v4()})).await.0, 409, "unknown flow");
    assert_eq!(app.post("flow_runs/", json!({"flow_id": "not-a-uuid"})).await.0, 422);
}

#[tokio::test]
async fn unknown_routes_and_ids_are_404() {
    let app = spawn_app().await;
    assert_eq!(app.get("flow_runs/not-a-uuid").await, (404, json!({"detail": "Not Found"})));
    assert_eq!(app.get("no/such/route").await.0, 404);
    let missing = uuid::Uuid::new_v4();
    for path in ["flows", "flow_runs", "task_runs", "flow_run_states", "task_run_states", "artifacts"] {
        let (status, body) = app.get(&format!("{path}/{missing}")).await;
        assert_eq!(status, 404, "{path}");
        assert!(body["detail"].is_string(), "{path}: {body}");
    }
    assert_eq!(app.delete(&format!("flow_runs/{missing}")).await.0, 404);
    assert_eq!(app.post(&format!("flow_runs/{missing}/set_state"), json!({"state": {"type": "RUNNING"}})).await.0, 404);
}

#[tokio::test]
async fn api_version_header_is_checked() {
    let app = spawn_app().await;
    let send = |v: &'static str| app.client.get(app.url("health")).header("x-prefect-api-version", v).send();
    assert_eq!(send("0.8.4").await.unwrap().status(), 200);
    assert_eq!(send("0.7.0").await.unwrap().status(), 400);
    assert_eq!(send("garbage").await.unwrap().status(), 400);
}
