//! A [`SessionStore`] that does the work itself (the standalone sidecar): a backup or a
//! restore is a *run* kept in memory (name, phase, times, size, snapshot, error), and one
//! worker ([`LocalStore::work`]) executes the runs one at a time through a [`Work`].
//!
//! Runs never overlap. While one runs, at most one backup and one restore wait behind it: a
//! backup asked for while another backup already waits is refused with
//! [`StoreError::Busy`] naming the one that waits (a scheduled instant that finds one
//! waiting is skipped: the waiting backup covers it). [`LocalStore::stop`] cancels the
//! running run, fails those that wait and refuses new ones; the worker then ends.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use jiff::Timestamp;
use stowaway_api::backup_session::BackupSessionPhase;
use stowaway_api::restore_session::RestorePhase;
use stowaway_runtime::CancelToken;
use tokio::sync::Notify;

use super::{SessionStore, StoreError, latest, missing_components, unknown_session};
use crate::names;
use crate::standalone::clock::Clock;
use crate::wire::{
    BackupInfo, BackupRequest, RestoreInfo, RestoreRequest, SessionSnapshot, SnapshotInfo,
};

/// Finished runs remembered (the oldest are forgotten first).
pub const HISTORY: usize = 100;

/// Why a backup runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// The schedule's instant `scheduled_for`.
    Schedule {
        /// The instant.
        scheduled_for: Timestamp,
    },
    /// A request to the API.
    OnDemand,
}

impl Trigger {
    /// `schedule` or `on-demand`.
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Schedule { .. } => "schedule",
            Trigger::OnDemand => names::ON_DEMAND,
        }
    }
}

/// One run for a [`Work`] to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Job {
    /// A backup.
    Backup {
        /// The run's name (recorded as the snapshot's session).
        name: String,
        /// Why it runs.
        trigger: Trigger,
        /// The request's tag.
        tag: Option<String>,
        /// The components (volumes) to back up; empty: all.
        components: Vec<String>,
    },
    /// A restore into the target.
    Restore {
        /// The run's name.
        name: String,
        /// The snapshot (its [`SnapshotInfo::name`]).
        snapshot: String,
        /// The components to restore; empty: all of the snapshot's.
        components: Vec<String>,
    },
}

/// What a backup made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackupDone {
    /// The snapshot (its [`SnapshotInfo::name`]).
    pub snapshot: String,
    /// Bytes of data it holds.
    pub size: u64,
}

/// Limits of what may wait (see the module's documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunLimits {
    /// Finished runs remembered.
    pub history: usize,
}

impl Default for RunLimits {
    fn default() -> Self {
        RunLimits { history: HISTORY }
    }
}

/// The work behind a [`LocalStore`]: the repository and the addon.
#[async_trait::async_trait]
pub trait Work: Send + Sync + 'static {
    /// The components a backup may be limited to (`None`: the addon decides, and a request
    /// naming components is refused).
    fn components(&self) -> Option<Vec<String>>;

    /// Makes a backup; `cancel` is set when the sidecar stops (then nothing is committed).
    async fn backup(&self, job: &Job, cancel: CancelToken) -> Result<BackupDone, String>;

    /// Restores into the target; `cancel` as for [`Work::backup`].
    async fn restore(&self, job: &Job, cancel: CancelToken) -> Result<(), String>;

    /// The target's snapshots, newest first.
    async fn snapshots(&self) -> Result<Vec<SnapshotInfo>, StoreError>;
}

/// Where a run is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Pending,
    Running,
    Succeeded,
    Failed,
}

#[derive(Clone, Debug)]
struct Run {
    job: Job,
    phase: Phase,
    created: Timestamp,
    started: Option<Instant>,
    duration: Option<std::time::Duration>,
    done: Option<BackupDone>,
    error: Option<String>,
}

#[derive(Debug, Default)]
struct State {
    /// Every run remembered, in creation order.
    runs: BTreeMap<u64, (String, Run)>,
    next: u64,
    queue: VecDeque<String>,
    running: Option<(String, CancelToken)>,
    stopping: bool,
}

impl State {
    fn find(&self, name: &str) -> Option<&Run> {
        self.runs.values().find(|(n, _)| n == name).map(|(_, r)| r)
    }

