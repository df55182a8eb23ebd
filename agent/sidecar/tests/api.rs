//! The on-demand API over real loopback TCP and a real Unix socket: with the in-memory store,
//! and with the Kubernetes store against the fake API server of `kube-fake-client`.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::net::SocketAddr;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::{Client as KubeClient, ResourceExt};
use kube_fake_client::ClientBuilder;
use serde_json::{Value, json};
use stowaway_api::backup_session::BackupSessionPhase;
use stowaway_api::common::RunPhase;
use stowaway_api::{BackupConfiguration, BackupSession, RestoreSession, Snapshot};
use stowaway_operator::http::Limits;
use stowaway_sidecar::api::{ApiConfig, BindError, LoopbackAddr, MAX_BODY, Server};
use stowaway_sidecar::client::{Client, ClientError, Endpoint};
use stowaway_sidecar::store::{KubeStore, MemoryStore, SessionStore};
use stowaway_sidecar::token::Token;
use stowaway_sidecar::wire::{BackupRequest, SnapshotInfo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};

const TOKEN: &str = "t0ken-from-the-secret";

/// A server on 127.0.0.1:0 and on a socket in a temporary directory.
struct Running {
    tcp: SocketAddr,
    socket: PathBuf,
    _dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    async fn start(store: Arc<dyn SessionStore>, token: bool, allow_restore: bool) -> Running {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("sidecar.sock");
        let config = ApiConfig {
            tcp: Some(LoopbackAddr::port(0)),
            socket: Some(socket.clone()),
            token: token.then(|| Token::new(TOKEN.as_bytes()).unwrap()),
            allow_restore,
            ..ApiConfig::default()
        };
        let server = Server::bind(config, store).await.unwrap();
        let tcp = server.tcp_addr().unwrap();
        assert!(tcp.ip().is_loopback());
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(server.serve_until(async {
            let _ = stopped.await;
        }));
        Running {
            tcp,
            socket,
            _dir: dir,
            stop: Some(stop),
            task,
        }
    }

    fn both(&self) -> [To<'_>; 2] {
        [To::Tcp(self.tcp), To::Socket(&self.socket)]
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            stop.send(()).unwrap();
        }
        (&mut self.task).await.unwrap();
    }
}

#[derive(Clone, Copy, Debug)]
enum To<'a> {
    Tcp(SocketAddr),
    Socket(&'a Path),
}

/// An answer: status, header fields (lower-case names), body as JSON.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Value,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }

    fn message(&self) -> &str {
        self.body["error"]["message"].as_str().unwrap_or("")
    }
}

async fn raw(to: To<'_>, request: &[u8]) -> Answer {
    let mut out = Vec::new();
    match to {
        To::Tcp(addr) => {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(request).await.unwrap();
            s.read_to_end(&mut out).await.unwrap();
        }
        To::Socket(path) => {
            let mut s = UnixStream::connect(path).await.unwrap();
            s.write_all(request).await.unwrap();
            s.read_to_end(&mut out).await.unwrap();
        }
    }
    let text = String::from_utf8(out).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("a complete answer");
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .map(|l| {
            let (k, v) = l.split_once(':').unwrap();
            (k.trim().to_ascii_lowercase(), v.trim().to_owned())
        })
        .collect();
    let length: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .unwrap()
        .1
        .parse()
        .unwrap();
    assert_eq!(body.len(), length, "content-length of {body:?}");
    assert_eq!(
        headers
            .iter()
            .find(|(k, _)| k == "content-type")
            .map(|(_, v)| v.as_str()),
        Some("application/json")
    );
    Answer {
        status,
        headers,
        body: serde_json::from_str(body).unwrap(),
    }
}

async fn call(to: To<'_>, method: &str, path: &str, token: Option<&str>, body: &str) -> Answer {
    let mut request = format!("{method} {path} HTTP/1.1\r\nhost: localhost\r\n");
    if let Some(token) = token {
        request.push_str(&format!("authorization: Bearer {token}\r\n"));
    }
    request.push_str(&format!("content-length: {}\r\n\r\n{body}", body.len()));
    raw(to, request.as_bytes()).await
}

fn snapshot(name: &str, time: &str, phase: RunPhase, components: &[&str]) -> SnapshotInfo {
    SnapshotInfo {
        name: name.into(),
        repository: "repo".into(),
        backup_session: None,
        phase: Some(phase),
        time: Some(time.parse().unwrap()),
        size: Some("1 KiB".into()),
        components: components.iter().map(|c| (*c).to_owned()).collect(),
    }
}

