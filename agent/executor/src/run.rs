//! One addon run against an opened repository, without Kubernetes: the steps `stowaway
//! backup`, `stowaway restore` and the standalone sidecar share.
//!
//! A backup is [`produce`] (the addon's backup, or another producer, on a blocking thread)
//! then [`commit`] (the snapshot, last, while the repository lock is held): a failure or a
//! cancellation before the commit leaves no snapshot, only unreferenced packs that a later
//! prune removes. A restore is [`restore`] of the [`components`] chosen.

use std::path::PathBuf;
use std::sync::Arc;

use stowaway_repository::{
    AddonRef, Backup, ComponentKind, ComponentRecord, LockGuard, Repository, Snapshot,
    SnapshotMeta, Target,
};
use stowaway_runtime::{Addon, BackupOutput, JobSpec, VolumeGrant};

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The addon failed to run, or failed.
    #[error(transparent)]
    Addon(Box<stowaway_runtime::Error>),
    /// The repository (or its storage) failed.
    #[error(transparent)]
    Repository(Box<stowaway_repository::Error>),
    /// Another producer of a backup failed.
    #[error("{0}")]
    Producer(Box<dyn std::error::Error + Send + Sync>),
    /// A directory to back up cannot be.
    #[error("cannot back up {path}: {message}")]
    Directory {
        /// The path given.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// The snapshot lacks a component asked for.
    #[error("snapshot {snapshot} has no component {name:?} (it has: {has})")]
    NoComponent {
        /// Short id of the snapshot.
        snapshot: String,
        /// The component asked for.
        name: String,
        /// The components it has, joined by `, `.
        has: String,
    },
    /// A blocking task died, or the backup was still shared after its producer ended.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<stowaway_runtime::Error> for RunError {
    fn from(e: stowaway_runtime::Error) -> Self {
        RunError::Addon(Box::new(e))
    }
}

impl From<stowaway_repository::Error> for RunError {
    fn from(e: stowaway_repository::Error) -> Self {
        RunError::Repository(Box::new(e))
    }
}

/// Volume grants for directories, each named after its last path component (characters
/// outside `[A-Za-z0-9._-]` become `_`; `-2`, `-3`, … make names unique). Every path must be
/// a directory; it is granted by its canonical path.
pub fn volume_grants(paths: &[PathBuf]) -> Result<Vec<VolumeGrant>, RunError> {
    let mut grants: Vec<VolumeGrant> = Vec::new();
    for path in paths {
        let abs = std::fs::canonicalize(path).map_err(|e| RunError::Directory {
            path: path.clone(),
            message: e.to_string(),
        })?;
        if !abs.is_dir() {
            return Err(RunError::Directory {
                path: path.clone(),
                message: "not a directory (the volume addon backs up directories)".into(),
            });
        }
        let base = abs
            .file_name()
            .map(|n| volume_name(&n.to_string_lossy()))
            .unwrap_or_else(|| "root".to_owned());
        let mut name = base.clone();
        let mut n = 2;
        while grants.iter().any(|g| g.name == name) {
            name = format!("{base}-{n}");
            n += 1;
        }
        grants.push(VolumeGrant { name, path: abs });
    }
    Ok(grants)
}

/// A volume (component) name from a directory name: characters outside `[A-Za-z0-9._-]`
/// become `_`; an empty name, `.` and `..` become `root`.
pub fn volume_name(base: &str) -> String {
    let name: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.is_empty() || name == "." || name == ".." {
        "root".to_owned()
    } else {
        name
    }
}

/// The newest of `snapshots` of `target` taken on `hostname`: the parent of its next
/// backup (files unchanged since are not read again).
pub fn parent<'a>(
    snapshots: impl IntoIterator<Item = &'a Snapshot>,
    target: &Target,
    hostname: &str,
) -> Option<&'a Snapshot> {
    snapshots
        .into_iter()
        .filter(|s| &s.target == target && s.hostname == hostname)
        .max_by(|a, b| a.time.cmp(&b.time).then_with(|| a.id.cmp(&b.id)))
}

/// Runs `producer` with the backup on a blocking thread; returns the backup, no longer
/// shared, and what the producer made.
pub async fn produce<E>(
    backup: Backup,
    producer: impl FnOnce(Arc<Backup>) -> Result<BackupOutput, E> + Send + 'static,
) -> Result<(Backup, BackupOutput), RunError>
where
    E: Into<RunError> + Send + 'static,
{
    let backup = Arc::new(backup);
    let shared = backup.clone();
    let output = tokio::task::spawn_blocking(move || producer(shared))
        .await
        .map_err(|e| RunError::Internal(format!("the backup task failed: {e}")))?
        .map_err(Into::into)?;
    let backup = Arc::try_unwrap(backup).map_err(|_| {
        RunError::Internal("the backup is still in use after the addon finished".into())
    })?;
    Ok((backup, output))
}

