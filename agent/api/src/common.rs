//! Building blocks shared by several kinds (reference §2): usage policies, references,
//! parameter definitions, conditions, hooks, addon references and free-form fields.

use k8s_openapi::api::core::v1::{EnvVar, VolumeMount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Time};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Schema of a field kept as free-form JSON: an object whose fields the API server keeps as
/// they are (`x-kubernetes-preserve-unknown-fields: true`).
pub fn preserve_unknown_fields(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

/// Schema of a list of free-form objects.
pub fn preserve_unknown_fields_list(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "array",
        "items": {
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": true,
        },
    })
}

/// Which namespaces may refer to an object (BackupStorage, RetentionPolicy, HookTemplate,
/// BackupBlueprint).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsagePolicy {
    /// The namespaces allowed to refer to the object.
    #[serde(default)]
    pub allowed_namespaces: AllowedNamespaces,
}

/// The namespaces of a [`UsagePolicy`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AllowedNamespaces {
    /// Where the allowed namespaces come from; `Same` (the object's own namespace) by default.
    #[serde(default)]
    pub from: FromNamespaces,
    /// Labels the referring namespace must carry when `from` is `Selector`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
}

/// How [`AllowedNamespaces`] selects namespaces.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum FromNamespaces {
    /// Every namespace.
    All,
    /// Namespaces whose labels match `selector`.
    Selector,
    /// Only the object's own namespace.
    #[default]
    Same,
}

/// A reference to a named object, optionally in another namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectReference {
    /// Namespace of the object; the referring object's namespace when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Name of the object.
    pub name: String,
}

/// A reference to an object of a given kind (the core group is `""`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TypedObjectReference {
    /// API group of the object (`""` for the core group).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_group: Option<String>,
    /// Kind of the object.
    pub kind: String,
    /// Namespace of the object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Name of the object.
    pub name: String,
}

/// A reference to an object of a given kind in the same namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TypedLocalObjectReference {
    /// API group of the object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_group: Option<String>,
    /// Kind of the object.
    pub kind: String,
    /// Name of the object.
    pub name: String,
}

/// A parameter an Addon task or a HookTemplate accepts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ParameterDefinition {
    /// Parameter name.
    pub name: String,
    /// What the parameter does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<String>,
    /// Whether a value must be given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required: Option<bool>,
    /// Value used when none is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
}

/// The tool that moves the data of a task.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Driver {
    /// restic in KubeStash; Stowaway's own repository format here.
    Restic,
    /// WAL-G.
    WalG,
    /// CSI VolumeSnapshots.
    VolumeSnapshotter,
    /// Solr backups.
    Solr,
    /// Cassandra Medusa.
    Medusa,
    /// clickhouse-backup.
    ClickHouseBackup,
    /// neo4j-admin.
    Neo4jAdmin,
}

/// Status of a [`Condition`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ConditionStatus {
    /// The condition holds.
    True,
    /// The condition does not hold.
    False,
    /// Not known yet.
    #[default]
    Unknown,
}

/// An observation about an object (kmodules `Condition`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Type of the condition, such as `BackendInitialized`.
    #[serde(rename = "type")]
    pub type_: String,
    /// Whether it holds.
    pub status: ConditionStatus,
    /// The `metadata.generation` the condition was set for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// How bad a False condition is (`Error`, `Warning`, `Info`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
    /// When the status last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
    /// One-word CamelCase reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Human-readable details.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// What happens to data when an object is deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum DeletionPolicy {
    /// Delete the custom resources, keep the data in the backend.
    #[default]
    Delete,
    /// Delete the custom resources and the data.
    WipeOut,
}

/// Whether an object (a storage, a repository, a configuration) is usable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ReadinessPhase {
    /// Usable.
    Ready,
    /// Not usable (yet).
    NotReady,
}

/// Phase of a run (backup, restore, snapshot, component).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum RunPhase {
    /// Not started.
    Pending,
    /// In progress.
    Running,
    /// Done.
    Succeeded,
    /// Failed.
    Failed,
}

/// When a hook runs (meaningful for post hooks).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum HookExecutionPolicy {
    /// Whatever the outcome.
    #[default]
    Always,
    /// Only after success.
    OnSuccess,
    /// Only after failure.
    OnFailure,
}

/// A hook to run before or after a backup or restore.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HookInfo {
    /// Hook name.
    pub name: String,
    /// The HookTemplate to run.
    pub hook_template: ObjectReference,
    /// Parameters; keys must match the template's `params`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_fields")]
    pub params: Option<serde_json::Value>,
    /// Retries after a failure (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub max_retry: Option<i32>,
    /// Time limit, such as `30s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// When to run (default `Always`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_policy: Option<HookExecutionPolicy>,
    /// Variables used to resolve the template.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub variables: Vec<EnvVar>,
    /// Volumes for a Function executor.
    /// Kept free-form: each entry is a Pod `volumes[]` entry.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "crate::common::preserve_unknown_fields_list")]
    pub volumes: Vec<serde_json::Value>,
    /// Volume mounts for a Function executor.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volume_mounts: Vec<VolumeMount>,
    /// Pod and container settings for a Function executor (kept free-form).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_fields")]
    pub runtime_settings: Option<serde_json::Value>,
}

/// The addon and tasks that back up or restore a target.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AddonInfo {
    /// Name of the (cluster-scoped) Addon.
    pub name: String,
    /// Tasks of the addon to run.
    #[serde(default)]
    pub tasks: Vec<TaskReference>,
    /// Settings of the executor container (kept free-form).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_fields")]
    pub container_runtime_settings: Option<serde_json::Value>,
    /// Pod template of the job (kept free-form).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_fields")]
    pub job_template: Option<serde_json::Value>,
}

/// One task of an Addon, with its parameters.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskReference {
    /// Task name in the Addon.
    pub name: String,
    /// Variables used to resolve the task.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub variables: Vec<EnvVar>,
    /// Parameters; keys must match the task's `parameters`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_fields")]
    pub params: Option<serde_json::Value>,
    /// Volumes of the target to mount (`volumes`, `volumeMounts`, `volumeClaimTemplates`;
    /// kept free-form).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_fields")]
    pub target_volumes: Option<serde_json::Value>,
    /// Overrides of the addon's volume templates, by name (kept free-form).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_fields_list")]
    pub addon_volumes: Option<Vec<serde_json::Value>>,
}

/// A backend (storage + retention policy) of a BackupConfiguration or BackupBlueprint.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackendReference {
    /// Identifier, unique within the object; empty for the default backend.
    #[serde(default)]
    pub name: String,
    /// The BackupStorage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_ref: Option<ObjectReference>,
    /// The RetentionPolicy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_policy: Option<ObjectReference>,
}

/// Status of one hook of a session.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HookExecutionStatus {
    /// Hook name.
    pub name: String,
    /// `Succeeded`, `Failed` or `Pending`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
}

/// Status of the hooks of a session.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HookStatus {
    /// Hooks run before.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pre_hooks: Vec<HookExecutionStatus>,
    /// Hooks run after.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub post_hooks: Vec<HookExecutionStatus>,
}

/// Whether an object another object depends on exists.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceFoundStatus {
    /// The object.
    #[serde(flatten)]
    pub reference: TypedObjectReference,
    /// Whether it was found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub found: Option<bool>,
}
