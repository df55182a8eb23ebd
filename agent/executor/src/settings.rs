//! How the executor runs: the addon runtime, where the built-in addons come from, where the
//! target is mounted, and what it records in snapshots.

use std::path::PathBuf;
use std::sync::Arc;

use stowaway_operator::addon_registry::{AddonParameter, BuiltinAddon};
use stowaway_runtime::{Addon, AddonInfo, Operation, ParameterType, Runtime};

use crate::error::{ExecuteError, Result};

/// Looks up a built-in addon's component by its Stowaway name (`volume`, `postgres`,
/// `mysql`); `stowaway_addons::builtin` in the binary.
pub type BuiltinAddons = fn(&str) -> Option<&'static [u8]>;

/// Lists the names [`BuiltinAddons`] knows, for messages; `stowaway_addons::builtin_names`.
pub type BuiltinNames = fn() -> Vec<&'static str>;

/// Host name recorded in snapshots by default: the one KubeStash gives a PersistentVolumeClaim
/// or Deployment target (also used for StatefulSets and DaemonSets unless the settings say
/// otherwise), stable across the Job's pods so that the files cache finds the parent
/// snapshot and retention groups the snapshots of one target together.
pub const DEFAULT_HOSTNAME: &str = "host-0";

/// Settings of the executor.
#[derive(Clone)]
pub struct Settings {
    /// The addon runtime (one wasmtime engine per process).
    pub runtime: Runtime,
    /// Where built-in addons come from.
    pub builtin: BuiltinAddons,
    /// The names of the built-in addons, for messages.
    pub builtin_names: BuiltinNames,
    /// Where a PersistentVolumeClaim target is mounted (`job::TARGET_MOUNT` in a Job).
    pub target_root: PathBuf,
    /// Where a workload's volumes are mounted, one directory per volume named after it
    /// (`injection::VOLUMES_DIR` in the sidecar and in a workload's restore Job).
    pub volumes_dir: PathBuf,
    /// Host name recorded in snapshots (default [`DEFAULT_HOSTNAME`]).
    pub hostname: String,
    /// Memory limit of an addon, in bytes (default 256 MiB).
    pub memory_bytes: u64,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("target_root", &self.target_root)
            .field("volumes_dir", &self.volumes_dir)
            .field("hostname", &self.hostname)
            .field("memory_bytes", &self.memory_bytes)
            .finish_non_exhaustive()
    }
}

impl Settings {
    /// Settings with the defaults: the target at `job::TARGET_MOUNT`, a workload's volumes
    /// under `injection::VOLUMES_DIR`, host name [`DEFAULT_HOSTNAME`], 256 MiB of addon
    /// memory.
    pub fn new(runtime: Runtime, builtin: BuiltinAddons, builtin_names: BuiltinNames) -> Self {
        Settings {
            runtime,
            builtin,
            builtin_names,
            target_root: PathBuf::from(stowaway_operator::job::TARGET_MOUNT),
            volumes_dir: PathBuf::from(stowaway_operator::injection::VOLUMES_DIR),
            hostname: DEFAULT_HOSTNAME.to_owned(),
            memory_bytes: stowaway_runtime::JobLimits::default().memory_bytes,
        }
    }

    /// Loads the built-in addon `name` refers to (KubeStash names such as `pvc-addon` map
    /// onto Stowaway's built-in addons).
    pub fn load_addon(&self, name: &str) -> Result<Arc<Addon>> {
        let builtin = stowaway_operator::names::builtin_addon(name);
        let Some(bytes) = (self.builtin)(builtin) else {
            let mut names = (self.builtin_names)();
            names.sort_unstable();
            return Err(ExecuteError::UnsupportedAddon {
                name: name.to_owned(),
                builtin: format!("built in: {}", names.join(", ")),
            });
        };
        Ok(Arc::new(self.runtime.load(bytes, builtin)?))
    }

    /// Loads every built-in addon and returns how each describes itself, for the operator's
    /// addon registry.
    pub fn builtin_descriptions(&self) -> Result<Vec<BuiltinAddon>> {
        (self.builtin_names)()
            .into_iter()
            .map(|name| {
                let addon = self.load_addon(name)?;
                Ok(describe(addon.info(), addon.digest()))
            })
            .collect()
    }
}

/// The registry's description of an addon: what it declares and its component's SHA-256.
pub fn describe(info: &AddonInfo, digest: &str) -> BuiltinAddon {
    BuiltinAddon {
        name: info.name.clone(),
        version: info.version.clone(),
        description: info.description.clone(),
        digest: digest.to_owned(),
        target_kinds: info.target_kinds.clone(),
        backup: info.operations.contains(&Operation::Backup),
        restore: info.operations.contains(&Operation::Restore),
        parameters: info
            .parameters
            .iter()
            .map(|p| AddonParameter {
                name: p.name.clone(),
                kind: match p.kind {
                    ParameterType::Text => "text",
                    ParameterType::Integer => "integer",
                    ParameterType::Boolean => "boolean",
                    ParameterType::TextList => "text-list",
                    ParameterType::Duration => "duration",
                }
                .to_owned(),
                description: p.description.clone(),
                default: p.default.clone(),
            })
            .collect(),
    }
}
