//! Validation of Addon (reference §3.9, plus Stowaway's `spec.source`) and of the addon a
//! configuration refers to, for the reconcilers.

use stowaway_api::Addon;
use stowaway_api::common::AddonInfo;

use super::checks::{TaskKind, check_addon, check_names};
use super::{Catalog, FieldError, Rejection};

/// Validates an Addon: task names given and unique among the backup tasks and among the
/// restore tasks, each task names a Function, and `spec.source` (if any) has an `https://`
/// URL and a 64-hex-digit SHA-256 ([`crate::addon::validate_source`]).
pub fn validate_addon(
    new: &Addon,
    _old: Option<&Addon>,
    _catalog: &Catalog,
) -> Result<(), Rejection> {
    let mut errors = Vec::new();
    for (field, tasks) in [
        ("backupTasks", &new.spec.backup_tasks),
        ("restoreTasks", &new.spec.restore_tasks),
    ] {
        check_names(
            tasks
                .iter()
                .enumerate()
                .map(|(i, t)| (format!("spec.{field}[{i}].name"), t.name.as_str())),
            &mut errors,
        );
        for (i, task) in tasks.iter().enumerate() {
            if task.function.is_empty() {
                errors.push(FieldError::new(
                    format!("spec.{field}[{i}].function"),
                    "required",
                ));
            }
        }
    }
    if let Some(source) = &new.spec.source {
        errors.extend(crate::addon::validate_source(source));
    }
    Rejection::check(errors)
}

/// Checks the addon reference at `path` (`spec.sessions[0].addon`) against the Addon it names
/// in `catalog` (an object, or a built-in addon): its task names exist among the backup tasks
/// (`restore`: the restore tasks) and each task's `params` fit the task's parameters. The
/// admission webhook runs the same check; the reconcilers call this one because the webhook
/// may be off.
pub fn check_addon_reference(
    path: &str,
    addon: &AddonInfo,
    restore: bool,
    catalog: &Catalog,
) -> Vec<FieldError> {
    let kind = if restore {
        TaskKind::Restore
    } else {
        TaskKind::Backup
    };
    let mut errors = Vec::new();
    check_addon(path, addon, kind, catalog, &mut errors);
    errors
}

#[cfg(test)]
mod tests {
    use stowaway_api::addon::{AddonSource, Task};

    use super::*;

    fn task(name: &str, function: &str) -> Task {
        Task {
            name: name.into(),
            function: function.into(),
            ..Task::default()
        }
    }

    #[test]
    fn addon_table() {
        let sha = "ab".repeat(32);
        let mut good = Addon::new("redis", Default::default());
        good.spec.backup_tasks = vec![task("logical-backup", "redis")];
        good.spec.restore_tasks = vec![task("logical-backup-restore", "redis")];
        good.spec.source = Some(AddonSource {
            url: "https://addons.example/redis.wasm".into(),
            sha256: sha.clone(),
        });
        assert_eq!(validate_addon(&good, None, &Catalog::default()), Ok(()));

        let mut bad = good.clone();
        bad.spec.backup_tasks.push(task("logical-backup", ""));
        bad.spec.source = Some(AddonSource {
            url: "http://addons.example/redis.wasm".into(),
            sha256: String::new(),
        });
        let errors = validate_addon(&bad, None, &Catalog::default())
            .expect_err("rejected")
            .0;
        let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "spec.backupTasks[1].name",
                "spec.backupTasks[1].function",
                "spec.source.url",
                "spec.source.sha256"
            ],
            "{errors:?}"
        );
        assert_eq!(errors[0].message, "duplicate value \"logical-backup\"");
    }
}
