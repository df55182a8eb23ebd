//! What the executor writes back, and what it returns.
//!
//! - A backup writes each **Snapshot** object: `spec.snapshotID` (the repository's snapshot
//!   id, as KubeStash's executor records its ULID) and `spec.type`, then the status: phase,
//!   `snapshotTime`, `size`, `integrity`, `totalComponents`, the components (path, phase,
//!   size, duration, driver, integrity, kind, media type), the host name, tags and addon the
//!   repository records, and condition `SnapshotMetadataUploaded`. A failure is phase Failed
//!   with the error in the component and condition `BackupIncomplete`. The operator derives
//!   the BackupSession's outcome from these phases.
//! - A restore writes `status.components[name]` of the **RestoreSession** (phase, duration,
//!   error); the operator derives the outcome from them.
//!
//! Status writes are merge patches of the fields the executor owns, so they leave the
//! operator's fields (and other components) alone.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams};
use stowaway_api::common::{Condition, ConditionStatus, Driver, RunPhase};
use stowaway_api::restore_session::{ComponentRestoreStatus, RestorePhase};
use stowaway_api::snapshot::{
    Component, ComponentKind, SnapshotAddon, SnapshotStatus, SnapshotType,
};
use stowaway_api::{RestoreSession, Snapshot, size};
use stowaway_operator::duration::format_duration;

use crate::error::{ExecuteError, Result};

/// Condition of a Snapshot whose record is in the repository.
pub const SNAPSHOT_METADATA_UPLOADED: &str = "SnapshotMetadataUploaded";
/// Condition of a Snapshot whose backup failed.
pub const BACKUP_INCOMPLETE: &str = "BackupIncomplete";

/// How one Snapshot of a backup ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SnapshotResult {
    /// Backed up now; the repository's snapshot id (hex) and the size in bytes.
    Succeeded {
        /// Snapshot id in the repository.
        id: String,
        /// Logical size (sum of the components).
        size: u64,
    },
    /// Failed now, with this message (also in the Snapshot's status).
    Failed {
        /// The error.
        error: String,
    },
    /// Finished by an earlier run: not redone.
    AlreadyFinished {
        /// Its phase.
        phase: RunPhase,
    },
}

/// One Snapshot of a backup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotOutcome {
    /// The Snapshot object.
    pub name: String,
    /// Its Repository.
    pub repository: String,
    /// How it ended.
    pub result: SnapshotResult,
}

/// What `execute_backup` did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BackupReport {
    /// Namespace of the BackupSession.
    pub namespace: String,
    /// The BackupSession.
    pub session: String,
    /// Its Snapshots, in the order of the session's repositories.
    pub snapshots: Vec<SnapshotOutcome>,
}

impl BackupReport {
    /// No Snapshot failed in this run (finished ones are not counted again).
    pub fn succeeded(&self) -> bool {
        !self
            .snapshots
            .iter()
            .any(|s| matches!(s.result, SnapshotResult::Failed { .. }))
    }
}

/// How one component of a restore ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ComponentResult {
    /// Restored now.
    Succeeded,
    /// Failed now, with this message (also in the RestoreSession's status).
    Failed {
        /// The error.
        error: String,
    },
    /// Finished by an earlier run: not redone.
    AlreadyFinished {
        /// Its phase.
        phase: RestorePhase,
    },
}

/// What `execute_restore` did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RestoreReport {
    /// Namespace of the RestoreSession.
    pub namespace: String,
    /// The RestoreSession.
    pub session: String,
    /// The Snapshot object restored from, once known.
    pub snapshot: Option<String>,
    /// Components by name.
    pub components: BTreeMap<String, ComponentResult>,
}

impl RestoreReport {
    /// No component failed in this run.
    pub fn succeeded(&self) -> bool {
        !self
            .components
            .values()
            .any(|c| matches!(c, ComponentResult::Failed { .. }))
    }
}

