//! Hydrating and validating values against JSON schemas, as Prefect's `schema_tools` do
//! for run inputs (`/flow_runs/{id}/resume`) and the UI's `/ui/schemas/validate`.
//!
//! Hydration replaces `{"__prefect_kind": …}` placeholders: `json` (a JSON string to
//! parse), `jinja` (a template to render or just check), `workspace_variable` (a
//! variable's value) and `none` (a pass-through). Validation uses JSON Schema 2020-12
//! with Prefect's pre-processing and reports errors in Prefect's words.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use crate::templates;

/// What hydration may use and do.
#[derive(Debug, Clone, Default)]
pub struct HydrationContext {
    pub workspace_variables: HashMap<String, Value>,
    pub render_workspace_variables: bool,
    pub render_jinja: bool,
    /// Fail on the first bad placeholder instead of leaving an error placeholder behind.
    pub raise_on_error: bool,
    /// What `jinja` placeholders see when rendered (an automation's `event`, `automation`...).
    pub jinja_context: Value,
}

/// A placeholder hydration could not (or was told not to) resolve, and where it is.
#[derive(Debug, Clone, PartialEq)]
pub struct Placeholder {
    pub path: Vec<PathSegment>,
    /// `Some(message)` for an error, `None` for a valid value left unresolved
    /// (an unrendered template, an unread variable).
    pub error: Option<String>,
}

/// A step into a JSON value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PathSegment {
    Key(String),
    Index(usize),
}

/// The first hydration error (when `raise_on_error`).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct HydrationError(pub String);

enum Hydrated {
    Value(Value),
    Remove,
    Placeholder(Option<String>),
}

/// Hydrates `value`; unresolved placeholders become `null` and are listed with their paths.
pub fn hydrate(value: &Value, ctx: &HydrationContext) -> Result<(Value, Vec<Placeholder>), HydrationError> {
    let mut placeholders = Vec::new();
    let mut path = Vec::new();
    let out = match hydrate_at(value, ctx, &mut path, &mut placeholders)? {
        Hydrated::Value(v) => v,
        Hydrated::Remove => Value::Object(Map::new()),
        Hydrated::Placeholder(error) => {
            placeholders.push(Placeholder { path: Vec::new(), error });
            Value::Null
        }
    };
    Ok((out, placeholders))
}

fn fail(ctx: &HydrationContext, message: String) -> Result<Hydrated, HydrationError> {
    if ctx.raise_on_error { Err(HydrationError(message)) } else { Ok(Hydrated::Placeholder(Some(message))) }
}

fn hydrate_at(value: &Value, ctx: &HydrationContext, path: &mut Vec<PathSegment>, found: &mut Vec<Placeholder>) -> Result<Hydrated, HydrationError> {
    match value {
        Value::Object(map) if map.contains_key("__prefect_kind") => handle(map, ctx, path, found),
        Value::Object(map) => {
            let mut out = Map::new();
            for (key, item) in map {
                path.push(PathSegment::Key(key.clone()));
                match hydrate_at(item, ctx, path, found)? {
                    Hydrated::Value(v) => {
                        out.insert(key.clone(), v);
                    }
                    Hydrated::Remove => {}
                    Hydrated::Placeholder(error) => {
                        found.push(Placeholder { path: path.clone(), error });
                        out.insert(key.clone(), Value::Null);
                    }
                }
                path.pop();
            }
            Ok(Hydrated::Value(Value::Object(out)))
        }
        Value::Array(items) => {
            let mut out = Vec::new();
            for item in items {
                path.push(PathSegment::Index(out.len()));
                match hydrate_at(item, ctx, path, found)? {
                    Hydrated::Value(v) => out.push(v),
                    Hydrated::Remove => {}
                    Hydrated::Placeholder(error) => {
                        found.push(Placeholder { path: path.clone(), error });
                        out.push(Value::Null);
                    }
                }
                path.pop();
            }
            Ok(Hydrated::Value(Value::Array(out)))
        }
        other => Ok(Hydrated::Value(other.clone())),
    }
}

/// Hydrates a nested argument of a placeholder (`value`, `template`, `variable_name`).
fn argument(value: &Value, ctx: &HydrationContext, path: &mut Vec<PathSegment>, found: &mut Vec<Placeholder>) -> Result<Hydrated, HydrationError> {
    if value.is_object() { hydrate_at(value, ctx, path, found) } else { Ok(Hydrated::Value(value.clone())) }
}

