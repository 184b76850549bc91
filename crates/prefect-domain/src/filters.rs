//! The filter grammar of the `…/filter`, `…/count` and `…/paginate` routes.
//!
//! An entity filter is an object of optional criteria; each criterion is an
//! object of operators (`any_`, `not_any_`, `like_`, `before_`, …). Absent
//! criteria are ignored; present ones are combined with the filter's
//! `operator` (`and_` by default, or `or_`). Criterion shapes are shared
//! between entities where Prefect's are identical or a superset is harmless,
//! and every shape rejects unknown keys as Prefect does.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::state::StateType;
use crate::time::DateTime;

/// How the criteria of one filter combine.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Operator {
    #[default]
    #[serde(rename = "and_")]
    And,
    #[serde(rename = "or_")]
    Or,
}

/// Matches ids in (`any_`) or not in (`not_any_`) a list.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct IdFilter {
    #[serde(default)]
    pub any_: Option<Vec<Uuid>>,
    #[serde(default)]
    pub not_any_: Option<Vec<Uuid>>,
}

/// Matches a nullable id column: in a list, or (not) null.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NullableIdFilter {
    #[serde(default)]
    pub operator: Operator,
    #[serde(default)]
    pub any_: Option<Vec<Uuid>>,
    #[serde(default)]
    pub is_null_: Option<bool>,
}

/// Matches a string column: exact lists, case-insensitive substring (`like_`), prefixes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct StringFilter {
    #[serde(default)]
    pub operator: Operator,
    #[serde(default)]
    pub any_: Option<Vec<String>>,
    #[serde(default)]
    pub not_any_: Option<Vec<String>>,
    #[serde(default)]
    pub like_: Option<String>,
    #[serde(default)]
    pub startswith_: Option<Vec<String>>,
    #[serde(default)]
    pub is_null_: Option<bool>,
}

/// Matches a tags list: contains all, contains any, or has none.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TagsFilter {
    #[serde(default)]
    pub operator: Operator,
    #[serde(default)]
    pub all_: Option<Vec<String>>,
    #[serde(default)]
    pub any_: Option<Vec<String>>,
    #[serde(default)]
    pub is_null_: Option<bool>,
}

/// Matches a timestamp column, bounds inclusive.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DateTimeFilter {
    #[serde(default)]
    pub before_: Option<DateTime>,
    #[serde(default)]
    pub after_: Option<DateTime>,
    #[serde(default)]
    pub is_null_: Option<bool>,
}

/// Matches a boolean column.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BoolFilter {
    #[serde(default)]
    pub eq_: Option<bool>,
}

/// Matches an integer column within bounds (inclusive), or (not) null.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct IntFilter {
    #[serde(default)]
    pub ge_: Option<i64>,
    #[serde(default)]
    pub le_: Option<i64>,
    #[serde(default)]
    pub is_null_: Option<bool>,
}

/// Matches whether a related row exists.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ExistsFilter {
    #[serde(default)]
    pub exists_: Option<bool>,
}

/// Matches state types.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct StateTypeFilter {
    #[serde(default)]
    pub any_: Option<Vec<StateType>>,
    #[serde(default)]
    pub not_any_: Option<Vec<StateType>>,
}

/// Matches state names.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct StateNameFilter {
    #[serde(default)]
    pub any_: Option<Vec<String>>,
    #[serde(default)]
    pub not_any_: Option<Vec<String>>,
}

/// Matches the current state of a run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct StateFilter {
    #[serde(default)]
    pub operator: Operator,
    #[serde(default, rename = "type")]
    pub state_type: Option<StateTypeFilter>,
    #[serde(default)]
    pub name: Option<StateNameFilter>,
}

/// Matches who created a run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreatedByFilter {
    #[serde(default)]
    pub operator: Operator,
    #[serde(default)]
    pub id_: Option<Vec<Uuid>>,
    #[serde(default)]
    pub type_: Option<Vec<String>>,
    #[serde(default)]
    pub is_null_: Option<bool>,
}

