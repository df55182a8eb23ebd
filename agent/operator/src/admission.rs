//! Defaulting and validation rules of the admission webhooks for Stowaway's own kinds.
//!
//! Everything here is a pure function: the caller passes the object, its previous version on
//! updates, and a [`Catalog`] of what the rules need to see of the cluster. The rules follow
//! KubeStash's webhooks (reference §2.1, §3.x, §5.10):
//!
//! - defaulting (mutating webhook): [`default_backup_storage`], [`default_retention_policy`],
//!   [`default_hook_template`], [`default_backup_blueprint`],
//!   [`default_backup_configuration`];
//! - validation (validating webhook): [`validate_backup_storage`],
//!   [`validate_retention_policy`], [`validate_backup_configuration`],
//!   [`validate_backup_session`], [`validate_restore_session`], [`validate_hook_template`],
//!   [`validate_repository`], [`validate_addon`], each returning every problem as a
//!   [`FieldError`] named by its field path (`spec.backends[1].name`);
//! - [`review`] turns an `AdmissionRequest` into an `AdmissionResponse` (a JSON patch when
//!   mutating, a denial listing the field errors when validating);
//! - [`sidecar`]: a sidecar writes only its own target's sessions and snapshots.

mod addon;
mod backup;
mod checks;
mod defaults;
mod hook;
mod restore;
mod review;
pub mod sidecar;
mod storage;
mod usage;

#[cfg(test)]
mod fixtures;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use stowaway_api::{Addon, BackupStorage, HookTemplate, Repository, RetentionPolicy};

pub use addon::{check_addon_reference, validate_addon};
pub use backup::{validate_backup_batch, validate_backup_configuration, validate_backup_session};
pub use defaults::{
    DEFAULT_BACKEND_NAME, default_backup_blueprint, default_backup_configuration,
    default_backup_storage, default_hook_template, default_retention_policy,
};
pub use hook::validate_hook_template;
pub use restore::validate_restore_session;
pub use review::review;
pub use storage::{validate_backup_storage, validate_repository, validate_retention_policy};
pub use usage::usage_allowed;

/// One problem with one field, as Kubernetes reports it: `spec.backends[1].name: ...`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct FieldError {
    /// Path of the field, such as `spec.sessions[0].scheduler.schedule`.
    pub path: String,
    /// What is wrong with it.
    pub message: String,
}

impl FieldError {
    /// A problem with the field at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// Why an object is refused: every problem found, in the order of the fields.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct Rejection(pub Vec<FieldError>);

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl Rejection {
    /// `Ok(())` when `errors` is empty, else the rejection.
    pub fn check(errors: Vec<FieldError>) -> Result<(), Rejection> {
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Rejection(errors))
        }
    }

    /// The field errors.
    pub fn errors(&self) -> &[FieldError] {
        &self.0
    }
}

/// What the rules need to see of the cluster, gathered by the caller.
///
/// Built-in addons come as their descriptions ([`Catalog::builtin_addons`]); an Addon object
/// of the same name wins over them ([`Catalog::resolve_addon`]). On updates the
/// catalog may hold the previous version of the object under review: the rules that compare
/// an object with its siblings skip the one with the same namespace and name.
#[derive(Clone, Debug, Default)]
pub struct Catalog {
    /// Every BackupStorage of the cluster.
    pub backup_storages: Vec<BackupStorage>,
    /// Every RetentionPolicy of the cluster.
    pub retention_policies: Vec<RetentionPolicy>,
    /// Every HookTemplate of the cluster.
    pub hook_templates: Vec<HookTemplate>,
    /// Repositories (those of the namespace under review are enough).
    pub repositories: Vec<Repository>,
    /// Addons, including the built-in ones.
    pub addons: Vec<Addon>,
    /// Labels of each namespace, by namespace name.
    pub namespace_labels: BTreeMap<String, BTreeMap<String, String>>,
    /// The addons built into `stowaway`. A reference to one (or to its KubeStash name, such
    /// as `postgres-addon`) needs no Addon object: without an object of that name it is
    /// checked against the built-in addon's generated Addon
    /// ([`crate::addon_registry::resolve`]).
    pub builtin_addons: Vec<crate::addon_registry::BuiltinAddon>,
}

impl Catalog {
    /// The BackupStorage `namespace/name`.
    pub fn backup_storage(&self, namespace: &str, name: &str) -> Option<&BackupStorage> {
        self.backup_storages
            .iter()
            .find(|s| is_named(&s.metadata, namespace, name))
    }

    /// The RetentionPolicy `namespace/name`.
    pub fn retention_policy(&self, namespace: &str, name: &str) -> Option<&RetentionPolicy> {
        self.retention_policies
            .iter()
            .find(|p| is_named(&p.metadata, namespace, name))
    }

    /// The HookTemplate `namespace/name`.
    pub fn hook_template(&self, namespace: &str, name: &str) -> Option<&HookTemplate> {
        self.hook_templates
            .iter()
            .find(|t| is_named(&t.metadata, namespace, name))
    }

    /// The Repository `namespace/name`.
    pub fn repository(&self, namespace: &str, name: &str) -> Option<&Repository> {
        self.repositories
            .iter()
            .find(|r| is_named(&r.metadata, namespace, name))
    }

    /// The (cluster-scoped) Addon `name`.
    pub fn addon(&self, name: &str) -> Option<&Addon> {
        self.addons
            .iter()
            .find(|a| a.metadata.name.as_deref() == Some(name))
    }

    /// The Addon an addon reference names: the object of that name, else the built-in addon
    /// it names.
    pub fn resolve_addon(&self, name: &str) -> Option<Cow<'_, Addon>> {
        crate::addon_registry::resolve(name, &self.addons, &self.builtin_addons)
    }

    /// Labels of `namespace`, with `kubernetes.io/metadata.name` set to its name as the API
    /// server sets it on every namespace (selectors list namespaces by name with it).
    pub fn labels_of(&self, namespace: &str) -> BTreeMap<String, String> {
        let mut labels = self
            .namespace_labels
            .get(namespace)
            .cloned()
            .unwrap_or_default();
        labels.insert(NAMESPACE_NAME_LABEL.to_owned(), namespace.to_owned());
        labels
    }
}

/// The label the API server puts on every namespace, holding its name.
const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

fn is_named(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    namespace: &str,
    name: &str,
) -> bool {
    meta.name.as_deref() == Some(name) && meta.namespace.as_deref().unwrap_or("") == namespace
}

/// Namespace of an object's metadata (`""` when unset).
fn namespace_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> &str {
    meta.namespace.as_deref().unwrap_or("")
}

/// Name of an object's metadata (`""` when unset).
fn name_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> &str {
    meta.name.as_deref().unwrap_or("")
}
