//! Work pools, their queues and the workers that poll them.
//!
//! A pool groups queues of flow runs that one kind of worker (`process`,
//! `docker`, `kubernetes`...) executes with the pool's base job template.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::block::nullable;
use crate::filters::Operator;
use crate::flow_run::FlowRun;
use crate::time::DateTime;

/// Pool type of Prefect's legacy agents; such pools have no status.
pub const AGENT_POOL_TYPE: &str = "prefect-agent";
/// Name of the queue every pool is created with.
pub const DEFAULT_QUEUE_NAME: &str = "default";
/// Heartbeat interval assumed for workers that did not say theirs.
pub const DEFAULT_HEARTBEAT_INTERVAL_SECONDS: i64 = 30;
/// Missed heartbeats after which a worker counts as offline.
pub const INACTIVITY_HEARTBEAT_MULTIPLE: i64 = 3;

/// Whether a pool can run work: it has a live worker (READY), none (NOT_READY), or is paused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum WorkPoolStatus {
    Ready,
    NotReady,
    Paused,
}

impl WorkPoolStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            WorkPoolStatus::Ready => "READY",
            WorkPoolStatus::NotReady => "NOT_READY",
            WorkPoolStatus::Paused => "PAUSED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "READY" => Some(WorkPoolStatus::Ready),
            "NOT_READY" => Some(WorkPoolStatus::NotReady),
            "PAUSED" => Some(WorkPoolStatus::Paused),
            _ => None,
        }
    }
}

/// Whether a queue was polled recently (READY), not (NOT_READY), or is paused.
pub type WorkQueueStatus = WorkPoolStatus;

/// A worker is ONLINE while its heartbeats arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum WorkerStatus {
    Online,
    Offline,
}

impl WorkerStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            WorkerStatus::Online => "ONLINE",
            WorkerStatus::Offline => "OFFLINE",
        }
    }
}

/// Where a pool's workers upload and fetch bundles, and its default result storage.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct WorkPoolStorageConfiguration {
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub bundle_upload_step: Option<Map<String, Value>>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub bundle_execution_step: Option<Map<String, Value>>,
    #[serde(default)]
    pub default_result_storage_block_id: Option<Uuid>,
}

/// A stored work pool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkPool {
    pub id: Uuid,
    pub created: DateTime,
    pub updated: DateTime,
    pub name: String,
    pub description: Option<String>,
    #[serde(rename = "type")]
    pub kind: String,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub base_job_template: Map<String, Value>,
    pub is_paused: bool,
    pub concurrency_limit: Option<i64>,
    /// None for agent pools.
    pub status: Option<WorkPoolStatus>,
    pub default_queue_id: Option<Uuid>,
    pub storage_configuration: WorkPoolStorageConfiguration,
    /// Runs holding a slot (Pending or Running), when the pool has a concurrency limit.
    pub active_slots: Option<i64>,
}

/// Body of `POST /work_pools/`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct WorkPoolCreate {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default = "agent_type", rename = "type")]
    pub kind: String,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub base_job_template: Map<String, Value>,
    #[serde(default)]
    pub is_paused: bool,
    #[serde(default)]
    pub concurrency_limit: Option<i64>,
    #[serde(default)]
    pub storage_configuration: WorkPoolStorageConfiguration,
}

fn agent_type() -> String {
    AGENT_POOL_TYPE.to_owned()
}

impl WorkPoolCreate {
    pub fn validate(&self) -> crate::Result<()> {
        validate_pool_name(&self.name)?;
        validate_non_negative("concurrency_limit", self.concurrency_limit)?;
        validate_base_job_template(&self.base_job_template)
    }

    /// The status a new pool starts with.
    pub fn initial_status(&self) -> Option<WorkPoolStatus> {
        if self.kind == AGENT_POOL_TYPE {
            None
        } else if self.is_paused {
            Some(WorkPoolStatus::Paused)
        } else {
            Some(WorkPoolStatus::NotReady)
        }
    }
}

/// Body of `PATCH /work_pools/{name}`: only the fields sent change; `null` clears nullable ones.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct WorkPoolUpdate {
    #[serde(default, deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub description: Option<Option<String>>,
    #[serde(default)]
    pub is_paused: Option<bool>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub base_job_template: Option<Map<String, Value>>,
    #[serde(default, deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<i64>))]
    pub concurrency_limit: Option<Option<i64>>,
    #[serde(default)]
    pub storage_configuration: Option<WorkPoolStorageConfiguration>,
}