/// Matches flows with (or without) deployments.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct FlowDeploymentFilter {
    #[serde(default)]
    pub operator: Operator,
    #[serde(default)]
    pub is_null_: Option<bool>,
}

/// Filter over flows.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct FlowFilter {
    #[serde(default)]
    pub operator: Operator,
    #[serde(default)]
    pub id: Option<IdFilter>,
    #[serde(default)]
    pub deployment: Option<FlowDeploymentFilter>,
    #[serde(default)]
    pub name: Option<StringFilter>,
    #[serde(default)]
    pub tags: Option<TagsFilter>,
}

/// Filter over flow runs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct FlowRunFilter {
    #[serde(default)]
    pub operator: Operator,
    #[serde(default)]
    pub id: Option<IdFilter>,
    #[serde(default)]
    pub name: Option<StringFilter>,
    #[serde(default)]
    pub tags: Option<TagsFilter>,
    #[serde(default)]
    pub deployment_id: Option<NullableIdFilter>,
    #[serde(default)]
    pub work_queue_name: Option<StringFilter>,
    #[serde(default)]
    pub state: Option<StateFilter>,
    #[serde(default)]
    pub flow_version: Option<StringFilter>,
    #[serde(default)]
    pub start_time: Option<DateTimeFilter>,
    #[serde(default)]
    pub end_time: Option<DateTimeFilter>,
    #[serde(default)]
    pub expected_start_time: Option<DateTimeFilter>,
    #[serde(default)]
    pub next_scheduled_start_time: Option<DateTimeFilter>,
    #[serde(default)]
    pub parent_flow_run_id: Option<NullableIdFilter>,
    #[serde(default)]
    pub parent_task_run_id: Option<NullableIdFilter>,
    #[serde(default)]
    pub idempotency_key: Option<StringFilter>,
    #[serde(default)]
    pub created_by: Option<CreatedByFilter>,
}

/// Matches the flow run of a task run. Unlike other nullable ids, `is_null_`
/// defaults to `false`: a present criterion excludes task runs without a flow run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TaskRunFlowRunIdFilter {
    #[serde(default)]
    pub operator: Operator,
    #[serde(default)]
    pub any_: Option<Vec<Uuid>>,
    #[serde(default = "some_false")]
    pub is_null_: Option<bool>,
}

fn some_false() -> Option<bool> {
    Some(false)
}

/// Filter over task runs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TaskRunFilter {
    #[serde(default)]
    pub operator: Operator,
    #[serde(default)]
    pub id: Option<IdFilter>,
    #[serde(default)]
    pub name: Option<StringFilter>,
    #[serde(default)]
    pub tags: Option<TagsFilter>,
    #[serde(default)]
    pub state: Option<StateFilter>,
    #[serde(default)]
    pub start_time: Option<DateTimeFilter>,
    #[serde(default)]
    pub end_time: Option<DateTimeFilter>,
    #[serde(default)]
    pub expected_start_time: Option<DateTimeFilter>,
    #[serde(default)]
    pub subflow_runs: Option<ExistsFilter>,
    #[serde(default)]
    pub flow_run_id: Option<TaskRunFlowRunIdFilter>,
}

/// Matches a deployment or its flow by a case-insensitive substring of either name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct FlowOrDeploymentNameFilter {
    #[serde(default)]
    pub like_: Option<String>,
}

/// Filter over deployments.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DeploymentFilter {
    #[serde(default)]
    pub operator: Operator,
    #[serde(default)]
    pub id: Option<IdFilter>,
    #[serde(default)]
    pub name: Option<StringFilter>,
    #[serde(default)]
    pub flow_or_deployment_name: Option<FlowOrDeploymentNameFilter>,
    #[serde(default)]
    pub paused: Option<BoolFilter>,
    #[serde(default)]
    pub tags: Option<TagsFilter>,
    #[serde(default)]
    pub work_queue_name: Option<StringFilter>,
    #[serde(default)]
    pub concurrency_limit: Option<IntFilter>,
}

