//! Validation of the storage kinds: BackupStorage, RetentionPolicy, Repository
//! (reference §2.1, §3.1-§3.3).

use stowaway_api::backup_storage::{Backend, Provider};
use stowaway_api::common::{FromNamespaces, UsagePolicy};
use stowaway_api::{BackupStorage, Repository, RetentionPolicy};

use super::{Catalog, FieldError, Rejection, name_of, namespace_of};

/// Validates a BackupStorage (`old` on updates): at most one default per namespace, no other
/// storage at the same location, `spec.storage` unchanged while repositories use it, a
/// selector for `from: Selector`, and the section of the chosen provider.
pub fn validate_backup_storage(
    new: &BackupStorage,
    old: Option<&BackupStorage>,
    catalog: &Catalog,
) -> Result<(), Rejection> {
    let mut errors = Vec::new();
    let namespace = namespace_of(&new.metadata);
    let name = name_of(&new.metadata);
    let others = || {
        catalog
            .backup_storages
            .iter()
            .filter(|s| !(namespace_of(&s.metadata) == namespace && name_of(&s.metadata) == name))
    };

    if new.spec.default == Some(true)
        && let Some(other) = others()
            .filter(|s| namespace_of(&s.metadata) == namespace && s.spec.default == Some(true))
            .min_by_key(|s| name_of(&s.metadata))
    {
        errors.push(FieldError::new(
            "spec.default",
            format!(
                "BackupStorage {namespace}/{} is already the default of namespace {namespace}",
                name_of(&other.metadata)
            ),
        ));
    }

    let storage = &new.spec.storage;
    if let Some(section) = missing_provider_section(storage) {
        errors.push(FieldError::new(
            format!("spec.storage.{section}"),
            format!("required when provider is {section}"),
        ));
    } else if let Some(here) = location(new)
        && let Some(other) = others().find(|s| location(s).as_ref() == Some(&here))
    {
        errors.push(FieldError::new(
            "spec.storage",
            format!(
                "BackupStorage {}/{} already uses {}",
                namespace_of(&other.metadata),
                name_of(&other.metadata),
                here.0
            ),
        ));
    }

    if let Some(old) = old {
        let in_use = old
            .status
            .as_ref()
            .map_or(0, |status| status.repositories.len());
        if in_use > 0 && old.spec.storage != new.spec.storage {
            errors.push(FieldError::new(
                "spec.storage",
                format!(
                    "can not be changed: the storage is in use by {in_use} {}",
                    if in_use == 1 {
                        "repository"
                    } else {
                        "repositories"
                    }
                ),
            ));
        }
    }

    check_selector(new.spec.usage_policy.as_ref(), &mut errors);
    Rejection::check(errors)
}

/// `from: Selector` needs a non-empty selector.
fn check_selector(policy: Option<&UsagePolicy>, errors: &mut Vec<FieldError>) {
    let Some(allowed) = policy.map(|p| &p.allowed_namespaces) else {
        return;
    };
    if allowed.from != FromNamespaces::Selector {
        return;
    }
    let empty = allowed.selector.as_ref().is_none_or(|s| {
        s.match_labels.as_ref().is_none_or(|l| l.is_empty())
            && s.match_expressions.as_ref().is_none_or(|e| e.is_empty())
    });
    if empty {
        errors.push(FieldError::new(
            "spec.usagePolicy.allowedNamespaces.selector",
            "required when from is Selector",
        ));
    }
}

/// The name of the provider's section when it is missing.
fn missing_provider_section(storage: &Backend) -> Option<&'static str> {
    match storage.provider {
        Provider::S3 if storage.s3.is_none() => Some("s3"),
        Provider::Gcs if storage.gcs.is_none() => Some("gcs"),
        Provider::Azure if storage.azure.is_none() => Some("azure"),
        Provider::Local if storage.local.is_none() => Some("local"),
        _ => None,
    }
}

