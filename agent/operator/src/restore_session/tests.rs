use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use stowaway_api::Snapshot;
use stowaway_api::snapshot::{Component, SnapshotStatus};

use super::*;
use crate::testing::{at, config, session};

fn restore(snapshot: &str) -> RestoreSession {
    let mut r: RestoreSession = serde_yaml::from_str(&format!(
        r#"
apiVersion: core.stowaway.dev/v1alpha1
kind: RestoreSession
metadata: {{name: undo, namespace: demo}}
spec:
  target: {{apiGroup: apps, kind: Deployment, name: web}}
  dataSource: {{repository: repo, snapshot: {snapshot}}}
  addon: {{name: postgres, tasks: [{{name: logical-backup-restore}}]}}
  restoreTimeout: 1h
"#
    ))
    .expect("restore");
    r.metadata.creation_timestamp = Some(Time(at("2026-02-01T00:00:00Z")));
    r
}

fn snapshot(name: &str, repo: &str, time: &str, phase: RunPhase) -> Snapshot {
    let mut s: Snapshot = serde_yaml::from_str(&format!(
        r#"
apiVersion: storage.stowaway.dev/v1alpha1
kind: Snapshot
metadata: {{name: {name}, namespace: demo}}
spec: {{repository: {repo}}}
"#
    ))
    .expect("snapshot");
    s.status = Some(SnapshotStatus {
        phase: Some(phase),
        snapshot_time: Some(Time(at(time))),
        components: BTreeMap::from([
            ("dump".to_owned(), Component::default()),
            ("globals".to_owned(), Component::default()),
        ]),
        ..SnapshotStatus::default()
    });
    s
}

fn history() -> Vec<Snapshot> {
    vec![
        snapshot("s1", "repo", "2026-01-01T02:00:00Z", RunPhase::Succeeded),
        snapshot("s2", "repo", "2026-01-02T02:00:00Z", RunPhase::Succeeded),
        snapshot("s3", "repo", "2026-01-03T02:00:00Z", RunPhase::Failed),
        snapshot(
            "other",
            "elsewhere",
            "2026-01-04T02:00:00Z",
            RunPhase::Succeeded,
        ),
    ]
}

fn decide_with(
    session: &RestoreSession,
    snapshots: &[Snapshot],
    backups: &[BackupConfiguration],
    backup_sessions: &[BackupSession],
    executor: Executor,
    now: &str,
) -> Plan {
    decide(&Observed {
        session,
        snapshots,
        backups,
        backup_sessions,
        target_found: Some(true),
        executor,
        volume: None,
        now: at(now),
    })
}

#[test]
fn snapshots_resolve_by_name_latest_and_point_in_time() {
    let snapshots = history();
    let name = |r: &RestoreSession| resolve_snapshot(r, &snapshots).map(|s| s.name_any());
    assert_eq!(
        name(&restore("latest")),
        Ok("s2".to_owned()),
        "Failed and other repositories do not count"
    );
    assert_eq!(name(&restore("s1")), Ok("s1".to_owned()));
    let err = name(&restore("s3")).expect_err("failed snapshot");
    assert!(err.contains("snapshot s3 is not Succeeded"), "{err}");
    assert_eq!(
        name(&restore("nope")),
        Err("snapshot nope not found".to_owned())
    );

    let mut pitr = restore("latest");
    pitr.spec.data_source.snapshot = None;
    pitr.spec.data_source.pitr = Some(stowaway_api::restore_session::PointInTime {
        target_time: Some(Time(at("2026-01-02T02:00:00Z"))),
        exclusive: None,
    });
    assert_eq!(name(&pitr), Ok("s2".to_owned()), "inclusive by default");
    pitr.spec.data_source.pitr.as_mut().expect("pitr").exclusive = Some(true);
    assert_eq!(name(&pitr), Ok("s1".to_owned()));
    pitr.spec
        .data_source
        .pitr
        .as_mut()
        .expect("pitr")
        .target_time = Some(Time(at("2025-12-31T00:00:00Z")));
    let err = name(&pitr).expect_err("too early");
    assert!(
        err.contains("no succeeded snapshot of repository repo at or before"),
        "{err}"
    );
}

#[test]
fn a_restore_pauses_the_target_backups_runs_and_resumes_them() {
    let backups = [config()];
    let snapshots = history();
    let fresh = restore("latest");
    let plan = decide_with(
        &fresh,
        &snapshots,
        &backups,
        &[],
        Executor::Job(None),
        "2026-02-01T00:00:01Z",
    );
    assert_eq!(plan.status.phase, Some(RestorePhase::Running));
    assert_eq!(plan.pause, vec!["db".to_owned()]);
    assert_eq!(plan.status.paused_backups[0].name, "db");
    assert!(plan.create_job);
    assert_eq!(plan.status.total_components, Some(2));
    assert_eq!(
        plan.status.restore_deadline,
        Some(Time(at("2026-02-01T01:00:00Z")))
    );
    assert_eq!(plan.status.dependencies[0].reference.name, "s2");

    // The executor restores both components.
    let mut running = fresh;
    running.status = Some(plan.status);
    for c in running
        .status
        .as_mut()
        .expect("status")
        .components
        .values_mut()
    {
        c.phase = Some(RestorePhase::Succeeded);
    }
    let plan = decide_with(
        &running,
        &snapshots,
        &backups,
        &[],
        Executor::Job(Some(JobState::Succeeded)),
        "2026-02-01T00:02:00Z",
    );
    assert_eq!(plan.status.phase, Some(RestorePhase::Succeeded));
    assert_eq!(plan.status.duration.as_deref(), Some("2m0s"));
    assert_eq!(plan.resume, vec!["db".to_owned()]);
    assert!(plan.pause.is_empty());

    // Once resumed, not again.
    let mut done = running;
    done.status = Some(plan.status);
    let plan = decide_with(
        &done,
        &snapshots,
        &backups,
        &[],
        Executor::Job(None),
        "2026-02-01T00:03:00Z",
    );
    assert!(plan.resume.is_empty() && !plan.create_job);
}

