//! Run states, state proposals and orchestration results.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::time::DateTime;

/// The kind of a state. Names are meaningful within a type (`Late` is a `SCHEDULED` state).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StateType {
    /// Waiting for its scheduled time.
    Scheduled,
    /// About to run (infrastructure being prepared).
    Pending,
    /// Executing.
    Running,
    /// Finished successfully.
    Completed,
    /// Finished with an error.
    Failed,
    /// Stopped by a user or the system.
    Cancelled,
    /// Its infrastructure died.
    Crashed,
    /// Waiting to be resumed.
    Paused,
    /// Being stopped; only `CANCELLED` may follow.
    Cancelling,
}

impl StateType {
    /// Every state type, in declaration order.
    pub const ALL: [StateType; 9] = [
        StateType::Scheduled,
        StateType::Pending,
        StateType::Running,
        StateType::Completed,
        StateType::Failed,
        StateType::Cancelled,
        StateType::Crashed,
        StateType::Paused,
        StateType::Cancelling,
    ];

    /// The wire spelling, e.g. `"RUNNING"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            StateType::Scheduled => "SCHEDULED",
            StateType::Pending => "PENDING",
            StateType::Running => "RUNNING",
            StateType::Completed => "COMPLETED",
            StateType::Failed => "FAILED",
            StateType::Cancelled => "CANCELLED",
            StateType::Crashed => "CRASHED",
            StateType::Paused => "PAUSED",
            StateType::Cancelling => "CANCELLING",
        }
    }

    /// The default state name for this type (`RUNNING` becomes `Running`).
    pub const fn default_name(self) -> &'static str {
        match self {
            StateType::Scheduled => "Scheduled",
            StateType::Pending => "Pending",
            StateType::Running => "Running",
            StateType::Completed => "Completed",
            StateType::Failed => "Failed",
            StateType::Cancelled => "Cancelled",
            StateType::Crashed => "Crashed",
            StateType::Paused => "Paused",
            StateType::Cancelling => "Cancelling",
        }
    }

    /// Terminal ("final") types: a run in one of these has finished.
    pub const fn is_final(self) -> bool {
        matches!(self, StateType::Completed | StateType::Failed | StateType::Cancelled | StateType::Crashed)
    }
}

impl fmt::Display for StateType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for StateType {
    type Err = crate::Error;

    fn from_str(s: &str) -> crate::Result<Self> {
        StateType::ALL.into_iter().find(|t| t.as_str() == s).ok_or_else(|| crate::Error::invalid("type", format!("unknown state type {s:?}")))
    }
}

/// Details attached to a state. Unknown keys are ignored, as Prefect does.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct StateDetails {
    pub flow_run_id: Option<Uuid>,
    pub task_run_id: Option<Uuid>,
    /// For the placeholder task run of a subflow call: the subflow run.
    pub child_flow_run_id: Option<Uuid>,
    pub scheduled_time: Option<DateTime>,
    pub cache_key: Option<String>,
    pub cache_expiration: Option<DateTime>,
    pub deferred: Option<bool>,
    pub untrackable_result: bool,
    pub pause_timeout: Option<DateTime>,
    pub pause_reschedule: bool,
    pub pause_key: Option<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub run_input_keyset: Option<serde_json::Map<String, Value>>,
    pub refresh_cache: Option<bool>,
    pub retriable: Option<bool>,
    pub transition_id: Option<Uuid>,
    pub task_parameters_id: Option<Uuid>,
    pub traceparent: Option<String>,
    pub deployment_concurrency_lease_id: Option<Uuid>,
}

/// A state as stored and returned by the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct State {
    pub id: Uuid,
    #[serde(rename = "type")]
    pub state_type: StateType,
    pub name: Option<String>,
    pub timestamp: DateTime,
    pub message: Option<String>,
    /// Result record metadata for persisted results, or null.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub data: Option<Value>,
    #[serde(default)]
    pub state_details: StateDetails,
}

impl State {
    /// A new state of `state_type` with its default name, minted now.
    pub fn new(state_type: StateType, timestamp: DateTime) -> Self {
        let mut state = State {
            id: Uuid::now_v7(),
            state_type,
            name: Some(state_type.default_name().to_owned()),
            timestamp,
            message: None,
            data: None,
            state_details: StateDetails::default(),
        };
        state.fill_defaults(timestamp);
        state
    }

    /// `SCHEDULED` at `scheduled_time`.
    pub fn scheduled(name: &str, scheduled_time: DateTime, now: DateTime) -> Self {
        let mut state = State::new(StateType::Scheduled, now);
        state.name = Some(name.to_owned());
        state.state_details.scheduled_time = Some(scheduled_time);
        state
    }

    /// `SCHEDULED/AwaitingRetry` at `scheduled_time`.
    pub fn awaiting_retry(scheduled_time: DateTime, now: DateTime) -> Self {
        State::scheduled("AwaitingRetry", scheduled_time, now)
    }

    /// A state of `state_type` with the given message.
    pub fn with_message(state_type: StateType, message: impl Into<String>, now: DateTime) -> Self {
        let mut state = State::new(state_type, now);
        state.message = Some(message.into());
        state
    }

