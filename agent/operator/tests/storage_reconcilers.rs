//! The BackupStorage and Repository reconcilers end to end: a fake API server
//! (`kube-fake-client`) and a real local storage in a temporary directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use kube::runtime::controller::Action;
use kube_fake_client::ClientBuilder;
use stowaway_api::backup_storage::{Backend, BackupStorageSpec, LocalSpec, Provider, S3Spec};
use stowaway_api::common::{
    AllowedNamespaces, ConditionStatus, DeletionPolicy, FromNamespaces, ObjectReference,
    ReadinessPhase, TypedObjectReference, UsagePolicy,
};
use stowaway_api::repository::RepositorySpec;
use stowaway_api::snapshot::SnapshotSpec;
use stowaway_api::{BackupStorage, Repository, Snapshot};
use stowaway_operator::controller::{self, Context};
use stowaway_operator::job::JobSettings;
use stowaway_operator::{backup_storage, names, repository, storage_access};
use stowaway_repository::{InitOptions, Repository as Repo, SnapshotMeta};
use stowaway_storage::Storage;

const STORAGE_NS: &str = "stash";
const APP_NS: &str = "apps";
const PASSWORD: &str = "correct horse battery staple";

fn now() -> jiff::Timestamp {
    "2026-03-01T12:00:00Z".parse().expect("time")
}

fn meta(namespace: &str, name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: Some(namespace.into()),
        ..ObjectMeta::default()
    }
}

/// Carries the operator's finalizer and is being deleted.
fn deleting(mut meta: ObjectMeta) -> ObjectMeta {
    meta.finalizers = Some(vec![names::FINALIZER.to_owned()]);
    meta.deletion_timestamp = Some(Time(now()));
    meta
}

fn local_storage(root: &Path, policy: DeletionPolicy) -> BackupStorage {
    BackupStorage {
        metadata: meta(STORAGE_NS, "store"),
        spec: BackupStorageSpec {
            storage: Backend {
                provider: Provider::Local,
                local: Some(LocalSpec {
                    mount_path: root.display().to_string(),
                    sub_path: Some("cluster".into()),
                    ..LocalSpec::default()
                }),
                ..Backend::default()
            },
            usage_policy: Some(UsagePolicy {
                allowed_namespaces: AllowedNamespaces {
                    from: FromNamespaces::All,
                    selector: None,
                },
            }),
            deletion_policy: policy,
            ..BackupStorageSpec::default()
        },
        status: None,
    }
}

fn repository(name: &str, policy: DeletionPolicy) -> Repository {
    Repository {
        metadata: meta(APP_NS, name),
        spec: RepositorySpec {
            app_ref: TypedObjectReference {
                api_group: Some("apps".into()),
                kind: "Deployment".into(),
                namespace: Some(APP_NS.into()),
                name: "web".into(),
            },
            storage_ref: ObjectReference {
                namespace: Some(STORAGE_NS.into()),
                name: "store".into(),
            },
            path: format!("{APP_NS}/{name}"),
            deletion_policy: policy,
            encryption_secret: Some(ObjectReference {
                namespace: None,
                name: "enc".into(),
            }),
            paused: None,
        },
        status: None,
    }
}

fn secret(namespace: &str, name: &str, pairs: &[(&str, &str)]) -> Secret {
    Secret {
        metadata: meta(namespace, name),
        data: Some(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), ByteString(v.as_bytes().to_vec())))
                .collect::<BTreeMap<_, _>>(),
        ),
        ..Secret::default()
    }
}

fn snapshot_object(name: &str, repository: &str) -> Snapshot {
    Snapshot {
        metadata: meta(APP_NS, name),
        spec: SnapshotSpec {
            repository: repository.into(),
            session: Some("daily".into()),
            ..SnapshotSpec::default()
        },
        status: None,
    }
}

/// The objects of one test, loaded into a fresh fake API server.
#[derive(Default)]
struct Cluster {
    storages: Vec<BackupStorage>,
    repositories: Vec<Repository>,
    snapshots: Vec<Snapshot>,
    secrets: Vec<Secret>,
    configs: Vec<stowaway_api::BackupConfiguration>,
    sessions: Vec<stowaway_api::BackupSession>,
    policies: Vec<stowaway_api::RetentionPolicy>,
}

impl Cluster {
    async fn start(self) -> Arc<Context> {
        let mut builder = ClientBuilder::new()
            .with_resource::<BackupStorage>()
            .with_status_subresource::<BackupStorage>()
            .with_resource::<Repository>()
            .with_status_subresource::<Repository>()
            .with_resource::<Snapshot>()
            .with_status_subresource::<Snapshot>()
            .with_resource::<Event>()
            .with_resource::<stowaway_api::BackupConfiguration>()
            .with_status_subresource::<stowaway_api::BackupConfiguration>()
            .with_resource::<stowaway_api::BackupSession>()
            .with_status_subresource::<stowaway_api::BackupSession>()
            .with_resource::<stowaway_api::RetentionPolicy>();
        for o in self.storages {
            builder = builder.with_object(o);
        }
        for o in self.repositories {
            builder = builder.with_object(o);
        }
        for o in self.snapshots {
            builder = builder.with_object(o);
        }
        for o in self.secrets {
            builder = builder.with_object(o);
        }
        for o in self.configs {
            builder = builder.with_object(o);
        }
        for o in self.sessions {
            builder = builder.with_object(o);
        }
        for o in self.policies {
            builder = builder.with_object(o);
        }
        let client = builder.build().await.expect("fake client");
        Arc::new(Context::new(client, JobSettings::default(), vec![]).with_clock(Arc::new(now)))
    }
}

