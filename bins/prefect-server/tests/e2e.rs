//! End to end: a real Python flow, run by the `prefect` 3.9.1 SDK against the
//! server, and what the server recorded about it.
//!
//! Needs a Python with `prefect==3.9.1` (the conformance venv): set
//! `PREFECT_E2E_PYTHON`, or let `scripts/test.sh` set it up. Run with
//! `cargo test -p prefect-server --test e2e -- --ignored`.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::path::PathBuf;
use std::process::Command;

use prefect_testing::{TestApp, spawn_app};
use serde_json::{Value, json};

fn python() -> PathBuf {
    if let Ok(python) = std::env::var("PREFECT_E2E_PYTHON") {
        return PathBuf::from(python);
    }
    let home = std::env::var("HOME").unwrap_or_default();
    let candidates = [
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance/.venv/bin/python"),
        PathBuf::from(home).join(".cache/prefect-conformance-venv/bin/python"),
    ];
    candidates.into_iter().find(|p| p.exists()).expect("no Python with prefect 3.9.1: set PREFECT_E2E_PYTHON or run scripts/test.sh")
}

async fn filter(app: &TestApp, path: &str, body: Value) -> Vec<Value> {
    let (status, found) = app.post(path, body).await;
    assert_eq!(status, 200, "{found}");
    found.as_array().cloned().unwrap_or_default()
}

/// The state names of a flow run (`kind` "flow_run") or task run ("task_run"), oldest first.
async fn state_names(app: &TestApp, kind: &str, id: &str) -> Vec<String> {
    let (status, states) = app.get(&format!("{kind}_states/?{kind}_id={id}")).await;
    assert_eq!(status, 200, "{states}");
    states.as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap().to_owned()).collect()
}

/// A short random tag that keeps one test's pools, deployments and modules apart.
fn tag() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..8].to_owned()
}

/// Workers poll every second and look 5 s ahead, so runs start promptly.
const FAST_WORKER_POLLING: [(&str, &str); 2] = [("PREFECT_WORKER_QUERY_SECONDS", "1"), ("PREFECT_WORKER_PREFETCH_SECONDS", "5")];

