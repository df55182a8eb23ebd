//! `HookTemplate` (`core.stowaway.dev/v1alpha1`): an action run before or after a backup or
//! restore (an exec, an HTTP request, a TCP check), by the operator, in a pod or as a Function.

use k8s_openapi::api::core::v1::{EnvVar, VolumeMount};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{ParameterDefinition, UsagePolicy, preserve_unknown_fields};

/// Spec of a HookTemplate.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "core.stowaway.dev",
    version = "v1alpha1",
    kind = "HookTemplate",
    namespaced,
    category = "stowaway",
    derive = "Default",
    derive = "PartialEq",
    printcolumn(name = "Executor", type_ = "string", json_path = ".spec.executor.type"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct HookTemplateSpec {
    /// Which namespaces may use this template (default: its own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage_policy: Option<UsagePolicy>,
    /// Parameters the template accepts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<ParameterDefinition>,
    /// What to do: one of `exec`, `httpGet`, `httpPost`, `tcpSocket`, plus `containerName`
    /// (kmodules prober handler; kept free-form).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_fields")]
    pub action: Option<serde_json::Value>,
    /// Who runs the action.
    pub executor: HookExecutor,
}

/// Who runs a hook.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HookExecutor {
    /// `Function`, `Pod` or `Operator`.
    #[serde(rename = "type")]
    pub type_: HookExecutorType,
    /// For `Function`: the Function and its environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<FunctionHookExecutorSpec>,
    /// For `Pod`: which pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<PodHookExecutorSpec>,
}

/// Kind of hook executor.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum HookExecutorType {
    /// A Job runs a Function.
    Function,
    /// The action runs in selected pods.
    Pod,
    /// The operator runs the action.
    #[default]
    Operator,
}

/// A Function executor.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FunctionHookExecutorSpec {
    /// Function name.
    pub name: String,
    /// Environment of the container.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    /// Volume mounts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volume_mounts: Vec<VolumeMount>,
    /// Volumes.
    /// Kept free-form: each entry is a Pod `volumes[]` entry.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "crate::common::preserve_unknown_fields_list")]
    pub volumes: Vec<serde_json::Value>,
}

/// A Pod executor.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodHookExecutorSpec {
    /// Label selector, `k=v,k2=v2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// Only pods with this owner (kept free-form OwnerReference filter).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_fields")]
    pub owner: Option<serde_json::Value>,
    /// `ExecuteOnOne` (default) or `ExecuteOnAll`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<PodHookExecutionStrategy>,
}

/// On how many pods a Pod hook runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum PodHookExecutionStrategy {
    /// One matching pod.
    #[default]
    ExecuteOnOne,
    /// Every matching pod.
    ExecuteOnAll,
}