impl WorkPoolUpdate {
    pub fn validate(&self) -> crate::Result<()> {
        if let Some(limit) = self.concurrency_limit {
            validate_non_negative("concurrency_limit", limit)?;
        }
        match &self.base_job_template {
            Some(template) => validate_base_job_template(template),
            None => Ok(()),
        }
    }

    /// Whether the update touches anything besides pausing and the concurrency limit
    /// (all that reserved `prefect` pools allow).
    pub fn changes_more_than_pause_or_limit(&self) -> bool {
        self.description.is_some() || self.base_job_template.is_some() || self.storage_configuration.is_some()
    }
}

/// Names are non-blank and free of the characters that break URLs.
pub fn validate_pool_name(name: &str) -> crate::Result<()> {
    if name.trim_matches(|c| matches!(c, '\'' | ' ' | '"')).is_empty() {
        return Err(crate::Error::invalid("name", "Value error, name cannot be an empty string"));
    }
    crate::flow::validate_name(name, "name")
}

fn validate_non_negative(field: &str, value: Option<i64>) -> crate::Result<()> {
    match value {
        Some(v) if v < 0 => Err(crate::Error::invalid(field, "Input should be greater than or equal to 0")),
        _ => Ok(()),
    }
}

fn validate_positive(field: &str, value: Option<i64>) -> crate::Result<()> {
    match value {
        Some(v) if v < 1 => Err(crate::Error::invalid(field, "Input should be greater than 0")),
        _ => Ok(()),
    }
}

/// A base job template is empty, or has a `job_configuration` whose `{{ placeholders }}`
/// are all declared as properties of its `variables` schema.
pub fn validate_base_job_template(template: &Map<String, Value>) -> crate::Result<()> {
    if template.is_empty() {
        return Ok(());
    }
    let truthy = |v: Option<&Value>| v.and_then(Value::as_object).is_some_and(|m| !m.is_empty());
    if !truthy(template.get("job_configuration")) || !truthy(template.get("variables")) {
        return Err(crate::Error::invalid(
            "base_job_template",
            "Value error, The `base_job_template` must contain both a `job_configuration` key and a `variables` key.",
        ));
    }
    let declared: Vec<&str> = template
        .get("variables")
        .and_then(|v| v.get("properties"))
        .and_then(Value::as_object)
        .map(|p| p.keys().map(String::as_str).collect())
        .unwrap_or_default();
    let mut missing: Vec<String> = Vec::new();
    if let Some(config) = template.get("job_configuration").and_then(Value::as_object) {
        for value in config.values() {
            for name in placeholders(&value.to_string()) {
                if !declared.contains(&name.as_str()) && !missing.contains(&name) {
                    missing.push(name);
                }
            }
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(crate::Error::invalid(
            "base_job_template",
            format!(
                "Value error, The variables specified in the job configuration template must be present as properties in the variables schema. Your job configuration uses the following undeclared variable(s): {}.",
                missing.join(" ,")
            ),
        ))
    }
}

/// Names inside `{{ ... }}` (letters, digits, `_ . - [ ] $`), as Prefect's templates find them.
pub fn placeholders(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        rest = &rest[start + 2..];
        let Some(end) = rest.find("}}") else { break };
        let inner = rest[..end].trim();
        if !inner.is_empty() && inner.chars().all(|c| c.is_alphanumeric() || matches!(c, '_' | '.' | '-' | '[' | ']' | '$')) {
            out.push(inner.to_owned());
        }
        rest = &rest[end + 2..];
    }
    out
}

/// A stored work queue (of a pool).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkQueue {
    pub id: Uuid,
    pub created: DateTime,
    pub updated: DateTime,
    pub name: String,
    pub description: Option<String>,
    pub is_paused: bool,
    pub concurrency_limit: Option<i64>,
    /// Lower values are served first (1 is the highest priority).
    pub priority: i64,
    pub work_pool_id: Uuid,
    /// Deprecated tag/deployment filter of legacy agents.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub filter: Option<Value>,
    pub last_polled: Option<DateTime>,
    pub status: Option<WorkQueueStatus>,
    pub work_pool_name: Option<String>,
    /// Runs holding a slot (Pending or Running), when the queue has a concurrency limit.
    pub active_slots: Option<i64>,
}

/// A work queue as the legacy `GET /deployments/{id}/work_queue_check` lists it (no pool name,
/// status or slots).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LegacyWorkQueue {
    pub id: Uuid,
    pub created: DateTime,
    pub updated: DateTime,
    pub name: String,
    pub description: Option<String>,
    pub is_paused: bool,
    pub concurrency_limit: Option<i64>,
    pub priority: i64,
    pub work_pool_id: Uuid,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub filter: Option<Value>,
    pub last_polled: Option<DateTime>,
}

