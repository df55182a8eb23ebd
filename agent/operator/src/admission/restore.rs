//! Validation of RestoreSession (reference §3.7).

use stowaway_api::RestoreSession;

use super::checks::{TaskKind, check_addon, check_hooks, check_names};
use super::{Catalog, FieldError, Rejection, namespace_of};

/// Validates a RestoreSession: `dataSource.repository` is given, `dataSource.snapshot` too
/// (a name or `latest`) unless `pitr` chooses the snapshot, components are unique, hook
/// templates exist and allow this namespace, and the addon's restore tasks exist with
/// fitting `params`.
pub fn validate_restore_session(
    new: &RestoreSession,
    _old: Option<&RestoreSession>,
    catalog: &Catalog,
) -> Result<(), Rejection> {
    let mut errors = Vec::new();
    let namespace = namespace_of(&new.metadata);
    let source = &new.spec.data_source;
    if let Some(batch) = &source.batch {
        // A batch restore reads every member's snapshot of one BackupSession of the batch.
        if batch.name.is_empty() {
            errors.push(FieldError::new("spec.dataSource.batch.name", "required"));
        }
        for (field, set) in [
            ("repository", source.repository.is_some()),
            ("snapshot", source.snapshot.is_some()),
            ("pitr", source.pitr.is_some()),
            ("components", !source.components.is_empty()),
        ] {
            if set {
                errors.push(FieldError::new(
                    format!("spec.dataSource.{field}"),
                    "not allowed with batch: the batch's BackupSession chooses each member's snapshot",
                ));
            }
        }
        if new.spec.target.is_some() {
            errors.push(FieldError::new(
                "spec.target",
                "not allowed with spec.dataSource.batch: each member is restored into its own target",
            ));
        }
        check_names(
            batch
                .members
                .iter()
                .enumerate()
                .map(|(i, m)| (format!("spec.dataSource.batch.members[{i}]"), m.as_str())),
            &mut errors,
        );
    } else {
        if source.repository.as_deref().unwrap_or("").is_empty() {
            errors.push(FieldError::new("spec.dataSource.repository", "required"));
        }
        if source.snapshot.as_deref().unwrap_or("").is_empty() && source.pitr.is_none() {
            errors.push(FieldError::new(
                "spec.dataSource.snapshot",
                "required: a Snapshot name or latest",
            ));
        }
    }
    check_names(
        source
            .components
            .iter()
            .enumerate()
            .map(|(i, c)| (format!("spec.dataSource.components[{i}]"), c.as_str())),
        &mut errors,
    );
    if let Some(hooks) = &new.spec.hooks {
        check_hooks(
            "spec.hooks.preRestore",
            &hooks.pre_restore,
            namespace,
            catalog,
            &mut errors,
        );
        check_hooks(
            "spec.hooks.postRestore",
            &hooks.post_restore,
            namespace,
            catalog,
            &mut errors,
        );
    }
    if let Some(addon) = &new.spec.addon {
        check_addon("spec.addon", addon, TaskKind::Restore, catalog, &mut errors);
    }
    Rejection::check(errors)
}

#[cfg(test)]
mod tests {
    use stowaway_api::common::{AddonInfo, HookInfo, ObjectReference, TaskReference};
    use stowaway_api::restore_session::{
        PointInTime, RestoreDataSource, RestoreHooks, RestoreSessionSpec,
    };

    use super::super::fixtures::{demo_catalog, errors, hook_template, meta};
    use super::*;

    fn restore() -> RestoreSession {
        RestoreSession {
            metadata: meta("demo", "restore"),
            spec: RestoreSessionSpec {
                data_source: RestoreDataSource {
                    repository: Some("app-repo".into()),
                    snapshot: Some("latest".into()),
                    ..RestoreDataSource::default()
                },
                addon: Some(AddonInfo {
                    name: "workload-addon".into(),
                    tasks: vec![TaskReference {
                        name: "logical-backup-restore".into(),
                        params: Some(serde_json::json!({"include": "/data"})),
                        ..TaskReference::default()
                    }],
                    ..AddonInfo::default()
                }),
                ..RestoreSessionSpec::default()
            },
            status: None,
        }
    }

    fn hook(namespace: Option<&str>, name: &str) -> HookInfo {
        HookInfo {
            name: "h".into(),
            hook_template: ObjectReference {
                namespace: namespace.map(str::to_owned),
                name: name.into(),
            },
            ..HookInfo::default()
        }
    }

