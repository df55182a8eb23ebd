//! `BackupStorage` (`storage.stowaway.dev/v1alpha1`): one storage location (a bucket and
//! prefix, or a volume), usable from other namespaces if its usage policy allows.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{
    Condition, DeletionPolicy, ReadinessPhase, UsagePolicy, preserve_unknown_fields,
};

/// Spec of a BackupStorage.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "storage.stowaway.dev",
    version = "v1alpha1",
    kind = "BackupStorage",
    namespaced,
    status = "BackupStorageStatus",
    category = "stowaway",
    derive = "Default",
    derive = "PartialEq",
    printcolumn(
        name = "Provider",
        type_ = "string",
        json_path = ".spec.storage.provider"
    ),
    printcolumn(name = "Default", type_ = "boolean", json_path = ".spec.default"),
    printcolumn(
        name = "Deletion-Policy",
        type_ = "string",
        json_path = ".spec.deletionPolicy"
    ),
    printcolumn(name = "Total-Size", type_ = "string", json_path = ".status.totalSize"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct BackupStorageSpec {
    /// Where the data goes.
    pub storage: Backend,
    /// Which namespaces may use this storage (default: its own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage_policy: Option<UsagePolicy>,
    /// Default storage of the namespaces allowed to use it (at most one per namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<bool>,
    /// What deleting the storage deletes (default `Delete`: the custom resources only).
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
    /// Pod and container settings of the initializer and cleaner jobs (kept free-form).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_fields")]
    pub runtime_settings: Option<serde_json::Value>,
}

/// The provider of a storage.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// A Kubernetes volume (hostPath, NFS, PVC, ...).
    #[default]
    Local,
    /// Amazon S3 or an S3-compatible service.
    S3,
    /// Google Cloud Storage.
    Gcs,
    /// Azure Blob Storage.
    Azure,
}

/// The provider and its settings; only the block named by `provider` is used.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Backend {
    /// Which provider block is used.
    pub provider: Provider,
    /// S3 settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3Spec>,
    /// GCS settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gcs: Option<GcsSpec>,
    /// Azure settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azure: Option<AzureSpec>,
    /// Volume settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<LocalSpec>,
}

/// S3 settings. The Secret holds `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and optionally
/// `CA_CERT_DATA`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct S3Spec {
    /// URL with scheme, such as `https://s3.us-west-1.amazonaws.com`.
    pub endpoint: String,
    /// Bucket name.
    pub bucket: String,
    /// Directory inside the bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Secret with the credentials; empty for ambient credentials (IRSA and the like).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
    /// Concurrent connections.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<i64>,
    /// Skip TLS certificate verification (KubeStash's field name `insecureTLS`).
    #[serde(
        default,
        rename = "insecureTLS",
        alias = "insecureTls",
        skip_serializing_if = "Option::is_none"
    )]
    pub insecure_tls: Option<bool>,
}

/// GCS settings. The Secret holds `GOOGLE_PROJECT_ID` and `GOOGLE_SERVICE_ACCOUNT_JSON_KEY`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GcsSpec {
    /// Bucket name.
    pub bucket: String,
    /// Directory inside the bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Concurrent connections.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<i64>,
    /// Secret with the credentials; empty for workload identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
}

/// Azure Blob settings. The Secret holds `AZURE_ACCOUNT_KEY`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AzureSpec {
    /// Storage account name.
    pub storage_account: String,
    /// Container name.
    pub container: String,
    /// Directory inside the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Concurrent connections.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<i64>,
    /// Secret with the account key; empty for workload identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
}

/// A volume used as storage. The volume source fields are KubeStash's inline `VolumeSource`
/// (kept free-form, each as in a Pod's `volumes[]` entry).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LocalSpec {
    /// Where the volume is mounted in jobs, such as `/safe/data`.
    pub mount_path: String,
    /// Sub-directory inside the volume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_path: Option<String>,
    /// Concurrent connections.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<i64>,
    /// A directory of the node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_fields")]
    pub host_path: Option<serde_json::Value>,
    /// An NFS export.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_fields")]
    pub nfs: Option<serde_json::Value>,
    /// A PersistentVolumeClaim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_fields")]
    pub persistent_volume_claim: Option<serde_json::Value>,
    /// A scratch directory (testing only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_fields")]
    pub empty_dir: Option<serde_json::Value>,
    /// A CSI volume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_fields")]
    pub csi: Option<serde_json::Value>,
    /// An ephemeral volume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_fields")]
    pub ephemeral: Option<serde_json::Value>,
    /// A PVC the operator creates from this template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_fields")]
    pub volume_claim_template: Option<serde_json::Value>,
}

/// Observed state of a BackupStorage.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupStorageStatus {
    /// `Ready` once the backend is initialized and its Secret found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<ReadinessPhase>,
    /// Sum of the repository sizes, such as `12.222 MiB`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_size: Option<String>,
    /// Repositories stored here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repositories: Vec<RepositoryInfo>,
    /// `BackendInitialized`, `BackendSecretFound`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// A repository stored in a BackupStorage.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RepositoryInfo {
    /// Repository name.
    pub name: String,
    /// Repository namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Directory relative to the storage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Size, such as `1.2 GiB`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
    /// Whether the custom resource matches the backend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synced: Option<bool>,
    /// Why syncing failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}