impl From<WorkQueue> for LegacyWorkQueue {
    fn from(q: WorkQueue) -> Self {
        LegacyWorkQueue {
            id: q.id,
            created: q.created,
            updated: q.updated,
            name: q.name,
            description: q.description,
            is_paused: q.is_paused,
            concurrency_limit: q.concurrency_limit,
            priority: q.priority,
            work_pool_id: q.work_pool_id,
            filter: q.filter,
            last_polled: q.last_polled,
        }
    }
}

impl WorkQueue {
    /// Whether a legacy agent filter lets this queue pick up a deployment's runs: the filter's
    /// tags (if any) are all among the deployment's, and its deployment ids (if any) include it.
    pub fn legacy_filter_admits(&self, deployment_id: Uuid, deployment_tags: &[String]) -> bool {
        let Some(filter) = &self.filter else {
            return true;
        };
        let listed = |key: &str| filter.get(key).and_then(Value::as_array).filter(|items| !items.is_empty());
        let tags_ok = listed("tags").is_none_or(|tags| tags.iter().all(|t| t.as_str().is_some_and(|t| deployment_tags.iter().any(|d| d == t))));
        let id = deployment_id.to_string();
        let ids_ok = listed("deployment_ids").is_none_or(|ids| ids.iter().any(|i| i.as_str() == Some(id.as_str())));
        tags_ok && ids_ok
    }
}

/// How healthy a work queue is (`GET /work_queues/{id}/status`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkQueueStatusDetail {
    pub healthy: bool,
    pub late_runs_count: u64,
    pub last_polled: Option<DateTime>,
    pub health_check_policy: WorkQueueHealthPolicy,
}

/// When a queue counts as healthy; every queue uses Prefect's default policy.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkQueueHealthPolicy {
    pub maximum_late_runs: Option<u64>,
    pub maximum_seconds_since_last_polled: Option<i64>,
}

impl Default for WorkQueueHealthPolicy {
    fn default() -> Self {
        WorkQueueHealthPolicy { maximum_late_runs: Some(0), maximum_seconds_since_last_polled: Some(60) }
    }
}

impl WorkQueueHealthPolicy {
    /// Healthy: no more late runs than allowed, and polled recently enough.
    pub fn is_healthy(&self, late_runs: u64, last_polled: Option<DateTime>, now: DateTime) -> bool {
        let few_late = self.maximum_late_runs.is_none_or(|max| late_runs <= max);
        let polled = self.maximum_seconds_since_last_polled.is_none_or(|max| last_polled.is_some_and(|t| (now - t).num_milliseconds() <= max * 1000));
        few_late && polled
    }
}

/// Body of `POST /work_pools/{pool}/queues`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct WorkQueueCreate {
    pub name: String,
    #[serde(default = "empty_description")]
    pub description: Option<String>,
    #[serde(default)]
    pub is_paused: bool,
    #[serde(default)]
    pub concurrency_limit: Option<i64>,
    /// Absent: the first free priority.
    #[serde(default)]
    pub priority: Option<i64>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub filter: Option<Value>,
}

fn empty_description() -> Option<String> {
    Some(String::new())
}

impl WorkQueueCreate {
    /// A queue named `name` with everything else defaulted.
    pub fn named(name: impl Into<String>, description: impl Into<String>) -> Self {
        WorkQueueCreate { name: name.into(), description: Some(description.into()), is_paused: false, concurrency_limit: None, priority: None, filter: None }
    }

    pub fn validate(&self) -> crate::Result<()> {
        crate::flow::validate_name(&self.name, "name")?;
        validate_non_negative("concurrency_limit", self.concurrency_limit)?;
        validate_positive("priority", self.priority)
    }
}

/// Body of `PATCH /work_pools/{pool}/queues/{name}`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct WorkQueueUpdate {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub description: Option<Option<String>>,
    #[serde(default)]
    pub is_paused: Option<bool>,
    #[serde(default, deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<i64>))]
    pub concurrency_limit: Option<Option<i64>>,
    #[serde(default)]
    pub priority: Option<i64>,
    #[serde(default)]
    pub last_polled: Option<DateTime>,
    #[serde(default, deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub filter: Option<Option<Value>>,
}

impl WorkQueueUpdate {
    pub fn validate(&self) -> crate::Result<()> {
        if let Some(name) = &self.name {
            crate::flow::validate_name(name, "name")?;
        }
        if let Some(limit) = self.concurrency_limit {
            validate_non_negative("concurrency_limit", limit)?;
        }
        validate_positive("priority", self.priority)
    }
}

