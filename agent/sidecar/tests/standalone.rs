//! The standalone sidecar end to end: a repository in a temporary directory, the real volume
//! addon, an every-minute schedule driven by a hand-moved clock, the on-demand API over a
//! real Unix socket and loopback TCP, retention, and restores compared byte for byte.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use stowaway_api::backup_session::BackupSessionPhase;
use stowaway_api::restore_session::RestorePhase;
use stowaway_executor::Settings;
use stowaway_runtime::{Runtime, RuntimeOptions};
use stowaway_sidecar::client::{Client, ClientError, Endpoint};
use stowaway_sidecar::standalone::Standalone;
use stowaway_sidecar::standalone::clock::{Clock, ManualClock};
use stowaway_sidecar::standalone::config::Config;
use stowaway_sidecar::wire::{BackupInfo, BackupRequest, RestoreInfo, RestoreRequest};

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn settings() -> Settings {
    let runtime = Runtime::new(RuntimeOptions {
        cache_dir: None,
        no_cache: true,
    })
    .unwrap();
    Settings::new(runtime, stowaway_addons::builtin, || {
        stowaway_addons::builtin_names().collect()
    })
}

/// Every entry under `root`: relative path → (mode, file content or symlink target; none
/// for a directory).
fn tree(root: &Path) -> BTreeMap<String, (u32, Option<Vec<u8>>)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for entry in std::fs::read_dir(root.join(&rel)).unwrap() {
            let entry = entry.unwrap();
            let rel = rel.join(entry.file_name());
            let meta = std::fs::symlink_metadata(entry.path()).unwrap();
            let mode = meta.permissions().mode() & 0o7777;
            let content = if meta.is_dir() {
                stack.push(rel.clone());
                None
            } else if meta.is_symlink() {
                Some(
                    std::fs::read_link(entry.path())
                        .unwrap()
                        .into_os_string()
                        .into_encoded_bytes(),
                )
            } else {
                Some(std::fs::read(entry.path()).unwrap())
            };
            out.insert(rel.display().to_string(), (mode, content));
        }
    }
    out
}

/// Data with nested directories, binary content, an empty file, a symlink and modes.
fn fill(root: &Path) {
    std::fs::create_dir_all(root.join("docs/deep")).unwrap();
    std::fs::write(root.join("readme.txt"), b"hello standalone\n").unwrap();
    let binary: Vec<u8> = (0..300_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(root.join("docs/deep/blob.bin"), &binary).unwrap();
    std::fs::write(root.join("docs/empty"), b"").unwrap();
    std::fs::write(root.join("docs/script.sh"), b"#!/bin/sh\necho hi\n").unwrap();
    std::fs::set_permissions(
        root.join("docs/script.sh"),
        std::fs::Permissions::from_mode(0o750),
    )
    .unwrap();
    std::os::unix::fs::symlink("deep/blob.bin", root.join("docs/link")).unwrap();
}

struct Env {
    _dir: tempfile::TempDir,
    data: PathBuf,
    repo: PathBuf,
    password: PathBuf,
    sockets: PathBuf,
}

fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let repo = dir.path().join("repo");
    let sockets = dir.path().join("run");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::create_dir_all(&sockets).unwrap();
    let password = dir.path().join("repo-password");
    std::fs::write(&password, "correct horse battery staple\n").unwrap();
    fill(&data);
    Env {
        data,
        repo,
        password,
        sockets,
        _dir: dir,
    }
}

fn config(env: &Env, socket: &str, allow_restore: bool) -> Config {
    let text = format!(
        r#"
name: app
hostname: test-host
tags: [e2e]
storage:
  url: {repo}
  passwordFile: {password}
  initialize: true
addon:
  name: volume
  params:
    restore-owner: false
target:
  volumes:
    - {data}
schedule:
  cron: "* * * * *"
retention:
  keepLast: 3
api:
  socket: {sockets}/{socket}
  port: 0
  allowRestore: {allow_restore}
"#,
        repo = env.repo.display(),
        password = env.password.display(),
        data = env.data.display(),
        sockets = env.sockets.display(),
    );
    Config::from_yaml(&text).unwrap()
}

