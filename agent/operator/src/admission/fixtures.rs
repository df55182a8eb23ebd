//! Test builders: small valid objects and a catalog, which each test changes in one place.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use stowaway_api::addon::{AddonSpec, Task};
use stowaway_api::backup_configuration::{
    BackupConfigurationSpec, RepositoryInfo, SchedulerSpec, Session,
};
use stowaway_api::backup_storage::{Backend, BackupStorageSpec, Provider, S3Spec};
use stowaway_api::common::{
    AddonInfo, AllowedNamespaces, BackendReference, FromNamespaces, ObjectReference,
    ParameterDefinition, TaskReference, UsagePolicy,
};
use stowaway_api::hook_template::{HookExecutor, HookExecutorType, HookTemplateSpec};
use stowaway_api::retention_policy::{RetentionPolicySpec, SuccessfulSnapshotsKeepPolicy};
use stowaway_api::{Addon, BackupConfiguration, BackupStorage, HookTemplate, RetentionPolicy};

use super::{Catalog, FieldError, Rejection};

/// Metadata `namespace/name`.
pub fn meta(namespace: &str, name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: Some(namespace.to_owned()),
        ..ObjectMeta::default()
    }
}

/// A usage policy with `from` and no selector.
pub fn from(from: FromNamespaces) -> Option<UsagePolicy> {
    Some(UsagePolicy {
        allowed_namespaces: AllowedNamespaces {
            from,
            selector: None,
        },
    })
}

/// An S3 storage `namespace/name` on bucket `name` at `https://s3.example.com`, usable from
/// its own namespace.
pub fn storage(namespace: &str, name: &str) -> BackupStorage {
    BackupStorage {
        metadata: meta(namespace, name),
        spec: BackupStorageSpec {
            storage: Backend {
                provider: Provider::S3,
                s3: Some(S3Spec {
                    endpoint: "https://s3.example.com".into(),
                    bucket: name.into(),
                    prefix: Some("backups".into()),
                    ..S3Spec::default()
                }),
                ..Backend::default()
            },
            usage_policy: from(FromNamespaces::Same),
            ..BackupStorageSpec::default()
        },
        status: None,
    }
}

/// A policy `namespace/name` keeping the last 5 snapshots, usable from its own namespace.
pub fn policy(namespace: &str, name: &str) -> RetentionPolicy {
    RetentionPolicy {
        metadata: meta(namespace, name),
        spec: RetentionPolicySpec {
            successful_snapshots: Some(SuccessfulSnapshotsKeepPolicy {
                last: Some(5),
                ..SuccessfulSnapshotsKeepPolicy::default()
            }),
            usage_policy: from(FromNamespaces::Same),
            ..RetentionPolicySpec::default()
        },
    }
}

/// An Operator hook `namespace/name` doing an HTTP GET.
pub fn hook_template(namespace: &str, name: &str) -> HookTemplate {
    HookTemplate {
        metadata: meta(namespace, name),
        spec: HookTemplateSpec {
            usage_policy: from(FromNamespaces::Same),
            action: Some(serde_json::json!({"httpGet": {"host": "example.com", "port": 80}})),
            executor: HookExecutor {
                type_: HookExecutorType::Operator,
                ..HookExecutor::default()
            },
            ..HookTemplateSpec::default()
        },
    }
}

/// A parameter definition.
pub fn param(name: &str, required: bool, default: Option<&str>) -> ParameterDefinition {
    ParameterDefinition {
        name: name.to_owned(),
        required: Some(required),
        default: default.map(str::to_owned),
        ..ParameterDefinition::default()
    }
}

/// Addon `workload-addon`: backup task `logical-backup` (`paths` required, `exclude`,
/// `enableCache` defaulting to true) and restore task `logical-backup-restore`
/// (`include`, `exclude`).
pub fn workload_addon() -> Addon {
    Addon {
        metadata: ObjectMeta {
            name: Some("workload-addon".into()),
            ..ObjectMeta::default()
        },
        spec: AddonSpec {
            backup_tasks: vec![Task {
                name: "logical-backup".into(),
                function: "workload-backup".into(),
                parameters: vec![
                    param("paths", true, None),
                    param("exclude", false, None),
                    param("enableCache", true, Some("true")),
                ],
                ..Task::default()
            }],
            restore_tasks: vec![Task {
                name: "logical-backup-restore".into(),
                function: "workload-restore".into(),
                parameters: vec![param("include", false, None), param("exclude", false, None)],
                ..Task::default()
            }],
            ..AddonSpec::default()
        },
        status: None,
    }
}

