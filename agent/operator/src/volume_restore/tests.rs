use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use stowaway_api::common::{HookExecutionStatus, HookStatus, RunPhase};
use stowaway_api::restore_session::RestorePhase;
use stowaway_api::snapshot::{Component, SnapshotAddon, SnapshotStatus};

use super::*;
use crate::executor::{Executor, JobState};
use crate::restore_session::{
    BACKUPS_RESUMED, Observed, Plan, RESTORE_INCOMPLETE, VALIDATION_PASSED, VolumeObserved, decide,
};
use crate::testing::{at, config};

fn restore(annotations: &str, extra_spec: &str) -> RestoreSession {
    let mut r: RestoreSession = serde_yaml::from_str(&format!(
        r#"
apiVersion: core.stowaway.dev/v1alpha1
kind: RestoreSession
metadata: {{name: undo, namespace: demo, annotations: {{{annotations}}}}}
spec:
  target: {{apiGroup: apps, kind: Deployment, name: web}}
  dataSource: {{repository: repo, snapshot: latest}}
  addon: {{name: workload-addon, tasks: [{{name: logical-backup-restore}}]}}
{extra_spec}
"#
    ))
    .expect("restore");
    r.metadata.creation_timestamp = Some(Time(at("2026-02-01T00:00:00Z")));
    r
}

fn snapshots(addon: &str) -> Vec<Snapshot> {
    let mut s: Snapshot = serde_yaml::from_str(
        r#"
apiVersion: storage.stowaway.dev/v1alpha1
kind: Snapshot
metadata: {name: repo-web-1, namespace: demo}
spec: {repository: repo}
"#,
    )
    .expect("snapshot");
    s.status = Some(SnapshotStatus {
        phase: Some(RunPhase::Succeeded),
        snapshot_time: Some(Time(at("2026-01-31T02:00:00Z"))),
        components: BTreeMap::from([
            ("data".to_owned(), Component::default()),
            ("logs".to_owned(), Component::default()),
        ]),
        addon: Some(SnapshotAddon {
            name: addon.into(),
            version: None,
            digest: None,
        }),
        ..SnapshotStatus::default()
    });
    vec![s]
}

const TEMPLATE: &str = r#"
    metadata: {labels: {app: web}}
    spec:
      securityContext: {fsGroup: 2000}
      containers:
        - name: app
          image: registry.example/web
          securityContext: {runAsUser: 1000, runAsGroup: 3000}
          volumeMounts: [{name: data, mountPath: /data}, {name: logs, mountPath: /logs}]
      volumes:
        - {name: data, persistentVolumeClaim: {claimName: web-data}}
        - {name: logs, persistentVolumeClaim: {claimName: web-logs}}
        - {name: cache, emptyDir: {}}
        - {name: settings, configMap: {name: web-settings}}
"#;

fn deployment(replicas: i32) -> Deployment {
    serde_yaml::from_str(&format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: demo}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: web}}}}
  template:{TEMPLATE}
"#
    ))
    .expect("deployment")
}

fn daemon_set() -> Workload {
    let d: DaemonSet = serde_yaml::from_str(&format!(
        r#"
apiVersion: apps/v1
kind: DaemonSet
metadata: {{name: web, namespace: demo}}
spec:
  selector: {{matchLabels: {{app: web}}}}
  template:{TEMPLATE}
"#
    ))
    .expect("daemon set");
    Workload::daemon_set(&d)
}

/// A cluster with the restore, the Deployment and its pods, the restore Job and the
/// executor, moved tick by tick.
struct World {
    restore: RestoreSession,
    snapshots: Vec<Snapshot>,
    deployment: Deployment,
    pods: Vec<String>,
    /// Pods that never end (a stuck node).
    stuck_pods: bool,
    job: Option<JobState>,
    job_pod_running: bool,
    /// The executor fails the restore.
    executor_fails: bool,
    jobs_created: usize,
    now: Timestamp,
    plans: Vec<Plan>,
}

