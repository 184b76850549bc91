//! Deployments and their schedules: the wire models of Prefect's `/deployments` routes.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::concurrency::GlobalConcurrencyLimitResponse;
use crate::flow_run::{CreatedBy, FlowRunPolicy};
use crate::labels::KeyValueLabels;
use crate::schedule::Schedule;
use crate::state::StateCreate;
use crate::time::DateTime;

/// Largest `max_scheduled_runs` Prefect accepts (`PREFECT_DEPLOYMENT_SCHEDULE_MAX_SCHEDULED_RUNS`).
pub const MAX_SCHEDULED_RUNS_LIMIT: i64 = 50;
/// Most flow runs `POST /deployments/{id}/create_flow_run/bulk` creates at once.
pub const BULK_CREATE_LIMIT: usize = 100;
/// Most deployments `POST /deployments/bulk_delete` deletes at once.
pub const BULK_DELETE_LIMIT: u64 = 50;

/// `READY` once something polled the deployment's work recently, `NOT_READY` otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DeploymentStatus {
    Ready,
    NotReady,
}

impl DeploymentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeploymentStatus::Ready => "READY",
            DeploymentStatus::NotReady => "NOT_READY",
        }
    }

    pub fn parse(s: &str) -> Self {
        if s == "READY" { DeploymentStatus::Ready } else { DeploymentStatus::NotReady }
    }
}

/// What a deployment does when its concurrency limit is full.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConcurrencyOptions {
    /// `ENQUEUE` or `CANCEL_NEW`.
    pub collision_strategy: CollisionStrategy,
    #[serde(default)]
    pub grace_period_seconds: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CollisionStrategy {
    Enqueue,
    CancelNew,
}

impl ConcurrencyOptions {
    pub fn validate(&self) -> crate::Result<()> {
        if let Some(g) = self.grace_period_seconds {
            if g < 60 {
                return Err(crate::Error::invalid("concurrency_options.grace_period_seconds", "Input should be greater than or equal to 60"));
            }
            if g > 86400 {
                return Err(crate::Error::invalid("concurrency_options.grace_period_seconds", "Input should be less than or equal to 86400"));
            }
        }
        Ok(())
    }
}

/// A schedule attached to a deployment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeploymentSchedule {
    pub id: Uuid,
    pub created: DateTime,
    pub updated: DateTime,
    pub deployment_id: Option<Uuid>,
    pub schedule: Schedule,
    pub active: bool,
    pub max_scheduled_runs: Option<i64>,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub parameters: Map<String, Value>,
    pub slug: Option<String>,
}

impl DeploymentSchedule {
    /// How runs this schedule creates name their creator (`created_by.display_value`).
    pub fn display_value(&self) -> String {
        if let Some(slug) = &self.slug {
            return slug.clone();
        }
        match &self.schedule {
            Schedule::Interval(_) => "IntervalSchedule",
            Schedule::Cron(_) => "CronSchedule",
            Schedule::RRule(_) => "RRuleSchedule",
        }
        .to_owned()
    }
}

/// A deployment as the API returns it (`DeploymentResponse`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = DeploymentResponse))]
pub struct Deployment {
    pub id: Uuid,
    pub created: DateTime,
    pub updated: DateTime,
    pub name: String,
    pub version: Option<String>,
    pub description: Option<String>,
    pub flow_id: Uuid,
    pub paused: bool,
    pub schedules: Vec<DeploymentSchedule>,
    pub concurrency_limit: Option<i64>,
    pub global_concurrency_limit: Option<GlobalConcurrencyLimitResponse>,
    pub concurrency_options: Option<ConcurrencyOptions>,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub job_variables: Map<String, Value>,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub parameters: Map<String, Value>,
    pub tags: Vec<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub labels: KeyValueLabels,
    pub work_queue_name: Option<String>,
    pub work_queue_id: Option<Uuid>,
    pub last_polled: Option<DateTime>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub parameter_openapi_schema: Option<Map<String, Value>>,
    pub path: Option<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Vec<Object>>))]
    pub pull_steps: Option<Vec<Value>>,
    pub entrypoint: Option<String>,
    pub storage_document_id: Option<Uuid>,
    pub infrastructure_document_id: Option<Uuid>,
    pub created_by: Option<CreatedBy>,
    pub updated_by: Option<CreatedBy>,
    pub work_pool_name: Option<String>,
    pub status: DeploymentStatus,
    pub enforce_parameter_schema: bool,
}

