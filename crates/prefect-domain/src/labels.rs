//! Key/value labels carried by flows, runs and deployments.

/// Labels: a JSON object whose values are strings, numbers or booleans.
pub type KeyValueLabels = serde_json::Map<String, serde_json::Value>;

/// Checks that every label value is a string, number or boolean.
pub fn validate(labels: &KeyValueLabels, field: &str) -> crate::Result<()> {
    for (key, value) in labels {
        if !(value.is_string() || value.is_number() || value.is_boolean()) {
            return Err(crate::Error::invalid(format!("{field}.{key}"), "label values must be strings, numbers or booleans"));
        }
    }
    Ok(())
}