    fn find_mut(&mut self, name: &str) -> Option<&mut Run> {
        self.runs
            .values_mut()
            .find(|(n, _)| n == name)
            .map(|(_, r)| r)
    }

    fn waiting(&self, backup: bool) -> Option<&str> {
        self.queue
            .iter()
            .find(|n| {
                self.find(n)
                    .is_some_and(|r| matches!(r.job, Job::Backup { .. }) == backup)
            })
            .map(String::as_str)
    }

    fn forget_old(&mut self, keep: usize) {
        let finished: Vec<u64> = self
            .runs
            .iter()
            .filter(|(_, (_, r))| matches!(r.phase, Phase::Succeeded | Phase::Failed))
            .map(|(k, _)| *k)
            .collect();
        for key in finished.iter().take(finished.len().saturating_sub(keep)) {
            self.runs.remove(key);
        }
    }
}

/// The runs of a standalone sidecar, and the worker that executes them.
#[derive(Clone)]
pub struct LocalStore {
    inner: Arc<Inner>,
}

struct Inner {
    name: String,
    work: Arc<dyn Work>,
    clock: Arc<dyn Clock>,
    limits: RunLimits,
    state: Mutex<State>,
    wake: Notify,
}

impl std::fmt::Debug for LocalStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalStore")
            .field("name", &self.inner.name)
            .finish_non_exhaustive()
    }
}

impl LocalStore {
    /// The runs of the sidecar `name` (also its one session's name), done by `work`, with
    /// times from `clock`.
    pub fn new(name: &str, work: Arc<dyn Work>, clock: Arc<dyn Clock>) -> LocalStore {
        LocalStore::with_limits(name, work, clock, RunLimits::default())
    }

