//! The JSON of the on-demand API, shared by the server ([`crate::api`]) and the client
//! ([`crate::client`]). Field names are camelCase, like the Kubernetes objects behind them.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use stowaway_api::backup_session::BackupSessionPhase;
use stowaway_api::common::RunPhase;
use stowaway_api::restore_session::RestorePhase;

use crate::names::is_object_name;

/// Longest tag (an annotation value, shown in listings).
pub const MAX_TAG: usize = 256;
/// Longest component name.
pub const MAX_COMPONENT: usize = 63;

/// `POST /v1/backups`: every field is optional, and an empty body is `{}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackupRequest {
    /// Session of the BackupConfiguration to run (default: its first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// A free text recorded on the BackupSession (annotation `stowaway.dev/tag`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// Components to back up (default: all the addon makes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub components: Vec<String>,
}

impl BackupRequest {
    /// Checks the fields' form (whether the session exists is the store's business).
    pub fn validate(&self) -> Result<(), String> {
        if let Some(session) = &self.session
            && !is_object_name(session)
        {
            return Err(format!("session: {session:?} is not a session name"));
        }
        if let Some(tag) = &self.tag {
            if tag.is_empty() || tag.chars().count() > MAX_TAG {
                return Err(format!("tag: 1 to {MAX_TAG} characters"));
            }
            if tag.chars().any(char::is_control) {
                return Err("tag: no control characters".to_owned());
            }
        }
        validate_components(&self.components)
    }
}

/// `POST /v1/restores`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RestoreRequest {
    /// Snapshot object to restore, or `latest` (the target's newest succeeded one).
    pub snapshot: String,
    /// Components to restore (default: all of the snapshot's).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub components: Vec<String>,
}

impl RestoreRequest {
    /// Checks the fields' form.
    pub fn validate(&self) -> Result<(), String> {
        if !is_object_name(&self.snapshot) {
            return Err(format!(
                "snapshot: {:?} is not a Snapshot name (or latest)",
                self.snapshot
            ));
        }
        validate_components(&self.components)
    }
}

/// Whether `name` is a component name: `[A-Za-z0-9._-]`, 1 to [`MAX_COMPONENT`] characters.
pub fn is_component_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_COMPONENT
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Component names: `[A-Za-z0-9._-]`, at most [`MAX_COMPONENT`] characters, each once.
fn validate_components(components: &[String]) -> Result<(), String> {
    for (i, c) in components.iter().enumerate() {
        if !is_component_name(c) {
            return Err(format!(
                "components[{i}]: {c:?} is not a component name (letters, digits, '.', '_', '-'; at most {MAX_COMPONENT})"
            ));
        }
        if components[..i].contains(c) {
            return Err(format!("components[{i}]: {c:?} given twice"));
        }
    }
    Ok(())
}

/// The answer to a request that created a session (`202 Accepted`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Created {
    /// Name of the BackupSession or RestoreSession.
    pub name: String,
    /// Where its status is (`/v1/backups/NAME`, `/v1/restores/NAME`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

/// `GET /v1/backups/NAME`: one BackupSession of the sidecar's configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupInfo {
    /// BackupSession name.
    pub name: String,
    /// Session of the configuration it runs.
    pub session: String,
    /// Its phase (`Pending` until the operator looks at it).
    pub phase: BackupSessionPhase,
    /// Why it was created (`schedule`, `on-demand`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<String>,
    /// The tag of an on-demand backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// The components an on-demand backup asked for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub components: Vec<String>,
    /// When it was created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<Timestamp>,
    /// How long it ran (once finished).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    /// Data size, such as `1.5 GiB`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
    /// Snapshots it writes, one per repository.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub snapshots: Vec<SessionSnapshot>,
    /// Why it failed or was skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl BackupInfo {
    /// Whether the session has ended (succeeded, failed or skipped).
    pub fn finished(&self) -> bool {
        matches!(
            self.phase,
            BackupSessionPhase::Succeeded
                | BackupSessionPhase::Failed
                | BackupSessionPhase::Skipped
        )
    }
}