/// Where a storage keeps its data, as a description two storages share exactly when they
/// point at the same place: the service, bucket (container) and prefix, or for a volume its
/// host path, NFS export or PVC and the sub-path. `None` when there is nothing to compare
/// (a missing section, or a volume no other storage can share, such as an `emptyDir`).
fn location(storage: &BackupStorage) -> Option<Location> {
    fn clean(text: &str) -> &str {
        text.trim_matches('/')
    }
    let backend = &storage.spec.storage;
    let text = match backend.provider {
        Provider::S3 => {
            let s3 = backend.s3.as_ref()?;
            format!(
                "s3 bucket {:?} of {:?} with prefix {:?}",
                clean(&s3.bucket),
                s3.endpoint.trim_end_matches('/'),
                clean(s3.prefix.as_deref().unwrap_or(""))
            )
        }
        Provider::Gcs => {
            let gcs = backend.gcs.as_ref()?;
            format!(
                "gcs bucket {:?} with prefix {:?}",
                clean(&gcs.bucket),
                clean(gcs.prefix.as_deref().unwrap_or(""))
            )
        }
        Provider::Azure => {
            let azure = backend.azure.as_ref()?;
            format!(
                "azure container {:?} of account {:?} with prefix {:?}",
                clean(&azure.container),
                azure.storage_account,
                clean(azure.prefix.as_deref().unwrap_or(""))
            )
        }
        Provider::Local => {
            let local = backend.local.as_ref()?;
            let field = |value: &Option<serde_json::Value>, key: &str| {
                value
                    .as_ref()
                    .and_then(|v| v.get(key))
                    .and_then(|v| v.as_str())
                    .map(str::to_owned)
            };
            let volume = if let Some(path) = field(&local.host_path, "path") {
                format!("hostPath {:?}", path.trim_end_matches('/'))
            } else if let Some(path) = field(&local.nfs, "path") {
                format!(
                    "nfs export {:?} of {:?}",
                    path.trim_end_matches('/'),
                    field(&local.nfs, "server").unwrap_or_default()
                )
            } else if let Some(claim) = field(&local.persistent_volume_claim, "claimName") {
                format!(
                    "persistentVolumeClaim {}/{claim}",
                    namespace_of(&storage.metadata)
                )
            } else {
                return None;
            };
            format!(
                "local {volume} with subPath {:?}",
                clean(local.sub_path.as_deref().unwrap_or(""))
            )
        }
    };
    Some(Location(text))
}

#[derive(Debug, PartialEq, Eq)]
struct Location(String);

/// Validates a RetentionPolicy: at most one default per namespace, one of
/// `maxRetentionPeriod` and `successfulSnapshots`, a period that parses, counts ≥ 0.
pub fn validate_retention_policy(
    new: &RetentionPolicy,
    _old: Option<&RetentionPolicy>,
    catalog: &Catalog,
) -> Result<(), Rejection> {
    let mut errors = Vec::new();
    let namespace = namespace_of(&new.metadata);
    let name = name_of(&new.metadata);
    if new.spec.default == Some(true)
        && let Some(other) = catalog
            .retention_policies
            .iter()
            .filter(|p| {
                namespace_of(&p.metadata) == namespace
                    && name_of(&p.metadata) != name
                    && p.spec.default == Some(true)
            })
            .min_by_key(|p| name_of(&p.metadata))
    {
        errors.push(FieldError::new(
            "spec.default",
            format!(
                "RetentionPolicy {namespace}/{} is already the default of namespace {namespace}",
                name_of(&other.metadata)
            ),
        ));
    }

    let period = new
        .spec
        .max_retention_period
        .as_deref()
        .filter(|p| !p.trim().is_empty());
    if period.is_none() && new.spec.successful_snapshots.is_none() {
        errors.push(FieldError::new(
            "spec",
            "one of maxRetentionPeriod and successfulSnapshots is required",
        ));
    }
    if let Some(period) = period
        && let Err(error) = stowaway_repository::parse_retention_period(period)
    {
        errors.push(FieldError::new(
            "spec.maxRetentionPeriod",
            error.to_string(),
        ));
    }

    let mut counts = Vec::new();
    if let Some(s) = &new.spec.successful_snapshots {
        counts.extend([
            ("successfulSnapshots.last", s.last),
            ("successfulSnapshots.hourly", s.hourly),
            ("successfulSnapshots.daily", s.daily),
            ("successfulSnapshots.weekly", s.weekly),
            ("successfulSnapshots.monthly", s.monthly),
            ("successfulSnapshots.yearly", s.yearly),
        ]);
    }
    if let Some(f) = &new.spec.failed_snapshots {
        counts.push(("failedSnapshots.last", f.last));
    }
    for (field, value) in counts {
        if let Some(n) = value
            && n < 0
        {
            errors.push(FieldError::new(
                format!("spec.{field}"),
                format!("must be greater than or equal to 0 (is {n})"),
            ));
        }
    }
    Rejection::check(errors)
}