fn default_true() -> bool {
    true
}

fn default_parameter_schema() -> Option<Map<String, Value>> {
    let mut m = Map::new();
    m.insert("type".to_owned(), Value::String("object".to_owned()));
    m.insert("properties".to_owned(), Value::Object(Map::new()));
    Some(m)
}

fn default_labels() -> Option<KeyValueLabels> {
    Some(KeyValueLabels::new())
}

/// Deserializes a field that may be present with a `null` value into `Some(None)`.
fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(deserializer: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(deserializer).map(Some)
}

fn check_max_scheduled_runs(v: Option<i64>, field: &str) -> crate::Result<()> {
    if let Some(v) = v {
        if v <= 0 {
            return Err(crate::Error::invalid(field, "Input should be greater than 0"));
        }
        if v > MAX_SCHEDULED_RUNS_LIMIT {
            return Err(crate::Error::invalid(field, format!("Value error, `max_scheduled_runs` must be less than or equal to {MAX_SCHEDULED_RUNS_LIMIT}.")));
        }
    }
    Ok(())
}

/// One schedule of `DeploymentCreate.schedules` or `POST /deployments/{id}/schedules`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DeploymentScheduleCreate {
    #[serde(default = "default_true")]
    pub active: bool,
    pub schedule: Schedule,
    #[serde(default)]
    pub max_scheduled_runs: Option<i64>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub parameters: Map<String, Value>,
    #[serde(default)]
    pub slug: Option<String>,
    /// A deploy-time directive (rename the schedule with this slug); never stored.
    #[serde(default)]
    pub replaces: Option<String>,
}

impl DeploymentScheduleCreate {
    pub fn validated(mut self, at: &str) -> crate::Result<Self> {
        check_max_scheduled_runs(self.max_scheduled_runs, &format!("{at}max_scheduled_runs"))?;
        self.schedule = self.schedule.validated()?;
        Ok(self)
    }
}

/// One schedule of `DeploymentUpdate.schedules` or body of `PATCH /deployments/{id}/schedules/{schedule_id}`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DeploymentScheduleUpdate {
    #[serde(default)]
    pub active: Option<bool>,
    #[serde(default)]
    pub schedule: Option<Schedule>,
    #[serde(default)]
    pub max_scheduled_runs: Option<i64>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub parameters: Option<Map<String, Value>>,
    #[serde(default)]
    pub slug: Option<String>,
    #[serde(default)]
    pub replaces: Option<String>,
}

impl DeploymentScheduleUpdate {
    pub fn validated(mut self, at: &str) -> crate::Result<Self> {
        check_max_scheduled_runs(self.max_scheduled_runs, &format!("{at}max_scheduled_runs"))?;
        self.schedule = self.schedule.map(Schedule::validated).transpose()?;
        Ok(self)
    }
}

