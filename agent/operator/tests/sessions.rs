//! The BackupConfiguration, BackupSession and RestoreSession reconcilers end to end against
//! the fake API server of `kube-fake-client`: objects in, reconcilers run, objects and
//! statuses out.
//!
//! The executor (sidecar or Job) is played by the test: it writes the Snapshot phases as the
//! real one does.

use std::sync::{Arc, Mutex};

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use kube_fake_client::ClientBuilder;
use stowaway_api::backup_configuration::BackupConfigurationPhase;
use stowaway_api::backup_session::BackupSessionPhase;
use stowaway_api::common::RunPhase;
use stowaway_api::{
    Addon, BackupBatch, BackupConfiguration, BackupSession, BackupStorage, Repository,
    RestoreSession, RetentionPolicy, Snapshot,
};
use stowaway_operator::controller::{self, Context};
use stowaway_operator::job::JobSettings;
use stowaway_operator::schedule::Schedule;

mod common;
use common::{ClusterObject, with_cluster_objects};

const SCHEDULE: &str = "*/5 * * * *";

struct Harness {
    client: Client,
    ctx: Arc<Context>,
    now: Arc<Mutex<Timestamp>>,
}

impl Harness {
    async fn new() -> Harness {
        Harness::with_cluster(Vec::new()).await
    }

    /// A harness whose API server also serves these cluster-scoped objects.
    async fn with_cluster(cluster: Vec<ClusterObject>) -> Harness {
        let start = Timestamp::now();
        let storage: BackupStorage = yaml(
            r#"
apiVersion: storage.stowaway.dev/v1alpha1
kind: BackupStorage
metadata: {name: store, namespace: demo}
spec:
  storage: {provider: local, local: {mountPath: /backup}}
  deletionPolicy: Delete
status: {phase: Ready}
"#,
        );
        let policy: RetentionPolicy = yaml(
            r#"
apiVersion: storage.stowaway.dev/v1alpha1
kind: RetentionPolicy
metadata: {name: keep, namespace: demo}
spec: {successfulSnapshots: {last: 5}}
"#,
        );
        let mut config: BackupConfiguration = yaml(&format!(
            r#"
apiVersion: core.stowaway.dev/v1alpha1
kind: BackupConfiguration
metadata: {{name: db, namespace: demo}}
spec:
  target: {{apiGroup: apps, kind: Deployment, name: web}}
  backends:
    - {{name: local, storageRef: {{name: store}}, retentionPolicy: {{name: keep}}}}
  sessions:
    - name: frequent
      scheduler: {{schedule: "{SCHEDULE}"}}
      backupTimeout: 30m
      retryConfig: {{maxRetry: 1}}
      addon: {{name: postgres-addon, tasks: [{{name: logical-backup}}]}}
      repositories:
        - {{name: repo, backend: local, directory: /demo/db, encryptionSecret: {{name: pw}}}}
"#
        ));
        config.metadata.creation_timestamp = Some(Time(start - SignedDuration::from_secs(1)));
        let mut web = Deployment::default();
        web.metadata.name = Some("web".into());
        web.metadata.namespace = Some("demo".into());
        let client = ClientBuilder::new()
            .with_resource::<BackupStorage>()
            .with_status_subresource::<BackupStorage>()
            .with_resource::<RetentionPolicy>()
            .with_resource::<Repository>()
            .with_status_subresource::<Repository>()
            .with_resource::<Snapshot>()
            .with_status_subresource::<Snapshot>()
            .with_resource::<BackupConfiguration>()
            .with_status_subresource::<BackupConfiguration>()
            .with_resource::<BackupBatch>()
            .with_status_subresource::<BackupBatch>()
            .with_resource::<BackupSession>()
            .with_status_subresource::<BackupSession>()
            .with_resource::<stowaway_api::HookTemplate>()
            .with_resource::<RestoreSession>()
            .with_status_subresource::<RestoreSession>()
            .with_resource::<Addon>()
            .with_status_subresource::<Job>()
            .with_object(storage)
            .with_object(policy)
            .with_object(config)
            .with_object(web)
            .build()
            .await
            .expect("fake client");
        let client = with_cluster_objects(client, cluster);
        let now = Arc::new(Mutex::new(start));
        let clock_now = now.clone();
        let ctx = Context::new(
            client.clone(),
            JobSettings {
                image: "registry.example/stowaway:1.0".into(),
                ..JobSettings::default()
            },
            common::builtin_addons(),
        )
        .with_clock(Arc::new(move || *clock_now.lock().expect("clock")));
        Harness {
            client,
            ctx: Arc::new(ctx),
            now,
        }
    }

    fn set_now(&self, t: Timestamp) {
        *self.now.lock().expect("clock") = t;
    }

    fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.client.clone(), "demo")
    }

    async fn config(&self) -> BackupConfiguration {
        self.api().get("db").await.expect("configuration")
    }

    async fn reconcile_config(&self) {
        let config = self.config().await;
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

    async fn reconcile_restore(&self, name: &str) -> RestoreSession {
        let api: Api<RestoreSession> = self.api();
        let restore = api.get(name).await.expect("restore");
        controller::restore_session::reconcile(Arc::new(restore), self.ctx.clone())
            .await
            .expect("reconcile restore");
        api.get(name).await.expect("restore")
    }

    async fn sessions(&self) -> Vec<BackupSession> {
        let mut items = self
            .api::<BackupSession>()
            .list(&ListParams::default())
            .await
            .expect("sessions")
            .items;
        items.sort_by_key(ResourceExt::name_any);
        items
    }

    /// What the Repository reconciler does once the repository is initialised.
    async fn repository_ready(&self) {
        let patch = serde_json::json!({"status": {"phase": "Ready"}});
        self.api::<Repository>()
            .patch_status("repo", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .expect("repository status");
    }

    /// What the executor does when it finishes a snapshot.
    async fn finish_snapshot(&self, name: &str, phase: &str, size: &str) {
        let patch = serde_json::json!({"status": {"phase": phase, "size": size}});
        self.api::<Snapshot>()
            .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .expect("snapshot status");
    }
}

fn yaml<T: serde::de::DeserializeOwned>(text: &str) -> T {
    serde_yaml::from_str(text).expect("test manifest")
}

#[tokio::test]
async fn a_configuration_gets_its_repository_an_initial_backup_and_scheduled_ones() {
    let h = Harness::new().await;

    // First pass: the Repository is created; nothing runs until it is Ready.
    h.reconcile_config().await;
    let repo: Repository = h.api().get("repo").await.expect("Repository created");
    assert_eq!(repo.spec.path, "/demo/db");
    assert_eq!(repo.spec.storage_ref.name, "store");
    assert_eq!(
        repo.spec
            .encryption_secret
            .as_ref()
            .map(|s| s.name.as_str()),
        Some("pw")
    );
    let status = h.config().await.status.expect("status");
    assert_eq!(status.phase, Some(BackupConfigurationPhase::NotReady));
    assert_eq!(
        status.repositories[0].reason.as_deref(),
        Some("being created")
    );
    assert!(h.sessions().await.is_empty());

    // The Repository becomes Ready: the configuration is Ready and the first backup starts.
    h.repository_ready().await;
    h.reconcile_config().await;
    let status = h.config().await.status.expect("status");
    assert_eq!(
        status.phase,
        Some(BackupConfigurationPhase::Ready),
        "{status:?}"
    );
    assert_eq!(status.target_found, Some(true));
    let sessions = h.sessions().await;
    assert_eq!(sessions.len(), 1);
    let initial = &sessions[0];
    let owner = &initial.owner_references()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("BackupConfiguration", "db")
    );
    assert_eq!(initial.spec.retry_left, Some(1));

    // A second pass changes nothing.
    h.reconcile_config().await;
    assert_eq!(h.sessions().await.len(), 1);

    // The next scheduled instant: exactly one new session, and its time persisted.
    let schedule = Schedule::parse(SCHEDULE, None).expect("schedule");
    let start = *h.now.lock().expect("clock");
    let due = schedule.next_after(start).expect("next instant");
    h.set_now(due + SignedDuration::from_secs(3));
    h.reconcile_config().await;
    h.reconcile_config().await;
    let sessions = h.sessions().await;
    assert_eq!(
        sessions.len(),
        2,
        "{:?}",
        sessions
            .iter()
            .map(ResourceExt::name_any)
            .collect::<Vec<_>>()
    );
    let scheduled = format!("db-frequent-{}", due.as_second());
    assert!(
        sessions.iter().any(|s| s.name_any() == scheduled),
        "{scheduled}"
    );
    let status = h.config().await.status.expect("status");
    assert_eq!(status.sessions[0].last_schedule, Some(Time(due)));
    let next = schedule.next_after(due).expect("next");
    assert_eq!(status.sessions[0].next_schedule, Some(next.to_string()));
}

