//! `RestoreSession` (`core.stowaway.dev/v1alpha1`): one restore run.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{
    AddonInfo, Condition, HookInfo, HookStatus, ObjectReference, ResourceFoundStatus,
    TypedObjectReference, preserve_unknown_fields,
};

/// Spec of a RestoreSession.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "core.stowaway.dev",
    version = "v1alpha1",
    kind = "RestoreSession",
    namespaced,
    status = "RestoreSessionStatus",
    shortname = "restore",
    category = "stowaway",
    derive = "Default",
    derive = "PartialEq",
    printcolumn(
        name = "Repository",
        type_ = "string",
        json_path = ".spec.dataSource.repository"
    ),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Duration", type_ = "string", json_path = ".status.duration"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct RestoreSessionSpec {
    /// Where to restore (optional for template-based restores).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<TypedObjectReference>,
    /// What to restore from.
    pub data_source: RestoreDataSource,
    /// The addon and its tasks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addon: Option<AddonInfo>,
    /// Hooks around the restore.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hooks: Option<RestoreHooks>,
    /// Time limit, such as `2h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_timeout: Option<String>,
    /// Per-kind options of manifest restores (kept free-form).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_fields")]
    pub manifest_options: Option<serde_json::Value>,
}

/// The snapshot a restore reads.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestoreDataSource {
    /// Namespace of the Repository and Snapshot (default: the RestoreSession's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Repository name (required with `latest` or `pitr`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    /// Snapshot name or `latest` (required unless `pitr`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
    /// Point in time: the latest snapshot at or before `targetTime`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pitr: Option<PointInTime>,
    /// Components to restore (default: all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub components: Vec<String>,
    /// Secret with the repository password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption_secret: Option<ObjectReference>,
    /// Restore a BackupBatch run: every member (or those listed) from the snapshots of one
    /// BackupSession, each into its own target. Replaces `repository`, `snapshot` and `pitr`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<BatchRestoreSource>,
}

/// The BackupBatch run a batch restore reads.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BatchRestoreSource {
    /// The BackupBatch.
    pub name: String,
    /// The BackupSession of the batch to restore, or `latest` (the newest Succeeded one;
    /// the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_session: Option<String>,
    /// Members to restore (default: every member of that run).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<String>,
    /// `Parallel` (default) restores every member at once; `Sequential` one after the other,
    /// in `members` order (or the batch's `targets` order).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_order: Option<ExecutionOrder>,
}

/// Order of a batch restore's members.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ExecutionOrder {
    /// All at once.
    #[default]
    Parallel,
    /// One after the other.
    Sequential,
}

/// Point-in-time selection of a snapshot.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PointInTime {
    /// The time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_time: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
    /// Skip a snapshot taken exactly at the time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclusive: Option<bool>,
}

/// Hooks around a restore.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestoreHooks {
    /// Run before the restore.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pre_restore: Vec<HookInfo>,
    /// Run after the restore.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub post_restore: Vec<HookInfo>,
}

/// Phase of a RestoreSession.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum RestorePhase {
    /// Not started.
    Pending,
    /// In progress.
    Running,
    /// Failed.
    Failed,
    /// Done.
    Succeeded,
    /// Validation failed.
    Invalid,
    /// Unknown.
    Unknown,
}

/// Observed state of a RestoreSession.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestoreSessionStatus {
    /// Phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<RestorePhase>,
    /// Whether the target exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_found: Option<bool>,
    /// How long the restore took.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    /// When the restore times out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_deadline: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
    /// Number of components to restore.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_components: Option<i32>,
    /// Components by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub components: BTreeMap<String, ComponentRestoreStatus>,
    /// The hooks of this run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hooks: Option<HookStatus>,
    /// Objects it depends on (Snapshot, Addon).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dependencies: Vec<ResourceFoundStatus>,
    /// Backups paused during the restore.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paused_backups: Vec<TypedObjectReference>,
    /// A volume restore into a workload: how the workload was kept from writing meanwhile,
    /// and the replicas it is scaled back to (Stowaway's addition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload: Option<WorkloadRestoreStatus>,
    /// `ValidationPassed`, `RestoreExecutorEnsured`, `RestoreIncomplete`, `MetricsPushed`, ...
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// How a volume restore keeps the workload from writing to its volumes (the annotation
/// `stowaway.dev/restore-mode` on the RestoreSession).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum RestoreMode {
    /// Scale the workload to 0, restore, scale it back (the default).
    #[default]
    ScaleDown,
    /// Restore while the workload runs (shared volumes, or an application quiesced by
    /// preRestore hooks).
    InPlace,
}

/// The workload of a volume restore, and what the restore did to it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadRestoreStatus {
    /// How the workload is kept from writing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<RestoreMode>,
    /// Its replicas before the restore scaled it to 0 (also in the workload's annotation
    /// `stowaway.dev/restore-original-replicas`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_replicas: Option<i32>,
    /// When it was scaled to 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scaled_down_at: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
    /// When its pods were gone and the restore Job could start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pods_gone_at: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
    /// When it was scaled back to `originalReplicas`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scaled_back_at: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
}

/// Restore state of one component.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ComponentRestoreStatus {
    /// Phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<RestorePhase>,
    /// Progress (kept free-form: `secondsElapsed`, `percentDone`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_fields")]
    pub progress: Option<serde_json::Value>,
    /// How long it took.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}
