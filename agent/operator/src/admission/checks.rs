//! Checks shared by several kinds: names, schedules, durations, addon tasks and their
//! parameters, hooks.

use std::collections::BTreeSet;

use serde_json::Value;
use stowaway_api::common::{AddonInfo, HookInfo, ParameterDefinition};

use super::usage::{Referable, check_reference};
use super::{Catalog, FieldError};

/// Pushes `required` for each empty name and `duplicate value` for each name seen before.
pub(super) fn check_names<'a>(
    names: impl IntoIterator<Item = (String, &'a str)>,
    errors: &mut Vec<FieldError>,
) {
    let mut seen = BTreeSet::new();
    for (path, name) in names {
        if name.is_empty() {
            errors.push(FieldError::new(path, "required"));
        } else if !seen.insert(name) {
            errors.push(FieldError::new(path, format!("duplicate value {name:?}")));
        }
    }
}

/// Checks a cron schedule of a session (with its time zone).
pub(super) fn check_schedule(expr: &str, time_zone: Option<&str>) -> Result<(), String> {
    crate::schedule::Schedule::parse(expr, time_zone)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Checks a Go-style duration (`30s`, `1h30m`).
pub(super) fn check_duration(text: &str) -> Result<(), String> {
    crate::duration::parse_duration(text)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Which tasks of an Addon a reference may name.
#[derive(Clone, Copy, Debug)]
pub(super) enum TaskKind {
    Backup,
    Restore,
}

impl TaskKind {
    fn word(self) -> &'static str {
        match self {
            TaskKind::Backup => "backup",
            TaskKind::Restore => "restore",
        }
    }
}

/// Checks the addon at `path`: its name and task names are given, the Addon exists with
/// those tasks of `kind`, and each task's `params` fit the task's parameters.
pub(super) fn check_addon(
    path: &str,
    addon: &AddonInfo,
    kind: TaskKind,
    catalog: &Catalog,
    errors: &mut Vec<FieldError>,
) {
    if addon.name.is_empty() {
        errors.push(FieldError::new(format!("{path}.name"), "required"));
    }
    if addon.tasks.is_empty() {
        errors.push(FieldError::new(
            format!("{path}.tasks"),
            "at least one task is required",
        ));
    }
    for (i, task) in addon.tasks.iter().enumerate() {
        if task.name.is_empty() {
            errors.push(FieldError::new(
                format!("{path}.tasks[{i}].name"),
                "required",
            ));
        }
    }
    if addon.name.is_empty() {
        return;
    }
    let Some(found) = catalog.resolve_addon(&addon.name) else {
        errors.push(FieldError::new(
            format!("{path}.name"),
            format!("Addon {:?} not found", addon.name),
        ));
        return;
    };
    let declared = match kind {
        TaskKind::Backup => &found.spec.backup_tasks,
        TaskKind::Restore => &found.spec.restore_tasks,
    };
    for (i, task) in addon.tasks.iter().enumerate() {
        if task.name.is_empty() {
            continue;
        }
        let task_path = format!("{path}.tasks[{i}]");
        let Some(definition) = declared.iter().find(|t| t.name == task.name) else {
            let names: Vec<&str> = declared.iter().map(|t| t.name.as_str()).collect();
            errors.push(FieldError::new(
                format!("{task_path}.name"),
                format!(
                    "Addon {:?} has no {} task {:?} (its {} tasks: {})",
                    addon.name,
                    kind.word(),
                    task.name,
                    kind.word(),
                    list_or_none(&names)
                ),
            ));
            continue;
        };
        let owner = format!("task {:?} of Addon {:?}", task.name, addon.name);
        check_params(
            &task_path,
            task.params.as_ref(),
            &definition.parameters,
            &owner,
            errors,
        );
    }
}

/// Checks `params` (at `path.params`) against the parameters `owner` declares: every key is
/// declared, and every required parameter without a default is given.
fn check_params(
    path: &str,
    params: Option<&Value>,
    declared: &[ParameterDefinition],
    owner: &str,
    errors: &mut Vec<FieldError>,
) {
    let empty = serde_json::Map::new();
    let given = match params {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(map)) => map,
        Some(_) => {
            errors.push(FieldError::new(
                format!("{path}.params"),
                "must be an object of parameter names to values",
            ));
            return;
        }
    };
    for key in given.keys() {
        if !declared.iter().any(|d| d.name == *key) {
            let names: Vec<&str> = declared.iter().map(|d| d.name.as_str()).collect();
            errors.push(FieldError::new(
                format!("{path}.params.{key}"),
                format!("unknown parameter: {owner} takes {}", list_or_none(&names)),
            ));
        }
    }
    for definition in declared {
        let required = definition.required == Some(true);
        let has_default = definition.default.as_deref().is_some_and(|d| !d.is_empty());
        if required && !has_default && !given.contains_key(&definition.name) {
            errors.push(FieldError::new(
                format!("{path}.params.{}", definition.name),
                format!("required by {owner}"),
            ));
        }
    }
}

