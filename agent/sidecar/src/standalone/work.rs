//! The standalone sidecar's [`Work`]: backups of the target into the repository, retention
//! after each, restores into the target, with the steps `stowaway backup` and `stowaway
//! restore` take ([`stowaway_executor::run`]).
//!
//! - A backup takes a shared lock, finds the parent (the newest snapshot of this target and
//!   host), runs the addon and commits the snapshot last; a failure or a stop before the
//!   commit records nothing. Each snapshot is tagged with the configuration's tags,
//!   `trigger=schedule|on-demand` and, for a scheduled run, `scheduled-for=<instant>`; an
//!   on-demand request's tag is the attribute `tag`.
//! - Retention then forgets the snapshots of this target and host its policy does not keep,
//!   and prunes when asked to. A retention failure is logged; the backup stands.
//! - A restore writes each tree component into the volume of its name through a staging
//!   directory inside it (`stowaway_executor::staging`), moved into place only when the addon
//!   has finished: a failed or stopped restore leaves the volumes as they were. A database
//!   addon restores into its server.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use stowaway_executor::run::{self, Origin};
use stowaway_executor::staging::Staging;
use stowaway_repository::{
    Clock as RetentionClock, ComponentKind, PruneOptions, Repository, Snapshot, SnapshotId, Target,
};
use stowaway_runtime::{Addon, CancelToken, Endpoint, ExecGrant, JobLimits, JobSpec, VolumeGrant};
use zeroize::Zeroizing;

use super::clock::Clock;
use super::config::RetentionConfig;
use super::scheduler::SCHEDULED_FOR_TAG;
use crate::store::{BackupDone, Job, StoreError, Trigger, Work};
use crate::wire::{SnapshotInfo, newest_first};

/// The secret a database addon connects with.
pub const PASSWORD_SECRET: &str = "password";

/// Everything a run needs, resolved at start.
pub struct WorkSetup {
    /// The opened repository.
    pub repo: Repository,
    /// Where it is, for messages and listings.
    pub location: String,
    /// The addon.
    pub addon: Arc<Addon>,
    /// Its parameters.
    pub params: Vec<(String, String)>,
    /// Programs it may run.
    pub exec: Vec<ExecGrant>,
    /// The server it may reach.
    pub connect: Vec<Endpoint>,
    /// The file of the server's password, read at each run.
    pub password_file: Option<PathBuf>,
    /// The target's directories (volume addon).
    pub volumes: Vec<VolumeGrant>,
    /// Memory limit of the addon, in bytes.
    pub memory_bytes: u64,
    /// Longest run of the addon.
    pub timeout: Option<Duration>,
    /// What the snapshots are of.
    pub target: Target,
    /// Host name of the snapshots.
    pub hostname: String,
    /// Tags of every snapshot.
    pub tags: Vec<String>,
    /// The retention after each backup.
    pub retention: Option<RetentionConfig>,
    /// Now, for retention.
    pub clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for WorkSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkSetup")
            .field("location", &self.location)
            .field("addon", &self.addon.info().label())
            .field("target", &self.target)
            .field("hostname", &self.hostname)
            .finish_non_exhaustive()
    }
}

/// The [`Work`] of a standalone sidecar. The repository's futures are run on a blocking
/// thread of the runtime (`Handle::block_on`): some of them cannot be shown to be `Send`, as
/// the store's trait requires.
///
/// Listings wait for each other ([`LISTINGS`] at once), so that API requests never hold
/// more blocking threads than that (the repository's own file I/O needs some too).
#[derive(Clone, Debug)]
pub struct RepositoryWork {
    setup: Arc<WorkSetup>,
    listings: Arc<tokio::sync::Semaphore>,
}

/// Snapshot listings run at once.
pub const LISTINGS: usize = 1;

impl RepositoryWork {
    /// The work of `setup`.
    pub fn new(setup: WorkSetup) -> RepositoryWork {
        RepositoryWork {
            setup: Arc::new(setup),
            listings: Arc::new(tokio::sync::Semaphore::new(LISTINGS)),
        }
    }

    /// What it was set up with.
    pub fn setup(&self) -> &WorkSetup {
        &self.setup
    }

