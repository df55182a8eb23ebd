//! `stowaway sidecar --config FILE`, the standalone sidecar, as a process: backups asked for
//! with `stowaway trigger`, and SIGTERM (during a backup too).

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::util::{self, Env, corpus};

/// Writes the sidecar's configuration for the directory `data`; returns its path and the
/// socket's.
fn configure(env: &Env, data: &Path) -> (PathBuf, PathBuf) {
    let password = env.path("repo-password");
    std::fs::write(&password, "correct horse\n").unwrap();
    let socket = env.path("sidecar.sock");
    let config = env.path("sidecar.yaml");
    std::fs::write(
        &config,
        format!(
            "name: app\nstorage:\n  url: {}\n  passwordFile: {}\naddon:\n  name: volume\n\
             target:\n  volumes: [{}]\napi:\n  socket: {}\n",
            env.repo.display(),
            password.display(),
            data.display(),
            socket.display()
        ),
    )
    .unwrap();
    (config, socket)
}

/// Starts the sidecar and waits for its socket.
fn start(env: &Env, config: &Path, socket: &Path) -> Child {
    let mut child = env
        .command(&["sidecar", "--config", config.to_str().unwrap()])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !socket.exists() {
        if let Ok(Some(status)) = child.try_wait() {
            let out = child.wait_with_output().unwrap();
            panic!(
                "the sidecar ended ({status}): {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        assert!(Instant::now() < deadline, "no socket");
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

fn trigger(env: &Env, socket: &Path, args: &[&str]) -> std::process::Output {
    let mut full = vec!["trigger", "--socket", socket.to_str().unwrap()];
    full.extend_from_slice(args);
    let mut cmd = env.command(&full);
    for var in ["STOWAWAY_TOKEN", "STOWAWAY_TOKEN_FILE", "STOWAWAY_URL"] {
        cmd.env_remove(var);
    }
    cmd.output().unwrap()
}

/// Sends SIGTERM and returns the exit code and stderr.
fn terminate(child: Child) -> (Option<i32>, String, Duration) {
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let started = Instant::now();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        started.elapsed(),
    )
}

#[test]
fn backups_on_demand_then_sigterm_exits_0_and_removes_the_socket() {
    let env = Env::new();
    env.ok(&["init"]);
    let data = env.dir("data");
    std::fs::write(data.join("a.txt"), b"standalone\n").unwrap();
    let (config, socket) = configure(&env, &data);
    let child = start(&env, &config, &socket);

    let out = trigger(&env, &socket, &["backup", "--wait", "--interval", "100ms"]);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{said}");
    assert!(said.contains(": Succeeded"), "{said}");
    let out = trigger(&env, &socket, &["--json", "snapshots"]);
    assert!(out.status.success());
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ids = env.snapshot_ids();
    assert_eq!(ids.len(), 1);
    assert_eq!(listed[0]["name"], ids[0].as_str(), "{listed}");
    // Restores are off unless the configuration allows them.
    let out = trigger(&env, &socket, &["restore", "--snapshot", "latest"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("api.allowRestore: true"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let (code, stderr, _) = terminate(child);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("SIGTERM received"), "{stderr}");
    assert!(!socket.exists(), "the socket is removed");
}

#[test]
fn sigterm_during_a_backup_commits_nothing() {
    let env = Env::new();
    env.ok(&["init"]);
    let data = env.dir("big");
    corpus::bulk(&data, 30, 4 * 1024 * 1024);
    let (config, socket) = configure(&env, &data);
    let child = start(&env, &config, &socket);
    let out = trigger(&env, &socket, &["backup"]);
    assert!(out.status.success());
    let packs = env.repo.join("data");
    let deadline = Instant::now() + Duration::from_secs(60);
    while util::count_files(&packs) < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let (code, stderr, took) = terminate(child);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(took < Duration::from_secs(10), "took {took:?}");
    assert!(
        stderr.contains("the sidecar stopped during the backup: nothing was committed"),
        "{stderr}"
    );
    assert!(!socket.exists());
    assert!(
        env.snapshot_ids().is_empty(),
        "a stopped backup became a snapshot"
    );
    env.ok(&["check"]);
}

#[test]
fn without_a_configuration_or_with_a_bad_one_it_says_why() {
    let env = Env::new();
    // Without --config it is the in-cluster sidecar, which needs the injector's environment.
    let err = env.fail(&["sidecar"]);
    assert!(
        err.contains(
            "environment variable STOWAWAY_TARGET_KIND is not set: `stowaway sidecar` runs in a \
             pod the Stowaway injector prepared (or pass --config FILE for the standalone sidecar)"
        ),
        "{err}"
    );
    let config = env.path("bad.yaml");
    std::fs::write(
        &config,
        "name: app\nstorage:\n  url: /x\n  password: hunter2\naddon: {name: volume}\n",
    )
    .unwrap();
    let err = env.fail(&["sidecar", "--config", config.to_str().unwrap()]);
    assert!(
        err.contains("bad.yaml: storage: unknown field `password`"),
        "{err}"
    );
    assert!(err.contains("at line 4 column 3"), "{err}");
}