/// A worker process that heartbeats to a pool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Worker {
    pub id: Uuid,
    pub created: DateTime,
    pub updated: DateTime,
    pub name: String,
    pub work_pool_id: Uuid,
    pub last_heartbeat_time: DateTime,
    pub heartbeat_interval_seconds: Option<i64>,
    pub status: WorkerStatus,
}

impl Worker {
    /// ONLINE while the last heartbeat is younger than three heartbeat intervals.
    pub fn status_at(last_heartbeat_time: DateTime, heartbeat_interval_seconds: Option<i64>, now: DateTime) -> WorkerStatus {
        let interval = heartbeat_interval_seconds.unwrap_or(DEFAULT_HEARTBEAT_INTERVAL_SECONDS);
        let horizon = now - chrono::Duration::seconds(interval.saturating_mul(INACTIVITY_HEARTBEAT_MULTIPLE));
        if last_heartbeat_time > horizon { WorkerStatus::Online } else { WorkerStatus::Offline }
    }
}

/// Body of `POST /work_pools/{pool}/workers/heartbeat`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkerHeartbeat {
    pub name: String,
    #[serde(default)]
    pub heartbeat_interval_seconds: Option<i64>,
}

/// Matches workers by heartbeat time.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct WorkerHeartbeatTimeFilter {
    #[serde(default)]
    pub before_: Option<DateTime>,
    #[serde(default)]
    pub after_: Option<DateTime>,
}

/// Matches workers by stored status.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct WorkerStatusFilter {
    #[serde(default)]
    pub any_: Option<Vec<WorkerStatus>>,
    #[serde(default)]
    pub not_any_: Option<Vec<WorkerStatus>>,
}

/// Filter over the workers of a pool.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct WorkerFilter {
    #[serde(default)]
    pub operator: Operator,
    #[serde(default)]
    pub last_heartbeat_time: Option<WorkerHeartbeatTimeFilter>,
    #[serde(default)]
    pub status: Option<WorkerStatusFilter>,
}

/// One run a worker should start, with the pool and queue it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkerFlowRun {
    pub work_pool_id: Uuid,
    pub work_queue_id: Uuid,
    pub flow_run: FlowRun,
}

/// Which runs a worker asks for (`POST /work_pools/{name}/get_scheduled_flow_runs`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScheduledRunsQuery {
    /// Only these queues of the pool; `None`: every queue.
    pub work_queue_ids: Option<Vec<Uuid>>,
    pub scheduled_before: Option<DateTime>,
    pub scheduled_after: Option<DateTime>,
    pub limit: u64,
    /// Serve higher-priority queues first.
    pub respect_queue_priorities: bool,
}

/// Priorities that keep each queue's relative order, with `moved` queues placed at their
/// requested priorities, others shifted up as little as needed so priorities stay unique
/// and positive. `queues` is `(id, priority)` sorted by priority; returns the changed ones.
pub fn reprioritize(queues: &[(Uuid, i64)], moved: &[(Uuid, i64)]) -> Vec<(Uuid, i64)> {
    let mut order: Vec<(Uuid, i64)> = queues.iter().copied().filter(|(id, _)| !moved.iter().any(|(m, _)| m == id)).collect();
    let mut moved_sorted = moved.to_vec();
    moved_sorted.sort_by_key(|&(_, p)| p);
    for (id, priority) in moved_sorted {
        if !queues.iter().any(|(q, _)| *q == id) {
            continue;
        }
        let at = order.iter().position(|&(_, p)| p >= priority).unwrap_or(order.len());
        order.insert(at, (id, priority));
    }
    let mut last = 0;
    for entry in &mut order {
        if entry.1 <= last {
            last += 1;
            entry.1 = last;
        } else {
            last = entry.1;
        }
    }
    order.into_iter().filter(|(id, p)| queues.iter().find(|(q, _)| q == id).is_none_or(|(_, old)| old != p)).collect()
}

