//! The task run recorder: client-orchestrated task runs are reported as
//! `prefect.task-run.<State>` events, which become task run rows and states.

use crate::{Core, Result};
use prefect_domain::events::ReceivedEvent;
use prefect_domain::labels::KeyValueLabels;
use prefect_domain::state::{State, StateDetails, StateType};
use prefect_domain::task_run::TaskRunPolicy;
use prefect_domain::time::{self, DateTime};
use prefect_storage::flow_runs::RunBookkeeping;
use prefect_storage::task_runs::{self, NewTaskRun, RecordedTaskRun};
use serde::Deserialize;
use serde_json::{Map, Value};

/// Turns task run events into stored task runs.
#[derive(Debug, Clone)]
pub struct TaskRunRecorder {
    core: Core,
}

/// Whether an event is a task run state change the recorder stores.
pub fn is_recordable(event: &ReceivedEvent) -> bool {
    event.event.starts_with("prefect.task-run.") && event.resource.get("prefect.orchestration") == Some("client")
}

#[derive(Deserialize)]
struct ValidatedState {
    #[serde(rename = "type")]
    state_type: StateType,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    state_details: StateDetails,
    #[serde(default)]
    data: Option<Value>,
}

/// The task run snapshot the client puts in `payload.task_run`.
#[derive(Deserialize, Default)]
#[serde(default)]
struct TaskRunSnapshot {
    name: Option<String>,
    task_key: String,
    dynamic_key: String,
    cache_key: Option<String>,
    cache_expiration: Option<DateTime>,
    task_version: Option<String>,
    empirical_policy: TaskRunPolicy,
    tags: Vec<String>,
    labels: Option<KeyValueLabels>,
    task_inputs: Map<String, Value>,
    run_count: i64,
    flow_run_run_count: i64,
    expected_start_time: Option<DateTime>,
    next_scheduled_start_time: Option<DateTime>,
    start_time: Option<DateTime>,
    end_time: Option<DateTime>,
    total_run_time: Option<Value>,
}

/// Seconds from a float or an ISO 8601 duration like `PT1.5S`.
fn duration_seconds(value: Option<&Value>) -> f64 {
    match value {
        Some(Value::Number(n)) => n.as_f64().unwrap_or(0.0),
        Some(Value::String(s)) => prefect_domain::time::iso_duration_seconds(s).unwrap_or(0.0),
        _ => 0.0,
    }
}

/// Builds the task run and state an event reports; `None` for malformed events.
pub fn recorded_from_event(event: &ReceivedEvent) -> Option<RecordedTaskRun> {
    let task_run_id = event.resource.prefect_object_id("prefect.task-run")?;
    let flow_run_id = event.related_in_role("flow-run").and_then(|r| r.prefect_object_id("prefect.flow-run"));
    let validated: ValidatedState = serde_json::from_value(event.payload.get("validated_state")?.clone()).ok()?;
    let snapshot: TaskRunSnapshot = serde_json::from_value(event.payload.get("task_run")?.clone()).ok()?;

    let mut state_details = validated.state_details;
    state_details.task_run_id = Some(task_run_id);
    state_details.flow_run_id = flow_run_id;
    let mut state = State {
        id: event.id,
        state_type: validated.state_type,
        name: validated.name,
        timestamp: time::truncate(event.occurred),
        message: validated.message,
        data: validated.data.filter(|d| !d.is_null()),
        state_details,
    };
    state.fill_defaults(state.timestamp);

    let bookkeeping = RunBookkeeping {
        state_id: Some(state.id),
        state_type: Some(state.state_type),
        state_name: state.name.clone(),
        state_timestamp: Some(state.timestamp),
        run_count: snapshot.run_count,
        start_time: snapshot.start_time,
        end_time: snapshot.end_time,
        total_run_time: duration_seconds(snapshot.total_run_time.as_ref()),
        expected_start_time: snapshot.expected_start_time,
        next_scheduled_start_time: snapshot.next_scheduled_start_time,
    };
    let run = NewTaskRun {
        id: task_run_id,
        flow_run_id,
        name: snapshot.name.unwrap_or_else(crate::flow_runs::random_name),
        task_key: snapshot.task_key,
        dynamic_key: snapshot.dynamic_key,
        cache_key: snapshot.cache_key,
        cache_expiration: snapshot.cache_expiration,
        task_version: snapshot.task_version,
        empirical_policy: snapshot.empirical_policy,
        tags: snapshot.tags,
        labels: snapshot.labels,
        task_inputs: snapshot.task_inputs,
    };
    Some(RecordedTaskRun { run, bookkeeping, flow_run_run_count: snapshot.flow_run_run_count, state })
}

impl TaskRunRecorder {
    pub fn new(core: Core) -> Self {
        TaskRunRecorder { core }
    }

    /// Records the task run events among `events` in one transaction; returns how many.
    pub async fn record(&self, events: &[std::sync::Arc<ReceivedEvent>]) -> Result<usize> {
        let reports: Vec<RecordedTaskRun> = events.iter().filter(|e| is_recordable(e)).filter_map(|e| recorded_from_event(e)).collect();
        if reports.is_empty() {
            return Ok(0);
        }
        let reports = std::sync::Arc::new(reports);
        self.core
            .write(None, move |txn| {
                let reports = std::sync::Arc::clone(&reports);
                Box::pin(async move { Ok(task_runs::record(txn, reports.as_ref().clone(), time::now()).await?) })
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;

    #[test]
    fn durations_are_seconds_or_iso_8601() {
        assert_eq!(duration_seconds(Some(&serde_json::json!("P1DT1H"))), 90_000.0);
        assert_eq!(duration_seconds(Some(&serde_json::json!(2.25))), 2.25);
        assert_eq!(duration_seconds(None), 0.0);
    }

    #[test]
    fn builds_a_task_run_from_a_client_event() {
        let task_run_id = Uuid::now_v7();
        let flow_run_id = Uuid::now_v7();
        let event: ReceivedEvent = serde_json::from_value(serde_json::json!({
            "id": Uuid::now_v7(), "occurred": "2026-11-26T04:18:09.782537Z", "received": "2026-11-26T04:18:09.9Z",
            "event": "prefect.task-run.Completed",
            "resource": {"prefect.resource.id": format!("prefect.task-run.{task_run_id}"), "prefect.orchestration": "client"},
            "related": [{"prefect.resource.id": format!("prefect.flow-run.{flow_run_id}"), "prefect.resource.role": "flow-run"}],
            "payload": {
                "validated_state": {"type": "COMPLETED", "name": "Completed", "message": "", "state_details": {}, "data": {"storage_key": "x"}},
                "task_run": {"name": "add-1", "task_key": "k", "dynamic_key": "1", "empirical_policy": {"max_retries": 0, "retry_delay_seconds": 0.0},
                              "tags": ["t"], "labels": {}, "task_inputs": {}, "run_count": 1, "flow_run_run_count": 1, "total_run_time": 0.5}
            }
        }))
        .unwrap();
        assert!(is_recordable(&event));
        let recorded = recorded_from_event(&event).unwrap();
        assert_eq!(recorded.run.id, task_run_id);
        assert_eq!(recorded.run.flow_run_id, Some(flow_run_id));
        assert_eq!(recorded.state.id, event.id);
        assert_eq!(recorded.state.state_details.task_run_id, Some(task_run_id));
        assert_eq!(recorded.bookkeeping.total_run_time, 0.5);
        assert_eq!(recorded.state.data, Some(serde_json::json!({"storage_key": "x"})));
    }
}