#[tokio::test]
async fn a_backup_is_created_and_its_status_read_over_tcp_and_the_socket() {
    let store = Arc::new(MemoryStore::new("db", &["frequent", "weekly"]));
    let server = Running::start(store.clone(), false, false).await;
    for (i, to) in server.both().into_iter().enumerate() {
        let created = call(
            to,
            "POST",
            "/v1/backups",
            None,
            r#"{"session": "weekly", "tag": "before-upgrade", "components": ["dump", "wal"]}"#,
        )
        .await;
        assert_eq!(created.status, 202, "{to:?}: {created:?}");
        let name = created.body["name"].as_str().unwrap().to_owned();
        assert!(name.starts_with("db-weekly-ondemand-"), "{name}");
        assert_eq!(created.body["status"], format!("/v1/backups/{name}"));
        assert_eq!(store.backups().len(), i + 1);

        // The status, over the other listener.
        let other = server.both()[1 - i];
        let status = call(other, "GET", &format!("/v1/backups/{name}"), None, "").await;
        assert_eq!(status.status, 200, "{status:?}");
        assert_eq!(status.body["name"], name.as_str());
        assert_eq!(status.body["session"], "weekly");
        assert_eq!(status.body["phase"], "Pending");
        assert_eq!(status.body["trigger"], "on-demand");
        assert_eq!(status.body["tag"], "before-upgrade");
        assert_eq!(status.body["components"], json!(["dump", "wal"]));

        assert!(store.update_backup(&name, |b| {
            b.phase = BackupSessionPhase::Failed;
            b.error = Some("addon postgres: connection refused".into());
        }));
        let status = call(to, "GET", &format!("/v1/backups/{name}"), None, "").await;
        assert_eq!(status.body["phase"], "Failed");
        assert_eq!(status.body["error"], "addon postgres: connection refused");
    }

    // An empty body is `{}`: the first session, no tag.
    let created = call(server.both()[0], "POST", "/v1/backups", None, "").await;
    assert_eq!(created.status, 202, "{created:?}");
    let name = created.body["name"].as_str().unwrap();
    assert!(name.starts_with("db-frequent-ondemand-"), "{name}");
    server.stop().await;
}

#[tokio::test]
async fn unknown_backups_paths_and_methods() {
    let server = Running::start(
        Arc::new(MemoryStore::new("db", &["frequent"])),
        false,
        false,
    )
    .await;
    for to in server.both() {
        let a = call(
            to,
            "GET",
            "/v1/backups/db-frequent-ondemand-1-nope",
            None,
            "",
        )
        .await;
        assert_eq!((a.status, a.code()), (404, "backup_not_found"), "{a:?}");
        assert_eq!(
            a.message(),
            "BackupSession db-frequent-ondemand-1-nope not found"
        );
        let a = call(to, "GET", "/v1/nothing", None, "").await;
        assert_eq!((a.status, a.code()), (404, "not_found"), "{a:?}");
        let a = call(to, "DELETE", "/v1/backups", None, "").await;
        assert_eq!((a.status, a.code()), (405, "method_not_allowed"), "{a:?}");
        assert_eq!(a.header("allow"), Some("POST"));
        let a = call(to, "POST", "/v1/snapshots", None, "{}").await;
        assert_eq!((a.status, a.header("allow")), (405, Some("GET")), "{a:?}");
        let a = call(to, "POST", "/v1/backups/x", None, "{}").await;
        assert_eq!((a.status, a.header("allow")), (405, Some("GET")), "{a:?}");
    }
    server.stop().await;
}

#[tokio::test]
async fn with_a_token_every_request_needs_it() {
    let store = Arc::new(MemoryStore::new("db", &["frequent"]));
    let server = Running::start(store.clone(), true, false).await;
    for to in server.both() {
        let a = call(to, "POST", "/v1/backups", None, "{}").await;
        assert_eq!((a.status, a.code()), (401, "unauthorized"), "{a:?}");
        assert!(a.message().contains("Authorization: Bearer"), "{a:?}");
        assert_eq!(a.header("www-authenticate"), Some("Bearer"));
        let a = call(
            to,
            "POST",
            "/v1/backups",
            Some("t0ken-from-the-secreT"),
            "{}",
        )
        .await;
        assert_eq!((a.status, a.code()), (401, "unauthorized"), "{a:?}");
        assert_eq!(a.message(), "the bearer token is wrong");
        // Not even whether a path exists is told without it.
        let a = call(to, "GET", "/v1/nothing", Some("x"), "").await;
        assert_eq!(a.status, 401, "{a:?}");
        let a = call(to, "GET", "/v1/snapshots", None, "").await;
        assert_eq!(a.status, 401, "{a:?}");
        assert!(
            store.backups().is_empty(),
            "a refused request created a backup"
        );
    }
    for to in server.both() {
        let a = call(to, "POST", "/v1/backups", Some(TOKEN), "{}").await;
        assert_eq!(a.status, 202, "{a:?}");
        let a = call(to, "GET", "/v1/snapshots", Some(TOKEN), "").await;
        assert_eq!(a.status, 200, "{a:?}");
    }
    assert_eq!(store.backups().len(), 2);
    server.stop().await;
}

