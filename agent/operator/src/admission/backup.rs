//! Validation of BackupConfiguration (reference §3.5) and BackupSession (§3.6).

use std::collections::BTreeMap;

use stowaway_api::backup_configuration::{BackupConfigurationSpec, Session};
use stowaway_api::common::ObjectReference;
use stowaway_api::{BackupBatch, BackupConfiguration, BackupSession};

use super::checks::{
    TaskKind, check_addon, check_duration, check_hooks, check_names, check_schedule, list_or_none,
};
use super::usage::{Referable, check_reference, reference_namespace};
use super::{Catalog, FieldError, Rejection, namespace_of};

/// Validates a BackupBatch: its own rules (members named once, sessions naming members, a
/// repository per member) and, for every member of every session, the rules of a
/// BackupConfiguration (backends, schedule, addon and params, hooks, repositories), reported
/// under the batch's field paths.
pub fn validate_backup_batch(
    new: &BackupBatch,
    _old: Option<&BackupBatch>,
    catalog: &Catalog,
) -> Result<(), Rejection> {
    let mut errors: Vec<FieldError> = crate::backup_batch::validate(new)
        .into_iter()
        .map(|p| match p.split_once(": ") {
            Some((path, message)) => FieldError::new(path, message),
            None => FieldError::new("spec", p),
        })
        .collect();
    // One session per (session, member), validated as a configuration's sessions.
    let mut origin = Vec::new();
    let mut sessions = Vec::new();
    for (i, session) in new.spec.sessions.iter().enumerate() {
        for (k, member) in session.targets.iter().enumerate() {
            origin.push((i, k));
            sessions.push(Session {
                name: format!("{}-{}", session.name, member.name),
                scheduler: session.scheduler.clone(),
                hooks: session.hooks.clone(),
                retry_config: session.retry_config.clone(),
                backup_timeout: session.backup_timeout.clone(),
                session_history_limit: session.session_history_limit,
                addon: member.addon.clone(),
                repositories: member.repositories.clone(),
            });
        }
    }
    let config = BackupConfiguration {
        metadata: new.metadata.clone(),
        spec: BackupConfigurationSpec {
            target: new.spec.targets.first().map(|t| t.app_ref.clone()),
            backends: new.spec.backends.clone(),
            sessions,
            paused: new.spec.paused,
        },
        status: None,
    };
    if let Err(Rejection(found)) = validate_backup_configuration(&config, None, catalog) {
        for error in found {
            let path = batch_path(&error.path, &origin);
            let error = FieldError::new(path, error.message);
            if !errors.contains(&error) && !error.path.ends_with(".name") {
                errors.push(error);
            }
        }
    }
    Rejection::check(errors)
}

/// `spec.sessions[n]...` of the flattened sessions, as the batch's path: member fields
/// (`addon`, `repositories`) under `spec.sessions[i].targets[k]`, the others under
/// `spec.sessions[i]`.
fn batch_path(path: &str, origin: &[(usize, usize)]) -> String {
    let Some(rest) = path.strip_prefix("spec.sessions[") else {
        return path.to_owned();
    };
    let Some((index, rest)) = rest.split_once(']') else {
        return path.to_owned();
    };
    let Some((i, k)) = index.parse::<usize>().ok().and_then(|n| origin.get(n)) else {
        return path.to_owned();
    };
    if rest.starts_with(".addon") || rest.starts_with(".repositories") {
        format!("spec.sessions[{i}].targets[{k}]{rest}")
    } else {
        format!("spec.sessions[{i}]{rest}")
    }
}