impl World {
    fn new(replicas: i32, restore: RestoreSession) -> World {
        World {
            restore,
            snapshots: snapshots("volume"),
            deployment: deployment(replicas),
            pods: (0..replicas).map(|i| format!("web-{i}")).collect(),
            stuck_pods: false,
            job: None,
            job_pod_running: false,
            executor_fails: false,
            jobs_created: 0,
            now: at("2026-02-01T00:00:01Z"),
            plans: Vec::new(),
        }
    }

    fn workload(&self) -> Workload {
        let mut w = Workload::deployment(&self.deployment);
        w.pods = self.pods.clone();
        w.ready = i32::try_from(self.pods.len()).expect("pods");
        w
    }

    fn decide(&self) -> Plan {
        let workload = self.workload();
        let backups = [config()];
        decide(&Observed {
            session: &self.restore,
            snapshots: &self.snapshots,
            backups: &backups,
            backup_sessions: &[],
            target_found: Some(true),
            executor: Executor::Job(self.job.clone()),
            volume: Some(VolumeObserved {
                workload: Some(&workload),
                job_pod_running: self.job_pod_running,
            }),
            now: self.now,
        })
    }

    /// What the controller does before writing the status: the workload's patch, the Job.
    fn apply_effects(&mut self, plan: &Plan) {
        if let Some(scale) = &plan.scale {
            let mut value = serde_json::to_value(&self.deployment).expect("json");
            json_patch::merge(&mut value, &scale.patch("undo"));
            self.deployment = serde_json::from_value(value).expect("deployment");
        }
        if plan.create_job {
            assert!(
                self.job.is_none(),
                "a second Job while one exists: {plan:?}"
            );
            self.job = Some(JobState::Active);
            self.job_pod_running = true;
            self.jobs_created += 1;
        }
        if plan.delete_job {
            self.job = None;
        }
    }

    fn reconcile(&mut self) -> Plan {
        let plan = self.decide();
        self.apply_effects(&plan);
        self.restore.status = Some(plan.status.clone());
        self.plans.push(plan.clone());
        plan
    }

    fn replicas(&self) -> i32 {
        self.deployment
            .spec
            .as_ref()
            .and_then(|s| s.replicas)
            .unwrap_or(1)
    }

    /// The Deployment controller and the executor, 10 seconds later. Checks that the Job
    /// never runs beside the application.
    fn advance(&mut self) {
        self.now = self
            .now
            .checked_add(jiff::SignedDuration::from_secs(10))
            .expect("time");
        let replicas = usize::try_from(self.replicas()).expect("replicas");
        if self.pods.len() > replicas && !self.stuck_pods {
            self.pods.pop();
        } else if self.pods.len() < replicas && !self.job_pod_running {
            self.pods = (0..replicas).map(|i| format!("web-{i}")).collect();
        }
        assert!(
            !self.job_pod_running || self.pods.is_empty(),
            "the restore Job runs beside pods {:?}",
            self.pods
        );
        if self.job == Some(JobState::Active) && self.job_pod_running {
            let phase = if self.executor_fails {
                RestorePhase::Failed
            } else {
                RestorePhase::Succeeded
            };
            if let Some(status) = self.restore.status.as_mut() {
                for c in status.components.values_mut() {
                    c.phase = Some(phase);
                    if self.executor_fails {
                        c.error = Some("disk full".into());
                    }
                }
            }
            self.job = Some(if self.executor_fails {
                JobState::Failed("BackoffLimitExceeded: the pod failed".into())
            } else {
                JobState::Succeeded
            });
            self.job_pod_running = false;
        }
    }

    fn phase(&self) -> Option<RestorePhase> {
        self.restore.status.as_ref().and_then(|s| s.phase)
    }

    fn annotations(&self) -> BTreeMap<String, String> {
        self.deployment
            .metadata
            .annotations
            .clone()
            .unwrap_or_default()
    }

