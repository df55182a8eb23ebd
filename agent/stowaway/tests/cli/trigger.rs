//! `stowaway trigger` against a real on-demand API on a Unix socket (the sidecar's server with
//! its in-memory store, in this test process).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use stowaway_api::backup_session::BackupSessionPhase;
use stowaway_api::common::RunPhase;
use stowaway_sidecar::api::{ApiConfig, Server};
use stowaway_sidecar::store::MemoryStore;
use stowaway_sidecar::token::Token;
use stowaway_sidecar::wire::SnapshotInfo;

use crate::util::Env;

const TOKEN: &str = "pod-local-token";

/// Runs `stowaway trigger --socket SOCKET ARGS` without blocking the server's runtime.
async fn trigger(
    env: &Env,
    socket: &Path,
    token: Option<&Path>,
    args: &[&str],
) -> std::process::Output {
    let mut full = vec!["trigger", "--socket", socket.to_str().unwrap()];
    if let Some(token) = token {
        full.extend(["--token-file", token.to_str().unwrap()]);
    }
    full.extend_from_slice(args);
    let mut cmd = env.command(&full);
    for var in [
        "STOWAWAY_TOKEN",
        "STOWAWAY_TOKEN_FILE",
        "STOWAWAY_SOCKET",
        "STOWAWAY_URL",
    ] {
        cmd.env_remove(var);
    }
    tokio::process::Command::from(cmd).output().await.unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Plays the operator: once a backup tagged `tag` appears, moves it to Running, then to
/// `phase` with `error`.
fn finish_when_created(
    store: Arc<MemoryStore>,
    tag: &'static str,
    phase: BackupSessionPhase,
    error: Option<&'static str>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let name = loop {
            if let Some(b) = store
                .backups()
                .into_iter()
                .find(|b| b.tag.as_deref() == Some(tag))
            {
                break b.name;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        store.update_backup(&name, |b| b.phase = BackupSessionPhase::Running);
        tokio::time::sleep(Duration::from_millis(300)).await;
        store.update_backup(&name, |b| {
            b.phase = phase;
            b.duration = Some("2s".into());
            b.size = Some("1.00 MiB".into());
            b.error = error.map(str::to_owned);
        });
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trigger_talks_to_the_sidecar_over_its_socket() {
    let env = Env::new();
    let socket = env.path("sidecar.sock");
    let token_file = env.path("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let store = Arc::new(MemoryStore::new("db", &["frequent", "weekly"]));
    store.add_snapshot(SnapshotInfo {
        name: "repo-db-frequent-1".into(),
        repository: "repo".into(),
        backup_session: Some("db-frequent-1".into()),
        phase: Some(RunPhase::Succeeded),
        time: Some("2026-01-02T03:04:05Z".parse().unwrap()),
        size: Some("4.00 MiB".into()),
        components: vec!["dump".into()],
    });
    let config = ApiConfig {
        socket: Some(socket.clone()),
        token: Some(Token::from_file(&token_file).unwrap()),
        allow_restore: true,
        ..ApiConfig::default()
    };
    let server = Server::bind(config, store.clone()).await.unwrap();
    tokio::spawn(server.serve());
    let tok = Some(token_file.as_path());

    // A backup, without waiting.
    let out = trigger(
        &env,
        &socket,
        tok,
        &[
            "backup",
            "--session",
            "weekly",
            "--tag",
            "t1",
            "--component",
            "dump",
            "--json",
        ],
    )
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let created: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let name = created["name"].as_str().unwrap().to_owned();
    assert!(name.starts_with("db-weekly-ondemand-"), "{created}");
    assert_eq!(created["status"], format!("/v1/backups/{name}"));
    let recorded = store.backups();
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].name, name);
    assert_eq!(recorded[0].tag.as_deref(), Some("t1"));
    assert_eq!(recorded[0].components, ["dump"]);

    // Its status, as text and JSON.
    let out = trigger(&env, &socket, tok, &["status", &name]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(&format!("Name:       {name}\n")),
        "{stdout}"
    );
    assert!(stdout.contains("Phase:      Pending\n"), "{stdout}");
    assert!(stdout.contains("Tag:        t1\n"), "{stdout}");
    let out = trigger(&env, &socket, tok, &["status", &name, "--json"]).await;
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["session"], "weekly");
    assert_eq!(status["trigger"], "on-demand");

    // --wait follows it to the end: success exits 0.
    let operator = finish_when_created(store.clone(), "ok", BackupSessionPhase::Succeeded, None);
    let out = trigger(
        &env,
        &socket,
        tok,
        &["backup", "--tag", "ok", "--wait", "--interval", "100ms"],
    )
    .await;
    operator.await.unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("Phase:      Succeeded\n"), "{stdout}");
    assert!(stdout.contains("Size:       1.00 MiB\n"), "{stdout}");
    let stderr = text(&out.stderr);
    assert!(stderr.contains(": Running\n"), "{stderr}");

    // ... and failure exits 1 with the reason.
    let operator = finish_when_created(
        store.clone(),
        "bad",
        BackupSessionPhase::Failed,
        Some("addon postgres: connection refused"),
    );
    let out = trigger(
        &env,
        &socket,
        tok,
        &[
            "backup",
            "--tag",
            "bad",
            "--wait",
            "--interval",
            "100ms",
            "--json",
        ],
    )
    .await;
    operator.await.unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let last: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(last["phase"], "Failed");
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("failed: addon postgres: connection refused"),
        "{stderr}"
    );

    // Snapshots and a restore.
    let out = trigger(&env, &socket, tok, &["snapshots", "--json"]).await;
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list[0]["name"], "repo-db-frequent-1", "{list}");
    let out = trigger(&env, &socket, tok, &["snapshots"]).await;
    let stdout = text(&out.stdout);
    assert!(stdout.contains("repo-db-frequent-1  repo"), "{stdout}");
    assert!(stdout.ends_with("1 snapshots\n"), "{stdout}");
    let out = trigger(&env, &socket, tok, &["restore", "--snapshot", "latest"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("RestoreSession db-restore-"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(store.restores()[0].1.snapshot, "repo-db-frequent-1");

    // The token from the environment; a wrong one is refused.
    let mut cmd = env.command(&["trigger", "--socket", socket.to_str().unwrap(), "snapshots"]);
    cmd.env_remove("STOWAWAY_TOKEN_FILE")
        .env("STOWAWAY_TOKEN", "wrong");
    let out = tokio::process::Command::from(cmd).output().await.unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("the bearer token is wrong (HTTP 401, unauthorized)"),
        "{stderr}"
    );
    let out = trigger(&env, &socket, None, &["status", "db-nope"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("HTTP 401"),
        "{}",
        text(&out.stderr)
    );
    let out = trigger(&env, &socket, tok, &["status", "db-nope"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "stowaway: BackupSession db-nope not found (HTTP 404, backup_not_found)\n"
    );
    assert_eq!(
        store.backups().len(),
        3,
        "no request created more than asked"
    );
}

#[tokio::test]
async fn trigger_without_a_sidecar_says_so() {
    let env = Env::new();
    let out = trigger(&env, &env.path("none.sock"), None, &["backup"]).await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("is the sidecar running in this pod?"),
        "{stderr}"
    );
    let out = trigger(
        &env,
        &env.path("none.sock"),
        None,
        &["--url", "http://10.0.0.1:8089", "snapshots"],
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("not a loopback address"),
        "{}",
        text(&out.stderr)
    );
}
