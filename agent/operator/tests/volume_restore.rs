//! The safe volume-restore path against the fake API server: a RestoreSession into a
//! Deployment with 3 replicas scales it to 0, waits for its pods to go, runs the restore Job
//! with the workload's claim mounted writable, and scales it back whether the Job succeeds
//! or fails.

use std::sync::Arc;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube_fake_client::ClientBuilder;
use stowaway_api::restore_session::{RestoreMode, RestorePhase};
use stowaway_api::{BackupConfiguration, BackupSession, RestoreSession, Snapshot};
use stowaway_operator::controller::{self, Context};
use stowaway_operator::job::JobSettings;

mod common;

fn yaml<T: serde::de::DeserializeOwned>(text: &str) -> T {
    serde_yaml::from_str(text).expect("test manifest")
}

struct Harness {
    client: Client,
    ctx: Arc<Context>,
}

impl Harness {
    async fn new() -> Harness {
        let snapshot: Snapshot = yaml(
            r#"
apiVersion: storage.stowaway.dev/v1alpha1
kind: Snapshot
metadata: {name: repo-web-1, namespace: demo}
spec: {repository: repo, snapshotID: "00ff"}
status:
  phase: Succeeded
  snapshotTime: "2026-01-31T02:00:00Z"
  components: {data: {phase: Succeeded}}
  addon: {name: volume}
"#,
        );
        let deployment: Deployment = yaml(
            r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: demo}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      securityContext: {fsGroup: 2000}
      containers:
        - name: app
          image: registry.example/web
          securityContext: {runAsUser: 1000, runAsGroup: 1000}
          volumeMounts: [{name: data, mountPath: /var/lib/web}]
      volumes:
        - {name: data, persistentVolumeClaim: {claimName: web-data}}
        - {name: cache, emptyDir: {}}
"#,
        );
        let mut builder = ClientBuilder::new()
            .with_resource::<Snapshot>()
            .with_status_subresource::<Snapshot>()
            .with_resource::<BackupConfiguration>()
            .with_resource::<BackupSession>()
            .with_resource::<RestoreSession>()
            .with_status_subresource::<RestoreSession>()
            .with_status_subresource::<Job>()
            .with_object(snapshot)
            .with_object(deployment);
        for i in 0..3 {
            builder = builder.with_object(pod(&format!("web-{i}"), "web"));
        }
        // Another application's pod, which the restore does not wait for.
        builder = builder.with_object(pod("shop-0", "shop"));
        let client = builder.build().await.expect("fake client");
        let ctx = Context::new(
            client.clone(),
            JobSettings {
                image: "registry.example/stowaway:1.0".into(),
                ..JobSettings::default()
            },
            common::builtin_addons(),
        );
        Harness {
            client,
            ctx: Arc::new(ctx),
        }
    }

    fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.client.clone(), "demo")
    }

    async fn restore(&self) -> RestoreSession {
        let restore: RestoreSession = yaml(
            r#"
apiVersion: core.stowaway.dev/v1alpha1
kind: RestoreSession
metadata: {name: undo, namespace: demo}
spec:
  target: {apiGroup: apps, kind: Deployment, name: web}
  dataSource: {repository: repo, snapshot: latest}
  addon: {name: workload-addon, tasks: [{name: logical-backup-restore}]}
"#,
        );
        self.api::<RestoreSession>()
            .create(&Default::default(), &restore)
            .await
            .expect("create restore");
        self.reconcile().await
    }

    async fn reconcile(&self) -> RestoreSession {
        let api: Api<RestoreSession> = self.api();
        let restore = api.get("undo").await.expect("restore");
        controller::restore_session::reconcile(Arc::new(restore), self.ctx.clone())
            .await
            .expect("reconcile restore");
        api.get("undo").await.expect("restore")
    }

    async fn deployment(&self) -> Deployment {
        self.api().get("web").await.expect("deployment")
    }

    async fn replicas(&self) -> Option<i32> {
        self.deployment().await.spec.and_then(|s| s.replicas)
    }

    async fn job(&self) -> Option<Job> {
        self.api().get_opt("restore-undo").await.expect("job")
    }

    /// What the Deployment controller does once the Deployment has 0 replicas.
    async fn delete_pods(&self) {
        let pods: Api<Pod> = self.api();
        for i in 0..3 {
            pods.delete(&format!("web-{i}"), &DeleteParams::default())
                .await
                .expect("delete pod");
        }
    }

    /// What the Job controller writes when the Job ends.
    async fn finish_job(&self, condition: &str, reason: &str) {
        let patch = serde_json::json!({"status": {"conditions": [{
            "type": condition, "status": "True", "reason": reason, "message": "the pod ended",
        }]}});
        self.api::<Job>()
            .patch_status(
                "restore-undo",
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
            .expect("job status");
    }
}

fn pod(name: &str, app: &str) -> Pod {
    yaml(&format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: {name}, namespace: demo, labels: {{app: {app}}}}}
spec: {{containers: [{{name: app, image: registry.example/{app}}}]}}
status: {{phase: Running}}
"#
    ))
}