/// Checks each hook of the list at `path`: its HookTemplate exists and allows `namespace`.
pub(super) fn check_hooks(
    path: &str,
    hooks: &[HookInfo],
    namespace: &str,
    catalog: &Catalog,
    errors: &mut Vec<FieldError>,
) {
    for (i, hook) in hooks.iter().enumerate() {
        check_reference(
            &format!("{path}[{i}].hookTemplate"),
            Referable::HookTemplate,
            &hook.hook_template,
            namespace,
            catalog,
            errors,
        );
    }
}

/// `a, b, c`, or `none`.
pub(super) fn list_or_none(names: &[&str]) -> String {
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{catalog, param};
    use super::*;
    use stowaway_api::common::TaskReference;

    #[test]
    fn names_required_and_unique() {
        let mut errors = Vec::new();
        check_names(
            ["a", "", "b", "a"]
                .into_iter()
                .enumerate()
                .map(|(i, n)| (format!("x[{i}].name"), n)),
            &mut errors,
        );
        assert_eq!(
            errors,
            vec![
                FieldError::new("x[1].name", "required"),
                FieldError::new("x[3].name", "duplicate value \"a\""),
            ]
        );
    }

    fn addon(name: &str, tasks: &[(&str, Option<Value>)]) -> AddonInfo {
        AddonInfo {
            name: name.into(),
            tasks: tasks
                .iter()
                .map(|(n, p)| TaskReference {
                    name: (*n).into(),
                    params: p.clone(),
                    ..TaskReference::default()
                })
                .collect(),
            ..AddonInfo::default()
        }
    }

    #[test]
    fn addon_table() {
        let c = catalog();
        let paths = Some(serde_json::json!({"paths": "/data"}));
        let cases: Vec<(&str, AddonInfo, TaskKind, Vec<FieldError>)> = vec![
            (
                "backup task with its required parameter",
                addon("workload-addon", &[("logical-backup", paths.clone())]),
                TaskKind::Backup,
                vec![],
            ),
            (
                "restore task without parameters",
                addon("workload-addon", &[("logical-backup-restore", None)]),
                TaskKind::Restore,
                vec![],
            ),
            (
                "no name, no tasks",
                addon("", &[]),
                TaskKind::Backup,
                vec![
                    FieldError::new("a.name", "required"),
                    FieldError::new("a.tasks", "at least one task is required"),
                ],
            ),
            (
                "task without a name",
                addon("workload-addon", &[("", None)]),
                TaskKind::Backup,
                vec![FieldError::new("a.tasks[0].name", "required")],
            ),
            (
                "unknown addon",
                addon("nope", &[("logical-backup", None)]),
                TaskKind::Backup,
                vec![FieldError::new("a.name", "Addon \"nope\" not found")],
            ),
            (
                "restore task used for backup",
                addon("workload-addon", &[("logical-backup-restore", None)]),
                TaskKind::Backup,
                vec![FieldError::new(
                    "a.tasks[0].name",
                    "Addon \"workload-addon\" has no backup task \"logical-backup-restore\" (its backup tasks: logical-backup)",
                )],
            ),
            (
                "required parameter missing (one with a default is not needed)",
                addon("workload-addon", &[("logical-backup", None)]),
                TaskKind::Backup,
                vec![FieldError::new(
                    "a.tasks[0].params.paths",
                    "required by task \"logical-backup\" of Addon \"workload-addon\"",
                )],
            ),
            (
                "unknown parameter",
                addon(
                    "workload-addon",
                    &[(
                        "logical-backup-restore",
                        Some(serde_json::json!({"paths": "/x"})),
                    )],
                ),
                TaskKind::Restore,
                vec![FieldError::new(
                    "a.tasks[0].params.paths",
                    "unknown parameter: task \"logical-backup-restore\" of Addon \"workload-addon\" takes include, exclude",
                )],
            ),
            (
                "params not an object",
                addon(
                    "workload-addon",
                    &[("logical-backup-restore", Some(Value::from("x")))],
                ),
                TaskKind::Restore,
                vec![FieldError::new(
                    "a.tasks[0].params",
                    "must be an object of parameter names to values",
                )],
            ),
        ];
        for (name, info, kind, want) in cases {
            let mut errors = Vec::new();
            check_addon("a", &info, kind, &c, &mut errors);
            assert_eq!(errors, want, "{name}");
        }
    }

    #[test]
    fn empty_default_is_no_default() {
        let mut c = catalog();
        c.addons[0].spec.restore_tasks[0]
            .parameters
            .push(param("target", true, Some("")));
        let mut errors = Vec::new();
        check_addon(
            "a",
            &addon("workload-addon", &[("logical-backup-restore", None)]),
            TaskKind::Restore,
            &c,
            &mut errors,
        );
        assert_eq!(
            errors,
            vec![FieldError::new(
                "a.tasks[0].params.target",
                "required by task \"logical-backup-restore\" of Addon \"workload-addon\""
            )]
        );
    }
}
