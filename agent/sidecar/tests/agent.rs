//! The sidecar's work loop end to end: the operator's reconcilers make the objects in the fake
//! API server of `kube-fake-client` (a Deployment whose two replicas carry a sidecar, a
//! BackupConfiguration in sidecar mode on a local BackupStorage); two sidecar agents look at
//! the sessions; exactly one claims each and runs the real volume addon on a real directory
//! tree into a real repository; the operator reads the outcome back. Interrupted work is
//! marked Failed with its reason.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, PodStatus};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use stowaway_api::backup_session::BackupSessionPhase;
use stowaway_api::common::RunPhase;
use stowaway_api::restore_session::RestorePhase;
use stowaway_api::{
    BackupConfiguration, BackupSession, BackupStorage, Repository, RestoreSession, Snapshot,
};
use stowaway_executor::Settings;
use stowaway_operator::claim::claim_annotation;
use stowaway_operator::controller::{self, Context};
use stowaway_operator::job::JobSettings;
use stowaway_operator::names::{SIDECAR_TARGET_LABEL, sidecar_target};
use stowaway_sidecar::agent::{Agent, WorkKind};
use stowaway_sidecar::identity::Identity;
use stowaway_storage::Storage;
use stowaway_testkit::{
    fake_cluster, local_storage, make_tree, password_secret, runtime, tree, yaml,
};

const NS: &str = "demo";
const PASSWORD: &str = "correct horse battery staple";

fn pod(name: &str, phase: &str) -> Pod {
    let mut pod = Pod::default();
    pod.metadata.name = Some(name.into());
    pod.metadata.namespace = Some(NS.into());
    pod.metadata.labels = Some(BTreeMap::from([(
        SIDECAR_TARGET_LABEL.to_owned(),
        sidecar_target("Deployment", "web"),
    )]));
    pod.status = Some(PodStatus {
        phase: Some(phase.into()),
        ..PodStatus::default()
    });
    pod
}

struct Cluster {
    client: Client,
    ctx: Arc<Context>,
    dir: tempfile::TempDir,
}

