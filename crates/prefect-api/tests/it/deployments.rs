#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use prefect_services::{Scheduler, SchedulerOptions};
use prefect_testing::{TestApp, spawn_app};
use serde_json::{Value, json};

use crate::support::unique;

async fn flow(app: &TestApp) -> String {
    let (status, f) = app.post("flows/", json!({"name": unique("dep-flow")})).await;
    assert!(status == 200 || status == 201, "{f}");
    f["id"].as_str().unwrap().to_owned()
}

async fn scheduled_runs(app: &TestApp, dep: &str) -> Vec<Value> {
    let (_, runs) = app
        .post(
            "flow_runs/filter",
            json!({"deployments": {"id": {"any_": [dep]}}, "flow_runs": {"state": {"type": {"any_": ["SCHEDULED"]}}}, "sort": "EXPECTED_START_TIME_ASC"}),
        )
        .await;
    runs.as_array().unwrap().clone()
}

#[tokio::test]
async fn deployment_crud_and_upsert() {
    let app = spawn_app().await;
    let flow_id = flow(&app).await;
    let name = unique("dep");
    let body = json!({"name": name, "flow_id": flow_id, "tags": ["a"], "parameters": {"x": 1}, "description": "first"});
    let (status, created) = app.post("deployments/", body).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    for field in [
        "id",
        "created",
        "updated",
        "name",
        "version",
        "description",
        "flow_id",
        "paused",
        "schedules",
        "concurrency_limit",
        "global_concurrency_limit",
        "concurrency_options",
        "job_variables",
        "parameters",
        "tags",
        "labels",
        "work_queue_name",
        "work_queue_id",
        "last_polled",
        "parameter_openapi_schema",
        "path",
        "pull_steps",
        "entrypoint",
        "storage_document_id",
        "infrastructure_document_id",
        "created_by",
        "updated_by",
        "work_pool_name",
        "status",
        "enforce_parameter_schema",
    ] {
        assert!(created.get(field).is_some(), "missing {field}: {created}");
    }
    assert_eq!(created["status"], "NOT_READY");
    assert_eq!(created["labels"]["prefect.flow.id"], flow_id.as_str());
    assert_eq!(created["parameter_openapi_schema"], json!({}), "Prefect stores an empty schema when none is sent");
    assert_eq!(created["pull_steps"], json!([]));

    // Upsert by (flow, name): 200, same id, only the fields sent change.
    let (status, again) = app.post("deployments/", json!({"name": name, "flow_id": flow_id, "description": "second"})).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["id"], id.as_str());
    assert_eq!(again["description"], "second");
    assert_eq!(again["tags"], json!(["a"]));

    let flow_name = app.get(&format!("flows/{flow_id}")).await.1["name"].as_str().unwrap().to_owned();
    assert_eq!(app.get(&format!("deployments/name/{flow_name}/{name}")).await.1["id"], id.as_str());
    assert_eq!(app.get(&format!("deployments/name/{flow_name}/nope")).await.0, 404);

    assert_eq!(app.patch(&format!("deployments/{id}"), json!({"tags": ["b"], "paused": true})).await.0, 204);
    let (_, read) = app.get(&format!("deployments/{id}")).await;
    assert_eq!((read["tags"].clone(), read["paused"].clone()), (json!(["b"]), json!(true)));
    assert_eq!(read["parameters"], json!({"x": 1}));

    assert_eq!(app.post("deployments/count", json!({"deployments": {"id": {"any_": [id]}}})).await.1, json!(1));
    let (_, page) = app.post("deployments/paginate", json!({"deployments": {"id": {"any_": [id]}}, "limit": 10})).await;
    assert_eq!((page["count"].clone(), page["pages"].clone()), (json!(1), json!(1)));
    let (_, filtered) = app.post("deployments/filter", json!({"flows": {"id": {"any_": [flow_id]}}})).await;
    assert_eq!(filtered.as_array().unwrap().len(), 1);

    assert_eq!(app.delete(&format!("deployments/{id}")).await.0, 204);
    assert_eq!(app.get(&format!("deployments/{id}")).await.0, 404);
    assert_eq!(app.delete(&format!("deployments/{id}")).await.0, 404);
}

