//! Validation of HookTemplate (reference §3.8).

use kube::core::{Expression, Selector};
use serde_json::Value;
use stowaway_api::HookTemplate;
use stowaway_api::hook_template::HookExecutorType;

use super::{Catalog, FieldError, Rejection};

/// The handlers of a hook action; exactly one is set.
const HANDLERS: [&str; 4] = ["exec", "httpGet", "httpPost", "tcpSocket"];

/// Validates a HookTemplate: a Function executor names its Function, a Pod executor has a
/// label selector that parses, and Pod and Operator executors have an `action` with exactly
/// one handler. (The executor itself is required by the type.)
pub fn validate_hook_template(
    new: &HookTemplate,
    _old: Option<&HookTemplate>,
    _catalog: &Catalog,
) -> Result<(), Rejection> {
    let mut errors = Vec::new();
    let executor = &new.spec.executor;
    match executor.type_ {
        HookExecutorType::Function => match &executor.function {
            None => errors.push(FieldError::new(
                "spec.executor.function",
                "required when type is Function",
            )),
            Some(function) if function.name.is_empty() => {
                errors.push(FieldError::new("spec.executor.function.name", "required"));
            }
            Some(_) => {}
        },
        HookExecutorType::Pod => {
            let selector = executor
                .pod
                .as_ref()
                .and_then(|p| p.selector.as_deref())
                .filter(|s| !s.trim().is_empty());
            match selector {
                None => errors.push(FieldError::new(
                    "spec.executor.pod.selector",
                    "required when type is Pod",
                )),
                Some(selector) => {
                    if let Err(reason) = parse_selector(selector) {
                        errors.push(FieldError::new(
                            "spec.executor.pod.selector",
                            format!("invalid selector {selector:?}: {reason}"),
                        ));
                    }
                }
            }
        }
        HookExecutorType::Operator => {}
    }
    if executor.type_ != HookExecutorType::Function {
        let type_name = match executor.type_ {
            HookExecutorType::Pod => "Pod",
            _ => "Operator",
        };
        check_action(new.spec.action.as_ref(), type_name, &mut errors);
    }
    Rejection::check(errors)
}

fn check_action(action: Option<&Value>, type_name: &str, errors: &mut Vec<FieldError>) {
    let handlers = match action {
        None | Some(Value::Null) => {
            errors.push(FieldError::new(
                "spec.action",
                format!("required when the executor type is {type_name}"),
            ));
            return;
        }
        Some(Value::Object(action)) => action,
        Some(_) => {
            errors.push(FieldError::new("spec.action", "must be an object"));
            return;
        }
    };
    let set: Vec<&str> = HANDLERS
        .into_iter()
        .filter(|h| handlers.get(*h).is_some_and(|v| !v.is_null()))
        .collect();
    if set.len() != 1 {
        let found = if set.is_empty() {
            "none".to_owned()
        } else {
            set.join(", ")
        };
        errors.push(FieldError::new(
            "spec.action",
            format!(
                "must set exactly one of {} (found {found})",
                HANDLERS.join(", ")
            ),
        ));
    }
}

/// Parses a label selector string as Kubernetes does (`labels.Parse`): comma-separated
/// requirements `key`, `!key`, `key=value`, `key==value`, `key!=value`, `key in (a,b)`,
/// `key notin (a,b)`, with valid label keys and values.
pub(super) fn parse_selector(text: &str) -> Result<Selector, String> {
    let mut expressions = Vec::new();
    for part in split_top_level(text)? {
        let part = part.trim();
        if part.is_empty() {
            return Err("empty requirement".into());
        }
        expressions.push(parse_requirement(part)?);
    }
    Ok(expressions.into_iter().collect())
}

/// Splits at the commas outside parentheses.
fn split_top_level(text: &str) -> Result<Vec<&str>, String> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0usize, 0);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth = depth
                    .checked_sub(1)
                    .ok_or_else(|| "unbalanced ')'".to_owned())?;
            }
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err("unbalanced '('".into());
    }
    parts.push(&text[start..]);
    Ok(parts)
}

