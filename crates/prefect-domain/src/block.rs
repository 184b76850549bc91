//! Blocks: typed, versioned configuration documents (credentials, storage, webhooks).
//!
//! A block *type* (`secret`, `local-file-system`, …) has block *schemas* (JSON
//! schemas identified by a checksum and a version), and block *documents* are
//! saved values of one schema. Schemas and documents may nest other blocks by
//! reference.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::filters::Operator;
use crate::time::DateTime;

/// The version of schemas registered without one.
pub const DEFAULT_BLOCK_SCHEMA_VERSION: &str = "non-versioned";
/// What a secret value reads as unless secrets are asked for.
pub const OBFUSCATED: &str = "********";

/// Deserializes a field that may be sent as `null` into `Some(None)` (absent stays `None`).
pub(crate) fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(deserializer: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(deserializer).map(Some)
}

/// A block type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BlockType {
    pub id: Uuid,
    pub created: DateTime,
    pub updated: DateTime,
    pub name: String,
    pub slug: String,
    pub logo_url: Option<String>,
    pub documentation_url: Option<String>,
    pub description: Option<String>,
    pub code_example: Option<String>,
    pub is_protected: bool,
}

/// Body of `POST /block_types/`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BlockTypeCreate {
    pub name: String,
    pub slug: String,
    #[serde(default)]
    pub logo_url: Option<String>,
    #[serde(default)]
    pub documentation_url: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub code_example: Option<String>,
}

impl BlockTypeCreate {
    pub fn validate(&self) -> crate::Result<()> {
        validate_name(&self.name, "name")?;
        validate_slug(&self.slug, "slug", "Block type slug")
    }
}

/// Body of `PATCH /block_types/{id}`: fields sent (even as null) replace the stored ones.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BlockTypeUpdate {
    #[serde(default, deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub logo_url: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub documentation_url: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub description: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub code_example: Option<Option<String>>,
}

impl BlockTypeUpdate {
    /// Whether applying the update to `current` would change anything.
    pub fn changes(&self, current: &BlockType) -> bool {
        let differs = |field: &Option<Option<String>>, value: &Option<String>| field.as_ref().is_some_and(|f| f != value);
        differs(&self.logo_url, &current.logo_url)
            || differs(&self.documentation_url, &current.documentation_url)
            || differs(&self.description, &current.description)
            || differs(&self.code_example, &current.code_example)
    }
}

/// A block schema. `fields` is a JSON schema with Prefect's extras
/// (`block_type_slug`, `secret_fields`, `block_schema_references`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BlockSchema {
    pub id: Uuid,
    pub created: DateTime,
    pub updated: DateTime,
    pub checksum: String,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub fields: Map<String, Value>,
    pub block_type_id: Uuid,
    pub block_type: Option<BlockType>,
    pub capabilities: Vec<String>,
    pub version: String,
}

impl BlockSchema {
    /// Dotted paths of the secret values of documents of this schema (`a.b`, `headers.*`).
    pub fn secret_fields(&self) -> Vec<String> {
        self.fields.get("secret_fields").and_then(Value::as_array).map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect()).unwrap_or_default()
    }
}

fn default_version() -> String {
    DEFAULT_BLOCK_SCHEMA_VERSION.to_owned()
}

/// Body of `POST /block_schemas/`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BlockSchemaCreate {
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub fields: Map<String, Value>,
    pub block_type_id: Uuid,
    #[serde(default)]
    pub capabilities: Vec<String>,
    #[serde(default = "default_version")]
    pub version: String,
}

/// A saved block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BlockDocument {
    pub id: Uuid,
    pub created: DateTime,
    pub updated: DateTime,
    pub name: Option<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub data: Map<String, Value>,
    pub block_schema_id: Uuid,
    pub block_schema: Option<BlockSchema>,
    pub block_type_id: Uuid,
    pub block_type_name: Option<String>,
    pub block_type: Option<BlockType>,
    /// For each field holding another block: that block's id, name, type and own references.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub block_document_references: Map<String, Value>,
    pub is_anonymous: bool,
}

/// Body of `POST /block_documents/`. A field whose value is `{"$ref": {"block_document_id": …}}`
/// nests that block document.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BlockDocumentCreate {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub data: Map<String, Value>,
    pub block_schema_id: Uuid,
    pub block_type_id: Uuid,
    #[serde(default)]
    pub is_anonymous: bool,
}

impl BlockDocumentCreate {
    pub fn validate(&self) -> crate::Result<()> {
        match self.name.as_deref() {
            Some(name) if !name.is_empty() => {
                validate_name(name, "name")?;
                validate_slug(name, "name", "Block document name")
            }
            _ if self.is_anonymous => Ok(()),
            _ => Err(crate::Error::invalid("", "Value error, Names must be provided for block documents.")),
        }
    }
}

