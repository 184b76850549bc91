//! Log lines sent by runs.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::time::DateTime;

/// A stored log line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Log {
    pub id: Uuid,
    pub created: DateTime,
    pub updated: DateTime,
    pub name: String,
    pub level: i64,
    pub message: String,
    pub timestamp: DateTime,
    pub flow_run_id: Option<Uuid>,
    pub task_run_id: Option<Uuid>,
}

/// One element of the JSON array posted to `POST /logs/`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LogCreate {
    pub name: String,
    pub level: i64,
    pub message: String,
    pub timestamp: DateTime,
    #[serde(default)]
    pub flow_run_id: Option<Uuid>,
    #[serde(default)]
    pub task_run_id: Option<Uuid>,
}