fn parse_requirement(part: &str) -> Result<Expression, String> {
    if let Some(key) = part.strip_prefix('!') {
        let key = key.trim();
        check_key(key)?;
        return Ok(Expression::DoesNotExist(key.to_owned()));
    }
    for (operator, equal) in [("!=", false), ("==", true), ("=", true)] {
        if let Some((key, value)) = part.split_once(operator) {
            let (key, value) = (key.trim(), value.trim());
            check_key(key)?;
            check_value(value)?;
            return Ok(if equal {
                Expression::Equal(key.to_owned(), value.to_owned())
            } else {
                Expression::NotEqual(key.to_owned(), value.to_owned())
            });
        }
    }
    if let Some(open) = part.find('(') {
        let Some(values) = part[open + 1..].strip_suffix(')') else {
            return Err(format!("{part:?}: expected ')' at the end"));
        };
        let mut words = part[..open].split_whitespace();
        let (Some(key), Some(operator), None) = (words.next(), words.next(), words.next()) else {
            return Err(format!(
                "{part:?}: expected `key in (values)` or `key notin (values)`"
            ));
        };
        check_key(key)?;
        let values = values
            .split(',')
            .map(|v| {
                let v = v.trim();
                check_value(v).map(|()| v.to_owned())
            })
            .collect::<Result<_, _>>()?;
        return match operator {
            "in" => Ok(Expression::In(key.to_owned(), values)),
            "notin" => Ok(Expression::NotIn(key.to_owned(), values)),
            other => Err(format!("{part:?}: unknown operator {other:?}")),
        };
    }
    let key = part.trim();
    check_key(key)?;
    Ok(Expression::Exists(key.to_owned()))
}

/// A label name or value: up to 63 characters, alphanumeric at both ends, `-`, `_`, `.` inside.
fn is_label_name(text: &str) -> bool {
    let bytes = text.as_bytes();
    !text.is_empty()
        && text.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(b))
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
}

/// A DNS subdomain: lowercase labels of `a-z`, `0-9`, `-`, separated by dots, up to 253.
fn is_dns_subdomain(text: &str) -> bool {
    text.len() <= 253
        && text.split('.').all(|label| {
            let bytes = label.as_bytes();
            !label.is_empty()
                && bytes
                    .iter()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
                && bytes.first().is_some_and(|b| *b != b'-')
                && bytes.last().is_some_and(|b| *b != b'-')
        })
}

fn check_key(key: &str) -> Result<(), String> {
    let valid = match key.split_once('/') {
        Some((prefix, name)) => is_dns_subdomain(prefix) && is_label_name(name),
        None => is_label_name(key),
    };
    if valid {
        Ok(())
    } else {
        Err(format!("invalid label key {key:?}"))
    }
}