    /// Reconciles until the restore ends (at most 40 ticks).
    fn run(&mut self) {
        for _ in 0..40 {
            if matches!(
                self.phase(),
                Some(RestorePhase::Succeeded | RestorePhase::Failed | RestorePhase::Invalid)
            ) {
                return;
            }
            self.reconcile();
            self.advance();
        }
        panic!("the restore did not end: {:?}", self.restore.status);
    }
}

fn condition<'a>(plan: &'a Plan, type_: &str) -> &'a stowaway_api::common::Condition {
    conditions::get(&plan.status.conditions, type_).unwrap_or_else(|| panic!("no {type_}"))
}

#[test]
fn the_safe_path_step_by_step() {
    let mut w = World::new(3, restore("", ""));

    // Running, backups paused; scaled to 0 with the count recorded in both places.
    let plan = w.reconcile();
    assert_eq!(plan.status.phase, Some(RestorePhase::Running));
    assert_eq!(plan.pause, vec!["db".to_owned()]);
    assert_eq!(plan.scale, Some(Scale::Down { original: 3 }));
    assert!(!plan.create_job);
    let record = plan.status.workload.clone().expect("workload status");
    assert_eq!(record.mode, Some(RestoreMode::ScaleDown));
    assert_eq!(record.original_replicas, Some(3));
    assert!(record.scaled_down_at.is_some());
    assert_eq!(w.replicas(), 0);
    assert_eq!(w.annotations()[ORIGINAL_REPLICAS_ANNOTATION], "3");
    assert_eq!(w.annotations()[SCALED_DOWN_BY_ANNOTATION], "undo");
    assert_eq!(
        condition(&plan, WORKLOAD_SCALED_DOWN).message.as_deref(),
        Some("Deployment web scaled from 3 to 0 replicas for the restore")
    );
    assert_eq!(plan.requeue_after, Some(POLL));

    // Pods still there: no Job yet.
    w.advance();
    let plan = w.reconcile();
    assert!(!plan.create_job && plan.scale.is_none());
    let waiting = condition(&plan, WORKLOAD_QUIESCED);
    assert_eq!(waiting.reason.as_deref(), Some("WaitingForPods"));
    assert_eq!(
        waiting.message.as_deref(),
        Some("waiting for 2 pod(s) of Deployment web to end: web-0, web-1")
    );
    assert_eq!(plan.requeue_after, Some(POLL));

    // Pods gone: the Job.
    w.pods.clear();
    let plan = w.reconcile();
    assert!(plan.create_job);
    assert_eq!(
        condition(&plan, WORKLOAD_QUIESCED).reason.as_deref(),
        Some("PodsGone")
    );
    assert!(
        plan.status
            .workload
            .as_ref()
            .is_some_and(|r| r.pods_gone_at.is_some())
    );

    // While the Job runs: nothing changes.
    let plan = w.reconcile();
    assert!(!plan.create_job && plan.scale.is_none());
    assert_eq!(plan.status.phase, Some(RestorePhase::Running));

    // The executor restores; scaled back to 3, then Succeeded and backups resumed.
    w.advance();
    let plan = w.reconcile();
    assert_eq!(plan.scale, Some(Scale::Back { replicas: 3 }));
    assert_eq!(plan.status.phase, Some(RestorePhase::Succeeded));
    assert_eq!(plan.resume, vec!["db".to_owned()]);
    assert_eq!(w.replicas(), 3);
    assert!(!w.annotations().contains_key(ORIGINAL_REPLICAS_ANNOTATION));
    assert!(!w.annotations().contains_key(SCALED_DOWN_BY_ANNOTATION));
    assert_eq!(
        condition(&plan, WORKLOAD_SCALED_BACK).message.as_deref(),
        Some("Deployment web scaled back to 3 replicas")
    );
    let reasons: Vec<&str> = w
        .plans
        .iter()
        .flat_map(|p| p.events.iter().map(|e| e.reason.as_str()))
        .collect();
    assert_eq!(
        reasons,
        vec![
            "RestoreStarted",
            "WorkloadScaledDown",
            "WorkloadScaledBack",
            "RestoreSucceeded"
        ]
    );

    // Finished: nothing more.
    let plan = w.reconcile();
    assert!(plan.scale.is_none() && !plan.create_job);
}

