use serde_json::json;
use stowaway_api::{BackupSession, RestoreSession};

use super::*;

fn me(pod: &str) -> Identity {
    Identity {
        pod: pod.into(),
        target_kind: "Deployment".into(),
        target_name: "web".into(),
    }
}

/// A Running BackupSession with one snapshot of Deployment web, handed to `executor`.
fn backup(executor: &str, snapshot_phase: &str, claimed_by: Option<&str>) -> BackupSession {
    let mut s: BackupSession = serde_json::from_value(json!({
        "apiVersion": "core.stowaway.dev/v1alpha1",
        "kind": "BackupSession",
        "metadata": {"name": "db-1", "namespace": "shop"},
        "spec": {"invoker": {"kind": "BackupConfiguration", "name": "db"}, "session": "daily"},
        "status": {
            "phase": "Running",
            "snapshots": [
                {"name": "repo-db-1", "phase": snapshot_phase, "executor": executor,
                 "appRef": {"apiGroup": "apps", "kind": "Deployment", "name": "web"}},
                {"name": "other-db-1", "phase": "Pending", "executor": "Job",
                 "appRef": {"apiGroup": "apps", "kind": "StatefulSet", "name": "pg"}}
            ],
            "conditions": [{"type": "BackupExecutorEnsured", "status": "True",
                            "reason": "ExecutorsEnsured", "lastTransitionTime": "2026-01-01T00:00:00Z"}]
        }
    }))
    .expect("session");
    if let Some(pod) = claimed_by {
        s.metadata.annotations =
            Some([(claim_annotation("Deployment", "web"), pod.to_owned())].into());
    }
    s
}

fn alive(pod: &str) -> bool {
    pod == "web-a" || pod == "web-b"
}

#[test]
fn an_unclaimed_session_for_my_target_is_taken() {
    let s = backup("Sidecar", "Pending", None);
    let view = backup_view(&s, &me("web-a"));
    assert_eq!(view.claimed_by, None);
    assert!(view.open && view.for_sidecar && view.for_target);
    assert_eq!(decide(&view, &me("web-a"), false, &alive), Claim::Take);
}

#[test]
fn a_session_claimed_by_a_live_replica_is_left_to_it() {
    let s = backup("Sidecar", "Running", Some("web-b"));
    assert_eq!(
        decide(&backup_view(&s, &me("web-a")), &me("web-a"), false, &alive),
        Claim::Ignore
    );
    // The claimant carries on.
    assert_eq!(
        decide(&backup_view(&s, &me("web-b")), &me("web-b"), true, &alive),
        Claim::Running
    );
}

#[test]
fn a_claimant_that_is_gone_or_restarted_interrupted_the_session() {
    let s = backup("Sidecar", "Running", Some("web-old"));
    assert_eq!(
        decide(&backup_view(&s, &me("web-a")), &me("web-a"), false, &alive),
        Claim::Interrupted(
            "interrupted: pod web-old, whose sidecar was running it, is gone or no longer running"
                .into()
        )
    );
    let s = backup("Sidecar", "Running", Some("web-a"));
    assert_eq!(
        decide(&backup_view(&s, &me("web-a")), &me("web-a"), false, &alive),
        Claim::Interrupted(
            "interrupted: the sidecar in pod web-a restarted while running it".into()
        )
    );
}

#[test]
fn sessions_not_for_this_sidecar_are_ignored() {
    // Handed to a Job.
    let s = backup("Job", "Pending", None);
    assert_eq!(
        decide(&backup_view(&s, &me("web-a")), &me("web-a"), false, &alive),
        Claim::Ignore
    );
    // Another target.
    let other = Identity {
        pod: "cache-0".into(),
        target_kind: "StatefulSet".into(),
        target_name: "cache".into(),
    };
    let s = backup("Sidecar", "Pending", None);
    assert_eq!(
        decide(&backup_view(&s, &other), &other, false, &alive),
        Claim::Ignore
    );
    // My snapshot is done (the Job's member is not mine).
    let s = backup("Sidecar", "Succeeded", Some("web-old"));
    assert_eq!(
        decide(&backup_view(&s, &me("web-a")), &me("web-a"), false, &alive),
        Claim::Ignore
    );
    // Pre-hooks not done yet: no executor condition.
    let mut s = backup("Sidecar", "Pending", None);
    if let Some(status) = s.status.as_mut() {
        status.conditions.clear();
    }
    assert!(!backup_view(&s, &me("web-a")).for_sidecar);
}

#[test]
fn restores_are_claimed_by_their_target_sidecar() {
    let r: RestoreSession = serde_json::from_value(json!({
        "apiVersion": "core.stowaway.dev/v1alpha1",
        "kind": "RestoreSession",
        "metadata": {"name": "undo", "namespace": "shop"},
        "spec": {"target": {"apiGroup": "apps", "kind": "Deployment", "name": "web"},
                 "dataSource": {"repository": "repo", "snapshot": "latest"}},
        "status": {
            "phase": "Running",
            "components": {"dump": {"phase": "Pending"}},
            "conditions": [{"type": "RestoreExecutorEnsured", "status": "True",
                            "reason": "SidecarExecutor", "lastTransitionTime": "2026-01-01T00:00:00Z"}]
        }
    }))
    .expect("restore");
    let view = restore_view(&r, &me("web-a"));
    assert!(view.open && view.for_sidecar && view.for_target);
    assert_eq!(decide(&view, &me("web-a"), false, &alive), Claim::Take);
}

#[test]
fn the_claim_annotation_is_a_valid_key_for_long_names() {
    let key = claim_annotation("StatefulSet", &"x".repeat(200));
    let (prefix, name) = key.split_once('/').expect("prefix/name");
    assert_eq!(prefix, "claim.stowaway.dev");
    assert!(name.len() <= 63, "{name}");
    assert_eq!(
        claim_annotation("Deployment", "web"),
        "claim.stowaway.dev/deployment.web"
    );
}
