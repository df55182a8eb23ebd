use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use stowaway_api::backup_configuration::{
    BackupConfigurationPhase, BackupConfigurationStatus, RetryConfig,
};
use stowaway_api::backup_session::BackupSessionPhase;
use stowaway_api::common::RunPhase;
use stowaway_api::snapshot::{Component, SnapshotStatus as SnapStatus};
use stowaway_api::{BackupConfiguration, BackupSession, Snapshot};

use super::*;
use crate::testing::{at, config, session};

fn ready_config() -> BackupConfiguration {
    let mut config = config();
    config.status = Some(BackupConfigurationStatus {
        phase: Some(BackupConfigurationPhase::Ready),
        ..BackupConfigurationStatus::default()
    });
    config
}

fn decide_at(
    session: &BackupSession,
    config: Option<&BackupConfiguration>,
    siblings: &[BackupSession],
    snapshots: &[Snapshot],
    executor: Executor,
    now: &str,
) -> Plan {
    decide(&Observed {
        session,
        invoker: config.map(Invoker::Configuration),
        siblings,
        snapshots,
        executors: vec![executor],
        now: at(now),
    })
}

/// The session after it started at 02:00 (as the first decision leaves it).
fn running(config: &BackupConfiguration, name: &str) -> (BackupSession, Vec<Snapshot>) {
    let fresh = session(name, "2026-01-01T02:00:00Z");
    let plan = decide_at(
        &fresh,
        Some(config),
        &[],
        &[],
        Executor::Job(None),
        "2026-01-01T02:00:01Z",
    );
    let mut started = fresh;
    started.status = Some(plan.status);
    (started, plan.create_snapshots)
}

fn with_phase(
    mut snapshot: Snapshot,
    phase: RunPhase,
    size: &str,
    error: Option<&str>,
) -> Snapshot {
    let mut components = BTreeMap::new();
    components.insert(
        "dump".to_owned(),
        Component {
            phase: Some(phase),
            error: error.map(str::to_owned),
            ..Component::default()
        },
    );
    snapshot.status = Some(SnapStatus {
        phase: Some(phase),
        size: Some(size.to_owned()),
        components,
        ..SnapStatus::default()
    });
    snapshot
}

#[test]
fn a_new_session_starts_writes_one_snapshot_per_repository_and_gets_a_job() {
    let mut config = ready_config();
    config.spec.sessions[0].backup_timeout = Some("30m".into());
    let mut fresh = session("db-daily-1", "2026-01-01T02:00:00Z");
    fresh.spec.backup_timeout = Some("30m".into());
    let plan = decide_at(
        &fresh,
        Some(&config),
        &[],
        &[],
        Executor::Job(None),
        "2026-01-01T02:00:01Z",
    );
    assert_eq!(plan.status.phase, Some(BackupSessionPhase::Running));
    assert_eq!(
        plan.status.backup_deadline,
        Some(Time(at("2026-01-01T02:30:00Z")))
    );
    assert_eq!(plan.status.total_snapshots, Some(1));
    assert_eq!(plan.create_snapshots.len(), 1);
    let snapshot = &plan.create_snapshots[0];
    assert_eq!(snapshot.name_any(), "repo-db-daily-1");
    assert_eq!(snapshot.spec.repository, "repo");
    assert_eq!(snapshot.spec.backup_session.as_deref(), Some("db-daily-1"));
    assert_eq!(
        snapshot.spec.app_ref.as_ref().map(|r| r.name.as_str()),
        Some("web")
    );
    assert_eq!(plan.create_jobs, vec![0]);
    assert!(conditions::is_true(
        &plan.status.conditions,
        EXECUTOR_ENSURED
    ));
    assert!(conditions::is_true(
        &plan.status.conditions,
        SNAPSHOTS_ENSURED
    ));
    assert_eq!(plan.requeue_after, Some(Duration::from_secs(1799)));
}

#[test]
fn a_sidecar_gets_the_work_without_a_job() {
    let config = ready_config();
    let fresh = session("db-daily-1", "2026-01-01T02:00:00Z");
    let plan = decide_at(
        &fresh,
        Some(&config),
        &[],
        &[],
        Executor::Sidecar,
        "2026-01-01T02:00:01Z",
    );
    assert!(plan.create_jobs.is_empty());
    let ensured = conditions::get(&plan.status.conditions, EXECUTOR_ENSURED).expect("condition");
    assert_eq!(ensured.reason.as_deref(), Some("SidecarExecutor"));
}

