//! Flows: named, versionless groupings of flow runs.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::labels::KeyValueLabels;
use crate::time::DateTime;

/// A flow as returned by the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Flow {
    pub id: Uuid,
    pub created: DateTime,
    pub updated: DateTime,
    pub name: String,
    pub tags: Vec<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub labels: Option<KeyValueLabels>,
}

/// Body of `POST /flows/` (an upsert by name).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct FlowCreate {
    pub name: String,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub labels: Option<KeyValueLabels>,
}

impl FlowCreate {
    /// Applies Prefect's checks on names and labels.
    pub fn validate(&self) -> crate::Result<()> {
        validate_name(&self.name, "name")?;
        if let Some(labels) = &self.labels {
            crate::labels::validate(labels, "labels")?;
        }
        Ok(())
    }
}

/// Body of `PATCH /flows/{id}`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct FlowUpdate {
    #[serde(default)]
    pub tags: Option<Vec<String>>,
}

/// Object names may not contain `/ % & > <` (they appear in URLs).
pub fn validate_name(name: &str, field: &str) -> crate::Result<()> {
    if name.is_empty() {
        return Err(crate::Error::invalid(field, "String should have at least 1 character"));
    }
    if name.chars().any(|c| matches!(c, '/' | '%' | '&' | '>' | '<')) {
        return Err(crate::Error::invalid(field, "String should match pattern '^[^/%&><]+$'"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_reject_url_characters() {
        assert!(validate_name("ok-name", "name").is_ok());
        assert!(validate_name("a/b", "name").is_err());
        assert!(validate_name("", "name").is_err());
    }

    #[test]
    fn flow_create_forbids_extra_fields() {
        assert!(serde_json::from_str::<FlowCreate>(r#"{"name":"x","unexpected_field":1}"#).is_err());
        assert!(serde_json::from_str::<FlowCreate>(r#"{}"#).is_err());
    }
}
