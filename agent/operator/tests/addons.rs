//! The addon registry end to end: built-in addons installed as Addon and Function objects,
//! third-party components downloaded from a real local HTTP server and checked against their
//! SHA-256, and a BackupConfiguration that waits for its addon.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Client, ResourceExt};
use kube_fake_client::ClientBuilder;
use stowaway_api::addon::AddonPhase;
use stowaway_api::backup_configuration::BackupConfigurationPhase;
use stowaway_api::{
    Addon, BackupConfiguration, BackupSession, BackupStorage, Function, Repository, RetentionPolicy,
};
use stowaway_operator::addon::{
    self, COMPONENT_VERIFIED, DIGEST_MISMATCH, DIGEST_VERIFIED, DOWNLOAD_FAILED, Fetched,
    MAX_COMPONENT_BYTES,
};
use stowaway_operator::addon_registry::{self, DIGEST_ANNOTATION, VERSION_ANNOTATION};
use stowaway_operator::controller::{self, Context};
use stowaway_operator::job::JobSettings;
use stowaway_operator::names;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod common;

const IMAGE: &str = "registry.example/stowaway:1.0";

fn sha256(bytes: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The component bytes a third-party addon would publish: here a real built-in one.
fn component() -> &'static [u8] {
    stowaway_addons::builtin("volume").expect("the volume addon is embedded")
}

/// A local HTTP server: `/volume.wasm` (with a Content-Length), `/chunked.wasm` (the same
/// bytes without one, until the connection closes), anything else 404. Counts the requests.
async fn component_server() -> (String, Arc<Mutex<usize>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let requests = Arc::new(Mutex::new(0));
    let count = requests.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            *count.lock().expect("count") += 1;
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&head).to_string();
                let path = text.split_whitespace().nth(1).unwrap_or("/").to_owned();
                let body = component();
                let response_head = match path.as_str() {
                    "/volume.wasm" => format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/wasm\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                        body.len()
                    ),
                    "/chunked.wasm" => {
                        "HTTP/1.1 200 OK\r\ncontent-type: application/wasm\r\nconnection: close\r\n\r\n"
                            .to_owned()
                    }
                    _ => {
                        let _ = stream
                            .write_all(
                                b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                            )
                            .await;
                        return;
                    }
                };
                let _ = stream.write_all(response_head.as_bytes()).await;
                let _ = stream.write_all(body).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    (base, requests)
}

fn third_party(name: &str, url: &str, sha: &str) -> Addon {
    serde_yaml::from_str(&format!(
        r#"
apiVersion: addons.stowaway.dev/v1alpha1
kind: Addon
metadata: {{name: {name}}}
spec:
  backupTasks:
    - name: logical-backup
      function: {name}
      parameters:
        - {{name: db, required: true}}
  source: {{url: "{url}", sha256: "{sha}"}}
"#
    ))
    .expect("addon")
}

struct Harness {
    client: Client,
    ctx: Arc<Context>,
    now: Arc<Mutex<Timestamp>>,
}

impl Harness {
    async fn start(addons: Vec<Addon>) -> Harness {
        let mut builder = ClientBuilder::new()
            .with_resource::<Addon>()
            .with_status_subresource::<Addon>()
            .with_resource::<Function>()
            .with_resource::<Event>()
            .with_resource::<BackupStorage>()
            .with_status_subresource::<BackupStorage>()
            .with_resource::<RetentionPolicy>()
            .with_resource::<Repository>()
            .with_status_subresource::<Repository>()
            .with_resource::<BackupConfiguration>()
            .with_status_subresource::<BackupConfiguration>()
            .with_resource::<BackupSession>()
            .with_status_subresource::<BackupSession>();
        for addon in addons {
            builder = builder.with_object(addon);
        }
        let docs: Vec<&str> = CLUSTER.split("\n---\n").collect();
        let [storage, policy, repository, config] = docs.as_slice() else {
            panic!("four objects");
        };
        builder = builder
            .with_object(yaml::<BackupStorage>(storage))
            .with_object(yaml::<RetentionPolicy>(policy))
            .with_object(yaml::<Repository>(repository))
            .with_object(yaml::<BackupConfiguration>(config));
        let mut web = Deployment::default();
        web.metadata.name = Some("web".into());
        web.metadata.namespace = Some("demo".into());
        let client = builder.with_object(web).build().await.expect("fake client");
        let client = common::cluster_scoped(client, stowaway_api::ADDONS_GROUP);
        let now = Arc::new(Mutex::new(
            "2026-03-01T12:00:00Z".parse::<Timestamp>().expect("time"),
        ));
        let clock = now.clone();
        let ctx = Context::new(
            client.clone(),
            JobSettings {
                image: IMAGE.into(),
                ..JobSettings::default()
            },
            common::builtin_addons(),
        )
        .with_clock(Arc::new(move || *clock.lock().expect("clock")));
        Harness {
            client,
            ctx: Arc::new(ctx),
            now,
        }
    }

