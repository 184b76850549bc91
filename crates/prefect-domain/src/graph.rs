//! The flow run graph (`GET /flow_runs/{id}/graph-v2`): task runs and subflow runs as nodes.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::state::StateType;
use crate::time::DateTime;

/// A reference to another node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Edge {
    pub id: Uuid,
}

/// An artifact shown on the graph (data only for progress artifacts).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GraphArtifact {
    pub id: Uuid,
    pub created: DateTime,
    pub key: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub is_latest: bool,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub data: Option<serde_json::Value>,
}

/// A state of the graph's flow run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GraphState {
    pub id: Uuid,
    pub timestamp: DateTime,
    #[serde(rename = "type")]
    pub state_type: StateType,
    pub name: String,
}

/// A task run, or the subflow run a task run stands for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Node {
    /// `flow-run` or `task-run`.
    pub kind: String,
    pub id: Uuid,
    pub label: String,
    pub state_type: Option<StateType>,
    pub start_time: DateTime,
    pub end_time: Option<DateTime>,
    pub parents: Vec<Edge>,
    pub children: Vec<Edge>,
    pub encapsulating: Vec<Edge>,
    pub artifacts: Vec<GraphArtifact>,
}

/// The graph of one flow run. `nodes` are `[id, node]` pairs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Graph {
    pub start_time: Option<DateTime>,
    pub end_time: Option<DateTime>,
    pub root_node_ids: Vec<Uuid>,
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Vec<Object>>))]
    pub nodes: Vec<(Uuid, Node)>,
    pub artifacts: Vec<GraphArtifact>,
    pub states: Vec<GraphState>,
}
