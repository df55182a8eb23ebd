//! The standalone sidecar's schedule: asks the [`LocalStore`] for a backup at each instant
//! of a cron schedule, with the operator's rules ([`stowaway_operator::schedule::decide`]).
//!
//! - Instants missed while the sidecar was down (or asleep) are not made up one by one: the
//!   latest runs once, and the others are counted in the log.
//! - What ran before a restart is read back from the repository: each scheduled snapshot
//!   carries the tag `scheduled-for=<instant>` ([`SCHEDULED_FOR_TAG`]), and the newest of them
//!   is the last instant handled. On a first start, instants before it never run.
//! - An instant that comes while a backup runs is queued behind it, once; one that finds a
//!   backup already waiting is skipped (that backup will cover it).

use std::future::Future;
use std::sync::Arc;

use jiff::Timestamp;
use stowaway_operator::schedule::{Decision, Schedule, ScheduleState, decide};

use super::clock::Clock;
use crate::store::{LocalStore, StoreError, Trigger};
use crate::wire::BackupRequest;

/// Tag prefix of scheduled snapshots: `scheduled-for=2026-01-02T03:00:00Z`.
pub const SCHEDULED_FOR_TAG: &str = "scheduled-for=";

/// The last instant handled, from the tags of the target's snapshots.
pub fn last_scheduled<'a>(tags: impl IntoIterator<Item = &'a String>) -> Option<Timestamp> {
    tags.into_iter()
        .filter_map(|t| t.strip_prefix(SCHEDULED_FOR_TAG))
        .filter_map(|t| t.parse::<Timestamp>().ok())
        .max()
}

/// A cron schedule driving a [`LocalStore`].
pub struct Scheduler {
    schedule: Schedule,
    clock: Arc<dyn Clock>,
    state: ScheduleState,
}