    type Change = Box<dyn Fn(&mut RestoreSession, &mut Catalog)>;

    #[test]
    fn restore_session_accepted() {
        let cases: Vec<(&str, Change)> = vec![
            ("latest", Box::new(|_, _| {})),
            (
                "a named snapshot and components",
                Box::new(|r, _| {
                    r.spec.data_source.snapshot = Some("app-repo-daily-1".into());
                    r.spec.data_source.components = vec!["dump".into(), "pod-0".into()];
                }),
            ),
            (
                "point in time instead of a snapshot",
                Box::new(|r, _| {
                    r.spec.data_source.snapshot = None;
                    r.spec.data_source.pitr = Some(PointInTime::default());
                }),
            ),
            ("no addon", Box::new(|r, _| r.spec.addon = None)),
            (
                "hooks",
                Box::new(|r, _| {
                    r.spec.hooks = Some(RestoreHooks {
                        pre_restore: vec![hook(None, "notify")],
                        post_restore: vec![hook(Some("demo"), "notify")],
                    })
                }),
            ),
        ];
        for (name, change) in cases {
            let (mut r, mut c) = (restore(), demo_catalog());
            change(&mut r, &mut c);
            assert_eq!(validate_restore_session(&r, None, &c), Ok(()), "{name}");
        }
    }

    #[test]
    fn restore_session_rejected() {
        let cases: Vec<(&str, Change, &str, &str)> = vec![
            (
                "no repository",
                Box::new(|r, _| r.spec.data_source.repository = None),
                "spec.dataSource.repository",
                "required",
            ),
            (
                "empty repository",
                Box::new(|r, _| r.spec.data_source.repository = Some(String::new())),
                "spec.dataSource.repository",
                "required",
            ),
            (
                "no snapshot",
                Box::new(|r, _| r.spec.data_source.snapshot = None),
                "spec.dataSource.snapshot",
                "required: a Snapshot name or latest",
            ),
            (
                "duplicate component",
                Box::new(|r, _| r.spec.data_source.components = vec!["dump".into(), "dump".into()]),
                "spec.dataSource.components[1]",
                "duplicate value \"dump\"",
            ),
            (
                "hook template not found",
                Box::new(|r, _| {
                    r.spec.hooks = Some(RestoreHooks {
                        pre_restore: vec![hook(None, "missing")],
                        post_restore: vec![],
                    })
                }),
                "spec.hooks.preRestore[0].hookTemplate",
                "HookTemplate demo/missing not found",
            ),
            (
                "hook template not allowed",
                Box::new(|r, c| {
                    c.hook_templates.push(hook_template("infra", "private"));
                    r.spec.hooks = Some(RestoreHooks {
                        pre_restore: vec![],
                        post_restore: vec![hook(Some("infra"), "private")],
                    })
                }),
                "spec.hooks.postRestore[0].hookTemplate",
                "namespace demo is not allowed to refer HookTemplate infra/private: check its usagePolicy",
            ),
            (
                "backup task used for a restore",
                Box::new(|r, _| {
                    if let Some(a) = &mut r.spec.addon {
                        a.tasks[0].name = "logical-backup".into();
                    }
                }),
                "spec.addon.tasks[0].name",
                "Addon \"workload-addon\" has no restore task \"logical-backup\" (its restore tasks: logical-backup-restore)",
            ),
            (
                "unknown restore parameter",
                Box::new(|r, _| {
                    if let Some(a) = &mut r.spec.addon {
                        a.tasks[0].params = Some(serde_json::json!({"paths": "/data"}));
                    }
                }),
                "spec.addon.tasks[0].params.paths",
                "unknown parameter: task \"logical-backup-restore\" of Addon \"workload-addon\" takes include, exclude",
            ),
            (
                "addon not found",
                Box::new(|_, c| c.addons.clear()),
                "spec.addon.name",
                "Addon \"workload-addon\" not found",
            ),
        ];
        for (name, change, path, message) in cases {
            let (mut r, mut c) = (restore(), demo_catalog());
            change(&mut r, &mut c);
            let got = errors(validate_restore_session(&r, None, &c));
            assert!(
                got.len() == 1 && got[0].path == path && got[0].message.contains(message),
                "{name}: expected {path}: {message}, got {got:?}"
            );
        }
    }
}