/// Runs `tests/<script> <tag>` with the venv's Python against `app`, with a fresh
/// `PREFECT_HOME` and the venv's `prefect` CLI first on `PATH`; returns the JSON summary
/// the script prints as its last line (and stderr, for assertion messages).
async fn run_script(app: &TestApp, script: &str, tag: &str, extra_env: &[(&str, &str)]) -> (Value, String) {
    let home = tempfile::tempdir().unwrap();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests").join(script);
    let py = python();
    let bin = py.parent().map(|p| p.to_path_buf()).unwrap_or_default();
    let mut command = Command::new(&py);
    command
        .arg(script)
        .arg(tag)
        .env("PATH", format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default()))
        .env("PREFECT_API_URL", &app.api)
        .env("PREFECT_HOME", home.path())
        .env("PREFECT_LOCAL_STORAGE_PATH", home.path().join("storage"))
        .env("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
        .env("PREFECT_LOGGING_TO_API_BATCH_INTERVAL", "0.3")
        .env("DO_NOT_TRACK", "1");
    for (key, value) in extra_env {
        command.env(key, value);
    }
    let output = tokio::task::spawn_blocking(move || {
        let output = command.output().expect("run python");
        drop(home);
        output
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "script failed:\n{stdout}\n{stderr}");
    let summary = serde_json::from_str(stdout.lines().last().unwrap_or_default()).expect("summary line");
    (summary, stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the prefect 3.9.1 venv; scripts/test.sh runs it"]
async fn a_python_flow_is_recorded_as_the_python_server_would() {
    let app = spawn_app().await;
    let tag = tag();
    let (summary, _) = run_script(&app, "e2e_flow.py", &tag, &[]).await;
    assert_eq!(summary["completed"], true);
    assert_eq!(summary["result"], json!(5 + 6), "child(4) + 0+2+4");
    let run_id = summary["flow_run_id"].as_str().unwrap().to_owned();

    // The flow run, its states and its persisted result.
    let (_, run) = app.get(&format!("flow_runs/{run_id}")).await;
    assert_eq!((run["state_type"].as_str(), run["state_name"].as_str(), run["run_count"].as_i64()), (Some("COMPLETED"), Some("Completed"), Some(1)));
    assert!(run["state"]["data"]["storage_key"].is_string(), "persisted result metadata: {}", run["state"]);
    assert!(run["start_time"].is_string() && run["end_time"].is_string());
    let names = state_names(&app, "flow_run", &run_id).await;
    assert_eq!(names, ["Pending", "Running", "Completed"]);

    // Task runs arrive as events through the task run recorder.
    let task_runs = app
        .eventually(30, || async {
            let found = filter(&app, "task_runs/filter", json!({"flow_runs": {"id": {"any_": [run_id]}}})).await;
            (found.len() == 7 && found.iter().all(|t| t["state_type"] == "COMPLETED")).then_some(found)
        })
        .await;
    let named = |prefix: &str| task_runs.iter().filter(|t| t["name"].as_str().unwrap().starts_with(prefix)).cloned().collect::<Vec<_>>();
    let flaky = &named("flaky-")[0];
    assert_eq!(flaky["run_count"], 2, "one retry");
    let cached = named("cached-");
    let mut cached_names: Vec<&str> = cached.iter().map(|t| t["state_name"].as_str().unwrap()).collect();
    cached_names.sort_unstable();
    assert_eq!(cached_names, ["Cached", "Completed"]);
    assert_eq!(named("add-").len(), 3);
    assert!(named("add-").iter().all(|t| t["tags"].as_array().unwrap().contains(&json!("e2e"))));
    let flaky_names = state_names(&app, "task_run", flaky["id"].as_str().unwrap()).await;
    assert!(flaky_names.iter().any(|n| n == "Retrying") && flaky_names.last().map(String::as_str) == Some("Completed"), "{flaky_names:?}");

    // The subflow is linked to its wrapper task run.
    let wrapper = &named("e2e-child")[0];
    let children = filter(&app, "flow_runs/filter", json!({"flow_runs": {"parent_task_run_id": {"any_": [wrapper["id"]]}}})).await;
    assert_eq!(children.len(), 1);
    assert_eq!(children[0]["state_type"], "COMPLETED");
    assert_eq!(wrapper["state"]["state_details"]["child_flow_run_id"], children[0]["id"]);

    // Logs, prints and the artifact.
    let logs = app
        .eventually(30, || async {
            let logs = filter(&app, "logs/filter", json!({"logs": {"flow_run_id": {"any_": [run_id]}}})).await;
            let messages: Vec<String> = logs.iter().map(|l| l["message"].as_str().unwrap().to_owned()).collect();
            (messages.iter().any(|m| m.starts_with("starting ")) && messages.iter().any(|m| m.starts_with("printed "))).then_some(logs)
        })
        .await;
    assert!(logs.iter().any(|l| l["task_run_id"].is_string()), "task logs carry their task run");
    let artifacts = filter(&app, "artifacts/filter", json!({"artifacts": {"flow_run_id": {"any_": [run_id]}, "type": {"any_": ["markdown"]}}})).await;
    assert_eq!(artifacts.len(), 1);

    // Events for the flow run's transitions.
    let (_, events) = app
        .post("events/filter", json!({"filter": {"resource": {"id": [format!("prefect.flow-run.{run_id}")]}, "event": {"exclude_name": ["prefect.flow-run.heartbeat"]}, "order": "ASC"}}))
        .await;
    let names: Vec<&str> = events["events"].as_array().unwrap().iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(names, ["prefect.flow-run.Pending", "prefect.flow-run.Running", "prefect.flow-run.Completed"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the prefect 3.9.1 venv; scripts/test.sh runs it"]
async fn a_process_worker_executes_a_deployment_run() {
    let app = spawn_app().await;
    let tag = tag();
    let (summary, stderr) = run_script(&app, "e2e_worker.py", &tag, &FAST_WORKER_POLLING).await;
    assert_eq!(summary["worker_exit"], 0, "{stderr}");
    let run_id = summary["flow_run_id"].as_str().unwrap().to_owned();
    let pool = summary["pool"].as_str().unwrap().to_owned();

    let (_, run) = app.get(&format!("flow_runs/{run_id}")).await;
    assert_eq!(run["state_type"], "COMPLETED", "{}", run["state"]);
    assert_eq!((run["work_pool_name"].as_str(), run["work_queue_name"].as_str()), (Some(pool.as_str()), Some("default")));
    assert_eq!(run["deployment_id"], summary["deployment_id"]);
    assert!(run["infrastructure_pid"].is_string(), "the worker records the process it started: {run}");
    let names = state_names(&app, "flow_run", &run_id).await;
    // Prefect 3.9 workers claim the run (Pending), then submit it (Submitting, a Pending state).
    assert_eq!(names, ["Scheduled", "Pending", "Submitting", "Running", "Completed"]);
    let workers = filter(&app, &format!("work_pools/{pool}/workers/filter"), json!({})).await;
    assert_eq!(workers.len(), 1, "the worker heartbeats under one name: {workers:?}");
    let (_, pool_now) = app.get(&format!("work_pools/{pool}")).await;
    assert_eq!(pool_now["status"], "READY", "a heartbeat makes the pool ready");
    let tag = summary["pool"].as_str().unwrap().trim_start_matches("e2e-pool-").to_owned();
    app.eventually(20, || async {
        let logs = filter(&app, "logs/filter", json!({"logs": {"flow_run_id": {"any_": [run_id]}}})).await;
        logs.iter().any(|l| l["message"].as_str().is_some_and(|m| m.contains(&format!("greetings {tag}")))).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the prefect 3.9.1 venv; scripts/test.sh runs it"]
async fn a_task_worker_runs_a_delayed_task() {
    let app = spawn_app().await;
    let tag = tag();
    let (summary, stderr) = run_script(&app, "e2e_task_worker.py", &tag, &[]).await;
    assert_eq!(summary["result"], 42, "{stderr}");
    assert_eq!(summary["seen_in_event_stream"], true, "the waiter hears the Completed event on /events/out: {stderr}");
    let task_run_id = summary["task_run_id"].as_str().unwrap().to_owned();
    let (_, run) = app.get(&format!("task_runs/{task_run_id}")).await;
    assert_eq!(run["state_type"], "COMPLETED", "{run}");
    assert_eq!(run["task_key"], summary["task_key"]);
    assert_eq!(run["flow_run_id"], Value::Null, "a background task runs outside any flow");
    let names = state_names(&app, "task_run", &task_run_id).await;
    assert_eq!(names.first().map(String::as_str), Some("Scheduled"), "{names:?}");
    assert_eq!(names.last().map(String::as_str), Some("Completed"), "{names:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the prefect 3.9.1 venv; scripts/test.sh runs it"]
async fn cancelling_a_run_stops_the_flow_a_worker_started() {
    let app = spawn_app().await;
    let tag = tag();
    let (summary, stderr) = run_script(&app, "e2e_cancel.py", &tag, &FAST_WORKER_POLLING).await;
    let log = format!("worker {}:\n{}", summary["worker_exit"], summary["worker_log"].as_str().unwrap_or_default());
    assert_eq!(summary["final_state"], "CANCELLED", "{log}\n{stderr}");
    assert_eq!(summary["flow_process_alive"], false, "the worker killed the flow's process: {log}");
    let run_id = summary["flow_run_id"].as_str().unwrap().to_owned();
    let names = state_names(&app, "flow_run", &run_id).await;
    assert_eq!(names.last().map(String::as_str), Some("Cancelled"), "{names:?}");
    assert!(names.iter().any(|n| n == "Cancelling"), "{names:?}");
}