#[test]
fn a_restore_waits_for_a_running_backup_of_its_target() {
    let backups = [config()];
    let busy = [session("db-daily-1", "2026-01-31T23:59:00Z")];
    let plan = decide_with(
        &restore("latest"),
        &history(),
        &backups,
        &busy,
        Executor::Job(None),
        "2026-02-01T00:00:01Z",
    );
    assert_eq!(plan.status.phase, Some(RestorePhase::Pending));
    assert_eq!(
        plan.pause,
        vec!["db".to_owned()],
        "paused first, so no new backup starts"
    );
    assert!(!plan.create_job);
    let waiting = conditions::get(&plan.status.conditions, "WaitingForBackup").expect("condition");
    assert_eq!(
        waiting.message.as_deref(),
        Some("waiting for BackupSession db-daily-1 of the target to end")
    );
}

#[test]
fn a_configuration_paused_by_its_user_stays_paused() {
    let mut paused = config();
    paused.spec.paused = Some(true);
    let plan = decide_with(
        &restore("latest"),
        &history(),
        &[paused],
        &[],
        Executor::Job(None),
        "2026-02-01T00:00:01Z",
    );
    assert!(plan.pause.is_empty());
    assert!(plan.status.paused_backups.is_empty());
}

#[test]
fn unknown_components_and_snapshots_make_the_restore_invalid() {
    let mut r = restore("s1");
    r.spec.data_source.components = vec!["dump".into(), "wal".into()];
    let plan = decide_with(
        &r,
        &history(),
        &[],
        &[],
        Executor::Job(None),
        "2026-02-01T00:00:01Z",
    );
    assert_eq!(plan.status.phase, Some(RestorePhase::Invalid));
    let condition = conditions::get(&plan.status.conditions, VALIDATION_PASSED).expect("condition");
    assert_eq!(
        condition.message.as_deref(),
        Some(
            "spec.dataSource.components: snapshot s1 has no component wal (it has: dump, globals)"
        )
    );
    assert!(!plan.create_job);

    let plan = decide_with(
        &restore("s3"),
        &history(),
        &[],
        &[],
        Executor::Job(None),
        "2026-02-01T00:00:01Z",
    );
    assert_eq!(plan.status.phase, Some(RestorePhase::Invalid));
    assert_eq!(plan.events[0].reason, "SnapshotNotFound");
}

#[test]
fn a_failed_job_fails_the_open_components_and_resumes_backups() {
    let backups = [config()];
    let fresh = restore("latest");
    let plan = decide_with(
        &fresh,
        &history(),
        &backups,
        &[],
        Executor::Job(None),
        "2026-02-01T00:00:01Z",
    );
    let mut running = fresh;
    running.status = Some(plan.status);
    running
        .status
        .as_mut()
        .expect("status")
        .components
        .get_mut("dump")
        .expect("dump")
        .phase = Some(RestorePhase::Succeeded);
    let plan = decide_with(
        &running,
        &history(),
        &backups,
        &[],
        Executor::Job(Some(JobState::Failed("BackoffLimitExceeded".into()))),
        "2026-02-01T00:05:00Z",
    );
    assert_eq!(plan.status.phase, Some(RestorePhase::Failed));
    assert_eq!(
        plan.status.components["dump"].phase,
        Some(RestorePhase::Succeeded)
    );
    let globals = &plan.status.components["globals"];
    assert_eq!(globals.phase, Some(RestorePhase::Failed));
    assert!(
        globals
            .error
            .as_deref()
            .unwrap_or_default()
            .contains("BackoffLimitExceeded")
    );
    assert_eq!(plan.resume, vec!["db".to_owned()]);
    assert!(!plan.delete_job);
}

#[test]
fn the_deadline_stops_the_restore() {
    let fresh = restore("latest");
    let plan = decide_with(
        &fresh,
        &history(),
        &[],
        &[],
        Executor::Job(None),
        "2026-02-01T00:00:01Z",
    );
    let mut running = fresh;
    running.status = Some(plan.status);
    let plan = decide_with(
        &running,
        &history(),
        &[],
        &[],
        Executor::Job(Some(JobState::Active)),
        "2026-02-01T01:00:00Z",
    );
    assert_eq!(plan.status.phase, Some(RestorePhase::Failed));
    assert!(plan.delete_job);
    let incomplete =
        conditions::get(&plan.status.conditions, RESTORE_INCOMPLETE).expect("condition");
    assert_eq!(incomplete.reason.as_deref(), Some("RestoreTimedOut"));
}