    /// Runs `f` on a blocking thread of the current runtime.
    async fn off_thread<T, F>(
        &self,
        f: impl FnOnce(Arc<WorkSetup>) -> F + Send + 'static,
    ) -> Result<T, String>
    where
        T: Send + 'static,
        F: std::future::Future<Output = Result<T, String>>,
    {
        let setup = self.setup.clone();
        let handle = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || handle.block_on(f(setup)))
            .await
            .map_err(|e| format!("internal error: the run's task failed: {e}"))?
    }
}

impl WorkSetup {
    /// The snapshots of this target and host.
    async fn own_snapshots(&self) -> Result<Vec<Snapshot>, String> {
        Ok(self
            .repo
            .snapshots()
            .await
            .map_err(|e| self.repo_error(e))?
            .into_iter()
            .filter(|s| s.target == self.target && s.hostname == self.hostname)
            .collect())
    }

    fn repo_error(&self, e: impl std::fmt::Display) -> String {
        format!("repository {}: {e}", self.location)
    }

    fn secrets(&self) -> Result<BTreeMap<String, Zeroizing<Vec<u8>>>, String> {
        let mut secrets = BTreeMap::new();
        if let Some(path) = &self.password_file {
            let mut value = Zeroizing::new(std::fs::read(path).map_err(|e| {
                format!(
                    "cannot read the target's password file {}: {e}",
                    path.display()
                )
            })?);
            while value.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                value.pop();
            }
            secrets.insert(PASSWORD_SECRET.to_owned(), value);
        }
        Ok(secrets)
    }

    fn spec(
        &self,
        id: &str,
        volumes: Vec<VolumeGrant>,
        cancel: CancelToken,
    ) -> Result<JobSpec, String> {
        Ok(JobSpec {
            parameters: self.params.clone(),
            secrets: self.secrets()?,
            volumes,
            exec: self.exec.clone(),
            connect: self.connect.clone(),
            limits: JobLimits {
                memory_bytes: self.memory_bytes,
                deadline: self.timeout,
                ..JobLimits::default()
            },
            cancel,
            progress: Some(Arc::new(stowaway_executor::progress::LogProgress::new(
                format!("{id} ({})", self.location),
            ))),
            ..JobSpec::new(id)
        })
    }

    async fn backup_locked(
        &self,
        name: &str,
        trigger: Trigger,
        tag: Option<&str>,
        components: &[String],
        cancel: CancelToken,
        lock: &stowaway_repository::LockGuard,
    ) -> Result<Snapshot, String> {
        let repo = &self.repo;
        repo.load_index().await.map_err(|e| self.repo_error(e))?;
        let snapshots = self.own_snapshots().await?;
        let parent = run::parent(&snapshots, &self.target, &self.hostname).cloned();
        if let Some(parent) = &parent {
            tracing::info!(parent = %parent.id.short(), "files unchanged since the parent snapshot are not read again");
        }
        let volumes: Vec<VolumeGrant> = self
            .volumes
            .iter()
            .filter(|v| components.is_empty() || components.contains(&v.name))
            .cloned()
            .collect();
        let spec = self.spec(name, volumes.clone(), cancel.clone())?;
        let backup = repo
            .start_backup(parent.as_ref())
            .map_err(|e| self.repo_error(e))?;
        let result = run::backup(self.addon.clone(), backup, spec).await;
        if cancel.is_cancelled() {
            return Err("the sidecar stopped during the backup: nothing was committed".into());
        }
        let (backup, output) = result.map_err(|e| e.to_string())?;
        let mut tags: Vec<String> = self.tags.clone();
        tags.push(format!("trigger={}", trigger.as_str()));
        if let Trigger::Schedule { scheduled_for } = trigger {
            tags.push(format!("{SCHEDULED_FOR_TAG}{scheduled_for}"));
        }
        let origin = Origin {
            target: self.target.clone(),
            hostname: self.hostname.clone(),
            tags,
            session: Some(name.to_owned()),
            attributes: tag
                .map(|t| vec![("tag".to_owned(), t.to_owned())])
                .unwrap_or_default(),
        };
        let warnings = run::warnings(
            output
                .components
                .iter()
                .flat_map(|c| c.attributes.iter())
                .chain(output.attributes.iter()),
        );
        if warnings > 0 {
            tracing::warn!(run = %name, warnings, "entries could not be read and are missing from the snapshot (see the log above)");
        }
        run::commit(backup, lock, &self.addon, origin, output, &volumes)
            .await
            .map_err(|e| e.to_string())
    }

    /// Forgets what the policy does not keep, then prunes if asked to.
    async fn apply_retention(&self, retention: &RetentionConfig) -> Result<(), String> {
        let snapshots = self.own_snapshots().await?;
        let clock = RetentionClock {
            now: self.clock.now(),
            time_zone: retention.time_zone.clone(),
        };
        let remove: Vec<SnapshotId> = retention
            .policy
            .apply(&snapshots, &clock)
            .into_iter()
            .filter(|d| !d.keep)
            .map(|d| snapshots[d.index].id)
            .collect();
        if !remove.is_empty() {
            self.repo
                .forget(&remove)
                .await
                .map_err(|e| self.repo_error(e))?;
            tracing::info!(removed = remove.len(), policy = %retention.policy, "retention: snapshots forgotten");
        }
        if retention.prune && !remove.is_empty() {
            let report = self
                .repo
                .prune(&PruneOptions::default(), &())
                .await
                .map_err(|e| self.repo_error(e))?;
            tracing::info!(
                marked = report.marked_packs,
                deleted = report.deleted_packs,
                "retention: pruned"
            );
        }
        Ok(())
    }

    async fn restore_locked(
        &self,
        name: &str,
        snapshot: &str,
        wanted: &[String],
        cancel: CancelToken,
    ) -> Result<(), String> {
        let repo = &self.repo;
        repo.load_index().await.map_err(|e| self.repo_error(e))?;
        let id: SnapshotId = snapshot
            .parse()
            .map_err(|_| format!("{snapshot:?} is not a snapshot id"))?;
        let snapshot = repo
            .read_snapshot(&id)
            .await
            .map_err(|e| self.repo_error(e))?;
        if snapshot.target != self.target || snapshot.hostname != self.hostname {
            return Err(format!(
                "snapshot {} is not of this sidecar's target",
                snapshot.id.short()
            ));
        }
        let info = self.addon.info();
        if snapshot.addon.name != info.name {
            return Err(format!(
                "snapshot {} was made by the {} addon; this sidecar runs {}",
                snapshot.id.short(),
                snapshot.addon.name,
                info.name
            ));
        }
        let components = run::components(&snapshot, wanted).map_err(|e| e.to_string())?;
        let in_place = self
            .params
            .iter()
            .rev()
            .find(|(k, _)| k == "overwrite")
            .is_some_and(|(_, v)| v == "false");
        let mut stagings: Vec<Staging> = Vec::new();
        let mut grants = Vec::new();
        for tree in components.iter().filter(|c| c.kind == ComponentKind::Tree) {
            let Some(volume) = self.volumes.iter().find(|v| v.name == tree.name) else {
                discard(stagings);
                return Err(format!(
                    "component {} is not a volume of this sidecar (its volumes: {})",
                    tree.name,
                    self.volumes
                        .iter()
                        .map(|v| v.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            };
            let dir = if in_place {
                volume.path.clone()
            } else {
                match Staging::create(&volume.path, name) {
                    Ok(staging) => {
                        let dir = staging.dir().to_path_buf();
                        stagings.push(staging);
                        dir
                    }
                    Err(e) => {
                        discard(stagings);
                        return Err(e.to_string());
                    }
                }
            };
            grants.push(VolumeGrant {
                name: tree.name.clone(),
                path: dir,
            });
        }
        let spec = match self.spec(name, grants, cancel.clone()) {
            Ok(spec) => spec,
            Err(e) => {
                discard(stagings);
                return Err(e);
            }
        };
        tracing::info!(snapshot = %snapshot.id.short(), components = components.len(), "running the addon's restore");
        let result = run::restore(self.addon.clone(), repo.clone(), components, spec).await;
        let attributes = match result {
            _ if cancel.is_cancelled() => {
                discard(stagings);
                return Err(if in_place {
                    "the sidecar stopped during the restore (in place: what was restored so far stays)"
                } else {
                    "the sidecar stopped during the restore: the target was left as it was"
                }
                .into());
            }
            Ok(attributes) => attributes,
            Err(e) => {
                discard(stagings);
                return Err(e.to_string());
            }
        };
        let warnings = run::warnings(&attributes);
        if warnings > 0 {
            tracing::warn!(
                warnings,
                "some entries could not be restored as they were (see the log above)"
            );
        }
        let mut stagings = stagings.into_iter();
        while let Some(staging) = stagings.next() {
            if let Err(e) = staging.commit(true) {
                discard(stagings.collect());
                return Err(e.to_string());
            }
        }
        Ok(())
    }
}

impl WorkSetup {
    async fn backup(&self, job: &Job, cancel: CancelToken) -> Result<BackupDone, String> {
        let Job::Backup {
            name,
            trigger,
            tag,
            components,
        } = job
        else {
            return Err("internal error: not a backup".into());
        };
        let lock = self
            .repo
            .lock(false, "backup")
            .await
            .map_err(|e| self.repo_error(e))?;
        let result = self
            .backup_locked(name, *trigger, tag.as_deref(), components, cancel, &lock)
            .await;
        if let Err(e) = lock.release().await {
            tracing::warn!(error = %e, "could not release the repository lock");
        }
        let snapshot = result?;
        let size = snapshot.components.iter().map(|c| c.size).sum();
        tracing::info!(run = %name, snapshot = %snapshot.id.short(), size, "snapshot saved");
        if let Some(retention) = &self.retention
            && let Err(e) = self.apply_retention(retention).await
        {
            tracing::warn!(error = %e, "retention failed; the backup stands");
        }
        Ok(BackupDone {
            snapshot: snapshot.id.to_hex(),
            size,
        })
    }

    async fn restore(&self, job: &Job, cancel: CancelToken) -> Result<(), String> {
        let Job::Restore {
            name,
            snapshot,
            components,
        } = job
        else {
            return Err("internal error: not a restore".into());
        };
        let lock = self
            .repo
            .lock(false, "restore")
            .await
            .map_err(|e| self.repo_error(e))?;
        let result = self
            .restore_locked(name, snapshot, components, cancel)
            .await;
        if let Err(e) = lock.release().await {
            tracing::warn!(error = %e, "could not release the repository lock");
        }
        result
    }
}

fn discard(stagings: Vec<Staging>) {
    for staging in stagings {
        staging.discard();
    }
}

/// The API's view of a repository snapshot.
pub fn snapshot_info(snapshot: &Snapshot, location: &str) -> SnapshotInfo {
    SnapshotInfo {
        name: snapshot.id.to_hex(),
        repository: location.to_owned(),
        backup_session: snapshot.session.clone(),
        phase: Some(stowaway_api::common::RunPhase::Succeeded),
        time: Some(snapshot.time),
        size: Some(stowaway_api::size::format(
            snapshot.components.iter().map(|c| c.size).sum(),
        )),
        components: snapshot.components.iter().map(|c| c.name.clone()).collect(),
    }
}

#[async_trait::async_trait]
impl Work for RepositoryWork {
    fn components(&self) -> Option<Vec<String>> {
        let volumes = &self.setup.volumes;
        (!volumes.is_empty()).then(|| volumes.iter().map(|v| v.name.clone()).collect())
    }

    async fn backup(&self, job: &Job, cancel: CancelToken) -> Result<BackupDone, String> {
        let job = job.clone();
        self.off_thread(move |setup| async move { setup.backup(&job, cancel).await })
            .await
    }

    async fn restore(&self, job: &Job, cancel: CancelToken) -> Result<(), String> {
        let job = job.clone();
        self.off_thread(move |setup| async move { setup.restore(&job, cancel).await })
            .await
    }

    async fn snapshots(&self) -> Result<Vec<SnapshotInfo>, StoreError> {
        let _permit = self
            .listings
            .acquire()
            .await
            .map_err(|_| StoreError::Failed("the sidecar is stopping".into()))?;
        self.off_thread(|setup| async move {
            let mut snapshots: Vec<SnapshotInfo> = setup
                .own_snapshots()
                .await?
                .iter()
                .map(|s| snapshot_info(s, &setup.location))
                .collect();
            newest_first(&mut snapshots);
            Ok(snapshots)
        })
        .await
        .map_err(StoreError::Failed)
    }
}
