//! The RBAC the operator grants a workload's sidecar (pure): the Roles and RoleBindings an
//! invoker (BackupConfiguration or BackupBatch) needs so that the sidecar in its target's
//! pods can do its work as the workload's service account, and nothing more.
//!
//! A member gets them when its target is a workload (Deployment, StatefulSet, DaemonSet)
//! that runs the sidecar: the invoker carries `stowaway.dev/inject: "true"` (the sidecar
//! mode) or the workload's pod template does (what `stowaway inject` sets), and the template
//! does not say `"false"` ([`crate::injection`] decides the same way for each new pod).
//!
//! In the invoker's namespace, a Role `stowaway-sidecar-<configuration>` (a batch member's is
//! `stowaway-sidecar-<batch>-<member>`) lets the sidecar:
//!
//! - get, list and watch BackupSessions and RestoreSessions, `update` them (its claim
//!   annotation, [`crate::claim`]), create BackupSessions (the on-demand API) and, when the
//!   invoker carries [`ALLOW_RESTORE_ANNOTATION`]` = "true"`, RestoreSessions; patch their
//!   status;
//! - get, list and watch its invoker's kind; get, list, watch and patch Snapshots (the
//!   snapshot's ID) and patch their status;
//! - get its Repositories, BackupStorages and Secrets **by name** only (`resourceNames`): the
//!   storages the repositories use, their backend credentials, the repositories' encryption
//!   Secrets and the addon's `authSecret`;
//! - get Pods (is a claimant still running) and create Events.
//!
//! A BackupStorage or Secret in another namespace is granted there by a Role and RoleBinding
//! `stowaway-sidecar-<invoker namespace>-<invoker>[-<member>]` that name those objects only.
//! Each RoleBinding binds the workload's service account (its pod template's
//! `serviceAccountName`, `default` when unset).
//!
//! RBAC cannot select sessions by label, so the Role covers every session of the namespace:
//! the validating webhook ([`crate::admission::sidecar`]) refuses a sidecar's write to another
//! target's session.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use stowaway_api::common::{ObjectReference, TypedObjectReference};
use stowaway_api::{BackupBatch, BackupConfiguration, BackupStorage, Repository};

use crate::injection::INJECT_ANNOTATION;
use crate::invoker::Invoker;
use crate::names;
use crate::storage_access::backend_secret_name;

/// Prefix of the names of the Roles and RoleBindings.
pub const NAME_PREFIX: &str = "stowaway-sidecar";
/// On a BackupConfiguration or BackupBatch: `"true"` lets its sidecars create
/// RestoreSessions (the on-demand API's `POST /v1/restores`).
pub const ALLOW_RESTORE_ANNOTATION: &str = "stowaway.dev/allow-restore";
/// `app.kubernetes.io/component` of the Roles and RoleBindings.
pub const COMPONENT: &str = "sidecar-rbac";
/// Label naming the invoker's namespace (the objects of another namespace need it).
pub const INVOKER_NAMESPACE_LABEL: &str = "stowaway.dev/invoker-namespace";
/// Finalizer of an invoker with Roles in other namespaces: they are removed before it goes.
pub const FINALIZER: &str = "stowaway.dev/sidecar-rbac";
/// The task parameter naming the Secret with a database's credentials (the executor's
/// `authSecret`), read in the session's namespace.
pub const AUTH_SECRET_PARAM: &str = "authSecret";
/// The service account of a pod template that names none.
pub const DEFAULT_SERVICE_ACCOUNT: &str = "default";

/// `app.kubernetes.io/component`, which tells the sidecars' Roles and RoleBindings apart.
pub const COMPONENT_LABEL: &str = "app.kubernetes.io/component";
const CORE: &str = "core.stowaway.dev";
const STORAGE: &str = "storage.stowaway.dev";
const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// What the operator sees of a target workload: its pod template's service account and
/// injection annotation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Workload {
    /// `spec.template.spec.serviceAccountName` (or the deprecated `serviceAccount`).
    pub service_account: Option<String>,
    /// `stowaway.dev/inject` on the pod template: `Some(true)`, `Some(false)` or unset.
    pub inject: Option<bool>,
}