fn check_value(value: &str) -> Result<(), String> {
    if value.is_empty() || is_label_name(value) {
        Ok(())
    } else {
        Err(format!("invalid label value {value:?}"))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use kube::core::SelectorExt;
    use stowaway_api::hook_template::{
        FunctionHookExecutorSpec, HookExecutor, PodHookExecutorSpec,
    };

    use super::super::fixtures::{assert_rejected, hook_template};
    use super::*;

    fn with(type_: HookExecutorType, change: impl Fn(&mut HookTemplate)) -> HookTemplate {
        let mut t = hook_template("demo", "t");
        t.spec.executor = HookExecutor {
            type_,
            ..HookExecutor::default()
        };
        change(&mut t);
        t
    }

    fn pod(selector: &str) -> Option<PodHookExecutorSpec> {
        Some(PodHookExecutorSpec {
            selector: Some(selector.into()),
            ..PodHookExecutorSpec::default()
        })
    }

    fn function(name: &str) -> Option<FunctionHookExecutorSpec> {
        Some(FunctionHookExecutorSpec {
            name: name.into(),
            ..FunctionHookExecutorSpec::default()
        })
    }

    #[test]
    fn hook_template_accepted() {
        let c = Catalog::default();
        let cases: Vec<(&str, HookTemplate)> = vec![
            ("operator with httpGet", hook_template("demo", "t")),
            (
                "pod with exec",
                with(HookExecutorType::Pod, |t| {
                    t.spec.executor.pod = pod("app=db, tier in (a,b)");
                    t.spec.action = Some(serde_json::json!({"exec": {"command": ["true"]}}));
                }),
            ),
            (
                "function without action",
                with(HookExecutorType::Function, |t| {
                    t.spec.executor.function = function("notify");
                    t.spec.action = None;
                }),
            ),
            (
                "handler with containerName",
                with(HookExecutorType::Operator, |t| {
                    t.spec.action = Some(serde_json::json!({
                        "tcpSocket": {"port": 5432}, "containerName": "db"
                    }));
                }),
            ),
        ];
        for (name, t) in cases {
            assert_eq!(validate_hook_template(&t, None, &c), Ok(()), "{name}");
        }
    }

    #[test]
    fn hook_template_rejected() {
        let c = Catalog::default();
        let cases: Vec<(&str, HookTemplate, &str, &str)> = vec![
            (
                "function executor without function",
                with(HookExecutorType::Function, |_| {}),
                "spec.executor.function",
                "required when type is Function",
            ),
            (
                "function without a name",
                with(HookExecutorType::Function, |t| {
                    t.spec.executor.function = function("")
                }),
                "spec.executor.function.name",
                "required",
            ),
            (
                "pod executor without pod",
                with(HookExecutorType::Pod, |_| {}),
                "spec.executor.pod.selector",
                "required when type is Pod",
            ),
            (
                "pod executor with a blank selector",
                with(HookExecutorType::Pod, |t| t.spec.executor.pod = pod(" ")),
                "spec.executor.pod.selector",
                "required when type is Pod",
            ),
            (
                "pod executor with a bad selector",
                with(HookExecutorType::Pod, |t| {
                    t.spec.executor.pod = pod("app=db,tier in (a")
                }),
                "spec.executor.pod.selector",
                "invalid selector \"app=db,tier in (a\": unbalanced '('",
            ),
            (
                "operator without action",
                with(HookExecutorType::Operator, |t| t.spec.action = None),
                "spec.action",
                "required when the executor type is Operator",
            ),
            (
                "pod without action",
                with(HookExecutorType::Pod, |t| {
                    t.spec.executor.pod = pod("app=db");
                    t.spec.action = None;
                }),
                "spec.action",
                "required when the executor type is Pod",
            ),
            (
                "action without handler",
                with(HookExecutorType::Operator, |t| {
                    t.spec.action = Some(serde_json::json!({"containerName": "db"}))
                }),
                "spec.action",
                "must set exactly one of exec, httpGet, httpPost, tcpSocket (found none)",
            ),
            (
                "action with two handlers",
                with(HookExecutorType::Operator, |t| {
                    t.spec.action = Some(serde_json::json!({
                        "httpGet": {"port": 80}, "tcpSocket": {"port": 80}
                    }))
                }),
                "spec.action",
                "must set exactly one of exec, httpGet, httpPost, tcpSocket (found httpGet, tcpSocket)",
            ),
            (
                "action not an object",
                with(HookExecutorType::Operator, |t| {
                    t.spec.action = Some(serde_json::json!(["exec"]))
                }),
                "spec.action",
                "must be an object",
            ),
        ];
        for (name, t, path, message) in cases {
            let result = validate_hook_template(&t, None, &c);
            assert!(result.is_err(), "{name}");
            assert_rejected(result, path, message);
        }
    }

    #[test]
    fn selectors_parse_like_kubernetes() {
        let labels: BTreeMap<String, String> = [
            ("app".to_owned(), "db".to_owned()),
            ("tier".to_owned(), "a".to_owned()),
        ]
        .into();
        for (text, matches) in [
            ("app=db", true),
            ("app==db", true),
            ("app!=db", false),
            ("app = db , tier=a", true),
            ("app", true),
            ("!app", false),
            ("! missing", true),
            ("tier in (a, b)", true),
            ("tier notin (a,b)", false),
            ("app.kubernetes.io/name=x", false),
            ("app=", false),
        ] {
            let selector = parse_selector(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(selector.matches(&labels), matches, "{text}");
        }
        for (text, why) in [
            ("app=db,", "empty requirement"),
            ("=db", "invalid label key \"\""),
            ("-app=db", "invalid label key \"-app\""),
            ("app=d b", "invalid label value \"d b\""),
            ("Bad_Prefix/app=x", "invalid label key"),
            ("tier in a,b)", "unbalanced ')'"),
            ("tier within (a)", "unknown operator \"within\""),
            ("tier in (a) x", "expected ')' at the end"),
            ("in (a)", "expected `key in (values)`"),
        ] {
            let err = parse_selector(text).expect_err(text);
            assert!(err.contains(why), "{text}: {err}");
        }
    }
}
