//! `RetentionPolicy` (`storage.stowaway.dev/v1alpha1`): which snapshots to keep.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::UsagePolicy;

/// Spec of a RetentionPolicy. At least one of `maxRetentionPeriod` and `successfulSnapshots`
/// must be set.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "storage.stowaway.dev",
    version = "v1alpha1",
    kind = "RetentionPolicy",
    namespaced,
    category = "stowaway",
    derive = "Default",
    derive = "PartialEq",
    printcolumn(
        name = "Max-Retention-Period",
        type_ = "string",
        json_path = ".spec.maxRetentionPeriod"
    ),
    printcolumn(name = "Default", type_ = "boolean", json_path = ".spec.default"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct RetentionPolicySpec {
    /// Remove snapshots older than this: units `y`, `mo`, `w`, `d`, `h`, `m`, combinable
    /// (`30d12h30m`; a month is 30 days, a year 365).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retention_period: Option<String>,
    /// Which namespaces may use this policy (default: its own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage_policy: Option<UsagePolicy>,
    /// How many succeeded snapshots to keep, per bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub successful_snapshots: Option<SuccessfulSnapshotsKeepPolicy>,
    /// How many failed snapshots to keep (default: the last one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_snapshots: Option<FailedSnapshotsKeepPolicy>,
    /// Default policy of the namespaces allowed to use it (at most one per namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<bool>,
}

/// Keep counts for succeeded snapshots (restic's `--keep-*` buckets).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SuccessfulSnapshotsKeepPolicy {
    /// Keep the last N.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<i32>,
    /// Keep the last of each of the last N hours.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hourly: Option<i32>,
    /// Keep the last of each of the last N days.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daily: Option<i32>,
    /// Keep the last of each of the last N weeks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weekly: Option<i32>,
    /// Keep the last of each of the last N months.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monthly: Option<i32>,
    /// Keep the last of each of the last N years.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub yearly: Option<i32>,
}

/// Keep count for failed snapshots.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FailedSnapshotsKeepPolicy {
    /// Keep the last N (default 1).
    #[serde(default = "default_failed_last")]
    #[schemars(default = "default_failed_last")]
    pub last: Option<i32>,
}

impl Default for FailedSnapshotsKeepPolicy {
    fn default() -> Self {
        Self {
            last: default_failed_last(),
        }
    }
}

fn default_failed_last() -> Option<i32> {
    Some(1)
}