/// Polls a backup until it has finished.
async fn finished_backup(client: &Client, name: &str) -> BackupInfo {
    for _ in 0..2000 {
        let info = client.backup(name).await.unwrap();
        if info.finished() {
            return info;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("backup {name} did not finish");
}

/// Polls a restore until it has finished.
async fn finished_restore(client: &Client, name: &str) -> RestoreInfo {
    for _ in 0..2000 {
        let info = client.restore(name).await.unwrap();
        if info.finished() {
            return info;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("restore {name} did not finish");
}

/// Polls until `name` is known to the API (a scheduled run appears once the clock wakes the
/// schedule).
async fn appears(client: &Client, name: &str) {
    for _ in 0..2000 {
        match client.backup(name).await {
            Ok(_) => return,
            Err(ClientError::Api { status: 404, .. }) => {}
            Err(e) => panic!("{e}"),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("backup {name} never appeared");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_on_demand_backups_retention_and_restores() {
    let env = env();
    let original = tree(&env.data);
    let settings = settings();
    let clock = Arc::new(ManualClock::new(ts("2026-01-02T00:00:30Z")));
    let sidecar = Standalone::start(config(&env, "sidecar.sock", true), &settings, clock.clone())
        .await
        .unwrap();
    let socket = sidecar.socket_path().unwrap().to_path_buf();
    let tcp = sidecar.tcp_addr().unwrap();
    assert!(tcp.ip().is_loopback());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(sidecar.run_until(async {
        let _ = stopped.await;
    }));
    let by_socket = Client::new(Endpoint::Socket(socket.clone()));
    let by_tcp = Client::new(Endpoint::Tcp(tcp));

    // The schedule: nothing before the first minute, then the 00:01 run.
    assert!(by_socket.snapshots().await.unwrap().is_empty());
    clock.set(ts("2026-01-02T00:01:00Z"));
    let scheduled = "app-1767312060";
    appears(&by_socket, scheduled).await;
    let info = finished_backup(&by_socket, scheduled).await;
    assert_eq!(info.phase, BackupSessionPhase::Succeeded, "{info:?}");
    assert_eq!(info.trigger.as_deref(), Some("schedule"));
    assert_eq!(info.session, "app");
    let first_snapshot = info.snapshots[0].name.clone();

    // On demand, over the socket and over TCP.
    let created = by_socket
        .create_backup(&BackupRequest::default())
        .await
        .unwrap();
    assert_eq!(
        created.status.as_deref(),
        Some(format!("/v1/backups/{}", created.name).as_str())
    );
    let info = finished_backup(&by_socket, &created.name).await;
    assert_eq!(info.phase, BackupSessionPhase::Succeeded, "{info:?}");
    assert_eq!(info.trigger.as_deref(), Some("on-demand"));
    let created = by_tcp
        .create_backup(&BackupRequest {
            tag: Some("before the change".into()),
            components: vec!["data".into()],
            ..BackupRequest::default()
        })
        .await
        .unwrap();
    let info = finished_backup(&by_tcp, &created.name).await;
    assert_eq!(info.phase, BackupSessionPhase::Succeeded, "{info:?}");
    assert_eq!(info.tag.as_deref(), Some("before the change"));
    let tagged_snapshot = info.snapshots[0].name.clone();
    assert!(info.size.is_some());

    let snapshots = by_tcp.snapshots().await.unwrap();
    assert_eq!(snapshots.len(), 3);
    assert_eq!(snapshots[0].name, tagged_snapshot, "newest first");
    assert_eq!(
        snapshots[0].backup_session.as_deref(),
        Some(created.name.as_str())
    );
    assert_eq!(snapshots[0].components, ["data"]);
    assert_eq!(snapshots[2].name, first_snapshot);
    assert_eq!(snapshots[2].backup_session.as_deref(), Some(scheduled));

    // A fourth backup (the 00:02 instant): retention keeps the last three.
    clock.set(ts("2026-01-02T00:02:00Z"));
    appears(&by_socket, "app-1767312120").await;
    let info = finished_backup(&by_socket, "app-1767312120").await;
    assert_eq!(info.phase, BackupSessionPhase::Succeeded, "{info:?}");
    let snapshots = by_socket.snapshots().await.unwrap();
    assert_eq!(snapshots.len(), 3, "{snapshots:?}");
    assert!(
        snapshots.iter().all(|s| s.name != first_snapshot),
        "the oldest was forgotten"
    );

    // Change the data, then restore the tagged snapshot: what changed comes back byte for
    // byte. Top-level entries the snapshot lacks stay.
    std::fs::write(env.data.join("readme.txt"), b"overwritten").unwrap();
    std::fs::remove_file(env.data.join("docs/deep/blob.bin")).unwrap();
    std::fs::write(env.data.join("docs/new-inside.txt"), b"new").unwrap();
    std::fs::write(env.data.join("new-top.txt"), b"kept").unwrap();
    assert_ne!(tree(&env.data), original);
    let created = by_socket
        .create_restore(&RestoreRequest {
            snapshot: tagged_snapshot[..12].to_owned(),
            components: Vec::new(),
        })
        .await
        .unwrap();
    assert_eq!(
        created.status.as_deref(),
        Some(format!("/v1/restores/{}", created.name).as_str())
    );
    let info = finished_restore(&by_tcp, &created.name).await;
    assert_eq!(info.phase, RestorePhase::Succeeded, "{info:?}");
    assert_eq!(info.snapshot.as_deref(), Some(tagged_snapshot.as_str()));
    let mut expected = original.clone();
    expected.insert("new-top.txt".into(), (0o644, Some(b"kept".to_vec())));
    let restored = tree(&env.data);
    assert_eq!(
        restored.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>()
    );
    for (path, (mode, content)) in &expected {
        let (got_mode, got) = &restored[path];
        assert_eq!(got, content, "{path}");
        if path != "new-top.txt" {
            assert_eq!(got_mode, mode, "{path}");
        }
    }
    assert!(
        !std::fs::read_dir(&env.data).unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with(".stowaway-")),
        "no staging directory is left"
    );

    // A restore of a snapshot that is not there.
    let e = by_tcp
        .create_restore(&RestoreRequest {
            snapshot: "0123456789abcdef".into(),
            components: Vec::new(),
        })
        .await
        .unwrap_err();
    assert!(
        matches!(&e, ClientError::Api { status: 404, code, .. } if code == "snapshot_not_found"),
        "{e}"
    );

    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(30), running)
        .await
        .unwrap()
        .unwrap();
    assert!(!socket.exists(), "the socket is removed on shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restores_are_refused_unless_allowed() {
    let env = env();
    let settings = settings();
    let clock = Arc::new(ManualClock::new(ts("2026-01-02T00:00:30Z")));
    let sidecar = Standalone::start(config(&env, "refusing.sock", false), &settings, clock)
        .await
        .unwrap();
    let socket = sidecar.socket_path().unwrap().to_path_buf();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(sidecar.run_until(async {
        let _ = stopped.await;
    }));
    let client = Client::new(Endpoint::Socket(socket.clone()));
    let created = client
        .create_backup(&BackupRequest::default())
        .await
        .unwrap();
    let info = finished_backup(&client, &created.name).await;
    assert_eq!(info.phase, BackupSessionPhase::Succeeded, "{info:?}");
    let before = tree(&env.data);
    std::fs::write(env.data.join("readme.txt"), b"changed").unwrap();
    let e = client
        .create_restore(&RestoreRequest {
            snapshot: "latest".into(),
            components: Vec::new(),
        })
        .await
        .unwrap_err();
    match &e {
        ClientError::Api {
            status,
            code,
            message,
        } => {
            assert_eq!((*status, code.as_str()), (403, "restore_not_allowed"));
            assert!(message.contains("api.allowRestore: true"), "{message}");
        }
        other => panic!("{other}"),
    }
    assert_ne!(tree(&env.data), before, "nothing was restored");
    stop.send(()).unwrap();
    running.await.unwrap();
    assert!(!socket.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_fails_early_and_says_why() {
    let env = env();
    let settings = settings();
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(ts("2026-01-02T00:00:30Z")));
    // No repository and no `initialize`.
    let mut config = config(&env, "a.sock", false);
    config.storage.initialize = false;
    let e = Standalone::start(config, &settings, clock.clone())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.ends_with(": create it with `stowaway init`, or set storage.initialize: true"),
        "{e}"
    );
    // A wrong password for an existing repository.
    Standalone::start(config_with(&env, "b.sock"), &settings, clock.clone())
        .await
        .unwrap();
    std::fs::write(&env.password, "wrong\n").unwrap();
    let e = Standalone::start(config_with(&env, "c.sock"), &settings, clock.clone())
        .await
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("repository "), "{e}");
    // A volume that is not there.
    std::fs::write(&env.password, "correct horse battery staple\n").unwrap();
    std::fs::remove_dir_all(&env.data).unwrap();
    let e = Standalone::start(config_with(&env, "d.sock"), &settings, clock)
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        format!(
            "target: volume data: {} is not a directory",
            env.data.display()
        )
    );
}

fn config_with(env: &Env, socket: &str) -> Config {
    config(env, socket, false)
}
