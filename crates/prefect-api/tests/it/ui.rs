use prefect_testing::{TestApp, spawn_app};
use serde_json::{Value, json};

use crate::support::{flow, flow_run, id, set_state, unique};

/// A task run of `flow_run_id` taken through `states` (e.g. RUNNING then COMPLETED).
async fn task_run(app: &TestApp, flow_run_id: &str, states: &[&str]) -> String {
    let body = json!({"flow_run_id": flow_run_id, "task_key": unique("k"), "dynamic_key": "0", "name": unique("task"), "state": {"type": "PENDING"}});
    let (status, task) = app.post("task_runs/", body).await;
    assert_eq!(status, 201, "{task}");
    let task_id = id(&task);
    for state in states {
        assert_eq!(set_state(app, "task_runs", &task_id, state, false).await.1["status"], "ACCEPT");
    }
    task_id
}

#[tokio::test]
async fn the_dashboard_and_run_pages_read_counts_history_and_task_runs() {
    let app = spawn_app().await;
    let flow_id = flow(&app).await;
    let run = flow_run(&app, &flow_id, json!({"state": {"type": "RUNNING"}})).await;
    let run_id = id(&run);
    let scheduled = flow_run(&app, &flow_id, json!({"state": {"type": "SCHEDULED", "state_details": {"scheduled_time": "2030-01-01T00:00:00Z"}}})).await;
    let first = task_run(&app, &run_id, &["RUNNING", "COMPLETED"]).await;
    task_run(&app, &run_id, &["RUNNING", "COMPLETED"]).await;
    task_run(&app, &run_id, &["RUNNING", "FAILED"]).await;
    task_run(&app, &run_id, &["RUNNING"]).await;
    // A task run that stands for a subflow is not one of the run's tasks.
    let parent_task = task_run(&app, &run_id, &[]).await;
    flow_run(&app, &flow_id, json!({"parent_task_run_id": parent_task})).await;

    let unknown = uuid::Uuid::new_v4();
    let (status, counts) = app.post("ui/flow_runs/count-task-runs", json!({"flow_run_ids": [run_id, scheduled["id"], unknown]})).await;
    assert_eq!(status, 200, "{counts}");
    assert_eq!(counts, json!({run_id.clone(): 4, scheduled["id"].as_str().unwrap(): 0, unknown.to_string(): 0}));
    let too_many: Vec<uuid::Uuid> = (0..201).map(|_| uuid::Uuid::new_v4()).collect();
    assert_eq!(app.post("ui/flow_runs/count-task-runs", json!({"flow_run_ids": too_many})).await.0, 422);

    let of_run = json!({"flow_runs": {"id": {"any_": [run_id]}}});
    let (_, by_state) = app.post("ui/task_runs/count", of_run.clone()).await;
    let keys: Vec<&str> = by_state.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys.len(), 9, "{by_state}");
    assert_eq!(
        (by_state["COMPLETED"].clone(), by_state["FAILED"].clone(), by_state["RUNNING"].clone(), by_state["PENDING"].clone()),
        (json!(2), json!(1), json!(1), json!(1))
    );

    let an_hour_ago = chrono::Utc::now() - chrono::TimeDelta::hours(1);
    let mut window = of_run.clone();
    window["task_runs"] = json!({"start_time": {"after_": an_hour_ago}});
    let (status, buckets) = app.post("ui/task_runs/dashboard/counts", window).await;
    assert_eq!(status, 200, "{buckets}");
    let buckets = buckets.as_array().unwrap();
    assert_eq!(buckets.len(), 20);
    let total = |key: &str| buckets.iter().map(|b| b[key].as_u64().unwrap()).sum::<u64>();
    assert_eq!((total("completed"), total("failed")), (2, 1), "only finished runs count");
    assert!(buckets[..19].iter().all(|b| b == &json!({"completed": 0, "failed": 0})), "they all started in the last bucket");
    assert_eq!(app.post("ui/task_runs/dashboard/counts", of_run).await.0, 422, "the window's start is required");

    let (status, task) = app.get(&format!("ui/task_runs/{first}")).await;
    assert_eq!(status, 200, "{task}");
    assert_eq!((task["id"].as_str(), task["flow_run_name"].clone()), (Some(first.as_str()), run["name"].clone()));
    assert_eq!(task["state_type"], "COMPLETED");
    assert_eq!(app.get(&format!("ui/task_runs/{unknown}")).await.0, 404);

    let (status, dots) = app.post("ui/flow_runs/history", json!({"flows": {"id": {"any_": [flow_id]}}, "sort": null, "limit": null})).await;
    assert_eq!(status, 200, "{dots}");
    let dots = dots.as_array().unwrap();
    assert_eq!(dots.len(), 3);
    // Expected start time, latest first: the run scheduled for 2030 leads.
    assert_eq!(dots[0]["id"], scheduled["id"]);
    assert_eq!(dots[0]["timestamp"], json!("2030-01-01T00:00:00Z"));
    let running: &Value = dots.iter().find(|d| d["id"] == run["id"]).unwrap();
    assert_eq!(running["state_type"], "RUNNING");
    assert!(running["duration"].as_f64().unwrap() >= 0.0 && running["lateness"].is_number());
    assert_eq!(app.post("ui/flow_runs/history", json!({"limit": 1001})).await.0, 422);
}