#[test]
fn an_operator_restart_at_any_step_still_scales_back() {
    for fails in [false, true] {
        let mut reference = World::new(3, restore("", ""));
        reference.executor_fails = fails;
        reference.run();
        let steps = reference.plans.len();
        for crash in 0..steps {
            for effects_applied in [false, true] {
                let mut w = World::new(3, restore("", ""));
                w.executor_fails = fails;
                for tick in 0.. {
                    if matches!(
                        w.phase(),
                        Some(
                            RestorePhase::Succeeded | RestorePhase::Failed | RestorePhase::Invalid
                        )
                    ) {
                        break;
                    }
                    assert!(tick < 40, "no end after a crash at {crash}");
                    if tick == crash {
                        // The operator stops before writing the status; its patches and
                        // the Job were applied or not.
                        let plan = w.decide();
                        if effects_applied {
                            w.apply_effects(&plan);
                        }
                    } else {
                        w.reconcile();
                    }
                    w.advance();
                }
                let case = format!("crash at {crash}, effects {effects_applied}, fails {fails}");
                let expected = if fails {
                    RestorePhase::Failed
                } else {
                    RestorePhase::Succeeded
                };
                assert_eq!(w.phase(), Some(expected), "{case}");
                assert_eq!(w.replicas(), 3, "{case}");
                assert!(w.annotations().is_empty(), "{case}: {:?}", w.annotations());
                assert_eq!(w.jobs_created, 1, "{case}");
                let status = w.restore.status.clone().expect("status");
                let record = status.workload.expect("record");
                assert_eq!(record.original_replicas, Some(3), "{case}");
                assert!(record.scaled_back_at.is_some(), "{case}");
                assert!(
                    conditions::is_true(&status.conditions, BACKUPS_RESUMED),
                    "{case}"
                );
            }
        }
    }
}

#[test]
fn a_failed_job_still_scales_back_then_fails() {
    let mut w = World::new(2, restore("", ""));
    w.executor_fails = true;
    w.run();
    assert_eq!(w.phase(), Some(RestorePhase::Failed));
    assert_eq!(w.replicas(), 2);
    let last = w.plans.last().expect("plan");
    assert_eq!(last.scale, Some(Scale::Back { replicas: 2 }));
    let failed: Vec<&str> = last.events.iter().map(|e| e.reason.as_str()).collect();
    assert_eq!(failed, vec!["WorkloadScaledBack", "RestoreFailed"]);
    assert_eq!(
        last.status.components["data"].error.as_deref(),
        Some("disk full")
    );
}

#[test]
fn pods_that_do_not_end_fail_the_restore_and_it_scales_back() {
    for (extra, limit_secs) in [("", 600), ("  restoreTimeout: 2m", 120)] {
        let mut w = World::new(2, restore("", extra));
        w.stuck_pods = true;
        let plan = w.reconcile();
        assert_eq!(plan.scale, Some(Scale::Down { original: 2 }));
        let scaled_at = w.now;
        let mut last = plan;
        while w.phase() == Some(RestorePhase::Running) {
            w.advance();
            last = w.reconcile();
            assert!(!last.create_job, "no Job while pods remain");
        }
        let waited = elapsed(scaled_at, w.now).as_secs();
        assert!(
            (limit_secs..limit_secs + 10).contains(&waited),
            "{extra}: failed after {waited}s"
        );
        assert_eq!(w.phase(), Some(RestorePhase::Failed));
        assert_eq!(last.scale, Some(Scale::Back { replicas: 2 }));
        let incomplete = condition(&last, RESTORE_INCOMPLETE);
        assert_eq!(incomplete.reason.as_deref(), Some("WorkloadPodsRemain"));
        let message = incomplete.message.clone().unwrap_or_default();
        assert!(
            message.starts_with("2 pod(s) of Deployment web still exist")
                && message
                    .ends_with("after it was scaled to 0 (web-0, web-1): nothing was restored"),
            "{message}"
        );
        assert_eq!(
            last.status.components["data"].phase,
            Some(RestorePhase::Failed)
        );
        assert_eq!(w.jobs_created, 0);
        assert_eq!(w.replicas(), 2);
    }
}

