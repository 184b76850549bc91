use prefect_services::{Foreman, ForemanOptions, LateRuns, LateRunsOptions};
use prefect_testing::{TestApp, spawn_app};
use serde_json::{Value, json};

use crate::support::{flow, flow_run, id, set_state, unique};

async fn pool(app: &TestApp, extra: Value) -> Value {
    let mut body = json!({"name": unique("pool"), "type": "process"});
    if let (Some(target), Value::Object(more)) = (body.as_object_mut(), extra) {
        target.extend(more);
    }
    let (status, created) = app.post("work_pools/", body).await;
    assert_eq!(status, 201, "{created}");
    created
}

fn names(v: &Value) -> Vec<String> {
    v.as_array().expect("a list").iter().map(|x| x["name"].as_str().expect("name").to_owned()).collect()
}

fn past(seconds: i64) -> String {
    (chrono::Utc::now() - chrono::Duration::seconds(seconds)).to_rfc3339()
}

#[tokio::test]
async fn pools_are_created_with_a_default_queue_and_unique_names() {
    let app = spawn_app().await;
    let created = pool(&app, json!({"description": "d"})).await;
    let name = created["name"].as_str().unwrap().to_owned();
    assert_eq!(created["status"], "NOT_READY");
    assert_eq!(created["active_slots"], Value::Null, "no limit, no slot count");
    assert_eq!(created["storage_configuration"], json!({"bundle_upload_step": null, "bundle_execution_step": null, "default_result_storage_block_id": null}));
    let (_, queues) = app.post(&format!("work_pools/{name}/queues/filter"), json!({})).await;
    assert_eq!(names(&queues), ["default"]);
    assert_eq!(queues[0]["id"], created["default_queue_id"]);
    assert_eq!(queues[0]["work_pool_name"], name);
    assert_eq!(queues[0]["priority"], 1);

    let (status, body) = app.post("work_pools/", json!({"name": name, "type": "process"})).await;
    assert_eq!((status, body["detail"].as_str()), (409, Some("A work pool with this name already exists.")));
    assert_eq!(app.post("work_pools/", json!({"name": "prefect-reserved"})).await.0, 403);
    assert_eq!(app.post("work_pools/", json!({"name": "a/b"})).await.0, 422);
    assert_eq!(app.post("work_pools/", json!({"name": "neg", "concurrency_limit": -1})).await.0, 422);
    let bad_template = json!({"name": unique("t"), "base_job_template": {"job_configuration": {"command": "{{ command }}"}, "variables": {"properties": {}}}});
    let (status, body) = app.post("work_pools/", bad_template).await;
    assert_eq!(status, 422, "{body}");
    assert!(body.to_string().contains("undeclared variable(s): command"), "{body}");

    let (status, agent) = app.post("work_pools/", json!({"name": unique("agent")})).await;
    assert_eq!((status, agent["type"].as_str(), &agent["status"]), (201, Some("prefect-agent"), &Value::Null), "agent pools have no status");
    assert_eq!(app.get(&format!("work_pools/{name}")).await.1["id"], created["id"]);
    assert_eq!(app.get("work_pools/missing-pool").await, (404, json!({"detail": "Work pool \"missing-pool\" not found."})));
}

