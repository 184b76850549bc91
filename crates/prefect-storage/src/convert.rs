//! Conversions between stored rows and domain types.

use prefect_domain::artifact::{Artifact, ArtifactCollection};
use prefect_domain::concurrency::{ConcurrencyLease, ConcurrencyLeaseHolder, ConcurrencyLimitV2, LeaseHolderType};
use prefect_domain::flow::Flow;
use prefect_domain::flow_run::{CreatedBy, FlowRun};
use prefect_domain::log::Log;
use prefect_domain::state::{State, StateType};
use prefect_domain::task_run::TaskRun;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::entity::{artifact, artifact_collection, concurrency_lease, concurrency_limit_v2, flow, flow_run, flow_run_state, log, task_run, task_run_state};
use crate::{Error, Result};

/// Decodes a JSON column into a typed value.
pub(crate) fn from_json<T: DeserializeOwned>(value: Value, column: &str) -> Result<T> {
    serde_json::from_value(value).map_err(|e| Error::Corrupt(format!("{column}: {e}")))
}

pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

pub(crate) fn json_object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

pub(crate) fn string_list(value: Value) -> Vec<String> {
    match value {
        Value::Array(items) => items.into_iter().filter_map(|v| v.as_str().map(str::to_owned)).collect(),
        _ => Vec::new(),
    }
}

pub(crate) fn state_type(text: &str) -> Result<StateType> {
    text.parse().map_err(|_| Error::Corrupt(format!("state type {text:?}")))
}

pub(crate) fn opt_state_type(text: Option<&str>) -> Result<Option<StateType>> {
    text.map(state_type).transpose()
}

/// A stored flow run state.
pub fn flow_run_state(model: flow_run_state::Model) -> Result<State> {
    Ok(State {
        id: model.id,
        state_type: state_type(&model.kind)?,
        name: Some(model.name),
        timestamp: model.timestamp,
        message: model.message,
        data: model.data.filter(|v| !v.is_null()),
        state_details: model.state_details.0,
    })
}

/// A stored task run state.
pub fn task_run_state(model: task_run_state::Model) -> Result<State> {
    Ok(State {
        id: model.id,
        state_type: state_type(&model.kind)?,
        name: Some(model.name),
        timestamp: model.timestamp,
        message: model.message,
        data: model.data.filter(|v| !v.is_null()),
        state_details: model.state_details.0,
    })
}

pub fn flow(model: flow::Model) -> Result<Flow> {
    Ok(Flow {
        id: model.id,
        created: model.created,
        updated: model.updated,
        name: model.name,
        tags: string_list(model.tags),
        labels: model.labels.map(json_object),
    })
}

/// A flow run with its current state and, when known, its work pool.
pub fn flow_run(model: flow_run::Model, state: Option<State>, work_pool: Option<(Uuid, String)>) -> Result<FlowRun> {
    let (work_pool_id, work_pool_name) = work_pool.map_or((None, None), |(id, name)| (Some(id), Some(name)));
    Ok(FlowRun {
        id: model.id,
        created: model.created,
        updated: model.updated,
        name: model.name,
        flow_id: model.flow_id,
        state_id: model.state_id,
        deployment_id: model.deployment_id,
        deployment_version: model.deployment_version,
        work_queue_id: model.work_queue_id,
        work_queue_name: model.work_queue_name,
        flow_version: model.flow_version,
        parameters: json_object(model.parameters),
        idempotency_key: model.idempotency_key,
        context: json_object(model.context),
        empirical_policy: model.empirical_policy.0,
        tags: model.tags.0,
        labels: json_object(model.labels),
        parent_task_run_id: model.parent_task_run_id,
        state_type: opt_state_type(model.state_type.as_deref())?,
        state_name: model.state_name,
        run_count: model.run_count,
        expected_start_time: model.expected_start_time,
        next_scheduled_start_time: model.next_scheduled_start_time,
        start_time: model.start_time,
        end_time: model.end_time,
        total_run_time: model.total_run_time,
        estimated_run_time: model.total_run_time,
        estimated_start_time_delta: 0.0,
        auto_scheduled: model.auto_scheduled,
        infrastructure_document_id: model.infrastructure_document_id,
        infrastructure_pid: model.infrastructure_pid,
        created_by: model.created_by.map(|v| from_json::<CreatedBy>(v, "created_by")).transpose()?,
        work_pool_id,
        work_pool_name,
        state,
        job_variables: model.job_variables.map(json_object),
    })
}