/// Validates a BackupConfiguration (after defaulting).
///
/// Backends: at least one, each with a unique name, a `storageRef` and a `retentionPolicy`
/// that exist and whose usage policies allow this namespace. Sessions: at least one, unique
/// names, a scheduler whose schedule parses, `backupTimeout` and `retryConfig.delay` that
/// parse as durations, an addon whose backup tasks exist with fitting `params`, hooks whose
/// templates exist and allow this namespace, and at least one repository. Repositories:
/// unique names across sessions, a `backend` that names a backend, a `directory`, no two on
/// the same backend and directory, and an existing Repository of the same name must be on the
/// same storage.
pub fn validate_backup_configuration(
    new: &BackupConfiguration,
    _old: Option<&BackupConfiguration>,
    catalog: &Catalog,
) -> Result<(), Rejection> {
    let mut errors = Vec::new();
    let namespace = namespace_of(&new.metadata);
    let spec = &new.spec;

    if spec.backends.is_empty() {
        errors.push(FieldError::new(
            "spec.backends",
            format!(
                "at least one backend is required (no default BackupStorage applies to namespace {namespace})"
            ),
        ));
    }
    check_names(
        spec.backends
            .iter()
            .enumerate()
            .map(|(i, b)| (format!("spec.backends[{i}].name"), b.name.as_str())),
        &mut errors,
    );
    for (i, backend) in spec.backends.iter().enumerate() {
        let path = format!("spec.backends[{i}]");
        match &backend.storage_ref {
            None => errors.push(FieldError::new(format!("{path}.storageRef"), "required")),
            Some(reference) => check_reference(
                &format!("{path}.storageRef"),
                Referable::BackupStorage,
                reference,
                namespace,
                catalog,
                &mut errors,
            ),
        }
        match &backend.retention_policy {
            None => errors.push(FieldError::new(
                format!("{path}.retentionPolicy"),
                format!("required (no default RetentionPolicy applies to namespace {namespace})"),
            )),
            Some(reference) => check_reference(
                &format!("{path}.retentionPolicy"),
                Referable::RetentionPolicy,
                reference,
                namespace,
                catalog,
                &mut errors,
            ),
        }
    }

    if spec.sessions.is_empty() {
        errors.push(FieldError::new(
            "spec.sessions",
            "at least one session is required",
        ));
    }
    check_names(
        spec.sessions
            .iter()
            .enumerate()
            .map(|(i, s)| (format!("spec.sessions[{i}].name"), s.name.as_str())),
        &mut errors,
    );
    let backend_names: Vec<&str> = spec.backends.iter().map(|b| b.name.as_str()).collect();
    // Repository names and (backend, directory) pairs already used, across sessions.
    let mut repository_names = Vec::new();
    let mut directories: BTreeMap<(&str, &str), &str> = BTreeMap::new();
    for (i, session) in spec.sessions.iter().enumerate() {
        let path = format!("spec.sessions[{i}]");
        match &session.scheduler {
            None => errors.push(FieldError::new(format!("{path}.scheduler"), "required")),
            Some(scheduler) => {
                if let Err(message) =
                    check_schedule(&scheduler.schedule, scheduler.time_zone.as_deref())
                {
                    errors.push(FieldError::new(
                        format!("{path}.scheduler.schedule"),
                        message,
                    ));
                }
            }
        }
        if let Some(timeout) = &session.backup_timeout
            && let Err(message) = check_duration(timeout)
        {
            errors.push(FieldError::new(format!("{path}.backupTimeout"), message));
        }
        if let Some(delay) = session.retry_config.as_ref().and_then(|r| r.delay.as_ref())
            && let Err(message) = check_duration(delay)
        {
            errors.push(FieldError::new(
                format!("{path}.retryConfig.delay"),
                message,
            ));
        }
        match &session.addon {
            None => errors.push(FieldError::new(format!("{path}.addon"), "required")),
            Some(addon) => check_addon(
                &format!("{path}.addon"),
                addon,
                TaskKind::Backup,
                catalog,
                &mut errors,
            ),
        }
        if let Some(hooks) = &session.hooks {
            check_hooks(
                &format!("{path}.hooks.preBackup"),
                &hooks.pre_backup,
                namespace,
                catalog,
                &mut errors,
            );
            check_hooks(
                &format!("{path}.hooks.postBackup"),
                &hooks.post_backup,
                namespace,
                catalog,
                &mut errors,
            );
        }

        if session.repositories.is_empty() {
            errors.push(FieldError::new(
                format!("{path}.repositories"),
                "at least one repository is required",
            ));
        }
        for (j, repository) in session.repositories.iter().enumerate() {
            let path = format!("{path}.repositories[{j}]");
            repository_names.push((format!("{path}.name"), repository.name.as_str()));
            let backend_name = repository.backend.as_deref().unwrap_or("");
            let backend = spec.backends.iter().find(|b| b.name == backend_name);
            // Without backends, `spec.backends` already says what is wrong.
            if backend.is_none() && !spec.backends.is_empty() {
                let message = if backend_name.is_empty() {
                    format!("required (backends: {})", list_or_none(&backend_names))
                } else {
                    format!(
                        "unknown backend {backend_name:?} (backends: {})",
                        list_or_none(&backend_names)
                    )
                };
                errors.push(FieldError::new(format!("{path}.backend"), message));
            }
            let directory = repository.directory.trim_matches('/');
            if repository.directory.is_empty() {
                errors.push(FieldError::new(format!("{path}.directory"), "required"));
            } else if let Some(other) = directories.get(&(backend_name, directory)) {
                errors.push(FieldError::new(
                    format!("{path}.directory"),
                    format!(
                        "directory {:?} of backend {backend_name:?} is already used by repository {other:?}",
                        repository.directory
                    ),
                ));
            } else {
                directories.insert((backend_name, directory), repository.name.as_str());
            }
            if let Some(storage) = backend.and_then(|b| b.storage_ref.as_ref())
                && !repository.name.is_empty()
                && let Some(existing) = catalog.repository(namespace, &repository.name)
            {
                let wanted = qualified(storage, namespace);
                let has = qualified(&existing.spec.storage_ref, namespace);
                if wanted != has {
                    errors.push(FieldError::new(
                        format!("{path}.name"),
                        format!(
                            "Repository {namespace}/{} already exists on BackupStorage {has}, not {wanted}: choose another name",
                            repository.name
                        ),
                    ));
                }
            }
        }
    }
    check_names(repository_names, &mut errors);
    Rejection::check(errors)
}