#[tokio::test]
async fn a_session_runs_through_a_job_to_success_and_records_events() {
    let h = Harness::new().await;
    h.reconcile_config().await;
    h.repository_ready().await;
    h.reconcile_config().await;
    let name = h.sessions().await[0].name_any();

    let session = h.reconcile_session(&name).await;
    let status = session.status.clone().expect("status");
    assert_eq!(status.phase, Some(BackupSessionPhase::Running));
    assert_eq!(status.total_snapshots, Some(1));
    assert!(status.backup_deadline.is_some());
    let snapshot_name = format!("repo-{name}");
    let snapshot: Snapshot = h.api().get(&snapshot_name).await.expect("Snapshot created");
    assert_eq!(snapshot.spec.backup_session.as_deref(), Some(name.as_str()));
    let owner = &snapshot.owner_references()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("Repository", "repo")
    );

    // No sidecar runs for the target, so a Job does the work.
    let job: Job = h
        .api()
        .get(&format!("backup-{name}"))
        .await
        .expect("Job created");
    let spec = job.spec.as_ref().expect("job spec");
    assert_eq!(spec.backoff_limit, Some(0));
    assert_eq!(spec.active_deadline_seconds, Some(1800));
    let pod = spec.template.spec.as_ref().expect("pod spec");
    let container = &pod.containers[0];
    assert_eq!(
        container.image.as_deref(),
        Some("registry.example/stowaway:1.0")
    );
    assert_eq!(
        container.args.as_deref(),
        Some(
            &[
                "execute",
                "backup",
                "--namespace",
                "demo",
                "--session",
                name.as_str()
            ]
            .map(String::from)[..]
        )
    );
    let security = container
        .security_context
        .as_ref()
        .expect("security context");
    assert_eq!(security.read_only_root_filesystem, Some(true));
    assert_eq!(security.allow_privilege_escalation, Some(false));

    // The executor finishes the snapshot; the session succeeds.
    h.finish_snapshot(&snapshot_name, "Succeeded", "2.00 MiB")
        .await;
    let session = h.reconcile_session(&name).await;
    let status = session.status.expect("status");
    assert_eq!(status.phase, Some(BackupSessionPhase::Succeeded));
    assert_eq!(status.size.as_deref(), Some("2.00 MiB"));
    assert!(status.duration.is_some());

    let events: Vec<Event> = h
        .api::<Event>()
        .list(&ListParams::default())
        .await
        .expect("events")
        .items;
    let reasons: Vec<&str> = events.iter().filter_map(|e| e.reason.as_deref()).collect();
    assert!(reasons.contains(&"BackupStarted"), "{reasons:?}");
    assert!(reasons.contains(&"BackupSucceeded"), "{reasons:?}");
}

#[tokio::test]
async fn a_sidecar_takes_the_session_and_a_failure_is_retried() {
    let h = Harness::new().await;
    h.reconcile_config().await;
    h.repository_ready().await;
    h.reconcile_config().await;
    let name = h.sessions().await[0].name_any();

    // A running pod with the sidecar for Deployment web.
    let mut pod = Pod::default();
    pod.metadata.name = Some("web-1".into());
    pod.metadata.labels = Some(
        [(
            "stowaway.dev/sidecar-target".to_owned(),
            "deployment.web".to_owned(),
        )]
        .into(),
    );
    pod.status = Some(k8s_openapi::api::core::v1::PodStatus {
        phase: Some("Running".into()),
        ..Default::default()
    });
    h.api::<Pod>()
        .create(&Default::default(), &pod)
        .await
        .expect("pod");

    let session = h.reconcile_session(&name).await;
    assert_eq!(
        session.status.as_ref().and_then(|s| s.phase),
        Some(BackupSessionPhase::Running)
    );
    assert!(
        h.api::<Job>()
            .get_opt(&format!("backup-{name}"))
            .await
            .expect("get")
            .is_none(),
        "no Job when a sidecar runs the backup"
    );

    // The sidecar reports a failure: the session fails and its retry is created.
    h.finish_snapshot(&format!("repo-{name}"), "Failed", "0 B")
        .await;
    let session = h.reconcile_session(&name).await;
    let status = session.status.expect("status");
    assert_eq!(status.phase, Some(BackupSessionPhase::Failed));
    assert_eq!(status.retried, Some(true));
    let sessions = h.sessions().await;
    assert_eq!(sessions.len(), 2);
    let retry = sessions
        .iter()
        .find(|s| s.name_any() != name)
        .expect("retry");
    assert_eq!(retry.spec.retry_left, Some(0));

    // The retry starts only once the failed one is no longer active: it is.
    let retry = h.reconcile_session(&retry.name_any()).await;
    assert_eq!(
        retry.status.and_then(|s| s.phase),
        Some(BackupSessionPhase::Running)
    );
    // Statuses of Snapshot objects are what the executor wrote.
    let snapshot: Snapshot = h
        .api()
        .get(&format!("repo-{name}"))
        .await
        .expect("snapshot");
    assert_eq!(
        snapshot.status.and_then(|s| s.phase),
        Some(RunPhase::Failed)
    );
}