/// `GET /v1/restores/NAME`: one restore the API started.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreInfo {
    /// RestoreSession (or run) name.
    pub name: String,
    /// The snapshot it restores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
    /// Its phase (`Pending` until it starts).
    pub phase: RestorePhase,
    /// The components it restores (empty: all of the snapshot's).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub components: Vec<String>,
    /// When it was created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<Timestamp>,
    /// How long it ran (once finished).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl RestoreInfo {
    /// Whether the restore has ended (succeeded, failed or found invalid).
    pub fn finished(&self) -> bool {
        matches!(
            self.phase,
            RestorePhase::Succeeded | RestorePhase::Failed | RestorePhase::Invalid
        )
    }
}

/// One snapshot a BackupSession writes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionSnapshot {
    /// Snapshot object name.
    pub name: String,
    /// Repository it goes to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    /// Its phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<RunPhase>,
}

/// `GET /v1/snapshots`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotList {
    /// The target's snapshots, newest first.
    pub snapshots: Vec<SnapshotInfo>,
}

/// One Snapshot object of the target.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotInfo {
    /// Snapshot object name.
    pub name: String,
    /// Repository it is in.
    pub repository: String,
    /// The BackupSession that wrote it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_session: Option<String>,
    /// Its phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<RunPhase>,
    /// When it was taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<Timestamp>,
    /// Data size, such as `1.5 GiB`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
    /// Its components.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub components: Vec<String>,
}

/// Sorts snapshots newest first (by time, then by name for equal times).
pub fn newest_first(snapshots: &mut [SnapshotInfo]) {
    snapshots.sort_by(|a, b| b.time.cmp(&a.time).then_with(|| b.name.cmp(&a.name)));
}

/// Every error answer: `{"error": {"code": "...", "message": "..."}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// The error of an [`ErrorBody`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// A stable machine-readable code, such as `backup_not_found`.
    pub code: String,
    /// A sentence for people.
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_checked() {
        let ok = BackupRequest {
            session: Some("frequent".into()),
            tag: Some("before upgrade to 2.0".into()),
            components: vec!["dump".into(), "wal_files.1".into()],
        };
        assert_eq!(ok.validate(), Ok(()));
        let bad = |r: BackupRequest| r.validate().expect_err("invalid");
        assert!(
            bad(BackupRequest {
                components: vec!["a".into(), "a".into()],
                ..BackupRequest::default()
            })
            .contains("given twice")
        );
        assert!(
            bad(BackupRequest {
                components: vec!["a,b".into()],
                ..BackupRequest::default()
            })
            .starts_with("components[0]")
        );
        assert!(
            bad(BackupRequest {
                tag: Some("a\nb".into()),
                ..BackupRequest::default()
            })
            .contains("control")
        );
        assert!(
            bad(BackupRequest {
                tag: Some("x".repeat(MAX_TAG + 1)),
                ..BackupRequest::default()
            })
            .starts_with("tag")
        );
        assert!(
            bad(BackupRequest {
                session: Some("Daily".into()),
                ..BackupRequest::default()
            })
            .starts_with("session")
        );
        let restore = RestoreRequest {
            snapshot: "latest".into(),
            components: Vec::new(),
        };
        assert_eq!(restore.validate(), Ok(()));
        let restore = RestoreRequest {
            snapshot: String::new(),
            components: Vec::new(),
        };
        assert!(restore.validate().is_err());
    }

    #[test]
    fn json_is_camel_case_and_strict() {
        let r: BackupRequest = serde_json::from_str("{}").expect("empty");
        assert_eq!(r, BackupRequest::default());
        let e = serde_json::from_str::<BackupRequest>(r#"{"tags": "x"}"#).expect_err("unknown");
        assert!(e.to_string().contains("unknown field `tags`"), "{e}");
        let s = SnapshotInfo {
            name: "repo-db-1".into(),
            repository: "repo".into(),
            backup_session: Some("db-1".into()),
            phase: Some(RunPhase::Succeeded),
            time: Some("2026-01-02T03:04:05Z".parse().expect("time")),
            size: None,
            components: vec!["dump".into()],
        };
        assert_eq!(
            serde_json::to_string(&s).expect("json"),
            r#"{"name":"repo-db-1","repository":"repo","backupSession":"db-1","phase":"Succeeded","time":"2026-01-02T03:04:05Z","components":["dump"]}"#
        );
    }
}