/// Body of `PATCH /block_documents/{id}`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BlockDocumentUpdate {
    #[serde(default)]
    pub block_schema_id: Option<Uuid>,
    /// Absent means "no change" when merging, and `{}` when replacing.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub data: Option<Map<String, Value>>,
    /// Merge `data` into the stored data (default) instead of replacing it.
    #[serde(default = "yes")]
    pub merge_existing_data: bool,
}

fn yes() -> bool {
    true
}

/// Prefect's `Name`: no `/`, `%`, `&`, `>` or `<`, and not empty.
pub fn validate_name(name: &str, field: &str) -> crate::Result<()> {
    if name.is_empty() || name.contains(['/', '%', '&', '>', '<']) {
        return Err(crate::Error::invalid(field, "String should match pattern '^[^/%&><]+$'"));
    }
    Ok(())
}

/// Slugs: lowercase letters, digits and dashes.
pub fn validate_slug(value: &str, field: &str, what: &str) -> crate::Result<()> {
    if value.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') {
        Ok(())
    } else {
        Err(crate::Error::invalid(field, format!("Value error, {what} must only contain lowercase letters, numbers, and dashes.")))
    }
}

/// Matches block type names by case-insensitive substring.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BlockTypeFilterName {
    #[serde(default)]
    pub like_: Option<String>,
}

/// Matches block type slugs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BlockTypeFilterSlug {
    #[serde(default)]
    pub any_: Option<Vec<String>>,
}

/// Filter over block types (criteria are combined with AND).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BlockTypeFilter {
    #[serde(default)]
    pub name: Option<BlockTypeFilterName>,
    #[serde(default)]
    pub slug: Option<BlockTypeFilterSlug>,
}

/// Matches ids in a list.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AnyIdFilter {
    #[serde(default)]
    pub any_: Option<Vec<Uuid>>,
}

/// Matches strings in a list.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AnyStringFilter {
    #[serde(default)]
    pub any_: Option<Vec<String>>,
}

/// Matches schemas having every listed capability.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BlockSchemaFilterCapabilities {
    #[serde(default)]
    pub all_: Option<Vec<String>>,
}

/// Filter over block schemas.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BlockSchemaFilter {
    #[serde(default)]
    pub operator: Operator,
    #[serde(default)]
    pub block_type_id: Option<AnyIdFilter>,
    #[serde(default)]
    pub block_capabilities: Option<BlockSchemaFilterCapabilities>,
    #[serde(default)]
    pub id: Option<AnyIdFilter>,
    #[serde(default)]
    pub version: Option<AnyStringFilter>,
}

/// Matches anonymous (or named) documents.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BlockDocumentFilterIsAnonymous {
    #[serde(default)]
    pub eq_: Option<bool>,
}

/// Matches document names: a list, or a case-insensitive substring.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BlockDocumentFilterName {
    #[serde(default)]
    pub any_: Option<Vec<String>>,
    #[serde(default)]
    pub like_: Option<String>,
}

fn named_only() -> Option<BlockDocumentFilterIsAnonymous> {
    Some(BlockDocumentFilterIsAnonymous { eq_: Some(false) })
}

/// Filter over block documents. Anonymous documents are excluded unless
/// `is_anonymous` says otherwise (or is sent as null).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BlockDocumentFilter {
    #[serde(default)]
    pub operator: Operator,
    #[serde(default)]
    pub id: Option<AnyIdFilter>,
    #[serde(default = "named_only")]
    pub is_anonymous: Option<BlockDocumentFilterIsAnonymous>,
    #[serde(default)]
    pub block_type_id: Option<AnyIdFilter>,
    #[serde(default)]
    pub name: Option<BlockDocumentFilterName>,
}

impl Default for BlockDocumentFilter {
    fn default() -> Self {
        BlockDocumentFilter { operator: Operator::And, id: None, is_anonymous: named_only(), block_type_id: None, name: None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_names_are_required_unless_anonymous() {
        let create = |name: Option<&str>, anon: bool| BlockDocumentCreate {
            name: name.map(str::to_owned),
            data: Map::new(),
            block_schema_id: Uuid::nil(),
            block_type_id: Uuid::nil(),
            is_anonymous: anon,
        };
        assert!(create(None, false).validate().is_err());
        assert!(create(None, true).validate().is_ok());
        assert!(create(Some("my-block"), false).validate().is_ok());
        assert!(create(Some("My_Block"), false).validate().is_err());
    }

    #[test]
    fn document_filters_exclude_anonymous_by_default() {
        let f: BlockDocumentFilter = serde_json::from_str("{}").unwrap();
        assert_eq!(f.is_anonymous, Some(BlockDocumentFilterIsAnonymous { eq_: Some(false) }));
        let f: BlockDocumentFilter = serde_json::from_str(r#"{"is_anonymous": null}"#).unwrap();
        assert_eq!(f.is_anonymous, None);
    }

    #[test]
    fn block_type_updates_know_whether_they_change_anything() {
        let u: BlockTypeUpdate = serde_json::from_str(r#"{"description": null}"#).unwrap();
        assert_eq!(u.description, Some(None));
        assert_eq!(u.logo_url, None);
    }
}
