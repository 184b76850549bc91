use prefect_testing::spawn_app;
use serde_json::json;

use crate::support::{flow, flow_run, id, set_state};

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
