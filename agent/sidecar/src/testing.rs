//! A [`Work`] for tests of the runs and the schedule: it records the jobs, counts how many
//! run at once, and holds each run until the test releases it (or the run is cancelled).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use stowaway_api::common::RunPhase;
use stowaway_runtime::CancelToken;
use tokio::sync::Semaphore;

use crate::store::{BackupDone, Job, StoreError, Work};
use crate::wire::{SnapshotInfo, newest_first};

/// Records jobs; each run waits for a permit when `gated`.
pub(crate) struct FakeWork {
    gated: bool,
    permits: Semaphore,
    active: AtomicUsize,
    max_active: AtomicUsize,
    jobs: Mutex<Vec<Job>>,
    snapshots: Mutex<Vec<SnapshotInfo>>,
}

impl FakeWork {
    /// Runs end at once (`gated: false`) or when released.
    pub(crate) fn new(gated: bool) -> FakeWork {
        FakeWork {
            gated,
            permits: Semaphore::new(0),
            active: AtomicUsize::new(0),
            max_active: AtomicUsize::new(0),
            jobs: Mutex::default(),
            snapshots: Mutex::default(),
        }
    }

    /// Lets one waiting (or the next) run end.
    pub(crate) fn release(&self) {
        self.permits.add_permits(1);
    }

    /// The jobs started, in order.
    pub(crate) fn jobs(&self) -> Vec<Job> {
        self.jobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The most runs that were running at once.
    pub(crate) fn max_active(&self) -> usize {
        self.max_active.load(Ordering::SeqCst)
    }

    /// Adds a snapshot to list.
    pub(crate) fn add_snapshot(&self, name: &str, time: &str, components: &[&str]) {
        self.snapshots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(SnapshotInfo {
                name: name.to_owned(),
                repository: "/backups".into(),
                backup_session: None,
                phase: Some(RunPhase::Succeeded),
                time: time.parse().ok(),
                size: None,
                components: components.iter().map(|c| (*c).to_owned()).collect(),
            });
    }

    async fn run(&self, job: &Job, cancel: &CancelToken) -> Result<(), String> {
        self.jobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(job.clone());
        let now = self.active.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_active.fetch_max(now, Ordering::SeqCst);
        let result = if self.gated {
            loop {
                if cancel.is_cancelled() {
                    break Err("cancelled".to_owned());
                }
                if let Ok(permit) =
                    tokio::time::timeout(Duration::from_millis(5), self.permits.acquire()).await
                {
                    if let Ok(permit) = permit {
                        permit.forget();
                    }
                    break Ok(());
                }
            }
        } else {
            Ok(())
        };
        self.active.fetch_sub(1, Ordering::SeqCst);
        result
    }
}

#[async_trait::async_trait]
impl Work for FakeWork {
    fn components(&self) -> Option<Vec<String>> {
        Some(vec!["data".into(), "uploads".into()])
    }

    async fn backup(&self, job: &Job, cancel: CancelToken) -> Result<BackupDone, String> {
        self.run(job, &cancel).await?;
        let n = self.jobs().len();
        Ok(BackupDone {
            snapshot: format!("{n:064x}"),
            size: 1536,
        })
    }

    async fn restore(&self, job: &Job, cancel: CancelToken) -> Result<(), String> {
        self.run(job, &cancel).await
    }

    async fn snapshots(&self) -> Result<Vec<SnapshotInfo>, StoreError> {
        let mut snapshots = self
            .snapshots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        newest_first(&mut snapshots);
        Ok(snapshots)
    }
}

/// Waits (up to 10 s) until `done` holds.
pub(crate) async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