#[tokio::test]
async fn pools_update_pause_filter_count_and_delete() {
    let app = spawn_app().await;
    let a = pool(&app, json!({})).await;
    let name = a["name"].as_str().unwrap().to_owned();
    assert_eq!(app.patch(&format!("work_pools/{name}"), json!({"is_paused": true, "concurrency_limit": 7})).await.0, 204);
    let (_, read) = app.get(&format!("work_pools/{name}")).await;
    assert_eq!((read["status"].as_str(), read["is_paused"].as_bool(), read["concurrency_limit"].as_i64()), (Some("PAUSED"), Some(true), Some(7)));
    assert_eq!(read["active_slots"], 0, "pools with a limit count their slots");
    assert_eq!(app.patch(&format!("work_pools/{name}"), json!({"is_paused": false, "concurrency_limit": null})).await.0, 204);
    let (_, read) = app.get(&format!("work_pools/{name}")).await;
    assert_eq!((read["status"].as_str(), &read["concurrency_limit"]), (Some("NOT_READY"), &Value::Null), "no worker: not ready; null clears");
    assert_eq!(app.patch("work_pools/nope", json!({"is_paused": true})).await.0, 404);

    let (_, listed) = app.post("work_pools/filter", json!({"work_pools": {"name": {"any_": [name]}}})).await;
    assert_eq!(names(&listed), std::slice::from_ref(&name));
    assert_eq!(app.post("work_pools/count", json!({"work_pools": {"type": {"any_": ["process"]}}})).await.1.as_u64().map(|n| n >= 1), Some(true));
    assert_eq!(app.delete(&format!("work_pools/{name}")).await.0, 204);
    assert_eq!(app.get(&format!("work_pools/{name}")).await.0, 404);
    assert_eq!(app.delete(&format!("work_pools/{name}")).await.0, 404);
}

#[tokio::test]
async fn queues_have_unique_names_and_priorities() {
    let app = spawn_app().await;
    let p = pool(&app, json!({})).await;
    let name = p["name"].as_str().unwrap().to_owned();
    let (status, q1) = app.post(&format!("work_pools/{name}/queues"), json!({"name": "q1", "concurrency_limit": 3})).await;
    assert_eq!(status, 201, "{q1}");
    assert_eq!((q1["priority"].as_i64(), q1["active_slots"].as_i64(), q1["work_pool_name"].as_str()), (Some(2), Some(0), Some(name.as_str())));
    assert_eq!(app.post(&format!("work_pools/{name}/queues"), json!({"name": "q1"})).await.0, 409);
    assert_eq!(app.post("work_pools/missing/queues", json!({"name": "q1"})).await.0, 404);
    // A queue asking for priority 1 pushes the others down.
    let (_, q0) = app.post(&format!("work_pools/{name}/queues"), json!({"name": "q0", "priority": 1})).await;
    assert_eq!(q0["priority"], 1);
    let (_, queues) = app.post(&format!("work_pools/{name}/queues/filter"), json!({})).await;
    assert_eq!(names(&queues), ["q0", "default", "q1"]);
    assert_eq!(queues.as_array().unwrap().iter().map(|q| q["priority"].as_i64().unwrap()).collect::<Vec<_>>(), [1, 2, 3]);

    assert_eq!(app.patch(&format!("work_pools/{name}/queues/q1"), json!({"priority": 1, "is_paused": true})).await.0, 204);
    let (_, q1) = app.get(&format!("work_pools/{name}/queues/q1")).await;
    assert_eq!((q1["priority"].as_i64(), q1["status"].as_str()), (Some(1), Some("PAUSED")));
    let (status, body) = app.get(&format!("work_pools/{name}/queues/zzz")).await;
    assert_eq!((status, body["detail"].clone()), (404, json!(format!("Work pool queue '{name}/zzz' not found."))));

    let (_, by_id) = app.get(&format!("work_queues/{}", id(&q1))).await;
    assert_eq!(by_id["name"], "q1");
    assert_eq!(app.delete(&format!("work_pools/{name}/queues/default")).await.0, 400, "the default queue stays");
    assert_eq!(app.delete(&format!("work_pools/{name}/queues/q1")).await.0, 204);
    assert_eq!(app.get(&format!("work_queues/{}", id(&q1))).await.0, 404);
    let (_, queues) = app.post(&format!("work_pools/{name}/queues/filter"), json!({})).await;
    assert_eq!(names(&queues), ["q0", "default"]);
}