#[tokio::test]
async fn bad_deployments_are_refused() {
    let app = spawn_app().await;
    let flow_id = flow(&app).await;
    let (status, body) = app.post("deployments/", json!({"name": "d", "flow_id": flow_id, "work_pool_name": "no-such-pool"})).await;
    assert_eq!((status, body), (404, json!({"detail": "Work pool \"no-such-pool\" not found."})));
    assert_eq!(app.post("deployments/", json!({"name": "d", "flow_id": flow_id, "bogus": 1})).await.0, 422);
    assert_eq!(app.post("deployments/", json!({"name": "d", "flow_id": flow_id, "schedules": [{"schedule": {"interval": -5}}]})).await.0, 422);
    assert_eq!(app.post("deployments/", json!({"name": "d", "flow_id": flow_id, "concurrency_limit": 0})).await.0, 422);
    let schema = json!({"type": "object", "properties": {"x": {"type": "integer"}}});
    let (status, _) = app.post("deployments/", json!({"name": "d", "flow_id": flow_id, "parameter_openapi_schema": schema, "parameters": {"x": "no"}})).await;
    assert_eq!(status, 422, "parameters must fit the schema when it is enforced");
    assert_eq!(app.get(&format!("deployments/{}", uuid::Uuid::new_v4())).await.0, 404);
    assert_eq!(app.post(&format!("deployments/{}/create_flow_run", uuid::Uuid::new_v4()), json!({})).await.0, 404);
}

#[tokio::test]
async fn runs_from_deployments() {
    let app = spawn_app().await;
    let flow_id = flow(&app).await;
    let schema = json!({"type": "object", "properties": {"x": {"type": "integer"}, "y": {"type": "string"}}, "required": ["x"]});
    let (_, dep) = app
        .post(
            "deployments/",
            json!({"name": unique("dep"), "flow_id": flow_id, "tags": ["d"], "parameters": {"x": 1}, "parameter_openapi_schema": schema, "version": "v1"}),
        )
        .await;
    let id = dep["id"].as_str().unwrap();
    let (status, run) = app.post(&format!("deployments/{id}/create_flow_run"), json!({"parameters": {"y": "z"}, "tags": ["r"]})).await;
    assert_eq!(status, 201, "{run}");
    assert_eq!(run["state_type"], "SCHEDULED");
    assert_eq!(run["parameters"], json!({"x": 1, "y": "z"}));
    assert_eq!(run["deployment_id"], id);
    assert_eq!(run["deployment_version"], "v1");
    assert_eq!(run["labels"]["prefect.deployment.id"], id);
    let mut tags: Vec<String> = serde_json::from_value(run["tags"].clone()).unwrap();
    tags.sort();
    assert_eq!(tags, ["d", "r"]);

    let (status, body) = app.post(&format!("deployments/{id}/create_flow_run"), json!({"parameters": {"x": "bad"}})).await;
    assert_eq!(status, 409, "{body}");
    assert!(body["detail"].as_str().unwrap().starts_with("Error creating flow run: Validation failed"), "{body}");
    assert_eq!(app.post(&format!("deployments/{id}/create_flow_run"), json!({"parameters": {"x": "bad"}, "enforce_parameter_schema": false})).await.0, 201);

    let (status, first) = app.post(&format!("deployments/{id}/create_flow_run"), json!({"idempotency_key": "k"})).await;
    assert_eq!(status, 201);
    let (status, second) = app.post(&format!("deployments/{id}/create_flow_run"), json!({"idempotency_key": "k"})).await;
    assert_eq!((status, second["id"].clone()), (200, first["id"].clone()));

    let (status, bulk) = app.post(&format!("deployments/{id}/create_flow_run/bulk"), json!([{"parameters": {"x": 5}}, {"parameters": {"x": "bad"}}])).await;
    assert_eq!(status, 200, "{bulk}");
    assert_eq!(bulk["results"][0]["status"], "CREATED");
    assert_eq!(bulk["results"][1]["status"], "FAILED");

    // The runner's poll returns Scheduled runs due and marks the deployment READY.
    let (status, due) = app.post("deployments/get_scheduled_flow_runs", json!({"deployment_ids": [id], "scheduled_before": "2999-01-01T00:00:00Z"})).await;
    assert_eq!(status, 200, "{due}");
    assert_eq!(due.as_array().unwrap().len(), 4);
    let (_, read) = app.get(&format!("deployments/{id}")).await;
    assert_eq!(read["status"], "READY");
    assert!(read["last_polled"].is_string());
}

