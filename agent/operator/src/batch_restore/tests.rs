use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use stowaway_api::backup_session::{BackupSessionPhase, BackupSessionStatus};
use stowaway_api::common::RunPhase;
use stowaway_api::restore_session::{ComponentRestoreStatus, ExecutionOrder, RestorePhase};
use stowaway_api::snapshot::SnapshotStatus;
use stowaway_api::{BackupBatch, BackupSession, RestoreSession, Snapshot};

use super::*;
use crate::testing::at;

fn batch() -> BackupBatch {
    serde_yaml::from_str(
        r#"
apiVersion: core.stowaway.dev/v1alpha1
kind: BackupBatch
metadata: {name: shop, namespace: demo}
spec:
  backends: [{name: local, storageRef: {name: store}}]
  targets:
    - {name: web, appRef: {apiGroup: apps, kind: Deployment, name: web}}
    - {name: db, appRef: {apiGroup: apps, kind: StatefulSet, name: pg}}
  sessions:
    - name: nightly
      scheduler: {schedule: "0 1 * * *"}
      targets:
        - name: web
          addon: {name: volume, tasks: [{name: logical-backup, params: {paths: /data}}]}
          repositories: [{name: shop-web, backend: local, directory: /web}]
        - name: db
          addon: {name: postgres, tasks: [{name: logical-backup}]}
          repositories: [{name: shop-db, backend: local, directory: /db}]
"#,
    )
    .expect("batch")
}

fn run(name: &str, created: &str, phase: BackupSessionPhase) -> BackupSession {
    let mut s: BackupSession = serde_yaml::from_str(&format!(
        r#"
apiVersion: core.stowaway.dev/v1alpha1
kind: BackupSession
metadata: {{name: {name}, namespace: demo}}
spec:
  invoker: {{apiGroup: core.stowaway.dev, kind: BackupBatch, name: shop}}
  session: nightly
"#
    ))
    .expect("session");
    s.metadata.creation_timestamp = Some(Time(at(created)));
    s.status = Some(BackupSessionStatus {
        phase: Some(phase),
        ..BackupSessionStatus::default()
    });
    s
}

fn snapshot(repo: &str, run: &str, phase: RunPhase) -> Snapshot {
    let mut s: Snapshot = serde_yaml::from_str(&format!(
        r#"
apiVersion: storage.stowaway.dev/v1alpha1
kind: Snapshot
metadata: {{name: {repo}-{run}, namespace: demo}}
spec: {{repository: {repo}, backupSession: {run}, deletionPolicy: Delete}}
"#
    ))
    .expect("snapshot");
    s.status = Some(SnapshotStatus {
        phase: Some(phase),
        ..SnapshotStatus::default()
    });
    s
}

fn restore(order: Option<ExecutionOrder>, members: &[&str]) -> RestoreSession {
    let mut r: RestoreSession = serde_yaml::from_str(
        r#"
apiVersion: core.stowaway.dev/v1alpha1
kind: RestoreSession
metadata: {name: back, namespace: demo, uid: uid-back}
spec:
  dataSource:
    batch: {name: shop}
    encryptionSecret: {name: pw}
  restoreTimeout: 1h
"#,
    )
    .expect("restore");
    r.metadata.creation_timestamp = Some(Time(at("2026-01-02T00:00:00Z")));
    if let Some(source) = r.spec.data_source.batch.as_mut() {
        source.execution_order = order;
        source.members = members.iter().map(|m| (*m).to_owned()).collect();
    }
    r
}

struct World {
    batch: BackupBatch,
    runs: Vec<BackupSession>,
    snapshots: Vec<Snapshot>,
}

/// Two runs: an older complete one and a newer complete one; a newest Failed one.
fn world() -> World {
    World {
        batch: batch(),
        runs: vec![
            run(
                "shop-1",
                "2026-01-01T01:00:00Z",
                BackupSessionPhase::Succeeded,
            ),
            run(
                "shop-2",
                "2026-01-01T13:00:00Z",
                BackupSessionPhase::Succeeded,
            ),
            run("shop-3", "2026-01-01T23:00:00Z", BackupSessionPhase::Failed),
        ],
        snapshots: vec![
            snapshot("shop-web", "shop-1", RunPhase::Succeeded),
            snapshot("shop-db", "shop-1", RunPhase::Succeeded),
            snapshot("shop-web", "shop-2", RunPhase::Succeeded),
            snapshot("shop-db", "shop-2", RunPhase::Succeeded),
            snapshot("shop-web", "shop-3", RunPhase::Succeeded),
            snapshot("shop-db", "shop-3", RunPhase::Failed),
        ],
    }
}

fn decide_with(w: &World, r: &RestoreSession, children: &[RestoreSession], now: &str) -> Plan {
    let source = r.spec.data_source.batch.clone().expect("batch source");
    decide(
        &Observed {
            session: r,
            batch: Some(&w.batch),
            backup_sessions: &w.runs,
            snapshots: &w.snapshots,
            children,
            now: at(now),
        },
        &source,
    )
}