#[test]
fn a_job_stopped_at_the_deadline_is_awaited_before_scaling_back() {
    let mut w = World::new(1, restore("", "  restoreTimeout: 5m"));
    w.reconcile();
    w.advance();
    w.advance();
    let plan = w.reconcile();
    assert!(plan.create_job);
    // The Job hangs past the deadline.
    w.now = at("2026-02-01T00:05:00Z");
    let plan = w.reconcile();
    assert!(plan.delete_job, "the Job is stopped");
    assert_eq!(plan.scale, None, "not while its pod runs");
    assert_eq!(plan.status.phase, Some(RestorePhase::Running));
    assert_eq!(
        condition(&plan, WORKLOAD_SCALED_BACK).reason.as_deref(),
        Some("WaitingForRestoreJob")
    );
    // Deleted, its pod still terminating.
    let plan = w.reconcile();
    assert!(
        !plan.create_job,
        "a stopped restore's Job is not made again"
    );
    assert_eq!(plan.scale, None);
    // The pod has ended.
    w.job_pod_running = false;
    let plan = w.reconcile();
    assert_eq!(plan.scale, Some(Scale::Back { replicas: 1 }));
    assert_eq!(plan.status.phase, Some(RestorePhase::Failed));
    assert_eq!(
        condition(&plan, RESTORE_INCOMPLETE).reason.as_deref(),
        Some("RestoreTimedOut")
    );
}

#[test]
fn a_workload_already_at_zero_is_not_patched() {
    let mut w = World::new(0, restore("", ""));
    w.run();
    assert_eq!(w.phase(), Some(RestorePhase::Succeeded));
    assert!(w.plans.iter().all(|p| p.scale.is_none()), "{:?}", w.plans);
    assert_eq!(w.replicas(), 0);
    assert!(w.annotations().is_empty());
    assert_eq!(w.jobs_created, 1);
    let record = w
        .restore
        .status
        .as_ref()
        .and_then(|s| s.workload.clone())
        .expect("record");
    assert_eq!(record.original_replicas, Some(0));
    assert!(record.scaled_back_at.is_some());
}

#[test]
fn a_daemon_set_is_refused_unless_in_place() {
    let daemons = daemon_set();
    let observe = |r: &RestoreSession| {
        let snapshots = snapshots("volume");
        decide(&Observed {
            session: r,
            snapshots: &snapshots,
            backups: &[],
            backup_sessions: &[],
            target_found: Some(true),
            executor: Executor::Job(None),
            volume: Some(VolumeObserved {
                workload: Some(&daemons),
                job_pod_running: false,
            }),
            now: at("2026-02-01T00:00:01Z"),
        })
    };
    let mut scaled = restore("", "");
    scaled.spec.target.as_mut().expect("target").kind = "DaemonSet".into();
    let plan = observe(&scaled);
    assert_eq!(plan.status.phase, Some(RestorePhase::Invalid));
    let refused = condition(&plan, VALIDATION_PASSED);
    assert_eq!(refused.reason.as_deref(), Some("WorkloadNotScalable"));
    assert_eq!(
        refused.message.as_deref(),
        Some(
            "DaemonSet web cannot be scaled down for the restore; annotate the RestoreSession \
             stowaway.dev/restore-mode: InPlace to restore while it runs (quiesce the \
             application with preRestore hooks)"
        )
    );
    assert!(!plan.create_job && plan.scale.is_none());

    let mut in_place = restore("stowaway.dev/restore-mode: InPlace", "");
    in_place.spec.target.as_mut().expect("target").kind = "DaemonSet".into();
    let plan = observe(&in_place);
    assert_eq!(plan.status.phase, Some(RestorePhase::Running));
    assert!(plan.create_job && plan.scale.is_none());
    assert_eq!(
        plan.status.workload.and_then(|r| r.mode),
        Some(RestoreMode::InPlace)
    );
}

