//! Task runs.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::labels::KeyValueLabels;
use crate::state::{State, StateCreate, StateType};
use crate::time::DateTime;

/// How a task run is retried.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct TaskRunPolicy {
    /// Deprecated mirror of `retries`.
    pub max_retries: i64,
    /// Deprecated mirror of `retry_delay`.
    pub retry_delay_seconds: f64,
    pub retries: Option<i64>,
    /// Seconds, or a list of seconds indexed by attempt.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub retry_delay: Option<Value>,
    pub retry_jitter_factor: Option<f64>,
}

impl TaskRunPolicy {
    /// Prefect fills `retries`/`retry_delay` from the deprecated fields when only those are given.
    pub fn normalized(mut self) -> Self {
        if self.retries.unwrap_or(0) == 0 && self.max_retries != 0 {
            self.retries = Some(self.max_retries);
        }
        let delay_unset = match &self.retry_delay {
            None | Some(Value::Null) => true,
            Some(Value::Number(n)) => n.as_f64() == Some(0.0),
            Some(Value::Array(a)) => a.is_empty(),
            Some(_) => false,
        };
        if delay_unset && self.retry_delay_seconds != 0.0 {
            self.retry_delay = Some(Value::from(self.retry_delay_seconds));
        }
        self
    }

    /// Checks the delay shape (a number or a list of at most 50 numbers) and the jitter factor.
    pub fn validate(&self) -> crate::Result<()> {
        match &self.retry_delay {
            None | Some(Value::Null) | Some(Value::Number(_)) => {}
            Some(Value::Array(items)) => {
                if items.len() > 50 {
                    return Err(crate::Error::invalid("empirical_policy.retry_delay", "Can not configure more than 50 retry delays per task."));
                }
                if !items.iter().all(Value::is_number) {
                    return Err(crate::Error::invalid("empirical_policy.retry_delay", "retry delays must be numbers"));
                }
            }
            Some(_) => {
                return Err(crate::Error::invalid("empirical_policy.retry_delay", "retry delay must be a number or a list of numbers"));
            }
        }
        if self.retry_jitter_factor.is_some_and(|f| f < 0.0) {
            return Err(crate::Error::invalid("empirical_policy.retry_jitter_factor", "`retry_jitter_factor` must be >= 0."));
        }
        Ok(())
    }

    /// The base delay before retry number `run_count` (1-based), in seconds.
    pub fn base_delay(&self, run_count: i64) -> f64 {
        match &self.retry_delay {
            Some(Value::Number(n)) => n.as_f64().unwrap_or(0.0),
            Some(Value::Array(items)) if !items.is_empty() => {
                // Python indexing: before the first run (index -1) the last delay applies.
                let index = usize::try_from(run_count - 1).map_or(items.len() - 1, |i| i.min(items.len() - 1));
                items[index].as_f64().unwrap_or(0.0)
            }
            _ => 0.0,
        }
    }
}

/// An upstream input of a task run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "input_type", rename_all = "snake_case")]
pub enum TaskRunInput {
    /// The result of another task run.
    TaskRun { id: Uuid },
    /// The result of a flow run.
    FlowRun { id: Uuid },
    /// A flow parameter.
    Parameter { name: String },
    /// A constant of the given type.
    Constant {
        #[serde(rename = "type")]
        kind: String,
    },
}

/// A task run as returned by the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TaskRun {
    pub id: Uuid,
    pub created: DateTime,
    pub updated: DateTime,
    pub name: String,
    pub flow_run_id: Option<Uuid>,
    pub task_key: String,
    pub dynamic_key: String,
    pub cache_key: Option<String>,
    pub cache_expiration: Option<DateTime>,
    pub task_version: Option<String>,
    pub empirical_policy: TaskRunPolicy,
    pub tags: Vec<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub labels: Option<KeyValueLabels>,
    pub state_id: Option<Uuid>,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub task_inputs: Map<String, Value>,
    pub state_type: Option<StateType>,
    pub state_name: Option<String>,
    pub run_count: i64,
    pub flow_run_run_count: i64,
    pub expected_start_time: Option<DateTime>,
    pub next_scheduled_start_time: Option<DateTime>,
    pub start_time: Option<DateTime>,
    pub end_time: Option<DateTime>,
    pub total_run_time: f64,
    pub estimated_run_time: f64,
    pub estimated_start_time_delta: f64,
    pub state: Option<State>,
}

/// A task worker as `POST /task_workers/filter` reports it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TaskWorkerResponse {
    pub identifier: String,
    pub task_keys: Vec<String>,
    /// When the worker was last seen.
    pub timestamp: DateTime,
}

impl TaskRun {
    /// Fills the computed fields as of `now`.
    pub fn compute_estimates(&mut self, now: DateTime) {
        self.estimated_run_time = self.total_run_time;
        if let Some(state) = &self.state
            && state.state_type == StateType::Running
        {
            self.estimated_run_time += crate::time::seconds(now - state.timestamp).max(0.0);
        }
        self.estimated_start_time_delta = crate::flow_run::estimated_lateness(self.start_time, self.expected_start_time, self.state_type, now);
    }
}

/// Body of `POST /task_runs/`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TaskRunCreate {
    #[serde(default)]
    pub id: Option<Uuid>,
    #[serde(default)]
    pub state: Option<StateCreate>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub flow_run_id: Option<Uuid>,
    pub task_key: String,
    pub dynamic_key: String,
    #[serde(default)]
    pub cache_key: Option<String>,
    #[serde(default)]
    pub cache_expiration: Option<DateTime>,
    #[serde(default)]
    pub task_version: Option<String>,
    #[serde(default)]
    pub empirical_policy: TaskRunPolicy,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub labels: Option<KeyValueLabels>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub task_inputs: Map<String, Value>,
}

/// Body of `PATCH /task_runs/{id}`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TaskRunUpdate {
    #[serde(default)]
    pub name: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delay_list_is_indexed_by_attempt() {
        let p = TaskRunPolicy { retry_delay: Some(serde_json::json!([1, 2, 4])), ..Default::default() };
        assert_eq!(p.base_delay(1), 1.0);
        assert_eq!(p.base_delay(3), 4.0);
        assert_eq!(p.base_delay(9), 4.0);
    }

    #[test]
    fn task_inputs_round_trip() {
        let v =
            serde_json::json!({"x": [{"input_type": "task_run", "id": "7d0b4b1e-2f50-4b9a-8a51-1f2f4b1d7e11"}], "y": [{"input_type":"constant","type":"int"}]});
        let x: Vec<TaskRunInput> = serde_json::from_value(v["x"].clone()).unwrap();
        assert!(matches!(x[0], TaskRunInput::TaskRun { .. }));
        let y: Vec<TaskRunInput> = serde_json::from_value(v["y"].clone()).unwrap();
        assert_eq!(serde_json::to_value(&y).unwrap(), v["y"]);
    }
}