    fn advance(&self, by: SignedDuration) {
        let mut now = self.now.lock().expect("clock");
        *now += by;
    }

    fn addons(&self) -> Api<Addon> {
        Api::all(self.client.clone())
    }

    async fn reconcile_addon(&self, name: &str) -> (Addon, Action) {
        let object = self.addons().get(name).await.expect("addon");
        let action = controller::addon::reconcile(Arc::new(object), self.ctx.clone())
            .await
            .expect("reconcile");
        (self.addons().get(name).await.expect("addon"), action)
    }

    async fn reconcile_config(&self) -> (BackupConfiguration, Action) {
        let api: Api<BackupConfiguration> = Api::namespaced(self.client.clone(), "demo");
        let object = api.get("db").await.expect("configuration");
        let action =
            controller::backup_configuration::reconcile(Arc::new(object), self.ctx.clone())
                .await
                .expect("reconcile");
        (api.get("db").await.expect("configuration"), action)
    }
}

fn yaml<K: serde::de::DeserializeOwned>(text: &str) -> K {
    serde_yaml::from_str(text).expect("object")
}

/// A Ready storage and repository, a retention policy and a configuration using Addon
/// `redis` (task `logical-backup`, parameter `db`).
const CLUSTER: &str = r#"
apiVersion: storage.stowaway.dev/v1alpha1
kind: BackupStorage
metadata: {name: store, namespace: demo}
spec:
  storage: {provider: s3, s3: {endpoint: "https://s3.example", bucket: b}}
  usagePolicy: {allowedNamespaces: {from: All}}
status: {phase: Ready}
---
apiVersion: storage.stowaway.dev/v1alpha1
kind: RetentionPolicy
metadata: {name: keep, namespace: demo}
spec: {successfulSnapshots: {last: 3}}
---
apiVersion: storage.stowaway.dev/v1alpha1
kind: Repository
metadata: {name: repo, namespace: demo}
spec:
  appRef: {apiGroup: apps, kind: Deployment, name: web, namespace: demo}
  storageRef: {name: store, namespace: demo}
  path: /demo/db
status: {phase: Ready}
---
apiVersion: core.stowaway.dev/v1alpha1
kind: BackupConfiguration
metadata: {name: db, namespace: demo}
spec:
  target: {apiGroup: apps, kind: Deployment, name: web}
  backends: [{name: local, storageRef: {name: store, namespace: demo}, retentionPolicy: {name: keep}}]
  sessions:
    - name: daily
      scheduler: {schedule: "0 2 * * *"}
      addon: {name: redis, tasks: [{name: logical-backup, params: {db: "0"}}]}
      repositories: [{name: repo, backend: local, directory: /demo/db}]
"#;

