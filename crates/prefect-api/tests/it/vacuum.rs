//! The database vacuum: what it deletes, and above all what it leaves alone.

use chrono::{TimeDelta, Utc};
use prefect_services::{DbVacuum, DbVacuumOptions};
use prefect_storage::ConnectionTrait;
use prefect_testing::{TestApp, spawn_app};
use serde_json::{Value, json};

use crate::support::{flow, flow_run, id, set_state, unique};

fn event_at(name: &str, resource: &str, occurred: chrono::DateTime<Utc>) -> Value {
    json!({"id": uuid::Uuid::new_v4(), "occurred": occurred, "event": name,
           "resource": {"prefect.resource.id": resource},
           "related": [{"prefect.resource.id": format!("{resource}.related"), "prefect.resource.role": "tester"}]})
}

async fn count_rows(app: &TestApp, sql: &str) -> i64 {
    let db = app.core.db();
    let row = db.reader().query_one_raw(prefect_storage::Statement::from_string(db.database_backend(), sql.to_owned())).await.unwrap().unwrap();
    row.try_get_by_index::<i64>(0).unwrap()
}

async fn events_named(app: &TestApp, name: &str) -> u64 {
    let since = Utc::now() - TimeDelta::days(60);
    let (_, page) = app.post("events/filter", json!({"filter": {"event": {"name": [name]}, "occurred": {"since": since, "until": Utc::now()}}})).await;
    page["total"].as_u64().unwrap()
}

#[tokio::test]
async fn event_vacuum_deletes_old_events_and_their_resources_only() {
    let app = spawn_app().await;
    let old = format!("test.{}", unique("old"));
    let heartbeat = format!("test.{}", unique("heartbeat"));
    let resource = format!("test.resource.{}", unique("r"));
    let now = Utc::now();
    let batch = vec![
        event_at(&old, &resource, now - TimeDelta::days(10)),
        event_at(&old, &resource, now - TimeDelta::days(8)),
        event_at(&old, &resource, now - TimeDelta::minutes(5)),
        event_at(&heartbeat, &resource, now - TimeDelta::hours(3)),
        event_at(&heartbeat, &resource, now - TimeDelta::minutes(10)),
    ];
    assert_eq!(app.post("events", json!(batch)).await.0, 204);
    app.eventually(10, || async { (events_named(&app, &old).await == 3 && events_named(&app, &heartbeat).await == 2).then_some(()) }).await;
    let resources_before = count_rows(&app, "SELECT count(*) FROM event_resources").await;

    let options = DbVacuumOptions {
        event_retention_overrides: [(heartbeat.clone(), 3600.0)].into(),
        // Overrides are capped by the events retention: this one is longer, so the
        // events retention (7 days) applies to the type.
        ..DbVacuumOptions::default()
    };
    let vacuum = DbVacuum::new(options.clone(), app.core.clone());
    vacuum.vacuum(&options.enabled_types()).await.unwrap();

    assert_eq!(events_named(&app, &old).await, 1, "events older than 7 days are gone");
    assert_eq!(events_named(&app, &heartbeat).await, 1, "the override's hour applies to its type");
    // Each event has one related resource, so one resource row: three events went.
    assert_eq!(count_rows(&app, "SELECT count(*) FROM event_resources").await, resources_before - 3);
    let (_, related) = app.post("events/filter", json!({"filter": {"related": {"id": [format!("{resource}.related")]}}})).await;
    assert_eq!(related["total"], 2, "what is left is still found through its resources");

    // A second pass finds nothing more; a batch of one still gets through everything.
    vacuum.vacuum(&options.enabled_types()).await.unwrap();
    assert_eq!(events_named(&app, &old).await, 1);
    let everything = DbVacuumOptions { events_retention_seconds: 1.0, batch_size: 1, ..DbVacuumOptions::default() };
    DbVacuum::new(everything.clone(), app.core.clone()).vacuum(&everything.enabled_types()).await.unwrap();
    assert_eq!(count_rows(&app, "SELECT count(*) FROM events").await, 0);
    assert_eq!(count_rows(&app, "SELECT count(*) FROM event_resources").await, 0);
}

#[tokio::test]
async fn flow_run_vacuum_deletes_finished_top_level_runs_with_their_logs_and_artifacts() {
    let app = spawn_app().await;
    let flow_id = flow(&app).await;
    let finished = id(&flow_run(&app, &flow_id, json!({})).await);
    set_state(&app, "flow_runs", &finished, "COMPLETED", true).await;
    let running = id(&flow_run(&app, &flow_id, json!({})).await);
    set_state(&app, "flow_runs", &running, "RUNNING", false).await;
    let (_, parent_task) = app.post("task_runs/", json!({"flow_run_id": running, "task_key": "t", "dynamic_key": "0", "name": "t"})).await;
    let subflow = id(&flow_run(&app, &flow_id, json!({"parent_task_run_id": parent_task["id"]})).await);
    set_state(&app, "flow_runs", &subflow, "COMPLETED", true).await;
    for run in [&finished, &running] {
        let logs: Vec<Value> =
            (0..5).map(|i| json!({"name": "t", "level": 20, "message": format!("{i}"), "timestamp": Utc::now(), "flow_run_id": run})).collect();
        assert_eq!(app.post("logs/", json!(logs)).await.0, 201);
    }
    let key = unique("report");
    assert_eq!(app.post("artifacts/", json!({"key": key, "type": "markdown", "data": "kept", "flow_run_id": running})).await.0, 201);
    assert_eq!(app.post("artifacts/", json!({"key": key, "type": "markdown", "data": "latest", "flow_run_id": finished})).await.0, 201);

    // Retention counts from the end time: a cutoff in the future makes "now" old enough.
    let cutoff = Utc::now() + TimeDelta::hours(1);
    let deleted = app.core.vacuum_flow_runs_before(cutoff, 2).await.unwrap();
    assert_eq!((deleted.flow_runs, deleted.logs, deleted.artifacts), (1, 5, 1));
    assert_eq!(app.get(&format!("flow_runs/{finished}")).await.0, 404);
    assert_eq!(app.get(&format!("flow_runs/{running}")).await.0, 200, "not finished");
    assert_eq!(app.get(&format!("flow_runs/{subflow}")).await.0, 200, "subflows go with their parent, not on their own");
    let (_, logs) = app.post("logs/filter", json!({"logs": {"flow_run_id": {"any_": [finished, running]}}})).await;
    assert_eq!(logs.as_array().unwrap().len(), 5);

    // The collection pointed at the deleted artifact: the orphan pass re-points it.
    let (_, orphans) =
        app.post("logs/", json!([{"name": "t", "level": 20, "message": "orphan", "timestamp": Utc::now(), "flow_run_id": uuid::Uuid::new_v4()}])).await;
    assert_eq!(orphans, Value::Null);
    let (logs, artifacts, collections) = app.core.vacuum_orphans(1).await.unwrap();
    assert_eq!((logs, artifacts, collections), (1, 0, 1));
    let (status, latest) = app.get(&format!("artifacts/{key}/latest")).await;
    assert_eq!((status, latest["data"].clone()), (200, json!("kept")));
    assert_eq!(count_rows(&app, "SELECT count(*) FROM log").await, 5);
}
