//! Usage policies (reference §2.1): which namespaces may refer to a BackupStorage,
//! RetentionPolicy, HookTemplate or BackupBlueprint.

use kube::core::{Selector, SelectorExt};
use stowaway_api::common::{FromNamespaces, ObjectReference, UsagePolicy};

use super::{Catalog, FieldError};

/// Whether an object in `owner_namespace` with usage policy `policy` may be referred to from
/// `referencing_namespace`.
///
/// `All` allows every namespace, `Same` only the owner's, `Selector` the namespaces whose labels
/// (from the catalog) match `selector` (`matchLabels` and `matchExpressions` with `In`, `NotIn`,
/// `Exists`, `DoesNotExist`). An absent policy means `Same`; `Selector` without a selector, or
/// with an invalid one, allows none.
pub fn usage_allowed(
    policy: Option<&UsagePolicy>,
    owner_namespace: &str,
    referencing_namespace: &str,
    catalog: &Catalog,
) -> bool {
    let Some(policy) = policy else {
        return owner_namespace == referencing_namespace;
    };
    let allowed = &policy.allowed_namespaces;
    match allowed.from {
        FromNamespaces::All => true,
        FromNamespaces::Same => owner_namespace == referencing_namespace,
        FromNamespaces::Selector => {
            let Some(selector) = &allowed.selector else {
                return false;
            };
            match Selector::try_from(selector.clone()) {
                Ok(selector) => selector.matches(&catalog.labels_of(referencing_namespace)),
                Err(_) => false,
            }
        }
    }
}

/// The message for a reference the usage policy forbids.
pub(super) fn not_allowed_message(
    referencing_namespace: &str,
    kind: &str,
    owner_namespace: &str,
    name: &str,
) -> String {
    format!(
        "namespace {referencing_namespace} is not allowed to refer {kind} \
         {owner_namespace}/{name}: check its usagePolicy"
    )
}

/// The kinds a reference can point to, with how to find them in the catalog.
#[derive(Clone, Copy, Debug)]
pub(super) enum Referable {
    BackupStorage,
    RetentionPolicy,
    HookTemplate,
}

impl Referable {
    fn kind(self) -> &'static str {
        match self {
            Referable::BackupStorage => "BackupStorage",
            Referable::RetentionPolicy => "RetentionPolicy",
            Referable::HookTemplate => "HookTemplate",
        }
    }

    /// `None` when the object is missing, else its usage policy.
    fn lookup<'c>(
        self,
        catalog: &'c Catalog,
        namespace: &str,
        name: &str,
    ) -> Option<Option<&'c UsagePolicy>> {
        match self {
            Referable::BackupStorage => catalog
                .backup_storage(namespace, name)
                .map(|s| s.spec.usage_policy.as_ref()),
            Referable::RetentionPolicy => catalog
                .retention_policy(namespace, name)
                .map(|p| p.spec.usage_policy.as_ref()),
            Referable::HookTemplate => catalog
                .hook_template(namespace, name)
                .map(|t| t.spec.usage_policy.as_ref()),
        }
    }
}

/// Checks the reference at `path` from an object in `referencing_namespace`: it names an
/// object, the object exists, and its usage policy allows the namespace.
pub(super) fn check_reference(
    path: &str,
    target: Referable,
    reference: &ObjectReference,
    referencing_namespace: &str,
    catalog: &Catalog,
    errors: &mut Vec<FieldError>,
) {
    if reference.name.is_empty() {
        errors.push(FieldError::new(format!("{path}.name"), "required"));
        return;
    }
    let namespace = reference_namespace(reference, referencing_namespace);
    let kind = target.kind();
    match target.lookup(catalog, namespace, &reference.name) {
        None => errors.push(FieldError::new(
            path,
            format!("{kind} {namespace}/{} not found", reference.name),
        )),
        Some(policy) => {
            if !usage_allowed(policy, namespace, referencing_namespace, catalog) {
                errors.push(FieldError::new(
                    path,
                    not_allowed_message(referencing_namespace, kind, namespace, &reference.name),
                ));
            }
        }
    }
}

