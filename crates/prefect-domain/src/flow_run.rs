//! Flow runs.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::labels::KeyValueLabels;
use crate::state::{State, StateCreate, StateType};
use crate::time::DateTime;

/// How a flow run is retried and paused; kept on the run and changed by orchestration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct FlowRunPolicy {
    /// Deprecated mirror of `retries`.
    pub max_retries: i64,
    /// Deprecated mirror of `retry_delay`.
    pub retry_delay_seconds: f64,
    pub retries: Option<i64>,
    pub retry_delay: Option<i64>,
    /// Pause keys this run has already observed (a set).
    pub pause_keys: Option<Vec<String>>,
    pub resuming: Option<bool>,
    /// `in_process` or `reschedule`.
    pub retry_type: Option<String>,
}

impl Default for FlowRunPolicy {
    fn default() -> Self {
        FlowRunPolicy {
            max_retries: 0,
            retry_delay_seconds: 0.0,
            retries: None,
            retry_delay: None,
            pause_keys: Some(Vec::new()),
            resuming: Some(false),
            retry_type: None,
        }
    }
}

impl FlowRunPolicy {
    /// Prefect fills `retries`/`retry_delay` from the deprecated fields when only those are given.
    pub fn normalized(mut self) -> Self {
        if self.retries.unwrap_or(0) == 0 && self.max_retries != 0 {
            self.retries = Some(self.max_retries);
        }
        if self.retry_delay.unwrap_or(0) == 0 && self.retry_delay_seconds != 0.0 {
            self.retry_delay = Some(self.retry_delay_seconds as i64);
        }
        self
    }

    pub fn is_resuming(&self) -> bool {
        self.resuming.unwrap_or(false)
    }

    /// Adds a pause key, keeping the list a set.
    pub fn add_pause_key(&mut self, key: String) {
        let keys = self.pause_keys.get_or_insert_with(Vec::new);
        if !keys.contains(&key) {
            keys.push(key);
        }
    }

    pub fn has_pause_key(&self, key: &str) -> bool {
        self.pause_keys.as_ref().is_some_and(|keys| keys.iter().any(|k| k == key))
    }
}

/// Who created a run or deployment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct CreatedBy {
    pub id: Option<Uuid>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub display_value: Option<String>,
}

/// A flow run as returned by the API (`FlowRunResponse`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = FlowRunResponse))]
pub struct FlowRun {
    pub id: Uuid,
    pub created: DateTime,
    pub updated: DateTime,
    pub name: String,
    pub flow_id: Uuid,
    pub state_id: Option<Uuid>,
    pub deployment_id: Option<Uuid>,
    pub deployment_version: Option<String>,
    pub work_queue_id: Option<Uuid>,
    pub work_queue_name: Option<String>,
    pub flow_version: Option<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub parameters: Map<String, Value>,
    pub idempotency_key: Option<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub context: Map<String, Value>,
    pub empirical_policy: FlowRunPolicy,
    pub tags: Vec<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub labels: KeyValueLabels,
    pub parent_task_run_id: Option<Uuid>,
    pub state_type: Option<StateType>,
    pub state_name: Option<String>,
    pub run_count: i64,
    pub expected_start_time: Option<DateTime>,
    pub next_scheduled_start_time: Option<DateTime>,
    pub start_time: Option<DateTime>,
    pub end_time: Option<DateTime>,
    /// Seconds spent in RUNNING, over all runs.
    pub total_run_time: f64,
    /// `total_run_time` plus the time in the current RUNNING state, computed on read.
    pub estimated_run_time: f64,
    /// Lateness in seconds, computed on read.
    pub estimated_start_time_delta: f64,
    pub auto_scheduled: bool,
    pub infrastructure_document_id: Option<Uuid>,
    pub infrastructure_pid: Option<String>,
    pub created_by: Option<CreatedBy>,
    pub work_pool_id: Option<Uuid>,
    pub work_pool_name: Option<String>,
    pub state: Option<State>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub job_variables: Option<Map<String, Value>>,
}

impl FlowRun {
    /// Fills the computed fields (`estimated_run_time`, `estimated_start_time_delta`) as of `now`.
    pub fn compute_estimates(&mut self, now: DateTime) {
        self.estimated_run_time = self.total_run_time;
        if let Some(state) = &self.state
            && state.state_type == StateType::Running
        {
            self.estimated_run_time += crate::time::seconds(now - state.timestamp).max(0.0);
        }
        self.estimated_start_time_delta = estimated_lateness(self.start_time, self.expected_start_time, self.state_type, now);
    }
}