/// `namespace/name` of a reference made from `namespace`.
fn qualified(reference: &ObjectReference, namespace: &str) -> String {
    format!(
        "{}/{}",
        reference_namespace(reference, namespace),
        reference.name
    )
}

/// The kinds that start BackupSessions.
const INVOKER_KINDS: [&str; 2] = ["BackupConfiguration", "BackupBatch"];

/// Validates a BackupSession: its spec never changes after creation, and its invoker is a
/// named BackupConfiguration (or BackupBatch).
pub fn validate_backup_session(
    new: &BackupSession,
    old: Option<&BackupSession>,
    _catalog: &Catalog,
) -> Result<(), Rejection> {
    let mut errors = Vec::new();
    if let Some(old) = old
        && old.spec != new.spec
    {
        errors.push(FieldError::new("spec", "spec can not be updated"));
    }
    let invoker = &new.spec.invoker;
    if !INVOKER_KINDS.contains(&invoker.kind.as_str()) {
        errors.push(FieldError::new(
            "spec.invoker.kind",
            format!(
                "unsupported value {:?}: supported values are BackupConfiguration, BackupBatch",
                invoker.kind
            ),
        ));
    }
    if invoker.name.is_empty() {
        errors.push(FieldError::new("spec.invoker.name", "required"));
    }
    Rejection::check(errors)
}

#[cfg(test)]
mod tests {
    use stowaway_api::backup_configuration::{
        BackupHooks, RepositoryInfo, RetryConfig, SchedulerSpec,
    };
    use stowaway_api::backup_session::{BackupSessionSpec, BackupSessionStatus};
    use stowaway_api::common::{
        BackendReference, FromNamespaces, HookInfo, TypedLocalObjectReference,
    };
    use stowaway_api::repository::RepositorySpec;
    use stowaway_api::{Repository, backup_session::BackupSessionPhase};

    use super::super::fixtures::{
        backup_configuration, builtin_volume, demo_catalog, errors, from, hook_template, meta,
        policy, storage,
    };
    use super::*;

    type Change = Box<dyn Fn(&mut BackupConfiguration, &mut Catalog)>;

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

    fn second_repository(bc: &mut BackupConfiguration, name: &str, directory: &str) {
        let mut r = bc.spec.sessions[0].repositories[0].clone();
        r.name = name.into();
        r.directory = directory.into();
        bc.spec.sessions[0].repositories.push(r);
    }

    fn second_session(bc: &mut BackupConfiguration, name: &str) {
        let mut s = bc.spec.sessions[0].clone();
        s.name = name.into();
        s.repositories[0].name = format!("{name}-repo");
        s.repositories[0].directory = format!("/{name}");
        bc.spec.sessions.push(s);
    }

