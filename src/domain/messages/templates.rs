//! Templates: checked when saved, rendered when a message is queued. Rendering uses
//! minijinja (Jinja2 syntax: `{{ customer.name }}`, `{% if … %}`); HTML bodies are
//! HTML-escaped, subjects and text bodies are not. A template may only use the variables
//! it declares, and rendering refuses an undefined variable rather than leave a gap in a
//! message. A hostile template cannot hang the server: rendering has a fuel budget and
//! the output a size bound.

use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use serde_json::Value;

use crate::domain::{UserError, UserErrorCode};

/// At most this much source per part of a template.
pub const MAX_SOURCE_CHARS: usize = 100_000;
/// Instructions one rendering may execute.
const FUEL: u64 = 200_000;
/// At most this much rendered output per part.
const MAX_OUTPUT_BYTES: usize = 512 * 1024;
/// At most this many declared variables, each a name of at most 64 characters.
const MAX_VARIABLES: usize = 100;

/// The parts of a template, each named by the input field that gives it.
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    pub subject: Option<&'a str>,
    pub text: Option<&'a str>,
    pub html: Option<&'a str>,
    pub variables: &'a [String],
}

/// What a template renders to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Rendered {
    pub subject: Option<String>,
    pub text: Option<String>,
    pub html: Option<String>,
}

/// The input fields of the parts, for error paths.
#[derive(Debug, Clone, Copy)]
pub struct Fields {
    pub subject: &'static str,
    pub text: &'static str,
    pub html: &'static str,
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::SemiStrict);
    env.set_fuel(Some(FUEL));
    env.set_auto_escape_callback(|name| {
        if name.ends_with(".html") {
            AutoEscape::Html
        } else {
            AutoEscape::None
        }
    });
    env
}

fn invalid(field: &str, message: String) -> UserError {
    UserError::new(UserErrorCode::Invalid, &["input", field], message)
}

/// The declared variables of a template (`variables`): names, each a letter or `_`
/// followed by letters, digits or `_`.
pub fn check_variables(variables: &[String]) -> Result<(), UserError> {
    if variables.len() > MAX_VARIABLES {
        return Err(invalid(
            "variables",
            format!("at most {MAX_VARIABLES} variables"),
        ));
    }
    for name in variables {
        let mut chars = name.chars();
        let starts = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
        if !starts || name.len() > 64 || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(invalid(
                "variables",
                format!("{name:?} is not a variable name"),
            ));
        }
    }
    Ok(())
}

/// Checks a template when it is saved: each part parses, and uses only declared
/// variables. Errors name the part's input field and the line.
pub fn check(source: &Source<'_>, fields: Fields) -> Result<(), UserError> {
    check_variables(source.variables)?;
    let env = environment();
    for (field, name, part) in parts(source, fields) {
        if part.chars().count() > MAX_SOURCE_CHARS || part.contains('\0') {
            return Err(invalid(
                field,
                format!("{field} must be at most {MAX_SOURCE_CHARS} characters"),
            ));
        }
        let template = env.template_from_named_str(name, part).map_err(|e| {
            invalid(
                field,
                format!(
                    "line {}: {}",
                    e.line().unwrap_or(1),
                    e.detail().unwrap_or("syntax error")
                ),
            )
        })?;
        let mut undeclared: Vec<String> = template
            .undeclared_variables(false)
            .into_iter()
            .filter(|v| !source.variables.contains(v))
            // The engine's own functions (`range`, `dict`, …) are not variables.
            .filter(|v| env.globals().all(|(global, _)| global != v))
            .collect();
        undeclared.sort();
        if let Some(variable) = undeclared.first() {
            return Err(invalid(
                field,
                format!(
                    "line {}: variable `{variable}` is not declared in variables",
                    line_of(part, variable)
                ),
            ));
        }
    }
    Ok(())
}

/// Renders a template with `variables` (a JSON object). An error says which part and why
/// (an undefined variable, a filter applied to the wrong type, too much work).
pub fn render(
    source: &Source<'_>,
    fields: Fields,
    variables: &Value,
) -> Result<Rendered, UserError> {
    let env = environment();
    let context = minijinja::Value::from_serialize(variables);
    let mut rendered = Rendered {
        subject: None,
        text: None,
        html: None,
    };
    for (field, name, part) in parts(source, fields) {
        let output = env
            .template_from_named_str(name, part)
            .and_then(|t| t.render(&context))
            .map_err(|e| {
                let line = e.line().map(|l| format!("line {l}: ")).unwrap_or_default();
                let detail = e
                    .detail()
                    .map(str::to_owned)
                    .unwrap_or_else(|| e.kind().to_string());
                invalid("variables", format!("{field}: {line}{detail}"))
            })?;
        if output.len() > MAX_OUTPUT_BYTES {
            return Err(invalid(
                "variables",
                format!("{field} renders to more than {MAX_OUTPUT_BYTES} bytes"),
            ));
        }
        match name {
            "subject.txt" => rendered.subject = Some(output),
            "body.txt" => rendered.text = Some(output),
            _ => rendered.html = Some(output),
        }
    }
    Ok(rendered)
}