#[tokio::test]
async fn a_restore_pauses_the_backups_of_its_target_and_resumes_them() {
    let h = Harness::new().await;
    h.reconcile_config().await;
    h.repository_ready().await;
    h.reconcile_config().await;
    let name = h.sessions().await[0].name_any();
    h.reconcile_session(&name).await;
    let snapshot_name = format!("repo-{name}");
    let patch = serde_json::json!({"status": {
        "phase": "Succeeded",
        "snapshotTime": "2026-01-01T00:00:00Z",
        "components": {"dump": {"phase": "Succeeded"}},
    }});
    h.api::<Snapshot>()
        .patch_status(
            &snapshot_name,
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .expect("snapshot status");
    h.reconcile_session(&name).await;

    let restore: RestoreSession = yaml(
        r#"
apiVersion: core.stowaway.dev/v1alpha1
kind: RestoreSession
metadata: {name: undo, namespace: demo}
spec:
  target: {apiGroup: apps, kind: Deployment, name: web}
  dataSource: {repository: repo, snapshot: latest}
  addon: {name: postgres-addon, tasks: [{name: logical-backup-restore}]}
"#,
    );
    let restores: Api<RestoreSession> = h.api();
    restores
        .create(&Default::default(), &restore)
        .await
        .expect("restore");
    let reconcile = |restore: RestoreSession| {
        controller::restore_session::reconcile(Arc::new(restore), h.ctx.clone())
    };
    reconcile(restores.get("undo").await.expect("get"))
        .await
        .expect("reconcile");
    let status = restores
        .get("undo")
        .await
        .expect("get")
        .status
        .expect("status");
    assert_eq!(
        status.phase,
        Some(stowaway_api::restore_session::RestorePhase::Running)
    );
    assert_eq!(status.dependencies[0].reference.name, snapshot_name);
    assert!(status.components.contains_key("dump"));
    assert_eq!(
        h.config().await.spec.paused,
        Some(true),
        "backups paused during the restore"
    );
    let job: Job = h.api().get("restore-undo").await.expect("restore Job");
    let args = job
        .spec
        .and_then(|s| s.template.spec)
        .map(|p| p.containers[0].args.clone());
    assert_eq!(
        args.flatten().as_deref(),
        Some(
            &[
                "execute",
                "restore",
                "--namespace",
                "demo",
                "--session",
                "undo"
            ]
            .map(String::from)[..]
        )
    );

    // The executor reports the component restored.
    let patch = serde_json::json!({"status": {"components": {"dump": {"phase": "Succeeded"}}}});
    restores
        .patch_status("undo", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("component status");
    reconcile(restores.get("undo").await.expect("get"))
        .await
        .expect("reconcile");
    let status = restores
        .get("undo")
        .await
        .expect("get")
        .status
        .expect("status");
    assert_eq!(
        status.phase,
        Some(stowaway_api::restore_session::RestorePhase::Succeeded)
    );
    assert_eq!(h.config().await.spec.paused, Some(false), "backups resumed");
}

/// A local HTTP server answering every request with `status`; it records each request's
/// first line and body.
async fn hook_server(status: u16) -> (u16, Arc<Mutex<Vec<String>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut data = Vec::new();
            let mut buf = [0u8; 4096];
            // Read the head, then as much body as content-length says.
            loop {
                let n = stream.read(&mut buf).await.unwrap_or(0);
                if n == 0 {
                    break;
                }
                data.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&data).to_string();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let len = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if body.len() >= len {
                        let first = head.lines().next().unwrap_or_default().to_owned();
                        log.lock().expect("log").push(format!("{first} | {body}"));
                        break;
                    }
                }
            }
            let reply =
                format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            let _ = stream.write_all(reply.as_bytes()).await;
        }
    });
    (port, seen)
}