async fn event_reasons(client: &Client) -> Vec<String> {
    let events: Api<Event> = Api::all(client.clone());
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_third_party_component_is_verified_by_its_sha256() {
    let (base, requests) = component_server().await;
    let good = sha256(component());
    let h = Harness::start(vec![
        third_party("redis", &format!("{base}/volume.wasm"), &good),
        third_party("wrong", &format!("{base}/volume.wasm"), &"0".repeat(64)),
        third_party("gone", &format!("{base}/missing.wasm"), &good),
    ])
    .await;

    let (redis, action) = h.reconcile_addon("redis").await;
    let status = redis.status.clone().expect("status");
    assert_eq!(status.phase, Some(AddonPhase::Ready), "{status:?}");
    assert_eq!(status.digest.as_deref(), Some(good.as_str()));
    assert_eq!(
        status.size,
        Some(stowaway_api::size::format(component().len() as u64))
    );
    let condition = &status.conditions[0];
    assert_eq!(condition.type_, COMPONENT_VERIFIED);
    assert_eq!(condition.reason.as_deref(), Some(DIGEST_VERIFIED));
    assert_eq!(condition.observed_generation, redis.metadata.generation);
    assert_eq!(action, Action::await_change());
    assert_eq!(
        addon::readiness(&redis),
        stowaway_operator::backup_configuration::Lookup::Ready
    );

    // Verified: reconciling again downloads nothing.
    let before = *requests.lock().expect("count");
    let (again, _) = h.reconcile_addon("redis").await;
    assert_eq!(*requests.lock().expect("count"), before);
    assert_eq!(again.status, redis.status);

    let (wrong, action) = h.reconcile_addon("wrong").await;
    let status = wrong.status.expect("status");
    assert_eq!(status.phase, Some(AddonPhase::Failed));
    assert_eq!(status.digest, None);
    let condition = &status.conditions[0];
    assert_eq!(condition.reason.as_deref(), Some(DIGEST_MISMATCH));
    let message = condition.message.clone().unwrap_or_default();
    assert!(
        message.contains(&format!("has SHA-256 {good}, not the {}", "0".repeat(64))),
        "{message}"
    );
    assert_eq!(action, Action::requeue(addon::RETRY_MISMATCH));

    let (gone, action) = h.reconcile_addon("gone").await;
    let status = gone.status.expect("status");
    assert_eq!(status.phase, Some(AddonPhase::Failed));
    let condition = &status.conditions[0];
    assert_eq!(condition.reason.as_deref(), Some(DOWNLOAD_FAILED));
    assert!(
        condition
            .message
            .as_deref()
            .unwrap_or_default()
            .contains("the server answered HTTP 404 Not Found"),
        "{condition:?}"
    );
    assert_eq!(action, Action::requeue(addon::RETRY_DOWNLOAD));

    assert_eq!(
        event_reasons(&h.client).await,
        [DIGEST_MISMATCH, DIGEST_VERIFIED, DOWNLOAD_FAILED]
    );

    // A failed download is not tried again before its retry delay, then it is.
    let before = *requests.lock().expect("count");
    h.reconcile_addon("gone").await;
    assert_eq!(*requests.lock().expect("count"), before, "too soon");
    h.advance(SignedDuration::from_secs(121));
    h.reconcile_addon("gone").await;
    assert_eq!(*requests.lock().expect("count"), before + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downloads_are_capped_and_redirects_checked() {
    let (base, _) = component_server().await;
    let good = sha256(component());
    let size = component().len() as u64;
    assert!(size < MAX_COMPONENT_BYTES);
    for path in ["volume.wasm", "chunked.wasm"] {
        let url = format!("{base}/{path}");
        assert_eq!(
            controller::addon::fetch(&url, &good, size).await,
            Fetched::Verified { size },
            "{path}: exactly at the limit"
        );
        assert_eq!(
            controller::addon::fetch(&url, &good.to_uppercase(), size).await,
            Fetched::Verified { size },
            "{path}: digest in upper case"
        );
        assert_eq!(
            controller::addon::fetch(&url, &good, size - 1).await,
            Fetched::TooLarge { limit: size - 1 },
            "{path}: one byte over"
        );
    }
    match controller::addon::fetch("http://127.0.0.1:1/x.wasm", &good, size).await {
        Fetched::DownloadFailed(why) => assert!(why.contains("127.0.0.1:1"), "{why}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configuration_waits_for_its_third_party_addon() {
    let (base, _) = component_server().await;
    let good = sha256(component());
    let h = Harness::start(vec![third_party(
        "redis",
        &format!("{base}/volume.wasm"),
        &"0".repeat(64),
    )])
    .await;

    // The download does not match: NotReady, the Event says why, and the configuration is
    // looked at again within a minute.
    h.reconcile_addon("redis").await;
    let (config, action) = h.reconcile_config().await;
    let status = config.status.expect("status");
    assert_eq!(status.phase, Some(BackupConfigurationPhase::NotReady));
    assert_eq!(action, Action::requeue(std::time::Duration::from_secs(60)));
    let events: Api<Event> = Api::namespaced(h.client.clone(), "demo");
    let notes: Vec<String> = events
        .list(&ListParams::default())
        .await
        .expect("events")
        .items
        .into_iter()
        .filter_map(|e| e.note)
        .collect();
    assert!(
        notes.iter().any(|n| n.contains(&format!(
            "Addon \"redis\" is not ready: DigestMismatch: the component at {base}/volume.wasm has SHA-256 {good}"
        ))),
        "{notes:?}"
    );

    // The digest is fixed: the component verifies and the configuration becomes Ready.
    let patch = serde_json::json!({"spec": {"source": {"sha256": good}}});
    h.addons()
        .patch("redis", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("patch");
    let (redis, _) = h.reconcile_addon("redis").await;
    assert_eq!(
        redis.status.and_then(|s| s.phase),
        Some(AddonPhase::Ready),
        "a spec change is checked at once"
    );
    let (config, _) = h.reconcile_config().await;
    let status = config.status.expect("status");
    assert_eq!(
        status.phase,
        Some(BackupConfigurationPhase::Ready),
        "{status:?}"
    );

    // A parameter the addon does not take: Invalid, with the field path.
    let api: Api<BackupConfiguration> = Api::namespaced(h.client.clone(), "demo");
    let patch = serde_json::json!({"spec": {"sessions": [{
        "name": "daily",
        "scheduler": {"schedule": "0 2 * * *"},
        "addon": {"name": "redis", "tasks": [{"name": "logical-backup", "params": {"database": "0"}}]},
        "repositories": [{"name": "repo", "backend": "local", "directory": "/demo/db"}]
    }]}});
    api.patch("db", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("patch");
    let (config, _) = h.reconcile_config().await;
    let status = config.status.expect("status");
    assert_eq!(status.phase, Some(BackupConfigurationPhase::Invalid));
    let message = status
        .conditions
        .iter()
        .find(|c| c.type_ == "ValidationPassed")
        .and_then(|c| c.message.clone())
        .unwrap_or_default();
    assert_eq!(
        message,
        "spec.sessions[0].addon.tasks[0].params.database: unknown parameter: task \"logical-backup\" of Addon \"redis\" takes db; \
         spec.sessions[0].addon.tasks[0].params.db: required by task \"logical-backup\" of Addon \"redis\""
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn built_in_addons_are_installed_and_kept_up_to_date() {
    // A person's own Addon named like a built-in one.
    let mut mine: Addon = serde_yaml::from_str(
        "apiVersion: addons.stowaway.dev/v1alpha1\nkind: Addon\nmetadata: {name: mysql}\nspec: {backupTasks: [{name: dump, function: my-mysql}]}\n",
    )
    .expect("addon");
    mine.metadata.annotations = Some(BTreeMap::from([("owner".into(), "me".into())]));
    let h = Harness::start(vec![mine.clone()]).await;

    let written = controller::addon::install_builtins(&h.ctx)
        .await
        .expect("install");
    assert_eq!(
        written, 5,
        "Addon and Function of volume and postgres, Function of mysql"
    );
    let volume = h.addons().get("volume").await.expect("volume");
    assert!(addon_registry::is_managed(&volume.metadata));
    assert_eq!(
        volume
            .labels()
            .get(names::MANAGED_BY_LABEL)
            .map(String::as_str),
        Some(names::MANAGED_BY)
    );
    let annotations = volume.annotations();
    assert_eq!(annotations[VERSION_ANNOTATION], "0.1.0");
    assert_eq!(
        annotations[DIGEST_ANNOTATION],
        format!("sha256:{}", "a".repeat(64))
    );
    let tasks: Vec<(&str, &str)> = volume
        .spec
        .backup_tasks
        .iter()
        .chain(&volume.spec.restore_tasks)
        .map(|t| (t.name.as_str(), t.function.as_str()))
        .collect();
    assert_eq!(
        tasks,
        [
            ("logical-backup", "volume"),
            ("logical-backup-restore", "volume")
        ]
    );
    let params: Vec<&str> = volume.spec.backup_tasks[0]
        .parameters
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    assert_eq!(params, ["exclude", "restore-owner", "overwrite"]);
    let functions: Api<Function> = Api::all(h.client.clone());
    let function = functions.get("postgres").await.expect("function");
    assert_eq!(function.spec.image, IMAGE);
    assert_eq!(
        h.addons().get("mysql").await.expect("mysql").spec,
        mine.spec,
        "a person's Addon is left alone"
    );
    assert_eq!(
        h.addons().get("mysql").await.expect("mysql").annotations(),
        mine.annotations()
    );

    // Again: nothing to write.
    assert_eq!(
        controller::addon::install_builtins(&h.ctx)
            .await
            .expect("install"),
        0
    );

    // A new version of the operator: the objects are updated; what others added stays.
    let annotate = serde_json::json!({"metadata": {"annotations": {"team": "storage"}}});
    h.addons()
        .patch("volume", &PatchParams::default(), &Patch::Merge(&annotate))
        .await
        .expect("annotate");
    let mut newer = (*h.ctx).clone();
    for b in &mut newer.builtin_addons {
        b.version = "0.2.0".into();
    }
    assert_eq!(
        controller::addon::install_builtins(&newer)
            .await
            .expect("install"),
        5
    );
    let volume = h.addons().get("volume").await.expect("volume");
    assert_eq!(volume.annotations()[VERSION_ANNOTATION], "0.2.0");
    assert_eq!(volume.annotations()["team"], "storage");

    // The installed objects are what a configuration is checked against.
    let (volume_addon, _) = h.reconcile_addon("volume").await;
    assert_eq!(volume_addon.status, None, "no source, nothing to verify");
}