/// Body of `POST /deployments/` (an upsert by flow and name).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DeploymentCreate {
    pub name: String,
    pub flow_id: Uuid,
    #[serde(default)]
    pub paused: bool,
    #[serde(default)]
    pub schedules: Vec<DeploymentScheduleCreate>,
    /// `Some(None)` when sent as null (removes the limit), `None` when absent.
    #[serde(default, deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<i64>))]
    pub concurrency_limit: Option<Option<i64>>,
    #[serde(default)]
    pub concurrency_options: Option<ConcurrencyOptions>,
    #[serde(default, deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Uuid>))]
    pub global_concurrency_limit_id: Option<Option<Uuid>>,
    #[serde(default = "default_true")]
    pub enforce_parameter_schema: bool,
    #[serde(default = "default_parameter_schema")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub parameter_openapi_schema: Option<Map<String, Value>>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub parameters: Map<String, Value>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default = "default_labels")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub labels: Option<KeyValueLabels>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Vec<Object>>))]
    pub pull_steps: Option<Vec<Value>>,
    #[serde(default)]
    pub work_queue_name: Option<String>,
    #[serde(default)]
    pub work_pool_name: Option<String>,
    #[serde(default)]
    pub storage_document_id: Option<Uuid>,
    #[serde(default)]
    pub infrastructure_document_id: Option<Uuid>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub entrypoint: Option<String>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub job_variables: Map<String, Value>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub version_info: Option<Value>,
    /// Old field names older clients send; accepted and ignored, as Prefect does.
    #[serde(default, skip_serializing)]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub worker_pool_queue_id: Option<Value>,
    #[serde(default, skip_serializing)]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub worker_pool_name: Option<Value>,
    #[serde(default, skip_serializing)]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub worker_pool_queue_name: Option<Value>,
    #[serde(default, skip_serializing)]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub work_pool_queue_name: Option<Value>,
}

fn check_limits(limit: Option<Option<i64>>, global: Option<Option<Uuid>>) -> crate::Result<()> {
    if let Some(Some(l)) = limit
        && l <= 0
    {
        return Err(crate::Error::invalid("concurrency_limit", "Input should be greater than 0"));
    }
    if matches!(limit, Some(Some(_))) && matches!(global, Some(Some(_))) {
        return Err(crate::Error::invalid("", "Value error, A deployment cannot have both a concurrency limit and a global concurrency limit."));
    }
    Ok(())
}

impl DeploymentCreate {
    /// Prefect's field validators; the parameter checks against the schema happen in core.
    pub fn validated(mut self) -> crate::Result<Self> {
        check_limits(self.concurrency_limit, self.global_concurrency_limit_id)?;
        if let Some(o) = &self.concurrency_options {
            o.validate()?;
        }
        if let Some(labels) = &self.labels {
            crate::labels::validate(labels, "labels")?;
        }
        self.schedules =
            std::mem::take(&mut self.schedules).into_iter().enumerate().map(|(i, s)| s.validated(&format!("schedules.{i}."))).collect::<crate::Result<_>>()?;
        Ok(self)
    }
}

/// Body of `PATCH /deployments/{id}`: only the fields sent change.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DeploymentUpdate {
    #[serde(default, deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub version: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub description: Option<Option<String>>,
    #[serde(default)]
    pub paused: Option<bool>,
    #[serde(default)]
    pub schedules: Option<Vec<DeploymentScheduleUpdate>>,
    #[serde(default, deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<i64>))]
    pub concurrency_limit: Option<Option<i64>>,
    #[serde(default, deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<ConcurrencyOptions>))]
    pub concurrency_options: Option<Option<ConcurrencyOptions>>,
    #[serde(default, deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Uuid>))]
    pub global_concurrency_limit_id: Option<Option<Uuid>>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub parameters: Option<Map<String, Value>>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub parameter_openapi_schema: Option<Map<String, Value>>,
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub work_queue_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub work_pool_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub path: Option<Option<String>>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub job_variables: Option<Map<String, Value>>,
    #[serde(default, deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Vec<Object>>))]
    pub pull_steps: Option<Option<Vec<Value>>>,
    #[serde(default, deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub entrypoint: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Uuid>))]
    pub storage_document_id: Option<Option<Uuid>>,
    #[serde(default, deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Uuid>))]
    pub infrastructure_document_id: Option<Option<Uuid>>,
    #[serde(default)]
    pub enforce_parameter_schema: Option<bool>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub version_info: Option<Value>,
    #[serde(default, skip_serializing)]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub worker_pool_queue_id: Option<Value>,
    #[serde(default, skip_serializing)]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub worker_pool_name: Option<Value>,
    #[serde(default, skip_serializing)]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub worker_pool_queue_name: Option<Value>,
    #[serde(default, skip_serializing)]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub work_pool_queue_name: Option<Value>,
}