/// The Deployment is at 0 replicas with its count recorded, and no Job runs beside its pods.
async fn scaled_down_and_waiting(h: &Harness) {
    let restore = h.restore().await;
    let status = restore.status.expect("status");
    assert_eq!(status.phase, Some(RestorePhase::Running), "{status:?}");
    let record = status.workload.expect("workload status");
    assert_eq!(record.mode, Some(RestoreMode::ScaleDown));
    assert_eq!(record.original_replicas, Some(3));
    assert_eq!(h.replicas().await, Some(0));
    let annotations = h
        .deployment()
        .await
        .metadata
        .annotations
        .unwrap_or_default();
    assert_eq!(annotations["stowaway.dev/restore-original-replicas"], "3");
    assert_eq!(annotations["stowaway.dev/scaled-down-by"], "undo");
    assert!(h.job().await.is_none(), "no Job while the pods run");

    // The pods are still there: the restore waits.
    let restore = h.reconcile().await;
    let status = restore.status.expect("status");
    let waiting = status
        .conditions
        .iter()
        .find(|c| c.type_ == "WorkloadQuiesced")
        .expect("condition");
    assert_eq!(
        waiting.message.as_deref(),
        Some("waiting for 3 pod(s) of Deployment web to end: web-0, web-1, web-2")
    );
    assert!(h.job().await.is_none());
}

#[tokio::test]
async fn a_deployment_is_scaled_down_restored_by_a_job_and_scaled_back() {
    let h = Harness::new().await;
    scaled_down_and_waiting(&h).await;

    // The pods are gone: the Job, with the claim mounted writable where the executor
    // looks for the workload's volumes.
    h.delete_pods().await;
    let restore = h.reconcile().await;
    assert_eq!(
        restore.status.and_then(|s| s.phase),
        Some(RestorePhase::Running)
    );
    let job = h.job().await.expect("restore Job");
    let pod = job.spec.and_then(|s| s.template.spec).expect("pod spec");
    let container = &pod.containers[0];
    assert_eq!(
        container.args.clone().unwrap_or_default(),
        [
            "execute",
            "restore",
            "--namespace",
            "demo",
            "--session",
            "undo"
        ]
        .map(String::from)
    );
    let volumes = pod.volumes.clone().unwrap_or_default();
    let data = volumes
        .iter()
        .find(|v| v.persistent_volume_claim.is_some())
        .expect("claim volume");
    let claim = data.persistent_volume_claim.clone().expect("claim");
    assert_eq!(claim.claim_name, "web-data");
    assert_eq!(claim.read_only, Some(false));
    assert_eq!(
        volumes
            .iter()
            .filter(|v| v.persistent_volume_claim.is_some())
            .count(),
        1,
        "only the claims of the components restored"
    );
    let mount = container
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| m.name == data.name)
        .expect("mount");
    assert_eq!(mount.mount_path, "/stowaway/volumes/data");
    assert_eq!(mount.read_only, Some(false));
    let security = pod.security_context.expect("security context");
    assert_eq!(
        (
            security.run_as_user,
            security.run_as_group,
            security.fs_group
        ),
        (Some(1000), Some(1000), Some(2000)),
        "the Job writes as the application"
    );
    assert_eq!(h.replicas().await, Some(0), "still scaled down");

    // The executor restores the component; the Job completes.
    let patch = serde_json::json!({"status": {"components": {"data": {"phase": "Succeeded"}}}});
    h.api::<RestoreSession>()
        .patch_status("undo", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("component status");
    h.finish_job("Complete", "Completed").await;
    let restore = h.reconcile().await;
    let status = restore.status.expect("status");
    assert_eq!(status.phase, Some(RestorePhase::Succeeded), "{status:?}");
    assert_eq!(h.replicas().await, Some(3), "scaled back");
    let annotations = h
        .deployment()
        .await
        .metadata
        .annotations
        .unwrap_or_default();
    assert!(
        !annotations.contains_key("stowaway.dev/restore-original-replicas")
            && !annotations.contains_key("stowaway.dev/scaled-down-by"),
        "{annotations:?}"
    );
    assert!(status.workload.and_then(|r| r.scaled_back_at).is_some());

    // Nothing more happens.
    h.reconcile().await;
    assert_eq!(h.replicas().await, Some(3));
}

#[tokio::test]
async fn a_failed_job_still_scales_the_deployment_back() {
    let h = Harness::new().await;
    scaled_down_and_waiting(&h).await;
    h.delete_pods().await;
    h.reconcile().await;
    assert!(h.job().await.is_some(), "restore Job");

    h.finish_job("Failed", "BackoffLimitExceeded").await;
    let restore = h.reconcile().await;
    let status = restore.status.expect("status");
    assert_eq!(status.phase, Some(RestorePhase::Failed), "{status:?}");
    assert_eq!(h.replicas().await, Some(3), "scaled back after the failure");
    let incomplete = status
        .conditions
        .iter()
        .find(|c| c.type_ == "RestoreIncomplete")
        .expect("condition");
    assert_eq!(
        incomplete.reason.as_deref(),
        Some("RestoreExecutorTerminatedBeforeCompletion")
    );
    assert!(
        incomplete
            .message
            .as_deref()
            .unwrap_or_default()
            .contains("BackoffLimitExceeded"),
        "{incomplete:?}"
    );
    assert_eq!(status.components["data"].phase, Some(RestorePhase::Failed));
}