#[tokio::test]
async fn deployment_concurrency_limit_follows_the_deployment() {
    let app = spawn_app().await;
    let flow_id = flow(&app).await;
    let (_, dep) = app.post("deployments/", json!({"name": unique("dep"), "flow_id": flow_id, "concurrency_limit": 2})).await;
    let id = dep["id"].as_str().unwrap();
    assert_eq!(dep["concurrency_limit"], Value::Null, "deprecated; Prefect answers null");
    assert_eq!(dep["global_concurrency_limit"]["limit"], 2);
    assert_eq!(dep["global_concurrency_limit"]["name"], format!("deployment:{id}"));
    assert_eq!(app.patch(&format!("deployments/{id}"), json!({"concurrency_limit": 5})).await.0, 204);
    let (_, read) = app.get(&format!("deployments/{id}")).await;
    assert_eq!(read["global_concurrency_limit"]["limit"], 5);
    assert_eq!(app.patch(&format!("deployments/{id}"), json!({"concurrency_limit": null})).await.0, 204);
    let (_, read) = app.get(&format!("deployments/{id}")).await;
    assert_eq!((read["concurrency_limit"].clone(), read["global_concurrency_limit"].clone()), (Value::Null, Value::Null));
    assert_eq!(app.get(&format!("v2/concurrency_limits/deployment:{id}")).await.0, 404);
}

#[tokio::test]
async fn schedules_crud_and_the_scheduler() {
    let app = spawn_app().await;
    let flow_id = flow(&app).await;
    let (status, dep) = app
        .post(
            "deployments/",
            json!({"name": unique("dep"), "flow_id": flow_id, "parameters": {"a": 1}, "tags": ["t"],
                   "schedules": [{"schedule": {"interval": 600}, "parameters": {"b": 2}}]}),
        )
        .await;
    assert_eq!(status, 201, "{dep}");
    let id = dep["id"].as_str().unwrap().to_owned();
    assert_eq!(dep["schedules"][0]["schedule"]["interval"], 600.0);
    let schedule_id = dep["schedules"][0]["id"].as_str().unwrap().to_owned();

    let scheduler = Scheduler::new(SchedulerOptions::default(), app.core.clone());
    let inserted = scheduler.run_once().await.unwrap();
    assert!(inserted >= 3, "{inserted}");
    let runs = scheduled_runs(&app, &id).await;
    assert_eq!(runs.len(), inserted);
    assert!(runs.iter().all(|r| r["auto_scheduled"] == true && r["parameters"] == json!({"a": 1, "b": 2})));
    assert_eq!(runs[0]["tags"], json!(["auto-scheduled", "t"]));
    assert_eq!(runs[0]["created_by"]["type"], "SCHEDULE");
    assert!(runs[0]["idempotency_key"].as_str().unwrap().starts_with(&format!("scheduled {id} {schedule_id} ")));
    assert_eq!(scheduler.run_once().await.unwrap(), 0, "a second pass finds enough runs");

    // Pausing removes the auto-scheduled runs; resuming brings them back through the recent loop.
    assert_eq!(app.post(&format!("deployments/{id}/pause_deployment"), json!(null)).await.0, 200);
    assert!(scheduled_runs(&app, &id).await.is_empty());
    assert_eq!(scheduler.run_once().await.unwrap(), 0, "paused deployments are not scheduled");
    assert_eq!(app.post(&format!("deployments/{id}/resume_deployment"), json!(null)).await.0, 200);
    assert!(scheduler.run_recent_once().await.unwrap() >= 3);

    // Schedules CRUD; changing one clears its future runs.
    let (_, schedules) = app.get(&format!("deployments/{id}/schedules")).await;
    assert_eq!(schedules.as_array().unwrap().len(), 1);
    assert_eq!(app.patch(&format!("deployments/{id}/schedules/{schedule_id}"), json!({"active": false})).await.0, 204);
    assert!(scheduled_runs(&app, &id).await.is_empty());
    assert_eq!(app.get(&format!("deployments/{id}/schedules")).await.1[0]["active"], false);
    let (status, created) = app.post(&format!("deployments/{id}/schedules"), json!([{"schedule": {"cron": "0 * * * *"}, "slug": "hourly"}])).await;
    assert_eq!(status, 201, "{created}");
    let (status, _) = app.post(&format!("deployments/{id}/schedules"), json!([{"schedule": {"cron": "0 * * * *"}, "slug": "hourly"}])).await;
    assert_eq!(status, 409);
    let new_id = created[0]["id"].as_str().unwrap();
    assert_eq!(app.delete(&format!("deployments/{id}/schedules/{new_id}")).await.0, 204);
    assert_eq!(app.delete(&format!("deployments/{id}/schedules/{new_id}")).await.0, 404);
    assert_eq!(app.patch(&format!("deployments/{id}/schedules/{}", uuid::Uuid::new_v4()), json!({"active": true})).await.0, 404);
}