#[test]
fn in_place_restores_while_the_workload_runs() {
    let mut w = World::new(3, restore("stowaway.dev/restore-mode: inplace", ""));
    let plan = w.reconcile();
    assert!(plan.create_job, "at once");
    assert_eq!(plan.scale, None);
    assert_eq!(
        condition(&plan, WORKLOAD_QUIESCED).reason.as_deref(),
        Some("InPlace")
    );
    // Its pods keep running beside the Job (which World::advance would refuse otherwise).
    w.job_pod_running = false;
    w.job = Some(JobState::Succeeded);
    if let Some(status) = w.restore.status.as_mut() {
        for c in status.components.values_mut() {
            c.phase = Some(RestorePhase::Succeeded);
        }
    }
    let plan = w.reconcile();
    assert_eq!(plan.status.phase, Some(RestorePhase::Succeeded));
    assert_eq!(plan.scale, None);
    assert_eq!(w.replicas(), 3);
}

#[test]
fn modes_volumes_and_namespaces_are_checked_before_anything_happens() {
    let workload = World::new(3, restore("", "")).workload();
    let cases = [
        (
            restore("stowaway.dev/restore-mode: Freeze", ""),
            vec!["data"],
            "InvalidRestoreMode",
            "annotation stowaway.dev/restore-mode: \"Freeze\" is neither ScaleDown nor InPlace",
        ),
        (
            restore("", ""),
            vec!["data", "cache"],
            "VolumeNotRestorable",
            "volume cache of Deployment web is not a PersistentVolumeClaim: a restore Job \
             cannot write into it",
        ),
        (
            restore("", ""),
            vec!["wal"],
            "VolumeNotRestorable",
            "Deployment web has no volume wal (its claims: data, logs)",
        ),
    ];
    for (session, components, reason, message) in cases {
        let components: Vec<String> = components.into_iter().map(str::to_owned).collect();
        assert_eq!(
            validate(&session, Some(&workload), &components),
            Err((reason, message.to_owned()))
        );
    }
    let mut elsewhere = workload.clone();
    elsewhere.namespace = Some("prod".into());
    let (reason, _) =
        validate(&restore("", ""), Some(&elsewhere), &["data".into()]).expect_err("namespace");
    assert_eq!(reason, "TargetInOtherNamespace");
    let (reason, message) = validate(&restore("", ""), None, &[]).expect_err("missing");
    assert_eq!(
        (reason, message.as_str()),
        ("TargetNotFound", "target Deployment web not found")
    );
    assert_eq!(
        validate(&restore("", ""), Some(&workload), &["logs".into()]),
        Ok(RestoreMode::ScaleDown)
    );

    // Through decide: Invalid, nothing scaled, backups not left paused.
    let mut w = World::new(3, restore("", ""));
    w.restore.spec.data_source.components = vec!["cache".into()];
    w.snapshots[0]
        .status
        .as_mut()
        .expect("status")
        .components
        .insert("cache".into(), Component::default());
    let plan = w.reconcile();
    assert_eq!(plan.status.phase, Some(RestorePhase::Invalid));
    assert!(plan.scale.is_none() && plan.pause.is_empty());
    assert_eq!(w.replicas(), 3);
}