/// Runs `addon`'s backup with `spec` into `backup` (see [`produce`]).
pub async fn backup(
    addon: Arc<Addon>,
    backup: Backup,
    spec: JobSpec,
) -> Result<(Backup, BackupOutput), RunError> {
    produce(backup, move |shared| addon.backup(spec, shared)).await
}

/// What a snapshot records besides the addon's output.
#[derive(Clone, Debug, Default)]
pub struct Origin {
    /// What was backed up.
    pub target: Target,
    /// Host name (the parent and retention group by it).
    pub hostname: String,
    /// Tags.
    pub tags: Vec<String>,
    /// The session (or run) that made it.
    pub session: Option<String>,
    /// Attributes recorded after the addon's own.
    pub attributes: Vec<(String, String)>,
}

/// Commits the snapshot of a finished backup: each tree component records the directory it
/// came from (attribute `path`, from `volumes`), the snapshot the addon and `origin`. The
/// lock is checked first, so a backup whose lock was lost records nothing.
pub async fn commit(
    backup: Backup,
    lock: &LockGuard,
    addon: &Addon,
    origin: Origin,
    output: BackupOutput,
    volumes: &[VolumeGrant],
) -> Result<Snapshot, RunError> {
    let mut components = output.components;
    for component in &mut components {
        if component.kind == ComponentKind::Tree
            && let Some(grant) = volumes.iter().find(|v| v.name == component.name)
        {
            component
                .attributes
                .push(("path".into(), grant.path.display().to_string()));
        }
    }
    let info = addon.info();
    let mut attributes = output.attributes;
    attributes.extend(origin.attributes);
    let meta = SnapshotMeta {
        hostname: Some(origin.hostname),
        target: origin.target,
        addon: AddonRef {
            name: info.name.clone(),
            version: info.version.clone(),
            digest: format!("sha256:{}", addon.digest()),
        },
        tags: origin.tags,
        session: origin.session,
        attributes,
        ..SnapshotMeta::default()
    };
    lock.ensure_held()?;
    Ok(backup.commit(meta, components).await?)
}

/// The components of `snapshot` named in `wanted` (all of them when `wanted` is empty).
pub fn components(
    snapshot: &Snapshot,
    wanted: &[String],
) -> Result<Vec<ComponentRecord>, RunError> {
    if wanted.is_empty() {
        return Ok(snapshot.components.clone());
    }
    wanted
        .iter()
        .map(|name| {
            snapshot
                .component(name)
                .cloned()
                .ok_or_else(|| RunError::NoComponent {
                    snapshot: snapshot.id.short(),
                    name: name.clone(),
                    has: snapshot
                        .components
                        .iter()
                        .map(|c| c.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                })
        })
        .collect()
}

/// Runs `addon`'s restore of `components` from `repo` with `spec` on a blocking thread;
/// returns the attributes the addon reported.
pub async fn restore(
    addon: Arc<Addon>,
    repo: Repository,
    components: Vec<ComponentRecord>,
    spec: JobSpec,
) -> Result<Vec<(String, String)>, RunError> {
    let attributes = tokio::task::spawn_blocking(move || addon.restore(spec, repo, components))
        .await
        .map_err(|e| RunError::Internal(format!("the restore task failed: {e}")))??;
    Ok(attributes)
}

/// The sum of the `warnings` attributes an addon reported (entries it could not read or
/// write as they were).
pub fn warnings<'a>(attributes: impl IntoIterator<Item = &'a (String, String)>) -> u64 {
    attributes
        .into_iter()
        .filter(|(k, _)| k == "warnings")
        .filter_map(|(_, v)| v.parse::<u64>().ok())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_names_are_unique_and_clean() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = dir.path().join("my data");
        let b = dir.path().join("other").join("my data");
        std::fs::create_dir_all(&a).expect("a");
        std::fs::create_dir_all(&b).expect("b");
        let grants = volume_grants(&[a.clone(), b.clone()]).expect("grants");
        let names: Vec<&str> = grants.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(names, ["my_data", "my_data-2"]);
        assert_eq!(grants[0].path, a.canonicalize().expect("canonical"));
        let file = dir.path().join("file");
        std::fs::write(&file, b"x").expect("file");
        let err = volume_grants(&[file]).expect_err("a file");
        assert!(
            err.to_string()
                .ends_with("not a directory (the volume addon backs up directories)"),
            "{err}"
        );
        let err = volume_grants(&[dir.path().join("missing")]).expect_err("missing");
        assert!(matches!(err, RunError::Directory { .. }), "{err}");
        assert_eq!(volume_name(".."), "root");
    }

    #[test]
    fn warnings_are_summed() {
        let attributes = [
            ("warnings".to_owned(), "2".to_owned()),
            ("files".to_owned(), "9".to_owned()),
            ("warnings".to_owned(), "3".to_owned()),
            ("warnings".to_owned(), "x".to_owned()),
        ];
        assert_eq!(warnings(&attributes), 5);
    }
}