#[tokio::test]
async fn heartbeats_register_workers_and_make_the_pool_ready() {
    let app = spawn_app().await;
    let p = pool(&app, json!({})).await;
    let name = p["name"].as_str().unwrap().to_owned();
    let beat = json!({"name": "worker-1", "heartbeat_interval_seconds": 10});
    assert_eq!(app.post(&format!("work_pools/{name}/workers/heartbeat"), beat.clone()).await.0, 204);
    assert_eq!(app.post(&format!("work_pools/{name}/workers/heartbeat"), beat).await.0, 204);
    assert_eq!(app.post("work_pools/missing/workers/heartbeat", json!({"name": "w"})).await.0, 404);
    let (_, workers) = app.post(&format!("work_pools/{name}/workers/filter"), json!({})).await;
    assert_eq!(names(&workers), ["worker-1"], "one worker per name");
    assert_eq!((workers[0]["status"].as_str(), workers[0]["heartbeat_interval_seconds"].as_i64()), (Some("ONLINE"), Some(10)));
    assert_eq!(app.get(&format!("work_pools/{name}")).await.1["status"], "READY");

    let (_, offline) = app.post(&format!("work_pools/{name}/workers/filter"), json!({"workers": {"status": {"any_": ["OFFLINE"]}}})).await;
    assert_eq!(offline, json!([]));
    assert_eq!(app.delete(&format!("work_pools/{name}/workers/worker-1")).await.0, 204);
    assert_eq!(app.delete(&format!("work_pools/{name}/workers/worker-1")).await, (404, json!({"detail": "Worker not found."})));
    // With its only worker gone, the foreman marks the pool NOT_READY.
    Foreman::new(ForemanOptions::default(), app.core.clone()).run_once().await.unwrap();
    assert_eq!(app.get(&format!("work_pools/{name}")).await.1["status"], "NOT_READY");
}