    /// Applies Prefect's model defaults: a name from the type, and a scheduled
    /// time of "now" for `SCHEDULED` states that lack one.
    pub fn fill_defaults(&mut self, now: DateTime) {
        if self.name.is_none() {
            self.name = Some(self.state_type.default_name().to_owned());
        }
        if self.state_type == StateType::Scheduled && self.state_details.scheduled_time.is_none() {
            self.state_details.scheduled_time = Some(now);
        }
    }

    /// A copy with a new id and timestamp (Prefect's `fresh_copy`).
    pub fn fresh_copy(&self, now: DateTime) -> Self {
        State { id: Uuid::now_v7(), timestamp: now, ..self.clone() }
    }

    /// The state's name, or the type's default name.
    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or(self.state_type.default_name())
    }

    pub fn is_final(&self) -> bool {
        self.state_type.is_final()
    }

    /// Whether `data` refers to a persisted result (an object not marked `unpersisted`).
    pub fn has_persisted_result(&self) -> bool {
        has_persisted_result(self.data.as_ref())
    }
}

/// Whether state data is a persisted result reference.
pub fn has_persisted_result(data: Option<&Value>) -> bool {
    match data {
        // An empty object is "no data" (falsy in Prefect's checks).
        Some(Value::Object(map)) => !map.is_empty() && map.get("type").and_then(Value::as_str) != Some("unpersisted"),
        _ => false,
    }
}

/// A proposed state (`StateCreate`): the server mints its id and timestamp.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct StateCreate {
    #[serde(rename = "type")]
    pub state_type: StateType,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub data: Option<Value>,
    #[serde(default)]
    pub state_details: StateDetails,
}

impl StateCreate {
    /// A bare proposal of `state_type`.
    pub fn of(state_type: StateType) -> Self {
        StateCreate { state_type, name: None, message: None, data: None, state_details: StateDetails::default() }
    }

    /// Turns the proposal into a state minted at `now`.
    pub fn into_state(self, now: DateTime) -> State {
        let mut state = State {
            id: Uuid::now_v7(),
            state_type: self.state_type,
            name: self.name,
            timestamp: now,
            message: self.message,
            data: self.data,
            state_details: self.state_details,
        };
        state.fill_defaults(now);
        state
    }
}

/// Body of `POST /flow_runs/{id}/set_state` and `POST /task_runs/{id}/set_state`.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SetStateRequest {
    pub state: StateCreate,
    #[serde(default)]
    pub force: bool,
}

/// The outcome of a proposal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "UPPERCASE")]
pub enum SetStateStatus {
    /// The proposed state was written.
    Accept,
    /// Another state was written instead, or nothing (the current state is returned).
    Reject,
    /// Nothing was written; the client should stop.
    Abort,
    /// Nothing was written; the client should retry after `delay_seconds`.
    Wait,
}

/// Why a proposal ended as it did, tagged by `type` on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StateResponseDetails {
    AcceptDetails,
    RejectDetails { reason: Option<String> },
    AbortDetails { reason: Option<String> },
    WaitDetails { delay_seconds: i64, reason: Option<String> },
}

/// Response of `set_state` and `resume`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OrchestrationResult {
    pub state: Option<State>,
    pub status: SetStateStatus,
    pub details: StateResponseDetails,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_create_rejects_unknown_fields_and_defaults_name() {
        assert!(serde_json::from_str::<StateCreate>(r#"{"type":"RUNNING","bogus":1}"#).is_err());
        assert!(serde_json::from_str::<StateCreate>(r#"{"type":"NOT_A_STATE"}"#).is_err());
        let s = serde_json::from_str::<StateCreate>(r#"{"type":"CANCELLING"}"#).unwrap();
        let state = s.into_state(crate::time::now());
        assert_eq!(state.name.as_deref(), Some("Cancelling"));
    }

    #[test]
    fn scheduled_gets_a_scheduled_time() {
        let now = crate::time::now();
        let state = StateCreate::of(StateType::Scheduled).into_state(now);
        assert_eq!(state.state_details.scheduled_time, Some(now));
    }

    #[test]
    fn state_details_ignore_unknown_keys() {
        let d: StateDetails = serde_json::from_str(r#"{"cache_key":"k","something_new":true}"#).unwrap();
        assert_eq!(d.cache_key.as_deref(), Some("k"));
        assert!(!d.pause_reschedule);
    }

    #[test]
    fn result_details_are_tagged() {
        let v = serde_json::to_value(StateResponseDetails::WaitDetails { delay_seconds: 3, reason: None }).unwrap();
        assert_eq!(v["type"], "wait_details");
        assert_eq!(v["delay_seconds"], 3);
        let v = serde_json::to_value(StateResponseDetails::AcceptDetails).unwrap();
        assert_eq!(v, serde_json::json!({"type": "accept_details"}));
    }

    #[test]
    fn persisted_result_detection() {
        assert!(has_persisted_result(Some(&serde_json::json!({"storage_key": "x"}))));
        assert!(!has_persisted_result(Some(&serde_json::json!({"type": "unpersisted"}))));
        assert!(!has_persisted_result(Some(&serde_json::json!("x"))));
        assert!(!has_persisted_result(None));
    }
}
