//! The registry of addons: the built-in ones as `Addon` and `Function` objects, and how an
//! addon name in a BackupConfiguration or RestoreSession is resolved.
//!
//! The `stowaway` binary loads each built-in addon component at start, asks it to describe
//! itself and hands the descriptions ([`BuiltinAddon`]) to the operator, which does not run
//! addons itself. From a description this module makes:
//!
//! - an [`Addon`] named like the addon (`volume`, `postgres`, `mysql`) whose tasks carry
//!   KubeStash's names: backup task [`BACKUP_TASK`] (`logical-backup`) and restore task
//!   [`RESTORE_TASK`] (`logical-backup-restore`), each with the addon's parameters;
//! - a [`Function`] of the same name for those tasks, whose image is the executor image
//!   (the built-in addons are embedded in it).
//!
//! Both are labelled `app.kubernetes.io/managed-by` and annotated with the addon's version
//! and the SHA-256 of its component; the leader creates them or brings them up to date
//! ([`install`]). An object of that name without the label belongs to a person and is left
//! alone. The KubeStash names (`workload-addon`, `pvc-addon`, `postgres-addon`,
//! `mysql-addon`) get no objects of their own: [`resolve`] maps them onto the built-in
//! addon unless an Addon object of that very name exists (such as KubeStash's catalog).

use std::borrow::Cow;
use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use stowaway_api::addon::{AddonSpec, Task};
use stowaway_api::common::{Driver, ParameterDefinition};
use stowaway_api::function::FunctionSpec;
use stowaway_api::{Addon, Function};

use crate::names;

/// Name of the backup task of every built-in addon (KubeStash's name).
pub const BACKUP_TASK: &str = "logical-backup";
/// Name of the restore task of every built-in addon (KubeStash's name).
pub const RESTORE_TASK: &str = "logical-backup-restore";

/// The restore task that reads what a backup task wrote, by KubeStash's names:
/// `manifest-backup` → `manifest-restore`, any other `X` → `X-restore` (`logical-backup` →
/// `logical-backup-restore`, `volume-snapshot` → `volume-snapshot-restore`).
pub fn restore_task_for(backup_task: &str) -> String {
    match backup_task {
        "manifest-backup" => "manifest-restore".to_owned(),
        other => format!("{other}-restore"),
    }
}

/// An addon reference of a backup (name and tasks with their params) turned into the one
/// that restores it: each task replaced by [`restore_task_for`] it.
pub fn restore_addon(addon: &stowaway_api::common::AddonInfo) -> stowaway_api::common::AddonInfo {
    use stowaway_api::common::{AddonInfo, TaskReference};
    AddonInfo {
        name: addon.name.clone(),
        tasks: addon
            .tasks
            .iter()
            .map(|t| TaskReference {
                name: restore_task_for(&t.name),
                params: t.params.clone(),
                ..TaskReference::default()
            })
            .collect(),
        ..AddonInfo::default()
    }
}
/// Annotation: the version of the addon an object was made from.
pub const VERSION_ANNOTATION: &str = "stowaway.dev/addon-version";
/// Annotation: `sha256:<hex>` of the addon's component.
pub const DIGEST_ANNOTATION: &str = "stowaway.dev/addon-digest";
/// Annotation: the addon's one-line description.
pub const DESCRIPTION_ANNOTATION: &str = "stowaway.dev/description";
/// Parameters the executor fills in from the target (the server of a database target) when
/// a configuration gives none; they are not `required` in the Addon although the addon
/// refuses a job without them.
pub const FROM_TARGET: &[&str] = &["host"];

/// A built-in addon as its component describes itself (the runtime's `AddonInfo`, without
/// the runtime).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BuiltinAddon {
    /// Name, such as `postgres`.
    pub name: String,
    /// Semantic version.
    pub version: String,
    /// One line for people.
    pub description: String,
    /// SHA-256 of the component, lower-case hex.
    pub digest: String,
    /// Kinds of target it backs up.
    pub target_kinds: Vec<String>,
    /// It writes snapshots.
    pub backup: bool,
    /// It restores them.
    pub restore: bool,
    /// Its parameters.
    pub parameters: Vec<AddonParameter>,
}

/// A parameter of a [`BuiltinAddon`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AddonParameter {
    /// Name.
    pub name: String,
    /// Value type: `text`, `integer`, `boolean`, `text-list` or `duration`.
    pub kind: String,
    /// One line for people.
    pub description: String,
    /// Value used when none is given; `None` makes the addon require one.
    pub default: Option<String>,
}

/// Whether the object carries the operator's `managed-by` label.
pub fn is_managed(meta: &ObjectMeta) -> bool {
    meta.labels
        .as_ref()
        .and_then(|l| l.get(names::MANAGED_BY_LABEL))
        .is_some_and(|v| v == names::MANAGED_BY)
}