#[test]
fn another_restore_holding_the_workload_is_waited_for_then_its_count_is_kept() {
    let mut w = World::new(3, restore("", ""));
    // An earlier restore scaled the workload from 4 to 0 and still runs.
    let patch = Scale::Down { original: 4 }.patch("earlier");
    let mut value = serde_json::to_value(&w.deployment).expect("json");
    json_patch::merge(&mut value, &patch);
    w.deployment = serde_json::from_value(value).expect("deployment");
    w.pods.clear();
    let decide_with = |w: &World, active: bool| {
        let mut workload = w.workload();
        workload.other_restore_active = active;
        let backups = [config()];
        decide(&Observed {
            session: &w.restore,
            snapshots: &w.snapshots,
            backups: &backups,
            backup_sessions: &[],
            target_found: Some(true),
            executor: Executor::Job(None),
            volume: Some(VolumeObserved {
                workload: Some(&workload),
                job_pod_running: false,
            }),
            now: w.now,
        })
    };
    let plan = decide_with(&w, true);
    assert_eq!(plan.status.phase, Some(RestorePhase::Pending));
    assert_eq!(
        condition(&plan, "WaitingForRestore").message.as_deref(),
        Some("waiting for RestoreSession earlier, which scaled Deployment web down, to end")
    );
    assert!(plan.scale.is_none() && !plan.create_job);

    // That restore is gone (deleted half-way): this one takes over its count.
    let plan = decide_with(&w, false);
    assert_eq!(plan.status.phase, Some(RestorePhase::Running));
    assert_eq!(plan.scale, Some(Scale::Down { original: 4 }));
    assert_eq!(
        plan.status
            .workload
            .as_ref()
            .and_then(|r| r.original_replicas),
        Some(4)
    );
}

#[test]
fn a_workload_scaled_up_during_the_wait_is_scaled_down_again() {
    let mut w = World::new(2, restore("", ""));
    w.reconcile();
    // An autoscaler or a deployment tool sets replicas back.
    let mut value = serde_json::to_value(&w.deployment).expect("json");
    json_patch::merge(&mut value, &serde_json::json!({"spec": {"replicas": 5}}));
    w.deployment = serde_json::from_value(value).expect("deployment");
    let plan = w.reconcile();
    assert_eq!(
        plan.scale,
        Some(Scale::Down { original: 2 }),
        "the recorded count is kept"
    );
    assert_eq!(plan.events[0].reason, "WorkloadScaledUp");
    assert_eq!(w.replicas(), 0);
}

#[test]
fn post_restore_hooks_wait_for_the_workload_to_be_ready() {
    let hooks = r#"  hooks:
    postRestore:
      - {name: warm-cache, hookTemplate: {name: warm}}"#;
    let mut w = World::new(2, restore("", hooks));
    w.reconcile();
    w.advance();
    w.advance();
    assert!(w.reconcile().create_job);
    w.advance();
    // Scaled back: the hook waits for the pods.
    let plan = w.reconcile();
    assert_eq!(plan.scale, Some(Scale::Back { replicas: 2 }));
    assert_eq!(plan.run_hook, None);
    assert_eq!(plan.requeue_after, Some(POLL));
    let plan = w.reconcile();
    assert_eq!(plan.run_hook, None, "no pod is ready yet");
    // Ready: the hook runs; the workload is not scaled again.
    w.advance();
    let plan = w.reconcile();
    assert_eq!(plan.run_hook, Some((crate::hooks::Stage::Post, 0)));
    assert_eq!(plan.scale, None);

    // Never ready: the hook runs after READY_WAIT anyway.
    let mut late = World::new(2, restore("", hooks));
    late.reconcile();
    late.advance();
    late.advance();
    late.reconcile();
    late.advance();
    late.reconcile();
    late.job_pod_running = true; // keeps World::advance from starting pods
    late.now = late
        .now
        .checked_add(jiff::SignedDuration::from_secs(601))
        .expect("time");
    let plan = late.reconcile();
    assert_eq!(plan.run_hook, Some((crate::hooks::Stage::Post, 0)));
    assert_eq!(plan.events[0].reason, "WorkloadNotReady");

    // Once a post hook has run, readiness is not waited for again.
    let mut status = plan.status.clone();
    status.hooks = Some(HookStatus {
        post_hooks: vec![HookExecutionStatus {
            name: "warm-cache".into(),
            phase: Some("Succeeded".into()),
        }],
        ..HookStatus::default()
    });
    late.restore.status = Some(status);
    let plan = late.reconcile();
    assert_eq!(plan.status.phase, Some(RestorePhase::Succeeded));
}