async fn add_hooks(h: &Harness, port: u16) {
    let template: stowaway_api::HookTemplate = yaml(&format!(
        r#"
apiVersion: core.stowaway.dev/v1alpha1
kind: HookTemplate
metadata: {{name: notify, namespace: demo}}
spec:
  params: [{{name: channel, default: ops}}]
  executor: {{type: Operator}}
  action:
    httpPost:
      host: 127.0.0.1
      port: {port}
      path: /hook/${{channel}}
      body: "${{SESSION}} ${{PHASE}}"
"#
    ));
    Api::<stowaway_api::HookTemplate>::namespaced(h.client.clone(), "demo")
        .create(&Default::default(), &template)
        .await
        .expect("template");
    let patch = serde_json::json!({"spec": {"sessions": [{
        "name": "frequent",
        "scheduler": {"schedule": SCHEDULE},
        "backupTimeout": "30m",
        "addon": {"name": "postgres-addon", "tasks": [{"name": "logical-backup"}]},
        "repositories": [{"name": "repo", "backend": "local", "directory": "/demo/db"}],
        "hooks": {
            "preBackup": [{"name": "before", "hookTemplate": {"name": "notify"}, "params": {"channel": "pre"}}],
            "postBackup": [{"name": "after", "hookTemplate": {"name": "notify"}, "executionPolicy": "Always"}],
        },
    }]}});
    h.api::<BackupConfiguration>()
        .patch("db", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("hooks");
}

#[tokio::test]
async fn hooks_run_before_the_job_and_after_the_outcome() {
    let h = Harness::new().await;
    let (port, seen) = hook_server(200).await;
    add_hooks(&h, port).await;
    h.reconcile_config().await;
    h.repository_ready().await;
    h.reconcile_config().await;
    let name = h.sessions().await[0].name_any();

    // First pass: the pre-hook runs; no Job yet.
    let session = h.reconcile_session(&name).await;
    let hooks = session
        .status
        .as_ref()
        .and_then(|s| s.hooks.clone())
        .expect("hooks");
    assert_eq!(hooks.pre_hooks[0].phase.as_deref(), Some("Succeeded"));
    assert_eq!(
        seen.lock().expect("log").clone(),
        vec![format!("POST /hook/pre HTTP/1.1 | {name} Running")]
    );
    assert!(
        h.api::<Job>()
            .get_opt(&format!("backup-{name}"))
            .await
            .expect("get")
            .is_none()
    );
    // Second pass: the Job.
    h.reconcile_session(&name).await;
    assert!(
        h.api::<Job>()
            .get_opt(&format!("backup-{name}"))
            .await
            .expect("get")
            .is_some()
    );

    // The snapshot succeeds: the post-hook runs, then the session is Succeeded.
    h.finish_snapshot(&format!("repo-{name}"), "Succeeded", "1.00 KiB")
        .await;
    let session = h.reconcile_session(&name).await;
    assert_eq!(
        session.status.as_ref().and_then(|s| s.phase),
        Some(BackupSessionPhase::Running)
    );
    let session = h.reconcile_session(&name).await;
    let status = session.status.expect("status");
    assert_eq!(status.phase, Some(BackupSessionPhase::Succeeded));
    assert_eq!(
        status.hooks.expect("hooks").post_hooks[0].phase.as_deref(),
        Some("Succeeded")
    );
    assert_eq!(
        seen.lock().expect("log").last().cloned(),
        Some(format!("POST /hook/ops HTTP/1.1 | {name} Succeeded"))
    );
}

#[tokio::test]
async fn a_failing_pre_hook_fails_the_session_without_reading_data() {
    let h = Harness::new().await;
    let (port, seen) = hook_server(500).await;
    add_hooks(&h, port).await;
    h.reconcile_config().await;
    h.repository_ready().await;
    h.reconcile_config().await;
    let name = h.sessions().await[0].name_any();
    for _ in 0..4 {
        h.reconcile_session(&name).await;
    }
    let session: BackupSession = h.api().get(&name).await.expect("session");
    let status = session.status.expect("status");
    assert_eq!(status.phase, Some(BackupSessionPhase::Failed));
    let incomplete = status
        .conditions
        .iter()
        .find(|c| c.type_ == "BackupIncomplete")
        .expect("condition");
    assert_eq!(incomplete.reason.as_deref(), Some("PreBackupHookFailed"));
    let pre = status
        .conditions
        .iter()
        .find(|c| c.type_ == "PreBackupHooksExecutionSucceeded")
        .expect("pre");
    assert!(
        pre.message
            .as_deref()
            .unwrap_or_default()
            .contains("answered HTTP 500"),
        "{pre:?}"
    );
    assert!(
        h.api::<Job>()
            .get_opt(&format!("backup-{name}"))
            .await
            .expect("get")
            .is_none(),
        "no backup ran"
    );
    // The post-hook (Always) still ran, to undo what the pre-hook may have started.
    assert_eq!(seen.lock().expect("log").len(), 2);
    let snapshot: Snapshot = h
        .api()
        .get(&format!("repo-{name}"))
        .await
        .expect("snapshot");
    assert_eq!(
        snapshot.status.and_then(|s| s.phase),
        Some(RunPhase::Failed)
    );
}

/// A batch `shop`: member `web` (Deployment web, with a sidecar) and member `data` (PVC
/// uploads, no sidecar), one session, one repository each.
async fn add_batch(h: &Harness) {
    let batch: BackupBatch = yaml(
        r#"
apiVersion: core.stowaway.dev/v1alpha1
kind: BackupBatch
metadata: {name: shop, namespace: demo}
spec:
  backends:
    - {name: local, storageRef: {name: store}, retentionPolicy: {name: keep}}
  targets:
    - {name: web, appRef: {apiGroup: apps, kind: Deployment, name: web}}
    - {name: data, appRef: {kind: PersistentVolumeClaim, name: uploads}}
  sessions:
    - name: nightly
      scheduler: {schedule: "0 1 * * *"}
      targets:
        - name: web
          addon: {name: postgres-addon, tasks: [{name: logical-backup}]}
          repositories: [{name: shop-web, backend: local, directory: /shop/web}]
        - name: data
          addon: {name: pvc-addon, tasks: [{name: logical-backup}]}
          repositories: [{name: shop-data, backend: local, directory: /shop/data}]
"#,
    );
    h.api::<BackupBatch>()
        .create(&Default::default(), &batch)
        .await
        .expect("batch");
    let mut pvc = k8s_openapi::api::core::v1::PersistentVolumeClaim::default();
    pvc.metadata.name = Some("uploads".into());
    h.api::<k8s_openapi::api::core::v1::PersistentVolumeClaim>()
        .create(&Default::default(), &pvc)
        .await
        .expect("pvc");
    let mut pod = Pod::default();
    pod.metadata.name = Some("web-1".into());
    pod.metadata.labels = Some(
        [(
            "stowaway.dev/sidecar-target".to_owned(),
            "deployment.web".to_owned(),
        )]
        .into(),
    );
    pod.status = Some(k8s_openapi::api::core::v1::PodStatus {
        phase: Some("Running".into()),
        ..Default::default()
    });
    h.api::<Pod>()
        .create(&Default::default(), &pod)
        .await
        .expect("pod");
}

async fn reconcile_batch(h: &Harness) -> BackupBatch {
    let api: Api<BackupBatch> = h.api();
    let batch = api.get("shop").await.expect("batch");
    controller::backup_configuration::reconcile_batch(Arc::new(batch), h.ctx.clone())
        .await
        .expect("reconcile batch");
    api.get("shop").await.expect("batch")
}

#[tokio::test]
async fn a_batch_backs_up_its_members_in_one_session_with_the_sidecar_and_a_job() {
    let h = Harness::new().await;
    add_batch(&h).await;

    // Repositories for each member, with that member's target.
    let batch = reconcile_batch(&h).await;
    let status = batch.status.expect("status");
    assert_eq!(
        status.common.phase,
        Some(BackupConfigurationPhase::NotReady)
    );
    let found: Vec<(String, Option<bool>)> = status
        .targets
        .iter()
        .map(|t| (t.reference.name.clone(), t.found))
        .collect();
    assert_eq!(
        found,
        vec![("web".into(), Some(true)), ("uploads".into(), Some(true))]
    );
    let repos: Api<Repository> = h.api();
    for (repo, target) in [("shop-web", "web"), ("shop-data", "uploads")] {
        let r = repos.get(repo).await.expect("repository created");
        assert_eq!(r.spec.app_ref.name, target);
        let patch = serde_json::json!({"status": {"phase": "Ready"}});
        repos
            .patch_status(repo, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .expect("repository status");
    }

    // Ready: the initial run, one BackupSession for the whole batch.
    let batch = reconcile_batch(&h).await;
    assert_eq!(
        batch.status.expect("status").common.phase,
        Some(BackupConfigurationPhase::Ready)
    );
    let sessions: Vec<BackupSession> = h
        .sessions()
        .await
        .into_iter()
        .filter(|s| s.spec.invoker.kind == "BackupBatch")
        .collect();
    assert_eq!(sessions.len(), 1);
    let name = sessions[0].name_any();

    let session = h.reconcile_session(&name).await;
    let status = session.status.expect("status");
    assert_eq!(status.phase, Some(BackupSessionPhase::Running));
    assert_eq!(status.total_snapshots, Some(2));
    for (repo, member) in [("shop-web", "web"), ("shop-data", "data")] {
        let snapshot: Snapshot = h
            .api()
            .get(&format!("{repo}-{name}"))
            .await
            .expect("snapshot per member");
        assert_eq!(
            snapshot
                .labels()
                .get("stowaway.dev/batch-member")
                .map(String::as_str),
            Some(member)
        );
    }
    // The sidecar takes member web; member data gets a Job with its PVC mounted read-only.
    let jobs = h
        .api::<Job>()
        .list(&ListParams::default())
        .await
        .expect("jobs")
        .items;
    let job_names: Vec<String> = jobs.iter().map(ResourceExt::name_any).collect();
    assert_eq!(job_names, vec![format!("backup-{name}-data")]);
    let pod = jobs[0]
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .expect("pod spec");
    let args = pod.containers[0].args.clone().unwrap_or_default();
    assert_eq!(&args[args.len() - 2..], ["--member", "data"]);
    let claim = pod
        .volumes
        .iter()
        .flatten()
        .find_map(|v| v.persistent_volume_claim.as_ref())
        .expect("the PVC volume");
    assert_eq!(
        (claim.claim_name.as_str(), claim.read_only),
        ("uploads", Some(true))
    );

    // One member done is not enough; both done is a success.
    h.finish_snapshot(&format!("shop-web-{name}"), "Succeeded", "1.00 MiB")
        .await;
    let session = h.reconcile_session(&name).await;
    assert_eq!(
        session.status.expect("status").phase,
        Some(BackupSessionPhase::Running)
    );
    h.finish_snapshot(&format!("shop-data-{name}"), "Succeeded", "3.00 MiB")
        .await;
    let session = h.reconcile_session(&name).await;
    let status = session.status.expect("status");
    assert_eq!(status.phase, Some(BackupSessionPhase::Succeeded));
    assert_eq!(status.size.as_deref(), Some("4.00 MiB"));

    // The run restored together: one member restore each, the batch paused meanwhile.
    let restore: RestoreSession = yaml(
        r#"
apiVersion: core.stowaway.dev/v1alpha1
kind: RestoreSession
metadata: {name: back, namespace: demo}
spec:
  dataSource:
    batch: {name: shop}
"#,
    );
    let restores: Api<RestoreSession> = h.api();
    restores
        .create(&Default::default(), &restore)
        .await
        .expect("restore");
    let back = h.reconcile_restore("back").await;
    assert_eq!(
        back.status.as_ref().and_then(|s| s.phase),
        Some(stowaway_api::restore_session::RestorePhase::Running)
    );
    let batch: BackupBatch = h.api().get("shop").await.expect("batch");
    assert_eq!(batch.spec.paused, Some(true));
    for (child, snapshot) in [
        ("back-web", format!("shop-web-{name}")),
        ("back-data", format!("shop-data-{name}")),
    ] {
        let c = restores.get(child).await.expect("member restore");
        assert_eq!(
            c.spec.data_source.snapshot.as_deref(),
            Some(snapshot.as_str())
        );
        let patch = serde_json::json!({"status": {"phase": "Succeeded"}});
        restores
            .patch_status(child, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .expect("member status");
    }
    let back = h.reconcile_restore("back").await;
    assert_eq!(
        back.status.as_ref().and_then(|s| s.phase),
        Some(stowaway_api::restore_session::RestorePhase::Succeeded)
    );
    let batch: BackupBatch = h.api().get("shop").await.expect("batch");
    assert_eq!(batch.spec.paused, Some(false));
}

/// A succeeded backup of `db`, so that a restore has a snapshot to read.
async fn backed_up(h: &Harness) {
    h.reconcile_config().await;
    h.repository_ready().await;
    h.reconcile_config().await;
    let name = h.sessions().await[0].name_any();
    h.reconcile_session(&name).await;
    let patch = serde_json::json!({"status": {
        "phase": "Succeeded",
        "snapshotTime": "2026-01-01T00:00:00Z",
        "components": {"dump": {"phase": "Succeeded"}},
    }});
    h.api::<Snapshot>()
        .patch_status(
            &format!("repo-{name}"),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .expect("snapshot status");
    h.reconcile_session(&name).await;
}

#[tokio::test]
async fn restore_hooks_run_in_a_pod_and_as_a_function_job() {
    let function: stowaway_api::Function = yaml(
        r#"
apiVersion: addons.stowaway.dev/v1alpha1
kind: Function
metadata: {name: reporter}
spec:
  image: registry.example/reporter:${TAG:=2}
  args: ["--session=${SESSION}", "--phase=${PHASE}"]
"#,
    );
    let h = Harness::with_cluster(vec![ClusterObject::of(&function)]).await;
    backed_up(&h).await;
    let (port, seen) = hook_server(200).await;

    // A Pod hook: HTTP to the first Running pod labelled app=pg (its IP is the loopback).
    for (pod_name, ip, phase) in [
        ("pg-0", "127.0.0.1", "Running"),
        ("pg-1", "127.0.0.9", "Running"),
        ("pg-old", "127.0.0.9", "Failed"),
    ] {
        let mut pod = Pod::default();
        pod.metadata.name = Some(pod_name.into());
        pod.metadata.labels = Some([("app".to_owned(), "pg".to_owned())].into());
        pod.status = Some(k8s_openapi::api::core::v1::PodStatus {
            phase: Some(phase.into()),
            pod_ip: Some(ip.into()),
            ..Default::default()
        });
        h.api::<Pod>()
            .create(&Default::default(), &pod)
            .await
            .expect("pod");
    }
    let templates: Api<stowaway_api::HookTemplate> = h.api();
    for template in [
        format!(
            r#"
apiVersion: core.stowaway.dev/v1alpha1
kind: HookTemplate
metadata: {{name: quiesce, namespace: demo}}
spec:
  executor: {{type: Pod, pod: {{selector: app=pg, strategy: ExecuteOnOne}}}}
  action: {{httpGet: {{port: {port}, path: "/quiesce/${{TARGET_NAME}}"}}}}
"#
        ),
        r#"
apiVersion: core.stowaway.dev/v1alpha1
kind: HookTemplate
metadata: {name: report, namespace: demo}
spec:
  executor:
    type: Function
    function:
      name: reporter
      env: [{name: CHANNEL, value: ops}]
"#
        .to_owned(),
    ] {
        let t: stowaway_api::HookTemplate = yaml(&template);
        templates
            .create(&Default::default(), &t)
            .await
            .expect("template");
    }

    let restore: RestoreSession = yaml(
        r#"
apiVersion: core.stowaway.dev/v1alpha1
kind: RestoreSession
metadata: {name: undo, namespace: demo}
spec:
  target: {apiGroup: apps, kind: Deployment, name: web}
  dataSource: {repository: repo, snapshot: latest}
  addon: {name: postgres-addon, tasks: [{name: logical-restore}]}
  hooks:
    preRestore: [{name: quiesce, hookTemplate: {name: quiesce}}]
    postRestore: [{name: report, hookTemplate: {name: report}, executionPolicy: Always}]
"#,
    );
    h.api::<RestoreSession>()
        .create(&Default::default(), &restore)
        .await
        .expect("restore");

    // The pre-restore hook first, before any Job.
    let undo = h.reconcile_restore("undo").await;
    let status = undo.status.expect("status");
    assert_eq!(
        status.hooks.as_ref().map(|h| h.pre_hooks[0].phase.clone()),
        Some(Some("Succeeded".to_owned()))
    );
    assert_eq!(
        seen.lock().expect("log").clone(),
        vec!["GET /quiesce/web HTTP/1.1 | ".to_owned()],
        "one request, to pg-0 only"
    );
    assert!(
        h.api::<Job>()
            .get_opt("restore-undo")
            .await
            .expect("get")
            .is_none()
    );
    h.reconcile_restore("undo").await;
    assert!(
        h.api::<Job>()
            .get_opt("restore-undo")
            .await
            .expect("get")
            .is_some()
    );

    // The executor restores the component: the Function hook's Job runs, then the restore ends.
    let patch = serde_json::json!({"status": {"components": {"dump": {"phase": "Succeeded"}}}});
    h.api::<RestoreSession>()
        .patch_status("undo", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("component status");
    let undo = h.reconcile_restore("undo").await;
    assert_eq!(
        undo.status.as_ref().and_then(|s| s.phase),
        Some(stowaway_api::restore_session::RestorePhase::Running),
        "running while its post-hook runs"
    );
    let job: Job = h
        .api()
        .get("hook-undo-post-report")
        .await
        .expect("hook Job");
    let container = &job
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .expect("pod")
        .containers[0];
    assert_eq!(
        container.image.as_deref(),
        Some("registry.example/reporter:2")
    );
    assert_eq!(
        container.args.clone().unwrap_or_default(),
        vec!["--session=undo".to_owned(), "--phase=Succeeded".to_owned()]
    );
    let env: Vec<(String, Option<String>)> = container
        .env
        .iter()
        .flatten()
        .map(|e| (e.name.clone(), e.value.clone()))
        .collect();
    assert!(
        env.contains(&("CHANNEL".to_owned(), Some("ops".to_owned()))),
        "{env:?}"
    );
    // Still running: nothing changes.
    let undo = h.reconcile_restore("undo").await;
    assert_eq!(
        undo.status.as_ref().and_then(|s| s.phase),
        Some(stowaway_api::restore_session::RestorePhase::Running)
    );
    // The Job completes: the hook succeeded and so did the restore.
    let patch =
        serde_json::json!({"status": {"conditions": [{"type": "Complete", "status": "True"}]}});
    h.api::<Job>()
        .patch_status(
            "hook-undo-post-report",
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .expect("job status");
    // This pass records the hook's outcome; the next one concludes.
    h.reconcile_restore("undo").await;
    let undo = h.reconcile_restore("undo").await;
    let status = undo.status.expect("status");
    assert_eq!(
        status.phase,
        Some(stowaway_api::restore_session::RestorePhase::Succeeded)
    );
    assert_eq!(
        status.hooks.expect("hooks").post_hooks[0].phase.as_deref(),
        Some("Succeeded")
    );
}

#[tokio::test]
async fn a_failing_pre_restore_hook_fails_the_restore_before_any_job() {
    let h = Harness::new().await;
    backed_up(&h).await;
    let (port, _) = hook_server(503).await;
    let template: stowaway_api::HookTemplate = yaml(&format!(
        r#"
apiVersion: core.stowaway.dev/v1alpha1
kind: HookTemplate
metadata: {{name: stop-app, namespace: demo}}
spec:
  executor: {{type: Operator}}
  action: {{httpPost: {{host: 127.0.0.1, port: {port}, path: /stop}}}}
"#
    ));
    h.api::<stowaway_api::HookTemplate>()
        .create(&Default::default(), &template)
        .await
        .expect("template");
    let restore: RestoreSession = yaml(
        r#"
apiVersion: core.stowaway.dev/v1alpha1
kind: RestoreSession
metadata: {name: undo, namespace: demo}
spec:
  target: {apiGroup: apps, kind: Deployment, name: web}
  dataSource: {repository: repo, snapshot: latest}
  hooks:
    preRestore: [{name: stop, hookTemplate: {name: stop-app}}]
"#,
    );
    h.api::<RestoreSession>()
        .create(&Default::default(), &restore)
        .await
        .expect("restore");
    h.reconcile_restore("undo").await;
    let undo = h.reconcile_restore("undo").await;
    let status = undo.status.expect("status");
    assert_eq!(
        status.phase,
        Some(stowaway_api::restore_session::RestorePhase::Failed)
    );
    let incomplete = status
        .conditions
        .iter()
        .find(|c| c.type_ == "RestoreIncomplete")
        .expect("condition");
    assert_eq!(incomplete.reason.as_deref(), Some("PreRestoreHookFailed"));
    assert_eq!(
        status.components["dump"].error.as_deref(),
        Some("pre-restore hook stop failed: nothing was restored")
    );
    assert!(
        h.api::<Job>()
            .get_opt("restore-undo")
            .await
            .expect("get")
            .is_none()
    );
    assert_eq!(h.config().await.spec.paused, Some(false), "backups resumed");
}