impl Cluster {
    async fn new() -> Cluster {
        let dir = tempfile::tempdir().expect("tempdir");
        for sub in ["storage", "volumes/data", "volumes/logs"] {
            std::fs::create_dir_all(dir.path().join(sub)).expect("mkdir");
        }
        let storage = local_storage(NS, &dir.path().join("storage"));
        let config: BackupConfiguration = yaml(&format!(
            r#"
apiVersion: core.stowaway.dev/v1alpha1
kind: BackupConfiguration
metadata:
  name: web
  namespace: {NS}
  annotations: {{stowaway.dev/inject: "true"}}
spec:
  target: {{apiGroup: apps, kind: Deployment, name: web}}
  backends:
    - {{name: local, storageRef: {{name: store}}}}
  sessions:
    - name: daily
      scheduler: {{schedule: "0 2 * * *"}}
      addon: {{name: workload-addon, tasks: [{{name: logical-backup}}]}}
      repositories:
        - {{name: repo, backend: local, directory: {NS}/web, encryptionSecret: {{name: enc}}}}
"#
        ));
        let deployment: Deployment = yaml(&format!(
            r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: {NS}}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers: [{{name: web, image: nginx}}]
"#
        ));
        let client = fake_cluster()
            .with_resource::<Pod>()
            .with_resource::<Deployment>()
            .with_object(storage)
            .with_object(config)
            .with_object(deployment)
            .with_object(password_secret(NS, "enc", PASSWORD))
            .with_object(pod("web-a", "Running"))
            .with_object(pod("web-b", "Running"))
            .build()
            .await
            .expect("fake client");
        let ctx = Arc::new(Context::new(
            client.clone(),
            JobSettings::default(),
            stowaway_testkit::builtin_addons(runtime("sidecar")),
        ));
        Cluster { client, ctx, dir }
    }

    fn path(&self, sub: &str) -> PathBuf {
        self.dir.path().join(sub)
    }

    fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.client.clone(), NS)
    }

    fn agent(&self, pod: &str) -> Agent {
        self.agent_with_volumes(pod, "volumes")
    }

    /// A RestoreSession `name` of the latest snapshot into the Deployment, Running and handed
    /// to the sidecars by its status as the operator writes it. `claim` is `(pod, phase of
    /// the component "logs")` for a session that pod claimed already.
    async fn sidecar_restore(&self, name: &str, phase: &str, claim: &[(&str, &str)]) {
        let annotations = claim
            .iter()
            .map(|(pod, _)| format!("{{\"{}\": {pod}}}", claim_annotation("Deployment", "web")))
            .next()
            .unwrap_or_else(|| "{}".into());
        let restore: RestoreSession = yaml(&format!(
            r#"
apiVersion: core.stowaway.dev/v1alpha1
kind: RestoreSession
metadata:
  name: {name}
  namespace: {NS}
  annotations: {annotations}
spec:
  target: {{apiGroup: apps, kind: Deployment, name: web}}
  dataSource: {{repository: repo, snapshot: latest, encryptionSecret: {{name: enc}}}}
  addon: {{name: workload-addon, tasks: [{{name: logical-backup-restore}}]}}
"#
        ));
        let api: Api<RestoreSession> = self.api();
        api.create(&PostParams::default(), &restore)
            .await
            .expect("create restore");
        let logs = claim.first().map_or("Pending", |(_, phase)| phase);
        let status = serde_json::json!({"status": {
            "phase": phase,
            "conditions": [{"type": stowaway_operator::restore_session::EXECUTOR_ENSURED,
                            "status": "True", "reason": "SidecarExecutor",
                            "lastTransitionTime": "2026-01-01T00:00:00Z"}],
            "components": {"data": {"phase": "Pending"}, "logs": {"phase": logs}},
        }});
        api.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
            .await
            .expect("status");
    }

    fn agent_with_volumes(&self, pod: &str, volumes: &str) -> Agent {
        let identity = Identity::from_env(|var| {
            match var {
                "POD_NAME" => Some(pod),
                "POD_NAMESPACE" => Some(NS),
                "STOWAWAY_TARGET_KIND" => Some("Deployment"),
                "STOWAWAY_TARGET_NAME" => Some("web"),
                _ => None,
            }
            .map(str::to_owned)
        })
        .expect("identity");
        let settings = Settings {
            volumes_dir: self.path(volumes),
            ..stowaway_testkit::settings(runtime("sidecar"))
        };
        Agent::new(self.client.clone(), identity, settings)
    }

    /// The operator's reconcilers until the configuration's initial BackupSession runs with
    /// its work handed to the sidecars; returns the session's name.
    async fn running_session(&self) -> String {
        let storage: BackupStorage = self.api().get("store").await.expect("storage");
        controller::backup_storage::reconcile(Arc::new(storage), self.ctx.clone())
            .await
            .expect("reconcile storage");
        self.reconcile_config().await;
        let repo: Repository = self.api().get("repo").await.expect("Repository created");
        controller::repository::reconcile(Arc::new(repo), self.ctx.clone())
            .await
            .expect("reconcile repository");
        self.reconcile_config().await;
        let sessions = self
            .api::<BackupSession>()
            .list(&ListParams::default())
            .await
            .expect("sessions")
            .items;
        assert_eq!(sessions.len(), 1, "the initial backup");
        let name = sessions[0].name_any();
        let session = self.reconcile_session(&name).await;
        let status = session.status.expect("status");
        assert_eq!(status.phase, Some(BackupSessionPhase::Running));
        assert_eq!(
            status.snapshots[0].executor.as_deref(),
            Some("Sidecar"),
            "pods of the target carry a sidecar"
        );
        name
    }

    async fn reconcile_config(&self) {
        let config: BackupConfiguration = self.api().get("web").await.expect("config");
        controller::backup_configuration::reconcile(Arc::new(config), self.ctx.clone())
            .await
            .expect("reconcile configuration");
    }

    async fn reconcile_session(&self, name: &str) -> BackupSession {
        let api: Api<BackupSession> = self.api();
        let session = api.get(name).await.expect("session");
        controller::backup_session::reconcile(Arc::new(session), self.ctx.clone())
            .await
            .expect("reconcile session");
        api.get(name).await.expect("session")
    }

    async fn claimant(&self, name: &str) -> Option<String> {
        let session: BackupSession = self.api().get(name).await.expect("session");
        session
            .annotations()
            .get(&claim_annotation("Deployment", "web"))
            .cloned()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_two_replicas_exactly_one_backs_up_and_the_data_round_trips() {
    let c = Cluster::new().await;
    make_tree(&c.path("volumes/data"));
    std::fs::write(c.path("volumes/logs/app.log"), b"line 1\nline 2\n").expect("log");
    let name = c.running_session().await;

    let (a, b) = (c.agent("web-a"), c.agent("web-b"));
    let (sweep_a, sweep_b) = tokio::join!(a.sweep(), b.sweep());
    let (sweep_a, sweep_b) = (sweep_a.expect("sweep a"), sweep_b.expect("sweep b"));
    let started: Vec<_> = sweep_a.started.into_iter().chain(sweep_b.started).collect();
    assert_eq!(started.len(), 1, "exactly one replica runs the session");
    assert_eq!(started[0].work.kind, WorkKind::Backup);
    assert_eq!(started[0].work.session, name);
    let winner = c.claimant(&name).await.expect("claimed");
    assert!(winner == "web-a" || winner == "web-b", "{winner}");

    // While it runs, the loser's next pass leaves it alone (its claimant runs).
    let loser = if winner == "web-a" { &b } else { &a };
    let again = loser.sweep().await.expect("second pass");
    assert!(again.started.is_empty() && again.interrupted.is_empty());

    for s in started {
        s.handle.await.expect("work task");
    }
    let session = c.reconcile_session(&name).await;
    assert_eq!(
        session.status.as_ref().and_then(|s| s.phase),
        Some(BackupSessionPhase::Succeeded),
        "{:?}",
        session.status
    );
    let snapshot_name = &session.status.expect("status").snapshots[0].name;
    let snapshot: Snapshot = c.api().get(snapshot_name).await.expect("Snapshot");
    let status = snapshot.status.expect("snapshot status");
    assert_eq!(status.phase, Some(RunPhase::Succeeded));
    let components: Vec<&str> = status.components.keys().map(String::as_str).collect();
    assert_eq!(components, ["data", "logs"], "one component per pod volume");

    assert!(
        snapshot.spec.snapshot_id.is_some(),
        "the repository's id is recorded"
    );

    // A restore handed to the sidecars (as the operator does for work over the network) is
    // claimed and run the same way; here into fresh volumes, compared byte for byte.
    let restore_agent = c.agent_with_volumes("web-c", "restored");
    for volume in ["data", "logs"] {
        std::fs::create_dir_all(c.path("restored").join(volume)).expect("mkdir");
    }
    c.sidecar_restore("back", "Running", &[]).await;
    let sweep = restore_agent.sweep().await.expect("restore pass");
    assert_eq!(sweep.started.len(), 1);
    assert_eq!(sweep.started[0].work.kind, WorkKind::Restore);
    for s in sweep.started {
        s.handle.await.expect("restore task");
    }
    let restore: RestoreSession = c.api().get("back").await.expect("restore");
    let components = restore.status.expect("status").components;
    for volume in ["data", "logs"] {
        assert_eq!(
            components[volume].phase,
            Some(RestorePhase::Succeeded),
            "{volume}: {:?}",
            components[volume]
        );
    }
    assert_eq!(
        tree(&c.path("restored/data"), &[]),
        tree(&c.path("volumes/data"), &[])
    );
    assert_eq!(
        std::fs::read(c.path("restored/logs/app.log")).expect("log"),
        b"line 1\nline 2\n"
    );

    // Nothing is left for anyone: the finished session is ignored by both.
    for agent in [&a, &b] {
        let sweep = agent.sweep().await.expect("pass");
        assert!(sweep.started.is_empty() && sweep.interrupted.is_empty() && sweep.lost.is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_interrupted_by_a_restart_or_a_lost_pod_is_marked_failed() {
    let c = Cluster::new().await;
    make_tree(&c.path("volumes/data"));
    let name = c.running_session().await;

    // web-a claimed it, then its sidecar restarted: the new process did not start the work.
    let mut session: BackupSession = c.api().get(&name).await.expect("session");
    session
        .annotations_mut()
        .insert(claim_annotation("Deployment", "web"), "web-a".into());
    c.api::<BackupSession>()
        .replace(&name, &PostParams::default(), &session)
        .await
        .expect("claim");
    let sweep = c.agent("web-b").sweep().await.expect("b's pass");
    assert!(
        sweep.started.is_empty() && sweep.interrupted.is_empty(),
        "web-a runs and holds the claim"
    );
    let sweep = c
        .agent("web-a")
        .sweep()
        .await
        .expect("a's pass after a restart");
    assert!(sweep.started.is_empty());
    assert_eq!(sweep.interrupted.len(), 1);
    let message = "interrupted: the sidecar in pod web-a restarted while running it";
    assert_eq!(sweep.interrupted[0].1, message);
    let session = c.reconcile_session(&name).await;
    let status = session.status.expect("status");
    assert_eq!(status.phase, Some(BackupSessionPhase::Failed));
    let snapshot: Snapshot = c
        .api()
        .get(&status.snapshots[0].name)
        .await
        .expect("Snapshot");
    let snapshot = snapshot.status.expect("snapshot status");
    assert_eq!(snapshot.phase, Some(RunPhase::Failed));
    assert_eq!(
        snapshot.conditions[0].reason.as_deref(),
        Some("ExecutorInterrupted")
    );
    assert_eq!(snapshot.conditions[0].message.as_deref(), Some(message));
    let storage = Storage::local(c.path("storage").join(NS).join("web")).expect("storage");
    let repo = stowaway_repository::Repository::open(storage, PASSWORD)
        .await
        .expect("open");
    assert!(
        repo.snapshots().await.expect("list").is_empty(),
        "nothing half done is recorded"
    );

    // A restore claimed by a pod that is gone: another replica fails what was left.
    c.sidecar_restore("back", "Running", &[("web-gone", "Succeeded")])
        .await;
    let api: Api<RestoreSession> = c.api();
    let sweep = c.agent("web-b").sweep().await.expect("pass");
    assert_eq!(sweep.interrupted.len(), 1);
    assert_eq!(
        sweep.interrupted[0].1,
        "interrupted: pod web-gone, whose sidecar was running it, is gone or no longer running"
    );
    let restore = api.get("back").await.expect("restore");
    let components = restore.status.expect("status").components;
    assert_eq!(components["data"].phase, Some(RestorePhase::Failed));
    assert_eq!(
        components["data"].error.as_deref(),
        Some(
            "interrupted: pod web-gone, whose sidecar was running it, is gone or no longer running"
        )
    );
    assert_eq!(
        components["logs"].phase,
        Some(RestorePhase::Succeeded),
        "finished work is left as it is"
    );
}
