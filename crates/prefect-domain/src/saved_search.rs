//! Saved searches: named sets of UI filters.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::time::DateTime;

/// One filter of a saved search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SavedSearchFilter {
    /// The object filtered on (`flow`, `flow_run`, …).
    pub object: String,
    pub property: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// The comparison, e.g. `equals`.
    pub operation: String,
    /// Any JSON value (`null` included).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub value: Value,
}

/// A stored saved search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SavedSearch {
    pub id: Uuid,
    pub created: DateTime,
    pub updated: DateTime,
    pub name: String,
    pub filters: Vec<SavedSearchFilter>,
}

/// Body of `PUT /saved_searches/`: creates, or replaces the filters of the search with that name.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SavedSearchCreate {
    pub name: String,
    #[serde(default)]
    pub filters: Vec<SavedSearchFilter>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_need_every_part_but_value_may_be_null() {
        let ok: SavedSearchCreate = serde_json::from_str(
            r#"{"name": "s", "filters": [{"object": "flow", "property": "name", "type": "string", "operation": "equals", "value": null}]}"#,
        )
        .unwrap();
        assert_eq!(ok.filters[0].value, Value::Null);
        assert!(serde_json::from_str::<SavedSearchCreate>(r#"{"name": "s", "filters": [{"object": "flow"}]}"#).is_err());
    }
}
