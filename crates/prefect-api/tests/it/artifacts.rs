use prefect_testing::spawn_app;
use serde_json::json;

use crate::support::{flow, flow_run, id, unique};

#[tokio::test]
async fn artifacts_and_the_latest_per_key() {
    let app = spawn_app().await;
    let run_id = id(&flow_run(&app, &flow(&app).await, json!({})).await);
    let key = unique("report");
    let (status, first) = app.post("artifacts/", json!({"key": key, "type": "markdown", "data": "# one", "flow_run_id": run_id})).await;
    assert_eq!(status, 201, "{first}");
    let (_, second) = app.post("artifacts/", json!({"key": key, "type": "markdown", "data": "# two", "description": "d", "flow_run_id": run_id})).await;
    assert_eq!(app.get(&format!("artifacts/{key}/latest")).await.1["id"], second["id"]);
    assert_eq!(app.get(&format!("artifacts/{}", id(&first))).await.1["data"], "# one");

    let (_, found) = app.post("artifacts/filter", json!({"artifacts": {"flow_run_id": {"any_": [run_id]}}})).await;
    assert_eq!(found.as_array().unwrap().len(), 2);
    assert_eq!(found[0]["id"], second["id"], "ID_DESC is the default");
    let (_, latest) = app.post("artifacts/latest/filter", json!({"artifacts": {"key": {"any_": [key]}}})).await;
    assert_eq!(latest.as_array().unwrap().len(), 1);
    assert_eq!(latest[0]["latest_id"], second["id"]);
    assert_eq!(app.post("artifacts/count", json!({"artifacts": {"key": {"any_": [key]}}})).await.1, json!(2));
    assert_eq!(app.post("artifacts/latest/count", json!({"artifacts": {"key": {"any_": [key]}}})).await.1, json!(1));

    assert_eq!(app.patch(&format!("artifacts/{}", id(&second)), json!({"data": "# three"})).await.0, 204);
    assert_eq!(app.get(&format!("artifacts/{key}/latest")).await.1["data"], "# three");
    assert_eq!(app.delete(&format!("artifacts/{}", id(&second))).await.0, 204);
    let (_, latest) = app.post("artifacts/latest/filter", json!({"artifacts": {"key": {"any_": [key]}}})).await;
    assert_eq!(latest[0]["latest_id"], first["id"], "deleting the latest promotes the previous one");

    let (status, _) = app.post("artifacts/", json!({"key": "Bad_Key"})).await;
    assert_eq!(status, 422);
    assert_eq!(app.get(&format!("artifacts/{}", uuid::Uuid::new_v4())).await.0, 404);
}

#[tokio::test]
async fn persisted_results_become_result_artifacts() {
    let app = spawn_app().await;
    let run_id = id(&flow_run(&app, &flow(&app).await, json!({"state": {"type": "RUNNING"}})).await);
    let data = json!({"storage_key": "/tmp/x", "serializer": {"type": "pickle"}, "prefect_version": "3.9.1"});
    let (_, result) = app.post(&format!("flow_runs/{run_id}/set_state"), json!({"state": {"type": "COMPLETED", "data": data}})).await;
    assert_eq!(result["state"]["data"], data);
    let (_, run) = app.get(&format!("flow_runs/{run_id}")).await;
    assert_eq!(run["state"]["data"], data);
    let (_, results) = app.post("artifacts/filter", json!({"artifacts": {"flow_run_id": {"any_": [run_id]}, "type": {"any_": ["result"]}}})).await;
    assert_eq!(results[0]["data"], data);
    let (_, result) = app.post(&format!("flow_runs/{run_id}/set_state"), json!({"state": {"type": "RUNNING"}})).await;
    assert_eq!(result["status"], "REJECT", "a completed run with a persisted result cannot rerun");
}