/// The status of a Snapshot being backed up.
pub fn snapshot_running(now: jiff::Timestamp) -> SnapshotStatus {
    SnapshotStatus {
        phase: Some(RunPhase::Running),
        last_update_time: Some(Time(now)),
        ..SnapshotStatus::default()
    }
}

/// `repository/v1/<session>/<component>`, the component path KubeStash records.
pub fn component_path(session: &str, component: &str) -> String {
    format!("repository/v1/{session}/{component}")
}

/// The status of a Snapshot whose repository snapshot `snapshot` was committed after a run
/// of `duration`; `session` is the session's name in its BackupConfiguration.
pub fn snapshot_succeeded(
    snapshot: &stowaway_repository::Snapshot,
    session: &str,
    duration: Duration,
    now: jiff::Timestamp,
) -> SnapshotStatus {
    let components: BTreeMap<String, Component> = snapshot
        .components
        .iter()
        .map(|c| {
            (
                c.name.clone(),
                Component {
                    path: Some(component_path(session, &c.name)),
                    phase: Some(RunPhase::Succeeded),
                    size: Some(size::format(c.size)),
                    duration: Some(format_duration(duration)),
                    integrity: Some(true),
                    driver: Some(Driver::Restic),
                    kind: Some(match c.kind {
                        stowaway_repository::ComponentKind::Tree => ComponentKind::Tree,
                        stowaway_repository::ComponentKind::Stream => ComponentKind::Stream,
                    }),
                    media_type: Some(c.media_type.clone()).filter(|m| !m.is_empty()),
                    ..Component::default()
                },
            )
        })
        .collect();
    let total: u64 = snapshot.components.iter().map(|c| c.size).sum();
    SnapshotStatus {
        phase: Some(RunPhase::Succeeded),
        snapshot_time: Some(Time(snapshot.time)),
        last_update_time: Some(Time(now)),
        size: Some(size::format(total)),
        integrity: Some(true),
        total_components: i32::try_from(components.len()).ok(),
        components,
        hostname: Some(snapshot.hostname.clone()),
        tags: snapshot.tags.clone(),
        addon: Some(SnapshotAddon {
            name: snapshot.addon.name.clone(),
            version: Some(snapshot.addon.version.clone()).filter(|v| !v.is_empty()),
            digest: Some(snapshot.addon.digest.clone()).filter(|d| !d.is_empty()),
        }),
        conditions: vec![Condition {
            type_: SNAPSHOT_METADATA_UPLOADED.into(),
            status: ConditionStatus::True,
            reason: Some("SuccessfullyUploadedSnapshotMetadata".into()),
            message: Some(format!(
                "snapshot {} recorded in the repository",
                snapshot.id.to_hex()
            )),
            last_transition_time: Some(Time(now)),
            ..Condition::default()
        }],
        ..SnapshotStatus::default()
    }
}

/// The status of a Snapshot whose backup failed with `message` (`reason`: a one-word
/// CamelCase reason, see [`ExecuteError::reason`]): the component `component` (the one
/// expected) carries the error.
pub fn snapshot_failed(
    component: &str,
    session: &str,
    reason: &str,
    message: &str,
    duration: Duration,
    now: jiff::Timestamp,
) -> SnapshotStatus {
    let message = message.to_owned();
    SnapshotStatus {
        phase: Some(RunPhase::Failed),
        last_update_time: Some(Time(now)),
        total_components: Some(1),
        components: BTreeMap::from([(
            component.to_owned(),
            Component {
                path: Some(component_path(session, component)),
                phase: Some(RunPhase::Failed),
                duration: Some(format_duration(duration)),
                error: Some(message.clone()),
                driver: Some(Driver::Restic),
                ..Component::default()
            },
        )]),
        conditions: vec![Condition {
            type_: BACKUP_INCOMPLETE.into(),
            status: ConditionStatus::True,
            reason: Some(reason.into()),
            message: Some(message),
            last_transition_time: Some(Time(now)),
            ..Condition::default()
        }],
        ..SnapshotStatus::default()
    }
}

