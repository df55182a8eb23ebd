//! Defaulting (the mutating webhook): reference §2.1, §3.1, §3.3 and §5.10.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use stowaway_api::backup_storage::Backend;
use stowaway_api::common::{
    AllowedNamespaces, BackendReference, FromNamespaces, ObjectReference, UsagePolicy,
};
use stowaway_api::retention_policy::FailedSnapshotsKeepPolicy;
use stowaway_api::{
    BackupBlueprint, BackupConfiguration, BackupStorage, HookTemplate, RetentionPolicy,
};

use super::usage::usage_allowed;
use super::{Catalog, name_of, namespace_of};

/// Name given to the backend the defaulting adds to a BackupConfiguration without backends
/// (KubeStash leaves it empty; a name keeps repository `backend` references explicit).
pub const DEFAULT_BACKEND_NAME: &str = "default";

/// `{allowedNamespaces: {from: Same}}` when `policy` is absent.
fn default_usage_policy(policy: &mut Option<UsagePolicy>) {
    if policy.is_none() {
        *policy = Some(UsagePolicy {
            allowed_namespaces: AllowedNamespaces {
                from: FromNamespaces::Same,
                selector: None,
            },
        });
    }
}

fn trim_trailing_slashes(value: &mut String) {
    let trimmed = value.trim_end_matches('/').len();
    value.truncate(trimmed);
}

fn trim_optional(value: &mut Option<String>) {
    if let Some(value) = value {
        trim_trailing_slashes(value);
    }
}

/// A BackupStorage with its defaults: the usage policy (`Same` when absent) and no trailing
/// `/` on the bucket (container), endpoint and prefix.
pub fn default_backup_storage(mut storage: BackupStorage) -> BackupStorage {
    default_usage_policy(&mut storage.spec.usage_policy);
    let Backend { s3, gcs, azure, .. } = &mut storage.spec.storage;
    if let Some(s3) = s3 {
        trim_trailing_slashes(&mut s3.endpoint);
        trim_trailing_slashes(&mut s3.bucket);
        trim_optional(&mut s3.prefix);
    }
    if let Some(gcs) = gcs {
        trim_trailing_slashes(&mut gcs.bucket);
        trim_optional(&mut gcs.prefix);
    }
    if let Some(azure) = azure {
        trim_trailing_slashes(&mut azure.container);
        trim_optional(&mut azure.prefix);
    }
    storage
}

/// A RetentionPolicy with its defaults: the usage policy and `failedSnapshots: {last: 1}`.
pub fn default_retention_policy(mut policy: RetentionPolicy) -> RetentionPolicy {
    default_usage_policy(&mut policy.spec.usage_policy);
    if policy.spec.failed_snapshots.is_none() {
        policy.spec.failed_snapshots = Some(FailedSnapshotsKeepPolicy::default());
    }
    policy
}

/// A HookTemplate with its default usage policy.
pub fn default_hook_template(mut template: HookTemplate) -> HookTemplate {
    default_usage_policy(&mut template.spec.usage_policy);
    template
}

/// A BackupBlueprint with its default usage policy.
pub fn default_backup_blueprint(mut blueprint: BackupBlueprint) -> BackupBlueprint {
    default_usage_policy(&mut blueprint.spec.usage_policy);
    blueprint
}