impl Workload {
    /// The workload seen through its pod template.
    pub fn of_template(template: Option<&k8s_openapi::api::core::v1::PodTemplateSpec>) -> Workload {
        let spec = template.and_then(|t| t.spec.as_ref());
        Workload {
            service_account: spec
                .and_then(|s| {
                    s.service_account_name
                        .clone()
                        .or_else(|| s.service_account.clone())
                })
                .filter(|s| !s.is_empty()),
            inject: template
                .and_then(|t| t.metadata.as_ref())
                .and_then(|m| m.annotations.as_ref())
                .and_then(|a| a.get(INJECT_ANNOTATION))
                .map(|v| v.trim().eq_ignore_ascii_case("true")),
        }
    }
}

/// What [`decide`] needs to see.
#[derive(Clone, Debug)]
pub struct Observed<'a> {
    /// The configuration or batch.
    pub invoker: Invoker<'a>,
    /// The target workloads that exist, with their namespace, kind and name.
    pub workloads: Vec<(TypedObjectReference, Workload)>,
    /// The BackupStorages found among [`storage_refs`].
    pub storages: &'a [BackupStorage],
    /// The invoker's Repository objects that exist.
    pub repositories: &'a [Repository],
}

/// The Roles and RoleBindings an invoker's sidecars should have, in every namespace.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    /// Roles, each with a RoleBinding of the same name and namespace.
    pub roles: Vec<Role>,
    /// RoleBindings.
    pub bindings: Vec<RoleBinding>,
    /// Whether a target workload does not run the sidecar (yet): the caller looks again
    /// later, since `stowaway inject` changes the workload, not the invoker.
    pub waiting_for_injection: bool,
}

impl Plan {
    /// Whether an object lives outside the invoker's namespace (so the invoker needs
    /// [`FINALIZER`]).
    pub fn crosses_namespaces(&self, invoker_namespace: &str) -> bool {
        self.roles
            .iter()
            .any(|r| r.metadata.namespace.as_deref() != Some(invoker_namespace))
    }
}

/// Whether `target` is a workload whose pods can carry the sidecar.
pub fn is_workload(target: &TypedObjectReference) -> bool {
    matches!(target.api_group.as_deref(), None | Some("" | "apps"))
        && matches!(
            target.kind.as_str(),
            "Deployment" | "StatefulSet" | "DaemonSet"
        )
}

/// The workload targets of the invoker (each once), with their namespace filled in.
pub fn workload_targets(invoker: Invoker<'_>) -> Vec<TypedObjectReference> {
    let namespace = invoker.namespace().unwrap_or_default();
    let mut out: Vec<TypedObjectReference> = Vec::new();
    for (_, target) in invoker.targets() {
        let Some(target) = target.filter(|t| is_workload(t)) else {
            continue;
        };
        let mut target = target.clone();
        target.api_group = Some("apps".into());
        if target.namespace.as_deref().is_none_or(str::is_empty) {
            target.namespace = Some(namespace.clone());
        }
        if !out.contains(&target) {
            out.push(target);
        }
    }
    out
}

/// The BackupStorages (namespace, name) the invoker's backends and its Repositories name:
/// the caller reads them for their credential Secrets.
pub fn storage_refs(invoker: Invoker<'_>, repositories: &[Repository]) -> Vec<(String, String)> {
    let namespace = invoker.namespace().unwrap_or_default();
    let mut out = BTreeSet::new();
    for backend in invoker.backends() {
        if let Some(r) = &backend.storage_ref {
            out.insert(reference(r, &namespace));
        }
    }
    for repo in repositories {
        let ns = repo.metadata.namespace.clone().unwrap_or(namespace.clone());
        out.insert(reference(&repo.spec.storage_ref, &ns));
    }
    out.into_iter().collect()
}

/// The label selector of every Role and RoleBinding made for `invoker`.
pub fn selector(invoker: Invoker<'_>) -> String {
    labels(invoker, None)
        .into_iter()
        .filter(|(k, _)| k != names::BATCH_MEMBER_LABEL)
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// `(namespace, name)` of a reference, the namespace defaulting to `namespace`.
fn reference(r: &ObjectReference, namespace: &str) -> (String, String) {
    (
        r.namespace
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| namespace.to_owned()),
        r.name.clone(),
    )
}

fn annotated(meta: &ObjectMeta, annotation: &str) -> bool {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(annotation))
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

/// What one sidecar may read by name, per namespace.
#[derive(Default)]
struct Named {
    repositories: BTreeSet<String>,
    storages: BTreeSet<String>,
    secrets: BTreeSet<String>,
}