#[test]
fn sessions_are_skipped_when_the_invoker_is_not_ready_or_missing() {
    let fresh = session("db-daily-1", "2026-01-01T02:00:00Z");
    let not_ready = config();
    let plan = decide_at(
        &fresh,
        Some(&not_ready),
        &[],
        &[],
        Executor::Job(None),
        "2026-01-01T02:00:01Z",
    );
    assert_eq!(plan.status.phase, Some(BackupSessionPhase::Skipped));
    let skipped = conditions::get(&plan.status.conditions, BACKUP_SKIPPED).expect("condition");
    assert_eq!(skipped.reason.as_deref(), Some("InvokerNotReady"));
    assert!(plan.create_jobs.is_empty() && plan.create_snapshots.is_empty());

    let plan = decide_at(
        &fresh,
        None,
        &[],
        &[],
        Executor::Job(None),
        "2026-01-01T02:00:01Z",
    );
    assert_eq!(plan.status.phase, Some(BackupSessionPhase::Skipped));
    assert_eq!(plan.events[0].reason, "InvokerNotFound");
    assert_eq!(plan.events[0].message, "BackupConfiguration db not found");
}

#[test]
fn only_one_session_of_an_invoker_runs_at_a_time() {
    let config = ready_config();
    let (first, _) = running(&config, "db-daily-1");
    let second = session("db-daily-2", "2026-01-01T02:00:05Z");
    let siblings = [first.clone(), second.clone()];
    let plan = decide_at(
        &second,
        Some(&config),
        &siblings,
        &[],
        Executor::Job(None),
        "2026-01-01T02:00:06Z",
    );
    assert_eq!(plan.status.phase, Some(BackupSessionPhase::Skipped));
    assert!(
        plan.events[0]
            .message
            .contains("BackupSession db-daily-1 of the same BackupConfiguration is still running")
    );

    // Two new sessions decided at the same time: the older goes first, the other waits
    // (no phase yet) instead of both starting.
    let a = session("db-daily-a", "2026-01-01T02:00:00Z");
    let b = session("db-daily-b", "2026-01-01T02:00:00Z");
    let siblings = [a.clone(), b.clone()];
    let plan_b = decide_at(
        &b,
        Some(&config),
        &siblings,
        &[],
        Executor::Job(None),
        "2026-01-01T02:00:01Z",
    );
    assert_eq!(plan_b.status.phase, None);
    assert!(plan_b.requeue_after.is_some());
    let plan_a = decide_at(
        &a,
        Some(&config),
        &siblings,
        &[],
        Executor::Job(None),
        "2026-01-01T02:00:01Z",
    );
    assert_eq!(plan_a.status.phase, Some(BackupSessionPhase::Running));
}

#[test]
fn succeeded_snapshots_make_a_succeeded_session_with_size_and_duration() {
    let config = ready_config();
    let (started, snapshots) = running(&config, "db-daily-1");
    let done: Vec<Snapshot> = snapshots
        .into_iter()
        .map(|s| with_phase(s, RunPhase::Succeeded, "1.50 MiB", None))
        .collect();
    let plan = decide_at(
        &started,
        Some(&config),
        &[],
        &done,
        Executor::Job(Some(JobState::Succeeded)),
        "2026-01-01T02:01:05Z",
    );
    assert_eq!(plan.status.phase, Some(BackupSessionPhase::Succeeded));
    assert_eq!(plan.status.duration.as_deref(), Some("1m5s"));
    assert_eq!(plan.status.size.as_deref(), Some("1.50 MiB"));
    assert_eq!(plan.status.snapshots[0].phase, Some(RunPhase::Succeeded));
    assert!(plan.create_snapshots.is_empty() && plan.create_jobs.is_empty());
    assert_eq!(
        plan.events.last().map(|e| e.reason.as_str()),
        Some("BackupSucceeded")
    );

    // Finished sessions stay as they are.
    let mut finished = started;
    finished.status = Some(plan.status.clone());
    let again = decide_at(
        &finished,
        Some(&config),
        &[],
        &done,
        Executor::Job(None),
        "2026-01-01T03:00:00Z",
    );
    assert_eq!(again.status, plan.status);
    assert!(again.create_jobs.is_empty() && again.events.is_empty());
}

#[test]
fn a_failed_snapshot_fails_the_session_and_a_retry_follows_after_the_delay() {
    let mut config = ready_config();
    config.spec.sessions[0].retry_config = Some(RetryConfig {
        max_retry: Some(2),
        delay: Some("1m".into()),
    });
    let (mut started, snapshots) = running(&config, "db-daily-1");
    started.spec.retry_left = Some(2);
    let failed: Vec<Snapshot> = snapshots
        .into_iter()
        .map(|s| {
            with_phase(
                s,
                RunPhase::Failed,
                "0 B",
                Some("pg_dump: connection refused"),
            )
        })
        .collect();
    let plan = decide_at(
        &started,
        Some(&config),
        &[],
        &failed,
        Executor::Job(Some(JobState::Failed("BackoffLimitExceeded".into()))),
        "2026-01-01T02:02:00Z",
    );
    assert_eq!(plan.status.phase, Some(BackupSessionPhase::Failed));
    let failure = plan
        .events
        .iter()
        .find(|e| e.reason == "BackupFailed")
        .expect("event");
    assert_eq!(
        failure.message,
        "snapshot repo-db-daily-1: dump: pg_dump: connection refused"
    );
    assert_eq!(
        plan.status.next_retry,
        Some(Time(at("2026-01-01T02:03:00Z")))
    );
    assert!(plan.create_retry.is_none(), "not before the delay");
    assert_eq!(plan.requeue_after, Some(Duration::from_secs(60)));

    let mut failed_session = started.clone();
    failed_session.status = Some(plan.status);
    let plan = decide_at(
        &failed_session,
        Some(&config),
        &[],
        &failed,
        Executor::Job(None),
        "2026-01-01T02:03:00Z",
    );
    let retry = plan.create_retry.expect("retry");
    assert_eq!(retry.spec.retry_left, Some(1));
    assert_eq!(retry.name_any(), "db-daily-1-retry1");
    assert_eq!(
        retry
            .annotations()
            .get(crate::names::TRIGGER_ANNOTATION)
            .map(String::as_str),
        Some("retry")
    );
    assert_eq!(plan.status.retried, Some(true));

    // Retried once only; and a session with no retries left is not retried.
    let mut retried = failed_session;
    retried.status = Some(plan.status);
    let plan = decide_at(
        &retried,
        Some(&config),
        &[],
        &failed,
        Executor::Job(None),
        "2026-01-01T02:04:00Z",
    );
    assert!(plan.create_retry.is_none());
}

