use prefect_testing::spawn_app;
use serde_json::json;

use crate::support::{flow, flow_run, id, set_state, unique};

#[tokio::test]
async fn flow_run_lifecycle_records_states_and_bookkeeping() {
    let app = spawn_app().await;
    let flow_id = flow(&app).await;
    let run = flow_run(&app, &flow_id, json!({"parameters": {"n": 3}, "tags": ["t1"]})).await;
    assert_eq!(run["state_type"], "PENDING");
    assert_eq!(run["state"]["name"], "Pending");
    assert_eq!(run["labels"]["prefect.flow.id"], flow_id);
    assert!(run["name"].as_str().unwrap().contains('-'), "a generated name");
    let run_id = id(&run);

    let (status, result) = set_state(&app, "flow_runs", &run_id, "RUNNING", false).await;
    assert_eq!((status, result["status"].as_str()), (201, Some("ACCEPT")));
    assert_eq!(result["details"]["type"], "accept_details");
    assert_eq!(result["state"]["state_details"]["flow_run_id"], run_id);

    let (status, result) = set_state(&app, "flow_runs", &run_id, "COMPLETED", false).await;
    assert_eq!((status, result["status"].as_str()), (201, Some("ACCEPT")));

    let (_, run) = app.get(&format!("flow_runs/{run_id}")).await;
    assert_eq!(run["state_type"], "COMPLETED");
    assert_eq!(run["run_count"], 1);
    assert!(run["start_time"].is_string() && run["end_time"].is_string());
    assert!(run["total_run_time"].as_f64().unwrap() >= 0.0);

    let (_, states) = app.get(&format!("flow_run_states/?flow_run_id={run_id}")).await;
    let names: Vec<&str> = states.as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["Pending", "Running", "Completed"]);
    let state_id = states[0]["id"].as_str().unwrap();
    assert_eq!(app.get(&format!("flow_run_states/{state_id}")).await.1["type"], "PENDING");
}

#[tokio::test]
async fn rejected_and_aborted_proposals_answer_200_with_the_current_state() {
    let app = spawn_app().await;
    let run_id = id(&flow_run(&app, &flow(&app).await, json!({})).await);
    let (status, result) = set_state(&app, "flow_runs", &run_id, "PENDING", false).await;
    assert_eq!((status, result["status"].as_str()), (200, Some("ABORT")));
    assert_eq!(result["state"]["type"], "PENDING");
    set_state(&app, "flow_runs", &run_id, "RUNNING", false).await;
    set_state(&app, "flow_runs", &run_id, "COMPLETED", false).await;
    let (status, result) = set_state(&app, "flow_runs", &run_id, "SCHEDULED", false).await;
    assert_eq!((status, result["status"].as_str()), (200, Some("ABORT")));
    assert_eq!(result["details"]["reason"], "Cannot reschedule a run without an associated deployment.");
    let (status, result) = set_state(&app, "flow_runs", &run_id, "SCHEDULED", true).await;
    assert_eq!((status, result["status"].as_str()), (201, Some("ACCEPT")));
}