/// Decides the Roles and RoleBindings of `observed.invoker`'s sidecars.
pub fn decide(observed: &Observed<'_>) -> Plan {
    let invoker = observed.invoker;
    let mut plan = Plan::default();
    let Some(home) = invoker.namespace() else {
        return plan;
    };
    let sidecar_mode = annotated(invoker.meta(), INJECT_ANNOTATION);
    let allow_restore = annotated(invoker.meta(), ALLOW_RESTORE_ANNOTATION);
    let mut done: Vec<&TypedObjectReference> = Vec::new();
    for (member, target) in invoker.targets() {
        let Some(target) = target.filter(|t| is_workload(t)) else {
            continue;
        };
        if done.iter().any(|t| same_target(t, target, &home)) {
            continue;
        }
        done.push(target);
        let Some((_, workload)) = observed
            .workloads
            .iter()
            .find(|(t, _)| same_target(t, target, &home))
        else {
            continue;
        };
        let runs_sidecar =
            workload.inject == Some(true) || (sidecar_mode && workload.inject.is_none());
        if !runs_sidecar {
            plan.waiting_for_injection = true;
            continue;
        }
        let subject = Subject {
            kind: "ServiceAccount".into(),
            name: workload
                .service_account
                .clone()
                .unwrap_or_else(|| DEFAULT_SERVICE_ACCOUNT.into()),
            namespace: Some(
                target
                    .namespace
                    .clone()
                    .filter(|n| !n.is_empty())
                    .unwrap_or_else(|| home.clone()),
            ),
            api_group: None,
        };
        let named = named(observed, target, &home);
        let member = member.filter(|_| matches!(invoker, Invoker::Batch(_)));
        for (namespace, names) in &named {
            let rules = if *namespace == home {
                home_rules(invoker, allow_restore, names)
            } else {
                foreign_rules(names)
            };
            if rules.is_empty() {
                continue;
            }
            let name = object_name(invoker, member, namespace, &home);
            let meta = ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(namespace.clone()),
                labels: Some(labels(invoker, member)),
                owner_references: (*namespace == home)
                    .then(|| invoker.owner_reference())
                    .flatten()
                    .map(|o| vec![o]),
                ..ObjectMeta::default()
            };
            plan.roles.push(Role {
                metadata: meta.clone(),
                rules: Some(rules),
            });
            plan.bindings.push(RoleBinding {
                metadata: meta,
                role_ref: RoleRef {
                    api_group: Some(RBAC_GROUP.into()),
                    kind: "Role".into(),
                    name,
                },
                subjects: Some(vec![subject.clone()]),
            });
        }
    }
    plan
}

fn same_target(a: &TypedObjectReference, b: &TypedObjectReference, home: &str) -> bool {
    let ns = |t: &TypedObjectReference| {
        t.namespace
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| home.to_owned())
    };
    a.kind == b.kind && a.name == b.name && ns(a) == ns(b)
}

/// What the sidecar of `target` reads by name, by namespace; the invoker's namespace is
/// always there.
fn named(
    observed: &Observed<'_>,
    target: &TypedObjectReference,
    home: &str,
) -> BTreeMap<String, Named> {
    let invoker = observed.invoker;
    let mut out: BTreeMap<String, Named> = BTreeMap::new();
    out.entry(home.to_owned()).or_default();
    let storage_secret = |out: &mut BTreeMap<String, Named>, (ns, name): (String, String)| {
        let secret = observed
            .storages
            .iter()
            .find(|s| {
                s.metadata.name.as_deref() == Some(name.as_str())
                    && s.metadata.namespace.as_deref() == Some(ns.as_str())
            })
            .and_then(|s| backend_secret_name(&s.spec));
        let entry = out.entry(ns).or_default();
        if let Some(secret) = secret {
            entry.secrets.insert(secret.to_owned());
        }
        entry.storages.insert(name);
    };
    for session in invoker.sessions() {
        for member in &session.members {
            if !member.target.is_some_and(|t| same_target(t, target, home)) {
                continue;
            }
            for repo in member.repositories {
                if let Some(r) = invoker
                    .backend(repo.backend.as_deref())
                    .and_then(|b| b.storage_ref.as_ref())
                {
                    storage_secret(&mut out, reference(r, home));
                }
                if let Some(secret) = repo
                    .encryption_secret
                    .as_ref()
                    .filter(|s| !s.name.is_empty())
                {
                    let (ns, name) = reference(secret, home);
                    out.entry(ns).or_default().secrets.insert(name);
                }
                out.entry(home.to_owned())
                    .or_default()
                    .repositories
                    .insert(repo.name.clone());
                let object = observed.repositories.iter().find(|r| {
                    r.metadata.name.as_deref() == Some(repo.name.as_str())
                        && r.metadata.namespace.as_deref().unwrap_or(home) == home
                });
                if let Some(object) = object {
                    storage_secret(&mut out, reference(&object.spec.storage_ref, home));
                    if let Some(secret) = object
                        .spec
                        .encryption_secret
                        .as_ref()
                        .filter(|s| !s.name.is_empty())
                    {
                        let (ns, name) = reference(secret, home);
                        out.entry(ns).or_default().secrets.insert(name);
                    }
                }
            }
            let auth_secrets = member
                .addon
                .into_iter()
                .flat_map(|a| &a.tasks)
                .filter_map(|t| t.params.as_ref()?.get(AUTH_SECRET_PARAM)?.as_str())
                .filter(|s| !s.is_empty());
            for secret in auth_secrets {
                out.entry(home.to_owned())
                    .or_default()
                    .secrets
                    .insert(secret.to_owned());
            }
        }
    }
    out
}