#[tokio::test]
async fn bad_json_fields_and_bodies_are_refused_and_the_server_goes_on() {
    let store = Arc::new(MemoryStore::new("db", &["frequent", "weekly"]));
    let server = Running::start(store.clone(), false, true).await;
    for to in server.both() {
        let a = call(to, "POST", "/v1/backups", None, "{not json").await;
        assert_eq!((a.status, a.code()), (400, "invalid_json"), "{a:?}");
        let a = call(to, "POST", "/v1/backups", None, r#"{"tags": ["x"]}"#).await;
        assert_eq!((a.status, a.code()), (400, "invalid_json"), "{a:?}");
        assert!(a.message().contains("unknown field `tags`"), "{a:?}");
        let a = call(
            to,
            "POST",
            "/v1/backups",
            None,
            r#"{"components": ["a,b"]}"#,
        )
        .await;
        assert_eq!((a.status, a.code()), (400, "invalid_field"), "{a:?}");
        assert!(a.message().starts_with("components[0]"), "{a:?}");
        let a = call(to, "POST", "/v1/backups", None, r#"{"session": "hourly"}"#).await;
        assert_eq!((a.status, a.code()), (400, "invalid_field"), "{a:?}");
        assert_eq!(
            a.message(),
            "session: BackupConfiguration db has no session \"hourly\" (it has: frequent, weekly)"
        );
        let a = call(to, "POST", "/v1/restores", None, "").await;
        assert_eq!((a.status, a.code()), (400, "invalid_json"), "{a:?}");

        // Just over the limit: 413, and the answer arrives although the body was not read.
        let body = format!(r#"{{"tag": "{}"}}"#, "x".repeat(MAX_BODY));
        let a = call(to, "POST", "/v1/backups", None, &body).await;
        assert_eq!((a.status, a.code()), (413, "body_too_large"), "{a:?}");
        assert!(
            a.message().contains("over the limit of 65536 bytes"),
            "{a:?}"
        );

        let a = raw(to, b"NONSENSE\r\n\r\n").await;
        assert_eq!((a.status, a.code()), (400, "bad_request"), "{a:?}");
        let a = raw(
            to,
            b"POST /v1/backups HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n",
        )
        .await;
        assert_eq!((a.status, a.code()), (411, "length_required"), "{a:?}");
    }
    assert!(store.backups().is_empty());
    // Still serving.
    let a = call(server.both()[0], "POST", "/v1/backups", None, "{}").await;
    assert_eq!(a.status, 202, "{a:?}");
    server.stop().await;
}

#[tokio::test]
async fn a_silent_client_times_out_without_holding_up_others() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("s.sock");
    let config = ApiConfig {
        tcp: None,
        socket: Some(socket.clone()),
        limits: Limits {
            timeout: std::time::Duration::from_millis(300),
            ..ApiConfig::default().limits
        },
        ..ApiConfig::default()
    };
    let server = Server::bind(config, Arc::new(MemoryStore::new("db", &["a"])))
        .await
        .unwrap();
    assert_eq!(server.tcp_addr(), None);
    tokio::spawn(server.serve());
    let mut silent = UnixStream::connect(&socket).await.unwrap();
    silent
        .write_all(b"POST /v1/backups HTTP/1.1\r\n")
        .await
        .unwrap();
    let a = call(To::Socket(&socket), "POST", "/v1/backups", None, "{}").await;
    assert_eq!(a.status, 202, "{a:?}");
    let mut out = String::new();
    silent.read_to_string(&mut out).await.unwrap();
    assert!(out.starts_with("HTTP/1.1 408 Request Timeout\r\n"), "{out}");
}

#[tokio::test]
async fn restores_are_refused_unless_allowed() {
    let store = Arc::new(MemoryStore::new("db", &["frequent"]));
    store.add_snapshot(snapshot(
        "repo-old",
        "2026-01-01T00:00:00Z",
        RunPhase::Succeeded,
        &["dump"],
    ));
    store.add_snapshot(snapshot(
        "repo-new",
        "2026-01-03T00:00:00Z",
        RunPhase::Succeeded,
        &["dump"],
    ));
    store.add_snapshot(snapshot(
        "repo-failed",
        "2026-01-04T00:00:00Z",
        RunPhase::Failed,
        &[],
    ));

    let refusing = Running::start(store.clone(), false, false).await;
    for to in refusing.both() {
        let a = call(
            to,
            "POST",
            "/v1/restores",
            None,
            r#"{"snapshot": "latest"}"#,
        )
        .await;
        assert_eq!((a.status, a.code()), (403, "restore_not_allowed"), "{a:?}");
        assert!(a.message().contains("--allow-restore"), "{a:?}");
    }
    assert!(store.restores().is_empty());
    refusing.stop().await;

    let allowing = Running::start(store.clone(), false, true).await;
    let [tcp, socket] = allowing.both();
    let a = call(
        tcp,
        "POST",
        "/v1/restores",
        None,
        r#"{"snapshot": "latest"}"#,
    )
    .await;
    assert_eq!(a.status, 202, "{a:?}");
    let name = a.body["name"].as_str().unwrap().to_owned();
    assert!(name.starts_with("db-restore-"), "{name}");
    assert_eq!(a.body["status"], format!("/v1/restores/{name}"));
    let a = call(socket, "GET", &format!("/v1/restores/{name}"), None, "").await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.body["phase"], "Pending");
    assert_eq!(a.body["snapshot"], "repo-new");
    let a = call(tcp, "GET", "/v1/restores/db-restore-1-nope", None, "").await;
    assert_eq!((a.status, a.code()), (404, "restore_not_found"), "{a:?}");
    let a = call(tcp, "DELETE", &format!("/v1/restores/{name}"), None, "").await;
    assert_eq!((a.status, a.code()), (405, "method_not_allowed"), "{a:?}");
    let a = call(
        socket,
        "POST",
        "/v1/restores",
        None,
        r#"{"snapshot": "repo-old", "components": ["dump"]}"#,
    )
    .await;
    assert_eq!(a.status, 202, "{a:?}");
    let restores = store.restores();
    assert_eq!(restores.len(), 2);
    assert_eq!(restores[0].0, name);
    assert_eq!(
        restores[0].1.snapshot, "repo-new",
        "latest is the newest succeeded"
    );
    assert_eq!(restores[1].1.snapshot, "repo-old");
    assert_eq!(restores[1].1.components, ["dump"]);

    let a = call(
        tcp,
        "POST",
        "/v1/restores",
        None,
        r#"{"snapshot": "repo-nope"}"#,
    )
    .await;
    assert_eq!((a.status, a.code()), (404, "snapshot_not_found"), "{a:?}");
    let a = call(
        tcp,
        "POST",
        "/v1/restores",
        None,
        r#"{"snapshot": "repo-new", "components": ["wal"]}"#,
    )
    .await;
    assert_eq!((a.status, a.code()), (400, "invalid_field"), "{a:?}");
    assert_eq!(
        a.message(),
        "components: snapshot repo-new has no component wal (it has: dump)"
    );

    let a = call(socket, "GET", "/v1/snapshots", None, "").await;
    assert_eq!(a.status, 200, "{a:?}");
    let names: Vec<&str> = a.body["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["repo-failed", "repo-new", "repo-old"],
        "newest first"
    );
    allowing.stop().await;
}

#[tokio::test]
async fn listeners_refuse_what_they_must() {
    let store: Arc<dyn SessionStore> = Arc::new(MemoryStore::new("db", &["a"]));
    // Only loopback addresses can be configured.
    for addr in ["0.0.0.0:8089", "10.1.2.3:8089", "[::]:8089"] {
        let err = LoopbackAddr::new(addr.parse().unwrap()).unwrap_err();
        assert!(matches!(err, BindError::NotLoopback(_)), "{addr}: {err}");
        assert!(addr.parse::<LoopbackAddr>().is_err(), "{addr}");
    }
    let none = ApiConfig {
        tcp: None,
        socket: None,
        ..ApiConfig::default()
    };
    let err = Server::bind(none, store.clone()).await.unwrap_err();
    assert!(matches!(err, BindError::NoListener), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let socket_at = |path: &Path| ApiConfig {
        socket: Some(path.to_owned()),
        ..ApiConfig::default()
    };
    // A regular file is never replaced.
    let file = dir.path().join("file.sock");
    std::fs::write(&file, b"data").unwrap();
    let err = Server::bind(socket_at(&file), store.clone())
        .await
        .unwrap_err();
    assert!(matches!(err, BindError::NotASocket { .. }), "{err}");
    assert_eq!(std::fs::read(&file).unwrap(), b"data");

    // A stale socket (nothing listens) is replaced; the new one is 0660.
    let path = dir.path().join("sidecar.sock");
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    let server = Server::bind(socket_at(&path), store.clone()).await.unwrap();
    let meta = std::fs::symlink_metadata(&path).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);

    // A live one is not.
    let err = Server::bind(socket_at(&path), store.clone())
        .await
        .unwrap_err();
    assert!(matches!(err, BindError::SocketInUse { .. }), "{err}");

    // Stopping removes the socket.
    server.serve_until(async {}).await;
    assert!(!path.exists(), "the socket is left behind");
}

#[tokio::test]
async fn the_client_says_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let missing = Client::new(Endpoint::Socket(dir.path().join("none.sock")));
    let err = missing.snapshots().await.unwrap_err();
    assert!(matches!(err, ClientError::NoSocket { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("is the sidecar running in this pod?"),
        "{err}"
    );

    let stale = dir.path().join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    let err = Client::new(Endpoint::Socket(stale))
        .snapshots()
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Refused { .. }), "{err}");

    let store = Arc::new(MemoryStore::new("db", &["frequent"]));
    let server = Running::start(store, true, false).await;
    let client = Client::new(Endpoint::Socket(server.socket.clone())).with_token(TOKEN);
    let created = client
        .create_backup(&BackupRequest {
            tag: Some("t".into()),
            ..BackupRequest::default()
        })
        .await
        .unwrap();
    let info = client.backup(&created.name).await.unwrap();
    assert_eq!(info.tag.as_deref(), Some("t"));
    let err = Client::new(Endpoint::Tcp(server.tcp))
        .backup(&created.name)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ClientError::Api { status: 401, code, .. } if code == "unauthorized"),
        "{err}"
    );
    server.stop().await;
}

