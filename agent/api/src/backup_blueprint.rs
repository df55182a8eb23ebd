//! `BackupBlueprint` (`core.stowaway.dev/v1alpha1`): a template from which the operator
//! creates BackupConfigurations for annotated targets (auto-backup).

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::backup_configuration::Session;
use crate::common::{BackendReference, UsagePolicy};

/// Spec of a BackupBlueprint.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "core.stowaway.dev",
    version = "v1alpha1",
    kind = "BackupBlueprint",
    namespaced,
    category = "stowaway",
    derive = "Default",
    derive = "PartialEq",
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct BackupBlueprintSpec {
    /// Which namespaces may use this blueprint (default: its own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage_policy: Option<UsagePolicy>,
    /// Kinds to watch for annotated objects.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subjects: Vec<TypeMeta>,
    /// The BackupConfiguration to create; may hold `${variables}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_configuration_template: Option<BackupConfigurationTemplate>,
}

/// A kind: `apiVersion` and `kind`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TypeMeta {
    /// API version, such as `apps/v1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// Kind, such as `StatefulSet`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

/// Template of the generated BackupConfiguration.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupConfigurationTemplate {
    /// Namespace of the BackupConfiguration (default: the blueprint's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Backends, as in a BackupConfiguration.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backends: Vec<BackendReference>,
    /// Sessions, as in a BackupConfiguration.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sessions: Vec<Session>,
    /// `OnDelete`: delete the generated configurations with the blueprint; unset: keep them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_policy: Option<BlueprintDeletionPolicy>,
}

/// What deleting a blueprint deletes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum BlueprintDeletionPolicy {
    /// Delete the generated BackupConfigurations.
    OnDelete,
}