fn handle(map: &Map<String, Value>, ctx: &HydrationContext, path: &mut Vec<PathSegment>, found: &mut Vec<Placeholder>) -> Result<Hydrated, HydrationError> {
    let kind = map.get("__prefect_kind").and_then(Value::as_str);
    match kind {
        Some("none") => match map.get("value") {
            Some(v) => hydrate_at(v, ctx, path, found),
            None => fail(ctx, "Missing 'value' key in __prefect object".to_owned()),
        },
        Some("json") => match map.get("value") {
            None => Ok(Hydrated::Remove),
            Some(v) => match argument(v, ctx, path, found)? {
                Hydrated::Value(Value::String(text)) => match serde_json::from_str::<Value>(&text) {
                    Ok(parsed) => Ok(Hydrated::Value(parsed)),
                    Err(e) => fail(ctx, format!("Invalid JSON: {e}")),
                },
                other => Ok(other),
            },
        },
        Some("jinja") => match map.get("template") {
            None => fail(ctx, "Missing 'template' key in __prefect object".to_owned()),
            Some(t) => match argument(t, ctx, path, found)? {
                Hydrated::Value(Value::String(template)) => {
                    if let Err(e) = templates::validate_user_template(&template) {
                        return fail(ctx, format!("Invalid jinja: {}", e.message));
                    }
                    if ctx.render_jinja {
                        match templates::render_user_template(&template, &ctx.jinja_context) {
                            Ok(rendered) => Ok(Hydrated::Value(Value::String(rendered))),
                            Err(e) => fail(ctx, format!("Invalid jinja: {}", e.message)),
                        }
                    } else {
                        Ok(Hydrated::Placeholder(None))
                    }
                }
                Hydrated::Value(other) => fail(ctx, format!("Invalid jinja: expected a template string, got {other}")),
                other => Ok(other),
            },
        },
        Some("workspace_variable") => match map.get("variable_name") {
            None => Ok(Hydrated::Remove),
            Some(n) => match argument(n, ctx, path, found)? {
                Hydrated::Value(Value::String(name)) => {
                    if !ctx.render_workspace_variables {
                        return Ok(Hydrated::Placeholder(None));
                    }
                    match ctx.workspace_variables.get(&name) {
                        Some(v) => Ok(Hydrated::Value(v.clone())),
                        None => fail(ctx, format!("Variable '{name}' not found in workspace.")),
                    }
                }
                Hydrated::Value(other) => fail(ctx, format!("Variable '{other}' not found in workspace.")),
                other => Ok(other),
            },
        },
        _ => Ok(Hydrated::Value(map.get("value").cloned().unwrap_or(Value::Null))),
    }
}

/// Prefect's schema fixes before validating: optional fields without defaults accept null,
/// tuple `items` become `prefixItems`, and block definitions also accept a `$ref` to a document.
pub fn preprocess_schema(schema: &Value) -> Value {
    preprocess_schema_with(schema, false)
}

/// [`preprocess_schema`]; with `allow_none_with_default`, optional fields that have a default
/// accept null too (Prefect's job variable validation: block defaults are often `None`).
pub fn preprocess_schema_with(schema: &Value, allow_none_with_default: bool) -> Value {
    let mut schema = schema.clone();
    let Value::Object(root) = &mut schema else {
        return schema;
    };
    if let Some(Value::Object(properties)) = root.get("properties").cloned() {
        let required = required_of(root);
        root.insert("properties".to_owned(), Value::Object(process_properties(properties, &required, allow_none_with_default)));
    }
    if let Some(Value::Object(definitions)) = root.get("definitions").cloned() {
        let mut out = definitions.clone();
        for (name, definition) in &definitions {
            let mut definition = definition.clone();
            if let Value::Object(d) = &mut definition
                && let Some(Value::Object(properties)) = d.get("properties").cloned()
            {
                let required = required_of(d);
                d.insert("properties".to_owned(), Value::Object(process_properties(properties, &required, allow_none_with_default)));
            }
            out.insert(name.clone(), definition.clone());
            if definition.get("block_type_slug").is_some() {
                let title = definition.get("title").and_then(Value::as_str).unwrap_or(name).to_owned();
                out.insert(
                    title,
                    json!({"oneOf": [definition, {
                        "type": "object",
                        "properties": {"$ref": {"oneOf": [
                            {"type": "string", "format": "uuid"},
                            {"type": "object", "additionalProperties": {"type": "string"}, "minProperties": 1},
                        ]}},
                        "required": ["$ref"],
                    }]}),
                );
            }
        }
        root.insert("definitions".to_owned(), Value::Object(out));
    }
    schema
}

fn required_of(schema: &Map<String, Value>) -> Vec<String> {
    schema.get("required").and_then(Value::as_array).map(|r| r.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect()).unwrap_or_default()
}