fn parts<'a>(source: &Source<'a>, fields: Fields) -> Vec<(&'static str, &'static str, &'a str)> {
    [
        (fields.subject, "subject.txt", source.subject),
        (fields.text, "body.txt", source.text),
        (fields.html, "body.html", source.html),
    ]
    .into_iter()
    .filter_map(|(field, name, part)| part.map(|p| (field, name, p)))
    .collect()
}

/// The first line (from 1) where `name` appears as a whole word.
fn line_of(source: &str, name: &str) -> usize {
    let is_word = |c: char| c.is_alphanumeric() || c == '_';
    for (number, line) in source.lines().enumerate() {
        let mut from = 0;
        while let Some(at) = line[from..].find(name) {
            let start = from + at;
            let end = start + name.len();
            let before = line[..start].chars().next_back();
            let after = line[end..].chars().next();
            if !before.is_some_and(is_word) && !after.is_some_and(is_word) {
                return number + 1;
            }
            from = end;
        }
    }
    1
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const FIELDS: Fields = Fields {
        subject: "subject",
        text: "textContent",
        html: "htmlContent",
    };

    fn source<'a>(text: &'a str, html: Option<&'a str>, variables: &'a [String]) -> Source<'a> {
        Source {
            subject: Some("Hello {{ name }}"),
            text: Some(text),
            html,
            variables,
        }
    }

    #[test]
    fn html_bodies_are_escaped_and_text_is_not() {
        let vars = vec!["name".to_owned()];
        let s = source("Hi {{ name }}", Some("<p>Hi {{ name }}</p>"), &vars);
        check(&s, FIELDS).unwrap();
        let r = render(&s, FIELDS, &json!({ "name": "<b>Ann & Bob</b>" })).unwrap();
        assert_eq!(r.subject.as_deref(), Some("Hello <b>Ann & Bob</b>"));
        assert_eq!(r.text.as_deref(), Some("Hi <b>Ann & Bob</b>"));
        assert_eq!(
            r.html.as_deref(),
            Some("<p>Hi &lt;b&gt;Ann &amp; Bob&lt;&#x2f;b&gt;</p>")
        );
    }

    #[test]
    fn syntax_errors_and_undeclared_variables_name_the_field_and_line() {
        let vars = vec!["name".to_owned()];
        let bad = source("line one\n{% if name %}never closed", None, &vars);
        let e = check(&bad, FIELDS).unwrap_err();
        assert_eq!(e.field, Some(vec!["input".into(), "textContent".into()]));
        assert!(e.message.starts_with("line 2:"), "{}", e.message);

        let undeclared = source("Hi {{ name }}\n\nYour points: {{ points }}", None, &vars);
        let e = check(&undeclared, FIELDS).unwrap_err();
        assert_eq!(e.code, UserErrorCode::Invalid);
        assert_eq!(
            e.message,
            "line 3: variable `points` is not declared in variables"
        );
        // A loop variable is not a template variable.
        let looped = source("{% for x in name %}{{ x }}{% endfor %}", None, &vars);
        check(&looped, FIELDS).unwrap();
    }

    #[test]
    fn a_missing_variable_or_a_runaway_template_is_refused() {
        let vars = vec!["name".to_owned()];
        let s = source("Hi {{ name }}", None, &vars);
        let e = render(&s, FIELDS, &json!({})).unwrap_err();
        assert_eq!(e.field, Some(vec!["input".into(), "variables".into()]));
        let runaway = source(
            "{% for a in range(100000) %}{% for b in range(100000) %}x{% endfor %}{% endfor %}",
            None,
            &vars,
        );
        check(&runaway, FIELDS).unwrap();
        assert!(render(&runaway, FIELDS, &json!({ "name": "x" })).is_err());
        let names = vec!["1abc".to_owned()];
        assert!(check_variables(&names).is_err());
    }
}