/// Namespace a reference points into: its own, else the referring object's.
pub(super) fn reference_namespace<'a>(
    reference: &'a ObjectReference,
    referencing_namespace: &'a str,
) -> &'a str {
    match reference.namespace.as_deref() {
        Some(ns) if !ns.is_empty() => ns,
        _ => referencing_namespace,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
    use stowaway_api::common::AllowedNamespaces;

    use super::super::fixtures::{catalog, storage};
    use super::*;

    fn policy(from: FromNamespaces, selector: Option<LabelSelector>) -> UsagePolicy {
        UsagePolicy {
            allowed_namespaces: AllowedNamespaces { from, selector },
        }
    }

    fn labels(pairs: &[(&str, &str)]) -> Option<BTreeMap<String, String>> {
        Some(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }

    fn expr(key: &str, operator: &str, values: Option<&[&str]>) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.to_owned(),
            operator: operator.to_owned(),
            values: values.map(|v| v.iter().map(|s| (*s).to_owned()).collect()),
        }
    }

    fn exprs(list: Vec<LabelSelectorRequirement>) -> Option<LabelSelector> {
        Some(LabelSelector {
            match_expressions: Some(list),
            match_labels: None,
        })
    }

    /// The namespace `prod` carries `env=prod, team=a`; `dev` carries `env=dev`; `bare` none.
    fn namespaces() -> Catalog {
        let mut c = catalog();
        c.namespace_labels.insert(
            "prod".into(),
            labels(&[("env", "prod"), ("team", "a")]).unwrap_or_default(),
        );
        c.namespace_labels
            .insert("dev".into(), labels(&[("env", "dev")]).unwrap_or_default());
        c
    }

    #[test]
    fn usage_policy_table() {
        let c = namespaces();
        let match_env_prod = Some(LabelSelector {
            match_labels: labels(&[("env", "prod")]),
            match_expressions: None,
        });
        let cases: Vec<(&str, Option<UsagePolicy>, &str, bool)> = vec![
            ("absent policy, same namespace", None, "owner", true),
            ("absent policy, other namespace", None, "prod", false),
            ("All", Some(policy(FromNamespaces::All, None)), "prod", true),
            (
                "All, unknown namespace",
                Some(policy(FromNamespaces::All, None)),
                "nowhere",
                true,
            ),
            (
                "Same, same",
                Some(policy(FromNamespaces::Same, None)),
                "owner",
                true,
            ),
            (
                "Same, other",
                Some(policy(FromNamespaces::Same, None)),
                "prod",
                false,
            ),
            (
                "Selector without selector",
                Some(policy(FromNamespaces::Selector, None)),
                "prod",
                false,
            ),
            (
                "Selector without selector, same namespace",
                Some(policy(FromNamespaces::Selector, None)),
                "owner",
                false,
            ),
            (
                "Selector {} selects every namespace",
                Some(policy(
                    FromNamespaces::Selector,
                    Some(LabelSelector::default()),
                )),
                "bare",
                true,
            ),
            (
                "matchLabels match",
                Some(policy(FromNamespaces::Selector, match_env_prod.clone())),
                "prod",
                true,
            ),
            (
                "matchLabels differ",
                Some(policy(FromNamespaces::Selector, match_env_prod.clone())),
                "dev",
                false,
            ),
            (
                "matchLabels, namespace without labels",
                Some(policy(FromNamespaces::Selector, match_env_prod)),
                "bare",
                false,
            ),
            (
                "In match",
                Some(policy(
                    FromNamespaces::Selector,
                    exprs(vec![expr("env", "In", Some(&["prod", "staging"]))]),
                )),
                "prod",
                true,
            ),
            (
                "In no match",
                Some(policy(
                    FromNamespaces::Selector,
                    exprs(vec![expr("env", "In", Some(&["prod", "staging"]))]),
                )),
                "dev",
                false,
            ),
            (
                "In, label absent",
                Some(policy(
                    FromNamespaces::Selector,
                    exprs(vec![expr("env", "In", Some(&["prod"]))]),
                )),
                "bare",
                false,
            ),
            (
                "In by namespace name",
                Some(policy(
                    FromNamespaces::Selector,
                    exprs(vec![expr(
                        "kubernetes.io/metadata.name",
                        "In",
                        Some(&["bare", "dev"]),
                    )]),
                )),
                "bare",
                true,
            ),
            (
                "In by namespace name, not listed",
                Some(policy(
                    FromNamespaces::Selector,
                    exprs(vec![expr(
                        "kubernetes.io/metadata.name",
                        "In",
                        Some(&["bare", "dev"]),
                    )]),
                )),
                "prod",
                false,
            ),
            (
                "NotIn match",
                Some(policy(
                    FromNamespaces::Selector,
                    exprs(vec![expr("env", "NotIn", Some(&["prod"]))]),
                )),
                "dev",
                true,
            ),
            (
                "NotIn no match",
                Some(policy(
                    FromNamespaces::Selector,
                    exprs(vec![expr("env", "NotIn", Some(&["prod"]))]),
                )),
                "prod",
                false,
            ),
            (
                "NotIn, label absent",
                Some(policy(
                    FromNamespaces::Selector,
                    exprs(vec![expr("env", "NotIn", Some(&["prod"]))]),
                )),
                "bare",
                true,
            ),
            (
                "Exists match",
                Some(policy(
                    FromNamespaces::Selector,
                    exprs(vec![expr("team", "Exists", None)]),
                )),
                "prod",
                true,
            ),
            (
                "Exists no match",
                Some(policy(
                    FromNamespaces::Selector,
                    exprs(vec![expr("team", "Exists", None)]),
                )),
                "dev",
                false,
            ),
            (
                "DoesNotExist match",
                Some(policy(
                    FromNamespaces::Selector,
                    exprs(vec![expr("team", "DoesNotExist", None)]),
                )),
                "dev",
                true,
            ),
            (
                "DoesNotExist no match",
                Some(policy(
                    FromNamespaces::Selector,
                    exprs(vec![expr("team", "DoesNotExist", None)]),
                )),
                "prod",
                false,
            ),
            (
                "all expressions must match",
                Some(policy(
                    FromNamespaces::Selector,
                    exprs(vec![
                        expr("env", "In", Some(&["prod"])),
                        expr("team", "DoesNotExist", None),
                    ]),
                )),
                "prod",
                false,
            ),
            (
                "matchLabels and expressions together",
                Some(policy(
                    FromNamespaces::Selector,
                    Some(LabelSelector {
                        match_labels: labels(&[("env", "prod")]),
                        match_expressions: Some(vec![expr("team", "In", Some(&["a"]))]),
                    }),
                )),
                "prod",
                true,
            ),
            (
                "unknown operator allows none",
                Some(policy(
                    FromNamespaces::Selector,
                    exprs(vec![expr("env", "Gt", Some(&["1"]))]),
                )),
                "prod",
                false,
            ),
            (
                "In without values allows none",
                Some(policy(
                    FromNamespaces::Selector,
                    exprs(vec![expr("env", "In", None)]),
                )),
                "prod",
                false,
            ),
        ];
        for (name, policy, referencing, want) in cases {
            assert_eq!(
                usage_allowed(policy.as_ref(), "owner", referencing, &c),
                want,
                "{name}"
            );
        }
    }

    #[test]
    fn reference_checks_name_existence_and_policy() {
        let mut c = catalog();
        c.backup_storages.push(storage("storage-ns", "shared"));
        let check = |reference: ObjectReference, from: &str| {
            let mut errors = Vec::new();
            check_reference(
                "spec.backends[0].storageRef",
                Referable::BackupStorage,
                &reference,
                from,
                &c,
                &mut errors,
            );
            errors
        };
        let named = |ns: Option<&str>, name: &str| ObjectReference {
            namespace: ns.map(str::to_owned),
            name: name.to_owned(),
        };
        assert!(check(named(Some("storage-ns"), "shared"), "storage-ns").is_empty());
        assert!(check(named(None, "shared"), "storage-ns").is_empty());
        assert_eq!(
            check(named(Some("storage-ns"), "shared"), "demo"),
            vec![FieldError::new(
                "spec.backends[0].storageRef",
                "namespace demo is not allowed to refer BackupStorage storage-ns/shared: check its usagePolicy"
            )]
        );
        assert_eq!(
            check(named(None, "shared"), "demo"),
            vec![FieldError::new(
                "spec.backends[0].storageRef",
                "BackupStorage demo/shared not found"
            )]
        );
        assert_eq!(
            check(named(None, ""), "demo"),
            vec![FieldError::new(
                "spec.backends[0].storageRef.name",
                "required"
            )]
        );
    }
}
