//! Block schema checksums, computed exactly as the `prefect` client computes them, so a
//! client finds the schema it would register: SHA-256 over Python's `json.dumps` (sorted
//! keys, `", "`/`": "` separators, ASCII-only) of `[[fields], {}]`, after dropping every
//! `secret_fields` key and keeping only the definitions that are not blocks.

use std::collections::HashSet;
use std::fmt::Write;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::schema_tools::{is_truthy, without_key};

/// `sha256:<hex>` of `fields`.
pub fn checksum(fields: &Map<String, Value>) -> String {
    let mut for_checksum = without_key(&Value::Object(fields.clone()), "secret_fields");
    if let Value::Object(map) = &mut for_checksum {
        let has_definitions = map.get("definitions").is_some_and(is_truthy);
        if has_definitions {
            let definitions = map.get("definitions").and_then(Value::as_object).cloned().unwrap_or_default();
            let kept = non_block_definitions(&Value::Object(map.clone()), &definitions);
            if kept.is_empty() {
                map.remove("definitions");
            } else {
                map.insert("definitions".to_owned(), Value::Object(kept));
            }
        }
    }
    let payload = Value::Array(vec![Value::Array(vec![for_checksum]), Value::Object(Map::new())]);
    let mut text = String::new();
    python_dumps(&payload, &mut text);
    let digest = Sha256::digest(text.as_bytes());
    let mut out = String::from("sha256:");
    for byte in digest {
        let _ = write!(out, "{byte:02x}");
    }
    out
}

/// Every `$ref` string in `value`, depth first.
pub fn reference_strings(value: &Value) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(r)) = map.get("$ref") {
                    out.push(r.clone());
                }
                for v in map.values() {
                    walk(v, out);
                }
            }
            Value::Array(items) => items.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    walk(value, &mut out);
    out
}

/// The definitions `value` refers to (transitively) that are not blocks (have no `block_type_slug`).
pub fn non_block_definitions(value: &Value, definitions: &Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::new();
    let mut seen = HashSet::new();
    collect_non_block(value, definitions, &mut out, &mut seen);
    out
}

fn collect_non_block(value: &Value, definitions: &Map<String, Value>, out: &mut Map<String, Value>, seen: &mut HashSet<String>) {
    for reference in reference_strings(value) {
        let key = reference.replace("#/definitions/", "");
        if let Some(definition) = definitions.get(&key).filter(|d| is_truthy(d))
            && definition.get("block_type_slug").is_none_or(Value::is_null)
        {
            out.insert(key.clone(), definition.clone());
            if seen.insert(key) {
                collect_non_block(definition, definitions, out, seen);
            }
        }
    }
}

/// Serializes like Python's `json.dumps(value, sort_keys=True)`.
pub fn python_dumps(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                let _ = write!(out, "{i}");
            } else if let Some(u) = n.as_u64() {
                let _ = write!(out, "{u}");
            } else {
                out.push_str(&python_float(n.as_f64().unwrap_or(0.0)));
            }
        }
        Value::String(s) => python_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                python_dumps(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                python_string(key, out);
                out.push_str(": ");
                python_dumps(&map[key], out);
            }
            out.push('}');
        }
    }
}

fn python_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
        }
    }
    out.push('"');
}

/// Python's `repr(float)`: shortest round-trip digits; scientific below 1e-4 and from 1e16.
fn python_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".to_owned();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Infinity".to_owned() } else { "-Infinity".to_owned() };
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0.0".to_owned() } else { "0.0".to_owned() };
    }
    let sci = format!("{f:e}"); // e.g. "-1.2345e17"
    let (mantissa, exponent) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let negative = mantissa.starts_with('-');
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let sign = if negative { "-" } else { "" };
    if (-4..16).contains(&exponent) {
        let point = exponent + 1; // digits before the decimal point
        let body = if point <= 0 {
            format!("0.{}{}", "0".repeat((-point) as usize), digits)
        } else if point as usize >= digits.len() {
            format!("{}{}.0", digits, "0".repeat(point as usize - digits.len()))
        } else {
            format!("{}.{}", &digits[..point as usize], &digits[point as usize..])
        };
        format!("{sign}{body}")
    } else {
        let mantissa = if digits.len() > 1 { format!("{}.{}", &digits[..1], &digits[1..]) } else { digits };
        format!("{sign}{mantissa}e{}{:02}", if exponent < 0 { '-' } else { '+' }, exponent.abs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn dumps(v: Value) -> String {
        let mut s = String::new();
        python_dumps(&v, &mut s);
        s
    }

    #[test]
    fn dumps_like_python() {
        assert_eq!(dumps(json!({"b": [1, 2.5, null], "a": {"é": "ü\n"}})), r#"{"a": {"\u00e9": "\u00fc\n"}, "b": [1, 2.5, null]}"#);
        assert_eq!(dumps(json!([1.0, 1e16, 1.5e-5, 0.0001, 123.456, -2e20, "😀"])), r#"[1.0, 1e+16, 1.5e-05, 0.0001, 123.456, -2e+20, "\ud83d\ude00"]"#);
        assert_eq!(dumps(json!({})), "{}");
    }

    /// Checksums the `prefect` 3.9.1 client computes for these schemas.
    #[test]
    fn matches_prefect_checksums() {
        let local_fs = json!({
            "block_schema_references": {}, "block_type_slug": "local-file-system",
            "description": "Store data as a file on a local file system.",
            "properties": {"basepath": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": null,
                "description": "Default local path for this block to write to.", "position": 0, "title": "Basepath"}},
            "secret_fields": [], "title": "LocalFileSystem", "type": "object"
        });
        assert_eq!(checksum(local_fs.as_object().unwrap()), "sha256:0fc8b7f936f38f465715ef2df4a817ac9fe38b80bb01d5c6c9649a6da6ae6971");
    }

    #[test]
    fn block_definitions_do_not_count() {
        let with_block = json!({"properties": {"a": {"$ref": "#/definitions/B"}}, "definitions": {"B": {"block_type_slug": "b", "title": "B"}}});
        let without = json!({"properties": {"a": {"$ref": "#/definitions/B"}}});
        assert_eq!(checksum(with_block.as_object().unwrap()), checksum(without.as_object().unwrap()));
        let secret = json!({"properties": {}, "secret_fields": ["x"]});
        assert_eq!(checksum(secret.as_object().unwrap()), checksum(json!({"properties": {}}).as_object().unwrap()));
    }
}