    fn accepted_cases() -> Vec<(&'static str, Change)> {
        vec![
            ("the fixture", Box::new(|_, _| {})),
            (
                "storage and policy of another namespace that allow all",
                Box::new(|bc, c| {
                    let mut s = storage("infra", "shared");
                    s.spec.usage_policy = from(FromNamespaces::All);
                    let mut p = policy("infra", "keep");
                    p.spec.usage_policy = from(FromNamespaces::All);
                    c.backup_storages.push(s);
                    c.retention_policies.push(p);
                    bc.spec.backends[0].storage_ref = Some(ObjectReference {
                        namespace: Some("infra".into()),
                        name: "shared".into(),
                    });
                    bc.spec.backends[0].retention_policy = Some(ObjectReference {
                        namespace: Some("infra".into()),
                        name: "keep".into(),
                    });
                }),
            ),
            (
                "two backends, the same directory on each",
                Box::new(|bc, _| {
                    let mut b = bc.spec.backends[0].clone();
                    b.name = "second".into();
                    bc.spec.backends.push(b);
                    second_repository(bc, "copy", "/app");
                    bc.spec.sessions[0].repositories[1].backend = Some("second".into());
                }),
            ),
            (
                "two sessions",
                Box::new(|bc, _| second_session(bc, "weekly")),
            ),
            (
                "a built-in addon under its KubeStash name, without an Addon object",
                Box::new(|bc, c| {
                    c.addons.clear();
                    c.builtin_addons = vec![builtin_volume()];
                    if let Some(a) = &mut bc.spec.sessions[0].addon {
                        a.tasks[0].params = Some(serde_json::json!({"exclude": "*.tmp"}));
                    }
                }),
            ),
            (
                "a built-in addon by its own name",
                Box::new(|bc, c| {
                    c.builtin_addons = vec![builtin_volume()];
                    if let Some(a) = &mut bc.spec.sessions[0].addon {
                        a.name = "volume".into();
                        a.tasks[0].params = None;
                    }
                }),
            ),
            (
                "durations and hooks",
                Box::new(|bc, _| {
                    let s = &mut bc.spec.sessions[0];
                    s.backup_timeout = Some("2h".into());
                    s.retry_config = Some(RetryConfig {
                        max_retry: Some(2),
                        delay: Some("30s".into()),
                    });
                    s.hooks = Some(BackupHooks {
                        pre_backup: vec![hook(None, "notify")],
                        post_backup: vec![hook(Some("demo"), "notify")],
                    });
                }),
            ),
            (
                "an existing repository on the same storage",
                Box::new(|_, c| {
                    c.repositories.push(Repository {
                        metadata: meta("demo", "app-repo"),
                        spec: RepositorySpec {
                            storage_ref: ObjectReference {
                                namespace: Some("demo".into()),
                                name: "s3".into(),
                            },
                            path: "/app".into(),
                            ..RepositorySpec::default()
                        },
                        status: None,
                    });
                }),
            ),
        ]
    }

    #[test]
    fn backup_configuration_accepted() {
        for (name, change) in accepted_cases() {
            let (mut bc, mut c) = (backup_configuration(), demo_catalog());
            change(&mut bc, &mut c);
            assert_eq!(
                validate_backup_configuration(&bc, None, &c),
                Ok(()),
                "{name}"
            );
        }
    }

