use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use stowaway_api::backup_batch::BackupBatchStatus;
use stowaway_api::backup_configuration::{BackupConfigurationPhase, BackupConfigurationStatus};
use stowaway_api::backup_session::BackupSessionPhase;
use stowaway_api::common::RunPhase;
use stowaway_api::snapshot::SnapshotStatus;
use stowaway_api::{BackupBatch, BackupSession, Snapshot};

use super::*;
use crate::backup_configuration::{self, BackendObserved, Lookup};
use crate::backup_session;
use crate::conditions;
use crate::executor::{Executor, JobState};
use crate::names;
use crate::testing::at;

/// A batch `app` in `demo`: member `web` (Deployment web, volume addon, repository
/// `web-repo`) and member `db` (StatefulSet pg, postgres addon, repository `db-repo`), one
/// session `nightly` with a pre- and a post-hook.
fn batch() -> BackupBatch {
    let mut batch: BackupBatch = serde_yaml::from_str(
        r#"
apiVersion: core.stowaway.dev/v1alpha1
kind: BackupBatch
metadata: {name: app, namespace: demo, uid: "uid-app"}
spec:
  backends:
    - name: s3
      storageRef: {name: store}
      retentionPolicy: {name: keep}
  targets:
    - name: web
      appRef: {apiGroup: apps, kind: Deployment, name: web}
    - name: db
      appRef: {apiGroup: apps, kind: StatefulSet, name: pg}
  sessions:
    - name: nightly
      scheduler: {schedule: "0 3 * * *"}
      hooks:
        preBackup: [{name: freeze, hookTemplate: {name: freeze}}]
        postBackup: [{name: thaw, hookTemplate: {name: thaw}, executionPolicy: Always}]
      targets:
        - name: web
          addon: {name: volume, tasks: [{name: logical-backup}]}
          repositories: [{name: web-repo, backend: s3, directory: /app/web}]
        - name: db
          addon: {name: postgres, tasks: [{name: logical-backup}]}
          repositories: [{name: db-repo, backend: s3, directory: /app/db}]
"#,
    )
    .expect("test batch");
    batch.metadata.creation_timestamp = Some(Time(at("2026-01-01T00:00:00Z")));
    batch
}

fn ready(mut batch: BackupBatch) -> BackupBatch {
    batch.status = Some(BackupBatchStatus {
        common: BackupConfigurationStatus {
            phase: Some(BackupConfigurationPhase::Ready),
            ..BackupConfigurationStatus::default()
        },
        targets: Vec::new(),
    });
    batch
}

#[test]
fn a_valid_batch_has_no_problems() {
    assert_eq!(validate(&batch()), Vec::<String>::new());
}

#[test]
fn member_mistakes_are_reported_with_their_field() {
    let mut b = batch();
    b.spec.targets[1].name = "web".into();
    b.spec.sessions[0].targets[1].name = "web".into();
    b.spec.sessions[0].targets[0].addon = None;
    let problems = validate(&b);
    assert!(
        problems.contains(
            &r#"spec.targets[1].name: "web" is already the name of spec.targets[0]"#.to_owned()
        ),
        "{problems:?}"
    );
    assert!(
        problems.contains(&r#"spec.sessions[0].targets[1].name: member "web" is already listed at spec.sessions[0].targets[0]"#.to_owned()),
        "{problems:?}"
    );
    assert!(
        problems.contains(&"spec.sessions[0].targets[0].addon: required".to_owned()),
        "{problems:?}"
    );

    let mut b = batch();
    b.spec.sessions[0].targets[1].name = "cache".into();
    b.spec.sessions[0].targets[1].repositories[0].name = "web-repo".into();
    let problems = validate(&b);
    assert_eq!(
        problems,
        vec![
            r#"spec.sessions[0].targets[1].name: "cache" is not a member of spec.targets"#
                .to_owned(),
            r#"spec.sessions[0].targets[1].repositories[0].name: repository "web-repo" already holds member "web"; each member needs its own"#
                .to_owned(),
        ]
    );

    let mut b = batch();
    b.spec.targets.clear();
    b.spec.sessions[0].targets.clear();
    let problems = validate(&b);
    assert!(problems.contains(&"spec.targets: at least one member is required".to_owned()));
    assert!(
        problems.contains(&"spec.sessions[0].targets: at least one member is required".to_owned())
    );
}

fn observe<'a>(
    batch: &'a BackupBatch,
    found: Vec<Option<bool>>,
    sessions: &'a [BackupSession],
    now: &str,
) -> backup_configuration::Plan {
    backup_configuration::decide(&backup_configuration::Observed {
        invoker: Invoker::Batch(batch),
        backends: vec![BackendObserved {
            name: "s3".into(),
            storage: Lookup::Ready,
            retention_policy: Some(Lookup::Ready),
        }],
        addons: vec![
            ("volume".into(), Lookup::Ready),
            ("postgres".into(), Lookup::Ready),
        ],
        addon_problems: Vec::new(),
        targets_found: found,
        repositories: &[],
        sessions,
        now: at(now),
    })
}

