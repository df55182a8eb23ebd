//! `BackupBatch` (`core.stowaway.dev/v1alpha1`): several co-related targets (an application
//! and its database, say) backed up together, as one BackupSession per run.
//!
//! The shape follows KubeStash's BackupBatch: `targets[]` names the members once, and each
//! session lists, per member, the addon and the repositories. A run's snapshots of every
//! member belong to the same BackupSession, so a RestoreSession can restore them together
//! (`spec.dataSource.batch`).

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::backup_configuration::{
    BackupConfigurationStatus, BackupHooks, RepositoryInfo, RetryConfig, SchedulerSpec,
};
use crate::common::{AddonInfo, BackendReference, ResourceFoundStatus, TypedObjectReference};

/// Spec of a BackupBatch.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "core.stowaway.dev",
    version = "v1alpha1",
    kind = "BackupBatch",
    namespaced,
    status = "BackupBatchStatus",
    shortname = "bb",
    category = "stowaway",
    derive = "Default",
    derive = "PartialEq",
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Paused", type_ = "boolean", json_path = ".spec.paused"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct BackupBatchSpec {
    /// Storages and retention policies; the defaults of the namespace when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backends: Vec<BackendReference>,
    /// The members: the targets backed up together, each under a name unique in the batch.
    #[serde(default)]
    pub targets: Vec<BatchTarget>,
    /// Schedules; each says, per member, the addon and the repositories.
    #[serde(default)]
    pub sessions: Vec<BatchSession>,
    /// Suspends scheduling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,
}

/// One member of a batch.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BatchTarget {
    /// Member name, unique in the batch.
    pub name: String,
    /// The target (a workload, a PVC, an AppBinding, a database object).
    pub app_ref: TypedObjectReference,
}

/// One schedule of a batch.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BatchSession {
    /// Session name, unique within the batch.
    pub name: String,
    /// When to run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduler: Option<SchedulerSpec>,
    /// Hooks around the whole batch: pre-hooks before any member is read, post-hooks after
    /// every member finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hooks: Option<BackupHooks>,
    /// Retries of failed runs (a retry backs up every member again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_config: Option<RetryConfig>,
    /// Time limit of a run (Go duration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_timeout: Option<String>,
    /// Finished BackupSessions kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_history_limit: Option<i32>,
    /// The members taking part in this session, each with its addon and repositories.
    #[serde(default)]
    pub targets: Vec<BatchSessionTarget>,
}

/// A member's part of a batch session.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BatchSessionTarget {
    /// The member (a name in `spec.targets`).
    pub name: String,
    /// Addon and tasks backing the member up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addon: Option<AddonInfo>,
    /// Repositories the member's snapshots go to (each belongs to this member alone).
    #[serde(default)]
    pub repositories: Vec<RepositoryInfo>,
}

/// Status of a BackupBatch: a BackupConfiguration's status plus the members found.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupBatchStatus {
    /// Phase, conditions, repositories and sessions, as for a BackupConfiguration
    /// (`targetFound` is true when every member exists).
    #[serde(flatten)]
    pub common: BackupConfigurationStatus,
    /// Each member's target and whether it exists.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<ResourceFoundStatus>,
}