#[tokio::test]
async fn transition_ids_make_retried_proposals_idempotent() {
    let app = spawn_app().await;
    let run_id = id(&flow_run(&app, &flow(&app).await, json!({})).await);
    let body = json!({"state": {"type": "RUNNING", "state_details": {"transition_id": uuid::Uuid::new_v4()}}});
    let (first, accepted) = app.post(&format!("flow_runs/{run_id}/set_state"), body.clone()).await;
    let (second, repeated) = app.post(&format!("flow_runs/{run_id}/set_state"), body).await;
    assert_eq!((first, second), (201, 200));
    assert_eq!(repeated["status"], "REJECT");
    assert_eq!(repeated["state"]["id"], accepted["state"]["id"]);
    let (_, states) = app.get(&format!("flow_run_states/?flow_run_id={run_id}")).await;
    assert_eq!(states.as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn flow_retries_go_through_awaiting_retry() {
    let app = spawn_app().await;
    let run_id = id(&flow_run(&app, &flow(&app).await, json!({"empirical_policy": {"retries": 1, "retry_delay": 0}})).await);
    set_state(&app, "flow_runs", &run_id, "RUNNING", false).await;
    let (status, result) = set_state(&app, "flow_runs", &run_id, "FAILED", false).await;
    assert_eq!((status, result["status"].as_str()), (201, Some("REJECT")));
    assert_eq!(result["state"]["name"], "AwaitingRetry");
    assert_eq!(result["state"]["type"], "SCHEDULED");
    let (_, result) = set_state(&app, "flow_runs", &run_id, "RUNNING", false).await;
    assert_eq!(result["status"], "ACCEPT");
    let (_, result) = set_state(&app, "flow_runs", &run_id, "FAILED", false).await;
    assert_eq!(result["status"], "ACCEPT", "retries are exhausted");
    let (_, run) = app.get(&format!("flow_runs/{run_id}")).await;
    assert_eq!(run["run_count"], 2);
    assert_eq!(run["empirical_policy"]["retry_type"], serde_json::Value::Null);
}

#[tokio::test]
async fn idempotency_keys_return_the_existing_run() {
    let app = spawn_app().await;
    let flow_id = flow(&app).await;
    let key = unique("key");
    let first = flow_run(&app, &flow_id, json!({"idempotency_key": key})).await;
    let (status, second) = app.post("flow_runs/", json!({"flow_id": flow_id, "idempotency_key": key})).await;
    assert_eq!(status, 200);
    assert_eq!(first["id"], second["id"]);
}

#[tokio::test]
async fn filters_cover_state_tags_names_times_and_parents() {
    let app = spawn_app().await;
    let flow_id = flow(&app).await;
    let tag = unique("tag");
    let a = flow_run(&app, &flow_id, json!({"name": format!("{tag}-a"), "tags": [tag, "x"]})).await;
    let b = flow_run(
        &app,
        &flow_id,
        json!({"name": format!("{tag}-b"), "tags": [tag], "state": {"type": "SCHEDULED", "state_details": {"scheduled_time": "2030-01-01T00:00:00Z"}}}),
    )
    .await;
    set_state(&app, "flow_runs", &id(&a), "RUNNING", false).await;

    let names = |runs: &serde_json::Value| runs.as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap().to_owned()).collect::<Vec<_>>();
    let (_, runs) = app.post("flow_runs/filter", json!({"flow_runs": {"tags": {"all_": [tag, "x"]}}})).await;
    assert_eq!(names(&runs), [format!("{tag}-a")]);
    let (_, runs) = app.post("flow_runs/filter", json!({"flow_runs": {"tags": {"any_": [tag]}, "state": {"type": {"any_": ["SCHEDULED"]}}}})).await;
    assert_eq!(names(&runs), [format!("{tag}-b")]);
    let (_, runs) = app
        .post(
            "flow_runs/filter",
            json!({"flow_runs": {"operator": "or_", "name": {"like_": format!("{tag}-a")}, "state": {"type": {"any_": ["SCHEDULED"]}}}, "sort": "NAME_ASC"}),
        )
        .await;
    assert!(names(&runs).starts_with(&[format!("{tag}-a"), format!("{tag}-b")]));
    let (_, runs) =
        app.post("flow_runs/filter", json!({"flow_runs": {"tags": {"all_": [tag]}, "expected_start_time": {"after_": "2029-01-01T00:00:00Z"}}})).await;
    assert_eq!(names(&runs), [format!("{tag}-b")]);
    let (_, runs) = app.post("flow_runs/filter", json!({"flows": {"id": {"any_": [flow_id]}}, "sort": "EXPECTED_START_TIME_DESC"})).await;
    assert_eq!(runs.as_array().unwrap().len(), 2);
    assert_eq!(runs[0]["id"], b["id"], "sorted by expected start, newest first");
    let (_, runs) = app.post("flow_runs/filter", json!({"flow_runs": {"id": {"any_": []}}})).await;
    assert_eq!(runs, json!([]), "an empty any_ matches nothing");
    let (_, count) = app.post("flow_runs/count", json!({"flow_runs": {"tags": {"all_": [tag]}, "parent_task_run_id": {"is_null_": true}}})).await;
    assert_eq!(count, json!(2));
}

#[tokio::test]
async fn update_labels_delete_and_history() {
    let app = spawn_app().await;
    let run_id = id(&flow_run(&app, &flow(&app).await, json!({"labels": {"team": "data"}})).await);
    assert_eq!(app.patch(&format!("flow_runs/{run_id}"), json!({"name": "renamed", "tags": ["z"]})).await.0, 204);
    assert_eq!(app.patch(&format!("flow_runs/{run_id}/labels"), json!({"traceparent": "00-abc"})).await.0, 204);
    let (_, run) = app.get(&format!("flow_runs/{run_id}")).await;
    assert_eq!((run["name"].as_str(), run["tags"].clone()), (Some("renamed"), json!(["z"])));
    assert_eq!(run["labels"]["team"], "data");
    assert_eq!(run["labels"]["traceparent"], "00-abc");

    let now = chrono::Utc::now();
    let (start, end) = ((now - chrono::TimeDelta::hours(1)).to_rfc3339(), (now + chrono::TimeDelta::hours(1)).to_rfc3339());
    let (status, history) = app
        .post(
            "flow_runs/history",
            json!({"history_start": start, "history_end": end, "history_interval_seconds": 3600, "flow_runs": {"id": {"any_": [run_id]}}}),
        )
        .await;
    assert_eq!(status, 200, "{history}");
    let buckets = history.as_array().unwrap();
    assert_eq!(buckets.len(), 2);
    let total: i64 = buckets.iter().flat_map(|b| b["states"].as_array().unwrap()).map(|s| s["count_runs"].as_i64().unwrap()).sum();
    assert_eq!(total, 1);

    assert_eq!(app.delete(&format!("flow_runs/{run_id}")).await.0, 204);
    assert_eq!(app.get(&format!("flow_runs/{run_id}")).await.0, 404);
}

#[tokio::test]
async fn subflow_states_are_mirrored_onto_the_parent_task_run() {
    let app = spawn_app().await;
    let flow_id = flow(&app).await;
    let parent = flow_run(&app, &flow_id, json!({"state": {"type": "RUNNING"}})).await;
    let (status, task) =
        app.post("task_runs/", json!({"flow_run_id": parent["id"], "task_key": "child", "dynamic_key": "0", "state": {"type": "PENDING"}})).await;
    assert_eq!(status, 201);
    let child = flow_run(&app, &flow_id, json!({"parent_task_run_id": task["id"]})).await;
    set_state(&app, "flow_runs", &id(&child), "RUNNING", false).await;
    let (_, task) = app.get(&format!("task_runs/{}", id(&task))).await;
    assert_eq!(task["state_type"], "RUNNING");
    assert_eq!(task["state"]["state_details"]["child_flow_run_id"], child["id"]);
    let (_, children) = app.post("flow_runs/filter", json!({"flow_runs": {"parent_flow_run_id": {"any_": [parent["id"]]}}})).await;
    assert_eq!(children[0]["id"], child["id"]);
}

#[tokio::test]
async fn flow_run_inputs_round_trip() {
    let app = spawn_app().await;
    let run_id = id(&flow_run(&app, &flow(&app).await, json!({})).await);
    let (status, _) = app.post(&format!("flow_runs/{run_id}/input"), json!({"key": "answer-1", "value": "{\"n\": 1}"})).await;
    assert_eq!(status, 201);
    let (status, _) = app.post(&format!("flow_runs/{run_id}/input"), json!({"key": "answer-1", "value": "2"})).await;
    assert_eq!(status, 409);
    let (_, value) = app.get(&format!("flow_runs/{run_id}/input/answer-1")).await;
    assert_eq!(value, json!({"n": 1}));
    let (_, found) = app.post(&format!("flow_runs/{run_id}/input/filter"), json!({"prefix": "answer", "limit": 5})).await;
    assert_eq!(found[0]["key"], "answer-1");
    assert_eq!(app.delete(&format!("flow_runs/{run_id}/input/answer-1")).await.0, 204);
    assert_eq!(app.get(&format!("flow_runs/{run_id}/input/answer-1")).await.0, 404);
}

#[tokio::test]
async fn graph_links_task_inputs_and_subflows() {
    let app = spawn_app().await;
    let flow_id = flow(&app).await;
    let parent = flow_run(&app, &flow_id, json!({"state": {"type": "RUNNING"}})).await;
    let make = |key: &str, inputs: serde_json::Value| json!({"flow_run_id": parent["id"], "task_key": key, "dynamic_key": "0", "task_inputs": inputs, "state": {"type": "RUNNING"}});
    let (_, upstream) = app.post("task_runs/", make("up", json!({}))).await;
    let (_, downstream) = app.post("task_runs/", make("down", json!({"x": [{"input_type": "task_run", "id": upstream["id"]}]}))).await;
    let (_, wrapper) = app.post("task_runs/", make("sub", json!({}))).await;
    let child = flow_run(&app, &flow_id, json!({"parent_task_run_id": wrapper["id"], "name": "child-run", "state": {"type": "RUNNING"}})).await;

    let (status, graph) = app.get(&format!("flow_runs/{}/graph-v2", id(&parent))).await;
    assert_eq!(status, 200, "{graph}");
    let nodes: std::collections::HashMap<String, serde_json::Value> =
        graph["nodes"].as_array().unwrap().iter().map(|pair| (pair[0].as_str().unwrap().to_owned(), pair[1].clone())).collect();
    assert_eq!(nodes.len(), 3);
    let down = &nodes[&id(&downstream)];
    assert_eq!(down["parents"], json!([{"id": upstream["id"]}]));
    assert_eq!(nodes[&id(&upstream)]["children"], json!([{"id": downstream["id"]}]));
    let sub = &nodes[&id(&child)];
    assert_eq!(sub["kind"], "flow-run");
    assert!(sub["label"].as_str().unwrap().ends_with("/ child-run"));
    let roots: Vec<&str> = graph["root_node_ids"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert!(roots.contains(&id(&upstream).as_str()) && !roots.contains(&id(&downstream).as_str()));
    assert_eq!(graph["states"].as_array().unwrap().len(), 1);
    assert_eq!(app.get(&format!("flow_runs/{}/graph-v2", uuid::Uuid::new_v4())).await.0, 404);
}

#[tokio::test]
async fn lateness_averages_how_late_runs_started_or_are() {
    let app = prefect_testing::spawn_app().await;
    let flow_id = crate::support::flow(&app).await;
    let ten_seconds_ago = (chrono::Utc::now() - chrono::TimeDelta::seconds(10)).to_rfc3339();
    let scheduled = serde_json::json!({"state": {"type": "SCHEDULED", "state_details": {"scheduled_time": ten_seconds_ago}}});
    let started = crate::support::flow_run(&app, &flow_id, scheduled.clone()).await;
    let started_id = started["id"].as_str().unwrap().to_owned();
    for kind in ["PENDING", "RUNNING"] {
        let (_, r) = crate::support::set_state(&app, "flow_runs", &started_id, kind, false).await;
        assert_eq!(r["status"], "ACCEPT", "{r}");
    }
    let overdue = crate::support::flow_run(&app, &flow_id, scheduled).await;
    let on_time = crate::support::flow_run(&app, &flow_id, serde_json::json!({"state": {"type": "COMPLETED"}})).await;

    let lateness = |ids: Vec<serde_json::Value>| {
        let app = &app;
        async move { app.post("flow_runs/lateness", serde_json::json!({"flow_runs": {"id": {"any_": ids}}})).await }
    };
    let (status, late) = lateness(vec![started["id"].clone()]).await;
    assert_eq!(status, 200);
    let late = late.as_f64().unwrap();
    assert!((9.0..30.0).contains(&late), "started about 10 s late: {late}");
    let overdue_now = lateness(vec![overdue["id"].clone()]).await.1.as_f64().unwrap();
    assert!(overdue_now >= 9.0, "not started and 10 s overdue: {overdue_now}");
    assert_eq!(lateness(vec![on_time["id"].clone()]).await.1.as_f64(), Some(0.0));
    let both = lateness(vec![started["id"].clone(), on_time["id"].clone()]).await.1.as_f64().unwrap();
    assert!((both - late / 2.0).abs() < 1.0, "an average: {both} vs {late}");
    assert_eq!(lateness(vec![serde_json::json!(uuid::Uuid::new_v4())]).await.1, serde_json::Value::Null);
}

/// Counts by state type come from counters the database keeps (triggers); they must
/// agree with counting the rows after every kind of change: create, state change,
/// delete, bulk delete, and on PostgreSQL before and after the deltas are folded.
#[tokio::test]
async fn state_only_counts_agree_with_counting_rows() {
    let app = spawn_app().await;
    let flow_id = flow(&app).await;
    let mut runs = Vec::new();
    for _ in 0..3 {
        runs.push(id(&flow_run(&app, &flow_id, json!({"state": {"type": "SCHEDULED"}})).await));
    }
    for _ in 0..4 {
        runs.push(id(&flow_run(&app, &flow_id, json!({})).await));
    }
    for run in &runs[3..5] {
        set_state(&app, "flow_runs", run, "RUNNING", false).await;
    }
    set_state(&app, "flow_runs", &runs[5], "COMPLETED", true).await;
    // Now: 3 SCHEDULED, 2 RUNNING, 1 COMPLETED, 1 PENDING.

    let state_filters = [
        json!({}),
        json!({"flow_runs": {}}),
        json!({"flow_runs": {"state": {}}}),
        json!({"flow_runs": {"state": {"type": {"any_": ["SCHEDULED", "RUNNING"]}}}}),
        json!({"flow_runs": {"state": {"type": {"any_": []}}}}),
        json!({"flow_runs": {"state": {"type": {"not_any_": ["COMPLETED"]}}}}),
        json!({"flow_runs": {"state": {"operator": "or_", "type": {"any_": ["PENDING"], "not_any_": ["SCHEDULED", "PENDING"]}}}}),
        json!({"flow_runs": {"operator": "or_", "state": {"type": {"any_": ["COMPLETED", "FAILED"]}}}}),
    ];
    let check = |expected: [u64; 8], moment: &'static str| {
        let app = &app;
        let state_filters = &state_filters;
        async move {
            for (filter, want) in state_filters.iter().zip(expected) {
                let (status, counted) = app.post("flow_runs/count", filter.clone()).await;
                assert_eq!(status, 200, "{counted}");
                // An empty flow filter matches every run, and makes the count visit rows.
                let mut by_rows = filter.clone();
                by_rows["flows"] = json!({});
                let (_, rows) = app.post("flow_runs/count", by_rows).await;
                assert_eq!((counted.as_u64(), rows.as_u64()), (Some(want), Some(want)), "{moment}: {filter}");
            }
        }
    };
    check([7, 7, 7, 5, 0, 6, 4, 1], "after creating").await;

    set_state(&app, "flow_runs", &runs[0], "PENDING", true).await;
    set_state(&app, "flow_runs", &runs[3], "FAILED", true).await;
    // 2 SCHEDULED, 1 RUNNING, 1 COMPLETED, 1 FAILED, 2 PENDING.
    check([7, 7, 7, 3, 0, 6, 5, 2], "after state changes").await;

    let (status, _) = app.delete(&format!("flow_runs/{}", runs[5])).await;
    assert_eq!(status, 204);
    let (status, deleted) = app.post("flow_runs/bulk_delete", json!({"flow_runs": {"id": {"any_": [runs[1], runs[4]]}}})).await;
    assert_eq!(status, 200, "{deleted}");
    // 1 SCHEDULED, 1 FAILED, 2 PENDING.
    check([4, 4, 4, 1, 0, 4, 3, 1], "after deletes").await;

    let folded = app.core.db().fold_state_counts().await.unwrap();
    assert_eq!(folded > 0, app.db.backend() == prefect_storage::Backend::Postgres, "only PostgreSQL appends deltas");
    check([4, 4, 4, 1, 0, 4, 3, 1], "after folding").await;
    set_state(&app, "flow_runs", &runs[6], "CANCELLED", true).await;
    check([4, 4, 4, 1, 0, 4, 3, 1], "after a change on folded counts").await;
}

#[tokio::test]
async fn filter_bodies_the_python_client_sends_with_defaults_left_null_are_accepted() {
    let app = spawn_app().await;
    let flow_id = flow(&app).await;
    let run = flow_run(&app, &flow_id, json!({})).await;
    // `PrefectClient.read_flow_runs()` and friends with no arguments.
    let everything_null = json!({"flows": null, "flow_runs": null, "task_runs": null, "deployments": null, "work_pools": null,
                                 "work_pool_queues": null, "sort": null, "limit": null, "offset": 0});
    let (status, runs) = app.post("flow_runs/filter", everything_null.clone()).await;
    assert_eq!(status, 200, "{runs}");
    assert_eq!(runs[0]["id"], run["id"]);
    for path in ["task_runs/filter", "flows/filter", "deployments/filter"] {
        let (status, body) = app.post(path, everything_null.clone()).await;
        assert_eq!(status, 200, "{path}: {body}");
    }
    // `read_logs()`, `read_artifacts()`, ... leave the offset out as null too.
    for path in [
        "logs/filter",
        "artifacts/filter",
        "artifacts/latest/filter",
        "variables/filter",
        "automations/filter",
        "flow_runs/filter",
        "v2/concurrency_limits/filter",
    ] {
        let (status, body) = app.post(path, json!({"sort": null, "limit": null, "offset": null})).await;
        assert_eq!(status, 200, "{path}: {body}");
    }
    assert_eq!(app.post("flow_runs/filter", json!({"sort": "SIDEWAYS"})).await.0, 422);
}

#[tokio::test]
async fn bulk_set_state_orchestrates_each_matching_run() {
    let app = spawn_app().await;
    let flow_id = flow(&app).await;
    let tag = unique("bulk");
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(id(&flow_run(&app, &flow_id, json!({"tags": [tag], "state": {"type": "SCHEDULED"}})).await));
    }
    ids.push(id(&flow_run(&app, &flow_id, json!({"tags": [tag], "state": {"type": "COMPLETED"}})).await));
    let untagged = id(&flow_run(&app, &flow_id, json!({"state": {"type": "SCHEDULED"}})).await);
    let body = json!({"flow_runs": {"tags": {"all_": [tag]}}, "state": {"type": "CANCELLED", "message": "bulk"}});
    let (status, answer) = app.post("flow_runs/bulk_set_state", body.clone()).await;
    assert_eq!(status, 200, "{answer}");
    let results = answer["results"].as_array().unwrap();
    let mut touched: Vec<&str> = results.iter().map(|r| r["flow_run_id"].as_str().unwrap()).collect();
    touched.sort();
    ids.sort();
    assert_eq!(touched, ids.iter().map(String::as_str).collect::<Vec<_>>());
    for result in results {
        // As in Prefect, a Completed run may be cancelled too.
        assert_eq!((result["status"].clone(), result["state"]["type"].clone()), (json!("ACCEPT"), json!("CANCELLED")), "{result}");
        let run_id = result["flow_run_id"].as_str().unwrap();
        assert_eq!(app.get(&format!("flow_runs/{run_id}")).await.1["state"]["message"], "bulk");
    }
    assert_eq!(app.get(&format!("flow_runs/{untagged}")).await.1["state_type"], "SCHEDULED");
    let (_, none) = app.post("flow_runs/bulk_set_state", json!({"flow_runs": {"tags": {"all_": [unique("nothing")]}}, "state": {"type": "CANCELLED"}})).await;
    assert_eq!(none, json!({"results": []}));
    let mut too_many = body;
    too_many["limit"] = json!(51);
    assert_eq!(app.post("flow_runs/bulk_set_state", too_many).await.0, 422);
}