fn metadata(addon: &BuiltinAddon) -> ObjectMeta {
    ObjectMeta {
        name: Some(addon.name.clone()),
        labels: Some(BTreeMap::from([(
            names::MANAGED_BY_LABEL.to_owned(),
            names::MANAGED_BY.to_owned(),
        )])),
        annotations: Some(BTreeMap::from([
            (VERSION_ANNOTATION.to_owned(), addon.version.clone()),
            (
                DIGEST_ANNOTATION.to_owned(),
                format!("sha256:{}", addon.digest),
            ),
            (DESCRIPTION_ANNOTATION.to_owned(), addon.description.clone()),
        ])),
        ..ObjectMeta::default()
    }
}

/// The Addon object of a built-in addon.
pub fn addon_object(addon: &BuiltinAddon) -> Addon {
    let parameters: Vec<ParameterDefinition> = addon
        .parameters
        .iter()
        .map(|p| ParameterDefinition {
            name: p.name.clone(),
            usage: Some(if p.kind.is_empty() {
                p.description.clone()
            } else {
                format!("{} ({})", p.description, p.kind)
            }),
            required: Some(p.default.is_none() && !FROM_TARGET.contains(&p.name.as_str())),
            default: p.default.clone(),
        })
        .collect();
    let task = |name: &str| Task {
        name: name.to_owned(),
        function: addon.name.clone(),
        driver: Some(Driver::Restic),
        parameters: parameters.clone(),
        ..Task::default()
    };
    Addon {
        metadata: metadata(addon),
        spec: AddonSpec {
            backup_tasks: addon
                .backup
                .then(|| task(BACKUP_TASK))
                .into_iter()
                .collect(),
            restore_tasks: addon
                .restore
                .then(|| task(RESTORE_TASK))
                .into_iter()
                .collect(),
            source: None,
        },
        status: None,
    }
}

/// The Function object of a built-in addon: the executor `image` runs it.
pub fn function_object(addon: &BuiltinAddon, image: &str) -> Function {
    Function {
        metadata: metadata(addon),
        spec: FunctionSpec {
            image: image.to_owned(),
            ..FunctionSpec::default()
        },
    }
}

/// The Addon an addon name refers to: the Addon object of that name, else the built-in addon
/// it names (also under its KubeStash name), as its generated object.
pub fn resolve<'a>(
    name: &str,
    objects: &'a [Addon],
    builtins: &[BuiltinAddon],
) -> Option<Cow<'a, Addon>> {
    if let Some(object) = objects
        .iter()
        .find(|a| a.metadata.name.as_deref() == Some(name))
    {
        return Some(Cow::Borrowed(object));
    }
    builtin(name, builtins).map(|b| Cow::Owned(addon_object(b)))
}

/// The built-in addon `name` refers to, directly or by its KubeStash name.
pub fn builtin<'a>(name: &str, builtins: &'a [BuiltinAddon]) -> Option<&'a BuiltinAddon> {
    let name = names::builtin_addon(name);
    builtins.iter().find(|b| b.name == name)
}

/// What installing a built-in object needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Install {
    /// No object of that name: create it.
    Create,
    /// Ours, but from another version or digest, or changed: replace it.
    Update,
    /// Ours and as it should be.
    UpToDate,
    /// An object of that name without our label: a person's; leave it.
    Foreign,
}

