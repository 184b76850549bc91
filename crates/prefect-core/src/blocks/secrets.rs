//! Hiding and restoring the secret values of block documents.
//!
//! A schema lists its secrets as dotted paths (`token`, `credentials.key`,
//! `headers.*`). Unless secrets are asked for, each value at such a path reads
//! as `********`; a whole object at a path is hidden too (never only its
//! leaves), so a JSON-valued secret cannot leak. When a client sends a
//! document back with `********` where a secret was, the stored value is kept.

use prefect_domain::block::OBFUSCATED;
use serde_json::{Map, Value};

fn segments(path: &str) -> Vec<&str> {
    path.split('.').collect()
}

fn node_mut<'a>(data: &'a mut Map<String, Value>, path: &[&str]) -> Option<&'a mut Value> {
    let (first, rest) = path.split_first()?;
    let mut node = data.get_mut(*first)?;
    for key in rest {
        node = node.as_object_mut()?.get_mut(*key)?;
    }
    Some(node)
}

fn node<'a>(data: &'a Map<String, Value>, path: &[&str]) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    let mut node = data.get(*first)?;
    for key in rest {
        node = node.as_object()?.get(*key)?;
    }
    Some(node)
}

/// Replaces every leaf under `value` (the value itself when it is not a non-empty object).
fn hide_leaves(value: &mut Value) {
    match value {
        Value::Object(map) if !map.is_empty() => map.values_mut().for_each(hide_leaves),
        other => *other = Value::String(OBFUSCATED.to_owned()),
    }
}

/// Hides the values at `secret_fields` in `data`.
pub fn obfuscate(data: &mut Map<String, Value>, secret_fields: &[String]) {
    for field in secret_fields {
        let path = segments(field);
        match path.iter().position(|s| *s == "*") {
            None => {
                if let Some(value) = node_mut(data, &path)
                    && !value.is_null()
                {
                    *value = Value::String(OBFUSCATED.to_owned());
                }
            }
            Some(0) => data.values_mut().for_each(hide_leaves),
            Some(wildcard) => {
                if let Some(value) = node_mut(data, &path[..wildcard]) {
                    hide_leaves(value);
                }
            }
        }
    }
}

/// Where `update` holds `********` at a secret path, puts back the value from `current`.
pub fn restore(update: &mut Map<String, Value>, current: &Map<String, Value>, secret_fields: &[String]) {
    fn restore_leaves(update: &mut Value, current: Option<&Value>) {
        match update {
            Value::Object(map) if !map.is_empty() => {
                for (key, value) in map.iter_mut() {
                    restore_leaves(value, current.and_then(|c| c.as_object()).and_then(|c| c.get(key)));
                }
            }
            Value::String(s) if s == OBFUSCATED => {
                if let Some(previous) = current {
                    *update = previous.clone();
                }
            }
            _ => {}
        }
    }
    for field in secret_fields {
        let path = segments(field);
        match path.iter().position(|s| *s == "*") {
            None => {
                let previous = node(current, &path).filter(|v| !v.is_null()).cloned();
                if let (Some(previous), Some(value)) = (previous, node_mut(update, &path))
                    && value.as_str() == Some(OBFUSCATED)
                {
                    *value = previous;
                }
            }
            Some(wildcard) => {
                let prefix = &path[..wildcard];
                if prefix.is_empty() {
                    for (key, value) in update.iter_mut() {
                        restore_leaves(value, current.get(key));
                    }
                } else if let Some(value) = node_mut(update, prefix) {
                    restore_leaves(value, node(current, prefix));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn hides_paths_wildcards_and_whole_objects() {
        let mut data = map(json!({"token": "t", "none": null, "nested": {"key": "k", "other": 1}, "headers": {"a": "1", "b": {"c": "2"}}, "json": {"x": [1]}}));
        let fields: Vec<String> = ["token", "none", "nested.key", "headers.*", "json", "missing.path"].map(str::to_owned).to_vec();
        obfuscate(&mut data, &fields);
        assert_eq!(
            Value::Object(data),
            json!({"token": "********", "none": null, "nested": {"key": "********", "other": 1},
                   "headers": {"a": "********", "b": {"c": "********"}}, "json": "********"})
        );
    }

    #[test]
    fn restores_values_sent_back_hidden() {
        let current = map(json!({"token": "t", "headers": {"a": "1"}, "json": {"x": 1}}));
        let mut update = map(json!({"token": "********", "headers": {"a": "********", "new": "n"}, "json": "********"}));
        let fields: Vec<String> = ["token", "headers.*", "json"].map(str::to_owned).to_vec();
        restore(&mut update, &current, &fields);
        assert_eq!(Value::Object(update), json!({"token": "t", "headers": {"a": "1", "new": "n"}, "json": {"x": 1}}));
    }
}