/// The built-in `volume` addon as it describes itself (its parameters: `exclude`,
/// `restore-owner`, `overwrite`, each with a default).
pub fn builtin_volume() -> crate::addon_registry::BuiltinAddon {
    use crate::addon_registry::{AddonParameter, BuiltinAddon};
    let param = |name: &str, kind: &str, default: &str| AddonParameter {
        name: name.into(),
        kind: kind.into(),
        description: format!("{name} of the volume addon"),
        default: Some(default.into()),
    };
    BuiltinAddon {
        name: "volume".into(),
        version: "0.1.0".into(),
        description: "Backs up and restores directories with their metadata".into(),
        digest: "ab".repeat(32),
        target_kinds: vec!["volume".into()],
        backup: true,
        restore: true,
        parameters: vec![
            param("exclude", "text-list", ""),
            param("restore-owner", "boolean", "true"),
            param("overwrite", "boolean", "true"),
        ],
    }
}

/// A catalog with the `workload-addon` and nothing else.
pub fn catalog() -> Catalog {
    Catalog {
        addons: vec![workload_addon()],
        ..Catalog::default()
    }
}

/// A catalog for BackupConfigurations in `demo`: storage `demo/s3`, policy `demo/keep`,
/// hook template `demo/notify` and the `workload-addon`.
pub fn demo_catalog() -> Catalog {
    let mut c = catalog();
    c.backup_storages.push(storage("demo", "s3"));
    c.retention_policies.push(policy("demo", "keep"));
    c.hook_templates.push(hook_template("demo", "notify"));
    c
}

/// A valid BackupConfiguration `demo/app`: backend `s3` (storage `demo/s3`, policy
/// `demo/keep`), session `daily` backing up `/data` into repository `app-repo`.
pub fn backup_configuration() -> BackupConfiguration {
    BackupConfiguration {
        metadata: meta("demo", "app"),
        spec: BackupConfigurationSpec {
            backends: vec![BackendReference {
                name: "s3".into(),
                storage_ref: Some(ObjectReference {
                    namespace: None,
                    name: "s3".into(),
                }),
                retention_policy: Some(ObjectReference {
                    namespace: Some("demo".into()),
                    name: "keep".into(),
                }),
            }],
            sessions: vec![Session {
                name: "daily".into(),
                scheduler: Some(SchedulerSpec {
                    schedule: "0 2 * * *".into(),
                    ..SchedulerSpec::default()
                }),
                addon: Some(AddonInfo {
                    name: "workload-addon".into(),
                    tasks: vec![TaskReference {
                        name: "logical-backup".into(),
                        params: Some(serde_json::json!({"paths": "/data"})),
                        ..TaskReference::default()
                    }],
                    ..AddonInfo::default()
                }),
                repositories: vec![RepositoryInfo {
                    name: "app-repo".into(),
                    backend: Some("s3".into()),
                    directory: "/app".into(),
                    ..RepositoryInfo::default()
                }],
                ..Session::default()
            }],
            ..BackupConfigurationSpec::default()
        },
        status: None,
    }
}

/// The field errors of a validation result (none when it passed).
pub fn errors(result: Result<(), Rejection>) -> Vec<FieldError> {
    result.err().map(|r| r.0).unwrap_or_default()
}

/// Asserts `result` is exactly one error at `path` whose message contains `message`.
#[track_caller]
pub fn assert_rejected(result: Result<(), Rejection>, path: &str, message: &str) {
    let errors = errors(result);
    assert!(
        errors.len() == 1 && errors[0].path == path && errors[0].message.contains(message),
        "expected one error at {path} containing {message:?}, got {errors:?}"
    );
}