/// Lateness: how long after its expected start a run started (or, if not yet
/// started and still waiting, how late it is now).
pub fn estimated_lateness(start_time: Option<DateTime>, expected_start_time: Option<DateTime>, state_type: Option<StateType>, now: DateTime) -> f64 {
    let Some(expected) = expected_start_time else { return 0.0 };
    match start_time {
        Some(start) if start > expected => crate::time::seconds(start - expected),
        Some(_) => 0.0,
        None if state_type.is_none_or(|t| !t.is_final()) && now > expected => crate::time::seconds(now - expected),
        None => 0.0,
    }
}

/// Body of `POST /flow_runs/`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct FlowRunCreate {
    #[serde(default)]
    pub state: Option<StateCreate>,
    /// A random slug when absent or null.
    #[serde(default)]
    pub name: Option<String>,
    pub flow_id: Uuid,
    #[serde(default)]
    pub flow_version: Option<String>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub parameters: Map<String, Value>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub context: Map<String, Value>,
    #[serde(default)]
    pub parent_task_run_id: Option<Uuid>,
    #[serde(default)]
    pub infrastructure_document_id: Option<Uuid>,
    #[serde(default)]
    pub empirical_policy: FlowRunPolicy,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub labels: Option<KeyValueLabels>,
    #[serde(default)]
    pub idempotency_key: Option<String>,
    #[serde(default)]
    pub work_pool_name: Option<String>,
    #[serde(default)]
    pub work_queue_name: Option<String>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub job_variables: Option<Map<String, Value>>,
    #[serde(default)]
    pub deployment_id: Option<Uuid>,
}

/// Body of `PATCH /flow_runs/{id}`; absent fields are left as they are.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct FlowRunUpdate {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub flow_version: Option<String>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub parameters: Option<Map<String, Value>>,
    #[serde(default)]
    pub empirical_policy: Option<FlowRunPolicy>,
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    #[serde(default)]
    pub infrastructure_pid: Option<String>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub job_variables: Option<Map<String, Value>>,
}

/// One bucket of `POST /flow_runs/history`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HistoryResponse {
    pub interval_start: DateTime,
    pub interval_end: DateTime,
    pub states: Vec<HistoryResponseState>,
}

/// Counts of runs in one state within a history bucket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HistoryResponseState {
    pub state_type: StateType,
    pub state_name: String,
    pub count_runs: i64,
    pub sum_estimated_run_time: f64,
    pub sum_estimated_lateness: f64,
}

/// A flow's next scheduled run, as the UI's flows page lists it (`POST /ui/flows/next-runs`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SimpleNextFlowRun {
    pub id: Uuid,
    pub flow_id: Uuid,
    pub name: String,
    pub state_name: Option<String>,
    pub state_type: Option<StateType>,
    pub next_scheduled_start_time: Option<DateTime>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_fills_new_fields_from_deprecated_ones() {
        let p: FlowRunPolicy = serde_json::from_str(r#"{"max_retries":2,"retry_delay_seconds":5}"#).unwrap();
        let p = p.normalized();
        assert_eq!(p.retries, Some(2));
        assert_eq!(p.retry_delay, Some(5));
    }

    #[test]
    fn create_accepts_the_client_body() {
        let body = r#"{"state":{"type":"PENDING","name":"Pending","message":null,"state_details":{"traceparent":null},"data":null},
            "name":null,"flow_id":"7d0b4b1e-2f50-4b9a-8a51-1f2f4b1d7e11","flow_version":"abc","parameters":{"n":3},"context":{},
            "parent_task_run_id":null,"empirical_policy":{"retries":0,"retry_delay":0},"tags":[],"labels":{},"idempotency_key":null,
            "work_pool_name":null,"work_queue_name":null,"job_variables":null,"deployment_id":null,"infrastructure_document_id":null}"#;
        let create: FlowRunCreate = serde_json::from_str(body).unwrap();
        assert_eq!(create.parameters["n"], 3);
    }

    #[test]
    fn lateness_counts_only_past_expected_start() {
        let now = crate::time::now();
        let expected = now - chrono::TimeDelta::seconds(10);
        assert!(estimated_lateness(None, Some(expected), Some(StateType::Scheduled), now) >= 10.0);
        assert_eq!(estimated_lateness(Some(expected), Some(expected), None, now), 0.0);
        assert_eq!(estimated_lateness(None, Some(now + chrono::TimeDelta::seconds(5)), None, now), 0.0);
    }
}
