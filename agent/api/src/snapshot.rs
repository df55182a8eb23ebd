//! `Snapshot` (`storage.stowaway.dev/v1alpha1`): the state of one backup run into one
//! Repository; written by the operator and the agents only.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{
    Condition, DeletionPolicy, Driver, RunPhase, TypedObjectReference, preserve_unknown_fields,
    preserve_unknown_fields_list,
};

/// Spec of a Snapshot.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "storage.stowaway.dev",
    version = "v1alpha1",
    kind = "Snapshot",
    namespaced,
    status = "SnapshotStatus",
    category = "stowaway",
    derive = "Default",
    derive = "PartialEq",
    printcolumn(name = "Repository", type_ = "string", json_path = ".spec.repository"),
    printcolumn(name = "Session", type_ = "string", json_path = ".spec.session"),
    printcolumn(
        name = "Snapshot-Time",
        type_ = "date",
        format = "date-time",
        json_path = ".status.snapshotTime"
    ),
    printcolumn(
        name = "Deletion-Policy",
        type_ = "string",
        json_path = ".spec.deletionPolicy",
        priority = 1
    ),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Size", type_ = "string", json_path = ".status.size"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotSpec {
    /// Snapshot id (a ULID in KubeStash; the repository's snapshot id here).
    #[serde(
        default,
        rename = "snapshotID",
        skip_serializing_if = "Option::is_none"
    )]
    pub snapshot_id: Option<String>,
    /// `FullBackup` or `IncrementalBackup`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<SnapshotType>,
    /// Repository name.
    pub repository: String,
    /// Session name in the BackupConfiguration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// BackupSession name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_session: Option<String>,
    /// Data layout version, `v1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The application backed up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_ref: Option<TypedObjectReference>,
    /// What deleting the snapshot deletes (default `Delete`: the resource only).
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
    /// The operator ignores further events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,
}

/// Kind of backup a snapshot holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum SnapshotType {
    /// All data.
    FullBackup,
    /// Changes since an earlier snapshot.
    IncrementalBackup,
}

/// Result of verifying a snapshot by restoring it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum VerificationStatus {
    /// Verified.
    Verified,
    /// Not verified.
    NotVerified,
    /// Verification failed.
    VerificationFailed,
}

/// Observed state of a Snapshot.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotStatus {
    /// Derived from the conditions and the components.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<RunPhase>,
    /// Result of the last verification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification_status: Option<VerificationStatus>,
    /// The verification session that checked it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification_session: Option<String>,
    /// When the snapshot was taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_time: Option<Time>,
    /// When the status last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_update_time: Option<Time>,
    /// Size, such as `12 MiB`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
    /// AND of the component integrities.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integrity: Option<bool>,
    /// `SnapshotMetadataUploaded`, `RecentSnapshotListUpdated`, `BackupIncomplete`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Number of components expected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_components: Option<i32>,
    /// Components by name (`dump`, `dump-pod-0`, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub components: BTreeMap<String, Component>,
    /// Host that took the snapshot, as the repository records it (a Stowaway addition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Tags of the snapshot in the repository (a Stowaway addition).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// The addon that wrote the snapshot (a Stowaway addition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addon: Option<SnapshotAddon>,
}

/// The addon that wrote a snapshot, as the repository records it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotAddon {
    /// Addon name, such as `postgres`.
    pub name: String,
    /// Addon version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Digest of the addon's component, `sha256:<hex>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

/// What a component holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ComponentKind {
    /// A byte stream, such as an SQL dump.
    Stream,
    /// A file tree with metadata, such as a volume.
    Tree,
}

/// One component of a snapshot.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Component {
    /// Path relative to the repository, `repository/v1/<session>/<component>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Phase of the component.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<RunPhase>,
    /// Size, such as `12 MiB`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
    /// How long it took, such as `1m2s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    /// Whether its data passed the check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integrity: Option<bool>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Tool that moved the data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<Driver>,
    /// Per-run statistics of the `Restic` driver (kept free-form: `summary`, `progress`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_fields_list")]
    pub restic_stats: Option<Vec<serde_json::Value>>,
    /// Statistics of the `VolumeSnapshotter` driver (kept free-form).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_fields_list")]
    pub volume_snapshotter_stats: Option<Vec<serde_json::Value>>,
    /// Statistics of WAL/point-in-time backups (kept free-form).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_fields")]
    pub log_stats: Option<serde_json::Value>,
    /// `Stream` or `Tree` (a Stowaway addition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<ComponentKind>,
    /// Media type, such as `application/sql` (a Stowaway addition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
}
