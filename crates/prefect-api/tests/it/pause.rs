use std::time::Duration;

use prefect_services::{PauseExpirations, PauseExpirationsOptions};
use prefect_testing::{TestApp, spawn_app};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::support::{flow, flow_run, id, set_state};

/// A running flow run, paused with the given extra state details.
async fn paused_run(app: &TestApp, details: Value) -> String {
    let run_id = id(&flow_run(app, &flow(app).await, json!({"state": {"type": "RUNNING"}})).await);
    let mut state_details = json!({"pause_key": "1"});
    if let (Some(target), Value::Object(more)) = (state_details.as_object_mut(), details) {
        target.extend(more);
    }
    let (status, result) =
        app.post(&format!("flow_runs/{run_id}/set_state"), json!({"state": {"type": "PAUSED", "name": "Paused", "state_details": state_details}})).await;
    assert_eq!((status, result["status"].clone()), (201, json!("ACCEPT")), "{result}");
    run_id
}

#[tokio::test]
async fn resume_validates_run_input_against_the_stored_schema() {
    let app = spawn_app().await;
    let keyset = json!({"description": "k-description", "response": "k-response", "schema": "k-schema"});
    let run_id = paused_run(&app, json!({"run_input_keyset": keyset})).await;
    let schema =
        json!({"title": "Answer", "type": "object", "properties": {"number": {"type": "integer"}, "note": {"type": "string"}}, "required": ["number"]});
    let (status, _) = app.post(&format!("flow_runs/{run_id}/input"), json!({"key": "k-schema", "value": schema.to_string()})).await;
    assert_eq!(status, 201);

    let (status, rejected) = app.post(&format!("flow_runs/{run_id}/resume"), json!({"run_input": {"number": "abc"}})).await;
    assert_eq!(status, 200);
    assert_eq!(rejected["status"], "REJECT");
    assert_eq!(rejected["details"]["reason"], "Reason: Validation failed for field 'number'. Failure reason: 'abc' is not of type 'integer'");
    assert_eq!(rejected["state"]["type"], "PAUSED");
    let (_, missing) = app.post(&format!("flow_runs/{run_id}/resume"), json!({"run_input": {}})).await;
    assert_eq!(missing["details"]["reason"], "Reason: Validation failed. Failure reason: 'number' is a required property");
    let (_, unknown_variable) = app
        .post(&format!("flow_runs/{run_id}/resume"), json!({"run_input": {"number": {"__prefect_kind": "workspace_variable", "variable_name": "nope"}}}))
        .await;
    assert_eq!(unknown_variable["details"]["reason"], "Error hydrating run input: Variable 'nope' not found in workspace.");

    // Placeholders are hydrated (here from a workspace variable) before validating.
    assert_eq!(app.post("variables/", json!({"name": "answer", "value": 5})).await.0, 201);
    let input = json!({"number": {"__prefect_kind": "workspace_variable", "variable_name": "answer"}, "note": "hi"});
    let (status, accepted) = app.post(&format!("flow_runs/{run_id}/resume"), json!({"run_input": input})).await;
    assert_eq!((status, accepted["status"].clone()), (201, json!("ACCEPT")), "{accepted}");
    assert_eq!(accepted["state"]["type"], "RUNNING");
    assert_eq!(app.get(&format!("flow_runs/{run_id}/input/k-response")).await.1, json!({"number": 5, "note": "hi"}));

    let (status, not_paused) = app.post(&format!("flow_runs/{run_id}/resume"), json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(
        not_paused,
        json!({"state": null, "status": "ABORT", "details": {"type": "abort_details", "reason": "Cannot resume a flow run that is not paused."}})
    );
    assert_eq!(app.post(&format!("flow_runs/{}/resume", uuid::Uuid::new_v4()), json!({})).await.0, 404);
}

#[tokio::test]
async fn resume_without_input_and_a_missing_schema() {
    let app = spawn_app().await;
    let run_id = paused_run(&app, json!({})).await;
    let (status, resumed) = app.post(&format!("flow_runs/{run_id}/resume"), json!({"run_input": null})).await;
    assert_eq!((status, resumed["state"]["type"].clone()), (201, json!("RUNNING")));

    let keyset = json!({"description": "d", "response": "r", "schema": "s"});
    let run_id = paused_run(&app, json!({"run_input_keyset": keyset})).await;
    let (_, rejected) = app.post(&format!("flow_runs/{run_id}/resume"), json!({"run_input": {"a": 1}})).await;
    assert_eq!((rejected["status"].clone(), rejected["details"]["reason"].clone()), (json!("REJECT"), json!("Run input schema not found.")));
}

#[tokio::test]
async fn flow_run_inputs_create_read_filter_delete() {
    let app = spawn_app().await;
    let run_id = paused_run(&app, json!({})).await;
    for key in ["paused-1-schema", "paused-1-response", "other"] {
        assert_eq!(app.post(&format!("flow_runs/{run_id}/input"), json!({"key": key, "value": "{\"x\": 1}", "sender": "me"})).await.0, 201);
    }
    assert_eq!(app.post(&format!("flow_runs/{run_id}/input"), json!({"key": "other", "value": "1"})).await.0, 409);
    assert_eq!(app.get(&format!("flow_runs/{run_id}/input/other")).await.1, json!({"x": 1}));
    let (_, found) = app.post(&format!("flow_runs/{run_id}/input/filter"), json!({"prefix": "paused-1", "exclude_keys": ["paused-1-schema"]})).await;
    assert_eq!(found.as_array().unwrap().len(), 1);
    assert_eq!(found[0]["key"], "paused-1-response");
    assert_eq!(app.delete(&format!("flow_runs/{run_id}/input/other")).await.0, 204);
    assert_eq!(app.get(&format!("flow_runs/{run_id}/input/other")).await.0, 404);
}

#[tokio::test]
async fn pause_expiration_loop_fails_timed_out_pauses() {
    let app = spawn_app().await;
    let soon = (chrono::Utc::now() + chrono::Duration::milliseconds(300)).to_rfc3339();
    let later = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let expiring = paused_run(&app, json!({"pause_timeout": soon})).await;
    let waiting = paused_run(&app, json!({"pause_timeout": later})).await;
    let shutdown = CancellationToken::new();
    let options = PauseExpirationsOptions { enabled: true, loop_seconds: 0.1, batch_size: 1 };
    let service = tokio::spawn(PauseExpirations::new(options, app.core.clone()).run(shutdown.clone()));
    let state = app
        .eventually(10, || async {
            let (_, run) = app.get(&format!("flow_runs/{expiring}")).await;
            (run["state"]["type"] == "FAILED").then_some(run["state"].clone())
        })
        .await;
    assert_eq!(state["message"], "The flow was paused and never resumed.");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.get(&format!("flow_runs/{waiting}")).await.1["state"]["type"], "PAUSED", "unexpired pauses stay");
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), service).await.expect("the loop stops on shutdown").expect("no panic");
}

#[tokio::test]
async fn expired_pauses_are_not_failed_twice_nor_after_resuming() {
    let app = spawn_app().await;
    let past = (chrono::Utc::now() + chrono::Duration::milliseconds(700)).to_rfc3339();
    let run_id = paused_run(&app, json!({"pause_timeout": past})).await;
    let (_, resumed) = app.post(&format!("flow_runs/{run_id}/resume"), json!({})).await;
    assert_eq!(resumed["status"], "ACCEPT");
    tokio::time::sleep(Duration::from_millis(800)).await;
    let service = PauseExpirations::new(PauseExpirationsOptions::default(), app.core.clone());
    assert_eq!(service.run_once().await.unwrap(), 0);
    assert_eq!(set_state(&app, "flow_runs", &run_id, "COMPLETED", false).await.1["status"], "ACCEPT");
}
