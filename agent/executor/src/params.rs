//! The parameters of an addon's tasks (`addon.tasks[].params`, free-form JSON) as the
//! `NAME=VALUE` pairs the runtime hands to the addon.
//!
//! Scalars become one pair (`true`, `5432`, text as it is); a list of scalars becomes one
//! pair per element (a `text-list` parameter such as the volume addon's `exclude`); `null`
//! is left out. [`AUTH_SECRET`] is the executor's own: it names the Secret with the
//! database credentials and does not reach the addon.

use stowaway_api::common::TaskReference;

use crate::error::{ExecuteError, Result};

/// Parameter naming the Secret (in the session's namespace) with a database's credentials.
pub const AUTH_SECRET: &str = "authSecret";

/// The parameters of a session's tasks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TaskParams {
    /// For the addon, in order.
    pub addon: Vec<(String, String)>,
    /// The [`AUTH_SECRET`] parameter.
    pub auth_secret: Option<String>,
}

impl TaskParams {
    /// The last value given for `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.addon
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Sets `name` unless a value was given.
    pub fn set_default(&mut self, name: &str, value: impl Into<String>) {
        if self.get(name).is_none() {
            self.addon.push((name.to_owned(), value.into()));
        }
    }
}

/// The parameters of every task, in order (a session usually has one task).
pub fn task_params(tasks: &[TaskReference]) -> Result<TaskParams> {
    let mut out = TaskParams::default();
    for task in tasks {
        let Some(params) = &task.params else {
            continue;
        };
        let serde_json::Value::Object(map) = params else {
            return Err(ExecuteError::Parameter {
                name: format!("tasks[{}].params", task.name),
                message: "must be an object of NAME: VALUE".into(),
            });
        };
        for (name, value) in map {
            if name == AUTH_SECRET {
                out.auth_secret =
                    Some(scalar(name, value)?.unwrap_or_default()).filter(|s| !s.is_empty());
                continue;
            }
            match value {
                serde_json::Value::Array(items) => {
                    for item in items {
                        if let Some(v) = scalar(name, item)? {
                            out.addon.push((name.clone(), v));
                        }
                    }
                }
                other => {
                    if let Some(v) = scalar(name, other)? {
                        out.addon.push((name.clone(), v));
                    }
                }
            }
        }
    }
    Ok(out)
}

/// The text of a scalar value; `None` for `null`.
fn scalar(name: &str, value: &serde_json::Value) -> Result<Option<String>> {
    match value {
        serde_json::Value::Null => Ok(None),
        serde_json::Value::String(s) => Ok(Some(s.clone())),
        serde_json::Value::Bool(b) => Ok(Some(b.to_string())),
        serde_json::Value::Number(n) => Ok(Some(n.to_string())),
        serde_json::Value::Array(_) | serde_json::Value::Object(_) => {
            Err(ExecuteError::Parameter {
                name: name.to_owned(),
                message: "must be text, a number, true/false or a list of those".into(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(params: serde_json::Value) -> TaskReference {
        TaskReference {
            name: "logical-backup".into(),
            params: Some(params),
            ..TaskReference::default()
        }
    }

    #[test]
    fn scalars_lists_and_the_auth_secret() {
        let params = task_params(&[task(serde_json::json!({
            "exclude": ["*.tmp", "cache/**"],
            "port": 5432,
            "overwrite": false,
            "user": "app",
            "skip": null,
            "authSecret": "db-auth",
        }))])
        .expect("params");
        // Object keys may come in any order; the values of one list keep theirs.
        let mut pairs = params.addon.clone();
        pairs.sort();
        assert_eq!(
            pairs,
            [
                ("exclude".to_owned(), "*.tmp".to_owned()),
                ("exclude".to_owned(), "cache/**".to_owned()),
                ("overwrite".to_owned(), "false".to_owned()),
                ("port".to_owned(), "5432".to_owned()),
                ("user".to_owned(), "app".to_owned()),
            ]
        );
        assert_eq!(params.auth_secret.as_deref(), Some("db-auth"));
        assert_eq!(params.get("port"), Some("5432"));
    }

    #[test]
    fn tasks_without_params_and_defaults() {
        let mut params = task_params(&[TaskReference::default()]).expect("none");
        assert_eq!(params, TaskParams::default());
        params.set_default("host", "db.demo.svc");
        params.set_default("host", "other");
        assert_eq!(params.get("host"), Some("db.demo.svc"));
    }

    #[test]
    fn nested_values_are_refused_by_name() {
        let err =
            task_params(&[task(serde_json::json!({"args": {"a": 1}}))]).expect_err("object value");
        assert_eq!(
            err.to_string(),
            "parameter args: must be text, a number, true/false or a list of those"
        );
        let err = task_params(&[task(serde_json::json!(["x"]))]).expect_err("not an object");
        assert_eq!(
            err.to_string(),
            "parameter tasks[logical-backup].params: must be an object of NAME: VALUE"
        );
    }
}
