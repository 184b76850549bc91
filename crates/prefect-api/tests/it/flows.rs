use prefect_testing::spawn_app;
use serde_json::json;

use crate::support::unique;

#[tokio::test]
async fn flows_upsert_by_name_and_read_back() {
    let app = spawn_app().await;
    let name = unique("etl");
    let (first, created) = app.post("flows/", json!({"name": name, "tags": ["a"]})).await;
    let (second, existing) = app.post("flows/", json!({"name": name})).await;
    assert_eq!((first, second), (201, 200));
    assert_eq!(created["id"], existing["id"]);
    assert_eq!(created["tags"], json!(["a"]));

    let id = created["id"].as_str().unwrap();
    assert_eq!(app.get(&format!("flows/{id}")).await.1["name"], name);
    assert_eq!(app.get(&format!("flows/name/{name}")).await.1["id"], id);

    assert_eq!(app.patch(&format!("flows/{id}"), json!({"tags": ["x", "y"]})).await.0, 204);
    assert_eq!(app.get(&format!("flows/{id}")).await.1["tags"], json!(["x", "y"]));

    let (_, found) = app.post("flows/filter", json!({"flows": {"tags": {"all_": ["x", "y"]}}})).await;
    assert_eq!(found.as_array().unwrap().len(), 1);
    let (_, count) = app.post("flows/count", json!({"flows": {"name": {"any_": [name]}}})).await;
    assert_eq!(count, json!(1));

    assert_eq!(app.delete(&format!("flows/{id}")).await.0, 204);
    assert_eq!(app.get(&format!("flows/{id}")).await.0, 404);
    assert_eq!(app.delete(&format!("flows/{id}")).await.0, 404);
}

#[tokio::test]
async fn flows_sort_and_paginate() {
    let app = spawn_app().await;
    let tag = unique("page");
    for name in ["b", "a", "c"] {
        app.post("flows/", json!({"name": format!("{tag}-{name}"), "tags": [tag]})).await;
    }
    let (_, page) = app.post("flows/paginate", json!({"flows": {"tags": {"all_": [tag]}}, "limit": 2, "page": 2, "sort": "NAME_ASC"})).await;
    assert_eq!((page["count"].as_u64(), page["pages"].as_u64(), page["page"].as_u64()), (Some(3), Some(2), Some(2)));
    assert_eq!(page["results"][0]["name"], format!("{tag}-c"));
    let (_, desc) = app.post("flows/filter", json!({"flows": {"tags": {"all_": [tag]}}, "sort": "NAME_DESC", "limit": 1})).await;
    assert_eq!(desc[0]["name"], format!("{tag}-c"));
    let (_, deleted) = app.post("flows/bulk_delete", json!({"flows": {"tags": {"all_": [tag]}}})).await;
    assert_eq!(deleted["deleted"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn the_flows_page_gets_deployment_counts_and_next_runs() {
    let app = prefect_testing::spawn_app().await;
    let (busy, idle) = (crate::support::flow(&app).await, crate::support::flow(&app).await);
    for name in ["a", "b"] {
        let (status, _) = app.post("deployments/", serde_json::json!({"name": name, "flow_id": busy})).await;
        assert_eq!(status, 201);
    }
    let (_, counts) = app.post("ui/flows/count-deployments", serde_json::json!({"flow_ids": [busy, idle]})).await;
    assert_eq!(counts, serde_json::json!({busy.clone(): 2, idle.clone(): 0}));

    let later = serde_json::json!({"state": {"type": "SCHEDULED", "state_details": {"scheduled_time": "2099-01-02T00:00:00Z"}}});
    let sooner = serde_json::json!({"state": {"type": "SCHEDULED", "state_details": {"scheduled_time": "2099-01-01T00:00:00Z"}}});
    crate::support::flow_run(&app, &busy, later).await;
    let soonest = crate::support::flow_run(&app, &busy, sooner).await;
    crate::support::flow_run(&app, &busy, serde_json::json!({"state": {"type": "RUNNING"}})).await;
    let (status, next) = app.post("ui/flows/next-runs", serde_json::json!({"flow_ids": [busy, idle]})).await;
    assert_eq!(status, 200, "{next}");
    assert_eq!(next[&idle], serde_json::Value::Null);
    let run = &next[&busy];
    assert_eq!(run["id"], soonest["id"]);
    assert_eq!((run["state_type"].as_str(), run["state_name"].as_str()), (Some("SCHEDULED"), Some("Scheduled")));
    assert_eq!(run["next_scheduled_start_time"], "2099-01-01T00:00:00Z");
    assert_eq!(run["flow_id"], busy.as_str());

    let too_many: Vec<String> = (0..201).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    assert_eq!(app.post("ui/flows/next-runs", serde_json::json!({"flow_ids": too_many})).await.0, 422);
}