fn with_phase(
    mut child: RestoreSession,
    phase: RestorePhase,
    error: Option<&str>,
) -> RestoreSession {
    let mut status = RestoreSessionStatus {
        phase: Some(phase),
        ..RestoreSessionStatus::default()
    };
    if let Some(error) = error {
        status.components.insert(
            "dump".into(),
            ComponentRestoreStatus {
                phase: Some(RestorePhase::Failed),
                error: Some(error.into()),
                ..ComponentRestoreStatus::default()
            },
        );
    }
    child.status = Some(status);
    child
}

#[test]
fn latest_complete_run_is_restored_member_by_member_into_each_target() {
    let w = world();
    let r = restore(None, &[]);
    let plan = decide_with(&w, &r, &[], "2026-01-02T00:00:01Z");
    assert_eq!(plan.status.phase, Some(RestorePhase::Running));
    assert!(plan.pause_batch);
    assert_eq!(plan.status.total_components, Some(2));
    // The Failed run shop-3 is skipped: shop-2 is the latest complete one.
    type Child = (String, String, Option<String>, Option<String>, Vec<String>);
    let children: Vec<Child> = plan
        .create_children
        .iter()
        .map(|c| {
            (
                c.name_any(),
                c.spec
                    .target
                    .as_ref()
                    .map(|t| t.name.clone())
                    .unwrap_or_default(),
                c.spec.data_source.repository.clone(),
                c.spec.data_source.snapshot.clone(),
                c.spec
                    .addon
                    .iter()
                    .flat_map(|a| a.tasks.iter().map(|t| format!("{}/{}", a.name, t.name)))
                    .collect(),
            )
        })
        .collect();
    assert_eq!(
        children,
        vec![
            (
                "back-web".into(),
                "web".into(),
                Some("shop-web".into()),
                Some("shop-web-shop-2".into()),
                vec!["volume/logical-backup-restore".into()]
            ),
            (
                "back-db".into(),
                "pg".into(),
                Some("shop-db".into()),
                Some("shop-db-shop-2".into()),
                vec!["postgres/logical-backup-restore".into()]
            ),
        ]
    );
    let child = &plan.create_children[0];
    assert_eq!(child.owner_references()[0].name, "back");
    assert_eq!(child.spec.restore_timeout.as_deref(), Some("1h"));
    assert_eq!(
        child
            .spec
            .data_source
            .encryption_secret
            .as_ref()
            .map(|s| s.name.as_str()),
        Some("pw")
    );

    // Both members succeed: the batch restore succeeds and resumes the batch.
    let mut running = r.clone();
    running.status = Some(plan.status);
    let done: Vec<RestoreSession> = plan
        .create_children
        .iter()
        .map(|c| with_phase(c.clone(), RestorePhase::Succeeded, None))
        .collect();
    let plan = decide_with(&w, &running, &done, "2026-01-02T00:10:00Z");
    assert_eq!(plan.status.phase, Some(RestorePhase::Succeeded));
    assert!(plan.resume_batch);
    assert!(plan.create_children.is_empty());
    assert_eq!(plan.status.duration.as_deref(), Some("10m0s"));
}

#[test]
fn sequential_order_waits_and_a_failure_stops_the_rest() {
    let w = world();
    let r = restore(Some(ExecutionOrder::Sequential), &["db", "web"]);
    let plan = decide_with(&w, &r, &[], "2026-01-02T00:00:01Z");
    let names: Vec<String> = plan
        .create_children
        .iter()
        .map(ResourceExt::name_any)
        .collect();
    assert_eq!(names, vec!["back-db"], "db first, web waits");
    let mut running = r.clone();
    running.status = Some(plan.status);
    let db = plan.create_children[0].clone();

    // db still running: nothing new.
    let plan = decide_with(
        &w,
        &running,
        std::slice::from_ref(&db),
        "2026-01-02T00:01:00Z",
    );
    assert!(plan.create_children.is_empty());
    assert_eq!(plan.status.phase, Some(RestorePhase::Running));

    // db failed: web is never started, and the batch restore fails with both reasons.
    let failed = with_phase(db, RestorePhase::Failed, Some("pg_restore exited with 1"));
    let plan = decide_with(&w, &running, &[failed], "2026-01-02T00:02:00Z");
    assert!(plan.create_children.is_empty());
    assert_eq!(plan.status.phase, Some(RestorePhase::Failed));
    assert_eq!(
        plan.status.components["web"].error.as_deref(),
        Some("not restored: member db failed before it (Sequential order)")
    );
    let event = plan.events.last().expect("event");
    assert_eq!(event.reason, "RestoreFailed");
    assert!(
        event.message.contains("db: dump: pg_restore exited with 1"),
        "{}",
        event.message
    );
    assert!(plan.resume_batch);
}

