//! Variables: named JSON values flows read at run time (`Variable.get`).

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::filters::Operator;
use crate::time::DateTime;

/// Longest variable name Prefect accepts.
pub const MAX_VARIABLE_NAME_LENGTH: usize = 255;
/// Longest serialized variable value, in bytes of compact JSON.
pub const MAX_VARIABLE_VALUE_LENGTH: usize = 5000;

/// A stored variable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Variable {
    pub id: Uuid,
    pub created: DateTime,
    pub updated: DateTime,
    pub name: String,
    /// Any JSON value.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub value: Value,
    pub tags: Vec<String>,
}

/// Body of `POST /variables/`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct VariableCreate {
    pub name: String,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub value: Value,
    #[serde(default)]
    pub tags: Vec<String>,
}

impl VariableCreate {
    pub fn validate(&self) -> crate::Result<()> {
        validate_name(&self.name)?;
        validate_value(&self.value)
    }
}

/// Body of `PATCH /variables/{id}` and `/variables/name/{name}`: only the fields sent change.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct VariableUpdate {
    #[serde(default)]
    pub name: Option<String>,
    /// `Some(Value::Null)` sets the value to null; absent leaves it alone.
    #[serde(default, deserialize_with = "present")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub value: Option<Value>,
    #[serde(default)]
    pub tags: Option<Vec<String>>,
}

/// Deserializes a field that may be present with a `null` value into `Some(Value::Null)`.
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(deserializer).map(Some)
}

impl VariableUpdate {
    pub fn validate(&self) -> crate::Result<()> {
        if let Some(name) = &self.name {
            validate_name(name)?;
        }
        if let Some(value) = &self.value {
            validate_value(value)?;
        }
        Ok(())
    }
}

/// Names are lowercase letters, digits, dashes and underscores, at most 255 characters.
pub fn validate_name(name: &str) -> crate::Result<()> {
    if name.chars().count() > MAX_VARIABLE_NAME_LENGTH {
        return Err(crate::Error::invalid("name", format!("String should have at most {MAX_VARIABLE_NAME_LENGTH} characters")));
    }
    if !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_') {
        return Err(crate::Error::invalid("name", "Value error, Variable name must only contain lowercase letters, numbers, and dashes or underscores."));
    }
    Ok(())
}

/// Values serialize to at most 5000 bytes of compact JSON (null is always fine).
pub fn validate_value(value: &Value) -> crate::Result<()> {
    if !value.is_null() && serde_json::to_vec(value).map_or(0, |v| v.len()) > MAX_VARIABLE_VALUE_LENGTH {
        return Err(crate::Error::invalid("value", format!("Value error, Variable value must be less than {MAX_VARIABLE_VALUE_LENGTH} characters")));
    }
    Ok(())
}

/// Matches variable ids.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct VariableFilterId {
    #[serde(default)]
    pub any_: Option<Vec<Uuid>>,
}

/// Matches variable names: exact list or case-insensitive substring.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct VariableFilterName {
    #[serde(default)]
    pub any_: Option<Vec<String>>,
    #[serde(default)]
    pub like_: Option<String>,
}

/// Matches variable tags: contains all, or has none.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct VariableFilterTags {
    #[serde(default)]
    pub operator: Operator,
    #[serde(default)]
    pub all_: Option<Vec<String>>,
    #[serde(default)]
    pub is_null_: Option<bool>,
}

/// Filter over variables.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct VariableFilter {
    #[serde(default)]
    pub operator: Operator,
    #[serde(default)]
    pub id: Option<VariableFilterId>,
    #[serde(default)]
    pub name: Option<VariableFilterName>,
    #[serde(default)]
    pub tags: Option<VariableFilterTags>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_lowercase_slugs_with_underscores() {
        assert!(validate_name("my_var-1").is_ok());
        assert!(validate_name("My Var").is_err());
        assert!(validate_name(&"a".repeat(256)).is_err());
    }

    #[test]
    fn values_are_capped_at_5000_bytes() {
        assert!(validate_value(&Value::String("a".repeat(4998))).is_ok());
        assert!(validate_value(&Value::String("a".repeat(4999))).is_err());
        assert!(validate_value(&Value::Null).is_ok());
    }

    #[test]
    fn update_tells_null_from_absent() {
        let u: VariableUpdate = serde_json::from_str(r#"{"value": null}"#).unwrap();
        assert_eq!(u.value, Some(Value::Null));
        let u: VariableUpdate = serde_json::from_str(r#"{"tags": ["a"]}"#).unwrap();
        assert_eq!(u.value, None);
    }
}
