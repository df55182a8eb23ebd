//! The executor end to end: the operator's reconcilers make the objects (BackupStorage on a
//! local directory, Repository, BackupConfiguration with a PVC target, BackupSession, its
//! Snapshot, RestoreSession) in the fake API server of `kube-fake-client`; the executor runs
//! the real volume addon on a real directory tree and a real repository; the operator reads
//! the outcome back.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Secret};
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use stowaway_api::backup_session::BackupSessionPhase;
use stowaway_api::common::RunPhase;
use stowaway_api::restore_session::RestorePhase;
use stowaway_api::{
    BackupBatch, BackupConfiguration, BackupSession, BackupStorage, Repository, RestoreSession,
    Snapshot,
};
use stowaway_executor::{
    ComponentResult, ExecuteError, Settings, SnapshotResult, execute_backup, execute_restore,
};
use stowaway_operator::controller::{self, Context};
use stowaway_operator::job::JobSettings;
use stowaway_storage::Storage;
use stowaway_testkit::{
    fake_cluster, local_storage, make_tree, password_secret, runtime, tree, yaml,
};

const NS: &str = "demo";
const PASSWORD: &str = "correct horse battery staple";

fn pvc(name: &str) -> PersistentVolumeClaim {
    let mut claim = PersistentVolumeClaim::default();
    claim.metadata.name = Some(name.into());
    claim.metadata.namespace = Some(NS.into());
    claim
}

/// A cluster with the objects of one test and the directories behind them.
struct Cluster {
    client: Client,
    ctx: Arc<Context>,
    dir: tempfile::TempDir,
}

