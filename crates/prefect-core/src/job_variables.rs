//! Job variables checked against a work pool's base job template, as Prefect's server does.
//!
//! Variables are layered: the pool's defaults (block references resolved to the block's data),
//! then the deployment's, then the flow run's, each overriding the one before. Only a flow run
//! has the full set, so only a flow run checks `required`; deployments and pool defaults ignore it.
//! Defaults that break the schema are dropped when checking a deployment or a flow run (old
//! pools hold such defaults and still work), but not when the pool itself is created.

use prefect_storage::ConnectionTrait;
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::schema_tools::{self, Violation};
use crate::{Error, Result};

/// What a check enforces.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rules {
    /// Skip `required` (every layer but the flow run's).
    pub ignore_required: bool,
    /// Drop defaults that break the schema instead of reporting them.
    pub ignore_invalid_defaults: bool,
}

impl Rules {
    /// For a pool's own defaults, on creation.
    pub const POOL_DEFAULTS: Rules = Rules { ignore_required: true, ignore_invalid_defaults: false };
    /// For a deployment's variables over the pool's defaults.
    pub const DEPLOYMENT: Rules = Rules { ignore_required: true, ignore_invalid_defaults: true };
    /// For a flow run's variables over the deployment's and the pool's: the full set.
    pub const FLOW_RUN: Rules = Rules { ignore_required: false, ignore_invalid_defaults: true };
}

/// Checks `layers` (lowest first) over the defaults of `base_job_template`; returns Prefect's
/// `Validation failed for field '…'. Failure reason: …` for the first violation, if any.
///
/// A template without a `variables` schema accepts anything. An unusable schema is a 422,
/// a default that references a missing block document a 404.
pub(crate) async fn violation(
    c: &impl ConnectionTrait,
    base_job_template: &Map<String, Value>,
    layers: &[Option<&Map<String, Value>>],
    rules: Rules,
) -> Result<Option<String>> {
    let Some(variables) = base_job_template.get("variables").filter(|v| schema_tools::is_truthy(v)) else {
        return Ok(None);
    };
    schema_tools::check_schema(variables)?;

    let (mut merged, had_invalid_defaults) = defaults(c, variables, rules.ignore_invalid_defaults).await?;
    for layer in layers.iter().flatten() {
        merged.extend(layer.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    let ignore_required = rules.ignore_required || (rules.ignore_invalid_defaults && had_invalid_defaults);
    let mut schema = schema_tools::preprocess_schema_with(variables, true);
    if ignore_required {
        schema = schema_tools::without_key(&schema, "required");
    }
    let violations = schema_tools::validate(&Value::Object(merged), &schema, &[])?;
    Ok(schema_tools::best_match(&violations).map(schema_tools::describe))
}

/// The first violation of `job_variables` alone against the pool's `variables` schema, as
/// Prefect's `DeploymentUpdate.check_valid_configuration` finds it (no defaults, `required`
/// ignored): the raw jsonschema message.
pub(crate) fn update_violation(base_job_template: &Map<String, Value>, job_variables: &Map<String, Value>) -> Result<Option<Violation>> {
    let Some(variables) = base_job_template.get("variables").filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let schema = schema_tools::without_key(&schema_tools::preprocess_schema(variables), "required");
    let violations = schema_tools::validate(&Value::Object(job_variables.clone()), &schema, &[])?;
    Ok(violations.into_iter().next())
}

/// The defaults of the `variables` schema, block references resolved; with `drop_invalid`,
/// without those that break the schema (and whether there were any).
async fn defaults(c: &impl ConnectionTrait, variables: &Value, drop_invalid: bool) -> Result<(Map<String, Value>, bool)> {
    let mut out = Map::new();
    let mut had_invalid = false;
    let Some(Value::Object(properties)) = variables.get("properties") else {
        return Ok((out, had_invalid));
    };
    let lenient = drop_invalid.then(|| schema_tools::without_key(variables, "required"));
    for (name, attrs) in properties {
        let Some(default) = attrs.get("default") else {
            continue;
        };
        let value = match default.as_object().and_then(|d| d.get("$ref")) {
            Some(reference) => match referenced_block_data(c, reference).await? {
                Some(data) => Value::Object(data),
                None => continue,
            },
            None => default.clone(),
        };
        if let Some(schema) = &lenient {
            let single = Value::Object(Map::from_iter([(name.clone(), value.clone())]));
            let broken = schema_tools::validate(&single, schema, &[])?;
            if !broken.is_empty() {
                had_invalid = true;
                continue;
            }
        }
        out.insert(name.clone(), value);
    }
    Ok((out, had_invalid))
}

/// The data of the block document a default's `{"$ref": {"block_document_id": …}}` names;
/// `None` when the reference names none, 404 when it names one that does not exist.
async fn referenced_block_data(c: &impl ConnectionTrait, reference: &Value) -> Result<Option<Map<String, Value>>> {
    let Some(id) = reference.get("block_document_id").filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let not_found = || Error::not_found("Block not found.");
    let id = id.as_str().and_then(|s| Uuid::parse_str(s).ok()).ok_or_else(not_found)?;
    crate::blocks::document_data(c, id).await?.map(Some).ok_or_else(not_found)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn template(variables: Value) -> Map<String, Value> {
        json!({"job_configuration": {}, "variables": variables}).as_object().cloned().unwrap()
    }

    #[test]
    fn an_update_reports_the_raw_message_and_ignores_required() {
        let t = template(json!({"type": "object", "required": ["image"], "properties": {
            "image": {"type": "string"}, "cpu": {"type": "integer", "default": 1}
        }}));
        let ok = json!({"cpu": 2}).as_object().cloned().unwrap();
        assert!(update_violation(&t, &ok).unwrap().is_none());
        let bad = json!({"cpu": "lots"}).as_object().cloned().unwrap();
        assert_eq!(update_violation(&t, &bad).unwrap().unwrap().message, "'lots' is not of type 'integer'");
    }
}