#[tokio::test]
async fn racing_schedulers_create_each_run_once() {
    let app = spawn_app().await;
    let flow_id = flow(&app).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let (_, dep) = app.post("deployments/", json!({"name": unique("dep"), "flow_id": flow_id, "schedules": [{"schedule": {"interval": 60}}]})).await;
        ids.push(dep["id"].as_str().unwrap().to_owned());
    }
    let a = Scheduler::new(SchedulerOptions::default(), app.core.clone());
    let b = Scheduler::new(SchedulerOptions::default(), app.core.clone());
    let (ra, rb) = tokio::join!(a.run_once(), b.run_once());
    let total = ra.unwrap() + rb.unwrap();
    let mut found = 0;
    for id in &ids {
        let runs = scheduled_runs(&app, id).await;
        let mut keys: Vec<&str> = runs.iter().map(|r| r["idempotency_key"].as_str().unwrap()).collect();
        let n = keys.len();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), n, "no duplicate runs");
        // Every 60 s for at least an hour ahead: 61 or 62 runs.
        assert!(n >= 60, "{n}");
        found += n;
    }
    assert_eq!(total, found, "each run counted by exactly one scheduler");
}

#[tokio::test]
async fn bulk_delete_deployments() {
    let app = spawn_app().await;
    let flow_id = flow(&app).await;
    let tag = unique("bulk");
    for _ in 0..3 {
        app.post("deployments/", json!({"name": unique("dep"), "flow_id": flow_id, "tags": [tag]})).await;
    }
    let (status, body) = app.post("deployments/bulk_delete", json!({"deployments": {"tags": {"all_": [tag]}}, "limit": 2})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["deleted"].as_array().unwrap().len(), 2);
    assert_eq!(app.post("deployments/count", json!({"deployments": {"tags": {"all_": [tag]}}})).await.1, json!(1));
    assert_eq!(app.post("deployments/bulk_delete", json!({"limit": 51})).await.0, 422);
}

async fn pool_with_template(app: &TestApp) -> String {
    let name = unique("jv-pool");
    let template = json!({
        "job_configuration": {"image": "{{ image }}", "cpu": "{{ cpu }}"},
        "variables": {"type": "object", "required": ["image"], "properties": {
            "image": {"type": "string"},
            "cpu": {"type": "integer", "default": 1},
            "env": {"type": "object", "additionalProperties": {"type": "string"}},
        }},
    });
    let (status, body) = app.post("work_pools/", json!({"name": name, "type": "process", "base_job_template": template})).await;
    assert_eq!(status, 201, "{body}");
    name
}