impl std::fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scheduler")
            .field("schedule", &self.schedule.to_string())
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl Scheduler {
    /// A scheduler starting now; `last` is the last instant handled before (from
    /// [`last_scheduled`]), if any.
    pub fn new(schedule: Schedule, clock: Arc<dyn Clock>, last: Option<Timestamp>) -> Scheduler {
        let created = clock.now();
        Scheduler {
            schedule,
            clock,
            state: ScheduleState {
                last_schedule: last,
                created,
            },
        }
    }

    /// Decides now: asks `store` for the backup of the latest due instant, if any; returns
    /// the next instant.
    pub fn tick(&mut self, store: &LocalStore) -> Option<Timestamp> {
        let now = self.clock.now();
        let decision = decide(&self.schedule, &self.state, now, None, false);
        if let Decision::Run {
            scheduled_for,
            missed,
            ..
        } = decision
        {
            if missed > 0 {
                tracing::warn!(
                    %scheduled_for,
                    missed,
                    "instants were missed (the sidecar was down or asleep): running once for the latest"
                );
            }
            match store.submit_backup(
                Trigger::Schedule { scheduled_for },
                &BackupRequest::default(),
            ) {
                Ok(run) => tracing::info!(%run, %scheduled_for, "scheduled backup"),
                Err(StoreError::Busy(reason)) => {
                    tracing::warn!(%scheduled_for, %reason, "scheduled backup skipped");
                }
                Err(e) => {
                    tracing::error!(%scheduled_for, error = %e, "scheduled backup not started")
                }
            }
        }
        if let Some(handled) = decision.persist() {
            self.state.last_schedule = Some(handled);
        }
        decision.next()
    }

    /// Runs the schedule until `shutdown` completes.
    pub async fn run(mut self, store: LocalStore, shutdown: impl Future<Output = ()>) {
        tracing::info!(schedule = %self.schedule, "schedule started");
        tokio::pin!(shutdown);
        loop {
            let next = self.tick(&store);
            if let Some(next) = next {
                tracing::debug!(%next, "next scheduled backup");
            }
            let clock = self.clock.clone();
            let wait = async move {
                match next {
                    Some(next) => clock.sleep_until(next).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = &mut shutdown => return,
                () = wait => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::standalone::clock::ManualClock;
    use crate::store::{Job, LocalStore, SessionStore};
    use crate::testing::{FakeWork, eventually};

    fn ts(s: &str) -> Timestamp {
        s.parse().expect(s)
    }

    fn every_five_minutes() -> Schedule {
        Schedule::parse("*/5 * * * *", None).expect("schedule")
    }

    /// The instants of the scheduled backups started, in order.
    fn scheduled(work: &FakeWork) -> Vec<Timestamp> {
        work.jobs()
            .iter()
            .filter_map(|j| match j {
                Job::Backup {
                    trigger: Trigger::Schedule { scheduled_for },
                    ..
                } => Some(*scheduled_for),
                _ => None,
            })
            .collect()
    }

    struct Setup {
        clock: Arc<ManualClock>,
        work: Arc<FakeWork>,
        store: LocalStore,
        worker: tokio::task::JoinHandle<()>,
    }

    fn setup(now: &str, gated: bool) -> Setup {
        let clock = Arc::new(ManualClock::new(ts(now)));
        let work = Arc::new(FakeWork::new(gated));
        let store = LocalStore::new("app", work.clone(), clock.clone());
        let worker = tokio::spawn({
            let store = store.clone();
            async move { store.work().await }
        });
        Setup {
            clock,
            work,
            store,
            worker,
        }
    }

    impl Setup {
        async fn finish(self) {
            self.store.stop();
            self.worker.await.expect("worker");
        }
    }

    #[test]
    fn the_last_instant_comes_from_the_newest_tag() {
        let tags = [
            "trigger=schedule".to_owned(),
            "scheduled-for=2026-01-01T03:00:00Z".to_owned(),
            "scheduled-for=2026-01-03T03:00:00Z".to_owned(),
            "scheduled-for=garbage".to_owned(),
            "scheduled-for=2026-01-02T03:00:00Z".to_owned(),
        ];
        assert_eq!(
            last_scheduled(&tags),
            Some("2026-01-03T03:00:00Z".parse().expect("time"))
        );
        assert_eq!(last_scheduled(&["x".to_owned()]), None);
    }

    #[tokio::test]
    async fn backups_run_at_the_instants_of_the_schedule() {
        let s = setup("2026-01-02T00:02:00Z", false);
        let mut scheduler = Scheduler::new(every_five_minutes(), s.clock.clone(), None);
        assert_eq!(scheduler.tick(&s.store), Some(ts("2026-01-02T00:05:00Z")));
        s.clock.set(ts("2026-01-02T00:04:59Z"));
        assert_eq!(scheduler.tick(&s.store), Some(ts("2026-01-02T00:05:00Z")));
        assert!(!s.store.busy(), "nothing before the first instant");
        s.clock.set(ts("2026-01-02T00:05:00Z"));
        assert_eq!(scheduler.tick(&s.store), Some(ts("2026-01-02T00:10:00Z")));
        eventually("the first run", || !s.store.busy()).await;
        s.clock.set(ts("2026-01-02T00:07:30Z"));
        assert_eq!(scheduler.tick(&s.store), Some(ts("2026-01-02T00:10:00Z")));
        s.clock.set(ts("2026-01-02T00:10:01Z"));
        scheduler.tick(&s.store);
        eventually("two runs", || {
            scheduled(&s.work).len() == 2 && !s.store.busy()
        })
        .await;
        assert_eq!(
            scheduled(&s.work),
            [ts("2026-01-02T00:05:00Z"), ts("2026-01-02T00:10:00Z")]
        );
        let info = s
            .store
            .backup("app-1767312300")
            .await
            .expect("named after its instant");
        assert_eq!(info.trigger.as_deref(), Some("schedule"));
        s.finish().await;
    }

    #[tokio::test]
    async fn a_downtime_is_made_up_by_one_run() {
        // The repository says the last scheduled run was at 00:05; the sidecar comes back at
        // 01:03, after eleven more instants.
        let s = setup("2026-01-02T01:03:00Z", false);
        let mut scheduler = Scheduler::new(
            every_five_minutes(),
            s.clock.clone(),
            Some(ts("2026-01-02T00:05:00Z")),
        );
        assert_eq!(scheduler.tick(&s.store), Some(ts("2026-01-02T01:05:00Z")));
        assert_eq!(scheduler.tick(&s.store), Some(ts("2026-01-02T01:05:00Z")));
        eventually("the catch-up run", || !s.store.busy()).await;
        assert_eq!(scheduled(&s.work), [ts("2026-01-02T01:00:00Z")]);
        // A first start (nothing in the repository) waits for the next instant.
        let fresh = setup("2026-01-02T01:03:00Z", false);
        let mut scheduler = Scheduler::new(every_five_minutes(), fresh.clock.clone(), None);
        scheduler.tick(&fresh.store);
        assert!(!fresh.store.busy());
        assert!(fresh.work.jobs().is_empty());
        s.finish().await;
        fresh.finish().await;
    }

    #[tokio::test]
    async fn an_instant_during_a_run_waits_once_and_the_next_is_skipped() {
        let s = setup("2026-01-02T00:04:00Z", true);
        let mut scheduler = Scheduler::new(every_five_minutes(), s.clock.clone(), None);
        for at in [
            "2026-01-02T00:05:00Z",
            "2026-01-02T00:10:00Z",
            "2026-01-02T00:15:00Z",
        ] {
            s.clock.set(ts(at));
            scheduler.tick(&s.store);
            eventually("the first run to start", || !s.work.jobs().is_empty()).await;
        }
        // 00:05 runs, 00:10 waits, 00:15 found 00:10 waiting and was skipped.
        assert!(s.store.backup("app-1767312600").await.is_ok());
        assert!(s.store.backup("app-1767312900").await.is_err());
        s.work.release();
        s.work.release();
        eventually("both runs", || !s.store.busy()).await;
        assert_eq!(
            scheduled(&s.work),
            [ts("2026-01-02T00:05:00Z"), ts("2026-01-02T00:10:00Z")]
        );
        assert_eq!(s.work.max_active(), 1, "runs overlapped");
        s.finish().await;
    }

    #[tokio::test]
    async fn the_loop_wakes_when_the_clock_reaches_an_instant() {
        let s = setup("2026-01-02T00:02:00Z", false);
        let scheduler = Scheduler::new(every_five_minutes(), s.clock.clone(), None);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(scheduler.run(s.store.clone(), async {
            let _ = stopped.await;
        }));
        s.clock.advance(Duration::from_secs(3 * 60));
        eventually("the 00:05 run", || scheduled(&s.work).len() == 1).await;
        s.clock.advance(Duration::from_secs(60 * 60));
        eventually("the catch-up run", || scheduled(&s.work).len() == 2).await;
        assert_eq!(
            scheduled(&s.work),
            [ts("2026-01-02T00:05:00Z"), ts("2026-01-02T01:05:00Z")]
        );
        stop.send(()).expect("stop");
        task.await.expect("the loop ends");
        s.finish().await;
    }
}