fn process_properties(properties: Map<String, Value>, required: &[String], allow_none_with_default: bool) -> Map<String, Value> {
    properties
        .into_iter()
        .map(|(key, mut schema)| {
            if let Value::Object(s) = &mut schema {
                if !required.contains(&key)
                    && s.get("type").is_some_and(|t| t != "null")
                    && (allow_none_with_default || !s.contains_key("default"))
                    && let Some(t) = s.remove("type")
                {
                    s.insert("anyOf".to_owned(), json!([{"type": t}, {"type": "null"}]));
                }
                if let Some(Value::Array(items)) = s.get("items").cloned()
                    && !s.contains_key("prefixItems")
                {
                    s.remove("items");
                    s.insert("prefixItems".to_owned(), Value::Array(items));
                }
                if let Some(Value::Object(nested)) = s.get("properties").cloned() {
                    let nested_required = required_of(s);
                    s.insert("properties".to_owned(), Value::Object(process_properties(nested, &nested_required, allow_none_with_default)));
                }
            }
            (key, schema)
        })
        .collect()
}

/// A copy of `value` without `key` in any object, recursing through objects only (not lists),
/// as Prefect's `remove_nested_keys` does (e.g. `required` for `ignore_required`).
pub fn without_key(value: &Value, key: &str) -> Value {
    match value {
        Value::Object(map) => Value::Object(map.iter().filter(|(k, _)| k.as_str() != key).map(|(k, v)| (k.clone(), without_key(v, key))).collect()),
        other => other.clone(),
    }
}

/// Python truthiness of a JSON value (`{}`, `[]`, `""`, `0`, `false` and null are false).
pub fn is_truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// The violation Python's `jsonschema.validate` would raise: the shallowest one (its `best_match`
/// prefers errors higher up in the instance), the first of those on a tie.
pub fn best_match(violations: &[Violation]) -> Option<&Violation> {
    violations.iter().min_by_key(|v| v.path.len())
}

/// Why a schema cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct SchemaError(pub String);

/// One validation failure: where, what, and whether a schema keyword or a placeholder said so.
#[derive(Debug, Clone, PartialEq)]
pub struct Violation {
    pub path: Vec<PathSegment>,
    pub message: String,
    /// For `required`: the missing property (reported one level down, as Prefect does).
    pub missing_property: Option<String>,
}

/// Formats Prefect's Python validator leaves unchecked: `jsonschema` checks them only when
/// optional packages (`rfc3987`, `fqdn`, `uri-template`, `isoduration`) are installed, and
/// Prefect does not install them. Checking them here would refuse values Prefect accepts.
const FORMATS_PREFECT_DOES_NOT_CHECK: [&str; 7] = ["uri", "uri-reference", "iri", "iri-reference", "hostname", "uri-template", "duration"];

fn validator(schema: &Value) -> Result<jsonschema::Validator, SchemaError> {
    let mut options = jsonschema::options().with_draft(jsonschema::Draft::Draft202012).should_validate_formats(true);
    for format in FORMATS_PREFECT_DOES_NOT_CHECK {
        options = options.with_format(format, |_: &str| true);
    }
    options.build(schema).map_err(|e| SchemaError(format!("Invalid schema: {}", python_message(e.kind(), e.instance()).unwrap_or_else(|| e.to_string()))))
}

/// Checks that `schema` is a usable JSON schema.
pub fn check_schema(schema: &Value) -> Result<(), SchemaError> {
    jsonschema::meta::validate(schema)
        .map_err(|e| SchemaError(format!("Invalid schema: {}", python_message(e.kind(), e.instance()).unwrap_or_else(|| e.to_string()))))?;
    validator(schema).map(|_| ())
}

/// Every way `instance` breaks `schema`; values at unresolved placeholder paths are judged
/// by the placeholder (an error placeholder reports its message, a valid one nothing).
pub fn validate(instance: &Value, schema: &Value, placeholders: &[Placeholder]) -> Result<Vec<Violation>, SchemaError> {
    let validator = validator(schema)?;
    let mut out: Vec<Violation> = Vec::new();
    for error in validator.iter_errors(instance) {
        let path: Vec<PathSegment> = error
            .instance_path()
            .iter()
            .map(|s| match s {
                jsonschema::paths::LocationSegment::Property(p) => PathSegment::Key(p.to_string()),
                jsonschema::paths::LocationSegment::Index(i) => PathSegment::Index(i),
            })
            .collect();
        if placeholders.iter().any(|p| p.path == path) {
            continue;
        }
        let missing_property = match error.kind() {
            jsonschema::error::ValidationErrorKind::Required { property } => property.as_str().map(str::to_owned),
            _ => None,
        };
        let message = python_message(error.kind(), error.instance()).unwrap_or_else(|| error.to_string());
        out.push(Violation { path, message, missing_property });
    }
    // Python's validator reports `properties` before `required` (schema keyword order).
    out.sort_by_key(|v| v.missing_property.is_some());
    for placeholder in placeholders {
        if let Some(message) = &placeholder.error {
            out.push(Violation { path: placeholder.path.clone(), message: message.clone(), missing_property: None });
        }
    }
    Ok(out)
}