#[test]
fn volume_restores_are_workload_targets_with_the_volume_addon() {
    let snaps = snapshots("volume");
    assert!(applies(&restore("", ""), &snaps));
    let mut pvc_addon = restore("", "");
    pvc_addon.spec.addon.as_mut().expect("addon").name = "pvc-addon".into();
    assert!(applies(&pvc_addon, &snaps));
    let mut database = restore("", "");
    database.spec.addon.as_mut().expect("addon").name = "postgres-addon".into();
    assert!(!applies(&database, &snaps));
    // Without an addon: the one that wrote the snapshot.
    let mut unnamed = restore("", "");
    unnamed.spec.addon = None;
    assert!(applies(&unnamed, &snaps));
    assert!(!applies(&unnamed, &snapshots("postgres")));
    let mut claim = restore("", "");
    claim.spec.target = Some(TypedObjectReference {
        api_group: Some(String::new()),
        kind: "PersistentVolumeClaim".into(),
        namespace: None,
        name: "data".into(),
    });
    assert!(!applies(&claim, &snaps), "a claim is restored as before");
}

#[test]
fn claims_selectors_and_the_job_identity_come_from_the_template() {
    let deploy = Workload::deployment(&deployment(3));
    assert_eq!(
        deploy.claims(),
        vec![
            VolumeClaim {
                volume: "data".into(),
                claim: "web-data".into()
            },
            VolumeClaim {
                volume: "logs".into(),
                claim: "web-logs".into()
            },
        ]
    );
    assert_eq!(
        claims_for(&deploy, &["logs".into(), "cache".into()]),
        vec![VolumeClaim {
            volume: "logs".into(),
            claim: "web-logs".into()
        }]
    );
    assert_eq!(deploy.pod_selector().as_deref(), Some("app=web"));
    let security = deploy.job_security();
    assert_eq!(security.run_as_user, Some(1000));
    assert_eq!(security.run_as_group, Some(3000));
    assert_eq!(security.fs_group, Some(2000), "the application's group");
    assert_eq!(security.run_as_non_root, Some(true));

    // A StatefulSet: ordinal 0's claims; set-based selectors.
    let sts: StatefulSet = serde_yaml::from_str(
        r#"
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: demo}
spec:
  serviceName: db
  selector:
    matchLabels: {app: db}
    matchExpressions:
      - {key: tier, operator: In, values: [primary, replica]}
      - {key: canary, operator: DoesNotExist}
  template:
    metadata: {labels: {app: db, tier: primary}}
    spec:
      containers: [{name: db, image: postgres, volumeMounts: [{name: pgdata, mountPath: /var/lib/postgresql}]}]
  volumeClaimTemplates:
    - metadata: {name: pgdata}
"#,
    )
    .expect("statefulset");
    let db = Workload::stateful_set(&sts);
    assert_eq!(db.replicas, Some(1), "a StatefulSet without replicas has 1");
    assert_eq!(
        db.claims(),
        vec![VolumeClaim {
            volume: "pgdata".into(),
            claim: "pgdata-db-0".into()
        }]
    );
    assert_eq!(
        db.pod_selector().as_deref(),
        Some("app=db,tier in (primary,replica),!canary")
    );
    let security = db.job_security();
    assert_eq!(
        (
            security.run_as_user,
            security.run_as_group,
            security.fs_group
        ),
        (Some(65534), Some(65534), None),
        "never root, and no fsGroup that would change the files' group"
    );
}

#[test]
fn the_patches_record_and_remove_the_count_in_one_go() {
    assert_eq!(
        Scale::Down { original: 3 }.patch("undo"),
        serde_json::json!({
            "metadata": {"annotations": {
                "stowaway.dev/restore-original-replicas": "3",
                "stowaway.dev/scaled-down-by": "undo",
            }},
            "spec": {"replicas": 0},
        })
    );
    assert_eq!(
        Scale::Back { replicas: 3 }.patch("undo"),
        serde_json::json!({
            "metadata": {"annotations": {
                "stowaway.dev/restore-original-replicas": null,
                "stowaway.dev/scaled-down-by": null,
            }},
            "spec": {"replicas": 3},
        })
    );
}