fn rule(group: &str, resources: &[&str], verbs: &[&str]) -> PolicyRule {
    let strings = |items: &[&str]| items.iter().map(|s| (*s).to_owned()).collect();
    PolicyRule {
        api_groups: Some(vec![group.to_owned()]),
        resources: Some(strings(resources)),
        verbs: strings(verbs),
        ..PolicyRule::default()
    }
}

/// A rule for `get` of the named objects; `None` without names (an empty `resourceNames`
/// would grant every object).
fn get_named(group: &str, resource: &str, names: &BTreeSet<String>) -> Option<PolicyRule> {
    (!names.is_empty()).then(|| PolicyRule {
        resource_names: Some(names.iter().cloned().collect()),
        ..rule(group, &[resource], &["get"])
    })
}

fn home_rules(invoker: Invoker<'_>, allow_restore: bool, names: &Named) -> Vec<PolicyRule> {
    let invoker_resource = match invoker {
        Invoker::Configuration(_) => BackupConfiguration::plural(&()),
        Invoker::Batch(_) => BackupBatch::plural(&()),
    };
    let restore_verbs: &[&str] = if allow_restore {
        &["get", "list", "watch", "update", "create"]
    } else {
        &["get", "list", "watch", "update"]
    };
    let mut rules = vec![
        rule(
            CORE,
            &["backupsessions"],
            &["get", "list", "watch", "update", "create"],
        ),
        rule(CORE, &["restoresessions"], restore_verbs),
        rule(
            CORE,
            &["backupsessions/status", "restoresessions/status"],
            &["patch"],
        ),
        rule(CORE, &[&invoker_resource], &["get", "list", "watch"]),
        rule(STORAGE, &["snapshots"], &["get", "list", "watch", "patch"]),
        rule(STORAGE, &["snapshots/status"], &["patch"]),
    ];
    rules.extend(get_named(STORAGE, "repositories", &names.repositories));
    rules.extend(foreign_rules(names));
    rules.push(rule("", &["pods"], &["get"]));
    rules.push(rule("events.k8s.io", &["events"], &["create", "patch"]));
    rules
}

fn foreign_rules(names: &Named) -> Vec<PolicyRule> {
    get_named(STORAGE, "backupstorages", &names.storages)
        .into_iter()
        .chain(get_named("", "secrets", &names.secrets))
        .collect()
}

fn object_name(invoker: Invoker<'_>, member: Option<&str>, namespace: &str, home: &str) -> String {
    let name = invoker.name();
    let mut parts = vec![NAME_PREFIX];
    if namespace != home {
        parts.push(home);
    }
    parts.push(&name);
    parts.extend(member);
    names::object_name(&parts)
}

fn labels(invoker: Invoker<'_>, member: Option<&str>) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::from([
        (
            names::MANAGED_BY_LABEL.to_owned(),
            names::MANAGED_BY.to_owned(),
        ),
        (COMPONENT_LABEL.to_owned(), COMPONENT.to_owned()),
        (
            names::INVOKER_KIND_LABEL.to_owned(),
            invoker.kind().to_owned(),
        ),
        (names::INVOKER_NAME_LABEL.to_owned(), invoker.name()),
        (
            INVOKER_NAMESPACE_LABEL.to_owned(),
            invoker.namespace().unwrap_or_default(),
        ),
    ]);
    if let Some(member) = member {
        labels.insert(names::BATCH_MEMBER_LABEL.to_owned(), member.to_owned());
    }
    labels
}

#[cfg(test)]
mod tests;