/// The first violation as Prefect words a failed resume: `Validation failed for field 'a.b'. Failure reason: …`.
pub fn describe_first(violations: &[Violation]) -> Option<String> {
    violations.first().map(describe)
}

/// One violation as Prefect words it: `Validation failed for field 'a.b'. Failure reason: …`.
pub fn describe(v: &Violation) -> String {
    let field: Vec<String> = v
        .path
        .iter()
        .map(|s| match s {
            PathSegment::Key(k) => k.clone(),
            PathSegment::Index(i) => format!("[{i}]"),
        })
        .collect();
    if field.is_empty() {
        format!("Validation failed. Failure reason: {}", v.message)
    } else {
        format!("Validation failed for field {}. Failure reason: {}", py_repr(&Value::String(field.join(".").replace(".[", "["))), v.message)
    }
}

/// Prefect's `{"errors": [...], "valid": bool}` for the UI: messages nested by property and index.
pub fn error_object(violations: &[Violation]) -> Value {
    let mut errors: Vec<Value> = Vec::new();
    for v in violations {
        let mut path = v.path.clone();
        if let Some(property) = &v.missing_property {
            path.push(PathSegment::Key(property.clone()));
        }
        insert_error(&mut errors, &path, &v.message);
    }
    json!({"errors": errors, "valid": errors.is_empty()})
}

fn insert_error(current: &mut Vec<Value>, path: &[PathSegment], message: &str) {
    let Some((first, rest)) = path.split_first() else {
        current.push(Value::String(message.to_owned()));
        return;
    };
    let (key, id) = match first {
        PathSegment::Key(k) => ("property", Value::String(k.clone())),
        PathSegment::Index(i) => ("index", Value::from(*i)),
    };
    if rest.is_empty() {
        current.push(json!({key: id, "errors": [message]}));
        return;
    }
    let position = current.iter().position(|e| e.get(key) == Some(&id));
    let index = match position {
        Some(i) => i,
        None => {
            current.push(json!({key: id, "errors": []}));
            current.len() - 1
        }
    };
    if let Some(Value::Array(nested)) = current[index].get_mut("errors") {
        insert_error(nested, rest, message);
    }
}

