//! `BackupSession` (`core.stowaway.dev/v1alpha1`): one run of one session of a
//! BackupConfiguration.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{
    Condition, HookStatus, ObjectReference, RunPhase, TypedLocalObjectReference,
    TypedObjectReference,
};

/// Spec of a BackupSession (immutable once created).
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "core.stowaway.dev",
    version = "v1alpha1",
    kind = "BackupSession",
    namespaced,
    status = "BackupSessionStatus",
    category = "stowaway",
    derive = "Default",
    derive = "PartialEq",
    printcolumn(
        name = "Invoker-Type",
        type_ = "string",
        json_path = ".spec.invoker.kind",
        priority = 1
    ),
    printcolumn(
        name = "Invoker-Name",
        type_ = "string",
        json_path = ".spec.invoker.name",
        priority = 1
    ),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Duration", type_ = "string", json_path = ".status.duration"),
    printcolumn(name = "Size", type_ = "string", json_path = ".status.size"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct BackupSessionSpec {
    /// The BackupConfiguration (or BackupBatch) this run belongs to.
    pub invoker: TypedLocalObjectReference,
    /// Session name in the invoker.
    pub session: String,
    /// Retries left; a failed session with retries left is followed by a new one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_left: Option<i32>,
    /// Time limit of the backup, such as `2h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_timeout: Option<String>,
}

/// Phase of a BackupSession.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum BackupSessionPhase {
    /// Not started.
    Pending,
    /// In progress.
    Running,
    /// Done.
    Succeeded,
    /// Failed.
    Failed,
    /// Not run (another backup was running or the invoker was not ready).
    Skipped,
}

/// Observed state of a BackupSession.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupSessionStatus {
    /// Derived from the conditions and the snapshots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<BackupSessionPhase>,
    /// How long the run took, such as `1m2s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    /// Total size of the snapshots written (Stowaway addition, for `kubectl get`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
    /// When the run times out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_deadline: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
    /// Number of snapshots expected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_snapshots: Option<i32>,
    /// The snapshots of this run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub snapshots: Vec<SnapshotStatus>,
    /// The hooks of this run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hooks: Option<HookStatus>,
    /// Retention policies applied after the run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retention_policy: Vec<RetentionPolicyApplyStatus>,
    /// Whether a retry was created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retried: Option<bool>,
    /// When the retry runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_retry: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
    /// `BackupSkipped`, `BackupExecutorEnsured`, `SnapshotsEnsured`, `MetricsPushed`, ...
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// One snapshot of a BackupSession.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotStatus {
    /// Snapshot name.
    pub name: String,
    /// Snapshot phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<RunPhase>,
    /// The application backed up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_ref: Option<TypedObjectReference>,
    /// Repository name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    /// Who writes it: `Sidecar` (the target's sidecar claims it) or `Job` (Stowaway).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executor: Option<String>,
}

/// Phase of applying a retention policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum RetentionPolicyApplyPhase {
    /// Not applied yet.
    Pending,
    /// Applied.
    Applied,
    /// Applying failed.
    FailedToApply,
}

/// Result of applying a retention policy to a repository.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetentionPolicyApplyStatus {
    /// The RetentionPolicy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#ref: Option<ObjectReference>,
    /// Repository name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    /// Phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<RetentionPolicyApplyPhase>,
    /// Why applying failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}
