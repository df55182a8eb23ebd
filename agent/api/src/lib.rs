//! Stowaway's Kubernetes API: the custom resource types and their CRDs.
//!
//! The kinds follow KubeStash `v1alpha1` so that a KubeStash manifest works after its group
//! suffix `kubestash.com` is replaced by `stowaway.dev` (see `docs/kubernetes-api.md`):
//!
//! | group | kinds |
//! |---|---|
//! | `storage.stowaway.dev` | [`BackupStorage`], [`Repository`], [`RetentionPolicy`], [`Snapshot`] |
//! | `core.stowaway.dev` | [`BackupConfiguration`], [`BackupBatch`], [`BackupSession`], [`RestoreSession`], [`BackupBlueprint`], [`HookTemplate`] |
//! | `addons.stowaway.dev` (cluster-scoped) | [`Addon`], [`Function`] |
//!
//! This crate does no I/O. Deep structures Stowaway does not interpret yet (pod templates,
//! runtime settings, volume sources) are kept as free-form JSON that the API server preserves.

#![allow(
    clippy::duplicated_attributes,
    reason = "each `printcolumn(..)` of `#[kube(..)]` repeats `type_ = ..`, which the lint takes for duplicates"
)]

pub mod addon;
pub mod backup_batch;
pub mod backup_blueprint;
pub mod backup_configuration;
pub mod backup_session;
pub mod backup_storage;
pub mod common;
pub mod function;
pub mod hook_template;
pub mod repository;
pub mod restore_session;
pub mod retention_policy;
pub mod size;
pub mod snapshot;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

pub use addon::Addon;
pub use backup_batch::BackupBatch;
pub use backup_blueprint::BackupBlueprint;
pub use backup_configuration::BackupConfiguration;
pub use backup_session::BackupSession;
pub use backup_storage::BackupStorage;
pub use function::Function;
pub use hook_template::HookTemplate;
pub use repository::Repository;
pub use restore_session::RestoreSession;
pub use retention_policy::RetentionPolicy;
pub use snapshot::Snapshot;

/// Group of the storage kinds.
pub const STORAGE_GROUP: &str = "storage.stowaway.dev";
/// Group of the backup and restore kinds.
pub const CORE_GROUP: &str = "core.stowaway.dev";
/// Group of the addon kinds.
pub const ADDONS_GROUP: &str = "addons.stowaway.dev";
/// Version of every kind.
pub const VERSION: &str = "v1alpha1";

/// The CRDs of every kind, in a stable order (storage, core, addons).
pub fn all_crds() -> Vec<CustomResourceDefinition> {
    vec![
        BackupStorage::crd(),
        Repository::crd(),
        RetentionPolicy::crd(),
        Snapshot::crd(),
        BackupConfiguration::crd(),
        BackupBatch::crd(),
        BackupSession::crd(),
        RestoreSession::crd(),
        BackupBlueprint::crd(),
        HookTemplate::crd(),
        Addon::crd(),
        Function::crd(),
    ]
}

/// Error turning the CRDs into YAML.
#[derive(Debug, thiserror::Error)]
#[error("cannot serialize CRD {name} to YAML: {source}")]
pub struct CrdYamlError {
    /// Name of the CRD.
    pub name: String,
    /// The serializer's error.
    #[source]
    pub source: serde_yaml::Error,
}

/// The CRDs as one multi-document YAML stream (`---` between documents), in the order of
/// [`all_crds`]. This is what `stowaway crds` prints and the chart holds.
pub fn crds_yaml() -> Result<String, CrdYamlError> {
    let mut out = String::new();
    for crd in all_crds() {
        let doc = serde_yaml::to_string(&crd).map_err(|source| CrdYamlError {
            name: crd.metadata.name.clone().unwrap_or_default(),
            source,
        })?;
        out.push_str("---\n");
        out.push_str(&doc);
    }
    Ok(out)
}
