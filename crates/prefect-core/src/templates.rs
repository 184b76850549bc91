//! User-supplied Jinja templates (automation actions, run inputs): syntax checks,
//! Prefect's limits on loops, and rendering.

use serde_json::Value;

/// Most `for` loops a template may contain.
const MAX_LOOP_COUNT: usize = 10;
/// Deepest nesting of `for` loops.
const MAX_NESTED_LOOP_DEPTH: usize = 2;

/// Why a template was refused: the line (1-based, 0 when unknown) and a message.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct TemplateError {
    pub line: usize,
    pub message: String,
}

fn environment() -> minijinja::Environment<'static> {
    let mut env = minijinja::Environment::new();
    // As Prefect's ChainableUndefined: `{{ flow_run.state.name }}` renders empty when there is no run.
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Chainable);
    env
}

/// Checks syntax and Prefect's loop limits.
pub fn validate_user_template(template: &str) -> Result<(), TemplateError> {
    let env = environment();
    if let Err(e) = env.template_from_str(template) {
        return Err(TemplateError { line: e.line().unwrap_or(0), message: e.detail().map(str::to_owned).unwrap_or_else(|| e.to_string()) });
    }
    check_loops(template)
}

/// Counts `{% for %}` blocks and their nesting.
fn check_loops(template: &str) -> Result<(), TemplateError> {
    let mut count = 0;
    let mut depth: usize = 0;
    let mut deepest = 0;
    let mut rest = template;
    while let Some(start) = rest.find("{%") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("%}") else { break };
        let tag = after[..end].trim_matches(|c: char| c == '-' || c == '+' || c.is_whitespace());
        let keyword = tag.split_whitespace().next().unwrap_or_default();
        if keyword == "for" {
            count += 1;
            depth += 1;
            deepest = deepest.max(depth);
        } else if keyword == "endfor" {
            depth = depth.saturating_sub(1);
        }
        rest = &after[end + 2..];
    }
    if count > MAX_LOOP_COUNT {
        return Err(TemplateError { line: 0, message: format!("Contains {count} for loops. Templates can contain no more than {MAX_LOOP_COUNT} for loops.") });
    }
    if deepest > MAX_NESTED_LOOP_DEPTH {
        return Err(TemplateError {
            line: 0,
            message: format!(
                "Contains nested for loops at a depth of {deepest}. Templates can nest for loops no more than {MAX_NESTED_LOOP_DEPTH} loops deep."
            ),
        });
    }
    Ok(())
}

/// Renders `template` with `context` (a JSON object); text without template markup is returned as is.
pub fn render_user_template(template: &str, context: &Value) -> Result<String, TemplateError> {
    if !template.contains("{{") && !template.contains("{%") {
        return Ok(template.to_owned());
    }
    validate_user_template(template)?;
    let env = environment();
    let compiled = env.template_from_str(template).map_err(|e| TemplateError { line: e.line().unwrap_or(0), message: e.to_string() })?;
    compiled.render(minijinja::Value::from(minijinja::value::Serde(context))).map_err(|e| TemplateError { line: e.line().unwrap_or(0), message: e.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syntax_and_loop_limits() {
        assert!(validate_user_template("Hello {{ name }}").is_ok());
        let err = validate_user_template("line one\n{{ broken ").unwrap_err();
        assert_eq!(err.line, 2);
        let nested = "{% for a in x %}{% for b in a %}{% for c in b %}{% endfor %}{% endfor %}{% endfor %}";
        assert!(validate_user_template(nested).unwrap_err().message.contains("depth of 3"));
        let many = "{% for a in x %}{% endfor %}".repeat(11);
        assert!(validate_user_template(&many).unwrap_err().message.contains("11 for loops"));
    }

    #[test]
    fn renders() {
        assert_eq!(render_user_template("Hi {{ who }}", &serde_json::json!({"who": "you"})).unwrap(), "Hi you");
        assert_eq!(render_user_template("plain", &serde_json::json!({})).unwrap(), "plain");
    }
}