/// A BackupConfiguration with its defaults (reference §5.10).
///
/// Without backends it gets one, named [`DEFAULT_BACKEND_NAME`], on the namespace's default
/// BackupStorage, and its repositories without a `backend` are pointed at it. Every backend
/// without a retention policy gets the namespace's default RetentionPolicy. The defaults are
/// looked up in order: a default in the same namespace usable from there only (`Same`), a
/// default whose `Selector` matches the namespace, a default usable from `All` namespaces;
/// ties go to the first by namespace and name. Nothing is added when no default applies.
pub fn default_backup_configuration(
    mut configuration: BackupConfiguration,
    catalog: &Catalog,
) -> BackupConfiguration {
    let namespace = namespace_of(&configuration.metadata).to_owned();
    let spec = &mut configuration.spec;
    if spec.backends.is_empty() {
        let storage = find_default(
            &catalog.backup_storages,
            &namespace,
            catalog,
            |s| &s.metadata,
            |s| s.spec.default == Some(true),
            |s| s.spec.usage_policy.as_ref(),
        );
        if let Some(storage) = storage {
            spec.backends.push(BackendReference {
                name: DEFAULT_BACKEND_NAME.to_owned(),
                storage_ref: Some(reference_to(&storage.metadata)),
                retention_policy: None,
            });
            for repository in spec.sessions.iter_mut().flat_map(|s| &mut s.repositories) {
                if repository.backend.as_deref().unwrap_or("").is_empty() {
                    repository.backend = Some(DEFAULT_BACKEND_NAME.to_owned());
                }
            }
        }
    }
    if spec.backends.iter().any(|b| b.retention_policy.is_none()) {
        let policy = find_default(
            &catalog.retention_policies,
            &namespace,
            catalog,
            |p| &p.metadata,
            |p| p.spec.default == Some(true),
            |p| p.spec.usage_policy.as_ref(),
        );
        if let Some(policy) = policy {
            for backend in &mut spec.backends {
                if backend.retention_policy.is_none() {
                    backend.retention_policy = Some(reference_to(&policy.metadata));
                }
            }
        }
    }
    configuration
}

fn reference_to(meta: &ObjectMeta) -> ObjectReference {
    ObjectReference {
        namespace: Some(namespace_of(meta).to_owned()),
        name: name_of(meta).to_owned(),
    }
}