/// Messages and codes as Prefect 3.9.1 answers them (checked side by side).
#[tokio::test]
async fn job_variables_are_checked_against_the_pool_template() {
    let app = spawn_app().await;
    let flow_id = flow(&app).await;
    let pool = pool_with_template(&app).await;
    let detail = |message: &str| json!({"detail": message});

    let (status, body) = app.post("deployments/", json!({"name": "d1", "flow_id": flow_id, "work_pool_name": pool, "job_variables": {"cpu": "lots"}})).await;
    assert_eq!(
        (status, body),
        (422, detail("Error creating deployment: Validation failed for field 'cpu'. Failure reason: 'lots' is not valid under any of the given schemas"))
    );
    let (status, body) = app.post("deployments/", json!({"name": "d1", "flow_id": flow_id, "work_pool_name": pool, "job_variables": {"env": {"A": 1}}})).await;
    assert_eq!((status, body), (422, detail("Error creating deployment: Validation failed for field 'env.A'. Failure reason: 1 is not of type 'string'")));

    // A deployment need not carry required variables; the flow run's full set must.
    let (status, dep) = app.post("deployments/", json!({"name": "d2", "flow_id": flow_id, "work_pool_name": pool, "job_variables": {"cpu": 2}})).await;
    assert_eq!(status, 201, "{dep}");
    let dep_id = dep["id"].as_str().unwrap().to_owned();
    let (status, body) = app.post(&format!("deployments/{dep_id}/create_flow_run"), json!({})).await;
    assert_eq!((status, body), (422, detail("Error creating flow run: Validation failed. Failure reason: 'image' is a required property")));
    let (status, body) = app.post(&format!("deployments/{dep_id}/create_flow_run"), json!({"job_variables": {"image": 5}})).await;
    assert_eq!((status, body), (422, detail("Error creating flow run: Validation failed for field 'image'. Failure reason: 5 is not of type 'string'")));
    let (status, run) = app.post(&format!("deployments/{dep_id}/create_flow_run"), json!({"job_variables": {"image": "x"}})).await;
    assert_eq!(status, 201, "{run}");
    let run_id = run["id"].as_str().unwrap().to_owned();

    let (status, body) = app.patch(&format!("flow_runs/{run_id}"), json!({"job_variables": {"image": 7}})).await;
    assert_eq!((status, body), (422, detail("Error updating flow run: Validation failed for field 'image'. Failure reason: 7 is not of type 'string'")));
    assert_eq!(app.patch(&format!("flow_runs/{run_id}"), json!({"job_variables": {"image": "y"}})).await.0, 204);
    assert_eq!(app.get(&format!("flow_runs/{run_id}")).await.1["job_variables"], json!({"image": "y"}));

    let (status, body) = app.patch(&format!("deployments/{dep_id}"), json!({"work_pool_name": pool, "job_variables": {"cpu": "lots"}})).await;
    assert_eq!((status, body), (409, detail("Error creating deployment: <ValidationError: \"'lots' is not of type 'integer'\">")));

    let (_, bulk) = app.post(&format!("deployments/{dep_id}/create_flow_run/bulk"), json!([{}, {"job_variables": {"image": "y"}}])).await;
    assert_eq!(bulk["results"][0]["error"], "Error creating flow run: Validation failed. Failure reason: 'image' is a required property");
    assert_eq!(bulk["results"][1]["status"], "CREATED");
}

#[tokio::test]
async fn pool_defaults_must_fit_their_own_schema() {
    let app = spawn_app().await;
    let template = |cpu: serde_json::Value| json!({"job_configuration": {"cpu": "{{ cpu }}"}, "variables": {"type": "object", "properties": {"cpu": cpu}}});
    let (status, body) =
        app.post("work_pools/", json!({"name": unique("p"), "base_job_template": template(json!({"type": "integer", "default": "many"}))})).await;
    assert_eq!(
        (status, body),
        (
            422,
            json!({"detail": "Validation failed for work pool's job variable defaults: Validation failed for field 'cpu'. Failure reason: 'many' is not valid under any of the given schemas"})
        )
    );
    let missing_block = json!({"type": "object", "default": {"$ref": {"block_document_id": "00000000-0000-0000-0000-000000000000"}}});
    let (status, body) = app.post("work_pools/", json!({"name": unique("p"), "base_job_template": template(missing_block)})).await;
    assert_eq!((status, body), (404, json!({"detail": "Block not found."})));
}