// ---- The Kubernetes store, against the fake API server ----

fn yaml<T: serde::de::DeserializeOwned>(text: &str) -> T {
    serde_yaml::from_str(text).unwrap()
}

fn kube_snapshot(name: &str, app: &str, session: &str, time: &str, phase: &str) -> Snapshot {
    yaml(&format!(
        r#"
apiVersion: storage.stowaway.dev/v1alpha1
kind: Snapshot
metadata: {{name: {name}, namespace: demo}}
spec:
  repository: repo
  session: frequent
  backupSession: {session}
  appRef: {{apiGroup: apps, kind: Deployment, name: {app}}}
  deletionPolicy: Delete
status:
  phase: {phase}
  snapshotTime: "{time}"
  size: 1.5 MiB
  components:
    dump: {{phase: Succeeded}}
"#
    ))
}

async fn fake_cluster() -> KubeClient {
    let config: BackupConfiguration = yaml(
        r#"
apiVersion: core.stowaway.dev/v1alpha1
kind: BackupConfiguration
metadata: {name: db, namespace: demo, uid: 6f1c1a52-0000-4000-8000-000000000001}
spec:
  target: {apiGroup: apps, kind: Deployment, name: web}
  backends:
    - {name: local, storageRef: {name: store}}
  sessions:
    - name: frequent
      scheduler: {schedule: "*/5 * * * *"}
      backupTimeout: 30m
      addon: {name: postgres-addon, tasks: [{name: logical-backup}]}
      repositories:
        - {name: repo, backend: local, directory: /demo/db, encryptionSecret: {name: pw}}
    - name: weekly
      addon: {name: postgres-addon, tasks: [{name: logical-backup}]}
      repositories:
        - {name: repo-weekly, backend: local, directory: /demo/db-weekly}
"#,
    );
    let foreign: BackupSession = yaml(
        r#"
apiVersion: core.stowaway.dev/v1alpha1
kind: BackupSession
metadata:
  name: other-frequent-1700000000
  namespace: demo
  labels: {stowaway.dev/invoker-name: other, stowaway.dev/invoker-kind: BackupConfiguration}
spec:
  invoker: {apiGroup: core.stowaway.dev, kind: BackupConfiguration, name: other}
  session: frequent
"#,
    );
    ClientBuilder::new()
        .with_resource::<BackupConfiguration>()
        .with_status_subresource::<BackupConfiguration>()
        .with_resource::<BackupSession>()
        .with_status_subresource::<BackupSession>()
        .with_resource::<Snapshot>()
        .with_status_subresource::<Snapshot>()
        .with_resource::<RestoreSession>()
        .with_status_subresource::<RestoreSession>()
        .with_object(config)
        .with_object(foreign)
        .with_object(kube_snapshot(
            "repo-old",
            "web",
            "db-frequent-1",
            "2026-01-01T00:00:00Z",
            "Succeeded",
        ))
        .with_object(kube_snapshot(
            "repo-new",
            "web",
            "db-frequent-2",
            "2026-01-02T00:00:00Z",
            "Succeeded",
        ))
        .with_object(kube_snapshot(
            "repo-broken",
            "web",
            "db-frequent-3",
            "2026-01-03T00:00:00Z",
            "Failed",
        ))
        .with_object(kube_snapshot(
            "repo-api",
            "api",
            "api-frequent-1",
            "2026-01-04T00:00:00Z",
            "Succeeded",
        ))
        .build()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_kube_store_creates_and_reads_the_configurations_sessions() {
    let client = fake_cluster().await;
    let store = Arc::new(KubeStore::new(client.clone(), "demo", "db"));
    let server = Running::start(store, true, true).await;
    let [tcp, socket] = server.both();
    let sessions: Api<BackupSession> = Api::namespaced(client.clone(), "demo");

    let a = call(
        tcp,
        "POST",
        "/v1/backups",
        Some(TOKEN),
        r#"{"session": "weekly", "tag": "pre-migration", "components": ["dump", "wal"]}"#,
    )
    .await;
    assert_eq!(a.status, 202, "{a:?}");
    let name = a.body["name"].as_str().unwrap().to_owned();
    assert!(name.starts_with("db-weekly-ondemand-"), "{name}");
    let created = sessions.get(&name).await.unwrap();
    let annotations = created.annotations();
    assert_eq!(annotations["stowaway.dev/trigger"], "on-demand");
    assert_eq!(annotations["stowaway.dev/tag"], "pre-migration");
    assert_eq!(annotations["stowaway.dev/components"], "dump,wal");
    assert_eq!(created.labels()["stowaway.dev/invoker-name"], "db");
    assert_eq!(created.labels()["stowaway.dev/session-name"], "weekly");
    assert_eq!(created.spec.invoker.kind, "BackupConfiguration");
    assert_eq!(created.spec.invoker.name, "db");
    assert_eq!(created.spec.session, "weekly");
    let owner = &created.owner_references()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("BackupConfiguration", "db")
    );

    // The default session is the first, with its timeout.
    let a = call(socket, "POST", "/v1/backups", Some(TOKEN), "").await;
    assert_eq!(a.status, 202, "{a:?}");
    let first = sessions
        .get(a.body["name"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(first.spec.session, "frequent");
    assert_eq!(first.spec.backup_timeout.as_deref(), Some("30m"));
    assert!(!first.annotations().contains_key("stowaway.dev/tag"));

    let a = call(
        socket,
        "GET",
        &format!("/v1/backups/{name}"),
        Some(TOKEN),
        "",
    )
    .await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.body["phase"], "Pending");
    assert_eq!(a.body["tag"], "pre-migration");
    assert_eq!(a.body["components"], json!(["dump", "wal"]));

    // The operator and the executor move it along.
    let status = json!({"status": {
        "phase": "Failed",
        "duration": "42s",
        "size": "3 MiB",
        "snapshots": [{"name": format!("repo-weekly-{name}"), "repository": "repo-weekly", "phase": "Failed"}],
        "conditions": [{"type": "BackupIncomplete", "status": "True", "reason": "BackupFailed",
                        "message": "addon postgres: pg_dumpall exited with 1"}],
    }});
    sessions
        .patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
    let a = call(tcp, "GET", &format!("/v1/backups/{name}"), Some(TOKEN), "").await;
    assert_eq!(a.body["phase"], "Failed", "{a:?}");
    assert_eq!(a.body["duration"], "42s");
    assert_eq!(a.body["size"], "3 MiB");
    assert_eq!(a.body["error"], "addon postgres: pg_dumpall exited with 1");
    assert_eq!(a.body["snapshots"][0]["repository"], "repo-weekly");
    assert_eq!(a.body["snapshots"][0]["phase"], "Failed");

    // Another configuration's session, and one that does not exist, are not found.
    for missing in ["other-frequent-1700000000", "db-frequent-1"] {
        let a = call(
            tcp,
            "GET",
            &format!("/v1/backups/{missing}"),
            Some(TOKEN),
            "",
        )
        .await;
        assert_eq!(
            (a.status, a.code()),
            (404, "backup_not_found"),
            "{missing}: {a:?}"
        );
    }

    let a = call(
        tcp,
        "POST",
        "/v1/backups",
        Some(TOKEN),
        r#"{"session": "hourly"}"#,
    )
    .await;
    assert_eq!((a.status, a.code()), (400, "invalid_field"), "{a:?}");
    assert!(a.message().contains("(it has: frequent, weekly)"), "{a:?}");

    // The target's snapshots only, newest first.
    let a = call(tcp, "GET", "/v1/snapshots", Some(TOKEN), "").await;
    assert_eq!(a.status, 200, "{a:?}");
    let list = a.body["snapshots"].as_array().unwrap();
    let names: Vec<&str> = list.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["repo-broken", "repo-new", "repo-old"]);
    assert_eq!(list[1]["repository"], "repo");
    assert_eq!(list[1]["backupSession"], "db-frequent-2");
    assert_eq!(list[1]["phase"], "Succeeded");
    assert_eq!(list[1]["time"], "2026-01-02T00:00:00Z");
    assert_eq!(list[1]["size"], "1.5 MiB");
    assert_eq!(list[1]["components"], json!(["dump"]));
    server.stop().await;
}