    /// As [`LocalStore::new`], with other limits.
    pub fn with_limits(
        name: &str,
        work: Arc<dyn Work>,
        clock: Arc<dyn Clock>,
        limits: RunLimits,
    ) -> LocalStore {
        LocalStore {
            inner: Arc::new(Inner {
                name: name.to_owned(),
                work,
                clock,
                limits,
                state: Mutex::default(),
                wake: Notify::new(),
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Every change below is made whole under the lock.
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Asks for a backup; returns the run's name. Refused ([`StoreError::Busy`]) when a
    /// backup already waits or the sidecar is stopping.
    pub fn submit_backup(
        &self,
        trigger: Trigger,
        request: &BackupRequest,
    ) -> Result<String, StoreError> {
        let name = &self.inner.name;
        if let Some(session) = &request.session
            && session != name
        {
            return Err(unknown_session(
                name,
                Some(session.as_str()),
                &[name.as_str()],
            ));
        }
        if !request.components.is_empty() {
            match self.inner.work.components() {
                None => {
                    return Err(StoreError::Invalid(
                        "components: this sidecar's addon backs up its whole target; name no \
                         components"
                            .into(),
                    ));
                }
                Some(known) => {
                    if let Some(c) = request.components.iter().find(|c| !known.contains(c)) {
                        return Err(StoreError::Invalid(format!(
                            "components: {c:?} is not a volume of this sidecar (it has: {})",
                            known.join(", ")
                        )));
                    }
                }
            }
        }
        let now = self.inner.clock.now();
        let mut state = self.state();
        if state.stopping {
            return Err(stopping());
        }
        if let Some(waiting) = state.waiting(true) {
            let running = state
                .running
                .as_ref()
                .map_or("the current run", |(n, _)| n.as_str());
            return Err(StoreError::Busy(format!(
                "backup {waiting} already waits for {running} to finish, and will include \
                 what changed until it starts; ask again once it has started \
                 (GET /v1/backups/{waiting})"
            )));
        }
        let run_name = loop {
            let candidate = match trigger {
                Trigger::Schedule { scheduled_for } => stowaway_operator::names::object_name(&[
                    name,
                    &scheduled_for.as_second().to_string(),
                ]),
                Trigger::OnDemand => stowaway_operator::names::object_name(&[
                    name,
                    "ondemand",
                    &now.as_second().to_string(),
                    &names::random_suffix(),
                ]),
            };
            if state.find(&candidate).is_none() {
                break candidate;
            }
            if let Trigger::Schedule { .. } = trigger {
                return Err(StoreError::Busy(format!(
                    "backup {candidate} of this instant was already made"
                )));
            }
        };
        let job = Job::Backup {
            name: run_name.clone(),
            trigger,
            tag: request.tag.clone(),
            components: request.components.clone(),
        };
        self.enqueue(&mut state, run_name.clone(), job, now);
        drop(state);
        tracing::info!(run = %run_name, trigger = trigger.as_str(), "backup requested");
        Ok(run_name)
    }

    fn enqueue(&self, state: &mut State, name: String, job: Job, now: Timestamp) {
        let key = state.next;
        state.next += 1;
        state.runs.insert(
            key,
            (
                name.clone(),
                Run {
                    job,
                    phase: Phase::Pending,
                    created: now,
                    started: None,
                    duration: None,
                    done: None,
                    error: None,
                },
            ),
        );
        state.queue.push_back(name);
        self.inner.wake.notify_one();
    }

    /// Whether a run is running or waiting.
    pub fn busy(&self) -> bool {
        let state = self.state();
        state.running.is_some() || !state.queue.is_empty()
    }

    /// Stops: refuses new runs, fails the waiting ones, cancels the running one. The worker
    /// ends once the running run has.
    pub fn stop(&self) {
        let mut state = self.state();
        state.stopping = true;
        let waiting: Vec<String> = state.queue.drain(..).collect();
        for name in waiting {
            if let Some(run) = state.find_mut(&name) {
                run.phase = Phase::Failed;
                run.error = Some("the sidecar stopped before the run started".into());
            }
        }
        if let Some((name, cancel)) = &state.running {
            tracing::info!(run = %name, "stopping: cancelling the running run (nothing of it is committed)");
            cancel.cancel();
        }
        drop(state);
        self.inner.wake.notify_one();
    }

    /// The worker: executes the runs one at a time until [`LocalStore::stop`].
    pub async fn work(&self) {
        loop {
            let notified = self.inner.wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let next = {
                let mut state = self.state();
                match state.queue.pop_front() {
                    Some(name) => {
                        let cancel = CancelToken::new();
                        state.running = Some((name.clone(), cancel.clone()));
                        let run = state.find_mut(&name).map(|run| {
                            run.phase = Phase::Running;
                            run.started = Some(Instant::now());
                            run.job.clone()
                        });
                        run.map(|job| (name, job, cancel))
                    }
                    None if state.stopping => return,
                    None => None,
                }
            };
            let Some((name, job, cancel)) = next else {
                notified.await;
                continue;
            };
            self.execute(&name, &job, cancel).await;
        }
    }

    async fn execute(&self, name: &str, job: &Job, cancel: CancelToken) {
        tracing::info!(run = %name, "run started");
        let outcome = match job {
            Job::Backup { .. } => self.inner.work.backup(job, cancel).await.map(Some),
            Job::Restore { .. } => self.inner.work.restore(job, cancel).await.map(|()| None),
        };
        let mut state = self.state();
        state.running = None;
        if let Some(run) = state.find_mut(name) {
            run.duration = run.started.map(|s| s.elapsed());
            match outcome {
                Ok(done) => {
                    tracing::info!(run = %name, snapshot = ?done.as_ref().map(|d| &d.snapshot), "run succeeded");
                    run.phase = Phase::Succeeded;
                    run.done = done;
                }
                Err(error) => {
                    tracing::error!(run = %name, %error, "run failed");
                    run.phase = Phase::Failed;
                    run.error = Some(error);
                }
            }
        }
        let keep = self.inner.limits.history;
        state.forget_old(keep);
    }

    fn backup_info(&self, name: &str, run: &Run) -> Option<BackupInfo> {
        let Job::Backup {
            trigger,
            tag,
            components,
            ..
        } = &run.job
        else {
            return None;
        };
        Some(BackupInfo {
            name: name.to_owned(),
            session: self.inner.name.clone(),
            phase: match run.phase {
                Phase::Pending => BackupSessionPhase::Pending,
                Phase::Running => BackupSessionPhase::Running,
                Phase::Succeeded => BackupSessionPhase::Succeeded,
                Phase::Failed => BackupSessionPhase::Failed,
            },
            trigger: Some(trigger.as_str().to_owned()),
            tag: tag.clone(),
            components: components.clone(),
            created: Some(run.created),
            duration: run
                .duration
                .map(stowaway_operator::duration::format_duration),
            size: run
                .done
                .as_ref()
                .map(|d| stowaway_api::size::format(d.size)),
            snapshots: run
                .done
                .iter()
                .map(|d| SessionSnapshot {
                    name: d.snapshot.clone(),
                    repository: None,
                    phase: Some(stowaway_api::common::RunPhase::Succeeded),
                })
                .collect(),
            error: run.error.clone(),
        })
    }
}

fn stopping() -> StoreError {
    StoreError::Busy("the sidecar is stopping: it takes no new runs".into())
}

#[async_trait::async_trait]
impl SessionStore for LocalStore {
    async fn create_backup(&self, request: &BackupRequest) -> Result<String, StoreError> {
        self.submit_backup(Trigger::OnDemand, request)
    }

    async fn backup(&self, name: &str) -> Result<BackupInfo, StoreError> {
        let state = self.state();
        state
            .find(name)
            .and_then(|run| self.backup_info(name, run))
            .ok_or_else(|| StoreError::NotFound {
                kind: "BackupSession",
                name: name.to_owned(),
            })
    }

    async fn snapshots(&self) -> Result<Vec<SnapshotInfo>, StoreError> {
        self.inner.work.snapshots().await
    }

    async fn create_restore(&self, request: &RestoreRequest) -> Result<String, StoreError> {
        let snapshots = self.inner.work.snapshots().await?;
        let not_found = || StoreError::NotFound {
            kind: "Snapshot",
            name: request.snapshot.clone(),
        };
        let snapshot = if request.snapshot == "latest" {
            latest(&snapshots).ok_or_else(not_found)?
        } else {
            // The full id, or a prefix of at least 8 digits that only one snapshot has.
            let matching: Vec<&SnapshotInfo> = snapshots
                .iter()
                .filter(|s| {
                    s.name == request.snapshot
                        || (request.snapshot.len() >= 8 && s.name.starts_with(&request.snapshot))
                })
                .collect();
            match matching[..] {
                [one] => one,
                [] => return Err(not_found()),
                _ => {
                    return Err(StoreError::Invalid(format!(
                        "snapshot: {:?} is the start of several snapshots' names: give more",
                        request.snapshot
                    )));
                }
            }
        };
        if let Some(e) = missing_components(snapshot, &request.components) {
            return Err(e);
        }
        let now = self.inner.clock.now();
        let mut state = self.state();
        if state.stopping {
            return Err(stopping());
        }
        if let Some(waiting) = state.waiting(false) {
            return Err(StoreError::Busy(format!(
                "restore {waiting} already waits to run; ask again once it has started \
                 (GET /v1/restores/{waiting})"
            )));
        }
        let name = names::restore_name(&self.inner.name, now.as_second(), &names::random_suffix());
        let job = Job::Restore {
            name: name.clone(),
            snapshot: snapshot.name.clone(),
            components: request.components.clone(),
        };
        self.enqueue(&mut state, name.clone(), job, now);
        drop(state);
        tracing::info!(run = %name, snapshot = %snapshot.name, "restore requested");
        Ok(name)
    }

    async fn restore(&self, name: &str) -> Result<RestoreInfo, StoreError> {
        let state = self.state();
        let not_found = || StoreError::NotFound {
            kind: "RestoreSession",
            name: name.to_owned(),
        };
        let run = state.find(name).ok_or_else(not_found)?;
        let Job::Restore {
            snapshot,
            components,
            ..
        } = &run.job
        else {
            return Err(not_found());
        };
        Ok(RestoreInfo {
            name: name.to_owned(),
            snapshot: Some(snapshot.clone()),
            phase: match run.phase {
                Phase::Pending => RestorePhase::Pending,
                Phase::Running => RestorePhase::Running,
                Phase::Succeeded => RestorePhase::Succeeded,
                Phase::Failed => RestorePhase::Failed,
            },
            components: components.clone(),
            created: Some(run.created),
            duration: run
                .duration
                .map(stowaway_operator::duration::format_duration),
            error: run.error.clone(),
        })
    }
}

#[cfg(test)]
mod tests;