#[test]
fn a_named_run_must_be_complete_and_members_must_exist() {
    let w = world();
    let mut r = restore(None, &[]);
    if let Some(s) = r.spec.data_source.batch.as_mut() {
        s.backup_session = Some("shop-3".into());
    }
    let plan = decide_with(&w, &r, &[], "2026-01-02T00:00:01Z");
    assert_eq!(plan.status.phase, Some(RestorePhase::Invalid));
    assert_eq!(
        plan.events[0].message,
        "BackupSession shop-3 is not Succeeded: it holds no complete backup of every member"
    );
    assert!(!plan.pause_batch && plan.create_children.is_empty());

    let r = restore(None, &["cache"]);
    let plan = decide_with(&w, &r, &[], "2026-01-02T00:00:01Z");
    assert_eq!(plan.status.phase, Some(RestorePhase::Invalid));
    assert_eq!(
        plan.events[0].message,
        "spec.dataSource.batch.members: cache is not a member of session nightly of BackupBatch shop"
    );

    // A named older run, one member only.
    let mut r = restore(None, &["web"]);
    if let Some(s) = r.spec.data_source.batch.as_mut() {
        s.backup_session = Some("shop-1".into());
    }
    let plan = decide_with(&w, &r, &[], "2026-01-02T00:00:01Z");
    let snapshots: Vec<Option<String>> = plan
        .create_children
        .iter()
        .map(|c| c.spec.data_source.snapshot.clone())
        .collect();
    assert_eq!(snapshots, vec![Some("shop-web-shop-1".into())]);
}

#[test]
fn a_running_batch_backup_is_waited_for_after_pausing_the_batch() {
    let mut w = world();
    w.runs.push(run(
        "shop-4",
        "2026-01-02T00:00:00Z",
        BackupSessionPhase::Running,
    ));
    let r = restore(None, &[]);
    let plan = decide_with(&w, &r, &[], "2026-01-02T00:00:01Z");
    assert!(plan.pause_batch);
    assert_eq!(plan.status.phase, Some(RestorePhase::Pending));
    assert!(plan.create_children.is_empty());
    assert_eq!(plan.requeue_after, Some(Duration::from_secs(5)));
}

#[test]
fn the_batch_restore_hooks_run_before_any_member_and_after_all() {
    let w = world();
    let mut r = restore(None, &[]);
    r.spec.hooks = Some(serde_yaml::from_str(
        "{preRestore: [{name: stop, hookTemplate: {name: stop}}], postRestore: [{name: start, hookTemplate: {name: start}}]}",
    ).expect("hooks"));
    let plan = decide_with(&w, &r, &[], "2026-01-02T00:00:01Z");
    assert_eq!(plan.run_hook, Some((Stage::Pre, 0)));
    assert!(
        plan.create_children.is_empty(),
        "no member before the pre-hook"
    );
    let mut running = r.clone();
    running.status = Some(plan.status);
    let hooks = running
        .status
        .as_mut()
        .map(|s| s.hooks.get_or_insert_with(Default::default))
        .expect("status");
    hooks
        .pre_hooks
        .push(stowaway_api::common::HookExecutionStatus {
            name: "stop".into(),
            phase: Some("Succeeded".into()),
        });
    let plan = decide_with(&w, &running, &[], "2026-01-02T00:00:02Z");
    assert_eq!(plan.create_children.len(), 2);
    running.status = Some(plan.status.clone());
    let done: Vec<RestoreSession> = plan
        .create_children
        .iter()
        .map(|c| with_phase(c.clone(), RestorePhase::Succeeded, None))
        .collect();
    let plan = decide_with(&w, &running, &done, "2026-01-02T00:05:00Z");
    assert_eq!(plan.run_hook, Some((Stage::Post, 0)));
    assert_eq!(plan.status.phase, Some(RestorePhase::Running));
    assert!(!plan.resume_batch, "resumed only once the restore ends");
}

#[test]
fn a_failed_batch_pre_hook_restores_no_member() {
    let w = world();
    let mut r = restore(None, &[]);
    r.spec.hooks = Some(
        serde_yaml::from_str("{preRestore: [{name: stop, hookTemplate: {name: stop}}]}")
            .expect("hooks"),
    );
    let plan = decide_with(&w, &r, &[], "2026-01-02T00:00:01Z");
    let mut running = r.clone();
    running.status = Some(plan.status);
    if let Some(status) = running.status.as_mut() {
        status.hooks = Some(stowaway_api::common::HookStatus {
            pre_hooks: vec![stowaway_api::common::HookExecutionStatus {
                name: "stop".into(),
                phase: Some("Failed".into()),
            }],
            ..Default::default()
        });
    }
    let plan = decide_with(&w, &running, &[], "2026-01-02T00:00:02Z");
    assert!(plan.create_children.is_empty());
    assert_eq!(plan.status.phase, Some(RestorePhase::Failed));
    assert_eq!(
        plan.status.components["web"].error.as_deref(),
        Some("pre-restore hook stop failed: nothing was restored")
    );
    assert!(plan.resume_batch);
}