#[tokio::test]
async fn the_kube_store_creates_restores_of_the_targets_snapshots() {
    let client = fake_cluster().await;
    let server = Running::start(
        Arc::new(KubeStore::new(client.clone(), "demo", "db")),
        false,
        true,
    )
    .await;
    let restores: Api<RestoreSession> = Api::namespaced(client.clone(), "demo");
    let a = call(
        server.both()[1],
        "POST",
        "/v1/restores",
        None,
        r#"{"snapshot": "latest", "components": ["dump"]}"#,
    )
    .await;
    assert_eq!(a.status, 202, "{a:?}");
    let name = a.body["name"].as_str().unwrap();
    assert!(name.starts_with("db-restore-"), "{name}");
    let restore = restores.get(name).await.unwrap();
    assert_eq!(restore.annotations()["stowaway.dev/trigger"], "on-demand");
    let target = restore.spec.target.as_ref().unwrap();
    assert_eq!(
        (
            target.kind.as_str(),
            target.name.as_str(),
            target.namespace.as_deref()
        ),
        ("Deployment", "web", Some("demo"))
    );
    let source = &restore.spec.data_source;
    assert_eq!(
        source.snapshot.as_deref(),
        Some("repo-new"),
        "the newest succeeded"
    );
    assert_eq!(source.repository.as_deref(), Some("repo"));
    assert_eq!(source.components, ["dump"]);
    assert_eq!(source.encryption_secret.as_ref().unwrap().name, "pw");
    let addon = restore.spec.addon.as_ref().unwrap();
    assert_eq!(addon.name, "postgres-addon");
    assert_eq!(addon.tasks[0].name, "logical-backup-restore");

    // Its status, as the operator and the executor write it.
    let a = call(
        server.both()[0],
        "GET",
        &format!("/v1/restores/{name}"),
        None,
        "",
    )
    .await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(
        (a.body["phase"].as_str(), a.body["snapshot"].as_str()),
        (Some("Pending"), Some("repo-new"))
    );
    let status = json!({"status": {
        "phase": "Failed",
        "duration": "3s",
        "components": {"dump": {"phase": "Failed", "error": "psql exited with 3"}},
    }});
    restores
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
    let a = call(
        server.both()[1],
        "GET",
        &format!("/v1/restores/{name}"),
        None,
        "",
    )
    .await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.body["phase"], "Failed");
    assert_eq!(a.body["duration"], "3s");
    assert_eq!(a.body["error"], "dump: psql exited with 3");
    // Another configuration's restore is not this sidecar's.
    let a = call(
        server.both()[1],
        "GET",
        "/v1/restores/other-restore-1-abc",
        None,
        "",
    )
    .await;
    assert_eq!((a.status, a.code()), (404, "restore_not_found"), "{a:?}");

    for (body, status, code) in [
        (r#"{"snapshot": "repo-api"}"#, 404, "snapshot_not_found"),
        (r#"{"snapshot": "repo-none"}"#, 404, "snapshot_not_found"),
        (
            r#"{"snapshot": "repo-old", "components": ["wal"]}"#,
            400,
            "invalid_field",
        ),
    ] {
        let a = call(server.both()[0], "POST", "/v1/restores", None, body).await;
        assert_eq!((a.status, a.code()), (status, code), "{body}: {a:?}");
    }
    assert_eq!(
        restores
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        1
    );
    server.stop().await;
}

#[tokio::test]
async fn twenty_requests_at_once_get_twenty_sessions() {
    let client = fake_cluster().await;
    let server = Running::start(
        Arc::new(KubeStore::new(client.clone(), "demo", "db")),
        false,
        false,
    )
    .await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..20 {
        // Half over TCP, half over the socket.
        let (tcp, socket) = (server.tcp, server.socket.clone());
        tasks.spawn(async move {
            let to = if i % 2 == 0 {
                To::Tcp(tcp)
            } else {
                To::Socket(&socket)
            };
            call(
                to,
                "POST",
                "/v1/backups",
                None,
                &format!(r#"{{"tag": "n{i}"}}"#),
            )
            .await
        });
    }
    let mut names = std::collections::BTreeSet::new();
    while let Some(answer) = tasks.join_next().await {
        let a = answer.unwrap();
        assert_eq!(a.status, 202, "{a:?}");
        names.insert(a.body["name"].as_str().unwrap().to_owned());
    }
    assert_eq!(names.len(), 20, "names were reused: {names:?}");
    let sessions: Api<BackupSession> = Api::namespaced(client, "demo");
    let on_demand: std::collections::BTreeSet<String> = sessions
        .list(&ListParams::default().labels("stowaway.dev/invoker-name=db"))
        .await
        .unwrap()
        .items
        .iter()
        .map(|s| s.name_any())
        .collect();
    assert_eq!(on_demand, names);
    server.stop().await;
}

#[tokio::test]
async fn a_missing_configuration_or_cluster_is_a_503() {
    let client = fake_cluster().await;
    let server = Running::start(
        Arc::new(KubeStore::new(client, "demo", "gone")),
        false,
        false,
    )
    .await;
    let a = call(server.both()[0], "POST", "/v1/backups", None, "{}").await;
    assert_eq!(
        (a.status, a.code()),
        (503, "configuration_not_found"),
        "{a:?}"
    );
    assert_eq!(
        a.message(),
        "BackupConfiguration demo/gone not found: the sidecar has nothing to back up"
    );
    server.stop().await;

    // An API server that is not there.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = kube::Config::new(url.parse().unwrap());
    let unreachable = KubeClient::try_from(config).unwrap();
    let server = Running::start(
        Arc::new(KubeStore::new(unreachable, "demo", "db")),
        false,
        false,
    )
    .await;
    for (method, path) in [
        ("POST", "/v1/backups"),
        ("GET", "/v1/snapshots"),
        ("GET", "/v1/backups/db-x"),
    ] {
        let a = call(server.both()[1], method, path, None, "").await;
        assert_eq!(
            (a.status, a.code()),
            (503, "cluster_unreachable"),
            "{path}: {a:?}"
        );
        assert!(
            a.message().starts_with("the Kubernetes API is unreachable"),
            "{a:?}"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn snapshot_times_fall_back_to_creation() {
    // A Snapshot without a snapshotTime sorts by its creation time.
    let client = fake_cluster().await;
    let snapshots: Api<Snapshot> = Api::namespaced(client.clone(), "demo");
    let mut s = kube_snapshot(
        "repo-fresh",
        "web",
        "db-frequent-4",
        "2026-01-01T00:00:00Z",
        "Running",
    );
    s.status.as_mut().unwrap().snapshot_time = None;
    s.metadata.creation_timestamp = Some(Time("2026-02-01T00:00:00Z".parse().unwrap()));
    snapshots.create(&Default::default(), &s).await.unwrap();
    let store = KubeStore::new(client, "demo", "db");
    let list = store.snapshots().await.unwrap();
    assert_eq!(list[0].name, "repo-fresh", "{list:?}");
}

#[tokio::test]
async fn a_configuration_without_sessions_says_so() {
    let store = MemoryStore::new("empty", &[]);
    let err = store
        .create_backup(&BackupRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "BackupConfiguration empty has no sessions");
    let server = Running::start(Arc::new(store), false, false).await;
    let a = call(server.both()[0], "GET", "/", None, "").await;
    assert_eq!((a.status, a.code()), (404, "not_found"), "{a:?}");
    assert!(a.message().starts_with("no endpoint /: "), "{a:?}");
    server.stop().await;
}