/// Python's `repr` of a JSON value (`'text'`, `True`, `None`, `{'a': 1}`).
pub fn py_repr(value: &Value) -> String {
    match value {
        Value::Null => "None".to_owned(),
        Value::Bool(true) => "True".to_owned(),
        Value::Bool(false) => "False".to_owned(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => crate::variables::py_repr(s),
        Value::Array(items) => format!("[{}]", items.iter().map(py_repr).collect::<Vec<_>>().join(", ")),
        Value::Object(map) => {
            format!("{{{}}}", map.iter().map(|(k, v)| format!("{}: {}", crate::variables::py_repr(k), py_repr(v))).collect::<Vec<_>>().join(", "))
        }
    }
}

/// The message Python's `jsonschema` gives for the common keywords.
fn python_message(kind: &jsonschema::error::ValidationErrorKind, instance: &Value) -> Option<String> {
    use jsonschema::error::{TypeKind, ValidationErrorKind as K};
    let i = py_repr(instance);
    Some(match kind {
        K::Type { kind } => {
            let types = match kind {
                TypeKind::Single(t) => format!("'{t}'"),
                TypeKind::Multiple(set) => set.iter().map(|t| format!("'{t}'")).collect::<Vec<_>>().join(", "),
            };
            format!("{i} is not of type {types}")
        }
        K::Required { property } => format!("{} is a required property", py_repr(property)),
        K::Enum { options } => format!("{i} is not one of {}", py_repr(options)),
        K::Constant { expected_value } => format!("{} was expected", py_repr(expected_value)),
        K::Minimum { limit } => format!("{i} is less than the minimum of {}", py_repr(limit)),
        K::Maximum { limit } => format!("{i} is greater than the maximum of {}", py_repr(limit)),
        K::ExclusiveMinimum { limit } => format!("{i} is less than or equal to the minimum of {}", py_repr(limit)),
        K::ExclusiveMaximum { limit } => format!("{i} is greater than or equal to the maximum of {}", py_repr(limit)),
        K::MinLength { limit } if *limit == 1 => format!("{i} should be non-empty"),
        K::MinLength { .. } | K::MinItems { .. } => format!("{i} is too short"),
        K::MaxLength { .. } | K::MaxItems { .. } => format!("{i} is too long"),
        K::Pattern { pattern } => {
            format!("{i} does not match {}", crate::variables::py_repr(pattern))
        }
        K::Format { format } => format!("{i} is not a {}", crate::variables::py_repr(format)),
        K::AnyOf { .. } | K::OneOfNotValid { .. } => {
            format!("{i} is not valid under any of the given schemas")
        }
        K::OneOfMultipleValid { .. } => format!("{i} is valid under each of the given schemas"),
        K::UniqueItems => format!("{i} has non-unique elements"),
        K::AdditionalProperties { unexpected } => {
            let names = unexpected.iter().map(|u| crate::variables::py_repr(u)).collect::<Vec<_>>().join(", ");
            let verb = if unexpected.len() == 1 { "was" } else { "were" };
            format!("Additional properties are not allowed ({names} {verb} unexpected)")
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> HydrationContext {
        HydrationContext { render_workspace_variables: true, ..Default::default() }
    }

    #[test]
    fn hydrates_placeholders() {
        let mut c = ctx();
        c.workspace_variables.insert("region".to_owned(), json!("eu"));
        let value = json!({
            "a": {"__prefect_kind": "json", "value": "[1, 2]"},
            "b": {"__prefect_kind": "workspace_variable", "variable_name": "region"},
            "c": {"__prefect_kind": "none", "value": {"d": 1}},
            "gone": {"__prefect_kind": "json"},
            "list": [{"__prefect_kind": "workspace_variable"}, 3],
        });
        let (out, placeholders) = hydrate(&value, &c).unwrap();
        assert_eq!(out, json!({"a": [1, 2], "b": "eu", "c": {"d": 1}, "list": [3]}));
        assert!(placeholders.is_empty());
    }

    #[test]
    fn hydration_errors_become_placeholders_or_fail() {
        let value = json!({"a": {"__prefect_kind": "workspace_variable", "variable_name": "nope"}, "t": {"__prefect_kind": "jinja", "template": "{{ x }}"}});
        let (out, placeholders) = hydrate(&value, &ctx()).unwrap();
        assert_eq!(out, json!({"a": null, "t": null}));
        assert_eq!(placeholders[0].error.as_deref(), Some("Variable 'nope' not found in workspace."));
        assert_eq!(placeholders[1].error, None, "an unrendered valid template is not an error");
        let strict = HydrationContext { raise_on_error: true, ..ctx() };
        assert!(hydrate(&value, &strict).is_err());
    }

    #[test]
    fn validates_with_prefect_messages() {
        let schema = preprocess_schema(&json!({
            "type": "object", "properties": {"number": {"type": "integer"}, "note": {"type": "string"}}, "required": ["number"]
        }));
        let errors = validate(&json!({"number": "abc"}), &schema, &[]).unwrap();
        assert_eq!(describe_first(&errors).unwrap(), "Validation failed for field 'number'. Failure reason: 'abc' is not of type 'integer'");
        let errors = validate(&json!({}), &schema, &[]).unwrap();
        assert_eq!(error_object(&errors), json!({"errors": [{"property": "number", "errors": ["'number' is a required property"]}], "valid": false}));
        assert!(validate(&json!({"number": 1, "note": null}), &schema, &[]).unwrap().is_empty(), "optional fields accept null");
    }

    #[test]
    fn formats_prefect_leaves_unchecked_are_not_checked() {
        let schema = json!({"type": "object", "properties": {"url": {"type": "string", "format": "uri"}, "id": {"type": "string", "format": "uuid"}}});
        assert!(validate(&json!({"url": "not a uri at all"}), &schema, &[]).unwrap().is_empty());
        assert_eq!(validate(&json!({"id": "nope"}), &schema, &[]).unwrap().len(), 1, "uuid is checked, as in Prefect");
    }

    #[test]
    fn truthiness_follows_python() {
        for falsy in [json!(null), json!({}), json!([]), json!(""), json!(0), json!(false)] {
            assert!(!is_truthy(&falsy), "{falsy}");
        }
        assert!(is_truthy(&json!({"type": "object"})));
    }

    #[test]
    fn bad_schemas_are_reported() {
        assert!(check_schema(&json!({"type": "nonsense"})).is_err());
        assert!(check_schema(&json!({"type": "object"})).is_ok());
    }
}
