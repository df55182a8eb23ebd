//! Checks a job's parameters against the addon's declaration and fills in defaults.

use std::collections::BTreeMap;

use crate::info::{AddonInfo, Parameter, ParameterType};

/// Validates `given` against `info.parameters`: unknown names, missing required values and
/// malformed values are refused with a message naming the parameter. Returns the full list in
/// declaration order, defaults filled in. Repeated names are joined with newlines (text lists).
pub(crate) fn resolve(
    info: &AddonInfo,
    given: &[(String, String)],
) -> Result<Vec<(String, String)>, String> {
    let mut values: BTreeMap<&str, String> = BTreeMap::new();
    for (name, value) in given {
        let Some(param) = info.parameters.iter().find(|p| &p.name == name) else {
            let known: Vec<&str> = info.parameters.iter().map(|p| p.name.as_str()).collect();
            return Err(if known.is_empty() {
                format!("unknown parameter {name:?}: this addon takes no parameters")
            } else {
                format!("unknown parameter {name:?} (known: {})", known.join(", "))
            });
        };
        match values.get_mut(param.name.as_str()) {
            Some(existing) if param.kind == ParameterType::TextList => {
                existing.push('\n');
                existing.push_str(value);
            }
            Some(_) => return Err(format!("parameter {name:?} is given more than once")),
            None => {
                values.insert(param.name.as_str(), value.clone());
            }
        }
    }
    let mut resolved = Vec::with_capacity(info.parameters.len());
    for param in &info.parameters {
        let value = match values.remove(param.name.as_str()) {
            Some(value) => value,
            None => match &param.default {
                Some(default) => default.clone(),
                None => return Err(format!("parameter {:?} is required", param.name)),
            },
        };
        check_value(param, &value)?;
        resolved.push((param.name.clone(), value));
    }
    Ok(resolved)
}

pub(crate) fn check_value(param: &Parameter, value: &str) -> Result<(), String> {
    let ok = match param.kind {
        ParameterType::Text | ParameterType::TextList => true,
        ParameterType::Integer => value.trim().parse::<i64>().is_ok(),
        ParameterType::Boolean => matches!(value, "true" | "false"),
        ParameterType::Duration => parse_duration(value).is_some(),
    };
    if ok {
        Ok(())
    } else {
        let expected = match param.kind {
            ParameterType::Integer => "an integer",
            ParameterType::Boolean => "true or false",
            ParameterType::Duration => "a duration such as 30s, 5m or 2h",
            ParameterType::Text | ParameterType::TextList => "text",
        };
        Err(format!(
            "parameter {:?} must be {expected}, not {value:?}",
            param.name
        ))
    }
}

/// Parses `1500ms`, `30s`, `5m`, `2h`, `1d` (one number, one unit).
pub(crate) fn parse_duration(value: &str) -> Option<std::time::Duration> {
    let value = value.trim();
    let split = value.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = value.split_at(split);
    let n: u64 = number.parse().ok()?;
    let secs = match unit {
        "ms" => return Some(std::time::Duration::from_millis(n)),
        "s" => n,
        "m" => n.checked_mul(60)?,
        "h" => n.checked_mul(3600)?,
        "d" => n.checked_mul(86400)?,
        _ => return None,
    };
    Some(std::time::Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::info::Operation;

    fn info() -> AddonInfo {
        let p = |name: &str, kind, default: Option<&str>| Parameter {
            name: name.into(),
            kind,
            description: String::new(),
            default: default.map(str::to_owned),
        };
        AddonInfo {
            name: "t".into(),
            version: "1".into(),
            description: String::new(),
            target_kinds: vec![],
            operations: vec![Operation::Backup],
            parameters: vec![
                p("host", ParameterType::Text, None),
                p("port", ParameterType::Integer, Some("5432")),
                p("exclude", ParameterType::TextList, Some("")),
                p("drop", ParameterType::Boolean, Some("false")),
                p("timeout", ParameterType::Duration, Some("30s")),
            ],
            capabilities: vec![],
        }
    }

    fn given(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn fills_defaults_in_declaration_order() {
        let r = resolve(&info(), &given(&[("host", "db")])).expect("valid");
        assert_eq!(
            r,
            given(&[
                ("host", "db"),
                ("port", "5432"),
                ("exclude", ""),
                ("drop", "false"),
                ("timeout", "30s")
            ])
        );
    }

    #[test]
    fn joins_repeated_text_lists() {
        let r = resolve(
            &info(),
            &given(&[("host", "h"), ("exclude", "*.tmp"), ("exclude", "cache/")]),
        )
        .expect("valid");
        assert_eq!(r[2].1, "*.tmp\ncache/");
    }

    #[test]
    fn refuses_bad_input_naming_the_parameter() {
        let err = resolve(&info(), &given(&[])).expect_err("host missing");
        assert_eq!(err, "parameter \"host\" is required");
        let err = resolve(&info(), &given(&[("host", "h"), ("port", "x")])).expect_err("bad int");
        assert_eq!(err, "parameter \"port\" must be an integer, not \"x\"");
        let err = resolve(&info(), &given(&[("host", "h"), ("nope", "1")])).expect_err("unknown");
        assert!(
            err.starts_with("unknown parameter \"nope\" (known: host, port"),
            "{err}"
        );
        let err = resolve(&info(), &given(&[("host", "h"), ("host", "i")])).expect_err("twice");
        assert_eq!(err, "parameter \"host\" is given more than once");
        let err = resolve(&info(), &given(&[("host", "h"), ("timeout", "soon")])).expect_err("dur");
        assert!(err.contains("must be a duration"), "{err}");
    }

    #[test]
    fn parses_durations() {
        assert_eq!(
            parse_duration("1500ms"),
            Some(std::time::Duration::from_millis(1500))
        );
        assert_eq!(
            parse_duration("5m"),
            Some(std::time::Duration::from_secs(300))
        );
        assert_eq!(parse_duration("5"), None);
        assert_eq!(parse_duration("m"), None);
    }
}