#[test]
fn a_batch_creates_one_repository_per_member_with_that_members_target() {
    let b = batch();
    let plan = observe(
        &b,
        vec![Some(true), Some(true)],
        &[],
        "2026-01-01T00:00:05Z",
    );
    let repos: Vec<(String, String)> = plan
        .create_repositories
        .iter()
        .map(|r| (r.name_any(), r.spec.app_ref.name.clone()))
        .collect();
    assert_eq!(
        repos,
        vec![
            ("web-repo".to_owned(), "web".to_owned()),
            ("db-repo".to_owned(), "pg".to_owned())
        ]
    );
    // Not Ready until the repositories are: no session yet.
    assert_eq!(plan.status.phase, Some(BackupConfigurationPhase::NotReady));
    assert!(plan.create_sessions.is_empty());
    let deps: Vec<&str> = plan
        .status
        .dependencies
        .iter()
        .map(|d| d.reference.name.as_str())
        .collect();
    assert_eq!(deps, vec!["volume", "postgres"]);
}

#[test]
fn a_missing_member_target_is_named_in_the_reason() {
    let b = batch();
    let plan = observe(
        &b,
        vec![Some(true), Some(false)],
        &[],
        "2026-01-01T00:00:05Z",
    );
    assert_eq!(plan.status.target_found, Some(false));
    let event = plan
        .events
        .iter()
        .find(|e| e.reason == "NotReady")
        .expect("NotReady event");
    assert!(
        event
            .message
            .contains("target StatefulSet pg of member db not found"),
        "{}",
        event.message
    );
}

fn batch_session(name: &str, created: &str) -> BackupSession {
    let mut session: BackupSession = serde_yaml::from_str(&format!(
        r#"
apiVersion: core.stowaway.dev/v1alpha1
kind: BackupSession
metadata:
  name: {name}
  namespace: demo
  labels: {{stowaway.dev/invoker-name: app}}
spec:
  invoker: {{apiGroup: core.stowaway.dev, kind: BackupBatch, name: app}}
  session: nightly
"#
    ))
    .expect("test session");
    session.metadata.creation_timestamp = Some(Time(at(created)));
    session
}

fn decide_session(
    batch: &BackupBatch,
    session: &BackupSession,
    snapshots: &[Snapshot],
    executors: Vec<Executor>,
    now: &str,
) -> backup_session::Plan {
    backup_session::decide(&backup_session::Observed {
        session,
        invoker: Some(Invoker::Batch(batch)),
        siblings: &[],
        snapshots,
        executors,
        now: at(now),
    })
}

/// Marks a hook list of the session done (Succeeded) so the run moves past it.
fn hooks_done(session: &mut BackupSession, pre: bool, post: bool) {
    let status = session.status.get_or_insert_with(Default::default);
    let hooks = status.hooks.get_or_insert_with(Default::default);
    if pre {
        hooks.pre_hooks = vec![stowaway_api::common::HookExecutionStatus {
            name: "freeze".into(),
            phase: Some("Succeeded".into()),
        }];
    }
    if post {
        hooks.post_hooks = vec![stowaway_api::common::HookExecutionStatus {
            name: "thaw".into(),
            phase: Some("Succeeded".into()),
        }];
    }
}

fn finished(mut snapshot: Snapshot, phase: RunPhase) -> Snapshot {
    snapshot.status = Some(SnapshotStatus {
        phase: Some(phase),
        size: Some("1 KiB".into()),
        ..SnapshotStatus::default()
    });
    snapshot
}