#[test]
fn the_deadline_fails_the_session_stops_the_job_and_fails_open_snapshots() {
    let config = ready_config();
    let mut fresh = session("db-daily-1", "2026-01-01T02:00:00Z");
    fresh.spec.backup_timeout = Some("10m".into());
    let plan = decide_at(
        &fresh,
        Some(&config),
        &[],
        &[],
        Executor::Job(None),
        "2026-01-01T02:00:01Z",
    );
    let mut started = fresh;
    started.status = Some(plan.status);
    let open: Vec<Snapshot> = plan
        .create_snapshots
        .into_iter()
        .map(|s| with_phase(s, RunPhase::Running, "0 B", None))
        .collect();
    let plan = decide_at(
        &started,
        Some(&config),
        &[],
        &open,
        Executor::Job(Some(JobState::Active)),
        "2026-01-01T02:10:00Z",
    );
    assert_eq!(plan.status.phase, Some(BackupSessionPhase::Failed));
    let incomplete =
        conditions::get(&plan.status.conditions, BACKUP_INCOMPLETE).expect("condition");
    assert_eq!(incomplete.reason.as_deref(), Some("BackupTimedOut"));
    assert_eq!(
        incomplete.message.as_deref(),
        Some("backupTimeout 10m passed before the backup finished")
    );
    assert_eq!(plan.delete_jobs, vec![0]);
    assert_eq!(plan.fail_snapshots.len(), 1);
    assert_eq!(plan.fail_snapshots[0].0, "repo-db-daily-1");
    assert_eq!(plan.status.duration.as_deref(), Some("10m0s"));
}

#[test]
fn a_job_that_dies_before_the_snapshots_finish_fails_the_session() {
    let config = ready_config();
    let (started, snapshots) = running(&config, "db-daily-1");
    let open: Vec<Snapshot> = snapshots
        .into_iter()
        .map(|s| with_phase(s, RunPhase::Running, "0 B", None))
        .collect();
    let plan = decide_at(
        &started,
        Some(&config),
        &[],
        &open,
        Executor::Job(Some(JobState::Failed(
            "DeadlineExceeded: Job was active longer than specified deadline".into(),
        ))),
        "2026-01-01T02:05:00Z",
    );
    assert_eq!(plan.status.phase, Some(BackupSessionPhase::Failed));
    let incomplete =
        conditions::get(&plan.status.conditions, BACKUP_INCOMPLETE).expect("condition");
    assert_eq!(incomplete.reason.as_deref(), Some("BackupExecutorFailed"));
    assert!(
        incomplete
            .message
            .as_deref()
            .unwrap_or_default()
            .contains("DeadlineExceeded")
    );
    assert!(plan.delete_jobs.is_empty(), "the Job is already over");
    assert_eq!(plan.fail_snapshots.len(), 1);
}

#[test]
fn a_running_session_whose_invoker_was_deleted_fails() {
    let config = ready_config();
    let (started, _) = running(&config, "db-daily-1");
    let plan = decide_at(
        &started,
        None,
        &[],
        &[],
        Executor::Job(Some(JobState::Active)),
        "2026-01-01T02:05:00Z",
    );
    assert_eq!(plan.status.phase, Some(BackupSessionPhase::Failed));
    assert_eq!(plan.delete_jobs, vec![0]);
    assert_eq!(plan.events[0].reason, "InvokerNotFound");
}

#[test]
fn running_without_outcome_waits() {
    let config = ready_config();
    let (started, snapshots) = running(&config, "db-daily-1");
    let plan = decide_at(
        &started,
        Some(&config),
        &[],
        &snapshots,
        Executor::Job(Some(JobState::Active)),
        "2026-01-01T02:01:00Z",
    );
    assert_eq!(plan.status.phase, Some(BackupSessionPhase::Running));
    assert!(
        plan.create_jobs.is_empty()
            && plan.create_snapshots.is_empty()
            && plan.fail_snapshots.is_empty()
    );
}