impl DeploymentUpdate {
    pub fn validated(mut self) -> crate::Result<Self> {
        check_limits(self.concurrency_limit, self.global_concurrency_limit_id)?;
        if let Some(Some(o)) = &self.concurrency_options {
            o.validate()?;
        }
        if let Some(schedules) = self.schedules.take() {
            self.schedules = Some(schedules.into_iter().enumerate().map(|(i, s)| s.validated(&format!("schedules.{i}."))).collect::<crate::Result<_>>()?);
        }
        Ok(self)
    }
}

/// Body of `POST /deployments/{id}/create_flow_run`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DeploymentFlowRunCreate {
    #[serde(default)]
    pub state: Option<StateCreate>,
    /// A random slug when absent.
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub parameters: Map<String, Value>,
    #[serde(default)]
    pub enforce_parameter_schema: Option<bool>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub context: Map<String, Value>,
    #[serde(default)]
    pub infrastructure_document_id: Option<Uuid>,
    #[serde(default)]
    pub empirical_policy: FlowRunPolicy,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub idempotency_key: Option<String>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub labels: Option<KeyValueLabels>,
    #[serde(default)]
    pub parent_task_run_id: Option<Uuid>,
    #[serde(default)]
    pub work_queue_name: Option<String>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub job_variables: Option<Map<String, Value>>,
}

/// One result of `POST /deployments/{id}/create_flow_run/bulk`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FlowRunCreateResult {
    pub flow_run_id: Option<Uuid>,
    /// `CREATED` or `FAILED`.
    pub status: String,
    pub error: Option<String>,
}

/// Answer of `POST /deployments/{id}/create_flow_run/bulk`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FlowRunBulkCreateResponse {
    pub results: Vec<FlowRunCreateResult>,
}

/// Answer of `POST /deployments/bulk_delete`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeploymentBulkDeleteResponse {
    pub deleted: Vec<Uuid>,
}

/// Body of `POST /deployments/{id}/schedule`; every field is optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ScheduleRequest {
    /// The earliest date to schedule (default: now).
    pub start_time: Option<DateTime>,
    /// The latest date to schedule (default: start + the scheduler's max scheduled time).
    pub end_time: Option<DateTime>,
    /// Runs are scheduled until at least this many seconds after the start.
    #[serde(rename = "min_time")]
    pub min_time_seconds: Option<f64>,
    /// The fewest runs to schedule.
    pub min_runs: Option<usize>,
    /// The most runs to schedule.
    pub max_runs: Option<usize>,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn create_defaults_match_prefect() {
        let c: DeploymentCreate = serde_json::from_str(r#"{"name": "d", "flow_id": "00000000-0000-0000-0000-000000000001"}"#).unwrap();
        assert!(c.enforce_parameter_schema);
        assert_eq!(c.parameter_openapi_schema.unwrap()["type"], "object");
        assert!(c.concurrency_limit.is_none());
        assert!(c.schedules.is_empty());
    }

    #[test]
    fn both_limits_are_rejected() {
        let c: DeploymentCreate = serde_json::from_str(
            r#"{"name": "d", "flow_id": "00000000-0000-0000-0000-000000000001", "concurrency_limit": 2,
                "global_concurrency_limit_id": "00000000-0000-0000-0000-000000000002"}"#,
        )
        .unwrap();
        assert!(c.validated().is_err());
    }

    #[test]
    fn null_limit_is_told_from_absent() {
        let u: DeploymentUpdate = serde_json::from_str(r#"{"concurrency_limit": null}"#).unwrap();
        assert_eq!(u.concurrency_limit, Some(None));
        let u: DeploymentUpdate = serde_json::from_str(r#"{}"#).unwrap();
        assert_eq!(u.concurrency_limit, None);
    }

    #[test]
    fn max_scheduled_runs_is_capped() {
        let s: DeploymentScheduleCreate = serde_json::from_str(r#"{"schedule": {"interval": 60}, "max_scheduled_runs": 51}"#).unwrap();
        assert!(s.validated("").is_err());
        let s: DeploymentScheduleCreate = serde_json::from_str(r#"{"schedule": {"interval": 60}, "max_scheduled_runs": 5}"#).unwrap();
        assert!(s.validated("").is_ok());
    }
}