#[test]
fn one_session_backs_up_every_member_after_the_batch_pre_hook() {
    let b = ready(batch());
    let fresh = batch_session("app-nightly-1", "2026-01-01T03:00:00Z");
    let executors = vec![Executor::Sidecar, Executor::Job(None)];

    // First the batch's pre-hook, before any member is read.
    let plan = decide_session(&b, &fresh, &[], executors.clone(), "2026-01-01T03:00:01Z");
    assert_eq!(plan.status.phase, Some(BackupSessionPhase::Running));
    assert_eq!(plan.run_hook, Some((crate::hooks::Stage::Pre, 0)));
    assert!(plan.create_jobs.is_empty());
    assert_eq!(plan.status.total_snapshots, Some(2));
    let snapshots = plan.create_snapshots.clone();
    let names_and_targets: Vec<(String, String, Option<String>)> = snapshots
        .iter()
        .map(|s| {
            (
                s.name_any(),
                s.spec
                    .app_ref
                    .as_ref()
                    .map(|r| r.name.clone())
                    .unwrap_or_default(),
                s.labels().get(names::BATCH_MEMBER_LABEL).cloned(),
            )
        })
        .collect();
    assert_eq!(
        names_and_targets,
        vec![
            (
                "web-repo-app-nightly-1".into(),
                "web".into(),
                Some("web".into())
            ),
            (
                "db-repo-app-nightly-1".into(),
                "pg".into(),
                Some("db".into())
            ),
        ]
    );

    // Then the executors: the sidecar takes member web, a Job member db.
    let mut running = fresh;
    running.status = Some(plan.status);
    hooks_done(&mut running, true, false);
    let plan = decide_session(&b, &running, &snapshots, executors, "2026-01-01T03:00:02Z");
    assert_eq!(plan.create_jobs, vec![1]);
    let ensured = conditions::get(&plan.status.conditions, backup_session::EXECUTOR_ENSURED)
        .expect("executor condition");
    assert_eq!(
        ensured.message.as_deref(),
        Some("the backup runs on web: sidecar, db: Job")
    );

    // Both members done: the post-hook, then Succeeded with both sizes summed.
    running.status = Some(plan.status);
    let done: Vec<Snapshot> = snapshots
        .iter()
        .map(|s| finished(s.clone(), RunPhase::Succeeded))
        .collect();
    let executors = vec![Executor::Sidecar, Executor::Job(Some(JobState::Succeeded))];
    let plan = decide_session(
        &b,
        &running,
        &done,
        executors.clone(),
        "2026-01-01T03:05:00Z",
    );
    assert_eq!(plan.run_hook, Some((crate::hooks::Stage::Post, 0)));
    running.status = Some(plan.status);
    hooks_done(&mut running, true, true);
    let plan = decide_session(&b, &running, &done, executors, "2026-01-01T03:05:01Z");
    assert_eq!(plan.status.phase, Some(BackupSessionPhase::Succeeded));
    assert_eq!(plan.status.size.as_deref(), Some("2.00 KiB"));
    // Retention for both repositories.
    let repos: Vec<Option<&str>> = plan
        .status
        .retention_policy
        .iter()
        .map(|r| r.repository.as_deref())
        .collect();
    assert_eq!(repos, vec![Some("web-repo"), Some("db-repo")]);
}

#[test]
fn a_failed_member_job_fails_the_whole_run_and_names_the_member() {
    let b = ready(batch());
    let fresh = batch_session("app-nightly-1", "2026-01-01T03:00:00Z");
    let plan = decide_session(
        &b,
        &fresh,
        &[],
        vec![Executor::Job(None), Executor::Job(None)],
        "2026-01-01T03:00:01Z",
    );
    let snapshots = plan.create_snapshots.clone();
    let mut running = fresh;
    running.status = Some(plan.status);
    hooks_done(&mut running, true, false);
    // web finished; db's Job died before its snapshot did.
    let observed = vec![
        finished(snapshots[0].clone(), RunPhase::Succeeded),
        snapshots[1].clone(),
    ];
    let plan = decide_session(
        &b,
        &running,
        &observed,
        vec![
            Executor::Job(Some(JobState::Succeeded)),
            Executor::Job(Some(JobState::Failed("BackoffLimitExceeded".into()))),
        ],
        "2026-01-01T03:02:00Z",
    );
    assert_eq!(
        plan.fail_snapshots,
        vec![(
            "db-repo-app-nightly-1".to_owned(),
            "the backup Job of member db failed before every snapshot finished: BackoffLimitExceeded"
                .to_owned()
        )]
    );
    // The post-hook (executionPolicy Always) still runs before the run is marked Failed.
    assert_eq!(plan.run_hook, Some((crate::hooks::Stage::Post, 0)));
    assert!(plan.delete_jobs.is_empty(), "no Job is still running");
}

#[test]
fn a_retry_of_a_batch_run_is_a_batch_session() {
    let mut b = ready(batch());
    b.spec.sessions[0].retry_config = Some(stowaway_api::backup_configuration::RetryConfig {
        max_retry: Some(2),
        delay: None,
    });
    b.spec.sessions[0].hooks = None;
    let invoker = Invoker::Batch(&b);
    let first = backup_configuration::new_session(
        invoker,
        &invoker.sessions()[0],
        at("2026-01-01T03:00:00Z"),
        "schedule",
    );
    assert_eq!(first.spec.invoker.kind, "BackupBatch");
    assert_eq!(first.spec.retry_left, Some(2));
    assert_eq!(
        first
            .labels()
            .get(names::INVOKER_KIND_LABEL)
            .map(String::as_str),
        Some("BackupBatch")
    );
    let mut failed = first.clone();
    failed.metadata.creation_timestamp = Some(Time(at("2026-01-01T03:00:00Z")));
    failed.status = Some(stowaway_api::backup_session::BackupSessionStatus {
        phase: Some(BackupSessionPhase::Failed),
        ..Default::default()
    });
    let plan = decide_session(&b, &failed, &[], vec![], "2026-01-01T03:10:00Z");
    let retry = plan.create_retry.expect("a retry");
    assert_eq!(retry.spec.invoker.kind, "BackupBatch");
    assert_eq!(retry.spec.retry_left, Some(1));
}