    fn rejected_cases() -> Vec<(&'static str, Change, &'static str, &'static str)> {
        vec![
            (
                "no backends",
                Box::new(|bc, _| {
                    bc.spec.backends.clear();
                    bc.spec.sessions[0].repositories[0].backend = None;
                }),
                "spec.backends",
                "at least one backend is required (no default BackupStorage applies to namespace demo)",
            ),
            (
                "duplicate backend name",
                Box::new(|bc, _| {
                    let b = bc.spec.backends[0].clone();
                    bc.spec.backends.push(b);
                }),
                "spec.backends[1].name",
                "duplicate value \"s3\"",
            ),
            (
                "backend without a name",
                Box::new(|bc, _| {
                    bc.spec.backends.push(BackendReference {
                        name: String::new(),
                        ..bc.spec.backends[0].clone()
                    });
                }),
                "spec.backends[1].name",
                "required",
            ),
            (
                "backend without storageRef",
                Box::new(|bc, _| bc.spec.backends[0].storage_ref = None),
                "spec.backends[0].storageRef",
                "required",
            ),
            (
                "backend without retentionPolicy",
                Box::new(|bc, _| bc.spec.backends[0].retention_policy = None),
                "spec.backends[0].retentionPolicy",
                "required (no default RetentionPolicy applies to namespace demo)",
            ),
            (
                "storage not found",
                Box::new(|_, c| c.backup_storages.clear()),
                "spec.backends[0].storageRef",
                "BackupStorage demo/s3 not found",
            ),
            (
                "policy not found",
                Box::new(|_, c| c.retention_policies.clear()),
                "spec.backends[0].retentionPolicy",
                "RetentionPolicy demo/keep not found",
            ),
            (
                "storage of another namespace that does not allow this one",
                Box::new(|bc, c| {
                    c.backup_storages.push(storage("infra", "private"));
                    bc.spec.backends[0].storage_ref = Some(ObjectReference {
                        namespace: Some("infra".into()),
                        name: "private".into(),
                    });
                }),
                "spec.backends[0].storageRef",
                "namespace demo is not allowed to refer BackupStorage infra/private: check its usagePolicy",
            ),
            (
                "policy of another namespace that does not allow this one",
                Box::new(|bc, c| {
                    c.retention_policies.push(policy("infra", "private"));
                    bc.spec.backends[0].retention_policy = Some(ObjectReference {
                        namespace: Some("infra".into()),
                        name: "private".into(),
                    });
                }),
                "spec.backends[0].retentionPolicy",
                "namespace demo is not allowed to refer RetentionPolicy infra/private: check its usagePolicy",
            ),
            (
                "no sessions",
                Box::new(|bc, _| bc.spec.sessions.clear()),
                "spec.sessions",
                "at least one session is required",
            ),
            (
                "session without a name",
                Box::new(|bc, _| bc.spec.sessions[0].name.clear()),
                "spec.sessions[0].name",
                "required",
            ),
            (
                "duplicate session name",
                Box::new(|bc, _| {
                    second_session(bc, "weekly");
                    bc.spec.sessions[1].name = "daily".into();
                }),
                "spec.sessions[1].name",
                "duplicate value \"daily\"",
            ),
            (
                "no scheduler",
                Box::new(|bc, _| bc.spec.sessions[0].scheduler = None),
                "spec.sessions[0].scheduler",
                "required",
            ),
            (
                "schedule does not parse",
                Box::new(|bc, _| {
                    bc.spec.sessions[0].scheduler = Some(SchedulerSpec {
                        schedule: "every day".into(),
                        ..SchedulerSpec::default()
                    })
                }),
                "spec.sessions[0].scheduler.schedule",
                "expected 5 fields (minute hour day-of-month month day-of-week), found 2",
            ),
            (
                "backupTimeout does not parse",
                Box::new(|bc, _| bc.spec.sessions[0].backup_timeout = Some("2 hours".into())),
                "spec.sessions[0].backupTimeout",
                "\"2 hours\": unknown unit",
            ),
            (
                "retry delay does not parse",
                Box::new(|bc, _| {
                    bc.spec.sessions[0].retry_config = Some(RetryConfig {
                        max_retry: None,
                        delay: Some("1d".into()),
                    })
                }),
                "spec.sessions[0].retryConfig.delay",
                "\"1d\": unknown unit \"d\"",
            ),
            (
                "no addon",
                Box::new(|bc, _| bc.spec.sessions[0].addon = None),
                "spec.sessions[0].addon",
                "required",
            ),
            (
                "addon without a name",
                Box::new(|bc, _| {
                    if let Some(a) = &mut bc.spec.sessions[0].addon {
                        a.name.clear();
                    }
                }),
                "spec.sessions[0].addon.name",
                "required",
            ),
            (
                "addon not found",
                Box::new(|_, c| c.addons.clear()),
                "spec.sessions[0].addon.name",
                "Addon \"workload-addon\" not found",
            ),
            (
                "task without a name",
                Box::new(|bc, _| {
                    if let Some(a) = &mut bc.spec.sessions[0].addon {
                        a.tasks[0].name.clear();
                    }
                }),
                "spec.sessions[0].addon.tasks[0].name",
                "required",
            ),
            (
                "unknown backup task",
                Box::new(|bc, _| {
                    if let Some(a) = &mut bc.spec.sessions[0].addon {
                        a.tasks[0].name = "manifest-backup".into();
                    }
                }),
                "spec.sessions[0].addon.tasks[0].name",
                "Addon \"workload-addon\" has no backup task \"manifest-backup\"",
            ),
            (
                "unknown parameter",
                Box::new(|bc, _| {
                    if let Some(a) = &mut bc.spec.sessions[0].addon {
                        a.tasks[0].params = Some(serde_json::json!({"paths": "/d", "path": "/d"}));
                    }
                }),
                "spec.sessions[0].addon.tasks[0].params.path",
                "unknown parameter: task \"logical-backup\" of Addon \"workload-addon\" takes paths, exclude, enableCache",
            ),
            (
                "a built-in addon checks the parameters it declares",
                Box::new(|_, c| {
                    c.addons.clear();
                    c.builtin_addons = vec![builtin_volume()];
                }),
                "spec.sessions[0].addon.tasks[0].params.paths",
                "unknown parameter: task \"logical-backup\" of Addon \"workload-addon\" takes exclude, restore-owner, overwrite",
            ),
            (
                "a built-in addon has no KubeStash-only tasks",
                Box::new(|bc, c| {
                    c.addons.clear();
                    c.builtin_addons = vec![builtin_volume()];
                    if let Some(a) = &mut bc.spec.sessions[0].addon {
                        a.tasks[0].name = "volume-snapshot".into();
                        a.tasks[0].params = None;
                    }
                }),
                "spec.sessions[0].addon.tasks[0].name",
                "Addon \"workload-addon\" has no backup task \"volume-snapshot\" (its backup tasks: logical-backup)",
            ),
            (
                "required parameter missing",
                Box::new(|bc, _| {
                    if let Some(a) = &mut bc.spec.sessions[0].addon {
                        a.tasks[0].params = None;
                    }
                }),
                "spec.sessions[0].addon.tasks[0].params.paths",
                "required by task \"logical-backup\" of Addon \"workload-addon\"",
            ),
            (
                "hook template not found",
                Box::new(|bc, _| {
                    bc.spec.sessions[0].hooks = Some(BackupHooks {
                        pre_backup: vec![],
                        post_backup: vec![hook(None, "missing")],
                    })
                }),
                "spec.sessions[0].hooks.postBackup[0].hookTemplate",
                "HookTemplate demo/missing not found",
            ),
            (
                "hook template not allowed",
                Box::new(|bc, c| {
                    c.hook_templates.push(hook_template("infra", "private"));
                    bc.spec.sessions[0].hooks = Some(BackupHooks {
                        pre_backup: vec![hook(Some("infra"), "private")],
                        post_backup: vec![],
                    })
                }),
                "spec.sessions[0].hooks.preBackup[0].hookTemplate",
                "namespace demo is not allowed to refer HookTemplate infra/private: check its usagePolicy",
            ),
            (
                "no repositories",
                Box::new(|bc, _| bc.spec.sessions[0].repositories.clear()),
                "spec.sessions[0].repositories",
                "at least one repository is required",
            ),
            (
                "repository on an unknown backend",
                Box::new(|bc, _| bc.spec.sessions[0].repositories[0].backend = Some("gcs".into())),
                "spec.sessions[0].repositories[0].backend",
                "unknown backend \"gcs\" (backends: s3)",
            ),
            (
                "repository without a backend",
                Box::new(|bc, _| bc.spec.sessions[0].repositories[0].backend = None),
                "spec.sessions[0].repositories[0].backend",
                "required (backends: s3)",
            ),
            (
                "repository without a directory",
                Box::new(|bc, _| bc.spec.sessions[0].repositories[0].directory.clear()),
                "spec.sessions[0].repositories[0].directory",
                "required",
            ),
            (
                "repository without a name",
                Box::new(|bc, _| bc.spec.sessions[0].repositories[0].name.clear()),
                "spec.sessions[0].repositories[0].name",
                "required",
            ),
            (
                "duplicate repository name across sessions",
                Box::new(|bc, _| {
                    second_session(bc, "weekly");
                    bc.spec.sessions[1].repositories[0].name = "app-repo".into();
                }),
                "spec.sessions[1].repositories[0].name",
                "duplicate value \"app-repo\"",
            ),
            (
                "two repositories in one directory of one backend",
                Box::new(|bc, _| second_repository(bc, "copy", "app/")),
                "spec.sessions[0].repositories[1].directory",
                "directory \"app/\" of backend \"s3\" is already used by repository \"app-repo\"",
            ),
            (
                "an existing repository on another storage",
                Box::new(|_, c| {
                    c.repositories.push(Repository {
                        metadata: meta("demo", "app-repo"),
                        spec: RepositorySpec {
                            storage_ref: ObjectReference {
                                namespace: None,
                                name: "gcs".into(),
                            },
                            path: "/app".into(),
                            ..RepositorySpec::default()
                        },
                        status: None,
                    });
                }),
                "spec.sessions[0].repositories[0].name",
                "Repository demo/app-repo already exists on BackupStorage demo/gcs, not demo/s3: choose another name",
            ),
        ]
    }

