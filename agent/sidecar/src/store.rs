//! What the on-demand API's handlers do, behind one trait: [`KubeStore`] creates and reads
//! the objects in the cluster, [`LocalStore`] runs backups and restores itself (the
//! standalone sidecar), [`MemoryStore`] keeps them in memory (tests).

mod kube;
mod local;
mod memory;
mod target;

pub use self::kube::KubeStore;
pub use self::local::{BackupDone, Job, LocalStore, RunLimits, Trigger, Work};
pub use self::memory::MemoryStore;
pub use self::target::{CONFIGURATION_ENV, TargetStore, configuration_for};

use crate::wire::{BackupInfo, BackupRequest, RestoreInfo, RestoreRequest, SnapshotInfo};

/// Why a store could not do what a request asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The request names something the configuration does not have, or that does not fit.
    #[error("{0}")]
    Invalid(String),
    /// The object does not exist, or belongs to another configuration or target.
    #[error("{kind} {name} not found")]
    NotFound {
        /// `BackupSession`, `Snapshot`.
        kind: &'static str,
        /// Its name.
        name: String,
    },
    /// The sidecar's BackupConfiguration does not exist.
    #[error("BackupConfiguration {namespace}/{name} not found: the sidecar has nothing to back up")]
    ConfigurationNotFound {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// No BackupConfiguration (or no single one) targets the sidecar's workload.
    #[error("{0}")]
    NoConfiguration(String),
    /// The Kubernetes API could not be reached.
    #[error("the Kubernetes API is unreachable: {0}")]
    Unreachable(String),
    /// The Kubernetes API refused the request (permissions, validation).
    #[error("the Kubernetes API refused: {0}")]
    Refused(String),
    /// The request cannot be taken now (a run of the same kind already waits, the sidecar
    /// is stopping); the message says why and what to do.
    #[error("{0}")]
    Busy(String),
    /// The work behind the store failed (the repository cannot be read).
    #[error("{0}")]
    Failed(String),
}

/// The sessions and snapshots of the configuration a sidecar serves.
#[async_trait::async_trait]
pub trait SessionStore: Send + Sync {
    /// Creates a BackupSession marked on-demand (the request is valid in form); returns its
    /// name.
    async fn create_backup(&self, request: &BackupRequest) -> Result<String, StoreError>;

    /// The BackupSession `name` of this configuration ([`StoreError::NotFound`] for another
    /// configuration's).
    async fn backup(&self, name: &str) -> Result<BackupInfo, StoreError>;

    /// The target's snapshots, newest first.
    async fn snapshots(&self) -> Result<Vec<SnapshotInfo>, StoreError>;

    /// Creates a RestoreSession of one of the target's snapshots into the target; returns its
    /// name.
    async fn create_restore(&self, request: &RestoreRequest) -> Result<String, StoreError>;

    /// The restore `name` the API created ([`StoreError::NotFound`] for any other).
    async fn restore(&self, name: &str) -> Result<RestoreInfo, StoreError>;
}

/// The message of an unknown session (`None`: the default, when there are none): the ones
/// there are.
fn unknown_session(configuration: &str, session: Option<&str>, known: &[&str]) -> StoreError {
    StoreError::Invalid(match session {
        Some(session) => format!(
            "session: BackupConfiguration {configuration} has no session {session:?} (it has: {})",
            known.join(", ")
        ),
        None => format!("BackupConfiguration {configuration} has no sessions"),
    })
}

/// The message of a component a snapshot lacks.
fn missing_components(snapshot: &SnapshotInfo, wanted: &[String]) -> Option<StoreError> {
    if snapshot.components.is_empty() {
        return None;
    }
    let missing: Vec<&str> = wanted
        .iter()
        .filter(|c| !snapshot.components.contains(c))
        .map(String::as_str)
        .collect();
    (!missing.is_empty()).then(|| {
        StoreError::Invalid(format!(
            "components: snapshot {} has no component {} (it has: {})",
            snapshot.name,
            missing.join(", "),
            snapshot.components.join(", ")
        ))
    })
}

/// The newest succeeded snapshot (`latest`).
fn latest(snapshots: &[SnapshotInfo]) -> Option<&SnapshotInfo> {
    snapshots
        .iter()
        .filter(|s| s.phase == Some(stowaway_api::common::RunPhase::Succeeded))
        .max_by(|a, b| a.time.cmp(&b.time).then_with(|| a.name.cmp(&b.name)))
}