pub fn task_run(model: task_run::Model, state: Option<State>) -> Result<TaskRun> {
    Ok(TaskRun {
        id: model.id,
        created: model.created,
        updated: model.updated,
        name: model.name,
        flow_run_id: model.flow_run_id,
        task_key: model.task_key,
        dynamic_key: model.dynamic_key,
        cache_key: model.cache_key,
        cache_expiration: model.cache_expiration,
        task_version: model.task_version,
        empirical_policy: model.empirical_policy.0,
        tags: model.tags.0,
        labels: model.labels.map(json_object),
        state_id: model.state_id,
        task_inputs: json_object(model.task_inputs),
        state_type: opt_state_type(model.state_type.as_deref())?,
        state_name: model.state_name,
        run_count: model.run_count,
        flow_run_run_count: model.flow_run_run_count,
        expected_start_time: model.expected_start_time,
        next_scheduled_start_time: model.next_scheduled_start_time,
        start_time: model.start_time,
        end_time: model.end_time,
        total_run_time: model.total_run_time,
        estimated_run_time: model.total_run_time,
        estimated_start_time_delta: 0.0,
        state,
    })
}

pub fn log(model: log::Model) -> Log {
    Log {
        id: model.id,
        created: model.created,
        updated: model.updated,
        name: model.name,
        level: model.level,
        message: model.message,
        timestamp: model.timestamp,
        flow_run_id: model.flow_run_id,
        task_run_id: model.task_run_id,
    }
}

pub fn artifact(model: artifact::Model) -> Artifact {
    Artifact {
        id: model.id,
        created: model.created,
        updated: model.updated,
        key: model.key,
        kind: model.kind,
        description: model.description,
        data: model.data,
        metadata_: model.metadata_.map(json_object),
        flow_run_id: model.flow_run_id,
        task_run_id: model.task_run_id,
    }
}

pub fn artifact_collection(model: artifact_collection::Model) -> ArtifactCollection {
    ArtifactCollection {
        id: model.id,
        created: model.created,
        updated: model.updated,
        key: model.key,
        latest_id: model.latest_id,
        kind: model.kind,
        description: model.description,
        data: model.data,
        metadata_: model.metadata_.map(json_object),
        flow_run_id: model.flow_run_id,
        task_run_id: model.task_run_id,
    }
}

pub fn concurrency_limit(model: concurrency_limit_v2::Model) -> ConcurrencyLimitV2 {
    ConcurrencyLimitV2 {
        id: model.id,
        created: model.created,
        updated: model.updated,
        active: model.active,
        name: model.name,
        limit: model.limit,
        active_slots: model.active_slots,
        denied_slots: model.denied_slots,
        slot_decay_per_second: model.slot_decay_per_second,
        avg_slot_occupancy_seconds: model.avg_slot_occupancy_seconds,
    }
}

pub fn concurrency_lease(model: concurrency_lease::Model) -> Result<ConcurrencyLease> {
    let holder = match (model.holder_type.as_deref().and_then(LeaseHolderType::parse), model.holder_id) {
        (Some(kind), Some(id)) => Some(ConcurrencyLeaseHolder { kind, id }),
        _ => None,
    };
    Ok(ConcurrencyLease {
        id: model.id,
        resource_ids: from_json(model.resource_ids, "resource_ids")?,
        slots: model.slots,
        holder,
        created: model.created,
        expiration: model.expiration,
    })
}