    #[test]
    fn backup_configuration_rejected() {
        for (name, change, path, message) in rejected_cases() {
            let (mut bc, mut c) = (backup_configuration(), demo_catalog());
            change(&mut bc, &mut c);
            let got = errors(validate_backup_configuration(&bc, None, &c));
            assert!(
                got.len() == 1 && got[0].path == path && got[0].message.contains(message),
                "{name}: expected {path}: {message}, got {got:?}"
            );
        }
    }

    #[test]
    fn backup_configuration_reports_every_problem() {
        let mut bc = backup_configuration();
        bc.spec.backends[0].retention_policy = None;
        bc.spec.sessions[0].scheduler = None;
        bc.spec.sessions[0].repositories.push(RepositoryInfo {
            name: "app-repo".into(),
            backend: Some("s3".into()),
            directory: "/other".into(),
            ..RepositoryInfo::default()
        });
        let paths: Vec<String> = errors(validate_backup_configuration(&bc, None, &demo_catalog()))
            .into_iter()
            .map(|e| e.path)
            .collect();
        assert_eq!(
            paths,
            vec![
                "spec.backends[0].retentionPolicy",
                "spec.sessions[0].scheduler",
                "spec.sessions[0].repositories[1].name",
            ]
        );
    }

    fn session() -> BackupSession {
        BackupSession {
            metadata: meta("demo", "app-daily-1"),
            spec: BackupSessionSpec {
                invoker: TypedLocalObjectReference {
                    api_group: Some("core.stowaway.dev".into()),
                    kind: "BackupConfiguration".into(),
                    name: "app".into(),
                },
                session: "daily".into(),
                ..BackupSessionSpec::default()
            },
            status: None,
        }
    }