impl Cluster {
    async fn new() -> Cluster {
        let dir = tempfile::tempdir().expect("tempdir");
        for sub in ["storage", "pvc", "restored"] {
            std::fs::create_dir(dir.path().join(sub)).expect("mkdir");
        }
        let storage = local_storage(NS, &dir.path().join("storage"));
        let config: BackupConfiguration = yaml(&format!(
            r#"
apiVersion: core.stowaway.dev/v1alpha1
kind: BackupConfiguration
metadata: {{name: data, namespace: {NS}}}
spec:
  target: {{apiGroup: "", kind: PersistentVolumeClaim, name: data}}
  backends:
    - {{name: local, storageRef: {{name: store}}}}
  sessions:
    - name: daily
      scheduler: {{schedule: "0 2 * * *"}}
      addon: {{name: pvc-addon, tasks: [{{name: logical-backup}}]}}
      repositories:
        - {{name: repo, backend: local, directory: {NS}/data, encryptionSecret: {{name: enc}}}}
"#
        ));
        let client = fake_cluster()
            .with_object(storage)
            .with_object(config)
            .with_object(password_secret(NS, "enc", PASSWORD))
            .with_object(pvc("data"))
            .with_object(pvc("data-copy"))
            .build()
            .await
            .expect("fake client");
        let ctx = Arc::new(Context::new(
            client.clone(),
            JobSettings::default(),
            stowaway_testkit::builtin_addons(runtime("executor")),
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

    fn settings(&self, target: &str) -> Settings {
        Settings {
            target_root: self.path(target),
            ..stowaway_testkit::settings(runtime("executor"))
        }
    }

    /// The operator's reconcilers until the initial BackupSession of the configuration
    /// runs: storage Ready, Repository created and initialised, configuration Ready, session
    /// Running with its Snapshot and Job. Returns the session's name.
    async fn running_session(&self) -> String {
        self.reconcile_storage().await;
        self.reconcile_config().await;
        self.reconcile_repository("repo").await;
        self.reconcile_config().await;
        self.start_initial_session("data").await
    }

    async fn reconcile_storage(&self) {
        let storage: BackupStorage = self.api().get("store").await.expect("storage");
        controller::backup_storage::reconcile(Arc::new(storage), self.ctx.clone())
            .await
            .expect("reconcile storage");
    }

    async fn reconcile_repository(&self, name: &str) {
        let repo: Repository = self.api().get(name).await.expect("Repository created");
        controller::repository::reconcile(Arc::new(repo), self.ctx.clone())
            .await
            .expect("reconcile repository");
    }

    /// Reconciles the one BackupSession of `invoker` until it runs; returns its name.
    async fn start_initial_session(&self, invoker: &str) -> String {
        let sessions: Vec<BackupSession> = self
            .api::<BackupSession>()
            .list(&ListParams::default())
            .await
            .expect("sessions")
            .items
            .into_iter()
            .filter(|s| s.spec.invoker.name == invoker)
            .collect();
        assert_eq!(sessions.len(), 1, "the initial backup of {invoker}");
        let name = sessions[0].name_any();
        let session = self.reconcile_session(&name).await;
        assert_eq!(
            session.status.and_then(|s| s.phase),
            Some(BackupSessionPhase::Running)
        );
        name
    }

    async fn reconcile_config(&self) {
        let config: BackupConfiguration = self.api().get("data").await.expect("config");
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

    async fn snapshot(&self, name: &str) -> Snapshot {
        self.api().get(name).await.expect("Snapshot")
    }

    /// The repository behind Repository `repo`, opened directly.
    async fn repository(&self) -> stowaway_repository::Repository {
        let storage = Storage::local(self.path("storage").join(NS).join("data")).expect("storage");
        stowaway_repository::Repository::open(storage, PASSWORD)
            .await
            .expect("open the repository")
    }
}

async fn restore_latest(c: &Cluster, name: &str) {
    let restore: RestoreSession = yaml(&format!(
        r#"
apiVersion: core.stowaway.dev/v1alpha1
kind: RestoreSession
metadata: {{name: {name}, namespace: {NS}}}
spec:
  target: {{apiGroup: "", kind: PersistentVolumeClaim, name: data-copy}}
  dataSource: {{repository: repo, snapshot: latest, encryptionSecret: {{name: enc}}}}
  addon: {{name: pvc-addon, tasks: [{{name: logical-backup-restore}}]}}
"#
    ));
    c.api::<RestoreSession>()
        .create(&Default::default(), &restore)
        .await
        .expect("create restore");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pvc_is_backed_up_recorded_and_restored_byte_for_byte() {
    let c = Cluster::new().await;
    make_tree(&c.path("pvc"));
    let name = c.running_session().await;
    let snapshot_name = format!("repo-{name}");
    let settings = c.settings("pvc");

    // The executor backs up into the repository and records the snapshot.
    let report = execute_backup(&c.client, &settings, NS, &name, None)
        .await
        .expect("execute backup");
    assert!(report.succeeded(), "{report:?}");
    assert_eq!(report.snapshots.len(), 1);
    let SnapshotResult::Succeeded { id, size } = report.snapshots[0].result.clone() else {
        panic!("{report:?}");
    };
    assert_eq!(id.len(), 64);
    assert!(size > 3 << 20, "{size}");

    let object = c.snapshot(&snapshot_name).await;
    assert_eq!(object.spec.snapshot_id.as_deref(), Some(id.as_str()));
    let status = object.status.expect("snapshot status");
    assert_eq!(status.phase, Some(RunPhase::Succeeded));
    assert_eq!(status.integrity, Some(true));
    assert_eq!(status.total_components, Some(1));
    assert_eq!(
        status.size.as_deref(),
        Some(stowaway_api::size::format(size).as_str())
    );
    assert!(status.snapshot_time.is_some());
    let component = &status.components["dump"];
    assert_eq!(component.phase, Some(RunPhase::Succeeded));
    assert_eq!(component.path.as_deref(), Some("repository/v1/daily/dump"));
    assert_eq!(component.driver, Some(stowaway_api::common::Driver::Restic));
    assert_eq!(
        component.kind,
        Some(stowaway_api::snapshot::ComponentKind::Tree)
    );
    assert_eq!(status.hostname.as_deref(), Some("host-0"));
    assert!(
        status.tags.contains(&format!("backup-session={name}")),
        "{:?}",
        status.tags
    );
    assert_eq!(
        status.addon.as_ref().map(|a| a.name.as_str()),
        Some("volume")
    );
    assert!(component.duration.is_some());

    // The repository really holds it, tagged and attributed to the target.
    let repo = c.repository().await;
    let snapshots = repo.snapshots().await.expect("snapshots");
    assert_eq!(snapshots.len(), 1);
    let recorded = &snapshots[0];
    assert_eq!(recorded.id.to_hex(), id);
    assert_eq!(recorded.session.as_deref(), Some(name.as_str()));
    assert_eq!(recorded.hostname, "host-0");
    assert_eq!(recorded.target.kind, "PersistentVolumeClaim");
    assert_eq!(recorded.target.name, "demo/data");
    assert_eq!(recorded.addon.name, "volume");
    assert!(
        recorded.tags.contains(&format!("backup-session={name}")),
        "{:?}",
        recorded.tags
    );
    assert!(
        recorded
            .tags
            .contains(&"invoker=BackupConfiguration/data".to_owned())
    );
    assert_eq!(recorded.components[0].name, "dump");
    assert!(
        repo.locks().await.expect("locks").is_empty(),
        "lock released"
    );

    // Running again changes nothing: the Snapshot has finished.
    let again = execute_backup(&c.client, &settings, NS, &name, None)
        .await
        .expect("again");
    assert_eq!(
        again.snapshots[0].result,
        SnapshotResult::AlreadyFinished {
            phase: RunPhase::Succeeded
        }
    );
    assert_eq!(repo.snapshots().await.expect("snapshots").len(), 1);

    // A run that committed but died before recording it: the next run records the same
    // snapshot instead of backing up again.
    let crashed = serde_json::json!({"spec": {"snapshotID": null}, "status": {"phase": "Running"}});
    let snapshots_api = c.api::<Snapshot>();
    snapshots_api
        .patch(
            &snapshot_name,
            &PatchParams::default(),
            &Patch::Merge(&crashed),
        )
        .await
        .expect("spec");
    snapshots_api
        .patch_status(
            &snapshot_name,
            &PatchParams::default(),
            &Patch::Merge(&crashed),
        )
        .await
        .expect("status");
    assert_eq!(c.snapshot(&snapshot_name).await.spec.snapshot_id, None);
    let recorded_again = execute_backup(&c.client, &settings, NS, &name, None)
        .await
        .expect("after a crash");
    assert_eq!(
        recorded_again.snapshots[0].result,
        SnapshotResult::Succeeded {
            id: id.clone(),
            size
        }
    );
    assert_eq!(repo.snapshots().await.expect("snapshots").len(), 1);
    assert_eq!(
        c.snapshot(&snapshot_name).await.spec.snapshot_id.as_deref(),
        Some(id.as_str())
    );

    // The operator reads the outcome.
    let session = c.reconcile_session(&name).await;
    let session_status = session.status.expect("status");
    assert_eq!(
        session_status.phase,
        Some(BackupSessionPhase::Succeeded),
        "{session_status:?}"
    );
    assert_eq!(session_status.size, status.size);
    let finished = execute_backup(&c.client, &settings, NS, &name, None)
        .await
        .expect("finished session");
    assert!(finished.succeeded());
    assert!(matches!(
        finished.snapshots[0].result,
        SnapshotResult::AlreadyFinished { .. }
    ));

    // Restore into another volume that holds other data.
    let restored = c.path("restored");
    std::fs::write(restored.join("a.txt"), b"stale content").expect("write");
    std::fs::write(restored.join("unrelated.txt"), b"not in the snapshot").expect("write");
    restore_latest(&c, "undo").await;
    let restore = c.reconcile_restore("undo").await;
    let restore_status = restore.status.expect("restore status");
    assert_eq!(restore_status.phase, Some(RestorePhase::Running));
    assert_eq!(
        restore_status.components["dump"].phase,
        Some(RestorePhase::Pending)
    );
    let report = execute_restore(&c.client, &c.settings("restored"), NS, "undo")
        .await
        .expect("execute restore");
    assert!(report.succeeded(), "{report:?}");
    assert_eq!(report.snapshot.as_deref(), Some(snapshot_name.as_str()));
    assert_eq!(report.components["dump"], ComponentResult::Succeeded);

    assert_eq!(
        tree(&c.path("pvc"), &[]),
        tree(&restored, &["unrelated.txt"]),
        "the restored volume holds the backed-up tree byte for byte"
    );
    assert_eq!(
        std::fs::read(restored.join("unrelated.txt")).expect("kept"),
        b"not in the snapshot"
    );
    let leftovers: Vec<String> = std::fs::read_dir(&restored)
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".stowaway"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    assert!(
        repo.locks().await.expect("locks").is_empty(),
        "lock released"
    );

    let restore = c.reconcile_restore("undo").await;
    let restore_status = restore.status.expect("restore status");
    assert_eq!(
        restore_status.phase,
        Some(RestorePhase::Succeeded),
        "{restore_status:?}"
    );
    let dump = &restore_status.components["dump"];
    assert_eq!(dump.phase, Some(RestorePhase::Succeeded));
    assert!(dump.duration.is_some());

    // Running the finished restore again does nothing.
    std::fs::write(restored.join("a.txt"), b"changed after the restore").expect("write");
    let again = execute_restore(&c.client, &c.settings("restored"), NS, "undo")
        .await
        .expect("again");
    assert!(matches!(
        again.components["dump"],
        ComponentResult::AlreadyFinished {
            phase: RestorePhase::Succeeded
        }
    ));
    assert_eq!(
        std::fs::read(restored.join("a.txt")).expect("read"),
        b"changed after the restore"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_encryption_secret_fails_the_snapshot_and_records_nothing() {
    let c = Cluster::new().await;
    make_tree(&c.path("pvc"));
    let name = c.running_session().await;
    c.api::<Secret>()
        .delete("enc", &DeleteParams::default())
        .await
        .expect("delete the Secret");

    let report = execute_backup(&c.client, &c.settings("pvc"), NS, &name, None)
        .await
        .expect("execute backup");
    assert!(!report.succeeded());
    let SnapshotResult::Failed { error } = &report.snapshots[0].result else {
        panic!("{report:?}");
    };
    assert_eq!(
        error,
        "Repository demo/repo: Secret demo/enc (repository password) not found"
    );
    let status = c
        .snapshot(&format!("repo-{name}"))
        .await
        .status
        .expect("status");
    assert_eq!(status.phase, Some(RunPhase::Failed));
    assert_eq!(status.components["dump"].error.as_ref(), Some(error));
    let condition = &status.conditions[0];
    assert_eq!(condition.type_, "BackupIncomplete");
    assert_eq!(condition.reason.as_deref(), Some("RepositoryNotAccessible"));
    assert!(
        c.repository()
            .await
            .snapshots()
            .await
            .expect("snapshots")
            .is_empty(),
        "no snapshot in the repository"
    );

    let session = c.reconcile_session(&name).await;
    let session_status = session.status.expect("status");
    assert_eq!(session_status.phase, Some(BackupSessionPhase::Failed));
    // A failed Snapshot is not redone.
    let again = execute_backup(&c.client, &c.settings("pvc"), NS, &name, None)
        .await
        .expect("again");
    assert!(again.succeeded());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_fails_the_snapshot_naming_the_secret() {
    let c = Cluster::new().await;
    make_tree(&c.path("pvc"));
    let name = c.running_session().await;
    let patch =
        serde_json::json!({"data": {"RESTIC_PASSWORD": ByteString(b"not the password".to_vec())}});
    c.api::<Secret>()
        .patch("enc", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("change the password");

    let report = execute_backup(&c.client, &c.settings("pvc"), NS, &name, None)
        .await
        .expect("execute backup");
    let SnapshotResult::Failed { error } = &report.snapshots[0].result else {
        panic!("{report:?}");
    };
    assert!(
        error.starts_with(
            "Repository demo/repo: the password in Secret demo/enc opens no key of the repository at"
        ),
        "{error}"
    );
    let status = c
        .snapshot(&format!("repo-{name}"))
        .await
        .status
        .expect("status");
    assert_eq!(status.phase, Some(RunPhase::Failed));
    assert!(
        c.repository()
            .await
            .snapshots()
            .await
            .expect("snapshots")
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unmounted_target_fails_and_a_pending_session_is_refused() {
    let c = Cluster::new().await;
    let name = c.running_session().await;
    let report = execute_backup(&c.client, &c.settings("not-mounted"), NS, &name, None)
        .await
        .expect("execute backup");
    let SnapshotResult::Failed { error } = &report.snapshots[0].result else {
        panic!("{report:?}");
    };
    assert!(
        error.starts_with("the target's volume is not mounted at"),
        "{error}"
    );
    assert_eq!(
        c.snapshot(&format!("repo-{name}"))
            .await
            .status
            .and_then(|s| s.conditions.first().and_then(|c| c.reason.clone()))
            .as_deref(),
        Some("TargetNotAccessible")
    );

    // A restore the operator has not started is not run.
    restore_latest(&c, "early").await;
    let err = execute_restore(&c.client, &c.settings("restored"), NS, "early")
        .await
        .expect_err("not started");
    assert!(matches!(err, ExecuteError::Session { .. }), "{err}");
    assert!(err.to_string().contains("has not started it yet"), "{err}");
    let err = execute_backup(&c.client, &c.settings("pvc"), NS, "no-such-session", None)
        .await
        .expect_err("missing");
    assert_eq!(
        err.to_string(),
        "BackupSession demo/no-such-session not found"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_member_is_backed_up_by_its_own_run() {
    let c = Cluster::new().await;
    make_tree(&c.path("pvc"));
    let batch: BackupBatch = yaml(&format!(
        r#"
apiVersion: core.stowaway.dev/v1alpha1
kind: BackupBatch
metadata: {{name: shop, namespace: {NS}}}
spec:
  backends:
    - {{name: local, storageRef: {{name: store}}}}
  targets:
    - {{name: files, appRef: {{kind: PersistentVolumeClaim, name: data}}}}
  sessions:
    - name: nightly
      scheduler: {{schedule: "0 1 * * *"}}
      targets:
        - name: files
          addon: {{name: pvc-addon, tasks: [{{name: logical-backup}}]}}
          repositories:
            - {{name: shop-files, backend: local, directory: {NS}/shop, encryptionSecret: {{name: enc}}}}
"#
    ));
    c.api::<BackupBatch>()
        .create(&Default::default(), &batch)
        .await
        .expect("batch");
    c.reconcile_storage().await;
    let reconcile_batch = || async {
        let batch: BackupBatch = c.api().get("shop").await.expect("batch");
        controller::backup_configuration::reconcile_batch(Arc::new(batch), c.ctx.clone())
            .await
            .expect("reconcile batch");
    };
    reconcile_batch().await;
    c.reconcile_repository("shop-files").await;
    reconcile_batch().await;
    let name = c.start_initial_session("shop").await;
    let settings = c.settings("pvc");

    let err = execute_backup(&c.client, &settings, NS, &name, None)
        .await
        .expect_err("no member");
    assert!(
        err.to_string()
            .ends_with("the sessions of BackupBatch shop are executed per member: name the member"),
        "{err}"
    );
    let err = execute_backup(&c.client, &settings, NS, &name, Some("web"))
        .await
        .expect_err("unknown member");
    assert!(
        err.to_string()
            .contains("BackupBatch shop has no member \"web\" in session \"nightly\""),
        "{err}"
    );

    let report = execute_backup(&c.client, &settings, NS, &name, Some("files"))
        .await
        .expect("member backup");
    assert!(report.succeeded(), "{report:?}");
    assert_eq!(report.snapshots.len(), 1);
    assert_eq!(report.snapshots[0].repository, "shop-files");
    let storage = Storage::local(c.path("storage").join(NS).join("shop")).expect("storage");
    let repo = stowaway_repository::Repository::open(storage, PASSWORD)
        .await
        .expect("open");
    let snapshots = repo.snapshots().await.expect("snapshots");
    assert_eq!(snapshots.len(), 1);
    assert!(
        snapshots[0].tags.contains(&"member=files".to_owned()),
        "{:?}",
        snapshots[0].tags
    );
    assert!(
        snapshots[0]
            .tags
            .contains(&"invoker=BackupBatch/shop".to_owned())
    );
    let session = c.reconcile_session(&name).await;
    assert_eq!(
        session.status.and_then(|s| s.phase),
        Some(BackupSessionPhase::Succeeded)
    );
}

/// `client` with `GET /api/v1/namespaces/NAME` answered by `answer` (status, body), which the
/// fake API server cannot route; every other request passes on.
fn with_namespace_reads(client: Client, answer: (u16, serde_json::Value)) -> Client {
    let service = tower::service_fn(move |request: http::Request<kube::client::Body>| {
        let inner = client.clone();
        let (code, body) = answer.clone();
        async move {
            let path = request.uri().path().to_owned();
            if let Some(name) = path.strip_prefix("/api/v1/namespaces/")
                && !name.contains('/')
            {
                let response = http::Response::builder()
                    .status(code)
                    .header("content-type", "application/json")
                    .body(kube::client::Body::from(
                        serde_json::to_vec(&body).expect("json"),
                    ))
                    .expect("response");
                return Ok::<_, kube::Error>(response);
            }
            inner.send(request).await
        }
    });
    Client::new(service, "default")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_selector_usage_policy_is_trusted_to_the_repository_when_namespaces_are_forbidden() {
    let mut c = Cluster::new().await;
    make_tree(&c.path("pvc"));
    let policy = serde_json::json!({"spec": {"usagePolicy": {"allowedNamespaces": {
        "from": "Selector", "selector": {"matchLabels": {"team": "a"}},
    }}}});
    c.api::<BackupStorage>()
        .patch("store", &PatchParams::default(), &Patch::Merge(&policy))
        .await
        .expect("usage policy");
    // The operator reads the namespace's labels; the executor may not.
    let namespace = serde_json::json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": NS, "labels": {"team": "a"}},
    });
    let operator_client = with_namespace_reads(c.client.clone(), (200, namespace));
    let forbidden = serde_json::json!({
        "kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Forbidden",
        "code": 403, "message": "namespaces is forbidden",
    });
    let executor_client = with_namespace_reads(c.client.clone(), (403, forbidden));
    c.ctx = Arc::new(Context::new(
        operator_client,
        JobSettings::default(),
        stowaway_testkit::builtin_addons(runtime("executor")),
    ));
    let name = c.running_session().await;

    // The Repository is Ready: the operator found the namespace allowed.
    let report = execute_backup(&executor_client, &c.settings("pvc"), NS, &name, None)
        .await
        .expect("execute backup");
    assert!(report.succeeded(), "{report:?}");

    // A Repository that is not Ready is not trusted.
    let not_ready = serde_json::json!({"status": {"phase": "NotReady"}});
    c.api::<Repository>()
        .patch_status("repo", &PatchParams::default(), &Patch::Merge(&not_ready))
        .await
        .expect("repository status");
    let err = stowaway_executor::repository::open(&executor_client, NS, "repo", None)
        .await
        .err()
        .expect("not trusted");
    assert_eq!(
        err.to_string(),
        "Repository demo/repo: spec.storageRef: namespace demo may not use BackupStorage \
         demo/store: check its spec.usagePolicy"
    );
}

/// A Deployment `web` with two claims (`data`, `logs`), one pod carrying its sidecar, and a
/// BackupConfiguration `web` of it in sidecar mode writing to Repository `web-repo`.
async fn add_workload(c: &Cluster) {
    let deployment: k8s_openapi::api::apps::v1::Deployment = yaml(&format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: {NS}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers:
        - name: app
          image: registry.example/web
          volumeMounts: [{{name: data, mountPath: /data}}, {{name: logs, mountPath: /logs}}]
      volumes:
        - {{name: data, persistentVolumeClaim: {{claimName: web-data}}}}
        - {{name: logs, persistentVolumeClaim: {{claimName: web-logs}}}}
"#
    ));
    c.api::<k8s_openapi::api::apps::v1::Deployment>()
        .create(&Default::default(), &deployment)
        .await
        .expect("deployment");
    let pod: k8s_openapi::api::core::v1::Pod = yaml(&format!(
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: web-0
  namespace: {NS}
  labels: {{app: web, stowaway.dev/sidecar-target: deployment.web}}
spec: {{containers: [{{name: app, image: registry.example/web}}]}}
status: {{phase: Running}}
"#
    ));
    c.api::<k8s_openapi::api::core::v1::Pod>()
        .create(&Default::default(), &pod)
        .await
        .expect("pod");
    let config: BackupConfiguration = yaml(&format!(
        r#"
apiVersion: core.stowaway.dev/v1alpha1
kind: BackupConfiguration
metadata: {{name: web, namespace: {NS}, annotations: {{stowaway.dev/inject: "true"}}}}
spec:
  target: {{apiGroup: apps, kind: Deployment, name: web}}
  backends:
    - {{name: local, storageRef: {{name: store}}}}
  sessions:
    - name: daily
      scheduler: {{schedule: "0 3 * * *"}}
      addon: {{name: workload-addon, tasks: [{{name: logical-backup}}]}}
      repositories:
        - {{name: web-repo, backend: local, directory: {NS}/web, encryptionSecret: {{name: enc}}}}
"#
    ));
    c.api::<BackupConfiguration>()
        .create(&Default::default(), &config)
        .await
        .expect("configuration");
}

impl Cluster {
    async fn reconcile_named_config(&self, name: &str) {
        let config: BackupConfiguration = self.api().get(name).await.expect("config");
        controller::backup_configuration::reconcile(Arc::new(config), self.ctx.clone())
            .await
            .expect("reconcile configuration");
    }

    fn workload_settings(&self, volumes: &str) -> Settings {
        Settings {
            volumes_dir: self.path(volumes),
            ..self.settings("not-used")
        }
    }

    async fn replicas(&self) -> Option<i32> {
        self.api::<k8s_openapi::api::apps::v1::Deployment>()
            .get("web")
            .await
            .expect("deployment")
            .spec
            .and_then(|s| s.replicas)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_is_backed_up_from_its_volumes_and_restored_into_fresh_ones() {
    let c = Cluster::new().await;
    add_workload(&c).await;
    // The sidecar's view: one directory per volume of the pod.
    let volumes = c.path("volumes");
    make_tree(&volumes.join("data"));
    std::fs::create_dir_all(volumes.join("logs/2026")).expect("mkdir");
    std::fs::write(volumes.join("logs/2026/app.log"), b"started\nstopped\n").expect("log");
    c.reconcile_storage().await;
    c.reconcile_named_config("web").await;
    c.reconcile_repository("web-repo").await;
    c.reconcile_named_config("web").await;
    let name = c.start_initial_session("web").await;
    let settings = c.workload_settings("volumes");

    // Backup, as the sidecar runs it: one component per volume.
    let report = execute_backup(&c.client, &settings, NS, &name, None)
        .await
        .expect("execute backup");
    assert!(report.succeeded(), "{report:?}");
    let snapshot_name = format!("web-repo-{name}");
    let status = c.snapshot(&snapshot_name).await.status.expect("status");
    assert_eq!(status.phase, Some(RunPhase::Succeeded));
    assert_eq!(
        status.components.keys().collect::<Vec<_>>(),
        vec!["data", "logs"]
    );
    assert_eq!(status.hostname.as_deref(), Some("host-0"));
    let storage = Storage::local(c.path("storage").join(NS).join("web")).expect("storage");
    let repo = stowaway_repository::Repository::open(storage, PASSWORD)
        .await
        .expect("open");
    let snapshots = repo.snapshots().await.expect("snapshots");
    assert_eq!(snapshots.len(), 1);
    assert_eq!(snapshots[0].target.kind, "Deployment");
    assert_eq!(snapshots[0].target.name, "demo/web");
    assert_eq!(snapshots[0].hostname, "host-0");
    let session = c.reconcile_session(&name).await;
    assert_eq!(
        session.status.and_then(|s| s.phase),
        Some(BackupSessionPhase::Succeeded)
    );

    // An on-demand backup naming a volume the pod does not have fails, listing them.
    let mut ondemand: BackupSession = c.api().get(&name).await.expect("session");
    ondemand.metadata = kube::api::ObjectMeta {
        name: Some("web-daily-ondemand".into()),
        namespace: Some(NS.into()),
        labels: ondemand.metadata.labels.clone(),
        annotations: Some(BTreeMap::from([(
            stowaway_executor::target::COMPONENTS_ANNOTATION.to_owned(),
            "data,cache".to_owned(),
        )])),
        ..Default::default()
    };
    ondemand.status = None;
    c.api::<BackupSession>()
        .create(&Default::default(), &ondemand)
        .await
        .expect("on-demand session");
    let running = c.reconcile_session("web-daily-ondemand").await;
    assert_eq!(
        running.status.and_then(|s| s.phase),
        Some(BackupSessionPhase::Running)
    );
    let report = execute_backup(&c.client, &settings, NS, "web-daily-ondemand", None)
        .await
        .expect("execute");
    let SnapshotResult::Failed { error } = &report.snapshots[0].result else {
        panic!("{report:?}");
    };
    assert_eq!(
        error,
        "target Deployment web: no volume cache (the workload's volumes: data, logs)"
    );
    assert_eq!(repo.snapshots().await.expect("snapshots").len(), 1);
    c.reconcile_session("web-daily-ondemand").await;

    // Restore: the operator scales the Deployment down, waits for its pod, then the Job
    // runs with the claims mounted writable; here the executor writes into fresh volumes.
    let restore: RestoreSession = yaml(&format!(
        r#"
apiVersion: core.stowaway.dev/v1alpha1
kind: RestoreSession
metadata: {{name: undo, namespace: {NS}}}
spec:
  target: {{apiGroup: apps, kind: Deployment, name: web}}
  dataSource: {{repository: web-repo, snapshot: {snapshot_name}, encryptionSecret: {{name: enc}}}}
  addon: {{name: workload-addon, tasks: [{{name: logical-backup-restore}}]}}
"#
    ));
    c.api::<RestoreSession>()
        .create(&Default::default(), &restore)
        .await
        .expect("restore");
    let running = c.reconcile_restore("undo").await;
    assert_eq!(
        running.status.and_then(|s| s.phase),
        Some(RestorePhase::Running)
    );
    assert_eq!(c.replicas().await, Some(0), "scaled down");
    c.reconcile_restore("undo").await;
    assert!(
        c.api::<k8s_openapi::api::batch::v1::Job>()
            .get_opt("restore-undo")
            .await
            .expect("job")
            .is_none(),
        "no Job while the pod runs"
    );
    c.api::<k8s_openapi::api::core::v1::Pod>()
        .delete("web-0", &DeleteParams::default())
        .await
        .expect("the pod ends");
    c.reconcile_restore("undo").await;
    assert!(
        c.api::<k8s_openapi::api::batch::v1::Job>()
            .get_opt("restore-undo")
            .await
            .expect("job")
            .is_some(),
        "the restore Job"
    );

    let fresh = c.path("fresh");
    for volume in ["data", "logs"] {
        std::fs::create_dir_all(fresh.join(volume)).expect("mkdir");
    }
    std::fs::write(fresh.join("data/a.txt"), b"stale").expect("stale");
    let report = execute_restore(&c.client, &c.workload_settings("fresh"), NS, "undo")
        .await
        .expect("execute restore");
    assert!(report.succeeded(), "{report:?}");
    assert_eq!(report.components["data"], ComponentResult::Succeeded);
    assert_eq!(report.components["logs"], ComponentResult::Succeeded);
    assert_eq!(
        tree(&volumes, &[]),
        tree(&fresh, &[]),
        "every volume restored byte for byte"
    );
    // The executor exits; the Job completes.
    let complete = serde_json::json!({"status": {"conditions": [
        {"type": "Complete", "status": "True"},
    ]}});
    c.api::<k8s_openapi::api::batch::v1::Job>()
        .patch_status(
            "restore-undo",
            &PatchParams::default(),
            &Patch::Merge(&complete),
        )
        .await
        .expect("job status");
    let done = c.reconcile_restore("undo").await;
    assert_eq!(
        done.status.and_then(|s| s.phase),
        Some(RestorePhase::Succeeded)
    );
    assert_eq!(c.replicas().await, Some(1), "scaled back");

    // A restore whose volume is not mounted fails naming the mounted ones, and writes
    // nothing.
    let partial: RestoreSession = yaml(&format!(
        r#"
apiVersion: core.stowaway.dev/v1alpha1
kind: RestoreSession
metadata: {{name: partial, namespace: {NS}, annotations: {{stowaway.dev/restore-mode: InPlace}}}}
spec:
  target: {{apiGroup: apps, kind: Deployment, name: web}}
  dataSource: {{repository: web-repo, snapshot: {snapshot_name}, encryptionSecret: {{name: enc}}}}
  addon: {{name: workload-addon, tasks: [{{name: logical-backup-restore}}]}}
"#
    ));
    c.api::<RestoreSession>()
        .create(&Default::default(), &partial)
        .await
        .expect("restore");
    let running = c.reconcile_restore("partial").await;
    assert_eq!(
        running.status.and_then(|s| s.phase),
        Some(RestorePhase::Running)
    );
    let only_data = c.path("only-data");
    std::fs::create_dir_all(only_data.join("data")).expect("mkdir");
    let report = execute_restore(&c.client, &c.workload_settings("only-data"), NS, "partial")
        .await
        .expect("execute restore");
    let ComponentResult::Failed { error } = &report.components["logs"] else {
        panic!("{report:?}");
    };
    assert_eq!(
        error,
        "target Deployment web: no volume logs (the workload's volumes: data)"
    );
    assert_eq!(
        std::fs::read_dir(only_data.join("data"))
            .expect("list")
            .count(),
        0,
        "nothing written"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_repository_check_reports_integrity_and_names_the_damaged_snapshots() {
    let c = Cluster::new().await;
    make_tree(&c.path("pvc"));
    let name = c.running_session().await;
    let report = execute_backup(&c.client, &c.settings("pvc"), NS, &name, None)
        .await
        .expect("execute backup");
    assert!(report.succeeded(), "{report:?}");
    let snapshot_name = format!("repo-{name}");

    // The next refresh of the Repository checks it: sound.
    c.reconcile_repository("repo").await;
    let repo: Repository = c.api().get("repo").await.expect("repository");
    let status = repo.status.expect("status");
    assert_eq!(status.integrity, Some(true));
    let condition = status
        .conditions
        .iter()
        .find(|c| c.type_ == "IntegrityVerified")
        .expect("condition");
    assert_eq!(
        condition.message.as_deref(),
        Some("1 snapshot(s) checked: indexes, packs and trees are sound")
    );
    assert_eq!(
        c.snapshot(&snapshot_name)
            .await
            .status
            .expect("s")
            .integrity,
        Some(true)
    );

    // Not due again yet: a refresh does not check (the condition's time stays).
    let checked_at = condition.last_transition_time.clone();
    c.reconcile_repository("repo").await;
    let repo: Repository = c.api().get("repo").await.expect("repository");
    let again = repo.status.expect("status");
    let same = again
        .conditions
        .iter()
        .find(|c| c.type_ == "IntegrityVerified");
    assert_eq!(
        same.and_then(|c| c.last_transition_time.clone()),
        checked_at
    );

    // A pack disappears from the storage; with a 1s interval the next refresh checks again.
    let data = c.path("storage").join(NS).join("data").join("data");
    let mut packs = Vec::new();
    for dir in std::fs::read_dir(&data).expect("data dir") {
        for file in std::fs::read_dir(dir.expect("entry").path()).expect("pack dir") {
            packs.push(file.expect("pack").path());
        }
    }
    packs.sort_by_key(|p| std::cmp::Reverse(std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)));
    std::fs::remove_file(&packs[0]).expect("remove the largest pack");
    let patch = serde_json::json!({"metadata": {"annotations": {
        "stowaway.dev/integrity-check-interval": "1s"}}});
    c.api::<Repository>()
        .patch("repo", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("annotate");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    c.reconcile_repository("repo").await;
    let repo: Repository = c.api().get("repo").await.expect("repository");
    let status = repo.status.expect("status");
    assert_eq!(status.integrity, Some(false));
    let condition = status
        .conditions
        .iter()
        .find(|c| c.type_ == "IntegrityVerified")
        .expect("condition");
    assert_eq!(condition.reason.as_deref(), Some("IntegrityCheckFailed"));
    let message = condition.message.as_deref().unwrap_or_default();
    assert!(
        message.contains("1 snapshot(s) damaged; first: "),
        "{message}"
    );
    let object = c.snapshot(&snapshot_name).await.status.expect("status");
    assert_eq!(object.integrity, Some(false));
    assert_eq!(object.components["dump"].integrity, Some(false));
    let events = Api::<Event>::namespaced(c.client.clone(), NS)
        .list(&ListParams::default())
        .await
        .expect("events");
    assert!(
        events.items.iter().any(|e| {
            e.reason.as_deref() == Some("IntegrityCheckFailed")
                && e.note
                    .as_deref()
                    .is_some_and(|n| n.contains(&format!("damaged Snapshots: {snapshot_name}")))
        }),
        "{:?}",
        events.items.iter().map(|e| &e.note).collect::<Vec<_>>()
    );
}
