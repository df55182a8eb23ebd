//! `BackupConfiguration` (`core.stowaway.dev/v1alpha1`): what to back up, where, and when.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{
    AddonInfo, BackendReference, Condition, HookInfo, ObjectReference, ResourceFoundStatus,
    TypedObjectReference, preserve_unknown_fields,
};

/// Spec of a BackupConfiguration.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "core.stowaway.dev",
    version = "v1alpha1",
    kind = "BackupConfiguration",
    namespaced,
    status = "BackupConfigurationStatus",
    shortname = "bc",
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
pub struct BackupConfigurationSpec {
    /// What to back up (a workload, a PVC, an AppBinding, a database object, a Namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<TypedObjectReference>,
    /// Storages and retention policies; the defaults of the namespace when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backends: Vec<BackendReference>,
    /// Schedules, each with its repositories and addon (at least one).
    #[serde(default)]
    pub sessions: Vec<Session>,
    /// Suspends scheduling and event processing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,
}

/// One schedule of a BackupConfiguration.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Session {
    /// Session name, unique within the configuration.
    pub name: String,
    /// When to run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduler: Option<SchedulerSpec>,
    /// Hooks around the backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hooks: Option<BackupHooks>,
    /// Retries of failed runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_config: Option<RetryConfig>,
    /// Time limit of a run, such as `2h` (none by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_timeout: Option<String>,
    /// How many BackupSessions to keep (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(default = "one")]
    pub session_history_limit: Option<i32>,
    /// The addon and its tasks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addon: Option<AddonInfo>,
    /// Repositories the session writes to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repositories: Vec<RepositoryInfo>,
}

fn one() -> Option<i32> {
    Some(1)
}

/// When a session runs (CronJob semantics).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SchedulerSpec {
    /// Cron schedule, such as `*/5 * * * *`.
    pub schedule: String,
    /// IANA time zone the schedule is read in, such as `Europe/Berlin` (default UTC; as
    /// CronJob's `timeZone`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// Deadline in seconds for starting a missed run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starting_deadline_seconds: Option<i64>,
    /// What to do when a run is still going (default `Allow`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency_policy: Option<ConcurrencyPolicy>,
    /// Suspends the schedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspend: Option<bool>,
    /// Template of the trigger job (kept free-form: `backoffLimit`, `template`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_fields")]
    pub job_template: Option<serde_json::Value>,
    /// Succeeded trigger jobs to keep (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub successful_jobs_history_limit: Option<i32>,
    /// Failed trigger jobs to keep (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_jobs_history_limit: Option<i32>,
}

/// CronJob concurrency policy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ConcurrencyPolicy {
    /// Runs may overlap.
    #[default]
    Allow,
    /// Skip a run while one is going.
    Forbid,
    /// Replace the running one.
    Replace,
}

/// Hooks around a backup.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupHooks {
    /// Run before the backup.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pre_backup: Vec<HookInfo>,
    /// Run after the backup.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub post_backup: Vec<HookInfo>,
}

/// Retries of failed runs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetryConfig {
    /// Retries (default 1, at least 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_retry: Option<i32>,
    /// Wait before a retry, such as `30s` (default: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<String>,
}

/// What deleting a Repository created from a BackupConfiguration deletes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum RepositoryDeletionPolicy {
    /// Snapshot resources only.
    Delete,
    /// Resources and data.
    WipeOut,
    /// Nothing.
    Retain,
}

/// A repository a session writes to; the operator creates the Repository from it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RepositoryInfo {
    /// Repository name.
    pub name: String,
    /// Backend name (empty: the default backend).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    /// Verifier of the backups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_verifier: Option<ObjectReference>,
    /// Directory in the backend.
    pub directory: String,
    /// Secret with the repository password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption_secret: Option<ObjectReference>,
    /// Deletion policy of the Repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_policy: Option<RepositoryDeletionPolicy>,
}

/// Phase of a BackupConfiguration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum BackupConfigurationPhase {
    /// Ready to run.
    Ready,
    /// Something it needs is missing.
    NotReady,
    /// Validation failed.
    Invalid,
}

/// Observed state of a BackupConfiguration.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupConfigurationStatus {
    /// Phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<BackupConfigurationPhase>,
    /// Whether the target exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_found: Option<bool>,
    /// `ValidationPassed`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Readiness of each backend (kept free-form: `name`, `ready`, `storage`,
    /// `retentionPolicy`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::common::preserve_unknown_fields_list")]
    pub backends: Option<Vec<serde_json::Value>>,
    /// Readiness of each repository.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repositories: Vec<RepoStatus>,
    /// Objects it depends on (such as the Addon).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dependencies: Vec<ResourceFoundStatus>,
    /// State of each session.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sessions: Vec<SessionStatus>,
}

/// Readiness of a repository of a BackupConfiguration.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RepoStatus {
    /// Repository name.
    pub name: String,
    /// Phase of the Repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<crate::common::ReadinessPhase>,
    /// Why it is not ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Whether a verifier is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification_configured: Option<bool>,
}

/// State of a session of a BackupConfiguration.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionStatus {
    /// Session name.
    pub name: String,
    /// Next scheduled run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_schedule: Option<String>,
    /// The last schedule instant the operator has dealt with (run, skipped or missed), so that
    /// a restart of the operator neither skips nor repeats a run (Stowaway addition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_schedule: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
    /// `SchedulerEnsured`, `InitialBackupTriggered`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}