    #[test]
    fn backup_session_rules() {
        let c = Catalog::default();
        let old = session();
        assert_eq!(validate_backup_session(&old, None, &c), Ok(()));
        let mut batch = session();
        batch.spec.invoker.kind = "BackupBatch".into();
        assert_eq!(validate_backup_session(&batch, None, &c), Ok(()));
        // Status and metadata may change.
        let mut running = old.clone();
        running.status = Some(BackupSessionStatus {
            phase: Some(BackupSessionPhase::Running),
            ..BackupSessionStatus::default()
        });
        running.metadata.labels = Some([("a".to_owned(), "b".to_owned())].into());
        assert_eq!(validate_backup_session(&running, Some(&old), &c), Ok(()));

        let mut changed = old.clone();
        changed.spec.retry_left = Some(3);
        let got = errors(validate_backup_session(&changed, Some(&old), &c));
        assert_eq!(
            got,
            vec![FieldError::new("spec", "spec can not be updated")]
        );

        let mut wrong = session();
        wrong.spec.invoker.kind = "RestoreSession".into();
        wrong.spec.invoker.name.clear();
        assert_eq!(
            errors(validate_backup_session(&wrong, None, &c)),
            vec![
                FieldError::new(
                    "spec.invoker.kind",
                    "unsupported value \"RestoreSession\": supported values are BackupConfiguration, BackupBatch"
                ),
                FieldError::new("spec.invoker.name", "required"),
            ]
        );
    }
}