fn storages(ctx: &Context) -> Api<BackupStorage> {
    Api::namespaced(ctx.client.clone(), STORAGE_NS)
}

fn repositories(ctx: &Context) -> Api<Repository> {
    Api::namespaced(ctx.client.clone(), APP_NS)
}

async fn reconcile_storage(ctx: &Arc<Context>, name: &str) -> Action {
    let object = storages(ctx).get(name).await.expect("get storage");
    controller::backup_storage::reconcile(Arc::new(object), ctx.clone())
        .await
        .expect("reconcile storage")
}

async fn reconcile_repository(ctx: &Arc<Context>, name: &str) -> Action {
    let object = repositories(ctx).get(name).await.expect("get repository");
    controller::repository::reconcile(Arc::new(object), ctx.clone())
        .await
        .expect("reconcile repository")
}

async fn event_reasons(ctx: &Context, namespace: &str) -> Vec<String> {
    let events: Api<Event> = Api::namespaced(ctx.client.clone(), namespace);
    let mut reasons: Vec<String> = events
        .list(&ListParams::default())
        .await
        .expect("events")
        .items
        .into_iter()
        .filter_map(|e| e.reason)
        .collect();
    reasons.sort();
    reasons
}

/// Every file under `dir`, relative, sorted.
fn files(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(root, &path, out);
            } else if let Ok(rel) = path.strip_prefix(root) {
                out.push(rel.display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

fn repo_dir(root: &Path, name: &str) -> PathBuf {
    root.join("cluster").join(APP_NS).join(name)
}

/// Adds one snapshot to the repository at `dir` with the real repository API.
async fn write_snapshot(dir: &Path, content: &'static [u8]) {
    let storage = Storage::local(dir).expect("storage");
    let repo = Repo::open(storage, PASSWORD).await.expect("open");
    repo.load_index().await.expect("index");
    let backup = repo.start_backup(None).expect("start backup");
    let (backup, record) = tokio::task::spawn_blocking(move || {
        let mut stream = backup.stream("dump.sql", "application/sql")?;
        stream.write(content)?;
        let record = stream.finish(Vec::new())?;
        Ok::<_, stowaway_repository::Error>((backup, record))
    })
    .await
    .expect("join")
    .expect("backup");
    backup
        .commit(SnapshotMeta::default(), vec![record])
        .await
        .expect("commit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_and_repository_become_ready_on_real_local_storage() {
    let root = tempfile::tempdir().expect("tempdir");
    let ctx = Cluster {
        storages: vec![local_storage(root.path(), DeletionPolicy::Delete)],
        repositories: vec![repository("repo", DeletionPolicy::Delete)],
        secrets: vec![secret(APP_NS, "enc", &[("RESTIC_PASSWORD", PASSWORD)])],
        ..Cluster::default()
    }
    .start()
    .await;

    // The storage: initialised, Ready, finalizer added, marker on disk.
    let action = reconcile_storage(&ctx, "store").await;
    assert_eq!(action, Action::requeue(backup_storage::REFRESH));
    let store = storages(&ctx).get("store").await.expect("get");
    let status = store.status.clone().expect("status");
    assert_eq!(status.phase, Some(ReadinessPhase::Ready), "{status:?}");
    let init = status
        .conditions
        .iter()
        .find(|c| c.type_ == backup_storage::BACKEND_INITIALIZED)
        .expect("BackendInitialized");
    assert_eq!(init.status, ConditionStatus::True);
    assert_eq!(
        init.reason.as_deref(),
        Some(backup_storage::INITIALIZATION_SUCCEEDED)
    );
    assert!(
        !status
            .conditions
            .iter()
            .any(|c| c.type_ == backup_storage::BACKEND_SECRET_FOUND),
        "a local storage needs no Secret"
    );
    assert_eq!(store.finalizers(), [names::FINALIZER]);
    let marker = std::fs::read_to_string(root.path().join("cluster").join(storage_access::MARKER))
        .expect("marker on disk");
    assert!(marker.contains("\"BackupStorage\""), "{marker}");

    // The repository: created, Ready, finalizer added, a real Stowaway repository on disk.
    let action = reconcile_repository(&ctx, "repo").await;
    assert_eq!(action, Action::requeue(repository::REFRESH));
    let repo = repositories(&ctx).get("repo").await.expect("get");
    let status = repo.status.clone().expect("status");
    assert_eq!(status.phase, Some(ReadinessPhase::Ready), "{status:?}");
    assert_eq!(status.snapshot_count, Some(0));
    assert!(status.size.is_some());
    assert_eq!(status.last_backup_time, None);
    assert!(status.recent_snapshots.is_empty());
    assert_eq!(status.integrity, None);
    assert_eq!(repo.finalizers(), [names::FINALIZER]);
    let dir = repo_dir(root.path(), "repo");
    let opened = Repo::open(Storage::local(&dir).expect("storage"), PASSWORD)
        .await
        .expect("a real repository, opened with the Secret's password");
    assert!(opened.snapshots().await.expect("snapshots").is_empty());

    // A backup lands in the repository; the next reconcile shows it.
    write_snapshot(&dir, b"SELECT 1;").await;
    reconcile_repository(&ctx, "repo").await;
    let status = repositories(&ctx)
        .get("repo")
        .await
        .expect("get")
        .status
        .expect("status");
    assert_eq!(status.snapshot_count, Some(1));
    assert!(status.last_backup_time.is_some());
    assert_eq!(status.recent_snapshots.len(), 1);
    let recent = &status.recent_snapshots[0];
    assert_eq!(recent.size.as_deref(), Some("9 B"));
    let on_disk: u64 = files(&dir)
        .iter()
        .map(|f| std::fs::metadata(dir.join(f)).expect("meta").len())
        .sum();
    assert_eq!(
        status.size,
        Some(stowaway_api::size::format(on_disk)),
        "size is what the repository occupies"
    );

    // The storage lists the repository and its size.
    reconcile_storage(&ctx, "store").await;
    let status = storages(&ctx)
        .get("store")
        .await
        .expect("get")
        .status
        .expect("status");
    assert_eq!(status.repositories.len(), 1);
    let info = &status.repositories[0];
    assert_eq!(info.name, "repo");
    assert_eq!(info.namespace.as_deref(), Some(APP_NS));
    assert_eq!(info.path.as_deref(), Some("apps/repo"));
    assert!(info.size.is_some());
    assert_eq!(status.total_size, info.size);

    // Reconciling again changes nothing: no write at all (same resourceVersion).
    let store_before = storages(&ctx).get("store").await.expect("get");
    let repo_before = repositories(&ctx).get("repo").await.expect("get");
    let files_before = files(root.path());
    reconcile_storage(&ctx, "store").await;
    reconcile_repository(&ctx, "repo").await;
    let store_after = storages(&ctx).get("store").await.expect("get");
    let repo_after = repositories(&ctx).get("repo").await.expect("get");
    assert_eq!(store_after.metadata, store_before.metadata);
    assert_eq!(repo_after.metadata, repo_before.metadata);
    assert_eq!(store_after.status, store_before.status);
    assert_eq!(repo_after.status, repo_before.status);
    assert_eq!(files(root.path()), files_before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_and_missing_secrets_make_the_repository_not_ready() {
    let root = tempfile::tempdir().expect("tempdir");
    // A repository made with another password already exists at the path.
    let dir = repo_dir(root.path(), "taken");
    Repo::init(
        Storage::local(&dir).expect("storage"),
        "another password",
        InitOptions::default(),
    )
    .await
    .expect("init");
    let mut no_secret = repository("nosecret", DeletionPolicy::Delete);
    no_secret.spec.encryption_secret = Some(ObjectReference {
        namespace: None,
        name: "missing".into(),
    });
    let mut no_key = repository("nokey", DeletionPolicy::Delete);
    no_key.spec.encryption_secret = Some(ObjectReference {
        namespace: None,
        name: "empty".into(),
    });
    let mut no_storage = repository("nostorage", DeletionPolicy::Delete);
    no_storage.spec.storage_ref.name = "nowhere".into();
    let mut other_data = repository("other", DeletionPolicy::Delete);
    other_data.spec.path = "foreign".into();
    std::fs::create_dir_all(root.path().join("cluster/foreign")).expect("mkdir");
    std::fs::write(root.path().join("cluster/foreign/notes.txt"), "mine").expect("write");
    let ctx = Cluster {
        storages: vec![local_storage(root.path(), DeletionPolicy::Delete)],
        repositories: vec![
            repository("taken", DeletionPolicy::Delete),
            no_secret,
            no_key,
            no_storage,
            other_data,
        ],
        secrets: vec![
            secret(APP_NS, "enc", &[("password", PASSWORD)]),
            secret(APP_NS, "empty", &[("unrelated", "x")]),
        ],
        ..Cluster::default()
    }
    .start()
    .await;

    let cases = [
        ("taken", repository::WRONG_PASSWORD, "apps/enc"),
        (
            "nosecret",
            repository::ENCRYPTION_SECRET_NOT_AVAILABLE,
            "Secret apps/missing (repository password) not found",
        ),
        (
            "nokey",
            repository::ENCRYPTION_SECRET_NOT_AVAILABLE,
            "Secret apps/empty has no key RESTIC_PASSWORD (or password)",
        ),
        (
            "nostorage",
            repository::STORAGE_NOT_FOUND,
            "BackupStorage stash/nowhere not found",
        ),
        ("other", repository::PATH_NOT_EMPTY, "notes.txt"),
    ];
    for (name, reason, message) in cases {
        let action = reconcile_repository(&ctx, name).await;
        assert_eq!(action, Action::requeue(repository::RETRY), "{name}");
        let status = repositories(&ctx)
            .get(name)
            .await
            .expect("get")
            .status
            .expect("status");
        assert_eq!(status.phase, Some(ReadinessPhase::NotReady), "{name}");
        let c = status
            .conditions
            .iter()
            .find(|c| c.type_ == repository::REPOSITORY_INITIALIZED)
            .expect("condition");
        assert_eq!(c.status, ConditionStatus::False, "{name}");
        assert_eq!(c.reason.as_deref(), Some(reason), "{name}");
        let text = c.message.as_deref().unwrap_or("");
        assert!(text.contains(message), "{name}: {text}");
    }
    // The existing repository is untouched by the failed attempt, and nothing was created
    // next to someone else's data.
    Repo::open(Storage::local(&dir).expect("storage"), "another password")
        .await
        .expect("still opens with its own password");
    assert_eq!(files(&root.path().join("cluster/foreign")), ["notes.txt"]);
    let reasons = event_reasons(&ctx, APP_NS).await;
    assert!(
        reasons.iter().any(|r| r == repository::WRONG_PASSWORD),
        "{reasons:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_not_ready_reports_why() {
    let root = tempfile::tempdir().expect("tempdir");
    let unmounted = local_storage(&root.path().join("not-mounted"), DeletionPolicy::Delete);
    let mut s3 = local_storage(root.path(), DeletionPolicy::Delete);
    s3.metadata.name = Some("s3".into());
    s3.spec.storage = Backend {
        provider: Provider::S3,
        s3: Some(S3Spec {
            endpoint: "http://127.0.0.1:9".into(),
            bucket: "backups".into(),
            secret_name: Some("s3-creds".into()),
            ..S3Spec::default()
        }),
        ..Backend::default()
    };
    let ctx = Cluster {
        storages: vec![unmounted, s3],
        ..Cluster::default()
    }
    .start()
    .await;

    let action = reconcile_storage(&ctx, "store").await;
    assert_eq!(action, Action::requeue(backup_storage::RETRY));
    let status = storages(&ctx)
        .get("store")
        .await
        .expect("get")
        .status
        .expect("status");
    assert_eq!(status.phase, Some(ReadinessPhase::NotReady));
    let c = status
        .conditions
        .iter()
        .find(|c| c.type_ == backup_storage::BACKEND_INITIALIZED)
        .expect("condition");
    assert_eq!(
        c.reason.as_deref(),
        Some(backup_storage::INITIALIZATION_FAILED)
    );
    let text = c.message.as_deref().unwrap_or("");
    assert!(
        text.contains("not-mounted") && text.contains("not supported yet"),
        "{text}"
    );

    // An S3 storage whose Secret is missing: nothing is contacted.
    reconcile_storage(&ctx, "s3").await;
    let status = storages(&ctx)
        .get("s3")
        .await
        .expect("get")
        .status
        .expect("status");
    assert_eq!(status.phase, Some(ReadinessPhase::NotReady));
    let c = status
        .conditions
        .iter()
        .find(|c| c.type_ == backup_storage::BACKEND_SECRET_FOUND)
        .expect("condition");
    assert_eq!(c.status, ConditionStatus::False);
    assert_eq!(
        c.reason.as_deref(),
        Some(backup_storage::SECRET_NOT_AVAILABLE)
    );
    assert_eq!(
        c.message.as_deref(),
        Some("Secret stash/s3-creds (backend credentials) not found")
    );
    let reasons = event_reasons(&ctx, STORAGE_NS).await;
    assert_eq!(
        reasons,
        [
            backup_storage::INITIALIZATION_FAILED,
            backup_storage::SECRET_NOT_AVAILABLE
        ],
    );
}

/// Creates a Ready storage and repository with one snapshot on disk; returns the repository
/// directory.
async fn ready_repository(root: &Path, name: &str) -> PathBuf {
    let ctx = Cluster {
        storages: vec![local_storage(root, DeletionPolicy::Delete)],
        repositories: vec![repository(name, DeletionPolicy::Delete)],
        secrets: vec![secret(APP_NS, "enc", &[("RESTIC_PASSWORD", PASSWORD)])],
        ..Cluster::default()
    }
    .start()
    .await;
    reconcile_storage(&ctx, "store").await;
    reconcile_repository(&ctx, name).await;
    let dir = repo_dir(root, name);
    write_snapshot(&dir, b"data").await;
    assert!(!files(&dir).is_empty());
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repository_deletion_wipe_out_and_delete() {
    let root = tempfile::tempdir().expect("tempdir");
    let wiped_dir = ready_repository(root.path(), "wiped").await;
    let kept_dir = ready_repository(root.path(), "kept").await;
    let kept_files = files(&kept_dir);

    let mut wiped = repository("wiped", DeletionPolicy::WipeOut);
    wiped.metadata = deleting(wiped.metadata);
    let mut kept = repository("kept", DeletionPolicy::Delete);
    kept.metadata = deleting(kept.metadata);
    let ctx = Cluster {
        storages: vec![local_storage(root.path(), DeletionPolicy::Delete)],
        repositories: vec![wiped, kept],
        snapshots: vec![
            snapshot_object("wiped-1", "wiped"),
            snapshot_object("wiped-2", "wiped"),
            snapshot_object("kept-1", "kept"),
            snapshot_object("other-1", "other"),
        ],
        secrets: vec![secret(APP_NS, "enc", &[("RESTIC_PASSWORD", PASSWORD)])],
        ..Cluster::default()
    }
    .start()
    .await;

    assert_eq!(
        reconcile_repository(&ctx, "wiped").await,
        Action::await_change()
    );
    assert!(files(&wiped_dir).is_empty(), "{:?}", files(&wiped_dir));
    assert!(
        repositories(&ctx)
            .get_opt("wiped")
            .await
            .expect("get")
            .is_none(),
        "the finalizer is removed and the object goes"
    );

    reconcile_repository(&ctx, "kept").await;
    assert_eq!(files(&kept_dir), kept_files, "Delete keeps the data");
    Repo::open(Storage::local(&kept_dir).expect("storage"), PASSWORD)
        .await
        .expect("still a repository");
    assert!(
        repositories(&ctx)
            .get_opt("kept")
            .await
            .expect("get")
            .is_none()
    );

    let snapshots: Api<Snapshot> = Api::namespaced(ctx.client.clone(), APP_NS);
    let left: Vec<String> = snapshots
        .list(&ListParams::default())
        .await
        .expect("list")
        .items
        .iter()
        .map(|s| s.name_any())
        .collect();
    assert_eq!(
        left,
        ["other-1"],
        "Snapshots of both repositories are deleted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wipe_out_without_storage_keeps_the_finalizer() {
    let mut orphan = repository("orphan", DeletionPolicy::WipeOut);
    orphan.metadata = deleting(orphan.metadata);
    let ctx = Cluster {
        repositories: vec![orphan],
        ..Cluster::default()
    }
    .start()
    .await;
    let action = reconcile_repository(&ctx, "orphan").await;
    assert_eq!(action, Action::requeue(repository::RETRY));
    let still = repositories(&ctx).get("orphan").await.expect("still there");
    assert_eq!(still.finalizers(), [names::FINALIZER]);
    assert_eq!(
        event_reasons(&ctx, APP_NS).await,
        [repository::WIPE_OUT_FAILED]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_deletion_waits_for_repositories_then_honours_the_policy() {
    for policy in [DeletionPolicy::WipeOut, DeletionPolicy::Delete] {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = ready_repository(root.path(), "repo").await;
        let before = files(root.path());
        assert!(before.iter().any(|f| f.ends_with(storage_access::MARKER)));

        let mut store = local_storage(root.path(), policy);
        store.metadata = deleting(store.metadata);
        let ctx = Cluster {
            storages: vec![store.clone()],
            repositories: vec![repository("repo", DeletionPolicy::Delete)],
            ..Cluster::default()
        }
        .start()
        .await;

        // In use: the finalizer stays, a Warning says why, no data is touched.
        let action = reconcile_storage(&ctx, "store").await;
        assert_eq!(action, Action::requeue(backup_storage::RETRY));
        let still = storages(&ctx).get("store").await.expect("still there");
        assert_eq!(still.finalizers(), [names::FINALIZER]);
        assert_eq!(
            event_reasons(&ctx, STORAGE_NS).await,
            [backup_storage::STORAGE_IN_USE]
        );
        assert_eq!(files(root.path()), before);

        // The repository is gone: the storage is finalized as its policy says.
        repositories(&ctx)
            .delete("repo", &Default::default())
            .await
            .expect("delete repository");
        assert_eq!(
            reconcile_storage(&ctx, "store").await,
            Action::await_change()
        );
        assert!(
            storages(&ctx)
                .get_opt("store")
                .await
                .expect("get")
                .is_none(),
            "{policy:?}: finalized"
        );
        match policy {
            DeletionPolicy::WipeOut => {
                assert!(files(root.path()).is_empty(), "{:?}", files(root.path()));
            }
            DeletionPolicy::Delete => {
                assert_eq!(files(root.path()), before);
                Repo::open(Storage::local(&dir).expect("storage"), PASSWORD)
                    .await
                    .expect("data kept");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_policy_keeps_other_namespaces_out() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut store = local_storage(root.path(), DeletionPolicy::Delete);
    store.spec.usage_policy = None; // Same namespace only.
    let ctx = Cluster {
        storages: vec![store],
        repositories: vec![repository("repo", DeletionPolicy::Delete)],
        secrets: vec![secret(APP_NS, "enc", &[("RESTIC_PASSWORD", PASSWORD)])],
        ..Cluster::default()
    }
    .start()
    .await;
    reconcile_repository(&ctx, "repo").await;
    let status = repositories(&ctx)
        .get("repo")
        .await
        .expect("get")
        .status
        .expect("status");
    assert_eq!(status.phase, Some(ReadinessPhase::NotReady));
    assert_eq!(
        status.conditions[0].reason.as_deref(),
        Some(repository::STORAGE_NOT_ALLOWED)
    );
    assert!(!repo_dir(root.path(), "repo").exists(), "nothing written");
    reconcile_storage(&ctx, "store").await;
    let status = storages(&ctx)
        .get("store")
        .await
        .expect("get")
        .status
        .expect("status");
    assert!(status.repositories.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_after_a_successful_session_forgets_prunes_and_removes_snapshot_objects() {
    use stowaway_api::backup_session::{BackupSessionPhase, RetentionPolicyApplyPhase};
    let root = tempfile::tempdir().expect("tempdir");
    let config: stowaway_api::BackupConfiguration = serde_yaml::from_str(&format!(
        r#"
apiVersion: core.stowaway.dev/v1alpha1
kind: BackupConfiguration
metadata: {{name: db, namespace: {APP_NS}}}
spec:
  target: {{apiGroup: apps, kind: Deployment, name: web}}
  backends: [{{name: local, storageRef: {{name: store, namespace: {STORAGE_NS}}}, retentionPolicy: {{name: keep}}}}]
  sessions:
    - name: daily
      scheduler: {{schedule: "0 2 * * *"}}
      addon: {{name: postgres, tasks: [{{name: logical-backup}}]}}
      repositories: [{{name: repo, backend: local, directory: {APP_NS}/repo}}]
"#
    ))
    .expect("config");
    let policy: stowaway_api::RetentionPolicy = serde_yaml::from_str(&format!(
        "apiVersion: storage.stowaway.dev/v1alpha1\nkind: RetentionPolicy\nmetadata: {{name: keep, namespace: {APP_NS}}}\nspec: {{successfulSnapshots: {{last: 1}}}}\n"
    ))
    .expect("policy");
    let ctx = Cluster {
        storages: vec![local_storage(root.path(), DeletionPolicy::Delete)],
        repositories: vec![repository("repo", DeletionPolicy::Delete)],
        secrets: vec![secret(APP_NS, "enc", &[("RESTIC_PASSWORD", PASSWORD)])],
        configs: vec![config.clone()],
        policies: vec![policy],
        ..Cluster::default()
    }
    .start()
    .await;
    reconcile_storage(&ctx, "store").await;
    reconcile_repository(&ctx, "repo").await;
    let dir = repo_dir(root.path(), "repo");
    for content in [&b"one"[..], b"two", b"three"] {
        write_snapshot(&dir, content).await;
    }
    let repo = Repo::open(Storage::local(&dir).expect("storage"), PASSWORD)
        .await
        .expect("open");
    let ids: Vec<String> = repo
        .snapshots()
        .await
        .expect("snapshots")
        .iter()
        .map(|s| s.id.to_hex())
        .collect();
    assert_eq!(ids.len(), 3);
    let snapshots: Api<Snapshot> = Api::namespaced(ctx.client.clone(), APP_NS);
    for (i, id) in ids.iter().enumerate() {
        let mut object = snapshot_object(&format!("snap-{i}"), "repo");
        object.spec.snapshot_id = Some(id.clone());
        snapshots
            .create(&Default::default(), &object)
            .await
            .expect("snapshot object");
    }

    // A session whose snapshot just succeeded: the decision adds the retention entry, the
    // kube layer applies it.
    let mut session: stowaway_api::BackupSession = serde_yaml::from_str(&format!(
        r#"
apiVersion: core.stowaway.dev/v1alpha1
kind: BackupSession
metadata: {{name: db-daily-1, namespace: {APP_NS}, labels: {{stowaway.dev/invoker-name: db}}}}
spec:
  invoker: {{apiGroup: core.stowaway.dev, kind: BackupConfiguration, name: db}}
  session: daily
"#
    ))
    .expect("session");
    session.status = Some(stowaway_api::backup_session::BackupSessionStatus {
        phase: Some(BackupSessionPhase::Running),
        snapshots: vec![stowaway_api::backup_session::SnapshotStatus {
            name: "snap-2".into(),
            phase: Some(stowaway_api::common::RunPhase::Succeeded),
            app_ref: None,
            repository: Some("repo".into()),
            executor: None,
        }],
        ..Default::default()
    });
    let sessions: Api<stowaway_api::BackupSession> = Api::namespaced(ctx.client.clone(), APP_NS);
    sessions
        .create(&Default::default(), &session)
        .await
        .expect("session");
    let configs: Api<stowaway_api::BackupConfiguration> =
        Api::namespaced(ctx.client.clone(), APP_NS);
    let ready = serde_json::json!({"status": {"phase": "Ready"}});
    configs
        .patch_status("db", &Default::default(), &kube::api::Patch::Merge(&ready))
        .await
        .expect("config status");
    let patch = serde_json::json!({"status": {"phase": "Succeeded"}});
    // The session's own Snapshot object, as the executor leaves it.
    let mut own = snapshot_object("repo-db-daily-1", "repo");
    own.spec.backup_session = Some("db-daily-1".into());
    own.spec.snapshot_id = ids.last().cloned();
    own.metadata.labels = Some(BTreeMap::from([(
        "stowaway.dev/invoker-name".to_owned(),
        "db".to_owned(),
    )]));
    snapshots
        .create(&Default::default(), &own)
        .await
        .expect("own snapshot");
    snapshots
        .patch_status(
            "repo-db-daily-1",
            &Default::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await
        .expect("own snapshot status");

    let object = sessions.get("db-daily-1").await.expect("get");
    controller::backup_session::reconcile(Arc::new(object), ctx.clone())
        .await
        .expect("reconcile");
    let status = sessions
        .get("db-daily-1")
        .await
        .expect("get")
        .status
        .expect("status");
    assert_eq!(status.phase, Some(BackupSessionPhase::Succeeded));
    let entry = &status.retention_policy[0];
    assert_eq!(
        entry.phase,
        Some(RetentionPolicyApplyPhase::Applied),
        "{entry:?}"
    );
    assert_eq!(entry.repository.as_deref(), Some("repo"));

    // The repository keeps the newest snapshot only; the objects of the others are gone.
    let repo = Repo::open(Storage::local(&dir).expect("storage"), PASSWORD)
        .await
        .expect("open");
    let left: Vec<String> = repo
        .snapshots()
        .await
        .expect("snapshots")
        .iter()
        .map(|s| s.id.to_hex())
        .collect();
    assert_eq!(left, vec![ids[2].clone()]);
    let mut names: Vec<String> = snapshots
        .list(&ListParams::default())
        .await
        .expect("list")
        .items
        .iter()
        .map(ResourceExt::name_any)
        .collect();
    names.sort();
    assert_eq!(
        names,
        vec!["repo-db-daily-1".to_owned(), "snap-2".to_owned()]
    );
    let reasons = event_reasons(&ctx, APP_NS).await;
    assert!(
        reasons.iter().any(|r| r == "RetentionPolicyApplied"),
        "{reasons:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_wipeout_snapshot_object_forgets_its_snapshot() {
    let root = tempfile::tempdir().expect("tempdir");
    let ctx = Cluster {
        storages: vec![local_storage(root.path(), DeletionPolicy::Delete)],
        repositories: vec![repository("repo", DeletionPolicy::Delete)],
        secrets: vec![secret(APP_NS, "enc", &[("RESTIC_PASSWORD", PASSWORD)])],
        ..Cluster::default()
    }
    .start()
    .await;
    reconcile_storage(&ctx, "store").await;
    reconcile_repository(&ctx, "repo").await;
    let dir = repo_dir(root.path(), "repo");
    write_snapshot(&dir, b"one").await;
    write_snapshot(&dir, b"two").await;
    let open = || async {
        Repo::open(Storage::local(&dir).expect("storage"), PASSWORD)
            .await
            .expect("open")
    };
    let ids: Vec<String> = open()
        .await
        .snapshots()
        .await
        .expect("list")
        .iter()
        .map(|s| s.id.to_hex())
        .collect();

    let snapshots: Api<Snapshot> = Api::namespaced(ctx.client.clone(), APP_NS);
    let reconcile = |name: &'static str| {
        let ctx = ctx.clone();
        let snapshots = snapshots.clone();
        async move {
            let object = snapshots.get(name).await.expect("get");
            controller::snapshot::reconcile(Arc::new(object), ctx)
                .await
                .expect("reconcile");
            snapshots.get(name).await.expect("get again")
        }
    };
    // A WipeOut object gets the finalizer; a Delete one does not.
    let mut wipe = snapshot_object("wipe", "repo");
    wipe.spec.deletion_policy = DeletionPolicy::WipeOut;
    wipe.spec.snapshot_id = Some(ids[0].clone());
    snapshots
        .create(&Default::default(), &wipe)
        .await
        .expect("create");
    let mut keep = snapshot_object("keep", "repo");
    keep.spec.snapshot_id = Some(ids[1].clone());
    snapshots
        .create(&Default::default(), &keep)
        .await
        .expect("create");
    assert_eq!(reconcile("wipe").await.finalizers(), [names::FINALIZER]);
    assert!(reconcile("keep").await.finalizers().is_empty());

    // The WipeOut object is being deleted (the fake API server cannot set
    // deletionTimestamp, so the reconciler gets the object as the API server would show
    // it): its snapshot is forgotten, the finalizer goes.
    let mut deleting_object = snapshots.get("wipe").await.expect("get");
    deleting_object.metadata.deletion_timestamp = Some(Time(now()));
    controller::snapshot::reconcile(Arc::new(deleting_object), ctx.clone())
        .await
        .expect("reconcile");
    let left: Vec<String> = open()
        .await
        .snapshots()
        .await
        .expect("list")
        .iter()
        .map(|s| s.id.to_hex())
        .collect();
    assert_eq!(left, vec![ids[1].clone()]);
    assert!(
        snapshots
            .get_opt("wipe")
            .await
            .expect("get")
            .is_none_or(|s| s.finalizers().is_empty()),
        "finalizer removed"
    );
}

/// Writes a snapshot with a stream and a tree component, recording `meta`, straight into the
/// repository at `dir` (as `stowaway backup` does); returns its id.
async fn write_recorded_snapshot(dir: &Path, meta: SnapshotMeta) -> String {
    use stowaway_repository::{Entry, EntryKind};
    let storage = Storage::local(dir).expect("storage");
    let repo = Repo::open(storage, PASSWORD).await.expect("open");
    repo.load_index().await.expect("index");
    let backup = repo.start_backup(None).expect("start backup");
    let (backup, records) = tokio::task::spawn_blocking(move || {
        let mut stream = backup.stream("dump.sql", "application/sql")?;
        stream.write(b"CREATE TABLE t (x int);")?;
        let dump = stream.finish(Vec::new())?;
        let mut tree = backup.tree("data")?;
        let mut file = Entry::new("notes.txt", EntryKind::File);
        file.mode = 0o100_644;
        file.size = 5;
        tree.add_file(file)?;
        tree.write_content(b"hello")?;
        tree.finish_file(false)?;
        let data = tree.finish(Vec::new())?;
        Ok::<_, stowaway_repository::Error>((backup, vec![dump, data]))
    })
    .await
    .expect("join")
    .expect("backup");
    backup
        .commit(meta, records)
        .await
        .expect("commit")
        .id
        .to_hex()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repository_snapshots_without_objects_are_mirrored_and_forgotten_ones_removed() {
    use stowaway_api::common::{Driver, RunPhase};
    use stowaway_api::snapshot::{ComponentKind, SnapshotAddon};
    use stowaway_operator::snapshot_mirror::MIRRORED_LABEL;
    use stowaway_repository::{AddonRef, SnapshotId, Target};

    let root = tempfile::tempdir().expect("tempdir");
    // A BackupSession's own Snapshot object, still being written (no id yet).
    let mut own = snapshot_object("repo-db-daily-1", "repo");
    own.spec.backup_session = Some("db-daily-1".into());
    own.metadata.labels = Some(BTreeMap::from([(
        names::INVOKER_NAME_LABEL.to_owned(),
        "db".to_owned(),
    )]));
    let ctx = Cluster {
        storages: vec![local_storage(root.path(), DeletionPolicy::Delete)],
        repositories: vec![repository("repo", DeletionPolicy::Delete)],
        secrets: vec![secret(APP_NS, "enc", &[("RESTIC_PASSWORD", PASSWORD)])],
        snapshots: vec![own],
        ..Cluster::default()
    }
    .start()
    .await;
    reconcile_storage(&ctx, "store").await;
    reconcile_repository(&ctx, "repo").await;
    let dir = repo_dir(root.path(), "repo");

    // Two backups with the CLI's repository API, and the session's own one.
    let cli = |time: &str, tag: &str| SnapshotMeta {
        time: Some(time.parse().expect("time")),
        hostname: Some("laptop".into()),
        target: Target {
            kind: "postgres".into(),
            name: "db".into(),
        },
        addon: AddonRef {
            name: "postgres".into(),
            version: "0.1.0".into(),
            digest: format!("sha256:{}", "cd".repeat(32)),
        },
        tags: vec![tag.into()],
        ..SnapshotMeta::default()
    };
    let first = write_recorded_snapshot(&dir, cli("2026-02-01T10:00:00.5Z", "first")).await;
    let second = write_recorded_snapshot(&dir, cli("2026-02-02T10:00:00Z", "second")).await;
    let by_session = write_recorded_snapshot(
        &dir,
        SnapshotMeta {
            session: Some("db-daily-1".into()),
            ..cli("2026-02-03T10:00:00Z", "session")
        },
    )
    .await;
    assert_ne!(first, second);

    reconcile_repository(&ctx, "repo").await;
    let snapshots: Api<Snapshot> = Api::namespaced(ctx.client.clone(), APP_NS);
    let list = || async {
        let mut items = snapshots
            .list(&ListParams::default())
            .await
            .expect("list")
            .items;
        items.sort_by_key(ResourceExt::name_any);
        items
    };
    let items = list().await;
    let name_of = |id: &str| format!("repo-{}", &id[..8]);
    let mut expected = vec![
        name_of(&first),
        name_of(&second),
        "repo-db-daily-1".to_owned(),
    ];
    expected.sort();
    assert_eq!(
        items.iter().map(ResourceExt::name_any).collect::<Vec<_>>(),
        expected,
        "one object per CLI snapshot; the session's snapshot has its own object"
    );
    let repo_object = repositories(&ctx).get("repo").await.expect("repository");
    let mirrored = items
        .iter()
        .find(|s| s.name_any() == name_of(&first))
        .expect("mirrored");
    assert_eq!(mirrored.spec.snapshot_id.as_deref(), Some(first.as_str()));
    assert_eq!(mirrored.spec.repository, "repo");
    assert_eq!(mirrored.spec.backup_session, None);
    assert_eq!(
        mirrored.labels().get(MIRRORED_LABEL).map(String::as_str),
        Some("true")
    );
    assert_eq!(
        mirrored
            .labels()
            .get(names::MANAGED_BY_LABEL)
            .map(String::as_str),
        Some(names::MANAGED_BY)
    );
    let owner = &mirrored.owner_references()[0];
    assert_eq!(owner.kind, "Repository");
    assert_eq!(owner.name, "repo");
    assert_eq!(Some(owner.uid.clone()), repo_object.metadata.uid);
    let status = mirrored.status.as_ref().expect("status written");
    assert_eq!(status.phase, Some(RunPhase::Succeeded));
    assert_eq!(
        status.snapshot_time,
        Some(Time("2026-02-01T10:00:00Z".parse().expect("time")))
    );
    assert_eq!(
        status.size.as_deref(),
        Some("28 B"),
        "23-byte dump and 5-byte file"
    );
    assert_eq!(status.hostname.as_deref(), Some("laptop"));
    assert_eq!(status.tags, ["first"]);
    assert_eq!(
        status.addon,
        Some(SnapshotAddon {
            name: "postgres".into(),
            version: Some("0.1.0".into()),
            digest: Some(format!("sha256:{}", "cd".repeat(32))),
        })
    );
    assert_eq!(status.total_components, Some(2));
    assert_eq!(
        status.integrity,
        Some(true),
        "the refresh's integrity check walked the mirrored snapshot"
    );
    let dump = &status.components["dump.sql"];
    assert_eq!(dump.kind, Some(ComponentKind::Stream));
    assert_eq!(dump.size.as_deref(), Some("23 B"));
    assert_eq!(dump.media_type.as_deref(), Some("application/sql"));
    assert_eq!(dump.driver, Some(Driver::Restic));
    let data = &status.components["data"];
    assert_eq!(data.kind, Some(ComponentKind::Tree));
    assert_eq!(data.size.as_deref(), Some("5 B"));
    let own = items
        .iter()
        .find(|s| s.name_any() == "repo-db-daily-1")
        .expect("own");
    assert_eq!(own.status, None, "the session's object is not touched");
    assert!(!own.labels().contains_key(MIRRORED_LABEL));
    let recent: Vec<String> = repo_object
        .status
        .expect("status")
        .recent_snapshots
        .iter()
        .map(|s| s.name.clone())
        .collect();
    assert_eq!(
        recent,
        [
            "repo-db-daily-1".to_owned(),
            name_of(&second),
            name_of(&first)
        ]
    );

    // Again: nothing changes.
    let before = list().await;
    let repo_before = repositories(&ctx).get("repo").await.expect("repository");
    reconcile_repository(&ctx, "repo").await;
    assert_eq!(list().await, before);
    assert_eq!(
        repositories(&ctx).get("repo").await.expect("repository"),
        repo_before
    );

    // The session finishes: its object records the id. Still no second object.
    let patch = serde_json::json!({"spec": {"snapshotID": by_session}});
    snapshots
        .patch(
            "repo-db-daily-1",
            &Default::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await
        .expect("patch");
    reconcile_repository(&ctx, "repo").await;
    assert_eq!(list().await.len(), 3);

    // The CLI forgets the first snapshot and the session's: the mirrored object goes, the
    // session's stays.
    let opened = Repo::open(Storage::local(&dir).expect("storage"), PASSWORD)
        .await
        .expect("open");
    let forget: Vec<SnapshotId> = [&first, &by_session]
        .iter()
        .map(|id| id.parse().expect("id"))
        .collect();
    opened.forget(&forget).await.expect("forget");
    reconcile_repository(&ctx, "repo").await;
    let left: Vec<String> = list().await.iter().map(ResourceExt::name_any).collect();
    let mut expected = vec![name_of(&second), "repo-db-daily-1".to_owned()];
    expected.sort();
    assert_eq!(left, expected);
    let status = repositories(&ctx)
        .get("repo")
        .await
        .expect("repository")
        .status
        .expect("status");
    assert_eq!(status.snapshot_count, Some(1));
}