/// The first priority a new queue gets: the lowest gap in `1..`, else one past the highest.
pub fn next_free_priority(taken: &[i64]) -> i64 {
    let mut sorted = taken.to_vec();
    sorted.sort_unstable();
    for (i, p) in sorted.iter().enumerate() {
        let expected = i as i64 + 1;
        if *p != expected {
            return expected;
        }
    }
    sorted.last().map_or(1, |max| max + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_filters_admit_by_tags_and_ids() {
        let id = Uuid::now_v7();
        let queue = |filter: Option<Value>| WorkQueue {
            filter,
            ..serde_json::from_value(serde_json::json!({
                "id": Uuid::now_v7(), "created": "2026-01-01T00:00:00Z", "updated": "2026-01-01T00:00:00Z", "name": "q",
                "description": "", "is_paused": false, "concurrency_limit": null, "priority": 1, "work_pool_id": Uuid::now_v7(),
                "filter": null, "last_polled": null, "status": null, "work_pool_name": null, "active_slots": null
            }))
            .unwrap()
        };
        let tags = vec!["a".to_owned(), "x".to_owned()];
        assert!(queue(None).legacy_filter_admits(id, &tags));
        assert!(queue(Some(serde_json::json!({"tags": [], "deployment_ids": []}))).legacy_filter_admits(id, &tags));
        assert!(queue(Some(serde_json::json!({"tags": ["a"], "deployment_ids": null}))).legacy_filter_admits(id, &tags));
        assert!(!queue(Some(serde_json::json!({"tags": ["b"]}))).legacy_filter_admits(id, &tags));
        assert!(queue(Some(serde_json::json!({"deployment_ids": [id.to_string()]}))).legacy_filter_admits(id, &tags));
        assert!(!queue(Some(serde_json::json!({"deployment_ids": [Uuid::now_v7().to_string()]}))).legacy_filter_admits(id, &tags));
    }

    #[test]
    fn queue_health_needs_a_recent_poll_and_no_late_runs() {
        let policy = WorkQueueHealthPolicy::default();
        let now = crate::time::now();
        assert!(policy.is_healthy(0, Some(now - chrono::TimeDelta::seconds(10)), now));
        assert!(!policy.is_healthy(1, Some(now), now));
        assert!(!policy.is_healthy(0, None, now));
        assert!(!policy.is_healthy(0, Some(now - chrono::TimeDelta::seconds(61)), now));
    }
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn base_job_templates_declare_their_placeholders() {
        assert!(validate_base_job_template(&Map::new()).is_ok());
        let ok = obj(json!({"job_configuration": {"command": "{{ command }}", "env": "{{env}}"},
                             "variables": {"properties": {"command": {}, "env": {}}}}));
        assert!(validate_base_job_template(&ok).is_ok());
        let missing = obj(json!({"job_configuration": {"command": "{{ command }}"}, "variables": {"properties": {}}}));
        let err = validate_base_job_template(&missing).unwrap_err().to_string();
        assert!(err.contains("undeclared variable(s): command."), "{err}");
        let no_vars = obj(json!({"job_configuration": {"command": "x"}}));
        assert!(validate_base_job_template(&no_vars).unwrap_err().to_string().contains("must contain both"));
    }

    #[test]
    fn placeholders_are_found_inside_braces() {
        assert_eq!(placeholders(r#"{"a": "{{ x }}.{{y}}", "b": "{{ not valid! }}"}"#), vec!["x", "y"]);
    }

    #[test]
    fn new_queues_take_the_first_free_priority() {
        assert_eq!(next_free_priority(&[]), 1);
        assert_eq!(next_free_priority(&[1, 2, 3]), 4);
        assert_eq!(next_free_priority(&[1, 3]), 2);
        assert_eq!(next_free_priority(&[2]), 1);
    }

    #[test]
    fn moving_a_queue_shifts_the_others_minimally() {
        let (a, b, c) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3));
        // c moves to priority 1: a and b shift down by one.
        let changed = reprioritize(&[(a, 1), (b, 2), (c, 3)], &[(c, 1)]);
        assert_eq!(changed, vec![(c, 1), (a, 2), (b, 3)]);
        // a moves to a free priority: nothing else changes.
        assert_eq!(reprioritize(&[(a, 1), (b, 2)], &[(a, 5)]), vec![(a, 5)]);
        // a gap is closed only where needed.
        assert_eq!(reprioritize(&[(a, 1), (b, 5)], &[]), vec![]);
    }

    #[test]
    fn workers_go_offline_after_three_missed_heartbeats() {
        let now = crate::time::now();
        assert_eq!(Worker::status_at(now - chrono::Duration::seconds(80), None, now), WorkerStatus::Online);
        assert_eq!(Worker::status_at(now - chrono::Duration::seconds(95), None, now), WorkerStatus::Offline);
        assert_eq!(Worker::status_at(now - chrono::Duration::seconds(95), Some(60), now), WorkerStatus::Online);
    }

    #[test]
    fn pool_updates_read_null_as_clear() {
        let u: WorkPoolUpdate = serde_json::from_value(json!({"concurrency_limit": null})).unwrap();
        assert_eq!(u.concurrency_limit, Some(None));
        let u: WorkPoolUpdate = serde_json::from_value(json!({"is_paused": true})).unwrap();
        assert_eq!(u.concurrency_limit, None);
    }
}
