//! Artifacts: results, markdown, tables, links and progress published by runs.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::time::DateTime;

/// A stored artifact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Artifact {
    pub id: Uuid,
    pub created: DateTime,
    pub updated: DateTime,
    pub key: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub description: Option<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub data: Option<Value>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub metadata_: Option<Map<String, Value>>,
    pub flow_run_id: Option<Uuid>,
    pub task_run_id: Option<Uuid>,
}

/// The latest artifact of a key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ArtifactCollection {
    pub id: Uuid,
    pub created: DateTime,
    pub updated: DateTime,
    pub key: String,
    pub latest_id: Uuid,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub description: Option<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub data: Option<Value>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub metadata_: Option<Map<String, Value>>,
    pub flow_run_id: Option<Uuid>,
    pub task_run_id: Option<Uuid>,
}

/// Body of `POST /artifacts/`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ArtifactCreate {
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub data: Option<Value>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub metadata_: Option<Map<String, Value>>,
    #[serde(default)]
    pub flow_run_id: Option<Uuid>,
    #[serde(default)]
    pub task_run_id: Option<Uuid>,
}

impl ArtifactCreate {
    /// Keys are lowercase letters, digits and dashes; metadata values are strings.
    pub fn validate(&self) -> crate::Result<()> {
        if let Some(key) = &self.key {
            validate_key(key)?;
        }
        if let Some(metadata) = &self.metadata_ {
            validate_metadata(metadata)?;
        }
        Ok(())
    }
}

/// Body of `PATCH /artifacts/{id}`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ArtifactUpdate {
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub data: Option<Value>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub metadata_: Option<Map<String, Value>>,
}

/// Artifact keys: lowercase letters, numbers and dashes.
pub fn validate_key(key: &str) -> crate::Result<()> {
    if key.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') {
        Ok(())
    } else {
        Err(crate::Error::invalid("key", "Artifact key must only contain lowercase letters, numbers, and dashes."))
    }
}

fn validate_metadata(metadata: &Map<String, Value>) -> crate::Result<()> {
    if metadata.values().all(Value::is_string) { Ok(()) } else { Err(crate::Error::invalid("metadata_", "metadata values must be strings")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifact_keys_are_slugs() {
        assert!(validate_key("my-key-1").is_ok());
        assert!(validate_key("My_Key").is_err());
    }
}
