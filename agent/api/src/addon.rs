//! `Addon` (`addons.stowaway.dev/v1alpha1`, cluster-scoped): the backup and restore tasks of
//! one kind of target. In Stowaway a task's Function names a WebAssembly addon.
//!
//! Stowaway additions: `spec.source` (where a third-party addon's component is downloaded
//! from, with its SHA-256) and a status saying whether that download was verified.

use k8s_openapi::api::core::v1::VolumeMount;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{Condition, Driver, ParameterDefinition, preserve_unknown_fields};

/// Spec of an Addon.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "addons.stowaway.dev",
    version = "v1alpha1",
    kind = "Addon",
    category = "stowaway",
    status = "AddonStatus",
    derive = "Default",
    derive = "PartialEq",
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "Source",
        type_ = "string",
        json_path = ".spec.source.url",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct AddonSpec {
    /// Backup tasks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backup_tasks: Vec<Task>,
    /// Restore tasks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub restore_tasks: Vec<Task>,
    /// Where the addon's WebAssembly component comes from (a Stowaway addition; built-in
    /// addons and KubeStash catalog entries have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<AddonSource>,
}

/// The component of a third-party addon: downloaded from `url`, accepted only with this
/// SHA-256.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AddonSource {
    /// `https://` URL of the `.wasm` component.
    pub url: String,
    /// SHA-256 of the component: 64 hex digits.
    pub sha256: String,
}

/// Observed state of an Addon with a `source` (a Stowaway addition).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AddonStatus {
    /// `Ready` once the component was downloaded and its digest matched; `Failed` otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<AddonPhase>,
    /// The SHA-256 that was verified (lower-case hex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// Size of the component, such as `1.20 MiB`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
    /// `ComponentVerified` (reasons `DigestVerified`, `DownloadFailed`, `DigestMismatch`,
    /// `TooLarge`, `InvalidSource`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// Phase of an Addon with a `source`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum AddonPhase {
    /// The component was downloaded and matches its digest.
    Ready,
    /// It could not be downloaded or does not match.
    Failed,
}

/// One task of an Addon.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Task {
    /// Task name, such as `logical-backup`.
    pub name: String,
    /// Function name.
    pub function: String,
    /// Tool that moves the data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<Driver>,
    /// Where the task runs (only `Job` is used).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executor: Option<TaskExecutor>,
    /// One job for the whole target instead of one per pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub singleton: Option<bool>,
    /// Parameters.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parameters: Vec<ParameterDefinition>,
    /// Volumes the task needs; users override them by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volume_template: Vec<VolumeTemplate>,
    /// Mounts of those volumes in the executor container.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volume_mounts: Vec<VolumeMount>,
}

/// Where a task runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum TaskExecutor {
    /// A Job.
    Job,
    /// The sidecar.
    Sidecar,
    /// An ephemeral container.
    EphemeralContainer,
    /// Jobs at several levels.
    MultiLevelJob,
}

/// A volume of a task.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VolumeTemplate {
    /// Volume name.
    pub name: String,
    /// What it is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<String>,
    /// Volume source or `volumeClaimTemplate` (kept free-form).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_fields")]
    pub source: Option<serde_json::Value>,
}
