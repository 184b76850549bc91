use prefect_services::{CancellationCleanup, CancellationCleanupOptions};
use prefect_testing::spawn_app;
use serde_json::json;

use crate::support::{flow, flow_run, id, set_state, unique};

#[tokio::test]
async fn cancelled_runs_take_their_task_runs_and_subflows_with_them() {
    let app = spawn_app().await;
    let f = flow(&app).await;
    let parent = flow_run(&app, &f, json!({})).await;
    let parent_id = id(&parent);
    assert_eq!(set_state(&app, "flow_runs", &parent_id, "RUNNING", true).await.1["status"], "ACCEPT");
    let task = |key: &str| json!({"flow_run_id": parent_id, "task_key": key, "dynamic_key": "0", "name": unique(key), "state": {"type": "RUNNING"}});
    let (_, working) = app.post("task_runs/", task("work")).await;
    let (_, placeholder) = app.post("task_runs/", task("child-flow")).await;
    let child = flow_run(&app, &f, json!({"parent_task_run_id": id(&placeholder)})).await;
    assert_eq!(set_state(&app, "flow_runs", &id(&child), "RUNNING", true).await.1["status"], "ACCEPT");
    let (_, done) = app.post("task_runs/", json!({"flow_run_id": parent_id, "task_key": "done", "dynamic_key": "0", "state": {"type": "COMPLETED"}})).await;

    let cleanup = CancellationCleanup::new(CancellationCleanupOptions::default(), app.core.clone());
    assert_eq!(cleanup.run_once().await.unwrap(), Default::default(), "nothing to clean while the parent runs");

    assert_eq!(set_state(&app, "flow_runs", &parent_id, "CANCELLED", true).await.1["status"], "ACCEPT");
    let pass = cleanup.run_once().await.unwrap();
    assert_eq!((pass.task_runs_cancelled, pass.subflow_runs_cancelled), (2, 1), "{pass:?}");
    let (_, task_now) = app.get(&format!("task_runs/{}", id(&working))).await;
    assert_eq!((task_now["state"]["type"].as_str(), task_now["state"]["message"].as_str()), (Some("CANCELLED"), Some("The parent flow run was cancelled.")));
    assert_eq!(app.get(&format!("flow_runs/{}", id(&child))).await.1["state"]["type"], "CANCELLED");
    assert_eq!(app.get(&format!("task_runs/{}", id(&done))).await.1["state"]["type"], "COMPLETED", "finished task runs stay");
    assert_eq!(cleanup.run_once().await.unwrap(), Default::default(), "a second pass finds nothing");
}

#[tokio::test]
async fn runs_left_cancelling_are_cancelled_after_the_timeout() {
    let app = spawn_app().await;
    let f = flow(&app).await;
    let run = id(&flow_run(&app, &f, json!({})).await);
    assert_eq!(set_state(&app, "flow_runs", &run, "RUNNING", true).await.1["status"], "ACCEPT");
    assert_eq!(set_state(&app, "flow_runs", &run, "CANCELLING", false).await.1["status"], "ACCEPT");

    let patient = CancellationCleanup::new(CancellationCleanupOptions::default(), app.core.clone());
    assert_eq!(patient.run_once().await.unwrap().cancelling_timed_out, 0, "within the 300 s timeout");
    let options = CancellationCleanupOptions { cancelling_timeout_seconds: 0.0, ..Default::default() };
    let impatient = CancellationCleanup::new(options, app.core.clone());
    assert_eq!(impatient.run_once().await.unwrap().cancelling_timed_out, 1);
    let (_, now) = app.get(&format!("flow_runs/{run}")).await;
    assert_eq!(now["state"]["type"], "CANCELLED");
    assert_eq!(now["state"]["message"], prefect_core::CANCELLING_TIMEOUT_MESSAGE);
}