/// Filter over work pools.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct WorkPoolFilter {
    #[serde(default)]
    pub operator: Operator,
    #[serde(default)]
    pub id: Option<IdFilter>,
    #[serde(default)]
    pub name: Option<StringFilter>,
    #[serde(default, rename = "type")]
    pub kind: Option<StringFilter>,
}

/// Filter over work queues.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct WorkQueueFilter {
    #[serde(default)]
    pub operator: Operator,
    #[serde(default)]
    pub id: Option<IdFilter>,
    #[serde(default)]
    pub name: Option<StringFilter>,
}

/// Full-text query over log messages.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TextSearchFilter {
    pub query: String,
}

/// Filter over logs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LogFilter {
    #[serde(default)]
    pub operator: Operator,
    #[serde(default)]
    pub level: Option<IntFilter>,
    #[serde(default)]
    pub timestamp: Option<DateTimeFilter>,
    #[serde(default)]
    pub flow_run_id: Option<IdFilter>,
    #[serde(default)]
    pub task_run_id: Option<NullableIdFilter>,
    #[serde(default)]
    pub text: Option<TextSearchFilter>,
}

/// Matches artifact keys.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ArtifactKeyFilter {
    #[serde(default)]
    pub any_: Option<Vec<String>>,
    #[serde(default)]
    pub like_: Option<String>,
    #[serde(default)]
    pub exists_: Option<bool>,
}

/// Filter over artifacts (and, with `latest_id`, over the latest-per-key collection).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ArtifactFilter {
    #[serde(default)]
    pub operator: Operator,
    #[serde(default)]
    pub id: Option<IdFilter>,
    #[serde(default)]
    pub latest_id: Option<IdFilter>,
    #[serde(default)]
    pub key: Option<ArtifactKeyFilter>,
    #[serde(default)]
    pub flow_run_id: Option<IdFilter>,
    #[serde(default)]
    pub task_run_id: Option<IdFilter>,
    #[serde(default, rename = "type")]
    pub kind: Option<StringFilter>,
}

/// Cross-entity filters: run and flow routes accept all of these at once and join.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RunFilters {
    #[serde(default)]
    pub flows: Option<FlowFilter>,
    #[serde(default)]
    pub flow_runs: Option<FlowRunFilter>,
    #[serde(default)]
    pub task_runs: Option<TaskRunFilter>,
    #[serde(default)]
    pub deployments: Option<DeploymentFilter>,
    #[serde(default)]
    pub work_pools: Option<WorkPoolFilter>,
    /// Spelled `work_pool_queues` by most routes and `work_queues` by history.
    #[serde(default, alias = "work_queues")]
    pub work_pool_queues: Option<WorkQueueFilter>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_reject_unknown_keys() {
        assert!(serde_json::from_str::<FlowRunFilter>(r#"{"nope": {}}"#).is_err());
        assert!(serde_json::from_str::<IdFilter>(r#"{"any_": [], "x": 1}"#).is_err());
    }

    #[test]
    fn state_filter_parses_types() {
        let f: FlowRunFilter = serde_json::from_str(r#"{"state": {"type": {"any_": ["COMPLETED", "FAILED"]}}}"#).unwrap();
        let types = f.state.unwrap().state_type.unwrap().any_.unwrap();
        assert_eq!(types, vec![StateType::Completed, StateType::Failed]);
    }

    #[test]
    fn task_run_flow_run_id_defaults_to_not_null() {
        let f: TaskRunFilter = serde_json::from_str(r#"{"flow_run_id": {"any_": []}}"#).unwrap();
        assert_eq!(f.flow_run_id.unwrap().is_null_, Some(false));
    }

    #[test]
    fn operator_spelling() {
        let f: FlowFilter = serde_json::from_str(r#"{"operator": "or_"}"#).unwrap();
        assert_eq!(f.operator, Operator::Or);
    }
}