/// Validates a Repository: `spec.path` does not change, `spec.storageRef` names a storage.
pub fn validate_repository(
    new: &Repository,
    old: Option<&Repository>,
    _catalog: &Catalog,
) -> Result<(), Rejection> {
    let mut errors = Vec::new();
    if let Some(old) = old
        && old.spec.path != new.spec.path
    {
        errors.push(FieldError::new(
            "spec.path",
            format!("field is immutable (was {:?})", old.spec.path),
        ));
    }
    if new.spec.storage_ref.name.is_empty() {
        errors.push(FieldError::new("spec.storageRef.name", "required"));
    }
    Rejection::check(errors)
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
    use stowaway_api::backup_storage::{
        AzureSpec, BackupStorageStatus, GcsSpec, LocalSpec, RepositoryInfo,
    };
    use stowaway_api::common::{AllowedNamespaces, ObjectReference};
    use stowaway_api::repository::RepositorySpec;
    use stowaway_api::retention_policy::{
        FailedSnapshotsKeepPolicy, SuccessfulSnapshotsKeepPolicy,
    };

    use super::super::fixtures::{assert_rejected, catalog, errors, meta, policy, storage};
    use super::*;

    fn default_storage(namespace: &str, name: &str) -> BackupStorage {
        let mut s = storage(namespace, name);
        s.spec.default = Some(true);
        s
    }

    #[test]
    fn backup_storage_valid() {
        let mut c = catalog();
        c.backup_storages = vec![storage("demo", "a"), storage("other", "b")];
        assert_eq!(
            validate_backup_storage(&storage("demo", "s3"), None, &c),
            Ok(())
        );
    }

    #[test]
    fn backup_storage_one_default_per_namespace() {
        let mut c = catalog();
        c.backup_storages = vec![
            default_storage("demo", "first"),
            default_storage("other", "x"),
        ];
        assert_rejected(
            validate_backup_storage(&default_storage("demo", "second"), None, &c),
            "spec.default",
            "BackupStorage demo/first is already the default of namespace demo",
        );
        // Not a default, another namespace, or the same object again (an update): accepted.
        assert_eq!(
            validate_backup_storage(&storage("demo", "second"), None, &c),
            Ok(())
        );
        assert_eq!(
            validate_backup_storage(&default_storage("third", "t"), None, &c),
            Ok(())
        );
        let again = default_storage("demo", "first");
        assert_eq!(validate_backup_storage(&again, Some(&again), &c), Ok(()));
    }

    #[test]
    fn backup_storage_location_unique() {
        let mut c = catalog();
        let mut taken = storage("elsewhere", "taken");
        if let Some(s3) = &mut taken.spec.storage.s3 {
            s3.bucket = "shared".into();
            s3.prefix = Some("team/a".into());
        }
        c.backup_storages = vec![taken.clone()];

        let mut same = storage("demo", "mine");
        same.spec.storage = taken.spec.storage.clone();
        if let Some(s3) = &mut same.spec.storage.s3 {
            s3.prefix = Some("/team/a/".into());
        }
        assert_rejected(
            validate_backup_storage(&same, None, &c),
            "spec.storage",
            "BackupStorage elsewhere/taken already uses s3 bucket \"shared\" of \"https://s3.example.com\" with prefix \"team/a\"",
        );

        let mut other_prefix = same.clone();
        if let Some(s3) = &mut other_prefix.spec.storage.s3 {
            s3.prefix = Some("team/b".into());
        }
        assert_eq!(validate_backup_storage(&other_prefix, None, &c), Ok(()));

        let mut other_endpoint = same.clone();
        if let Some(s3) = &mut other_endpoint.spec.storage.s3 {
            s3.endpoint = "http://minio.demo:9000".into();
        }
        assert_eq!(validate_backup_storage(&other_endpoint, None, &c), Ok(()));
    }

    #[test]
    fn backup_storage_location_gcs_azure_local() {
        let gcs = |ns: &str, name: &str, prefix: &str| {
            let mut s = storage(ns, name);
            s.spec.storage = Backend {
                provider: Provider::Gcs,
                gcs: Some(GcsSpec {
                    bucket: "g".into(),
                    prefix: Some(prefix.into()),
                    ..GcsSpec::default()
                }),
                ..Backend::default()
            };
            s
        };
        let azure = |ns: &str, name: &str, account: &str| {
            let mut s = storage(ns, name);
            s.spec.storage = Backend {
                provider: Provider::Azure,
                azure: Some(AzureSpec {
                    storage_account: account.into(),
                    container: "c".into(),
                    ..AzureSpec::default()
                }),
                ..Backend::default()
            };
            s
        };
        let local = |ns: &str, name: &str, volume: serde_json::Value, sub_path: &str| {
            let mut s = storage(ns, name);
            let mut spec = LocalSpec {
                mount_path: "/safe/data".into(),
                sub_path: Some(sub_path.into()),
                ..LocalSpec::default()
            };
            let key = volume
                .as_object()
                .and_then(|o| o.keys().next().cloned())
                .unwrap_or_default();
            let inner = volume.get(&key).cloned();
            match key.as_str() {
                "hostPath" => spec.host_path = inner,
                "nfs" => spec.nfs = inner,
                "persistentVolumeClaim" => spec.persistent_volume_claim = inner,
                _ => spec.empty_dir = inner,
            }
            s.spec.storage = Backend {
                provider: Provider::Local,
                local: Some(spec),
                ..Backend::default()
            };
            s
        };
        let host = serde_json::json!({"hostPath": {"path": "/data/backup"}});
        let nfs = serde_json::json!({"nfs": {"server": "nfs.local", "path": "/exports"}});
        let pvc = serde_json::json!({"persistentVolumeClaim": {"claimName": "backup"}});
        let empty = serde_json::json!({"emptyDir": {}});

        let cases: Vec<(&str, BackupStorage, BackupStorage, bool)> = vec![
            (
                "gcs same bucket and prefix",
                gcs("a", "x", "p"),
                gcs("b", "y", "p/"),
                false,
            ),
            (
                "gcs other prefix",
                gcs("a", "x", "p"),
                gcs("b", "y", "q"),
                true,
            ),
            (
                "azure same account and container",
                azure("a", "x", "acct"),
                azure("b", "y", "acct"),
                false,
            ),
            (
                "azure other account",
                azure("a", "x", "acct"),
                azure("b", "y", "other"),
                true,
            ),
            (
                "hostPath same path",
                local("a", "x", host.clone(), "s"),
                local("b", "y", host.clone(), "s"),
                false,
            ),
            (
                "hostPath other subPath",
                local("a", "x", host.clone(), "s"),
                local("b", "y", host, "t"),
                true,
            ),
            (
                "nfs same export",
                local("a", "x", nfs.clone(), ""),
                local("b", "y", nfs, ""),
                false,
            ),
            (
                "pvc same claim, same namespace",
                local("a", "x", pvc.clone(), ""),
                local("a", "y", pvc.clone(), ""),
                false,
            ),
            (
                "pvc same claim name, other namespace",
                local("a", "x", pvc.clone(), ""),
                local("b", "y", pvc, ""),
                true,
            ),
            (
                "emptyDir never shared",
                local("a", "x", empty.clone(), ""),
                local("a", "y", empty, ""),
                true,
            ),
        ];
        for (name, existing, new, accepted) in cases {
            let mut c = catalog();
            c.backup_storages = vec![existing];
            let result = validate_backup_storage(&new, None, &c);
            assert_eq!(result.is_ok(), accepted, "{name}: {result:?}");
            if !accepted {
                assert_eq!(errors(result)[0].path, "spec.storage", "{name}");
            }
        }
    }

    #[test]
    fn backup_storage_in_use_keeps_its_storage() {
        let c = catalog();
        let mut old = storage("demo", "s3");
        old.status = Some(BackupStorageStatus {
            repositories: vec![RepositoryInfo {
                name: "r".into(),
                ..RepositoryInfo::default()
            }],
            ..BackupStorageStatus::default()
        });
        let mut new = old.clone();
        if let Some(s3) = &mut new.spec.storage.s3 {
            s3.bucket = "moved".into();
        }
        assert_rejected(
            validate_backup_storage(&new, Some(&old), &c),
            "spec.storage",
            "can not be changed: the storage is in use by 1 repository",
        );
        // Other fields may change.
        let mut other = old.clone();
        other.spec.default = Some(true);
        assert_eq!(validate_backup_storage(&other, Some(&old), &c), Ok(()));
        // Not in use: the storage may change.
        old.status = None;
        assert_eq!(validate_backup_storage(&new, Some(&old), &c), Ok(()));
    }

    #[test]
    fn backup_storage_selector_required() {
        let c = catalog();
        let with = |selector: Option<LabelSelector>| {
            let mut s = storage("demo", "s3");
            s.spec.usage_policy = Some(UsagePolicy {
                allowed_namespaces: AllowedNamespaces {
                    from: FromNamespaces::Selector,
                    selector,
                },
            });
            s
        };
        for selector in [None, Some(LabelSelector::default())] {
            assert_rejected(
                validate_backup_storage(&with(selector), None, &c),
                "spec.usagePolicy.allowedNamespaces.selector",
                "required when from is Selector",
            );
        }
        let by_name = LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "kubernetes.io/metadata.name".into(),
                operator: "In".into(),
                values: Some(vec!["demo".into()]),
            }]),
            match_labels: None,
        };
        assert_eq!(
            validate_backup_storage(&with(Some(by_name)), None, &c),
            Ok(())
        );
    }

    #[test]
    fn backup_storage_provider_section_required() {
        let c = catalog();
        for (provider, section) in [
            (Provider::S3, "s3"),
            (Provider::Gcs, "gcs"),
            (Provider::Azure, "azure"),
            (Provider::Local, "local"),
        ] {
            let mut s = storage("demo", "x");
            s.spec.storage = Backend {
                provider,
                ..Backend::default()
            };
            assert_rejected(
                validate_backup_storage(&s, None, &c),
                &format!("spec.storage.{section}"),
                &format!("required when provider is {section}"),
            );
        }
        // The section of another provider does not count.
        let mut s = storage("demo", "x");
        s.spec.storage.provider = Provider::Gcs;
        assert_rejected(
            validate_backup_storage(&s, None, &c),
            "spec.storage.gcs",
            "required when provider is gcs",
        );
    }

    fn default_policy(namespace: &str, name: &str) -> RetentionPolicy {
        let mut p = policy(namespace, name);
        p.spec.default = Some(true);
        p
    }

    #[test]
    fn retention_policy_table() {
        let mut c = catalog();
        c.retention_policies = vec![default_policy("demo", "first")];
        let with = |change: &dyn Fn(&mut RetentionPolicy)| {
            let mut p = policy("demo", "p");
            change(&mut p);
            p
        };
        let accepted: Vec<(&str, RetentionPolicy)> = vec![
            ("keep last 5", policy("demo", "p")),
            (
                "period only",
                with(&|p| {
                    p.spec.successful_snapshots = None;
                    p.spec.max_retention_period = Some("30d12h30m".into());
                }),
            ),
            ("default in another namespace", default_policy("other", "p")),
            (
                "the default itself, updated",
                default_policy("demo", "first"),
            ),
            (
                "counts of 0",
                with(&|p| {
                    p.spec.successful_snapshots = Some(SuccessfulSnapshotsKeepPolicy {
                        daily: Some(0),
                        ..SuccessfulSnapshotsKeepPolicy::default()
                    });
                    p.spec.failed_snapshots = Some(FailedSnapshotsKeepPolicy { last: Some(0) });
                }),
            ),
        ];
        for (name, p) in accepted {
            assert_eq!(validate_retention_policy(&p, None, &c), Ok(()), "{name}");
        }
        let rejected: Vec<(&str, RetentionPolicy, &str, &str)> = vec![
            (
                "second default",
                default_policy("demo", "second"),
                "spec.default",
                "RetentionPolicy demo/first is already the default of namespace demo",
            ),
            (
                "nothing to keep by",
                with(&|p| p.spec.successful_snapshots = None),
                "spec",
                "one of maxRetentionPeriod and successfulSnapshots is required",
            ),
            (
                "blank period counts as absent",
                with(&|p| {
                    p.spec.successful_snapshots = None;
                    p.spec.max_retention_period = Some(" ".into());
                }),
                "spec",
                "one of maxRetentionPeriod and successfulSnapshots is required",
            ),
            (
                "period does not parse",
                with(&|p| p.spec.max_retention_period = Some("5s".into())),
                "spec.maxRetentionPeriod",
                "invalid retention period \"5s\": unknown unit 's'",
            ),
            (
                "negative successful count",
                with(&|p| {
                    p.spec.successful_snapshots = Some(SuccessfulSnapshotsKeepPolicy {
                        weekly: Some(-1),
                        ..SuccessfulSnapshotsKeepPolicy::default()
                    })
                }),
                "spec.successfulSnapshots.weekly",
                "must be greater than or equal to 0 (is -1)",
            ),
            (
                "negative failed count",
                with(&|p| {
                    p.spec.failed_snapshots = Some(FailedSnapshotsKeepPolicy { last: Some(-2) })
                }),
                "spec.failedSnapshots.last",
                "must be greater than or equal to 0 (is -2)",
            ),
        ];
        for (name, p, path, message) in rejected {
            let got = errors(validate_retention_policy(&p, None, &c));
            assert!(
                got.len() == 1 && got[0].path == path && got[0].message.contains(message),
                "{name}: {got:?}"
            );
        }
    }

    fn repository(path: &str, storage: &str) -> Repository {
        Repository {
            metadata: meta("demo", "repo"),
            spec: RepositorySpec {
                storage_ref: ObjectReference {
                    namespace: Some("demo".into()),
                    name: storage.into(),
                },
                path: path.into(),
                ..RepositorySpec::default()
            },
            status: None,
        }
    }

    #[test]
    fn repository_rules() {
        let c = catalog();
        let old = repository("/app", "s3");
        assert_eq!(validate_repository(&old, None, &c), Ok(()));
        assert_eq!(validate_repository(&old, Some(&old), &c), Ok(()));
        let mut paused = old.clone();
        paused.spec.paused = Some(true);
        assert_eq!(validate_repository(&paused, Some(&old), &c), Ok(()));
        assert_rejected(
            validate_repository(&repository("/moved", "s3"), Some(&old), &c),
            "spec.path",
            "field is immutable (was \"/app\")",
        );
        assert_rejected(
            validate_repository(&repository("/app", ""), None, &c),
            "spec.storageRef.name",
            "required",
        );
    }
}