#[tokio::test]
async fn workers_get_scheduled_runs_by_queue_priority_within_limits() {
    let app = spawn_app().await;
    let p = pool(&app, json!({})).await;
    let name = p["name"].as_str().unwrap().to_owned();
    app.post(&format!("work_pools/{name}/queues"), json!({"name": "urgent", "priority": 1, "concurrency_limit": 1})).await;
    let f = flow(&app).await;
    let scheduled = |seconds_ago: i64| json!({"type": "SCHEDULED", "state_details": {"scheduled_time": past(seconds_ago)}});
    let normal_old = flow_run(&app, &f, json!({"work_pool_name": name, "state": scheduled(60)})).await;
    let urgent_a = flow_run(&app, &f, json!({"work_pool_name": name, "work_queue_name": "urgent", "state": scheduled(30)})).await;
    let urgent_b = flow_run(&app, &f, json!({"work_pool_name": name, "work_queue_name": "urgent", "state": scheduled(20)})).await;
    let future = json!({"type": "SCHEDULED", "state_details": {"scheduled_time": (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339()}});
    let _later = flow_run(&app, &f, json!({"work_pool_name": name, "state": future})).await;

    let poll = |body: Value| {
        let app = &app;
        let name = name.clone();
        async move {
            let (status, runs) = app.post(&format!("work_pools/{name}/get_scheduled_flow_runs"), body).await;
            assert_eq!(status, 200, "{runs}");
            runs.as_array().unwrap().iter().map(|r| r["flow_run"]["id"].as_str().unwrap().to_owned()).collect::<Vec<_>>()
        }
    };
    let now = chrono::Utc::now().to_rfc3339();
    // Urgent first, one at a time (its limit), then the default queue; future runs wait.
    assert_eq!(poll(json!({"scheduled_before": now})).await, [id(&urgent_a), id(&normal_old)]);
    let (_, one) = app.post(&format!("work_pools/{name}/get_scheduled_flow_runs"), json!({"work_queue_names": ["urgent"]})).await;
    assert_eq!(one[0]["work_queue_id"], urgent_a["work_queue_id"]);
    assert_eq!(one[0]["work_pool_id"], p["id"]);
    assert_eq!(one[0]["flow_run"]["work_pool_name"], name);
    // A Pending run holds the urgent queue's only slot.
    assert_eq!(set_state(&app, "flow_runs", &id(&urgent_a), "PENDING", false).await.1["status"], "ACCEPT");
    assert_eq!(poll(json!({"scheduled_before": now})).await, [id(&normal_old)]);
    assert_eq!(set_state(&app, "flow_runs", &id(&urgent_a), "RUNNING", false).await.1["status"], "ACCEPT");
    assert_eq!(set_state(&app, "flow_runs", &id(&urgent_a), "COMPLETED", false).await.1["status"], "ACCEPT");
    assert_eq!(poll(json!({"scheduled_before": now, "limit": 1})).await, [id(&urgent_b)]);
    // Polling marks queues READY; a paused pool hands out nothing.
    assert_eq!(app.get(&format!("work_pools/{name}/queues/default")).await.1["status"], "READY");
    app.patch(&format!("work_pools/{name}"), json!({"is_paused": true})).await;
    assert_eq!(poll(json!({})).await, Vec::<String>::new());
    assert_eq!(app.post(&format!("work_pools/{name}/get_scheduled_flow_runs"), json!({"work_queue_names": ["nope"]})).await.0, 404);
    assert_eq!(app.post("work_pools/missing/get_scheduled_flow_runs", json!({})).await.0, 404);
}

#[tokio::test]
async fn overdue_scheduled_runs_become_late_keeping_their_time() {
    let app = spawn_app().await;
    let f = flow(&app).await;
    let when = past(120);
    let overdue = flow_run(&app, &f, json!({"state": {"type": "SCHEDULED", "state_details": {"scheduled_time": when}}})).await;
    let recent = flow_run(&app, &f, json!({"state": {"type": "SCHEDULED", "state_details": {"scheduled_time": past(2)}}})).await;
    let service = LateRuns::new(LateRunsOptions::default(), app.core.clone());
    assert_eq!(service.run_once().await.unwrap(), 1);
    let (_, late) = app.get(&format!("flow_runs/{}", id(&overdue))).await;
    assert_eq!((late["state"]["type"].as_str(), late["state"]["name"].as_str()), (Some("SCHEDULED"), Some("Late")));
    let kept = chrono::DateTime::parse_from_rfc3339(late["state"]["state_details"]["scheduled_time"].as_str().unwrap()).unwrap();
    let original = chrono::DateTime::parse_from_rfc3339(&when).unwrap();
    assert!((kept - original).num_milliseconds().abs() < 1, "{kept} vs {original}");
    assert_eq!(app.get(&format!("flow_runs/{}", id(&recent))).await.1["state"]["name"], "Scheduled", "within after_seconds");
    assert_eq!(service.run_once().await.unwrap(), 0, "late runs are not marked twice");
}

#[tokio::test]
async fn legacy_work_queue_routes_use_the_agent_pool() {
    let app = spawn_app().await;
    let name = unique("legacy");
    let (status, q) = app.post("work_queues/", json!({"name": name})).await;
    assert_eq!(status, 201, "{q}");
    assert_eq!(q["work_pool_name"], "default-agent-pool");
    assert_eq!(app.post("work_queues/", json!({"name": name})).await.0, 409);
    assert_eq!(app.get(&format!("work_queues/name/{name}")).await.1["id"], q["id"]);
    assert_eq!(app.patch(&format!("work_queues/{}", id(&q)), json!({"concurrency_limit": 2})).await.0, 204);
    let (_, listed) = app.post("work_queues/filter", json!({"work_queues": {"name": {"any_": [name]}}})).await;
    assert_eq!(listed[0]["concurrency_limit"], 2);
    let (status, runs) = app.post(&format!("work_queues/{}/get_runs", id(&q)), json!({})).await;
    assert_eq!((status, runs), (200, json!([])));
    assert_eq!(app.delete(&format!("work_queues/{}", id(&q))).await.0, 204);
    assert_eq!(app.get(&format!("work_queues/name/{name}")).await.0, 404);
}