#[tokio::test]
async fn manual_scheduling_backfills_a_window_once() {
    let app = spawn_app().await;
    let flow_id = flow(&app).await;
    let (_, dep) = app
        .post(
            "deployments/",
            json!({"name": unique("bf"), "flow_id": flow_id, "schedules": [{"schedule": {"interval": 3600, "anchor_date": "2026-01-01T00:00:00Z"}}]}),
        )
        .await;
    let dep_id = dep["id"].as_str().unwrap().to_owned();
    let window = json!({"start_time": "2026-01-01T00:00:00Z", "end_time": "2026-01-01T05:30:00Z", "min_runs": 1, "max_runs": 100, "min_time": 86400});
    assert_eq!(app.post(&format!("deployments/{dep_id}/schedule"), window.clone()).await, (200, serde_json::Value::Null));
    let runs = scheduled_runs(&app, &dep_id).await;
    let times: Vec<&str> = runs.iter().map(|r| r["expected_start_time"].as_str().unwrap()).collect();
    assert_eq!(
        times,
        ["2026-01-01T00:00:00Z", "2026-01-01T01:00:00Z", "2026-01-01T02:00:00Z", "2026-01-01T03:00:00Z", "2026-01-01T04:00:00Z", "2026-01-01T05:00:00Z"]
    );
    assert!(runs.iter().all(|r| r["auto_scheduled"] == true && r["tags"][0] == "auto-scheduled"));

    assert_eq!(app.post(&format!("deployments/{dep_id}/schedule"), window).await.0, 200);
    assert_eq!(scheduled_runs(&app, &dep_id).await.len(), 6, "scheduling the same window again adds nothing");

    let few = json!({"start_time": "2026-02-01T00:00:00Z", "max_runs": 2});
    assert_eq!(app.post(&format!("deployments/{dep_id}/schedule"), few).await.0, 200);
    assert_eq!(scheduled_runs(&app, &dep_id).await.len(), 8, "max_runs caps a pass");

    let unknown = uuid::Uuid::new_v4();
    assert_eq!(app.post(&format!("deployments/{unknown}/schedule"), json!({})).await, (200, serde_json::Value::Null), "as Prefect: nothing to schedule");
}

#[tokio::test]
async fn work_queue_check_follows_legacy_queue_filters() {
    let app = spawn_app().await;
    let flow_id = flow(&app).await;
    let names = [unique("plain"), unique("tag-a"), unique("tag-b"), unique("empty")];
    let filters = [json!(null), json!({"tags": ["a"], "deployment_ids": null}), json!({"tags": ["b"]}), json!({"tags": [], "deployment_ids": []})];
    for (name, filter) in names.iter().zip(filters) {
        assert_eq!(app.post("work_queues/", json!({"name": name, "filter": filter})).await.0, 201);
    }
    let (_, dep) = app.post("deployments/", json!({"name": unique("wqc"), "flow_id": flow_id, "tags": ["a", "x"]})).await;
    let (status, queues) = app.get(&format!("deployments/{}/work_queue_check", dep["id"].as_str().unwrap())).await;
    assert_eq!(status, 200, "{queues}");
    let listed: Vec<&str> = queues.as_array().unwrap().iter().map(|q| q["name"].as_str().unwrap()).collect();
    for (name, expected) in names.iter().zip([true, true, false, true]) {
        assert_eq!(listed.contains(&name.as_str()), expected, "{name}: {listed:?}");
    }
    let keys: Vec<&String> = queues[0].as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 11, "Prefect's legacy queue shape: {keys:?}");
    let unknown = uuid::Uuid::new_v4();
    assert_eq!(app.get(&format!("deployments/{unknown}/work_queue_check")).await, (404, json!({"detail": "Deployment not found"})));
}

#[tokio::test]
async fn work_queue_status_reports_health() {
    let app = spawn_app().await;
    let (_, queue) = app.post("work_queues/", json!({"name": unique("health")})).await;
    let qid = queue["id"].as_str().unwrap().to_owned();
    let (status, detail) = app.get(&format!("work_queues/{qid}/status")).await;
    assert_eq!(status, 200);
    assert_eq!(
        detail,
        json!({"healthy": false, "late_runs_count": 0, "last_polled": null, "health_check_policy": {"maximum_late_runs": 0, "maximum_seconds_since_last_polled": 60}})
    );
    assert_eq!(app.post(&format!("work_queues/{qid}/get_runs"), json!({})).await.0, 200);
    let (_, detail) = app.get(&format!("work_queues/{qid}/status")).await;
    assert_eq!(detail["healthy"], true, "polled just now, nothing late: {detail}");
    let unknown = uuid::Uuid::new_v4();
    assert_eq!(app.get(&format!("work_queues/{unknown}/status")).await.0, 404);
}
