use prefect_testing::spawn_app;
use serde_json::json;

use crate::support::{flow, flow_run, id};

#[tokio::test]
async fn logs_are_stored_in_batches_and_filtered() {
    let app = spawn_app().await;
    let run_id = id(&flow_run(&app, &flow(&app).await, json!({})).await);
    let task_id = uuid::Uuid::new_v4();
    let logs: Vec<_> = (0..250)
        .map(|i| {
            json!({"name": "test", "level": if i % 2 == 0 { 20 } else { 40 }, "message": format!("line {i:03}"),
                   "timestamp": format!("2026-01-01T00:00:{:02}.{:06}Z", i / 10, i), "flow_run_id": run_id,
                   "task_run_id": if i < 10 { Some(task_id) } else { None }})
        })
        .collect();
    let (status, body) = app.post("logs/", json!(logs)).await;
    assert_eq!((status, body), (201, serde_json::Value::Null));

    let (_, page) = app.post("logs/filter", json!({"logs": {"flow_run_id": {"any_": [run_id]}}, "limit": 200})).await;
    let page = page.as_array().unwrap();
    assert_eq!(page.len(), 200);
    assert_eq!(page[0]["message"], "line 000", "TIMESTAMP_ASC is the default");
    let (_, errors) =
        app.post("logs/filter", json!({"logs": {"flow_run_id": {"any_": [run_id]}, "level": {"ge_": 40}}, "sort": "TIMESTAMP_DESC", "limit": 200})).await;
    assert_eq!(errors.as_array().unwrap().len(), 125);
    assert_eq!(errors[0]["message"], "line 249");
    let (_, of_task) = app.post("logs/filter", json!({"logs": {"task_run_id": {"any_": [task_id]}}})).await;
    assert_eq!(of_task.as_array().unwrap().len(), 10);
    let (_, no_task) = app.post("logs/filter", json!({"logs": {"flow_run_id": {"any_": [run_id]}, "task_run_id": {"is_null_": true}}, "offset": 200})).await;
    assert_eq!(no_task.as_array().unwrap().len(), 40);
    let (status, _) = app.post("logs/filter", json!({"limit": 201})).await;
    assert_eq!(status, 422, "limit is capped at 200");

    let response = app.client.get(app.url(&format!("flow_runs/{run_id}/logs/download"))).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let csv = response.text().await.unwrap();
    assert_eq!(csv.lines().count(), 251);
}

/// Concurrent requests share flushes (see `LogQueue`): every request's lines are stored
/// exactly once, and a request whose lines the database refuses fails alone.
#[tokio::test]
async fn concurrent_log_batches_are_each_stored_once_and_fail_alone() {
    let app = spawn_app().await;
    let run_id = id(&flow_run(&app, &flow(&app).await, json!({})).await);
    let line = |request: usize, i: usize, message: String| {
        json!({"name": "load", "level": 20, "message": message, "flow_run_id": run_id,
               "timestamp": format!("2026-01-01T00:{:02}:{:02}.{:06}Z", request / 60, request % 60, i)})
    };
    // PostgreSQL refuses a NUL character in text; SQLite stores it.
    let refused_by_postgres = 7;
    let requests = (0..48).map(|request| {
        let lines: Vec<_> = (0..60)
            .map(|i| {
                let message = if request == refused_by_postgres && i == 30 { "nul \u{0}".to_owned() } else { format!("r{request:02} l{i:02}") };
                line(request, i, message)
            })
            .collect();
        let app = &app;
        async move { app.post("logs/", json!(lines)).await.0 }
    });
    let statuses = futures_util::future::join_all(requests).await;

    let mut stored = Vec::new();
    loop {
        let filter = json!({"logs": {"flow_run_id": {"any_": [run_id]}}, "limit": 200, "offset": stored.len()});
        let (_, page) = app.post("logs/filter", filter).await;
        let page = page.as_array().unwrap().clone();
        stored.extend(page.iter().map(|l| l["message"].as_str().unwrap().to_owned()));
        if page.len() < 200 {
            break;
        }
    }
    let postgres = app.core.db().backend() == prefect_storage::Backend::Postgres;
    for (request, status) in statuses.iter().enumerate() {
        let of_request: Vec<_> = stored.iter().filter(|m| m.starts_with(&format!("r{request:02} "))).collect();
        if postgres && request == refused_by_postgres {
            assert!(*status >= 500, "the refused batch fails: {status}");
            assert!(of_request.is_empty(), "none of a failed batch is stored: {of_request:?}");
        } else {
            assert_eq!(*status, 201, "request {request}");
            let expected = if request == refused_by_postgres { 59 } else { 60 };
            assert_eq!(of_request.len(), expected, "request {request}: every line once");
        }
    }
    let total = if postgres { 47 * 60 } else { 48 * 60 };
    assert_eq!(stored.len(), total, "no line stored twice");
    let mut unique = stored.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), stored.len());
}