/// Writes `status` as a merge patch of the Snapshot's status.
pub(crate) async fn write_snapshot_status(
    api: &Api<Snapshot>,
    name: &str,
    status: &SnapshotStatus,
) -> Result<()> {
    let patch = serde_json::json!({ "status": status });
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|e| ExecuteError::kube(format!("writing the status of Snapshot {name}"), e))?;
    Ok(())
}

/// Records the repository's snapshot id in the Snapshot's spec.
pub(crate) async fn write_snapshot_id(api: &Api<Snapshot>, name: &str, id: &str) -> Result<()> {
    let patch = serde_json::json!({ "spec": {
        "snapshotID": id,
        "type": SnapshotType::FullBackup,
    }});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|e| ExecuteError::kube(format!("recording the id in Snapshot {name}"), e))?;
    Ok(())
}

/// The status of a restored component.
pub fn component_restore(
    phase: RestorePhase,
    duration: Option<Duration>,
    error: Option<String>,
) -> ComponentRestoreStatus {
    ComponentRestoreStatus {
        phase: Some(phase),
        duration: duration.map(format_duration),
        error,
        progress: None,
    }
}

/// Writes `components` into the RestoreSession's `status.components` (a merge patch: other
/// components are left as they are).
pub(crate) async fn write_restore_components(
    api: &Api<RestoreSession>,
    name: &str,
    components: &BTreeMap<String, ComponentRestoreStatus>,
) -> Result<()> {
    if components.is_empty() {
        return Ok(());
    }
    let patch = serde_json::json!({ "status": { "components": components } });
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|e| {
            ExecuteError::kube(format!("writing the status of RestoreSession {name}"), e)
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_snapshot_status_names_the_error() {
        let now: jiff::Timestamp = "2026-03-01T12:00:00Z".parse().expect("time");
        let error = ExecuteError::DeadlinePassed { deadline: now };
        let status = snapshot_failed(
            "dump",
            "daily",
            error.reason(),
            &error.to_string(),
            Duration::from_secs(3),
            now,
        );
        assert_eq!(status.phase, Some(RunPhase::Failed));
        let component = &status.components["dump"];
        assert_eq!(component.phase, Some(RunPhase::Failed));
        assert_eq!(
            component.error.as_deref(),
            Some("the session's deadline 2026-03-01T12:00:00Z has passed")
        );
        assert_eq!(component.duration.as_deref(), Some("3s"));
        assert_eq!(component.path.as_deref(), Some("repository/v1/daily/dump"));
        assert_eq!(status.conditions[0].type_, BACKUP_INCOMPLETE);
        assert_eq!(
            status.conditions[0].reason.as_deref(),
            Some("DeadlinePassed")
        );
        // A merge patch carries only what is set.
        let json = serde_json::to_value(&status).expect("json");
        assert!(json.get("snapshotTime").is_none(), "{json}");
        assert!(json.get("size").is_none(), "{json}");
    }

    #[test]
    fn reports_succeed_unless_something_failed_now() {
        let mut report = BackupReport::default();
        assert!(report.succeeded());
        report.snapshots.push(SnapshotOutcome {
            name: "a".into(),
            repository: "r".into(),
            result: SnapshotResult::AlreadyFinished {
                phase: RunPhase::Failed,
            },
        });
        assert!(report.succeeded(), "an earlier failure is not this run's");
        report.snapshots.push(SnapshotOutcome {
            name: "b".into(),
            repository: "r".into(),
            result: SnapshotResult::Failed { error: "x".into() },
        });
        assert!(!report.succeeded());
        let mut restore = RestoreReport::default();
        restore
            .components
            .insert("dump".into(), ComponentResult::Succeeded);
        assert!(restore.succeeded());
        restore.components.insert(
            "other".into(),
            ComponentResult::Failed { error: "x".into() },
        );
        assert!(!restore.succeeded());
    }
}
