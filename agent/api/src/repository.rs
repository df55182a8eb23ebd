//! `Repository` (`storage.stowaway.dev/v1alpha1`): the backups of one application in one
//! directory of one BackupStorage.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{
    Condition, DeletionPolicy, ObjectReference, ReadinessPhase, TypedObjectReference,
};

/// Spec of a Repository.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "storage.stowaway.dev",
    version = "v1alpha1",
    kind = "Repository",
    namespaced,
    status = "RepositoryStatus",
    shortname = "repo",
    category = "stowaway",
    derive = "Default",
    derive = "PartialEq",
    printcolumn(name = "Integrity", type_ = "boolean", json_path = ".status.integrity"),
    printcolumn(
        name = "Snapshot-Count",
        type_ = "integer",
        json_path = ".status.snapshotCount"
    ),
    printcolumn(name = "Size", type_ = "string", json_path = ".status.size"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "Last-Successful-Backup",
        type_ = "date",
        format = "date-time",
        json_path = ".status.lastBackupTime"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct RepositorySpec {
    /// The application backed up here.
    pub app_ref: TypedObjectReference,
    /// The BackupStorage (another namespace if its usage policy allows).
    pub storage_ref: ObjectReference,
    /// Directory relative to the storage; unique per storage and immutable.
    pub path: String,
    /// What deleting the repository deletes (default `Delete`: Snapshot resources only).
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
    /// Secret with the repository password (key `RESTIC_PASSWORD` as in KubeStash).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption_secret: Option<ObjectReference>,
    /// The operator ignores further events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,
}

/// Observed state of a Repository.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RepositoryStatus {
    /// `Ready` once the repository is initialized.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<ReadinessPhase>,
    /// When the last backup succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_backup_time: Option<Time>,
    /// Whether every snapshot passed its check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integrity: Option<bool>,
    /// Number of snapshots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_count: Option<i32>,
    /// Size, such as `1.2 GiB`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
    /// The newest snapshots (at most 5).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recent_snapshots: Vec<SnapshotInfo>,
    /// `RepositoryInitialized`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Paths of the components stored, such as `repository/v1/demo-session/pod-0`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub component_paths: Vec<String>,
}

/// A recent snapshot of a Repository.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotInfo {
    /// Snapshot name.
    pub name: String,
    /// Snapshot phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<crate::common::RunPhase>,
    /// Session of the BackupConfiguration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// Size, such as `12 MiB`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
    /// When the snapshot was taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_time: Option<Time>,
}