/// Compares the desired object (`desired_meta`, `desired_spec`) with the existing one.
pub fn install<S: PartialEq>(
    desired_meta: &ObjectMeta,
    desired_spec: &S,
    existing: Option<(&ObjectMeta, &S)>,
) -> Install {
    let Some((meta, spec)) = existing else {
        return Install::Create;
    };
    if !is_managed(meta) {
        return Install::Foreign;
    }
    let annotations_match = desired_meta.annotations.iter().flatten().all(|(k, v)| {
        meta.annotations
            .as_ref()
            .and_then(|a| a.get(k))
            .is_some_and(|have| have == v)
    });
    if annotations_match && spec == desired_spec {
        Install::UpToDate
    } else {
        Install::Update
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restore_tasks_follow_kubestash_names() {
        assert_eq!(restore_task_for(BACKUP_TASK), RESTORE_TASK);
        assert_eq!(restore_task_for("manifest-backup"), "manifest-restore");
        assert_eq!(
            restore_task_for("volume-snapshot"),
            "volume-snapshot-restore"
        );
    }

    /// The postgres addon's description, shortened.
    pub(crate) fn postgres() -> BuiltinAddon {
        BuiltinAddon {
            name: "postgres".into(),
            version: "0.1.0".into(),
            description: "PostgreSQL logical backups".into(),
            digest: "ab".repeat(32),
            target_kinds: vec!["postgres".into()],
            backup: true,
            restore: true,
            parameters: vec![
                AddonParameter {
                    name: "host".into(),
                    kind: "text".into(),
                    description: "Server host name or address".into(),
                    default: None,
                },
                AddonParameter {
                    name: "port".into(),
                    kind: "integer".into(),
                    description: "Server port".into(),
                    default: Some("5432".into()),
                },
                AddonParameter {
                    name: "token".into(),
                    kind: "text".into(),
                    description: "Needed".into(),
                    default: None,
                },
            ],
        }
    }

    #[test]
    fn addon_object_from_a_description() {
        let addon = addon_object(&postgres());
        assert_eq!(addon.metadata.name.as_deref(), Some("postgres"));
        assert!(is_managed(&addon.metadata));
        let annotations = addon.metadata.annotations.clone().unwrap_or_default();
        assert_eq!(annotations[VERSION_ANNOTATION], "0.1.0");
        assert_eq!(
            annotations[DIGEST_ANNOTATION],
            format!("sha256:{}", "ab".repeat(32))
        );
        let backup: Vec<&str> = addon
            .spec
            .backup_tasks
            .iter()
            .map(|t| t.name.as_str())
            .collect();
        let restore: Vec<&str> = addon
            .spec
            .restore_tasks
            .iter()
            .map(|t| t.name.as_str())
            .collect();
        assert_eq!(backup, ["logical-backup"]);
        assert_eq!(restore, ["logical-backup-restore"]);
        let task = &addon.spec.backup_tasks[0];
        assert_eq!(task.function, "postgres");
        assert_eq!(task.driver, Some(Driver::Restic));
        assert_eq!(
            task.parameters,
            vec![
                ParameterDefinition {
                    name: "host".into(),
                    usage: Some("Server host name or address (text)".into()),
                    required: Some(false),
                    default: None,
                },
                ParameterDefinition {
                    name: "port".into(),
                    usage: Some("Server port (integer)".into()),
                    required: Some(false),
                    default: Some("5432".into()),
                },
                ParameterDefinition {
                    name: "token".into(),
                    usage: Some("Needed (text)".into()),
                    required: Some(true),
                    default: None,
                },
            ]
        );
        assert_eq!(addon.spec.source, None);

        let mut backup_only = postgres();
        backup_only.restore = false;
        assert!(addon_object(&backup_only).spec.restore_tasks.is_empty());
    }

    #[test]
    fn function_object_names_the_executor_image() {
        let function = function_object(&postgres(), "registry.example/stowaway:1.0");
        assert_eq!(function.metadata.name.as_deref(), Some("postgres"));
        assert_eq!(function.spec.image, "registry.example/stowaway:1.0");
        assert!(is_managed(&function.metadata));
    }

    #[test]
    fn names_resolve_to_objects_first_then_built_ins() {
        let builtins = [postgres()];
        let mut catalog = addon_object(&postgres());
        catalog.metadata = ObjectMeta {
            name: Some("postgres-addon".into()),
            ..ObjectMeta::default()
        };
        catalog.spec.backup_tasks[0].parameters.clear();
        let objects = [catalog];
        let found = resolve("postgres-addon", &objects, &builtins).expect("object");
        assert!(matches!(found, Cow::Borrowed(_)), "the object of that name");
        assert!(found.spec.backup_tasks[0].parameters.is_empty());
        let found = resolve("postgres", &objects, &builtins).expect("built-in");
        assert_eq!(found.spec.backup_tasks[0].parameters.len(), 3);
        assert!(resolve("postgres-addon", &[], &builtins).is_some(), "alias");
        assert!(resolve("mongodb-addon", &objects, &builtins).is_none());
    }

    #[test]
    fn install_table() {
        let desired = addon_object(&postgres());
        let mut newer = postgres();
        newer.version = "0.2.0".into();
        let old_version = addon_object(&newer);
        let mut edited = desired.clone();
        edited.spec.backup_tasks.clear();
        let mut foreign = desired.clone();
        foreign.metadata.labels = None;
        let mut extra_annotation = desired.clone();
        extra_annotation
            .metadata
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .insert("note".into(), "kept".into());
        let cases = [
            (None, Install::Create),
            (Some(&desired), Install::UpToDate),
            (Some(&extra_annotation), Install::UpToDate),
            (Some(&old_version), Install::Update),
            (Some(&edited), Install::Update),
            (Some(&foreign), Install::Foreign),
        ];
        for (existing, want) in cases {
            let got = install(
                &desired.metadata,
                &desired.spec,
                existing.map(|e| (&e.metadata, &e.spec)),
            );
            assert_eq!(got, want, "{existing:?}");
        }
    }
}