/// The default object for `namespace` among `items` (reference §5.10).
fn find_default<'a, T>(
    items: &'a [T],
    namespace: &str,
    catalog: &Catalog,
    meta: impl Fn(&T) -> &ObjectMeta,
    is_default: impl Fn(&T) -> bool,
    policy: impl Fn(&T) -> Option<&UsagePolicy>,
) -> Option<&'a T> {
    let from = |item: &T| policy(item).map_or(FromNamespaces::Same, |p| p.allowed_namespaces.from);
    let first = |keep: &dyn Fn(&T) -> bool| {
        items
            .iter()
            .filter(|item| is_default(item) && keep(item))
            .min_by_key(|item| (namespace_of(meta(item)), name_of(meta(item))))
    };
    first(&|item| from(item) == FromNamespaces::Same && namespace_of(meta(item)) == namespace)
        .or_else(|| {
            first(&|item| {
                from(item) == FromNamespaces::Selector
                    && usage_allowed(policy(item), namespace_of(meta(item)), namespace, catalog)
            })
        })
        .or_else(|| first(&|item| from(item) == FromNamespaces::All))
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
    use stowaway_api::backup_storage::{AzureSpec, GcsSpec, S3Spec};
    use stowaway_api::common::AllowedNamespaces;

    use super::super::fixtures::{backup_configuration, catalog, from, meta, policy, storage};
    use super::*;

    fn same() -> Option<UsagePolicy> {
        from(FromNamespaces::Same)
    }

    #[test]
    fn usage_policy_defaults_to_same() {
        let mut s = storage("demo", "s3");
        s.spec.usage_policy = None;
        assert_eq!(default_backup_storage(s).spec.usage_policy, same());

        let mut p = policy("demo", "keep");
        p.spec.usage_policy = None;
        assert_eq!(default_retention_policy(p).spec.usage_policy, same());

        let t = HookTemplate {
            metadata: meta("demo", "t"),
            spec: Default::default(),
        };
        assert_eq!(default_hook_template(t).spec.usage_policy, same());

        let b = BackupBlueprint {
            metadata: meta("demo", "b"),
            spec: Default::default(),
        };
        assert_eq!(default_backup_blueprint(b).spec.usage_policy, same());
    }

    #[test]
    fn usage_policy_given_is_kept() {
        let mut s = storage("demo", "s3");
        s.spec.usage_policy = from(FromNamespaces::All);
        assert_eq!(
            default_backup_storage(s).spec.usage_policy,
            from(FromNamespaces::All)
        );
    }

    #[test]
    fn trailing_slashes_trimmed() {
        let mut s = storage("demo", "s3");
        s.spec.storage.s3 = Some(S3Spec {
            endpoint: "https://s3.example.com/".into(),
            bucket: "bucket//".into(),
            prefix: Some("/backup/demo/".into()),
            ..S3Spec::default()
        });
        s.spec.storage.gcs = Some(GcsSpec {
            bucket: "g/".into(),
            prefix: Some("p/".into()),
            ..GcsSpec::default()
        });
        s.spec.storage.azure = Some(AzureSpec {
            storage_account: "acct/".into(),
            container: "c/".into(),
            prefix: Some("/".into()),
            ..AzureSpec::default()
        });
        let d = default_backup_storage(s).spec.storage;
        let s3 = d.s3.unwrap_or_default();
        assert_eq!(
            (
                s3.endpoint.as_str(),
                s3.bucket.as_str(),
                s3.prefix.as_deref()
            ),
            ("https://s3.example.com", "bucket", Some("/backup/demo"))
        );
        let gcs = d.gcs.unwrap_or_default();
        assert_eq!(
            (gcs.bucket.as_str(), gcs.prefix.as_deref()),
            ("g", Some("p"))
        );
        let azure = d.azure.unwrap_or_default();
        assert_eq!(
            (
                azure.storage_account.as_str(),
                azure.container.as_str(),
                azure.prefix.as_deref()
            ),
            ("acct/", "c", Some(""))
        );
    }

    #[test]
    fn failed_snapshots_default_to_last_one() {
        let d = default_retention_policy(policy("demo", "keep"));
        assert_eq!(d.spec.failed_snapshots.and_then(|f| f.last), Some(1));
        let mut p = policy("demo", "keep");
        p.spec.failed_snapshots = Some(FailedSnapshotsKeepPolicy { last: Some(3) });
        let d = default_retention_policy(p);
        assert_eq!(d.spec.failed_snapshots.and_then(|f| f.last), Some(3));
    }

    fn default_storage(namespace: &str, name: &str, policy: Option<UsagePolicy>) -> BackupStorage {
        let mut s = storage(namespace, name);
        s.spec.default = Some(true);
        s.spec.usage_policy = policy;
        s
    }

    fn default_policy(namespace: &str, name: &str, usage: Option<UsagePolicy>) -> RetentionPolicy {
        let mut p = policy(namespace, name);
        p.spec.default = Some(true);
        p.spec.usage_policy = usage;
        p
    }

    fn selector_for(namespace: &str) -> Option<UsagePolicy> {
        Some(UsagePolicy {
            allowed_namespaces: AllowedNamespaces {
                from: FromNamespaces::Selector,
                selector: Some(LabelSelector {
                    match_labels: Some([("team".to_owned(), namespace.to_owned())].into()),
                    match_expressions: None,
                }),
            },
        })
    }

    /// A configuration in `demo` without backends, its repository without a backend.
    fn bare_configuration() -> BackupConfiguration {
        let mut bc = backup_configuration();
        bc.spec.backends.clear();
        bc.spec.sessions[0].repositories[0].backend = None;
        bc
    }

    fn chosen_storage(storages: Vec<BackupStorage>) -> Option<ObjectReference> {
        let mut c = catalog();
        c.namespace_labels.insert(
            "demo".into(),
            [("team".to_owned(), "demo".to_owned())].into(),
        );
        c.backup_storages = storages;
        let d = default_backup_configuration(bare_configuration(), &c);
        d.spec.backends.first().and_then(|b| b.storage_ref.clone())
    }

    fn reference(namespace: &str, name: &str) -> Option<ObjectReference> {
        Some(ObjectReference {
            namespace: Some(namespace.into()),
            name: name.into(),
        })
    }

    #[test]
    fn default_storage_lookup_order() {
        let same_here = default_storage("demo", "same-here", same());
        let absent_here = default_storage("demo", "absent-here", None);
        let same_elsewhere = default_storage("other", "same-elsewhere", same());
        let selector_match = default_storage("infra", "selector-match", selector_for("demo"));
        let selector_miss = default_storage("infra", "selector-miss", selector_for("prod"));
        let all = default_storage("infra", "all", from(FromNamespaces::All));
        let all_2 = default_storage("aaa", "all-2", from(FromNamespaces::All));
        let mut not_default = storage("demo", "not-default");
        not_default.spec.default = Some(false);

        let cases: Vec<(&str, Vec<BackupStorage>, Option<ObjectReference>)> = vec![
            ("nothing", vec![], None),
            ("not a default", vec![not_default.clone()], None),
            (
                "same namespace, Same, wins over Selector and All",
                vec![all.clone(), selector_match.clone(), same_here.clone()],
                reference("demo", "same-here"),
            ),
            (
                "absent policy counts as Same",
                vec![all.clone(), absent_here.clone()],
                reference("demo", "absent-here"),
            ),
            (
                "a Same default of another namespace does not apply",
                vec![same_elsewhere.clone()],
                None,
            ),
            (
                "Selector matching the namespace wins over All",
                vec![all.clone(), selector_miss.clone(), selector_match.clone()],
                reference("infra", "selector-match"),
            ),
            (
                "Selector not matching does not apply",
                vec![selector_miss.clone(), same_elsewhere.clone()],
                None,
            ),
            (
                "All applies",
                vec![selector_miss, all.clone()],
                reference("infra", "all"),
            ),
            (
                "ties go to the first by namespace and name",
                vec![all, all_2],
                reference("aaa", "all-2"),
            ),
        ];
        for (name, storages, want) in cases {
            assert_eq!(chosen_storage(storages), want, "{name}");
        }
    }

    #[test]
    fn default_backend_named_default_and_repositories_pointed_at_it() {
        let mut c = catalog();
        c.backup_storages
            .push(default_storage("demo", "s3", same()));
        c.retention_policies
            .push(default_policy("infra", "keep", from(FromNamespaces::All)));
        let mut bc = bare_configuration();
        let mut second = bc.spec.sessions[0].repositories[0].clone();
        second.name = "explicit".into();
        second.backend = Some("elsewhere".into());
        bc.spec.sessions[0].repositories.push(second);
        let mut third = bc.spec.sessions[0].repositories[0].clone();
        third.name = "empty".into();
        third.backend = Some(String::new());
        bc.spec.sessions[0].repositories.push(third);

        let d = default_backup_configuration(bc, &c);
        assert_eq!(
            d.spec.backends,
            vec![BackendReference {
                name: DEFAULT_BACKEND_NAME.into(),
                storage_ref: reference("demo", "s3"),
                retention_policy: reference("infra", "keep"),
            }]
        );
        let backends: Vec<Option<&str>> = d.spec.sessions[0]
            .repositories
            .iter()
            .map(|r| r.backend.as_deref())
            .collect();
        assert_eq!(
            backends,
            vec![Some("default"), Some("elsewhere"), Some("default")]
        );
    }

    #[test]
    fn default_policy_fills_backends_lacking_one() {
        let mut c = catalog();
        c.retention_policies
            .push(default_policy("demo", "keep-here", None));
        c.retention_policies.push(default_policy(
            "infra",
            "keep-all",
            from(FromNamespaces::All),
        ));
        let mut bc = backup_configuration();
        bc.spec.backends[0].retention_policy = None;
        let mut given = bc.spec.backends[0].clone();
        given.name = "given".into();
        given.retention_policy = reference("demo", "mine");
        bc.spec.backends.push(given);

        let d = default_backup_configuration(bc, &c);
        assert_eq!(
            d.spec.backends[0].retention_policy,
            reference("demo", "keep-here")
        );
        assert_eq!(
            d.spec.backends[1].retention_policy,
            reference("demo", "mine")
        );
    }

    #[test]
    fn nothing_changes_without_defaults_or_with_everything_given() {
        let c = catalog();
        let bc = bare_configuration();
        assert_eq!(default_backup_configuration(bc.clone(), &c), bc);

        let mut c = catalog();
        c.backup_storages
            .push(default_storage("demo", "other", same()));
        c.retention_policies
            .push(default_policy("demo", "other", same()));
        let bc = backup_configuration();
        assert_eq!(default_backup_configuration(bc.clone(), &c), bc);
    }
}
